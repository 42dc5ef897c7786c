//! Runs the SQLite sqllogictest corpus, DuckDB's `.test` files and PostgreSQL's regression files
//! (`shared/conformance/`, beside the repository) against embedded QubeDB, writes
//! `conformance/RESULTS.md`, and fails if fewer records (statements, for PostgreSQL) pass than
//! `conformance/baseline.json` records for any suite. After an improvement, raise the baseline with
//! `QUBEDB_UPDATE_BASELINE=1 cargo test -p qubedb-conformance`.

use std::collections::BTreeMap;
use std::path::Path;

use qubedb_conformance::{duckdb, postgres, sqlite};

#[test]
fn conformance_does_not_regress() {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shared = repository.join("../shared/conformance");
    assert!(
        shared.is_dir(),
        "the conformance corpus must be beside the repository at {}",
        shared.display()
    );
    let sqlite_summary =
        sqlite::run_corpus(&shared.join("sqlite-slt"), None).expect("SQLite corpus runs");
    let duckdb_summary =
        duckdb::run_corpus(&shared.join("duckdb-slt")).expect("DuckDB corpus runs");
    let postgres_summary = postgres::run_corpus(&shared.join("postgres-regress"))
        .expect("PostgreSQL regression files run");
    let results = format!(
        "{}\n{}\n{}",
        sqlite_summary.report(),
        duckdb_summary.report_titled("DuckDB sqllogictest files (duckdb-slt)"),
        postgres_summary.report_titled(
            "PostgreSQL regression files (postgres-regress, statement by statement)"
        )
    );
    std::fs::write(repository.join("conformance/RESULTS.md"), results)
        .expect("write conformance/RESULTS.md");
    let counts = BTreeMap::from([
        ("duckdb_passed".to_string(), duckdb_summary.total.passed),
        ("sqlite_passed".to_string(), sqlite_summary.total.passed),
        ("postgres_passed".to_string(), postgres_summary.total.passed),
    ]);
    let baseline_path = repository.join("conformance/baseline.json");
    if std::env::var_os("QUBEDB_UPDATE_BASELINE").is_some() {
        // DuckDB's files compare unordered results row by row, and row order varies between parallel runs:
        // its floor keeps a margin of 1% so the ratchet does not flap.
        let mut floors = counts.clone();
        if let Some(duckdb) = floors.get_mut("duckdb_passed") {
            *duckdb -= *duckdb / 100;
        }
        let text = serde_json::to_string_pretty(&floors).expect("serialize") + "\n";
        std::fs::write(&baseline_path, text).expect("write baseline");
        return;
    }
    let baseline: BTreeMap<String, u64> = serde_json::from_str(
        &std::fs::read_to_string(&baseline_path).expect("read conformance/baseline.json"),
    )
    .expect("baseline is JSON");
    for (suite, passed) in &counts {
        let floor = baseline.get(suite).copied().unwrap_or(0);
        assert!(
            *passed >= floor,
            "{suite}: {passed} records pass, fewer than the baseline {floor} (see conformance/RESULTS.md)"
        );
        println!("{suite}: {passed} (baseline {floor})");
    }
}
