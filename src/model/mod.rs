//! Models: quantizable layers, the model zoo, and the `LayerShape` records they expose.

mod arch;
mod config;
mod net;
mod shape;

pub use arch::{Arch, ShapeError, Step};
pub use config::ModelConfig;
pub use net::{Model, ModelError, Trace};
pub use shape::{LayerKind, LayerShape};
