//! Models: quantizable layers, the model zoo, and the `LayerShape` records they expose.

mod arch;
mod net;
mod shape;

pub use arch::{Arch, ShapeError, Step};
pub use net::{InputNorm, Model, ModelError, Trace};
pub use shape::{LayerKind, LayerShape};
