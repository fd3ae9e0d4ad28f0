//! `profiles calibrate --runtime onnxruntime`: a profile for this host built from ONNX
//! Runtime's measured per-layer latency of the model exported at each container ORT tells
//! apart, so a search prices the latency the deployed model will have.
//!
//! A QDQ export (opset 13) stores every width 2..8 in int8/uint8, so ORT sees five distinct
//! graphs per layer, each timed as a uniform policy: 32/32 (float), 8/8 (8-bit activations,
//! whose QuantizeLinear needs no clamp, so ORT can fuse the layer into QLinearConv/QGemm),
//! 4/4 (any activation width 2..7: the clamp to the narrower grid stays in the graph and ORT
//! runs the layer in float between its Q/DQ nodes), 8/32 (quantized weights, float
//! activations) and 32/8 and 32/4 (float weights behind an activation quantizer). Every (w, a)
//! of the table takes its container's measurement: a width ORT has no kernel for runs, and is
//! priced, in the next wider container. Latency is measured; energy is not (the roofline's
//! Horowitz 45 nm estimate, as `sources` says).
//!
//! Latency does not depend on the weights' or clips' values, so the model is freshly
//! initialized with unit clips: no data set or trained baseline is needed.

use std::collections::BTreeMap;
use std::path::Path;

use super::{attribute, measure, RuntimeError, Timing};
use crate::atomic::write_atomic;
use crate::hardware::{
    calibration_rows, measure_bandwidth, ComputeFile, Host, ModeFile, PrecisionModesFile,
    ProfileFile, Selection, Storage, TableRow, FP32_MAC_PJ, FULL_BITS, INT8_MAC_PJ,
};
use crate::model::onnx::{export_with_layers, Opset};
use crate::model::{LayerKind, Model};
use crate::quant::{Clips, Format, LayerBits, Policy, Quantizer};

/// The uniform policies timed (w, a): see the module doc.
pub const CONTAINERS: [(u8, u8); 6] = [(32, 32), (8, 8), (4, 4), (8, 32), (32, 8), (32, 4)];

/// The container (index into `CONTAINERS`) a layer at (w, a) runs in.
pub fn container(w: u8, a: u8) -> usize {
    match (w == FULL_BITS, a) {
        (true, FULL_BITS) => 0,
        (false, 8) => 1,
        (false, FULL_BITS) => 3,
        (false, _) => 2,
        (true, 8) => 4,
        (true, _) => 5,
    }
}

/// One container's measurement: per layer, its time and the kernel ORT chose.
#[derive(Debug, Clone)]
pub struct ContainerTiming {
    pub w: u8,
    pub a: u8,
    pub median_s: f64,
    pub seconds: Vec<f64>,
    pub kernels: Vec<String>,
}

/// A calibration's result.
pub struct Calibrated {
    pub profile: ProfileFile,
    pub rows: Vec<TableRow>,
    pub containers: Vec<ContainerTiming>,
    pub onnxruntime: String,
}

/// Times `model` at every container in ONNX Runtime (models written to `dir`) and builds the
/// profile and its table, per batch of `timing.batches[0]`.
pub fn calibrate(
    model: &Model,
    timing: &Timing,
    dir: &Path,
    mut progress: impl FnMut(&ContainerTiming),
) -> Result<Calibrated, RuntimeError> {
    let layers = model.shapes();
    let clips = Clips {
        input: vec![[1.0; 8]; layers.len()],
        operand: (layers.iter())
            .map(|l| (l.kind == LayerKind::Matmul).then_some([1.0; 8]))
            .collect(),
    };
    let mut containers = Vec::new();
    let mut version = String::new();
    for (w, a) in CONTAINERS {
        let bits = LayerBits::new(Format::new(w)?, Format::new(a)?);
        let q = Quantizer::new(Policy::new(vec![bits; layers.len()]), clips.clone());
        let (bytes, nodes) = export_with_layers(model, &q, Opset::V13)?;
        let path = dir.join(format!("uniform-{w}-{a}.onnx"));
        write_atomic(&path, &bytes)?;
        let m = measure(&path, timing)?;
        let b = &m.batches[0];
        let per = attribute(&nodes, b);
        let c = ContainerTiming {
            w,
            a,
            median_s: b.median_s,
            seconds: per.iter().map(|l| l.seconds).collect(),
            kernels: per.into_iter().map(|l| l.kernel).collect(),
        };
        progress(&c);
        containers.push(c);
        version = m.onnxruntime;
    }
    let batch = timing.batches[0];
    let profile = profile(model, batch, timing.threads, &containers, &version);
    let rows = calibration_rows(model.shapes(), &profile, |l, w, a| {
        containers[container(w, a)].seconds[l]
    })?;
    Ok(Calibrated {
        profile,
        rows,
        containers,
        onnxruntime: version,
    })
}

/// A precision-modes profile whose fp32 and int8 throughputs are the measured whole-model
/// ones (for models the table does not list); the table itself is set by the writer.
fn profile(
    model: &Model,
    batch: usize,
    threads: usize,
    containers: &[ContainerTiming],
    version: &str,
) -> ProfileFile {
    let host = Host::probe();
    let macs: f64 = model
        .shapes()
        .iter()
        .map(|l| (batch as u64 * l.macs) as f64)
        .sum();
    let mode = |name: &str, bits: i64, c: &ContainerTiming, mac_pj| {
        let rate = macs / c.median_s.max(1e-12) / host.clock_hz;
        ModeFile::int(name, bits, bits, rate, mac_pj)
    };
    let mut sources = BTreeMap::new();
    sources.insert("clock_hz".into(), host.clock_note.clone());
    sources.insert(
        "compute.modes".into(),
        format!(
            "measured: ONNX Runtime {version} (CPU execution provider, all graph optimizations, \
             {threads} threads) on {} at batch {batch}: macs_per_cycle = MACs / median \
             whole-model time of uniform 32/32 (fp32) and 8/8 (int8) / clock_hz",
            model.name()
        ),
    );
    sources.insert(
        "compute.modes.mac_pj".into(),
        "NOT measured: Horowitz ISSCC 2014 45 nm, fp32 MAC 4.6 pJ, int8 MAC 0.3 pJ".into(),
    );
    sources.insert(
        "table".into(),
        "latency measured: each layer's share (from ORT's profiler, the nodes between layers \
         counted with the next layer) of the median whole-model time of a uniform policy in \
         the layer's container (32/32, 8/8, 4/4 for 2..7-bit activations, 8/32, 32/8, 32/4); \
         energy_uj is the model's estimate, not measured"
            .into(),
    );
    let memory = host.memory(measure_bandwidth(), &mut sources);
    ProfileFile {
        name: "host-onnxruntime".into(),
        description: format!(
            "{} running ONNX Runtime {version} ({threads} threads): QDQ models at opset 13, every \
             width 2..8 in int8/uint8 containers",
            host.cpu
        ),
        sources,
        batch: batch as i64,
        precisions: (1..=8).collect(),
        clock_hz: host.clock_hz,
        layer_overhead_us: 0.0,
        table: None,
        memory,
        compute: ComputeFile::PrecisionModes(PrecisionModesFile {
            selection: Selection::Narrowest,
            weight_storage: Storage::Packed,
            activation_storage: Storage::Packed,
            modes: vec![
                mode("fp32", FULL_BITS.into(), &containers[0], FP32_MAC_PJ),
                mode("int8", 8, &containers[1], INT8_MAC_PJ),
            ],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_width_runs_in_the_container_ort_tells_apart() {
        assert_eq!(CONTAINERS[container(32, 32)], (32, 32));
        assert_eq!(CONTAINERS[container(8, 8)], (8, 8));
        assert_eq!(CONTAINERS[container(2, 8)], (8, 8));
        assert_eq!(CONTAINERS[container(8, 3)], (4, 4));
        assert_eq!(CONTAINERS[container(2, 7)], (4, 4));
        assert_eq!(CONTAINERS[container(5, 32)], (8, 32));
        assert_eq!(CONTAINERS[container(32, 8)], (32, 8));
        assert_eq!(CONTAINERS[container(32, 2)], (32, 4));
    }
}
