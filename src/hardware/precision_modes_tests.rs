//! The mode-matching rule (`holds`, `select`), on hand-made modes and on the shipped t4, h100 and
//! htp-npu profiles, and the rules of a mode's `*_bits`/`*_format` fields.

use std::path::Path;

use super::*;
use crate::hardware::{CostModel, Profile, BUILTIN_PROFILE_DIR};
use crate::model::LayerShape;

fn f(text: &str) -> Format {
    text.parse().unwrap()
}

fn bits(w: &str, a: &str) -> LayerBits {
    LayerBits::new(f(w), f(a))
}

fn shipped(name: &str) -> Profile {
    Profile::load(&Path::new(BUILTIN_PROFILE_DIR).join(format!("{name}.toml"))).unwrap()
}

/// The mode `profile` runs `bits` in (its name, as `Cost::mode` reports it).
fn mode_of(profile: &Profile, w: &str, a: &str) -> String {
    profile.compute().run(bits(w, a)).unwrap().mode
}

/// A compute-bound layer at batch 64 (256→256, k3 on 56x56: 1.85 GMACs per example), so its
/// compute time shows the mode's rate.
fn big_conv() -> LayerShape {
    LayerShape::conv("big", 256, 256, 3, 1, 1, (56, 56))
}

#[test]
fn each_operand_rule() {
    use Holding::{Native, Widened};
    let cases = [
        // integers: natively in an integer at least as wide
        ("int8", "4", Some(Native)),
        ("int4", "int4g32", Some(Native)),
        ("int4", "8", None),
        ("int16", "16", Some(Native)),
        // integers in floats whose significand holds every bit, and in full precision
        ("fp8e4m3", "4", Some(Widened)),
        ("fp8e4m3", "5", None),
        ("fp8e5m2", "4", None),
        ("bf16", "8", Some(Widened)),
        ("fp16", "11", Some(Widened)),
        ("fp16", "12", None),
        ("fp16", "int4g128", Some(Widened)),
        ("32", "16", Some(Widened)),
        // minifloats: natively in their own format, widened into one that holds every value
        ("fp8e4m3", "fp8e4m3", Some(Native)),
        ("fp8e5m2", "fp8e4m3", None),
        ("fp16", "fp8e4m3", Some(Widened)),
        ("fp16", "fp8e5m2", Some(Widened)),
        ("bf16", "fp8e4m3", Some(Widened)),
        ("bf16", "fp16", None),
        ("fp16", "bf16", None),
        ("32", "bf16", Some(Widened)),
        // never a float in an integer mode, never full precision in anything narrower
        ("int8", "fp8e4m3", None),
        ("16", "fp16", None),
        ("fp16", "32", None),
        ("32", "32", Some(Native)),
    ];
    for (mode, operand, want) in cases {
        assert_eq!(holds(f(mode), f(operand)), want, "{operand} in {mode}");
    }
}

/// Guards every integer policy's price on the profiles written before formats: a layer of
/// integers (or full precision) runs in the mode the width-only rule (`w_bits ≥ w`, `a_bits ≥ a`,
/// 32 above all) picked, on every shipped profile and every (w, a) in (1..=8 ∪ {32})².
#[test]
fn integer_layers_run_where_the_width_rule_ran_them() {
    for file in crate::hardware::profile_files(Path::new(BUILTIN_PROFILE_DIR)).unwrap() {
        let p = Profile::load(&file).unwrap();
        let crate::hardware::ComputeModel::PrecisionModes(m) = p.compute() else {
            continue;
        };
        let widths: Vec<u8> = (1..=8).chain([32]).collect();
        for &w in &widths {
            for &a in &widths {
                let holding = (m.modes.iter())
                    .filter(|x| x.w.width() >= w && x.a.width() >= a)
                    .filter(|x| x.w.is_plain() && x.a.is_plain());
                let width_rule = match m.selection {
                    Selection::Fastest => holding.min_by(|x, y| {
                        (y.macs_per_cycle.total_cmp(&x.macs_per_cycle))
                            .then(x.mac_j.total_cmp(&y.mac_j))
                    }),
                    Selection::Narrowest => holding.min_by(|x, y| {
                        (u32::from(x.w.width()) + u32::from(x.a.width()))
                            .cmp(&(u32::from(y.w.width()) + u32::from(y.a.width())))
                            .then(y.macs_per_cycle.total_cmp(&x.macs_per_cycle))
                    }),
                };
                let b = LayerBits::new(Format::new(w).unwrap(), Format::new(a).unwrap());
                assert_eq!(
                    m.select(b).map(|x| &x.name),
                    width_rule.map(|x| &x.name),
                    "{} at {w}/{a}",
                    p.name()
                );
            }
        }
    }
}

#[test]
fn t4_runs_fp8_in_its_fp16_mode_and_int4g_in_int4() {
    let t4 = shipped("t4");
    assert_eq!(mode_of(&t4, "fp8e4m3", "fp8e4m3"), "fp16-tc");
    assert_eq!(mode_of(&t4, "fp8e5m2", "fp16"), "fp16-tc");
    assert_eq!(mode_of(&t4, "fp16", "fp16"), "fp16-tc");
    // Turing has no bf16, and fp16's 5-bit exponent cannot hold bf16's range.
    assert_eq!(mode_of(&t4, "bf16", "bf16"), "fp32-cuda");
    assert_eq!(mode_of(&t4, "int4g32", "4"), "int4-tc");
    assert_eq!(mode_of(&t4, "int4g128", "8"), "int8-tc");
    // Weight-only int4 with fp16 activations: the int4 weights convert exactly into fp16.
    assert_eq!(mode_of(&t4, "int4g128", "fp16"), "fp16-tc");
    // An fp8 layer on t4 costs what an fp16 layer does: it runs (and is stored) as fp16.
    let (fp8, fp16) = (bits("fp8e4m3", "fp8e4m3"), bits("fp16", "fp16"));
    let layer = big_conv();
    assert_eq!(
        t4.layer_cost(&layer, fp8).unwrap(),
        t4.layer_cost(&layer, fp16).unwrap()
    );
}

#[test]
fn h100_prices_fp8_at_the_int8_rate_and_twice_the_fp16_rate() {
    let h100 = shipped("h100");
    let layer = big_conv();
    let cost = |w: &str, a: &str| h100.layer_cost(&layer, bits(w, a)).unwrap();
    let (fp8, int8, fp16) = (
        cost("fp8e4m3", "fp8e4m3"),
        cost("8", "8"),
        cost("fp16", "fp16"),
    );
    assert_eq!(
        (fp8.mode.as_str(), int8.mode.as_str(), fp16.mode.as_str()),
        ("fp8-tc-e4m3", "int8-tc", "fp16-tc")
    );
    // 499747 and 249874 MACs/cycle: fp8 and int8 alike, fp16 at half (to rounding).
    assert_eq!(fp8.compute_s, int8.compute_s);
    assert!((fp16.compute_s / fp8.compute_s - 2.0).abs() < 1e-5);
    assert!(fp8.latency_s < fp16.latency_s && fp8.energy_j < fp16.energy_j);
    // Every pairing of the two fp8 formats has its mode; bf16 its own.
    assert_eq!(cost("fp8e5m2", "fp8e4m3").mode, "fp8-tc-e5m2xe4m3");
    assert_eq!(cost("bf16", "bf16").mode, "bf16-tc");
    // An fp8 weight with fp16 activations runs in fp16, its weight stored packed at 8 bits.
    let mixed = cost("fp8e4m3", "fp16");
    assert_eq!(mixed.mode, "fp16-tc");
    assert_eq!(mixed.compute_s, fp16.compute_s);
    // Hopper has no int4 tensor cores: int4 runs at the int8 rate.
    assert_eq!(cost("4", "4").mode, "int8-tc");
}

#[test]
fn htp_npu_runs_w8a16_in_its_w8a16_mode() {
    let npu = shipped("htp-npu");
    assert_eq!(mode_of(&npu, "8", "16"), "int8-w8a16");
    assert_eq!(mode_of(&npu, "4", "12"), "int8-w8a16");
    assert_eq!(mode_of(&npu, "8", "8"), "int8-w8a8");
    assert_eq!(mode_of(&npu, "8", "fp16"), "fp16");
    assert_eq!(mode_of(&npu, "fp8e4m3", "fp8e4m3"), "fp16");
    assert_eq!(mode_of(&npu, "32", "8"), "fp32-cpu");
    // Through the profile: a W8A16 policy is accepted (16 is an activation width, outside
    // `precisions`) and priced at half the int8 rate.
    let layer = big_conv();
    let w8a16 = npu.layer_cost(&layer, bits("8", "16")).unwrap();
    let w8a8 = npu.layer_cost(&layer, bits("8", "8")).unwrap();
    assert!((w8a16.compute_s / w8a8.compute_s - 2.0).abs() < 1e-12);
}

/// A ModeFile of integers serializes exactly as before formats (no null format fields), so a
/// profile's digest, and the resume check built on it, are unchanged.
#[test]
fn an_integer_mode_serializes_as_before_formats() {
    let m: ModeFile = toml::from_str(
        "name = \"int8\"\nw_bits = 8\na_bits = 8\nmacs_per_cycle = 16.0\nmac_pj = 1.0",
    )
    .unwrap();
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        r#"{"name":"int8","w_bits":8,"a_bits":8,"macs_per_cycle":16.0,"mac_pj":1.0}"#
    );
}

fn check(fields: &str) -> Result<Mode, HardwareError> {
    let text = format!("name = \"m\"\n{fields}\nmacs_per_cycle = 16.0\nmac_pj = 1.0");
    let file: ModeFile = toml::from_str(&text).unwrap();
    file.check(Path::new("p.toml"), 2)
}

#[test]
fn a_mode_names_each_operand_by_width_or_format() {
    let m = check("w_bits = 8\na_format = \"fp16\"").unwrap();
    assert_eq!((m.w, m.a), (f("8"), f("fp16")));
    let m = check("w_bits = 8\nw_format = \"fp8e5m2\"\na_bits = 16").unwrap();
    assert_eq!((m.w, m.a), (f("fp8e5m2"), f("16")));
    let m = check("w_format = \"fp32\"\na_format = \"int8\"").unwrap();
    assert_eq!((m.w, m.a), (Format::FULL, f("8")));
}

#[test]
fn an_unknown_format_name_is_refused_by_field_and_value() {
    let e = check("w_format = \"fp9\"\na_bits = 8").unwrap_err();
    assert!(matches!(e, HardwareError::ModeFormatUnknown { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("p.toml: field `compute.modes[2].w_format` must name a format")
            && msg.contains("fp8e4m3")
            && msg.contains("got `fp9`"),
        "{msg}"
    );
}

#[test]
fn a_mode_format_must_be_one_a_mode_computes_in() {
    for (fields, field) in [
        ("w_format = \"int4g32\"\na_bits = 8", "w_format"),
        ("w_format = \"int16\"\na_bits = 8", "w_format"),
        ("w_bits = 8\na_format = \"int4g128\"", "a_format"),
    ] {
        let e = check(fields).unwrap_err();
        assert!(
            matches!(e, HardwareError::ModeFormatNotComputed { .. }),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains(&format!("field `compute.modes[2].{field}`")),
            "{e}"
        );
    }
}

#[test]
fn bits_and_format_must_agree_on_width() {
    let e = check("w_bits = 16\nw_format = \"fp8e4m3\"\na_bits = 8").unwrap_err();
    assert!(matches!(e, HardwareError::ModeFormatWidth { bits: 16, .. }));
    assert!(e.to_string().contains("8 bits wide"), "{e}");
}

#[test]
fn an_operand_needs_bits_or_format() {
    let e = check("w_bits = 8").unwrap_err();
    assert!(matches!(e, HardwareError::ModeOperandMissing { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("`compute.modes[2].a_bits` or `compute.modes[2].a_format`"),
        "{e}"
    );
}

#[test]
fn activations_take_up_to_16_bits_weights_up_to_8() {
    assert_eq!(check("w_bits = 8\na_bits = 16").unwrap().a, f("16"));
    let e = check("w_bits = 16\na_bits = 8").unwrap_err();
    assert!(e.to_string().contains("must be 1..=8 or 32"), "{e}");
    let e = check("w_bits = 8\na_bits = 17").unwrap_err();
    assert!(e.to_string().contains("must be 1..=16 or 32"), "{e}");
}
