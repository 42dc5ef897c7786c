//! PostgreSQL's jsonb functions and the functions behind its operators, over the binary form of
//! [`qubedb_model::jsonb`].
//!
//! A jsonb value computes as Arrow `LargeBinary` holding the binary form (no other SQL type uses
//! `LargeBinary`, so the type alone marks a value as jsonb through every operator, CASE and UNION).
//! Each function reads its jsonb arguments in place: `doc->'user'->>'city'` looks the keys up by
//! binary search in the stored bytes and copies out only the answer. A text argument where jsonb is
//! expected (an untyped literal, a `json` value) is parsed as jsonb input.
//!
//! The operators are planned into these functions by [`crate::sql::jsonb_planner`], under the names
//! PostgreSQL gives them (`jsonb_object_field` for `->`, `jsonb_contains` for `@>`, ...), so both
//! spellings work. The `json_` functions are the same operations over json's text as written
//! (`json_text`, a child module). The set-returning functions (`jsonb_each`, `jsonb_array_elements`, ...) are array
//! functions here (`qubedb_jsonb_each`) that the SQL rewrite unnests.

use std::borrow::Cow;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Float32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, LargeBinaryBuilder, ListArray, StringBuilder, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Fields};
use datafusion::common::Result as DataFusionResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use qubedb_model::jsonb::{self, Json, Jsonb, Kind, PathChange};
use qubedb_model::jsonpath::JsonPath;

use crate::error::{Error, Result, to_datafusion};
use crate::sql::convert::{json_error, parse_jsonb};

mod json_text;

/// What a function computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Operation {
    /// `::jsonb` of text.
    Input,
    /// `::text` of jsonb.
    Output,
    /// `->` / `->>`: a key of an object (text argument) or an element of an array (integer).
    Field {
        text: bool,
    },
    /// `#>` / `#>>` and `jsonb_extract_path(_text)`: the value at a path.
    Path {
        text: bool,
    },
    /// `doc -> 'a' -> 'b'` folded by the planner: keys of nested objects only.
    Keys {
        text: bool,
    },
    Contains,
    Contained,
    Exists,
    ExistsAny,
    ExistsAll,
    Concat,
    /// `-` with a key, an index or an array of keys.
    Delete,
    DeletePath,
    Typeof,
    ArrayLength,
    StripNulls,
    Pretty,
    Set,
    Insert,
    /// `jsonb_cmp`: PostgreSQL's total order of jsonb values (-1, 0, 1).
    Compare,
    /// A cast of jsonb to a scalar type.
    ToScalar(Scalar),
    /// `jsonb_object_keys`, as an array.
    ObjectKeys,
    /// `jsonb_array_elements(_text)`, as an array.
    Elements {
        text: bool,
    },
    /// `jsonb_each(_text)`, as an array of `{key, value}`.
    Each {
        text: bool,
    },
    /// `jsonb_object(text[])` / `jsonb_object(keys, values)`.
    Object,
    /// `jsonb_set_lax`: `jsonb_set` with a rule for an SQL NULL new value.
    SetLax,
    /// `::jsonpath`: the path text, checked.
    PathInput,
    /// `jsonb_path_exists` (and `@?`, silent).
    PathExists {
        silent: bool,
    },
    /// `jsonb_path_match` (and `@@`, silent).
    PathMatch {
        silent: bool,
    },
    /// `jsonb_path_query`, as an array.
    PathQuery,
    PathQueryArray,
    PathQueryFirst,
    /// `qubedb_jsonb_assign(doc, value, subscript...)`: `UPDATE t SET doc['a'][0] = value`, which
    /// `sql/parse.rs` rewrites into `doc = qubedb_jsonb_assign(doc, value, 'a', 0)`.
    Assign,
}

/// The scalar types jsonb casts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scalar {
    Boolean,
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    /// `numeric`: the number's text, which the planner casts to the decimal type.
    Numeric,
}

impl Scalar {
    fn sql_name(self) -> &'static str {
        match self {
            Scalar::Boolean => "boolean",
            Scalar::SmallInt => "smallint",
            Scalar::Integer => "integer",
            Scalar::BigInt => "bigint",
            Scalar::Real => "real",
            Scalar::Double => "double precision",
            Scalar::Numeric => "numeric",
        }
    }

    /// The cast function for an Arrow target type.
    pub(crate) fn function_for(target: &ArrowType) -> Option<&'static str> {
        Some(match target {
            ArrowType::Boolean => "qubedb_jsonb_to_boolean",
            ArrowType::Int16 | ArrowType::Int8 => "qubedb_jsonb_to_smallint",
            ArrowType::Int32 => "qubedb_jsonb_to_integer",
            ArrowType::Int64 => "qubedb_jsonb_to_bigint",
            ArrowType::Float32 => "qubedb_jsonb_to_real",
            ArrowType::Float64 => "qubedb_jsonb_to_double",
            ArrowType::Decimal128(..) | ArrowType::Decimal256(..) => "qubedb_jsonb_to_numeric",
            _ => return None,
        })
    }
}

/// The functions, by name.
const FUNCTIONS: &[(&str, Operation)] = &[
    ("qubedb_jsonb", Operation::Input),
    ("qubedb_jsonb_text", Operation::Output),
    ("jsonb_object_field", Operation::Field { text: false }),
    ("jsonb_array_element", Operation::Field { text: false }),
    ("jsonb_object_field_text", Operation::Field { text: true }),
    ("jsonb_array_element_text", Operation::Field { text: true }),
    ("jsonb_extract_path", Operation::Path { text: false }),
    ("jsonb_extract_path_text", Operation::Path { text: true }),
    ("qubedb_jsonb_keys", Operation::Keys { text: false }),
    ("qubedb_jsonb_keys_text", Operation::Keys { text: true }),
    ("jsonb_contains", Operation::Contains),
    ("jsonb_contained", Operation::Contained),
    ("jsonb_exists", Operation::Exists),
    ("jsonb_exists_any", Operation::ExistsAny),
    ("jsonb_exists_all", Operation::ExistsAll),
    ("jsonb_concat", Operation::Concat),
    ("jsonb_delete", Operation::Delete),
    ("jsonb_delete_path", Operation::DeletePath),
    ("jsonb_typeof", Operation::Typeof),
    ("jsonb_array_length", Operation::ArrayLength),
    ("jsonb_strip_nulls", Operation::StripNulls),
    ("jsonb_pretty", Operation::Pretty),
    ("jsonb_set", Operation::Set),
    ("jsonb_insert", Operation::Insert),
    ("jsonb_cmp", Operation::Compare),
    (
        "qubedb_jsonb_to_boolean",
        Operation::ToScalar(Scalar::Boolean),
    ),
    (
        "qubedb_jsonb_to_smallint",
        Operation::ToScalar(Scalar::SmallInt),
    ),
    (
        "qubedb_jsonb_to_integer",
        Operation::ToScalar(Scalar::Integer),
    ),
    (
        "qubedb_jsonb_to_bigint",
        Operation::ToScalar(Scalar::BigInt),
    ),
    ("qubedb_jsonb_to_real", Operation::ToScalar(Scalar::Real)),
    (
        "qubedb_jsonb_to_double",
        Operation::ToScalar(Scalar::Double),
    ),
    (
        "qubedb_jsonb_to_numeric",
        Operation::ToScalar(Scalar::Numeric),
    ),
    ("qubedb_jsonb_object_keys", Operation::ObjectKeys),
    (
        "qubedb_jsonb_array_elements",
        Operation::Elements { text: false },
    ),
    (
        "qubedb_jsonb_array_elements_text",
        Operation::Elements { text: true },
    ),
    ("qubedb_jsonb_each", Operation::Each { text: false }),
    ("qubedb_jsonb_each_text", Operation::Each { text: true }),
    ("qubedb_jsonpath", Operation::PathInput),
    ("jsonb_object", Operation::Object),
    ("jsonb_set_lax", Operation::SetLax),
    ("jsonb_path_exists", Operation::PathExists { silent: false }),
    (
        "jsonb_path_exists_opr",
        Operation::PathExists { silent: true },
    ),
    ("jsonb_path_match", Operation::PathMatch { silent: false }),
    (
        "jsonb_path_match_opr",
        Operation::PathMatch { silent: true },
    ),
    ("qubedb_jsonb_path_query", Operation::PathQuery),
    ("jsonb_path_query_array", Operation::PathQueryArray),
    ("jsonb_path_query_first", Operation::PathQueryFirst),
    ("qubedb_jsonb_assign", Operation::Assign),
    // The json forms (`json_text`): the same operations over json's text.
    ("qubedb_json", Operation::Input),
    ("json_object", Operation::Object),
    ("json_object_field", Operation::Field { text: false }),
    ("json_array_element", Operation::Field { text: false }),
    ("json_object_field_text", Operation::Field { text: true }),
    ("json_array_element_text", Operation::Field { text: true }),
    ("json_extract_path", Operation::Path { text: false }),
    ("json_extract_path_text", Operation::Path { text: true }),
    ("json_typeof", Operation::Typeof),
    ("json_array_length", Operation::ArrayLength),
    ("json_strip_nulls", Operation::StripNulls),
    ("qubedb_json_object_keys", Operation::ObjectKeys),
    (
        "qubedb_json_array_elements",
        Operation::Elements { text: false },
    ),
    (
        "qubedb_json_array_elements_text",
        Operation::Elements { text: true },
    ),
    ("qubedb_json_each", Operation::Each { text: false }),
    ("qubedb_json_each_text", Operation::Each { text: true }),
];

/// The set-returning functions the SQL rewrite unnests, with the array function that computes each
/// and the column names of its rows (one name: a set of values; two: `key`, `value` records).
pub(crate) const SET_RETURNING: &[(&str, &str, &[&str])] = &[
    (
        "jsonb_object_keys",
        "qubedb_jsonb_object_keys",
        &["jsonb_object_keys"],
    ),
    (
        "jsonb_array_elements",
        "qubedb_jsonb_array_elements",
        &["value"],
    ),
    (
        "jsonb_array_elements_text",
        "qubedb_jsonb_array_elements_text",
        &["value"],
    ),
    ("jsonb_each", "qubedb_jsonb_each", &["key", "value"]),
    (
        "jsonb_each_text",
        "qubedb_jsonb_each_text",
        &["key", "value"],
    ),
    (
        "jsonb_path_query",
        "qubedb_jsonb_path_query",
        &["jsonb_path_query"],
    ),
    (
        "json_object_keys",
        "qubedb_json_object_keys",
        &["json_object_keys"],
    ),
    (
        "json_array_elements",
        "qubedb_json_array_elements",
        &["value"],
    ),
    (
        "json_array_elements_text",
        "qubedb_json_array_elements_text",
        &["value"],
    ),
    ("json_each", "qubedb_json_each", &["key", "value"]),
    ("json_each_text", "qubedb_json_each_text", &["key", "value"]),
];

/// Registers the functions.
pub(crate) fn register(context: &SessionContext) {
    for (name, _) in FUNCTIONS {
        context.register_udf(udf(name).as_ref().clone());
    }
}

/// The function `name` (one of [`FUNCTIONS`]), for the planner to call.
pub(crate) fn udf(name: &'static str) -> Arc<ScalarUDF> {
    let operation = FUNCTIONS
        .iter()
        .find(|(known, _)| *known == name)
        .map_or(Operation::Output, |(_, operation)| *operation);
    Arc::new(ScalarUDF::new_from_impl(JsonbFunction {
        name,
        operation,
        json: name == "qubedb_json"
            || name.starts_with("json_")
            || name.starts_with("qubedb_json_"),
        signature: Signature::user_defined(Volatility::Immutable),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonbFunction {
    name: &'static str,
    operation: Operation,
    /// The json form: over json's text, returning json where the jsonb form returns jsonb.
    json: bool,
    signature: Signature,
}

/// How one argument is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parameter {
    Jsonb,
    Text,
    Boolean,
    /// A key (text), an index (integer) or, where `arrays`, an array of keys.
    KeyOrIndex {
        arrays: bool,
    },
    /// A path: `text[]` or the text of an array literal.
    Path,
    /// Any number of text arguments (a variadic path), or one path array.
    Variadic,
}

fn is_text(data_type: &ArrowType) -> bool {
    matches!(
        data_type,
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View
    )
}

fn is_integer(data_type: &ArrowType) -> bool {
    data_type.is_integer()
}

impl JsonbFunction {
    /// The parameters of the operation, or `None` when `count` arguments do not fit.
    fn parameters(&self, count: usize) -> Option<Vec<Parameter>> {
        use Parameter::*;
        let fixed: &[Parameter] = match self.operation {
            Operation::Input | Operation::PathInput => &[Text],
            Operation::Object => {
                return match count {
                    1 => Some(vec![Path]),
                    2 => Some(vec![Path, Path]),
                    _ => None,
                };
            }
            Operation::Assign => {
                let mut parameters = vec![Jsonb, Jsonb];
                parameters.extend(std::iter::repeat_n(
                    KeyOrIndex { arrays: false },
                    count.saturating_sub(2),
                ));
                return (count >= 3).then_some(parameters);
            }
            Operation::SetLax => {
                return match count {
                    3 => Some(vec![Jsonb, Path, Jsonb]),
                    4 => Some(vec![Jsonb, Path, Jsonb, Boolean]),
                    5 => Some(vec![Jsonb, Path, Jsonb, Boolean, Text]),
                    _ => None,
                };
            }
            Operation::PathExists { .. }
            | Operation::PathMatch { .. }
            | Operation::PathQuery
            | Operation::PathQueryArray
            | Operation::PathQueryFirst => {
                return match count {
                    2 => Some(vec![Jsonb, Text]),
                    3 => Some(vec![Jsonb, Text, Jsonb]),
                    4 => Some(vec![Jsonb, Text, Jsonb, Boolean]),
                    _ => None,
                };
            }
            Operation::Output
            | Operation::Typeof
            | Operation::ArrayLength
            | Operation::StripNulls
            | Operation::Pretty
            | Operation::ToScalar(_)
            | Operation::ObjectKeys
            | Operation::Elements { .. }
            | Operation::Each { .. } => &[Jsonb],
            Operation::Field { .. } => &[Jsonb, KeyOrIndex { arrays: false }],
            Operation::Path { .. } | Operation::Keys { .. } => {
                let mut parameters = vec![Jsonb];
                parameters.extend(std::iter::repeat_n(Variadic, count.saturating_sub(1)));
                return (count >= 1).then_some(parameters);
            }
            Operation::Contains | Operation::Contained | Operation::Concat | Operation::Compare => {
                &[Jsonb, Jsonb]
            }
            Operation::Exists => &[Jsonb, Text],
            Operation::ExistsAny | Operation::ExistsAll | Operation::DeletePath => &[Jsonb, Path],
            Operation::Delete => &[Jsonb, KeyOrIndex { arrays: true }],
            Operation::Set | Operation::Insert => {
                return match count {
                    3 => Some(vec![Jsonb, Path, Jsonb]),
                    4 => Some(vec![Jsonb, Path, Jsonb, Boolean]),
                    _ => None,
                };
            }
        };
        (fixed.len() == count).then(|| fixed.to_vec())
    }

    fn no_such_function(&self, arguments: &[ArrowType]) -> datafusion::error::DataFusionError {
        let names: Vec<String> = arguments.iter().map(sql_type_name).collect();
        // The cast `x::jsonb` of a type that has none (the input function is QubeDB's, not the user's).
        if self.operation == Operation::Input
            && let [name] = names.as_slice()
        {
            let target = if self.json { "json" } else { "jsonb" };
            return to_datafusion(Error::user(
                "42846",
                format!("cannot cast type {name} to {target}"),
            ));
        }
        to_datafusion(
            Error::user(
                "42883",
                format!("function {}({}) does not exist", self.name, names.join(", ")),
            )
            .with_hint(
                "No function matches the given name and argument types. You might need to add explicit type casts.",
            ),
        )
    }
}

/// `find` as the member lookup [`JsonbFunction::extract`] takes: the member found borrows from the
/// document it is found in (a closure's signature alone does not say so).
fn member_finder<F>(find: F) -> F
where
    F: for<'b> Fn(Jsonb<'b>, usize) -> Option<Jsonb<'b>>,
{
    find
}

impl ScalarUDFImpl for JsonbFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arguments: &[ArrowType]) -> DataFusionResult<Vec<ArrowType>> {
        if self.json && self.operation == Operation::Input {
            // `::json` of anything: json and jsonb as they are, other values by their text.
            return Ok(arguments.to_vec());
        }
        if self.operation == Operation::Assign {
            check_assignment_types(arguments)?;
        }
        let Some(parameters) = self.parameters(arguments.len()) else {
            return Err(self.no_such_function(arguments));
        };
        let mut coerced = Vec::with_capacity(arguments.len());
        for (parameter, given) in parameters.iter().zip(arguments) {
            let target = match (parameter, given) {
                (_, ArrowType::Null) => match parameter {
                    Parameter::Jsonb => ArrowType::LargeBinary,
                    Parameter::Boolean => ArrowType::Boolean,
                    _ => ArrowType::Utf8,
                },
                (Parameter::Jsonb, ArrowType::LargeBinary) => ArrowType::LargeBinary,
                (Parameter::Jsonb, ArrowType::LargeUtf8) if self.json => ArrowType::LargeUtf8,
                (Parameter::Jsonb | Parameter::Text | Parameter::Variadic, text)
                    if is_text(text) =>
                {
                    ArrowType::Utf8
                }
                (Parameter::Boolean, ArrowType::Boolean) => ArrowType::Boolean,
                (Parameter::KeyOrIndex { .. }, text) if is_text(text) => ArrowType::Utf8,
                (Parameter::KeyOrIndex { .. }, integer) if is_integer(integer) => ArrowType::Int64,
                (
                    Parameter::KeyOrIndex { arrays: true } | Parameter::Path | Parameter::Variadic,
                    ArrowType::List(element) | ArrowType::LargeList(element),
                ) if is_text(element.data_type()) || element.data_type() == &ArrowType::Null => {
                    ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Utf8, true)))
                }
                (Parameter::Path, text) if is_text(text) => ArrowType::Utf8,
                _ => return Err(self.no_such_function(arguments)),
            };
            coerced.push(target);
        }
        Ok(coerced)
    }

    fn return_type(&self, arguments: &[ArrowType]) -> DataFusionResult<ArrowType> {
        let jsonb = self.jsonb_return_type(arguments)?;
        Ok(if self.json {
            json_text::json_result_type(jsonb)
        } else {
            jsonb
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DataFusionResult<ColumnarValue> {
        self.invoke(args)
    }
}

impl JsonbFunction {
    /// The result type of the jsonb form.
    fn jsonb_return_type(&self, _arguments: &[ArrowType]) -> DataFusionResult<ArrowType> {
        Ok(match self.operation {
            Operation::Input
            | Operation::Field { text: false }
            | Operation::Path { text: false }
            | Operation::Keys { text: false }
            | Operation::Concat
            | Operation::Delete
            | Operation::DeletePath
            | Operation::StripNulls
            | Operation::Set
            | Operation::Insert
            | Operation::PathQueryArray
            | Operation::PathQueryFirst
            | Operation::Object
            | Operation::SetLax
            | Operation::Assign => ArrowType::LargeBinary,
            Operation::PathInput => ArrowType::Utf8,
            Operation::PathExists { .. } | Operation::PathMatch { .. } => ArrowType::Boolean,
            Operation::PathQuery => ArrowType::List(Arc::new(Field::new_list_field(
                ArrowType::LargeBinary,
                true,
            ))),
            Operation::Output
            | Operation::Field { text: true }
            | Operation::Path { text: true }
            | Operation::Keys { text: true }
            | Operation::Typeof
            | Operation::Pretty
            | Operation::ToScalar(Scalar::Numeric) => ArrowType::Utf8,
            Operation::Contains
            | Operation::Contained
            | Operation::Exists
            | Operation::ExistsAny
            | Operation::ExistsAll
            | Operation::ToScalar(Scalar::Boolean) => ArrowType::Boolean,
            Operation::ArrayLength | Operation::Compare | Operation::ToScalar(Scalar::Integer) => {
                ArrowType::Int32
            }
            Operation::ToScalar(Scalar::SmallInt) => ArrowType::Int16,
            Operation::ToScalar(Scalar::BigInt) => ArrowType::Int64,
            Operation::ToScalar(Scalar::Real) => ArrowType::Float32,
            Operation::ToScalar(Scalar::Double) => ArrowType::Float64,
            Operation::ObjectKeys | Operation::Elements { text: true } => {
                ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Utf8, true)))
            }
            Operation::Elements { text: false } => ArrowType::List(Arc::new(
                Field::new_list_field(ArrowType::LargeBinary, true),
            )),
            Operation::Each { text } => ArrowType::List(Arc::new(Field::new_list_field(
                ArrowType::Struct(each_fields(text)),
                true,
            ))),
        })
    }

    fn invoke(&self, args: ScalarFunctionArgs) -> DataFusionResult<ColumnarValue> {
        let rows = args.number_rows;
        let arguments: Vec<Argument> = args
            .args
            .iter()
            .map(|value| match value {
                ColumnarValue::Array(array) => Ok(Argument {
                    array: array.clone(),
                    constant: false,
                    parsed: std::cell::OnceCell::new(),
                }),
                ColumnarValue::Scalar(scalar) => Ok(Argument {
                    array: scalar.to_array_of_size(1)?,
                    constant: true,
                    parsed: std::cell::OnceCell::new(),
                }),
            })
            .collect::<DataFusionResult<_>>()?;
        let all_constant = arguments.iter().all(|argument| argument.constant);
        let rows = if all_constant { 1 } else { rows };
        let result = if self.json {
            self.evaluate_json(&arguments, rows)
        } else {
            self.evaluate(&arguments, rows)
        }
        .map_err(to_datafusion)?;
        if all_constant {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&result, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(result))
    }
}

/// One argument: an array, or a constant as a one-row array.
struct Argument {
    array: ArrayRef,
    constant: bool,
    /// A constant text argument read as jsonb, parsed once for all rows (`doc @> '{"a": 1}'`).
    parsed: std::cell::OnceCell<Vec<u8>>,
}

impl Argument {
    fn row(&self, row: usize) -> usize {
        if self.constant { 0 } else { row }
    }

    fn is_null(&self, row: usize) -> bool {
        self.array.data_type() == &ArrowType::Null || self.array.is_null(self.row(row))
    }

    /// The jsonb value at `row`: binary in place, or text parsed.
    fn jsonb(&self, row: usize) -> Result<Option<Cow<'_, [u8]>>> {
        if self.is_null(row) {
            return Ok(None);
        }
        let row = self.row(row);
        match self.array.data_type() {
            ArrowType::LargeBinary => Ok(Some(Cow::Borrowed(
                self.array.as_binary::<i64>().value(row),
            ))),
            ArrowType::Utf8 if self.constant => {
                if self.parsed.get().is_none() {
                    let parsed = parse_jsonb(self.array.as_string::<i32>().value(row))?;
                    let _ = self.parsed.set(parsed);
                }
                Ok(self
                    .parsed
                    .get()
                    .map(|parsed| Cow::Borrowed(parsed.as_slice())))
            }
            ArrowType::Utf8 => Ok(Some(Cow::Owned(parse_jsonb(
                self.array.as_string::<i32>().value(row),
            )?))),
            other => Err(Error::internal(format!("jsonb argument of type {other}"))),
        }
    }

    fn text(&self, row: usize) -> Option<&str> {
        if self.is_null(row) {
            return None;
        }
        self.array
            .as_string_opt::<i32>()
            .map(|strings| strings.value(self.row(row)))
    }

    fn integer(&self, row: usize) -> Option<i64> {
        if self.is_null(row) {
            return None;
        }
        self.array
            .as_primitive_opt::<datafusion::arrow::datatypes::Int64Type>()
            .map(|integers| integers.value(self.row(row)))
    }

    fn boolean(&self, row: usize) -> Option<bool> {
        if self.is_null(row) {
            return None;
        }
        self.array
            .as_boolean_opt()
            .map(|booleans| booleans.value(self.row(row)))
    }

    /// A `text[]` value (or an array literal's text) as its elements; `None` for NULL.
    fn path(&self, row: usize) -> Result<Option<Vec<Option<String>>>> {
        if self.is_null(row) {
            return Ok(None);
        }
        let row = self.row(row);
        match self.array.data_type() {
            ArrowType::List(_) => {
                let list = self.array.as_list::<i32>().value(row);
                let strings = list.as_string::<i32>();
                Ok(Some(
                    (0..strings.len())
                        .map(|index| {
                            (!strings.is_null(index)).then(|| strings.value(index).to_string())
                        })
                        .collect(),
                ))
            }
            ArrowType::Utf8 => {
                let text = self.array.as_string::<i32>().value(row);
                crate::sql::array_literals::parse_array(text)
                    .map(Some)
                    .ok_or_else(|| {
                        Error::user("22P02", format!("malformed array literal: \"{text}\""))
                            .with_detail(
                                "Array value must start with \"{\" or dimension information.",
                            )
                    })
            }
            other => Err(Error::internal(format!("path argument of type {other}"))),
        }
    }
}

/// A key and a value of `jsonb_object`'s arrays (`None`: NULL).
type KeyValue = (Option<String>, Option<String>);

/// `jsonb_object`'s object of keys and text values (a NULL value is JSON null, a NULL key an error).
fn object_of_pairs(pairs: Vec<KeyValue>) -> Result<Json> {
    let mut members = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        let key =
            key.ok_or_else(|| Error::user("22004", "null value not allowed for object key"))?;
        members.push((key, value.map_or(Json::Null, Json::String)));
    }
    Ok(Json::object(members))
}

/// The key/value pairs of `jsonb_object` / `json_object` at `row`: one array of alternating keys and
/// values, a two-dimensional array of pairs, or an array of keys and one of values; `None` for NULL.
fn object_pairs(arguments: &[Argument], row: usize) -> Result<Option<Vec<KeyValue>>> {
    let first = &arguments[0];
    if let Some(pairs) = two_dimensional_pairs(first, arguments.len(), row)? {
        return Ok(Some(pairs));
    }
    let Some(first_array) = first.path(row)? else {
        return Ok(None);
    };
    Ok(Some(match arguments.get(1) {
        None => {
            if first_array.len() % 2 != 0 {
                return Err(Error::user(
                    "2202E",
                    "array must have even number of elements",
                ));
            }
            first_array
                .chunks(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect()
        }
        Some(values) => {
            let Some(values) = values.path(row)? else {
                return Ok(None);
            };
            if values.len() != first_array.len() {
                return Err(Error::user("2202E", "mismatched array dimensions"));
            }
            first_array.into_iter().zip(values).collect()
        }
    }))
}

/// `jsonb_object('{{k,v},...}')`: the pairs of a two-dimensional text array literal (each row a key and a
/// value), or PostgreSQL's error for other shapes; `None` when the argument is not such a literal.
fn two_dimensional_pairs(
    argument: &Argument,
    arguments: usize,
    row: usize,
) -> Result<Option<Vec<KeyValue>>> {
    use crate::sql::array_literals::{Element, parse_array, parse_nested_array};
    let Some(text) = argument.text(row) else {
        return Ok(None);
    };
    if parse_array(text).is_some() {
        return Ok(None);
    }
    let Some(rows) = parse_nested_array(text) else {
        return Ok(None);
    };
    let subscripts = || Error::user("2202E", "wrong number of array subscripts");
    if arguments != 1 {
        return Err(subscripts());
    }
    rows.into_iter()
        .map(|pair| match pair {
            Element::Array(items) => {
                if items.iter().any(|item| matches!(item, Element::Array(_))) {
                    return Err(subscripts());
                }
                match items.as_slice() {
                    [Element::Value(key), Element::Value(value)] => {
                        Ok((key.clone(), value.clone()))
                    }
                    _ => Err(Error::user("2202E", "array must have two columns")),
                }
            }
            Element::Value(_) => Err(subscripts()),
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// The SQL name of an argument type, for messages (the Arrow name where there is no SQL one).
fn sql_type_name(data_type: &ArrowType) -> String {
    match data_type {
        ArrowType::List(element) => format!("{}[]", sql_type_name(element.data_type())),
        _ => crate::sql::convert::sql_type_of_arrow(data_type)
            .map_or_else(|| data_type.to_string(), |sql| sql.sql_name()),
    }
}

/// The argument types of a subscript assignment, checked for what PostgreSQL would say of them: the
/// target must be jsonb and the value jsonb (or text read as jsonb).
fn check_assignment_types(arguments: &[ArrowType]) -> DataFusionResult<()> {
    let name = sql_type_name;
    let is_jsonb = |data_type: &ArrowType| {
        matches!(data_type, ArrowType::LargeBinary | ArrowType::Null) || is_text(data_type)
    };
    match arguments {
        [target, ..] if !is_jsonb(target) => Err(to_datafusion(Error::not_supported(format!(
            "subscript assignment to type {}",
            name(target)
        )))),
        [_, value, ..] if !is_jsonb(value) => Err(to_datafusion(Error::user(
            "42804",
            format!(
                "subscripted assignment to jsonb requires type jsonb but expression is of type {}",
                name(value)
            ),
        ))),
        _ => Ok(()),
    }
}

/// Row `row` of a subscript assignment: the document (an empty object, or array for an integer first
/// subscript, when it is NULL) with the value (jsonb `null` for SQL NULL) at the subscripts' path.
fn assign(arguments: &[Argument], row: usize) -> Result<Json> {
    let subscripts = &arguments[2..];
    let mut path = Vec::with_capacity(subscripts.len());
    for subscript in subscripts {
        let step = match subscript.array.data_type() {
            ArrowType::Int64 => subscript.integer(row).map(|index| index.to_string()),
            _ => subscript.text(row).map(str::to_string),
        };
        path.push(step.ok_or_else(|| {
            Error::user("22004", "jsonb subscript in assignment must not be null")
        })?);
    }
    let mut document = match arguments[0].jsonb(row)? {
        Some(bytes) => Jsonb::new(&bytes).to_json(),
        None if subscripts[0].array.data_type() == &ArrowType::Int64 => Json::Array(Vec::new()),
        None => Json::Object(Vec::new()),
    };
    let value = match arguments[1].jsonb(row)? {
        Some(bytes) => Jsonb::new(&bytes).to_json(),
        None => Json::Null,
    };
    jsonb::assign_path(&mut document, &path, value).map_err(json_error)?;
    Ok(document)
}

/// Builds a jsonb column.
struct JsonbColumn(LargeBinaryBuilder);

impl JsonbColumn {
    fn new(rows: usize) -> JsonbColumn {
        JsonbColumn(LargeBinaryBuilder::with_capacity(rows, rows * 32))
    }

    fn push(&mut self, value: Option<&[u8]>) {
        match value {
            Some(bytes) => self.0.append_value(bytes),
            None => self.0.append_null(),
        }
    }

    fn push_json(&mut self, value: &Json) {
        self.0.append_value(value.encode());
    }

    fn finish(mut self) -> ArrayRef {
        Arc::new(self.0.finish())
    }
}

fn each_fields(text: bool) -> Fields {
    Fields::from(vec![
        Field::new("key", ArrowType::Utf8, false),
        Field::new(
            "value",
            if text {
                ArrowType::Utf8
            } else {
                ArrowType::LargeBinary
            },
            true,
        ),
    ])
}

fn invalid_parameter(message: impl Into<String>) -> Error {
    Error::user("22023", message)
}

impl JsonbFunction {
    fn evaluate(&self, arguments: &[Argument], rows: usize) -> Result<ArrayRef> {
        let first = &arguments[0];
        match self.operation {
            Operation::Input => {
                let mut out = JsonbColumn::new(rows);
                for row in 0..rows {
                    match first.text(row) {
                        Some(text) => out.push(Some(&parse_jsonb(text)?)),
                        None => out.push(None),
                    }
                }
                Ok(out.finish())
            }
            Operation::Output | Operation::Pretty | Operation::Typeof => {
                let mut out = StringBuilder::with_capacity(rows, rows * 16);
                for row in 0..rows {
                    match first.jsonb(row)? {
                        Some(bytes) => {
                            let value = Jsonb::new(&bytes);
                            match self.operation {
                                Operation::Output => out.append_value(value.to_text()),
                                Operation::Pretty => out.append_value(value.to_pretty()),
                                _ => out.append_value(value.kind().name()),
                            }
                        }
                        None => out.append_null(),
                    }
                }
                Ok(Arc::new(out.finish()))
            }
            Operation::Field { text } => {
                let key = &arguments[1];
                let by_index = key.array.data_type() == &ArrowType::Int64;
                let found = member_finder(|value, row| match by_index {
                    true => value.element_signed(key.integer(row)?),
                    false => value.get(key.text(row)?),
                });
                self.extract(first, rows, text, found)
            }
            Operation::Path { text } => {
                let steps = &arguments[1..];
                let found = member_finder(|value, row| {
                    let path = path_of(steps, row).ok()??;
                    let path: Option<Vec<String>> = path.into_iter().collect();
                    value.at_path(&path?)
                });
                // Path errors (a malformed literal) surface before the rows.
                for row in 0..rows.min(1) {
                    path_of(steps, row)?;
                }
                self.extract(first, rows, text, found)
            }
            Operation::Keys { text } => {
                let keys = &arguments[1..];
                let found = member_finder(|value, row| {
                    let mut current = value;
                    for key in keys {
                        current = current.get(key.text(row)?)?;
                    }
                    Some(current)
                });
                self.extract(first, rows, text, found)
            }
            Operation::Contains | Operation::Contained | Operation::Compare => {
                let second = &arguments[1];
                let mut booleans = BooleanBuilder::with_capacity(rows);
                let mut integers = Int32Builder::with_capacity(rows);
                for row in 0..rows {
                    let (Some(left), Some(right)) = (first.jsonb(row)?, second.jsonb(row)?) else {
                        booleans.append_null();
                        integers.append_null();
                        continue;
                    };
                    let (left, right) = (Jsonb::new(&left), Jsonb::new(&right));
                    match self.operation {
                        Operation::Contains => booleans.append_value(left.contains(&right)),
                        Operation::Contained => booleans.append_value(right.contains(&left)),
                        _ => integers.append_value(left.compare(&right) as i32),
                    }
                }
                Ok(if self.operation == Operation::Compare {
                    Arc::new(integers.finish())
                } else {
                    Arc::new(booleans.finish())
                })
            }
            Operation::Exists | Operation::ExistsAny | Operation::ExistsAll => {
                let keys = &arguments[1];
                let mut out = BooleanBuilder::with_capacity(rows);
                for row in 0..rows {
                    let Some(bytes) = first.jsonb(row)? else {
                        out.append_null();
                        continue;
                    };
                    let value = Jsonb::new(&bytes);
                    let answer = match self.operation {
                        Operation::Exists => keys.text(row).map(|key| value.exists(key)),
                        _ => keys.path(row)?.map(|keys| {
                            let mut present = keys.iter().flatten().map(|key| value.exists(key));
                            if self.operation == Operation::ExistsAny {
                                present.any(|found| found)
                            } else {
                                present.all(|found| found)
                            }
                        }),
                    };
                    out.append_option(answer);
                }
                Ok(Arc::new(out.finish()))
            }
            Operation::Assign => {
                let mut out = JsonbColumn::new(rows);
                for row in 0..rows {
                    out.push_json(&assign(arguments, row)?);
                }
                Ok(out.finish())
            }
            Operation::Concat
            | Operation::Delete
            | Operation::DeletePath
            | Operation::StripNulls
            | Operation::Set
            | Operation::Insert => {
                let mut out = JsonbColumn::new(rows);
                for row in 0..rows {
                    match self.change(arguments, row)? {
                        Some(json) => out.push_json(&json),
                        None => out.push(None),
                    }
                }
                Ok(out.finish())
            }
            Operation::ArrayLength => {
                let mut out = Int32Builder::with_capacity(rows);
                for row in 0..rows {
                    let Some(bytes) = first.jsonb(row)? else {
                        out.append_null();
                        continue;
                    };
                    let value = Jsonb::new(&bytes);
                    match value.kind() {
                        Kind::Array => out.append_value(value.len() as i32),
                        Kind::Object => {
                            return Err(invalid_parameter(
                                "cannot get array length of a non-array",
                            ));
                        }
                        _ => return Err(invalid_parameter("cannot get array length of a scalar")),
                    }
                }
                Ok(Arc::new(out.finish()))
            }
            Operation::ToScalar(scalar) => to_scalar(first, rows, scalar),
            Operation::ObjectKeys | Operation::Elements { .. } | Operation::Each { .. } => {
                self.sets(first, rows)
            }
            Operation::Object => {
                let mut out = JsonbColumn::new(rows);
                for row in 0..rows {
                    match object_pairs(arguments, row)? {
                        Some(pairs) => out.push_json(&object_of_pairs(pairs)?),
                        None => out.push(None),
                    }
                }
                Ok(out.finish())
            }
            Operation::SetLax => {
                let mut out = JsonbColumn::new(rows);
                for row in 0..rows {
                    let treatment = match arguments.get(4) {
                        Some(treatment) => match treatment.text(row) {
                            Some(treatment) => treatment.to_string(),
                            None => {
                                return Err(Error::user(
                                    "22004",
                                    "null_value_treatment must be \"delete_key\", \"return_target\", \"use_json_null\", or \"raise_exception\"",
                                ));
                            }
                        },
                        None => "use_json_null".to_string(),
                    };
                    if !matches!(
                        treatment.as_str(),
                        "delete_key" | "return_target" | "use_json_null" | "raise_exception"
                    ) {
                        return Err(invalid_parameter(
                            "null_value_treatment must be \"delete_key\", \"return_target\", \"use_json_null\", or \"raise_exception\"",
                        ));
                    }
                    let Some(bytes) = first.jsonb(row)? else {
                        out.push(None);
                        continue;
                    };
                    let Some(path) = arguments[1].path(row)? else {
                        out.push(None);
                        continue;
                    };
                    let path: Vec<Option<&str>> = path.iter().map(|step| step.as_deref()).collect();
                    let create = match arguments.get(3) {
                        Some(flag) => match flag.boolean(row) {
                            Some(flag) => flag,
                            None => {
                                out.push(None);
                                continue;
                            }
                        },
                        None => true,
                    };
                    let document = Jsonb::new(&bytes);
                    let new_value = arguments[2]
                        .jsonb(row)?
                        .map(|value| Jsonb::new(&value).to_json());
                    let changed = match (new_value, treatment.as_str()) {
                        (Some(value), _) => jsonb::set_path(
                            document,
                            &path,
                            Some(&value),
                            PathChange::Set { create },
                        ),
                        (None, "use_json_null") => jsonb::set_path(
                            document,
                            &path,
                            Some(&Json::Null),
                            PathChange::Set { create },
                        ),
                        (None, "delete_key") => {
                            jsonb::set_path(document, &path, None, PathChange::Delete)
                        }
                        (None, "return_target") => Ok(document.to_json()),
                        (None, _) => {
                            return Err(Error::user("22004", "JSON value must not be null")
                                .with_detail("Exception was raised because null_value_treatment is \"raise_exception\".")
                                .with_hint("To avoid, either change the null_value_treatment argument or ensure that an SQL NULL is not passed."));
                        }
                    };
                    out.push_json(&changed.map_err(json_error)?);
                }
                Ok(out.finish())
            }
            Operation::PathInput => {
                let mut out = StringBuilder::with_capacity(rows, rows * 8);
                for row in 0..rows {
                    match first.text(row) {
                        Some(text) => {
                            JsonPath::parse(text).map_err(json_error)?;
                            out.append_value(text);
                        }
                        None => out.append_null(),
                    }
                }
                Ok(Arc::new(out.finish()))
            }
            Operation::PathExists { .. }
            | Operation::PathMatch { .. }
            | Operation::PathQuery
            | Operation::PathQueryArray
            | Operation::PathQueryFirst => self.path_language(arguments, rows),
        }
    }

    /// The SQL/JSON path functions: the path parsed once per distinct text (usually once), each
    /// row's document evaluated. Silent: errors while evaluating (not a malformed path) give NULL,
    /// or nothing.
    fn path_language(&self, arguments: &[Argument], rows: usize) -> Result<ArrayRef> {
        let silent_argument = |row: usize| -> Option<bool> {
            match arguments.get(3) {
                Some(flag) => flag.boolean(row),
                None => Some(false),
            }
        };
        let mut booleans = BooleanBuilder::with_capacity(rows);
        let mut documents = JsonbColumn::new(rows);
        let mut offsets: Vec<i32> = vec![0];
        let mut nulls = Vec::with_capacity(rows);
        let mut elements = JsonbColumn::new(rows);
        let mut count = 0i32;
        let mut parsed: Option<(String, JsonPath)> = None;
        let empty = Json::Object(Vec::new());
        for row in 0..rows {
            let document = arguments[0].jsonb(row)?;
            let path_text = arguments[1].text(row);
            let variables = match arguments.get(2) {
                Some(variables) => variables
                    .jsonb(row)?
                    .map(|bytes| Jsonb::new(&bytes).to_json()),
                None => Some(empty.clone()),
            };
            let silent = silent_argument(row);
            let (Some(document), Some(path_text), Some(variables), Some(silent_flag)) =
                (document, path_text, variables, silent)
            else {
                booleans.append_null();
                documents.push(None);
                offsets.push(count);
                nulls.push(false);
                continue;
            };
            let silent = silent_flag
                || matches!(
                    self.operation,
                    Operation::PathExists { silent: true } | Operation::PathMatch { silent: true }
                );
            if parsed.as_ref().is_none_or(|(known, _)| known != path_text) {
                parsed = Some((
                    path_text.to_string(),
                    JsonPath::parse(path_text).map_err(json_error)?,
                ));
            }
            let path = &parsed.as_ref().expect("parsed just above").1;
            let document = Jsonb::new(&document).to_json();
            if !matches!(variables, Json::Object(_)) {
                return Err(invalid_parameter("\"vars\" argument is not an object").with_detail(
                    "Jsonpath parameters should be encoded as key-value pairs of \"vars\" object.",
                ));
            }
            match self.operation {
                Operation::PathExists { .. } | Operation::PathMatch { .. } => {
                    let answer = if matches!(self.operation, Operation::PathExists { .. }) {
                        path.exists(&document, &variables)
                    } else {
                        path.matches(&document, &variables)
                    };
                    match answer {
                        Ok(answer) => booleans.append_option(answer),
                        Err(_) if silent => booleans.append_null(),
                        Err(error) => return Err(json_error(error)),
                    }
                }
                _ => {
                    let items = match path.query(&document, &variables) {
                        Ok(items) => items,
                        Err(_) if silent => Vec::new(),
                        Err(error) => return Err(json_error(error)),
                    };
                    match self.operation {
                        Operation::PathQuery => {
                            for item in &items {
                                elements.push_json(item);
                                count += 1;
                            }
                            offsets.push(count);
                            nulls.push(true);
                        }
                        Operation::PathQueryArray => documents.push_json(&Json::Array(items)),
                        _ => match items.first() {
                            Some(item) => documents.push_json(item),
                            None => documents.push(None),
                        },
                    }
                }
            }
        }
        Ok(match self.operation {
            Operation::PathExists { .. } | Operation::PathMatch { .. } => {
                Arc::new(booleans.finish())
            }
            Operation::PathQuery => Arc::new(ListArray::try_new(
                Arc::new(Field::new_list_field(ArrowType::LargeBinary, true)),
                OffsetBuffer::new(offsets.into()),
                elements.finish(),
                Some(nulls.into()),
            )?),
            _ => documents.finish(),
        })
    }

    /// `->`-like extraction: `found` picks the child bytes; text results print it as `->>` does.
    fn extract(
        &self,
        document: &Argument,
        rows: usize,
        text: bool,
        found: impl for<'b> Fn(Jsonb<'b>, usize) -> Option<Jsonb<'b>>,
    ) -> Result<ArrayRef> {
        // The member is read in place and copied once, into the output (the hot path of a filter or
        // GROUP BY on a document field).
        if text {
            let mut out = StringBuilder::with_capacity(rows, rows * 8);
            for row in 0..rows {
                let Some(bytes) = document.jsonb(row)? else {
                    out.append_null();
                    continue;
                };
                match found(Jsonb::new(&bytes), row) {
                    None => out.append_null(),
                    Some(child) => match child.kind() {
                        jsonb::Kind::String => out.append_value(child.as_str().unwrap_or_default()),
                        jsonb::Kind::Null => out.append_null(),
                        _ => out.append_value(child.to_text()),
                    },
                }
            }
            return Ok(Arc::new(out.finish()));
        }
        let mut out = JsonbColumn::new(rows);
        for row in 0..rows {
            let Some(bytes) = document.jsonb(row)? else {
                out.push(None);
                continue;
            };
            out.push(found(Jsonb::new(&bytes), row).map(|child| child.bytes()));
        }
        Ok(out.finish())
    }

    /// The changed document of row `row` for the operations that rebuild one; `None` for NULL.
    fn change(&self, arguments: &[Argument], row: usize) -> Result<Option<Json>> {
        let Some(bytes) = arguments[0].jsonb(row)? else {
            return Ok(None);
        };
        let document = Jsonb::new(&bytes);
        Ok(Some(match self.operation {
            Operation::Concat => {
                let Some(other) = arguments[1].jsonb(row)? else {
                    return Ok(None);
                };
                jsonb::concat(document, Jsonb::new(&other))
            }
            Operation::StripNulls => jsonb::strip_nulls(document),
            Operation::Delete => {
                let key = &arguments[1];
                match key.array.data_type() {
                    ArrowType::Int64 => {
                        let Some(index) = key.integer(row) else {
                            return Ok(None);
                        };
                        jsonb::delete_index(document, index).map_err(json_error)?
                    }
                    ArrowType::List(_) => {
                        let Some(keys) = key.path(row)? else {
                            return Ok(None);
                        };
                        let keys: Vec<&str> = keys.iter().flatten().map(String::as_str).collect();
                        jsonb::delete_keys(document, &keys).map_err(json_error)?
                    }
                    _ => {
                        let Some(key) = key.text(row) else {
                            return Ok(None);
                        };
                        jsonb::delete_keys(document, &[key]).map_err(json_error)?
                    }
                }
            }
            Operation::DeletePath | Operation::Set | Operation::Insert => {
                let Some(path) = arguments[1].path(row)? else {
                    return Ok(None);
                };
                let path: Vec<Option<&str>> = path.iter().map(|step| step.as_deref()).collect();
                let change = match self.operation {
                    Operation::DeletePath => PathChange::Delete,
                    Operation::Set => PathChange::Set {
                        create: match arguments.get(3) {
                            Some(flag) => match flag.boolean(row) {
                                Some(flag) => flag,
                                None => return Ok(None),
                            },
                            None => true,
                        },
                    },
                    _ => PathChange::Insert {
                        after: match arguments.get(3) {
                            Some(flag) => match flag.boolean(row) {
                                Some(flag) => flag,
                                None => return Ok(None),
                            },
                            None => false,
                        },
                    },
                };
                let new_value = match arguments.get(2) {
                    Some(value) => match value.jsonb(row)? {
                        Some(bytes) => Some(Jsonb::new(&bytes).to_json()),
                        None => return Ok(None),
                    },
                    None => None,
                };
                jsonb::set_path(document, &path, new_value.as_ref(), change).map_err(json_error)?
            }
            _ => return Err(Error::internal("not a changing jsonb operation")),
        }))
    }

    /// The set-returning functions, as one array per row.
    fn sets(&self, document: &Argument, rows: usize) -> Result<ArrayRef> {
        let mut offsets: Vec<i32> = Vec::with_capacity(rows + 1);
        offsets.push(0);
        let mut keys = StringBuilder::new();
        let mut texts = StringBuilder::new();
        let mut values = JsonbColumn::new(0);
        let mut count = 0i32;
        let mut nulls = Vec::with_capacity(rows);
        let text = matches!(
            self.operation,
            Operation::Elements { text: true } | Operation::Each { text: true }
        );
        for row in 0..rows {
            let Some(bytes) = document.jsonb(row)? else {
                offsets.push(count);
                nulls.push(false);
                continue;
            };
            nulls.push(true);
            let value = Jsonb::new(&bytes);
            let function = self.name.trim_start_matches("qubedb_");
            match self.operation {
                Operation::ObjectKeys => match value.kind() {
                    Kind::Object => {
                        for (key, _) in value.entries() {
                            keys.append_value(key);
                            count += 1;
                        }
                    }
                    Kind::Array => {
                        return Err(invalid_parameter(format!(
                            "cannot call {function} on an array"
                        )));
                    }
                    _ => {
                        return Err(invalid_parameter(format!(
                            "cannot call {function} on a scalar"
                        )));
                    }
                },
                Operation::Elements { .. } => {
                    if value.kind() != Kind::Array {
                        let what = if value.kind() == Kind::Object {
                            "a non-array"
                        } else {
                            "a scalar"
                        };
                        return Err(invalid_parameter(format!(
                            "cannot extract elements from {what}"
                        )));
                    }
                    for item in value.elements() {
                        if text {
                            texts.append_option(item.to_unquoted_text());
                        } else {
                            values.push(Some(item.bytes()));
                        }
                        count += 1;
                    }
                }
                _ => {
                    if value.kind() != Kind::Object {
                        return Err(invalid_parameter(format!(
                            "cannot call {function} on a non-object"
                        )));
                    }
                    for (key, item) in value.entries() {
                        keys.append_value(key);
                        if text {
                            texts.append_option(item.to_unquoted_text());
                        } else {
                            values.push(Some(item.bytes()));
                        }
                        count += 1;
                    }
                }
            }
            offsets.push(count);
        }
        let members = SetMembers {
            keys: Arc::new(keys.finish()),
            texts: Arc::new(texts.finish()),
            values: values.finish(),
        };
        members.into_lists(self.operation, offsets, nulls)
    }
}

/// The members the set-returning functions found in a batch, one column per kind.
struct SetMembers {
    /// Object keys (`_object_keys`, `_each`).
    keys: ArrayRef,
    /// Values as text (`_text` forms).
    texts: ArrayRef,
    /// Values as jsonb, or as json for the json forms.
    values: ArrayRef,
}

impl SetMembers {
    /// One list per row (`offsets` into the members; `valid`: false for a NULL document) of what
    /// `operation` returns: keys, values, or `{key, value}` records.
    fn into_lists(
        self,
        operation: Operation,
        offsets: Vec<i32>,
        valid: Vec<bool>,
    ) -> Result<ArrayRef> {
        let text = matches!(
            operation,
            Operation::Elements { text: true } | Operation::Each { text: true }
        );
        let (field, elements): (Arc<Field>, ArrayRef) = match operation {
            Operation::ObjectKeys => (
                Arc::new(Field::new_list_field(ArrowType::Utf8, true)),
                self.keys,
            ),
            Operation::Elements { .. } => {
                let elements = if text { self.texts } else { self.values };
                (
                    Arc::new(Field::new_list_field(elements.data_type().clone(), true)),
                    elements,
                )
            }
            _ => {
                let value_column = if text { self.texts } else { self.values };
                let fields = Fields::from(vec![
                    Field::new("key", ArrowType::Utf8, false),
                    Field::new("value", value_column.data_type().clone(), true),
                ]);
                let records =
                    StructArray::try_new(fields.clone(), vec![self.keys, value_column], None)?;
                (
                    Arc::new(Field::new_list_field(ArrowType::Struct(fields), true)),
                    Arc::new(records),
                )
            }
        };
        Ok(Arc::new(ListArray::try_new(
            field,
            OffsetBuffer::new(offsets.into()),
            elements,
            Some(valid.into()),
        )?))
    }
}

/// The path of row `row` from the path arguments: one `text[]` or several text steps.
fn path_of(steps: &[Argument], row: usize) -> Result<Option<Vec<Option<String>>>> {
    if let [single] = steps
        && !matches!(single.array.data_type(), ArrowType::Utf8 | ArrowType::Null)
    {
        return single.path(row);
    }
    if let [single] = steps
        && single.array.data_type() == &ArrowType::Utf8
        && single
            .text(row)
            .is_some_and(|text| text.trim_start().starts_with('{'))
    {
        return single.path(row);
    }
    Ok(Some(
        steps
            .iter()
            .map(|step| step.text(row).map(str::to_string))
            .collect(),
    ))
}

/// Casts of jsonb to a scalar type: a number to a number type (integers rounded half away from zero,
/// as `numeric` does), a boolean to boolean; anything else is an error naming both kinds.
fn to_scalar(document: &Argument, rows: usize, scalar: Scalar) -> Result<ArrayRef> {
    let wrong_kind = |kind: Kind| {
        invalid_parameter(format!(
            "cannot cast jsonb {} to type {}",
            kind.name(),
            scalar.sql_name()
        ))
    };
    let out_of_range = || Error::user("22003", format!("{} out of range", scalar.sql_name()));
    macro_rules! numbers {
        ($builder:ty, $convert:expr) => {{
            let mut out = <$builder>::with_capacity(rows);
            for row in 0..rows {
                let Some(bytes) = document.jsonb(row)? else {
                    out.append_null();
                    continue;
                };
                let value = Jsonb::new(&bytes);
                match value.as_number() {
                    Some(text) => out.append_value($convert(text)?),
                    None if value.kind() == Kind::Null => out.append_null(),
                    None => return Err(wrong_kind(value.kind())),
                }
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        }};
    }
    let integer = |text: &str| -> Result<i64> {
        let parsed: f64 = text.parse().map_err(|_| out_of_range())?;
        let rounded = parsed.round();
        if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&rounded) {
            return Err(out_of_range());
        }
        // Exact for integers that fit: parse the text when it has no fraction.
        Ok(text.parse::<i64>().unwrap_or(rounded as i64))
    };
    match scalar {
        Scalar::Boolean => {
            let mut out = BooleanBuilder::with_capacity(rows);
            for row in 0..rows {
                let Some(bytes) = document.jsonb(row)? else {
                    out.append_null();
                    continue;
                };
                let value = Jsonb::new(&bytes);
                match value.kind() {
                    Kind::Bool => out.append_option(value.as_bool()),
                    Kind::Null => out.append_null(),
                    other => return Err(wrong_kind(other)),
                }
            }
            Ok(Arc::new(out.finish()))
        }
        Scalar::SmallInt => numbers!(Int16Builder, |text: &str| integer(text)
            .and_then(|value| i16::try_from(value).map_err(|_| out_of_range()))),
        Scalar::Integer => numbers!(Int32Builder, |text: &str| integer(text)
            .and_then(|value| i32::try_from(value).map_err(|_| out_of_range()))),
        Scalar::BigInt => numbers!(Int64Builder, integer),
        Scalar::Real => numbers!(Float32Builder, |text: &str| text
            .parse::<f32>()
            .map_err(|_| out_of_range())),
        Scalar::Double => numbers!(Float64Builder, |text: &str| text
            .parse::<f64>()
            .map_err(|_| out_of_range())),
        Scalar::Numeric => {
            let mut out = StringBuilder::with_capacity(rows, rows * 8);
            for row in 0..rows {
                let Some(bytes) = document.jsonb(row)? else {
                    out.append_null();
                    continue;
                };
                let value = Jsonb::new(&bytes);
                match value.as_number() {
                    Some(text) => out.append_value(text),
                    None if value.kind() == Kind::Null => out.append_null(),
                    None => return Err(wrong_kind(value.kind())),
                }
            }
            Ok(Arc::new(out.finish()))
        }
    }
}

/// The JSON form of value `row` of `array`, as `to_jsonb` and `jsonb_build_*` make it: numbers and
/// booleans as themselves, NULL as `null`, jsonb as itself, arrays as arrays, records as objects,
/// timestamps in ISO 8601 (`2024-01-02T03:04:05`), anything else as the string of its text form.
/// Records become jsonb objects (keys sorted, the last of equal keys kept).
pub(crate) fn json_of(array: &ArrayRef, row: usize) -> Json {
    json_of_keyed(array, row, true)
}

/// Like [`json_of`]; with `sorted` false, records keep their fields in order (what `json` keeps).
pub(crate) fn json_of_keyed(array: &ArrayRef, row: usize, sorted: bool) -> Json {
    if array.data_type() == &ArrowType::Null || array.is_null(row) {
        return Json::Null;
    }
    let text = || crate::result::batch_text_value(array, row).unwrap_or_default();
    match array.data_type() {
        ArrowType::Boolean => Json::Bool(array.as_boolean().value(row)),
        ArrowType::LargeBinary => Jsonb::new(array.as_binary::<i64>().value(row)).to_json(),
        // json: its text read as jsonb (checked when it became json).
        ArrowType::LargeUtf8 => {
            let text = array.as_string::<i64>().value(row);
            jsonb::parse(text).unwrap_or_else(|_| Json::String(text.to_string()))
        }
        ArrowType::Utf8 | ArrowType::Utf8View => Json::String(text()),
        data_type if data_type.is_integer() => Json::Number(text()),
        ArrowType::Decimal128(..) | ArrowType::Decimal256(..) => {
            let text = text();
            Json::Number(jsonb::canonical_number(&text).unwrap_or(text))
        }
        data_type if data_type.is_floating() => {
            let text = text();
            match jsonb::canonical_number(&text) {
                Ok(number) if text.parse::<f64>().is_ok_and(f64::is_finite) => Json::Number(number),
                _ => Json::String(text),
            }
        }
        // A vector is no array in PostgreSQL (pgvector's types have no JSON cast): its text.
        data_type if crate::sql::vector::is_pgvector_type(data_type) => Json::String(text()),
        ArrowType::List(_) | ArrowType::LargeList(_) => {
            let items = match array.data_type() {
                ArrowType::List(_) => array.as_list::<i32>().value(row),
                _ => array.as_list::<i64>().value(row),
            };
            Json::Array(
                (0..items.len())
                    .map(|item| json_of_keyed(&items, item, sorted))
                    .collect(),
            )
        }
        ArrowType::Struct(fields) => {
            let record = array.as_struct();
            let pairs = fields
                .iter()
                .zip(record.columns())
                .map(|(field, column)| (field.name().clone(), json_of_keyed(column, row, sorted)))
                .collect();
            if sorted {
                Json::object(pairs)
            } else {
                Json::Object(pairs)
            }
        }
        ArrowType::Timestamp(_, zone) => {
            let text = text().replacen(' ', "T", 1);
            Json::String(if zone.is_some() {
                format!("{text}:00")
            } else {
                text
            })
        }
        _ => Json::String(text()),
    }
}
