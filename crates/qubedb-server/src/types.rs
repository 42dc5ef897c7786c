//! PostgreSQL types of result columns, for RowDescription: from the SQL type a column carries in its
//! Arrow field metadata (`qubedb.type`), else from the Arrow type of a computed value.

use pgwire::api::Type;
use qubedb::arrow::datatypes::{DataType as ArrowType, Field, TimeUnit};

/// The Arrow field metadata key holding a column's SQL type name.
const TYPE_METADATA_KEY: &str = "qubedb.type";

/// The PostgreSQL type clients see for a result column.
pub fn pg_type(field: &Field) -> Type {
    if let Some(name) = field.metadata().get(TYPE_METADATA_KEY)
        && let Some(found) = type_of_sql_name(name)
    {
        return found;
    }
    type_of_arrow(field.data_type())
}

/// pgvector's `vector`, with QubeDB's fixed OID (`qubedb::sql::system::VECTOR_OID`).
pub fn vector_type() -> Type {
    Type::new(
        "vector".into(),
        qubedb::sql::system::VECTOR_OID as u32,
        postgres_types::Kind::Simple,
        "public".into(),
    )
}

/// pgvector's `halfvec`, with QubeDB's fixed OID (`qubedb::sql::system::HALFVEC_OID`).
pub fn halfvec_type() -> Type {
    Type::new(
        "halfvec".into(),
        qubedb::sql::system::HALFVEC_OID as u32,
        postgres_types::Kind::Simple,
        "public".into(),
    )
}

/// pgvector's `sparsevec`, with QubeDB's fixed OID (`qubedb::sql::system::SPARSEVEC_OID`).
pub fn sparsevec_type() -> Type {
    Type::new(
        "sparsevec".into(),
        qubedb::sql::system::SPARSEVEC_OID as u32,
        postgres_types::Kind::Simple,
        "public".into(),
    )
}

/// The type of a parameter OID a client declares: PostgreSQL's built-in types, `vector`,
/// `halfvec` and `sparsevec`.
pub fn type_of_oid(oid: u32) -> Option<Type> {
    if i64::from(oid) == qubedb::sql::system::VECTOR_OID {
        return Some(vector_type());
    }
    if i64::from(oid) == qubedb::sql::system::HALFVEC_OID {
        return Some(halfvec_type());
    }
    if i64::from(oid) == qubedb::sql::system::SPARSEVEC_OID {
        return Some(sparsevec_type());
    }
    Type::from_oid(oid)
}

/// `typlen` of a type for RowDescription: its fixed size in bytes, -1 for variable-length types.
pub fn type_size(pg_type: &Type) -> i16 {
    match *pg_type {
        Type::BOOL => 1,
        Type::INT2 => 2,
        Type::INT4 | Type::FLOAT4 | Type::DATE | Type::OID => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => 8,
        Type::UUID | Type::INTERVAL => 16,
        _ => -1,
    }
}

/// `atttypmod` of a column for RowDescription: the declared length of `varchar(n)` / `char(n)` and
/// the precision and scale of `numeric(p,s)`, as PostgreSQL encodes them; -1 when there is none.
pub fn type_modifier(field: &Field) -> i32 {
    let Some(name) = field.metadata().get(TYPE_METADATA_KEY) else {
        return -1;
    };
    let Some((_, arguments)) = name.split_once('(') else {
        return -1;
    };
    let numbers: Vec<i32> = arguments
        .trim_end_matches(')')
        .split(',')
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    match (name.starts_with("numeric"), numbers.as_slice()) {
        (true, [precision, scale]) => ((precision << 16) | (scale & 0xffff)) + 4,
        (true, [precision]) => (precision << 16) + 4,
        // A bit string's modifier is its length, with no header added.
        (false, [length]) if name.starts_with("bit") => *length,
        (false, [length]) => length + 4,
        _ => -1,
    }
}

fn type_of_sql_name(name: &str) -> Option<Type> {
    let base = name.split('(').next().unwrap_or(name).trim();
    Some(match base {
        "boolean" => Type::BOOL,
        "smallint" => Type::INT2,
        "integer" => Type::INT4,
        "bigint" => Type::INT8,
        "real" => Type::FLOAT4,
        "double precision" => Type::FLOAT8,
        "numeric" => Type::NUMERIC,
        "text" => Type::TEXT,
        "character varying" => Type::VARCHAR,
        "character" => Type::BPCHAR,
        "bytea" => Type::BYTEA,
        "date" => Type::DATE,
        "time without time zone" => Type::TIME,
        "timestamp without time zone" => Type::TIMESTAMP,
        "timestamp with time zone" => Type::TIMESTAMPTZ,
        "interval" => Type::INTERVAL,
        "uuid" => Type::UUID,
        "jsonb" => Type::JSONB,
        "json" => Type::JSON,
        "oid" => Type::OID,
        "int2vector" => Type::INT2_VECTOR,
        "oidvector" => Type::OID_VECTOR,
        "vector" => vector_type(),
        "halfvec" => halfvec_type(),
        "sparsevec" => sparsevec_type(),
        "bit" => Type::BIT,
        "bit varying" => Type::VARBIT,
        _ => return None,
    })
}

fn type_of_arrow(data_type: &ArrowType) -> Type {
    match qubedb::sql::vector::kind_of(data_type) {
        Some(qubedb::VectorKind::Single) => return vector_type(),
        Some(qubedb::VectorKind::Half) => return halfvec_type(),
        None => {}
    }
    if qubedb::sql::sparse_vector::is_sparse(data_type) {
        return sparsevec_type();
    }
    match data_type {
        ArrowType::Boolean => Type::BOOL,
        ArrowType::Int8 | ArrowType::Int16 | ArrowType::UInt8 => Type::INT2,
        ArrowType::Int32 | ArrowType::UInt16 => Type::INT4,
        ArrowType::Int64 | ArrowType::UInt32 => Type::INT8,
        ArrowType::UInt64 | ArrowType::Decimal128(..) | ArrowType::Decimal256(..) => Type::NUMERIC,
        ArrowType::Float16 | ArrowType::Float32 => Type::FLOAT4,
        ArrowType::Float64 => Type::FLOAT8,
        ArrowType::Utf8 | ArrowType::Utf8View => Type::TEXT,
        // json computes as its text in LargeUtf8, which no other type uses.
        ArrowType::LargeUtf8 => Type::JSON,
        ArrowType::Binary | ArrowType::BinaryView => Type::BYTEA,
        // jsonb computes in its binary form, the only LargeBinary values.
        ArrowType::LargeBinary => Type::JSONB,
        ArrowType::FixedSizeBinary(16) => Type::UUID,
        ArrowType::Date32 | ArrowType::Date64 => Type::DATE,
        ArrowType::Time32(_) | ArrowType::Time64(_) => Type::TIME,
        ArrowType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        ArrowType::Timestamp(TimeUnit::Second | TimeUnit::Millisecond, None)
        | ArrowType::Timestamp(TimeUnit::Microsecond | TimeUnit::Nanosecond, None) => {
            Type::TIMESTAMP
        }
        ArrowType::Interval(_) | ArrowType::Duration(_) => Type::INTERVAL,
        ArrowType::List(inner) | ArrowType::LargeList(inner) => {
            match type_of_arrow(inner.data_type()) {
                Type::BOOL => Type::BOOL_ARRAY,
                Type::INT2 => Type::INT2_ARRAY,
                Type::INT4 => Type::INT4_ARRAY,
                Type::INT8 => Type::INT8_ARRAY,
                Type::FLOAT4 => Type::FLOAT4_ARRAY,
                Type::FLOAT8 => Type::FLOAT8_ARRAY,
                Type::NUMERIC => Type::NUMERIC_ARRAY,
                Type::JSONB => Type::JSONB_ARRAY,
                Type::JSON => Type::JSON_ARRAY,
                _ => Type::TEXT_ARRAY,
            }
        }
        _ => Type::TEXT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn column_types_come_from_the_sql_type_then_the_arrow_type() {
        let column = Field::new("id", ArrowType::Utf8, true).with_metadata(HashMap::from([(
            TYPE_METADATA_KEY.to_string(),
            "character varying(20)".to_string(),
        )]));
        assert_eq!(pg_type(&column), Type::VARCHAR);
        assert_eq!(type_modifier(&column), 24);
        let amount = Field::new("a", ArrowType::Decimal128(10, 2), true).with_metadata(
            HashMap::from([(TYPE_METADATA_KEY.to_string(), "numeric(10,2)".to_string())]),
        );
        assert_eq!(type_modifier(&amount), (10 << 16 | 2) + 4);
        assert_eq!(type_modifier(&Field::new("n", ArrowType::Int64, true)), -1);
        assert_eq!(
            pg_type(&Field::new("n", ArrowType::Int64, true)),
            Type::INT8
        );
        assert_eq!(
            pg_type(&Field::new("d", ArrowType::Decimal128(38, 10), true)),
            Type::NUMERIC
        );
    }
}
