//! HAQ's published BISMO table end to end: `profiles import` writes a profile whose table
//! validates and holds HAQ's cycles exactly, `cost` prices HAQ's policy on it, and
//! `profiles agreement` recomputes the rank correlation docs/haq-table.md and README report.

mod common;

use std::path::Path;

use bitsearch::npy::NpyI64;
use common::cli::{bitsearch, fails, ok, repo};

const TABLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/haq/qmobilenetv2_imagenet100_batch16_latency_table.npy"
);
const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/haq/haq-mobilenetv2-0.6.policy"
);
const MODEL: [&str; 6] = [
    "--arch",
    "mobilenetv2",
    "--input",
    "3,224,224",
    "--classes",
    "1000",
];

fn run(args: &[&str]) -> std::process::Output {
    bitsearch(&[&args[..1], &MODEL[..], &args[1..]].concat(), repo())
}

/// `profiles import` in a temp dir: the profile validates, every row's latency at 200 MHz is
/// the table's cycles (32/32 those of 8/8), and HAQ's policy costs 0.596 of 8/8 on it (the
/// ratio tests/data/haq/README.md gives, computed from the file with Python).
#[test]
fn import_writes_a_valid_profile_that_holds_haqs_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("haq-bismo.toml");
    let out = out.to_str().unwrap();
    let args = [
        "profiles",
        "import",
        "--table",
        TABLE,
        "--base",
        "bismo-cloud",
    ];
    ok(run(&[&args[..], &["--batch", "16", "--out", out]].concat()));
    ok(bitsearch(&["profiles", "validate", out], repo()));
    let toml = std::fs::read_to_string(out).unwrap();
    assert!(
        toml.contains("41c377108ab97b62451afbc13cdb1ae8ea9f43b837446fd91c65c73f477c6529")
            && toml.contains("table.full_precision")
            && toml.contains("batch = 16"),
        "{toml}"
    );

    let npy = NpyI64::load(Path::new(TABLE)).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("haq-bismo.csv")).unwrap();
    let mut layers: Vec<String> = Vec::new();
    let mut rows = 0;
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if !layers.iter().any(|l| l == f[0]) {
            layers.push(f[0].to_string());
        }
        let l = layers.len() - 1;
        let (w, a): (usize, usize) = (f[3].parse().unwrap(), f[4].parse().unwrap());
        let (w, a) = if (w, a) == (32, 32) { (8, 8) } else { (w, a) };
        let cycles = npy.values[(l * 8 + w - 1) * 8 + a - 1] as f64;
        let latency_us: f64 = f[5].parse().unwrap();
        assert!(
            (latency_us * 200.0 - cycles).abs() < 1e-6 * cycles,
            "{line}"
        );
        rows += 1;
    }
    assert_eq!((layers.len(), rows), (53, 53 * 65));
    assert_eq!((layers[0].as_str(), layers[52].as_str()), ("conv", "fc"));

    let policy = std::fs::read_to_string(POLICY).unwrap();
    let cost = ok(run(&["cost", "--profile", out, "--policy", policy.trim()]));
    assert!(cost.contains("vs uniform 8/8: latency x0.596"), "{cost}");
}

/// The figure README and docs/haq-table.md quote, recomputed by the command the page gives.
#[test]
fn agreement_reproduces_the_documented_rank_correlation() {
    let args = ["profiles", "agreement", "--table", TABLE, "--profile"];
    let json = ok(run(&[&args[..], &["bismo-cloud", "--json"]].concat()));
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    let pooled = v["profiles"][0]["unfitted"]["rho_pooled"].as_f64().unwrap();
    let claim = format!("rank correlation {pooled:.2}");
    for doc in ["docs/haq-table.md", "README.md"] {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        assert!(text.contains(&claim), "{doc} does not say `{claim}`");
    }
    let text = ok(run(&[&args[..], &["bismo-cloud", "--fit", "even"]].concat()));
    assert!(text.contains("held out, the other 26 layers"), "{text}");
}

/// A table of another dtype names the file, the header field and the value; a table of another
/// model names both layer counts.
#[test]
fn a_malformed_or_foreign_table_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("f8.npy");
    let mut bytes = std::fs::read(TABLE).unwrap();
    let at = bytes.windows(3).position(|w| w == b"<i8").unwrap();
    bytes[at + 1] = b'f';
    std::fs::write(&bad, bytes).unwrap();
    let args = ["profiles", "import", "--table", bad.to_str().unwrap()];
    let out = dir.path().join("x.toml");
    let rest = [
        "--base",
        "bismo-cloud",
        "--batch",
        "16",
        "--out",
        out.to_str().unwrap(),
    ];
    let err = fails(run(&[&args[..], &rest[..]].concat()));
    assert!(
        err.contains("f8.npy") && err.contains("`descr` must be '<i8'") && err.contains("'<f8'"),
        "{err}"
    );
    let err = fails(bitsearch(
        &[
            "profiles",
            "agreement",
            "--arch",
            "mobilenet",
            "--input",
            "3,32,32",
            "--table",
            TABLE,
            "--profile",
            "bismo-cloud",
        ],
        repo(),
    ));
    assert!(err.contains("53 layers but mobilenet has 12"), "{err}");
}
