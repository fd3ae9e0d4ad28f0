//! The CIFAR-10 binary format: records of 1 label byte + 3,072 image bytes (3x32x32, channel-major).

use std::path::Path;

use super::{DataError, RawSplit};

const RECORD: usize = 1 + 3 * 32 * 32;
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub const TEST_FILE: &str = "test_batch.bin";

/// Parses one CIFAR-10 binary batch file's bytes; `name` is used in error messages.
pub fn parse_cifar(bytes: &[u8], name: &str) -> Result<RawSplit, DataError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(DataError::Format {
            file: name.to_string(),
            what: format!(
                "size {} bytes is not a positive multiple of the {RECORD}-byte record (truncated?)",
                bytes.len()
            ),
        });
    }
    let n = bytes.len() / RECORD;
    let mut images = Vec::with_capacity(n * (RECORD - 1));
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] >= 10 {
            return Err(DataError::LabelOutOfRange {
                file: name.to_string(),
                index: i,
                label: rec[0],
                classes: 10,
            });
        }
        labels.push(rec[0]);
        images.extend_from_slice(&rec[1..]);
    }
    Ok(RawSplit {
        images,
        labels,
        shape: (3, 32, 32),
    })
}

/// Reads the five training batches and the test batch from a CIFAR-10 binary directory.
pub fn read_cifar_dir(dir: &Path) -> Result<(RawSplit, RawSplit), DataError> {
    let mut train = RawSplit {
        images: Vec::new(),
        labels: Vec::new(),
        shape: (3, 32, 32),
    };
    for f in TRAIN_FILES {
        let part = read_one(&dir.join(f))?;
        train.images.extend(part.images);
        train.labels.extend(part.labels);
    }
    let test = read_one(&dir.join(TEST_FILE))?;
    Ok((train, test))
}

fn read_one(path: &Path) -> Result<RawSplit, DataError> {
    if !path.exists() {
        return Err(DataError::MissingFile {
            path: path.to_path_buf(),
        });
    }
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_cifar(&bytes, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label: u8, fill: u8) -> Vec<u8> {
        let mut r = vec![fill; RECORD];
        r[0] = label;
        r
    }

    #[test]
    fn parses_records() {
        let bytes = [record(3, 7), record(9, 200)].concat();
        let s = parse_cifar(&bytes, "b").unwrap();
        assert_eq!(s.labels, vec![3, 9]);
        assert_eq!(s.images.len(), 2 * 3072);
        assert_eq!(s.images[3072], 200);
    }

    #[test]
    fn truncated_file_is_an_error() {
        let bytes = record(1, 0);
        let err = parse_cifar(&bytes[..100], "b.bin").unwrap_err().to_string();
        assert!(err.contains("b.bin") && err.contains("multiple"), "{err}");
    }

    #[test]
    fn label_outside_classes_is_an_error() {
        let bytes = [record(1, 0), record(10, 0)].concat();
        let err = parse_cifar(&bytes, "b.bin").unwrap_err().to_string();
        assert!(err.contains("record 1") && err.contains("10"), "{err}");
    }

    #[test]
    fn directory_without_files_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_cifar_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("data_batch_1.bin"), "{err}");
    }
}
