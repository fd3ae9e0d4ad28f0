//! `bitsearch eval`: quantize the cached baseline with a policy and report test accuracy.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use bitsearch::experiment::Experiment;
use bitsearch::model::Model;
use bitsearch::quant::{calibrate_model, Policy, Quantizer};
use bitsearch::train::{accuracy, load_baseline, TrainError};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The policy: W/A bits per layer in order, e.g. 8/8,4/4,2/4,4/4,8/8 (32 = unquantized),
    /// or a JSON policy file ({"model": .., "layers": [{"name", "w_bits", "a_bits"}, ..]}).
    #[arg(long)]
    pub policy: String,
    /// Experiment file (model, data, calibration settings).
    #[arg(long, default_value = super::DEFAULT_EXPERIMENT)]
    pub experiment: PathBuf,
    /// Run directory holding the cached baseline (OUT/baselines/).
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct EvalReport {
    experiment: String,
    model: String,
    policy: String,
    test_accuracy: f64,
    fp32_test_accuracy: f64,
    delta_points: f64,
    test_examples: usize,
}

/// Parses `--policy` as a JSON file when it names one, else as the string form.
pub fn parse_policy(text: &str, model: &Model) -> anyhow::Result<Policy> {
    let names = model.layer_names();
    let arch = model.arch().name();
    let policy = if text.ends_with(".json") || Path::new(text).is_file() {
        Policy::from_json_file(Path::new(text), arch, &names)?
    } else {
        Policy::parse(text)?
    };
    policy.check_len(arch, names.len())?;
    Ok(policy)
}

/// Calibrates activation clips on the first training examples, per the experiment.
pub fn quantizer(
    exp: &Experiment,
    data: &bitsearch::data::Dataset,
    model: &Model,
    policy: Policy,
) -> anyhow::Result<Quantizer> {
    let calib = data.train.head(exp.quant.calibration);
    let idx: Vec<usize> = (0..calib.len()).collect();
    let (x, _) = calib.batch(&idx, &candle_core::Device::Cpu)?;
    let clips =
        calibrate_model(model, &x, exp.quant.act_clip).context("calibrating activation clips")?;
    Ok(Quantizer::new(policy, clips))
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let (exp, data) = super::load_experiment(&args.experiment)?;
    let base = load_baseline(&exp, &data, &args.out)?.ok_or_else(|| TrainError::NoBaseline {
        dir: args.out.join("baselines"),
    })?;
    let policy = parse_policy(&args.policy, &base.model)
        .with_context(|| format!("invalid --policy {}", args.policy))?;
    let q = quantizer(&exp, &data, &base.model, policy)?;
    let acc = accuracy(&base.model, &data.test, Some(&q))?;
    let report = EvalReport {
        experiment: exp.name.clone(),
        model: exp.model.arch.name().to_string(),
        policy: q.policy().to_string(),
        test_accuracy: acc,
        fp32_test_accuracy: base.metrics.test_accuracy,
        delta_points: 100.0 * (acc - base.metrics.test_accuracy),
        test_examples: data.test.len(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} {} policy {}: test accuracy {:.2}% (FP32 {:.2}%, {:+.2} points) on {} examples",
            report.experiment,
            report.model,
            report.policy,
            100.0 * acc,
            100.0 * report.fp32_test_accuracy,
            report.delta_points,
            report.test_examples
        );
    }
    Ok(())
}
