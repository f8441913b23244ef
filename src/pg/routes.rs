//! Prechecks of a task's routes (see [`crate::model::Route`]): the columns
//! a `table` block lists exist and keep the key, `where` filters are valid
//! on the source, and no two source tables land in one destination table.

use std::collections::BTreeMap;

use super::precheck::{Check, SourceTable};
use super::{Connected, PgError};
use crate::model::{QualifiedName, Route, TaskSpec};
use crate::sql::{ident, qualified};

/// A source column as the route checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceColumn {
    /// `attname`.
    pub name: String,
    /// Part of the key the stream identifies rows by (primary key, or the
    /// replica identity index).
    pub key: bool,
    /// A stored generated column.
    pub generated: bool,
}

/// The columns of `table` on the source, in `attnum` order.
///
/// # Errors
/// [`PgError`].
pub async fn source_columns(
    src: &Connected,
    table: &QualifiedName,
) -> Result<Vec<SourceColumn>, PgError> {
    let rows = src
        .client
        .query(
            "select a.attname::text, a.attgenerated <> '',
                    exists (select 1 from pg_index i
                             where i.indrelid = a.attrelid and a.attnum = any (i.indkey)
                               and ((c.relreplident in ('d', 'f') and i.indisprimary)
                                    or (c.relreplident = 'i' and i.indisreplident)))
               from pg_attribute a join pg_class c on c.oid = a.attrelid
              where a.attrelid = to_regclass(format('%I.%I', $1::text, $2::text))
                and a.attnum > 0 and not a.attisdropped
              order by a.attnum",
            &[&table.schema, &table.name],
        )
        .await
        .map_err(src.err("list source columns"))?;
    Ok(rows
        .iter()
        .map(|r| SourceColumn {
            name: r.get(0),
            generated: r.get(1),
            key: r.get(2),
        })
        .collect())
}

/// Checks a `where` filter against the source table, in a transaction that
/// is rolled back: a temporary table shaped like the source table (same
/// name, so `table.column` references work) takes the filter as a CHECK
/// constraint, which reports syntax errors, unknown columns, subqueries,
/// aggregates and window functions; then as an index expression, which
/// PostgreSQL accepts only when every function in it is IMMUTABLE.
///
/// Why immutable: the filter is evaluated by the snapshot's `COPY` on the
/// source and again, for each change, while streaming; a filter whose
/// answer depends on the time, the session or other tables would sort the
/// same row differently in the two places.
///
/// The statements go through the extended query protocol, which takes one
/// statement at a time, so text in the filter can never add a statement;
/// a filter whose parentheses do not balance is refused before that.
///
/// Returns `Ok(Err(reason))` for an invalid filter, with PostgreSQL's words.
///
/// # Errors
/// [`PgError`] when the session itself fails.
pub async fn validate_filter(
    src: &Connected,
    table: &QualifiedName,
    filter: &str,
) -> Result<Result<(), String>, PgError> {
    if !balanced(filter) {
        return Ok(Err(
            "its parentheses or quotes do not balance; a filter is one boolean expression".into(),
        ));
    }
    src.client
        .batch_execute("begin")
        .await
        .map_err(src.err("begin filter check"))?;
    let temp = format!("pg_temp.{}", ident(&table.name));
    let steps = [
        format!(
            "create temporary table {temp} (like {}) on commit drop",
            qualified(&table.schema, &table.name)
        ),
        format!("alter table {temp} add constraint dts_filter check (({filter}))"),
        format!("create index on {temp} ((({filter})))"),
    ];
    let mut outcome = Ok(());
    for (i, sql) in steps.iter().enumerate() {
        // The extended protocol runs exactly one statement: a filter that
        // tries to close the expression and add statements (`true)); drop
        // table x; select ((true`) is refused by the server, never run.
        if let Err(e) = src.client.execute(sql.as_str(), &[]).await {
            let reason = e
                .as_db_error()
                .map(|d| d.message().to_owned())
                .unwrap_or_else(|| e.to_string());
            outcome = Err(match i {
                0 => format!("cannot check it ({reason})"),
                2 if reason.contains("IMMUTABLE") => format!(
                    "{reason}: a filter may call only immutable functions, because it is \
                     evaluated once by the copy and again for every change"
                ),
                1 if reason.contains("subquer") => format!(
                    "{reason}: a filter sees the row alone (other tables change independently)"
                ),
                _ => reason,
            });
            break;
        }
    }
    let _ = src.client.batch_execute("rollback").await;
    Ok(outcome)
}

/// Whether `expr` closes every parenthesis, quote and quoted identifier it
/// opens, and never closes one it did not open (outside quotes): the
/// filter is pasted into `where (…)` and `check ((…))`, so it must be one
/// expression that stays inside them.
fn balanced(expr: &str) -> bool {
    let mut depth = 0i32;
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let quote = c;
                loop {
                    match chars.next() {
                        None => return false,
                        Some(q) if q == quote => {
                            if chars.peek() == Some(&quote) {
                                chars.next();
                            } else {
                                break;
                            }
                        }
                        Some(_) => {}
                    }
                }
            }
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            ';' => return false,
            '-' if chars.peek() == Some(&'-') => return false,
            '/' if chars.peek() == Some(&'*') => return false,
            '$' => return false,
            _ => {}
        }
    }
    depth == 0
}

/// The route checks of `spec` over its resolved `tables`.
///
/// # Errors
/// [`PgError`] when a catalog query fails.
pub async fn route_checks(
    src: &Connected,
    spec: &TaskSpec,
    tables: &[SourceTable],
) -> Result<Vec<Check>, PgError> {
    let mut checks = Vec::new();
    let mut targets: BTreeMap<QualifiedName, QualifiedName> = BTreeMap::new();
    let mut collisions = Vec::new();
    let mut column_problems = Vec::new();
    let mut filter_problems = Vec::new();
    let mut filters = 0;
    for t in tables {
        let Some(route) = spec.route(&t.name.schema, &t.name.name) else {
            continue;
        };
        if let Some(first) = targets.insert(route.target.clone(), t.name.clone()) {
            collisions.push(format!(
                "{first} and {} both land in {}",
                t.name, route.target
            ));
        }
        if route.is_plain() {
            continue;
        }
        let reshaped = route.columns.is_some() || !route.column_map.is_empty();
        if (t.relkind == 'p' || t.partition) && (reshaped || route.filter.is_some()) {
            column_problems.push(format!(
                "{}: `columns`, `column_map` and `where` are not supported on partitioned \
                 tables and partitions yet",
                t.name
            ));
            continue;
        }
        if reshaped {
            column_problems.extend(check_columns(src, spec, t, &route).await?);
        }
        if let Some(filter) = &route.filter {
            filters += 1;
            if let Err(reason) = validate_filter(src, &t.name, filter).await? {
                filter_problems.push(format!("{}: `where = {filter:?}`: {reason}", t.name));
            }
        }
    }
    checks.push(if collisions.is_empty() {
        Check::pass(
            "destination.names",
            "every selected table has a destination name of its own",
        )
    } else {
        Check::fail(
            "destination.names",
            format!(
                "renames send several source tables into one destination table: {}",
                collisions.join("; ")
            ),
            "give each table its own `rename` or `mapping`; to merge sources into one table, \
             use one task per source (many-to-one)",
        )
    });
    if column_problems.is_empty() {
        checks.push(Check::pass(
            "source.columns",
            "the columns the task selects exist and include the key",
        ));
    } else {
        checks.push(Check::fail(
            "source.columns",
            column_problems.join("; "),
            "fix `columns` and `column_map` in the table blocks named",
        ));
    }
    if filters > 0 {
        checks.push(if filter_problems.is_empty() {
            Check::pass(
                "source.filters",
                format!(
                    "{} valid on the source",
                    crate::model::counted(filters, "`where` filter")
                ),
            )
        } else {
            Check::fail(
                "source.filters",
                filter_problems.join("; "),
                "fix the `where` expressions named: a boolean SQL expression over the \
                 table's own columns, with immutable functions only",
            )
        });
    }
    Ok(checks)
}

async fn check_columns(
    src: &Connected,
    spec: &TaskSpec,
    t: &SourceTable,
    route: &Route,
) -> Result<Vec<String>, PgError> {
    let columns = source_columns(src, &t.name).await?;
    let mut problems = Vec::new();
    let listed = route
        .columns
        .iter()
        .flatten()
        .chain(route.column_map.keys());
    for c in listed {
        if !columns.iter().any(|s| &s.name == c) {
            problems.push(format!("{} has no column {c:?}", t.name));
        }
    }
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for c in &columns {
        if let Some(target) = route.target_column(&c.name)
            && let Some(first) = seen.insert(target.clone(), c.name.as_str())
        {
            problems.push(format!(
                "{}: columns {first} and {} would both be named {target:?} on the destination",
                t.name, c.name
            ));
        }
    }
    if spec.sync_types.incremental {
        let dropped_key: Vec<&str> = columns
            .iter()
            .filter(|c| c.key && !route.selects_column(&c.name))
            .map(|c| c.name.as_str())
            .collect();
        if !dropped_key.is_empty() {
            problems.push(format!(
                "{}: `columns` leaves out key column(s) {}, which the stream needs to find rows",
                t.name,
                dropped_key.join(", ")
            ));
        }
    }
    problems.dedup();
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::balanced;

    #[test]
    fn a_filter_must_stay_one_expression() {
        assert!(balanced("amount > 0"));
        assert!(balanced(
            "note = 'it''s (fine)' and \"Odd)Name\" is not null"
        ));
        assert!(balanced("(a > 1) or (b < 2)"));
        assert!(!balanced(
            "true)); commit; drop table victim; select ((true"
        ));
        assert!(!balanced("true) or (true"));
        assert!(!balanced("a > 0; drop table t"));
        assert!(!balanced("a > 0 -- comment"));
        assert!(!balanced("a > $$x$$"));
        assert!(!balanced("'unterminated"));
    }
}
