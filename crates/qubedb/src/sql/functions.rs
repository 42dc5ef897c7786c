//! SQL functions QubeDB adds to DataFusion's: the sequence functions (`nextval`, `currval`, `setval`,
//! `lastval`), the session information functions clients call (`version()`, `current_database()`, ...)
//! and the catalog functions (`format_type`, `pg_get_indexdef`, `pg_table_is_visible`, ...) over
//! [`crate::sql::system`].

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType as ArrowType;
use datafusion::common::ScalarValue;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use qubedb_model::catalog::{Object, SequenceDef};

use crate::error::{Error, Result, to_datafusion};
use crate::session::Shared;

/// DataFusion compares and hashes UDFs: a function bound to a session is equal to another when it is
/// the same function (`$key`) of the same session.
macro_rules! session_function_identity {
    ($function:ty, $key:ident) => {
        impl fmt::Debug for $function {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{:?}", self.$key)
            }
        }

        impl PartialEq for $function {
            fn eq(&self, other: &Self) -> bool {
                self.$key == other.$key && Arc::ptr_eq(&self.shared, &other.shared)
            }
        }

        impl Eq for $function {}

        impl Hash for $function {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.$key.hash(state);
            }
        }
    };
}

/// Registers QubeDB's functions in a session's DataFusion context.
pub(crate) fn register(context: &SessionContext, shared: &Arc<Shared>) {
    for kind in [
        SequenceFunctionKind::Nextval,
        SequenceFunctionKind::Currval,
        SequenceFunctionKind::Setval,
        SequenceFunctionKind::Lastval,
    ] {
        context.register_udf(ScalarUDF::new_from_impl(SequenceFunction::new(
            kind,
            shared.clone(),
        )));
    }
    for (name, value) in [
        (
            "version",
            format!(
                "PostgreSQL {} (QubeDB {})",
                crate::SERVER_VERSION,
                env!("CARGO_PKG_VERSION")
            ),
        ),
        ("current_database", shared.database.name.clone()),
        ("current_schema", "public".to_string()),
    ] {
        context.register_udf(ScalarUDF::new_from_impl(ConstantText::new(name, value)));
    }
    // The user the session runs as: `Session::set_user` (the server passes the connection's user).
    for name in ["current_user", "session_user", "user", "current_role"] {
        context.register_udf(ScalarUDF::new_from_impl(CurrentSetting {
            shared: shared.clone(),
            signature: Signature::nullary(Volatility::Stable),
            name,
            fixed_setting: Some("session_authorization"),
        }));
    }
    context.register_udf(ScalarUDF::new_from_impl(CurrentSetting {
        shared: shared.clone(),
        name: "current_setting",
        fixed_setting: None,
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![ArrowType::Utf8]),
                TypeSignature::Exact(vec![ArrowType::Utf8, ArrowType::Boolean]),
            ],
            Volatility::Stable,
        ),
    }));
    register_catalog_functions(context, shared);
    register_immutable(context);
}

/// Registers the functions that depend on nothing but their arguments (those an index expression
/// may call): the input functions QubeDB's rewrites of casts produce, the JSON builders, and array
/// expansion.
pub(crate) fn register_immutable(context: &SessionContext) {
    for name in ["qubedb_uuid", "qubedb_bytea"] {
        context.register_udf(ScalarUDF::new_from_impl(InputFunction::new(name)));
    }
    crate::sql::json_build::register(context);
    crate::sql::jsonb::register(context);
    crate::sql::vector::register(context);
    crate::sql::sparse_vector::register(context);
    crate::sql::bit_string::register(context);
    crate::sql::vector_aggregate::register(context);
    crate::sql::json_values::register(context);
    crate::sql::expand_array::register(context);
    crate::sql::array_fill::register(context);
    crate::sql::records::register(context);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SequenceFunctionKind {
    Nextval,
    Currval,
    Setval,
    Lastval,
}

struct SequenceFunction {
    kind: SequenceFunctionKind,
    shared: Arc<Shared>,
    signature: Signature,
}

session_function_identity!(SequenceFunction, kind);

impl SequenceFunction {
    fn new(kind: SequenceFunctionKind, shared: Arc<Shared>) -> SequenceFunction {
        let signature = match kind {
            SequenceFunctionKind::Nextval | SequenceFunctionKind::Currval => {
                Signature::exact(vec![ArrowType::Utf8], Volatility::Volatile)
            }
            SequenceFunctionKind::Setval => Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![ArrowType::Utf8, ArrowType::Int64]),
                    TypeSignature::Exact(vec![
                        ArrowType::Utf8,
                        ArrowType::Int64,
                        ArrowType::Boolean,
                    ]),
                ],
                Volatility::Volatile,
            ),
            SequenceFunctionKind::Lastval => Signature::nullary(Volatility::Volatile),
        };
        SequenceFunction {
            kind,
            shared,
            signature,
        }
    }

    fn sequence(&self, name: &str) -> Result<SequenceDef> {
        let catalog = self.shared.state.lock().catalog.clone();
        let parts: Vec<String> = name
            .split('.')
            .map(|part| {
                let part = part.trim();
                match part
                    .strip_prefix('"')
                    .and_then(|rest| rest.strip_suffix('"'))
                {
                    Some(quoted) => quoted.to_string(),
                    None => part.to_lowercase(),
                }
            })
            .collect();
        let (schema, object) = match parts.as_slice() {
            [object] => ("public", object.as_str()),
            [schema, object] => (schema.as_str(), object.as_str()),
            _ => {
                return Err(Error::user(
                    "42601",
                    format!("improper relation name: \"{name}\""),
                ));
            }
        };
        let schema_id = catalog
            .schema_id(schema)
            .ok_or_else(|| Error::user("3F000", format!("schema \"{schema}\" does not exist")))?;
        match catalog.relation(schema_id, object) {
            Some(Object::Sequence(sequence)) => Ok(sequence.clone()),
            Some(other) => Err(Error::user(
                "42809",
                format!("\"{object}\" is not a sequence (it is a {})", other.kind()),
            )),
            None => Err(Error::user(
                "42P01",
                format!("relation \"{name}\" does not exist"),
            )),
        }
    }

    fn one(&self, arguments: &[Option<ScalarValue>]) -> Result<Option<i64>> {
        let text = |index: usize| -> Result<Option<String>> {
            match arguments.get(index) {
                Some(Some(ScalarValue::Utf8(value))) => Ok(value.clone()),
                Some(Some(other)) if other.is_null() => Ok(None),
                _ => Err(Error::internal("sequence function argument is not text")),
            }
        };
        match self.kind {
            SequenceFunctionKind::Nextval => {
                let Some(name) = text(0)? else {
                    return Ok(None);
                };
                let sequence = self.sequence(&name)?;
                let value = self.shared.database.next_sequence_value(&sequence)?;
                let mut state = self.shared.state.lock();
                state.sequence_values.insert(sequence.id, value);
                state.last_sequence_value = Some(value);
                Ok(Some(value))
            }
            SequenceFunctionKind::Currval => {
                let Some(name) = text(0)? else {
                    return Ok(None);
                };
                let sequence = self.sequence(&name)?;
                let state = self.shared.state.lock();
                state
                    .sequence_values
                    .get(&sequence.id)
                    .copied()
                    .map(Some)
                    .ok_or_else(|| {
                        Error::user(
                            "55000",
                            format!(
                                "currval of sequence \"{}\" is not yet defined in this session",
                                sequence.name
                            ),
                        )
                    })
            }
            SequenceFunctionKind::Lastval => {
                let state = self.shared.state.lock();
                state.last_sequence_value.map(Some).ok_or_else(|| {
                    Error::user("55000", "lastval is not yet defined in this session")
                })
            }
            SequenceFunctionKind::Setval => {
                let Some(name) = text(0)? else {
                    return Ok(None);
                };
                let value = match arguments.get(1) {
                    Some(Some(ScalarValue::Int64(Some(value)))) => *value,
                    _ => return Ok(None),
                };
                let is_called = match arguments.get(2) {
                    Some(Some(ScalarValue::Boolean(Some(flag)))) => *flag,
                    Some(Some(ScalarValue::Boolean(None))) => return Ok(None),
                    _ => true,
                };
                let sequence = self.sequence(&name)?;
                self.shared
                    .database
                    .set_sequence_value(&sequence, value, is_called)?;
                if is_called {
                    let mut state = self.shared.state.lock();
                    state.sequence_values.insert(sequence.id, value);
                    state.last_sequence_value = Some(value);
                }
                Ok(Some(value))
            }
        }
    }
}

impl ScalarUDFImpl for SequenceFunction {
    fn name(&self) -> &str {
        match self.kind {
            SequenceFunctionKind::Nextval => "nextval",
            SequenceFunctionKind::Currval => "currval",
            SequenceFunctionKind::Setval => "setval",
            SequenceFunctionKind::Lastval => "lastval",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arguments: &[ArrowType]) -> datafusion::error::Result<ArrowType> {
        Ok(ArrowType::Int64)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|argument| argument.to_array(rows))
            .collect::<datafusion::error::Result<_>>()?;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let arguments: Vec<Option<ScalarValue>> = arrays
                .iter()
                .map(|array| ScalarValue::try_from_array(array, row).ok())
                .collect();
            out.push(self.one(&arguments).map_err(to_datafusion)?);
        }
        Ok(ColumnarValue::Array(Arc::new(Int64Array::from(out))))
    }
}

/// A function of no arguments returning a fixed text.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ConstantText {
    name: String,
    value: String,
    signature: Signature,
}

impl ConstantText {
    fn new(name: &str, value: String) -> ConstantText {
        ConstantText {
            name: name.to_string(),
            value,
            signature: Signature::nullary(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for ConstantText {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arguments: &[ArrowType]) -> datafusion::error::Result<ArrowType> {
        Ok(ArrowType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let values: StringArray =
            std::iter::repeat_n(Some(self.value.as_str()), args.number_rows).collect();
        let array: ArrayRef = Arc::new(values);
        Ok(ColumnarValue::Array(array))
    }
}

/// `current_setting(name [, missing_ok])`: a setting's value as SHOW gives it; an unknown name is
/// 42704, or NULL with `missing_ok`. With a fixed setting, a function of no arguments that reads it
/// (`current_user` reads `session_authorization`).
struct CurrentSetting {
    shared: Arc<Shared>,
    signature: Signature,
    name: &'static str,
    fixed_setting: Option<&'static str>,
}

session_function_identity!(CurrentSetting, name);

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arguments: &[ArrowType]) -> datafusion::error::Result<ArrowType> {
        Ok(ArrowType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let rows = args.number_rows;
        if let Some(setting) = self.fixed_setting {
            let value = crate::session::setting(&self.shared, setting).map_err(to_datafusion)?;
            let values: StringArray = std::iter::repeat_n(Some(value.as_str()), rows).collect();
            let array: ArrayRef = Arc::new(values);
            return Ok(ColumnarValue::Array(array));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let names = arrays[0]
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| to_datafusion(Error::internal("current_setting takes text")))?;
        let missing_ok = arrays.get(1).and_then(|array| {
            array
                .as_any()
                .downcast_ref::<datafusion::arrow::array::BooleanArray>()
                .cloned()
        });
        let mut values = Vec::with_capacity(rows);
        for row in 0..rows {
            if names.is_null(row) {
                values.push(None);
                continue;
            }
            let name = names.value(row).to_lowercase();
            match crate::session::setting(&self.shared, &name) {
                Ok(value) => values.push(Some(value)),
                Err(_)
                    if missing_ok
                        .as_ref()
                        .is_some_and(|flags| !flags.is_null(row) && flags.value(row)) =>
                {
                    values.push(None)
                }
                Err(error) => return Err(to_datafusion(error)),
            }
        }
        let array: ArrayRef = Arc::new(StringArray::from(values));
        Ok(ColumnarValue::Array(array))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_version_is_numeric() {
        assert!(
            crate::SERVER_VERSION
                .split('.')
                .all(|part| part.parse::<u32>().is_ok())
        );
    }
}

/// A one-argument text function with PostgreSQL's input rules for a type DataFusion lacks or reads
/// differently: `qubedb_uuid` (text out, canonical) and `qubedb_bytea` (binary out). The SQL rewrite
/// turns `::uuid` and `::bytea` into these (`::jsonb` into `qubedb_jsonb`, in `sql/jsonb.rs`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct InputFunction {
    name: &'static str,
    signature: Signature,
}

impl InputFunction {
    fn new(name: &'static str) -> InputFunction {
        InputFunction {
            name,
            signature: Signature::exact(vec![ArrowType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for InputFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arguments: &[ArrowType]) -> datafusion::error::Result<ArrowType> {
        Ok(match self.name {
            "qubedb_bytea" => ArrowType::Binary,
            _ => ArrowType::Utf8,
        })
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let data_type = match self.name {
            "qubedb_uuid" => qubedb_model::DataType::Uuid,
            _ => qubedb_model::DataType::Bytea,
        };
        if data_type == qubedb_model::DataType::Bytea {
            return Ok(ColumnarValue::Array(
                crate::sql::convert::cast_to(&array, data_type).map_err(to_datafusion)?,
            ));
        }
        let strings = array
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| to_datafusion(Error::internal("text function argument is not text")))?;
        let mut out = Vec::with_capacity(strings.len());
        for value in strings.iter() {
            out.push(match value {
                None => None,
                Some(text) => {
                    let bytes = crate::sql::convert::parse_uuid(text).map_err(to_datafusion)?;
                    Some(uuid::Uuid::from_bytes(bytes).hyphenated().to_string())
                }
            });
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// What a catalog function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CatalogReturn {
    Text,
    Boolean,
    Oid,
}

/// One argument of a catalog function call, as the function reads it.
#[derive(Debug, Clone)]
enum Argument {
    Null,
    Integer(i64),
    Text(String),
    Boolean(bool),
}

impl Argument {
    fn integer(&self) -> Option<i64> {
        match self {
            Argument::Integer(value) => Some(*value),
            Argument::Text(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    fn text(&self) -> Option<String> {
        match self {
            Argument::Text(text) => Some(text.clone()),
            Argument::Integer(value) => Some(value.to_string()),
            Argument::Boolean(value) => Some(value.to_string()),
            Argument::Null => None,
        }
    }
}

/// The value a catalog function computes for one row.
#[derive(Debug, Clone)]
enum Answer {
    Null,
    Text(String),
    Boolean(bool),
    Oid(i64),
}

type CatalogEvaluator = fn(&CatalogView, &[Argument]) -> Result<Answer>;

/// What a catalog function reads: the statement's catalog and the data directory's roles.
struct CatalogView {
    catalog: Arc<qubedb_model::catalog::Catalog>,
    roles: Arc<Vec<qubedb_model::catalog::RoleDef>>,
    /// The session's temporary schema, searched first for unqualified names.
    temp_schema: String,
}

impl std::ops::Deref for CatalogView {
    type Target = qubedb_model::catalog::Catalog;

    fn deref(&self) -> &qubedb_model::catalog::Catalog {
        &self.catalog
    }
}

/// A function over the catalog the statement sees (`format_type`, `pg_get_indexdef`, ...), evaluated row
/// by row; see [`crate::sql::system`].
struct CatalogFunction {
    shared: Arc<Shared>,
    name: &'static str,
    signature: Signature,
    returns: CatalogReturn,
    evaluate: CatalogEvaluator,
}

session_function_identity!(CatalogFunction, name);

impl ScalarUDFImpl for CatalogFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arguments: &[ArrowType]) -> datafusion::error::Result<ArrowType> {
        Ok(match self.returns {
            CatalogReturn::Text => ArrowType::Utf8,
            CatalogReturn::Boolean => ArrowType::Boolean,
            CatalogReturn::Oid => ArrowType::Int64,
        })
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let catalog = CatalogView {
            catalog: self.shared.state.lock().catalog.clone(),
            roles: self.shared.database.cluster.roles(),
            temp_schema: self.shared.temp_schema.clone(),
        };
        let mut answers = Vec::with_capacity(rows);
        for row in 0..rows {
            let mut arguments = Vec::with_capacity(arrays.len());
            for array in &arrays {
                arguments.push(match ScalarValue::try_from_array(array, row)? {
                    value if value.is_null() => Argument::Null,
                    ScalarValue::Boolean(Some(value)) => Argument::Boolean(value),
                    ScalarValue::Utf8(Some(text))
                    | ScalarValue::LargeUtf8(Some(text))
                    | ScalarValue::Utf8View(Some(text)) => Argument::Text(text),
                    other => match other.cast_to(&ArrowType::Int64)? {
                        ScalarValue::Int64(Some(value)) => Argument::Integer(value),
                        _ => Argument::Null,
                    },
                });
            }
            answers.push((self.evaluate)(&catalog, &arguments).map_err(to_datafusion)?);
        }
        let array: ArrayRef = match self.returns {
            CatalogReturn::Text => Arc::new(
                answers
                    .into_iter()
                    .map(|answer| match answer {
                        Answer::Text(text) => Some(text),
                        _ => None,
                    })
                    .collect::<StringArray>(),
            ),
            CatalogReturn::Boolean => Arc::new(
                answers
                    .into_iter()
                    .map(|answer| match answer {
                        Answer::Boolean(value) => Some(value),
                        _ => None,
                    })
                    .collect::<datafusion::arrow::array::BooleanArray>(),
            ),
            CatalogReturn::Oid => Arc::new(
                answers
                    .into_iter()
                    .map(|answer| match answer {
                        Answer::Oid(value) => Some(value),
                        _ => None,
                    })
                    .collect::<Int64Array>(),
            ),
        };
        Ok(ColumnarValue::Array(array))
    }
}

fn text_or_null(value: Option<String>) -> Answer {
    value.map_or(Answer::Null, Answer::Text)
}

/// The catalog functions clients call, with what each computes. `None` arguments (SQL NULL) give NULL,
/// as these functions are strict in PostgreSQL.
fn catalog_functions() -> Vec<(&'static str, CatalogReturn, CatalogEvaluator)> {
    use crate::sql::system;
    vec![
        ("format_type", CatalogReturn::Text, |_, arguments| {
            let Some(oid) = arguments.first().and_then(Argument::integer) else {
                return Ok(Answer::Null);
            };
            let modifier = arguments
                .get(1)
                .and_then(Argument::integer)
                .map(|value| value as i32);
            Ok(Answer::Text(
                system::format_type(oid, modifier).unwrap_or_else(|| "???".to_string()),
            ))
        }),
        (
            "pg_table_is_visible",
            CatalogReturn::Boolean,
            |catalog, arguments| {
                Ok(match arguments.first().and_then(Argument::integer) {
                    Some(oid) => Answer::Boolean(system::table_is_visible(
                        catalog,
                        &catalog.temp_schema,
                        oid,
                    )),
                    None => Answer::Null,
                })
            },
        ),
        (
            "pg_type_is_visible",
            CatalogReturn::Boolean,
            |_, arguments| {
                Ok(match arguments.first().and_then(Argument::integer) {
                    Some(oid) => Answer::Boolean(system::format_type(oid, None).is_some()),
                    None => Answer::Null,
                })
            },
        ),
        ("pg_get_userbyid", CatalogReturn::Text, |view, arguments| {
            Ok(match arguments.first().and_then(Argument::integer) {
                Some(oid) => Answer::Text(
                    view.roles
                        .iter()
                        .find(|role| i64::from(role.oid) == oid)
                        .map_or_else(|| format!("unknown (OID={oid})"), |role| role.name.clone()),
                ),
                None => Answer::Null,
            })
        }),
        // Expressions are stored as their text: a default's `adbin`, a check's `conbin`.
        ("pg_get_expr", CatalogReturn::Text, |_, arguments| {
            Ok(text_or_null(arguments.first().and_then(Argument::text)))
        }),
        (
            "pg_get_indexdef",
            CatalogReturn::Text,
            |catalog, arguments| {
                // `pg_get_indexdef(index, column, pretty)`: with a column number > 0, only that key.
                let column = arguments.get(1).and_then(Argument::integer).unwrap_or(0);
                Ok(text_or_null(
                    arguments
                        .first()
                        .and_then(Argument::integer)
                        .and_then(|oid| system::index_definition(catalog, oid, column)),
                ))
            },
        ),
        (
            "pg_get_constraintdef",
            CatalogReturn::Text,
            |catalog, arguments| {
                Ok(text_or_null(
                    arguments
                        .first()
                        .and_then(Argument::integer)
                        .and_then(|oid| system::constraint_definition(catalog, oid)),
                ))
            },
        ),
        // No extended statistics objects exist (CREATE STATISTICS is not supported).
        (
            "pg_get_statisticsobjdef_columns",
            CatalogReturn::Text,
            |_, _| Ok(Answer::Null),
        ),
        // Ordinary tables can be published (PostgreSQL's rule); nothing else here can.
        (
            "pg_relation_is_publishable",
            CatalogReturn::Boolean,
            |catalog, arguments| {
                Ok(match arguments.first().and_then(Argument::integer) {
                    Some(oid) => Answer::Boolean(
                        system::object_id(oid)
                            .and_then(|id| catalog.object(id))
                            .is_some_and(|object| {
                                matches!(object, qubedb_model::catalog::Object::Table(_))
                            }),
                    ),
                    None => Answer::Null,
                })
            },
        ),
        // COMMENT ON is not supported, so no object has a description.
        ("obj_description", CatalogReturn::Text, |_, _| {
            Ok(Answer::Null)
        }),
        ("col_description", CatalogReturn::Text, |_, _| {
            Ok(Answer::Null)
        }),
        ("shobj_description", CatalogReturn::Text, |_, _| {
            Ok(Answer::Null)
        }),
        // No privilege system yet: every role may do everything (authentication is `trust`).
        ("has_table_privilege", CatalogReturn::Boolean, |_, _| {
            Ok(Answer::Boolean(true))
        }),
        ("has_schema_privilege", CatalogReturn::Boolean, |_, _| {
            Ok(Answer::Boolean(true))
        }),
        ("has_database_privilege", CatalogReturn::Boolean, |_, _| {
            Ok(Answer::Boolean(true))
        }),
        ("has_column_privilege", CatalogReturn::Boolean, |_, _| {
            Ok(Answer::Boolean(true))
        }),
        ("has_sequence_privilege", CatalogReturn::Boolean, |_, _| {
            Ok(Answer::Boolean(true))
        }),
        (
            "pg_encoding_to_char",
            CatalogReturn::Text,
            |_, arguments| {
                Ok(match arguments.first().and_then(Argument::integer) {
                    Some(6) => Answer::Text("UTF8".into()),
                    Some(_) => Answer::Text(String::new()),
                    None => Answer::Null,
                })
            },
        ),
        // No relation is partitioned: a table's only "ancestor" is itself, and it has no partition
        // root. (`pg_partition_ancestors` is a set-returning function with exactly one row here.)
        (
            "pg_partition_ancestors",
            CatalogReturn::Oid,
            |catalog, arguments| {
                Ok(match arguments.first().and_then(Argument::integer) {
                    Some(oid)
                        if system::object_id(oid)
                            .is_some_and(|id| catalog.object(id).is_some()) =>
                    {
                        Answer::Oid(oid)
                    }
                    _ => Answer::Null,
                })
            },
        ),
        ("pg_partition_root", CatalogReturn::Oid, |_, _| {
            Ok(Answer::Null)
        }),
        // There are no triggers (foreign keys are not triggers here): no OID names one.
        ("pg_get_triggerdef", CatalogReturn::Text, |_, _| {
            Ok(Answer::Null)
        }),
        (
            "pg_get_serial_sequence",
            CatalogReturn::Text,
            |catalog, arguments| {
                let (Some(table), Some(column)) = (
                    arguments.first().and_then(Argument::text),
                    arguments.get(1).and_then(Argument::text),
                ) else {
                    return Ok(Answer::Null);
                };
                Ok(text_or_null(system::serial_sequence(
                    catalog,
                    &catalog.temp_schema,
                    &table,
                    &column,
                )))
            },
        ),
        ("to_regtype", CatalogReturn::Oid, |_, arguments| {
            Ok(arguments
                .first()
                .and_then(Argument::text)
                .and_then(|name| system::type_oid_by_name(&name))
                .map_or(Answer::Null, Answer::Oid))
        }),
        // The session's temporary schema (`sql/temp.rs`), 0 before its first temporary table.
        ("pg_my_temp_schema", CatalogReturn::Oid, |catalog, _| {
            Ok(Answer::Oid(
                catalog
                    .schema_id(&catalog.temp_schema)
                    .map_or(0, system::object_oid),
            ))
        }),
        ("to_regclass", CatalogReturn::Oid, |catalog, arguments| {
            Ok(arguments
                .first()
                .and_then(Argument::text)
                .and_then(|name| system::relation_oid(catalog, &catalog.temp_schema, &name))
                .map_or(Answer::Null, Answer::Oid))
        }),
        // `'name'::regclass`: the relation's OID, 42P01 when there is none.
        (
            "qubedb_regclass_oid",
            CatalogReturn::Oid,
            |catalog, arguments| {
                let Some(name) = arguments.first().and_then(Argument::text) else {
                    return Ok(Answer::Null);
                };
                if let Ok(oid) = name.trim().parse::<i64>() {
                    return Ok(Answer::Oid(oid));
                }
                system::relation_oid(catalog, &catalog.temp_schema, &name)
                    .map(Answer::Oid)
                    .ok_or_else(|| {
                        Error::user("42P01", format!("relation \"{name}\" does not exist"))
                    })
            },
        ),
        // `oid::regclass` printed: the relation's name, or the number for an unknown OID.
        (
            "qubedb_regclass_name",
            CatalogReturn::Text,
            |catalog, arguments| {
                Ok(match arguments.first().and_then(Argument::integer) {
                    Some(oid) => Answer::Text(
                        system::relation_name(catalog, oid).unwrap_or_else(|| oid.to_string()),
                    ),
                    None => Answer::Null,
                })
            },
        ),
        ("qubedb_regtype_oid", CatalogReturn::Oid, |_, arguments| {
            let Some(name) = arguments.first().and_then(Argument::text) else {
                return Ok(Answer::Null);
            };
            system::type_oid_by_name(&name)
                .map(Answer::Oid)
                .ok_or_else(|| Error::user("42704", format!("type \"{name}\" does not exist")))
        }),
        (
            "qubedb_regnamespace_name",
            CatalogReturn::Text,
            |catalog, arguments| {
                Ok(match arguments.first().and_then(Argument::integer) {
                    Some(oid) => Answer::Text(
                        system::namespace_name(catalog, oid).unwrap_or_else(|| oid.to_string()),
                    ),
                    None => Answer::Null,
                })
            },
        ),
    ]
}

/// Registers the catalog functions.
fn register_catalog_functions(context: &SessionContext, shared: &Arc<Shared>) {
    for (name, returns, evaluate) in catalog_functions() {
        context.register_udf(ScalarUDF::new_from_impl(CatalogFunction {
            shared: shared.clone(),
            name,
            signature: Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::Nullary,
                    datafusion::logical_expr::TypeSignature::VariadicAny,
                ],
                Volatility::Stable,
            ),
            returns,
            evaluate,
        }));
    }
}
