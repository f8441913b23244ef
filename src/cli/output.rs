//! Everything pgsync prints: plan text, events, status; and log setup.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{
    HumanBytes, HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle,
};

use crate::engine::status::{CopyTotals, StatusFile, TableProgress, TaskStatus};
use crate::engine::{CopyMoment, Event};
use crate::model::DesiredState;
use crate::pg::precheck::CheckStatus;
use crate::plan::Plan;
use crate::state::{RecordedState, TableStatus, TaskPhase};

/// Logs go to stderr, filtered by `filter` (RUST_LOG syntax).
pub(super) fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

pub(super) fn plan_text(plan: &Plan) -> String {
    let mut s = String::new();
    crate::plan::render(plan, &mut s).expect("writing to a String cannot fail");
    s
}

/// Prints events: steps and checks as lines, the copy's progress as bars
/// (one per active table and one for the whole copy) when stderr is a
/// terminal, and as `progress` lines otherwise.
pub(super) struct Printer {
    bars: Option<Bars>,
    /// When each task's last overall progress line was printed.
    overall_lines: Mutex<HashMap<String, Instant>>,
}

struct Bars {
    multi: MultiProgress,
    /// Per task the overall bar, per (task, table) the table's bar.
    overall: Mutex<HashMap<String, ProgressBar>>,
    tables: Mutex<HashMap<(String, String), ProgressBar>>,
}

/// Progress lines for the whole copy come at most this often, besides the
/// last one.
const OVERALL_LINE_EVERY: Duration = Duration::from_secs(10);

impl Printer {
    /// Bars when stderr is a terminal, lines otherwise.
    pub(super) fn new() -> Arc<Printer> {
        let bars = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            overall: Mutex::new(HashMap::new()),
            tables: Mutex::new(HashMap::new()),
        });
        Arc::new(Printer {
            bars,
            overall_lines: Mutex::new(HashMap::new()),
        })
    }

    /// A reporter printing through this printer.
    pub(super) fn reporter(self: &Arc<Self>) -> crate::engine::Reporter {
        let me = Arc::clone(self);
        Arc::new(move |e| me.event(e))
    }

    /// Prints a line on stderr, above the bars when there are some.
    pub(super) fn line(&self, text: &str) {
        match &self.bars {
            Some(b) => b.multi.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    /// Removes every bar (the copy ended or failed).
    pub(super) fn clear(&self) {
        if let Some(b) = &self.bars {
            for (_, bar) in lock(&b.tables).drain() {
                bar.finish_and_clear();
            }
            for (_, bar) in lock(&b.overall).drain() {
                bar.finish_and_clear();
            }
        }
    }

    fn event(&self, event: Event) {
        match event {
            Event::Copy {
                task,
                moment,
                table,
                progress,
                totals,
            } => match &self.bars {
                Some(b) => b.show(&task, moment, &table, &progress, &totals),
                None => self.copy_lines(&task, moment, &table, &progress, &totals),
            },
            other => {
                for l in event_lines(other) {
                    self.line(&l);
                }
            }
        }
    }

    fn copy_lines(
        &self,
        task: &str,
        moment: CopyMoment,
        table: &str,
        p: &TableProgress,
        totals: &CopyTotals,
    ) {
        let rows = p.rows.unwrap_or(0);
        match moment {
            CopyMoment::ChunkCopied { chunk } => self.line(&format!(
                "task.{task}: progress table={table} chunk={}/{} chunks_done={}/{} rows={rows} bytes={}",
                chunk + 1,
                p.chunks,
                p.chunks_done,
                p.chunks,
                p.bytes
            )),
            CopyMoment::Copied => self.line(&format!(
                "task.{task}: progress table={table} copied rows={rows} bytes={}{}",
                p.bytes,
                if p.chunks > 0 {
                    format!(" chunks={}", p.chunks)
                } else {
                    String::new()
                }
            )),
            CopyMoment::Started | CopyMoment::Moved => {}
        }
        let last = totals.tables_copied == totals.tables && moment == CopyMoment::Copied;
        let mut lines = lock(&self.overall_lines);
        let due = lines
            .get(task)
            .is_none_or(|t| t.elapsed() >= OVERALL_LINE_EVERY);
        if last || (due && moment != CopyMoment::Started) {
            lines.insert(task.to_owned(), Instant::now());
            drop(lines);
            self.line(&format!(
                "task.{task}: progress overall {}",
                overall_fields(totals)
            ));
        }
    }
}

impl Bars {
    fn show(
        &self,
        task: &str,
        moment: CopyMoment,
        table: &str,
        p: &TableProgress,
        totals: &CopyTotals,
    ) {
        {
            let mut overall = lock(&self.overall);
            let bar = overall.entry(task.to_owned()).or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(1000));
                bar.set_style(style("{prefix:>28.bold} [{bar:30.cyan/blue}] {msg}"));
                bar.set_prefix(format!("task.{task}"));
                bar
            });
            bar.set_position((totals.percent * 10.0) as u64);
            bar.set_message(overall_text(totals));
            if moment == CopyMoment::Copied && totals.tables_copied == totals.tables {
                // The copy is done: the bar stays as its last line.
                bar.finish();
                overall.remove(task);
            }
        }
        let key = (task.to_owned(), table.to_owned());
        let mut tables = lock(&self.tables);
        if moment == CopyMoment::Copied {
            if let Some(bar) = tables.remove(&key) {
                bar.finish_and_clear();
            }
            return;
        }
        let bar = tables.entry(key).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(1));
            bar.set_style(style("{prefix:>28} [{bar:30}] {msg}"));
            bar.set_prefix(shorten(table, 28));
            bar
        });
        // Rows against the estimate, else chunks.
        match p.estimated_rows.filter(|n| *n > 0) {
            Some(n) => {
                bar.set_length(n.max(p.rows.unwrap_or(0)));
                bar.set_position(p.rows.unwrap_or(0));
            }
            None => {
                bar.set_length(u64::from(p.chunks.max(1)));
                bar.set_position(u64::from(p.chunks_done));
            }
        }
        bar.set_message(format!(
            "{} rows, {}{}",
            p.rows.unwrap_or(0),
            HumanBytes(p.bytes),
            if p.chunks > 0 {
                format!(", {}/{} chunks", p.chunks_done, p.chunks)
            } else {
                String::new()
            }
        ));
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn shorten(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        s.to_owned()
    } else {
        format!("…{}", s.chars().skip(n - width + 1).collect::<String>())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `tables=3/10 rows=… bytes=… rows_per_second=… bytes_per_second=…
/// percent=… eta_seconds=…` (`unknown` when there is no estimate yet).
fn overall_fields(t: &CopyTotals) -> String {
    format!(
        "tables={}/{} rows={} bytes={} rows_per_second={:.0} bytes_per_second={:.0} percent={:.1} eta_seconds={}",
        t.tables_copied,
        t.tables,
        t.rows,
        t.bytes,
        t.rows_per_second,
        t.bytes_per_second,
        t.percent,
        t.eta_seconds
            .map_or_else(|| "unknown".to_owned(), |e| format!("{e:.0}"))
    )
}

/// For people: `3/10 tables, 120000 rows, 9.16 MiB, 4.00 MiB/s (52000
/// rows/s), 42.0 %, ETA 31 s`.
fn overall_text(t: &CopyTotals) -> String {
    format!(
        "{}/{} tables, {} rows, {}, {}/s ({:.0} rows/s), {:.1} %, ETA {}",
        t.tables_copied,
        t.tables,
        t.rows,
        HumanBytes(t.bytes),
        HumanBytes(t.bytes_per_second as u64),
        t.rows_per_second,
        t.percent,
        t.eta_seconds.map_or_else(
            || "unknown".to_owned(),
            |e| HumanDuration(Duration::from_secs_f64(e.max(0.0))).to_string()
        )
    )
}

/// Prints an event as lines (no bars): what the CLI does outside `apply`.
pub(super) fn print_event(event: Event) {
    for l in event_lines(event) {
        eprintln!("{l}");
    }
}

fn event_lines(event: Event) -> Vec<String> {
    let mut out = Vec::new();
    match event {
        Event::Check { task, check } => {
            let tag = match check.status {
                CheckStatus::Pass => "pass",
                CheckStatus::Warn => "WARN",
                CheckStatus::Fail => "FAIL",
            };
            out.push(format!(
                "task.{task}: precheck [{tag}] {}: {}",
                check.name, check.detail
            ));
            if check.status != CheckStatus::Pass
                && let Some(fix) = check.fix
            {
                out.push(format!("task.{task}:   fix: {fix}"));
            }
        }
        Event::Step { task, message } => out.push(format!("task.{task}: {message}")),
        Event::Copy {
            task,
            moment: CopyMoment::Copied,
            table,
            progress,
            ..
        } => out.push(format!(
            "task.{task}: progress table={table} copied rows={} bytes={}",
            progress.rows.unwrap_or(0),
            progress.bytes
        )),
        Event::Copy { .. } => {}
    }
    out
}

pub(super) fn status_text(status: &StatusFile) -> String {
    let mut s = String::new();
    if let Some(e) = &status.error {
        let _ = writeln!(s, "error: {e}");
    }
    for (name, t) in &status.tasks {
        let _ = writeln!(s, "task.{name}: phase {}", t.phase);
        let copied = t.tables.values().filter(|p| p.state == "copied").count();
        if !t.tables.is_empty() {
            let rows: u64 = t.tables.values().filter_map(|p| p.rows).sum();
            let bytes: u64 = t.tables.values().map(|p| p.bytes).sum();
            let _ = writeln!(
                s,
                "  tables: {copied} of {} copied, {rows} rows, {bytes} bytes",
                t.tables.len()
            );
            if let Some(c) = t.copy.as_ref().filter(|_| t.phase == "snapshot") {
                let _ = writeln!(s, "  copy: {}", overall_text(c));
            }
            for (table, p) in &t.tables {
                if p.state != "copied" {
                    let chunks = if p.chunks > 0 {
                        format!(", {} of {} chunks", p.chunks_done, p.chunks)
                    } else {
                        String::new()
                    };
                    let _ = writeln!(
                        s,
                        "    {table}: {}{chunks}, {} rows ({} bytes so far)",
                        p.state,
                        p.rows.unwrap_or(0),
                        p.bytes
                    );
                }
            }
        }
        if let Some(lsn) = &t.applied_lsn {
            let _ = writeln!(s, "  applied LSN: {lsn}");
        }
        if let Some(b) = t.lag_bytes {
            let _ = writeln!(s, "  lag: {b} bytes, {:.1} s", t.lag_seconds.unwrap_or(0.0));
        }
        if t.transactions_applied > 0 {
            let _ = writeln!(
                s,
                "  transactions applied by this run: {}",
                t.transactions_applied
            );
        }
        if t.streamed_transactions > 0 {
            let _ = writeln!(
                s,
                "  of which streamed while in progress: {}",
                t.streamed_transactions
            );
        }
        if t.spill_transactions > 0 {
            let _ = writeln!(
                s,
                "  large transactions in progress on the source: {} ({} bytes spilled to local disk)",
                t.spill_transactions, t.spill_bytes
            );
        }
        if !t.skipped.is_empty() {
            let parts: Vec<String> = t.skipped.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(s, "  skipped by `operations`: {}", parts.join(", "));
        }
        if let Some(e) = &t.last_error {
            let _ = writeln!(s, "  last error: {e}");
        }
    }
    s
}

/// Builds a status from recorded state, plus live lag read from the servers
/// when the configuration still names them (it holds the passwords).
pub(super) async fn status_from_state(
    state: &RecordedState,
    desired: Option<&DesiredState>,
) -> StatusFile {
    let mut out = StatusFile {
        pid: 0,
        ..Default::default()
    };
    for (name, r) in &state.tasks {
        let mut t = TaskStatus {
            phase: match r.phase {
                TaskPhase::Precheck => "precheck",
                TaskPhase::Snapshot => "snapshot",
                TaskPhase::Streaming => "stopped",
                TaskPhase::Done => "done",
                TaskPhase::Failed => "failed",
            }
            .into(),
            last_error: r.last_error.clone(),
            ..Default::default()
        };
        for (table, st) in &r.tables {
            let chunks = r.chunks.get(table);
            let mut p = TableProgress {
                chunks: chunks.map_or(0, |c| c.split.chunks()),
                chunks_done: chunks.map_or(0, |c| u32::try_from(c.done.len()).unwrap_or(0)),
                rows: chunks.map(crate::state::TableChunks::rows),
                bytes: chunks.map_or(0, crate::state::TableChunks::bytes),
                ..Default::default()
            };
            match st {
                TableStatus::Pending => p.state = "pending".into(),
                TableStatus::Copying => p.state = "copying".into(),
                TableStatus::Copied { rows, bytes } => {
                    p.state = "copied".into();
                    p.rows = Some(*rows);
                    p.bytes = *bytes;
                    p.chunks_done = p.chunks;
                }
            }
            t.tables.insert(table.clone(), p);
        }
        if let Some(d) = desired {
            live_lag(d, r, &mut t).await;
        }
        out.tasks.insert(name.clone(), t);
    }
    out
}

async fn live_lag(d: &DesiredState, r: &crate::state::TaskRecord, t: &mut TaskStatus) {
    let (Some(src), Some(dst)) = (
        d.endpoints.get(&r.source_name),
        d.endpoints.get(&r.destination_name),
    ) else {
        return;
    };
    let (Ok(src), Ok(dst)) = (crate::pg::connect(src).await, crate::pg::connect(dst).await) else {
        t.last_error
            .get_or_insert_with(|| "a server is unreachable; lag unknown".into());
        return;
    };
    let Ok(Some(applied)) = crate::sink::read_progress(&dst, &r.name).await else {
        return;
    };
    t.applied_lsn = Some(applied.to_string());
    if let Ok(current) = crate::pg::admin::current_wal_lsn(&src).await {
        let lag = current.0.saturating_sub(applied.0);
        t.lag_bytes = Some(lag);
    }
    if let Ok(row) = dst
        .client
        .query_opt(
            &format!(
                "select extract(epoch from now() - coalesce(heartbeat_time, source_commit_time))::float8 from {} where task_name = $1",
                crate::sql::qualified(crate::sql::helpers::SCHEMA, crate::sql::helpers::PROGRESS_TABLE)
            ),
            &[&r.name],
        )
        .await
    {
        t.lag_seconds = row.and_then(|r| r.get::<_, Option<f64>>(0));
    }
}
