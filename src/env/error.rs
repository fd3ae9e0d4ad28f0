//! `EnvError`: why the environment could not be set up (a budget no policy meets, a missing
//! cost entry, a bitwidth out of range).

/// Why the environment could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error(
        "infeasible {resource} budget: {budget:.4e} is below {floor:.4e}, the {resource} with every \
         operand at the minimum of {min_bits} bits (uniform 8/8 costs {uniform8:.4e}); raise the budget or lower bits.min"
    )]
    InfeasibleBudget {
        resource: &'static str,
        budget: f64,
        floor: f64,
        uniform8: f64,
        min_bits: crate::quant::Format,
    },
    #[error("the search space declares no bitwidths")]
    NoBits,
    #[error(transparent)]
    Hardware(Box<crate::hardware::HardwareError>),
    #[error(transparent)]
    Quant(Box<crate::quant::QuantError>),
}

crate::errors::boxed_from!(
    EnvError;
    Hardware: crate::hardware::HardwareError,
    Quant: crate::quant::QuantError
);
