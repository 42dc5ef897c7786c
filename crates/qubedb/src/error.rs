//! The SQL layer's error: every error carries a PostgreSQL SQLSTATE, a message naming the problem, and, for
//! errors in the SQL text, the 1-based character position (as PostgreSQL's `position` field).
//!
//! [`ErrorKind`] says who must act: the user (bad input), the application (retry a serialization failure), or
//! an operator (an internal bug, or corruption, which are logged loudly).

use std::fmt;

use datafusion::error::DataFusionError;

/// Who must act on an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input or a constraint violation: fix the statement or the data.
    User,
    /// A serialization conflict: retry the transaction.
    Retry,
    /// A bug in QubeDB.
    Internal,
    /// Stored data does not decode, or the machine failed (I/O).
    Corruption,
}

/// An error with SQLSTATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    /// The five-character PostgreSQL SQLSTATE.
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// 1-based character position in the statement text.
    pub position: Option<usize>,
    /// What few errors carry besides (boxed: errors travel in every `Result`).
    extra: Option<Box<ErrorExtra>>,
}

/// The rarer parts of an [`Error`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ErrorExtra {
    /// Where the error arose inside a value (PostgreSQL's CONTEXT line: `JSON data, line 1: ...`).
    context: Option<String>,
    /// The text of a value that failed its type's input rules: [`Error::locate_input`] points the
    /// position at it where the statement spells it as a literal.
    input: Option<String>,
    /// A word of the statement the error is about (a type name whose modifiers are wrong):
    /// [`Error::locate_input`] points the position at its first appearance, ignoring ASCII case.
    word: Option<String>,
}

/// A result of the SQL layer.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A user error with SQLSTATE `code`.
    pub fn user(code: &'static str, message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::User,
            code,
            message: message.into(),
            detail: None,
            hint: None,
            position: None,
            extra: None,
        }
    }

    /// A bug: something QubeDB should never do.
    pub fn internal(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Internal,
            code: "XX000",
            message: message.into(),
            detail: None,
            hint: None,
            position: None,
            extra: None,
        }
    }

    /// Stored data that does not decode (SQLSTATE XX001), or with `code` 58030 a failed I/O operation.
    pub fn corruption(code: &'static str, message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Corruption,
            ..Error::user(code, message)
        }
    }

    /// Syntax or feature QubeDB does not support (SQLSTATE 0A000).
    pub fn not_supported(what: impl fmt::Display) -> Error {
        Error::user("0A000", format!("{what} is not supported"))
    }

    /// Sets the detail line.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Error {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the hint line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    /// Sets the position, if none is set.
    pub fn with_position(mut self, position: Option<usize>) -> Error {
        if self.position.is_none() {
            self.position = position;
        }
        self
    }

    /// PostgreSQL's CONTEXT line, if the error has one.
    pub fn context(&self) -> Option<&str> {
        self.extra
            .as_ref()
            .and_then(|extra| extra.context.as_deref())
    }

    /// Sets the CONTEXT line.
    pub fn set_context(&mut self, context: Option<String>) {
        self.extra.get_or_insert_with(Default::default).context = context;
    }

    /// Records the text of a value that failed its type's input rules (see [`Error::locate_input`]).
    pub(crate) fn set_input(&mut self, input: &str) {
        self.extra.get_or_insert_with(Default::default).input = Some(input.to_string());
    }

    /// Records the word of the statement the error is about (see [`Error::locate_input`]).
    pub(crate) fn set_word(&mut self, word: &str) {
        self.extra.get_or_insert_with(Default::default).word = Some(word.to_string());
    }

    /// Points the position at the literal spelling the failed input value in `sql` (`'...'` or
    /// `$$...$$`), as PostgreSQL points at a literal that does not read as its type, or at the word
    /// the error is about; unchanged when the error has a position already or nothing is found.
    pub fn locate_input(mut self, sql: &str) -> Error {
        if self.position.is_some() {
            return self;
        }
        if let Some(word) = self.extra.as_ref().and_then(|extra| extra.word.clone()) {
            let at = sql
                .to_ascii_lowercase()
                .find(&word.to_ascii_lowercase())
                .filter(|_| !word.is_empty());
            if let Some(at) = at {
                self.position = Some(sql[..at].chars().count() + 1);
            }
            return self;
        }
        let Some(input) = self.extra.as_ref().and_then(|extra| extra.input.clone()) else {
            return self;
        };
        let quoted = format!("'{}'", input.replace('\'', "''"));
        let found = sql
            .find(&quoted)
            .or_else(|| sql.find(&format!("$${input}$$")));
        if let Some(at) = found {
            self.position = Some(sql[..at].chars().count() + 1);
        }
        self
    }

    /// True when retrying the transaction may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Retry
    }
}

impl fmt::Display for Error {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} ({})", self.message, self.code)?;
        if let Some(detail) = &self.detail {
            write!(formatter, "\nDETAIL: {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<qubedb_kv::Error> for Error {
    fn from(error: qubedb_kv::Error) -> Self {
        use qubedb_kv::Error as Kv;
        let (kind, code) = match &error {
            Kv::Conflict => (ErrorKind::Retry, "40001"),
            Kv::Locked(_) => (ErrorKind::User, "55006"),
            Kv::Busy => (ErrorKind::Retry, "55P03"),
            Kv::Deadlock => (ErrorKind::Retry, "40P01"),
            Kv::Limit(_) => (ErrorKind::User, "54000"),
            Kv::Closed => (ErrorKind::User, "57P01"),
            Kv::Io(_) => (ErrorKind::Corruption, "58030"),
            Kv::Corruption(_) => (ErrorKind::Corruption, "XX001"),
        };
        Error {
            kind,
            code,
            message: error.to_string(),
            detail: None,
            hint: None,
            position: None,
            extra: None,
        }
    }
}

impl From<qubedb_model::Error> for Error {
    fn from(error: qubedb_model::Error) -> Self {
        match error {
            qubedb_model::Error::User { code, message } => Error::user(code, message),
            qubedb_model::Error::Storage(storage) => storage.into(),
            qubedb_model::Error::Corruption(message) => Error {
                kind: ErrorKind::Corruption,
                code: "XX001",
                message: format!("corrupt data: {message}"),
                detail: None,
                hint: None,
                position: None,
                extra: None,
            },
        }
    }
}

impl From<DataFusionError> for Error {
    fn from(error: DataFusionError) -> Self {
        from_datafusion(error)
    }
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(error: datafusion::arrow::error::ArrowError) -> Self {
        from_datafusion(DataFusionError::ArrowError(Box::new(error), None))
    }
}

/// Our errors travel through DataFusion wrapped in `External`; unwrap them whole.
pub(crate) fn to_datafusion(error: Error) -> DataFusionError {
    DataFusionError::External(Box::new(error))
}

fn from_datafusion(error: DataFusionError) -> Error {
    // One of ours, however deep DataFusion and Arrow wrapped it (a shared error of a repartitioned
    // stream, an Arrow external error from a filter or a stream adapter).
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(layer) = current {
        if let Some(ours) = layer.downcast_ref::<Error>() {
            return ours.clone();
        }
        current = layer.source();
    }
    match error {
        DataFusionError::External(inner) => match inner.downcast::<Error>() {
            Ok(ours) => *ours,
            Err(other) => classify(other.to_string()),
        },
        DataFusionError::Context(_, inner) => from_datafusion(*inner),
        DataFusionError::Shared(shared) => match std::sync::Arc::try_unwrap(shared) {
            Ok(inner) => from_datafusion(inner),
            Err(shared) => classify(shared.to_string()),
        },
        DataFusionError::Diagnostic(_, inner) => from_datafusion(*inner),
        DataFusionError::SQL(parser_error, _) => {
            crate::sql::parse::parser_error(&parser_error.to_string())
        }
        DataFusionError::ArrowError(arrow, _) => classify_arrow(&arrow.to_string()),
        // A type name nothing knows (user types are rewritten before DataFusion sees them).
        DataFusionError::NotImplemented(message)
            if message.starts_with("Unsupported SQL type ")
                && !message
                    .trim_start_matches("Unsupported SQL type ")
                    .contains([' ', '(']) =>
        {
            let name = message
                .trim_start_matches("Unsupported SQL type ")
                .to_lowercase();
            Error::user("42704", format!("type \"{name}\" does not exist"))
        }
        DataFusionError::NotImplemented(message) => Error::user(
            "0A000",
            format!("{} is not supported", message.trim_end_matches('.')),
        ),
        DataFusionError::Execution(message) => classify(message),
        DataFusionError::Plan(message) => classify(message),
        DataFusionError::SchemaError(schema, _) => classify(schema.to_string()),
        DataFusionError::ResourcesExhausted(message) => Error::user("53200", message),
        other => classify(other.to_string()),
    }
}

fn classify_arrow(message: &str) -> Error {
    let lower = message.to_lowercase();
    if lower.contains("divide by zero") || lower.contains("division by zero") {
        Error::user("22012", "division by zero")
    } else if lower.contains("overflow") {
        Error::user(
            "22003",
            format!("value out of range: {}", strip_prefixes(message)),
        )
    } else if let Some(message) = invalid_input_message(message) {
        Error::user("22P02", message)
    } else if lower.contains("cannot cast")
        || lower.contains("cast error")
        || lower.contains("parser error")
    {
        Error::user(
            "22P02",
            format!("invalid input syntax: {}", strip_prefixes(message)),
        )
    } else {
        Error::user("22000", strip_prefixes(message))
    }
}

/// PostgreSQL's `invalid input syntax for type integer: "x"` from Arrow's "Cannot cast string 'x' to
/// value of Int32 type"; `None` for any other message.
pub(crate) fn invalid_input_message(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("Cannot cast string '")?;
    let (value, rest) = rest.rsplit_once("' to value of ")?;
    let arrow_type = rest.split_whitespace().next()?;
    let type_name = match arrow_type {
        "Int8" | "Int16" => "smallint",
        "Int32" => "integer",
        "Int64" => "bigint",
        "Float32" => "real",
        "Float64" => "double precision",
        "Boolean" => "boolean",
        "Date32" | "Date64" => "date",
        name if name.starts_with("Decimal") => "numeric",
        name if name.starts_with("Timestamp") => "timestamp",
        name if name.starts_with("Time") => "time",
        _ => return None,
    };
    Some(format!(
        "invalid input syntax for type {type_name}: \"{value}\""
    ))
}

fn strip_prefixes(message: &str) -> String {
    let mut text = message.trim();
    for prefix in [
        "Arrow error: ",
        "Cast error: ",
        "Compute error: ",
        "Invalid argument error: ",
        "Parser error: ",
        "Execution error: ",
        "Error during planning: ",
        "Schema error: ",
        "External error: ",
        "Optimizer rule 'simplify_expressions' failed\ncaused by\n",
        "Arithmetic overflow: ",
    ] {
        while let Some(rest) = text.strip_prefix(prefix) {
            text = rest.trim_start();
        }
    }
    text.to_string()
}

/// Our error, from the text DataFusion made of it when it reported it inside its own (a function's
/// `coerce_types` failing: "Function 'f' user-defined coercion failed with: External error: MESSAGE
/// (CODE) No function matches ..."): the message and SQLSTATE come back out.
fn embedded_error(text: &str) -> Option<Error> {
    let (_, rest) = text.split_once("user-defined coercion failed with: ")?;
    let rest = strip_prefixes(rest);
    let rest = match rest.find(" No function matches the given name") {
        Some(end) => &rest[..end],
        None => rest.as_str(),
    };
    let rest = rest.trim_end().trim_end_matches('.');
    let (message, code) = rest.rsplit_once(" (")?;
    let code = code.strip_suffix(')')?;
    // The codes a function's argument check raises (an SQLSTATE is a `&'static str`).
    const CODES: &[&str] = &[
        "0A000", "22023", "22P02", "42601", "42804", "42846", "42883",
    ];
    let code = CODES.iter().find(|known| **known == code)?;
    Some(Error::user(code, message))
}

/// PostgreSQL's wording for the DataFusion messages users meet most: unknown tables and columns.
fn postgres_wording(text: &str) -> Option<Error> {
    if let Some(error) = embedded_error(text) {
        return Some(error);
    }
    if let Some(rest) = text.strip_prefix("table '")
        && let Some(name) = rest.strip_suffix("' not found")
    {
        let name = name.rsplit('.').next().unwrap_or(name);
        return Some(Error::user(
            "42P01",
            format!("relation \"{name}\" does not exist"),
        ));
    }
    if let Some(rest) = text.strip_prefix("No field named ") {
        // `No field named t.a. Did you mean ...` or `No field named t.a.\nValid fields are ...`.
        let end = [". ", ".\n"]
            .iter()
            .filter_map(|separator| rest.find(separator))
            .min()
            .unwrap_or(rest.len());
        let name = rest[..end].trim_end_matches('.');
        let name = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
        return Some(Error::user(
            "42703",
            format!("column \"{name}\" does not exist"),
        ));
    }
    None
}

/// Maps a DataFusion message to the SQLSTATE PostgreSQL gives the same mistake.
fn classify(message: String) -> Error {
    let text = strip_prefixes(&message);
    if let Some(error) = postgres_wording(&text) {
        return error;
    }
    let lower = text.to_lowercase();
    let code = if lower.contains("divide by zero") || lower.contains("division by zero") {
        return Error::user("22012", "division by zero");
    } else if lower.contains("table")
        && (lower.contains("not found") || lower.contains("doesn't exist"))
    {
        "42P01"
    } else if lower.contains("no field named")
        || lower.contains("column") && lower.contains("not found")
    {
        "42703"
    } else if lower.contains("ambiguous") {
        "42702"
    } else if lower.contains("invalid function")
        || lower.contains("function") && lower.contains("not found")
    {
        "42883"
    } else if lower.contains("overflow") {
        "22003"
    } else if lower.contains("cannot cast")
        || lower.contains("cast error")
        || lower.contains("parser error")
    {
        "22P02"
    } else if lower.contains("unsupported")
        || lower.contains("not implemented")
        || lower.contains("not supported")
    {
        "0A000"
    } else if lower.contains("must appear in the group by")
        || lower.contains("projection references non-aggregate values")
        || lower.contains("group by")
    {
        "42803"
    } else if lower.contains("type") && (lower.contains("coerc") || lower.contains("mismatch")) {
        "42804"
    } else if lower.contains("more than one row") || lower.contains("scalar subquery") {
        "21000"
    } else {
        "42601"
    };
    Error::user(code, text)
}
