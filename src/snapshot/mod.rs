//! The full copy: every table moved with COPY under the slot's exported
//! snapshot, several tables at once.
//!
//! Invariants:
//! - every worker's source transaction is `repeatable read` and imports the
//!   snapshot exported by `CREATE_REPLICATION_SLOT` (`set transaction
//!   snapshot`), so all tables are copied as of the slot's consistent point:
//!   a transaction committed before it is in the copy, one committed after
//!   it arrives in the stream — never both, never neither;
//! - the replication session that exported the snapshot stays open and idle
//!   until every worker has imported it (the engine holds it);
//! - data is streamed from `COPY … TO STDOUT` into `COPY … FROM STDIN`
//!   chunk by chunk, never buffered whole; binary format when both sides'
//!   types are identical (schema created by pgsync), text otherwise;
//! - a table's destination rows are committed in one transaction, so a
//!   crash leaves a table either copied or empty-and-retried.
//!
//! This module never writes state; it reports [`CopyEvent`]s.
//!
//! The task's `full_*` throttles are enforced here by limiters shared by
//! every worker: `full_qps` before each query sent to the source,
//! `full_rps` per row (one CopyData message per row) and `full_mbps` per
//! byte of COPY data.

pub mod rate;

use std::sync::Arc;

use rate::Limiter;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::model::{EndpointSpec, QualifiedName, Route};
use crate::pg::{PgError, connect};
use crate::sql::{ident, qualified};

/// Progress of the copy, sent to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyEvent {
    /// A worker started the table.
    Started(QualifiedName),
    /// Bytes moved so far for the table (sent about every 8 MiB).
    Progress {
        /// The table.
        table: QualifiedName,
        /// COPY data bytes moved so far.
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
    /// The table's destination transaction committed.
    Copied {
        /// The table.
        table: QualifiedName,
        /// Rows copied (the COPY command tag).
        rows: u64,
        /// COPY data bytes moved.
        bytes: u64,
    },
}

/// A copy failure, naming the table.
#[derive(Debug, thiserror::Error)]
#[error("copying table {table}")]
pub struct CopyError {
    /// The table.
    pub table: String,
    /// The cause.
    #[source]
    pub source: PgError,
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
    /// At most this many tables at once (≥ 1).
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

/// Copies every table of `job`, at most `job.jobs` at a time. The first
/// failure cancels the others.
///
/// # Errors
/// The first [`CopyError`].
pub async fn copy_all(
    job: CopyJob,
    events: mpsc::Sender<CopyEvent>,
    cancel: &CancellationToken,
) -> Result<(), CopyError> {
    let scope = cancel.child_token();
    let permits = Arc::new(Semaphore::new(job.jobs.max(1)));
    let job = Arc::new(job);
    let mut workers = JoinSet::new();
    for table in job.tables.clone() {
        let permit = tokio::select! {
            biased;
            () = scope.cancelled() => break,
            p = Arc::clone(&permits).acquire_owned() => p.expect("semaphore is never closed"),
        };
        let (job, events, token) = (Arc::clone(&job), events.clone(), scope.child_token());
        workers.spawn(async move {
            let _permit = permit;
            tokio::select! {
                biased;
                () = token.cancelled() => Ok(()),
                r = copy_one(&job, &table, &events) => r.map_err(|source| CopyError { table: table.route.source.to_string(), source }),
            }
        });
    }
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

async fn copy_one(
    job: &CopyJob,
    copy: &CopyTable,
    events: &mpsc::Sender<CopyEvent>,
) -> Result<(), PgError> {
    let table = &copy.route.source;
    let src = connect(&job.source).await?;
    let dst = connect(&job.destination).await?;
    let _ = events.send(CopyEvent::Started(table.clone())).await;
    let qps = job.qps.as_ref();
    rate::take(qps, 1.0).await;
    src.client
        .batch_execute(&format!(
            "begin isolation level repeatable read read only; set transaction snapshot {}",
            crate::sql::literal(&job.snapshot)
        ))
        .await
        .map_err(src.err("import the exported snapshot"))?;
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
    let source_sql = match &copy.route.filter {
        // `only`: an inheritance parent's own rows (its children are copied
        // themselves), as `copy TABLE to` does.
        Some(filter) => format!(
            "({} from only {name} where ({filter}))",
            if columns.is_empty() {
                "select".to_owned()
            } else {
                format!("select {}", columns.join(", "))
            }
        ),
        None => format!("{name}{}", list(&columns)),
    };
    let target_table = qualified(&copy.target().schema, &copy.target().name);
    let staging = "pg_temp.dts_copy";
    let target_sql = if job.keep_existing {
        format!("{staging}{}", list(&target_columns))
    } else {
        format!("{target_table}{}", list(&target_columns))
    };
    // Types may differ from a table pgsync did not create: text then.
    let format = if job.binary && !job.keep_existing {
        " (format binary)"
    } else {
        ""
    };
    dst.client
        .batch_execute("set session_replication_role = replica; begin")
        .await
        .map_err(dst.err("begin destination copy"))?;
    if job.keep_existing {
        let cols = if target_columns.is_empty() {
            String::new()
        } else {
            target_columns.join(", ")
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
    let mut bytes = 0u64;
    let mut reported = 0u64;
    while let Some(chunk) = out.next().await {
        let chunk = chunk.map_err(src.err("copy out"))?;
        bytes += chunk.len() as u64;
        rate::take(job.rps.as_ref(), 1.0).await;
        rate::take(job.bytes_per_second.as_ref(), chunk.len() as f64).await;
        sink.send(chunk).await.map_err(dst.err("copy in"))?;
        crate::failpoint::hit("copy.mid_table");
        if bytes - reported >= 8 << 20 {
            reported = bytes;
            let _ = events.try_send(CopyEvent::Progress {
                table: table.clone(),
                bytes,
            });
        }
    }
    let rows = sink.as_mut().finish().await.map_err(dst.err("copy in"))?;
    if job.keep_existing {
        // Rows whose key exists on the destination are kept as they are.
        let cols = target_columns.join(", ");
        let sql = if target_columns.is_empty() {
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
    dst.client
        .batch_execute("commit")
        .await
        .map_err(dst.err("commit copy"))?;
    rate::take(qps, 1.0).await;
    let _ = src.client.batch_execute("commit").await;
    let _ = events
        .send(CopyEvent::Copied {
            table: table.clone(),
            rows,
            bytes,
        })
        .await;
    Ok(())
}
