//! `COPY table [(columns)] FROM 'file' | STDIN` and `COPY table [(columns)] | (query) TO 'file' | STDOUT`,
//! in PostgreSQL's text and CSV formats, and `FROM ... (FORMAT json)`: JSON lines, one document per
//! line into a jsonb column, or an object's fields into the columns of their names.
//!
//! The data is split into rows of fields here ([`parse_rows`], PostgreSQL's rules: backslash escapes
//! and `\N` in text, quoting in CSV, `\.` ends the data), then written by
//! [`Session::copy_rows`](crate::Session): each column's fields read by the type's input rules, as an
//! INSERT of string literals reads them, then NOT NULL, CHECK, uniqueness, foreign keys and index
//! maintenance as for any INSERT, without SQL text or a plan. When the table needs what only an
//! INSERT computes (a default or identity for a column the COPY does not list, or a GENERATED ALWAYS
//! column in the list), the rows go through the ordinary INSERT path in chunks, each field an untyped
//! string literal.
//!
//! `FROM STDIN` reads what the client sent: [`crate::Session::copy_in`] (the wire protocol's
//! CopyData) hands it over. A server-side file is read with the process's permissions, as an
//! embedded library does.
//!
//! `TO` runs the query (`SELECT columns FROM table` for the table form) and writes each row as a line:
//! text format escapes backslash, control characters and the delimiter (`\\`, `\n`, `\t`, ...) and
//! writes NULL as `\N`; CSV quotes a field that holds the delimiter, the quote, a line break, or that
//! reads as the NULL string, and the FORCE_QUOTE columns. `TO STDOUT` returns the rows as a
//! [`crate::QueryResult`] marked with its [`CopyEncoder`]: a server encodes them into CopyData as it
//! reads them, an embedded caller may read them as rows.

use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Ident, ObjectName,
    Statement,
};

use std::io::Write;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;

use crate::error::{Error, Result};
use crate::result::{QueryResult, StatementOutcome, batch_text_rows};
use crate::session::{PreparedStatement, Session};

/// Rows per generated INSERT.
const ROWS_PER_CHUNK: usize = 500;

/// The format options of one COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyFormat {
    csv: bool,
    /// `FORMAT json`: one JSON document per line (reading only).
    json: bool,
    /// `FORMAT binary`: PostgreSQL's binary COPY format ([`parse_binary`], [`CopyEncoder`]).
    binary: bool,
    delimiter: char,
    null: String,
    header: bool,
    quote: char,
    escape: char,
    /// FORCE_QUOTE: the columns (lower-case) whose non-NULL values are always quoted; `*` for all.
    force_quote: Vec<String>,
}

impl CopyFormat {
    /// The format named by a COPY statement's options (both the modern and the pre-9.0 syntax).
    pub(crate) fn from_options(
        options: &[CopyOption],
        legacy_options: &[CopyLegacyOption],
    ) -> Result<CopyFormat> {
        let mut csv = false;
        let mut json = false;
        let mut binary = false;
        let mut delimiter = None;
        let mut null = None;
        let mut header = false;
        let mut quote = None;
        let mut escape = None;
        let mut force_quote = Vec::new();
        let names = |columns: &[Ident]| -> Vec<String> {
            columns.iter().map(crate::sql::rewrite::normalize).collect()
        };
        for option in options {
            match option {
                CopyOption::Format(name) => match name.value.to_lowercase().as_str() {
                    "text" => csv = false,
                    "csv" => csv = true,
                    "json" => json = true,
                    "binary" => binary = true,
                    other => {
                        return Err(Error::user(
                            "22023",
                            format!("COPY format \"{other}\" not recognized"),
                        ));
                    }
                },
                CopyOption::Delimiter(character) => delimiter = Some(*character),
                CopyOption::Null(text) => null = Some(text.clone()),
                CopyOption::Header(on) => header = *on,
                CopyOption::Quote(character) => quote = Some(*character),
                CopyOption::Escape(character) => escape = Some(*character),
                CopyOption::ForceQuote(columns) => force_quote = names(columns),
                CopyOption::Freeze(_) | CopyOption::Encoding(_) => {}
                other => return Err(Error::not_supported(format!("COPY option {other}"))),
            }
        }
        for option in legacy_options {
            match option {
                CopyLegacyOption::Binary => binary = true,
                CopyLegacyOption::Delimiter(character) => delimiter = Some(*character),
                CopyLegacyOption::Null(text) => null = Some(text.clone()),
                CopyLegacyOption::Csv(csv_options) => {
                    csv = true;
                    for csv_option in csv_options {
                        match csv_option {
                            CopyLegacyCsvOption::Header => header = true,
                            CopyLegacyCsvOption::Quote(character) => quote = Some(*character),
                            CopyLegacyCsvOption::Escape(character) => escape = Some(*character),
                            CopyLegacyCsvOption::ForceQuote(columns) => {
                                force_quote = names(columns);
                            }
                            other => {
                                return Err(Error::not_supported(format!("COPY option {other}")));
                            }
                        }
                    }
                }
                other => return Err(Error::not_supported(format!("COPY option {other}"))),
            }
        }
        if !csv && (quote.is_some() || escape.is_some()) {
            return Err(Error::user(
                "0A000",
                "COPY quote and escape are available only in CSV mode",
            ));
        }
        if !csv && !force_quote.is_empty() {
            return Err(Error::user(
                "0A000",
                "COPY FORCE_QUOTE is available only in CSV mode",
            ));
        }
        if json && (csv || delimiter.is_some() || null.is_some() || header) {
            return Err(Error::user(
                "42601",
                "COPY FORMAT json takes no other format option",
            ));
        }
        if binary {
            if csv || json {
                return Err(Error::user("42601", "conflicting or redundant options"));
            }
            if delimiter.is_some() {
                return Err(Error::user(
                    "42601",
                    "cannot specify DELIMITER in BINARY mode",
                ));
            }
            if null.is_some() {
                return Err(Error::user("42601", "cannot specify NULL in BINARY mode"));
            }
            if header {
                return Err(Error::user("0A000", "cannot specify HEADER in BINARY mode"));
            }
        }
        let quote = quote.unwrap_or('"');
        Ok(CopyFormat {
            csv,
            json,
            binary,
            delimiter: delimiter.unwrap_or(if csv { ',' } else { '\t' }),
            null: null.unwrap_or_else(|| {
                if csv {
                    String::new()
                } else {
                    "\\N".to_string()
                }
            }),
            header,
            quote,
            escape: escape.unwrap_or(quote),
            force_quote,
        })
    }
}

/// The signature opening binary COPY data, then the flags and the header extension's length (both 0).
const BINARY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Writes rows as COPY data in one format (see the module docs).
#[derive(Debug, Clone)]
pub struct CopyEncoder {
    format: CopyFormat,
    names: Vec<String>,
    /// Per column: FORCE_QUOTE applies.
    forced: Vec<bool>,
    /// Per column: its PostgreSQL type, whose binary form the binary format writes.
    type_oids: Vec<u32>,
}

impl CopyEncoder {
    pub(crate) fn new(format: CopyFormat, schema: &Schema) -> Result<CopyEncoder> {
        let names: Vec<String> = schema
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        let all = format.force_quote.iter().any(|name| name == "*");
        for name in &format.force_quote {
            if name != "*" && !names.contains(name) {
                return Err(Error::user(
                    "42703",
                    format!("FORCE_QUOTE column \"{name}\" not referenced by COPY"),
                ));
            }
        }
        let forced = names
            .iter()
            .map(|name| all || format.force_quote.contains(name))
            .collect();
        let type_oids = schema
            .fields()
            .iter()
            .map(|field| crate::sql::binary_format::field_type_oid(field))
            .collect();
        Ok(CopyEncoder {
            format,
            names,
            forced,
            type_oids,
        })
    }

    /// Whether the data is in the binary format (the wire protocol says so in CopyOutResponse).
    pub fn is_binary(&self) -> bool {
        self.format.binary
    }

    /// The number of columns in each line.
    pub fn column_count(&self) -> usize {
        self.names.len()
    }

    /// What comes before the rows: the header line (HEADER), if the COPY asked for one, or the binary
    /// format's signature and header.
    pub fn header(&self) -> Option<Vec<u8>> {
        if self.format.binary {
            let mut header = BINARY_SIGNATURE.to_vec();
            header.extend_from_slice(&0i32.to_be_bytes());
            header.extend_from_slice(&0i32.to_be_bytes());
            return Some(header);
        }
        if !self.format.header {
            return None;
        }
        let mut out = String::new();
        let names: Vec<Option<String>> = self.names.iter().cloned().map(Some).collect();
        self.write_line(&names, &vec![false; names.len()], &mut out);
        Some(out.into_bytes())
    }

    /// What comes after the rows: the binary format's trailer (a field count of -1).
    pub fn trailer(&self) -> Option<Vec<u8>> {
        self.format.binary.then(|| (-1i16).to_be_bytes().to_vec())
    }

    /// The lines of every row of `batch`.
    pub fn encode(&self, batch: &RecordBatch) -> Result<Vec<u8>> {
        Ok(self.encode_rows(batch)?.concat())
    }

    /// Each row of `batch` as its own line (a CSV line may hold line breaks inside quotes) or binary
    /// tuple: the wire protocol sends one CopyData message per row, as PostgreSQL does and clients
    /// such as psycopg expect.
    pub fn encode_rows(&self, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
        if self.format.binary {
            return self.encode_binary_rows(batch);
        }
        Ok(batch_text_rows(batch)
            .into_iter()
            .map(|row| {
                let mut out = String::new();
                self.write_line(&row, &self.forced, &mut out);
                out.into_bytes()
            })
            .collect())
    }

    /// Binary tuples: the field count (int16), then each field's length (int32, -1 for NULL) and
    /// its type's binary form.
    fn encode_binary_rows(&self, batch: &RecordBatch) -> Result<Vec<Vec<u8>>> {
        let formatters = crate::result::batch_formatters(batch);
        let count = i16::try_from(batch.num_columns())
            .map_err(|_| Error::user("54011", "too many columns for binary COPY"))?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        let mut value = Vec::new();
        for row in 0..batch.num_rows() {
            let mut out = count.to_be_bytes().to_vec();
            for ((formatter, column), &type_oid) in
                formatters.iter().zip(batch.columns()).zip(&self.type_oids)
            {
                match formatter.format(row) {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(text) => {
                        value.clear();
                        crate::sql::binary_format::encode(
                            column, row, type_oid, &text, &mut value,
                        )?;
                        let length = i32::try_from(value.len())
                            .map_err(|_| Error::user("54000", "value too long for binary COPY"))?;
                        out.extend_from_slice(&length.to_be_bytes());
                        out.extend_from_slice(&value);
                    }
                }
            }
            rows.push(out);
        }
        Ok(rows)
    }

    fn write_line(&self, values: &[Option<String>], forced: &[bool], out: &mut String) {
        for (index, value) in values.iter().enumerate() {
            if index > 0 {
                out.push(self.format.delimiter);
            }
            match value {
                None => out.push_str(&self.format.null),
                Some(text) if self.format.csv => self.write_csv(text, forced[index], out),
                Some(text) => self.write_text(text, out),
            }
        }
        out.push('\n');
    }

    fn write_text(&self, text: &str, out: &mut String) {
        for character in text.chars() {
            match character {
                '\\' => out.push_str("\\\\"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{b}' => out.push_str("\\v"),
                character if character == self.format.delimiter => {
                    out.push('\\');
                    out.push(character);
                }
                character => out.push(character),
            }
        }
    }

    fn write_csv(&self, text: &str, forced: bool, out: &mut String) {
        let quote = self.format.quote;
        let needs_quotes = forced
            || text == self.format.null
            || text.starts_with("\\.")
            || text.chars().any(|character| {
                character == self.format.delimiter
                    || character == quote
                    || character == '\n'
                    || character == '\r'
            });
        if !needs_quotes {
            out.push_str(text);
            return;
        }
        out.push(quote);
        for character in text.chars() {
            if character == quote || character == self.format.escape {
                out.push(self.format.escape);
            }
            out.push(character);
        }
        out.push(quote);
    }
}

/// Splits COPY data into rows of fields (`None` is NULL). Stops at a `\.` line.
pub(crate) fn parse_rows(data: &str, format: &CopyFormat) -> Result<Vec<Vec<Option<String>>>> {
    let mut rows = if format.csv {
        parse_csv(data, format)?
    } else {
        parse_text(data, format)?
    };
    if format.header && !rows.is_empty() {
        rows.remove(0);
    }
    Ok(rows)
}

/// `FORMAT json` data: one JSON document per non-blank line. Into one column, the document itself;
/// into several, each line must be an object, and each column takes the field of its name (a string
/// as its text, a missing field or JSON null as NULL, anything else as its JSON).
pub(crate) fn parse_json_lines(data: &str, columns: &[String]) -> Result<Vec<Vec<Option<String>>>> {
    let mut rows = Vec::new();
    for (index, line) in data.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let context = format!("COPY, line {}", index + 1);
        let document = qubedb_model::jsonb::parse(line).map_err(|error| {
            let mut error = crate::sql::convert::json_error(error);
            let context = match error.context() {
                Some(inner) => format!("{inner}\n{context}"),
                None => context.clone(),
            };
            error.set_context(Some(context));
            error
        })?;
        if columns.len() == 1 {
            rows.push(vec![Some(line.to_string())]);
            continue;
        }
        let bytes = document.encode();
        let document = qubedb_model::jsonb::Jsonb::new(&bytes);
        if document.kind() != qubedb_model::jsonb::Kind::Object {
            return Err(Error::user(
                "22P02",
                format!(
                    "COPY FORMAT json into {} columns needs an object on each line",
                    columns.len()
                ),
            )
            .with_detail(context));
        }
        rows.push(
            columns
                .iter()
                .map(|column| {
                    document
                        .get(column)
                        .and_then(|value| value.to_unquoted_text())
                })
                .collect(),
        );
    }
    Ok(rows)
}

/// Binary COPY data (PostgreSQL's format: the signature, flags and a header extension, then tuples of
/// length-prefixed fields, then a field count of -1) into rows of fields, each read by the binary
/// form of its column's type (`columns`: name and type OID) and given as its text form, which the
/// column's input rules then read as for the text format.
pub(crate) fn parse_binary(
    data: &[u8],
    columns: &[(String, u32)],
) -> Result<Vec<Vec<Option<String>>>> {
    let bad = |message: &str| Error::user("22P04", message.to_string());
    let mut reader = BinaryReader { data, at: 0 };
    if reader.take(BINARY_SIGNATURE.len()) != Some(BINARY_SIGNATURE.as_slice()) {
        return Err(bad("COPY file signature not recognized"));
    }
    let flags = reader
        .int32()
        .ok_or_else(|| bad("invalid COPY file header (missing flags)"))?;
    if flags & (1 << 16) != 0 {
        return Err(bad("invalid COPY file header (WITH OIDS)"));
    }
    if flags >> 17 != 0 {
        return Err(bad("unrecognized critical flags in COPY file header"));
    }
    let extension = reader
        .int32()
        .and_then(|length| usize::try_from(length).ok())
        .ok_or_else(|| bad("invalid COPY file header (missing length)"))?;
    reader
        .take(extension)
        .ok_or_else(|| bad("invalid COPY file header (wrong length)"))?;
    let mut rows = Vec::new();
    loop {
        let line = rows.len() + 1;
        let Some(count) = reader.int16() else {
            // PostgreSQL accepts data that ends without the trailer.
            if reader.at == data.len() {
                break;
            }
            return Err(bad("unexpected EOF in COPY data"));
        };
        if count == -1 {
            break;
        }
        if usize::try_from(count).ok() != Some(columns.len()) {
            return Err(Error::user(
                "22P04",
                format!("row field count is {count}, expected {}", columns.len()),
            )
            .with_detail(format!("COPY, line {line}")));
        }
        let mut fields = Vec::with_capacity(columns.len());
        for (name, type_oid) in columns {
            let length = reader
                .int32()
                .ok_or_else(|| bad("unexpected EOF in COPY data"))?;
            if length == -1 {
                fields.push(None);
                continue;
            }
            let bytes = usize::try_from(length)
                .ok()
                .and_then(|length| reader.take(length))
                .ok_or_else(|| bad("unexpected EOF in COPY data"))?;
            let value = crate::sql::binary_format::decode_parameter(Some(bytes), true, *type_oid)
                .map_err(|error| {
                error.with_detail(format!("COPY, line {line}, column {name}"))
            })?;
            fields.push(param_text(value));
        }
        rows.push(fields);
    }
    Ok(rows)
}

/// Reads big-endian integers and byte runs off binary COPY data.
struct BinaryReader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> BinaryReader<'a> {
    fn take(&mut self, length: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(length)?;
        let bytes = self.data.get(self.at..end)?;
        self.at = end;
        Some(bytes)
    }

    fn int16(&mut self) -> Option<i16> {
        self.take(2)
            .map(|bytes| i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn int32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|bytes| i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

/// A value read from its binary form, as the text its column's input rules read.
fn param_text(value: crate::Param) -> Option<String> {
    use crate::Param;
    Some(match value {
        Param::Null => return None,
        Param::Boolean(value) => if value { "t" } else { "f" }.to_string(),
        Param::Integer(value) => value.to_string(),
        Param::Double(value) if value.is_nan() => "NaN".to_string(),
        Param::Double(value) if value.is_infinite() => {
            if value > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
        }
        Param::Double(value) => value.to_string(),
        Param::Text(text) => text,
        Param::Bytes(bytes) => {
            let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
            format!("\\x{hex}")
        }
        Param::Vector(elements) => crate::sql::vector::format(&elements),
        Param::Typed { text, .. } => text,
    })
}

fn parse_text(data: &str, format: &CopyFormat) -> Result<Vec<Vec<Option<String>>>> {
    let mut rows = Vec::new();
    let lines: Vec<&str> = data.split('\n').collect();
    for (index, line) in lines.iter().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line == "\\." {
            break;
        }
        // The newline ending the last row leaves an empty piece behind.
        if line.is_empty() && index + 1 == lines.len() {
            break;
        }
        let mut fields = Vec::new();
        for raw in split_text_fields(line, format.delimiter) {
            if raw == format.null {
                fields.push(None);
            } else {
                fields.push(Some(unescape_text(&raw).map_err(|error| {
                    error.with_detail(format!("COPY data line {}", index + 1))
                })?));
            }
        }
        rows.push(fields);
    }
    Ok(rows)
}

/// Splits a text-format line at unescaped delimiters, keeping the escapes for [`unescape_text`].
fn split_text_fields(line: &str, delimiter: char) -> Vec<String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut characters = line.chars();
    while let Some(character) = characters.next() {
        if character == '\\' {
            current.push(character);
            if let Some(next) = characters.next() {
                current.push(next);
            }
        } else if character == delimiter {
            fields.push(std::mem::take(&mut current));
        } else {
            current.push(character);
        }
    }
    fields.push(current);
    fields
}

/// PostgreSQL's text-format escapes: `\b \f \n \r \t \v`, octal `\123`, hex `\x41`, else the character.
fn unescape_text(raw: &str) -> Result<String> {
    let mut text = String::with_capacity(raw.len());
    let characters: Vec<char> = raw.chars().collect();
    let mut index = 0;
    while index < characters.len() {
        let character = characters[index];
        index += 1;
        if character != '\\' {
            text.push(character);
            continue;
        }
        let Some(&next) = characters.get(index) else {
            break;
        };
        index += 1;
        match next {
            'b' => text.push('\u{8}'),
            'f' => text.push('\u{c}'),
            'n' => text.push('\n'),
            'r' => text.push('\r'),
            't' => text.push('\t'),
            'v' => text.push('\u{b}'),
            '0'..='7' => {
                let first = next.to_digit(8).expect("an octal digit");
                let value = read_digits(&characters, &mut index, 8, 2, first);
                text.push(byte_character(value)?);
            }
            'x' if characters
                .get(index)
                .is_some_and(|digit| digit.is_ascii_hexdigit()) =>
            {
                let value = read_digits(&characters, &mut index, 16, 2, 0);
                text.push(byte_character(value)?);
            }
            other => text.push(other),
        }
    }
    Ok(text)
}

/// Reads up to `count` more digits of `radix` at `index` onto `value`, advancing `index`.
fn read_digits(
    characters: &[char],
    index: &mut usize,
    radix: u32,
    count: usize,
    value: u32,
) -> u32 {
    let mut value = value;
    for _ in 0..count {
        match characters
            .get(*index)
            .and_then(|digit| digit.to_digit(radix))
        {
            Some(digit) => {
                value = value * radix + digit;
                *index += 1;
            }
            None => break,
        }
    }
    value
}

fn byte_character(value: u32) -> Result<char> {
    match char::from_u32(value) {
        Some(character) if value != 0 && value < 0x80 => Ok(character),
        _ => Err(Error::user(
            "22021",
            format!("invalid byte sequence for encoding \"UTF8\": 0x{value:02x}"),
        )),
    }
}

fn parse_csv(data: &str, format: &CopyFormat) -> Result<Vec<Vec<Option<String>>>> {
    let mut rows = Vec::new();
    let characters: Vec<char> = data.chars().collect();
    let mut index = 0;
    let mut line = 1;
    while index < characters.len() {
        // `\.` alone on a line ends the data.
        if characters[index] == '\\'
            && characters.get(index + 1) == Some(&'.')
            && matches!(characters.get(index + 2), None | Some('\n') | Some('\r'))
        {
            break;
        }
        let mut fields = Vec::new();
        loop {
            let mut value = String::new();
            let mut quoted = false;
            // A field: runs of unquoted text and quoted sections, up to a delimiter or line end.
            while index < characters.len() {
                let character = characters[index];
                if character == format.quote {
                    quoted = true;
                    index += 1;
                    loop {
                        let Some(&inner) = characters.get(index) else {
                            return Err(Error::user("22P04", "unterminated CSV quoted field")
                                .with_detail(format!("COPY data line {line}")));
                        };
                        if inner == format.escape
                            && characters.get(index + 1) == Some(&format.quote)
                        {
                            value.push(format.quote);
                            index += 2;
                        } else if inner == format.quote {
                            index += 1;
                            break;
                        } else {
                            if inner == '\n' {
                                line += 1;
                            }
                            value.push(inner);
                            index += 1;
                        }
                    }
                } else if character == format.delimiter || character == '\n' || character == '\r' {
                    break;
                } else {
                    value.push(character);
                    index += 1;
                }
            }
            fields.push(if !quoted && value == format.null {
                None
            } else {
                Some(value)
            });
            match characters.get(index) {
                Some(character) if *character == format.delimiter => index += 1,
                _ => break,
            }
        }
        if characters.get(index) == Some(&'\r') {
            index += 1;
        }
        if characters.get(index) == Some(&'\n') {
            index += 1;
        }
        line += 1;
        rows.push(fields);
    }
    Ok(rows)
}

fn quote_literal(value: &Option<String>) -> String {
    match value {
        None => "NULL".to_string(),
        Some(text) => format!("'{}'", text.replace('\'', "''")),
    }
}

impl Session {
    /// Runs `COPY ... FROM`: `data` is what the client sent for `FROM STDIN`, `None` otherwise.
    pub(crate) async fn copy_from(
        &mut self,
        table_name: ObjectName,
        columns: Vec<Ident>,
        target: CopyTarget,
        format: CopyFormat,
        data: Option<Vec<u8>>,
    ) -> Result<StatementOutcome> {
        let bytes = match (target, data) {
            (CopyTarget::Stdin, Some(data)) => data,
            (CopyTarget::Stdin, None) => {
                return Err(Error::user(
                    "0A000",
                    "COPY FROM STDIN needs the data from the client (Session::copy_in)",
                ));
            }
            (CopyTarget::File { filename }, _) => std::fs::read(&filename).map_err(|error| {
                Error::user(
                    "58P01",
                    format!("could not open file \"{filename}\" for reading: {error}"),
                )
            })?,
            (CopyTarget::Program { .. }, _) => {
                return Err(Error::not_supported("COPY FROM PROGRAM"));
            }
            (CopyTarget::Stdout, _) => {
                return Err(Error::user("42601", "COPY FROM cannot read from STDOUT"));
            }
        };
        let names: Vec<ObjectName> = columns
            .iter()
            .map(|column| ObjectName::from(vec![column.clone()]))
            .collect();
        let rows = if format.binary {
            let catalog = self.shared.state.lock().catalog.clone();
            let table =
                crate::sql::dml::target_table(&catalog, &self.shared.temp_schema, &table_name)?;
            let columns: Vec<(String, u32)> = crate::sql::dml::insert_targets(&table, &names)?
                .into_iter()
                .map(|slot| {
                    let column = &table.columns[slot];
                    let (type_oid, _) = crate::sql::system::type_oid(column.data_type);
                    (column.name.clone(), type_oid as u32)
                })
                .collect();
            parse_binary(&bytes, &columns)?
        } else {
            self.parse_text_data(bytes, &table_name, &columns, &format)?
        };
        if let Some(count) = self.copy_rows(&table_name, &names, &rows).await? {
            return Ok(StatementOutcome::command(format!("COPY {count}"), count));
        }
        self.copy_rows_by_insert(&table_name, &columns, &rows).await
    }

    /// Text, CSV or JSON-lines data into rows of fields.
    fn parse_text_data(
        &self,
        bytes: Vec<u8>,
        table_name: &ObjectName,
        columns: &[Ident],
        format: &CopyFormat,
    ) -> Result<Vec<Vec<Option<String>>>> {
        let text = String::from_utf8(bytes).map_err(|error| {
            Error::user(
                "22021",
                format!("invalid byte sequence for encoding \"UTF8\": {error}"),
            )
        })?;
        Ok(if format.json {
            let names: Vec<String> = if columns.is_empty() {
                let catalog = self.shared.state.lock().catalog.clone();
                let table =
                    crate::sql::dml::target_table(&catalog, &self.shared.temp_schema, table_name)?;
                table
                    .live_columns()
                    .map(|(_, column)| column.name.clone())
                    .collect()
            } else {
                columns.iter().map(crate::sql::rewrite::normalize).collect()
            };
            parse_json_lines(&text, &names)?
        } else {
            parse_rows(&text, format)?
        })
    }

    /// Rows the direct path cannot write (see the module docs), as INSERTs of string literals.
    async fn copy_rows_by_insert(
        &mut self,
        table_name: &ObjectName,
        columns: &[Ident],
        rows: &[Vec<Option<String>>],
    ) -> Result<StatementOutcome> {
        let column_list = if columns.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = columns.iter().map(Ident::to_string).collect();
            format!(" ({})", names.join(", "))
        };
        // The names as written (quoted or not), so they resolve and read as in the COPY itself.
        let table = table_name.to_string();
        let mut count = 0u64;
        for chunk in rows.chunks(ROWS_PER_CHUNK) {
            let tuples: Vec<String> = chunk
                .iter()
                .map(|row| {
                    let values: Vec<String> = row.iter().map(quote_literal).collect();
                    format!("({})", values.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO {table}{column_list} VALUES {}",
                tuples.join(", ")
            );
            let mut statements = crate::sql::parse::parse(&sql)?;
            let Some(datafusion::sql::sqlparser::ast::Statement::Insert(insert)) = statements.pop()
            else {
                return Err(Error::internal("COPY built something other than an INSERT"));
            };
            let outcome = self.insert(insert).await?.collect().await?;
            count += outcome.rows_affected;
        }
        Ok(StatementOutcome::command(format!("COPY {count}"), count))
    }
}

impl Session {
    /// Checks a `COPY table [(columns)] FROM STDIN` before the client sends its data — the table and
    /// columns exist, the options are valid, the transaction is not aborted — and returns how many
    /// fields each row holds and whether the data is in the binary format.
    pub async fn copy_in_columns_async(
        &mut self,
        prepared: &PreparedStatement,
    ) -> Result<(usize, bool)> {
        let Statement::Copy {
            source,
            to: false,
            target: CopyTarget::Stdin,
            options,
            legacy_options,
            ..
        } = &prepared.statement
        else {
            return Err(Error::user("42601", "not a COPY ... FROM STDIN statement"));
        };
        if self.transaction_failed() {
            return Err(crate::session::aborted_error());
        }
        let format = CopyFormat::from_options(options, legacy_options)?;
        let (table_name, columns) = copy_from_parts(source.clone())?;
        let implicit = !self.in_transaction();
        self.ensure_transaction()?;
        let catalog = self.shared.state.lock().catalog.clone();
        if implicit {
            self.rollback_transaction();
        }
        let table = crate::sql::dml::target_table(&catalog, &self.shared.temp_schema, &table_name)?;
        let names: Vec<ObjectName> = columns
            .into_iter()
            .map(|column| ObjectName::from(vec![column]))
            .collect();
        Ok((
            crate::sql::dml::insert_targets(&table, &names)?.len(),
            format.binary,
        ))
    }

    /// Runs `COPY ... TO`: the rows for `STDOUT` (marked with their encoder), or written to a file.
    pub(crate) async fn copy_to(
        &mut self,
        source: CopySource,
        target: CopyTarget,
        format: CopyFormat,
    ) -> Result<QueryResult> {
        if format.json {
            return Err(Error::not_supported("COPY TO in FORMAT json"));
        }
        let query = match source {
            CopySource::Table {
                table_name,
                columns,
            } => {
                let list = if columns.is_empty() {
                    "*".to_string()
                } else {
                    columns
                        .iter()
                        .map(Ident::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                crate::sql::dml::parse_query(&format!("SELECT {list} FROM {table_name}"))?
            }
            CopySource::Query(query) => *query,
        };
        let mut result = self.run_query(query).await?;
        let schema = result
            .schema()
            .ok_or_else(|| Error::internal("COPY TO query returned no rows"))?;
        let encoder = CopyEncoder::new(format, &schema)?;
        match target {
            CopyTarget::Stdout => Ok(result.into_copy_out(encoder)),
            CopyTarget::File { filename } => {
                let failed = |error: std::io::Error| {
                    Error::user(
                        "58P01",
                        format!("could not open file \"{filename}\" for writing: {error}"),
                    )
                };
                let mut file =
                    std::io::BufWriter::new(std::fs::File::create(&filename).map_err(failed)?);
                let mut count = 0u64;
                if let Some(header) = encoder.header() {
                    file.write_all(&header).map_err(failed)?;
                }
                while let Some(batch) = result.next_batch_async().await? {
                    count += batch.num_rows() as u64;
                    file.write_all(&encoder.encode(&batch)?).map_err(failed)?;
                }
                if let Some(trailer) = encoder.trailer() {
                    file.write_all(&trailer).map_err(failed)?;
                }
                file.flush().map_err(failed)?;
                Ok(QueryResult::command(StatementOutcome::command(
                    format!("COPY {count}"),
                    count,
                )))
            }
            CopyTarget::Stdin => Err(Error::user("42601", "COPY TO cannot write to STDIN")),
            CopyTarget::Program { .. } => Err(Error::not_supported("COPY TO PROGRAM")),
        }
    }
}

/// The parts of a `COPY ... FROM` statement, or why it is not one QubeDB runs.
pub(crate) fn copy_from_parts(source: CopySource) -> Result<(ObjectName, Vec<Ident>)> {
    match source {
        CopySource::Table {
            table_name,
            columns,
        } => Ok((table_name, columns)),
        CopySource::Query(_) => Err(Error::user("42601", "COPY FROM needs a table, not a query")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn text() -> CopyFormat {
        CopyFormat::from_options(&[], &[]).expect("default options")
    }

    fn csv() -> CopyFormat {
        CopyFormat::from_options(&[CopyOption::Format(Ident::new("csv"))], &[])
            .expect("csv options")
    }

    #[test]
    fn text_fields_escapes_and_nulls() {
        let rows = parse_rows("1\ta\\tb\t\\N\n2\t\\\\x\t\\101\n\\.\nignored\n", &text())
            .expect("valid data");
        assert_eq!(
            rows,
            vec![
                vec![Some("1".into()), Some("a\tb".into()), None],
                vec![Some("2".into()), Some("\\x".into()), Some("A".into())],
            ]
        );
    }

    #[test]
    fn text_escaped_delimiter_is_data() {
        let rows = parse_rows("a\\\tb\tc", &text()).expect("valid data");
        assert_eq!(rows, vec![vec![Some("a\tb".into()), Some("c".into())]]);
    }

    #[test]
    fn csv_quotes_empty_and_newlines() {
        let rows =
            parse_rows("1,\"a,b\",,\"\"\n2,\"x\"\"y\nz\",w,\r\n", &csv()).expect("valid data");
        assert_eq!(
            rows,
            vec![
                vec![
                    Some("1".into()),
                    Some("a,b".into()),
                    None,
                    Some(String::new())
                ],
                vec![
                    Some("2".into()),
                    Some("x\"y\nz".into()),
                    Some("w".into()),
                    None
                ],
            ]
        );
    }

    fn encoded(format: CopyFormat, rows: Vec<Vec<Option<&str>>>) -> String {
        use datafusion::arrow::array::{ArrayRef, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field};
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Utf8, true),
        ]));
        let columns: Vec<ArrayRef> = (0..2)
            .map(|column| {
                Arc::new(StringArray::from(
                    rows.iter().map(|row| row[column]).collect::<Vec<_>>(),
                )) as ArrayRef
            })
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), columns).expect("batch");
        let encoder = CopyEncoder::new(format, &schema).expect("encoder");
        let mut out = encoder.header().unwrap_or_default();
        out.extend(encoder.encode(&batch).expect("text encodes"));
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn text_output_escapes_what_input_unescapes() {
        let rows = vec![
            vec![Some("tab\there"), None],
            vec![Some("back\\slash\nline"), Some("")],
        ];
        let out = encoded(text(), rows.clone());
        assert_eq!(out, "tab\\there\t\\N\nback\\\\slash\\nline\t\n");
        let parsed = parse_rows(&out, &text()).expect("parse back");
        let expected: Vec<Vec<Option<String>>> = rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|value| value.map(String::from))
                    .collect()
            })
            .collect();
        assert_eq!(parsed, expected);
    }

    #[test]
    fn csv_output_quotes_only_where_needed() {
        let mut format = CopyFormat::from_options(
            &[
                CopyOption::Format(Ident::new("csv")),
                CopyOption::Header(true),
                CopyOption::ForceQuote(vec![Ident::new("b")]),
            ],
            &[],
        )
        .expect("csv options");
        let rows = vec![
            vec![Some("plain"), Some("x")],
            vec![Some("a,b"), None],
            vec![Some("say \"hi\""), Some("")],
            vec![Some(""), Some("line\nbreak")],
        ];
        assert_eq!(
            encoded(format.clone(), rows),
            "a,b\nplain,\"x\"\n\"a,b\",\n\"say \"\"hi\"\"\",\"\"\n\"\",\"line\nbreak\"\n"
        );
        format.force_quote.clear();
        assert_eq!(
            encoded(format, vec![vec![Some("\\."), Some("1")]]),
            "a,b\n\"\\.\",1\n"
        );
    }

    #[test]
    fn csv_unterminated_quote_is_an_error() {
        let error = parse_rows("1,\"abc\n", &csv()).expect_err("unterminated");
        assert_eq!(error.code, "22P04");
    }
}
