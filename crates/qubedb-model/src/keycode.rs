//! Order-preserving ("memcomparable") encoding of values inside keys.
//!
//! The store orders keys bytewise, so every value inside a key is encoded such that comparing the encodings
//! byte by byte gives the same order as comparing the values in SQL. A composite key is the concatenation of
//! its values' encodings; each encoding is self-delimiting, so `(a, b) < (a, c)` exactly when `b < c`.
//!
//! ```text
//!   NULL           0x02                                   (after every value: PostgreSQL's NULLS LAST)
//!   value          0x01 payload
//!   boolean        00 | 01
//!   integer        8 bytes big-endian, sign bit flipped   (SMALLINT..BIGINT, DATE, TIME, TIMESTAMP[TZ])
//!   real, double   8 bytes of the f64: positive → sign bit flipped, negative → all bits flipped;
//!                  -0.0 is written as 0.0 and every NaN as one NaN, above +infinity (as PostgreSQL sorts)
//!   numeric        16 bytes big-endian i128 units, sign bit flipped (the scale is the column's)
//!   text, bytes    each 0x00 escaped as 00 ff, then terminator 00 00
//!   vector,        per element 01 and its f32 in 4 bytes as the doubles above, then 00
//!   halfvec        (a halfvec's elements are f32s holding half-precision values)
//!   interval       16 bytes of the span in microseconds (a month counts 30 days, as PostgreSQL compares),
//!                  then months, days, microseconds (4 + 4 + 8 bytes, sign bit flipped)
//! ```

use crate::error::{Error, Result};
use crate::types::{DataType, Value};

const TAG_VALUE: u8 = 0x01;
const TAG_NULL: u8 = 0x02;

/// Appends the order-preserving encoding of `value` to `out`.
pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => {
            out.push(TAG_NULL);
            return;
        }
        _ => out.push(TAG_VALUE),
    }
    match value {
        Value::Null => {}
        Value::Boolean(boolean) => out.push(u8::from(*boolean)),
        Value::Integer(integer) => encode_i64(*integer, out),
        Value::Real(real) => encode_f64(f64::from(*real), out),
        Value::Double(double) => encode_f64(*double, out),
        Value::Numeric { units, .. } => {
            out.extend_from_slice(&((*units as u128) ^ (1u128 << 127)).to_be_bytes())
        }
        Value::Text(text) => encode_bytes(text.as_bytes(), out),
        Value::Bytes(bytes) => encode_bytes(bytes, out),
        Value::Vector(elements) | Value::HalfVector(elements) => {
            for &element in elements {
                out.push(0x01);
                out.extend_from_slice(&crate::vector::ordered_f32(element));
            }
            out.push(0x00);
        }
        Value::SparseVector(sparse) => sparse.encode_key(out),
        Value::Interval {
            months,
            days,
            microseconds,
        } => {
            let span = (i128::from(*months) * 30 + i128::from(*days)) * 86_400_000_000
                + i128::from(*microseconds);
            out.extend_from_slice(&((span as u128) ^ (1u128 << 127)).to_be_bytes());
            out.extend_from_slice(&((*months as u32) ^ (1u32 << 31)).to_be_bytes());
            out.extend_from_slice(&((*days as u32) ^ (1u32 << 31)).to_be_bytes());
            encode_i64(*microseconds, out);
        }
    }
}

/// The encoding of several values, concatenated.
pub fn encode_values(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for value in values {
        encode_value(value, &mut out);
    }
    out
}

fn encode_i64(integer: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(&((integer as u64) ^ (1u64 << 63)).to_be_bytes());
}

fn encode_f64(double: f64, out: &mut Vec<u8>) {
    let double = if double.is_nan() {
        f64::NAN
    } else if double == 0.0 {
        0.0
    } else {
        double
    };
    let bits = double.to_bits();
    let bits = if bits >> 63 == 1 {
        !bits
    } else {
        bits ^ (1u64 << 63)
    };
    out.extend_from_slice(&bits.to_be_bytes());
}

fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    for &byte in bytes {
        out.push(byte);
        if byte == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// Decodes one value of type `data_type` at `*position`, advancing it.
pub fn decode_value(bytes: &[u8], position: &mut usize, data_type: DataType) -> Result<Value> {
    let tag = take(bytes, position, 1)?[0];
    match tag {
        TAG_NULL => return Ok(Value::Null),
        TAG_VALUE => {}
        other => return Err(Error::corruption(format!("key value tag {other:#x}"))),
    }
    Ok(match data_type {
        DataType::Boolean => Value::Boolean(take(bytes, position, 1)?[0] != 0),
        DataType::SmallInt
        | DataType::Integer
        | DataType::BigInt
        | DataType::Date
        | DataType::Time
        | DataType::Timestamp
        | DataType::TimestampTz => Value::Integer(decode_i64(bytes, position)?),
        DataType::Real => Value::Real(decode_f64(bytes, position)? as f32),
        DataType::Double => Value::Double(decode_f64(bytes, position)?),
        DataType::Numeric { scale, .. } => {
            let raw = u128::from_be_bytes(fixed(take(bytes, position, 16)?)?);
            Value::Numeric {
                units: (raw ^ (1u128 << 127)) as i128,
                scale,
            }
        }
        DataType::Text
        | DataType::Varchar(_)
        | DataType::Bit { .. }
        | DataType::Char(_)
        | DataType::Jsonb
        | DataType::Json => {
            let raw = decode_bytes(bytes, position)?;
            Value::Text(
                String::from_utf8(raw).map_err(|_| Error::corruption("key text is not UTF-8"))?,
            )
        }
        DataType::Bytea | DataType::Uuid => Value::Bytes(decode_bytes(bytes, position)?),
        DataType::Vector(_) | DataType::HalfVector(_) => {
            let mut elements = Vec::new();
            while take(bytes, position, 1)?[0] == 0x01 {
                elements.push(crate::vector::unordered_f32(fixed(take(
                    bytes, position, 4,
                )?)?));
            }
            if matches!(data_type, DataType::HalfVector(_)) {
                Value::HalfVector(elements)
            } else {
                Value::Vector(elements)
            }
        }
        DataType::SparseVector(_) => Value::SparseVector(
            crate::sparse_vector::SparseVector::decode_key(bytes, position)
                .ok_or_else(|| Error::corruption("key sparse vector ends early"))?,
        ),
        DataType::Interval => {
            take(bytes, position, 16)?;
            let months =
                (u32::from_be_bytes(fixed(take(bytes, position, 4)?)?) ^ (1u32 << 31)) as i32;
            let days =
                (u32::from_be_bytes(fixed(take(bytes, position, 4)?)?) ^ (1u32 << 31)) as i32;
            Value::Interval {
                months,
                days,
                microseconds: decode_i64(bytes, position)?,
            }
        }
    })
}

fn take<'a>(bytes: &'a [u8], position: &mut usize, length: usize) -> Result<&'a [u8]> {
    let end = position
        .checked_add(length)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| Error::corruption("key ends inside a value"))?;
    let slice = &bytes[*position..end];
    *position = end;
    Ok(slice)
}

fn fixed<const N: usize>(slice: &[u8]) -> Result<[u8; N]> {
    slice
        .try_into()
        .map_err(|_| Error::corruption("key value has the wrong width"))
}

fn decode_i64(bytes: &[u8], position: &mut usize) -> Result<i64> {
    Ok((u64::from_be_bytes(fixed(take(bytes, position, 8)?)?) ^ (1u64 << 63)) as i64)
}

fn decode_f64(bytes: &[u8], position: &mut usize) -> Result<f64> {
    let bits = u64::from_be_bytes(fixed(take(bytes, position, 8)?)?);
    let bits = if bits >> 63 == 1 {
        bits ^ (1u64 << 63)
    } else {
        !bits
    };
    Ok(f64::from_bits(bits))
}

fn decode_bytes(bytes: &[u8], position: &mut usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let byte = take(bytes, position, 1)?[0];
        if byte != 0 {
            out.push(byte);
            continue;
        }
        match take(bytes, position, 1)?[0] {
            0x00 => return Ok(out),
            0xff => out.push(0),
            other => {
                return Err(Error::corruption(format!(
                    "bad escape {other:#x} in key bytes"
                )));
            }
        }
    }
}
