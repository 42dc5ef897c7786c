//! Behaviour of the transactional store: read-your-own-writes, ordered scans, snapshot isolation with first
//! committer wins, savepoints, durability across reopen, group commit under concurrency, and a property test
//! against a BTreeMap model.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use proptest::prelude::*;
use qubedb_kv::{Error, Store, StoreOptions, prefix_range};

fn collect(
    store_txn: &qubedb_kv::Transaction,
    prefix: &[u8],
    reverse: bool,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    store_txn
        .scan_prefix(prefix, reverse)
        .expect("scan")
        .collect::<Result<Vec<_>, _>>()
        .expect("scan items")
}

fn kv(key: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
    (key.as_bytes().to_vec(), value.as_bytes().to_vec())
}

#[test]
fn read_your_own_writes_and_merged_scans() {
    let store = Store::in_memory().expect("store");
    let mut setup = store.begin().expect("begin");
    for (key, value) in [("a1", "x"), ("a3", "y"), ("a5", "z"), ("b1", "w")] {
        setup.put(key.into(), value.into()).expect("put");
    }
    setup.commit().expect("commit");

    let mut txn = store.begin().expect("begin");
    txn.put(b"a2".to_vec(), b"new".to_vec()).expect("put");
    txn.put(b"a3".to_vec(), b"changed".to_vec()).expect("put");
    txn.delete(b"a5".to_vec()).expect("delete");
    assert_eq!(txn.get(b"a3").expect("get"), Some(b"changed".to_vec()));
    assert_eq!(txn.get(b"a5").expect("get"), None);
    assert_eq!(
        collect(&txn, b"a", false),
        vec![kv("a1", "x"), kv("a2", "new"), kv("a3", "changed")]
    );
    assert_eq!(
        collect(&txn, b"a", true),
        vec![kv("a3", "changed"), kv("a2", "new"), kv("a1", "x")]
    );
    let bounded: Vec<_> = txn
        .scan(
            (
                Bound::Excluded(b"a1".to_vec()),
                Bound::Included(b"b1".to_vec()),
            ),
            false,
        )
        .expect("scan")
        .map(|item| item.expect("item").0)
        .collect();
    assert_eq!(
        bounded,
        vec![b"a2".to_vec(), b"a3".to_vec(), b"b1".to_vec()]
    );
    // An inverted range is empty, not an error.
    let empty = txn
        .scan(
            (
                Bound::Included(b"b".to_vec()),
                Bound::Included(b"a".to_vec()),
            ),
            false,
        )
        .expect("scan")
        .count();
    assert_eq!(empty, 0);
    // Visiting in place gives the scans' pairs, merged with the buffered writes or straight from the
    // snapshot (no write in range), forwards and backwards, and stops when asked.
    let visited = |view: &qubedb_kv::ReadView, range: qubedb_kv::KeyRange, reverse, stop_after| {
        let mut pairs = Vec::new();
        view.visit(&range, reverse, &mut |key, value| {
            pairs.push((key.to_vec(), value.to_vec()));
            pairs.len() < stop_after
        })
        .expect("visit");
        pairs
    };
    let view = txn.read_view();
    assert_eq!(
        visited(&view, prefix_range(b"a"), false, usize::MAX),
        vec![kv("a1", "x"), kv("a2", "new"), kv("a3", "changed")]
    );
    assert_eq!(
        visited(&view, prefix_range(b"a"), true, 2),
        vec![kv("a3", "changed"), kv("a2", "new")]
    );
    assert_eq!(
        visited(&view, prefix_range(b"b"), true, usize::MAX),
        vec![kv("b1", "w")]
    );
    let reader = store.begin().expect("begin").read_view();
    assert_eq!(
        visited(&reader, prefix_range(b"a"), true, usize::MAX),
        vec![kv("a5", "z"), kv("a3", "y"), kv("a1", "x")]
    );
    assert_eq!(
        visited(&reader, prefix_range(b"a"), false, 1),
        vec![kv("a1", "x")]
    );
}

#[test]
fn prefix_range_handles_trailing_ff() {
    assert_eq!(
        prefix_range(&[1, 0xff]),
        (Bound::Included(vec![1, 0xff]), Bound::Excluded(vec![2]))
    );
    assert_eq!(
        prefix_range(&[0xff]),
        (Bound::Included(vec![0xff]), Bound::Unbounded)
    );
}

#[test]
fn second_writer_waits_for_the_first_and_then_conflicts() {
    let store = Store::in_memory().expect("store");
    let mut first = store.begin().expect("begin");
    let mut second = store.begin().expect("begin");
    first.put(b"k".to_vec(), b"1".to_vec()).expect("put");
    // The key is locked by `first` until it ends.
    assert_eq!(second.put(b"k".to_vec(), b"2".to_vec()), Err(Error::Busy));
    let wait = second.take_lock_wait().expect("something to wait for");
    assert!(!wait.wait(std::time::Duration::from_millis(10)));
    first.commit().expect("first commits");
    assert!(wait.wait(std::time::Duration::from_secs(5)));
    second.stop_waiting();
    // `first` committed the key after `second`'s snapshot: writing it now is a conflict.
    assert_eq!(
        second.put(b"k".to_vec(), b"2".to_vec()),
        Err(Error::Conflict)
    );
    assert!(second.take_write_conflict());
    // On a newer snapshot the write goes through.
    second.refresh_snapshot().expect("refresh");
    second.put(b"k".to_vec(), b"2".to_vec()).expect("put");
    second.commit().expect("second commits");
    let reader = store.begin().expect("begin");
    assert_eq!(reader.get(b"k").expect("get"), Some(b"2".to_vec()));
}

#[test]
fn a_rolled_back_writer_lets_the_waiter_through() {
    let store = Store::in_memory().expect("store");
    let mut first = store.begin().expect("begin");
    let mut second = store.begin().expect("begin");
    first.put(b"k".to_vec(), b"1".to_vec()).expect("put");
    assert_eq!(second.put(b"k".to_vec(), b"2".to_vec()), Err(Error::Busy));
    let wait = second.take_lock_wait().expect("something to wait for");
    first.rollback();
    assert!(wait.wait(std::time::Duration::from_secs(5)));
    second.stop_waiting();
    second.put(b"k".to_vec(), b"2".to_vec()).expect("put");
    second.commit().expect("commit");
}

#[test]
fn waiting_in_a_cycle_is_a_deadlock() {
    let store = Store::in_memory().expect("store");
    let mut first = store.begin().expect("begin");
    let mut second = store.begin().expect("begin");
    first.put(b"a".to_vec(), b"1".to_vec()).expect("put");
    second.put(b"b".to_vec(), b"2".to_vec()).expect("put");
    assert_eq!(first.put(b"b".to_vec(), b"1".to_vec()), Err(Error::Busy));
    assert_eq!(
        second.put(b"a".to_vec(), b"2".to_vec()),
        Err(Error::Deadlock)
    );
}

#[test]
fn first_committer_wins_and_loser_gets_conflict() {
    let store = Store::in_memory().expect("store");
    let mut first = store.begin().expect("begin");
    let second = store.begin().expect("begin");
    first.put(b"k".to_vec(), b"1".to_vec()).expect("put");
    first.commit().expect("first commits");
    // `second` validates a read of the key at commit.
    let mut second = second;
    second.validate_key(b"k");
    second.put(b"other".to_vec(), b"2".to_vec()).expect("put");
    assert_eq!(second.commit(), Err(Error::Conflict));
    let reader = store.begin().expect("begin");
    assert_eq!(reader.get(b"k").expect("get"), Some(b"1".to_vec()));
}

#[test]
fn disjoint_writers_both_commit() {
    let store = Store::in_memory().expect("store");
    let mut first = store.begin().expect("begin");
    let mut second = store.begin().expect("begin");
    first.put(b"a".to_vec(), b"1".to_vec()).expect("put");
    second.put(b"b".to_vec(), b"2".to_vec()).expect("put");
    first.commit().expect("commit");
    second.commit().expect("commit");
}

#[test]
fn validated_range_conflicts_with_later_commit() {
    let store = Store::in_memory().expect("store");
    let mut validating = store.begin().expect("begin");
    validating.validate_range(prefix_range(b"parent/"));
    validating
        .put(b"child/1".to_vec(), b"x".to_vec())
        .expect("put");
    let mut writer = store.begin().expect("begin");
    writer.delete(b"parent/7".to_vec()).expect("delete");
    writer.commit().expect("commit");
    assert_eq!(validating.commit(), Err(Error::Conflict));
}

#[test]
fn snapshot_does_not_move_while_others_commit() {
    let store = Store::in_memory().expect("store");
    let mut setup = store.begin().expect("begin");
    setup.put(b"k".to_vec(), b"old".to_vec()).expect("put");
    setup.commit().expect("commit");
    let reader = store.begin().expect("begin");
    for round in 0..10 {
        let mut writer = store.begin().expect("begin");
        writer
            .put(b"k".to_vec(), format!("new{round}").into_bytes())
            .expect("put");
        writer
            .put(format!("n{round}").into_bytes(), b"v".to_vec())
            .expect("put");
        writer.commit().expect("commit");
        assert_eq!(reader.get(b"k").expect("get"), Some(b"old".to_vec()));
        assert_eq!(collect(&reader, b"n", false).len(), 0);
    }
}

#[test]
fn savepoints_roll_back_later_writes_only() {
    let store = Store::in_memory().expect("store");
    let mut txn = store.begin().expect("begin");
    txn.put(b"a".to_vec(), b"1".to_vec()).expect("put");
    let savepoint = txn.savepoint();
    txn.put(b"b".to_vec(), b"2".to_vec()).expect("put");
    txn.delete(b"a".to_vec()).expect("delete");
    txn.rollback_to(&savepoint);
    assert_eq!(txn.get(b"a").expect("get"), Some(b"1".to_vec()));
    assert_eq!(txn.get(b"b").expect("get"), None);
    txn.commit().expect("commit");
    let reader = store.begin().expect("begin");
    assert_eq!(collect(&reader, b"", false), vec![kv("a", "1")]);
}

#[test]
fn rolled_back_transaction_leaves_nothing() {
    let store = Store::in_memory().expect("store");
    let mut txn = store.begin().expect("begin");
    txn.put(b"a".to_vec(), b"1".to_vec()).expect("put");
    txn.rollback();
    let reader = store.begin().expect("begin");
    assert_eq!(reader.get(b"a").expect("get"), None);
}

#[test]
fn commits_survive_reopen_and_second_open_is_refused() {
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("data.redb");
    {
        let store = Store::open(&path, StoreOptions::default()).expect("open");
        match Store::open(&path, StoreOptions::default()) {
            Err(Error::Locked(_)) => {}
            Err(other) => panic!("expected Locked, got {other:?}"),
            Ok(_) => panic!("second open of the same file must fail"),
        }
        let mut txn = store.begin().expect("begin");
        txn.put(b"durable".to_vec(), b"yes".to_vec()).expect("put");
        txn.commit().expect("commit");
    }
    let store = Store::open(&path, StoreOptions::default()).expect("reopen");
    let reader = store.begin().expect("begin");
    assert_eq!(reader.get(b"durable").expect("get"), Some(b"yes".to_vec()));
}

#[test]
fn a_new_file_appears_whole_and_creation_leftovers_do_not_matter() {
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("data.redb");
    // What a creator killed before redb wrote its header leaves behind: a file that is no database.
    let leftover = directory
        .path()
        .join(format!("data.redb.creating-{}", std::process::id()));
    std::fs::write(&leftover, b"torn").expect("leftover");
    {
        let store = Store::open(&path, StoreOptions::default()).expect("open creates");
        let mut txn = store.begin().expect("begin");
        txn.put(b"k".to_vec(), b"v".to_vec()).expect("put");
        txn.commit().expect("commit");
    }
    assert!(!leftover.exists(), "the creation file is removed");
    let names: Vec<String> = std::fs::read_dir(directory.path())
        .expect("list")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names, ["data.redb"]);
    let store = Store::open(&path, StoreOptions::default()).expect("reopen");
    let reader = store.begin().expect("begin");
    assert_eq!(reader.get(b"k").expect("get"), Some(b"v".to_vec()));
}

#[test]
fn limits_are_enforced() {
    let store = Store::in_memory().expect("store");
    let mut txn = store.begin().expect("begin");
    let error = txn
        .put(vec![0; qubedb_kv::KEY_BYTES_MAX + 1], vec![])
        .expect_err("oversized key");
    assert!(matches!(error, Error::Limit(ref text) if text.contains("key_bytes_max")));
}

#[test]
fn concurrent_counter_increments_never_lose_updates() {
    let store = Store::in_memory().expect("store");
    let threads = 8;
    let increments = 50;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut done = 0;
                let mut conflicts = 0;
                while done < increments {
                    let mut txn = store.begin().expect("begin");
                    let current = txn
                        .get(b"counter")
                        .expect("get")
                        .map(|bytes| u64::from_be_bytes(bytes.try_into().expect("8 bytes")))
                        .unwrap_or(0);
                    match txn.put(b"counter".to_vec(), (current + 1).to_be_bytes().to_vec()) {
                        Ok(()) => {}
                        Err(Error::Busy) => {
                            let wait = txn.take_lock_wait().expect("lock to wait for");
                            drop(txn);
                            wait.wait(std::time::Duration::from_secs(5));
                            continue;
                        }
                        Err(Error::Conflict) => {
                            conflicts += 1;
                            continue;
                        }
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                    match txn.commit() {
                        Ok(()) => done += 1,
                        Err(Error::Conflict) => conflicts += 1,
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                }
                conflicts
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
    let reader = store.begin().expect("begin");
    let value = reader
        .get(b"counter")
        .expect("get")
        .expect("counter exists");
    assert_eq!(
        u64::from_be_bytes(value.try_into().expect("8 bytes")),
        threads * increments
    );
}

#[test]
fn group_commit_with_many_durable_committers() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(&directory.path().join("data.redb"), StoreOptions::default()).expect("open");
    let store = Arc::new(store);
    let handles: Vec<_> = (0..16u32)
        .map(|thread| {
            let store = store.clone();
            std::thread::spawn(move || {
                for index in 0..20u32 {
                    let mut txn = store.begin().expect("begin");
                    let key = format!("t{thread:02}/{index:03}").into_bytes();
                    txn.put(key, b"v".to_vec()).expect("put");
                    txn.commit().expect("disjoint keys never conflict");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
    let reader = store.begin().expect("begin");
    assert_eq!(collect(&reader, b"t", false).len(), 16 * 20);
}

#[derive(Debug, Clone)]
enum Operation {
    Put(u8, u8),
    Delete(u8),
    Savepoint,
    RollbackToSavepoint,
    Commit,
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        4 => (0u8..16, any::<u8>()).prop_map(|(key, value)| Operation::Put(key, value)),
        2 => (0u8..16).prop_map(Operation::Delete),
        1 => Just(Operation::Savepoint),
        1 => Just(Operation::RollbackToSavepoint),
        1 => Just(Operation::Commit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any sequence of writes, savepoints and commits leaves the store equal to a BTreeMap model, and every
    /// scan (both directions) agrees with the model's view at that moment.
    #[test]
    fn matches_btreemap_model(operations in proptest::collection::vec(operation(), 1..80)) {
        let store = Store::in_memory().expect("store");
        let mut committed: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut pending = committed.clone();
        let mut model_savepoint = pending.clone();
        let mut txn = store.begin().expect("begin");
        let mut savepoint = txn.savepoint();
        for operation in operations {
            match operation {
                Operation::Put(key, value) => {
                    txn.put(vec![key], vec![value]).expect("put");
                    pending.insert(vec![key], vec![value]);
                }
                Operation::Delete(key) => {
                    txn.delete(vec![key]).expect("delete");
                    pending.remove(&vec![key]);
                }
                Operation::Savepoint => {
                    savepoint = txn.savepoint();
                    model_savepoint = pending.clone();
                }
                Operation::RollbackToSavepoint => {
                    txn.rollback_to(&savepoint);
                    pending = model_savepoint.clone();
                }
                Operation::Commit => {
                    txn.commit().expect("commit");
                    committed = pending.clone();
                    txn = store.begin().expect("begin");
                    savepoint = txn.savepoint();
                    model_savepoint = pending.clone();
                }
            }
            let forward = collect(&txn, b"", false);
            let expected: Vec<_> = pending.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(&forward, &expected);
            let mut backward = collect(&txn, b"", true);
            backward.reverse();
            prop_assert_eq!(&backward, &expected);
        }
        drop(txn);
        let reader = store.begin().expect("begin");
        let stored = collect(&reader, b"", false);
        let expected: Vec<_> = committed.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(stored, expected);
    }
}

#[derive(Debug, Clone)]
enum NestedOperation {
    Put(u8, u8),
    Delete(u8),
    /// Takes a savepoint on top of the stack.
    Savepoint,
    /// Rolls back to the savepoint at this depth (modulo the stack's height), dropping those above it.
    RollbackTo(usize),
    /// Drops the savepoints from this depth up (`RELEASE`).
    Release(usize),
    /// Takes a read view and checks it still shows its moment after later writes.
    View,
}

fn nested_operation() -> impl Strategy<Value = NestedOperation> {
    prop_oneof![
        4 => (0u8..12, any::<u8>()).prop_map(|(key, value)| NestedOperation::Put(key, value)),
        2 => (0u8..12).prop_map(NestedOperation::Delete),
        2 => Just(NestedOperation::Savepoint),
        2 => (0usize..4).prop_map(NestedOperation::RollbackTo),
        1 => (0usize..4).prop_map(NestedOperation::Release),
        1 => Just(NestedOperation::View),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Nested savepoints (the undo log behind them): rolling back to any of them, again and again,
    /// releasing some, and read views taken on the way, all agree with a BTreeMap model.
    #[test]
    fn nested_savepoints_match_model(operations in proptest::collection::vec(nested_operation(), 1..100)) {
        let store = Store::in_memory().expect("store");
        let mut txn = store.begin().expect("begin");
        let mut pending: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut savepoints = Vec::new();
        let mut views = Vec::new();
        for operation in operations {
            match operation {
                NestedOperation::Put(key, value) => {
                    txn.put(vec![key], vec![value]).expect("put");
                    pending.insert(vec![key], vec![value]);
                }
                NestedOperation::Delete(key) => {
                    txn.delete(vec![key]).expect("delete");
                    pending.remove(&vec![key]);
                }
                NestedOperation::Savepoint => savepoints.push((txn.savepoint(), pending.clone())),
                NestedOperation::RollbackTo(depth) if !savepoints.is_empty() => {
                    let depth = depth % savepoints.len();
                    savepoints.truncate(depth + 1);
                    let (savepoint, model) = &savepoints[depth];
                    txn.rollback_to(savepoint);
                    pending = model.clone();
                }
                NestedOperation::Release(depth) if !savepoints.is_empty() => {
                    savepoints.truncate(depth % savepoints.len());
                }
                NestedOperation::View => views.push((txn.read_view(), pending.clone())),
                NestedOperation::RollbackTo(_) | NestedOperation::Release(_) => {}
            }
            let forward = collect(&txn, b"", false);
            let expected: Vec<_> = pending.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(&forward, &expected);
        }
        for (view, model) in views {
            let seen: Vec<_> = view
                .scan(prefix_range(b""), false)
                .expect("scan")
                .map(|pair| pair.expect("pair"))
                .collect();
            let expected: Vec<_> = model.into_iter().collect();
            prop_assert_eq!(seen, expected);
        }
        txn.commit().expect("commit");
        let reader = store.begin().expect("begin");
        let expected: Vec<_> = pending.into_iter().collect();
        prop_assert_eq!(collect(&reader, b"", false), expected);
    }
}
