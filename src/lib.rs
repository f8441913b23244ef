//! pgsync: declarative one-way PostgreSQL → PostgreSQL synchronization.
//!
//! The library holds everything; `src/main.rs` only parses arguments, runs
//! [`cli::run`] and maps the outcome to an exit code. See
//! `docs/architecture.md` for the module map, the data flow and the LSN and
//! snapshot invariants.

pub mod cli;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod error;
pub mod failpoint;
pub mod model;
pub mod pg;
pub mod plan;
pub mod replication;
pub mod sink;
pub mod snapshot;
pub mod sql;
pub mod state;
pub mod verify;

pub use error::{Error, chain as error_chain};
