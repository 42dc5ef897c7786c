//! The SQL data types QubeDB stores, and one value of any of them.
//!
//! Values are kept in their storage form: integers of every width, dates (days since 1970-01-01), times
//! (microseconds since midnight) and timestamps (microseconds since 1970-01-01 00:00:00 UTC) as integers;
//! `NUMERIC(p,s)` as an `i128` count of units of `10^-s`; `UUID` as 16 bytes; `JSONB` in its binary form (`crate::jsonb`); `JSON` as the text written;
//! `VECTOR` as its `f32` elements; `HALFVEC` as
//! `f32` elements that are each exactly a half-precision float.

use serde::{Deserialize, Serialize};

/// Largest precision of `NUMERIC(p,s)`.
pub const NUMERIC_PRECISION_MAX: u8 = 38;
/// Scale used for `NUMERIC` declared without precision and scale.
pub const NUMERIC_DEFAULT_SCALE: i8 = 10;
/// Longest `VARCHAR(n)` / `CHAR(n)` length.
pub const CHARACTER_LENGTH_MAX: u32 = 10_485_760;

/// A column's SQL data type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    Boolean,
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    /// `NUMERIC(precision, scale)`; `precision: None` is unconstrained `NUMERIC`.
    Numeric {
        precision: Option<u8>,
        scale: i8,
    },
    Text,
    Varchar(Option<u32>),
    Char(u32),
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Jsonb,
    /// `JSON`: the text as written, checked to be JSON (`crate::json_text`).
    Json,
    /// `VECTOR(n)` (pgvector's type, `crate::vector`): `None` when declared without dimensions.
    Vector(Option<u32>),
    /// `HALFVEC(n)` (pgvector's half-precision vector): `None` when declared without dimensions.
    HalfVector(Option<u32>),
    /// `SPARSEVEC(n)` (pgvector's sparse vector, `crate::sparse_vector`): `None` when declared
    /// without dimensions.
    SparseVector(Option<u32>),
    /// `BIT(n)` (`varying: false`, exactly `n` bits) and `BIT VARYING(n)` (at most `n`; `None`: no
    /// limit): stored as the text of its bits, one `0` or `1` each.
    Bit {
        length: Option<u32>,
        varying: bool,
    },
}

impl DataType {
    /// The type's name as PostgreSQL's `format_type` prints it.
    pub fn sql_name(&self) -> String {
        match self {
            DataType::Boolean => "boolean".into(),
            DataType::SmallInt => "smallint".into(),
            DataType::Integer => "integer".into(),
            DataType::BigInt => "bigint".into(),
            DataType::Real => "real".into(),
            DataType::Double => "double precision".into(),
            DataType::Numeric {
                precision: Some(precision),
                scale,
            } => format!("numeric({precision},{scale})"),
            DataType::Numeric {
                precision: None, ..
            } => "numeric".into(),
            DataType::Text => "text".into(),
            DataType::Varchar(Some(length)) => format!("character varying({length})"),
            DataType::Varchar(None) => "character varying".into(),
            DataType::Char(length) => format!("character({length})"),
            DataType::Bytea => "bytea".into(),
            DataType::Date => "date".into(),
            DataType::Time => "time without time zone".into(),
            DataType::Timestamp => "timestamp without time zone".into(),
            DataType::TimestampTz => "timestamp with time zone".into(),
            DataType::Interval => "interval".into(),
            DataType::Uuid => "uuid".into(),
            DataType::Jsonb => "jsonb".into(),
            DataType::Json => "json".into(),
            DataType::Vector(Some(dimensions)) => format!("vector({dimensions})"),
            DataType::Vector(None) => "vector".into(),
            DataType::HalfVector(Some(dimensions)) => format!("halfvec({dimensions})"),
            DataType::HalfVector(None) => "halfvec".into(),
            DataType::SparseVector(Some(dimensions)) => format!("sparsevec({dimensions})"),
            DataType::SparseVector(None) => "sparsevec".into(),
            DataType::Bit {
                length: Some(length),
                varying: false,
            } => format!("bit({length})"),
            DataType::Bit {
                length: None,
                varying: false,
            } => "bit".into(),
            DataType::Bit {
                length: Some(length),
                varying: true,
            } => format!("bit varying({length})"),
            DataType::Bit {
                length: None,
                varying: true,
            } => "bit varying".into(),
        }
    }

    /// True for the integer types.
    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            DataType::SmallInt | DataType::Integer | DataType::BigInt
        )
    }
}

/// One value of any [`DataType`], or NULL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Boolean(bool),
    /// Every integer-backed type: SMALLINT, INTEGER, BIGINT, DATE (days), TIME, TIMESTAMP, TIMESTAMPTZ
    /// (microseconds).
    Integer(i64),
    Real(f32),
    Double(f64),
    /// NUMERIC: `units * 10^-scale`.
    Numeric {
        units: i128,
        scale: i8,
    },
    /// TEXT, VARCHAR, CHAR, JSON (the text written), BIT and BIT VARYING (a `0` or `1` per bit).
    Text(String),
    /// BYTEA, UUID (16 bytes) and JSONB (the binary form).
    Bytes(Vec<u8>),
    Interval {
        months: i32,
        days: i32,
        microseconds: i64,
    },
    /// VECTOR: its elements.
    Vector(Vec<f32>),
    /// HALFVEC: its elements, each a value a half-precision float holds exactly (stored in 2 bytes).
    HalfVector(Vec<f32>),
    /// SPARSEVEC: its dimensions and non-zero elements.
    SparseVector(crate::sparse_vector::SparseVector),
}

impl Value {
    /// True for SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}
