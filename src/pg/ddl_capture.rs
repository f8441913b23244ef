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
/// The last known shape of each table (see `dts_table_changes`).
const SHAPE_TABLE: &str = "dts_table_shape";
/// The last known name of each routine, view, sequence and type.
const NAME_TABLE: &str = "dts_object_name";

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
-- The last known shape of each table (columns by attnum, constraints by
-- name), so that an ALTER TABLE issued from inside a function — whose text
-- is not in current_query() — is replayed as the statements that turn the
-- old shape into the new one.
create table if not exists {shapes} (
    relid oid primary key,
    shape jsonb not null);
create or replace function {schema}.dts_table_shape(obj oid)
returns jsonb language sql stable set search_path = '' as $body$
    select jsonb_build_object(
        'schema', n.nspname, 'table', c.relname,
        'columns', coalesce((select jsonb_agg(jsonb_build_object(
                'attnum', a.attnum, 'name', a.attname,
                'type', format_type(a.atttypid, a.atttypmod),
                'notnull', a.attnotnull,
                'default', case when a.attgenerated = '' then pg_get_expr(d.adbin, d.adrelid) end,
                'generated', case when a.attgenerated <> '' then pg_get_expr(d.adbin, d.adrelid) end,
                'identity', a.attidentity) order by a.attnum)
              from pg_catalog.pg_attribute a
              left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
             where a.attrelid = obj and a.attnum > 0 and not a.attisdropped), '[]'),
        'constraints', coalesce((select jsonb_object_agg(conname, pg_get_constraintdef(oid))
              from pg_catalog.pg_constraint
             where conrelid = obj and contype in ('p', 'u', 'c', 'x', 'f')), '{{}}'))
      from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where c.oid = obj
$body$;
-- The statements that turn table shape `old` into `new`: set schema,
-- rename, then per column (matched by attnum, so a rename is a rename)
-- drop, rename, type, default, not null; added columns; constraints by
-- name.
create or replace function {schema}.dts_alter_table(old jsonb, new jsonb)
returns text language plpgsql set search_path = '' as $body$
declare
    stmts text[] := '{{}}';
    tbl text;
    oc jsonb;
    nc jsonb;
    k text;
begin
    if new->>'schema' <> old->>'schema' then
        stmts := stmts || format('alter table %I.%I set schema %I', old->>'schema', old->>'table', new->>'schema');
    end if;
    if new->>'table' <> old->>'table' then
        stmts := stmts || format('alter table %I.%I rename to %I', new->>'schema', old->>'table', new->>'table');
    end if;
    tbl := format('%I.%I', new->>'schema', new->>'table');
    for k in select key from jsonb_each(old->'constraints')
              where not (new->'constraints' ? key) or new->'constraints'->>key <> old->'constraints'->>key loop
        stmts := stmts || format('alter table %s drop constraint if exists %I', tbl, k);
    end loop;
    for oc in select value from jsonb_array_elements(old->'columns') loop
        select value into nc from jsonb_array_elements(new->'columns')
         where (value->>'attnum')::int = (oc->>'attnum')::int;
        if nc is null then
            stmts := stmts || format('alter table %s drop column %I', tbl, oc->>'name');
            continue;
        end if;
        if nc->>'name' <> oc->>'name' then
            stmts := stmts || format('alter table %s rename column %I to %I', tbl, oc->>'name', nc->>'name');
        end if;
        if nc->>'type' <> oc->>'type' then
            stmts := stmts || format('alter table %s alter column %I type %s using %I::%s',
                                     tbl, nc->>'name', nc->>'type', nc->>'name', nc->>'type');
        end if;
        if (nc->>'default') is distinct from (oc->>'default') then
            if nc->>'default' is null then
                stmts := stmts || format('alter table %s alter column %I drop default', tbl, nc->>'name');
            else
                stmts := stmts || format('alter table %s alter column %I set default %s', tbl, nc->>'name', nc->>'default');
            end if;
        end if;
        if (nc->>'notnull') <> (oc->>'notnull') then
            stmts := stmts || format('alter table %s alter column %I %s not null', tbl, nc->>'name',
                                     case when (nc->>'notnull')::boolean then 'set' else 'drop' end);
        end if;
        nc := null;
    end loop;
    for nc in select value from jsonb_array_elements(new->'columns') c
               where not exists (select 1 from jsonb_array_elements(old->'columns') o
                                  where (o.value->>'attnum')::int = (c.value->>'attnum')::int)
               order by (value->>'attnum')::int loop
        stmts := stmts || format('alter table %s add column %I %s%s%s', tbl, nc->>'name', nc->>'type',
            case when nc->>'generated' is not null then ' generated always as (' || (nc->>'generated') || ') stored'
                 when nc->>'identity' = 'a' then ' generated always as identity'
                 when nc->>'identity' = 'd' then ' generated by default as identity'
                 when nc->>'default' is not null then ' default ' || (nc->>'default')
                 else '' end,
            case when (nc->>'notnull')::boolean and coalesce(nc->>'identity', '') = '' then ' not null' else '' end);
    end loop;
    for k in select key from jsonb_each(new->'constraints')
              where not (old->'constraints' ? key) or new->'constraints'->>key <> old->'constraints'->>key loop
        stmts := stmts || format('alter table %s add constraint %I %s', tbl, k, new->'constraints'->>k);
    end loop;
    return array_to_string(stmts, '; ');
end
$body$;
-- (see dts_renamed)
-- Records the new shape of a table an ALTER TABLE (or CREATE TABLE)
-- changed and returns the statements from its previous shape (null when
-- none was known). Never fails the user's statement.
create or replace function {schema}.dts_table_changes(kind text, obj oid)
returns text language plpgsql as $body$
declare
    rel oid := obj;
    old_shape jsonb;
    new_shape jsonb;
begin
    if kind = 'table constraint' then
        select conrelid into rel from pg_catalog.pg_constraint where oid = obj;
    end if;
    if rel is null then
        return null;
    end if;
    select shape into old_shape from {shapes} where relid = rel;
    new_shape := {schema}.dts_table_shape(rel);
    insert into {shapes} (relid, shape) values (rel, new_shape)
        on conflict (relid) do update set shape = excluded.shape;
    if old_shape is null then
        return null;
    end if;
    return nullif({schema}.dts_alter_table(old_shape, new_shape), '');
exception when others then
    return null;
end
$body$;
-- The schema and name of each function, view, sequence and type last seen,
-- so that a rename issued from inside a function is replayed as a rename.
create table if not exists {names} (
    classid oid,
    objid oid,
    nspname text not null,
    objname text not null,
    identity text not null,
    primary key (classid, objid));
create or replace function {schema}.dts_renamed(kind text, obj oid)
returns text language plpgsql set search_path = '' as $body$
declare
    cls oid;
    nsp text;
    nm text;
    ident text;
    old record;
    args text := '';
    stmts text[] := '{{}}';
begin
    if kind in ('function', 'procedure', 'aggregate') then
        cls := 'pg_catalog.pg_proc'::pg_catalog.regclass;
        select n.nspname, p.proname into nsp, nm
          from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
         where p.oid = obj;
    elsif kind in ('view', 'materialized view', 'sequence') then
        cls := 'pg_catalog.pg_class'::pg_catalog.regclass;
        select n.nspname, c.relname into nsp, nm
          from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
         where c.oid = obj;
    elsif kind in ('type', 'domain') then
        cls := 'pg_catalog.pg_type'::pg_catalog.regclass;
        select n.nspname, t.typname into nsp, nm
          from pg_catalog.pg_type t join pg_catalog.pg_namespace n on n.oid = t.typnamespace
         where t.oid = obj;
    else
        return null;
    end if;
    if nm is null then
        return null;
    end if;
    ident := (pg_catalog.pg_identify_object(cls, obj, 0)).identity;
    select * into old from {names} o where o.classid = cls and o.objid = obj;
    insert into {names} (classid, objid, nspname, objname, identity) values (cls, obj, nsp, nm, ident)
        on conflict (classid, objid) do update
        set nspname = excluded.nspname, objname = excluded.objname, identity = excluded.identity;
    if old is null or (old.nspname = nsp and old.objname = nm) then
        return null;
    end if;
    if kind in ('function', 'procedure', 'aggregate') then
        args := pg_catalog.substr(ident, pg_catalog.strpos(ident, '('));
    end if;
    if old.objname <> nm then
        stmts := stmts || pg_catalog.format('alter %s %s rename to %I', kind, old.identity, nm);
    end if;
    if old.nspname <> nsp then
        stmts := stmts || pg_catalog.format('alter %s %I.%I%s set schema %I', kind, old.nspname, nm, args, nsp);
    end if;
    return pg_catalog.array_to_string(stmts, '; ');
exception when others then
    return null;
end
$body$;
-- Enum, composite, range and domain types as statements: CREATE TYPE
-- recreates them; ALTER TYPE on an enum adds every label the destination
-- may lack, in the source's order (ADD VALUE IF NOT EXISTS … AFTER …).
create or replace function {schema}.dts_type_definition(tag text, obj oid)
returns text language plpgsql as $body$
declare
    t record;
    labels text[];
    stmts text[] := '{{}}';
    i int;
begin
    select typname, typtype, typrelid, typbasetype, typtypmod, typnotnull, typdefault,
           format_type(oid, null) as name
      into t from pg_type where oid = obj;
    if t is null then
        return null;
    end if;
    if t.typtype = 'e' then
        select array_agg(enumlabel order by enumsortorder) into labels from pg_enum where enumtypid = obj;
        if tag = 'CREATE TYPE' then
            return format('create type %s as enum (%s)', t.name,
                          (select string_agg(quote_literal(l), ', ') from unnest(labels) l));
        end if;
        for i in 2 .. coalesce(array_length(labels, 1), 0) loop
            stmts := stmts || format('alter type %s add value if not exists %L after %L', t.name, labels[i], labels[i - 1]);
        end loop;
        return array_to_string(stmts, '; ');
    elsif t.typtype = 'c' and tag = 'CREATE TYPE' then
        return format('create type %s as (%s)', t.name,
                      (select string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod), ', ' order by attnum)
                         from pg_attribute where attrelid = t.typrelid and attnum > 0 and not attisdropped));
    elsif t.typtype = 'r' and tag = 'CREATE TYPE' then
        return (select format('create type %s as range (subtype = %s)', t.name, format_type(rngsubtype, null))
                  from pg_range where rngtypid = obj);
    elsif t.typtype = 'd' and tag = 'CREATE DOMAIN' then
        return format('create domain %s as %s%s%s%s', t.name, format_type(t.typbasetype, t.typtypmod),
                      case when t.typdefault is not null then ' default ' || t.typdefault else '' end,
                      case when t.typnotnull then ' not null' else '' end,
                      coalesce((select string_agg(' constraint ' || quote_ident(conname) || ' ' || pg_get_constraintdef(oid), '' order by conname)
                                  from pg_constraint where contypid = obj), ''));
    end if;
    return null;
end
$body$;
-- The definition of an object a DDL statement created, as a statement
-- that recreates it: the sink runs it when the statement itself cannot be
-- found in current_query() (DDL issued from inside a function or DO block)
-- and for CREATE TABLE AS / SELECT INTO (whose rows arrive in the stream).
create or replace function {schema}.dts_definition(tg_tag text, tag text, kind text, obj oid)
returns text language plpgsql as $body$
declare
    def text;
begin
    -- The sequence of a serial column, created by CREATE/ALTER TABLE.
    if kind = 'sequence' and tag = 'CREATE SEQUENCE' and tg_tag in ('CREATE TABLE', 'ALTER TABLE') then
        tag := 'CREATE SEQUENCE';
    elsif tag is distinct from tg_tag then
        return null; -- a subcommand (e.g. the index of a primary key)
    end if;
    if kind in ('table', 'table column', 'table constraint') and tag = 'ALTER TABLE' then
        return {schema}.dts_table_changes(kind, obj);
    end if;
    -- Renames (and moves) of other objects; every CREATE records the name.
    if kind in ('function', 'procedure', 'aggregate', 'view', 'materialized view', 'sequence', 'type', 'domain') then
        def := {schema}.dts_renamed(kind, obj);
        if def is not null and tag like 'ALTER %' then
            return def;
        end if;
    end if;
    if kind = 'table' and tag in ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO') then
        perform {schema}.dts_table_changes(kind, obj);
        if exists (select 1 from pg_class where oid = obj and (relispartition or relkind <> 'r')) then
            return null;
        end if;
        select 'create ' || case when c.relpersistence = 'u' then 'unlogged ' else '' end
               || 'table ' || obj::regclass::text || ' ('
               || coalesce((select string_agg(
                      quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
                      || case when a.attcollation <> t.typcollation and a.attcollation <> 0
                              then ' collate ' || (select quote_ident(nspname) || '.' || quote_ident(collname)
                                                    from pg_collation co join pg_namespace cn on cn.oid = co.collnamespace
                                                   where co.oid = a.attcollation) else '' end
                      || case when a.attidentity = 'a' then ' generated always as identity'
                              when a.attidentity = 'd' then ' generated by default as identity'
                              when a.attgenerated = 's' then ' generated always as (' || pg_get_expr(d.adbin, d.adrelid) || ') stored'
                              when d.adbin is not null then ' default ' || pg_get_expr(d.adbin, d.adrelid)
                              else '' end
                      || case when a.attnotnull then ' not null' else '' end,
                      ', ' order by a.attnum)
                    from pg_attribute a
                    join pg_type t on t.oid = a.atttypid
                    left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
                   where a.attrelid = obj and a.attnum > 0 and not a.attisdropped), '')
               || coalesce((select string_agg(', constraint ' || quote_ident(conname) || ' ' || pg_get_constraintdef(oid), '' order by conname)
                              from pg_constraint where conrelid = obj and contype in ('p', 'u', 'c', 'x', 'f')), '')
               || ')'
               -- Serial columns own their sequences.
               || coalesce((select string_agg('; alter sequence ' || d.objid::regclass::text || ' owned by '
                                              || obj::regclass::text || '.' || quote_ident(a.attname), '')
                              from pg_depend d
                              join pg_attribute a on a.attrelid = obj and a.attnum = d.refobjsubid
                             where d.classid = 'pg_class'::regclass and d.refclassid = 'pg_class'::regclass
                               and d.refobjid = obj and d.deptype = 'a'
                               and (select relkind from pg_class where oid = d.objid) = 'S'), '')
          into def
          from pg_class c where c.oid = obj;
        return def;
    elsif kind = 'index' and tag = 'CREATE INDEX' then
        return pg_get_indexdef(obj);
    elsif kind = 'view' and tag = 'CREATE VIEW' then
        return 'create or replace view ' || obj::regclass::text || ' as ' || pg_get_viewdef(obj);
    elsif kind in ('function', 'procedure')
          and tag in ('CREATE FUNCTION', 'CREATE PROCEDURE', 'ALTER FUNCTION', 'ALTER PROCEDURE') then
        return pg_get_functiondef(obj);
    elsif kind = 'view' and tag = 'ALTER VIEW' then
        return 'create or replace view ' || obj::regclass::text || ' as ' || pg_get_viewdef(obj);
    elsif kind = 'schema' and tag = 'CREATE SCHEMA' then
        return format('create schema if not exists %I', (select nspname from pg_namespace where oid = obj));
    elsif kind = 'sequence' and tag in ('CREATE SEQUENCE', 'ALTER SEQUENCE') then
        return (select format('%s sequence %s%s as %s increment by %s minvalue %s maxvalue %s start with %s cache %s %s',
                              case when tag = 'CREATE SEQUENCE' then 'create' else 'alter' end,
                              case when tag = 'CREATE SEQUENCE' then 'if not exists ' else '' end,
                              obj::regclass::text, format_type(s.seqtypid, null), s.seqincrement, s.seqmin,
                              s.seqmax, s.seqstart, s.seqcache,
                              case when s.seqcycle then 'cycle' else 'no cycle' end)
                  from pg_sequence s where s.seqrelid = obj);
    elsif kind in ('type', 'domain') and tag in ('CREATE TYPE', 'ALTER TYPE', 'CREATE DOMAIN') then
        return {schema}.dts_type_definition(tag, obj);
    end if;
    return null;
end
$body$;
create or replace function {schema}.dts_capture_ddl() returns event_trigger
language plpgsql as $body$
declare
    cmd record;
    sel record;
    objs jsonb;
    selected boolean;
begin
    -- DROP statements are recorded by dts_capture_drop (sql_drop), which
    -- knows what was dropped.
    if coalesce(current_setting('pgsync.internal', true), '') = 'on'
       or tg_tag in ('CREATE PUBLICATION', 'ALTER PUBLICATION', 'DROP PUBLICATION')
       or tg_tag like 'DROP %' then
        return;
    end if;
    select coalesce(jsonb_agg(jsonb_build_object(
               'type', object_type, 'schema', schema_name, 'identity', object_identity,
               'definition', {schema}.dts_definition(tg_tag, command_tag, object_type, objid))
               order by ordinality), '[]')
      into objs
      from pg_event_trigger_ddl_commands() with ordinality
     where not (schema_name = 'public' and object_identity like 'public.dts\_%');
    if objs = '[]'::jsonb then
        -- Only pgsync's own helper objects, or a statement that changed
        -- nothing (`create table if not exists` of a table that exists):
        -- nothing to replay.
        return;
    end if;
    insert into {ddl} (event, tag, query, search_path, objects)
    values ('ddl_command_end', tg_tag, current_query(), current_setting('search_path'), objs);
    -- New tables in a selected schema join the task's publication now, so
    -- the rows of the creating transaction are streamed as well.
    for cmd in select * from pg_event_trigger_ddl_commands()
                where object_type in ('table', 'table partition' )
                  and command_tag in ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO') loop
        selected := false;
        for sel in select t.publication, s.value as spec
                     from {tasks} t, jsonb_array_elements(t.schemas) s loop
            if sel.spec->>'schema' = cmd.schema_name
               and not exists (
                   select 1 from jsonb_array_elements_text(sel.spec->'exclude') g
                    where split_part(cmd.object_identity, '.', 2) like
                          replace(replace(replace(g, '_', '\_'), '%', '\%'), '*', '%')) then
                selected := true;
                if not exists (
                    select 1 from pg_publication_rel pr join pg_publication p on p.oid = pr.prpubid
                     where p.pubname = sel.publication and pr.prrelid = cmd.objid) then
                    execute format('alter publication %I add table %s', sel.publication, cmd.object_identity);
                end if;
            end if;
        end loop;
        -- CREATE TABLE AS / SELECT INTO wrote its rows before the table was
        -- published: send them through the stream as row texts (the sink
        -- inserts them), then delete the helper rows again.
        if selected and cmd.command_tag in ('CREATE TABLE AS', 'SELECT INTO') then
            execute format(
                'insert into {ddl} (event, tag, query, search_path, objects) '
                'select %L, %L, t::text, %L, %L::jsonb from %s t',
                'rows', cmd.command_tag, '',
                jsonb_build_array(jsonb_build_object(
                    'schema', cmd.schema_name, 'identity', cmd.object_identity))::text,
                cmd.object_identity);
            delete from {ddl} where event = 'rows';
        end if;
    end loop;
    -- ALTER TABLE … ADD COLUMN with a default that is not a constant
    -- (random(), now(), nextval()) filled the existing rows with values the
    -- destination would compute differently: send the source's values by
    -- primary key (the sink upserts that column). The new column is the one
    -- whose pg_attribute row this transaction wrote.
    if tg_tag = 'ALTER TABLE' then
        for cmd in select distinct d.objid, d.object_identity, d.schema_name
                     from pg_event_trigger_ddl_commands() d
                    where d.object_type = 'table'
                      and exists (select 1 from pg_publication_rel pr
                                   where pr.prrelid = d.objid
                                     and pr.prpubid in (select p.oid from pg_publication p
                                                         join {tasks} t on t.publication = p.pubname)) loop
            for sel in select a.attname,
                              (select c.conname from pg_constraint c
                                where c.conrelid = cmd.objid and c.contype = 'p') as pk,
                              (select jsonb_agg(k.attname order by k.attnum)
                                 from pg_attribute k
                                where k.attrelid = cmd.objid and k.attnum > 0 and not k.attisdropped
                                  and k.attgenerated = '') as cols
                         from pg_attribute a
                         join pg_attrdef ad on ad.adrelid = a.attrelid and ad.adnum = a.attnum
                        where a.attrelid = cmd.objid and a.attnum > 0 and not a.attisdropped
                          and a.attgenerated = ''
                          and a.xmin::text = (txid_current() % 4294967296)::text
                          -- A default that is not a constant (random(),
                          -- now(), nextval(), …): built-in functions leave
                          -- no pg_depend row, so look at the stored tree.
                          and ad.adbin::text not like '{{CONST %' loop
                continue when sel.pk is null;
                execute format(
                    'insert into {ddl} (event, tag, query, search_path, objects) '
                    'select %L, %L, t::text, %L, %L::jsonb from %s t',
                    'column_values', tg_tag, '',
                    jsonb_build_array(jsonb_build_object(
                        'schema', cmd.schema_name,
                        'identity', cmd.object_identity, 'column', sel.attname,
                        'constraint', sel.pk, 'columns', sel.cols))::text,
                    cmd.object_identity);
            end loop;
        end loop;
        delete from {ddl} where event = 'column_values';
    end if;
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
    -- Each object also carries the statement that drops it, replayed when
    -- the DROP ran inside a function (its text is not in current_query()).
    select coalesce(jsonb_agg(jsonb_build_object(
               'type', object_type, 'schema', schema_name, 'identity', object_identity,
               'definition', case when object_type in ('table', 'view', 'materialized view', 'sequence',
                                                       'index', 'function', 'procedure', 'aggregate',
                                                       'type', 'domain', 'schema', 'foreign table')
                                  then format('drop %s if exists %s cascade', object_type, object_identity)
                             end)), '[]')
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
        schema = ident(helpers::SCHEMA),
        shapes = qualified(helpers::SCHEMA, SHAPE_TABLE),
        names = qualified(helpers::SCHEMA, NAME_TABLE),
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
    // The shapes ALTER TABLE statements from functions are diffed against.
    src.client
        .batch_execute(&format!(
            "insert into {shapes} (relid, shape)
             select c.oid, {s}.dts_table_shape(c.oid) from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
              where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')
                and n.nspname not like 'pg\\_%' and not (n.nspname = 'public' and c.relname like 'dts\\_%')
             on conflict (relid) do update set shape = excluded.shape",
            shapes = qualified(helpers::SCHEMA, SHAPE_TABLE),
            s = ident(helpers::SCHEMA)
        ))
        .await
        .map_err(src.err("record table shapes for DDL capture"))?;
    src.client
        .batch_execute(&format!(
            "select {s}.dts_renamed(k, o) from (
                 select case p.prokind when 'p' then 'procedure' when 'a' then 'aggregate' else 'function' end, p.oid
                   from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                  where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
                 union all
                 select case c.relkind when 'v' then 'view' when 'm' then 'materialized view' else 'sequence' end, c.oid
                   from pg_class c join pg_namespace n on n.oid = c.relnamespace
                  where c.relkind in ('v', 'm', 'S') and n.nspname not in ('pg_catalog', 'information_schema')
                    and n.nspname not like 'pg\\_%'
                 union all
                 select case t.typtype when 'd' then 'domain' else 'type' end, t.oid
                   from pg_type t join pg_namespace n on n.oid = t.typnamespace
                  where t.typtype in ('e', 'c', 'r', 'd') and (t.typrelid = 0 or (select relkind from pg_class where oid = t.typrelid) = 'c')
                    and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
             ) x(k, o)",
            s = ident(helpers::SCHEMA)
        ))
        .await
        .map_err(src.err("record object names for DDL capture"))?;
    let schemas: Vec<serde_json::Value> = objects
        .iter()
        .filter_map(|o| match o {
            ObjectSelection::Schema {
                name,
                exclude_tables,
                ..
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
                 drop function if exists {s}.dts_definition(text, text, text, oid);
                 drop function if exists {s}.dts_type_definition(text, oid);
                 drop function if exists {s}.dts_renamed(text, oid);
                 drop table if exists {names};
                 drop function if exists {s}.dts_table_changes(text, oid);
                 drop function if exists {s}.dts_alter_table(jsonb, jsonb);
                 drop function if exists {s}.dts_table_shape(oid);
                 drop table if exists {shapes};
                 drop table if exists {tasks};
                 drop table if exists {ddl};",
                s = ident(helpers::SCHEMA),
                ddl = qualified(helpers::SCHEMA, DDL_TABLE),
                shapes = qualified(helpers::SCHEMA, SHAPE_TABLE),
                names = qualified(helpers::SCHEMA, NAME_TABLE)
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
