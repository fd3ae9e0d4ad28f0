//! Models: forward shapes and traces, seeded weights and checkpoints, quantized forwards.

use super::*;
use crate::quant::{Format, Policy, Quantizer};

#[test]
fn forward_shapes_and_trace() {
    let m = Model::new(Arch::Lenet5, (1, 28, 28), 10, 1).unwrap();
    let x = Tensor::rand(0f32, 1f32, (3, 1, 28, 28), &Device::Cpu).unwrap();
    let t = m.forward_trace(&x, None).unwrap();
    assert_eq!(t.logits.dims(), &[3, 10]);
    assert_eq!(t.inputs.len(), 5);
    assert_eq!(t.inputs[2].dims(), &[3, 256]);
    assert_eq!(t.outputs[0].dims(), &[3, 6, 24, 24]);
}

#[test]
fn same_seed_same_weights_and_save_load_round_trip() {
    let a = Model::new(Arch::Mlp, (1, 28, 28), 10, 5).unwrap();
    let b = Model::new(Arch::Mlp, (1, 28, 28), 10, 5).unwrap();
    let c = Model::new(Arch::Mlp, (1, 28, 28), 10, 6).unwrap();
    let w = |m: &Model| {
        m.vars()[0]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(w(&a), w(&b));
    assert_ne!(w(&a), w(&c));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    a.save(&path).unwrap();
    let l = Model::load(Arch::Mlp, (1, 28, 28), 10, &path).unwrap();
    assert_eq!(w(&a), w(&l));
    let err = Model::load(Arch::Lenet5, (1, 28, 28), 10, &path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("conv1.weight"), "{err}");
}

#[test]
fn quantized_forward_differs_and_full_policy_does_not() {
    let m = Model::new(Arch::Mlp, (1, 28, 28), 10, 2).unwrap();
    let x = Tensor::rand(0f32, 1f32, (4, 1, 28, 28), &Device::Cpu).unwrap();
    let fp = m.forward(&x, None).unwrap();
    let full = Quantizer::new(Policy::uniform(3, Format::FULL), vec![[1.0; 8]; 3]);
    let two = Quantizer::new(
        Policy::uniform(3, Format::new(2).unwrap()),
        vec![[1.0; 8]; 3],
    );
    let diff = |a: &Tensor, b: &Tensor| {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert_eq!(diff(&fp, &m.forward(&x, Some(&full)).unwrap()), 0.0);
    assert!(diff(&fp, &m.forward(&x, Some(&two)).unwrap()) > 1e-3);
}

/// The Lipschitz penalty reads `weights()`: for the ViT that is every linear layer (patch
/// embedding, qkv, proj, fc1, fc2 of each block, head), never a LayerNorm or an embedding.
#[test]
fn vit_weights_are_its_layers() {
    let m = Model::new(Arch::Vit, (1, 28, 28), 10, 0).unwrap();
    let w = m.weights().unwrap();
    assert_eq!(w.len(), m.shapes().len());
    assert_eq!(w[0].dims(), [64, 1, 7, 7]);
    assert_eq!(
        (w[1].dims(), w[2].dims()),
        ([192, 64].as_slice(), [64, 64].as_slice())
    );
    assert_eq!(
        (w[3].dims(), w[4].dims()),
        ([128, 64].as_slice(), [64, 128].as_slice())
    );
    assert_eq!(w[13].dims(), [10, 64]);
}
