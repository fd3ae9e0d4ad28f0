//! Host timing (`profiles calibrate`): times candle's CPU matmul kernels (f32 and the quantized
//! GGML types) on the model's real layer shapes and writes a `precision-modes` profile plus a
//! measured per-layer table.
//!
//! A layer is timed as the matmul it is: `[M, K] x [K, N]` with M = batch·out_h·out_w,
//! K = in_ch·k·k (im2col for convs), N = out_ch. K is zero-padded up to the type's block size
//! (32 for Q8_0, 256 for the K-quants), as candle requires, so a small K may make a low bitwidth
//! slower than a high one; the measurement is kept as it is. Each timing is the median of
//! `repeats` runs after one warm-up run.
//!
//! Weight bitwidths map to kernels: 8→Q8_0, 6→Q6K, 5→Q5K, 4→Q4K, 3→Q3K, 2→Q2K, full→f32; 7 and 1
//! have no kernel of their own and run in the next wider one (Q8_0, Q2K). Candle quantizes only
//! weights: activations stay f32 in the kernel, so a < 32 changes only the bytes moved, never the
//! measured latency. Energy is not measured: it is the roofline estimate from Horowitz's 45 nm
//! operation energies, as written in the profile's `sources`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

use super::compute::{ComputeFile, ModeFile, PrecisionModesFile, Selection, Storage, FULL_BITS};
use super::error::HardwareError;
use super::lookup::{calibration_rows, write_profile_with_table, TableRow};
use super::profile::{MemoryFile, ProfileFile};
use crate::model::LayerShape;

/// The kernels timed: (mode name, GGML type, weight bits).
const KERNELS: [(&str, GgmlDType, u8); 7] = [
    ("f32", GgmlDType::F32, FULL_BITS),
    ("q8_0", GgmlDType::Q8_0, 8),
    ("q6k", GgmlDType::Q6K, 6),
    ("q5k", GgmlDType::Q5K, 5),
    ("q4k", GgmlDType::Q4K, 4),
    ("q3k", GgmlDType::Q3K, 3),
    ("q2k", GgmlDType::Q2K, 2),
];

/// Horowitz (ISSCC 2014), 45 nm: fp32 mult 3.7 pJ + add 0.9 pJ; 8-bit mult 0.2 pJ + 32-bit add 0.1 pJ.
pub const FP32_MAC_PJ: f64 = 4.6;
pub const INT8_MAC_PJ: f64 = 0.3;
/// Horowitz: DRAM 1.3–2.6 nJ per 64-bit access (the low end, per byte); 32 KB SRAM 20 pJ per 64 bits.
const DRAM_PJ_PER_BYTE: f64 = 160.0;
const SRAM_PJ_PER_BYTE: f64 = 2.5;

/// Times the kernels on `layers` at `batch` and returns an unchecked `precision-modes` profile (no
/// `table` set; see `write_calibration`) and the measured table rows, per batch of `batch`.
pub fn time_host(
    layers: &[LayerShape],
    batch: usize,
    repeats: usize,
    progress: bool,
) -> Result<(ProfileFile, Vec<TableRow>), HardwareError> {
    if layers.is_empty() || batch == 0 || repeats == 0 {
        return Err(HardwareError::Calibration(format!(
            "needs at least one layer, batch >= 1 and repeats >= 1 (got {} layers, batch {batch}, \
             repeats {repeats})",
            layers.len()
        )));
    }
    let bar = if progress {
        ProgressBar::new((layers.len() * KERNELS.len()) as u64)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template("{msg:>16} [{bar:30}] {pos}/{len} {elapsed}") {
        bar.set_style(style);
    }
    // seconds[layer][kernel]
    let mut seconds = vec![[0.0f64; KERNELS.len()]; layers.len()];
    for (l, layer) in layers.iter().enumerate() {
        let (m, k, n) = matmul_dims(layer, batch);
        for (j, &(name, dtype, _)) in KERNELS.iter().enumerate() {
            bar.set_message(format!("{} {name}", layer.name));
            seconds[l][j] = time_kernel(m, k, n, dtype, repeats)?;
            bar.inc(1);
        }
    }
    let overhead_s = time_kernel(1, 32, 1, GgmlDType::F32, repeats.max(5))?;
    bar.finish_and_clear();

    let host = Host::probe();
    let bandwidth = measure_bandwidth();
    let profile = build_profile(layers, batch, &seconds, overhead_s, &host, bandwidth);
    let rows = calibration_rows(layers, &profile, |l, w, _| seconds[l][kernel_for(w)])?;
    Ok((profile, rows))
}

/// Writes the profile to `out` with a `table` entry pointing to `<out stem>.csv` beside it, and the
/// table itself. Returns the CSV path.
pub fn write_host_timing(
    out: &Path,
    profile: ProfileFile,
    rows: &[TableRow],
) -> Result<PathBuf, HardwareError> {
    let header = "# Written by `bitsearch profiles calibrate`: measured on this machine with candle's \
                  CPU kernels.\n# Latency is measured (median of repeats); energy is NOT measured: \
                  it is a Horowitz 45 nm estimate (see sources).\n# Activations run in f32 in every \
                  kernel: a < 32 changes only the bytes moved.\n\n";
    write_profile_with_table(out, profile, rows, header)
}

/// (M, K, N) of the layer's matmul at `batch`: im2col for convs.
fn matmul_dims(layer: &LayerShape, batch: usize) -> (usize, usize, usize) {
    let m = batch * layer.out_hw.0 * layer.out_hw.1;
    let k = (layer.in_ch / layer.groups.max(1)) * layer.kernel * layer.kernel;
    (m, k, layer.out_ch)
}

/// Median wall time of `[m, k'] x [k', n]` with weights of `dtype`, k' = k padded to the block size.
fn time_kernel(
    m: usize,
    k: usize,
    n: usize,
    dtype: GgmlDType,
    repeats: usize,
) -> Result<f64, HardwareError> {
    let stage = |what: &str| format!("{what} for {m}x{k}x{n} {dtype:?}");
    let candle = |what: &str| {
        let stage = stage(what);
        move |source| HardwareError::Candle { stage, source }
    };
    let block = dtype.block_size();
    let k_padded = k.div_ceil(block) * block;
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1f32, (m, k_padded), &dev).map_err(candle("input"))?;
    let w = Tensor::randn(0f32, 1f32, (n, k_padded), &dev).map_err(candle("weights"))?;
    let q = QTensor::quantize(&w, dtype).map_err(candle("quantize"))?;
    let mm = QMatMul::from_qtensor(q).map_err(candle("load"))?;
    mm.forward(&x).map_err(candle("warm-up"))?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        let y = mm.forward(&x).map_err(candle("matmul"))?;
        times.push(start.elapsed().as_secs_f64());
        std::hint::black_box(y);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Copy bandwidth (bytes read + written per second) of a 32 MiB buffer, median of 3.
pub fn measure_bandwidth() -> f64 {
    let n = 32 << 20;
    let src = vec![1u8; n];
    let mut dst = vec![0u8; n];
    let mut times: Vec<f64> = (0..3)
        .map(|_| {
            let start = Instant::now();
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&dst);
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    2.0 * n as f64 / times[1].max(1e-9)
}

/// What the host tells about itself, with a note on where each number came from.
pub struct Host {
    pub cpu: String,
    pub clock_hz: f64,
    pub clock_note: String,
    pub buffer_bytes: f64,
    pub buffer_note: String,
    pub threads: usize,
}

impl Host {
    pub fn probe() -> Host {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |key: &str| {
            cpuinfo
                .lines()
                .filter(|l| l.starts_with(key))
                .filter_map(|l| l.split_once(':').map(|(_, v)| v.trim().to_string()))
                .collect::<Vec<_>>()
        };
        let cpu = field("model name")
            .into_iter()
            .next()
            .unwrap_or_else(|| "unknown CPU".into());
        let mhz = field("cpu MHz")
            .iter()
            .filter_map(|v| v.parse::<f64>().ok())
            .fold(0.0, f64::max);
        let (clock_hz, clock_note) = if mhz > 0.0 {
            (
                mhz * 1e6,
                "/proc/cpuinfo `cpu MHz` (max over cores)".to_string(),
            )
        } else {
            (
                1e9,
                "not readable: nominal 1 GHz placeholder; macs_per_cycle is relative to it".into(),
            )
        };
        let l2 = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cache/index2/size")
            .ok()
            .and_then(|s| parse_size(s.trim()));
        let (buffer_bytes, buffer_note) = match l2 {
            Some(b) => (
                b,
                "/sys/devices/system/cpu/cpu0/cache/index2/size (L2)".to_string(),
            ),
            None => (
                1048576.0,
                "L2 size not readable: 1 MiB placeholder".to_string(),
            ),
        };
        Host {
            cpu,
            clock_hz,
            clock_note,
            buffer_bytes,
            buffer_note,
            threads: candle_core::utils::get_num_threads(),
        }
    }

    /// The profile's memory section for this host, copying at `bandwidth` bytes per second
    /// (`measure_bandwidth`), with the `sources` entries that say where each number comes from.
    pub fn memory(&self, bandwidth: f64, sources: &mut BTreeMap<String, String>) -> MemoryFile {
        sources.insert(
            "memory.bandwidth_gb_per_s".into(),
            "measured: copy of a 32 MiB buffer, (read + write bytes) / median time".into(),
        );
        sources.insert("memory.buffer_bytes".into(), self.buffer_note.clone());
        sources.insert(
            "memory.energy".into(),
            "NOT measured: Horowitz 45 nm, DRAM 160 pJ/byte, 32 KB SRAM 2.5 pJ/byte".into(),
        );
        MemoryFile {
            bandwidth_gb_per_s: bandwidth / 1e9,
            buffer_bytes: self.buffer_bytes,
            dram_pj_per_byte: DRAM_PJ_PER_BYTE,
            sram_pj_per_byte: SRAM_PJ_PER_BYTE,
        }
    }
}

/// Parses `1024K`, `2M` or a plain byte count.
fn parse_size(s: &str) -> Option<f64> {
    let (num, scale) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1024.0),
        'M' | 'm' => (&s[..s.len() - 1], 1048576.0),
        _ => (s, 1.0),
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

fn build_profile(
    layers: &[LayerShape],
    batch: usize,
    seconds: &[[f64; KERNELS.len()]],
    overhead_s: f64,
    host: &Host,
    bandwidth: f64,
) -> ProfileFile {
    let total_macs: f64 = layers.iter().map(|l| (batch as u64 * l.macs) as f64).sum();
    let modes = KERNELS
        .iter()
        .enumerate()
        .map(|(j, &(name, _, w_bits))| {
            let total_s: f64 = seconds.iter().map(|s| s[j]).sum();
            ModeFile::int(
                name,
                i64::from(w_bits),
                i64::from(FULL_BITS),
                total_macs / total_s.max(1e-12) / host.clock_hz,
                if w_bits == FULL_BITS {
                    FP32_MAC_PJ
                } else {
                    INT8_MAC_PJ
                },
            )
        })
        .collect();
    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    let mut sources = BTreeMap::new();
    sources.insert("clock_hz".into(), host.clock_note.clone());
    sources.insert(
        "compute.modes".into(),
        format!(
            "measured: candle 0.11 CPU QMatMul on layers [{}] at batch {batch}, {} threads; \
             macs_per_cycle = real (unpadded) MACs / summed median time / clock_hz",
            names.join(","),
            host.threads
        ),
    );
    sources.insert(
        "compute.modes.mac_pj".into(),
        "NOT measured: Horowitz ISSCC 2014 45 nm, fp32 MAC 4.6 pJ, int8 MAC 0.3 pJ (the K-quant \
         and Q8_0 kernels do 8-bit integer dot products)"
            .into(),
    );
    sources.insert(
        "layer_overhead_us".into(),
        "measured: median time of a 1x32x1 f32 matmul (dispatch cost)".into(),
    );
    sources.insert(
        "table".into(),
        "latency measured per layer (median); energy_uj is the model's estimate, not measured"
            .into(),
    );
    let memory = host.memory(bandwidth, &mut sources);
    ProfileFile {
        name: "host-candle".into(),
        description: format!(
            "{} calibrated with candle 0.11 CPU kernels ({} threads). Activations are f32 in \
             every kernel (a < 32 changes only bytes); weights run in their own GGML type.",
            host.cpu, host.threads
        ),
        sources,
        batch: batch as i64,
        precisions: (1..=8).collect(),
        clock_hz: host.clock_hz,
        layer_overhead_us: overhead_s * 1e6,
        table: None,
        memory,
        compute: ComputeFile::PrecisionModes(PrecisionModesFile {
            selection: Selection::Narrowest,
            weight_storage: Storage::Packed,
            activation_storage: Storage::Packed,
            modes,
        }),
    }
}

/// The kernel a weight bitwidth runs in (index into `KERNELS`): its own, or the next wider one.
fn kernel_for(w: u8) -> usize {
    match w {
        7..=8 => 1,
        6 => 2,
        5 => 3,
        4 => 4,
        3 => 5,
        1..=2 => 6,
        _ => 0,
    }
}
