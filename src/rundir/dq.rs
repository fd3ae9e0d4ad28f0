//! Reader of a Defensive-Quantization study directory: dq.csv (one row per bits × beta) and
//! amplification.csv (error amplification per layer), per docs/run-directory.md. (Their writer
//! is the DQ study, src/dq.rs.)

use std::path::{Path, PathBuf};

use super::table::{CsvFile, Record};
use super::RunDirError;

/// One row of dq.csv.
#[derive(Debug, Clone, PartialEq)]
pub struct DqRow {
    /// 32 = FP32.
    pub bits: u8,
    pub beta: f64,
    pub clean_accuracy: f64,
    /// The `fgsm_<eps>`, `pgd_<eps>` and `transfer_<eps>` columns, in file order.
    pub attacks: Vec<(String, f64)>,
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

impl DqDir {
    /// Reads dq.csv and amplification.csv of `dir`.
    pub fn read(dir: &Path) -> Result<DqDir, RunDirError> {
        Ok(DqDir {
            dir: dir.to_path_buf(),
            rows: read_dq(&dir.join("dq.csv"))?,
            amplification: read_amplification(&dir.join("amplification.csv"))?,
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
                    .map(|(i, h)| Ok((h.clone(), row.number(*i)?)))
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
    let c = file.columns(["bits", "beta", "layer", "index", "distance"])?;
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
