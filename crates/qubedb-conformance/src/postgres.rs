//! The PostgreSQL regression files (`postgres-regress/`): each `sql/<test>.sql` run as `psql -X -a -q`
//! would run it, its output compared with `expected/<test>.out`, statement by statement.
//!
//! pg_regress feeds a file to psql, which echoes every input line (`-a`), sends each statement when it
//! reads its `;`, and prints the result in its aligned format (no command tags with `-q`) or the error
//! (`ERROR:  ...`, the `LINE n:` excerpt with a caret, `DETAIL:`, `HINT:`). This module plays psql
//! in-process against embedded QubeDB: the same statement splitting (quotes, dollar quotes, comments,
//! parentheses), the variables the files use (`\set`, `\getenv`, `:'name'`), `COPY ... FROM STDIN` data
//! up to `\.`, and psql's output format. Meta-commands that need the catalog (`\d`, `\da`) print
//! nothing here and their statements fail; once the server exists, running psql itself against
//! `qubedb serve` is the faithful way.
//!
//! `QUBEDB_PG_REGRESS_ONLY=select,join` runs only those files (after nothing else: run the setup files
//! with them); `QUBEDB_PG_REGRESS_OUTPUT=DIR` writes what each file printed to `DIR/<test>.out`.
//!
//! Scoring: the produced output is diffed with the expected file line by line; a statement passes when
//! every line it produced matches and no expected line around its output is missing. Files run in the
//! schedule order (the setup files first) in one database, as pg_regress runs them.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::Path;

use qubedb::{Database, Session};
use similar::{Algorithm, DiffOp, capture_diff_slices};

use crate::sqlite::{Counts, Failure, Summary, cause_of};

/// The files, in the order pg_regress runs them (setup scripts first; later files use their tables).
pub const SCHEDULE: &[&str] = &[
    "test_setup",
    "create_misc",
    "create_index",
    "create_aggregate",
    "select",
    "insert",
    "update",
    "delete",
    "transactions",
    "join",
    "aggregates",
    "window",
    "with",
    "json",
    "jsonb",
];

/// pgvector's regression files, in its Makefile's order.
pub const PGVECTOR_SCHEDULE: &[&str] = &[
    "btree",
    "cast",
    "copy",
    "halfvec",
    "hnsw_halfvec",
    "hnsw_vector",
    "ivfflat_vector",
    "vector_type",
];

/// One unit of a psql script.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    /// A statement sent to the server; `line` is where it ends.
    Statement { sql: String, line: usize },
    /// A statement followed by inline COPY data (up to `\.`).
    Copy {
        sql: String,
        data: String,
        line: usize,
    },
    /// A backslash command with its arguments.
    Meta { command: String, line: usize },
}

/// A psql script split into what psql echoes and what it runs.
#[derive(Debug, Default)]
struct Script {
    /// Input lines in order; each with the items that complete on it (run after the echo).
    lines: Vec<Line>,
}

/// One input line.
#[derive(Debug)]
struct Line {
    text: String,
    /// psql echoes every line except an empty one outside quotes and comments.
    echoed: bool,
    items: Vec<Item>,
}

/// psql's lexer, reduced to what decides where statements end.
#[derive(Default)]
struct Lexer {
    buffer: String,
    parentheses: usize,
    /// Inside a `/* */` comment, with its nesting depth.
    block_comment: usize,
    quote: Option<Quote>,
}

#[derive(Clone, PartialEq)]
enum Quote {
    Single { escapes: bool },
    Double,
    Dollar(String),
}

impl Lexer {
    fn pending(&self) -> bool {
        !self.buffer.trim().is_empty()
    }
}

fn parse_script(text: &str) -> Script {
    let mut script = Script::default();
    let mut lexer = Lexer::default();
    let mut lines = text.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let echoed = !line.is_empty() || lexer.quote.is_some() || lexer.block_comment > 0;
        let mut items = Vec::new();
        let characters: Vec<char> = line.chars().collect();
        let mut index = 0;
        while index < characters.len() {
            let character = characters[index];
            let next = characters.get(index + 1).copied();
            if lexer.block_comment > 0 {
                lexer.buffer.push(character);
                if character == '*' && next == Some('/') {
                    lexer.buffer.push('/');
                    lexer.block_comment -= 1;
                    index += 2;
                    continue;
                }
                if character == '/' && next == Some('*') {
                    lexer.buffer.push('*');
                    lexer.block_comment += 1;
                    index += 2;
                    continue;
                }
                index += 1;
                continue;
            }
            match lexer.quote.clone() {
                Some(Quote::Single { escapes }) => {
                    lexer.buffer.push(character);
                    if escapes && character == '\\' {
                        if let Some(escaped) = next {
                            lexer.buffer.push(escaped);
                            index += 1;
                        }
                    } else if character == '\'' {
                        if next == Some('\'') {
                            lexer.buffer.push('\'');
                            index += 1;
                        } else {
                            lexer.quote = None;
                        }
                    }
                    index += 1;
                    continue;
                }
                Some(Quote::Double) => {
                    lexer.buffer.push(character);
                    if character == '"' {
                        lexer.quote = None;
                    }
                    index += 1;
                    continue;
                }
                Some(Quote::Dollar(tag)) => {
                    let rest: String = characters[index..].iter().collect();
                    if rest.starts_with(&tag) {
                        lexer.buffer.push_str(&tag);
                        index += tag.chars().count();
                        lexer.quote = None;
                    } else {
                        lexer.buffer.push(character);
                        index += 1;
                    }
                    continue;
                }
                None => {}
            }
            match character {
                '-' if next == Some('-') => {
                    // A comment to the end of the line; dropped while no statement has started.
                    if lexer.pending() {
                        lexer.buffer.extend(&characters[index..]);
                    }
                    index = characters.len();
                }
                '/' if next == Some('*') => {
                    lexer.buffer.push_str("/*");
                    lexer.block_comment = 1;
                    index += 2;
                }
                '\'' => {
                    let escapes = lexer
                        .buffer
                        .chars()
                        .last()
                        .is_some_and(|previous| previous == 'E' || previous == 'e');
                    lexer.buffer.push(character);
                    lexer.quote = Some(Quote::Single { escapes });
                    index += 1;
                }
                '"' => {
                    lexer.buffer.push(character);
                    lexer.quote = Some(Quote::Double);
                    index += 1;
                }
                '$' => {
                    let rest: String = characters[index + 1..].iter().collect();
                    let tag_length = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .count();
                    let previous_is_word = lexer
                        .buffer
                        .chars()
                        .last()
                        .is_some_and(|previous| previous.is_alphanumeric() || previous == '_');
                    if !previous_is_word
                        && rest.chars().nth(tag_length) == Some('$')
                        && !rest.starts_with(|c: char| c.is_ascii_digit())
                    {
                        let tag: String = format!("${}$", &rest[..tag_length]);
                        lexer.buffer.push_str(&tag);
                        index += tag.chars().count();
                        lexer.quote = Some(Quote::Dollar(tag));
                    } else {
                        lexer.buffer.push(character);
                        index += 1;
                    }
                }
                '(' => {
                    lexer.parentheses += 1;
                    lexer.buffer.push(character);
                    index += 1;
                }
                ')' => {
                    lexer.parentheses = lexer.parentheses.saturating_sub(1);
                    lexer.buffer.push(character);
                    index += 1;
                }
                ';' if lexer.parentheses == 0 => {
                    lexer.buffer.push(';');
                    let sql = std::mem::take(&mut lexer.buffer).trim().to_string();
                    items.push(Item::Statement { sql, line: number });
                    index += 1;
                }
                '\\' => {
                    // A meta-command runs to the end of the line (or to a `\\` separator).
                    let rest: String = characters[index..].iter().collect();
                    let command = rest.split(" \\\\").next().unwrap_or_default().to_string();
                    if command.starts_with("\\g") && lexer.pending() {
                        // `\g` / `\gset` end the statement in the buffer instead of `;`.
                        let sql = std::mem::take(&mut lexer.buffer).trim().to_string();
                        items.push(Item::Statement { sql, line: number });
                    }
                    items.push(Item::Meta {
                        command,
                        line: number,
                    });
                    index = characters.len();
                }
                _ => {
                    if lexer.pending() || !character.is_whitespace() {
                        lexer.buffer.push(character);
                    }
                    index += 1;
                }
            }
        }
        if lexer.pending() {
            lexer.buffer.push('\n');
        }
        // COPY ... FROM STDIN: the data lines follow, up to `\.`, and are not echoed.
        let copy_from_stdin =
            matches!(items.last(), Some(Item::Statement { sql, .. }) if is_copy_from_stdin(sql));
        if copy_from_stdin && let Some(Item::Statement { sql, line }) = items.pop() {
            let mut data = String::new();
            for (_, data_line) in lines.by_ref() {
                if data_line == "\\." {
                    break;
                }
                data.push_str(data_line);
                data.push('\n');
            }
            items.push(Item::Copy { sql, data, line });
        }
        script.lines.push(Line {
            text: line.to_string(),
            echoed,
            items,
        });
    }
    script
}

fn is_copy_from_stdin(sql: &str) -> bool {
    let upper = sql.to_uppercase();
    upper.starts_with("COPY") && upper.contains("FROM STDIN")
}

/// psql's variables and the settings the output depends on.
struct Psql {
    session: Session,
    variables: HashMap<String, String>,
    environment: HashMap<String, String>,
    terse: bool,
    /// Where `\copy` reads and writes files named by a relative path (pg_regress's working folder,
    /// whose `results/` the pgvector files write to).
    scratch: std::path::PathBuf,
}

impl Psql {
    /// Replaces `:name`, `:'name'` and `:"name"` outside quotes with the variable's value.
    fn interpolate(&self, sql: &str) -> String {
        let mut out = String::with_capacity(sql.len());
        let characters: Vec<char> = sql.chars().collect();
        let mut index = 0;
        let mut quote: Option<char> = None;
        while index < characters.len() {
            let character = characters[index];
            if let Some(open) = quote {
                out.push(character);
                if character == open {
                    quote = None;
                }
                index += 1;
                continue;
            }
            if character == '\'' || character == '"' {
                quote = Some(character);
                out.push(character);
                index += 1;
                continue;
            }
            if character == ':' && characters.get(index + 1) != Some(&':') {
                let (quoting, start) = match characters.get(index + 1) {
                    Some('\'') => (Some('\''), index + 2),
                    Some('"') => (Some('"'), index + 2),
                    _ => (None, index + 1),
                };
                let name: String = characters[start..]
                    .iter()
                    .take_while(|c| c.is_alphanumeric() || **c == '_')
                    .collect();
                let end = start + name.chars().count();
                let closed = match quoting {
                    Some(q) => characters.get(end) == Some(&q),
                    None => true,
                };
                if !name.is_empty()
                    && closed
                    && (index == 0 || characters[index - 1] != ':')
                    && let Some(value) = self.variables.get(&name)
                {
                    match quoting {
                        Some('\'') => out.push_str(&format!("'{}'", value.replace('\'', "''"))),
                        Some(_) => out.push_str(&format!("\"{}\"", value.replace('"', "\"\""))),
                        None => out.push_str(value),
                    }
                    index = end + usize::from(quoting.is_some());
                    continue;
                }
            }
            out.push(character);
            index += 1;
        }
        out
    }

    /// Runs a backslash command; returns whether it is one whose output this harness cannot give.
    fn meta(&mut self, command: &str) -> bool {
        let mut words = meta_arguments(command);
        let name = words.remove(0);
        match name.as_str() {
            "\\set" => {
                if words.is_empty() {
                    return false;
                }
                let variable = words.remove(0);
                let value: String = words
                    .iter()
                    .map(|word| self.meta_word(word))
                    .collect::<Vec<_>>()
                    .concat();
                if variable == "VERBOSITY" {
                    self.terse = value == "terse";
                }
                self.variables.insert(variable, value);
                false
            }
            "\\getenv" => {
                if words.len() == 2 {
                    let value = self.environment.get(&words[1]).cloned().unwrap_or_default();
                    self.variables.insert(words[0].clone(), value);
                }
                false
            }
            "\\pset" | "\\unset" | "\\echo" | "\\t" | "\\a" | "\\x" => false,
            _ => true,
        }
    }

    /// One argument of `\set`: a quoted literal, a `:variable`, or a bare word.
    fn meta_word(&self, word: &str) -> String {
        if let Some(inner) = word.strip_prefix('\'').and_then(|w| w.strip_suffix('\'')) {
            inner.replace("''", "'")
        } else if let Some(name) = word.strip_prefix(':') {
            self.variables.get(name).cloned().unwrap_or_default()
        } else {
            word.to_string()
        }
    }

    /// Runs one statement and returns what psql prints for it.
    fn run(&mut self, sql: &str, copy_data: Option<&[u8]>) -> (Vec<String>, Option<String>) {
        let sql = self.interpolate(sql);
        let session = &mut self.session;
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| match copy_data {
            Some(data) => session.copy_in(&sql, data).map(|o| vec![o]),
            None => session.run(&sql),
        }));
        let mut lines = Vec::new();
        match outcome {
            Err(_) => {
                lines.push("server closed the connection unexpectedly".to_string());
                (lines, Some("panic".to_string()))
            }
            Ok(Ok(outcomes)) => {
                for outcome in outcomes {
                    // psql prints notices as they arrive, ahead of the result.
                    for notice in &outcome.notices {
                        lines.push(format!("{}:  {}", notice.severity, notice.message));
                    }
                    if let Some(data) = outcome.copy_data() {
                        // psql writes COPY data as it comes, with no blank line after it.
                        match data {
                            Ok(data) => {
                                let data = String::from_utf8_lossy(&data).into_owned();
                                lines.extend(data.lines().map(str::to_string));
                            }
                            Err(error) => {
                                lines.extend(self.error_lines(&sql, &error));
                                return (lines, Some(cause_of(&error)));
                            }
                        }
                    } else if let Some(table) = outcome.psql_aligned() {
                        lines.extend(table.lines().map(str::to_string));
                        lines.push(String::new());
                    }
                }
                (lines, None)
            }
            Ok(Err(error)) => {
                lines.extend(self.error_lines(&sql, &error));
                (lines, Some(cause_of(&error)))
            }
        }
    }

    /// What psql prints for an error of statement `sql`.
    fn error_lines(&self, sql: &str, error: &qubedb::Error) -> Vec<String> {
        let mut lines = vec![format!("ERROR:  {}", error.message)];
        if !self.terse {
            if let Some(position) = error.position {
                lines.extend(position_excerpt(sql, position));
            }
            if let Some(detail) = &error.detail {
                lines.extend(prefix_lines("DETAIL:  ", detail));
            }
            if let Some(hint) = &error.hint {
                lines.extend(prefix_lines("HINT:  ", hint));
            }
            if let Some(context) = error.context() {
                lines.extend(prefix_lines("CONTEXT:  ", context));
            }
        }
        lines
    }

    /// psql's `\copy`: the COPY runs as `FROM STDIN` / `TO STDOUT` and the file is read or written
    /// here, as psql does on the client's side. With `-q` (as pg_regress runs psql) a success prints
    /// nothing.
    fn copy_meta(&mut self, command: &str) -> (Vec<String>, Option<String>) {
        let arguments = self.interpolate(command.trim_start_matches("\\copy").trim());
        let Some(parts) = copy_meta_parts(&arguments) else {
            return (
                vec!["\\copy: parse error".to_string()],
                Some("\\copy parse error".to_string()),
            );
        };
        let path = self.scratch.join(&parts.file);
        if parts.from {
            let sql = format!("COPY {} FROM STDIN {}", parts.target, parts.options);
            match std::fs::read(&path) {
                Ok(data) => self.run(&sql, Some(&data)),
                Err(error) => (
                    vec![format!("{}: {error}", parts.file)],
                    Some("\\copy file".to_string()),
                ),
            }
        } else {
            let sql = format!("COPY {} TO STDOUT {}", parts.target, parts.options);
            let data = match self.session.run(&sql) {
                Ok(outcomes) => outcomes.into_iter().find_map(|outcome| outcome.copy_data()),
                Err(error) => {
                    return (self.error_lines(&sql, &error), Some(cause_of(&error)));
                }
            };
            match data {
                Some(Ok(data)) => {
                    let written = path
                        .parent()
                        .map_or(Ok(()), std::fs::create_dir_all)
                        .and_then(|()| std::fs::write(&path, data));
                    match written {
                        Ok(()) => (Vec::new(), None),
                        Err(error) => (
                            vec![format!("{}: {error}", parts.file)],
                            Some("\\copy file".to_string()),
                        ),
                    }
                }
                Some(Err(error)) => (self.error_lines(&sql, &error), Some(cause_of(&error))),
                None => (Vec::new(), None),
            }
        }
    }
}

/// The parts of a `\copy` command: `table [(columns)] | (query)`, the direction, the file and the
/// options after it.
struct CopyMetaParts {
    target: String,
    from: bool,
    file: String,
    options: String,
}

/// Splits `\copy`'s arguments at the first `from` / `to` outside parentheses and quotes.
fn copy_meta_parts(arguments: &str) -> Option<CopyMetaParts> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut word_start = None;
    let characters: Vec<(usize, char)> = arguments.char_indices().collect();
    for (position, &(offset, character)) in characters.iter().enumerate() {
        if let Some(open) = quote {
            if character == open {
                quote = None;
            }
            continue;
        }
        match character {
            '\'' | '"' => quote = Some(character),
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        let boundary = character.is_whitespace() || position + 1 == characters.len();
        if !character.is_whitespace() && word_start.is_none() {
            word_start = Some(offset);
        }
        if boundary && let Some(start) = word_start.take() {
            let end = if character.is_whitespace() {
                offset
            } else {
                offset + character.len_utf8()
            };
            let word = arguments[start..end].to_lowercase();
            if depth == 0 && (word == "from" || word == "to") && start > 0 {
                let rest = arguments[end..].trim_start();
                let (file, options) = match rest.strip_prefix('\'') {
                    Some(quoted) => {
                        let close = quoted.find('\'')?;
                        (quoted[..close].to_string(), &quoted[close + 1..])
                    }
                    None => {
                        let close = rest.find(char::is_whitespace).unwrap_or(rest.len());
                        (rest[..close].to_string(), &rest[close..])
                    }
                };
                return Some(CopyMetaParts {
                    target: arguments[..start].trim().to_string(),
                    from: word == "from",
                    file,
                    options: options.trim().to_string(),
                });
            }
        }
    }
    None
}

fn prefix_lines(prefix: &str, text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if let Some(first) = lines.first_mut() {
        *first = format!("{prefix}{first}");
    }
    lines
}

/// Splits a meta-command line into words, keeping quoted words whole.
fn meta_arguments(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for character in command.chars() {
        if character == '\'' {
            quoted = !quoted;
            current.push(character);
        } else if character.is_whitespace() && !quoted {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
        } else {
            current.push(character);
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    if words.is_empty() {
        words.push(String::new());
    }
    words
}

/// libpq's `LINE n:` excerpt of the statement with a caret under the error position (1-based,
/// in characters), lines longer than 60 columns cut around the position with `...`.
fn position_excerpt(sql: &str, position: usize) -> Vec<String> {
    const DISPLAY_SIZE: usize = 60;
    const MIN_RIGHT_CUT: usize = 10;
    let characters: Vec<char> = sql
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .collect();
    let Some(location) = position.checked_sub(1) else {
        return Vec::new();
    };
    let mut line_number = 1;
    let mut begin = 0;
    let mut end = None;
    for (index, &character) in characters.iter().enumerate() {
        if character == '\r' || character == '\n' {
            if index < location {
                if character == '\r' || index == 0 || characters[index - 1] != '\r' {
                    line_number += 1;
                }
                begin = index + 1;
            } else {
                end = Some(index);
                break;
            }
        }
    }
    let mut end = end.unwrap_or(characters.len());
    if location > characters.len() {
        return Vec::new();
    }
    let mut begin_cut = false;
    let mut end_cut = false;
    if end - begin > DISPLAY_SIZE {
        if begin + DISPLAY_SIZE >= location + MIN_RIGHT_CUT {
            while end - begin > DISPLAY_SIZE {
                end -= 1;
            }
            end_cut = true;
        } else {
            while location + MIN_RIGHT_CUT < end {
                end -= 1;
                end_cut = true;
            }
            while end - begin > DISPLAY_SIZE {
                begin += 1;
                begin_cut = true;
            }
        }
    }
    let mut prefix = format!("LINE {line_number}: ");
    if begin_cut {
        prefix.push_str("...");
    }
    let excerpt: String = characters[begin..end].iter().collect();
    let caret_offset = prefix.chars().count() + location.saturating_sub(begin);
    vec![
        format!("{prefix}{excerpt}{}", if end_cut { "..." } else { "" }),
        format!("{}^", " ".repeat(caret_offset)),
    ]
}

/// A line of the produced output and the statement (index into the file's statements) it belongs to.
struct OutputLine {
    text: String,
    owner: Option<usize>,
    /// An echoed input line rather than output.
    echo: bool,
}

/// A statement of a file, for counting and the report.
struct Counted {
    sql: String,
    line: usize,
    cause: Option<String>,
    /// A meta-command whose output (from the catalog) this harness does not produce.
    unsupported_meta: bool,
}

/// Runs one file in `psql`, returning the output lines and the statements they belong to.
fn run_script(psql: &mut Psql, script: &Script) -> (Vec<OutputLine>, Vec<Counted>) {
    let mut output = Vec::new();
    let mut statements: Vec<Counted> = Vec::new();
    for line in &script.lines {
        // The echo of a line on which statements end belongs to the first of them: their output
        // follows it, so expected lines missing right there are that statement's.
        let echo = line.echoed.then(|| {
            output.push(OutputLine {
                text: line.text.clone(),
                owner: None,
                echo: true,
            });
            output.len() - 1
        });
        for item in &line.items {
            let (sql, lines, cause, unsupported_meta, line) = match item {
                Item::Statement { sql, line } => {
                    let (lines, cause) = psql.run(sql, None);
                    (sql.clone(), lines, cause, false, *line)
                }
                Item::Copy { sql, data, line } => {
                    let (lines, cause) = psql.run(sql, Some(data.as_bytes()));
                    (sql.clone(), lines, cause, false, *line)
                }
                Item::Meta { command, line } if command.starts_with("\\copy ") => {
                    let (lines, cause) = psql.copy_meta(command);
                    (command.clone(), lines, cause, false, *line)
                }
                Item::Meta { command, line } => {
                    let unsupported = psql.meta(command);
                    if !unsupported {
                        continue;
                    }
                    (command.clone(), Vec::new(), None, true, *line)
                }
            };
            let index = statements.len();
            statements.push(Counted {
                sql,
                line,
                cause,
                unsupported_meta,
            });
            if let Some(echo) = echo
                && output[echo].owner.is_none()
            {
                output[echo].owner = Some(index);
            }
            output.extend(lines.into_iter().map(|text| OutputLine {
                text,
                owner: Some(index),
                echo: false,
            }));
        }
    }
    (output, statements)
}

/// How one statement scored: whether its output matched, and the expected lines around it.
struct Scored {
    passed: bool,
    expected: Vec<String>,
}

/// Scores one file: which statements reproduced their expected output.
fn score(expected: &[&str], output: &[OutputLine], statements: &[Counted]) -> Vec<Scored> {
    let actual: Vec<&str> = output.iter().map(|line| line.text.as_str()).collect();
    let mut scored: Vec<Scored> = statements
        .iter()
        .map(|statement| Scored {
            passed: !statement.unsupported_meta,
            expected: Vec::new(),
        })
        .collect();
    let operations = capture_diff_slices(Algorithm::Myers, expected, &actual);
    // The statement whose output the diff is at: the owner of the last produced line seen.
    let mut current: Option<usize> = None;
    for operation in operations {
        match operation {
            DiffOp::Equal { new_index, len, .. } => {
                for line in &output[new_index..new_index + len] {
                    if line.owner.is_some() {
                        current = line.owner;
                    }
                    if let (Some(owner), false) = (line.owner, line.echo) {
                        scored[owner].expected.push(line.text.clone());
                    }
                }
            }
            DiffOp::Delete {
                old_index, old_len, ..
            } => {
                if let Some(owner) = current {
                    scored[owner].passed = false;
                    scored[owner].expected.extend(
                        expected[old_index..old_index + old_len]
                            .iter()
                            .map(|line| line.to_string()),
                    );
                }
            }
            DiffOp::Insert {
                new_index, new_len, ..
            } => {
                for line in &output[new_index..new_index + new_len] {
                    if let Some(owner) = line.owner {
                        scored[owner].passed = false;
                        current = Some(owner);
                    }
                }
            }
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                if let Some(owner) = current {
                    scored[owner].passed = false;
                }
                for line in &output[new_index..new_index + new_len] {
                    if let Some(owner) = line.owner {
                        scored[owner].passed = false;
                        current = Some(owner);
                    }
                }
                if let Some(owner) = current {
                    scored[owner].expected.extend(
                        expected[old_index..old_index + old_len]
                            .iter()
                            .map(|line| line.to_string()),
                    );
                }
            }
        }
    }
    scored
}

/// Runs the schedule from `corpus` (the `postgres-regress` folder) in one fresh in-memory database.
pub fn run_corpus(corpus: &Path) -> Result<Summary, String> {
    run_schedule(corpus, SCHEDULE)
}

/// Runs the files `schedule` names from `corpus` (a folder with `sql/` and `expected/`, as
/// pg_regress reads them) in one fresh in-memory database.
pub fn run_schedule(corpus: &Path, schedule: &[&str]) -> Result<Summary, String> {
    let database =
        Database::open_in_memory().map_err(|error| format!("cannot open a database: {error}"))?;
    let mut psql = Psql {
        session: database.session(),
        variables: HashMap::new(),
        environment: HashMap::from([
            (
                "PG_ABS_SRCDIR".to_string(),
                corpus
                    .canonicalize()
                    .map_err(|error| format!("{}: {error}", corpus.display()))?
                    .display()
                    .to_string(),
            ),
            ("PG_LIBDIR".to_string(), "/nonexistent".to_string()),
            ("PG_DLSUFFIX".to_string(), ".so".to_string()),
        ]),
        terse: false,
        scratch: std::env::temp_dir().join(format!("qubedb-psql-{}", std::process::id())),
    };
    // Some statements never finish in QubeDB (a recursive query PostgreSQL stops by a LIMIT):
    // each gets at most this long, and fails with 57014 after it.
    psql.session
        .run("SET statement_timeout = '10s'")
        .map_err(|error| format!("cannot set statement_timeout: {error}"))?;
    let mut summary = Summary::default();
    let only = std::env::var("QUBEDB_PG_REGRESS_ONLY").ok();
    for name in schedule {
        if only
            .as_deref()
            .is_some_and(|only| !only.split(',').any(|file| file == *name))
        {
            continue;
        }
        let sql_path = corpus.join("sql").join(format!("{name}.sql"));
        let expected_path = corpus.join("expected").join(format!("{name}.out"));
        let (Ok(sql), Ok(expected)) = (
            std::fs::read_to_string(&sql_path),
            std::fs::read_to_string(&expected_path),
        ) else {
            summary
                .skipped_files
                .push((name.to_string(), "sql or expected file missing".into()));
            continue;
        };
        psql.terse = false;
        let script = parse_script(&sql);
        let (output, statements) = run_script(&mut psql, &script);
        if let Some(directory) = std::env::var_os("QUBEDB_PG_REGRESS_OUTPUT") {
            // Like pg_regress's results/ folder: what this run printed, to diff by hand.
            let text: String = output
                .iter()
                .map(|line| format!("{}\n", line.text))
                .collect();
            let path = Path::new(&directory).join(format!("{name}.out"));
            std::fs::write(&path, text)
                .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        }
        let expected_lines: Vec<&str> = expected.lines().collect();
        let scored = score(&expected_lines, &output, &statements);
        let mut counts = Counts::default();
        for (index, (statement, result)) in statements.iter().zip(&scored).enumerate() {
            counts.run += 1;
            if result.passed {
                counts.passed += 1;
            } else {
                counts.failed += 1;
                let actual: Vec<&str> = output
                    .iter()
                    .filter(|line| line.owner == Some(index) && !line.echo)
                    .map(|line| line.text.as_str())
                    .collect();
                summary.failures.push(Failure {
                    location: format!("{name}.sql:{}", statement.line + 1),
                    sql: statement.sql.clone(),
                    expected: result.expected.join("\n"),
                    actual: actual.join("\n"),
                    cause: match (&statement.cause, statement.unsupported_meta) {
                        (_, true) => format!(
                            "psql meta-command {} (needs psql and the server's catalog)",
                            statement.sql.split_whitespace().next().unwrap_or_default()
                        ),
                        (Some(cause), false) => cause.clone(),
                        (None, false) => "different output".to_string(),
                    },
                });
            }
        }
        eprintln!(
            "postgres-regress {name}: {} of {} statements",
            counts.passed, counts.run
        );
        summary.total.add(&counts);
        summary.files.push((name.to_string(), counts));
    }
    // Best effort: a leftover scratch folder under the temporary directory harms nothing.
    std::fs::remove_dir_all(&psql.scratch).ok();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statements(text: &str) -> Vec<String> {
        parse_script(text)
            .lines
            .into_iter()
            .flat_map(|line| line.items)
            .map(|item| match item {
                Item::Statement { sql, .. } => sql,
                Item::Copy { sql, data, .. } => format!("{sql} <{data}>"),
                Item::Meta { command, .. } => command,
            })
            .collect()
    }

    #[test]
    fn statements_end_at_top_level_semicolons() {
        assert_eq!(
            statements(
                "-- comment\nSELECT 'a;b', $$x;y$$, (1;\n2); SELECT 2;\nSELECT /* ; */ 3\n  ;\n"
            ),
            vec![
                "SELECT 'a;b', $$x;y$$, (1;\n2);".to_string(),
                "SELECT 2;".to_string(),
                "SELECT /* ; */ 3\n  ;".to_string(),
            ]
        );
    }

    #[test]
    fn copy_meta_splits_at_the_direction() {
        let parts = copy_meta_parts("t TO 'results/v.bin' WITH (FORMAT binary)").expect("parts");
        assert_eq!(
            (parts.target.as_str(), parts.from, parts.file.as_str()),
            ("t", false, "results/v.bin")
        );
        assert_eq!(parts.options, "WITH (FORMAT binary)");
        let parts = copy_meta_parts("(SELECT a FROM t) to out.csv csv").expect("query parts");
        assert_eq!(parts.target, "(SELECT a FROM t)");
        assert_eq!((parts.from, parts.file.as_str()), (false, "out.csv"));
        let parts = copy_meta_parts("t2 (a, b) FROM 'x'").expect("from parts");
        assert_eq!((parts.target.as_str(), parts.from), ("t2 (a, b)", true));
        assert!(copy_meta_parts("t").is_none());
    }

    #[test]
    fn copy_data_and_meta_commands() {
        assert_eq!(
            statements("COPY t FROM STDIN;\n1\t2\n\\.\n\\set x 'y'\nSELECT E'\\';';\n"),
            vec![
                "COPY t FROM STDIN; <1\t2\n>".to_string(),
                "\\set x 'y'".to_string(),
                "SELECT E'\\';';".to_string(),
            ]
        );
    }

    #[test]
    fn position_excerpt_matches_libpq() {
        assert_eq!(
            position_excerpt("SELECT 1 +;", 11),
            vec![
                "LINE 1: SELECT 1 +;".to_string(),
                "                  ^".to_string()
            ]
        );
        assert_eq!(
            position_excerpt("SELECT 1\nFROM nope;", 15),
            vec![
                "LINE 2: FROM nope;".to_string(),
                "             ^".to_string()
            ]
        );
    }
}
