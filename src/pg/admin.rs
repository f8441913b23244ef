//! Helper objects on the source (`public.dts_*`, publication, slot) and on
//! the destination (progress table), created and dropped idempotently.

use super::{Connected, PgError};
use crate::model::{Lsn, QualifiedName};
use crate::sql::{helpers, ident, qualified};

fn heartbeat_table() -> String {
    qualified(helpers::SCHEMA, helpers::HEARTBEAT_TABLE)
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
) -> Result<(), PgError> {
    let mut list: Vec<String> = tables
        .iter()
        .map(|t| qualified(&t.schema, &t.name))
        .collect();
    list.push(heartbeat_table());
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
            "create table if not exists {} (task_name text primary key, ts timestamptz not null)",
            heartbeat_table()
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
    if !exists {
        return Ok(());
    }
    src.client
        .execute(
            &format!("delete from {table} where task_name = $1"),
            &[&task],
        )
        .await
        .map_err(src.err("delete heartbeat row"))?;
    let left: i64 = src
        .client
        .query_one(&format!("select count(*) from {table}"), &[])
        .await
        .map_err(src.err("count heartbeat rows"))?
        .get(0);
    if left == 0 {
        src.client
            .batch_execute(&format!("drop table if exists {table}"))
            .await
            .map_err(src.err("drop heartbeat table"))?;
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

/// `pg_current_wal_lsn()` of the source.
///
/// # Errors
/// [`PgError`].
pub async fn current_wal_lsn(src: &Connected) -> Result<Lsn, PgError> {
    let s: String = src
        .client
        .query_one("select pg_current_wal_lsn()::text", &[])
        .await
        .map_err(src.err("read current WAL position"))?
        .get(0);
    Ok(s.parse().unwrap_or_default())
}
