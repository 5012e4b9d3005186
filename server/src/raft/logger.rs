//! Routes raft-rs's slog records to `tracing`.

use slog::{Drain, Level, OwnedKVList, Record};

struct TracingDrain;

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, r: &Record<'_>, _: &OwnedKVList) -> Result<(), slog::Never> {
        match r.level() {
            Level::Critical | Level::Error => tracing::error!(target: "raft", "{}", r.msg()),
            Level::Warning => tracing::warn!(target: "raft", "{}", r.msg()),
            Level::Info => tracing::debug!(target: "raft", "{}", r.msg()),
            Level::Debug | Level::Trace => tracing::trace!(target: "raft", "{}", r.msg()),
        }
        Ok(())
    }
}

pub(crate) fn logger() -> slog::Logger {
    slog::Logger::root(TracingDrain.fuse(), slog::o!())
}
