//! The configuration front end: every `*.hcl` file of a directory →
//! validated [`DesiredState`].
//!
//! Pure except for [`load_dir`] and [`read_var_file`], which read files.
//! Values from outside the files come in through [`Inputs`], built by the
//! CLI; parsing never reads the process environment. Every problem is
//! reported at once, each with `FILE:LINE:COL` and, where there is a fix, a
//! hint. The accepted language is documented in `docs/config.md`.
//!
//! Files are parsed with `hcl_edit` (which keeps byte spans), the structure
//! is walked here, and each attribute's expression is converted to
//! `hcl::Expression` and evaluated with `var` and `env()` in scope.

mod decode;
mod diag;
mod eval;
mod suggest;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use diag::{ConfigError, ConfigErrors};

use crate::model::DesiredState;

/// The prefix of environment variables that set `var.NAME`.
pub const VAR_ENV_PREFIX: &str = "PGSYNC_VAR_";

/// Values from outside the files: `--var k=v`, `--var-file`,
/// `PGSYNC_VAR_<name>`, and the environment that `env("NAME")` reads.
///
/// `Debug` prints names only, never values: both maps may hold secrets.
#[derive(Default, Clone)]
pub struct Inputs {
    /// Values for `var.NAME`; they take precedence over `default`.
    pub vars: BTreeMap<String, String>,
    /// What `env("NAME")` returns.
    pub env: BTreeMap<String, String>,
}

impl Inputs {
    /// Builds inputs from the process environment and the command line.
    ///
    /// `env` is all of `std::env::vars()` (non-UTF-8 entries are skipped).
    /// `vars` takes every `PGSYNC_VAR_<name>`, then `cli_vars` in order, so
    /// a command-line value beats the environment and a later pair beats an
    /// earlier one. Pass `--var-file` contents (see [`read_var_file`]) and
    /// `--var` pairs in command-line order.
    pub fn from_process(cli_vars: &[(String, String)]) -> Inputs {
        Inputs::from_env_and_cli(std::env::vars().collect(), cli_vars)
    }

    /// As [`Inputs::from_process`], with the environment given explicitly.
    pub fn from_env_and_cli(
        env: BTreeMap<String, String>,
        cli_vars: &[(String, String)],
    ) -> Inputs {
        let mut vars: BTreeMap<String, String> = env
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix(VAR_ENV_PREFIX)?;
                (!name.is_empty()).then(|| (name.to_owned(), v.clone()))
            })
            .collect();
        for (k, v) in cli_vars {
            vars.insert(k.clone(), v.clone());
        }
        Inputs { vars, env }
    }
}

impl fmt::Debug for Inputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inputs")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("env", &format_args!("({} variables)", self.env.len()))
            .finish()
    }
}

/// Reads every `*.hcl` file in `dir` (sorted by file name; names starting
/// with `.` are skipped) and merges them as Terraform does: one namespace
/// across files, where a block label declared twice is an error.
///
/// Errors name files as `dir.join(name)`, or as the bare name when `dir` is
/// `.`. A directory without `*.hcl` files is an error.
pub fn load_dir(dir: &Path, inputs: &Inputs) -> Result<DesiredState, ConfigErrors> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ConfigErrors::from(ConfigError::whole_file(
            dir,
            format!("cannot read directory: {e}"),
        ))
    })?;
    let mut names = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                errors.push(ConfigError::whole_file(
                    dir,
                    format!("cannot read directory: {e}"),
                ));
                continue;
            }
        };
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        if !name_str.ends_with(".hcl") || name_str.starts_with('.') {
            continue;
        }
        // Follows symlinks, as Terraform does.
        if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            names.push(name);
        }
    }
    names.sort();
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let path = if dir == Path::new(".") || dir.as_os_str().is_empty() {
            PathBuf::from(&name)
        } else {
            dir.join(&name)
        };
        match std::fs::read_to_string(dir.join(&name)) {
            Ok(text) => files.push((path, text)),
            Err(e) => errors.push(ConfigError::whole_file(
                path,
                format!("cannot read file: {e}"),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors { errors });
    }
    if files.is_empty() {
        let mut error = ConfigError::whole_file(dir, "no *.hcl files in this directory");
        error.hint = Some("run pgsync where the configuration is, or pass --chdir DIR".to_owned());
        return Err(error.into());
    }
    parse_files(&files, inputs)
}

/// Pure: `(file name, text)` pairs → validated state. Files are merged in
/// the order given (which orders the errors); the names are used only in
/// messages. No files at all is an empty (valid) state.
pub fn parse_files(
    files: &[(PathBuf, String)],
    inputs: &Inputs,
) -> Result<DesiredState, ConfigErrors> {
    decode::decode(files, inputs)
}

/// Reads a `--var-file`: top-level `NAME = value` attributes, where each
/// value is a literal string, number or bool. Returns the pairs in file
/// order, for [`Inputs::from_process`].
pub fn read_var_file(path: &Path) -> Result<Vec<(String, String)>, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::from(ConfigError::whole_file(
            path,
            format!("cannot read file: {e}"),
        ))
    })?;
    parse_var_file(path, &text)
}

/// Pure part of [`read_var_file`].
pub fn parse_var_file(path: &Path, text: &str) -> Result<Vec<(String, String)>, ConfigErrors> {
    decode::decode_var_file(path, text)
}
