//! SQL text built from model values: the one quoting function and the helper
//! objects' names. Pure.

pub mod split;

/// Quotes an identifier the way `quote_ident()` would when in doubt: always
/// double-quoted, embedded `"` doubled (PostgreSQL docs §4.1.1 "Identifiers
/// and Key Words"). Every identifier that reaches SQL goes through here.
/// The name as `quote_ident()` prints it in catalog output (object
/// identities, deparsed constraints): bare when it is lower-case letters,
/// digits and `_` (not first a digit), else double-quoted. (PostgreSQL also
/// quotes key words; a table named like one is not matched bare.)
pub fn ident_as_server_prints(name: &str) -> String {
    let bare = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if bare { name.to_owned() } else { ident(name) }
}

/// `alter table TABLE rename column …` statements renaming each `(from,
/// to)` pair, first to a temporary name `dts_column_N` and then to its
/// target, so that swaps and chains (a → b, b → a) work. `table` is
/// already quoted.
pub fn rename_columns(table: &str, renames: &[(String, String)]) -> Vec<String> {
    let temp = |i: usize| ident(&format!("dts_column_{i}"));
    let away = renames.iter().enumerate().map(|(i, (from, _))| {
        format!(
            "alter table {table} rename column {} to {}",
            ident(from),
            temp(i)
        )
    });
    let back = renames.iter().enumerate().map(|(i, (_, to))| {
        format!(
            "alter table {table} rename column {} to {}",
            temp(i),
            ident(to)
        )
    });
    away.chain(back).collect()
}

pub fn ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

/// A string literal, `'…'` with `'` doubled, for the few places where the
/// protocol has no bind parameters (replication commands, DDL text).
/// With `standard_conforming_strings = on` (the default since 9.1)
/// backslashes are literal; pgsync sets it on every session it opens.
pub fn literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Names of the helper objects pgsync creates on the source (`public.dts_*`,
/// the DTS contract) and on the destination.
pub mod helpers {
    /// Source table whose row apply updates every few seconds; it travels in
    /// the stream so the destination can measure lag in seconds, and it keeps
    /// an idle source's slot advancing.
    pub const HEARTBEAT_TABLE: &str = "dts_postgres_heartbeat";
    /// Destination table holding, per task, the commit LSN of the last source
    /// transaction applied; written in the same destination transaction as
    /// the rows (exactly-once apply).
    pub const PROGRESS_TABLE: &str = "dts_apply_progress";
    /// Source table holding, per task, the last value of every selected
    /// sequence; rewritten (only on change) with each heartbeat, so sequence
    /// positions travel in the stream and the destination keeps in step.
    pub const SEQUENCE_TABLE: &str = "dts_sequence_state";
    /// Schema of the helper objects on both sides.
    pub const SCHEMA: &str = "public";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_hostile_identifiers() {
        assert_eq!(ident("film"), "\"film\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(ident("Ünïcode; drop"), "\"Ünïcode; drop\"");
        assert_eq!(qualified("s.x", "t"), "\"s.x\".\"t\"");
        assert_eq!(literal("it's \\"), "'it''s \\'");
    }
}
