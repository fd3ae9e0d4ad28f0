//! The explorer's data in report.html and compare.html, from the run directory alone: every row
//! of episodes.csv and references.csv as logged, pareto.csv's front, per-layer prices only from
//! the profile config.json records (a missing or changed profile leaves them null with a note),
//! test-split attacks where a policy was re-scored. The explorer in a real browser is
//! tests/explorer_browser.rs.

mod common;

use std::path::PathBuf;

use bitsearch::quant::Format;
use bitsearch::report::explore::Explorer;
use bitsearch::report::write_report;
use bitsearch::rundir::{FrontTest, FrontTestRow, RunDir};
use common::cli::repo;
use serde_json::Value;

fn bitfusion() -> PathBuf {
    repo().join("hardware-profiles/bitfusion.toml")
}

/// The text of a page's data script.
fn embedded_text(html: &str) -> &str {
    let open = "<script type=\"application/json\" id=\"bitsearch-data\">";
    let start = html.find(open).expect("the data script") + open.len();
    let end = start + html[start..].find("</script>").unwrap();
    &html[start..end]
}

/// A page's data script, parsed.
fn embedded(html: &str) -> Value {
    serde_json::from_str(embedded_text(html)).unwrap()
}

#[test]
fn the_data_holds_every_row_as_logged_the_front_and_the_layer_prices() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write_run(dir, "ddpg-bitfusion", "ddpg", 7, 40);
    common::record_profile(dir, &bitfusion());
    let run = RunDir::read(dir).unwrap();
    let explorer = Explorer::of_run(&run);
    assert!(explorer.notes.is_empty(), "{:?}", explorer.notes);
    let points = &explorer.data.runs[0].points;
    assert_eq!(points.len(), 40 + 8, "every episode and reference");
    let front: Vec<usize> = run
        .pareto
        .as_ref()
        .unwrap()
        .rows
        .iter()
        .map(|r| r.episode)
        .collect();
    for (p, e) in points.iter().zip(&run.episodes.rows) {
        assert_eq!(
            (p.episode, &p.policy, p.reference),
            (e.episode, &e.policy, false)
        );
        assert_eq!(
            (p.accuracy, p.robust_accuracy),
            (e.accuracy, e.robust_accuracy)
        );
        assert_eq!(
            (p.latency_s, p.energy_j, p.size_bytes),
            (e.latency_s, e.energy_j, e.size_bytes)
        );
        assert_eq!((p.feasible, p.failed), (e.feasible, e.failed));
        assert_eq!(p.front, front.contains(&e.episode), "episode {}", e.episode);
        assert_eq!(
            p.bits,
            (e.bits.iter()).map(|b| [b.w, b.a]).collect::<Vec<_>>()
        );
        let costs = explorer.data.runs[0].layer_costs(p).expect("priced");
        assert_eq!(costs.len(), 5);
    }
    assert!(points[40..]
        .iter()
        .all(|p| p.reference && !p.front && p.attacks.is_none()));
    // the written page embeds exactly this data
    let html = std::fs::read_to_string(write_report(dir).unwrap().html).unwrap();
    // (compared as text: serde_json's parser may round the last digit, JavaScript's does not)
    let json = serde_json::to_string(&explorer.data).unwrap();
    assert!(
        embedded_text(&html) == json,
        "the page's data differs from Explorer::of_run's"
    );
}

#[test]
fn each_layer_carries_the_profiles_price_at_the_rows_bits() {
    // guards the mapping (layer order, w/a, fields), FP32 references included; the roofline
    // itself is tests/hardware.rs's
    use bitsearch::hardware::CostModel;
    let tmp = tempfile::tempdir().unwrap();
    common::write_run(tmp.path(), "r", "random", 1, 5);
    common::record_profile(tmp.path(), &bitfusion());
    let run = RunDir::read(tmp.path()).unwrap();
    let explorer = Explorer::of_run(&run);
    let profile = bitsearch::hardware::Profile::load(&bitfusion()).unwrap();
    let rows = run.episodes.rows.iter().chain(&run.references.rows);
    let data = &explorer.data.runs[0];
    for (p, e) in data.points.iter().zip(rows) {
        let costs = data.layer_costs(p).unwrap();
        for ((layer, cost), &bits) in run.config.layers.iter().zip(costs).zip(&e.bits) {
            let c = profile.layer_cost(layer, bits).unwrap();
            let want = (c.latency_s, c.energy_j, c.bound, c.mode.as_str());
            let got = (
                cost.latency_s,
                cost.energy_j,
                cost.bound,
                cost.mode.as_str(),
            );
            assert_eq!(got, want, "{} {}", e.policy, layer.name);
        }
    }
    let fp32 = data.points.last().unwrap();
    assert_eq!(fp32.bits[0], [Format::FULL, Format::FULL]);
    assert!(data.layer_costs(fp32).unwrap()[0].mode.contains("32x32"));
    // one price per layer and bit pair the run uses: the table holds nothing else
    for (i, layer) in data.prices.as_ref().unwrap().iter().enumerate() {
        let used: std::collections::BTreeSet<String> = (data.points.iter())
            .map(|p| format!("{}/{}", p.bits[i][0], p.bits[i][1]))
            .collect();
        assert_eq!(
            layer
                .keys()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>(),
            used
        );
    }
}

#[test]
fn a_missing_changed_or_unrecorded_profile_leaves_prices_null_with_a_note() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, copy) = (tmp.path().join("run"), tmp.path().join("device.toml"));
    common::write_run(&dir, "r", "random", 1, 10);
    let unpriced = |why: &str| {
        let files = write_report(&dir).unwrap();
        assert!(
            files.notes.iter().any(|n| n.contains(why)),
            "{:?}",
            files.notes
        );
        let html = std::fs::read_to_string(&files.html).unwrap();
        assert!(html.contains("class=\"note explorer-note\">No per-layer latency and energy"));
        let data = embedded(&html);
        let points = data["runs"][0]["points"].as_array().unwrap();
        assert_eq!(points.len(), 18);
        assert!(data["runs"][0]["prices"].is_null());
    };
    // the synthetic config.json records no file or digest, as runs before they were logged
    unpriced("records no profile file");
    std::fs::copy(bitfusion(), &copy).unwrap();
    common::record_profile(&dir, &copy);
    assert!(write_report(&dir).unwrap().notes.is_empty());
    let text = std::fs::read_to_string(&copy).unwrap();
    std::fs::write(&copy, text.replace("clock_hz = 500e6", "clock_hz = 400e6")).unwrap();
    unpriced("has changed since the search");
    std::fs::remove_file(&copy).unwrap();
    unpriced("is not there");
}

#[test]
fn re_scored_policies_carry_their_test_split_attacks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write_run(dir, "r", "ddpg", 7, 40);
    let run = RunDir::read(dir).unwrap();
    let e = &run.pareto.as_ref().unwrap().rows[1];
    let row = FrontTestRow {
        episode: e.episode,
        policy: e.policy.clone(),
        latency_s: e.latency_s,
        validation_accuracy: 0.9,
        validation_robust_accuracy: 0.5,
        validation_masking: None,
        accuracy: 0.89,
        clean_accuracy: 0.88,
        robust: vec![0.6, 0.3],
        pgd: vec![0.7, 0.4],
        robust_auc: 0.5,
        masking: Default::default(),
        examples: 50,
        seconds: 1.0,
    };
    let front = FrontTest {
        eps: vec![0.1, 0.2],
        rows: vec![row],
    };
    front.write(&dir.join(FrontTest::FILE)).unwrap();
    // best-policy.json's suite as the search writes it: f32 radii through f64
    let best_path = dir.join("best-policy.json");
    let mut best_json: Value =
        serde_json::from_str(&std::fs::read_to_string(&best_path).unwrap()).unwrap();
    let eps = f64::from(0.1f32); // 0.10000000149011612
    best_json["test"]["suite"] = serde_json::json!({
        "examples": 20,
        "attacks": [{"kind": "fgsm", "eps": eps, "accuracy": 0.75}, {"kind": "pgd", "eps": eps, "accuracy": 0.7}],
        "by_eps": [{"eps": eps, "worst_case": 0.65}],
    });
    std::fs::write(&best_path, best_json.to_string()).unwrap();
    let run = RunDir::read(dir).unwrap();
    let explorer = Explorer::of_run(&run);
    let points = &explorer.data.runs[0].points;
    let attacks = points[e.episode].attacks.as_ref().expect("re-scored");
    assert!(attacks
        .iter()
        .all(|a| a.source == "test split, strong suite (front-test.csv)"));
    let seen: Vec<(&str, f64, f64)> = attacks
        .iter()
        .map(|a| (a.attack.as_str(), a.eps, a.accuracy))
        .collect();
    let (worst, pgd) = ("worst case", "PGD");
    assert_eq!(
        seen,
        [
            (worst, 0.1, 0.6),
            (pgd, 0.1, 0.7),
            (worst, 0.2, 0.3),
            (pgd, 0.2, 0.4)
        ]
    );
    let best = run.best.as_ref().unwrap().episode;
    let seen: Vec<(&str, &str, f64, f64)> = (points[best].attacks.as_ref().unwrap().iter())
        .map(|a| (a.source, a.attack.as_str(), a.eps, a.accuracy))
        .collect();
    let source = "test split, the search's suite (best-policy.json)";
    let want = [
        (source, "FGSM", 0.1, 0.75),
        (source, "PGD", 0.1, 0.7),
        (source, "worst case", 0.1, 0.65),
    ];
    assert_eq!(seen, want, "radii shown as set (0.1)");
    let others = points.iter().filter(|p| p.attacks.is_some()).count();
    assert_eq!(others, 2, "only the re-scored policies");
    // a suite that is not the suite's shape is an error naming the file
    best_json["test"]["suite"]["attacks"] = "none".into();
    std::fs::write(&best_path, best_json.to_string()).unwrap();
    let err = RunDir::read(dir).unwrap_err().to_string();
    assert!(
        err.contains("best-policy.json") && err.contains("invalid type"),
        "{err}"
    );
}

#[test]
fn text_in_the_data_cannot_close_the_script() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_run(tmp.path(), "a</script><b>x", "random", 1, 5);
    let html = std::fs::read_to_string(write_report(tmp.path()).unwrap().html).unwrap();
    // `embedded` reads up to the first `</script>` after the data's opening tag
    assert_eq!(embedded(&html)["runs"][0]["name"], "a</script><b>x");
}
