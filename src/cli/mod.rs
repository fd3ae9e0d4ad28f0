//! Command-line interface: clap subcommands, turned into validated configs and run.

mod agreement;
mod agreement_print;
mod bench;
mod calibrate_ort;
mod cost;
mod dq;
mod eval;
mod export;
mod measure;
mod profile_import;
mod profiles;
mod report;
mod search;
mod sensitivity;
mod sweep;
mod train;
mod worker;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

use bitsearch::data::Dataset;
use bitsearch::experiment::{Experiment, Overrides};
use bitsearch::model::Arch;

/// Mixed-precision bitwidth search: per-layer weight/activation bits priced on real devices,
/// scored on accuracy and adversarial robustness.
#[derive(Debug, Parser)]
#[command(name = "bitsearch", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Search per-layer bitwidths for a device: agent proposes, budget wall, fine-tune, attack,
    /// score; one run directory per profile, with report.html.
    Search(search::SearchArgs),
    /// Per-layer sensitivity: each layer's weights and activations narrowed one at a time to
    /// every width of the space, the rest at 8/8, scored as the search scores (through its
    /// score cache) and priced on a device; writes sensitivity.csv and a heatmap report.
    Sensitivity(sensitivity::SensitivityArgs),
    /// Run a sweep: experiments × profiles × agents × seeds, one search run directory per
    /// cell, here K at a time or as a Slurm job array; `--status DIR` shows each cell's state.
    Sweep(sweep::SweepArgs),
    /// Train (or reuse the cached) FP32 baseline of an experiment and report its accuracy.
    Train(train::TrainArgs),
    /// Quantize the cached FP32 baseline with a policy (optionally fine-tune it) and report test
    /// and robust accuracy.
    Eval(eval::EvalArgs),
    /// Rebuild a run's best (or any) policy and write it as a deployable quantized model: ONNX
    /// with QuantizeLinear/DequantizeLinear, safetensors with codes and scales, the policy.
    Export(export::ExportArgs),
    /// Time a run's policies (the best, some episodes or the front) as deployable models in
    /// ONNX Runtime on this host; writes measured.csv beside the run's predicted latencies.
    Measure(measure::MeasureArgs),
    /// The Defensive-Quantization study: robustness vs uniform bits, with and without the
    /// Lipschitz fine-tune; writes dq.csv and amplification.csv.
    Dq(dq::DqArgs),
    /// Device profiles: list, show, validate, and calibrate this host as a device.
    Profiles(ProfilesArgs),
    /// Price a policy on a device profile: per-layer latency, energy, bytes, and the ratio to 8/8.
    Cost(CostCmd),
    /// Time the search's inner loop (training step, forward, input gradient, full training).
    Bench(bench::BenchArgs),
    /// Regenerate the charts (PNG and SVG) and report.html of a run directory or DQ study.
    Report(report::ReportArgs),
    /// Overlay the Pareto fronts of several runs and compare their hypervolumes.
    Compare(report::CompareArgs),
    /// Score one policy of a search's batch (what `search --workers N` starts; not for people).
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
}

#[derive(Debug, clap::Args)]
pub struct ProfilesArgs {
    /// The model whose layer shapes `calibrate` times, `show` and `import` price and
    /// `agreement` compares.
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(subcommand)]
    pub cmd: profiles::ProfilesCmd,
}

#[derive(Debug, clap::Args)]
pub struct CostCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub args: cost::CostArgs,
}

/// The model a pricing command works on: an experiment's, shaped by its data, or a zoo network
/// from its shape alone (`--arch`), for which no data set is read.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Experiment whose model is priced.
    #[arg(long, global = true, default_value = DEFAULT_EXPERIMENT)]
    pub experiment: PathBuf,
    /// A zoo network priced from its shape alone, instead of an experiment's (no data set is
    /// read), e.g. mobilenetv2.
    #[arg(long, global = true, value_enum, conflicts_with = "experiment")]
    pub arch: Option<Arch>,
    /// The input --arch is built for, as C,H,W [default: 3,224,224].
    #[arg(long, global = true, value_name = "C,H,W", value_parser = parse_input, requires = "arch")]
    pub input: Option<(usize, usize, usize)>,
    /// Outputs of --arch's classifier [default: 1000].
    #[arg(long, global = true, value_parser = parse_count, requires = "arch")]
    pub classes: Option<usize>,
}

/// `3,224,224` as (channels, height, width), each at least 1.
fn parse_input(text: &str) -> Result<(usize, usize, usize), String> {
    let dims: Vec<usize> = (text.split(','))
        .map(parse_count)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("must be C,H,W: {e}"))?;
    match dims[..] {
        [c, h, w] => Ok((c, h, w)),
        _ => Err(format!(
            "must be three sizes C,H,W, got {} in `{text}`",
            dims.len()
        )),
    }
}

fn parse_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "must be a whole number of at least 1, got `{text}`"
        )),
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Search(args) => search::run(&args),
        Command::Sensitivity(args) => sensitivity::run(&args),
        Command::Sweep(args) => sweep::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Measure(args) => measure::run(&args),
        Command::Dq(args) => dq::run(&args),
        Command::Profiles(p) => {
            if let profiles::ProfilesCmd::Calibrate {
                runtime: profiles::CalibrationRuntime::Onnxruntime,
                ref out,
                batch,
                repeats,
                threads,
            } = p.cmd
            {
                let c = calibrate_ort::Settings {
                    out,
                    batch,
                    repeats,
                    threads,
                };
                return calibrate_ort::run(&p.model, &c);
            }
            let (model, layers) = match p.cmd {
                profiles::ProfilesCmd::List { .. } | profiles::ProfilesCmd::Validate { .. } => {
                    (String::new(), Vec::new())
                }
                _ => priced_model(&p.model)?,
            };
            profiles::run(p.cmd, &model, &layers)
        }
        Command::Cost(c) => {
            let (model, layers) = priced_model(&c.model)?;
            cost::run(&c.args, &model, &layers)
        }
        Command::Bench(args) => bench::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Compare(args) => report::run_compare(&args),
        Command::Worker(args) => worker::run(&args),
    }
}

/// The default experiment, relative to the current directory or, failing that, the source tree.
pub const DEFAULT_EXPERIMENT: &str = "experiments/lenet5-mnist.toml";

/// Finds a file given on the command line: as given, else relative to the crate's source tree
/// (so the README commands work from any directory of a checkout).
pub fn resolve(path: &Path) -> PathBuf {
    if path.exists() || path.is_absolute() {
        return path.to_path_buf();
    }
    let in_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if in_tree.exists() {
        in_tree
    } else {
        path.to_path_buf()
    }
}

/// The experiment flags every experiment-driven command takes (search, sensitivity, train, eval,
/// dq, bench).
#[derive(Debug, Clone, clap::Args)]
pub struct ExperimentArgs {
    /// Experiment file: model, data, training, fine-tune, attacks, bit range, budgets, reward.
    /// It may start from another with `extends = "lenet5-mnist.toml"` and change a few keys.
    #[arg(long, default_value = DEFAULT_EXPERIMENT)]
    pub experiment: PathBuf,
    /// A budget replacing the experiment's whole [budget] table; repeatable: latency=0.7 (a
    /// fraction of uniform 8/8 on the device), energy=, size=, or absolute latency_s=1.2e-5,
    /// energy_j=, size_bytes=.
    #[arg(long = "budget", value_name = "KEY=VALUE")]
    pub budget: Vec<String>,
    /// Overrides one experiment setting, e.g. train.epochs=4 or attack.pgd_eps=[0.1]; repeatable,
    /// applied in order after `extends` and before validation; recorded in config.json.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
}

impl ExperimentArgs {
    /// The file alone, without overrides.
    pub fn file(path: &Path) -> Self {
        ExperimentArgs {
            experiment: path.to_path_buf(),
            budget: Vec::new(),
            set: Vec::new(),
        }
    }
}

/// Loads and validates an experiment, with its overrides, and its data.
pub fn load_experiment(args: &ExperimentArgs) -> anyhow::Result<(Experiment, Dataset)> {
    let path = resolve(&args.experiment);
    let overrides = Overrides {
        budget: args.budget.clone(),
        set: args.set.clone(),
    };
    let exp = Experiment::load_with(&path, &overrides).context("cannot load the experiment")?;
    let data = exp
        .data
        .load()
        .with_context(|| format!("cannot load the data of {}", path.display()))?;
    Ok((exp, data))
}

/// The experiment's FP32 baseline (trained once, then cached under `cache`), its model with the
/// quantizable layers `[quant]` names: what every command that quantizes it starts from.
pub fn baseline(
    exp: &Experiment,
    data: &Dataset,
    cache: &Path,
    show: bool,
) -> anyhow::Result<bitsearch::train::Baseline> {
    let mut base = (bitsearch::train::train_baseline(&exp.baseline(), exp, data, cache, show))
        .context("FP32 baseline")?;
    base.model = (base.model.with_attention(exp.quant.attention))
        .with_context(|| format!("{}: `[quant] attention`", exp.path.display()))?;
    Ok(base)
}

/// The line that reports a baseline: `NAME: FP32 baseline test accuracy A% (DIR)`.
pub fn baseline_line(exp: &Experiment, base: &bitsearch::train::Baseline) -> String {
    format!(
        "{}: FP32 baseline test accuracy {:.2}% ({})",
        exp.name,
        100.0 * base.metrics.test_accuracy,
        base.dir.display()
    )
}

/// The name and quantizable layers of the model `args` names: the zoo network `--arch` at its
/// input and classes, or the experiment's model shaped by its data.
pub fn priced_model(
    args: &ModelArgs,
) -> anyhow::Result<(String, Vec<bitsearch::model::LayerShape>)> {
    let Some(arch) = args.arch else {
        let (exp, layers) = model_layers(&args.experiment)?;
        return Ok((exp.model.name(), layers));
    };
    let input = args.input.unwrap_or((3, 224, 224));
    let classes = args.classes.unwrap_or(1000);
    let layers = (arch.layer_shapes(input, classes)).with_context(|| {
        let (c, h, w) = input;
        format!("--arch {} --input {c},{h},{w}", arch.name())
    })?;
    Ok((arch.name().to_string(), layers))
}

/// The experiment and its model's quantizable layers, shaped by its data.
pub fn model_layers(
    path: &Path,
) -> anyhow::Result<(Experiment, Vec<bitsearch::model::LayerShape>)> {
    let (exp, data) = load_experiment(&ExperimentArgs::file(path))?;
    let layers = (exp.model).layer_shapes(data.shape, data.classes, exp.quant.attention)?;
    Ok((exp, layers))
}
