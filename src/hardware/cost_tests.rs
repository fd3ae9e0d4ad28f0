//! Roofline numbers checked against hand computation for each compute model, on LeNet-5's conv2
//! (6→16, k5 on 12x12: out 8x8, W = 2400, I = 864, O = 1024, MACs = 153,600) and fc1 (256→120:
//! W = 30,720, I = 256, O = 120, MACs = 30,720).

use std::path::Path;

use super::*;
use crate::hardware::ProfileFile;

fn conv2() -> LayerShape {
    LayerShape::conv("conv2", 6, 16, 5, 1, 0, (12, 12))
}

fn fc1() -> LayerShape {
    LayerShape::linear("fc1", 256, 120)
}

fn bits(w: u8, a: u8) -> LayerBits {
    LayerBits::new(Format::new(w).unwrap(), Format::new(a).unwrap())
}

/// A 1 GHz device with 1 GB/s, 100 pJ/byte DRAM, 1 pJ/byte SRAM, no overhead, and `compute`.
fn profile(compute: &str) -> Profile {
    let text = format!(
        "name = \"t\"\ndescription = \"\"\nbatch = 1\nprecisions = [1,2,3,4,5,6,7,8]\n\
         clock_hz = 1e9\nlayer_overhead_us = 0.0\n[sources]\nx = \"test\"\n[memory]\n\
         bandwidth_gb_per_s = 1.0\nbuffer_bytes = 1e6\ndram_pj_per_byte = 100.0\n\
         sram_pj_per_byte = 1.0\n[compute]\n{compute}"
    );
    let file: ProfileFile = toml::from_str(&text).unwrap();
    file.check(Path::new("t.toml")).unwrap()
}

fn close(got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs(),
        "got {got}, want {want}"
    );
}

#[test]
fn bit_serial_conv_4x4_is_4x_faster_than_8x8_when_compute_bound() {
    let p =
        profile("model = \"bit-serial\"\nbinary_macs_per_cycle = 1024\npj_per_binary_mac = 1.0");
    let c8 = p.layer_cost(&conv2(), bits(8, 8)).unwrap();
    // 1024/64 = 16 MACs/cycle: 153600/16 cycles at 1 GHz = 9.6 us; bytes 2400+864+1024 = 4288
    // at 1 GB/s = 4.288 us < 9.6 us, so compute-bound.
    close(c8.latency_s, 9.6e-6);
    assert_eq!(c8.bytes, 4288);
    assert_eq!(c8.bound, Bound::Compute);
    // energy: 153600 MACs x 64 pJ + 4288 B x 100 pJ + SRAM (2400 + 8*8*6*25 + 1024 = 13024 B) x 1 pJ.
    close(
        c8.energy_j,
        153600.0 * 64e-12 + 4288.0 * 100e-12 + 13024.0 * 1e-12,
    );
    let c4 = p.layer_cost(&conv2(), bits(4, 4)).unwrap();
    // 1024/16 = 64 MACs/cycle: 2.4 us; bytes 1200+432+512 = 2144 -> 2.144 us, still compute-bound.
    close(c4.latency_s, 2.4e-6);
    assert_eq!(c4.bound, Bound::Compute);
    close(c8.latency_s / c4.latency_s, 4.0);
    assert_eq!(c4.mode, "bit-serial 4x4");
}

#[test]
fn bit_serial_linear_is_memory_bound_so_4x4_only_halves() {
    let p =
        profile("model = \"bit-serial\"\nbinary_macs_per_cycle = 1024\npj_per_binary_mac = 1.0");
    let c8 = p.layer_cost(&fc1(), bits(8, 8)).unwrap();
    // compute 30720/16 = 1.92 us; bytes 30720+256+120 = 31096 -> 31.096 us: memory-bound.
    assert_eq!(c8.bound, Bound::Memory);
    close(c8.latency_s, 31.096e-6);
    let c4 = p.layer_cost(&fc1(), bits(4, 4)).unwrap();
    // bytes 15360+128+60 = 15548 -> 15.548 us.
    close(c4.latency_s, 15.548e-6);
    // full precision is a 32x32 integer bit-serial MAC: 1024 planes, 1 MAC/cycle = 30.72 us compute.
    let full = p.layer_cost(&fc1(), bits(32, 32)).unwrap();
    close(full.compute_s, 30.72e-6);
}

/// A residual add after a layer moves two more activation tensors (shortcut read, sum
/// written) at the layer's activation width.
#[test]
fn a_residual_add_adds_its_traffic_at_the_activation_width() {
    let p =
        profile("model = \"bit-serial\"\nbinary_macs_per_cycle = 1024\npj_per_binary_mac = 1.0");
    let plain = fc1();
    let mut with_add = fc1();
    with_add.residual = 2 * 120;
    let (a, b) = (
        p.layer_cost(&plain, bits(8, 4)).unwrap(),
        p.layer_cost(&with_add, bits(8, 4)).unwrap(),
    );
    // 240 values at 4 bits = 120 bytes more.
    assert_eq!(b.bytes - a.bytes, 120);
    assert!(b.energy_j > a.energy_j && b.latency_s > a.latency_s);
}

#[test]
fn bit_fusion_3_bits_costs_the_same_as_4() {
    let p = profile("model = \"bit-fusion\"\nfusion_units = 16\nmac_pj_8x8 = 0.64");
    let c4 = p.layer_cost(&conv2(), bits(4, 4)).unwrap();
    let c3 = p.layer_cost(&conv2(), bits(3, 3)).unwrap();
    assert_eq!(c3, c4);
    // 16 units x (8/4) x (8/4) = 64 MACs/cycle: 153600/64 = 2.4 us; bytes 1200+432+512 = 2144.
    close(c4.latency_s, 2.4e-6);
    assert_eq!(c4.bytes, 2144);
    assert_eq!(c4.mode, "fusion 4x4");
    // E_mac = 0.64 pJ x 16/64 = 0.16 pJ; SRAM = 1200 + 4800 + 512 = 6512 B.
    close(
        c4.energy_j,
        153600.0 * 0.16e-12 + 2144.0 * 100e-12 + 6512.0 * 1e-12,
    );
    // 3/5 -> 4x8: 16 x 2 x 1 = 32 MACs/cycle = 4.8 us.
    close(
        p.layer_cost(&conv2(), bits(3, 5)).unwrap().latency_s,
        4.8e-6,
    );
    // 8/8: 16 MACs/cycle = 9.6 us.
    close(
        p.layer_cost(&conv2(), bits(8, 8)).unwrap().latency_s,
        9.6e-6,
    );
}

#[test]
fn bit_fusion_linear_and_full_precision() {
    let p = profile("model = \"bit-fusion\"\nfusion_units = 16\nmac_pj_8x8 = 0.64");
    let c = p.layer_cost(&fc1(), bits(2, 2)).unwrap();
    // 16 x 4 x 4 = 256 MACs/cycle: 0.12 us; bytes 7680+64+30 = 7774 -> 7.774 us, memory-bound.
    close(c.compute_s, 0.12e-6);
    close(c.latency_s, 7.774e-6);
    assert_eq!(c.bound, Bound::Memory);
    // 32/32: 16 x 1/4 x 1/4 = 1 MAC/cycle -> 30.72 us; never zero.
    let full = p.layer_cost(&fc1(), bits(32, 32)).unwrap();
    close(full.compute_s, 30.72e-6);
    // stored at 32 bits: 4 x (30720 + 256 + 120) = 124384 B -> 124.384 us, memory-bound.
    close(full.latency_s, 124.384e-6);
    assert_eq!(full.bound, Bound::Memory);
}

fn shipped(name: &str) -> Profile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("hardware-profiles")
        .join(format!("{name}.toml"));
    Profile::load(&path).unwrap()
}

#[test]
fn cortex_a76_4_bit_weights_cut_bytes_not_time_when_compute_bound() {
    let p = shipped("cortex-a76");
    let c8 = p.layer_cost(&conv2(), bits(8, 8)).unwrap();
    let c4 = p.layer_cost(&conv2(), bits(4, 8)).unwrap();
    // int8 mode, 128 MACs/cycle at 2.4 GHz: 153600/307.2e9 = 0.5 us; bytes 4288 at 17.1 GB/s =
    // 0.25 us, so compute-bound; + 2 us overhead = 2.5 us, for 8/8 and 4/8 alike.
    assert_eq!(c8.bound, Bound::Compute);
    assert_eq!(c4.bound, Bound::Compute);
    close(c8.latency_s, 2.5e-6);
    close(c4.latency_s, 2.5e-6);
    assert_eq!(c4.mode, "int8-sdot");
    // 4-bit weights stay packed: 1200 + 864 + 1024 = 3088 bytes instead of 4288.
    assert_eq!((c8.bytes, c4.bytes), (4288, 3088));
}

#[test]
fn cortex_a76_linear_is_memory_bound_and_packed_weights_help() {
    let p = shipped("cortex-a76");
    let c8 = p.layer_cost(&fc1(), bits(8, 8)).unwrap();
    let c4 = p.layer_cost(&fc1(), bits(4, 8)).unwrap();
    // 31096 B / 17.1 GB/s = 1.8185 us > 0.1 us compute; 4/8: 15736 B -> 0.9202 us. (+2 us each)
    assert_eq!(c8.bound, Bound::Memory);
    close(c8.latency_s, 31096.0 / 17.1e9 + 2e-6);
    close(c4.latency_s, 15736.0 / 17.1e9 + 2e-6);
}

#[test]
fn t4_runs_int4_only_when_both_operands_are_4_bit() {
    let p = shipped("t4");
    assert_eq!(p.layer_cost(&conv2(), bits(4, 4)).unwrap().mode, "int4-tc");
    let c48 = p.layer_cost(&conv2(), bits(4, 8)).unwrap();
    let c88 = p.layer_cost(&conv2(), bits(8, 8)).unwrap();
    assert_eq!(c48.mode, "int8-tc");
    assert_eq!(c48, c88);
    assert_eq!(
        p.layer_cost(&conv2(), bits(32, 8)).unwrap().mode,
        "fp32-cuda"
    );
}

#[test]
fn weights_that_overflow_the_buffer_are_read_once_per_example() {
    // buffer 1000 B < fc1's 30720 weight bytes, batch 4: weights read 4 times.
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/profiles/valid.toml"),
    )
    .unwrap()
    .replace("batch = 1", "batch = 4")
    .replace("buffer_bytes = 1000000", "buffer_bytes = 1000");
    let p = toml::from_str::<ProfileFile>(&text)
        .unwrap()
        .check(Path::new("v.toml"))
        .unwrap();
    let c = p.layer_cost(&fc1(), bits(8, 8)).unwrap();
    assert_eq!(c.bytes, 4 * 30720 + 4 * 256 + 4 * 120);
    assert_eq!(c.macs, 4 * 30720);
}

#[test]
fn unsupported_bits_and_wrong_policy_length_are_errors() {
    let p = shipped("cortex-a76");
    let valid = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/profiles/valid.toml");
    let only_4_8 = Profile::load(&valid).unwrap();
    let err = only_4_8
        .layer_cost(&fc1(), bits(3, 8))
        .unwrap_err()
        .to_string();
    assert!(err.contains("fc1") && err.contains("3/8"), "{err}");
    let err = policy_cost(&p, &[fc1()], &Policy::parse("8/8,8/8").unwrap()).unwrap_err();
    assert!(matches!(
        err,
        HardwareError::PolicyLength {
            expected: 1,
            got: 2
        }
    ));
}

/// The zoo ViT's b1.scores with quantized attention on 28x28 digits: 17 tokens, 4 heads of 16
/// features, so heads·T·T·d_head = 4·17·17·16 = 18,496 MACs. At 4/8 on the bit-serial test
/// device: 1024/32 = 32 MACs/cycle, 578 ns of compute; DRAM reads Q (17·64 = 1088 values at 8
/// bits) and K (1088 at 4 bits: 544 B, an activation, so every example) and writes the scores
/// (4·17·17 = 1156 at 8 bits), 2788 B = 2.788 us: memory-bound. No weights.
#[test]
fn an_attention_matmul_is_priced_by_its_macs_and_both_operands() {
    use crate::model::{Arch, Attention, LayerKind};
    let g = Arch::Vit.graph((1, 28, 28), 10);
    let layers = (g.with_attention(Attention::Quantized).unwrap())
        .shapes((1, 28, 28))
        .unwrap()
        .layers;
    let scores = layers.iter().find(|l| l.name == "b1.scores").unwrap();
    assert_eq!(scores.kind, LayerKind::Matmul);
    let p =
        profile("model = \"bit-serial\"\nbinary_macs_per_cycle = 1024\npj_per_binary_mac = 1.0");
    let c = p.layer_cost(scores, bits(4, 8)).unwrap();
    assert_eq!(c.macs, 18_496);
    close(c.compute_s, 18_496.0 / 32.0 * 1e-9);
    assert_eq!(c.bytes, 1088 + 544 + 1156);
    assert_eq!(c.bound, Bound::Memory);
    close(c.latency_s, 2.788e-6);
    // 32 pJ a MAC (4·8 binary MACs); SRAM reads Q, K and writes the scores once: 2788 B.
    close(
        c.energy_j,
        18_496.0 * 32e-12 + 2788.0 * 100e-12 + 2788.0 * 1e-12,
    );
    // The mix (softmax × V) does as many MACs; its first operand is the 1156 probabilities.
    let mix = layers.iter().find(|l| l.name == "b1.mix").unwrap();
    let m = p.layer_cost(mix, bits(4, 8)).unwrap();
    assert_eq!((m.macs, m.bytes), (18_496, 1156 + 544 + 1088));
    // K's width changes its bytes (w), Q's its own (a): 8/8 reads K at a byte a value.
    let c88 = p.layer_cost(scores, bits(8, 8)).unwrap();
    assert_eq!(c88.bytes - c.bytes, 544);
}
