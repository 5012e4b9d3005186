//! Measures the index's heap use per key and per revision with a counting allocator.
//!
//! `cargo run --release -p cairn-index --example mem [keys]`
//!
//! Reported figures are bytes requested from the allocator (malloc adds its own per-block
//! overhead, typically 8-16 bytes, on top) and live allocations per key.

use std::sync::atomic::Ordering::Relaxed;

use cairn_index::{Index, Revision};

mod counting {
    #![allow(unsafe_code)]
    //! A global allocator that forwards to the system allocator and counts live bytes.

    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::AtomicIsize;
    use std::sync::atomic::Ordering::Relaxed;

    pub static BYTES: AtomicIsize = AtomicIsize::new(0);
    pub static BLOCKS: AtomicIsize = AtomicIsize::new(0);

    pub struct Counting;

    // SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
    // `System`'s guarantees hold; the counters are plain atomics.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            BYTES.fetch_add(layout.size() as isize, Relaxed);
            BLOCKS.fetch_add(1, Relaxed);
            // SAFETY: same contract as our caller's.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            BYTES.fetch_sub(layout.size() as isize, Relaxed);
            BLOCKS.fetch_sub(1, Relaxed);
            // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            BYTES.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
            // SAFETY: `ptr` was allocated by `System` with `layout`; same contract as ours.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

fn live() -> (isize, isize) {
    (
        counting::BYTES.load(Relaxed),
        counting::BLOCKS.load(Relaxed),
    )
}

/// A Kubernetes-like key of about 40 bytes.
fn key(i: usize) -> Vec<u8> {
    format!("/registry/pods/namespace-{:03}/pod-{:08}", i % 100, i).into_bytes()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let key_len = key(0).len();
    let keys: Vec<Vec<u8>> = (0..n).map(key).collect();
    let index = Index::new();
    let mut rev = 0i64;
    let mut next = || {
        rev += 1;
        Revision::new(rev, 0)
    };

    let (b0, a0) = live();
    for k in &keys {
        index.put(k, next()).unwrap();
    }
    let (b1, a1) = live();
    let per_key = (b1 - b0) as f64 / n as f64;
    println!("keys: {n}, key length {key_len} B");
    println!(
        "1 revision per key: {per_key:.1} B/key ({:.1} B/key without the key bytes), {:.2} allocations/key",
        per_key - key_len as f64,
        (a1 - a0) as f64 / n as f64
    );

    let extra = 9;
    for _ in 0..extra {
        for k in &keys {
            index.put(k, next()).unwrap();
        }
    }
    let (b2, a2) = live();
    println!(
        "10 revisions per key: {:.1} B/key, {:.1} B per added revision, {:.2} allocations/key",
        (b2 - b0) as f64 / n as f64,
        (b2 - b1) as f64 / (n * extra) as f64,
        (a2 - a0) as f64 / n as f64
    );

    // Delete every other key, then compact at the head: live keys keep one revision,
    // deleted keys keep nothing.
    for k in keys.iter().step_by(2) {
        index.tombstone(k, next()).unwrap();
    }
    let (b3, _) = live();
    println!(
        "after deleting half: {:.1} B/key",
        (b3 - b0) as f64 / n as f64
    );
    let kept = index.compact(rev);
    drop(kept);
    index.compact(rev + 1);
    // Removed skiplist nodes are freed once no thread can still see them: let the epoch
    // collector catch up.
    for _ in 0..1000 {
        crossbeam_epoch::pin().flush();
    }
    let (b4, a4) = live();
    let remaining = index.len();
    println!(
        "after compaction: {remaining} keys, {:.1} B/key, {:.2} allocations/key",
        (b4 - b0) as f64 / remaining as f64,
        (a4 - a0) as f64 / remaining as f64
    );
}
