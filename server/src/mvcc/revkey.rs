//! etcd's revision keys in the `key` bucket: 8-byte big-endian main revision, `_`, 8-byte
//! big-endian sub revision (17 bytes); a tombstone appends `t` (18 bytes).

use cairn_index::Revision;

/// Length of a revision key without the tombstone mark.
pub(crate) const REV_KEY_LEN: usize = 17;
const TOMBSTONE_MARK: u8 = b't';

/// Encodes `rev` (with the tombstone mark when `tombstone`).
pub(crate) fn encode(rev: Revision, tombstone: bool) -> Vec<u8> {
    let mut k = Vec::with_capacity(REV_KEY_LEN + 1);
    k.extend_from_slice(&(rev.main as u64).to_be_bytes());
    k.push(b'_');
    k.extend_from_slice(&(rev.sub as u64).to_be_bytes());
    if tombstone {
        k.push(TOMBSTONE_MARK);
    }
    k
}

/// Decodes a revision key: the revision and whether it is a tombstone. `None` if the bytes
/// are not a revision key.
pub(crate) fn decode(k: &[u8]) -> Option<(Revision, bool)> {
    if k.len() < REV_KEY_LEN || k[8] != b'_' {
        return None;
    }
    let main = u64::from_be_bytes(k[0..8].try_into().ok()?) as i64;
    let sub = u64::from_be_bytes(k[9..17].try_into().ok()?) as i64;
    let tomb = match k.len() {
        REV_KEY_LEN => false,
        18 if k[17] == TOMBSTONE_MARK => true,
        _ => return None,
    };
    Some((Revision::new(main, sub), tomb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = Revision::new(0x0102_0304_0506_0708, 3);
        let k = encode(r, false);
        assert_eq!(k.len(), 17);
        assert_eq!(&k[..9], &[1, 2, 3, 4, 5, 6, 7, 8, b'_']);
        assert_eq!(decode(&k), Some((r, false)));
        let t = encode(r, true);
        assert_eq!(t.len(), 18);
        assert_eq!(decode(&t), Some((r, true)));
        assert_eq!(decode(b"short"), None);
    }

    #[test]
    fn order_matches_revision_order() {
        let a = encode(Revision::new(2, 5), false);
        let b = encode(Revision::new(3, 0), false);
        let c = encode(Revision::new(3, 1), true);
        assert!(a < b && b < c);
    }
}
