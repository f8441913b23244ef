//! Expression evaluation: `var.NAME`, `env("NAME")`, and conversion of the
//! resulting values to the types attributes expect.
//!
//! Every reference is checked on the `hcl_edit` tree first, where spans are
//! known, so unknown names, unset variables and unset environment variables
//! are reported at their own line and column. Only then is the expression
//! converted to `hcl::Expression` and evaluated; evaluation errors (which
//! carry no position) are reported at the start of the attribute's value.

use std::cell::RefCell;
use std::collections::BTreeMap;

use hcl::Value;
use hcl::eval::{Context, ErrorKind, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl_edit::Span;
use hcl_edit::expr::{Expression, ForExpr, FuncCall, Traversal, TraversalOperator};
use hcl_edit::template::ForTemplateExpr;
use hcl_edit::visit::{self, Visit};

use super::suggest;

/// A declared `variable` block, resolved.
pub(crate) struct Variable {
    /// `Inputs.vars`, else `default`; `None` when neither is there.
    pub value: Option<Value>,
    pub sensitive: bool,
}

/// A problem at a byte offset of the file being evaluated.
pub(crate) struct Problem {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

/// An evaluated attribute value and whether it derives from a sensitive
/// value (so messages must not show it).
pub(crate) struct Evaluated {
    pub value: Value,
    pub sensitive: bool,
}

thread_local! {
    /// The environment `env()` reads during one `parse_files` call. hcl-rs
    /// functions are plain `fn` pointers, so the map cannot be captured.
    static ENV: RefCell<Option<BTreeMap<String, String>>> = const { RefCell::new(None) };
}

/// Installs `env` for `env()` until dropped (then restores the previous one,
/// so nested or repeated parses on one thread stay independent).
pub(crate) struct EnvScope {
    previous: Option<BTreeMap<String, String>>,
}

impl EnvScope {
    pub fn enter(env: &BTreeMap<String, String>) -> EnvScope {
        let previous = ENV.with(|cell| cell.replace(Some(env.clone())));
        EnvScope { previous }
    }
}

impl Drop for EnvScope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        ENV.with(|cell| *cell.borrow_mut() = previous);
    }
}

/// `env("NAME")`. Its messages name the variable, never a value.
fn env_func(args: FuncArgs) -> Result<Value, String> {
    let Some(name) = args[0].as_str().map(str::to_owned) else {
        return Err("env() takes the variable name as a string".to_owned());
    };
    ENV.with(|cell| {
        cell.borrow()
            .as_ref()
            .and_then(|env| env.get(&name).cloned())
    })
    .map(Value::String)
    .ok_or_else(|| format!("environment variable `{name}` is not set"))
}

/// Evaluates attribute expressions against the declared variables and the
/// environment given in `Inputs`.
pub(crate) struct Evaluator<'a> {
    ctx: Context<'static>,
    vars: &'a BTreeMap<String, Variable>,
    env: &'a BTreeMap<String, String>,
    /// Some file failed to parse: names it might declare are not reported as
    /// undeclared.
    incomplete: bool,
    /// `Some(hint)` when only literal values are allowed (inside `variable`
    /// blocks and variable files).
    literal_only: Option<&'static str>,
}

impl<'a> Evaluator<'a> {
    /// An evaluator that admits literal values only (`variable` blocks and
    /// variable files); `hint` says so in errors.
    pub fn literal(
        no_vars: &'a BTreeMap<String, Variable>,
        no_env: &'a BTreeMap<String, String>,
        hint: &'static str,
    ) -> Evaluator<'a> {
        Evaluator {
            literal_only: Some(hint),
            ..Evaluator::new(no_vars, no_env, false)
        }
    }

    /// An evaluator with `var.*` from `vars` and `env()` from `env` (the
    /// map the [`EnvScope`] in force installed; `env` here is used only to
    /// report unset names with their positions).
    pub fn new(
        vars: &'a BTreeMap<String, Variable>,
        env: &'a BTreeMap<String, String>,
        incomplete: bool,
    ) -> Evaluator<'a> {
        let mut ctx = Context::new();
        let values: hcl::Map<String, Value> = vars
            .iter()
            .filter_map(|(name, var)| var.value.clone().map(|v| (name.clone(), v)))
            .collect();
        ctx.declare_var("var", Value::Object(values));
        ctx.declare_func(
            "env",
            FuncDef::builder().param(ParamType::Any).build(env_func),
        );
        Evaluator {
            ctx,
            vars,
            env,
            incomplete,
            literal_only: None,
        }
    }

    /// Evaluates `expr`, the value of `subject` (e.g. "`port` in endpoint
    /// \"src\""). `sensitive` marks attributes whose value is always secret.
    pub fn eval(
        &self,
        expr: &Expression,
        subject: &str,
        sensitive: bool,
        fallback_offset: usize,
    ) -> Result<Evaluated, Vec<Problem>> {
        let mut check = RefCheck {
            vars: self.vars,
            env: self.env,
            incomplete: self.incomplete,
            literal_only: self.literal_only.map(|hint| (subject, hint)),
            scopes: Vec::new(),
            fallback: start(expr, fallback_offset),
            problems: Vec::new(),
            sensitive,
        };
        check.visit_expr(expr);
        if !check.problems.is_empty() {
            return Err(check.problems);
        }
        let sensitive = check.sensitive;
        let converted = hcl::Expression::from(expr.clone());
        match converted.evaluate(&self.ctx) {
            Ok(value) => Ok(Evaluated { value, sensitive }),
            Err(err) => {
                let (message, hint) = eval_message(err.kind(), subject, sensitive);
                Err(vec![Problem {
                    offset: start(expr, fallback_offset),
                    message,
                    hint,
                }])
            }
        }
    }
}

/// The byte offset where `expr` starts.
pub(crate) fn start(expr: &Expression, fallback: usize) -> usize {
    expr.span().map_or(fallback, |s| s.start)
}

fn eval_message(kind: &ErrorKind, subject: &str, sensitive: bool) -> (String, Option<String>) {
    let detail = match kind {
        // Our own message: it names the variable, never its value.
        ErrorKind::FuncCall(name, msg) if name.to_string() == "env" => {
            let hint = msg
                .starts_with("environment variable")
                .then(|| "set it in the environment that runs pgsync".to_owned());
            return (format!("cannot evaluate {subject}: {msg}"), hint);
        }
        ErrorKind::UndefinedVar(name) => format!("unknown name `{name}`"),
        ErrorKind::UndefinedFunc(name) => format!("unknown function `{name}`"),
        ErrorKind::Unexpected(_, expected) if sensitive => format!("expected {expected}"),
        _ if sensitive => "the expression is invalid (details hidden: it involves a \
                           sensitive value)"
            .to_owned(),
        other => other.to_string(),
    };
    (format!("cannot evaluate {subject}: {detail}"), None)
}

/// Checks names, variables and function calls in an expression, with spans.
struct RefCheck<'a> {
    vars: &'a BTreeMap<String, Variable>,
    env: &'a BTreeMap<String, String>,
    incomplete: bool,
    /// `Some((subject, hint))` when only literal values are allowed.
    literal_only: Option<(&'a str, &'static str)>,
    /// Names bound by enclosing `for` expressions.
    scopes: Vec<String>,
    fallback: usize,
    problems: Vec<Problem>,
    sensitive: bool,
}

impl RefCheck<'_> {
    fn offset(&self, span: Option<std::ops::Range<usize>>) -> usize {
        span.map_or(self.fallback, |s| s.start)
    }

    fn problem(&mut self, offset: usize, message: String, hint: Option<String>) {
        self.problems.push(Problem {
            offset,
            message,
            hint,
        });
    }

    /// In literal-only mode, reports a reference; returns whether it did.
    fn not_literal(&mut self, offset: usize) -> bool {
        let Some((subject, hint)) = self.literal_only else {
            return false;
        };
        self.problem(
            offset,
            format!("{subject} must be a literal value"),
            Some(hint.to_owned()),
        );
        true
    }

    fn bound(&self, name: &str) -> bool {
        self.scopes.iter().any(|s| s == name)
    }

    /// A bare name that is not part of `var.NAME`.
    fn name(&mut self, name: &str, offset: usize) {
        if self.bound(name) || self.not_literal(offset) {
            return;
        }
        let (message, hint) = match name {
            "var" => (
                "`var` must be followed by a variable name".to_owned(),
                "write `var.NAME`".to_owned(),
            ),
            "endpoint" => (
                "`endpoint.NAME` can only be used in `source` and `destination`".to_owned(),
                "write the value itself, or use var.NAME or env(\"NAME\")".to_owned(),
            ),
            _ => (
                format!("unknown name `{name}`"),
                format!(
                    "quote it to make it a string (\"{name}\"), or use var.NAME or env(\"NAME\")"
                ),
            ),
        };
        self.problem(offset, message, Some(hint));
    }

    fn variable(&mut self, name: &str, offset: usize) {
        match self.vars.get(name) {
            Some(var) if var.value.is_some() => self.sensitive |= var.sensitive,
            Some(_) => self.problem(
                offset,
                format!("variable `{name}` has no value"),
                Some(format!("pass --var {name}=VALUE or set PGSYNC_VAR_{name}")),
            ),
            None if self.incomplete => {}
            None => {
                let hint = match suggest::closest(name, self.vars.keys().map(String::as_str)) {
                    Some(near) => format!("did you mean `var.{near}`?"),
                    None => format!("declare it with `variable \"{name}\" {{}}`"),
                };
                self.problem(offset, format!("undeclared variable `{name}`"), Some(hint));
            }
        }
    }

    fn traversal(&mut self, t: &Traversal) {
        let root = match &t.expr {
            Expression::Variable(root) if root.as_str() == "var" && !self.bound("var") => root,
            _ => return visit::visit_traversal(self, t),
        };
        let offset = self.offset(root.span());
        if self.not_literal(offset) {
            return;
        }
        match t.operators.first().map(|op| op.value()) {
            Some(TraversalOperator::GetAttr(name)) => self.variable(name.as_str(), offset),
            _ => self.name("var", offset),
        }
        for op in t.operators.iter().skip(1) {
            self.visit_traversal_operator(op);
        }
    }

    fn func_call(&mut self, call: &FuncCall) {
        let offset = self.offset(call.span());
        let name = call.name.name.as_str();
        if self.not_literal(offset) {
            return;
        }
        if call.name.is_namespaced() || name != "env" {
            let mut full: Vec<&str> = call.name.namespace.iter().map(|n| n.as_str()).collect();
            full.push(name);
            self.problem(
                offset,
                format!("unknown function `{}`", full.join("::")),
                Some("the only function is env(\"NAME\")".to_owned()),
            );
        } else if call.args.len() != 1 {
            self.problem(
                offset,
                "env() takes exactly one argument, the variable name".to_owned(),
                Some("write env(\"NAME\")".to_owned()),
            );
        } else if let Some(Expression::String(var)) = call.args.get(0)
            && !self.env.contains_key(var.as_str())
        {
            self.problem(
                offset,
                format!("environment variable `{}` is not set", var.as_str()),
                Some(format!(
                    "set {} in the environment that runs pgsync",
                    var.as_str()
                )),
            );
        }
        visit::visit_func_args(self, &call.args);
    }

    fn with_scope(&mut self, names: Vec<String>, f: impl FnOnce(&mut Self)) {
        let depth = self.scopes.len();
        self.scopes.extend(names);
        f(self);
        self.scopes.truncate(depth);
    }

    fn for_expr(&mut self, e: &ForExpr) {
        self.visit_expr(&e.intro.collection_expr);
        let mut names = vec![e.intro.value_var.as_str().to_owned()];
        names.extend(e.intro.key_var.as_ref().map(|k| k.as_str().to_owned()));
        self.with_scope(names, |this| {
            if let Some(key) = &e.key_expr {
                this.visit_expr(key);
            }
            this.visit_expr(&e.value_expr);
            if let Some(cond) = &e.cond {
                this.visit_expr(&cond.expr);
            }
        });
    }
}

impl Visit for RefCheck<'_> {
    fn visit_expr(&mut self, expr: &Expression) {
        match expr {
            Expression::Variable(v) => {
                let offset = self.offset(v.span());
                self.name(v.as_str(), offset);
            }
            Expression::Traversal(t) => self.traversal(t),
            Expression::FuncCall(call) => self.func_call(call),
            Expression::ForExpr(e) => self.for_expr(e),
            _ => visit::visit_expr(self, expr),
        }
    }

    fn visit_for_template_expr(&mut self, e: &ForTemplateExpr) {
        self.visit_expr(&e.collection_expr);
        let mut names = vec![e.value_var.as_str().to_owned()];
        names.extend(e.key_var.as_ref().map(|k| k.as_str().to_owned()));
        self.with_scope(names, |this| this.visit_template(&e.template));
    }
}

/// Why a value does not fit: the message after "`attr` in block must be …".
pub(crate) fn describe(value: &Value, sensitive: bool) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(_) if sensitive => "a bool".to_owned(),
        Value::Number(_) if sensitive => "a number".to_owned(),
        Value::String(_) if sensitive => "a string".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// A string, or a number or bool converted to one (as Terraform converts
/// primitive values).
pub(crate) fn as_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A whole number, or a string holding one.
pub(crate) fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) if !n.is_f64() => n.as_u64(),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A bool, or the string `"true"` or `"false"`.
pub(crate) fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// A list whose elements are all strings (or numbers or bools).
pub(crate) fn as_string_list(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Array(items) => items.iter().map(as_string).collect(),
        _ => None,
    }
}
