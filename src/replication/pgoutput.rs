//! The pgoutput decoder: bytes in, [`Message`]s out. No tokio, no I/O.
//!
//! Formats: PostgreSQL docs §55.9 "Logical Replication Message Formats"
//! (protocol versions 1 and 2), §55.5 "Logical Streaming Replication
//! Protocol" for the plugin options. Each `XLogData` of the replication
//! stream ([`super::frame`]) carries exactly one of these messages.
//!
//! Invariants and contract:
//! - [`decode`] never panics, whatever the bytes: every read is checked,
//!   wire counts are signed and a negative one is an error, no allocation is
//!   sized by a count beyond what the remaining bytes can hold, and a
//!   message must use its frame exactly (trailing bytes are an error). The
//!   `deny` list below makes clippy hold the non-test code to it; proptests
//!   back it up.
//! - Messages borrow from the frame. Names are `&str` (invalid UTF-8 is a
//!   [`DecodeError`]); column values stay bytes, as the server sent them.
//! - The decoder holds no state. In protocol version 2 the Relation, Type,
//!   Insert, Update, Delete, Truncate and Message messages sent between
//!   Stream Start and Stream Stop carry the xid of the streamed transaction
//!   after the tag, so the caller says whether it is inside such a block
//!   (`in_stream`); the caller also keeps the relation cache (a Relation
//!   message precedes the first change of a relation in each session and
//!   after each schema change).
//! - A [`Datum::UnchangedToast`] column means "keep the target's value":
//!   the server did not send a TOASTed value that the change did not touch.

use std::fmt;

use super::wire::Reader;
use crate::model::Lsn;

/// A PostgreSQL object identifier (relation or type OID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Oid(pub u32);

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One pgoutput message, borrowing from the frame it came from
/// (§55.9 "Logical Replication Message Formats").
///
/// Timestamps are microseconds since 2000-01-01 00:00:00 UTC, as on the
/// wire. Fields named `xid: Option<u32>` are `Some` exactly when the message
/// was decoded with `in_stream = true` (protocol version 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// `B`: a transaction starts.
    Begin(Begin),
    /// `M`: a logical decoding message (`pg_logical_emit_message`).
    LogicalMessage(LogicalMessage<'a>),
    /// `C`: the transaction started by the last Begin commits.
    Commit(Commit),
    /// `O`: the transaction was replayed from a replication origin.
    Origin(Origin<'a>),
    /// `R`: the shape of a relation, sent before its first change.
    Relation(Relation<'a>),
    /// `Y`: a non-built-in type used by a relation's column.
    Type(Type<'a>),
    /// `I`: a row was inserted.
    Insert(Insert<'a>),
    /// `U`: a row was updated.
    Update(Update<'a>),
    /// `D`: a row was deleted.
    Delete(Delete<'a>),
    /// `T`: relations were truncated.
    Truncate(Truncate),
    /// `S` (protocol 2): a block of a streamed, still running transaction.
    StreamStart(StreamStart),
    /// `E` (protocol 2): the block started by the last Stream Start ends.
    StreamStop,
    /// `c` (protocol 2): a streamed transaction commits.
    StreamCommit(StreamCommit),
    /// `A` (protocol 2): a streamed (sub)transaction aborts.
    StreamAbort(StreamAbort),
}

/// Begin (`B`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begin {
    /// The LSN of the transaction's commit record.
    pub final_lsn: Lsn,
    /// Commit time, microseconds since 2000-01-01 UTC.
    pub commit_time: i64,
    /// The transaction id.
    pub xid: u32,
}

/// Commit (`C`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Flags; currently unused by the server (0).
    pub flags: u8,
    /// The LSN of the commit record.
    pub commit_lsn: Lsn,
    /// The end LSN of the transaction: the position to confirm once applied.
    pub end_lsn: Lsn,
    /// Commit time, microseconds since 2000-01-01 UTC.
    pub commit_time: i64,
}

/// Logical decoding message (`M`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalMessage<'a> {
    /// The streamed transaction's xid, inside a stream block.
    pub xid: Option<u32>,
    /// Whether the message is part of its transaction (flags bit 1); a
    /// non-transactional one arrives outside Begin/Commit.
    pub transactional: bool,
    /// The LSN of the message.
    pub lsn: Lsn,
    /// The prefix given to `pg_logical_emit_message`.
    pub prefix: &'a str,
    /// The content, as bytes.
    pub content: &'a [u8],
}

/// Origin (`O`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The commit LSN on the origin server.
    pub commit_lsn: Lsn,
    /// The origin's name.
    pub name: &'a str,
}

/// Replica identity setting of a relation (`pg_class.relreplident`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicaIdentity {
    /// `d`: the primary key.
    Default,
    /// `n`: nothing; updates and deletes carry no old values.
    Nothing,
    /// `f`: all columns; old tuples are sent whole (`O`).
    Full,
    /// `i`: a chosen unique index.
    Index,
}

/// Relation (`R`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation<'a> {
    /// The streamed transaction's xid, inside a stream block.
    pub xid: Option<u32>,
    /// The relation's OID, which later changes refer to.
    pub id: Oid,
    /// Schema name; empty for `pg_catalog`.
    pub namespace: &'a str,
    /// Relation name.
    pub name: &'a str,
    /// The relation's replica identity.
    pub replica_identity: ReplicaIdentity,
    /// The published columns, in tuple order.
    pub columns: Vec<Column<'a>>,
}

/// One column of a [`Relation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column<'a> {
    /// Flags; [`Column::KEY`] marks a replica identity column.
    pub flags: u8,
    /// Column name.
    pub name: &'a str,
    /// The column type's OID.
    pub type_oid: Oid,
    /// Type modifier (`atttypmod`), -1 when none.
    pub type_modifier: i32,
}

impl Column<'_> {
    /// The flag bit marking the column as part of the replica identity key.
    pub const KEY: u8 = 1;

    /// Whether the column is part of the replica identity key.
    pub fn is_key(&self) -> bool {
        self.flags & Column::KEY != 0
    }
}

/// Type (`Y`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Type<'a> {
    /// The streamed transaction's xid, inside a stream block.
    pub xid: Option<u32>,
    /// The type's OID.
    pub id: Oid,
    /// Schema name; empty for `pg_catalog`.
    pub namespace: &'a str,
    /// Type name.
    pub name: &'a str,
}

/// Insert (`I`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insert<'a> {
    /// The streamed transaction's xid, inside a stream block.
    pub xid: Option<u32>,
    /// The relation's OID.
    pub rel: Oid,
    /// The new row (`N`).
    pub new: Tuple<'a>,
}

/// Update (`U`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update<'a> {
    /// The streamed transaction's xid, inside a stream block.
    pub xid: Option<u32>,
    /// The relation's OID.
    pub rel: Oid,
    /// The old key (`K`, when the key changed) or old row (`O`, replica
    /// identity full); absent otherwise.
    pub old: Option<OldTuple<'a>>,
    /// The new row (`N`).
    pub new: Tuple<'a>,
}

/// Delete (`D`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete<'a> {
    /// The streamed transaction's xid, inside a stream block.
    pub xid: Option<u32>,
    /// The relation's OID.
    pub rel: Oid,
    /// The old key (`K`) or old row (`O`).
    pub old: OldTuple<'a>,
}

/// The old values sent with an Update or Delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldTuple<'a> {
    /// `K`: the replica identity key columns; the other columns are null.
    Key(Tuple<'a>),
    /// `O`: the whole old row (replica identity full).
    Full(Tuple<'a>),
}

/// Truncate (`T`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncate {
    /// The streamed transaction's xid, inside a stream block.
    pub xid: Option<u32>,
    /// `CASCADE` / `RESTART IDENTITY`.
    pub options: TruncateOptions,
    /// The truncated relations (a cascade lists every one).
    pub rels: Vec<Oid>,
}

/// The option bits of a [`Truncate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TruncateOptions(pub u8);

impl TruncateOptions {
    /// Bit 1: `TRUNCATE … CASCADE`.
    pub const CASCADE: u8 = 1;
    /// Bit 2: `TRUNCATE … RESTART IDENTITY`.
    pub const RESTART_IDENTITY: u8 = 2;

    /// Whether `CASCADE` was given.
    pub fn cascade(self) -> bool {
        self.0 & Self::CASCADE != 0
    }

    /// Whether `RESTART IDENTITY` was given.
    pub fn restart_identity(self) -> bool {
        self.0 & Self::RESTART_IDENTITY != 0
    }
}

/// Stream Start (`S`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStart {
    /// The streamed transaction's xid.
    pub xid: u32,
    /// Whether this is the transaction's first block.
    pub first_segment: bool,
}

/// Stream Commit (`c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCommit {
    /// The streamed transaction's xid.
    pub xid: u32,
    /// Flags; currently unused by the server (0).
    pub flags: u8,
    /// The LSN of the commit record.
    pub commit_lsn: Lsn,
    /// The end LSN of the transaction: the position to confirm once applied.
    pub end_lsn: Lsn,
    /// Commit time, microseconds since 2000-01-01 UTC.
    pub commit_time: i64,
}

/// Stream Abort (`A`), protocol version 2 (no abort LSN or time: those
/// come with version 4's parallel streaming).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAbort {
    /// The streamed (top-level) transaction's xid.
    pub xid: u32,
    /// The aborted subtransaction's xid; equal to `xid` when the whole
    /// transaction aborts.
    pub subxid: u32,
}

/// The column values of a row (TupleData), in the order of the relation's
/// columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuple<'a>(pub Vec<Datum<'a>>);

/// One column value of a [`Tuple`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datum<'a> {
    /// `n`: SQL null.
    Null,
    /// `u`: an unchanged TOASTed value that was not sent; keep the target's.
    UnchangedToast,
    /// `t`: the value in PostgreSQL text format. PG→PG needs no typed
    /// decoding: the sink binds it back as text with a cast.
    Text(&'a [u8]),
    /// `b`: the value in binary (send/recv) format (`binary` option).
    Binary(&'a [u8]),
}

/// Why a frame is not a valid message. Offsets are bytes from the start of
/// the decoded buffer (for [`super::frame::decode`], the CopyData payload;
/// for [`decode`], the pgoutput message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame ends inside a field.
    #[error("frame ends at byte {at}, {needed} more byte(s) expected")]
    Truncated {
        /// Offset of the field that does not fit.
        at: usize,
        /// How many bytes are missing.
        needed: usize,
    },
    /// A message, tuple or column tag that the format does not define.
    #[error("unknown {what} tag {tag:#04x} at byte {at}")]
    UnknownTag {
        /// Which tag ("message", "column", …).
        what: &'static str,
        /// The byte found.
        tag: u8,
        /// Its offset.
        at: usize,
    },
    /// A signed count or length below zero.
    #[error("negative {what} {count} at byte {at}")]
    NegativeCount {
        /// Which count.
        what: &'static str,
        /// The value read.
        count: i32,
        /// Its offset.
        at: usize,
    },
    /// A string runs to the end of the frame without its nul terminator.
    #[error("{what} at byte {at} has no terminating nul byte")]
    UnterminatedString {
        /// Which string.
        what: &'static str,
        /// Offset of the string.
        at: usize,
    },
    /// A name is not UTF-8.
    #[error("{what} is not valid utf-8 at byte {at}")]
    InvalidUtf8 {
        /// Which string.
        what: &'static str,
        /// Offset of the first invalid byte.
        at: usize,
    },
    /// A boolean byte that is neither 0 nor 1.
    #[error("invalid {what} {value} at byte {at}")]
    InvalidFlag {
        /// Which flag.
        what: &'static str,
        /// The byte found.
        value: u8,
        /// Its offset.
        at: usize,
    },
    /// Bytes left over after a complete message.
    #[error("{count} unexpected byte(s) after the message at byte {at}")]
    TrailingBytes {
        /// Offset of the first extra byte.
        at: usize,
        /// How many extra bytes.
        count: usize,
    },
}

impl DecodeError {
    /// The byte offset the error names.
    pub fn offset(&self) -> usize {
        match *self {
            DecodeError::Truncated { at, .. }
            | DecodeError::UnknownTag { at, .. }
            | DecodeError::NegativeCount { at, .. }
            | DecodeError::UnterminatedString { at, .. }
            | DecodeError::InvalidUtf8 { at, .. }
            | DecodeError::InvalidFlag { at, .. }
            | DecodeError::TrailingBytes { at, .. } => at,
        }
    }
}

/// Decodes one pgoutput message (§55.9), protocol version 1 or 2.
///
/// `in_stream` says whether the message arrived between a Stream Start and
/// the matching Stream Stop (protocol version 2, `streaming` on): there,
/// Relation, Type, Insert, Update, Delete, Truncate and Message carry the
/// transaction's xid after the tag. It changes nothing for other messages.
///
/// Never panics.
///
/// # Errors
/// [`DecodeError`] when the bytes are not exactly one well-formed message.
pub fn decode(frame: &[u8], in_stream: bool) -> Result<Message<'_>, DecodeError> {
    let mut r = Reader::new(frame);
    let message = match r.u8()? {
        b'B' => Message::Begin(Begin {
            final_lsn: lsn(&mut r)?,
            commit_time: r.i64()?,
            xid: r.u32()?,
        }),
        b'M' => Message::LogicalMessage(LogicalMessage {
            xid: stream_xid(&mut r, in_stream)?,
            transactional: r.flag("message flags")?,
            lsn: lsn(&mut r)?,
            prefix: r.cstr("message prefix")?,
            content: {
                let len = r.count_i32("message length")?;
                r.take(len)?
            },
        }),
        b'C' => Message::Commit(Commit {
            flags: r.u8()?,
            commit_lsn: lsn(&mut r)?,
            end_lsn: lsn(&mut r)?,
            commit_time: r.i64()?,
        }),
        b'O' => Message::Origin(Origin {
            commit_lsn: lsn(&mut r)?,
            name: r.cstr("origin name")?,
        }),
        b'R' => Message::Relation(Relation {
            xid: stream_xid(&mut r, in_stream)?,
            id: oid(&mut r)?,
            namespace: r.cstr("namespace")?,
            name: r.cstr("relation name")?,
            replica_identity: replica_identity(&mut r)?,
            columns: columns(&mut r)?,
        }),
        b'Y' => Message::Type(Type {
            xid: stream_xid(&mut r, in_stream)?,
            id: oid(&mut r)?,
            namespace: r.cstr("namespace")?,
            name: r.cstr("type name")?,
        }),
        b'I' => Message::Insert(Insert {
            xid: stream_xid(&mut r, in_stream)?,
            rel: oid(&mut r)?,
            new: {
                r.expect(b'N', "insert tuple")?;
                tuple(&mut r)?
            },
        }),
        b'U' => {
            let xid = stream_xid(&mut r, in_stream)?;
            let rel = oid(&mut r)?;
            let at = r.pos();
            let (old, new) = match r.u8()? {
                b'N' => (None, tuple(&mut r)?),
                b'K' => (Some(OldTuple::Key(tuple(&mut r)?)), new_tuple(&mut r)?),
                b'O' => (Some(OldTuple::Full(tuple(&mut r)?)), new_tuple(&mut r)?),
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "update tuple",
                        tag,
                        at,
                    });
                }
            };
            Message::Update(Update { xid, rel, old, new })
        }
        b'D' => {
            let xid = stream_xid(&mut r, in_stream)?;
            let rel = oid(&mut r)?;
            let at = r.pos();
            let old = match r.u8()? {
                b'K' => OldTuple::Key(tuple(&mut r)?),
                b'O' => OldTuple::Full(tuple(&mut r)?),
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "delete tuple",
                        tag,
                        at,
                    });
                }
            };
            Message::Delete(Delete { xid, rel, old })
        }
        b'T' => {
            let xid = stream_xid(&mut r, in_stream)?;
            let count = r.count_i32("relation count")?;
            let options = TruncateOptions(r.u8()?);
            // Each OID takes 4 bytes: the count cannot size the allocation
            // beyond what is left.
            let mut rels = Vec::with_capacity(count.min(r.remaining() / 4));
            for _ in 0..count {
                rels.push(oid(&mut r)?);
            }
            Message::Truncate(Truncate { xid, options, rels })
        }
        b'S' => Message::StreamStart(StreamStart {
            xid: r.u32()?,
            first_segment: r.flag("first segment flag")?,
        }),
        b'E' => Message::StreamStop,
        b'c' => Message::StreamCommit(StreamCommit {
            xid: r.u32()?,
            flags: r.u8()?,
            commit_lsn: lsn(&mut r)?,
            end_lsn: lsn(&mut r)?,
            commit_time: r.i64()?,
        }),
        b'A' => Message::StreamAbort(StreamAbort {
            xid: r.u32()?,
            subxid: r.u32()?,
        }),
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "message",
                tag,
                at: 0,
            });
        }
    };
    r.finish()?;
    Ok(message)
}

fn lsn(r: &mut Reader<'_>) -> Result<Lsn, DecodeError> {
    Ok(Lsn(r.u64()?))
}

fn oid(r: &mut Reader<'_>) -> Result<Oid, DecodeError> {
    Ok(Oid(r.u32()?))
}

fn stream_xid(r: &mut Reader<'_>, in_stream: bool) -> Result<Option<u32>, DecodeError> {
    if in_stream {
        r.u32().map(Some)
    } else {
        Ok(None)
    }
}

fn replica_identity(r: &mut Reader<'_>) -> Result<ReplicaIdentity, DecodeError> {
    let at = r.pos();
    match r.u8()? {
        b'd' => Ok(ReplicaIdentity::Default),
        b'n' => Ok(ReplicaIdentity::Nothing),
        b'f' => Ok(ReplicaIdentity::Full),
        b'i' => Ok(ReplicaIdentity::Index),
        tag => Err(DecodeError::UnknownTag {
            what: "replica identity",
            tag,
            at,
        }),
    }
}

fn columns<'a>(r: &mut Reader<'a>) -> Result<Vec<Column<'a>>, DecodeError> {
    /// Flags, an empty name with its nul, type OID and modifier.
    const MIN_COLUMN_LEN: usize = 10;
    let count = r.count_i16("column count")?;
    let mut columns = Vec::with_capacity(count.min(r.remaining() / MIN_COLUMN_LEN));
    for _ in 0..count {
        columns.push(Column {
            flags: r.u8()?,
            name: r.cstr("column name")?,
            type_oid: oid(r)?,
            type_modifier: r.i32()?,
        });
    }
    Ok(columns)
}

/// `N` and a TupleData, after an old tuple.
fn new_tuple<'a>(r: &mut Reader<'a>) -> Result<Tuple<'a>, DecodeError> {
    r.expect(b'N', "new tuple")?;
    tuple(r)
}

fn tuple<'a>(r: &mut Reader<'a>) -> Result<Tuple<'a>, DecodeError> {
    let count = r.count_i16("column count")?;
    // Every column needs at least its 1-byte tag: the count cannot size the
    // allocation beyond what is left.
    let mut datums = Vec::with_capacity(count.min(r.remaining()));
    for _ in 0..count {
        let at = r.pos();
        datums.push(match r.u8()? {
            b'n' => Datum::Null,
            b'u' => Datum::UnchangedToast,
            b't' => {
                let len = r.count_i32("value length")?;
                Datum::Text(r.take(len)?)
            }
            b'b' => {
                let len = r.count_i32("value length")?;
                Datum::Binary(r.take(len)?)
            }
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "column",
                    tag,
                    at,
                });
            }
        });
    }
    Ok(Tuple(datums))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::arithmetic_side_effects
)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::replication::testing::{W, apply, edit, golden, golden_frames};

    fn text(v: &str) -> Datum<'_> {
        Datum::Text(v.as_bytes())
    }

    fn ok(frame: &[u8]) -> Message<'_> {
        decode(frame, false).unwrap()
    }

    // ---- one test per message kind, from hand-encoded bytes ----------------

    #[test]
    fn decodes_begin() {
        let frame = W::tag(b'B').u64(0x16_B374_D848).i64(-5).u32(7).done();
        assert_eq!(
            ok(&frame),
            Message::Begin(Begin {
                final_lsn: Lsn(0x16_B374_D848),
                commit_time: -5,
                xid: 7
            })
        );
    }

    #[test]
    fn decodes_commit() {
        let frame = W::tag(b'C').u8(0).u64(10).u64(20).i64(30).done();
        assert_eq!(
            ok(&frame),
            Message::Commit(Commit {
                flags: 0,
                commit_lsn: Lsn(10),
                end_lsn: Lsn(20),
                commit_time: 30
            })
        );
    }

    #[test]
    fn decodes_origin() {
        let frame = W::tag(b'O').u64(99).cstr("upstream").done();
        assert_eq!(
            ok(&frame),
            Message::Origin(Origin {
                commit_lsn: Lsn(99),
                name: "upstream"
            })
        );
    }

    #[test]
    fn decodes_logical_messages() {
        let frame = W::tag(b'M')
            .u8(1)
            .u64(5)
            .cstr("pfx")
            .i32(3)
            .bytes(b"a\0b")
            .done();
        assert_eq!(
            ok(&frame),
            Message::LogicalMessage(LogicalMessage {
                xid: None,
                transactional: true,
                lsn: Lsn(5),
                prefix: "pfx",
                content: b"a\0b"
            })
        );
        let empty = W::tag(b'M').u8(0).u64(5).cstr("").i32(0).done();
        let Message::LogicalMessage(m) = ok(&empty) else {
            panic!("expected a message")
        };
        assert!(!m.transactional);
        assert_eq!((m.prefix, m.content), ("", b"".as_slice()));
    }

    #[test]
    fn decodes_relation() {
        let frame = W::tag(b'R')
            .u32(16389)
            .cstr("")
            .cstr("t")
            .u8(b'i')
            .i16(2)
            .u8(1)
            .cstr("id")
            .u32(23)
            .i32(-1)
            .u8(0)
            .cstr("note")
            .u32(1043)
            .i32(24)
            .done();
        let Message::Relation(rel) = ok(&frame) else {
            panic!("expected a relation")
        };
        assert_eq!(
            rel,
            Relation {
                xid: None,
                id: Oid(16389),
                namespace: "",
                name: "t",
                replica_identity: ReplicaIdentity::Index,
                columns: vec![
                    Column {
                        flags: 1,
                        name: "id",
                        type_oid: Oid(23),
                        type_modifier: -1
                    },
                    Column {
                        flags: 0,
                        name: "note",
                        type_oid: Oid(1043),
                        type_modifier: 24
                    },
                ],
            }
        );
        assert!(rel.columns[0].is_key());
        assert!(!rel.columns[1].is_key());
    }

    #[test]
    fn decodes_every_replica_identity() {
        for (tag, identity) in [
            (b'd', ReplicaIdentity::Default),
            (b'n', ReplicaIdentity::Nothing),
            (b'f', ReplicaIdentity::Full),
            (b'i', ReplicaIdentity::Index),
        ] {
            let frame = W::tag(b'R')
                .u32(1)
                .cstr("s")
                .cstr("r")
                .u8(tag)
                .i16(0)
                .done();
            let Message::Relation(rel) = ok(&frame) else {
                panic!("expected a relation")
            };
            assert_eq!(rel.replica_identity, identity);
            assert!(rel.columns.is_empty());
        }
    }

    #[test]
    fn decodes_type() {
        let frame = W::tag(b'Y').u32(16385).cstr("public").cstr("mood").done();
        assert_eq!(
            ok(&frame),
            Message::Type(Type {
                xid: None,
                id: Oid(16385),
                namespace: "public",
                name: "mood"
            })
        );
    }

    #[test]
    fn decodes_insert_with_every_column_kind() {
        let frame = W::tag(b'I')
            .u32(42)
            .u8(b'N')
            .i16(5)
            .u8(b'n')
            .u8(b'u')
            .text("x y")
            .text("")
            .u8(b'b')
            .i32(2)
            .bytes(&[0, 255])
            .done();
        assert_eq!(
            ok(&frame),
            Message::Insert(Insert {
                xid: None,
                rel: Oid(42),
                new: Tuple(vec![
                    Datum::Null,
                    Datum::UnchangedToast,
                    text("x y"),
                    text(""),
                    Datum::Binary(&[0, 255]),
                ]),
            })
        );
    }

    #[test]
    fn decodes_updates_with_and_without_old_values() {
        let new_only = W::tag(b'U').u32(1).u8(b'N').i16(1).text("b").done();
        assert_eq!(
            ok(&new_only),
            Message::Update(Update {
                xid: None,
                rel: Oid(1),
                old: None,
                new: Tuple(vec![text("b")])
            })
        );
        let with_key = W::tag(b'U')
            .u32(1)
            .u8(b'K')
            .i16(2)
            .text("1")
            .u8(b'n')
            .u8(b'N')
            .i16(2)
            .text("2")
            .u8(b'u');
        assert_eq!(
            ok(&with_key.done()),
            Message::Update(Update {
                xid: None,
                rel: Oid(1),
                old: Some(OldTuple::Key(Tuple(vec![text("1"), Datum::Null]))),
                new: Tuple(vec![text("2"), Datum::UnchangedToast]),
            })
        );
        let full = W::tag(b'U')
            .u32(1)
            .u8(b'O')
            .i16(1)
            .text("a")
            .u8(b'N')
            .i16(1)
            .text("b")
            .done();
        assert_eq!(
            ok(&full),
            Message::Update(Update {
                xid: None,
                rel: Oid(1),
                old: Some(OldTuple::Full(Tuple(vec![text("a")]))),
                new: Tuple(vec![text("b")]),
            })
        );
    }

    #[test]
    fn decodes_deletes() {
        let key = W::tag(b'D').u32(3).u8(b'K').i16(1).text("7").done();
        assert_eq!(
            ok(&key),
            Message::Delete(Delete {
                xid: None,
                rel: Oid(3),
                old: OldTuple::Key(Tuple(vec![text("7")]))
            })
        );
        let full = W::tag(b'D')
            .u32(3)
            .u8(b'O')
            .i16(2)
            .text("7")
            .u8(b'n')
            .done();
        assert_eq!(
            ok(&full),
            Message::Delete(Delete {
                xid: None,
                rel: Oid(3),
                old: OldTuple::Full(Tuple(vec![text("7"), Datum::Null]))
            })
        );
    }

    #[test]
    fn decodes_truncate_and_its_options() {
        let frame = W::tag(b'T').i32(2).u8(3).u32(10).u32(11).done();
        let Message::Truncate(t) = ok(&frame) else {
            panic!("expected a truncate")
        };
        assert_eq!(
            t,
            Truncate {
                xid: None,
                options: TruncateOptions(3),
                rels: vec![Oid(10), Oid(11)]
            }
        );
        assert!(t.options.cascade() && t.options.restart_identity());
        for (bits, cascade, restart) in [(0, false, false), (1, true, false), (2, false, true)] {
            let options = TruncateOptions(bits);
            assert_eq!(
                (options.cascade(), options.restart_identity()),
                (cascade, restart)
            );
        }
        let none = W::tag(b'T').i32(0).u8(0).done();
        let Message::Truncate(t) = ok(&none) else {
            panic!("expected a truncate")
        };
        assert!(t.rels.is_empty());
    }

    #[test]
    fn decodes_stream_control_messages() {
        assert_eq!(
            ok(&W::tag(b'S').u32(748).u8(1).done()),
            Message::StreamStart(StreamStart {
                xid: 748,
                first_segment: true
            })
        );
        assert_eq!(
            ok(&W::tag(b'S').u32(748).u8(0).done()),
            Message::StreamStart(StreamStart {
                xid: 748,
                first_segment: false
            })
        );
        assert_eq!(ok(b"E"), Message::StreamStop);
        assert_eq!(
            ok(&W::tag(b'c').u32(748).u8(0).u64(1).u64(2).i64(3).done()),
            Message::StreamCommit(StreamCommit {
                xid: 748,
                flags: 0,
                commit_lsn: Lsn(1),
                end_lsn: Lsn(2),
                commit_time: 3
            })
        );
        assert_eq!(
            ok(&W::tag(b'A').u32(748).u32(750).done()),
            Message::StreamAbort(StreamAbort {
                xid: 748,
                subxid: 750
            })
        );
    }

    /// The xid a message carries inside a stream block, and the message
    /// without it.
    fn split_xid(message: Message<'_>) -> (Option<u32>, Message<'_>) {
        match message {
            Message::LogicalMessage(mut m) => (m.xid.take(), Message::LogicalMessage(m)),
            Message::Relation(mut m) => (m.xid.take(), Message::Relation(m)),
            Message::Type(mut m) => (m.xid.take(), Message::Type(m)),
            Message::Insert(mut m) => (m.xid.take(), Message::Insert(m)),
            Message::Update(mut m) => (m.xid.take(), Message::Update(m)),
            Message::Delete(mut m) => (m.xid.take(), Message::Delete(m)),
            Message::Truncate(mut m) => (m.xid.take(), Message::Truncate(m)),
            other => (None, other),
        }
    }

    /// Valid protocol-1 frames of the seven kinds that carry an xid when
    /// streamed.
    fn streamable_frames() -> Vec<Vec<u8>> {
        vec![
            W::tag(b'M')
                .u8(1)
                .u64(5)
                .cstr("p")
                .i32(1)
                .bytes(b"x")
                .done(),
            W::tag(b'R')
                .u32(1)
                .cstr("s")
                .cstr("r")
                .u8(b'd')
                .i16(1)
                .u8(1)
                .cstr("id")
                .u32(23)
                .i32(-1)
                .done(),
            W::tag(b'Y').u32(2).cstr("s").cstr("ty").done(),
            W::tag(b'I').u32(1).u8(b'N').i16(1).text("1").done(),
            W::tag(b'U')
                .u32(1)
                .u8(b'O')
                .i16(1)
                .text("1")
                .u8(b'N')
                .i16(1)
                .text("2")
                .done(),
            W::tag(b'D').u32(1).u8(b'K').i16(1).text("1").done(),
            W::tag(b'T').i32(1).u8(1).u32(1).done(),
        ]
    }

    #[test]
    fn in_a_stream_block_changes_carry_the_xid_after_the_tag() {
        for frame in streamable_frames() {
            let mut streamed = vec![frame[0]];
            streamed.extend(748u32.to_be_bytes());
            streamed.extend(&frame[1..]);
            let (xid, message) = split_xid(decode(&streamed, true).unwrap());
            assert_eq!(xid, Some(748), "tag {}", frame[0] as char);
            assert_eq!(message, ok(&frame), "tag {}", frame[0] as char);
            assert_eq!(split_xid(ok(&frame)).0, None);
        }
    }

    #[test]
    fn in_stream_changes_nothing_for_other_messages() {
        for frame in [
            W::tag(b'B').u64(1).i64(2).u32(3).done(),
            W::tag(b'C').u8(0).u64(1).u64(2).i64(3).done(),
            W::tag(b'O').u64(1).cstr("o").done(),
            W::tag(b'S').u32(1).u8(1).done(),
            W::tag(b'E').done(),
            W::tag(b'c').u32(1).u8(0).u64(1).u64(2).i64(3).done(),
            W::tag(b'A').u32(1).u32(1).done(),
        ] {
            assert_eq!(decode(&frame, true), decode(&frame, false));
            assert!(decode(&frame, true).is_ok());
        }
    }

    // ---- malformed input -------------------------------------------------

    #[test]
    fn unknown_message_tag_is_an_error() {
        assert_eq!(
            decode(b"Z", false),
            Err(DecodeError::UnknownTag {
                what: "message",
                tag: b'Z',
                at: 0
            })
        );
        assert_eq!(
            decode(b"", false),
            Err(DecodeError::Truncated { at: 0, needed: 1 })
        );
    }

    #[test]
    fn negative_column_count_is_an_error() {
        let frame = [b'I', 0, 0, 0, 1, b'N', 0xff, 0xff];
        assert_eq!(
            decode(&frame, false),
            Err(DecodeError::NegativeCount {
                what: "column count",
                count: -1,
                at: 6
            })
        );
    }

    #[test]
    fn negative_lengths_and_counts_are_errors() {
        let value = W::tag(b'I').u32(1).u8(b'N').i16(1).u8(b't').i32(-2).done();
        assert_eq!(
            decode(&value, false),
            Err(DecodeError::NegativeCount {
                what: "value length",
                count: -2,
                at: 9
            })
        );
        let binary = W::tag(b'I')
            .u32(1)
            .u8(b'N')
            .i16(1)
            .u8(b'b')
            .i32(i32::MIN)
            .done();
        assert!(matches!(
            decode(&binary, false),
            Err(DecodeError::NegativeCount { at: 9, .. })
        ));
        let truncate = W::tag(b'T').i32(-1).u8(0).done();
        assert_eq!(
            decode(&truncate, false),
            Err(DecodeError::NegativeCount {
                what: "relation count",
                count: -1,
                at: 1
            })
        );
        let message = W::tag(b'M').u8(1).u64(0).cstr("p").i32(-1).done();
        assert_eq!(
            decode(&message, false),
            Err(DecodeError::NegativeCount {
                what: "message length",
                count: -1,
                at: 12
            })
        );
        let columns = W::tag(b'R')
            .u32(1)
            .cstr("s")
            .cstr("r")
            .u8(b'd')
            .i16(i16::MIN)
            .done();
        assert!(matches!(
            decode(&columns, false),
            Err(DecodeError::NegativeCount { at: 10, .. })
        ));
    }

    #[test]
    fn huge_counts_fail_without_allocating_for_them() {
        let tuple = W::tag(b'I').u32(1).u8(b'N').i16(i16::MAX).u8(b'n').done();
        assert_eq!(
            decode(&tuple, false),
            Err(DecodeError::Truncated { at: 9, needed: 1 })
        );
        let truncate = W::tag(b'T').i32(i32::MAX).u8(0).u32(1).done();
        assert_eq!(
            decode(&truncate, false),
            Err(DecodeError::Truncated { at: 10, needed: 4 })
        );
        let value = W::tag(b'I')
            .u32(1)
            .u8(b'N')
            .i16(1)
            .u8(b't')
            .i32(i32::MAX)
            .bytes(b"ab")
            .done();
        assert_eq!(
            decode(&value, false),
            Err(DecodeError::Truncated {
                at: 13,
                needed: i32::MAX as usize - 2
            })
        );
    }

    #[test]
    fn unknown_column_and_tuple_tags_name_their_offset() {
        let column = W::tag(b'I').u32(1).u8(b'N').i16(2).u8(b'n').u8(b'x').done();
        assert_eq!(
            decode(&column, false),
            Err(DecodeError::UnknownTag {
                what: "column",
                tag: b'x',
                at: 9
            })
        );
        let insert = W::tag(b'I').u32(1).u8(b'K').i16(0).done();
        assert_eq!(
            decode(&insert, false),
            Err(DecodeError::UnknownTag {
                what: "insert tuple",
                tag: b'K',
                at: 5
            })
        );
        let update = W::tag(b'U').u32(1).u8(b'X').i16(0).done();
        assert_eq!(
            decode(&update, false),
            Err(DecodeError::UnknownTag {
                what: "update tuple",
                tag: b'X',
                at: 5
            })
        );
        let update_new = W::tag(b'U').u32(1).u8(b'K').i16(0).u8(b'O').i16(0).done();
        assert_eq!(
            decode(&update_new, false),
            Err(DecodeError::UnknownTag {
                what: "new tuple",
                tag: b'O',
                at: 8
            })
        );
        let delete = W::tag(b'D').u32(1).u8(b'N').i16(0).done();
        assert_eq!(
            decode(&delete, false),
            Err(DecodeError::UnknownTag {
                what: "delete tuple",
                tag: b'N',
                at: 5
            })
        );
        let identity = W::tag(b'R')
            .u32(1)
            .cstr("s")
            .cstr("r")
            .u8(b'x')
            .i16(0)
            .done();
        assert_eq!(
            decode(&identity, false),
            Err(DecodeError::UnknownTag {
                what: "replica identity",
                tag: b'x',
                at: 9
            })
        );
    }

    #[test]
    fn invalid_utf8_in_a_name_is_an_error_not_a_panic() {
        let frame = W::tag(b'R')
            .u32(1)
            .cstr("public")
            .bytes(b"t\xc3(\0")
            .u8(b'd')
            .i16(0)
            .done();
        assert_eq!(
            decode(&frame, false),
            Err(DecodeError::InvalidUtf8 {
                what: "relation name",
                at: 13
            })
        );
        let origin = W::tag(b'O').u64(1).bytes(b"\xff\0").done();
        assert_eq!(
            decode(&origin, false),
            Err(DecodeError::InvalidUtf8 {
                what: "origin name",
                at: 9
            })
        );
    }

    #[test]
    fn a_name_without_terminator_is_an_error() {
        let frame = W::tag(b'Y').u32(1).cstr("public").bytes(b"mood").done();
        assert_eq!(
            decode(&frame, false),
            Err(DecodeError::UnterminatedString {
                what: "type name",
                at: 12
            })
        );
    }

    #[test]
    fn boolean_bytes_must_be_zero_or_one() {
        let message = W::tag(b'M').u8(2).u64(0).cstr("p").i32(0).done();
        assert_eq!(
            decode(&message, false),
            Err(DecodeError::InvalidFlag {
                what: "message flags",
                value: 2,
                at: 1
            })
        );
        let start = W::tag(b'S').u32(1).u8(7).done();
        assert_eq!(
            decode(&start, false),
            Err(DecodeError::InvalidFlag {
                what: "first segment flag",
                value: 7,
                at: 5
            })
        );
    }

    #[test]
    fn trailing_bytes_after_any_message_are_rejected() {
        for (name, frame, in_stream) in golden_frames() {
            let mut longer = frame.to_vec();
            longer.push(0);
            assert_eq!(
                decode(&longer, in_stream),
                Err(DecodeError::TrailingBytes {
                    at: frame.len(),
                    count: 1
                }),
                "{name}"
            );
        }
        assert_eq!(
            decode(b"Exyz", false),
            Err(DecodeError::TrailingBytes { at: 1, count: 3 })
        );
    }

    #[test]
    fn every_prefix_of_a_valid_frame_is_an_error() {
        let hand = streamable_frames().into_iter().map(|f| (f, false));
        let golden = golden_frames().into_iter().map(|(_, f, s)| (f.to_vec(), s));
        for (frame, in_stream) in hand.chain(golden) {
            assert!(decode(&frame, in_stream).is_ok());
            for len in 0..frame.len() {
                let err = decode(&frame[..len], in_stream).unwrap_err();
                assert!(
                    matches!(
                        err,
                        DecodeError::Truncated { .. } | DecodeError::UnterminatedString { .. }
                    ),
                    "{err} for a {len}-byte prefix of {frame:?}"
                );
                assert!(err.offset() <= len);
            }
        }
    }

    #[test]
    fn error_messages_are_lowercase_and_name_the_offset() {
        let err = decode(&[b'I', 0, 0, 0, 1, b'N', 0xff, 0xff], false).unwrap_err();
        assert_eq!(err.to_string(), "negative column count -1 at byte 6");
        assert_eq!(err.offset(), 6);
        assert_eq!(
            decode(b"B", false).unwrap_err().to_string(),
            "frame ends at byte 1, 8 more byte(s) expected"
        );
        assert_eq!(
            decode(b"q", false).unwrap_err().to_string(),
            "unknown message tag 0x71 at byte 0"
        );
    }

    // ---- golden frames from PostgreSQL 15 --------------------------------
    //
    // Captured with pg_logical_slot_get_binary_changes by
    // testdata/pgoutput/capture.sh; testdata/pgoutput/README.md lists the SQL.
    // LSNs, xids, OIDs and times below are those of that capture.

    #[test]
    fn every_captured_frame_is_in_the_golden_list() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/pgoutput");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter_map(|f| Some(f.strip_prefix("pg15_")?.strip_suffix(".bin")?.to_owned()))
            // sequences and CopyData payloads are tested elsewhere
            .filter(|name| !name.ends_with("_sequence") && !name.starts_with("copydata_"))
            .collect();
        on_disk.sort();
        let mut listed: Vec<&str> = golden_frames().into_iter().map(|(name, ..)| name).collect();
        listed.sort_unstable();
        assert_eq!(on_disk, listed);
        for (name, frame, in_stream) in golden_frames() {
            assert!(decode(frame, in_stream).is_ok(), "{name}");
        }
    }

    fn golden(frame: &[u8], in_stream: bool) -> Message<'_> {
        decode(frame, in_stream).unwrap()
    }

    #[test]
    fn golden_begin_and_commit() {
        assert_eq!(
            golden(golden!("begin"), false),
            Message::Begin(Begin {
                final_lsn: "0/1547C10".parse().unwrap(),
                commit_time: 849_307_480_194_654,
                xid: 734,
            })
        );
        assert_eq!(
            golden(golden!("commit"), false),
            Message::Commit(Commit {
                flags: 0,
                commit_lsn: "0/1547C10".parse().unwrap(),
                end_lsn: "0/1547C40".parse().unwrap(),
                commit_time: 849_307_480_194_654,
            })
        );
    }

    #[test]
    fn golden_relations() {
        let int4 = |name| Column {
            flags: 1,
            name,
            type_oid: Oid(23),
            type_modifier: -1,
        };
        let col = |name, oid, typmod| Column {
            flags: 0,
            name,
            type_oid: Oid(oid),
            type_modifier: typmod,
        };
        assert_eq!(
            golden(golden!("relation_t"), false),
            Message::Relation(Relation {
                xid: None,
                id: Oid(16389),
                namespace: "public",
                name: "t",
                replica_identity: ReplicaIdentity::Default,
                // note varchar(20): typmod 20 + 4
                columns: vec![int4("id"), col("body", 25, -1), col("note", 1043, 24)],
            })
        );
        // REPLICA IDENTITY FULL marks every column as key.
        assert_eq!(
            golden(golden!("relation_full"), false),
            Message::Relation(Relation {
                xid: None,
                id: Oid(16396),
                namespace: "public",
                name: "f",
                replica_identity: ReplicaIdentity::Full,
                columns: vec![
                    int4("id"),
                    Column {
                        flags: 1,
                        ..col("v", 25, -1)
                    }
                ],
            })
        );
        assert_eq!(
            golden(golden!("relation_parent"), false),
            Message::Relation(Relation {
                xid: None,
                id: Oid(16402),
                namespace: "public",
                name: "parent",
                replica_identity: ReplicaIdentity::Default,
                columns: vec![int4("id"), col("v", 25, -1)],
            })
        );
        assert_eq!(
            golden(golden!("relation_child"), false),
            Message::Relation(Relation {
                xid: None,
                id: Oid(16409),
                namespace: "public",
                name: "child",
                replica_identity: ReplicaIdentity::Default,
                columns: vec![int4("id"), col("parent_id", 23, -1)],
            })
        );
        let relation_m = Relation {
            xid: None,
            id: Oid(16419),
            namespace: "public",
            name: "m",
            replica_identity: ReplicaIdentity::Default,
            columns: vec![int4("id"), col("feeling", 16385, -1)],
        };
        assert_eq!(
            golden(golden!("relation_m"), false),
            Message::Relation(relation_m.clone())
        );
        assert_eq!(
            golden(golden!("stream_relation_m"), true),
            Message::Relation(Relation {
                xid: Some(748),
                ..relation_m
            })
        );
    }

    #[test]
    fn golden_insert_of_a_toasted_value_sends_it_whole() {
        let Message::Insert(insert) = golden(golden!("insert_toasted"), false) else {
            panic!("expected an insert");
        };
        assert_eq!((insert.xid, insert.rel), (None, Oid(16389)));
        let [id, Datum::Text(body), note] = insert.new.0.as_slice() else {
            panic!("expected three columns, the second text: {:?}", insert.new);
        };
        assert_eq!((*id, *note), (text("1"), text("first")));
        // 125 md5 digests of setseed(0.5) random() values.
        assert_eq!(body.len(), 4000);
        assert!(body.starts_with(b"2bffb502c463c4f143c4641a7334918"));
        assert!(body.iter().all(u8::is_ascii_hexdigit));
    }

    #[test]
    fn golden_update_keeps_the_unchanged_toast_column_unsent() {
        assert_eq!(
            golden(golden!("update_unchanged_toast"), false),
            Message::Update(Update {
                xid: None,
                rel: Oid(16389),
                old: None,
                new: Tuple(vec![text("1"), Datum::UnchangedToast, text("second")]),
            })
        );
    }

    #[test]
    fn golden_key_change_sends_the_old_key() {
        assert_eq!(
            golden(golden!("update_key"), false),
            Message::Update(Update {
                xid: None,
                rel: Oid(16389),
                old: Some(OldTuple::Key(Tuple(vec![
                    text("1"),
                    Datum::Null,
                    Datum::Null
                ]))),
                new: Tuple(vec![text("2"), Datum::UnchangedToast, text("second")]),
            })
        );
        assert_eq!(
            golden(golden!("delete_key"), false),
            Message::Delete(Delete {
                xid: None,
                rel: Oid(16389),
                old: OldTuple::Key(Tuple(vec![text("2"), Datum::Null, Datum::Null])),
            })
        );
    }

    #[test]
    fn golden_nulls_and_binary_columns() {
        assert_eq!(
            golden(golden!("insert_null"), false),
            Message::Insert(Insert {
                xid: None,
                rel: Oid(16389),
                new: Tuple(vec![text("3"), Datum::Null, text("nulls")]),
            })
        );
        // binary 'true': int4 4 in network order, text and varchar as bytes
        assert_eq!(
            golden(golden!("insert_binary"), false),
            Message::Insert(Insert {
                xid: None,
                rel: Oid(16389),
                new: Tuple(vec![
                    Datum::Binary(&[0, 0, 0, 4]),
                    Datum::Binary(b"short"),
                    Datum::Binary(b"binary"),
                ]),
            })
        );
    }

    #[test]
    fn golden_replica_identity_full_sends_old_rows() {
        assert_eq!(
            golden(golden!("insert_full"), false),
            Message::Insert(Insert {
                xid: None,
                rel: Oid(16396),
                new: Tuple(vec![text("1"), text("a")])
            })
        );
        assert_eq!(
            golden(golden!("update_full"), false),
            Message::Update(Update {
                xid: None,
                rel: Oid(16396),
                old: Some(OldTuple::Full(Tuple(vec![text("1"), text("a")]))),
                new: Tuple(vec![text("1"), text("b")]),
            })
        );
        assert_eq!(
            golden(golden!("delete_full"), false),
            Message::Delete(Delete {
                xid: None,
                rel: Oid(16396),
                old: OldTuple::Full(Tuple(vec![text("1"), text("b")])),
            })
        );
    }

    #[test]
    fn golden_truncate_cascade_restart_identity() {
        let Message::Truncate(truncate) =
            golden(golden!("truncate_cascade_restart_identity"), false)
        else {
            panic!("expected a truncate");
        };
        assert_eq!(
            truncate,
            Truncate {
                xid: None,
                options: TruncateOptions(
                    TruncateOptions::CASCADE | TruncateOptions::RESTART_IDENTITY
                ),
                rels: vec![Oid(16402), Oid(16409)],
            }
        );
        assert!(truncate.options.cascade() && truncate.options.restart_identity());
    }

    #[test]
    fn golden_logical_messages() {
        assert_eq!(
            golden(golden!("begin_message"), false),
            Message::Begin(Begin {
                final_lsn: "0/1549AF0".parse().unwrap(),
                commit_time: 849_307_480_385_401,
                xid: 744,
            })
        );
        assert_eq!(
            golden(golden!("message_transactional"), false),
            Message::LogicalMessage(LogicalMessage {
                xid: None,
                transactional: true,
                lsn: "0/1549AF0".parse().unwrap(),
                prefix: "p",
                content: b"hello",
            })
        );
        assert_eq!(
            golden(golden!("commit_message"), false),
            Message::Commit(Commit {
                flags: 0,
                commit_lsn: "0/1549AF0".parse().unwrap(),
                end_lsn: "0/1549B20".parse().unwrap(),
                commit_time: 849_307_480_385_401,
            })
        );
        assert_eq!(
            golden(golden!("message_nontransactional"), false),
            Message::LogicalMessage(LogicalMessage {
                xid: None,
                transactional: false,
                lsn: "0/1549B58".parse().unwrap(),
                prefix: "p",
                content: b"bye",
            })
        );
    }

    #[test]
    fn golden_type_precedes_a_relation_using_it() {
        assert_eq!(
            golden(golden!("type_mood"), false),
            Message::Type(Type {
                xid: None,
                id: Oid(16385),
                namespace: "public",
                name: "mood"
            })
        );
        assert_eq!(
            golden(golden!("insert_enum"), false),
            Message::Insert(Insert {
                xid: None,
                rel: Oid(16419),
                new: Tuple(vec![text("1"), text("happy")])
            })
        );
    }

    #[test]
    fn golden_origin() {
        assert_eq!(
            golden(golden!("origin"), false),
            Message::Origin(Origin {
                commit_lsn: "0/ABCDEF".parse().unwrap(),
                name: "upstream"
            })
        );
    }

    #[test]
    fn golden_streamed_changes_carry_the_xid() {
        let xid = Some(748);
        assert_eq!(
            golden(golden!("stream_start_first"), false),
            Message::StreamStart(StreamStart {
                xid: 748,
                first_segment: true
            })
        );
        assert_eq!(
            golden(golden!("stream_message"), true),
            Message::LogicalMessage(LogicalMessage {
                xid,
                transactional: true,
                lsn: "0/1549DB8".parse().unwrap(),
                prefix: "p",
                content: b"streamed",
            })
        );
        assert_eq!(
            golden(golden!("stream_type"), true),
            Message::Type(Type {
                xid,
                id: Oid(16385),
                namespace: "public",
                name: "mood"
            })
        );
        assert_eq!(
            golden(golden!("stream_insert_enum"), true),
            Message::Insert(Insert {
                xid,
                rel: Oid(16419),
                new: Tuple(vec![text("2"), text("sad")])
            })
        );
        assert_eq!(
            golden(golden!("stream_update_full"), true),
            Message::Update(Update {
                xid,
                rel: Oid(16396),
                old: Some(OldTuple::Full(Tuple(vec![text("3"), text("streamed")]))),
                new: Tuple(vec![text("3"), text("streamed too")]),
            })
        );
        assert_eq!(
            golden(golden!("stream_delete_full"), true),
            Message::Delete(Delete {
                xid,
                rel: Oid(16396),
                old: OldTuple::Full(Tuple(vec![text("3"), text("streamed too")])),
            })
        );
        assert_eq!(
            golden(golden!("stream_truncate"), true),
            Message::Truncate(Truncate {
                xid,
                options: TruncateOptions(0),
                rels: vec![Oid(16409)]
            })
        );
        assert_eq!(golden(golden!("stream_stop"), true), Message::StreamStop);
        assert_eq!(
            golden(golden!("stream_commit"), false),
            Message::StreamCommit(StreamCommit {
                xid: 748,
                flags: 0,
                commit_lsn: "0/155CF80".parse().unwrap(),
                end_lsn: "0/155D050".parse().unwrap(),
                commit_time: 849_307_480_620_365,
            })
        );
        // Without the stream flag the xid is misread and the frame rejected.
        assert!(decode(golden!("stream_insert_enum"), false).is_err());
        assert!(decode(golden!("stream_relation_m"), false).is_err());
    }

    #[test]
    fn golden_stream_aborts() {
        assert_eq!(
            golden(golden!("stream_start_continued"), false),
            Message::StreamStart(StreamStart {
                xid: 749,
                first_segment: false
            })
        );
        assert_eq!(
            golden(golden!("stream_abort_subtransaction"), false),
            Message::StreamAbort(StreamAbort {
                xid: 749,
                subxid: 750
            })
        );
        assert_eq!(
            golden(golden!("stream_abort"), false),
            Message::StreamAbort(StreamAbort {
                xid: 749,
                subxid: 749
            })
        );
    }

    /// Splits pg15_stream_commit_sequence.bin: frames each preceded by a
    /// big-endian u32 length.
    fn sequence(mut bytes: &[u8]) -> Vec<&[u8]> {
        let mut frames = Vec::new();
        while let Some((len, rest)) = bytes.split_first_chunk::<4>() {
            let (frame, rest) = rest.split_at(u32::from_be_bytes(*len) as usize);
            frames.push(frame);
            bytes = rest;
        }
        assert!(bytes.is_empty());
        frames
    }

    #[test]
    fn golden_streamed_transaction_decodes_in_order() {
        let mut in_stream = false;
        let (mut blocks, mut inserts, mut relations) = (0, 0, Vec::new());
        let mut last = None;
        for frame in sequence(golden!("stream_commit_sequence")) {
            let message = decode(frame, in_stream).unwrap();
            match &message {
                Message::StreamStart(start) => {
                    assert!(!in_stream);
                    assert_eq!((start.xid, start.first_segment), (748, blocks == 0));
                    in_stream = true;
                    blocks += 1;
                }
                Message::StreamStop => {
                    assert!(in_stream);
                    in_stream = false;
                }
                Message::StreamCommit(commit) => {
                    assert!(!in_stream);
                    assert_eq!(commit.xid, 748);
                }
                other => {
                    assert!(in_stream, "{other:?} outside a stream block");
                    let (xid, message) = split_xid(message.clone());
                    assert_eq!(xid, Some(748), "{message:?}");
                    match message {
                        Message::Insert(_) => inserts += 1,
                        Message::Relation(r) => relations.push(r.name),
                        _ => {}
                    }
                }
            }
            last = Some(message);
        }
        assert!(matches!(last, Some(Message::StreamCommit(_))));
        assert_eq!(blocks, 2);
        // one enum row and 70 rows of `big`
        assert_eq!(inserts, 71);
        assert_eq!(relations, ["m", "f", "child", "big"]);
    }

    // ---- never panics ----------------------------------------------------

    /// Hand-built and captured frames, for mutation.
    fn corpus() -> Vec<Vec<u8>> {
        let mut frames = streamable_frames();
        frames.extend(golden_frames().into_iter().map(|(_, f, _)| f.to_vec()));
        frames
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn never_panics(frame in proptest::collection::vec(any::<u8>(), 0..512), in_stream: bool) {
            let _ = decode(&frame, in_stream);
        }

        #[test]
        fn never_panics_after_a_valid_tag(
            tag in prop::sample::select(b"BMCORYIUDTSEcA".to_vec()),
            rest in proptest::collection::vec(any::<u8>(), 0..64),
            in_stream: bool,
        ) {
            let mut frame = vec![tag];
            frame.extend(rest);
            let _ = decode(&frame, in_stream);
        }

        #[test]
        fn never_panics_on_mutated_valid_frames(
            pick in any::<prop::sample::Index>(),
            edits in proptest::collection::vec(edit(), 1..6),
            in_stream: bool,
        ) {
            let corpus = corpus();
            let frame = apply(&corpus[pick.index(corpus.len())], &edits);
            if let Err(err) = decode(&frame, in_stream) {
                prop_assert!(err.offset() <= frame.len());
            }
        }
    }
}
