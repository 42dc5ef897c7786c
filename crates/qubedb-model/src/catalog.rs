//! The catalog: schemas, tables, views, indexes, sequences and user-defined types.
//!
//! Every schema object has a numeric id, handed out from the `NextObjectId` meta key, and is stored as one
//! `Object(id)` key holding its definition as JSON. Names map to ids only in memory (rebuilt on load), so a
//! RENAME rewrites one object and no row. Catalog changes are ordinary writes of the enclosing transaction:
//! a rolled-back `CREATE TABLE` leaves nothing behind, and a committed one becomes visible atomically with the
//! rows written after it.
//!
//! Every transaction that changes the catalog also bumps the `CatalogVersion` meta key. Readers cache a
//! loaded [`Catalog`] and reuse it while the version in their snapshot is unchanged, so a statement costs one
//! key read for the catalog, not a scan. Two concurrent DDL transactions both write that key, so the second
//! to commit fails with a serialization conflict: DDL is serialized.

use std::collections::{BTreeMap, HashMap};

use qubedb_kv::Transaction;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::jsonb::GinMode;
use crate::keys::{Key, Meta};
use crate::types::{DataType, Value};

/// The on-disk format version written by this build.
pub const FORMAT_VERSION: u64 = 1;
/// Id of the schema `public`, created with the store.
pub const PUBLIC_SCHEMA_ID: u64 = 1;
/// First id handed out to user objects.
const FIRST_OBJECT_ID: u64 = 1000;

/// A schema object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Object {
    Schema(SchemaDef),
    Table(TableDef),
    View(ViewDef),
    Index(IndexDef),
    Sequence(SequenceDef),
    Type(TypeDef),
}

impl Object {
    pub fn id(&self) -> u64 {
        match self {
            Object::Schema(schema) => schema.id,
            Object::Table(table) => table.id,
            Object::View(view) => view.id,
            Object::Index(index) => index.id,
            Object::Sequence(sequence) => sequence.id,
            Object::Type(type_def) => type_def.id,
        }
    }

    /// The object's schema and name (a schema is its own namespace: schema id 0).
    pub fn qualified_name(&self) -> (u64, &str) {
        match self {
            Object::Schema(schema) => (0, &schema.name),
            Object::Table(table) => (table.schema, &table.name),
            Object::View(view) => (view.schema, &view.name),
            Object::Index(index) => (index.schema, &index.name),
            Object::Sequence(sequence) => (sequence.schema, &sequence.name),
            Object::Type(type_def) => (type_def.schema, &type_def.name),
        }
    }

    /// What kind of object this is, for messages ("table", "view", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Schema(_) => "schema",
            Object::Table(_) => "table",
            Object::View(_) => "view",
            Object::Index(_) => "index",
            Object::Sequence(_) => "sequence",
            Object::Type(_) => "type",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaDef {
    pub id: u64,
    pub name: String,
}

/// A table. Columns are kept by slot (their position in stored rows); a dropped column keeps its slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub id: u64,
    pub schema: u64,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Slots of the primary key columns, in key order; empty when rows are keyed by a hidden row id.
    pub primary_key: Vec<usize>,
    /// Name of the primary key constraint.
    pub primary_key_name: Option<String>,
    pub checks: Vec<CheckDef>,
    pub foreign_keys: Vec<ForeignKeyDef>,
    /// Bumped by every change of the column list; stored in each row.
    pub version: u32,
}

impl TableDef {
    /// The live (not dropped) columns with their slots, in declaration order.
    pub fn live_columns(&self) -> impl Iterator<Item = (usize, &ColumnDef)> {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, column)| !column.dropped)
    }

    /// The slot of the live column called `name`.
    pub fn column_slot(&self, name: &str) -> Option<usize> {
        self.live_columns()
            .find(|(_, column)| column.name == name)
            .map(|(slot, _)| slot)
    }

    /// True when rows are keyed by a hidden row id.
    pub fn has_row_id(&self) -> bool {
        self.primary_key.is_empty()
    }

    /// The types of every slot, for decoding keys and rows.
    pub fn slot_types(&self) -> Vec<DataType> {
        self.columns.iter().map(|column| column.data_type).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub data_type: DataType,
    pub not_null: bool,
    /// The DEFAULT expression, as SQL text.
    pub default: Option<String>,
    pub identity: Option<Identity>,
    pub dropped: bool,
    /// The value rows written before this column existed read for it.
    pub missing: Value,
}

/// `GENERATED { ALWAYS | BY DEFAULT } AS IDENTITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Identity {
    Always,
    ByDefault,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckDef {
    pub name: String,
    /// The boolean expression, as SQL text.
    pub expression: String,
}

/// A user-defined type: a composite (`CREATE TYPE name AS (...)`) or a domain (`CREATE DOMAIN`).
/// Types share the namespace of relations, as in PostgreSQL, where every table is also a row type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeDef {
    pub id: u64,
    pub schema: u64,
    pub name: String,
    pub kind: TypeKind,
}

/// What a [`TypeDef`] is. Types it is built from are kept as SQL type text (`integer[]`, `jbpop`),
/// resolved when the type is used; `DROP TYPE` refuses to drop a type another type names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TypeKind {
    /// A row type: named, typed fields.
    Composite { fields: Vec<TypeFieldDef> },
    /// A base type with constraints: values that are NULL (when `not_null`) or fail a check are refused.
    Domain {
        base: String,
        not_null: bool,
        /// The DEFAULT expression, as SQL text.
        default: Option<String>,
        /// Checks, each over the keyword `VALUE`.
        checks: Vec<CheckDef>,
    },
}

/// A field of a composite type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeFieldDef {
    pub name: String,
    /// The field's type, as SQL text.
    pub type_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReferentialAction {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKeyDef {
    pub name: String,
    pub columns: Vec<usize>,
    pub referenced_table: u64,
    pub referenced_columns: Vec<usize>,
    pub on_delete: ReferentialAction,
    pub on_update: ReferentialAction,
}

/// A secondary index. Unique indexes also back UNIQUE constraints (`constraint` set).
///
/// The key of a plain index is `columns`. An expression index (`CREATE INDEX ON t (lower(name), id)`)
/// has an empty `columns` and one SQL expression per key part in `expressions` (a part that is a bare
/// column is the expression naming it). A partial index (`WHERE predicate`) holds entries only for the
/// rows its predicate accepts. `include` columns are stored in each entry's value, after the row's
/// primary key, and are not part of the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexDef {
    pub id: u64,
    pub schema: u64,
    pub name: String,
    pub table: u64,
    pub columns: Vec<usize>,
    pub unique: bool,
    /// True when the index exists to enforce a UNIQUE constraint of the table.
    pub constraint: bool,
    /// The key parts of an expression index, as SQL text (empty for a plain index).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expressions: Vec<String>,
    /// The predicate of a partial index, as SQL text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<String>,
    /// Columns (slots) stored in the entries besides the key (`INCLUDE`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<usize>,
    /// How the entries are made: B-tree keys or an inverted (GIN) index.
    #[serde(default, skip_serializing_if = "IndexMethod::is_btree")]
    pub method: IndexMethod,
}

/// An index's access method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexMethod {
    /// One entry per row keyed by the indexed values, in order.
    #[default]
    BTree,
    /// An inverted index of a jsonb column: one entry per key and value of the document
    /// (`jsonb_ops`), or per path and value (`jsonb_path_ops`), each pointing at the row
    /// (`crate::jsonb::gin_tokens`). `exact_paths`: the paths are spelled out
    /// ([`GinMode::Paths`]); `jsonb_path_ops` indexes made before that hash them.
    Gin {
        path_ops: bool,
        #[serde(default)]
        exact_paths: bool,
    },
    /// An HNSW graph over a vector column (`crate::hnsw`): `m` links per node (twice that on layer
    /// 0), a candidate list of `ef_construction` while linking, distances by `metric` (the operator
    /// class), over vectors of `kind` (`vector` or `halfvec`).
    Hnsw {
        m: u16,
        ef_construction: u16,
        metric: crate::vector::Metric,
        #[serde(default)]
        kind: crate::vector::VectorKind,
    },
}

impl IndexMethod {
    /// True for B-tree.
    pub fn is_btree(&self) -> bool {
        *self == IndexMethod::BTree
    }

    /// How a GIN index tokenizes documents; `None` for B-tree.
    pub fn gin_mode(&self) -> Option<GinMode> {
        match *self {
            IndexMethod::BTree | IndexMethod::Hnsw { .. } => None,
            IndexMethod::Gin {
                path_ops: false, ..
            } => Some(GinMode::Keys),
            IndexMethod::Gin {
                path_ops: true,
                exact_paths: false,
            } => Some(GinMode::PathHashes),
            IndexMethod::Gin {
                path_ops: true,
                exact_paths: true,
            } => Some(GinMode::Paths),
        }
    }

    /// The HNSW configuration of an HNSW index.
    pub fn hnsw(&self) -> Option<crate::hnsw::HnswConfig> {
        match *self {
            IndexMethod::Hnsw {
                m,
                ef_construction,
                metric,
                ..
            } => Some(crate::hnsw::HnswConfig {
                m: usize::from(m),
                ef_construction: usize::from(ef_construction),
                metric,
            }),
            _ => None,
        }
    }

    /// The access method's name (`pg_am.amname`).
    pub fn name(&self) -> &'static str {
        match self {
            IndexMethod::BTree => "btree",
            IndexMethod::Gin { .. } => "gin",
            IndexMethod::Hnsw { .. } => "hnsw",
        }
    }

    /// The operator class named after each key column, as `pg_get_indexdef` prints it (`None` for the
    /// default).
    pub fn operator_class(&self) -> Option<&'static str> {
        match self {
            IndexMethod::Gin { path_ops: true, .. } => Some("jsonb_path_ops"),
            IndexMethod::Hnsw { metric, kind, .. } => Some(metric.operator_class(*kind)),
            _ => None,
        }
    }

    /// True for a GIN index of `jsonb_path_ops`.
    pub fn is_path_ops(&self) -> bool {
        matches!(self, IndexMethod::Gin { path_ops: true, .. })
    }
}

impl IndexDef {
    /// True for an HNSW index of column `slot` that measures `metric`: one that can order rows by
    /// that distance from a vector.
    pub fn orders_by_distance(&self, slot: usize, metric: crate::vector::Metric) -> bool {
        self.columns.first() == Some(&slot)
            && self
                .method
                .hnsw()
                .is_some_and(|config| config.metric == metric)
    }

    /// True for a B-tree index on plain columns over every row: its key is `columns`, and every row
    /// has an entry. Only such an index can back a constraint, a foreign key or an `ON CONFLICT`
    /// target.
    pub fn is_plain(&self) -> bool {
        self.expressions.is_empty() && self.predicate.is_none() && self.method.is_btree()
    }

    /// The number of key parts.
    pub fn key_len(&self) -> usize {
        if self.expressions.is_empty() {
            self.columns.len()
        } else {
            self.expressions.len()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewDef {
    pub id: u64,
    pub schema: u64,
    pub name: String,
    /// The defining query, as SQL text.
    pub query: String,
    /// Column names given in `CREATE VIEW v (a, b)`, if any.
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceDef {
    pub id: u64,
    pub schema: u64,
    pub name: String,
    pub data_type: DataType,
    pub start: i64,
    pub increment: i64,
    pub min_value: i64,
    pub max_value: i64,
    pub cycle: bool,
    /// The table and column slot whose default draws from this sequence (SERIAL, IDENTITY).
    pub owned_by: Option<(u64, usize)>,
}

/// The state of a sequence, stored under `Sequence(id)`: the last value handed out and whether any was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceState {
    pub last_value: i64,
    pub is_called: bool,
}

/// The catalog as one transaction sees it.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The `CatalogVersion` this catalog was loaded at (plus local changes).
    pub version: u64,
    objects: BTreeMap<u64, Object>,
    names: HashMap<(u64, String), u64>,
}

impl Catalog {
    /// Creates the store's initial catalog if the store is new. Returns true if it did.
    pub fn bootstrap(transaction: &mut Transaction) -> Result<bool> {
        if let Some(version) = read_u64(transaction, Meta::FormatVersion)? {
            if version != FORMAT_VERSION {
                return Err(Error::user(
                    "XX000",
                    format!(
                        "data was written with format version {version}, this build reads version {FORMAT_VERSION}"
                    ),
                ));
            }
            return Ok(false);
        }
        write_u64(transaction, Meta::FormatVersion, FORMAT_VERSION)?;
        write_u64(transaction, Meta::NextObjectId, FIRST_OBJECT_ID)?;
        let mut catalog = Catalog::default();
        catalog.put(
            transaction,
            Object::Schema(SchemaDef {
                id: PUBLIC_SCHEMA_ID,
                name: "public".into(),
            }),
        )?;
        Ok(true)
    }

    /// The catalog version in `transaction`'s view.
    pub fn read_version(transaction: &Transaction) -> Result<u64> {
        Ok(read_u64(transaction, Meta::CatalogVersion)?.unwrap_or(0))
    }

    /// Loads every catalog object visible to `transaction`.
    pub fn load(transaction: &Transaction) -> Result<Catalog> {
        let mut catalog = Catalog {
            version: Self::read_version(transaction)?,
            ..Catalog::default()
        };
        for item in transaction.scan_prefix(&Key::object_prefix(), false)? {
            let (_, value) = item?;
            let object: Object = serde_json::from_slice(&value)
                .map_err(|error| Error::corruption(format!("catalog object: {error}")))?;
            catalog.insert_in_memory(object);
        }
        Ok(catalog)
    }

    fn insert_in_memory(&mut self, object: Object) {
        let (schema, name) = object.qualified_name();
        self.names.insert((schema, name.to_string()), object.id());
        self.objects.insert(object.id(), object);
    }

    fn remove_in_memory(&mut self, id: u64) -> Option<Object> {
        let object = self.objects.remove(&id)?;
        let (schema, name) = object.qualified_name();
        self.names.remove(&(schema, name.to_string()));
        Some(object)
    }

    /// Hands out a new object id.
    pub fn allocate_id(transaction: &mut Transaction) -> Result<u64> {
        let next = read_u64(transaction, Meta::NextObjectId)?.unwrap_or(FIRST_OBJECT_ID);
        write_u64(transaction, Meta::NextObjectId, next + 1)?;
        Ok(next)
    }

    /// Creates or replaces `object`, in memory and in `transaction`.
    pub fn put(&mut self, transaction: &mut Transaction, object: Object) -> Result<()> {
        let bytes = serde_json::to_vec(&object).map_err(|error| {
            Error::corruption(format!("catalog object does not serialize: {error}"))
        })?;
        transaction.put(Key::Object(object.id()).encode(), bytes)?;
        self.remove_in_memory(object.id());
        self.insert_in_memory(object);
        self.bump_version(transaction)
    }

    /// Removes object `id`, in memory and in `transaction`.
    pub fn remove(&mut self, transaction: &mut Transaction, id: u64) -> Result<Option<Object>> {
        transaction.delete(Key::Object(id).encode())?;
        let removed = self.remove_in_memory(id);
        self.bump_version(transaction)?;
        Ok(removed)
    }

    fn bump_version(&mut self, transaction: &mut Transaction) -> Result<()> {
        let stored = Self::read_version(transaction)?;
        self.version = stored + 1;
        write_u64(transaction, Meta::CatalogVersion, self.version)
    }

    /// The object with id `id`.
    pub fn object(&self, id: u64) -> Option<&Object> {
        self.objects.get(&id)
    }

    /// Every object, by id.
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.objects.values()
    }

    /// The id of schema `name`.
    pub fn schema_id(&self, name: &str) -> Option<u64> {
        self.names.get(&(0, name.to_string())).copied()
    }

    /// The table, view, index or sequence called `name` in schema `schema`.
    pub fn relation(&self, schema: u64, name: &str) -> Option<&Object> {
        self.named(schema, name)
            .filter(|object| !matches!(object, Object::Type(_)))
    }

    /// Any object called `name` in schema `schema`: a relation or a type (they share one namespace).
    pub fn named(&self, schema: u64, name: &str) -> Option<&Object> {
        self.names
            .get(&(schema, name.to_string()))
            .and_then(|id| self.objects.get(id))
    }

    /// The user-defined type called `name` in schema `schema`.
    pub fn type_named(&self, schema: u64, name: &str) -> Option<&TypeDef> {
        match self.named(schema, name) {
            Some(Object::Type(type_def)) => Some(type_def),
            _ => None,
        }
    }

    /// The table with id `id`.
    pub fn table(&self, id: u64) -> Option<&TableDef> {
        match self.objects.get(&id) {
            Some(Object::Table(table)) => Some(table),
            _ => None,
        }
    }

    /// The sequence with id `id`.
    pub fn sequence(&self, id: u64) -> Option<&SequenceDef> {
        match self.objects.get(&id) {
            Some(Object::Sequence(sequence)) => Some(sequence),
            _ => None,
        }
    }

    /// The indexes of table `table`.
    pub fn indexes_of(&self, table: u64) -> impl Iterator<Item = &IndexDef> {
        self.objects
            .values()
            .filter_map(move |object| match object {
                Object::Index(index) if index.table == table => Some(index),
                _ => None,
            })
    }

    /// The foreign keys of other tables (or the same table) that reference `table`.
    pub fn referencing(&self, table: u64) -> Vec<(&TableDef, &ForeignKeyDef)> {
        self.objects
            .values()
            .filter_map(|object| match object {
                Object::Table(referencing) => Some(referencing),
                _ => None,
            })
            .flat_map(|referencing| {
                referencing
                    .foreign_keys
                    .iter()
                    .filter(move |key| key.referenced_table == table)
                    .map(move |key| (referencing, key))
            })
            .collect()
    }

    /// Sequences owned by a column of `table`.
    pub fn sequences_owned_by(&self, table: u64) -> Vec<&SequenceDef> {
        self.objects
            .values()
            .filter_map(|object| match object {
                Object::Sequence(sequence)
                    if sequence.owned_by.map(|(owner, _)| owner) == Some(table) =>
                {
                    Some(sequence)
                }
                _ => None,
            })
            .collect()
    }

    /// The name of schema `id`.
    pub fn schema_name(&self, id: u64) -> &str {
        match self.objects.get(&id) {
            Some(Object::Schema(schema)) => &schema.name,
            _ => "?",
        }
    }
}

/// Reads a sequence's state.
pub fn read_sequence_state(transaction: &Transaction, id: u64) -> Result<Option<SequenceState>> {
    match transaction.get(&Key::Sequence(id).encode())? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| Error::corruption(format!("sequence state: {error}"))),
    }
}

/// Writes a sequence's state.
pub fn write_sequence_state(
    transaction: &mut Transaction,
    id: u64,
    state: SequenceState,
) -> Result<()> {
    let bytes = serde_json::to_vec(&state).map_err(|error| {
        Error::corruption(format!("sequence state does not serialize: {error}"))
    })?;
    transaction.put(Key::Sequence(id).encode(), bytes)?;
    Ok(())
}

/// What `ANALYZE` found about a table, kept under [`Key::Statistics`] and changed transactionally with
/// the data (PostgreSQL's `pg_statistic`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableStatistics {
    /// Live rows when analyzed.
    pub rows: u64,
    /// When, RFC 3339.
    pub analyzed_at: String,
    pub columns: Vec<ColumnStatistics>,
}

/// One column's statistics, by column slot (so a renamed column keeps them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnStatistics {
    pub slot: usize,
    /// Fraction of rows where the column is NULL.
    pub null_fraction: f64,
    /// Distinct non-null values: a count when positive; when negative, minus the fraction of rows
    /// (PostgreSQL's `n_distinct` convention, for columns whose distinct count grows with the table).
    pub distinct: f64,
    /// Average width of the non-null values, in bytes of their text form.
    pub average_width: i64,
    /// The most common values (keycode) with the fraction of all rows each holds, most common first
    /// (PostgreSQL's `most_common_vals` / `most_common_freqs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub most_common: Vec<CommonValue>,
    /// Bounds (keycode, ascending) dividing the other non-null values into buckets of equal row counts
    /// (PostgreSQL's `histogram_bounds`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub histogram: Vec<Vec<u8>>,
}

/// One of a column's most common values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommonValue {
    /// The value's keycode.
    pub key: Vec<u8>,
    /// The fraction of the table's rows holding it.
    pub frequency: f64,
}

/// The statistics of `table`, if it was analyzed.
pub fn read_statistics(transaction: &Transaction, table: u64) -> Result<Option<TableStatistics>> {
    match transaction.get(&Key::Statistics(table).encode())? {
        None => Ok(None),
        Some(bytes) => decode_statistics(&bytes).map(Some),
    }
}

/// Table statistics from their stored form (the value at `Key::Statistics(table)`).
pub fn decode_statistics(bytes: &[u8]) -> Result<TableStatistics> {
    serde_json::from_slice(bytes)
        .map_err(|error| Error::corruption(format!("table statistics: {error}")))
}

/// Writes the statistics of `table`.
pub fn write_statistics(
    transaction: &mut Transaction,
    table: u64,
    statistics: &TableStatistics,
) -> Result<()> {
    let bytes = serde_json::to_vec(statistics)
        .map_err(|error| Error::corruption(format!("statistics do not serialize: {error}")))?;
    transaction.put(Key::Statistics(table).encode(), bytes)?;
    Ok(())
}

/// A role: who may log in and what it may do. Roles belong to the whole data directory and are kept in
/// the default database's store, under [`Key::Role`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDef {
    pub oid: u32,
    pub name: String,
    pub superuser: bool,
    pub inherit: bool,
    pub create_role: bool,
    pub create_database: bool,
    pub login: bool,
    pub replication: bool,
    pub bypass_rls: bool,
    /// -1: no limit.
    pub connection_limit: i32,
    /// The SCRAM-SHA-256 verifier (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`), never
    /// the password itself; `None`: the role cannot log in with a password.
    pub password: Option<String>,
    /// After this moment (RFC 3339) the password is no longer valid; `None`: forever.
    pub valid_until: Option<String>,
}

/// Every role, by OID.
pub fn read_roles(transaction: &Transaction) -> Result<Vec<RoleDef>> {
    let mut roles = Vec::new();
    for item in transaction.scan_prefix(&Key::role_prefix(), false)? {
        let (_, value) = item?;
        roles.push(
            serde_json::from_slice(&value)
                .map_err(|error| Error::corruption(format!("role: {error}")))?,
        );
    }
    Ok(roles)
}

/// Writes (creates or replaces) a role.
pub fn write_role(transaction: &mut Transaction, role: &RoleDef) -> Result<()> {
    let bytes = serde_json::to_vec(role)
        .map_err(|error| Error::corruption(format!("role does not serialize: {error}")))?;
    transaction.put(Key::Role(u64::from(role.oid)).encode(), bytes)?;
    Ok(())
}

/// Deletes a role.
pub fn delete_role(transaction: &mut Transaction, oid: u32) -> Result<()> {
    transaction.delete(Key::Role(u64::from(oid)).encode())?;
    Ok(())
}

fn read_u64(transaction: &Transaction, meta: Meta) -> Result<Option<u64>> {
    match transaction.get(&Key::Meta(meta).encode())? {
        None => Ok(None),
        Some(bytes) => Ok(Some(u64::from_be_bytes(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| Error::corruption(format!("meta key {meta:?} is not 8 bytes")))?,
        ))),
    }
}

fn write_u64(transaction: &mut Transaction, meta: Meta, value: u64) -> Result<()> {
    transaction.put(Key::Meta(meta).encode(), value.to_be_bytes().to_vec())?;
    Ok(())
}
