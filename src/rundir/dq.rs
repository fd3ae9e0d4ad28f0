//! A Defensive-Quantization study directory: dq.csv (one row per bits × beta) and
//! amplification.csv (error amplification per layer), per docs/run-directory.md; their one row
//! type each, their writer (whole files, atomically) and their reader.

use std::path::{Path, PathBuf};

use super::csv_file::{write_csv, CsvFile, Record};
use super::RunDirError;

/// One row of dq.csv.
#[derive(Debug, Clone, PartialEq)]
pub struct DqRow {
    /// 32 = FP32.
    pub bits: u8,
    pub beta: f64,
    pub clean_accuracy: f64,
    /// The `fgsm_<eps>`, `pgd_<eps>`, `transfer_<eps>` and `square_<eps>` columns, in file
    /// order; None for an attack the suite did not report (an empty field).
    pub attacks: Vec<(String, Option<f64>)>,
    pub worst_case: f64,
    pub masking_zero_grad: f64,
    pub masking_eps_rise: bool,
    pub masking_above_transfer: bool,
    /// Robust accuracy above the next wider bitwidth's (optional column; false when absent).
    pub masking_bits_rise: bool,
    /// PGD accuracy above the gradient-free Square attack's (optional column; false when absent).
    pub masking_above_gradient_free: bool,
    pub lipschitz_bound: f64,
}

impl DqRow {
    /// dq.csv's header for rows whose attack columns are `attacks`.
    pub fn header(attacks: &[String]) -> Vec<String> {
        let mut h: Vec<String> = ["bits", "beta", "clean_accuracy"].map(String::from).into();
        h.extend(attacks.iter().cloned());
        h.extend(
            [
                "worst_case",
                "masking_zero_grad",
                "masking_eps_rise",
                "masking_above_transfer",
                "masking_above_gradient_free",
                "lipschitz_bound",
                "masking_bits_rise",
            ]
            .map(String::from),
        );
        h
    }

    /// The row's fields in `header` order.
    pub fn record(&self) -> Vec<String> {
        let mut r = vec![
            self.bits.to_string(),
            self.beta.to_string(),
            format!("{:.4}", self.clean_accuracy),
        ];
        r.extend(
            (self.attacks.iter()).map(|(_, a)| a.map(|a| format!("{a:.4}")).unwrap_or_default()),
        );
        r.extend([
            format!("{:.4}", self.worst_case),
            format!("{:.4}", self.masking_zero_grad),
            self.masking_eps_rise.to_string(),
            self.masking_above_transfer.to_string(),
            self.masking_above_gradient_free.to_string(),
            format!("{:.6e}", self.lipschitz_bound),
            self.masking_bits_rise.to_string(),
        ]);
        r
    }

    /// True when any gradient-masking check fired.
    pub fn masking_suspected(&self) -> bool {
        self.masking_eps_rise
            || self.masking_above_transfer
            || self.masking_bits_rise
            || self.masking_above_gradient_free
    }
}

/// One row of amplification.csv.
#[derive(Debug, Clone, PartialEq)]
pub struct AmplificationRow {
    pub bits: u8,
    pub beta: f64,
    pub layer: String,
    pub index: usize,
    pub distance: f64,
}

/// A DQ study directory.
#[derive(Debug, Clone)]
pub struct DqDir {
    pub dir: PathBuf,
    pub rows: Vec<DqRow>,
    pub amplification: Vec<AmplificationRow>,
}

const HINT: &str = "written by `bitsearch dq`";

impl AmplificationRow {
    const HEADER: [&'static str; 5] = ["bits", "beta", "layer", "index", "distance"];

    fn record(&self) -> Vec<String> {
        vec![
            self.bits.to_string(),
            self.beta.to_string(),
            self.layer.clone(),
            self.index.to_string(),
            format!("{:.6}", self.distance),
        ]
    }
}

impl DqDir {
    pub const FILE: &'static str = "dq.csv";
    pub const AMPLIFICATION: &'static str = "amplification.csv";

    /// Writes dq.csv and amplification.csv of `dir`, each whole and atomically. Every row of
    /// `rows` has the same attack columns (one study, one suite).
    pub fn write(
        dir: &Path,
        rows: &[DqRow],
        amplification: &[AmplificationRow],
    ) -> Result<(), RunDirError> {
        let path = dir.join(Self::FILE);
        let attacks: Vec<String> = (rows.first().into_iter())
            .flat_map(|r| r.attacks.iter().map(|a| a.0.clone()))
            .collect();
        write_csv(
            &path,
            &DqRow::header(&attacks),
            rows.iter().map(DqRow::record),
        )?;
        let header = AmplificationRow::HEADER.map(String::from);
        let records = amplification.iter().map(AmplificationRow::record);
        write_csv(&dir.join(Self::AMPLIFICATION), &header, records)
    }

    /// Reads dq.csv and amplification.csv of `dir`.
    pub fn read(dir: &Path) -> Result<DqDir, RunDirError> {
        Ok(DqDir {
            dir: dir.to_path_buf(),
            rows: read_dq(&dir.join(Self::FILE))?,
            amplification: read_amplification(&dir.join(Self::AMPLIFICATION))?,
        })
    }

    /// The distinct betas, ascending.
    pub fn betas(&self) -> Vec<f64> {
        let mut betas: Vec<f64> = self.rows.iter().map(|r| r.beta).collect();
        betas.sort_by(f64::total_cmp);
        betas.dedup();
        betas
    }
}

fn bits(row: &Record, col: usize) -> Result<u8, RunDirError> {
    let expected = "a bitwidth 1..=8 or 32";
    match row.get::<u8>(col, expected)? {
        b @ (1..=8 | 32) => Ok(b),
        _ => Err(row.bad(col, expected)),
    }
}

fn is_attack(column: &str) -> bool {
    ["fgsm_", "pgd_", "transfer_", "square_"]
        .iter()
        .any(|p| column.starts_with(p))
}

fn read_dq(path: &Path) -> Result<Vec<DqRow>, RunDirError> {
    let file = CsvFile::open(path, HINT)?;
    let names = [
        "bits",
        "beta",
        "clean_accuracy",
        "worst_case",
        "masking_zero_grad",
        "masking_eps_rise",
        "masking_above_transfer",
        "lipschitz_bound",
    ];
    let c = file.columns(names)?;
    let attacks: Vec<(usize, String)> = file
        .headers
        .iter()
        .enumerate()
        .filter(|(_, h)| is_attack(h))
        .map(|(i, h)| (i, h.clone()))
        .collect();
    let bits_rise = file.column("masking_bits_rise").ok();
    let gradient_free = file.column("masking_above_gradient_free").ok();
    file.records()
        .map(|row| {
            Ok(DqRow {
                bits: bits(&row, c[0])?,
                beta: row.number(c[1])?,
                clean_accuracy: row.number(c[2])?,
                attacks: attacks
                    .iter()
                    .map(|(i, h)| Ok((h.clone(), row.optional_number(*i)?)))
                    .collect::<Result<_, RunDirError>>()?,
                worst_case: row.number(c[3])?,
                masking_zero_grad: row.number(c[4])?,
                masking_eps_rise: row.flag(c[5])?,
                masking_above_transfer: row.flag(c[6])?,
                masking_bits_rise: match bits_rise {
                    Some(col) => row.flag(col)?,
                    None => false,
                },
                masking_above_gradient_free: match gradient_free {
                    Some(col) => row.flag(col)?,
                    None => false,
                },
                lipschitz_bound: row.number(c[7])?,
            })
        })
        .collect()
}

fn read_amplification(path: &Path) -> Result<Vec<AmplificationRow>, RunDirError> {
    let file = CsvFile::open(path, HINT)?;
    let c = file.columns(AmplificationRow::HEADER)?;
    file.records()
        .map(|row| {
            Ok(AmplificationRow {
                bits: bits(&row, c[0])?,
                beta: row.number(c[1])?,
                layer: row.text(c[2]).to_string(),
                index: layer_index(&row, c[3], file.rows.len())?,
                distance: row.number(c[4])?,
            })
        })
        .collect()
}

/// A layer's index: below the number of rows, as every layer of a study has a row (the report
/// draws one category per index up to the largest, so a huge index must not get that far).
fn layer_index(row: &Record, col: usize, rows: usize) -> Result<usize, RunDirError> {
    let expected = "a layer index (a whole number below the file's number of rows)";
    match row.get::<usize>(col, expected)? {
        i if i < rows => Ok(i),
        _ => Err(row.bad(col, expected)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_study_written_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let row = |bits: u8, square: Option<f64>| DqRow {
            bits,
            beta: 0.01,
            clean_accuracy: 0.95,
            attacks: vec![("pgd_0.1".into(), Some(0.5)), ("square_0.1".into(), square)],
            worst_case: 0.25,
            masking_zero_grad: 0.125,
            masking_eps_rise: bits == 2,
            masking_above_transfer: false,
            masking_bits_rise: bits == 2,
            masking_above_gradient_free: true,
            lipschitz_bound: 1234.5,
        };
        let rows = [row(4, Some(0.375)), row(2, None)];
        let amp = [AmplificationRow {
            bits: 4,
            beta: 0.01,
            layer: "conv, \"1\"".into(),
            index: 0,
            distance: 0.5,
        }];
        DqDir::write(dir.path(), &rows, &amp).unwrap();
        let back = DqDir::read(dir.path()).unwrap();
        assert_eq!(back.rows, rows);
        assert_eq!(back.amplification, amp);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    }

    #[test]
    fn a_layer_index_beyond_the_rows_is_an_error_not_a_huge_chart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("amplification.csv");
        let head = "bits,beta,layer,index,distance\n";
        std::fs::write(&path, format!("{head}4,0,conv1,0,0.1\n4,0,fc1,1,0.2\n")).unwrap();
        assert_eq!(read_amplification(&path).unwrap()[1].index, 1);
        std::fs::write(
            &path,
            format!("{head}4,0,conv1,0,0.1\n4,0,fc1,12884901887,0.2\n"),
        )
        .unwrap();
        let e = read_amplification(&path).unwrap_err().to_string();
        assert!(
            e.contains("column `index`") && e.contains("12884901887"),
            "{e}"
        );
    }
}
