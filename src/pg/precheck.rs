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
                    c.relispartition
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

/// Source-side checks for a task needing `slots_needed` new slots.
///
/// # Errors
/// [`PgError`] when a catalog query fails (a failed *check* is a [`Check`]).
pub async fn source_checks(
    source: &Connected,
    tables: &[SourceTable],
    missing: &[QualifiedName],
    slots_needed: i64,
    incremental: bool,
) -> Result<Vec<Check>, PgError> {
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
        checks.extend(helper_privileges(source, tables, &role).await?);
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
    let mut unreadable = Vec::new();
    for t in tables {
        let ok: bool = source
            .client
            .query_one(
                "select has_table_privilege(format('%I.%I', $1::text, $2::text), 'select')",
                &[&t.name.schema, &t.name.name],
            )
            .await
            .map_err(source.err("check table privileges"))?
            .get(0);
        if !ok {
            unreadable.push(t.name.to_string());
        }
    }
    checks.push(if unreadable.is_empty() {
        Check::pass(
            "source.select_privilege",
            format!("{} readable", crate::model::counted(tables.len(), "table")),
        )
    } else {
        Check::fail(
            "source.select_privilege",
            format!("no SELECT privilege on: {}", unreadable.join(", ")),
            "grant select on those tables to the source role",
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
        let found: bool = destination
            .client
            .query_one(
                "select to_regclass(format('%I.%I', $1::text, $2::text)) is not null",
                &[&t.name.schema, &t.name.name],
            )
            .await
            .map_err(destination.err("look for conflicting tables"))?
            .get(0);
        if found {
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

/// What creating the helper objects needs from a non-superuser role:
/// CREATE on the database (publication, PostgreSQL docs CREATE PUBLICATION),
/// CREATE on schema `public` (the `dts_*` helper tables), and ownership of
/// every published table (ALTER/CREATE PUBLICATION … ADD TABLE requires it).
async fn helper_privileges(
    source: &Connected,
    tables: &[SourceTable],
    role: &str,
) -> Result<Vec<Check>, PgError> {
    let row = source
        .client
        .query_one(
            "select rolsuper, has_database_privilege(current_database(), 'create'),
                    has_schema_privilege('public', 'create'), current_database()::text
               from pg_roles where rolname = current_user",
            &[],
        )
        .await
        .map_err(source.err("check helper-object privileges"))?;
    let (superuser, db_create, schema_create, database): (bool, bool, bool, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if superuser {
        return Ok(vec![Check::pass(
            "source.helper_privileges",
            format!("role {role} is a superuser"),
        )]);
    }
    let mut not_owned = Vec::new();
    for t in tables {
        let owns: bool = source
            .client
            .query_one(
                "select pg_has_role(c.relowner, 'usage') from pg_class c
                  where c.oid = to_regclass(format('%I.%I', $1::text, $2::text))",
                &[&t.name.schema, &t.name.name],
            )
            .await
            .map_err(source.err("check table ownership"))?
            .get(0);
        if !owns {
            not_owned.push(t.name.to_string());
        }
    }
    let mut missing = Vec::new();
    let mut fixes = Vec::new();
    let r = crate::sql::ident(role);
    if !db_create {
        missing.push(format!(
            "CREATE on database {database} (for the publication)"
        ));
        fixes.push(format!(
            "grant create on database {} to {r};",
            crate::sql::ident(&database)
        ));
    }
    if !schema_create {
        missing.push("CREATE on schema public (for the dts_* helper tables)".to_owned());
        fixes.push(format!("grant create on schema public to {r};"));
    }
    if !not_owned.is_empty() {
        missing.push(format!(
            "ownership of the published tables (a publication may list only tables its creator owns): {}",
            not_owned.join(", ")
        ));
        fixes.push(format!(
            "make {r} a member of the tables' owner role, e.g. `grant <owner> to {r};`"
        ));
    }
    Ok(vec![if missing.is_empty() {
        Check::pass(
            "source.helper_privileges",
            format!("role {role} may create the publication and the helper tables"),
        )
    } else {
        Check::fail(
            "source.helper_privileges",
            format!("role {role} lacks {}", missing.join("; ")),
            format!("run on the source: {}", fixes.join(" ")),
        )
    }])
}
