//! A plain copy of the index's contents, for tests, diagnostics and equality checks.

use bytes::Bytes;

use crate::history::KeyHistory;
use crate::Revision;

/// One key's history, shaped like etcd's `keyIndex`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDump {
    /// The key.
    pub key: Bytes,
    /// Its generations, oldest first. As in etcd, a key that is currently deleted ends
    /// with an empty generation.
    pub generations: Vec<GenerationDump>,
}

/// One generation of a key (one life, from creation to deletion).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenerationDump {
    /// Revision of the creating put (zero when restored from a lone tombstone).
    pub created: Revision,
    /// Number of changes in the generation, its tombstone included.
    pub version: i64,
    /// The revisions still indexed, ascending; the last one of a closed generation is its
    /// tombstone.
    pub revs: Vec<Revision>,
}

impl KeyDump {
    pub(crate) fn new(key: &[u8], h: &KeyHistory) -> Self {
        let mut generations: Vec<GenerationDump> = h
            .gens
            .iter()
            .map(|g| GenerationDump {
                created: g.created,
                version: g.ver,
                revs: g.revs.to_vec(),
            })
            .collect();
        if !h.live {
            generations.push(GenerationDump::default());
        }
        KeyDump {
            key: Bytes::copy_from_slice(key),
            generations,
        }
    }
}
