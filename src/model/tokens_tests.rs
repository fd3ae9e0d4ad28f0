//! The token ops against plain-loop references, their shape rules, the input gradient of a
//! small ViT against finite differences, and its parameters through a checkpoint.

use super::super::vit::{vit, VitSize};
use super::super::{Attention, Dims, Graph, Model, Op, ShapeError};
use super::*;
use candle_core::{Device, Tensor, Var};
use rand::{rngs::StdRng, Rng, SeedableRng};

const TINY: VitSize = VitSize {
    patch: 4,
    dim: 8,
    heads: 2,
    depth: 2,
    mlp_ratio: 2,
};

fn seeded(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

fn vec_of(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
    }
}

/// erf by its Maclaurin series in f64 (converges fast for the |x| ≤ 3 used here).
fn erf(x: f64) -> f64 {
    let (mut term, mut sum) = (x, x);
    for n in 1..80 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

#[test]
fn layer_norm_gelu_and_softmax_match_plain_loops() {
    let (rows, d) = (6, 5);
    let v = seeded(rows * d, 1);
    let (g, b) = (seeded(d, 2), seeded(d, 3));
    let x = Tensor::from_vec(v.clone(), (2, 3, d), &Device::Cpu).unwrap();
    let gt = Tensor::from_vec(g.clone(), d, &Device::Cpu).unwrap();
    let bt = Tensor::from_vec(b.clone(), d, &Device::Cpu).unwrap();
    let (mut ln, mut sm) = (Vec::new(), Vec::new());
    for row in v.chunks(d) {
        let mean = row.iter().sum::<f32>() / d as f32;
        let var = row.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / d as f32;
        let sd = (var + 1e-5).sqrt();
        ln.extend((row.iter().enumerate()).map(|(j, x)| (x - mean) / sd * g[j] + b[j]));
        let max = row.iter().fold(f32::MIN, |m, &x| m.max(x));
        let total: f32 = row.iter().map(|x| (x - max).exp()).sum();
        sm.extend(row.iter().map(|x| (x - max).exp() / total));
    }
    close(&vec_of(&layer_norm(&x, &gt, &bt, 1e-5).unwrap()), &ln, 1e-5);
    close(&vec_of(&softmax(&x).unwrap()), &sm, 1e-6);
    let gelu: Vec<f32> = (v.iter())
        .map(|&x| (x as f64 * (1.0 + erf(x as f64 / 2f64.sqrt())) / 2.0) as f32)
        .collect();
    close(&vec_of(&x.gelu_erf().unwrap()), &gelu, 1e-5);
}

#[test]
fn attention_matmuls_match_plain_loops() {
    let (n, t, d, heads) = (2, 3, 4, 2);
    let dh = d / heads;
    let (q, k, v) = (
        seeded(n * t * d, 4),
        seeded(n * t * d, 5),
        seeded(n * t * d, 6),
    );
    let a = seeded(n * heads * t * t, 7);
    let tensor = |v: &[f32], shape: &[usize]| Tensor::from_slice(v, shape, &Device::Cpu).unwrap();
    let at = |x: &[f32], e: usize, i: usize, j: usize| x[(e * t + i) * d + j];
    let (mut s, mut m) = (Vec::new(), vec![0f32; n * t * d]);
    for e in 0..n {
        for h in 0..heads {
            for i in 0..t {
                for j in 0..t {
                    let dot: f32 = (0..dh)
                        .map(|f| at(&q, e, i, h * dh + f) * at(&k, e, j, h * dh + f))
                        .sum();
                    s.push(dot * 0.5);
                }
                for f in 0..dh {
                    m[(e * t + i) * d + h * dh + f] = (0..t)
                        .map(|j| a[((e * heads + h) * t + i) * t + j] * at(&v, e, j, h * dh + f))
                        .sum();
                }
            }
        }
    }
    let got = scores(&tensor(&q, &[n, t, d]), &tensor(&k, &[n, t, d]), heads, 0.5).unwrap();
    assert_eq!(got.dims(), [n, heads, t, t]);
    close(&vec_of(&got), &s, 1e-5);
    let at_t = tensor(&a, &[n, heads, t, t]);
    close(
        &vec_of(&mix(&at_t, &tensor(&v, &[n, t, d]), heads).unwrap()),
        &m,
        1e-5,
    );
}

#[test]
fn tokens_class_token_and_position_follow_the_layout() {
    // A (2, 2, 2) map: channel c, pixel p holds 10c + p; token p is its pixel's channels.
    let x = Tensor::new(&[0f32, 1., 2., 3., 10., 11., 12., 13.], &Device::Cpu).unwrap();
    let seq = tokens(&x.reshape((1, 2, 2, 2)).unwrap()).unwrap();
    assert_eq!(vec_of(&seq), [0., 10., 1., 11., 2., 12., 3., 13.]);
    let cls = Tensor::new(&[-1f32, -2.], &Device::Cpu).unwrap();
    let with = class_token(&seq, &cls).unwrap();
    assert_eq!(with.dims(), [1, 5, 2]);
    assert_eq!(vec_of(&token(&with, 0).unwrap()), [-1., -2.]);
    assert_eq!(vec_of(&token(&with, 2).unwrap()), [1., 11.]);
    let pos = Tensor::ones((5, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert_eq!(
        vec_of(&pos_embed(&with, &pos).unwrap())[..4],
        [0., -1., 1., 11.]
    );
}

#[test]
fn a_vit_graph_has_per_token_layers_and_signed_inputs() {
    // 8x8 at patch 4: 4 tokens and the class token; 2 blocks of qkv, proj, fc1, fc2.
    let g = vit("tiny", TINY, 3);
    let s = g.shapes((1, 8, 8)).unwrap();
    let names: Vec<&str> = s.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names[..5],
        ["patch", "b1.qkv", "b1.proj", "b1.fc1", "b1.fc2"]
    );
    assert_eq!(s.layers.len(), 10);
    let qkv = &s.layers[1];
    assert_eq!((qkv.in_ch, qkv.out_ch, qkv.in_hw), (8, 24, (5, 1)));
    assert_eq!(qkv.macs, 5 * 8 * 24);
    assert_eq!(
        s.layers[9].macs,
        8 * 3,
        "the head reads the class token alone"
    );
    // The residual adds are charged to the layer that writes the branch: proj and fc2.
    assert_eq!(
        (s.layers[2].residual, s.layers[4].residual),
        (2 * 40, 2 * 40)
    );
    let scores = g
        .nodes
        .iter()
        .position(|n| matches!(n.op, Op::Scores { .. }));
    assert_eq!(s.dims[scores.unwrap()], Dims::Map(2, 5, 5));
    let signed = signed_inputs(&g, &s.dims, &s.layer_nodes);
    assert_eq!(
        signed.iter().filter(|&&b| b).count(),
        9,
        "all but the patch conv"
    );
    assert!(!signed[0]);
}

/// One test per shape rule of the token ops.
#[test]
fn token_ops_refuse_wrong_shapes() {
    let rule = |op: Op, parts: &[Dims]| infer(&op, parts).unwrap_err();
    let seq = Dims::Seq(5, 8);
    assert!(rule(
        Op::Scores {
            name: "s".into(),
            heads: 3,
            scale: 1.0,
            attention: Attention::Float,
        },
        &[seq, seq]
    )
    .contains("3 heads"));
    assert!(rule(
        Op::Scores {
            name: "s".into(),
            heads: 2,
            scale: 1.0,
            attention: Attention::Float,
        },
        &[seq, Dims::Seq(4, 8)]
    )
    .contains("differ"));
    let bad = Dims::Map(2, 4, 5);
    let mix = Op::Mix {
        name: "m".into(),
        heads: 2,
        attention: Attention::Float,
    };
    assert!(rule(mix, &[bad, seq]).contains("(heads, T, T)"));
    assert!(rule(Op::Token { index: 5 }, &[seq]).contains("token 5 of 5"));
    assert!(rule(Op::Tokens, &[seq]).contains("feature map"));
    let ln = |eps| Op::LayerNorm {
        name: "ln".into(),
        eps,
    };
    assert!(rule(ln(1e-5), &[bad]).contains("normalizes tokens"));
    assert!(rule(ln(0.0), &[seq]).contains("epsilon"));
    assert!(rule(Op::ClassToken { name: "c".into() }, &[Dims::Flat(3)]).contains("sequence"));
    // Joins of sequences other than Add are refused by the graph.
    let mut g = Graph::new("cat");
    g.then(Op::Conv {
        name: "c".into(),
        out: 2,
        kernel: 2,
        stride: 2,
        padding: 0,
        groups: 1,
    });
    let t = g.then(Op::Tokens);
    g.push(Op::Concat, &[t, t]);
    let err = g.shapes((1, 4, 4)).unwrap_err();
    assert!(matches!(err, ShapeError::Invalid { rule, .. } if rule.contains("token sequences")));
}

/// The input gradient of a small ViT (every token op on the path) equals finite differences
/// of the logits, in the training pass and the attacks' frozen pass; every parameter,
/// LayerNorm's and the embeddings' included, gets a gradient. GELU, softmax and LayerNorm are
/// smooth, so the central difference alone is checked.
#[test]
fn a_vit_has_the_finite_difference_input_gradient() {
    let m = Model::from_graph(vit("tiny", TINY, 3), (1, 8, 8), 3, 11).unwrap();
    let r = Tensor::new(&[[1f32, -2.0, 0.5]], &Device::Cpu).unwrap();
    let f = |v: &[f32]| -> f64 {
        let x = Tensor::from_slice(v, (1, 1, 8, 8), &Device::Cpu).unwrap();
        let y = m
            .forward(&x, None)
            .unwrap()
            .to_dtype(candle_core::DType::F64);
        let r = r.to_dtype(candle_core::DType::F64).unwrap();
        (y.unwrap() * r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    for seed in 0..2 {
        let flat: Vec<f32> = seeded(64, 20 + seed)
            .iter()
            .map(|v| (v + 2.0) / 4.0)
            .collect();
        let x = Var::from_vec(flat.clone(), (1, 1, 8, 8), &Device::Cpu).unwrap();
        for frozen in [false, true] {
            let y = match frozen {
                true => m.forward_frozen(x.as_tensor(), None).unwrap(),
                false => m.forward(x.as_tensor(), None).unwrap(),
            };
            let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g = vec_of(grads.get(&x).unwrap());
            let h = 1e-2f32;
            let mut worst = 0f64;
            for (i, gi) in g.iter().enumerate() {
                let at = |d: f32| {
                    let mut v = flat.clone();
                    v[i] += d;
                    f(&v)
                };
                let slope = (at(h) - at(-h)) / (2.0 * h as f64);
                worst = worst.max((slope - *gi as f64).abs());
            }
            let scale = g.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
            assert!(scale > 1e-3, "seed {seed}: the gradient vanished: {scale}");
            assert!(
                worst <= 1e-3 + 1e-2 * scale,
                "seed {seed}: {worst} vs {scale}"
            );
            let params = m.vars().iter().filter(|v| grads.get(v).is_some()).count();
            assert_eq!(
                params,
                if frozen { 0 } else { m.vars().len() },
                "frozen {frozen}"
            );
        }
    }
}

/// The LayerNorms' and embeddings' parameters go through a checkpoint with the layers'.
#[test]
fn a_vit_checkpoint_keeps_every_parameter() {
    let m = Model::from_graph(vit("tiny", TINY, 3), (1, 8, 8), 3, 5).unwrap();
    let x = Tensor::rand(0f32, 1f32, (2, 1, 8, 8), &Device::Cpu).unwrap();
    // Move γ off its initial 1 so a load that skipped it would show.
    for v in m.vars() {
        v.set(&(v.as_tensor() * 1.5).unwrap()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vit.safetensors");
    m.save(&path).unwrap();
    let fresh = Model::from_graph(vit("tiny", TINY, 3), (1, 8, 8), 3, 6).unwrap();
    let loaded = fresh.read_weights(&path).unwrap();
    let logits = |m: &Model| vec_of(&m.forward(&x, None).unwrap());
    assert_eq!(logits(&loaded), logits(&m));
    assert_eq!(
        m.vars().len(),
        10 * 2 + 5 * 2 + 2,
        "10 layers, 5 LayerNorms, 2 embeddings"
    );
}

/// At 8 bits a ViT's quantized logits stay near its full-precision ones: its linear layers'
/// signed inputs (LayerNorm outputs are half negative) keep their sign on the signed grid,
/// where the unsigned grid would zero half of every input.
#[test]
fn an_8_bit_vit_keeps_its_negative_activations() {
    use crate::quant::Quantizer;
    use crate::quant::{calibrate_layer, calibrate_layer_signed, ClipMethod, Format, Policy};
    let m = Model::from_graph(vit("tiny", TINY, 3), (1, 8, 8), 3, 2).unwrap();
    let x = Tensor::rand(0f32, 1f32, (4, 1, 8, 8), &Device::Cpu).unwrap();
    let trace = m.forward_trace(&x, None).unwrap();
    let clips = (trace.inputs.iter().zip(m.signed_inputs()))
        .map(|(t, &signed)| match signed {
            true => calibrate_layer_signed(&vec_of(t), ClipMethod::Max),
            false => calibrate_layer(&vec_of(t), ClipMethod::Max),
        })
        .collect::<Vec<_>>();
    let q = Quantizer::new(Policy::uniform(10, Format::new(8).unwrap()), clips);
    let full = vec_of(&trace.logits);
    let quant = vec_of(&m.forward(&x, Some(&q)).unwrap());
    let spread = full.iter().fold(0f32, |a, v| a.max(v.abs()));
    let off = full
        .iter()
        .zip(&quant)
        .fold(0f32, |a, (x, y)| a.max((x - y).abs()));
    assert!(off > 0.0, "the quantizer changed nothing");
    assert!(off < 0.05 * spread, "{off} against logits up to {spread}");
}
