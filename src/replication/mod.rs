//! pgoutput and replication-protocol decoding: pure, no I/O. Bytes from the
//! network never panic here: the decoders below may not index, unwrap,
//! cast with `as` or do unchecked arithmetic (clippy holds them to it; the
//! test helpers opt out).

#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::as_conversions,
    clippy::arithmetic_side_effects
)]

pub mod frame;
pub mod pgoutput;
#[cfg(test)]
mod testing;
mod wire;
