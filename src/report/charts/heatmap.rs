//! The sensitivity heatmap: one row per layer and operand (weights, then activations), one
//! column per format, two panels side by side (accuracy drop and robust-accuracy drop against
//! the reference, in points, red for a loss and blue for a gain, each panel scaled to its
//! largest drop), and a third with each layer's share of the reference's latency and energy:
//! "narrow this layer, lose this much, save this much".

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::style::{color, draw_err, font, Chart, ChartError, SIZE};
use crate::rundir::{SensitivityDir, Varied};

/// One layer × operand row of the heatmap.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatRow {
    pub label: String,
    /// Per format: accuracy and robust-accuracy drop in points (None: not scored yet, or the
    /// fine-tune diverged) and whether a masking check fired.
    pub accuracy: Vec<Option<f64>>,
    pub robust: Vec<Option<f64>>,
    pub flagged: Vec<bool>,
    /// The layer's share of the reference's latency and energy, in [0, 1].
    pub shares: (f64, f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    pub stem: String,
    pub title: String,
    pub formats: Vec<String>,
    pub rows: Vec<HeatRow>,
}

impl Heatmap {
    /// The heatmap of a study, in the CSV's layer order; a cell not scored yet stays empty.
    pub fn of(study: &SensitivityDir) -> Heatmap {
        let formats = study.config.formats.clone();
        let mut rows: Vec<(String, Varied, HeatRow)> = Vec::new();
        for r in study
            .table
            .rows
            .iter()
            .filter(|r| r.operand != Varied::Reference)
        {
            let Some(col) = formats.iter().position(|f| *f == r.format) else {
                continue;
            };
            if !rows
                .iter()
                .any(|(l, o, _)| *l == r.layer && *o == r.operand)
            {
                let empty = HeatRow {
                    label: format!("{} {}", r.layer, short(r.operand)),
                    accuracy: vec![None; formats.len()],
                    robust: vec![None; formats.len()],
                    flagged: vec![false; formats.len()],
                    shares: (
                        r.layer_latency_share.unwrap_or(0.0),
                        r.layer_energy_share.unwrap_or(0.0),
                    ),
                };
                rows.push((r.layer.clone(), r.operand, empty));
            }
            if let Some((_, _, h)) = rows
                .iter_mut()
                .find(|(l, o, _)| *l == r.layer && *o == r.operand)
            {
                h.accuracy[col] = r.accuracy_drop.map(|d| 100.0 * d);
                h.robust[col] = r.robust_accuracy_drop.map(|d| 100.0 * d);
                h.flagged[col] = !r.masking.is_empty();
            }
        }
        Heatmap {
            stem: "sensitivity".to_string(),
            title: format!(
                "{}: drop when one operand is narrowed, vs uniform {}/{} ({})",
                study.config.model,
                study.config.reference,
                study.config.reference,
                study.config.profile.name
            ),
            formats,
            rows: rows.into_iter().map(|(_, _, h)| h).collect(),
        }
    }
}

fn short(v: Varied) -> &'static str {
    match v {
        Varied::Weight => "W",
        Varied::Activation => "A",
        Varied::Reference => "",
    }
}

/// Pixel layout: the label column, the two heat panels, the share panel.
const TOP: i32 = 70;
const BOTTOM: i32 = 40;
const LABELS: i32 = 110;
const PANEL: i32 = 320;
const GAP: i32 = 20;

impl Chart for Heatmap {
    fn stem(&self) -> String {
        self.stem.clone()
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), ChartError> {
        let err = draw_err(&self.stem);
        root.fill(&WHITE).map_err(&err)?;
        let centred = |size| font(size).pos(Pos::new(HPos::Center, VPos::Center));
        root.draw(&Text::new(
            self.title.clone(),
            (SIZE.0 as i32 / 2, 18),
            centred(18),
        ))
        .map_err(&err)?;
        let n = self.rows.len().max(1) as i32;
        let row_h = ((SIZE.1 as i32 - TOP - BOTTOM) / n).min(44);
        for (i, r) in self.rows.iter().enumerate() {
            let y = TOP + i as i32 * row_h + row_h / 2;
            let style = font(13).pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(r.label.clone(), (LABELS - 8, y), style))
                .map_err(&err)?;
        }
        let panels = [
            ("accuracy drop (points)", LABELS),
            ("robust-accuracy drop (points)", LABELS + PANEL + GAP),
        ];
        for (k, (title, x0)) in panels.into_iter().enumerate() {
            root.draw(&Text::new(title, (x0 + PANEL / 2, 40), centred(15)))
                .map_err(&err)?;
            self.draw_panel(&root, x0, row_h, k, &err)?;
        }
        self.draw_shares(&root, LABELS + 2 * (PANEL + GAP), row_h, &err)?;
        let note = "red: lost against the reference, blue: gained; × a masking check fired; \
                    empty: not scored yet or diverged";
        root.draw(&Text::new(
            note,
            (SIZE.0 as i32 / 2, SIZE.1 as i32 - 18),
            centred(12),
        ))
        .map_err(&err)?;
        root.present().map_err(&err)
    }
}

/// A drop's cell colour: white at 0, full red at `max` (a loss), blue for a gain.
fn heat(drop: f64, max: f64) -> RGBColor {
    let t = (drop.abs() / max.max(1e-9)).clamp(0.0, 1.0);
    let fade = (255.0 - 200.0 * t) as u8;
    match drop >= 0.0 {
        true => RGBColor(255, fade, fade),
        false => RGBColor(fade, fade, 255),
    }
}

impl Heatmap {
    /// Panel `k` (0: accuracy, 1: robust accuracy) at x `x0`: format headers, then the cells.
    fn draw_panel<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x0: i32,
        row_h: i32,
        k: usize,
        err: &impl Fn(DrawingAreaErrorKind<DB::ErrorType>) -> ChartError,
    ) -> Result<(), ChartError> {
        let cols = self.formats.len().max(1) as i32;
        let col_w = PANEL / cols;
        let cells = |r: &HeatRow| {
            if k == 0 {
                r.accuracy.clone()
            } else {
                r.robust.clone()
            }
        };
        let max = (self.rows.iter().flat_map(cells).flatten()).fold(0.0f64, |m, d| m.max(d.abs()));
        let centred = font(12).pos(Pos::new(HPos::Center, VPos::Center));
        for (j, f) in self.formats.iter().enumerate() {
            let x = x0 + j as i32 * col_w + col_w / 2;
            root.draw(&Text::new(f.clone(), (x, TOP - 10), centred.clone()))
                .map_err(err)?;
        }
        for (i, r) in self.rows.iter().enumerate() {
            let y = TOP + i as i32 * row_h;
            for (j, d) in cells(r).into_iter().enumerate() {
                let x = x0 + j as i32 * col_w;
                let fill = d.map_or(RGBColor(235, 235, 235), |d| heat(d, max));
                root.draw(&Rectangle::new(
                    [(x, y), (x + col_w, y + row_h)],
                    fill.filled(),
                ))
                .map_err(err)?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + col_w, y + row_h)],
                    WHITE.stroke_width(1),
                ))
                .map_err(err)?;
                let text = match (d, r.flagged[j]) {
                    (Some(d), true) => format!("{d:.1}×"),
                    (Some(d), false) => format!("{d:.1}"),
                    (None, _) => String::new(),
                };
                let at = (x + col_w / 2, y + row_h / 2);
                root.draw(&Text::new(text, at, centred.clone()))
                    .map_err(err)?;
            }
        }
        Ok(())
    }

    /// Each row's layer share of the reference's latency (upper bar) and energy (lower bar).
    fn draw_shares<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x0: i32,
        row_h: i32,
        err: &impl Fn(DrawingAreaErrorKind<DB::ErrorType>) -> ChartError,
    ) -> Result<(), ChartError> {
        let width = SIZE.0 as i32 - x0 - 60;
        let title = font(15).pos(Pos::new(HPos::Center, VPos::Center));
        root.draw(&Text::new("layer's share", (x0 + width / 2, 40), title))
            .map_err(err)?;
        let legend = font(12).pos(Pos::new(HPos::Left, VPos::Center));
        for (k, what) in ["latency", "energy"].into_iter().enumerate() {
            let x = x0 + k as i32 * 75;
            root.draw(&Rectangle::new(
                [(x, TOP - 15), (x + 10, TOP - 5)],
                color(k).filled(),
            ))
            .map_err(err)?;
            root.draw(&Text::new(what, (x + 14, TOP - 10), legend.clone()))
                .map_err(err)?;
        }
        for (i, r) in self.rows.iter().enumerate() {
            let y = TOP + i as i32 * row_h;
            let half = (row_h / 2).max(1);
            for (k, share) in [r.shares.0, r.shares.1].into_iter().enumerate() {
                let top = y + k as i32 * half + 2;
                let len = (share.clamp(0.0, 1.0) * width as f64) as i32;
                root.draw(&Rectangle::new(
                    [(x0, top), (x0 + len, top + half - 3)],
                    color(k).filled(),
                ))
                .map_err(err)?;
                let text = format!("{:.0}%", 100.0 * share);
                root.draw(&Text::new(
                    text,
                    (x0 + len + 4, top + half / 2 - 1),
                    legend.clone(),
                ))
                .map_err(err)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::render;

    #[test]
    fn heatmap_renders_every_cell_state_to_png_and_svg() {
        let row = |label: &str, acc: Vec<Option<f64>>| HeatRow {
            label: label.into(),
            robust: acc.iter().map(|d| d.map(|d| -2.0 * d)).collect(),
            flagged: vec![true, false, false],
            accuracy: acc,
            shares: (0.6, 0.3),
        };
        let map = Heatmap {
            stem: "sensitivity".into(),
            title: "t".into(),
            formats: vec!["2".into(), "4".into(), "8".into()],
            rows: vec![
                row("conv1 W", vec![Some(3.5), Some(-0.4), Some(0.0)]),
                row("conv1 A", vec![None, Some(0.2), Some(0.0)]),
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        let files = render(&map, dir.path()).unwrap();
        let svg = std::fs::read_to_string(&files.svg).unwrap();
        assert!(
            svg.contains("3.5×") && svg.contains("-0.4") && svg.contains("60%"),
            "{svg}"
        );
        assert!(std::fs::metadata(&files.png).unwrap().len() > 1000);
    }

    #[test]
    fn heat_is_white_at_zero_red_for_a_loss_blue_for_a_gain() {
        assert_eq!(heat(0.0, 2.0), RGBColor(255, 255, 255));
        assert_eq!(heat(2.0, 2.0), RGBColor(255, 55, 55));
        assert_eq!(heat(-4.0, 2.0), RGBColor(55, 55, 255));
    }
}
