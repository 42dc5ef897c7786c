//! QubeDB's conformance harness: the peers' test suites in `shared/conformance/` run against embedded
//! QubeDB, with per-file counts, a report of the largest failure causes, and a baseline that may only go
//! up. Today: the SQLite sqllogictest corpus ([`sqlite`]).

pub mod sqlite;
