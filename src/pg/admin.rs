//! Helper objects on the source (`public.dts_*`, publication, slot) and on
//! the destination (progress table), created and dropped idempotently.

use super::{Connected, PgError};
use crate::model::{Lsn, QualifiedName};
use crate::sql::{helpers, ident, qualified};

fn heartbeat_table() -> String {
    qualified(helpers::SCHEMA, helpers::HEARTBEAT_TABLE)
}

fn sequence_table() -> String {
    qualified(helpers::SCHEMA, helpers::SEQUENCE_TABLE)
}

/// (Re)creates publication `name` listing `tables` and the heartbeat table
/// explicitly (never `FOR ALL TABLES`: that would make UPDATE/DELETE fail on
/// unrelated tables without a replica identity).
///
/// # Errors
/// [`PgError`], e.g. when the role may not create publications.
pub async fn create_publication(
    src: &Connected,
    name: &str,
    tables: &[QualifiedName],
    with_ddl: bool,
) -> Result<(), PgError> {
    let mut list: Vec<String> = tables
        .iter()
        .map(|t| qualified(&t.schema, &t.name))
        .collect();
    list.push(heartbeat_table());
    list.push(sequence_table());
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

/// Records the current position of every sequence the task selects (those
/// in its selected schemas and those owned by its selected tables) in
/// `public.dts_sequence_state`, writing only rows that changed.
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
                "insert into {t} as s (task_name, seq_schema, seq_name, last_value, is_called)
                 select $1, q.schemaname, q.sequencename, coalesce(q.last_value, q.start_value),
                        q.last_value is not null
                   from pg_sequences q
                  where (q.schemaname = any($2)
                         or exists (select 1 from pg_depend d
                                      join pg_class c on c.oid = d.refobjid
                                      join pg_namespace n on n.oid = c.relnamespace
                                     where d.objid = to_regclass(format('%I.%I', q.schemaname, q.sequencename))
                                       and d.classid = 'pg_class'::regclass and d.deptype in ('a', 'i')
                                       and n.nspname || '.' || c.relname = any($3)))
                    and not (q.schemaname = 'public' and q.sequencename like 'dts\\_%')
                 on conflict (task_name, seq_schema, seq_name) do update
                    set last_value = excluded.last_value, is_called = excluded.is_called
                  where (s.last_value, s.is_called) is distinct from (excluded.last_value, excluded.is_called)",
                t = sequence_table()
            ),
            &[&task, &schemas, &tables],
        )
        .await
        .map(|_| ())
        .map_err(src.err("record sequence positions"))
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
    let rows = conn
        .client
        .query(
            "select (pg_identify_object(o.classid, o.objid, 0)).type,
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
