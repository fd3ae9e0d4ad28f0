//! External data against broken and hostile copies of lenet-dynamo.onnx (PyTorch's default
//! export, its weights in lenet-dynamo.onnx.data): a location outside the model's directory
//! (`..`, absolute, through a symbolic link), a range past the file, a length the dims do not
//! need, a missing file and a total over the cap each give an error naming the tensor, the
//! field and the value — never a panic, a read elsewhere or an allocation no bytes back.

use std::path::{Path, PathBuf};

use super::proto::{ModelProto, StringStringEntryProto, TensorProto};
use super::tests::fixture;
use super::{import, import_bytes, Imported, OnnxError};
use prost::Message;

const NAME: &str = "lenet-dynamo";

/// lenet-dynamo.onnx and its data copied into `dir`; the model's path.
fn copy_into(dir: &Path) -> PathBuf {
    for ext in ["onnx", "onnx.data"] {
        let file = format!("{NAME}.{ext}");
        std::fs::copy(fixture(&file), dir.join(&file)).unwrap();
    }
    dir.join(format!("{NAME}.onnx"))
}

/// The model at `path` with `edit` applied to its initializer fc1.weight (stored externally).
fn edit_fc1(path: &Path, edit: impl FnOnce(&mut TensorProto)) {
    let mut m = ModelProto::decode(std::fs::read(path).unwrap().as_slice()).unwrap();
    let g = m.graph.as_mut().unwrap();
    let t = (g.initializer.iter_mut())
        .find(|t| t.name() == "fc1.weight")
        .unwrap();
    edit(t);
    std::fs::write(path, m.encode_to_vec()).unwrap();
}

/// Sets external data `key` of `t` to `value` (adding the key if absent).
fn set(t: &mut TensorProto, key: &str, value: &str) {
    match t.external_data.iter_mut().find(|e| e.key() == key) {
        Some(e) => e.value = Some(value.into()),
        None => t.external_data.push(StringStringEntryProto {
            key: Some(key.into()),
            value: Some(value.into()),
        }),
    }
}

/// The error importing the model at `path` gives, printed; fails the test on success.
fn refused_at(path: &Path) -> String {
    let result: Result<Imported, OnnxError> = import(path);
    let e = result.expect_err("a broken model imported").to_string();
    eprintln!("{e}");
    e
}

/// A fresh copy with fc1.weight's external data key set to `value`: the import's error.
fn with_key(key: &str, value: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_into(dir.path());
    edit_fc1(&path, |t| set(t, key, value));
    refused_at(&path)
}

#[test]
fn the_copied_fixture_imports() {
    let dir = tempfile::tempdir().unwrap();
    assert!(import(&copy_into(dir.path())).is_ok());
}

#[test]
fn a_location_with_dot_dot_is_refused() {
    // The file exists there: only the rule stops the read.
    let outer = tempfile::tempdir().unwrap();
    let inner = outer.path().join("model");
    std::fs::create_dir(&inner).unwrap();
    let path = copy_into(&inner);
    std::fs::copy(
        fixture(&format!("{NAME}.onnx.data")),
        outer.path().join("w.data"),
    )
    .unwrap();
    edit_fc1(&path, |t| set(t, "location", "../w.data"));
    let e = refused_at(&path);
    assert!(
        e.contains("tensor fc1.weight")
            && e.contains("location = \"../w.data\"")
            && e.contains(".."),
        "{e}"
    );
}

#[test]
fn an_absolute_location_is_refused() {
    let data = fixture(&format!("{NAME}.onnx.data"));
    let e = with_key("location", &data.display().to_string());
    assert!(e.contains("fc1.weight") && e.contains("relative"), "{e}");
}

#[cfg(unix)]
#[test]
fn a_location_linking_out_of_the_directory_is_refused() {
    let outer = tempfile::tempdir().unwrap();
    let inner = outer.path().join("model");
    std::fs::create_dir(&inner).unwrap();
    let path = copy_into(&inner);
    std::fs::copy(
        fixture(&format!("{NAME}.onnx.data")),
        outer.path().join("w.data"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outer.path().join("w.data"), inner.join("link.data")).unwrap();
    edit_fc1(&path, |t| set(t, "location", "link.data"));
    let e = refused_at(&path);
    assert!(
        e.contains("fc1.weight") && e.contains("outside the model's directory"),
        "{e}"
    );
}

#[test]
fn a_missing_data_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_into(dir.path());
    std::fs::remove_file(dir.path().join(format!("{NAME}.onnx.data"))).unwrap();
    let e = refused_at(&path);
    assert!(
        e.contains("conv1.weight")
            && e.contains("lenet-dynamo.onnx.data")
            && e.contains("cannot read"),
        "{e}"
    );
}

#[test]
fn an_offset_past_the_file_is_refused() {
    let e = with_key("offset", "1000000");
    assert!(
        e.contains("offset = \"1000000\"") && e.contains("past the end"),
        "{e}"
    );
}

#[test]
fn a_range_past_the_file_is_refused() {
    // fc1.weight starts at 10200; 2^63 bytes from there overflow u64 too.
    for length in ["100000", "9223372036854775807"] {
        let e = with_key("length", length);
        assert!(e.contains("length") && e.contains("past the end"), "{e}");
    }
}

#[test]
fn a_length_the_dims_do_not_need_is_refused() {
    // fc1.weight is (32, 256) floats: 32768 bytes.
    let e = with_key("length", "32764");
    assert!(
        e.contains("fc1.weight") && e.contains("length = \"32764\"") && e.contains("need 32768"),
        "{e}"
    );
}

#[test]
fn a_negative_or_textual_offset_is_refused() {
    for offset in ["-1", "ten", ""] {
        let e = with_key("offset", offset);
        assert!(e.contains("offset") && e.contains("whole number"), "{e}");
    }
}

#[test]
fn an_unknown_key_or_no_location_is_refused() {
    let e = with_key("basepath", "/etc");
    assert!(e.contains("basepath") && e.contains("not a key"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let path = copy_into(dir.path());
    edit_fc1(&path, |t| t.external_data.retain(|e| e.key() != "location"));
    let e = refused_at(&path);
    assert!(e.contains("location") && e.contains("missing"), "{e}");
}

/// The cap is checked before a byte is read: a sparse data file 8 bytes over it is refused
/// without allocating its 2 GiB.
#[test]
fn external_data_over_the_cap_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_into(dir.path());
    let big = super::external::MAX_EXTERNAL_BYTES + 8;
    let file = std::fs::File::create(dir.path().join("big.data")).unwrap();
    file.set_len(big).unwrap();
    edit_fc1(&path, |t| {
        t.dims = vec![(big / 4) as i64];
        set(t, "location", "big.data");
        set(t, "offset", "0");
        set(t, "length", &big.to_string());
    });
    let e = refused_at(&path);
    assert!(
        e.contains("fc1.weight") && e.contains("more than 2147483648"),
        "{e}"
    );
}

/// Bytes alone have no directory to read external data from.
#[test]
fn external_data_without_a_directory_is_refused() {
    let bytes = std::fs::read(fixture(&format!("{NAME}.onnx"))).unwrap();
    let result: Result<Imported, OnnxError> = import_bytes(&bytes, NAME, None);
    let e = result.expect_err("imported without its data").to_string();
    eprintln!("{e}");
    assert!(
        e.contains("conv1.weight") && e.contains("external data"),
        "{e}"
    );
}
