//! Profile validation (one test per rule, on the fixtures in tests/data/profiles), the shipped
//! profiles, per-device specialization on LeNet-5, and host calibration.

use std::path::{Path, PathBuf};

use bitsearch::hardware::{
    policy_cost, profile_files, time_host, write_host_timing, CostModel, CostSource, HardwareError,
    Profile,
};
use bitsearch::model::LayerShape;
use bitsearch::quant::{Format, LayerBits, Policy};
use bitsearch::validate::{FieldError, Rule};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/profiles")
        .join(name)
}

fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware-profiles")
}

fn lenet5() -> Vec<LayerShape> {
    vec![
        LayerShape::conv("conv1", 1, 6, 5, 1, 0, (28, 28)),
        LayerShape::conv("conv2", 6, 16, 5, 1, 0, (12, 12)),
        LayerShape::linear("fc1", 256, 120),
        LayerShape::linear("fc2", 120, 84),
        LayerShape::linear("fc3", 84, 10),
    ]
}

/// Loads `file` (which must fail) and checks the message names the file and each of `needles`.
fn rejects(file: &str, needles: &[&str]) -> HardwareError {
    let err = Profile::load(&fixture(file)).expect_err(file);
    let msg = err.to_string();
    assert!(msg.contains(file), "{msg}");
    for n in needles {
        assert!(msg.contains(n), "`{n}` not in: {msg}");
    }
    err
}

#[test]
fn fixture_valid_profile_loads() {
    let p = Profile::load(&fixture("valid.toml")).unwrap();
    assert_eq!(p.name(), "valid");
    assert_eq!(p.compute().kind(), "precision-modes");
}

#[test]
fn unknown_compute_model_is_rejected() {
    let e = rejects("unknown_compute_model.toml", &["systolic", "bit-serial"]);
    assert!(matches!(e, HardwareError::Syntax { .. }));
}

#[test]
fn bandwidth_must_be_positive() {
    let e = rejects(
        "zero_bandwidth.toml",
        &["memory.bandwidth_gb_per_s", "greater than zero", "0"],
    );
    assert!(matches!(
        e,
        HardwareError::Field(FieldError { rule: Rule::Positive, ref value, .. }) if value == "0"
    ));
    rejects(
        "negative_bandwidth.toml",
        &["memory.bandwidth_gb_per_s", "-12"],
    );
}

#[test]
fn clock_must_be_positive() {
    let e = rejects(
        "negative_clock.toml",
        &["clock_hz", "greater than zero", "-500000000"],
    );
    assert!(matches!(
        e,
        HardwareError::Field(FieldError {
            rule: Rule::Positive,
            ..
        })
    ));
}

#[test]
fn throughput_must_be_positive() {
    rejects(
        "zero_throughput.toml",
        &["compute.modes[0].macs_per_cycle", "greater than zero", "0"],
    );
}

#[test]
fn precision_must_be_1_to_8() {
    let e = rejects(
        "precision_out_of_range.toml",
        &["precisions[1]", "1..=8", "9"],
    );
    assert!(matches!(
        e,
        HardwareError::PrecisionOutOfRange { value: 9, .. }
    ));
    rejects("precision_zero.toml", &["precisions[0]", "got 0"]);
}

#[test]
fn mode_bits_must_be_1_to_8_or_32() {
    rejects(
        "mode_bits_out_of_range.toml",
        &["compute.modes[0].w_bits", "16"],
    );
}

#[test]
fn a_mode_format_must_be_a_known_name() {
    let e = rejects(
        "mode_format_unknown.toml",
        &[
            "compute.modes[0].w_format",
            "must name a format",
            "fp8e4m3",
            "`fp9`",
        ],
    );
    assert!(matches!(e, HardwareError::ModeFormatUnknown { .. }));
}

#[test]
fn a_mode_width_and_format_must_agree() {
    let e = rejects(
        "mode_format_width.toml",
        &[
            "compute.modes[0].w_bits",
            "= 16",
            "\"fp8e4m3\"",
            "8 bits wide",
        ],
    );
    assert!(matches!(e, HardwareError::ModeFormatWidth { .. }));
}

#[test]
fn precision_modes_need_a_full_precision_mode() {
    let e = rejects("no_full_precision_mode.toml", &["compute.modes", "32"]);
    assert!(matches!(e, HardwareError::NoFullPrecisionMode { .. }));
}

#[test]
fn missing_field_is_rejected() {
    let e = rejects("missing_field.toml", &["missing field", "clock_hz"]);
    assert!(matches!(e, HardwareError::Syntax { .. }));
}

#[test]
fn unknown_field_is_rejected() {
    rejects("unknown_field.toml", &["unknown field", "colour"]);
}

#[test]
fn batch_must_be_at_least_1() {
    rejects("batch_zero.toml", &["batch", "at least 1", "0"]);
}

#[test]
fn overhead_cannot_be_negative() {
    rejects("negative_overhead.toml", &["layer_overhead_us", "-1"]);
}

#[test]
fn sources_cannot_be_empty() {
    let e = rejects("no_sources.toml", &["sources"]);
    assert!(matches!(e, HardwareError::NoSources { .. }));
}

#[test]
fn table_that_does_not_parse_names_file_and_line() {
    let e = rejects("bad_table.toml", &["bad_table.csv", "line 3"]);
    let HardwareError::InTable { source, .. } = e else {
        panic!("{e}")
    };
    assert!(
        matches!(*source, HardwareError::TableSyntax { line: 3, .. }),
        "{source}"
    );
}

#[test]
fn table_lacking_a_needed_row_is_rejected() {
    let e = rejects(
        "missing_table_row.toml",
        &["missing_row.csv", "conv1", "w_bits=8 a_bits=4"],
    );
    let HardwareError::InTable { source, .. } = e else {
        panic!("{e}")
    };
    assert!(
        matches!(*source, HardwareError::TableMissing { w: 8, a: 4, .. }),
        "{source}"
    );
}

#[test]
fn table_overrides_listed_layers_and_errors_on_missing_full_precision_row() {
    let p = Profile::load(&fixture("with_table.toml")).unwrap();
    let fc1 = LayerShape::linear("fc1", 256, 120);
    let b = |w, a| LayerBits::new(Format::new(w).unwrap(), Format::new(a).unwrap());
    let c = p.layer_cost(&fc1, b(4, 8)).unwrap();
    // table.csv: fc1,4,8,2.0,0.5 -> 2 us and 0.5 uJ.
    assert_eq!(c.source, CostSource::Table);
    assert!((c.latency_s - 2e-6).abs() < 1e-15 && (c.energy_j - 0.5e-6).abs() < 1e-15);
    // fc2 is not listed: the model prices it.
    let fc2 = LayerShape::linear("fc2", 120, 84);
    assert_eq!(
        p.layer_cost(&fc2, b(4, 8)).unwrap().source,
        CostSource::Model
    );
    // 32/32 (the FP32 reference) is a required row; 32/8 is not and is missing: an error naming
    // it, never a silent zero.
    assert_eq!(
        p.layer_cost(&fc1, b(32, 32)).unwrap().source,
        CostSource::Table
    );
    let err = p.layer_cost(&fc1, b(32, 8)).unwrap_err().to_string();
    assert!(
        err.contains("fc1") && err.contains("w_bits=32 a_bits=8"),
        "{err}"
    );
}

/// A measured table's rows are integer widths and 32: a named format on a listed layer is an
/// error naming the profile, the layer and the format (as a missing row is), while an unlisted
/// layer is priced by the model at any format.
#[test]
fn a_named_format_on_a_measured_layer_is_refused_by_name() {
    let p = Profile::load(&fixture("with_table.toml")).unwrap();
    let f = |t: &str| t.parse::<Format>().unwrap();
    let fc1 = LayerShape::linear("fc1", 256, 120);
    for (w, a, format) in [
        ("fp8e4m3", "8", "fp8e4m3"),
        ("4", "fp16", "fp16"),
        ("int4g32", "8", "int4g32"),
    ] {
        let err = p.layer_cost(&fc1, LayerBits::new(f(w), f(a))).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, HardwareError::TableFormat { .. }), "{msg}");
        assert!(
            msg.contains("profile `with_table`")
                && msg.contains("layer `fc1`")
                && msg.contains("table.csv")
                && msg.contains(&format!("cannot price {format}")),
            "{msg}"
        );
    }
    let fc2 = LayerShape::linear("fc2", 120, 84);
    let c = p
        .layer_cost(&fc2, LayerBits::new(f("fp8e4m3"), f("8")))
        .unwrap();
    assert_eq!(c.source, CostSource::Model);
}

/// Guards against a table measured on one model pricing another model's layer of the same name.
#[test]
fn a_table_layer_of_another_model_is_refused_naming_both_works() {
    let p = Profile::load(&fixture("with_table.toml")).unwrap();
    let b = LayerBits::new(Format::new(4).unwrap(), Format::new(4).unwrap());
    let other_fc1 = LayerShape::linear("fc1", 784, 120);
    let err = p.layer_cost(&other_fc1, b).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, HardwareError::TableOtherLayer { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("table.csv")
            && msg.contains("macs=30720, params=30840")
            && msg.contains("macs=94080, params=94200"),
        "{msg}"
    );
}

#[test]
fn all_six_shipped_profiles_validate() {
    let files = profile_files(&shipped_dir()).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| Profile::load(f).unwrap().name().to_string())
        .collect();
    for want in [
        "bitfusion",
        "bismo-edge",
        "bismo-cloud",
        "cortex-a76",
        "t4",
        "cortex-m7",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
}

/// The profiles that declare number formats: h100 (fp8, fp16, bf16, int8), t4 (fp16 added to
/// its int4/int8 modes) and the W8A16-capable htp-npu.
#[test]
fn the_format_profiles_validate_and_price_every_named_format() {
    let layers = lenet5();
    for name in ["h100", "t4", "htp-npu"] {
        let p = Profile::load(&shipped_dir().join(format!("{name}.toml"))).unwrap();
        for policy in [
            "fp8e4m3/fp8e4m3",
            "fp8e5m2/fp8e4m3",
            "fp16/fp16",
            "bf16/bf16",
            "int4g128/fp16",
            "8/16",
        ] {
            let policy = Policy::parse(&vec![policy; layers.len()].join(",")).unwrap();
            let cost = policy_cost(&p, &layers, &policy).unwrap();
            assert!(
                cost.latency_s > 0.0 && cost.energy_j > 0.0,
                "{name} {policy}"
            );
        }
    }
}

#[test]
fn every_shipped_profile_prices_full_precision_above_zero() {
    for file in profile_files(&shipped_dir()).unwrap() {
        let p = Profile::load(&file).unwrap();
        for layer in lenet5() {
            let c = p
                .layer_cost(&layer, LayerBits::uniform(Format::FULL))
                .unwrap();
            assert!(
                c.latency_s > 0.0 && c.energy_j > 0.0 && c.bytes > 0,
                "{}",
                p.name()
            );
        }
    }
}

/// Quantizing the convs (most MACs) vs quantizing the FC layers (most weights): a compute-bound
/// device prefers the first, a memory-bound one the second (HAQ's edge vs cloud finding).
#[test]
fn cheapest_lenet5_policy_differs_between_edge_and_cloud() {
    let layers = lenet5();
    let candidates = [
        Policy::parse("8/8,8/8,8/8,8/8,8/8").unwrap(),
        Policy::parse("2/2,2/2,8/8,8/8,8/8").unwrap(), // convs low
        Policy::parse("8/8,8/8,2/2,2/2,2/2").unwrap(), // fcs low
    ];
    let cheapest = |name: &str| {
        let p = Profile::load(&shipped_dir().join(format!("{name}.toml"))).unwrap();
        let lat: Vec<f64> = candidates
            .iter()
            .map(|c| policy_cost(&p, &layers, c).unwrap().latency_s)
            .collect();
        (0..lat.len())
            .min_by(|&i, &j| lat[i].total_cmp(&lat[j]))
            .unwrap()
    };
    // bismo-edge (batch 1, 1.6 GB/s): fc1's 30 KB of weights dominate -> quantize the FCs.
    assert_eq!(cheapest("bismo-edge"), 2);
    // bismo-cloud (batch 16, 25.6 GB/s): the convs' MACs dominate -> quantize the convs.
    assert_eq!(cheapest("bismo-cloud"), 1);
}

#[test]
fn calibrated_profile_validates_and_prices_lenet5() {
    let layers = lenet5();
    let start = std::time::Instant::now();
    let (profile, rows) = time_host(&layers, 1, 1, false).unwrap();
    assert!(start.elapsed().as_secs() < 60, "{:?}", start.elapsed());
    // 5 layers x (1..=8 and 32)^2 rows.
    assert_eq!(rows.len(), 5 * 81);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("host.toml");
    let csv = write_host_timing(&out, profile, &rows).unwrap();
    assert!(csv.ends_with("host.csv"));
    let p = Profile::load(&out).unwrap();
    let cost = policy_cost(
        &p,
        &layers,
        &Policy::parse("8/8,4/4,2/8,6/32,32/32").unwrap(),
    )
    .unwrap();
    assert!(cost.latency_s > 0.0 && cost.energy_j > 0.0);
    assert!(cost
        .layers
        .iter()
        .all(|l| l.cost.source == CostSource::Table));
}
