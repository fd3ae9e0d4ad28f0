//! The per-layer sensitivity study (`bitsearch sensitivity`): for each quantizable layer, each
//! operand and each format the device runs for the experiment's declared widths, the policy
//! with only that operand at that format and every other one at the reference (uniform 8/8),
//! scored by the search's own `Scorer` (the same policy-seeded fine-tune, validation accuracy
//! and validation suite) through the score cache beside the FP32 baseline, and priced on the
//! device. So a later search reuses every score, and a killed study, run again, scores only
//! what the cache does not hold. One policy at a time, in this process.
//!
//! Writes `DIR/sensitivity.json` (what was run) first, then `DIR/sensitivity.csv` after every
//! policy (`rundir::Sensitivity`: the drops against the reference row, the savings, each
//! layer's share of the reference's latency and energy).

mod plan;

use std::path::{Path, PathBuf};

pub use plan::{probes, Probe, REFERENCE_BITS};

use crate::data::Dataset;
use crate::env::{Operand, SearchSpace};
use crate::experiment::Experiment;
use crate::fidelity::Fidelity;
use crate::hardware::{Price, Profile};
use crate::model::Model;
use crate::quant::Format;
use crate::rundir::{
    dir_kind, this_command, DirKind, ProfileInfo, RunDirError, RunLock, Sensitivity,
    SensitivityConfig, SensitivityRow, Varied,
};
use crate::score::Evaluator;
use crate::search::{cache_file, ScoreCache, Scored, Scorer, SearchError};
use crate::train::progress_bar;

/// Why a sensitivity study stopped.
#[derive(Debug, thiserror::Error)]
pub enum SensitivityError {
    #[error(transparent)]
    Search(Box<SearchError>),
    #[error(transparent)]
    RunDir(Box<RunDirError>),
    #[error(transparent)]
    Env(Box<crate::env::EnvError>),
    #[error(transparent)]
    Score(Box<crate::score::ScoreError>),
    #[error("{}: cannot record the experiment: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{}: holds a {kind}, not a sensitivity study; choose another --out",
        dir.display()
    )]
    OtherKind { dir: PathBuf, kind: &'static str },
}

crate::errors::boxed_from!(
    SensitivityError;
    Search: SearchError,
    RunDir: RunDirError,
    Env: crate::env::EnvError,
    Score: crate::score::ScoreError
);

/// What a study is given.
pub struct SensitivitySpec<'a> {
    pub exp: &'a Experiment,
    pub data: &'a Dataset,
    /// The FP32 baseline's model (with `[quant] attention`'s layers) and its cache directory,
    /// beside which the score cache lives.
    pub base: &'a Model,
    pub baseline_dir: &'a Path,
    pub profile: &'a Profile,
    /// The study's directory (sensitivity.json, sensitivity.csv).
    pub dir: PathBuf,
    pub show: bool,
}

/// What a study did.
#[derive(Debug)]
pub struct SensitivitySummary {
    pub table: Sensitivity,
    pub config: SensitivityConfig,
    /// Policies fine-tuned and attacked here, and those the score cache held.
    pub fresh: usize,
    pub cached: usize,
    /// The directory's lock, still held so the caller writes the report before anyone else
    /// writes the directory.
    pub lock: RunLock,
}

/// Runs the study of `spec`: every probe scored (or taken from the cache) and priced, the CSV
/// rewritten after each.
pub fn run_sensitivity(spec: &SensitivitySpec) -> Result<SensitivitySummary, SensitivityError> {
    refuse_other_kinds(&spec.dir)?;
    let lock = RunLock::acquire(&spec.dir, &this_command())?;
    if let Some(notice) = lock.took_over() {
        eprintln!("{notice}");
    }
    let space = space(spec)?;
    let reference = space.run_bits(REFERENCE_BITS);
    let (w, a) = (
        space.options(0, Operand::Weight),
        space.options(0, Operand::Activation),
    );
    let probes = probes(space.layers.len(), reference, [w, a]);
    let config = config(spec, &space)?;
    crate::rundir::write_json(&spec.dir.join(SensitivityConfig::FILE), &config)?;
    let cache = ScoreCache::open(config.scores.clone())?;
    let scorer =
        Scorer::new(Evaluator::new(spec.exp, spec.data, spec.base)?)?.with_cache(Some(cache))?;
    let bar = progress_bar(probes.len() as u64, spec.show, BAR);
    let (mut table, mut fresh) = (Sensitivity { rows: Vec::new() }, 0);
    for probe in &probes {
        fresh += usize::from(scorer.cached(&probe.policy, Fidelity::Full).is_none());
        let scored = scorer.score(&space, &probe.policy)?;
        let reference = table.rows.first();
        let row = row(&space, probe, &scored, reference.map(|r| (r, &probes[0])));
        bar.set_message(progress(&row));
        table.rows.push(row);
        table.write(&spec.dir.join(Sensitivity::FILE))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(SensitivitySummary {
        cached: probes.len() - fresh,
        fresh,
        table,
        config,
        lock,
    })
}

const BAR: &str = "sensitivity {bar:30} policy {pos}/{len}  {msg}  [{elapsed} < {eta}]";

/// A directory holding a search run or a DQ study is not written into: sensitivity.csv would
/// make the report read it as a study. (The command line asks before it trains anything.)
pub fn refuse_other_kinds(dir: &Path) -> Result<(), SensitivityError> {
    let kind = match dir_kind(dir) {
        Ok(DirKind::Run) => "search run (config.json)",
        Ok(DirKind::Dq) => "DQ study (dq.csv)",
        Ok(DirKind::Sensitivity) | Err(_) => return Ok(()),
    };
    Err(SensitivityError::OtherKind {
        dir: dir.to_path_buf(),
        kind,
    })
}

/// The model's layers priced on the device at every width it runs for the declared ones and
/// the reference (untied and unpruned: every operand is varied alone, at every such width).
fn space(spec: &SensitivitySpec) -> Result<SearchSpace, SensitivityError> {
    let mut declared = spec.exp.bits.declared_formats();
    for list in &mut declared {
        list.push(Format::new(REFERENCE_BITS).map_err(crate::env::EnvError::from)?);
    }
    let supports = |b| spec.profile.supports(b);
    Ok(SearchSpace::with_formats(
        spec.base.shapes().to_vec(),
        declared,
        false,
        spec.profile,
        &supports,
    )?)
}

fn config(
    spec: &SensitivitySpec,
    space: &SearchSpace,
) -> Result<SensitivityConfig, SensitivityError> {
    let path = spec.dir.join(SensitivityConfig::FILE);
    let p = spec.profile;
    Ok(SensitivityConfig {
        experiment: serde_json::to_value(spec.exp)
            .map_err(|source| SensitivityError::Json { path, source })?,
        model: spec.exp.model.name(),
        layers: space.layers.clone(),
        profile: ProfileInfo {
            name: p.name().to_string(),
            compute: p.compute().kind().to_string(),
            file: Some(p.path().to_path_buf()),
            sha256: Some(p.digest().to_string()),
        },
        reference: space.run_bits(REFERENCE_BITS).width(),
        formats: space.values().iter().map(|b| b.to_string()).collect(),
        baseline: spec.baseline_dir.to_path_buf(),
        scores: cache_file(spec.exp, &spec.baseline_dir.join("scores")),
        command: this_command(),
    })
}

/// The row of `probe`, scored and priced; `reference` is the reference row and its probe
/// (None while scoring the reference itself).
fn row(
    space: &SearchSpace,
    probe: &Probe,
    scored: &Scored,
    reference: Option<(&SensitivityRow, &Probe)>,
) -> SensitivityRow {
    let score = scored.outcome.ok();
    let (acc, rob) = (score.map(|s| s.accuracy), score.map(|s| s.robust_accuracy));
    let ref_price = match reference {
        Some((_, p)) => space.price(&p.policy),
        None => scored.price,
    };
    let drop = |mine: Option<f64>, theirs: fn(&SensitivityRow) -> Option<f64>| {
        let theirs = reference.map_or(mine, |(r, _)| theirs(r));
        Some(theirs? - mine?)
    };
    let saved = |get: fn(&Price) -> f64| 1.0 - get(&scored.price) / get(&ref_price);
    let share = |get: fn(&Price) -> f64| {
        let layer = probe.layer?;
        let bits = reference?.1.policy.get(layer)?;
        Some(get(&space.layer_price(layer, bits)) / get(&ref_price))
    };
    SensitivityRow {
        layer: probe
            .layer
            .map(|l| space.layers[l].name.clone())
            .unwrap_or_default(),
        operand: probe.operand,
        format: probe.format.to_string(),
        policy: probe.policy.to_string(),
        accuracy: acc,
        robust_accuracy: rob,
        masking: score.map(|s| s.masking).unwrap_or_default(),
        accuracy_drop: drop(acc, |r| r.accuracy),
        robust_accuracy_drop: drop(rob, |r| r.robust_accuracy),
        latency_s: scored.price.latency_s,
        energy_j: scored.price.energy_j,
        latency_saved: saved(|p| p.latency_s),
        energy_saved: saved(|p| p.energy_j),
        layer_latency_share: share(|p| p.latency_s),
        layer_energy_share: share(|p| p.energy_j),
    }
}

/// The progress bar's message: the row just scored.
fn progress(r: &SensitivityRow) -> String {
    let pct = |v: Option<f64>| v.map_or("failed".to_string(), |v| format!("{:.2}%", 100.0 * v));
    let what = match r.operand {
        Varied::Reference => format!("reference {}", r.format),
        op => format!("{} {} {}", r.layer, op.name(), r.format),
    };
    format!(
        "{what}: accuracy {} robust {}",
        pct(r.accuracy),
        pct(r.robust_accuracy)
    )
}
