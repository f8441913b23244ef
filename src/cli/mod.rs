//! The composition root: arguments, signals, the commands, and everything
//! pgsync prints. Exit codes are in docs/cli.md.

mod commands;
mod demo;
mod output;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::Error;

/// Declarative one-way PostgreSQL → PostgreSQL synchronization.
#[derive(Debug, Parser)]
#[command(name = "pgsync", version, about, long_about = None)]
pub struct Args {
    /// Directory holding the `*.hcl` configuration (default: the current one).
    #[arg(long, global = true, value_name = "DIR")]
    pub chdir: Option<PathBuf>,
    /// State directory (default: `.pgsync` beside the configuration).
    #[arg(long, global = true, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Sets `var.NAME` (repeatable); beats `PGSYNC_VAR_NAME` and defaults.
    #[arg(long = "var", global = true, value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Reads `NAME = "value"` lines as variables (repeatable).
    #[arg(long = "var-file", global = true, value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
    /// Log filter for stderr (`RUST_LOG` syntax), e.g. `info` or `pgsync=debug`.
    #[arg(long, global = true, env = "PGSYNC_LOG", default_value = "warn")]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration files alone (no database).
    Validate,
    /// Refresh from both databases and show what apply would change.
    Plan {
        /// Save the plan for `pgsync apply FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 2 when the plan has changes (0: none, 1: error).
        #[arg(long)]
        detailed_exitcode: bool,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run prechecks, carry out the plan, then stream until SIGINT/SIGTERM.
    Apply {
        /// A plan saved by `pgsync plan --out` (refused when stale).
        planfile: Option<PathBuf>,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// Return once everything the source had committed at stream start is applied.
        #[arg(long)]
        exit_when_caught_up: bool,
        /// COPY workers at once during the full sync (tables and chunks of
        /// large tables); default: the machine's parallelism, capped by the
        /// servers' free connection slots.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: Option<u16>,
        /// Drop the destination tables of tables removed from a task's
        /// selection (kept by default).
        #[arg(long)]
        drop_removed_tables: bool,
    },
    /// Remove every slot, publication and dts_* helper object, and the state.
    Destroy {
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// Also drop the destination tables pgsync created.
        #[arg(long)]
        drop_destination: bool,
    },
    /// Show phase, copy progress and lag per task.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the prechecks alone and report each item.
    Precheck,
    /// Compare source and destination table by table (counts and hashes
    /// over key ranges) at a consistent point; exit 2 on any difference.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// List the differing keys of each mismatching range.
        #[arg(long)]
        rows: bool,
        /// Tables compared at once (one session per side each).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        /// Seconds to wait, per round, for the destination to reach the source's position.
        #[arg(long, default_value_t = 120, value_name = "SECONDS")]
        timeout: u64,
    },
    /// Inspect recorded state.
    State {
        /// list or show.
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Start two throwaway local clusters and show pgsync's main job end to end.
    Demo {
        /// Rows in the demo's largest table.
        #[arg(long, default_value_t = 20000)]
        rows: u32,
    },
}

/// `pgsync state …`.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List recorded addresses.
    List,
    /// Show one recorded task (`task.NAME`) as JSON.
    Show {
        /// Address, e.g. `task.app`.
        address: String,
    },
}

/// How a successful command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// `plan --detailed-exitcode` found changes: exit 2.
    ChangesPresent,
    /// `verify` found a table that differs: exit 2.
    Mismatch,
}

impl Outcome {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::ChangesPresent | Outcome::Mismatch => 2,
        }
    }
}

/// Runs one command to completion.
///
/// # Errors
/// [`Error`], printed by `main` with its hint.
pub fn run(args: Args) -> Result<Outcome, Error> {
    output::init_logging(&args.log);
    // One thread runs every task's stream and the engine: a change then
    // goes from the replication socket to the destination socket without
    // waking another thread (cross-thread wake-ups were most of the
    // stream's CPU). Copy workers run on threads of their own
    // (`snapshot::copy_all`), and nothing here blocks the thread for long.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            doing: "start runtime",
            path: PathBuf::new(),
            source,
        })?;
    runtime.block_on(commands::dispatch(args))
}
