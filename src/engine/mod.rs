//! The engine carries out plans: prechecks, helper objects, slot, schema,
//! full copy and stream, and it is the only writer of recorded state.
//!
//! Invariants (docs/architecture.md has the long form):
//! - **Record before relying.** A publication, heartbeat table, slot,
//!   progress table or destination table is written to state before it is
//!   created, so `destroy` finds it whatever the crash point (drops use
//!   `if exists`).
//! - **Snapshot hand-over.** The slot is created with an exported snapshot;
//!   all COPY workers import it, so the copy shows exactly the transactions
//!   committed before the slot's consistent point and the stream starts at
//!   that point. The exporting session stays idle until the copy is done.
//! - **Confirmed LSN.** The slot is told an LSN (standby status `flush`)
//!   only after the destination committed the transaction ending there,
//!   together with its row in `public.dts_apply_progress`.
//! - **Safe to kill.** During the initial sync a kill loses the exported
//!   snapshot; with a stream the slot survives, so the next apply keeps the
//!   tables and the key-range chunks recorded as copied (each with its
//!   snapshot point, which the stream honours per table or per key range)
//!   and copies the rest under a temporary slot's snapshot; without one it
//!   empties what was copied and starts again from a fresh snapshot
//!   (docs/architecture.md, "Resume granularity"). During streaming a kill
//!   loses nothing: the destination's progress row says which transaction
//!   was applied last, the stream restarts there and older transactions are
//!   skipped.

mod copy;
mod destroy;
mod initial;
pub mod progress;
mod recorder;
mod reselect;
mod reshape;
pub mod spill;
pub mod status;
mod stream;

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use destroy::destroy_task;
pub use initial::prechecks;
pub use recorder::Recorder;
pub use status::{LiveStatus, TaskStatus, read_status_file};

use crate::model::{DesiredState, EndpointSpec, TaskSpec};
use crate::pg::precheck::{Check, CheckStatus};
use crate::plan::{Action, Plan};

/// Everything that can stop an apply or destroy.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A precheck item failed.
    #[error("precheck failed for task {task:?}: {}", failed.iter().map(|c| format!("{}: {}", c.name, c.detail)).collect::<Vec<_>>().join("; "))]
    Precheck {
        /// Task name.
        task: String,
        /// The failed items.
        failed: Vec<Check>,
    },
    /// A database call failed.
    #[error(transparent)]
    Pg(#[from] crate::pg::PgError),
    /// The replication connection failed.
    #[error(transparent)]
    Slot(#[from] crate::pg::slot::SlotError),
    /// The full copy failed.
    #[error(transparent)]
    Copy(#[from] crate::snapshot::CopyError),
    /// The destination refused a change.
    #[error("applying the source transaction that commits at {lsn} for task {task:?}")]
    Sink {
        /// Task name.
        task: String,
        /// Commit LSN of the transaction.
        lsn: crate::model::Lsn,
        /// The cause.
        #[source]
        source: crate::sink::SinkError,
    },
    /// Opening the destination session failed.
    #[error(transparent)]
    SinkOpen(#[from] crate::sink::SinkError),
    /// A schema statement failed on the destination.
    #[error("creating {kind} {name} on the destination")]
    Schema {
        /// Object kind.
        kind: String,
        /// Object name.
        name: String,
        /// The cause.
        #[source]
        source: crate::pg::PgError,
    },
    /// A malformed message from the server.
    #[error("malformed replication message at {lsn}: {message}")]
    Decode {
        /// WAL position of the message.
        lsn: crate::model::Lsn,
        /// What was wrong.
        message: String,
    },
    /// A streamed transaction (pgoutput protocol 2) could not be kept on
    /// local disk until its commit, or read back.
    #[error("streamed source transaction (message at {lsn}) for task {task:?}")]
    Spill {
        /// Task name.
        task: String,
        /// WAL position of the stream message being handled.
        lsn: crate::model::Lsn,
        /// The cause.
        #[source]
        source: spill::SpillError,
    },
    /// The recorded slot is gone.
    #[error("replication slot {slot} of task {task:?} no longer exists on the source")]
    SlotMissing {
        /// Task name.
        task: String,
        /// Slot name.
        slot: String,
    },
    /// The source removed WAL the slot still needed (`wal_status = 'lost'`,
    /// e.g. past `max_slot_wal_keep_size`).
    #[error(
        "replication slot {slot} of task {task:?} was invalidated by the source: WAL it needs was removed"
    )]
    SlotInvalidated {
        /// Task name.
        task: String,
        /// Slot name.
        slot: String,
    },
    /// The publication made outside pgsync (the task's `publication`) is
    /// gone or no longer publishes what the task copied.
    #[error("publication {publication:?} of task {task:?} cannot be streamed from: {problem}")]
    PublicationUnusable {
        /// Task name.
        task: String,
        /// The publication.
        publication: String,
        /// What is wrong.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// Retrying did not help within the task's retry window.
    #[error("task {task:?} stopped after retrying for {window}")]
    GaveUp {
        /// Task name.
        task: String,
        /// The window that ran out.
        window: String,
        /// The last failure.
        #[source]
        source: Box<EngineError>,
    },
    /// The state store failed.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// A configuration refers to something missing.
    #[error(
        "task {task:?} refers to endpoint {endpoint:?}, which the configuration does not define"
    )]
    UnknownEndpoint {
        /// Task name.
        task: String,
        /// Endpoint name.
        endpoint: String,
    },
}

impl EngineError {
    /// One imperative sentence for the user, where there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            EngineError::Precheck { failed, .. } => {
                failed.iter().find_map(|c| c.fix.clone())
            }
            EngineError::GaveUp { source, .. } => source.hint().or_else(|| Some(
                "fix the cause above, then run `pgsync apply` again: the stream resumes at the last applied transaction".into(),
            )),
            EngineError::SlotInvalidated { .. } => Some(
                "the changes since the slot fell behind are gone from the source: run `pgsync plan` (it shows the re-sync) and `pgsync apply` to copy again from a fresh snapshot; raise max_slot_wal_keep_size to keep more WAL".into(),
            ),
            EngineError::PublicationUnusable { fix, .. } => Some(fix.clone()),
            EngineError::Spill { source: spill::SpillError::OutOfOrder(_) | spill::SpillError::Damaged { .. }, .. } => Some(
                "run `pgsync apply` again: the server sends the transaction again from the slot's position".into(),
            ),
            EngineError::Spill { .. } => Some(format!(
                "large transactions are kept in {} until they commit: make room there (or point TMPDIR at a disk with room), then run `pgsync apply` again; the server sends the transaction again",
                std::env::temp_dir().display()
            )),
            EngineError::SlotMissing { .. } => Some(
                "run `pgsync plan` to see the re-sync it takes, then `pgsync apply`".into(),
            ),
            EngineError::Sink { source: crate::sink::SinkError::MissingColumn { table, column }, .. } => Some(format!(
                "add the column on the destination (`alter table {table} add column {} …`) to match the source, then run `pgsync apply` again; DDL is replicated only when the source role may create event triggers (superuser)",
                crate::sql::ident(column)
            )),
            EngineError::Sink { .. } => Some(
                "fix the destination (the error names the table and statement), then run `pgsync apply` again; the stream resumes at this transaction".into(),
            ),
            _ => None,
        }
    }
}

/// Settings of one `apply`.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// COPY workers at once (`--jobs`); `None`: [`default_jobs`].
    pub jobs: Option<usize>,
    /// Return once everything the source had committed when streaming
    /// started has been applied.
    pub exit_when_caught_up: bool,
    /// How often the heartbeat row is written on the source.
    pub heartbeat_interval: std::time::Duration,
    /// Where the running apply publishes `status.json`.
    pub status_file: Option<PathBuf>,
    /// Drop the destination tables of tables removed from a task's
    /// selection (`--drop-removed-tables`); kept by default.
    pub drop_removed_tables: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            jobs: None,
            exit_when_caught_up: false,
            heartbeat_interval: std::time::Duration::from_secs(2),
            status_file: None,
            drop_removed_tables: false,
        }
    }
}

/// Something worth telling the person running apply (the CLI prints it).
#[derive(Debug, Clone)]
pub enum Event {
    /// A precheck result.
    Check {
        /// Task name.
        task: String,
        /// The item.
        check: Check,
    },
    /// A step began or ended ("creating slot dts_sync_app").
    Step {
        /// Task name.
        task: String,
        /// What happened.
        message: String,
    },
    /// The full copy moved on (the CLI draws progress bars on a terminal,
    /// and prints progress lines otherwise).
    Copy {
        /// Task name.
        task: String,
        /// What happened.
        moment: CopyMoment,
        /// The table concerned (`schema.name`, as on the source).
        table: String,
        /// That table's progress now.
        progress: status::TableProgress,
        /// The whole copy's progress now.
        totals: status::CopyTotals,
    },
}

/// What an [`Event::Copy`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMoment {
    /// A worker started the table.
    Started,
    /// Rows moved (about every MiB per worker).
    Moved,
    /// A chunk committed on the destination.
    ChunkCopied {
        /// The chunk, from 0.
        chunk: u32,
    },
    /// The table is copied.
    Copied,
}

/// The `--jobs` default: the machine's parallelism
/// (`std::thread::available_parallelism`, at most 16), capped by the
/// servers: each job holds one session on each side, and at most half of
/// either server's free connection slots (`max_connections` less the
/// reserved slots and the sessions open now) are taken. At least 1.
/// Returns the number and the reason, for the log.
///
/// # Errors
/// [`crate::pg::PgError`] when a server cannot be asked.
pub async fn default_jobs(
    src: &crate::pg::Connected,
    dst: &crate::pg::Connected,
) -> Result<(usize, String), crate::pg::PgError> {
    let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let sql = "select current_setting('max_connections')::int8
                      - current_setting('superuser_reserved_connections')::int8
                      - coalesce(nullif(current_setting('reserved_connections', true), '')::int8, 0)
                      - (select count(*) from pg_stat_activity where backend_type = 'client backend')";
    let mut free = Vec::new();
    for side in [src, dst] {
        let n: i64 = side
            .client
            .query_one(sql, &[])
            .await
            .map_err(side.err("read free connection slots"))?
            .get(0);
        free.push(usize::try_from(n.max(0)).unwrap_or(0));
    }
    let jobs = cpus.min(16).min(free[0] / 2).min(free[1] / 2).max(1);
    Ok((
        jobs,
        format!(
            "{cpus} CPUs here, {} free connection slots on the source and {} on the destination",
            free[0], free[1]
        ),
    ))
}

/// Callback for [`Event`]s.
pub type Reporter = Arc<dyn Fn(Event) + Send + Sync>;

pub(crate) fn endpoints<'a>(
    desired: &'a DesiredState,
    spec: &TaskSpec,
) -> Result<(&'a EndpointSpec, &'a EndpointSpec), EngineError> {
    let find = |name: &str| {
        desired
            .endpoints
            .get(name)
            .ok_or_else(|| EngineError::UnknownEndpoint {
                task: spec.name.clone(),
                endpoint: name.to_owned(),
            })
    };
    Ok((find(&spec.source)?, find(&spec.destination)?))
}

/// Carries out `plan`, then streams every task with incremental sync until
/// `cancel` fires (or, with `exit_when_caught_up`, until caught up).
///
/// # Errors
/// The first [`EngineError`]; state records how far each task got.
pub async fn apply(
    desired: &DesiredState,
    plan: &Plan,
    recorder: &Recorder,
    options: &ApplyOptions,
    report: Reporter,
    cancel: &CancellationToken,
) -> Result<(), EngineError> {
    let live = LiveStatus::new(options.status_file.clone());
    let publisher = live.spawn_publisher(cancel.child_token());
    let result = apply_inner(desired, plan, recorder, options, &report, cancel, &live).await;
    publisher.cancel();
    if let Err(err) = &result {
        live.set_error(&crate::error_chain(err));
    }
    live.publish();
    result
}

async fn apply_inner(
    desired: &DesiredState,
    plan: &Plan,
    recorder: &Recorder,
    options: &ApplyOptions,
    report: &Reporter,
    cancel: &CancellationToken,
    live: &LiveStatus,
) -> Result<(), EngineError> {
    for action in &plan.actions {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let task = action.task().to_owned();
        match action {
            Action::Destroy { .. } => {
                if let Some(record) = recorder.task(&task) {
                    destroy_task(desired, &record, recorder, false, report).await?;
                }
            }
            Action::Update { .. } => {
                let spec = &desired.tasks[&task];
                recorder.update(&task, |r| {
                    r.conflicting_tables = spec.conflicting_tables;
                    r.retry = spec.retry;
                    r.throttle = spec.throttle;
                    // Only `operations` may differ (see the planner).
                    r.objects = spec.objects.clone();
                })?;
            }
            Action::Reselect { .. } => {
                reselect::run(desired, &desired.tasks[&task], recorder, options, report).await?;
            }
            Action::Create { .. } | Action::ResumeInitialSync { .. } | Action::Replace { .. } => {
                // A replacement tears the old task down (and the destination
                // objects it created) first.
                if matches!(action, Action::Replace { .. })
                    && let Some(record) = recorder.task(&task)
                {
                    destroy_task(desired, &record, recorder, true, report).await?;
                }
                initial::run(
                    desired,
                    &desired.tasks[&task],
                    recorder,
                    options,
                    report,
                    cancel,
                    live,
                )
                .await?;
            }
        }
    }
    stream_all(desired, recorder, options, report, cancel, live).await
}

async fn stream_all(
    desired: &DesiredState,
    recorder: &Recorder,
    options: &ApplyOptions,
    report: &Reporter,
    cancel: &CancellationToken,
    live: &LiveStatus,
) -> Result<(), EngineError> {
    let mut set = tokio::task::JoinSet::new();
    for spec in desired.tasks.values() {
        let Some(record) = recorder.task(&spec.name) else {
            continue;
        };
        if !spec.sync_types.incremental || !record.initial_sync_done() {
            continue;
        }
        let (source, destination) = endpoints(desired, spec)?;
        let job = stream::StreamJob {
            task: spec.name.clone(),
            source: source.clone(),
            destination: destination.clone(),
            slot: record.slot.clone().unwrap_or_default(),
            publication: record.publication.clone().unwrap_or_default(),
            publication_external: record.publication_external,
            copied_tables: record.tables.keys().cloned().collect(),
            heartbeat: if record.heartbeat && !record.publication_external {
                stream::HeartbeatMode::Tables
            } else {
                stream::HeartbeatMode::Messages
            },
            consistent_lsn: record.consistent_lsn.unwrap_or_default(),
            spec: spec.clone(),
            table_snapshots: record.table_snapshots.clone(),
            chunk_points: chunk_points(&record),
            retry: spec.retry,
            throttle: spec.throttle,
            options: options.clone(),
        };
        let (report, cancel, live) = (Arc::clone(report), cancel.clone(), live.clone());
        set.spawn(async move { stream::run(job, report, cancel, live).await });
    }
    let mut first = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                cancel.cancel();
                first.get_or_insert(e);
            }
            Err(j) if j.is_panic() => std::panic::resume_unwind(j.into_panic()),
            Err(_) => {}
        }
    }
    first.map_or(Ok(()), Err)
}

/// The per-chunk snapshot points of the tables whose chunks were copied
/// under different snapshots (an initial sync resumed per chunk); tables
/// whose every chunk comes from the slot's own snapshot need none.
fn chunk_points(record: &crate::state::TaskRecord) -> Vec<crate::sink::ChunkPoints> {
    let start = record.consistent_lsn.unwrap_or_default();
    record
        .chunks
        .iter()
        .filter(|(_, c)| c.split.resumable())
        .filter_map(|(t, c)| {
            let points = c.points()?;
            let (schema, name) = t.split_once('.')?;
            points
                .iter()
                .any(|p| *p > start)
                .then(|| crate::sink::ChunkPoints {
                    table: crate::model::QualifiedName::new(schema, name),
                    split: c.split.clone(),
                    points,
                })
        })
        .collect()
}

/// The failed items of `checks`.
pub fn failed_checks(checks: &[Check]) -> Vec<Check> {
    checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .cloned()
        .collect()
}
