//! The text form of a verify [`Report`].

use std::fmt::Write;

use super::sql::Bounds;
use super::{Report, RowsReport, TableStatus, Verdict};

/// Ranges printed per table (`--json` has them all).
const SHOWN_RANGES: usize = 20;
/// Keys printed per list (`--json` has them all).
const SHOWN_KEYS: usize = 50;

/// `id`, `(a, b)`, or `row hash` for a keyless table.
fn key_label(key: &[String]) -> String {
    match key {
        [] => "row hash".to_owned(),
        [one] => one.clone(),
        many => format!("({})", many.join(", ")),
    }
}

fn value(v: &[String]) -> String {
    match v {
        [one] => one.clone(),
        many => format!("({})", many.join(", ")),
    }
}

/// `id in [1000, 1064)`, `id < 1000`, `id >= 99000`, or `all rows`.
pub(super) fn range_text(key: &[String], b: &Bounds) -> String {
    let k = key_label(key);
    match (&b.lo, &b.hi) {
        (Some(lo), Some(hi)) => format!("{k} in [{}, {})", value(lo), value(hi)),
        (Some(lo), None) => format!("{k} >= {}", value(lo)),
        (None, Some(hi)) => format!("{k} < {}", value(hi)),
        (None, None) => "all rows".to_owned(),
    }
}

fn rows_lines(s: &mut String, key: &[String], rows: &RowsReport) {
    let label = if key.is_empty() {
        "row".to_owned()
    } else {
        key_label(key)
    };
    for (what, list) in [
        ("missing on destination", &rows.missing),
        ("extra on destination", &rows.extra),
        ("different", &rows.different),
    ] {
        if list.is_empty() {
            continue;
        }
        let shown: Vec<String> = list.iter().take(SHOWN_KEYS).map(|v| value(v)).collect();
        let more = if list.len() > SHOWN_KEYS {
            format!(" … ({} in all)", list.len())
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "      {what} ({}): {label} {}{more}",
            list.len(),
            shown.join(", ")
        );
    }
    if rows.truncated {
        let _ = writeln!(
            s,
            "      (more rows differ; only the first {} are listed)",
            super::MAX_LISTED_ROWS
        );
    }
}

/// The report for people: per task and table `ok` or `MISMATCH` with
/// counts, the differing ranges and rows, and a summary with throughput.
pub fn render_text(report: &Report) -> String {
    let mut s = String::new();
    for t in &report.tasks {
        let _ = write!(
            s,
            "task.{} ({} -> {}): source LSN {}",
            t.task, t.source, t.destination, t.source_lsn
        );
        if let Some(a) = &t.destination_applied_lsn {
            let _ = write!(s, ", destination applied {a}");
        }
        if t.streaming {
            let _ = write!(s, " (waited {:.1} s)", t.waited_seconds);
        }
        let _ = writeln!(
            s,
            ", {} round{}",
            t.rounds,
            if t.rounds == 1 { "" } else { "s" }
        );
        if let Some(n) = &t.note {
            let _ = writeln!(s, "  note: {n}");
        }
        for table in &t.tables {
            match table.status {
                TableStatus::Ok => {
                    let _ = writeln!(s, "  ok        {}: {} rows", table.table, table.source_rows);
                }
                TableStatus::Mismatch => {
                    let _ = write!(
                        s,
                        "  MISMATCH  {}: source {} rows, destination {} rows",
                        table.table, table.source_rows, table.destination_rows
                    );
                    match &table.note {
                        Some(n) => {
                            let _ = writeln!(s, "; {n}");
                        }
                        None => s.push('\n'),
                    }
                }
            }
            for r in table.ranges.iter().take(SHOWN_RANGES) {
                let _ = write!(
                    s,
                    "      {}: source {} rows, destination {} rows",
                    r.text, r.source_rows, r.destination_rows
                );
                if r.source_rows == r.destination_rows {
                    s.push_str(", contents differ");
                }
                s.push('\n');
            }
            if table.ranges.len() > SHOWN_RANGES {
                let _ = writeln!(
                    s,
                    "      … and {} more ranges (--json lists them all)",
                    table.ranges.len() - SHOWN_RANGES
                );
            }
            if let Some(rows) = &table.rows {
                rows_lines(&mut s, &table.key, rows);
            }
            for r in table.unsettled.iter().take(SHOWN_RANGES) {
                let _ = writeln!(
                    s,
                    "      unsettled: {} (source {} rows, destination {} rows): the source was changing these rows in every round",
                    r.text, r.source_rows, r.destination_rows
                );
            }
        }
    }
    let sum = &report.summary;
    let _ = writeln!(
        s,
        "\n{}: {} tables, {} ok, {} MISMATCH; {} source rows compared in {:.1} s ({:.0} rows/s).",
        match report.result {
            Verdict::Ok => "Verified",
            Verdict::Mismatch => "Differences found",
        },
        sum.tables,
        sum.ok,
        sum.mismatch,
        sum.source_rows,
        sum.seconds,
        sum.rows_per_second
    );
    if sum.unsettled_ranges > 0 {
        let _ = writeln!(
            s,
            "{} ranges were still changing on the source in every round and were neither proven equal nor different; run verify again when the load is lower.",
            sum.unsettled_ranges
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_like_intervals() {
        let id = vec!["id".to_owned()];
        let b = |lo: Option<&str>, hi: Option<&str>| Bounds {
            lo: lo.map(|v| vec![v.to_owned()]),
            hi: hi.map(|v| vec![v.to_owned()]),
        };
        assert_eq!(
            range_text(&id, &b(Some("1000"), Some("1064"))),
            "id in [1000, 1064)"
        );
        assert_eq!(range_text(&id, &b(None, Some("5"))), "id < 5");
        assert_eq!(range_text(&id, &b(Some("5"), None)), "id >= 5");
        assert_eq!(range_text(&id, &b(None, None)), "all rows");
        let ab = vec!["a".to_owned(), "b".to_owned()];
        let composite = Bounds {
            lo: Some(vec!["x".into(), "1".into()]),
            hi: None,
        };
        assert_eq!(range_text(&ab, &composite), "(a, b) >= (x, 1)");
        assert_eq!(range_text(&[], &b(Some("-3"), None)), "row hash >= -3");
    }
}
