//! Renames and column selections on a destination that schema sync creates.
//!
//! Schema sync creates every object under its source name, with every
//! column, as the catalogs describe it (deparsed text is full of qualified
//! names that cannot be rewritten safely). The copy writes into those
//! staging names, and at the end of the post-data transaction the tables
//! are reshaped in place:
//! 1. columns the task does not select are dropped (`cascade`: an index,
//!    constraint or view over such a column cannot exist without it); their
//!    NOT NULL constraints were dropped before the copy, which leaves them
//!    empty;
//! 2. columns are renamed (through temporary names, so that swaps work);
//! 3. tables are renamed and moved to their destination schema; PostgreSQL
//!    carries their indexes, constraints, owned sequences and row types
//!    along, and every view, default and foreign key refers to them by OID;
//! 4. in a renamed schema, the other objects pgsync created there (views,
//!    routines, types, sequences) move too (`alter … set schema`).
//!
//! All of it commits with the post-data statements, or not at all.

use super::recorder::Recorder;
use crate::model::{QualifiedName, TaskSpec};
use crate::pg::schema::{Statement, TableInfo};
use crate::pg::{Connected, PgError};
use crate::snapshot::CopyTable;
use crate::sql::{ident, qualified};
use crate::state::CreatedObject;

/// The copy plan of `leaf` tables: into the staging (source) names when
/// schema sync created them in this task (`staged`), else into the
/// destination names the task's routes give.
/// A table whose destination name already holds a table that pgsync did
/// not create (`conflicting_tables = "ignore"`, several sources into one
/// table) is copied straight into it, never staged.
pub(super) fn copy_tables(
    spec: &TaskSpec,
    leaf: &[QualifiedName],
    staged: bool,
    existing_targets: &[QualifiedName],
) -> Vec<CopyTable> {
    leaf.iter()
        .map(|t| match spec.route(&t.schema, &t.name) {
            Some(route) => {
                let staged = staged && !existing_targets.contains(&route.target);
                CopyTable { route, staged }
            }
            None => CopyTable::same(t.clone()),
        })
        .collect()
}

/// The destination name a copied table has before the reshape.
pub(super) fn copied_name(spec: &TaskSpec, table: &QualifiedName, staged: bool) -> QualifiedName {
    if staged {
        return table.clone();
    }
    spec.route(&table.schema, &table.name)
        .map_or_else(|| table.clone(), |r| r.target)
}

/// Pre-data additions: columns left out by `columns` lose NOT NULL, so
/// that the copy, which does not fill them, is accepted.
pub(super) fn before_copy(spec: &TaskSpec, tables: &[TableInfo]) -> Vec<Statement> {
    let mut out = Vec::new();
    for t in tables {
        let Some(route) = spec.route(&t.name.schema, &t.name.name) else {
            continue;
        };
        if route.columns.is_none() {
            continue;
        }
        let table = qualified(&t.name.schema, &t.name.name);
        let drops: Vec<String> = t
            .columns
            .iter()
            .filter(|c| !route.selects_column(c))
            .map(|c| format!("alter column {} drop not null", ident(c)))
            .collect();
        if !drops.is_empty() {
            out.push(Statement {
                kind: "table",
                name: t.name.to_string(),
                sql: format!("alter table {table} {}", drops.join(", ")),
            });
        }
    }
    out
}

/// [`after_post_data`] for `tables` of `task`: reads from the source the
/// columns of each table whose route reshapes it, and from the task's
/// record the tables it created.
///
/// # Errors
/// [`PgError`] reading the columns.
pub(super) async fn after_post_data_of(
    spec: &TaskSpec,
    src: &Connected,
    tables: &[QualifiedName],
    created: &[CreatedObject],
    existing_targets: &[QualifiedName],
    recorder: &Recorder,
    task: &str,
) -> Result<Vec<Statement>, PgError> {
    let mut shaped = Vec::new();
    for t in tables {
        if spec.route(&t.schema, &t.name).is_some_and(|r| r.reshapes()) {
            let columns = crate::pg::routes::source_columns(src, t).await?;
            shaped.push((t.clone(), columns.into_iter().map(|c| c.name).collect()));
        }
    }
    let created_tables = recorder
        .task(task)
        .map(|r| r.created_tables)
        .unwrap_or_default();
    Ok(after_post_data(
        spec,
        &shaped,
        created,
        existing_targets,
        &created_tables,
    ))
}

/// The reshape statements (see the module docs). `tables` are every
/// selected table (partitioned parents included) with their columns as
/// the source has them; `all_columns` lists generated columns too.
pub(super) fn after_post_data(
    spec: &TaskSpec,
    tables: &[(QualifiedName, Vec<String>)],
    created: &[CreatedObject],
    existing_targets: &[QualifiedName],
    created_tables: &[String],
) -> Vec<Statement> {
    let mut out = Vec::new();
    let mut schemas_needed: Vec<String> = Vec::new();
    for (name, columns) in tables {
        let Some(route) = spec.route(&name.schema, &name.name) else {
            continue;
        };
        if !route.reshapes() {
            continue;
        }
        let mut table = qualified(&name.schema, &name.name);
        if existing_targets.contains(&route.target) {
            // The rows went straight into the existing table; the staging
            // one pgsync made goes.
            if created_tables.contains(&name.to_string()) {
                out.push(Statement {
                    kind: "table",
                    name: name.to_string(),
                    sql: format!("drop table if exists {table} cascade"),
                });
            }
            continue;
        }
        let push = |out: &mut Vec<Statement>, sql: String| {
            out.push(Statement {
                kind: "table",
                name: name.to_string(),
                sql,
            })
        };
        let dropped: Vec<String> = columns
            .iter()
            .filter(|c| !route.selects_column(c))
            .map(|c| format!("drop column {} cascade", ident(c)))
            .collect();
        if !dropped.is_empty() {
            push(
                &mut out,
                format!("alter table {table} {}", dropped.join(", ")),
            );
        }
        let renamed: Vec<(String, String)> = columns
            .iter()
            .filter_map(|c| route.target_column(c).map(|t| (c.clone(), t)))
            .filter(|(c, t)| c != t)
            .collect();
        for sql in crate::sql::rename_columns(&table, &renamed) {
            push(&mut out, sql);
        }
        if route.target.name != name.name {
            push(
                &mut out,
                format!(
                    "alter table {table} rename to {}",
                    ident(&route.target.name)
                ),
            );
            table = qualified(&name.schema, &route.target.name);
        }
        if route.target.schema != name.schema {
            if !schemas_needed.contains(&route.target.schema) {
                schemas_needed.push(route.target.schema.clone());
            }
            push(
                &mut out,
                format!(
                    "alter table {table} set schema {}",
                    ident(&route.target.schema)
                ),
            );
        }
    }
    // Other objects of renamed schemas.
    for o in created {
        let Some(schema) = identity_schema(&o.identity) else {
            continue;
        };
        let target = spec.target_schema(&schema);
        if target == schema {
            continue;
        }
        let keyword = match o.kind.as_str() {
            "view" | "materialized view" | "function" | "procedure" | "aggregate" | "type"
            | "domain" | "collation" => o.kind.as_str(),
            // Owned sequences move with their table; a free one is moved
            // by the statement below (a no-op for owned ones is not
            // possible, so they are filtered in SQL).
            "sequence" => {
                out.push(Statement {
                    kind: "sequence",
                    name: o.identity.clone(),
                    sql: format!(
                        "do $dts$ begin if not exists (select 1 from pg_depend \
                         where classid = 'pg_class'::regclass and objid = {}::regclass \
                         and deptype in ('a', 'i')) then execute {}; end if; end $dts$",
                        crate::sql::literal(&o.identity),
                        crate::sql::literal(&format!(
                            "alter sequence {} set schema {}",
                            o.identity,
                            ident(&target)
                        ))
                    ),
                });
                if !schemas_needed.contains(&target) {
                    schemas_needed.push(target);
                }
                continue;
            }
            _ => continue,
        };
        if !schemas_needed.contains(&target) {
            schemas_needed.push(target.clone());
        }
        out.push(Statement {
            kind: "schema object",
            name: o.identity.clone(),
            sql: format!(
                "alter {keyword} {} set schema {}",
                o.identity,
                ident(&target)
            ),
        });
    }
    // A staging schema pgsync created and emptied goes.
    for o in created.iter().filter(|o| o.kind == "schema") {
        let schema = o.identity.trim_matches('"').replace("\"\"", "\"");
        if spec.target_schema(&schema) == schema {
            continue;
        }
        out.push(Statement {
            kind: "schema",
            name: schema.clone(),
            sql: format!(
                "do $dts$ begin if not exists (select 1 from pg_depend \
                 where refclassid = 'pg_namespace'::regclass and refobjid = {}::regnamespace) \
                 then execute {}; end if; end $dts$",
                crate::sql::literal(&o.identity),
                crate::sql::literal(&format!("drop schema {}", o.identity))
            ),
        });
    }
    let mut all: Vec<Statement> = schemas_needed
        .iter()
        .map(|s| Statement {
            kind: "schema",
            name: s.clone(),
            sql: format!("create schema if not exists {}", ident(s)),
        })
        .collect();
    all.extend(out);
    all
}

/// Foreign keys from or to a table with a `where` filter are created `NOT
/// VALID`: the filter may leave out a row another row refers to, so the
/// destination cannot prove them (the stream runs with
/// `session_replication_role = replica`, which does not check them either).
/// Returns the constraints so relaxed, for a warning.
pub(super) fn relax_foreign_keys(
    spec: &TaskSpec,
    tables: &[QualifiedName],
    statements: &mut [Statement],
) -> Vec<String> {
    let filtered: Vec<&QualifiedName> = tables
        .iter()
        .filter(|t| {
            spec.route(&t.schema, &t.name)
                .is_some_and(|r| r.filter.is_some())
        })
        .collect();
    if filtered.is_empty() {
        return Vec::new();
    }
    let mut relaxed = Vec::new();
    for st in statements.iter_mut().filter(|s| s.kind == "foreign key") {
        let hit = filtered.iter().any(|t| {
            let display = t.to_string();
            let quoted = format!(
                "{}.{}",
                crate::sql::ident_as_server_prints(&t.schema),
                crate::sql::ident_as_server_prints(&t.name)
            );
            st.name.starts_with(&format!("{display}."))
                || st.sql.contains(&format!("REFERENCES {quoted}("))
                || st
                    .sql
                    .contains(&format!("REFERENCES {}(", qualified(&t.schema, &t.name)))
        });
        if hit && !st.sql.to_lowercase().ends_with("not valid") {
            st.sql.push_str(" not valid");
            relaxed.push(st.name.clone());
        }
    }
    relaxed
}

/// The schema of a `pg_identify_object()` identity (`"my schema".name`,
/// `public.f(integer)`), unquoted.
fn identity_schema(identity: &str) -> Option<String> {
    if let Some(rest) = identity.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    out.push('"');
                } else {
                    return (chars.next() == Some('.')).then_some(out);
                }
            } else {
                out.push(c);
            }
        }
        None
    } else {
        identity.split_once('.').map(|(s, _)| s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_give_their_schema() {
        assert_eq!(
            identity_schema("public.f(integer)").as_deref(),
            Some("public")
        );
        assert_eq!(identity_schema("\"My \"\"S\".t").as_deref(), Some("My \"S"));
        assert_eq!(identity_schema("plpgsql"), None);
    }
}
