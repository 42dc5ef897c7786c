//! [`Database`]: an open data directory (or an in-memory database) and what its sessions share — the store,
//! the catalog cache, the sequence cache and the async runtime DataFusion executes on.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use qubedb_kv::{Store, Synchronous};
use qubedb_model::catalog::{
    Catalog, IndexDef, SequenceDef, SequenceState, TableDef, read_sequence_state,
    write_sequence_state,
};

use crate::cluster::{Cluster, ClusterInner};
use crate::error::{Error, Result};
use crate::session::Session;

/// Sequence values reserved per durable write (PostgreSQL logs 32 ahead too): a crash skips at most these.
pub const SEQUENCE_RESERVE: i64 = 32;
/// Attempts of an autonomous sequence update before giving up on conflicts.
const SEQUENCE_ATTEMPTS_MAX: usize = 100;

/// Options for [`Database::open_with`] and [`Cluster::open_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DatabaseOptions {
    /// `Full` (default): a commit that returned is fsynced. `Normal`: fsynced within 200 ms.
    pub synchronous: Synchronous,
    /// Memory all queries of the data directory may hold in joins, aggregates and sorts; past it a query
    /// fails with 53200 instead of exhausting the machine. `None`: [`QUERY_MEMORY_BYTES_DEFAULT`].
    pub query_memory_bytes_max: Option<usize>,
}

/// Default of [`DatabaseOptions::query_memory_bytes_max`].
pub const QUERY_MEMORY_BYTES_DEFAULT: usize = 4 * 1024 * 1024 * 1024;

/// An open database. Cheap to clone; closes when the last clone and session are dropped.
#[derive(Clone)]
pub struct Database {
    inner: Arc<DatabaseInner>,
}

pub(crate) struct DatabaseInner {
    /// The data directory (or in-memory set of databases) this database belongs to.
    pub(crate) cluster: Arc<ClusterInner>,
    pub(crate) name: String,
    pub(crate) store: Store,
    pub(crate) runtime: Arc<QueryRuntime>,
    /// DataFusion's runtime environment, with the memory limit every session shares.
    pub(crate) runtime_environment: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    catalog_cache: Mutex<Arc<Catalog>>,
    sequences: Mutex<HashMap<u64, SequenceCache>>,
    /// Expression and partial indexes, compiled (shared by the write path and the planner).
    pub(crate) index_compiler: crate::sql::index_keys::IndexCompiler,
    /// Tables' changed rows, and the automatic ANALYZEs they start.
    pub(crate) auto_analyze: crate::sql::analyze::AutoAnalyze,
    /// Decoded ANALYZE statistics by table, with the stored bytes they came from: a scan reads the
    /// bytes (its snapshot's) and decodes them only when they differ from the cached ones.
    pub(crate) statistics_cache: Mutex<HashMap<u64, CachedStatistics>>,
    /// The number the next session gets (names its temporary schema, `sql/temp.rs`).
    session_numbers: std::sync::atomic::AtomicU64,
    /// The committed graph of each HNSW index used since the database opened, in memory
    /// (`qubedb_model::hnsw::Graph`): searches and inserts read it under their transaction's own
    /// writes, and each commit that writes an index's keys brings its graph up to date.
    hnsw_graphs: Mutex<HnswGraphs>,
}

/// The HNSW graphs in memory, and the count of commits in flight they share.
#[derive(Default)]
struct HnswGraphs {
    graphs: HashMap<u64, KeptGraph>,
    /// Commits between `hnsw_commit_keys` and the end of `hnsw_apply`.
    commits_in_flight: Arc<AtomicUsize>,
}

/// A graph in memory, with the table and column its nodes are of.
struct KeptGraph {
    graph: Arc<qubedb_model::hnsw::Graph>,
    table: u64,
    column: usize,
    /// Loaded while a commit was in flight, so it may lack that commit's nodes: used (never as exact)
    /// until the first use with no commit in flight loads it again.
    provisional: bool,
}

/// A commit's changes to the graphs in memory: per index, the keys it wrote in the index and
/// whether it deleted a row or set its vector to NULL. Counted as in flight until dropped.
pub(crate) struct HnswCommit {
    changes: Vec<(u64, Vec<Vec<u8>>, bool)>,
    in_flight: Option<Arc<AtomicUsize>>,
}

impl Drop for HnswCommit {
    fn drop(&mut self) {
        if let Some(count) = &self.in_flight {
            count.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// True when `row` (a stored row, `None` for a deleted one) holds a non-NULL value in slot `column`
/// (false when it is unreadable or predates the column: such a row is not vouched for).
fn holds_value_at(row: Option<&[u8]>, column: usize) -> bool {
    row.is_some_and(|row| matches!(qubedb_model::row::is_null_at(row, column), Ok(Some(false))))
}

/// True when every node of `graph` is of a row of `table` that `transaction` sees with a value in
/// `column` (the node's vector: an insert or update writes the node with the row).
fn every_node_has_its_row(
    transaction: &qubedb_kv::Transaction,
    table: &TableDef,
    column: usize,
    graph: &qubedb_model::hnsw::Graph,
) -> Result<bool> {
    let state = graph.state.read();
    let prefix_length = qubedb_model::keys::Key::row_prefix(table.id).len();
    let mut matched = 0;
    for item in transaction.scan(qubedb_model::keys::Key::row_range(table.id), false)? {
        let (key, row) = item?;
        if holds_value_at(Some(&row), column)
            && key
                .get(prefix_length..)
                .is_some_and(|primary_key| state.nodes.contains_key(primary_key))
        {
            matched += 1;
        }
    }
    Ok(matched == state.nodes.len())
}

/// A table's stored statistics bytes and their decoded form.
pub(crate) type CachedStatistics = (Vec<u8>, Arc<qubedb_model::catalog::TableStatistics>);

/// The runtime the blocking API drives DataFusion on. Dropped with `shutdown_background`, so the last
/// handle to a database may be dropped anywhere, also inside another async runtime.
pub(crate) struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl QueryRuntime {
    pub(crate) fn new(runtime: tokio::runtime::Runtime) -> QueryRuntime {
        QueryRuntime(Some(runtime))
    }
}

impl std::ops::Deref for QueryRuntime {
    type Target = tokio::runtime::Runtime;

    fn deref(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("the runtime is present until drop")
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Values of one sequence handed out from memory, up to what is durably reserved.
struct SequenceCache {
    last_value: i64,
    is_called: bool,
    /// The last value the stored state covers, and whether the stored state says it was handed out.
    reserved_until: i64,
    durable_is_called: bool,
}

impl Database {
    /// Opens (or creates) the data directory `directory` and returns its default database, `qubedb`
    /// (see [`Cluster`] for the other databases of a directory).
    pub fn open(directory: impl AsRef<Path>) -> Result<Database> {
        Self::open_with(directory, DatabaseOptions::default())
    }

    /// Opens (or creates) the data directory `directory` with `options`; returns its default database.
    pub fn open_with(directory: impl AsRef<Path>, options: DatabaseOptions) -> Result<Database> {
        Cluster::open_with(directory, options)?.default_database()
    }

    /// A database held in memory, gone when dropped.
    pub fn open_in_memory() -> Result<Database> {
        Cluster::open_in_memory()?.default_database()
    }

    pub(crate) fn from_inner(inner: Arc<DatabaseInner>) -> Database {
        Database { inner }
    }

    /// A new session.
    pub fn session(&self) -> Session {
        Session::new(self.inner.clone())
    }

    /// The database's name (`current_database()`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The data directory (or in-memory set of databases) the database belongs to.
    pub fn cluster(&self) -> Cluster {
        Cluster::from_inner(self.inner.cluster.clone())
    }

    /// Runs the automatic ANALYZEs scheduled so far without waiting out their delay, and waits until
    /// they have finished (they run in the background, a while after a commit changed enough rows of a
    /// table). Not from inside an async runtime.
    pub fn wait_for_maintenance(&self) {
        for task in self.inner.auto_analyze.hurry() {
            let _ = self.inner.runtime.block_on(task);
        }
    }

    /// A handle to the async runtime the blocking API runs queries on.
    pub fn runtime_handle(&self) -> tokio::runtime::Handle {
        self.inner.runtime.handle().clone()
    }
}

impl DatabaseInner {
    /// The open form of database `name` of `cluster`, stored in `store` (whose catalog is bootstrapped
    /// here if it is new).
    pub(crate) fn new(
        cluster: Arc<ClusterInner>,
        name: String,
        store: Store,
    ) -> Result<Arc<DatabaseInner>> {
        crate::cluster::bootstrap(&store)?;
        let inner = Arc::new(DatabaseInner {
            runtime: cluster.runtime.clone(),
            runtime_environment: cluster.runtime_environment.clone(),
            cluster,
            name,
            store,
            catalog_cache: Mutex::new(Arc::new(Catalog::default())),
            sequences: Mutex::new(HashMap::new()),
            index_compiler: Default::default(),
            statistics_cache: Mutex::new(HashMap::new()),
            hnsw_graphs: Mutex::new(HnswGraphs::default()),
            auto_analyze: Default::default(),
            session_numbers: std::sync::atomic::AtomicU64::new(1),
        });
        let reader = inner.store.begin()?;
        inner.catalog_for(&reader)?;
        drop(reader);
        crate::sql::temp::drop_leftover_schemas(&inner)?;
        Ok(inner)
    }

    /// A number no other session of this process has had.
    pub(crate) fn next_session_number(&self) -> u64 {
        self.session_numbers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// The last catalog loaded by any session.
    pub(crate) fn cached_catalog(&self) -> Arc<Catalog> {
        self.catalog_cache.lock().clone()
    }

    /// The catalog as `transaction` sees it: the cached one if its version matches, else loaded.
    pub(crate) fn catalog_for(&self, transaction: &qubedb_kv::Transaction) -> Result<Arc<Catalog>> {
        let version = Catalog::read_version(transaction)?;
        {
            let cache = self.catalog_cache.lock();
            if cache.version == version && cache.objects().next().is_some() {
                return Ok(cache.clone());
            }
        }
        let catalog = Arc::new(Catalog::load(transaction)?);
        let mut cache = self.catalog_cache.lock();
        if catalog.version >= cache.version {
            *cache = catalog.clone();
        }
        Ok(catalog)
    }

    /// Next value of a sequence. Sequences are not transactional (as in PostgreSQL): values handed out are
    /// never handed out again, even if the transaction that drew them rolls back.
    pub(crate) fn next_sequence_value(&self, sequence: &SequenceDef) -> Result<i64> {
        let mut sequences = self.sequences.lock();
        let cache = match sequences.entry(sequence.id) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let state = self.read_sequence(sequence)?;
                entry.insert(SequenceCache {
                    last_value: state.last_value,
                    is_called: state.is_called,
                    reserved_until: state.last_value,
                    durable_is_called: state.is_called,
                })
            }
        };
        let next = if cache.is_called {
            match cache.last_value.checked_add(sequence.increment) {
                Some(next) if next <= sequence.max_value && next >= sequence.min_value => next,
                _ if sequence.cycle => {
                    if sequence.increment > 0 {
                        sequence.min_value
                    } else {
                        sequence.max_value
                    }
                }
                _ => {
                    return Err(Error::user(
                        "2200H",
                        format!(
                            "nextval: reached {} value of sequence \"{}\" ({})",
                            if sequence.increment > 0 {
                                "maximum"
                            } else {
                                "minimum"
                            },
                            sequence.name,
                            if sequence.increment > 0 {
                                sequence.max_value
                            } else {
                                sequence.min_value
                            }
                        ),
                    ));
                }
            }
        } else {
            cache.last_value
        };
        let covered = cache.durable_is_called
            && if sequence.increment > 0 {
                next <= cache.reserved_until
            } else {
                next >= cache.reserved_until
            };
        if !covered {
            let reserve = next
                .saturating_add(sequence.increment.saturating_mul(SEQUENCE_RESERVE - 1))
                .clamp(sequence.min_value, sequence.max_value);
            self.write_sequence(
                sequence.id,
                SequenceState {
                    last_value: reserve,
                    is_called: true,
                },
            )?;
            cache.reserved_until = reserve;
            cache.durable_is_called = true;
        }
        cache.last_value = next;
        cache.is_called = true;
        Ok(next)
    }

    /// `setval`: sets the sequence's state durably.
    pub(crate) fn set_sequence_value(
        &self,
        sequence: &SequenceDef,
        value: i64,
        is_called: bool,
    ) -> Result<()> {
        if value < sequence.min_value || value > sequence.max_value {
            return Err(Error::user(
                "22003",
                format!(
                    "setval: value {value} is out of bounds for sequence \"{}\" ({}..{})",
                    sequence.name, sequence.min_value, sequence.max_value
                ),
            ));
        }
        let mut sequences = self.sequences.lock();
        self.write_sequence(
            sequence.id,
            SequenceState {
                last_value: value,
                is_called,
            },
        )?;
        sequences.insert(
            sequence.id,
            SequenceCache {
                last_value: value,
                is_called,
                reserved_until: value,
                durable_is_called: is_called,
            },
        );
        Ok(())
    }

    /// Forgets the cached state of a sequence (after DROP or RESTART).
    /// The committed graph of HNSW index `index` (over `table`), loaded from the store on first use.
    ///
    /// A commit lists the graphs it must update before it commits (`hnsw_commit_keys`), so a graph
    /// loaded while a commit is in flight could miss it: such a graph is kept as provisional (never
    /// exact) and loaded again at its first use with no commit in flight. A graph loaded then has its
    /// nodes checked against the rows, so searches can tell when it is exact
    /// (`qubedb_model::hnsw::Graph::reflects`).
    pub(crate) fn hnsw_graph(
        &self,
        table: &TableDef,
        index: &IndexDef,
    ) -> Result<Arc<qubedb_model::hnsw::Graph>> {
        let mut graphs = self.hnsw_graphs.lock();
        let in_flight = graphs.commits_in_flight.load(Ordering::SeqCst) > 0;
        if let Some(kept) = graphs.graphs.get(&index.id)
            && (!kept.provisional || in_flight)
        {
            return Ok(kept.graph.clone());
        }
        let fresh = self.store.begin()?;
        let mut graph = qubedb_model::hnsw::Graph::load(&fresh, index.id)?;
        let Some(&column) = index.columns.first() else {
            return Err(Error::internal("an HNSW index without a column"));
        };
        if !in_flight {
            let rows_verified = every_node_has_its_row(&fresh, table, column, &graph)?;
            graph.track_commits(graphs.commits_in_flight.clone(), rows_verified);
        }
        let graph = Arc::new(graph);
        graphs.graphs.insert(
            index.id,
            KeptGraph {
                graph: graph.clone(),
                table: table.id,
                column,
                provisional: in_flight,
            },
        );
        Ok(graph)
    }

    /// What `transaction` changed of the HNSW graphs held in memory, taken before it commits and
    /// applied by [`DatabaseInner::hnsw_apply`] after; the commit counts as in flight until the
    /// returned value is dropped.
    pub(crate) fn hnsw_commit_keys(&self, transaction: &qubedb_kv::Transaction) -> HnswCommit {
        let graphs = self.hnsw_graphs.lock();
        if transaction.is_read_only() {
            return HnswCommit {
                changes: Vec::new(),
                in_flight: None,
            };
        }
        graphs.commits_in_flight.fetch_add(1, Ordering::SeqCst);
        let changes = graphs
            .graphs
            .iter()
            .filter_map(|(&index, kept)| {
                let keys = transaction.buffered_keys(&qubedb_model::keys::Key::index_range(index));
                let rows_died = transaction
                    .buffered_writes(&qubedb_model::keys::Key::row_range(kept.table))
                    .any(|(_, value)| !holds_value_at(value, kept.column));
                (!keys.is_empty() || rows_died).then_some((index, keys, rows_died))
            })
            .collect();
        HnswCommit {
            changes,
            in_flight: Some(graphs.commits_in_flight.clone()),
        }
    }

    /// Brings the graphs in memory up to date with what a transaction committed: each key is read
    /// again from the latest commit (under the graph's lock, so a later commit's value is never
    /// replaced by an earlier one's).
    pub(crate) fn hnsw_apply(&self, commit: &HnswCommit) -> Result<()> {
        if commit.changes.is_empty() {
            return Ok(());
        }
        let fresh = self.store.begin()?;
        for (index, keys, rows_died) in &commit.changes {
            let graph = self
                .hnsw_graphs
                .lock()
                .graphs
                .get(index)
                .map(|kept| kept.graph.clone());
            if let Some(graph) = graph {
                graph.apply(&fresh, *index, keys, *rows_died)?;
            }
        }
        Ok(())
    }

    pub(crate) fn forget_sequence(&self, id: u64) {
        self.sequences.lock().remove(&id);
    }

    fn read_sequence(&self, sequence: &SequenceDef) -> Result<SequenceState> {
        let transaction = self.store.begin()?;
        Ok(
            read_sequence_state(&transaction, sequence.id)?.unwrap_or(SequenceState {
                last_value: sequence.start,
                is_called: false,
            }),
        )
    }

    fn write_sequence(&self, id: u64, state: SequenceState) -> Result<()> {
        for _ in 0..SEQUENCE_ATTEMPTS_MAX {
            let mut transaction = self.store.begin()?;
            write_sequence_state(&mut transaction, id, state)?;
            match transaction.commit() {
                Ok(()) => return Ok(()),
                Err(qubedb_kv::Error::Conflict) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::user(
            "40001",
            "could not update sequence state: too many concurrent updates",
        ))
    }
}
