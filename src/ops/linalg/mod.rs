//! Linear algebra: the fully connected layer (`linear.rs`), the bounds-checked `gemm` wrapper
//! every matrix product here goes through (`matmul.rs`), and the Lipschitz penalty's
//! `‖W Wᵀ − I‖²` (`gram.rs`).

mod gram;
mod linear;
pub(crate) mod matmul;

pub use gram::orthogonality;
pub use linear::linear;
