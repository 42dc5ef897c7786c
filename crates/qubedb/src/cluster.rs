//! [`Cluster`]: a data directory holding several databases, PostgreSQL's "database cluster".
//!
//! Databases are isolated from each other: each has its own store, catalog and sequences, and a session
//! belongs to one database for its whole life (as a PostgreSQL connection does). On disk:
//!
//! ```text
//! DIR/qubedb.redb                   the default database, `qubedb` (what `Database::open(DIR)` opens)
//! DIR/databases/<oid>/name          every other database: its name (UTF-8, no newline) ...
//! DIR/databases/<oid>/qubedb.redb   ... and its store
//! ```
//!
//! A fresh directory holds `qubedb` and `postgres` (many tools connect to `postgres` first). The
//! default database cannot be dropped: its store holds the directory's lock, so one process owns the
//! whole cluster. Other names map to OIDs as in PostgreSQL (`postgres` is 5, new databases get
//! 16384 and up), and the OID names the directory, so a database's files never depend on its name.
//!
//! `CREATE DATABASE` builds `databases/<oid>.new/`, bootstraps its catalog and renames it into place,
//! so a crash leaves either no database or a whole one; `DROP DATABASE` renames the directory to
//! `<oid>.dropped` before deleting it. Leftovers of either are removed when the cluster opens. A fresh
//! directory's `databases/` is built as `databases.new/` with `postgres` inside, then renamed, and each store
//! file is created under a temporary name and linked into place (`qubedb_kv`), so a process killed during
//! the very first open leaves nothing a later open trips over.
//!
//! The cluster keeps the store of each database it opened until `DROP DATABASE` or until the cluster
//! closes (the last [`Database`] handle and session dropped): a store is opened once per process, and
//! a database nobody uses any more can be opened again at once. In memory ([`Cluster::open_in_memory`])
//! the same holds, the stores being redb's in-memory ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use qubedb_kv::{Store, StoreOptions};

use qubedb_model::catalog::RoleDef;

use crate::database::{Database, DatabaseInner, DatabaseOptions, QueryRuntime};
use crate::error::{Error, Result};

/// Name of the default database, the one at the top of the data directory.
pub const DEFAULT_DATABASE: &str = "qubedb";
/// The database a fresh cluster creates besides the default one.
pub const POSTGRES_DATABASE: &str = "postgres";
/// OID of the default database.
pub const DEFAULT_DATABASE_OID: u32 = 16_383;
/// OID of `postgres` (PostgreSQL's own).
const POSTGRES_DATABASE_OID: u32 = 5;
/// First OID of a database created by `CREATE DATABASE`.
const FIRST_USER_OID: u32 = 16_384;
/// Name of the store file inside a database's directory.
pub const STORE_FILE_NAME: &str = "qubedb.redb";
/// Folder of the databases other than the default one.
const DATABASES_FOLDER: &str = "databases";
/// File holding a database's name inside its folder.
const NAME_FILE: &str = "name";
/// How long DROP DATABASE waits for the sessions of the database to close.
const DROP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest database name, in bytes (PostgreSQL's NAMEDATALEN - 1).
const DATABASE_NAME_BYTES_MAX: usize = 63;

/// A data directory (or an in-memory set of databases). Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<ClusterInner>,
}

pub(crate) struct ClusterInner {
    /// `None` for an in-memory cluster.
    directory: Option<PathBuf>,
    options: DatabaseOptions,
    pub(crate) runtime: Arc<QueryRuntime>,
    /// DataFusion's runtime environment, with the memory limit every session of every database shares.
    pub(crate) runtime_environment: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    databases: Mutex<BTreeMap<String, Entry>>,
    /// The roles, as last read or written; changes hold this lock from read to commit.
    roles: Mutex<Arc<Vec<RoleDef>>>,
}

/// One database of the cluster.
struct Entry {
    oid: u32,
    /// The store, once opened (or, in memory, created).
    store: Option<Store>,
    /// The open database, while anyone uses it.
    open: Weak<DatabaseInner>,
}

/// A database as `pg_database` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseEntry {
    pub oid: u32,
    pub name: String,
}

impl Cluster {
    /// Opens (or creates) the cluster in `directory`.
    pub fn open(directory: impl AsRef<Path>) -> Result<Cluster> {
        Self::open_with(directory, DatabaseOptions::default())
    }

    /// Opens (or creates) the cluster in `directory` with `options` for every database.
    pub fn open_with(directory: impl AsRef<Path>, options: DatabaseOptions) -> Result<Cluster> {
        let directory = directory.as_ref();
        std::fs::create_dir_all(directory).map_err(|error| {
            Error::user(
                "58030",
                format!(
                    "cannot create data directory {}: {error}",
                    directory.display()
                ),
            )
        })?;
        // The default store first: its lock makes this process the directory's only user.
        let default_store = open_store(directory, options)?;
        let databases_folder = directory.join(DATABASES_FOLDER);
        if !databases_folder.exists() {
            // A fresh directory: the folder of other databases appears with `postgres` already in it,
            // so a process killed half-way leaves no folder (and the next open starts over), never a
            // folder without `postgres`.
            let staging = directory.join(format!("{DATABASES_FOLDER}.new"));
            if staging.exists() {
                std::fs::remove_dir_all(&staging)
                    .map_err(|error| io_error("remove", &staging, error))?;
            }
            std::fs::create_dir_all(&staging)
                .map_err(|error| io_error("create", &staging, error))?;
            build_database(&staging, POSTGRES_DATABASE, POSTGRES_DATABASE_OID, options)?;
            std::fs::rename(&staging, &databases_folder)
                .map_err(|error| io_error("rename", &staging, error))?;
            sync_directory(directory);
        }
        let mut databases = BTreeMap::new();
        databases.insert(
            DEFAULT_DATABASE.to_string(),
            Entry {
                oid: DEFAULT_DATABASE_OID,
                store: Some(default_store),
                open: Weak::new(),
            },
        );
        for (oid, name) in scan_databases(&databases_folder)? {
            databases.insert(
                name,
                Entry {
                    oid,
                    store: None,
                    open: Weak::new(),
                },
            );
        }
        Self::with_databases(Some(directory.to_path_buf()), options, databases)
    }

    /// A cluster held in memory, gone when dropped; it holds `qubedb` and `postgres`.
    pub fn open_in_memory() -> Result<Cluster> {
        let mut databases = BTreeMap::new();
        databases.insert(
            DEFAULT_DATABASE.to_string(),
            Entry {
                oid: DEFAULT_DATABASE_OID,
                store: Some(Store::in_memory()?),
                open: Weak::new(),
            },
        );
        // Created on first use: most in-memory clusters only ever use `qubedb`.
        databases.insert(
            POSTGRES_DATABASE.to_string(),
            Entry {
                oid: POSTGRES_DATABASE_OID,
                store: None,
                open: Weak::new(),
            },
        );
        Self::with_databases(None, DatabaseOptions::default(), databases)
    }

    fn with_databases(
        directory: Option<PathBuf>,
        options: DatabaseOptions,
        databases: BTreeMap<String, Entry>,
    ) -> Result<Cluster> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("qubedb-worker")
            .enable_all()
            .build()
            .map_err(|error| Error::internal(format!("cannot start the query runtime: {error}")))?;
        let runtime_environment = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_limit(
                options
                    .query_memory_bytes_max
                    .unwrap_or(crate::database::QUERY_MEMORY_BYTES_DEFAULT),
                1.0,
            )
            .build_arc()?;
        let default_store = databases
            .get(DEFAULT_DATABASE)
            .and_then(|entry| entry.store.clone())
            .expect("the default store is open");
        bootstrap(&default_store)?;
        let roles = {
            let mut transaction = default_store.begin()?;
            let mut roles = qubedb_model::catalog::read_roles(&transaction)?;
            if roles.is_empty() {
                roles.push(crate::roles::bootstrap_role());
                qubedb_model::catalog::write_role(&mut transaction, &roles[0])?;
                transaction.commit()?;
            } else {
                transaction.rollback();
            }
            roles
        };
        Ok(Cluster {
            inner: Arc::new(ClusterInner {
                directory,
                options,
                runtime: Arc::new(QueryRuntime::new(runtime)),
                runtime_environment,
                databases: Mutex::new(databases),
                roles: Mutex::new(Arc::new(roles)),
            }),
        })
    }

    /// The database called `name` (3D000 if there is none).
    pub fn database(&self, name: &str) -> Result<Database> {
        self.inner.database(name)
    }

    /// The default database, `qubedb`.
    pub fn default_database(&self) -> Result<Database> {
        self.database(DEFAULT_DATABASE)
    }

    /// Every database, by name.
    pub fn databases(&self) -> Vec<DatabaseEntry> {
        self.inner.entries()
    }

    /// Creates an empty database (`CREATE DATABASE`).
    pub fn create_database(&self, name: &str) -> Result<()> {
        self.inner.create_database(name)
    }

    /// Drops database `name` (`DROP DATABASE`): fails with 55006 while anyone uses it.
    pub fn drop_database(&self, name: &str) -> Result<()> {
        self.inner.drop_database(name, None)
    }

    /// A handle to the async runtime the blocking API runs queries on.
    pub fn runtime_handle(&self) -> tokio::runtime::Handle {
        self.inner.runtime.handle().clone()
    }

    /// Every role of the data directory.
    pub fn roles(&self) -> Arc<Vec<RoleDef>> {
        self.inner.roles()
    }

    /// The role called `name`, if any.
    pub fn role(&self, name: &str) -> Option<RoleDef> {
        self.inner
            .roles()
            .iter()
            .find(|role| role.name == name)
            .cloned()
    }

    pub(crate) fn from_inner(inner: Arc<ClusterInner>) -> Cluster {
        Cluster { inner }
    }
}

impl ClusterInner {
    fn database(self: &Arc<Self>, name: &str) -> Result<Database> {
        let mut databases = self.databases.lock();
        let entry = databases
            .get_mut(name)
            .ok_or_else(|| Error::user("3D000", format!("database \"{name}\" does not exist")))?;
        if let Some(open) = entry.open.upgrade() {
            return Ok(Database::from_inner(open));
        }
        let store = match &entry.store {
            Some(store) => store.clone(),
            None => {
                let store = match &self.directory {
                    Some(directory) => open_store(
                        &directory.join(DATABASES_FOLDER).join(entry.oid.to_string()),
                        self.options,
                    )?,
                    None => Store::in_memory()?,
                };
                entry.store = Some(store.clone());
                store
            }
        };
        let inner = DatabaseInner::new(self.clone(), name.to_string(), store)?;
        entry.open = Arc::downgrade(&inner);
        Ok(Database::from_inner(inner))
    }

    pub(crate) fn roles(&self) -> Arc<Vec<RoleDef>> {
        self.roles.lock().clone()
    }

    /// Changes the roles in one transaction of the default store: `change` sees the current roles
    /// and writes its changes; the cache is reloaded after the commit.
    pub(crate) fn change_roles(
        &self,
        change: impl FnOnce(&[RoleDef], &mut qubedb_kv::Transaction) -> Result<()>,
    ) -> Result<()> {
        let store = self
            .databases
            .lock()
            .get(DEFAULT_DATABASE)
            .and_then(|entry| entry.store.clone())
            .ok_or_else(|| Error::internal("the default database's store is not open"))?;
        let mut roles = self.roles.lock();
        let mut transaction = store.begin()?;
        change(&roles, &mut transaction)?;
        let updated = qubedb_model::catalog::read_roles(&transaction)?;
        transaction.commit()?;
        *roles = Arc::new(updated);
        Ok(())
    }

    /// Whether role `name` exists and may create databases.
    pub(crate) fn may_create_databases(&self, name: &str) -> bool {
        self.roles()
            .iter()
            .any(|role| role.name == name && (role.superuser || role.create_database))
    }

    pub(crate) fn entries(&self) -> Vec<DatabaseEntry> {
        self.databases
            .lock()
            .iter()
            .map(|(name, entry)| DatabaseEntry {
                oid: entry.oid,
                name: name.clone(),
            })
            .collect()
    }

    pub(crate) fn create_database(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let mut databases = self.databases.lock();
        let oid = databases
            .values()
            .map(|entry| entry.oid + 1)
            .chain([FIRST_USER_OID])
            .max()
            .expect("the chain is never empty");
        self.create_locked(&mut databases, name, oid)
    }

    fn create_locked(
        &self,
        databases: &mut BTreeMap<String, Entry>,
        name: &str,
        oid: u32,
    ) -> Result<()> {
        if databases.contains_key(name) {
            return Err(Error::user(
                "42P04",
                format!("database \"{name}\" already exists"),
            ));
        }
        let store = match &self.directory {
            Some(directory) => {
                build_database(&directory.join(DATABASES_FOLDER), name, oid, self.options)?;
                None
            }
            None => {
                let store = Store::in_memory()?;
                bootstrap(&store)?;
                Some(store)
            }
        };
        databases.insert(
            name.to_string(),
            Entry {
                oid,
                store,
                open: Weak::new(),
            },
        );
        Ok(())
    }

    /// Drops `name`; `current` is the name of the database the dropping session uses.
    pub(crate) fn drop_database(&self, name: &str, current: Option<&str>) -> Result<()> {
        // Sessions that are closing (a client that just disconnected) get a moment to go, as
        // PostgreSQL's DROP DATABASE waits up to 5 seconds for other backends to exit.
        let deadline = std::time::Instant::now() + DROP_WAIT;
        let mut databases = loop {
            let databases = self.databases.lock();
            let in_use = databases
                .get(name)
                .is_some_and(|entry| entry.open.strong_count() > 0);
            if !in_use || current == Some(name) || std::time::Instant::now() >= deadline {
                break databases;
            }
            drop(databases);
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let Some(entry) = databases.get(name) else {
            return Err(Error::user(
                "3D000",
                format!("database \"{name}\" does not exist"),
            ));
        };
        if current == Some(name) {
            return Err(Error::user(
                "55006",
                "cannot drop the currently open database",
            ));
        }
        if name == DEFAULT_DATABASE {
            return Err(Error::user(
                "55006",
                format!(
                    "cannot drop database \"{DEFAULT_DATABASE}\": it is the data directory's default database"
                ),
            ));
        }
        if entry.open.strong_count() > 0 {
            return Err(Error::user(
                "55006",
                format!("database \"{name}\" is being accessed by other users"),
            ));
        }
        let oid = entry.oid;
        // Closes the store (nobody else holds it: every user goes through an open database).
        databases.remove(name);
        if let Some(directory) = &self.directory {
            let folder = directory.join(DATABASES_FOLDER);
            let dropped = folder.join(format!("{oid}.dropped"));
            std::fs::rename(folder.join(oid.to_string()), &dropped)
                .map_err(|error| io_error("rename", &dropped, error))?;
            sync_directory(&folder);
            std::fs::remove_dir_all(&dropped)
                .map_err(|error| io_error("remove", &dropped, error))?;
        }
        Ok(())
    }
}

/// Checks a new database's name.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::user(
            "42602",
            "zero-length delimited identifier is not a valid database name",
        ));
    }
    if name.len() > DATABASE_NAME_BYTES_MAX {
        return Err(Error::user(
            "42622",
            format!(
                "database name \"{name}\" is too long (at most {DATABASE_NAME_BYTES_MAX} bytes)"
            ),
        ));
    }
    Ok(())
}

/// Builds database `name` in `folder/<oid>.new`, bootstraps its catalog and renames it to `folder/<oid>`,
/// so a crash leaves either no database or a whole one.
fn build_database(folder: &Path, name: &str, oid: u32, options: DatabaseOptions) -> Result<()> {
    let building = folder.join(format!("{oid}.new"));
    let target = folder.join(oid.to_string());
    if building.exists() {
        std::fs::remove_dir_all(&building).map_err(|error| io_error("remove", &building, error))?;
    }
    std::fs::create_dir_all(&building).map_err(|error| io_error("create", &building, error))?;
    std::fs::write(building.join(NAME_FILE), name)
        .map_err(|error| io_error("write", &building, error))?;
    {
        let store = open_store(&building, options)?;
        bootstrap(&store)?;
    }
    std::fs::rename(&building, &target).map_err(|error| io_error("rename", &building, error))?;
    sync_directory(folder);
    Ok(())
}

/// The databases in `folder`: `(oid, name)` of each complete one; leftovers of an interrupted CREATE or
/// DROP DATABASE are removed.
fn scan_databases(folder: &Path) -> Result<Vec<(u32, String)>> {
    let mut found = Vec::new();
    let listing = std::fs::read_dir(folder).map_err(|error| io_error("read", folder, error))?;
    for item in listing {
        let item = item.map_err(|error| io_error("read", folder, error))?;
        let path = item.path();
        let file_name = item.file_name().to_string_lossy().into_owned();
        if file_name.ends_with(".new") || file_name.ends_with(".dropped") {
            std::fs::remove_dir_all(&path).map_err(|error| io_error("remove", &path, error))?;
            continue;
        }
        let Ok(oid) = file_name.parse::<u32>() else {
            continue;
        };
        let name_path = path.join(NAME_FILE);
        let name = std::fs::read_to_string(&name_path).map_err(|error| {
            Error::corruption(
                "XX001",
                format!(
                    "database folder {} has no readable name file: {error}",
                    path.display()
                ),
            )
        })?;
        found.push((oid, name));
    }
    Ok(found)
}

fn open_store(directory: &Path, options: DatabaseOptions) -> Result<Store> {
    Store::open(
        &directory.join(STORE_FILE_NAME),
        StoreOptions {
            synchronous: options.synchronous,
        },
    )
    .map_err(|error| match error {
        qubedb_kv::Error::Locked(_) => Error::user(
            "55006",
            format!(
                "data directory {} is in use by another QubeDB process",
                directory.display()
            ),
        ),
        other => other.into(),
    })
}

/// Writes a new store's empty catalog.
pub(crate) fn bootstrap(store: &Store) -> Result<()> {
    let mut transaction = store.begin()?;
    if qubedb_model::catalog::Catalog::bootstrap(&mut transaction)? {
        transaction.commit()?;
    } else {
        transaction.rollback();
    }
    Ok(())
}

fn io_error(action: &str, path: &Path, error: std::io::Error) -> Error {
    Error::corruption(
        "58030",
        format!("cannot {action} {}: {error}", path.display()),
    )
}

/// Makes a rename in `folder` durable (best effort where directories cannot be opened).
fn sync_directory(folder: &Path) {
    if let Ok(handle) = std::fs::File::open(folder) {
        let _ = handle.sync_all();
    }
}
