//! "Did you mean" suggestions and word lists for hints.

/// Optimal-string-alignment distance: insertions, deletions, substitutions
/// and swaps of two neighbouring characters each cost 1.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a typo: a
/// case-only difference, or at most 1 edit for words under 6 characters and
/// at most 2 edits otherwise, and fewer edits than `word` has characters.
pub(crate) fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let len = word.chars().count();
    let limit = (len / 3).clamp(1, 2);
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit && *d < len)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "`a`, `b` and `c`" (or "`a` or `b`" with `conjunction` "or").
pub(crate) fn list(words: &[&str], conjunction: &str) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} {conjunction} {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_swaps_as_one_edit() {
        let cases = [
            ("host", "host", 0),
            ("hots", "host", 1),
            ("prot", "port", 1),
            ("databse", "database", 1),
            ("", "abc", 3),
            ("user", "username", 4),
        ];
        for (a, b, want) in cases {
            assert_eq!(distance(a, b), want, "{a} vs {b}");
        }
    }

    #[test]
    fn closest_suggests_only_plausible_typos() {
        let attrs = [
            "host", "port", "database", "user", "password", "sslmode", "a",
        ];
        let cases = [
            ("hots", Some("host")),
            ("HOST", Some("host")),
            ("pasword", Some("password")),
            ("ssl_mode", Some("sslmode")),
            ("databse", Some("database")),
            ("colour", None),
            ("x", None),
            ("b", None),
        ];
        for (word, want) in cases {
            assert_eq!(closest(word, attrs), want, "{word}");
        }
    }

    #[test]
    fn list_joins_like_prose() {
        assert_eq!(list(&["a"], "or"), "`a`");
        assert_eq!(list(&["a", "b"], "or"), "`a` or `b`");
        assert_eq!(list(&["a", "b", "c"], "and"), "`a`, `b` and `c`");
    }
}
