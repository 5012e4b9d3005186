//! ReadIndex: linearizable reads are batched into one raft ReadIndex request per round,
//! asked again when unanswered, and released once the applied index reaches the index
//! the leader confirmed.

use super::*;

impl Loop {
    pub(super) fn request_read(&mut self, reads: ReadWaiters) {
        self.read_seq += 1;
        self.pending_reads
            .insert(self.read_seq, (Instant::now(), reads));
        // The leader keys pending ReadIndex requests by their context, so the context
        // carries this member's id next to its sequence number: two members' requests
        // must never look alike (raft-rs drops a duplicate silently).
        let mut ctx = Vec::with_capacity(16);
        ctx.extend_from_slice(&self.read_seq.to_be_bytes());
        ctx.extend_from_slice(&self.id.to_be_bytes());
        self.node.read_index(ctx);
    }

    /// Asks again for ReadIndex batches that got no answer.
    pub(super) fn retry_reads(&mut self) {
        let now = Instant::now();
        let stale: Vec<u64> = self
            .pending_reads
            .iter()
            .filter(|(_, (at, _))| now.duration_since(*at) >= READ_RETRY)
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some((_, ws)) = self.pending_reads.remove(&k) {
                self.deferred_reads.extend(ws);
            }
        }
    }
}
