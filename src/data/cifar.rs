//! The CIFAR-10 binary format: records of 1 label byte + 3,072 image bytes (3x32x32, channel-major).

use std::path::Path;

use rand::SeedableRng;

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

/// The bytes of a CIFAR-10 binary batch file holding `split` (3×32×32 images).
pub fn encode_cifar(split: &RawSplit) -> Vec<u8> {
    let mut out = Vec::with_capacity(split.len() * RECORD);
    for (label, image) in split
        .labels
        .iter()
        .zip(split.images.chunks_exact(RECORD - 1))
    {
        out.push(*label);
        out.extend_from_slice(image);
    }
    out
}

/// A CIFAR-10-format directory for tests and smoke runs, made from real images: the embedded
/// MNIST digits, padded to 32×32 and colored (a random stroke and background color per image,
/// blended by the digit's ink), labelled by digit. `per_batch` examples in each of the five
/// training files and `test` in the test file, drawn in order from the embedded splits.
pub fn write_digit_fixture(dir: &Path, per_batch: usize, test: usize) -> Result<(), DataError> {
    let (train_digits, test_digits) = super::DataSource::EmbeddedMnist10k.load()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    let io = |path: &Path, source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let files = TRAIN_FILES.iter().map(|f| (*f, &train_digits)).enumerate();
    for (i, (name, digits)) in files.chain([(5, (TEST_FILE, &test_digits))]) {
        let (n, first) = if i < 5 {
            (per_batch, i * per_batch)
        } else {
            (test, 0)
        };
        if first + n > digits.len() {
            return Err(DataError::Format {
                file: name.to_string(),
                what: format!(
                    "the fixture wants {} digits, the embedded set has {}",
                    first + n,
                    digits.len()
                ),
            });
        }
        let picked: Vec<usize> = (first..first + n).collect();
        let colored = colorize(&digits.select(&picked), &mut rng);
        let path = dir.join(name);
        std::fs::write(&path, encode_cifar(&colored)).map_err(|e| io(&path, e))?;
    }
    Ok(())
}

/// 28×28 gray digits → 32×32 RGB: background and stroke colors drawn per image.
fn colorize(digits: &RawSplit, rng: &mut impl rand::Rng) -> RawSplit {
    let (_, h, w) = digits.shape;
    let mut images = Vec::with_capacity(digits.len() * (RECORD - 1));
    for digit in digits.images.chunks_exact(h * w) {
        let bg: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.0..160.0));
        let fg: [f32; 3] = std::array::from_fn(|_| rng.random_range(96.0..256.0));
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let (dy, dx) = (y as isize - 2, x as isize - 2);
                    let inside = (0..h as isize).contains(&dy) && (0..w as isize).contains(&dx);
                    let ink = match inside {
                        true => f32::from(digit[dy as usize * w + dx as usize]) / 255.0,
                        false => 0.0,
                    };
                    images.push((bg[c] * (1.0 - ink) + fg[c] * ink).clamp(0.0, 255.0) as u8);
                }
            }
        }
    }
    RawSplit {
        images,
        labels: digits.labels.clone(),
        shape: (3, 32, 32),
    }
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

    /// The fixture reads back as CIFAR-10: six files, 3×32×32 images, the digits' labels,
    /// and colors that differ between images.
    #[test]
    fn digit_fixture_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        write_digit_fixture(dir.path(), 20, 30).unwrap();
        let (train, test) = read_cifar_dir(dir.path()).unwrap();
        assert_eq!(
            (train.len(), test.len(), train.shape),
            (100, 30, (3, 32, 32))
        );
        let (digits, _) = super::super::DataSource::EmbeddedMnist10k.load().unwrap();
        assert_eq!(train.labels, digits.labels[..100]);
        let corner = |i: usize| {
            (0..3)
                .map(|c| train.images[i * 3072 + c * 1024])
                .collect::<Vec<_>>()
        };
        assert_ne!(corner(0), corner(1));
        assert_eq!(encode_cifar(&test).len(), 30 * RECORD);
    }

    #[test]
    fn directory_without_files_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_cifar_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("data_batch_1.bin"), "{err}");
    }
}
