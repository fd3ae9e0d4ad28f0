//! Lines over categories (bitwidths, layers): one line per series, optional flagged points.
//! Both DQ charts are drawn with it.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::style::{category, color, draw_err, font, padded_range, Chart, ChartError};

/// One line: a label and (category index, value) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub label: String,
    pub points: Vec<(usize, f64)>,
}

/// A line chart whose x axis is a list of named categories.
#[derive(Debug, Clone, PartialEq)]
pub struct LinesChart {
    pub stem: String,
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub categories: Vec<String>,
    pub lines: Vec<Line>,
    /// Points drawn with a cross and this legend label (e.g. suspected gradient masking).
    pub flagged: Option<(String, Vec<(usize, f64)>)>,
    /// Fixed y range, or `None` to fit the data.
    pub y_range: Option<(f64, f64)>,
    /// Where the legend goes: where the lines leave room.
    pub legend: Legend,
}

/// The corner of the legend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legend {
    UpperLeft,
    /// For lines that fall from left to right (robust accuracy vs eps).
    LowerLeft,
}

impl Chart for LinesChart {
    fn stem(&self) -> String {
        self.stem.clone()
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), ChartError> {
        let err = draw_err(&self.stem);
        root.fill(&WHITE).map_err(&err)?;
        let n = self.categories.len().max(1);
        let values = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
        let yr = match self.y_range {
            Some((lo, hi)) => lo..hi,
            None => padded_range(values, 0.08),
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, font(22))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, yr)
            .map_err(&err)?;
        let cats = &self.categories;
        let name = |v: &f64| category(cats, *v);
        chart
            .configure_mesh()
            .x_desc(&self.x_desc)
            .y_desc(&self.y_desc)
            .x_labels(n + 2)
            .x_label_formatter(&name)
            .label_style(font(15))
            .axis_desc_style(font(17))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(&err)?;
        for (i, line) in self.lines.iter().enumerate() {
            let c = color(i);
            let pts: Vec<(f64, f64)> = line.points.iter().map(|&(x, y)| (x as f64, y)).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(&err)?
                .label(line.label.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, c.filled())))
                .map_err(&err)?;
        }
        if let Some((label, pts)) = &self.flagged {
            chart
                .draw_series(
                    (pts.iter()).map(|&(x, y)| Cross::new((x as f64, y), 8, RED.stroke_width(2))),
                )
                .map_err(&err)?
                .label(label.clone())
                .legend(|(x, y)| Cross::new((x + 10, y), 6, RED.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .label_font(font(14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(match self.legend {
                Legend::UpperLeft => SeriesLabelPosition::UpperLeft,
                Legend::LowerLeft => SeriesLabelPosition::LowerLeft,
            })
            .draw()
            .map_err(&err)?;
        root.present().map_err(&err)
    }
}
