//! The charts of a run (its front on the test split too), of a DQ study, of a sensitivity study
//! and of the compare view;
//! each implements `Chart`.

pub mod bits;
pub mod dq;
pub mod front_robustness;
pub mod heatmap;
pub mod lines;
pub mod pareto;
pub mod progress;

pub use bits::{BitsChart, NamedPolicy};
pub use dq::{amplification_chart, robustness_chart};
pub use front_robustness::front_chart;
pub use heatmap::{HeatRow, Heatmap};
pub use lines::{Legend, Line, LinesChart};
pub use pareto::{Marker, ParetoChart, ParetoSeries};
pub use progress::ProgressChart;
