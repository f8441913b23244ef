//! Every PostgreSQL round trip: connections, prechecks, helper objects,
//! the replication connection, and (in `schema`) catalog introspection and
//! DDL generation.

pub mod admin;
pub mod compare;
mod connect;
pub mod ddl_capture;
pub mod precheck;
pub mod routes;
pub mod slot;

pub use connect::{
    ConnParams, ConnectFailure, Connected, Environment, PasswordFrom, PgCause, PgError, connect,
    connect_with, replication_conninfo, resolve,
};
pub mod schema;
