//! `bitsearch profiles`: list, show, validate and calibrate device profiles, import a simulator's
//! cycle table as one, and hold profiles against such a table.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Subcommand;

use bitsearch::env::{Budget, Objectives, Operand, SearchSpace};
use bitsearch::hardware::{
    profile_files, resolve_profile, time_host, write_host_timing, ComputeModel, Profile,
    BUILTIN_PROFILE_DIR,
};
use bitsearch::model::LayerShape;
use bitsearch::quant::{Format, LayerBits, Operand as QuantOperand};
use bitsearch::report::units::{quantity, Quantity};

/// Device profiles: the TOML files that price a layer at given bitwidths.
#[derive(Debug, Clone, Subcommand)]
pub enum ProfilesCmd {
    /// One line per profile: name, compute model, supported precisions, batch.
    List {
        /// Folder of profile files [default: hardware-profiles, else the crate's shipped folder].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Every number of one profile, with where it comes from, and which widths it prices
    /// apart on the experiment's model (what `[bits] prune_dominated` keeps).
    Show {
        /// A profile name (hardware-profiles/NAME.toml) or a .toml file.
        profile: String,
    },
    /// Check profile files (and their tables); exits non-zero unless every file is valid.
    Validate {
        /// Profile files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Time this machine on the model's layers and write a precision-modes profile plus a
    /// measured per-layer table (<out stem>.csv beside it): candle's CPU matmul kernels, or
    /// the model exported as QDQ ONNX and run in ONNX Runtime (--runtime onnxruntime).
    Calibrate {
        /// Profile file to write, e.g. hardware-profiles/host.toml.
        #[arg(long)]
        out: PathBuf,
        /// Examples per batch (the matmul's M is batch x output positions).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Timed runs per kernel (or per model with onnxruntime); the median is kept.
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// What is timed: candle's kernels, or ONNX Runtime (through its Python package).
        #[arg(long, value_enum, default_value = "candle")]
        runtime: CalibrationRuntime,
        /// ONNX Runtime's intra-op threads (one gives steady batch-1 times; see `measure`).
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Turn a simulator's per-layer cycle table (HAQ's .npy layout: int64 [layers, w_bits,
    /// a_bits], cycles per batch) into a profile with a measured table (<out stem>.csv beside
    /// it), for the model the simulator ran (--arch or --experiment, same layers in the same
    /// order).
    Import {
        /// The cycle table, e.g. tests/data/haq/qmobilenetv2_imagenet100_batch16_latency_table.npy.
        #[arg(long)]
        table: PathBuf,
        /// The profile of the simulated device (a name or a .toml file): its clock turns cycles
        /// into seconds, its roofline still prices bytes, bound and energy.
        #[arg(long)]
        base: String,
        /// Examples per batch the simulator ran (HAQ's file names say it: _batch16_).
        #[arg(long)]
        batch: u64,
        /// The simulated clock in Hz [default: the base profile's clock_hz].
        #[arg(long)]
        clock_hz: Option<f64>,
        /// Profile file to write, e.g. hardware-profiles/haq-bismo.toml.
        #[arg(long)]
        out: PathBuf,
        /// The written profile's name [default: the stem of --out].
        #[arg(long)]
        name: Option<String>,
    },
    /// Hold profiles' rooflines against a simulator's cycle table on the model it ran: rank
    /// correlations of per-layer latencies, cost ratios of uniform and mixed policies to 8/8,
    /// the layers that disagree; with --fit, each profile's rates fitted on half the layers and
    /// tested on the other half.
    Agreement(super::agreement::AgreementArgs),
}

/// `profiles calibrate --runtime`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CalibrationRuntime {
    Candle,
    Onnxruntime,
}

/// Runs one `profiles` subcommand; `model` and `layers` are the experiment model's name and
/// shapes (for show and calibrate).
pub fn run(cmd: ProfilesCmd, model: &str, layers: &[LayerShape]) -> anyhow::Result<()> {
    match cmd {
        ProfilesCmd::List { dir } => list(dir),
        ProfilesCmd::Show { profile } => show(&profile, model, layers),
        ProfilesCmd::Validate { files } => validate(&files),
        ProfilesCmd::Calibrate {
            out,
            batch,
            repeats,
            ..
        } => run_calibration(&out, layers, batch, repeats),
        ProfilesCmd::Import {
            table,
            base,
            batch,
            clock_hz,
            out,
            name,
        } => {
            let import = super::profile_import::Import {
                table: &table,
                base: &base,
                batch,
                clock_hz,
                out: &out,
                name,
            };
            super::profile_import::run(&import, model, layers)
        }
        ProfilesCmd::Agreement(args) => super::agreement::run(&args, model, layers),
    }
}

fn list(dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(|| {
        let local = PathBuf::from("hardware-profiles");
        if local.is_dir() {
            local
        } else {
            PathBuf::from(BUILTIN_PROFILE_DIR)
        }
    });
    let files = profile_files(&dir).with_context(|| format!("listing {}", dir.display()))?;
    for file in files {
        match Profile::load(&file) {
            Ok(p) => println!(
                "{:<14} {:<16} precisions {:<16} batch {:<3} {}",
                p.name(),
                p.compute().kind(),
                precisions(&p),
                p.batch(),
                file.display()
            ),
            Err(e) => println!("{:<14} INVALID: {e}", file.display()),
        }
    }
    Ok(())
}

fn precisions(p: &Profile) -> String {
    let v: Vec<String> = p.precisions().iter().map(|b| b.to_string()).collect();
    format!("{},32", v.join(","))
}

/// A value converted back to the file's unit, without the conversion's float noise
/// (0.46 pJ, not 0.4600000000000001).
fn plain(v: f64) -> String {
    quantity(Quantity::Plain, Some(v))
}

fn show(name: &str, model: &str, layers: &[LayerShape]) -> anyhow::Result<()> {
    let path = resolve_profile(name)?;
    let p = Profile::load(&path).with_context(|| format!("loading profile {name}"))?;
    let m = p.memory();
    println!("{} ({})", p.name(), p.path().display());
    println!("  {}", p.description());
    println!("  compute model   {}", p.compute().kind());
    println!("  precisions      {} (32 = full precision)", precisions(&p));
    println!(
        "  batch           {} (latency and energy are per batch)",
        p.batch()
    );
    println!("  clock           {} MHz", plain(p.clock_hz() / 1e6));
    println!("  layer overhead  {} us", plain(p.overhead_s() * 1e6));
    println!(
        "  bandwidth       {} GB/s",
        plain(m.bandwidth_bytes_per_s / 1e9)
    );
    println!("  on-chip buffer  {} bytes", m.buffer_bytes);
    println!(
        "  energy/byte     DRAM {} pJ, SRAM {} pJ",
        plain(m.dram_j_per_byte * 1e12),
        plain(m.sram_j_per_byte * 1e12)
    );
    match p.compute() {
        ComputeModel::BitSerial(b) => println!(
            "  bit-serial      {} binary MACs/cycle, {} pJ per binary MAC",
            b.binary_macs_per_cycle,
            plain(b.binary_mac_j * 1e12)
        ),
        ComputeModel::BitFusion(b) => println!(
            "  bit-fusion      {} fusion units, {} pJ per 8x8 MAC",
            b.fusion_units,
            plain(b.mac_8x8_j * 1e12)
        ),
        ComputeModel::PrecisionModes(pm) => {
            println!(
                "  modes           selection {}, weights stored {}, activations stored {}",
                lower(pm.selection),
                lower(pm.weight_storage),
                lower(pm.activation_storage)
            );
            for mode in &pm.modes {
                println!(
                    "    {:<18} w {:<8} a {:<8} {:>10.1} MACs/cycle {:>8.2} pJ/MAC",
                    mode.name,
                    mode.w.name(),
                    mode.a.name(),
                    mode.macs_per_cycle,
                    mode.mac_j * 1e12
                );
            }
        }
    }
    named_formats(&p);
    if let Some(t) = p.table() {
        let layers: Vec<&str> = t.layers().collect();
        println!(
            "  measured table  {} (layers {})",
            t.path().display(),
            layers.join(",")
        );
    }
    distinct_widths(&p, model, layers);
    println!("  sources");
    for (key, source) in p.sources() {
        println!("    {key}: {source}");
    }
    Ok(())
}

/// Which of the profile's widths (up to 8) it prices apart on `model`'s layers, by latency and
/// energy (size differs with every weight width): what `[bits] prune_dominated` keeps of them,
/// and what each dropped one runs as.
fn distinct_widths(p: &Profile, model: &str, layers: &[LayerShape]) {
    let declared: Vec<u8> = (p.precisions().iter().map(|b| b.width()))
        .filter(|&b| b <= 8)
        .collect();
    let supports = |b| p.supports(b);
    let mut space = match SearchSpace::with_choices(layers.to_vec(), &declared, false, p, &supports)
    {
        Ok(s) => s,
        Err(e) => {
            println!("  distinct widths cannot price {model}'s layers: {e}");
            return;
        }
    };
    space.prune_dominated(&Objectives::default(), &Budget::default());
    let lines: Vec<String> = (0..layers.len())
        .map(|l| {
            let part = |op: Operand, what: &str| {
                let kept = space.options(l, op);
                let runs_as = |v: Format| {
                    let b = space.run_layer(l, LayerBits::uniform(v));
                    if op == Operand::Weight {
                        b.w
                    } else {
                        b.a
                    }
                };
                let dropped: Vec<String> = (kept.iter())
                    .filter_map(|&k| {
                        let from: Vec<String> = (space.values().iter())
                            .filter(|&&v| v != k && runs_as(v) == k)
                            .map(|v| v.to_string())
                            .collect();
                        (!from.is_empty()).then(|| format!("{}→{k}", from.join(",")))
                    })
                    .collect();
                let dropped = match dropped.is_empty() {
                    true => String::new(),
                    false => format!(" (priced as a wider one: {})", dropped.join(", ")),
                };
                format!("{what} {}{dropped}", join(kept))
            };
            format!(
                "{}; {}",
                part(Operand::Weight, "weights"),
                part(Operand::Activation, "activations")
            )
        })
        .collect();
    println!("  distinct widths by latency and energy on {model}'s layers (size differs with every weight width):");
    if lines.windows(2).all(|w| w[0] == w[1]) {
        if let Some(line) = lines.first() {
            println!("    every layer: {line}");
        }
    } else {
        for (layer, line) in layers.iter().zip(&lines) {
            println!("    {}: {line}", layer.name);
        }
    }
}

/// The mode each named format runs in (uniformly; a weight-only format with 8-bit
/// activations): the profile's answer to "what does fp8 cost here".
fn named_formats(p: &Profile) {
    let named = [
        Format::FP16,
        Format::BF16,
        Format::FP8_E4M3,
        Format::FP8_E5M2,
        Format::INT4_G32,
        Format::INT4_G128,
    ];
    let runs: Vec<String> = (named.into_iter())
        .filter_map(|f| {
            let a = match f.allowed_for(QuantOperand::Activation) {
                true => f,
                false => Format::new(Format::MAX).ok()?,
            };
            let bits = LayerBits::new(f, a);
            let mode = match p.supports(f) {
                true => p.compute().run(bits).map_or("none".into(), |r| r.mode),
                false => "refused (4 is not in precisions)".into(),
            };
            Some(format!("{bits} → {mode}"))
        })
        .collect();
    println!("  named formats   {}", runs.join(", "));
}

fn join(bits: &[Format]) -> String {
    let v: Vec<String> = bits.iter().map(|b| b.to_string()).collect();
    v.join(",")
}

fn lower(x: impl std::fmt::Debug) -> String {
    format!("{x:?}").to_lowercase()
}

fn validate(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = 0;
    for file in files {
        match Profile::load(file) {
            Ok(p) => println!("ok      {} ({})", file.display(), p.name()),
            Err(e) => {
                failed += 1;
                println!("INVALID {e}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} profile files are invalid", files.len());
    }
    Ok(())
}

fn run_calibration(
    out: &Path,
    layers: &[LayerShape],
    batch: usize,
    repeats: usize,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let (profile, rows) = time_host(layers, batch, repeats, true).context("calibrating")?;
    let csv = write_host_timing(out, profile, &rows)?;
    Profile::load(out).context("the calibrated profile does not validate")?;
    println!(
        "wrote {} and {} ({} rows) in {:.1} s",
        out.display(),
        csv.display(),
        rows.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
