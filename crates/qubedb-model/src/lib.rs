//! `qubedb-model`: QubeDB's catalog, keyspace and value encodings on top of `qubedb-kv`.
//!
//! This crate turns the byte keyspace of `qubedb-kv` into schema objects and rows, without knowing SQL or
//! Arrow:
//! - [`types`]: the SQL data types QubeDB stores ([`DataType`]) and one value of any of them ([`Value`]);
//! - [`keycode`]: the order-preserving ("memcomparable") encoding of values inside keys;
//! - [`keys`]: every kind of key in the store, in one place (`docs/keyspace.md` lists their bytes);
//! - [`row`]: the compact row encoding, with a schema version so `ALTER TABLE ADD COLUMN` needs no rewrite;
//! - [`vector`]: vectors' limits, storage form and distance kernels;
//! - [`catalog`]: schemas, tables, columns, indexes, views and sequences, stored as catalog keys and changed
//!   transactionally with the data (a rolled-back `CREATE TABLE` leaves nothing behind).

pub mod catalog;
mod error;
pub mod hnsw;
mod hnsw_dense;
pub mod json_text;
pub mod jsonb;
pub mod jsonpath;
pub mod keycode;
pub mod keys;
pub mod row;
pub mod sparse_vector;
pub mod types;
pub mod vector;

pub use error::{Error, Result};
pub use types::{DataType, Value};

/// Longest identifier accepted (PostgreSQL's NAMEDATALEN - 1).
pub const IDENTIFIER_BYTES_MAX: usize = 63;
/// Most columns a table may have (PostgreSQL's limit).
pub const TABLE_COLUMNS_MAX: usize = 1600;
