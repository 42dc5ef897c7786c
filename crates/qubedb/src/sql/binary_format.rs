//! PostgreSQL's binary format of values (its `*send` / `*recv` functions), shared by the wire
//! protocol (result columns and Bind parameters in binary) and `COPY ... (FORMAT binary)`.
//!
//! Binary forms: big-endian integers and floats, dates as days and timestamps as microseconds since
//! 2000-01-01, `numeric` as base-10000 digits with weight, sign and display scale, `jsonb` as a version
//! byte and the text, `uuid` as 16 bytes, `interval` as microseconds, days and months, bit strings as
//! their length and packed bits, pgvector's `vector` / `halfvec` / `sparsevec` as pgvector sends them,
//! and one-dimensional arrays with their element type.
//!
//! Types are named by PostgreSQL OID ([`oid`]); [`field_type_oid`] gives the OID of a result column.
//! Writing takes the Arrow value and its text form (what [`crate::sql::format`] prints), used where the
//! binary form is built from the text. Reading gives a [`Param`]: integers, floats, booleans, text,
//! bytea and vectors as themselves; every other type as its text form with the type's SQL name
//! ([`Param::Typed`]), cast by the engine as a literal of that type would be — so a malformed value
//! fails with the engine's own error (22P02, 22007, ...).

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, IntervalMonthDayNanoArray, UInt8Array,
    UInt16Array, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, IntervalUnit, TimeUnit};

use bytes::BufMut;

use crate::Param;
use crate::error::{Error, Result};
use crate::sql::format::{format_date, format_interval, format_time, format_timestamp};

/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
const EPOCH_DAYS: i64 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const EPOCH_MICROSECONDS: i64 = EPOCH_DAYS * 86_400_000_000;

/// PostgreSQL's OIDs of the built-in types this module reads or writes.
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT2_VECTOR: u32 = 22;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const OID_VECTOR: u32 = 30;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const JSON_ARRAY: u32 = 199;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const BOOL_ARRAY: u32 = 1000;
    pub const INT2_ARRAY: u32 = 1005;
    pub const INT4_ARRAY: u32 = 1007;
    pub const TEXT_ARRAY: u32 = 1009;
    pub const INT8_ARRAY: u32 = 1016;
    pub const FLOAT4_ARRAY: u32 = 1021;
    pub const FLOAT8_ARRAY: u32 = 1022;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const NUMERIC_ARRAY: u32 = 1231;
    pub const BIT: u32 = 1560;
    pub const VARBIT: u32 = 1562;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
    pub const JSONB_ARRAY: u32 = 3807;
    /// pgvector's types, with QubeDB's fixed OIDs ([`crate::sql::system::VECTOR_OID`], ...).
    pub const VECTOR: u32 = crate::sql::system::VECTOR_OID as u32;
    pub const HALFVEC: u32 = crate::sql::system::HALFVEC_OID as u32;
    pub const SPARSEVEC: u32 = crate::sql::system::SPARSEVEC_OID as u32;
}

/// The Arrow field metadata key holding a column's SQL type name.
const TYPE_METADATA_KEY: &str = "qubedb.type";

/// The PostgreSQL type OID of a result column: from the SQL type it carries in its field metadata
/// (`qubedb.type`), else from the Arrow type of a computed value.
pub fn field_type_oid(field: &Field) -> u32 {
    field
        .metadata()
        .get(TYPE_METADATA_KEY)
        .and_then(|name| oid_of_sql_name(name))
        .unwrap_or_else(|| oid_of_arrow(field.data_type()))
}

fn oid_of_sql_name(name: &str) -> Option<u32> {
    let base = name.split('(').next().unwrap_or(name).trim();
    Some(match base {
        "boolean" => oid::BOOL,
        "smallint" => oid::INT2,
        "integer" => oid::INT4,
        "bigint" => oid::INT8,
        "real" => oid::FLOAT4,
        "double precision" => oid::FLOAT8,
        "numeric" => oid::NUMERIC,
        "text" => oid::TEXT,
        "character varying" => oid::VARCHAR,
        "character" => oid::BPCHAR,
        "bytea" => oid::BYTEA,
        "date" => oid::DATE,
        "time without time zone" => oid::TIME,
        "timestamp without time zone" => oid::TIMESTAMP,
        "timestamp with time zone" => oid::TIMESTAMPTZ,
        "interval" => oid::INTERVAL,
        "uuid" => oid::UUID,
        "jsonb" => oid::JSONB,
        "json" => oid::JSON,
        "oid" => oid::OID,
        "int2vector" => oid::INT2_VECTOR,
        "oidvector" => oid::OID_VECTOR,
        "vector" => oid::VECTOR,
        "halfvec" => oid::HALFVEC,
        "sparsevec" => oid::SPARSEVEC,
        "bit" => oid::BIT,
        "bit varying" => oid::VARBIT,
        _ => return None,
    })
}

fn oid_of_arrow(data_type: &ArrowType) -> u32 {
    match crate::sql::vector::kind_of(data_type) {
        Some(crate::VectorKind::Single) => return oid::VECTOR,
        Some(crate::VectorKind::Half) => return oid::HALFVEC,
        None => {}
    }
    if crate::sql::sparse_vector::is_sparse(data_type) {
        return oid::SPARSEVEC;
    }
    match data_type {
        ArrowType::Boolean => oid::BOOL,
        ArrowType::Int8 | ArrowType::Int16 | ArrowType::UInt8 => oid::INT2,
        ArrowType::Int32 | ArrowType::UInt16 => oid::INT4,
        ArrowType::Int64 | ArrowType::UInt32 => oid::INT8,
        ArrowType::UInt64 | ArrowType::Decimal128(..) | ArrowType::Decimal256(..) => oid::NUMERIC,
        ArrowType::Float16 | ArrowType::Float32 => oid::FLOAT4,
        ArrowType::Float64 => oid::FLOAT8,
        ArrowType::Utf8 | ArrowType::Utf8View => oid::TEXT,
        // json computes as its text in LargeUtf8, which no other type uses.
        ArrowType::LargeUtf8 => oid::JSON,
        ArrowType::Binary | ArrowType::BinaryView => oid::BYTEA,
        // jsonb computes in its binary form, the only LargeBinary values.
        ArrowType::LargeBinary => oid::JSONB,
        ArrowType::FixedSizeBinary(16) => oid::UUID,
        ArrowType::Date32 | ArrowType::Date64 => oid::DATE,
        ArrowType::Time32(_) | ArrowType::Time64(_) => oid::TIME,
        ArrowType::Timestamp(_, Some(_)) => oid::TIMESTAMPTZ,
        ArrowType::Timestamp(_, None) => oid::TIMESTAMP,
        ArrowType::Interval(_) | ArrowType::Duration(_) => oid::INTERVAL,
        ArrowType::List(inner) | ArrowType::LargeList(inner) => {
            match oid_of_arrow(inner.data_type()) {
                oid::BOOL => oid::BOOL_ARRAY,
                oid::INT2 => oid::INT2_ARRAY,
                oid::INT4 => oid::INT4_ARRAY,
                oid::INT8 => oid::INT8_ARRAY,
                oid::FLOAT4 => oid::FLOAT4_ARRAY,
                oid::FLOAT8 => oid::FLOAT8_ARRAY,
                oid::NUMERIC => oid::NUMERIC_ARRAY,
                oid::JSONB => oid::JSONB_ARRAY,
                oid::JSON => oid::JSON_ARRAY,
                _ => oid::TEXT_ARRAY,
            }
        }
        _ => oid::TEXT,
    }
}

fn invalid_binary(type_name: &str) -> Error {
    Error::user(
        "22P03",
        format!("incorrect binary data format for type {type_name}"),
    )
}

/// Appends value `row` of `array` (not NULL) in binary format for a column of PostgreSQL type
/// OID `type_oid`; `text` is the value's text form, used where the binary form is built from it.
pub fn encode(
    array: &ArrayRef,
    row: usize,
    type_oid: u32,
    text: &str,
    out: &mut impl BufMut,
) -> Result<()> {
    let any = array.as_any();
    macro_rules! primitive {
        ($array:ty, $put:ident, $cast:ty) => {
            match any.downcast_ref::<$array>() {
                Some(values) => out.$put(values.value(row) as $cast),
                None => return Err(unexpected(array)),
            }
        };
    }
    match array.data_type() {
        ArrowType::Boolean => match any.downcast_ref::<BooleanArray>() {
            Some(values) => out.put_u8(u8::from(values.value(row))),
            None => return Err(unexpected(array)),
        },
        ArrowType::Int8 => primitive!(Int8Array, put_i16, i16),
        ArrowType::UInt8 => primitive!(UInt8Array, put_i16, i16),
        ArrowType::Int16 => primitive!(Int16Array, put_i16, i16),
        ArrowType::UInt16 => primitive!(UInt16Array, put_i32, i32),
        ArrowType::Int32 => primitive!(Int32Array, put_i32, i32),
        ArrowType::UInt32 => primitive!(UInt32Array, put_i64, i64),
        // System catalogs carry OIDs as bigint columns typed `oid`: 4 bytes on the wire.
        ArrowType::Int64 if type_oid == oid::OID => primitive!(Int64Array, put_u32, u32),
        ArrowType::Int64 => primitive!(Int64Array, put_i64, i64),
        ArrowType::Float16 => {
            let values = array.as_primitive::<crate::arrow::datatypes::Float16Type>();
            out.put_f32(values.value(row).to_f32());
        }
        ArrowType::Float32 => primitive!(Float32Array, put_f32, f32),
        ArrowType::Float64 => primitive!(Float64Array, put_f64, f64),
        ArrowType::UInt64 | ArrowType::Decimal128(..) | ArrowType::Decimal256(..) => {
            encode_numeric(text, out)?
        }
        ArrowType::Binary => match any.downcast_ref::<BinaryArray>() {
            Some(values) => out.put_slice(values.value(row)),
            None => return Err(unexpected(array)),
        },
        // jsonb: version 1 and the text, as PostgreSQL's jsonb_send.
        ArrowType::LargeBinary => encode_text_as_binary(oid::JSONB, text, out)?,
        ArrowType::BinaryView => out.put_slice(array.as_binary_view().value(row)),
        ArrowType::FixedSizeBinary(_) => out.put_slice(array.as_fixed_size_binary().value(row)),
        ArrowType::Date32 => match any.downcast_ref::<Date32Array>() {
            Some(values) => out.put_i32((i64::from(values.value(row)) - EPOCH_DAYS) as i32),
            None => return Err(unexpected(array)),
        },
        ArrowType::Timestamp(unit, _) => {
            let value = array
                .as_primitive_opt::<crate::arrow::datatypes::Int64Type>()
                .map(|values| values.value(row))
                .or_else(|| timestamp_value(array, row))
                .ok_or_else(|| unexpected(array))?;
            let microseconds = match unit {
                TimeUnit::Second => value.saturating_mul(1_000_000),
                TimeUnit::Millisecond => value.saturating_mul(1_000),
                TimeUnit::Microsecond => value,
                TimeUnit::Nanosecond => value.div_euclid(1_000),
            };
            out.put_i64(microseconds - EPOCH_MICROSECONDS);
        }
        ArrowType::Time64(TimeUnit::Microsecond) => {
            let values = array.as_primitive::<crate::arrow::datatypes::Time64MicrosecondType>();
            out.put_i64(values.value(row));
        }
        ArrowType::Time64(TimeUnit::Nanosecond) => {
            let values = array.as_primitive::<crate::arrow::datatypes::Time64NanosecondType>();
            out.put_i64(values.value(row) / 1_000);
        }
        ArrowType::Interval(IntervalUnit::MonthDayNano) => {
            match any.downcast_ref::<IntervalMonthDayNanoArray>() {
                Some(values) => {
                    let value = values.value(row);
                    out.put_i64(value.nanoseconds / 1_000);
                    out.put_i32(value.days);
                    out.put_i32(value.months);
                }
                None => return Err(unexpected(array)),
            }
        }
        // pgvector's vector_send (halfvec_send): dimensions (u16), an unused u16, then the
        // elements (as halves).
        data_type if crate::sql::vector::is_vector(data_type) => {
            let vectors =
                crate::sql::vector::Vectors::new(array.as_ref()).map_err(|_| unexpected(array))?;
            let elements = vectors.get(row).ok_or_else(|| unexpected(array))?;
            out.put_u16(elements.len() as u16);
            out.put_u16(0);
            for &element in elements {
                match vectors.kind {
                    crate::VectorKind::Single => out.put_f32(element),
                    crate::VectorKind::Half => out.put_u16(half::f16::from_f32(element).to_bits()),
                }
            }
        }
        // pgvector's sparsevec_send: dimensions, count, an unused int4, the indices (from 0), the
        // values.
        data_type if crate::sql::sparse_vector::is_sparse(data_type) => {
            let sparse = crate::sql::sparse_vector::SparseVectors::new(array.as_ref())
                .map_err(|_| unexpected(array))?
                .get(row)
                .ok_or_else(|| unexpected(array))?;
            out.put_i32(sparse.dimensions as i32);
            out.put_i32(sparse.indices.len() as i32);
            out.put_i32(0);
            for &index in &sparse.indices {
                out.put_i32(index as i32);
            }
            for &value in &sparse.values {
                out.put_f32(value);
            }
        }
        ArrowType::List(_) | ArrowType::LargeList(_) => encode_array(array, row, type_oid, out)?,
        _ => encode_text_as_binary(type_oid, text, out)?,
    }
    Ok(())
}

/// A timestamp's raw value, for any timestamp unit.
fn timestamp_value(array: &ArrayRef, row: usize) -> Option<i64> {
    use crate::arrow::datatypes::{
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    array
        .as_primitive_opt::<TimestampMicrosecondType>()
        .map(|values| values.value(row))
        .or_else(|| {
            array
                .as_primitive_opt::<TimestampMillisecondType>()
                .map(|values| values.value(row))
        })
        .or_else(|| {
            array
                .as_primitive_opt::<TimestampSecondType>()
                .map(|values| values.value(row))
        })
        .or_else(|| {
            array
                .as_primitive_opt::<TimestampNanosecondType>()
                .map(|values| values.value(row))
        })
}

fn unexpected(array: &ArrayRef) -> Error {
    Error::internal(format!(
        "no binary output for values of Arrow type {}",
        array.data_type()
    ))
}

/// Binary forms built from the text: text types as their bytes, `jsonb` with its version byte, `uuid`
/// as 16 bytes.
fn encode_text_as_binary(type_oid: u32, text: &str, out: &mut impl BufMut) -> Result<()> {
    if type_oid == oid::JSONB {
        out.put_u8(1);
        out.put_slice(text.as_bytes());
    } else if type_oid == oid::UUID {
        let bytes = crate::sql::convert::parse_uuid(text)
            .map_err(|error| Error::user("22P02", error.message))?;
        out.put_slice(&bytes);
    } else if type_oid == oid::BIT || type_oid == oid::VARBIT {
        // The bit count, then the bits packed, first bit highest, the last byte padded with zeros.
        let bits = text.as_bytes();
        let count = i32::try_from(bits.len())
            .map_err(|_| Error::user("54000", "bit string too long to send"))?;
        out.put_i32(count);
        for chunk in bits.chunks(8) {
            let mut byte = 0u8;
            for (position, &bit) in chunk.iter().enumerate() {
                if bit == b'1' {
                    byte |= 0x80 >> position;
                }
            }
            out.put_u8(byte);
        }
    } else {
        out.put_slice(text.as_bytes());
    }
    Ok(())
}

/// A one-dimensional array: dimensions, null flag, element type, then each element's length and bytes.
fn encode_array(array: &ArrayRef, row: usize, type_oid: u32, out: &mut impl BufMut) -> Result<()> {
    let elements: ArrayRef = match array.data_type() {
        ArrowType::List(_) => array.as_list::<i32>().value(row),
        _ => array.as_list::<i64>().value(row),
    };
    let element_type = crate::sql::system::array_element_oid(i64::from(type_oid))
        .and_then(|element| u32::try_from(element).ok())
        .unwrap_or(oid::TEXT);
    let field = crate::arrow::datatypes::Field::new("element", elements.data_type().clone(), true);
    let formatter = crate::sql::format::ColumnFormatter::new(&elements, field.metadata());
    out.put_i32(1);
    out.put_i32(i32::from(elements.null_count() > 0));
    out.put_u32(element_type);
    out.put_i32(elements.len() as i32);
    out.put_i32(1);
    for index in 0..elements.len() {
        match formatter.format(index) {
            None => out.put_i32(-1),
            Some(text) => {
                let mut value = Vec::new();
                encode(&elements, index, element_type, &text, &mut value)?;
                out.put_i32(value.len() as i32);
                out.put_slice(&value);
            }
        }
    }
    Ok(())
}

/// `numeric` from its text (`-12.340`, `NaN`, `Infinity`): base-10000 digits, weight, sign, scale.
pub fn encode_numeric(text: &str, out: &mut impl BufMut) -> Result<()> {
    const POSITIVE: u16 = 0x0000;
    const NEGATIVE: u16 = 0x4000;
    let special = match text {
        "NaN" => Some(0xC000u16),
        "Infinity" => Some(0xD000),
        "-Infinity" => Some(0xF000),
        _ => None,
    };
    if let Some(sign) = special {
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(sign);
        out.put_u16(0);
        return Ok(());
    }
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (NEGATIVE, rest),
        None => (POSITIVE, text),
    };
    let (integer, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if !integer
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return Err(Error::internal(format!(
            "cannot send \"{text}\" as numeric"
        )));
    }
    let display_scale = fraction.len() as u16;
    // Integer part grouped from the right, fraction from the left, in base 10000.
    let integer = integer.trim_start_matches('0');
    let pad = (4 - integer.len() % 4) % 4;
    let integer = format!("{}{integer}", "0".repeat(pad));
    let fraction_pad = (4 - fraction.len() % 4) % 4;
    let fraction = format!("{fraction}{}", "0".repeat(fraction_pad));
    let group = |chunk: &[u8]| -> i16 {
        chunk
            .iter()
            .fold(0i16, |value, digit| value * 10 + i16::from(digit - b'0'))
    };
    let integer_groups: Vec<i16> = integer.as_bytes().chunks(4).map(group).collect();
    let fraction_groups: Vec<i16> = fraction.as_bytes().chunks(4).map(group).collect();
    let mut weight = integer_groups.len() as i16 - 1;
    let mut groups: Vec<i16> = integer_groups.into_iter().chain(fraction_groups).collect();
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(groups.len() as i16);
    out.put_i16(weight);
    out.put_u16(if groups.is_empty() { POSITIVE } else { sign });
    out.put_u16(display_scale);
    for group in groups {
        out.put_i16(group);
    }
    Ok(())
}

/// `numeric`'s binary form back to its text.
pub fn decode_numeric(bytes: &[u8]) -> Result<String> {
    let field = |at: usize| -> Result<u16> {
        bytes
            .get(at..at + 2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .ok_or_else(|| invalid_binary("numeric"))
    };
    let count = field(0)? as usize;
    let weight = field(2)? as i16 as i64;
    let sign = field(4)?;
    let scale = field(6)? as usize;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return Err(invalid_binary("numeric")),
    }
    if bytes.len() != 8 + 2 * count {
        return Err(invalid_binary("numeric"));
    }
    let groups: Vec<u16> = (0..count)
        .map(|index| field(8 + 2 * index))
        .collect::<Result<_>>()?;
    if groups.iter().any(|&group| group > 9999) {
        return Err(invalid_binary("numeric"));
    }
    let group_at = |position: i64| -> u16 {
        // Group `position` counts from the first stored group, which has weight `weight`.
        usize::try_from(position)
            .ok()
            .and_then(|index| groups.get(index))
            .copied()
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == 0x4000 && !groups.is_empty() {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for position in 0..=weight {
            let group = group_at(position);
            if position == 0 {
                text.push_str(&group.to_string());
            } else {
                text.push_str(&format!("{group:04}"));
            }
        }
    }
    if scale > 0 {
        let mut fraction = String::new();
        let mut position = weight + 1;
        while fraction.len() < scale {
            fraction.push_str(&format!("{:04}", group_at(position)));
            position += 1;
        }
        fraction.truncate(scale);
        text.push('.');
        text.push_str(&fraction);
    }
    Ok(text)
}

/// The SQL type name a parameter of type OID `type_oid` is bound as; `None` for the text types (bound as an
/// untyped literal, as PostgreSQL's `unknown`) and bytea.
pub fn parameter_type_name(type_oid: u32) -> Option<&'static str> {
    Some(match type_oid {
        oid::BOOL => "boolean",
        oid::INT2 => "smallint",
        oid::INT4 => "integer",
        oid::INT8 => "bigint",
        oid::OID => "bigint",
        oid::FLOAT4 => "real",
        oid::FLOAT8 => "double precision",
        oid::NUMERIC => "numeric",
        oid::DATE => "date",
        oid::TIME => "time",
        oid::TIMESTAMP => "timestamp",
        oid::TIMESTAMPTZ => "timestamptz",
        oid::INTERVAL => "interval",
        oid::UUID => "uuid",
        oid::JSONB => "jsonb",
        _ if is_vector_type(type_oid) => "vector",
        _ if is_halfvec_type(type_oid) => "halfvec",
        _ if is_sparsevec_type(type_oid) => "sparsevec",
        _ => return None,
    })
}

/// A Bind parameter (`None` for NULL) of type OID `type_oid` in text (`binary == false`) or binary format.
pub fn decode_parameter(bytes: Option<&[u8]>, binary: bool, type_oid: u32) -> Result<Param> {
    let Some(bytes) = bytes else {
        return Ok(Param::Null);
    };
    if !binary {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::user("22021", "invalid byte sequence for encoding \"UTF8\""))?;
        if type_oid == oid::BYTEA {
            return crate::sql::convert::parse_bytea(text)
                .map(Param::Bytes)
                .map_err(|error| Error::user("22P02", error.message));
        }
        return Ok(match parameter_type_name(type_oid) {
            Some(type_name) => Param::Typed {
                text: text.to_string(),
                type_name: type_name.to_string(),
            },
            None => Param::Text(text.to_string()),
        });
    }
    decode_binary(bytes, type_oid)
}

fn fixed<const N: usize>(bytes: &[u8], type_name: &str) -> Result<[u8; N]> {
    bytes.try_into().map_err(|_| invalid_binary(type_name))
}

fn typed(text: String, type_name: &str) -> Param {
    Param::Typed {
        text,
        type_name: type_name.to_string(),
    }
}

fn is_vector_type(type_oid: u32) -> bool {
    i64::from(type_oid) == crate::sql::system::VECTOR_OID
}

fn is_halfvec_type(type_oid: u32) -> bool {
    i64::from(type_oid) == crate::sql::system::HALFVEC_OID
}

fn is_sparsevec_type(type_oid: u32) -> bool {
    i64::from(type_oid) == crate::sql::system::SPARSEVEC_OID
}

/// pgvector's binary sparse vector (`sparsevec_recv`): dimensions, count and an unused word (int4
/// each), the indices (int4, from 0), the values (float4); bound as its text form.
fn decode_sparse_vector(bytes: &[u8]) -> Result<Param> {
    let invalid = || invalid_binary("sparsevec");
    let word = |at: usize| -> Result<[u8; 4]> {
        bytes
            .get(at..at + 4)
            .and_then(|word| word.try_into().ok())
            .ok_or_else(invalid)
    };
    let dimensions = i32::from_be_bytes(word(0)?);
    let count = usize::try_from(i32::from_be_bytes(word(4)?)).map_err(|_| invalid())?;
    if bytes.len() != 12 + count * 8 || dimensions < 1 {
        return Err(invalid());
    }
    let mut sparse = crate::SparseVector {
        dimensions: dimensions as u32,
        ..Default::default()
    };
    for position in 0..count {
        let index = i32::from_be_bytes(word(12 + position * 4)?);
        sparse
            .indices
            .push(u32::try_from(index).map_err(|_| invalid())?);
        sparse
            .values
            .push(f32::from_be_bytes(word(12 + count * 4 + position * 4)?));
    }
    if !sparse.is_well_formed() {
        return Err(invalid());
    }
    Ok(typed(
        crate::sql::sparse_vector::format(&sparse),
        "sparsevec",
    ))
}

/// pgvector's binary vector (`vector_recv`, `halfvec_recv`): dimensions (u16), an unused u16, the
/// elements (float4s, or halves for halfvec).
fn decode_vector(bytes: &[u8], kind: crate::VectorKind) -> Result<Param> {
    let invalid = || invalid_binary(kind.type_name());
    let header = bytes.get(..4).ok_or_else(invalid)?;
    let dimensions = usize::from(u16::from_be_bytes([header[0], header[1]]));
    let body = &bytes[4..];
    let elements: Vec<f32> = match kind {
        crate::VectorKind::Single if body.len() == dimensions * 4 => body
            .chunks_exact(4)
            .map(|chunk| f32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .collect(),
        crate::VectorKind::Half if body.len() == dimensions * 2 => body
            .chunks_exact(2)
            .map(|chunk| half::f16::from_bits(u16::from_be_bytes([chunk[0], chunk[1]])).to_f32())
            .collect(),
        _ => return Err(invalid()),
    };
    Ok(Param::Vector(elements))
}

fn decode_binary(bytes: &[u8], type_oid: u32) -> Result<Param> {
    if is_vector_type(type_oid) {
        return decode_vector(bytes, crate::VectorKind::Single);
    }
    if is_halfvec_type(type_oid) {
        return decode_vector(bytes, crate::VectorKind::Half);
    }
    if is_sparsevec_type(type_oid) {
        return decode_sparse_vector(bytes);
    }
    let utf8 = |bytes: &[u8]| {
        String::from_utf8(bytes.to_vec())
            .map_err(|_| Error::user("22021", "invalid byte sequence for encoding \"UTF8\""))
    };
    Ok(match type_oid {
        oid::BOOL => Param::Boolean(fixed::<1>(bytes, "boolean")?[0] != 0),
        oid::INT2 => Param::Integer(i64::from(i16::from_be_bytes(fixed(bytes, "smallint")?))),
        oid::INT4 => Param::Integer(i64::from(i32::from_be_bytes(fixed(bytes, "integer")?))),
        oid::OID => Param::Integer(i64::from(u32::from_be_bytes(fixed(bytes, "oid")?))),
        oid::INT8 => Param::Integer(i64::from_be_bytes(fixed(bytes, "bigint")?)),
        oid::FLOAT4 => {
            let value = f32::from_be_bytes(fixed(bytes, "real")?);
            let text = if value.is_nan() {
                "NaN".to_string()
            } else if value.is_infinite() {
                if value > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
            } else {
                value.to_string()
            };
            typed(text, "real")
        }
        oid::FLOAT8 => Param::Double(f64::from_be_bytes(fixed(bytes, "double precision")?)),
        oid::NUMERIC => typed(decode_numeric(bytes)?, "numeric"),
        oid::BYTEA => Param::Bytes(bytes.to_vec()),
        oid::DATE => {
            let days = i32::from_be_bytes(fixed(bytes, "date")?);
            let text = match days {
                i32::MAX => "infinity".to_string(),
                i32::MIN => "-infinity".to_string(),
                days => format_date(i64::from(days) + EPOCH_DAYS),
            };
            typed(text, "date")
        }
        oid::TIMESTAMP | oid::TIMESTAMPTZ => {
            let microseconds = i64::from_be_bytes(fixed(bytes, "timestamp")?);
            let zone = if type_oid == oid::TIMESTAMPTZ {
                "+00"
            } else {
                ""
            };
            let text = match microseconds {
                i64::MAX => "infinity".to_string(),
                i64::MIN => "-infinity".to_string(),
                value => {
                    let text = format_timestamp(value.saturating_add(EPOCH_MICROSECONDS));
                    match text.strip_suffix(" BC") {
                        Some(date) => format!("{date}{zone} BC"),
                        None => format!("{text}{zone}"),
                    }
                }
            };
            typed(
                text,
                if zone.is_empty() {
                    "timestamp"
                } else {
                    "timestamptz"
                },
            )
        }
        oid::TIME => {
            let microseconds = i64::from_be_bytes(fixed(bytes, "time")?);
            if !(0..=86_400_000_000).contains(&microseconds) {
                return Err(invalid_binary("time"));
            }
            typed(format_time(microseconds), "time")
        }
        oid::INTERVAL => {
            let raw: [u8; 16] = fixed(bytes, "interval")?;
            let microseconds = i64::from_be_bytes(raw[0..8].try_into().expect("8 bytes"));
            let days = i32::from_be_bytes(raw[8..12].try_into().expect("4 bytes"));
            let months = i32::from_be_bytes(raw[12..16].try_into().expect("4 bytes"));
            typed(format_interval(months, days, microseconds), "interval")
        }
        oid::UUID => {
            let raw: [u8; 16] = fixed(bytes, "uuid")?;
            let hex: String = raw.iter().map(|byte| format!("{byte:02x}")).collect();
            typed(
                format!(
                    "{}-{}-{}-{}-{}",
                    &hex[0..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..32]
                ),
                "uuid",
            )
        }
        oid::JSONB => match bytes.split_first() {
            Some((1, text)) => typed(utf8(text)?, "jsonb"),
            _ => return Err(invalid_binary("jsonb")),
        },
        oid::BIT | oid::VARBIT => {
            let name = if type_oid == oid::BIT {
                "bit"
            } else {
                "varbit"
            };
            let (count, packed) = bytes
                .split_first_chunk::<4>()
                .ok_or_else(|| invalid_binary(name))?;
            let count =
                usize::try_from(i32::from_be_bytes(*count)).map_err(|_| invalid_binary(name))?;
            if packed.len() != count.div_ceil(8) {
                return Err(invalid_binary(name));
            }
            let bits: String = (0..count)
                .map(|bit| {
                    if packed[bit / 8] & (0x80 >> (bit % 8)) != 0 {
                        '1'
                    } else {
                        '0'
                    }
                })
                .collect();
            // As `varbit` either way: `::bit` alone would mean `bit(1)`.
            typed(bits, "varbit")
        }
        oid::TEXT
        | oid::VARCHAR
        | oid::BPCHAR
        | oid::NAME
        | oid::UNKNOWN
        | oid::JSON
        | oid::XML => Param::Text(utf8(bytes)?),
        _ => {
            return Err(Error::user(
                "0A000",
                format!(
                    "binary parameters of type {} are not supported",
                    crate::sql::system::format_type(i64::from(type_oid), None)
                        .unwrap_or_else(|| format!("with OID {type_oid}"))
                ),
            ));
        }
    })
}
