//! PostgreSQL's system catalogs, computed from QubeDB's own catalog: the `pg_catalog` tables and the
//! `information_schema` views that psql (`\dt`, `\dn`, `\l`, `\du`), drivers and ORMs read to learn what a
//! database holds, and the catalog functions they call (`format_type`, `pg_get_indexdef`,
//! `pg_table_is_visible`, ...).
//!
//! Nothing here is stored: each table is built when a statement names it, from the catalog the
//! statement's transaction sees, so it is always exactly as current as the user's own tables (a
//! `CREATE TABLE` earlier in the same transaction shows up). The catalogs are small; building them costs
//! microseconds per object.
//!
//! # Object identifiers
//!
//! PostgreSQL's OIDs are fixed where clients know them: namespaces `pg_catalog` 11 and `public` 2200, the
//! bootstrap role 10 (QubeDB's `qubedb`), the built-in types (int4 23, text 25, ...), access methods
//! (heap 2, btree 403), collations (default 100). A QubeDB object (schema, table, view, index, sequence)
//! with catalog id `n` has OID `16384 + n`, PostgreSQL's first user OID. What PostgreSQL stores as
//! separate objects and QubeDB keeps inside a table definition — the primary key's index, constraints,
//! column defaults — gets an OID derived from the table's id ([`derived_oid`]).
//!
//! # What is not here
//!
//! Only user relations are listed in `pg_class` (not the catalogs themselves); view columns are not in
//! `pg_attribute` (their types are known only by planning the view); tables that QubeDB has no use for yet
//! (`pg_description`, `pg_inherits`, `pg_trigger`, `pg_policy`, ...) exist and are empty, which is what
//! they hold for a database without comments, inheritance, triggers or policies.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Int16Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::datasource::MemTable;
use qubedb_model::DataType;
use qubedb_model::catalog::{
    Catalog, IndexDef, IndexMethod, Object, PUBLIC_SCHEMA_ID, ReferentialAction, TableDef,
};

use crate::cluster::DatabaseEntry;
use crate::error::{Error, Result};
use crate::session::Shared;
use crate::sql::convert::TYPE_METADATA_KEY;
use qubedb_model::catalog::{RoleDef, TableStatistics};
use qubedb_model::keycode::decode_value;

use crate::sql::write::display_value;

/// `pg_catalog`'s OID.
pub const PG_CATALOG_OID: i64 = 11;
/// `public`'s OID.
pub const PUBLIC_OID: i64 = 2200;
/// `information_schema`'s OID.
pub const INFORMATION_SCHEMA_OID: i64 = 13_000;
/// The bootstrap role's OID; QubeDB's objects are all owned by it.
pub const OWNER_OID: i64 = 10;
/// The owner's name.
pub const OWNER_NAME: &str = "qubedb";
/// The first OID of user objects.
const FIRST_USER_OID: i64 = 16_384;
/// Base of the OIDs derived from a table's id.
const DERIVED_OID_BASE: i64 = 1_000_000_000;
/// The default collation's OID.
const DEFAULT_COLLATION_OID: i64 = 100;
/// `btree`'s OID.
const BTREE_OID: i64 = 403;

/// The OID of the catalog object with id `id`.
pub fn object_oid(id: u64) -> i64 {
    if id == PUBLIC_SCHEMA_ID {
        PUBLIC_OID
    } else {
        FIRST_USER_OID + id as i64
    }
}

/// The catalog id of the object with OID `oid`, if it names one.
pub fn object_id(oid: i64) -> Option<u64> {
    if oid == PUBLIC_OID {
        Some(PUBLIC_SCHEMA_ID)
    } else if (FIRST_USER_OID..DERIVED_OID_BASE).contains(&oid) {
        Some((oid - FIRST_USER_OID) as u64)
    } else {
        None
    }
}

/// What a derived OID stands for, for the table it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derived {
    /// The index behind the primary key.
    PrimaryKeyIndex,
    /// Constraint number `n` of the table, in [`table_constraints`] order.
    Constraint(usize),
    /// The default of the column in slot `n`.
    Default(usize),
}

/// The OID of something PostgreSQL stores apart and QubeDB keeps in table `table`'s definition.
pub fn derived_oid(table: u64, what: Derived) -> i64 {
    let offset = match what {
        Derived::PrimaryKeyIndex => 0,
        Derived::Constraint(number) => 1 + number as i64,
        Derived::Default(slot) => 1 << 11 | slot as i64,
    };
    DERIVED_OID_BASE + ((table as i64) << 12) + offset
}

fn derived_of(oid: i64) -> Option<(u64, Derived)> {
    if oid < DERIVED_OID_BASE {
        return None;
    }
    let rest = oid - DERIVED_OID_BASE;
    let table = (rest >> 12) as u64;
    let offset = rest & 0xfff;
    Some((
        table,
        match offset {
            0 => Derived::PrimaryKeyIndex,
            offset if offset & (1 << 11) != 0 => Derived::Default((offset & 0x7ff) as usize),
            offset => Derived::Constraint(offset as usize - 1),
        },
    ))
}

/// A built-in type as `pg_type` lists it.
struct BuiltinType {
    oid: i64,
    name: &'static str,
    /// `format_type`'s name.
    display: &'static str,
    length: i16,
    category: &'static str,
    array: i64,
    collatable: bool,
}

const fn builtin(
    oid: i64,
    name: &'static str,
    display: &'static str,
    length: i16,
    category: &'static str,
    array: i64,
    collatable: bool,
) -> BuiltinType {
    BuiltinType {
        oid,
        name,
        display,
        length,
        category,
        array,
        collatable,
    }
}

const BUILTIN_TYPES: &[BuiltinType] = &[
    builtin(16, "bool", "boolean", 1, "B", 1000, false),
    builtin(17, "bytea", "bytea", -1, "U", 1001, false),
    builtin(18, "char", "\"char\"", 1, "Z", 1002, false),
    builtin(19, "name", "name", 64, "S", 1003, true),
    builtin(20, "int8", "bigint", 8, "N", 1016, false),
    builtin(21, "int2", "smallint", 2, "N", 1005, false),
    builtin(23, "int4", "integer", 4, "N", 1007, false),
    builtin(25, "text", "text", -1, "S", 1009, true),
    builtin(26, "oid", "oid", 4, "N", 1028, false),
    builtin(114, "json", "json", -1, "U", 199, false),
    builtin(700, "float4", "real", 4, "N", 1021, false),
    builtin(701, "float8", "double precision", 8, "N", 1022, false),
    builtin(1042, "bpchar", "character", -1, "S", 1014, true),
    builtin(1043, "varchar", "character varying", -1, "S", 1015, true),
    builtin(1082, "date", "date", 4, "D", 1182, false),
    builtin(1083, "time", "time without time zone", 8, "D", 1183, false),
    builtin(
        1114,
        "timestamp",
        "timestamp without time zone",
        8,
        "D",
        1115,
        false,
    ),
    builtin(
        1184,
        "timestamptz",
        "timestamp with time zone",
        8,
        "D",
        1185,
        false,
    ),
    builtin(1186, "interval", "interval", 16, "T", 1187, false),
    builtin(1560, "bit", "bit", -1, "V", 1561, false),
    builtin(1562, "varbit", "bit varying", -1, "V", 1563, false),
    builtin(1700, "numeric", "numeric", -1, "N", 1231, false),
    builtin(2950, "uuid", "uuid", 16, "U", 2951, false),
    builtin(3802, "jsonb", "jsonb", -1, "U", 3807, false),
    builtin(
        VECTOR_OID,
        "vector",
        "vector",
        -1,
        "U",
        VECTOR_ARRAY_OID,
        false,
    ),
    builtin(
        HALFVEC_OID,
        "halfvec",
        "halfvec",
        -1,
        "U",
        HALFVEC_ARRAY_OID,
        false,
    ),
    builtin(
        SPARSEVEC_OID,
        "sparsevec",
        "sparsevec",
        -1,
        "U",
        SPARSEVEC_ARRAY_OID,
        false,
    ),
];

/// The OID of the `hnsw` access method (pgvector's, created with the extension; fixed here).
pub const HNSW_AM_OID: i64 = 16_387;
/// The OID of `vector`. pgvector's type gets an OID when the extension is created; QubeDB's is fixed,
/// the first OID PostgreSQL gives user objects (clients such as pgvector-python look it up by name).
pub const VECTOR_OID: i64 = 16_385;
/// The OID of `vector[]`.
pub const VECTOR_ARRAY_OID: i64 = 16_386;
/// The OID of pgvector's `halfvec` (fixed as `vector`'s; 16,387 is `hnsw`'s).
pub const HALFVEC_OID: i64 = 16_388;
/// The OID of `halfvec[]`.
pub const HALFVEC_ARRAY_OID: i64 = 16_389;
/// The OID of pgvector's `sparsevec` (fixed as `vector`'s).
pub const SPARSEVEC_OID: i64 = 16_390;
/// The OID of `sparsevec[]`.
pub const SPARSEVEC_ARRAY_OID: i64 = 16_391;

/// The element type of array type `oid` (`typelem`), for the built-in array types.
pub fn array_element_oid(oid: i64) -> Option<i64> {
    BUILTIN_TYPES
        .iter()
        .find(|builtin| builtin.array == oid)
        .map(|builtin| builtin.oid)
}

/// The type OID and type modifier (`atttypmod`) of a column type.
pub fn type_oid(data_type: DataType) -> (i64, i32) {
    match data_type {
        DataType::Boolean => (16, -1),
        DataType::SmallInt => (21, -1),
        DataType::Integer => (23, -1),
        DataType::BigInt => (20, -1),
        DataType::Real => (700, -1),
        DataType::Double => (701, -1),
        DataType::Numeric {
            precision: Some(precision),
            scale,
        } => (
            1700,
            ((i32::from(precision) << 16) | (i32::from(scale) & 0xffff)) + 4,
        ),
        DataType::Numeric {
            precision: None, ..
        } => (1700, -1),
        DataType::Text => (25, -1),
        DataType::Varchar(Some(length)) => (1043, length as i32 + 4),
        DataType::Varchar(None) => (1043, -1),
        DataType::Char(length) => (1042, length as i32 + 4),
        DataType::Bytea => (17, -1),
        DataType::Date => (1082, -1),
        DataType::Time => (1083, -1),
        DataType::Timestamp => (1114, -1),
        DataType::TimestampTz => (1184, -1),
        DataType::Interval => (1186, -1),
        DataType::Uuid => (2950, -1),
        DataType::Jsonb => (3802, -1),
        DataType::Json => (114, -1),
        DataType::Vector(dimensions) => (
            VECTOR_OID,
            dimensions.map_or(-1, |dimensions| dimensions as i32),
        ),
        DataType::HalfVector(dimensions) => (
            HALFVEC_OID,
            dimensions.map_or(-1, |dimensions| dimensions as i32),
        ),
        DataType::SparseVector(dimensions) => (
            SPARSEVEC_OID,
            dimensions.map_or(-1, |dimensions| dimensions as i32),
        ),
        // A bit string's modifier is its length itself (no header added, unlike varchar's).
        DataType::Bit { length, varying } => (
            if varying { 1562 } else { 1560 },
            length.map_or(-1, |length| length as i32),
        ),
    }
}

/// `format_type(oid, typmod)`: the type's SQL name with its modifier; `None` for an unknown OID.
pub fn format_type(oid: i64, modifier: Option<i32>) -> Option<String> {
    if let Some(element) = BUILTIN_TYPES.iter().find(|builtin| builtin.array == oid) {
        return Some(format!("{}[]", element.display));
    }
    let builtin = BUILTIN_TYPES.iter().find(|builtin| builtin.oid == oid)?;
    let modifier = modifier.filter(|&modifier| modifier >= 0);
    Some(match (builtin.oid, modifier) {
        (1700, Some(modifier)) => {
            let packed = modifier - 4;
            format!("numeric({},{})", packed >> 16, packed & 0xffff)
        }
        (1043 | 1042, Some(modifier)) => format!("{}({})", builtin.display, modifier - 4),
        (1560 | 1562, Some(modifier)) => format!("{}({modifier})", builtin.display),
        (VECTOR_OID, Some(modifier)) => format!("vector({modifier})"),
        (HALFVEC_OID, Some(modifier)) => format!("halfvec({modifier})"),
        (SPARSEVEC_OID, Some(modifier)) => format!("sparsevec({modifier})"),
        _ => builtin.display.to_string(),
    })
}

/// The OID of a type named as in SQL (`int4`, `integer`, `character varying`), for `'...'::regtype`.
pub fn type_oid_by_name(name: &str) -> Option<i64> {
    let name = name.trim().trim_start_matches("pg_catalog.").to_lowercase();
    let name = name.split('(').next().unwrap_or_default().trim();
    let alias = match name {
        "int" | "integer" => "int4",
        "smallint" => "int2",
        "bigint" => "int8",
        "real" => "float4",
        "double precision" | "float" => "float8",
        "boolean" => "bool",
        "character varying" => "varchar",
        "character" | "char" => "bpchar",
        "decimal" => "numeric",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        other => other,
    };
    BUILTIN_TYPES
        .iter()
        .find(|builtin| builtin.name == alias || builtin.display == alias)
        .map(|builtin| builtin.oid)
}

/// A column of a system table, with its PostgreSQL type.
#[derive(Clone, Copy)]
enum Kind {
    Oid,
    Int2,
    Int4,
    Int8,
    Float4,
    Bool,
    /// `name`, `text`, `"char"` and the array and expression types QubeDB shows as their text.
    Text,
    /// `aclitem[]` and other arrays of text that are always NULL here (no privileges are granted).
    TextArray,
    /// `oid[]` (also PostgreSQL's `oidvector` columns).
    OidArray,
    /// `int2[]`.
    Int2Array,
    /// `int2vector`: an `int2[]` whose text form is its elements separated by spaces (`1 2`).
    /// Subscripts start at 1 here (PostgreSQL's at 0).
    Int2Vector,
    /// `oidvector`, the same for OIDs.
    OidVector,
}

/// One value of a system table row.
#[derive(Clone, Debug)]
enum Cell {
    Null,
    Int(i64),
    Float(f32),
    Bool(bool),
    Text(String),
    /// An `int2[]` value.
    Int2List(Vec<i16>),
    /// An `oid[]` value.
    OidList(Vec<i64>),
}

impl From<i64> for Cell {
    fn from(value: i64) -> Cell {
        Cell::Int(value)
    }
}

impl From<bool> for Cell {
    fn from(value: bool) -> Cell {
        Cell::Bool(value)
    }
}

impl From<&str> for Cell {
    fn from(value: &str) -> Cell {
        Cell::Text(value.to_string())
    }
}

impl From<String> for Cell {
    fn from(value: String) -> Cell {
        Cell::Text(value)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(value: Option<T>) -> Cell {
        value.map(Into::into).unwrap_or(Cell::Null)
    }
}

macro_rules! row {
    ($($value:expr),* $(,)?) => {
        vec![$(Cell::from($value)),*]
    };
}

/// Builds a table from its columns and rows.
fn build(columns: &[(&str, Kind)], rows: Vec<Vec<Cell>>) -> Result<RecordBatch> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, kind)| {
            let (arrow, sql) = match kind {
                Kind::Oid => (ArrowType::Int64, "oid"),
                Kind::Int2 => (ArrowType::Int16, "smallint"),
                Kind::Int4 => (ArrowType::Int32, "integer"),
                Kind::Int8 => (ArrowType::Int64, "bigint"),
                Kind::Float4 => (ArrowType::Float32, "real"),
                Kind::Bool => (ArrowType::Boolean, "boolean"),
                Kind::Text => (ArrowType::Utf8, "text"),
                Kind::TextArray => (
                    ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Utf8, true))),
                    "text[]",
                ),
                Kind::OidArray => (
                    ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Int64, true))),
                    "oid[]",
                ),
                Kind::Int2Array => (
                    ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Int16, true))),
                    "smallint[]",
                ),
                Kind::Int2Vector => (
                    ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Int16, true))),
                    "int2vector",
                ),
                Kind::OidVector => (
                    ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Int64, true))),
                    "oidvector",
                ),
            };
            Field::new(*name, arrow, true).with_metadata(HashMap::from([(
                TYPE_METADATA_KEY.to_string(),
                sql.to_string(),
            )]))
        })
        .collect();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (index, (name, kind)) in columns.iter().enumerate() {
        let cells = rows.iter().map(|row| row.get(index).unwrap_or(&Cell::Null));
        let integer = |cell: &Cell| match cell {
            Cell::Int(value) => Ok(Some(*value)),
            Cell::Null => Ok(None),
            other => Err(Error::internal(format!(
                "system column {name} holds {other:?}"
            ))),
        };
        let array: ArrayRef = match kind {
            Kind::Oid | Kind::Int8 => Arc::new(cells.map(integer).collect::<Result<Int64Array>>()?),
            Kind::Int4 => Arc::new(
                cells
                    .map(|cell| integer(cell).map(|value| value.map(|value| value as i32)))
                    .collect::<Result<Int32Array>>()?,
            ),
            Kind::Int2 => Arc::new(
                cells
                    .map(|cell| integer(cell).map(|value| value.map(|value| value as i16)))
                    .collect::<Result<Int16Array>>()?,
            ),
            Kind::Float4 => Arc::new(
                cells
                    .map(|cell| match cell {
                        Cell::Float(value) => Some(*value),
                        Cell::Int(value) => Some(*value as f32),
                        _ => None,
                    })
                    .collect::<Float32Array>(),
            ),
            Kind::Bool => Arc::new(
                cells
                    .map(|cell| match cell {
                        Cell::Bool(value) => Some(*value),
                        _ => None,
                    })
                    .collect::<BooleanArray>(),
            ),
            Kind::Text => Arc::new(
                cells
                    .map(|cell| match cell {
                        Cell::Text(value) => Some(value.clone()),
                        _ => None,
                    })
                    .collect::<StringArray>(),
            ),
            Kind::TextArray => Arc::new(datafusion::arrow::array::ListArray::new_null(
                Arc::new(Field::new_list_field(ArrowType::Utf8, true)),
                rows.len(),
            )),
            Kind::OidArray | Kind::OidVector => {
                let mut builder = datafusion::arrow::array::ListBuilder::new(
                    datafusion::arrow::array::Int64Builder::new(),
                );
                for cell in cells {
                    match cell {
                        Cell::OidList(values) => {
                            builder.values().append_slice(values);
                            builder.append(true);
                        }
                        _ => builder.append(false),
                    }
                }
                Arc::new(builder.finish())
            }
            Kind::Int2Array | Kind::Int2Vector => {
                let mut builder = datafusion::arrow::array::ListBuilder::new(
                    datafusion::arrow::array::Int16Builder::new(),
                );
                for cell in cells {
                    match cell {
                        Cell::Int2List(values) => {
                            builder.values().append_slice(values);
                            builder.append(true);
                        }
                        _ => builder.append(false),
                    }
                }
                Arc::new(builder.finish())
            }
        };
        arrays.push(array);
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// A schema's OID and name, for every schema (the system ones included).
fn namespaces(catalog: &Catalog) -> Vec<(i64, String)> {
    let mut list = vec![
        (PG_CATALOG_OID, "pg_catalog".to_string()),
        (INFORMATION_SCHEMA_OID, "information_schema".to_string()),
    ];
    for object in catalog.objects() {
        if let Object::Schema(schema) = object {
            list.push((object_oid(schema.id), schema.name.clone()));
        }
    }
    list
}

/// One constraint of a table, as `pg_constraint` lists it.
pub struct ConstraintInfo {
    pub name: String,
    /// `p`, `u`, `c` or `f`.
    pub kind: char,
    /// Attribute numbers (1-based slots) it constrains.
    pub columns: Vec<usize>,
    /// The index behind a primary key or unique constraint; the referenced key's for a foreign key.
    pub index: i64,
    pub referenced_table: i64,
    pub referenced_columns: Vec<usize>,
    pub on_update: char,
    pub on_delete: char,
    /// The CHECK expression.
    pub check: Option<String>,
    /// `pg_get_constraintdef`.
    pub definition: String,
}

fn action_code(action: ReferentialAction) -> char {
    match action {
        ReferentialAction::NoAction => 'a',
        ReferentialAction::Restrict => 'r',
        ReferentialAction::Cascade => 'c',
        ReferentialAction::SetNull => 'n',
        ReferentialAction::SetDefault => 'd',
    }
}

fn action_text(action: ReferentialAction) -> &'static str {
    match action {
        ReferentialAction::NoAction => "NO ACTION",
        ReferentialAction::Restrict => "RESTRICT",
        ReferentialAction::Cascade => "CASCADE",
        ReferentialAction::SetNull => "SET NULL",
        ReferentialAction::SetDefault => "SET DEFAULT",
    }
}

fn column_list(table: &TableDef, slots: &[usize]) -> String {
    slots
        .iter()
        .map(|&slot| table.columns[slot].name.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The OID of the index that enforces the key `columns` of `table` (its primary key, or a unique
/// index over exactly those columns).
fn key_index_oid(catalog: &Catalog, table: &TableDef, columns: &[usize]) -> i64 {
    if table.primary_key == columns {
        return derived_oid(table.id, Derived::PrimaryKeyIndex);
    }
    catalog
        .indexes_of(table.id)
        .find(|index| index.unique && index.columns == columns)
        .map_or(0, |index| object_oid(index.id))
}

/// A table's constraints in a fixed order: primary key, unique constraints, checks, foreign keys.
pub fn table_constraints(catalog: &Catalog, table: &TableDef) -> Vec<ConstraintInfo> {
    let mut list = Vec::new();
    if let Some(name) = &table.primary_key_name {
        list.push(ConstraintInfo {
            name: name.clone(),
            kind: 'p',
            columns: table.primary_key.clone(),
            index: derived_oid(table.id, Derived::PrimaryKeyIndex),
            referenced_table: 0,
            referenced_columns: Vec::new(),
            on_update: ' ',
            on_delete: ' ',
            check: None,
            definition: format!("PRIMARY KEY ({})", column_list(table, &table.primary_key)),
        });
    }
    for index in catalog.indexes_of(table.id) {
        if index.constraint {
            list.push(ConstraintInfo {
                name: index.name.clone(),
                kind: 'u',
                columns: index.columns.clone(),
                index: object_oid(index.id),
                referenced_table: 0,
                referenced_columns: Vec::new(),
                on_update: ' ',
                on_delete: ' ',
                check: None,
                definition: format!("UNIQUE ({})", column_list(table, &index.columns)),
            });
        }
    }
    for check in &table.checks {
        list.push(ConstraintInfo {
            name: check.name.clone(),
            kind: 'c',
            columns: Vec::new(),
            index: 0,
            referenced_table: 0,
            referenced_columns: Vec::new(),
            on_update: ' ',
            on_delete: ' ',
            check: Some(check.expression.clone()),
            definition: format!("CHECK ({})", check.expression),
        });
    }
    for key in &table.foreign_keys {
        let parent = catalog.table(key.referenced_table);
        let mut definition = format!(
            "FOREIGN KEY ({}) REFERENCES {}({})",
            column_list(table, &key.columns),
            parent.map(|parent| parent.name.clone()).unwrap_or_default(),
            parent
                .map(|parent| column_list(parent, &key.referenced_columns))
                .unwrap_or_default()
        );
        if key.on_update != ReferentialAction::NoAction {
            definition.push_str(&format!(" ON UPDATE {}", action_text(key.on_update)));
        }
        if key.on_delete != ReferentialAction::NoAction {
            definition.push_str(&format!(" ON DELETE {}", action_text(key.on_delete)));
        }
        list.push(ConstraintInfo {
            name: key.name.clone(),
            kind: 'f',
            columns: key.columns.clone(),
            index: parent.map_or(0, |parent| {
                key_index_oid(catalog, parent, &key.referenced_columns)
            }),
            referenced_table: object_oid(key.referenced_table),
            referenced_columns: key.referenced_columns.clone(),
            on_update: action_code(key.on_update),
            on_delete: action_code(key.on_delete),
            check: None,
            definition,
        });
    }
    list
}

/// An index of a table as `pg_index` sees it: the primary key's, or a declared one.
struct IndexInfo {
    oid: i64,
    name: String,
    table: u64,
    schema: u64,
    columns: Vec<usize>,
    unique: bool,
    primary: bool,
    /// Key expressions of an expression index (see [`IndexDef`]).
    expressions: Vec<String>,
    predicate: Option<String>,
    include: Vec<usize>,
    method: IndexMethod,
}

impl IndexInfo {
    /// The number of key parts.
    fn key_len(&self) -> usize {
        if self.expressions.is_empty() {
            self.columns.len()
        } else {
            self.expressions.len()
        }
    }

    /// `pg_index.indkey`: the attribute number of each key part (0 for an expression), then of each
    /// `INCLUDE` column.
    fn attribute_numbers(&self) -> Cell {
        let key: Vec<usize> = if self.expressions.is_empty() {
            self.columns.iter().map(|slot| slot + 1).collect()
        } else {
            vec![0; self.expressions.len()]
        };
        Cell::Int2List(
            key.into_iter()
                .chain(self.include.iter().map(|slot| slot + 1))
                .map(|number| number as i16)
                .collect(),
        )
    }
}

fn indexes(catalog: &Catalog) -> Vec<IndexInfo> {
    let mut list = Vec::new();
    for object in catalog.objects() {
        match object {
            Object::Table(table) => {
                if let Some(name) = &table.primary_key_name {
                    list.push(IndexInfo {
                        oid: derived_oid(table.id, Derived::PrimaryKeyIndex),
                        name: name.clone(),
                        table: table.id,
                        schema: table.schema,
                        columns: table.primary_key.clone(),
                        unique: true,
                        primary: true,
                        expressions: Vec::new(),
                        predicate: None,
                        include: Vec::new(),
                        method: IndexMethod::BTree,
                    });
                }
            }
            Object::Index(IndexDef {
                id,
                schema,
                name,
                table,
                columns,
                unique,
                expressions,
                predicate,
                include,
                method,
                ..
            }) => list.push(IndexInfo {
                oid: object_oid(*id),
                name: name.clone(),
                table: *table,
                schema: *schema,
                columns: columns.clone(),
                unique: *unique,
                primary: false,
                expressions: expressions.clone(),
                predicate: predicate.clone(),
                include: include.clone(),
                method: *method,
            }),
            _ => {}
        }
    }
    list
}

/// `pg_get_indexdef(oid)`: the index's CREATE INDEX statement.
pub fn index_definition(catalog: &Catalog, oid: i64, column: i64) -> Option<String> {
    let index = indexes(catalog)
        .into_iter()
        .find(|index| index.oid == oid)?;
    let table = catalog.table(index.table)?;
    let key_part = |position: usize| -> Option<String> {
        if index.expressions.is_empty() {
            Some(column_list(table, &[*index.columns.get(position)?]))
        } else {
            index.expressions.get(position).cloned()
        }
    };
    if column > 0 {
        return key_part(usize::try_from(column - 1).ok()?);
    }
    let mut key: Vec<String> = (0..index.key_len()).filter_map(key_part).collect();
    if let Some(class) = index.method.operator_class() {
        for part in &mut key {
            part.push(' ');
            part.push_str(class);
        }
    }
    let mut definition = format!(
        "CREATE {}INDEX {} ON {}.{} USING {} ({})",
        if index.unique { "UNIQUE " } else { "" },
        index.name,
        catalog.schema_name(index.schema),
        table.name,
        index.method.name(),
        key.join(", ")
    );
    if !index.include.is_empty() {
        definition.push_str(&format!(
            " INCLUDE ({})",
            column_list(table, &index.include)
        ));
    }
    if let Some(predicate) = &index.predicate {
        definition.push_str(&format!(" WHERE ({predicate})"));
    }
    Some(definition)
}

/// `pg_get_constraintdef(oid)`.
pub fn constraint_definition(catalog: &Catalog, oid: i64) -> Option<String> {
    let (table, Derived::Constraint(number)) = derived_of(oid)? else {
        return None;
    };
    let table = catalog.table(table)?;
    table_constraints(catalog, table)
        .into_iter()
        .nth(number)
        .map(|constraint| constraint.definition)
}

/// `pg_get_expr` of a default: the expression text.
pub fn default_expression(catalog: &Catalog, oid: i64) -> Option<String> {
    let (table, Derived::Default(slot)) = derived_of(oid)? else {
        return None;
    };
    catalog
        .table(table)?
        .columns
        .get(slot)?
        .default
        .as_deref()
        .map(display_default)
}

/// A default as PostgreSQL prints it: a serial column's stored `nextval('"public"."t_id_seq"')` reads
/// `nextval('t_id_seq'::regclass)`; any other default as written.
pub fn display_default(default: &str) -> String {
    let Some(inner) = default
        .strip_prefix("nextval('")
        .and_then(|rest| rest.strip_suffix("')"))
    else {
        return default.to_string();
    };
    let inner = inner.replace("''", "'");
    let simple = |part: &str| -> String {
        match part
            .strip_prefix('"')
            .and_then(|part| part.strip_suffix('"'))
        {
            Some(bare)
                if !bare.is_empty()
                    && bare
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && !bare.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                bare.to_string()
            }
            _ => part.to_string(),
        }
    };
    let name = match inner.strip_prefix("\"public\".") {
        Some(rest) if !rest.contains("\".\"") => simple(rest),
        _ => match inner.split_once("\".\"") {
            Some((schema, sequence)) => format!(
                "{}.{}",
                simple(&format!("{schema}\"")),
                simple(&format!("\"{sequence}"))
            ),
            None => simple(&inner),
        },
    };
    format!("nextval('{}'::regclass)", name.replace('\'', "''"))
}

/// The name `oid::regclass` prints: the relation's name, schema-qualified outside `public`.
pub fn relation_name(catalog: &Catalog, oid: i64) -> Option<String> {
    let qualify = |schema: u64, name: &str| {
        if schema == PUBLIC_SCHEMA_ID {
            name.to_string()
        } else {
            format!("{}.{name}", catalog.schema_name(schema))
        }
    };
    if let Some(id) = object_id(oid) {
        let object = catalog.object(id)?;
        let (schema, name) = object.qualified_name();
        return match object {
            Object::Schema(_) => None,
            _ => Some(qualify(schema, name)),
        };
    }
    let index = indexes(catalog)
        .into_iter()
        .find(|index| index.oid == oid)?;
    Some(qualify(index.schema, &index.name))
}

/// `pg_get_serial_sequence(table, column)`: the sequence a serial or identity column draws from,
/// schema-qualified.
pub fn serial_sequence(
    catalog: &Catalog,
    temp_schema: &str,
    table: &str,
    column: &str,
) -> Option<String> {
    let table = catalog.table(object_id(relation_oid(catalog, temp_schema, table)?)?)?;
    let slot = table
        .column_slot(&column.to_lowercase())
        .or_else(|| table.column_slot(column))?;
    let sequence = catalog
        .sequences_owned_by(table.id)
        .into_iter()
        .find(|sequence| sequence.owned_by == Some((table.id, slot)))?;
    Some(format!(
        "{}.{}",
        catalog.schema_name(sequence.schema),
        sequence.name
    ))
}

/// The OID of relation `name` (`[schema.]name`, as `'name'::regclass` reads it); an unqualified name
/// is looked up in the session's temporary schema `temp_schema` first.
pub fn relation_oid(catalog: &Catalog, temp_schema: &str, name: &str) -> Option<i64> {
    let fold = |part: &str| {
        if part.len() >= 2 && part.starts_with('"') && part.ends_with('"') {
            part[1..part.len() - 1].replace("\"\"", "\"")
        } else {
            part.to_lowercase()
        }
    };
    let (schemas, name) = match name.split_once('.') {
        Some((schema, name)) if fold(schema) == "pg_temp" => {
            (vec![temp_schema.to_string()], fold(name))
        }
        Some((schema, name)) => (vec![fold(schema)], fold(name)),
        None => (
            vec![temp_schema.to_string(), "public".to_string()],
            fold(name),
        ),
    };
    schemas.iter().find_map(|schema| {
        let schema = catalog.schema_id(schema)?;
        if let Some(object) = catalog.relation(schema, &name) {
            return Some(object_oid(object.id()));
        }
        indexes(catalog)
            .into_iter()
            .find(|index| index.schema == schema && index.name == name)
            .map(|index| index.oid)
    })
}

/// The name of the schema with OID `oid`.
pub fn namespace_name(catalog: &Catalog, oid: i64) -> Option<String> {
    namespaces(catalog)
        .into_iter()
        .find(|(namespace, _)| *namespace == oid)
        .map(|(_, name)| name)
}

/// True when relation `oid` is found by an unqualified name: it is in the session's temporary schema
/// `temp_schema`, or in `public` and not hidden by a temporary relation of the same name.
pub fn table_is_visible(catalog: &Catalog, temp_schema: &str, oid: i64) -> bool {
    let temp = catalog.schema_id(temp_schema);
    let visible = |schema: u64, name: &str| {
        Some(schema) == temp
            || (schema == PUBLIC_SCHEMA_ID
                && temp.is_none_or(|temp| {
                    catalog.relation(temp, name).is_none()
                        && !indexes(catalog)
                            .iter()
                            .any(|index| index.schema == temp && index.name == name)
                }))
    };
    if let Some(id) = object_id(oid) {
        return catalog.object(id).is_some_and(|object| {
            let (schema, name) = object.qualified_name();
            visible(schema, name)
        });
    }
    indexes(catalog)
        .into_iter()
        .any(|index| index.oid == oid && visible(index.schema, &index.name))
}

fn relation_kind(object: &Object) -> Option<&'static str> {
    match object {
        Object::Table(_) => Some("r"),
        Object::View(_) => Some("v"),
        Object::Index(_) => Some("i"),
        Object::Sequence(_) => Some("S"),
        Object::Schema(_) | Object::Type(_) => None,
    }
}

const PG_NAMESPACE: &[(&str, Kind)] = &[
    ("oid", Kind::Oid),
    ("nspname", Kind::Text),
    ("nspowner", Kind::Oid),
    ("nspacl", Kind::TextArray),
];

const PG_CLASS: &[(&str, Kind)] = &[
    ("oid", Kind::Oid),
    ("relname", Kind::Text),
    ("relnamespace", Kind::Oid),
    ("reltype", Kind::Oid),
    ("reloftype", Kind::Oid),
    ("relowner", Kind::Oid),
    ("relam", Kind::Oid),
    ("relfilenode", Kind::Oid),
    ("reltablespace", Kind::Oid),
    ("relpages", Kind::Int4),
    ("reltuples", Kind::Float4),
    ("relallvisible", Kind::Int4),
    ("reltoastrelid", Kind::Oid),
    ("relhasindex", Kind::Bool),
    ("relisshared", Kind::Bool),
    ("relpersistence", Kind::Text),
    ("relkind", Kind::Text),
    ("relnatts", Kind::Int2),
    ("relchecks", Kind::Int2),
    ("relhasrules", Kind::Bool),
    ("relhastriggers", Kind::Bool),
    ("relhassubclass", Kind::Bool),
    ("relrowsecurity", Kind::Bool),
    ("relforcerowsecurity", Kind::Bool),
    ("relispopulated", Kind::Bool),
    ("relreplident", Kind::Text),
    ("relispartition", Kind::Bool),
    ("relrewrite", Kind::Oid),
    ("relacl", Kind::TextArray),
    ("reloptions", Kind::TextArray),
    ("relpartbound", Kind::Text),
];

fn pg_class(catalog: &Catalog, statistics: &HashMap<u64, TableStatistics>) -> Result<RecordBatch> {
    let mut rows = Vec::new();
    let mut push = |oid: i64,
                    name: &str,
                    schema: u64,
                    kind: &str,
                    attributes: i64,
                    checks: i64,
                    has_index: bool,
                    has_triggers: bool,
                    tuples: f32| {
        let access_method = match kind {
            "r" => 2,
            "i" => BTREE_OID,
            _ => 0,
        };
        rows.push(row![
            oid,
            name,
            object_oid(schema),
            0i64,
            0i64,
            OWNER_OID,
            access_method,
            0i64,
            0i64,
            0i64,
            Cell::Float(tuples),
            0i64,
            0i64,
            has_index,
            false,
            "p",
            kind,
            attributes,
            checks,
            false,
            // Foreign keys are triggers in PostgreSQL; psql looks for them only when this is set.
            has_triggers,
            false,
            false,
            false,
            true,
            "d",
            false,
            0i64,
            Cell::Null,
            Cell::Null,
            Cell::Null,
        ]);
    };
    for object in catalog.objects() {
        let Some(kind) = relation_kind(object) else {
            continue;
        };
        let (schema, name) = object.qualified_name();
        let (attributes, checks, has_index) = match object {
            Object::Table(table) => (
                table.columns.len() as i64,
                table.checks.len() as i64,
                table.primary_key_name.is_some() || catalog.indexes_of(table.id).next().is_some(),
            ),
            Object::View(view) => (view.columns.len() as i64, 0, false),
            Object::Index(index) => (index.columns.len() as i64, 0, false),
            _ => (0, 0, false),
        };
        // -1: never analyzed, as PostgreSQL says.
        let tuples = statistics
            .get(&object.id())
            .map_or(-1.0, |statistics| statistics.rows as f32);
        let has_triggers = match object {
            Object::Table(table) => {
                !table.foreign_keys.is_empty() || !catalog.referencing(table.id).is_empty()
            }
            _ => false,
        };
        push(
            object_oid(object.id()),
            name,
            schema,
            kind,
            attributes,
            checks,
            has_index,
            has_triggers,
            tuples,
        );
    }
    for object in catalog.objects() {
        if let Object::Table(table) = object
            && let Some(name) = &table.primary_key_name
        {
            push(
                derived_oid(table.id, Derived::PrimaryKeyIndex),
                name,
                table.schema,
                "i",
                table.primary_key.len() as i64,
                0,
                false,
                false,
                -1.0,
            );
        }
    }
    build(PG_CLASS, rows)
}

const PG_STATS: &[(&str, Kind)] = &[
    ("schemaname", Kind::Text),
    ("tablename", Kind::Text),
    ("attname", Kind::Text),
    ("inherited", Kind::Bool),
    ("null_frac", Kind::Float4),
    ("avg_width", Kind::Int4),
    ("n_distinct", Kind::Float4),
    ("most_common_vals", Kind::Text),
    ("most_common_freqs", Kind::Text),
    ("histogram_bounds", Kind::Text),
    ("correlation", Kind::Float4),
];

/// `pg_stats`: what ANALYZE stored, one row per analyzed column, its value lists in array text form.
fn pg_stats(catalog: &Catalog, statistics: &HashMap<u64, TableStatistics>) -> Result<RecordBatch> {
    let mut rows = Vec::new();
    for object in catalog.objects() {
        let Object::Table(table) = object else {
            continue;
        };
        let Some(table_statistics) = statistics.get(&table.id) else {
            continue;
        };
        for column in &table_statistics.columns {
            let Some(definition) = table.columns.get(column.slot) else {
                continue;
            };
            if definition.dropped {
                continue;
            }
            let shown = |key: &[u8]| -> String {
                let mut at = 0;
                decode_value(key, &mut at, definition.data_type)
                    .map(|value| display_value(&value, definition.data_type))
                    .unwrap_or_default()
            };
            let text_array = |items: Vec<String>| -> Cell {
                if items.is_empty() {
                    Cell::Null
                } else {
                    Cell::Text(array_text(&items))
                }
            };
            rows.push(row![
                catalog.schema_name(table.schema),
                table.name.clone(),
                definition.name.clone(),
                false,
                Cell::Float(column.null_fraction as f32),
                column.average_width,
                Cell::Float(column.distinct as f32),
                text_array(
                    column
                        .most_common
                        .iter()
                        .map(|common| shown(&common.key))
                        .collect()
                ),
                text_array(
                    column
                        .most_common
                        .iter()
                        .map(|common| format!("{}", common.frequency as f32))
                        .collect()
                ),
                text_array(column.histogram.iter().map(|bound| shown(bound)).collect()),
                Cell::Null,
            ]);
        }
    }
    build(PG_STATS, rows)
}

/// Items as a PostgreSQL array's text form: `{a,"b c"}` (quoted where the array syntax needs it).
fn array_text(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|item| {
            let plain = !item.is_empty()
                && !item.eq_ignore_ascii_case("null")
                && !item.chars().any(|character| {
                    matches!(character, '{' | '}' | ',' | '"' | '\\') || character.is_whitespace()
                });
            if plain {
                item.clone()
            } else {
                format!("\"{}\"", item.replace('\\', "\\\\").replace('"', "\\\""))
            }
        })
        .collect();
    format!("{{{}}}", quoted.join(","))
}

const PG_ATTRIBUTE: &[(&str, Kind)] = &[
    ("attrelid", Kind::Oid),
    ("attname", Kind::Text),
    ("atttypid", Kind::Oid),
    ("attstattarget", Kind::Int4),
    ("attlen", Kind::Int2),
    ("attnum", Kind::Int2),
    ("attndims", Kind::Int4),
    ("attcacheoff", Kind::Int4),
    ("atttypmod", Kind::Int4),
    ("attbyval", Kind::Bool),
    ("attalign", Kind::Text),
    ("attstorage", Kind::Text),
    ("attcompression", Kind::Text),
    ("attnotnull", Kind::Bool),
    ("atthasdef", Kind::Bool),
    ("atthasmissing", Kind::Bool),
    ("attidentity", Kind::Text),
    ("attgenerated", Kind::Text),
    ("attisdropped", Kind::Bool),
    ("attislocal", Kind::Bool),
    ("attinhcount", Kind::Int4),
    ("attcollation", Kind::Oid),
    ("attacl", Kind::TextArray),
    ("attoptions", Kind::TextArray),
    ("attfdwoptions", Kind::TextArray),
];

/// The `pg_attribute` row of `column` as attribute `number` of relation `relation`; an index's key
/// columns (`index_key`) carry the type only.
fn attribute_row(
    relation: i64,
    number: i64,
    column: &qubedb_model::catalog::ColumnDef,
    index_key: bool,
) -> Vec<Cell> {
    let identity = match (index_key, column.identity) {
        (false, Some(qubedb_model::catalog::Identity::Always)) => "a",
        (false, Some(qubedb_model::catalog::Identity::ByDefault)) => "d",
        _ => "",
    };
    let not_null = column.not_null && !index_key;
    let has_default = column.default.is_some() && identity.is_empty() && !index_key;
    let dropped = column.dropped && !index_key;
    let name = column.name.as_str();
    let data_type = column.data_type;
    let (type_oid, modifier) = type_oid(data_type);
    let builtin = BUILTIN_TYPES.iter().find(|builtin| builtin.oid == type_oid);
    let length = builtin.map_or(-1, |builtin| i64::from(builtin.length));
    let collation = if builtin.is_some_and(|builtin| builtin.collatable) {
        DEFAULT_COLLATION_OID
    } else {
        0
    };
    let name = if dropped {
        format!("........pg.dropped.{number}........")
    } else {
        name.to_string()
    };
    row![
        relation,
        name,
        if dropped { 0 } else { type_oid },
        -1i64,
        length,
        number,
        0i64,
        -1i64,
        i64::from(modifier),
        (1..=8).contains(&length),
        if length == 8 { "d" } else { "i" },
        if length == -1 { "x" } else { "p" },
        "",
        not_null,
        has_default,
        false,
        identity,
        "",
        dropped,
        true,
        0i64,
        collation,
        Cell::Null,
        Cell::Null,
        Cell::Null,
    ]
}

fn pg_attribute(catalog: &Catalog) -> Result<RecordBatch> {
    let mut rows = Vec::new();
    for index in indexes(catalog) {
        let Some(table) = catalog.table(index.table) else {
            continue;
        };
        // Expression parts have no column to describe; plain key columns and INCLUDE columns do.
        let key_columns = if index.expressions.is_empty() {
            index.columns.as_slice()
        } else {
            &[]
        };
        for (position, &slot) in key_columns.iter().chain(&index.include).enumerate() {
            let column = &table.columns[slot];
            rows.push(attribute_row(index.oid, position as i64 + 1, column, true));
        }
    }
    for object in catalog.objects() {
        if let Object::Table(table) = object {
            for (slot, column) in table.columns.iter().enumerate() {
                rows.push(attribute_row(
                    object_oid(table.id),
                    slot as i64 + 1,
                    column,
                    false,
                ));
            }
        }
    }
    build(PG_ATTRIBUTE, rows)
}

const PG_ATTRDEF: &[(&str, Kind)] = &[
    ("oid", Kind::Oid),
    ("adrelid", Kind::Oid),
    ("adnum", Kind::Int2),
    ("adbin", Kind::Text),
];

fn pg_attrdef(catalog: &Catalog) -> Result<RecordBatch> {
    let mut rows = Vec::new();
    for object in catalog.objects() {
        if let Object::Table(table) = object {
            for (slot, column) in table.columns.iter().enumerate() {
                if let Some(default) = &column.default
                    && column.identity.is_none()
                    && !column.dropped
                {
                    rows.push(row![
                        derived_oid(table.id, Derived::Default(slot)),
                        object_oid(table.id),
                        slot as i64 + 1,
                        display_default(default),
                    ]);
                }
            }
        }
    }
    build(PG_ATTRDEF, rows)
}

const PG_TYPE: &[(&str, Kind)] = &[
    ("oid", Kind::Oid),
    ("typname", Kind::Text),
    ("typnamespace", Kind::Oid),
    ("typowner", Kind::Oid),
    ("typlen", Kind::Int2),
    ("typbyval", Kind::Bool),
    ("typtype", Kind::Text),
    ("typcategory", Kind::Text),
    ("typispreferred", Kind::Bool),
    ("typisdefined", Kind::Bool),
    ("typdelim", Kind::Text),
    ("typrelid", Kind::Oid),
    ("typelem", Kind::Oid),
    ("typarray", Kind::Oid),
    ("typnotnull", Kind::Bool),
    ("typbasetype", Kind::Oid),
    ("typtypmod", Kind::Int4),
    ("typndims", Kind::Int4),
    ("typcollation", Kind::Oid),
    ("typdefault", Kind::Text),
];

fn pg_type() -> Result<RecordBatch> {
    let mut rows = Vec::new();
    for builtin in BUILTIN_TYPES {
        let collation = if builtin.collatable {
            DEFAULT_COLLATION_OID
        } else {
            0
        };
        rows.push(row![
            builtin.oid,
            builtin.name,
            PG_CATALOG_OID,
            OWNER_OID,
            i64::from(builtin.length),
            (1..=8).contains(&builtin.length),
            "b",
            builtin.category,
            matches!(
                builtin.name,
                "bool" | "text" | "float8" | "timestamptz" | "oid"
            ),
            true,
            ",",
            0i64,
            0i64,
            builtin.array,
            false,
            0i64,
            -1i64,
            0i64,
            collation,
            Cell::Null,
        ]);
        rows.push(row![
            builtin.array,
            format!("_{}", builtin.name),
            PG_CATALOG_OID,
            OWNER_OID,
            -1i64,
            false,
            "b",
            "A",
            false,
            true,
            ",",
            0i64,
            builtin.oid,
            0i64,
            false,
            0i64,
            -1i64,
            0i64,
            collation,
            Cell::Null,
        ]);
    }
    build(PG_TYPE, rows)
}

/// The default B-tree operator class of each type an index can key: `(oid, name, type oid)`, PostgreSQL's.
const BTREE_OPERATOR_CLASSES: &[(i64, &str, i64)] = &[
    (424, "bool_ops", 16),
    (428, "bytea_ops", 17),
    (1979, "int2_ops", 21),
    (1978, "int4_ops", 23),
    (3124, "int8_ops", 20),
    (1981, "oid_ops", 26),
    (3126, "text_ops", 25),
    (426, "bpchar_ops", 1042),
    (1970, "float4_ops", 700),
    (3123, "float8_ops", 701),
    (3125, "numeric_ops", 1700),
    (3122, "date_ops", 1082),
    (3130, "time_ops", 1083),
    (3128, "timestamp_ops", 1114),
    (3127, "timestamptz_ops", 1184),
    (3129, "interval_ops", 1186),
    (2968, "uuid_ops", 2950),
    (4033, "jsonb_ops", 3802),
];

const PG_OPCLASS: &[(&str, Kind)] = &[
    ("oid", Kind::Oid),
    ("opcmethod", Kind::Oid),
    ("opcname", Kind::Text),
    ("opcnamespace", Kind::Oid),
    ("opcowner", Kind::Oid),
    ("opcfamily", Kind::Oid),
    ("opcintype", Kind::Oid),
    ("opcdefault", Kind::Bool),
    ("opckeytype", Kind::Oid),
];

/// The operator class an index uses for a column of type `type_oid` (varchar keys with text_ops, as
/// in PostgreSQL).
fn operator_class(type_oid: i64) -> Option<i64> {
    let type_oid = if type_oid == 1043 { 25 } else { type_oid };
    BTREE_OPERATOR_CLASSES
        .iter()
        .find(|(_, _, intype)| *intype == type_oid)
        .map(|(oid, _, _)| *oid)
}

const PG_INDEX: &[(&str, Kind)] = &[
    ("indexrelid", Kind::Oid),
    ("indrelid", Kind::Oid),
    ("indnatts", Kind::Int2),
    ("indnkeyatts", Kind::Int2),
    ("indisunique", Kind::Bool),
    ("indnullsnotdistinct", Kind::Bool),
    ("indisprimary", Kind::Bool),
    ("indisexclusion", Kind::Bool),
    ("indimmediate", Kind::Bool),
    ("indisclustered", Kind::Bool),
    ("indisvalid", Kind::Bool),
    ("indcheckxmin", Kind::Bool),
    ("indisready", Kind::Bool),
    ("indislive", Kind::Bool),
    ("indisreplident", Kind::Bool),
    ("indkey", Kind::Int2Vector),
    ("indcollation", Kind::OidVector),
    ("indclass", Kind::OidVector),
    ("indoption", Kind::Int2Vector),
    ("indexprs", Kind::Text),
    ("indpred", Kind::Text),
];

fn pg_index(catalog: &Catalog) -> Result<RecordBatch> {
    let rows = indexes(catalog)
        .into_iter()
        .map(|index| {
            row![
                index.oid,
                object_oid(index.table),
                (index.key_len() + index.include.len()) as i64,
                index.key_len() as i64,
                index.unique,
                false,
                index.primary,
                false,
                true,
                false,
                true,
                false,
                true,
                true,
                false,
                index.attribute_numbers(),
                Cell::Null,
                match catalog.table(index.table) {
                    Some(table) if index.expressions.is_empty() => Cell::OidList(
                        index
                            .columns
                            .iter()
                            .map(|&slot| {
                                operator_class(type_oid(table.columns[slot].data_type).0)
                                    .unwrap_or(0)
                            })
                            .collect(),
                    ),
                    _ => Cell::Null,
                },
                // No per-column options (DESC, NULLS FIRST): zero each.
                Cell::Int2List(vec![0; index.key_len()]),
                match index.expressions.is_empty() {
                    true => Cell::Null,
                    false => Cell::Text(index.expressions.join(", ")),
                },
                index.predicate.clone().map_or(Cell::Null, Cell::Text),
            ]
        })
        .collect();
    build(PG_INDEX, rows)
}

const PG_CONSTRAINT: &[(&str, Kind)] = &[
    ("oid", Kind::Oid),
    ("conname", Kind::Text),
    ("connamespace", Kind::Oid),
    ("contype", Kind::Text),
    ("condeferrable", Kind::Bool),
    ("condeferred", Kind::Bool),
    ("convalidated", Kind::Bool),
    ("conrelid", Kind::Oid),
    ("contypid", Kind::Oid),
    ("conindid", Kind::Oid),
    ("conparentid", Kind::Oid),
    ("confrelid", Kind::Oid),
    ("confupdtype", Kind::Text),
    ("confdeltype", Kind::Text),
    ("confmatchtype", Kind::Text),
    ("conislocal", Kind::Bool),
    ("coninhcount", Kind::Int4),
    ("connoinherit", Kind::Bool),
    ("conkey", Kind::Int2Array),
    ("confkey", Kind::Int2Array),
    ("conbin", Kind::Text),
];

/// Column numbers (1-based) of `slots`, as an `int2[]` cell; NULL when there are none.
fn attribute_numbers(slots: &[usize]) -> Cell {
    if slots.is_empty() {
        Cell::Null
    } else {
        Cell::Int2List(slots.iter().map(|slot| *slot as i16 + 1).collect())
    }
}

fn pg_constraint(catalog: &Catalog) -> Result<RecordBatch> {
    let mut rows = Vec::new();
    for object in catalog.objects() {
        let Object::Table(table) = object else {
            continue;
        };
        for (number, constraint) in table_constraints(catalog, table).into_iter().enumerate() {
            let code = |character: char| {
                if character == ' ' {
                    " ".to_string()
                } else {
                    character.to_string()
                }
            };
            rows.push(row![
                derived_oid(table.id, Derived::Constraint(number)),
                constraint.name,
                object_oid(table.schema),
                constraint.kind.to_string(),
                false,
                false,
                true,
                object_oid(table.id),
                0i64,
                constraint.index,
                0i64,
                constraint.referenced_table,
                code(constraint.on_update),
                code(constraint.on_delete),
                if constraint.kind == 'f' { "s" } else { " " },
                true,
                0i64,
                false,
                attribute_numbers(&constraint.columns),
                attribute_numbers(&constraint.referenced_columns),
                constraint.check,
            ]);
        }
    }
    build(PG_CONSTRAINT, rows)
}

const PG_SEQUENCE: &[(&str, Kind)] = &[
    ("seqrelid", Kind::Oid),
    ("seqtypid", Kind::Oid),
    ("seqstart", Kind::Int8),
    ("seqincrement", Kind::Int8),
    ("seqmax", Kind::Int8),
    ("seqmin", Kind::Int8),
    ("seqcache", Kind::Int8),
    ("seqcycle", Kind::Bool),
];

fn pg_sequence(catalog: &Catalog) -> Result<RecordBatch> {
    let rows = catalog
        .objects()
        .filter_map(|object| match object {
            Object::Sequence(sequence) => Some(row![
                object_oid(sequence.id),
                type_oid(sequence.data_type).0,
                sequence.start,
                sequence.increment,
                sequence.max_value,
                sequence.min_value,
                1i64,
                sequence.cycle,
            ]),
            _ => None,
        })
        .collect();
    build(PG_SEQUENCE, rows)
}

const PG_DATABASE: &[(&str, Kind)] = &[
    ("oid", Kind::Oid),
    ("datname", Kind::Text),
    ("datdba", Kind::Oid),
    ("encoding", Kind::Int4),
    ("datlocprovider", Kind::Text),
    ("datistemplate", Kind::Bool),
    ("datallowconn", Kind::Bool),
    ("datconnlimit", Kind::Int4),
    ("datcollate", Kind::Text),
    ("datctype", Kind::Text),
    ("daticulocale", Kind::Text),
    ("daticurules", Kind::Text),
    ("datcollversion", Kind::Text),
    ("datacl", Kind::TextArray),
];

const PG_ROLES: &[(&str, Kind)] = &[
    ("oid", Kind::Oid),
    ("rolname", Kind::Text),
    ("rolsuper", Kind::Bool),
    ("rolinherit", Kind::Bool),
    ("rolcreaterole", Kind::Bool),
    ("rolcreatedb", Kind::Bool),
    ("rolcanlogin", Kind::Bool),
    ("rolreplication", Kind::Bool),
    ("rolconnlimit", Kind::Int4),
    ("rolpassword", Kind::Text),
    ("rolvaliduntil", Kind::Text),
    ("rolbypassrls", Kind::Bool),
    ("rolconfig", Kind::TextArray),
];

const PG_USER: &[(&str, Kind)] = &[
    ("usename", Kind::Text),
    ("usesysid", Kind::Oid),
    ("usecreatedb", Kind::Bool),
    ("usesuper", Kind::Bool),
    ("userepl", Kind::Bool),
    ("usebypassrls", Kind::Bool),
    ("passwd", Kind::Text),
    ("valuntil", Kind::Text),
    ("useconfig", Kind::TextArray),
];

const PG_AUTH_MEMBERS: &[(&str, Kind)] = &[
    ("oid", Kind::Oid),
    ("roleid", Kind::Oid),
    ("member", Kind::Oid),
    ("grantor", Kind::Oid),
    ("admin_option", Kind::Bool),
];

const PG_AM: &[(&str, Kind)] = &[
    ("oid", Kind::Oid),
    ("amname", Kind::Text),
    ("amhandler", Kind::Text),
    ("amtype", Kind::Text),
];

const PG_COLLATION: &[(&str, Kind)] = &[
    ("oid", Kind::Oid),
    ("collname", Kind::Text),
    ("collnamespace", Kind::Oid),
    ("collowner", Kind::Oid),
    ("collprovider", Kind::Text),
    ("collisdeterministic", Kind::Bool),
    ("collencoding", Kind::Int4),
    ("collcollate", Kind::Text),
    ("collctype", Kind::Text),
];

const PG_TABLESPACE: &[(&str, Kind)] = &[
    ("oid", Kind::Oid),
    ("spcname", Kind::Text),
    ("spcowner", Kind::Oid),
    ("spcacl", Kind::TextArray),
    ("spcoptions", Kind::TextArray),
];

const PG_SETTINGS: &[(&str, Kind)] = &[
    ("name", Kind::Text),
    ("setting", Kind::Text),
    ("unit", Kind::Text),
    ("category", Kind::Text),
    ("short_desc", Kind::Text),
    ("context", Kind::Text),
    ("vartype", Kind::Text),
    ("source", Kind::Text),
    ("boot_val", Kind::Text),
    ("reset_val", Kind::Text),
];

/// Tables QubeDB has nothing to put in (no comments, inheritance, triggers, policies, rules,
/// extensions with objects, enums, publications, statistics objects), with the columns clients read.
const EMPTY_TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "pg_description",
        &[
            ("objoid", Kind::Oid),
            ("classoid", Kind::Oid),
            ("objsubid", Kind::Int4),
            ("description", Kind::Text),
        ],
    ),
    (
        "pg_shdescription",
        &[
            ("objoid", Kind::Oid),
            ("classoid", Kind::Oid),
            ("description", Kind::Text),
        ],
    ),
    (
        "pg_inherits",
        &[
            ("inhrelid", Kind::Oid),
            ("inhparent", Kind::Oid),
            ("inhseqno", Kind::Int4),
            ("inhdetachpending", Kind::Bool),
        ],
    ),
    (
        "pg_trigger",
        &[
            ("oid", Kind::Oid),
            ("tgrelid", Kind::Oid),
            ("tgparentid", Kind::Oid),
            ("tgname", Kind::Text),
            ("tgfoid", Kind::Oid),
            ("tgtype", Kind::Int2),
            ("tgenabled", Kind::Text),
            ("tgisinternal", Kind::Bool),
        ],
    ),
    (
        "pg_policy",
        &[
            ("oid", Kind::Oid),
            ("polname", Kind::Text),
            ("polrelid", Kind::Oid),
            ("polcmd", Kind::Text),
            ("polpermissive", Kind::Bool),
            ("polroles", Kind::OidArray),
            ("polqual", Kind::Text),
            ("polwithcheck", Kind::Text),
        ],
    ),
    (
        "pg_rewrite",
        &[
            ("oid", Kind::Oid),
            ("rulename", Kind::Text),
            ("ev_class", Kind::Oid),
            ("ev_type", Kind::Text),
            ("ev_enabled", Kind::Text),
            ("is_instead", Kind::Bool),
        ],
    ),
    (
        "pg_extension",
        &[
            ("oid", Kind::Oid),
            ("extname", Kind::Text),
            ("extowner", Kind::Oid),
            ("extnamespace", Kind::Oid),
            ("extrelocatable", Kind::Bool),
            ("extversion", Kind::Text),
        ],
    ),
    (
        "pg_enum",
        &[
            ("oid", Kind::Oid),
            ("enumtypid", Kind::Oid),
            ("enumsortorder", Kind::Float4),
            ("enumlabel", Kind::Text),
        ],
    ),
    (
        "pg_partitioned_table",
        &[
            ("partrelid", Kind::Oid),
            ("partstrat", Kind::Text),
            ("partnatts", Kind::Int2),
            ("partdefid", Kind::Oid),
        ],
    ),
    (
        "pg_publication",
        &[
            ("oid", Kind::Oid),
            ("pubname", Kind::Text),
            ("pubowner", Kind::Oid),
            ("puballtables", Kind::Bool),
        ],
    ),
    (
        "pg_publication_namespace",
        &[
            ("oid", Kind::Oid),
            ("pnpubid", Kind::Oid),
            ("pnnspid", Kind::Oid),
        ],
    ),
    (
        "pg_publication_rel",
        &[
            ("oid", Kind::Oid),
            ("prpubid", Kind::Oid),
            ("prrelid", Kind::Oid),
            ("prqual", Kind::Text),
            ("prattrs", Kind::Int2Array),
        ],
    ),
    (
        "pg_statistic_ext",
        &[
            ("oid", Kind::Oid),
            ("stxrelid", Kind::Oid),
            ("stxname", Kind::Text),
            ("stxnamespace", Kind::Oid),
            ("stxowner", Kind::Oid),
            ("stxstattarget", Kind::Int4),
            ("stxkind", Kind::TextArray),
        ],
    ),
];

/// Session settings as `(name, value)`, for `pg_settings`.
pub(crate) type Settings = Vec<(String, String)>;

/// Builds `pg_catalog.name`, or `None` if there is no such table.
fn pg_catalog_table(
    name: &str,
    catalog: &Catalog,
    settings: &Settings,
    databases: &[DatabaseEntry],
    roles: &[RoleDef],
    statistics: &HashMap<u64, TableStatistics>,
) -> Result<Option<RecordBatch>> {
    Ok(Some(match name {
        "pg_namespace" => build(
            PG_NAMESPACE,
            namespaces(catalog)
                .into_iter()
                .map(|(oid, name)| row![oid, name, OWNER_OID, Cell::Null])
                .collect(),
        )?,
        "pg_class" => pg_class(catalog, statistics)?,
        "pg_stats" => pg_stats(catalog, statistics)?,
        "pg_attribute" => pg_attribute(catalog)?,
        "pg_attrdef" => pg_attrdef(catalog)?,
        "pg_type" => pg_type()?,
        "pg_index" => pg_index(catalog)?,
        "pg_constraint" => pg_constraint(catalog)?,
        "pg_sequence" => pg_sequence(catalog)?,
        "pg_database" => build(
            PG_DATABASE,
            databases
                .iter()
                .map(|database| {
                    row![
                        i64::from(database.oid),
                        database.name.clone(),
                        OWNER_OID,
                        6i64,
                        "c",
                        false,
                        true,
                        -1i64,
                        "C",
                        "C",
                        Cell::Null,
                        Cell::Null,
                        Cell::Null,
                        Cell::Null,
                    ]
                })
                .collect(),
        )?,
        "pg_roles" | "pg_authid" => build(
            PG_ROLES,
            roles
                .iter()
                .map(|role| {
                    row![
                        i64::from(role.oid),
                        role.name.clone(),
                        role.superuser,
                        role.inherit,
                        role.create_role,
                        role.create_database,
                        role.login,
                        role.replication,
                        i64::from(role.connection_limit),
                        // pg_roles hides the password, as PostgreSQL does (pg_authid would show it;
                        // only superusers may read that there).
                        "********",
                        role.valid_until.clone().map_or(Cell::Null, Cell::from),
                        role.bypass_rls,
                        Cell::Null,
                    ]
                })
                .collect(),
        )?,
        "pg_user" => build(
            PG_USER,
            roles
                .iter()
                .filter(|role| role.login)
                .map(|role| {
                    row![
                        role.name.clone(),
                        i64::from(role.oid),
                        role.create_database,
                        role.superuser,
                        role.replication,
                        role.bypass_rls,
                        "********",
                        role.valid_until.clone().map_or(Cell::Null, Cell::from),
                        Cell::Null,
                    ]
                })
                .collect(),
        )?,
        "pg_auth_members" => build(PG_AUTH_MEMBERS, Vec::new())?,
        "pg_opclass" => build(
            PG_OPCLASS,
            BTREE_OPERATOR_CLASSES
                .iter()
                .map(|(oid, name, intype)| {
                    row![
                        *oid,
                        BTREE_OID,
                        *name,
                        PG_CATALOG_OID,
                        OWNER_OID,
                        *oid,
                        *intype,
                        true,
                        0i64
                    ]
                })
                .collect(),
        )?,
        "pg_am" => build(
            PG_AM,
            vec![
                row![2i64, "heap", "heap_tableam_handler", "t"],
                row![BTREE_OID, "btree", "bthandler", "i"],
                row![2742i64, "gin", "ginhandler", "i"],
                row![HNSW_AM_OID, "hnsw", "hnswhandler", "i"],
            ],
        )?,
        "pg_collation" => build(
            PG_COLLATION,
            vec![
                row![
                    DEFAULT_COLLATION_OID,
                    "default",
                    PG_CATALOG_OID,
                    OWNER_OID,
                    "d",
                    true,
                    -1i64,
                    Cell::Null,
                    Cell::Null
                ],
                row![
                    950i64,
                    "C",
                    PG_CATALOG_OID,
                    OWNER_OID,
                    "c",
                    true,
                    -1i64,
                    "C",
                    "C"
                ],
                row![
                    951i64,
                    "POSIX",
                    PG_CATALOG_OID,
                    OWNER_OID,
                    "c",
                    true,
                    -1i64,
                    "POSIX",
                    "POSIX"
                ],
            ],
        )?,
        "pg_tablespace" => build(
            PG_TABLESPACE,
            vec![
                row![1663i64, "pg_default", OWNER_OID, Cell::Null, Cell::Null],
                row![1664i64, "pg_global", OWNER_OID, Cell::Null, Cell::Null],
            ],
        )?,
        "pg_settings" => build(
            PG_SETTINGS,
            settings
                .iter()
                .map(|(name, value)| {
                    row![
                        name.clone(),
                        value.clone(),
                        Cell::Null,
                        "Client Connection Defaults",
                        "",
                        "user",
                        "string",
                        "session",
                        value.clone(),
                        value.clone(),
                    ]
                })
                .collect(),
        )?,
        "pg_tables" => pg_tables(catalog)?,
        "pg_views" => pg_views(catalog)?,
        "pg_indexes" => pg_indexes(catalog)?,
        other => match EMPTY_TABLES.iter().find(|(name, _)| *name == other) {
            Some((_, columns)) => build(columns, Vec::new())?,
            None => return Ok(None),
        },
    }))
}

fn pg_tables(catalog: &Catalog) -> Result<RecordBatch> {
    let rows = catalog
        .objects()
        .filter_map(|object| match object {
            Object::Table(table) => Some(row![
                catalog.schema_name(table.schema).to_string(),
                table.name.clone(),
                OWNER_NAME,
                Cell::Null,
                table.primary_key_name.is_some() || catalog.indexes_of(table.id).next().is_some(),
                false,
                false,
                false,
            ]),
            _ => None,
        })
        .collect();
    build(
        &[
            ("schemaname", Kind::Text),
            ("tablename", Kind::Text),
            ("tableowner", Kind::Text),
            ("tablespace", Kind::Text),
            ("hasindexes", Kind::Bool),
            ("hasrules", Kind::Bool),
            ("hastriggers", Kind::Bool),
            ("rowsecurity", Kind::Bool),
        ],
        rows,
    )
}

fn pg_views(catalog: &Catalog) -> Result<RecordBatch> {
    let rows = catalog
        .objects()
        .filter_map(|object| match object {
            Object::View(view) => Some(row![
                catalog.schema_name(view.schema).to_string(),
                view.name.clone(),
                OWNER_NAME,
                view.query.clone(),
            ]),
            _ => None,
        })
        .collect();
    build(
        &[
            ("schemaname", Kind::Text),
            ("viewname", Kind::Text),
            ("viewowner", Kind::Text),
            ("definition", Kind::Text),
        ],
        rows,
    )
}

fn pg_indexes(catalog: &Catalog) -> Result<RecordBatch> {
    let rows = indexes(catalog)
        .into_iter()
        .filter_map(|index| {
            let table = catalog.table(index.table)?;
            Some(row![
                catalog.schema_name(index.schema).to_string(),
                table.name.clone(),
                index.name.clone(),
                Cell::Null,
                index_definition(catalog, index.oid, 0),
            ])
        })
        .collect();
    build(
        &[
            ("schemaname", Kind::Text),
            ("tablename", Kind::Text),
            ("indexname", Kind::Text),
            ("tablespace", Kind::Text),
            ("indexdef", Kind::Text),
        ],
        rows,
    )
}

/// `information_schema.name`, or `None` if there is no such view.
fn information_schema_table(
    name: &str,
    catalog: &Catalog,
    database: &str,
) -> Result<Option<RecordBatch>> {
    let text_columns = |names: &[&'static str]| -> Vec<(&'static str, Kind)> {
        names.iter().map(|name| (*name, Kind::Text)).collect()
    };
    let tables = || {
        catalog.objects().filter_map(|object| match object {
            Object::Table(table) => Some(table),
            _ => None,
        })
    };
    Ok(Some(match name {
        "schemata" => build(
            &text_columns(&[
                "catalog_name",
                "schema_name",
                "schema_owner",
                "default_character_set_catalog",
                "default_character_set_schema",
                "default_character_set_name",
                "sql_path",
            ]),
            namespaces(catalog)
                .into_iter()
                .map(|(_, name)| row![database, name, OWNER_NAME])
                .collect(),
        )?,
        "tables" => {
            let rows = catalog
                .objects()
                .filter_map(|object| {
                    let kind = match object {
                        Object::Table(_) => "BASE TABLE",
                        Object::View(_) => "VIEW",
                        _ => return None,
                    };
                    let (schema, name) = object.qualified_name();
                    Some(row![
                        database,
                        catalog.schema_name(schema).to_string(),
                        name,
                        kind,
                        Cell::Null,
                        Cell::Null,
                        Cell::Null,
                        Cell::Null,
                        Cell::Null,
                        if kind == "VIEW" { "NO" } else { "YES" },
                        "NO",
                        Cell::Null,
                    ])
                })
                .collect();
            build(
                &text_columns(&[
                    "table_catalog",
                    "table_schema",
                    "table_name",
                    "table_type",
                    "self_referencing_column_name",
                    "reference_generation",
                    "user_defined_type_catalog",
                    "user_defined_type_schema",
                    "user_defined_type_name",
                    "is_insertable_into",
                    "is_typed",
                    "commit_action",
                ]),
                rows,
            )?
        }
        "columns" => {
            let mut rows = Vec::new();
            for table in tables() {
                for (position, (_, column)) in table.live_columns().enumerate() {
                    let (oid, _) = type_oid(column.data_type);
                    let udt = BUILTIN_TYPES
                        .iter()
                        .find(|builtin| builtin.oid == oid)
                        .map_or("", |builtin| builtin.name);
                    let (length, precision, radix, scale, datetime) = match column.data_type {
                        DataType::Varchar(length) => {
                            (length.map(i64::from), None, None, None, None)
                        }
                        DataType::Char(length) => (Some(i64::from(length)), None, None, None, None),
                        DataType::SmallInt => (None, Some(16), Some(2), Some(0), None),
                        DataType::Integer => (None, Some(32), Some(2), Some(0), None),
                        DataType::BigInt => (None, Some(64), Some(2), Some(0), None),
                        DataType::Real => (None, Some(24), Some(2), None, None),
                        DataType::Double => (None, Some(53), Some(2), None, None),
                        DataType::Numeric { precision, scale } => (
                            None,
                            precision.map(i64::from),
                            Some(10),
                            precision.map(|_| i64::from(scale)),
                            None,
                        ),
                        DataType::Date => (None, None, None, None, Some(0)),
                        DataType::Time
                        | DataType::Timestamp
                        | DataType::TimestampTz
                        | DataType::Interval => (None, None, None, None, Some(6)),
                        _ => (None, None, None, None, None),
                    };
                    let data_type = match column.data_type {
                        DataType::Varchar(_) => "character varying".to_string(),
                        DataType::Char(_) => "character".to_string(),
                        DataType::Numeric { .. } => "numeric".to_string(),
                        other => other.sql_name(),
                    };
                    let identity = match column.identity {
                        Some(qubedb_model::catalog::Identity::Always) => Some("ALWAYS"),
                        Some(qubedb_model::catalog::Identity::ByDefault) => Some("BY DEFAULT"),
                        None => None,
                    };
                    rows.push(row![
                        database,
                        catalog.schema_name(table.schema).to_string(),
                        table.name.clone(),
                        column.name.clone(),
                        position as i64 + 1,
                        if identity.is_some() {
                            None
                        } else {
                            column.default.as_deref().map(display_default)
                        },
                        if column.not_null { "NO" } else { "YES" },
                        data_type,
                        length,
                        precision,
                        radix,
                        scale,
                        datetime,
                        database,
                        "pg_catalog",
                        udt,
                        if identity.is_some() { "YES" } else { "NO" },
                        identity,
                        "NEVER",
                        "YES",
                    ]);
                }
            }
            build(
                &[
                    ("table_catalog", Kind::Text),
                    ("table_schema", Kind::Text),
                    ("table_name", Kind::Text),
                    ("column_name", Kind::Text),
                    ("ordinal_position", Kind::Int4),
                    ("column_default", Kind::Text),
                    ("is_nullable", Kind::Text),
                    ("data_type", Kind::Text),
                    ("character_maximum_length", Kind::Int4),
                    ("numeric_precision", Kind::Int4),
                    ("numeric_precision_radix", Kind::Int4),
                    ("numeric_scale", Kind::Int4),
                    ("datetime_precision", Kind::Int4),
                    ("udt_catalog", Kind::Text),
                    ("udt_schema", Kind::Text),
                    ("udt_name", Kind::Text),
                    ("is_identity", Kind::Text),
                    ("identity_generation", Kind::Text),
                    ("is_generated", Kind::Text),
                    ("is_updatable", Kind::Text),
                ],
                rows,
            )?
        }
        "table_constraints"
        | "key_column_usage"
        | "referential_constraints"
        | "check_constraints" => {
            let mut rows = Vec::new();
            for table in tables() {
                let schema = catalog.schema_name(table.schema).to_string();
                let constraints = table_constraints(catalog, table);
                for constraint in &constraints {
                    let kind = match constraint.kind {
                        'p' => "PRIMARY KEY",
                        'u' => "UNIQUE",
                        'f' => "FOREIGN KEY",
                        _ => "CHECK",
                    };
                    match name {
                        "table_constraints" => rows.push(row![
                            database,
                            schema.clone(),
                            constraint.name.clone(),
                            database,
                            schema.clone(),
                            table.name.clone(),
                            kind,
                            "NO",
                            "NO",
                            "YES",
                        ]),
                        "key_column_usage" => {
                            for (position, &slot) in constraint.columns.iter().enumerate() {
                                let in_unique =
                                    (constraint.kind == 'f').then(|| position as i64 + 1);
                                rows.push(row![
                                    database,
                                    schema.clone(),
                                    constraint.name.clone(),
                                    database,
                                    schema.clone(),
                                    table.name.clone(),
                                    table.columns[slot].name.clone(),
                                    position as i64 + 1,
                                    in_unique,
                                ]);
                            }
                        }
                        "referential_constraints" if constraint.kind == 'f' => {
                            let parent = object_id(constraint.referenced_table)
                                .and_then(|id| catalog.table(id));
                            let unique_name = parent.and_then(|parent| {
                                table_constraints(catalog, parent)
                                    .into_iter()
                                    .find(|key| {
                                        matches!(key.kind, 'p' | 'u')
                                            && key.columns == constraint.referenced_columns
                                    })
                                    .map(|key| key.name)
                            });
                            let rule = |code: char| match code {
                                'r' => "RESTRICT",
                                'c' => "CASCADE",
                                'n' => "SET NULL",
                                'd' => "SET DEFAULT",
                                _ => "NO ACTION",
                            };
                            rows.push(row![
                                database,
                                schema.clone(),
                                constraint.name.clone(),
                                database,
                                parent.map(|parent| catalog.schema_name(parent.schema).to_string()),
                                unique_name,
                                "NONE",
                                rule(constraint.on_update),
                                rule(constraint.on_delete),
                            ]);
                        }
                        "check_constraints" if constraint.kind == 'c' => rows.push(row![
                            database,
                            schema.clone(),
                            constraint.name.clone(),
                            constraint.check.clone(),
                        ]),
                        _ => {}
                    }
                }
            }
            let columns: Vec<(&str, Kind)> = match name {
                "table_constraints" => text_columns(&[
                    "constraint_catalog",
                    "constraint_schema",
                    "constraint_name",
                    "table_catalog",
                    "table_schema",
                    "table_name",
                    "constraint_type",
                    "is_deferrable",
                    "initially_deferred",
                    "enforced",
                ]),
                "key_column_usage" => vec![
                    ("constraint_catalog", Kind::Text),
                    ("constraint_schema", Kind::Text),
                    ("constraint_name", Kind::Text),
                    ("table_catalog", Kind::Text),
                    ("table_schema", Kind::Text),
                    ("table_name", Kind::Text),
                    ("column_name", Kind::Text),
                    ("ordinal_position", Kind::Int4),
                    ("position_in_unique_constraint", Kind::Int4),
                ],
                "referential_constraints" => text_columns(&[
                    "constraint_catalog",
                    "constraint_schema",
                    "constraint_name",
                    "unique_constraint_catalog",
                    "unique_constraint_schema",
                    "unique_constraint_name",
                    "match_option",
                    "update_rule",
                    "delete_rule",
                ]),
                _ => text_columns(&[
                    "constraint_catalog",
                    "constraint_schema",
                    "constraint_name",
                    "check_clause",
                ]),
            };
            build(&columns, rows)?
        }
        "views" => build(
            &text_columns(&[
                "table_catalog",
                "table_schema",
                "table_name",
                "view_definition",
                "check_option",
                "is_updatable",
                "is_insertable_into",
            ]),
            catalog
                .objects()
                .filter_map(|object| match object {
                    Object::View(view) => Some(row![
                        database,
                        catalog.schema_name(view.schema).to_string(),
                        view.name.clone(),
                        view.query.clone(),
                        "NONE",
                        "NO",
                        "NO",
                    ]),
                    _ => None,
                })
                .collect(),
        )?,
        "sequences" => build(
            &text_columns(&[
                "sequence_catalog",
                "sequence_schema",
                "sequence_name",
                "data_type",
                "start_value",
                "minimum_value",
                "maximum_value",
                "increment",
                "cycle_option",
            ]),
            catalog
                .objects()
                .filter_map(|object| match object {
                    Object::Sequence(sequence) => Some(row![
                        database,
                        catalog.schema_name(sequence.schema).to_string(),
                        sequence.name.clone(),
                        sequence.data_type.sql_name(),
                        sequence.start.to_string(),
                        sequence.min_value.to_string(),
                        sequence.max_value.to_string(),
                        sequence.increment.to_string(),
                        if sequence.cycle { "YES" } else { "NO" },
                    ]),
                    _ => None,
                })
                .collect(),
        )?,
        _ => return Ok(None),
    }))
}

/// Which system schema a [`SystemSchema`] serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemSchemaKind {
    PgCatalog,
    InformationSchema,
}

/// `pg_catalog` or `information_schema` as a DataFusion schema: each table is built when it is named.
pub struct SystemSchema {
    pub(crate) shared: Arc<Shared>,
    pub(crate) kind: SystemSchemaKind,
}

impl std::fmt::Debug for SystemSchema {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "SystemSchema({:?})", self.kind)
    }
}

/// The names of the tables of `kind`.
fn table_names(kind: SystemSchemaKind) -> Vec<String> {
    let names: &[&str] = match kind {
        SystemSchemaKind::PgCatalog => &[
            "pg_namespace",
            "pg_class",
            "pg_attribute",
            "pg_attrdef",
            "pg_type",
            "pg_index",
            "pg_constraint",
            "pg_sequence",
            "pg_database",
            "pg_roles",
            "pg_authid",
            "pg_user",
            "pg_auth_members",
            "pg_am",
            "pg_collation",
            "pg_tablespace",
            "pg_settings",
            "pg_tables",
            "pg_views",
            "pg_indexes",
            "pg_stats",
            "pg_opclass",
        ],
        SystemSchemaKind::InformationSchema => &[
            "schemata",
            "tables",
            "columns",
            "table_constraints",
            "key_column_usage",
            "referential_constraints",
            "check_constraints",
            "views",
            "sequences",
        ],
    };
    let mut list: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    if kind == SystemSchemaKind::PgCatalog {
        list.extend(EMPTY_TABLES.iter().map(|(name, _)| name.to_string()));
    }
    list
}

/// Builds system table `name` of `kind` from the statement's catalog.
pub(crate) fn system_table(
    shared: &Shared,
    kind: SystemSchemaKind,
    name: &str,
) -> Result<Option<Arc<dyn TableProvider>>> {
    let catalog = shared.state.lock().catalog.clone();
    let batch = match kind {
        SystemSchemaKind::PgCatalog => {
            let settings: Settings = shared
                .settings
                .lock()
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            // Statistics live beside the catalog, in the transaction's view of the store.
            let mut statistics = HashMap::new();
            if matches!(name, "pg_class" | "pg_stats") {
                let state = shared.state.lock();
                if let Some(transaction) = state.transaction.as_ref() {
                    for object in catalog.objects() {
                        if let Object::Table(table) = object
                            && let Some(found) =
                                qubedb_model::catalog::read_statistics(transaction, table.id)?
                        {
                            statistics.insert(table.id, found);
                        }
                    }
                }
            }
            pg_catalog_table(
                name,
                &catalog,
                &settings,
                &shared.database.cluster.entries(),
                &shared.database.cluster.roles(),
                &statistics,
            )?
        }
        SystemSchemaKind::InformationSchema => {
            information_schema_table(name, &catalog, &shared.database.name)?
        }
    };
    let Some(batch) = batch else {
        return Ok(None);
    };
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
    Ok(Some(Arc::new(table)))
}

#[async_trait::async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        table_names(self.kind)
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        system_table(&self.shared, self.kind, name).map_err(crate::error::to_datafusion)
    }

    fn table_exist(&self, name: &str) -> bool {
        table_names(self.kind).iter().any(|table| table == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_defaults_print_as_postgresql_prints_them() {
        assert_eq!(
            display_default("nextval('\"public\".\"t_id_seq\"')"),
            "nextval('t_id_seq'::regclass)"
        );
        assert_eq!(
            display_default("nextval('\"s\".\"Odd Seq\"')"),
            "nextval('s.\"Odd Seq\"'::regclass)"
        );
        assert_eq!(display_default("0"), "0");
    }

    #[test]
    fn derived_oids_round_trip() {
        for what in [
            Derived::PrimaryKeyIndex,
            Derived::Constraint(0),
            Derived::Constraint(7),
            Derived::Default(0),
            Derived::Default(300),
        ] {
            let oid = derived_oid(1234, what);
            assert!(oid < i64::from(u32::MAX));
            assert_eq!(derived_of(oid), Some((1234, what)));
        }
        assert_eq!(object_id(object_oid(1000)), Some(1000));
        assert_eq!(object_oid(PUBLIC_SCHEMA_ID), PUBLIC_OID);
    }

    #[test]
    fn types_format_as_postgresql_formats_them() {
        let (oid, modifier) = type_oid(DataType::Numeric {
            precision: Some(10),
            scale: 2,
        });
        assert_eq!(
            format_type(oid, Some(modifier)).as_deref(),
            Some("numeric(10,2)")
        );
        let (oid, modifier) = type_oid(DataType::Varchar(Some(20)));
        assert_eq!(
            format_type(oid, Some(modifier)).as_deref(),
            Some("character varying(20)")
        );
        assert_eq!(format_type(23, None).as_deref(), Some("integer"));
        assert_eq!(format_type(1007, None).as_deref(), Some("integer[]"));
        assert_eq!(format_type(99_999, None), None);
        assert_eq!(type_oid_by_name("integer"), Some(23));
        assert_eq!(type_oid_by_name("pg_catalog.int4"), Some(23));
    }
}
