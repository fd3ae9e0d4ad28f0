//! The run-directory readers: a missing file or a malformed line is an error naming the file,
//! the line and the column, never a panic.

mod common;

use std::fs;
use std::path::Path;

use bitsearch::rundir::{read_any, AnyDir, DqDir, RunDir, RunDirError};

fn run_dir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    common::write_run(tmp.path(), "ddpg-bitfusion", "ddpg", 7, 20);
    tmp
}

/// Replaces line `n` (1-based, the header is line 1) of a file.
/// Replaces the cell of column `column` on line `n` of the CSV file `path`.
fn replace_cell(path: &Path, n: usize, column: &str, value: &str) {
    let text = fs::read_to_string(path).unwrap();
    let header = split_csv(text.lines().next().unwrap());
    let col = header.iter().position(|h| h == column).unwrap();
    replace_line(path, n, |l| {
        let mut cells = split_csv(l);
        cells[col] = value.to_string();
        join_csv(&cells)
    });
}

fn replace_line(path: &Path, n: usize, f: impl Fn(&str) -> String) {
    let text = fs::read_to_string(path).unwrap();
    let lines: Vec<String> = (text.lines().enumerate())
        .map(|(i, l)| if i + 1 == n { f(l) } else { l.to_string() })
        .collect();
    fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn a_synthetic_run_reads_back_in_full() {
    let tmp = run_dir();
    let run = RunDir::read(tmp.path()).unwrap();
    assert_eq!(run.config.run, "ddpg-bitfusion");
    assert_eq!(run.config.layers.len(), 5);
    assert_eq!(run.config.budget.latency_s, Some(1.2e-5));
    assert_eq!(run.config.budget.energy_j, None);
    assert_eq!(run.episodes.layers, ["conv1", "conv2", "fc1", "fc2", "fc3"]);
    assert_eq!(run.episodes.rows.len(), 20);
    // episode 16 is written as failed: empty accuracies and reward
    let failed = &run.episodes.rows[16];
    assert!(failed.failed && failed.accuracy.is_none() && failed.reward.is_none());
    assert_eq!(run.references.rows.len(), 8);
    assert_eq!(run.references.rows[7].agent, "fp32");
    assert!(run.references.rows[7]
        .bits
        .iter()
        .all(|b| b.w.is_full() && b.a.is_full()));
    assert_eq!(run.pareto.as_ref().map(|p| p.rows.len()), Some(3));
    assert_eq!(run.best.as_ref().map(|b| b.test.accuracy), Some(0.968));
    let shares: f64 = run.config.mac_shares().iter().sum();
    assert!((shares - 1.0).abs() < 1e-12);
    assert!(matches!(read_any(tmp.path()), Ok(AnyDir::Run(_))));
}

#[test]
fn measured_csv_reads_with_the_run_and_a_bad_cell_names_its_line_and_column() {
    let tmp = run_dir();
    assert!(RunDir::read(tmp.path()).unwrap().measured.is_none());
    common::write_measured(tmp.path(), 2);
    let run = RunDir::read(tmp.path()).unwrap();
    let measured = run.measured.as_ref().expect("measured.csv");
    assert_eq!(measured.len(), 2);
    assert_eq!((measured[0].episode, measured[0].batch), (2, 1));
    assert_eq!(measured[0].kernel_of("fc1"), Some("QGemm"));
    assert_eq!(measured[0].cpu, common::MEASURED_CPU);
    let path = tmp.path().join("measured.csv");
    replace_cell(&path, 3, "measured_latency_s", "slow");
    let text = RunDir::read(tmp.path()).unwrap_err().to_string();
    assert!(
        text.contains("measured.csv:3: column `measured_latency_s`") && text.contains("\"slow\""),
        "{text}"
    );
}

#[test]
fn missing_episodes_csv_names_the_file() {
    let tmp = run_dir();
    fs::remove_file(tmp.path().join("episodes.csv")).unwrap();
    let err = RunDir::read(tmp.path()).unwrap_err();
    assert!(matches!(&err, RunDirError::Missing { path, .. } if path.ends_with("episodes.csv")));
    assert!(
        err.to_string().contains("episodes.csv: no such file"),
        "{err}"
    );
}

#[test]
fn bad_number_names_file_line_column_and_value() {
    let tmp = run_dir();
    let path = tmp.path().join("episodes.csv");
    // line 4 = episode 2; the latency column gets a word
    replace_cell(&path, 4, "latency_s", "fast");
    let err = RunDir::read(tmp.path()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("episodes.csv:4: column `latency_s`"),
        "{text}"
    );
    assert!(text.contains("\"fast\""), "{text}");
}

#[test]
fn bits_out_of_range_are_rejected() {
    let tmp = run_dir();
    let path = tmp.path().join("references.csv");
    replace_line(&path, 2, |l| {
        let mut cells = split_csv(l);
        cells[4] = "9".to_string(); // w_conv1
        join_csv(&cells)
    });
    let text = RunDir::read(tmp.path()).unwrap_err().to_string();
    assert!(
        text.contains(
            "references.csv:2: column `w_conv1`: expected a weight format: a bitwidth 1..=8"
        ),
        "{text}"
    );
}

#[test]
fn a_short_line_names_the_line() {
    let tmp = run_dir();
    let path = tmp.path().join("pareto.csv");
    replace_line(&path, 3, |_| "1,ddpg,bitfusion".to_string());
    let err = RunDir::read(tmp.path()).unwrap_err();
    assert!(
        matches!(&err, RunDirError::Csv { line: Some(3), .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("pareto.csv:3: malformed CSV"),
        "{err}"
    );
}

#[test]
fn a_scored_row_without_accuracy_is_an_error() {
    let tmp = run_dir();
    let path = tmp.path().join("episodes.csv");
    replace_cell(&path, 2, "accuracy", "");
    let text = RunDir::read(tmp.path()).unwrap_err().to_string();
    assert!(text.contains("episodes.csv:2: column `accuracy`"), "{text}");
}

#[test]
fn an_unknown_masking_check_is_an_error_naming_the_column() {
    let tmp = run_dir();
    let path = tmp.path().join("episodes.csv");
    replace_cell(&path, 2, "masking", "gradient_free+vibes");
    let text = RunDir::read(tmp.path()).unwrap_err().to_string();
    assert!(text.contains("episodes.csv:2: column `masking`"), "{text}");
    assert!(text.contains("vibes"), "{text}");
}

#[test]
fn a_garbled_attack_split_is_an_error_naming_the_column_and_the_form() {
    let tmp = run_dir();
    let path = tmp.path().join("episodes.csv");
    replace_cell(&path, 3, "broken_by", "eps=0.1;clean=3;cw=7;held=190");
    let text = RunDir::read(tmp.path()).unwrap_err().to_string();
    assert!(
        text.contains("episodes.csv:3: column `broken_by`"),
        "{text}"
    );
    assert!(text.contains("cw=7") && text.contains("held=<n>"), "{text}");
}

#[test]
fn a_run_written_before_the_masking_columns_still_reads() {
    let tmp = run_dir();
    for file in ["episodes.csv", "pareto.csv", "references.csv"] {
        let path = tmp.path().join(file);
        let text = fs::read_to_string(&path).unwrap();
        let old: Vec<String> = text
            .lines()
            .map(|l| {
                let mut cells = split_csv(l);
                let n = cells.len();
                cells.drain(n - 3..n - 1);
                join_csv(&cells)
            })
            .collect();
        fs::write(&path, old.join("\n") + "\n").unwrap();
    }
    let run = RunDir::read(tmp.path()).unwrap();
    assert!(!run.episodes.rows.is_empty());
    assert!(run.episodes.rows.iter().all(|e| e.masking.is_none()));
}

#[test]
fn a_flagged_policy_is_credited_no_robustness_but_keeps_its_measured_number() {
    let tmp = run_dir();
    let run = RunDir::read(tmp.path()).unwrap();
    let flagged = (run.episodes.rows.iter())
        .find(|e| e.masking_flagged())
        .expect("the synthetic run flags the 2-bit conv1 inputs");
    assert!(flagged.robust_accuracy.unwrap() > 0.0);
    assert_eq!(
        flagged.objective(bitsearch::pareto::Objective::RobustAccuracy),
        Some(0.0)
    );
    let clean = (run.episodes.rows.iter())
        .find(|e| !e.failed && !e.masking_flagged())
        .unwrap();
    assert_eq!(
        clean.objective(bitsearch::pareto::Objective::RobustAccuracy),
        clean.robust_accuracy
    );
}

#[test]
fn a_missing_column_is_named() {
    let tmp = run_dir();
    let path = tmp.path().join("episodes.csv");
    replace_line(&path, 1, |l| l.replace("robust_accuracy", "robustness"));
    let text = RunDir::read(tmp.path()).unwrap_err().to_string();
    assert!(
        text.contains("episodes.csv: the header has no column `robust_accuracy`"),
        "{text}"
    );
}

#[test]
fn layer_columns_must_match_config_layers() {
    let tmp = run_dir();
    let path = tmp.path().join("episodes.csv");
    replace_line(&path, 1, |l| l.replace("w_fc3,a_fc3", "w_out,a_out"));
    let text = RunDir::read(tmp.path()).unwrap_err().to_string();
    assert!(text.contains("episodes.csv: layer columns"), "{text}");
    replace_line(&path, 1, |l| l.replace("w_out,a_out", "w_fc3,a_out"));
    let text = RunDir::read(tmp.path()).unwrap_err().to_string();
    assert!(
        text.contains("`w_fc3`,`a_out` are not a `w_<layer>`,`a_<layer>` pair"),
        "{text}"
    );
}

#[test]
fn malformed_json_names_the_file_and_position() {
    let tmp = run_dir();
    fs::write(
        tmp.path().join("best-policy.json"),
        "{\"model\": \"lenet5\",\n \"policy\": }",
    )
    .unwrap();
    let text = RunDir::read(tmp.path()).unwrap_err().to_string();
    assert!(
        text.contains("best-policy.json: ") && text.contains("line 2"),
        "{text}"
    );
    fs::write(tmp.path().join("config.json"), "{\"run\": \"x\"}").unwrap();
    let text = RunDir::read(tmp.path()).unwrap_err().to_string();
    assert!(text.contains("config.json: missing field"), "{text}");
}

#[test]
fn dq_study_reads_back_and_names_bad_values() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_dq(tmp.path());
    let dq = DqDir::read(tmp.path()).unwrap();
    assert_eq!(dq.rows.len(), 20);
    assert_eq!(dq.betas(), [0.0, 1e-3, 1e-2, 3e-2]);
    let names: Vec<&str> = dq.rows[0].attacks.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(names, ["fgsm_0.05", "fgsm_0.1", "pgd_0.1", "transfer_0.1"]);
    assert!(dq.rows.iter().any(|r| r.bits == 2 && r.masking_suspected()));
    assert_eq!(dq.amplification.len(), 20);
    assert!(matches!(read_any(tmp.path()), Ok(AnyDir::Dq(_))));
    replace_line(&tmp.path().join("dq.csv"), 3, |l| l.replace("false", "no"));
    let text = DqDir::read(tmp.path()).unwrap_err().to_string();
    assert!(
        text.contains(
            "dq.csv:3: column `masking_eps_rise`: expected `true` or `false`, got \"no\""
        ),
        "{text}"
    );
    common::write_dq(tmp.path());
    fs::remove_file(tmp.path().join("amplification.csv")).unwrap();
    let text = DqDir::read(tmp.path()).unwrap_err().to_string();
    assert!(text.contains("amplification.csv: no such file"), "{text}");
}

/// Splits a line written by `common` (the only quoted field is the policy, without quotes inside).
fn split_csv(line: &str) -> Vec<String> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line.as_bytes());
    let rec = rdr.records().next().unwrap().unwrap();
    rec.iter().map(str::to_string).collect()
}

fn join_csv(cells: &[String]) -> String {
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record(cells).unwrap();
    String::from_utf8(w.into_inner().unwrap())
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn best_so_far_follows_the_search_rule_feasible_and_first_of_ties() {
    use bitsearch::quant::{Format, LayerBits};
    use bitsearch::rundir::{best_row, Episode, RunLog};
    let tmp = run_dir();
    fs::remove_file(tmp.path().join("episodes.csv")).unwrap();
    fs::remove_file(tmp.path().join("best-policy.json")).unwrap();
    let layers: Vec<String> = common::LAYERS.iter().map(|l| l.0.to_string()).collect();
    let log = RunLog::new(tmp.path(), layers).unwrap();
    let row = |episode: usize, reward: f64, feasible: bool| Episode {
        episode,
        agent: "ddpg".into(),
        profile: "bitfusion".into(),
        policy: "4/4,4/4,4/4,4/4,4/4".into(),
        bits: vec![LayerBits::uniform(Format::new(4).unwrap()); 5],
        accuracy: Some(0.9),
        robust_accuracy: Some(0.5),
        latency_s: 1e-6,
        energy_j: 1e-6,
        size_bytes: 1e4,
        reward: Some(reward),
        feasible,
        failed: false,
        masking: Some(Default::default()),
        broken_by: None,
        fidelity: bitsearch::fidelity::Fidelity::Full,
        seconds: 1.0,
    };
    // The report's old rule (no feasibility filter, last of ties) chose episode 3, the
    // search's (feasible, first of ties) episode 1, which best-policy.json will hold.
    for r in [
        row(0, 0.5, true),
        row(1, 1.0, true),
        row(2, 1.0, true),
        row(3, 2.0, false),
    ] {
        log.append("episodes.csv", &r).unwrap();
    }
    let run = RunDir::read(tmp.path()).unwrap();
    assert_eq!(best_row(&run.episodes.rows).map(|e| e.episode), Some(1));
    let chart = bitsearch::report::bits_chart(&run);
    assert_eq!(chart.policies[0].label, "best so far (episode 1)");
}
