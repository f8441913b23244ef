//! Prechecks (the DTS precheck items): each is named, reported as pass,
//! warn or fail, and a failure carries the fix.

use serde::Serialize;

use super::{Connected, PgError};
use crate::model::{ObjectSelection, QualifiedName};

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Fine.
    Pass,
    /// Proceeds, but read the detail.
    Warn,
    /// Blocks apply.
    Fail,
}

/// One precheck item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable name, e.g. `source.wal_level`.
    pub name: &'static str,
    /// Result.
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
    /// How to fix it, for warn and fail.
    pub fix: Option<String>,
}

impl Check {
    pub(crate) fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: CheckStatus::Pass,
            detail: detail.into(),
            fix: None,
        }
    }
    pub(crate) fn fail(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name,
            status: CheckStatus::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    pub(crate) fn warn(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name,
            status: CheckStatus::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// A source table the selection takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    /// Its name.
    pub name: QualifiedName,
    /// `pg_class.oid` on the source. Privilege and publication checks go
    /// by OID: looking a name up needs USAGE on its schema, which is what
    /// some of them report missing.
    pub oid: u32,
    /// Has a key the stream can identify rows by: a non-deferrable primary
    /// key (identity DEFAULT or FULL) or the REPLICA IDENTITY USING INDEX index.
    pub has_key: bool,
    /// `pg_class.relreplident`: `d` default, `f` full, `n` nothing, `i` index.
    pub replica_identity: char,
    /// `p` for a partitioned parent (holds no rows itself), `r` otherwise.
    pub relkind: char,
    /// A partition of a partitioned table (`pg_class.relispartition`).
    pub partition: bool,
}

/// Resolves the task's selection against the source catalogs: ordinary and
/// partitioned tables, leaving out pgsync's own `dts_*` helper tables.
/// Sorted by schema and name. A `table` block naming a missing table is
/// returned in the second list.
///
/// # Errors
/// [`PgError`] when the catalog query fails.
pub async fn resolve_tables(
    source: &Connected,
    objects: &[ObjectSelection],
) -> Result<(Vec<SourceTable>, Vec<QualifiedName>), PgError> {
    let rows = source
        .client
        .query(
            "select n.nspname, c.relname, c.relkind::text, c.relreplident::text,
                    exists (select 1 from pg_index i where i.indrelid = c.oid and i.indimmediate
                            and ((c.relreplident in ('d', 'f') and i.indisprimary)
                                 or (c.relreplident = 'i' and i.indisreplident))),
                    c.relispartition,
                    c.oid
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where c.relkind in ('r', 'p') and not c.relispartition is null
                and n.nspname not in ('pg_catalog', 'information_schema')
                and n.nspname not like 'pg\\_%'
                and not (n.nspname = 'public' and c.relname like 'dts\\_%')
              order by 1, 2",
            &[],
        )
        .await
        .map_err(source.err("list source tables"))?;
    let mut tables = Vec::new();
    for row in rows {
        let schema: String = row.get(0);
        let name: String = row.get(1);
        if !objects.iter().any(|o| o.selects(&schema, &name)) {
            continue;
        }
        let kind: String = row.get(2);
        let ri: String = row.get(3);
        tables.push(SourceTable {
            name: QualifiedName::new(schema, name),
            relkind: kind.chars().next().unwrap_or('r'),
            replica_identity: ri.chars().next().unwrap_or('d'),
            has_key: row.get(4),
            partition: row.get(5),
            oid: row.get(6),
        });
    }
    let missing = objects
        .iter()
        .filter_map(|o| match o {
            ObjectSelection::Table { schema, name, .. }
                if !tables
                    .iter()
                    .any(|t| &t.name.schema == schema && &t.name.name == name) =>
            {
                Some(QualifiedName::new(schema.clone(), name.clone()))
            }
            _ => None,
        })
        .collect();
    Ok((tables, missing))
}

/// What the source-side checks look at, besides the resolved tables.
#[derive(Debug, Clone, Copy)]
pub struct SourceCheckInput<'a> {
    /// Task name (pgsync's own publication is `dts_pub_<task>`).
    pub task: &'a str,
    /// The task's selection.
    pub objects: &'a [ObjectSelection],
    /// The task's `publication` attribute.
    pub publication: Option<&'a str>,
    /// New slots the task needs (0 when it already has one).
    pub slots_needed: i64,
    /// `sync_types` holds "incremental".
    pub incremental: bool,
    /// `sync_types` holds "schema" (sequence positions are set).
    pub schema: bool,
}

/// Source-side checks of a task.
///
/// # Errors
/// [`PgError`] when a catalog query fails (a failed *check* is a [`Check`]).
pub async fn source_checks(
    source: &Connected,
    tables: &[SourceTable],
    missing: &[QualifiedName],
    input: SourceCheckInput<'_>,
) -> Result<Vec<Check>, PgError> {
    let SourceCheckInput {
        slots_needed,
        incremental,
        ..
    } = input;
    let mut checks = Vec::new();
    let q = |sql: &'static str| {
        let client = &source.client;
        let err = source.err(format!("precheck query `{sql}`"));
        async move { client.query_one(sql, &[]).await.map_err(err) }
    };
    if incremental {
        let wal: String = q("select current_setting('wal_level')").await?.get(0);
        checks.push(if wal == "logical" {
            Check::pass("source.wal_level", "wal_level = logical")
        } else {
            Check::fail(
                "source.wal_level",
                format!("wal_level = {wal}; logical replication needs logical"),
                "set wal_level = logical in the source's postgresql.conf and restart it",
            )
        });
        let row = q("select current_setting('max_replication_slots')::int8,
                            (select count(*) from pg_replication_slots),
                            current_setting('max_wal_senders')::int8,
                            (select count(*) from pg_stat_replication)")
        .await?;
        let (max_slots, used_slots, max_senders, used_senders): (i64, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        checks.push(if used_slots + slots_needed <= max_slots {
            Check::pass(
                "source.replication_slots",
                format!("{used_slots} of {max_slots} slots in use, {slots_needed} needed"),
            )
        } else {
            Check::fail(
                "source.replication_slots",
                format!("{used_slots} of max_replication_slots = {max_slots} in use, {slots_needed} more needed"),
                format!("raise max_replication_slots to at least {} and restart the source, or drop unused slots", used_slots + slots_needed),
            )
        });
        checks.push(if used_senders < max_senders {
            Check::pass(
                "source.wal_senders",
                format!("{used_senders} of {max_senders} WAL senders in use"),
            )
        } else {
            Check::fail(
                "source.wal_senders",
                format!("all {max_senders} WAL senders (max_wal_senders) are in use"),
                format!(
                    "raise max_wal_senders to at least {} and restart the source",
                    used_senders + 1
                ),
            )
        });
        let row = q("select rolreplication or rolsuper, current_user::text from pg_roles where rolname = current_user").await?;
        let (can, role): (bool, String) = (row.get(0), row.get(1));
        checks.push(if can {
            Check::pass(
                "source.role_replication",
                format!("role {role} may replicate"),
            )
        } else {
            Check::fail(
                "source.role_replication",
                format!("role {role} has neither REPLICATION nor superuser"),
                format!(
                    "run `alter role {} replication;` on the source",
                    crate::sql::ident(&role)
                ),
            )
        });
        match input.publication {
            Some(name) => {
                let facts = inspect_publication(source, name, tables).await?;
                checks.extend(existing_publication_checks(name, facts.as_ref(), tables));
            }
            None => checks.push(own_publication_check(source, input.task, tables, &role).await?),
        }
        let helper_tables = input.publication.is_none() && can_create_helper_tables(source).await?;
        checks.push(heartbeat_check(
            helper_tables,
            input.publication.is_some(),
            server_version(source).await?,
            &role,
        ));
    }
    if incremental || input.schema {
        let role: String = q("select current_user::text").await?.get(0);
        checks.push(sequence_privilege_check(source, input.objects, &role).await?);
    }
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
        checks.push(Check::fail(
            "source.tables_exist",
            format!(
                "selected tables do not exist on the source: {}",
                names.join(", ")
            ),
            "correct the table blocks, or create the tables on the source",
        ));
    }
    if tables.is_empty() {
        checks.push(Check::fail(
            "source.tables_selected",
            "the selection matches no table on the source",
            "check the schema and table blocks of the task",
        ));
    }
    // Reading a table needs SELECT on it and USAGE on its schema.
    let rows = source
        .client
        .query(
            "select n.nspname::text, c.relname::text, has_table_privilege(c.oid, 'select'),
                    has_schema_privilege(n.oid, 'usage')
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where c.oid = any($1::oid[])
              order by 1, 2",
            &[&oids(tables)],
        )
        .await
        .map_err(source.err("check table privileges"))?;
    let mut unreadable = Vec::new();
    let mut no_usage: Vec<String> = Vec::new();
    for r in &rows {
        let name = QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1));
        if !r.get::<_, bool>(3) && !no_usage.contains(&name.schema) {
            no_usage.push(name.schema.clone());
        }
        if !r.get::<_, bool>(2) {
            unreadable.push(name);
        }
    }
    checks.push(if unreadable.is_empty() && no_usage.is_empty() {
        Check::pass(
            "source.select_privilege",
            format!("{} readable", crate::model::counted(tables.len(), "table")),
        )
    } else {
        let role: String = q("select current_user::text").await?.get(0);
        let r = crate::sql::ident(&role);
        let mut found = Vec::new();
        let mut grants = Vec::new();
        if !no_usage.is_empty() {
            found.push(format!("no USAGE on schema {}", no_usage.join(", ")));
            let quoted: Vec<String> = no_usage.iter().map(|s| crate::sql::ident(s)).collect();
            grants.push(format!(
                "grant usage on schema {} to {r};",
                quoted.join(", ")
            ));
        }
        if !unreadable.is_empty() {
            found.push(format!(
                "no SELECT privilege on: {}",
                plain_list(&unreadable)
            ));
            grants.push(format!(
                "grant select on {} to {r};",
                quoted_list(&unreadable)
            ));
        }
        Check::fail(
            "source.select_privilege",
            format!(
                "role {role} cannot read every selected table: {}",
                found.join("; ")
            ),
            format!("run on the source: `{}`", grants.join(" ")),
        )
    });
    if incremental {
        let leaves = tables.iter().filter(|t| t.relkind == 'r');
        let no_key: Vec<&SourceTable> = leaves
            .clone()
            .filter(|t| t.replica_identity == 'n' || (!t.has_key && t.replica_identity != 'f'))
            .collect();
        let full: Vec<String> = leaves
            .filter(|t| !t.has_key && t.replica_identity == 'f')
            .map(|t| t.name.to_string())
            .collect();
        checks.push(if no_key.is_empty() {
            Check::pass(
                "source.primary_keys",
                "every table has a replica identity (a primary key, REPLICA IDENTITY USING INDEX, or FULL)",
            )
        } else {
            let names: Vec<String> = no_key
                .iter()
                .map(|t| match t.replica_identity {
                    'n' => format!("{} (REPLICA IDENTITY NOTHING)", t.name),
                    _ => format!("{} (no primary key, or only a deferrable one)", t.name),
                })
                .collect();
            Check::fail(
                "source.primary_keys",
                format!(
                    "tables without a usable replica identity, whose updates and deletes would fail on the source once published: {}",
                    names.join(", ")
                ),
                format!(
                    "add a non-deferrable primary key, or run `alter table {} replica identity full;` (or `replica identity using index …` on a NOT NULL unique index){}",
                    crate::sql::qualified(&no_key[0].name.schema, &no_key[0].name.name),
                    if no_key.len() > 1 { ", and likewise for the others" } else { "" }
                ),
            )
        });
        if !full.is_empty() {
            checks.push(Check::warn(
                "source.replica_identity_full",
                format!("tables without a key are replicated by REPLICA IDENTITY FULL: {}", full.join(", ")),
                "add primary keys: updates and deletes on these tables match whole rows and are slower",
            ));
        }
    }
    Ok(checks)
}

/// Destination-side checks: same-named tables (conflicting_tables), the
/// right to set `session_replication_role`, and server versions.
///
/// # Errors
/// [`PgError`] when a catalog query fails.
pub async fn destination_checks(
    source: &Connected,
    destination: &Connected,
    tables: &[SourceTable],
    conflicts_are_errors: bool,
) -> Result<Vec<Check>, PgError> {
    let mut checks = Vec::new();
    let mut existing = Vec::new();
    for t in tables {
        if super::admin::table_exists(destination, &t.name).await? {
            existing.push(t.name.to_string());
        }
    }
    checks.push(match (existing.is_empty(), conflicts_are_errors) {
        (true, _) => Check::pass("destination.conflicting_tables", "no selected table exists on the destination"),
        (false, true) => Check::fail(
            "destination.conflicting_tables",
            format!("tables already exist on the destination: {}", existing.join(", ")),
            "drop or rename them on the destination, or set conflicting_tables = \"ignore\" in the task",
        ),
        (false, false) => Check::warn(
            "destination.conflicting_tables",
            format!("tables already exist on the destination and are written into: {}", existing.join(", ")),
            "conflicting_tables = \"ignore\": existing rows with the same key are kept by the copy and overwritten by the stream",
        ),
    });
    // PostgreSQL 15 lets a superuser grant `set on parameter` to others
    // (has_parameter_privilege() does not exist before 15).
    let sql = if server_version(destination).await? >= 150_000 {
        "select rolsuper or has_parameter_privilege('session_replication_role', 'set')
           from pg_roles where rolname = current_user"
    } else {
        "select rolsuper from pg_roles where rolname = current_user"
    };
    let su: bool = destination
        .client
        .query_one(sql, &[])
        .await
        .map_err(destination.err("check destination role"))?
        .get(0);
    checks.push(if su {
        Check::pass("destination.session_replication_role", "the destination role may set session_replication_role = replica")
    } else {
        Check::fail(
            "destination.session_replication_role",
            "the destination role may not set session_replication_role = replica (triggers and foreign keys would fire twice)",
            "connect to the destination as a superuser, or grant `set on parameter session_replication_role` (PostgreSQL 15+) to the role",
        )
    });
    let (sv, dv) = (
        server_version(source).await?,
        server_version(destination).await?,
    );
    checks.push(if dv >= sv / 10000 * 10000 {
        Check::pass("destination.version", format!("source {}, destination {}", sv / 10000, dv / 10000))
    } else {
        Check::warn(
            "destination.version",
            format!("destination major version {} is older than the source's {}", dv / 10000, sv / 10000),
            "use a destination of the same or a newer major version; objects using newer features may fail to create",
        )
    });
    Ok(checks)
}

/// `server_version_num` of a connected server (e.g. 150018).
///
/// # Errors
/// [`PgError`] when the query fails.
pub async fn server_version(c: &Connected) -> Result<i32, PgError> {
    c.client
        .query_one("select current_setting('server_version_num')::int4", &[])
        .await
        .map(|r| r.get::<_, i32>(0))
        .map_err(c.err("read server version"))
}

/// Whether the current role may create pgsync's helper tables in schema
/// `public` (superuser, or CREATE on the schema; PostgreSQL 15 no longer
/// grants that to everyone). `false` when there is no schema `public`.
///
/// # Errors
/// [`PgError`] when the query fails.
pub async fn can_create_helper_tables(source: &Connected) -> Result<bool, PgError> {
    source
        .client
        .query_one(
            "select r.rolsuper or coalesce((select has_schema_privilege(n.oid, 'create')
                                               from pg_namespace n where n.nspname = $1), false)
               from pg_roles r where r.rolname = current_user",
            &[&crate::sql::helpers::SCHEMA],
        )
        .await
        .map(|r| r.get(0))
        .map_err(source.err("check CREATE on schema public"))
}

/// What the source says about an existing publication, for the tables a
/// task selects ([`inspect_publication`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicationFacts {
    /// The publication's name.
    pub name: String,
    /// Selected tables holding rows (ordinary tables and leaf partitions)
    /// that neither the publication nor a published ancestor publishes.
    pub unpublished: Vec<QualifiedName>,
    /// DML the publication does not publish, of `insert`, `update`, `delete`.
    pub unpublished_dml: Vec<&'static str>,
    /// It does not publish TRUNCATE.
    pub no_truncate: bool,
    /// Selected tables it publishes with a row filter (`WHERE`, PostgreSQL
    /// 15+) or a column list: `schema.name (row filter)`.
    pub filtered: Vec<String>,
    /// Selected partitions whose changes `publish_via_partition_root = true`
    /// sends as an ancestor's that the task does not select.
    pub via_unselected_root: Vec<QualifiedName>,
}

/// Looks publication `name` up and compares it with `tables`; `None` when
/// it does not exist.
///
/// # Errors
/// [`PgError`] when a catalog query fails.
pub async fn inspect_publication(
    source: &Connected,
    name: &str,
    tables: &[SourceTable],
) -> Result<Option<PublicationFacts>, PgError> {
    let Some(row) = source
        .client
        .query_opt(
            "select pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot
               from pg_publication where pubname = $1",
            &[&name],
        )
        .await
        .map_err(source.err("look up the publication"))?
    else {
        return Ok(None);
    };
    let mut unpublished_dml = Vec::new();
    for (i, what) in ["insert", "update", "delete"].into_iter().enumerate() {
        if !row.get::<_, bool>(i) {
            unpublished_dml.push(what);
        }
    }
    let no_truncate = !row.get::<_, bool>(3);
    let via_root: bool = row.get(4);
    let all = oids(tables);
    let leaves: Vec<u32> = tables
        .iter()
        .filter(|t| t.relkind == 'r')
        .map(|t| t.oid)
        .collect();
    // pg_publication_tables expands FOR ALL TABLES, FOR TABLES IN SCHEMA and
    // partitioned tables (as leaves, or as the root with
    // publish_via_partition_root); pg_partition_ancestors() lists a
    // partition and its ancestors (nothing for other tables).
    let unpublished = source
        .client
        .query(
            "select n.nspname::text, c.relname::text
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where c.oid = any($2::oid[])
                and not exists (
                    select 1 from pg_publication_tables p
                      join pg_namespace pn on pn.nspname = p.schemaname
                      join pg_class pc on pc.relnamespace = pn.oid and pc.relname = p.tablename
                     where p.pubname = $1
                       and (pc.oid = c.oid
                            or pc.oid in (select a.relid from pg_partition_ancestors(c.oid) a)))
              order by 1, 2",
            &[&name, &leaves],
        )
        .await
        .map_err(source.err("compare the publication with the selected tables"))?
        .iter()
        .map(|r| QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    let mut filtered = Vec::new();
    if server_version(source).await? >= 150_000 {
        for r in source
            .client
            .query(
                "select n.nspname::text, c.relname::text, pr.prqual is not null, pr.prattrs is not null
                   from pg_publication_rel pr
                   join pg_publication p on p.oid = pr.prpubid
                   join pg_class c on c.oid = pr.prrelid
                   join pg_namespace n on n.oid = c.relnamespace
                  where p.pubname = $1 and (pr.prqual is not null or pr.prattrs is not null)
                    and pr.prrelid = any($2::oid[])
                  order by 1, 2",
                &[&name, &all],
            )
            .await
            .map_err(source.err("look for row filters and column lists"))?
        {
            let what = match (r.get::<_, bool>(2), r.get::<_, bool>(3)) {
                (true, true) => "row filter and column list",
                (true, false) => "row filter",
                _ => "column list",
            };
            filtered.push(format!(
                "{} ({what})",
                QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1))
            ));
        }
    }
    let via_unselected_root = if via_root {
        source
            .client
            .query(
                "select n.nspname::text, c.relname::text
                   from pg_class c join pg_namespace n on n.oid = c.relnamespace
                  where c.oid = any($1::oid[]) and c.relispartition
                    and not exists (
                        select 1 from pg_partition_ancestors(c.oid) a
                          join pg_class ac on ac.oid = a.relid
                         where not ac.relispartition and ac.oid = any($1::oid[]))
                  order by 1, 2",
                &[&all],
            )
            .await
            .map_err(source.err("look for partitions published via their root"))?
            .iter()
            .map(|r| QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Some(PublicationFacts {
        name: name.to_owned(),
        unpublished,
        unpublished_dml,
        no_truncate,
        filtered,
        via_unselected_root,
    }))
}

fn oids(tables: &[SourceTable]) -> Vec<u32> {
    tables.iter().map(|t| t.oid).collect()
}

/// A list of quoted qualified names: `"s"."a", "s"."b"`.
fn quoted_list(tables: &[QualifiedName]) -> String {
    tables
        .iter()
        .map(|t| crate::sql::qualified(&t.schema, &t.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plain_list(tables: &[QualifiedName]) -> String {
    tables
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `source.publication` item for a publication named by the task's
/// `publication` attribute: it exists, publishes every selected table
/// with its inserts, updates and deletes, whole (no row filter or column
/// list), and under the names the destination has.
pub fn existing_publication_checks(
    name: &str,
    facts: Option<&PublicationFacts>,
    tables: &[SourceTable],
) -> Vec<Check> {
    const ITEM: &str = "source.publication";
    let p = crate::sql::ident(name);
    let leaves: Vec<QualifiedName> = tables
        .iter()
        .filter(|t| t.relkind == 'r')
        .map(|t| t.name.clone())
        .collect();
    let Some(facts) = facts else {
        return vec![Check::fail(
            ITEM,
            format!("publication {name:?} (the task's `publication`) does not exist on the source"),
            format!(
                "create it on the source as the tables' owner or a superuser: `create publication {p} for table {};`, or correct `publication`",
                quoted_list(&leaves)
            ),
        )];
    };
    let mut checks = Vec::new();
    if !facts.unpublished_dml.is_empty() {
        checks.push(Check::fail(
            ITEM,
            format!(
                "publication {name:?} does not publish {}: the destination would miss those changes",
                facts.unpublished_dml.join(", ")
            ),
            format!(
                "run on the source: `alter publication {p} set (publish = 'insert, update, delete, truncate');`"
            ),
        ));
    }
    if !facts.unpublished.is_empty() {
        checks.push(Check::fail(
            ITEM,
            format!(
                "publication {name:?} does not publish these selected tables: {}",
                plain_list(&facts.unpublished)
            ),
            format!(
                "run on the source as the tables' owner or a superuser: `alter publication {p} add table {};`",
                quoted_list(&facts.unpublished)
            ),
        ));
    }
    if !facts.filtered.is_empty() {
        checks.push(Check::fail(
            ITEM,
            format!(
                "publication {name:?} publishes selected tables only in part: {}; the full copy takes whole tables, so the copy and the stream would disagree",
                facts.filtered.join(", ")
            ),
            format!(
                "publish those tables whole: `alter publication {p} set table …` without WHERE clauses and column lists"
            ),
        ));
    }
    if !facts.via_unselected_root.is_empty() {
        checks.push(Check::fail(
            ITEM,
            format!(
                "publication {name:?} has publish_via_partition_root = true, so changes to the selected partitions {} arrive as their partitioned table's, which the task does not select",
                plain_list(&facts.via_unselected_root)
            ),
            format!(
                "run `alter publication {p} set (publish_via_partition_root = false);`, or select the partitioned table"
            ),
        ));
    }
    if checks.is_empty() {
        checks.push(Check::pass(
            ITEM,
            format!(
                "publication {name:?} publishes all {} (created outside pgsync: never altered or dropped by it)",
                crate::model::counted(leaves.len(), "selected table")
            ),
        ));
    }
    if facts.no_truncate {
        checks.push(Check::warn(
            "source.publication_truncate",
            format!("publication {name:?} does not publish TRUNCATE: a truncated source table keeps its rows on the destination"),
            format!("run on the source: `alter publication {p} set (publish = 'insert, update, delete, truncate');`"),
        ));
    }
    checks
}

/// The `source.publication` item when pgsync creates its own publication:
/// a superuser may; otherwise CREATE on the database (CREATE PUBLICATION)
/// and ownership of every published table (only a table's owner may add it
/// to a publication) are needed. The fix names the missing grants and the
/// alternative: a publication made by the owner, named in `publication`.
///
/// # Errors
/// [`PgError`] when a catalog query fails.
pub async fn own_publication_check(
    source: &Connected,
    task: &str,
    tables: &[SourceTable],
    role: &str,
) -> Result<Check, PgError> {
    const ITEM: &str = "source.publication";
    let publication = crate::model::publication_name_for_task(task);
    let row = source
        .client
        .query_one(
            "select rolsuper, has_database_privilege(current_database(), 'create'),
                    current_database()::text
               from pg_roles where rolname = current_user",
            &[],
        )
        .await
        .map_err(source.err("check publication privileges"))?;
    let (superuser, db_create, database): (bool, bool, String) =
        (row.get(0), row.get(1), row.get(2));
    if superuser {
        return Ok(Check::pass(
            ITEM,
            format!("role {role} is a superuser: apply creates publication {publication}"),
        ));
    }
    let not_owned: Vec<QualifiedName> = source
        .client
        .query(
            "select n.nspname::text, c.relname::text
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where c.oid = any($1::oid[]) and not pg_has_role(c.relowner, 'usage')
              order by 1, 2",
            &[&oids(tables)],
        )
        .await
        .map_err(source.err("check table ownership"))?
        .iter()
        .map(|r| QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    if db_create && not_owned.is_empty() {
        return Ok(Check::pass(
            ITEM,
            format!(
                "role {role} may create publication {publication} (CREATE on database {database}, owns the selected tables)"
            ),
        ));
    }
    let r = crate::sql::ident(role);
    let mut missing = Vec::new();
    let mut grants = Vec::new();
    if !db_create {
        missing.push(format!("CREATE on database {database}"));
        grants.push(format!(
            "grant create on database {} to {r};",
            crate::sql::ident(&database)
        ));
    }
    if !not_owned.is_empty() {
        missing.push(format!(
            "ownership of {} (only a table's owner may add it to a publication): {}",
            crate::model::counted(not_owned.len(), "selected table"),
            plain_list(&not_owned)
        ));
        grants.push(format!("grant <the tables' owner> to {r};"));
    }
    let leaves: Vec<QualifiedName> = tables
        .iter()
        .filter(|t| t.relkind == 'r')
        .map(|t| t.name.clone())
        .collect();
    let suggested = format!("pgsync_{}", &publication["dts_pub_".len()..]);
    Ok(Check::fail(
        ITEM,
        format!(
            "role {role} cannot create publication {publication}: it lacks {}",
            missing.join("; ")
        ),
        format!(
            "have the tables' owner or a superuser run on the source `create publication {} for table {};` and set `publication = {suggested:?}` in task {task:?} (pgsync then never creates, alters or drops it); or run `{}`",
            crate::sql::ident(&suggested),
            quoted_list(&leaves),
            grants.join(" ")
        ),
    ))
}

/// The `source.heartbeat` item: where the heartbeat and the sequence
/// positions travel. With pgsync's own publication and CREATE on schema
/// `public`, through the published helper tables; otherwise as logical
/// messages (`pg_logical_emit_message`, which every role may call), whose
/// content pgoutput delivers from PostgreSQL 14 on.
pub fn heartbeat_check(
    helper_tables: bool,
    external: bool,
    server_version: i32,
    role: &str,
) -> Check {
    const ITEM: &str = "source.heartbeat";
    if helper_tables {
        return Check::pass(
            ITEM,
            "heartbeat and sequence positions travel through public.dts_postgres_heartbeat and public.dts_sequence_state (created by apply)",
        );
    }
    let why = if external {
        "the publication is not pgsync's (no helper table can join it)".to_owned()
    } else {
        format!("role {role} may not create tables in schema public")
    };
    if server_version >= 140_000 {
        Check::pass(
            ITEM,
            format!(
                "{why}: heartbeat and sequence positions travel as logical messages (pg_logical_emit_message); nothing is created on the source"
            ),
        )
    } else {
        Check::warn(
            ITEM,
            format!(
                "{why}: the heartbeat travels as a logical message and still moves the slot, but PostgreSQL 13's pgoutput drops message contents, so sequence positions are not kept in step while streaming"
            ),
            if external {
                "upgrade the source to PostgreSQL 14 or later to keep sequences in step".to_owned()
            } else {
                format!(
                    "run `grant create on schema public to {};` on the source, or upgrade it to PostgreSQL 14 or later",
                    crate::sql::ident(role)
                )
            },
        )
    }
}

/// The `source.sequence_privilege` item: selected sequences (in selected
/// schemas, or owned by selected tables) whose position the role may not
/// read (SELECT on the sequence). Their positions are then neither set by
/// the schema sync nor kept in step by the stream.
///
/// # Errors
/// [`PgError`] when the catalog query fails.
pub async fn sequence_privilege_check(
    source: &Connected,
    objects: &[ObjectSelection],
    role: &str,
) -> Result<Check, PgError> {
    const ITEM: &str = "source.sequence_privilege";
    let (schemas, tables) = super::admin::sequence_scope(objects);
    let rows = source
        .client
        .query(
            &format!(
                "select n.nspname::text, c.relname::text {}
                  where {}
                    and not {}
                  order by 1, 2",
                super::admin::SEQUENCES_FROM,
                super::admin::selected_sequences(1, 2),
                super::admin::READABLE
            ),
            &[&schemas, &tables],
        )
        .await
        .map_err(source.err("check sequence privileges"))?;
    let unreadable: Vec<QualifiedName> = rows
        .iter()
        .map(|r| QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    Ok(if unreadable.is_empty() {
        Check::pass(ITEM, "every selected sequence is readable")
    } else {
        Check::warn(
            ITEM,
            format!(
                "role {role} may not read {}: {}; their positions are not carried to the destination (its sequences keep their start values)",
                crate::model::counted(unreadable.len(), "selected sequence"),
                plain_list(&unreadable)
            ),
            format!(
                "run on the source: `grant select on sequence {} to {};`",
                quoted_list(&unreadable),
                crate::sql::ident(role)
            ),
        )
    })
}
