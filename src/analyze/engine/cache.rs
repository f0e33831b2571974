//! Hints to the processor's cache: bytes that will be wanted soon.
//!
//! The analysis reads a capture once, and much of its time goes to waiting for bytes to come
//! from memory the first time: a record's headers, a packet's payload, a stream's counting
//! table that was last touched hundreds of streams ago. Asking for them a little ahead lets
//! that wait overlap with other work. These are hints only: they never change a result, and
//! where the processor has no such instruction (or it is not x86-64) they do nothing.

/// Ask for the first bytes of `data` (up to 256) to be brought into the cache.
pub fn prefetch(data: &[u8]) {
    lines::<NEAR>(data.as_ptr(), data.len().min(256));
}

/// Ask for all of `value` (a table, say) to be brought into the cache.
pub fn prefetch_value<T>(value: &T) {
    lines::<NEAR>(std::ptr::from_ref(value).cast(), size_of::<T>());
}

/// Ask for all of `data` to be brought into the second-level cache: bytes wanted after the
/// ones being worked on now, which the first-level cache has no room for yet.
pub fn prefetch_all(data: &[u8]) {
    lines::<FAR>(data.as_ptr(), data.len());
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{_MM_HINT_T0 as NEAR, _MM_HINT_T1 as FAR};
#[cfg(not(target_arch = "x86_64"))]
const NEAR: i32 = 0;
#[cfg(not(target_arch = "x86_64"))]
const FAR: i32 = 0;

/// Prefetch every cache line holding one of the `len` bytes from `start` (into the first-level
/// cache for `NEAR`, the second for `FAR`).
#[cfg(target_arch = "x86_64")]
fn lines<const HINT: i32>(start: *const u8, len: usize) {
    // From the line holding the first byte to the one holding the last.
    let skip = start as usize % 64;
    let first = start.wrapping_sub(skip);
    for offset in (0..skip + len).step_by(64) {
        // SAFETY: a prefetch never faults and never reads into the program: any address is
        // allowed.
        unsafe { std::arch::x86_64::_mm_prefetch::<HINT>(first.wrapping_add(offset).cast()) };
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn lines<const HINT: i32>(_: *const u8, _: usize) {}
