//! The `json` forms of the functions (`json_object_field` for `->` on json, `json_each`, ...): the
//! same operations as their jsonb twins, over json's text as written.
//!
//! A json value computes as Arrow `LargeUtf8` (see `sql/convert.rs`): text already checked to be
//! JSON. Members are found by scanning that text ([`qubedb_model::json_text`]) and returned as the
//! very text they have inside the document, so `'{"a": [1, 2]}'::json -> 'a'` is `[1, 2]` and of
//! equal keys the last one is read, as in PostgreSQL. An untyped text argument is checked first; a
//! jsonb argument reads as its text form.

use std::borrow::Cow;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Builder, LargeStringBuilder, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Fields};
use qubedb_model::json_text::{self, JsonText};
use qubedb_model::jsonb::{self, Jsonb, Kind};

use super::{
    Argument, JsonbFunction, Operation, SetMembers, invalid_parameter, object_pairs, path_of,
};
use crate::error::{Error, Result};
use crate::sql::convert::{check_json, json_array, json_error};

/// The Arrow type of a json function's result: its jsonb twin's, with json (`LargeUtf8`) wherever
/// the twin returns jsonb (`LargeBinary`).
pub(super) fn json_result_type(jsonb: ArrowType) -> ArrowType {
    match jsonb {
        ArrowType::LargeBinary => ArrowType::LargeUtf8,
        ArrowType::List(field) => ArrowType::List(Arc::new(Field::new_list_field(
            json_result_type(field.data_type().clone()),
            field.is_nullable(),
        ))),
        ArrowType::Struct(fields) => ArrowType::Struct(json_fields(&fields)),
        other => other,
    }
}

fn json_fields(fields: &Fields) -> Fields {
    fields
        .iter()
        .map(|field| {
            Field::new(
                field.name(),
                json_result_type(field.data_type().clone()),
                field.is_nullable(),
            )
        })
        .collect()
}

impl Argument {
    /// The json text at `row`: json as it is, text once checked, jsonb printed.
    fn json_text(&self, row: usize) -> Result<Option<Cow<'_, str>>> {
        if self.is_null(row) {
            return Ok(None);
        }
        let row = self.row(row);
        match self.array.data_type() {
            ArrowType::LargeUtf8 => Ok(Some(Cow::Borrowed(
                self.array.as_string::<i64>().value(row),
            ))),
            ArrowType::Utf8 => {
                let text = self.array.as_string::<i32>().value(row);
                check_json(text)?;
                Ok(Some(Cow::Borrowed(text)))
            }
            ArrowType::LargeBinary => Ok(Some(Cow::Owned(
                Jsonb::new(self.array.as_binary::<i64>().value(row)).to_text(),
            ))),
            other => Err(Error::internal(format!("json argument of type {other}"))),
        }
    }
}

impl JsonbFunction {
    /// The json form of the operation (see the module docs).
    pub(super) fn evaluate_json(&self, arguments: &[Argument], rows: usize) -> Result<ArrayRef> {
        let first = &arguments[0];
        match self.operation {
            Operation::Input => json_array(&first.array),
            Operation::Field { text } => {
                let key = &arguments[1];
                let by_index = key.array.data_type() == &ArrowType::Int64;
                self.extract_json(first, rows, text, |value, row| match by_index {
                    true => value.element_signed(key.integer(row)?),
                    false => value.get(key.text(row)?),
                })
            }
            Operation::Path { text } => {
                let steps = &arguments[1..];
                // Path errors (a malformed literal) surface before the rows.
                for row in 0..rows.min(1) {
                    path_of(steps, row)?;
                }
                self.extract_json(first, rows, text, |value, row| {
                    let path = path_of(steps, row).ok()??;
                    let path: Option<Vec<String>> = path.into_iter().collect();
                    value.at_path(&path?)
                })
            }
            Operation::Typeof => {
                let mut out = StringBuilder::with_capacity(rows, rows * 8);
                for row in 0..rows {
                    match first.json_text(row)? {
                        Some(text) => out.append_value(JsonText::new(&text).kind().name()),
                        None => out.append_null(),
                    }
                }
                Ok(Arc::new(out.finish()))
            }
            Operation::ArrayLength => {
                let mut out = Int32Builder::with_capacity(rows);
                for row in 0..rows {
                    let Some(text) = first.json_text(row)? else {
                        out.append_null();
                        continue;
                    };
                    let value = JsonText::new(&text);
                    match value.kind() {
                        Kind::Array => out.append_value(value.elements().count() as i32),
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
            Operation::StripNulls => {
                let mut out = LargeStringBuilder::with_capacity(rows, rows * 16);
                for row in 0..rows {
                    match first.json_text(row)? {
                        Some(text) => out
                            .append_value(JsonText::new(&text).strip_nulls().map_err(json_error)?),
                        None => out.append_null(),
                    }
                }
                Ok(Arc::new(out.finish()))
            }
            Operation::ObjectKeys | Operation::Elements { .. } | Operation::Each { .. } => {
                self.sets_json(first, rows)
            }
            Operation::Object => {
                // `{"a" : "1", "b" : null}`: keys in the order given, duplicates kept.
                let mut out = LargeStringBuilder::with_capacity(rows, rows * 16);
                for row in 0..rows {
                    let Some(pairs) = object_pairs(arguments, row)? else {
                        out.append_null();
                        continue;
                    };
                    let mut text = String::from("{");
                    for (index, (key, value)) in pairs.into_iter().enumerate() {
                        let key = key.ok_or_else(|| {
                            Error::user("22004", "null value not allowed for object key")
                        })?;
                        if index > 0 {
                            text.push_str(", ");
                        }
                        jsonb::escape_string(&key, &mut text);
                        text.push_str(" : ");
                        match value {
                            Some(value) => jsonb::escape_string(&value, &mut text),
                            None => text.push_str("null"),
                        }
                    }
                    text.push('}');
                    out.append_value(text);
                }
                Ok(Arc::new(out.finish()))
            }
            _ => Err(Error::internal(format!("{} has no json form", self.name))),
        }
    }

    /// `->`, `->>`, `#>`, `#>>`: the member `found` picks, as json text or (`text`) unquoted.
    fn extract_json(
        &self,
        document: &Argument,
        rows: usize,
        text: bool,
        found: impl for<'b> Fn(JsonText<'b>, usize) -> Option<JsonText<'b>>,
    ) -> Result<ArrayRef> {
        if text {
            let mut out = StringBuilder::with_capacity(rows, rows * 8);
            for row in 0..rows {
                let Some(document) = document.json_text(row)? else {
                    out.append_null();
                    continue;
                };
                match found(JsonText::new(&document), row) {
                    None => out.append_null(),
                    Some(member) => {
                        out.append_option(member.to_unquoted().map_err(json_error)?);
                    }
                }
            }
            return Ok(Arc::new(out.finish()));
        }
        let mut out = LargeStringBuilder::with_capacity(rows, rows * 8);
        for row in 0..rows {
            let Some(document) = document.json_text(row)? else {
                out.append_null();
                continue;
            };
            out.append_option(found(JsonText::new(&document), row).map(|member| member.as_str()));
        }
        Ok(Arc::new(out.finish()))
    }

    /// `json_object_keys`, `json_array_elements(_text)`, `json_each(_text)`: one array per row.
    fn sets_json(&self, document: &Argument, rows: usize) -> Result<ArrayRef> {
        let mut offsets: Vec<i32> = Vec::with_capacity(rows + 1);
        offsets.push(0);
        let mut keys = StringBuilder::new();
        let mut texts = StringBuilder::new();
        let mut values = LargeStringBuilder::new();
        let mut count = 0i32;
        let mut nulls = Vec::with_capacity(rows);
        let text = matches!(
            self.operation,
            Operation::Elements { text: true } | Operation::Each { text: true }
        );
        let function = self.name.trim_start_matches("qubedb_");
        let mut push = |member: JsonText<'_>| -> Result<()> {
            if text {
                texts.append_option(member.to_unquoted().map_err(json_error)?);
            } else {
                values.append_value(member.as_str());
            }
            Ok(())
        };
        for row in 0..rows {
            let Some(document) = document.json_text(row)? else {
                offsets.push(count);
                nulls.push(false);
                continue;
            };
            nulls.push(true);
            let value = JsonText::new(&document);
            match (self.operation, value.kind()) {
                (Operation::ObjectKeys, Kind::Object) => {
                    for (key, _) in value.entries() {
                        keys.append_value(json_text::decode_string(key).map_err(json_error)?);
                        count += 1;
                    }
                }
                (Operation::ObjectKeys, Kind::Array) => {
                    return Err(invalid_parameter(format!(
                        "cannot call {function} on an array"
                    )));
                }
                (Operation::ObjectKeys, _) => {
                    return Err(invalid_parameter(format!(
                        "cannot call {function} on a scalar"
                    )));
                }
                (Operation::Elements { .. }, Kind::Array) => {
                    for element in value.elements() {
                        push(element)?;
                        count += 1;
                    }
                }
                (Operation::Elements { .. }, kind) => {
                    let what = if kind == Kind::Object {
                        "a non-array"
                    } else {
                        "a scalar"
                    };
                    return Err(invalid_parameter(format!(
                        "cannot extract elements from {what}"
                    )));
                }
                (_, Kind::Object) => {
                    for (key, member) in value.entries() {
                        keys.append_value(json_text::decode_string(key).map_err(json_error)?);
                        push(member)?;
                        count += 1;
                    }
                }
                _ => {
                    return Err(invalid_parameter(format!(
                        "cannot call {function} on a non-object"
                    )));
                }
            }
            offsets.push(count);
        }
        let members = SetMembers {
            keys: Arc::new(keys.finish()),
            texts: Arc::new(texts.finish()),
            values: Arc::new(values.finish()),
        };
        members.into_lists(self.operation, offsets, nulls)
    }
}
