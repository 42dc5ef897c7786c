//! Every kind of key in the store, in one place. `docs/keyspace.md` lists them with their bytes; the tests
//! below pin each kind byte for byte, so a change of layout cannot go unnoticed.
//!
//! ```text
//!   kind       bytes                                         value
//!   Meta       01 <meta code u8>                             u64 big-endian (format version, next id, ...)
//!   Object     02 <object id u64 BE>                         catalog object, JSON
//!   Sequence   03 <sequence id u64 BE>                       sequence state
//!   Role       04 <role oid u64 BE>                          role, JSON (default database only)
//!   Statistics 05 <table id u64 BE>                          the table's ANALYZE statistics, JSON
//!   Row        10 <table id u64 BE> <primary key keycode>    encoded row (crate::row)
//!   Index      11 <index id u64 BE> <values keycode> [pk]    primary key keycode of the row
//! ```
//! Every kind starts with its own byte, and every id is fixed-width, so the keys of one table (or one index)
//! form one contiguous range: [`Key::row_prefix`] is a prefix of every row key of that table and of no other.

use qubedb_kv::KeyRange;

use crate::error::{Error, Result};

const KIND_META: u8 = 0x01;
const KIND_OBJECT: u8 = 0x02;
const KIND_SEQUENCE: u8 = 0x03;
const KIND_ROLE: u8 = 0x04;
const KIND_STATISTICS: u8 = 0x05;
const KIND_ROW: u8 = 0x10;
const KIND_INDEX: u8 = 0x11;

/// Store-wide single values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Meta {
    /// The on-disk format version this store was written with.
    FormatVersion = 1,
    /// The next id to hand to a catalog object.
    NextObjectId = 2,
    /// Bumped by every transaction that changes the catalog; cached catalogs compare it.
    CatalogVersion = 3,
}

/// A key of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Meta(Meta),
    /// A catalog object (schema, table, view, index, sequence) by id.
    Object(u64),
    /// The state of a sequence.
    Sequence(u64),
    /// A role (user) of the data directory, by OID; kept in the default database's store only.
    Role(u64),
    /// What `ANALYZE` found about a table, by table id.
    Statistics(u64),
    /// A row of a table: table id and the keycode of its primary key (or hidden row id).
    Row(u64, Vec<u8>),
    /// An index entry: index id and the keycode of the indexed values, followed by the row's primary key
    /// unless the index is unique.
    Index(u64, Vec<u8>),
}

impl Key {
    /// The key's bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Key::Meta(meta) => vec![KIND_META, *meta as u8],
            Key::Object(id) => with_id(KIND_OBJECT, *id, &[]),
            Key::Sequence(id) => with_id(KIND_SEQUENCE, *id, &[]),
            Key::Role(oid) => with_id(KIND_ROLE, *oid, &[]),
            Key::Statistics(table) => with_id(KIND_STATISTICS, *table, &[]),
            Key::Row(table, primary_key) => with_id(KIND_ROW, *table, primary_key),
            Key::Index(index, values) => with_id(KIND_INDEX, *index, values),
        }
    }

    /// Parses a key's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Key> {
        let (&kind, rest) = bytes
            .split_first()
            .ok_or_else(|| Error::corruption("empty key"))?;
        let id = || -> Result<(u64, Vec<u8>)> {
            if rest.len() < 8 {
                return Err(Error::corruption("key too short for its id"));
            }
            let (id, tail) = rest.split_at(8);
            Ok((
                u64::from_be_bytes(id.try_into().expect("split at 8 bytes")),
                tail.to_vec(),
            ))
        };
        Ok(match kind {
            KIND_META => match rest {
                [1] => Key::Meta(Meta::FormatVersion),
                [2] => Key::Meta(Meta::NextObjectId),
                [3] => Key::Meta(Meta::CatalogVersion),
                _ => return Err(Error::corruption(format!("unknown meta key {rest:?}"))),
            },
            KIND_OBJECT => Key::Object(id()?.0),
            KIND_SEQUENCE => Key::Sequence(id()?.0),
            KIND_ROLE => Key::Role(id()?.0),
            KIND_STATISTICS => Key::Statistics(id()?.0),
            KIND_ROW => {
                let (table, primary_key) = id()?;
                Key::Row(table, primary_key)
            }
            KIND_INDEX => {
                let (index, values) = id()?;
                Key::Index(index, values)
            }
            other => return Err(Error::corruption(format!("unknown key kind {other:#x}"))),
        })
    }

    /// The prefix shared by every row key of `table`.
    pub fn row_prefix(table: u64) -> Vec<u8> {
        with_id(KIND_ROW, table, &[])
    }

    /// The prefix shared by every entry of `index`.
    pub fn index_prefix(index: u64) -> Vec<u8> {
        with_id(KIND_INDEX, index, &[])
    }

    /// The prefix shared by every role.
    pub fn role_prefix() -> Vec<u8> {
        vec![KIND_ROLE]
    }

    /// The prefix shared by every catalog object.
    pub fn object_prefix() -> Vec<u8> {
        vec![KIND_OBJECT]
    }

    /// The range of every row of `table`.
    pub fn row_range(table: u64) -> KeyRange {
        qubedb_kv::prefix_range(&Self::row_prefix(table))
    }

    /// The range of every entry of `index`.
    pub fn index_range(index: u64) -> KeyRange {
        qubedb_kv::prefix_range(&Self::index_prefix(index))
    }
}

fn with_id(kind: u8, id: u64, tail: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + tail.len());
    out.push(kind);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keycode::encode_values;
    use crate::types::Value;

    /// Each key kind, byte for byte.
    #[test]
    fn key_bytes_are_pinned() {
        let cases: Vec<(Key, Vec<u8>)> = vec![
            (Key::Meta(Meta::FormatVersion), vec![0x01, 0x01]),
            (Key::Meta(Meta::NextObjectId), vec![0x01, 0x02]),
            (Key::Meta(Meta::CatalogVersion), vec![0x01, 0x03]),
            (Key::Object(7), vec![0x02, 0, 0, 0, 0, 0, 0, 0, 7]),
            (Key::Sequence(258), vec![0x03, 0, 0, 0, 0, 0, 0, 1, 2]),
            (Key::Role(10), vec![0x04, 0, 0, 0, 0, 0, 0, 0, 10]),
            (
                Key::Statistics(1000),
                vec![0x05, 0, 0, 0, 0, 0, 0, 0x03, 0xe8],
            ),
            (
                Key::Row(5, encode_values(&[Value::Integer(-1)])),
                vec![
                    0x10, 0, 0, 0, 0, 0, 0, 0, 5, 0x01, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                    0xff,
                ],
            ),
            (
                Key::Row(5, encode_values(&[Value::Text("a\0".into()), Value::Null])),
                vec![
                    0x10, 0, 0, 0, 0, 0, 0, 0, 5, 0x01, b'a', 0x00, 0xff, 0x00, 0x00, 0x02,
                ],
            ),
            (
                Key::Index(9, encode_values(&[Value::Boolean(true), Value::Integer(1)])),
                vec![
                    0x11, 0, 0, 0, 0, 0, 0, 0, 9, 0x01, 0x01, 0x01, 0x80, 0, 0, 0, 0, 0, 0, 1,
                ],
            ),
        ];
        for (key, bytes) in cases {
            assert_eq!(key.encode(), bytes, "{key:?}");
            assert_eq!(Key::decode(&bytes).expect("decodes"), key);
        }
    }

    /// A table's row prefix is a prefix of its rows' keys and of no other table's.
    #[test]
    fn prefix_is_a_prefix() {
        let row = Key::Row(1, encode_values(&[Value::Integer(0)])).encode();
        assert!(row.starts_with(&Key::row_prefix(1)));
        assert!(!row.starts_with(&Key::row_prefix(2)));
        let index = Key::Index(1, encode_values(&[Value::Integer(0)])).encode();
        assert!(!index.starts_with(&Key::row_prefix(1)));
        assert!(index.starts_with(&Key::index_prefix(1)));
    }
}
