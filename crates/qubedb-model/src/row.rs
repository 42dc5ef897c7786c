//! The compact row encoding.
//!
//! A row is stored as the value of its `Row` key:
//!
//! ```text
//!   01                      format
//!   <schema version>        varint: the table's version when the row was written
//!   <slot count>            varint: how many column slots follow
//!   <slot>...               one per column slot, in the table's slot order (dropped columns included)
//!
//!   slot: 00 NULL | 01 false | 02 true | 03 <zigzag varint> integer | 04 <4 bytes LE> real
//!         05 <8 bytes LE> double | 06 <varint length> <bytes> text or bytes | 07 <16 bytes LE> numeric units
//!         08 <months i32 LE> <days i32 LE> <microseconds i64 LE> interval
//! ```
//! A column added after a row was written has no slot in it: readers take the column's "missing value"
//! (its default at `ADD COLUMN` time, or NULL), so `ALTER TABLE ADD COLUMN` needs no rewrite. A dropped column
//! keeps its slot number and is skipped by readers.

use crate::error::{Error, Result};
use crate::types::Value;

const FORMAT: u8 = 0x01;

/// A value as it lies in a row, borrowed where it can be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RawValue<'a> {
    Null,
    Boolean(bool),
    Integer(i64),
    Real(f32),
    Double(f64),
    Bytes(&'a [u8]),
    Numeric(i128),
    Interval(i32, i32, i64),
}

/// Encodes a row of `values` (one per slot) written under schema `version`.
pub fn encode_row(version: u32, values: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + values.len() * 9);
    out.push(FORMAT);
    write_varint(u64::from(version), &mut out);
    write_varint(values.len() as u64, &mut out);
    for value in values {
        match value {
            Value::Null => out.push(0),
            Value::Boolean(false) => out.push(1),
            Value::Boolean(true) => out.push(2),
            Value::Integer(integer) => {
                out.push(3);
                write_varint(((integer << 1) ^ (integer >> 63)) as u64, &mut out);
            }
            Value::Real(real) => {
                out.push(4);
                out.extend_from_slice(&real.to_le_bytes());
            }
            Value::Double(double) => {
                out.push(5);
                out.extend_from_slice(&double.to_le_bytes());
            }
            Value::Text(text) => write_bytes(text.as_bytes(), &mut out),
            Value::Bytes(bytes) => write_bytes(bytes, &mut out),
            Value::Vector(elements) => write_bytes(&crate::vector::to_bytes(elements), &mut out),
            Value::HalfVector(elements) => {
                write_bytes(&crate::vector::to_half_bytes(elements), &mut out)
            }
            Value::SparseVector(sparse) => write_bytes(&sparse.to_bytes(), &mut out),
            Value::Numeric { units, .. } => {
                out.push(7);
                out.extend_from_slice(&units.to_le_bytes());
            }
            Value::Interval {
                months,
                days,
                microseconds,
            } => {
                out.push(8);
                out.extend_from_slice(&months.to_le_bytes());
                out.extend_from_slice(&days.to_le_bytes());
                out.extend_from_slice(&microseconds.to_le_bytes());
            }
        }
    }
    out
}

fn write_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(6);
    write_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn write_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Whether the encoded row `row` holds NULL in `slot`: `None` when the row has fewer slots (written
/// before the column was added, so the column's default stands for it).
pub fn is_null_at(row: &[u8], slot: usize) -> Result<Option<bool>> {
    let mut reader = RowReader::new(row)?;
    if slot >= reader.slots {
        return Ok(None);
    }
    let mut value = None;
    for _ in 0..=slot {
        value = reader.next_value()?;
    }
    Ok(Some(matches!(value, None | Some(RawValue::Null))))
}

/// Reads the slots of an encoded row in order.
pub struct RowReader<'a> {
    bytes: &'a [u8],
    position: usize,
    /// The schema version the row was written under.
    pub version: u32,
    /// How many slots the row holds.
    pub slots: usize,
    read: usize,
}

impl<'a> RowReader<'a> {
    /// Starts reading an encoded row.
    pub fn new(bytes: &'a [u8]) -> Result<RowReader<'a>> {
        if bytes.first() != Some(&FORMAT) {
            return Err(Error::corruption("row has an unknown format"));
        }
        let mut position = 1;
        let version = u32::try_from(read_varint(bytes, &mut position)?)
            .map_err(|_| Error::corruption("row schema version out of range"))?;
        let slots = usize::try_from(read_varint(bytes, &mut position)?)
            .map_err(|_| Error::corruption("row slot count out of range"))?;
        Ok(RowReader {
            bytes,
            position,
            version,
            slots,
            read: 0,
        })
    }

    /// The next slot, or `None` after the last one.
    pub fn next_value(&mut self) -> Result<Option<RawValue<'a>>> {
        if self.read == self.slots {
            return Ok(None);
        }
        self.read += 1;
        let bytes = self.bytes;
        let tag = *bytes
            .get(self.position)
            .ok_or_else(|| Error::corruption("row ends inside a slot"))?;
        self.position += 1;
        let value = match tag {
            0 => RawValue::Null,
            1 => RawValue::Boolean(false),
            2 => RawValue::Boolean(true),
            3 => {
                let zigzag = read_varint(bytes, &mut self.position)?;
                RawValue::Integer(((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64))
            }
            4 => RawValue::Real(f32::from_le_bytes(self.fixed()?)),
            5 => RawValue::Double(f64::from_le_bytes(self.fixed()?)),
            6 => {
                let length = usize::try_from(read_varint(bytes, &mut self.position)?)
                    .map_err(|_| Error::corruption("row slot length out of range"))?;
                let end = self
                    .position
                    .checked_add(length)
                    .filter(|&end| end <= bytes.len())
                    .ok_or_else(|| Error::corruption("row ends inside a slot"))?;
                let slice = &bytes[self.position..end];
                self.position = end;
                RawValue::Bytes(slice)
            }
            7 => RawValue::Numeric(i128::from_le_bytes(self.fixed()?)),
            8 => {
                let months = i32::from_le_bytes(self.fixed()?);
                let days = i32::from_le_bytes(self.fixed()?);
                let microseconds = i64::from_le_bytes(self.fixed()?);
                RawValue::Interval(months, days, microseconds)
            }
            other => return Err(Error::corruption(format!("row slot tag {other}"))),
        };
        Ok(Some(value))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        let end = self.position + N;
        let slice = self
            .bytes
            .get(self.position..end)
            .ok_or_else(|| Error::corruption("row ends inside a slot"))?;
        self.position = end;
        Ok(slice.try_into().expect("slice of N bytes"))
    }
}

fn read_varint(bytes: &[u8], position: &mut usize) -> Result<u64> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = *bytes
            .get(*position)
            .ok_or_else(|| Error::corruption("row ends inside a varint"))?;
        *position += 1;
        if shift >= 64 {
            return Err(Error::corruption("varint too long"));
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_bytes_are_pinned_and_round_trip() {
        let values = vec![
            Value::Integer(-2),
            Value::Null,
            Value::Text("hi".into()),
            Value::Boolean(true),
        ];
        let bytes = encode_row(3, &values);
        assert_eq!(bytes, vec![0x01, 3, 4, 3, 3, 0, 6, 2, b'h', b'i', 2]);
        let mut reader = RowReader::new(&bytes).expect("reader");
        assert_eq!(reader.version, 3);
        assert_eq!(
            reader.next_value().expect("slot"),
            Some(RawValue::Integer(-2))
        );
        assert_eq!(reader.next_value().expect("slot"), Some(RawValue::Null));
        assert_eq!(
            reader.next_value().expect("slot"),
            Some(RawValue::Bytes(b"hi"))
        );
        assert_eq!(
            reader.next_value().expect("slot"),
            Some(RawValue::Boolean(true))
        );
        assert_eq!(reader.next_value().expect("slot"), None);
    }

    #[test]
    fn truncated_rows_are_corruption_not_panics() {
        let bytes = encode_row(1, &[Value::Text("hello".into()), Value::Double(1.5)]);
        for length in 0..bytes.len() {
            let outcome = RowReader::new(&bytes[..length]).and_then(|mut reader| {
                while reader.next_value()?.is_some() {}
                Ok(())
            });
            assert!(outcome.is_err(), "prefix of {length} bytes must not decode");
        }
    }
}
