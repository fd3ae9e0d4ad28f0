//! A CSV file read whole, with typed field access whose errors name the file, the line, the
//! column and the value; and the one way a CSV line is written.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::files::{read_text, write_atomic};
use super::RunDirError;

/// A CSV file with a header line; every record keeps its 1-based line number.
pub(crate) struct CsvFile {
    pub path: PathBuf,
    pub headers: Vec<String>,
    pub rows: Vec<(u64, csv::StringRecord)>,
}

/// One record of a `CsvFile`, for typed access by column index.
pub(crate) struct Record<'a> {
    file: &'a CsvFile,
    line: u64,
    record: &'a csv::StringRecord,
}

impl CsvFile {
    /// Reads `path`; a missing file is `RunDirError::Missing` with `hint` as guidance.
    pub fn open(path: &Path, hint: &'static str) -> Result<Self, RunDirError> {
        Self::parse(path, &read_text(path, hint)?)
    }

    /// Parses `text`, the content of `path` (named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, RunDirError> {
        let csv_err = |source: csv::Error| RunDirError::Csv {
            path: path.to_path_buf(),
            line: source.position().map(|p| p.line()),
            source,
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(csv_err)?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(csv_err)?;
            let line = record.position().map_or(0, |p| p.line());
            rows.push((line, record));
        }
        Ok(CsvFile {
            path: path.to_path_buf(),
            headers,
            rows,
        })
    }

    /// The index of column `name`, or an error naming the file and the column.
    pub fn column(&self, name: &str) -> Result<usize, RunDirError> {
        self.headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| RunDirError::MissingColumn {
                path: self.path.clone(),
                column: name.to_string(),
            })
    }

    /// The indices of columns `names`, in that order.
    pub fn columns<const N: usize>(&self, names: [&str; N]) -> Result<[usize; N], RunDirError> {
        let mut out = [0; N];
        for (slot, name) in out.iter_mut().zip(names) {
            *slot = self.column(name)?;
        }
        Ok(out)
    }

    /// The records, in file order.
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> {
        self.rows.iter().map(move |(line, record)| Record {
            file: self,
            line: *line,
            record,
        })
    }
}

impl Record<'_> {
    /// The raw (trimmed) text of column `col`.
    pub fn text(&self, col: usize) -> &str {
        self.record.get(col).unwrap_or("").trim()
    }

    /// An error about column `col` of this record.
    pub fn bad(&self, col: usize, expected: &'static str) -> RunDirError {
        RunDirError::BadValue {
            path: self.file.path.clone(),
            line: self.line,
            column: self.file.headers.get(col).cloned().unwrap_or_default(),
            value: self.text(col).to_string(),
            expected,
        }
    }

    /// Column `col` parsed as `T`; `expected` describes `T` in the error.
    pub fn get<T: FromStr>(&self, col: usize, expected: &'static str) -> Result<T, RunDirError> {
        self.text(col).parse().map_err(|_| self.bad(col, expected))
    }

    /// `true` or `false`.
    pub fn flag(&self, col: usize) -> Result<bool, RunDirError> {
        self.get(col, "`true` or `false`")
    }

    /// A finite number.
    pub fn number(&self, col: usize) -> Result<f64, RunDirError> {
        let v: f64 = self.get(col, "a number")?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(self.bad(col, "a finite number"))
        }
    }

    /// Column `col` (`None`: the file has no such column) parsed by `parse`, or `None` for an
    /// empty field or a missing column; `expected` describes the form in the error.
    pub fn optional<T>(
        &self,
        col: Option<usize>,
        parse: impl Fn(&str) -> Option<T>,
        expected: &'static str,
    ) -> Result<Option<T>, RunDirError> {
        match col {
            Some(col) if !self.text(col).is_empty() => parse(self.text(col))
                .map(Some)
                .ok_or_else(|| self.bad(col, expected)),
            _ => Ok(None),
        }
    }

    /// A finite number, or `None` for an empty field.
    pub fn optional_number(&self, col: usize) -> Result<Option<f64>, RunDirError> {
        if self.text(col).is_empty() {
            Ok(None)
        } else {
            self.number(col).map(Some)
        }
    }
}

/// One CSV line (quoted where needed, ending in a newline) of `fields`, for `path`.
pub(crate) fn csv_line(path: &Path, fields: &[String]) -> Result<Vec<u8>, RunDirError> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    w.write_record(fields).map_err(|source| RunDirError::Csv {
        path: path.to_path_buf(),
        line: None,
        source,
    })?;
    w.into_inner().map_err(|e| RunDirError::Write {
        path: path.to_path_buf(),
        source: e.into_error(),
    })
}

/// Writes `path` whole and atomically (`write_atomic`): the `header` line, then one line per
/// record. The one writer of every CSV file the tool writes whole.
pub fn write_csv(
    path: &Path,
    header: &[String],
    records: impl IntoIterator<Item = Vec<String>>,
) -> Result<(), RunDirError> {
    let mut bytes = csv_line(path, header)?;
    for r in records {
        bytes.extend(csv_line(path, &r)?);
    }
    write_atomic(path, &bytes)
}
