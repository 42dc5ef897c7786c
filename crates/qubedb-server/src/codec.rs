//! Values on the wire: result columns in PostgreSQL's text or binary format, and Bind parameters from
//! either format into [`Param`]s.
//!
//! Text is what the engine prints ([`qubedb::sql::format`]). Binary follows PostgreSQL's `*send` /
//! `*recv` functions: big-endian integers and floats, dates as days and timestamps as microseconds since
//! 2000-01-01, `numeric` as base-10000 digits with weight, sign and display scale, `jsonb` as a version
//! byte and the text, `uuid` as 16 bytes, `interval` as microseconds, days and months, and
//! one-dimensional arrays with their element type.
//!
//! A parameter arrives as bytes with a format and the type the statement gives it (declared by the
//! client or inferred by the engine). Integers, floats, booleans, text and bytea become the matching
//! [`Param`]; every other type becomes its text form with the type's SQL name ([`Param::Typed`]), cast by
//! the engine as a literal of that type would be — so a malformed value fails with the engine's own
//! error (22P02, 22007, ...).

use bytes::{BufMut, BytesMut};
use pgwire::api::Type;
use qubedb::Param;
use qubedb::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, IntervalMonthDayNanoArray, UInt8Array,
    UInt16Array, UInt32Array,
};
use qubedb::arrow::datatypes::{DataType as ArrowType, IntervalUnit, TimeUnit};
use qubedb::sql::format::{format_date, format_interval, format_time, format_timestamp};

/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
const EPOCH_DAYS: i64 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const EPOCH_MICROSECONDS: i64 = EPOCH_DAYS * 86_400_000_000;

/// Why a value could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    /// SQLSTATE.
    pub code: &'static str,
    pub message: String,
}

impl CodecError {
    fn new(code: &'static str, message: impl Into<String>) -> CodecError {
        CodecError {
            code,
            message: message.into(),
        }
    }
}

fn invalid_binary(type_name: &str) -> CodecError {
    CodecError::new(
        "22P03",
        format!("incorrect binary data format in bind parameter of type {type_name}"),
    )
}

/// Appends value `row` of `array` (not NULL) in binary format for a column of PostgreSQL type
/// `pg_type`; `text` is the value's text form, used where the binary form is built from it.
pub fn encode_binary(
    array: &ArrayRef,
    row: usize,
    pg_type: &Type,
    text: &str,
    out: &mut BytesMut,
) -> Result<(), CodecError> {
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
        ArrowType::Int64 if *pg_type == Type::OID => primitive!(Int64Array, put_u32, u32),
        ArrowType::Int64 => primitive!(Int64Array, put_i64, i64),
        ArrowType::Float16 => {
            let values = array.as_primitive::<qubedb::arrow::datatypes::Float16Type>();
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
        ArrowType::LargeBinary => encode_text_as_binary(&Type::JSONB, text, out)?,
        ArrowType::BinaryView => out.put_slice(array.as_binary_view().value(row)),
        ArrowType::FixedSizeBinary(_) => out.put_slice(array.as_fixed_size_binary().value(row)),
        ArrowType::Date32 => match any.downcast_ref::<Date32Array>() {
            Some(values) => out.put_i32((i64::from(values.value(row)) - EPOCH_DAYS) as i32),
            None => return Err(unexpected(array)),
        },
        ArrowType::Timestamp(unit, _) => {
            let value = array
                .as_primitive_opt::<qubedb::arrow::datatypes::Int64Type>()
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
            let values = array.as_primitive::<qubedb::arrow::datatypes::Time64MicrosecondType>();
            out.put_i64(values.value(row));
        }
        ArrowType::Time64(TimeUnit::Nanosecond) => {
            let values = array.as_primitive::<qubedb::arrow::datatypes::Time64NanosecondType>();
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
        data_type if qubedb::sql::vector::is_vector(data_type) => {
            let vectors =
                qubedb::sql::vector::Vectors::new(array.as_ref()).map_err(|_| unexpected(array))?;
            let elements = vectors.get(row).ok_or_else(|| unexpected(array))?;
            out.put_u16(elements.len() as u16);
            out.put_u16(0);
            for &element in elements {
                match vectors.kind {
                    qubedb::VectorKind::Single => out.put_f32(element),
                    qubedb::VectorKind::Half => out.put_u16(half::f16::from_f32(element).to_bits()),
                }
            }
        }
        // pgvector's sparsevec_send: dimensions, count, an unused int4, the indices (from 0), the
        // values.
        data_type if qubedb::sql::sparse_vector::is_sparse(data_type) => {
            let sparse = qubedb::sql::sparse_vector::SparseVectors::new(array.as_ref())
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
        ArrowType::List(_) | ArrowType::LargeList(_) => encode_array(array, row, pg_type, out)?,
        _ => encode_text_as_binary(pg_type, text, out)?,
    }
    Ok(())
}

/// A timestamp's raw value, for any timestamp unit.
fn timestamp_value(array: &ArrayRef, row: usize) -> Option<i64> {
    use qubedb::arrow::datatypes::{
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

fn unexpected(array: &ArrayRef) -> CodecError {
    CodecError::new(
        "XX000",
        format!(
            "no binary output for values of Arrow type {}",
            array.data_type()
        ),
    )
}

/// Binary forms built from the text: text types as their bytes, `jsonb` with its version byte, `uuid`
/// as 16 bytes.
fn encode_text_as_binary(pg_type: &Type, text: &str, out: &mut BytesMut) -> Result<(), CodecError> {
    if *pg_type == Type::JSONB {
        out.put_u8(1);
        out.put_slice(text.as_bytes());
    } else if *pg_type == Type::UUID {
        let bytes = qubedb::sql::convert::parse_uuid(text)
            .map_err(|error| CodecError::new("22P02", error.message))?;
        out.put_slice(&bytes);
    } else if *pg_type == Type::BIT || *pg_type == Type::VARBIT {
        // The bit count, then the bits packed, first bit highest, the last byte padded with zeros.
        let bits = text.as_bytes();
        let count = i32::try_from(bits.len())
            .map_err(|_| CodecError::new("54000", "bit string too long to send"))?;
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
fn encode_array(
    array: &ArrayRef,
    row: usize,
    pg_type: &Type,
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    let elements: ArrayRef = match array.data_type() {
        ArrowType::List(_) => array.as_list::<i32>().value(row),
        _ => array.as_list::<i64>().value(row),
    };
    let element_type = match pg_type.kind() {
        postgres_types::Kind::Array(element) => element.clone(),
        _ => Type::TEXT,
    };
    let field = qubedb::arrow::datatypes::Field::new("element", elements.data_type().clone(), true);
    let formatter = qubedb::sql::format::ColumnFormatter::new(&elements, field.metadata());
    out.put_i32(1);
    out.put_i32(i32::from(elements.null_count() > 0));
    out.put_u32(element_type.oid());
    out.put_i32(elements.len() as i32);
    out.put_i32(1);
    for index in 0..elements.len() {
        match formatter.format(index) {
            None => out.put_i32(-1),
            Some(text) => {
                let mut value = BytesMut::new();
                encode_binary(&elements, index, &element_type, &text, &mut value)?;
                out.put_i32(value.len() as i32);
                out.put_slice(&value);
            }
        }
    }
    Ok(())
}

/// `numeric` from its text (`-12.340`, `NaN`, `Infinity`): base-10000 digits, weight, sign, scale.
pub fn encode_numeric(text: &str, out: &mut BytesMut) -> Result<(), CodecError> {
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
        return Err(CodecError::new(
            "XX000",
            format!("cannot send \"{text}\" as numeric"),
        ));
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
pub fn decode_numeric(bytes: &[u8]) -> Result<String, CodecError> {
    let field = |at: usize| -> Result<u16, CodecError> {
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
        .collect::<Result<_, _>>()?;
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

/// The SQL type name a parameter of `pg_type` is bound as; `None` for the text types (bound as an
/// untyped literal, as PostgreSQL's `unknown`) and bytea.
pub fn parameter_type_name(pg_type: &Type) -> Option<&'static str> {
    Some(match *pg_type {
        Type::BOOL => "boolean",
        Type::INT2 => "smallint",
        Type::INT4 => "integer",
        Type::INT8 => "bigint",
        Type::OID => "bigint",
        Type::FLOAT4 => "real",
        Type::FLOAT8 => "double precision",
        Type::NUMERIC => "numeric",
        Type::DATE => "date",
        Type::TIME => "time",
        Type::TIMESTAMP => "timestamp",
        Type::TIMESTAMPTZ => "timestamptz",
        Type::INTERVAL => "interval",
        Type::UUID => "uuid",
        Type::JSONB => "jsonb",
        _ if is_vector_type(pg_type) => "vector",
        _ if is_halfvec_type(pg_type) => "halfvec",
        _ if is_sparsevec_type(pg_type) => "sparsevec",
        _ => return None,
    })
}

/// A Bind parameter (`None` for NULL) of type `pg_type` in text (`binary == false`) or binary format.
pub fn decode_parameter(
    bytes: Option<&[u8]>,
    binary: bool,
    pg_type: &Type,
) -> Result<Param, CodecError> {
    let Some(bytes) = bytes else {
        return Ok(Param::Null);
    };
    if !binary {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| CodecError::new("22021", "invalid byte sequence for encoding \"UTF8\""))?;
        if *pg_type == Type::BYTEA {
            return qubedb::sql::convert::parse_bytea(text)
                .map(Param::Bytes)
                .map_err(|error| CodecError::new("22P02", error.message));
        }
        return Ok(match parameter_type_name(pg_type) {
            Some(type_name) => Param::Typed {
                text: text.to_string(),
                type_name: type_name.to_string(),
            },
            None => Param::Text(text.to_string()),
        });
    }
    decode_binary(bytes, pg_type)
}

fn fixed<const N: usize>(bytes: &[u8], type_name: &str) -> Result<[u8; N], CodecError> {
    bytes.try_into().map_err(|_| invalid_binary(type_name))
}

fn typed(text: String, type_name: &str) -> Param {
    Param::Typed {
        text,
        type_name: type_name.to_string(),
    }
}

fn is_vector_type(pg_type: &Type) -> bool {
    i64::from(pg_type.oid()) == qubedb::sql::system::VECTOR_OID
}

fn is_halfvec_type(pg_type: &Type) -> bool {
    i64::from(pg_type.oid()) == qubedb::sql::system::HALFVEC_OID
}

fn is_sparsevec_type(pg_type: &Type) -> bool {
    i64::from(pg_type.oid()) == qubedb::sql::system::SPARSEVEC_OID
}

/// pgvector's binary sparse vector (`sparsevec_recv`): dimensions, count and an unused word (int4
/// each), the indices (int4, from 0), the values (float4); bound as its text form.
fn decode_sparse_vector(bytes: &[u8]) -> Result<Param, CodecError> {
    let invalid = || invalid_binary("sparsevec");
    let word = |at: usize| -> Result<[u8; 4], CodecError> {
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
    let mut sparse = qubedb::SparseVector {
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
        qubedb::sql::sparse_vector::format(&sparse),
        "sparsevec",
    ))
}

/// pgvector's binary vector (`vector_recv`, `halfvec_recv`): dimensions (u16), an unused u16, the
/// elements (float4s, or halves for halfvec).
fn decode_vector(bytes: &[u8], kind: qubedb::VectorKind) -> Result<Param, CodecError> {
    let invalid = || invalid_binary(kind.type_name());
    let header = bytes.get(..4).ok_or_else(invalid)?;
    let dimensions = usize::from(u16::from_be_bytes([header[0], header[1]]));
    let body = &bytes[4..];
    let elements: Vec<f32> = match kind {
        qubedb::VectorKind::Single if body.len() == dimensions * 4 => body
            .chunks_exact(4)
            .map(|chunk| f32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .collect(),
        qubedb::VectorKind::Half if body.len() == dimensions * 2 => body
            .chunks_exact(2)
            .map(|chunk| half::f16::from_bits(u16::from_be_bytes([chunk[0], chunk[1]])).to_f32())
            .collect(),
        _ => return Err(invalid()),
    };
    Ok(Param::Vector(elements))
}

fn decode_binary(bytes: &[u8], pg_type: &Type) -> Result<Param, CodecError> {
    if is_vector_type(pg_type) {
        return decode_vector(bytes, qubedb::VectorKind::Single);
    }
    if is_halfvec_type(pg_type) {
        return decode_vector(bytes, qubedb::VectorKind::Half);
    }
    if is_sparsevec_type(pg_type) {
        return decode_sparse_vector(bytes);
    }
    let utf8 = |bytes: &[u8]| {
        String::from_utf8(bytes.to_vec())
            .map_err(|_| CodecError::new("22021", "invalid byte sequence for encoding \"UTF8\""))
    };
    Ok(match *pg_type {
        Type::BOOL => Param::Boolean(fixed::<1>(bytes, "boolean")?[0] != 0),
        Type::INT2 => Param::Integer(i64::from(i16::from_be_bytes(fixed(bytes, "smallint")?))),
        Type::INT4 => Param::Integer(i64::from(i32::from_be_bytes(fixed(bytes, "integer")?))),
        Type::OID => Param::Integer(i64::from(u32::from_be_bytes(fixed(bytes, "oid")?))),
        Type::INT8 => Param::Integer(i64::from_be_bytes(fixed(bytes, "bigint")?)),
        Type::FLOAT4 => {
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
        Type::FLOAT8 => Param::Double(f64::from_be_bytes(fixed(bytes, "double precision")?)),
        Type::NUMERIC => typed(decode_numeric(bytes)?, "numeric"),
        Type::BYTEA => Param::Bytes(bytes.to_vec()),
        Type::DATE => {
            let days = i32::from_be_bytes(fixed(bytes, "date")?);
            let text = match days {
                i32::MAX => "infinity".to_string(),
                i32::MIN => "-infinity".to_string(),
                days => format_date(i64::from(days) + EPOCH_DAYS),
            };
            typed(text, "date")
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let microseconds = i64::from_be_bytes(fixed(bytes, "timestamp")?);
            let zone = if *pg_type == Type::TIMESTAMPTZ {
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
        Type::TIME => {
            let microseconds = i64::from_be_bytes(fixed(bytes, "time")?);
            if !(0..=86_400_000_000).contains(&microseconds) {
                return Err(invalid_binary("time"));
            }
            typed(format_time(microseconds), "time")
        }
        Type::INTERVAL => {
            let raw: [u8; 16] = fixed(bytes, "interval")?;
            let microseconds = i64::from_be_bytes(raw[0..8].try_into().expect("8 bytes"));
            let days = i32::from_be_bytes(raw[8..12].try_into().expect("4 bytes"));
            let months = i32::from_be_bytes(raw[12..16].try_into().expect("4 bytes"));
            typed(format_interval(months, days, microseconds), "interval")
        }
        Type::UUID => {
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
        Type::JSONB => match bytes.split_first() {
            Some((1, text)) => typed(utf8(text)?, "jsonb"),
            _ => return Err(invalid_binary("jsonb")),
        },
        Type::BIT | Type::VARBIT => {
            let name = if *pg_type == Type::BIT {
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
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::UNKNOWN
        | Type::JSON
        | Type::XML => Param::Text(utf8(bytes)?),
        _ => {
            return Err(CodecError::new(
                "0A000",
                format!(
                    "binary parameters of type {} are not supported",
                    pg_type.name()
                ),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_round_trip(text: &str) -> String {
        let mut out = BytesMut::new();
        encode_numeric(text, &mut out).expect("encode");
        decode_numeric(&out).expect("decode")
    }

    #[test]
    fn numeric_binary_round_trips_through_base_10000() {
        for text in [
            "0",
            "1",
            "-1",
            "12345678.9",
            "0.0001",
            "-0.00012",
            "10000",
            "1.500",
            "99999999999999999999.99999999",
            "NaN",
            "Infinity",
            "-Infinity",
        ] {
            assert_eq!(numeric_round_trip(text), text);
        }
        // 12345.678: weight 1, digits [1, 2345, 6780], display scale 3.
        let mut out = BytesMut::new();
        encode_numeric("12345.678", &mut out).expect("encode");
        assert_eq!(
            out.as_ref(),
            &[0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]
        );
        assert_eq!(numeric_round_trip("0.000"), "0.000");
        assert!(decode_numeric(&[0, 1]).is_err());
    }

    #[test]
    fn binary_parameters_decode_to_typed_values() {
        assert_eq!(
            decode_parameter(Some(&42i32.to_be_bytes()), true, &Type::INT4),
            Ok(Param::Integer(42))
        );
        assert_eq!(
            decode_parameter(Some(&0i32.to_be_bytes()), true, &Type::DATE),
            Ok(typed("2000-01-01".into(), "date"))
        );
        assert_eq!(
            decode_parameter(
                Some(&86_400_000_001i64.to_be_bytes()),
                true,
                &Type::TIMESTAMPTZ
            ),
            Ok(typed("2000-01-02 00:00:00.000001+00".into(), "timestamptz"))
        );
        assert_eq!(
            decode_parameter(Some(b"\x01{\"a\": 1}"), true, &Type::JSONB),
            Ok(typed("{\"a\": 1}".into(), "jsonb"))
        );
        assert_eq!(
            decode_parameter(Some(b"\\x0102"), false, &Type::BYTEA),
            Ok(Param::Bytes(vec![1, 2]))
        );
        assert_eq!(
            decode_parameter(Some(b"7"), false, &Type::INT8),
            Ok(typed("7".into(), "bigint"))
        );
        assert_eq!(
            decode_parameter(Some(b"x"), false, &Type::UNKNOWN),
            Ok(Param::Text("x".into()))
        );
        assert_eq!(decode_parameter(None, true, &Type::INT4), Ok(Param::Null));
        // pgvector's binary vector and halfvec: dimensions, an unused u16, float4s or halves.
        let halfvec = crate::types::halfvec_type();
        assert_eq!(
            decode_parameter(Some(&[0, 2, 0, 0, 0x3e, 0x00, 0xc0, 0x00]), true, &halfvec),
            Ok(Param::Vector(vec![1.5, -2.0]))
        );
        assert_eq!(
            decode_parameter(Some(&[0, 2, 0, 0, 0x3e, 0x00]), true, &halfvec)
                .expect_err("short halfvec")
                .code,
            "22P03"
        );
        assert_eq!(
            decode_parameter(
                Some(&[0, 1, 0, 0, 0x3f, 0xc0, 0, 0]),
                true,
                &crate::types::vector_type()
            ),
            Ok(Param::Vector(vec![1.5]))
        );
        assert_eq!(
            decode_parameter(Some(&[0, 0]), true, &Type::INT4)
                .expect_err("short")
                .code,
            "22P03"
        );
    }
}
