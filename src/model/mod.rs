//! Models: networks as graphs of ops, the model zoo, the passes that run them, and the
//! `LayerShape` records of their quantizable layers.

mod arch;
mod attention;
mod bn;
mod chain;
mod checkpoint;
mod config;
mod exec;
mod graph;
mod joins;
mod layer;
mod net;
mod node_params;
pub mod onnx;
mod op;
mod shape;
mod tokens;
mod vit;

pub use arch::Arch;
pub use config::{ModelConfig, ModelSource};
pub use exec::{LayerVisitor, Trace, Weights};
pub use graph::{Dims, Graph, Node, Op, ShapeError, Shapes};
pub use net::{BnWeights, LayerWeights, Model, ModelError};
pub use op::Attention;
pub use shape::{LayerKind, LayerShape};
