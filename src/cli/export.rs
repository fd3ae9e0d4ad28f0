//! `bitsearch export`: rebuild a run's policy (the best by default) and write it as a deployable
//! quantized model (ONNX with QuantizeLinear/DequantizeLinear), with its weights, codes, scales
//! and clips, its policy and check data for ONNX Runtime.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use bitsearch::deploy::{
    check_experiment, choose_episode, export_episode, recorded_experiment, ExportOptions,
};
use bitsearch::experiment::Overrides;
use bitsearch::model::onnx::Opset;
use bitsearch::rundir::RunDir;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A search run directory (OUT/AGENT-PROFILE, with config.json and episodes.csv).
    pub run_dir: PathBuf,
    /// The episode to export [default: the best feasible one, as best-policy.json names it].
    #[arg(long)]
    pub episode: Option<usize>,
    /// Where to write the files [default: RUN_DIR/export-N, N the episode].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The run's experiment file [default: the one config.json records, with its overrides].
    /// Its data, model, train, quant and finetune settings must match the run's.
    #[arg(long)]
    pub experiment: Option<PathBuf>,
    /// Where FP32 baselines are cached (as for `search`; trained there if missing).
    #[arg(long, default_value = "runs")]
    pub cache: PathBuf,
    /// Test examples written as check data (check-*.npy) for
    /// scripts/check_onnx_export.py; 0 writes none.
    #[arg(long, default_value_t = 1000)]
    pub check_examples: usize,
    /// ONNX opset: 13 stores every width in int8/uint8 containers (the most widely run); 21
    /// stores widths up to 4 bits as INT4/UINT4 and holds the formats 13 cannot: fp8
    /// (FLOAT8), activations of 9 to 16 bits (uint16/int16) and group-wise int4 (blocked
    /// scales). fp16 and bf16 are casts at either. ONNX Runtime 1.32 runs both. [default: 13,
    /// or 21 for a policy with a format only 21 holds]
    #[arg(long, value_enum)]
    pub opset: Option<OpsetArg>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// `--opset`'s values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OpsetArg {
    #[value(name = "13")]
    V13,
    #[value(name = "21")]
    V21,
}

/// `--opset`, else the least opset that writes every one of `policies` (`Opset::least_for`).
pub fn opset_for<'a>(
    arg: Option<OpsetArg>,
    policies: impl IntoIterator<Item = &'a [bitsearch::quant::LayerBits]>,
) -> Opset {
    match arg {
        Some(a) => a.into(),
        None => (policies.into_iter().map(Opset::least_for))
            .max()
            .unwrap_or_default(),
    }
}

impl From<OpsetArg> for Opset {
    fn from(o: OpsetArg) -> Opset {
        match o {
            OpsetArg::V13 => Opset::V13,
            OpsetArg::V21 => Opset::V21,
        }
    }
}

pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let run = RunDir::read(&args.run_dir)
        .with_context(|| format!("cannot read run directory {}", args.run_dir.display()))?;
    let row = choose_episode(&run, args.episode)?;
    let (exp, data) = super::load_experiment(&experiment_args(&run, args.experiment.as_ref())?)?;
    check_experiment(&run, &exp)?;
    let base = super::baseline(&exp, &data, &args.cache, !args.quiet)?;
    let out = (args.out.clone()).unwrap_or_else(|| run.dir.join(format!("export-{}", row.episode)));
    if args.out.is_none() {
        // The run's own subdirectory: a link planted there would carry the files elsewhere.
        bitsearch::rundir::create_dir(&out)?;
    }
    let record = export_episode(
        &run,
        row,
        &exp,
        &data,
        &base.model,
        &out,
        ExportOptions {
            opset: opset_for(args.opset, [row.bits.as_slice()]),
            check_examples: args.check_examples,
        },
    )
    .with_context(|| format!("cannot export episode {} to {}", row.episode, out.display()))?;
    println!(
        "{}: episode {} ({}) of {}: validation accuracy {:.2}%, test accuracy {:.2}% on {} examples",
        out.display(),
        record.episode,
        record.policy,
        record.model,
        100.0 * record.validation_accuracy,
        100.0 * record.test_accuracy,
        record.test_examples
    );
    if !record.reproduced() {
        eprintln!(
            "warning: the rebuilt model's validation accuracy {} differs from the {} episodes.csv logged: the experiment, the baseline or the code changed since the search",
            record.validation_accuracy,
            record.logged_validation_accuracy.map_or("none".into(), |a| a.to_string())
        );
    }
    println!("wrote {}", record.files.join(", "));
    if record.check_examples > 0 {
        println!(
            "check it with ONNX Runtime: python3 scripts/check_onnx_export.py {}",
            out.display()
        );
    }
    Ok(())
}

/// The experiment given with `--experiment`, else the file and overrides config.json recorded.
pub(super) fn experiment_args(
    run: &RunDir,
    given: Option<&PathBuf>,
) -> anyhow::Result<super::ExperimentArgs> {
    Ok(match given {
        Some(p) => super::ExperimentArgs::file(p),
        None => {
            let (path, flags) = recorded_experiment(run)?;
            let o = Overrides::from_recorded(&flags);
            super::ExperimentArgs {
                experiment: path,
                budget: o.budget,
                set: o.set,
            }
        }
    })
}
