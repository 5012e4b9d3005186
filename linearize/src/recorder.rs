//! Recording a history while clients run: [`Recorder`] and the [`Pending`] call it hands out.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::etcd::execute;
use crate::history::{Input, Op, Output};

/// Thread-safe history recorder; clones share one history and one clock.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

struct RecorderInner {
    start: Instant,
    ops: Mutex<Vec<Option<Op>>>,
}

/// An op that has been called and not finished. Dropping it (e.g. when a timeout drops the
/// future holding it) leaves the op ambiguous, like [`Recorder::fail`].
#[must_use = "finish the op with end, fail or discard"]
pub struct Pending {
    idx: usize,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty history whose clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            inner: Arc::new(RecorderInner {
                start: Instant::now(),
                ops: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Monotonic nanoseconds since the recorder was created.
    pub fn now(&self) -> u64 {
        self.inner.start.elapsed().as_nanos() as u64
    }

    fn ops(&self) -> std::sync::MutexGuard<'_, Vec<Option<Op>>> {
        // A panicking client thread must not hide the history from the checker.
        self.inner.ops.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a call; call it right before sending the request.
    pub fn begin(&self, client: usize, input: Input) -> Pending {
        let call = self.now();
        let mut ops = self.ops();
        ops.push(Some(Op::ambiguous(client, call, input)));
        Pending { idx: ops.len() - 1 }
    }

    /// Records the response; call it right after it arrived.
    pub fn end(&self, p: Pending, output: Output) {
        let ret = self.now();
        if let Some(op) = self.ops()[p.idx].as_mut() {
            op.ret = Some(ret);
            op.output = Some(output);
        }
    }

    /// The outcome is unknown: the op may have taken effect at any time after its call, or never.
    pub fn fail(&self, p: Pending) {
        let _ = p;
    }

    /// The op certainly did not take effect (e.g. refused before reaching the server).
    pub fn discard(&self, p: Pending) {
        self.ops()[p.idx] = None;
    }

    /// The recorded ops (unfinished ones are ambiguous).
    pub fn history(&self) -> Vec<Op> {
        self.ops().iter().flatten().cloned().collect()
    }

    /// How many ops are recorded (discarded ones not counted).
    pub fn len(&self) -> usize {
        self.ops().iter().flatten().count()
    }

    /// No op is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `input` through an etcd client and records it; any error leaves it ambiguous.
    pub async fn run(
        &self,
        client: usize,
        kv: &mut etcd_client::KvClient,
        input: Input,
    ) -> Result<Output, etcd_client::Error> {
        let p = self.begin(client, input.clone());
        match execute(kv, &input).await {
            Ok(out) => {
                self.end(p, out.clone());
                Ok(out)
            }
            Err(e) => {
                self.fail(p);
                Err(e)
            }
        }
    }
}
