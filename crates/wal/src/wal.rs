//! The write-ahead log: numbered entries appended to segment files and fsynced in groups.
//!
//! A segment is `<first seq, 20 digits>.wal`, a sequence of records
//! `len(4, LE) | crc32(4, LE) | seq(8, LE) | format(1) | payload` where `len` and the CRC cover
//! seq, format and payload. `format` is a one-byte tag naming the codec that wrote the payload
//! (the log does not interpret it); the length field's top bit ([`TAGGED`]) says the tag is
//! there.
//!
//! Records written before entries were tagged are `len(4, LE) | crc32(4, LE) | seq(8, LE) |
//! payload`, the length's top bit clear (their length is at most 2^30 + 8). They are still read
//! ([`Payload::Legacy`]), never written: an untagged payload's first byte could be anything, so
//! only the length bit can tell the two apart.
//!
//! A crash can leave the last record of the last segment torn; opening cuts the file at the first
//! record that does not check out, so the log always holds a prefix of what was appended.
//!
//! The active segment is extended with zeros ahead of its records ([`PREALLOCATE_BYTES`] at a
//! time) and records are written over them. An fsync then has only data to flush: appending
//! past the end of a file also changes its size, which costs every fsync an inode write. Zeros
//! after the last record are the unused rest of that space, not damage; a closed segment is cut
//! to its records.
use crate::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Record header: length, CRC and sequence number.
const HEADER_BYTES: usize = 16;

/// A payload larger than this is taken for garbage (a torn length field), not a record.
const MAX_PAYLOAD_BYTES: usize = 1 << 30;

/// Set in the length field of a record whose payload follows a one-byte format tag: every
/// record this version writes. Untagged (legacy) lengths are at most `MAX_PAYLOAD_BYTES + 8`.
pub const TAGGED: u32 = 1 << 31;

/// One entry's payload as the log holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Written with a format tag (every entry this version writes).
    Tagged {
        /// The tag the writer gave: which codec wrote `bytes`.
        format: u8,
        /// The payload after the tag.
        bytes: &'a [u8],
    },
    /// Written before entries were tagged: read only, for WAL folders written by earlier
    /// versions (their payloads are bincode).
    Legacy(&'a [u8]),
}

/// Segments are closed and a new one started once they grow past this.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// How far ahead of its records the active segment is filled with zeros.
pub const PREALLOCATE_BYTES: u64 = 1024 * 1024;

/// Appended records are handed to the file once this many bytes wait, whether or not a flush
/// or sync asks first.
const BUFFER_BYTES: usize = 256 * 1024;

const SUFFIX: &str = ".wal";

/// A closed or active segment file and the sequence numbers in it.
#[derive(Debug)]
struct SegmentFile {
    path: PathBuf,
    /// Sequence number in the file name (entries are at or above it).
    first_seq: u64,
    /// The last entry's sequence number, `None` while empty.
    last_seq: Option<u64>,
}

/// The segment being appended to.
struct Active {
    segment: SegmentFile,
    file: File,
    /// Records appended but not yet handed to the file.
    buffer: Vec<u8>,
    /// Bytes of records in the file; the buffer goes there next.
    written: u64,
    /// The file's length: records, then zeros.
    allocated: u64,
}

impl Active {
    /// Bytes of records, written or buffered.
    fn bytes(&self) -> u64 {
        self.written + self.buffer.len() as u64
    }

    /// Hands the buffered records to the operating system, over zeros laid down first.
    fn write_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let end = self.bytes();
        if end > self.allocated {
            let grow_to = end.div_ceil(PREALLOCATE_BYTES) * PREALLOCATE_BYTES;
            let zeros = vec![0u8; (grow_to - self.allocated) as usize];
            self.file.write_all_at(&zeros, self.allocated)?;
            self.allocated = grow_to;
        }
        self.file.write_all_at(&self.buffer, self.written)?;
        self.written = end;
        self.buffer.clear();
        Ok(())
    }
}

/// A write-ahead log in one folder. Single-threaded: one owner appends, syncs and truncates.
pub struct Wal {
    dir: PathBuf,
    /// Segments no longer appended to, oldest first.
    closed: Vec<SegmentFile>,
    active: Option<Active>,
    segment_bytes: u64,
}

/// What reading one segment found.
struct Scan {
    last_seq: Option<u64>,
    /// Bytes of whole, valid records from the start.
    valid_bytes: u64,
    /// Whether something other than valid records and unused (zero) space follows them.
    torn: bool,
}

fn read_record(data: &[u8], at: usize) -> Option<(u64, Payload<'_>, usize)> {
    let header = data.get(at..at + HEADER_BYTES)?;
    let raw_len = u32::from_le_bytes(header[0..4].try_into().ok()?);
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let tagged = raw_len & TAGGED != 0;
    // `len` counts what the CRC covers: the sequence number, the tag if any and the payload.
    let len = (raw_len & !TAGGED) as usize;
    let min = if tagged { 9 } else { 8 };
    if !(min..=MAX_PAYLOAD_BYTES + min).contains(&len) {
        return None;
    }
    let body = data.get(at + 8..at + 8 + len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    let seq = u64::from_le_bytes(body[0..8].try_into().ok()?);
    let payload = if tagged {
        Payload::Tagged {
            format: body[8],
            bytes: &body[9..],
        }
    } else {
        Payload::Legacy(&body[8..])
    };
    Some((seq, payload, at + 8 + len))
}

/// Calls `visit` with each valid record of `data` in order, stopping at the first bad one.
fn scan(data: &[u8], visit: &mut dyn FnMut(u64, Payload<'_>)) -> Scan {
    let mut at = 0;
    let mut last_seq = None;
    while let Some((seq, payload, next)) = read_record(data, at) {
        visit(seq, payload);
        last_seq = Some(seq);
        at = next;
    }
    Scan {
        last_seq,
        valid_bytes: at as u64,
        torn: data[at..].iter().any(|b| *b != 0),
    }
}

fn read_all(path: &Path) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    Ok(data)
}

/// Makes a file's creation or removal durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A record as versions before format tags wrote it (no tag, the length's top bit clear), for
/// tests that build old log folders. Nothing outside tests writes untagged records.
#[cfg(test)]
pub(crate) fn legacy_record(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut body = seq.to_le_bytes().to_vec();
    body.extend_from_slice(payload);
    let mut record = (body.len() as u32).to_le_bytes().to_vec();
    record.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    record.extend_from_slice(&body);
    record
}

/// The file name of the segment starting at `first_seq`.
pub(crate) fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SUFFIX}")
}

impl Wal {
    /// Opens (or creates) the log in `dir`, cutting a torn tail off the last segment.
    pub fn open(dir: &Path) -> Result<Wal> {
        Wal::open_with_segment_bytes(dir, DEFAULT_SEGMENT_BYTES)
    }

    /// Like [`Wal::open`], starting a new segment once one grows past `segment_bytes`.
    pub fn open_with_segment_bytes(dir: &Path, segment_bytes: u64) -> Result<Wal> {
        let closed = Wal::scan_folder(dir).map_err(|source| Error::Open {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            closed,
            active: None,
            segment_bytes,
        })
    }

    /// Finds the segments in `dir` (creating it if needed), oldest first, cutting each to its
    /// valid records.
    fn scan_folder(dir: &Path) -> io::Result<Vec<SegmentFile>> {
        std::fs::create_dir_all(dir)?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let first_seq = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(first_seq) = first_seq {
                found.push(SegmentFile {
                    path,
                    first_seq,
                    last_seq: None,
                });
            }
        }
        found.sort_by_key(|s| s.first_seq);
        let count = found.len();
        for (i, segment) in found.iter_mut().enumerate() {
            let data = read_all(&segment.path)?;
            let scan = scan(&data, &mut |_, _| {});
            segment.last_seq = scan.last_seq;
            let last = i + 1 == count;
            if scan.torn && !last {
                tracing::error!(
                    segment = %segment.path.display(),
                    valid_bytes = scan.valid_bytes,
                    "write-ahead log segment is corrupt in the middle; entries after the damage are lost"
                );
                continue;
            }
            if scan.torn {
                tracing::warn!(
                    segment = %segment.path.display(),
                    kept_bytes = scan.valid_bytes,
                    cut_bytes = data.len() as u64 - scan.valid_bytes,
                    "write-ahead log ends in a torn record (a crash mid-write); cut it off"
                );
            }
            // A torn tail, or space laid down ahead of a segment that was never closed (a crash
            // or kill): the segment is closed now, so only its records are kept.
            if scan.valid_bytes < data.len() as u64 {
                let file = OpenOptions::new().write(true).open(&segment.path)?;
                file.set_len(scan.valid_bytes)?;
                file.sync_all()?;
            }
        }
        Ok(found)
    }

    /// The highest sequence number in the log, `None` when it is empty.
    pub fn last_seq(&self) -> Option<u64> {
        let active = self.active.as_ref().and_then(|a| a.segment.last_seq);
        active.or_else(|| self.closed.iter().rev().find_map(|s| s.last_seq))
    }

    /// Calls `visit` with every entry in sequence order (closed segments only: call before the
    /// first append).
    pub fn replay(&self, visit: &mut dyn FnMut(u64, Payload<'_>)) -> Result<()> {
        for segment in &self.closed {
            let data = read_all(&segment.path)?;
            scan(&data, visit);
        }
        Ok(())
    }

    /// Appends entry `seq`, `payload` as written by the codec `format` names (buffered:
    /// [`Wal::sync`] makes it durable). Sequence numbers must grow.
    pub fn append(&mut self, seq: u64, format: u8, payload: &[u8]) -> Result<()> {
        if let Some(last) = self.last_seq() {
            if seq <= last {
                return Err(Error::OutOfOrder { seq, last });
            }
        }
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| (*l as usize) <= MAX_PAYLOAD_BYTES)
            .ok_or(Error::TooLarge(payload.len()))?;
        if self
            .active
            .as_ref()
            .is_some_and(|a| a.bytes() >= self.segment_bytes)
        {
            self.close_active()?;
        }
        let active = match self.active.take() {
            Some(active) => active,
            None => self.create_segment(seq)?,
        };
        let active = self.active.insert(active);
        let seq_bytes = seq.to_le_bytes();
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&seq_bytes);
        hasher.update(&[format]);
        hasher.update(payload);
        let buffer = &mut active.buffer;
        buffer.extend_from_slice(&((len + 9) | TAGGED).to_le_bytes());
        buffer.extend_from_slice(&hasher.finalize().to_le_bytes());
        buffer.extend_from_slice(&seq_bytes);
        buffer.push(format);
        buffer.extend_from_slice(payload);
        active.segment.last_seq = Some(seq);
        if active.buffer.len() >= BUFFER_BYTES {
            active.write_buffer()?;
        }
        Ok(())
    }

    /// Hands buffered entries to the operating system (they survive a process crash, not a
    /// machine crash).
    pub fn flush(&mut self) -> Result<()> {
        match &mut self.active {
            Some(active) => Ok(active.write_buffer()?),
            None => Ok(()),
        }
    }

    /// Makes every appended entry durable (one fsync).
    pub fn sync(&mut self) -> Result<()> {
        match &mut self.active {
            Some(active) => {
                active.write_buffer()?;
                Ok(active.file.sync_data()?)
            }
            None => Ok(()),
        }
    }

    /// Deletes the segments whose entries are all at or below `seq` (their effects are stored);
    /// returns how many files were removed.
    pub fn remove_through(&mut self, seq: u64) -> Result<usize> {
        if self
            .active
            .as_ref()
            .is_some_and(|a| a.segment.last_seq.is_some_and(|last| last <= seq))
        {
            self.close_active()?;
        }
        let mut removed = 0;
        let mut kept = Vec::new();
        for segment in std::mem::take(&mut self.closed) {
            if segment.last_seq.is_none_or(|last| last <= seq) {
                std::fs::remove_file(&segment.path)?;
                removed += 1;
            } else {
                kept.push(segment);
            }
        }
        self.closed = kept;
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// How many segment files the log has.
    pub fn segment_count(&self) -> usize {
        self.closed.len() + usize::from(self.active.is_some())
    }

    fn create_segment(&mut self, first_seq: u64) -> io::Result<Active> {
        let path = self.dir.join(segment_name(first_seq));
        // An empty file left by a crash may carry this name; it is replaced, not kept twice.
        self.closed.retain(|s| s.path != path);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        sync_dir(&self.dir)?;
        Ok(Active {
            segment: SegmentFile {
                path,
                first_seq,
                last_seq: None,
            },
            file,
            buffer: Vec::new(),
            written: 0,
            allocated: 0,
        })
    }

    fn close_active(&mut self) -> io::Result<()> {
        if let Some(mut active) = self.active.take() {
            active.write_buffer()?;
            if active.allocated > active.written {
                active.file.set_len(active.written)?;
            }
            active.file.sync_data()?;
            self.closed.push(active.segment);
        }
        Ok(())
    }
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("closed", &self.closed)
            .field(
                "active",
                &self.active.as_ref().map(|a| (&a.segment, a.bytes())),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The format tag the tests write.
    const F: u8 = 7;

    /// Bytes of a tagged record around its payload.
    const RECORD: usize = HEADER_BYTES + 1;

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    fn entries(wal: &Wal) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        wal.replay(&mut |seq, payload| match payload {
            Payload::Tagged { format: F, bytes } => out.push((seq, bytes.to_vec())),
            other => panic!("entry {seq} is {other:?}"),
        })
        .unwrap();
        out
    }

    fn only_segment(dir: &Path) -> PathBuf {
        let files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        files[0].clone()
    }

    #[test]
    fn appended_entries_replay_in_order_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut wal = Wal::open(dir.path()).unwrap();
            assert_eq!(wal.last_seq(), None);
            wal.append(1, F, b"one").unwrap();
            wal.append(2, F, b"").unwrap();
            wal.append(5, F, b"five").unwrap();
            wal.sync().unwrap();
            assert_eq!(wal.last_seq(), Some(5));
        }
        let wal = Wal::open(dir.path()).unwrap();
        assert_eq!(wal.last_seq(), Some(5));
        assert_eq!(
            entries(&wal),
            vec![(1, b"one".to_vec()), (2, Vec::new()), (5, b"five".to_vec())]
        );
    }

    #[test]
    fn sequence_numbers_must_grow() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        wal.append(3, F, b"x").unwrap();
        assert!(wal.append(3, F, b"y").is_err());
        assert!(wal.append(2, F, b"y").is_err());
    }

    #[test]
    fn a_torn_tail_is_cut_at_the_last_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut wal = Wal::open(dir.path()).unwrap();
            wal.append(1, F, b"first").unwrap();
            wal.append(2, F, b"second").unwrap();
            wal.sync().unwrap();
        }
        let path = only_segment(dir.path());
        let whole = (2 * RECORD + "first".len() + "second".len()) as u64;
        // A crash mid-append: half a record follows the whole ones, over the zeros laid ahead.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[40, 0, 0, 0, 1, 2, 3, 4, 3, 0], whole)
            .unwrap();
        drop(file);
        let mut wal = Wal::open(dir.path()).unwrap();
        assert_eq!(file_len(&path), whole);
        assert_eq!(wal.last_seq(), Some(2));
        assert_eq!(entries(&wal).len(), 2);
        // Appending after the cut works and replays.
        wal.append(3, F, b"third").unwrap();
        wal.sync().unwrap();
        drop(wal);
        let wal = Wal::open(dir.path()).unwrap();
        let seqs: Vec<u64> = entries(&wal).into_iter().map(|(s, _)| s).collect();
        assert_eq!(seqs, [1, 2, 3]);
    }

    #[test]
    fn records_overwrite_zeros_laid_ahead_and_a_crash_leaves_them_readable() {
        let dir = tempfile::tempdir().unwrap();
        let records = {
            let mut wal = Wal::open(dir.path()).unwrap();
            wal.append(1, F, b"one").unwrap();
            wal.append(2, F, b"two").unwrap();
            wal.sync().unwrap();
            // Dropped without closing, as a crash would leave it: zeros follow the records.
            (2 * RECORD + 6) as u64
        };
        let path = only_segment(dir.path());
        assert_eq!(file_len(&path), PREALLOCATE_BYTES);
        let mut wal = Wal::open(dir.path()).unwrap();
        assert_eq!(wal.last_seq(), Some(2));
        assert_eq!(entries(&wal).len(), 2);
        assert_eq!(
            file_len(&path),
            records,
            "the reopened segment keeps only its records"
        );
        // Appends go to a new segment, which grows by whole preallocations.
        let big = vec![7u8; PREALLOCATE_BYTES as usize];
        wal.append(3, F, &big).unwrap();
        wal.append(4, F, b"four").unwrap();
        wal.sync().unwrap();
        assert_eq!(wal.segment_count(), 2);
        drop(wal);
        let wal = Wal::open(dir.path()).unwrap();
        let seqs: Vec<u64> = entries(&wal).into_iter().map(|(s, _)| s).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
    }

    #[test]
    fn a_flipped_byte_ends_the_log_there() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut wal = Wal::open(dir.path()).unwrap();
            wal.append(1, F, b"aaaa").unwrap();
            wal.append(2, F, b"bbbb").unwrap();
            wal.append(3, F, b"cccc").unwrap();
            wal.sync().unwrap();
        }
        let path = only_segment(dir.path());
        let mut data = std::fs::read(&path).unwrap();
        // Damage the payload of the second record: its CRC no longer matches.
        let second_payload = 2 * RECORD + 4 + 1;
        data[second_payload] ^= 0xff;
        std::fs::write(&path, &data).unwrap();
        let wal = Wal::open(dir.path()).unwrap();
        assert_eq!(entries(&wal), vec![(1, b"aaaa".to_vec())]);
        assert_eq!(file_len(&path), (RECORD + 4) as u64);
    }

    #[test]
    fn segments_rotate_and_are_removed_once_covered() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open_with_segment_bytes(dir.path(), 64).unwrap();
        for seq in 1..=10 {
            wal.append(seq, F, &[seq as u8; 30]).unwrap();
        }
        wal.sync().unwrap();
        let segments = wal.segment_count();
        assert!(segments >= 4, "{wal:?}");
        // Entries up to 5 are stored elsewhere: only segments wholly at or below 5 go.
        let removed = wal.remove_through(5).unwrap();
        assert!(removed >= 1 && removed < segments, "{wal:?}");
        drop(wal);
        let wal = Wal::open(dir.path()).unwrap();
        let seqs: Vec<u64> = entries(&wal).into_iter().map(|(s, _)| s).collect();
        assert!(seqs.first().is_some_and(|s| *s <= 6), "{seqs:?}");
        assert_eq!(seqs.last(), Some(&10));
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    }

    #[test]
    fn removing_through_the_last_entry_empties_the_log_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        wal.append(1, F, b"a").unwrap();
        wal.append(2, F, b"b").unwrap();
        wal.sync().unwrap();
        assert_eq!(wal.remove_through(2).unwrap(), 1);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        wal.append(3, F, b"c").unwrap();
        wal.sync().unwrap();
        drop(wal);
        let wal = Wal::open(dir.path()).unwrap();
        assert_eq!(entries(&wal), vec![(3, b"c".to_vec())]);
    }

    #[test]
    fn untagged_records_of_earlier_versions_read_as_legacy_before_tagged_ones() {
        let dir = tempfile::tempdir().unwrap();
        // One segment holding two old records, then (as no version does, but a reader must not
        // care) a tagged one in the same file; a new segment with tagged records after it.
        let mut old = legacy_record(1, b"old one");
        old.extend(legacy_record(2, &[F, 0xff]));
        std::fs::write(dir.path().join(segment_name(1)), &old).unwrap();
        {
            let mut wal = Wal::open(dir.path()).unwrap();
            assert_eq!(wal.last_seq(), Some(2));
            wal.append(3, F, b"new three").unwrap();
            wal.sync().unwrap();
            drop(wal);
            let mut data = std::fs::read(dir.path().join(segment_name(1))).unwrap();
            let third = std::fs::read(dir.path().join(segment_name(3))).unwrap();
            let third_len = RECORD + "new three".len();
            data.extend_from_slice(&third[..third_len]);
            std::fs::write(dir.path().join(segment_name(1)), &data).unwrap();
            std::fs::remove_file(dir.path().join(segment_name(3))).unwrap();
            let mut wal = Wal::open(dir.path()).unwrap();
            assert_eq!(wal.last_seq(), Some(3));
            wal.append(4, F, b"new four").unwrap();
            wal.sync().unwrap();
        }
        let wal = Wal::open(dir.path()).unwrap();
        assert_eq!(wal.segment_count(), 2);
        let mut seen: Vec<(u64, Option<u8>, Vec<u8>)> = Vec::new();
        wal.replay(&mut |seq, payload| match payload {
            Payload::Legacy(bytes) => seen.push((seq, None, bytes.to_vec())),
            Payload::Tagged { format, bytes } => seen.push((seq, Some(format), bytes.to_vec())),
        })
        .unwrap();
        let expected = [
            (1, None, b"old one".to_vec()),
            (2, None, vec![F, 0xff]),
            (3, Some(F), b"new three".to_vec()),
            (4, Some(F), b"new four".to_vec()),
        ];
        assert_eq!(seen, expected);
    }

    #[test]
    fn every_appended_record_is_tagged() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        wal.append(1, F, b"x").unwrap();
        wal.sync().unwrap();
        drop(wal);
        let data = std::fs::read(only_segment(dir.path())).unwrap();
        let len = u32::from_le_bytes(data[0..4].try_into().unwrap());
        assert_eq!(len, TAGGED | (8 + 1 + 1));
        assert_eq!(data[HEADER_BYTES], F);
    }
}
