//! The model layer: key encoding preserves order for every type (property tests), values round-trip, and
//! catalog changes are transactional.

use std::cmp::Ordering;

use proptest::prelude::*;
use qubedb_kv::Store;
use qubedb_model::catalog::{Catalog, Object, PUBLIC_SCHEMA_ID, SchemaDef};
use qubedb_model::keycode::{decode_value, encode_value, encode_values};
use qubedb_model::{DataType, Value};

fn encoded(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(value, &mut out);
    out
}

/// Order of two non-NULL values of the same type as SQL compares them (NULL sorts last).
fn sql_order(left: &Value, right: &Value) -> Ordering {
    match (left, right) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        (Value::Boolean(a), Value::Boolean(b)) => a.cmp(b),
        (Value::Integer(a), Value::Integer(b)) => a.cmp(b),
        (Value::Double(a), Value::Double(b)) => {
            // PostgreSQL: NaN is above everything and equal to itself; -0 equals 0.
            match (a.is_nan(), b.is_nan()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                _ => a.partial_cmp(b).expect("not NaN"),
            }
        }
        (Value::Numeric { units: a, .. }, Value::Numeric { units: b, .. }) => a.cmp(b),
        (Value::Text(a), Value::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
        (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
        (
            Value::Interval {
                months: m1,
                days: d1,
                microseconds: u1,
            },
            Value::Interval {
                months: m2,
                days: d2,
                microseconds: u2,
            },
        ) => {
            let span = |m: i32, d: i32, u: i64| {
                (i128::from(m) * 30 + i128::from(d)) * 86_400_000_000 + i128::from(u)
            };
            span(*m1, *d1, *u1).cmp(&span(*m2, *d2, *u2))
        }
        _ => unreachable!("same-type strategies only"),
    }
}

fn with_null<S: Strategy<Value = Value> + 'static>(strategy: S) -> BoxedStrategy<Value> {
    prop_oneof![9 => strategy, 1 => Just(Value::Null)].boxed()
}

fn typed_values() -> impl Strategy<Value = (DataType, Value, Value)> {
    prop_oneof![
        (
            with_null(any::<bool>().prop_map(Value::Boolean)),
            with_null(any::<bool>().prop_map(Value::Boolean))
        )
            .prop_map(|(a, b)| (DataType::Boolean, a, b)),
        (
            with_null(any::<i64>().prop_map(Value::Integer)),
            with_null(any::<i64>().prop_map(Value::Integer))
        )
            .prop_map(|(a, b)| (DataType::BigInt, a, b)),
        (
            with_null(any::<f64>().prop_map(Value::Double)),
            with_null(any::<f64>().prop_map(Value::Double))
        )
            .prop_map(|(a, b)| (DataType::Double, a, b)),
        (
            with_null(any::<i128>().prop_map(|units| Value::Numeric { units, scale: 2 })),
            with_null(any::<i128>().prop_map(|units| Value::Numeric { units, scale: 2 }))
        )
            .prop_map(|(a, b)| (
                DataType::Numeric {
                    precision: Some(38),
                    scale: 2
                },
                a,
                b
            )),
        (
            with_null(".{0,6}".prop_map(Value::Text)),
            with_null(".{0,6}".prop_map(Value::Text))
        )
            .prop_map(|(a, b)| (DataType::Text, a, b)),
        (
            with_null(proptest::collection::vec(0u8..3, 0..5).prop_map(Value::Bytes)),
            with_null(proptest::collection::vec(0u8..3, 0..5).prop_map(Value::Bytes))
        )
            .prop_map(|(a, b)| (DataType::Bytea, a, b)),
        (
            with_null((-100i32..100, -100i32..100, any::<i32>()).prop_map(
                |(months, days, micros)| Value::Interval {
                    months,
                    days,
                    microseconds: i64::from(micros)
                }
            )),
            with_null((-100i32..100, -100i32..100, any::<i32>()).prop_map(
                |(months, days, micros)| Value::Interval {
                    months,
                    days,
                    microseconds: i64::from(micros)
                }
            ))
        )
            .prop_map(|(a, b)| (DataType::Interval, a, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Bytewise order of encodings equals SQL order of values, for every type; equal SQL values that differ
    /// in representation (interval '1 month' vs '30 days') are ordered by the tie-breaking fields only.
    #[test]
    fn encoding_preserves_order((data_type, left, right) in typed_values()) {
        let expected = sql_order(&left, &right);
        let actual = encoded(&left).cmp(&encoded(&right));
        if expected != Ordering::Equal {
            prop_assert_eq!(actual, expected, "{:?} vs {:?}", left, right);
        }
        // And every encoding decodes back to the value.
        for value in [&left, &right] {
            let bytes = encoded(value);
            let mut position = 0;
            let decoded = decode_value(&bytes, &mut position, data_type).expect("decodes");
            prop_assert_eq!(position, bytes.len());
            match (value, &decoded) {
                (Value::Double(a), Value::Double(b)) if a.is_nan() => prop_assert!(b.is_nan()),
                (Value::Double(a), Value::Double(b)) if *a == 0.0 => prop_assert_eq!(*b, 0.0),
                _ => prop_assert_eq!(value, &decoded),
            }
        }
    }

    /// A composite key orders by its first value, then its second: encodings are self-delimiting.
    #[test]
    fn composite_keys_order_lexicographically(a in ".{0,4}", b in any::<i64>(), c in ".{0,4}", d in any::<i64>()) {
        let left = encode_values(&[Value::Text(a.clone()), Value::Integer(b)]);
        let right = encode_values(&[Value::Text(c.clone()), Value::Integer(d)]);
        let expected = a.as_bytes().cmp(c.as_bytes()).then(b.cmp(&d));
        prop_assert_eq!(left.cmp(&right), expected);
    }
}

#[test]
fn rolled_back_ddl_leaves_nothing() {
    let store = Store::in_memory().expect("store");
    let mut setup = store.begin().expect("begin");
    assert!(Catalog::bootstrap(&mut setup).expect("bootstrap"));
    setup.commit().expect("commit");

    let mut txn = store.begin().expect("begin");
    let mut catalog = Catalog::load(&txn).expect("load");
    let id = Catalog::allocate_id(&mut txn).expect("id");
    catalog
        .put(
            &mut txn,
            Object::Schema(SchemaDef {
                id,
                name: "scratch".into(),
            }),
        )
        .expect("put");
    assert_eq!(catalog.schema_id("scratch"), Some(id));
    txn.rollback();

    let reader = store.begin().expect("begin");
    let catalog = Catalog::load(&reader).expect("load");
    assert_eq!(catalog.schema_id("scratch"), None);
    assert_eq!(catalog.schema_id("public"), Some(PUBLIC_SCHEMA_ID));
}

#[test]
fn concurrent_ddl_is_serialized() {
    let store = Store::in_memory().expect("store");
    let mut setup = store.begin().expect("begin");
    Catalog::bootstrap(&mut setup).expect("bootstrap");
    setup.commit().expect("commit");
    let mut first = store.begin().expect("begin");
    let mut second = store.begin().expect("begin");
    let create = |txn: &mut qubedb_kv::Transaction, name: &str| -> qubedb_model::Result<()> {
        let mut catalog = Catalog::load(txn)?;
        let id = Catalog::allocate_id(txn)?;
        catalog.put(
            txn,
            Object::Schema(SchemaDef {
                id,
                name: name.into(),
            }),
        )
    };
    create(&mut first, "a").expect("first DDL");
    // The second DDL transaction must wait for the first (the catalog keys are locked by it) ...
    assert!(matches!(
        create(&mut second, "b"),
        Err(qubedb_model::Error::Storage(qubedb_kv::Error::Busy))
    ));
    let wait = second.take_lock_wait().expect("something to wait for");
    first.commit().expect("first DDL commits");
    assert!(wait.wait(std::time::Duration::from_secs(5)));
    second.stop_waiting();
    // ... and, its snapshot being older than the first's commit, then conflicts.
    assert!(matches!(
        create(&mut second, "b"),
        Err(qubedb_model::Error::Storage(qubedb_kv::Error::Conflict))
    ));
}
