//! Writes a quantized ONNX export of the cached LeNet-5 baseline with the test split and
//! bitsearch's own logits on it, for checking the export with ONNX Runtime
//! (`scripts/check_onnx_export.py DIR`): `cargo run --release --example export_check --
//! BASELINE.safetensors POLICY DIR`.

use bitsearch::data::DataSource;
use bitsearch::model::{onnx, Arch, Model};
use bitsearch::quant::{Policy, Quantizer};
use candle_core::Device;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [weights, policy, dir] = args.as_slice() else {
        anyhow::bail!("usage: export_check BASELINE.safetensors POLICY DIR");
    };
    let model = Model::load(Arch::Lenet5, (1, 28, 28), 10, weights.as_ref())?;
    let n = model.shapes().len();
    // Clips from the layers' inputs on the first 512 training images (their maxima).
    let (train, test) = DataSource::EmbeddedMnist10k.load()?;
    let ds = bitsearch::data::Dataset::from_raw(train, test, 1000, 0)?;
    let (x, _) = ds.train.first(512, &Device::Cpu)?;
    let trace = model.forward_trace(&x, None)?;
    let clips = trace
        .inputs
        .iter()
        .map(|t| Ok([t.abs()?.max_all()?.to_scalar::<f32>()?; 8]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let q = Quantizer::new(Policy::parse(policy)?, clips);
    anyhow::ensure!(q.layer(n - 1).is_some(), "the policy needs {n} layers");
    std::fs::create_dir_all(dir)?;
    let dir = std::path::Path::new(dir);
    std::fs::write(dir.join("model.onnx"), onnx::export(&model, &q)?)?;
    let (xt, yt) = ds.test.first(ds.test.len(), &Device::Cpu)?;
    let logits = model.forward(&xt, Some(&q))?;
    let json = serde_json::json!({
        "shape": xt.dims(),
        "input": xt.flatten_all()?.to_vec1::<f32>()?,
        "labels": yt.to_vec1::<u32>()?,
        "logits": logits.flatten_all()?.to_vec1::<f32>()?,
    });
    std::fs::write(dir.join("check.json"), json.to_string())?;
    println!("wrote {}", dir.display());
    Ok(())
}
