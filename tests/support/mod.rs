//! Shared helpers for the integration tests.

pub mod cli;
pub mod pg;
pub mod sync;
