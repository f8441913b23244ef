//! Streamed transactions kept on local disk until they commit.
//!
//! With pgoutput protocol version 2 and `streaming 'on'` (PostgreSQL 14 and
//! up, `pg::slot::StreamOptions`), the server sends a transaction larger than
//! its `logical_decoding_work_mem` while it is still in progress: in blocks
//! between Stream Start and Stream Stop, several blocks per transaction,
//! blocks of different transactions interleaved, then one Stream Commit or
//! Stream Abort (PostgreSQL docs §55.9 "Logical Replication Message
//! Formats"). Nothing of it may be applied before the commit, and holding it
//! in memory would make pgsync's memory grow with the transaction, so every
//! message of a block goes to a file of its own top-level transaction:
//!
//! - one anonymous temporary file per top-level xid
//!   ([`tempfile::tempfile_in`] in the system temporary directory, `$TMPDIR`
//!   or `/tmp`: the file has no name, so the operating system frees it when
//!   pgsync closes it or dies, `kill -9` included). After a crash the server
//!   sends every transaction again from the slot's position, so no spill
//!   state has to survive;
//! - a record per message: `u32` payload length and `u64` WAL position
//!   (`XLogData.wal_start`), both big-endian, then the pgoutput message's
//!   bytes exactly as they arrived (with the xid that protocol 2 puts in
//!   every change inside a stream block);
//! - one file is written at a time (the open block's), through a 256 kB
//!   buffer; the others are idle descriptors, one per streamed transaction
//!   in progress;
//! - Stream Abort of the top-level xid closes (so frees) the file; Stream
//!   Abort of a subtransaction records its xid in the transaction's
//!   [`XidSet`] and its changes are skipped when the file is replayed (each
//!   change carries its own (sub)transaction's xid);
//! - Stream Commit hands the file over as a [`Replay`], read back in order
//!   through a 256 kB buffer, one message in memory at a time.
//!
//! Memory per streamed transaction in progress: one descriptor and a few
//! dozen bytes, plus about 16 bytes per range of consecutive aborted
//! subtransaction xids.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use crate::model::Lsn;

/// Buffer of the file being written (the open block's) and of a replay.
const BUFFER: usize = 256 << 10;
/// Bytes before each message in a file: payload length (`u32`) and WAL
/// position (`u64`).
const HEADER: usize = 12;
/// A replay's message buffer is given back when it grew beyond this for
/// one large message and the next one is small.
const KEEP_BUFFER: usize = 4 << 20;

/// Why a streamed transaction could not be kept on disk or read back.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// The temporary file could not be created (directory missing or not
    /// writable, too many open files).
    #[error("cannot create a spill file for streamed transaction {xid} in {dir}: {source}")]
    Create {
        /// The top-level transaction.
        xid: u32,
        /// The directory ($TMPDIR or /tmp).
        dir: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing failed (e.g. the disk is full).
    #[error("cannot write the spill file of streamed transaction {xid} in {dir}: {source}")]
    Write {
        /// The top-level transaction.
        xid: u32,
        /// The directory ($TMPDIR or /tmp).
        dir: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading back failed.
    #[error("cannot read the spill file of streamed transaction {xid}: {source}")]
    Read {
        /// The top-level transaction.
        xid: u32,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold what was written.
    #[error("the spill file of streamed transaction {xid} is damaged: {what}")]
    Damaged {
        /// The top-level transaction.
        xid: u32,
        /// What does not add up.
        what: String,
    },
    /// The stream messages are not in an order the protocol allows.
    #[error("{0}")]
    OutOfOrder(String),
}

/// A set of transaction ids, kept as ranges of consecutive xids: the
/// aborted subtransactions of one streamed transaction. A loop of
/// exception blocks aborts thousands of subtransactions with consecutive
/// xids, which stay one range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XidSet {
    /// Range start → range end (inclusive); ranges neither overlap nor touch.
    ranges: BTreeMap<u32, u32>,
}

impl XidSet {
    /// Adds `xid`.
    pub fn insert(&mut self, xid: u32) {
        if self.contains(xid) {
            return;
        }
        let (mut start, mut end) = (xid, xid);
        if let Some((&s, &e)) = self.ranges.range(..xid).next_back()
            && e.checked_add(1) == Some(xid)
        {
            start = s;
        }
        if let Some(next) = xid.checked_add(1)
            && let Some(e) = self.ranges.remove(&next)
        {
            end = e;
        }
        self.ranges.insert(start, end);
    }

    /// Whether `xid` is in the set.
    pub fn contains(&self, xid: u32) -> bool {
        self.ranges
            .range(..=xid)
            .next_back()
            .is_some_and(|(_, &end)| xid <= end)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// How many ranges of consecutive xids the set holds (its memory).
    pub fn ranges(&self) -> usize {
        self.ranges.len()
    }
}

/// One streamed transaction in progress.
struct Spilled {
    /// Its file, between blocks (inside the open block it is in `Block`).
    file: Option<File>,
    /// Bytes written (headers included).
    bytes: u64,
    /// Aborted subtransactions.
    aborted: XidSet,
}

/// The block being received.
struct Block {
    xid: u32,
    writer: BufWriter<File>,
}

/// The streamed transactions of one replication session.
pub struct Spill {
    dir: PathBuf,
    txns: HashMap<u32, Spilled>,
    block: Option<Block>,
    bytes: u64,
}

/// A committed streamed transaction, handed over by [`Spill::take`].
pub struct SpilledTxn {
    /// Its messages, in the order they arrived.
    pub records: Replay,
    /// Its aborted subtransactions: skip their changes.
    pub aborted: XidSet,
}

impl Spill {
    /// No transactions yet; files will be created in `dir`.
    pub fn new(dir: PathBuf) -> Spill {
        Spill {
            dir,
            txns: HashMap::new(),
            block: None,
            bytes: 0,
        }
    }

    /// Bytes on disk for the streamed transactions in progress.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Streamed transactions in progress (each holds one file).
    pub fn transactions(&self) -> usize {
        self.txns.len()
    }

    /// The transaction whose block is open, if any.
    pub fn open_block(&self) -> Option<u32> {
        self.block.as_ref().map(|b| b.xid)
    }

    /// Stream Start of `xid`: the following messages belong to it.
    /// `first_segment` starts a new file; a later block appends to the
    /// transaction's file.
    ///
    /// # Errors
    /// [`SpillError::OutOfOrder`] inside a block or when a later block's
    /// first one was not received; [`SpillError::Create`].
    pub fn start_block(&mut self, xid: u32, first_segment: bool) -> Result<(), SpillError> {
        if let Some(open) = &self.block {
            return Err(SpillError::OutOfOrder(format!(
                "Stream Start of transaction {xid} inside the stream block of transaction {}",
                open.xid
            )));
        }
        if first_segment && let Some(old) = self.txns.remove(&xid) {
            // The server starts the transaction over: what it sent before
            // is superseded.
            tracing::warn!(
                xid,
                bytes = old.bytes,
                "streamed transaction started again; its earlier blocks are discarded"
            );
            self.bytes = self.bytes.saturating_sub(old.bytes);
        }
        if !self.txns.contains_key(&xid) {
            if !first_segment {
                return Err(SpillError::OutOfOrder(format!(
                    "Stream Start continues transaction {xid}, whose first block was not received"
                )));
            }
            let file = tempfile::tempfile_in(&self.dir).map_err(|source| SpillError::Create {
                xid,
                dir: self.dir.display().to_string(),
                source,
            })?;
            self.txns.insert(
                xid,
                Spilled {
                    file: Some(file),
                    bytes: 0,
                    aborted: XidSet::default(),
                },
            );
        }
        let file = self
            .txns
            .get_mut(&xid)
            .and_then(|t| t.file.take())
            .ok_or_else(|| SpillError::Damaged {
                xid,
                what: "its file is already being written".into(),
            })?;
        self.block = Some(Block {
            xid,
            writer: BufWriter::with_capacity(BUFFER, file),
        });
        Ok(())
    }

    /// Appends one message of the open block, `message` being the pgoutput
    /// bytes and `lsn` their `XLogData.wal_start`.
    ///
    /// # Errors
    /// [`SpillError::OutOfOrder`] outside a block; [`SpillError::Write`].
    pub fn append(&mut self, lsn: Lsn, message: &[u8]) -> Result<(), SpillError> {
        let Some(block) = self.block.as_mut() else {
            return Err(SpillError::OutOfOrder(
                "a change of a streamed transaction outside a stream block".into(),
            ));
        };
        let xid = block.xid;
        let len = u32::try_from(message.len()).map_err(|_| SpillError::Damaged {
            xid,
            what: format!("a message of {} bytes does not fit a record", message.len()),
        })?;
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(&len.to_be_bytes());
        header[4..].copy_from_slice(&lsn.0.to_be_bytes());
        let written = block
            .writer
            .write_all(&header)
            .and_then(|()| block.writer.write_all(message));
        written.map_err(|source| SpillError::Write {
            xid,
            dir: self.dir.display().to_string(),
            source,
        })?;
        let n = (HEADER + message.len()) as u64;
        if let Some(t) = self.txns.get_mut(&xid) {
            t.bytes += n;
        }
        self.bytes += n;
        Ok(())
    }

    /// Stream Stop: the open block ends; its buffered bytes are written.
    ///
    /// # Errors
    /// [`SpillError::OutOfOrder`] outside a block; [`SpillError::Write`].
    pub fn stop_block(&mut self) -> Result<(), SpillError> {
        let Some(block) = self.block.take() else {
            return Err(SpillError::OutOfOrder(
                "Stream Stop outside a stream block".into(),
            ));
        };
        let xid = block.xid;
        let file = block.writer.into_inner().map_err(|e| SpillError::Write {
            xid,
            dir: self.dir.display().to_string(),
            source: e.into_error(),
        })?;
        if let Some(t) = self.txns.get_mut(&xid) {
            t.file = Some(file);
        }
        Ok(())
    }

    /// Stream Abort: the whole transaction (`subxid == xid`: its file is
    /// closed, which frees it) or one subtransaction (recorded, its changes
    /// skipped at replay). Returns whether `xid` was known.
    ///
    /// # Errors
    /// [`SpillError::OutOfOrder`] inside a block.
    pub fn abort(&mut self, xid: u32, subxid: u32) -> Result<bool, SpillError> {
        if let Some(open) = &self.block {
            return Err(SpillError::OutOfOrder(format!(
                "Stream Abort of transaction {xid} inside the stream block of transaction {}",
                open.xid
            )));
        }
        if xid == subxid {
            let Some(t) = self.txns.remove(&xid) else {
                return Ok(false);
            };
            self.bytes = self.bytes.saturating_sub(t.bytes);
            return Ok(true);
        }
        match self.txns.get_mut(&xid) {
            Some(t) => {
                t.aborted.insert(subxid);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Stream Commit of `xid`: its messages to replay (`None` when no
    /// block of it arrived). The transaction is forgotten here; its file is
    /// freed when the [`Replay`] is dropped.
    ///
    /// # Errors
    /// [`SpillError::OutOfOrder`] inside a block; [`SpillError::Read`] when
    /// the file cannot be rewound.
    pub fn take(&mut self, xid: u32) -> Result<Option<SpilledTxn>, SpillError> {
        if let Some(open) = &self.block {
            return Err(SpillError::OutOfOrder(format!(
                "Stream Commit of transaction {xid} inside the stream block of transaction {}",
                open.xid
            )));
        }
        let Some(t) = self.txns.remove(&xid) else {
            return Ok(None);
        };
        self.bytes = self.bytes.saturating_sub(t.bytes);
        let mut file = t.file.ok_or_else(|| SpillError::Damaged {
            xid,
            what: "its file is still being written".into(),
        })?;
        file.seek(SeekFrom::Start(0))
            .map_err(|source| SpillError::Read { xid, source })?;
        Ok(Some(SpilledTxn {
            records: Replay {
                xid,
                reader: BufReader::with_capacity(BUFFER, file),
                left: t.bytes,
                buf: Vec::new(),
            },
            aborted: t.aborted,
        }))
    }
}

/// The messages of a committed streamed transaction, read back in order.
pub struct Replay {
    xid: u32,
    reader: BufReader<File>,
    /// Bytes not read yet.
    left: u64,
    /// The current message.
    buf: Vec<u8>,
}

impl Replay {
    /// The next message: its `XLogData.wal_start` and pgoutput bytes;
    /// `None` after the last one.
    ///
    /// # Errors
    /// [`SpillError::Read`], or [`SpillError::Damaged`] when a record does
    /// not fit what is left of the file.
    pub fn next_message(&mut self) -> Result<Option<(Lsn, &[u8])>, SpillError> {
        if self.left == 0 {
            return Ok(None);
        }
        let xid = self.xid;
        let damaged = |what: String| SpillError::Damaged { xid, what };
        if self.left < HEADER as u64 {
            return Err(damaged(format!("{} stray byte(s) at its end", self.left)));
        }
        let mut header = [0u8; HEADER];
        self.reader
            .read_exact(&mut header)
            .map_err(|source| SpillError::Read { xid, source })?;
        let mut len = [0u8; 4];
        len.copy_from_slice(&header[..4]);
        let mut lsn = [0u8; 8];
        lsn.copy_from_slice(&header[4..]);
        let len = u32::from_be_bytes(len);
        let lsn = Lsn(u64::from_be_bytes(lsn));
        self.left -= HEADER as u64;
        if u64::from(len) > self.left {
            return Err(damaged(format!(
                "a record of {len} bytes at {lsn} with {} byte(s) left",
                self.left
            )));
        }
        let len = len as usize;
        if self.buf.capacity() > KEEP_BUFFER && len < KEEP_BUFFER {
            self.buf = Vec::new();
        }
        self.buf.resize(len, 0);
        self.reader
            .read_exact(&mut self.buf)
            .map_err(|source| SpillError::Read { xid, source })?;
        self.left -= len as u64;
        Ok(Some((lsn, &self.buf)))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn all(mut spilled: SpilledTxn) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some((lsn, bytes)) = spilled.records.next_message().unwrap() {
            out.push((lsn.0, bytes.to_vec()));
        }
        out
    }

    fn spill() -> (tempfile::TempDir, Spill) {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path().to_owned());
        (dir, spill)
    }

    #[test]
    fn interleaved_blocks_replay_per_transaction_in_order() {
        let (dir, mut s) = spill();
        s.start_block(7, true).unwrap();
        s.append(Lsn(10), b"a1").unwrap();
        s.append(Lsn(11), b"a2").unwrap();
        s.stop_block().unwrap();
        s.start_block(9, true).unwrap();
        s.append(Lsn(12), b"b1").unwrap();
        s.stop_block().unwrap();
        s.start_block(7, false).unwrap();
        s.append(Lsn(13), &[]).unwrap();
        s.append(Lsn(14), &vec![5u8; 300_000]).unwrap();
        s.stop_block().unwrap();
        assert_eq!(s.transactions(), 2);
        assert_eq!(s.bytes(), (5 * HEADER + 2 + 2 + 2 + 300_000) as u64);
        // Anonymous files: nothing has a name in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let b = s.take(9).unwrap().unwrap();
        assert_eq!(all(b), [(12, b"b1".to_vec())]);
        let a = s.take(7).unwrap().unwrap();
        assert!(a.aborted.is_empty());
        assert_eq!(
            all(a),
            [
                (10, b"a1".to_vec()),
                (11, b"a2".to_vec()),
                (13, vec![]),
                (14, vec![5u8; 300_000])
            ]
        );
        assert_eq!(s.bytes(), 0);
        assert_eq!(s.transactions(), 0);
        assert!(s.take(7).unwrap().is_none());
    }

    #[test]
    fn aborts_drop_the_transaction_or_record_the_subtransaction() {
        let (_dir, mut s) = spill();
        s.start_block(7, true).unwrap();
        s.append(Lsn(1), b"x").unwrap();
        s.stop_block().unwrap();
        s.start_block(8, true).unwrap();
        s.append(Lsn(2), b"y").unwrap();
        s.stop_block().unwrap();
        assert!(s.abort(7, 7).unwrap());
        assert!(s.abort(8, 20).unwrap());
        assert!(s.abort(8, 21).unwrap());
        assert!(!s.abort(99, 99).unwrap());
        assert!(!s.abort(99, 100).unwrap());
        assert_eq!(s.transactions(), 1);
        assert_eq!(s.bytes(), (HEADER + 1) as u64);
        assert!(s.take(7).unwrap().is_none());
        let t = s.take(8).unwrap().unwrap();
        assert!(t.aborted.contains(20) && t.aborted.contains(21) && !t.aborted.contains(8));
        assert_eq!(t.aborted.ranges(), 1);
    }

    #[test]
    fn messages_out_of_order_are_errors() {
        let (_dir, mut s) = spill();
        assert!(matches!(
            s.append(Lsn(1), b"x"),
            Err(SpillError::OutOfOrder(_))
        ));
        assert!(matches!(s.stop_block(), Err(SpillError::OutOfOrder(_))));
        let err = s.start_block(5, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Stream Start continues transaction 5, whose first block was not received"
        );
        s.start_block(5, true).unwrap();
        assert_eq!(s.open_block(), Some(5));
        assert_eq!(
            s.start_block(6, true).unwrap_err().to_string(),
            "Stream Start of transaction 6 inside the stream block of transaction 5"
        );
        assert!(matches!(s.abort(5, 5), Err(SpillError::OutOfOrder(_))));
        assert!(matches!(s.take(5), Err(SpillError::OutOfOrder(_))));
    }

    #[test]
    fn a_first_segment_again_starts_the_transaction_over() {
        let (_dir, mut s) = spill();
        s.start_block(5, true).unwrap();
        s.append(Lsn(1), b"old").unwrap();
        s.stop_block().unwrap();
        s.start_block(5, true).unwrap();
        s.append(Lsn(2), b"new").unwrap();
        s.stop_block().unwrap();
        assert_eq!(s.bytes(), (HEADER + 3) as u64);
        assert_eq!(all(s.take(5).unwrap().unwrap()), [(2, b"new".to_vec())]);
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_panic() {
        let (_dir, mut s) = spill();
        s.start_block(5, true).unwrap();
        s.append(Lsn(1), b"abc").unwrap();
        s.stop_block().unwrap();
        let mut t = s.take(5).unwrap().unwrap();
        // Pretend the file holds more than it does: a whole header more…
        t.records.left += 100;
        assert!(t.records.next_message().unwrap().is_some());
        match t.records.next_message() {
            Err(SpillError::Read { xid: 5, source }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::UnexpectedEof);
            }
            other => panic!(
                "expected a read error, got {:?}",
                other.map(|m| m.map(|(l, _)| l))
            ),
        }
        // …or less than a header.
        let (_dir, mut s) = spill();
        s.start_block(5, true).unwrap();
        s.append(Lsn(1), b"abc").unwrap();
        s.stop_block().unwrap();
        let mut t = s.take(5).unwrap().unwrap();
        t.records.left += 5;
        assert!(t.records.next_message().unwrap().is_some());
        assert_eq!(
            t.records.next_message().unwrap_err().to_string(),
            "the spill file of streamed transaction 5 is damaged: 5 stray byte(s) at its end"
        );
        // And a length beyond the file.
        let (_dir, mut s) = spill();
        s.start_block(6, true).unwrap();
        s.append(Lsn(1), b"abc").unwrap();
        s.stop_block().unwrap();
        let mut t = s.take(6).unwrap().unwrap();
        t.records.left -= 1;
        assert_eq!(
            t.records.next_message().unwrap_err().to_string(),
            "the spill file of streamed transaction 6 is damaged: a record of 3 bytes at 0/1 with 2 byte(s) left"
        );
    }

    #[test]
    fn a_missing_directory_names_the_directory() {
        let mut s = Spill::new(PathBuf::from("/nonexistent/pgsync-spill"));
        let err = s.start_block(3, true).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "cannot create a spill file for streamed transaction 3 in /nonexistent/pgsync-spill: "
            ),
            "{err}"
        );
    }

    #[test]
    fn xid_ranges_merge() {
        let mut set = XidSet::default();
        for x in [5, 7, 6, 10, 9, 3] {
            set.insert(x);
        }
        assert_eq!(set.ranges(), 3); // 3, 5-7, 9-10
        set.insert(4);
        set.insert(8);
        assert_eq!(set.ranges(), 1);
        assert!((3..=10).all(|x| set.contains(x)));
        assert!(!set.contains(2) && !set.contains(11));
        set.insert(u32::MAX);
        set.insert(0);
        assert!(set.contains(u32::MAX) && set.contains(0) && !set.contains(1));
    }

    proptest! {
        #[test]
        fn xid_set_is_a_set(xids in proptest::collection::vec(0u32..64, 0..80), probe in 0u32..70) {
            let mut set = XidSet::default();
            let mut plain = std::collections::BTreeSet::new();
            for x in xids {
                set.insert(x);
                plain.insert(x);
            }
            prop_assert_eq!(set.contains(probe), plain.contains(&probe));
            // Ranges are maximal: as many as runs of consecutive xids.
            let runs = plain.iter().filter(|&&x| x == 0 || !plain.contains(&(x - 1))).count();
            prop_assert_eq!(set.ranges(), runs);
        }
    }
}
