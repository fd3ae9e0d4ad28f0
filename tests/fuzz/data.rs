//! Harnesses of the dataset readers: IDX files (raw and gzip, alone and as an images/labels
//! directory turned into a `Dataset`) and CIFAR-10 binary batches.

use std::io::Write;
use std::path::Path;

use bitsearch::data::{encode_idx, parse_cifar, parse_idx, read_cifar_dir, DataSource, Dataset};

use super::engine::fuzz;
use super::mutate::{input, Input};
use super::shown;

/// Three 4x4 images with labels: small, so a mutation often lands in the 16-byte header.
fn idx_seeds() -> [Vec<u8>; 3] {
    let pixels: Vec<u8> = (0..48).map(|i| (i * 5) as u8).collect();
    let images = encode_idx(&[3, 4, 4], &pixels);
    let labels = encode_idx(&[3], &[7, 0, 9]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&images).expect("gzip into memory");
    [images, labels, gz.finish().expect("gzip into memory")]
}

/// Writes the train and test pairs of an `idx:DIR` directory.
fn write_idx_dir(dir: &Path, images: &[u8], labels: &[u8]) {
    for prefix in ["train", "t10k"] {
        let write = |stem: &str, bytes: &[u8]| {
            std::fs::write(dir.join(format!("{prefix}-{stem}-ubyte")), bytes)
                .expect("write into the temp dir");
        };
        write("images-idx3", images);
        write("labels-idx1", labels);
    }
}

/// Loads `idx:DIR` and builds the dataset the search would: one validation example carved off.
fn load_dataset(source: &DataSource) -> bool {
    let Some((train, test)) = shown(source.load()) else {
        return false;
    };
    if let Some(data) = shown(Dataset::from_raw(train, test, 1, 0)) {
        let _ = data.input_norm();
        let _ = data.truncate(2, 1, 2);
    }
    true
}

/// parse_idx on any bytes; and an idx:DIR whose images or labels file is the input.
pub fn idx() {
    let seeds = idx_seeds();
    let dir = tempfile::tempdir().expect("temp dir");
    let source = DataSource::IdxDir(dir.path().to_path_buf());
    write_idx_dir(dir.path(), &seeds[0], &seeds[1]);
    source.load().expect("the IDX seeds form a valid directory");
    let strategy = (0..seeds.len(), input());
    fuzz("idx", 2, strategy, |(which, inp): &(usize, Input)| {
        let bytes = inp.apply(&seeds[*which]);
        let _ = shown(parse_idx(&bytes, "fuzz.idx"));
        match which {
            1 => write_idx_dir(dir.path(), &seeds[0], &bytes),
            _ => write_idx_dir(dir.path(), &bytes, &seeds[1]),
        }
        load_dataset(&source)
    });
}

fn cifar_seed() -> Vec<u8> {
    (0..2)
        .flat_map(|r: u8| {
            std::iter::once(r * 4).chain((0..3072).map(move |i| (i as u8).wrapping_mul(r + 1)))
        })
        .collect()
}

/// parse_cifar on any bytes; and a cifar10:DIR of six copies of the input.
pub fn cifar() {
    let seed = cifar_seed();
    let dir = tempfile::tempdir().expect("temp dir");
    parse_cifar(&seed, "seed").expect("the CIFAR seed is valid");
    let names = (1..=5)
        .map(|k| format!("data_batch_{k}.bin"))
        .chain(["test_batch.bin".to_string()]);
    let names: Vec<String> = names.collect();
    fuzz("cifar", 2, input(), |inp: &Input| {
        let bytes = inp.apply(&seed);
        let _ = shown(parse_cifar(&bytes, "fuzz.bin"));
        for name in &names {
            std::fs::write(dir.path().join(name), &bytes).expect("write into the temp dir");
        }
        shown(read_cifar_dir(dir.path())).is_some()
    });
}

/// A regression guard: a 16-byte IDX header that claims 2^32 - 1 images of 28x28
/// fails at once, without allocating for them.
pub fn huge_idx_header_fails_fast() {
    let mut header = vec![0, 0, 8, 3];
    for d in [u32::MAX, 28, 28] {
        header.extend_from_slice(&d.to_be_bytes());
    }
    assert_eq!(header.len(), 16);
    let peak = super::alloc::measure("huge-idx-header", || {
        let err = parse_idx(&header, "huge").expect_err("a header without its payload");
        assert!(err.to_string().contains("truncated payload"), "{err}");
    });
    assert!(
        peak < 1 << 20,
        "parse_idx allocated {peak} bytes for a 16-byte file"
    );
}
