//! Every limit of the write-ahead log, in one place, each with the reason for its value.

/// Default size of one segment file. Large enough that rollovers (file creation, directory
/// fsync) are rare; small enough that releasing a segment frees space promptly.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// Smallest allowed segment: it must hold the segment header, the hard-state and snapshot
/// copies written at the start of every segment, and some records. Tests use sizes close
/// to this to force many rollovers.
pub const SEGMENT_BYTES_MIN: u64 = 4096;

/// Largest allowed segment. Open reads each segment into memory once, so this bounds the
/// memory open needs, and keeps every offset far below `i64::MAX` (pwritev takes `off_t`).
pub const SEGMENT_BYTES_MAX: u64 = 1024 * 1024 * 1024;

/// Largest payload of one record. Checked before any allocation when reading, so a corrupt
/// length can never make open allocate or panic (etcd's CVE-2020-15106).
pub const RECORD_PAYLOAD_BYTES_MAX: u32 = 256 * 1024 * 1024;

/// Callers frame their records into chunks of about this size; one chunk is one iovec of
/// the vectored write, so this keeps iovecs few without making chunks huge.
pub const CHUNK_BYTES_TARGET: usize = 1024 * 1024;

/// Most iovecs in one vectored write: Linux's `IOV_MAX`. The writer stops gathering when a
/// batch reaches it, so one batch is always one `pwritev` / one `Writev` submission.
pub const BATCH_BUFFERS_MAX: usize = 1024;

/// Most bytes gathered into one write before it is issued. Bounds the latency the first
/// waiter of a batch pays for the callers who joined after it.
pub const BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;

/// While gathering a batch, the writer waits for stragglers at most this fraction of the
/// previous write + fdatasync's duration (so at most ~12% added latency)...
pub const GATHER_WAIT_FRACTION: u32 = 8;

/// ...and never longer than this, whatever the disk's speed.
pub const GATHER_WAIT_MAX: std::time::Duration = std::time::Duration::from_millis(1);

/// How often the writer looks at the queue again while waiting for stragglers.
pub const GATHER_POLL: std::time::Duration = std::time::Duration::from_micros(20);

/// Capacity of the request queue between callers and the writer thread. Callers wait (or
/// block) when it is full, which is the log's back-pressure.
pub const QUEUE_REQUESTS_MAX: usize = 8192;

/// Framing buffers kept for reuse by later appends, so the steady state allocates nothing.
pub const POOL_BUFFERS_MAX: usize = 1024;

/// A buffer larger than this is freed instead of pooled, so one huge append does not pin
/// its memory forever.
pub const POOL_BUFFER_BYTES_MAX: usize = 2 * CHUNK_BYTES_TARGET;

/// Submission queue size of the io_uring ring: one batch needs a write and a linked
/// fdatasync, and all completions are reaped before the next batch.
pub const RING_ENTRIES: u32 = 8;
