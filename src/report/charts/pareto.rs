//! The Pareto chart: one objective against another, every scored policy as a faint point, the
//! front as a line, uniform policies as labelled markers, the budget as a vertical line. With
//! several series (one per run) it is the compare view.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::pareto::{non_dominated, Objective, Sense};
use crate::report::style::{color, draw_err, font, padded_range, Chart, ChartError, Scale};
use crate::rundir::{Episode, RunDir};

/// The points of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoSeries {
    pub label: String,
    /// Every scored policy, (x, y) in the objectives' own units.
    pub points: Vec<(f64, f64)>,
    /// The non-dominated feasible points, sorted by x.
    pub front: Vec<(f64, f64)>,
}

/// A labelled reference point (a uniform policy).
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub label: String,
    pub x: f64,
    pub y: f64,
}

/// A Pareto chart of objective `y` against objective `x`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoChart {
    pub stem: String,
    pub title: String,
    pub x: Objective,
    pub y: Objective,
    pub series: Vec<ParetoSeries>,
    pub markers: Vec<Marker>,
    /// The budget on `x` (a vertical line), if any.
    pub budget: Option<f64>,
    /// A labelled horizontal line on `y` (the FP32 model), if any.
    pub baseline: Option<(String, f64)>,
}

fn xy(e: &Episode, x: Objective, y: Objective) -> Option<(f64, f64)> {
    Some((e.objective(x)?, e.objective(y)?))
}

impl ParetoSeries {
    /// The scored episodes of `run` and the front of its feasible ones on (x, y).
    pub fn of_run(label: &str, run: &RunDir, x: Objective, y: Objective) -> ParetoSeries {
        let points: Vec<(f64, f64)> = run.scored().filter_map(|e| xy(e, x, y)).collect();
        let feasible: Vec<[f64; 2]> = run
            .scored()
            .filter(|e| e.feasible)
            .filter_map(|e| xy(e, x, y))
            .map(|(a, b)| [a, b])
            .collect();
        let senses: [Sense; 2] = [x.sense(), y.sense()];
        // Values were checked finite when read, so the front cannot fail; an error leaves it empty.
        let mut front: Vec<(f64, f64)> = non_dominated(&feasible, &senses)
            .unwrap_or_default()
            .into_iter()
            .map(|i| (feasible[i][0], feasible[i][1]))
            .collect();
        front.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        front.dedup();
        ParetoSeries {
            label: label.to_string(),
            points,
            front,
        }
    }
}

impl ParetoChart {
    /// The chart of one run: its points and front, its uniform references, FP32 and the budget.
    pub fn of_run(run: &RunDir, stem: &str, x: Objective, y: Objective) -> ParetoChart {
        let refs = &run.references.rows;
        let markers = refs
            .iter()
            .filter(|e| e.agent == "uniform")
            .filter_map(|e| {
                let bits = e.bits.first().map_or(0, |b| b.w.get());
                let (x, y) = xy(e, x, y)?;
                Some(Marker {
                    label: format!("{bits}-bit"),
                    x,
                    y,
                })
            })
            .collect();
        let baseline = refs
            .iter()
            .find(|e| e.agent == "fp32")
            .and_then(|e| e.objective(y))
            .map(|v| ("FP32".to_string(), v));
        let budget = match x {
            Objective::Latency => run.config.budget.latency_s,
            Objective::Energy => run.config.budget.energy_j,
            Objective::Size => run.config.budget.size_bytes,
            _ => None,
        };
        let label = format!("{} on {}", run.config.agent.name, run.config.profile.name);
        ParetoChart {
            stem: stem.to_string(),
            title: format!("{}: {} vs {}", run.config.run, y.label(), x.label()),
            x,
            y,
            series: vec![ParetoSeries::of_run(&label, run, x, y)],
            markers,
            budget,
            baseline,
        }
    }
}

/// How an objective's values are shown, given the largest one.
pub fn objective_scale(o: Objective, max: f64) -> Scale {
    match o {
        Objective::Accuracy | Objective::RobustAccuracy => Scale::PERCENT,
        Objective::Latency => Scale::si(max, "s"),
        Objective::Energy => Scale::si(max, "J"),
        Objective::Size => Scale::si(max, "B"),
    }
}

impl ParetoChart {
    fn all_x(&self) -> impl Iterator<Item = f64> + '_ {
        let pts = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0));
        pts.chain(self.markers.iter().map(|m| m.x))
            .chain(self.budget)
    }

    fn all_y(&self) -> impl Iterator<Item = f64> + '_ {
        let pts = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1));
        let base = self.baseline.iter().map(|b| b.1);
        pts.chain(self.markers.iter().map(|m| m.y)).chain(base)
    }
}

impl Chart for ParetoChart {
    fn stem(&self) -> String {
        self.stem.clone()
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), ChartError> {
        let err = draw_err(&self.stem);
        root.fill(&WHITE).map_err(&err)?;
        let sx = objective_scale(self.x, self.all_x().fold(0.0, f64::max));
        let sy = objective_scale(self.y, self.all_y().fold(0.0, f64::max));
        let xr = padded_range(self.all_x().map(|v| sx.apply(v)), 0.05);
        let yr = padded_range(self.all_y().map(|v| sy.apply(v)), 0.08);
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, font(22))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(xr.clone(), yr.clone())
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc(format!("{} ({})", self.x.label(), sx.unit))
            .y_desc(format!("{} ({})", self.y.label(), sy.unit))
            .label_style(font(15))
            .axis_desc_style(font(17))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(&err)?;
        let scale = (sx, sy);
        self.draw_runs(&mut chart, scale, &err)?;
        self.draw_lines(&mut chart, scale, (xr, yr), &err)?;
        self.draw_markers(&mut chart, scale, &err)?;
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

type Xy<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
type Ranges = (std::ops::Range<f64>, std::ops::Range<f64>);

impl ParetoChart {
    /// Every run's points (faint) and front (line and dots).
    fn draw_runs<DB: DrawingBackend>(
        &self,
        chart: &mut Xy<'_, DB>,
        (sx, sy): (Scale, Scale),
        err: &impl Fn(DrawingAreaErrorKind<DB::ErrorType>) -> ChartError,
    ) -> Result<(), ChartError> {
        let scaled = |p: &(f64, f64)| (sx.apply(p.0), sy.apply(p.1));
        for (i, s) in self.series.iter().enumerate() {
            let c = color(i);
            let faint = c.mix(0.25).filled();
            chart
                .draw_series(s.points.iter().map(|p| Circle::new(scaled(p), 3, faint)))
                .map_err(err)?;
            let front: Vec<(f64, f64)> = s.front.iter().map(scaled).collect();
            chart
                .draw_series(LineSeries::new(front.clone(), c.stroke_width(2)))
                .map_err(err)?
                .label(format!("{} (front)", s.label))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
            chart
                .draw_series(front.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(err)?;
        }
        Ok(())
    }

    /// The baseline (dashed, horizontal) and the budget (red, vertical).
    fn draw_lines<DB: DrawingBackend>(
        &self,
        chart: &mut Xy<'_, DB>,
        (sx, sy): (Scale, Scale),
        (xr, yr): Ranges,
        err: &impl Fn(DrawingAreaErrorKind<DB::ErrorType>) -> ChartError,
    ) -> Result<(), ChartError> {
        if let Some((label, v)) = &self.baseline {
            let y = sy.apply(*v);
            let gray = RGBColor(110, 110, 110);
            let line = [(xr.start, y), (xr.end, y)];
            chart
                .draw_series(DashedLineSeries::new(line, 6, 4, gray.stroke_width(1)))
                .map_err(err)?
                .label(label.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], gray));
        }
        if let Some(b) = self.budget {
            let x = sx.apply(b);
            let red = RED.stroke_width(2);
            chart
                .draw_series(LineSeries::new([(x, yr.start), (x, yr.end)], red))
                .map_err(err)?
                .label("budget")
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], red));
        }
        Ok(())
    }

    /// The labelled reference markers (uniform policies).
    fn draw_markers<DB: DrawingBackend>(
        &self,
        chart: &mut Xy<'_, DB>,
        (sx, sy): (Scale, Scale),
        err: &impl Fn(DrawingAreaErrorKind<DB::ErrorType>) -> ChartError,
    ) -> Result<(), ChartError> {
        if self.markers.is_empty() {
            return Ok(());
        }
        chart
            .draw_series(self.markers.iter().map(|m| {
                EmptyElement::at((sx.apply(m.x), sy.apply(m.y)))
                    + TriangleMarker::new((0, 0), 7, BLACK.filled())
                    + Text::new(m.label.clone(), (8, -16), font(13))
            }))
            .map_err(err)?
            .label("uniform policies")
            .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, BLACK.filled()));
        Ok(())
    }
}
