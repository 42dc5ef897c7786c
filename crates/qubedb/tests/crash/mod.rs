//! Durability under `kill -9`: a child process commits two-row transactions and reports each id once its
//! COMMIT returned; the parent kills it with SIGKILL at a random moment, reopens the directory, and checks
//! that every acknowledged transaction is there, whole, and that no partial transaction is visible.
//!
//! The child is this same test binary, re-run with `QUBEDB_CRASH_CHILD_DIR` set, executing only
//! `crash::crash_child` (which does nothing in a normal run).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use qubedb::Database;
use rand::Rng;

const CHILD_DIRECTORY: &str = "QUBEDB_CRASH_CHILD_DIR";
const CHILD_START: &str = "QUBEDB_CRASH_CHILD_START";
const ROUNDS: usize = 20;

#[test]
fn crash_child() {
    let Some(directory) = std::env::var_os(CHILD_DIRECTORY) else {
        return;
    };
    let start: i64 = std::env::var(CHILD_START)
        .expect("start id")
        .parse()
        .expect("start id is a number");
    let database = Database::open(&directory).expect("child opens the database");
    let mut session = database.session();
    session
        .run("CREATE TABLE IF NOT EXISTS acked (id BIGINT PRIMARY KEY, payload TEXT); CREATE TABLE IF NOT EXISTS pair (id BIGINT PRIMARY KEY)")
        .expect("schema");
    // A temporary table the kill leaves behind: the next open drops it.
    session
        .run("CREATE TEMP TABLE scratch (x int); INSERT INTO scratch VALUES (1)")
        .expect("temporary table");
    for id in start.. {
        session.execute("BEGIN", &[]).expect("begin");
        session
            .execute(
                "INSERT INTO acked VALUES ($1, repeat('x', 200))",
                &[id.into()],
            )
            .expect("insert");
        session
            .execute("INSERT INTO pair VALUES ($1)", &[id.into()])
            .expect("insert pair");
        session.execute("COMMIT", &[]).expect("commit");
        println!("ACK {id}");
    }
}

fn ids(session: &mut qubedb::Session, table: &str) -> BTreeSet<i64> {
    session
        .query(&format!("SELECT id FROM {table}"), &[])
        .expect("query")
        .rows()
        .expect("rows")
        .iter()
        .map(|row| row.get::<i64>(0).expect("id"))
        .collect()
}

/// Starts the child on `directory`, its first id `start`.
fn spawn_child(directory: &std::path::Path, start: i64) -> std::process::Child {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "crash::crash_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIRECTORY, directory)
        .env(CHILD_START, start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child")
}

#[test]
fn a_kill_during_the_first_open_leaves_a_directory_that_opens() {
    let mut rng = rand::rng();
    for round in 0..6 {
        let directory = tempfile::tempdir().expect("tempdir");
        let mut child = spawn_child(directory.path(), 1);
        // Early: while the child creates the store files and the `postgres` database.
        std::thread::sleep(Duration::from_millis(rng.random_range(1..120)));
        child.kill().expect("SIGKILL the child");
        child.wait().expect("reap child");
        let cluster = qubedb::Cluster::open(directory.path())
            .unwrap_or_else(|error| panic!("round {round}: reopen after kill -9: {error:?}"));
        let names: Vec<String> = cluster.databases().into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["postgres", "qubedb"], "round {round}");
        cluster
            .database("postgres")
            .expect("postgres opens")
            .session()
            .run("SELECT 1")
            .expect("postgres answers");
    }
}

#[test]
fn acknowledged_commits_survive_kill_9() {
    let directory = tempfile::tempdir().expect("tempdir");
    let mut rng = rand::rng();
    let mut acknowledged = BTreeSet::new();
    let mut next = 1i64;
    for round in 0..ROUNDS {
        let mut child = spawn_child(directory.path(), next);
        let stdout = child.stdout.take().expect("child stdout");
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(id) = line.strip_prefix("ACK ") {
                    seen.push(id.trim().parse::<i64>().expect("acknowledged id"));
                }
            }
            seen
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(150..600)));
        child.kill().expect("SIGKILL the child");
        child.wait().expect("reap child");
        let seen = reader.join().expect("reader thread");
        acknowledged.extend(seen.iter().copied());

        let database = Database::open(directory.path()).expect("reopen after kill -9");
        let mut session = database.session();
        let stored = ids(&mut session, "acked");
        let pairs = ids(&mut session, "pair");
        let lost: Vec<_> = acknowledged.difference(&stored).collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged ids lost: {lost:?}"
        );
        assert_eq!(
            stored, pairs,
            "round {round}: a transaction is partially visible"
        );
        let leftover = session
            .query(
                "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'pg_temp_%'",
                &[],
            )
            .expect("namespaces")
            .rows()
            .expect("rows")[0]
            .get::<i64>(0)
            .expect("count");
        assert_eq!(
            leftover, 0,
            "round {round}: the killed session's temporary schema survived the reopen"
        );
        next = stored.iter().max().copied().unwrap_or(0) + 1;
    }
    assert!(
        !acknowledged.is_empty(),
        "the child never acknowledged a commit"
    );
}
