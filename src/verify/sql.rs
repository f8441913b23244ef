//! The SQL `verify` runs, built from a table's shape on one side. Pure.
//!
//! Every summary query has the same three levels, each fenced with
//! `offset 0` so that the planner does not substitute an expression into
//! the level above and compute it twice per row:
//!
//! 1. `rows`: the key columns (or nothing, for a table without a key) and
//!    the row's text form `row(t."a", t."b", …)::text`, restricted to a
//!    key range (`where key >= lo and key < hi`, which an index serves);
//! 2. `hashed`: two 64-bit hashes of the text form (`h1`, `h2`);
//! 3. the aggregate: per bucket (a binary-search `case` tree over the
//!    range's split points) `count(*)`, `sum(h1)`, `sum(h2)`; the sums are
//!    `numeric`, so exact and order-independent.
//!
//! A table without a usable key is keyed by `h1` itself: its "ranges" are
//! ranges of the row hash, so a whole-table mismatch can still be narrowed
//! to a handful of rows (the text form is what is compared, and the same
//! text hashes to the same `h1` on both sides; `ctid` is not comparable
//! across servers).

use crate::sql::{ident, literal};

/// How rows are hashed; both sides must use the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashKind {
    /// `hashtextextended(text, 0)` and `(text, 1)`: the server's own 64-bit
    /// text hash (used for hash partitioning, so stable across versions),
    /// nearly free next to the text conversion. Its result depends on the
    /// CPU's byte order, so it is used only when both servers hash a probe
    /// set of strings identically.
    Hashtext,
    /// The first and second 64 bits of `md5(text)`: portable everywhere,
    /// about twice as slow.
    Md5,
}

/// One key column as one side sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn {
    /// Column name.
    pub name: String,
    /// `format_type(atttypid, atttypmod)` on this side: the cast for split
    /// points (with the typmod: `character` alone would mean `char(1)`).
    pub type_sql: String,
    /// The column is collatable and its collation does not already sort by
    /// bytes: comparisons add `collate "C"` so both sides order keys alike.
    pub collate_c: bool,
}

/// A table as one side queries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideTable {
    /// `"schema"."name"`.
    pub qualified: String,
    /// `from only` (ordinary tables: inheritance children are compared on
    /// their own); partitioned parents are read whole.
    pub only: bool,
    /// The columns compared, in the source's order.
    pub columns: Vec<String>,
    /// The key (empty: keyed by the row hash `h1`).
    pub key: Vec<KeyColumn>,
    /// The task's `where` filter (source side): only the rows it lets
    /// through are compared.
    pub filter: Option<String>,
}

/// A key value: one text per key column (for a keyless table, `h1`).
pub type KeyValue = Vec<String>;

/// `[lo, hi)`; `None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bounds {
    /// Inclusive lower bound.
    pub lo: Option<KeyValue>,
    /// Exclusive upper bound.
    pub hi: Option<KeyValue>,
}

impl SideTable {
    fn keyless(&self) -> bool {
        self.key.is_empty()
    }

    fn relation(&self) -> String {
        self.sampled(None)
    }

    /// The table as `t`, optionally `tablesample system (percent)`.
    fn sampled(&self, percent: Option<f64>) -> String {
        let only = if self.only { "only " } else { "" };
        let sample = percent
            .map(|p| format!(" tablesample system ({p:.4})"))
            .unwrap_or_default();
        match &self.filter {
            // The filter reads the row by the table's own name, as the
            // copy and the stream evaluate it.
            Some(f) => format!(
                "(select * from {only}{}{sample} where ({f})) t",
                self.qualified
            ),
            None => format!("{only}{} t{sample}", self.qualified),
        }
    }

    fn row_text(&self) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("t.{}", ident(c)))
            .collect();
        format!("row({})::text", cols.join(", "))
    }

    /// The key as an expression over alias `alias` (`t` for the table, `s`
    /// for the levels above, where key columns are `k0`, `k1`, …).
    fn key_expr(&self, alias: &str, by_position: bool) -> String {
        if self.keyless() {
            return format!("{alias}.h1");
        }
        let parts: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let col = if by_position {
                    format!("{alias}.k{i}")
                } else {
                    format!("{alias}.{}", ident(&k.name))
                };
                if k.collate_c {
                    format!("{col} collate \"C\"")
                } else {
                    col
                }
            })
            .collect();
        if parts.len() == 1 {
            parts.into_iter().next().unwrap_or_default()
        } else {
            format!("({})", parts.join(", "))
        }
    }

    /// A key value as a typed literal (a row constructor for composite keys).
    fn key_literal(&self, value: &KeyValue) -> String {
        if self.keyless() {
            return format!(
                "{}::int8",
                literal(value.first().map_or("0", String::as_str))
            );
        }
        let parts: Vec<String> = self
            .key
            .iter()
            .zip(value)
            .map(|(k, v)| {
                let lit = format!("{}::{}", literal(v), k.type_sql);
                if k.collate_c {
                    format!("{lit} collate \"C\"")
                } else {
                    lit
                }
            })
            .collect();
        if parts.len() == 1 {
            parts.into_iter().next().unwrap_or_default()
        } else {
            format!("({})", parts.join(", "))
        }
    }

    fn predicate(&self, key: &str, bounds: &Bounds) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(lo) = &bounds.lo {
            parts.push(format!("{key} >= {}", self.key_literal(lo)));
        }
        if let Some(hi) = &bounds.hi {
            parts.push(format!("{key} < {}", self.key_literal(hi)));
        }
        (!parts.is_empty()).then(|| parts.join(" and "))
    }

    /// Levels 1 and 2: `k0…, h1, h2` (and `r`, the text form, when
    /// `with_text`) of the rows in `bounds`, as a subquery named `s`.
    fn hashed(&self, hash: HashKind, bounds: &Bounds, with_text: bool) -> String {
        let keys: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("t.{} as k{i}, ", ident(&k.name)))
            .collect();
        let keys = keys.concat();
        let pass: String = (0..self.key.len()).map(|i| format!("k{i}, ")).collect();
        let filter = if self.keyless() {
            None
        } else {
            self.predicate(&self.key_expr("t", false), bounds)
        };
        let rows = format!(
            "select {keys}{} as r from {}{} offset 0",
            self.row_text(),
            self.relation(),
            filter.map(|f| format!(" where {f}")).unwrap_or_default()
        );
        let text = if with_text { ", r" } else { "" };
        // Keyed tables use h1 and h2 once each above this level, so it need
        // not be fenced; a keyless table's h1 is also its key.
        let fence = if self.keyless() { " offset 0" } else { "" };
        let hashed = match hash {
            HashKind::Hashtext => format!(
                "select {pass}hashtextextended(r, 0) as h1, hashtextextended(r, 1) as h2{text} \
                 from ({rows}) l1{fence}"
            ),
            HashKind::Md5 => format!(
                "select {pass}('x' || substr(m, 1, 16))::bit(64)::int8 as h1, \
                 ('x' || substr(m, 17, 16))::bit(64)::int8 as h2{text} \
                 from (select {pass}md5(r) as m{text} from ({rows}) l1 offset 0) l2{fence}"
            ),
        };
        let keyless_filter = if self.keyless() {
            self.predicate("s.h1", bounds)
        } else {
            None
        };
        match keyless_filter {
            Some(f) => format!("(select * from ({hashed}) s where {f}) s"),
            None => format!("({hashed}) s"),
        }
    }

    /// Per bucket of `bounds` split at `splits` (sorted, inside `bounds`):
    /// `bucket int4, count int8, sum_h1 text, sum_h2 text`. Bucket `i`
    /// holds the keys in `[splits[i-1], splits[i])`; empty buckets are absent.
    pub fn summary_sql(&self, hash: HashKind, bounds: &Bounds, splits: &[KeyValue]) -> String {
        let key = self.key_expr("s", true);
        let tree = self.bucket_tree(&key, splits, 0, splits.len());
        format!(
            "select {tree} as bucket, count(*), coalesce(sum(s.h1), 0)::text, \
             coalesce(sum(s.h2), 0)::text from {} group by 1",
            self.hashed(hash, bounds, false)
        )
    }

    /// Index of the bucket holding `key`: the number of split points at or
    /// below it, found by binary search over `splits[lo..hi]`.
    fn bucket_tree(&self, key: &str, splits: &[KeyValue], lo: usize, hi: usize) -> String {
        if lo >= hi {
            return lo.to_string();
        }
        let mid = lo + (hi - lo) / 2;
        format!(
            "case when {key} < {} then {} else {} end",
            self.key_literal(&splits[mid]),
            self.bucket_tree(key, splits, lo, mid),
            self.bucket_tree(key, splits, mid + 1, hi)
        )
    }

    /// All rows of the table (for choosing split points).
    pub fn count_sql(&self) -> String {
        format!("select count(*) from {}", self.relation())
    }

    /// Split points: every `step`-th key in `bounds` (in the `collate "C"`
    /// order), as text per key column, so buckets hold `step` rows each.
    /// With `sample` (a percentage of the table's pages, keyed tables only)
    /// the keys come from a `tablesample system` block sample instead of
    /// every row, and `step` counts sampled rows: ranges of about equal size
    /// for a fraction of the reading.
    pub fn splits_sql(
        &self,
        hash: HashKind,
        bounds: &Bounds,
        step: i64,
        sample: Option<f64>,
    ) -> String {
        let step = step.max(1);
        if self.keyless() {
            return format!(
                "select k0 from (select s.h1::text as k0, row_number() over (order by s.h1) as rn \
                 from {}) x where (rn - 1) % {step} = 0 and rn > 1",
                self.hashed(hash, bounds, false)
            );
        }
        let cols: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("t.{}::text as k{i}", ident(&k.name)))
            .collect();
        let out: Vec<String> = (0..self.key.len()).map(|i| format!("k{i}")).collect();
        let filter = self
            .predicate(&self.key_expr("t", false), bounds)
            .map(|f| format!(" where {f}"))
            .unwrap_or_default();
        format!(
            "select {} from (select {}, row_number() over (order by {}) as rn from {}{filter}) x \
             where (rn - 1) % {step} = 0 and rn > 1",
            out.join(", "),
            cols.join(", "),
            self.key_expr("t", false),
            self.sampled(sample)
        )
    }

    /// Every row in `bounds`: its key as text per column, `h1`, `h2` as text,
    /// and (for keyless tables, where the key means nothing to people) the
    /// row's text form.
    pub fn rows_sql(&self, hash: HashKind, bounds: &Bounds) -> String {
        let keyless = self.keyless();
        let mut cols: Vec<String> = (0..self.key.len())
            .map(|i| format!("s.k{i}::text"))
            .collect();
        if keyless {
            cols.push("s.h1::text".into());
        }
        cols.push("s.h1::text".into());
        cols.push("s.h2::text".into());
        cols.push(if keyless {
            "s.r".into()
        } else {
            "null::text".into()
        });
        format!(
            "select {} from {} order by {}",
            cols.join(", "),
            self.hashed(hash, bounds, keyless),
            self.key_expr("s", true)
        )
    }

    /// Columns of the key (for the row queries' result width).
    pub fn key_width(&self) -> usize {
        self.key.len().max(1)
    }
}

/// A probe both servers must hash identically for [`HashKind::Hashtext`].
pub const HASH_PROBE_SQL: &str = "select string_agg(hashtextextended(x, s)::text, ',' order by x, s) \
     from unnest(array['', 'pgsync', 'a longer string with spaces, quotes '' and \\ backslashes', \
     'ünïcödé ✓ 𝄞 日本語', repeat('xyz', 1000)]) x, unnest(array[0::int8, 1::int8]) s";

#[cfg(test)]
mod tests {
    use super::*;

    fn table(key: &[(&str, &str, bool)]) -> SideTable {
        SideTable {
            qualified: "\"public\".\"t\"".into(),
            only: true,
            columns: vec!["id".into(), "v".into()],
            filter: None,
            key: key
                .iter()
                .map(|(n, t, c)| KeyColumn {
                    name: (*n).into(),
                    type_sql: (*t).into(),
                    collate_c: *c,
                })
                .collect(),
        }
    }

    #[test]
    fn bucket_tree_counts_split_points_at_or_below_the_key() {
        let t = table(&[("id", "integer", false)]);
        let splits: Vec<KeyValue> = ["10", "20", "30"]
            .iter()
            .map(|s| vec![(*s).into()])
            .collect();
        let tree = t.bucket_tree("k", &splits, 0, splits.len());
        assert_eq!(
            tree,
            "case when k < '20'::integer then case when k < '10'::integer then 0 else 1 end \
             else case when k < '30'::integer then 2 else 3 end end"
        );
        assert_eq!(t.bucket_tree("k", &[], 0, 0), "0");
    }

    #[test]
    fn composite_text_keys_compare_bytewise_as_rows() {
        let t = table(&[("a", "text", true), ("b", "integer", false)]);
        let b = Bounds {
            lo: Some(vec!["x'y".into(), "1".into()]),
            hi: None,
        };
        let sql = t.splits_sql(HashKind::Hashtext, &b, 10, None);
        assert!(
            sql.contains(
                "where (t.\"a\" collate \"C\", t.\"b\") >= ('x''y'::text collate \"C\", '1'::integer)"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("order by (t.\"a\" collate \"C\", t.\"b\")"),
            "{sql}"
        );
    }

    #[test]
    fn big_tables_take_split_points_from_a_block_sample() {
        let t = table(&[("id", "integer", false)]);
        let sql = t.splits_sql(HashKind::Hashtext, &Bounds::default(), 20, Some(2.5));
        assert!(
            sql.contains("from only \"public\".\"t\" t tablesample system (2.5000)"),
            "{sql}"
        );
        assert!(sql.contains("(rn - 1) % 20 = 0 and rn > 1"), "{sql}");
    }

    #[test]
    fn keyless_tables_are_ranged_by_row_hash() {
        let t = table(&[]);
        let b = Bounds {
            lo: None,
            hi: Some(vec!["-5".into()]),
        };
        let sql = t.summary_sql(HashKind::Md5, &b, &[]);
        assert!(sql.contains("where s.h1 < '-5'::int8"), "{sql}");
        assert!(sql.contains("md5(r)"), "{sql}");
        assert!(sql.starts_with("select 0 as bucket"), "{sql}");
    }
}
