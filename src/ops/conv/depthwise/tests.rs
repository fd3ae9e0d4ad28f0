//! The depthwise op against plain loops that spell out its sums in their order — on every
//! instruction set this CPU has, bit for bit — and against candle's grouped convolution.

use super::*;
use crate::ops::conv::direct::kernels::{lane_sum, LANES};
use crate::ops::test_util::{max_abs_diff, randn};
use candle_core::{Device, Var};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// One call's shapes and fused parts.
#[derive(Clone, Copy, Debug)]
struct Case {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
}

/// The plain loops, one output at a time: the order of every sum the op promises.
struct Plain<'a> {
    case: Case,
    oh: usize,
    ow: usize,
    /// The input as the op sees it (quantized if the op quantizes).
    xq: Vec<f32>,
    w: &'a [f32],
    activation: Activation,
}

impl Plain<'_> {
    /// x̃[n, c] at padded position (iy, ix) − p, 0 in the padding.
    fn x(&self, plane: usize, iy: usize, ix: usize) -> f32 {
        let Case { h, w, p, .. } = self.case;
        match (iy.checked_sub(p), ix.checked_sub(p)) {
            (Some(y), Some(x)) if y < h && x < w => self.xq[plane * h * w + y * w + x],
            _ => 0.0,
        }
    }

    /// `act(Σ_tap w·x̃ + b)`, taps in order, each a fused multiply-add.
    fn forward(&self, b: &[f32]) -> Vec<f32> {
        let Case { n, c, k, s, .. } = self.case;
        let mut y = Vec::new();
        for plane in 0..n * c {
            let ch = plane % c;
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    let mut acc = 0.0f32;
                    for t in 0..k * k {
                        let v = self.x(plane, s * oy + t / k, s * ox + t % k);
                        acc = self.w[ch * k * k + t].mul_add(v, acc);
                    }
                    y.push(self.activation.apply(acc + b[ch]));
                }
            }
        }
        y
    }

    /// The masked gradient of output (oy, ox) of `plane`.
    fn g(&self, (g, y): (&[f32], &[f32]), plane: usize, oy: usize, ox: usize) -> f32 {
        let at = (plane * self.oh + oy) * self.ow + ox;
        self.activation.pass(g[at], y[at])
    }

    /// Per input pixel, the flipped taps in order over the spread gradient (0 where no output
    /// lands).
    fn input_grad(&self, up: (&[f32], &[f32])) -> Vec<f32> {
        let Case {
            n,
            c,
            h,
            w,
            k,
            s,
            p,
            ..
        } = self.case;
        let off = k as isize - 1 - p as isize;
        let out = |i: isize, outs: usize| {
            let o = i - off;
            (o >= 0 && o % s as isize == 0 && ((o / s as isize) as usize) < outs)
                .then_some((o / s as isize) as usize)
        };
        let mut dx = Vec::new();
        for plane in 0..n * c {
            for iy in 0..h {
                for ix in 0..w {
                    let mut acc = 0.0f32;
                    for t in 0..k * k {
                        let (a, b) = ((iy + t / k) as isize, (ix + t % k) as isize);
                        let v = match (out(a, self.oh), out(b, self.ow)) {
                            (Some(oy), Some(ox)) => self.g(up, plane, oy, ox),
                            _ => 0.0,
                        };
                        let weight = self.w[plane % c * k * k + k * k - 1 - t];
                        acc = weight.mul_add(v, acc);
                    }
                    dx.push(acc);
                }
            }
        }
        dx
    }

    /// Per weight, 16 lane sums (output (oy, ox) is wide pixel `oy·wq + ox`, lane by lane in
    /// order) over the examples in order, then `lane_sum`; per bias, each example's lane sums
    /// of the gradient, reduced, added in example order.
    fn param_grads(&self, up: (&[f32], &[f32])) -> (Vec<f32>, Vec<f32>) {
        let Case {
            n, c, w, k, s, p, ..
        } = self.case;
        let wq = (w + 2 * p).div_ceil(s);
        let (mut dw, mut db) = (Vec::new(), Vec::new());
        for ch in 0..c {
            let mut lanes = vec![[0.0f32; LANES]; k * k];
            let mut bias = 0.0f32;
            for i in 0..n {
                let plane = i * c + ch;
                let mut bias_lanes = [0.0f32; LANES];
                for oy in 0..self.oh {
                    for ox in 0..self.ow {
                        let (g, l) = (self.g(up, plane, oy, ox), (oy * wq + ox) % LANES);
                        for (t, lane) in lanes.iter_mut().enumerate() {
                            let v = self.x(plane, s * oy + t / k, s * ox + t % k);
                            lane[l] = g.mul_add(v, lane[l]);
                        }
                        bias_lanes[l] += g;
                    }
                }
                bias += lane_sum(&bias_lanes);
            }
            dw.extend(lanes.iter().map(|l| 0.0 + lane_sum(l)));
            db.push(bias);
        }
        (dw, db)
    }
}

/// Asserts `got` and `want` hold the same bits, naming the first value that differs.
fn assert_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let diff = got
        .iter()
        .zip(want)
        .position(|(a, b)| a.to_bits() != b.to_bits());
    if let Some(i) = diff {
        panic!("{what}: value {i} is {} and should be {}", got[i], want[i]);
    }
}

fn normal(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| scale * rng.sample::<f32, _>(rand_distr::StandardNormal))
        .collect()
}

/// Every instruction set this CPU has gives the plain loops' bits: output, dx, dW and db, at
/// strides 1, 2 and 3, paddings 0 to k (k − 1 − p negative: spread values dropped), odd and
/// one-pixel planes, every activation, with and without the input quantizer, and each
/// gradient alone as well as both.
#[test]
fn every_instruction_set_gives_the_plain_loops_bits() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(28);
    let cases = [
        (3, 5, 7, 9, 3, 1, 1),
        (2, 3, 9, 7, 3, 2, 1),
        (2, 4, 8, 8, 3, 2, 0),
        (3, 2, 11, 6, 5, 2, 2),
        (2, 3, 10, 13, 3, 3, 1),
        (2, 2, 5, 5, 1, 1, 0),
        (2, 2, 6, 7, 1, 2, 0),
        (1, 17, 4, 3, 3, 1, 2),
        (2, 2, 3, 3, 3, 2, 3),
        (2, 3, 1, 1, 3, 1, 1),
        (2, 2, 32, 32, 3, 2, 1),
    ];
    let acts = [None, Some(ActGrid { bits: 3, clip: 2.0 })];
    let activations = [Activation::Identity, Activation::Relu, Activation::Relu6];
    for (n, c, h, w, k, s, p) in cases {
        let case = Case {
            n,
            c,
            h,
            w,
            k,
            s,
            p,
        };
        // Inputs of scale 4 put some outputs past ReLU6's cap.
        let x = normal(&mut rng, n * c * h * w, 4.0);
        let wt = normal(&mut rng, c * k * k, 1.0);
        let b = normal(&mut rng, c, 1.0);
        for (act, activation) in acts.iter().flat_map(|&a| activations.map(|f| (a, f))) {
            let what = format!("{case:?} {act:?} {activation:?}");
            let mut xq = x.clone();
            if let Some(q) = act {
                q.quantize_in_place(&mut xq);
            }
            let op = |isa| Depthwise {
                stride: s,
                padding: p,
                activation,
                act,
                isa,
            };
            let d = op(Isa::Portable).plan(
                &Shape::from((n, c, h, w)),
                &Shape::from((c, 1, k, k)),
                &Shape::from(c),
            )?;
            let plain = Plain {
                case,
                oh: d.g.oh,
                ow: d.g.ow,
                xq,
                w: &wt,
                activation,
            };
            let y = plain.forward(&b);
            let g = normal(&mut rng, y.len(), 1.0);
            let up = (&g[..], &y[..]);
            let dx = plain.input_grad(up);
            let (dw, db) = plain.param_grads(up);
            for &isa in Isa::available() {
                let op = op(isa);
                let got = op.forward(&d, &x, &wt, &b)?;
                assert_bits(&got, &y, &format!("{isa:?} y {what}"));
                for want in [(true, true), (true, false), (false, true)] {
                    let (gx, gp) = op.backward(&d, (&x, &wt), up, want)?;
                    let what = format!("{isa:?} {what} wanted {want:?}");
                    assert_eq!(gx.is_some(), want.0, "{what}");
                    if let Some(gx) = gx {
                        assert_bits(&gx, &dx, &format!("dx {what}"));
                    }
                    assert_eq!(gp.is_some(), want.1, "{what}");
                    if let Some((gw, gb)) = gp {
                        assert_bits(&gw, &dw, &format!("dw {what}"));
                        assert_bits(&gb, &db, &format!("db {what}"));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Output and all three gradients against candle's grouped convolution (+ bias, ReLU or
/// ReLU6 as clamp), at strides 1 and 2 and paddings 0 and 1, on seeded draws (the kernels'
/// ReLU6 and candle's clamp part at exact ties, which these draws do not hit).
#[test]
fn matches_candle_grouped_conv() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(31);
    let cases = [
        (1, 1, Activation::Relu),
        (2, 1, Activation::Identity),
        (1, 0, Activation::Relu6),
        (2, 0, Activation::Relu),
        (2, 1, Activation::Relu6),
    ];
    for (stride, padding, activation) in cases {
        // Square: candle's own grouped backward pads both sides by the height's rounding.
        let x = Var::from_tensor(&(randn(&mut rng, &[2, 3, 7, 7])? * 4.0)?)?;
        let w = Var::from_tensor(&randn(&mut rng, &[3, 1, 3, 3])?)?;
        let b = Var::from_tensor(&randn(&mut rng, &[3])?)?;
        let got = depthwise_conv2d(
            x.as_tensor(),
            None,
            w.as_tensor(),
            b.as_tensor(),
            (stride, padding),
            activation,
        )?;
        let mut want = x
            .as_tensor()
            .conv2d(w.as_tensor(), padding, stride, 1, 3)?
            .broadcast_add(&b.as_tensor().reshape((1, 3, 1, 1))?)?;
        want = match activation {
            Activation::Identity => want,
            Activation::Relu => want.relu()?,
            Activation::Relu6 => want.clamp(0f32, 6f32)?,
        };
        let what = format!("stride {stride}, padding {padding}, {activation:?}");
        assert!(max_abs_diff(&got, &want)? < 1e-4, "y at {what}");
        let r = randn(&mut rng, want.dims())?;
        let gg = (&got * &r)?.sum_all()?.backward()?;
        let gw = (&want * &r)?.sum_all()?.backward()?;
        for (name, t) in [("dx", &x), ("dw", &w), ("db", &b)] {
            let d = max_abs_diff(gg.get(t).unwrap(), gw.get(t).unwrap())?;
            assert!(d < 1e-3, "{name} at {what}: {d}");
        }
        // Frozen weights (an attack's): the same dx, and no dW or db.
        let (wf, bf) = (w.as_tensor().detach(), b.as_tensor().detach());
        let frozen =
            depthwise_conv2d(x.as_tensor(), None, &wf, &bf, (stride, padding), activation)?;
        let gf = (&frozen * &r)?.sum_all()?.backward()?;
        assert_eq!(max_abs_diff(gf.get(&x).unwrap(), gg.get(&x).unwrap())?, 0.0);
        assert!(gf.get(&wf).is_none() && gf.get(&bf).is_none());
    }
    Ok(())
}

/// An empty input plane (padding alone makes the outputs): the bias through the activation,
/// an empty input gradient, and weight gradients of zero.
#[test]
fn an_empty_plane_gives_the_bias() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::zeros((2, 2, 0, 3), candle_core::DType::F32, &dev)?)?;
    let w = Var::from_tensor(&Tensor::ones((2, 1, 3, 3), candle_core::DType::F32, &dev)?)?;
    let b = Var::from_tensor(&Tensor::new(&[-1f32, 2.0], &dev)?)?;
    let y = depthwise_conv2d(&x, None, &w, &b, (1, 2), Activation::Relu)?;
    assert_eq!(y.dims(), [2, 2, 2, 5]);
    let want: Vec<f32> = [0.0, 2.0].iter().flat_map(|&v| [v; 10]).collect();
    assert_eq!(
        y.flatten_all()?.to_vec1::<f32>()?,
        [want.clone(), want].concat()
    );
    let grads = y.sum_all()?.backward()?;
    assert_eq!(grads.get(&x).map(|t| t.elem_count()), Some(0));
    let dw = grads.get(&w).map(|t| t.flatten_all()?.to_vec1::<f32>());
    assert_eq!(dw.transpose()?, Some(vec![0.0; 18]));
    Ok(())
}
