//! Hypervolume over episodes (`bitsearch compare --at N,M --reference DIR`): how much of a
//! reference front each run has found after its first N episodes, per run and per agent (mean ±
//! sample standard deviation over the agent's runs, i.e. its seeds).
//!
//! For each objective set of `STUDY_SETS`, with F the reference front's points (the feasible
//! scored episodes of the `--reference` runs, or of every compared run without it):
//!
//!   r = the worst value per objective over F (`pareto::worst_point`),
//!   fraction(run, N) = HV(run's first N episodes, r) / HV(F, r),
//!
//! where a run's points are its feasible scored episodes among the first N rows of its
//! episodes.csv, a masking-flagged policy's robust accuracy credited 0 (as the search credits it),
//! and HV is `pareto::hypervolume` (points not strictly better than r in every objective add
//! nothing). So the reference run against itself at its own length is 1, and a run whose points
//! are a subset of F's is at most 1. A run that has logged fewer than N episodes has no value at N.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::charts::{Legend, Line, LinesChart};
use super::compare::defused;
use super::html::{escape, figure, table};
use super::style::ChartFiles;
use super::units::{quantity, Quantity};
use super::ReportError;
use crate::pareto::{hypervolume, senses, worst_point, Objective, ParetoError, Reference};
use crate::rundir::{write_csv, Episode, RunDir, RunDirError};

/// The objective sets of the agent study: accuracy × robust accuracy × latency, and accuracy ×
/// latency.
pub const STUDY_SETS: [&[Objective]; 2] = [
    &[
        Objective::Accuracy,
        Objective::RobustAccuracy,
        Objective::Latency,
    ],
    &[Objective::Accuracy, Objective::Latency],
];

/// What `--at` and `--reference` ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct AtSpec {
    /// Episode counts, each at least 1, in the order given.
    pub at: Vec<usize>,
    /// The runs whose union is the reference front; empty: the compared runs themselves.
    pub reference: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error("--at: an episode count must be at least 1, got 0")]
    ZeroEpisodes,
    #[error("the reference front ({reference}) has no feasible scored policy to measure against")]
    EmptyReference { reference: String },
    #[error(
        "the reference front ({reference}) has no volume on {set} (its points share the worst \
         value of an objective): nothing to normalize by"
    )]
    FlatReference { reference: String, set: String },
    #[error("hypervolume on {set}: {source}")]
    Pareto { set: String, source: ParetoError },
    #[error(transparent)]
    RunDir(#[from] RunDirError),
}

/// One objective set's reference: its point and the reference front's hypervolume.
#[derive(Debug, Clone, PartialEq)]
pub struct SetReference {
    pub objectives: &'static [Objective],
    pub point: Vec<f64>,
    pub hv: f64,
}

/// One run: per set, per entry of `at`, (hypervolume, fraction), `None` when the run has
/// logged fewer episodes.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyRow {
    pub label: String,
    pub dir: PathBuf,
    pub agent: String,
    pub logged: usize,
    pub values: Vec<Vec<Option<(f64, f64)>>>,
}

/// Mean and sample standard deviation of the fractions of an agent's runs (0 for one run).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub runs: usize,
    pub mean: f64,
    pub sd: f64,
}

/// One agent: per set, per entry of `at`, the spread over its runs that reached N episodes.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRow {
    pub agent: String,
    pub values: Vec<Vec<Option<Spread>>>,
}

/// The hypervolumes at N episodes of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Study {
    pub at: Vec<usize>,
    /// What the reference front is, for people (`runs/x` or `the union of the compared runs`).
    pub reference: String,
    pub sets: Vec<SetReference>,
    pub rows: Vec<StudyRow>,
    /// In the order agents first appear among the runs.
    pub agents: Vec<AgentRow>,
    /// The rendered `charts()`, once the caller has drawn them (compare.html shows them).
    pub chart_files: Vec<ChartFiles>,
}

/// The rows of an episodes.csv (in the order the search ran them) up to its `n`-th
/// full-fidelity one, as `--episodes` counts them, or `None` when it has fewer; the low-fidelity
/// rows among them are no points (`points`).
pub fn first_episodes(rows: &[Episode], n: usize) -> Option<&[Episode]> {
    if n == 0 {
        return Some(&rows[..0]);
    }
    let mut full = (rows.iter().enumerate()).filter(|(_, r)| r.fidelity.is_full());
    let (last, _) = full.nth(n - 1)?;
    Some(&rows[..=last])
}

/// The feasible scored episodes' values on `set` (robust accuracy as credited).
fn points<'a>(episodes: impl IntoIterator<Item = &'a Episode>, set: &[Objective]) -> Vec<Vec<f64>> {
    (episodes.into_iter())
        .filter(|e| e.feasible && e.counts())
        .filter_map(|e| set.iter().map(|&o| e.objective(o)).collect())
        .collect()
}

/// A set's name, for messages and the CSV (`accuracy_robust_accuracy_latency_s`).
fn set_name(set: &[Objective]) -> String {
    set.iter().map(|o| o.column()).collect::<Vec<_>>().join("_")
}

impl Study {
    /// The study of `runs` (named `labels`) against the union of `reference`'s fronts, or of
    /// the runs' own when `reference` is empty.
    pub fn compute(
        runs: &[RunDir],
        labels: &[String],
        reference: &[RunDir],
        at: &[usize],
    ) -> Result<Study, StudyError> {
        if at.contains(&0) {
            return Err(StudyError::ZeroEpisodes);
        }
        let (front, name) = match reference.is_empty() {
            true => (runs, "the union of the compared runs".to_string()),
            false => (reference, reference_name(reference)),
        };
        let mut sets = Vec::new();
        for set in STUDY_SETS {
            sets.push(set_reference(front, set, &name)?);
        }
        let mut rows = Vec::new();
        for (run, label) in runs.iter().zip(labels) {
            let mut values = Vec::new();
            for r in &sets {
                let s = senses(r.objectives);
                let given = Reference::Given(r.point.clone());
                let mut per_n = Vec::new();
                for &n in at {
                    let Some(first) = first_episodes(&run.episodes.rows, n) else {
                        per_n.push(None);
                        continue;
                    };
                    let hv = hypervolume(&points(first, r.objectives), &s, &given)
                        .map_err(|source| pareto_err(r.objectives, source))?;
                    per_n.push(Some((hv, hv / r.hv)));
                }
                values.push(per_n);
            }
            rows.push(StudyRow {
                label: label.clone(),
                dir: run.dir.clone(),
                agent: run.config.agent.name.clone(),
                logged: run.full_episodes(),
                values,
            });
        }
        let agents = agent_rows(&rows, sets.len(), at.len());
        Ok(Study {
            at: at.to_vec(),
            reference: name,
            sets,
            rows,
            agents,
            chart_files: Vec::new(),
        })
    }
}

fn pareto_err(set: &[Objective], source: ParetoError) -> StudyError {
    StudyError::Pareto {
        set: set_name(set),
        source,
    }
}

fn reference_name(reference: &[RunDir]) -> String {
    let dirs: Vec<String> = reference
        .iter()
        .map(|r| r.dir.display().to_string())
        .collect();
    dirs.join(", ")
}

/// The reference point and hypervolume of `set` over the feasible scored episodes of `front`.
fn set_reference(
    front: &[RunDir],
    set: &'static [Objective],
    name: &str,
) -> Result<SetReference, StudyError> {
    let all = points(front.iter().flat_map(|r| &r.episodes.rows), set);
    if all.is_empty() {
        return Err(StudyError::EmptyReference {
            reference: name.to_string(),
        });
    }
    let s = senses(set);
    let point = worst_point(&all, &s).map_err(|e| pareto_err(set, e))?;
    let hv =
        hypervolume(&all, &s, &Reference::Given(point.clone())).map_err(|e| pareto_err(set, e))?;
    if hv <= 0.0 {
        return Err(StudyError::FlatReference {
            reference: name.to_string(),
            set: set_name(set),
        });
    }
    Ok(SetReference {
        objectives: set,
        point,
        hv,
    })
}

/// Mean ± sample standard deviation of the fractions, per agent (first-seen order).
fn agent_rows(rows: &[StudyRow], sets: usize, at: usize) -> Vec<AgentRow> {
    let mut agents: Vec<String> = Vec::new();
    for r in rows {
        if !agents.contains(&r.agent) {
            agents.push(r.agent.clone());
        }
    }
    (agents.into_iter())
        .map(|agent| {
            let mine: Vec<&StudyRow> = rows.iter().filter(|r| r.agent == agent).collect();
            let values = (0..sets)
                .map(|s| {
                    (0..at)
                        .map(|k| {
                            let xs: Vec<f64> = mine
                                .iter()
                                .filter_map(|r| r.values[s][k])
                                .map(|v| v.1)
                                .collect();
                            spread(&xs)
                        })
                        .collect()
                })
                .collect();
            AgentRow { agent, values }
        })
        .collect()
}

/// Mean and sample standard deviation (n − 1; 0 for one value); `None` for no values.
pub fn spread(xs: &[f64]) -> Option<Spread> {
    let n = xs.len();
    if n == 0 {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let sd = match n {
        1 => 0.0,
        _ => (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt(),
    };
    Some(Spread { runs: n, mean, sd })
}

/// A fraction as shown (`0.812`), or `—`.
fn fraction(v: Option<(f64, f64)>) -> String {
    v.map_or("\u{2014}".to_string(), |(_, f)| format!("{f:.3}"))
}

/// A spread as shown (`0.812 ± 0.031 (5)`), or `—`.
fn spread_text(v: Option<Spread>) -> String {
    v.map_or("\u{2014}".to_string(), |s| {
        format!("{:.3} \u{00b1} {:.3} ({})", s.mean, s.sd, s.runs)
    })
}

impl Study {
    /// The files `write` writes into `out`: per run, then per agent.
    pub fn files(out: &Path) -> [PathBuf; 2] {
        [out.join("compare-at.csv"), out.join("compare-agents.csv")]
    }

    /// Writes compare-at.csv (one row per run, objective set and N) and compare-agents.csv (one
    /// row per agent, set and N), each atomically.
    pub fn write(&self, out: &Path) -> Result<(), StudyError> {
        let [runs_csv, agents_csv] = Self::files(out);
        let (header, records) = self.run_records();
        write_csv(&runs_csv, &header, records)?;
        let (header, records) = self.agent_records();
        Ok(write_csv(&agents_csv, &header, records)?)
    }

    /// compare-at.csv: run, dir, agent, objectives, episodes, hv, hv_fraction (both empty when
    /// the run has logged fewer episodes).
    fn run_records(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let header = [
            "run",
            "dir",
            "agent",
            "objectives",
            "episodes",
            "hv",
            "hv_fraction",
        ];
        let mut records = Vec::new();
        for row in &self.rows {
            for (set, values) in self.sets.iter().zip(&row.values) {
                for (&n, v) in self.at.iter().zip(values) {
                    let (hv, f) = v.map_or((String::new(), String::new()), |(hv, f)| {
                        (format!("{hv:e}"), format!("{f:.6}"))
                    });
                    let dir = defused(&row.dir.display().to_string());
                    let (agent, name) = (defused(&row.agent), set_name(set.objectives));
                    records.push(vec![
                        defused(&row.label),
                        dir,
                        agent,
                        name,
                        n.to_string(),
                        hv,
                        f,
                    ]);
                }
            }
        }
        (header.map(str::to_string).to_vec(), records)
    }

    /// compare-agents.csv: agent, objectives, episodes, runs, mean, sd (runs 0 and the two
    /// empty when none of the agent's runs reached that many episodes).
    fn agent_records(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let header = ["agent", "objectives", "episodes", "runs", "mean", "sd"];
        let mut records = Vec::new();
        for a in &self.agents {
            for (set, values) in self.sets.iter().zip(&a.values) {
                for (&n, v) in self.at.iter().zip(values) {
                    let mut r = vec![defused(&a.agent), set_name(set.objectives), n.to_string()];
                    r.extend(match v {
                        Some(s) => [
                            s.runs.to_string(),
                            format!("{:.6}", s.mean),
                            format!("{:.6}", s.sd),
                        ],
                        None => ["0".to_string(), String::new(), String::new()],
                    });
                    records.push(r);
                }
            }
        }
        (header.map(str::to_string).to_vec(), records)
    }

    /// Each set's reference point, one line per set, each value in its own unit.
    pub fn reference_lines(&self) -> Vec<String> {
        (self.sets.iter())
            .map(|r| {
                let parts: Vec<String> = (r.objectives.iter().zip(&r.point))
                    .map(|(o, &v)| {
                        format!("{} = {}", o.label(), quantity(Quantity::of(*o), Some(v)))
                    })
                    .collect();
                format!(
                    "{}: reference point ({})",
                    set_label(r.objectives),
                    parts.join(", ")
                )
            })
            .collect()
    }

    /// Set `s`'s per-agent table: header, rows (mean ± sd (runs) per N).
    pub fn agent_table(&self, s: usize) -> (Vec<String>, Vec<Vec<String>>) {
        let rows = (self.agents.iter())
            .map(|a| {
                let mut r = vec![a.agent.clone()];
                r.extend(a.values[s].iter().map(|&v| spread_text(v)));
                r
            })
            .collect();
        (self.header("agent"), rows)
    }

    /// Set `s`'s per-run table: header, rows (fraction per N).
    pub fn run_table(&self, s: usize) -> (Vec<String>, Vec<Vec<String>>) {
        let rows = (self.rows.iter())
            .map(|row| {
                let mut r = vec![row.label.clone()];
                r.extend(row.values[s].iter().map(|&v| fraction(v)));
                r
            })
            .collect();
        (self.header("run"), rows)
    }

    fn header(&self, first: &str) -> Vec<String> {
        let mut h = vec![first.to_string()];
        h.extend(self.at.iter().map(|n| format!("{n} episodes")));
        h
    }

    /// Per set, each agent's mean fraction at each N (the categories), one line per agent.
    pub fn charts(&self) -> Vec<LinesChart> {
        (self.sets.iter().enumerate())
            .map(|(s, set)| LinesChart {
                stem: format!("hv-at-episodes-{}", set_name(set.objectives)),
                title: format!("hypervolume fraction: {}", set_label(set.objectives)),
                x_desc: "episodes".to_string(),
                y_desc: "mean fraction of the reference front's".to_string(),
                categories: self.at.iter().map(|n| n.to_string()).collect(),
                lines: (self.agents.iter())
                    .map(|a| Line {
                        label: a.agent.clone(),
                        points: (a.values[s].iter().enumerate())
                            .filter_map(|(k, v)| v.map(|v| (k, v.mean)))
                            .collect(),
                    })
                    .collect(),
                flagged: None,
                y_range: None,
                legend: Legend::UpperLeft,
            })
            .collect()
    }

    /// compare.html's section.
    pub fn html(&self) -> Result<String, ReportError> {
        let mut b = String::from("<h2>Hypervolume at N episodes</h2>\n");
        let _ = writeln!(
            b,
            "<p class=\"note\">Hypervolume of each run's first N episodes (feasible scored \
             policies, a masking-flagged one's robust accuracy credited 0) as a fraction of the \
             reference front's ({}), against the worst value per objective over that front. Per \
             agent: mean \u{00b1} sample standard deviation over its runs (runs). \u{2014}: fewer \
             than N episodes logged.</p>",
            escape(&self.reference)
        );
        for (s, line) in self.reference_lines().iter().enumerate() {
            let _ = writeln!(
                b,
                "<h3>{}</h3>\n<p class=\"note\">{}</p>",
                escape(&set_label(self.sets[s].objectives)),
                escape(line)
            );
            for (header, rows) in [self.agent_table(s), self.run_table(s)] {
                let header: Vec<&str> = header.iter().map(String::as_str).collect();
                let numeric: Vec<bool> = (0..header.len()).map(|i| i > 0).collect();
                b += &table(&header, &rows, &numeric);
            }
            if let Some(chart) = self.chart_files.get(s) {
                b += &figure(chart)?;
            }
        }
        Ok(b)
    }
}

/// `accuracy × robust accuracy × latency`.
pub fn set_label(set: &[Objective]) -> String {
    set.iter()
        .map(|o| o.label())
        .collect::<Vec<_>>()
        .join(" \u{00d7} ")
}

#[cfg(test)]
mod tests;
