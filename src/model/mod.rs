//! Models: quantizable layers, the model zoo, and the `LayerShape` records they expose.

mod shape;

pub use shape::{LayerKind, LayerShape};
