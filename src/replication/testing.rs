//! Test support shared by the decoders' tests: a frame builder, the golden
//! frames captured from PostgreSQL 15 and byte-level mutations for the
//! "never panics" proptests.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::as_conversions,
    clippy::arithmetic_side_effects
)]

use proptest::prelude::*;

/// Builds test frames field by field, as §55.9 lays them out.
pub(crate) struct W(Vec<u8>);

impl W {
    pub(crate) fn tag(tag: u8) -> W {
        W(vec![tag])
    }
    pub(crate) fn u8(mut self, v: u8) -> W {
        self.0.push(v);
        self
    }
    pub(crate) fn i16(mut self, v: i16) -> W {
        self.0.extend(v.to_be_bytes());
        self
    }
    pub(crate) fn u32(mut self, v: u32) -> W {
        self.0.extend(v.to_be_bytes());
        self
    }
    pub(crate) fn i32(mut self, v: i32) -> W {
        self.0.extend(v.to_be_bytes());
        self
    }
    pub(crate) fn u64(mut self, v: u64) -> W {
        self.0.extend(v.to_be_bytes());
        self
    }
    pub(crate) fn i64(mut self, v: i64) -> W {
        self.0.extend(v.to_be_bytes());
        self
    }
    pub(crate) fn bytes(mut self, v: &[u8]) -> W {
        self.0.extend(v);
        self
    }
    pub(crate) fn cstr(self, v: &str) -> W {
        self.bytes(v.as_bytes()).u8(0)
    }
    /// A `t` column.
    pub(crate) fn text(self, v: &str) -> W {
        self.u8(b't').i32(v.len() as i32).bytes(v.as_bytes())
    }
    pub(crate) fn done(self) -> Vec<u8> {
        self.0
    }
}

macro_rules! golden {
    ($name:literal) => {
        include_bytes!(concat!("../../testdata/pgoutput/pg15_", $name, ".bin")).as_slice()
    };
}
pub(crate) use golden;

/// Every single-frame capture (`pg15_NAME.bin`), with whether it was sent
/// inside a stream block. testdata/pgoutput/README.md lists the SQL.
pub(crate) fn golden_frames() -> Vec<(&'static str, &'static [u8], bool)> {
    macro_rules! frames {
        ($in_stream:literal: $($name:literal),* $(,)?) => {
            [$(($name, golden!($name), $in_stream)),*]
        };
    }
    let outside = frames![false:
        "begin",
        "relation_t",
        "insert_toasted",
        "commit",
        "update_unchanged_toast",
        "update_key",
        "delete_key",
        "insert_null",
        "insert_binary",
        "relation_full",
        "insert_full",
        "update_full",
        "delete_full",
        "relation_parent",
        "relation_child",
        "truncate_cascade_restart_identity",
        "begin_message",
        "message_transactional",
        "commit_message",
        "message_nontransactional",
        "type_mood",
        "relation_m",
        "insert_enum",
        "origin",
        "stream_start_first",
        "stream_commit",
        "stream_start_continued",
        "stream_abort_subtransaction",
        "stream_abort",
    ];
    let inside = frames![true:
        "stream_message",
        "stream_type",
        "stream_relation_m",
        "stream_insert_enum",
        "stream_update_full",
        "stream_delete_full",
        "stream_truncate",
        "stream_stop",
    ];
    outside.into_iter().chain(inside).collect()
}

/// A byte-level edit of a valid frame.
#[derive(Debug, Clone)]
pub(crate) enum Edit {
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
    Truncate(prop::sample::Index),
}

/// Mostly overwrites (biased towards bytes that make counts negative, huge
/// or zero), some insertions, removals and truncations.
pub(crate) fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        // 0xff / 0x7f / 0x80 / 0 make counts negative, huge or empty
        2 => (any::<prop::sample::Index>(), prop::sample::select(vec![0, 0x7f, 0x80, 0xff]))
            .prop_map(|(i, b)| Edit::Set(i, b)),
        1 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => any::<prop::sample::Index>().prop_map(Edit::Remove),
        1 => any::<prop::sample::Index>().prop_map(Edit::Truncate),
    ]
}

/// `frame` with `edits` applied in order.
pub(crate) fn apply(frame: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = frame.to_vec();
    for edit in edits {
        match edit {
            Edit::Set(i, b) if !out.is_empty() => {
                let i = i.index(out.len());
                out[i] = *b;
            }
            Edit::Insert(i, b) => {
                let i = i.index(out.len() + 1);
                out.insert(i, *b);
            }
            Edit::Remove(i) if !out.is_empty() => {
                let i = i.index(out.len());
                out.remove(i);
            }
            Edit::Truncate(i) => {
                let len = i.index(out.len() + 1);
                out.truncate(len);
            }
            _ => {}
        }
    }
    out
}
