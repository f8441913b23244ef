//! Cutting a large table into chunks that are copied in parallel, each in
//! its own destination transaction, all under the same exported snapshot.
//!
//! - A table with a single-column integer key (the primary key, or a unique
//!   index over one NOT NULL `int2`/`int4`/`int8` column without predicate
//!   or expression) is cut into **key ranges**, their bounds taken from the
//!   snapshot: the exact minimum and maximum, and percentiles of a
//!   `tablesample system` block sample between them.
//! - Any other table is cut into **page ranges** (`ctid >= '(p,0)' and
//!   ctid < '(q,0)'`), which PostgreSQL 14 and later read with a TID range
//!   scan. On PostgreSQL 13 such a table is copied whole: without TID range
//!   scans every chunk would read the whole table.
//!
//! The first chunk has no lower bound and the last no upper bound, so every
//! key value (including keys inserted after the bounds were chosen) and
//! every page belongs to exactly one chunk.
//!
//! A chunk can be resumed on its own (see docs/architecture.md, "resume
//! granularity") only when it is a key range over a column that the stream
//! identifies rows by (it is part of the replica identity) and that reaches
//! the destination: [`Split::Key::resumable`].

use serde::{Deserialize, Serialize};

use crate::sql::{ident, literal};

/// A chunk is at most this many bytes of table (`pg_table_size`, heap and
/// TOAST) unless `$PGSYNC_CHUNK_BYTES` says otherwise.
pub const DEFAULT_CHUNK_BYTES: u64 = 64 << 20;

/// A table is never cut into more chunks than this (its chunks grow
/// instead), which bounds the recorded state.
pub const MAX_CHUNKS: u64 = 1024;

/// How large a chunk may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSizing {
    /// Bytes of table (`pg_table_size`) per chunk.
    pub bytes: u64,
    /// Estimated rows (`reltuples`) per chunk, when set.
    pub rows: Option<u64>,
}

impl Default for ChunkSizing {
    fn default() -> Self {
        ChunkSizing {
            bytes: DEFAULT_CHUNK_BYTES,
            rows: None,
        }
    }
}

impl ChunkSizing {
    /// [`DEFAULT_CHUNK_BYTES`], overridden by `$PGSYNC_CHUNK_BYTES` (bytes)
    /// and `$PGSYNC_CHUNK_ROWS` (rows; unset by default). Meant for tests
    /// and tuning; values that do not parse or are 0 are ignored.
    pub fn from_env() -> ChunkSizing {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|n| *n > 0)
        };
        ChunkSizing {
            bytes: var("PGSYNC_CHUNK_BYTES").unwrap_or(DEFAULT_CHUNK_BYTES),
            rows: var("PGSYNC_CHUNK_ROWS"),
        }
    }

    /// How many chunks a table of `bytes` bytes and about `rows` rows
    /// (`None`: unknown) is cut into: 1 means copied whole.
    pub fn chunks(&self, bytes: u64, rows: Option<u64>) -> u64 {
        let by_bytes = bytes.div_ceil(self.bytes.max(1));
        let by_rows = match (self.rows, rows) {
            (Some(per), Some(rows)) => rows.div_ceil(per.max(1)),
            _ => 1,
        };
        by_bytes.max(by_rows).clamp(1, MAX_CHUNKS)
    }
}

/// How a table is cut. `bounds` are the inner boundaries, ascending: chunk
/// `i` of `bounds.len() + 1` runs from `bounds[i - 1]` (inclusive; none for
/// the first) to `bounds[i]` (exclusive; none for the last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum Split {
    /// Ranges of a single integer key column.
    Key {
        /// The source column.
        column: String,
        /// Inner boundaries (key values).
        bounds: Vec<i64>,
        /// Finished chunks may be kept when an interrupted copy resumes:
        /// the column is part of the replica identity (so the stream names
        /// the old and new key of every change) and is copied to the
        /// destination.
        resumable: bool,
    },
    /// Ranges of heap pages (`ctid`).
    Pages {
        /// Inner boundaries (page numbers).
        bounds: Vec<u32>,
    },
}

/// A chunk's key range: `[lower, upper)`, `None` for an open end.
pub type KeyRange = (Option<i64>, Option<i64>);

impl Split {
    /// Number of chunks.
    pub fn chunks(&self) -> u32 {
        let n = match self {
            Split::Key { bounds, .. } => bounds.len(),
            Split::Pages { bounds } => bounds.len(),
        };
        u32::try_from(n + 1).unwrap_or(u32::MAX)
    }

    /// Whether finished chunks survive a resume (see [`Split::Key`]).
    pub fn resumable(&self) -> bool {
        matches!(
            self,
            Split::Key {
                resumable: true,
                ..
            }
        )
    }

    /// The key range of chunk `i` (key splits only).
    pub fn key_range(&self, i: u32) -> Option<KeyRange> {
        let Split::Key { bounds, .. } = self else {
            return None;
        };
        Some(range_of(bounds, i))
    }

    /// The chunk holding key value `key` (key splits only).
    pub fn chunk_of(&self, key: i64) -> Option<u32> {
        let Split::Key { bounds, .. } = self else {
            return None;
        };
        u32::try_from(bounds.partition_point(|b| *b <= key)).ok()
    }

    /// The source-side condition selecting chunk `i` (no surrounding
    /// parentheses needed: a conjunction of comparisons). Bound values
    /// are SQL literals: COPY takes no parameters.
    pub fn predicate(&self, i: u32) -> String {
        match self {
            Split::Key { column, bounds, .. } => {
                range_condition(&ident(column), range_of(bounds, i), |v| {
                    literal(&v.to_string())
                })
            }
            Split::Pages { bounds } => {
                let (lo, hi) = range_of(bounds, i);
                range_condition("ctid", (lo, hi), |p| {
                    format!("{}::tid", literal(&format!("({p},0)")))
                })
            }
        }
    }

    /// How chunk `i` reads, for messages: `id >= 1000 and id < 2000`.
    pub fn describe(&self, i: u32) -> String {
        match self {
            Split::Key { column, bounds, .. } => {
                range_condition(&ident(column), range_of(bounds, i), |v| v.to_string())
            }
            Split::Pages { bounds } => {
                let (lo, hi) = range_of(bounds, i);
                range_condition("ctid", (lo, hi), |p| format!("'({p},0)'"))
            }
        }
    }
}

fn range_of<T: Copy>(bounds: &[T], i: u32) -> (Option<T>, Option<T>) {
    let i = i as usize;
    let lo = i.checked_sub(1).and_then(|j| bounds.get(j)).copied();
    let hi = bounds.get(i).copied();
    (lo, hi)
}

fn range_condition<T: Copy>(
    column: &str,
    (lo, hi): (Option<T>, Option<T>),
    value: impl Fn(T) -> String,
) -> String {
    match (lo, hi) {
        (None, None) => "true".to_owned(),
        (Some(lo), None) => format!("{column} >= {}", value(lo)),
        (None, Some(hi)) => format!("{column} < {}", value(hi)),
        (Some(lo), Some(hi)) => format!("{column} >= {} and {column} < {}", value(lo), value(hi)),
    }
}

/// Inner boundaries for `chunks` key ranges over `[min, max]`: the sampled
/// percentiles `sample` where they are usable (strictly increasing, inside
/// `(min, max]`), else even steps of the value range.
pub fn key_bounds(min: i64, max: i64, chunks: u64, sample: &[i64]) -> Vec<i64> {
    if chunks <= 1 || max <= min {
        return Vec::new();
    }
    let mut out: Vec<i64> = Vec::new();
    for &v in sample {
        if v > min && v <= max && out.last().is_none_or(|l| v > *l) {
            out.push(v);
        }
    }
    // A sample that lost more than half its boundaries (few pages, many
    // duplicates) is replaced by even steps.
    if (out.len() as u64) * 2 < chunks - 1 {
        out.clear();
        let span = i128::from(max) - i128::from(min) + 1;
        for i in 1..chunks {
            let b = i128::from(min) + span * i128::from(i) / i128::from(chunks);
            let b = i64::try_from(b).unwrap_or(max);
            if b > min && out.last().is_none_or(|l| b > *l) {
                out.push(b);
            }
        }
    }
    out
}

/// Inner boundaries for `chunks` page ranges over `pages` pages.
pub fn page_bounds(pages: u64, chunks: u64) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    if chunks <= 1 {
        return out;
    }
    for i in 1..chunks {
        let b = u32::try_from(pages * i / chunks).unwrap_or(u32::MAX);
        if b > 0 && out.last().is_none_or(|l| b > *l) {
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizing_counts_chunks_by_bytes_and_rows() {
        let s = ChunkSizing {
            bytes: 100,
            rows: None,
        };
        assert_eq!(s.chunks(0, None), 1);
        assert_eq!(s.chunks(100, None), 1);
        assert_eq!(s.chunks(101, Some(1_000_000)), 2);
        let s = ChunkSizing {
            bytes: 1 << 40,
            rows: Some(1000),
        };
        assert_eq!(s.chunks(5000, Some(2500)), 3);
        assert_eq!(s.chunks(5000, None), 1);
        assert_eq!(s.chunks(u64::MAX, None), MAX_CHUNKS);
    }

    #[test]
    fn key_ranges_cover_every_value_once() {
        let split = Split::Key {
            column: "id".into(),
            bounds: vec![10, 20],
            resumable: true,
        };
        assert_eq!(split.chunks(), 3);
        assert_eq!(split.key_range(0), Some((None, Some(10))));
        assert_eq!(split.key_range(1), Some((Some(10), Some(20))));
        assert_eq!(split.key_range(2), Some((Some(20), None)));
        assert_eq!(split.chunk_of(i64::MIN), Some(0));
        assert_eq!(split.chunk_of(9), Some(0));
        assert_eq!(split.chunk_of(10), Some(1));
        assert_eq!(split.chunk_of(19), Some(1));
        assert_eq!(split.chunk_of(20), Some(2));
        assert_eq!(split.chunk_of(i64::MAX), Some(2));
        assert_eq!(split.predicate(0), "\"id\" < '10'");
        assert_eq!(split.predicate(1), "\"id\" >= '10' and \"id\" < '20'");
        assert_eq!(split.describe(2), "\"id\" >= 20");
    }

    #[test]
    fn page_ranges_use_tid_literals() {
        let split = Split::Pages {
            bounds: vec![100, 200],
        };
        assert_eq!(split.predicate(0), "ctid < '(100,0)'::tid");
        assert_eq!(
            split.predicate(1),
            "ctid >= '(100,0)'::tid and ctid < '(200,0)'::tid"
        );
        assert_eq!(split.predicate(2), "ctid >= '(200,0)'::tid");
        assert!(!split.resumable());
        assert_eq!(split.key_range(0), None);
    }

    #[test]
    fn key_bounds_prefer_the_sample_and_fall_back_to_even_steps() {
        assert_eq!(key_bounds(1, 100, 4, &[25, 50, 75]), vec![25, 50, 75]);
        // Duplicates and values outside the range are dropped.
        assert_eq!(key_bounds(1, 100, 3, &[1, 50, 50]), vec![50]);
        // An unusable sample: even steps.
        assert_eq!(key_bounds(1, 100, 4, &[]), vec![26, 51, 76]);
        assert_eq!(key_bounds(5, 5, 4, &[]), Vec::<i64>::new());
        assert_eq!(key_bounds(i64::MIN, i64::MAX, 2, &[]), vec![0]);
        assert_eq!(page_bounds(10, 4), vec![2, 5, 7]);
        assert_eq!(page_bounds(2, 4), vec![1]);
        assert_eq!(page_bounds(0, 4), Vec::<u32>::new());
    }

    #[test]
    fn splits_survive_the_state_format() {
        let split = Split::Key {
            column: "id".into(),
            bounds: vec![-5, 7],
            resumable: false,
        };
        let json = serde_json::to_string(&split).unwrap();
        assert_eq!(
            json,
            r#"{"by":"key","column":"id","bounds":[-5,7],"resumable":false}"#
        );
        assert_eq!(serde_json::from_str::<Split>(&json).unwrap(), split);
    }
}
