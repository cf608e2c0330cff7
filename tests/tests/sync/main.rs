//! Device sync end to end over real loopback HTTP against the real server (SQLite and
//! PostgreSQL): the outbox flow, crash safety under SIGKILL, network faults through a
//! fault-injecting proxy, and signed hot list sync.

mod common;
mod crash;
mod faults;
mod flow;
mod hotlists;
mod proxy;
