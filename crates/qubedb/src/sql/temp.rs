//! Temporary tables: `CREATE TEMPORARY TABLE`, visible to one session and gone when it ends.
//!
//! PostgreSQL puts a session's temporary relations in a schema of its own, `pg_temp_N`, searched before
//! every other schema for unqualified names. QubeDB does the same with an ordinary catalog schema: the
//! session's is named after a number the database hands each session ([`DatabaseInner::next_session_number`]),
//! created by the session's first CREATE TEMPORARY TABLE (in that statement's transaction, so a rollback
//! takes it back), and dropped with everything in it when the session ends. Its tables are ordinary
//! tables in every other respect — transactional, indexed, stored through the same write path — so
//! nothing else in the engine needs to know about them; only name resolution does
//! ([`crate::sql::rewrite::resolve`] for DDL and DML targets and the fast path, the view expander for
//! queries, `regclass` and `pg_table_is_visible` consult the session's temporary schema first).
//!
//! A process that stops without ending its sessions leaves their schemas behind: opening the database
//! drops every `pg_temp_*` schema ([`drop_leftover_schemas`]), since no session of the new process owns
//! one. Ending a session never waits on another transaction's locks: if the drop cannot commit after a
//! few attempts (another session holds the catalog), the schema stays until the next open; its name is
//! never reused by this process, so nobody sees it.
//!
//! `ON COMMIT PRESERVE ROWS` (the default) is what these tables do; `ON COMMIT DELETE ROWS` and
//! `ON COMMIT DROP` are refused with 0A000.

use std::time::Duration;

use qubedb_model::catalog::{Catalog, Object, SchemaDef};

use crate::database::DatabaseInner;
use crate::error::{Error, Result};
use crate::session::Session;
use crate::sql::ddl::drop_schema;

/// The prefix of every session's temporary schema name.
pub(crate) const TEMP_SCHEMA_PREFIX: &str = "pg_temp_";

/// Attempts at dropping a temporary schema when its session ends.
const DROP_ATTEMPTS_MAX: u32 = 20;

/// Pause between two attempts.
const DROP_RETRY_MS: u64 = 10;

/// The temporary schema name of the session numbered `number`.
pub(crate) fn schema_name(number: u64) -> String {
    format!("{TEMP_SCHEMA_PREFIX}{number}")
}

/// True if `name` is a temporary schema's name (this session's or another's).
pub(crate) fn is_temp_schema(name: &str) -> bool {
    name.strip_prefix(TEMP_SCHEMA_PREFIX).is_some_and(|number| {
        !number.is_empty() && number.bytes().all(|byte| byte.is_ascii_digit())
    })
}

impl Session {
    /// The session's temporary schema, created in the current transaction if it does not exist yet.
    pub(crate) fn ensure_temp_schema(&self) -> Result<u64> {
        let name = self.shared.temp_schema.clone();
        if let Some(id) = self.shared.state.lock().catalog.schema_id(&name) {
            return Ok(id);
        }
        self.shared
            .temp_schema_made
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.change_catalog(|catalog, transaction| {
            let id = Catalog::allocate_id(transaction)?;
            catalog.put(transaction, Object::Schema(SchemaDef { id, name }))?;
            Ok(id)
        })
    }
}

/// Drops schema `name` and its contents in a transaction of its own, if it exists; retries while other
/// transactions hold the catalog, and gives up (leaving the schema to the next open) after a while.
/// (Called when a session that made its temporary schema ends: `Shared::temp_schema_made`.)
pub(crate) fn drop_schema_now(database: &DatabaseInner, name: &str) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_drop_schemas(database, |schema| schema == name) {
            Err(error) if error.is_retryable() && attempt < DROP_ATTEMPTS_MAX => {
                std::thread::sleep(Duration::from_millis(DROP_RETRY_MS));
            }
            other => return other,
        }
    }
}

/// Drops every temporary schema (at open, before any session exists).
pub(crate) fn drop_leftover_schemas(database: &DatabaseInner) -> Result<()> {
    try_drop_schemas(database, is_temp_schema)
}

fn try_drop_schemas(database: &DatabaseInner, doomed: impl Fn(&str) -> bool) -> Result<()> {
    let mut transaction = database.store.begin()?;
    let mut catalog = (*database.catalog_for(&transaction)?).clone();
    let schemas: Vec<u64> = catalog
        .objects()
        .filter_map(|object| match object {
            Object::Schema(schema) if doomed(&schema.name) => Some(schema.id),
            _ => None,
        })
        .collect();
    if schemas.is_empty() {
        return Ok(());
    }
    for schema in schemas {
        drop_schema(&mut transaction, &mut catalog, database, schema)?;
    }
    transaction.commit().map_err(Error::from)
}
