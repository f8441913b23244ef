//! The `pgsync` binary: parse, run, print the error and its hint, exit.
//!
//! Exit codes (docs/cli.md): 0 success, 1 any error (including a wrong
//! command line: clap's own code 2 would read as "changes present" under
//! `plan --detailed-exitcode`), 2 only for `plan --detailed-exitcode` with
//! changes and `verify` mismatches.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = match pgsync::cli::Args::try_parse() {
        Ok(args) => args,
        Err(err) => {
            // --help and --version print to stdout and succeed.
            let _ = err.print();
            return std::process::ExitCode::from(if err.use_stderr() { 1 } else { 0 });
        }
    };
    match pgsync::cli::run(args) {
        Ok(outcome) => std::process::ExitCode::from(outcome.exit_code()),
        Err(err) => {
            eprintln!("error: {}", pgsync::error_chain(&err));
            if let Some(hint) = err.hint() {
                eprintln!("hint: {hint}");
            }
            std::process::ExitCode::from(err.exit_code())
        }
    }
}
