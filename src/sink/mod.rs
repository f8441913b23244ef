//! The destination writer ("apply" in replication terms; named `sink` so it
//! is not confused with `pgsync apply`).
//!
//! Source transactions are applied in commit order inside destination
//! transactions run with `session_replication_role = replica` (triggers and
//! FK checks already ran on the source). Several consecutive source
//! transactions may share one destination transaction (a *batch*: the
//! stream ends each source transaction with [`Sink::end_transaction`] and
//! commits the batch with [`Sink::flush`]). The batch commit writes the
//! task's row of `public.dts_apply_progress` — the end LSN of the batch's
//! LAST source commit — in the same destination transaction, so the
//! destination itself knows exactly which source transactions it holds: the
//! batch commits atomically, after a crash the stream resumes from that LSN
//! and transactions at or below it are skipped (exactly-once apply).
//!
//! Row changes are not sent one round trip each: they are queued (owned
//! texts, bounded by [`MAX_QUEUED_ROWS`] / [`MAX_QUEUED_BYTES`]) and sent
//! in order as one pipeline; a run of INSERTs into the same table with the
//! same columns becomes one `insert … select … from unnest($1::text[], …)`.
//! Anything that is not a queued row change (DDL replay, sequences,
//! TRUNCATE, a new relation description, the commit) first sends the
//! queue, so statements reach the destination exactly in stream order.
//!
//! Values arrive in PostgreSQL's text output form and are bound as `text`
//! parameters cast to the destination column's type (`$1::text::"t"`), so
//! no value is ever decoded in Rust or pasted into SQL.

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

use crate::model::{
    EndpointSpec, Lsn, ObjectSelection, Operations, QualifiedName, Route, TaskSpec,
};
use crate::pg::ddl_capture::DDL_TABLE;
use crate::pg::{Connected, PgError};
use crate::sql::split::{head_matches_tag, split, without_concurrently};
use crate::sql::{helpers, ident, qualified};

/// A column of a relation as the stream describes it (pgoutput Relation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDesc {
    /// Column name.
    pub name: String,
    /// Part of the replica identity (flag bit 1 of the Relation message).
    pub key: bool,
}

/// A relation as the stream describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationDesc {
    /// Source OID (stream-local identifier).
    pub relid: u32,
    /// Schema and name.
    pub name: QualifiedName,
    /// Columns in the order tuples carry them.
    pub columns: Vec<ColumnDesc>,
    /// `d`, `f`, `n` or `i` (pg_class.relreplident).
    pub replica_identity: u8,
}

/// One value of a tuple as pgoutput sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// SQL NULL.
    Null,
    /// A TOASTed value that did not change (UPDATE): leave the destination's.
    Unchanged,
    /// Text output form.
    Text(&'a [u8]),
}

/// A change the destination refused, or a lost connection.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A statement failed.
    #[error("{doing} on {table}")]
    Statement {
        /// What was applied.
        doing: String,
        /// The table.
        table: String,
        /// The cause.
        #[source]
        source: PgError,
    },
    /// The stream referenced a relation it never described.
    #[error("the stream referenced relation oid {0} before describing it")]
    UnknownRelation(u32),
    /// The stream's row does not fit the relation.
    #[error("row for {table} has {got} columns, its relation has {expected}")]
    Shape {
        /// The table.
        table: String,
        /// Columns in the row.
        got: usize,
        /// Columns described.
        expected: usize,
    },
    /// A text value is not UTF-8 (pgsync requires UTF8 databases).
    #[error("a value for {table} is not valid UTF-8; pgsync needs UTF8-encoded databases")]
    Encoding {
        /// The table.
        table: String,
    },
    /// A table of the stream does not exist on the destination.
    #[error("table {0} does not exist on the destination")]
    MissingTable(String),
    /// The source sends a column the destination table lacks (DDL that was
    /// not replicated: no DDL capture, or a change made by hand).
    #[error("table {table} on the destination has no column {column:?}, which the source sends")]
    MissingColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// A captured DDL statement cannot be replayed.
    #[error("cannot replay {tag} `{query}`: {reason}")]
    Ddl {
        /// Command tag.
        tag: String,
        /// The captured query string (shortened).
        query: String,
        /// Why.
        reason: String,
    },
    /// A `where` filter or unchanged values need the source, and the sink
    /// was opened without it.
    #[error("a `where` filter needs a connection to the source, and none was given")]
    NoSource,
    /// Other destination call failed.
    #[error(transparent)]
    Pg(#[from] PgError),
}

/// A table whose key ranges were copied under different snapshots (an
/// initial sync resumed per chunk): each chunk's consistent point. A change
/// to a row is applied only when its transaction committed at or after the
/// point of the chunk holding the row's key, so each key range sees exactly
/// the changes its copy does not hold (docs/architecture.md, "resume
/// granularity").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkPoints {
    /// The source table.
    pub table: QualifiedName,
    /// The cut: key ranges of one integer column of the replica identity.
    pub split: crate::snapshot::Split,
    /// Consistent point of each chunk's snapshot, in chunk order.
    pub points: Vec<Lsn>,
}

impl ChunkPoints {
    /// The key column.
    fn column(&self) -> Option<&str> {
        match &self.split {
            crate::snapshot::Split::Key { column, .. } => Some(column),
            crate::snapshot::Split::Pages { .. } => None,
        }
    }

    /// The point of the chunk holding `key`.
    fn point(&self, key: i64) -> Option<Lsn> {
        let c = self.split.chunk_of(key)?;
        self.points.get(c as usize).copied()
    }
}

/// Queued row changes are sent once this many are waiting.
pub const MAX_QUEUED_ROWS: usize = 2000;
/// Queued row changes are sent once their texts hold this many bytes.
pub const MAX_QUEUED_BYTES: usize = 8 << 20;

/// A row change waiting to be sent: the statement shape and its texts.
struct Op {
    relid: u32,
    kind: u8,
    mask: Vec<bool>,
    params: Vec<Option<String>>,
    doing: &'static str,
}

struct Rel {
    desc: RelationDesc,
    /// Destination `format_type()` of each stream column (`None`: the
    /// destination column is generated and is never written).
    types: Vec<Option<String>>,
    /// The destination table has a `GENERATED ALWAYS AS IDENTITY` column,
    /// which an UPDATE may not set: updates become delete + insert.
    always_identity: bool,
    helper: Option<Helper>,
    /// Where the table goes (its route; the identity route for tables the
    /// task has no settings for).
    target: QualifiedName,
    /// Destination name of each stream column (the source name for a
    /// column not written).
    target_columns: Vec<String>,
    /// The `where` filter and the source type of every stream column.
    filter: Option<RowFilter>,
    /// Kinds of change applied.
    operations: Operations,
    /// The route renames the table or changes its columns.
    reshaped: bool,
    /// The task selects the table (a table removed from the selection may
    /// still appear in the stream until the publication change).
    selected: bool,
    /// `conflicting_tables = "ignore"`: an INSERT whose key exists on the
    /// destination overwrites that row (`on conflict (key) do update`).
    upsert: bool,
    /// Per-chunk snapshot points, with the position of the key column in
    /// the stream's tuples.
    chunks: Option<(usize, std::sync::Arc<ChunkPoints>)>,
}

/// A table's `where` filter, evaluated on the destination over the whole
/// source row: `insert … select … from (select $1::text::T1 as c1, …) as
/// "table" where (FILTER)`. The precheck allows immutable functions only,
/// so the answer is the one the snapshot's COPY gave on the source.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RowFilter {
    expr: String,
    /// `format_type()` of each stream column on the source.
    source_types: Vec<String>,
}

/// pgsync's own source tables that travel in the stream but are not
/// applied as rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Helper {
    /// `public.dts_postgres_heartbeat`: its time goes into the progress row.
    Heartbeat,
    /// `public.dts_ddl_command`: each row is a DDL statement to replay.
    Ddl,
    /// `public.dts_sequence_state`: each row is a sequence position to set.
    Sequence,
    /// A table the task does not select, published by a publication made
    /// outside pgsync (e.g. `FOR ALL TABLES`): its changes are skipped.
    Unselected,
}

/// The destination session of one task.
pub struct Sink {
    conn: Connected,
    task: String,
    spec: Option<TaskSpec>,
    source: Option<EndpointSpec>,
    /// Opened on first need: source types of filtered tables, and values
    /// of unchanged TOAST columns of rows that move into a filter.
    source_conn: Option<Connected>,
    /// Changes left out by `operations`, by kind.
    skipped: BTreeMap<&'static str, u64>,
    /// Commit LSN of the source transaction being applied.
    txn_lsn: Lsn,
    /// See [`Sink::set_careful`].
    careful: bool,
    /// See [`Sink::set_table_snapshots`].
    table_snapshots: BTreeMap<QualifiedName, Lsn>,
    /// See [`Sink::set_chunk_points`].
    chunk_points: BTreeMap<QualifiedName, std::sync::Arc<ChunkPoints>>,
    relations: HashMap<u32, Rel>,
    statements: HashMap<(u32, u8, Vec<bool>), Statement>,
    /// The progress row's upsert, prepared on first use.
    progress: Option<Statement>,
    in_transaction: bool,
    heartbeat_text: Option<String>,
    applied: Lsn,
    /// What the task selects: DDL on other objects is not replayed.
    selection: Vec<ObjectSelection>,
    /// Per query string of the current source transaction, how many of its
    /// statements were already replayed (several DDL statements may arrive
    /// with the same `current_query()`).
    ddl_cursor: HashMap<String, usize>,
    /// DDL statements replayed by this session.
    ddl_replayed: u64,
    /// Row changes not yet sent, in stream order.
    queue: Vec<Op>,
    queued_bytes: usize,
    /// End LSN and commit time of the last source transaction of the open
    /// batch (not committed on the destination yet).
    pending: Option<(Lsn, i64)>,
    /// Source transactions in the open batch.
    pending_txns: u64,
    /// The open batch replayed DDL: it must commit at the end of that
    /// source transaction (e.g. an enum value added there may not be used
    /// before it commits).
    ddl_in_batch: bool,
    /// Skip changes to tables the selection does not take (the publication
    /// is not pgsync's and may publish more).
    only_selected: bool,
    /// Tables skipped by `only_selected` since the last
    /// [`Sink::take_skipped`].
    unselected_seen: Vec<String>,
}

/// Creates `public.dts_apply_progress` on the destination if missing.
///
/// # Errors
/// [`PgError`].
pub async fn ensure_progress_table(dst: &Connected) -> Result<(), PgError> {
    dst.client
        .batch_execute(&format!(
            "create table if not exists {} (
                 task_name text primary key,
                 applied_lsn pg_lsn not null,
                 source_commit_time timestamptz,
                 heartbeat_time timestamptz,
                 updated_at timestamptz not null default now())",
            qualified(helpers::SCHEMA, helpers::PROGRESS_TABLE)
        ))
        .await
        .map_err(dst.err("create progress table"))
}

/// Sets the task's applied LSN outside a stream transaction (after the
/// snapshot: the slot's consistent point).
///
/// # Errors
/// [`PgError`].
pub async fn set_progress(dst: &Connected, task: &str, lsn: Lsn) -> Result<(), PgError> {
    dst.client
        .execute(
            &format!(
                "insert into {} (task_name, applied_lsn) values ($1, $2::text::pg_lsn)
                 on conflict (task_name) do update set applied_lsn = excluded.applied_lsn,
                     updated_at = now()",
                qualified(helpers::SCHEMA, helpers::PROGRESS_TABLE)
            ),
            &[&task, &lsn.to_string()],
        )
        .await
        .map(|_| ())
        .map_err(dst.err("record progress"))
}

/// The task's applied LSN on the destination, if recorded.
///
/// # Errors
/// [`PgError`].
pub async fn read_progress(dst: &Connected, task: &str) -> Result<Option<Lsn>, PgError> {
    let table = qualified(helpers::SCHEMA, helpers::PROGRESS_TABLE);
    let exists: bool = dst
        .client
        .query_one("select to_regclass($1) is not null", &[&table])
        .await
        .map_err(dst.err("look for progress table"))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = dst
        .client
        .query_opt(
            &format!("select applied_lsn::text from {table} where task_name = $1"),
            &[&task],
        )
        .await
        .map_err(dst.err("read progress"))?;
    Ok(row.and_then(|r| r.get::<_, String>(0).parse().ok()))
}

impl Sink {
    /// Wraps a destination session: sets `session_replication_role = replica`
    /// and reads the task's applied LSN.
    ///
    /// # Errors
    /// [`PgError`], e.g. when the role may not set session_replication_role.
    /// `spec` gives each table's route (renames, columns, filter,
    /// operations); `source` is connected to when a filter needs it.
    pub async fn open(
        conn: Connected,
        task: &str,
        spec: &TaskSpec,
        source: Option<EndpointSpec>,
    ) -> Result<Sink, SinkError> {
        let selection = &spec.objects;
        conn.client
            .batch_execute("set session_replication_role = replica")
            .await
            .map_err(conn.err("set session_replication_role = replica"))?;
        let applied = read_progress(&conn, task).await?.unwrap_or(Lsn::ZERO);
        Ok(Sink {
            conn,
            task: task.to_owned(),
            spec: Some(spec.clone()),
            source,
            source_conn: None,
            skipped: BTreeMap::new(),
            txn_lsn: Lsn::ZERO,
            careful: false,
            table_snapshots: BTreeMap::new(),
            chunk_points: BTreeMap::new(),
            relations: HashMap::new(),
            statements: HashMap::new(),
            progress: None,
            in_transaction: false,
            heartbeat_text: None,
            applied,
            selection: selection.to_vec(),
            ddl_cursor: HashMap::new(),
            ddl_replayed: 0,
            queue: Vec::new(),
            queued_bytes: 0,
            pending: None,
            pending_txns: 0,
            ddl_in_batch: false,
            only_selected: false,
            unselected_seen: Vec::new(),
        })
    }

    /// Skips changes to tables the task's selection does not take, for a
    /// publication made outside pgsync that may publish more tables
    /// (`FOR ALL TABLES`, `FOR TABLES IN SCHEMA`, other tables).
    pub fn skip_unselected(&mut self) {
        self.only_selected = true;
    }

    /// Tables whose changes were skipped (not selected) since the last call,
    /// each named once per description.
    pub fn take_skipped(&mut self) -> Vec<String> {
        std::mem::take(&mut self.unselected_seen)
    }

    /// The end LSN of the last source transaction the destination committed.
    pub fn applied(&self) -> Lsn {
        self.applied
    }

    /// Whether a destination transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// The end LSN of the last source transaction ended in the open batch
    /// (applied but not committed on the destination yet).
    pub fn pending(&self) -> Option<Lsn> {
        self.pending.map(|(l, _)| l)
    }

    /// Source transactions in the open batch.
    pub fn pending_transactions(&self) -> u64 {
        self.pending_txns
    }

    /// Whether the open batch must commit before the next source
    /// transaction (it replayed DDL).
    pub fn must_commit(&self) -> bool {
        self.ddl_in_batch || (self.careful && self.pending_txns > 0)
    }

    /// Careful mode (after the destination refused a statement): each
    /// source transaction commits alone and each row is its own statement,
    /// so what precedes a bad row is applied and the error names the row.
    pub fn set_careful(&mut self, careful: bool) {
        self.careful = careful;
    }

    /// The relation `relid` as described by the stream, checked against the
    /// width of `tuple`.
    fn described(&self, relid: u32, tuple: &[Value<'_>]) -> Result<&Rel, SinkError> {
        let rel = self
            .relations
            .get(&relid)
            .ok_or(SinkError::UnknownRelation(relid))?;
        check_shape(rel, tuple)?;
        Ok(rel)
    }

    fn client(&self) -> &Client {
        &self.conn.client
    }

    /// Registers (or replaces, after DDL) a relation description, reading
    /// the destination's column types.
    ///
    /// # Errors
    /// [`SinkError::MissingTable`] when the destination lacks the table.
    pub async fn relation(&mut self, desc: RelationDesc) -> Result<(), SinkError> {
        // Queued rows were shaped by the previous description.
        self.send_queue().await?;
        let helper = match (desc.name.schema.as_str(), desc.name.name.as_str()) {
            (helpers::SCHEMA, helpers::HEARTBEAT_TABLE) => Some(Helper::Heartbeat),
            (helpers::SCHEMA, DDL_TABLE) => Some(Helper::Ddl),
            (helpers::SCHEMA, helpers::SEQUENCE_TABLE) => Some(Helper::Sequence),
            (schema, name)
                if self.only_selected
                    && !self.selection.iter().any(|o| o.selects(schema, name)) =>
            {
                self.unselected_seen.push(desc.name.to_string());
                Some(Helper::Unselected)
            }
            _ => None,
        };
        let route = match (&helper, &self.spec) {
            (None, Some(spec)) => spec.route(&desc.name.schema, &desc.name.name),
            _ => None,
        };
        let selected = route.is_some() || helper.is_some() || self.spec.is_none();
        if !selected {
            // Its changes are skipped; nothing is looked up.
            self.statements
                .retain(|(relid, _, _), _| *relid != desc.relid);
            let name = desc.name.clone();
            self.relations.insert(
                desc.relid,
                Rel {
                    types: vec![None; desc.columns.len()],
                    target_columns: desc.columns.iter().map(|c| c.name.clone()).collect(),
                    desc,
                    always_identity: false,
                    helper: None,
                    target: name,
                    filter: None,
                    operations: Operations::ALL,
                    reshaped: false,
                    selected: false,
                    upsert: false,
                    chunks: None,
                },
            );
            return Ok(());
        }
        let route = route.unwrap_or_else(|| Route::identity(desc.name.clone()));
        let mut types = Vec::with_capacity(desc.columns.len());
        let mut target_columns = Vec::with_capacity(desc.columns.len());
        let mut always_identity = false;
        if helper.is_none() {
            let rows = self
                .client()
                .query(
                    "select a.attname::text, format_type(a.atttypid, a.atttypmod), a.attgenerated <> '',
                            a.attidentity = 'a'
                       from pg_attribute a
                      where a.attrelid = to_regclass(format('%I.%I', $1::text, $2::text))
                        and a.attnum > 0 and not a.attisdropped",
                    &[&route.target.schema, &route.target.name],
                )
                .await
                .map_err(self.conn.err("read destination columns"))?;
            if rows.is_empty() {
                return Err(SinkError::MissingTable(route.target.to_string()));
            }
            always_identity = rows.iter().any(|r| r.get::<_, bool>(3));
            for col in &desc.columns {
                let Some(target) = route.target_column(&col.name) else {
                    // Not selected: never written.
                    types.push(None);
                    target_columns.push(col.name.clone());
                    continue;
                };
                let found = rows.iter().find(|r| r.get::<_, String>(0) == target);
                types.push(match found {
                    Some(r) if !r.get::<_, bool>(2) => Some(r.get::<_, String>(1)),
                    // Generated on the destination: computed there, never written.
                    Some(_) => None,
                    // `conflicting_tables = "ignore"` on a table that existed
                    // with other columns: what matches is written, the rest
                    // is reported (as the copy does).
                    None if self.spec.as_ref().is_some_and(|s| {
                        s.conflicting_tables == crate::model::ConflictMode::Ignore
                    }) =>
                    {
                        tracing::warn!(
                            table = %route.target,
                            column = %target,
                            "conflicting_tables = \"ignore\": the existing destination table lacks this column; its values are not written"
                        );
                        None
                    }
                    // Never drop a value silently: the destination must have
                    // every column the source sends.
                    None => {
                        return Err(SinkError::MissingColumn {
                            table: route.target.to_string(),
                            column: target,
                        });
                    }
                });
                target_columns.push(target);
            }
        }
        let filter = match &route.filter {
            Some(expr) => Some(RowFilter {
                expr: expr.clone(),
                source_types: self.source_types(&desc).await?,
            }),
            None => None,
        };
        self.statements
            .retain(|(relid, _, _), _| *relid != desc.relid);
        let chunks = self.chunk_points.get(&desc.name).and_then(|c| {
            let column = c.column()?;
            let i = desc.columns.iter().position(|d| d.name == column)?;
            Some((i, std::sync::Arc::clone(c)))
        });
        self.relations.insert(
            desc.relid,
            Rel {
                chunks,
                desc,
                types,
                always_identity,
                helper,
                reshaped: route.reshapes(),
                selected: true,
                upsert: self
                    .spec
                    .as_ref()
                    .is_some_and(|s| s.conflicting_tables == crate::model::ConflictMode::Ignore),
                target: route.target,
                target_columns,
                filter,
                operations: route.operations,
            },
        );
        Ok(())
    }

    /// The source connection, opened on first use.
    async fn source(&mut self) -> Result<&Connected, SinkError> {
        if self.source_conn.is_none() {
            let Some(endpoint) = &self.source else {
                return Err(SinkError::NoSource);
            };
            self.source_conn = Some(crate::pg::connect(endpoint).await?);
        }
        Ok(self.source_conn.as_ref().expect("connected above"))
    }

    /// `format_type()` on the source of each column of `desc`.
    async fn source_types(&mut self, desc: &RelationDesc) -> Result<Vec<String>, SinkError> {
        let src = self.source().await?;
        let rows = src
            .client
            .query(
                "select attname::text, format_type(atttypid, atttypmod) from pg_attribute
                  where attrelid = $1 and attnum > 0 and not attisdropped",
                &[&desc.relid],
            )
            .await
            .map_err(src.err("read source column types"))?;
        desc.columns
            .iter()
            .map(|c| {
                rows.iter()
                    .find(|r| r.get::<_, String>(0) == c.name)
                    .map(|r| r.get::<_, String>(1))
                    .ok_or_else(|| SinkError::MissingColumn {
                        table: format!("{} (on the source)", desc.name),
                        column: c.name.clone(),
                    })
            })
            .collect()
    }

    /// Changes left out by `operations` so far, by kind.
    pub fn skipped(&self) -> &BTreeMap<&'static str, u64> {
        &self.skipped
    }

    /// Whether `operations` of `relid` let `kind` through; counts it when
    /// not.
    fn lets_through(&mut self, relid: u32, kind: &'static str) -> bool {
        let Some(rel) = self.relations.get(&relid) else {
            return true;
        };
        if rel.helper.is_some() {
            return true;
        }
        let ops = rel.operations;
        let on = match kind {
            "insert" => ops.insert,
            "update" => ops.update,
            "delete" => ops.delete,
            "truncate" => ops.truncate,
            _ => ops.ddl,
        };
        if !on {
            *self.skipped.entry(kind).or_default() += 1;
        }
        on
    }

    async fn ensure_begun(&mut self) -> Result<(), SinkError> {
        if !self.in_transaction {
            self.client()
                .batch_execute("begin")
                .await
                .map_err(self.conn.err("begin"))?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Opens the destination transaction for a source transaction.
    ///
    /// # Errors
    /// [`PgError`].
    pub async fn begin(&mut self) -> Result<(), SinkError> {
        self.ddl_cursor.clear();
        self.ensure_begun().await
    }

    /// Opens the destination transaction for the source transaction whose
    /// commit record is at `final_lsn` (the Begin message's): changes of a
    /// table copied later under a snapshot taken after it are skipped.
    ///
    /// # Errors
    /// [`PgError`].
    pub async fn begin_at(&mut self, final_lsn: Lsn) -> Result<(), SinkError> {
        self.txn_lsn = final_lsn;
        self.begin().await
    }

    /// Tables copied alone after the task started streaming, with the
    /// consistent point of their snapshot: a transaction committed before it
    /// is in their copy, so its changes to them are skipped.
    pub fn set_table_snapshots(&mut self, snapshots: BTreeMap<QualifiedName, Lsn>) {
        self.table_snapshots = snapshots;
    }

    /// Tables whose chunks were copied under different snapshots: a change
    /// is skipped when its transaction committed before the point of the
    /// chunk holding the row's key (for an UPDATE that moves a row between
    /// chunks, the old and the new key each decide their half). These
    /// tables' changes are not judged by [`Sink::set_table_snapshots`].
    pub fn set_chunk_points(&mut self, points: Vec<ChunkPoints>) {
        self.chunk_points = points
            .into_iter()
            .map(|p| (p.table.clone(), std::sync::Arc::new(p)))
            .collect();
    }

    /// Whether the current transaction's change to the row `tuple` of
    /// `relid` (its old identity, or its new values) is applied: the table
    /// is selected, and the copy of the row's chunk (or of the table) does
    /// not hold the change already.
    fn applies(&self, relid: u32, tuple: &[Value<'_>]) -> bool {
        let Some(rel) = self.relations.get(&relid) else {
            return true;
        };
        if rel.helper.is_some() {
            return true;
        }
        if let Some((i, points)) = &rel.chunks
            && let Some(Value::Text(t)) = tuple.get(*i)
            && let Some(key) = std::str::from_utf8(t).ok().and_then(|t| t.parse().ok())
            && let Some(point) = points.point(key)
        {
            return rel.selected && self.txn_lsn >= point;
        }
        !self.left_out(relid)
    }

    /// For a TRUNCATE of `relid` in the current transaction: `None` when it
    /// applies to the whole table, else the key ranges (destination column,
    /// chunk ranges) it applies to — those whose copy was taken before it.
    fn truncated_ranges(
        &self,
        relid: u32,
    ) -> Option<(String, Vec<crate::snapshot::chunk::KeyRange>)> {
        let rel = self.relations.get(&relid)?;
        let (i, points) = rel.chunks.as_ref()?;
        rel.types.get(*i)?.as_ref()?;
        let n = points.split.chunks();
        let ranges: Vec<_> = (0..n)
            .filter(|c| {
                points
                    .points
                    .get(*c as usize)
                    .is_some_and(|p| self.txn_lsn >= *p)
            })
            .filter_map(|c| points.split.key_range(c))
            .collect();
        if ranges.len() == n as usize {
            return None;
        }
        Some((rel.target_columns[*i].clone(), ranges))
    }

    /// Whether the current transaction's changes to `relid` are left out:
    /// the table is not selected (any more), or its copy already holds them.
    fn left_out(&self, relid: u32) -> bool {
        self.relations.get(&relid).is_some_and(|r| {
            r.helper.is_none()
                && (!r.selected
                    || self
                        .table_snapshots
                        .get(&r.desc.name)
                        .is_some_and(|l| self.txn_lsn < *l))
        })
    }

    /// Applies an INSERT.
    ///
    /// # Errors
    /// [`SinkError`], naming the table.
    pub async fn insert(&mut self, relid: u32, new: &[Value<'_>]) -> Result<(), SinkError> {
        self.ensure_begun().await?;
        let rel = self.described(relid, new)?;
        match rel.helper {
            Some(Helper::Heartbeat) => {
                self.note_heartbeat(relid, new);
                return Ok(());
            }
            Some(Helper::Ddl) => return self.replay_ddl(relid, new).await,
            Some(Helper::Sequence) => return self.set_sequence(relid, new).await,
            Some(Helper::Unselected) => return Ok(()),
            None => {}
        }
        let filtered = rel.filter.is_some();
        if !self.applies(relid, new) || !self.lets_through(relid, "insert") {
            return Ok(());
        }
        let rel = self.described(relid, new)?;
        // A filtered insert binds every column: the filter may read
        // columns that are not written.
        let present: Vec<bool> = new
            .iter()
            .zip(&rel.types)
            .map(|(v, t)| (filtered || t.is_some()) && *v != Value::Unchanged)
            .collect();
        let params = texts(rel_name(&self.relations, relid), new, &present)?;
        self.enqueue(relid, b'I', present, &params, "insert").await
    }

    /// Applies an UPDATE. `old` is the key (`K`) or full (`O`) old tuple
    /// when the key changed or the identity is FULL; otherwise the key is
    /// taken from `new`. Unchanged TOAST values are left alone.
    ///
    /// # Errors
    /// [`SinkError`], naming the table.
    pub async fn update(
        &mut self,
        relid: u32,
        old: Option<&[Value<'_>]>,
        new: &[Value<'_>],
    ) -> Result<(), SinkError> {
        self.ensure_begun().await?;
        let rel = self.described(relid, new)?;
        match rel.helper {
            Some(Helper::Sequence) => return self.set_sequence(relid, new).await,
            Some(Helper::Heartbeat) => {
                self.note_heartbeat(relid, new);
                return Ok(());
            }
            Some(Helper::Ddl | Helper::Unselected) => return Ok(()),
            None => {}
        }
        let identity = old.unwrap_or(new);
        let (from, to) = (self.applies(relid, identity), self.applies(relid, new));
        if !(from || to) || !self.lets_through(relid, "update") {
            return Ok(());
        }
        let rel = self.described(relid, new)?;
        if rel.filter.is_some() || from != to {
            // A filtered table, or a row moving between chunks copied under
            // different snapshots: one half may apply without the other.
            return self.replace_row(relid, old, new, from, to).await;
        }
        check_shape(rel, identity)?;
        let set = set_columns(rel, new, old.is_some());
        if !set.contains(&true) {
            // Only unchanged TOAST values besides the key: nothing to write.
            return Ok(());
        }
        let wher = where_columns(rel, identity);
        let mut mask = set.clone();
        mask.extend(&wher);
        let name = rel_name(&self.relations, relid);
        let mut params = texts(name.clone(), new, &set)?;
        params.extend(texts(name, identity, &wher)?);
        self.enqueue(relid, b'U', mask, &params, "update").await
    }

    /// An UPDATE as a delete plus an insert: the row leaves the destination
    /// (by its old identity, when `delete`) and comes back with its new
    /// values (when `insert`; for a filtered table, when they pass the
    /// filter), so a row moving into the filter appears, one moving out
    /// disappears, and a key change moves it; and a row moving between
    /// chunks copied under different snapshots is changed only on the side
    /// whose copy lacks the change. Values the stream left out (unchanged
    /// TOAST) come from the old tuple under REPLICA IDENTITY FULL, else are
    /// read from the source by key — its current values; a row the source
    /// no longer has is left deleted (the stream brings what became of it).
    async fn replace_row(
        &mut self,
        relid: u32,
        old: Option<&[Value<'_>]>,
        new: &[Value<'_>],
        delete: bool,
        insert: bool,
    ) -> Result<(), SinkError> {
        let rel = self.described(relid, new)?;
        let name = rel_name(&self.relations, relid);
        let identity = old.unwrap_or(new);
        check_shape(rel, identity)?;
        let mut row: Vec<Option<String>> = Vec::with_capacity(new.len());
        let mut missing = Vec::new();
        for (i, v) in new.iter().enumerate() {
            let v = match (v, old.and_then(|o| o.get(i))) {
                (Value::Unchanged, Some(o)) if rel.desc.replica_identity == b'f' => *o,
                (v, _) => *v,
            };
            row.push(match v {
                Value::Text(t) => Some(
                    std::str::from_utf8(t)
                        .map_err(|_| SinkError::Encoding {
                            table: name.clone(),
                        })?
                        .to_owned(),
                ),
                Value::Null => None,
                Value::Unchanged => {
                    missing.push(i);
                    None
                }
            });
        }
        let wher = where_columns(rel, identity);
        let delete_params: Vec<Option<String>> = texts(name.clone(), identity, &wher)?
            .into_iter()
            .map(|p| p.map(str::to_owned))
            .collect();
        // A filtered insert binds every column (the filter may read any);
        // a plain one the columns written.
        let mask: Vec<bool> = if rel.filter.is_some() {
            vec![true; row.len()]
        } else {
            rel.types.iter().map(Option::is_some).collect()
        };
        let mut present = insert;
        if insert && !missing.is_empty() {
            present = self.fetch_unchanged(relid, &mut row, &missing).await?;
        }
        if delete {
            let delete_refs: Vec<Option<&str>> =
                delete_params.iter().map(Option::as_deref).collect();
            self.enqueue(relid, b'D', wher, &delete_refs, "delete")
                .await?;
        }
        if present {
            let refs: Vec<Option<&str>> = row
                .iter()
                .zip(&mask)
                .filter(|(_, m)| **m)
                .map(|(v, _)| v.as_deref())
                .collect();
            self.enqueue(relid, b'I', mask, &refs, "insert").await?;
        }
        Ok(())
    }

    /// Reads the `missing` columns of the row with `row`'s key from the
    /// source into `row`; false when the source no longer has the row.
    async fn fetch_unchanged(
        &mut self,
        relid: u32,
        row: &mut [Option<String>],
        missing: &[usize],
    ) -> Result<bool, SinkError> {
        let rel = self
            .relations
            .get(&relid)
            .ok_or(SinkError::UnknownRelation(relid))?;
        let types = match rel.filter.as_ref() {
            Some(f) => f.source_types.clone(),
            None => {
                let desc = rel.desc.clone();
                self.source_types(&desc).await?
            }
        };
        let rel = self
            .relations
            .get(&relid)
            .ok_or(SinkError::UnknownRelation(relid))?;
        let cols = rel.desc.columns.clone();
        let source = rel.desc.name.clone();
        let keys: Vec<usize> = (0..cols.len()).filter(|&i| cols[i].key).collect();
        if keys.is_empty() || keys.iter().any(|k| missing.contains(k)) {
            return Ok(false);
        }
        let select: Vec<String> = missing
            .iter()
            .map(|&i| format!("{}::text", ident(&cols[i].name)))
            .collect();
        let conds: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(n, &i)| {
                format!(
                    "{} = ${}::text::{}",
                    ident(&cols[i].name),
                    n + 1,
                    types.get(i).map_or("text", String::as_str)
                )
            })
            .collect();
        let sql = format!(
            "select {} from only {} where {}",
            select.join(", "),
            qualified(&source.schema, &source.name),
            conds.join(" and ")
        );
        let params: Vec<Option<String>> = keys.iter().map(|&k| row[k].clone()).collect();
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let src = self.source().await?;
        let found = src
            .client
            .query_opt(&sql, &refs)
            .await
            .map_err(src.err(format!("read unchanged values of {source}")))?;
        let Some(found) = found else {
            return Ok(false);
        };
        for (n, &i) in missing.iter().enumerate() {
            row[i] = found.get::<_, Option<String>>(n);
        }
        Ok(true)
    }

    /// Applies a DELETE by the key (`K`) or full (`O`) old tuple.
    ///
    /// # Errors
    /// [`SinkError`], naming the table.
    pub async fn delete(&mut self, relid: u32, old: &[Value<'_>]) -> Result<(), SinkError> {
        self.ensure_begun().await?;
        let rel = self.described(relid, old)?;
        if rel.helper.is_some() || !self.applies(relid, old) || !self.lets_through(relid, "delete")
        {
            return Ok(());
        }
        let rel = self.described(relid, old)?;
        let wher = where_columns(rel, old);
        let params = texts(rel_name(&self.relations, relid), old, &wher)?;
        self.enqueue(relid, b'D', wher, &params, "delete").await
    }

    /// Applies a TRUNCATE of `relids` (pgoutput lists every truncated
    /// published relation, cascaded ones included).
    ///
    /// # Errors
    /// [`SinkError`].
    pub async fn truncate(
        &mut self,
        relids: &[u32],
        cascade: bool,
        restart_identity: bool,
    ) -> Result<(), SinkError> {
        self.ensure_begun().await?;
        let mut names = Vec::new();
        let mut partly = Vec::new();
        for relid in relids {
            let rel = self
                .relations
                .get(relid)
                .ok_or(SinkError::UnknownRelation(*relid))?;
            if rel.helper.is_none() && !self.left_out(*relid) {
                let name = qualified(&rel.target.schema, &rel.target.name);
                let ranges = self.truncated_ranges(*relid);
                if ranges.as_ref().is_some_and(|(_, r)| r.is_empty()) {
                    // Every chunk's copy was taken after it.
                    continue;
                }
                if self.lets_through(*relid, "truncate") {
                    match ranges {
                        None => names.push(name),
                        Some((column, ranges)) => partly.push((name, column, ranges)),
                    }
                }
            }
        }
        if names.is_empty() && partly.is_empty() {
            return Ok(());
        }
        self.send_queue().await?;
        // Chunks copied after the TRUNCATE hold what followed it: only the
        // others are emptied.
        for (table, column, ranges) in partly {
            let col = ident(&column);
            for (lo, hi) in ranges {
                self.client()
                    .execute(
                        &format!(
                            "delete from only {table} where ($1::int8 is null or {col} >= $1::int8) \
                             and ($2::int8 is null or {col} < $2::int8)"
                        ),
                        &[&lo, &hi],
                    )
                    .await
                    .map_err(|e| SinkError::Statement {
                        doing: "truncate (the key ranges copied before it)".into(),
                        table: table.clone(),
                        source: PgError::new("apply", &self.conn.endpoint, e),
                    })?;
            }
        }
        if names.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "truncate only {}{}{}",
            names.join(", "),
            if restart_identity {
                " restart identity"
            } else {
                ""
            },
            if cascade { " cascade" } else { "" }
        );
        self.client()
            .batch_execute(&sql)
            .await
            .map_err(|e| SinkError::Statement {
                doing: "truncate".into(),
                table: names.join(", "),
                source: PgError::new("apply", &self.conn.endpoint, e),
            })
    }

    /// Ends a source transaction inside the open batch: its changes are
    /// applied (or queued) but not committed; `end_lsn` and the commit time
    /// (microseconds since 2000-01-01, the protocol's epoch) go into the
    /// progress row when the batch commits ([`Sink::flush`]).
    ///
    /// # Errors
    /// [`PgError`].
    pub async fn end_transaction(
        &mut self,
        end_lsn: Lsn,
        commit_time_us: i64,
    ) -> Result<(), SinkError> {
        self.ensure_begun().await?;
        self.pending = Some((end_lsn, commit_time_us));
        self.pending_txns += 1;
        Ok(())
    }

    /// Commits the open batch together with the progress row (the end LSN
    /// and commit time of its last source transaction). Nothing to do
    /// without an open batch.
    ///
    /// # Errors
    /// [`PgError`]; the transaction is then rolled back by the server.
    pub async fn flush(&mut self) -> Result<(), SinkError> {
        let Some((end_lsn, commit_time_us)) = self.pending else {
            return Ok(());
        };
        self.send_queue().await?;
        let secs = commit_time_us as f64 / 1e6 + 946_684_800.0;
        let hb = self.heartbeat_text.take();
        let progress = match &self.progress {
            Some(p) => p.clone(),
            None => {
                let p = self
                    .client()
                    .prepare_typed(
                        &format!(
                            "insert into {} as p (task_name, applied_lsn, source_commit_time, heartbeat_time)
                             values ($1, $2::text::pg_lsn, to_timestamp($3), $4::text::timestamptz)
                             on conflict (task_name) do update set applied_lsn = excluded.applied_lsn,
                                 source_commit_time = excluded.source_commit_time,
                                 heartbeat_time = coalesce(excluded.heartbeat_time, p.heartbeat_time),
                                 updated_at = now()",
                            qualified(helpers::SCHEMA, helpers::PROGRESS_TABLE)
                        ),
                        &[Type::TEXT, Type::TEXT, Type::FLOAT8, Type::TEXT],
                    )
                    .await
                    .map_err(self.conn.err("record progress"))?;
                self.progress = Some(p.clone());
                p
            }
        };
        crate::failpoint::hit("stream.before_commit");
        // The progress row and the commit go out together (one round trip);
        // a failed upsert turns the commit into a rollback on the server.
        let lsn = end_lsn.to_string();
        let client = self.client();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&self.task, &lsn, &secs, &hb];
        let (recorded, committed) = futures_util::join!(
            client.execute(&progress, &params),
            client.batch_execute("commit")
        );
        recorded.map_err(self.conn.err("record progress"))?;
        committed.map_err(self.conn.err("commit"))?;
        crate::failpoint::hit("stream.after_commit");
        self.in_transaction = false;
        self.applied = end_lsn;
        self.pending = None;
        self.pending_txns = 0;
        self.ddl_in_batch = false;
        Ok(())
    }

    /// Ends the source transaction and commits at once (a batch of one).
    ///
    /// # Errors
    /// [`PgError`]; the transaction is then rolled back by the server.
    pub async fn commit(&mut self, end_lsn: Lsn, commit_time_us: i64) -> Result<(), SinkError> {
        self.end_transaction(end_lsn, commit_time_us).await?;
        self.flush().await
    }

    /// Rolls back an open destination transaction (after an error).
    pub async fn rollback(&mut self) {
        self.queue.clear();
        self.queued_bytes = 0;
        self.pending = None;
        self.pending_txns = 0;
        self.ddl_in_batch = false;
        self.heartbeat_text = None;
        if self.in_transaction {
            let _ = self.client().batch_execute("rollback").await;
            self.in_transaction = false;
        }
    }

    /// Replays one captured DDL statement (a row of `public.dts_ddl_command`)
    /// inside the current destination transaction, under the source
    /// session's `search_path`. The statement is found in the captured query
    /// string: the next statement, after those already replayed from the
    /// same string in this transaction, whose keywords match the command tag.
    async fn replay_ddl(&mut self, relid: u32, new: &[Value<'_>]) -> Result<(), SinkError> {
        let rel = self
            .relations
            .get(&relid)
            .ok_or(SinkError::UnknownRelation(relid))?;
        let field = |name: &str| -> Option<String> {
            let i = rel.desc.columns.iter().position(|c| c.name == name)?;
            match new.get(i) {
                Some(Value::Text(t)) => std::str::from_utf8(t).ok().map(str::to_owned),
                _ => None,
            }
        };
        let (Some(tag), Some(query)) = (field("tag"), field("query")) else {
            return Err(SinkError::Ddl {
                tag: String::new(),
                query: String::new(),
                reason: "the captured row lacks tag or query".into(),
            });
        };
        let search_path = field("search_path").unwrap_or_else(|| "public".into());
        let objects = field("objects").unwrap_or_else(|| "[]".into());
        if !ddl_in_selection(&objects, &self.selection) {
            tracing::debug!(tag = %tag, "skipping DDL outside the selection");
            return Ok(());
        }
        // The tables it concerns, by their source names: those the stream
        // described, and those its objects name (routes from the task).
        let mut touched: Vec<(bool, bool, String)> = self
            .relations
            .values()
            .filter(|r| r.helper.is_none() && ddl_touches(&objects, &r.desc.name))
            .map(|r| (r.operations.ddl, r.reshaped, r.desc.name.to_string()))
            .collect();
        if let Some(spec) = &self.spec {
            for t in ddl_tables(&objects) {
                if let Some(route) = spec.route(&t.schema, &t.name) {
                    touched.push((route.operations.ddl, route.reshapes(), t.to_string()));
                }
            }
        }
        // A table copied later under a snapshot of its own (a selection
        // change, a resumed copy) already has what DDL committed before that
        // snapshot did.
        if ddl_tables(&objects).iter().any(|t| {
            self.table_snapshots
                .get(t)
                .is_some_and(|l| self.txn_lsn < *l)
        }) {
            tracing::debug!(tag = %tag, "skipping DDL already in a later table copy");
            return Ok(());
        }
        if touched.iter().any(|(ddl, _, _)| !ddl) {
            *self.skipped.entry("ddl").or_default() += 1;
            tracing::info!(tag = %tag, "skipping DDL: `operations` leaves out \"ddl\"");
            return Ok(());
        }
        if field("event").as_deref() == Some("rows") {
            self.send_queue().await?;
            return self.insert_row_text(&tag, &query, &objects).await;
        }
        if field("event").as_deref() == Some("column_values") {
            self.send_queue().await?;
            return self.set_column_value(&tag, &query, &objects).await;
        }
        self.send_queue().await?;
        let statements = match ddl_statements(&tag, &query, &objects, &mut self.ddl_cursor) {
            Ok(statements) => statements,
            Err(reason) => {
                return Err(SinkError::Ddl {
                    tag,
                    query: truncate_for_message(&query),
                    reason,
                });
            }
        };
        self.client()
            .query(
                "select set_config('search_path', $1, true)",
                &[&search_path],
            )
            .await
            .map_err(self.conn.err("set search_path for DDL replay"))?;
        self.ddl_in_batch = true;
        // Tables renamed or reshaped on the destination get their source
        // names back for the statement (see `swap_in`), and the reshape is
        // done again afterwards on those and on tables the statement
        // created; a table already in its destination shape is never
        // reshaped twice.
        let mut swapped = Vec::new();
        let mut fresh = Vec::new();
        let mut staging: Vec<String> = Vec::new();
        let mut tables = ddl_tables(&objects);
        for t in self.index_tables(&objects).await? {
            if !tables.contains(&t) {
                tables.push(t);
            }
        }
        for source in tables {
            let Some(route) = self
                .spec
                .as_ref()
                .and_then(|s| s.route(&source.schema, &source.name))
            else {
                continue;
            };
            if !route.reshapes() {
                continue;
            }
            // The source's schema holds the table while the statement runs;
            // one made here for that goes again afterwards.
            let exists: bool = self
                .client()
                .query_one(
                    "select exists (select 1 from pg_namespace where nspname = $1)",
                    &[&source.schema],
                )
                .await
                .map_err(self.conn.err("look up a destination schema"))?
                .get(0);
            if !exists {
                self.run_reshape(
                    &source,
                    &[format!("create schema {}", ident(&source.schema))],
                )
                .await?;
                staging.push(source.schema.clone());
            }
            let creates = tag.starts_with("CREATE TABLE") || tag == "SELECT INTO";
            if creates {
                // A new source table: its destination name must be free.
                if self.table_exists(&route.target).await? && route.target != source {
                    return Err(SinkError::Ddl {
                        tag,
                        query: truncate_for_message(&query),
                        reason: format!(
                            "the new table {source} would land in {}, which another table \
                             already occupies (two source tables map to one destination \
                             table); fix the task's `rename`/`mapping`, then run apply",
                            route.target
                        ),
                    });
                }
                fresh.push(source);
            } else if self.table_exists(&route.target).await? {
                self.swap_in(&source, &route).await?;
                swapped.push(source);
            } else if !self.table_exists(&source).await? {
                fresh.push(source);
            }
        }
        for statement in &statements {
            self.client()
                .batch_execute(statement)
                .await
                .map_err(|e| SinkError::Statement {
                    doing: format!("replay `{}`", truncate_for_message(statement)),
                    table: tag.clone(),
                    source: PgError::new("replay DDL", &self.conn.endpoint, e),
                })?;
            self.ddl_replayed += 1;
        }
        for source in swapped.iter().chain(&fresh) {
            self.swap_out(source).await?;
        }
        for schema in &staging {
            let empty: bool = self
                .client()
                .query_one(
                    "select not exists (select 1 from pg_class c join pg_namespace n
                                         on n.oid = c.relnamespace where n.nspname = $1)",
                    &[schema],
                )
                .await
                .map_err(self.conn.err("look up a destination schema"))?
                .get(0);
            if empty {
                self.run_reshape(
                    &QualifiedName::new(schema.clone(), ""),
                    &[format!("drop schema {}", ident(schema))],
                )
                .await?;
            }
        }
        Ok(())
    }

    /// The tables of the indexes a captured statement created (an index's
    /// identity does not name its table): looked up on the source, and only
    /// when some table of the task is reshaped.
    async fn index_tables(&mut self, objects: &str) -> Result<Vec<QualifiedName>, SinkError> {
        let any_reshaped = self.relations.values().any(|r| r.reshaped)
            || self.spec.as_ref().is_some_and(|s| {
                !s.mappings.is_empty()
                    || s.name_case != crate::model::NameCase::Default
                    || s.objects.iter().any(|o| match o {
                        ObjectSelection::Schema { rename, .. } => rename.is_some(),
                        ObjectSelection::Table { options, .. } => {
                            options.rename.is_some()
                                || options.columns.is_some()
                                || !options.column_map.is_empty()
                        }
                    })
            });
        let Ok(serde_json::Value::Array(items)) =
            serde_json::from_str::<serde_json::Value>(objects)
        else {
            return Ok(Vec::new());
        };
        let indexes: Vec<String> = items
            .iter()
            .filter(|o| o.get("type").and_then(|v| v.as_str()) == Some("index"))
            .filter_map(|o| {
                o.get("identity")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .collect();
        if !any_reshaped || indexes.is_empty() {
            return Ok(Vec::new());
        }
        let src = self.source().await?;
        let mut out = Vec::new();
        for identity in indexes {
            if let Some(r) = src
                .client
                .query_opt(
                    "select n.nspname::text, c.relname::text from pg_index i
                       join pg_class c on c.oid = i.indrelid
                       join pg_namespace n on n.oid = c.relnamespace
                      where i.indexrelid = to_regclass($1)",
                    &[&identity],
                )
                .await
                .map_err(src.err("look up the table of an index"))?
            {
                out.push(QualifiedName::new(
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                ));
            }
        }
        Ok(out)
    }

    async fn table_exists(&self, table: &QualifiedName) -> Result<bool, SinkError> {
        Ok(crate::pg::admin::table_exists(&self.conn, table).await?)
    }

    /// Runs reshape statements in the open transaction.
    async fn run_reshape(&self, table: &QualifiedName, sql: &[String]) -> Result<(), SinkError> {
        for statement in sql {
            self.client()
                .batch_execute(statement)
                .await
                .map_err(|e| SinkError::Statement {
                    doing: format!("reshape `{}`", truncate_for_message(statement)),
                    table: table.to_string(),
                    source: PgError::new("replay DDL", &self.conn.endpoint, e),
                })?;
        }
        Ok(())
    }

    /// Gives the destination table of `source` (a reshaped route) its
    /// source schema, name and column names back, so that a captured
    /// statement naming them applies as written.
    async fn swap_in(&mut self, source: &QualifiedName, route: &Route) -> Result<(), SinkError> {
        let target = &route.target;
        let columns = self.destination_columns(target).await?;
        let mut sql = Vec::new();
        let table = qualified(&target.schema, &target.name);
        // The source's column names: from the stream's description when it
        // has one, else from the source catalog.
        // Known from the stream: the columns before this statement.
        let described = self.relations.values().any(|r| &r.desc.name == source);
        let source_columns: Vec<String> =
            match self.relations.values().find(|r| &r.desc.name == source) {
                Some(r) => r.desc.columns.iter().map(|c| c.name.clone()).collect(),
                None => {
                    let src = self.source().await?;
                    crate::pg::routes::source_columns(src, source)
                        .await?
                        .into_iter()
                        .map(|c| c.name)
                        .collect()
                }
            };
        // Destination column → source column, through temporary names.
        let renames: Vec<(String, String)> = source_columns
            .iter()
            .filter_map(|c| route.target_column(c).map(|t| (t, c.clone())))
            .filter(|(t, c)| t != c && columns.contains(t))
            .collect();
        sql.extend(crate::sql::rename_columns(&table, &renames));
        // Columns the task does not select are absent on the destination;
        // a statement may name them (drop, type, rename): they stand in,
        // empty, with the source's type where the source still has them,
        // and go again with the reshape afterwards.
        // (Only from the stream's description: the source catalog already
        // shows the statement's own changes.)
        let unselected: Vec<&String> = source_columns
            .iter()
            .filter(|c| described && route.target_column(c).is_none() && !columns.contains(c))
            .collect();
        if !unselected.is_empty() {
            let types = self.source_column_types(source).await?;
            for c in unselected {
                let ty = types
                    .iter()
                    .find(|(n, _)| n == c)
                    .map_or("text", |(_, t)| t.as_str());
                sql.push(format!("alter table {table} add column {} {ty}", ident(c)));
            }
        }
        let mut at = target.clone();
        if at.name != source.name {
            sql.push(format!(
                "alter table {} rename to {}",
                qualified(&at.schema, &at.name),
                ident(&source.name)
            ));
            at.name = source.name.clone();
        }
        if at.schema != source.schema {
            sql.push(format!(
                "create schema if not exists {}",
                ident(&source.schema)
            ));
            sql.push(format!(
                "alter table {} set schema {}",
                qualified(&at.schema, &at.name),
                ident(&source.schema)
            ));
        }
        self.run_reshape(source, &sql).await
    }

    /// Reshapes table `source` (as the source names it, on the destination
    /// under that name) to its route: unselected columns dropped, columns
    /// renamed, table renamed and moved. A table that is not there (dropped
    /// or renamed by the statement) or whose route keeps its shape is left.
    async fn swap_out(&self, source: &QualifiedName) -> Result<(), SinkError> {
        let Some(route) = self
            .spec
            .as_ref()
            .and_then(|s| s.route(&source.schema, &source.name))
        else {
            return Ok(());
        };
        if !route.reshapes() {
            return Ok(());
        }
        let columns = self.destination_columns(source).await?;
        if columns.is_empty() {
            return Ok(());
        }
        let named: Vec<&String> = route
            .columns
            .iter()
            .flatten()
            .chain(route.column_map.keys())
            .filter(|c| !columns.contains(c))
            .collect();
        if let Some(gone) = named.first() {
            return Err(SinkError::Ddl {
                tag: "ALTER TABLE".into(),
                query: String::new(),
                reason: format!(
                    "column {gone:?} of {source}, named in the task's `columns` or `column_map`, \
                     no longer exists on the source (renamed or dropped); update the table block \
                     in the configuration, then run apply"
                ),
            });
        }
        let table = qualified(&source.schema, &source.name);
        let mut sql = Vec::new();
        let dropped: Vec<String> = columns
            .iter()
            .filter(|c| !route.selects_column(c))
            .map(|c| format!("drop column {} cascade", ident(c)))
            .collect();
        if !dropped.is_empty() {
            sql.push(format!("alter table {table} {}", dropped.join(", ")));
        }
        let renames: Vec<(String, String)> = columns
            .iter()
            .filter_map(|c| route.target_column(c).map(|t| (c.clone(), t)))
            .filter(|(c, t)| c != t)
            .collect();
        sql.extend(crate::sql::rename_columns(&table, &renames));
        let target = &route.target;
        let mut at = source.clone();
        if target.name != at.name {
            sql.push(format!(
                "alter table {} rename to {}",
                qualified(&at.schema, &at.name),
                ident(&target.name)
            ));
            at.name = target.name.clone();
        }
        if target.schema != at.schema {
            sql.push(format!(
                "create schema if not exists {}",
                ident(&target.schema)
            ));
            sql.push(format!(
                "alter table {} set schema {}",
                qualified(&at.schema, &at.name),
                ident(&target.schema)
            ));
        }
        self.run_reshape(source, &sql).await
    }

    /// `(name, format_type)` of the columns source table `table` has now.
    async fn source_column_types(
        &mut self,
        table: &QualifiedName,
    ) -> Result<Vec<(String, String)>, SinkError> {
        let src = self.source().await?;
        Ok(src
            .client
            .query(
                "select attname::text, format_type(atttypid, atttypmod) from pg_attribute
                  where attrelid = to_regclass(format('%I.%I', $1::text, $2::text))
                    and attnum > 0 and not attisdropped",
                &[&table.schema, &table.name],
            )
            .await
            .map_err(src.err("read source column types"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    /// Columns of destination table `table` (empty when it does not exist).
    async fn destination_columns(&self, table: &QualifiedName) -> Result<Vec<String>, SinkError> {
        Ok(self
            .client()
            .query(
                "select attname::text from pg_attribute
                  where attrelid = to_regclass(format('%I.%I', $1::text, $2::text))
                    and attnum > 0 and not attisdropped order by attnum",
                &[&table.schema, &table.name],
            )
            .await
            .map_err(self.conn.err("read destination columns"))?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// Sets a destination sequence to the position a row of
    /// `public.dts_sequence_state` carries; a sequence the destination does
    /// not have (not selected, or not created yet) is skipped.
    async fn set_sequence(&mut self, relid: u32, new: &[Value<'_>]) -> Result<(), SinkError> {
        let rel = self
            .relations
            .get(&relid)
            .ok_or(SinkError::UnknownRelation(relid))?;
        let field = |name: &str| -> Option<&str> {
            let i = rel.desc.columns.iter().position(|c| c.name == name)?;
            match new.get(i) {
                Some(Value::Text(t)) => std::str::from_utf8(t).ok(),
                _ => None,
            }
        };
        let (Some(schema), Some(name), Some(value), Some(called)) = (
            field("seq_schema"),
            field("seq_name"),
            field("last_value"),
            field("is_called"),
        ) else {
            return Ok(());
        };
        let (schema, name, value, called) = (
            schema.to_owned(),
            name.to_owned(),
            value.to_owned(),
            called.to_owned(),
        );
        self.set_sequence_to(&schema, &name, &value, &called).await
    }

    /// `setval` of destination sequence `schema.name` (texts of the value
    /// and `is_called`); nothing when the destination has no such sequence.
    async fn set_sequence_to(
        &mut self,
        schema: &str,
        name: &str,
        value: &str,
        called: &str,
    ) -> Result<(), SinkError> {
        let sql = "select setval(c.oid, $3::text::int8, $4::text::bool)
                     from pg_class c join pg_namespace n on n.oid = c.relnamespace
                    where n.nspname = $1 and c.relname = $2 and c.relkind = 'S'";
        self.send_queue().await?;
        self.client()
            .query(sql, &[&schema, &name, &value, &called])
            .await
            .map_err(self.conn.err(format!("set sequence {schema}.{name}")))?;
        Ok(())
    }

    /// Handles a transactional logical message of the current source
    /// transaction: pgsync's heartbeat ([`crate::pg::admin::HEARTBEAT_MESSAGE`],
    /// its source time goes into the progress row) and this task's sequence
    /// positions ([`crate::pg::admin::SEQUENCE_MESSAGE`]). Other messages
    /// (other tasks' positions, other tools') change nothing.
    ///
    /// # Errors
    /// [`SinkError`] when setting a sequence fails.
    pub async fn message(&mut self, prefix: &str, content: &[u8]) -> Result<(), SinkError> {
        use crate::pg::admin::{HEARTBEAT_MESSAGE, SEQUENCE_MESSAGE, SequenceMessage};
        if prefix == HEARTBEAT_MESSAGE {
            self.heartbeat_text = std::str::from_utf8(content).ok().map(str::to_owned);
        } else if prefix == SEQUENCE_MESSAGE {
            let Ok(message) = serde_json::from_slice::<SequenceMessage>(content) else {
                tracing::warn!(task = %self.task, "ignoring a malformed sequence positions message");
                return Ok(());
            };
            if message.task != self.task {
                return Ok(());
            }
            self.ensure_begun().await?;
            for p in message.positions {
                self.set_sequence_to(
                    &p.schema,
                    &p.name,
                    &p.last_value.to_string(),
                    &p.is_called.to_string(),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Inserts one row of a CREATE TABLE AS / SELECT INTO table, sent by the
    /// capture trigger as the row's text form (`t::text`, a composite
    /// literal) because the rows were written before the table joined the
    /// publication. The table name is PostgreSQL's own quoted
    /// `object_identity`.
    async fn insert_row_text(
        &mut self,
        tag: &str,
        row: &str,
        objects: &str,
    ) -> Result<(), SinkError> {
        let identity = serde_json::from_str::<serde_json::Value>(objects)
            .ok()
            .and_then(|v| v.get(0)?.get("identity")?.as_str().map(str::to_owned))
            .ok_or_else(|| SinkError::Ddl {
                tag: tag.to_owned(),
                query: String::new(),
                reason: "a row of a new table arrived without the table's name".into(),
            })?;
        let sql = format!("insert into {identity} select ($1::text::{identity}).*");
        self.client()
            .execute(&sql, &[&row])
            .await
            .map_err(|e| SinkError::Statement {
                doing: "insert a row of a table created by CREATE TABLE AS".into(),
                table: identity.clone(),
                source: PgError::new("apply", &self.conn.endpoint, e),
            })?;
        Ok(())
    }

    /// Sets one column of one destination row to the source's value, after
    /// an ALTER TABLE … ADD COLUMN whose default is not immutable (each side
    /// would otherwise compute its own `random()` / `now()` values). The
    /// capture trigger sends the whole row text, the column, the primary key
    /// constraint and the writable columns; the row is upserted by that key.
    /// Names are PostgreSQL's own quoted `object_identity` / `quote_ident`
    /// output, except the column and constraint, quoted here.
    async fn set_column_value(
        &mut self,
        tag: &str,
        row: &str,
        objects: &str,
    ) -> Result<(), SinkError> {
        let info = serde_json::from_str::<serde_json::Value>(objects)
            .ok()
            .and_then(|v| v.get(0).cloned());
        let get = |k: &str| {
            info.as_ref()
                .and_then(|o| o.get(k)?.as_str().map(str::to_owned))
        };
        let columns: Option<Vec<String>> = info.as_ref().and_then(|o| {
            o.get("columns")?
                .as_array()?
                .iter()
                .map(|c| c.as_str().map(str::to_owned))
                .collect()
        });
        let (Some(identity), Some(column), Some(constraint), Some(columns)) =
            (get("identity"), get("column"), get("constraint"), columns)
        else {
            return Err(SinkError::Ddl {
                tag: tag.to_owned(),
                query: String::new(),
                reason: "a column value arrived without its table, column or key".into(),
            });
        };
        let col = ident(&column);
        let sql = format!(
            "insert into {identity} ({columns}) overriding system value \
             select {select} from (select $1::text::{identity} as r) s \
             on conflict on constraint {key} do update set {col} = excluded.{col}",
            columns = columns
                .iter()
                .map(|c| ident(c))
                .collect::<Vec<_>>()
                .join(", "),
            select = columns
                .iter()
                .map(|c| format!("(s.r).{}", ident(c)))
                .collect::<Vec<_>>()
                .join(", "),
            key = ident(&constraint),
        );
        self.client()
            .execute(&sql, &[&row])
            .await
            .map_err(|e| SinkError::Statement {
                doing: format!("set the source's values of the new column {column}"),
                table: identity.clone(),
                source: PgError::new("apply", &self.conn.endpoint, e),
            })?;
        Ok(())
    }

    /// DDL statements replayed by this session.
    pub fn ddl_replayed(&self) -> u64 {
        self.ddl_replayed
    }

    fn note_heartbeat(&mut self, relid: u32, new: &[Value<'_>]) {
        let Some(rel) = self.relations.get(&relid) else {
            return;
        };
        let idx = rel.desc.columns.iter().position(|c| c.name == "ts");
        if let Some(Value::Text(t)) = idx.and_then(|i| new.get(i)) {
            self.heartbeat_text = std::str::from_utf8(t).ok().map(str::to_owned);
        }
    }

    /// Queues a row change; sends the queue when it is full.
    async fn enqueue(
        &mut self,
        relid: u32,
        kind: u8,
        mask: Vec<bool>,
        params: &[Option<&str>],
        doing: &'static str,
    ) -> Result<(), SinkError> {
        let params: Vec<Option<String>> = params.iter().map(|p| p.map(str::to_owned)).collect();
        self.queued_bytes += params
            .iter()
            .map(|p| p.as_ref().map_or(8, |s| s.len() + 8))
            .sum::<usize>();
        self.queue.push(Op {
            relid,
            kind,
            mask,
            params,
            doing,
        });
        if self.queue.len() >= MAX_QUEUED_ROWS || self.queued_bytes >= MAX_QUEUED_BYTES {
            self.send_queue().await?;
        }
        Ok(())
    }

    /// Sends every queued row change, in order, as one pipeline: runs of
    /// INSERTs into the same table with the same columns become one
    /// multi-row statement. The first error (in stream order) is returned.
    async fn send_queue(&mut self) -> Result<(), SinkError> {
        if self.queue.is_empty() {
            return Ok(());
        }
        let ops = std::mem::take(&mut self.queue);
        self.queued_bytes = 0;
        let mut calls: Vec<Call> = Vec::new();
        let mut ops = ops.into_iter().peekable();
        while let Some(op) = ops.next() {
            let run_of_inserts = !self.careful
                && op.kind == b'I'
                && op.mask.contains(&true)
                && ops
                    .peek()
                    .is_some_and(|n| n.kind == b'I' && n.relid == op.relid && n.mask == op.mask);
            if run_of_inserts {
                let mut columns: Vec<Vec<Option<String>>> =
                    op.params.into_iter().map(|p| vec![p]).collect();
                while let Some(next) =
                    ops.next_if(|n| n.kind == b'I' && n.relid == op.relid && n.mask == op.mask)
                {
                    for (col, p) in columns.iter_mut().zip(next.params) {
                        col.push(p);
                    }
                }
                let stmt = self.statement(op.relid, b'M', op.mask.clone()).await?;
                calls.push(Call {
                    stmt,
                    params: Params::Columns(columns),
                    doing: "insert",
                    relid: op.relid,
                    kind: b'M',
                    mask: op.mask,
                });
            } else {
                let stmt = self.statement(op.relid, op.kind, op.mask.clone()).await?;
                calls.push(Call {
                    stmt,
                    params: Params::Row(op.params),
                    doing: op.doing,
                    relid: op.relid,
                    kind: op.kind,
                    mask: op.mask,
                });
            }
        }
        let client = &self.conn.client;
        let mut futures: Vec<_> = calls
            .iter()
            .map(|c| {
                Box::pin(futures_util::future::maybe_done(async move {
                    let refs = c.params.refs();
                    client.execute(&c.stmt, &refs).await
                }))
            })
            .collect();
        // Every pass polls the futures in order, so the requests go out on
        // the connection in stream order (tokio-postgres pipelines them).
        std::future::poll_fn(|cx| {
            let mut done = true;
            for f in &mut futures {
                if f.as_mut().poll(cx).is_pending() {
                    done = false;
                }
            }
            if done {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        for (f, call) in futures.iter_mut().zip(&calls) {
            if let Some(Err(e)) = f.as_mut().take_output() {
                let key = self
                    .relations
                    .get(&call.relid)
                    .and_then(|r| key_of(r, call));
                return Err(SinkError::Statement {
                    doing: match key {
                        Some(k) => format!("{} of {k}", call.doing),
                        None => call.doing.into(),
                    },
                    table: rel_name(&self.relations, call.relid),
                    source: PgError::new("apply", &self.conn.endpoint, e),
                });
            }
        }
        Ok(())
    }

    async fn statement(
        &mut self,
        relid: u32,
        kind: u8,
        mask: Vec<bool>,
    ) -> Result<Statement, SinkError> {
        let key = (relid, kind, mask);
        if let Some(s) = self.statements.get(&key) {
            return Ok(s.clone());
        }
        let rel = self
            .relations
            .get(&relid)
            .ok_or(SinkError::UnknownRelation(relid))?;
        let sql = statement_sql(rel, kind, &key.2);
        let n = key.2.iter().filter(|bound| **bound).count();
        let ty = if kind == b'M' {
            Type::TEXT_ARRAY
        } else {
            Type::TEXT
        };
        let stmt = self
            .client()
            .prepare_typed(&sql, &vec![ty; n])
            .await
            .map_err(|e| SinkError::Statement {
                doing: match &rel.filter {
                    Some(f) => format!(
                        "prepare the insert through the table's `where` filter {:?} (a column it \
                         reads may have been renamed, dropped or retyped on the source: update \
                         the filter in the configuration)",
                        f.expr
                    ),
                    None => "prepare".into(),
                },
                table: rel.desc.name.to_string(),
                source: PgError::new("apply", &self.conn.endpoint, e),
            })?;
        self.statements.insert(key, stmt.clone());
        Ok(stmt)
    }
}

/// The parameters of one pipelined call.
enum Params {
    /// One row: a text per bound column.
    Row(Vec<Option<String>>),
    /// A run of rows: a text array per bound column.
    Columns(Vec<Vec<Option<String>>>),
}

impl Params {
    fn refs(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        match self {
            Params::Row(v) => v
                .iter()
                .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect(),
            Params::Columns(v) => v
                .iter()
                .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect(),
        }
    }
}

/// One statement of a pipeline.
struct Call {
    stmt: Statement,
    params: Params,
    doing: &'static str,
    relid: u32,
    kind: u8,
    mask: Vec<bool>,
}

/// The row a failed call wrote, `the row with key (id)=(7)`, for the error: from
/// the bound key columns (for UPDATE, its WHERE part); for a run of inserts
/// the first and last rows'. `None` for tables without a key.
fn key_of(rel: &Rel, call: &Call) -> Option<String> {
    let cols = &rel.desc.columns;
    let n = cols.len();
    let (mask, skip) = if call.kind == b'U' && call.mask.len() == 2 * n {
        (
            &call.mask[n..],
            call.mask[..n].iter().filter(|b| **b).count(),
        )
    } else {
        (&call.mask[..], 0)
    };
    let row = |value: &dyn Fn(usize) -> Option<String>| -> Option<String> {
        let mut names = Vec::new();
        let mut values = Vec::new();
        let mut j = skip;
        for (i, bound) in mask.iter().enumerate() {
            if !bound {
                continue;
            }
            if cols.get(i).is_some_and(|c| c.key) {
                names.push(rel.target_columns.get(i).cloned().unwrap_or_default());
                values.push(value(j).unwrap_or_else(|| "NULL".to_owned()));
            }
            j += 1;
        }
        (!names.is_empty()).then(|| format!("({})=({})", names.join(", "), values.join(", ")))
    };
    match &call.params {
        Params::Row(p) => {
            row(&|j| p.get(j).cloned().flatten()).map(|k| format!("the row with key {k}"))
        }
        Params::Columns(c) => {
            let rows = c.first().map_or(0, Vec::len);
            let first = row(&|j| c.get(j).and_then(|v| v.first().cloned().flatten()))?;
            let last = row(&|j| c.get(j).and_then(|v| v.last().cloned().flatten()))?;
            Some(format!("{rows} rows, keys {first} … {last}"))
        }
    }
}

/// The statements that replay one captured DDL event.
///
/// Normally the statement itself, found in the captured query string (which
/// may hold several): the next one, after those already replayed from the
/// same string in this transaction (`cursor`), whose keywords match the
/// command tag and which names the object it created or altered. When there
/// is none — the DDL ran inside a function or DO block — or the command is
/// CREATE TABLE AS / SELECT INTO (whose rows arrive in the stream anyway),
/// the definitions the event trigger recorded for the objects are used.
///
/// The replay runs inside the destination transaction, where `CONCURRENTLY`
/// is refused: `CREATE INDEX CONCURRENTLY` and `DROP INDEX CONCURRENTLY`
/// are replayed without it (the same index, built while the destination
/// table is locked against writes, or the same drop). REINDEX (captured from PostgreSQL 17) is not replayed:
/// it rebuilds what the destination built itself, and some of its forms
/// cannot run in a transaction at all.
///
/// # Errors
/// Why the event cannot be replayed.
fn ddl_statements(
    tag: &str,
    query: &str,
    objects: &str,
    cursor: &mut HashMap<String, usize>,
) -> Result<Vec<String>, String> {
    let objects: Vec<serde_json::Value> = match serde_json::from_str(objects) {
        Ok(serde_json::Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let definitions: Vec<String> = objects
        .iter()
        .filter_map(|o| {
            o.get("definition")
                .and_then(|d| d.as_str())
                .map(str::to_owned)
        })
        .collect();
    if tag == "REINDEX" {
        return Ok(Vec::new());
    }
    if matches!(tag, "CREATE TABLE AS" | "SELECT INTO") {
        return if definitions.is_empty() {
            Err(format!(
                "{tag} created no table pgsync can recreate (partitioned or unknown)"
            ))
        } else {
            Ok(definitions)
        };
    }
    // The object's own name, unquoted and lower-case, must appear in the
    // statement text, so a function's DDL never borrows a later statement.
    let names: Vec<String> = objects
        .iter()
        .filter_map(|o| o.get("identity").and_then(|i| i.as_str()))
        .map(|i| {
            // `public.f(integer)`: the name is before the argument list.
            let i = i.split('(').next().unwrap_or(i);
            i.rsplit('.')
                .next()
                .unwrap_or(i)
                .trim_matches('"')
                .to_lowercase()
        })
        .collect();
    let pieces = split(query);
    let from = cursor.get(query).copied().unwrap_or(0);
    let found = pieces.iter().enumerate().skip(from).find(|(_, p)| {
        head_matches_tag(&p.head, tag)
            && (names.is_empty()
                || names
                    .iter()
                    .any(|n| p.text.to_lowercase().contains(n.as_str())))
    });
    if let Some((index, piece)) = found {
        cursor.insert(query.to_owned(), index + 1);
        let statement = without_concurrently(piece.text).unwrap_or_else(|| piece.text.to_owned());
        return Ok(vec![statement]);
    }
    if definitions.is_empty() {
        Err("the statement is not in the captured query string (it ran inside a function or DO block), \
             and pgsync recorded no definition for this kind of object (see docs/architecture.md, DDL replication)"
            .to_owned())
    } else {
        Ok(definitions)
    }
}

/// Whether a captured DDL statement concerns the selection: the objects it
/// created, altered or dropped (JSON `[{"schema": …, "identity": …}]`) lie
/// in a selected schema or are a selected table. A statement without
/// object information (it reported none) is replayed.
fn ddl_in_selection(objects: &str, selection: &[ObjectSelection]) -> bool {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(objects)
    else {
        return true;
    };
    if items.is_empty() {
        return true;
    }
    items.iter().any(|o| {
        let schema = o.get("schema").and_then(|v| v.as_str()).unwrap_or("");
        let identity = o.get("identity").and_then(|v| v.as_str()).unwrap_or("");
        // CREATE SCHEMA: the schema is the object itself.
        let is_schema = o.get("type").and_then(|v| v.as_str()) == Some("schema");
        selection.iter().any(|s| match s {
            ObjectSelection::Schema { name, .. } if is_schema => {
                identity_parts(identity).first() == Some(name)
            }
            ObjectSelection::Schema { name, .. } => name == schema,
            ObjectSelection::Table {
                schema: ts, name, ..
            } => ts == schema && identity.starts_with(&format!("{ts}.{name}")),
        })
    })
}

/// Whether the captured DDL's objects include table `table` (or one of
/// its columns, constraints, indexes…, whose identities start with it).
fn ddl_touches(objects: &str, table: &QualifiedName) -> bool {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(objects)
    else {
        return false;
    };
    let plain = table.to_string();
    let quoted = format!(
        "{}.{}",
        crate::sql::ident_as_server_prints(&table.schema),
        crate::sql::ident_as_server_prints(&table.name)
    );
    items.iter().any(|o| {
        let identity = o.get("identity").and_then(|v| v.as_str()).unwrap_or("");
        [&plain, &quoted].iter().any(|t| {
            identity == t.as_str()
                || identity.starts_with(&format!("{t}."))
                || identity.starts_with(&format!("{t} "))
        }) || identity.ends_with(&format!(" on {plain}"))
            || identity.ends_with(&format!(" on {quoted}"))
    })
}

/// The tables a captured statement's objects belong to, by source name:
/// `schema.table` of tables, columns (`schema.table.column`) and of objects
/// `NAME on schema.table` (constraints, triggers, rules, policies).
fn ddl_tables(objects: &str) -> Vec<QualifiedName> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(objects)
    else {
        return Vec::new();
    };
    let mut out: Vec<QualifiedName> = Vec::new();
    for o in items {
        let kind = o.get("type").and_then(|v| v.as_str()).unwrap_or("");
        let identity = o.get("identity").and_then(|v| v.as_str()).unwrap_or("");
        let on_table = identity.rsplit_once(" on ").map_or(identity, |(_, t)| t);
        let parts = identity_parts(on_table);
        let wanted = matches!(kind, "table" | "table column")
            || (kind.starts_with("table constraint")
                || kind == "trigger"
                || kind == "rule"
                || kind == "policy");
        if !wanted || parts.len() < 2 {
            continue;
        }
        let t = QualifiedName::new(parts[0].clone(), parts[1].clone());
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// The dot-separated parts of an identity, unquoted (`"a.b".c` → `a.b`, `c`).
fn identity_parts(identity: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = identity.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

fn truncate_for_message(s: &str) -> String {
    let mut out: String = s.chars().take(200).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

fn rel_name(rels: &HashMap<u32, Rel>, relid: u32) -> String {
    rels.get(&relid)
        .map(|r| r.desc.name.to_string())
        .unwrap_or_default()
}

fn check_shape(rel: &Rel, tuple: &[Value<'_>]) -> Result<(), SinkError> {
    if tuple.len() == rel.desc.columns.len() {
        Ok(())
    } else {
        Err(SinkError::Shape {
            table: rel.desc.name.to_string(),
            got: tuple.len(),
            expected: rel.desc.columns.len(),
        })
    }
}

/// Which columns an UPDATE sets: those that changed and are not generated
/// on the destination. Without an old tuple the key did not change: it
/// identifies the row and is not set again (an identity ALWAYS key may not
/// be updated).
fn set_columns(rel: &Rel, new: &[Value<'_>], has_old: bool) -> Vec<bool> {
    new.iter()
        .zip(&rel.types)
        .zip(&rel.desc.columns)
        .map(|((v, t), c)| t.is_some() && *v != Value::Unchanged && (has_old || !c.key))
        .collect()
}

/// Which columns identify the row: the replica identity columns, or for
/// REPLICA IDENTITY FULL every column the old tuple carries.
fn where_columns(rel: &Rel, identity: &[Value<'_>]) -> Vec<bool> {
    let full = rel.desc.replica_identity == b'f' || !rel.desc.columns.iter().any(|c| c.key);
    rel.desc
        .columns
        .iter()
        .zip(identity)
        .zip(&rel.types)
        .map(|((c, v), t)| t.is_some() && *v != Value::Unchanged && (c.key || full))
        .collect()
}

fn texts<'a>(
    table: String,
    tuple: &[Value<'a>],
    mask: &[bool],
) -> Result<Vec<Option<&'a str>>, SinkError> {
    let mut out = Vec::new();
    for (v, m) in tuple.iter().zip(mask) {
        if !m {
            continue;
        }
        out.push(match v {
            Value::Text(b) => Some(std::str::from_utf8(b).map_err(|_| SinkError::Encoding {
                table: table.clone(),
            })?),
            _ => None,
        });
    }
    Ok(out)
}

/// The SQL for one statement shape. `mask` marks the columns bound, in
/// column order (for UPDATE: SET columns, then WHERE columns).
fn statement_sql(rel: &Rel, kind: u8, mask: &[bool]) -> String {
    let sql = statement_sql_base(rel, kind, mask);
    if rel.upsert && matches!(kind, b'I' | b'M') {
        format!("{sql}{}", on_conflict(rel, mask))
    } else {
        sql
    }
}

/// `on conflict (KEY) do update set …` for the written non-key columns of
/// `mask` (`do nothing` when there are none): the stream overwrites a row
/// the destination already had (`conflicting_tables = "ignore"`). Tables
/// without a key (REPLICA IDENTITY FULL) get no clause.
fn on_conflict(rel: &Rel, mask: &[bool]) -> String {
    let cols = &rel.desc.columns;
    let keys: Vec<String> = (0..cols.len())
        .filter(|&i| cols[i].key && rel.types[i].is_some())
        .map(|i| ident(&rel.target_columns[i]))
        .collect();
    if keys.is_empty() || rel.desc.replica_identity == b'f' {
        return String::new();
    }
    let sets: Vec<String> = (0..cols.len())
        .filter(|&i| mask.get(i) == Some(&true) && !cols[i].key && rel.types[i].is_some())
        .map(|i| {
            let c = ident(&rel.target_columns[i]);
            format!("{c} = excluded.{c}")
        })
        .collect();
    if sets.is_empty() {
        format!(" on conflict ({}) do nothing", keys.join(", "))
    } else {
        format!(
            " on conflict ({}) do update set {}",
            keys.join(", "),
            sets.join(", ")
        )
    }
}

fn statement_sql_base(rel: &Rel, kind: u8, mask: &[bool]) -> String {
    let table = qualified(&rel.target.schema, &rel.target.name);
    let cols = &rel.desc.columns;
    // Destination column names.
    let name = |i: usize| ident(&rel.target_columns[i]);
    let n = cols.len();
    if let Some(filter) = &rel.filter
        && matches!(kind, b'I' | b'M')
    {
        return filtered_insert_sql(rel, filter, kind, mask);
    }
    let mut p = 0;
    let mut param = |i: usize| {
        p += 1;
        format!("${p}::{}", rel.types[i].as_deref().unwrap_or("text"))
    };
    let full = rel.desc.replica_identity == b'f' || !cols.iter().any(|c| c.key);
    // Without a key, rows are matched on every column by its text form
    // (both sessions pin the output settings), which also works for types
    // without an equality operator (json, point, xml) and never lets a
    // lenient `=` (box compares areas) pick the wrong row; NULL matches NULL.
    let cond = |mask: &[bool], param: &mut dyn FnMut(usize) -> String| {
        let parts: Vec<String> = (0..n)
            .filter(|&i| mask[i])
            .map(|i| {
                let col = name(i);
                let value = param(i);
                if full {
                    let text = value.split_once("::").map_or(value.as_str(), |(p, _)| p);
                    format!("{col}::text is not distinct from {text}")
                } else {
                    format!("{col} = {value}")
                }
            })
            .collect();
        if parts.is_empty() {
            "false".to_owned()
        } else {
            parts.join(" and ")
        }
    };
    let locate = |c: &str| {
        if full {
            format!("ctid = (select ctid from {table} where {c} limit 1)")
        } else {
            c.to_owned()
        }
    };
    match kind {
        b'I' if !mask.contains(&true) => format!("insert into {table} default values"),
        b'U' if rel.always_identity => {
            // An identity ALWAYS column may not be SET; replace the row in
            // one statement, taking what did not change (the key, unchanged
            // TOAST values) from the row deleted.
            let (set, wher) = mask.split_at(n);
            let writable: Vec<usize> = (0..n).filter(|&i| rel.types[i].is_some()).collect();
            let names: Vec<String> = writable.iter().map(|&i| name(i)).collect();
            let values: Vec<String> = writable
                .iter()
                .map(|&i| {
                    if set[i] {
                        param(i)
                    } else {
                        format!("old.{}", name(i))
                    }
                })
                .collect();
            let c = cond(wher, &mut param);
            format!(
                "with old as (delete from {table} where {} returning *) \
                 insert into {table} ({}) overriding system value select {} from old",
                locate(&c),
                names.join(", "),
                values.join(", ")
            )
        }
        b'M' => {
            // A run of inserts: one text array per bound column.
            let bound: Vec<usize> = (0..n).filter(|&i| mask[i]).collect();
            let names: Vec<String> = bound.iter().map(|&i| name(i)).collect();
            let arrays: Vec<String> = (1..=bound.len()).map(|k| format!("${k}::text[]")).collect();
            let aliases: Vec<String> = (1..=bound.len()).map(|k| format!("v{k}")).collect();
            let values: Vec<String> = bound
                .iter()
                .zip(&aliases)
                .map(|(&i, a)| format!("u.{a}::{}", rel.types[i].as_deref().unwrap_or("text")))
                .collect();
            format!(
                "insert into {table} ({}) overriding system value select {} from unnest({}) as u({})",
                names.join(", "),
                values.join(", "),
                arrays.join(", "),
                aliases.join(", ")
            )
        }
        b'I' => {
            let names: Vec<String> = (0..n).filter(|&i| mask[i]).map(&name).collect();
            let values: Vec<String> = (0..n).filter(|&i| mask[i]).map(&mut param).collect();
            format!(
                "insert into {table} ({}) overriding system value values ({})",
                names.join(", "),
                values.join(", ")
            )
        }
        b'U' => {
            let (set, wher) = mask.split_at(n);
            let sets: Vec<String> = (0..n)
                .filter(|&i| set[i])
                .map(|i| format!("{} = {}", name(i), param(i)))
                .collect();
            let c = cond(wher, &mut param);
            format!(
                "update {table} set {} where {}",
                sets.join(", "),
                locate(&c)
            )
        }
        _ => {
            let c = cond(mask, &mut param);
            format!("delete from {table} where {}", locate(&c))
        }
    }
}

/// A filtered INSERT (one row, or a run through `unnest`): every bound
/// column enters a derived table named like the source table, with the
/// source's column names and types, and the written columns are selected
/// from it where the filter holds.
fn filtered_insert_sql(rel: &Rel, filter: &RowFilter, kind: u8, mask: &[bool]) -> String {
    let table = qualified(&rel.target.schema, &rel.target.name);
    let cols = &rel.desc.columns;
    let bound: Vec<usize> = (0..cols.len()).filter(|&i| mask[i]).collect();
    let derived: Vec<String> = bound
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let value = if kind == b'M' {
                format!("u.v{}", k + 1)
            } else {
                format!("${}", k + 1)
            };
            format!(
                "{value}::{} as {}",
                filter.source_types[i],
                ident(&cols[i].name)
            )
        })
        .collect();
    let written: Vec<usize> = bound
        .iter()
        .copied()
        .filter(|&i| rel.types[i].is_some())
        .collect();
    let targets: Vec<String> = written
        .iter()
        .map(|&i| ident(&rel.target_columns[i]))
        .collect();
    let values: Vec<String> = written
        .iter()
        .map(|&i| {
            format!(
                "f.{}::{}",
                ident(&cols[i].name),
                rel.types[i].as_deref().unwrap_or("text")
            )
        })
        .collect();
    let from = if kind == b'M' {
        let arrays: Vec<String> = (1..=bound.len()).map(|k| format!("${k}::text[]")).collect();
        let aliases: Vec<String> = (1..=bound.len()).map(|k| format!("v{k}")).collect();
        format!(
            "(select {} from unnest({}) as u({}))",
            derived.join(", "),
            arrays.join(", "),
            aliases.join(", ")
        )
    } else {
        format!("(select {})", derived.join(", "))
    };
    let alias = ident(&rel.desc.name.name);
    let head = if targets.is_empty() {
        format!("insert into {table} select")
    } else {
        format!(
            "insert into {table} ({}) overriding system value select {}",
            targets.join(", "),
            values.join(", ")
        )
    };
    // The filter reads the row as `alias.column` or `column`; `f` is the
    // same row for the select list.
    format!(
        "{head} from (select * from {from} as {alias} where ({})) as f",
        filter.expr
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(ri: u8) -> Rel {
        Rel {
            desc: RelationDesc {
                relid: 1,
                name: QualifiedName::new("public", "t\"x"),
                columns: vec![
                    ColumnDesc {
                        name: "id".into(),
                        key: ri != b'f',
                    },
                    ColumnDesc {
                        name: "body".into(),
                        key: false,
                    },
                    ColumnDesc {
                        name: "gen".into(),
                        key: false,
                    },
                ],
                replica_identity: ri,
            },
            types: vec![Some("integer".into()), Some("text".into()), None],
            always_identity: false,
            helper: None,
            target: QualifiedName::new("public", "t\"x"),
            target_columns: vec!["id".into(), "body".into(), "gen".into()],
            filter: None,
            operations: Operations::ALL,
            reshaped: false,
            selected: true,
            upsert: false,
            chunks: None,
        }
    }

    #[test]
    fn chunk_points_name_the_point_of_the_chunk_holding_a_key() {
        let p = ChunkPoints {
            table: QualifiedName::new("public", "big"),
            split: crate::snapshot::Split::Key {
                column: "id".into(),
                bounds: vec![100, 200],
                resumable: true,
            },
            points: vec![Lsn(10), Lsn(10), Lsn(30)],
        };
        assert_eq!(p.column(), Some("id"));
        assert_eq!(p.point(-5), Some(Lsn(10)));
        assert_eq!(p.point(199), Some(Lsn(10)));
        assert_eq!(p.point(200), Some(Lsn(30)));
        assert_eq!(p.point(i64::MAX), Some(Lsn(30)));
    }

    #[test]
    fn filtered_inserts_read_the_whole_source_row_and_write_the_selected_columns() {
        let mut r = rel(b'd');
        r.target = QualifiedName::new("rep", "orders");
        r.target_columns = vec!["order_id".into(), "body".into(), "gen".into()];
        r.types = vec![Some("bigint".into()), None, None];
        r.filter = Some(RowFilter {
            expr: "body <> 'x'".into(),
            source_types: vec!["integer".into(), "text".into(), "integer".into()],
        });
        assert_eq!(
            statement_sql(&r, b'I', &[true, true, true]),
            "insert into \"rep\".\"orders\" (\"order_id\") overriding system value select \
             f.\"id\"::bigint from (select * from (select $1::integer as \"id\", $2::text as \"body\", \
             $3::integer as \"gen\") as \"t\"\"x\" where (body <> 'x')) as f"
        );
        assert_eq!(
            statement_sql(&r, b'M', &[true, true, false]),
            "insert into \"rep\".\"orders\" (\"order_id\") overriding system value select \
             f.\"id\"::bigint from (select * from (select u.v1::integer as \"id\", u.v2::text as \
             \"body\" from unnest($1::text[], $2::text[]) as u(v1, v2)) as \"t\"\"x\" where \
             (body <> 'x')) as f"
        );
        // Deletes and updates address the destination names.
        assert_eq!(
            statement_sql(&r, b'D', &[true, false, false]),
            "delete from \"rep\".\"orders\" where \"order_id\" = $1::bigint"
        );
    }

    #[test]
    fn ignore_mode_inserts_overwrite_rows_with_the_same_key() {
        let mut r = rel(b'd');
        r.upsert = true;
        assert_eq!(
            statement_sql(&r, b'I', &[true, true, false]),
            "insert into \"public\".\"t\"\"x\" (\"id\", \"body\") overriding system value values \
             ($1::integer, $2::text) on conflict (\"id\") do update set \"body\" = excluded.\"body\""
        );
        assert_eq!(
            statement_sql(&r, b'I', &[true, false, false]),
            "insert into \"public\".\"t\"\"x\" (\"id\") overriding system value values \
             ($1::integer) on conflict (\"id\") do nothing"
        );
        // Updates are unchanged.
        assert!(
            !statement_sql(&r, b'U', &[false, true, false, true, false, false])
                .contains("conflict")
        );
    }

    #[test]
    fn ddl_objects_name_their_tables() {
        let objects = r#"[{"type": "table", "identity": "\"My.S\".t"},
                          {"type": "table column", "identity": "s.\"T\".c"},
                          {"type": "table constraint", "identity": "pk on s.u"},
                          {"type": "index", "identity": "s.i"}]"#;
        assert_eq!(
            ddl_tables(objects),
            [
                QualifiedName::new("My.S", "t"),
                QualifiedName::new("s", "T"),
                QualifiedName::new("s", "u"),
            ]
        );
    }

    #[test]
    fn ddl_touches_a_table_by_its_identities() {
        let t = QualifiedName::new("public", "Orders");
        assert!(ddl_touches(r#"[{"identity": "public.\"Orders\""}]"#, &t));
        assert!(ddl_touches(
            r#"[{"identity": "public.\"Orders\".note"}]"#,
            &t
        ));
        assert!(ddl_touches(
            r#"[{"identity": "pk on public.\"Orders\""}]"#,
            &t
        ));
        assert!(!ddl_touches(r#"[{"identity": "public.\"Orders2\""}]"#, &t));
        assert!(!ddl_touches("[]", &t));
    }

    #[test]
    fn statements_quote_names_cast_parameters_and_skip_generated_columns() {
        let r = rel(b'd');
        assert_eq!(
            statement_sql(&r, b'I', &[true, true, false]),
            "insert into \"public\".\"t\"\"x\" (\"id\", \"body\") overriding system value values ($1::integer, $2::text)"
        );
        // Unchanged TOAST body: not in SET.
        let new = [Value::Text(b"1"), Value::Text(b"b"), Value::Null];
        let mut mask = set_columns(&r, &new, false);
        mask.extend(where_columns(&r, &new));
        assert_eq!(
            statement_sql(&r, b'U', &mask),
            "update \"public\".\"t\"\"x\" set \"body\" = $1::text where \"id\" = $2::integer"
        );
        // Unchanged TOAST body and an unchanged key: nothing to set.
        let untouched = [Value::Text(b"1"), Value::Unchanged, Value::Null];
        assert_eq!(set_columns(&r, &untouched, false), [false, false, false]);
        // A key change (old tuple present) sets the key too.
        assert_eq!(set_columns(&r, &new, true), [true, true, false]);
    }

    #[test]
    fn ddl_events_find_their_statement_or_fall_back_to_definitions() {
        let mut cursor = HashMap::new();
        let q = "create table multi (id int primary key); insert into multi values (1); create index on multi (id)";
        let table = r#"[{"type":"table","identity":"public.multi","definition":"create table public.multi (id integer)"}]"#;
        assert_eq!(
            ddl_statements("CREATE TABLE", q, table, &mut cursor).unwrap(),
            ["create table multi (id int primary key)"]
        );
        // The unnamed index: its auto-generated name is not in the text, so
        // the recorded definition is used.
        let index = r#"[{"type":"index","identity":"public.multi_id_idx","definition":"CREATE INDEX multi_id_idx ON public.multi USING btree (id)"}]"#;
        assert_eq!(
            ddl_statements("CREATE INDEX", q, index, &mut cursor).unwrap(),
            ["CREATE INDEX multi_id_idx ON public.multi USING btree (id)"]
        );
        // DDL from a DO block: no statement matches.
        let dyn_q = "DO $$ BEGIN EXECUTE 'CREATE TABLE dyn_made (id int PRIMARY KEY)'; END $$";
        let dyn_obj = r#"[{"type":"table","identity":"public.dyn_made","definition":"create table dyn_made (id integer not null, constraint dyn_made_pkey PRIMARY KEY (id))"}]"#;
        assert_eq!(
            ddl_statements("CREATE TABLE", dyn_q, dyn_obj, &mut cursor).unwrap(),
            [
                "create table dyn_made (id integer not null, constraint dyn_made_pkey PRIMARY KEY (id))"
            ]
        );
        // CREATE TABLE AS: structure only; the rows arrive in the stream.
        let ctas = r#"[{"type":"table","identity":"public.snap_copy","definition":"create table snap_copy (id integer, a integer)"}]"#;
        assert_eq!(
            ddl_statements(
                "CREATE TABLE AS",
                "create table snap_copy as select id, a from base",
                ctas,
                &mut cursor
            )
            .unwrap(),
            ["create table snap_copy (id integer, a integer)"]
        );
        // ALTER TABLE from a function has neither.
        let err = ddl_statements(
            "ALTER TABLE",
            "select f()",
            r#"[{"type":"table","identity":"public.t"}]"#,
            &mut cursor,
        )
        .unwrap_err();
        assert!(err.contains("ran inside a function or DO block"), "{err}");
    }

    #[test]
    fn concurrent_index_ddl_is_replayed_without_concurrently_and_reindex_not_at_all() {
        let mut cursor = HashMap::new();
        let index = r#"[{"type":"index","identity":"public.t_v","definition":"CREATE INDEX t_v ON public.t USING btree (v)"}]"#;
        assert_eq!(
            ddl_statements(
                "CREATE INDEX",
                "create index concurrently t_v on t (v)",
                index,
                &mut cursor
            )
            .unwrap(),
            ["create index t_v on t (v)"]
        );
        assert_eq!(
            ddl_statements(
                "DROP INDEX",
                "drop index concurrently if exists t_v",
                r#"[{"type":"index","identity":"public.t_v"}]"#,
                &mut cursor
            )
            .unwrap(),
            ["drop index if exists t_v"]
        );
        assert!(
            ddl_statements(
                "REINDEX",
                "reindex index concurrently t_v",
                r#"[{"type":"index","identity":"public.t_v"}]"#,
                &mut cursor
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn a_row_of_only_generated_columns_is_inserted_with_default_values() {
        let r = rel(b'd');
        assert_eq!(
            statement_sql(&r, b'I', &[false, false, false]),
            "insert into \"public\".\"t\"\"x\" default values"
        );
    }

    #[test]
    fn identity_always_tables_replace_the_row_keeping_unchanged_values() {
        let mut r = rel(b'd');
        r.always_identity = true;
        let new = [Value::Text(b"1"), Value::Unchanged, Value::Null];
        let mut mask = set_columns(&r, &new, false);
        assert_eq!(mask, [false, false, false]);
        // A changed body with an unchanged key.
        mask = vec![false, true, false];
        mask.extend(where_columns(&r, &new));
        assert_eq!(
            statement_sql(&r, b'U', &mask),
            "with old as (delete from \"public\".\"t\"\"x\" where \"id\" = $2::integer returning *) \
             insert into \"public\".\"t\"\"x\" (\"id\", \"body\") overriding system value select old.\"id\", $1::text from old"
        );
    }

    #[test]
    fn replica_identity_full_matches_one_row_null_safely() {
        let r = rel(b'f');
        let old = [Value::Text(b"1"), Value::Null, Value::Null];
        let w = where_columns(&r, &old);
        assert_eq!(w, [true, true, false]);
        assert_eq!(
            statement_sql(&r, b'D', &w),
            "delete from \"public\".\"t\"\"x\" where ctid = (select ctid from \"public\".\"t\"\"x\" \
             where \"id\"::text is not distinct from $1 and \"body\"::text is not distinct from $2 limit 1)"
        );
    }
}
