//! QubeDB's conformance harness: the peers' test suites in `shared/conformance/` run against embedded
//! QubeDB, with per-file counts, a report of the largest failure causes, and a baseline that may only go
//! up. The SQLite sqllogictest corpus ([`sqlite`]), DuckDB's `.test` files ([`duckdb`]) and
//! PostgreSQL's regression files ([`postgres`]). [`wire`] runs the SQLite files over the PostgreSQL wire
//! protocol against a `qubedb serve` in the same process.

pub mod duckdb;
pub mod postgres;
pub mod sqlite;
pub mod wire;
