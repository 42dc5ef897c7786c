//! `COPY table [(columns)] FROM 'file' | STDIN`, in PostgreSQL's text and CSV formats.
//!
//! The data is split into rows of fields here ([`parse_rows`], PostgreSQL's rules: backslash escapes
//! and `\N` in text, quoting in CSV, `\.` ends the data), then inserted through the ordinary INSERT
//! path in chunks, each field an untyped string literal. That gives COPY exactly INSERT's semantics —
//! each type's input function, defaults for the columns not listed, NOT NULL / CHECK / UNIQUE /
//! foreign keys, index maintenance — at the price of planning one INSERT per chunk. A direct bulk
//! writer is the faster road when bulk loading is measured.
//!
//! `FROM STDIN` reads what the client sent: [`crate::Session::copy_in`] (the wire protocol's
//! CopyData) hands it over. A server-side file is read with the process's permissions, as an
//! embedded library does.

use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Ident, ObjectName,
};

use crate::error::{Error, Result};
use crate::result::StatementOutcome;
use crate::session::Session;

/// Rows per generated INSERT.
const ROWS_PER_CHUNK: usize = 500;

/// The format options of one COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyFormat {
    csv: bool,
    delimiter: char,
    null: String,
    header: bool,
    quote: char,
    escape: char,
}

impl CopyFormat {
    /// The format named by a COPY statement's options (both the modern and the pre-9.0 syntax).
    pub(crate) fn from_options(
        options: &[CopyOption],
        legacy_options: &[CopyLegacyOption],
    ) -> Result<CopyFormat> {
        let mut csv = false;
        let mut delimiter = None;
        let mut null = None;
        let mut header = false;
        let mut quote = None;
        let mut escape = None;
        for option in options {
            match option {
                CopyOption::Format(name) => match name.value.to_lowercase().as_str() {
                    "text" => csv = false,
                    "csv" => csv = true,
                    "binary" => return Err(Error::not_supported("COPY in binary format")),
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
                CopyOption::Freeze(_) | CopyOption::Encoding(_) => {}
                other => return Err(Error::not_supported(format!("COPY option {other}"))),
            }
        }
        for option in legacy_options {
            match option {
                CopyLegacyOption::Binary => {
                    return Err(Error::not_supported("COPY in binary format"));
                }
                CopyLegacyOption::Delimiter(character) => delimiter = Some(*character),
                CopyLegacyOption::Null(text) => null = Some(text.clone()),
                CopyLegacyOption::Csv(csv_options) => {
                    csv = true;
                    for csv_option in csv_options {
                        match csv_option {
                            CopyLegacyCsvOption::Header => header = true,
                            CopyLegacyCsvOption::Quote(character) => quote = Some(*character),
                            CopyLegacyCsvOption::Escape(character) => escape = Some(*character),
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
        let quote = quote.unwrap_or('"');
        Ok(CopyFormat {
            csv,
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
        })
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
        let text = String::from_utf8(bytes).map_err(|error| {
            Error::user(
                "22021",
                format!("invalid byte sequence for encoding \"UTF8\": {error}"),
            )
        })?;
        let rows = parse_rows(&text, &format)?;
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

/// The parts of a `COPY ... FROM` statement, or why it is not one QubeDB runs.
pub(crate) fn copy_from_parts(source: CopySource, to: bool) -> Result<(ObjectName, Vec<Ident>)> {
    match (source, to) {
        (
            CopySource::Table {
                table_name,
                columns,
            },
            false,
        ) => Ok((table_name, columns)),
        (CopySource::Query(_), false) => {
            Err(Error::user("42601", "COPY FROM needs a table, not a query"))
        }
        (_, true) => Err(Error::not_supported("COPY TO")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn csv_unterminated_quote_is_an_error() {
        let error = parse_rows("1,\"abc\n", &csv()).expect_err("unterminated");
        assert_eq!(error.code, "22P04");
    }
}
