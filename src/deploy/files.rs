//! The files of an export besides the ONNX model: the quantized weights as safetensors and the
//! check data (`.npy`) that scripts/check_onnx_export.py feeds ONNX Runtime.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use safetensors::tensor::{Dtype, TensorView};

use super::DeployError;
use crate::model::{LayerKind, LayerWeights, Model};
use crate::quant::{signed_levels, weight_codes, Format, Quantizer};
use crate::rundir::write_atomic;

/// The safetensors file of `model` quantized by `q`. Per quantizable layer `L` (BatchNorm folded,
/// as the policy quantizes it): `L.weight` (f32, the fine-tuned weight before quantization),
/// `L.bias` (f32); with a quantized weight `L.weight_codes` (i8, same shape) and
/// `L.weight_scale` (f32, one per output channel), so `codes × scale` is the weight the model
/// runs; with a quantized input (integers up to 16 bits) `L.act_clip` and `L.act_scale` (f32
/// scalars: the input is `round(clamp(x, 0, clip) / scale) × scale`, or on a signed input
/// `round(clamp(x, −clip, clip) / scale) × scale`). Other formats are refused
/// (`DeployError::NotInteger`). An attention matmul has no weights: with its
/// second operand quantized it has `L.operand_clip` and `L.operand_scale` instead (the signed
/// grid: `round(clamp(x, −clip, clip) / scale) × scale`). The metadata names the model, the
/// policy and the layers in order.
pub fn weights_safetensors(model: &Model, q: &Quantizer) -> Result<Vec<u8>, DeployError> {
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let names: Vec<&str> = model.shapes().iter().map(|l| l.name.as_str()).collect();
    for (li, name) in names.iter().enumerate() {
        let lq = q.layer(li).ok_or_else(|| DeployError::PolicyLength {
            layers: names.len(),
            policy: q.policy().len(),
        })?;
        let w_bits = int_bits(name, lq.bits.w, Format::MAX)?;
        let a_bits = int_bits(name, lq.bits.a, Format::MAX_INT)?;
        let signed = model.signed_inputs().get(li).copied().unwrap_or(false);
        let a_grid = a_bits.map(|bits| (bits, signed));
        if model.shapes()[li].kind == LayerKind::Matmul {
            push_act_clip(&mut tensors, name, lq.clip, a_grid);
            if let Some(bits) = w_bits {
                let step = lq.operand_clip / signed_levels(bits) as f32;
                let clip = f32_bytes(&[lq.operand_clip]);
                tensors.push((format!("{name}.operand_clip"), Dtype::F32, vec![], clip));
                let scale = f32_bytes(&[step]);
                tensors.push((format!("{name}.operand_scale"), Dtype::F32, vec![], scale));
            }
            continue;
        }
        let LayerWeights { w, w_dims, b, .. } = model.effective_layer(li)?;
        let o = w_dims[0];
        tensors.push((
            format!("{name}.weight"),
            Dtype::F32,
            w_dims.clone(),
            f32_bytes(&w),
        ));
        tensors.push((format!("{name}.bias"), Dtype::F32, vec![o], f32_bytes(&b)));
        if let Some(bits) = w_bits {
            let (codes, scales) = weight_codes(&w, o, bits);
            let codes = codes.iter().map(|&c| c as u8).collect();
            tensors.push((format!("{name}.weight_codes"), Dtype::I8, w_dims, codes));
            let scales = f32_bytes(&scales);
            tensors.push((format!("{name}.weight_scale"), Dtype::F32, vec![o], scales));
        }
        push_act_clip(&mut tensors, name, lq.clip, a_grid);
    }
    let views = tensors
        .iter()
        .map(|(n, dtype, dims, bytes)| {
            Ok((n.clone(), TensorView::new(*dtype, dims.clone(), bytes)?))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| DeployError::Safetensors(e.to_string()))?;
    let metadata = HashMap::from([
        ("format".to_string(), "bitsearch-quantized".to_string()),
        ("model".to_string(), model.name().to_string()),
        ("policy".to_string(), q.policy().to_string()),
        ("layers".to_string(), names.join(",")),
    ]);
    safetensors::tensor::serialize(views, Some(metadata))
        .map_err(|e| DeployError::Safetensors(e.to_string()))
}

/// An operand's integer width up to `max` (None at full precision); any other format is
/// refused by name.
fn int_bits(layer: &str, format: Format, max: u8) -> Result<Option<u8>, DeployError> {
    match (format.is_full(), format.int_bits()) {
        (true, _) => Ok(None),
        (false, Some(b)) if b <= max => Ok(Some(b)),
        _ => Err(DeployError::NotInteger {
            layer: layer.to_string(),
            format: format.name(),
        }),
    }
}

/// Layer `name`'s `act_clip` and `act_scale` when its input is quantized to `(bits, signed)`:
/// the step of the unsigned grid on [0, clip], or of the signed one on [−clip, clip].
fn push_act_clip(
    tensors: &mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    name: &str,
    clip: f32,
    grid: Option<(u8, bool)>,
) {
    if let Some((bits, signed)) = grid {
        let levels = match signed {
            true => signed_levels(bits),
            false => (1u32 << bits) - 1,
        };
        let step = clip / levels as f32;
        let clip = f32_bytes(&[clip]);
        tensors.push((format!("{name}.act_clip"), Dtype::F32, vec![], clip));
        let scale = f32_bytes(&[step]);
        tensors.push((format!("{name}.act_scale"), Dtype::F32, vec![], scale));
    }
}

/// Writes the check data of `x` (inputs, as the model takes them) and `y` (labels) into `dir`:
/// check-input.npy (f32), check-labels.npy (u32) and check-logits.npy (f32, the quantized
/// model's logits), computed in batches of 256.
pub fn write_check(
    dir: &Path,
    model: &Model,
    q: &Quantizer,
    x: &Tensor,
    y: &Tensor,
) -> Result<(), DeployError> {
    let n = x.dim(0)?;
    let mut logits = Vec::new();
    for start in (0..n).step_by(256) {
        let batch = x.narrow(0, start, 256.min(n - start))?;
        // Frozen: each batch's logits keep no graph of its activations alive.
        logits.push(model.forward_frozen(&batch, Some(q))?);
    }
    let logits = Tensor::cat(&logits, 0)?;
    let f32s = |t: &Tensor| -> Result<Vec<u8>, DeployError> {
        Ok(f32_bytes(&t.flatten_all()?.to_vec1::<f32>()?))
    };
    let labels: Vec<u8> = (y.to_vec1::<u32>()?.iter())
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let files = [
        (
            "check-input.npy",
            crate::npy::write("<f4", x.dims(), &f32s(x)?),
        ),
        ("check-labels.npy", crate::npy::write("<u4", &[n], &labels)),
        (
            "check-logits.npy",
            crate::npy::write("<f4", logits.dims(), &f32s(&logits)?),
        ),
    ];
    for (name, bytes) in files {
        write_atomic(&dir.join(name), &bytes)?;
    }
    Ok(())
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Arch;
    use crate::quant::{quantize_weight_values, Policy};
    use safetensors::SafeTensors;

    fn f32s(st: &SafeTensors, name: &str) -> Vec<f32> {
        let t = st.tensor(name).unwrap();
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        (t.data().chunks(4))
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    #[test]
    fn codes_times_scales_are_the_weights_the_quantized_model_runs() {
        // ResNet-20: its BatchNorms are folded into the weights written.
        let model = Model::new(Arch::Resnet20, (3, 8, 8), 10, 3).unwrap();
        let n = model.shapes().len();
        let mut text: Vec<String> = vec!["4/3".into(); n];
        text[0] = "32/32".into();
        text[1] = "2/8".into();
        let policy = Policy::parse(&text.join(",")).unwrap();
        let q = Quantizer::new(policy, vec![[1.5; 8]; n]);
        let bytes = weights_safetensors(&model, &q).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta["policy"], q.policy().to_string());
        for (li, layer) in model.shapes().iter().enumerate() {
            let name = &layer.name;
            let folded = model.effective_layer(li).unwrap();
            assert_eq!(f32s(&st, &format!("{name}.weight")), folded.w, "{name}");
            let bits = q.layer(li).unwrap().bits;
            let has = |what: &str| st.tensor(&format!("{name}.{what}")).is_ok();
            assert_eq!(has("weight_codes"), !bits.w.is_full(), "{name}");
            assert_eq!(has("act_clip"), !bits.a.is_full(), "{name}");
            if bits.w.is_full() {
                continue;
            }
            let codes = st.tensor(&format!("{name}.weight_codes")).unwrap();
            assert_eq!(codes.dtype(), Dtype::I8);
            assert_eq!(codes.shape(), folded.w_dims.as_slice());
            let scales = f32s(&st, &format!("{name}.weight_scale"));
            let per = folded.w.len() / scales.len();
            let expected = quantize_weight_values(&folded.w, scales.len(), bits.w.width());
            let limit = (1i32 << (bits.w.width() - 1)) - 1;
            for (i, &c) in codes.data().iter().enumerate() {
                let c = c as i8;
                assert!(
                    i32::from(c).abs() <= limit,
                    "{name}: code {c} at {}",
                    bits.w
                );
                let w = c as f32 * scales[i / per];
                assert!(
                    (w - expected[i]).abs() <= 1e-6 * expected[i].abs().max(1e-3),
                    "{name} {i}"
                );
            }
        }
        let step = f32s(&st, &format!("{}.act_scale", model.shapes()[1].name));
        assert_eq!(step, [1.5 / 255.0]);
    }

    /// An input's `act_scale` is its grid's step: 16-bit activations are held (clip / 65535), a
    /// signed input's grid has 2^(a−1) − 1 steps a side, and a float format is refused by name.
    #[test]
    fn act_scales_follow_the_inputs_grid_and_floats_are_refused() {
        let model = Model::new(Arch::Vit, (3, 32, 32), 10, 1).unwrap();
        let n = model.shapes().len();
        let signed = (1..n).find(|&i| model.signed_inputs()[i]).unwrap();
        let mut text = vec!["8/8".to_string(); n];
        text[0] = "8/16".into();
        let q = Quantizer::new(Policy::parse(&text.join(",")).unwrap(), vec![[1.5; 8]; n]);
        let bytes = weights_safetensors(&model, &q).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let step = |li: usize| f32s(&st, &format!("{}.act_scale", model.shapes()[li].name));
        assert_eq!(step(0), [1.5 / 65535.0]);
        assert_eq!(step(signed), [1.5 / 127.0]);
        text[0] = "fp8e4m3/8".into();
        let q = Quantizer::new(Policy::parse(&text.join(",")).unwrap(), vec![[1.5; 8]; n]);
        let e = weights_safetensors(&model, &q).unwrap_err();
        assert!(
            matches!(&e, DeployError::NotInteger { format, .. } if format == "fp8e4m3"),
            "{e}"
        );
    }
}
