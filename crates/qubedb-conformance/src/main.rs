//! `qubedb-conformance`: runs the SQLite sqllogictest corpus in `shared/conformance/sqlite-slt/` against
//! embedded QubeDB, record by record, with the original harness's rules (label `postgresql`, hash threshold
//! 8, values rendered by the expected type letter, `skipif` / `onlyif` / conditional `halt`), and writes
//! per-file counts.
//!
//! ```text
//! qubedb-conformance sqlite [--corpus DIR] [--filter SUBSTRING] [--results FILE] [--baseline FILE] [--update-baseline]
//! ```
//!
//! With `--baseline`, the run fails (exit 1) if the passed count drops below the baseline's; with
//! `--update-baseline` it writes the new counts there instead. Failures are grouped by the first line of
//! the error (or "wrong result") so the largest causes show first.

use qubedb_conformance::sqlite;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

const POSTGRES_TITLE: &str = "PostgreSQL regression files (postgres-regress, statements)";

fn usage() -> ExitCode {
    eprintln!(
        "usage: qubedb-conformance sqlite [--corpus DIR] [--filter SUBSTRING] [--results FILE] [--baseline FILE] [--update-baseline]\n       qubedb-conformance duckdb [DIR]\n       qubedb-conformance postgres [DIR]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let Some(suite) = arguments.first() else {
        return usage();
    };
    if suite == "duckdb" {
        let corpus = PathBuf::from(
            arguments
                .get(1)
                .cloned()
                .unwrap_or_else(|| "../shared/conformance/duckdb-slt".to_string()),
        );
        return match qubedb_conformance::duckdb::run_corpus(&corpus) {
            Ok(summary) => {
                println!(
                    "{}",
                    summary.report_titled("DuckDB sqllogictest files (duckdb-slt)")
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if suite == "postgres" {
        let corpus = PathBuf::from(
            arguments
                .get(1)
                .cloned()
                .unwrap_or_else(|| "../shared/conformance/postgres-regress".to_string()),
        );
        // pgvector's folder holds pgvector's files, run in their own schedule.
        let schedule = if corpus.file_name().is_some_and(|name| name == "pgvector") {
            qubedb_conformance::postgres::PGVECTOR_SCHEDULE
        } else {
            qubedb_conformance::postgres::SCHEDULE
        };
        return match qubedb_conformance::postgres::run_schedule(&corpus, schedule) {
            Ok(summary) => {
                println!("{}", summary.report_titled(POSTGRES_TITLE));
                // `QUBEDB_FAILURES=FILE`: every failing statement with its expected and actual output.
                if let Some(path) = std::env::var_os("QUBEDB_FAILURES")
                    && let Err(error) =
                        std::fs::write(&path, summary.failures_report(POSTGRES_TITLE))
                {
                    eprintln!("error: cannot write the failures: {error}");
                    return ExitCode::FAILURE;
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if suite != "sqlite" {
        return usage();
    }
    let mut corpus = PathBuf::from("../shared/conformance/sqlite-slt");
    let mut filter = None;
    let mut results = None;
    let mut baseline = None;
    let mut update_baseline = false;
    let mut index = 1;
    while index < arguments.len() {
        let value = arguments.get(index + 1).cloned();
        match arguments[index].as_str() {
            "--corpus" => corpus = PathBuf::from(value.unwrap_or_default()),
            "--filter" => filter = value,
            "--results" => results = value.map(PathBuf::from),
            "--baseline" => baseline = value.map(PathBuf::from),
            "--update-baseline" => {
                update_baseline = true;
                index += 1;
                continue;
            }
            _ => return usage(),
        }
        index += 2;
    }
    let summary = match sqlite::run_corpus(&corpus, filter.as_deref()) {
        Ok(summary) => summary,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let report = summary.report();
    println!("{report}");
    if let Some(results) = &results
        && let Err(error) = std::fs::write(results, &report)
    {
        eprintln!("error: cannot write {}: {error}", results.display());
        return ExitCode::FAILURE;
    }
    if let Some(baseline) = baseline {
        let counts: BTreeMap<String, u64> =
            BTreeMap::from([("sqlite_passed".to_string(), summary.total.passed)]);
        if update_baseline {
            let text = serde_json::to_string_pretty(&counts).expect("counts serialize") + "\n";
            if let Err(error) = std::fs::write(&baseline, text) {
                eprintln!("error: cannot write {}: {error}", baseline.display());
                return ExitCode::FAILURE;
            }
        } else {
            let expected: BTreeMap<String, u64> = match std::fs::read_to_string(&baseline)
                .map_err(|error| error.to_string())
                .and_then(|text| serde_json::from_str(&text).map_err(|error| error.to_string()))
            {
                Ok(expected) => expected,
                Err(error) => {
                    eprintln!(
                        "error: cannot read baseline {}: {error}",
                        baseline.display()
                    );
                    return ExitCode::FAILURE;
                }
            };
            let floor = expected.get("sqlite_passed").copied().unwrap_or(0);
            if summary.total.passed < floor {
                eprintln!(
                    "conformance dropped: sqlite passed {} < baseline {floor}",
                    summary.total.passed
                );
                return ExitCode::FAILURE;
            }
            println!("sqlite passed {} >= baseline {floor}", summary.total.passed);
        }
    }
    ExitCode::SUCCESS
}
