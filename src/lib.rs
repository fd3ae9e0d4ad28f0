//! bitsearch: mixed-precision bitwidth search (library root; declares modules only).

pub mod model;
pub mod ops;
pub mod quant;
