//! `bitsearch profiles agreement`: profiles' rooflines held against a simulator's cycle table
//! (`hardware::agreement`), unfitted, and with `--fit` fitted on half the layers
//! (`hardware::fit`) and tested on the other half.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Serialize;

use bitsearch::hardware::{
    agreement, fit, random_policies, resolve_profile, Agreement, CycleTable, Fit, Grid, Profile,
    Roofline,
};
use bitsearch::model::LayerShape;
use bitsearch::quant::{Format, Policy};

/// Arguments of `profiles agreement`.
#[derive(Debug, Clone, Args)]
pub struct AgreementArgs {
    /// The cycle table (HAQ's .npy layout), simulated on the model given by --arch or
    /// --experiment.
    #[arg(long)]
    pub table: PathBuf,
    /// A profile to hold against it (a name or a .toml file); repeatable.
    #[arg(long = "profile", required = true)]
    pub profiles: Vec<String>,
    /// A file holding a mixed policy (W/A per layer, comma-separated) to price besides uniform
    /// 2/2..8/8; repeatable; named after the file's stem.
    #[arg(long = "policy-file")]
    pub policy_files: Vec<PathBuf>,
    /// Random mixed policies to price, every w and a drawn uniformly from 2..=8.
    #[arg(long, default_value_t = 3)]
    pub random: usize,
    /// Seed of the random policies.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The clock the table counts cycles of, in Hz [default: each profile's clock_hz].
    #[arg(long)]
    pub clock_hz: Option<f64>,
    /// Fit each profile's compute rate, bandwidth and overhead on these layers (by index) and
    /// report the agreement on the others.
    #[arg(long, value_enum)]
    pub fit: Option<Half>,
    /// How many of the layers that disagree most to list.
    #[arg(long, default_value_t = 5)]
    pub worst: usize,
    /// Write every (profile, layer, w, a) with the table's and the roofline's cycles to this CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
}

/// Which half of the layers a fit sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Half {
    /// Layers 0, 2, 4, ...; tested on 1, 3, 5, ...
    Even,
    /// Layers 1, 3, 5, ...; tested on 0, 2, 4, ...
    Odd,
}

impl Half {
    /// (fitted layers, tested layers) of `n`.
    fn split(self, n: usize) -> (Vec<usize>, Vec<usize>) {
        let parity = usize::from(self == Half::Odd);
        (0..n).partition(|l| l % 2 == parity)
    }
}

#[derive(Serialize)]
struct Report<'a> {
    model: &'a str,
    table: String,
    profiles: Vec<ProfileReport>,
}

#[derive(Serialize)]
struct ProfileReport {
    profile: String,
    clock_hz: f64,
    unfitted: Agreement,
    #[serde(skip_serializing_if = "Option::is_none")]
    fitted: Option<Fitted>,
    #[serde(skip)]
    roofline: Roofline,
}

#[derive(Serialize)]
struct Fitted {
    on: Half,
    constants: Fit,
    /// The profile's constants with the fit applied, in the profile's units.
    compute_rate_note: String,
    bandwidth_gb_per_s: f64,
    overhead_us: f64,
    held_out: Agreement,
    #[serde(skip)]
    roofline: Roofline,
}

/// Runs the comparison for every profile and prints it (or JSON), writing the CSV if asked.
pub fn run(args: &AgreementArgs, model: &str, layers: &[LayerShape]) -> anyhow::Result<()> {
    let table = CycleTable::load(&args.table)?;
    if table.layers() != layers.len() {
        anyhow::bail!(
            "{} has {} layers but {model} has {}: compare a table with the model it was \
             simulated on (HAQ's: --arch mobilenetv2 --classes 1000)",
            args.table.display(),
            table.layers(),
            layers.len()
        );
    }
    let policies = policies(args, layers.len())?;
    let reference = Grid::from_table(&table);
    let mut reports = Vec::new();
    for name in &args.profiles {
        let path = resolve_profile(name)?;
        let profile = Profile::load(&path).with_context(|| format!("loading profile {name}"))?;
        reports.push(compare(
            args, &profile, &table, &reference, layers, &policies,
        )?);
    }
    if let Some(csv) = &args.csv {
        write_csv(csv, &reports, &reference, layers)?;
    }
    let report = Report {
        model,
        table: args.table.display().to_string(),
        profiles: reports,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        super::agreement_print::print(&report_view(&report), args.worst);
    }
    Ok(())
}

fn compare(
    args: &AgreementArgs,
    profile: &Profile,
    table: &CycleTable,
    reference: &Grid,
    layers: &[LayerShape],
    policies: &[(String, Policy)],
) -> anyhow::Result<ProfileReport> {
    let clock_hz = args.clock_hz.unwrap_or(profile.clock_hz());
    let roofline = Roofline::of(profile, layers, table.widths(), clock_hz)
        .with_context(|| format!("pricing the model on {}", profile.name()))?;
    let all: Vec<usize> = (0..layers.len()).collect();
    let unfitted = agreement(&roofline, reference, layers, &all, policies);
    let fitted = args.fit.map(|half| {
        let (train, test) = half.split(layers.len());
        let constants = fit(&roofline, reference, &train);
        let fitted = constants.apply(&roofline);
        let held_out = agreement(&fitted, reference, layers, &test, policies);
        Fitted {
            on: half,
            compute_rate_note: compute_rate_note(profile, constants.compute_rate),
            bandwidth_gb_per_s: profile.memory().bandwidth_bytes_per_s * constants.bandwidth / 1e9,
            overhead_us: constants.overhead / clock_hz * 1e6,
            constants,
            held_out,
            roofline: fitted,
        }
    });
    Ok(ProfileReport {
        profile: profile.name().to_string(),
        clock_hz,
        unfitted,
        fitted,
        roofline,
    })
}

/// The fitted compute rate in the profile's own terms.
fn compute_rate_note(profile: &Profile, rate: f64) -> String {
    use bitsearch::hardware::ComputeModel;
    match profile.compute() {
        ComputeModel::BitSerial(b) => {
            format!(
                "binary_macs_per_cycle {:.0}",
                b.binary_macs_per_cycle * rate
            )
        }
        ComputeModel::BitFusion(b) => format!("fusion_units {:.1}", b.fusion_units * rate),
        ComputeModel::PrecisionModes(_) => format!("every mode's macs_per_cycle x{rate:.3}"),
    }
}

/// Uniform 2/2..8/8, the policy files, then the random policies.
fn policies(args: &AgreementArgs, n: usize) -> anyhow::Result<Vec<(String, Policy)>> {
    let mut out = Vec::new();
    for b in 2..=8 {
        out.push((format!("{b}/{b}"), Policy::uniform(n, Format::new(b)?)));
    }
    for file in &args.policy_files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--policy-file {}", file.display()))?;
        let policy = Policy::parse(text.trim())
            .with_context(|| format!("--policy-file {}", file.display()))?;
        policy
            .check_len("the model", n)
            .with_context(|| format!("--policy-file {}", file.display()))?;
        let name = file.file_stem().map(|s| s.to_string_lossy().into_owned());
        out.push((name.unwrap_or_else(|| "policy".into()), policy));
    }
    let random = random_policies(args.random, n, 2, 8, args.seed);
    for (i, p) in random.into_iter().enumerate() {
        out.push((format!("random {} (seed {})", i + 1, args.seed), p));
    }
    Ok(out)
}

/// One row per profile, layer and (w, a): both latencies in cycles, the roofline's bound, and
/// the fitted roofline's latency when there is one.
fn write_csv(
    path: &Path,
    reports: &[ProfileReport],
    reference: &Grid,
    layers: &[LayerShape],
) -> anyhow::Result<()> {
    let mut out = String::from(
        "profile,layer,index,kind,w_bits,a_bits,table_cycles,roofline_cycles,bound,fitted_cycles\n",
    );
    for r in reports {
        let predicted = r.roofline.latency();
        let fitted_latency = r.fitted.as_ref().map(|f| f.roofline.latency());
        for (l, layer) in layers.iter().enumerate() {
            for (w, a) in reference.pairs() {
                let fitted = (fitted_latency.as_ref())
                    .map(|g| format!("{:.1}", g.at(l, w, a)))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "{},{},{l},{},{w},{a},{},{:.1},{},{fitted}\n",
                    r.profile,
                    layer.name,
                    bitsearch::hardware::kind(layer),
                    reference.at(l, w, a),
                    predicted.at(l, w, a),
                    format!("{:?}", r.roofline.bound(l, w, a)).to_lowercase(),
                ));
            }
        }
    }
    bitsearch::atomic::write_atomic(path, out.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// What the printer needs of a report.
pub struct View<'a> {
    pub model: &'a str,
    pub table: &'a str,
    pub profiles: Vec<ProfileView<'a>>,
}

pub struct ProfileView<'a> {
    pub profile: &'a str,
    pub clock_hz: f64,
    pub unfitted: &'a Agreement,
    /// (fitted half, constants, the constants in the profile's units, the held-out agreement).
    pub fitted: Option<(Half, &'a Fit, String, &'a Agreement)>,
}

fn report_view<'a>(r: &'a Report<'a>) -> View<'a> {
    View {
        model: r.model,
        table: &r.table,
        profiles: (r.profiles.iter())
            .map(|p| ProfileView {
                profile: &p.profile,
                clock_hz: p.clock_hz,
                unfitted: &p.unfitted,
                fitted: p.fitted.as_ref().map(|f| {
                    let units = format!(
                        "{}, bandwidth {:.3} GB/s, overhead {:.2} us",
                        f.compute_rate_note, f.bandwidth_gb_per_s, f.overhead_us
                    );
                    (f.on, &f.constants, units, &f.held_out)
                }),
            })
            .collect(),
    }
}
