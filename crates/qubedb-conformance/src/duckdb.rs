//! DuckDB's sqllogictest dialect (`shared/conformance/duckdb-slt/`), run against embedded QubeDB.
//!
//! Differences from the SQLite format that this runner understands: results are one row per line with
//! TAB-separated columns; `statement error` may carry an expected message after `----` (QubeDB's messages are
//! PostgreSQL's, so only the fact of an error is compared); `loop i A B`, `foreach x a b c` (with `<integral>`
//! style type lists) and `endloop` repeat records with `${x}` substituted; `mode skip` / `mode unskip` bracket
//! records not run; `require X` skips the whole file (QubeDB has none of DuckDB's extensions), except
//! `require json`: JSON is built in, so the json files run against QubeDB's (PostgreSQL's) JSON and
//! score what they score; `load` skips
//! the file (it needs DuckDB's database files); `restart` reopens nothing (files run in memory); and
//! `PRAGMA enable_verification` configures DuckDB's own harness and is ignored. Values are rendered as DuckDB
//! prints them: booleans `true` / `false`, NULL `NULL`, the empty string `(empty)`.

use std::panic::AssertUnwindSafe;
use std::path::Path;

use qubedb::Database;
use qubedb::arrow::array::{Array, AsArray};
use qubedb::arrow::datatypes::DataType;

use crate::sqlite::{Counts, Failure, Mismatch, Summary, collect_files};

enum Record {
    Statement {
        expect_error: bool,
        sql: String,
    },
    Query {
        sort: Sort,
        sql: String,
        expected: Vec<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Rows,
    Values,
}

/// Runs every `.test` file under `corpus`.
pub fn run_corpus(corpus: &Path) -> Result<Summary, String> {
    let mut files = Vec::new();
    collect_files(corpus, &mut files)
        .map_err(|error| format!("cannot read {}: {error}", corpus.display()))?;
    files.sort();
    let mut summary = Summary::default();
    for file in files {
        let name = file
            .strip_prefix(corpus)
            .unwrap_or(&file)
            .display()
            .to_string();
        let text = std::fs::read_to_string(&file)
            .map_err(|error| format!("cannot read {name}: {error}"))?;
        eprintln!("{name}");
        let (counts, failures, skip_reason) = run_file(&name, &text);
        if let Some(reason) = skip_reason {
            summary.skipped_files.push((name.clone(), reason));
        }
        summary.total.add(&counts);
        summary.files.push((name, counts));
        summary.failures.extend(failures);
    }
    Ok(summary)
}

fn type_list(name: &str) -> Option<Vec<&'static str>> {
    let integral = vec![
        "tinyint",
        "smallint",
        "integer",
        "bigint",
        "hugeint",
        "utinyint",
        "usmallint",
        "uinteger",
        "ubigint",
        "uhugeint",
    ];
    Some(match name {
        "<integral>" => integral,
        "<signed>" => vec!["tinyint", "smallint", "integer", "bigint", "hugeint"],
        "<unsigned>" => vec!["utinyint", "usmallint", "uinteger", "ubigint", "uhugeint"],
        "<numeric>" => {
            let mut all = integral;
            all.extend(["float", "double"]);
            all
        }
        _ => return None,
    })
}

/// Expands `loop` / `foreach` blocks into plain lines.
fn expand(lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let words: Vec<&str> = lines[index].split_whitespace().collect();
        let header = match words.as_slice() {
            ["loop", variable, start, end] => match (start.parse::<i64>(), end.parse::<i64>()) {
                (Ok(start), Ok(end)) => Some((
                    variable.to_string(),
                    (start..end)
                        .map(|value| value.to_string())
                        .collect::<Vec<_>>(),
                )),
                _ => None,
            },
            ["foreach", variable, values @ ..] => Some((
                variable.to_string(),
                values
                    .iter()
                    .flat_map(|value| match type_list(value) {
                        Some(list) => list.into_iter().map(str::to_string).collect(),
                        None => vec![value.to_string()],
                    })
                    .collect(),
            )),
            _ => None,
        };
        let Some((variable, values)) = header else {
            out.push(lines[index].clone());
            index += 1;
            continue;
        };
        // Find the matching endloop (loops nest).
        let mut depth = 1;
        let mut end = index + 1;
        while end < lines.len() {
            let first = lines[end].split_whitespace().next().unwrap_or("");
            if first == "loop" || first == "foreach" {
                depth += 1;
            } else if first == "endloop" {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            end += 1;
        }
        let body = expand(&lines[index + 1..end.min(lines.len())]);
        for value in values {
            for line in &body {
                out.push(line.replace(&format!("${{{variable}}}"), &value));
            }
            out.push(String::new());
        }
        index = end + 1;
    }
    out
}

/// Runs one file; returns its counts, failures, and why the whole file was skipped, if it was.
fn run_file(name: &str, text: &str) -> (Counts, Vec<Failure>, Option<String>) {
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    let lines: Vec<String> = text
        .lines()
        .map(|line| line.trim_end_matches('\r').to_string())
        .collect();
    for line in &lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            // QubeDB has JSON built in: the json extension's files run (their functions are
            // DuckDB's, so many fail; RESULTS.md shows how many).
            ["require", "json"] => {}
            ["require", what, ..] => return (counts, failures, Some(format!("requires {what}"))),
            ["load", ..] => {
                return (
                    counts,
                    failures,
                    Some("loads a DuckDB database file".into()),
                );
            }
            _ => {}
        }
    }
    let lines = expand(&lines);
    let database = match Database::open_in_memory() {
        Ok(database) => database,
        Err(error) => {
            return (
                counts,
                failures,
                Some(format!("cannot open a database: {error}")),
            );
        }
    };
    let mut session = database.session();
    let mut skipping = false;
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index].trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        let start = index + 1;
        index += 1;
        match words.as_slice() {
            [] => continue,
            [first, ..] if first.starts_with('#') => continue,
            ["mode", "skip"] => {
                skipping = true;
                continue;
            }
            ["mode", "unskip"] => {
                skipping = false;
                continue;
            }
            ["halt"] => break,
            ["restart"] | ["endloop"] | ["mode", ..] => continue,
            _ => {}
        }
        let mut body = Vec::new();
        while index < lines.len() && !lines[index].trim().is_empty() {
            body.push(lines[index].clone());
            index += 1;
        }
        let separator = body.iter().position(|line| line.trim() == "----");
        let sql = match separator {
            Some(at) => body[..at].join("\n"),
            None => body.join("\n"),
        };
        let record = match words.as_slice() {
            ["statement", kind, ..] => Record::Statement {
                expect_error: *kind == "error",
                sql,
            },
            ["query", _types, rest @ ..] => Record::Query {
                sort: match rest.first() {
                    Some(&"rowsort") => Sort::Rows,
                    Some(&"valuesort") => Sort::Values,
                    _ => Sort::None,
                },
                sql,
                expected: separator
                    .map(|at| body[at + 1..].to_vec())
                    .unwrap_or_default(),
            },
            _ => continue,
        };
        if skipping {
            counts.skipped += 1;
            continue;
        }
        let sql_text = match &record {
            Record::Statement { sql, .. } | Record::Query { sql, .. } => sql.clone(),
        };
        let lower = sql_text.to_lowercase();
        if lower.starts_with("pragma enable_verification")
            || lower.starts_with("pragma disable_verification")
        {
            continue;
        }
        counts.run += 1;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| session.run(&sql_text)));
        let verdict = match (record, outcome) {
            (_, Err(_)) => Err(Mismatch::from("panic")),
            (Record::Statement { expect_error, .. }, Ok(result)) => match (expect_error, result) {
                (false, Ok(_)) | (true, Err(_)) => Ok(()),
                (true, Ok(_)) => Err(Mismatch {
                    cause: "statement succeeded but should fail".into(),
                    expected: "an error".into(),
                    actual: "success".into(),
                }),
                (false, Err(error)) => Err(Mismatch::error(&error, "success")),
            },
            (Record::Query { sort, expected, .. }, Ok(result)) => match result {
                Err(error) => Err(Mismatch::error(&error, &expected.join("\n"))),
                Ok(outcomes) => compare(outcomes.last(), sort, &expected),
            },
        };
        match verdict {
            Ok(()) => counts.passed += 1,
            Err(mismatch) => {
                counts.failed += 1;
                failures.push(mismatch.into_failure(format!("{name}:{start}"), sql_text));
            }
        }
    }
    (counts, failures, None)
}

fn render(column: &qubedb::arrow::array::ArrayRef, row: usize) -> String {
    if column.is_null(row) {
        return "NULL".into();
    }
    if column.data_type() == &DataType::Boolean {
        return if column.as_boolean().value(row) {
            "true".into()
        } else {
            "false".into()
        };
    }
    let text = qubedb::result::batch_text_value(column, row).unwrap_or_default();
    if text.is_empty() {
        "(empty)".into()
    } else {
        text
    }
}

fn compare(
    outcome: Option<&qubedb::StatementOutcome>,
    sort: Sort,
    expected: &[String],
) -> Result<(), Mismatch> {
    let outcome = outcome.ok_or(Mismatch::from("no result"))?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    for batch in &outcome.batches {
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|column| render(column, row))
                    .collect(),
            );
        }
    }
    let hashed = expected.len() == 1 && expected[0].contains(" values hashing to ");
    let mut actual_values: Vec<String> = rows.iter().flatten().cloned().collect();
    if hashed {
        match sort {
            Sort::Rows => {
                rows.sort();
                actual_values = rows.iter().flatten().cloned().collect();
            }
            Sort::Values => actual_values.sort(),
            Sort::None => {}
        }
        let mut digest = md5::Context::new();
        for value in &actual_values {
            digest.consume(value.as_bytes());
            digest.consume(b"\n");
        }
        let actual = format!(
            "{} values hashing to {:x}",
            actual_values.len(),
            digest.finalize()
        );
        return if expected[0].trim() == actual {
            Ok(())
        } else {
            Err(Mismatch::wrong_result(expected, &[actual]))
        };
    }
    let mut actual: Vec<Vec<String>> = rows;
    let mut wanted: Vec<Vec<String>> = expected
        .iter()
        .map(|line| {
            line.split('\t')
                .map(|value| value.trim().to_string())
                .collect()
        })
        .collect();
    match sort {
        Sort::Rows => {
            actual.sort();
            wanted.sort();
        }
        Sort::Values => {
            let mut left: Vec<String> = actual.into_iter().flatten().collect();
            let mut right: Vec<String> = wanted.into_iter().flatten().collect();
            left.sort();
            right.sort();
            return if left == right {
                Ok(())
            } else {
                Err(Mismatch::wrong_result(&right, &left))
            };
        }
        Sort::None => {}
    }
    if actual == wanted {
        Ok(())
    } else {
        let lines = |rows: &[Vec<String>]| -> Vec<String> {
            rows.iter().map(|row| row.join("\t")).collect()
        };
        Err(Mismatch::wrong_result(&lines(&wanted), &lines(&actual)))
    }
}
