//! `json_build_object`, `json_build_array`, `jsonb_build_object`, `jsonb_build_array`: JSON built from
//! SQL values, as PostgreSQL builds it.
//!
//! Numbers and booleans become JSON numbers and booleans, NULL `null`, `json` / `jsonb` values are
//! embedded as they are, arrays become JSON arrays, and everything else becomes a JSON string of the
//! value's text form. `json_build_object` keeps keys in argument order and writes `"key" : value`;
//! `jsonb_build_object` keeps the last value of a repeated key, orders keys as jsonb does (shorter
//! first, then bytewise) and writes `"key": value`. The results are typed `json` / `jsonb`.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, LargeBinaryBuilder, LargeStringBuilder, new_empty_array,
};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, FieldRef};
use datafusion::common::{Result as DataFusionResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;
use qubedb_model::jsonb::Json;

use crate::error::{Error, to_datafusion};
use crate::sql::convert::TYPE_METADATA_KEY;
use crate::sql::jsonb::json_of;

/// Registers the four builders.
pub(crate) fn register(context: &SessionContext) {
    context.register_udf(ScalarUDF::new_from_impl(Variadic {
        signature: Signature::any(1, Volatility::Immutable),
    }));
    for (name, binary, object) in [
        ("json_build_object", false, true),
        ("json_build_array", false, false),
        ("jsonb_build_object", true, true),
        ("jsonb_build_array", true, false),
    ] {
        context.register_udf(ScalarUDF::new_from_impl(JsonBuild {
            name,
            binary,
            object,
            // PostgreSQL also takes no arguments: `{}` and `[]`.
            signature: Signature::one_of(
                vec![TypeSignature::VariadicAny, TypeSignature::Nullary],
                Volatility::Stable,
            ),
        }));
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuild {
    name: &'static str,
    /// jsonb: last key wins, keys ordered, compact spacing.
    binary: bool,
    object: bool,
    signature: Signature,
}

impl ScalarUDFImpl for JsonBuild {
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
        Ok(Arc::new(
            Field::new(self.name, ArrowType::LargeUtf8, true).with_metadata(HashMap::from([(
                TYPE_METADATA_KEY.to_string(),
                "json".to_string(),
            )])),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DataFusionResult<ColumnarValue> {
        let rows = args.number_rows;
        if let [field] = args.arg_fields.as_slice()
            && field.metadata().contains_key(VARIADIC_METADATA_KEY)
        {
            let list = args.args[0].to_array(rows)?;
            return self.invoke_variadic(&list, rows);
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let json_typed: Vec<bool> = args
            .arg_fields
            .iter()
            .map(|field| {
                field
                    .metadata()
                    .get(TYPE_METADATA_KEY)
                    .is_some_and(|name| name == "json" || name == "jsonb")
                    || matches!(
                        field.data_type(),
                        ArrowType::LargeBinary | ArrowType::LargeUtf8
                    )
            })
            .collect();
        self.build(&arrays, &json_typed, rows)
    }
}

impl JsonBuild {
    /// `f(VARIADIC array)`: each row's array elements (of every dimension, in order) as the arguments.
    fn invoke_variadic(&self, list: &ArrayRef, rows: usize) -> DataFusionResult<ColumnarValue> {
        let output = if self.binary {
            ArrowType::LargeBinary
        } else {
            ArrowType::LargeUtf8
        };
        let mut values = Vec::with_capacity(rows);
        for row in 0..rows {
            if list.data_type() == &ArrowType::Null || list.is_null(row) {
                values.push(ScalarValue::try_from(&output)?);
                continue;
            }
            let elements = match list.data_type() {
                ArrowType::List(_) => flatten(&list.as_list::<i32>().value(row))?,
                ArrowType::LargeList(_) => flatten(&list.as_list::<i64>().value(row))?,
                _ => {
                    return Err(to_datafusion(Error::user(
                        "42804",
                        "VARIADIC argument must be an array",
                    )));
                }
            };
            let arguments: Vec<ArrayRef> = (0..elements.len())
                .map(|index| elements.slice(index, 1))
                .collect();
            let typed = vec![
                matches!(
                    elements.data_type(),
                    ArrowType::LargeBinary | ArrowType::LargeUtf8
                );
                arguments.len()
            ];
            let ColumnarValue::Array(built) = self.build(&arguments, &typed, 1)? else {
                return Err(to_datafusion(Error::internal("build returns an array")));
            };
            values.push(ScalarValue::try_from_array(&built, 0)?);
        }
        if values.is_empty() {
            return Ok(ColumnarValue::Array(new_empty_array(&output)));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(values)?))
    }

    /// The JSON value of each row, from one array per argument.
    fn build(
        &self,
        arrays: &[ArrayRef],
        json_typed: &[bool],
        rows: usize,
    ) -> DataFusionResult<ColumnarValue> {
        if self.object && !arrays.len().is_multiple_of(2) {
            return Err(to_datafusion(
                Error::user("22023", "argument list must have even number of elements").with_hint(
                    format!(
                        "The arguments of {}() must consist of alternating keys and values.",
                        self.name
                    ),
                ),
            ));
        }
        if self.binary {
            return self.build_binary(arrays, rows);
        }
        let mut builder = LargeStringBuilder::with_capacity(rows, rows * 16);
        for row in 0..rows {
            let text = if self.object {
                self.object_at(arrays, json_typed, row)?
            } else {
                let values: Vec<String> = arrays
                    .iter()
                    .zip(json_typed)
                    .map(|(array, &json)| json_value(array, row, json))
                    .collect();
                format!("[{}]", values.join(", "))
            };
            builder.append_value(text);
        }
        Ok(ColumnarValue::Array(Arc::new(builder.finish())))
    }

    /// `jsonb_build_object` / `jsonb_build_array`: the binary form.
    fn build_binary(&self, arrays: &[ArrayRef], rows: usize) -> DataFusionResult<ColumnarValue> {
        let mut builder = LargeBinaryBuilder::with_capacity(rows, rows * 32);
        for row in 0..rows {
            let json = if self.object {
                let mut pairs = Vec::with_capacity(arrays.len() / 2);
                for (position, pair) in arrays.chunks(2).enumerate() {
                    let key = match json_of(&pair[0], row) {
                        Json::Null => {
                            return Err(to_datafusion(Error::user(
                                "22004",
                                format!("argument {}: key must not be null", position * 2 + 1),
                            )));
                        }
                        Json::String(text) | Json::Number(text) => text,
                        Json::Bool(value) => value.to_string(),
                        Json::Array(_) | Json::Object(_) => {
                            return Err(to_datafusion(Error::user(
                                "22023",
                                "key value must be scalar, not array, composite, or json",
                            )));
                        }
                    };
                    pairs.push((key, json_of(&pair[1], row)));
                }
                Json::object(pairs)
            } else {
                Json::Array(arrays.iter().map(|array| json_of(array, row)).collect())
            };
            builder.append_value(json.encode());
        }
        Ok(ColumnarValue::Array(Arc::new(builder.finish())))
    }

    fn object_at(
        &self,
        arrays: &[ArrayRef],
        json_typed: &[bool],
        row: usize,
    ) -> DataFusionResult<String> {
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(arrays.len() / 2);
        for (position, pair) in arrays.chunks(2).enumerate() {
            if matches!(
                pair[0].data_type(),
                ArrowType::List(_)
                    | ArrowType::LargeList(_)
                    | ArrowType::Struct(_)
                    | ArrowType::LargeUtf8
                    | ArrowType::LargeBinary
            ) {
                return Err(to_datafusion(Error::user(
                    "22023",
                    "key value must be scalar, not array, composite, or json",
                )));
            }
            let key = if pair[0].data_type() == &ArrowType::Null {
                None
            } else {
                crate::result::batch_text_value(&pair[0], row)
            };
            let Some(key) = key else {
                // PostgreSQL words this differently for json and jsonb.
                let argument = position * 2 + 1;
                return Err(to_datafusion(if self.binary {
                    Error::user(
                        "22004",
                        format!("argument {argument}: key must not be null"),
                    )
                } else {
                    Error::user("22004", format!("argument {argument} cannot be null"))
                        .with_hint("Object keys should be text.")
                }));
            };
            let value = json_value(&pair[1], row, json_typed[position * 2 + 1]);
            if self.binary
                && let Some(existing) = pairs.iter_mut().find(|(name, _)| *name == key)
            {
                existing.1 = value;
                continue;
            }
            pairs.push((key, value));
        }
        if self.binary {
            pairs.sort_by(|left, right| {
                left.0
                    .len()
                    .cmp(&right.0.len())
                    .then_with(|| left.0.as_bytes().cmp(right.0.as_bytes()))
            });
        }
        let separator = if self.binary { ": " } else { " : " };
        let members: Vec<String> = pairs
            .into_iter()
            .map(|(key, value)| format!("{}{separator}{value}", json_string(&key)))
            .collect();
        Ok(format!("{{{}}}", members.join(", ")))
    }
}

/// The elements of an array of any number of dimensions, in order.
fn flatten(values: &ArrayRef) -> DataFusionResult<ArrayRef> {
    let parts: Vec<ArrayRef> = match values.data_type() {
        ArrowType::List(_) => {
            let lists = values.as_list::<i32>();
            (0..lists.len())
                .filter(|&index| !lists.is_null(index))
                .map(|index| flatten(&lists.value(index)))
                .collect::<DataFusionResult<_>>()?
        }
        _ => return Ok(values.clone()),
    };
    match parts.as_slice() {
        [] => Ok(new_empty_array(&ArrowType::Null)),
        _ => {
            let references: Vec<&dyn Array> = parts.iter().map(AsRef::as_ref).collect();
            Ok(datafusion::arrow::compute::concat(&references)?)
        }
    }
}

/// Field metadata key marking an argument written `VARIADIC array` (see [`register`]).
pub(crate) const VARIADIC_METADATA_KEY: &str = "qubedb.variadic";

/// `qubedb_variadic(array)`: the array itself, its field marked as a VARIADIC argument
/// (`sql/parse.rs` writes it for `f(VARIADIC array)`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Variadic {
    signature: Signature,
}

impl ScalarUDFImpl for Variadic {
    fn name(&self) -> &str {
        "qubedb_variadic"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arguments: &[ArrowType]) -> DataFusionResult<ArrowType> {
        Ok(arguments.first().cloned().unwrap_or(ArrowType::Null))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DataFusionResult<FieldRef> {
        let data_type = args
            .arg_fields
            .first()
            .map(|field| field.data_type().clone())
            .unwrap_or(ArrowType::Null);
        Ok(Arc::new(
            Field::new(self.name(), data_type, true).with_metadata(HashMap::from([(
                VARIADIC_METADATA_KEY.to_string(),
                "true".to_string(),
            )])),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DataFusionResult<ColumnarValue> {
        Ok(args.args[0].clone())
    }
}

/// The JSON form of the value at `row` of `array`; `json`: the column is typed json / jsonb already.
fn json_value(array: &ArrayRef, row: usize, json: bool) -> String {
    if array.is_null(row) || array.data_type() == &ArrowType::Null {
        return "null".to_string();
    }
    match array.data_type() {
        ArrowType::Boolean => array.as_boolean().value(row).to_string(),
        ArrowType::List(_) => {
            let list = array.as_list::<i32>().value(row);
            let items: Vec<String> = (0..list.len())
                .map(|item| json_value(&list, item, false))
                .collect();
            format!("[{}]", items.join(", "))
        }
        data_type => {
            let Some(text) = crate::result::batch_text_value(array, row) else {
                return "null".to_string();
            };
            let numeric = data_type.is_integer()
                || matches!(data_type, ArrowType::Decimal128(_, _))
                || (data_type.is_floating() && text.parse::<f64>().is_ok_and(f64::is_finite));
            if json || numeric {
                text
            } else {
                json_string(&text)
            }
        }
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}
