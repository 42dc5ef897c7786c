//! Writing rows: primary keys, index entries, and the constraints checked against stored data (primary key
//! and unique uniqueness, foreign keys in both directions). Expression-level checks (NOT NULL, CHECK, types)
//! happen before, in [`crate::sql::dml`].
//!
//! Every write of one statement goes through a [`TableWriter`] so that index entries always change together
//! with their row, inside the same transaction.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use qubedb_kv::Transaction;
use qubedb_model::catalog::{Catalog, IndexDef, ReferentialAction, SequenceDef, TableDef};
use qubedb_model::jsonb::{Jsonb, gin_tokens};
use qubedb_model::keycode::{decode_value, encode_value};
use qubedb_model::keys::Key;
use qubedb_model::row::{RawValue, RowReader, encode_row};
use qubedb_model::{DataType, Value};

use crate::database::DatabaseInner;
use crate::error::{Error, Result};
use crate::sql::format::{
    format_date, format_decimal, format_float, format_interval, format_time, format_timestamp,
};
use crate::sql::index_keys::CompiledIndex;

/// Deepest chain of cascading foreign-key actions.
pub const CASCADE_DEPTH_MAX: usize = 64;

/// A stored row: its key and its values, one per slot.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub key: Vec<u8>,
    pub values: Vec<Value>,
}

/// Decodes a stored row into one value per slot of `table`.
pub fn decode_row(table: &TableDef, bytes: &[u8]) -> Result<Vec<Value>> {
    let mut reader = RowReader::new(bytes)?;
    let mut values = Vec::with_capacity(table.columns.len());
    for column in &table.columns {
        let value = match reader.next_value()? {
            None => column.missing.clone(),
            Some(raw) => raw_to_value(raw, column.data_type)?,
        };
        values.push(value);
    }
    Ok(values)
}

fn raw_to_value(raw: RawValue<'_>, data_type: DataType) -> Result<Value> {
    Ok(match raw {
        RawValue::Null => Value::Null,
        RawValue::Boolean(value) => Value::Boolean(value),
        RawValue::Integer(value) => Value::Integer(value),
        RawValue::Real(value) => Value::Real(value),
        RawValue::Double(value) => Value::Double(value),
        RawValue::Numeric(units) => Value::Numeric {
            units,
            scale: match data_type {
                DataType::Numeric { scale, .. } => scale,
                _ => 0,
            },
        },
        RawValue::Bytes(bytes) => match data_type {
            DataType::Bytea | DataType::Uuid => Value::Bytes(bytes.to_vec()),
            DataType::Vector(_) => {
                Value::Vector(qubedb_model::vector::from_bytes(bytes).ok_or_else(|| {
                    Error::internal("stored vector is not a whole number of reals")
                })?)
            }
            DataType::HalfVector(_) => {
                Value::HalfVector(qubedb_model::vector::from_half_bytes(bytes).ok_or_else(
                    || Error::internal("stored halfvec is not a whole number of halves"),
                )?)
            }
            DataType::SparseVector(_) => Value::SparseVector(
                qubedb_model::sparse_vector::SparseVector::from_bytes(bytes)
                    .ok_or_else(|| Error::internal("stored sparsevec is malformed"))?,
            ),
            // The binary form (JSON text stored by earlier versions is converted).
            DataType::Jsonb => Value::Bytes(
                Jsonb::from_stored(bytes)
                    .map_err(crate::sql::convert::json_error)?
                    .into_owned(),
            ),
            _ => Value::Text(
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| Error::internal("stored text is not UTF-8"))?,
            ),
        },
        RawValue::Interval(months, days, microseconds) => Value::Interval {
            months,
            days,
            microseconds,
        },
    })
}

/// A value as PostgreSQL prints it in error details (`Key (id)=(1)`).
pub fn display_value(value: &Value, data_type: DataType) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Boolean(true) => "t".into(),
        Value::Boolean(false) => "f".into(),
        Value::Integer(integer) => match data_type {
            DataType::Date => format_date(*integer),
            DataType::Time => format_time(*integer),
            DataType::Timestamp => format_timestamp(*integer),
            DataType::TimestampTz => format!("{}+00", format_timestamp(*integer)),
            _ => integer.to_string(),
        },
        Value::Real(real) => format_float(f64::from(*real), 6),
        Value::Double(double) => format_float(*double, 15),
        Value::Numeric { units, scale } => format_decimal(*units, *scale),
        Value::Text(text) => text.clone(),
        Value::Bytes(bytes) if data_type == DataType::Jsonb => Jsonb::new(bytes).to_text(),
        Value::Bytes(bytes) if data_type == DataType::Uuid => uuid::Uuid::from_slice(bytes)
            .map(|uuid| uuid.hyphenated().to_string())
            .unwrap_or_default(),
        Value::Bytes(bytes) => format!(
            "\\x{}",
            bytes
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect::<String>()
        ),
        Value::Interval {
            months,
            days,
            microseconds,
        } => format_interval(*months, *days, *microseconds),
        Value::Vector(elements) | Value::HalfVector(elements) => {
            crate::sql::vector::format(elements)
        }
        Value::SparseVector(sparse) => crate::sql::sparse_vector::format(sparse),
    }
}

/// `Key (a, b)=(1, x)`: the key columns `slots` of `table` with `values` (one per slot), for 23505.
pub(crate) fn describe_key(table: &TableDef, slots: &[usize], values: &[Value]) -> String {
    let names: Vec<&str> = slots
        .iter()
        .map(|&slot| table.columns[slot].name.as_str())
        .collect();
    let shown: Vec<String> = slots
        .iter()
        .zip(values)
        .map(|(&slot, value)| display_value(value, table.columns[slot].data_type))
        .collect();
    format!("Key ({})=({})", names.join(", "), shown.join(", "))
}

/// The sequence that numbers hidden row ids of a table without a primary key.
fn row_id_sequence(table: &TableDef) -> SequenceDef {
    SequenceDef {
        id: table.id,
        schema: table.schema,
        name: format!("{}_rowid", table.name),
        data_type: DataType::BigInt,
        start: 1,
        increment: 1,
        min_value: 1,
        max_value: i64::MAX,
        cycle: false,
        owned_by: None,
    }
}

/// The keycode of a row's primary key.
pub fn primary_key_bytes(table: &TableDef, values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for &slot in &table.primary_key {
        encode_value(&values[slot], &mut out);
    }
    out
}

/// The key of an index entry whose key parts are `parts` (and primary-key keycode `primary_key`).
fn entry_key<'v>(
    index: &IndexDef,
    parts: impl Iterator<Item = &'v Value>,
    primary_key: &[u8],
) -> Vec<u8> {
    let mut body = Vec::new();
    let mut has_null = false;
    for value in parts {
        has_null |= value.is_null();
        encode_value(value, &mut body);
    }
    // NULLs are distinct in a unique index: such entries carry the primary key to stay distinct.
    if !index.unique || has_null {
        body.extend_from_slice(primary_key);
    }
    Key::Index(index.id, body).encode()
}

/// The primary-key keycode an index entry's value holds: the whole value, or with `INCLUDE` columns
/// the part before their values.
pub(crate) fn entry_primary_key<'v>(
    table: &TableDef,
    index: &IndexDef,
    value: &'v [u8],
) -> Result<&'v [u8]> {
    if index.include.is_empty() {
        return Ok(value);
    }
    let mut at = 0;
    if table.has_row_id() {
        decode_value(value, &mut at, DataType::BigInt)?;
    } else {
        for &slot in &table.primary_key {
            decode_value(value, &mut at, table.columns[slot].data_type)?;
        }
    }
    Ok(&value[..at])
}

/// The key of a GIN entry: the index, the token (as a keycode, so one token's entries are one
/// prefix), then the row's primary key.
pub(crate) fn gin_entry_key(index: u64, token: &[u8], primary_key: &[u8]) -> Vec<u8> {
    let mut values = Vec::with_capacity(token.len() + primary_key.len() + 4);
    encode_value(&Value::Bytes(token.to_vec()), &mut values);
    values.extend_from_slice(primary_key);
    Key::Index(index, values).encode()
}

/// The key prefix of every GIN entry of `token`.
pub(crate) fn gin_token_prefix(index: u64, token: &[u8]) -> Vec<u8> {
    let mut values = Vec::with_capacity(token.len() + 4);
    encode_value(&Value::Bytes(token.to_vec()), &mut values);
    Key::Index(index, values).encode()
}

/// One index entry: its key, and its value (the row's primary key, then any `INCLUDE` columns).
pub(crate) struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// How the entries of one index are made from rows: the key columns' values, or for an expression
/// index the expressions' (see [`crate::sql::index_keys`]); none for a row a partial index leaves out.
pub(crate) struct IndexEntries<'a> {
    pub def: &'a IndexDef,
    table: &'a TableDef,
    compiled: Option<Arc<CompiledIndex>>,
}

impl<'a> IndexEntries<'a> {
    pub(crate) fn new(
        database: &DatabaseInner,
        table: &'a TableDef,
        def: &'a IndexDef,
    ) -> Result<IndexEntries<'a>> {
        Ok(IndexEntries {
            def,
            table,
            compiled: database.index_compiler.compile(table, def)?,
        })
    }

    /// The key parts of a row's entry (`None`: the row has no entry).
    fn parts(&self, values: &[Value]) -> Result<Option<Vec<Value>>> {
        let computed = match &self.compiled {
            Some(compiled) => match compiled.key_values(self.table, values)? {
                None => return Ok(None),
                Some(parts) => parts,
            },
            None => Vec::new(),
        };
        if !self.def.expressions.is_empty() {
            return Ok(Some(computed));
        }
        Ok(Some(
            self.def
                .columns
                .iter()
                .map(|&slot| values[slot].clone())
                .collect(),
        ))
    }

    /// The entries of a row of `values` whose primary-key keycode is `primary_key`: one for a B-tree
    /// index (none when a partial index leaves the row out), one per token for a GIN index.
    pub(crate) fn entries(&self, values: &[Value], primary_key: &[u8]) -> Result<Vec<Entry>> {
        if self.def.method.hnsw().is_some() {
            // An HNSW graph's nodes are written by `qubedb_model::hnsw::insert`, and stay when their
            // row goes (see that module's docs).
            return Ok(Vec::new());
        }
        let Some(mode) = self.def.method.gin_mode() else {
            return Ok(self.entry(values, primary_key)?.into_iter().collect());
        };
        let bytes = match &values[self.def.columns[0]] {
            Value::Bytes(bytes) => {
                Jsonb::from_stored(bytes).map_err(crate::sql::convert::json_error)?
            }
            _ => return Ok(Vec::new()),
        };
        Ok(gin_tokens(Jsonb::new(&bytes), mode)
            .into_iter()
            .map(|token| Entry {
                key: gin_entry_key(self.def.id, &token, primary_key),
                value: primary_key.to_vec(),
            })
            .collect())
    }

    /// The entry of a row of `values` whose primary-key keycode is `primary_key`; `None` when a partial
    /// index leaves the row out.
    fn entry(&self, values: &[Value], primary_key: &[u8]) -> Result<Option<Entry>> {
        let mut value = primary_key.to_vec();
        for &slot in &self.def.include {
            encode_value(&values[slot], &mut value);
        }
        if self.compiled.is_none() {
            // A plain index: the key straight from the row's columns.
            let parts = self.def.columns.iter().map(|&slot| &values[slot]);
            return Ok(Some(Entry {
                key: entry_key(self.def, parts, primary_key),
                value,
            }));
        }
        let Some(parts) = self.parts(values)? else {
            return Ok(None);
        };
        Ok(Some(Entry {
            key: entry_key(self.def, parts.iter(), primary_key),
            value,
        }))
    }

    /// `Key (parts)=(values)` for the key of a row of `values`, as PostgreSQL details a unique violation.
    pub(crate) fn describe(&self, values: &[Value]) -> Result<String> {
        if self.def.expressions.is_empty() {
            let parts: Vec<Value> = self
                .def
                .columns
                .iter()
                .map(|&slot| values[slot].clone())
                .collect();
            return Ok(describe_key(self.table, &self.def.columns, &parts));
        }
        let parts = self.parts(values)?.unwrap_or_default();
        let compiled = self
            .compiled
            .as_ref()
            .expect("an expression index is compiled");
        let shown: Vec<String> = parts
            .iter()
            .zip(&compiled.part_types)
            .map(|(value, &data_type)| display_value(value, data_type))
            .collect();
        Ok(format!(
            "Key ({})=({})",
            self.def.expressions.join(", "),
            shown.join(", ")
        ))
    }

    /// The 23505 error for a row whose key is already taken.
    pub(crate) fn duplicate(&self, values: &[Value]) -> Result<Error> {
        Ok(Error::user(
            "23505",
            format!(
                "duplicate key value violates unique constraint \"{}\"",
                self.def.name
            ),
        )
        .with_detail(format!("{} already exists.", self.describe(values)?)))
    }
}

/// Writes the rows of one table within one statement.
pub struct TableWriter<'a> {
    pub table: &'a TableDef,
    catalog: &'a Catalog,
    indexes: Vec<IndexEntries<'a>>,
    database: &'a DatabaseInner,
    /// Rows inserted and deleted, reported to automatic ANALYZE when the writer is done.
    inserted: AtomicU64,
    deleted: AtomicU64,
}

impl Drop for TableWriter<'_> {
    fn drop(&mut self) {
        // An UPDATE deletes and inserts each row: count it once.
        let changed = (*self.inserted.get_mut()).max(*self.deleted.get_mut());
        if changed > 0 {
            self.database.auto_analyze.note(self.table.id, changed);
        }
    }
}

impl<'a> TableWriter<'a> {
    pub(crate) fn new(
        catalog: &'a Catalog,
        table: &'a TableDef,
        database: &'a DatabaseInner,
    ) -> Result<TableWriter<'a>> {
        Ok(TableWriter {
            table,
            catalog,
            indexes: catalog
                .indexes_of(table.id)
                .map(|index| IndexEntries::new(database, table, index))
                .collect::<Result<_>>()?,
            database,
            inserted: AtomicU64::new(0),
            deleted: AtomicU64::new(0),
        })
    }

    /// The key a new row gets: its primary key, or a fresh hidden row id.
    pub(crate) fn new_row_key(&self, values: &[Value]) -> Result<Vec<u8>> {
        let primary_key = if self.table.has_row_id() {
            let id = self
                .database
                .next_sequence_value(&row_id_sequence(self.table))?;
            let mut out = Vec::new();
            encode_value(&Value::Integer(id), &mut out);
            out
        } else {
            primary_key_bytes(self.table, values)
        };
        Ok(Key::Row(self.table.id, primary_key).encode())
    }

    /// The primary-key keycode inside a row key.
    fn primary_key_of<'k>(&self, key: &'k [u8]) -> &'k [u8] {
        &key[Key::row_prefix(self.table.id).len()..]
    }

    /// The row a primary key names, if present.
    pub fn existing_by_primary_key(
        &self,
        transaction: &Transaction,
        values: &[Value],
    ) -> Result<Option<StoredRow>> {
        let key = Key::Row(self.table.id, primary_key_bytes(self.table, values)).encode();
        match transaction.get(&key)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(StoredRow {
                values: decode_row(self.table, &bytes)?,
                key,
            })),
        }
    }

    /// The row holding the same key as a row of `values` in unique index `index`, if present.
    pub fn existing_by_index(
        &self,
        transaction: &Transaction,
        index: &IndexDef,
        values: &[Value],
    ) -> Result<Option<StoredRow>> {
        let entries = self
            .indexes
            .iter()
            .find(|entries| entries.def.id == index.id)
            .ok_or_else(|| Error::internal(format!("index {} is not of the table", index.name)))?;
        let Some(parts) = entries.parts(values)? else {
            return Ok(None);
        };
        if parts.iter().any(Value::is_null) {
            return Ok(None);
        }
        let entry = entry_key(index, parts.iter(), &[]);
        let Some(value) = transaction.get(&entry)? else {
            return Ok(None);
        };
        let primary_key = entry_primary_key(self.table, index, &value)?;
        let key = Key::Row(self.table.id, primary_key.to_vec()).encode();
        match transaction.get(&key)? {
            None => Err(Error::internal(format!(
                "index {} points to a missing row",
                index.name
            ))),
            Some(bytes) => Ok(Some(StoredRow {
                values: decode_row(self.table, &bytes)?,
                key,
            })),
        }
    }

    /// The unique indexes of the table.
    pub fn unique_indexes(&self) -> impl Iterator<Item = &'a IndexDef> + '_ {
        self.indexes
            .iter()
            .map(|entries| entries.def)
            .filter(|index| index.unique)
    }

    /// Inserts a row, failing with 23505 if its primary key or a unique index value is taken.
    pub fn insert(
        &self,
        transaction: &mut Transaction,
        key: Vec<u8>,
        values: &[Value],
    ) -> Result<()> {
        if !self.table.has_row_id() && transaction.contains(&key)? {
            let name = self
                .table
                .primary_key_name
                .clone()
                .unwrap_or_else(|| format!("{}_pkey", self.table.name));
            return Err(Error::user(
                "23505",
                format!("duplicate key value violates unique constraint \"{name}\""),
            )
            .with_detail(format!(
                "{} already exists.",
                describe_key(
                    self.table,
                    &self.table.primary_key,
                    &self
                        .table
                        .primary_key
                        .iter()
                        .map(|&slot| values[slot].clone())
                        .collect::<Vec<_>>()
                )
            )));
        }
        let primary_key = self.primary_key_of(&key).to_vec();
        for index in &self.indexes {
            if let Some(config) = index.def.method.hnsw() {
                // The row's node in the graph (a NULL vector has none).
                if let Value::Vector(elements) | Value::HalfVector(elements) =
                    &values[index.def.columns[0]]
                {
                    let graph = self.database.hnsw_graph(self.table, index.def)?;
                    let committed = graph.state.read();
                    qubedb_model::hnsw::insert(
                        transaction,
                        Some(&committed),
                        index.def.id,
                        &config,
                        &primary_key,
                        elements,
                    )?;
                }
                continue;
            }
            for entry in index.entries(values, &primary_key)? {
                if index.def.unique && transaction.contains(&entry.key)? {
                    return Err(index.duplicate(values)?);
                }
                transaction.put(entry.key, entry.value)?;
            }
        }
        transaction.put(key, encode_row(self.table.version, values))?;
        self.inserted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Deletes a row and its index entries.
    pub fn delete(&self, transaction: &mut Transaction, row: &StoredRow) -> Result<()> {
        let primary_key = self.primary_key_of(&row.key).to_vec();
        for index in &self.indexes {
            for entry in index.entries(&row.values, &primary_key)? {
                transaction.delete(entry.key)?;
            }
        }
        transaction.delete(row.key.clone())?;
        self.deleted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Checks that every foreign key of a new or changed row points to an existing parent row.
    pub fn check_references(&self, transaction: &mut Transaction, values: &[Value]) -> Result<()> {
        for foreign_key in &self.table.foreign_keys {
            let child: Vec<Value> = foreign_key
                .columns
                .iter()
                .map(|&slot| values[slot].clone())
                .collect();
            if child.iter().any(Value::is_null) {
                continue;
            }
            let parent = self
                .catalog
                .table(foreign_key.referenced_table)
                .ok_or_else(|| {
                    Error::internal(format!(
                        "foreign key {} references a missing table",
                        foreign_key.name
                    ))
                })?;
            let mut parent_values = vec![Value::Null; parent.columns.len()];
            for (&slot, value) in foreign_key.referenced_columns.iter().zip(&child) {
                parent_values[slot] = value.clone();
            }
            let parent_writer = TableWriter::new(self.catalog, parent, self.database)?;
            let found = if same_columns(&parent.primary_key, &foreign_key.referenced_columns) {
                let key = Key::Row(parent.id, primary_key_bytes(parent, &parent_values)).encode();
                transaction.validate_key(&key);
                transaction.contains(&key)?
            } else {
                let index = parent_writer
                    .unique_indexes()
                    .find(|index| {
                        index.is_plain()
                            && same_columns(&index.columns, &foreign_key.referenced_columns)
                    })
                    .ok_or_else(|| {
                        Error::internal(format!(
                            "foreign key {} has no unique key to reference",
                            foreign_key.name
                        ))
                    })?;
                let found = parent_writer.existing_by_index(transaction, index, &parent_values)?;
                if let Some(row) = &found {
                    transaction.validate_key(&row.key);
                }
                found.is_some()
            };
            if !found {
                return Err(Error::user(
                    "23503",
                    format!(
                        "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
                        self.table.name, foreign_key.name
                    ),
                )
                .with_detail(format!(
                    "{} is not present in table \"{}\".",
                    describe_key(self.table, &foreign_key.columns, &child),
                    parent.name
                )));
            }
        }
        Ok(())
    }
}

/// True when two column lists hold the same columns (in any order).
pub fn same_columns(left: &[usize], right: &[usize]) -> bool {
    left.len() == right.len()
        && left.iter().collect::<HashSet<_>>() == right.iter().collect::<HashSet<_>>()
}

/// Every row of `table` in `transaction`'s view.
pub fn scan_table(transaction: &Transaction, table: &TableDef) -> Result<Vec<StoredRow>> {
    let mut rows = Vec::new();
    for item in transaction.scan(Key::row_range(table.id), false)? {
        let (key, value) = item?;
        rows.push(StoredRow {
            values: decode_row(table, &value)?,
            key,
        });
    }
    Ok(rows)
}

/// A change to a referenced row: its old values, and its new values (`None` when deleted).
pub struct ParentChange {
    pub old: Vec<Value>,
    pub new: Option<Vec<Value>>,
}

/// Applies the ON DELETE / ON UPDATE actions of every foreign key that references `parent` for the rows
/// changed by a statement, and fails with 23503 where a reference is left dangling.
pub(crate) fn enforce_referencing(
    transaction: &mut Transaction,
    catalog: &Catalog,
    database: &DatabaseInner,
    parent: &TableDef,
    changes: &[ParentChange],
    depth: usize,
) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    if depth > CASCADE_DEPTH_MAX {
        return Err(Error::user(
            "54001",
            format!("foreign key cascades deeper than cascade_depth_max = {CASCADE_DEPTH_MAX}"),
        ));
    }
    for (child_table, foreign_key) in catalog.referencing(parent.id) {
        let key_of = |values: &[Value]| -> Option<Vec<u8>> {
            let referenced: Vec<Value> = foreign_key
                .referenced_columns
                .iter()
                .map(|&slot| values[slot].clone())
                .collect();
            if referenced.iter().any(Value::is_null) {
                None
            } else {
                Some(qubedb_model::keycode::encode_values(&referenced))
            }
        };
        // Old referenced values whose rows went away or changed key, with the replacement values if any.
        let mut affected: HashMap<Vec<u8>, Option<Vec<Value>>> = HashMap::new();
        for change in changes {
            let Some(old_key) = key_of(&change.old) else {
                continue;
            };
            match &change.new {
                None => {
                    affected.insert(old_key, None);
                }
                Some(new) => {
                    if key_of(new).as_ref() != Some(&old_key) {
                        let replacement = foreign_key
                            .referenced_columns
                            .iter()
                            .map(|&slot| new[slot].clone())
                            .collect();
                        affected.insert(old_key, Some(replacement));
                    }
                }
            }
        }
        // A key that went away from one row but is held by another changed row is still present.
        for change in changes {
            if let Some(new) = &change.new
                && let Some(new_key) = key_of(new)
            {
                affected.remove(&new_key);
            }
        }
        if affected.is_empty() {
            continue;
        }
        transaction.validate_range(Key::row_range(child_table.id));
        let children: Vec<StoredRow> = scan_table(transaction, child_table)?
            .into_iter()
            .filter(|row| {
                let values: Vec<Value> = foreign_key
                    .columns
                    .iter()
                    .map(|&slot| row.values[slot].clone())
                    .collect();
                !values.iter().any(Value::is_null)
                    && affected.contains_key(&qubedb_model::keycode::encode_values(&values))
            })
            .collect();
        if children.is_empty() {
            continue;
        }
        let deleting = changes.iter().any(|change| change.new.is_none());
        let action = if deleting {
            foreign_key.on_delete
        } else {
            foreign_key.on_update
        };
        let writer = TableWriter::new(catalog, child_table, database)?;
        match action {
            ReferentialAction::NoAction | ReferentialAction::Restrict => {
                let row = &children[0];
                let values: Vec<Value> = foreign_key
                    .columns
                    .iter()
                    .map(|&slot| row.values[slot].clone())
                    .collect();
                let referenced_names: Vec<&str> = foreign_key
                    .referenced_columns
                    .iter()
                    .map(|&slot| parent.columns[slot].name.as_str())
                    .collect();
                let shown: Vec<String> = foreign_key
                    .columns
                    .iter()
                    .zip(&values)
                    .map(|(&slot, value)| display_value(value, child_table.columns[slot].data_type))
                    .collect();
                return Err(Error::user(
                    "23503",
                    format!(
                        "update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{}\"",
                        parent.name, foreign_key.name, child_table.name
                    ),
                )
                .with_detail(format!(
                    "Key ({})=({}) is still referenced from table \"{}\".",
                    referenced_names.join(", "),
                    shown.join(", "),
                    child_table.name
                )));
            }
            ReferentialAction::Cascade
            | ReferentialAction::SetNull
            | ReferentialAction::SetDefault => {
                let mut child_changes = Vec::new();
                for row in &children {
                    let values: Vec<Value> = foreign_key
                        .columns
                        .iter()
                        .map(|&slot| row.values[slot].clone())
                        .collect();
                    let replacement = affected
                        .get(&qubedb_model::keycode::encode_values(&values))
                        .cloned()
                        .flatten();
                    let new_values = match (action, replacement) {
                        (ReferentialAction::Cascade, None) => None,
                        (ReferentialAction::Cascade, Some(replacement)) => {
                            let mut new_values = row.values.clone();
                            for (&slot, value) in foreign_key.columns.iter().zip(replacement) {
                                new_values[slot] = value;
                            }
                            Some(new_values)
                        }
                        _ => {
                            let mut new_values = row.values.clone();
                            for &slot in &foreign_key.columns {
                                if child_table.columns[slot].not_null {
                                    return Err(not_null_violation(child_table, slot));
                                }
                                new_values[slot] = Value::Null;
                            }
                            Some(new_values)
                        }
                    };
                    child_changes.push((row.clone(), new_values));
                }
                apply_child_changes(
                    transaction,
                    catalog,
                    database,
                    &writer,
                    child_changes,
                    depth,
                )?;
            }
        }
    }
    Ok(())
}

fn apply_child_changes(
    transaction: &mut Transaction,
    catalog: &Catalog,
    database: &DatabaseInner,
    writer: &TableWriter<'_>,
    changes: Vec<(StoredRow, Option<Vec<Value>>)>,
    depth: usize,
) -> Result<()> {
    for (row, _) in &changes {
        writer.delete(transaction, row)?;
    }
    let mut parent_changes = Vec::new();
    for (row, new_values) in changes {
        if let Some(new_values) = &new_values {
            let key = if writer.table.has_row_id() {
                row.key.clone()
            } else {
                Key::Row(writer.table.id, primary_key_bytes(writer.table, new_values)).encode()
            };
            writer.insert(transaction, key, new_values)?;
        }
        parent_changes.push(ParentChange {
            old: row.values,
            new: new_values,
        });
    }
    enforce_referencing(
        transaction,
        catalog,
        database,
        writer.table,
        &parent_changes,
        depth + 1,
    )
}

/// The 23502 error for a NULL in a NOT NULL column.
pub fn not_null_violation(table: &TableDef, slot: usize) -> Error {
    Error::user(
        "23502",
        format!(
            "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
            table.columns[slot].name, table.name
        ),
    )
}
