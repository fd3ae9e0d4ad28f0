//! Pricing: the `CostModel` trait, the per-layer roofline of a `Profile`, and whole-policy totals.
//!
//! For a batch of B examples (from the profile) and a layer with W weights, I inputs and O outputs
//! per example, run at formats (w, a) in a mode that stores operands at (w_s, a_s) bits (each
//! format's width, or its mode's: `compute`):
//!
//! ```text
//! MACs         = B · macs
//! compute_s    = MACs / (macs_per_cycle(w, a) · clock_hz)
//! DRAM bytes   = ⌈W·w_s/8⌉ · R + ⌈B·I·a_s/8⌉ + ⌈B·O·a_s/8⌉ + ⌈B·J·a_s/8⌉ + ⌈B·K·w_s/8⌉
//!                R = 1 if the weights fit in the on-chip buffer (read once per batch), else B
//!                outputs are assumed requantized to this layer's activation width a_s
//!                J = the activation values moved by the joins charged to the layer (a residual
//!                Add, a gating Mul, a Concat; `LayerShape::residual`)
//!                K = an activation × activation matmul's second operand (attention's K or V,
//!                quantized at w: `LayerShape::operand_count`; W = 0 there), 0 elsewhere
//! SRAM bytes   = ⌈W·w_s/8⌉ + ⌈B·K·w_s/8⌉ + ⌈B·P·a_s/8⌉ + ⌈B·O·a_s/8⌉,
//!                P = out_h·out_w·in_ch·k² (im2col reads)
//! latency_s    = max(compute_s, DRAM bytes / bandwidth) + layer_overhead      (roofline)
//! energy_j     = MACs · E_mac(w, a) + DRAM bytes · E_dram + SRAM bytes · E_sram
//! ```
//!
//! Latency and energy are per batch of B examples. A policy's cost is the sum over its layers:
//! layers run one after another, with no overlap between them.

use serde::{Deserialize, Serialize};

use super::error::HardwareError;
use super::lookup::Table;
use super::profile::Profile;
use crate::model::LayerShape;
use crate::quant::{Format, LayerBits, Policy};

/// A policy's price on the device: what the budgets constrain, and what config.json records as
/// `uniform8` (field names and order are that file's format).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Price {
    pub latency_s: f64,
    pub energy_j: f64,
    /// Stored weights at their bitwidths plus 32-bit biases (an attention matmul stores none).
    pub size_bytes: f64,
}

impl std::ops::Add for Price {
    type Output = Price;
    fn add(self, o: Price) -> Price {
        Price {
            latency_s: self.latency_s + o.latency_s,
            energy_j: self.energy_j + o.energy_j,
            size_bytes: self.size_bytes + o.size_bytes,
        }
    }
}

impl std::ops::Sub for Price {
    type Output = Price;
    fn sub(self, o: Price) -> Price {
        Price {
            latency_s: self.latency_s - o.latency_s,
            energy_j: self.energy_j - o.energy_j,
            size_bytes: self.size_bytes - o.size_bytes,
        }
    }
}

/// What limits a layer in the roofline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    Compute,
    Memory,
}

/// Where a cost's latency and energy come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CostSource {
    /// The profile's compute model and roofline.
    Model,
    /// A row of the profile's measured table (bytes, bound and mode still from the model).
    Table,
}

/// The price of one layer at one (w, a), per batch of `batch` examples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    pub latency_s: f64,
    pub energy_j: f64,
    /// Bytes moved to and from off-chip memory.
    pub bytes: u64,
    pub macs: u64,
    pub bound: Bound,
    /// The mode the layer actually runs in (e.g. `int8`, `fusion 4x4`, `bit-serial 3x5`).
    pub mode: String,
    pub compute_s: f64,
    pub memory_s: f64,
    pub batch: u64,
    pub source: CostSource,
}

/// A device that prices layers.
pub trait CostModel {
    /// Prices `layer` at `bits`; an unsupported bitwidth or a missing table row is an error.
    fn layer_cost(&self, layer: &LayerShape, bits: LayerBits) -> Result<Cost, HardwareError>;
}

impl CostModel for Profile {
    fn layer_cost(&self, layer: &LayerShape, bits: LayerBits) -> Result<Cost, HardwareError> {
        for b in [bits.w, bits.a] {
            if !self.supports(b) {
                return Err(self.unsupported(layer, bits));
            }
        }
        let mut cost = self.model_cost(layer, bits)?;
        if let Some(table) = self.table.as_ref().filter(|t| t.lists(&layer.name)) {
            // A listed layer is priced from its rows or not at all: a format the rows cannot
            // hold is an error, as a missing row is, never the model's price in their place.
            let row = |f: Format| {
                Table::row_width(f).ok_or_else(|| HardwareError::TableFormat {
                    profile: self.name.clone(),
                    table: table.path().to_path_buf(),
                    layer: layer.name.clone(),
                    bits,
                    format: f,
                })
            };
            let (w, a) = (row(bits.w)?, row(bits.a)?);
            if let Some((latency_s, energy_j)) = table.lookup(layer, w, a)? {
                cost.latency_s = latency_s;
                cost.energy_j = energy_j;
                cost.source = CostSource::Table;
            }
        }
        Ok(cost)
    }
}

impl Profile {
    /// The roofline price from the compute model, ignoring any measured table.
    pub fn model_cost(&self, layer: &LayerShape, bits: LayerBits) -> Result<Cost, HardwareError> {
        let run = self
            .compute
            .run(bits)
            .ok_or_else(|| HardwareError::NoMode {
                profile: self.name.clone(),
                layer: layer.name.clone(),
                bits: bits.to_string(),
            })?;
        let batch = self.batch as f64;
        let bytes_of = |count: f64, bits: u8| (count * f64::from(bits) / 8.0).ceil();
        let macs = batch * layer.macs as f64;
        let compute_s = macs / (run.macs_per_cycle * self.clock_hz);

        let weight_bytes = bytes_of(layer.weight_count() as f64, run.w_stored_bits);
        let weight_reads = if weight_bytes <= self.memory.buffer_bytes {
            1.0
        } else {
            batch
        };
        let in_bytes = bytes_of(batch * layer.input_count() as f64, run.a_stored_bits);
        let out_bytes = bytes_of(batch * layer.output_count() as f64, run.a_stored_bits);
        // The joins charged to the layer (a residual Add, a gating Mul, a Concat:
        // model::joins) read their other operands and write their result, at the layer's
        // activation width.
        let add_bytes = bytes_of(batch * layer.residual as f64, run.a_stored_bits);
        // A matmul's second operand is an activation: read per example, at its width w.
        let operand_bytes = bytes_of(batch * layer.operand_count() as f64, run.w_stored_bits);
        let dram = weight_bytes * weight_reads + in_bytes + out_bytes + add_bytes + operand_bytes;
        let patches =
            (layer.out_hw.0 * layer.out_hw.1 * layer.in_ch * layer.kernel * layer.kernel) as f64;
        let sram =
            weight_bytes + bytes_of(batch * patches, run.a_stored_bits) + out_bytes + operand_bytes;
        let memory_s = dram / self.memory.bandwidth_bytes_per_s;

        let energy_j = macs * run.mac_j
            + dram * self.memory.dram_j_per_byte
            + sram * self.memory.sram_j_per_byte;
        Ok(Cost {
            latency_s: compute_s.max(memory_s) + self.overhead_s,
            energy_j,
            bytes: dram as u64,
            macs: macs as u64,
            bound: if compute_s >= memory_s {
                Bound::Compute
            } else {
                Bound::Memory
            },
            mode: run.mode,
            compute_s,
            memory_s,
            batch: self.batch,
            source: CostSource::Model,
        })
    }

    fn unsupported(&self, layer: &LayerShape, bits: LayerBits) -> HardwareError {
        HardwareError::UnsupportedBits {
            profile: self.name.clone(),
            layer: layer.name.clone(),
            bits: format!("w/a = {bits}"),
            supported: self
                .precisions
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// One priced layer of a policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerCost {
    pub layer: String,
    pub bits: String,
    #[serde(flatten)]
    pub cost: Cost,
}

/// A whole policy's price: per layer, and summed over layers (layers run one after another).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyCost {
    pub layers: Vec<LayerCost>,
    pub latency_s: f64,
    pub energy_j: f64,
    pub bytes: u64,
    pub macs: u64,
}

/// Prices every layer of `policy` (one entry per layer of `layers`, in order) and sums them.
pub fn policy_cost<M: CostModel + ?Sized>(
    model: &M,
    layers: &[LayerShape],
    policy: &Policy,
) -> Result<PolicyCost, HardwareError> {
    if policy.len() != layers.len() {
        return Err(HardwareError::PolicyLength {
            expected: layers.len(),
            got: policy.len(),
        });
    }
    let mut total = PolicyCost {
        layers: Vec::with_capacity(layers.len()),
        latency_s: 0.0,
        energy_j: 0.0,
        bytes: 0,
        macs: 0,
    };
    for (layer, &bits) in layers.iter().zip(policy.layers()) {
        let cost = model.layer_cost(layer, bits)?;
        total.latency_s += cost.latency_s;
        total.energy_j += cost.energy_j;
        total.bytes += cost.bytes;
        total.macs += cost.macs;
        total.layers.push(LayerCost {
            layer: layer.name.clone(),
            bits: bits.to_string(),
            cost,
        });
    }
    Ok(total)
}

/// A policy's cost next to uniform 8/8 on the same device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub policy: PolicyCost,
    pub uniform8: PolicyCost,
    pub ratio: Ratio,
}

/// policy / uniform 8/8, for latency, energy and bytes moved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratio {
    pub latency: f64,
    pub energy: f64,
    pub bytes: f64,
}

/// Prices `policy` and uniform 8/8 and returns both with their ratio.
pub fn compare_to_uniform8<M: CostModel + ?Sized>(
    model: &M,
    layers: &[LayerShape],
    policy: &Policy,
) -> Result<Comparison, HardwareError> {
    let eight = Format::new(8)?;
    let policy_cost = policy_cost(model, layers, policy)?;
    let uniform8 = policy_cost_uniform(model, layers, eight)?;
    let ratio = Ratio {
        latency: policy_cost.latency_s / uniform8.latency_s,
        energy: policy_cost.energy_j / uniform8.energy_j,
        bytes: policy_cost.bytes as f64 / uniform8.bytes as f64,
    };
    Ok(Comparison {
        policy: policy_cost,
        uniform8,
        ratio,
    })
}

fn policy_cost_uniform<M: CostModel + ?Sized>(
    model: &M,
    layers: &[LayerShape],
    bits: Format,
) -> Result<PolicyCost, HardwareError> {
    policy_cost(model, layers, &Policy::uniform(layers.len(), bits))
}

#[cfg(test)]
#[path = "cost_tests.rs"]
mod tests;
