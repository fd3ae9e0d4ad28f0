//! What every chart shares: the font embedded in the binary (DejaVu Sans, assets/fonts), sizes,
//! colours, unit scaling, the `Chart` trait and rendering one chart to both PNG and SVG.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, RGBColor};

use crate::rundir::write_atomic;

/// The font, compiled into the binary so charts need no system fonts.
static FONT_TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// The family every chart text uses; plotters' default family, so axis labels use it too.
pub const FAMILY: &str = "sans-serif";
/// Default chart size in pixels.
pub const SIZE: (u32, u32) = (960, 600);

/// Why a chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("the embedded chart font (assets/fonts/DejaVuSans.ttf) is not a valid font")]
    Font,
    #[error("chart {chart}: {message}")]
    Draw { chart: String, message: String },
    #[error("chart {chart}: {source}")]
    Write {
        chart: String,
        source: crate::rundir::RunDirError,
    },
}

/// Registers the embedded font with plotters, once per process.
pub fn register_font() -> Result<(), ChartError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT_TTF).is_ok()
    });
    ok.then_some(()).ok_or(ChartError::Font)
}

/// A chart: a drawing over any backend, so the same code writes PNG and SVG.
pub trait Chart {
    /// The file stem under charts/ (e.g. `pareto-accuracy-latency`).
    fn stem(&self) -> String;
    /// Draws onto `root` and ends with a checked `present()`.
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), ChartError>;
}

/// Turns any drawing error into a `ChartError` naming the chart.
pub fn draw_err<E: std::fmt::Display>(chart: &str) -> impl Fn(E) -> ChartError + '_ {
    move |e| ChartError::Draw {
        chart: chart.to_string(),
        message: e.to_string(),
    }
}

/// The two files of one chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartFiles {
    pub png: PathBuf,
    pub svg: PathBuf,
}

/// Draws `chart` into `dir/<stem>.png` and `dir/<stem>.svg`. Both are drawn in memory and
/// written with `rundir::write_atomic`: plotters' file backends open the path as given and
/// would write through a symbolic link planted there.
pub fn render<C: Chart>(chart: &C, dir: &Path) -> Result<ChartFiles, ChartError> {
    register_font()?;
    let stem = chart.stem();
    let files = ChartFiles {
        png: dir.join(format!("{stem}.png")),
        svg: dir.join(format!("{stem}.svg")),
    };
    let (w, h) = SIZE;
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    chart.draw(BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area())?;
    let mut svg = String::new();
    chart.draw(SVGBackend::with_string(&mut svg, SIZE).into_drawing_area())?;
    let written = |source| ChartError::Write {
        chart: stem.clone(),
        source,
    };
    let png = encode_png(&rgb, SIZE).map_err(draw_err(&stem))?;
    write_atomic(&files.png, &png).map_err(written)?;
    write_atomic(&files.svg, svg.as_bytes()).map_err(written)?;
    Ok(files)
}

/// An RGB buffer as PNG bytes.
fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>, png::EncodingError> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // Charts are flat colour: the best deflate level with per-row filter choice makes them a
    // fraction of the default's size, and a run directory may sit on a small disk.
    encoder.set_compression(png::Compression::Best);
    encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(bytes)
}

/// Text of `size` pixels in the embedded font.
pub fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// The i-th series colour (a colour-blind-safe qualitative palette, Okabe & Ito).
pub fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(0, 114, 178),
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
        RGBColor(120, 120, 120),
        RGBColor(0, 0, 0),
    ];
    COLORS[i % COLORS.len()]
}

/// A padded axis range around `values` (a unit range around a single value).
pub fn padded_range(values: impl Iterator<Item = f64>, pad: f64) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..1.0;
    }
    // Near f64::MAX the padding overflows to an infinite bound, on which plotters' search for
    // tick marks never ends (a hand-edited CSV hung `report`): keep every bound finite.
    let limit = f64::MAX / 16.0;
    let (lo, hi) = (lo.clamp(-limit, limit), hi.clamp(-limit, limit));
    let span = if hi > lo { hi - lo } else { hi.abs().max(1.0) };
    (lo - pad * span)..(hi + pad * span)
}

/// A beta for a legend: `0` or scientific notation (`1e-2`).
pub fn beta_label(beta: f64) -> String {
    if beta == 0.0 {
        "0".to_string()
    } else {
        format!("{beta:e}")
    }
}

/// A bitwidth for an axis: `FP32` for full precision.
pub fn bits_label(bits: u8) -> String {
    match bits {
        32 => "FP32".to_string(),
        b => format!("{b}"),
    }
}

/// The name of the category at tick `v` of a category axis (categories sit at 0, 1, 2, ...);
/// ticks between categories get no label.
pub fn category(names: &[String], v: f64) -> String {
    let i = v.round();
    if (v - i).abs() > 1e-6 || i < 0.0 {
        return String::new();
    }
    names.get(i as usize).cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_range_stays_finite_for_values_near_f64_max() {
        for values in [
            [0.05, f64::MAX],
            [-f64::MAX, f64::MAX],
            [-f64::MAX, -f64::MAX],
        ] {
            let r = padded_range(values.into_iter(), 0.08);
            assert!(
                r.start < r.end && (r.end - r.start).is_finite(),
                "{values:?}: {r:?}"
            );
        }
        assert_eq!(padded_range([1.0, 3.0].into_iter(), 0.5), 0.0..4.0);
    }
}
