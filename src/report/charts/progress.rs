//! Search progress: the reward of every scored episode and the best reward so far.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::style::{color, draw_err, font, padded_range, Chart, ChartError};
use crate::rundir::RunDir;

/// Reward per episode and best-so-far.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressChart {
    pub stem: String,
    pub title: String,
    /// (episode, reward) of the scored episodes, in episode order.
    pub rewards: Vec<(f64, f64)>,
}

impl ProgressChart {
    pub fn of_run(run: &RunDir) -> ProgressChart {
        let mut rewards: Vec<(f64, f64)> = run
            .scored()
            .filter_map(|e| Some((e.episode as f64, e.reward?)))
            .collect();
        rewards.sort_by(|a, b| a.0.total_cmp(&b.0));
        ProgressChart {
            stem: "progress".to_string(),
            title: format!("{}: search progress", run.config.run),
            rewards,
        }
    }

    /// The running maximum of the reward.
    pub fn best_so_far(&self) -> Vec<(f64, f64)> {
        let mut best = f64::NEG_INFINITY;
        (self.rewards.iter())
            .map(|&(e, r)| {
                best = best.max(r);
                (e, best)
            })
            .collect()
    }
}

impl Chart for ProgressChart {
    fn stem(&self) -> String {
        self.stem.clone()
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), ChartError> {
        let err = draw_err(&self.stem);
        root.fill(&WHITE).map_err(&err)?;
        let last = self.rewards.last().map_or(1.0, |r| r.0.max(1.0));
        let yr = padded_range(self.rewards.iter().map(|r| r.1), 0.08);
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, font(22))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..last + 0.5, yr)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc("episode")
            .y_desc("reward")
            .label_style(font(15))
            .axis_desc_style(font(17))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(&err)?;
        let (c, b) = (color(0), color(1));
        chart
            .draw_series((self.rewards.iter()).map(|&p| Circle::new(p, 3, c.mix(0.5).filled())))
            .map_err(&err)?
            .label("reward")
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, c.filled()));
        chart
            .draw_series(LineSeries::new(self.best_so_far(), b.stroke_width(2)))
            .map_err(&err)?
            .label("best so far")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], b.stroke_width(2)));
        chart
            .configure_series_labels()
            .label_font(font(14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(&err)?;
        root.present().map_err(&err)
    }
}
