//! measured.csv: policies of a run measured on a real runtime (`bitsearch measure`), one row
//! per policy and batch size; its row type, its writer (whole file, atomically) and its reader.

use std::path::Path;

use super::csv_file::{write_csv, CsvFile, Record};
use super::RunDirError;

/// One policy measured at one batch size.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredRow {
    pub episode: usize,
    pub policy: String,
    /// Examples per run.
    pub batch: usize,
    /// The run's profile's latency for the policy, at the profile's batch only (None at
    /// other batch sizes: a profile prices one batch size).
    pub predicted_latency_s: Option<f64>,
    /// Median wall time of one run of the batch, after warm-up.
    pub measured_latency_s: f64,
    /// Timed runs the median is over.
    pub repeats: usize,
    /// Per layer, the kernel the runtime ran it with (`conv1=QLinearConv`), `;`-separated.
    pub kernels: String,
    /// `onnxruntime 1.32.0`.
    pub runtime: String,
    pub cpu: String,
    pub threads: usize,
}

impl MeasuredRow {
    const HEADER: [&'static str; 10] = [
        "episode",
        "policy",
        "batch",
        "predicted_latency_s",
        "measured_latency_s",
        "repeats",
        "kernels",
        "runtime",
        "cpu",
        "threads",
    ];

    fn record(&self) -> Vec<String> {
        vec![
            self.episode.to_string(),
            self.policy.clone(),
            self.batch.to_string(),
            (self.predicted_latency_s)
                .map(|p| format!("{p:.6e}"))
                .unwrap_or_default(),
            format!("{:.6e}", self.measured_latency_s),
            self.repeats.to_string(),
            self.kernels.clone(),
            self.runtime.clone(),
            self.cpu.clone(),
            self.threads.to_string(),
        ]
    }

    fn read(row: &Record, c: &[usize; 10]) -> Result<MeasuredRow, RunDirError> {
        let count = "a whole number";
        let positive = |col: usize| {
            let v = row.number(col)?;
            if v > 0.0 {
                Ok(v)
            } else {
                Err(row.bad(col, "a positive number of seconds"))
            }
        };
        let predicted = match row.optional_number(c[3])? {
            Some(p) if p <= 0.0 => return Err(row.bad(c[3], "a positive number of seconds")),
            p => p,
        };
        let kernels = row.text(c[6]);
        if !kernels.is_empty() && kernel_pairs(kernels).any(|p| p.is_none()) {
            return Err(row.bad(c[6], "`layer=kernel` pairs separated by `;`"));
        }
        Ok(MeasuredRow {
            episode: row.get(c[0], count)?,
            policy: row.text(c[1]).to_string(),
            batch: row.get(c[2], count)?,
            predicted_latency_s: predicted,
            measured_latency_s: positive(c[4])?,
            repeats: row.get(c[5], count)?,
            kernels: kernels.to_string(),
            runtime: row.text(c[7]).to_string(),
            cpu: row.text(c[8]).to_string(),
            threads: row.get(c[9], count)?,
        })
    }

    /// measured / predicted − 1, where the row has a prediction.
    pub fn error(&self) -> Option<f64> {
        (self.predicted_latency_s).map(|p| self.measured_latency_s / p - 1.0)
    }

    /// The kernel `layer` ran as, from the kernels column; None when the column does not
    /// name the layer.
    pub fn kernel_of(&self, layer: &str) -> Option<&str> {
        (kernel_pairs(&self.kernels).flatten())
            .find(|(l, _)| *l == layer)
            .map(|(_, k)| k)
    }
}

/// The `layer=kernel` pairs of a kernels cell, in its order; None for an entry that is not one
/// (split at the last `=`: a layer name may hold one, a kernel, an operator type, does not).
fn kernel_pairs(kernels: &str) -> impl Iterator<Item = Option<(&str, &str)>> {
    (kernels.split(';')).map(|pair| pair.rsplit_once('=').filter(|(l, _)| !l.is_empty()))
}

/// The median of |measured / predicted − 1| over the rows with a prediction (the mean of the
/// two middle ones for an even count), and how many rows have one; None when none has.
pub fn median_abs_error(rows: &[MeasuredRow]) -> Option<(f64, usize)> {
    let mut errors: Vec<f64> = (rows.iter())
        .filter_map(MeasuredRow::error)
        .map(f64::abs)
        .collect();
    errors.sort_by(f64::total_cmp);
    let n = errors.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => errors[n / 2],
        _ => (errors[n / 2 - 1] + errors[n / 2]) / 2.0,
    };
    Some((median, n))
}

/// A run's measured.csv.
pub struct Measured;

impl Measured {
    pub const FILE: &'static str = "measured.csv";

    /// Writes `dir`/measured.csv whole and atomically.
    pub fn write(dir: &Path, rows: &[MeasuredRow]) -> Result<(), RunDirError> {
        let header = MeasuredRow::HEADER.map(String::from);
        write_csv(
            &dir.join(Self::FILE),
            &header,
            rows.iter().map(MeasuredRow::record),
        )
    }

    /// Reads `dir`/measured.csv; Ok(None) when the run has none.
    pub fn read(dir: &Path) -> Result<Option<Vec<MeasuredRow>>, RunDirError> {
        let path = dir.join(Self::FILE);
        if !path.exists() {
            return Ok(None);
        }
        let file = CsvFile::open(&path, "written by `bitsearch measure`")?;
        let c = file.columns(MeasuredRow::HEADER)?;
        let rows = file.records().map(|r| MeasuredRow::read(&r, &c));
        rows.collect::<Result<Vec<_>, _>>().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(batch: usize, predicted: Option<f64>) -> MeasuredRow {
        MeasuredRow {
            episode: 3,
            policy: "8/8,4/4".into(),
            batch,
            predicted_latency_s: predicted,
            measured_latency_s: 2.5e-5,
            repeats: 50,
            kernels: "conv1=QLinearConv;fc=Gemm".into(),
            runtime: "onnxruntime 1.32.0".into(),
            cpu: "AMD EPYC, 2 cores".into(),
            threads: 2,
        }
    }

    fn measured(measured_latency_s: f64, predicted: Option<f64>) -> MeasuredRow {
        MeasuredRow {
            measured_latency_s,
            ..row(1, predicted)
        }
    }

    #[test]
    fn what_is_written_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![row(1, None), row(16, Some(2.0e-5))];
        Measured::write(dir.path(), &rows).unwrap();
        let back = Measured::read(dir.path()).unwrap().unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0], rows[0]);
        assert_eq!(back[1].kernels, rows[1].kernels);
        let e = back[1].error().unwrap();
        assert!((e - 0.25).abs() < 1e-6, "{e}");
    }

    #[test]
    fn a_run_without_measurements_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Measured::read(dir.path()).unwrap().is_none());
    }

    #[test]
    fn a_non_positive_latency_is_refused_with_its_column() {
        let dir = tempfile::tempdir().unwrap();
        Measured::write(dir.path(), &[row(1, None)]).unwrap();
        let path = dir.path().join(Measured::FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("2.500000e-5", "-1")).unwrap();
        let e = Measured::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("measured_latency_s") && e.contains("-1"), "{e}");
    }

    #[test]
    fn each_layers_kernel_is_found_by_its_name() {
        let r = row(1, None);
        assert_eq!(r.kernel_of("conv1"), Some("QLinearConv"));
        assert_eq!(r.kernel_of("fc"), Some("Gemm"));
        assert_eq!(r.kernel_of("conv2"), None);
    }

    #[test]
    fn a_kernels_cell_that_is_not_layer_kernel_pairs_is_refused_with_its_column() {
        let dir = tempfile::tempdir().unwrap();
        Measured::write(dir.path(), &[row(1, None)]).unwrap();
        let path = dir.path().join(Measured::FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("fc=Gemm", "Gemm")).unwrap();
        let e = Measured::read(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(":2: column `kernels`") && e.contains("layer=kernel"),
            "{e}"
        );
    }

    #[test]
    fn the_median_error_is_over_the_rows_with_a_prediction() {
        // errors +10%, -30%, +20% and one row without a prediction: |e| sorted 0.1, 0.2, 0.3
        let rows = [
            measured(1.1, Some(1.0)),
            measured(0.7, Some(1.0)),
            measured(1.2, Some(1.0)),
            measured(5.0, None),
        ];
        let (e, n) = median_abs_error(&rows).unwrap();
        assert_eq!(n, 3);
        assert!((e - 0.2).abs() < 1e-12, "{e}");
        assert_eq!(median_abs_error(&rows[3..]), None);
    }
}
