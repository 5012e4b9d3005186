//! A fault-injecting disk backend for tests: wraps a real backend and, on demand, fails a
//! write (after writing a prefix of it, like a torn write) or an fdatasync (after the
//! write went through, like a disk that lost the data).

use std::fs::File;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::io::{BackendKind, WalIo};

/// Shared switches and counters of a `FaultyIo`; clone it to keep control from the test.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan(Arc<FaultState>);

#[derive(Debug, Default)]
struct FaultState {
    /// Fail the write of this call number (1-based; 0 = never).
    fail_write_at: AtomicU64,
    /// Fail the fdatasync of this call number (1-based; 0 = never).
    fail_sync_at: AtomicU64,
    calls: AtomicU64,
    /// End offset of the last write whose fdatasync succeeded.
    durable_end: AtomicU64,
}

impl FaultPlan {
    /// A plan with no faults armed.
    pub fn new() -> FaultPlan {
        FaultPlan::default()
    }

    /// Makes the `n`-th `write_durable` from now fail its write (half of it is written).
    pub fn fail_write_after(&self, n: u64) {
        let at = self.0.calls.load(Ordering::SeqCst) + n;
        self.0.fail_write_at.store(at, Ordering::SeqCst);
    }

    /// Makes the `n`-th `write_durable` from now write everything but fail its fdatasync.
    pub fn fail_sync_after(&self, n: u64) {
        let at = self.0.calls.load(Ordering::SeqCst) + n;
        self.0.fail_sync_at.store(at, Ordering::SeqCst);
    }

    /// `write_durable` calls so far.
    pub fn calls(&self) -> u64 {
        self.0.calls.load(Ordering::SeqCst)
    }

    /// End offset (in its segment) of the last write that was synced successfully.
    pub fn durable_end(&self) -> u64 {
        self.0.durable_end.load(Ordering::SeqCst)
    }
}

/// A `WalIo` that injects the faults armed in its `FaultPlan` into a real backend.
pub struct FaultyIo {
    inner: Box<dyn WalIo>,
    plan: FaultPlan,
}

impl FaultyIo {
    /// Wraps `inner`, obeying `plan`.
    pub fn new(inner: Box<dyn WalIo>, plan: FaultPlan) -> FaultyIo {
        FaultyIo { inner, plan }
    }
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure (EIO)"))
}

impl WalIo for FaultyIo {
    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }

    fn write_durable(
        &mut self,
        file: &File,
        offset: u64,
        buffers: &[IoSlice<'_>],
    ) -> io::Result<()> {
        let state = &self.plan.0;
        let call = state.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let total: usize = buffers.iter().map(|b| b.len()).sum();
        if state.fail_write_at.load(Ordering::SeqCst) == call {
            let joined: Vec<u8> = buffers.iter().flat_map(|b| b.iter().copied()).collect();
            let half = &joined[..total / 2];
            crate::sys::pwritev_all(file, offset, &[IoSlice::new(half)])?;
            return Err(injected("write"));
        }
        if state.fail_sync_at.load(Ordering::SeqCst) == call {
            crate::sys::pwritev_all(file, offset, buffers)?;
            return Err(injected("fdatasync"));
        }
        self.inner.write_durable(file, offset, buffers)?;
        state
            .durable_end
            .store(offset + total as u64, Ordering::SeqCst);
        Ok(())
    }

    fn sync(&mut self, file: &File) -> io::Result<()> {
        self.inner.sync(file)
    }
}
