//! DDL capture on the source: event triggers record every DDL statement
//! into `public.dts_ddl_command`, a published table, so each statement
//! travels in the change stream in commit order, interleaved with the DML
//! around it, and is replayed on the destination by the sink.
//!
//! Objects (all removed by `destroy` when no task of the source needs them):
//! - `public.dts_ddl_command`: one row per DDL statement (`ddl_command_end`)
//!   or per DROP (`sql_drop`), with the command tag, `current_query()`, the
//!   session's `search_path` and the objects affected;
//! - `public.dts_sync_task`: one row per task (its publication and selected
//!   schemas with their exclude globs), read by the trigger;
//! - `public.dts_capture_ddl()`, `public.dts_capture_drop()`: the trigger
//!   functions; event triggers `dts_ddl_capture` and `dts_drop_capture`.
//!
//! A table created in a selected schema joins the task's publication inside
//! the creating transaction (the trigger runs `alter publication … add
//! table`), so rows written by that same transaction are streamed too.
//! pgsync's own sessions set `pgsync.internal = on` and are not captured.
//!
//! Event triggers need a superuser (PostgreSQL docs §40.1).

use serde_json::json;

use super::{Connected, PgError};
use crate::model::ObjectSelection;
use crate::sql::{helpers, ident, qualified};

/// The published table carrying DDL statements.
pub const DDL_TABLE: &str = "dts_ddl_command";
const TASK_TABLE: &str = "dts_sync_task";

fn install_sql() -> String {
    let ddl = qualified(helpers::SCHEMA, DDL_TABLE);
    let tasks = qualified(helpers::SCHEMA, TASK_TABLE);
    format!(
        r#"
create table if not exists {ddl} (
    id bigserial primary key,
    event text not null,
    tag text not null,
    query text not null,
    search_path text not null,
    objects jsonb not null default '[]',
    created_at timestamptz not null default now());
create table if not exists {tasks} (
    publication text primary key,
    schemas jsonb not null default '[]');
create or replace function {schema}.dts_capture_ddl() returns event_trigger
language plpgsql as $body$
declare
    cmd record;
    sel record;
    objs jsonb;
begin
    -- DROP statements are recorded by dts_capture_drop (sql_drop), which
    -- knows what was dropped.
    if coalesce(current_setting('pgsync.internal', true), '') = 'on'
       or tg_tag in ('CREATE PUBLICATION', 'ALTER PUBLICATION', 'DROP PUBLICATION')
       or tg_tag like 'DROP %' then
        return;
    end if;
    select coalesce(jsonb_agg(jsonb_build_object(
               'type', object_type, 'schema', schema_name, 'identity', object_identity)), '[]')
      into objs
      from pg_event_trigger_ddl_commands()
     where not (schema_name = 'public' and object_identity like 'public.dts\_%');
    if objs = '[]'::jsonb and exists (select 1 from pg_event_trigger_ddl_commands()) then
        return; -- only pgsync's own helper objects
    end if;
    insert into {ddl} (event, tag, query, search_path, objects)
    values ('ddl_command_end', tg_tag, current_query(), current_setting('search_path'), objs);
    -- New tables in a selected schema join the task's publication now, so
    -- the rows of the creating transaction are streamed as well.
    for cmd in select * from pg_event_trigger_ddl_commands()
                where object_type in ('table', 'table partition' )
                  and command_tag in ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO') loop
        for sel in select t.publication, s.value as spec
                     from {tasks} t, jsonb_array_elements(t.schemas) s loop
            if sel.spec->>'schema' = cmd.schema_name
               and not exists (
                   select 1 from jsonb_array_elements_text(sel.spec->'exclude') g
                    where split_part(cmd.object_identity, '.', 2) like
                          replace(replace(replace(g, '_', '\_'), '%', '\%'), '*', '%'))
               and not exists (
                   select 1 from pg_publication_rel pr join pg_publication p on p.oid = pr.prpubid
                    where p.pubname = sel.publication and pr.prrelid = cmd.objid) then
                execute format('alter publication %I add table %s', sel.publication, cmd.object_identity);
            end if;
        end loop;
    end loop;
end
$body$;
create or replace function {schema}.dts_capture_drop() returns event_trigger
language plpgsql as $body$
declare
    objs jsonb;
begin
    -- ALTER TABLE … DROP COLUMN also fires sql_drop; ddl_command_end has it.
    if coalesce(current_setting('pgsync.internal', true), '') = 'on' or tg_tag not like 'DROP %' then
        return;
    end if;
    select coalesce(jsonb_agg(jsonb_build_object(
               'type', object_type, 'schema', schema_name, 'identity', object_identity)), '[]')
      into objs
      from pg_event_trigger_dropped_objects()
     where original and not (schema_name = 'public' and object_identity like 'public.dts\_%');
    if objs = '[]'::jsonb then
        return;
    end if;
    insert into {ddl} (event, tag, query, search_path, objects)
    values ('sql_drop', tg_tag, current_query(), current_setting('search_path'), objs);
end
$body$;
do $do$
begin
    if not exists (select 1 from pg_event_trigger where evtname = 'dts_ddl_capture') then
        create event trigger dts_ddl_capture on ddl_command_end
            execute procedure {schema}.dts_capture_ddl();
    end if;
    if not exists (select 1 from pg_event_trigger where evtname = 'dts_drop_capture') then
        create event trigger dts_drop_capture on sql_drop
            execute procedure {schema}.dts_capture_drop();
    end if;
end
$do$;
"#,
        schema = ident(helpers::SCHEMA)
    )
}

/// Installs (idempotently) the capture objects and registers the task's
/// publication with its selected schemas.
///
/// # Errors
/// [`PgError`], e.g. when the role is not a superuser.
pub async fn install(
    src: &Connected,
    publication: &str,
    objects: &[ObjectSelection],
) -> Result<(), PgError> {
    src.client
        .batch_execute(&format!("set pgsync.internal = on; {}", install_sql()))
        .await
        .map_err(src.err("install DDL capture (event triggers)"))?;
    let schemas: Vec<serde_json::Value> = objects
        .iter()
        .filter_map(|o| match o {
            ObjectSelection::Schema {
                name,
                exclude_tables,
            } => Some(json!({ "schema": name, "exclude": exclude_tables })),
            ObjectSelection::Table { .. } => None,
        })
        .collect();
    src.client
        .execute(
            &format!(
                "insert into {} (publication, schemas) values ($1, $2::text::jsonb)
                 on conflict (publication) do update set schemas = excluded.schemas",
                qualified(helpers::SCHEMA, TASK_TABLE)
            ),
            &[&publication, &serde_json::Value::Array(schemas).to_string()],
        )
        .await
        .map_err(src.err("register task for DDL capture"))?;
    Ok(())
}

/// Unregisters the task; drops the capture objects when no task is left.
///
/// # Errors
/// [`PgError`].
pub async fn uninstall(src: &Connected, publication: &str) -> Result<(), PgError> {
    let tasks = qualified(helpers::SCHEMA, TASK_TABLE);
    let exists: bool = src
        .client
        .query_one("select to_regclass($1) is not null", &[&tasks])
        .await
        .map_err(src.err("look for DDL capture"))?
        .get(0);
    let left: i64 = if exists {
        src.client
            .execute(
                &format!("delete from {tasks} where publication = $1"),
                &[&publication],
            )
            .await
            .map_err(src.err("unregister task from DDL capture"))?;
        src.client
            .query_one(&format!("select count(*) from {tasks}"), &[])
            .await
            .map_err(src.err("count DDL capture tasks"))?
            .get(0)
    } else {
        0
    };
    if left == 0 {
        src.client
            .batch_execute(&format!(
                "set pgsync.internal = on;
                 drop event trigger if exists dts_ddl_capture;
                 drop event trigger if exists dts_drop_capture;
                 drop function if exists {s}.dts_capture_ddl();
                 drop function if exists {s}.dts_capture_drop();
                 drop table if exists {tasks};
                 drop table if exists {ddl};",
                s = ident(helpers::SCHEMA),
                ddl = qualified(helpers::SCHEMA, DDL_TABLE)
            ))
            .await
            .map_err(src.err("drop DDL capture objects"))?;
    }
    Ok(())
}

/// Whether the source role may create event triggers (superuser).
///
/// # Errors
/// [`PgError`].
pub async fn can_capture(src: &Connected) -> Result<bool, PgError> {
    Ok(src
        .client
        .query_one(
            "select rolsuper from pg_roles where rolname = current_user",
            &[],
        )
        .await
        .map_err(src.err("check superuser"))?
        .get(0))
}
