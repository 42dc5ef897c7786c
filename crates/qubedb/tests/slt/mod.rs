//! Runs the `.slt` files in `tests/slt/` with the `sqllogictest` crate.
//!
//! Values are rendered as PostgreSQL's text format, except NULL as `NULL` and the empty string as `(empty)`
//! (sqllogictest's conventions). Errors render as `message (SQLSTATE)`, so `statement error 23505` matches the
//! code. Each file runs twice: in memory with the OLTP fast path on, and on disk with it off (so every
//! point statement in every file is checked to give the same result both ways). Regenerate expected output after a deliberate change with `QUBEDB_SLT_COMPLETE=1 cargo test`; `QUBEDB_SLT_ONLY=name` runs only the files whose name contains `name`.

use std::path::{Path, PathBuf};

use qubedb::{Database, Error};
use sqllogictest::{DBOutput, DefaultColumnType};

pub struct Engine {
    _directory: Option<tempfile::TempDir>,
    session: qubedb::Session,
}

impl Engine {
    fn in_memory() -> Engine {
        let database = Database::open_in_memory().expect("in-memory database");
        Engine {
            session: database.session(),
            _directory: None,
        }
    }

    /// On disk, and with the OLTP fast path off: every file must give the same results through
    /// DataFusion alone as with point statements on the fast path.
    fn on_disk() -> Engine {
        let directory = tempfile::tempdir().expect("temporary directory");
        let database = Database::open(directory.path()).expect("database in a directory");
        let mut session = database.session();
        session
            .run("SET qubedb.fast_path = off")
            .expect("the fast path can be turned off");
        Engine {
            session,
            _directory: Some(directory),
        }
    }
}

fn column_type(data_type: &qubedb::arrow::datatypes::DataType) -> DefaultColumnType {
    use qubedb::arrow::datatypes::DataType as A;
    match data_type {
        A::Int8 | A::Int16 | A::Int32 | A::Int64 | A::UInt8 | A::UInt16 | A::UInt32 | A::UInt64 => {
            DefaultColumnType::Integer
        }
        A::Float16 | A::Float32 | A::Float64 | A::Decimal128(..) | A::Decimal256(..) => {
            DefaultColumnType::FloatingPoint
        }
        A::Utf8 | A::LargeUtf8 | A::Utf8View => DefaultColumnType::Text,
        _ => DefaultColumnType::Any,
    }
}

impl sqllogictest::DB for Engine {
    type Error = Error;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Error> {
        let mut outcomes = self.session.run(sql)?;
        let outcome = outcomes.pop().expect("at least one statement");
        match &outcome.schema {
            None => Ok(DBOutput::StatementComplete(outcome.rows_affected)),
            Some(schema) => Ok(DBOutput::Rows {
                types: schema
                    .fields()
                    .iter()
                    .map(|field| column_type(field.data_type()))
                    .collect(),
                rows: outcome
                    .text_rows()
                    .into_iter()
                    .map(|row| {
                        row.into_iter()
                            .map(|value| match value {
                                None => "NULL".to_string(),
                                Some(text) if text.is_empty() => "(empty)".to_string(),
                                Some(text) => text.trim_end_matches('\n').to_string(),
                            })
                            .collect()
                    })
                    .collect(),
            }),
        }
    }

    fn engine_name(&self) -> &str {
        "qubedb"
    }
}

fn slt_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files = Vec::new();
    let mut stack = vec![root];
    while let Some(directory) = stack.pop() {
        for entry in std::fs::read_dir(&directory).expect("tests/slt is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|extension| extension == "slt") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no .slt files found");
    files
}

fn run_all(make: fn() -> Engine) {
    let mut failures = Vec::new();
    // `QUBEDB_SLT_ONLY=jsonb` runs only the files whose name contains it.
    let only = std::env::var("QUBEDB_SLT_ONLY").ok();
    for file in slt_files() {
        if let Some(only) = &only
            && !file.to_string_lossy().contains(only.as_str())
        {
            continue;
        }
        let mut runner = sqllogictest::Runner::new(move || async move { Ok(make()) });
        runner.add_label("qubedb");
        if std::env::var_os("QUBEDB_SLT_COMPLETE").is_some() {
            let column_validator = sqllogictest::default_column_validator;
            futures::executor::block_on(runner.update_test_file(
                &file,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                column_validator,
            ))
            .unwrap_or_else(|error| panic!("completing {}: {error}", file.display()));
            continue;
        }
        if let Err(error) = runner.run_file(&file) {
            failures.push(format!("{}:\n{}", file.display(), error.display(true)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} slt file(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn slt_in_memory() {
    run_all(Engine::in_memory);
}

#[test]
fn slt_on_disk() {
    run_all(Engine::on_disk);
}
