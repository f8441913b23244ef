//! The destination schema, generated from the source catalogs.
//!
//! `pg_dump` cannot be used (it refuses servers newer than itself), so the
//! DDL is rebuilt here from the catalogs, leaning on the server's own
//! deparsers (`pg_get_constraintdef`, `pg_get_indexdef`, `pg_get_triggerdef`,
//! `pg_get_viewdef`, `pg_get_functiondef`, `pg_get_ruledef`,
//! `pg_get_partkeydef`, `pg_get_expr`, `format_type`).
//!
//! Invariants:
//! - **Qualified text.** The catalogs are read with `search_path = ''`, so
//!   every name inside deparsed text is schema-qualified and the statements
//!   mean the same thing whatever the destination's `search_path` is. Dates,
//!   intervals and floats are deparsed with `DateStyle = ISO, YMD`,
//!   `IntervalStyle = postgres` and `extra_float_digits = 3`, which every
//!   server reads back unambiguously. The caller's settings are restored.
//! - **Order.** `pre_data` creates schemas, extensions, collations, types,
//!   sequences, functions, aggregates, operators, operator families and
//!   classes, casts, text search objects, tables, views and materialized
//!   views in `pg_depend` order (a topological sort, ties broken by kind and
//!   name); a function returning a table's row type comes after the table,
//!   a view after the views it reads, an operator class before the range
//!   type or index using it, a text search configuration before the
//!   generated column naming it. A column default that calls a
//!   function whose SQL-standard body reads the table (a cycle) is set by
//!   `alter column … set default` once the function exists; other cycles
//!   are reported in the warnings. `post_data` adds what would slow the
//!   copy or could reject its rows: keys, indexes, foreign keys, triggers,
//!   rules, policies, NOT VALID checks, then refreshes populated
//!   materialized views and sets sequences.
//! - **Partitions.** A partitioned table is created with its partitions
//!   (`PARTITION OF … FOR VALUES …`); its keys and indexes are created on the
//!   parent alone (`ONLY`), then on each partition under the source's name,
//!   then attached, so every index keeps its name. Foreign keys and triggers
//!   of a partitioned table are created once, on the parent; the server
//!   clones them.
//! - **Ownership of sequences.** Identity sequences are created by their
//!   column (`generated … as identity (sequence name …)`); other sequences
//!   by `create sequence` and, when owned, `alter sequence … owned by`.
//! - **Extensions.** Objects that belong to an extension are never created
//!   one by one: `create extension if not exists` covers them.
//! - **Snapshot.** Everything is read on the caller's session, so calling
//!   [`generate`] inside the transaction that imported the copy's snapshot
//!   gives the schema as of that snapshot. Sequence values are not
//!   transactional: `setval` uses the value read at that moment, which is
//!   at least the value any copied row was given.
//!
//! Sources from PostgreSQL 12 on are meant to work (the queries need
//! `attgenerated`, `prokind` and `conparentid`); 15 and 18 are tested, and
//! 15 → 18. The statements run on a destination of the same or a newer
//! major version. PostgreSQL 18's named NOT NULL constraints keep their
//! names.
//!
//! Operators, operator families and classes, casts and text search objects
//! follow the rules documented in `objects.rs` (a cast is taken with its
//! types or function; an operator brings its commutator and negator).
//!
//! Not created: owners and grants, tablespaces, security labels, foreign
//! tables and servers, user-defined base types, statistics objects, event
//! triggers, publications and subscriptions, and range types' canonical
//! functions. [`SchemaScript::warnings`] names the foreign tables, base
//! types and canonical functions met, and every object left out because it
//! needs an unselected table. Policies name their roles, which must exist
//! on the destination.

mod catalog;
mod ddl;
mod graph;
mod objects;
mod select;

use tokio_postgres::Client;

use crate::model::{ObjectSelection, QualifiedName, glob_matches};

/// What to take from the source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaSelection {
    /// Whole schemas, with every object in them (functions, types,
    /// sequences, views… not only tables).
    pub schemas: Vec<String>,
    /// Single tables (or views), with what they need: their types,
    /// sequences, indexes, constraints, triggers and trigger functions, and
    /// the partitions of a partitioned table.
    pub tables: Vec<QualifiedName>,
    /// Tables to leave out even when their schema is selected (the `dts_*`
    /// helper tables), together with their indexes, triggers and owned
    /// sequences. The name may be a glob (`*` stands for any run of
    /// characters, as in `exclude_tables`); functions whose name matches are
    /// left out of a whole-schema selection too (pgsync's own `dts_*`
    /// helpers), unless a selected object needs them.
    pub exclude: Vec<QualifiedName>,
}

impl SchemaSelection {
    /// The selection of a task: the schemas of its `schema` blocks (minus
    /// their `exclude_tables`), the tables of its `table` blocks, and never
    /// pgsync's own `public.dts_*` helpers.
    ///
    /// `resolved` is the task's tables as found on the source (see
    /// [`crate::pg::precheck::resolve_tables`]); a `table` block is taken
    /// only when its table is among them.
    pub fn from_objects(
        objects: &[ObjectSelection],
        resolved: &[QualifiedName],
    ) -> SchemaSelection {
        let mut selection = SchemaSelection::default();
        for object in objects {
            match object {
                ObjectSelection::Schema {
                    name,
                    exclude_tables,
                    ..
                } => {
                    if !selection.schemas.contains(name) {
                        selection.schemas.push(name.clone());
                    }
                    for glob in exclude_tables {
                        selection
                            .exclude
                            .push(QualifiedName::new(name.clone(), glob.clone()));
                    }
                }
                ObjectSelection::Table { schema, name, .. } => {
                    let table = QualifiedName::new(schema.clone(), name.clone());
                    if resolved.contains(&table) && !selection.tables.contains(&table) {
                        selection.tables.push(table);
                    }
                }
            }
        }
        selection
            .exclude
            .push(QualifiedName::new(crate::sql::helpers::SCHEMA, "dts_*"));
        selection
    }

    /// Whether `schema.name` matches an `exclude` entry.
    pub fn excludes(&self, schema: &str, name: &str) -> bool {
        self.exclude
            .iter()
            .any(|e| e.schema == schema && glob_matches(&e.name, name))
    }
}

/// The statements that recreate the selected schema on the destination.
///
/// Run `pre_data` in order on one session (its first statement is a `set`),
/// copy the rows of `tables`, then run `post_data` in order.
#[derive(Debug, Clone, Default)]
pub struct SchemaScript {
    /// Run before the data copy, in order: `set check_function_bodies =
    /// off`, schemas, extensions, collations, types (enum, domain with its
    /// CHECKs, composite, range), sequences, functions and procedures,
    /// aggregates, operators, operator families (with their loose members)
    /// and classes, casts, text search parsers, templates, dictionaries and
    /// configurations (with their mappings), tables (columns with their types, collations, defaults,
    /// NOT NULL, identity, generated expressions, valid CHECKs; partitioned
    /// parents before their partitions; `owned by` of serial sequences;
    /// row-level security switches), views and materialized views (`with no
    /// data`), all in dependency order; then comments on those objects.
    pub pre_data: Vec<Statement>,
    /// Run after the copy: NOT VALID CHECKs, primary keys, unique and
    /// exclusion constraints and secondary indexes (partitioned ones attached
    /// to their parents), `cluster on`, replica identities, foreign keys,
    /// triggers with their ENABLE state, rules, policies, `refresh
    /// materialized view` for populated ones, `setval` of every sequence to
    /// the source's current value, then comments on those objects.
    pub post_data: Vec<Statement>,
    /// Tables whose rows must be copied: ordinary tables and leaf
    /// partitions (not partitioned parents, not views), sorted by schema and
    /// name. For an inheritance parent, copy its own rows only
    /// (`copy (select … from only …)`): the children are listed themselves.
    pub tables: Vec<TableInfo>,
    /// Objects left out or altered, one sentence each (a foreign key to a
    /// table that is not selected, a view over one, an invalid index…).
    pub warnings: Vec<String>,
}

/// One DDL statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// What it creates: `"schema"`, `"extension"`, `"table"`, `"index"`,
    /// `"foreign key"`, `"setval"`, `"comment"`…
    pub kind: &'static str,
    /// The object, `schema.name` unquoted, for messages.
    pub name: String,
    /// The SQL, one statement, no trailing semicolon.
    pub sql: String,
}

/// A table whose rows are copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// The table.
    pub name: QualifiedName,
    /// Columns `COPY` moves: not dropped, not generated, in `attnum` order.
    pub columns: Vec<String>,
    /// Whether it has a primary key or a valid, immediate, non-partial
    /// unique index over NOT NULL columns.
    pub has_key: bool,
    /// `relreplident`: `d` default, `f` full, `n` nothing, `i` index.
    pub replica_identity: char,
    /// `pg_table_size` on the source, in bytes (TOAST included).
    pub estimated_bytes: i64,
}

/// Settings pinned while reading the catalogs (see the module docs).
const PINNED: [(&str, &str); 4] = [
    ("search_path", ""),
    ("datestyle", "ISO, YMD"),
    ("intervalstyle", "postgres"),
    ("extra_float_digits", "3"),
];

/// Reads the source catalogs through `client` and returns the statements
/// that recreate `selection` on a destination.
///
/// The session's `search_path`, `DateStyle`, `IntervalStyle` and
/// `extra_float_digits` are changed while it runs and restored afterwards.
///
/// # Errors
/// The driver's error when a catalog query fails (a source older than
/// PostgreSQL 12 fails on a missing catalog column).
pub async fn generate(
    client: &Client,
    selection: &SchemaSelection,
) -> Result<SchemaScript, tokio_postgres::Error> {
    let mut saved = Vec::with_capacity(PINNED.len());
    for (name, _) in PINNED {
        let row = client
            .query_one("select current_setting($1)", &[&name])
            .await?;
        saved.push((name, row.get::<_, String>(0)));
    }
    for (name, value) in PINNED {
        client
            .execute("select set_config($1, $2, false)", &[&name, &value])
            .await?;
    }
    let result = build(client, selection).await;
    let mut restored = Ok(());
    for (name, value) in &saved {
        if let Err(err) = client
            .execute("select set_config($1, $2, false)", &[name, value])
            .await
        {
            restored = Err(err);
            break;
        }
    }
    let script = result?;
    restored?;
    Ok(script)
}

async fn build(
    client: &Client,
    selection: &SchemaSelection,
) -> Result<SchemaScript, tokio_postgres::Error> {
    let cat = catalog::load(client).await?;
    let selected = select::select(&cat, selection);
    let empty = std::collections::HashMap::new();
    let names = ddl::Renderer::new(&cat, &selected, &empty).setval_sequence_names();
    let values = catalog::sequence_values(client, &names).await?;
    let mut renderer = ddl::Renderer::new(&cat, &selected, &values);
    let pre_data = renderer.pre_data();
    let post_data = renderer.post_data();
    let tables = renderer.tables();
    let mut warnings = selected.warnings.clone();
    warnings.append(&mut renderer.warnings);
    for (oid, name) in &names {
        if !values.contains_key(oid) {
            warnings.push(format!(
                "sequence {name}: the source role may not read its position (no SELECT on it), so the destination's sequence keeps its start value"
            ));
        }
    }
    Ok(SchemaScript {
        pre_data,
        post_data,
        tables,
        warnings,
    })
}
