//! The one integration-test binary (`autotests = false`): every test here
//! runs against throwaway PostgreSQL clusters started by the test itself.

mod support;

pub mod chunked;
mod cli;
mod cluster_smoke;
mod cross_version;
mod e2e_ddl;
mod e2e_pagila;
mod hostile_names;
mod killpoints;
mod large_transaction;
mod least_privilege;
mod reconnect;
mod routes;
mod scenarios;
mod schema_sync;
mod throttle;
mod tls;
mod topologies;
mod type_zoo;
mod verify;
