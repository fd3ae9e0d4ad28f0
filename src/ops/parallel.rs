//! Data-parallel loops on candle's own CPU worker pool, and sums over a batch whose
//! floating-point order does not depend on the thread count (fixed chunks, added in order).
//!
//! Why candle's pool and not rayon: candle 0.11 runs its large elementwise ops (the gradient
//! adds of every backward pass) on a persistent "barrier pool" whose workers spin for a while
//! after each op; rayon workers of our own would fight them for the cores. And why examples in
//! parallel with single-threaded gemms rather than one gemm on several threads: gemm does not
//! split matrices as small as one example's. (BENCHMARKS.md has the measurements.)
//!
//! The pool's size follows `CANDLE_NUM_THREADS`, else `RAYON_NUM_THREADS`, else the physical
//! cores. Spinning pools degrade when other processes load the cores; `CANDLE_NUM_THREADS=1`
//! makes everything run inline.

use candle_core::{utils::barrier_pool, Result};
use std::sync::Mutex;

/// Calls `f(scratch, i, piece_i)` for every piece, pieces spread over candle's pool. `init`
/// makes one scratch value per grab of consecutive pieces, so buffers are reused across
/// pieces. The first error stops the remaining pieces of that grab and is returned.
pub(crate) fn for_each_piece<P, S>(
    pieces: Vec<P>,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize, P) -> Result<()> + Sync,
) -> Result<()>
where
    P: Send,
{
    // The pool takes a shared closure; a mutex per piece hands each piece out by value, safely.
    // Every piece is taken exactly once, by one worker, so the locks never contend.
    let pieces: Vec<Mutex<Option<P>>> = pieces.into_iter().map(|p| Mutex::new(Some(p))).collect();
    let error = Mutex::new(None);
    barrier_pool().execute_chunked(pieces.len(), |range| {
        let mut scratch = init();
        for i in range {
            let piece = pieces[i].lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(Err(e)) = piece.map(|p| f(&mut scratch, i, p)) {
                *error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                return;
            }
        }
    });
    match error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `for_each_piece` over the `chunk`-sized pieces of `data`.
pub(crate) fn for_each_chunk<T: Send, S>(
    data: &mut [T],
    chunk: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize, &mut [T]) -> Result<()> + Sync,
) -> Result<()> {
    if chunk == 0 {
        return Ok(());
    }
    for_each_piece(data.chunks_mut(chunk).collect(), init, f)
}

/// A sum over `n` items (each adding into `len` values) whose floating-point order never
/// depends on the thread count: the items are cut into fixed chunks of `chunk`, `add(scratch,
/// items, sum)` builds each chunk's sum in its own zeroed buffer (chunks in parallel, no
/// locking), and the chunk sums are then added in chunk order.
pub(crate) fn sum_in_fixed_chunks<S>(
    n: usize,
    chunk: usize,
    len: usize,
    init: impl Fn() -> S + Sync,
    add: impl Fn(&mut S, std::ops::Range<usize>, &mut [f32]) -> Result<()> + Sync,
) -> Result<Vec<f32>> {
    let parts = n.div_ceil(chunk).max(1);
    sum_in_fixed_chunks_with(n, chunk, len, vec![(); parts], init, |s, items, (), sum| {
        add(s, items, sum)
    })
}

/// `sum_in_fixed_chunks` that also hands chunk `i` the piece `pieces[i]` (its part of another
/// output, written beside the sum: `Direct::both_grads`' input gradient).
pub(crate) fn sum_in_fixed_chunks_with<S, P: Send>(
    n: usize,
    chunk: usize,
    len: usize,
    pieces: Vec<P>,
    init: impl Fn() -> S + Sync,
    add: impl Fn(&mut S, std::ops::Range<usize>, P, &mut [f32]) -> Result<()> + Sync,
) -> Result<Vec<f32>> {
    let parts = n.div_ceil(chunk).max(1);
    let mut partials = vec![0.0; parts * len];
    let work = partials.chunks_mut(len.max(1)).zip(pieces).collect();
    for_each_piece(work, init, |s, part, (sum, piece)| {
        add(s, part * chunk..((part + 1) * chunk).min(n), piece, sum)
    })?;
    Ok(add_in_order(&partials, len))
}

/// The sum of the consecutive `len`-value parts of `partials`, added in order.
fn add_in_order(partials: &[f32], len: usize) -> Vec<f32> {
    let mut sums = partials.chunks_exact(len.max(1));
    let mut total = sums.next().map(<[f32]>::to_vec).unwrap_or_default();
    for p in sums {
        total.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    total
}

/// The threads the ops run on: candle's pool workers and the calling thread. Recorded in a
/// run's config.json; results do not depend on it (reductions are cut into fixed chunks).
pub fn threads() -> usize {
    barrier_pool().n_workers() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_is_visited_once_with_its_index() -> Result<()> {
        let mut data = vec![0usize; 1000];
        for_each_chunk(
            &mut data,
            7,
            || (),
            |_, i, c| {
                c.iter_mut().for_each(|v| *v += i + 1);
                Ok(())
            },
        )?;
        for (j, v) in data.iter().enumerate() {
            assert_eq!(*v, j / 7 + 1, "element {j}");
        }
        Ok(())
    }

    #[test]
    fn an_error_in_a_chunk_is_returned() {
        let mut data = vec![0f32; 100];
        let r = for_each_chunk(
            &mut data,
            10,
            || (),
            |_, i, _| match i {
                5 => Err(candle_core::Error::Msg("chunk 5".into())),
                _ => Ok(()),
            },
        );
        assert!(r.is_err());
    }
}
