//! bitsearch: mixed-precision bitwidth search (library root; declares modules only).

pub mod bench;
pub mod data;
pub mod experiment;
pub mod hardware;
pub mod model;
pub mod pareto;
pub mod quant;
pub mod report;
pub mod train;
