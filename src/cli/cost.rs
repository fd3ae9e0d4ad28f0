//! `bitsearch cost`: price a policy on a device profile, per layer and in total, next to uniform 8/8.

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use bitsearch::hardware::{compare_to_uniform8, resolve_profile, Comparison, Profile};
use bitsearch::model::LayerShape;
use bitsearch::quant::{Format, Policy};

/// Arguments of `bitsearch cost`.
#[derive(Debug, Clone, Args)]
pub struct CostArgs {
    /// Device profile: a name in hardware-profiles/ (e.g. bismo-edge) or a .toml file.
    #[arg(long)]
    pub profile: String,
    /// Formats per layer as W/A, comma-separated: integer widths, e.g. 8/8,4/4,4/8,2/8,8/8 (32 =
    /// full precision), or named formats, e.g. fp8e4m3/fp8e4m3,int4g128/fp16,bf16/bf16
    /// [default: uniform 8/8].
    #[arg(long)]
    pub policy: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    model: &'a str,
    profile: &'a str,
    profile_file: String,
    batch: u64,
    per: &'static str,
    /// The policy's text (`policy` is its priced layers, from the comparison).
    bits: String,
    #[serde(flatten)]
    comparison: &'a Comparison,
}

/// Prices the policy of `args` on `layers` of `model` and prints the table (or JSON).
pub fn run(args: &CostArgs, model: &str, layers: &[LayerShape]) -> anyhow::Result<()> {
    let path = resolve_profile(&args.profile)?;
    let profile = Profile::load(&path)?;
    let policy = match &args.policy {
        Some(text) => Policy::parse(text).with_context(|| format!("--policy {text}"))?,
        None => Policy::uniform(layers.len(), Format::new(8)?),
    };
    policy
        .check_len(model, layers.len())
        .with_context(|| format!("--policy {policy}"))?;
    let cmp = compare_to_uniform8(&profile, layers, &policy)
        .with_context(|| format!("pricing {policy} on {}", profile.name()))?;
    if args.json {
        let report = Report {
            model,
            profile: profile.name(),
            profile_file: path.display().to_string(),
            batch: profile.batch(),
            per: "batch",
            bits: policy.to_string(),
            comparison: &cmp,
        };
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(model, &profile, &policy, &cmp);
    }
    Ok(())
}

fn print_table(model: &str, profile: &Profile, policy: &Policy, cmp: &Comparison) {
    println!(
        "{model} on {} ({}), batch {}: latency and energy per batch",
        profile.name(),
        profile.compute().kind(),
        profile.batch()
    );
    println!(
        "{:<8} {:>5} {:>12} {:>10} {:>7} {:<18} {:>12} {:>12} {:<6}",
        "layer", "w/a", "MACs", "bytes", "bound", "mode", "latency_us", "energy_uJ", "source"
    );
    for l in &cmp.policy.layers {
        let c = &l.cost;
        println!(
            "{:<8} {:>5} {:>12} {:>10} {:>7} {:<18} {:>12.3} {:>12.4} {:<6}",
            l.layer,
            l.bits,
            c.macs,
            c.bytes,
            format!("{:?}", c.bound).to_lowercase(),
            c.mode,
            c.latency_s * 1e6,
            c.energy_j * 1e6,
            format!("{:?}", c.source).to_lowercase()
        );
    }
    let p = &cmp.policy;
    let u = &cmp.uniform8;
    println!(
        "{:<8} {:>5} {:>12} {:>10} {:>7} {:<18} {:>12.3} {:>12.4}",
        "total",
        "",
        p.macs,
        p.bytes,
        "",
        "",
        p.latency_s * 1e6,
        p.energy_j * 1e6
    );
    println!(
        "{:<8} {:>5} {:>12} {:>10} {:>7} {:<18} {:>12.3} {:>12.4}",
        "8/8",
        "",
        u.macs,
        u.bytes,
        "",
        "",
        u.latency_s * 1e6,
        u.energy_j * 1e6
    );
    println!(
        "policy {policy} vs uniform 8/8: latency x{:.3}, energy x{:.3}, bytes x{:.3}",
        cmp.ratio.latency, cmp.ratio.energy, cmp.ratio.bytes
    );
}
