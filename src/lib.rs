//! bitsearch: mixed-precision bitwidth search (library root; declares modules only).

pub mod agents;
pub mod bench;
pub mod calib;
pub mod crashpoint;
pub mod data;
pub mod deploy;
pub mod dq;
pub mod env;
mod errors;
pub mod experiment;
pub mod fidelity;
pub mod hardware;
pub mod model;
pub mod npy;
pub mod ops;
pub mod pareto;
pub mod quant;
pub mod report;
pub mod robust;
pub mod rundir;
pub mod score;
pub mod search;
pub mod sensitivity;
pub mod slurm;
pub mod sweep;
pub mod train;
pub mod validate;
