//! Everything pgsync prints: plan text, events, status; and log setup.

use std::fmt::Write;

use crate::engine::Event;
use crate::engine::status::{StatusFile, TableProgress, TaskStatus};
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

pub(super) fn print_event(event: Event) {
    match event {
        Event::Check { task, check } => {
            let tag = match check.status {
                CheckStatus::Pass => "pass",
                CheckStatus::Warn => "WARN",
                CheckStatus::Fail => "FAIL",
            };
            eprintln!(
                "task.{task}: precheck [{tag}] {}: {}",
                check.name, check.detail
            );
            if check.status != CheckStatus::Pass
                && let Some(fix) = check.fix
            {
                eprintln!("task.{task}:   fix: {fix}");
            }
        }
        Event::Step { task, message } => eprintln!("task.{task}: {message}"),
    }
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
            for (table, p) in &t.tables {
                if p.state != "copied" {
                    let _ = writeln!(s, "    {table}: {} ({} bytes so far)", p.state, p.bytes);
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
            t.tables.insert(
                table.clone(),
                match st {
                    TableStatus::Pending => TableProgress {
                        state: "pending".into(),
                        ..Default::default()
                    },
                    TableStatus::Copying => TableProgress {
                        state: "copying".into(),
                        ..Default::default()
                    },
                    TableStatus::Copied { rows, bytes } => TableProgress {
                        state: "copied".into(),
                        rows: Some(*rows),
                        bytes: *bytes,
                    },
                },
            );
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
