//! `qubedb-kv`: QubeDB's ordered, transactional key-value store.
//!
//! Everything QubeDB keeps — catalog, rows, index entries — is a key-value pair in one ordered keyspace.
//! This crate knows nothing of tables or SQL: keys and values are byte strings, ordered bytewise.
//!
//! # TRANSACTIONS
//!
//! A [`Transaction`] reads a consistent snapshot of the store plus its own buffered writes
//! (read-your-own-writes), and offers point reads, ordered range and prefix scans in both directions,
//! puts and deletes. Nothing it writes is visible to anyone else until [`Transaction::commit`] returns `Ok`.
//!
//! ```text
//!            begin()                      put/delete                 commit()
//!  session ────────► snapshot S (seq 41) ───────────► write buffer ──────────► commit queue
//!                         │                                                        │
//!                         └── reads: buffer first, then snapshot S                  ▼
//!                                                                          committer thread
//! ```
//!
//! # ISOLATION: SNAPSHOT, FIRST COMMITTER WINS
//!
//! The persistent engine underneath (redb, see [`backend`]) allows one write transaction at a time, so
//! concurrency control is ours. Every commit batch gets a sequence number; a transaction remembers the
//! sequence its snapshot was taken at. The committer keeps, for every key written recently, the sequence of
//! its last commit. A transaction may commit only if none of the keys it wrote (and none of the key ranges it
//! asked to have validated, see [`Transaction::validate_range`]) were committed by anyone after its
//! snapshot; otherwise it fails with [`Error::Conflict`] (SQLSTATE 40001, retryable). This is snapshot
//! isolation — PostgreSQL's REPEATABLE READ — and never loses an update:
//!
//! ```text
//!   T1: begin(seq 7) ── put(k) ─────────── commit ✓ (k: seq 8)
//!   T2: begin(seq 7) ──────── put(k) ──────────────────── commit ✗ Conflict (k changed at 8 > 7)
//! ```
//!
//! # GROUP COMMIT
//!
//! Committing sessions put their write sets on a queue. One committer thread takes everything queued,
//! validates each transaction in order (a transaction also conflicts with an earlier one of the same batch),
//! applies all survivors in ONE backend write transaction with ONE fsync, and only then acknowledges them.
//! Durable commits per second therefore grow with the number of concurrent committers instead of being capped
//! by fsync latency.
//!
//! # DURABILITY
//!
//! With [`Synchronous::Full`] (the default) a commit that returned `Ok` has been fsynced: it survives
//! `kill -9` and power loss. With [`Synchronous::Normal`] batches are applied without fsync and the
//! committer makes them durable at most [`NORMAL_FLUSH_INTERVAL_MS`] later: a crash may lose the commits of
//! that last interval, but never leaves a partial transaction (each batch is atomic).
//!
//! # LIMITS
//!
//! Keys are at most [`KEY_BYTES_MAX`], values at most [`VALUE_BYTES_MAX`], and a transaction buffers at most
//! [`TRANSACTION_WRITE_BYTES_MAX`] of writes; past any of them the operation fails with [`Error::Limit`].

pub mod backend;
mod error;
mod store;

pub use backend::{Backend, KeyRange, ScanIterator, Snapshot};
pub use error::{Error, Result};
pub use store::{
    LockWait, ReadView, Savepoint, Store, StoreOptions, Synchronous, Transaction, prefix_range,
};

/// Largest key accepted, in bytes.
pub const KEY_BYTES_MAX: usize = 16 * 1024;
/// Largest value accepted, in bytes.
pub const VALUE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Largest total of buffered writes (keys plus values) one transaction may hold, in bytes.
pub const TRANSACTION_WRITE_BYTES_MAX: usize = 4 * 1024 * 1024 * 1024;
/// With [`Synchronous::Normal`], the longest a commit waits before it is fsynced.
pub const NORMAL_FLUSH_INTERVAL_MS: u64 = 200;
/// Most transactions the committer applies in one backend write transaction.
pub const COMMIT_BATCH_TRANSACTIONS_MAX: usize = 1024;
