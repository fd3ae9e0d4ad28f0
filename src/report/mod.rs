//! The report: charts (PNG and SVG, drawn with plotters in an embedded font) and a
//! self-contained HTML page for a search run, a DQ study or a sensitivity study, and the compare
//! view of several runs.
//! A run's page and the compare page open with the explorer (`explore`): every scored policy as
//! an interactive chart, drawn in the browser by Chart.js inlined into the page.

pub mod charts;
pub mod compare;
pub mod explore;
mod html;
mod measured;
pub mod prices;
pub mod sensitivity;
pub mod study;
pub mod style;
pub mod uniform;
pub mod units;

use std::path::{Path, PathBuf};

use crate::pareto::Objective;
use crate::rundir::{best_row, read_any, AnyDir, DqDir, RunDir, RunDirError};
use charts::{
    amplification_chart, front_chart, robustness_chart, BitsChart, NamedPolicy, ParetoChart,
    ProgressChart,
};
pub use style::{render, Chart, ChartError, ChartFiles};

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error(transparent)]
    Chart(#[from] ChartError),
    #[error("{}: cannot write", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("compare needs at least one run directory")]
    NoRuns,
    #[error("cannot encode the explorer's data as JSON")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Study(#[from] study::StudyError),
}

/// What `write_report` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// `DIR/report.html`.
    pub html: PathBuf,
    /// Every chart under `DIR/charts/`.
    pub charts: Vec<ChartFiles>,
    /// What the page says is missing (the explorer's per-layer prices, and why).
    pub notes: Vec<String>,
}

pub(crate) fn io_err(path: &Path) -> impl Fn(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Regenerates `dir/charts/*.png|svg` and `dir/report.html` for a search run, a DQ study (when
/// `dir` holds dq.csv) or a sensitivity study (sensitivity.csv).
pub fn write_report(dir: &Path) -> Result<ReportFiles, ReportError> {
    let any = read_any(dir)?;
    let charts_dir = dir.join("charts");
    crate::rundir::create_dir(&charts_dir)?;
    let (charts, page, notes) = match &any {
        AnyDir::Run(run) => {
            let charts = run_charts(run, &charts_dir)?;
            let explorer = explore::Explorer::of_run(run);
            let page = html::run_page(run, &charts, &explorer)?;
            (charts, page, explorer.notes)
        }
        AnyDir::Dq(dq) => {
            let charts = dq_charts(dq, &charts_dir)?;
            let page = html::dq_page(dq, &charts)?;
            (charts, page, Vec::new())
        }
        AnyDir::Sensitivity(study) => {
            let charts = sensitivity::sensitivity_charts(study, &charts_dir)?;
            let page = sensitivity::sensitivity_page(study, &charts)?;
            (charts, page, Vec::new())
        }
    };
    let path = dir.join("report.html");
    crate::rundir::write_atomic(&path, page.as_bytes())?;
    Ok(ReportFiles {
        html: path,
        charts,
        notes,
    })
}

/// Renders the charts of a search run, in page order: the two Pareto charts, the bitwidths of
/// the chosen policy, the search progress, and (once front-test.csv holds a policy) robust
/// accuracy vs eps of the front on the test split.
pub fn run_charts(run: &RunDir, dir: &Path) -> Result<Vec<ChartFiles>, ReportError> {
    let (acc, rob) = (Objective::Accuracy, Objective::RobustAccuracy);
    let (lat, energy) = (Objective::Latency, Objective::Energy);
    let mut charts = vec![
        render(
            &ParetoChart::of_run(run, "pareto-accuracy-latency", lat, acc),
            dir,
        )?,
        render(
            &ParetoChart::of_run(run, "pareto-robust-energy", energy, rob),
            dir,
        )?,
        render(&bits_chart(run), dir)?,
        render(&ProgressChart::of_run(run), dir)?,
    ];
    if let Some(front) = run.front_test.as_ref().filter(|f| !f.rows.is_empty()) {
        charts.push(render(&front_chart(front), dir)?);
    }
    Ok(charts)
}

/// The bitwidths of the chosen policy: best-policy.json, or before it exists the best episode
/// so far by the rule that will choose it (`rundir::best_row`).
pub fn bits_chart(run: &RunDir) -> BitsChart {
    // A best-policy.json whose layers do not read (rundir checked them when it loaded the
    // file) cannot occur; the best row stands in for it all the same.
    let best = run.best.as_ref().and_then(|best| {
        let bits = best.layers.iter().map(|l| l.bits());
        Some((best.episode, bits.collect::<Result<Vec<_>, _>>().ok()?))
    });
    let chosen = match best {
        Some((episode, bits)) => Some(NamedPolicy {
            label: format!("best (episode {episode})"),
            bits,
        }),
        None => best_row(&run.episodes.rows).map(|e| NamedPolicy {
            label: format!("best so far (episode {})", e.episode),
            bits: e.bits.clone(),
        }),
    };
    BitsChart {
        stem: "bitwidths".to_string(),
        title: format!(
            "{}: bits per layer ({})",
            run.config.run, run.config.profile.name
        ),
        layers: run.config.layers.iter().map(|l| l.name.clone()).collect(),
        mac_share: run.config.mac_shares(),
        policies: chosen.into_iter().collect(),
    }
}

/// Renders the charts of a DQ study: robustness vs bits, error amplification per layer.
pub fn dq_charts(dq: &DqDir, dir: &Path) -> Result<Vec<ChartFiles>, ReportError> {
    Ok(vec![
        render(&robustness_chart(dq), dir)?,
        render(&amplification_chart(dq), dir)?,
    ])
}
