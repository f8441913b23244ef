//! Whole-table digests for `pgsync demo`: row count and an md5 over every
//! row's text form, in sorted order. (`pgsync verify`, in `crate::verify`,
//! compares large tables by key ranges.)

use super::{Connected, PgError};
use crate::model::QualifiedName;
use crate::sql::qualified;

/// `(rows, md5 of the sorted row texts)` of `table`.
///
/// # Errors
/// [`PgError`].
pub async fn table_digest(
    conn: &Connected,
    table: &QualifiedName,
) -> Result<(i64, String), PgError> {
    let sql = format!(
        "select count(*), md5(coalesce(string_agg(r, E'\\n' order by r), ''))
           from (select t::text as r from {} t) s",
        qualified(&table.schema, &table.name)
    );
    let row = conn
        .client
        .query_one(&sql, &[])
        .await
        .map_err(conn.err(format!("digest {table}")))?;
    Ok((row.get(0), row.get(1)))
}

/// Ordinary tables (and leaf partitions) of `schema`, sorted, leaving out
/// pgsync's `dts_*` helper tables.
///
/// # Errors
/// [`PgError`].
pub async fn tables_of(conn: &Connected, schema: &str) -> Result<Vec<QualifiedName>, PgError> {
    let rows = conn
        .client
        .query(
            "select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where n.nspname = $1 and c.relkind = 'r' and c.relname not like 'dts\\_%'
              order by 1",
            &[&schema],
        )
        .await
        .map_err(conn.err("list tables"))?;
    Ok(rows
        .iter()
        .map(|r| QualifiedName::new(schema, r.get::<_, String>(0)))
        .collect())
}
