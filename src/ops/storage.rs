//! Borrowing the f32 data of CPU tensors and storages without copying.

use candle_core::{bail, CpuStorage, Layout, Result, Storage, Tensor};

/// The part of `storage` that `layout` addresses; errors unless it is contiguous f32.
///
/// `CpuStorage::as_slice` returns the whole buffer, which can be larger than the tensor (a
/// narrowed view shares its parent's buffer), so it is cut with the layout's offsets.
pub(crate) fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let all = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&all[start..end]),
        None => bail!(
            "ops: expected a contiguous tensor, got strides {:?}",
            layout.stride()
        ),
    }
}

/// Runs `f` on the f32 data of `t` (made contiguous first; a no-op when it already is).
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => f(contiguous_f32(cpu, layout)?),
        _ => bail!("ops: only CPU tensors are supported"),
    }
}
