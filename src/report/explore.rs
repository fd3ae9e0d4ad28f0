//! The explorer's data: every scored policy of one run (report.html) or several (compare.html)
//! as JSON in the schema `explorer/explorer.js` documents in its header, built from the run
//! directories alone (through `rundir`) and the device profile each run recorded.
//!
//! Per-attack robust numbers: every scored episode carries episodes.csv's `broken_by` (on the
//! validation split, how many examples each attack broke first: the search runs each attack
//! only on what the earlier ones left standing, so no attack has an accuracy of its own there).
//! `attacks` adds what a policy was re-scored with afterwards, on the test split: front-test.csv
//! (the strong suite's worst case and PGD per radius) and best-policy.json's `test.suite` (every
//! attack of the search's suite); `null` for the other policies.
//!
//! `measured`: measured.csv's rows of the policy (`bitsearch measure`), its latency timed in a
//! real runtime beside the profile's prediction, and the kernel each layer ran as; `null` for a
//! policy never measured.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::html::escape;
use super::prices::{Device, LayerPrice, Unpriced};
use super::ReportError;
use crate::hardware::Price;
use crate::quant::Format;
use crate::robust::Breakdown;
use crate::rundir::{BestPolicy, BudgetRecord, Episode, FrontTestRow, MeasuredRow, RunDir};

/// The whole document (`<script type="application/json" id="bitsearch-data">`).
#[derive(Debug, Clone, Serialize)]
pub struct ExplorerData {
    pub title: String,
    /// `run` or `compare`.
    pub kind: &'static str,
    pub runs: Vec<RunData>,
}

/// One run: what the legend, the run summary and the pinned table's layer columns need.
#[derive(Debug, Clone, Serialize)]
pub struct RunData {
    /// Unique among the runs of a page: the explorer identifies a point by (run, episode, reference).
    pub name: String,
    pub model: String,
    pub profile: String,
    pub agent: String,
    pub layers: Vec<String>,
    pub budget: BudgetRecord,
    pub uniform8: Option<Price>,
    /// Per layer, the price of each (w, a) the run's points give it, keyed `"w/a"`: every point
    /// takes its layers' prices from here, so a price is written once per run, not per point.
    /// `None` when the run's profile could not be shown to be the one the search priced with.
    pub prices: Option<Vec<BTreeMap<String, LayerPrice>>>,
    pub points: Vec<Point>,
}

impl RunData {
    /// The prices of `p`'s layers, in model order (what the explorer's pinned row shows).
    pub fn layer_costs(&self, p: &Point) -> Option<Vec<&LayerPrice>> {
        let prices = self.prices.as_ref()?;
        (prices.iter().zip(&p.bits))
            .map(|(layer, &[w, a])| layer.get(&price_key(w, a)))
            .collect()
    }
}

/// A layer's key in `RunData::prices`: its formats, `w/a` as a policy writes them (`8/8`,
/// `fp8e4m3/16`), so formats of one width are priced apart; explorer.js joins a point's `bits`
/// (numbers for integers, names for the others) the same way.
fn price_key(w: Format, a: Format) -> String {
    format!("{w}/{a}")
}

/// One scored policy: a row of episodes.csv or references.csv, raw SI values as logged.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub episode: usize,
    pub policy: String,
    /// (w, a) per layer: an integer format as its width (32 = full precision), a named one by
    /// name (`fp8e4m3`).
    pub bits: Vec<[Format; 2]>,
    pub accuracy: Option<f64>,
    /// As measured (a masking-flagged policy is credited 0 elsewhere, not here).
    pub robust_accuracy: Option<f64>,
    /// Which stage broke each attacked validation example first (episodes.csv's `broken_by`).
    pub broken_by: Option<Breakdown>,
    pub attacks: Option<Vec<Attack>>,
    /// Timed in a real runtime (measured.csv), one per batch size, by batch.
    pub measured: Option<Vec<Measurement>>,
    pub latency_s: f64,
    pub energy_j: f64,
    pub size_bytes: f64,
    pub reward: Option<f64>,
    pub feasible: bool,
    pub failed: bool,
    /// `none`, the checks that fired joined by `+`, or `null` (failed, or not logged).
    pub masking: Option<String>,
    /// In pareto.csv (the four-objective front of the search).
    pub front: bool,
    /// A uniform or FP32 reference policy (references.csv), numbered apart from the episodes.
    pub reference: bool,
}

/// One attack's accuracy, and where the number comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attack {
    /// The split, suite and file (`FRONT_TEST` or `BEST`): never the search's validation split.
    pub source: &'static str,
    pub attack: String,
    pub eps: f64,
    pub accuracy: f64,
}

/// A policy timed in a real runtime at one batch size: a row of measured.csv.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    pub batch: usize,
    pub measured_latency_s: f64,
    /// The run's profile's latency, at the batch size the profile prices only.
    pub predicted_latency_s: Option<f64>,
    /// Per layer, in the run's layer order, the kernel it ran as (`None` where measured.csv
    /// does not name the layer).
    pub kernels: Vec<Option<String>>,
    pub runtime: String,
    pub cpu: String,
    pub threads: usize,
}

impl Measurement {
    fn of(row: &MeasuredRow, layers: &[String]) -> Measurement {
        Measurement {
            batch: row.batch,
            measured_latency_s: row.measured_latency_s,
            predicted_latency_s: row.predicted_latency_s,
            kernels: (layers.iter())
                .map(|l| row.kernel_of(l).map(String::from))
                .collect(),
            runtime: row.runtime.clone(),
            cpu: row.cpu.clone(),
            threads: row.threads,
        }
    }
}

/// The source of front-test.csv's numbers.
pub const FRONT_TEST: &str = "test split, strong suite (front-test.csv)";
/// The source of best-policy.json's numbers.
pub const BEST: &str = "test split, the search's suite (best-policy.json)";

/// A radius the attacks ran at (an f32), as it was set: `0.1`, not `0.10000000149011612`.
fn radius(eps: f32) -> f64 {
    eps.to_string().parse().unwrap_or(f64::from(eps))
}

/// front-test.csv's numbers of one policy.
fn front_attacks(row: &FrontTestRow, eps: &[f32]) -> Vec<Attack> {
    let mut out = Vec::new();
    for (i, &e) in eps.iter().enumerate() {
        if let Some(&a) = row.robust.get(i) {
            out.push(Attack {
                source: FRONT_TEST,
                attack: "worst case".to_string(),
                eps: radius(e),
                accuracy: a,
            });
        }
        if let Some(&a) = row.pgd.get(i) {
            out.push(Attack {
                source: FRONT_TEST,
                attack: "PGD".to_string(),
                eps: radius(e),
                accuracy: a,
            });
        }
    }
    out
}

/// best-policy.json's suite: every attack, then the worst case per radius.
fn best_attacks(best: &BestPolicy) -> Vec<Attack> {
    // BestPolicy::read checked the suite's shape; a record built in memory may lack one.
    let Ok(Some(suite)) = best.test.suite_summary() else {
        return Vec::new();
    };
    let name = |kind: &str| match kind {
        "fgsm" => "FGSM".to_string(),
        "pgd" => "PGD".to_string(),
        "square" => "Square".to_string(),
        other => other.to_string(),
    };
    // The suite's radii are f32 written through f64 (0.10000000149011612): shown as set (0.1).
    let attacks = suite.attacks.iter().map(|a| Attack {
        source: BEST,
        attack: name(&a.kind),
        eps: radius(a.eps as f32),
        accuracy: a.accuracy,
    });
    let worst = suite.by_eps.iter().map(|w| Attack {
        source: BEST,
        attack: "worst case".to_string(),
        eps: radius(w.eps as f32),
        accuracy: w.worst_case,
    });
    attacks.chain(worst).collect()
}

/// The test-split numbers of episode `e`, if it was re-scored (never a reference policy).
fn attacks_of(run: &RunDir, e: &Episode) -> Option<Vec<Attack>> {
    let mut out = Vec::new();
    if let Some(front) = &run.front_test {
        let row = (front.rows.iter()).find(|r| r.episode == e.episode && r.policy == e.policy);
        out.extend(
            row.map(|r| front_attacks(r, &front.eps))
                .unwrap_or_default(),
        );
    }
    if let Some(best) =
        (run.best.as_ref()).filter(|b| b.episode == e.episode && b.policy == e.policy)
    {
        out.extend(best_attacks(best));
    }
    (!out.is_empty()).then_some(out)
}

/// measured.csv's rows of episode `e`, by batch size (never a reference policy).
fn measured_of(run: &RunDir, e: &Episode, layers: &[String]) -> Option<Vec<Measurement>> {
    let mut out: Vec<Measurement> = (run.measured.iter().flatten())
        .filter(|r| r.episode == e.episode && r.policy == e.policy)
        .map(|r| Measurement::of(r, layers))
        .collect();
    out.sort_by_key(|m| m.batch);
    (!out.is_empty()).then_some(out)
}

/// A run's points, and why its layers are not priced (if they are not).
pub fn run_data(run: &RunDir, name: &str) -> (RunData, Option<Unpriced>) {
    let (device, mut why) = match Device::of_run(&run.config) {
        Ok(d) => (Some(d), None),
        Err(e) => (None, Some(e)),
    };
    let front: HashSet<usize> = (run.pareto.iter())
        .flat_map(|p| p.rows.iter().map(|r| r.episode))
        .collect();
    // A low-fidelity score is the agent's data, not a result: the explorer shows full ones.
    let episodes = run.episodes.rows.iter().filter(|e| e.fidelity.is_full());
    let rows = (episodes.map(|e| (e, false))).chain(run.references.rows.iter().map(|e| (e, true)));
    let mut points = Vec::with_capacity(run.episodes.rows.len() + run.references.rows.len());
    let mut prices = vec![BTreeMap::new(); run.config.layers.len()];
    let c = &run.config;
    let layers: Vec<String> = c.layers.iter().map(|l| l.name.clone()).collect();
    for (e, reference) in rows {
        if let (Some(d), None) = (&device, &why) {
            if let Err(err) = add_prices(d, run, e, &mut prices) {
                why = Some(err);
            }
        }
        points.push(point(run, e, reference, &front, &layers));
    }
    let data = RunData {
        name: name.to_string(),
        model: c.model.clone(),
        profile: c.profile.name.clone(),
        agent: c.agent.name.clone(),
        layers,
        budget: c.budget,
        uniform8: c.uniform8,
        // A policy the profile cannot price: no prices at all, rather than a table with holes.
        prices: (device.is_some() && why.is_none()).then_some(prices),
        points,
    };
    (data, why)
}

/// Adds the prices of `e`'s layers that `prices` lacks.
fn add_prices(
    device: &Device,
    run: &RunDir,
    e: &Episode,
    prices: &mut [BTreeMap<String, LayerPrice>],
) -> Result<(), Unpriced> {
    let key = |b: &crate::quant::LayerBits| price_key(b.w, b.a);
    if (prices.iter().zip(&e.bits)).all(|(layer, b)| layer.contains_key(&key(b))) {
        return Ok(());
    }
    let costs = device.layers(&run.config, &e.bits)?;
    for ((layer, b), cost) in prices.iter_mut().zip(&e.bits).zip(costs) {
        layer.entry(key(b)).or_insert(cost);
    }
    Ok(())
}

fn point(
    run: &RunDir,
    e: &Episode,
    reference: bool,
    front: &HashSet<usize>,
    layers: &[String],
) -> Point {
    Point {
        episode: e.episode,
        policy: e.policy.clone(),
        bits: e.bits.iter().map(|b| [b.w, b.a]).collect(),
        accuracy: e.accuracy,
        robust_accuracy: e.robust_accuracy,
        broken_by: e.broken_by,
        attacks: if reference { None } else { attacks_of(run, e) },
        measured: if reference {
            None
        } else {
            measured_of(run, e, layers)
        },
        latency_s: e.latency_s,
        energy_j: e.energy_j,
        size_bytes: e.size_bytes,
        reward: e.reward,
        feasible: e.feasible,
        failed: e.failed,
        masking: e.masking.map(|c| c.to_string()),
        front: !reference && front.contains(&e.episode),
        reference,
    }
}

const CSS: &str = include_str!("explorer/explorer.css");
/// Chart.js, vendored unmodified (explorer/README.md says which release and why).
const CHART_JS: &str = include_str!("explorer/chart.umd.min.js");
/// How one point reads (tooltip, pinned row); explorer.js uses it.
const ROWS_JS: &str = include_str!("explorer/explorer-rows.js");
/// The axes' view (fit, zoom, pan, log scales); explorer.js uses it.
const VIEW_JS: &str = include_str!("explorer/explorer-view.js");
const EXPLORER_JS: &str = include_str!("explorer/explorer.js");

/// The explorer of one page: its data, and the notes shown above it (why a run has no
/// per-layer prices).
#[derive(Debug, Clone)]
pub struct Explorer {
    pub data: ExplorerData,
    pub notes: Vec<String>,
}

/// The full reason, with its causes (`Pricing` wraps the cost model's error).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text += &format!(": {s}");
        source = s.source();
    }
    text
}

impl Explorer {
    /// report.html's explorer: one run.
    pub fn of_run(run: &RunDir) -> Explorer {
        let (data, why) = run_data(run, &run.config.run);
        let notes = why
            .iter()
            .map(|w| format!("No per-layer latency and energy: {}.", chain(w)));
        Explorer {
            notes: notes.collect(),
            data: ExplorerData {
                title: "Every scored policy".to_string(),
                kind: "run",
                runs: vec![data],
            },
        }
    }

    /// compare.html's explorer: one run per directory, named by `labels` (told apart further
    /// by their position when two labels are still equal).
    pub fn of_runs(runs: &[RunDir], labels: &[String]) -> Explorer {
        let mut notes = Vec::new();
        let mut data = Vec::new();
        for (i, (run, label)) in runs.iter().zip(labels).enumerate() {
            let name = match labels.iter().filter(|l| *l == label).count() {
                1 => label.clone(),
                _ => format!("{label} #{}", i + 1),
            };
            let (d, why) = run_data(run, &name);
            if let Some(w) = why {
                notes.push(format!(
                    "{name}: no per-layer latency and energy: {}.",
                    chain(&w)
                ));
            }
            data.push(d);
        }
        Explorer {
            notes,
            data: ExplorerData {
                title: format!("Every scored policy of {} runs", runs.len()),
                kind: "compare",
                runs: data,
            },
        }
    }

    /// The explorer's part of the page, for its top: the notes, `<div id="explorer">`, then
    /// the scripts that fill it. Placed before the static charts, so the explorer is drawn
    /// while the browser is still parsing them (their thousands of SVG elements take as long
    /// as the explorer itself on a 2,000-episode run).
    pub fn section(&self) -> Result<String, ReportError> {
        let mut out = String::new();
        for n in &self.notes {
            out += &format!("<p class=\"note explorer-note\">{}</p>\n", escape(n));
        }
        out += "<div id=\"explorer\"></div>\n<noscript><p class=\"note\">The explorer needs \
                JavaScript; the static charts and tables below need none.</p></noscript>\n";
        out += &self.scripts()?;
        Ok(out)
    }

    /// The data, Chart.js, explorer-rows.js, explorer-view.js, then explorer.js, which uses all
    /// four. Every `<` of the JSON is written `\u003c`, so no string in it can close the script
    /// element.
    fn scripts(&self) -> Result<String, ReportError> {
        let json = serde_json::to_string(&self.data)?.replace('<', "\\u003c");
        Ok(format!(
            "<script type=\"application/json\" id=\"bitsearch-data\">{json}</script>\n\
             <script>{CHART_JS}</script>\n<script>{ROWS_JS}</script>\n\
             <script>{VIEW_JS}</script>\n<script>{EXPLORER_JS}</script>\n"
        ))
    }

    /// The explorer's CSS, for the page's `<style>`.
    pub fn css() -> &'static str {
        CSS
    }
}
