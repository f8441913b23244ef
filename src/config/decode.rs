//! Walks the parsed HCL of every file and builds the [`DesiredState`],
//! reporting every problem with its position instead of stopping early.
//!
//! Phases: parse each file; collect the top-level blocks of all files
//! (duplicates across files are reported here); resolve `variable` blocks;
//! decode `endpoint` blocks; decode `task` blocks (their `endpoint.NAME`
//! references see every file); check slot-name collisions between tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hcl::Value;
use hcl_edit::Span;
use hcl_edit::expr::{Expression, TraversalOperator};
use hcl_edit::structure::{Attribute, Block, Body, Structure};

use super::Inputs;
use super::diag::{ConfigError, ConfigErrors, Diagnostics, Source};
use super::eval::{self, EnvScope, Evaluator, Variable};
use super::suggest;
use crate::model::{
    ConflictMode, DesiredState, EndpointSpec, Mapping, NameCase, ObjectSelection, Operations,
    QualifiedName, RetrySpec, Secret, SslMode, SyncTypes, TableOptions, TaskSpec, ThrottleSpec,
    TlsFiles, slot_name_for_task,
};

/// What a block may contain. `planned` names are part of the documented
/// contract but not accepted yet; they get their own message.
struct Shape {
    attrs: &'static [&'static str],
    blocks: &'static [&'static str],
    planned: &'static [&'static str],
}

const TOP_BLOCKS: &[&str] = &["variable", "endpoint", "task"];

const VARIABLE: Shape = Shape {
    attrs: &["default", "sensitive", "description"],
    blocks: &[],
    planned: &[],
};

const ENDPOINT: Shape = Shape {
    attrs: &[
        "host",
        "port",
        "database",
        "user",
        "password",
        "passfile",
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslsni",
    ],
    blocks: &[],
    planned: &[],
};

const TASK: Shape = Shape {
    attrs: &[
        "source",
        "destination",
        "sync_types",
        "conflicting_tables",
        "name_case",
        "publication",
    ],
    blocks: &["schema", "table", "mapping", "retry", "throttle"],
    planned: &["tags", "alert"],
};

const THROTTLE: Shape = Shape {
    attrs: &[
        "full_qps",
        "full_rps",
        "full_mbps",
        "incremental_rps",
        "incremental_mbps",
    ],
    blocks: &[],
    planned: &[],
};

const RETRY: Shape = Shape {
    attrs: &["connection_minutes", "other_minutes"],
    blocks: &[],
    planned: &[],
};

const SCHEMA: Shape = Shape {
    attrs: &["exclude_tables", "rename", "operations"],
    blocks: &[],
    planned: &[],
};

const TABLE: Shape = Shape {
    attrs: &["rename", "columns", "column_map", "where", "operations"],
    blocks: &[],
    planned: &[],
};

const MAPPING: Shape = Shape {
    attrs: &["match", "rename"],
    blocks: &[],
    planned: &[],
};

const SYNC_TYPES: [&str; 3] = ["schema", "full", "incremental"];
const SSL_MODES: [&str; 5] = ["disable", "prefer", "require", "verify-ca", "verify-full"];
const CONFLICT_MODES: [&str; 2] = ["error", "ignore"];

/// A labelled top-level block.
struct Decl<'b> {
    file: usize,
    block: &'b Block,
    name: String,
}

/// An attribute's value after conversion: absent (missing or `null`),
/// converted, or already reported as wrong.
enum Field<T> {
    Absent,
    Ok(T),
    Bad,
}

impl<T> Field<T> {
    /// The value, or `default` when absent; `None` when already reported.
    fn or(self, default: T) -> Option<T> {
        match self {
            Field::Absent => Some(default),
            Field::Ok(v) => Some(v),
            Field::Bad => None,
        }
    }

    /// `Some(Some(v))`, `Some(None)` when absent; `None` when already
    /// reported.
    fn or_none(self) -> Option<Option<T>> {
        match self {
            Field::Absent => Some(None),
            Field::Ok(v) => Some(Some(v)),
            Field::Bad => None,
        }
    }
}

/// The attributes of one block, with what evaluating them needs.
struct Attrs<'x> {
    ev: &'x Evaluator<'x>,
    file: usize,
    block: &'x Block,
    /// `endpoint "src"`, `schema "public" of task "t"`, …
    ctx: &'x str,
    map: BTreeMap<&'x str, &'x Attribute>,
}

/// A conversion failure: message and hint.
type Complaint = (String, Option<String>);

fn span_start(node: &impl Span, fallback: usize) -> usize {
    node.span().map_or(fallback, |s| s.start)
}

fn block_start(block: &Block) -> usize {
    span_start(&block.ident, span_start(block, 0))
}

/// Whether `name` can follow `endpoint.` or `var.` (ASCII HCL identifiers).
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `"a", "b" or "c"`.
fn values(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("{w:?}")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

/// Parses and decodes `files` (in the given order) with `inputs`.
pub(crate) fn decode(
    files: &[(PathBuf, String)],
    inputs: &Inputs,
) -> Result<DesiredState, ConfigErrors> {
    let _env = EnvScope::enter(&inputs.env);
    let sources: Vec<Source<'_>> = files.iter().map(|(p, t)| Source::new(p, t)).collect();
    let mut diags = Diagnostics::default();

    let mut bodies = Vec::with_capacity(files.len());
    for (i, source) in sources.iter().enumerate() {
        match hcl_edit::parser::parse_body(source.text) {
            Ok(body) => bodies.push(Some(body)),
            Err(err) => {
                diags.push_at(i, syntax_error(source, &err));
                bodies.push(None);
            }
        }
    }
    let incomplete = bodies.iter().any(Option::is_none);

    let no_vars = BTreeMap::new();
    let no_env = BTreeMap::new();
    let literal = Evaluator::literal(
        &no_vars,
        &no_env,
        "variable blocks hold literal values only; pass other values with --var NAME=VALUE",
    );
    let mut d = Decoder {
        sources: &sources,
        diags,
        incomplete,
    };
    let top = d.collect(&bodies);

    let mut vars = BTreeMap::new();
    for decl in &top.variables {
        let var = d.variable(&literal, decl, inputs);
        vars.insert(decl.name.clone(), var);
    }
    let ev = Evaluator::new(&vars, &inputs.env, incomplete);

    let endpoint_names: BTreeSet<&str> = top.endpoints.iter().map(|e| e.name.as_str()).collect();
    let mut state = DesiredState::default();
    for decl in &top.endpoints {
        if let Some(endpoint) = d.endpoint(&ev, decl) {
            state.endpoints.insert(decl.name.clone(), endpoint);
        }
    }
    for decl in &top.tasks {
        if let Some(task) = d.task(&ev, decl, &endpoint_names, &state.endpoints) {
            state.tasks.insert(decl.name.clone(), task);
        }
    }
    d.slot_collisions(&top.tasks);

    if d.diags.is_empty() {
        Ok(state)
    } else {
        Err(d.diags.finish())
    }
}

fn syntax_error(source: &Source<'_>, err: &hcl_edit::parser::Error) -> ConfigError {
    let (message, hint) = if err.message().contains("redefined attribute") {
        (
            "attribute is set twice in the same block".to_owned(),
            Some("remove one of the two".to_owned()),
        )
    } else {
        (format!("syntax error: {}", err.message()), None)
    };
    ConfigError {
        file: source.path.to_path_buf(),
        line: err.location().line(),
        column: err.location().column(),
        message,
        hint,
    }
}

#[derive(Default)]
struct TopLevel<'b> {
    variables: Vec<Decl<'b>>,
    endpoints: Vec<Decl<'b>>,
    tasks: Vec<Decl<'b>>,
}

struct Decoder<'a> {
    sources: &'a [Source<'a>],
    diags: Diagnostics,
    /// Some file failed to parse: references to names it might declare are
    /// not reported.
    incomplete: bool,
}

impl Decoder<'_> {
    fn push(&mut self, file: usize, offset: usize, message: String, hint: Option<String>) {
        self.diags.push(self.sources, file, offset, message, hint);
    }

    /// Sorts the top-level blocks of all files by kind, checking labels and
    /// reporting duplicates (at the second one, naming the first).
    fn collect<'b>(&mut self, bodies: &'b [Option<Body>]) -> TopLevel<'b> {
        let mut top = TopLevel::default();
        let mut seen: BTreeMap<(&str, String), (usize, usize)> = BTreeMap::new();
        for (file, body) in bodies.iter().enumerate() {
            let Some(body) = body else { continue };
            for structure in body.iter() {
                let block = match structure {
                    Structure::Block(block) => block,
                    Structure::Attribute(attr) => {
                        let key = attr.key.as_str();
                        self.push(
                            file,
                            span_start(&attr.key, 0),
                            format!("unexpected attribute `{key}` at the top level"),
                            Some(format!(
                                "attributes go inside {} blocks",
                                suggest::list(TOP_BLOCKS, "or")
                            )),
                        );
                        continue;
                    }
                };
                let kind = block.ident.as_str();
                let (list, example) = match kind {
                    "variable" => (&mut top.variables, "variable \"NAME\" {}"),
                    "endpoint" => (&mut top.endpoints, "endpoint \"NAME\" { ... }"),
                    "task" => (&mut top.tasks, "task \"NAME\" { ... }"),
                    _ => {
                        let hint = match suggest::closest(kind, TOP_BLOCKS.iter().copied()) {
                            Some(near) => format!("did you mean `{near}`?"),
                            None => {
                                format!("top-level blocks are {}", suggest::list(TOP_BLOCKS, "and"))
                            }
                        };
                        self.push(
                            file,
                            block_start(block),
                            format!("unknown block `{kind}`"),
                            Some(hint),
                        );
                        continue;
                    }
                };
                let Some((name, name_at)) = self.one_label(file, block, kind, example) else {
                    continue;
                };
                // An invalid name is reported; the block is still decoded so
                // that problems in its body show too.
                self.valid_name(file, kind, &name, name_at);
                let key = (kind, name.clone());
                if let Some(&(first_file, first_at)) = seen.get(&key) {
                    let first = self.sources[first_file].place(first_at);
                    self.push(
                        file,
                        name_at,
                        format!("{kind} {name:?} is already declared at {first}"),
                        Some("rename or remove one of them".to_owned()),
                    );
                    continue;
                }
                seen.insert(key, (file, name_at));
                list.push(Decl { file, block, name });
            }
        }
        top
    }

    /// The single label of `block`, with its offset.
    fn one_label(
        &mut self,
        file: usize,
        block: &Block,
        kind: &str,
        example: &str,
    ) -> Option<(String, usize)> {
        if let [label] = block.labels.as_slice() {
            return Some((
                label.as_str().to_owned(),
                span_start(label, block_start(block)),
            ));
        }
        let meaning = match kind {
            "table" => "the table as SCHEMA.NAME".to_owned(),
            _ => format!("the {kind} name"),
        };
        self.push(
            file,
            block_start(block),
            format!("{kind} block needs exactly one label, {meaning}"),
            Some(format!("write `{example}`")),
        );
        None
    }

    /// Checks a top-level block name; reports it if invalid.
    fn valid_name(&mut self, file: usize, kind: &str, name: &str, at: usize) {
        if name.is_empty() {
            self.push(
                file,
                at,
                format!("{kind} name must not be empty"),
                Some(format!("write `{kind} \"NAME\" {{ ... }}`")),
            );
            return;
        }
        let ok = match kind {
            "task" => name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            _ => is_identifier(name),
        };
        if ok {
            return;
        }
        let (message, hint) = if kind == "task" {
            let fixed: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            (
                format!("task name {name:?} may contain only letters, digits, `_` and `-`"),
                format!("rename the task, for example to {fixed:?}"),
            )
        } else {
            let prefix = if kind == "variable" { "var" } else { kind };
            (
                format!("{kind} name {name:?} is not a valid identifier"),
                format!(
                    "use letters, digits, `_` and `-`, starting with a letter or `_`, so that \
                     {prefix}.NAME can refer to it"
                ),
            )
        };
        self.push(file, at, message, Some(hint));
    }

    /// Reports every attribute and block `shape` does not allow; returns the
    /// allowed attributes by name and the allowed blocks in order.
    fn check_body<'b>(
        &mut self,
        file: usize,
        body: &'b Body,
        ctx: &str,
        shape: &Shape,
    ) -> (BTreeMap<&'b str, &'b Attribute>, Vec<&'b Block>) {
        let mut attrs = BTreeMap::new();
        let mut blocks = Vec::new();
        for structure in body.iter() {
            match structure {
                Structure::Attribute(attr) => {
                    let key = attr.key.as_str();
                    if shape.attrs.contains(&key) {
                        attrs.insert(key, attr);
                        continue;
                    }
                    let at = span_start(&attr.key, span_start(attr, 0));
                    let (message, hint) = if shape.planned.contains(&key) {
                        not_supported(key, ctx)
                    } else if shape.blocks.contains(&key) {
                        (
                            format!("`{key}` in {ctx} is a block, not an attribute"),
                            format!("write `{key} \"NAME\" {{ ... }}`"),
                        )
                    } else {
                        let hint = match suggest::closest(key, shape.attrs.iter().copied()) {
                            Some(near) => format!("did you mean `{near}`?"),
                            None if shape.attrs.is_empty() => {
                                format!("{} blocks take no attributes", kind_of(ctx))
                            }
                            None => format!(
                                "{} blocks take {}",
                                kind_of(ctx),
                                suggest::list(shape.attrs, "and")
                            ),
                        };
                        (format!("unknown attribute `{key}` in {ctx}"), hint)
                    };
                    self.push(file, at, message, Some(hint));
                }
                Structure::Block(block) => {
                    let ident = block.ident.as_str();
                    if shape.blocks.contains(&ident) {
                        blocks.push(block);
                        continue;
                    }
                    let (message, hint) = if shape.planned.contains(&ident) {
                        not_supported(ident, ctx)
                    } else if shape.attrs.contains(&ident) {
                        (
                            format!("`{ident}` in {ctx} is an attribute, not a block"),
                            format!("write `{ident} = ...`"),
                        )
                    } else {
                        let hint = match suggest::closest(ident, shape.blocks.iter().copied()) {
                            Some(near) => format!("did you mean `{near}`?"),
                            None if shape.blocks.is_empty() => {
                                format!("{} blocks contain no blocks", kind_of(ctx))
                            }
                            None => format!(
                                "{} blocks contain {} blocks",
                                kind_of(ctx),
                                suggest::list(shape.blocks, "and")
                            ),
                        };
                        (format!("unknown block `{ident}` in {ctx}"), hint)
                    };
                    self.push(file, block_start(block), message, Some(hint));
                }
            }
        }
        (attrs, blocks)
    }

    /// Evaluates and converts attribute `name`, reporting problems.
    /// `sensitive` marks attributes whose values are never shown.
    fn field<T>(
        &mut self,
        attrs: &Attrs<'_>,
        name: &str,
        sensitive: bool,
        convert: impl FnOnce(&Value, bool, &str) -> Result<T, Complaint>,
    ) -> Field<T> {
        let Some(attr) = attrs.map.get(name) else {
            return Field::Absent;
        };
        let file = attrs.file;
        let subject = format!("`{name}` in {}", attrs.ctx);
        let at = eval::start(&attr.value, span_start(*attr, 0));
        match attrs.ev.eval(&attr.value, &subject, sensitive, at) {
            Err(problems) => {
                for p in problems {
                    self.push(file, p.offset, p.message, p.hint);
                }
                Field::Bad
            }
            Ok(e) if e.value.is_null() => Field::Absent,
            Ok(e) => match convert(&e.value, e.sensitive || sensitive, &subject) {
                Ok(v) => Field::Ok(v),
                Err((message, hint)) => {
                    self.push(file, at, message, hint);
                    Field::Bad
                }
            },
        }
    }

    /// Reports a missing required attribute at the block's start.
    fn require<T>(&mut self, attrs: &Attrs<'_>, field: Field<T>, name: &str) -> Option<T> {
        match field {
            Field::Ok(v) => Some(v),
            Field::Bad => None,
            Field::Absent => {
                self.push(
                    attrs.file,
                    block_start(attrs.block),
                    format!("{} is missing required attribute `{name}`", attrs.ctx),
                    Some(format!("add `{name} = ...`")),
                );
                None
            }
        }
    }

    /// A `variable` block; a variable is declared even when its block has
    /// problems, so that references to it do not add "undeclared" errors.
    fn variable(&mut self, literal: &Evaluator<'_>, decl: &Decl<'_>, inputs: &Inputs) -> Variable {
        let file = decl.file;
        let ctx = format!("variable {:?}", decl.name);
        let (map, _) = self.check_body(file, &decl.block.body, &ctx, &VARIABLE);
        let attrs = Attrs {
            ev: literal,
            file,
            block: decl.block,
            ctx: &ctx,
            map,
        };
        let default = match attrs.map.get("default") {
            None => None,
            Some(attr) => {
                let subject = format!("the default of variable `{}`", decl.name);
                let at = eval::start(&attr.value, span_start(*attr, 0));
                match literal.eval(&attr.value, &subject, false, at) {
                    Ok(e) => Some(e.value),
                    Err(problems) => {
                        for p in problems {
                            self.push(file, p.offset, p.message, p.hint);
                        }
                        None
                    }
                }
            }
        };
        // An invalid `sensitive` is taken as true: hide rather than leak.
        let sensitive = self
            .field(&attrs, "sensitive", false, bool_value)
            .or(false)
            .unwrap_or(true);
        self.field(&attrs, "description", false, string);
        let value = match inputs.vars.get(&decl.name) {
            Some(v) => Some(Value::String(v.clone())),
            None => default,
        };
        Variable { value, sensitive }
    }

    fn endpoint(&mut self, ev: &Evaluator<'_>, decl: &Decl<'_>) -> Option<EndpointSpec> {
        let ctx = format!("endpoint {:?}", decl.name);
        let (map, _) = self.check_body(decl.file, &decl.block.body, &ctx, &ENDPOINT);
        let a = Attrs {
            ev,
            file: decl.file,
            block: decl.block,
            ctx: &ctx,
            map,
        };
        let host = self.field(&a, "host", false, non_empty);
        let port = self.field(&a, "port", false, port);
        let database = self.field(&a, "database", false, non_empty);
        let user = self.field(&a, "user", false, non_empty);
        let password = self.field(&a, "password", true, password);
        let sslmode = self.field(&a, "sslmode", false, sslmode);
        // File names are relative to the directory of the file that names
        // them (the configuration directory), not to where pgsync runs.
        let base = self.sources[decl.file]
            .path
            .parent()
            .unwrap_or(Path::new(""))
            .to_path_buf();
        let file = |v: &Value, s: bool, subj: &str| file_path(v, s, subj, &base);
        let passfile = self.field(&a, "passfile", false, file);
        let sslrootcert = self.field(&a, "sslrootcert", false, file);
        let sslcert = self.field(&a, "sslcert", false, file);
        let sslkey = self.field(&a, "sslkey", false, file);
        let sslpassword = self.field(&a, "sslpassword", true, sslpassword);
        let sslsni = self.field(&a, "sslsni", false, sslsni);

        let host = self.require(&a, host, "host");
        let database = self.require(&a, database, "database");
        let user = self.require(&a, user, "user");
        let sslmode = sslmode.or_none();
        let tls = TlsFiles {
            sslrootcert: sslrootcert.or_none()?,
            sslcert: sslcert.or_none()?,
            sslkey: sslkey.or_none()?,
            sslpassword: sslpassword.or(None)?,
            sslsni: sslsni.or_none()?,
        };
        Some(EndpointSpec {
            name: decl.name.clone(),
            host: host?,
            port: port.or(5432)?,
            database: database?,
            user: user?,
            password: password.or(None)?,
            sslmode: sslmode?,
            tls,
            passfile: passfile.or_none()?,
        })
    }

    /// `source = endpoint.NAME` / `destination = endpoint.NAME`: a reference,
    /// not evaluated.
    fn endpoint_ref(
        &mut self,
        attrs: &Attrs<'_>,
        name: &str,
        known: &BTreeSet<&str>,
    ) -> Field<(String, usize)> {
        let Some(attr) = attrs.map.get(name) else {
            return Field::Absent;
        };
        let (file, ctx) = (attrs.file, attrs.ctx);
        let at = eval::start(&attr.value, span_start(*attr, 0));
        let target = match &attr.value {
            Expression::Traversal(t) => match (&t.expr, t.operators.as_slice()) {
                (Expression::Variable(root), [op]) if root.as_str() == "endpoint" => {
                    match op.value() {
                        TraversalOperator::GetAttr(target) => Some(target.as_str().to_owned()),
                        _ => None,
                    }
                }
                _ => None,
            },
            _ => None,
        };
        let Some(target) = target else {
            let (message, hint) = match &attr.value {
                Expression::String(s) => (
                    format!(
                        "`{name}` in {ctx} must be a reference like endpoint.NAME, not a string"
                    ),
                    format!("write `{name} = endpoint.{}` without quotes", s.as_str()),
                ),
                _ => (
                    format!("`{name}` in {ctx} must be a reference like endpoint.NAME"),
                    format!("write `{name} = endpoint.NAME`"),
                ),
            };
            self.push(file, at, message, Some(hint));
            return Field::Bad;
        };
        if known.contains(target.as_str()) {
            return Field::Ok((target, at));
        }
        if self.incomplete {
            return Field::Bad;
        }
        let declared: Vec<&str> = known.iter().copied().collect();
        let hint = match (
            suggest::closest(&target, declared.iter().copied()),
            declared.len(),
        ) {
            (_, 0) => format!("no endpoints are declared; add `endpoint \"{target}\" {{ ... }}`"),
            (Some(near), _) => format!(
                "did you mean `{near}`? declared endpoints: {}",
                suggest::list(&declared, "and")
            ),
            (None, _) => format!("declared endpoints: {}", suggest::list(&declared, "and")),
        };
        self.push(
            file,
            at,
            format!("unknown endpoint `{target}` in `{name}` of {ctx}"),
            Some(hint),
        );
        Field::Bad
    }

    fn task(
        &mut self,
        ev: &Evaluator<'_>,
        decl: &Decl<'_>,
        known: &BTreeSet<&str>,
        endpoints: &BTreeMap<String, EndpointSpec>,
    ) -> Option<TaskSpec> {
        let file = decl.file;
        let ctx = format!("task {:?}", decl.name);
        let (map, blocks) = self.check_body(file, &decl.block.body, &ctx, &TASK);
        let a = Attrs {
            ev,
            file,
            block: decl.block,
            ctx: &ctx,
            map,
        };
        let source = self.endpoint_ref(&a, "source", known);
        let destination = self.endpoint_ref(&a, "destination", known);
        let sync_types = self.field(&a, "sync_types", false, sync_types);
        let conflicting = self.field(&a, "conflicting_tables", false, conflict);
        let name_case = self.field(&a, "name_case", false, name_case);
        let (mapping_blocks, blocks): (Vec<&Block>, Vec<&Block>) = blocks
            .into_iter()
            .partition(|b| b.ident.as_str() == "mapping");
        let mappings = self.mappings(ev, file, &mapping_blocks, &ctx);
        let publication = self.field(&a, "publication", false, publication_name);
        let (retry_blocks, blocks): (Vec<&Block>, Vec<&Block>) = blocks
            .into_iter()
            .partition(|b| b.ident.as_str() == "retry");
        let retry = self.retry(ev, file, &retry_blocks, &ctx);
        let (throttle_blocks, blocks): (Vec<&Block>, Vec<&Block>) = blocks
            .into_iter()
            .partition(|b| b.ident.as_str() == "throttle");
        let throttle = self.throttle(ev, file, &throttle_blocks, &ctx);
        let objects = self.objects(ev, file, decl.block, &blocks, &ctx);

        let source = self.require(&a, source, "source");
        let destination = self.require(&a, destination, "destination");
        if let (Some((src, _)), Some((dst, dst_at))) = (&source, &destination) {
            if src == dst {
                self.push(
                    file,
                    *dst_at,
                    format!("{ctx} uses endpoint `{src}` as both source and destination"),
                    Some("point `destination` at another endpoint".to_owned()),
                );
                return None;
            }
            if let (Some(a), Some(b)) = (endpoints.get(src), endpoints.get(dst))
                && a.host == b.host
                && a.port == b.port
                && a.database == b.database
            {
                self.push(
                    file,
                    *dst_at,
                    format!(
                        "source `{src}` and destination `{dst}` of {ctx} are the same \
                             database ({}:{}/{})",
                        a.host, a.port, a.database
                    ),
                    Some(format!(
                        "check `host`, `port` and `database` of endpoints `{src}` and `{dst}`"
                    )),
                );
                return None;
            }
        }
        let publication = publication.or_none()?;
        let sync_types = sync_types.or(SyncTypes {
            schema: true,
            full: true,
            incremental: true,
        })?;
        if publication.is_some() && !sync_types.incremental {
            let at = a
                .map
                .get("publication")
                .map_or(block_start(decl.block), |attr| span_start(*attr, 0));
            self.push(
                file,
                at,
                format!(
                    "`publication` in {ctx} needs \"incremental\" in `sync_types`: only the \
                     stream reads a publication"
                ),
                Some("add \"incremental\" to sync_types, or remove `publication`".to_owned()),
            );
            return None;
        }
        Some(TaskSpec {
            name: decl.name.clone(),
            source: source?.0,
            destination: destination?.0,
            sync_types,
            conflicting_tables: conflicting.or(ConflictMode::default())?,
            objects: objects?,
            retry: retry?,
            throttle: throttle?,
            mappings: mappings?,
            name_case: name_case.or(NameCase::default())?,
            publication,
        })
    }

    /// The task's `mapping { match, rename }` blocks, in file order.
    fn mappings(
        &mut self,
        ev: &Evaluator<'_>,
        file: usize,
        blocks: &[&Block],
        task_ctx: &str,
    ) -> Option<Vec<Mapping>> {
        let mut out = Vec::new();
        let mut ok = true;
        for block in blocks {
            let ctx = format!("mapping of {task_ctx}");
            if !block.labels.is_empty() {
                self.push(
                    file,
                    block_start(block),
                    format!("{ctx} takes no label"),
                    Some("write `mapping { match = \"s.tmp_*\", rename = \"scratch.*\" }`".into()),
                );
                ok = false;
                continue;
            }
            let (map, _) = self.check_body(file, &block.body, &ctx, &MAPPING);
            let a = Attrs {
                ev,
                file,
                block,
                ctx: &ctx,
                map,
            };
            let pattern = self.field(&a, "match", false, non_empty);
            let rename = self.field(&a, "rename", false, non_empty);
            let (Some(pattern), Some(rename)) = (
                self.require(&a, pattern, "match"),
                self.require(&a, rename, "rename"),
            ) else {
                ok = false;
                continue;
            };
            let stars = |s: &str| s.matches('*').count();
            let dots = |s: &str| s.matches('.').count();
            let problem = if dots(&pattern) > 1 || dots(&rename) > 1 {
                Some("names have at most one dot: SCHEMA or SCHEMA.TABLE".to_owned())
            } else if dots(&pattern) != dots(&rename) {
                Some(format!(
                    "`match` {pattern:?} and `rename` {rename:?} must both name tables \
                     (SCHEMA.TABLE) or both name schemas"
                ))
            } else if stars(&rename) > stars(&pattern) {
                Some(format!(
                    "`rename` {rename:?} has more `*` than `match` {pattern:?}"
                ))
            } else if rename.split('.').any(str::is_empty) {
                Some(format!("`rename` {rename:?} has an empty name part"))
            } else {
                None
            };
            if let Some(message) = problem {
                let at = a
                    .map
                    .get("rename")
                    .map_or(block_start(block), |attr| span_start(*attr, 0));
                self.push(
                    file,
                    at,
                    format!("{ctx}: {message}"),
                    Some(
                        "each `*` of `rename` takes the text matched by the `*` of `match` \
                         at the same position"
                            .into(),
                    ),
                );
                ok = false;
                continue;
            }
            out.push(Mapping { pattern, rename });
        }
        ok.then_some(out)
    }

    /// The task's optional `throttle { full_qps, full_rps, full_mbps,
    /// incremental_rps, incremental_mbps }` block: each a positive number.
    fn throttle(
        &mut self,
        ev: &Evaluator<'_>,
        file: usize,
        blocks: &[&Block],
        task_ctx: &str,
    ) -> Option<ThrottleSpec> {
        let Some((block, more)) = blocks.split_first() else {
            return Some(ThrottleSpec::default());
        };
        if let Some(second) = more.first() {
            self.push(
                file,
                block_start(second),
                format!("{task_ctx} has more than one `throttle` block"),
                Some("merge them into one".to_owned()),
            );
            return None;
        }
        let ctx = format!("throttle of {task_ctx}");
        let (map, _) = self.check_body(file, &block.body, &ctx, &THROTTLE);
        let a = Attrs {
            ev,
            file,
            block,
            ctx: &ctx,
            map,
        };
        let full_qps = self.field(&a, "full_qps", false, rate);
        let full_rps = self.field(&a, "full_rps", false, rate);
        let full_mbps = self.field(&a, "full_mbps", false, rate);
        let incremental_rps = self.field(&a, "incremental_rps", false, rate);
        let incremental_mbps = self.field(&a, "incremental_mbps", false, rate);
        Some(ThrottleSpec {
            full_qps: full_qps.or_none()?,
            full_rps: full_rps.or_none()?,
            full_mbps: full_mbps.or_none()?,
            incremental_rps: incremental_rps.or_none()?,
            incremental_mbps: incremental_mbps.or_none()?,
        })
    }

    /// The task's optional `retry { connection_minutes, other_minutes }`
    /// block, with the DTS ranges: 10..=1440 and 1..=1440 minutes, other
    /// below connection.
    fn retry(
        &mut self,
        ev: &Evaluator<'_>,
        file: usize,
        blocks: &[&Block],
        task_ctx: &str,
    ) -> Option<RetrySpec> {
        let mut spec = RetrySpec::default();
        let Some((block, more)) = blocks.split_first() else {
            return Some(spec);
        };
        if let Some(second) = more.first() {
            self.push(
                file,
                block_start(second),
                format!("{task_ctx} has more than one `retry` block"),
                Some("merge them into one".to_owned()),
            );
            return None;
        }
        let ctx = format!("retry of {task_ctx}");
        let (map, _) = self.check_body(file, &block.body, &ctx, &RETRY);
        let a = Attrs {
            ev,
            file,
            block,
            ctx: &ctx,
            map,
        };
        let connection = self.field(&a, "connection_minutes", false, |v, s, subj| {
            minutes(v, s, subj, 10)
        });
        let other = self.field(&a, "other_minutes", false, |v, s, subj| {
            minutes(v, s, subj, 1)
        });
        spec.connection_minutes = connection.or(spec.connection_minutes)?;
        spec.other_minutes = other.or(spec.other_minutes)?;
        if spec.other_minutes >= spec.connection_minutes {
            self.push(
                file,
                block_start(block),
                format!(
                    "`other_minutes` ({}) in {ctx} must be less than `connection_minutes` ({})",
                    spec.other_minutes, spec.connection_minutes
                ),
                Some("lower other_minutes or raise connection_minutes".to_owned()),
            );
            return None;
        }
        Some(spec)
    }

    /// The `schema` and `table` blocks of a task, in file order.
    fn objects(
        &mut self,
        ev: &Evaluator<'_>,
        file: usize,
        task: &Block,
        blocks: &[&Block],
        task_ctx: &str,
    ) -> Option<Vec<ObjectSelection>> {
        let mut objects = Vec::new();
        let mut ok = true;
        let mut seen: BTreeMap<(&str, String), usize> = BTreeMap::new();
        for block in blocks {
            let kind = block.ident.as_str();
            let example = if kind == "table" {
                "table \"SCHEMA.NAME\" {}"
            } else {
                "schema \"NAME\" {}"
            };
            let Some((label, at)) = self.one_label(file, block, kind, example) else {
                ok = false;
                continue;
            };
            let ctx = format!("{kind} {label:?} of {task_ctx}");
            if let Some(&first) = seen.get(&(kind, label.clone())) {
                let first = self.sources[file].place(first);
                self.push(
                    file,
                    at,
                    format!("{kind} {label:?} is already selected in {task_ctx} at {first}"),
                    Some("remove one of them".to_owned()),
                );
                ok = false;
                continue;
            }
            seen.insert((kind, label.clone()), at);
            let selection = if kind == "schema" {
                let (map, _) = self.check_body(file, &block.body, &ctx, &SCHEMA);
                let a = Attrs {
                    ev,
                    file,
                    block,
                    ctx: &ctx,
                    map,
                };
                let exclude = self.field(&a, "exclude_tables", false, strings);
                let rename = self.field(&a, "rename", false, schema_name);
                let operations = self.field(&a, "operations", false, operations);
                if label.is_empty() {
                    self.push(
                        file,
                        at,
                        format!("schema name in {task_ctx} must not be empty"),
                        Some("write `schema \"NAME\" {}`".to_owned()),
                    );
                    None
                } else {
                    match (
                        exclude.or(Vec::new()),
                        rename.or_none(),
                        operations.or_none(),
                    ) {
                        (Some(exclude_tables), Some(rename), Some(operations)) => {
                            Some(ObjectSelection::Schema {
                                name: label.clone(),
                                exclude_tables,
                                rename,
                                operations,
                            })
                        }
                        _ => None,
                    }
                }
            } else {
                let (map, _) = self.check_body(file, &block.body, &ctx, &TABLE);
                let a = Attrs {
                    ev,
                    file,
                    block,
                    ctx: &ctx,
                    map,
                };
                let options = self.table_options(&a);
                match label.split_once('.') {
                    Some((schema, name)) if !schema.is_empty() && !name.is_empty() => {
                        options.map(|options| ObjectSelection::Table {
                            schema: schema.to_owned(),
                            name: name.to_owned(),
                            options,
                        })
                    }
                    _ => {
                        self.push(
                            file,
                            at,
                            format!("table label {label:?} in {task_ctx} must be SCHEMA.NAME"),
                            Some(format!(
                                "write `table \"public.{}\" {{}}`",
                                label.trim_matches('.')
                            )),
                        );
                        None
                    }
                }
            };
            match selection {
                Some(s) => objects.push(s),
                None => ok = false,
            }
        }
        if blocks.is_empty() {
            self.push(
                file,
                block_start(task),
                format!("{task_ctx} selects no tables"),
                Some("add a `schema \"NAME\" {}` or `table \"SCHEMA.NAME\" {}` block".to_owned()),
            );
            return None;
        }
        ok.then_some(objects)
    }

    /// `rename`, `columns`, `column_map`, `where` and `operations` of a
    /// `table` block, checked against each other.
    fn table_options(&mut self, a: &Attrs<'_>) -> Option<TableOptions> {
        let rename = self.field(a, "rename", false, table_name);
        let columns = self.field(a, "columns", false, column_list);
        let column_map = self.field(a, "column_map", false, column_map);
        let filter = self.field(a, "where", false, non_empty);
        let operations = self.field(a, "operations", false, operations);
        let options = TableOptions {
            rename: rename.or_none()?,
            columns: columns.or_none()?,
            column_map: column_map.or(BTreeMap::new())?,
            filter: filter.or_none()?,
            operations: operations.or_none()?,
        };
        let at = |name: &str| {
            a.map
                .get(name)
                .map_or(block_start(a.block), |attr| span_start(*attr, 0))
        };
        if let Some(cols) = &options.columns {
            let unselected: Vec<&String> = options
                .column_map
                .keys()
                .filter(|k| !cols.contains(k))
                .collect();
            if let Some(first) = unselected.first() {
                self.push(
                    a.file,
                    at("column_map"),
                    format!(
                        "`column_map` in {} renames column {first:?}, which `columns` does not \
                         select",
                        a.ctx
                    ),
                    Some(format!(
                        "add {first:?} to `columns` or remove it from `column_map`"
                    )),
                );
                return None;
            }
        }
        let mut targets: BTreeMap<&str, &str> = BTreeMap::new();
        for (from, to) in &options.column_map {
            if let Some(other) = targets.insert(to, from) {
                self.push(
                    a.file,
                    at("column_map"),
                    format!(
                        "`column_map` in {} maps both {other:?} and {from:?} to {to:?}",
                        a.ctx
                    ),
                    Some("give each destination column its own name".into()),
                );
                return None;
            }
        }
        Some(options)
    }

    /// Two tasks whose names map to the same replication slot.
    fn slot_collisions(&mut self, tasks: &[Decl<'_>]) {
        let mut slots: BTreeMap<String, (&str, usize, usize)> = BTreeMap::new();
        for decl in tasks {
            let at = decl
                .block
                .labels
                .first()
                .map_or(block_start(decl.block), |l| {
                    span_start(l, block_start(decl.block))
                });
            let slot = slot_name_for_task(&decl.name);
            if let Some(&(other, other_file, other_at)) = slots.get(&slot) {
                let first = self.sources[other_file].place(other_at);
                self.push(
                    decl.file,
                    at,
                    format!(
                        "task {:?} would share replication slot `{slot}` with task {other:?} \
                         at {first}",
                        decl.name
                    ),
                    Some(
                        "rename one of them: slot names are lower-cased, characters other than \
                         letters and digits become `_`, and they are cut to 63 bytes"
                            .to_owned(),
                    ),
                );
            } else {
                slots.insert(slot, (&decl.name, decl.file, at));
            }
        }
    }
}

/// "endpoint" from `endpoint "src"`, "schema" from `schema "x" of task "t"`.
fn kind_of(ctx: &str) -> &str {
    ctx.split(' ').next().unwrap_or(ctx)
}

fn not_supported(name: &str, ctx: &str) -> (String, String) {
    (
        format!("`{name}` in {ctx} is not supported yet"),
        "remove it; docs/config.md lists what this version accepts".to_owned(),
    )
}

fn string(value: &Value, sensitive: bool, subject: &str) -> Result<String, Complaint> {
    eval::as_string(value).ok_or_else(|| {
        (
            format!(
                "{subject} must be a string, got {}",
                eval::describe(value, sensitive)
            ),
            None,
        )
    })
}

fn non_empty(value: &Value, sensitive: bool, subject: &str) -> Result<String, Complaint> {
    let s = string(value, sensitive, subject)?;
    if s.is_empty() {
        return Err((format!("{subject} must not be empty"), None));
    }
    Ok(s)
}

fn password(value: &Value, _sensitive: bool, subject: &str) -> Result<Option<Secret>, Complaint> {
    // Always sensitive, whatever the expression refers to.
    match value {
        Value::String(s) => Ok(Some(Secret::new(s.clone()))),
        _ => Err((
            format!(
                "{subject} must be a string, got {}",
                eval::describe(value, true)
            ),
            Some("write `password = env(\"NAME\")` or `password = var.NAME`".to_owned()),
        )),
    }
}

/// A whole number of minutes from `min` to 1440 (one day).
fn minutes(value: &Value, sensitive: bool, subject: &str, min: u32) -> Result<u32, Complaint> {
    eval::as_u64(value)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (min..=1440).contains(n))
        .ok_or_else(|| {
            (
                format!(
                    "{subject} must be a whole number of minutes from {min} to 1440, got {}",
                    eval::describe(value, sensitive)
                ),
                Some(format!("write a value from {min} to 1440")),
            )
        })
}

fn rate(value: &Value, sensitive: bool, subject: &str) -> Result<f64, Complaint> {
    let n = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    };
    n.filter(|n| n.is_finite() && *n > 0.0 && *n <= 1e12)
        .ok_or_else(|| {
            (
                format!(
                    "{subject} must be a positive number, got {}",
                    eval::describe(value, sensitive)
                ),
                Some(
                    "write e.g. `incremental_rps = 5000`, or leave it out for no limit".to_owned(),
                ),
            )
        })
}

/// `publication`: the name of an existing publication on the source, as
/// `pg_publication.pubname` spells it (case and all): 1 to 63 bytes, no NUL.
fn publication_name(value: &Value, sensitive: bool, subject: &str) -> Result<String, Complaint> {
    let name = non_empty(value, sensitive, subject)?;
    if name.len() > 63 || name.contains('\0') {
        return Err((
            format!(
                "{subject} must be a PostgreSQL name of at most 63 bytes without NUL characters"
            ),
            Some(
                "write the name exactly as `select pubname from pg_publication` shows it"
                    .to_owned(),
            ),
        ));
    }
    Ok(name)
}

fn port(value: &Value, sensitive: bool, subject: &str) -> Result<u16, Complaint> {
    eval::as_u64(value)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n >= 1)
        .ok_or_else(|| {
            (
                format!(
                    "{subject} must be a whole number from 1 to 65535, got {}",
                    eval::describe(value, sensitive)
                ),
                Some("write `port = 5432`".to_owned()),
            )
        })
}

fn bool_value(value: &Value, sensitive: bool, subject: &str) -> Result<bool, Complaint> {
    eval::as_bool(value).ok_or_else(|| {
        (
            format!(
                "{subject} must be true or false, got {}",
                eval::describe(value, sensitive)
            ),
            None,
        )
    })
}

fn strings(value: &Value, sensitive: bool, subject: &str) -> Result<Vec<String>, Complaint> {
    eval::as_string_list(value).ok_or_else(|| {
        (
            format!(
                "{subject} must be a list of strings, got {}",
                eval::describe(value, sensitive)
            ),
            Some("write `[\"a\", \"b\"]`".to_owned()),
        )
    })
}

/// One of `allowed`, with a "did you mean" hint.
fn one_of<'v>(
    value: &Value,
    sensitive: bool,
    subject: &str,
    allowed: &[&'v str],
) -> Result<&'v str, Complaint> {
    let s = eval::as_string(value).unwrap_or_default();
    if let Some(found) = allowed.iter().find(|a| **a == s) {
        return Ok(found);
    }
    let hint =
        suggest::closest(&s, allowed.iter().copied()).map(|n| format!("did you mean {n:?}?"));
    Err((
        format!(
            "{subject} must be {}, got {}",
            values(allowed),
            eval::describe(value, sensitive)
        ),
        hint,
    ))
}

fn sslmode(value: &Value, sensitive: bool, subject: &str) -> Result<SslMode, Complaint> {
    Ok(match one_of(value, sensitive, subject, &SSL_MODES)? {
        "disable" => SslMode::Disable,
        "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        _ => SslMode::VerifyFull,
    })
}

/// A file name; a relative one is taken relative to `base` (the directory
/// of the configuration file that names it).
fn file_path(
    value: &Value,
    sensitive: bool,
    subject: &str,
    base: &Path,
) -> Result<PathBuf, Complaint> {
    let s = non_empty(value, sensitive, subject)?;
    if s.contains('\0') {
        return Err((format!("{subject} must not contain a NUL character"), None));
    }
    Ok(base.join(s))
}

/// A key password: a string, always sensitive.
fn sslpassword(
    value: &Value,
    _sensitive: bool,
    subject: &str,
) -> Result<Option<Secret>, Complaint> {
    match value {
        Value::String(s) => Ok(Some(Secret::new(s.clone()))),
        _ => Err((
            format!(
                "{subject} must be a string, got {}",
                eval::describe(value, true)
            ),
            Some("write `sslpassword = env(\"NAME\")` or `sslpassword = var.NAME`".to_owned()),
        )),
    }
}

/// libpq's `sslsni`: `true`/`false`, or `1`/`0` as libpq writes it.
fn sslsni(value: &Value, sensitive: bool, subject: &str) -> Result<bool, Complaint> {
    if let Some(b) = eval::as_bool(value) {
        return Ok(b);
    }
    match eval::as_string(value).as_deref() {
        Some("1") => Ok(true),
        Some("0") => Ok(false),
        _ => Err((
            format!(
                "{subject} must be true or false, got {}",
                eval::describe(value, sensitive)
            ),
            Some("write `sslsni = false` to send no server name".to_owned()),
        )),
    }
}

fn name_case(value: &Value, sensitive: bool, subject: &str) -> Result<NameCase, Complaint> {
    let v = one_of(value, sensitive, subject, &NameCase::NAMES)?;
    Ok(match v {
        "source" => NameCase::Source,
        "destination" => NameCase::Destination,
        "lower" => NameCase::Lower,
        "upper" => NameCase::Upper,
        _ => NameCase::Default,
    })
}

/// A schema name (`rename` of a schema block): not empty, no dot.
fn schema_name(value: &Value, sensitive: bool, subject: &str) -> Result<String, Complaint> {
    let s = non_empty(value, sensitive, subject)?;
    if s.contains('.') {
        return Err((
            format!("{subject} must be a schema name without a dot, got {s:?}"),
            Some("to move single tables, use `rename = \"SCHEMA.NAME\"` in a table block".into()),
        ));
    }
    Ok(s)
}

/// `SCHEMA.NAME` (`rename` of a table block).
fn table_name(value: &Value, sensitive: bool, subject: &str) -> Result<QualifiedName, Complaint> {
    let s = non_empty(value, sensitive, subject)?;
    match s.split_once('.') {
        Some((schema, name)) if !schema.is_empty() && !name.is_empty() && !name.contains('.') => {
            Ok(QualifiedName::new(schema, name))
        }
        _ => Err((
            format!("{subject} must be SCHEMA.NAME, got {s:?}"),
            Some(format!(
                "write `rename = \"public.{}\"`",
                s.trim_matches('.')
            )),
        )),
    }
}

/// `columns`: a non-empty list of distinct, non-empty names.
fn column_list(value: &Value, sensitive: bool, subject: &str) -> Result<Vec<String>, Complaint> {
    let items = strings(value, sensitive, subject)?;
    if items.is_empty() {
        return Err((
            format!("{subject} must not be empty"),
            Some("list the columns to synchronize, or leave `columns` out for all".into()),
        ));
    }
    let mut seen = BTreeSet::new();
    for c in &items {
        if c.is_empty() {
            return Err((format!("{subject} lists an empty column name"), None));
        }
        if !seen.insert(c.as_str()) {
            return Err((
                format!("{subject} lists {c:?} twice"),
                Some("remove the duplicate".into()),
            ));
        }
    }
    Ok(items)
}

/// `column_map = { source = "destination" }`.
fn column_map(
    value: &Value,
    sensitive: bool,
    subject: &str,
) -> Result<BTreeMap<String, String>, Complaint> {
    let Value::Object(map) = value else {
        return Err((
            format!(
                "{subject} must be an object, got {}",
                eval::describe(value, sensitive)
            ),
            Some("write `column_map = { source_name = \"destination_name\" }`".into()),
        ));
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let to = eval::as_string(v)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                (
                    format!(
                        "{subject} maps {k:?} to {}; it must be a non-empty column name",
                        eval::describe(v, sensitive)
                    ),
                    None,
                )
            })?;
        out.insert(k.clone(), to);
    }
    Ok(out)
}

/// `operations`: a non-empty subset of insert, update, delete, truncate, ddl.
fn operations(value: &Value, sensitive: bool, subject: &str) -> Result<Operations, Complaint> {
    let items = strings(value, sensitive, subject)?;
    if items.is_empty() {
        return Err((
            format!("{subject} must not be empty"),
            Some("to stop synchronizing a table, remove its block or exclude it".into()),
        ));
    }
    for item in &items {
        if !Operations::NAMES.contains(&item.as_str()) {
            let hint = match suggest::closest(item, Operations::NAMES) {
                Some(near) => format!("did you mean {near:?}?"),
                None => format!("operations are {}", values(&Operations::NAMES)),
            };
            return Err((
                format!("{subject} lists unknown operation {item:?}"),
                Some(hint),
            ));
        }
    }
    Ok(Operations::from_names(items.iter().map(String::as_str)))
}

fn conflict(value: &Value, sensitive: bool, subject: &str) -> Result<ConflictMode, Complaint> {
    Ok(match one_of(value, sensitive, subject, &CONFLICT_MODES)? {
        "error" => ConflictMode::Error,
        _ => ConflictMode::Ignore,
    })
}

fn sync_types(value: &Value, sensitive: bool, subject: &str) -> Result<SyncTypes, Complaint> {
    let items = strings(value, sensitive, subject)?;
    if items.is_empty() {
        return Err((
            format!("{subject} must not be empty"),
            Some(format!(
                "list some of {}, or leave `sync_types` out for all three",
                values(&SYNC_TYPES)
            )),
        ));
    }
    let mut types = SyncTypes {
        schema: false,
        full: false,
        incremental: false,
    };
    for item in &items {
        let slot = match item.as_str() {
            "schema" => &mut types.schema,
            "full" => &mut types.full,
            "incremental" => &mut types.incremental,
            other => {
                let hint = match suggest::closest(other, SYNC_TYPES) {
                    Some(near) => format!("did you mean {near:?}?"),
                    None => format!("sync types are {}", values(&SYNC_TYPES)),
                };
                return Err((
                    format!("{subject} lists unknown sync type {other:?}"),
                    Some(hint),
                ));
            }
        };
        if *slot {
            return Err((
                format!("{subject} lists {item:?} twice"),
                Some("remove the duplicate".to_owned()),
            ));
        }
        *slot = true;
    }
    Ok(types)
}

/// A `--var-file`: `NAME = literal` lines.
pub(crate) fn decode_var_file(
    path: &std::path::Path,
    text: &str,
) -> Result<Vec<(String, String)>, ConfigErrors> {
    let sources = [Source::new(path, text)];
    let mut diags = Diagnostics::default();
    let body = match hcl_edit::parser::parse_body(text) {
        Ok(body) => body,
        Err(err) => {
            diags.push_at(0, syntax_error(&sources[0], &err));
            return Err(diags.finish());
        }
    };
    let no_vars = BTreeMap::new();
    let no_env = BTreeMap::new();
    let literal = Evaluator::literal(&no_vars, &no_env, "variable files hold literal values only");
    let mut pairs = Vec::new();
    for structure in body.iter() {
        let attr = match structure {
            Structure::Attribute(attr) => attr,
            Structure::Block(block) => {
                diags.push(
                    &sources,
                    0,
                    block_start(block),
                    format!(
                        "unexpected block `{}` in a variable file",
                        block.ident.as_str()
                    ),
                    Some("a variable file holds `NAME = value` lines only".to_owned()),
                );
                continue;
            }
        };
        let name = attr.key.as_str();
        let subject = format!("`{name}`");
        let at = eval::start(&attr.value, span_start(attr, 0));
        match literal.eval(&attr.value, &subject, true, at) {
            Ok(e) => match eval::as_string(&e.value) {
                Some(value) => pairs.push((name.to_owned(), value)),
                None => diags.push(
                    &sources,
                    0,
                    at,
                    format!(
                        "{subject} must be a string, number or bool, got {}",
                        eval::describe(&e.value, true)
                    ),
                    None,
                ),
            },
            Err(problems) => {
                for p in problems {
                    diags.push(&sources, 0, p.offset, p.message, p.hint);
                }
            }
        }
    }
    if diags.is_empty() {
        Ok(pairs)
    } else {
        Err(diags.finish())
    }
}
