//! Between QubeDB's stored values and Arrow: the Arrow type of each SQL type, column builders that decode
//! stored rows straight into Arrow arrays, and the conversion of computed Arrow values back into storable
//! [`Value`]s with PostgreSQL's checks (length of `VARCHAR(n)`, padding of `CHAR(n)`, UUID and JSON syntax).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, BooleanArray, BooleanBuilder,
    Date32Array, Date32Builder, Decimal128Array, Decimal128Builder, Float32Array, Float32Builder,
    Float64Array, Float64Builder, Int16Array, Int16Builder, Int32Array, Int32Builder, Int64Array,
    Int64Builder, IntervalMonthDayNanoArray, IntervalMonthDayNanoBuilder, LargeBinaryArray,
    LargeBinaryBuilder, LargeStringArray, LargeStringBuilder, StringArray, StringBuilder,
    Time64MicrosecondArray, Time64MicrosecondBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{
    DataType as ArrowType, Field, IntervalMonthDayNano, IntervalUnit, TimeUnit,
};
use qubedb_model::jsonb::Jsonb;
use qubedb_model::row::RawValue;
use qubedb_model::vector::VectorKind;
use qubedb_model::{DataType, Value};

use crate::error::{Error, Result};

/// Field metadata key holding the column's SQL type name (`format_type` style).
pub const TYPE_METADATA_KEY: &str = "qubedb.type";
/// Time zone of `TIMESTAMPTZ` values in Arrow (sessions run in UTC).
pub const UTC: &str = "+00:00";

/// The Arrow type a SQL type is computed in.
pub fn arrow_type(data_type: DataType) -> ArrowType {
    match data_type {
        DataType::Boolean => ArrowType::Boolean,
        DataType::SmallInt => ArrowType::Int16,
        DataType::Integer => ArrowType::Int32,
        DataType::BigInt => ArrowType::Int64,
        DataType::Real => ArrowType::Float32,
        DataType::Double => ArrowType::Float64,
        DataType::Numeric { precision, scale } => {
            ArrowType::Decimal128(precision.unwrap_or(38), scale)
        }
        // bit strings as the text of their bits (`sql/bit_string.rs`).
        DataType::Text
        | DataType::Varchar(_)
        | DataType::Char(_)
        | DataType::Uuid
        | DataType::Bit { .. } => ArrowType::Utf8,
        // jsonb's binary form (`qubedb_model::jsonb`): no other SQL type computes in LargeBinary, so
        // the Arrow type alone says a value is jsonb wherever it flows.
        DataType::Jsonb => ArrowType::LargeBinary,
        // json's text as written: no other SQL type computes in LargeUtf8 either, so the Arrow type
        // marks json values as LargeBinary marks jsonb.
        DataType::Json => ArrowType::LargeUtf8,
        // vectors as lists of real in LargeList, which no other type uses (`sql/vector.rs`).
        DataType::Vector(_) => crate::sql::vector::arrow_type(),
        DataType::HalfVector(_) => crate::sql::vector::arrow_type_of(VectorKind::Half),
        // sparse vectors as a struct no other type uses (`sql/sparse_vector.rs`).
        DataType::SparseVector(_) => crate::sql::sparse_vector::arrow_type(),
        DataType::Bytea => ArrowType::Binary,
        DataType::Date => ArrowType::Date32,
        DataType::Time => ArrowType::Time64(TimeUnit::Microsecond),
        DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, None),
        DataType::TimestampTz => ArrowType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        DataType::Interval => ArrowType::Interval(IntervalUnit::MonthDayNano),
    }
}

/// An Arrow field for a column, carrying the SQL type name in its metadata.
pub fn field(name: &str, data_type: DataType, nullable: bool) -> Field {
    Field::new(name, arrow_type(data_type), nullable).with_metadata(HashMap::from([(
        TYPE_METADATA_KEY.to_string(),
        data_type.sql_name(),
    )]))
}

/// The SQL type of an Arrow type, for values that did not come from a column (expressions).
pub fn sql_type_of_arrow(arrow: &ArrowType) -> Option<DataType> {
    Some(match arrow {
        ArrowType::Boolean => DataType::Boolean,
        ArrowType::Int8 | ArrowType::Int16 | ArrowType::UInt8 => DataType::SmallInt,
        ArrowType::Int32 | ArrowType::UInt16 => DataType::Integer,
        ArrowType::Int64 | ArrowType::UInt32 | ArrowType::UInt64 => DataType::BigInt,
        ArrowType::Float16 | ArrowType::Float32 => DataType::Real,
        ArrowType::Float64 => DataType::Double,
        ArrowType::Decimal128(precision, scale) | ArrowType::Decimal256(precision, scale) => {
            DataType::Numeric {
                precision: Some((*precision).min(38)),
                scale: *scale,
            }
        }
        ArrowType::Utf8 | ArrowType::Utf8View => DataType::Text,
        ArrowType::LargeUtf8 => DataType::Json,
        ArrowType::LargeBinary => DataType::Jsonb,
        ArrowType::Binary | ArrowType::BinaryView | ArrowType::FixedSizeBinary(_) => {
            DataType::Bytea
        }
        ArrowType::Date32 | ArrowType::Date64 => DataType::Date,
        ArrowType::Time32(_) | ArrowType::Time64(_) => DataType::Time,
        ArrowType::Timestamp(_, None) => DataType::Timestamp,
        ArrowType::Timestamp(_, Some(_)) => DataType::TimestampTz,
        ArrowType::Interval(_) | ArrowType::Duration(_) => DataType::Interval,
        ArrowType::Null => DataType::Text,
        data_type if crate::sql::vector::is_vector(data_type) => {
            match crate::sql::vector::kind_of(data_type) {
                Some(VectorKind::Half) => DataType::HalfVector(None),
                _ => DataType::Vector(None),
            }
        }
        data_type if crate::sql::sparse_vector::is_sparse(data_type) => {
            DataType::SparseVector(None)
        }
        _ => return None,
    })
}

/// Builds one Arrow column from stored values.
pub enum ColumnBuilder {
    Boolean(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Text(StringBuilder),
    Uuid(StringBuilder),
    Binary(BinaryBuilder),
    Jsonb(LargeBinaryBuilder),
    Json(LargeStringBuilder),
    Vector(crate::sql::vector::VectorBuilder),
    SparseVector(Vec<Option<qubedb_model::sparse_vector::SparseVector>>),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder, bool),
    Interval(IntervalMonthDayNanoBuilder),
}

impl ColumnBuilder {
    /// A builder for `data_type` with room for `capacity` values.
    pub fn new(data_type: DataType, capacity: usize) -> ColumnBuilder {
        match data_type {
            DataType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(capacity)),
            DataType::SmallInt => ColumnBuilder::Int16(Int16Builder::with_capacity(capacity)),
            DataType::Integer => ColumnBuilder::Int32(Int32Builder::with_capacity(capacity)),
            DataType::BigInt => ColumnBuilder::Int64(Int64Builder::with_capacity(capacity)),
            DataType::Real => ColumnBuilder::Float32(Float32Builder::with_capacity(capacity)),
            DataType::Double => ColumnBuilder::Float64(Float64Builder::with_capacity(capacity)),
            DataType::Numeric { precision, scale } => ColumnBuilder::Decimal(
                Decimal128Builder::with_capacity(capacity),
                precision.unwrap_or(38),
                scale,
            ),
            DataType::Text | DataType::Varchar(_) | DataType::Char(_) | DataType::Bit { .. } => {
                ColumnBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::Jsonb => {
                ColumnBuilder::Jsonb(LargeBinaryBuilder::with_capacity(capacity, capacity * 64))
            }
            DataType::Json => {
                ColumnBuilder::Json(LargeStringBuilder::with_capacity(capacity, capacity * 64))
            }
            DataType::Vector(dimensions) => {
                ColumnBuilder::Vector(crate::sql::vector::VectorBuilder::with_capacity(
                    capacity,
                    capacity * dimensions.unwrap_or(16) as usize,
                ))
            }
            DataType::HalfVector(dimensions) => {
                ColumnBuilder::Vector(crate::sql::vector::VectorBuilder::of_kind(
                    VectorKind::Half,
                    capacity,
                    capacity * dimensions.unwrap_or(16) as usize,
                ))
            }
            DataType::SparseVector(_) => ColumnBuilder::SparseVector(Vec::with_capacity(capacity)),
            DataType::Uuid => {
                ColumnBuilder::Uuid(StringBuilder::with_capacity(capacity, capacity * 36))
            }
            DataType::Bytea => {
                ColumnBuilder::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::Date => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
            DataType::Time => {
                ColumnBuilder::Time(Time64MicrosecondBuilder::with_capacity(capacity))
            }
            DataType::Timestamp => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity),
                false,
            ),
            DataType::TimestampTz => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity), true)
            }
            DataType::Interval => {
                ColumnBuilder::Interval(IntervalMonthDayNanoBuilder::with_capacity(capacity))
            }
        }
    }

    /// Appends a value as it lies in a stored row.
    pub fn append_raw(&mut self, raw: RawValue<'_>) -> Result<()> {
        let mismatch = || {
            Error::internal(format!(
                "stored value {raw:?} does not match its column type"
            ))
        };
        match (self, raw) {
            (builder, RawValue::Null) => builder.append_null(),
            (ColumnBuilder::Boolean(builder), RawValue::Boolean(value)) => {
                builder.append_value(value)
            }
            (ColumnBuilder::Int16(builder), RawValue::Integer(value)) => {
                builder.append_value(i16::try_from(value).map_err(|_| mismatch())?)
            }
            (ColumnBuilder::Int32(builder), RawValue::Integer(value)) => {
                builder.append_value(i32::try_from(value).map_err(|_| mismatch())?)
            }
            (ColumnBuilder::Int64(builder), RawValue::Integer(value)) => {
                builder.append_value(value)
            }
            (ColumnBuilder::Float32(builder), RawValue::Real(value)) => builder.append_value(value),
            (ColumnBuilder::Float64(builder), RawValue::Double(value)) => {
                builder.append_value(value)
            }
            (ColumnBuilder::Decimal(builder, ..), RawValue::Numeric(value)) => {
                builder.append_value(value)
            }
            (ColumnBuilder::Text(builder), RawValue::Bytes(bytes)) => {
                builder.append_value(std::str::from_utf8(bytes).map_err(|_| mismatch())?)
            }
            (ColumnBuilder::Json(builder), RawValue::Bytes(bytes)) => {
                builder.append_value(std::str::from_utf8(bytes).map_err(|_| mismatch())?)
            }
            (ColumnBuilder::Vector(builder), RawValue::Bytes(bytes)) => {
                let elements = match builder.kind() {
                    VectorKind::Single => qubedb_model::vector::from_bytes(bytes),
                    VectorKind::Half => qubedb_model::vector::from_half_bytes(bytes),
                };
                builder.append(&elements.ok_or_else(mismatch)?)
            }
            (ColumnBuilder::SparseVector(values), RawValue::Bytes(bytes)) => values.push(Some(
                qubedb_model::sparse_vector::SparseVector::from_bytes(bytes)
                    .ok_or_else(mismatch)?,
            )),
            (ColumnBuilder::Uuid(builder), RawValue::Bytes(bytes)) => {
                let uuid = uuid::Uuid::from_slice(bytes).map_err(|_| mismatch())?;
                builder.append_value(uuid.hyphenated().to_string())
            }
            (ColumnBuilder::Binary(builder), RawValue::Bytes(bytes)) => builder.append_value(bytes),
            (ColumnBuilder::Jsonb(builder), RawValue::Bytes(bytes)) => {
                // Values stored as JSON text (before the binary form) are converted as they are read.
                let binary = Jsonb::from_stored(bytes).map_err(|_| mismatch())?;
                builder.append_value(binary.as_ref())
            }
            (ColumnBuilder::Date(builder), RawValue::Integer(value)) => {
                builder.append_value(i32::try_from(value).map_err(|_| mismatch())?)
            }
            (ColumnBuilder::Time(builder), RawValue::Integer(value)) => builder.append_value(value),
            (ColumnBuilder::Timestamp(builder, _), RawValue::Integer(value)) => {
                builder.append_value(value)
            }
            (ColumnBuilder::Interval(builder), RawValue::Interval(months, days, microseconds)) => {
                builder.append_value(IntervalMonthDayNano {
                    months,
                    days,
                    nanoseconds: microseconds.saturating_mul(1000),
                })
            }
            _ => return Err(mismatch()),
        }
        Ok(())
    }

    /// Appends a [`Value`] (already checked against the column type).
    pub fn append_value(&mut self, value: &Value) -> Result<()> {
        match value {
            Value::Null => {
                self.append_null();
                Ok(())
            }
            Value::Boolean(boolean) => self.append_raw(RawValue::Boolean(*boolean)),
            Value::Integer(integer) => self.append_raw(RawValue::Integer(*integer)),
            Value::Real(real) => self.append_raw(RawValue::Real(*real)),
            Value::Double(double) => self.append_raw(RawValue::Double(*double)),
            Value::Numeric { units, .. } => self.append_raw(RawValue::Numeric(*units)),
            Value::Text(text) => self.append_raw(RawValue::Bytes(text.as_bytes())),
            Value::Bytes(bytes) => self.append_raw(RawValue::Bytes(bytes)),
            Value::Interval {
                months,
                days,
                microseconds,
            } => self.append_raw(RawValue::Interval(*months, *days, *microseconds)),
            Value::Vector(elements) | Value::HalfVector(elements) => match self {
                ColumnBuilder::Vector(builder) => {
                    builder.append(elements);
                    Ok(())
                }
                _ => Err(Error::internal("vector value for a column of another type")),
            },
            Value::SparseVector(sparse) => match self {
                ColumnBuilder::SparseVector(values) => {
                    values.push(Some(sparse.clone()));
                    Ok(())
                }
                _ => Err(Error::internal(
                    "sparse vector value for a column of another type",
                )),
            },
        }
    }

    pub fn append_null(&mut self) {
        match self {
            ColumnBuilder::Boolean(builder) => builder.append_null(),
            ColumnBuilder::Int16(builder) => builder.append_null(),
            ColumnBuilder::Int32(builder) => builder.append_null(),
            ColumnBuilder::Int64(builder) => builder.append_null(),
            ColumnBuilder::Float32(builder) => builder.append_null(),
            ColumnBuilder::Float64(builder) => builder.append_null(),
            ColumnBuilder::Decimal(builder, ..) => builder.append_null(),
            ColumnBuilder::Text(builder) | ColumnBuilder::Uuid(builder) => builder.append_null(),
            ColumnBuilder::Binary(builder) => builder.append_null(),
            ColumnBuilder::Jsonb(builder) => builder.append_null(),
            ColumnBuilder::Json(builder) => builder.append_null(),
            ColumnBuilder::Vector(builder) => builder.append_null(),
            ColumnBuilder::SparseVector(values) => values.push(None),
            ColumnBuilder::Date(builder) => builder.append_null(),
            ColumnBuilder::Time(builder) => builder.append_null(),
            ColumnBuilder::Timestamp(builder, _) => builder.append_null(),
            ColumnBuilder::Interval(builder) => builder.append_null(),
        }
    }

    /// The finished array.
    pub fn finish(&mut self) -> Result<ArrayRef> {
        Ok(match self {
            ColumnBuilder::Boolean(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Int16(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Int32(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Int64(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Float32(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Float64(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Decimal(builder, precision, scale) => Arc::new(
                builder
                    .finish()
                    .with_precision_and_scale(*precision, *scale)?,
            ),
            ColumnBuilder::Text(builder) | ColumnBuilder::Uuid(builder) => {
                Arc::new(builder.finish())
            }
            ColumnBuilder::Binary(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Jsonb(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Json(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Vector(builder) => Arc::new(builder.finish()),
            ColumnBuilder::SparseVector(values) => {
                crate::sql::sparse_vector::build(&std::mem::take(values))
            }
            ColumnBuilder::Date(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Time(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Timestamp(builder, with_zone) => {
                let array = builder.finish();
                if *with_zone {
                    Arc::new(array.with_timezone(UTC))
                } else {
                    Arc::new(array)
                }
            }
            ColumnBuilder::Interval(builder) => Arc::new(builder.finish()),
        })
    }
}

/// Casts `array` to the Arrow type of `data_type`, failing (not nulling) on values that do not fit.
/// Text is read with PostgreSQL's input syntax where Arrow's differs (`BYTEA`, `INTERVAL`).
pub fn cast_to(array: &ArrayRef, data_type: DataType) -> Result<ArrayRef> {
    if let DataType::Vector(dimensions) = data_type {
        return crate::sql::vector::cast_array(array, dimensions);
    }
    if let DataType::HalfVector(dimensions) = data_type {
        return crate::sql::vector::cast_array_of(VectorKind::Half, array, dimensions);
    }
    if let DataType::SparseVector(dimensions) = data_type {
        return crate::sql::sparse_vector::cast_array(array, dimensions);
    }
    let target = arrow_type(data_type);
    if array.data_type() == &target {
        return Ok(array.clone());
    }
    if data_type == DataType::Json {
        return json_array(array);
    }
    if let Some(strings) = array.as_any().downcast_ref::<StringArray>() {
        match data_type {
            DataType::Jsonb => {
                let mut builder =
                    LargeBinaryBuilder::with_capacity(strings.len(), strings.len() * 32);
                for value in strings.iter() {
                    match value {
                        None => builder.append_null(),
                        Some(text) => builder.append_value(parse_jsonb(text)?),
                    }
                }
                return Ok(Arc::new(builder.finish()));
            }
            DataType::Bytea => {
                let mut builder = BinaryBuilder::with_capacity(strings.len(), strings.len() * 8);
                for value in strings.iter() {
                    match value {
                        None => builder.append_null(),
                        Some(text) => builder.append_value(parse_bytea(text)?),
                    }
                }
                return Ok(Arc::new(builder.finish()));
            }
            DataType::Interval => {
                let mut builder = IntervalMonthDayNanoBuilder::with_capacity(strings.len());
                for value in strings.iter() {
                    match value {
                        None => builder.append_null(),
                        Some(text) => {
                            let (months, days, microseconds) = parse_interval(text)?;
                            builder.append_value(IntervalMonthDayNano {
                                months,
                                days,
                                nanoseconds: microseconds.saturating_mul(1000),
                            });
                        }
                    }
                }
                return Ok(Arc::new(builder.finish()));
            }
            // PostgreSQL reads a date from a timestamp's text too (`2024-01-01 10:00`, or JDBC's
            // `2024-01-01 +00`): the date is the part before the time or zone.
            DataType::Date => {
                let trimmed: StringArray =
                    strings.iter().map(|value| value.map(date_part)).collect();
                let array: ArrayRef = Arc::new(trimmed);
                return cast_with_options(
                    &array,
                    &target,
                    &CastOptions {
                        safe: false,
                        ..CastOptions::default()
                    },
                )
                .map_err(|_| {
                    let shown = strings
                        .iter()
                        .flatten()
                        .find(|text| {
                            let array: ArrayRef = Arc::new(StringArray::from(vec![*text]));
                            cast_with_options(
                                &array,
                                &target,
                                &CastOptions {
                                    safe: false,
                                    ..CastOptions::default()
                                },
                            )
                            .is_err()
                        })
                        .unwrap_or_default();
                    Error::user(
                        "22007",
                        format!("invalid input syntax for type date: \"{shown}\""),
                    )
                });
            }
            _ => {}
        }
    }
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    cast_with_options(array, &target, &options).map_err(|error| {
        let text = error.to_string();
        let numeric_source = array.data_type().is_numeric();
        if text.contains("overflow")
            || text.contains("too large")
            || text.contains("out of range")
            || (numeric_source && text.contains("Can't cast value"))
        {
            Error::user(
                "22003",
                format!("value out of range for type {}", data_type.sql_name()),
            )
        } else if let Some(message) = crate::error::invalid_input_message(&text) {
            Error::user("22P02", message)
        } else {
            Error::user(
                "22P02",
                format!(
                    "invalid input syntax for type {}: {}",
                    data_type.sql_name(),
                    text.trim_start_matches("Cast error: ")
                ),
            )
        }
    })
}

/// Reads row `row` of `array` (already of the Arrow type of `data_type`) as a storable value, applying
/// PostgreSQL's input checks for the type.
pub fn value_at(array: &ArrayRef, row: usize, data_type: DataType) -> Result<Value> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    let any = array.as_any();
    let wrong = || {
        Error::internal(format!(
            "array of {:?} read as {data_type:?}",
            array.data_type()
        ))
    };
    Ok(match data_type {
        DataType::Boolean => Value::Boolean(
            any.downcast_ref::<BooleanArray>()
                .ok_or_else(wrong)?
                .value(row),
        ),
        DataType::SmallInt => Value::Integer(i64::from(
            any.downcast_ref::<Int16Array>()
                .ok_or_else(wrong)?
                .value(row),
        )),
        DataType::Integer => Value::Integer(i64::from(
            any.downcast_ref::<Int32Array>()
                .ok_or_else(wrong)?
                .value(row),
        )),
        DataType::BigInt => Value::Integer(
            any.downcast_ref::<Int64Array>()
                .ok_or_else(wrong)?
                .value(row),
        ),
        DataType::Real => Value::Real(
            any.downcast_ref::<Float32Array>()
                .ok_or_else(wrong)?
                .value(row),
        ),
        DataType::Double => Value::Double(
            any.downcast_ref::<Float64Array>()
                .ok_or_else(wrong)?
                .value(row),
        ),
        DataType::Numeric { scale, .. } => Value::Numeric {
            units: any
                .downcast_ref::<Decimal128Array>()
                .ok_or_else(wrong)?
                .value(row),
            scale,
        },
        DataType::Text => Value::Text(string_at(any, row).ok_or_else(wrong)?.to_string()),
        DataType::Varchar(length) => {
            let text = string_at(any, row).ok_or_else(wrong)?;
            Value::Text(check_length(text, length, false, data_type)?)
        }
        DataType::Char(length) => {
            let text = string_at(any, row).ok_or_else(wrong)?;
            Value::Text(check_length(text, Some(length), true, data_type)?)
        }
        DataType::Bit { length, varying } => Value::Text(crate::sql::bit_string::input(
            string_at(any, row).ok_or_else(wrong)?,
            length,
            varying,
        )?),
        DataType::Uuid => {
            Value::Bytes(parse_uuid(string_at(any, row).ok_or_else(wrong)?)?.to_vec())
        }
        DataType::Vector(_) => Value::Vector(crate::sql::vector::value_at(array, row)?),
        DataType::HalfVector(_) => Value::HalfVector(crate::sql::vector::value_at(array, row)?),
        DataType::SparseVector(_) => {
            Value::SparseVector(crate::sql::sparse_vector::value_at(array, row)?)
        }
        DataType::Json => Value::Text(
            any.downcast_ref::<LargeStringArray>()
                .ok_or_else(wrong)?
                .value(row)
                .to_string(),
        ),
        DataType::Jsonb => Value::Bytes(match any.downcast_ref::<LargeBinaryArray>() {
            Some(binary) => binary.value(row).to_vec(),
            None => parse_jsonb(string_at(any, row).ok_or_else(wrong)?)?,
        }),
        DataType::Bytea => Value::Bytes(
            any.downcast_ref::<BinaryArray>()
                .ok_or_else(wrong)?
                .value(row)
                .to_vec(),
        ),
        DataType::Date => Value::Integer(i64::from(
            any.downcast_ref::<Date32Array>()
                .ok_or_else(wrong)?
                .value(row),
        )),
        DataType::Time => Value::Integer(
            any.downcast_ref::<Time64MicrosecondArray>()
                .ok_or_else(wrong)?
                .value(row),
        ),
        DataType::Timestamp | DataType::TimestampTz => Value::Integer(
            any.downcast_ref::<TimestampMicrosecondArray>()
                .ok_or_else(wrong)?
                .value(row),
        ),
        DataType::Interval => {
            let interval = any
                .downcast_ref::<IntervalMonthDayNanoArray>()
                .ok_or_else(wrong)?
                .value(row);
            Value::Interval {
                months: interval.months,
                days: interval.days,
                microseconds: interval.nanoseconds / 1000,
            }
        }
    })
}

fn string_at(any: &dyn std::any::Any, row: usize) -> Option<&str> {
    any.downcast_ref::<StringArray>()
        .map(|array| array.value(row))
}

/// `VARCHAR(n)` and `CHAR(n)` input rules: too long is an error unless the excess is spaces (which are cut);
/// `CHAR(n)` is padded with spaces to `n`.
pub(crate) fn check_length(
    text: &str,
    length: Option<u32>,
    pad: bool,
    data_type: DataType,
) -> Result<String> {
    let Some(length) = length else {
        return Ok(text.to_string());
    };
    let length = length as usize;
    let count = text.chars().count();
    if count > length {
        let (kept, excess): (String, String) = {
            let split = text
                .char_indices()
                .nth(length)
                .map(|(at, _)| at)
                .unwrap_or(text.len());
            (text[..split].to_string(), text[split..].to_string())
        };
        if excess.chars().all(|character| character == ' ') {
            return Ok(kept);
        }
        return Err(Error::user(
            "22001",
            format!("value too long for type {}", data_type.sql_name()),
        ));
    }
    if pad && count < length {
        let mut padded = text.to_string();
        padded.extend(std::iter::repeat_n(' ', length - count));
        return Ok(padded);
    }
    Ok(text.to_string())
}

/// Parses a UUID in any of PostgreSQL's accepted spellings.
pub fn parse_uuid(text: &str) -> Result<[u8; 16]> {
    let trimmed = text.trim().trim_start_matches('{').trim_end_matches('}');
    uuid::Uuid::parse_str(trimmed)
        .map(|uuid| *uuid.as_bytes())
        .map_err(|_| {
            Error::user(
                "22P02",
                format!("invalid input syntax for type uuid: \"{text}\""),
            )
        })
}

/// `jsonb` input: JSON text parsed (PostgreSQL's grammar and errors) into the binary form.
pub fn parse_jsonb(text: &str) -> Result<Vec<u8>> {
    match qubedb_model::jsonb::parse(text) {
        Ok(json) => Ok(json.encode()),
        Err(error) => {
            let mut error = json_error(error);
            error.set_input(text);
            Err(error)
        }
    }
}

/// `json` input: the text itself, once it is checked to be JSON.
pub fn check_json(text: &str) -> Result<()> {
    qubedb_model::jsonb::validate_text(text).map_err(|error| {
        let mut error = json_error(error);
        error.set_input(text);
        error
    })
}

/// `array` as `json` values: text checked to be JSON, jsonb printed as its text (a `jsonb::json`
/// cast), anything else as its text form checked.
pub fn json_array(array: &ArrayRef) -> Result<ArrayRef> {
    let rows = array.len();
    let mut builder = LargeStringBuilder::with_capacity(rows, rows * 32);
    match array.data_type() {
        ArrowType::LargeUtf8 => return Ok(array.clone()),
        ArrowType::LargeBinary => {
            let binary = array.as_binary::<i64>();
            for row in 0..rows {
                if binary.is_null(row) {
                    builder.append_null();
                } else {
                    builder.append_value(Jsonb::new(binary.value(row)).to_text());
                }
            }
        }
        ArrowType::Null => builder.append_nulls(rows),
        _ => {
            let options = CastOptions {
                safe: false,
                ..CastOptions::default()
            };
            let text = cast_with_options(array, &ArrowType::Utf8, &options)
                .map_err(|error| Error::user("42846", error.to_string()))?;
            let strings = text.as_string::<i32>();
            for value in strings.iter() {
                match value {
                    None => builder.append_null(),
                    Some(text) => {
                        check_json(text)?;
                        builder.append_value(text);
                    }
                }
            }
        }
    }
    Ok(Arc::new(builder.finish()))
}

/// A JSON error as a SQL error (message, detail, hint and context as PostgreSQL reports them).
pub fn json_error(error: qubedb_model::jsonb::JsonError) -> Error {
    let mut converted = Error::user(error.code, error.message);
    converted.detail = error.detail;
    converted.hint = error.hint;
    converted.set_context(error.context);
    converted
}

/// `BYTEA` input: `\\x` followed by hex digits, or the escape format (`\\nnn` octal, `\\\\`).
pub fn parse_bytea(text: &str) -> Result<Vec<u8>> {
    let invalid = || {
        Error::user(
            "22P02",
            format!("invalid input syntax for type bytea: \"{text}\""),
        )
    };
    if let Some(hex) = text
        .strip_prefix("\\x")
        .or_else(|| text.strip_prefix("\\X"))
    {
        let digits: Vec<u8> = hex
            .bytes()
            .filter(|byte| !byte.is_ascii_whitespace())
            .collect();
        if !digits.len().is_multiple_of(2) {
            return Err(invalid());
        }
        return digits
            .chunks(2)
            .map(|pair| {
                let high = (pair[0] as char).to_digit(16).ok_or_else(invalid)?;
                let low = (pair[1] as char).to_digit(16).ok_or_else(invalid)?;
                Ok((high * 16 + low) as u8)
            })
            .collect();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] != b'\\' {
            out.push(bytes[index]);
            index += 1;
        } else if bytes.get(index + 1) == Some(&b'\\') {
            out.push(b'\\');
            index += 2;
        } else {
            let octal = bytes.get(index + 1..index + 4).ok_or_else(invalid)?;
            if !octal.iter().all(|digit| (b'0'..=b'7').contains(digit)) {
                return Err(invalid());
            }
            let value = octal
                .iter()
                .fold(0u32, |value, digit| value * 8 + u32::from(digit - b'0'));
            out.push(u8::try_from(value).map_err(|_| invalid())?);
            index += 4;
        }
    }
    Ok(out)
}

/// `INTERVAL` input in PostgreSQL's syntax: `[@] N unit [N unit ...] [[+|-]HH:MM[:SS[.frac]]] [ago]`, or
/// ISO 8601 `P1Y2M3DT4H5M6S`. Returns months, days and microseconds.
pub fn parse_interval(text: &str) -> Result<(i32, i32, i64)> {
    let invalid = || {
        Error::user(
            "22007",
            format!("invalid input syntax for type interval: \"{text}\""),
        )
    };
    let overflow = || Error::user("22015", "interval out of range");
    let lower = text.trim().to_lowercase();
    let mut months: f64 = 0.0;
    let mut days: f64 = 0.0;
    let mut microseconds: f64 = 0.0;
    if let Some(iso) = lower.strip_prefix('p') {
        let (date, time) = iso.split_once('t').unwrap_or((iso, ""));
        let mut number = String::new();
        for character in date.chars() {
            if character.is_ascii_digit() || character == '.' || character == '-' {
                number.push(character);
                continue;
            }
            let value: f64 = number.parse().map_err(|_| invalid())?;
            number.clear();
            match character {
                'y' => months += value * 12.0,
                'm' => months += value,
                'w' => days += value * 7.0,
                'd' => days += value,
                _ => return Err(invalid()),
            }
        }
        for character in time.chars() {
            if character.is_ascii_digit() || character == '.' || character == '-' {
                number.push(character);
                continue;
            }
            let value: f64 = number.parse().map_err(|_| invalid())?;
            number.clear();
            match character {
                'h' => microseconds += value * 3_600_000_000.0,
                'm' => microseconds += value * 60_000_000.0,
                's' => microseconds += value * 1_000_000.0,
                _ => return Err(invalid()),
            }
        }
        if !number.is_empty() {
            return Err(invalid());
        }
    } else {
        let mut words: Vec<&str> = lower.split_whitespace().collect();
        if words.first() == Some(&"@") {
            words.remove(0);
        }
        let ago = words.last() == Some(&"ago");
        if ago {
            words.pop();
        }
        if words.is_empty() {
            return Err(invalid());
        }
        let mut index = 0;
        while index < words.len() {
            let word = words[index];
            if word.contains(':') {
                let (sign, clock) = match word.strip_prefix('-') {
                    Some(rest) => (-1.0, rest),
                    None => (1.0, word.trim_start_matches('+')),
                };
                let parts: Vec<&str> = clock.split(':').collect();
                if parts.len() < 2 || parts.len() > 3 {
                    return Err(invalid());
                }
                let hours: f64 = parts[0].parse().map_err(|_| invalid())?;
                let minutes: f64 = parts[1].parse().map_err(|_| invalid())?;
                let seconds: f64 = match parts.get(2) {
                    Some(seconds) => seconds.parse().map_err(|_| invalid())?,
                    None => 0.0,
                };
                microseconds += sign
                    * ((hours * 3600.0 + minutes * 60.0) * 1_000_000.0 + seconds * 1_000_000.0);
                index += 1;
                continue;
            }
            // A number, possibly glued to its unit ("3d"), then the unit.
            let split = word
                .find(|character: char| character.is_ascii_alphabetic())
                .unwrap_or(word.len());
            let value: f64 = word[..split].parse().map_err(|_| invalid())?;
            let unit = if split < word.len() {
                word[split..].to_string()
            } else {
                index += 1;
                match words.get(index) {
                    Some(unit) => unit.to_string(),
                    None => {
                        // A bare number is seconds.
                        microseconds += value * 1_000_000.0;
                        break;
                    }
                }
            };
            match unit.trim_end_matches(',') {
                "millennium" | "millennia" | "millenniums" => months += value * 12_000.0,
                "century" | "centuries" | "c" => months += value * 1200.0,
                "decade" | "decades" | "dec" | "decs" => months += value * 120.0,
                "year" | "years" | "y" | "yr" | "yrs" => months += value * 12.0,
                "month" | "months" | "mon" | "mons" => months += value,
                "week" | "weeks" | "w" => days += value * 7.0,
                "day" | "days" | "d" => days += value,
                "hour" | "hours" | "h" | "hr" | "hrs" => microseconds += value * 3_600_000_000.0,
                "minute" | "minutes" | "min" | "mins" | "m" => microseconds += value * 60_000_000.0,
                "second" | "seconds" | "sec" | "secs" | "s" => microseconds += value * 1_000_000.0,
                "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => {
                    microseconds += value * 1000.0
                }
                "microsecond" | "microseconds" | "us" | "usec" | "usecs" => microseconds += value,
                _ => return Err(invalid()),
            }
            index += 1;
        }
        if ago {
            months = -months;
            days = -days;
            microseconds = -microseconds;
        }
    }
    // Fractions spill down as PostgreSQL does: a month fraction into days (30 a month), a day fraction
    // into microseconds.
    let whole_months = months.trunc();
    days += (months - whole_months) * 30.0;
    let whole_days = days.trunc();
    microseconds += (days - whole_days) * 86_400_000_000.0;
    let months = i32::try_from(whole_months as i64).map_err(|_| overflow())?;
    let days = i32::try_from(whole_days as i64).map_err(|_| overflow())?;
    if !microseconds.is_finite() || microseconds.abs() > 9.2e18 {
        return Err(overflow());
    }
    Ok((months, days, microseconds.round() as i64))
}

/// The date part of a date's input text: PostgreSQL also reads a date from a timestamp's text
/// (`2024-01-01 10:00`, `2024-01-01T10:00`, or JDBC's `2024-01-01 +00`); BC dates are left whole.
pub(crate) fn date_part(text: &str) -> &str {
    let text = text.trim();
    if text.ends_with("BC") {
        return text;
    }
    text.split([' ', 'T']).next().unwrap_or(text)
}
