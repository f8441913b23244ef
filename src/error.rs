//! The top-level error: every failure pgsync reports, with a hint and a
//! stable exit code (docs/cli.md).

use std::path::PathBuf;

/// Every failure a command can end with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HCL files are wrong; the message lists every problem.
    #[error("invalid configuration:\n{0}")]
    Config(#[from] crate::config::ConfigErrors),
    /// The state store could not be used.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// Carrying out a plan failed.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// A database call failed outside the engine (plan refresh, status).
    #[error(transparent)]
    Pg(#[from] crate::pg::PgError),
    /// A saved plan no longer matches the state or configuration.
    #[error("saved plan {path} is stale: {why}")]
    StalePlan {
        /// The plan file.
        path: PathBuf,
        /// What moved on.
        why: String,
    },
    /// A file could not be read or written.
    #[error("{doing} {path}")]
    Io {
        /// What was done.
        doing: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// apply/destroy needs confirmation and stdin is not a terminal.
    #[error("{command} needs confirmation, and standard input is not a terminal")]
    NeedsApproval {
        /// `apply` or `destroy`.
        command: &'static str,
    },
    /// The user answered something other than `yes`.
    #[error("{command} cancelled")]
    Declined {
        /// `apply` or `destroy`.
        command: &'static str,
    },
    /// A throwaway cluster for `demo` failed.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// `verify` could not finish (differences are not errors).
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
    /// The demo found the two sides different.
    #[error("demo: {0}")]
    Demo(String),
}

impl Error {
    /// One imperative sentence, printed as `hint: …` under the error.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::State(crate::state::StateError::Locked { .. }) => Some(
                "wait for the other pgsync to finish (or stop a running apply with Ctrl-C); `pgsync status` works meanwhile".into(),
            ),
            Error::Engine(crate::engine::EngineError::Pg(e)) | Error::Pg(e)
                if e.connect_hint().is_some() =>
            {
                e.connect_hint()
            }
            Error::Engine(e) => e.hint(),
            Error::Verify(e) => e.hint(),
            Error::StalePlan { .. } => Some("run `pgsync plan --out FILE` again and review it".into()),
            Error::NeedsApproval { .. } => Some("pass --auto-approve to run without a prompt".into()),

            _ => None,
        }
    }

    /// Exit codes: 1 for every error (2 is reserved for "changes present"
    /// under `plan --detailed-exitcode` and for `verify` mismatches).
    pub fn exit_code(&self) -> u8 {
        1
    }
}

/// Renders `err` and its causes as `outer: inner: root`, skipping a cause
/// whose text the outer message already contains.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        next = cause.source();
    }
    text
}
