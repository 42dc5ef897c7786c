//! SQL values as JSON: `to_jsonb`, `to_json`, `row_to_json`, `array_to_json`, and the aggregates
//! `jsonb_agg`, `jsonb_object_agg`, `json_agg`, `json_object_agg`.
//!
//! A value becomes JSON as [`crate::sql::jsonb::json_of`] says (numbers and booleans as themselves,
//! records as objects, arrays as arrays, everything else as the string of its text). The jsonb
//! results are the binary form; the json ones are text as PostgreSQL writes it: `to_json` and
//! `row_to_json` without spaces (`{"a":1,"b":[1,2]}`), `json_agg` with `", "` between elements and
//! `json_object_agg` as `{ "k" : v, ... }`.
//!
//! The aggregates keep their values as a jsonb array (for the object aggregates, of `[key, value]`
//! pairs) so that partial states merge by concatenation; they follow their input order, which an
//! `ORDER BY` inside the call fixes (a hard ordering requirement DataFusion sorts for).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, LargeBinaryBuilder, LargeStringBuilder};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, FieldRef};
use datafusion::common::{Result as DataFusionResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;
use qubedb_model::jsonb::{self, Json, Jsonb};

use crate::error::{Error, to_datafusion};
use crate::sql::convert::TYPE_METADATA_KEY;
use crate::sql::jsonb::{json_of, json_of_keyed};

/// Registers the functions and aggregates.
pub(crate) fn register(context: &SessionContext) {
    for (name, binary) in [
        ("to_jsonb", true),
        ("to_json", false),
        ("row_to_json", false),
        ("array_to_json", false),
    ] {
        // `row_to_json(record, pretty)` and `array_to_json(array, pretty)` take a line-feed flag.
        let pretty = matches!(name, "row_to_json" | "array_to_json");
        let signature = if pretty {
            Signature::one_of(
                vec![TypeSignature::Any(1), TypeSignature::Any(2)],
                Volatility::Stable,
            )
        } else {
            Signature::any(1, Volatility::Stable)
        };
        context.register_udf(ScalarUDF::new_from_impl(ToJson {
            name,
            binary,
            signature,
        }));
    }
    for (name, binary, object) in [
        ("jsonb_agg", true, false),
        ("jsonb_object_agg", true, true),
        ("json_agg", false, false),
        ("json_object_agg", false, true),
    ] {
        context.register_udaf(AggregateUDF::new_from_impl(JsonAggregate {
            name,
            binary,
            object,
            signature: Signature::any(if object { 2 } else { 1 }, Volatility::Immutable),
        }));
    }
}

/// A `json` result field (json computes as `LargeUtf8`, see `sql/convert.rs`).
fn json_field(name: &str) -> FieldRef {
    Arc::new(
        Field::new(name, ArrowType::LargeUtf8, true).with_metadata(HashMap::from([(
            TYPE_METADATA_KEY.to_string(),
            "json".to_string(),
        )])),
    )
}

/// JSON text without spaces, keys in the order given (PostgreSQL's `json` output of values).
fn compact(value: &Json, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Json::Number(text) => out.push_str(text),
        Json::String(text) => jsonb::escape_string(text, out),
        Json::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                compact(item, out);
            }
            out.push(']');
        }
        Json::Object(pairs) => {
            out.push('{');
            for (index, (key, item)) in pairs.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                jsonb::escape_string(key, out);
                out.push(':');
                compact(item, out);
            }
            out.push('}');
        }
    }
}

/// The `json` text of value `row` of `array`: a json value as written, a jsonb value as jsonb prints,
/// arrays and records compactly around them, anything else compactly.
fn json_text_of(array: &ArrayRef, row: usize) -> String {
    let mut out = String::new();
    write_json_text(array, row, &mut out);
    out
}

fn write_json_text(array: &ArrayRef, row: usize, out: &mut String) {
    write_json_text_top(array, row, false, out)
}

/// [`write_json_text`]; with `line_feeds` (`row_to_json(r, true)`), the members of the outermost
/// array or record are separated by a line feed and a space.
fn write_json_text_top(array: &ArrayRef, row: usize, line_feeds: bool, out: &mut String) {
    let separator = if line_feeds { ",\n " } else { "," };
    if array.data_type() == &ArrowType::Null || array.is_null(row) {
        out.push_str("null");
        return;
    }
    match array.data_type() {
        ArrowType::LargeBinary => {
            Jsonb::new(array.as_binary::<i64>().value(row)).write_text(out);
        }
        ArrowType::LargeUtf8 => out.push_str(array.as_string::<i64>().value(row)),
        // A vector is no array in PostgreSQL: its text, as a string.
        data_type if crate::sql::vector::is_pgvector_type(data_type) => {
            let text = crate::result::batch_text_value(array, row).unwrap_or_default();
            jsonb::escape_string(&text, out);
        }
        ArrowType::List(_) | ArrowType::LargeList(_) => {
            let items = match array.data_type() {
                ArrowType::List(_) => array.as_list::<i32>().value(row),
                _ => array.as_list::<i64>().value(row),
            };
            out.push('[');
            for item in 0..items.len() {
                if item > 0 {
                    out.push_str(separator);
                }
                write_json_text(&items, item, out);
            }
            out.push(']');
        }
        ArrowType::Struct(fields) => {
            let record = array.as_struct();
            out.push('{');
            for (index, (field, column)) in fields.iter().zip(record.columns()).enumerate() {
                if index > 0 {
                    out.push_str(separator);
                }
                jsonb::escape_string(field.name(), out);
                out.push(':');
                write_json_text(column, row, out);
            }
            out.push('}');
        }
        _ => compact(&json_of_keyed(array, row, false), out),
    }
}

/// True for the values `json_agg` puts on a line of their own (arrays and records).
fn is_structured(data_type: &ArrowType) -> bool {
    matches!(
        data_type,
        ArrowType::List(_) | ArrowType::LargeList(_) | ArrowType::Struct(_)
    ) && !crate::sql::vector::is_pgvector_type(data_type)
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ToJson {
    name: &'static str,
    binary: bool,
    signature: Signature,
}

impl ScalarUDFImpl for ToJson {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arguments: &[ArrowType]) -> DataFusionResult<ArrowType> {
        Ok(if self.binary {
            ArrowType::LargeBinary
        } else {
            ArrowType::LargeUtf8
        })
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DataFusionResult<FieldRef> {
        if self.binary {
            return Ok(Arc::new(Field::new(
                self.name,
                ArrowType::LargeBinary,
                true,
            )));
        }
        Ok(json_field(self.name))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DataFusionResult<ColumnarValue> {
        let rows = args.number_rows;
        let array = args.args[0].to_array(rows)?;
        let pretty = match args.args.get(1) {
            None => None,
            Some(flag) => {
                let flag = flag.to_array(rows)?;
                if !matches!(flag.data_type(), ArrowType::Boolean | ArrowType::Null) {
                    return Err(to_datafusion(Error::user(
                        "42883",
                        format!(
                            "function {}(record, {}) does not exist",
                            self.name,
                            crate::sql::convert::sql_type_of_arrow(flag.data_type())
                                .map_or_else(|| flag.data_type().to_string(), |t| t.sql_name())
                        ),
                    )));
                }
                Some(flag)
            }
        };
        match (self.name, array.data_type()) {
            ("row_to_json", ArrowType::Struct(_) | ArrowType::Null) => {}
            ("row_to_json", _) => {
                return Err(to_datafusion(Error::user(
                    "42883",
                    "function row_to_json requires a record argument",
                )));
            }
            ("array_to_json", ArrowType::List(_) | ArrowType::LargeList(_) | ArrowType::Null) => {}
            ("array_to_json", _) => {
                return Err(to_datafusion(Error::user(
                    "22023",
                    "could not determine input data type",
                )));
            }
            _ => {}
        }
        if self.binary {
            let mut out = LargeBinaryBuilder::with_capacity(rows, rows * 16);
            for row in 0..rows {
                if array.is_null(row) || array.data_type() == &ArrowType::Null {
                    out.append_null();
                } else {
                    out.append_value(json_of(&array, row).encode());
                }
            }
            return Ok(ColumnarValue::Array(Arc::new(out.finish())));
        }
        let mut out = LargeStringBuilder::with_capacity(rows, rows * 16);
        for row in 0..rows {
            if array.is_null(row) || array.data_type() == &ArrowType::Null {
                out.append_null();
            } else {
                let line_feeds = pretty.as_ref().is_some_and(|flag| {
                    flag.data_type() == &ArrowType::Boolean
                        && !flag.is_null(row)
                        && flag.as_boolean().value(row)
                });
                let mut text = String::new();
                write_json_text_top(&array, row, line_feeds, &mut text);
                out.append_value(text);
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonAggregate {
    name: &'static str,
    binary: bool,
    object: bool,
    signature: Signature,
}

impl AggregateUDFImpl for JsonAggregate {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arguments: &[ArrowType]) -> DataFusionResult<ArrowType> {
        Ok(if self.binary {
            ArrowType::LargeBinary
        } else {
            ArrowType::LargeUtf8
        })
    }

    fn return_field(&self, _arguments: &[FieldRef]) -> DataFusionResult<FieldRef> {
        if self.binary {
            return Ok(Arc::new(Field::new(
                self.name,
                ArrowType::LargeBinary,
                true,
            )));
        }
        Ok(json_field(self.name))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DataFusionResult<Box<dyn Accumulator>> {
        let value_field = args.expr_fields.get(usize::from(self.object));
        Ok(Box::new(JsonAccumulator {
            binary: self.binary,
            object: self.object,
            structured: value_field.is_some_and(|field| is_structured(field.data_type())),
            items: Vec::new(),
            texts: Vec::new(),
            size: 0,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DataFusionResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}_items", args.name),
            ArrowType::LargeBinary,
            true,
        ))])
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::HardRequirement
    }
}

/// The values seen so far: as JSON trees (jsonb) or as their json text with keys (json).
#[derive(Debug)]
struct JsonAccumulator {
    binary: bool,
    object: bool,
    /// `json_agg` of arrays or records: PostgreSQL starts each element after the first on a new line.
    structured: bool,
    items: Vec<Json>,
    /// json: each element's text (and key, for the object aggregate).
    texts: Vec<(Option<String>, String)>,
    size: usize,
}

impl JsonAccumulator {
    fn key_of(array: &ArrayRef, row: usize) -> DataFusionResult<String> {
        match json_of(array, row) {
            Json::Null => Err(to_datafusion(Error::user(
                "22004",
                "field name must not be null",
            ))),
            Json::String(text) | Json::Number(text) => Ok(text),
            Json::Bool(flag) => Ok(flag.to_string()),
            other => Ok(other.to_text()),
        }
    }
}

impl Accumulator for JsonAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DataFusionResult<()> {
        let rows = values[0].len();
        for row in 0..rows {
            if self.binary {
                let item = if self.object {
                    let key = Self::key_of(&values[0], row)?;
                    Json::Array(vec![Json::String(key), json_of(&values[1], row)])
                } else {
                    json_of(&values[0], row)
                };
                self.size += 32;
                self.items.push(item);
            } else {
                let (key, value) = if self.object {
                    (
                        Some(Self::key_of(&values[0], row)?),
                        json_text_of(&values[1], row),
                    )
                } else {
                    (None, json_text_of(&values[0], row))
                };
                self.size += value.len() + key.as_ref().map_or(0, String::len) + 48;
                self.texts.push((key, value));
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DataFusionResult<ScalarValue> {
        if self.binary {
            if self.items.is_empty() {
                return Ok(ScalarValue::LargeBinary(None));
            }
            let json = if self.object {
                Json::object(
                    self.items
                        .iter()
                        .filter_map(|pair| match pair {
                            Json::Array(parts) => match parts.as_slice() {
                                [Json::String(key), value] => Some((key.clone(), value.clone())),
                                _ => None,
                            },
                            _ => None,
                        })
                        .collect(),
                )
            } else {
                Json::Array(self.items.clone())
            };
            return Ok(ScalarValue::LargeBinary(Some(json.encode())));
        }
        if self.texts.is_empty() {
            return Ok(ScalarValue::LargeUtf8(None));
        }
        let mut out = String::new();
        if self.object {
            out.push_str("{ ");
            for (index, (key, value)) in self.texts.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                jsonb::escape_string(key.as_deref().unwrap_or_default(), &mut out);
                let _ = write!(out, " : {value}");
            }
            out.push_str(" }");
        } else {
            out.push('[');
            for (index, (_, value)) in self.texts.iter().enumerate() {
                if index > 0 {
                    out.push_str(if self.structured { ", \n " } else { ", " });
                }
                out.push_str(value);
            }
            out.push(']');
        }
        Ok(ScalarValue::LargeUtf8(Some(out)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.size
    }

    fn state(&mut self) -> DataFusionResult<Vec<ScalarValue>> {
        // Partial states travel as a jsonb array: trees as they are, json texts as [key, text]
        // string pairs.
        let items = if self.binary {
            std::mem::take(&mut self.items)
        } else {
            std::mem::take(&mut self.texts)
                .into_iter()
                .map(|(key, value)| {
                    Json::Array(vec![
                        key.map_or(Json::Null, Json::String),
                        Json::String(value),
                    ])
                })
                .collect()
        };
        Ok(vec![ScalarValue::LargeBinary(Some(
            Json::Array(items).encode(),
        ))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DataFusionResult<()> {
        let states = states[0].as_binary::<i64>();
        for row in 0..states.len() {
            if states.is_null(row) {
                continue;
            }
            for item in Jsonb::new(states.value(row)).elements() {
                if self.binary {
                    self.items.push(item.to_json());
                } else if let Json::Array(parts) = item.to_json()
                    && let [key, Json::String(value)] = parts.as_slice()
                {
                    let key = match key {
                        Json::String(key) => Some(key.clone()),
                        _ => None,
                    };
                    self.texts.push((key, value.clone()));
                }
            }
        }
        Ok(())
    }
}
