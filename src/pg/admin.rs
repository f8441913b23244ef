//! Helper objects on the source (`public.dts_*`, publication, slot) and on
//! the destination (progress table), created and dropped idempotently.

use super::{Connected, PgError};
use crate::model::{Lsn, ObjectSelection, QualifiedName};
use crate::sql::{helpers, ident, qualified};

fn heartbeat_table() -> String {
    qualified(helpers::SCHEMA, helpers::HEARTBEAT_TABLE)
}

fn sequence_table() -> String {
    qualified(helpers::SCHEMA, helpers::SEQUENCE_TABLE)
}

/// (Re)creates pgsync's own publication `name` listing `tables`, and the
/// helper tables when they exist (`with_helpers`: heartbeat and sequence
/// state; `with_ddl`: `dts_ddl_command`), explicitly (never `FOR ALL
/// TABLES`: that would make UPDATE/DELETE fail on unrelated tables without
/// a replica identity). Never called for a publication named by the task's
/// `publication` attribute.
///
/// # Errors
/// [`PgError`], e.g. when the role may not create publications.
pub async fn create_publication(
    src: &Connected,
    name: &str,
    tables: &[QualifiedName],
    with_helpers: bool,
    with_ddl: bool,
) -> Result<(), PgError> {
    let mut list: Vec<String> = tables
        .iter()
        .map(|t| qualified(&t.schema, &t.name))
        .collect();
    if with_helpers {
        list.push(heartbeat_table());
        list.push(sequence_table());
    }
    if with_ddl {
        list.push(qualified(helpers::SCHEMA, super::ddl_capture::DDL_TABLE));
    }
    src.client
        .batch_execute(&format!(
            "drop publication if exists {p}; create publication {p} for table {}",
            list.join(", "),
            p = ident(name)
        ))
        .await
        .map_err(src.err(format!("create publication {name}")))
}

/// Whether table (or view, sequence…) `name` exists on `conn`.
///
/// # Errors
/// [`PgError`].
pub async fn table_exists(conn: &Connected, name: &QualifiedName) -> Result<bool, PgError> {
    Ok(conn
        .client
        .query_one(
            "select to_regclass(format('%I.%I', $1::text, $2::text)) is not null",
            &[&name.schema, &name.name],
        )
        .await
        .map_err(conn.err(format!("look up table {name}")))?
        .get(0))
}

/// Drops publication `name` if it exists.
///
/// # Errors
/// [`PgError`].
pub async fn drop_publication(src: &Connected, name: &str) -> Result<(), PgError> {
    src.client
        .batch_execute(&format!("drop publication if exists {}", ident(name)))
        .await
        .map_err(src.err(format!("drop publication {name}")))
}

/// Creates `public.dts_postgres_heartbeat` if missing and the task's row.
///
/// # Errors
/// [`PgError`].
pub async fn ensure_heartbeat(src: &Connected, task: &str) -> Result<(), PgError> {
    src.client
        .batch_execute(&format!(
            "create table if not exists {} (task_name text primary key, ts timestamptz not null);
             create table if not exists {} (
                 task_name text not null, seq_schema text not null, seq_name text not null,
                 last_value int8 not null, is_called bool not null,
                 primary key (task_name, seq_schema, seq_name))",
            heartbeat_table(),
            sequence_table()
        ))
        .await
        .map_err(src.err("create heartbeat table"))?;
    heartbeat(src, task).await
}

/// Writes the task's heartbeat row (`ts = now()`).
///
/// # Errors
/// [`PgError`].
pub async fn heartbeat(src: &Connected, task: &str) -> Result<(), PgError> {
    src.client
        .execute(
            &format!(
                "insert into {} (task_name, ts) values ($1, now())
                 on conflict (task_name) do update set ts = excluded.ts",
                heartbeat_table()
            ),
            &[&task],
        )
        .await
        .map(|_| ())
        .map_err(src.err("write heartbeat"))
}

/// The `(schemas, tables)` of a selection that decide which sequences it
/// takes: those in its selected schemas, and those owned by its selected
/// tables (`schema.name`, unquoted).
pub fn sequence_scope(objects: &[ObjectSelection]) -> (Vec<String>, Vec<String>) {
    let mut schemas = Vec::new();
    let mut tables = Vec::new();
    for o in objects {
        match o {
            ObjectSelection::Schema { name, .. } => schemas.push(name.clone()),
            ObjectSelection::Table { schema, name, .. } => tables.push(format!("{schema}.{name}")),
        }
    }
    (schemas, tables)
}

/// The sequences of the database: `c` (pg_class), `n` (pg_namespace) and
/// `s` (pg_sequence), for [`selected_sequences`].
pub const SEQUENCES_FROM: &str = "from pg_class c
           join pg_namespace n on n.oid = c.relnamespace
           join pg_sequence s on s.seqrelid = c.oid";

/// The condition on [`SEQUENCES_FROM`] for the sequences a selection
/// takes, with the scope of [`sequence_scope`] as text-array parameters
/// `$schemas` and `$tables` (their numbers), leaving out pgsync's own.
/// Goes by OID, never by name: looking a name up needs USAGE on its schema.
pub fn selected_sequences(schemas: u8, tables: u8) -> String {
    format!(
        "c.relkind = 'S'
            and (n.nspname::text = any(${schemas})
                 or exists (select 1 from pg_depend d
                              join pg_class t on t.oid = d.refobjid
                              join pg_namespace tn on tn.oid = t.relnamespace
                             where d.objid = c.oid
                               and d.classid = 'pg_class'::regclass and d.deptype in ('a', 'i')
                               and tn.nspname::text || '.' || t.relname::text = any(${tables})))
            and not (n.nspname = 'public' and c.relname like 'dts\\_%')"
    )
}

/// Whether the role may read sequence `c` (SELECT on it). In a `case` so
/// the planner never calls it on a relation that is not a sequence (which
/// is an error), whatever order it evaluates the conditions in.
pub const READABLE: &str =
    "case when c.relkind = 'S' then has_sequence_privilege(c.oid, 'select') else false end";

/// Position columns for [`selected_sequences`] rows the role may read:
/// `last_value` (the start value when never called) and `is_called`.
const POSITION: &str = "coalesce(v.last, s.seqstart), v.last is not null";
/// The lateral read of a readable sequence's last value (`null` when it
/// was never called or may not be read).
const LAST_VALUE: &str = "cross join lateral (select case when c.relkind <> 'S' then null
                                                  when has_sequence_privilege(c.oid, 'select')
                                                  then pg_sequence_last_value(c.oid) end as last) v";

/// Records the current position of every sequence the task selects that
/// the role may read (SELECT on it) in `public.dts_sequence_state`,
/// writing only rows that changed. Unreadable sequences are left out (the
/// precheck names them).
///
/// # Errors
/// [`PgError`].
pub async fn record_sequences(
    src: &Connected,
    task: &str,
    schemas: &[String],
    tables: &[String],
) -> Result<(), PgError> {
    src.client
        .execute(
            &format!(
                "insert into {t} as s2 (task_name, seq_schema, seq_name, last_value, is_called)
                 select $1, n.nspname, c.relname, {POSITION}
                   {SEQUENCES_FROM} {LAST_VALUE}
                  where {selected}
                    and {READABLE}
                 on conflict (task_name, seq_schema, seq_name) do update
                    set last_value = excluded.last_value, is_called = excluded.is_called
                  where (s2.last_value, s2.is_called) is distinct from (excluded.last_value, excluded.is_called)",
                t = sequence_table(),
                selected = selected_sequences(2, 3),
            ),
            &[&task, &schemas, &tables],
        )
        .await
        .map(|_| ())
        .map_err(src.err("record sequence positions"))
}

/// Prefix of the heartbeat logical message ([`emit_heartbeat`]).
pub const HEARTBEAT_MESSAGE: &str = "dts_heartbeat";
/// Prefix of the sequence-positions logical message ([`emit_sequences`]).
pub const SEQUENCE_MESSAGE: &str = "dts_sequence";

/// A sequence position, as [`sequence_positions`] reads it and the
/// [`SEQUENCE_MESSAGE`] carries it (JSON array of these).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SequencePosition {
    /// Schema name.
    pub schema: String,
    /// Sequence name.
    pub name: String,
    /// `last_value` (the start value when never called).
    pub last_value: i64,
    /// `is_called`.
    pub is_called: bool,
}

/// The positions of the selected sequences the role may read.
///
/// # Errors
/// [`PgError`].
pub async fn sequence_positions(
    src: &Connected,
    schemas: &[String],
    tables: &[String],
) -> Result<Vec<SequencePosition>, PgError> {
    let rows = src
        .client
        .query(
            &format!(
                "select n.nspname::text, c.relname::text, {POSITION}
                   {SEQUENCES_FROM} {LAST_VALUE}
                  where {}
                    and {READABLE}
                  order by 1, 2",
                selected_sequences(1, 2)
            ),
            &[&schemas, &tables],
        )
        .await
        .map_err(src.err("read sequence positions"))?;
    Ok(rows
        .iter()
        .map(|r| SequencePosition {
            schema: r.get(0),
            name: r.get(1),
            last_value: r.get(2),
            is_called: r.get(3),
        })
        .collect())
}

/// Writes a heartbeat without a helper table: a transactional logical
/// message ([`HEARTBEAT_MESSAGE`], content: the source's `now()`) in a
/// transaction of its own. Every role may call `pg_logical_emit_message`
/// (PostgreSQL grants EXECUTE to PUBLIC and checks nothing else); with
/// `wal_level = logical` it is decoded by every slot of the database, so
/// the stream sees a transaction, applies it (the destination learns the
/// source time) and confirms its LSN: an idle source's slot keeps moving.
///
/// # Errors
/// [`PgError`].
pub async fn emit_heartbeat(src: &Connected) -> Result<(), PgError> {
    src.client
        .execute(
            "select pg_logical_emit_message(true, $1::text, now()::text)",
            &[&HEARTBEAT_MESSAGE],
        )
        .await
        .map(|_| ())
        .map_err(src.err("emit heartbeat message"))
}

/// The content of a [`SEQUENCE_MESSAGE`]: one task's sequence positions
/// (every stream of the source database receives every message, so each
/// applies only its own task's).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SequenceMessage {
    /// The task whose selection the positions are.
    pub task: String,
    /// The positions.
    pub positions: Vec<SequencePosition>,
}

/// Sends sequence positions through the stream without a helper table: a
/// transactional logical message ([`SEQUENCE_MESSAGE`], content: a JSON
/// [`SequenceMessage`]).
///
/// # Errors
/// [`PgError`].
pub async fn emit_sequences(
    src: &Connected,
    task: &str,
    positions: &[SequencePosition],
) -> Result<(), PgError> {
    let content = serde_json::to_string(&SequenceMessage {
        task: task.to_owned(),
        positions: positions.to_vec(),
    })
    .unwrap_or_default();
    src.client
        .execute(
            "select pg_logical_emit_message(true, $1::text, $2::text)",
            &[&SEQUENCE_MESSAGE, &content],
        )
        .await
        .map(|_| ())
        .map_err(src.err("emit sequence positions message"))
}

/// Deletes the task's heartbeat row, and the table when no task is left.
///
/// # Errors
/// [`PgError`].
pub async fn drop_heartbeat(src: &Connected, task: &str) -> Result<(), PgError> {
    let table = heartbeat_table();
    let exists: bool = src
        .client
        .query_one("select to_regclass($1) is not null", &[&table])
        .await
        .map_err(src.err("look for heartbeat table"))?
        .get(0);
    let sequences = sequence_table();
    if !exists {
        src.client
            .batch_execute(&format!("drop table if exists {sequences}"))
            .await
            .map_err(src.err("drop sequence state table"))?;
        return Ok(());
    }
    src.client
        .execute(
            &format!("delete from {table} where task_name = $1"),
            &[&task],
        )
        .await
        .map_err(src.err("delete heartbeat row"))?;
    src.client
        .execute(
            &format!("delete from {sequences} where task_name = $1"),
            &[&task],
        )
        .await
        .map_err(src.err("delete sequence state rows"))?;
    let left: i64 = src
        .client
        .query_one(&format!("select count(*) from {table}"), &[])
        .await
        .map_err(src.err("count heartbeat rows"))?
        .get(0);
    if left == 0 {
        src.client
            .batch_execute(&format!("drop table if exists {table}, {sequences}"))
            .await
            .map_err(src.err("drop heartbeat tables"))?;
    }
    Ok(())
}

/// What the source says about a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotFacts {
    /// `wal_status = 'lost'`: the slot can no longer stream.
    pub lost: bool,
    /// pid of the WAL sender using it.
    pub active_pid: Option<i32>,
    /// `confirmed_flush_lsn`.
    pub confirmed_flush: Option<Lsn>,
}

/// Looks up slot `name`; `None` when it does not exist.
///
/// # Errors
/// [`PgError`].
pub async fn slot_facts(src: &Connected, name: &str) -> Result<Option<SlotFacts>, PgError> {
    let row = src
        .client
        .query_opt(
            "select coalesce(wal_status = 'lost', false), active_pid, confirmed_flush_lsn::text
               from pg_replication_slots where slot_name = $1",
            &[&name],
        )
        .await
        .map_err(src.err("look up replication slot"))?;
    Ok(row.map(|r| SlotFacts {
        lost: r.get(0),
        active_pid: r.get(1),
        confirmed_flush: r.get::<_, Option<String>>(2).and_then(|s| s.parse().ok()),
    }))
}

/// Drops slot `name` if it exists, first ending the WAL sender that uses it
/// (an apply that died without closing its connection).
///
/// # Errors
/// [`PgError`].
pub async fn drop_slot(src: &Connected, name: &str) -> Result<(), PgError> {
    for _ in 0..50 {
        let Some(facts) = slot_facts(src, name).await? else {
            return Ok(());
        };
        if let Some(pid) = facts.active_pid {
            src.client
                .execute("select pg_terminate_backend($1)", &[&pid])
                .await
                .map_err(src.err("end the WAL sender of the slot"))?;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        }
        match src
            .client
            .execute("select pg_drop_replication_slot($1)", &[&name])
            .await
        {
            Ok(_) => return Ok(()),
            // 55006 object_in_use: a WAL sender grabbed it meanwhile; 42704: gone.
            Err(e) if e.code().is_some_and(|c| c.code() == "42704") => return Ok(()),
            Err(e) if e.code().is_some_and(|c| c.code() == "55006") => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => {
                return Err(PgError::new(
                    format!("drop replication slot {name}"),
                    &src.endpoint,
                    e,
                ));
            }
        }
    }
    src.client
        .execute("select pg_drop_replication_slot($1)", &[&name])
        .await
        .map(|_| ())
        .map_err(src.err(format!("drop replication slot {name}")))
}

/// The user-visible schema objects of a database as `(type, identity)`
/// pairs from `pg_identify_object()`: schemas, relations, standalone
/// types, routines, collations, extensions, operators, operator classes
/// and families, user casts (not those a range type makes for its
/// multirange) and text search objects, leaving out members of extensions
/// and pgsync's own `public.dts_*` objects.
///
/// # Errors
/// [`PgError`].
pub async fn schema_objects(conn: &Connected) -> Result<Vec<(String, String)>, PgError> {
    Ok(schema_object_addresses(conn)
        .await?
        .into_iter()
        .map(|(_, _, kind, identity)| (kind, identity))
        .collect())
}

/// [`schema_objects`] with each object's address (`classid`, `objid`).
///
/// # Errors
/// [`PgError`].
pub async fn schema_object_addresses(
    conn: &Connected,
) -> Result<Vec<(u32, u32, String, String)>, PgError> {
    let rows = conn
        .client
        .query(
            "select o.classid::oid, o.objid::oid,
                    (pg_identify_object(o.classid, o.objid, 0)).type,
                    (pg_identify_object(o.classid, o.objid, 0)).identity
               from (select 'pg_namespace'::regclass as classid, oid as objid from pg_namespace
                      where nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
                        and nspname not like 'pg\\_temp\\_%' and nspname not like 'pg\\_toast\\_temp\\_%'
                     union all
                     select 'pg_class'::regclass, oid from pg_class
                      where relkind in ('r', 'p', 'v', 'm', 'S', 'f')
                     union all
                     select 'pg_type'::regclass, t.oid from pg_type t
                      where t.typtype in ('e', 'd', 'r')
                         or (t.typtype = 'c' and (select relkind from pg_class where oid = t.typrelid) = 'c')
                     union all
                     select 'pg_proc'::regclass, oid from pg_proc
                     union all
                     select 'pg_collation'::regclass, oid from pg_collation
                     union all
                     select 'pg_extension'::regclass, oid from pg_extension
                     union all
                     select 'pg_operator'::regclass, oid from pg_operator
                     union all
                     select 'pg_opfamily'::regclass, oid from pg_opfamily
                     union all
                     select 'pg_opclass'::regclass, oid from pg_opclass
                     union all
                     select 'pg_cast'::regclass, c.oid from pg_cast c
                      where c.oid >= 16384
                        and not exists (select 1 from pg_depend d where d.classid = 'pg_cast'::regclass
                                          and d.objid = c.oid and d.deptype = 'i')
                     union all
                     select 'pg_ts_config'::regclass, oid from pg_ts_config
                     union all
                     select 'pg_ts_dict'::regclass, oid from pg_ts_dict
                     union all
                     select 'pg_ts_template'::regclass, oid from pg_ts_template
                     union all
                     select 'pg_ts_parser'::regclass, oid from pg_ts_parser) o
              where not exists (select 1 from pg_depend d
                                 where d.classid = o.classid and d.objid = o.objid and d.deptype = 'e')
                and (pg_identify_object(o.classid, o.objid, 0)).schema is distinct from 'pg_catalog'
                and (pg_identify_object(o.classid, o.objid, 0)).schema is distinct from 'information_schema'
                and (pg_identify_object(o.classid, o.objid, 0)).identity not like 'public.dts\\_%'",
            &[],
        )
        .await
        .map_err(conn.err("list schema objects"))?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect())
}

/// `pg_identify_object()` type and identity of each address, in order
/// (objects that no longer exist are left out).
///
/// # Errors
/// [`PgError`].
pub async fn identify_objects(
    conn: &Connected,
    addresses: &[(u32, u32)],
) -> Result<Vec<(String, String)>, PgError> {
    let classids: Vec<u32> = addresses.iter().map(|a| a.0).collect();
    let objids: Vec<u32> = addresses.iter().map(|a| a.1).collect();
    let rows = conn
        .client
        .query(
            "select (pg_identify_object(x.c, x.o, 0)).type, (pg_identify_object(x.c, x.o, 0)).identity
               from unnest($1::oid[], $2::oid[]) with ordinality as x(c, o, n)
              where (pg_identify_object(x.c, x.o, 0)).identity is not null
              order by x.n",
            &[&classids, &objids],
        )
        .await
        .map_err(conn.err("identify schema objects"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Drops `objects` (as [`schema_objects`] names them) if they exist, views
/// and tables first, schemas and extensions last, with `cascade`.
///
/// # Errors
/// [`PgError`].
pub async fn drop_schema_objects(
    conn: &Connected,
    objects: &[(String, String)],
) -> Result<(), PgError> {
    const ORDER: &[&str] = &[
        "materialized view",
        "view",
        "foreign table",
        "table",
        "text search configuration",
        "text search dictionary",
        "text search template",
        "text search parser",
        "operator class",
        "operator family",
        "operator",
        "cast",
        "aggregate",
        "procedure",
        "function",
        "sequence",
        "type",
        "domain",
        "collation",
        "extension",
        "schema",
    ];
    for kind in ORDER {
        for (k, identity) in objects.iter().filter(|(k, _)| k == kind) {
            // pg_identify_object() quotes the identity; the kind is one of ORDER.
            let sql = format!("drop {k} if exists {identity} cascade");
            conn.client
                .batch_execute(&sql)
                .await
                .map_err(conn.err(format!("drop {k} {identity}")))?;
        }
    }
    Ok(())
}

/// The source's `wal_sender_timeout`: a WAL sender that hears nothing
/// from its client for this long ends the connection. `None` when it is
/// disabled (0).
///
/// # Errors
/// [`PgError`].
pub async fn wal_sender_timeout(src: &Connected) -> Result<Option<std::time::Duration>, PgError> {
    // pg_settings gives milliseconds, as text.
    let ms: String = src
        .client
        .query_one(
            "select setting from pg_settings where name = 'wal_sender_timeout'",
            &[],
        )
        .await
        .map_err(src.err("read wal_sender_timeout"))?
        .get(0);
    Ok(ms
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|ms| *ms > 0)
        .map(std::time::Duration::from_millis))
}

/// `pg_current_wal_insert_lsn()` of the source: every transaction
/// committed so far ends below it (`pg_current_wal_lsn()`, the write
/// position, lags behind commits made with `synchronous_commit = off`).
///
/// # Errors
/// [`PgError`].
pub async fn current_wal_lsn(src: &Connected) -> Result<Lsn, PgError> {
    let s: String = src
        .client
        .query_one("select pg_current_wal_insert_lsn()::text", &[])
        .await
        .map_err(src.err("read current WAL position"))?
        .get(0);
    Ok(s.parse().unwrap_or_default())
}
