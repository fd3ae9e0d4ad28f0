//! The Pareto chart: one objective against another, every scored policy as a faint point, the
//! front as a line, uniform policies as labelled markers, the budget as a vertical line. With
//! several series (one per run) it is the compare view. Markers whose labels would overprint
//! (uniform 5- to 8-bit cost the same on Bit Fusion) share one label, `5–8-bit`.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::pareto::{non_dominated, Objective, Sense};
use crate::report::style::{color, draw_err, font, padded_range, Chart, ChartError};
use crate::report::units::{Quantity, Scale};
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
                // "8-bit" for an integer width, the name for any other format.
                let label = (e.bits.first()).map_or("0-bit".into(), |b| match b.w.int_bits() {
                    Some(bits) => format!("{bits}-bit"),
                    None if b.w.is_full() => "32-bit".into(),
                    None => b.w.name(),
                });
                let (x, y) = xy(e, x, y)?;
                Some(Marker { label, x, y })
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
    Scale::for_max(Quantity::of(o), max)
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

    /// The labelled reference markers (uniform policies); labels that would overprint merge,
    /// and a label that would cross the plot's right edge sits left of its marker.
    fn draw_markers<DB: DrawingBackend>(
        &self,
        chart: &mut Xy<'_, DB>,
        (sx, sy): (Scale, Scale),
        err: &impl Fn(DrawingAreaErrorKind<DB::ErrorType>) -> ChartError,
    ) -> Result<(), ChartError> {
        if self.markers.is_empty() {
            return Ok(());
        }
        let at: Vec<(f64, f64)> = (self.markers.iter())
            .map(|m| (sx.apply(m.x), sy.apply(m.y)))
            .collect();
        chart
            .draw_series(
                at.iter()
                    .map(|&p| TriangleMarker::new(p, 7, BLACK.filled())),
            )
            .map_err(err)?
            .label("uniform policies")
            .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, BLACK.filled()));
        let style = font(13);
        let area = chart.plotting_area();
        let right = area.get_pixel_range().0.end;
        let mut labels = Vec::new();
        for m in &self.markers {
            let size = area.estimate_text_size(&m.label, &style).map_err(err)?;
            labels.push((m.label.clone(), size));
        }
        let pixels: Vec<(i32, i32)> = at.iter().map(|p| chart.backend_coord(p)).collect();
        let mut placed = Vec::new();
        for (i, text) in merge_labels(&labels, &pixels) {
            let w = area.estimate_text_size(&text, &style).map_err(err)?.0 as i32;
            let dx = if pixels[i].0 + 8 + w > right {
                -8 - w
            } else {
                8
            };
            placed.push(EmptyElement::at(at[i]) + Text::new(text, (dx, -16), style.clone()));
        }
        chart.draw_series(placed).map_err(err)?;
        Ok(())
    }
}

/// Groups markers whose labels (text, pixel size), drawn at the same offset from markers at
/// pixel `at`, would overlap; returns, per group, the topmost marker and the merged label.
pub fn merge_labels(labels: &[(String, (u32, u32))], at: &[(i32, i32)]) -> Vec<(usize, String)> {
    let mut order: Vec<usize> = (0..labels.len().min(at.len())).collect();
    order.sort_by_key(|&i| (at[i].1, at[i].0));
    let overlap = |i: usize, j: usize| {
        let (wi, hi) = labels[i].1;
        let (wj, hj) = labels[j].1;
        // Two pixels of padding, so labels that would touch merge too.
        (at[i].0 - at[j].0).unsigned_abs() < wi.max(wj) + 2
            && (at[i].1 - at[j].1).unsigned_abs() < hi.max(hj) + 2
    };
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in order {
        match groups.iter_mut().find(|g| g.iter().any(|&j| overlap(i, j))) {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    groups
        .into_iter()
        .map(|g| {
            let texts: Vec<&str> = g.iter().map(|&i| labels[i].0.as_str()).collect();
            (g[0], merged_text(&texts))
        })
        .collect()
}

/// `["6-bit", "5-bit", "8-bit", "7-bit"]` → `5–8-bit`; `["2-bit", "4-bit", "5-bit"]` →
/// `2, 4–5-bit`; labels that are not `N-bit` are joined with commas.
fn merged_text(texts: &[&str]) -> String {
    let bits: Option<Vec<u32>> = texts
        .iter()
        .map(|t| t.strip_suffix("-bit").and_then(|n| n.parse().ok()))
        .collect();
    let Some(mut bits) = bits else {
        return texts.join(", ");
    };
    bits.sort_unstable();
    bits.dedup();
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for b in bits {
        match runs.last_mut() {
            Some(run) if run.1 + 1 == b => run.1 = b,
            _ => runs.push((b, b)),
        }
    }
    let parts: Vec<String> = (runs.iter())
        .map(|&(lo, hi)| match hi - lo {
            0 => lo.to_string(),
            1 => format!("{lo}, {hi}"),
            _ => format!("{lo}–{hi}"),
        })
        .collect();
    format!("{}-bit", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(bits: &[u8]) -> Vec<(String, (u32, u32))> {
        bits.iter()
            .map(|b| (format!("{b}-bit"), (34, 14)))
            .collect()
    }

    #[test]
    fn uniform_policies_of_equal_cost_share_one_label() {
        // Bit Fusion prices 5..8 bits alike: four markers a few pixels apart at the same x.
        let at = [
            (120, 500),
            (300, 210),
            (300, 190),
            (904, 98),
            (904, 92),
            (904, 86),
            (904, 80),
        ];
        let merged = merge_labels(&labels(&[2, 3, 4, 5, 6, 7, 8]), &at);
        assert_eq!(
            merged,
            [
                (6, "5–8-bit".to_string()),
                (2, "4-bit".to_string()),
                (1, "3-bit".to_string()),
                (0, "2-bit".to_string())
            ]
        );
    }

    #[test]
    fn merged_text_compresses_runs_of_bitwidths() {
        assert_eq!(
            merged_text(&["6-bit", "5-bit", "8-bit", "7-bit"]),
            "5–8-bit"
        );
        assert_eq!(
            merged_text(&["2-bit", "4-bit", "5-bit", "6-bit"]),
            "2, 4–6-bit"
        );
        assert_eq!(merged_text(&["3-bit", "4-bit"]), "3, 4-bit");
        assert_eq!(merged_text(&["FP32", "8-bit"]), "FP32, 8-bit");
    }
}
