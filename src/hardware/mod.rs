//! Hardware cost model: device profiles (TOML) and their validation, compute models (bit-serial,
//! bit-fusion, precision modes over number formats), the per-layer roofline behind the `CostModel` trait, measured
//! lookup tables that override it, timing of the host CPU as a profile, and a simulator's cycle
//! table (HAQ's `.npy` layout, read by `crate::npy`) imported as a profile table or held against
//! a profile's roofline.

mod agreement;
mod compute;
mod cost;
mod cycle_table;
mod error;
mod fit;
mod host_timing;
mod lookup;
mod precision_modes;
mod profile;

pub use agreement::{
    agreement, kind, random_policies, spearman, Agreement, Grid, LayerAgreement, PolicyRatio,
    Roofline,
};
pub use compute::{
    holds, BitFusion, BitSerial, ComputeFile, ComputeModel, Holding, Mode, ModeFile, ModeRun,
    PrecisionModes, PrecisionModesFile, Selection, Storage, FULL_BITS,
};
pub use cost::{
    compare_to_uniform8, policy_cost, Bound, Comparison, Cost, CostModel, CostSource, LayerCost,
    PolicyCost, Price, Ratio,
};
pub use cycle_table::{cycle_table_rows, CycleTable};
pub use error::HardwareError;
pub use fit::{fit, Fit};
pub use host_timing::{
    measure_bandwidth, time_host, write_host_timing, Host, FP32_MAC_PJ, INT8_MAC_PJ,
};
pub use lookup::{calibration_rows, write_profile_with_table, write_table, Table, TableRow};
pub use profile::{
    hex_sha256, profile_files, resolve_profile, Memory, MemoryFile, Profile, ProfileFile,
    BUILTIN_PROFILE_DIR,
};
