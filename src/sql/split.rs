//! Splitting a query string into statements, for DDL replay: an event
//! trigger sees `current_query()`, the whole string a client sent, which may
//! hold several statements (PostgreSQL docs §55.2.2 "Simple Query": a
//! string may contain several statements separated by semicolons).
//!
//! The lexer knows the token kinds that may contain a `;` without ending a
//! statement (PostgreSQL docs §4.1): `'…'` strings (with `''`), `E'…'`
//! strings (with `\` escapes), `"…"` identifiers, `$tag$…$tag$` dollar
//! quotes, `-- …` comments and nested `/* … */` comments. Pure; never
//! panics on any input.

/// One statement of a query string, trimmed, without its `;`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece<'a> {
    /// The statement text (comments kept).
    pub text: &'a str,
    /// The first keywords, lower-case and space-separated, with comments
    /// skipped (e.g. `create table`, `alter table`, `insert into`); at most
    /// four words.
    pub head: String,
}

/// Splits `query` into its non-empty statements.
pub fn split(query: &str) -> Vec<Piece<'_>> {
    let b = query.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b';' => {
                push(query, start, i, &mut out);
                start = i + 1;
                i += 1;
            }
            b'\'' => {
                let escapes = i > 0
                    && matches!(b[i - 1], b'e' | b'E')
                    && !is_ident_byte(b, i.wrapping_sub(2));
                i = skip_quoted(b, i, b'\'', escapes);
            }
            b'"' => i = skip_quoted(b, i, b'"', false),
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i),
            b'$' if i == 0 || !is_ident_byte(b, i - 1) => i = skip_dollar(query, i),
            _ => i += 1,
        }
    }
    push(query, start, b.len(), &mut out);
    out
}

fn is_ident_byte(b: &[u8], at: usize) -> bool {
    b.get(at)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c >= 0x80)
}

fn skip_quoted(b: &[u8], open: usize, quote: u8, backslash: bool) -> usize {
    let mut i = open + 1;
    while i < b.len() {
        if backslash && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

fn skip_block_comment(b: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// `$tag$ … $tag$` where tag is empty or an identifier not starting with a
/// digit; a `$` that opens no such quote (a parameter `$1`) is one byte.
fn skip_dollar(s: &str, open: usize) -> usize {
    let b = s.as_bytes();
    let mut j = open + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
        j += 1;
    }
    if j >= b.len() || b[j] != b'$' || b.get(open + 1).is_some_and(u8::is_ascii_digit) {
        return open + 1;
    }
    let tag = &s[open..=j];
    match s[j + 1..].find(tag) {
        Some(k) => j + 1 + k + tag.len(),
        None => b.len(),
    }
}

fn push<'a>(query: &'a str, start: usize, end: usize, out: &mut Vec<Piece<'a>>) {
    let Some(text) = query.get(start..end) else {
        return;
    };
    let text = text.trim();
    let head = head_words(text);
    if !head.is_empty() {
        out.push(Piece { text, head });
    }
}

/// The first four keywords, skipping comments.
fn head_words(text: &str) -> String {
    let b = text.as_bytes();
    let mut words: Vec<String> = Vec::new();
    let mut i = 0;
    while i < b.len() && words.len() < 4 {
        if b[i].is_ascii_whitespace() {
            i += 1;
        } else if b[i] == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i = skip_block_comment(b, i);
        } else if b[i].is_ascii_alphabetic() {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            words.push(text[s..i].to_ascii_lowercase());
        } else {
            break;
        }
    }
    words.join(" ")
}

/// Whether statement head `head` can be the statement an event trigger
/// reported with command tag `tag` (e.g. `CREATE TABLE` matches `create
/// table`, `create unlogged table` and `create table if`; `CREATE INDEX`
/// matches `create unique index`).
pub fn head_matches_tag(head: &str, tag: &str) -> bool {
    const NOISE: &[&str] = &[
        "or",
        "replace",
        "unique",
        "unlogged",
        "temp",
        "temporary",
        "global",
        "local",
        "materialized",
        "recursive",
        "trusted",
        "procedural",
        "constraint",
        "default",
    ];
    let tag = tag.to_ascii_lowercase();
    let tag_words: Vec<&str> = tag.split_whitespace().collect();
    let head_words: Vec<&str> = head
        .split_whitespace()
        .filter(|w| !NOISE.contains(w))
        .collect();
    let tag_words: Vec<&str> = tag_words
        .into_iter()
        .filter(|w| !NOISE.contains(w))
        .collect();
    !tag_words.is_empty()
        && head_words.len() >= tag_words.len()
        && head_words[..tag_words.len()] == tag_words[..]
}

/// A token of a statement: its byte range and, for an unquoted word, the
/// word in lower case (`None` for quoted names, strings, numbers and
/// punctuation). Comments and white space are skipped.
struct Token {
    start: usize,
    end: usize,
    word: Option<String>,
}

fn tokens(text: &str) -> Vec<Token> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        match b[i] {
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(b, i);
                continue;
            }
            b'\'' => i = skip_quoted(b, i, b'\'', false),
            b'"' => i = skip_quoted(b, i, b'"', false),
            b'$' => i = skip_dollar(text, i),
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                while i < b.len() && is_ident_byte(b, i) {
                    i += 1;
                }
                // E'…' strings: the prefix and the string are one token.
                if i - start == 1 && matches!(c, b'e' | b'E') && b.get(i) == Some(&b'\'') {
                    i = skip_quoted(b, i, b'\'', true);
                    out.push(Token {
                        start,
                        end: i,
                        word: None,
                    });
                    continue;
                }
                out.push(Token {
                    start,
                    end: i,
                    word: text.get(start..i).map(str::to_ascii_lowercase),
                });
                continue;
            }
            _ => i += 1,
        }
        out.push(Token {
            start,
            end: i.min(b.len()),
            word: None,
        });
    }
    out
}

/// The statement without its `CONCURRENTLY`, for `CREATE [UNIQUE] INDEX
/// CONCURRENTLY` and `DROP INDEX CONCURRENTLY`, which PostgreSQL refuses
/// inside a transaction block: the same index results (or goes), built or
/// dropped while holding the table's lock instead. `None` for any other
/// statement. (`DETACH PARTITION … CONCURRENTLY` is not rewritten: unlike
/// the plain form it also leaves a CHECK constraint on the partition.)
pub fn without_concurrently(statement: &str) -> Option<String> {
    let toks = tokens(statement);
    let word = |i: usize| toks.get(i).and_then(|t| t.word.as_deref());
    let at = match (word(0), word(1), word(2)) {
        (Some("create"), Some("index"), Some("concurrently")) => Some(2),
        (Some("create"), Some("unique"), Some("index")) if word(3) == Some("concurrently") => {
            Some(3)
        }
        (Some("drop"), Some("index"), Some("concurrently")) => Some(2),
        _ => None,
    }?;
    let token = &toks[at];
    let before = statement.get(..token.start)?.trim_end();
    let after = statement.get(token.end..)?.trim_start();
    Some(if after.is_empty() {
        before.to_owned()
    } else {
        format!("{before} {after}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(q: &str) -> Vec<&str> {
        split(q).into_iter().map(|p| p.text).collect()
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_comments_and_dollar_bodies() {
        let q = "create table a (x text default ';'); insert into a values ('a;b', E'c\\';d');\n\
                 -- a comment; with a semicolon\n\
                 create function f() returns int language sql as $body$ select 1; $body$;\
                 /* block; /* nested; */ still */ alter table \"we;ird\" add column y int";
        assert_eq!(
            texts(q),
            [
                "create table a (x text default ';')",
                "insert into a values ('a;b', E'c\\';d')",
                "-- a comment; with a semicolon\ncreate function f() returns int language sql as $body$ select 1; $body$",
                "/* block; /* nested; */ still */ alter table \"we;ird\" add column y int",
            ]
        );
        let heads: Vec<String> = split(q).into_iter().map(|p| p.head).collect();
        assert_eq!(
            heads,
            [
                "create table a",
                "insert into a values",
                "create function f",
                "alter table"
            ]
        );
    }

    #[test]
    fn parameters_are_not_dollar_quotes_and_empty_statements_vanish() {
        assert_eq!(
            texts("select $1; ;; select $$a;b$$"),
            ["select $1", "select $$a;b$$"]
        );
    }

    #[test]
    fn tags_match_statement_heads() {
        assert!(head_matches_tag("create unlogged table t", "CREATE TABLE"));
        assert!(head_matches_tag("create unique index on", "CREATE INDEX"));
        assert!(head_matches_tag(
            "create or replace function",
            "CREATE FUNCTION"
        ));
        assert!(head_matches_tag("alter table t add", "ALTER TABLE"));
        assert!(!head_matches_tag("select f", "CREATE TABLE"));
        assert!(!head_matches_tag("create index", "CREATE TABLE"));
    }

    #[test]
    fn concurrently_is_removed_where_it_keeps_a_statement_out_of_transactions() {
        assert_eq!(
            without_concurrently("create index concurrently i on t (v)").as_deref(),
            Some("create index i on t (v)")
        );
        assert_eq!(
            without_concurrently(
                "CREATE UNIQUE INDEX /* c */ CONCURRENTLY IF NOT EXISTS \"Concurrently\" ON t (concurrently(v))"
            )
            .as_deref(),
            Some("CREATE UNIQUE INDEX /* c */ IF NOT EXISTS \"Concurrently\" ON t (concurrently(v))")
        );
        assert_eq!(
            without_concurrently("drop index\n  concurrently if exists s.i").as_deref(),
            Some("drop index if exists s.i")
        );
        assert_eq!(
            without_concurrently("alter table p detach partition p1 concurrently"),
            None
        );
        assert_eq!(without_concurrently("create index i on t (v)"), None);
        assert_eq!(
            without_concurrently("alter table t add column concurrently int"),
            None
        );
        assert_eq!(
            without_concurrently("create index i on t (v) where v <> 'concurrently'"),
            None
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(q in "\\PC{0,200}") {
            let _ = split(&q);
            let _ = without_concurrently(&q);
        }
        #[test]
        fn never_panics_on_sql_like_bytes(q in "[-$;'\"/*a-z E\\\\\\n]{0,120}") {
            let _ = split(&q);
            let _ = without_concurrently(&q);
        }
    }
}
