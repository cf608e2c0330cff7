//! Device sync end to end over real loopback HTTP against the real server (SQLite and
//! PostgreSQL): the outbox flow, crash safety under SIGKILL, and network faults through a
//! fault-injecting proxy.

mod common;
mod crash;
mod faults;
mod flow;
mod proxy;
