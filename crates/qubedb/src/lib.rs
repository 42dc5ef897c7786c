//! QubeDB embedded: open a data directory, run PostgreSQL-flavoured SQL with ACID transactions.
//!
//! ```no_run
//! let database = qubedb::Database::open("./qubedb-data")?;
//! let mut session = database.session();
//! session.execute("CREATE TABLE kv (id INTEGER PRIMARY KEY, name TEXT)", &[])?;
//! session.execute("INSERT INTO kv VALUES ($1, $2)", &[1.into(), "one".into()])?;
//! for row in session.query("SELECT name FROM kv WHERE id = $1", &[1.into()])?.rows()? {
//!     println!("{}", row.get::<String>(0)?);
//! }
//! # Ok::<(), qubedb::Error>(())
//! ```
//!
//! The blocking methods ([`Session::run`], [`Session::query`], ...) drive queries on the database's own
//! runtime and must not be called from inside an async runtime; async code uses the `*_async` methods
//! ([`Session::run_async`], [`Session::query_async`], ...), which run on the caller's runtime.
//!
//! # One statement, end to end
//!
//! 1. [`Session::run`] / [`Session::query`] parse the text with sqlparser's PostgreSQL dialect
//!    ([`sql::parse::parse`]) and bind `$n` parameters as literals ([`params::bind_parameters`]).
//! 2. [`Session::execute_statement`] handles transaction control itself (BEGIN, COMMIT, ROLLBACK,
//!    SAVEPOINT), opens a storage transaction for anything else (autocommit outside a block) and takes a
//!    statement savepoint, so a failed statement leaves no trace.
//! 3. `Session::dispatch` sends DDL to [`sql::ddl`], INSERT / UPDATE / DELETE to [`sql::dml`], and queries to
//!    DataFusion after view expansion ([`sql::rewrite::rewrite_query`]).
//! 4. DataFusion resolves table names through [`sql::provider::QubeCatalog`], which reads the transaction's
//!    catalog; [`sql::provider::KvTable::scan`] turns primary-key predicates into key ranges and returns a
//!    [`sql::provider::KvScanExec`] over a read view of the transaction.
//! 5. The scan decodes rows ([`qubedb_model::row`]) straight into Arrow batches; DataFusion computes the
//!    result; [`QueryResult`] streams the batches, and [`sql::format`] prints values as PostgreSQL does.
//! 6. At commit, `qubedb_kv` validates the transaction's writes against what others committed since its
//!    snapshot and applies it in a group commit with one fsync.

pub mod cluster;
pub mod database;
pub mod describe;
pub mod error;
pub mod params;
pub mod result;
pub mod roles;
pub mod session;
pub mod sql;

pub use cluster::{Cluster, DatabaseEntry};
pub use database::{Database, DatabaseOptions};
/// Arrow, as QubeDB returns results in it.
pub use datafusion::arrow;
pub use describe::{ColumnInfo, RelationInfo, TableInfo};
pub use error::{Error, ErrorKind, Result};
pub use params::Param;
pub use qubedb_kv::Synchronous;
pub use qubedb_model::catalog::RoleDef;
pub use qubedb_model::sparse_vector::SparseVector;
pub use qubedb_model::vector::VectorKind;
pub use result::{FromColumn, Notice, QueryResult, Row, StatementOutcome};
pub use roles::ScramVerifier;
pub use session::{CancelHandle, PreparedStatement, Session};
pub use sql::copy::CopyEncoder;
pub use sql::prepare::StatementDescription;

/// The PostgreSQL version QubeDB reports to clients (`server_version`, `version()`).
pub const SERVER_VERSION: &str = "16.0";
