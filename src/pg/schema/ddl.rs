//! DDL text for the chosen objects. Pure: catalog values in, statements out.
//!
//! Every identifier goes through [`crate::sql::ident`]; every expression,
//! type name and definition is the server's own deparsed text, read with
//! `search_path = ''` so it is fully qualified.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::catalog::{
    Catalog, Column, Constraint, PG_CLASS, PG_CONSTRAINT, PG_POLICY, PG_REWRITE, PG_TRIGGER,
    Relation,
};
use super::select::{Node, Selected};
use super::{Statement, TableInfo};
use crate::model::QualifiedName;
use crate::sql::{ident, literal, qualified};

/// Builds the three parts of a [`super::SchemaScript`], plus warnings.
pub(super) struct Renderer<'a> {
    cat: &'a Catalog,
    sel: &'a Selected,
    /// `(last_value, is_called)` by sequence OID.
    seq_values: &'a HashMap<u32, (i64, bool)>,
    /// Constraints by (is a domain's, table or domain OID).
    constraints_of: HashMap<(bool, u32), Vec<&'a Constraint>>,
    /// Owned (serial and identity) sequences by table OID.
    sequences_of: HashMap<u32, Vec<u32>>,
    /// Indexes by table OID.
    indexes_of: HashMap<u32, Vec<u32>>,
    pub warnings: Vec<String>,
}

fn stmt(kind: &'static str, name: impl Into<String>, sql: impl Into<String>) -> Statement {
    Statement {
        kind,
        name: name.into(),
        sql: sql.into(),
    }
}

/// `"schema"."name"` from a `[schema, name]` pair read from the catalog.
fn pair(parts: &[String]) -> String {
    match parts {
        [schema, name] => qualified(schema, name),
        _ => parts.iter().map(|p| ident(p)).collect::<Vec<_>>().join("."),
    }
}

/// `with (k='v', …)` from `reloptions`, or nothing.
pub(super) fn with_options(options: &[String]) -> String {
    if options.is_empty() {
        return String::new();
    }
    let items: Vec<String> = options
        .iter()
        .map(|o| match o.split_once('=') {
            // Option names are plain words (`fillfactor`, `toast.x`); anything
            // else is quoted.
            Some((k, v)) if is_option_name(k) => format!("{k}={}", literal(v)),
            Some((k, v)) => format!("{}={}", ident(k), literal(v)),
            None => ident(o),
        })
        .collect();
    format!(" with ({})", items.join(", "))
}

/// `[a-z_][a-z0-9_]*`, optionally prefixed by one such word and a dot.
fn is_option_name(name: &str) -> bool {
    let word = |w: &str| {
        w.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && w.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    match name.split_once('.') {
        Some((ns, rest)) => word(ns) && word(rest),
        None => word(name),
    }
}

/// A view definition from `pg_get_viewdef`, without its trailing `;`.
pub(super) fn view_body(def: &str) -> &str {
    def.trim().trim_end_matches(';').trim_end()
}

/// The keyword of an `ENABLE`/`DISABLE` state (`tgenabled`, `ev_enabled`).
fn enable_clause(state: char) -> &'static str {
    match state {
        'D' => "disable",
        'R' => "enable replica",
        'A' => "enable always",
        _ => "enable",
    }
}

impl<'a> Renderer<'a> {
    /// A renderer over the chosen objects.
    pub(super) fn new(
        cat: &'a Catalog,
        sel: &'a Selected,
        seq_values: &'a HashMap<u32, (i64, bool)>,
    ) -> Self {
        let mut constraints_of: HashMap<(bool, u32), Vec<&'a Constraint>> = HashMap::new();
        for c in cat.constraints.values() {
            let owner = if c.domain != 0 {
                (true, c.domain)
            } else {
                (false, c.relation)
            };
            constraints_of.entry(owner).or_default().push(c);
        }
        for list in constraints_of.values_mut() {
            list.sort_by(|a, b| a.name.cmp(&b.name));
        }
        let mut sequences_of: HashMap<u32, Vec<u32>> = HashMap::new();
        for (oid, seq) in &cat.sequences {
            if let Some((table, _)) = seq.owner {
                sequences_of.entry(table).or_default().push(*oid);
            }
        }
        let mut indexes_of: HashMap<u32, Vec<u32>> = HashMap::new();
        for (oid, idx) in &cat.indexes {
            indexes_of.entry(idx.relation).or_default().push(*oid);
        }
        Renderer {
            cat,
            sel,
            seq_values,
            constraints_of,
            sequences_of,
            indexes_of,
            warnings: Vec::new(),
        }
    }

    /// Constraints of a table, by name.
    fn constraints(&self, table: u32) -> impl Iterator<Item = &'a Constraint> + '_ {
        self.constraints_of
            .get(&(false, table))
            .into_iter()
            .flatten()
            .copied()
    }

    /// Constraints of a domain, by name.
    fn domain_constraints(&self, domain: u32) -> impl Iterator<Item = &'a Constraint> + '_ {
        self.constraints_of
            .get(&(true, domain))
            .into_iter()
            .flatten()
            .copied()
    }

    /// The sequence owned by (or backing the identity of) a column.
    fn sequence_of(&self, table: u32, col: &Column, identity: bool) -> Option<u32> {
        self.sequences_of
            .get(&table)
            .into_iter()
            .flatten()
            .copied()
            .find(|oid| {
                self.cat.sequences.get(oid).is_some_and(|s| {
                    s.identity == identity && s.owner == Some((table, i32::from(col.num)))
                })
            })
    }

    fn rel(&self, oid: u32) -> Option<&'a Relation> {
        self.cat.relations.get(&oid)
    }

    /// Quoted qualified name of a relation.
    fn rel_q(&self, oid: u32) -> String {
        match self.rel(oid) {
            Some(r) => qualified(self.cat.schema_name(r.schema), &r.name),
            None => format!("{oid}"),
        }
    }

    /// Unquoted `schema.name` of a relation, for messages.
    fn rel_d(&self, oid: u32) -> String {
        self.cat.display(Node::Relation(oid))
    }

    fn node_q(&self, node: Node) -> String {
        let (schema, name) = self.cat.node_name(node);
        match node {
            Node::Schema(_) | Node::Extension(_) => ident(name),
            _ => qualified(self.cat.schema_name(schema), name),
        }
    }

    /// Whether an after-data object needs something that is not created;
    /// if so, says so in a warning.
    fn blocked(&mut self, classid: u32, objid: u32, what: &str) -> bool {
        match self.sel.blocked.get(&(classid, objid)) {
            Some(node) => {
                self.warnings.push(format!(
                    "{what} is not created: it depends on {}, which is not selected",
                    self.cat.display(*node)
                ));
                true
            }
            None => false,
        }
    }

    /// Parents (partitioned or inheritance) that are created too.
    fn parents_in_set(&self, oid: u32) -> Vec<u32> {
        self.cat
            .parents
            .get(&oid)
            .into_iter()
            .flatten()
            .copied()
            .filter(|p| self.sel.has_relation(*p))
            .collect()
    }

    /// How many created ancestors a relation has; parents sort first.
    fn depth(&self, oid: u32) -> usize {
        let mut depth = 0;
        let mut current = oid;
        while let Some(parent) = self.parents_in_set(current).first().copied() {
            depth += 1;
            current = parent;
            if depth > 64 {
                break;
            }
        }
        depth
    }

    // ----- before the data -------------------------------------------------

    /// Statements run before the copy, in order.
    pub(super) fn pre_data(&mut self) -> Vec<Statement> {
        let mut out = vec![stmt(
            "setting",
            "check_function_bodies",
            "set check_function_bodies = off",
        )];
        for node in &self.sel.order {
            self.create(*node, &mut out);
        }
        for (table, num) in &self.sel.deferred_defaults {
            let col = self
                .cat
                .columns
                .get(table)
                .into_iter()
                .flatten()
                .find(|c| c.num == *num);
            if let Some(col) = col
                && let Some(expr) = &col.default
            {
                out.push(stmt(
                    "column default",
                    format!("{}.{}", self.rel_d(*table), col.name),
                    format!(
                        "alter table only {} alter column {} set default {expr}",
                        self.rel_q(*table),
                        ident(&col.name)
                    ),
                ));
            }
        }
        for node in &self.sel.order {
            self.pre_comments(*node, &mut out);
        }
        out
    }

    fn create(&mut self, node: Node, out: &mut Vec<Statement>) {
        let cat = self.cat;
        let name = cat.display(node);
        match node {
            Node::Schema(_) => out.push(stmt(
                "schema",
                name,
                format!("create schema if not exists {}", self.node_q(node)),
            )),
            Node::Extension(oid) => {
                let ext = &cat.extensions[&oid];
                let schema = match cat.namespaces.get(&ext.schema) {
                    Some(ns) => format!(" with schema {}", ident(&ns.name)),
                    None => String::new(),
                };
                out.push(stmt(
                    "extension",
                    ext.name.clone(),
                    format!(
                        "create extension if not exists {}{schema}",
                        ident(&ext.name)
                    ),
                ));
            }
            Node::Collation(oid) => {
                let c = &cat.collations[&oid];
                let mut opts = Vec::new();
                match c.provider {
                    'i' => {
                        opts.push("provider = icu".to_owned());
                        let locale = c.locale.as_ref().or(c.collate.as_ref());
                        opts.push(format!("locale = {}", literal(locale.map_or("", |s| s))));
                    }
                    _ => {
                        opts.push("provider = libc".to_owned());
                        opts.push(format!(
                            "lc_collate = {}",
                            literal(c.collate.as_deref().unwrap_or(""))
                        ));
                        opts.push(format!(
                            "lc_ctype = {}",
                            literal(c.ctype.as_deref().unwrap_or(""))
                        ));
                    }
                }
                if !c.deterministic {
                    opts.push("deterministic = false".to_owned());
                }
                if let Some(rules) = &c.icu_rules {
                    opts.push(format!("rules = {}", literal(rules)));
                }
                out.push(stmt(
                    "collation",
                    name,
                    format!(
                        "create collation {} ({})",
                        self.node_q(node),
                        opts.join(", ")
                    ),
                ));
            }
            Node::Type(oid) => self.create_type(oid, node, out),
            Node::Object(kind, oid) => {
                super::objects::create(cat, self.sel, kind, oid, out, &mut self.warnings)
            }
            Node::Function(oid) => {
                let f = &cat.functions[&oid];
                match (f.kind, &f.definition) {
                    ('a', _) => self.create_aggregate(oid, node, out),
                    (kind, Some(def)) => out.push(stmt(
                        if kind == 'p' { "procedure" } else { "function" },
                        name,
                        def.trim_end().to_owned(),
                    )),
                    (_, None) => self
                        .warnings
                        .push(format!("{name} has no definition; not created")),
                }
            }
            Node::Relation(oid) => {
                let rel = &cat.relations[&oid];
                match rel.kind {
                    'S' => self.create_sequence(oid, rel, out),
                    'r' | 'p' => self.create_table(oid, rel, out),
                    'v' => out.push(stmt(
                        "view",
                        name,
                        format!(
                            "create view {}{} as {}",
                            self.node_q(node),
                            with_options(&rel.options),
                            view_body(rel.view_definition.as_deref().unwrap_or(""))
                        ),
                    )),
                    'm' => out.push(stmt(
                        "materialized view",
                        name,
                        format!(
                            "create materialized view {}{}{} as {} with no data",
                            self.node_q(node),
                            rel.access_method
                                .as_ref()
                                .map(|am| format!(" using {}", ident(am)))
                                .unwrap_or_default(),
                            with_options(&rel.options),
                            view_body(rel.view_definition.as_deref().unwrap_or(""))
                        ),
                    )),
                    _ => {}
                }
            }
        }
    }

    fn create_type(&mut self, oid: u32, node: Node, out: &mut Vec<Statement>) {
        let cat = self.cat;
        let t = &cat.types[&oid];
        let q = self.node_q(node);
        let name = cat.display(node);
        match t.typtype {
            'e' => {
                let labels: Vec<String> = cat
                    .enum_labels
                    .get(&oid)
                    .into_iter()
                    .flatten()
                    .map(|l| literal(l))
                    .collect();
                out.push(stmt(
                    "type",
                    name,
                    format!("create type {q} as enum ({})", labels.join(", ")),
                ));
            }
            'd' => {
                let mut sql = format!(
                    "create domain {q} as {}",
                    t.domain_base.as_deref().unwrap_or("text")
                );
                if let Some(c) = &t.collation {
                    sql.push_str(&format!(" collate {}", pair(c)));
                }
                if let Some(d) = &t.default {
                    sql.push_str(&format!(" default {d}"));
                }
                if t.not_null {
                    match self.domain_constraints(oid).find(|c| c.kind == 'n') {
                        Some(c) => {
                            sql.push_str(&format!(" constraint {} not null", ident(&c.name)))
                        }
                        None => sql.push_str(" not null"),
                    }
                }
                let checks = self
                    .domain_constraints(oid)
                    .filter(|c| c.kind == 'c' && c.validated);
                for c in checks {
                    sql.push_str(&format!(" constraint {} {}", ident(&c.name), c.definition));
                }
                out.push(stmt("domain", name, sql));
            }
            'r' => {
                let Some(r) = cat.ranges.get(&oid) else {
                    return;
                };
                let mut opts = vec![format!("subtype = {}", r.subtype)];
                if let Some(opc) = &r.opclass {
                    opts.push(format!("subtype_opclass = {}", pair(opc)));
                }
                if let Some(c) = &r.collation {
                    opts.push(format!("collation = {}", pair(c)));
                }
                if r.canonical.is_some() {
                    self.warnings.push(format!(
                        "range type {name}: its canonical function is not recreated"
                    ));
                }
                if let Some(f) = &r.subtype_diff {
                    opts.push(format!("subtype_diff = {}", pair(f)));
                }
                if let Some(m) = r.multirange.and_then(|m| cat.types.get(&m)) {
                    opts.push(format!(
                        "multirange_type_name = {}",
                        qualified(cat.schema_name(m.schema), &m.name)
                    ));
                }
                out.push(stmt(
                    "type",
                    name,
                    format!("create type {q} as range ({})", opts.join(", ")),
                ));
            }
            'c' => {
                let attrs: Vec<String> = cat
                    .columns
                    .get(&t.typrelid)
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        let mut a = format!("{} {}", ident(&c.name), c.type_name);
                        if let Some(coll) = &c.collation {
                            a.push_str(&format!(" collate {}", pair(coll)));
                        }
                        a
                    })
                    .collect();
                out.push(stmt(
                    "type",
                    name,
                    format!("create type {q} as ({})", attrs.join(", ")),
                ));
            }
            _ => {}
        }
    }

    fn create_aggregate(&mut self, oid: u32, node: Node, out: &mut Vec<Statement>) {
        let cat = self.cat;
        let f = &cat.functions[&oid];
        let name = cat.display(node);
        let Some(a) = cat.aggregates.get(&oid) else {
            self.warnings.push(format!(
                "aggregate {name} has no pg_aggregate row; not created"
            ));
            return;
        };
        let mut opts = Vec::new();
        if let Some(p) = &a.transfn {
            opts.push(format!("sfunc = {}", pair(p)));
        }
        opts.push(format!("stype = {}", a.transtype));
        if a.transspace != 0 {
            opts.push(format!("sspace = {}", a.transspace));
        }
        let modify = |c: char| match c {
            's' => "shareable",
            'w' => "read_write",
            _ => "read_only",
        };
        if let Some(p) = &a.finalfn {
            opts.push(format!("finalfunc = {}", pair(p)));
            if a.finalextra {
                opts.push("finalfunc_extra".to_owned());
            }
            opts.push(format!("finalfunc_modify = {}", modify(a.finalmodify)));
        }
        if let Some(p) = &a.combinefn {
            opts.push(format!("combinefunc = {}", pair(p)));
        }
        if let Some(p) = &a.serialfn {
            opts.push(format!("serialfunc = {}", pair(p)));
        }
        if let Some(p) = &a.deserialfn {
            opts.push(format!("deserialfunc = {}", pair(p)));
        }
        if let Some(v) = &a.initval {
            opts.push(format!("initcond = {}", literal(v)));
        }
        if let Some(p) = &a.mtransfn {
            opts.push(format!("msfunc = {}", pair(p)));
        }
        if let Some(p) = &a.minvtransfn {
            opts.push(format!("minvfunc = {}", pair(p)));
        }
        if let Some(t) = &a.mtranstype {
            opts.push(format!("mstype = {t}"));
            if a.mtransspace != 0 {
                opts.push(format!("msspace = {}", a.mtransspace));
            }
        }
        if let Some(p) = &a.mfinalfn {
            opts.push(format!("mfinalfunc = {}", pair(p)));
            if a.mfinalextra {
                opts.push("mfinalfunc_extra".to_owned());
            }
            opts.push(format!("mfinalfunc_modify = {}", modify(a.mfinalmodify)));
        }
        if let Some(v) = &a.minitval {
            opts.push(format!("minitcond = {}", literal(v)));
        }
        if let Some(op) = &a.sortop
            && let [schema, opname] = op.as_slice()
        {
            opts.push(format!("sortop = operator({}.{opname})", ident(schema)));
        }
        match f.parallel {
            's' => opts.push("parallel = safe".to_owned()),
            'r' => opts.push("parallel = restricted".to_owned()),
            _ => {}
        }
        if a.kind == 'h' {
            opts.push("hypothetical".to_owned());
        }
        let args = if f.args.is_empty() { "*" } else { &f.args };
        out.push(stmt(
            "aggregate",
            name,
            format!(
                "create aggregate {}({args}) ({})",
                self.node_q(node),
                opts.join(", ")
            ),
        ));
    }

    fn sequence_options(&self, oid: u32) -> Option<String> {
        let s = self.cat.sequences.get(&oid)?;
        Some(format!(
            "increment by {} minvalue {} maxvalue {} start with {} cache {} {}",
            s.increment,
            s.min,
            s.max,
            s.start,
            s.cache,
            if s.cycle { "cycle" } else { "no cycle" }
        ))
    }

    fn create_sequence(&mut self, oid: u32, rel: &Relation, out: &mut Vec<Statement>) {
        let Some(s) = self.cat.sequences.get(&oid) else {
            return;
        };
        let unlogged = if rel.persistence == 'u' {
            "unlogged "
        } else {
            ""
        };
        out.push(stmt(
            "sequence",
            self.rel_d(oid),
            format!(
                "create {unlogged}sequence {} as {} {}",
                self.rel_q(oid),
                s.type_name,
                self.sequence_options(oid).unwrap_or_default()
            ),
        ));
    }

    fn column_def(&self, table: u32, col: &Column) -> String {
        let mut s = format!("{} {}", ident(&col.name), col.type_name);
        if let Some(c) = &col.collation {
            s.push_str(&format!(" collate {}", pair(c)));
        }
        match (col.identity, col.generated, &col.default) {
            (Some(kind), _, _) => {
                let when = if kind == 'a' { "always" } else { "by default" };
                s.push_str(&format!(" generated {when} as identity"));
                if let Some(seq) = self.sequence_of(table, col, true) {
                    s.push_str(&format!(
                        " (sequence name {} {})",
                        self.rel_q(seq),
                        self.sequence_options(seq).unwrap_or_default()
                    ));
                }
            }
            (None, Some(g), Some(expr)) => {
                let how = if g == 'v' { "virtual" } else { "stored" };
                s.push_str(&format!(" generated always as ({expr}) {how}"));
            }
            (None, None, Some(expr)) if !self.sel.deferred_defaults.contains(&(table, col.num)) => {
                s.push_str(&format!(" default {expr}"));
            }
            _ => {}
        }
        if col.not_null {
            s.push_str(&self.not_null_clause(table, col));
        }
        s
    }

    /// The NOT NULL constraint (PostgreSQL 18 names them) on a column.
    fn not_null_constraint(&self, table: u32, col: &Column) -> Option<&'a Constraint> {
        self.constraints(table)
            .find(|c| c.kind == 'n' && c.columns == [col.num])
    }

    /// ` not null`, named after the source's constraint when it has one.
    fn not_null_clause(&self, table: u32, col: &Column) -> String {
        match self.not_null_constraint(table, col) {
            Some(c) => format!(
                " constraint {} not null{}",
                ident(&c.name),
                if c.no_inherit { " no inherit" } else { "" }
            ),
            None => " not null".to_owned(),
        }
    }

    /// For an inherited column: a column element when its NOT NULL
    /// constraint is named differently from the parent's (18+), and `alter
    /// column` statements when its default or NOT NULL differs.
    fn inherited_column_fixes(
        &self,
        table: u32,
        parent: u32,
        partition: bool,
        col: &Column,
        elems: &mut Vec<String>,
        out: &mut Vec<Statement>,
    ) {
        let Some(pcol) = self
            .cat
            .columns
            .get(&parent)
            .into_iter()
            .flatten()
            .find(|p| p.name == col.name)
        else {
            return;
        };
        let q = self.rel_q(table);
        let c = ident(&col.name);
        if col.identity.is_none()
            && col.generated.is_none()
            && col.default != pcol.default
            && !self.sel.deferred_defaults.contains(&(table, col.num))
        {
            let action = match &col.default {
                Some(d) => format!("set default {d}"),
                None => "drop default".to_owned(),
            };
            out.push(stmt(
                "column default",
                format!("{}.{}", self.rel_d(table), col.name),
                format!("alter table only {q} alter column {c} {action}"),
            ));
        }
        let own = self.not_null_constraint(table, col);
        let inherited = self.not_null_constraint(parent, pcol);
        if col.not_null
            && let Some(own) = own
            && inherited.is_none_or(|p| p.name != own.name || p.no_inherit)
        {
            let clause = self.not_null_clause(table, col);
            elems.push(if partition {
                format!("{} with options{clause}", ident(&col.name))
            } else {
                format!("{} {}{clause}", ident(&col.name), col.type_name)
            });
        } else if col.not_null && !pcol.not_null {
            out.push(stmt(
                "not null",
                format!("{}.{}", self.rel_d(table), col.name),
                format!("alter table only {q} alter column {c} set not null"),
            ));
        }
    }

    fn create_table(&mut self, oid: u32, rel: &Relation, out: &mut Vec<Statement>) {
        let cat = self.cat;
        let q = self.rel_q(oid);
        let parents = self.parents_in_set(oid);
        let partition_of = parents.first().copied().filter(|_| rel.is_partition);
        let mut elems = Vec::new();
        let mut after = Vec::new();
        for col in cat.columns.get(&oid).into_iter().flatten() {
            let inherited = partition_of.is_some() || (!parents.is_empty() && !col.is_local);
            if inherited
                && let Some(parent) = parents.iter().find(|p| {
                    cat.columns
                        .get(p)
                        .is_some_and(|cs| cs.iter().any(|pc| pc.name == col.name))
                })
            {
                let partition = partition_of.is_some();
                self.inherited_column_fixes(oid, *parent, partition, col, &mut elems, &mut after);
                continue;
            }
            elems.push(self.column_def(oid, col));
        }
        let checks = self
            .constraints(oid)
            .filter(|c| c.kind == 'c' && c.validated)
            .filter(|c| c.is_local || parents.is_empty());
        for c in checks {
            elems.push(format!("constraint {} {}", ident(&c.name), c.definition));
        }

        let unlogged = if rel.persistence == 'u' {
            "unlogged "
        } else {
            ""
        };
        let mut sql = format!("create {unlogged}table {q}");
        match partition_of {
            Some(parent) => {
                sql.push_str(&format!(" partition of {}", self.rel_q(parent)));
                if !elems.is_empty() {
                    sql.push_str(&format!(" (\n    {}\n)", elems.join(",\n    ")));
                }
                sql.push(' ');
                sql.push_str(rel.partition_bound.as_deref().unwrap_or("default"));
            }
            None => {
                sql.push_str(&format!(" (\n    {}\n)", elems.join(",\n    ")));
                if !parents.is_empty() {
                    let list: Vec<String> = parents.iter().map(|p| self.rel_q(*p)).collect();
                    sql.push_str(&format!(" inherits ({})", list.join(", ")));
                }
            }
        }
        if let Some(key) = &rel.partition_key {
            sql.push_str(&format!(" partition by {key}"));
        }
        if let Some(am) = &rel.access_method {
            sql.push_str(&format!(" using {}", ident(am)));
        }
        sql.push_str(&with_options(&rel.options));
        out.push(stmt("table", self.rel_d(oid), sql));
        out.append(&mut after);

        for col in cat.columns.get(&oid).into_iter().flatten() {
            if let Some(seq) = self.sequence_of(oid, col, false)
                && self.sel.has_relation(seq)
            {
                out.push(stmt(
                    "sequence owned by",
                    self.rel_d(seq),
                    format!(
                        "alter sequence {} owned by {q}.{}",
                        self.rel_q(seq),
                        ident(&col.name)
                    ),
                ));
            }
        }
        if rel.row_security {
            out.push(stmt(
                "row level security",
                self.rel_d(oid),
                format!("alter table only {q} enable row level security"),
            ));
        }
        if rel.force_row_security {
            out.push(stmt(
                "row level security",
                self.rel_d(oid),
                format!("alter table only {q} force row level security"),
            ));
        }
    }

    fn pre_comments(&self, node: Node, out: &mut Vec<Statement>) {
        let cat = self.cat;
        let q = self.node_q(node);
        let mut push = |what: &str, target: String, comment: &Option<String>| {
            if let Some(text) = comment {
                out.push(stmt(
                    "comment",
                    format!("{what} {}", cat.display(node)),
                    format!("comment on {what} {target} is {}", literal(text)),
                ));
            }
        };
        match node {
            Node::Schema(oid) => push("schema", q, &cat.namespaces[&oid].comment),
            Node::Extension(_) => {}
            Node::Object(kind, oid) => super::objects::comment(cat, kind, oid, out),
            Node::Collation(oid) => push("collation", q, &cat.collations[&oid].comment),
            Node::Type(oid) => {
                let t = &cat.types[&oid];
                let what = if t.typtype == 'd' { "domain" } else { "type" };
                push(what, q.clone(), &t.comment);
                if t.typtype == 'c' {
                    for c in cat.columns.get(&t.typrelid).into_iter().flatten() {
                        push("column", format!("{q}.{}", ident(&c.name)), &c.comment);
                    }
                }
            }
            Node::Function(oid) => {
                let f = &cat.functions[&oid];
                let (what, args) = match f.kind {
                    'a' if f.identity_args.is_empty() => ("aggregate", "*"),
                    'a' => ("aggregate", f.identity_args.as_str()),
                    'p' => ("procedure", f.identity_args.as_str()),
                    _ => ("function", f.identity_args.as_str()),
                };
                push(what, format!("{q}({args})"), &f.comment);
            }
            Node::Relation(oid) => {
                let rel = &cat.relations[&oid];
                let what = match rel.kind {
                    'S' => "sequence",
                    'v' => "view",
                    'm' => "materialized view",
                    _ => "table",
                };
                push(what, q.clone(), &rel.comment);
                for c in cat.columns.get(&oid).into_iter().flatten() {
                    push("column", format!("{q}.{}", ident(&c.name)), &c.comment);
                }
            }
        }
    }

    // ----- after the data --------------------------------------------------

    /// Statements run after the copy, in order.
    pub(super) fn post_data(&mut self) -> Vec<Statement> {
        let cat = self.cat;
        let mut out = Vec::new();
        let mut comments = Vec::new();
        let in_set = |rel: u32| self.sel.has_relation(rel);

        // NOT VALID checks: the data may break them, so they come after it.
        let mut late_checks = HashSet::new();
        for (&oid, c) in &cat.constraints {
            if c.kind != 'c' || c.validated {
                continue;
            }
            if c.domain != 0 && self.sel.nodes.contains(&Node::Type(c.domain)) {
                out.push(stmt(
                    "check",
                    format!("{}.{}", cat.display(Node::Type(c.domain)), c.name),
                    format!(
                        "alter domain {} add constraint {} {}",
                        self.node_q(Node::Type(c.domain)),
                        ident(&c.name),
                        c.definition
                    ),
                ));
            } else if c.relation != 0
                && in_set(c.relation)
                && (c.is_local || self.parents_in_set(c.relation).is_empty())
                && !self.blocked(PG_CONSTRAINT, oid, &format!("check {}", c.name))
            {
                late_checks.insert(oid);
                out.push(stmt(
                    "check",
                    format!("{}.{}", self.rel_d(c.relation), c.name),
                    format!(
                        "alter table {} add constraint {} {}",
                        self.rel_q(c.relation),
                        ident(&c.name),
                        c.definition
                    ),
                ));
            }
        }

        // Keys, exclusion constraints and indexes; partitioned parents first
        // (created ONLY), each partition's own then attached to them.
        let index_constraint: HashMap<u32, &Constraint> = cat
            .constraints
            .values()
            .filter(|c| matches!(c.kind, 'p' | 'u' | 'x') && c.index != 0)
            .map(|c| (c.index, c))
            .collect();
        let mut indexes: Vec<(usize, bool, &str, u32)> = cat
            .indexes
            .iter()
            .filter(|(_, i)| in_set(i.relation))
            .map(|(oid, i)| {
                let is_constraint = index_constraint
                    .get(oid)
                    .is_some_and(|c| c.relation == i.relation);
                (
                    self.depth(i.relation),
                    !is_constraint,
                    i.name.as_str(),
                    *oid,
                )
            })
            .collect();
        indexes.sort();
        let mut made: HashSet<u32> = HashSet::new();
        for (_, _, _, oid) in indexes {
            let idx = &cat.indexes[&oid];
            let q = self.rel_q(idx.relation);
            let iq = qualified(cat.schema_name(idx.schema), &idx.name);
            let idisplay = format!("{}.{}", cat.schema_name(idx.schema), idx.name);
            if !idx.valid && idx.kind != 'I' {
                self.warnings.push(format!(
                    "index {idisplay} is invalid on the source; not created"
                ));
                continue;
            }
            if self.blocked(PG_CLASS, oid, &format!("index {idisplay}")) {
                continue;
            }
            match index_constraint
                .get(&oid)
                .filter(|c| c.relation == idx.relation)
            {
                Some(c) => {
                    out.push(stmt(
                        "constraint",
                        format!("{}.{}", self.rel_d(idx.relation), c.name),
                        format!(
                            "alter table only {q} add constraint {} {}",
                            ident(&c.name),
                            c.definition
                        ),
                    ));
                    self.constraint_comment(c, &mut comments);
                }
                None => out.push(stmt("index", idisplay.clone(), idx.definition.clone())),
            }
            made.insert(oid);
            if let Some(parent) = cat.index_parent.get(&oid)
                && made.contains(parent)
            {
                let p = &cat.indexes[parent];
                out.push(stmt(
                    "index attach",
                    idisplay.clone(),
                    format!(
                        "alter index {} attach partition {iq}",
                        qualified(cat.schema_name(p.schema), &p.name)
                    ),
                ));
            }
            if idx.clustered {
                out.push(stmt(
                    "cluster",
                    idisplay.clone(),
                    format!("alter table only {q} cluster on {}", ident(&idx.name)),
                ));
            }
            if let Some(text) = &idx.comment {
                comments.push(stmt(
                    "comment",
                    format!("index {idisplay}"),
                    format!("comment on index {iq} is {}", literal(text)),
                ));
            }
        }

        // Replica identity.
        for node in &self.sel.order {
            let Node::Relation(oid) = *node else { continue };
            let rel = &cat.relations[&oid];
            if !matches!(rel.kind, 'r' | 'p' | 'm') {
                continue;
            }
            let action = match rel.replica_identity {
                'f' => "full".to_owned(),
                'n' => "nothing".to_owned(),
                'i' => match self
                    .indexes_of
                    .get(&oid)
                    .into_iter()
                    .flatten()
                    .find(|i| cat.indexes[*i].replica_identity && made.contains(*i))
                {
                    Some(i) => format!("using index {}", ident(&cat.indexes[i].name)),
                    None => continue,
                },
                _ => continue,
            };
            out.push(stmt(
                "replica identity",
                self.rel_d(oid),
                format!(
                    "alter table only {} replica identity {action}",
                    self.rel_q(oid)
                ),
            ));
        }

        // Foreign keys: one on a partitioned table is cloned onto its
        // partitions (and onto the referenced partitions) by the server.
        let fk_ok = |c: &Constraint| in_set(c.relation) && in_set(c.referenced);
        let mut fks: Vec<(usize, &str, &Constraint)> = cat
            .constraints
            .values()
            .filter(|c| c.kind == 'f' && in_set(c.relation))
            .map(|c| (self.depth(c.relation), c.name.as_str(), c))
            .collect();
        fks.sort_by(|a, b| (a.0, a.1, a.2.relation).cmp(&(b.0, b.1, b.2.relation)));
        for (_, _, c) in fks {
            if !fk_ok(c) {
                self.warnings.push(format!(
                    "foreign key {} on {} is not created: it references {}, which is not selected",
                    c.name,
                    self.rel_d(c.relation),
                    self.rel_d(c.referenced)
                ));
                continue;
            }
            if c.parent != 0 && cat.constraints.get(&c.parent).is_some_and(fk_ok) {
                continue;
            }
            let only = if cat.relations[&c.relation].kind == 'p' {
                ""
            } else {
                "only "
            };
            out.push(stmt(
                "foreign key",
                format!("{}.{}", self.rel_d(c.relation), c.name),
                format!(
                    "alter table {only}{} add constraint {} {}",
                    self.rel_q(c.relation),
                    ident(&c.name),
                    c.definition
                ),
            ));
            self.constraint_comment(c, &mut comments);
        }
        for (oid, c) in &cat.constraints {
            let on_domain = c.domain != 0 && self.sel.nodes.contains(&Node::Type(c.domain));
            let inline_check = c.kind == 'c'
                && c.validated
                && in_set(c.relation)
                && (c.is_local || self.parents_in_set(c.relation).is_empty());
            if on_domain || inline_check || late_checks.contains(oid) {
                self.constraint_comment(c, &mut comments);
            }
        }

        // Triggers, keeping their ENABLE state; clones on partitions come
        // with the partitioned table's trigger.
        let mut triggers: Vec<(usize, String, &str, u32)> = cat
            .triggers
            .iter()
            .filter(|(_, t)| in_set(t.relation))
            .map(|(oid, t)| {
                (
                    self.depth(t.relation),
                    self.rel_d(t.relation),
                    t.name.as_str(),
                    *oid,
                )
            })
            .collect();
        triggers.sort();
        for (_, _, _, oid) in triggers {
            let t = &cat.triggers[&oid];
            let q = self.rel_q(t.relation);
            let display = format!("{}.{}", self.rel_d(t.relation), t.name);
            if self.blocked(PG_TRIGGER, oid, &format!("trigger {display}")) {
                continue;
            }
            let parent = cat
                .triggers
                .get(&t.parent)
                .filter(|p| t.parent != 0 && in_set(p.relation));
            let default_state = match parent {
                Some(p) => p.enabled,
                None => {
                    out.push(stmt("trigger", display.clone(), t.definition.clone()));
                    if let Some(text) = &t.comment {
                        comments.push(stmt(
                            "comment",
                            format!("trigger {display}"),
                            format!(
                                "comment on trigger {} on {q} is {}",
                                ident(&t.name),
                                literal(text)
                            ),
                        ));
                    }
                    'O'
                }
            };
            if t.enabled != default_state {
                out.push(stmt(
                    "trigger state",
                    display,
                    format!(
                        "alter table only {q} {} trigger {}",
                        enable_clause(t.enabled),
                        ident(&t.name)
                    ),
                ));
            }
        }

        // Rules (a view's own _RETURN rule is its definition).
        for (&oid, r) in &cat.rules {
            let Some(def) = &r.definition else { continue };
            if !in_set(r.relation) {
                continue;
            }
            let q = self.rel_q(r.relation);
            let display = format!("{}.{}", self.rel_d(r.relation), r.name);
            if self.blocked(PG_REWRITE, oid, &format!("rule {display}")) {
                continue;
            }
            out.push(stmt("rule", display.clone(), view_body(def).to_owned()));
            if r.enabled != 'O' {
                out.push(stmt(
                    "rule state",
                    display.clone(),
                    format!(
                        "alter table {q} {} rule {}",
                        enable_clause(r.enabled),
                        ident(&r.name)
                    ),
                ));
            }
            if let Some(text) = &r.comment {
                comments.push(stmt(
                    "comment",
                    format!("rule {display}"),
                    format!(
                        "comment on rule {} on {q} is {}",
                        ident(&r.name),
                        literal(text)
                    ),
                ));
            }
        }

        // Row-level security policies.
        for (&oid, p) in &cat.policies {
            if !in_set(p.relation) {
                continue;
            }
            let q = self.rel_q(p.relation);
            let display = format!("{}.{}", self.rel_d(p.relation), p.name);
            if self.blocked(PG_POLICY, oid, &format!("policy {display}")) {
                continue;
            }
            let mut sql = format!("create policy {} on {q}", ident(&p.name));
            if !p.permissive {
                sql.push_str(" as restrictive");
            }
            sql.push_str(match p.command {
                'r' => " for select",
                'a' => " for insert",
                'w' => " for update",
                'd' => " for delete",
                _ => " for all",
            });
            if p.roles.is_empty() {
                sql.push_str(" to public");
            } else {
                let roles: Vec<String> = p.roles.iter().map(|r| ident(r)).collect();
                sql.push_str(&format!(" to {}", roles.join(", ")));
            }
            if let Some(e) = &p.using {
                sql.push_str(&format!(" using ({e})"));
            }
            if let Some(e) = &p.with_check {
                sql.push_str(&format!(" with check ({e})"));
            }
            out.push(stmt("policy", display.clone(), sql));
            if let Some(text) = &p.comment {
                comments.push(stmt(
                    "comment",
                    format!("policy {display}"),
                    format!(
                        "comment on policy {} on {q} is {}",
                        ident(&p.name),
                        literal(text)
                    ),
                ));
            }
        }

        // Populated materialized views, in dependency order.
        for node in &self.sel.order {
            if let Node::Relation(oid) = *node
                && let Some(rel) = self.rel(oid)
                && rel.kind == 'm'
                && rel.populated
            {
                out.push(stmt(
                    "refresh",
                    self.rel_d(oid),
                    format!("refresh materialized view {}", self.rel_q(oid)),
                ));
            }
        }

        // Sequences to the source's current value, identity ones included.
        for oid in self.setval_sequences() {
            if let Some((last, called)) = self.seq_values.get(&oid) {
                out.push(stmt(
                    "setval",
                    self.rel_d(oid),
                    format!(
                        "select pg_catalog.setval({}, {last}, {called})",
                        literal(&self.rel_q(oid))
                    ),
                ));
            }
        }

        out.append(&mut comments);
        out
    }

    fn constraint_comment(&self, c: &Constraint, comments: &mut Vec<Statement>) {
        let Some(text) = &c.comment else { return };
        let (on, display) = if c.domain != 0 {
            (
                format!("domain {}", self.node_q(Node::Type(c.domain))),
                self.cat.display(Node::Type(c.domain)),
            )
        } else {
            (self.rel_q(c.relation), self.rel_d(c.relation))
        };
        comments.push(stmt(
            "comment",
            format!("constraint {display}.{}", c.name),
            format!(
                "comment on constraint {} on {on} is {}",
                ident(&c.name),
                literal(text)
            ),
        ));
    }

    /// Sequences whose value is set after the copy: the created ones and
    /// the identity sequences of created tables. Sorted by OID.
    pub(super) fn setval_sequences(&self) -> BTreeSet<u32> {
        self.cat
            .sequences
            .iter()
            .filter(|(oid, s)| {
                self.sel.has_relation(**oid)
                    || (s.identity && s.owner.is_some_and(|(t, _)| self.sel.has_relation(t)))
            })
            .map(|(oid, _)| *oid)
            .collect()
    }

    /// Quoted names of [`Self::setval_sequences`], for reading their values.
    pub(super) fn setval_sequence_names(&self) -> Vec<(u32, String)> {
        self.setval_sequences()
            .into_iter()
            .map(|oid| (oid, self.rel_q(oid)))
            .collect()
    }

    // ----- the copy list ---------------------------------------------------

    /// Tables whose rows are copied: ordinary tables and leaf partitions,
    /// sorted by schema and name.
    pub(super) fn tables(&self) -> Vec<TableInfo> {
        let cat = self.cat;
        let mut tables: Vec<TableInfo> = self
            .sel
            .nodes
            .iter()
            .filter_map(|node| match node {
                Node::Relation(oid) => Some((*oid, cat.relations.get(oid)?)),
                _ => None,
            })
            .filter(|(_, rel)| rel.kind == 'r')
            .map(|(oid, rel)| TableInfo {
                name: QualifiedName::new(cat.schema_name(rel.schema), rel.name.clone()),
                columns: cat
                    .columns
                    .get(&oid)
                    .into_iter()
                    .flatten()
                    .filter(|c| c.generated.is_none())
                    .map(|c| c.name.clone())
                    .collect(),
                has_key: rel.has_key,
                replica_identity: rel.replica_identity,
                estimated_bytes: rel.size,
            })
            .collect();
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        tables
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloptions_become_quoted_with_clauses() {
        assert_eq!(with_options(&[]), "");
        assert_eq!(
            with_options(&["fillfactor=70".into(), "check_option=local".into()]),
            " with (fillfactor='70', check_option='local')"
        );
        assert_eq!(with_options(&["x=it's".into()]), " with (x='it''s')");
        assert_eq!(
            with_options(&["toast.autovacuum_enabled=false".into(), "Odd Key=1".into()]),
            " with (toast.autovacuum_enabled='false', \"Odd Key\"='1')"
        );
    }

    #[test]
    fn view_bodies_lose_the_trailing_semicolon() {
        assert_eq!(view_body(" SELECT 1;\n"), "SELECT 1");
        assert_eq!(view_body("SELECT 1"), "SELECT 1");
    }

    #[test]
    fn enable_states_map_to_alter_keywords() {
        assert_eq!(enable_clause('D'), "disable");
        assert_eq!(enable_clause('R'), "enable replica");
        assert_eq!(enable_clause('A'), "enable always");
        assert_eq!(enable_clause('O'), "enable");
    }

    #[test]
    fn catalog_pairs_are_quoted() {
        assert_eq!(
            pair(&["pg_catalog".into(), "C".into()]),
            "\"pg_catalog\".\"C\""
        );
    }
}
