//! Attention's matmuls as layers: where they sit in the zoo ViT, what they count, that the float
//! network and its checkpoint stay the same, that their bits change the logits, and the
//! straight-through gradient of the quantized matmul against finite differences.

use candle_core::{DType, Device, Tensor, Var};

use super::super::vit::{vit, VitSize};
use super::super::{Arch, Attention, LayerKind, Model, Op, ShapeError};
use crate::quant::{
    calibrate_layer, calibrate_layer_signed, ClipMethod, Clips, Format, LayerBits, Policy,
    Quantizer,
};

const TINY: VitSize = VitSize {
    patch: 4,
    dim: 8,
    heads: 2,
    depth: 2,
    mlp_ratio: 2,
};

fn tiny(seed: u64) -> Model {
    Model::from_graph(vit("tiny", TINY, 3), (1, 8, 8), 3, seed).unwrap()
}

fn vec_of(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// The zoo ViT on 28x28 digits (3 blocks, 4 heads of 16 features, 17 tokens): with attention
/// quantized, each block gains `scores` right after its `qkv` and `mix` right before its
/// `proj`, 2·depth layers in all, each with heads·T·T·d_head MACs and no parameters; without,
/// none.
#[test]
fn the_zoo_vit_gains_two_layers_per_block_with_attention() {
    let g = Arch::Vit.graph((1, 28, 28), 10);
    let plain = g.shapes((1, 28, 28)).unwrap().layers;
    assert!(plain.iter().all(|l| l.kind != LayerKind::Matmul));
    let with = (g.with_attention(Attention::Quantized).unwrap())
        .shapes((1, 28, 28))
        .unwrap()
        .layers;
    assert_eq!(with.len(), plain.len() + 2 * 3);
    let names: Vec<&str> = with.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names[..7],
        [
            "patch",
            "b1.qkv",
            "b1.scores",
            "b1.mix",
            "b1.proj",
            "b1.fc1",
            "b1.fc2"
        ]
    );
    let matmuls: Vec<&str> = (with.iter())
        .filter(|l| l.kind == LayerKind::Matmul)
        .map(|l| l.name.as_str())
        .collect();
    let want = [
        "b1.scores",
        "b1.mix",
        "b2.scores",
        "b2.mix",
        "b3.scores",
        "b3.mix",
    ];
    assert_eq!(matmuls, want);
    for l in with.iter().filter(|l| l.kind == LayerKind::Matmul) {
        assert_eq!(l.macs, 4 * 17 * 17 * 16, "{}", l.name);
        assert_eq!(
            (l.params, l.weight_count(), l.operand_count()),
            (0, 0, 17 * 64)
        );
    }
    // The other layers are unchanged, their join traffic included.
    let kept: Vec<_> = with
        .iter()
        .filter(|l| l.kind != LayerKind::Matmul)
        .collect();
    assert_eq!(kept, plain.iter().collect::<Vec<_>>());
    let back = g.with_attention(Attention::Float).unwrap();
    assert_eq!(back, g);
}

/// Quantizing attention needs attention: a network without any is refused by name.
#[test]
fn a_network_without_attention_refuses_to_quantize_it() {
    let m = Model::new(Arch::Lenet5, (1, 28, 28), 10, 0).unwrap();
    let e = m.with_attention(Attention::Quantized).unwrap_err();
    assert!(
        matches!(&e, super::super::ModelError::Shape(ShapeError::NoAttention { model }) if model == "lenet5"),
        "{e}"
    );
    let m = Model::new(Arch::Lenet5, (1, 28, 28), 10, 0).unwrap();
    assert_eq!(
        m.with_attention(Attention::Float).unwrap().shapes().len(),
        5
    );
}

/// The float network is the same model: the same logits without a quantizer, the same
/// variables, and a checkpoint either one reads.
#[test]
fn quantizable_attention_keeps_the_float_network_and_its_checkpoint() {
    let m = tiny(3);
    let x = Tensor::rand(0f32, 1f32, (2, 1, 8, 8), &Device::Cpu).unwrap();
    let full = vec_of(&m.forward(&x, None).unwrap());
    let vars = m.vars().len();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    m.save(&path).unwrap();
    let q = m.with_attention(Attention::Quantized).unwrap();
    assert_eq!(q.shapes().len(), 10 + 4);
    assert_eq!(vec_of(&q.forward(&x, None).unwrap()), full);
    assert_eq!((q.vars().len(), q.weights().unwrap().len()), (vars, 10));
    let path2 = dir.path().join("q.safetensors");
    q.save(&path2).unwrap();
    let loaded = tiny(9).read_weights(&path2).unwrap();
    assert_eq!(vec_of(&loaded.forward(&x, None).unwrap()), full);
    let names = |p: &std::path::Path| {
        let map = candle_core::safetensors::load(p, &Device::Cpu).unwrap();
        let mut names: Vec<String> = map.into_keys().collect();
        names.sort();
        names
    };
    assert_eq!(names(&path), names(&path2));
}

/// Max clips of every layer's inputs and matmul operands on `x` (`calib::calibrate_model`'s
/// rule, which sits above this module).
fn clips(m: &Model, x: &Tensor) -> Clips {
    let t = m.forward_trace(x, None).unwrap();
    let input = (t.inputs.iter().zip(m.signed_inputs()))
        .map(|(v, &signed)| match signed {
            true => calibrate_layer_signed(&vec_of(v), ClipMethod::Max),
            false => calibrate_layer(&vec_of(v), ClipMethod::Max),
        })
        .collect();
    let operand = (t.operands.iter())
        .map(|v| {
            v.as_ref()
                .map(|v| calibrate_layer_signed(&vec_of(v), ClipMethod::Max))
        })
        .collect();
    Clips { input, operand }
}

/// The policy of `m` with every weighted layer at full precision and the attention matmuls at
/// `w`/`a`, with `clips`.
fn attention_at(m: &Model, w: u8, a: u8, clips: &Clips) -> Quantizer {
    let bits = |b: u8| Format::new(b).unwrap();
    let layers = (m.shapes().iter())
        .map(|l| match l.kind {
            LayerKind::Matmul => LayerBits::new(bits(w), bits(a)),
            _ => LayerBits::uniform(Format::FULL),
        })
        .collect();
    Quantizer::new(Policy::new(layers), clips.clone())
}

/// The attention layers' bits reach the logits: 2-bit attention moves them further from the
/// float logits than 8-bit, and 32/32 leaves them exactly.
#[test]
fn two_bit_attention_changes_the_logits() {
    let m = tiny(4).with_attention(Attention::Quantized).unwrap();
    let x = Tensor::rand(0f32, 1f32, (4, 1, 8, 8), &Device::Cpu).unwrap();
    let full = vec_of(&m.forward(&x, None).unwrap());
    let clips = clips(&m, &x);
    // Calibration saw both operands of every matmul layer, and the second operand of no other.
    let matmul: Vec<bool> = (m.shapes().iter())
        .map(|l| l.kind == LayerKind::Matmul)
        .collect();
    let has: Vec<bool> = clips.operand.iter().map(Option::is_some).collect();
    assert_eq!(has, matmul);
    let at = |w, a| {
        vec_of(
            &m.forward(&x, Some(&attention_at(&m, w, a, &clips)))
                .unwrap(),
        )
    };
    let off = |v: &[f32]| (v.iter().zip(&full)).fold(0f32, |o, (a, b)| o.max((a - b).abs()));
    assert_eq!(at(32, 32), full);
    let (two, eight) = (off(&at(2, 2)), off(&at(8, 8)));
    assert!(eight > 0.0, "8 bits changed nothing");
    assert!(two > 4.0 * eight, "2 bits {two} vs 8 bits {eight}");
    // Each operand on its own changes them too.
    assert!(off(&at(2, 32)) > 0.0 && off(&at(32, 2)) > 0.0);
}

/// The straight-through estimator of a quantized matmul layer: the gradient of ⟨r, y⟩ with
/// respect to each operand is the float matmul's at the quantized operands, which central
/// differences of the float op give exactly (it is bilinear, and differencing the float op
/// never crosses a grid step). Checked for the scores (signed Q and K) and the mix (unsigned
/// softmax, signed V), each at 3/4 bits.
#[test]
fn the_quantized_matmuls_pass_the_float_gradient_straight_through() {
    let m = tiny(5).with_attention(Attention::Quantized).unwrap();
    let x = Tensor::rand(0f32, 1f32, (4, 1, 8, 8), &Device::Cpu).unwrap();
    let q = attention_at(&m, 3, 4, &clips(&m, &x));
    let (scores, mix) = (2, 3);
    let (t, d) = (5, 8);
    for li in [scores, mix] {
        let node = &m.graph().nodes[m.chains[li].node];
        let a_shape: &[usize] = match node.op {
            Op::Scores { .. } => &[1, t, d],
            _ => &[1, 2, t, t],
        };
        let a0 = Tensor::rand(0f32, 1f32, a_shape, &Device::Cpu).unwrap();
        let a0 = match node.op {
            Op::Scores { .. } => ((a0 * 2.0).unwrap() - 1.0).unwrap(),
            _ => a0,
        };
        let b0 = ((Tensor::rand(0f32, 1f32, (1, t, d), &Device::Cpu).unwrap() * 2.0).unwrap()
            - 1.0)
            .unwrap();
        let (a, b) = (
            Var::from_tensor(&a0).unwrap(),
            Var::from_tensor(&b0).unwrap(),
        );
        let y = m
            .matmul_layer(li, &node.op, a.as_tensor(), b.as_tensor(), Some(&q))
            .unwrap();
        let r = Tensor::rand(-1f32, 1f32, y.dims(), &Device::Cpu).unwrap();
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        // The quantized operands, as the layer saw them.
        let lq = q.layer(li).unwrap();
        let qa = match node.op {
            Op::Scores { .. } => crate::quant::fake_quant_act_signed(&a0, lq.bits.a, lq.clip),
            _ => crate::quant::fake_quant_act(&a0, lq.bits.a, lq.clip),
        }
        .unwrap();
        let qb = crate::quant::fake_quant_act_signed(&b0, lq.bits.w, lq.operand_clip).unwrap();
        let float = |a: &Tensor, b: &Tensor| -> f64 {
            let y = match node.op {
                Op::Scores { heads, scale, .. } => super::tokens::scores(a, b, heads, scale),
                Op::Mix { heads, .. } => super::tokens::mix(a, b, heads),
                _ => unreachable!("layer {li} is an attention matmul"),
            }
            .unwrap();
            let y = (y * &r).unwrap().sum_all().unwrap();
            y.to_dtype(DType::F64).unwrap().to_scalar().unwrap()
        };
        for (which, var, at) in [(0, &a, &qa), (1, &b, &qb)] {
            let g = vec_of(grads.get(var.as_tensor()).unwrap());
            let base = vec_of(at);
            let h = 1e-2f32;
            for (i, gi) in g.iter().enumerate() {
                let moved = |dx: f32| {
                    let mut v = base.clone();
                    v[i] += dx;
                    let v = Tensor::from_vec(v, at.dims(), &Device::Cpu).unwrap();
                    match which {
                        0 => float(&v, &qb),
                        _ => float(&qa, &v),
                    }
                };
                let slope = (moved(h) - moved(-h)) / (2.0 * h as f64);
                assert!(
                    (slope - *gi as f64).abs() < 1e-3,
                    "layer {li} operand {which} element {i}: {gi} vs {slope}"
                );
            }
            assert!(g.iter().any(|&v| v != 0.0), "layer {li} operand {which}");
        }
    }
}
