//! Statement parameters (`$1`, `$2`, ...): values supplied apart from the SQL text, bound into the parsed
//! statement as typed literals before it is executed, so they are never re-parsed as SQL.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    CastKind, DataType as SqlType, Expr, Statement, Value as SqlValue, ValueWithSpan,
    visit_expressions, visit_expressions_mut,
};
use datafusion::sql::sqlparser::tokenizer::Span;

use crate::error::{Error, Result};

/// A parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Null,
    Boolean(bool),
    Integer(i64),
    Double(f64),
    /// Text; its type comes from where it is used, like a PostgreSQL literal of unknown type.
    Text(String),
    Bytes(Vec<u8>),
    /// A vector (pgvector's `vector`): what an embedded caller passes for a query vector, and what the
    /// server reads from pgvector's binary format, with no text form in between.
    Vector(Vec<f32>),
    /// A value of a named SQL type in its text form (`'2024-01-02'` as `date`), bound as
    /// `CAST(text AS type)`: what a client that declares parameter types sends.
    Typed {
        text: String,
        type_name: String,
    },
}

impl From<i64> for Param {
    fn from(value: i64) -> Self {
        Param::Integer(value)
    }
}

impl From<i32> for Param {
    fn from(value: i32) -> Self {
        Param::Integer(i64::from(value))
    }
}

impl From<f64> for Param {
    fn from(value: f64) -> Self {
        Param::Double(value)
    }
}

impl From<bool> for Param {
    fn from(value: bool) -> Self {
        Param::Boolean(value)
    }
}

impl From<&str> for Param {
    fn from(value: &str) -> Self {
        Param::Text(value.to_string())
    }
}

impl From<String> for Param {
    fn from(value: String) -> Self {
        Param::Text(value)
    }
}

impl From<Vec<u8>> for Param {
    fn from(value: Vec<u8>) -> Self {
        Param::Bytes(value)
    }
}

impl From<Vec<f32>> for Param {
    fn from(value: Vec<f32>) -> Self {
        Param::Vector(value)
    }
}

impl<T: Into<Param>> From<Option<T>> for Param {
    fn from(value: Option<T>) -> Self {
        value.map(Into::into).unwrap_or(Param::Null)
    }
}

pub(crate) fn placeholder_index(text: &str) -> Option<usize> {
    text.strip_prefix('$')?
        .parse::<usize>()
        .ok()
        .filter(|&index| index >= 1)
}

/// The highest `$n` in `statement`.
pub fn parameter_count(statement: &Statement) -> usize {
    let mut count = 0;
    let _ = visit_expressions(statement, |expr| {
        if let Expr::Value(ValueWithSpan {
            value: SqlValue::Placeholder(text),
            ..
        }) = expr
            && let Some(index) = placeholder_index(text)
        {
            count = count.max(index);
        }
        ControlFlow::<()>::Continue(())
    });
    count
}

pub(crate) fn literal(value: SqlValue) -> Expr {
    Expr::Value(ValueWithSpan {
        value,
        span: Span::empty(),
    })
}

/// Parses a SQL type name (`integer`, `timestamp with time zone`, `numeric(10,2)`).
pub(crate) fn parse_type_name(type_name: &str) -> Result<SqlType> {
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    datafusion::sql::sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(type_name)
        .and_then(|mut parser| parser.parse_data_type())
        .map_err(|_| Error::user("42704", format!("type \"{type_name}\" does not exist")))
}

pub(crate) fn cast(expr: Expr, data_type: SqlType) -> Expr {
    Expr::Cast {
        kind: CastKind::DoubleColon,
        expr: Box::new(expr),
        data_type,
        array: false,
        format: None,
    }
}

fn to_expr(param: &Param) -> Result<Expr> {
    Ok(match param {
        Param::Null => literal(SqlValue::Null),
        Param::Boolean(value) => literal(SqlValue::Boolean(*value)),
        Param::Integer(value) => literal(SqlValue::Number(value.to_string(), false)),
        Param::Double(value) if value.is_finite() => cast(
            literal(SqlValue::Number(format!("{value:?}"), false)),
            SqlType::DoublePrecision,
        ),
        Param::Double(value) => cast(
            literal(SqlValue::SingleQuotedString(
                if value.is_nan() {
                    "NaN"
                } else if *value > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                }
                .to_string(),
            )),
            SqlType::DoublePrecision,
        ),
        Param::Text(text) => literal(SqlValue::SingleQuotedString(text.clone())),
        Param::Bytes(bytes) => {
            let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
            literal(SqlValue::HexStringLiteral(hex))
        }
        Param::Vector(elements) => cast(
            literal(SqlValue::SingleQuotedString(crate::sql::vector::format(
                elements,
            ))),
            parse_type_name("vector")?,
        ),
        Param::Typed { text, type_name } => {
            let data_type = parse_type_name(type_name)?;
            let text = if matches!(data_type, SqlType::Date) {
                crate::sql::convert::date_part(text)
            } else {
                text.as_str()
            };
            cast(
                literal(SqlValue::SingleQuotedString(text.to_string())),
                data_type,
            )
        }
    })
}

/// Wraps every `$n` whose type `declared[n - 1]` names in `CAST($n AS type)`, so that planning sees
/// the type the client declared.
pub(crate) fn declare_parameter_types(
    statement: &mut Statement,
    declared: &[Option<String>],
) -> Result<()> {
    if declared.iter().all(Option::is_none) {
        return Ok(());
    }
    let types: Vec<Option<SqlType>> = declared
        .iter()
        .map(|name| name.as_deref().map(parse_type_name).transpose())
        .collect::<Result<_>>()?;
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Value(ValueWithSpan {
            value: SqlValue::Placeholder(text),
            ..
        }) = expr
            && let Some(index) = placeholder_index(text)
            && let Some(Some(data_type)) = types.get(index - 1)
            // A vector parameter stays a bare `$n`: the distance operators type it (so a prepared
            // query's cached plan binds it), and bound it is a cast to vector anyway.
            && declared[index - 1].as_deref() != Some("vector")
        {
            let placeholder = std::mem::replace(expr, literal(SqlValue::Null));
            *expr = cast(placeholder, data_type.clone());
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(())
}

/// Replaces every `$n` in `statement` with the literal of `params[n - 1]`.
pub fn bind_parameters(statement: &mut Statement, params: &[Param]) -> Result<()> {
    let mut failure = None;
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Value(ValueWithSpan {
            value: SqlValue::Placeholder(text),
            ..
        }) = expr
        {
            match placeholder_index(text).and_then(|index| params.get(index - 1)) {
                Some(param) => match to_expr(param) {
                    Ok(value) => *expr = value,
                    Err(error) => {
                        failure = Some(error);
                        return ControlFlow::Break(());
                    }
                },
                None => {
                    failure = Some(Error::user(
                        "08P01",
                        format!(
                            "there is no parameter {text} (got {} parameters)",
                            params.len()
                        ),
                    ));
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    });
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
