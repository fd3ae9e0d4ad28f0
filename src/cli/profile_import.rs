//! `bitsearch profiles import`: a simulator's cycle table (HAQ's `.npy` layout) written as a
//! profile with a measured table, on the numbers of the simulated device's own profile.

use std::path::Path;

use anyhow::{bail, Context};

use bitsearch::hardware::{
    cycle_table_rows, hex_sha256, policy_cost, resolve_profile, write_profile_with_table,
    CycleTable, Profile, ProfileFile,
};
use bitsearch::model::LayerShape;
use bitsearch::npy::NpyI64;
use bitsearch::quant::{Format, Policy};
use bitsearch::report::units::{quantity, Quantity};

/// `profiles import`'s flags.
pub struct Import<'a> {
    pub table: &'a Path,
    pub base: &'a str,
    pub batch: u64,
    pub clock_hz: Option<f64>,
    pub out: &'a Path,
    pub name: Option<String>,
}

/// Writes the base profile, at the table's batch, with the table's cycles as its measured table,
/// checks it loads and prices the model, and prints where it went.
pub fn run(args: &Import, model: &str, layers: &[LayerShape]) -> anyhow::Result<()> {
    let base_path = resolve_profile(args.base)?;
    let mut file = ProfileFile::read(&base_path)?;
    if args.batch < 1 {
        bail!("--batch must be at least 1, got {}", args.batch);
    }
    file.batch = i64::try_from(args.batch).context("--batch")?;
    let clock_hz = args.clock_hz.unwrap_or(file.clock_hz);
    if !(clock_hz.is_finite() && clock_hz > 0.0) {
        bail!("--clock-hz must be a positive number of Hz, got {clock_hz}");
    }
    file.clock_hz = clock_hz;
    let base = file.clone().check(&base_path)?;
    // Read once: the digest the sources record is of the bytes the table was parsed from.
    let bytes =
        std::fs::read(args.table).with_context(|| format!("reading {}", args.table.display()))?;
    let table = CycleTable::from_npy(NpyI64::parse(&bytes, args.table)?, args.table)?;
    let rows = cycle_table_rows(&table, layers, &base, clock_hz)
        .with_context(|| format!("converting {} for {model}", args.table.display()))?;
    let stem = args
        .out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned());
    file.name = args
        .name
        .clone()
        .or(stem)
        .unwrap_or_else(|| "imported".into());
    file.description = format!(
        "{model} on {}: per-layer latency from the simulator's cycle table {}",
        base.name(),
        args.table.display()
    );
    let sha256 = hex_sha256(&[&bytes]);
    let sources = import_sources(args, base.name(), (table.widths(), clock_hz), &sha256);
    file.sources.extend(sources);
    let header = format!(
        "# Written by `bitsearch profiles import` from {} ({model}, batch {}).\n# Latency is \
         the table's cycles at clock_hz; energy is NOT in the table: it is the base profile's \
         roofline estimate.\n\n",
        args.table.display(),
        args.batch
    );
    let csv = write_profile_with_table(args.out, file, &rows, &header)?;
    let profile = Profile::load(args.out).context("the imported profile does not validate")?;
    let eight = Policy::uniform(layers.len(), Format::new(8)?);
    let cost = policy_cost(&profile, layers, &eight)
        .with_context(|| format!("pricing {model} on {}", args.out.display()))?;
    println!(
        "wrote {} and {} ({} rows); {model} at uniform 8/8: {:.3} ms per batch of {}",
        args.out.display(),
        csv.display(),
        rows.len(),
        cost.latency_s * 1e3,
        profile.batch()
    );
    Ok(())
}

/// What the imported profile's `sources` add: where the latencies come from, the clock, the
/// full-precision rule and where energy comes from.
fn import_sources(
    args: &Import,
    base: &str,
    (widths, clock_hz): (u8, f64),
    sha256: &str,
) -> [(String, String); 3] {
    let clock = match args.clock_hz {
        Some(_) => format!(
            "{} MHz, given with --clock-hz",
            quantity(Quantity::Plain, Some(clock_hz / 1e6))
        ),
        None => format!(
            "{} MHz, the base profile `{base}`'s clock_hz (see its sources)",
            quantity(Quantity::Plain, Some(clock_hz / 1e6))
        ),
    };
    [
        (
            "table".into(),
            format!(
                "latency_us = cycles / clock_hz from the simulator's cycle table {} (SHA-256 \
                 {sha256}; int64 [layer, w_bits - 1, a_bits - 1], batch {}); clock_hz = {clock}",
                args.table.display(),
                args.batch
            ),
        ),
        (
            "table.full_precision".into(),
            format!(
                "32/32 is not in the table: priced as {widths}/{widths}, the widest width it \
                 has (HAQ's own search takes 8/8 as its reference, --float_bit 8)"
            ),
        ),
        (
            "table.energy".into(),
            format!("NOT from the table: the roofline estimate of `{base}`'s numbers"),
        ),
    ]
}
