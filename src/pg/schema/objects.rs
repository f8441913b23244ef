//! Operators, operator families and classes, casts and text search objects:
//! read from the catalogs, mapped to dependency-graph nodes, and rendered.
//!
//! These kinds share one graph node, [`super::select::Node::Object`], so
//! that the rest of the module only dispatches here.
//!
//! - **Operators** are created with their function, argument types,
//!   restriction and join estimators, `HASHES`/`MERGES`, and their commutator
//!   and negator. A chosen operator brings its commutator and negator along
//!   (no `pg_depend` row records them); naming one that does not exist yet
//!   creates it as a shell, which its own `create operator` fills in later,
//!   as on the source. Shell operators of the source are not created for
//!   themselves.
//! - **Operator families and classes.** Every family is created explicitly
//!   (`create operator family`), its loose members (the `pg_amop` /
//!   `pg_amproc` rows tied to the family, not to a class: cross-type
//!   operators, optional support functions, GiST operators) added by `alter
//!   operator family … add`; a class is created in its family with the
//!   members bound to it. Index access methods decide the same bindings on
//!   the destination, so each family ends with the same members.
//! - **Casts** have no schema: one is taken when its source or target type,
//!   or its function, is created, by itself or by its extension (casts
//!   made by a range type for its multirange, and extension casts, are
//!   not). No `pg_depend` row leads from a view or a default to a cast it
//!   uses, so casts rank before tables and views: created as soon as their
//!   types and function exist.
//! - **Text search** parsers, templates, dictionaries (`dictinitoption`, the
//!   server's own text of the options) and configurations with their
//!   mappings, per token type in `mapseqno` order.
//!
//! Everything belonging to an extension is left to `create extension`.
//! Creating operator classes and families, text search parsers and
//! templates, and casts `without function` needs a superuser on the
//! destination.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::{Client, Row};

use super::Statement;
use super::catalog::{Catalog, PG_PROC, PG_TYPE, USER_NS};
use super::select::{Node, Selected};
use crate::sql::{ident, literal, qualified};

/// `pg_amop`.
pub(super) const PG_AMOP: u32 = 2602;
/// `pg_amproc`.
pub(super) const PG_AMPROC: u32 = 2603;
/// `pg_cast`.
pub(super) const PG_CAST: u32 = 2605;
/// `pg_opclass`.
pub(super) const PG_OPCLASS: u32 = 2616;
/// `pg_operator`.
pub(super) const PG_OPERATOR: u32 = 2617;
/// `pg_opfamily`.
pub(super) const PG_OPFAMILY: u32 = 2753;
/// `pg_ts_dict`.
pub(super) const PG_TS_DICT: u32 = 3600;
/// `pg_ts_parser`.
pub(super) const PG_TS_PARSER: u32 = 3601;
/// `pg_ts_config`.
pub(super) const PG_TS_CONFIG: u32 = 3602;
/// `pg_ts_template`.
pub(super) const PG_TS_TEMPLATE: u32 = 3764;

/// Below this OID every object was made by `initdb` (`FirstNormalObjectId`).
const FIRST_NORMAL_OID: u32 = 16384;

/// Which catalog an [`super::select::Node::Object`] lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Kind {
    /// `pg_operator`.
    Operator,
    /// `pg_opfamily`, with its loose members.
    OpFamily,
    /// `pg_opclass`, with the members bound to it.
    OpClass,
    /// `pg_cast`.
    Cast,
    /// `pg_ts_parser`.
    TsParser,
    /// `pg_ts_template`.
    TsTemplate,
    /// `pg_ts_dict`.
    TsDictionary,
    /// `pg_ts_config`, with its mappings.
    TsConfig,
}

impl Kind {
    /// The catalog's OID (`pg_depend.classid`).
    pub(super) fn classid(self) -> u32 {
        match self {
            Kind::Operator => PG_OPERATOR,
            Kind::OpFamily => PG_OPFAMILY,
            Kind::OpClass => PG_OPCLASS,
            Kind::Cast => PG_CAST,
            Kind::TsParser => PG_TS_PARSER,
            Kind::TsTemplate => PG_TS_TEMPLATE,
            Kind::TsDictionary => PG_TS_DICT,
            Kind::TsConfig => PG_TS_CONFIG,
        }
    }

    /// The tie-break rank (see [`super::graph`]): after functions and
    /// aggregates (5, 6), before tables (15), so that a cast or an operator
    /// a view's text names exists when the view is created.
    pub(super) fn rank(self) -> u8 {
        match self {
            Kind::Operator => 7,
            Kind::OpFamily => 8,
            Kind::OpClass => 9,
            Kind::Cast => 10,
            Kind::TsParser => 11,
            Kind::TsTemplate => 12,
            Kind::TsDictionary => 13,
            Kind::TsConfig => 14,
        }
    }

    /// The SQL words naming the kind (`comment on <what> …`), also the
    /// [`Statement::kind`] of its `create`.
    pub(super) fn what(self) -> &'static str {
        match self {
            Kind::Operator => "operator",
            Kind::OpFamily => "operator family",
            Kind::OpClass => "operator class",
            Kind::Cast => "cast",
            Kind::TsParser => "text search parser",
            Kind::TsTemplate => "text search template",
            Kind::TsDictionary => "text search dictionary",
            Kind::TsConfig => "text search configuration",
        }
    }
}

/// An operator named by another object: `[schema, name]` and its OID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OperatorRef {
    pub oid: u32,
    pub schema: String,
    pub name: String,
}

/// A `pg_operator` row in a user schema.
#[derive(Debug, Clone)]
pub(super) struct Operator {
    pub schema: u32,
    pub name: String,
    /// `format_type(oprleft)`; `None` for a prefix operator.
    pub left: Option<String>,
    /// `format_type(oprright)`; `None` for a postfix operator (before 14).
    pub right: Option<String>,
    /// `oprcode::regproc`; `None` for a shell.
    pub function: Option<String>,
    pub commutator: Option<OperatorRef>,
    pub negator: Option<OperatorRef>,
    /// `oprrest::regproc`.
    pub restrict: Option<String>,
    /// `oprjoin::regproc`.
    pub join: Option<String>,
    pub hashes: bool,
    pub merges: bool,
    pub comment: Option<String>,
}

/// A `pg_opfamily` row in a user schema.
#[derive(Debug, Clone)]
pub(super) struct OpFamily {
    pub schema: u32,
    pub name: String,
    /// The index access method's name.
    pub method: String,
    pub comment: Option<String>,
}

/// A `pg_opclass` row in a user schema.
#[derive(Debug, Clone)]
pub(super) struct OpClass {
    pub schema: u32,
    pub name: String,
    pub method: String,
    /// `format_type(opcintype)`.
    pub input_type: String,
    pub default: bool,
    /// `[schema, name]` of its family.
    pub family: Vec<String>,
    /// `format_type(opckeytype)` when it stores another type.
    pub storage: Option<String>,
    pub comment: Option<String>,
}

/// What a `pg_amop` or `pg_amproc` row adds to a family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum MemberItem {
    /// `OPERATOR n op (left, right) [FOR ORDER BY family]`.
    Operator {
        op: OperatorRef,
        /// `[schema, name]` of the sort family of an ordering operator.
        order_by: Option<Vec<String>>,
    },
    /// `FUNCTION n (left, right) proc(args)`; `amproc::regprocedure`.
    Function { signature: String },
}

/// A `pg_amop` or `pg_amproc` row of a family in a user schema.
#[derive(Debug, Clone)]
pub(super) struct AmMember {
    pub family: u32,
    /// The class it is bound to (an internal dependency), or 0: a loose
    /// member of the family.
    pub class: u32,
    /// Strategy or support function number.
    pub number: i16,
    /// `format_type` of the left and right operand types.
    pub left: String,
    pub right: String,
    pub item: MemberItem,
}

/// A user `pg_cast` row.
#[derive(Debug, Clone)]
pub(super) struct Cast {
    pub source_type: u32,
    pub target_type: u32,
    /// `format_type` of the source and target types.
    pub source: String,
    pub target: String,
    /// `castfunc`, 0 for none.
    pub function: u32,
    /// `castfunc::regprocedure`.
    pub signature: Option<String>,
    /// `castcontext`: e a i.
    pub context: char,
    /// `castmethod`: f i b.
    pub method: char,
    /// `(source as target)`, for messages and ordering.
    pub label: String,
    pub comment: Option<String>,
}

/// A `pg_ts_parser` row; functions are `regproc` text.
#[derive(Debug, Clone)]
pub(super) struct TsParser {
    pub schema: u32,
    pub name: String,
    pub start: String,
    pub token: String,
    pub end: String,
    pub lextypes: String,
    pub headline: Option<String>,
    pub comment: Option<String>,
}

/// A `pg_ts_template` row; functions are `regproc` text.
#[derive(Debug, Clone)]
pub(super) struct TsTemplate {
    pub schema: u32,
    pub name: String,
    pub init: Option<String>,
    pub lexize: String,
    pub comment: Option<String>,
}

/// A `pg_ts_dict` row.
#[derive(Debug, Clone)]
pub(super) struct TsDictionary {
    pub schema: u32,
    pub name: String,
    /// `[schema, name]` of its template.
    pub template: Vec<String>,
    /// `dictinitoption`: the options as the server wrote them
    /// (`stopwords = 'english', accept = false`).
    pub options: Option<String>,
    pub comment: Option<String>,
}

/// A `pg_ts_config` row with its `pg_ts_config_map` rows.
#[derive(Debug, Clone)]
pub(super) struct TsConfig {
    pub schema: u32,
    pub name: String,
    /// `[schema, name]` of its parser.
    pub parser: Vec<String>,
    /// Per token type (by `maptokentype`): its alias and its dictionaries
    /// (`[schema, name]`) in `mapseqno` order.
    pub mappings: Vec<(String, Vec<Vec<String>>)>,
    pub comment: Option<String>,
}

/// The objects of this module found on the source, keyed by OID.
#[derive(Debug, Default)]
pub(super) struct Objects {
    pub operators: BTreeMap<u32, Operator>,
    pub families: BTreeMap<u32, OpFamily>,
    pub classes: BTreeMap<u32, OpClass>,
    /// `(PG_AMOP or PG_AMPROC, oid)` → the member.
    pub am_members: BTreeMap<(u32, u32), AmMember>,
    pub casts: BTreeMap<u32, Cast>,
    pub parsers: BTreeMap<u32, TsParser>,
    pub templates: BTreeMap<u32, TsTemplate>,
    pub dictionaries: BTreeMap<u32, TsDictionary>,
    pub configs: BTreeMap<u32, TsConfig>,
}

fn ch(row: &Row, idx: usize) -> char {
    row.get::<_, Option<String>>(idx)
        .and_then(|s| s.chars().next())
        .unwrap_or('\0')
}

/// SQL for the [`OperatorRef`] fields (`oid`, `[schema, name]`) of the
/// operator whose OID is `col`, or NULLs.
fn operator_ref(col: &str) -> String {
    format!(
        "case when {col} <> 0 then {col} end, \
         (select array[rn.nspname::text, r.oprname::text] from pg_catalog.pg_operator r \
          join pg_catalog.pg_namespace rn on rn.oid = r.oprnamespace where r.oid = {col})"
    )
}

fn read_ref(row: &Row, idx: usize) -> Option<OperatorRef> {
    let oid: Option<u32> = row.get(idx);
    let parts: Option<Vec<String>> = row.get(idx + 1);
    match (oid, parts.as_deref()) {
        (Some(oid), Some([schema, name])) => Some(OperatorRef {
            oid,
            schema: schema.clone(),
            name: name.clone(),
        }),
        _ => None,
    }
}

/// `regproc` text of the function whose OID is `col`, or NULL when 0.
fn regproc(col: &str) -> String {
    format!("case when {col} <> 0 then {col}::pg_catalog.regproc::text end")
}

/// Reads every object of this module in user schemas, and every user cast.
/// Runs on the caller's session, under [`super::generate`]'s pinned
/// `search_path = ''` (so `format_type`, `regproc` and `regprocedure` text
/// is schema-qualified).
pub(super) async fn load(client: &Client, out: &mut Objects) -> Result<(), tokio_postgres::Error> {
    let sql = format!(
        "select o.oid, o.oprnamespace, o.oprname::text, \
                case when o.oprleft <> 0 then pg_catalog.format_type(o.oprleft, null) end, \
                case when o.oprright <> 0 then pg_catalog.format_type(o.oprright, null) end, \
                {code}, {com}, {neg}, {rest}, {join}, o.oprcanhash, o.oprcanmerge, \
                pg_catalog.obj_description(o.oid, 'pg_operator') \
         from pg_catalog.pg_operator o join pg_catalog.pg_namespace n on n.oid = o.oprnamespace \
         where {USER_NS}",
        code = regproc("o.oprcode"),
        com = operator_ref("o.oprcom"),
        neg = operator_ref("o.oprnegate"),
        rest = regproc("o.oprrest"),
        join = regproc("o.oprjoin"),
    );
    for row in client.query(&sql, &[]).await? {
        out.operators.insert(
            row.get(0),
            Operator {
                schema: row.get(1),
                name: row.get(2),
                left: row.get(3),
                right: row.get(4),
                function: row.get(5),
                commutator: read_ref(&row, 6),
                negator: read_ref(&row, 8),
                restrict: row.get(10),
                join: row.get(11),
                hashes: row.get(12),
                merges: row.get(13),
                comment: row.get(14),
            },
        );
    }

    let sql = format!(
        "select f.oid, f.opfnamespace, f.opfname::text, am.amname::text, \
                pg_catalog.obj_description(f.oid, 'pg_opfamily') \
         from pg_catalog.pg_opfamily f join pg_catalog.pg_am am on am.oid = f.opfmethod \
         join pg_catalog.pg_namespace n on n.oid = f.opfnamespace where {USER_NS}"
    );
    for row in client.query(&sql, &[]).await? {
        out.families.insert(
            row.get(0),
            OpFamily {
                schema: row.get(1),
                name: row.get(2),
                method: row.get(3),
                comment: row.get(4),
            },
        );
    }

    let sql = format!(
        "select c.oid, c.opcnamespace, c.opcname::text, am.amname::text, \
                pg_catalog.format_type(c.opcintype, null), c.opcdefault, \
                array[fn.nspname::text, f.opfname::text], \
                case when c.opckeytype <> 0 then pg_catalog.format_type(c.opckeytype, null) end, \
                pg_catalog.obj_description(c.oid, 'pg_opclass') \
         from pg_catalog.pg_opclass c join pg_catalog.pg_am am on am.oid = c.opcmethod \
         join pg_catalog.pg_opfamily f on f.oid = c.opcfamily \
         join pg_catalog.pg_namespace fn on fn.oid = f.opfnamespace \
         join pg_catalog.pg_namespace n on n.oid = c.opcnamespace where {USER_NS}"
    );
    for row in client.query(&sql, &[]).await? {
        out.classes.insert(
            row.get(0),
            OpClass {
                schema: row.get(1),
                name: row.get(2),
                method: row.get(3),
                input_type: row.get(4),
                default: row.get(5),
                family: row.get(6),
                storage: row.get(7),
                comment: row.get(8),
            },
        );
    }

    // Members of families in user schemas; the class a member is bound to
    // is the one it depends on internally.
    let bound = |catalog: &str| {
        format!(
            "coalesce((select d.refobjid from pg_catalog.pg_depend d \
                        where d.classid = 'pg_catalog.{catalog}'::pg_catalog.regclass \
                          and d.objid = m.oid and d.deptype = 'i' \
                          and d.refclassid = 'pg_catalog.pg_opclass'::pg_catalog.regclass \
                        limit 1), 0::oid)"
        )
    };
    let sql = format!(
        "select m.oid, m.amopfamily, {class}, m.amopstrategy, \
                pg_catalog.format_type(m.amoplefttype, null), \
                pg_catalog.format_type(m.amoprighttype, null), {op}, \
                case when m.amoppurpose = 'o' then \
                     (select array[sn.nspname::text, s.opfname::text] \
                        from pg_catalog.pg_opfamily s \
                        join pg_catalog.pg_namespace sn on sn.oid = s.opfnamespace \
                       where s.oid = m.amopsortfamily) end \
         from pg_catalog.pg_amop m join pg_catalog.pg_opfamily f on f.oid = m.amopfamily \
         join pg_catalog.pg_namespace n on n.oid = f.opfnamespace where {USER_NS}",
        class = bound("pg_amop"),
        op = operator_ref("m.amopopr"),
    );
    for row in client.query(&sql, &[]).await? {
        let Some(op) = read_ref(&row, 6) else {
            continue;
        };
        out.am_members.insert(
            (PG_AMOP, row.get(0)),
            AmMember {
                family: row.get(1),
                class: row.get(2),
                number: row.get(3),
                left: row.get(4),
                right: row.get(5),
                item: MemberItem::Operator {
                    op,
                    order_by: row.get(8),
                },
            },
        );
    }
    let sql = format!(
        "select m.oid, m.amprocfamily, {class}, m.amprocnum, \
                pg_catalog.format_type(m.amproclefttype, null), \
                pg_catalog.format_type(m.amprocrighttype, null), \
                m.amproc::pg_catalog.regprocedure::text \
         from pg_catalog.pg_amproc m join pg_catalog.pg_opfamily f on f.oid = m.amprocfamily \
         join pg_catalog.pg_namespace n on n.oid = f.opfnamespace where {USER_NS}",
        class = bound("pg_amproc"),
    );
    for row in client.query(&sql, &[]).await? {
        out.am_members.insert(
            (PG_AMPROC, row.get(0)),
            AmMember {
                family: row.get(1),
                class: row.get(2),
                number: row.get(3),
                left: row.get(4),
                right: row.get(5),
                item: MemberItem::Function {
                    signature: row.get(6),
                },
            },
        );
    }

    // Casts made by initdb have system OIDs; the ones a range type makes
    // for its multirange depend on it internally and come with it.
    let sql = format!(
        "select c.oid, c.castsource, c.casttarget, pg_catalog.format_type(c.castsource, null), \
                pg_catalog.format_type(c.casttarget, null), c.castfunc, \
                case when c.castfunc <> 0 then c.castfunc::pg_catalog.regprocedure::text end, \
                c.castcontext::text, c.castmethod::text, \
                pg_catalog.obj_description(c.oid, 'pg_cast') \
         from pg_catalog.pg_cast c where c.oid >= {FIRST_NORMAL_OID} \
           and not exists (select 1 from pg_catalog.pg_depend d \
                            where d.classid = 'pg_catalog.pg_cast'::pg_catalog.regclass \
                              and d.objid = c.oid and d.deptype = 'i')"
    );
    for row in client.query(&sql, &[]).await? {
        let (source, target): (String, String) = (row.get(3), row.get(4));
        out.casts.insert(
            row.get(0),
            Cast {
                source_type: row.get(1),
                target_type: row.get(2),
                label: format!("({source} as {target})"),
                source,
                target,
                function: row.get(5),
                signature: row.get(6),
                context: ch(&row, 7),
                method: ch(&row, 8),
                comment: row.get(9),
            },
        );
    }

    let sql = format!(
        "select p.oid, p.prsnamespace, p.prsname::text, {start}, {token}, {end}, {lextype}, \
                {headline}, pg_catalog.obj_description(p.oid, 'pg_ts_parser') \
         from pg_catalog.pg_ts_parser p join pg_catalog.pg_namespace n on n.oid = p.prsnamespace \
         where {USER_NS}",
        start = regproc("p.prsstart"),
        token = regproc("p.prstoken"),
        end = regproc("p.prsend"),
        lextype = regproc("p.prslextype"),
        headline = regproc("p.prsheadline"),
    );
    for row in client.query(&sql, &[]).await? {
        out.parsers.insert(
            row.get(0),
            TsParser {
                schema: row.get(1),
                name: row.get(2),
                start: row.get::<_, Option<String>>(3).unwrap_or_default(),
                token: row.get::<_, Option<String>>(4).unwrap_or_default(),
                end: row.get::<_, Option<String>>(5).unwrap_or_default(),
                lextypes: row.get::<_, Option<String>>(6).unwrap_or_default(),
                headline: row.get(7),
                comment: row.get(8),
            },
        );
    }

    let sql = format!(
        "select t.oid, t.tmplnamespace, t.tmplname::text, {init}, {lexize}, \
                pg_catalog.obj_description(t.oid, 'pg_ts_template') \
         from pg_catalog.pg_ts_template t \
         join pg_catalog.pg_namespace n on n.oid = t.tmplnamespace where {USER_NS}",
        init = regproc("t.tmplinit"),
        lexize = regproc("t.tmpllexize"),
    );
    for row in client.query(&sql, &[]).await? {
        out.templates.insert(
            row.get(0),
            TsTemplate {
                schema: row.get(1),
                name: row.get(2),
                init: row.get(3),
                lexize: row.get::<_, Option<String>>(4).unwrap_or_default(),
                comment: row.get(5),
            },
        );
    }

    let sql = format!(
        "select d.oid, d.dictnamespace, d.dictname::text, \
                array[tn.nspname::text, t.tmplname::text], d.dictinitoption, \
                pg_catalog.obj_description(d.oid, 'pg_ts_dict') \
         from pg_catalog.pg_ts_dict d join pg_catalog.pg_ts_template t on t.oid = d.dicttemplate \
         join pg_catalog.pg_namespace tn on tn.oid = t.tmplnamespace \
         join pg_catalog.pg_namespace n on n.oid = d.dictnamespace where {USER_NS}"
    );
    for row in client.query(&sql, &[]).await? {
        out.dictionaries.insert(
            row.get(0),
            TsDictionary {
                schema: row.get(1),
                name: row.get(2),
                template: row.get(3),
                options: row.get(4),
                comment: row.get(5),
            },
        );
    }

    let sql = format!(
        "select c.oid, c.cfgnamespace, c.cfgname::text, array[pn.nspname::text, p.prsname::text], \
                pg_catalog.obj_description(c.oid, 'pg_ts_config') \
         from pg_catalog.pg_ts_config c join pg_catalog.pg_ts_parser p on p.oid = c.cfgparser \
         join pg_catalog.pg_namespace pn on pn.oid = p.prsnamespace \
         join pg_catalog.pg_namespace n on n.oid = c.cfgnamespace where {USER_NS}"
    );
    for row in client.query(&sql, &[]).await? {
        out.configs.insert(
            row.get(0),
            TsConfig {
                schema: row.get(1),
                name: row.get(2),
                parser: row.get(3),
                mappings: Vec::new(),
                comment: row.get(4),
            },
        );
    }
    let sql = format!(
        "select m.mapcfg, m.maptokentype, \
                (select t.alias from pg_catalog.ts_token_type(c.cfgparser) t \
                  where t.tokid = m.maptokentype), \
                array[dn.nspname::text, d.dictname::text] \
         from pg_catalog.pg_ts_config_map m join pg_catalog.pg_ts_config c on c.oid = m.mapcfg \
         join pg_catalog.pg_ts_dict d on d.oid = m.mapdict \
         join pg_catalog.pg_namespace dn on dn.oid = d.dictnamespace \
         join pg_catalog.pg_namespace n on n.oid = c.cfgnamespace where {USER_NS} \
         order by m.mapcfg, m.maptokentype, m.mapseqno"
    );
    let mut last: Option<(u32, i32)> = None;
    for row in client.query(&sql, &[]).await? {
        let (cfg, token): (u32, i32) = (row.get(0), row.get(1));
        let Some(config) = out.configs.get_mut(&cfg) else {
            continue;
        };
        let alias: Option<String> = row.get(2);
        let dict: Vec<String> = row.get(3);
        if last == Some((cfg, token))
            && let Some((_, dicts)) = config.mappings.last_mut()
        {
            dicts.push(dict);
        } else {
            config
                .mappings
                .push((alias.unwrap_or_else(|| token.to_string()), vec![dict]));
        }
        last = Some((cfg, token));
    }
    Ok(())
}

impl Objects {
    /// The object `(classid, objid)` names, when it is one of this
    /// module's kinds (not a family member: see [`Self::member_owner`]).
    pub(super) fn kind_of(&self, classid: u32, objid: u32) -> Option<Kind> {
        match classid {
            PG_OPERATOR => self
                .operators
                .contains_key(&objid)
                .then_some(Kind::Operator),
            PG_OPFAMILY => self.families.contains_key(&objid).then_some(Kind::OpFamily),
            PG_OPCLASS => self.classes.contains_key(&objid).then_some(Kind::OpClass),
            PG_CAST => self.casts.contains_key(&objid).then_some(Kind::Cast),
            PG_TS_PARSER => self.parsers.contains_key(&objid).then_some(Kind::TsParser),
            PG_TS_TEMPLATE => self
                .templates
                .contains_key(&objid)
                .then_some(Kind::TsTemplate),
            PG_TS_DICT => self
                .dictionaries
                .contains_key(&objid)
                .then_some(Kind::TsDictionary),
            PG_TS_CONFIG => self.configs.contains_key(&objid).then_some(Kind::TsConfig),
            _ => None,
        }
    }

    /// For a `pg_amop` or `pg_amproc` row: the class that creates it (when
    /// bound to one) or its family, as `(classid, oid)`.
    pub(super) fn member_owner(&self, classid: u32, objid: u32) -> Option<(u32, u32)> {
        let member = self.am_members.get(&(classid, objid))?;
        Some(if member.class != 0 {
            (PG_OPCLASS, member.class)
        } else {
            (PG_OPFAMILY, member.family)
        })
    }

    /// Schema OID and name (`(0, "(a as b)")` for a cast).
    pub(super) fn name(&self, kind: Kind, oid: u32) -> Option<(u32, &str)> {
        match kind {
            Kind::Operator => self.operators.get(&oid).map(|o| (o.schema, &*o.name)),
            Kind::OpFamily => self.families.get(&oid).map(|o| (o.schema, &*o.name)),
            Kind::OpClass => self.classes.get(&oid).map(|o| (o.schema, &*o.name)),
            Kind::Cast => self.casts.get(&oid).map(|c| (0, &*c.label)),
            Kind::TsParser => self.parsers.get(&oid).map(|o| (o.schema, &*o.name)),
            Kind::TsTemplate => self.templates.get(&oid).map(|o| (o.schema, &*o.name)),
            Kind::TsDictionary => self.dictionaries.get(&oid).map(|o| (o.schema, &*o.name)),
            Kind::TsConfig => self.configs.get(&oid).map(|o| (o.schema, &*o.name)),
        }
    }

    /// Every object of schema `ns` (casts have none; shell operators are
    /// left out), extension members included.
    pub(super) fn in_schema(&self, ns: u32) -> Vec<(Kind, u32)> {
        fn of<T>(
            kind: Kind,
            map: &BTreeMap<u32, T>,
            ns: u32,
            schema: fn(&T) -> u32,
        ) -> impl Iterator<Item = (Kind, u32)> + '_ {
            map.iter()
                .filter(move |(_, o)| schema(o) == ns)
                .map(move |(oid, _)| (kind, *oid))
        }
        let operators = self
            .operators
            .iter()
            .filter(|(_, o)| o.schema == ns && o.function.is_some())
            .map(|(oid, _)| (Kind::Operator, *oid));
        operators
            .chain(of(Kind::OpFamily, &self.families, ns, |o| o.schema))
            .chain(of(Kind::OpClass, &self.classes, ns, |o| o.schema))
            .chain(of(Kind::TsParser, &self.parsers, ns, |o| o.schema))
            .chain(of(Kind::TsTemplate, &self.templates, ns, |o| o.schema))
            .chain(of(Kind::TsDictionary, &self.dictionaries, ns, |o| o.schema))
            .chain(of(Kind::TsConfig, &self.configs, ns, |o| o.schema))
            .collect()
    }
}

/// Objects that no `pg_depend` row leads to but that the chosen `set`
/// implies: the casts whose source or target type or whose function is a
/// chosen type, table (row type), function or extension's member, and the
/// commutators and
/// negators of chosen operators (the planner relies on them). Extension
/// members are not among them; what these need comes with the closure.
pub(super) fn implied(cat: &Catalog, set: &BTreeSet<Node>) -> Vec<Node> {
    let chosen = |node: Option<Node>| {
        node.is_some_and(|n| {
            matches!(
                n,
                Node::Type(_) | Node::Relation(_) | Node::Function(_) | Node::Extension(_)
            ) && set.contains(&n)
        })
    };
    let casts = cat
        .objects
        .casts
        .iter()
        .filter(|(oid, _)| !cat.members.contains_key(&(PG_CAST, **oid)))
        .filter(|(_, c)| {
            chosen(cat.node_of(PG_TYPE, c.source_type))
                || chosen(cat.node_of(PG_TYPE, c.target_type))
                || (c.function != 0 && chosen(cat.node_of(PG_PROC, c.function)))
        })
        .map(|(oid, _)| Node::Object(Kind::Cast, *oid));
    let companions = set
        .iter()
        .filter_map(|node| match node {
            Node::Object(Kind::Operator, oid) => cat.objects.operators.get(oid),
            _ => None,
        })
        .flat_map(|op| [&op.commutator, &op.negator])
        .flatten()
        .filter_map(|r| cat.node_of(PG_OPERATOR, r.oid))
        .filter(|node| match node {
            Node::Object(Kind::Operator, oid) => cat
                .objects
                .operators
                .get(oid)
                .is_some_and(|o| o.function.is_some()),
            _ => false,
        });
    casts.chain(companions).collect()
}

/// `schema.name` (an operator with its argument types, a cast as
/// `cast (a as b)`), unquoted, for messages.
pub(super) fn display(cat: &Catalog, kind: Kind, oid: u32) -> String {
    let o = &cat.objects;
    match kind {
        Kind::Operator => match o.operators.get(&oid) {
            Some(op) => format!(
                "{}.{}({}, {})",
                cat.schema_name(op.schema),
                op.name,
                op.left.as_deref().unwrap_or("none"),
                op.right.as_deref().unwrap_or("none")
            ),
            None => "?".to_owned(),
        },
        Kind::Cast => o
            .casts
            .get(&oid)
            .map_or_else(|| "?".to_owned(), |c| format!("cast {}", c.label)),
        _ => match o.name(kind, oid) {
            Some((schema, name)) => format!("{}.{name}", cat.schema_name(schema)),
            None => "?".to_owned(),
        },
    }
}

/// Whether `name` is made of the characters an operator name may hold
/// (PostgreSQL docs §4.1.3): it is written into SQL unquoted, since
/// operator names cannot be quoted.
fn is_operator_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| "+-*/<>=~!@#%^&|`?".contains(c))
}

/// `"schema".op`: an operator name as `create operator` and operator class
/// items take it.
fn operator_name(schema: &str, name: &str) -> String {
    format!("{}.{name}", ident(schema))
}

/// `"schema"."name"` from a `[schema, name]` pair read from the catalog.
fn pair(parts: &[String]) -> String {
    match parts {
        [schema, name] => qualified(schema, name),
        _ => parts.iter().map(|p| ident(p)).collect::<Vec<_>>().join("."),
    }
}

fn stmt(kind: &'static str, name: impl Into<String>, sql: impl Into<String>) -> Statement {
    Statement {
        kind,
        name: name.into(),
        sql: sql.into(),
    }
}

/// Quoted qualified name of a schema object of this module.
fn object_q(cat: &Catalog, kind: Kind, oid: u32) -> String {
    match cat.objects.name(kind, oid) {
        Some((schema, name)) => qualified(cat.schema_name(schema), name),
        None => oid.to_string(),
    }
}

/// Whether operator `r` exists on the destination once the pre-data ran: a
/// system operator, a created one, or a shell in a created schema (naming
/// it recreates the shell).
fn operator_exists(cat: &Catalog, sel: &Selected, r: &OperatorRef) -> bool {
    if r.oid < FIRST_NORMAL_OID {
        return true;
    }
    if cat
        .node_of(PG_OPERATOR, r.oid)
        .is_some_and(|n| sel.nodes.contains(&n))
    {
        return true;
    }
    cat.objects
        .operators
        .get(&r.oid)
        .is_some_and(|o| o.function.is_none() && sel.nodes.contains(&Node::Schema(o.schema)))
}

/// The statements creating object `(kind, oid)`; what cannot be created is
/// said in `warnings`.
pub(super) fn create(
    cat: &Catalog,
    sel: &Selected,
    kind: Kind,
    oid: u32,
    out: &mut Vec<Statement>,
    warnings: &mut Vec<String>,
) {
    let o = &cat.objects;
    let name = display(cat, kind, oid);
    let q = object_q(cat, kind, oid);
    match kind {
        Kind::Operator => {
            let Some(op) = o.operators.get(&oid) else {
                return;
            };
            let Some(function) = &op.function else {
                return;
            };
            if !is_operator_name(&op.name) {
                warnings.push(format!("operator {name}: unexpected name; not created"));
                return;
            }
            if op.right.is_none() {
                warnings.push(format!(
                    "operator {name} is a postfix operator (removed in PostgreSQL 14); not created"
                ));
                return;
            }
            let mut opts = vec![format!("function = {function}")];
            if let Some(t) = &op.left {
                opts.push(format!("leftarg = {t}"));
            }
            if let Some(t) = &op.right {
                opts.push(format!("rightarg = {t}"));
            }
            for (word, r) in [("commutator", &op.commutator), ("negator", &op.negator)] {
                let Some(r) = r else { continue };
                if !is_operator_name(&r.name) {
                    continue;
                }
                if operator_exists(cat, sel, r) {
                    opts.push(format!(
                        "{word} = operator({})",
                        operator_name(&r.schema, &r.name)
                    ));
                } else {
                    warnings.push(format!(
                        "operator {name}: its {word} {}.{} is not selected; created without it",
                        r.schema, r.name
                    ));
                }
            }
            if let Some(f) = &op.restrict {
                opts.push(format!("restrict = {f}"));
            }
            if let Some(f) = &op.join {
                opts.push(format!("join = {f}"));
            }
            if op.hashes {
                opts.push("hashes".to_owned());
            }
            if op.merges {
                opts.push("merges".to_owned());
            }
            out.push(stmt(
                "operator",
                name,
                format!(
                    "create operator {} ({})",
                    operator_name(cat.schema_name(op.schema), &op.name),
                    opts.join(", ")
                ),
            ));
        }
        Kind::OpFamily => {
            let Some(f) = o.families.get(&oid) else {
                return;
            };
            let using = ident(&f.method);
            out.push(stmt(
                "operator family",
                name.clone(),
                format!("create operator family {q} using {using}"),
            ));
            let items = member_items(cat, |m| m.family == oid && m.class == 0);
            if !items.is_empty() {
                out.push(stmt(
                    "operator family members",
                    name,
                    format!(
                        "alter operator family {q} using {using} add {}",
                        items.join(", ")
                    ),
                ));
            }
        }
        Kind::OpClass => {
            let Some(c) = o.classes.get(&oid) else {
                return;
            };
            let mut items = member_items(cat, |m| m.class == oid);
            match &c.storage {
                Some(t) => items.push(format!("storage {t}")),
                // A class needs one item; storage of its own type is none.
                None if items.is_empty() => items.push(format!("storage {}", c.input_type)),
                None => {}
            }
            out.push(stmt(
                "operator class",
                name,
                format!(
                    "create operator class {q} {}for type {} using {} family {} as {}",
                    if c.default { "default " } else { "" },
                    c.input_type,
                    ident(&c.method),
                    pair(&c.family),
                    items.join(", ")
                ),
            ));
        }
        Kind::Cast => {
            let Some(c) = o.casts.get(&oid) else {
                return;
            };
            let how = match (c.method, &c.signature) {
                ('i', _) => "with inout".to_owned(),
                ('b', _) => "without function".to_owned(),
                (_, Some(f)) => format!("with function {f}"),
                (_, None) => {
                    warnings.push(format!("{name} has no function; not created"));
                    return;
                }
            };
            let context = match c.context {
                'a' => " as assignment",
                'i' => " as implicit",
                _ => "",
            };
            out.push(stmt(
                "cast",
                name,
                format!("create cast ({} as {}) {how}{context}", c.source, c.target),
            ));
        }
        Kind::TsParser => {
            let Some(p) = o.parsers.get(&oid) else {
                return;
            };
            let mut opts = vec![
                format!("start = {}", p.start),
                format!("gettoken = {}", p.token),
                format!("end = {}", p.end),
                format!("lextypes = {}", p.lextypes),
            ];
            if let Some(f) = &p.headline {
                opts.push(format!("headline = {f}"));
            }
            out.push(stmt(
                "text search parser",
                name,
                format!("create text search parser {q} ({})", opts.join(", ")),
            ));
        }
        Kind::TsTemplate => {
            let Some(t) = o.templates.get(&oid) else {
                return;
            };
            let mut opts = Vec::new();
            if let Some(f) = &t.init {
                opts.push(format!("init = {f}"));
            }
            opts.push(format!("lexize = {}", t.lexize));
            out.push(stmt(
                "text search template",
                name,
                format!("create text search template {q} ({})", opts.join(", ")),
            ));
        }
        Kind::TsDictionary => {
            let Some(d) = o.dictionaries.get(&oid) else {
                return;
            };
            let mut opts = vec![format!("template = {}", pair(&d.template))];
            if let Some(options) = d.options.as_deref().filter(|s| !s.trim().is_empty()) {
                opts.push(options.to_owned());
            }
            out.push(stmt(
                "text search dictionary",
                name,
                format!("create text search dictionary {q} ({})", opts.join(", ")),
            ));
        }
        Kind::TsConfig => {
            let Some(c) = o.configs.get(&oid) else {
                return;
            };
            out.push(stmt(
                "text search configuration",
                name.clone(),
                format!(
                    "create text search configuration {q} (parser = {})",
                    pair(&c.parser)
                ),
            ));
            // Token types with the same dictionaries share one statement.
            let mut groups: Vec<(&Vec<Vec<String>>, Vec<String>)> = Vec::new();
            for (alias, dicts) in &c.mappings {
                match groups.iter_mut().find(|(d, _)| *d == dicts) {
                    Some((_, aliases)) => aliases.push(ident(alias)),
                    None => groups.push((dicts, vec![ident(alias)])),
                }
            }
            for (dicts, aliases) in groups {
                let dicts: Vec<String> = dicts.iter().map(|d| pair(d)).collect();
                out.push(stmt(
                    "text search mapping",
                    name.clone(),
                    format!(
                        "alter text search configuration {q} add mapping for {} with {}",
                        aliases.join(", "),
                        dicts.join(", ")
                    ),
                ));
            }
        }
    }
}

/// `operator n op (l, r) [for order by f]` and `function n (l, r) f(args)`
/// items of the members `keep` selects: operators by strategy, then
/// functions by number.
fn member_items(cat: &Catalog, keep: impl Fn(&AmMember) -> bool) -> Vec<String> {
    let mut members: Vec<&AmMember> = cat
        .objects
        .am_members
        .values()
        .filter(|m| keep(m))
        .collect();
    members.sort_by(|a, b| {
        let rank = |m: &AmMember| matches!(m.item, MemberItem::Function { .. });
        (rank(a), a.number, &a.left, &a.right).cmp(&(rank(b), b.number, &b.left, &b.right))
    });
    members
        .into_iter()
        .filter_map(|m| match &m.item {
            MemberItem::Operator { op, order_by } => {
                if !is_operator_name(&op.name) {
                    return None;
                }
                let purpose = match order_by {
                    Some(family) => format!(" for order by {}", pair(family)),
                    None => String::new(),
                };
                Some(format!(
                    "operator {} {} ({}, {}){purpose}",
                    m.number,
                    operator_name(&op.schema, &op.name),
                    m.left,
                    m.right
                ))
            }
            MemberItem::Function { signature } => Some(format!(
                "function {} ({}, {}) {signature}",
                m.number, m.left, m.right
            )),
        })
        .collect()
}

/// The `comment on` statement of object `(kind, oid)`, when it has one.
pub(super) fn comment(cat: &Catalog, kind: Kind, oid: u32, out: &mut Vec<Statement>) {
    let o = &cat.objects;
    let q = object_q(cat, kind, oid);
    let (target, text) = match kind {
        Kind::Operator => match o.operators.get(&oid) {
            Some(op) if is_operator_name(&op.name) => (
                format!(
                    "{} ({}, {})",
                    operator_name(cat.schema_name(op.schema), &op.name),
                    op.left.as_deref().unwrap_or("none"),
                    op.right.as_deref().unwrap_or("none")
                ),
                &op.comment,
            ),
            _ => return,
        },
        Kind::OpFamily => match o.families.get(&oid) {
            Some(f) => (format!("{q} using {}", ident(&f.method)), &f.comment),
            None => return,
        },
        Kind::OpClass => match o.classes.get(&oid) {
            Some(c) => (format!("{q} using {}", ident(&c.method)), &c.comment),
            None => return,
        },
        Kind::Cast => match o.casts.get(&oid) {
            Some(c) => (format!("({} as {})", c.source, c.target), &c.comment),
            None => return,
        },
        Kind::TsParser => match o.parsers.get(&oid) {
            Some(p) => (q, &p.comment),
            None => return,
        },
        Kind::TsTemplate => match o.templates.get(&oid) {
            Some(t) => (q, &t.comment),
            None => return,
        },
        Kind::TsDictionary => match o.dictionaries.get(&oid) {
            Some(d) => (q, &d.comment),
            None => return,
        },
        Kind::TsConfig => match o.configs.get(&oid) {
            Some(c) => (q, &c.comment),
            None => return,
        },
    };
    if let Some(text) = text {
        let name = match kind {
            // Already reads `cast (a as b)`.
            Kind::Cast => display(cat, kind, oid),
            _ => format!("{} {}", kind.what(), display(cat, kind, oid)),
        };
        out.push(stmt(
            "comment",
            name,
            format!("comment on {} {target} is {}", kind.what(), literal(text)),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::QualifiedName;
    use crate::pg::schema::SchemaSelection;
    use crate::pg::schema::catalog::{
        Depend, Extension, Function, Index, Namespace, PG_CLASS, PG_EXTENSION, Relation, TypeInfo,
    };
    use crate::pg::schema::ddl::Renderer;
    use crate::pg::schema::select::select;

    const PUBLIC: u32 = 2200;
    const MOOD: u32 = 16400;
    const EQ_FN: u32 = 16410;
    const CAST_FN: u32 = 16411;
    const EQ: u32 = 16420;
    const NE: u32 = 16421;
    const FAMILY: u32 = 16430;
    const CLASS: u32 = 16431;
    const AMOP: u32 = 16432;
    const AMPROC: u32 = 16433;
    const CAST: u32 = 16440;
    const CONFIG: u32 = 16450;
    const T: u32 = 16500;
    const T_INDEX: u32 = 16501;
    const V: u32 = 16510;
    const EXT: u32 = 16600;
    const EXT_CLASS: u32 = 16601;
    const EXT_AMOP: u32 = 16602;

    fn relation(name: &str, kind: char) -> Relation {
        Relation {
            schema: PUBLIC,
            name: name.into(),
            kind,
            persistence: 'p',
            reltype: 0,
            is_partition: false,
            replica_identity: 'd',
            options: Vec::new(),
            row_security: false,
            force_row_security: false,
            populated: true,
            access_method: None,
            partition_key: None,
            partition_bound: None,
            view_definition: Some("SELECT 1".into()),
            size: 0,
            has_key: false,
            comment: None,
        }
    }

    fn function(name: &str, args: &str) -> Function {
        Function {
            schema: PUBLIC,
            name: name.into(),
            kind: 'f',
            identity_args: args.into(),
            args: args.into(),
            definition: Some(format!("create function public.{name}({args}) …")),
            parallel: 'u',
            made_by_type: None,
            comment: None,
        }
    }

    fn dep(classid: u32, objid: u32, refclassid: u32, refobjid: u32) -> Depend {
        Depend {
            classid,
            objid,
            refclassid,
            refobjid,
            deptype: 'n',
        }
    }

    fn op_ref(oid: u32, name: &str) -> Option<OperatorRef> {
        Some(OperatorRef {
            oid,
            schema: "public".into(),
            name: name.into(),
        })
    }

    fn operator(name: &str, function: &str, commutator: u32, negator: (u32, &str)) -> Operator {
        Operator {
            schema: PUBLIC,
            name: name.into(),
            left: Some("public.mood".into()),
            right: Some("public.mood".into()),
            function: Some(function.into()),
            commutator: op_ref(commutator, name),
            negator: op_ref(negator.0, negator.1),
            restrict: Some("eqsel".into()),
            join: None,
            hashes: true,
            merges: false,
            comment: None,
        }
    }

    /// public.mood (an enum) with `=` and `<>` (each other's negator), a
    /// btree class `mood_ops` in family `mood_family` bound to `=`, a cast
    /// (text as mood) with a function, a text search configuration; table
    /// public.t (a mood column, an index using the class, a default naming
    /// the configuration) and view public.v; an extension's class.
    fn catalog() -> Catalog {
        let mut cat = Catalog::default();
        cat.namespaces.insert(
            PUBLIC,
            Namespace {
                name: "public".into(),
                comment: None,
            },
        );
        cat.types.insert(
            MOOD,
            TypeInfo {
                schema: PUBLIC,
                name: "mood".into(),
                typtype: 'e',
                typrelid: 0,
                array_of: 0,
                domain_base: None,
                not_null: false,
                default: None,
                collation: None,
                comment: None,
            },
        );
        cat.functions
            .insert(EQ_FN, function("mood_eq", "a public.mood, b public.mood"));
        cat.functions.insert(CAST_FN, function("mood_of", "text"));
        let o = &mut cat.objects;
        o.operators
            .insert(EQ, operator("=", "public.mood_eq", EQ, (NE, "<>")));
        o.operators
            .insert(NE, operator("<>", "public.mood_ne", NE, (EQ, "=")));
        o.families.insert(
            FAMILY,
            OpFamily {
                schema: PUBLIC,
                name: "mood_family".into(),
                method: "btree".into(),
                comment: None,
            },
        );
        o.classes.insert(
            CLASS,
            OpClass {
                schema: PUBLIC,
                name: "mood_ops".into(),
                method: "btree".into(),
                input_type: "public.mood".into(),
                default: false,
                family: vec!["public".into(), "mood_family".into()],
                storage: None,
                comment: Some("by label".into()),
            },
        );
        o.am_members.insert(
            (PG_AMOP, AMOP),
            AmMember {
                family: FAMILY,
                class: CLASS,
                number: 3,
                left: "public.mood".into(),
                right: "public.mood".into(),
                item: MemberItem::Operator {
                    op: op_ref(EQ, "=").unwrap(),
                    order_by: None,
                },
            },
        );
        o.am_members.insert(
            (PG_AMPROC, AMPROC),
            AmMember {
                family: FAMILY,
                class: 0,
                number: 4,
                left: "public.mood".into(),
                right: "public.mood".into(),
                item: MemberItem::Function {
                    signature: "btequalimage(oid)".into(),
                },
            },
        );
        o.casts.insert(
            CAST,
            Cast {
                source_type: 25,
                target_type: MOOD,
                source: "text".into(),
                target: "public.mood".into(),
                function: CAST_FN,
                signature: Some("public.mood_of(text)".into()),
                context: 'a',
                method: 'f',
                label: "(text as public.mood)".into(),
                comment: None,
            },
        );
        o.configs.insert(
            CONFIG,
            TsConfig {
                schema: PUBLIC,
                name: "cfg".into(),
                parser: vec!["pg_catalog".into(), "default".into()],
                mappings: vec![
                    (
                        "asciiword".into(),
                        vec![vec!["pg_catalog".into(), "simple".into()]],
                    ),
                    (
                        "word".into(),
                        vec![vec!["pg_catalog".into(), "simple".into()]],
                    ),
                    (
                        "int".into(),
                        vec![
                            vec!["public".into(), "my dict".into()],
                            vec!["pg_catalog".into(), "simple".into()],
                        ],
                    ),
                ],
                comment: None,
            },
        );
        o.classes.insert(
            EXT_CLASS,
            OpClass {
                schema: PUBLIC,
                name: "gist_mood_ops".into(),
                method: "gist".into(),
                input_type: "public.mood".into(),
                default: true,
                family: vec!["public".into(), "gist_mood_ops".into()],
                storage: None,
                comment: None,
            },
        );
        o.am_members.insert(
            (PG_AMOP, EXT_AMOP),
            AmMember {
                family: 0,
                class: EXT_CLASS,
                number: 1,
                left: "public.mood".into(),
                right: "public.mood".into(),
                item: MemberItem::Operator {
                    op: op_ref(EQ, "=").unwrap(),
                    order_by: None,
                },
            },
        );
        cat.extensions.insert(
            EXT,
            Extension {
                name: "btree_gist".into(),
                schema: PUBLIC,
            },
        );
        cat.members.insert((PG_OPCLASS, EXT_CLASS), EXT);
        cat.relations.insert(T, relation("t", 'r'));
        cat.relations.insert(V, relation("v", 'v'));
        cat.indexes.insert(
            T_INDEX,
            Index {
                relation: T,
                schema: PUBLIC,
                name: "t_m".into(),
                kind: 'i',
                definition: "CREATE INDEX t_m ON public.t USING btree (m public.mood_ops)".into(),
                valid: true,
                clustered: false,
                replica_identity: false,
                comment: None,
            },
        );
        cat.depends = vec![
            dep(PG_OPERATOR, EQ, PG_PROC, EQ_FN),
            dep(PG_OPERATOR, EQ, PG_TYPE, MOOD),
            dep(PG_OPERATOR, NE, PG_TYPE, MOOD),
            dep(PG_OPCLASS, CLASS, PG_OPFAMILY, FAMILY),
            dep(PG_OPCLASS, CLASS, PG_TYPE, MOOD),
            dep(PG_AMOP, AMOP, PG_OPERATOR, EQ),
            dep(PG_CAST, CAST, PG_PROC, CAST_FN),
            dep(PG_CAST, CAST, PG_TYPE, MOOD),
            dep(PG_CLASS, T, PG_TYPE, MOOD),
            dep(PG_CLASS, T, PG_TS_CONFIG, CONFIG),
            dep(PG_CLASS, T_INDEX, PG_OPCLASS, CLASS),
            dep(PG_CLASS, T_INDEX, PG_CLASS, T),
        ];
        cat
    }

    fn order(cat: &Catalog, selection: &SchemaSelection) -> Vec<String> {
        select(cat, selection)
            .order
            .iter()
            .map(|n| cat.display(*n))
            .collect()
    }

    #[test]
    fn members_map_to_their_class_or_family_and_extension_classes_to_the_extension() {
        let cat = catalog();
        assert_eq!(
            cat.node_of(PG_AMOP, AMOP),
            Some(Node::Object(Kind::OpClass, CLASS))
        );
        assert_eq!(
            cat.node_of(PG_AMPROC, AMPROC),
            Some(Node::Object(Kind::OpFamily, FAMILY))
        );
        assert_eq!(cat.node_of(PG_AMOP, EXT_AMOP), Some(Node::Extension(EXT)));
        assert_eq!(cat.node_of(PG_EXTENSION, EXT), Some(Node::Extension(EXT)));
        assert_eq!(
            cat.node_of(PG_CAST, CAST),
            Some(Node::Object(Kind::Cast, CAST))
        );
    }

    #[test]
    fn a_schema_orders_operators_classes_and_casts_before_tables_and_views() {
        let cat = catalog();
        let selection = SchemaSelection {
            schemas: vec!["public".into()],
            ..SchemaSelection::default()
        };
        assert_eq!(
            order(&cat, &selection),
            [
                "public",
                "public.btree_gist",
                "public.mood",
                "public.mood_eq(a public.mood, b public.mood)",
                "public.mood_of(text)",
                "public.<>(public.mood, public.mood)",
                "public.=(public.mood, public.mood)",
                "public.mood_family",
                "public.mood_ops",
                "cast (text as public.mood)",
                "public.cfg",
                "public.t",
                "public.v",
            ]
        );
    }

    #[test]
    fn a_table_brings_its_index_class_the_operators_companions_and_its_casts() {
        let cat = catalog();
        let selection = SchemaSelection {
            tables: vec![QualifiedName::new("public", "t")],
            ..SchemaSelection::default()
        };
        let got = order(&cat, &selection);
        for needed in [
            "public.mood_ops",
            "public.mood_family",
            "public.=(public.mood, public.mood)",
            // the negator: no pg_depend row leads to it
            "public.<>(public.mood, public.mood)",
            "cast (text as public.mood)",
            "public.mood_of(text)",
            "public.cfg",
        ] {
            assert!(got.contains(&needed.to_owned()), "{needed} not in {got:?}");
        }
        assert!(!got.contains(&"public.v".to_owned()), "{got:?}");
        assert!(!got.contains(&"public.btree_gist".to_owned()), "{got:?}");
    }

    #[test]
    fn statements_quote_names_and_keep_member_bindings() {
        let cat = catalog();
        let selection = SchemaSelection {
            schemas: vec!["public".into()],
            ..SchemaSelection::default()
        };
        let selected = select(&cat, &selection);
        let values = std::collections::HashMap::new();
        let statements = Renderer::new(&cat, &selected, &values).pre_data();
        let sql = |kind: &str| -> Vec<&str> {
            statements
                .iter()
                .filter(|s| s.kind == kind)
                .map(|s| s.sql.as_str())
                .collect()
        };
        assert_eq!(
            sql("operator"),
            [
                "create operator \"public\".<> (function = public.mood_ne, leftarg = public.mood, \
                 rightarg = public.mood, commutator = operator(\"public\".<>), \
                 negator = operator(\"public\".=), restrict = eqsel, hashes)",
                "create operator \"public\".= (function = public.mood_eq, leftarg = public.mood, \
                 rightarg = public.mood, commutator = operator(\"public\".=), \
                 negator = operator(\"public\".<>), restrict = eqsel, hashes)",
            ]
        );
        assert_eq!(
            sql("operator family"),
            ["create operator family \"public\".\"mood_family\" using \"btree\""]
        );
        assert_eq!(
            sql("operator family members"),
            [
                "alter operator family \"public\".\"mood_family\" using \"btree\" add \
                 function 4 (public.mood, public.mood) btequalimage(oid)"
            ]
        );
        assert_eq!(
            sql("operator class"),
            [
                "create operator class \"public\".\"mood_ops\" for type public.mood using \"btree\" \
                 family \"public\".\"mood_family\" as operator 3 \"public\".= (public.mood, public.mood)"
            ]
        );
        assert_eq!(
            sql("cast"),
            ["create cast (text as public.mood) with function public.mood_of(text) as assignment"]
        );
        assert_eq!(
            sql("text search configuration"),
            [
                "create text search configuration \"public\".\"cfg\" (parser = \"pg_catalog\".\"default\")"
            ]
        );
        assert_eq!(
            sql("text search mapping"),
            [
                "alter text search configuration \"public\".\"cfg\" add mapping for \"asciiword\", \"word\" \
                 with \"pg_catalog\".\"simple\"",
                "alter text search configuration \"public\".\"cfg\" add mapping for \"int\" \
                 with \"public\".\"my dict\", \"pg_catalog\".\"simple\"",
            ]
        );
        assert!(
            statements.iter().any(|s| s.sql
                == "comment on operator class \"public\".\"mood_ops\" using \"btree\" is 'by label'"),
            "{statements:#?}"
        );
    }

    #[test]
    fn operator_names_are_checked_and_qualified() {
        assert!(is_operator_name("<->"));
        assert!(is_operator_name("@@"));
        assert!(!is_operator_name(""));
        assert!(!is_operator_name("x;drop"));
        assert_eq!(operator_name("Op \"S\"", "==="), "\"Op \"\"S\"\"\".===");
    }
}
