//! End-to-end runs of `bitsearch profiles` and `bitsearch cost` on LeNet-5.

mod common;

use common::cli::{bitsearch, repo};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/profiles");

// The shipped profiles are found from the repository root, as a user in a checkout would.
fn ok(args: &[&str]) -> String {
    common::cli::ok(bitsearch(args, repo()))
}

fn fails(args: &[&str]) -> String {
    common::cli::fails(bitsearch(args, repo()))
}

#[test]
fn profiles_list_and_show_run() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/hardware-profiles");
    let list = ok(&["profiles", "list", "--dir", dir]);
    for name in [
        "bitfusion",
        "bismo-edge",
        "bismo-cloud",
        "cortex-a76",
        "t4",
        "cortex-m7",
    ] {
        assert!(list.contains(name), "{list}");
    }
    let bitfusion = ok(&["profiles", "show", "bitfusion"]);
    assert!(bitfusion.contains("bit-fusion"));
    // Which widths each prices apart on the default experiment's LeNet-5.
    assert!(
        bitfusion.contains("every layer: weights 2,4,8 (priced as a wider one: 1→2, 3→4, 5,6,7→8)"),
        "{bitfusion}"
    );
    let bismo = ok(&["profiles", "show", "bismo-edge"]);
    assert!(
        bismo.contains("every layer: weights 1,2,3,4,5,6,7,8; activations 1,2,3,4,5,6,7,8"),
        "{bismo}"
    );
    ok(&["profiles", "show", &format!("{DATA}/with_table.toml")]);
    fails(&["profiles", "show", "no-such-device"]);
}

#[test]
fn validate_fails_unless_every_file_is_valid() {
    let valid = format!("{DATA}/valid.toml");
    let bad = format!("{DATA}/zero_bandwidth.toml");
    ok(&["profiles", "validate", &valid]);
    let err = fails(&["profiles", "validate", &valid, &bad]);
    assert!(err.contains("1 of 2"), "{err}");
}

#[test]
fn cost_prints_table_and_json_and_rejects_bad_policies() {
    let table = ok(&[
        "cost",
        "--profile",
        "cortex-a76",
        "--policy",
        "8/8,4/8,4/4,2/8,32/32",
    ]);
    assert!(table.contains("conv1") && table.contains("fc3"), "{table}");
    let json = ok(&["cost", "--profile", "t4", "--json"]);
    serde_json::from_str::<serde_json::Value>(json.trim()).unwrap();
    let err = fails(&["cost", "--profile", "t4", "--policy", "8/8,8/8"]);
    assert!(err.contains('5'), "{err}");
    fails(&["cost", "--profile", "t4", "--policy", "9/8,8/8,8/8,8/8,8/8"]);
}

/// Formats on the command line: fp8 on h100 runs in its fp8 tensor-core mode, W8A16 on the NPU in
/// its W8A16 mode, and `profiles show` lists each mode's formats and where each named format runs.
#[test]
fn cost_and_show_speak_formats() {
    let fp8 = ["fp8e4m3/fp8e4m3"; 5].join(",");
    let table = ok(&["cost", "--profile", "h100", "--policy", &fp8]);
    assert!(
        table.contains("fp8-tc-e4m3") && table.contains("fp8e4m3/fp8e4m3"),
        "{table}"
    );
    let json = ok(&["cost", "--profile", "h100", "--policy", &fp8, "--json"]);
    let json: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(json["policy"]["layers"][0]["mode"], "fp8-tc-e4m3", "{json}");
    assert_eq!(json["uniform8"]["layers"][0]["mode"], "int8-tc", "{json}");
    let w8a16 = ["8/16"; 5].join(",");
    let npu = ok(&["cost", "--profile", "htp-npu", "--policy", &w8a16]);
    assert!(npu.contains("int8-w8a16"), "{npu}");
    let h100 = ok(&["profiles", "show", "h100"]);
    let mixed = (h100.lines())
        .find(|l| l.contains("fp8-tc-e5m2xe4m3"))
        .unwrap_or_default();
    assert!(
        mixed.contains("w fp8e5m2") && mixed.contains("a fp8e4m3"),
        "{h100}"
    );
    assert!(h100.contains("fp8e4m3/fp8e4m3 → fp8-tc-e4m3"), "{h100}");
    let t4 = ok(&["profiles", "show", "t4"]);
    assert!(
        t4.contains("fp8e4m3/fp8e4m3 → fp16-tc") && t4.contains("int4g32/8 → int8-tc"),
        "{t4}"
    );
    let bitfusion = ok(&["profiles", "show", "bitfusion"]);
    assert!(
        bitfusion.contains("fp16/fp16 → fusion 32x32"),
        "{bitfusion}"
    );
}

#[test]
fn validate_names_a_bad_mode_format_by_file_field_rule_and_value() {
    let bad = format!("{DATA}/mode_format_unknown.toml");
    let run = bitsearch(&["profiles", "validate", &bad], repo());
    assert!(!run.status.success());
    // validate reports each file on stdout, and fails at the end.
    let out = String::from_utf8_lossy(&run.stdout);
    for needle in [
        "mode_format_unknown.toml",
        "field `compute.modes[0].w_format`",
        "must name a format",
        "got `fp9`",
    ] {
        assert!(out.contains(needle), "`{needle}` not in: {out}");
    }
}

/// A zoo network priced from its shape alone: a malformed `--input` or `--classes` is a clear
/// error naming the flag's rule and the value, and `--input` without `--arch` is refused.
#[test]
fn cost_of_a_zoo_shape_rejects_bad_shapes() {
    let mobilenetv2 = ["cost", "--profile", "bismo-cloud", "--arch", "mobilenetv2"];
    let table = ok(&[&mobilenetv2[..], &["--input", "3,32,32", "--classes", "10"]].concat());
    assert!(table.contains("mobilenetv2"), "{table}");
    let err = fails(&[&mobilenetv2[..], &["--input", "3,224"]].concat());
    assert!(
        err.contains("three sizes C,H,W") && err.contains("3,224"),
        "{err}"
    );
    let err = fails(&[&mobilenetv2[..], &["--input", "3,0,224"]].concat());
    assert!(err.contains("at least 1") && err.contains("`0`"), "{err}");
    let err = fails(&[&mobilenetv2[..], &["--classes", "ten"]].concat());
    assert!(err.contains("at least 1") && err.contains("`ten`"), "{err}");
    fails(&["cost", "--profile", "bismo-cloud", "--input", "3,32,32"]);
}

#[test]
fn calibrate_writes_a_valid_profile() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sub/host.toml");
    let out = out.to_str().unwrap();
    ok(&["profiles", "calibrate", "--out", out, "--repeats", "1"]);
    ok(&["profiles", "validate", out]);
}
