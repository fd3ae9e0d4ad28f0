//! Where a dataset comes from: the MNIST-10k subset embedded in the binary, a directory of
//! IDX files (MNIST, Fashion-MNIST, any image size) or a CIFAR-10 binary directory.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{idx, read_cifar_dir, DataError, RawSplit};

/// The embedded default: 8,000 train and 2,000 test MNIST digits (see data/mnist-10k/NOTICE).
const MNIST10K: [(&str, &[u8]); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        include_bytes!("../../data/mnist-10k/train-images-idx3-ubyte.gz"),
    ),
    (
        "train-labels-idx1-ubyte.gz",
        include_bytes!("../../data/mnist-10k/train-labels-idx1-ubyte.gz"),
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        include_bytes!("../../data/mnist-10k/t10k-images-idx3-ubyte.gz"),
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        include_bytes!("../../data/mnist-10k/t10k-labels-idx1-ubyte.gz"),
    ),
];

/// MNIST-style class count; labels at or above it are rejected.
const IDX_CLASSES: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// `embedded:mnist-10k`
    EmbeddedMnist10k,
    /// `idx:DIR` — train-{images,labels} and t10k-{images,labels} IDX files, raw or .gz.
    IdxDir(PathBuf),
    /// `cifar10:DIR` — data_batch_{1..5}.bin and test_batch.bin.
    Cifar10Dir(PathBuf),
}

impl DataSource {
    /// Parses `embedded:mnist-10k`, `idx:DIR` or `cifar10:DIR`; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Option<Self> {
        if text == "embedded:mnist-10k" {
            return Some(DataSource::EmbeddedMnist10k);
        }
        let (kind, path) = text.split_once(':')?;
        let path = base.join(path);
        match kind {
            "idx" => Some(DataSource::IdxDir(path)),
            "cifar10" => Some(DataSource::Cifar10Dir(path)),
            _ => None,
        }
    }

    /// Reads the training and test examples.
    pub fn load(&self) -> Result<(RawSplit, RawSplit), DataError> {
        match self {
            DataSource::EmbeddedMnist10k => {
                let [ti, tl, si, sl] = MNIST10K.map(|(name, bytes)| (name.to_string(), bytes));
                Ok((
                    pair(
                        idx::parse_idx(ti.1, &ti.0)?,
                        &ti.0,
                        idx::parse_idx(tl.1, &tl.0)?,
                        &tl.0,
                    )?,
                    pair(
                        idx::parse_idx(si.1, &si.0)?,
                        &si.0,
                        idx::parse_idx(sl.1, &sl.0)?,
                        &sl.0,
                    )?,
                ))
            }
            DataSource::IdxDir(dir) => {
                must_exist(dir)?;
                let (train, test) = (read_pair(dir, "train")?, read_pair(dir, "t10k")?);
                // A model is built for the training images' shape; test images of another
                // shape would fail deep inside the first evaluation.
                if train.shape != test.shape {
                    return Err(DataError::ShapeMismatch {
                        dir: dir.clone(),
                        train: train.shape,
                        test: test.shape,
                    });
                }
                Ok((train, test))
            }
            DataSource::Cifar10Dir(dir) => {
                must_exist(dir)?;
                read_cifar_dir(dir)
            }
        }
    }
}

/// Where the data sets bitsearch's experiments name come from, by the directory's name.
const PROVIDERS: [(&str, &str); 3] = [
    (
        "fashion-mnist",
        "Fashion-MNIST is Debian's package dataset-fashion-mnist \
         (`apt-get install dataset-fashion-mnist` puts it in /usr/share/datasets/fashion-mnist; \
         scripts/install-ci-deps.sh installs it), or the four IDX files from \
         https://github.com/zalandoresearch/fashion-mnist",
    ),
    (
        "cifar-10-batches-bin",
        "CIFAR-10's binary version is cifar-10-binary.tar.gz from \
         https://www.cs.toronto.edu/~kriz/cifar.html; scripts/make-cifar-fixture.sh DIR writes \
         a small stand-in in the same format",
    ),
    (
        "mnist",
        "MNIST's four IDX files are at https://yann.lecun.com/exdb/mnist/ (the embedded \
         `embedded:mnist-10k` needs no files)",
    ),
];

/// A missing data directory is an error that says which package or download provides it.
fn must_exist(dir: &Path) -> Result<(), DataError> {
    if dir.is_dir() {
        return Ok(());
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let provider = PROVIDERS.iter().find(|(key, _)| name.contains(key)).map_or(
        "set data.source to a directory that holds the data set's files",
        |(_, p)| p,
    );
    Err(DataError::MissingDir {
        dir: dir.to_path_buf(),
        provider: provider.to_string(),
    })
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::EmbeddedMnist10k => write!(f, "embedded:mnist-10k"),
            DataSource::IdxDir(p) => write!(f, "idx:{}", p.display()),
            DataSource::Cifar10Dir(p) => write!(f, "cifar10:{}", p.display()),
        }
    }
}

/// Finds `{prefix}-{images-idx3,labels-idx1}-ubyte[.gz]` in `dir` and reads the pair.
fn read_pair(dir: &Path, prefix: &str) -> Result<RawSplit, DataError> {
    let find = |stem: String| -> Result<PathBuf, DataError> {
        let gz = dir.join(format!("{stem}.gz"));
        let raw = dir.join(&stem);
        if gz.exists() {
            Ok(gz)
        } else if raw.exists() {
            Ok(raw)
        } else {
            Err(DataError::MissingFile { path: raw })
        }
    };
    let images = find(format!("{prefix}-images-idx3-ubyte"))?;
    let labels = find(format!("{prefix}-labels-idx1-ubyte"))?;
    pair(
        idx::read_idx_file(&images)?,
        &images.display().to_string(),
        idx::read_idx_file(&labels)?,
        &labels.display().to_string(),
    )
}

/// Checks an images/labels pair of IDX arrays and turns it into a split.
fn pair(
    images: idx::IdxArray,
    images_name: &str,
    labels: idx::IdxArray,
    labels_name: &str,
) -> Result<RawSplit, DataError> {
    let shape = match images.dims[..] {
        [_, h, w] => (1, h, w),
        [_, c, h, w] => (c, h, w),
        _ => {
            return Err(DataError::Format {
                file: images_name.to_string(),
                what: format!(
                    "images must have 3 (N,H,W) or 4 (N,C,H,W) dimensions, got {:?}",
                    images.dims
                ),
            })
        }
    };
    // An example without pixels has nothing to learn from, and every consumer divides the
    // payload into examples of c*h*w pixels.
    if shape.0 * shape.1 * shape.2 == 0 {
        return Err(DataError::Format {
            file: images_name.to_string(),
            what: format!("images of {:?} have no pixels", images.dims),
        });
    }
    if labels.dims.len() != 1 {
        return Err(DataError::Format {
            file: labels_name.to_string(),
            what: format!("labels must have 1 dimension, got {:?}", labels.dims),
        });
    }
    if images.dims[0] != labels.dims[0] {
        return Err(DataError::CountMismatch {
            images: images_name.to_string(),
            n_images: images.dims[0],
            labels: labels_name.to_string(),
            n_labels: labels.dims[0],
        });
    }
    if let Some((index, &label)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= IDX_CLASSES)
    {
        return Err(DataError::LabelOutOfRange {
            file: labels_name.to_string(),
            index,
            label,
            classes: IDX_CLASSES,
        });
    }
    Ok(RawSplit {
        images: images.data,
        labels: labels.data,
        shape,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::encode_idx;

    fn write_dir(dir: &Path, n_train_labels: usize, bad_label: bool) {
        let imgs = encode_idx(&[3, 2, 2], &[9; 12]);
        let mut labels = vec![1u8; n_train_labels];
        if bad_label {
            labels[1] = 10;
        }
        std::fs::write(dir.join("train-images-idx3-ubyte"), &imgs).unwrap();
        std::fs::write(
            dir.join("train-labels-idx1-ubyte"),
            encode_idx(&[n_train_labels], &labels),
        )
        .unwrap();
        std::fs::write(dir.join("t10k-images-idx3-ubyte"), &imgs).unwrap();
        std::fs::write(
            dir.join("t10k-labels-idx1-ubyte"),
            encode_idx(&[3], &[0, 1, 2]),
        )
        .unwrap();
    }

    #[test]
    fn embedded_mnist_has_the_documented_sizes() {
        let (train, test) = DataSource::EmbeddedMnist10k.load().unwrap();
        assert_eq!((train.len(), test.len()), (8000, 2000));
        assert_eq!(train.shape, (1, 28, 28));
        assert!(train.labels.iter().all(|&l| l < 10));
    }

    #[test]
    fn reads_an_idx_directory() {
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), 3, false);
        let (train, test) = DataSource::IdxDir(dir.path().into()).load().unwrap();
        assert_eq!((train.len(), test.len(), train.shape), (3, 3, (1, 2, 2)));
    }

    #[test]
    fn train_and_test_images_of_different_shapes_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), 3, false);
        let wide = encode_idx(&[3, 2, 3], &[9; 18]);
        std::fs::write(dir.path().join("t10k-images-idx3-ubyte"), wide).unwrap();
        let e = DataSource::IdxDir(dir.path().to_path_buf())
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("training images are (1, 2, 2)") && e.contains("test images are (1, 2, 3)"),
            "{e}"
        );
    }

    #[test]
    fn count_mismatch_names_both_files() {
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), 4, false);
        let err = DataSource::IdxDir(dir.path().into())
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train-images") && err.contains("train-labels"),
            "{err}"
        );
        assert!(
            err.contains("3 images") && err.contains("4 labels"),
            "{err}"
        );
    }

    #[test]
    fn label_outside_classes_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), 3, true);
        let err = DataSource::IdxDir(dir.path().into())
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train-labels") && err.contains("record 1") && err.contains("label 10"),
            "{err}"
        );
    }

    #[test]
    fn images_without_pixels_are_an_error() {
        // Three 0x4 images: a valid IDX file whose examples are empty (found by tests/fuzz.rs;
        // building the dataset's input normalization panicked on it).
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), 3, false);
        let empty = encode_idx(&[3, 0, 4], &[]);
        std::fs::write(dir.path().join("train-images-idx3-ubyte"), empty).unwrap();
        let err = DataSource::IdxDir(dir.path().into())
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train-images") && err.contains("[3, 0, 4] have no pixels"),
            "{err}"
        );
    }

    #[test]
    fn directory_without_files_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = DataSource::IdxDir(dir.path().into())
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train-images-idx3-ubyte") && err.contains("not found"),
            "{err}"
        );
    }

    #[test]
    fn parses_source_strings() {
        let base = Path::new("/b");
        assert_eq!(
            DataSource::parse("embedded:mnist-10k", base),
            Some(DataSource::EmbeddedMnist10k)
        );
        assert_eq!(
            DataSource::parse("idx:d", base),
            Some(DataSource::IdxDir("/b/d".into()))
        );
        assert_eq!(
            DataSource::parse("cifar10:/x", base),
            Some(DataSource::Cifar10Dir("/x".into()))
        );
        assert_eq!(DataSource::parse("nope", base), None);
        assert_eq!(DataSource::parse("embedded:other", base), None);
    }

    #[test]
    fn a_missing_directory_names_what_provides_it() {
        let dir = tempfile::tempdir().unwrap();
        let gone = |name: &str| {
            DataSource::IdxDir(dir.path().join(name))
                .load()
                .unwrap_err()
                .to_string()
        };
        let fashion = gone("fashion-mnist");
        assert!(
            fashion.contains("does not exist") && fashion.contains("dataset-fashion-mnist"),
            "{fashion}"
        );
        let cifar = DataSource::Cifar10Dir(dir.path().join("cifar-10-batches-bin"))
            .load()
            .unwrap_err()
            .to_string();
        assert!(cifar.contains("make-cifar-fixture.sh"), "{cifar}");
        let other = gone("my-data");
        assert!(other.contains("set data.source"), "{other}");
    }
}
