//! The passes against their references: fusion changes no value, grouped convs equal candle's,
//! the folded BatchNorm equals the unfolded one.

use super::super::Arch;
use super::*;
use crate::ops::test_util::max_abs_diff;
use crate::quant::{Format, Policy};
use candle_core::Device;

/// The conv + pool fusion changes no value: logits and every parameter's gradient equal
/// the unfused pass's, bit for bit, in full precision and quantized.
#[test]
fn fused_pool_gives_the_unfused_logits_and_gradients() {
    for arch in [Arch::Lenet5, Arch::Cnn6] {
        let m = Model::new(arch, (1, 28, 28), 10, 4).unwrap();
        let n = m.shapes().len();
        let x = Tensor::rand(0f32, 1f32, (3, 1, 28, 28), &Device::Cpu).unwrap();
        let bits = Policy::uniform(n, Format::new(4).unwrap());
        let quant = Quantizer::new(bits, vec![[1.0; 8]; n]);
        for q in [None, Some(&quant)] {
            let pass = |fuse: bool| {
                let pass = Pass {
                    fuse_pool: fuse,
                    ..Model::pass(Weights::Train)
                };
                let logits = m.run(&x, q, pass, &mut |_, _, _| Ok(())).unwrap();
                let grads = logits.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let g: Vec<Vec<f32>> = m
                    .vars()
                    .iter()
                    .map(|v| flat(grads.get(v).unwrap()))
                    .collect();
                (flat(&logits), g)
            };
            assert_eq!(
                pass(true),
                pass(false),
                "{} quantized: {}",
                arch.name(),
                q.is_some()
            );
        }
    }
}

/// A grouped conv (one op per group) gives candle's grouped convolution, and its
/// gradients, within float tolerance.
#[test]
fn grouped_conv_matches_candle() {
    use crate::model::{Graph, Op};
    let mut g = Graph::new("grouped");
    g.then(Op::Conv {
        name: "c".into(),
        out: 4,
        kernel: 3,
        stride: 1,
        padding: 1,
        groups: 1,
    });
    g.then(Op::Relu);
    g.then(Op::Conv {
        name: "dw".into(),
        out: 4,
        kernel: 3,
        stride: 2,
        padding: 1,
        groups: 2,
    });
    g.then(Op::Flatten);
    g.then(Op::Linear {
        name: "fc".into(),
        out: 3,
    });
    let m = Model::from_graph(g, (2, 7, 7), 3, 5).unwrap();
    let x = Tensor::rand(0f32, 1f32, (2, 2, 7, 7), &Device::Cpu).unwrap();
    let got = m.forward(&x, None).unwrap();
    let p: Vec<_> = m.params.iter().flatten().collect();
    let h = x
        .conv2d(p[0].w.as_tensor(), 1, 1, 1, 1)
        .unwrap()
        .broadcast_add(&p[0].b.as_tensor().reshape((1, 4, 1, 1)).unwrap())
        .unwrap()
        .relu()
        .unwrap();
    let h = h
        .conv2d(p[1].w.as_tensor(), 1, 2, 1, 2)
        .unwrap()
        .broadcast_add(&p[1].b.as_tensor().reshape((1, 4, 1, 1)).unwrap())
        .unwrap()
        .flatten_from(1)
        .unwrap();
    let want = h
        .matmul(&p[2].w.as_tensor().t().unwrap())
        .unwrap()
        .broadcast_add(p[2].b.as_tensor())
        .unwrap();
    let diff = |a: &Tensor, b: &Tensor| max_abs_diff(a, b).unwrap();
    assert!(diff(&got, &want) < 1e-5, "{}", diff(&got, &want));
    let (gg, gw) = (
        got.sum_all().unwrap().backward().unwrap(),
        want.sum_all().unwrap().backward().unwrap(),
    );
    let w = p[1].w.as_tensor();
    assert!(diff(gg.get(w).unwrap(), gw.get(w).unwrap()) < 1e-4);
}

/// ResNet-20 trains with batch statistics, and afterwards its folded forward (what the
/// search quantizes) equals the unfolded one (conv, then BN with the running statistics).
#[test]
fn resnet20_folded_forward_equals_conv_then_batchnorm() {
    let m = Model::new(Arch::Resnet20, (3, 16, 16), 10, 1).unwrap();
    let x = Tensor::rand(0f32, 1f32, (4, 3, 16, 16), &Device::Cpu).unwrap();
    for _ in 0..3 {
        m.forward_train(&x).unwrap();
    }
    let (mean, _) = m.params[0].as_ref().unwrap().bn.as_ref().unwrap().stats();
    assert!(mean.iter().any(|&v| v != 0.0), "running mean never moved");
    let folded = m.forward(&x, None).unwrap();
    let pass = Pass {
        fold_bn: false,
        ..Model::pass(Weights::Train)
    };
    let unfolded = m.run(&x, None, pass, &mut |_, _, _| Ok(())).unwrap();
    assert_eq!(folded.dims(), &[4, 10]);
    let diff = max_abs_diff(&folded, &unfolded).unwrap();
    let scale = unfolded
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        diff <= 1e-4 * scale.max(1.0),
        "{diff} against logits up to {scale}"
    );
    let trace = m.forward_trace(&x, None).unwrap();
    assert_eq!(trace.inputs.len(), 20);
    assert_eq!(trace.outputs[19].dims(), &[4, 10]);
}

/// A graph of every op the torchvision families add: HardSwish, a squeeze-and-excitation gate
/// (HardSigmoid, Mul), SiLU, a channel split (Channels), Sigmoid, Concat, ChannelShuffle, a
/// fixed per-channel affine (Affine) and padded, overlapping and ceil-mode max-pools.
fn torchvision_ops() -> Model {
    use crate::model::{Graph, Op};
    let conv = |name: &str, out: usize, groups: usize| Op::Conv {
        name: name.into(),
        out,
        kernel: 3,
        stride: 1,
        padding: 1,
        groups,
    };
    let mut g = Graph::new("ops");
    g.then(conv("c0", 4, 1));
    let act = g.then(Op::HardSwish);
    g.then(Op::GlobalAvgPool);
    g.then(conv("squeeze", 2, 1));
    g.then(Op::Relu);
    g.then(conv("excite", 4, 1));
    let gate = g.then(Op::HardSigmoid);
    g.push(Op::Mul, &[gate, act]);
    g.then(conv("c1", 4, 2));
    let silu = g.then(Op::Silu);
    let left = g.push(Op::Channels { start: 0, len: 2 }, &[silu]);
    g.push(Op::Channels { start: 2, len: 2 }, &[silu]);
    g.then(conv("branch", 2, 1));
    let right = g.then(Op::Sigmoid);
    g.push(Op::Concat, &[left, right]);
    g.then(Op::ChannelShuffle { groups: 2 });
    g.then(Op::Affine {
        scale: vec![0.5, -1.0, 2.0, 1.5],
        shift: vec![0.1, 0.0, -0.2, 0.3],
    });
    g.then(Op::MaxPool {
        k: 3,
        stride: 2,
        pad: 1,
        ceil: false,
    });
    g.then(Op::MaxPool {
        k: 2,
        stride: 2,
        pad: 0,
        ceil: true,
    });
    g.then(Op::Flatten);
    g.then(Op::Linear {
        name: "fc".into(),
        out: 3,
    });
    Model::from_graph(g, (2, 6, 6), 3, 7).unwrap()
}

/// The input gradient through every new op equals central finite differences of the logits,
/// in full precision and through the frozen pass the attacks use, at several seeded inputs.
/// ReLU, max-pool and the hard gates are piecewise, and the squeeze-excite ReLU sees every
/// input through the global pool: a kink within one step of the sampled point bends the
/// central difference of many coordinates at once. The one-sided difference on the kink-free
/// side still equals the gradient, so each coordinate passes if its central, forward or
/// backward difference at either step matches; a wrong gradient matches none of them.
#[test]
fn the_torchvision_ops_have_the_finite_difference_input_gradient() {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let m = torchvision_ops();
    let r = Tensor::new(&[[1f32, -2.0, 0.5]], &Device::Cpu).unwrap();
    let f = |x: &Tensor| -> f32 {
        let y = m.forward(x, None).unwrap();
        (y * &r).unwrap().sum_all().unwrap().to_scalar().unwrap()
    };
    for seed in 0..4 {
        let mut rng = StdRng::seed_from_u64(seed);
        let flat: Vec<f32> = (0..72).map(|_| rng.random::<f32>()).collect();
        let x = Tensor::from_vec(flat.clone(), (1, 2, 6, 6), &Device::Cpu).unwrap();
        let xv = candle_core::Var::from_tensor(&x).unwrap();
        let y = m.forward_frozen(xv.as_tensor(), None).unwrap();
        let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g = grads.get(&xv).unwrap().flatten_all().unwrap();
        let g = g.to_vec1::<f32>().unwrap();
        // Central, forward and backward differences of coordinate `i` at step `h`.
        let slopes = |i: usize, h: f32| {
            let at = |d: f32| {
                let mut v = flat.clone();
                v[i] += d;
                f(&Tensor::from_vec(v, (1, 2, 6, 6), &Device::Cpu).unwrap())
            };
            let (lo, mid, hi) = (at(-h), at(0.0), at(h));
            [(hi - lo) / (2.0 * h), (hi - mid) / h, (mid - lo) / h]
        };
        let mut worst = 0f32;
        for (i, gi) in g.iter().enumerate() {
            let off = [1e-2, 2e-3]
                .into_iter()
                .flat_map(|h| slopes(i, h))
                .fold(f32::INFINITY, |m, d| m.min((d - gi).abs()));
            worst = worst.max(off);
        }
        let scale = g.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 1e-3, "seed {seed}: the gradient vanished: {scale}");
        assert!(
            worst <= 2e-3 + 1e-2 * scale,
            "seed {seed}: {worst} against gradients up to {scale}"
        );
        // The parameters train through them too.
        let grads = m.forward(&x, None).unwrap().sum_all().unwrap();
        let grads = grads.backward().unwrap();
        for v in m.vars() {
            assert!(grads.get(&v).is_some(), "no gradient for a parameter");
        }
    }
}

/// The channel shuffle and split by hand: 4 channels in 2 groups become 0, 2, 1, 3.
#[test]
fn channel_shuffle_interleaves_the_groups() {
    let m = Model::new(Arch::Mlp, (1, 28, 28), 10, 0).unwrap();
    let x = Tensor::new(&[0f32, 1.0, 2.0, 3.0], &Device::Cpu)
        .unwrap()
        .reshape((1, 4, 1, 1))
        .unwrap();
    let pass = Model::pass(Weights::Train);
    let y = m
        .node_op(1, &Op::ChannelShuffle { groups: 2 }, &[x], pass)
        .unwrap();
    let y = m
        .node_op(1, &Op::Channels { start: 1, len: 3 }, &[y], pass)
        .unwrap();
    assert_eq!(
        y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        [2.0, 1.0, 3.0]
    );
}
