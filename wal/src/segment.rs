//! Segment files: names, the 64-byte segment header, creation (preallocated, published by
//! rename) and listing.

use std::fs::{self, File, OpenOptions};
use std::io::IoSlice;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::frame::Chain;
use crate::io::WalIo;
use crate::record::{read_u32, read_u64};
use crate::sys;

/// Size of the header at the start of every segment; records start right after it.
pub(crate) const SEGMENT_HEADER_BYTES: usize = 64;
const MAGIC: &[u8; 8] = b"CAIRNWAL";
const VERSION: u32 = 1;
const SUFFIX: &str = ".wal";
const TEMPORARY_SUFFIX: &str = ".wal.tmp";

/// What a segment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// Position of the segment in the log (0, 1, 2, ...), also in the file name.
    pub(crate) sequence: u64,
    /// Index the next entry was expected to have when the segment was cut (file name too).
    pub(crate) first_index: u64,
    /// Sequence number of the segment's first record and the CRC it chains from.
    pub(crate) chain: Chain,
    /// Size the segment was preallocated to.
    pub(crate) capacity: u64,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut bytes = [0u8; SEGMENT_HEADER_BYTES];
        bytes[0..8].copy_from_slice(MAGIC);
        bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.sequence.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.first_index.to_le_bytes());
        bytes[32..40].copy_from_slice(&self.chain.next_sequence.to_le_bytes());
        bytes[40..44].copy_from_slice(&self.chain.previous_crc.to_le_bytes());
        bytes[48..56].copy_from_slice(&self.capacity.to_le_bytes());
        let crc = crc32fast::hash(&bytes[..56]);
        bytes[56..60].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<SegmentHeader, &'static str> {
        let Some(bytes) = bytes.get(..SEGMENT_HEADER_BYTES) else {
            return Err("file is shorter than a segment header");
        };
        if &bytes[0..8] != MAGIC {
            return Err("bad magic: not a cairn wal segment");
        }
        if read_u32(bytes, 56) != Some(crc32fast::hash(&bytes[..56])) {
            return Err("segment header checksum mismatch");
        }
        if read_u32(bytes, 8) != Some(VERSION) {
            return Err("unsupported segment format version");
        }
        Ok(SegmentHeader {
            sequence: read_u64(bytes, 16).unwrap_or(0),
            first_index: read_u64(bytes, 24).unwrap_or(0),
            chain: Chain {
                next_sequence: read_u64(bytes, 32).unwrap_or(0),
                previous_crc: read_u32(bytes, 40).unwrap_or(0),
            },
            capacity: read_u64(bytes, 48).unwrap_or(0),
        })
    }
}

/// `<sequence>-<first index>.wal`, both 16 lowercase hex digits, so names sort in log order.
pub(crate) fn segment_name(sequence: u64, first_index: u64) -> String {
    format!("{sequence:016x}-{first_index:016x}{SUFFIX}")
}

/// Parses a segment file name into (sequence, first index).
pub(crate) fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(SUFFIX)?;
    let (sequence, first_index) = stem.split_once('-')?;
    if sequence.len() != 16 || first_index.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(sequence, 16).ok()?,
        u64::from_str_radix(first_index, 16).ok()?,
    ))
}

/// A segment on disk.
#[derive(Debug, Clone)]
pub(crate) struct SegmentFile {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) sequence: u64,
    pub(crate) first_index: u64,
}

/// Lists the segments of `directory` in log order and deletes leftover temporary files
/// (segments whose creation never finished, so they hold nothing).
pub(crate) fn list_segments(directory: &Path) -> Result<Vec<SegmentFile>, Error> {
    let context = || format!("listing {}", directory.display());
    let mut segments = Vec::new();
    for item in fs::read_dir(directory).map_err(|e| Error::io(context(), e))? {
        let item = item.map_err(|e| Error::io(context(), e))?;
        let Ok(name) = item.file_name().into_string() else {
            continue;
        };
        if name.ends_with(TEMPORARY_SUFFIX) {
            fs::remove_file(item.path())
                .map_err(|e| Error::io(format!("removing {}", item.path().display()), e))?;
            continue;
        }
        if let Some((sequence, first_index)) = parse_segment_name(&name) {
            segments.push(SegmentFile {
                path: item.path(),
                name,
                sequence,
                first_index,
            });
        }
    }
    segments.sort_by_key(|segment| segment.sequence);
    Ok(segments)
}

/// Creates segment `header.sequence`: a temporary file preallocated to `header.capacity`,
/// the header written and synced through `io`, then renamed into place and the directory
/// synced, so a segment with its final name always has a durable header.
pub(crate) fn create_segment(
    directory: &Path,
    header: &SegmentHeader,
    io: &mut dyn WalIo,
) -> Result<(SegmentFile, File), std::io::Error> {
    let name = segment_name(header.sequence, header.first_index);
    let path = directory.join(&name);
    let temporary = directory.join(format!("{name}.tmp"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)?;
    sys::preallocate(&file, header.capacity)?;
    io.write_durable(&file, 0, &[IoSlice::new(&header.encode())])?;
    fs::rename(&temporary, &path)?;
    sync_directory(directory)?;
    let segment = SegmentFile {
        name,
        path,
        sequence: header.sequence,
        first_index: header.first_index,
    };
    Ok((segment, file))
}

/// fsyncs a directory so creations, renames and removals in it are durable.
pub(crate) fn sync_directory(directory: &Path) -> Result<(), std::io::Error> {
    File::open(directory)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_log_order_and_parse_back() {
        let names: Vec<String> = [(0, 1), (9, 5), (10, 3), (255, 1 << 40)]
            .iter()
            .map(|(s, i)| segment_name(*s, *i))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, names);
        assert_eq!(parse_segment_name(&names[3]), Some((255, 1 << 40)));
        assert_eq!(
            parse_segment_name("0000000000000001-0000000000000001.wal.tmp"),
            None
        );
        assert_eq!(parse_segment_name("1-1.wal"), None);
    }

    #[test]
    fn header_round_trips_and_detects_damage() {
        let header = SegmentHeader {
            sequence: 7,
            first_index: 42,
            chain: Chain {
                next_sequence: 1000,
                previous_crc: 0xdead_beef,
            },
            capacity: 1 << 20,
        };
        let mut bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        bytes[20] ^= 1;
        assert!(SegmentHeader::decode(&bytes).is_err());
        assert!(SegmentHeader::decode(&bytes[..10]).is_err());
    }
}
