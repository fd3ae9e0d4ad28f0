//! sensitivity.csv round-trips exactly, and each rule of its reader has a test that breaks it
//! and reads the file, line, column and value back from the error.

use super::*;

fn row(layer: &str, operand: Varied, format: &str, acc: Option<f64>) -> SensitivityRow {
    let reference = operand == Varied::Reference;
    SensitivityRow {
        layer: layer.into(),
        operand,
        format: format.into(),
        policy: "8/8,2/8".into(),
        accuracy: acc,
        robust_accuracy: acc.map(|a| a / 2.0),
        masking: Checks::parse(if reference { "none" } else { "zero_grad" }).unwrap(),
        accuracy_drop: acc.map(|a| 0.9 - a),
        robust_accuracy_drop: acc.map(|a| 0.45 - a / 2.0),
        latency_s: 1.5e-5,
        energy_j: 2.25e-6,
        latency_saved: if reference { 0.0 } else { 0.125 },
        energy_saved: if reference { 0.0 } else { 1.0 / 3.0 },
        layer_latency_share: (!reference).then_some(0.4),
        layer_energy_share: (!reference).then_some(0.1 + 0.2),
    }
}

fn table() -> Sensitivity {
    Sensitivity {
        rows: vec![
            row("", Varied::Reference, "8", Some(0.9)),
            row("conv1", Varied::Weight, "2", Some(0.7)),
            row("conv1", Varied::Activation, "2", None),
        ],
    }
}

#[test]
fn sensitivity_round_trips_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(Sensitivity::FILE);
    table().write(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("layer,operand,format,policy,failed,accuracy,robust_accuracy,")
            && text.contains("\n,reference,8,\"8/8,2/8\",false,0.9,0.45,0,0,false,none,"),
        "{text}"
    );
    let back = Sensitivity::read(&path).unwrap();
    assert_eq!(back, table());
    assert_eq!(back.reference(), Some(&table().rows[0]));
}

/// The reader's error for the written file with its first `from` replaced by `to`.
fn read_edited(from: &str, to: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(Sensitivity::FILE);
    table().write(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from} not in {text}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    Sensitivity::read(&path).unwrap_err().to_string()
}

fn names(e: &str, line: u64, column: &str, value: &str) {
    assert!(
        e.contains(&format!("sensitivity.csv:{line}:"))
            && e.contains(&format!("`{column}`"))
            && e.contains(&format!("{value:?}")),
        "{e}"
    );
}

#[test]
fn the_operand_must_be_reference_weight_or_activation() {
    names(&read_edited(",weight,", ",bias,"), 3, "operand", "bias");
}

#[test]
fn the_reference_row_comes_first_and_once() {
    names(
        &read_edited("conv1,weight,", ",reference,"),
        3,
        "operand",
        "reference",
    );
}

#[test]
fn only_the_reference_row_has_no_layer() {
    names(&read_edited("conv1,weight,", ",weight,"), 3, "layer", "");
}

#[test]
fn the_format_reads_as_policy_notation() {
    names(
        &read_edited("conv1,weight,2,", "conv1,weight,9,"),
        3,
        "format",
        "9",
    );
    names(
        &read_edited("conv1,weight,2,", "conv1,weight,fp9,"),
        3,
        "format",
        "fp9",
    );
}

#[test]
fn a_failed_row_has_no_scores() {
    names(&read_edited(",true,,", ",true,0.5,"), 4, "accuracy", "0.5");
}

#[test]
fn a_score_is_a_fraction() {
    names(
        &read_edited(",false,0.7,", ",false,1.7,"),
        3,
        "accuracy",
        "1.7",
    );
}

#[test]
fn the_reference_drops_are_zero() {
    names(
        &read_edited("false,0.9,0.45,0,", "false,0.9,0.45,0.1,"),
        2,
        "accuracy_drop",
        "0.1",
    );
}

#[test]
fn the_masking_flag_agrees_with_the_checks() {
    names(
        &read_edited(",false,none,", ",true,none,"),
        2,
        "masking_flagged",
        "true",
    );
}

#[test]
fn a_layer_share_is_empty_exactly_on_the_reference() {
    names(&read_edited(",0.4,", ",,"), 3, "layer_latency_share", "");
}

#[test]
fn a_missing_column_is_named() {
    let e = read_edited("energy_saved", "energy_kept");
    assert!(
        e.contains("sensitivity.csv") && e.contains("`energy_saved`"),
        "{e}"
    );
}
