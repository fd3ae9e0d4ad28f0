//! Shape inference of graphs: residual blocks, shortcuts, groups and the new joins.

use super::*;

fn conv(name: &str, out: usize, stride: usize) -> Op {
    Op::Conv {
        name: name.into(),
        out,
        kernel: 3,
        stride,
        padding: 1,
        groups: 1,
    }
}

/// A residual block with a BN on each conv: shapes, the add's traffic on the second conv,
/// and the errors for mismatched adds, a shared BN input and a missing flatten.
#[test]
fn residual_block_shapes_and_errors() {
    let mut g = Graph::new("block");
    let stem = g.then(conv("c0", 8, 1));
    g.then(Op::Relu);
    let a = g.then(conv("c1", 8, 1));
    g.then(Op::BatchNorm);
    g.then(Op::Relu);
    g.then(conv("c2", 8, 1));
    let bn = g.then(Op::BatchNorm);
    let add = g.push(Op::Add, &[bn, stem + 1]);
    g.then(Op::Relu);
    g.then(Op::GlobalAvgPool);
    g.then(Op::Flatten);
    g.then(Op::Linear {
        name: "fc".into(),
        out: 10,
    });
    let s = g.shapes((3, 8, 8)).unwrap();
    assert_eq!(s.layers.len(), 4);
    assert_eq!(s.layer_nodes[1], a);
    assert_eq!(s.dims[add], Dims::Map(8, 8, 8));
    assert_eq!(s.layers[2].residual, 2 * 8 * 8 * 8);
    assert_eq!(s.layers[1].residual, 0);
    assert_eq!(s.layers[3].in_ch, 8);

    let mut bad = g.clone();
    bad.nodes[add].inputs = vec![bn, 0];
    let e = bad.shapes((3, 8, 8)).unwrap_err().to_string();
    assert!(e.contains("node 8 (add)") && e.contains("differ"), "{e}");
    let mut bad = g.clone();
    bad.nodes[add].inputs = vec![a, stem + 1];
    let e = bad.shapes((3, 8, 8)).unwrap_err().to_string();
    assert!(
        e.contains("batchnorm") && e.contains("only consumer"),
        "{e}"
    );
    let mut bad = g.clone();
    bad.nodes.remove(add + 3);
    bad.nodes[add + 3].inputs = vec![add + 2];
    let e = bad.shapes((3, 8, 8)).unwrap_err().to_string();
    assert!(e.contains("flat input"), "{e}");
}

#[test]
fn shortcut_a_and_groups() {
    let mut g = Graph::new("s");
    g.then(conv("c0", 4, 1));
    g.then(Op::ShortcutA { stride: 2, out: 8 });
    g.then(Op::Conv {
        name: "dw".into(),
        out: 8,
        kernel: 3,
        stride: 1,
        padding: 1,
        groups: 8,
    });
    g.then(Op::Flatten);
    g.then(Op::Linear {
        name: "fc".into(),
        out: 2,
    });
    let s = g.shapes((1, 9, 9)).unwrap();
    assert_eq!(s.dims[2], Dims::Map(8, 5, 5));
    assert!(s.layers[1].is_depthwise());
    assert_eq!(s.layers[1].weight_count(), 8 * 9);
    if let Op::Conv { groups, .. } = &mut g.nodes[3].op {
        *groups = 3;
    }
    let e = g.shapes((1, 9, 9)).unwrap_err().to_string();
    assert!(e.contains("groups 3 must divide"), "{e}");
}

fn pool(k: usize, stride: usize, pad: usize, ceil: bool) -> Op {
    Op::MaxPool {
        k,
        stride,
        pad,
        ceil,
    }
}

/// Output sizes of padded and ceil-mode pools, by PyTorch's formula (torchvision's stem pool
/// 112 → 56; SqueezeNet's ceil-mode pools 13 → 6 → 3, where floor gives 6 → 2).
#[test]
fn padded_and_ceil_mode_pools() {
    for (side, op, want) in [
        (112, pool(3, 2, 1, false), 56),
        (13, pool(3, 2, 0, true), 6),
        (6, pool(3, 2, 0, true), 3),
        (6, pool(3, 2, 0, false), 2),
        // Ceil adds no window that would start in the right padding: 5 + 1 pad, k 2, stride 2.
        (5, pool(2, 2, 1, true), 3),
    ] {
        let mut g = Graph::new("p");
        g.then(op.clone());
        let d = g.node_dims((1, side, side)).unwrap().dims[1];
        assert_eq!(d, Dims::Map(1, want, want), "{side} {op:?}");
    }
    let mut g = Graph::new("p");
    g.then(pool(2, 2, 2, false));
    let e = g.node_dims((1, 8, 8)).unwrap_err().to_string();
    assert!(
        e.contains("padding 2 must be less than the window 2"),
        "{e}"
    );
}

/// A squeeze-and-excitation block: the gate (C, 1, 1) multiplies the depthwise conv's
/// activation (C, H, W), and the Mul's traffic (gate read, product written) lands on that conv,
/// whichever operand comes first; shape errors of Mul, Concat, Channels and ChannelShuffle.
#[test]
fn a_gate_multiplies_channels_and_is_priced_on_the_layer_it_gates() {
    let mut g = Graph::new("se");
    g.then(conv("c0", 8, 1));
    let dw = g.then(Op::Conv {
        name: "dw".into(),
        out: 8,
        kernel: 3,
        stride: 1,
        padding: 1,
        groups: 8,
    });
    g.then(Op::BatchNorm);
    let act = g.then(Op::HardSwish);
    g.then(Op::GlobalAvgPool);
    let sq = g.then(conv("squeeze", 2, 1));
    g.then(Op::Relu);
    g.then(conv("excite", 8, 1));
    let gate = g.then(Op::HardSigmoid);
    let mul = g.push(Op::Mul, &[gate, act]);
    g.then(Op::GlobalAvgPool);
    g.then(Op::Flatten);
    g.then(Op::Linear {
        name: "fc".into(),
        out: 3,
    });
    let s = g.shapes((3, 6, 6)).unwrap();
    assert_eq!(s.dims[mul], Dims::Map(8, 6, 6));
    assert_eq!(s.layer_nodes[1], dw);
    assert_eq!(s.layers[1].residual, 8 + 8 * 6 * 6);
    assert_eq!(s.layers[0].residual + s.layers[2].residual, 0);
    assert_eq!(s.layer_nodes[2], sq);

    let mut bad = g.clone();
    bad.nodes[mul].inputs = vec![sq, act];
    let e = bad.shapes((3, 6, 6)).unwrap_err().to_string();
    assert!(e.contains("node 10 (mul)") && e.contains("gate"), "{e}");
    for (op, rule) in [
        (Op::Channels { start: 6, len: 3 }, "channels 6..+3 of 8"),
        (Op::ChannelShuffle { groups: 3 }, "3 groups must divide 8"),
    ] {
        let mut bad = g.clone();
        bad.nodes[gate] = Node {
            op,
            inputs: vec![act],
        };
        let e = bad.shapes((3, 6, 6)).unwrap_err().to_string();
        assert!(e.contains(rule), "{e}");
    }
}

/// Branches joined by a Concat (SqueezeNet's fire module): channels add up, and the join's
/// traffic (the other branch read, the whole written) lands on the larger branch's layer; a
/// Concat of two pools is charged to the layer before them; a Concat of the image alone has no
/// layer to be priced on.
#[test]
fn a_concat_joins_channels_and_is_priced_on_a_branch() {
    let mut g = Graph::new("fire");
    let squeeze = g.then(conv("squeeze", 2, 1));
    g.then(Op::Relu);
    let e1 = g.push(conv("e1", 3, 1), &[squeeze + 1]);
    let r1 = g.then(Op::Relu);
    g.push(conv("e3", 5, 1), &[squeeze + 1]);
    let r3 = g.then(Op::Relu);
    let cat = g.push(Op::Concat, &[r1, r3]);
    let p1 = g.then(pool(2, 2, 0, false));
    let p2 = g.push(pool(3, 2, 1, false), &[cat]);
    let cat2 = g.push(Op::Concat, &[p1, p2]);
    g.then(Op::Flatten);
    g.then(Op::Linear {
        name: "fc".into(),
        out: 2,
    });
    let s = g.shapes((1, 4, 4)).unwrap();
    assert_eq!(s.dims[cat], Dims::Map(8, 4, 4));
    assert_eq!(s.dims[cat2], Dims::Map(16, 2, 2));
    assert_eq!(s.layer_nodes[1], e1);
    // e3 (5 channels) writes the larger branch: reads e1's 3·16, writes 8·16; then the pools'
    // Concat, charged to e1 (its first operand's layer): reads 8·4, writes 16·4.
    assert_eq!(s.layers[2].residual, 3 * 16 + 8 * 16);
    assert_eq!(s.layers[1].residual, 8 * 4 + 16 * 4);

    let mut bad = g.clone();
    bad.nodes[cat2].inputs = vec![p1, 0];
    let e = bad.shapes((1, 4, 4)).unwrap_err().to_string();
    assert!(e.contains("needs one H×W"), "{e}");
    let mut bad = Graph::new("image");
    bad.push(Op::Concat, &[0, 0]);
    bad.then(Op::Flatten);
    bad.then(Op::Linear {
        name: "fc".into(),
        out: 2,
    });
    let e = bad.shapes((1, 2, 2)).unwrap_err().to_string();
    assert!(e.contains("no layer computes"), "{e}");
}
