//! [`Session`]: one connection's state — its transaction, its settings, its prepared statements — and the
//! statement dispatcher.
//!
//! Every statement is parsed by sqlparser (PostgreSQL dialect) and dispatched here. Statements that change
//! state (DDL, DML, transaction control, SET) are executed by QubeDB's own code ([`crate::sql::ddl`],
//! [`crate::sql::dml`]); queries go to DataFusion over QubeDB's table providers. DataFusion never sees a
//! statement that writes: it keeps tables in memory and has no transactions.
//!
//! # Transactions
//!
//! Outside a `BEGIN` block each statement runs in its own transaction and commits when it succeeds
//! (autocommit). Inside a block, an error rolls back the failed statement's writes and marks the block
//! aborted: every later statement fails with 25P02 until `ROLLBACK` (or `ROLLBACK TO SAVEPOINT`), and
//! `COMMIT` of an aborted block rolls back, as in PostgreSQL. Every key a transaction writes is locked
//! until it ends (`qubedb_kv`'s lock table): a statement that writes a row another transaction is
//! writing rolls back to its start, waits for that transaction, and runs again. READ COMMITTED (the
//! default, as in PostgreSQL) gives each statement a fresh snapshot, so the re-run sees the other
//! transaction's commit; REPEATABLE READ keeps one snapshot per transaction and fails with 40001 when
//! the row was committed since. A wait that would close a cycle fails with 40P01. SERIALIZABLE is refused.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::config::Dialect;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SessionContext;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionConfig;
use datafusion::sql::sqlparser::ast::{
    self as ast, Expr as SqlExpr, ObjectType, Query, Statement, TransactionIsolationLevel,
    TransactionMode,
};
use std::panic::AssertUnwindSafe;

use futures::{FutureExt, StreamExt};
use parking_lot::Mutex;
use qubedb_model::catalog::Catalog;

use crate::database::DatabaseInner;
use crate::error::{Error, Result};
use crate::params::{Param, bind_parameters};
use crate::result::{QueryResult, StatementOutcome};
use crate::sql::fast::{self, FastOutcome, FastPlan};
use crate::sql::parse::parse;
use crate::sql::{functions, provider::QubeCatalog, rewrite};

/// State shared between the session and the DataFusion objects it registers (catalog, functions).
pub(crate) struct Shared {
    pub(crate) database: Arc<DatabaseInner>,
    pub(crate) state: Mutex<TransactionState>,
    /// The session's settings (SET / SHOW / `current_setting`), keyed by lower-case name.
    pub(crate) settings: Mutex<BTreeMap<String, String>>,
    /// Notices the running statement raised, handed to its result when it succeeds.
    pub(crate) notices: Mutex<Vec<crate::result::Notice>>,
    /// The name of the session's schema for temporary tables (`pg_temp_N`, see `sql/temp.rs`); it exists
    /// in the catalog from the first CREATE TEMPORARY TABLE until the session ends.
    pub(crate) temp_schema: String,
    /// Set when the session first creates its temporary schema: only such a session has one to drop
    /// when it ends (a rolled-back creation leaves the flag set and nothing to drop).
    pub(crate) temp_schema_made: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Raises a NOTICE (SQLSTATE `code`) from the running statement.
    pub(crate) fn notice(&self, code: &'static str, message: impl Into<String>) {
        self.notices
            .lock()
            .push(crate::result::Notice::new("NOTICE", code, message));
    }

    /// Raises a WARNING (SQLSTATE `code`) from the running statement.
    pub(crate) fn warning(&self, code: &'static str, message: impl Into<String>) {
        self.notices
            .lock()
            .push(crate::result::Notice::new("WARNING", code, message));
    }
}

/// The session's current transaction and what the providers need from it.
pub(crate) struct TransactionState {
    pub(crate) transaction: Option<qubedb_kv::Transaction>,
    /// The catalog as the transaction sees it (including its own DDL).
    pub(crate) catalog: Arc<Catalog>,
    /// Tables visible to the current statement only (`excluded`, rows for RETURNING and CHECK).
    pub(crate) locals: HashMap<String, Arc<dyn TableProvider>>,
    /// `currval` per sequence, and `lastval`.
    pub(crate) sequence_values: HashMap<u64, i64>,
    pub(crate) last_sequence_value: Option<i64>,
    /// Set when a streamed result failed after its statement returned, to abort the block.
    pub(crate) stream_failed: bool,
}

impl TransactionState {
    /// The open transaction (statements run inside one).
    pub(crate) fn transaction(&mut self) -> Result<&mut qubedb_kv::Transaction> {
        self.transaction
            .as_mut()
            .ok_or_else(|| Error::internal("statement executed outside a transaction"))
    }
}

struct Block {
    aborted: bool,
    savepoints: Vec<SavepointEntry>,
    isolation: Isolation,
}

/// The isolation level of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isolation {
    /// Each statement reads what was committed before it began; a row another transaction changed
    /// meanwhile is written after that transaction ends, re-read (PostgreSQL's default).
    ReadCommitted,
    /// One snapshot for the whole transaction; writing a row another transaction changed since fails
    /// with 40001 (snapshot isolation).
    RepeatableRead,
}

impl Isolation {
    fn name(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read committed",
            Isolation::RepeatableRead => "repeatable read",
        }
    }

    /// The level a setting's text names (`READ UNCOMMITTED` runs as READ COMMITTED, as in PostgreSQL).
    fn parse(text: &str) -> Result<Isolation> {
        let text = text
            .trim()
            .trim_matches('\'')
            .to_lowercase()
            .replace(['_', '-'], " ");
        match text.as_str() {
            "read committed" | "read uncommitted" => Ok(Isolation::ReadCommitted),
            "repeatable read" | "snapshot" => Ok(Isolation::RepeatableRead),
            "serializable" => Err(serializable_refused()),
            _ => Err(Error::user(
                "22023",
                format!("invalid value for parameter \"transaction_isolation\": \"{text}\""),
            )),
        }
    }
}

/// Most times one statement is run again after waiting for a row another transaction was writing.
const STATEMENT_RESTARTS_MAX: usize = 1000;

struct SavepointEntry {
    name: String,
    storage: qubedb_kv::Savepoint,
    catalog: Arc<Catalog>,
}

/// A prepared statement: parsed once, bound and run many times.
#[derive(Clone)]
pub struct PreparedStatement {
    pub(crate) statement: Statement,
    /// Number of `$n` parameters it takes.
    pub parameter_count: usize,
    /// The fast-path plan (`sql/fast.rs`) and the catalog it was made against; `None` until first run.
    fast: Arc<Mutex<Option<FastCache>>>,
    /// A query's cached plan for the general path (`sql/plan_cache.rs`); `None` until first run.
    plan: crate::sql::plan_cache::PlanSlot,
    /// The text it was parsed from (with the statements around it), to place errors in.
    source: Arc<str>,
}

/// A prepared statement's fast plan, valid while the session's catalog is the same `Arc`.
struct FastCache {
    catalog: Arc<Catalog>,
    plan: Option<Arc<FastPlan>>,
}

impl PreparedStatement {
    pub(crate) fn new(statement: Statement, source: Arc<str>) -> PreparedStatement {
        let parameter_count = crate::params::parameter_count(&statement);
        PreparedStatement {
            statement,
            parameter_count,
            fast: Arc::new(Mutex::new(None)),
            plan: Arc::new(Mutex::new(None)),
            source,
        }
    }
}

impl PreparedStatement {
    /// True for `COPY ... FROM STDIN`, which needs the client's data ([`Session::copy_in_prepared_async`]).
    pub fn is_copy_from_stdin(&self) -> bool {
        matches!(
            self.statement,
            Statement::Copy {
                to: false,
                target: ast::CopyTarget::Stdin,
                ..
            }
        )
    }
}

/// One connection to a [`crate::Database`]. Sessions of one database run concurrently on separate threads;
/// a session itself runs one statement at a time.
pub struct Session {
    pub(crate) shared: Arc<Shared>,
    pub(crate) context: SessionContext,
    block: Option<Block>,
    /// The data of a `COPY ... FROM STDIN` being run by [`Session::copy_in`].
    copy_data: Option<Vec<u8>>,
    /// `SET statement_timeout`: how long one statement may run, reading its rows included.
    statement_timeout: Option<std::time::Duration>,
    cancel: CancelHandle,
    /// `SET qubedb.fast_path`: point statements skip DataFusion (`sql/fast.rs`). On by default.
    fast_path: bool,
    /// How many statements the fast path has run.
    fast_path_statements: u64,
    /// Executions of prepared queries through their cached plans (`sql/plan_cache.rs`).
    pub(crate) cached_plan_executions: u64,
}

/// Settings every session starts with (SHOW answers them; SET changes them for the session).
const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("datestyle", "ISO, MDY"),
    ("default_transaction_isolation", "read committed"),
    ("enable_seqscan", "on"),
    ("extra_float_digits", "1"),
    ("hnsw.ef_search", "40"),
    // QubeDB keeps searching until a filtered query has its LIMIT of rows (pgvector's default is
    // `off`, which can return fewer).
    ("hnsw.iterative_scan", "relaxed_order"),
    ("hnsw.max_scan_tuples", "20000"),
    ("hnsw.scan_mem_multiplier", "1"),
    ("integer_datetimes", "on"),
    ("intervalstyle", "postgres"),
    ("is_superuser", "on"),
    ("max_identifier_length", "63"),
    ("max_index_keys", "32"),
    ("qubedb.fast_path", "on"),
    ("search_path", "\"$user\", public"),
    ("server_encoding", "UTF8"),
    ("server_version", crate::SERVER_VERSION),
    ("session_authorization", "qubedb"),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("synchronous_commit", "on"),
    ("timezone", "UTC"),
    ("transaction_isolation", "read committed"),
];

impl Session {
    pub(crate) fn new(database: Arc<DatabaseInner>) -> Session {
        let catalog = database.cached_catalog();
        let temp_schema = crate::sql::temp::schema_name(database.next_session_number());
        let shared = Arc::new(Shared {
            temp_schema,
            temp_schema_made: std::sync::atomic::AtomicBool::new(false),
            database,
            state: Mutex::new(TransactionState {
                transaction: None,
                catalog,
                locals: HashMap::new(),
                sequence_values: HashMap::new(),
                last_sequence_value: None,
                stream_failed: false,
            }),
            settings: Mutex::new(
                DEFAULT_SETTINGS
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.to_string()))
                    .collect(),
            ),
            notices: Mutex::new(Vec::new()),
        });
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema("qubedb", "public")
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(false)
            .with_target_partitions(2);
        config.options_mut().sql_parser.dialect = Dialect::PostgreSQL;
        config.options_mut().sql_parser.parse_float_as_decimal = true;
        config.options_mut().execution.time_zone = Some("+00:00".into());
        let state = crate::sql::apply::install(
            SessionStateBuilder::new()
                .with_config(config)
                .with_runtime_env(shared.database.runtime_environment.clone())
                .with_default_features(),
            shared.clone(),
        )
        .build();
        let context = SessionContext::new_with_state(state);
        context.register_catalog(
            "qubedb",
            Arc::new(QubeCatalog {
                shared: shared.clone(),
            }),
        );
        functions::register(&context, &shared);
        Session {
            shared,
            context,
            block: None,
            copy_data: None,
            statement_timeout: None,
            cancel: CancelHandle::default(),
            fast_path: true,
            fast_path_statements: 0,
            cached_plan_executions: 0,
        }
    }

    /// Sets the user the session runs as (`current_user`, `session_user`, `SHOW
    /// session_authorization`); a server passes the connection's user. Embedded sessions run as
    /// `qubedb`.
    pub fn set_user(&mut self, user: &str) {
        let superuser = self
            .shared
            .database
            .cluster
            .roles()
            .iter()
            .any(|role| role.name == user && role.superuser);
        let mut settings = self.shared.settings.lock();
        settings.insert("session_authorization".into(), user.to_string());
        settings.insert(
            "is_superuser".into(),
            if superuser { "on" } else { "off" }.into(),
        );
    }

    /// The role the session runs as.
    pub(crate) fn current_user(&self) -> String {
        self.shared
            .settings
            .lock()
            .get("session_authorization")
            .cloned()
            .unwrap_or_default()
    }

    /// Fails the current statement from outside, as an error inside it would (a client abandoning its
    /// `COPY FROM STDIN` with CopyFail): inside a block, the block is aborted until ROLLBACK.
    pub fn fail_statement(&mut self) {
        if let Some(block) = &mut self.block {
            block.aborted = true;
        }
    }

    /// A handle that cancels whatever this session is running.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// True inside a `BEGIN` ... `COMMIT` block.
    pub fn in_transaction(&self) -> bool {
        self.block.is_some()
    }

    /// The version of the committed catalog (it changes with every committed DDL), or `None` inside a
    /// transaction block, whose own DDL is not committed. A server keys what it caches about a
    /// statement's text (its parse, its result columns) by it.
    pub fn committed_catalog_version(&self) -> Result<Option<u64>> {
        if self.block.is_some() {
            return Ok(None);
        }
        let reader = self.shared.database.store.begin()?;
        Ok(Some(Catalog::read_version(&reader)?))
    }

    /// True when the block has failed and only ROLLBACK is accepted.
    pub fn transaction_failed(&self) -> bool {
        self.block.as_ref().is_some_and(|block| block.aborted)
    }

    /// Runs every statement of `sql` and returns the outcome of each, results collected in memory.
    /// Stops at the first error.
    pub fn run(&mut self, sql: &str) -> Result<Vec<StatementOutcome>> {
        let runtime = self.shared.database.runtime.clone();
        runtime.block_on(self.run_async(sql, &[]))
    }

    /// Runs one `COPY table [(columns)] FROM STDIN [options]` statement with `data` as what the client
    /// sent (text or CSV, as the options say; a final `\.` line is optional).
    pub fn copy_in(&mut self, sql: &str, data: &[u8]) -> Result<StatementOutcome> {
        let runtime = self.shared.database.runtime.clone();
        runtime.block_on(self.copy_in_async(sql, data))
    }

    /// Like [`Session::copy_in`], from async code.
    pub async fn copy_in_async(&mut self, sql: &str, data: &[u8]) -> Result<StatementOutcome> {
        let prepared = self.prepare(sql)?;
        self.copy_in_prepared_async(&prepared, data).await
    }

    /// Runs a prepared `COPY ... FROM STDIN` with `data` as what the client sent.
    pub async fn copy_in_prepared_async(
        &mut self,
        prepared: &PreparedStatement,
        data: &[u8],
    ) -> Result<StatementOutcome> {
        if !prepared.is_copy_from_stdin() {
            return Err(Error::user(
                "42601",
                "copy_in takes exactly one COPY ... FROM STDIN statement",
            ));
        }
        self.copy_data = Some(data.to_vec());
        let result = self
            .execute_statement(prepared.statement.clone(), &[])
            .await;
        self.copy_data = None;
        result?.collect().await
    }

    /// Like [`Session::run`], from async code.
    pub async fn run_async(
        &mut self,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<StatementOutcome>> {
        let statements = parse(sql)?;
        let mut outcomes = Vec::with_capacity(statements.len());
        for statement in statements {
            let result = self
                .execute_statement(statement, params)
                .await
                .map_err(|error| error.locate_input(sql))?;
            // Constant input is read as the plan runs: its errors point at the literal too.
            outcomes.push(
                result
                    .collect()
                    .await
                    .map_err(|error| error.locate_input(sql))?,
            );
        }
        Ok(outcomes)
    }

    /// Runs the statements of `sql` one at a time, handing each outcome to `on_outcome` as soon as it is
    /// complete; stops at the first error and returns it.
    pub fn run_script(
        &mut self,
        sql: &str,
        mut on_outcome: impl FnMut(StatementOutcome),
    ) -> Result<()> {
        let runtime = self.shared.database.runtime.clone();
        runtime.block_on(async {
            for statement in parse(sql)? {
                let result = self
                    .execute_statement(statement, &[])
                    .await
                    .map_err(|error| error.locate_input(sql))?;
                on_outcome(
                    result
                        .collect()
                        .await
                        .map_err(|error| error.locate_input(sql))?,
                );
            }
            Ok(())
        })
    }

    /// Runs one statement (or several: all but the last must not return rows) and returns the number of
    /// rows it affected.
    pub fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64> {
        let runtime = self.shared.database.runtime.clone();
        runtime.block_on(async {
            let mut affected = 0;
            for outcome in self.run_async(sql, params).await? {
                affected = outcome.rows_affected;
            }
            Ok(affected)
        })
    }

    /// Runs one statement and returns its rows as a stream of Arrow batches: the first batch is available
    /// before the last row is computed.
    pub fn query(&mut self, sql: &str, params: &[Param]) -> Result<QueryResult> {
        let runtime = self.shared.database.runtime.clone();
        runtime.block_on(self.query_async(sql, params))
    }

    /// Like [`Session::query`], from async code.
    pub async fn query_async(&mut self, sql: &str, params: &[Param]) -> Result<QueryResult> {
        let mut statements = parse(sql)?;
        if statements.len() != 1 {
            return Err(Error::user(
                "42601",
                format!(
                    "query expects exactly one statement, got {}",
                    statements.len()
                ),
            ));
        }
        let statement = statements.pop().expect("one statement");
        self.execute_statement(statement, params)
            .await
            .map_err(|error| error.locate_input(sql))
    }

    /// Parses `sql` (one statement) for repeated execution with parameters.
    pub fn prepare(&mut self, sql: &str) -> Result<PreparedStatement> {
        let mut statements = parse(sql)?;
        if statements.len() != 1 {
            return Err(Error::user(
                "42601",
                format!("cannot prepare {} statements at once", statements.len()),
            ));
        }
        Ok(PreparedStatement::new(
            statements.pop().expect("one statement"),
            Arc::from(sql),
        ))
    }

    /// Parses every statement of `sql` for execution one at a time (what a server does with a
    /// multi-statement query message). Parse errors come back here, before anything runs.
    pub fn prepare_script(&mut self, sql: &str) -> Result<Vec<PreparedStatement>> {
        let source: Arc<str> = Arc::from(sql);
        Ok(parse(sql)?
            .into_iter()
            .map(|statement| PreparedStatement::new(statement, source.clone()))
            .collect())
    }

    /// Runs a prepared statement with `params`.
    pub fn execute_prepared(
        &mut self,
        prepared: &PreparedStatement,
        params: &[Param],
    ) -> Result<QueryResult> {
        let runtime = self.shared.database.runtime.clone();
        runtime.block_on(self.execute_prepared_async(prepared, params))
    }

    /// Like [`Session::execute_prepared`], from async code.
    pub async fn execute_prepared_async(
        &mut self,
        prepared: &PreparedStatement,
        params: &[Param],
    ) -> Result<QueryResult> {
        self.execute_prepared_unplaced(prepared, params)
            .await
            .map_err(|error| error.locate_input(&prepared.source))
    }

    async fn execute_prepared_unplaced(
        &mut self,
        prepared: &PreparedStatement,
        params: &[Param],
    ) -> Result<QueryResult> {
        if self.fast_path && fast::is_candidate(&prepared.statement) {
            self.shared.notices.lock().clear();
            if let Some(result) = self.try_fast(prepared, params).await? {
                return Ok(result);
            }
        }
        // Boxed: the general path's future (DataFusion planning) is tens of kilobytes; inline, every
        // call, fast or not, would copy it into the runtime (a profile showed ~10% of point-query CPU
        // in that memmove).
        Box::pin(self.execute_statement_with(
            prepared.statement.clone(),
            params,
            Some(&prepared.plan),
        ))
        .await
    }

    /// Runs a prepared statement on the fast path (`sql/fast.rs`) if it can take it: `Ok(None)` sends
    /// it the general way, with nothing done but perhaps the transaction begun. Transaction handling is
    /// the general path's (`execute_statement_quietly`: savepoint, restarts after a conflict, commit
    /// outside a block), without the statement timeout: a fast statement is one key's work.
    async fn try_fast(
        &mut self,
        prepared: &PreparedStatement,
        params: &[Param],
    ) -> Result<Option<QueryResult>> {
        if self.transaction_failed() || self.shared.state.lock().stream_failed {
            return Ok(None);
        }
        let implicit = self.block.is_none();
        self.ensure_transaction()?;
        if !implicit && self.isolation()? == Isolation::ReadCommitted {
            self.refresh_statement_snapshot()?;
        }
        let catalog = self.shared.state.lock().catalog.clone();
        let plan = {
            let mut cache = prepared.fast.lock();
            match &*cache {
                Some(cached) if Arc::ptr_eq(&cached.catalog, &catalog) => cached.plan.clone(),
                _ => {
                    let plan = fast::plan(&prepared.statement, &catalog, &self.shared.temp_schema)
                        .map(Arc::new);
                    *cache = Some(FastCache {
                        catalog: catalog.clone(),
                        plan: plan.clone(),
                    });
                    plan
                }
            }
        };
        let Some(plan) = plan else {
            return Ok(None);
        };
        let vector_settings = matches!(*plan, fast::FastPlan::Nearest { .. })
            .then(|| crate::sql::provider::VectorSettings::of(&self.shared));
        let before = self.statement_savepoint()?;
        let mut attempts = 0;
        let error = loop {
            let outcome = {
                let mut state = self.shared.state.lock();
                let transaction = state.transaction()?;
                fast::execute(
                    &plan,
                    params,
                    transaction,
                    &catalog,
                    &self.shared.database,
                    vector_settings,
                )
            };
            match outcome {
                Ok(None) => return Ok(None),
                Ok(Some(outcome)) => {
                    let result = self.fast_result(outcome);
                    if implicit {
                        self.commit_transaction()?;
                    }
                    return Ok(Some(result));
                }
                Err(error) if attempts < STATEMENT_RESTARTS_MAX => {
                    attempts += 1;
                    match self.restart_after_conflict(&error, &before, None).await {
                        // A newer snapshot may bring another catalog: the general path plans afresh.
                        Ok(true) if !Arc::ptr_eq(&self.shared.state.lock().catalog, &catalog) => {
                            return Ok(None);
                        }
                        Ok(true) => continue,
                        Ok(false) => break error,
                        Err(other) => break other,
                    }
                }
                Err(error) => break error,
            }
        };
        self.fail_statement_writes(implicit, before);
        Err(error)
    }

    /// Undoes a failed statement: outside a block its transaction is dropped; inside one its writes
    /// roll back to `before` and the block is aborted.
    fn fail_statement_writes(
        &mut self,
        implicit: bool,
        before: (qubedb_kv::Savepoint, Arc<Catalog>),
    ) {
        let mut state = self.shared.state.lock();
        state.locals.clear();
        if implicit {
            state.transaction = None;
        } else {
            if let Some(transaction) = state.transaction.as_mut() {
                transaction.rollback_to(&before.0);
            }
            state.catalog = before.1;
            drop(state);
            if let Some(block) = &mut self.block {
                block.aborted = true;
            }
        }
    }

    /// How many statements this session has run on the OLTP fast path (`SET qubedb.fast_path`), for
    /// diagnostics and tests.
    pub fn fast_path_statements(&self) -> u64 {
        self.fast_path_statements
    }

    /// How many prepared queries this session has run through their cached plans, for diagnostics and
    /// tests.
    pub fn cached_plan_executions(&self) -> u64 {
        self.cached_plan_executions
    }

    fn fast_result(&mut self, outcome: FastOutcome) -> QueryResult {
        self.fast_path_statements += 1;
        match outcome {
            FastOutcome::Rows(schema, batches) => {
                QueryResult::stream(memory_stream(schema, batches), self.shared.clone())
            }
            FastOutcome::Command(tag, count) => {
                QueryResult::command(StatementOutcome::command(tag, count))
            }
        }
    }

    /// Binds parameters, then runs the statement under the transaction rules in the module docs.
    pub(crate) async fn execute_statement(
        &mut self,
        statement: Statement,
        params: &[Param],
    ) -> Result<QueryResult> {
        self.execute_statement_with(statement, params, None).await
    }

    /// [`Session::execute_statement`], for a prepared statement with its plan cache: a query then binds
    /// its parameters into its cached plan (`sql/plan_cache.rs`) rather than into its syntax tree.
    async fn execute_statement_with(
        &mut self,
        statement: Statement,
        params: &[Param],
        plan_slot: Option<&crate::sql::plan_cache::PlanSlot>,
    ) -> Result<QueryResult> {
        self.shared.notices.lock().clear();
        let mut result = self
            .execute_statement_quietly(statement, params, plan_slot)
            .await;
        let notices = std::mem::take(&mut *self.shared.notices.lock());
        if let Ok(result) = &mut result {
            result.set_notices(notices);
        }
        result
    }

    /// [`Session::execute_statement`] without collecting its notices.
    async fn execute_statement_quietly(
        &mut self,
        mut statement: Statement,
        params: &[Param],
        plan_slot: Option<&crate::sql::plan_cache::PlanSlot>,
    ) -> Result<QueryResult> {
        // A prepared query binds its parameters when it runs (`run_prepared_query`).
        let prepared_query = match plan_slot {
            Some(slot) if matches!(statement, Statement::Query(_)) => Some((slot, params)),
            _ => None,
        };
        if prepared_query.is_none() {
            bind_parameters(&mut statement, params)?;
        }
        if std::mem::take(&mut self.shared.state.lock().stream_failed)
            && let Some(block) = &mut self.block
        {
            block.aborted = true;
        }
        if let Some(outcome) = self.transaction_control(&statement)? {
            return Ok(QueryResult::command(outcome));
        }
        if self.transaction_failed() {
            return Err(aborted_error());
        }
        if let Some(outcome) = self.database_command(&statement)? {
            return Ok(QueryResult::command(outcome));
        }
        let implicit = self.block.is_none();
        self.ensure_transaction()?;
        if !implicit && self.isolation()? == Isolation::ReadCommitted {
            self.refresh_statement_snapshot()?;
        }
        let before = self.statement_savepoint()?;
        let deadline = self
            .statement_timeout
            .map(|timeout| tokio::time::Instant::now() + timeout);
        let mut attempts = 0;
        // Only a statement that writes or locks rows can meet a row another transaction holds and be
        // run again; a query runs once, without a copy kept for a re-run.
        let mut pending = Some(statement);
        let result = loop {
            let current = pending.take().expect("a statement to run");
            // A locking query (`FOR UPDATE`) waits for rows as a write does, and runs again.
            let rerun = match &current {
                Statement::Query(query) if query.locks.is_empty() => None,
                other => Some(other.clone()),
            };
            let result = self
                .dispatch_guarded(current, deadline, prepared_query)
                .await
                .map(|mut result| {
                    result.set_deadline(deadline);
                    result.set_cancel(self.cancel.clone());
                    result
                });
            match result {
                Err(error) if rerun.is_some() && attempts < STATEMENT_RESTARTS_MAX => {
                    attempts += 1;
                    match self.restart_after_conflict(&error, &before, deadline).await {
                        Ok(true) => pending = rerun,
                        Ok(false) => break Err(error),
                        Err(other) => break Err(other),
                    }
                }
                other => break other,
            }
        };
        let result = match result {
            Ok(result) if implicit => self.commit_transaction().map(|()| result),
            other => other,
        };
        match result {
            Ok(result) => {
                self.shared.state.lock().locals.clear();
                Ok(result)
            }
            Err(error) => {
                self.fail_statement_writes(implicit, before);
                Err(error)
            }
        }
    }

    /// The level new transactions run at (`default_transaction_isolation`).
    fn default_isolation(&self) -> Result<Isolation> {
        Isolation::parse(&setting(&self.shared, "default_transaction_isolation")?)
    }

    /// The level of the current transaction.
    fn isolation(&self) -> Result<Isolation> {
        match &self.block {
            Some(block) => Ok(block.isolation),
            None => self.default_isolation(),
        }
    }

    fn show_isolation(&self, isolation: Isolation) {
        self.shared
            .settings
            .lock()
            .insert("transaction_isolation".into(), isolation.name().into());
    }

    /// READ COMMITTED: a statement of a block reads what was committed before it began. Moves the
    /// transaction's snapshot forward, and its catalog with it unless the transaction changed the
    /// catalog itself (its own DDL stays; a concurrent DDL then conflicts at commit).
    fn refresh_statement_snapshot(&mut self) -> Result<()> {
        let mut state = self.shared.state.lock();
        let transaction = state.transaction()?;
        // Nothing committed since the last statement: same snapshot, same catalog.
        if !transaction.refresh_snapshot()? {
            return Ok(());
        }
        let changed_catalog = transaction.writes_key(
            &qubedb_model::keys::Key::Meta(qubedb_model::keys::Meta::CatalogVersion).encode(),
        );
        if !changed_catalog {
            let catalog = self.shared.database.catalog_for(state.transaction()?)?;
            state.catalog = catalog;
        }
        Ok(())
    }

    /// After a statement failed on a row another transaction is writing (55P03) or has committed
    /// since the statement's snapshot (40001 from a write): rolls the statement's writes back, waits
    /// for the other transaction to end, and tells whether to run the statement again. READ COMMITTED
    /// runs it again on a fresh snapshot; REPEATABLE READ runs it again on the same snapshot after a
    /// wait (the other transaction may have rolled back) and fails when the row was committed since.
    async fn restart_after_conflict(
        &mut self,
        error: &Error,
        before: &(qubedb_kv::Savepoint, Arc<Catalog>),
        deadline: Option<tokio::time::Instant>,
    ) -> Result<bool> {
        if !matches!(error.code, "55P03" | "40001") {
            return Ok(false);
        }
        let isolation = self.isolation()?;
        let (wait, write_conflict) = {
            let mut state = self.shared.state.lock();
            let Some(transaction) = state.transaction.as_mut() else {
                return Ok(false);
            };
            transaction.rollback_to(&before.0);
            let wait = transaction.take_lock_wait();
            let write_conflict = transaction.take_write_conflict();
            state.catalog = before.1.clone();
            state.locals.clear();
            (wait, write_conflict)
        };
        match wait {
            Some(wait) => {
                let ended = async {
                    loop {
                        let wait = wait.clone();
                        let ended = tokio::task::spawn_blocking(move || {
                            wait.wait(std::time::Duration::from_millis(200))
                        })
                        .await
                        .unwrap_or(true);
                        if ended {
                            break;
                        }
                    }
                };
                let cancel = self.cancel.clone();
                let outcome = tokio::select! {
                    () = ended => Ok(()),
                    () = cancel.cancelled() => Err(canceled_error()),
                    () = async {
                        match deadline {
                            Some(deadline) => tokio::time::sleep_until(deadline).await,
                            None => std::future::pending().await,
                        }
                    } => Err(statement_timeout_error()),
                };
                if let Some(transaction) = self.shared.state.lock().transaction.as_mut() {
                    transaction.stop_waiting();
                }
                outcome?;
            }
            None if write_conflict && isolation == Isolation::ReadCommitted => {}
            None => return Ok(false),
        }
        if isolation == Isolation::ReadCommitted {
            self.refresh_statement_snapshot()?;
        }
        Ok(true)
    }

    /// Runs one statement under its deadline and the session's cancel handle; a panic (a bug, in
    /// QubeDB or DataFusion) fails the statement instead of the process.
    async fn dispatch_guarded(
        &mut self,
        statement: Statement,
        deadline: Option<tokio::time::Instant>,
        prepared_query: Option<(&crate::sql::plan_cache::PlanSlot, &[Param])>,
    ) -> Result<QueryResult> {
        let cancel = self.cancel.clone();
        // Boxed: the statement's future is large (DataFusion's planning futures), and moving it into
        // the timeout and cancel wrappers by value would copy it through the stack.
        let dispatched = Box::pin(
            AssertUnwindSafe(async {
                match (statement, prepared_query) {
                    (Statement::Query(query), Some((slot, params))) => {
                        self.run_prepared_query(*query, params, slot).await
                    }
                    (statement, _) => self.dispatch(statement).await,
                }
            })
            .catch_unwind(),
        );
        let limited = async {
            match deadline {
                None => dispatched.await,
                Some(deadline) => tokio::time::timeout_at(deadline, dispatched)
                    .await
                    .unwrap_or_else(|_| Ok(Err(statement_timeout_error()))),
            }
        };
        let result = tokio::select! {
            result = limited => result,
            () = cancel.cancelled() => Ok(Err(canceled_error())),
        };
        result.unwrap_or_else(|panic| Err(panic_error(panic.as_ref())))
    }

    fn statement_savepoint(&self) -> Result<(qubedb_kv::Savepoint, Arc<Catalog>)> {
        let mut state = self.shared.state.lock();
        let catalog = state.catalog.clone();
        Ok((state.transaction()?.savepoint(), catalog))
    }

    /// Begins a storage transaction if none is open, with the catalog its snapshot sees.
    pub(crate) fn ensure_transaction(&mut self) -> Result<()> {
        let mut state = self.shared.state.lock();
        if state.transaction.is_some() {
            return Ok(());
        }
        let transaction = self.shared.database.store.begin()?;
        state.catalog = self.shared.database.catalog_for(&transaction)?;
        state.transaction = Some(transaction);
        Ok(())
    }

    fn commit_transaction(&mut self) -> Result<()> {
        let transaction = self.shared.state.lock().transaction.take();
        if let Some(transaction) = transaction {
            // Counted as in flight from here until `hnsw_written` drops, applied or not.
            let hnsw_written = self.shared.database.hnsw_commit_keys(&transaction);
            transaction.commit()?;
            let database = &self.shared.database;
            database.hnsw_apply(&hnsw_written)?;
            drop(hnsw_written);
            let catalog = self.shared.state.lock().catalog.clone();
            database.auto_analyze.start_due(database, &catalog);
        }
        Ok(())
    }

    pub(crate) fn rollback_transaction(&mut self) {
        let mut state = self.shared.state.lock();
        state.transaction = None;
        state.locals.clear();
    }

    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE; `None` for every other statement.
    /// `CREATE DATABASE` and `DROP DATABASE`: they change the data directory, not this database, and
    /// like PostgreSQL's they cannot run inside a transaction block.
    fn database_command(&mut self, statement: &Statement) -> Result<Option<StatementOutcome>> {
        let current_user = self.current_user();
        if crate::roles::is_role_statement(statement) {
            if self.block.is_some() {
                return Err(Error::user(
                    "25001",
                    format!(
                        "{} cannot run inside a transaction block in QubeDB (roles commit on their own)",
                        statement_kind(statement)
                    ),
                ));
            }
            return crate::roles::execute(&self.shared, &current_user, statement);
        }
        let (tag, names, if_exists) = match statement {
            Statement::CreateDatabase {
                db_name,
                if_not_exists,
                ..
            } => (
                "CREATE DATABASE",
                std::slice::from_ref(db_name),
                *if_not_exists,
            ),
            Statement::Drop {
                object_type: ObjectType::Database,
                names,
                if_exists,
                ..
            } => ("DROP DATABASE", names.as_slice(), *if_exists),
            _ => return Ok(None),
        };
        if self.block.is_some() {
            return Err(Error::user(
                "25001",
                format!("{tag} cannot run inside a transaction block"),
            ));
        }
        let [name] = names else {
            return Err(Error::user(
                "42601",
                format!("{tag} takes exactly one database name"),
            ));
        };
        let name = match crate::sql::rewrite::parts(name)?.as_slice() {
            [name] => name.clone(),
            _ => {
                return Err(Error::user(
                    "42601",
                    format!("improper database name: {name}"),
                ));
            }
        };
        let cluster = &self.shared.database.cluster;
        if !cluster.may_create_databases(&current_user) {
            return Err(Error::user(
                "42501",
                if tag == "CREATE DATABASE" {
                    "permission denied to create database".to_string()
                } else {
                    format!("must be owner of database {name}")
                },
            ));
        }
        let result = if tag == "CREATE DATABASE" {
            cluster.create_database(&name)
        } else {
            cluster.drop_database(&name, Some(&self.shared.database.name))
        };
        match result {
            // `IF NOT EXISTS` / `IF EXISTS`: PostgreSQL notices and carries on.
            Err(error) if if_exists && matches!(error.code, "42P04" | "3D000") => {
                self.shared
                    .notice(error.code, format!("{}, skipping", error.message));
            }
            other => other?,
        }
        Ok(Some(StatementOutcome::command(tag, 0)))
    }

    fn transaction_control(&mut self, statement: &Statement) -> Result<Option<StatementOutcome>> {
        let outcome = match statement {
            Statement::StartTransaction { modes, .. } => {
                let requested = check_isolation(modes)?;
                if self.block.is_some() {
                    self.shared
                        .warning("25001", "there is already a transaction in progress");
                    return Ok(Some(StatementOutcome::command("BEGIN", 0)));
                }
                let isolation = match requested {
                    Some(isolation) => isolation,
                    None => self.default_isolation()?,
                };
                self.ensure_transaction()?;
                self.block = Some(Block {
                    aborted: false,
                    savepoints: Vec::new(),
                    isolation,
                });
                self.show_isolation(isolation);
                StatementOutcome::command("BEGIN", 0)
            }
            Statement::Commit { chain, .. } => {
                if *chain {
                    return Err(Error::not_supported("COMMIT AND CHAIN"));
                }
                match self.block.take() {
                    None => {
                        self.shared
                            .warning("25P01", "there is no transaction in progress");
                        StatementOutcome::command("COMMIT", 0)
                    }
                    Some(block) if block.aborted => {
                        self.rollback_transaction();
                        StatementOutcome::command("ROLLBACK", 0)
                    }
                    Some(_) => {
                        self.commit_transaction()?;
                        StatementOutcome::command("COMMIT", 0)
                    }
                }
            }
            Statement::Rollback { chain, savepoint } => {
                if *chain {
                    return Err(Error::not_supported("ROLLBACK AND CHAIN"));
                }
                match savepoint {
                    None => {
                        if self.block.take().is_none() {
                            self.shared
                                .warning("25P01", "there is no transaction in progress");
                        }
                        self.rollback_transaction();
                        StatementOutcome::command("ROLLBACK", 0)
                    }
                    Some(name) => {
                        let name = name.value.to_lowercase();
                        let block = self.block.as_mut().ok_or_else(|| {
                            Error::user(
                                "25P01",
                                "ROLLBACK TO SAVEPOINT can only be used in transaction blocks",
                            )
                        })?;
                        let position = block
                            .savepoints
                            .iter()
                            .rposition(|entry| entry.name == name)
                            .ok_or_else(|| missing_savepoint(&name))?;
                        block.savepoints.truncate(position + 1);
                        block.aborted = false;
                        let entry = &block.savepoints[position];
                        let mut state = self.shared.state.lock();
                        state.transaction()?.rollback_to(&entry.storage);
                        state.catalog = entry.catalog.clone();
                        StatementOutcome::command("ROLLBACK", 0)
                    }
                }
            }
            Statement::Savepoint { name } => {
                let block = self.block.as_mut().ok_or_else(|| {
                    Error::user("25P01", "SAVEPOINT can only be used in transaction blocks")
                })?;
                if block.aborted {
                    return Err(aborted_error());
                }
                let mut state = self.shared.state.lock();
                let catalog = state.catalog.clone();
                let storage = state.transaction()?.savepoint();
                block.savepoints.push(SavepointEntry {
                    name: name.value.to_lowercase(),
                    storage,
                    catalog,
                });
                StatementOutcome::command("SAVEPOINT", 0)
            }
            Statement::ReleaseSavepoint { name } => {
                let name = name.value.to_lowercase();
                let block = self.block.as_mut().ok_or_else(|| {
                    Error::user(
                        "25P01",
                        "RELEASE SAVEPOINT can only be used in transaction blocks",
                    )
                })?;
                if block.aborted {
                    return Err(aborted_error());
                }
                let position = block
                    .savepoints
                    .iter()
                    .rposition(|entry| entry.name == name)
                    .ok_or_else(|| missing_savepoint(&name))?;
                block.savepoints.truncate(position);
                StatementOutcome::command("RELEASE", 0)
            }
            _ => return Ok(None),
        };
        // Outside a block, `transaction_isolation` shows the level the next transaction gets.
        if self.block.is_none() {
            self.show_isolation(self.default_isolation()?);
        }
        Ok(Some(outcome))
    }

    /// Executes one statement inside the open transaction.
    async fn dispatch(&mut self, statement: Statement) -> Result<QueryResult> {
        if self.fast_path && fast::is_candidate(&statement) {
            let catalog = self.shared.state.lock().catalog.clone();
            if let Some(plan) = fast::plan(&statement, &catalog, &self.shared.temp_schema) {
                let database = self.shared.database.clone();
                let vector_settings = matches!(plan, fast::FastPlan::Nearest { .. })
                    .then(|| crate::sql::provider::VectorSettings::of(&self.shared));
                let outcome = self.with_state(|state| {
                    fast::execute(
                        &plan,
                        &[],
                        state.transaction()?,
                        &catalog,
                        &database,
                        vector_settings,
                    )
                })?;
                if let Some(outcome) = outcome {
                    return Ok(self.fast_result(outcome));
                }
            }
        }
        match statement {
            Statement::Query(query) if !query.locks.is_empty() => self.select_locking(*query).await,
            Statement::Query(query) => self.run_query(*query).await,
            Statement::Insert(insert) => self.insert(insert).await,
            Statement::Update(update) => self.update(update).await,
            Statement::Delete(delete) => self.delete(delete).await,
            Statement::Explain {
                statement,
                analyze,
                verbose,
                format,
                ..
            } => {
                if format.is_some() {
                    return Err(Error::not_supported("EXPLAIN with FORMAT"));
                }
                match *statement {
                    Statement::Query(query) => self.explain(*query, analyze, verbose).await,
                    other => Err(Error::not_supported(format!(
                        "EXPLAIN of {}",
                        statement_kind(&other)
                    ))),
                }
            }
            Statement::Copy {
                source,
                to,
                target,
                options,
                legacy_options,
                values: _,
            } => {
                let format = crate::sql::copy::CopyFormat::from_options(&options, &legacy_options)?;
                if to {
                    return self.copy_to(source, target, format).await;
                }
                let (table, columns) = crate::sql::copy::copy_from_parts(source)?;
                let data = self.copy_data.take();
                let outcome = self.copy_from(table, columns, target, format, data).await?;
                Ok(QueryResult::command(outcome))
            }
            Statement::Set(set) => self.set(set),
            Statement::Reset(reset) => {
                match reset.reset {
                    ast::Reset::ALL => {
                        // The transaction's isolation is not a session setting RESET ALL touches.
                        let names: Vec<String> = self
                            .shared
                            .settings
                            .lock()
                            .keys()
                            .filter(|name| *name != "transaction_isolation")
                            .cloned()
                            .collect();
                        for name in names {
                            self.reset_variable(&name)?;
                        }
                    }
                    ast::Reset::ConfigurationParameter(name) => {
                        self.reset_variable(&name.to_string().to_lowercase())?
                    }
                }
                Ok(QueryResult::command(StatementOutcome::command("RESET", 0)))
            }
            Statement::Vacuum(vacuum) => self.vacuum(&vacuum),
            Statement::Analyze(analyze) => self.analyze(&analyze).await,
            Statement::ShowVariable { variable } => self.show(&variable),
            statement @ (Statement::CreateTable(_)
            | Statement::CreateView(_)
            | Statement::CreateSchema { .. }
            | Statement::CreateSequence { .. }
            | Statement::CreateIndex(_)
            | Statement::Drop { .. }
            | Statement::AlterTable(_)
            | Statement::Truncate(_)
            | Statement::CreateExtension(_)
            | Statement::CreateType { .. }
            | Statement::CreateDomain(_)
            | Statement::DropDomain(_)) => self.ddl(statement).await,
            other => Err(Error::not_supported(format!(
                "statement {}",
                statement_kind(&other)
            ))),
        }
    }

    /// Plans a query with DataFusion after QubeDB's rewrites, and returns its result stream.
    pub(crate) async fn run_query(&mut self, query: Query) -> Result<QueryResult> {
        let plan = self.plan_query(query).await?;
        let frame = self.context.execute_logical_plan(plan).await?;
        let task_context = frame.task_ctx();
        let physical =
            crate::sql::checked::checked_arithmetic(frame.create_physical_plan().await?)?;
        let stream = datafusion::physical_plan::execute_stream(physical, Arc::new(task_context))?;
        let stream = restore_duplicate_names(stream)?;
        Ok(QueryResult::stream(stream, self.shared.clone()))
    }

    /// The logical plan of a query after QubeDB's rewrites (placeholders left in place).
    pub(crate) async fn plan_query(
        &mut self,
        mut query: Query,
    ) -> Result<datafusion::logical_expr::LogicalPlan> {
        reject_locking(&query)?;
        {
            let state = self.shared.state.lock();
            let locals = state.locals.keys().cloned().collect();
            rewrite::rewrite_query(&mut query, &state.catalog, &self.shared.temp_schema, locals)?;
        }
        Ok(self
            .context
            .state()
            .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
                Statement::Query(Box::new(query)),
            )))
            .await?)
    }

    /// Runs an internal query to completion.
    pub(crate) async fn collect_query(
        &mut self,
        query: Query,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let result = self.run_query(query).await?;
        result.collect_batches().await
    }

    async fn explain(&mut self, query: Query, analyze: bool, verbose: bool) -> Result<QueryResult> {
        let plan = self.explain_plan(query, analyze, verbose).await?;
        let frame = self.context.execute_logical_plan(plan).await?;
        let stream = frame.execute_stream().await?;
        Ok(QueryResult::stream(stream, self.shared.clone()))
    }

    /// The logical plan of `EXPLAIN [ANALYZE] [VERBOSE] query`.
    pub(crate) async fn explain_plan(
        &mut self,
        mut query: Query,
        analyze: bool,
        verbose: bool,
    ) -> Result<datafusion::logical_expr::LogicalPlan> {
        {
            let state = self.shared.state.lock();
            let locals = state.locals.keys().cloned().collect();
            rewrite::rewrite_query(&mut query, &state.catalog, &self.shared.temp_schema, locals)?;
        }
        let plan = self
            .context
            .state()
            .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
                Statement::Explain {
                    describe_alias: ast::DescribeAlias::Explain,
                    analyze,
                    verbose,
                    query_plan: false,
                    estimate: false,
                    statement: Box::new(Statement::Query(Box::new(query))),
                    format: None,
                    options: None,
                },
            )))
            .await?;
        Ok(plan)
    }

    fn set(&mut self, set: ast::Set) -> Result<QueryResult> {
        match set {
            ast::Set::SingleAssignment {
                variable, values, ..
            } if matches!(values.as_slice(), [SqlExpr::Identifier(word)]
                if word.quote_style.is_none() && word.value.eq_ignore_ascii_case("default")) =>
            {
                self.reset_variable(&variable.to_string().to_lowercase())?;
            }
            ast::Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = variable.to_string().to_lowercase();
                let value = values
                    .iter()
                    .map(|value| match value {
                        SqlExpr::Value(value) => match &value.value {
                            ast::Value::SingleQuotedString(text) => text.clone(),
                            other => other.to_string(),
                        },
                        SqlExpr::Identifier(identifier) => identifier.value.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                self.set_variable(&name, value)?;
            }
            ast::Set::SetTimeZone { value, .. } => {
                let value = match value {
                    SqlExpr::Value(value) => match value.value {
                        ast::Value::SingleQuotedString(text) => text,
                        other => other.to_string(),
                    },
                    other => other.to_string(),
                };
                self.set_variable("timezone", value)?;
            }
            ast::Set::SetTransaction { modes, .. } => {
                if let Some(isolation) = check_isolation(&modes)?
                    && let Some(block) = &mut self.block
                {
                    block.isolation = isolation;
                    self.show_isolation(isolation);
                }
            }
            ast::Set::SetNames { charset_name, .. } => {
                self.set_variable("client_encoding", charset_name.to_string())?
            }
            other => return Err(Error::not_supported(format!("SET form \"{other}\""))),
        }
        Ok(QueryResult::command(StatementOutcome::command("SET", 0)))
    }

    /// `RESET name` (and `SET name TO DEFAULT`): a setting with a default gets it back; one without (a
    /// name only SET made) is forgotten.
    fn reset_variable(&mut self, name: &str) -> Result<()> {
        let name = if name == "time zone" {
            "timezone"
        } else {
            name
        };
        match DEFAULT_SETTINGS.iter().find(|(known, _)| *known == name) {
            Some((_, default)) => self.set_variable(name, default.to_string()),
            None => {
                self.shared.settings.lock().remove(name);
                Ok(())
            }
        }
    }

    fn set_variable(&mut self, name: &str, value: String) -> Result<()> {
        match name {
            "hnsw.ef_search" | "hnsw.max_scan_tuples" | "hnsw.scan_mem_multiplier" => {
                let (low, high) = match name {
                    "hnsw.ef_search" => (1, 1000),
                    "hnsw.max_scan_tuples" => (1, i64::from(i32::MAX)),
                    _ => (1, 1000),
                };
                let trimmed = value.trim().trim_matches('\'');
                let parsed: i64 = trimmed.parse().map_err(|_| {
                    Error::user(
                        "22023",
                        format!("invalid value for parameter \"{name}\": \"{value}\""),
                    )
                })?;
                if !(low..=high).contains(&parsed) {
                    return Err(Error::user(
                        "22023",
                        format!(
                            "{parsed} is outside the valid range for parameter \"{name}\" ({low} .. {high})"
                        ),
                    ));
                }
                self.shared
                    .settings
                    .lock()
                    .insert(name.into(), parsed.to_string());
            }
            "hnsw.iterative_scan" => {
                let mode = value.trim().trim_matches('\'').to_lowercase();
                if !["off", "relaxed_order", "strict_order"].contains(&mode.as_str()) {
                    return Err(Error::user(
                        "22023",
                        format!("invalid value for parameter \"{name}\": \"{value}\""),
                    )
                    .with_hint("Available values: off, relaxed_order, strict_order."));
                }
                self.shared.settings.lock().insert(name.into(), mode);
            }
            "enable_seqscan" => {
                let flag = match value.trim().trim_matches('\'').to_lowercase().as_str() {
                    "on" | "true" | "1" | "yes" => "on",
                    "off" | "false" | "0" | "no" => "off",
                    _ => {
                        return Err(Error::user(
                            "22023",
                            format!("parameter \"{name}\" requires a Boolean value"),
                        ));
                    }
                };
                self.shared.settings.lock().insert(name.into(), flag.into());
            }
            "timezone" | "time zone" => {
                let upper = value.to_uppercase();
                if !["UTC", "GMT", "Z", "+00", "+00:00", "ETC/UTC", "0"].contains(&upper.as_str()) {
                    return Err(Error::not_supported(format!(
                        "time zone \"{value}\" (sessions run in UTC)"
                    )));
                }
                self.shared
                    .settings
                    .lock()
                    .insert("timezone".into(), "UTC".into());
            }
            "transaction_isolation" | "default_transaction_isolation" => {
                let isolation = Isolation::parse(&value)?;
                if name == "transaction_isolation"
                    && let Some(block) = &mut self.block
                {
                    block.isolation = isolation;
                }
                self.shared
                    .settings
                    .lock()
                    .insert(name.into(), isolation.name().into());
            }
            "client_encoding" | "names" => {
                let upper = value.to_uppercase().replace(['-', '\''], "");
                if upper != "UTF8" && upper != "UNICODE" {
                    return Err(Error::user(
                        "22023",
                        format!("encoding \"{value}\" is not supported: QubeDB speaks UTF8"),
                    ));
                }
            }
            "statement_timeout" => {
                let milliseconds = parse_duration_ms(&value).ok_or_else(|| {
                    Error::user(
                        "22023",
                        format!("invalid value for parameter \"statement_timeout\": \"{value}\""),
                    )
                })?;
                self.statement_timeout =
                    (milliseconds > 0).then(|| std::time::Duration::from_millis(milliseconds));
                self.shared
                    .settings
                    .lock()
                    .insert(name.into(), display_duration_ms(milliseconds));
            }
            "qubedb.fast_path" => {
                self.fast_path = match value.to_lowercase().trim_matches('\'') {
                    "on" | "true" | "1" | "yes" => true,
                    "off" | "false" | "0" | "no" => false,
                    _ => {
                        return Err(Error::user(
                            "22023",
                            format!(
                                "parameter \"qubedb.fast_path\" requires a Boolean value, not \"{value}\""
                            ),
                        ));
                    }
                };
                self.shared.settings.lock().insert(
                    name.into(),
                    if self.fast_path { "on" } else { "off" }.into(),
                );
            }
            "synchronous_commit" => {
                let level = value.to_lowercase();
                if !["on", "off", "local", "remote_write", "remote_apply"].contains(&level.as_str())
                {
                    return Err(Error::user(
                        "22023",
                        format!("invalid value for parameter \"synchronous_commit\": \"{value}\""),
                    ));
                }
                self.shared.settings.lock().insert(name.into(), level);
            }
            _ => {
                self.shared.settings.lock().insert(name.to_string(), value);
            }
        }
        Ok(())
    }

    fn show(&mut self, variable: &[ast::Ident]) -> Result<QueryResult> {
        let name = shown_setting(variable);
        if name == "all" {
            let rows: Vec<(String, String)> = self
                .shared
                .settings
                .lock()
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            return QueryResult::text_rows(
                &["name", "setting"],
                rows.into_iter().map(|(a, b)| vec![a, b]).collect(),
            );
        }
        let value = setting(&self.shared, &name)?;
        QueryResult::text_rows(&[name.as_str()], vec![vec![value]])
    }

    /// Registers a table visible to the current statement only.
    pub(crate) fn register_local(&self, name: &str, table: Arc<dyn TableProvider>) {
        self.shared
            .state
            .lock()
            .locals
            .insert(name.to_string(), table);
    }

    /// Runs `f` with the transaction state locked.
    pub(crate) fn with_state<T>(
        &self,
        f: impl FnOnce(&mut TransactionState) -> Result<T>,
    ) -> Result<T> {
        let mut state = self.shared.state.lock();
        f(&mut state)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // An open transaction is rolled back: dropping it discards its writes.
        self.shared.state.lock().transaction = None;
        // Temporary tables end with the session (if this fails, the next open drops them).
        if self
            .shared
            .temp_schema_made
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            let _ =
                crate::sql::temp::drop_schema_now(&self.shared.database, &self.shared.temp_schema);
        }
    }
}

/// 25P02: a statement in a block that an error aborted.
pub(crate) fn aborted_error() -> Error {
    Error::user(
        "25P02",
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

/// 3B001: ROLLBACK TO / RELEASE of a savepoint that does not exist.
fn missing_savepoint(name: &str) -> Error {
    Error::user("3B001", format!("savepoint \"{name}\" does not exist"))
}

/// The error for a panic caught while executing a statement.
/// The value of setting `name` (lower case), or 42704 for a setting that does not exist.
pub(crate) fn setting(shared: &Shared, name: &str) -> Result<String> {
    shared.settings.lock().get(name).cloned().ok_or_else(|| {
        Error::user(
            "42704",
            format!("unrecognized configuration parameter \"{name}\""),
        )
    })
}

/// The error of a statement stopped by `statement_timeout`.
pub(crate) fn canceled_error() -> Error {
    Error::user("57014", "canceling statement due to user request")
}

/// Cancels what a session is running, from anywhere (a server's CancelRequest arrives on another
/// connection). A request while nothing runs is ignored, as PostgreSQL ignores it.
#[derive(Clone, Default)]
pub struct CancelHandle {
    notify: Arc<tokio::sync::Notify>,
}

impl CancelHandle {
    /// Cancels the statement running now (and the reading of its rows), which fails with 57014.
    pub fn cancel(&self) {
        self.notify.notify_waiters();
    }

    /// Completes when [`CancelHandle::cancel`] is called after this future was first polled.
    pub(crate) async fn cancelled(&self) {
        self.notify.notified().await;
    }
}

pub(crate) fn statement_timeout_error() -> Error {
    Error::user("57014", "canceling statement due to statement timeout")
}

/// A duration setting in milliseconds: a bare number is milliseconds, or a number with a unit
/// (`us`, `ms`, `s`, `min`, `h`, `d`), as PostgreSQL reads `statement_timeout`.
fn parse_duration_ms(value: &str) -> Option<u64> {
    let text = value.trim().trim_matches('\'').trim();
    let split = text
        .find(|character: char| !(character.is_ascii_digit() || character == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    let milliseconds = (number * scale).round();
    (milliseconds >= 0.0 && milliseconds <= i32::MAX as f64).then_some(milliseconds as u64)
}

/// How PostgreSQL shows a duration setting: in the largest unit that divides it.
fn display_duration_ms(milliseconds: u64) -> String {
    if milliseconds == 0 {
        return "0".to_string();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1000),
    ] {
        if milliseconds.is_multiple_of(size) {
            return format!("{}{unit}", milliseconds / size);
        }
    }
    format!("{milliseconds}ms")
}

pub(crate) fn panic_error(panic: &(dyn std::any::Any + Send)) -> Error {
    let message = panic
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    Error::internal(format!(
        "internal error while executing the statement: {message}"
    ))
}

fn serializable_refused() -> Error {
    Error::user(
        "0A000",
        "isolation level SERIALIZABLE is not supported: QubeDB provides snapshot isolation (REPEATABLE READ)",
    )
}

/// The isolation level transaction modes ask for, if any.
fn check_isolation(modes: &[TransactionMode]) -> Result<Option<Isolation>> {
    let mut isolation = None;
    for mode in modes {
        if let TransactionMode::IsolationLevel(level) = mode {
            isolation = Some(match level {
                TransactionIsolationLevel::Serializable => return Err(serializable_refused()),
                TransactionIsolationLevel::ReadUncommitted
                | TransactionIsolationLevel::ReadCommitted => Isolation::ReadCommitted,
                TransactionIsolationLevel::RepeatableRead | TransactionIsolationLevel::Snapshot => {
                    Isolation::RepeatableRead
                }
            });
        }
    }
    Ok(isolation)
}

/// `FOR UPDATE` / `FOR SHARE` would need row locks joined to the conflict set; refuse rather than ignore.
fn reject_locking(query: &Query) -> Result<()> {
    /// Finds a query with a locking clause anywhere in a query.
    struct Locking;
    impl ast::Visitor for Locking {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> std::ops::ControlFlow<()> {
            if query.locks.is_empty() {
                std::ops::ControlFlow::Continue(())
            } else {
                std::ops::ControlFlow::Break(())
            }
        }
    }
    if ast::Visit::visit(query, &mut Locking).is_break() {
        return Err(Error::not_supported(
            "FOR UPDATE / FOR SHARE here (only on a top-level SELECT)",
        ));
    }
    Ok(())
}

/// A short name of a statement's kind for messages.
pub(crate) fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    words.join(" ").to_uppercase()
}

/// A result with one text column per name and the given rows.
/// The setting `SHOW variable` shows (`all` for every one), by its lower-case name.
pub(crate) fn shown_setting(variable: &[ast::Ident]) -> String {
    let name = variable
        .iter()
        .map(|part| part.value.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ");
    match name.as_str() {
        "time zone" => "timezone".to_string(),
        "transaction isolation level" => "transaction_isolation".to_string(),
        "session authorization" | "all" => name,
        // A dotted name (`hnsw.ef_search`, `qubedb.fast_path`) arrives in parts.
        _ => variable
            .iter()
            .map(|part| part.value.to_lowercase())
            .collect::<Vec<_>>()
            .join("."),
    }
}

/// The columns `SHOW variable` returns.
pub(crate) fn show_schema(variable: &[ast::Ident]) -> SchemaRef {
    let name = shown_setting(variable);
    if name == "all" {
        text_schema(&["name", "setting"])
    } else {
        text_schema(&[name.as_str()])
    }
}

pub(crate) fn text_schema(names: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .map(|name| Field::new(*name, datafusion::arrow::datatypes::DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

/// A stream over batches already in memory.
pub(crate) fn memory_stream(
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> SendableRecordBatchStream {
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter(batches.into_iter().map(Ok)),
    ))
}

/// Gives back the output names that were made unique for DataFusion (see `rewrite::DUPLICATE_NAME_MARKER`).
pub(crate) fn restore_duplicate_names(
    stream: SendableRecordBatchStream,
) -> Result<SendableRecordBatchStream> {
    let Some(renamed) = restored_names(&stream.schema()) else {
        return Ok(stream);
    };
    let output = renamed.clone();
    let batches = stream.map(move |batch| {
        let batch = batch?;
        Ok(RecordBatch::try_new(
            output.clone(),
            batch.columns().to_vec(),
        )?)
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(renamed, batches)))
}

/// `schema` with the names the rewrite made unique (see [`rewrite::DUPLICATE_NAME_MARKER`]) restored;
/// `None` when there are none.
pub(crate) fn restored_names(schema: &Schema) -> Option<SchemaRef> {
    let marker = crate::sql::rewrite::DUPLICATE_NAME_MARKER;
    if !schema
        .fields()
        .iter()
        .any(|field| field.name().contains(marker))
    {
        return None;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| {
            let name = field
                .name()
                .split(marker)
                .next()
                .unwrap_or_default()
                .to_string();
            field.as_ref().clone().with_name(name)
        })
        .collect();
    Some(Arc::new(Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    )))
}

/// Consumes a stream into batches.
pub(crate) async fn drain(mut stream: SendableRecordBatchStream) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        batches.push(batch?);
    }
    Ok(batches)
}
