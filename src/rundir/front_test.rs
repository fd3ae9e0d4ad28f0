//! front-test.csv: the feasible rows of pareto.csv re-scored on the test split with the strong
//! suite (`[front_test]`), one row per policy: its validation numbers, its test accuracy, the
//! per-example worst case and PGD's accuracy at every radius of the sweep, the area under the
//! worst-case curve, and the masking checks. One writer, one reader (by column name).

use std::path::Path;

use super::csv_file::{write_csv, CsvFile, Record};
use super::RunDirError;
use crate::robust::{Checks, CHECKS_FORMAT};

/// One re-scored policy.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontTestRow {
    /// Its episode in episodes.csv.
    pub episode: usize,
    pub policy: String,
    pub latency_s: f64,
    /// Validation accuracy and (measured) robust accuracy, as in pareto.csv.
    pub validation_accuracy: f64,
    pub validation_robust_accuracy: f64,
    /// The validation masking checks (`None` in a run written before they were logged).
    pub validation_masking: Option<Checks>,
    /// Accuracy on the whole test split.
    pub accuracy: f64,
    /// Clean accuracy on the attacked test examples (the curve's value at eps 0).
    pub clean_accuracy: f64,
    /// The per-example worst case over every attack at each radius of `FrontTest::eps`.
    pub robust: Vec<f64>,
    /// PGD's accuracy at each radius of `FrontTest::eps`.
    pub pgd: Vec<f64>,
    /// The area under the worst-case curve from eps 0 to the largest radius, per unit radius.
    pub robust_auc: f64,
    /// The strong suite's masking checks.
    pub masking: Checks,
    /// Test examples attacked.
    pub examples: usize,
    /// Fine-tune and suite time.
    pub seconds: f64,
}

/// front-test.csv: the radii of the sweep (ascending) and the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontTest {
    pub eps: Vec<f32>,
    pub rows: Vec<FrontTestRow>,
}

const HINT: &str = "written at the end of `bitsearch search` when `[front_test] enabled`";
const ROBUST: &str = "robust_eps_";
const PGD: &str = "pgd_";
const LEADING: [&str; 7] = [
    "episode",
    "policy",
    "latency_s",
    "validation_accuracy",
    "validation_robust_accuracy",
    "validation_masking",
    "accuracy",
];
const TRAILING: [&str; 6] = [
    "clean_accuracy",
    "robust_auc",
    "masking_flagged",
    "masking",
    "examples",
    "seconds",
];

impl FrontTest {
    pub const FILE: &'static str = "front-test.csv";

    /// The header: the leading columns, `robust_eps_<eps>` and `pgd_<eps>` per radius, the rest.
    pub fn header(&self) -> Vec<String> {
        let mut h: Vec<String> = LEADING.map(String::from).to_vec();
        h.extend(self.eps.iter().map(|e| format!("{ROBUST}{e}")));
        h.extend(self.eps.iter().map(|e| format!("{PGD}{e}")));
        h.extend(TRAILING.map(String::from));
        h
    }

    /// Writes `path` atomically.
    pub fn write(&self, path: &Path) -> Result<(), RunDirError> {
        write_csv(path, &self.header(), self.rows.iter().map(fields))
    }

    /// Reads `path`; the radii come from the `robust_eps_<eps>` columns, and each needs its
    /// `pgd_<eps>` column.
    pub fn read(path: &Path) -> Result<FrontTest, RunDirError> {
        let file = CsvFile::open(path, HINT)?;
        let eps = radii(&file)?;
        let lead = file.columns(LEADING)?;
        let trail = file.columns(TRAILING)?;
        let named = |prefix: &str| -> Result<Vec<usize>, RunDirError> {
            (eps.iter())
                .map(|e| file.column(&format!("{prefix}{e}")))
                .collect()
        };
        let (robust, pgd) = (named(ROBUST)?, named(PGD)?);
        let rows = (file.records())
            .map(|r| parse(&r, &lead, &trail, &robust, &pgd))
            .collect::<Result<_, _>>()?;
        Ok(FrontTest { eps, rows })
    }
}

/// The radii of the `robust_eps_<eps>` columns, in file order (the writer's: ascending).
fn radii(file: &CsvFile) -> Result<Vec<f32>, RunDirError> {
    (file.headers.iter())
        .filter_map(|h| h.strip_prefix(ROBUST).map(|e| (h, e)))
        .map(|(h, e)| {
            e.parse::<f32>().map_err(|_| RunDirError::BadColumn {
                path: file.path.clone(),
                column: h.clone(),
                expected: "`robust_eps_` followed by a radius, e.g. `robust_eps_0.1`",
            })
        })
        .collect()
}

/// The fields of a row's line, in header order. Floats in Rust's shortest round-trip form.
fn fields(r: &FrontTestRow) -> Vec<String> {
    let mut f = vec![
        r.episode.to_string(),
        r.policy.clone(),
        r.latency_s.to_string(),
        r.validation_accuracy.to_string(),
        r.validation_robust_accuracy.to_string(),
        r.validation_masking
            .map(|c| c.to_string())
            .unwrap_or_default(),
        r.accuracy.to_string(),
    ];
    f.extend(r.robust.iter().chain(&r.pgd).map(f64::to_string));
    f.extend([
        r.clean_accuracy.to_string(),
        r.robust_auc.to_string(),
        (!r.masking.is_empty()).to_string(),
        r.masking.to_string(),
        r.examples.to_string(),
        format!("{:.3}", r.seconds),
    ]);
    f
}

fn checks(r: &Record, col: usize) -> Result<Checks, RunDirError> {
    Checks::parse(r.text(col)).ok_or_else(|| r.bad(col, CHECKS_FORMAT))
}

fn parse(
    r: &Record,
    lead: &[usize; 7],
    trail: &[usize; 6],
    robust: &[usize],
    pgd: &[usize],
) -> Result<FrontTestRow, RunDirError> {
    let [episode, policy, latency, val_acc, val_rob, val_masking, acc] = *lead;
    let [clean, auc, flagged, masking, examples, seconds] = *trail;
    let numbers = |cols: &[usize]| -> Result<Vec<f64>, RunDirError> {
        cols.iter().map(|&c| r.number(c)).collect()
    };
    let row = FrontTestRow {
        episode: r.get(episode, "a whole number")?,
        policy: r.text(policy).to_string(),
        latency_s: r.number(latency)?,
        validation_accuracy: r.number(val_acc)?,
        validation_robust_accuracy: r.number(val_rob)?,
        validation_masking: r.optional(Some(val_masking), Checks::parse, CHECKS_FORMAT)?,
        accuracy: r.number(acc)?,
        clean_accuracy: r.number(clean)?,
        robust: numbers(robust)?,
        pgd: numbers(pgd)?,
        robust_auc: r.number(auc)?,
        masking: checks(r, masking)?,
        examples: r.get(examples, "a whole number")?,
        seconds: r.number(seconds)?,
    };
    // The flag is derived from the checks; a file where they disagree was edited by hand.
    if r.flag(flagged)? == row.masking.is_empty() {
        return Err(r.bad(flagged, "`true` exactly when `masking` is not `none`"));
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn front() -> FrontTest {
        let row = |episode: usize, masking: &str| FrontTestRow {
            episode,
            policy: "8/4,2/3".into(),
            latency_s: 1.234e-5,
            validation_accuracy: 0.1 + 0.2,
            validation_robust_accuracy: 0.5,
            validation_masking: Checks::parse(masking),
            accuracy: 0.97,
            clean_accuracy: 0.96,
            robust: vec![0.9, 0.7, 1.0 / 3.0],
            pgd: vec![0.92, 0.75, 0.4],
            robust_auc: 0.71,
            masking: Checks::parse(masking).unwrap_or_default(),
            examples: 500,
            seconds: 12.5,
        };
        FrontTest {
            eps: vec![0.05, 0.1, 0.2],
            rows: vec![row(3, "none"), row(17, "zero_grad+gradient_free")],
        }
    }

    #[test]
    fn front_test_round_trips_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FrontTest::FILE);
        front().write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("episode,policy,latency_s,validation_accuracy,")
                && text.contains(",robust_eps_0.05,robust_eps_0.1,robust_eps_0.2,pgd_0.05,"),
            "{text}"
        );
        assert_eq!(FrontTest::read(&path).unwrap(), front());
    }

    #[test]
    fn an_empty_front_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FrontTest::FILE);
        let empty = FrontTest {
            eps: vec![0.1],
            rows: vec![],
        };
        empty.write(&path).unwrap();
        assert_eq!(FrontTest::read(&path).unwrap(), empty);
    }

    /// The reader's error for the written file with its first `from` replaced by `to`.
    fn read_edited(from: &str, to: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FrontTest::FILE);
        front().write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from} not in {text}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        FrontTest::read(&path).unwrap_err().to_string()
    }

    #[test]
    fn a_bad_value_names_file_line_column_and_value() {
        let e = read_edited(",0.7,", ",high,");
        assert!(
            e.contains("front-test.csv:2:")
                && e.contains("`robust_eps_0.1`")
                && e.contains("\"high\""),
            "{e}"
        );
    }

    #[test]
    fn a_radius_without_its_pgd_column_is_refused() {
        let e = read_edited("pgd_0.2,", "pgd_0.3,");
        assert!(
            e.contains("front-test.csv") && e.contains("`pgd_0.2`"),
            "{e}"
        );
    }

    #[test]
    fn a_column_that_is_not_a_radius_is_named() {
        let e = read_edited("robust_eps_0.05", "robust_eps_x");
        assert!(
            e.contains("front-test.csv") && e.contains("`robust_eps_x`"),
            "{e}"
        );
    }

    #[test]
    fn a_flag_that_contradicts_the_checks_is_refused() {
        let e = read_edited(",false,none,", ",true,none,");
        assert!(
            e.contains("front-test.csv:2:") && e.contains("masking_flagged"),
            "{e}"
        );
    }
}
