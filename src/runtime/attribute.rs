//! Which layer each node ONNX Runtime ran belongs to, and so each layer's share of a measured
//! run and the kernel it ran as.
//!
//! ORT renames the nodes it rewrites by extending the exported name (`Conv_25` runs as
//! `Conv_25_token_2`, `Gemm_50` as `fused Gemm_50`, a bias as `Gemm_61_bias_dq`), so a node is
//! the exported node whose name is its longest `_`-separated prefix (after any `fused `-style
//! word); a fused layer named after its ReLU is found by order (`attribute`). Nodes of no layer (ReLU, pools, layout transposes) are counted with the next layer
//! in execution order, the ones after the last layer with the last layer. The profiler's own
//! cost inflates every node alike, so the per-node times are used as shares of the measured
//! whole-model time, not as times.

use std::collections::HashMap;

use super::BatchTiming;
use crate::model::onnx::LayerNodes;

/// One layer's share of a measured run.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerTime {
    pub layer: String,
    /// The kernel ORT ran the layer's op as (`QLinearConv`, `QGemm`, `Conv`, ...; `?` when the
    /// op was not found among the nodes ORT ran).
    pub kernel: String,
    pub seconds: f64,
}

/// The exported node `ort_name` stands for, if any: the longest `_`-prefix present in `owner`.
fn owner_of<'a>(ort_name: &str, owner: &'a HashMap<&str, usize>) -> Option<(&'a str, usize)> {
    let mut name = ort_name.rsplit(' ').next().unwrap_or(ort_name);
    loop {
        if let Some((k, &l)) = owner.get_key_value(name) {
            return Some((k, l));
        }
        name = &name[..name.rfind('_')?];
    }
}

/// True for a node that runs a layer's arithmetic (a convolution, a GEMM or a matmul, in any
/// of ORT's float, fused or integer kernels).
fn computes(op: &str) -> bool {
    ["Conv", "Gemm", "MatMul"].iter().any(|k| op.contains(k))
}

/// Each layer of `layers` with its share of `timing`'s measured time and its kernel.
///
/// ORT names a fused node after the *last* node it absorbed (Conv + Relu runs as
/// `Relu_7_nchwc`), so names alone miss layers. When ORT ran exactly one computing node per
/// layer, the k-th of them (in execution order) is layer k's kernel; otherwise names decide.
pub fn attribute(layers: &[LayerNodes], timing: &BatchTiming) -> Vec<LayerTime> {
    let owner: HashMap<&str, usize> = (layers.iter().enumerate())
        .flat_map(|(l, n)| n.nodes.iter().map(move |name| (name.as_str(), l)))
        .collect();
    let computing = timing.nodes.iter().filter(|n| computes(&n.op)).count();
    let by_order = computing == layers.len();
    let mut raw = vec![0.0f64; layers.len()];
    let mut kernel = vec![String::from("?"); layers.len()];
    let mut pending = 0.0;
    let mut next_kernel = 0;
    for node in &timing.nodes {
        let found = match (by_order && computes(&node.op), owner_of(&node.name, &owner)) {
            (true, _) => {
                next_kernel += 1;
                kernel[next_kernel - 1] = node.op.clone();
                Some(next_kernel - 1)
            }
            (false, Some((exported, l))) => {
                if !by_order && exported == layers[l].op {
                    kernel[l] = node.op.clone();
                }
                Some(l)
            }
            (false, None) => None,
        };
        match found {
            Some(l) => {
                raw[l] += node.s + pending;
                pending = 0.0;
            }
            None => pending += node.s,
        }
    }
    if let Some(last) = raw.last_mut() {
        *last += pending;
    }
    let total: f64 = raw.iter().sum();
    let n = layers.len().max(1) as f64;
    (layers.iter().zip(raw).zip(kernel))
        .map(|((l, r), kernel)| LayerTime {
            layer: l.layer.clone(),
            kernel,
            seconds: match total > 0.0 {
                true => timing.median_s * r / total,
                false => timing.median_s / n,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::NodeTiming;
    use super::*;

    fn layer(name: &str, op: &str, nodes: &[&str]) -> LayerNodes {
        LayerNodes {
            layer: name.into(),
            op: op.into(),
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A batch of 1 measured at 1 ms in all, its nodes given as (name, kernel, µs).
    fn timing(nodes: &[(&str, &str, f64)]) -> BatchTiming {
        let nodes = (nodes.iter())
            .map(|&(name, op, us)| NodeTiming {
                name: name.into(),
                op: op.into(),
                s: us * 1e-6,
            })
            .collect();
        BatchTiming {
            batch: 1,
            median_s: 1e-3,
            repeats: 5,
            nodes,
        }
    }

    #[test]
    fn renamed_nodes_find_their_layer_and_shares_sum_to_the_measured_time() {
        let layers = [
            layer("conv1", "Conv_13", &["QuantizeLinear_2", "Conv_13"]),
            layer("conv2", "Conv_25", &["QuantizeLinear_18_pre", "Conv_25"]),
            layer("fc", "Gemm_50", &["Gemm_50"]),
        ];
        let timing = timing(&[
            ("QuantizeLinear_2", "QuantizeLinear", 10.0),
            ("Conv_13", "Conv", 30.0),
            ("QuantizeLinear_18_pre", "QuantizeLinear", 10.0),
            ("MaxPool_15", "MaxPool", 20.0),
            ("Conv_25_token_2", "QLinearConv", 20.0),
            ("fused Gemm_50", "FusedGemm", 5.0),
            ("Identity_60", "Identity", 5.0),
        ]);
        let t = attribute(&layers, &timing);
        assert_eq!(t[0].kernel, "Conv");
        assert_eq!(t[1].kernel, "QLinearConv");
        assert_eq!(t[2].kernel, "FusedGemm");
        // conv2 takes the MaxPool before it, fc the Identity after it.
        let shares: Vec<f64> = t.iter().map(|l| l.seconds / 1e-3).collect();
        for (s, want) in shares.iter().zip([0.4, 0.5, 0.1]) {
            assert!((s - want).abs() < 1e-9, "{shares:?}");
        }
    }

    #[test]
    fn a_layer_fused_under_its_relus_name_is_found_by_order() {
        let layers = [
            layer("conv1", "Conv_4", &["Conv_4"]),
            layer("fc", "Gemm_9", &["Gemm_9"]),
        ];
        let timing = timing(&[
            ("Relu_5_nchwc", "Conv", 30.0),
            ("ReorderOutput", "ReorderOutput", 10.0),
            ("Gemm_9", "Gemm", 10.0),
        ]);
        let t = attribute(&layers, &timing);
        assert_eq!(
            (t[0].kernel.as_str(), t[1].kernel.as_str()),
            ("Conv", "Gemm")
        );
        assert!((t[0].seconds - 0.6e-3).abs() < 1e-12, "{t:?}");
    }

    #[test]
    fn a_prefix_is_matched_on_whole_segments() {
        let owner: HashMap<&str, usize> = [("Conv_1", 0), ("Conv_16", 1)].into();
        assert_eq!(owner_of("Conv_16_token_3", &owner), Some(("Conv_16", 1)));
        assert_eq!(owner_of("Conv_1_nchwc", &owner), Some(("Conv_1", 0)));
        assert_eq!(owner_of("Conv_160", &owner), None);
        assert_eq!(owner_of("ReorderInput", &owner), None);
    }
}
