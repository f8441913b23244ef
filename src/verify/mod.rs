//! `pgsync verify`: proves, table by table, that the destination holds the
//! same rows as the source, at a consistent point while streaming goes on.
//!
//! # Algorithm
//!
//! For each task (tables resolved from its selection on the source, the
//! roots of partitioned tables read whole instead of their partitions):
//!
//! 1. **A consistent point.** The source is read under a `repeatable read`
//!    snapshot, exported so that several sessions share it, together with
//!    `pg_current_wal_insert_lsn()` taken after the snapshot (`P`): every
//!    transaction the snapshot sees ends at or below `P`. When the task
//!    streams (its slot is active), verify then polls the destination, each
//!    time opening a `repeatable read` transaction and reading the task's
//!    `public.dts_apply_progress.applied_lsn` inside it, until that is at or
//!    past `P`; that very transaction's snapshot (exported too) is the
//!    destination side. The sink commits the progress row with the rows, in
//!    source commit order, so this snapshot holds exactly the source
//!    transactions ending at or below `A ≥ P`: everything the source
//!    snapshot holds, plus what committed between `P` and `A` (the window).
//! 2. **Ranges.** A table is split by its key (primary key, else replica
//!    identity index, else a unique NOT NULL index) into ranges of about
//!    [`CHUNK_ROWS`] rows: every `n`-th key on the source is a split point.
//!    Both sides compute, per range and in one pass over the table, `count(*)`
//!    and the sums of two 64-bit hashes of each row's text form (see
//!    [`sql`]). Sums are order-independent, so no sort and no
//!    `string_agg` of whole ranges is needed; they are exact `numeric`s, so
//!    a changed, missing or extra row changes them unless its hash
//!    difference is cancelled exactly by another (2⁻⁶⁴ per hash for
//!    accidental damage), and unlike XOR a duplicated row counts twice.
//! 3. **Narrowing.** A range whose count or sums differ is split again
//!    into [`SPLIT_FANOUT`] parts (split points from the side with more rows
//!    in it) and only the differing parts are kept, down to ranges of at
//!    most [`LEAF_ROWS`] rows, under the same snapshots.
//! 4. **Re-checks.** Each differing range is compared again under a fresh
//!    pair of snapshots (a new consistent point), up to [`ROUNDS`] rounds
//!    in all. It is `ok` as soon as both sides are equal. It is a
//!    *confirmed* mismatch when, in two consecutive rounds, the source's
//!    range was the same and the destination's range was the same, yet they
//!    differed: no source transaction changed the range between the two
//!    source snapshots, and the first destination snapshot lies between
//!    them, so the window cannot explain the difference. A range still
//!    changing after the last round is reported as an *unsettled* mismatch.
//! 5. **Rows.** With `--rows`, the rows of each reported range are listed
//!    from both sides under the snapshots of the round that decided it:
//!    keys missing on the destination, extra on it, and present on both
//!    with different contents.
//!
//! Tables without a key are keyed by the first row hash: "ranges" are hash
//! ranges, and the rows listed are the differing rows' text forms.

mod render;
pub mod shape;
pub mod sql;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use serde::Serialize;
use tokio_postgres::Row;

use crate::model::{DesiredState, Lsn, QualifiedName, TaskSpec, slot_name_for_task};
use crate::pg::{Connected, PgError, admin, connect, precheck};
use crate::sql::{helpers, qualified};
pub use render::render_text;
use shape::{KeyKind, Shape, ShapeProblem};
use sql::{Bounds, HashKind, KeyValue, SideTable};

/// Target rows per top-level range.
pub const CHUNK_ROWS: i64 = 10_000;
/// At most this many top-level ranges per table (bigger tables get bigger ranges).
pub const MAX_TOP_RANGES: i64 = 1_000;
/// Tables with more rows take their top-level split points from a block
/// sample (`tablesample system`) of about [`SAMPLE_ROWS`] rows.
pub const SAMPLE_ABOVE_ROWS: i64 = 200_000;
/// Rows sampled for the split points of a big table.
pub const SAMPLE_ROWS: i64 = 50_000;
/// A differing range is split into this many parts.
pub const SPLIT_FANOUT: i64 = 16;
/// Ranges of at most this many rows (on either side) are not split further.
pub const LEAF_ROWS: i64 = 64;
/// Narrowing stops once a table has this many differing ranges (the rest
/// are reported at the size they have then).
pub const MAX_RANGES: usize = 64;
/// Rows listed per table with `--rows`.
pub const MAX_LISTED_ROWS: usize = 1_000;
/// Comparison rounds: the first pass plus re-checks of differing ranges.
pub const ROUNDS: u32 = 6;
/// Differing ranges of at most this many rows are judged row by row.
pub const ROW_CHECK_ROWS: i64 = 2_000;

/// How to run `verify`.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Tables compared at once (each takes one session per side).
    pub jobs: usize,
    /// List the differing keys of each mismatching range.
    pub rows: bool,
    /// How long to wait, per round, for the destination to reach the
    /// source's position.
    pub timeout: Duration,
    /// Force a hash (default: [`HashKind::Hashtext`] when both servers
    /// agree on the probe, [`HashKind::Md5`] otherwise).
    pub hash: Option<HashKind>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            jobs: 2,
            rows: false,
            timeout: Duration::from_secs(120),
            hash: None,
        }
    }
}

/// Why verify could not finish (differences are not errors: they are in
/// the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A database call failed.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// The destination did not catch up with the source in time.
    #[error(
        "task {task:?}: the destination's applied LSN {applied} did not reach the source's position {source_lsn} within {seconds} s"
    )]
    Lagging {
        /// Task name.
        task: String,
        /// The source position of the snapshot.
        source_lsn: Lsn,
        /// The destination's applied LSN when verify gave up.
        applied: Lsn,
        /// The timeout.
        seconds: u64,
    },
    /// The configuration names an endpoint it does not define.
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

impl VerifyError {
    /// One imperative sentence for the user, where there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            VerifyError::Lagging { .. } => Some(
                "the stream lags or stalled: check `pgsync status`, or raise `verify --timeout`"
                    .into(),
            ),
            VerifyError::Pg(e) if e.doing == "connect" => Some(format!(
                "check endpoint {:?} in the configuration and that the server is reachable",
                e.endpoint
            )),
            _ => None,
        }
    }
}

/// Overall result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every table equal.
    Ok,
    /// At least one table differs.
    Mismatch,
}

/// Everything verify found (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `ok` or `mismatch`.
    pub result: Verdict,
    /// Per task.
    pub tasks: Vec<TaskReport>,
    /// Totals and throughput.
    pub summary: Summary,
}

/// Totals over every task.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Tables compared.
    pub tables: usize,
    /// Tables equal on both sides.
    pub ok: usize,
    /// Tables that differ.
    pub mismatch: usize,
    /// Ranges left unsettled (see [`TableReport::unsettled`]).
    pub unsettled_ranges: usize,
    /// Rows on the source side of the comparison.
    pub source_rows: i64,
    /// Rows on the destination side.
    pub destination_rows: i64,
    /// Wall time of the whole verify, waits included.
    pub seconds: f64,
    /// Source rows compared per second of wall time.
    pub rows_per_second: f64,
}

/// One task's result.
#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    /// Task name.
    pub task: String,
    /// Source endpoint name.
    pub source: String,
    /// Destination endpoint name.
    pub destination: String,
    /// The row hash used.
    pub hash: HashKind,
    /// Whether apply was streaming this task (so verify waited for the
    /// destination to reach the source's position).
    pub streaming: bool,
    /// Source position of the first round's snapshot.
    pub source_lsn: String,
    /// The destination's applied LSN in the first round's snapshot.
    pub destination_applied_lsn: Option<String>,
    /// Seconds waited for the destination in the first round.
    pub waited_seconds: f64,
    /// Rounds run (1 when nothing differed).
    pub rounds: u32,
    /// What the reader should know about the point compared.
    pub note: Option<String>,
    /// Per table, sorted by name.
    pub tables: Vec<TableReport>,
}

/// `ok` or `mismatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableStatus {
    /// Equal.
    Ok,
    /// Different (or not comparable: missing table or columns).
    Mismatch,
}

/// One table's result.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    /// `schema.name`.
    pub table: String,
    /// Result.
    pub status: TableStatus,
    /// Key column names (empty: no key; ranged by row hash).
    pub key: Vec<String>,
    /// Where the key comes from.
    pub key_kind: KeyKind,
    /// Rows on the source (as of the round that decided each range).
    pub source_rows: i64,
    /// Rows on the destination (likewise).
    pub destination_rows: i64,
    /// Why the table could not be compared row by row, if so.
    pub note: Option<String>,
    /// The ranges with confirmed differences, in key order.
    pub ranges: Vec<RangeReport>,
    /// Ranges that still differed in the last round, but only in rows the
    /// source was changing between rounds: neither proven equal nor proven
    /// different (they do not make the table a mismatch).
    pub unsettled: Vec<RangeReport>,
    /// The differing rows, with `--rows`.
    pub rows: Option<RowsReport>,
    /// Seconds spent on the first pass of this table.
    pub seconds: f64,
}

/// A differing key range `[lower, upper)`.
#[derive(Debug, Clone, Serialize)]
pub struct RangeReport {
    /// Inclusive lower bound, one text per key column (`null`: unbounded).
    pub lower: Option<Vec<String>>,
    /// Exclusive upper bound (`null`: unbounded).
    pub upper: Option<Vec<String>>,
    /// For people: `id in [1000, 1064)`.
    pub text: String,
    /// Source rows in the range (in the round that decided it).
    pub source_rows: i64,
    /// Destination rows in the range (likewise).
    pub destination_rows: i64,
}

/// The differing rows of a table: each a key (one text per key column), or
/// for a table without a key, the row's text form.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RowsReport {
    /// On the source, not on the destination.
    pub missing: Vec<Vec<String>>,
    /// On the destination, not on the source.
    pub extra: Vec<Vec<String>>,
    /// On both, with different contents.
    pub different: Vec<Vec<String>>,
    /// More than [`MAX_LISTED_ROWS`] differed; the rest are not listed.
    pub truncated: bool,
}

/// Progress messages for people (stderr).
pub type Say<'a> = &'a (dyn Fn(String) + Sync);

/// Verifies every task of `desired`.
///
/// # Errors
/// [`VerifyError`]; differences are in the returned [`Report`].
pub async fn verify(
    desired: &DesiredState,
    options: &VerifyOptions,
    say: Say<'_>,
) -> Result<Report, VerifyError> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for spec in desired.tasks.values() {
        tasks.push(verify_task(desired, spec, options, say).await?);
    }
    let tables: Vec<&TableReport> = tasks.iter().flat_map(|t| &t.tables).collect();
    let mismatch = tables
        .iter()
        .filter(|t| t.status == TableStatus::Mismatch)
        .count();
    let source_rows: i64 = tables.iter().map(|t| t.source_rows).sum();
    let seconds = started.elapsed().as_secs_f64();
    let summary = Summary {
        tables: tables.len(),
        ok: tables.len() - mismatch,
        mismatch,
        unsettled_ranges: tables.iter().map(|t| t.unsettled.len()).sum(),
        source_rows,
        destination_rows: tables.iter().map(|t| t.destination_rows).sum(),
        seconds,
        rows_per_second: if seconds > 0.0 {
            source_rows as f64 / seconds
        } else {
            0.0
        },
    };
    Ok(Report {
        result: if mismatch == 0 {
            Verdict::Ok
        } else {
            Verdict::Mismatch
        },
        tasks,
        summary,
    })
}

/// The hashes of one range on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sum {
    count: i64,
    h1: String,
    h2: String,
}

impl Sum {
    fn empty() -> Sum {
        Sum {
            count: 0,
            h1: "0".into(),
            h2: "0".into(),
        }
    }
}

/// What became of a differing range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Still to be compared again.
    Open,
    /// A difference that the window between the two snapshots cannot explain.
    Confirmed,
    /// Still changing on the source in every round.
    Unsettled,
}

/// A range that differed, with the latest hashes of both sides.
#[derive(Debug, Clone)]
struct Candidate {
    /// Bucket indices from the top level down: sorts ranges in key order.
    path: Vec<usize>,
    bounds: Bounds,
    src: Sum,
    dst: Sum,
    /// The rows of both sides in the latest round, for ranges of at most
    /// [`ROW_CHECK_ROWS`] rows.
    rows: Option<(RowSet, RowSet)>,
    state: State,
}

/// One table in the making.
struct Work {
    shape: Shape,
    dst: Option<SideTable>,
    problem: Option<ShapeProblem>,
    src_rows: i64,
    dst_rows: i64,
    candidates: Vec<Candidate>,
    rows: Option<RowsReport>,
    seconds: f64,
}

impl Work {
    fn open(&self) -> bool {
        self.candidates.iter().any(|c| c.state == State::Open)
    }
}

/// A pair of sessions, one per side, that import each round's snapshots.
struct Worker {
    src: Connected,
    dst: Connected,
}

/// The consistent point of one round.
struct Point {
    source_lsn: Lsn,
    applied: Option<Lsn>,
    src_snapshot: String,
    dst_snapshot: String,
    waited: Duration,
}

struct TaskCtx<'a> {
    task: &'a str,
    spec: &'a TaskSpec,
    hash: HashKind,
    options: &'a VerifyOptions,
    progress_table: bool,
    wait: bool,
}

async fn verify_task(
    desired: &DesiredState,
    spec: &TaskSpec,
    options: &VerifyOptions,
    say: Say<'_>,
) -> Result<TaskReport, VerifyError> {
    let task = spec.name.as_str();
    let endpoint = |name: &str| {
        desired
            .endpoints
            .get(name)
            .ok_or_else(|| VerifyError::UnknownEndpoint {
                task: task.to_owned(),
                endpoint: name.to_owned(),
            })
    };
    let (source, destination) = (endpoint(&spec.source)?, endpoint(&spec.destination)?);
    let src_coord = session(source).await?;
    let dst_coord = session(destination).await?;
    let hash = match options.hash {
        Some(h) => h,
        None => hash_kind(&src_coord, &dst_coord).await,
    };
    let (resolved, _missing) = precheck::resolve_tables(&src_coord, &spec.objects).await?;
    let names = shape::compared_tables(&src_coord, &resolved).await?;

    let progress_table: bool = dst_coord
        .client
        .query_one(
            "select to_regclass($1) is not null",
            &[&qualified(helpers::SCHEMA, helpers::PROGRESS_TABLE)],
        )
        .await
        .map_err(dst_coord.err("look for the progress table"))?
        .get(0);
    let applied_now = if progress_table {
        crate::sink::read_progress(&dst_coord, task).await?
    } else {
        None
    };
    let slot = slot_name_for_task(task);
    let slot_active = if spec.sync_types.incremental {
        admin::slot_facts(&src_coord, &slot)
            .await?
            .is_some_and(|f| f.active_pid.is_some() && !f.lost)
    } else {
        false
    };
    let streaming = slot_active && applied_now.is_some();
    let note = if !spec.sync_types.incremental {
        Some("the task does not stream: the destination is compared as it is now".to_owned())
    } else if applied_now.is_none() {
        Some("the initial sync has not finished (no progress row on the destination): the destination is compared as it is now".to_owned())
    } else if !slot_active {
        Some(format!(
            "apply is not streaming this task (slot {slot} is not active): the destination is compared as it is, at applied LSN {}; source changes since then show as differences",
            applied_now.unwrap_or_default()
        ))
    } else {
        None
    };
    let ctx = TaskCtx {
        task,
        spec,
        hash,
        options,
        progress_table,
        wait: streaming,
    };

    let jobs = options.jobs.clamp(1, names.len().max(1));
    let mut workers = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        workers.push(Worker {
            src: session(source).await?,
            dst: session(destination).await?,
        });
    }

    // Round 1: every table, narrowed to small differing ranges.
    let first = take_point(&ctx, &src_coord, &dst_coord).await?;
    say(format!(
        "task.{task}: comparing {} tables (hash {}, {jobs} at a time) at source LSN {}{}",
        names.len(),
        match hash {
            HashKind::Hashtext => "hashtext",
            HashKind::Md5 => "md5",
        },
        first.source_lsn,
        match first.applied {
            Some(a) if streaming => format!(
                "; destination applied {a} (waited {:.1} s)",
                first.waited.as_secs_f64()
            ),
            Some(a) => format!("; destination applied {a}"),
            None => String::new(),
        }
    ));
    let queue: Mutex<VecDeque<QualifiedName>> = Mutex::new(names.iter().cloned().collect());
    let done: Mutex<Vec<Work>> = Mutex::new(Vec::new());
    let (q, r, c) = (&queue, &done, &ctx);
    run_workers(&workers, &first, |w| async move {
        loop {
            let Some(name) = q.lock().expect("queue lock").pop_front() else {
                return Ok(());
            };
            if let Some(work) = first_pass(w, c, &name).await? {
                r.lock().expect("results lock").push(work);
            }
        }
    })
    .await?;
    release_point(&src_coord, &dst_coord).await?;
    let mut works = done.into_inner().expect("results lock");

    // Rounds 2…: re-check what differed, under fresh snapshots.
    let mut rounds = 1;
    while rounds < ROUNDS && works.iter().any(Work::open) {
        rounds += 1;
        let open: usize = works
            .iter()
            .map(|w| {
                w.candidates
                    .iter()
                    .filter(|c| c.state == State::Open)
                    .count()
            })
            .sum();
        say(format!(
            "task.{task}: {open} ranges differ; comparing them again under fresh snapshots (round {rounds} of {ROUNDS})"
        ));
        let point = take_point(&ctx, &src_coord, &dst_coord).await?;
        let (todo, rest): (Vec<Work>, Vec<Work>) = works.into_iter().partition(Work::open);
        let queue: Mutex<VecDeque<Work>> = Mutex::new(todo.into());
        let done: Mutex<Vec<Work>> = Mutex::new(rest);
        let (q, r, c) = (&queue, &done, &ctx);
        run_workers(&workers, &point, |w| async move {
            loop {
                let Some(mut work) = q.lock().expect("queue lock").pop_front() else {
                    return Ok(());
                };
                recheck(w, c, &mut work).await?;
                r.lock().expect("results lock").push(work);
            }
        })
        .await?;
        release_point(&src_coord, &dst_coord).await?;
        works = done.into_inner().expect("results lock");
    }
    if works.iter().any(Work::open) {
        for work in &mut works {
            settle(&workers[0], &ctx, work).await?;
        }
    }
    works.sort_by(|a, b| a.shape.name.cmp(&b.shape.name));
    Ok(TaskReport {
        task: task.to_owned(),
        source: spec.source.clone(),
        destination: spec.destination.clone(),
        hash,
        streaming,
        source_lsn: first.source_lsn.to_string(),
        destination_applied_lsn: first.applied.map(|a| a.to_string()),
        waited_seconds: first.waited.as_secs_f64(),
        rounds,
        note,
        tables: works.into_iter().map(table_report).collect(),
    })
}

/// A session for verify: pgsync's pinned settings (`pg::connect`), and no
/// server-side timeout may end a long hash query or a coordinator that
/// holds a snapshot open while the workers read.
async fn session(endpoint: &crate::model::EndpointSpec) -> Result<Connected, PgError> {
    let conn = connect(endpoint).await?;
    conn.client
        .batch_execute("set statement_timeout = 0; set idle_in_transaction_session_timeout = 0")
        .await
        .map_err(conn.err("prepare the verify session"))?;
    Ok(conn)
}

/// Hashtext when both servers hash the probe alike, else md5.
async fn hash_kind(src: &Connected, dst: &Connected) -> HashKind {
    let (a, b) = tokio::join!(probe(src), probe(dst));
    match (a, b) {
        (Some(a), Some(b)) if a == b => HashKind::Hashtext,
        _ => HashKind::Md5,
    }
}

async fn probe(c: &Connected) -> Option<String> {
    c.client
        .query_one(sql::HASH_PROBE_SQL, &[])
        .await
        .ok()
        .and_then(|r| r.get::<_, Option<String>>(0))
}

/// Opens the round's source snapshot, waits (when streaming) until the
/// destination has applied past its position, and opens the destination's.
async fn take_point(
    ctx: &TaskCtx<'_>,
    src: &Connected,
    dst: &Connected,
) -> Result<Point, VerifyError> {
    src.client
        .batch_execute("begin isolation level repeatable read read only")
        .await
        .map_err(src.err("begin the source snapshot"))?;
    // The snapshot is taken as this statement starts, so every transaction
    // it sees ends at or below the insert position read after it.
    let row = src
        .client
        .query_one(
            "select pg_export_snapshot(), pg_current_wal_insert_lsn()::text",
            &[],
        )
        .await
        .map_err(src.err("export the source snapshot"))?;
    let src_snapshot: String = row.get(0);
    let source_lsn: Lsn = row.get::<_, String>(1).parse().unwrap_or_default();
    let started = Instant::now();
    loop {
        dst.client
            .batch_execute("begin isolation level repeatable read read only")
            .await
            .map_err(dst.err("begin the destination snapshot"))?;
        // Read in the snapshot itself: the progress row is committed with
        // the rows, so it says exactly which source transactions it holds.
        let applied = if ctx.progress_table {
            dst.client
                .query_opt(
                    &format!(
                        "select applied_lsn::text from {} where task_name = $1",
                        qualified(helpers::SCHEMA, helpers::PROGRESS_TABLE)
                    ),
                    &[&ctx.task],
                )
                .await
                .map_err(dst.err("read progress"))?
                .and_then(|r| r.get::<_, String>(0).parse::<Lsn>().ok())
        } else {
            None
        };
        if !ctx.wait || applied.is_some_and(|a| a >= source_lsn) {
            let dst_snapshot: String = dst
                .client
                .query_one("select pg_export_snapshot()", &[])
                .await
                .map_err(dst.err("export the destination snapshot"))?
                .get(0);
            return Ok(Point {
                source_lsn,
                applied,
                src_snapshot,
                dst_snapshot,
                waited: started.elapsed(),
            });
        }
        dst.client
            .batch_execute("rollback")
            .await
            .map_err(dst.err("end the destination snapshot"))?;
        if started.elapsed() > ctx.options.timeout {
            let _ = src.client.batch_execute("rollback").await;
            return Err(VerifyError::Lagging {
                task: ctx.task.to_owned(),
                source_lsn,
                applied: applied.unwrap_or_default(),
                seconds: ctx.options.timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn release_point(src: &Connected, dst: &Connected) -> Result<(), PgError> {
    src.client
        .batch_execute("commit")
        .await
        .map_err(src.err("end the source snapshot"))?;
    dst.client
        .batch_execute("commit")
        .await
        .map_err(dst.err("end the destination snapshot"))
}

/// Runs `body` once per worker, each inside the point's snapshots.
async fn run_workers<'w, F, Fut>(
    workers: &'w [Worker],
    point: &Point,
    body: F,
) -> Result<(), VerifyError>
where
    F: Fn(&'w Worker) -> Fut,
    Fut: std::future::Future<Output = Result<(), VerifyError>>,
{
    let jobs = workers.iter().map(|w| {
        let body = &body;
        async move {
            let import = |snapshot: &str| {
                format!(
                    "begin isolation level repeatable read read only; set transaction snapshot {}",
                    crate::sql::literal(snapshot)
                )
            };
            w.src
                .client
                .batch_execute(&import(&point.src_snapshot))
                .await
                .map_err(w.src.err("import the source snapshot"))?;
            w.dst
                .client
                .batch_execute(&import(&point.dst_snapshot))
                .await
                .map_err(w.dst.err("import the destination snapshot"))?;
            let result = body(w).await;
            let _ = w.src.client.batch_execute("commit").await;
            let _ = w.dst.client.batch_execute("commit").await;
            result
        }
    });
    futures_util::future::try_join_all(jobs).await.map(|_| ())
}

/// Runs one of verify's queries, logging it with its duration at debug level.
async fn timed(conn: &Connected, sql: &str, doing: String) -> Result<Vec<Row>, PgError> {
    let started = Instant::now();
    let rows = conn.client.query(sql, &[]).await.map_err(conn.err(doing))?;
    tracing::debug!(
        endpoint = %conn.endpoint,
        ms = started.elapsed().as_millis() as u64,
        rows = rows.len(),
        sql,
        "verify query"
    );
    Ok(rows)
}

async fn count(conn: &Connected, t: &SideTable) -> Result<i64, PgError> {
    let rows = timed(
        conn,
        &t.count_sql(),
        format!("count the rows of {}", t.qualified),
    )
    .await?;
    Ok(rows.first().map_or(0, |r| r.get(0)))
}

async fn splits(
    conn: &Connected,
    t: &SideTable,
    hash: HashKind,
    b: &Bounds,
    step: i64,
    sample: Option<f64>,
) -> Result<Vec<KeyValue>, PgError> {
    let rows = timed(
        conn,
        &t.splits_sql(hash, b, step, sample),
        format!("choose key ranges of {}", t.qualified),
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| (0..t.key_width()).map(|i| r.get::<_, String>(i)).collect())
        .collect())
}

async fn summaries(
    conn: &Connected,
    t: &SideTable,
    hash: HashKind,
    b: &Bounds,
    at: &[KeyValue],
) -> Result<Vec<Sum>, PgError> {
    let rows = timed(
        conn,
        &t.summary_sql(hash, b, at),
        format!("hash the rows of {}", t.qualified),
    )
    .await?;
    let mut out = vec![Sum::empty(); at.len() + 1];
    for r in rows {
        let bucket = usize::try_from(r.get::<_, i32>(0)).unwrap_or(0);
        if let Some(slot) = out.get_mut(bucket) {
            *slot = Sum {
                count: r.get(1),
                h1: r.get(2),
                h2: r.get(3),
            };
        }
    }
    Ok(out)
}

/// Bucket `i` of `b` split at `at`.
fn bucket_bounds(b: &Bounds, at: &[KeyValue], i: usize) -> Bounds {
    Bounds {
        lo: if i == 0 {
            b.lo.clone()
        } else {
            Some(at[i - 1].clone())
        },
        hi: if i == at.len() {
            b.hi.clone()
        } else {
            Some(at[i].clone())
        },
    }
}

/// Reads the table's shape on both sides, hashes it in ranges and narrows
/// the differing ones. `None` when the table vanished from the source.
async fn first_pass(
    w: &Worker,
    ctx: &TaskCtx<'_>,
    name: &QualifiedName,
) -> Result<Option<Work>, VerifyError> {
    let started = Instant::now();
    let route = ctx
        .spec
        .route(&name.schema, &name.name)
        .unwrap_or_else(|| crate::model::Route::identity(name.clone()));
    let Some(shape) = shape::source_shape(&w.src, name, route).await? else {
        tracing::warn!(table = %name, "table dropped on the source during verify; skipped");
        return Ok(None);
    };
    let hash = ctx.hash;
    let all = Bounds::default();
    let mut work = Work {
        dst: None,
        problem: None,
        src_rows: 0,
        dst_rows: 0,
        candidates: Vec::new(),
        rows: None,
        seconds: 0.0,
        shape,
    };
    let src_t = work.shape.source.clone();
    let dst_t = match shape::destination_side(&w.dst, &work.shape).await? {
        Ok(t) => t,
        Err(problem) => {
            work.src_rows = count(&w.src, &src_t).await?;
            if let ShapeProblem::MissingColumns(_) = problem {
                work.dst_rows = count(&w.dst, &src_t).await?;
            }
            work.problem = Some(problem);
            work.seconds = started.elapsed().as_secs_f64();
            return Ok(Some(work));
        }
    };
    let n = count(&w.src, &src_t).await?;
    let at = if n > CHUNK_ROWS {
        let ranges = ((n + CHUNK_ROWS - 1) / CHUNK_ROWS).min(MAX_TOP_RANGES);
        if n > SAMPLE_ABOVE_ROWS && !src_t.key.is_empty() {
            // About SAMPLE_ROWS keys from a block sample: ranges of roughly
            // equal size without reading every key.
            let percent = (100.0 * SAMPLE_ROWS as f64 / n as f64).min(100.0);
            let sampled = n as f64 * percent / 100.0;
            let step = (sampled / ranges as f64).round().max(1.0) as i64;
            splits(&w.src, &src_t, hash, &all, step, Some(percent)).await?
        } else {
            splits(&w.src, &src_t, hash, &all, (n + ranges - 1) / ranges, None).await?
        }
    } else {
        Vec::new()
    };
    let (s, d) = tokio::join!(
        summaries(&w.src, &src_t, hash, &all, &at),
        summaries(&w.dst, &dst_t, hash, &all, &at)
    );
    let (s, d) = (s?, d?);
    work.src_rows = s.iter().map(|x| x.count).sum();
    work.dst_rows = d.iter().map(|x| x.count).sum();
    let mut todo: VecDeque<Candidate> = VecDeque::new();
    for (i, (s, d)) in s.into_iter().zip(d).enumerate() {
        if s != d {
            todo.push_back(Candidate {
                path: vec![i],
                bounds: bucket_bounds(&all, &at, i),
                src: s,
                dst: d,
                rows: None,
                state: State::Open,
            });
        }
    }
    // Narrow breadth-first until ranges are small or there are many.
    let mut out = Vec::new();
    while let Some(c) = todo.pop_front() {
        let big = c.src.count.max(c.dst.count);
        if big <= LEAF_ROWS || out.len() + todo.len() + 1 >= MAX_RANGES {
            out.push(c);
            continue;
        }
        let step = (big + SPLIT_FANOUT - 1) / SPLIT_FANOUT;
        let at = if c.src.count >= c.dst.count {
            splits(&w.src, &src_t, hash, &c.bounds, step, None).await?
        } else {
            splits(&w.dst, &dst_t, hash, &c.bounds, step, None).await?
        };
        if at.is_empty() {
            out.push(c);
            continue;
        }
        let (s, d) = tokio::join!(
            summaries(&w.src, &src_t, hash, &c.bounds, &at),
            summaries(&w.dst, &dst_t, hash, &c.bounds, &at)
        );
        let before = todo.len();
        for (i, (s, d)) in s?.into_iter().zip(d?).enumerate() {
            if s != d {
                let mut path = c.path.clone();
                path.push(i);
                todo.push_back(Candidate {
                    path,
                    bounds: bucket_bounds(&c.bounds, &at, i),
                    src: s,
                    dst: d,
                    rows: None,
                    state: State::Open,
                });
            }
        }
        if todo.len() == before {
            // Cannot happen under one snapshot unless sums collide; keep it whole.
            out.push(c);
        }
    }
    // Small ranges: keep their rows, so the next round can tell which
    // differing rows the source was changing meanwhile.
    for c in &mut out {
        if c.src.count.max(c.dst.count) <= ROW_CHECK_ROWS {
            c.rows = Some(row_sets(w, ctx, &src_t, &dst_t, &c.bounds).await?);
        }
    }
    work.candidates = out;
    work.dst = Some(dst_t);
    work.seconds = started.elapsed().as_secs_f64();
    Ok(Some(work))
}

/// Compares the table's open ranges again under the current point.
///
/// A range equal now is dropped (the difference was the window). For a
/// small range, a row is a confirmed difference when it differed in the
/// previous round and in this one, while its source version and its
/// destination version both stayed the same: the previous destination
/// snapshot lies between the two source snapshots, so no source change can
/// explain it. When instead every row that differed in the previous round
/// has changed on the source since, the range is explained (the source was
/// writing those rows) and dropped. A larger range is judged whole by the
/// confirmation rule on its hashes.
async fn recheck(w: &Worker, ctx: &TaskCtx<'_>, work: &mut Work) -> Result<(), VerifyError> {
    let Some(dst_t) = work.dst.clone() else {
        return Ok(());
    };
    let src_t = work.shape.source.clone();
    let mut kept = Vec::new();
    for mut c in std::mem::take(&mut work.candidates) {
        if c.state != State::Open {
            kept.push(c);
            continue;
        }
        let (s, d) = tokio::join!(
            summaries(&w.src, &src_t, ctx.hash, &c.bounds, &[]),
            summaries(&w.dst, &dst_t, ctx.hash, &c.bounds, &[])
        );
        let (s, d) = (
            s?.pop().unwrap_or_else(Sum::empty),
            d?.pop().unwrap_or_else(Sum::empty),
        );
        work.src_rows += s.count - c.src.count;
        work.dst_rows += d.count - c.dst.count;
        if s == d {
            continue;
        }
        if s.count.max(d.count) <= ROW_CHECK_ROWS {
            let now = row_sets(w, ctx, &src_t, &dst_t, &c.bounds).await?;
            if let Some(before) = &c.rows {
                let confirmed = confirmed_rows(before, &now);
                if !confirmed.is_empty() {
                    c.state = State::Confirmed;
                    if ctx.options.rows {
                        let out = work.rows.get_or_insert_default();
                        for k in &confirmed {
                            classify(out, k, &now);
                        }
                    }
                } else if explained(before, &now.0) {
                    continue;
                }
            }
            c.rows = Some(now);
        } else {
            if s == c.src && d == c.dst {
                c.state = State::Confirmed;
                if ctx.options.rows {
                    let now = row_sets(w, ctx, &src_t, &dst_t, &c.bounds).await?;
                    let out = work.rows.get_or_insert_default();
                    for k in differing(&now) {
                        classify(out, &k, &now);
                    }
                }
            }
            c.rows = None;
        }
        c.src = s;
        c.dst = d;
        kept.push(c);
    }
    work.candidates = kept;
    Ok(())
}

/// After the last round: a range still open is explained when every row
/// that differed in the last round has changed on the source since (read
/// now, after the last destination snapshot): the source was writing those
/// rows while verify looked. Otherwise it is unsettled.
async fn settle(w: &Worker, ctx: &TaskCtx<'_>, work: &mut Work) -> Result<(), VerifyError> {
    let src_t = work.shape.source.clone();
    let mut kept = Vec::new();
    for mut c in std::mem::take(&mut work.candidates) {
        if c.state == State::Open {
            c.state = State::Unsettled;
            if let Some(last) = &c.rows {
                let now = rows_of(&w.src, &src_t, ctx.hash, &c.bounds).await?;
                if explained(last, &now) {
                    continue;
                }
            }
        }
        kept.push(c);
    }
    work.candidates = kept;
    Ok(())
}

/// One side's rows of a range: key → (sorted digests, text form for keyless
/// tables), in key order. A keyless table's key is its row hash, which
/// repeats for duplicate rows, hence a list of digests.
type RowSet = IndexMap<KeyValue, (Vec<String>, Option<String>)>;

async fn rows_of(
    conn: &Connected,
    t: &SideTable,
    hash: HashKind,
    b: &Bounds,
) -> Result<RowSet, PgError> {
    let rows = timed(
        conn,
        &t.rows_sql(hash, b),
        format!("read the rows of {}", t.qualified),
    )
    .await?;
    let width = t.key_width();
    let mut set = RowSet::new();
    for r in &rows {
        let key: KeyValue = (0..width).map(|i| r.get::<_, String>(i)).collect();
        let digest = format!(
            "{}/{}",
            r.get::<_, String>(width),
            r.get::<_, String>(width + 1)
        );
        let entry = set.entry(key).or_default();
        entry.0.push(digest);
        entry.1 = r.get::<_, Option<String>>(width + 2);
    }
    for (digests, _) in set.values_mut() {
        digests.sort();
    }
    Ok(set)
}

async fn row_sets(
    w: &Worker,
    ctx: &TaskCtx<'_>,
    src_t: &SideTable,
    dst_t: &SideTable,
    b: &Bounds,
) -> Result<(RowSet, RowSet), VerifyError> {
    let (s, d) = tokio::join!(
        rows_of(&w.src, src_t, ctx.hash, b),
        rows_of(&w.dst, dst_t, ctx.hash, b)
    );
    Ok((s?, d?))
}

fn digests<'a>(set: &'a RowSet, k: &KeyValue) -> &'a [String] {
    set.get(k).map_or(&[], |(d, _)| d.as_slice())
}

/// Keys whose rows differ between the sides, source order first.
fn differing(sets: &(RowSet, RowSet)) -> Vec<KeyValue> {
    let (s, d) = sets;
    s.keys()
        .chain(d.keys().filter(|k| !s.contains_key(*k)))
        .filter(|k| digests(s, k) != digests(d, k))
        .cloned()
        .collect()
}

/// Keys that differ in both rounds while each side kept the same version.
fn confirmed_rows(before: &(RowSet, RowSet), now: &(RowSet, RowSet)) -> Vec<KeyValue> {
    let before_diff = differing(before);
    differing(now)
        .into_iter()
        .filter(|k| {
            before_diff.contains(k)
                && digests(&before.0, k) == digests(&now.0, k)
                && digests(&before.1, k) == digests(&now.1, k)
        })
        .collect()
}

/// Whether every row that differed in `before` has a different source
/// version in `later` (a later source read): the source was changing
/// exactly those rows, so the difference is the window, not the destination.
fn explained(before: &(RowSet, RowSet), later: &RowSet) -> bool {
    differing(before)
        .iter()
        .all(|k| digests(&before.0, k) != digests(later, k))
}

/// Files the differing key `k` as missing, extra or different.
fn classify(out: &mut RowsReport, k: &KeyValue, sets: &(RowSet, RowSet)) {
    let (s, d) = sets;
    let (sd, dd) = (digests(s, k), digests(d, k));
    let text = s.get(k).or_else(|| d.get(k)).and_then(|(_, t)| t.clone());
    let shown = || text.clone().map_or_else(|| k.clone(), |t| vec![t]);
    let keyless = text.is_some();
    if keyless {
        // Multiplicities of one row text.
        let (which, n) = if sd.len() > dd.len() {
            (Diff::Missing, sd.len() - dd.len())
        } else {
            (Diff::Extra, dd.len() - sd.len())
        };
        for _ in 0..n {
            record(out, which, shown());
        }
    } else if dd.is_empty() {
        record(out, Diff::Missing, shown());
    } else if sd.is_empty() {
        record(out, Diff::Extra, shown());
    } else {
        record(out, Diff::Different, shown());
    }
}

/// Which list a differing row goes to.
#[derive(Clone, Copy)]
enum Diff {
    Missing,
    Extra,
    Different,
}

fn record(out: &mut RowsReport, which: Diff, row: Vec<String>) {
    if out.missing.len() + out.extra.len() + out.different.len() >= MAX_LISTED_ROWS {
        out.truncated = true;
        return;
    }
    match which {
        Diff::Missing => out.missing.push(row),
        Diff::Extra => out.extra.push(row),
        Diff::Different => out.different.push(row),
    }
}

fn range_report(key: &[String], c: &Candidate) -> RangeReport {
    RangeReport {
        lower: c.bounds.lo.clone(),
        upper: c.bounds.hi.clone(),
        text: render::range_text(key, &c.bounds),
        source_rows: c.src.count,
        destination_rows: c.dst.count,
    }
}

fn table_report(mut work: Work) -> TableReport {
    let key = work.shape.key_names();
    let note = match &work.problem {
        Some(ShapeProblem::Missing) => {
            Some("the table does not exist on the destination".to_owned())
        }
        Some(ShapeProblem::MissingColumns(cols)) => Some(format!(
            "columns missing on the destination: {}",
            cols.join(", ")
        )),
        None => None,
    };
    work.candidates.sort_by(|a, b| a.path.cmp(&b.path));
    let pick = |state: State| -> Vec<RangeReport> {
        work.candidates
            .iter()
            .filter(|c| c.state == state)
            .map(|c| range_report(&key, c))
            .collect()
    };
    let ranges = pick(State::Confirmed);
    let unsettled = pick(State::Unsettled);
    let mismatch = note.is_some() || !ranges.is_empty();
    TableReport {
        table: work.shape.name.to_string(),
        status: if mismatch {
            TableStatus::Mismatch
        } else {
            TableStatus::Ok
        },
        key,
        key_kind: work.shape.key_kind,
        source_rows: work.src_rows,
        destination_rows: work.dst_rows,
        note,
        ranges,
        unsettled,
        rows: work.rows,
        seconds: work.seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(rows: &[(&str, &str)]) -> RowSet {
        let mut s = RowSet::new();
        for (k, d) in rows {
            s.entry(vec![(*k).to_owned()])
                .or_insert_with(|| (Vec::new(), None))
                .0
                .push((*d).to_owned());
        }
        s
    }

    fn key(k: &str) -> KeyValue {
        vec![k.to_owned()]
    }

    #[test]
    fn a_row_is_confirmed_only_when_both_sides_held_still() {
        // Row 2 differs in both rounds, same versions: confirmed. Row 3
        // differed but the source changed it: the window, not a mismatch.
        let before = (
            set(&[("1", "a"), ("2", "b"), ("3", "c")]),
            set(&[("1", "a"), ("2", "X"), ("3", "old")]),
        );
        let now = (
            set(&[("1", "a"), ("2", "b"), ("3", "c2")]),
            set(&[("1", "a"), ("2", "X"), ("3", "c")]),
        );
        assert_eq!(confirmed_rows(&before, &now), vec![key("2")]);
        assert!(!explained(&before, &now.0));
        // The destination moved on for row 2: not confirmed (yet).
        let moved = (now.0.clone(), set(&[("1", "a"), ("2", "Y"), ("3", "c")]));
        assert!(confirmed_rows(&before, &moved).is_empty());
    }

    #[test]
    fn rows_the_source_was_writing_explain_the_difference() {
        // An append in the window: extra on the destination, then on the source too.
        let before = (set(&[("1", "a")]), set(&[("1", "a"), ("2", "new")]));
        let later = set(&[("1", "a"), ("2", "new"), ("3", "newer")]);
        assert!(explained(&before, &later));
        assert!(!explained(&before, &before.0));
    }

    #[test]
    fn differing_rows_are_filed_by_kind() {
        let sets = (
            set(&[("1", "a"), ("2", "b")]),
            set(&[("2", "B"), ("3", "c")]),
        );
        let mut out = RowsReport::default();
        for k in differing(&sets) {
            classify(&mut out, &k, &sets);
        }
        assert_eq!(out.missing, vec![key("1")]);
        assert_eq!(out.different, vec![key("2")]);
        assert_eq!(out.extra, vec![key("3")]);
        // Keyless: the key is the row hash, duplicates are multiplicities,
        // and the row's text is what is shown.
        let mut s = RowSet::new();
        s.insert(key("h"), (vec!["d".into()], Some("(3,v)".into())));
        let mut d = RowSet::new();
        d.insert(
            key("h"),
            (vec!["d".into(), "d".into()], Some("(3,v)".into())),
        );
        let mut out = RowsReport::default();
        let sets = (s, d);
        for k in differing(&sets) {
            classify(&mut out, &k, &sets);
        }
        assert_eq!(out.extra, vec![vec!["(3,v)".to_owned()]]);
        assert!(out.missing.is_empty() && out.different.is_empty());
    }

    #[test]
    fn listing_stops_at_the_cap() {
        let mut out = RowsReport::default();
        for i in 0..MAX_LISTED_ROWS + 5 {
            record(&mut out, Diff::Missing, key(&i.to_string()));
        }
        assert_eq!(out.missing.len(), MAX_LISTED_ROWS);
        assert!(out.truncated);
    }
}
