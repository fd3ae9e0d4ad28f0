//! Datasets: IDX (MNIST-style) and CIFAR-10 binary readers, the embedded MNIST-10k default,
//! deterministic train/validation/test splits and batching into [0,1] candle tensors.

mod augment;
mod cifar;
mod config;
mod idx;
mod source;

pub use augment::Augment;
pub use cifar::{encode_cifar, parse_cifar, read_cifar_dir, write_digit_fixture};
pub use config::DataConfig;
pub use idx::{encode_idx, parse_idx, read_idx_file, IdxArray};
pub use source::DataSource;

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Errors from reading and splitting datasets; each names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {what}")]
    Format { file: String, what: String },
    #[error("{}: file not found (expected in this dataset directory)", path.display())]
    MissingFile { path: PathBuf },
    #[error("{}: the data set's directory does not exist; {provider}", dir.display())]
    MissingDir { dir: PathBuf, provider: String },
    #[error("{images}: {n_images} images but {labels}: {n_labels} labels; the counts must agree")]
    CountMismatch {
        images: String,
        n_images: usize,
        labels: String,
        n_labels: usize,
    },
    #[error(
        "{file}: record {index} has label {label}, outside the {classes} classes 0..{classes}"
    )]
    LabelOutOfRange {
        file: String,
        index: usize,
        label: u8,
        classes: usize,
    },
    #[error(
        "{}: the training images are {train:?} (channels, height, width) but the test images \
         are {test:?}; both splits must have one shape",
        dir.display()
    )]
    ShapeMismatch {
        dir: PathBuf,
        train: (usize, usize, usize),
        test: (usize, usize, usize),
    },
    #[error("validation split of {validation} leaves no training data out of {train} examples")]
    ValidationTooLarge { validation: usize, train: usize },
    #[error(
        "[train] augment.shift = {shift} must be less than the images' height and width \
         ({height}x{width}): a shift that wide moves the whole image out of view"
    )]
    ShiftTooLarge {
        shift: usize,
        height: usize,
        width: usize,
    },
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Images (u8, row-major, `shape` = (channels, height, width) each) and their labels.
#[derive(Debug, Clone)]
pub struct RawSplit {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub shape: (usize, usize, usize),
}

impl RawSplit {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn example_size(&self) -> usize {
        self.shape.0 * self.shape.1 * self.shape.2
    }

    /// The examples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> RawSplit {
        let size = self.example_size();
        let mut images = Vec::with_capacity(indices.len() * size);
        for &i in indices {
            images.extend_from_slice(&self.images[i * size..(i + 1) * size]);
        }
        RawSplit {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape,
        }
    }
}

/// One split, held as the data set's bytes: a batch converts its own examples to f32 in [0,1]
/// (Fashion-MNIST's 60,000 training images are 47 MB as bytes, 188 MB as f32).
#[derive(Debug, Clone)]
pub struct Split {
    images: Vec<u8>,
    labels: Vec<u32>,
    shape: (usize, usize, usize),
}

impl Split {
    fn from_raw(raw: RawSplit) -> Self {
        Split {
            images: raw.images,
            labels: raw.labels.iter().map(|&l| l as u32).collect(),
            shape: raw.shape,
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// All pixels in [0,1], example after example.
    pub fn pixels(&self) -> impl Iterator<Item = f32> + '_ {
        self.images.iter().map(|&p| pixel(p))
    }

    /// The first `n` examples (all if `n` is larger).
    pub fn head(&self, n: usize) -> Split {
        let n = n.min(self.len());
        let size = self.shape.0 * self.shape.1 * self.shape.2;
        Split {
            images: self.images[..n * size].to_vec(),
            labels: self.labels[..n].to_vec(),
            shape: self.shape,
        }
    }

    /// Images (N, C, H, W) in [0,1] and labels (N,) u32 for the examples at `indices`.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<(Tensor, Tensor), DataError> {
        self.batch_with(indices, device, |image, xs| {
            xs.extend(image.iter().map(|&p| pixel(p)))
        })
    }

    /// The batch of the examples at `indices`, `example` writing each one's image bytes to
    /// the batch's pixels (exactly channels × height × width values).
    fn batch_with(
        &self,
        indices: &[usize],
        device: &Device,
        mut example: impl FnMut(&[u8], &mut Vec<f32>),
    ) -> Result<(Tensor, Tensor), DataError> {
        let (c, h, w) = self.shape;
        let size = c * h * w;
        let mut xs = Vec::with_capacity(indices.len() * size);
        for &i in indices {
            example(&self.images[i * size..(i + 1) * size], &mut xs);
        }
        let ys: Vec<u32> = indices.iter().map(|&i| self.labels[i]).collect();
        let x = Tensor::from_vec(xs, (indices.len(), c, h, w), device)?;
        let y = Tensor::from_vec(ys, indices.len(), device)?;
        Ok((x, y))
    }

    /// The first `n` examples (all if `n` is larger) as one batch: what an attack suite, a
    /// calibration or a benchmark runs on.
    pub fn first(&self, n: usize, device: &Device) -> Result<(Tensor, Tensor), DataError> {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.batch(&idx, device)
    }

    /// Consecutive batches of at most `size` examples covering the split in order.
    pub fn chunks(&self, size: usize) -> impl Iterator<Item = Vec<usize>> + '_ {
        let n = self.len();
        (0..n)
            .step_by(size.max(1))
            .map(move |s| (s..(s + size.max(1)).min(n)).collect())
    }
}

/// A stored byte as the pixel value models see, in [0,1].
pub(crate) fn pixel(byte: u8) -> f32 {
    byte as f32 / 255.0
}

/// Per-channel input standardization `(x − mean) / std`, measured on the training pixels; the
/// model applies it after the first layer's activation quantizer (see `model::Model`). The
/// default (0, 1) is the identity.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InputNorm {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// Train, validation (carved from train with a seeded shuffle) and test (kept apart).
#[derive(Debug, Clone)]
pub struct Dataset {
    pub train: Split,
    pub val: Split,
    pub test: Split,
    /// (channels, height, width) of one example.
    pub shape: (usize, usize, usize),
    pub classes: usize,
}

impl Dataset {
    /// Splits `validation` examples off a seeded shuffle of `train`; the test split is untouched.
    pub fn from_raw(
        train: RawSplit,
        test: RawSplit,
        validation: usize,
        seed: u64,
    ) -> Result<Self, DataError> {
        if validation >= train.len() {
            return Err(DataError::ValidationTooLarge {
                validation,
                train: train.len(),
            });
        }
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        let (val_idx, train_idx) = order.split_at(validation);
        Ok(Dataset {
            shape: train.shape,
            classes: 10,
            train: Split::from_raw(train.select(train_idx)),
            val: Split::from_raw(train.select(val_idx)),
            test: Split::from_raw(test),
        })
    }

    /// Per-channel mean and standard deviation of the training split's pixels (in [0,1]).
    pub fn input_norm(&self) -> InputNorm {
        let (c, h, w) = self.shape;
        let px = &self.train.images;
        let (mut mean, mut std) = (vec![0f32; c], vec![1f32; c]);
        for ch in 0..c {
            let vals = px
                .chunks(c * h * w)
                .flat_map(|ex| &ex[ch * h * w..(ch + 1) * h * w]);
            let (n, sum, sq) = vals.fold((0f64, 0f64, 0f64), |(n, s, q), &p| {
                let v = pixel(p) as f64;
                (n + 1.0, s + v, q + v.powi(2))
            });
            if n > 0.0 {
                let m = sum / n;
                mean[ch] = m as f32;
                std[ch] = ((sq / n - m * m).max(0.0).sqrt() as f32).max(1e-6);
            }
        }
        InputNorm { mean, std }
    }

    /// Keeps at most the given number of examples per split (for tests and quick runs).
    pub fn truncate(mut self, train: usize, val: usize, test: usize) -> Self {
        self.train = self.train.head(train);
        self.val = self.val.head(val);
        self.test = self.test.head(test);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(n: usize) -> RawSplit {
        RawSplit {
            images: (0..n * 4).map(|i| (i % 256) as u8).collect(),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
            shape: (1, 2, 2),
        }
    }

    #[test]
    fn splits_are_deterministic_and_disjoint() {
        let a = Dataset::from_raw(raw(50), raw(5), 10, 7).unwrap();
        let b = Dataset::from_raw(raw(50), raw(5), 10, 7).unwrap();
        assert_eq!(a.val.labels(), b.val.labels());
        assert_eq!(a.train.images, b.train.images);
        assert_eq!((a.train.len(), a.val.len(), a.test.len()), (40, 10, 5));
        // Every example's first pixel is 4*i mod 256, unique for i < 64: train and val are disjoint.
        let firsts = |s: &Split| -> Vec<u32> { s.images.chunks(4).map(|c| c[0] as u32).collect() };
        let (t, v) = (firsts(&a.train), firsts(&a.val));
        assert!(v.iter().all(|x| !t.contains(x)));
        let c = Dataset::from_raw(raw(50), raw(5), 10, 8).unwrap();
        assert_ne!(firsts(&c.val), v, "another seed gives another split");
    }

    #[test]
    fn batches_are_scaled_to_unit_range() {
        let d = Dataset::from_raw(raw(20), raw(3), 5, 0).unwrap();
        let (x, y) = d.test.batch(&[2, 0], &Device::Cpu).unwrap();
        assert_eq!(x.dims(), &[2, 1, 2, 2]);
        let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        // test example 2 holds bytes 8..12, example 0 holds 0..4
        assert_eq!(v[0], 8.0 / 255.0);
        assert_eq!(v[4], 0.0);
        assert_eq!(y.to_vec1::<u32>().unwrap(), vec![2, 0]);
    }

    #[test]
    fn validation_larger_than_train_is_an_error() {
        let err = Dataset::from_raw(raw(5), raw(1), 5, 0).unwrap_err();
        assert!(matches!(err, DataError::ValidationTooLarge { .. }));
    }
}
