//! [`Store`] and [`Transaction`]: snapshots, write buffers, conflict detection and the group-commit pipeline
//! described in the crate documentation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use imbl::OrdMap;
use parking_lot::{Condvar, Mutex};

use crate::backend::{
    Backend, KeyRange, RedbBackend, ScanIterator, Snapshot, Write, is_empty_range,
};
use crate::error::{Error, Result};
use crate::{
    COMMIT_BATCH_TRANSACTIONS_MAX, KEY_BYTES_MAX, NORMAL_FLUSH_INTERVAL_MS,
    TRANSACTION_WRITE_BYTES_MAX, VALUE_BYTES_MAX,
};

/// When a commit reaches stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every acknowledged commit has been fsynced (survives power loss).
    #[default]
    Full,
    /// Commits are fsynced within [`NORMAL_FLUSH_INTERVAL_MS`]; a crash may lose that last interval.
    Normal,
}

/// Options for opening a [`Store`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreOptions {
    pub synchronous: Synchronous,
}

/// A handle to the store. Cheap to clone; the store closes when the last handle and transaction are gone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    shared: Arc<Shared>,
    queue: Mutex<Option<mpsc::Sender<CommitRequest>>>,
    committer: Mutex<Option<JoinHandle<()>>>,
}

/// State shared by transactions and the committer thread.
struct Shared {
    backend: Box<dyn Backend>,
    state: Mutex<CommitState>,
    /// The next transaction id.
    next_transaction: AtomicU64,
}

/// Write locks. Every key a transaction writes is locked by it until it ends, so two transactions never
/// write the same key at once: the second one gets [`Error::Busy`] and waits for the first to end
/// (then, having seen the first one's commit, it decides: retry on newer data or fail with a conflict).
/// Waits form a graph of one edge per waiting transaction; an edge that would close a cycle is refused
/// with [`Error::Deadlock`].
#[derive(Default)]
struct LockTable {
    /// Key -> id of the transaction holding it. Hashed with foldhash (randomly seeded, several
    /// times faster than SipHash on short keys): every written key passes here under the store's mutex.
    holders: HashMap<Vec<u8>, u64, foldhash::fast::RandomState>,
    /// Transaction id -> the id of the transaction it waits for.
    waiting_for: HashMap<u64, u64>,
    /// Transaction id -> its end, for transactions that hold locks.
    ends: HashMap<u64, Arc<TransactionEnd>>,
}

/// Signalled when a transaction that held locks has ended (committed or rolled back) and released them.
#[derive(Default)]
struct TransactionEnd {
    ended: Mutex<bool>,
    signal: Condvar,
}

/// A transaction another one must wait for, from [`Transaction::take_lock_wait`].
#[derive(Clone)]
pub struct LockWait {
    end: Arc<TransactionEnd>,
}

impl LockWait {
    /// Blocks until the transaction holding the lock has ended, or `timeout` has passed; returns true
    /// if it ended.
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut ended = self.end.ended.lock();
        if !*ended {
            let _ = self.end.signal.wait_for(&mut ended, timeout);
        }
        *ended
    }
}

struct CommitState {
    /// Sequence number of the last applied commit batch.
    last_sequence: u64,
    /// For keys written by batches that some active snapshot may not see: the batch's sequence.
    recent: BTreeMap<Vec<u8>, u64>,
    /// Snapshot sequences of active transactions, with a count of transactions on each.
    active: BTreeMap<u64, usize>,
    /// Size of `recent` after the last prune, to prune in amortized linear time.
    recent_len_after_prune: usize,
    locks: LockTable,
    /// The last snapshot opened and the sequence it was opened at: transactions that begin before
    /// the next commit share it instead of opening a backend read transaction each (one per
    /// autocommit statement otherwise).
    latest_snapshot: Option<(u64, Arc<dyn Snapshot>)>,
}

struct CommitRequest {
    snapshot_sequence: u64,
    writes: Vec<Write>,
    validated: Vec<KeyRange>,
    reply: mpsc::SyncSender<Result<()>>,
}

impl Store {
    /// Opens or creates the store in file `path`.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store> {
        Ok(Self::with_backend(
            Box::new(RedbBackend::open(path)?),
            options,
        ))
    }

    /// A store held in memory only.
    pub fn in_memory() -> Result<Store> {
        Ok(Self::with_backend(
            Box::new(RedbBackend::in_memory()?),
            StoreOptions::default(),
        ))
    }

    /// A store over any backend.
    pub fn with_backend(backend: Box<dyn Backend>, options: StoreOptions) -> Store {
        let shared = Arc::new(Shared {
            backend,
            state: Mutex::new(CommitState {
                last_sequence: 0,
                recent: BTreeMap::new(),
                active: BTreeMap::new(),
                recent_len_after_prune: 0,
                latest_snapshot: None,
                locks: LockTable::default(),
            }),
            next_transaction: AtomicU64::new(1),
        });
        let (sender, receiver) = mpsc::channel();
        let committer_shared = shared.clone();
        let committer = std::thread::Builder::new()
            .name("qubedb-committer".into())
            .spawn(move || committer_loop(&committer_shared, &receiver, options.synchronous))
            .expect("the operating system must allow one committer thread");
        Store {
            inner: Arc::new(StoreInner {
                shared,
                queue: Mutex::new(Some(sender)),
                committer: Mutex::new(Some(committer)),
            }),
        }
    }

    /// Starts a transaction on a snapshot of everything committed so far.
    pub fn begin(&self) -> Result<Transaction> {
        let shared = &self.inner.shared;
        let (sequence, snapshot) =
            open_snapshot(shared, None)?.expect("a snapshot is opened when none is given");
        Ok(Transaction {
            id: shared.next_transaction.fetch_add(1, Ordering::Relaxed),
            store: self.inner.clone(),
            snapshot,
            snapshot_sequence: sequence,
            writes: OrdMap::new(),
            write_bytes: 0,
            undo: Vec::new(),
            savepoints: Arc::new(()),
            validated: Vec::new(),
            held: Vec::new(),
            end: None,
            lock_wait: None,
            write_conflict: false,
        })
    }

    /// Stops the committer after it has applied everything queued. Later commits fail with [`Error::Closed`].
    pub fn close(&self) {
        self.inner.close();
    }
}

impl StoreInner {
    fn close(&self) {
        self.queue.lock().take();
        if let Some(handle) = self.committer.lock().take() {
            // A panicking committer already failed its waiting commits; nothing more to report here.
            let _ = handle.join();
        }
        self.shared.state.lock().latest_snapshot = None;
    }
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        self.close();
    }
}

/// Opens a snapshot of everything committed so far and registers it as active; `None` if nothing was
/// committed after `unless_at` (the sequence of a snapshot the caller already has).
fn open_snapshot(
    shared: &Shared,
    unless_at: Option<u64>,
) -> Result<Option<(u64, Arc<dyn Snapshot>)>> {
    // Read the sequence before opening the snapshot: the committer publishes a sequence only after the
    // batch is applied, so the snapshot sees at least everything up to `sequence` (possibly more, which
    // only makes conflict checks conservative).
    let sequence = {
        let mut state = shared.state.lock();
        if unless_at == Some(state.last_sequence) {
            return Ok(None);
        }
        let sequence = state.last_sequence;
        *state.active.entry(sequence).or_insert(0) += 1;
        if let Some((latest, snapshot)) = &state.latest_snapshot
            && *latest == sequence
        {
            return Ok(Some((sequence, snapshot.clone())));
        }
        sequence
    };
    match shared.backend.snapshot() {
        Ok(snapshot) => {
            let mut state = shared.state.lock();
            if state
                .latest_snapshot
                .as_ref()
                .is_none_or(|(latest, _)| *latest < sequence)
            {
                state.latest_snapshot = Some((sequence, snapshot.clone()));
            }
            Ok(Some((sequence, snapshot)))
        }
        Err(error) => {
            release_snapshot(shared, sequence);
            Err(error)
        }
    }
}

fn release_snapshot(shared: &Shared, sequence: u64) {
    let mut state = shared.state.lock();
    if let Some(count) = state.active.get_mut(&sequence) {
        *count -= 1;
        if *count == 0 {
            state.active.remove(&sequence);
        }
    }
}

/// A transaction: a snapshot plus buffered writes. Dropping it without commit rolls it back.
pub struct Transaction {
    id: u64,
    store: Arc<StoreInner>,
    snapshot: Arc<dyn Snapshot>,
    snapshot_sequence: u64,
    writes: OrdMap<Vec<u8>, Option<Vec<u8>>>,
    write_bytes: usize,
    /// What each write replaced, in order, while a [`Savepoint`] may roll back over it: the key and its
    /// earlier buffered state (`None`: the key had no buffered write). See [`Transaction::savepoint`].
    undo: Vec<UndoEntry>,
    /// Shared with every [`Savepoint`] taken: while one is alive the writes keep an undo log.
    savepoints: Arc<()>,
    validated: Vec<KeyRange>,
    /// Keys this transaction has locked (see [`LockTable`]); released when it ends.
    held: Vec<Vec<u8>>,
    /// Signalled when this transaction ends, once it holds a lock.
    end: Option<Arc<TransactionEnd>>,
    /// Set by a write that found its key locked ([`Error::Busy`]).
    lock_wait: Option<LockWait>,
    /// Set by a write that found its key committed by another transaction after this one's snapshot.
    write_conflict: bool,
}

/// What one transaction saw at one moment: its snapshot and its buffered writes. Scans of a statement read
/// through a view, so they see the statement's starting state, never its own writes (no Halloween problem).
#[derive(Clone)]
pub struct ReadView {
    snapshot: Arc<dyn Snapshot>,
    snapshot_sequence: u64,
    writes: OrdMap<Vec<u8>, Option<Vec<u8>>>,
}

impl ReadView {
    /// The commit sequence of the view's snapshot (see [`Transaction::snapshot_sequence`]).
    pub fn snapshot_sequence(&self) -> u64 {
        self.snapshot_sequence
    }

    /// The write this view's transaction buffered for `key`: `Some(Some(value))` for a put,
    /// `Some(None)` for a delete, `None` when it wrote nothing there (the snapshot decides).
    pub fn buffered(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.writes.get(key).map(|value| value.as_deref())
    }

    /// True when this view's transaction wrote (put or deleted) a key in `range`.
    pub fn buffers_any(&self, range: &KeyRange) -> bool {
        !is_empty_range(range)
            && self
                .writes
                .range((range.0.clone(), range.1.clone()))
                .next()
                .is_some()
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(buffered) = self.writes.get(key) {
            return Ok(buffered.clone());
        }
        self.snapshot.get(key)
    }

    /// Calls `visit` with each pair in `range`, in key order (or reverse), until it returns false:
    /// borrowed from the store when no buffered write falls in the range (see [`Snapshot::visit`]).
    pub fn visit(
        &self,
        range: &KeyRange,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        if is_empty_range(range) {
            return Ok(());
        }
        if self
            .writes
            .range((range.0.clone(), range.1.clone()))
            .next()
            .is_none()
        {
            return self.snapshot.visit(range, reverse, visit);
        }
        crate::backend::visit_pairs(self.scan(range.clone(), reverse)?, visit)
    }

    /// The pairs in `range`, in key order (or reverse).
    pub fn scan(&self, range: KeyRange, reverse: bool) -> Result<ScanIterator> {
        if is_empty_range(&range) {
            return Ok(Box::new(std::iter::empty()));
        }
        let buffered: Vec<(Vec<u8>, Option<Vec<u8>>)> = self
            .writes
            .range((range.0.clone(), range.1.clone()))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let stored = self.snapshot.scan(range, reverse)?;
        if buffered.is_empty() {
            return Ok(stored);
        }
        let buffered: BufferedIterator = if reverse {
            Box::new(buffered.into_iter().rev())
        } else {
            Box::new(buffered.into_iter())
        };
        Ok(Box::new(MergeIterator {
            stored: stored.peekable(),
            buffered: buffered.peekable(),
            reverse,
        }))
    }
}

/// How many of a transaction's latest validated ranges a new one is compared with to skip duplicates.
const VALIDATED_RECENT_CHECKED: usize = 8;

/// A written key and its buffered state before the write (`None`: no buffered write of it).
type UndoEntry = (Vec<u8>, Option<Option<Vec<u8>>>);

/// A point in a transaction's writes to roll back to. Taking one is O(1); while one is alive every
/// write also records what it replaced (an undo log), so that writes stay in place in the buffer
/// instead of copying its shared nodes, as a persistent copy of the buffer per savepoint would.
#[derive(Clone)]
pub struct Savepoint {
    /// Length of the transaction's undo log when taken.
    undo_length: usize,
    write_bytes: usize,
    /// Keeps the transaction logging undo entries while this savepoint lives.
    alive: Arc<()>,
}

impl Transaction {
    /// The write this transaction buffered for `key` (see [`ReadView::buffered`]).
    pub fn buffered(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.writes.get(key).map(|value| value.as_deref())
    }

    /// The commit sequence of the transaction's snapshot: the snapshot holds every commit up to it,
    /// and possibly a few later ones whose sequence was not yet published when it was opened (so a
    /// cache that reflects the commits up to some sequence `s` reflects this snapshot only when `s`
    /// is at most this and no commit after `s` touched what it caches).
    pub fn snapshot_sequence(&self) -> u64 {
        self.snapshot_sequence
    }

    /// The writes this transaction buffered in `range`, in key order: `None` for a delete.
    pub fn buffered_writes(
        &self,
        range: &KeyRange,
    ) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        let writes =
            (!is_empty_range(range)).then(|| self.writes.range((range.0.clone(), range.1.clone())));
        writes
            .into_iter()
            .flatten()
            .map(|(key, value)| (key.as_slice(), value.as_deref()))
    }

    /// The keys this transaction wrote (put or deleted) in `range`, in order.
    pub fn buffered_keys(&self, range: &KeyRange) -> Vec<Vec<u8>> {
        self.buffered_writes(range)
            .map(|(key, _)| key.to_vec())
            .collect()
    }

    /// The value of `key` as this transaction sees it.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(buffered) = self.writes.get(key) {
            return Ok(buffered.clone());
        }
        self.snapshot.get(key)
    }

    /// True when `key` is present.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Locks `key` for this transaction before its first write (see [`LockTable`]). Fails with
    /// [`Error::Busy`] if another transaction in progress holds it ([`Transaction::take_lock_wait`]
    /// gives what to wait for), [`Error::Deadlock`] if that one waits, directly or not, for this one,
    /// and [`Error::Conflict`] if another transaction committed the key after this one's snapshot
    /// ([`Transaction::take_write_conflict`] tells it apart from a conflict at commit).
    fn lock(&mut self, key: &[u8]) -> Result<()> {
        if self.writes.contains_key(key) {
            return Ok(());
        }
        let shared = &self.store.shared;
        let mut state = shared.state.lock();
        let state = &mut *state;
        match state.locks.holders.get(key) {
            Some(&owner) if owner == self.id => return Ok(()),
            Some(&owner) => {
                let mut next = owner;
                let mut steps = 0;
                while let Some(&waits_for) = state.locks.waiting_for.get(&next) {
                    if waits_for == self.id {
                        return Err(Error::Deadlock);
                    }
                    next = waits_for;
                    steps += 1;
                    if steps > state.locks.waiting_for.len() {
                        break;
                    }
                }
                let end = state
                    .locks
                    .ends
                    .get(&owner)
                    .cloned()
                    .expect("a transaction holding locks has an end to wait for");
                state.locks.waiting_for.insert(self.id, owner);
                self.lock_wait = Some(LockWait { end });
                return Err(Error::Busy);
            }
            None => {}
        }
        if state
            .recent
            .get(key)
            .is_some_and(|&sequence| sequence > self.snapshot_sequence)
        {
            self.write_conflict = true;
            return Err(Error::Conflict);
        }
        state.locks.holders.insert(key.to_vec(), self.id);
        let end = self.end.get_or_insert_with(Arc::default);
        state
            .locks
            .ends
            .entry(self.id)
            .or_insert_with(|| end.clone());
        self.held.push(key.to_vec());
        Ok(())
    }

    /// Locks `key` without writing it (a row lock of `SELECT ... FOR UPDATE`): held, like a written
    /// key's lock, until the transaction ends. Fails as [`Transaction::put`]'s locking does: with
    /// [`Error::Busy`] while another transaction holds it, [`Error::Deadlock`], or [`Error::Conflict`]
    /// when the key was committed after this transaction's snapshot.
    pub fn lock_key(&mut self, key: &[u8]) -> Result<()> {
        self.lock(key)
    }

    /// What the last [`Error::Busy`] of this transaction must wait for; clears it.
    pub fn take_lock_wait(&mut self) -> Option<LockWait> {
        self.lock_wait.take()
    }

    /// Stops waiting (after [`LockWait::wait`]): removes this transaction's edge from the wait graph.
    pub fn stop_waiting(&mut self) {
        self.store
            .shared
            .state
            .lock()
            .locks
            .waiting_for
            .remove(&self.id);
    }

    /// True if the last [`Error::Conflict`] came from a write (the key was committed by another
    /// transaction after this one's snapshot) rather than from commit; clears it. A statement that
    /// reads at a newer snapshot ([`Transaction::refresh_snapshot`]) may then succeed.
    pub fn take_write_conflict(&mut self) -> bool {
        std::mem::take(&mut self.write_conflict)
    }

    /// Moves the transaction's snapshot to everything committed so far, keeping its buffered writes
    /// (READ COMMITTED: each statement sees what was committed before it began). Keys the transaction
    /// wrote are locked by it, so no commit since can have touched them. Returns false, having done
    /// nothing, when nothing was committed since the snapshot was taken.
    pub fn refresh_snapshot(&mut self) -> Result<bool> {
        let shared = &self.store.shared;
        let Some((sequence, snapshot)) = open_snapshot(shared, Some(self.snapshot_sequence))?
        else {
            return Ok(false);
        };
        release_snapshot(shared, self.snapshot_sequence);
        self.snapshot = snapshot;
        self.snapshot_sequence = sequence;
        Ok(true)
    }

    /// Releases every lock and wakes the transactions waiting for this one.
    fn release_locks(&mut self) {
        let Some(end) = self.end.take() else {
            if self.lock_wait.is_some() {
                self.stop_waiting();
            }
            return;
        };
        {
            let mut state = self.store.shared.state.lock();
            for key in self.held.drain(..) {
                state.locks.holders.remove(&key);
            }
            state.locks.ends.remove(&self.id);
            state.locks.waiting_for.remove(&self.id);
        }
        *end.ended.lock() = true;
        end.signal.notify_all();
    }

    /// Writes `value` at `key`.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        if key.len() > KEY_BYTES_MAX {
            return Err(Error::Limit(format!(
                "key of {} bytes exceeds the limit key_bytes_max = {KEY_BYTES_MAX}",
                key.len()
            )));
        }
        if value.len() > VALUE_BYTES_MAX {
            return Err(Error::Limit(format!(
                "value of {} bytes exceeds the limit value_bytes_max = {VALUE_BYTES_MAX}",
                value.len()
            )));
        }
        self.lock(&key)?;
        self.account(key.len() + value.len())?;
        self.buffer(key, Some(value));
        Ok(())
    }

    /// Buffers one write, logging what it replaced while a savepoint may roll it back.
    fn buffer(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        if Arc::strong_count(&self.savepoints) == 1 {
            self.undo.clear();
            self.writes.insert(key, value);
        } else {
            let previous = self.writes.insert(key.clone(), value);
            self.undo.push((key, previous));
        }
    }

    /// Deletes `key` (a no-op if absent).
    pub fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        self.lock(&key)?;
        self.account(key.len())?;
        self.buffer(key, None);
        Ok(())
    }

    fn account(&mut self, bytes: usize) -> Result<()> {
        self.write_bytes += bytes;
        if self.write_bytes > TRANSACTION_WRITE_BYTES_MAX {
            return Err(Error::Limit(format!(
                "transaction writes exceed the limit transaction_write_bytes_max = {TRANSACTION_WRITE_BYTES_MAX}"
            )));
        }
        Ok(())
    }

    /// The pairs in `range` as this transaction sees them, in key order (or reverse), from a snapshot of the
    /// buffer taken now: writes made while iterating are not seen by the iterator.
    pub fn scan(&self, range: KeyRange, reverse: bool) -> Result<ScanIterator> {
        self.read_view().scan(range, reverse)
    }

    /// A read-only view of this transaction as it is now (snapshot plus buffered writes), independent of the
    /// transaction's later writes. Taking one is O(1); it can outlive the transaction.
    pub fn read_view(&self) -> ReadView {
        ReadView {
            snapshot: self.snapshot.clone(),
            snapshot_sequence: self.snapshot_sequence,
            writes: self.writes.clone(),
        }
    }

    /// The pairs whose key starts with `prefix`.
    pub fn scan_prefix(&self, prefix: &[u8], reverse: bool) -> Result<ScanIterator> {
        self.scan(prefix_range(prefix), reverse)
    }

    /// Asks commit to fail with [`Error::Conflict`] if anyone commits a key in `range` after this
    /// transaction's snapshot. Used for reads whose result must still hold at commit (catalog entries a
    /// statement relied on, a parent row a foreign key points to, a table a DDL statement rewrites).
    pub fn validate_range(&mut self, range: KeyRange) {
        // Statements of one transaction validate the same few ranges over and over (the catalog
        // entry of each table they touch): a range among the last few is not kept twice, so a
        // transaction of many statements does not check one range per statement at commit.
        if !self
            .validated
            .iter()
            .rev()
            .take(VALIDATED_RECENT_CHECKED)
            .any(|validated| *validated == range)
        {
            self.validated.push(range);
        }
    }

    /// Asks commit to fail if anyone commits `key` after this transaction's snapshot.
    pub fn validate_key(&mut self, key: &[u8]) {
        let already = self
            .validated
            .iter()
            .rev()
            .take(VALIDATED_RECENT_CHECKED)
            .any(|(start, end)| {
                matches!((start, end), (Bound::Included(start), Bound::Included(end))
                    if start.as_slice() == key && end.as_slice() == key)
            });
        if !already {
            self.validated
                .push((Bound::Included(key.to_vec()), Bound::Included(key.to_vec())));
        }
    }

    /// True when the transaction has a buffered write (or delete) of `key`.
    pub fn writes_key(&self, key: &[u8]) -> bool {
        self.writes.contains_key(key)
    }

    /// True when the transaction has buffered no write.
    pub fn is_read_only(&self) -> bool {
        self.writes.is_empty()
    }

    /// The current buffered state, to return to with [`Transaction::rollback_to`].
    pub fn savepoint(&mut self) -> Savepoint {
        if Arc::strong_count(&self.savepoints) == 1 {
            self.undo.clear();
        }
        Savepoint {
            undo_length: self.undo.len(),
            write_bytes: self.write_bytes,
            alive: self.savepoints.clone(),
        }
    }

    /// Discards every write made since `savepoint` (taken on this transaction) was taken. The
    /// savepoint stays valid: it can be rolled back to again.
    pub fn rollback_to(&mut self, savepoint: &Savepoint) {
        debug_assert!(
            Arc::ptr_eq(&savepoint.alive, &self.savepoints),
            "a savepoint rolls back only the transaction it was taken on"
        );
        while self.undo.len() > savepoint.undo_length {
            let (key, previous) = self
                .undo
                .pop()
                .expect("the undo log is longer than the savepoint's");
            match previous {
                Some(value) => {
                    self.writes.insert(key, value);
                }
                None => {
                    self.writes.remove(&key);
                }
            }
        }
        self.write_bytes = savepoint.write_bytes;
    }

    /// Commits: waits until the writes are applied (and, with [`Synchronous::Full`], fsynced).
    /// Fails with [`Error::Conflict`] if another transaction committed a conflicting write first.
    pub fn commit(mut self) -> Result<()> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let writes: Vec<Write> = std::mem::take(&mut self.writes).into_iter().collect();
        let (reply, answer) = mpsc::sync_channel(1);
        let request = CommitRequest {
            snapshot_sequence: self.snapshot_sequence,
            writes,
            validated: std::mem::take(&mut self.validated),
            reply,
        };
        {
            let queue = self.store.queue.lock();
            let Some(sender) = queue.as_ref() else {
                return Err(Error::Closed);
            };
            sender.send(request).map_err(|_| Error::Closed)?;
        }
        answer.recv().map_err(|_| Error::Closed)?
    }

    /// Discards the transaction's writes.
    pub fn rollback(self) {}
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // After `commit` returned, its writes are applied: waiters woken now see them.
        self.release_locks();
        release_snapshot(&self.store.shared, self.snapshot_sequence);
    }
}

/// The range of every key starting with `prefix`.
pub fn prefix_range(prefix: &[u8]) -> KeyRange {
    let start = Bound::Included(prefix.to_vec());
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return (start, Bound::Excluded(end));
        }
    }
    (start, Bound::Unbounded)
}

/// Buffered writes in key order: `None` is a delete.
type BufferedIterator = Box<dyn Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> + Send>;

/// Merges the snapshot's pairs with the buffered writes; a buffered write shadows the stored pair with the
/// same key, and a buffered delete hides it.
struct MergeIterator {
    stored: std::iter::Peekable<ScanIterator>,
    buffered: std::iter::Peekable<BufferedIterator>,
    reverse: bool,
}

impl Iterator for MergeIterator {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.stored.peek(), self.buffered.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => return self.stored.next(),
                (Some(_), None) => return self.stored.next(),
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(Ok((stored_key, _))), Some((buffered_key, _))) => {
                    let order = stored_key.cmp(buffered_key);
                    if self.reverse { order.reverse() } else { order }
                }
            };
            match order {
                std::cmp::Ordering::Less => return self.stored.next(),
                std::cmp::Ordering::Equal => {
                    self.stored.next();
                }
                std::cmp::Ordering::Greater => {}
            }
            let (key, value) = self.buffered.next().expect("peeked a buffered write");
            if let Some(value) = value {
                return Some(Ok((key, value)));
            }
        }
    }
}

/// The committer: takes queued commits in batches, validates, applies each batch atomically, acknowledges.
fn committer_loop(
    shared: &Shared,
    queue: &mpsc::Receiver<CommitRequest>,
    synchronous: Synchronous,
) {
    let flush_interval = Duration::from_millis(NORMAL_FLUSH_INTERVAL_MS);
    let mut unflushed_since: Option<Instant> = None;
    loop {
        let first = match unflushed_since {
            None => match queue.recv() {
                Ok(request) => request,
                Err(_) => return,
            },
            Some(since) => {
                let wait = flush_interval.saturating_sub(since.elapsed());
                match queue.recv_timeout(wait) {
                    Ok(request) => request,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // An empty durable commit makes every earlier non-durable one durable.
                        if shared.backend.apply(&[], true).is_ok() {
                            unflushed_since = None;
                        }
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        // Best effort on close: a failure here is what `Normal` documents it may lose.
                        let _ = shared.backend.apply(&[], true);
                        return;
                    }
                }
            }
        };
        let mut batch = vec![first];
        while batch.len() < COMMIT_BATCH_TRANSACTIONS_MAX {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let durable = match synchronous {
            Synchronous::Full => true,
            Synchronous::Normal => {
                unflushed_since.is_some_and(|since| since.elapsed() >= flush_interval)
            }
        };
        commit_batch(shared, batch, durable);
        if synchronous == Synchronous::Normal {
            if durable {
                unflushed_since = None;
            } else if unflushed_since.is_none() {
                unflushed_since = Some(Instant::now());
            }
        }
    }
}

fn commit_batch(shared: &Shared, batch: Vec<CommitRequest>, durable: bool) {
    // Validate under the state lock: the committer is the only writer of `recent`, so the view stays valid
    // while the batch is applied without the lock.
    let mut accepted = Vec::with_capacity(batch.len());
    let mut rejected = Vec::new();
    {
        let state = shared.state.lock();
        let mut batch_keys: BTreeSet<&[u8]> = BTreeSet::new();
        for (position, request) in batch.iter().enumerate() {
            let conflict = request.writes.iter().any(|(key, _)| {
                batch_keys.contains(key.as_slice())
                    || state
                        .recent
                        .get(key)
                        .is_some_and(|&sequence| sequence > request.snapshot_sequence)
            }) || request.validated.iter().any(|range| {
                !is_empty_range(range)
                    && (state
                        .recent
                        .range::<Vec<u8>, _>((range.0.as_ref(), range.1.as_ref()))
                        .any(|(_, &sequence)| sequence > request.snapshot_sequence)
                        || batch_keys
                            .range::<[u8], _>((
                                range.0.as_ref().map(|key| key.as_slice()),
                                range.1.as_ref().map(|key| key.as_slice()),
                            ))
                            .next()
                            .is_some())
            });
            if conflict {
                rejected.push(position);
            } else {
                batch_keys.extend(request.writes.iter().map(|(key, _)| key.as_slice()));
                accepted.push(position);
            }
        }
    }
    let write_sets: Vec<&[Write]> = accepted
        .iter()
        .map(|&position| batch[position].writes.as_slice())
        .collect();
    let outcome = if write_sets.is_empty() {
        Ok(())
    } else {
        shared.backend.apply(&write_sets, durable)
    };
    if outcome.is_ok() && !write_sets.is_empty() {
        let mut state = shared.state.lock();
        state.last_sequence += 1;
        let sequence = state.last_sequence;
        for &position in &accepted {
            for (key, _) in &batch[position].writes {
                state.recent.insert(key.clone(), sequence);
            }
        }
        prune_recent(&mut state);
    }
    for position in rejected {
        // A session that gave up waiting is not an error of the committer.
        let _ = batch[position].reply.send(Err(Error::Conflict));
    }
    for position in accepted {
        let _ = batch[position].reply.send(outcome.clone());
    }
}

/// Forgets keys committed at or before the oldest active snapshot: no transaction can conflict on them.
fn prune_recent(state: &mut CommitState) {
    if state.recent.len() < 2 * state.recent_len_after_prune + 1024 {
        return;
    }
    match state.active.keys().next().copied() {
        None => state.recent.clear(),
        Some(oldest) => state.recent.retain(|_, sequence| *sequence > oldest),
    }
    state.recent_len_after_prune = state.recent.len();
}
