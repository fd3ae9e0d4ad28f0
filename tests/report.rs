//! Smoke tests of the report: every chart rendered to PNG and SVG from synthetic run
//! directories, checked for validity and for text in the axis-label areas (the embedded font
//! works); report.html self-contained; compare; the `report` and `compare` subcommands.

mod common;

use bitsearch::report::compare::compare;
use bitsearch::report::style::SIZE;
use bitsearch::report::{write_report, ChartFiles};
use common::Png;

/// Dark pixels in the rectangle [x0, x1) × [y0, y1).
fn dark_pixels(png: &Png, x: (u32, u32), y: (u32, u32)) -> usize {
    let (w, _, bpp, buf) = png;
    let mut n = 0;
    for row in y.0..y.1 {
        for col in x.0..x.1 {
            let i = (row as usize * *w as usize + col as usize) * bpp;
            if buf[i] < 100 && buf[i + 1] < 100 && buf[i + 2] < 100 {
                n += 1;
            }
        }
    }
    n
}

/// Checks a chart's PNG (signature, size, text below the x axis and left of the y axis) and
/// that its SVG parses as XML with an `svg` root.
fn check_chart(chart: &ChartFiles) {
    let png = common::decode_png(&chart.png);
    assert_eq!((png.0, png.1), SIZE, "{}", chart.png.display());
    // Charts use margin 16, an x label area 50 px high and a y label area ≥ 60 px wide; the
    // axis lines and tick marks sit at their inner edges, so these strips hold only text.
    let (w, h) = SIZE;
    let below = dark_pixels(&png, (120, w - 120), (h - 16 - 50 + 12, h - 8));
    let left = dark_pixels(&png, (4, 16 + 60 - 12), (80, h - 90));
    let name = chart.png.display();
    assert!(
        below > 50,
        "{name}: no text under the x axis ({below} dark pixels)"
    );
    assert!(
        left > 50,
        "{name}: no text left of the y axis ({left} dark pixels)"
    );
    let svg = std::fs::read_to_string(&chart.svg).unwrap();
    let doc =
        roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{}: {e}", chart.svg.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(
        doc.descendants().any(|n| n.has_tag_name("text")),
        "{}: no text",
        chart.svg.display()
    );
}

fn stems(charts: &[ChartFiles]) -> Vec<String> {
    charts
        .iter()
        .map(|c| c.png.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_run_chart_renders_to_valid_png_and_svg_with_text() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_run(tmp.path(), "ddpg-bitfusion", "ddpg", 7, 40);
    let files = write_report(tmp.path()).unwrap();
    assert_eq!(
        stems(&files.charts),
        [
            "pareto-accuracy-latency",
            "pareto-robust-energy",
            "bitwidths",
            "progress"
        ]
    );
    for chart in &files.charts {
        assert!(chart.png.starts_with(tmp.path().join("charts")));
        check_chart(chart);
    }
}

#[test]
fn every_dq_chart_renders_to_valid_png_and_svg_with_text() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_dq(tmp.path());
    let files = write_report(tmp.path()).unwrap();
    assert_eq!(stems(&files.charts), ["dq-robustness", "dq-amplification"]);
    files.charts.iter().for_each(check_chart);
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(html.contains("dq.csv") && html.matches("<svg").count() == 2);
}

#[test]
fn report_html_is_self_contained_with_every_section() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_run(tmp.path(), "ddpg-bitfusion", "ddpg", 7, 40);
    let files = write_report(tmp.path()).unwrap();
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert_eq!(html.matches("<svg").count(), 4, "every chart inlined");
    // scripts inline only (the explorer's data, Chart.js, explorer-rows.js, explorer-view.js,
    // explorer.js) (explorer.js's header comment names the data script's tag too, hence no
    // count of that)
    assert_eq!(html.matches("<script>").count(), 4);
    assert!(html.contains("<script type=\"application/json\" id=\"bitsearch-data\">"));
    for banned in ["src=", "@import", "url(", "fetch(", "XMLHttpRequest"] {
        assert!(!html.contains(banned), "report.html contains {banned}");
    }
    // the one link is the empty icon that keeps Chromium from requesting /favicon.ico
    assert_eq!(html.matches("<link").count(), 1);
    assert!(html.contains("<link rel=\"icon\" href=\"data:,\">"));
    // the only URLs are SVG namespaces and the two in Chart.js's licence header (comments)
    let urls = html.matches("http").count();
    let namespaces = html.matches("http://www.w3.org/").count();
    let licence = [
        "https://www.chartjs.org",
        "https://github.com/kurkle/color#readme",
    ];
    let in_licence: usize = licence.iter().map(|u| html.matches(u).count()).sum();
    assert_eq!((urls, in_licence), (namespaces + 2, 2));
    for section in [
        "Configuration",
        "Pareto fronts",
        "best-policy.json",
        "pareto.csv",
        "Format per layer",
    ] {
        assert!(html.contains(section), "report.html lacks {section}");
    }
    assert!(html.contains("bitfusion") && html.contains("lenet5-mnist"));
}

#[test]
fn a_measured_run_shows_measured_beside_predicted_in_the_page_and_the_explorer() {
    use bitsearch::report::explore::Explorer;
    use bitsearch::rundir::RunDir;
    let tmp = tempfile::tempdir().unwrap();
    common::write_run(tmp.path(), "ddpg-bitfusion", "ddpg", 7, 40);
    let html = std::fs::read_to_string(write_report(tmp.path()).unwrap().html).unwrap();
    assert!(
        !html.contains("Measured on a real runtime"),
        "no measured.csv, no section"
    );
    common::write_measured(tmp.path(), 3);
    let run = RunDir::read(tmp.path()).unwrap();
    let points = &Explorer::of_run(&run).data.runs[0].points;
    let measured: Vec<_> = points.iter().filter(|p| p.measured.is_some()).collect();
    assert_eq!(measured.len(), 1, "only the measured episode");
    let m = measured[0].measured.as_ref().unwrap();
    assert_eq!((measured[0].episode, measured[0].reference), (3, false));
    assert_eq!(m.iter().map(|m| m.batch).collect::<Vec<_>>(), [1, 16]);
    assert_eq!(m[0].predicted_latency_s, Some(measured[0].latency_s));
    assert_eq!((m[1].predicted_latency_s, m[0].threads), (None, 2));
    let kernels: Vec<Option<&str>> = m[0].kernels.iter().map(|k| k.as_deref()).collect();
    let want = ["QLinearConv", "QLinearConv", "QGemm", "FusedGemm", "Gemm"];
    assert_eq!(kernels, want.map(Some), "in the run's layer order");
    let html = std::fs::read_to_string(write_report(tmp.path()).unwrap().html).unwrap();
    let section = &html[html
        .find("<h2>Measured on a real runtime")
        .expect("the section")..];
    let section = &section[..section.find("</table>").unwrap()];
    // measured 10% above the prediction at batch 1; batch 16 has no prediction
    assert!(section.contains("<td class=\"n\">+10.0</td>"), "{section}");
    assert!(
        section.contains("median absolute error 10.0% over the 1 row with"),
        "{section}"
    );
    assert!(section.contains("fc2=FusedGemm") && section.contains("onnxruntime 1.32.0"));
    assert!(
        section.contains("profiles calibrate --runtime onnxruntime"),
        "{section}"
    );
    // the CPU's name is text, not markup
    assert!(
        section.contains("Synthetic &lt;b&gt;CPU&lt;/b&gt; &amp; co"),
        "{section}"
    );
    assert!(!html.contains(common::MEASURED_CPU));
}

#[test]
fn report_without_best_policy_and_pareto_still_renders() {
    // mid-run: best-policy.json is written at the end, pareto.csv after the first episode
    let tmp = tempfile::tempdir().unwrap();
    common::write_run(tmp.path(), "mid", "random", 3, 10);
    std::fs::remove_file(tmp.path().join("best-policy.json")).unwrap();
    std::fs::remove_file(tmp.path().join("pareto.csv")).unwrap();
    let files = write_report(tmp.path()).unwrap();
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(html.contains("No best-policy.json yet"));
}

#[test]
fn compare_overlays_runs_and_shares_the_reference_point() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, out) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("cmp"),
    );
    common::write_run(&a, "ddpg-bitfusion", "ddpg", 1, 40);
    common::write_run(&b, "random-bitfusion", "random", 2, 40);
    std::fs::create_dir_all(&out).unwrap();
    let cmp = compare(&[a, b], &out).unwrap();
    assert_eq!(cmp.rows.len(), 2);
    for row in &cmp.rows {
        for &(hv, norm) in &row.hv {
            assert!(hv > 0.0 && (0.0..=1.0).contains(&norm), "{row:?}");
        }
    }
    cmp.charts.iter().for_each(check_chart);
    let csv = std::fs::read_to_string(&cmp.csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].contains("ref_accuracy_latency_s_latency_s"));
    // the reference columns are the same on every row
    let refs = |l: &str| {
        l.split(',')
            .skip(5)
            .skip(2)
            .take(2)
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(refs(lines[1]), refs(lines[2]));
    let html = std::fs::read_to_string(&cmp.html).unwrap();
    assert!(html.contains("Shared reference point") && html.matches("<svg").count() == 2);
}

/// Adds best-policy.json's uniform yardstick to a synthetic run: `val` and `test` accuracies of
/// the best uniform policy (the run's best policy scores 0.97 and 0.968).
fn add_uniform(dir: &std::path::Path, val: f64, test: f64) {
    let path = dir.join("best-policy.json");
    let mut best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    best["uniform"] = serde_json::json!({
        "policy": "4/4,4/4,4/4,4/4,4/4",
        "validation": {"accuracy": val, "robust_accuracy": 0.5},
        "test": {"accuracy": test, "robust_accuracy": 0.5},
        "latency_s": 1.0e-5, "energy_j": 1.0e-6, "size_bytes": 10000.0,
        "validation_examples": 1000, "test_examples": 10000,
    });
    std::fs::write(&path, best.to_string()).unwrap();
}

#[test]
fn compare_sets_each_best_policy_against_its_uniform_yardstick_over_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = ["a", "b", "c"].iter().map(|d| tmp.path().join(d)).collect();
    let out = tmp.path().join("cmp");
    for (seed, d) in dirs.iter().enumerate() {
        common::write_run(d, "ddpg-bitfusion", "ddpg", seed as u64 + 1, 20);
    }
    // margins: validation +2 and +0.5 points (mean +1.25, sd 1.06); test +1.8 and -0.2 (mean
    // +0.8); the third run records no yardstick
    add_uniform(&dirs[0], 0.95, 0.95);
    add_uniform(&dirs[1], 0.965, 0.97);
    std::fs::create_dir_all(&out).unwrap();
    let cmp = compare(&dirs, &out).unwrap();
    let v = cmp.uniform.expect("two runs record a uniform yardstick");
    // the run without one is left out, not counted as a zero margin
    assert_eq!(v.rows.len(), 2);
    assert_eq!(v.groups.len(), 1);
    let g = &v.groups[0];
    assert_eq!(g.validation[2].runs, 2);
    assert!((g.validation[2].mean - 0.0125).abs() < 1e-9, "{g:?}");
    assert!(
        (g.validation[2].sd - 0.015 / 2f64.sqrt()).abs() < 1e-9,
        "{g:?}"
    );
    assert!((g.test[2].mean - 0.008).abs() < 1e-9, "{g:?}");
    let (header, rows) = v.group_table();
    assert_eq!(header.len(), rows[0].len());
    assert!(rows[0][0].contains("ddpg on bitfusion"), "{:?}", rows[0]);
    assert_eq!(rows[0][3], "+1.25 \u{00b1} 1.06 (2)");
    let csv = std::fs::read_to_string(out.join("compare-uniform.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .contains(",0.9700,0.9500,0.0200,"),
        "{csv}"
    );
    let html = std::fs::read_to_string(&cmp.html).unwrap();
    assert!(html.contains("Mixed against uniform"));
}

/// A margin whose mean is within the uniform accuracy's standard error is flagged as such.
#[test]
fn compare_flags_a_margin_within_the_splits_standard_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, out) = (tmp.path().join("a"), tmp.path().join("cmp"));
    common::write_run(&a, "ddpg-bitfusion", "ddpg", 1, 20);
    // validation: 97.0 against 96.5 on 1,000 examples, se 0.58 points; test: 96.8 against
    // 95.0 on 10,000, se 0.22 points
    add_uniform(&a, 0.965, 0.95);
    std::fs::create_dir_all(&out).unwrap();
    let v = compare(&[a], &out).unwrap().uniform.unwrap();
    let (_, rows) = v.group_table();
    assert!(
        rows[0][3].contains("within the split's \u{00b1}0.58"),
        "{:?}",
        rows[0]
    );
    assert!(!rows[0][6].contains("within"), "{:?}", rows[0]);
}

fn bitsearch(args: &[&str]) -> std::process::Output {
    common::cli::bitsearch(args, common::cli::repo())
}

#[test]
fn report_and_compare_subcommands() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, out) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("cmp"),
    );
    common::write_run(&a, "ddpg-bitfusion", "ddpg", 1, 20);
    common::write_run(&b, "ddpg-bitfusion", "ddpg", 2, 20);
    let o = bitsearch(&["report", a.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(a.join("report.html").is_file() && a.join("charts/bitwidths.svg").is_file());
    let o = bitsearch(&[
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // two runs with the same name are told apart by their directory
    assert!(
        text.contains("ddpg-bitfusion (a)") && text.contains("ddpg-bitfusion (b)"),
        "{text}"
    );
    assert!(text.contains("reference (accuracy = "), "{text}");
    assert!(out.join("compare.csv").is_file() && out.join("compare.html").is_file());
}

#[test]
fn report_of_an_empty_directory_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let o = bitsearch(&["report", tmp.path().to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "neither a search run (config.json), a DQ study (dq.csv) nor a sensitivity study \
             (sensitivity.csv)"
        ),
        "{err}"
    );
}

#[test]
fn bits_chart_with_full_precision_and_two_policies() {
    use bitsearch::quant::{Format, LayerBits};
    use bitsearch::report::charts::{BitsChart, NamedPolicy};
    let bits = |w, a| LayerBits::new(Format::new(w).unwrap(), Format::new(a).unwrap());
    let chart = BitsChart {
        stem: "bits-fp".to_string(),
        title: "two policies".to_string(),
        layers: vec!["conv1".into(), "conv2".into(), "fc".into()],
        mac_share: vec![0.2, 0.7, 0.1],
        policies: vec![
            NamedPolicy {
                label: "A".into(),
                bits: vec![bits(32, 32), bits(4, 4), bits(2, 8)],
            },
            NamedPolicy {
                label: "B".into(),
                bits: vec![bits(8, 8), bits(3, 5), bits(32, 8)],
            },
        ],
    };
    let tmp = tempfile::tempdir().unwrap();
    let files = bitsearch::report::render(&chart, tmp.path()).unwrap();
    check_chart(&files);
    let svg = std::fs::read_to_string(&files.svg).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let labels = (doc.descendants())
        .filter(|n| n.has_tag_name("text") && n.text().map(str::trim) == Some("32"))
        .count();
    // A: conv1 weights and activations; B: fc weights
    assert_eq!(labels, 3, "each full-precision bar is labelled 32");
}

#[test]
fn rendering_into_a_missing_directory_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let dq_dir = tmp.path().join("dq");
    common::write_dq(&dq_dir);
    let dq = bitsearch::rundir::DqDir::read(&dq_dir).unwrap();
    let chart = bitsearch::report::charts::robustness_chart(&dq);
    let err = bitsearch::report::render(&chart, &tmp.path().join("no/such/dir")).unwrap_err();
    assert!(err.to_string().contains("chart dq-robustness"), "{err}");
}

#[test]
fn report_of_a_run_before_its_first_episode() {
    // config.json and references.csv exist, episodes.csv has only its header
    let tmp = tempfile::tempdir().unwrap();
    common::write_run(tmp.path(), "fresh", "ddpg", 1, 5);
    let episodes = tmp.path().join("episodes.csv");
    let text = std::fs::read_to_string(&episodes).unwrap();
    let header = text.lines().next().unwrap().to_string() + "\n";
    std::fs::write(&episodes, header).unwrap();
    std::fs::remove_file(tmp.path().join("pareto.csv")).unwrap();
    std::fs::remove_file(tmp.path().join("best-policy.json")).unwrap();
    let files = write_report(tmp.path()).unwrap();
    assert_eq!(files.charts.len(), 4);
    assert!(files.html.is_file());
}

/// compare-at.csv's rows: (run, objectives, episodes) → hv_fraction (None when empty).
fn fractions(csv: &std::path::Path) -> Vec<(String, String, usize, Option<f64>)> {
    let mut reader = csv::Reader::from_path(csv).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (run, set, n, f) = (
        col("run"),
        col("objectives"),
        col("episodes"),
        col("hv_fraction"),
    );
    (reader.records().map(Result::unwrap))
        .map(|r| {
            let fraction = Some(&r[f])
                .filter(|c| !c.is_empty())
                .map(|c| c.parse().unwrap());
            (
                r[run].to_string(),
                r[set].to_string(),
                r[n].parse().unwrap(),
                fraction,
            )
        })
        .collect()
}

#[test]
fn compare_at_normalizes_each_runs_first_episodes_by_the_reference_front() {
    use common::cli::ok;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("exp.toml"),
        common::fixtures::Tiny::default().toml("study"),
    )
    .unwrap();
    // two short real searches of one space, sharing the baseline and the score cache
    for (seed, out) in [("1", "a"), ("2", "b")] {
        let args = [
            "search",
            "--experiment",
            "exp.toml",
            "--agent",
            "random",
            "--seed",
            seed,
        ];
        let rest = [
            "--episodes",
            "8",
            "--cache",
            "cache",
            "--quiet",
            "--out",
            out,
        ];
        ok(common::cli::bitsearch(&[&args[..], &rest].concat(), dir));
    }
    let (a, b) = ("a/random-bitfusion", "b/random-bitfusion");
    let at = ["--at", "3,8,9"];
    let o = ok(common::cli::bitsearch(
        &[
            &["compare", a, b, "--reference", a, "--out", "cmp"][..],
            &at,
        ]
        .concat(),
        dir,
    ));
    assert!(
        o.contains("fraction of the reference front's (a/random-bitfusion)"),
        "{o}"
    );
    let rows = fractions(&dir.join("cmp/compare-at.csv"));
    assert_eq!(rows.len(), 2 * 2 * 3, "runs × objective sets × N");
    let label_a = "random-bitfusion (a)";
    for set in ["accuracy_robust_accuracy_latency_s", "accuracy_latency_s"] {
        let get = |run: &str, n: usize| {
            (rows.iter())
                .find(|r| r.0 == run && r.1 == set && r.2 == n)
                .unwrap_or_else(|| panic!("{run} {set} {n}: {rows:?}"))
                .3
        };
        // the reference against itself, all of it: exactly its own hypervolume
        assert_eq!(get(label_a, 8), Some(1.0), "{set}");
        // its first 3 episodes are a subset of its points: no more than the whole
        let first = get(label_a, 3).unwrap();
        assert!((0.0..=1.0 + 1e-12).contains(&first), "{set}: {first}");
        // 9 episodes were never logged: no value, rather than the 8-episode one
        assert_eq!(get(label_a, 9), None);
        assert!(get("random-bitfusion (b)", 8).unwrap() >= 0.0);
    }
    // per agent: the two runs (seeds) of `random`, mean ± sd
    let agents = std::fs::read_to_string(dir.join("cmp/compare-agents.csv")).unwrap();
    assert!(
        agents.contains("\nrandom,accuracy_latency_s,8,2,"),
        "{agents}"
    );
    assert!(
        agents.contains("\nrandom,accuracy_latency_s,9,0,,"),
        "{agents}"
    );
    let html = std::fs::read_to_string(dir.join("cmp/compare.html")).unwrap();
    assert!(
        html.contains("Hypervolume at N episodes"),
        "the section is in the page"
    );
    // each set's chart of the agents' mean fraction at each N, drawn and shown
    for set in ["accuracy_robust_accuracy_latency_s", "accuracy_latency_s"] {
        let svg = format!("cmp/charts/hv-at-episodes-{set}.svg");
        assert!(o.contains(&svg) && dir.join(&svg).is_file(), "{svg}: {o}");
        assert!(html.contains(&format!("hv-at-episodes-{set}.png")), "{set}");
    }
    // without --reference, the union of the compared runs is the front: nobody exceeds it
    ok(common::cli::bitsearch(
        &[&["compare", a, b, "--out", "union"][..], &at].concat(),
        dir,
    ));
    for (run, set, n, f) in fractions(&dir.join("union/compare-at.csv")) {
        assert!(f.is_none_or(|f| f <= 1.0 + 1e-12), "{run} {set} {n}: {f:?}");
    }
    // --at 0 is refused, naming the flag
    let e = common::cli::fails(common::cli::bitsearch(&["compare", a, "--at", "0"], dir));
    assert!(e.contains("--at"), "{e}");
}
