//! The numbers of a running full copy: per table (rows, bytes, chunks) and
//! for the whole copy (rate and ETA). The engine feeds it the copy's
//! events and publishes the result in `status.json` and in
//! [`super::Event::Copy`] events, so `pgsync status` and the progress
//! display show the same numbers.

use std::collections::BTreeMap;
use std::time::Instant;

use super::status::{CopyTotals, TableProgress};

/// Per-table progress of one copy and the clock of this run.
#[derive(Debug)]
pub struct CopyMeter {
    started: Instant,
    tables: BTreeMap<String, TableProgress>,
    /// Rows and bytes of chunks kept from an interrupted run, per table.
    kept: BTreeMap<String, (u64, u64)>,
    /// Rows, bytes and fraction done when this run started.
    base: (u64, u64, f64),
}

impl Default for CopyMeter {
    fn default() -> Self {
        CopyMeter::new()
    }
}

impl CopyMeter {
    /// An empty meter; its clock starts now.
    pub fn new() -> CopyMeter {
        CopyMeter {
            started: Instant::now(),
            tables: BTreeMap::new(),
            kept: BTreeMap::new(),
            base: (0, 0, 0.0),
        }
    }

    /// A table to copy, `pending`.
    pub fn add(&mut self, table: &str) {
        self.tables
            .entry(table.to_owned())
            .or_insert(TableProgress {
                state: "pending".into(),
                ..TableProgress::default()
            });
    }

    /// The table's entry (created `pending` when missing).
    pub fn table(&mut self, table: &str) -> &mut TableProgress {
        self.add(table);
        self.tables.get_mut(table).expect("added above")
    }

    /// The table's current progress.
    pub fn get(&self, table: &str) -> TableProgress {
        self.tables.get(table).cloned().unwrap_or_default()
    }

    /// Chunks of `table` kept from an interrupted run: `done` of `chunks`,
    /// with their rows and bytes.
    pub fn kept(&mut self, table: &str, chunks: u32, done: u32, rows: u64, bytes: u64) {
        self.kept.insert(table.to_owned(), (rows, bytes));
        let t = self.table(table);
        t.chunks = chunks;
        t.chunks_done = done;
        t.rows = Some(rows);
        t.bytes = bytes;
    }

    /// This run moved `rows` and `bytes` of `table` so far.
    pub fn moved(&mut self, table: &str, rows: u64, bytes: u64) {
        let (kr, kb) = self.kept.get(table).copied().unwrap_or((0, 0));
        let t = self.table(table);
        t.rows = Some(kr + rows);
        t.bytes = kb + bytes;
    }

    /// Starts the clock: what is there now (kept chunks) is not counted in
    /// the rates.
    pub fn start_clock(&mut self) {
        let t = self.totals();
        self.base = (t.rows, t.bytes, t.percent / 100.0);
        self.started = Instant::now();
    }

    /// Every table's progress.
    pub fn tables(&self) -> &BTreeMap<String, TableProgress> {
        &self.tables
    }

    /// The whole copy's numbers now.
    pub fn totals(&self) -> CopyTotals {
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut out = CopyTotals {
            tables: self.tables.len(),
            elapsed_seconds: elapsed,
            estimated_rows: Some(0),
            ..CopyTotals::default()
        };
        let (mut weight, mut done) = (0.0, 0.0);
        for t in self.tables.values() {
            let copied = t.state == "copied";
            out.tables_copied += usize::from(copied);
            out.rows += t.rows.unwrap_or(0);
            out.bytes += t.bytes;
            out.estimated_bytes += t.estimated_bytes.unwrap_or(0);
            out.estimated_rows = match (out.estimated_rows, t.estimated_rows) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
            let w = t.estimated_bytes.unwrap_or(0).max(8192) as f64;
            let fraction = if copied {
                1.0
            } else if let Some(n) = t.estimated_rows.filter(|n| *n > 0) {
                (t.rows.unwrap_or(0) as f64 / n as f64).min(0.99)
            } else if t.chunks > 0 {
                f64::from(t.chunks_done) / f64::from(t.chunks)
            } else {
                0.0
            };
            weight += w;
            done += w * fraction;
        }
        let fraction = if weight > 0.0 { done / weight } else { 1.0 };
        out.percent = (fraction * 100.0).clamp(0.0, 100.0);
        if elapsed > 0.0 {
            out.rows_per_second = out.rows.saturating_sub(self.base.0) as f64 / elapsed;
            out.bytes_per_second = out.bytes.saturating_sub(self.base.1) as f64 / elapsed;
        }
        let gained = fraction - self.base.2;
        out.eta_seconds = if fraction >= 1.0 {
            Some(0.0)
        } else if elapsed >= 1.0 && gained > 0.001 {
            Some(elapsed * (1.0 - fraction) / gained)
        } else {
            None
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_weigh_tables_by_size_and_count_kept_chunks_as_done() {
        let mut m = CopyMeter::new();
        m.table("a").estimated_bytes = Some(10_000);
        m.table("a").estimated_rows = Some(100);
        m.table("b").estimated_bytes = Some(30_000);
        m.kept("b", 4, 2, 50, 500);
        m.start_clock();
        let t = m.totals();
        assert_eq!(
            (t.tables, t.tables_copied, t.rows, t.bytes),
            (2, 0, 50, 500)
        );
        assert_eq!(t.estimated_rows, None);
        assert_eq!(t.estimated_bytes, 40_000);
        assert!((t.percent - 37.5).abs() < 1e-9, "{}", t.percent);
        m.moved("a", 50, 10);
        m.moved("b", 10, 100);
        let t = m.totals();
        assert_eq!((t.rows, t.bytes), (50 + 60, 10 + 600));
        assert!((t.percent - 50.0).abs() < 1e-9, "{}", t.percent);
        m.table("a").state = "copied".into();
        m.table("b").state = "copied".into();
        let t = m.totals();
        assert_eq!(
            (t.tables_copied, t.percent, t.eta_seconds),
            (2, 100.0, Some(0.0))
        );
    }
}
