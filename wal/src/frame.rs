//! Record framing: the 32-byte header, chunking on the caller's side, sealing (sequence
//! number and chained CRC) on the writer's side, and parsing at open. The byte layout is
//! documented in `wal/docs/format.md`.

use crate::error::Error;
use crate::limits::{CHUNK_BYTES_TARGET, RECORD_PAYLOAD_BYTES_MAX};
use crate::record::{read_u32, read_u64, Kind, Record};

/// Size of a record header.
pub(crate) const RECORD_HEADER_BYTES: usize = 32;
/// Every record starts at a multiple of this within its segment.
pub(crate) const RECORD_ALIGN_BYTES: usize = 8;

const CRC_AT: usize = 0;
const PREVIOUS_CRC_AT: usize = 4;
const SEQUENCE_AT: usize = 8;
const BATCH_POSITION_AT: usize = 16;
const LENGTH_AT: usize = 20;
const KIND_AT: usize = 24;
const RESERVED_AT: usize = 25;

const _: () = assert!(RECORD_HEADER_BYTES % RECORD_ALIGN_BYTES == 0);
const _: () = assert!(RESERVED_AT + 7 == RECORD_HEADER_BYTES);
const _: () = assert!(CHUNK_BYTES_TARGET % RECORD_ALIGN_BYTES == 0);

/// Bytes a record with a payload of `payload_len` bytes takes, header and padding included.
pub(crate) const fn framed_len(payload_len: usize) -> usize {
    RECORD_HEADER_BYTES + payload_len.next_multiple_of(RECORD_ALIGN_BYTES)
}

/// Frames `records` into chunks of whole records (about `CHUNK_BYTES_TARGET` each), leaving
/// the writer's fields (CRC, previous CRC, sequence, batch position) zero. Every chunk fits
/// in `capacity` bytes, the room a fresh segment has for records.
pub(crate) fn frame_records(
    records: &[Record],
    capacity: usize,
    mut new_buffer: impl FnMut() -> Vec<u8>,
) -> Result<Vec<Vec<u8>>, Error> {
    let chunk_limit = CHUNK_BYTES_TARGET.min(capacity);
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut current = new_buffer();
    for record in records {
        let payload_len = record.payload_len();
        let framed = framed_len(payload_len);
        if framed > capacity || payload_len > RECORD_PAYLOAD_BYTES_MAX as usize {
            let max = capacity.min(framed_len(RECORD_PAYLOAD_BYTES_MAX as usize));
            return Err(Error::RecordTooLarge {
                bytes: framed as u64,
                max: max as u64,
            });
        }
        if !current.is_empty() && current.len() + framed > chunk_limit {
            chunks.push(std::mem::replace(&mut current, new_buffer()));
        }
        push_record(&mut current, record, payload_len);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    Ok(chunks)
}

/// Appends one unsealed record to `buffer`.
fn push_record(buffer: &mut Vec<u8>, record: &Record, payload_len: usize) {
    let start = buffer.len();
    debug_assert_eq!(start % RECORD_ALIGN_BYTES, 0);
    // Cast is lossless: the caller checked payload_len <= RECORD_PAYLOAD_BYTES_MAX.
    let length = payload_len as u32;
    buffer.extend_from_slice(&[0u8; LENGTH_AT]);
    buffer.extend_from_slice(&length.to_le_bytes());
    buffer.push(record.kind() as u8);
    buffer.extend_from_slice(&[0u8; 7]);
    record.encode_payload(buffer);
    buffer.resize(start + framed_len(payload_len), 0);
    debug_assert!(buffer.len() - start - RECORD_HEADER_BYTES - payload_len < RECORD_ALIGN_BYTES);
}

/// Where the chain of records stands: the next sequence number and the CRC of the last
/// record (the segment header's seed when the segment has no records yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chain {
    pub(crate) next_sequence: u64,
    pub(crate) previous_crc: u32,
}

/// Seals every record of `chunk` in order: fills in the previous record's CRC, the
/// sequence number, the position within the write batch that starts at
/// `batch_first_sequence`, and the record's own CRC. `visit` sees each record's kind and
/// payload (the writer uses it to track entry indexes and state records).
pub(crate) fn seal_chunk(
    chunk: &mut [u8],
    chain: &mut Chain,
    batch_first_sequence: u64,
    mut visit: impl FnMut(Kind, &[u8]),
) {
    let mut at = 0usize;
    while at < chunk.len() {
        let length = read_u32(chunk, at + LENGTH_AT).unwrap_or(0) as usize;
        let end = at + framed_len(length);
        assert!(
            end <= chunk.len(),
            "framing produced a record past its chunk"
        );
        let record = &mut chunk[at..end];
        let position = chain.next_sequence - batch_first_sequence;
        assert!(
            position <= u64::from(u32::MAX),
            "write batch holds too many records"
        );
        record[PREVIOUS_CRC_AT..SEQUENCE_AT].copy_from_slice(&chain.previous_crc.to_le_bytes());
        record[SEQUENCE_AT..BATCH_POSITION_AT].copy_from_slice(&chain.next_sequence.to_le_bytes());
        record[BATCH_POSITION_AT..LENGTH_AT].copy_from_slice(&(position as u32).to_le_bytes());
        let crc = crc32fast::hash(&record[PREVIOUS_CRC_AT..]);
        record[CRC_AT..PREVIOUS_CRC_AT].copy_from_slice(&crc.to_le_bytes());
        let kind = Kind::from_byte(record[KIND_AT]).expect("framing wrote a valid kind");
        visit(
            kind,
            &record[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + length],
        );
        chain.previous_crc = crc;
        chain.next_sequence += 1;
        at = end;
    }
}

/// A record that checked out on its own (its CRC matches); chaining is checked by the caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parsed<'a> {
    pub(crate) crc: u32,
    pub(crate) previous_crc: u32,
    pub(crate) sequence: u64,
    pub(crate) batch_position: u32,
    pub(crate) kind: Kind,
    pub(crate) payload: &'a [u8],
    /// Offset just past this record (and its padding).
    pub(crate) end: usize,
}

impl Parsed<'_> {
    /// Sequence number of the first record of the write batch this record was written in.
    pub(crate) fn batch_first_sequence(&self) -> u64 {
        self.sequence.saturating_sub(u64::from(self.batch_position))
    }
}

/// Parses the record at `at` of `bytes`, checking everything that can be checked without
/// its neighbours. Never allocates; a huge length is rejected before it is used.
pub(crate) fn parse_at(bytes: &[u8], at: usize) -> Result<Parsed<'_>, &'static str> {
    let Some(header) = bytes.get(at..at.saturating_add(RECORD_HEADER_BYTES)) else {
        return Err("record header runs past the end of the file");
    };
    let Some(kind) = Kind::from_byte(header[KIND_AT]) else {
        return Err("unknown record type");
    };
    if header[RESERVED_AT..].iter().any(|byte| *byte != 0) {
        return Err("reserved header bytes are not zero");
    }
    let length = read_u32(header, LENGTH_AT).unwrap_or(u32::MAX);
    if length > RECORD_PAYLOAD_BYTES_MAX {
        return Err("record length exceeds the format's limit");
    }
    let end = at + framed_len(length as usize);
    let Some(record) = bytes.get(at..end) else {
        return Err("record runs past the end of the file");
    };
    let crc = read_u32(record, CRC_AT).unwrap_or(0);
    if crc32fast::hash(&record[PREVIOUS_CRC_AT..]) != crc {
        return Err("record checksum mismatch");
    }
    Ok(Parsed {
        crc,
        previous_crc: read_u32(record, PREVIOUS_CRC_AT).unwrap_or(0),
        sequence: read_u64(record, SEQUENCE_AT).unwrap_or(0),
        batch_position: read_u32(record, BATCH_POSITION_AT).unwrap_or(0),
        kind,
        payload: &record[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + length as usize],
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Entry, HardState};
    use bytes::Bytes;

    fn entry(index: u64, len: usize) -> Record {
        Record::Entry(Entry {
            index,
            term: 3,
            kind: 0,
            data: Bytes::from(vec![7u8; len]),
        })
    }

    #[test]
    fn framed_records_parse_back_after_sealing() {
        let records = vec![
            entry(1, 0),
            entry(2, 5),
            Record::HardState(HardState {
                term: 3,
                vote: 1,
                commit: 2,
            }),
        ];
        let mut chunks = frame_records(&records, 1 << 20, Vec::new).unwrap();
        assert_eq!(chunks.len(), 1);
        let mut chain = Chain {
            next_sequence: 10,
            previous_crc: 99,
        };
        seal_chunk(&mut chunks[0], &mut chain, 10, |_, _| {});
        let bytes = &chunks[0];
        let mut at = 0;
        let mut previous = 99;
        for (i, expected) in records.iter().enumerate() {
            let parsed = parse_at(bytes, at).unwrap();
            assert_eq!(parsed.sequence, 10 + i as u64);
            assert_eq!(parsed.batch_position, i as u32);
            assert_eq!(parsed.previous_crc, previous);
            assert_eq!(
                &Record::decode_payload(parsed.kind, parsed.payload).unwrap(),
                expected
            );
            assert_eq!(parsed.end % RECORD_ALIGN_BYTES, 0);
            previous = parsed.crc;
            at = parsed.end;
        }
        assert_eq!(at, bytes.len());
        assert_eq!(
            chain,
            Chain {
                next_sequence: 13,
                previous_crc: previous
            }
        );
    }

    #[test]
    fn huge_length_is_rejected_without_allocating() {
        let mut chunks = frame_records(&[entry(1, 8)], 1 << 20, Vec::new).unwrap();
        let mut chain = Chain {
            next_sequence: 1,
            previous_crc: 0,
        };
        seal_chunk(&mut chunks[0], &mut chain, 1, |_, _| {});
        chunks[0][LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_at(&chunks[0], 0).is_err());
        chunks[0][LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&(1u32 << 27).to_le_bytes());
        assert!(parse_at(&chunks[0], 0).is_err());
    }

    #[test]
    fn zeros_never_parse() {
        assert!(parse_at(&[0u8; 64], 0).is_err());
        assert!(parse_at(&[0u8; 64], 40).is_err());
    }

    #[test]
    fn oversized_record_is_a_typed_error() {
        let error = frame_records(&[entry(1, 5000)], 4096, Vec::new).unwrap_err();
        assert!(
            matches!(error, Error::RecordTooLarge { max: 4096, .. }),
            "{error}"
        );
    }

    #[test]
    fn chunks_split_at_record_boundaries() {
        let records: Vec<Record> = (1..=10).map(|i| entry(i, 1000)).collect();
        let chunks = frame_records(&records, 4096, Vec::new).unwrap();
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|chunk| chunk.len() <= 4096));
        let total: usize = chunks.iter().map(Vec::len).sum();
        assert_eq!(total, 10 * framed_len(1000 + 17));
    }
}
