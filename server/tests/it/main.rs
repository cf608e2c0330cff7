//! Server integration tests: storage, HTTP handlers (`oneshot`) and end-to-end over loopback,
//! each run against both backends (SQLite and a private PostgreSQL).

mod access;
mod api;
mod checkpoints;
mod common;
mod e2e;
mod hotlists;
mod ingest;
mod openapi;
mod operations;
mod queries;
mod security;
mod storage;
mod tls;
