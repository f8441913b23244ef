//! pgsync: declarative one-way PostgreSQL → PostgreSQL synchronization.
//!
//! The library holds everything; `src/main.rs` only parses arguments, runs
//! [`cli::run`] and maps the outcome to an exit code. See
//! `docs/architecture.md` for the module map, the data flow and the LSN and
//! snapshot invariants.

pub mod cluster;
pub mod model;
pub mod pg;
pub mod plan;
pub mod sql;
pub mod state;
