//! The writer thread: the only code that writes segments. Callers hand it framed chunks
//! through a bounded queue; it drains everything queued into one batch, seals the records
//! (sequence numbers and chained CRCs), issues ONE vectored write plus ONE fdatasync through
//! the backend, and only then tells every waiter of the batch that its records are durable.
//!
//! Batches never overlap: the next write starts after the previous fdatasync returned.
//! Recovery relies on this to tell a torn tail from corruption (see `scan`).

use std::fs::File;
use std::io::{self, IoSlice};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::frame::{frame_records, seal_chunk, Chain};
use crate::io::WalIo;
use crate::limits::{
    BATCH_BUFFERS_MAX, BATCH_BYTES_MAX, GATHER_POLL, GATHER_WAIT_FRACTION, GATHER_WAIT_MAX,
    POOL_BUFFERS_MAX, POOL_BUFFER_BYTES_MAX,
};
use crate::record::{read_u64, HardState, Kind, Record, SnapshotMarker};
use crate::scan::SegmentState;
use crate::segment::{create_segment, sync_directory, SegmentHeader};

/// Completion of one request: `Ok` only once its records are durable.
pub(crate) type Done = oneshot::Sender<Result<(), Error>>;

/// What callers ask of the writer.
pub(crate) enum Request {
    Append {
        chunks: Vec<Vec<u8>>,
        records: u64,
        done: Done,
    },
    Sync {
        done: Done,
    },
    Release {
        index: u64,
        done: oneshot::Sender<Result<usize, Error>>,
    },
    Close {
        done: Done,
    },
}

/// Counters shared with `Wal::stats`.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) writes: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) records: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) segments_created: AtomicU64,
    pub(crate) segments_released: AtomicU64,
}

/// State shared between the `Wal` handle and the writer thread.
#[derive(Default)]
pub(crate) struct Shared {
    /// The failure that poisoned the log; set once, never cleared.
    pub(crate) poison: Mutex<Option<Arc<io::Error>>>,
    pub(crate) counters: Counters,
    /// Framing buffers returned by the writer for reuse by later appends.
    pub(crate) pool: Mutex<Vec<Vec<u8>>>,
}

impl Shared {
    pub(crate) fn poisoned(&self) -> Option<Error> {
        self.poison
            .lock()
            .as_ref()
            .map(|cause| Error::Poisoned(Arc::clone(cause)))
    }

    pub(crate) fn take_buffer(&self) -> Vec<u8> {
        self.pool.lock().pop().unwrap_or_default()
    }

    fn recycle(&self, buffers: impl Iterator<Item = Vec<u8>>) {
        let mut pool = self.pool.lock();
        for mut buffer in buffers {
            if pool.len() >= POOL_BUFFERS_MAX {
                break;
            }
            if buffer.capacity() <= POOL_BUFFER_BYTES_MAX {
                buffer.clear();
                pool.push(buffer);
            }
        }
    }

    /// Poisons the log with `error` (the first poison wins) and returns the poison error.
    fn poison(&self, context: String, error: io::Error) -> Error {
        let mut poison = self.poison.lock();
        let cause = poison.get_or_insert_with(|| {
            Arc::new(io::Error::new(error.kind(), format!("{context}: {error}")))
        });
        Error::Poisoned(Arc::clone(cause))
    }
}

/// Poisons the log if the writer thread unwinds (a broken invariant), so callers get
/// `Error::Poisoned` instead of records silently going nowhere.
struct PoisonOnPanic(Arc<Shared>);

impl Drop for PoisonOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .poison("writer thread".to_string(), io::Error::other("panicked"));
        }
    }
}

/// Where the log continues, handed over by `Wal::open`.
pub(crate) struct WriterState {
    pub(crate) directory: PathBuf,
    pub(crate) io: Box<dyn WalIo>,
    pub(crate) segments: Vec<SegmentState>,
    pub(crate) file: File,
    pub(crate) offset: u64,
    pub(crate) capacity: u64,
    pub(crate) segment_bytes: u64,
    pub(crate) chain: Chain,
    pub(crate) last_index: u64,
    pub(crate) hard_state: Option<HardState>,
    pub(crate) snapshot: Option<SnapshotMarker>,
}

pub(crate) struct Writer {
    state: WriterState,
    shared: Arc<Shared>,
    /// Sealed chunks of the batch being gathered.
    pending: Vec<Vec<u8>>,
    pending_bytes: usize,
    pending_records: u64,
    /// Sequence number of the batch's first record.
    batch_first_sequence: u64,
    /// Requests completed by the batch's fdatasync.
    waiters: Vec<Done>,
    /// Requests the previous batch completed, and how long its write + fdatasync took.
    previous_batch_requests: usize,
    previous_write_duration: Duration,
    /// When the writer first found the queue empty while gathering the current batch.
    gather_started: Option<Instant>,
}

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

impl Writer {
    pub(crate) fn new(state: WriterState, shared: Arc<Shared>) -> Writer {
        let batch_first_sequence = state.chain.next_sequence;
        Writer {
            state,
            shared,
            pending: Vec::new(),
            pending_bytes: 0,
            pending_records: 0,
            batch_first_sequence,
            waiters: Vec::new(),
            previous_batch_requests: 0,
            previous_write_duration: Duration::ZERO,
            gather_started: None,
        }
    }

    /// Serves requests until `Close` or until every sender is gone. A batch is written
    /// when the queue runs dry or a batch limit is reached.
    pub(crate) fn run(mut self, mut queue: mpsc::Receiver<Request>) {
        let _poison_on_panic = PoisonOnPanic(Arc::clone(&self.shared));
        loop {
            let idle = self.pending.is_empty() && self.waiters.is_empty();
            let request = if idle {
                match queue.blocking_recv() {
                    Some(request) => request,
                    None => break,
                }
            } else {
                match queue.try_recv() {
                    Ok(request) => request,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        if self.worth_waiting() {
                            std::thread::sleep(GATHER_POLL);
                        } else {
                            self.flush();
                        }
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            };
            if self.handle(request) == Flow::Stop {
                break;
            }
        }
        self.flush();
    }

    /// Whether to wait a little for more appends before writing. After a batch completes,
    /// its callers need a moment to queue their next appends; writing at once would split
    /// them over two batches (and two fdatasyncs). So while fewer requests are pending than
    /// the previous batch carried, wait up to a fraction of the previous write's duration.
    /// With a single appender this never waits.
    fn worth_waiting(&mut self) -> bool {
        if self.waiters.len() >= self.previous_batch_requests {
            return false;
        }
        let started = *self.gather_started.get_or_insert_with(Instant::now);
        let patience = (self.previous_write_duration / GATHER_WAIT_FRACTION).min(GATHER_WAIT_MAX);
        started.elapsed() < patience
    }

    fn handle(&mut self, request: Request) -> Flow {
        match request {
            Request::Append {
                chunks,
                records,
                done,
            } => {
                self.append(chunks, records, done);
                Flow::Continue
            }
            Request::Sync { done } => {
                // Completes with the batch, so after every append queued before it.
                self.waiters.push(done);
                self.flush();
                Flow::Continue
            }
            Request::Release { index, done } => {
                self.flush();
                let _ = done.send(self.release(index));
                Flow::Continue
            }
            Request::Close { done } => {
                self.flush();
                let _ = done.send(self.shared.poisoned().map_or(Ok(()), Err));
                Flow::Stop
            }
        }
    }

    fn append(&mut self, chunks: Vec<Vec<u8>>, records: u64, done: Done) {
        let mut chunks = chunks.into_iter();
        for chunk in chunks.by_ref() {
            if self.shared.poisoned().is_some() {
                break;
            }
            if self.pending.len() >= BATCH_BUFFERS_MAX
                || self.pending_bytes + chunk.len() > BATCH_BYTES_MAX
            {
                self.flush();
            }
            if !self.fits(chunk.len()) {
                self.flush();
                if self.shared.poisoned().is_none() {
                    self.cut();
                }
            }
            if self.shared.poisoned().is_some() {
                break;
            }
            self.push(chunk);
        }
        self.shared.recycle(chunks);
        match self.shared.poisoned() {
            Some(error) => {
                let _ = done.send(Err(error));
            }
            None => {
                self.pending_records += records;
                self.waiters.push(done);
            }
        }
    }

    fn fits(&self, bytes: usize) -> bool {
        self.state.offset + (self.pending_bytes + bytes) as u64 <= self.state.capacity
    }

    /// Seals `chunk` into the pending batch.
    fn push(&mut self, mut chunk: Vec<u8>) {
        if self.pending.is_empty() {
            self.batch_first_sequence = self.state.chain.next_sequence;
        }
        let state = &mut self.state;
        let segment = state
            .segments
            .last_mut()
            .expect("the log always has a segment");
        seal_chunk(
            &mut chunk,
            &mut state.chain,
            self.batch_first_sequence,
            |kind, payload| {
                if kind == Kind::Entry {
                    let index = read_u64(payload, 0).expect("framing wrote an entry index");
                    state.last_index = index;
                    segment.max_entry_index =
                        Some(segment.max_entry_index.map_or(index, |m| m.max(index)));
                    return;
                }
                match Record::decode_payload(kind, payload) {
                    Some(Record::HardState(hard_state)) => state.hard_state = Some(hard_state),
                    Some(Record::Snapshot(marker)) => {
                        state.snapshot = Some(marker);
                        state.last_index = state.last_index.max(marker.index);
                    }
                    _ => unreachable!("framing wrote a record that does not decode"),
                }
            },
        );
        self.pending_bytes += chunk.len();
        self.pending.push(chunk);
    }

    /// Writes and syncs the pending batch, then completes its waiters.
    fn flush(&mut self) {
        let waiters = std::mem::take(&mut self.waiters);
        self.gather_started = None;
        let outcome = if self.pending.is_empty() {
            self.shared.poisoned().map_or(Ok(()), Err)
        } else {
            let started = Instant::now();
            let outcome = self.write_pending();
            self.previous_write_duration = started.elapsed();
            self.previous_batch_requests = waiters.len();
            outcome
        };
        for waiter in waiters {
            let result = match &outcome {
                Ok(()) => Ok(()),
                Err(_) => Err(self.shared.poisoned().unwrap_or(Error::Closed)),
            };
            let _ = waiter.send(result);
        }
    }

    fn write_pending(&mut self) -> Result<(), Error> {
        let bytes = self.pending_bytes;
        let result = {
            let slices: Vec<IoSlice<'_>> = self.pending.iter().map(|b| IoSlice::new(b)).collect();
            self.state
                .io
                .write_durable(&self.state.file, self.state.offset, &slices)
        };
        let records = std::mem::take(&mut self.pending_records);
        self.pending_bytes = 0;
        self.shared.recycle(self.pending.drain(..));
        match result {
            Ok(()) => {
                let counters = &self.shared.counters;
                counters.writes.fetch_add(1, Ordering::Relaxed);
                counters.fsyncs.fetch_add(1, Ordering::Relaxed);
                counters.records.fetch_add(records, Ordering::Relaxed);
                counters.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                self.state.offset += bytes as u64;
                Ok(())
            }
            Err(error) => {
                let name = &self.state.segments.last().expect("a segment").file.name;
                let context = format!(
                    "write + fdatasync of {bytes} bytes at offset {} of {name} failed",
                    self.state.offset
                );
                Err(self.shared.poison(context, error))
            }
        }
    }

    /// Starts a new segment (the pending batch is empty) and queues copies of the newest
    /// hard state and snapshot marker as its first records, so every segment is
    /// self-contained and older segments can be released.
    fn cut(&mut self) {
        debug_assert!(self.pending.is_empty());
        let state = &mut self.state;
        let previous = state.segments.last().expect("a segment").file.sequence;
        let header = SegmentHeader {
            sequence: previous + 1,
            first_index: state.last_index + 1,
            chain: state.chain,
            capacity: state.segment_bytes,
        };
        match create_segment(&state.directory, &header, state.io.as_mut()) {
            Ok((file, handle)) => {
                state.file = handle;
                state.offset = crate::segment::SEGMENT_HEADER_BYTES as u64;
                state.capacity = header.capacity;
                state.segments.push(SegmentState {
                    file,
                    max_entry_index: None,
                });
                self.shared
                    .counters
                    .segments_created
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                let context = format!("creating segment {} failed", header.sequence);
                self.shared.poison(context, error);
                return;
            }
        }
        let mut copies = Vec::new();
        copies.extend(self.state.hard_state.map(Record::HardState));
        copies.extend(self.state.snapshot.map(Record::Snapshot));
        let chunks = frame_records(&copies, usize::MAX, Vec::new).expect("state records are small");
        for chunk in chunks {
            self.pending_records += copies.len() as u64;
            self.push(chunk);
        }
    }

    /// Deletes the oldest segments while all their entries are below `index`; never the
    /// segment being written. Each removal is made durable before the next, so a crash
    /// leaves a contiguous run of segments.
    fn release(&mut self, index: u64) -> Result<usize, Error> {
        if let Some(error) = self.shared.poisoned() {
            return Err(error);
        }
        let snapshot = self.state.snapshot.map(|marker| marker.index);
        if snapshot.is_none_or(|covered| index > covered + 1) {
            return Err(Error::ReleaseBeyondSnapshot {
                requested: index,
                snapshot,
            });
        }
        let mut released = 0;
        while self.state.segments.len() > 1
            && self.state.segments[0]
                .max_entry_index
                .is_none_or(|max| max < index)
        {
            let path = self.state.segments[0].file.path.clone();
            std::fs::remove_file(&path)
                .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
            sync_directory(&self.state.directory)
                .map_err(|e| Error::io(format!("syncing {}", self.state.directory.display()), e))?;
            self.state.segments.remove(0);
            released += 1;
            self.shared
                .counters
                .segments_released
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(released)
    }
}
