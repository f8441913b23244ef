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

use std::collections::HashMap;

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

use crate::model::{Lsn, ObjectSelection, QualifiedName};
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
    /// Other destination call failed.
    #[error(transparent)]
    Pg(#[from] PgError),
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
}

/// The destination session of one task.
pub struct Sink {
    conn: Connected,
    task: String,
    relations: HashMap<u32, Rel>,
    statements: HashMap<(u32, u8, Vec<bool>), Statement>,
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
    pub async fn open(
        conn: Connected,
        task: &str,
        selection: &[ObjectSelection],
    ) -> Result<Sink, SinkError> {
        conn.client
            .batch_execute("set session_replication_role = replica")
            .await
            .map_err(conn.err("set session_replication_role = replica"))?;
        let applied = read_progress(&conn, task).await?.unwrap_or(Lsn::ZERO);
        Ok(Sink {
            conn,
            task: task.to_owned(),
            relations: HashMap::new(),
            statements: HashMap::new(),
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
        })
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
        self.ddl_in_batch
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
            _ => None,
        };
        let mut types = Vec::with_capacity(desc.columns.len());
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
                    &[&desc.name.schema, &desc.name.name],
                )
                .await
                .map_err(self.conn.err("read destination columns"))?;
            if rows.is_empty() {
                return Err(SinkError::MissingTable(desc.name.to_string()));
            }
            always_identity = rows.iter().any(|r| r.get::<_, bool>(3));
            for col in &desc.columns {
                let found = rows.iter().find(|r| r.get::<_, String>(0) == col.name);
                types.push(match found {
                    Some(r) if !r.get::<_, bool>(2) => Some(r.get::<_, String>(1)),
                    // Generated on the destination: computed there, never written.
                    Some(_) => None,
                    // Never drop a value silently: the destination must have
                    // every column the source sends.
                    None => {
                        return Err(SinkError::MissingColumn {
                            table: desc.name.to_string(),
                            column: col.name.clone(),
                        });
                    }
                });
            }
        }
        self.statements
            .retain(|(relid, _, _), _| *relid != desc.relid);
        self.relations.insert(
            desc.relid,
            Rel {
                desc,
                types,
                always_identity,
                helper,
            },
        );
        Ok(())
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
            None => {}
        }
        let present: Vec<bool> = new
            .iter()
            .zip(&rel.types)
            .map(|(v, t)| t.is_some() && *v != Value::Unchanged)
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
            Some(_) => {
                self.note_heartbeat(relid, new);
                return Ok(());
            }
            None => {}
        }
        let identity = old.unwrap_or(new);
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

    /// Applies a DELETE by the key (`K`) or full (`O`) old tuple.
    ///
    /// # Errors
    /// [`SinkError`], naming the table.
    pub async fn delete(&mut self, relid: u32, old: &[Value<'_>]) -> Result<(), SinkError> {
        self.ensure_begun().await?;
        let rel = self.described(relid, old)?;
        if rel.helper.is_some() {
            return Ok(());
        }
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
        for relid in relids {
            let rel = self
                .relations
                .get(relid)
                .ok_or(SinkError::UnknownRelation(*relid))?;
            if rel.helper.is_none() {
                names.push(qualified(&rel.desc.name.schema, &rel.desc.name.name));
            }
        }
        if names.is_empty() {
            return Ok(());
        }
        self.send_queue().await?;
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
        self.client()
            .execute(
                &format!(
                    "insert into {} as p (task_name, applied_lsn, source_commit_time, heartbeat_time)
                     values ($1, $2::text::pg_lsn, to_timestamp($3), $4::text::timestamptz)
                     on conflict (task_name) do update set applied_lsn = excluded.applied_lsn,
                         source_commit_time = excluded.source_commit_time,
                         heartbeat_time = coalesce(excluded.heartbeat_time, p.heartbeat_time),
                         updated_at = now()",
                    qualified(helpers::SCHEMA, helpers::PROGRESS_TABLE)
                ),
                &[&self.task, &end_lsn.to_string(), &secs, &hb],
            )
            .await
            .map_err(self.conn.err("record progress"))?;
        crate::failpoint::hit("stream.before_commit");
        self.client()
            .batch_execute("commit")
            .await
            .map_err(self.conn.err("commit"))?;
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
        Ok(())
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
        let sql = "select setval(c.oid, $3::text::int8, $4::text::bool)
                     from pg_class c join pg_namespace n on n.oid = c.relnamespace
                    where n.nspname = $1 and c.relname = $2 and c.relkind = 'S'";
        let (schema, name, value, called) = (
            schema.to_owned(),
            name.to_owned(),
            value.to_owned(),
            called.to_owned(),
        );
        self.send_queue().await?;
        self.client()
            .query(sql, &[&schema, &name, &value, &called])
            .await
            .map_err(self.conn.err(format!("set sequence {schema}.{name}")))?;
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
            let run_of_inserts = op.kind == b'I'
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
                let stmt = self.statement(op.relid, b'M', op.mask).await?;
                calls.push(Call {
                    stmt,
                    params: Params::Columns(columns),
                    doing: "insert",
                    relid: op.relid,
                });
            } else {
                let stmt = self.statement(op.relid, op.kind, op.mask).await?;
                calls.push(Call {
                    stmt,
                    params: Params::Row(op.params),
                    doing: op.doing,
                    relid: op.relid,
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
                return Err(SinkError::Statement {
                    doing: call.doing.into(),
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
                doing: "prepare".into(),
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
             and only CREATE TABLE/INDEX/VIEW/FUNCTION issued that way are replayed yet"
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
        selection.iter().any(|s| match s {
            ObjectSelection::Schema { name, .. } => name == schema,
            ObjectSelection::Table { schema: ts, name } => {
                ts == schema && identity.starts_with(&format!("{ts}.{name}"))
            }
        })
    })
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
    let table = qualified(&rel.desc.name.schema, &rel.desc.name.name);
    let cols = &rel.desc.columns;
    let n = cols.len();
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
                let col = ident(&cols[i].name);
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
            let names: Vec<String> = writable.iter().map(|&i| ident(&cols[i].name)).collect();
            let values: Vec<String> = writable
                .iter()
                .map(|&i| {
                    if set[i] {
                        param(i)
                    } else {
                        format!("old.{}", ident(&cols[i].name))
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
            let names: Vec<String> = bound.iter().map(|&i| ident(&cols[i].name)).collect();
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
            let names: Vec<String> = (0..n)
                .filter(|&i| mask[i])
                .map(|i| ident(&cols[i].name))
                .collect();
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
                .map(|i| format!("{} = {}", ident(&cols[i].name), param(i)))
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
        }
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
