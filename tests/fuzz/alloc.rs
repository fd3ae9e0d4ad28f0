//! The fuzz binary's global allocator: the system allocator, plus a per-thread record of the
//! largest single allocation made while a case runs (`measure`). A request above `HARD_CAP`
//! during a case is refused with a message naming the harness, so a parser that believes a
//! header's "2^32 images" aborts here with a name instead of exhausting the machine.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Larger than any bound a harness asserts; a request above it while a case runs is a bug that
/// must not get the memory.
pub const HARD_CAP: usize = 1 << 30;

pub struct Tracking;

thread_local! {
    /// The harness whose case runs on this thread, if any.
    static ACTIVE: Cell<Option<&'static str>> = const { Cell::new(None) };
    /// The largest single allocation since the case began.
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

/// Records `size`; false when the request must be refused.
fn note(size: usize) -> bool {
    let Ok(Some(name)) = ACTIVE.try_with(Cell::get) else {
        return true;
    };
    let _ = PEAK.try_with(|p| p.set(p.get().max(size)));
    if size > HARD_CAP {
        // No allocation here: write straight to stderr, then refuse (the caller aborts).
        for part in [
            "\nfuzz: harness `",
            name,
            "` asked for one allocation above 1 GiB; refusing it\n",
        ] {
            // SAFETY: writing a valid byte slice to the stderr descriptor.
            unsafe { libc::write(2, part.as_ptr().cast(), part.len()) };
        }
        return false;
    }
    true
}

// SAFETY: every call is forwarded to `System` unchanged, except that an oversized request during
// a case returns null, which `GlobalAlloc` allows.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note(new_size) {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

/// Resets the record when a case ends, even by a panic.
struct Case;

impl Drop for Case {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(None));
    }
}

/// Runs `f` as one case of harness `name`; returns the largest single allocation it made on
/// this thread.
pub fn measure(name: &'static str, f: impl FnOnce()) -> usize {
    PEAK.with(|p| p.set(0));
    ACTIVE.with(|a| a.set(Some(name)));
    let case = Case;
    f();
    drop(case);
    PEAK.with(Cell::get)
}
