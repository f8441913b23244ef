//! What is compared for each table: which tables (partition roots instead
//! of their partitions), the columns, and the key, read from the catalogs.

use super::sql::{KeyColumn, SideTable};
use crate::model::{QualifiedName, Route};
use crate::pg::precheck::SourceTable;
use crate::pg::{Connected, PgError};
use crate::sql::qualified;

/// Where the key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// The primary key.
    PrimaryKey,
    /// The REPLICA IDENTITY USING INDEX index.
    ReplicaIdentityIndex,
    /// Another unique index over NOT NULL columns.
    UniqueIndex,
    /// No usable key: rows are ranged by the hash of their text form.
    None,
}

/// A table to compare, as the source describes it.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Its name (the same on the destination).
    pub name: QualifiedName,
    /// The source's side.
    pub source: SideTable,
    /// Key origin.
    pub key_kind: KeyKind,
    /// Where the task sends the table (destination name, selected and
    /// renamed columns, `where` filter).
    pub route: Route,
}

impl Shape {
    /// The key column names (empty: no key).
    pub fn key_names(&self) -> Vec<String> {
        self.source.key.iter().map(|k| k.name.clone()).collect()
    }
}

/// The tables to compare for a resolved selection: every selected table,
/// except partitions whose partitioned ancestor is selected too (the
/// ancestor is read whole, wherever the destination put each row).
///
/// # Errors
/// [`PgError`].
pub async fn compared_tables(
    src: &Connected,
    tables: &[SourceTable],
) -> Result<Vec<QualifiedName>, PgError> {
    let names: Vec<String> = tables
        .iter()
        .map(|t| qualified(&t.name.schema, &t.name.name))
        .collect();
    let rows = src
        .client
        .query(
            "with recursive sel as (
                 select x::regclass::oid as oid from unnest($1::text[]) x),
             anc as (
                 select i.inhrelid as child, i.inhparent as parent
                   from pg_inherits i join sel on sel.oid = i.inhrelid
                   join pg_class c on c.oid = i.inhrelid where c.relispartition
                 union
                 select anc.child, i.inhparent from anc join pg_inherits i on i.inhrelid = anc.parent)
             select n.nspname::text, c.relname::text from sel
               join pg_class c on c.oid = sel.oid join pg_namespace n on n.oid = c.relnamespace
              where not exists (select 1 from anc join sel p on p.oid = anc.parent
                                 where anc.child = sel.oid)
              order by 1, 2",
            &[&names],
        )
        .await
        .map_err(src.err("list the tables to compare"))?;
    Ok(rows
        .iter()
        .map(|r| QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}

/// Catalog facts of one table on one side.
#[derive(Debug, Clone)]
pub struct Found {
    /// `pg_class.relkind`.
    pub relkind: char,
    /// Column names in attnum order (dropped columns left out).
    pub columns: Vec<String>,
    oid: u32,
}

/// Looks `name` up on `conn`; `None` when it does not exist.
///
/// # Errors
/// [`PgError`].
pub async fn find(conn: &Connected, name: &QualifiedName) -> Result<Option<Found>, PgError> {
    let row = conn
        .client
        .query_opt(
            "select c.oid, c.relkind::text,
                    array(select a.attname::text from pg_attribute a
                           where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                           order by a.attnum)
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p')",
            &[&name.schema, &name.name],
        )
        .await
        .map_err(conn.err(format!("look up table {name}")))?;
    Ok(row.map(|r| Found {
        oid: r.get(0),
        relkind: r.get::<_, String>(1).chars().next().unwrap_or('r'),
        columns: r.get(2),
    }))
}

/// The key of a source table: the primary key, else the replica identity
/// index, else the narrowest unique index; only indexes over plain NOT NULL
/// columns without a predicate count (a NULL key would fall in no range).
///
/// # Errors
/// [`PgError`].
pub async fn key_of(conn: &Connected, found: &Found) -> Result<(KeyKind, Vec<String>), PgError> {
    let row = conn
        .client
        .query_opt(
            "select case when i.indisprimary then 'p' when i.indisreplident then 'i' else 'u' end,
                    array(select a.attname::text from generate_series(0, i.indnkeyatts - 1) g
                            join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[g]
                           order by g)
               from pg_index i
              where i.indrelid = $1 and i.indisunique and i.indisvalid and i.indimmediate
                and i.indpred is null and i.indexprs is null
                and not exists (select 1 from generate_series(0, i.indnkeyatts - 1) g
                                  join pg_attribute a on a.attrelid = i.indrelid
                                   and a.attnum = i.indkey[g]
                                 where not a.attnotnull)
              order by i.indisprimary desc, i.indisreplident desc, i.indnkeyatts, i.indexrelid
              limit 1",
            &[&found.oid],
        )
        .await
        .map_err(conn.err("read the table's key"))?;
    Ok(match row {
        None => (KeyKind::None, Vec::new()),
        Some(r) => {
            let kind = match r.get::<_, String>(0).as_str() {
                "p" => KeyKind::PrimaryKey,
                "i" => KeyKind::ReplicaIdentityIndex,
                _ => KeyKind::UniqueIndex,
            };
            (kind, r.get(1))
        }
    })
}

/// Type and collation facts of the key columns `names` on one side, in
/// that order; `None` when a column is missing there.
///
/// # Errors
/// [`PgError`].
pub async fn key_columns(
    conn: &Connected,
    found: &Found,
    names: &[String],
) -> Result<Option<Vec<KeyColumn>>, PgError> {
    let rows = conn
        .client
        .query(
            "select a.attname::text, format_type(a.atttypid, a.atttypmod),
                    a.attcollation <> 0 and not coalesce(
                        co.collname in ('C', 'POSIX', 'ucs_basic')
                        or (co.collname = 'default' and (
                            select d.datcollate in ('C', 'POSIX')
                                   and coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') = 'c'
                              from pg_database d where d.datname = current_database())),
                        false)
               from pg_attribute a left join pg_collation co on co.oid = a.attcollation
              where a.attrelid = $1 and a.attname = any($2) and a.attnum > 0 and not a.attisdropped",
            &[&found.oid, &names],
        )
        .await
        .map_err(conn.err("read the key's column types"))?;
    let mut out = Vec::new();
    for name in names {
        let Some(r) = rows.iter().find(|r| r.get::<_, String>(0) == *name) else {
            return Ok(None);
        };
        out.push(KeyColumn {
            name: name.clone(),
            type_sql: r.get(1),
            collate_c: r.get(2),
        });
    }
    Ok(Some(out))
}

/// The source's shape of `name`, or `None` when it vanished meanwhile.
///
/// # Errors
/// [`PgError`].
pub async fn source_shape(
    src: &Connected,
    name: &QualifiedName,
    route: Route,
) -> Result<Option<Shape>, PgError> {
    let Some(found) = find(src, name).await? else {
        return Ok(None);
    };
    let (key_kind, names) = key_of(src, &found).await?;
    let key = key_columns(src, &found, &names).await?.unwrap_or_default();
    let key_kind = if key.is_empty() {
        KeyKind::None
    } else {
        key_kind
    };
    Ok(Some(Shape {
        name: name.clone(),
        source: SideTable {
            qualified: qualified(&name.schema, &name.name),
            only: found.relkind == 'r',
            // Only the columns the task synchronizes, and only the rows its
            // filter lets through.
            columns: found
                .columns
                .iter()
                .filter(|c| route.selects_column(c))
                .cloned()
                .collect(),
            key,
            filter: route.filter.clone(),
        },
        key_kind,
        route,
    }))
}

/// How the destination's table differs in shape from the source's, when it
/// cannot be compared row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeProblem {
    /// No such table on the destination.
    Missing,
    /// Columns of the source absent on the destination.
    MissingColumns(Vec<String>),
}

/// The destination's side of `shape`: the same columns (by name, in the
/// source's order) and key, with the destination's own types and collations.
///
/// # Errors
/// [`PgError`].
pub async fn destination_side(
    dst: &Connected,
    shape: &Shape,
) -> Result<Result<SideTable, ShapeProblem>, PgError> {
    let target = &shape.route.target;
    let Some(found) = find(dst, target).await? else {
        return Ok(Err(ShapeProblem::Missing));
    };
    // The destination's names of the compared columns, in the source's order.
    let mapped = |c: &String| shape.route.target_column(c).unwrap_or_else(|| c.clone());
    let columns: Vec<String> = shape.source.columns.iter().map(mapped).collect();
    let missing: Vec<String> = columns
        .iter()
        .filter(|c| !found.columns.contains(c))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Ok(Err(ShapeProblem::MissingColumns(missing)));
    }
    let names: Vec<String> = shape.key_names().iter().map(mapped).collect();
    let Some(key) = key_columns(dst, &found, &names).await? else {
        return Ok(Err(ShapeProblem::MissingColumns(names)));
    };
    Ok(Ok(SideTable {
        qualified: qualified(&target.schema, &target.name),
        only: found.relkind == 'r',
        columns,
        key,
        filter: None,
    }))
}
