//! The stream of one task: pgoutput changes from the slot applied to the
//! destination in commit order. Consecutive source transactions are grouped
//! into one destination transaction (a batch), which commits when it holds
//! [`BATCH_TRANSACTIONS`] transactions or [`BATCH_BYTES`] bytes of change
//! data, when it is [`BATCH_MILLIS`] old, when no message arrives for
//! [`IDLE_MILLIS`] between transactions, before a keepalive reply, and on
//! shutdown or catch-up.
//! The batch's progress row carries its last commit's end LSN and commits
//! with it, so exactly-once holds per batch as it did per transaction.
//!
//! LSN rules:
//! - the stream starts at the destination's recorded applied LSN (the
//!   progress row), or the slot's consistent point right after the copy;
//! - a transaction whose commit LSN (`Begin.final_lsn`) lies below the
//!   applied LSN was applied before a crash and is skipped, so a restart
//!   never applies a transaction twice;
//! - the slot is told (`flush` in the standby status update) only LSNs the
//!   destination has committed (never an open batch's), so the server never discards WAL of a
//!   transaction pgsync has not applied.
//!
//! Large transactions (PostgreSQL 14 and up: pgoutput protocol 2 with
//! `streaming 'on'`): a transaction larger than the source's
//! `logical_decoding_work_mem` arrives in stream blocks while still in
//! progress. Each block's messages go to the transaction's spill file
//! (`super::spill`), never to memory or the destination; Stream Abort
//! frees the file (or records an aborted subtransaction); Stream Commit
//! replays the file as one source transaction through the same path as a
//! Begin … Commit, with the Stream Commit's commit LSN, end LSN and time,
//! so the exactly-once rule and the batching are the same.
//!
//! Shutdown: on cancel, a transaction in flight is read and applied to its
//! commit first (a streamed one being replayed too); a streamed transaction
//! still in progress on the source is dropped with its spill file (the
//! server sends it again). Then the final position is confirmed and the
//! task returns.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::spill::{Spill, SpilledTxn};
use super::{ApplyOptions, EngineError, Event, LiveStatus, Reporter};
use crate::model::{EndpointSpec, Lsn, QualifiedName};
use crate::pg::slot::ReplicationSession;
use crate::pg::{admin, connect};
use crate::replication::frame::{self, Frame};
use crate::replication::pgoutput::{
    self, Begin, Commit, Datum, Message, OldTuple, ReplicaIdentity, StreamCommit, Tuple,
};
use crate::sink::{ColumnDesc, RelationDesc, Sink, Value};

/// What one stream needs.
#[derive(Debug, Clone)]
pub(super) struct StreamJob {
    pub task: String,
    pub source: EndpointSpec,
    pub destination: EndpointSpec,
    pub slot: String,
    pub publication: String,
    /// The publication was made outside pgsync (the task's `publication`).
    pub publication_external: bool,
    /// Tables the initial sync copied (`schema.name` as recorded).
    pub copied_tables: Vec<String>,
    pub heartbeat: HeartbeatMode,
    pub consistent_lsn: Lsn,
    pub spec: crate::model::TaskSpec,
    pub table_snapshots: Vec<(QualifiedName, Lsn)>,
    /// Tables resumed per chunk: each chunk's snapshot point.
    pub chunk_points: Vec<crate::sink::ChunkPoints>,
    pub retry: crate::model::RetrySpec,
    pub throttle: crate::model::ThrottleSpec,
    pub options: ApplyOptions,
}

/// How the heartbeat (and the sequence positions) reach the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeartbeatMode {
    /// Rows of the published helper tables `public.dts_postgres_heartbeat`
    /// and `public.dts_sequence_state`.
    Tables,
    /// Transactional logical messages (`pg_logical_emit_message`): nothing
    /// is created on the source. pgoutput delivers their content from
    /// PostgreSQL 14 on; on 13 the heartbeat's transaction still arrives
    /// (empty) and moves the slot, and sequence positions are not sent.
    Messages,
}

/// A batch commits once it holds this many source transactions…
pub(super) const BATCH_TRANSACTIONS: u64 = 2000;
/// …or this many bytes of pgoutput change data…
pub(super) const BATCH_BYTES: usize = 16 << 20;
/// …or is this old (the bound on how long a received change waits to
/// become visible under a steady load: 5 ms gave a visible staleness p99 of
/// 16 ms under `pgbench -c 4` on 2 cores, and cost the source no TPS;
/// committing every transaction at once cost it 15 %, 50 ms gave a p99 of
/// 94 ms; docs/benchmarks.md)…
pub(super) const BATCH_MILLIS: u64 = 5;
/// …or no message arrived for this long between transactions (tokio's
/// timer resolution; the next message, when already received, is always
/// taken first).
pub(super) const IDLE_MILLIS: u64 = 1;

/// The batch limit in transactions: [`BATCH_TRANSACTIONS`], or
/// `$PGSYNC_BATCH_TRANSACTIONS`; with failpoints armed (`$PGSYNC_FAILPOINTS`,
/// tests) 4 by default, so counted commit kill points (`stream.before_commit@7`)
/// land on multi-transaction batches within a small workload.
fn batch_transactions() -> u64 {
    if let Some(n) = std::env::var("PGSYNC_BATCH_TRANSACTIONS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
    {
        return n;
    }
    if std::env::var_os("PGSYNC_FAILPOINTS").is_some() {
        4
    } else {
        BATCH_TRANSACTIONS
    }
}

/// The `incremental_*` limiters.
struct Throttle {
    rps: Option<std::sync::Arc<crate::snapshot::rate::Limiter>>,
    bytes: Option<std::sync::Arc<crate::snapshot::rate::Limiter>>,
}

/// Which retry window an error falls under (the task's `retry` block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryKind {
    /// A lost source or destination connection: `connection_minutes`.
    Connection,
    /// A DDL or DML statement the destination refused: `other_minutes`.
    Other,
}

/// The retry windows in force: the task's `retry` block, or
/// `$PGSYNC_RETRY_SECONDS="CONNECTION,OTHER"` (seconds; for tests).
fn windows(retry: crate::model::RetrySpec) -> (Duration, Duration) {
    if let Some((c, o)) = std::env::var("PGSYNC_RETRY_SECONDS").ok().and_then(|v| {
        let (c, o) = v.split_once(',')?;
        Some((c.trim().parse::<u64>().ok()?, o.trim().parse::<u64>().ok()?))
    }) {
        return (Duration::from_secs(c), Duration::from_secs(o));
    }
    (
        Duration::from_secs(u64::from(retry.connection_minutes) * 60),
        Duration::from_secs(u64::from(retry.other_minutes) * 60),
    )
}

/// Backoff between attempts: 1 s doubling up to 30 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(5)).min(Duration::from_secs(30))
}

pub(super) async fn run(
    job: StreamJob,
    report: Reporter,
    cancel: CancellationToken,
    live: LiveStatus,
) -> Result<(), EngineError> {
    let (connection_window, other_window) = windows(job.retry);
    // The failure that opened the current outage, and when.
    let mut outage: Option<Instant> = None;
    let mut attempt = 0;
    // After the destination refused a statement, the next attempts apply
    // one source transaction per destination transaction and one row per
    // statement: the transactions before the bad one commit, and the error
    // names the exact row.
    let mut careful = false;
    loop {
        let before = live
            .snapshot()
            .tasks
            .get(&job.task)
            .and_then(|t| t.applied_lsn.clone());
        let result = stream_once(&job, &report, &cancel, &live, careful).await;
        let after = live
            .snapshot()
            .tasks
            .get(&job.task)
            .and_then(|t| t.applied_lsn.clone());
        if before != after {
            // Progress was made: a new failure opens a new outage.
            outage = None;
            attempt = 0;
        }
        careful = matches!(&result, Err(e) if retry_kind(e) == Some(RetryKind::Other));
        let err = match result {
            Ok(()) => {
                live.task(&job.task, |s| s.phase = "stopped".into());
                return Ok(());
            }
            Err(err) => err,
        };
        let kind = retry_kind(&err);
        let window = match kind {
            Some(RetryKind::Connection) => connection_window,
            Some(RetryKind::Other) => other_window,
            None => Duration::ZERO,
        };
        let since = *outage.get_or_insert_with(Instant::now);
        if kind.is_none() || cancel.is_cancelled() || since.elapsed() >= window {
            let err = if kind.is_some() && !cancel.is_cancelled() {
                EngineError::GaveUp {
                    task: job.task.clone(),
                    window: format!("{} s", window.as_secs()),
                    source: Box::new(err),
                }
            } else {
                err
            };
            live.task(&job.task, |s| {
                s.phase = "failed".into();
                s.last_error = Some(crate::error_chain(&err));
            });
            return Err(err);
        }
        let wait = backoff(attempt);
        attempt += 1;
        report(Event::Step {
            task: job.task.clone(),
            message: format!(
                "stream interrupted ({}); retrying in {} s ({} of the {} s {} retry window left)",
                crate::error_chain(&err),
                wait.as_secs(),
                window.saturating_sub(since.elapsed()).as_secs(),
                window.as_secs(),
                if kind == Some(RetryKind::Connection) {
                    "connection"
                } else {
                    "statement"
                },
            ),
        });
        live.task(&job.task, |s| s.last_error = Some(crate::error_chain(&err)));
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Lost connections (no SQLSTATE, class 08, admin shutdown/crash 57P01–03)
/// are retried within the connection window; anything else the destination
/// refused while applying, within the statement window; the rest (a missing
/// or invalidated slot, a malformed message) stops at once.
fn retry_kind(err: &EngineError) -> Option<RetryKind> {
    use crate::sink::SinkError;
    let by_state = |e: &crate::pg::PgError| match e.sqlstate() {
        None if e.is_transient() => Some(RetryKind::Connection),
        Some(c) if c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03") => {
            Some(RetryKind::Connection)
        }
        _ => None,
    };
    match err {
        EngineError::Pg(e) => by_state(e).or(e.is_transient().then_some(RetryKind::Other)),
        EngineError::Slot(e) => e.transient.then_some(RetryKind::Connection),
        EngineError::SinkOpen(SinkError::Pg(e)) => by_state(e),
        EngineError::Sink { source, .. } => match source {
            SinkError::Pg(e) | SinkError::Statement { source: e, .. } => {
                Some(by_state(e).unwrap_or(RetryKind::Other))
            }
            _ => Some(RetryKind::Other),
        },
        _ => None,
    }
}

struct Tracker {
    /// Bytes of change data in the open batch, and when it started.
    batch_bytes: usize,
    batch_started: Option<Instant>,
    /// Between a Begin (or the start of a streamed commit's replay) and its
    /// Commit.
    in_txn: bool,
    /// The top-level xid of the open stream block (Stream Start … Stream
    /// Stop): messages are decoded with their xid and spilled.
    stream_xid: Option<u32>,
    /// Streamed transactions replayed and applied by this run.
    streamed_applied: u64,
    /// How often a standby status update goes out unasked: a quarter of
    /// the source's `wal_sender_timeout`, at most [`STATUS_EVERY`].
    status_every: Duration,
    skipping: bool,
    commit_lsn: Lsn,
    server_end: Lsn,
    last_commit_time: i64,
    last_status: Instant,
    applied_count: u64,
}

async fn stream_once(
    job: &StreamJob,
    report: &Reporter,
    cancel: &CancellationToken,
    live: &LiveStatus,
    careful: bool,
) -> Result<(), EngineError> {
    let task = job.task.as_str();
    let src = connect(&job.source).await?;
    match admin::slot_facts(&src, &job.slot).await? {
        None => {
            return Err(EngineError::SlotMissing {
                task: task.to_owned(),
                slot: job.slot.clone(),
            });
        }
        Some(facts) if facts.lost => {
            return Err(EngineError::SlotInvalidated {
                task: task.to_owned(),
                slot: job.slot.clone(),
            });
        }
        Some(_) => {}
    }
    if job.publication_external {
        check_publication(&src, job).await?;
    }
    let dst = connect(&job.destination).await?;
    let mut sink = Sink::open(dst, task, &job.spec, Some(job.source.clone())).await?;
    sink.set_table_snapshots(job.table_snapshots.iter().cloned().collect());
    sink.set_careful(careful);
    sink.set_chunk_points(job.chunk_points.clone());
    if job.publication_external {
        sink.skip_unselected();
    }
    let start = if sink.applied() == Lsn::ZERO {
        job.consistent_lsn
    } else {
        sink.applied()
    };
    let status_every = admin::wal_sender_timeout(&src)
        .await?
        .map_or(STATUS_EVERY, |t| {
            (t / 4).clamp(Duration::from_millis(100), STATUS_EVERY)
        });
    let target = if job.options.exit_when_caught_up {
        Some(admin::current_wal_lsn(&src).await?)
    } else {
        None
    };

    let mut session = ReplicationSession::open(&job.source).await?;
    let options = session.start(&job.slot, start, &job.publication).await?;
    report(Event::Step {
        task: task.to_owned(),
        message: if options.streaming {
            format!(
                "streaming from {start} (pgoutput protocol {}: large transactions arrive while in progress and wait in {} until they commit)",
                options.proto_version,
                std::env::temp_dir().display()
            )
        } else {
            format!(
                "streaming from {start} (pgoutput protocol {}: the source sends each transaction after its commit)",
                options.proto_version
            )
        },
    });
    live.task(task, |s| {
        s.phase = "streaming".into();
        s.applied_lsn = Some(start.to_string());
    });

    // Heartbeat writer: keeps the slot moving on an idle source and gives
    // lag in seconds; sequence positions travel with it.
    let hb_stop = cancel.child_token();
    let heartbeat = {
        let (source, task, stop, every, mode) = (
            job.source.clone(),
            task.to_owned(),
            hb_stop.clone(),
            job.options.heartbeat_interval,
            job.heartbeat,
        );
        let (schemas, tables) = admin::sequence_scope(&job.spec.objects);
        tokio::spawn(async move {
            let Ok(conn) = connect(&source).await else {
                return;
            };
            // pgoutput delivers message contents from PostgreSQL 14 on.
            let contents_arrive = crate::pg::precheck::server_version(&conn)
                .await
                .is_ok_and(|v| v >= 140_000);
            let mut sent: Vec<admin::SequencePosition> = Vec::new();
            loop {
                match mode {
                    HeartbeatMode::Tables => {
                        if let Err(err) =
                            admin::record_sequences(&conn, &task, &schemas, &tables).await
                        {
                            tracing::warn!(task = %task, error = %err, "recording sequence positions failed");
                        }
                        if let Err(err) = admin::heartbeat(&conn, &task).await {
                            tracing::warn!(task = %task, error = %err, "heartbeat failed");
                        }
                    }
                    HeartbeatMode::Messages => {
                        if contents_arrive {
                            match admin::sequence_positions(&conn, &schemas, &tables).await {
                                Ok(now) => {
                                    let changed: Vec<admin::SequencePosition> =
                                        now.iter().filter(|p| !sent.contains(p)).cloned().collect();
                                    if !changed.is_empty() {
                                        match admin::emit_sequences(&conn, &task, &changed).await {
                                            Ok(()) => sent = now,
                                            Err(err) => {
                                                tracing::warn!(task = %task, error = %err, "sending sequence positions failed")
                                            }
                                        }
                                    }
                                }
                                Err(err) => {
                                    tracing::warn!(task = %task, error = %err, "reading sequence positions failed");
                                }
                            }
                        }
                        if let Err(err) = admin::emit_heartbeat(&conn).await {
                            tracing::warn!(task = %task, error = %err, "heartbeat failed");
                        }
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
            }
        })
    };

    let throttle = Throttle {
        rps: crate::snapshot::rate::Limiter::optional(job.throttle.incremental_rps),
        bytes: crate::snapshot::rate::Limiter::optional(
            job.throttle.incremental_mbps.map(|m| m * 1e6),
        ),
    };
    let max_batch = batch_transactions();
    let mut t = Tracker {
        batch_bytes: 0,
        batch_started: None,
        in_txn: false,
        skipping: false,
        commit_lsn: Lsn::ZERO,
        server_end: start,
        last_commit_time: 0,
        last_status: Instant::now(),
        applied_count: 0,
        stream_xid: None,
        streamed_applied: 0,
        status_every,
    };
    // Streamed transactions in progress, each in its own anonymous file
    // (freed when this session ends, however it ends).
    let mut spill = Spill::new(std::env::temp_dir());
    let never = CancellationToken::new();
    let result = loop {
        // Between transactions, cancellation (or catch-up) ends the stream;
        // inside one, reading goes on to its commit.
        if !t.in_txn {
            let full = sink.must_commit()
                || sink.pending_transactions() >= max_batch
                || t.batch_bytes >= BATCH_BYTES
                || t.batch_started
                    .is_some_and(|s| s.elapsed() >= Duration::from_millis(BATCH_MILLIS));
            let done = cancel.is_cancelled()
                || target.is_some_and(|target| {
                    sink.pending()
                        .unwrap_or(Lsn::ZERO)
                        .max(sink.applied())
                        .max(t.server_end)
                        >= target
                });
            if (full || done)
                && let Err(e) = flush_batch(&mut sink, &mut t, task).await
            {
                break Err(e);
            }
            if cancel.is_cancelled() {
                break Ok(());
            }
            if let Some(target) = target
                && sink.applied().max(t.server_end) >= target
            {
                report(Event::Step {
                    task: task.to_owned(),
                    message: format!("caught up at {}", sink.applied().max(t.server_end)),
                });
                break Ok(());
            }
        }
        let token = if t.in_txn { &never } else { cancel };
        let batch_open = sink.pending().is_some();
        let wait = if batch_open {
            Duration::from_millis(IDLE_MILLIS)
        } else if target.is_some() {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(10)
        };
        let frame = tokio::select! {
            // A message already received wins over the idle branch.
            biased;
            f = session.next_frame(token) => f,
            () = tokio::time::sleep(wait), if !t.in_txn => {
                if batch_open {
                    // Idle: commit what the batch holds.
                    if let Err(e) = flush_batch(&mut sink, &mut t, task).await {
                        break Err(e);
                    }
                } else {
                    if let Err(e) = session.send_status(sink.applied(), target.is_some()).await {
                        break Err(e.into());
                    }
                    t.last_status = Instant::now();
                }
                continue;
            }
        };
        let bytes = match frame {
            Ok(b) => b,
            Err(e) if e.cancelled => break Ok(()),
            Err(e) => break Err(e.into()),
        };
        // Errors leave the loop (never `?`), so the heartbeat writer is
        // stopped before a retry starts another.
        let frame = match frame::decode(&bytes) {
            Ok(frame) => frame,
            Err(e) => {
                break Err(EngineError::Decode {
                    lsn: t.server_end,
                    message: e.to_string(),
                });
            }
        };
        match frame {
            Frame::PrimaryKeepalive(k) => {
                if !t.in_txn {
                    t.server_end = t.server_end.max(k.wal_end);
                }
                if k.reply_requested {
                    // Commit the open batch first, so the reply confirms it.
                    if !t.in_txn
                        && let Err(e) = flush_batch(&mut sink, &mut t, task).await
                    {
                        break Err(e);
                    }
                    if let Err(e) = session.send_status(sink.applied(), false).await {
                        break Err(e.into());
                    }
                    t.last_status = Instant::now();
                }
            }
            Frame::XLogData(x) => {
                let mut ctx = Ctx {
                    sink: &mut sink,
                    t: &mut t,
                    spill: &mut spill,
                    session: &mut session,
                    throttle: &throttle,
                    task,
                };
                if let Err(e) = on_message(&mut ctx, x.data, x.wal_start).await {
                    sink.rollback().await;
                    break Err(e);
                }
                for table in sink.take_skipped() {
                    report(Event::Step {
                        task: task.to_owned(),
                        message: format!(
                            "skipping changes to {table}: publication {:?} publishes it, the task does not select it",
                            job.publication
                        ),
                    });
                }
                // Also inside a transaction: applying it may read the stream
                // more slowly than the server sends, and a reply request
                // then waits behind the data already sent.
                if t.last_status.elapsed() >= t.status_every {
                    if let Err(e) = session.send_status(sink.applied(), false).await {
                        break Err(e.into());
                    }
                    t.last_status = Instant::now();
                }
            }
        }
        let lag_bytes = t.server_end.0.saturating_sub(sink.applied().0);
        let lag_secs = if t.last_commit_time == 0 || lag_bytes == 0 {
            0.0
        } else {
            (unix_micros_since_2000() - t.last_commit_time).max(0) as f64 / 1e6
        };
        live.task(task, |s| {
            s.applied_lsn = Some(sink.applied().to_string());
            s.lag_bytes = Some(lag_bytes);
            s.lag_seconds = Some(lag_secs);
            s.transactions_applied = t.applied_count;
            s.streamed_transactions = t.streamed_applied;
            s.spill_bytes = spill.bytes();
            s.spill_transactions = spill.transactions() as u64;
            s.skipped = sink
                .skipped()
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect();
        });
    };
    hb_stop.cancel();
    let _ = heartbeat.await;
    if result.is_ok() {
        session.send_status(sink.applied(), false).await?;
    }
    result
}

/// Before streaming from a publication made outside pgsync: it still
/// exists, publishes every table the initial sync copied, and publishes
/// inserts, updates and deletes. (It may have been dropped or altered
/// since the precheck; streaming on would silently miss changes.)
async fn check_publication(src: &crate::pg::Connected, job: &StreamJob) -> Result<(), EngineError> {
    let (tables, _) = crate::pg::precheck::resolve_tables(src, &job.spec.objects).await?;
    let copied: Vec<crate::pg::precheck::SourceTable> = tables
        .into_iter()
        .filter(|t| job.copied_tables.contains(&t.name.to_string()))
        .collect();
    let facts = crate::pg::precheck::inspect_publication(src, &job.publication, &copied).await?;
    let p = crate::sql::ident(&job.publication);
    let unusable = |problem: String, fix: String| EngineError::PublicationUnusable {
        task: job.task.clone(),
        publication: job.publication.clone(),
        problem,
        fix,
    };
    let Some(facts) = facts else {
        return Err(unusable(
            "it no longer exists on the source".into(),
            format!(
                "recreate it on the source (`create publication {p} for table …` with the task's tables) and run `pgsync apply` again; if it was recreated after the slot's position the stream cannot use it: then `pgsync destroy` and apply again"
            ),
        ));
    };
    if !facts.unpublished.is_empty() {
        let names: Vec<String> = facts.unpublished.iter().map(ToString::to_string).collect();
        let quoted: Vec<String> = facts
            .unpublished
            .iter()
            .map(|t| crate::sql::qualified(&t.schema, &t.name))
            .collect();
        return Err(unusable(
            format!(
                "it no longer publishes tables the task copied: {}",
                names.join(", ")
            ),
            format!(
                "run on the source `alter publication {p} add table {};`; changes made to them meanwhile were not streamed: re-sync them with `pgsync destroy` and `pgsync apply`",
                quoted.join(", ")
            ),
        ));
    }
    if !facts.unpublished_dml.is_empty() {
        return Err(unusable(
            format!(
                "it no longer publishes {}",
                facts.unpublished_dml.join(", ")
            ),
            format!(
                "run on the source `alter publication {p} set (publish = 'insert, update, delete, truncate');`"
            ),
        ));
    }
    Ok(())
}

fn unix_micros_since_2000() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    now - 946_684_800_000_000
}

/// Bytes of a tuple's values (for `incremental_mbps`).
fn tuple_bytes(t: &Tuple<'_>) -> usize {
    t.0.iter()
        .map(|d| match d {
            Datum::Text(b) | Datum::Binary(b) => b.len(),
            _ => 0,
        })
        .sum()
}

fn values<'a>(t: &Tuple<'a>) -> Vec<Value<'a>> {
    t.0.iter()
        .map(|d| match d {
            Datum::Null => Value::Null,
            Datum::UnchangedToast => Value::Unchanged,
            Datum::Text(b) | Datum::Binary(b) => Value::Text(b),
        })
        .collect()
}

/// What handling one message of the slot needs.
struct Ctx<'a> {
    sink: &'a mut Sink,
    t: &'a mut Tracker,
    spill: &'a mut Spill,
    session: &'a mut ReplicationSession,
    throttle: &'a Throttle,
    task: &'a str,
}

/// A standby status update goes out at least this often, also while a
/// transaction is applied slowly and while a streamed commit is replayed
/// (the replication connection is not read meanwhile): a WAL sender that
/// hears nothing for `wal_sender_timeout` (60 s by default) ends the
/// connection. A shorter timeout shortens the interval to a quarter of it.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// The (sub)transaction xid a change carries inside a stream block
/// (protocol 2); `None` for messages that are not changes.
fn change_xid(msg: &Message<'_>) -> Option<u32> {
    match msg {
        Message::Relation(m) => m.xid,
        Message::Type(m) => m.xid,
        Message::Insert(m) => m.xid,
        Message::Update(m) => m.xid,
        Message::Delete(m) => m.xid,
        Message::Truncate(m) => m.xid,
        Message::LogicalMessage(m) => m.xid,
        _ => None,
    }
}

/// The message's name in §55.9, for errors.
fn kind(msg: &Message<'_>) -> &'static str {
    match msg {
        Message::Begin(_) => "Begin",
        Message::LogicalMessage(_) => "Message",
        Message::Commit(_) => "Commit",
        Message::Origin(_) => "Origin",
        Message::Relation(_) => "Relation",
        Message::Type(_) => "Type",
        Message::Insert(_) => "Insert",
        Message::Update(_) => "Update",
        Message::Delete(_) => "Delete",
        Message::Truncate(_) => "Truncate",
        Message::StreamStart(_) => "Stream Start",
        Message::StreamStop => "Stream Stop",
        Message::StreamCommit(_) => "Stream Commit",
        Message::StreamAbort(_) => "Stream Abort",
    }
}

/// One pgoutput message (`XLogData` payload `data` at `lsn`): stream
/// messages drive the spill files, a change inside a stream block is
/// spilled, anything else is applied.
async fn on_message(c: &mut Ctx<'_>, data: &[u8], lsn: Lsn) -> Result<(), EngineError> {
    let in_block = c.t.stream_xid;
    let msg = pgoutput::decode(data, in_block.is_some()).map_err(|e| EngineError::Decode {
        lsn,
        message: e.to_string(),
    })?;
    let task = c.task;
    let spill_err = |source| EngineError::Spill {
        task: task.to_owned(),
        lsn,
        source,
    };
    let misplaced = |msg: &Message<'_>, t: &Tracker| EngineError::Decode {
        lsn,
        message: match in_block {
            Some(xid) => format!(
                "a {} message inside the stream block of transaction {xid}",
                kind(msg)
            ),
            None => format!(
                "a {} message inside the transaction that commits at {}",
                kind(msg),
                t.commit_lsn
            ),
        },
    };
    match msg {
        Message::StreamStart(ref s) => {
            if c.t.in_txn {
                return Err(misplaced(&msg, c.t));
            }
            c.spill
                .start_block(s.xid, s.first_segment)
                .map_err(spill_err)?;
            c.t.stream_xid = Some(s.xid);
        }
        Message::StreamStop => {
            c.spill.stop_block().map_err(spill_err)?;
            c.t.stream_xid = None;
        }
        Message::StreamAbort(ref a) => {
            if c.t.in_txn {
                return Err(misplaced(&msg, c.t));
            }
            c.spill.abort(a.xid, a.subxid).map_err(spill_err)?;
        }
        Message::StreamCommit(ref commit) => {
            if c.t.in_txn || in_block.is_some() {
                return Err(misplaced(&msg, c.t));
            }
            let spilled = c.spill.take(commit.xid).map_err(spill_err)?;
            replay_streamed(c, commit, spilled).await?;
        }
        msg if in_block.is_some() => {
            if change_xid(&msg).is_none() {
                return Err(misplaced(&msg, c.t));
            }
            c.spill.append(lsn, data).map_err(spill_err)?;
        }
        msg => {
            if c.t.in_txn && !c.t.skipping {
                c.t.batch_bytes += data.len();
            }
            handle(c.sink, c.t, c.throttle, msg, task).await?;
        }
    }
    Ok(())
}

/// Applies a committed streamed transaction: its spilled messages in
/// order, without those of aborted subtransactions, between a Begin and a
/// Commit made from the Stream Commit. The same [`handle`] path as an
/// ordinary transaction, so a transaction the destination already holds
/// (commit LSN below the progress row) is skipped, and it joins the open
/// batch like any other.
async fn replay_streamed(
    c: &mut Ctx<'_>,
    commit: &StreamCommit,
    spilled: Option<SpilledTxn>,
) -> Result<(), EngineError> {
    let task = c.task;
    let begin = Message::Begin(Begin {
        final_lsn: commit.commit_lsn,
        commit_time: commit.commit_time,
        xid: commit.xid,
    });
    handle(c.sink, c.t, c.throttle, begin, task).await?;
    let skipped = c.t.skipping;
    if let Some(SpilledTxn {
        mut records,
        aborted,
    }) = spilled
    {
        while let Some((lsn, bytes)) =
            records
                .next_message()
                .map_err(|source| EngineError::Spill {
                    task: task.to_owned(),
                    lsn: commit.commit_lsn,
                    source,
                })?
        {
            let msg = pgoutput::decode(bytes, true).map_err(|e| EngineError::Decode {
                lsn,
                message: format!(
                    "{e} (spilled message of streamed transaction {})",
                    commit.xid
                ),
            })?;
            let Some(xid) = change_xid(&msg) else {
                return Err(EngineError::Decode {
                    lsn,
                    message: format!(
                        "a {} message in the spill file of streamed transaction {}",
                        kind(&msg),
                        commit.xid
                    ),
                });
            };
            if aborted.contains(xid) {
                continue;
            }
            if !c.t.skipping {
                crate::failpoint::hit("stream.mid_streamed_commit");
                c.t.batch_bytes += bytes.len();
            }
            handle(c.sink, c.t, c.throttle, msg, task).await?;
            if c.t.last_status.elapsed() >= c.t.status_every {
                c.session.send_status(c.sink.applied(), false).await?;
                c.t.last_status = Instant::now();
            }
        }
    }
    let end = Message::Commit(Commit {
        flags: commit.flags,
        commit_lsn: commit.commit_lsn,
        end_lsn: commit.end_lsn,
        commit_time: commit.commit_time,
    });
    handle(c.sink, c.t, c.throttle, end, task).await?;
    if !skipped {
        c.t.streamed_applied += 1;
    }
    Ok(())
}

/// Commits the open batch (if any) and counts its transactions.
async fn flush_batch(sink: &mut Sink, t: &mut Tracker, task: &str) -> Result<(), EngineError> {
    let n = sink.pending_transactions();
    if let Err(source) = sink.flush().await {
        let lsn = sink.pending().unwrap_or(sink.applied());
        sink.rollback().await;
        return Err(EngineError::Sink {
            task: task.to_owned(),
            lsn,
            source,
        });
    }
    t.applied_count += n;
    t.batch_bytes = 0;
    t.batch_started = None;
    Ok(())
}

/// Waits for the `incremental_*` limits before applying one row change of
/// `bytes` bytes.
async fn throttle_row(throttle: &Throttle, bytes: usize) {
    crate::snapshot::rate::take(throttle.rps.as_ref(), 1.0).await;
    crate::snapshot::rate::take(throttle.bytes.as_ref(), bytes as f64).await;
}

async fn handle(
    sink: &mut Sink,
    t: &mut Tracker,
    throttle: &Throttle,
    msg: Message<'_>,
    task: &str,
) -> Result<(), EngineError> {
    let wrap = |lsn: Lsn| {
        move |source| EngineError::Sink {
            task: task.to_owned(),
            lsn,
            source,
        }
    };
    match msg {
        Message::Begin(b) => {
            t.in_txn = true;
            t.commit_lsn = b.final_lsn;
            t.skipping = b.final_lsn < sink.applied();
            if !t.skipping {
                sink.begin_at(b.final_lsn)
                    .await
                    .map_err(wrap(b.final_lsn))?;
                t.batch_started.get_or_insert_with(Instant::now);
            }
        }
        Message::Commit(c) => {
            if !t.skipping {
                sink.end_transaction(c.end_lsn, c.commit_time)
                    .await
                    .map_err(wrap(c.commit_lsn))?;
                t.last_commit_time = c.commit_time;
            }
            t.in_txn = false;
            t.skipping = false;
            t.server_end = t.server_end.max(c.end_lsn);
        }
        Message::Relation(r) => {
            let desc = RelationDesc {
                relid: r.id.0,
                name: QualifiedName::new(r.namespace, r.name),
                columns: r
                    .columns
                    .iter()
                    .map(|c| ColumnDesc {
                        name: c.name.to_owned(),
                        key: c.is_key(),
                    })
                    .collect(),
                replica_identity: match r.replica_identity {
                    ReplicaIdentity::Default => b'd',
                    ReplicaIdentity::Full => b'f',
                    ReplicaIdentity::Nothing => b'n',
                    ReplicaIdentity::Index => b'i',
                },
            };
            sink.relation(desc).await.map_err(wrap(t.commit_lsn))?;
        }
        Message::Insert(i) if !t.skipping => {
            crate::failpoint::hit("stream.mid_transaction");
            throttle_row(throttle, tuple_bytes(&i.new)).await;
            sink.insert(i.rel.0, &values(&i.new))
                .await
                .map_err(wrap(t.commit_lsn))?;
        }
        Message::Update(u) if !t.skipping => {
            throttle_row(
                throttle,
                tuple_bytes(&u.new)
                    + u.old.as_ref().map_or(0, |o| match o {
                        OldTuple::Key(k) | OldTuple::Full(k) => tuple_bytes(k),
                    }),
            )
            .await;
            let old = u.old.as_ref().map(|o| match o {
                OldTuple::Key(k) | OldTuple::Full(k) => values(k),
            });
            sink.update(u.rel.0, old.as_deref(), &values(&u.new))
                .await
                .map_err(wrap(t.commit_lsn))?;
        }
        Message::Delete(d) if !t.skipping => {
            throttle_row(
                throttle,
                match &d.old {
                    OldTuple::Key(k) | OldTuple::Full(k) => tuple_bytes(k),
                },
            )
            .await;
            let old = match &d.old {
                OldTuple::Key(k) | OldTuple::Full(k) => values(k),
            };
            sink.delete(d.rel.0, &old)
                .await
                .map_err(wrap(t.commit_lsn))?;
        }
        Message::LogicalMessage(m) if m.transactional && t.in_txn && !t.skipping => {
            sink.message(m.prefix, m.content)
                .await
                .map_err(wrap(t.commit_lsn))?;
        }
        Message::Truncate(tr) if !t.skipping => {
            let rels: Vec<u32> = tr.rels.iter().map(|r| r.0).collect();
            sink.truncate(&rels, tr.options.cascade(), tr.options.restart_identity())
                .await
                .map_err(wrap(t.commit_lsn))?;
        }
        // Skipped transactions, Origin, Type and logical messages change
        // nothing here; stream messages are handled by `on_message`.
        _ => {}
    }
    Ok(())
}
