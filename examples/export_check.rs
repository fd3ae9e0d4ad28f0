//! Writes a quantized export of the cached LeNet-5 baseline under any policy (no fine-tune, max
//! clips), with the whole test split as check data, for checking it with ONNX Runtime
//! (`scripts/check_onnx_export.py DIR`): `cargo run --release --example export_check --
//! BASELINE.safetensors POLICY DIR`.

use bitsearch::data::DataSource;
use bitsearch::model::{Arch, Model};
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
    let (xt, yt) = ds.test.first(ds.test.len(), &Device::Cpu)?;
    bitsearch::deploy::write_files(
        dir.as_ref(),
        &model,
        &q,
        Default::default(),
        Some((&xt, &yt)),
    )?;
    println!("wrote {dir}");
    Ok(())
}
