//! QubeDB's conformance harness: the peers' test suites in `shared/conformance/` run against embedded
//! QubeDB, with per-file counts, a report of the largest failure causes, and a baseline that may only go
//! up. The SQLite sqllogictest corpus ([`sqlite`]) and DuckDB's `.test` files ([`duckdb`]).

pub mod duckdb;
pub mod sqlite;
