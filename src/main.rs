//! The `pgsync` binary: parse, run, print the error and its hint, exit.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = pgsync::cli::Args::parse();
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
