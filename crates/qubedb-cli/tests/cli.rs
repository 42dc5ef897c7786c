//! The `qubedb` binary: `sql` runs statements from -c or stdin, prints results and tags, and stops at the
//! first error with a non-zero exit status; data persists between runs.

use std::io::Write;
use std::process::{Command, Stdio};

fn qubedb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_qubedb"))
}

#[test]
fn sql_runs_statements_and_prints_results_and_tags() {
    let directory = tempfile::tempdir().expect("tempdir");
    let output = qubedb()
        .args(["sql", "--data"])
        .arg(directory.path())
        .args(["-c", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO t VALUES (1, 'a'), (2, NULL); SELECT * FROM t ORDER BY id;"])
        .output()
        .expect("run qubedb");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(
        stdout,
        "CREATE TABLE\nINSERT 0 2\n id | name \n----+------\n  1 | a\n  2 | \n(2 rows)\n\n"
    );
    // The data is still there for the next process, read from stdin, as CSV.
    let mut child = qubedb()
        .args(["sql", "--format", "csv", "--data"])
        .arg(directory.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"SELECT id, name FROM t ORDER BY id")
        .expect("write");
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).expect("utf-8"),
        "id,name\n1,a\n2,\n"
    );
}

#[test]
fn sql_stops_at_the_first_error() {
    let directory = tempfile::tempdir().expect("tempdir");
    let output = qubedb()
        .args(["sql", "--format", "json", "--data"])
        .arg(directory.path())
        .args(["-c", "SELECT 1 AS one; SELECT * FROM nowhere; SELECT 2;"])
        .output()
        .expect("run qubedb");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(output.stdout).expect("utf-8"),
        "{\"one\":1}\n"
    );
    let stderr = String::from_utf8(output.stderr).expect("utf-8");
    assert!(stderr.contains("42P01"), "{stderr}");
}
