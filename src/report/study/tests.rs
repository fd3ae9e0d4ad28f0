use super::*;
use crate::robust::Checks;

/// A scored, feasible episode with these objective values (no layers: the study reads none).
fn episode(n: usize, accuracy: f64, robust: f64, latency_s: f64) -> Episode {
    Episode {
        episode: n,
        agent: "random".to_string(),
        profile: "bitfusion".to_string(),
        policy: String::new(),
        bits: Vec::new(),
        accuracy: Some(accuracy),
        robust_accuracy: Some(robust),
        latency_s,
        energy_j: 1e-6,
        size_bytes: 1e3,
        reward: Some(0.0),
        feasible: true,
        failed: false,
        masking: Some(Checks::default()),
        broken_by: None,
        fidelity: crate::fidelity::Fidelity::Full,
        seconds: 1.0,
    }
}

#[test]
fn at_n_takes_the_first_n_rows_and_nothing_past_the_log() {
    let rows: Vec<Episode> = (0..5).map(|i| episode(i, 0.9, 0.5, 1e-5)).collect();
    let first = first_episodes(&rows, 3).unwrap();
    assert_eq!(
        first.iter().map(|e| e.episode).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(first_episodes(&rows, 5).unwrap().len(), 5);
    assert!(
        first_episodes(&rows, 6).is_none(),
        "a run shorter than N has no value at N"
    );
}

#[test]
fn a_later_better_episode_counts_only_once_reached() {
    // reference point (worst of the three): accuracy 0.5, latency 3 µs
    let rows = [
        episode(0, 0.5, 0.0, 3e-6),
        episode(1, 0.7, 0.0, 2e-6),
        episode(2, 0.9, 0.0, 2.5e-6),
    ];
    let set = STUDY_SETS[1];
    let s = senses(set);
    let r = Reference::Given(worst_point(&points(&rows, set), &s).unwrap());
    let hv = |n| hypervolume(&points(first_episodes(&rows, n).unwrap(), set), &s, &r).unwrap();
    // episode 1's box: (0.7 − 0.5) × (3 − 2) µs = 0.2e-6; episode 2's: (0.9 − 0.5) × (3 − 2.5) µs
    // = 0.2e-6, overlapping episode 1's in (0.7 − 0.5) × (3 − 2.5) µs = 0.1e-6: a union of 0.3e-6
    assert!((hv(2) - 0.2e-6).abs() < 1e-15, "{}", hv(2));
    assert!((hv(3) - 0.3e-6).abs() < 1e-15, "{}", hv(3));
    assert_eq!(hv(1), 0.0, "the worst point adds no volume");
}

#[test]
fn points_are_the_feasible_scored_ones_with_flagged_robustness_credited_zero() {
    let mut infeasible = episode(1, 0.9, 0.6, 1e-6);
    infeasible.feasible = false;
    let mut failed = episode(2, 0.9, 0.6, 1e-6);
    (failed.failed, failed.accuracy, failed.robust_accuracy) = (true, None, None);
    let mut flagged = episode(3, 0.8, 0.7, 2e-6);
    flagged.masking = Some(Checks::parse("zero_grad").unwrap());
    let rows = [episode(0, 0.9, 0.6, 1e-6), infeasible, failed, flagged];
    let got = points(&rows, STUDY_SETS[0]);
    assert_eq!(got, [vec![0.9, 0.6, 1e-6], vec![0.8, 0.0, 2e-6]]);
}

#[test]
fn spread_is_the_mean_and_sample_standard_deviation() {
    let s = spread(&[1.0, 2.0, 3.0]).unwrap();
    assert_eq!((s.runs, s.mean, s.sd), (3, 2.0, 1.0));
    assert_eq!(spread(&[0.5]).unwrap().sd, 0.0);
    assert!(spread(&[]).is_none());
}

/// Guards against a run directory or label such as `=HYPERLINK(..)` running as a formula when
/// compare-at.csv or compare-agents.csv is opened in a spreadsheet, as compare.csv guards.
#[test]
fn text_cells_from_runs_are_defused_in_both_csvs() {
    let dir = tempfile::tempdir().unwrap();
    let objectives = STUDY_SETS[0];
    let study = Study {
        at: vec![1],
        reference: "the union of the compared runs".into(),
        sets: vec![SetReference {
            objectives,
            point: vec![0.0; objectives.len()],
            hv: 1.0,
        }],
        rows: vec![StudyRow {
            label: "=HYPERLINK(\"x\")".into(),
            dir: PathBuf::from("-runs/x"),
            agent: "@random".into(),
            logged: 1,
            values: vec![vec![Some((0.5, 0.5))]],
        }],
        agents: vec![AgentRow {
            agent: "+mbrl".into(),
            values: vec![vec![None]],
        }],
        chart_files: Vec::new(),
    };
    study.write(dir.path()).unwrap();
    let [runs, agents] = Study::files(dir.path());
    let first_row = |path: &Path| {
        let mut r = csv::Reader::from_path(path).unwrap();
        r.records().next().unwrap().unwrap()
    };
    let run = first_row(&runs);
    assert_eq!(&run[0], "'=HYPERLINK(\"x\")");
    assert_eq!(&run[1], "'-runs/x");
    assert_eq!(&run[2], "'@random");
    assert_eq!(&first_row(&agents)[0], "'+mbrl");
}

/// `--at N` counts full-fidelity episodes, as `--episodes` does; low rows among them are no
/// points of the hypervolume.
#[test]
fn first_episodes_count_full_fidelity_rows_and_low_rows_are_no_points() {
    let low = |n, a| Episode {
        fidelity: crate::fidelity::Fidelity::Low,
        ..episode(n, a, 0.5, 1.0)
    };
    let rows = vec![
        low(0, 0.99),
        episode(1, 0.5, 0.5, 2.0),
        low(2, 0.99),
        episode(3, 0.6, 0.5, 2.0),
    ];
    assert_eq!(first_episodes(&rows, 1).unwrap().len(), 2);
    assert_eq!(first_episodes(&rows, 2).unwrap().len(), 4);
    assert!(first_episodes(&rows, 3).is_none());
    let set = &[Objective::Accuracy];
    let got = points(first_episodes(&rows, 2).unwrap(), set);
    assert_eq!(got, vec![vec![0.5], vec![0.6]]);
}
