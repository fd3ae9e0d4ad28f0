//! The `profiles` and `cost` CLI pieces, parsed by clap and run end to end on LeNet-5.

use bitsearch::cli::{cost, profiles};
use bitsearch::model::LayerShape;
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    #[command(subcommand)]
    Profiles(profiles::ProfilesCmd),
    Cost(cost::CostArgs),
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

fn run(args: &[&str]) -> anyhow::Result<()> {
    let cli = Cli::try_parse_from(std::iter::once("bitsearch").chain(args.iter().copied()))?;
    match cli.cmd {
        Cmd::Profiles(c) => profiles::run(c, &lenet5()),
        Cmd::Cost(a) => cost::run(&a, "lenet5", &lenet5()),
    }
}

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/profiles");

#[test]
fn profiles_list_and_show_run() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/hardware-profiles");
    run(&["profiles", "list", "--dir", dir]).unwrap();
    run(&["profiles", "show", "bitfusion"]).unwrap();
    run(&["profiles", "show", &format!("{DATA}/with_table.toml")]).unwrap();
    assert!(run(&["profiles", "show", "no-such-device"]).is_err());
}

#[test]
fn validate_fails_unless_every_file_is_valid() {
    let valid = format!("{DATA}/valid.toml");
    let bad = format!("{DATA}/zero_bandwidth.toml");
    run(&["profiles", "validate", &valid]).unwrap();
    let err = run(&["profiles", "validate", &valid, &bad]).unwrap_err();
    assert!(format!("{err:#}").contains("1 of 2"), "{err:#}");
}

#[test]
fn cost_prints_table_and_json_and_rejects_bad_policies() {
    run(&[
        "cost",
        "--profile",
        "cortex-a76",
        "--policy",
        "8/8,4/8,4/4,2/8,32/32",
    ])
    .unwrap();
    run(&["cost", "--profile", "t4", "--json"]).unwrap();
    let err = run(&["cost", "--profile", "t4", "--policy", "8/8,8/8"]).unwrap_err();
    assert!(format!("{err:#}").contains("5"), "{err:#}");
    assert!(run(&["cost", "--profile", "t4", "--policy", "9/8,8/8,8/8,8/8,8/8"]).is_err());
}

#[test]
fn calibrate_writes_a_valid_profile() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sub/host.toml");
    let out = out.to_str().unwrap();
    run(&["profiles", "calibrate", "--out", out, "--repeats", "1"]).unwrap();
    run(&["profiles", "validate", out]).unwrap();
}
