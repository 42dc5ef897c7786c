//! PostgreSQL types of result columns, for RowDescription: the OID the engine gives a column
//! ([`qubedb::sql::binary_format::field_type_oid`]: its SQL type, else its Arrow type) as a pgwire
//! [`Type`], with its size and modifier.

use pgwire::api::Type;
use qubedb::arrow::datatypes::Field;

/// The Arrow field metadata key holding a column's SQL type name.
const TYPE_METADATA_KEY: &str = "qubedb.type";

/// The PostgreSQL type clients see for a result column.
pub fn pg_type(field: &Field) -> Type {
    type_of_oid(qubedb::sql::binary_format::field_type_oid(field)).unwrap_or(Type::TEXT)
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

#[cfg(test)]
mod tests {
    use super::*;
    use qubedb::arrow::datatypes::DataType as ArrowType;
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
