//! The full copy: every table moved with COPY under the slot's exported
//! snapshot, tables and chunks of large tables in parallel.
//!
//! Invariants:
//! - every worker's source transaction is `repeatable read` and imports the
//!   snapshot exported by `CREATE_REPLICATION_SLOT` (`set transaction
//!   snapshot`), so all tables and all chunks are copied as of the slot's
//!   consistent point: a transaction committed before it is in the copy, one
//!   committed after it arrives in the stream — never both, never neither;
//! - the replication session that exported the snapshot stays open and idle
//!   until every worker has imported it (the engine holds it);
//! - data is streamed from `COPY … TO STDOUT` into `COPY … FROM STDIN`
//!   message by message, never buffered whole; binary format when both
//!   sides' types are identical (schema created by pgsync), text otherwise;
//! - a table larger than the [`ChunkSizing`] is cut into chunks
//!   ([`chunk`]: key ranges, else page ranges); each chunk (or a whole
//!   smaller table) is committed on the destination in its own transaction,
//!   so a crash leaves every chunk either copied or absent;
//! - a chunk's start is recorded by the engine (the [`CopyEvent::ChunkStarted`]
//!   acknowledgement) before its destination transaction commits, so after
//!   a crash every chunk that may have committed is known; a chunk being
//!   copied again after a crash ([`Resume::redo`]) first deletes its key
//!   range on the destination, in the same transaction.
//!
//! Work is shared by `jobs` workers, each with one source session (one
//! snapshot transaction for all its work) and one destination session.
//! Tables are taken largest first; a worker that takes a large table cuts
//! it and puts its chunks at the front of the queue, so every worker helps
//! with it.
//!
//! This module never writes state; it reports [`CopyEvent`]s.
//!
//! The task's `full_*` throttles are enforced here by limiters shared by
//! every worker: `full_qps` before each query sent to the source,
//! `full_rps` per row (one CopyData message per row) and `full_mbps` per
//! byte of COPY data.

pub mod chunk;
pub mod rate;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

pub use chunk::{ChunkSizing, Split};
use rate::Limiter;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::model::{EndpointSpec, QualifiedName, Route};
use crate::pg::{Connected, PgError, connect};
use crate::sql::{ident, qualified};

/// Bytes of COPY data gathered before they are sent to the destination as
/// one CopyData message (the protocol lets a message hold any number of rows
/// or parts of rows: PostgreSQL docs, 55.2.6 "COPY Operations").
const COPY_BATCH: usize = 256 * 1024;

/// Progress of the copy, sent to the engine.
#[derive(Debug)]
pub enum CopyEvent {
    /// The table's size and how it is cut, sent before any of its rows
    /// are copied.
    Planned {
        /// The table.
        table: QualifiedName,
        /// Its chunks (`None`: copied whole, in one transaction).
        split: Option<Split>,
        /// Estimated rows (`reltuples` scaled to the current size; `None`
        /// when the table was never analyzed).
        estimated_rows: Option<u64>,
        /// Size on disk in bytes (`pg_table_size`: heap and TOAST).
        estimated_bytes: u64,
    },
    /// A worker started the table (its first chunk).
    Started(QualifiedName),
    /// Rows and bytes of the table moved by this run so far (counting
    /// chunks in flight); sent about every MiB per worker.
    Progress {
        /// The table.
        table: QualifiedName,
        /// Rows moved (one COPY data message per row).
        rows: u64,
        /// COPY data bytes moved.
        bytes: u64,
    },
    /// Source columns not copied because the existing destination table
    /// lacks them (`conflicting_tables = "ignore"`).
    ColumnsLeftOut {
        /// The table.
        table: QualifiedName,
        /// Source column names.
        columns: Vec<String>,
    },
    /// A chunk's destination transaction began; it commits only once the
    /// engine has recorded that (see [`Ack`]).
    ChunkStarted {
        /// The table.
        table: QualifiedName,
        /// The chunk (from 0).
        chunk: u32,
        /// To be acknowledged once recorded.
        ack: Ack,
    },
    /// A chunk's destination transaction committed.
    ChunkCopied {
        /// The table.
        table: QualifiedName,
        /// The chunk (from 0).
        chunk: u32,
        /// Chunks of the table.
        chunks: u32,
        /// Rows copied (the COPY command tag).
        rows: u64,
        /// COPY data bytes moved.
        bytes: u64,
    },
    /// Every row of the table is on the destination (its last chunk, or
    /// the table's only transaction, committed).
    Copied {
        /// The table.
        table: QualifiedName,
        /// Rows copied by this run (kept chunks of an earlier run are not
        /// counted).
        rows: u64,
        /// COPY data bytes moved by this run.
        bytes: u64,
    },
}

/// The engine's acknowledgement that a chunk's start is recorded. A chunk
/// whose acknowledgement is dropped unsent fails and does not commit.
#[derive(Debug)]
pub struct Ack(oneshot::Sender<()>);

impl Ack {
    /// The start is recorded: the chunk may commit.
    pub fn recorded(self) {
        let _ = self.0.send(());
    }
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyCause {
    /// A server call failed.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// The engine stopped before recording the chunk's start, so it was
    /// not committed.
    #[error("the start of the chunk was not recorded (the apply is stopping)")]
    NotRecorded,
    /// A copy worker's thread could not start its runtime (the process is
    /// out of threads or file descriptors).
    #[error("starting a copy worker: {0} (lower --jobs or raise the process's open-files limit)")]
    Runtime(std::io::Error),
}

/// A copy failure, naming the table and, for a chunk, which one.
#[derive(Debug, thiserror::Error)]
#[error("copying table {table}{}", chunk.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
pub struct CopyError {
    /// The table.
    pub table: String,
    /// `chunk 3 of 8 (id >= 1000 and id < 2000)`, for a chunk.
    pub chunk: Option<String>,
    /// The cause.
    #[source]
    pub source: CopyCause,
}

/// One table to copy: where its rows come from and where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyTable {
    /// The source table (events name it), its destination name, the
    /// columns taken and the row filter (validated by the precheck:
    /// `copy (select … where (FILTER)) to stdout`).
    pub route: Route,
    /// The destination table still has the source's names (schema sync
    /// renames it after the copy): copy into `route.source` and the source
    /// column names.
    pub staged: bool,
}

impl CopyTable {
    /// A table copied as it is, into the same name.
    pub fn same(name: QualifiedName) -> CopyTable {
        CopyTable {
            route: Route::identity(name),
            staged: false,
        }
    }

    /// The destination table written.
    pub fn target(&self) -> &QualifiedName {
        if self.staged {
            &self.route.source
        } else {
            &self.route.target
        }
    }

    /// The destination column written for source column `column`.
    pub fn target_column(&self, column: &str) -> Option<String> {
        if self.staged {
            self.route.selects_column(column).then(|| column.to_owned())
        } else {
            self.route.target_column(column)
        }
    }
}

/// What an interrupted copy left of a table: its cut, the chunks whose
/// rows are on the destination and the chunks that may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The cut recorded by the interrupted run (kept, so chunk numbers
    /// mean the same ranges).
    pub split: Split,
    /// Chunks committed on the destination: not copied again.
    pub done: BTreeSet<u32>,
    /// Chunks started but not recorded as committed: their destination
    /// transaction may have committed, so each first deletes its key range
    /// on the destination (in its own transaction).
    pub redo: BTreeSet<u32>,
}

/// What to copy and how.
#[derive(Debug, Clone)]
pub struct CopyJob {
    /// Source endpoint.
    pub source: EndpointSpec,
    /// Destination endpoint.
    pub destination: EndpointSpec,
    /// Exported snapshot name.
    pub snapshot: String,
    /// Tables (leaf tables only: partitioned parents hold no rows).
    pub tables: Vec<CopyTable>,
    /// Binary COPY (types identical on both sides).
    pub binary: bool,
    /// Workers (≥ 1), each with one source and one destination session.
    pub jobs: usize,
    /// `full_qps`: queries per second to the source, all workers together.
    pub qps: Option<Arc<Limiter>>,
    /// `full_rps`: rows per second, all workers together.
    pub rps: Option<Arc<Limiter>>,
    /// `full_mbps`, as bytes per second (10^6 × the setting).
    pub bytes_per_second: Option<Arc<Limiter>>,
    /// `conflicting_tables = "ignore"`: destination tables may hold rows
    /// already; a row whose key exists is kept (rows go through a temporary
    /// table and `insert … on conflict do nothing`), and source columns the
    /// destination table lacks are left out and reported.
    pub keep_existing: bool,
    /// How large a chunk may be.
    pub sizing: ChunkSizing,
    /// Tables partly copied by an interrupted run, by source name.
    pub resume: BTreeMap<QualifiedName, Resume>,
}

impl CopyJob {
    /// The limiters of a task's `throttle` block.
    pub fn limiters(t: &crate::model::ThrottleSpec) -> [Option<Arc<Limiter>>; 3] {
        [
            Limiter::optional(t.full_qps),
            Limiter::optional(t.full_rps),
            Limiter::optional(t.full_mbps.map(|m| m * 1e6)),
        ]
    }
}

/// Size facts of a source table, read before the copy.
#[derive(Debug, Clone, Copy, Default)]
struct Facts {
    /// `pg_table_size` in bytes.
    bytes: u64,
    /// Estimated rows, when analyzed.
    rows: Option<u64>,
    /// Heap pages now.
    pages: u64,
}

/// Columns of a table as the copy reads and writes them.
#[derive(Debug)]
struct Meta {
    /// Source columns read (quoted).
    columns: Vec<String>,
    /// Destination columns written (quoted), in the same order.
    target_columns: Vec<String>,
    split: Option<Split>,
}

struct TableRun {
    copy: CopyTable,
    facts: Facts,
    meta: OnceLock<Meta>,
    /// Chunks (or 1 for a whole table) still to copy by this run.
    remaining: AtomicU32,
    started: AtomicBool,
    /// Rows moved by this run, counting chunks in flight (approximate:
    /// COPY data messages), for progress.
    rows: AtomicU64,
    /// Rows committed by this run (COPY command tags).
    copied_rows: AtomicU64,
    /// COPY data bytes moved by this run.
    bytes: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
enum Unit {
    /// Read the table's columns and cut it.
    Plan(usize),
    /// Copy the table whole.
    Whole(usize),
    /// Copy one chunk.
    Chunk(usize, u32),
}

struct Shared {
    job: CopyJob,
    tables: Vec<TableRun>,
    queue: Mutex<VecDeque<Unit>>,
    /// Plan units taken and not finished: their chunks may still come.
    planning: AtomicUsize,
    more: Notify,
    server_version: i32,
}

impl Shared {
    fn take(&self) -> Option<Unit> {
        let mut q = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let unit = q.pop_front();
        if let Some(Unit::Plan(_)) = unit {
            self.planning.fetch_add(1, Ordering::SeqCst);
        }
        unit
    }

    /// Ends a plan unit, putting `units` at the front of the queue.
    fn planned(&self, units: Vec<Unit>) {
        {
            let mut q = self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for u in units.into_iter().rev() {
                q.push_front(u);
            }
            self.planning.fetch_sub(1, Ordering::SeqCst);
        }
        self.more.notify_waiters();
    }
}

/// Copies every table of `job` with at most `job.jobs` workers. The first
/// failure cancels the others.
///
/// # Errors
/// The first [`CopyError`].
pub async fn copy_all(
    job: CopyJob,
    events: mpsc::Sender<CopyEvent>,
    cancel: &CancellationToken,
) -> Result<(), CopyError> {
    if job.tables.is_empty() {
        return Ok(());
    }
    let failed = |table: &QualifiedName, source: PgError| CopyError {
        table: table.to_string(),
        chunk: None,
        source: source.into(),
    };
    let first = &job.tables[0].route.source;
    let src = connect(&job.source).await.map_err(|e| failed(first, e))?;
    rate::take(job.qps.as_ref(), 1.0).await;
    let (facts, server_version) = table_facts(&src, &job.tables)
        .await
        .map_err(|e| failed(first, e))?;
    drop(src);
    let mut tables: Vec<TableRun> = job
        .tables
        .iter()
        .zip(facts)
        .map(|(copy, facts)| TableRun {
            copy: copy.clone(),
            facts,
            meta: OnceLock::new(),
            remaining: AtomicU32::new(0),
            started: AtomicBool::new(false),
            rows: AtomicU64::new(0),
            copied_rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        })
        .collect();
    // Largest first, so the long tables do not finish last alone.
    tables.sort_by_key(|t| std::cmp::Reverse(t.facts.bytes));
    let queue = (0..tables.len()).map(Unit::Plan).collect();
    let workers_wanted = job.jobs.max(1);
    let shared = Arc::new(Shared {
        job,
        tables,
        queue: Mutex::new(queue),
        planning: AtomicUsize::new(0),
        more: Notify::new(),
        server_version,
    });
    let scope = cancel.child_token();
    let mut workers = JoinSet::new();
    for _ in 0..workers_wanted {
        let (shared, events, token) = (Arc::clone(&shared), events.clone(), scope.clone());
        // Each worker runs on a thread of its own with a single-threaded
        // runtime, its two sessions' connection tasks with it: every row
        // then moves from the source socket to the destination socket on
        // one thread, with no wake-up of another thread and no reference
        // count bouncing between caches per row (a third of the copy's CPU
        // on the shared runtime).
        workers.spawn_blocking(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CopyError {
                    table: "(none yet)".to_owned(),
                    chunk: None,
                    source: CopyCause::Runtime(e),
                })?;
            runtime.block_on(async move {
                let mut worker = Worker::default();
                let result = tokio::select! {
                    biased;
                    () = token.cancelled() => Ok(()),
                    r = worker.run(&shared, &events, &token) => r,
                };
                if result.is_ok() {
                    worker.finish(&shared).await;
                }
                result
            })
        });
    }
    drop(events);
    let mut first = None;
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                scope.cancel();
                first.get_or_insert(err);
            }
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => {}
        }
    }
    first.map_or(Ok(()), Err)
}

/// Size, estimated rows and pages of every table, and the source's
/// `server_version_num`, in one query.
async fn table_facts(src: &Connected, tables: &[CopyTable]) -> Result<(Vec<Facts>, i32), PgError> {
    let schemas: Vec<&str> = tables
        .iter()
        .map(|t| t.route.source.schema.as_str())
        .collect();
    let names: Vec<&str> = tables
        .iter()
        .map(|t| t.route.source.name.as_str())
        .collect();
    let rows = src
        .client
        .query(
            "select t.i::int8, pg_table_size(c.oid)::int8,
                    case when c.reltuples < 0 or c.relpages = 0 then null
                         else (c.reltuples::float8 / c.relpages
                               * greatest(pg_relation_size(c.oid) / current_setting('block_size')::int8, 1))::int8
                    end,
                    (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8,
                    current_setting('server_version_num')::int4
               from unnest($1::text[], $2::text[]) with ordinality as t(s, n, i)
               join pg_namespace ns on ns.nspname = t.s
               join pg_class c on c.relnamespace = ns.oid and c.relname = t.n",
            &[&schemas, &names],
        )
        .await
        .map_err(src.err("read table sizes"))?;
    let mut out = vec![Facts::default(); tables.len()];
    let mut version = 0;
    for r in rows {
        let i = usize::try_from(r.get::<_, i64>(0) - 1).unwrap_or(usize::MAX);
        if let Some(f) = out.get_mut(i) {
            *f = Facts {
                bytes: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                rows: r
                    .get::<_, Option<i64>>(2)
                    .and_then(|n| u64::try_from(n).ok()),
                pages: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
            };
        }
        version = r.get(4);
    }
    Ok((out, version))
}

#[derive(Default)]
struct Worker {
    src: Option<Connected>,
    dst: Option<Connected>,
}

impl Worker {
    async fn run(
        &mut self,
        shared: &Shared,
        events: &mpsc::Sender<CopyEvent>,
        cancel: &CancellationToken,
    ) -> Result<(), CopyError> {
        loop {
            let more = shared.more.notified();
            futures_util::pin_mut!(more);
            more.as_mut().enable();
            let Some(unit) = shared.take() else {
                if shared.planning.load(Ordering::SeqCst) == 0 {
                    return Ok(());
                }
                more.await;
                continue;
            };
            if cancel.is_cancelled() {
                if let Unit::Plan(_) = unit {
                    shared.planned(Vec::new());
                }
                return Ok(());
            }
            match unit {
                Unit::Plan(i) => {
                    let planned = self.plan(shared, i, events).await;
                    let units = planned.as_ref().map(Clone::clone).unwrap_or_default();
                    shared.planned(units);
                    planned.map_err(|source| CopyError {
                        table: shared.tables[i].copy.route.source.to_string(),
                        chunk: None,
                        source,
                    })?;
                }
                Unit::Whole(i) => self.copy(shared, i, None, events).await?,
                Unit::Chunk(i, c) => self.copy(shared, i, Some(c), events).await?,
            }
        }
    }

    /// Ends the source transaction.
    async fn finish(&mut self, shared: &Shared) {
        if let Some(src) = self.src.take() {
            rate::take(shared.job.qps.as_ref(), 1.0).await;
            let _ = src.client.batch_execute("commit").await;
        }
    }

    /// Both sessions: the source's in the snapshot transaction.
    async fn sessions(&mut self, job: &CopyJob) -> Result<(&Connected, &Connected), PgError> {
        if self.src.is_none() {
            let src = connect(&job.source).await?;
            rate::take(job.qps.as_ref(), 1.0).await;
            src.client
                .batch_execute(&format!(
                    "begin isolation level repeatable read read only; set transaction snapshot {}",
                    crate::sql::literal(&job.snapshot)
                ))
                .await
                .map_err(src.err("import the exported snapshot"))?;
            self.src = Some(src);
        }
        if self.dst.is_none() {
            let dst = connect(&job.destination).await?;
            dst.client
                .batch_execute("set session_replication_role = replica")
                .await
                .map_err(dst.err("set session_replication_role = replica"))?;
            self.dst = Some(dst);
        }
        Ok((
            self.src.as_ref().expect("connected above"),
            self.dst.as_ref().expect("connected above"),
        ))
    }

    /// Reads the columns of table `i`, cuts it, reports it and returns its
    /// units of work.
    async fn plan(
        &mut self,
        shared: &Shared,
        i: usize,
        events: &mpsc::Sender<CopyEvent>,
    ) -> Result<Vec<Unit>, CopyCause> {
        let job = &shared.job;
        let run = &shared.tables[i];
        let copy = &run.copy;
        let table = &copy.route.source;
        let (src, dst) = self.sessions(job).await?;
        let qps = job.qps.as_ref();
        rate::take(qps, 1.0).await;
        // With existing destination tables, only columns both sides have.
        let existing: Option<Vec<String>> = if job.keep_existing {
            let target = copy.target();
            Some(
                dst.client
                    .query(
                        "select attname::text from pg_attribute
                          where attrelid = to_regclass(format('%I.%I', $1::text, $2::text))
                            and attnum > 0 and not attisdropped and attgenerated = ''",
                        &[&target.schema, &target.name],
                    )
                    .await
                    .map_err(dst.err("list destination columns"))?
                    .iter()
                    .map(|r| r.get(0))
                    .collect(),
            )
        } else {
            None
        };
        let mut left_out = Vec::new();
        let (columns, target_columns): (Vec<String>, Vec<String>) = src
            .client
            .query(
                "select attname::text from pg_attribute
                  where attrelid = to_regclass(format('%I.%I', $1::text, $2::text))
                    and attnum > 0 and not attisdropped and attgenerated = ''
                  order by attnum",
                &[&table.schema, &table.name],
            )
            .await
            .map_err(src.err("list columns"))?
            .iter()
            .filter_map(|r| {
                let c: String = r.get(0);
                let t = copy.target_column(&c)?;
                if existing.as_ref().is_some_and(|e| !e.contains(&t)) {
                    left_out.push(c);
                    return None;
                }
                Some((ident(&c), ident(&t)))
            })
            .unzip();
        if !left_out.is_empty() {
            let _ = events
                .send(CopyEvent::ColumnsLeftOut {
                    table: table.clone(),
                    columns: left_out,
                })
                .await;
        }
        let resume = job.resume.get(table);
        let split = match resume {
            Some(r) => Some(r.split.clone()),
            None => {
                let n = job.sizing.chunks(run.facts.bytes, run.facts.rows);
                if n > 1 {
                    cut(src, copy, run.facts, n, shared.server_version, qps).await?
                } else {
                    None
                }
            }
        };
        let _ = events
            .send(CopyEvent::Planned {
                table: table.clone(),
                split: split.clone(),
                estimated_rows: run.facts.rows,
                estimated_bytes: run.facts.bytes,
            })
            .await;
        let units: Vec<Unit> = match &split {
            None => vec![Unit::Whole(i)],
            Some(s) => (0..s.chunks())
                .filter(|c| !resume.is_some_and(|r| r.done.contains(c)))
                .map(|c| Unit::Chunk(i, c))
                .collect(),
        };
        run.remaining.store(
            u32::try_from(units.len()).unwrap_or(u32::MAX),
            Ordering::SeqCst,
        );
        let _ = run.meta.set(Meta {
            columns,
            target_columns,
            split,
        });
        if units.is_empty() {
            // Every chunk was copied before the interruption.
            let _ = events.send(CopyEvent::Started(table.clone())).await;
            let _ = events
                .send(CopyEvent::Copied {
                    table: table.clone(),
                    rows: 0,
                    bytes: 0,
                })
                .await;
        }
        Ok(units)
    }

    /// Copies table `i` whole (`chunk` `None`) or one chunk of it.
    async fn copy(
        &mut self,
        shared: &Shared,
        i: usize,
        chunk: Option<u32>,
        events: &mpsc::Sender<CopyEvent>,
    ) -> Result<(), CopyError> {
        let run = &shared.tables[i];
        let meta = run.meta.get().expect("planned before copied");
        let result = self.copy_inner(shared, run, meta, chunk, events).await;
        result.map_err(|source| CopyError {
            table: run.copy.route.source.to_string(),
            chunk: chunk
                .zip(meta.split.as_ref())
                .map(|(c, s)| format!("chunk {} of {} ({})", c + 1, s.chunks(), s.describe(c))),
            source,
        })
    }

    async fn copy_inner(
        &mut self,
        shared: &Shared,
        run: &TableRun,
        meta: &Meta,
        chunk: Option<u32>,
        events: &mpsc::Sender<CopyEvent>,
    ) -> Result<(), CopyCause> {
        let job = &shared.job;
        let copy = &run.copy;
        let table = &copy.route.source;
        let (src, dst) = self.sessions(job).await?;
        if !run.started.swap(true, Ordering::SeqCst) {
            let _ = events.send(CopyEvent::Started(table.clone())).await;
        }
        let qps = job.qps.as_ref();
        let split = chunk.and(meta.split.as_ref());
        // A table whose only columns are generated has nothing to send: COPY
        // then takes no column list (and moves one empty row per source row).
        let list = |cols: &[String]| {
            if cols.is_empty() {
                String::new()
            } else {
                format!(" ({})", cols.join(", "))
            }
        };
        let name = qualified(&table.schema, &table.name);
        let mut conditions = Vec::new();
        if let Some(filter) = &copy.route.filter {
            conditions.push(format!("({filter})"));
        }
        if let (Some(split), Some(c)) = (split, chunk) {
            conditions.push(split.predicate(c));
        }
        let source_sql = if conditions.is_empty() {
            format!("{name}{}", list(&meta.columns))
        } else {
            // `only`: an inheritance parent's own rows (its children are
            // copied themselves), as `copy TABLE to` does.
            format!(
                "({} from only {name} where {})",
                if meta.columns.is_empty() {
                    "select".to_owned()
                } else {
                    format!("select {}", meta.columns.join(", "))
                },
                conditions.join(" and ")
            )
        };
        let target_table = qualified(&copy.target().schema, &copy.target().name);
        let staging = "pg_temp.dts_copy";
        let target_sql = if job.keep_existing {
            format!("{staging}{}", list(&meta.target_columns))
        } else {
            format!("{target_table}{}", list(&meta.target_columns))
        };
        // Types may differ from a table pgsync did not create: text then.
        let format = if job.binary && !job.keep_existing {
            " (format binary)"
        } else {
            ""
        };
        dst.client
            .batch_execute("begin")
            .await
            .map_err(dst.err("begin destination copy"))?;
        let mut recorded = None;
        if let (Some(split), Some(c)) = (split, chunk) {
            let (tx, rx) = oneshot::channel();
            recorded = Some(rx);
            let _ = events
                .send(CopyEvent::ChunkStarted {
                    table: table.clone(),
                    chunk: c,
                    ack: Ack(tx),
                })
                .await;
            if job.resume.get(table).is_some_and(|r| r.redo.contains(&c)) {
                redo_delete(dst, copy, split, c).await?;
            }
        }
        if job.keep_existing {
            let cols = if meta.target_columns.is_empty() {
                String::new()
            } else {
                meta.target_columns.join(", ")
            };
            dst.client
                .batch_execute(&format!(
                    "create temporary table dts_copy on commit drop as \
                     select {cols} from {target_table} with no data"
                ))
                .await
                .map_err(dst.err("create the staging table"))?;
        }
        rate::take(qps, 1.0).await;
        let out = src
            .client
            .copy_out(&format!("copy {source_sql} to stdout{format}"))
            .await
            .map_err(src.err("copy out"))?;
        let sink = dst
            .client
            .copy_in::<_, bytes::Bytes>(&format!("copy {target_sql} from stdin{format}"))
            .await
            .map_err(dst.err("copy in"))?;
        futures_util::pin_mut!(out);
        futures_util::pin_mut!(sink);
        let (mut bytes, mut messages) = (0u64, 0u64);
        let (mut counted_bytes, mut counted_rows) = (0u64, 0u64);
        // Rows (one CopyData message each) are gathered into batches of
        // about COPY_BATCH bytes: one CopyData message to the destination
        // per batch instead of per row, which is most of the CPU the copy
        // costs otherwise (a channel send and a wake-up per message).
        let mut batch = bytes::BytesMut::with_capacity(COPY_BATCH);
        while let Some(data) = out.next().await {
            // The error closure is built only on error: it allocates.
            let data = data.map_err(|e| src.err("copy out")(e))?;
            bytes += data.len() as u64;
            messages += 1;
            rate::take(job.rps.as_ref(), 1.0).await;
            rate::take(job.bytes_per_second.as_ref(), data.len() as f64).await;
            batch.extend_from_slice(&data);
            if batch.len() >= COPY_BATCH {
                sink.send(batch.split().freeze())
                    .await
                    .map_err(dst.err("copy in"))?;
            }
            crate::failpoint::hit("copy.mid_table");
            if bytes - counted_bytes >= 1 << 20 {
                let rows = run
                    .rows
                    .fetch_add(messages - counted_rows, Ordering::Relaxed)
                    + (messages - counted_rows);
                let total = run
                    .bytes
                    .fetch_add(bytes - counted_bytes, Ordering::Relaxed)
                    + (bytes - counted_bytes);
                (counted_bytes, counted_rows) = (bytes, messages);
                let _ = events.try_send(CopyEvent::Progress {
                    table: table.clone(),
                    rows,
                    bytes: total,
                });
            }
        }
        if !batch.is_empty() {
            sink.send(batch.split().freeze())
                .await
                .map_err(dst.err("copy in"))?;
        }
        let rows = sink.as_mut().finish().await.map_err(dst.err("copy in"))?;
        if job.keep_existing {
            // Rows whose key exists on the destination are kept as they are.
            let cols = meta.target_columns.join(", ");
            let sql = if meta.target_columns.is_empty() {
                format!("insert into {target_table} select from {staging} on conflict do nothing")
            } else {
                format!(
                    "insert into {target_table} ({cols}) overriding system value \
                     select {cols} from {staging} on conflict do nothing"
                )
            };
            dst.client
                .batch_execute(&sql)
                .await
                .map_err(dst.err("insert the copied rows, keeping existing keys"))?;
        }
        if let Some(rx) = recorded {
            rx.await.map_err(|_| CopyCause::NotRecorded)?;
        }
        dst.client
            .batch_execute("commit")
            .await
            .map_err(dst.err("commit copy"))?;
        // The chunk's rows are counted exactly now (the tag, not messages).
        run.rows
            .fetch_add(rows.saturating_sub(counted_rows), Ordering::Relaxed);
        run.copied_rows.fetch_add(rows, Ordering::SeqCst);
        run.bytes.fetch_add(bytes - counted_bytes, Ordering::SeqCst);
        if let (Some(split), Some(c)) = (split, chunk) {
            crate::failpoint::hit("copy.after_chunk_commit");
            let _ = events
                .send(CopyEvent::ChunkCopied {
                    table: table.clone(),
                    chunk: c,
                    chunks: split.chunks(),
                    rows,
                    bytes,
                })
                .await;
        }
        if run.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _ = events
                .send(CopyEvent::Copied {
                    table: table.clone(),
                    rows: run.copied_rows.load(Ordering::SeqCst),
                    bytes: run.bytes.load(Ordering::SeqCst),
                })
                .await;
        }
        Ok(())
    }
}

/// Deletes chunk `c`'s key range on the destination: rows a crashed run
/// may have committed there before recording it.
async fn redo_delete(
    dst: &Connected,
    copy: &CopyTable,
    split: &Split,
    c: u32,
) -> Result<(), PgError> {
    let (Split::Key { column, .. }, Some((lo, hi))) = (split, split.key_range(c)) else {
        return Ok(());
    };
    let Some(target_column) = copy.target_column(column) else {
        return Ok(());
    };
    let target = copy.target();
    let col = ident(&target_column);
    let sql = format!(
        "delete from only {} where ($1::int8 is null or {col} >= $1::int8) \
         and ($2::int8 is null or {col} < $2::int8)",
        qualified(&target.schema, &target.name)
    );
    dst.client
        .execute(&sql, &[&lo, &hi])
        .await
        .map(|_| ())
        .map_err(dst.err("delete the rows of an interrupted chunk"))
}

/// Cuts a table into about `n` chunks under the snapshot: key ranges on a
/// single-column integer key, else page ranges (PostgreSQL 14 and later),
/// else `None` (copied whole).
async fn cut(
    src: &Connected,
    copy: &CopyTable,
    facts: Facts,
    n: u64,
    server_version: i32,
    qps: Option<&Arc<Limiter>>,
) -> Result<Option<Split>, PgError> {
    let table = &copy.route.source;
    rate::take(qps, 1.0).await;
    let key = src
        .client
        .query_opt(
            "select a.attname::text,
                    c.relreplident = 'f' or exists (
                        select 1 from pg_index r
                         where r.indrelid = c.oid and a.attnum = any(r.indkey::int2[])
                           and ((c.relreplident = 'd' and r.indisprimary)
                                or (c.relreplident = 'i' and r.indisreplident)))
               from pg_index i
               join pg_class c on c.oid = i.indrelid
               join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
              where i.indrelid = to_regclass(format('%I.%I', $1::text, $2::text))
                and i.indisunique and i.indisvalid and i.indnkeyatts = 1
                and i.indpred is null and i.indexprs is null and a.attnotnull
                and a.atttypid in ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
              order by i.indisprimary desc, i.indisreplident desc, i.indexrelid
              limit 1",
            &[&table.schema, &table.name],
        )
        .await
        .map_err(src.err("find an integer key to cut the table by"))?;
    if let Some(key) = key {
        let column: String = key.get(0);
        let identity: bool = key.get(1);
        let col = ident(&column);
        let name = qualified(&table.schema, &table.name);
        rate::take(qps, 1.0).await;
        let ends = src
            .client
            .query_one(
                &format!("select min({col})::int8, max({col})::int8 from only {name}"),
                &[],
            )
            .await
            .map_err(src.err("read the key's range"))?;
        let (Some(min), Some(max)) = (ends.get::<_, Option<i64>>(0), ends.get::<_, Option<i64>>(1))
        else {
            return Ok(None);
        };
        // About 200 sampled keys per chunk (at least 20,000), so the
        // percentiles fall near the true ones.
        // Without statistics, about 50 rows a page.
        let want = (n * 200).max(20_000) as f64;
        let rows = facts
            .rows
            .filter(|r| *r > 0)
            .unwrap_or(facts.pages.max(1) * 50);
        let percent = (100.0 * want / rows as f64).clamp(0.01, 100.0);
        let fractions: Vec<f64> = (1..n).map(|i| i as f64 / n as f64).collect();
        rate::take(qps, 1.0).await;
        let sample: Vec<i64> = src
            .client
            .query_one(
                &format!(
                    "select coalesce((percentile_disc($1::float8[]) within group (order by {col}))::int8[], '{{}}')
                       from only {name} tablesample system ($2::float8)"
                ),
                &[&fractions, &percent],
            )
            .await
            .map_err(src.err("sample the key"))?
            .get::<_, Vec<Option<i64>>>(0)
            .into_iter()
            .flatten()
            .collect();
        let bounds = chunk::key_bounds(min, max, n, &sample);
        if bounds.is_empty() {
            return Ok(None);
        }
        return Ok(Some(Split::Key {
            resumable: identity && copy.target_column(&column).is_some(),
            column,
            bounds,
        }));
    }
    if server_version < 140_000 {
        // No TID range scans: every chunk would read the whole table.
        return Ok(None);
    }
    let bounds = chunk::page_bounds(facts.pages, n);
    Ok((!bounds.is_empty()).then_some(Split::Pages { bounds }))
}
