//! Reads the source catalogs into plain values: one query per catalog, every
//! definition already deparsed by the server (`pg_get_*def`, `pg_get_expr`,
//! `format_type`).
//!
//! Only objects in user schemas are read (not `pg_catalog`,
//! `information_schema`, `pg_toast` or temporary schemas). Extension members
//! are read where a dependency may point at them, and flagged, so the
//! selection can map them to their extension.
//!
//! Every query runs on the caller's session, so it sees the caller's snapshot;
//! [`super::generate`] pins `search_path = ''` first, which makes every name
//! in the deparsed text schema-qualified.

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::{Client, Row};

/// `pg_class` catalog's own OID (stable across versions).
pub(super) const PG_CLASS: u32 = 1259;
/// `pg_type`.
pub(super) const PG_TYPE: u32 = 1247;
/// `pg_proc`.
pub(super) const PG_PROC: u32 = 1255;
/// `pg_attrdef`.
pub(super) const PG_ATTRDEF: u32 = 2604;
/// `pg_constraint`.
pub(super) const PG_CONSTRAINT: u32 = 2606;
/// `pg_rewrite`.
pub(super) const PG_REWRITE: u32 = 2618;
/// `pg_trigger`.
pub(super) const PG_TRIGGER: u32 = 2620;
/// `pg_namespace`.
pub(super) const PG_NAMESPACE: u32 = 2615;
/// `pg_collation`.
pub(super) const PG_COLLATION: u32 = 3456;
/// `pg_extension`.
pub(super) const PG_EXTENSION: u32 = 3079;
/// `pg_policy`.
pub(super) const PG_POLICY: u32 = 3256;

/// Namespaces that hold user objects (`n` is the `pg_namespace` alias).
pub(super) const USER_NS: &str = "n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast') \
     and n.nspname !~ '^pg_(toast_)?temp_'";

/// Everything [`super::generate`] needs from the source, keyed by OID.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    /// `server_version_num`.
    pub version: i32,
    pub namespaces: BTreeMap<u32, Namespace>,
    pub extensions: BTreeMap<u32, Extension>,
    /// `(classid, objid)` of every extension member → the extension's OID.
    pub members: HashMap<(u32, u32), u32>,
    pub collations: BTreeMap<u32, Collation>,
    pub types: BTreeMap<u32, TypeInfo>,
    pub enum_labels: HashMap<u32, Vec<String>>,
    pub ranges: HashMap<u32, RangeInfo>,
    pub functions: BTreeMap<u32, Function>,
    pub aggregates: HashMap<u32, Aggregate>,
    pub relations: BTreeMap<u32, Relation>,
    /// Columns per relation, in `attnum` order, dropped ones left out.
    pub columns: HashMap<u32, Vec<Column>>,
    /// Relation inheritance (partitions included): child → parents in `inhseqno` order.
    pub parents: HashMap<u32, Vec<u32>>,
    /// Index inheritance (partitioned indexes): child index → parent index.
    pub index_parent: HashMap<u32, u32>,
    pub sequences: BTreeMap<u32, Sequence>,
    pub constraints: BTreeMap<u32, Constraint>,
    pub indexes: BTreeMap<u32, Index>,
    pub triggers: BTreeMap<u32, Trigger>,
    pub rules: BTreeMap<u32, Rule>,
    pub policies: BTreeMap<u32, Policy>,
    /// `pg_attrdef.oid` → `(adrelid, adnum)`.
    pub attrdefs: HashMap<u32, (u32, i16)>,
    pub depends: Vec<Depend>,
    /// Operators, operator families and classes, casts, text search objects.
    pub objects: super::objects::Objects,
}

/// A `pg_namespace` row.
#[derive(Debug, Clone)]
pub(super) struct Namespace {
    pub name: String,
    pub comment: Option<String>,
}

/// A `pg_extension` row.
#[derive(Debug, Clone)]
pub(super) struct Extension {
    pub name: String,
    pub schema: u32,
}

/// A `pg_collation` row in a user schema.
#[derive(Debug, Clone)]
pub(super) struct Collation {
    pub schema: u32,
    pub name: String,
    /// `c` libc, `i` icu, `d` default.
    pub provider: char,
    pub collate: Option<String>,
    pub ctype: Option<String>,
    /// ICU locale (`colliculocale` in 15–16, `colllocale` from 17).
    pub locale: Option<String>,
    pub deterministic: bool,
    pub icu_rules: Option<String>,
    pub comment: Option<String>,
}

/// A `pg_type` row in a user schema.
#[derive(Debug, Clone)]
pub(super) struct TypeInfo {
    pub schema: u32,
    pub name: String,
    /// `typtype`: b c d e p r m.
    pub typtype: char,
    pub typrelid: u32,
    /// The element type of an array type, else 0.
    pub array_of: u32,
    /// Domain: `format_type(typbasetype, typtypmod)`.
    pub domain_base: Option<String>,
    pub not_null: bool,
    /// Domain default, deparsed.
    pub default: Option<String>,
    /// Domain collation `[schema, name]` when it differs from the base type's.
    pub collation: Option<Vec<String>>,
    pub comment: Option<String>,
}

/// A `pg_range` row.
#[derive(Debug, Clone)]
pub(super) struct RangeInfo {
    pub subtype: String,
    /// `[schema, name]` of a non-default operator class.
    pub opclass: Option<Vec<String>>,
    /// `[schema, name]` of a collation differing from the subtype's.
    pub collation: Option<Vec<String>>,
    /// `[schema, name]`.
    pub canonical: Option<Vec<String>>,
    /// `[schema, name]`.
    pub subtype_diff: Option<Vec<String>>,
    /// The multirange type (14+).
    pub multirange: Option<u32>,
}

/// A non-extension `pg_proc` row in a user schema.
#[derive(Debug, Clone)]
pub(super) struct Function {
    pub schema: u32,
    pub name: String,
    /// `prokind`: f p a w.
    pub kind: char,
    /// `pg_get_function_identity_arguments`.
    pub identity_args: String,
    /// `pg_get_function_arguments` (for aggregates).
    pub args: String,
    /// `pg_get_functiondef` (not for aggregates).
    pub definition: Option<String>,
    /// `proparallel`.
    pub parallel: char,
    /// The type this function was made for (a range type's constructors),
    /// which creates it.
    pub made_by_type: Option<u32>,
    pub comment: Option<String>,
}

/// A `pg_aggregate` row; function references are `[schema, name]`.
#[derive(Debug, Clone, Default)]
pub(super) struct Aggregate {
    /// `aggkind`: n o h.
    pub kind: char,
    pub transfn: Option<Vec<String>>,
    pub finalfn: Option<Vec<String>>,
    pub combinefn: Option<Vec<String>>,
    pub serialfn: Option<Vec<String>>,
    pub deserialfn: Option<Vec<String>>,
    pub mtransfn: Option<Vec<String>>,
    pub minvtransfn: Option<Vec<String>>,
    pub mfinalfn: Option<Vec<String>>,
    pub finalextra: bool,
    pub mfinalextra: bool,
    pub finalmodify: char,
    pub mfinalmodify: char,
    /// `[schema, operator name]`.
    pub sortop: Option<Vec<String>>,
    pub transtype: String,
    pub transspace: i32,
    pub mtranstype: Option<String>,
    pub mtransspace: i32,
    pub initval: Option<String>,
    pub minitval: Option<String>,
}

/// A `pg_class` row (tables, partitions, views, matviews, sequences,
/// composite types, foreign tables) in a user schema.
#[derive(Debug, Clone)]
pub(super) struct Relation {
    pub schema: u32,
    pub name: String,
    /// `relkind`: r p v m S c f.
    pub kind: char,
    /// `relpersistence`: p u t.
    pub persistence: char,
    pub reltype: u32,
    pub is_partition: bool,
    /// `relreplident`: d f n i.
    pub replica_identity: char,
    pub options: Vec<String>,
    pub row_security: bool,
    pub force_row_security: bool,
    pub populated: bool,
    /// Table access method, when not `heap` and not none.
    pub access_method: Option<String>,
    /// `pg_get_partkeydef`.
    pub partition_key: Option<String>,
    /// `pg_get_expr(relpartbound)`: `FOR VALUES …` or `DEFAULT`.
    pub partition_bound: Option<String>,
    /// `pg_get_viewdef` for views and matviews.
    pub view_definition: Option<String>,
    /// `pg_table_size`.
    pub size: i64,
    /// A primary key, or a valid, immediate, non-partial unique index over
    /// NOT NULL columns.
    pub has_key: bool,
    pub comment: Option<String>,
}

/// A `pg_attribute` row joined with its default.
#[derive(Debug, Clone)]
pub(super) struct Column {
    pub num: i16,
    pub name: String,
    /// `format_type(atttypid, atttypmod)`.
    pub type_name: String,
    pub not_null: bool,
    /// `pg_get_expr(adbin)`: the default, or the generation expression.
    pub default: Option<String>,
    /// `attidentity`: `a`, `d` or none.
    pub identity: Option<char>,
    /// `attgenerated`: `s` (or `v` from 18) or none.
    pub generated: Option<char>,
    /// `[schema, name]` when the collation differs from the type's.
    pub collation: Option<Vec<String>>,
    pub is_local: bool,
    pub comment: Option<String>,
}

/// A `pg_sequence` row with its owner.
#[derive(Debug, Clone)]
pub(super) struct Sequence {
    pub type_name: String,
    pub start: i64,
    pub increment: i64,
    pub max: i64,
    pub min: i64,
    pub cache: i64,
    pub cycle: bool,
    /// Owning `(table, attnum)`, when OWNED BY or an identity sequence.
    pub owner: Option<(u32, i32)>,
    /// Whether it backs an identity column.
    pub identity: bool,
}

/// A `pg_constraint` row in a user schema.
#[derive(Debug, Clone)]
pub(super) struct Constraint {
    pub name: String,
    /// `contype`: c f n p u t x.
    pub kind: char,
    pub relation: u32,
    pub domain: u32,
    pub index: u32,
    pub parent: u32,
    pub is_local: bool,
    pub validated: bool,
    pub no_inherit: bool,
    pub referenced: u32,
    /// `conkey`: the constrained columns.
    pub columns: Vec<i16>,
    /// `pg_get_constraintdef`.
    pub definition: String,
    pub comment: Option<String>,
}

/// A `pg_index` row.
#[derive(Debug, Clone)]
pub(super) struct Index {
    pub relation: u32,
    pub schema: u32,
    pub name: String,
    /// `i`, or `I` for a partitioned index.
    pub kind: char,
    /// `pg_get_indexdef`.
    pub definition: String,
    pub valid: bool,
    pub clustered: bool,
    pub replica_identity: bool,
    pub comment: Option<String>,
}

/// A user (non-internal) `pg_trigger` row.
#[derive(Debug, Clone)]
pub(super) struct Trigger {
    pub relation: u32,
    pub name: String,
    /// `pg_get_triggerdef`.
    pub definition: String,
    /// `tgenabled`: O D R A.
    pub enabled: char,
    /// The partitioned table's trigger this one was cloned from (13+), else 0.
    pub parent: u32,
    pub comment: Option<String>,
}

/// A `pg_rewrite` row on a user relation.
#[derive(Debug, Clone)]
pub(super) struct Rule {
    pub relation: u32,
    pub name: String,
    /// `ev_enabled`: O D R A.
    pub enabled: char,
    /// `pg_get_ruledef`, for rules other than a view's `_RETURN`.
    pub definition: Option<String>,
    pub comment: Option<String>,
}

/// A `pg_policy` row.
#[derive(Debug, Clone)]
pub(super) struct Policy {
    pub relation: u32,
    pub name: String,
    /// `polcmd`: r a w d *.
    pub command: char,
    pub permissive: bool,
    /// Role names; empty means PUBLIC.
    pub roles: Vec<String>,
    pub using: Option<String>,
    pub with_check: Option<String>,
    pub comment: Option<String>,
}

/// A `pg_depend` row between user objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Depend {
    pub classid: u32,
    pub objid: u32,
    pub refclassid: u32,
    pub refobjid: u32,
    pub deptype: char,
}

fn ch(row: &Row, idx: usize) -> char {
    row.get::<_, Option<String>>(idx)
        .and_then(|s| s.chars().next())
        .unwrap_or('\0')
}

fn opt_ch(row: &Row, idx: usize) -> Option<char> {
    Some(ch(row, idx)).filter(|c| *c != '\0')
}

/// SQL for `[schema, name]` of the function whose OID is `col`, or NULL.
fn proc_ref(col: &str) -> String {
    format!(
        "(select array[pn.nspname::text, pp.proname::text] from pg_catalog.pg_proc pp \
         join pg_catalog.pg_namespace pn on pn.oid = pp.pronamespace where pp.oid = {col})"
    )
}

/// SQL for `[schema, name]` of the collation whose OID is `col`, or NULL.
fn coll_ref(col: &str) -> String {
    format!(
        "(select array[cn.nspname::text, co.collname::text] from pg_catalog.pg_collation co \
         join pg_catalog.pg_namespace cn on cn.oid = co.collnamespace where co.oid = {col})"
    )
}

/// Reads everything. Runs about twenty catalog queries, plus one per 200
/// sequences later for their values (see [`sequence_values`]).
pub(super) async fn load(client: &Client) -> Result<Catalog, tokio_postgres::Error> {
    let version: i32 = client
        .query_one("select current_setting('server_version_num')::int4", &[])
        .await?
        .get(0);
    let mut cat = Catalog {
        version,
        ..Catalog::default()
    };

    for row in client
        .query(
            &format!(
                "select n.oid, n.nspname::text, pg_catalog.obj_description(n.oid, 'pg_namespace') \
                 from pg_catalog.pg_namespace n where {USER_NS}"
            ),
            &[],
        )
        .await?
    {
        cat.namespaces.insert(
            row.get(0),
            Namespace {
                name: row.get(1),
                comment: row.get(2),
            },
        );
    }

    for row in client
        .query(
            "select e.oid, e.extname::text, e.extnamespace from pg_catalog.pg_extension e",
            &[],
        )
        .await?
    {
        cat.extensions.insert(
            row.get(0),
            Extension {
                name: row.get(1),
                schema: row.get(2),
            },
        );
    }

    for row in client
        .query(
            "select classid, objid, refobjid from pg_catalog.pg_depend \
             where deptype = 'e' and refclassid = 'pg_catalog.pg_extension'::regclass",
            &[],
        )
        .await?
    {
        cat.members.insert((row.get(0), row.get(1)), row.get(2));
    }

    load_collations(client, &mut cat).await?;
    load_types(client, &mut cat).await?;
    load_functions(client, &mut cat).await?;
    load_relations(client, &mut cat).await?;
    load_table_parts(client, &mut cat).await?;
    super::objects::load(client, &mut cat.objects).await?;

    for row in client
        .query(
            "select classid, objid, refclassid, refobjid, deptype::text from pg_catalog.pg_depend \
             where deptype in ('n', 'a', 'i') and objid >= 16384 and refobjid >= 16384",
            &[],
        )
        .await?
    {
        cat.depends.push(Depend {
            classid: row.get(0),
            objid: row.get(1),
            refclassid: row.get(2),
            refobjid: row.get(3),
            deptype: ch(&row, 4),
        });
    }
    Ok(cat)
}

async fn load_collations(client: &Client, cat: &mut Catalog) -> Result<(), tokio_postgres::Error> {
    let locale = match cat.version {
        v if v >= 170000 => "c.colllocale",
        v if v >= 150000 => "c.colliculocale",
        _ => "null::text",
    };
    let rules = if cat.version >= 160000 {
        "c.collicurules"
    } else {
        "null::text"
    };
    let sql = format!(
        "select c.oid, c.collnamespace, c.collname::text, c.collprovider::text, \
                c.collcollate::text, c.collctype::text, {locale}::text, c.collisdeterministic, \
                {rules}::text, pg_catalog.obj_description(c.oid, 'pg_collation') \
         from pg_catalog.pg_collation c join pg_catalog.pg_namespace n on n.oid = c.collnamespace \
         where {USER_NS}"
    );
    for row in client.query(&sql, &[]).await? {
        cat.collations.insert(
            row.get(0),
            Collation {
                schema: row.get(1),
                name: row.get(2),
                provider: ch(&row, 3),
                collate: row.get(4),
                ctype: row.get(5),
                locale: row.get(6),
                deterministic: row.get(7),
                icu_rules: row.get(8),
                comment: row.get(9),
            },
        );
    }
    Ok(())
}

async fn load_types(client: &Client, cat: &mut Catalog) -> Result<(), tokio_postgres::Error> {
    let sql = format!(
        "select t.oid, t.typnamespace, t.typname::text, t.typtype::text, t.typrelid, \
                case when t.typelem <> 0 and exists (select 1 from pg_catalog.pg_type e \
                     where e.oid = t.typelem and e.typarray = t.oid) then t.typelem else 0::oid end, \
                case when t.typtype = 'd' then pg_catalog.format_type(t.typbasetype, t.typtypmod) end, \
                t.typnotnull, pg_catalog.pg_get_expr(t.typdefaultbin, 0), \
                case when t.typtype = 'd' and t.typcollation <> coalesce(bt.typcollation, 0) \
                     then {coll} end, \
                pg_catalog.obj_description(t.oid, 'pg_type') \
         from pg_catalog.pg_type t join pg_catalog.pg_namespace n on n.oid = t.typnamespace \
         left join pg_catalog.pg_type bt on bt.oid = t.typbasetype \
         where {USER_NS}",
        coll = coll_ref("t.typcollation")
    );
    for row in client.query(&sql, &[]).await? {
        cat.types.insert(
            row.get(0),
            TypeInfo {
                schema: row.get(1),
                name: row.get(2),
                typtype: ch(&row, 3),
                typrelid: row.get(4),
                array_of: row.get(5),
                domain_base: row.get(6),
                not_null: row.get(7),
                default: row.get(8),
                collation: row.get(9),
                comment: row.get(10),
            },
        );
    }

    for row in client
        .query(
            &format!(
                "select e.enumtypid, e.enumlabel::text from pg_catalog.pg_enum e \
                 join pg_catalog.pg_type t on t.oid = e.enumtypid \
                 join pg_catalog.pg_namespace n on n.oid = t.typnamespace \
                 where {USER_NS} order by e.enumtypid, e.enumsortorder"
            ),
            &[],
        )
        .await?
    {
        cat.enum_labels
            .entry(row.get(0))
            .or_default()
            .push(row.get(1));
    }

    let multirange = if cat.version >= 140000 {
        "r.rngmultitypid"
    } else {
        "null::oid"
    };
    let sql = format!(
        "select r.rngtypid, pg_catalog.format_type(r.rngsubtype, null), \
                case when not opc.opcdefault then array[opn.nspname::text, opc.opcname::text] end, \
                case when r.rngcollation <> st.typcollation then {coll} end, \
                case when r.rngcanonical <> 0 then {canonical} end, \
                case when r.rngsubdiff <> 0 then {subdiff} end, \
                {multirange} \
         from pg_catalog.pg_range r join pg_catalog.pg_type t on t.oid = r.rngtypid \
         join pg_catalog.pg_namespace n on n.oid = t.typnamespace \
         join pg_catalog.pg_type st on st.oid = r.rngsubtype \
         join pg_catalog.pg_opclass opc on opc.oid = r.rngsubopc \
         join pg_catalog.pg_namespace opn on opn.oid = opc.opcnamespace \
         where {USER_NS}",
        coll = coll_ref("r.rngcollation"),
        canonical = proc_ref("r.rngcanonical"),
        subdiff = proc_ref("r.rngsubdiff"),
    );
    for row in client.query(&sql, &[]).await? {
        cat.ranges.insert(
            row.get(0),
            RangeInfo {
                subtype: row.get(1),
                opclass: row.get(2),
                collation: row.get(3),
                canonical: row.get(4),
                subtype_diff: row.get(5),
                multirange: row.get(6),
            },
        );
    }
    Ok(())
}

async fn load_functions(client: &Client, cat: &mut Catalog) -> Result<(), tokio_postgres::Error> {
    let sql = format!(
        "select p.oid, p.pronamespace, p.proname::text, p.prokind::text, \
                pg_catalog.pg_get_function_identity_arguments(p.oid), \
                pg_catalog.pg_get_function_arguments(p.oid), \
                case when p.prokind <> 'a' then pg_catalog.pg_get_functiondef(p.oid) end, \
                p.proparallel::text, pg_catalog.obj_description(p.oid, 'pg_proc'), \
                (select d.refobjid from pg_catalog.pg_depend d \
                  where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid \
                    and d.refclassid = 'pg_catalog.pg_type'::regclass and d.deptype = 'i' \
                  limit 1) \
         from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace \
         where {USER_NS} and not exists (select 1 from pg_catalog.pg_depend d \
               where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid \
                 and d.deptype = 'e')"
    );
    for row in client.query(&sql, &[]).await? {
        cat.functions.insert(
            row.get(0),
            Function {
                schema: row.get(1),
                name: row.get(2),
                kind: ch(&row, 3),
                identity_args: row.get(4),
                args: row.get(5),
                definition: row.get(6),
                parallel: ch(&row, 7),
                comment: row.get(8),
                made_by_type: row.get(9),
            },
        );
    }

    let sql = format!(
        "select a.aggfnoid::oid, a.aggkind::text, {transfn}, {finalfn}, {combinefn}, {serialfn}, \
                {deserialfn}, {mtransfn}, {minvtransfn}, {mfinalfn}, a.aggfinalextra, \
                a.aggmfinalextra, a.aggfinalmodify::text, a.aggmfinalmodify::text, \
                case when a.aggsortop <> 0 then (select array[opn.nspname::text, o.oprname::text] \
                     from pg_catalog.pg_operator o join pg_catalog.pg_namespace opn \
                     on opn.oid = o.oprnamespace where o.oid = a.aggsortop) end, \
                pg_catalog.format_type(a.aggtranstype, null), a.aggtransspace, \
                case when a.aggmtranstype <> 0 then pg_catalog.format_type(a.aggmtranstype, null) end, \
                a.aggmtransspace, a.agginitval, a.aggminitval \
         from pg_catalog.pg_aggregate a join pg_catalog.pg_proc p on p.oid = a.aggfnoid \
         join pg_catalog.pg_namespace n on n.oid = p.pronamespace where {USER_NS}",
        transfn = proc_ref("a.aggtransfn"),
        finalfn = proc_ref("a.aggfinalfn"),
        combinefn = proc_ref("a.aggcombinefn"),
        serialfn = proc_ref("a.aggserialfn"),
        deserialfn = proc_ref("a.aggdeserialfn"),
        mtransfn = proc_ref("a.aggmtransfn"),
        minvtransfn = proc_ref("a.aggminvtransfn"),
        mfinalfn = proc_ref("a.aggmfinalfn"),
    );
    for row in client.query(&sql, &[]).await? {
        cat.aggregates.insert(
            row.get(0),
            Aggregate {
                kind: ch(&row, 1),
                transfn: row.get(2),
                finalfn: row.get(3),
                combinefn: row.get(4),
                serialfn: row.get(5),
                deserialfn: row.get(6),
                mtransfn: row.get(7),
                minvtransfn: row.get(8),
                mfinalfn: row.get(9),
                finalextra: row.get(10),
                mfinalextra: row.get(11),
                finalmodify: ch(&row, 12),
                mfinalmodify: ch(&row, 13),
                sortop: row.get(14),
                transtype: row.get(15),
                transspace: row.get(16),
                mtranstype: row.get(17),
                mtransspace: row.get(18),
                initval: row.get(19),
                minitval: row.get(20),
            },
        );
    }
    Ok(())
}

async fn load_relations(client: &Client, cat: &mut Catalog) -> Result<(), tokio_postgres::Error> {
    let sql = format!(
        "select c.oid, c.relnamespace, c.relname::text, c.relkind::text, c.relpersistence::text, \
                c.reltype, c.relispartition, c.relreplident::text, \
                coalesce(c.reloptions, '{{}}'::text[]), c.relrowsecurity, c.relforcerowsecurity, \
                c.relispopulated, case when am.amname <> 'heap' then am.amname::text end, \
                case when c.relkind = 'p' then pg_catalog.pg_get_partkeydef(c.oid) end, \
                case when c.relispartition then pg_catalog.pg_get_expr(c.relpartbound, c.oid) end, \
                case when c.relkind in ('v', 'm') then pg_catalog.pg_get_viewdef(c.oid) end, \
                case when c.relkind in ('r', 'm') then pg_catalog.pg_table_size(c.oid) else 0 end, \
                exists (select 1 from pg_catalog.pg_index i where i.indrelid = c.oid \
                        and (i.indisprimary or (i.indisunique and i.indisvalid and i.indimmediate \
                             and i.indpred is null and i.indexprs is null \
                             and not exists (select 1 from pg_catalog.pg_attribute a \
                                 where a.attrelid = c.oid and not a.attnotnull \
                                   and a.attnum = any ((i.indkey::int2[])[0:i.indnkeyatts - 1]))))), \
                pg_catalog.obj_description(c.oid, 'pg_class') \
         from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         left join pg_catalog.pg_am am on am.oid = c.relam \
         where {USER_NS} and c.relkind in ('r', 'p', 'v', 'm', 'S', 'c', 'f')"
    );
    for row in client.query(&sql, &[]).await? {
        cat.relations.insert(
            row.get(0),
            Relation {
                schema: row.get(1),
                name: row.get(2),
                kind: ch(&row, 3),
                persistence: ch(&row, 4),
                reltype: row.get(5),
                is_partition: row.get(6),
                replica_identity: ch(&row, 7),
                options: row.get(8),
                row_security: row.get(9),
                force_row_security: row.get(10),
                populated: row.get(11),
                access_method: row.get(12),
                partition_key: row.get(13),
                partition_bound: row.get(14),
                view_definition: row.get(15),
                size: row.get(16),
                has_key: row.get(17),
                comment: row.get(18),
            },
        );
    }

    let sql = format!(
        "select a.attrelid, a.attnum, a.attname::text, \
                pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, \
                a.attgenerated::text, \
                case when a.attcollation <> t.typcollation then {coll} end, \
                a.attislocal, pg_catalog.col_description(a.attrelid, a.attnum) \
         from pg_catalog.pg_attribute a join pg_catalog.pg_class c on c.oid = a.attrelid \
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         join pg_catalog.pg_type t on t.oid = a.atttypid \
         left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum \
         where {USER_NS} and a.attnum > 0 and not a.attisdropped \
           and c.relkind in ('r', 'p', 'v', 'm', 'c', 'f') \
         order by a.attrelid, a.attnum",
        coll = coll_ref("a.attcollation")
    );
    for row in client.query(&sql, &[]).await? {
        cat.columns.entry(row.get(0)).or_default().push(Column {
            num: row.get(1),
            name: row.get(2),
            type_name: row.get(3),
            not_null: row.get(4),
            default: row.get(5),
            identity: opt_ch(&row, 6),
            generated: opt_ch(&row, 7),
            collation: row.get(8),
            is_local: row.get(9),
            comment: row.get(10),
        });
    }

    for row in client
        .query(
            "select i.inhrelid, i.inhparent, c.relkind in ('i', 'I') \
             from pg_catalog.pg_inherits i join pg_catalog.pg_class c on c.oid = i.inhrelid \
             where i.inhrelid >= 16384 order by i.inhrelid, i.inhseqno",
            &[],
        )
        .await?
    {
        let (child, parent, is_index): (u32, u32, bool) = (row.get(0), row.get(1), row.get(2));
        if is_index {
            cat.index_parent.insert(child, parent);
        } else {
            cat.parents.entry(child).or_default().push(parent);
        }
    }

    let sql = format!(
        "select s.seqrelid, pg_catalog.format_type(s.seqtypid, null), s.seqstart, s.seqincrement, \
                s.seqmax, s.seqmin, s.seqcache, s.seqcycle, d.refobjid, d.refobjsubid, \
                coalesce(d.deptype = 'i', false) \
         from pg_catalog.pg_sequence s join pg_catalog.pg_class c on c.oid = s.seqrelid \
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         left join lateral (select d.refobjid, d.refobjsubid, d.deptype from pg_catalog.pg_depend d \
              where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = s.seqrelid \
                and d.refclassid = 'pg_catalog.pg_class'::regclass and d.refobjsubid > 0 \
                and d.deptype in ('a', 'i') limit 1) d on true \
         where {USER_NS}"
    );
    for row in client.query(&sql, &[]).await? {
        let owner_rel: Option<u32> = row.get(8);
        let owner_col: Option<i32> = row.get(9);
        cat.sequences.insert(
            row.get(0),
            Sequence {
                type_name: row.get(1),
                start: row.get(2),
                increment: row.get(3),
                max: row.get(4),
                min: row.get(5),
                cache: row.get(6),
                cycle: row.get(7),
                owner: owner_rel.zip(owner_col),
                identity: row.get(10),
            },
        );
    }
    Ok(())
}

async fn load_table_parts(client: &Client, cat: &mut Catalog) -> Result<(), tokio_postgres::Error> {
    let sql = format!(
        "select k.oid, k.conname::text, k.contype::text, k.conrelid, k.contypid, k.conindid, \
                k.conparentid, k.conislocal, k.convalidated, k.confrelid, \
                pg_catalog.pg_get_constraintdef(k.oid), \
                pg_catalog.obj_description(k.oid, 'pg_constraint'), k.connoinherit, \
                coalesce(k.conkey, '{{}}'::int2[]) \
         from pg_catalog.pg_constraint k join pg_catalog.pg_namespace n on n.oid = k.connamespace \
         where {USER_NS}"
    );
    for row in client.query(&sql, &[]).await? {
        cat.constraints.insert(
            row.get(0),
            Constraint {
                name: row.get(1),
                kind: ch(&row, 2),
                relation: row.get(3),
                domain: row.get(4),
                index: row.get(5),
                parent: row.get(6),
                is_local: row.get(7),
                validated: row.get(8),
                referenced: row.get(9),
                definition: row.get(10),
                comment: row.get(11),
                no_inherit: row.get(12),
                columns: row.get(13),
            },
        );
    }

    let sql = format!(
        "select i.indexrelid, i.indrelid, ic.relnamespace, ic.relname::text, ic.relkind::text, \
                pg_catalog.pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisclustered, \
                i.indisreplident, pg_catalog.obj_description(i.indexrelid, 'pg_class') \
         from pg_catalog.pg_index i join pg_catalog.pg_class ic on ic.oid = i.indexrelid \
         join pg_catalog.pg_namespace n on n.oid = ic.relnamespace where {USER_NS}"
    );
    for row in client.query(&sql, &[]).await? {
        cat.indexes.insert(
            row.get(0),
            Index {
                relation: row.get(1),
                schema: row.get(2),
                name: row.get(3),
                kind: ch(&row, 4),
                definition: row.get(5),
                valid: row.get(6),
                clustered: row.get(7),
                replica_identity: row.get(8),
                comment: row.get(9),
            },
        );
    }

    // A trigger cloned onto a partition is internal up to 14 (15 made
    // clones ordinary triggers), yet its ENABLE state is its own: keep the
    // clones (`tgparentid`, 13+) but not the internal foreign-key triggers.
    // Before 13 clones cannot be told apart and are left out.
    let (parent, clones) = if cat.version >= 130000 {
        (
            "t.tgparentid",
            " or (t.tgparentid <> 0 and t.tgconstraint = 0)",
        )
    } else {
        ("0::oid", "")
    };
    let sql = format!(
        "select t.oid, t.tgrelid, t.tgname::text, pg_catalog.pg_get_triggerdef(t.oid), \
                t.tgenabled::text, {parent}, pg_catalog.obj_description(t.oid, 'pg_trigger') \
         from pg_catalog.pg_trigger t join pg_catalog.pg_class c on c.oid = t.tgrelid \
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
         where {USER_NS} and (not t.tgisinternal{clones})"
    );
    for row in client.query(&sql, &[]).await? {
        cat.triggers.insert(
            row.get(0),
            Trigger {
                relation: row.get(1),
                name: row.get(2),
                definition: row.get(3),
                enabled: ch(&row, 4),
                parent: row.get(5),
                comment: row.get(6),
            },
        );
    }

    let sql = format!(
        "select r.oid, r.ev_class, r.rulename::text, r.ev_enabled::text, \
                case when r.rulename <> '_RETURN' then pg_catalog.pg_get_ruledef(r.oid) end, \
                pg_catalog.obj_description(r.oid, 'pg_rewrite') \
         from pg_catalog.pg_rewrite r join pg_catalog.pg_class c on c.oid = r.ev_class \
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace where {USER_NS}"
    );
    for row in client.query(&sql, &[]).await? {
        cat.rules.insert(
            row.get(0),
            Rule {
                relation: row.get(1),
                name: row.get(2),
                enabled: ch(&row, 3),
                definition: row.get(4),
                comment: row.get(5),
            },
        );
    }

    let sql = format!(
        "select p.oid, p.polrelid, p.polname::text, p.polcmd::text, p.polpermissive, \
                array(select r.rolname::text from pg_catalog.pg_roles r \
                      where r.oid = any (p.polroles) order by r.rolname), \
                pg_catalog.pg_get_expr(p.polqual, p.polrelid), \
                pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), \
                pg_catalog.obj_description(p.oid, 'pg_policy') \
         from pg_catalog.pg_policy p join pg_catalog.pg_class c on c.oid = p.polrelid \
         join pg_catalog.pg_namespace n on n.oid = c.relnamespace where {USER_NS}"
    );
    for row in client.query(&sql, &[]).await? {
        cat.policies.insert(
            row.get(0),
            Policy {
                relation: row.get(1),
                name: row.get(2),
                command: ch(&row, 3),
                permissive: row.get(4),
                roles: row.get(5),
                using: row.get(6),
                with_check: row.get(7),
                comment: row.get(8),
            },
        );
    }

    for row in client
        .query(
            "select oid, adrelid, adnum from pg_catalog.pg_attrdef where oid >= 16384",
            &[],
        )
        .await?
    {
        cat.attrdefs.insert(row.get(0), (row.get(1), row.get(2)));
    }
    Ok(())
}

/// `(last_value, is_called)` of each sequence the role may read (SELECT
/// on it), by OID; the others are left out. `names` are `(oid, quoted
/// qualified name)`; read 200 at a time with `union all`.
pub(super) async fn sequence_values(
    client: &Client,
    names: &[(u32, String)],
) -> Result<HashMap<u32, (i64, bool)>, tokio_postgres::Error> {
    let oids: Vec<u32> = names.iter().map(|(oid, _)| *oid).collect();
    let readable: std::collections::HashSet<u32> = client
        .query(
            "select o from unnest($1::oid[]) o where has_sequence_privilege(o, 'select')",
            &[&oids],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let names: Vec<&(u32, String)> = names.iter().filter(|(o, _)| readable.contains(o)).collect();
    let mut out = HashMap::new();
    for chunk in names.chunks(200) {
        let sql = chunk
            .iter()
            .map(|(oid, name)| format!("select {oid}::oid, last_value, is_called from {name}"))
            .collect::<Vec<_>>()
            .join(" union all ");
        for row in client.query(&sql, &[]).await? {
            out.insert(row.get(0), (row.get(1), row.get(2)));
        }
    }
    Ok(out)
}
