//! Results of statements: a stream of Arrow record batches for statements that return rows, a command tag
//! (`INSERT 0 3`) for the others, and typed access to rows.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType as ArrowType, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use futures::{FutureExt, StreamExt};

use crate::error::{Error, Result};
use crate::session::{CancelHandle, Shared, drain, memory_stream, text_schema};
use crate::sql::copy::CopyEncoder;
use crate::sql::format::ColumnFormatter;

/// What one statement did, with any rows it returned collected.
#[derive(Debug, Clone)]
pub struct StatementOutcome {
    /// The command tag, as PostgreSQL sends it (`SELECT 2`, `INSERT 0 1`, `CREATE TABLE`).
    pub tag: String,
    /// Rows returned or affected.
    pub rows_affected: u64,
    /// The schema of the rows, for statements that return rows.
    pub schema: Option<SchemaRef>,
    pub batches: Vec<RecordBatch>,
    /// For `COPY ... TO STDOUT`: how the rows are written as COPY data ([`StatementOutcome::copy_data`]).
    pub copy_out: Option<Arc<CopyEncoder>>,
    /// Notices and warnings the statement raised (`table "t" does not exist, skipping`).
    pub notices: Vec<Notice>,
}

/// A message a statement sends besides its result, as PostgreSQL's NoticeResponse: it succeeded, but
/// something is worth saying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// `NOTICE` or `WARNING`.
    pub severity: &'static str,
    /// The SQLSTATE (`00000` for a plain notice).
    pub code: &'static str,
    pub message: String,
}

impl Notice {
    /// A notice of `severity` (`NOTICE`, `WARNING`) with SQLSTATE `code`.
    pub fn new(severity: &'static str, code: &'static str, message: impl Into<String>) -> Notice {
        Notice {
            severity,
            code,
            message: message.into(),
        }
    }
}

impl StatementOutcome {
    /// The outcome of a statement that returns no rows.
    pub fn command(tag: impl Into<String>, rows_affected: u64) -> StatementOutcome {
        StatementOutcome {
            tag: tag.into(),
            rows_affected,
            schema: None,
            batches: Vec::new(),
            copy_out: None,
            notices: Vec::new(),
        }
    }

    /// The COPY data of a `COPY ... TO STDOUT` (header, then one line or binary tuple per row, then
    /// the binary format's trailer); `None` for any other statement.
    pub fn copy_data(&self) -> Option<Result<Vec<u8>>> {
        let encoder = self.copy_out.as_ref()?;
        let mut data = encoder.header().unwrap_or_default();
        for batch in &self.batches {
            match encoder.encode(batch) {
                Ok(lines) => data.extend(lines),
                Err(error) => return Some(Err(error)),
            }
        }
        data.extend(encoder.trailer().unwrap_or_default());
        Some(Ok(data))
    }

    /// Every row as text in PostgreSQL's text format (`None` for NULL).
    pub fn text_rows(&self) -> Vec<Vec<Option<String>>> {
        let mut rows = Vec::new();
        for batch in &self.batches {
            rows.extend(batch_text_rows(batch));
        }
        rows
    }

    /// The rows as psql prints them in its default aligned format: a centred header, a rule, numbers
    /// right-aligned, multi-line values continued with `+`, and the `(n rows)` footer. `None` for a
    /// statement without rows. (psql writes the rows of `COPY ... TO STDOUT` as their
    /// [`StatementOutcome::copy_data`] instead.)
    pub fn psql_aligned(&self) -> Option<String> {
        let schema = self.schema.as_ref()?;
        let names: Vec<String> = schema
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        let right_aligned: Vec<bool> = schema
            .fields()
            .iter()
            .map(|field| field.data_type().is_numeric())
            .collect();
        let rows: Vec<Vec<Vec<String>>> = self
            .text_rows()
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|value| {
                        value
                            .unwrap_or_default()
                            .split('\n')
                            .map(expand_tabs)
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let mut widths: Vec<usize> = names.iter().map(|name| name.chars().count()).collect();
        for row in &rows {
            for (column, lines) in row.iter().enumerate() {
                for line in lines {
                    widths[column] = widths[column].max(line.chars().count());
                }
            }
        }
        let mut out = String::new();
        let header: Vec<String> = names
            .iter()
            .zip(&widths)
            .map(|(name, width)| {
                let padding = width - name.chars().count();
                let left = padding / 2;
                format!("{}{}{}", " ".repeat(left), name, " ".repeat(padding - left))
            })
            .collect();
        out.push_str(&format!(" {} \n", header.join(" | ")));
        let rule: Vec<String> = widths.iter().map(|width| "-".repeat(width + 2)).collect();
        out.push_str(&rule.join("+"));
        out.push('\n');
        let last = names.len().saturating_sub(1);
        for row in &rows {
            let height = row.iter().map(Vec::len).max().unwrap_or(1);
            for line_index in 0..height {
                let mut line = String::from(" ");
                for (column, lines) in row.iter().enumerate() {
                    let text = lines.get(line_index).map(String::as_str).unwrap_or("");
                    let continues = line_index + 1 < lines.len();
                    let padding = widths[column] - text.chars().count();
                    if right_aligned[column] {
                        line.push_str(&" ".repeat(padding));
                        line.push_str(text);
                    } else {
                        line.push_str(text);
                        if column < last || continues {
                            line.push_str(&" ".repeat(padding));
                        }
                    }
                    if column < last {
                        line.push_str(if continues { "+| " } else { " | " });
                    } else if continues {
                        line.push('+');
                    }
                }
                out.push_str(&line);
                out.push('\n');
            }
        }
        let count = rows.len();
        out.push_str(&format!(
            "({count} row{})\n",
            if count == 1 { "" } else { "s" }
        ));
        Some(out)
    }

    /// The column names.
    pub fn column_names(&self) -> Vec<String> {
        self.schema
            .as_ref()
            .map(|schema| {
                schema
                    .fields()
                    .iter()
                    .map(|field| field.name().clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One line of a value as psql shows it: a tab becomes the spaces up to the next multiple of 8
/// columns (psql's `pg_wcsformat`).
fn expand_tabs(line: &str) -> String {
    if !line.contains('\t') {
        return line.to_string();
    }
    let mut out = String::with_capacity(line.len() + 8);
    let mut width = 0usize;
    for character in line.chars() {
        if character == '\t' {
            loop {
                out.push(' ');
                width += 1;
                if width.is_multiple_of(8) {
                    break;
                }
            }
        } else {
            out.push(character);
            width += 1;
        }
    }
    out
}

/// A text formatter for each column of `batch`, following each field's SQL type.
pub fn batch_formatters(batch: &RecordBatch) -> Vec<ColumnFormatter<'_>> {
    batch
        .columns()
        .iter()
        .zip(batch.schema_ref().fields())
        .map(|(column, field)| ColumnFormatter::new(column, field.metadata()))
        .collect()
}

/// Every row of a batch as PostgreSQL text.
pub fn batch_text_rows(batch: &RecordBatch) -> Vec<Vec<Option<String>>> {
    let formatters = batch_formatters(batch);
    (0..batch.num_rows())
        .map(|row| {
            formatters
                .iter()
                .map(|formatter| formatter.format(row))
                .collect()
        })
        .collect()
}

enum Body {
    Stream(SendableRecordBatchStream),
    Command,
}

/// The result of one statement: rows as a stream of Arrow batches, or a command outcome.
pub struct QueryResult {
    body: Body,
    schema: Option<SchemaRef>,
    tag: String,
    rows_affected: u64,
    /// Set when rows are streamed after the statement returned, to report a failure to the session.
    shared: Option<Arc<Shared>>,
    /// When `statement_timeout` runs out for the statement that produces these rows.
    deadline: Option<tokio::time::Instant>,
    /// Set for `COPY ... TO STDOUT`.
    copy_out: Option<Arc<CopyEncoder>>,
    /// Cancels the reading of the rows too.
    cancel: Option<CancelHandle>,
    notices: Vec<Notice>,
}

impl QueryResult {
    pub(crate) fn command(outcome: StatementOutcome) -> QueryResult {
        match outcome.schema {
            Some(schema) => QueryResult {
                body: Body::Stream(memory_stream(schema.clone(), outcome.batches)),
                schema: Some(schema),
                tag: outcome.tag,
                rows_affected: outcome.rows_affected,
                shared: None,
                deadline: None,
                copy_out: None,
                cancel: None,
                notices: outcome.notices.clone(),
            },
            None => QueryResult {
                body: Body::Command,
                schema: None,
                tag: outcome.tag,
                rows_affected: outcome.rows_affected,
                shared: None,
                deadline: None,
                copy_out: None,
                cancel: None,
                notices: outcome.notices.clone(),
            },
        }
    }

    pub(crate) fn stream(stream: SendableRecordBatchStream, shared: Arc<Shared>) -> QueryResult {
        QueryResult {
            schema: Some(stream.schema()),
            body: Body::Stream(stream),
            tag: "SELECT".into(),
            rows_affected: 0,
            shared: Some(shared),
            deadline: None,
            copy_out: None,
            cancel: None,
            notices: Vec::new(),
        }
    }

    /// Rows already computed (DML with RETURNING), with the command's tag.
    pub(crate) fn rows_with_tag(
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        tag: String,
        rows_affected: u64,
    ) -> QueryResult {
        QueryResult {
            body: Body::Stream(memory_stream(schema.clone(), batches)),
            schema: Some(schema),
            tag,
            rows_affected,
            shared: None,
            deadline: None,
            copy_out: None,
            cancel: None,
            notices: Vec::new(),
        }
    }

    pub(crate) fn text_rows(names: &[&str], rows: Vec<Vec<String>>) -> Result<QueryResult> {
        let schema = text_schema(names);
        let columns: Vec<ArrayRef> = (0..names.len())
            .map(|column| {
                Arc::new(StringArray::from(
                    rows.iter()
                        .map(|row| Some(row[column].clone()))
                        .collect::<Vec<_>>(),
                )) as ArrayRef
            })
            .collect();
        let count = rows.len() as u64;
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        Ok(QueryResult::rows_with_tag(
            schema,
            vec![batch],
            "SHOW".into(),
            count,
        ))
    }

    /// The notices and warnings the statement raised, in order.
    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }

    pub(crate) fn set_notices(&mut self, notices: Vec<Notice>) {
        self.notices = notices;
    }

    /// True when the tag counts the rows as they are read (`SELECT n`, `COPY n`).
    fn counts_rows(&self) -> bool {
        self.tag == "SELECT" || self.tag == "COPY"
    }

    /// Marks the rows as the output of `COPY ... TO STDOUT`, written by `encoder`.
    pub(crate) fn into_copy_out(mut self, encoder: CopyEncoder) -> QueryResult {
        self.tag = "COPY".into();
        self.copy_out = Some(Arc::new(encoder));
        self
    }

    /// For `COPY ... TO STDOUT`: how the rows are written as COPY data. The rows themselves are read
    /// as for any result; a server sends them encoded, an embedded caller may read them as rows.
    pub fn copy_out(&self) -> Option<&CopyEncoder> {
        self.copy_out.as_deref()
    }

    /// The schema of the rows, if the statement returns rows.
    pub fn schema(&self) -> Option<SchemaRef> {
        self.schema.clone()
    }

    /// Makes reading the rows fail with 57014 once `deadline` has passed.
    pub(crate) fn set_deadline(&mut self, deadline: Option<tokio::time::Instant>) {
        self.deadline = deadline;
    }

    /// Makes reading the rows fail with 57014 when the session's statement is canceled.
    pub(crate) fn set_cancel(&mut self, cancel: CancelHandle) {
        self.cancel = Some(cancel);
    }

    /// True when the statement returns rows.
    pub fn returns_rows(&self) -> bool {
        self.schema.is_some()
    }

    /// The next batch of rows, or `None` at the end.
    pub async fn next_batch_async(&mut self) -> Result<Option<RecordBatch>> {
        let Body::Stream(stream) = &mut self.body else {
            return Ok(None);
        };
        let next = std::panic::AssertUnwindSafe(stream.next()).catch_unwind();
        let limited = async {
            match self.deadline {
                None => next.await,
                Some(deadline) => tokio::time::timeout_at(deadline, next)
                    .await
                    .unwrap_or_else(|_| {
                        Ok(Some(Err(crate::error::to_datafusion(
                            crate::session::statement_timeout_error(),
                        ))))
                    }),
            }
        };
        let cancel = self.cancel.clone().unwrap_or_default();
        let next = tokio::select! {
            next = limited => next,
            () = cancel.cancelled() => Ok(Some(Err(crate::error::to_datafusion(
                crate::session::canceled_error(),
            )))),
        };
        let next = next.unwrap_or_else(|panic| {
            Some(Err(datafusion::error::DataFusionError::External(Box::new(
                crate::session::panic_error(panic.as_ref()),
            ))))
        });
        match next {
            None => Ok(None),
            Some(Ok(batch)) => {
                if self.counts_rows() {
                    self.rows_affected += batch.num_rows() as u64;
                }
                Ok(Some(batch))
            }
            Some(Err(error)) => {
                if let Some(shared) = &self.shared {
                    shared.state.lock().stream_failed = true;
                }
                Err(error.into())
            }
        }
    }

    /// The next batch of rows (blocking), or `None` at the end.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let runtime = match &self.shared {
            Some(shared) => shared.database.runtime.clone(),
            None => {
                // In-memory results need no runtime.
                return futures::executor::block_on(self.next_batch_async());
            }
        };
        runtime.block_on(self.next_batch_async())
    }

    /// Reads every remaining batch and returns the statement's outcome.
    pub async fn collect(mut self) -> Result<StatementOutcome> {
        let mut batches = Vec::new();
        while let Some(batch) = self.next_batch_async().await? {
            batches.push(batch);
        }
        let tag = if self.counts_rows() {
            format!("{} {}", self.tag, self.rows_affected)
        } else {
            self.tag.clone()
        };
        Ok(StatementOutcome {
            tag,
            rows_affected: self.rows_affected,
            schema: self.schema.clone(),
            batches,
            copy_out: self.copy_out.clone(),
            notices: self.notices.clone(),
        })
    }

    pub(crate) async fn collect_batches(self) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let schema = self
            .schema
            .clone()
            .ok_or_else(|| Error::internal("collected rows of a statement that returns none"))?;
        match self.body {
            Body::Stream(stream) => Ok((schema, drain(stream).await?)),
            Body::Command => Ok((schema, Vec::new())),
        }
    }

    /// Every remaining row, typed.
    pub fn rows(mut self) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        while let Some(batch) = self.next_batch()? {
            for index in 0..batch.num_rows() {
                rows.push(Row {
                    batch: batch.clone(),
                    index,
                });
            }
        }
        Ok(rows)
    }

    /// The command tag, once every row has been read.
    pub fn tag(&self) -> String {
        if self.counts_rows() {
            format!("{} {}", self.tag, self.rows_affected)
        } else {
            self.tag.clone()
        }
    }

    /// Rows affected (or returned so far).
    pub fn rows_affected(&self) -> u64 {
        self.rows_affected
    }
}

/// One row of a result.
#[derive(Debug, Clone)]
pub struct Row {
    batch: RecordBatch,
    index: usize,
}

impl Row {
    /// Column `column` converted to `T`.
    pub fn get<T: FromColumn>(&self, column: usize) -> Result<T> {
        let array = self
            .batch
            .columns()
            .get(column)
            .ok_or_else(|| Error::user("42703", format!("row has no column {column}")))?;
        T::from_column(array, self.index)
    }

    /// Column `column` in PostgreSQL's text format, `None` for NULL.
    pub fn text(&self, column: usize) -> Option<String> {
        let schema = self.batch.schema();
        let field = schema.field(column);
        ColumnFormatter::new(self.batch.column(column), field.metadata()).format(self.index)
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.batch.num_columns()
    }

    /// True for a row of no columns.
    pub fn is_empty(&self) -> bool {
        self.batch.num_columns() == 0
    }
}

/// Types a column value converts to.
pub trait FromColumn: Sized {
    fn from_column(array: &ArrayRef, row: usize) -> Result<Self>;
}

fn null_error() -> Error {
    Error::user("22004", "value is NULL; read it as an Option")
}

fn type_error(array: &ArrayRef, wanted: &str) -> Error {
    Error::user(
        "42804",
        format!(
            "column of type {} cannot be read as {wanted}",
            array.data_type()
        ),
    )
}

impl FromColumn for i64 {
    fn from_column(array: &ArrayRef, row: usize) -> Result<Self> {
        if array.is_null(row) {
            return Err(null_error());
        }
        Ok(match array.data_type() {
            ArrowType::Int16 => i64::from(
                array
                    .as_any()
                    .downcast_ref::<Int16Array>()
                    .expect("Int16")
                    .value(row),
            ),
            ArrowType::Int32 => i64::from(
                array
                    .as_any()
                    .downcast_ref::<Int32Array>()
                    .expect("Int32")
                    .value(row),
            ),
            ArrowType::Int64 => array
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("Int64")
                .value(row),
            ArrowType::UInt64 => i64::try_from(
                array
                    .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
                    .value(row),
            )
            .map_err(|_| Error::user("22003", "value out of range for i64"))?,
            _ => return Err(type_error(array, "i64")),
        })
    }
}

impl FromColumn for i32 {
    fn from_column(array: &ArrayRef, row: usize) -> Result<Self> {
        i32::try_from(i64::from_column(array, row)?)
            .map_err(|_| Error::user("22003", "value out of range for i32"))
    }
}

impl FromColumn for f64 {
    fn from_column(array: &ArrayRef, row: usize) -> Result<Self> {
        if array.is_null(row) {
            return Err(null_error());
        }
        Ok(match array.data_type() {
            ArrowType::Float32 => f64::from(
                array
                    .as_any()
                    .downcast_ref::<Float32Array>()
                    .expect("Float32")
                    .value(row),
            ),
            ArrowType::Float64 => array
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("Float64")
                .value(row),
            _ => i64::from_column(array, row).map_err(|_| type_error(array, "f64"))? as f64,
        })
    }
}

impl FromColumn for bool {
    fn from_column(array: &ArrayRef, row: usize) -> Result<Self> {
        if array.is_null(row) {
            return Err(null_error());
        }
        array
            .as_any()
            .downcast_ref::<BooleanArray>()
            .map(|booleans| booleans.value(row))
            .ok_or_else(|| type_error(array, "bool"))
    }
}

impl FromColumn for String {
    fn from_column(array: &ArrayRef, row: usize) -> Result<Self> {
        if array.is_null(row) {
            return Err(null_error());
        }
        ColumnFormatter::new(array, &Default::default())
            .format(row)
            .ok_or_else(null_error)
    }
}

impl FromColumn for Vec<u8> {
    fn from_column(array: &ArrayRef, row: usize) -> Result<Self> {
        if array.is_null(row) {
            return Err(null_error());
        }
        match array.data_type() {
            ArrowType::Binary => Ok(array.as_binary::<i32>().value(row).to_vec()),
            _ => Err(type_error(array, "bytes")),
        }
    }
}

impl<T: FromColumn> FromColumn for Option<T> {
    fn from_column(array: &ArrayRef, row: usize) -> Result<Self> {
        if array.is_null(row) {
            Ok(None)
        } else {
            T::from_column(array, row).map(Some)
        }
    }
}

/// One value of a column in PostgreSQL's text format, `None` for NULL.
pub fn batch_text_value(column: &ArrayRef, row: usize) -> Option<String> {
    ColumnFormatter::new(column, &Default::default()).format(row)
}
