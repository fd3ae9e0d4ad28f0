//! External tensor data: the weights an exporter writes to a file beside the model
//! (PyTorch's default exporter writes `NAME.onnx.data` next to `NAME.onnx`), read into the
//! tensors that point at them before the graph is converted.
//!
//! A tensor stored this way has `data_location = EXTERNAL` and the keys `location` (a path
//! relative to the model's directory), `offset` and `length` (bytes; by default 0 and the rest
//! of the file) and `checksum` (a SHA-1 of the file, which nothing here verifies: the ranges
//! and lengths below are). A location must stay inside the model's directory — relative, every
//! part a plain name, and not resolving elsewhere through a symbolic link — the range must lie
//! inside the file, the length must be what the tensor's dims and element type need, and all
//! tensors together may read at most `MAX_EXTERNAL_BYTES`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use super::proto::{tensor_proto, GraphProto, TensorProto};
use super::tensor::{element_count, element_size};
use super::OnnxError;

/// The most bytes all of a model's external tensors may read together: 2 GiB, what a model with
/// its weights inside can hold at all (protobuf's limit), far beyond the networks bitsearch
/// trains and searches on the CPU. Each tensor's bytes are backed by its file's own length; the
/// cap bounds what many tensors naming one range could make the importer allocate.
pub(super) const MAX_EXTERNAL_BYTES: u64 = 1 << 31;

/// Reads the data of every tensor of `graph` stored outside the model (initializers and
/// Constant nodes' values) from beside it in `dir`, so each holds its bytes in `raw_data`.
pub(super) fn load(graph: &mut GraphProto, dir: &Path) -> Result<(), OnnxError> {
    let constants = (graph.node.iter_mut())
        .flat_map(|n| n.attribute.iter_mut())
        .filter_map(|a| a.t.as_mut());
    let mut reader = Reader {
        dir: dir.canonicalize().map_err(|source| OnnxError::Io {
            path: dir.to_path_buf(),
            source,
        })?,
        read: 0,
    };
    for t in graph.initializer.iter_mut().chain(constants) {
        if t.data_location() == tensor_proto::DataLocation::External {
            reader.fill(t)?;
        }
    }
    Ok(())
}

/// The model's directory (canonical) and the bytes read so far.
struct Reader {
    dir: PathBuf,
    read: u64,
}

/// Where one tensor's bytes are: its file and range.
struct Place {
    location: String,
    offset: u64,
    length: Option<u64>,
}

impl Reader {
    /// Reads `t`'s bytes into its `raw_data`; it is then an ordinary tensor.
    fn fill(&mut self, t: &mut TensorProto) -> Result<(), OnnxError> {
        let name = t.name().to_string();
        let bad = |field: &str, value: &str, rule: String| OnnxError::External {
            tensor: name.clone(),
            field: field.to_string(),
            value: value.to_string(),
            rule,
        };
        let place = place(t, &bad)?;
        let loc = place.location.as_str();
        let path = self.resolve(loc, &bad)?;
        let mut file =
            File::open(&path).map_err(|e| bad("location", loc, format!("cannot read: {e}")))?;
        let meta =
            (file.metadata()).map_err(|e| bad("location", loc, format!("cannot read: {e}")))?;
        if !meta.is_file() {
            return Err(bad("location", loc, "is not a regular file".into()));
        }
        let size = meta.len();
        if place.offset > size {
            let rule = format!("past the end of {loc}, which holds {size} bytes");
            return Err(bad("offset", &place.offset.to_string(), rule));
        }
        let length = place.length.unwrap_or(size - place.offset);
        if length > size - place.offset {
            let rule = format!(
                "bytes {} to {} are past the end of {loc}, which holds {size} bytes",
                place.offset,
                place.offset.saturating_add(length)
            );
            return Err(bad("length", &length.to_string(), rule));
        }
        self.check_length(t, length, &bad)?;
        if self.read.saturating_add(length) > MAX_EXTERNAL_BYTES {
            let rule = format!(
                "the model's external tensors read more than {MAX_EXTERNAL_BYTES} bytes \
                 together ({} before this one)",
                self.read
            );
            return Err(bad("length", &length.to_string(), rule));
        }
        self.read += length;
        // `length` is at most the file's size past `offset`: real bytes back the allocation.
        let mut bytes = vec![0; length as usize];
        (file.seek(SeekFrom::Start(place.offset)))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| bad("location", loc, format!("cannot read: {e}")))?;
        t.raw_data = Some(bytes);
        t.data_location = Some(tensor_proto::DataLocation::Default as i32);
        t.external_data.clear();
        Ok(())
    }

    /// The file a location names, which must lie inside the model's directory.
    fn resolve(
        &self,
        loc: &str,
        bad: &impl Fn(&str, &str, String) -> OnnxError,
    ) -> Result<PathBuf, OnnxError> {
        let rel = Path::new(loc);
        if loc.is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            let rule = "must be a path inside the model's directory: relative, without `..`, \
                        `.` or a leading `/`";
            return Err(bad("location", loc, rule.into()));
        }
        let path = (self.dir.join(rel).canonicalize())
            .map_err(|e| bad("location", loc, format!("cannot read: {e}")))?;
        // A symbolic link inside the directory may still point out of it.
        if !path.starts_with(&self.dir) {
            let rule = format!(
                "resolves to {}, outside the model's directory {} (a symbolic link?)",
                path.display(),
                self.dir.display()
            );
            return Err(bad("location", loc, rule));
        }
        Ok(path)
    }

    /// `length` must be the bytes `t`'s dims and element type need.
    fn check_length(
        &self,
        t: &TensorProto,
        length: u64,
        bad: &impl Fn(&str, &str, String) -> OnnxError,
    ) -> Result<(), OnnxError> {
        let Some(size) = element_size(t.data_type()) else {
            let rule = format!(
                "element type {} is not supported (float32 weights, int64 shapes)",
                t.data_type()
            );
            return Err(bad("data_type", &t.data_type().to_string(), rule));
        };
        let dims = (t.dims.iter())
            .map(|&d| usize::try_from(d).map_err(|_| d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|d| {
                bad(
                    "dims",
                    &format!("{:?}", t.dims),
                    format!("negative dim {d}"),
                )
            })?;
        let need = (element_count(&dims, usize::MAX).ok())
            .and_then(|count| (count as u64).checked_mul(size as u64));
        if need != Some(length) {
            let need = need.map_or("more than 2^64".into(), |n| n.to_string());
            let rule = format!("dims {dims:?} of {size}-byte elements need {need} bytes");
            return Err(bad("length", &length.to_string(), rule));
        }
        Ok(())
    }
}

/// The keys of `t`'s external data.
fn place(
    t: &TensorProto,
    bad: &impl Fn(&str, &str, String) -> OnnxError,
) -> Result<Place, OnnxError> {
    let mut place = Place {
        location: String::new(),
        offset: 0,
        length: None,
    };
    let mut located = false;
    for entry in &t.external_data {
        let value = entry.value();
        let number = |key: &str| {
            value.parse::<u64>().map_err(|_| {
                bad(
                    key,
                    value,
                    "must be a whole number of bytes, 0 or more".into(),
                )
            })
        };
        match entry.key() {
            "location" => {
                place.location = value.to_string();
                located = true;
            }
            "offset" => place.offset = number("offset")?,
            "length" => place.length = Some(number("length")?),
            "checksum" => {}
            key => {
                let rule = "not a key of external data (location, offset, length, checksum)";
                return Err(bad(key, value, rule.into()));
            }
        }
    }
    if !located {
        return Err(bad("location", "", "is missing (ONNX requires it)".into()));
    }
    Ok(place)
}
