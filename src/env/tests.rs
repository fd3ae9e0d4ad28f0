//! Unit tests of the environment: action → bits, the budget wall, infeasible budgets, the state.

use super::*;
use crate::hardware::{resolve_profile, Profile};
use crate::model::Arch;
use crate::quant::{Format, LayerBits, Policy};

/// `b` bits (a valid bitwidth in every test here).
fn b(bits: u8) -> Format {
    Format::new(bits).unwrap()
}

/// Layer bits `w`/`a`.
fn wa(w: u8, a: u8) -> LayerBits {
    LayerBits::new(b(w), b(a))
}

/// The bitwidths of `bits`, as numbers.
fn widths(bits: &[Format]) -> Vec<u8> {
    bits.iter().map(|b| b.width()).collect()
}

fn space(profile: &str, min: u8, max: u8) -> SearchSpace {
    let p = Profile::load(&resolve_profile(profile).unwrap()).unwrap();
    let layers = Arch::Lenet5.layer_shapes((1, 28, 28), 10).unwrap();
    SearchSpace::new(layers, min, max, &p, &|b| p.supports(b)).unwrap()
}

#[test]
fn actions_map_to_bits_by_equal_width_bins_at_the_edges() {
    let s = space("bitfusion", 2, 8); // 7 bins of width 1/7
    assert_eq!(s.action_to_bits(0.0, Operand::Weight), b(2));
    assert_eq!(s.action_to_bits(1.0 / 7.0 - 1e-6, Operand::Weight), b(2));
    assert_eq!(s.action_to_bits(1.0 / 7.0 + 1e-6, Operand::Weight), b(3));
    assert_eq!(s.action_to_bits(6.0 / 7.0 - 1e-6, Operand::Weight), b(7));
    assert_eq!(s.action_to_bits(6.0 / 7.0 + 1e-6, Operand::Weight), b(8));
    assert_eq!(s.action_to_bits(1.0, Operand::Weight), b(8));
    assert_eq!(s.action_to_bits(-0.5, Operand::Weight), b(2));
    assert_eq!(s.action_to_bits(7.0, Operand::Weight), b(8));
    for &v in s.values() {
        assert_eq!(
            s.action_to_bits(s.bits_to_action(v, Operand::Weight), Operand::Weight),
            v
        );
    }
    assert_eq!(widths(s.values()), [2, 3, 4, 5, 6, 7, 8]);
}

fn budget(
    space: &SearchSpace,
    latency: Option<f64>,
    energy: Option<f64>,
    size: Option<f64>,
) -> Result<Budget, EnvError> {
    let cfg = BudgetConfig {
        latency: latency.map(Limit::Fraction),
        energy: energy.map(Limit::Fraction),
        size: size.map(Limit::Fraction),
    };
    Budget::resolve(&cfg, space)
}

#[test]
fn the_wall_meets_every_budget_and_never_raises_a_bit() {
    // cortex-a76 has no sub-8-bit compute: low bits only cut memory traffic, so its latency
    // floor is ~86% of 8/8 and a 50% budget would be infeasible there.
    for (profile, lat) in [
        ("bitfusion", 0.5),
        ("bismo-edge", 0.5),
        ("cortex-a76", 0.95),
    ] {
        let s = space(profile, 2, 8);
        let budgets = budget(&s, Some(lat), Some(0.6), Some(0.4)).unwrap();
        let mut rng = 12345u64;
        for _ in 0..50 {
            let start: Policy = (0..s.layers.len())
                .map(|_| {
                    rng = rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    wa(2 + (rng >> 33) as u8 % 7, 2 + (rng >> 45) as u8 % 7)
                })
                .collect();
            let mut bits = start.clone();
            budgets.wall(&s, &mut bits);
            assert!(
                budgets.holds(&s.price(&bits)),
                "{profile}: {start} -> {bits} misses a budget"
            );
            for (o, n) in start.iter().zip(&bits) {
                assert!(
                    n.w <= o.w && n.a <= o.a,
                    "{profile}: raised a bit {o} -> {n}"
                );
            }
        }
    }
}

#[test]
fn a_policy_within_budget_is_left_alone() {
    let s = space("bitfusion", 2, 8);
    let budgets = budget(&s, Some(0.5), None, None).unwrap();
    let mut bits = Policy::uniform(5, b(4));
    budgets.wall(&s, &mut bits);
    assert_eq!(bits, Policy::uniform(5, b(4)));
}

#[test]
fn an_infeasible_budget_is_an_error_with_the_numbers() {
    let s = space("bitfusion", 4, 8);
    let e = budget(&s, Some(0.01), None, None).unwrap_err().to_string();
    assert!(
        e.contains("infeasible latency budget") && e.contains("minimum of 4 bits"),
        "{e}"
    );
    assert!(budget(&s, None, None, Some(0.01))
        .unwrap_err()
        .to_string()
        .contains("size"));
}

#[test]
fn state_features_are_normalized_and_track_spent_cost() {
    let s = space("bitfusion", 2, 8);
    let (get, limit) = budget(&s, Some(0.5), None, None).unwrap().primary(&s);
    let first = s.state(0, 0.0, &[], get, limit);
    assert!(
        first[..11].iter().all(|v| (0.0..=1.0).contains(v)),
        "{first:?}"
    );
    assert_eq!(first[12], 0.0, "nothing spent before the first step");
    let later = s.state(4, 0.3, &[b(8); 4], get, limit);
    assert_eq!(later[11], 0.3);
    assert!(later[12] > 0.0 && later[13] > 0.0);
}

/// bitfusion restricted to 4- and 8-bit operands.
fn bitfusion_4_8() -> Profile {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(resolve_profile("bitfusion").unwrap()).unwrap();
    let line = text.lines().find(|l| l.starts_with("precisions")).unwrap();
    let path = dir.path().join("bf48.toml");
    std::fs::write(&path, text.replace(line, "precisions = [4, 8]")).unwrap();
    Profile::load(&path).unwrap()
}

#[test]
fn unsupported_precisions_round_up_to_the_mode_the_device_runs() {
    let p = bitfusion_4_8();
    let layers = Arch::Lenet5.layer_shapes((1, 28, 28), 10).unwrap();
    let s = SearchSpace::new(layers, 2, 8, &p, &|b| p.supports(b)).unwrap();
    assert_eq!(widths(s.values()), [4, 8]);
    assert_eq!(
        s.action_to_bits(0.0, Operand::Weight),
        b(4),
        "2 bits run as 4"
    );
    assert_eq!(
        s.action_to_bits(4.5 / 7.0, Operand::Weight),
        b(8),
        "6 bits run as 8"
    );
    let budgets = budget(&s, Some(0.6), None, None).unwrap();
    let mut bits = Policy::parse("3/7,8/8,8/8,8/8,8/8").unwrap();
    budgets.wall(&s, &mut bits);
    assert!(
        bits.iter()
            .all(|l| [4, 8].contains(&l.w.width()) && [4, 8].contains(&l.a.width())),
        "{bits}"
    );
    assert_eq!(
        bits[0],
        wa(4, 8),
        "rounded up, never lowered below the mode"
    );
    assert!(budgets.holds(&s.price(&bits)));
    let e = budget(&s, Some(0.05), None, None).unwrap_err().to_string();
    assert!(e.contains("minimum of 4 bits"), "{e}");
}

fn declared(profile: &str, choices: &[u8], tie: bool) -> SearchSpace {
    let p = Profile::load(&resolve_profile(profile).unwrap()).unwrap();
    let layers = Arch::Lenet5.layer_shapes((1, 28, 28), 10).unwrap();
    SearchSpace::with_choices(layers, choices, tie, &p, &|b| p.supports(b)).unwrap()
}

#[test]
fn a_range_is_the_space_of_its_declared_bitwidths() {
    let (r, c) = (
        space("bitfusion", 2, 8),
        declared("bitfusion", &[2, 3, 4, 5, 6, 7, 8], false),
    );
    assert_eq!(r.values(), c.values());
    for i in 0..=100 {
        let x = i as f32 / 100.0;
        assert_eq!(
            r.action_to_bits(x, Operand::Weight),
            c.action_to_bits(x, Operand::Weight),
            "action {x}"
        );
    }
    assert_eq!(
        (r.size(), r.operands(), r.tie()),
        (Some(7u128.pow(10)), 10, false)
    );
}

#[test]
fn actions_map_to_declared_choices_by_equal_width_bins() {
    let s = declared("bitfusion", &[8, 2, 4], false); // sorted: 3 bins of width 1/3
    assert_eq!((s.min_bits, s.max_bits), (2, 8));
    assert_eq!(widths(s.values()), [2, 4, 8]);
    assert_eq!(s.action_to_bits(0.0, Operand::Weight), b(2));
    assert_eq!(s.action_to_bits(1.0 / 3.0 - 1e-6, Operand::Weight), b(2));
    assert_eq!(s.action_to_bits(1.0 / 3.0 + 1e-6, Operand::Weight), b(4));
    assert_eq!(s.action_to_bits(2.0 / 3.0 + 1e-6, Operand::Weight), b(8));
    assert_eq!(s.action_to_bits(1.0, Operand::Weight), b(8));
    for &v in s.values() {
        assert_eq!(
            s.action_to_bits(s.bits_to_action(v, Operand::Weight), Operand::Weight),
            v
        );
    }
    assert_eq!(s.size(), Some(3u128.pow(10)));
}

#[test]
fn a_tied_space_has_one_choice_per_layer() {
    let s = declared("bitfusion", &[2, 4, 8], true);
    assert_eq!((s.operands(), s.size()), (5, Some(243)));
    assert_eq!(
        s.run_layer(0, wa(4, 8)),
        wa(4, 4),
        "the activation takes the weight's bits"
    );
    assert_eq!(
        s.run_layer(0, wa(3, 2)),
        wa(4, 4),
        "rounded up to a declared bitwidth"
    );
    assert_eq!(s.run_bits(9), b(8), "above them all: the highest");
    let lower = |bits| s.lower(0, Operand::Weight, bits);
    assert_eq!((lower(b(4)), lower(b(2))), (Some(b(2)), None));
}

#[test]
fn the_wall_lowers_only_through_declared_choices() {
    let s = declared("bitfusion", &[2, 4, 8], false);
    let budgets = budget(&s, Some(0.5), Some(0.6), None).unwrap();
    let mut bits = Policy::uniform(5, b(8));
    budgets.wall(&s, &mut bits);
    assert!(budgets.holds(&s.price(&bits)), "{bits}");
    assert!(
        bits.iter()
            .all(|l| [2, 4, 8].contains(&l.w.width()) && [2, 4, 8].contains(&l.a.width())),
        "{bits}"
    );
    assert_ne!(
        bits,
        Policy::uniform(5, b(8)),
        "the 8/8 policy misses a 50% budget"
    );
}

#[test]
fn a_tied_wall_lowers_weight_and_activation_together() {
    let s = declared("bitfusion", &[2, 4, 8], true);
    let budgets = budget(&s, Some(0.5), None, None).unwrap();
    for start in [
        "8/8,8/8,8/8,8/8,8/8",
        "8/2,8/2,8/2,8/2,8/2",
        "2/8,8/4,8/8,4/8,8/2",
    ] {
        let start = Policy::parse(start).unwrap();
        let mut bits = start.clone();
        budgets.wall(&s, &mut bits);
        assert!(budgets.holds(&s.price(&bits)), "{start} -> {bits}");
        assert!(
            bits.iter()
                .all(|l| l.w == l.a && [2, 4, 8].contains(&l.w.width())),
            "{start} -> {bits}"
        );
        for (o, n) in start.iter().zip(&bits) {
            assert!(n.w <= o.w, "raised a weight {o} -> {n}");
        }
    }
}

#[test]
fn declared_choices_still_round_up_to_the_mode_the_device_runs() {
    let p = bitfusion_4_8();
    let layers = Arch::Lenet5.layer_shapes((1, 28, 28), 10).unwrap();
    let s = SearchSpace::with_choices(layers, &[2, 4, 8], true, &p, &|b| p.supports(b)).unwrap();
    assert_eq!(widths(s.values()), [4, 8], "2 bits run as 4");
    assert_eq!(s.action_to_bits(0.0, Operand::Weight), b(4));
    assert_eq!(s.size(), Some(32), "2^5 policies the device can tell apart");
}

/// The space of `profile` on LeNet-5 for `choices`, with dominated widths pruned for an
/// experiment ranking by latency under `budget`.
fn pruned(profile: &str, choices: &[u8], tie: bool, budget: &BudgetConfig) -> SearchSpace {
    let mut s = declared(profile, choices, tie);
    let objectives = Objectives::resolve(budget, true, None);
    let resolved = Budget::resolve(budget, &s).unwrap();
    s.prune_dominated(&objectives, &resolved);
    s
}

/// Every operand's options of `s`, as numbers.
fn options(s: &SearchSpace) -> Vec<[Vec<u8>; 2]> {
    (0..s.layers.len())
        .map(|l| [Operand::Weight, Operand::Activation].map(|op| widths(s.options(l, op))))
        .collect()
}

const DEFAULT: [u8; 7] = [2, 3, 4, 5, 6, 7, 8];

fn latency_budget() -> BudgetConfig {
    BudgetConfig {
        latency: Some(Limit::Fraction(0.5)),
        ..BudgetConfig::default()
    }
}

#[test]
fn bit_fusion_keeps_2_4_and_8() {
    // Its fusion units run 3 bits as 4 and 5-7 as 8: same latency, same energy.
    let s = pruned("bitfusion", &DEFAULT, false, &latency_budget());
    assert!(s.pruned());
    assert!(options(&s)
        .iter()
        .all(|o| o == &[vec![2, 4, 8], vec![2, 4, 8]]));
    assert_eq!(s.size(), Some(3u128.pow(10)));
    assert_eq!(widths(s.values()), DEFAULT, "the device still runs each");
    assert_eq!(
        s.run_layer(1, wa(3, 5)),
        wa(4, 8),
        "a pruned width runs as the wider one"
    );
    let price = |p: &str| s.price(&Policy::parse(p).unwrap());
    let (narrow, wide) = (price("3/5,3/5,3/5,3/5,3/5"), price("4/8,4/8,4/8,4/8,4/8"));
    assert_eq!(
        (narrow.latency_s, narrow.energy_j),
        (wide.latency_s, wide.energy_j),
        "only size, which latency budgets ignore, tells them apart"
    );
    assert!(s.contains(&Policy::uniform(5, b(4))));
    assert!(!s.contains(&Policy::uniform(5, b(3))));
    assert_eq!(
        s.lower(2, Operand::Activation, b(8)),
        Some(b(4)),
        "the wall steps over pruned widths"
    );
    let tied = pruned("bitfusion", &DEFAULT, true, &latency_budget());
    assert_eq!(
        (tied.size(), tied.run_layer(0, wa(7, 2))),
        (Some(243), wa(8, 8))
    );
}

#[test]
fn a_bit_serial_device_keeps_every_width() {
    // BISMO: a w-bit x a-bit MAC is w*a binary MACs, so every width costs differently.
    for profile in ["bismo-edge", "bismo-cloud"] {
        let s = pruned(profile, &DEFAULT, false, &latency_budget());
        assert!(
            options(&s)
                .iter()
                .all(|o| o == &[DEFAULT.to_vec(), DEFAULT.to_vec()]),
            "{profile}"
        );
        assert_eq!(s.size(), Some(7u128.pow(10)));
    }
}

#[test]
fn size_keeps_weight_widths_when_it_is_ranked_or_budgeted() {
    // Size counts weights at their own bits: 3-bit weights are smaller than 4-bit ones.
    let cfg = BudgetConfig {
        size: Some(Limit::Fraction(0.5)),
        ..latency_budget()
    };
    let s = pruned("bitfusion", &DEFAULT, false, &cfg);
    assert!(options(&s)
        .iter()
        .all(|o| o == &[DEFAULT.to_vec(), vec![2, 4, 8]]));
}

#[test]
fn the_wall_keeps_a_pruned_space_within_budget_and_its_options() {
    let s = pruned("bitfusion", &DEFAULT, false, &latency_budget());
    let budgets = budget(&s, Some(0.5), Some(0.6), None).unwrap();
    for start in [
        "8/8,8/8,8/8,8/8,8/8",
        "7/3,5/6,3/3,8/7,6/5",
        "2/8,8/2,3/7,7/3,4/4",
    ] {
        let mut bits = Policy::parse(start).unwrap();
        budgets.wall(&s, &mut bits);
        assert!(budgets.holds(&s.price(&bits)), "{start} -> {bits}");
        assert!(s.contains(&bits), "{start} -> {bits}");
    }
}

/// Quantized attention adds priced layers to the zoo ViT's space, but no model size: its
/// matmuls store no parameters, so size is the same sum of weights and biases with or without
/// them, while latency and energy grow. Their widths are pruned by the same rule as any layer's.
#[test]
fn attention_layers_add_latency_not_size() {
    use crate::model::{Attention, LayerKind};
    let p = Profile::load(&resolve_profile("bitfusion").unwrap()).unwrap();
    let g = Arch::Vit.graph((1, 28, 28), 10);
    let shapes = |a: Attention| {
        g.with_attention(a)
            .unwrap()
            .shapes((1, 28, 28))
            .unwrap()
            .layers
    };
    let (plain, with) = (shapes(Attention::Float), shapes(Attention::Quantized));
    let space = |layers| SearchSpace::new(layers, 2, 8, &p, &|b| p.supports(b)).unwrap();
    let (plain, mut with) = (space(plain), space(with));
    assert_eq!(with.layers.len(), plain.layers.len() + 6);
    assert_eq!(with.uniform8.size_bytes, plain.uniform8.size_bytes);
    assert_eq!(with.full.size_bytes, plain.full.size_bytes);
    assert!(with.uniform8.latency_s > plain.uniform8.latency_s);
    assert!(with.uniform8.energy_j > plain.uniform8.energy_j);
    let scores = (with.layers.iter())
        .position(|l| l.kind == LayerKind::Matmul)
        .unwrap();
    assert_eq!(with.layer_price(scores, wa(2, 2)).size_bytes, 0.0);
    assert!(
        with.layer_price(scores, wa(2, 2)).latency_s < with.layer_price(scores, wa(8, 8)).latency_s
    );
    // Bit Fusion runs 3 bits as 4 and 5-7 as 8, for these layers as for the others.
    let budget = crate::env::Budget::default();
    let objectives = crate::env::Objectives::of(true, &[crate::pareto::Objective::Latency]);
    with.prune_dominated(&objectives, &budget);
    let kept = |o| widths(with.options(scores, o));
    assert_eq!(kept(Operand::Weight), [2, 4, 8]);
    assert_eq!(kept(Operand::Activation), [2, 4, 8]);
}

#[test]
fn a_format_space_gives_each_operand_its_own_formats_bins_and_floor() {
    let p = Profile::load(&resolve_profile("bitfusion").unwrap()).unwrap();
    let layers = Arch::Lenet5.layer_shapes((1, 28, 28), 10).unwrap();
    let f = |t: &str| t.parse::<Format>().unwrap();
    let show = |v: &[Format]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let w = vec![f("fp8e4m3"), f("4"), f("int4g32"), f("8")];
    let a = vec![f("8"), f("fp8e4m3"), f("16")];
    let mut s = SearchSpace::with_formats(layers, [w, a], false, &p, &|b| p.supports(b)).unwrap();
    assert!(s.has_named_formats());
    let (wo, ao) = (Operand::Weight, Operand::Activation);
    assert_eq!(show(s.options(0, wo)), ["4", "int4g32", "8", "fp8e4m3"]);
    // A 16-bit integer the device does not run is rounded up to full precision.
    let sixteen = if p.supports(f("16")) { "16" } else { "32" };
    assert_eq!(show(s.options(0, ao)), ["8", "fp8e4m3", sixteen]);
    assert_eq!(s.action_to_bits(0.0, wo), f("4"));
    assert_eq!(s.action_to_bits(0.3, wo), f("int4g32"));
    assert_eq!(s.action_to_bits(1.0, wo), f("fp8e4m3"));
    assert_eq!(s.action_to_bits(0.0, ao), f("8"));
    for op in [wo, ao] {
        for &v in s.options(0, op) {
            assert_eq!(s.action_to_bits(s.bits_to_action(v, op), op), v, "{v}");
        }
    }
    // An activation format the operand cannot take runs as its next option.
    let run = s.run_layer(0, LayerBits::new(f("int4g32"), f("int4g32")));
    assert_eq!(run.to_string(), "int4g32/8");
    assert_eq!(s.floor_policy().to_string(), "4/8,4/8,4/8,4/8,4/8");
    // Pruning never lets a format stand in for one it does not hold: int4 and int4g32, int8
    // and fp8 all stay whatever they cost.
    let objectives = Objectives::of(true, &[crate::pareto::Objective::Latency]);
    s.prune_dominated(&objectives, &Budget::default());
    let kept = show(s.options(0, wo));
    for name in ["4", "int4g32", "8", "fp8e4m3"] {
        assert!(kept.contains(&name.to_string()), "{name} pruned: {kept:?}");
    }
    assert_eq!(
        s.price(&s.floor_policy()),
        s.price(&Policy::parse("4/8,4/8,4/8,4/8,4/8").unwrap())
    );
}

/// An attention matmul's second operand is an activation: the space offers it no group-wise
/// format, and maps one asked of it to the next option, while its conv and linear layers keep it.
#[test]
fn attention_operands_take_no_group_wise_format() {
    use crate::model::{Attention, LayerKind};
    let p = Profile::load(&resolve_profile("bitfusion").unwrap()).unwrap();
    let layers = (Arch::Vit
        .graph((1, 28, 28), 10)
        .with_attention(Attention::Quantized))
    .unwrap()
    .shapes((1, 28, 28))
    .unwrap()
    .layers;
    let f = |t: &str| t.parse::<Format>().unwrap();
    let declared = [vec![f("int4g32"), f("8")], vec![f("8")]];
    let s = SearchSpace::with_formats(layers, declared, false, &p, &|b| p.supports(b)).unwrap();
    let matmul = (s.layers.iter())
        .position(|l| l.kind == LayerKind::Matmul)
        .unwrap();
    let linear = (s.layers.iter())
        .position(|l| l.kind != LayerKind::Matmul)
        .unwrap();
    assert_eq!(s.options(matmul, Operand::Weight), [f("8")]);
    assert_eq!(s.options(linear, Operand::Weight), [f("int4g32"), f("8")]);
    let run = s.run_layer(matmul, LayerBits::new(f("int4g32"), f("8")));
    assert_eq!(run, LayerBits::new(f("8"), f("8")));
}
