//! Schema generation from the source catalogs (`pgsync::pg::schema`):
//! pre-data, a plain COPY of every table, post-data, then the destination's
//! schema fingerprint must equal the source's, and so must the row counts.

use futures_util::{SinkExt, TryStreamExt};
use pgsync::model::QualifiedName;
use pgsync::pg::schema::{SchemaScript, SchemaSelection, Statement, generate};
use pgsync::sql::{ident, qualified};
use tokio_postgres::Client;

use crate::support::pg::{Pair, column, connect, pair_majors, shared_testdata};

/// Operators, operator classes and families, casts and text search objects.
mod objects;

/// Namespaces holding user objects (`n` is the `pg_namespace` alias).
const USER_NS: &str = "n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast') \
     and n.nspname !~ '^pg_(toast_)?temp_'";

/// One line per schema object of the database `client` is connected to,
/// sorted: the object's kind and qualified name, then its normalized
/// definition as the server deparses it. No OIDs, no attnums (dropped
/// columns leave gaps on the source only): two databases with the same
/// schema give the same lines, so `assert_eq!` on two fingerprints shows
/// exactly what differs.
///
/// Covers schemas, extensions, collations, relations (kind, persistence,
/// replica identity, partition key and bound, parents, options, RLS,
/// populated), columns (type, collation, NOT NULL, default, identity,
/// generated), constraints (`pg_get_constraintdef`), indexes
/// (`pg_get_indexdef`, validity, parent index, clustered, replica identity),
/// views and matviews (`pg_get_viewdef`), functions (`pg_get_functiondef`),
/// aggregates, triggers (`pg_get_triggerdef` and `tgenabled`), rules,
/// policies, sequences (parameters, owner, last value), enum labels, domains,
/// composite and range types, operators (function, commutator, negator,
/// estimators, HASHES/MERGES), operator families with every member (bound
/// to a class or loose), operator classes, user casts, text search parsers,
/// templates, dictionaries and configurations with their mappings, and
/// comments. Extension members are left out.
///
/// Differences in how servers of different major versions store or deparse
/// the same schema are normalized (docs/testing.md, "What is normalized"):
/// always, where nothing is lost (ICU locales, sequence row types before 14,
/// extension array types, NOT NULL constraint rows of 17+, cloned partition
/// triggers); and, only when the test pair straddles the version that
/// changed it ([`pair_majors`]), the multiranges 14+ creates implicitly,
/// the `IN` that 14+ prints for procedure arguments, and the table
/// qualification that 16+ omits in single-table view definitions.
pub async fn fingerprint(client: &Client) -> Vec<String> {
    let (a, b) = pair_majors();
    let straddles = |version: u32| a.min(b) < version && version <= a.max(b);
    // Range types get a multirange type (and its constructors) from 14.
    let implicit_multirange = if straddles(14) { "true" } else { "false" };
    let sql = format!(
        "
with rel as (
    select c.*, n.nspname, quote_ident(n.nspname) || '.' || quote_ident(c.relname) as q
      from pg_class c join pg_namespace n on n.oid = c.relnamespace where {USER_NS}
), typ as (
    select t.*, quote_ident(n.nspname) || '.' || quote_ident(t.typname) as q
      from pg_type t join pg_namespace n on n.oid = t.typnamespace where {USER_NS}
), fn as (
    select p.*, quote_ident(n.nspname) || '.' || quote_ident(p.proname)
                || '(' || pg_get_function_identity_arguments(p.oid) || ')' as q
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace where {USER_NS}
       and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass
                       and d.objid = p.oid and d.deptype = 'e')
)
select 'schema ' || quote_ident(n.nspname) || ' comment=' || coalesce(obj_description(n.oid, 'pg_namespace'), '-')
  from pg_namespace n where {USER_NS}
union all
select 'extension ' || e.extname || ' schema=' || e.extnamespace::regnamespace::text from pg_extension e
union all
select format('collation %s.%s provider=%s collate=%s ctype=%s deterministic=%s',
              quote_ident(n.nspname), quote_ident(c.collname), c.collprovider,
              -- ICU: the locale moved from collcollate/collctype to colliculocale
              -- (15) and colllocale (17)
              case when c.collprovider = 'i'
                   then coalesce(to_jsonb(c) ->> 'colllocale', to_jsonb(c) ->> 'colliculocale', c.collcollate)
                   else c.collcollate end,
              case when c.collprovider = 'i'
                   then coalesce(to_jsonb(c) ->> 'colllocale', to_jsonb(c) ->> 'colliculocale', c.collctype)
                   else c.collctype end,
              c.collisdeterministic)
  from pg_collation c join pg_namespace n on n.oid = c.collnamespace where {USER_NS}
union all
select format('relation %s kind=%s persistence=%s replident=%s partkey=%s bound=%s parents=%s options=%s rls=%s/%s populated=%s comment=%s',
              r.q, r.relkind, r.relpersistence, r.relreplident,
              pg_get_partkeydef(r.oid), pg_get_expr(r.relpartbound, r.oid),
              (select string_agg(i.inhparent::regclass::text, ',' order by i.inhseqno)
                 from pg_inherits i where i.inhrelid = r.oid),
              r.reloptions, r.relrowsecurity, r.relforcerowsecurity, r.relispopulated,
              obj_description(r.oid, 'pg_class'))
  from rel r where r.relkind in ('r', 'p', 'v', 'm', 'S', 'f', 'c')
   and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass
                   and d.objid = r.oid and d.deptype = 'e')
union all
select format('column %s #%s %s %s collation=%s notnull=%s default=%s identity=%s generated=%s comment=%s',
              r.q, row_number() over (partition by r.oid order by a.attnum), quote_ident(a.attname),
              format_type(a.atttypid, a.atttypmod),
              case when a.attcollation <> t.typcollation then a.attcollation::regcollation::text end,
              a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
              col_description(r.oid, a.attnum))
  from rel r join pg_attribute a on a.attrelid = r.oid
  join pg_type t on t.oid = a.atttypid
  left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
 where a.attnum > 0 and not a.attisdropped and r.relkind in ('r', 'p', 'v', 'm', 'f', 'c')
union all
select format('constraint %s on %s: %s validated=%s comment=%s', quote_ident(k.conname),
              coalesce(r.q, t.q), pg_get_constraintdef(k.oid), k.convalidated,
              obj_description(k.oid, 'pg_constraint'))
  from pg_constraint k left join rel r on r.oid = k.conrelid left join typ t on t.oid = k.contypid
 where (r.oid is not null or t.oid is not null)
   -- NOT NULL has its own pg_constraint row from 17 (domains) and 18
   -- (columns); the column and type lines carry it on every version
   and k.contype <> 'n'
union all
select format('index %s on %s: %s valid=%s parent=%s clustered=%s replident=%s comment=%s',
              ir.q, r.q, pg_get_indexdef(i.indexrelid), i.indisvalid,
              (select h.inhparent::regclass::text from pg_inherits h where h.inhrelid = i.indexrelid),
              i.indisclustered, i.indisreplident, obj_description(i.indexrelid, 'pg_class'))
  from pg_index i join rel ir on ir.oid = i.indexrelid join rel r on r.oid = i.indrelid
union all
select format('view %s: %s', r.q, pg_get_viewdef(r.oid)) from rel r where r.relkind in ('v', 'm')
union all
select format('function %s kind=%s comment=%s: %s', f.q, f.prokind,
              obj_description(f.oid, 'pg_proc'),
              case when f.prokind <> 'a' then pg_get_functiondef(f.oid) end)
  from fn f
 where not ({implicit_multirange} and exists (
           select 1 from pg_type m where m.oid = f.prorettype and m.typtype = 'm')
       and f.prolang = (select l.oid from pg_language l where l.lanname = 'internal'))
union all
select format('aggregate %s: %s', f.q, row(a.aggkind, a.aggnumdirectargs, a.aggtransfn, a.aggfinalfn,
              a.aggcombinefn, a.aggserialfn, a.aggdeserialfn, a.aggmtransfn, a.aggminvtransfn,
              a.aggmfinalfn, a.aggfinalextra, a.aggmfinalextra, a.aggfinalmodify,
              a.aggmfinalmodify, a.aggsortop::regoperator, format_type(a.aggtranstype, null),
              a.aggtransspace, a.agginitval, a.aggminitval, f.proparallel))
  from pg_aggregate a join fn f on f.oid = a.aggfnoid
union all
select format('trigger %s on %s: %s enabled=%s comment=%s', quote_ident(g.tgname), r.q,
              pg_get_triggerdef(g.oid), g.tgenabled, obj_description(g.oid, 'pg_trigger'))
  from pg_trigger g join rel r on r.oid = g.tgrelid
 -- a trigger cloned onto a partition is internal up to 14, not from 15
 where (not g.tgisinternal or (g.tgparentid <> 0 and g.tgconstraint = 0))
union all
select format('rule %s on %s: %s enabled=%s', quote_ident(w.rulename), r.q, pg_get_ruledef(w.oid),
              w.ev_enabled)
  from pg_rewrite w join rel r on r.oid = w.ev_class where w.rulename <> '_RETURN'
union all
select format('policy %s on %s: cmd=%s permissive=%s roles=%s using=%s check=%s',
              quote_ident(p.polname), r.q, p.polcmd, p.polpermissive, p.polroles::regrole[],
              pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
  from pg_policy p join rel r on r.oid = p.polrelid
union all
select format('sequence %s: %s start=%s inc=%s min=%s max=%s cache=%s cycle=%s owner=%s last=%s',
              r.q, format_type(s.seqtypid, null), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
              s.seqcache, s.seqcycle,
              (select d.refobjid::regclass::text || '.' || d.refobjsubid || d.deptype::text
                 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = r.oid
                  and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')),
              ps.last_value)
  from pg_sequence s join rel r on r.oid = s.seqrelid
  join pg_sequences ps on ps.schemaname = r.nspname and ps.sequencename = r.relname
union all
select format('type %s type=%s enum=%s base=%s notnull=%s default=%s range=%s comment=%s',
              t.q, t.typtype,
              (select array_agg(e.enumlabel order by e.enumsortorder) from pg_enum e
                where e.enumtypid = t.oid),
              case when t.typtype = 'd' then format_type(t.typbasetype, t.typtypmod) end,
              t.typnotnull, pg_get_expr(t.typdefaultbin, 0),
              (select format('%s %s %s', format_type(g.rngsubtype, null), g.rngsubdiff,
                             (select o.opcname from pg_opclass o where o.oid = g.rngsubopc)) from pg_range g where g.rngtypid = t.oid),
              obj_description(t.oid, 'pg_type'))
  from typ t where t.typtype in ('e', 'd', 'r', 'm', 'c', 'b')
   and not exists (select 1 from pg_depend d where d.classid = 'pg_type'::regclass
                   and d.objid = t.oid and d.deptype = 'e')
   -- the array type of an extension's type is a member of the extension
   -- from 17 (before, only the element type is)
   and not exists (select 1 from pg_depend d where d.classid = 'pg_type'::regclass
                   and t.typelem <> 0 and d.objid = t.typelem and d.deptype = 'e')
   -- sequences have a row type up to 13, none from 14
   and not exists (select 1 from pg_class s where s.oid = t.typrelid and s.relkind = 'S')
   and not ({implicit_multirange} and (t.typtype = 'm' or exists (
           select 1 from pg_type m where m.oid = t.typelem and m.typtype = 'm')))
union all
select format('operator %s.%s(%s,%s) result=%s function=%s commutator=%s negator=%s restrict=%s join=%s hashes=%s merges=%s comment=%s',
              quote_ident(n.nspname), o.oprname, format_type(o.oprleft, null),
              format_type(o.oprright, null), format_type(o.oprresult, null), o.oprcode::regprocedure,
              o.oprcom::regoperator, o.oprnegate::regoperator, o.oprrest::regprocedure,
              o.oprjoin::regprocedure, o.oprcanhash, o.oprcanmerge, obj_description(o.oid, 'pg_operator'))
  from pg_operator o join pg_namespace n on n.oid = o.oprnamespace where {USER_NS}
   and not exists (select 1 from pg_depend d where d.classid = 'pg_operator'::regclass
                   and d.objid = o.oid and d.deptype = 'e')
union all
select format('operator family %s.%s using %s comment=%s members=%s',
              quote_ident(n.nspname), quote_ident(f.opfname), am.amname,
              obj_description(f.oid, 'pg_opfamily'),
              (select string_agg(m, '; ' order by m) from (
                   select format('operator %s (%s,%s) %s purpose=%s sort=%s', a.amopstrategy,
                                 format_type(a.amoplefttype, null), format_type(a.amoprighttype, null),
                                 a.amopopr::regoperator, a.amoppurpose,
                                 (select quote_ident(sn.nspname) || '.' || quote_ident(s.opfname)
                                    from pg_opfamily s join pg_namespace sn on sn.oid = s.opfnamespace
                                   where s.oid = a.amopsortfamily)) as m
                     from pg_amop a where a.amopfamily = f.oid
                   union all
                   select format('function %s (%s,%s) %s', p.amprocnum,
                                 format_type(p.amproclefttype, null), format_type(p.amprocrighttype, null),
                                 p.amproc::regprocedure)
                     from pg_amproc p where p.amprocfamily = f.oid) members))
  from pg_opfamily f join pg_am am on am.oid = f.opfmethod
  join pg_namespace n on n.oid = f.opfnamespace where {USER_NS}
   and not exists (select 1 from pg_depend d where d.classid = 'pg_opfamily'::regclass
                   and d.objid = f.oid and d.deptype = 'e')
union all
select format('operator class %s.%s using %s type=%s default=%s family=%s.%s storage=%s comment=%s',
              quote_ident(n.nspname), quote_ident(c.opcname), am.amname, format_type(c.opcintype, null),
              c.opcdefault, quote_ident(fn.nspname), quote_ident(f.opfname),
              format_type(nullif(c.opckeytype, 0), null), obj_description(c.oid, 'pg_opclass'))
  from pg_opclass c join pg_am am on am.oid = c.opcmethod
  join pg_opfamily f on f.oid = c.opcfamily join pg_namespace fn on fn.oid = f.opfnamespace
  join pg_namespace n on n.oid = c.opcnamespace where {USER_NS}
   and not exists (select 1 from pg_depend d where d.classid = 'pg_opclass'::regclass
                   and d.objid = c.oid and d.deptype = 'e')
union all
-- user casts: not made by initdb, an extension, or a range type for its multirange
select format('cast (%s as %s) function=%s context=%s method=%s comment=%s',
              format_type(c.castsource, null), format_type(c.casttarget, null),
              c.castfunc::regprocedure, c.castcontext, c.castmethod, obj_description(c.oid, 'pg_cast'))
  from pg_cast c where c.oid >= 16384
   and not exists (select 1 from pg_depend d where d.classid = 'pg_cast'::regclass
                   and d.objid = c.oid and d.deptype in ('e', 'i'))
union all
select format('text search parser %s.%s start=%s token=%s end=%s lextypes=%s headline=%s comment=%s',
              quote_ident(n.nspname), quote_ident(p.prsname), p.prsstart::regprocedure,
              p.prstoken::regprocedure, p.prsend::regprocedure, p.prslextype::regprocedure,
              p.prsheadline::regprocedure, obj_description(p.oid, 'pg_ts_parser'))
  from pg_ts_parser p join pg_namespace n on n.oid = p.prsnamespace where {USER_NS}
   and not exists (select 1 from pg_depend d where d.classid = 'pg_ts_parser'::regclass
                   and d.objid = p.oid and d.deptype = 'e')
union all
select format('text search template %s.%s init=%s lexize=%s comment=%s',
              quote_ident(n.nspname), quote_ident(t.tmplname), t.tmplinit::regprocedure,
              t.tmpllexize::regprocedure, obj_description(t.oid, 'pg_ts_template'))
  from pg_ts_template t join pg_namespace n on n.oid = t.tmplnamespace where {USER_NS}
   and not exists (select 1 from pg_depend d where d.classid = 'pg_ts_template'::regclass
                   and d.objid = t.oid and d.deptype = 'e')
union all
select format('text search dictionary %s.%s template=%s.%s options=%s comment=%s',
              quote_ident(n.nspname), quote_ident(d.dictname), quote_ident(tn.nspname),
              quote_ident(t.tmplname), d.dictinitoption, obj_description(d.oid, 'pg_ts_dict'))
  from pg_ts_dict d join pg_ts_template t on t.oid = d.dicttemplate
  join pg_namespace tn on tn.oid = t.tmplnamespace
  join pg_namespace n on n.oid = d.dictnamespace where {USER_NS}
   and not exists (select 1 from pg_depend e where e.classid = 'pg_ts_dict'::regclass
                   and e.objid = d.oid and e.deptype = 'e')
union all
select format('text search configuration %s.%s parser=%s.%s comment=%s mappings=%s',
              quote_ident(n.nspname), quote_ident(c.cfgname), quote_ident(pn.nspname),
              quote_ident(p.prsname), obj_description(c.oid, 'pg_ts_config'),
              (select string_agg(format('%s:%s', tt.alias, dicts), ' ' order by tt.tokid)
                 from ts_token_type(c.cfgparser) tt
                 join lateral (select string_agg(quote_ident(dn.nspname) || '.' || quote_ident(dd.dictname),
                                                 ',' order by m.mapseqno) as dicts
                                 from pg_ts_config_map m join pg_ts_dict dd on dd.oid = m.mapdict
                                 join pg_namespace dn on dn.oid = dd.dictnamespace
                                where m.mapcfg = c.oid and m.maptokentype = tt.tokid) md
                   on md.dicts is not null))
  from pg_ts_config c join pg_ts_parser p on p.oid = c.cfgparser
  join pg_namespace pn on pn.oid = p.prsnamespace
  join pg_namespace n on n.oid = c.cfgnamespace where {USER_NS}
   and not exists (select 1 from pg_depend d where d.classid = 'pg_ts_config'::regclass
                   and d.objid = c.oid and d.deptype = 'e')
order by 1"
    );
    let mut lines: Vec<String> = column(client, &sql)
        .await
        .into_iter()
        .map(|line| line.unwrap_or_default())
        .map(|line| {
            if straddles(14) && line.contains(" kind=p comment=") {
                without_in_argument_mode(&line)
            } else if straddles(16) && line.starts_with("view ") {
                without_single_table_qualification(&line)
            } else {
                line
            }
        })
        .collect();
    lines.sort();
    lines
}

/// A procedure's line without the `IN` that 14+ prints before each input
/// argument (`p(IN a integer)`; 13: `p(a integer)`), in its signature and
/// the header of its definition (the body is left alone).
fn without_in_argument_mode(line: &str) -> String {
    let body_at = [line.find("\nAS "), line.find("\nBEGIN ATOMIC")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(line.len());
    let (head, body) = line.split_at(body_at);
    format!("{}{body}", head.replace("(IN ", "(").replace(", IN ", ", "))
}

/// A view's line without the table qualification that up to 15 prints for
/// the columns of a query reading a single relation (`SELECT t.id FROM t`;
/// 16+: `SELECT id FROM t`): when the top-level FROM (the line indented by
/// three spaces) names one relation, `alias.` is removed wherever it is not
/// part of a longer name. Sub-selects keep their own qualification on every
/// version, and views over joins are qualified on every version.
fn without_single_table_qualification(line: &str) -> String {
    let Some((name, definition)) = line.split_once(": ") else {
        return line.to_owned();
    };
    let from: Vec<&str> = definition
        .lines()
        .filter(|l| l.starts_with("   FROM "))
        .collect();
    let [from] = from[..] else {
        return line.to_owned();
    };
    let items = from["   FROM ".len()..].trim().trim_end_matches(';');
    if items.contains(',') || definition.contains(" JOIN ") {
        return line.to_owned();
    }
    // `schema.rel alias`, `rel alias`, `schema.rel` or `rel`; quoted names
    // may contain spaces or dots.
    let alias = match split_last_token(items) {
        (_, Some(alias)) => alias,
        (rel, None) => last_name_part(rel),
    };
    let prefix = format!("{alias}.");
    let mut out = String::with_capacity(definition.len());
    let mut rest = definition;
    while let Some(i) = rest.find(&prefix) {
        let before = if i > 0 {
            rest[..i].chars().last()
        } else {
            out.chars().last()
        };
        let part_of_longer_name =
            before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"' || c == '.');
        out.push_str(&rest[..i]);
        if part_of_longer_name {
            out.push_str(&prefix);
        }
        rest = &rest[i + prefix.len()..];
    }
    out.push_str(rest);
    // The FROM item itself keeps its name (`FROM s.s` with alias `s`).
    let out = out.replacen(
        &format!("   FROM {}", items.replace(&prefix, "")),
        &format!("   FROM {items}"),
        1,
    );
    format!("{name}: {out}")
}

/// `("rel", Some("alias"))` for `rel alias`, `(items, None)` for a bare
/// (possibly quoted) relation name.
fn split_last_token(items: &str) -> (&str, Option<&str>) {
    let mut in_quotes = false;
    let mut split = None;
    for (i, c) in items.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ' ' if !in_quotes => split = Some(i),
            _ => {}
        }
    }
    match split {
        Some(i) => (&items[..i], Some(items[i + 1..].trim())),
        None => (items, None),
    }
}

/// The relation part of `schema.rel` (quoted parts may contain dots).
fn last_name_part(name: &str) -> &str {
    let mut in_quotes = false;
    let mut start = 0;
    for (i, c) in name.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '.' if !in_quotes => start = i + 1,
            _ => {}
        }
    }
    &name[start..]
}

/// Row counts of `script.tables` (own rows only), as `schema.name=count`.
async fn row_counts(client: &Client, script: &SchemaScript) -> Vec<String> {
    let mut counts = Vec::new();
    for t in &script.tables {
        let q = qualified(&t.name.schema, &t.name.name);
        let n = column(client, &format!("select count(*) from only {q}")).await;
        counts.push(format!("{}={}", t.name, n[0].as_deref().unwrap_or("?")));
    }
    counts
}

async fn run(client: &Client, statements: &[Statement]) {
    for s in statements {
        client
            .batch_execute(&s.sql)
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e:?}\n{}", s.kind, s.name, s.sql));
    }
}

/// COPY every table of `script` from `src` into `dst`, text format.
async fn copy_rows(src: &Client, dst: &Client, script: &SchemaScript) {
    for t in &script.tables {
        let q = qualified(&t.name.schema, &t.name.name);
        let cols: Vec<String> = t.columns.iter().map(|c| ident(c)).collect();
        let cols = cols.join(", ");
        let out = src
            .copy_out(&format!("copy (select {cols} from only {q}) to stdout"))
            .await
            .unwrap_or_else(|e| panic!("copy out {q}: {e}"));
        let sink = dst
            .copy_in(&format!("copy {q} ({cols}) from stdin"))
            .await
            .unwrap_or_else(|e| panic!("copy in {q}: {e}"));
        futures_util::pin_mut!(out, sink);
        while let Some(chunk) = out.try_next().await.expect("read copy data") {
            sink.send(chunk).await.expect("write copy data");
        }
        sink.finish()
            .await
            .unwrap_or_else(|e| panic!("copy in {q}: {e}"));
    }
}

/// Generates `selection` from `src`, runs pre-data, copies, runs post-data.
async fn sync_schema(src: &Client, dst: &Client, selection: &SchemaSelection) -> SchemaScript {
    let script = generate(src, selection).await.expect("generate schema");
    run(dst, &script.pre_data).await;
    copy_rows(src, dst, &script).await;
    run(dst, &script.post_data).await;
    script
}

fn public() -> SchemaSelection {
    SchemaSelection {
        schemas: vec!["public".into()],
        ..SchemaSelection::default()
    }
}

/// Syncs `selection` from database `db` on the source into `app` on the
/// destination and asserts both fingerprints and row counts are equal.
async fn assert_identical(pair: &Pair, db: &str, selection: &SchemaSelection) -> SchemaScript {
    let src = connect(&pair.source, db).await;
    let dst = connect(&pair.destination, "app").await;
    let script = sync_schema(&src, &dst, selection).await;
    if std::env::var_os("PGSYNC_TEST_SHOW_DDL").is_some() {
        for s in script.pre_data.iter().chain(&script.post_data) {
            eprintln!("-- {} {}\n{};", s.kind, s.name, s.sql);
        }
    }
    assert!(
        script.warnings.is_empty(),
        "warnings: {:#?}",
        script.warnings
    );
    assert!(!script.tables.is_empty());
    assert_same(&fingerprint(&dst).await, &fingerprint(&src).await);
    assert_eq!(
        row_counts(&dst, &script).await,
        row_counts(&src, &script).await
    );
    script
}

/// `assert_eq!` on two fingerprints, printing a unified diff first (source
/// lines as `-`, destination lines as `+`), since the vectors are long.
pub fn assert_same(destination: &[String], source: &[String]) {
    if destination != source {
        let (old, new) = (source.join("\n"), destination.join("\n"));
        let diff = similar::TextDiff::from_lines(&old, &new);
        eprintln!(
            "schema fingerprints differ (- source, + destination):\n{}",
            diff.unified_diff().context_radius(1)
        );
    }
    assert_eq!(destination, source);
}

/// Loads `file` into `db` on the source. A source older than 14 has no
/// SQL-standard function bodies: there, each `begin atomic … end;` of the
/// file becomes the same body as a string (the function then records no
/// dependency on what it reads, as on 13 it could not).
fn load(pair: &Pair, db: &str, file: &std::path::Path) {
    let text =
        std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    let rewritten = without_sql_standard_bodies(&text);
    let _copy;
    let path = if pair.source.major_version().is_some_and(|v| v < 14) && rewritten != text {
        _copy = tempfile::Builder::new()
            .suffix(".sql")
            .tempfile()
            .expect("temp file");
        std::fs::write(_copy.path(), rewritten).expect("write temp file");
        _copy.path()
    } else {
        file
    };
    pair.source
        .psql(db, &["-f", path.to_str().expect("utf-8 path")])
        .unwrap_or_else(|e| panic!("load {}: {e}", file.display()));
}

/// `begin atomic\n BODY;\nend;` → `as $body$\n BODY\n$body$;` (lower-case,
/// as the fixtures write it).
fn without_sql_standard_bodies(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("\nbegin atomic\n") {
        let body_start = i + "\nbegin atomic\n".len();
        let Some(len) = rest[body_start..].find("\nend;") else {
            break;
        };
        let body = rest[body_start..body_start + len]
            .trim()
            .trim_end_matches(';');
        out.push_str(&rest[..i]);
        out.push_str(&format!("\nas $body$\n{body}\n$body$;"));
        rest = &rest[body_start + len + "\nend;".len()..];
    }
    out.push_str(rest);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagila_schema_is_recreated_identically() {
    let (Some(schema), Some(data)) = (
        shared_testdata("pagila/pagila-schema.sql"),
        shared_testdata("pagila/pagila-data.sql"),
    ) else {
        eprintln!("SKIPPED: Pagila sample data not found (see message above)");
        return;
    };
    let pair = Pair::start();
    load(&pair, "app", &schema);
    load(&pair, "app", &data);
    let script = assert_identical(&pair, "app", &public()).await;

    // Leaf partitions are copied, their partitioned parent is not.
    let names: Vec<String> = script.tables.iter().map(|t| t.name.to_string()).collect();
    assert!(
        names.contains(&"public.payment_p2022_01".to_owned()),
        "{names:?}"
    );
    assert!(!names.contains(&"public.payment".to_owned()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.contains("actor_info")),
        "views are not copied"
    );
    // `rewards_report` returns SETOF customer: created after the table.
    let position = |kind: &str, name: &str| {
        script
            .pre_data
            .iter()
            .position(|s| s.kind == kind && s.name == name)
            .unwrap_or_else(|| panic!("{kind} {name} not in pre_data"))
    };
    let rewards = "public.rewards_report(min_monthly_purchases integer, \
                   min_dollar_amount_purchased numeric)";
    assert!(position("table", "public.customer") < position("function", rewards));
    assert!(position("domain", "public.year") < position("table", "public.film"));
    assert!(position("table", "public.film") < position("view", "public.film_list"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn northwind_schema_is_recreated_identically() {
    let Some(file) = shared_testdata("northwind/northwind.sql") else {
        eprintln!("SKIPPED: Northwind sample data not found (see message above)");
        return;
    };
    let pair = Pair::start();
    load(&pair, "app", &file);
    assert_identical(&pair, "app", &public()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chinook_identity_schema_is_recreated_identically() {
    let Some(file) = shared_testdata("chinook/Chinook_PostgreSql_AutoIncrementPKs.sql") else {
        eprintln!("SKIPPED: Chinook sample data not found (see message above)");
        return;
    };
    let pair = Pair::start();
    // The script creates and connects to its own database.
    load(&pair, "postgres", &file);
    let script = assert_identical(&pair, "chinook_auto_increment", &public()).await;
    let setvals = script
        .post_data
        .iter()
        .filter(|s| s.kind == "setval")
        .count();
    assert_eq!(setvals, 10, "one per identity sequence");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chinook_quoted_schema_is_recreated_identically() {
    let Some(file) = shared_testdata("chinook/chinook_pgdump_quoted.sql") else {
        eprintln!("SKIPPED: Chinook sample data not found (see message above)");
        return;
    };
    let pair = Pair::start();
    load(&pair, "app", &file);
    assert_identical(&pair, "app", &public()).await;
}

fn kitchen_sink() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/schema/kitchen_sink.sql")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_supported_object_kind_is_recreated_identically() {
    let pair = Pair::start();
    load(&pair, "app", &kitchen_sink());
    let selection = SchemaSelection {
        schemas: vec!["public".into(), "inventory".into(), "Sales Dept".into()],
        ..SchemaSelection::default()
    };
    let script = assert_identical(&pair, "app", &selection).await;

    let kinds: std::collections::BTreeSet<&str> = script
        .pre_data
        .iter()
        .chain(&script.post_data)
        .map(|s| s.kind)
        .collect();
    for kind in [
        "extension",
        "collation",
        "type",
        "domain",
        "sequence",
        "function",
        "procedure",
        "aggregate",
        "table",
        "view",
        "materialized view",
        "constraint",
        "index",
        "index attach",
        "foreign key",
        "trigger",
        "trigger state",
        "rule",
        "policy",
        "refresh",
        "setval",
        "comment",
        "check",
        "replica identity",
        "cluster",
        "sequence owned by",
    ] {
        assert!(kinds.contains(kind), "no {kind:?} statement in {kinds:?}");
    }
    // Dependency order where the kind and name order alone would be wrong:
    // "Sales Dept" sorts before "inventory".
    let position = |kind: &str, name: &str| {
        script
            .pre_data
            .iter()
            .position(|s| s.kind == kind && s.name == name)
            .unwrap_or_else(|| panic!("{kind} {name} not in pre_data"))
    };
    assert!(position("view", "inventory.item_names") < position("view", "Sales Dept.big_orders"));
    assert!(
        position("view", "Sales Dept.big_orders")
            < position("function", "Sales Dept.top_orders(n integer)")
    );
    assert!(
        position("function", "inventory.area(d inventory.dimensions)")
            < position("table", "inventory.item")
    );
    // SQL-standard bodies (14+) record what they read; on an older source
    // `load` gave these functions string bodies, which record nothing.
    if pair.source.major_version().is_some_and(|v| v >= 14) {
        assert!(
            position("table", "inventory.item") < position("function", "inventory.item_count()")
        );
        // inventory.counter's default calls a function that reads the table:
        // the table is created without it, the function, then the default.
        assert!(
            position("table", "inventory.counter")
                < position("function", "inventory.next_counter()")
        );
        assert!(
            position("function", "inventory.next_counter()")
                < position("column default", "inventory.counter.id")
        );
    }
    let events = script
        .tables
        .iter()
        .find(|t| t.name == QualifiedName::new("inventory", "events"))
        .expect("events is copied");
    assert!(!events.has_key);
    assert_eq!(events.replica_identity, 'f');
    let item = script
        .tables
        .iter()
        .find(|t| t.name == QualifiedName::new("inventory", "item"))
        .expect("item is copied");
    assert!(item.has_key);
    assert!(
        !item.columns.contains(&"area".to_owned()),
        "generated columns are not copied"
    );
    assert!(!item.columns.contains(&"dropped_col".to_owned()));
    assert_eq!(item.columns.len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_table_brings_what_it_needs_and_nothing_else() {
    let pair = Pair::start();
    load(&pair, "app", &kitchen_sink());
    let src = connect(&pair.source, "app").await;
    let dst = connect(&pair.destination, "app").await;
    let selection = SchemaSelection {
        tables: vec![QualifiedName::new("inventory", "item")],
        ..SchemaSelection::default()
    };
    let script = sync_schema(&src, &dst, &selection).await;

    let names: Vec<String> = script.tables.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["inventory.item"]);
    // The rule writes into inventory.log, which is not selected.
    assert!(
        script
            .warnings
            .iter()
            .any(|w| w.contains("log_item_delete")),
        "{:#?}",
        script.warnings
    );
    // Whatever was created is identical to its source.
    let source: std::collections::BTreeSet<String> = fingerprint(&src).await.into_iter().collect();
    let created = fingerprint(&dst).await;
    let different: Vec<&String> = created.iter().filter(|l| !source.contains(*l)).collect();
    assert!(
        different.is_empty(),
        "differs from the source: {different:#?}"
    );
    for needed in [
        "relation inventory.item ",
        "type inventory.status ",
        "type inventory.positive_int ",
        "type inventory.email ",
        "type inventory.dimensions ",
        "type inventory.floatrange ",
        "function inventory.area(",
        "function inventory.default_note(",
        "function inventory.touch(",
        "function inventory.check_item(",
        "trigger touch_disabled on inventory.item",
        "trigger item_check on inventory.item",
        "extension citext ",
        "extension btree_gist ",
        "collation inventory.ci ",
        "constraint no_overlap on inventory.item",
    ] {
        assert!(
            created.iter().any(|l| l.starts_with(needed)),
            "{needed:?} missing from {created:#?}"
        );
    }
    for absent in [
        "relation inventory.log ",
        "relation \"Sales Dept\"",
        "function inventory.audit(",
    ] {
        assert!(
            !created.iter().any(|l| l.starts_with(absent)),
            "{absent:?} was created"
        );
    }
    assert_eq!(
        row_counts(&dst, &script).await,
        row_counts(&src, &script).await
    );

    // A partition without its parent becomes an ordinary table with the
    // partition's own key, triggers (in their state) and defaults.
    pair.destination
        .psql("postgres", &["-c", "create database alone"])
        .expect("create database");
    let dst = connect(&pair.destination, "alone").await;
    let selection = SchemaSelection {
        tables: vec![QualifiedName::new("Sales Dept", "Order_default")],
        ..SchemaSelection::default()
    };
    let script = sync_schema(&src, &dst, &selection).await;
    assert!(
        script
            .warnings
            .iter()
            .any(|w| w.contains("Order_item_id_fkey")),
        "the foreign key to inventory.item is reported: {:#?}",
        script.warnings
    );
    let created = fingerprint(&dst).await;
    for expected in [
        "relation \"Sales Dept\".\"Order_default\" kind=r persistence=p replident=d partkey= bound= parents= ",
        "constraint \"Order_default_pkey\" on \"Sales Dept\".\"Order_default\": PRIMARY KEY",
        "column \"Sales Dept\".\"Order_default\" #4 amount numeric(10,2) collation= notnull=t default=1.5 ",
        "trigger on_order on \"Sales Dept\".\"Order_default\": CREATE TRIGGER on_order AFTER INSERT ON \"Sales Dept\".\"Order_default\" FOR EACH ROW EXECUTE FUNCTION inventory.audit() enabled=D",
        "sequence inventory.shared_seq: integer start=1000 ",
    ] {
        assert!(
            created.iter().any(|l| l.starts_with(expected)),
            "{expected:?} missing from {created:#?}"
        );
    }
    assert_eq!(
        row_counts(&dst, &script).await,
        row_counts(&src, &script).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_tables_and_helpers_are_left_out() {
    let pair = Pair::start();
    pair.source
        .psql(
            "app",
            &[
                "-c",
                "create table public.dts_ddl_command (id bigserial primary key, ddl text);
                     create function public.dts_capture() returns event_trigger
                         language plpgsql as $$ begin end $$;
                     create table public.kept (id int primary key);
                     create table public.audit_2024 (id int);",
            ],
        )
        .expect("fixture");
    let src = connect(&pair.source, "app").await;
    let objects = [pgsync::model::ObjectSelection::Schema {
        name: "public".into(),
        exclude_tables: vec!["audit_*".into()],
        rename: None,
        operations: None,
    }];
    let selection = SchemaSelection::from_objects(&objects, &[]);
    let script = generate(&src, &selection).await.expect("generate");
    let all: Vec<&str> = script.pre_data.iter().map(|s| s.name.as_str()).collect();
    assert!(all.contains(&"public.kept"), "{all:?}");
    assert!(
        !all.iter()
            .any(|n| n.contains("dts_") || n.contains("audit_")),
        "{all:?}"
    );
    let names: Vec<String> = script.tables.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["public.kept"]);
}
