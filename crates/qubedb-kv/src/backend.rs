//! The seam between QubeDB's transaction layer and the engine that stores bytes.
//!
//! A [`Backend`] offers exactly two things: a consistent read [`Snapshot`] of everything committed so far, and
//! an atomic [`Backend::apply`] of several write sets at once (one group-commit batch). Concurrency control,
//! write buffering and conflict detection live above it, in [`crate::Store`], so a backend needs no notion of
//! concurrent writers. The persistent backend is [`RedbBackend`] (a copy-on-write B-tree with MVCC read
//! snapshots); [`RedbBackend::in_memory`] uses redb's in-memory storage, so tests and `open_in_memory()` run
//! the same code path as a data directory.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use redb::{ReadableDatabase, TableDefinition};

use crate::error::{Error, Result};

/// A range of keys: lower and upper bound.
pub type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// An ordered iterator of key-value pairs.
pub type ScanIterator = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + Send>;

/// A write: `Some(value)` puts, `None` deletes.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// A consistent, immutable view of the committed keyspace.
pub trait Snapshot: Send + Sync {
    /// The value of `key`, if present.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// The pairs in `range`, in key order (or reverse key order).
    fn scan(&self, range: KeyRange, reverse: bool) -> Result<ScanIterator>;

    /// Calls `visit` with each pair in `range`, in key order (or reverse), until it returns false.
    /// The pairs are borrowed from the store where it can lend them: a reader that copies out only
    /// part of each value (a scan decoding a few columns) saves two allocations per pair over
    /// [`Snapshot::scan`].
    fn visit(
        &self,
        range: &KeyRange,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        visit_pairs(self.scan(range.clone(), reverse)?, visit)
    }
}

/// Calls `visit` with each owned pair of `pairs` until it returns false.
pub(crate) fn visit_pairs(
    pairs: ScanIterator,
    visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<()> {
    for item in pairs {
        let (key, value) = item?;
        if !visit(&key, &value) {
            break;
        }
    }
    Ok(())
}

/// A storage engine underneath the transaction layer.
pub trait Backend: Send + Sync + 'static {
    /// A snapshot of everything applied so far.
    fn snapshot(&self) -> Result<Arc<dyn Snapshot>>;
    /// Applies every write set in order, atomically: after a crash either all of them are there or none.
    /// With `durable`, the data is on stable storage when this returns.
    fn apply(&self, write_sets: &[&[Write]], durable: bool) -> Result<()>;
}

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");

/// The redb-backed engine: one redb table holds the whole keyspace.
pub struct RedbBackend {
    database: redb::Database,
}

impl RedbBackend {
    /// Opens (or creates) the database file at `path`.
    ///
    /// A new file is never created in place: a process killed while redb writes the first header would leave
    /// a file that is not yet a database, and every later open would fail on it. The file is built under a
    /// temporary name beside `path`, synced, and only then linked to `path` (a link, not a rename, so two
    /// processes creating the same database at once cannot replace one another's file); so `path` either
    /// does not exist or holds a complete, empty database.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            create_file(path)?;
        }
        let database = redb::Database::builder()
            .create(path)
            .map_err(|error| open_error(path, error))?;
        Self::init(database)
    }
    /// A database held in memory only.
    pub fn in_memory() -> Result<Self> {
        let database = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|error| Error::Io(error.to_string()))?;
        Self::init(database)
    }

    fn init(database: redb::Database) -> Result<Self> {
        let transaction = database.begin_write()?;
        transaction.open_table(DATA)?;
        transaction.commit()?;
        Ok(RedbBackend { database })
    }
}

impl Backend for RedbBackend {
    fn snapshot(&self) -> Result<Arc<dyn Snapshot>> {
        let transaction = self.database.begin_read()?;
        let table = transaction.open_table(DATA)?;
        Ok(Arc::new(RedbSnapshot { table }))
    }

    fn apply(&self, write_sets: &[&[Write]], durable: bool) -> Result<()> {
        let mut transaction = self.database.begin_write()?;
        transaction.set_durability(if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        })?;
        {
            let mut table = transaction.open_table(DATA)?;
            for write_set in write_sets {
                for (key, value) in write_set.iter() {
                    match value {
                        Some(value) => {
                            table.insert(key.as_slice(), value.as_slice())?;
                        }
                        None => {
                            table.remove(key.as_slice())?;
                        }
                    }
                }
            }
        }
        transaction.commit()?;
        Ok(())
    }
}

struct RedbSnapshot {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl Snapshot for RedbSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.table.get(key)?.map(|value| value.value().to_vec()))
    }

    fn scan(&self, range: KeyRange, reverse: bool) -> Result<ScanIterator> {
        let lower = as_slice_bound(&range.0);
        let upper = as_slice_bound(&range.1);
        if is_empty_range(&range) {
            return Ok(Box::new(std::iter::empty()));
        }
        let iterator = self.table.range::<&[u8]>((lower, upper))?;
        let map = |item: std::result::Result<_, redb::StorageError>| {
            let (key, value): (redb::AccessGuard<&[u8]>, redb::AccessGuard<&[u8]>) = item?;
            Ok((key.value().to_vec(), value.value().to_vec()))
        };
        if reverse {
            Ok(Box::new(iterator.rev().map(map)))
        } else {
            Ok(Box::new(iterator.map(map)))
        }
    }

    fn visit(
        &self,
        range: &KeyRange,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        if is_empty_range(range) {
            return Ok(());
        }
        let iterator = self
            .table
            .range::<&[u8]>((as_slice_bound(&range.0), as_slice_bound(&range.1)))?;
        let mut each = |item: RedbItem<'_>| -> Result<bool> {
            let (key, value) = item?;
            Ok(visit(key.value(), value.value()))
        };
        if reverse {
            for item in iterator.rev() {
                if !each(item)? {
                    break;
                }
            }
        } else {
            for item in iterator {
                if !each(item)? {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// One pair of a redb range, borrowed from its pages.
type RedbItem<'a> = std::result::Result<
    (
        redb::AccessGuard<'a, &'static [u8]>,
        redb::AccessGuard<'a, &'static [u8]>,
    ),
    redb::StorageError,
>;

fn as_slice_bound(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key.as_slice()),
        Bound::Excluded(key) => Bound::Excluded(key.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn open_error(path: &Path, error: redb::DatabaseError) -> Error {
    match error {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::Locked(path.display().to_string()),
        other => Error::Io(format!("cannot open {}: {other}", path.display())),
    }
}

/// Creates an empty database at `path` atomically (see [`RedbBackend::open`]). Temporary files a killed
/// creator left behind hold no data; the next creation removes its own name's leftover.
fn create_file(path: &Path) -> Result<()> {
    let io = |what: &str, error: std::io::Error| {
        Error::Io(format!("cannot {what} {}: {error}", path.display()))
    };
    let mut temporary_name = path.file_name().unwrap_or_default().to_os_string();
    temporary_name.push(format!(".creating-{}", std::process::id()));
    let temporary = path.with_file_name(temporary_name);
    match std::fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io("clear the leftover creation file of", error)),
    }
    {
        let database = redb::Database::builder()
            .create(&temporary)
            .map_err(|error| open_error(&temporary, error))?;
        let transaction = database.begin_write()?;
        transaction.open_table(DATA)?;
        transaction.commit()?;
    }
    std::fs::File::open(&temporary)
        .and_then(|file| file.sync_all())
        .map_err(|error| io("sync the new", error))?;
    let linked = match std::fs::hard_link(&temporary, path) {
        Ok(()) => Ok(()),
        // Another process created it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    };
    let removed = std::fs::remove_file(&temporary);
    linked.map_err(|error| io("create", error))?;
    removed.map_err(|error| io("remove the creation file of", error))?;
    if let Some(directory) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::File::open(directory)
            .and_then(|directory| directory.sync_all())
            .map_err(|error| io("sync the directory of", error))?;
    }
    Ok(())
}

/// True when no key can lie in `range` (redb rejects ranges whose start is past their end).
pub(crate) fn is_empty_range(range: &KeyRange) -> bool {
    match (&range.0, &range.1) {
        (Bound::Included(start), Bound::Included(end)) => start > end,
        (Bound::Included(start), Bound::Excluded(end))
        | (Bound::Excluded(start), Bound::Included(end))
        | (Bound::Excluded(start), Bound::Excluded(end)) => start >= end,
        _ => false,
    }
}
