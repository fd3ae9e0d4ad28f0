//! `RunDirError`: why a run-directory file could not be read or written, naming the file and,
//! for CSV, the line, the column and the value.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("{}: no such file ({hint})", path.display())]
    Missing { path: PathBuf, hint: &'static str },
    #[error("{}: cannot read", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot write", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A symbolic link where the tool writes: never followed, as a link planted in a shared
    /// directory could point a write at any file its owner can write.
    #[error(
        "{}: is a symbolic link; bitsearch does not write through links in a run, sweep or study \
         directory (remove the link, or choose another directory)",
        path.display()
    )]
    Symlink { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}{}: malformed CSV", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Csv {
        path: PathBuf,
        line: Option<u64>,
        source: csv::Error,
    },
    #[error("{}: the header has no column `{column}`", path.display())]
    MissingColumn { path: PathBuf, column: String },
    #[error("{}: column `{column}`: expected {expected}", path.display())]
    BadColumn {
        path: PathBuf,
        column: String,
        expected: &'static str,
    },
    #[error("{}:{line}: column `{column}`: expected {expected}, got {value:?}", path.display())]
    BadValue {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
        expected: &'static str,
    },
    #[error("{}: {detail}", path.display())]
    Layers { path: PathBuf, detail: String },
    #[error("{}: cannot lock", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another process holds the run directory's lock; `holder` is None while it has not yet
    /// recorded itself.
    #[error("{}: {}", path.display(), super::lock::locked_message(holder))]
    Locked {
        path: PathBuf,
        holder: Option<Box<super::lock::Holder>>,
    },
    #[error(
        "{}: not a request of the run {}: a worker reads only RUN/work/K.json of the run it is \
         named",
        path.display(),
        run.display()
    )]
    NotARequest { path: PathBuf, run: PathBuf },
    #[error(
        "{}: not the request the search wrote (its SHA-256 is not the one the worker was given): \
         the file changed after the search wrote it, so the worker refuses to score it",
        path.display()
    )]
    RequestChanged { path: PathBuf },
    #[error(
        "{}: neither a search run (config.json), a DQ study (dq.csv) nor a sensitivity study \
         (sensitivity.csv)",
        path.display()
    )]
    NotARunDir { path: PathBuf },
}
