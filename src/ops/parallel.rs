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

use crate::ops::instruction_set::with_widest_vectors;
use candle_core::{bail, utils::barrier_pool, Result};
use std::mem::MaybeUninit;
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

/// A vector of `total` values whose `chunk`-sized pieces `fill(scratch, i, piece_i)` writes,
/// pieces in parallel as in `for_each_chunk`, with no zero-fill first. An activation-sized
/// zero-fill costs a pass over memory that the fill then repeats, and at two threads the
/// lines it leaves in one core's cache are fetched by the other (BENCHMARKS.md, "Where the time
/// goes").
///
/// # Safety
/// When `fill` returns `Ok`, it has written every element of the piece it was handed.
pub(crate) unsafe fn filled_chunks<S>(
    total: usize,
    chunk: usize,
    init: impl Fn() -> S + Sync,
    fill: impl Fn(&mut S, usize, &mut [MaybeUninit<f32>]) -> Result<()> + Sync,
) -> Result<Vec<f32>> {
    if chunk == 0 && total > 0 {
        bail!("ops: {total} values in pieces of 0");
    }
    let mut v = Vec::with_capacity(total);
    for_each_chunk(&mut v.spare_capacity_mut()[..total], chunk, init, fill)?;
    // SAFETY: `for_each_chunk` handed every element to `fill` in exactly one piece (the pieces
    // of a nonzero `chunk` cover the slice; with `total` 0 there is nothing to cover), each of
    // which returned Ok and so, by this function's contract, wrote all of it.
    unsafe { v.set_len(total) };
    Ok(v)
}

/// Elements per piece of an elementwise map handed to a thread.
const MAP_PIECE: usize = 1 << 16;

/// `f(a[i], b[i], c[i])` for every `i` below `len`, in parallel; `a`, `b` and `c` hold at least
/// `len` values.
pub(crate) fn map3(
    len: usize,
    a: &[f32],
    b: &[f32],
    c: &[f32],
    f: impl Fn(f32, f32, f32) -> f32 + Sync,
) -> Result<Vec<f32>> {
    if a.len().min(b.len()).min(c.len()) < len {
        bail!(
            "ops: map3 over {len} values of inputs of {}, {} and {}",
            a.len(),
            b.len(),
            c.len()
        );
    }
    let fill = |_: &mut (), p: usize, out: &mut [MaybeUninit<f32>]| {
        let at = p * MAP_PIECE;
        let (a, b, c) = (
            &a[at..][..out.len()],
            &b[at..][..out.len()],
            &c[at..][..out.len()],
        );
        with_widest_vectors(
            #[inline(always)]
            || {
                for (i, o) in out.iter_mut().enumerate() {
                    o.write(f(a[i], b[i], c[i]));
                }
            },
        );
        Ok(())
    };
    // SAFETY: `fill` writes every element of its piece (the loop runs over all of `out`).
    unsafe { filled_chunks(len, MAP_PIECE, || (), fill) }
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
    let parts = chunk_count(n, chunk);
    sum_in_fixed_chunks_with(n, chunk, len, vec![(); parts], init, |s, items, (), sum| {
        add(s, items, sum)
    })
}

/// The chunks of a sum over `n` items in fixed chunks of `chunk` (`chunk > 0`): one per
/// `chunk` items, and one for no items (its sum is zero).
pub(crate) fn chunk_count(n: usize, chunk: usize) -> usize {
    n.div_ceil(chunk).max(1)
}

/// `data` (`n` items of `per` values each) cut into `chunk_count(n, chunk)` consecutive
/// pieces, piece `p` holding items `p·chunk..min((p + 1)·chunk, n)`: one piece per chunk even
/// when `per` is 0 (where `chunks_mut` would panic) or `n` is 0 (one empty piece).
pub(crate) fn split_by_chunks<T>(
    data: &mut [T],
    n: usize,
    chunk: usize,
    per: usize,
) -> Vec<&mut [T]> {
    let mut rest = data;
    (0..chunk_count(n, chunk))
        .map(|p| {
            let items = ((p + 1) * chunk).min(n).saturating_sub(p * chunk);
            let (piece, tail) = std::mem::take(&mut rest).split_at_mut(items * per);
            rest = tail;
            piece
        })
        .collect()
}

/// `sum_in_fixed_chunks` that also hands chunk `i` the piece `pieces[i]` (its part of another
/// output, written beside the sum: `Direct::both_grads`' input gradient). Every chunk is
/// handed to `add` exactly once with its piece, also when `len` is 0; `pieces` must hold one
/// per chunk (`chunk_count`), else nothing runs and an error is returned.
pub(crate) fn sum_in_fixed_chunks_with<S, P: Send>(
    n: usize,
    chunk: usize,
    len: usize,
    pieces: Vec<P>,
    init: impl Fn() -> S + Sync,
    add: impl Fn(&mut S, std::ops::Range<usize>, P, &mut [f32]) -> Result<()> + Sync,
) -> Result<Vec<f32>> {
    let parts = chunk_count(n, chunk);
    if pieces.len() != parts {
        bail!(
            "ops: {} pieces for a sum in {parts} chunks of {chunk}",
            pieces.len()
        );
    }
    let mut partials = vec![0.0; parts * len];
    let sums = split_by_chunks(&mut partials, parts, 1, len);
    let work = sums.into_iter().zip(pieces).collect();
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

    /// A sum with nothing to sum (`len` 0: a convolution without output channels has an
    /// empty weight gradient) still hands every chunk its piece once, with its items: a
    /// caller that writes another output through the pieces relies on it.
    #[test]
    fn an_empty_sum_still_hands_every_chunk_its_piece() -> Result<()> {
        let (n, chunk) = (19, 8);
        let mut seen = vec![Vec::new(); chunk_count(n, chunk)];
        let pieces: Vec<(usize, &mut Vec<usize>)> = seen.iter_mut().enumerate().collect();
        let sum = sum_in_fixed_chunks_with(
            n,
            chunk,
            0,
            pieces,
            || (),
            |_, items, (p, out), s| {
                assert!(s.is_empty(), "chunk {p} got {} sums", s.len());
                out.extend(items);
                Ok(())
            },
        )?;
        assert!(sum.is_empty());
        let want: Vec<Vec<usize>> = vec![(0..8).collect(), (8..16).collect(), (16..19).collect()];
        assert_eq!(seen, want);
        Ok(())
    }

    #[test]
    fn a_sum_refuses_pieces_that_do_not_match_its_chunks() {
        let r = sum_in_fixed_chunks_with(19, 8, 4, vec![(); 2], || (), |_, _, (), _| Ok(()));
        assert!(r.is_err(), "2 pieces for 3 chunks ran");
    }

    /// One piece per chunk, each with its items' values, also for items of no values (where
    /// `chunks_mut(0)` would panic) and for no items at all (one empty piece).
    #[test]
    fn split_by_chunks_gives_one_piece_per_chunk() {
        let mut data: Vec<usize> = (0..38).collect();
        let lens: Vec<usize> = split_by_chunks(&mut data, 19, 8, 2)
            .iter()
            .map(|p| p.len())
            .collect();
        assert_eq!(lens, [16, 16, 6]);
        let empty: &mut [usize] = &mut [];
        assert_eq!(split_by_chunks(empty, 19, 8, 0).len(), 3);
        let empty: &mut [usize] = &mut [];
        assert_eq!(split_by_chunks(empty, 0, 8, 5).len(), 1);
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
