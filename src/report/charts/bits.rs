//! Bitwidths per layer for chosen policies, as in HAQ's figures: grouped bars (weights and
//! activations per layer) and each layer's share of the model's MACs as a line on a second axis.

use plotters::chart::DualCoordChartContext;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::quant::{Format, LayerBits};
use crate::report::style::{category, color, draw_err, font, Chart, ChartError};

/// A named policy to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedPolicy {
    pub label: String,
    pub bits: Vec<LayerBits>,
}

/// The bitwidth chart.
#[derive(Debug, Clone, PartialEq)]
pub struct BitsChart {
    pub stem: String,
    pub title: String,
    pub layers: Vec<String>,
    /// Each layer's share of the model's MACs, in [0, 1]; empty to leave the line out.
    pub mac_share: Vec<f64>,
    pub policies: Vec<NamedPolicy>,
}

/// A format wider than 8 bits (full precision, fp16, int16) is drawn as a bar of this height,
/// labelled with its name.
const FULL_HEIGHT: f64 = 9.0;

fn height(format: Format) -> f64 {
    match format.width() {
        w if w > 8 => FULL_HEIGHT,
        w => f64::from(w),
    }
}

/// The label over a bar whose height does not say its format: every format but an integer of
/// up to 8 bits ("32", "16", "fp16", "e4m3", "g32").
fn label(format: Format) -> Option<String> {
    let plain = format.int_bits().is_some_and(|b| b <= 8);
    let name = format.to_string();
    let short = name
        .strip_prefix("fp8")
        .or_else(|| name.strip_prefix("int4"));
    (!plain).then(|| short.unwrap_or(&name).to_string())
}

impl BitsChart {
    /// The bars: (x0, x1, bits, colour index) for every layer, policy and weights/activations.
    fn bars(&self) -> Vec<(f64, f64, Format, usize)> {
        let per_layer = 2 * self.policies.len().max(1);
        let width = 0.8 / per_layer as f64;
        let mut bars = Vec::new();
        for (p, policy) in self.policies.iter().enumerate() {
            for (l, b) in policy.bits.iter().enumerate().take(self.layers.len()) {
                for (k, bits) in [b.w, b.a].into_iter().enumerate() {
                    let slot = 2 * p + k;
                    let x0 = l as f64 - 0.4 + slot as f64 * width;
                    bars.push((x0, x0 + width * 0.9, bits, slot));
                }
            }
        }
        bars
    }
}

impl Chart for BitsChart {
    fn stem(&self) -> String {
        self.stem.clone()
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), ChartError> {
        let err = draw_err(&self.stem);
        root.fill(&WHITE).map_err(&err)?;
        let n = self.layers.len().max(1);
        let xr = || -0.5..n as f64 - 0.5;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, font(22))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .right_y_label_area_size(70)
            .build_cartesian_2d(xr(), 0.0..10.0)
            .map_err(&err)?
            .set_secondary_coord(xr(), 0.0..100.0);
        let names = &self.layers;
        let layer_name = |v: &f64| category(names, *v);
        chart
            .configure_mesh()
            .x_desc("layer")
            .y_desc("bits")
            .x_labels(n + 2)
            .x_label_formatter(&layer_name)
            .y_labels(10)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style(font(15))
            .axis_desc_style(font(17))
            .disable_x_mesh()
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(&err)?;
        self.draw_bars(&mut chart, &err)?;
        self.draw_share(&mut chart, &err)?;
        chart
            .configure_series_labels()
            .label_font(font(14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(&err)?;
        root.present().map_err(&err)
    }
}

type Dual<'a, DB> = DualCoordChartContext<
    'a,
    DB,
    Cartesian2d<RangedCoordf64, RangedCoordf64>,
    Cartesian2d<RangedCoordf64, RangedCoordf64>,
>;

impl BitsChart {
    /// The bars, one colour per policy and operand, each format's name over a bar whose height
    /// does not say it.
    fn draw_bars<DB: DrawingBackend>(
        &self,
        chart: &mut Dual<'_, DB>,
        err: &impl Fn(DrawingAreaErrorKind<DB::ErrorType>) -> ChartError,
    ) -> Result<(), ChartError> {
        for (p, policy) in self.policies.iter().enumerate() {
            for (k, what) in ["weights", "activations"].iter().enumerate() {
                let c = color(2 * p + k);
                chart
                    .draw_series(self.bars().into_iter().filter(|b| b.3 == 2 * p + k).map(
                        |(x0, x1, bits, _)| {
                            Rectangle::new([(x0, 0.0), (x1, height(bits))], c.filled())
                        },
                    ))
                    .map_err(err)?
                    .label(format!("{} {what}", policy.label))
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled())
                    });
            }
        }
        let named = (self.bars().into_iter()).filter_map(|b| Some((b.0, b.2, label(b.2)?)));
        chart
            .draw_series(
                named.map(|(x0, f, text)| Text::new(text, (x0, height(f) + 0.5), font(12))),
            )
            .map_err(err)?;
        Ok(())
    }

    /// The MAC share line on the right axis, with a percent label at each layer.
    fn draw_share<DB: DrawingBackend>(
        &self,
        chart: &mut Dual<'_, DB>,
        err: &impl Fn(DrawingAreaErrorKind<DB::ErrorType>) -> ChartError,
    ) -> Result<(), ChartError> {
        if self.mac_share.is_empty() {
            return Ok(());
        }
        chart
            .configure_secondary_axes()
            .y_desc("MAC share (%)")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style(font(15))
            .axis_desc_style(font(17))
            .draw()
            .map_err(err)?;
        let pts: Vec<(f64, f64)> = (self.mac_share.iter().enumerate())
            .map(|(i, s)| (i as f64, 100.0 * s))
            .collect();
        let dark = BLACK.stroke_width(2);
        chart
            .draw_secondary_series(LineSeries::new(pts.clone(), dark))
            .map_err(err)?
            .label("MAC share")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], dark));
        chart
            .draw_secondary_series(pts.iter().map(|&p| {
                EmptyElement::at(p)
                    + Circle::new((0, 0), 4, BLACK.filled())
                    + Text::new(format!("{:.0}%", p.1), (6, -18), font(12))
            }))
            .map_err(err)?;
        Ok(())
    }
}
