//! The SQLite sqllogictest format and the original harness's rules, run against embedded QubeDB.
//!
//! Records are separated by blank lines; `skipif X` / `onlyif X` lines before a record decide whether it runs
//! for our label (`postgresql`); `halt` stops the file when its conditions apply; `hash-threshold N` (default
//! 8) replaces results of more than N values by the MD5 of the values, each followed by a newline.
//! Values are rendered by the expected type letter of their column: `I` as an integer, `R` as `%.3f`, `T` as
//! text (empty → `(empty)`, unprintable characters → `@`); booleans as 0 / 1; NULL as `NULL`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use qubedb::arrow::array::{Array, ArrayRef, AsArray};
use qubedb::arrow::datatypes::{DataType, Float32Type, Float64Type};
use qubedb::{Database, Session};

/// The labels this engine answers to.
const LABELS: &[&str] = &["postgresql"];
const DEFAULT_HASH_THRESHOLD: usize = 8;

/// Counts of one file or of the whole run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub run: u64,
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.run += other.run;
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }
}

/// One failing record, for the report.
#[derive(Debug, Clone)]
pub struct Failure {
    pub location: String,
    pub sql: String,
    pub cause: String,
    /// What the suite expected (rows, success, an error), as text.
    pub expected: String,
    /// What QubeDB gave.
    pub actual: String,
}

/// Why a record failed: the cause it is grouped under, and what was expected and given instead.
#[derive(Debug, Clone, Default)]
pub struct Mismatch {
    pub cause: String,
    pub expected: String,
    pub actual: String,
}

impl Mismatch {
    /// Different results: the expected lines against the actual ones.
    pub fn wrong_result(expected: &[String], actual: &[String]) -> Mismatch {
        Mismatch {
            cause: "wrong result".into(),
            expected: expected.join("\n"),
            actual: actual.join("\n"),
        }
    }

    /// An error where the record expected `expected`.
    pub fn error(error: &qubedb::Error, expected: &str) -> Mismatch {
        Mismatch {
            cause: cause_of(error),
            expected: expected.into(),
            actual: format!("ERROR {}: {}", error.code, error.message),
        }
    }

    pub fn into_failure(self, location: String, sql: String) -> Failure {
        Failure {
            location,
            sql,
            cause: self.cause,
            expected: self.expected,
            actual: self.actual,
        }
    }
}

impl From<String> for Mismatch {
    fn from(cause: String) -> Mismatch {
        Mismatch {
            cause,
            ..Mismatch::default()
        }
    }
}

impl From<&str> for Mismatch {
    fn from(cause: &str) -> Mismatch {
        Mismatch::from(cause.to_string())
    }
}

/// The outcome of a run.
#[derive(Debug, Default)]
pub struct Summary {
    pub files: Vec<(String, Counts)>,
    pub total: Counts,
    pub failures: Vec<Failure>,
    /// Files not run at all, with the reason.
    pub skipped_files: Vec<(String, String)>,
}

impl Summary {
    /// A Markdown report: totals, per-file counts, and the largest failure causes with an example each.
    pub fn report(&self) -> String {
        self.report_titled("SQLite sqllogictest corpus (label postgresql, hash threshold 8)")
    }

    /// Every failing record, grouped by cause (largest first): location, SQL, expected and actual.
    /// Large: written next to RESULTS.md by the conformance test and not committed.
    pub fn failures_report(&self, title: &str) -> String {
        let mut groups: BTreeMap<&str, Vec<&Failure>> = BTreeMap::new();
        for failure in &self.failures {
            groups
                .entry(failure.cause.as_str())
                .or_default()
                .push(failure);
        }
        let mut groups: Vec<_> = groups.into_iter().collect();
        groups.sort_by_key(|(_, failures)| std::cmp::Reverse(failures.len()));
        let clip = |text: &str| -> String {
            let clipped: String = text.chars().take(2000).collect();
            if clipped.len() < text.len() {
                format!("{clipped}\n...")
            } else {
                clipped
            }
        };
        let mut out = format!("# Failures: {title}\n");
        for (cause, failures) in groups {
            let _ = writeln!(out, "\n## {} × {cause}\n", failures.len());
            for failure in failures {
                let _ = writeln!(
                    out,
                    "### {}\n```sql\n{}\n```\nexpected:\n```\n{}\n```\nactual:\n```\n{}\n```",
                    failure.location,
                    clip(&failure.sql),
                    clip(&failure.expected),
                    clip(&failure.actual)
                );
            }
        }
        out
    }

    /// The report under a title of the caller's choosing.
    pub fn report_titled(&self, title: &str) -> String {
        let mut out = String::new();
        let percent = |counts: &Counts| {
            if counts.run == 0 {
                0.0
            } else {
                100.0 * counts.passed as f64 / counts.run as f64
            }
        };
        let _ = writeln!(out, "# {title}\n");
        let _ = writeln!(
            out,
            "Total: {} run, {} passed ({:.2}%), {} failed, {} skipped.\n",
            self.total.run,
            self.total.passed,
            percent(&self.total),
            self.total.failed,
            self.total.skipped
        );
        let _ = writeln!(
            out,
            "| file | run | passed | failed | skipped | pass % |\n|---|---|---|---|---|---|"
        );
        for (file, counts) in &self.files {
            let _ = writeln!(
                out,
                "| {file} | {} | {} | {} | {} | {:.2} |",
                counts.run,
                counts.passed,
                counts.failed,
                counts.skipped,
                percent(counts)
            );
        }
        if !self.skipped_files.is_empty() {
            let _ = writeln!(out, "\n## Files skipped\n");
            for (file, reason) in &self.skipped_files {
                let _ = writeln!(out, "- {file}: {reason}");
            }
        }
        let mut causes: BTreeMap<String, (usize, &Failure)> = BTreeMap::new();
        for failure in &self.failures {
            causes
                .entry(failure.cause.clone())
                .or_insert((0, failure))
                .0 += 1;
        }
        let mut causes: Vec<_> = causes.into_iter().collect();
        causes.sort_by_key(|(_, (count, _))| std::cmp::Reverse(*count));
        let _ = writeln!(
            out,
            "\n## Largest failure causes\n\nEvery failing record, with its SQL, expected and actual result: \
             `conformance/failures/` (written by the same run, not committed).\n"
        );
        for (cause, (count, example)) in causes.iter().take(20) {
            let sql: String = example.sql.chars().take(300).collect();
            let _ = writeln!(
                out,
                "- **{count}** × {cause}\n  - e.g. `{}`: `{}`",
                example.location,
                sql.replace('\n', " ")
            );
        }
        out
    }
}

/// What running one file gave: its counts and failures, or why it could not run.
type FileOutcome = Result<(Counts, Vec<Failure>), String>;

/// Runs every `.test` file under `corpus` whose path contains `filter`.
pub fn run_corpus(corpus: &Path, filter: Option<&str>) -> Result<Summary, String> {
    let mut files = Vec::new();
    collect_files(corpus, &mut files)
        .map_err(|error| format!("cannot read {}: {error}", corpus.display()))?;
    files.sort();
    let selected: Vec<(String, PathBuf)> = files
        .into_iter()
        .map(|file| {
            (
                file.strip_prefix(corpus)
                    .unwrap_or(&file)
                    .display()
                    .to_string(),
                file,
            )
        })
        .filter(|(name, _)| filter.is_none_or(|filter| name.contains(filter)))
        .collect();
    // Files are independent (a fresh database each): run them on every core, then report in file order.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, |count| count.get())
        .min(selected.len().max(1));
    let mut outcomes: Vec<(usize, FileOutcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((name, file)) = selected.get(index) else {
                            break;
                        };
                        let outcome = std::fs::read_to_string(file)
                            .map_err(|error| format!("cannot read {name}: {error}"))
                            .map(|text| run_file(name, &text));
                        if let Ok((counts, _)) = &outcome {
                            eprintln!(
                                "{name}: {} run, {} passed, {} failed",
                                counts.run, counts.passed, counts.failed
                            );
                        }
                        done.push((index, outcome));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .expect("a corpus worker panicked outside a record")
            })
            .collect()
    });
    outcomes.sort_by_key(|(index, _)| *index);
    let mut summary = Summary::default();
    for (index, outcome) in outcomes {
        let (counts, failures) = outcome?;
        summary.total.add(&counts);
        summary.files.push((selected[index].0.clone(), counts));
        summary.failures.extend(failures);
    }
    Ok(summary)
}

/// Every `.test` file below `directory`.
pub fn collect_files(directory: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(directory)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|extension| extension == "test")
        {
            files.push(path);
        }
    }
    Ok(())
}

enum Record {
    Statement {
        expect_error: bool,
        sql: String,
    },
    Query {
        types: String,
        sort: Sort,
        sql: String,
        expected: Vec<String>,
    },
    HashThreshold(usize),
    Halt,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Rows,
    Values,
}

struct Parsed {
    line: usize,
    skip: bool,
    record: Record,
}

/// Parses the file into records, deciding skips from the conditions (comments after a condition ignored).
fn parse(text: &str) -> Vec<Parsed> {
    let lines: Vec<&str> = text
        .lines()
        .map(|line| line.trim_end_matches('\r'))
        .collect();
    let mut records = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index].trim();
        if line.is_empty() || line.starts_with('#') {
            index += 1;
            continue;
        }
        let start = index + 1;
        let mut skip = false;
        while index < lines.len() {
            let words: Vec<&str> = lines[index].split_whitespace().collect();
            match words.as_slice() {
                ["skipif", label, ..] => skip |= LABELS.contains(label),
                ["onlyif", label, ..] => skip |= !LABELS.contains(label),
                _ => break,
            }
            index += 1;
        }
        let Some(header) = lines.get(index) else {
            break;
        };
        let words: Vec<&str> = header.split_whitespace().collect();
        index += 1;
        let mut body = Vec::new();
        while index < lines.len() && !lines[index].trim().is_empty() {
            body.push(lines[index]);
            index += 1;
        }
        let record = match words.as_slice() {
            ["statement", kind, ..] => Record::Statement {
                expect_error: *kind == "error",
                sql: body.join("\n"),
            },
            ["query", types, rest @ ..] => {
                let sort = match rest.first() {
                    Some(&"rowsort") => Sort::Rows,
                    Some(&"valuesort") => Sort::Values,
                    _ => Sort::None,
                };
                let separator = body.iter().position(|line| line.trim() == "----");
                let (sql, expected) = match separator {
                    Some(at) => (
                        body[..at].join("\n"),
                        body[at + 1..].iter().map(|line| line.to_string()).collect(),
                    ),
                    None => (body.join("\n"), Vec::new()),
                };
                Record::Query {
                    types: types.to_string(),
                    sort,
                    sql,
                    expected,
                }
            }
            ["hash-threshold", value] => {
                Record::HashThreshold(value.parse().unwrap_or(DEFAULT_HASH_THRESHOLD))
            }
            ["halt"] => Record::Halt,
            _ => continue,
        };
        records.push(Parsed {
            line: start,
            skip,
            record,
        });
    }
    records
}

/// How the records of a file reach a database: in-process ([`InProcess`]) or over the wire
/// (`crate::wire`). Each answers with the values of a query as [`Cell`]s, rendered by the same rules.
pub trait Engine {
    /// Runs a statement; an error is the database's.
    fn statement(&mut self, sql: &str) -> Result<(), EngineFailure>;
    /// Runs a query and returns its rows.
    fn query(&mut self, sql: &str) -> Result<Vec<Vec<Cell>>, EngineFailure>;
}

/// Why an engine could not run a record.
pub enum EngineFailure {
    /// The database answered with an error.
    Database(qubedb::Error),
    /// The engine itself failed (a panic, a broken connection, an unexpected answer).
    Engine(String),
}

/// One value of a query result, classified as the original harness renders it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Boolean(bool),
    /// An integer, as text.
    Integer(String),
    /// A floating-point or numeric value, and its text.
    Float(f64, String),
    /// Anything else, as text.
    Text(String),
}

/// A fresh in-memory database in this process.
pub struct InProcess {
    session: Session,
}

impl InProcess {
    pub fn open() -> Result<InProcess, String> {
        let database = Database::open_in_memory()
            .map_err(|error| format!("cannot open a database: {error}"))?;
        Ok(InProcess {
            session: database.session(),
        })
    }
}

impl Engine for InProcess {
    fn statement(&mut self, sql: &str) -> Result<(), EngineFailure> {
        let session = &mut self.session;
        match std::panic::catch_unwind(AssertUnwindSafe(|| session.run(sql))) {
            Err(_) => Err(EngineFailure::Engine("panic".into())),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(EngineFailure::Database(error)),
        }
    }

    fn query(&mut self, sql: &str) -> Result<Vec<Vec<Cell>>, EngineFailure> {
        let session = &mut self.session;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| session.run(sql)))
            .map_err(|_| EngineFailure::Engine("panic".into()))?
            .map_err(EngineFailure::Database)?;
        let outcome = outcome
            .into_iter()
            .last()
            .ok_or_else(|| EngineFailure::Engine("no result".into()))?;
        let mut rows = Vec::new();
        for batch in &outcome.batches {
            for row in 0..batch.num_rows() {
                rows.push(
                    batch
                        .columns()
                        .iter()
                        .map(|column| cell_of(column, row))
                        .collect(),
                );
            }
        }
        Ok(rows)
    }
}

/// Runs one file in a fresh in-memory database.
pub fn run_file(name: &str, text: &str) -> (Counts, Vec<Failure>) {
    match InProcess::open() {
        Ok(mut engine) => run_file_with(name, text, &mut engine),
        Err(error) => (
            Counts::default(),
            vec![Mismatch::from(error).into_failure(name.to_string(), String::new())],
        ),
    }
}

/// Runs one file's records through `engine`.
pub fn run_file_with(name: &str, text: &str, engine: &mut dyn Engine) -> (Counts, Vec<Failure>) {
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    let mut threshold = DEFAULT_HASH_THRESHOLD;
    for parsed in parse(text) {
        match parsed.record {
            Record::HashThreshold(value) => {
                threshold = value;
                continue;
            }
            Record::Halt => {
                if parsed.skip {
                    continue;
                }
                break;
            }
            _ if parsed.skip => {
                counts.skipped += 1;
                continue;
            }
            record => {
                counts.run += 1;
                let (sql, outcome) = match &record {
                    Record::Statement { expect_error, sql } => {
                        (sql.clone(), run_statement(engine, sql, *expect_error))
                    }
                    Record::Query {
                        types,
                        sort,
                        sql,
                        expected,
                    } => (
                        sql.clone(),
                        run_query(engine, sql, types, *sort, expected, threshold),
                    ),
                    _ => unreachable!("handled above"),
                };
                match outcome {
                    Ok(()) => counts.passed += 1,
                    Err(mismatch) => {
                        counts.failed += 1;
                        failures
                            .push(mismatch.into_failure(format!("{name}:{}", parsed.line), sql));
                    }
                }
            }
        }
    }
    (counts, failures)
}

/// A failure's cause for grouping: SQLSTATE and the message up to its first quote, digits folded.
pub fn cause_of(error: &qubedb::Error) -> String {
    let message: String = error
        .message
        .split(['"', '\''])
        .next()
        .unwrap_or_default()
        .chars()
        .take(100)
        .collect();
    // Numbers in names and values would split one cause into many.
    let mut normalized = String::with_capacity(message.len());
    for character in message.trim().chars() {
        if character.is_ascii_digit() {
            if !normalized.ends_with('N') {
                normalized.push('N');
            }
        } else {
            normalized.push(character);
        }
    }
    format!("{} {normalized}", error.code)
}

fn run_statement(engine: &mut dyn Engine, sql: &str, expect_error: bool) -> Result<(), Mismatch> {
    match (engine.statement(sql), expect_error) {
        (Err(EngineFailure::Engine(cause)), _) => Err(cause.into()),
        (Ok(()), false) | (Err(EngineFailure::Database(_)), true) => Ok(()),
        (Ok(()), true) => Err(Mismatch {
            cause: "statement succeeded but should fail".into(),
            expected: "an error".into(),
            actual: "success".into(),
        }),
        (Err(EngineFailure::Database(error)), false) => Err(Mismatch::error(&error, "success")),
    }
}

fn run_query(
    engine: &mut dyn Engine,
    sql: &str,
    types: &str,
    sort: Sort,
    expected: &[String],
    threshold: usize,
) -> Result<(), Mismatch> {
    let cells = engine.query(sql).map_err(|failure| match failure {
        EngineFailure::Engine(cause) => Mismatch::from(cause),
        EngineFailure::Database(error) => Mismatch::error(&error, &expected.join("\n")),
    })?;
    let letters: Vec<char> = types.chars().collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for row in cells {
        if row.len() != letters.len() {
            return Err(Mismatch::from(format!(
                "wrong column count {} (expected {})",
                row.len(),
                letters.len()
            )));
        }
        rows.push(
            row.iter()
                .zip(&letters)
                .map(|(cell, letter)| render(cell, *letter))
                .collect(),
        );
    }
    let mut values: Vec<String> = match sort {
        Sort::Rows => {
            rows.sort();
            rows.into_iter().flatten().collect()
        }
        Sort::Values => {
            let mut values: Vec<String> = rows.into_iter().flatten().collect();
            values.sort();
            values
        }
        Sort::None => rows.into_iter().flatten().collect(),
    };
    let hashed = expected.len() == 1 && expected[0].contains(" values hashing to ");
    if hashed
        || values.len() > threshold
            && threshold > 0
            && !expected.is_empty()
            && expected.len() != values.len()
    {
        let mut digest = md5::Context::new();
        for value in &values {
            digest.consume(value.as_bytes());
            digest.consume(b"\n");
        }
        let actual = format!("{} values hashing to {:x}", values.len(), digest.finalize());
        return if expected.first().map(|line| line.trim()) == Some(actual.as_str()) {
            Ok(())
        } else {
            Err(Mismatch::wrong_result(expected, &[actual]))
        };
    }
    for value in &mut values {
        *value = value.trim().to_string();
    }
    let expected: Vec<String> = expected
        .iter()
        .map(|line| line.trim().to_string())
        .collect();
    if values == expected {
        Ok(())
    } else {
        Err(Mismatch::wrong_result(&expected, &values))
    }
}

/// The cell of row `row` of an Arrow column, classified by its type.
fn cell_of(column: &ArrayRef, row: usize) -> Cell {
    if column.is_null(row) {
        return Cell::Null;
    }
    let text = || qubedb::result::batch_text_value(column, row).unwrap_or_default();
    match column.data_type() {
        DataType::Boolean => Cell::Boolean(column.as_boolean().value(row)),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Cell::Integer(text()),
        DataType::Float64 => Cell::Float(column.as_primitive::<Float64Type>().value(row), text()),
        DataType::Float32 => Cell::Float(
            f64::from(column.as_primitive::<Float32Type>().value(row)),
            text(),
        ),
        DataType::Decimal128(_, scale) => Cell::Float(
            column
                .as_primitive::<qubedb::arrow::datatypes::Decimal128Type>()
                .value(row) as f64
                / 10f64.powi(i32::from(*scale)),
            text(),
        ),
        _ => Cell::Text(text()),
    }
}

/// A cell as the original harness prints it for type letter `letter`.
pub fn render(cell: &Cell, letter: char) -> String {
    match cell {
        Cell::Null => "NULL".into(),
        Cell::Boolean(value) => {
            if *value {
                "1".into()
            } else {
                "0".into()
            }
        }
        Cell::Integer(value) => {
            if letter == 'R' {
                value
                    .parse::<f64>()
                    .map(|value| format!("{value:.3}"))
                    .unwrap_or_else(|_| value.clone())
            } else {
                value.clone()
            }
        }
        Cell::Float(value, text) => match letter {
            'I' => format!("{}", value.trunc() as i64),
            'R' => format!("{value:.3}"),
            _ => text.clone(),
        },
        Cell::Text(value) if letter == 'I' || letter == 'R' => {
            // As the original harness reads a text value as a number: its leading numeric prefix, else 0.
            let trimmed = value.trim_start();
            let end = trimmed
                .char_indices()
                .take_while(|(at, character)| {
                    character.is_ascii_digit()
                        || (*at == 0 && (*character == '-' || *character == '+'))
                        || (letter == 'R' && *character == '.')
                })
                .map(|(at, character)| at + character.len_utf8())
                .last()
                .unwrap_or(0);
            let number: f64 = trimmed[..end].parse().unwrap_or(0.0);
            if letter == 'I' {
                format!("{}", number.trunc() as i64)
            } else {
                format!("{number:.3}")
            }
        }
        Cell::Text(value) => {
            if value.is_empty() {
                "(empty)".into()
            } else {
                value
                    .chars()
                    .map(|character| {
                        if (' '..='~').contains(&character) {
                            character
                        } else {
                            '@'
                        }
                    })
                    .collect()
            }
        }
    }
}
