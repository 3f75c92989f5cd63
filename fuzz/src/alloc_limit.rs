//! A global allocator that watches what one input makes the fuzzing thread allocate: the
//! largest single request while armed. The engine arms it around each run and reports an input
//! whose single allocation exceeds its limit (a decoder trusting a length from the wire).
//!
//! This is the crate's one `unsafe`: `GlobalAlloc` is an unsafe trait. Every method forwards to
//! the system allocator unchanged; the only addition is an atomic maximum.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub struct CountingAlloc;

static PEAK: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Const-initialised and without destructor: reading it never allocates.
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn note(size: usize) {
    if ARMED.with(Cell::get) {
        PEAK.fetch_max(size, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; `note` neither allocates nor unwinds.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Starts watching this thread's allocations, from a peak of zero.
pub fn arm() {
    PEAK.store(0, Ordering::Relaxed);
    ARMED.with(|a| a.set(true));
}

/// Stops watching and returns the largest single allocation since [`arm`].
pub fn disarm() -> usize {
    ARMED.with(|a| a.set(false));
    PEAK.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_the_largest_allocation_while_armed() {
        arm();
        let big = vec![0u8; 3 << 20];
        let peak = disarm();
        drop(big);
        assert!(peak >= 3 << 20, "{peak}");
    }
}
