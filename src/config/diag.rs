//! Configuration errors with positions, collected rather than returned early.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in the configuration, at a place in a file.
///
/// `line` and `column` are one-based; `column` counts characters, not bytes.
/// A `line` of 0 means the problem concerns the file (or directory) as a
/// whole, such as a read failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as it was given (for `load_dir`, the directory joined with
    /// the file name, or the bare file name when the directory is `.`).
    pub file: PathBuf,
    /// One-based line, or 0 when there is no position.
    pub line: usize,
    /// One-based column in characters, or 0 when there is no position.
    pub column: usize,
    /// One lowercase clause without a trailing period.
    pub message: String,
    /// What to do about it, when there is something concrete to do.
    pub hint: Option<String>,
}

impl ConfigError {
    /// A problem with a file or directory as a whole (no position).
    pub fn whole_file(file: impl Into<PathBuf>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.into(),
            line: 0,
            column: 0,
            message: message.into(),
            hint: None,
        }
    }
}

impl fmt::Display for ConfigError {
    /// `FILE:LINE:COL: message`, then `  hint: fix` on the next line when
    /// there is a hint. Without a position: `FILE: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in a configuration, in file order, then by position.
///
/// `Display` prints one error per line (each followed by its `  hint:` line
/// when it has one), with no trailing newline.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigErrors {
    /// The problems, sorted by file (in the order the files were read), line
    /// and column.
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// The number of problems.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Whether there are no problems (never true for a returned `Err`).
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> ConfigErrors {
        ConfigErrors {
            errors: vec![error],
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A configuration file's name and text, with an index of line starts for
/// turning byte offsets into line and column.
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Source<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            path,
            text,
            line_starts,
        }
    }

    /// One-based line and character column of byte `offset`.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        (line, column)
    }

    /// `FILE:LINE:COL` of `offset`, for messages that point at another place.
    pub fn place(&self, offset: usize) -> String {
        let (line, column) = self.position(offset);
        format!("{}:{line}:{column}", self.path.display())
    }
}

/// Collects errors from all files; sorts them once at the end.
#[derive(Default)]
pub(crate) struct Diagnostics {
    errors: Vec<(usize, ConfigError)>,
}

impl Diagnostics {
    /// Records a problem at byte `offset` of `sources[file]`.
    pub fn push(
        &mut self,
        sources: &[Source<'_>],
        file: usize,
        offset: usize,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let source = &sources[file];
        let (line, column) = source.position(offset);
        self.errors.push((
            file,
            ConfigError {
                file: source.path.to_path_buf(),
                line,
                column,
                message: message.into(),
                hint,
            },
        ));
    }

    /// Records a problem with a known line and column.
    pub fn push_at(&mut self, rank: usize, error: ConfigError) {
        self.errors.push((rank, error));
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// All problems, sorted by file, line and column (stable otherwise).
    pub fn finish(mut self) -> ConfigErrors {
        self.errors
            .sort_by_key(|(rank, e)| (*rank, e.line, e.column));
        ConfigErrors {
            errors: self.errors.into_iter().map(|(_, e)| e).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let path = PathBuf::from("a.hcl");
        let src = Source::new(&path, "ab\nçd = 1\n");
        assert_eq!(src.position(0), (1, 1));
        assert_eq!(src.position(2), (1, 3));
        assert_eq!(src.position(3), (2, 1));
        // 'ç' is two bytes: byte 5 is the third character of line 2.
        assert_eq!(src.position(5), (2, 2));
        assert_eq!(src.position(100), (3, 1));
    }

    #[test]
    fn display_prints_position_then_hint() {
        let errors = ConfigErrors {
            errors: vec![
                ConfigError {
                    file: "a.hcl".into(),
                    line: 3,
                    column: 5,
                    message: "unknown attribute `hots` in endpoint \"src\"".into(),
                    hint: Some("did you mean `host`?".into()),
                },
                ConfigError::whole_file("b.hcl", "cannot read file: denied"),
            ],
        };
        assert_eq!(
            errors.to_string(),
            "a.hcl:3:5: unknown attribute `hots` in endpoint \"src\"\n  \
             hint: did you mean `host`?\nb.hcl: cannot read file: denied"
        );
    }
}
