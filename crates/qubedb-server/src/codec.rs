//! Values on the wire: result columns in PostgreSQL's text or binary format, and Bind parameters from
//! either format into [`Param`]s.
//!
//! Text is what the engine prints ([`qubedb::sql::format`]); the binary forms are the engine's
//! ([`qubedb::sql::binary_format`], shared with `COPY ... (FORMAT binary)`): this module names the
//! types by their pgwire [`Type`].

use bytes::BytesMut;
use pgwire::api::Type;
use qubedb::arrow::array::ArrayRef;
use qubedb::sql::binary_format;
use qubedb::{Error, Param};

/// Appends value `row` of `array` (not NULL) in binary format for a column of PostgreSQL type
/// `pg_type`; `text` is the value's text form, used where the binary form is built from it.
pub fn encode_binary(
    array: &ArrayRef,
    row: usize,
    pg_type: &Type,
    text: &str,
    out: &mut BytesMut,
) -> Result<(), Error> {
    binary_format::encode(array, row, pg_type.oid(), text, out)
}

/// The SQL type name a parameter of `pg_type` is bound as; `None` for the text types (bound as an
/// untyped literal, as PostgreSQL's `unknown`) and bytea.
pub fn parameter_type_name(pg_type: &Type) -> Option<&'static str> {
    binary_format::parameter_type_name(pg_type.oid())
}

/// A Bind parameter (`None` for NULL) of type `pg_type` in text (`binary == false`) or binary format.
pub fn decode_parameter(
    bytes: Option<&[u8]>,
    binary: bool,
    pg_type: &Type,
) -> Result<Param, Error> {
    binary_format::decode_parameter(bytes, binary, pg_type.oid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: String, type_name: &str) -> Param {
        Param::Typed {
            text,
            type_name: type_name.to_string(),
        }
    }
    use qubedb::sql::binary_format::{decode_numeric, encode_numeric};

    fn numeric_round_trip(text: &str) -> String {
        let mut out = Vec::new();
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
        let mut out = Vec::new();
        encode_numeric("12345.678", &mut out).expect("encode");
        assert_eq!(
            out.as_slice(),
            &[0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]
        );
        assert_eq!(numeric_round_trip("0.000"), "0.000");
        assert!(decode_numeric(&[0, 1]).is_err());
    }

    #[test]
    fn binary_parameters_decode_to_typed_values() {
        assert_eq!(
            decode_parameter(Some(&42i32.to_be_bytes()), true, &Type::INT4).ok(),
            Some(Param::Integer(42))
        );
        assert_eq!(
            decode_parameter(Some(&0i32.to_be_bytes()), true, &Type::DATE).ok(),
            Some(typed("2000-01-01".into(), "date"))
        );
        assert_eq!(
            decode_parameter(
                Some(&86_400_000_001i64.to_be_bytes()),
                true,
                &Type::TIMESTAMPTZ
            )
            .ok(),
            Some(typed("2000-01-02 00:00:00.000001+00".into(), "timestamptz"))
        );
        assert_eq!(
            decode_parameter(Some(b"\x01{\"a\": 1}"), true, &Type::JSONB).ok(),
            Some(typed("{\"a\": 1}".into(), "jsonb"))
        );
        assert_eq!(
            decode_parameter(Some(b"\\x0102"), false, &Type::BYTEA).ok(),
            Some(Param::Bytes(vec![1, 2]))
        );
        assert_eq!(
            decode_parameter(Some(b"7"), false, &Type::INT8).ok(),
            Some(typed("7".into(), "bigint"))
        );
        assert_eq!(
            decode_parameter(Some(b"x"), false, &Type::UNKNOWN).ok(),
            Some(Param::Text("x".into()))
        );
        assert_eq!(
            decode_parameter(None, true, &Type::INT4).ok(),
            Some(Param::Null)
        );
        // pgvector's binary vector and halfvec: dimensions, an unused u16, float4s or halves.
        let halfvec = crate::types::halfvec_type();
        assert_eq!(
            decode_parameter(Some(&[0, 2, 0, 0, 0x3e, 0x00, 0xc0, 0x00]), true, &halfvec).ok(),
            Some(Param::Vector(vec![1.5, -2.0]))
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
            )
            .ok(),
            Some(Param::Vector(vec![1.5]))
        );
        assert_eq!(
            decode_parameter(Some(&[0, 0]), true, &Type::INT4)
                .expect_err("short")
                .code,
            "22P03"
        );
    }
}
