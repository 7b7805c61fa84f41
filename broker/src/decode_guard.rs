//! Keeps hostile element counts from aborting the process while a request is decoded.
//!
//! Why: kafka-protocol reserves a Vec's capacity from the element count a request declares,
//! before reading any element. A 4-byte count can thus ask for hundreds of gigabytes; the
//! system allocator refuses and Rust aborts the whole broker. While a request is decoded on
//! this thread, allocations of at least `THRESHOLD` bytes are served from an anonymous mapping
//! made with MAP_NORESERVE: the kernel commits pages only when touched, the decoder fails at
//! the first missing element and frees the mapping, and memory stays flat. Elements need at
//! least one byte each, so what a well-formed request really fills is bounded by its frame.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Allocations this large, made while decoding, go to lazily committed mappings.
const THRESHOLD: usize = 64 << 20;
/// Live guarded mappings tracked at once (a slot per mapping; no allocation needed).
const SLOTS: usize = 256;

static MAPPED: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

thread_local! {
    static DECODING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (a decode) with the guard on for this thread.
pub fn with_guard<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            DECODING.with(|d| d.set(self.0));
        }
    }
    let _reset = Reset(DECODING.with(|d| d.replace(true)));
    f()
}

/// The process allocator: the system allocator plus the decode guard.
pub struct GuardedAllocator;

fn guarded(layout: &Layout) -> bool {
    layout.size() >= THRESHOLD
        && layout.align() <= 4096
        && DECODING.try_with(|d| d.get()).unwrap_or(false)
}

unsafe fn map(size: usize) -> *mut u8 {
    let ptr = libc::mmap(
        std::ptr::null_mut(),
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        -1,
        0,
    );
    if ptr == libc::MAP_FAILED {
        return std::ptr::null_mut();
    }
    for slot in &MAPPED {
        if slot
            .compare_exchange(0, ptr as usize, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return ptr.cast();
        }
    }
    libc::munmap(ptr, size);
    std::ptr::null_mut()
}

/// Unmaps `ptr` if it is a guarded mapping; false if it came from the system allocator.
unsafe fn unmap(ptr: *mut u8, size: usize) -> bool {
    if size < THRESHOLD {
        return false;
    }
    for slot in &MAPPED {
        if slot
            .compare_exchange(ptr as usize, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            libc::munmap(ptr.cast(), size);
            return true;
        }
    }
    false
}

unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if guarded(&layout) {
            let p = map(layout.size());
            if !p.is_null() {
                return p;
            }
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if guarded(&layout) {
            // Fresh anonymous mappings are zeroed by the kernel.
            let p = map(layout.size());
            if !p.is_null() {
                return p;
            }
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !unmap(ptr, layout.size()) {
            System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let from_map = layout.size() >= THRESHOLD
            && MAPPED
                .iter()
                .any(|s| s.load(Ordering::Acquire) == ptr as usize);
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        if !from_map && !guarded(&new_layout) {
            return System.realloc(ptr, layout, new_size);
        }
        let new = self.alloc(new_layout);
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_reservations_while_decoding_do_not_commit_memory() {
        // 64 GiB of capacity: the system allocator would refuse it and abort.
        let v: Vec<u64> = with_guard(|| Vec::with_capacity(8 << 30));
        assert!(v.capacity() >= 8 << 30);
        drop(v);
        assert!(MAPPED.iter().all(|s| s.load(Ordering::Acquire) == 0));
    }
}
