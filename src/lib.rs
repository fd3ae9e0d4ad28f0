//! bitsearch: mixed-precision bitwidth search (library root; declares modules only).

pub mod cli;
pub mod hardware;
pub mod model;
pub mod quant;
