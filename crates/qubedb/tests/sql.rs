//! The `qubedb` crate's integration tests, in one binary:
//! - every `.slt` file under `tests/slt/`, each against a fresh in-memory database and again against a
//!   database in a directory (both storage modes, as RisingLight does), the second with the OLTP fast path
//!   off so that both execution paths must give the same results;
//! - concurrency: write conflicts give 40001, a reader's snapshot does not move;
//! - durability: a child process commits rows and is killed with SIGKILL; every acknowledged row survives;
//! - the embedded API: parameters, prepared statements, streaming, typed rows.

mod api;
mod crash;
mod slt;
