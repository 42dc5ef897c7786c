//! Records at run time: casts to composite types, domain checks, and `jsonb_populate_record[set]`.
//!
//! A record is an Arrow struct whose fields are the composite type's. The functions here take the
//! record's [`Shape`] as a literal JSON argument (written by [`crate::sql::user_types`]), so they know
//! the exact field types (`character(10)`, `jsonb`, nested records and arrays) without a catalog.
//!
//! - `qubedb_record(value, shape)`: a row (`ROW(...)`, fields cast by position), a record literal
//!   (`'(abc,42,)'`: PostgreSQL's `record_in` syntax) or NULL, as a record of the shape.
//! - `qubedb_domain_check(value, domain, not_null, constraint, ok, ...)`: the value itself, or
//!   PostgreSQL's error for a NULL in a NOT NULL domain (23502) or a false CHECK (23514). The checks
//!   are computed by the caller's SQL (the domain's expressions over the value);
//!   `qubedb_domain_ok(checked, ...)` is a filter that makes such checks run for every row.
//! - `qubedb_jsonb_populate_record(base, json, shape)` and `..._recordset`: PostgreSQL's
//!   `populate_record`: each field from the JSON object's key of the same name (JSON null is SQL NULL,
//!   a missing key keeps the base record's value), converted as PostgreSQL converts it: strings by the
//!   field type's input syntax, other scalars by their JSON text, arrays from JSON arrays (rectangular,
//!   as deep as the type) or array literals, records from objects or record literals, `json`/`jsonb`
//!   fields as the JSON value itself. An empty shape argument means "the base's own type" (an
//!   anonymous `ROW(...)`).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, StringArray, StructArray, new_empty_array,
    new_null_array,
};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, FieldRef};
use datafusion::common::{Result as DataFusionResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::prelude::SessionContext;
use qubedb_model::jsonb::{Jsonb, Kind};
use qubedb_model::types::DataType;

use crate::error::{Error, Result, to_datafusion};
use crate::sql::array_literals::{Element, parse_nested_array};
use crate::sql::convert::{cast_to, check_length};
use crate::sql::user_types::{Shape, record_fields};

/// Registers the record functions.
pub(crate) fn register(context: &SessionContext) {
    context.register_udf(ScalarUDF::new_from_impl(RecordCast {
        signature: Signature::any(2, Volatility::Immutable),
    }));
    context.register_udf(ScalarUDF::new_from_impl(DomainCheck {
        signature: Signature::variadic_any(Volatility::Immutable),
    }));
    context.register_udf(ScalarUDF::new_from_impl(DomainOk {
        signature: Signature::variadic_any(Volatility::Immutable),
    }));
    for (name, set) in [
        ("qubedb_jsonb_populate_record", false),
        ("qubedb_jsonb_populate_recordset", true),
    ] {
        context.register_udf(ScalarUDF::new_from_impl(Populate {
            name,
            set,
            signature: Signature::any(3, Volatility::Immutable),
        }));
    }
}

/// The shape a literal argument spells.
fn literal_shape(args: &ReturnFieldArgs, position: usize) -> Result<Option<Shape>> {
    match args.scalar_arguments.get(position).copied().flatten() {
        Some(ScalarValue::Utf8(Some(text))) if !text.is_empty() => {
            Ok(Some(Shape::from_spec(text)?))
        }
        Some(ScalarValue::Utf8(_)) => Ok(None),
        _ => Err(Error::internal(
            "a record function's shape argument is not a literal",
        )),
    }
}

fn shape_argument(args: &ScalarFunctionArgs, position: usize) -> Result<Option<Shape>> {
    match args.args.get(position) {
        Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text)))) if !text.is_empty() => {
            Ok(Some(Shape::from_spec(text)?))
        }
        Some(ColumnarValue::Scalar(ScalarValue::Utf8(_))) => Ok(None),
        _ => Err(Error::internal(
            "a record function's shape argument is not a literal",
        )),
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct RecordCast {
    signature: Signature,
}

impl ScalarUDFImpl for RecordCast {
    fn name(&self) -> &str {
        "qubedb_record"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arguments: &[ArrowType]) -> DataFusionResult<ArrowType> {
        Err(to_datafusion(Error::internal(
            "qubedb_record's type comes from its shape argument",
        )))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DataFusionResult<FieldRef> {
        let shape = literal_shape(&args, 1)
            .and_then(|shape| shape.ok_or_else(|| Error::internal("qubedb_record without a shape")))
            .map_err(to_datafusion)?;
        Ok(Arc::new(Field::new(self.name(), shape.arrow_type(), true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DataFusionResult<ColumnarValue> {
        let shape = shape_argument(&args, 1)
            .and_then(|shape| shape.ok_or_else(|| Error::internal("qubedb_record without a shape")))
            .map_err(to_datafusion)?;
        let value = args.args[0].to_array(args.number_rows)?;
        let cast = cast_array(&value, &shape).map_err(to_datafusion)?;
        Ok(ColumnarValue::Array(cast))
    }
}

/// `array` as values of `shape` (domains are checked by the caller).
fn cast_array(array: &ArrayRef, shape: &Shape) -> Result<ArrayRef> {
    let target = shape.arrow_type();
    if array.data_type() == &target {
        return Ok(array.clone());
    }
    if array.data_type() == &ArrowType::Null {
        return Ok(new_null_array(&target, array.len()));
    }
    if let Some(strings) = array.as_any().downcast_ref::<StringArray>()
        && !shape.base().is_plain_base()
    {
        let values = strings
            .iter()
            .map(|text| match text {
                None => ScalarValue::try_from(&target).map_err(Error::from),
                Some(text) => text_value(text, shape),
            })
            .collect::<Result<Vec<_>>>()?;
        return scalars_to_array(values, &target);
    }
    match shape.base() {
        Shape::Base(data_type) => cast_to(array, *data_type),
        Shape::Record { name, fields } => {
            let ArrowType::Struct(source_fields) = array.data_type() else {
                return Err(cannot_cast(array.data_type(), name));
            };
            let source = array.as_struct();
            if source_fields.len() != fields.len() {
                return Err(cannot_cast(array.data_type(), name).with_detail(
                    if source_fields.len() < fields.len() {
                        "Input has too few columns."
                    } else {
                        "Input has too many columns."
                    },
                ));
            }
            let columns = source
                .columns()
                .iter()
                .zip(fields)
                .map(|(column, (_, field))| cast_array(column, field))
                .collect::<Result<Vec<_>>>()?;
            let record =
                StructArray::try_new(record_fields(fields), columns, source.nulls().cloned())?;
            Ok(Arc::new(record))
        }
        Shape::Array(_) => {
            let options = datafusion::arrow::compute::CastOptions {
                safe: false,
                ..Default::default()
            };
            datafusion::arrow::compute::cast_with_options(array, &target, &options).map_err(|_| {
                Error::user(
                    "42846",
                    format!(
                        "cannot cast type {} to {}",
                        arrow_name(array.data_type()),
                        shape.sql_name()
                    ),
                )
            })
        }
        Shape::Domain(_) => unreachable!("base() strips domains"),
    }
}

fn arrow_name(arrow: &ArrowType) -> String {
    match arrow {
        ArrowType::Struct(_) => "record".into(),
        other => crate::sql::convert::sql_type_of_arrow(other)
            .map(|data_type| data_type.sql_name())
            .unwrap_or_else(|| other.to_string()),
    }
}

fn cannot_cast(from: &ArrowType, to: &str) -> Error {
    Error::user(
        "42846",
        format!("cannot cast type {} to {to}", arrow_name(from)),
    )
}

impl Shape {
    /// True for a base type (not an array or record).
    fn is_plain_base(&self) -> bool {
        matches!(self, Shape::Base(_))
    }
}

/// Values to one array of type `target` (none: an empty array).
fn scalars_to_array(values: Vec<ScalarValue>, target: &ArrowType) -> Result<ArrayRef> {
    if values.is_empty() {
        return Ok(new_empty_array(target));
    }
    Ok(ScalarValue::iter_to_array(values)?)
}

/// The value of `text` in the input syntax of `shape`.
fn text_value(text: &str, shape: &Shape) -> Result<ScalarValue> {
    match shape.base() {
        Shape::Base(data_type) => base_value(text, *data_type),
        Shape::Array(_) => {
            let malformed = || Error::user("22P02", format!("malformed array literal: \"{text}\""));
            let elements = parse_nested_array(text).ok_or_else(malformed)?;
            if !rectangular(&elements, 0, &mut Vec::new()) {
                return Err(malformed().with_detail(
                    "Multidimensional arrays must have sub-arrays with matching dimensions.",
                ));
            }
            array_value(&elements, shape.base()).ok_or_else(malformed)?
        }
        Shape::Record { fields, .. } => {
            let parsed = parse_record(text)?;
            if parsed.len() != fields.len() {
                return Err(
                    Error::user("22P02", format!("malformed record literal: \"{text}\""))
                        .with_detail(if parsed.len() < fields.len() {
                            "Too few columns."
                        } else {
                            "Too many columns."
                        }),
                );
            }
            let values = parsed
                .into_iter()
                .zip(fields)
                .map(|(field_text, (_, field))| match field_text {
                    None => Ok(ScalarValue::try_from(&field.arrow_type())?),
                    Some(field_text) => text_value(&field_text, field),
                })
                .collect::<Result<Vec<_>>>()?;
            record_value(fields, values)
        }
        Shape::Domain(_) => unreachable!("base() strips domains"),
    }
}

/// True if every sub-array at one depth has one length (`lengths[depth]`, set by the first seen).
fn rectangular(elements: &[Element], depth: usize, lengths: &mut Vec<usize>) -> bool {
    match lengths.get(depth) {
        Some(&length) if length != elements.len() => return false,
        Some(_) => {}
        None => lengths.push(elements.len()),
    }
    elements.iter().all(|element| match element {
        Element::Array(items) => rectangular(items, depth + 1, lengths),
        Element::Value(_) => true,
    })
}

/// An array of `shape` (an `Array` shape) from an array literal's elements; `None` when their
/// dimensions are not the shape's.
fn array_value(elements: &[Element], shape: &Shape) -> Option<Result<ScalarValue>> {
    let Shape::Array(element) = shape else {
        return None;
    };
    let element_type = element.arrow_type();
    let mut values = Vec::with_capacity(elements.len());
    for item in elements {
        let value = match (item, element.base()) {
            (Element::Array(items), Shape::Array(_)) => array_value(items, element.base())?,
            (Element::Value(None), inner) if !matches!(inner, Shape::Array(_)) => {
                ScalarValue::try_from(&element_type).map_err(Error::from)
            }
            (Element::Value(Some(text)), inner) if !matches!(inner, Shape::Array(_)) => {
                text_value(text, element)
            }
            _ => return None,
        };
        match value {
            Ok(value) => values.push(value),
            Err(error) => return Some(Err(error)),
        }
    }
    Some(Ok(ScalarValue::List(ScalarValue::new_list(
        &values,
        &element_type,
        true,
    ))))
}

/// A base type's value from its text, with `CHAR(n)` / `VARCHAR(n)` length rules.
fn base_value(text: &str, data_type: DataType) -> Result<ScalarValue> {
    let text = match data_type {
        DataType::Char(length) => check_length(text, Some(length), true, data_type)?,
        DataType::Varchar(length) => check_length(text, length, false, data_type)?,
        _ => text.to_string(),
    };
    let array: ArrayRef = Arc::new(StringArray::from(vec![text.as_str()]));
    let cast = cast_to(&array, data_type).map_err(|error| {
        if matches!(error.code, "22P02" | "22007" | "22008") {
            // PostgreSQL names the type as its input function does (`timestamp`, not `timestamp
            // without time zone`) and quotes the text.
            let name = match data_type {
                DataType::Timestamp => "timestamp".to_string(),
                DataType::Time => "time".to_string(),
                other => other.sql_name(),
            };
            Error::user(
                error.code,
                format!("invalid input syntax for type {name}: \"{text}\""),
            )
        } else {
            error
        }
    })?;
    Ok(ScalarValue::try_from_array(&cast, 0)?)
}

/// One record value of `fields` from its field values.
fn record_value(fields: &[(String, Shape)], values: Vec<ScalarValue>) -> Result<ScalarValue> {
    let columns = values
        .iter()
        .map(|value| value.to_array())
        .collect::<datafusion::common::Result<Vec<_>>>()?;
    let record = StructArray::try_new(record_fields(fields), columns, None)?;
    Ok(ScalarValue::Struct(Arc::new(record)))
}

/// The fields of a record literal (`(a,"b c",)`: an empty unquoted field is NULL), PostgreSQL's
/// `record_in` syntax.
pub(crate) fn parse_record(text: &str) -> Result<Vec<Option<String>>> {
    let malformed = |detail: &str| {
        Error::user("22P02", format!("malformed record literal: \"{text}\""))
            .with_detail(detail.to_string())
    };
    let trimmed = text.trim_start();
    let Some(mut rest) = trimmed.strip_prefix('(') else {
        return Err(malformed("Missing left parenthesis."));
    };
    let mut fields = Vec::new();
    loop {
        let mut value = String::new();
        let mut quoted_any = false;
        let mut characters = rest.char_indices().peekable();
        let mut end = None;
        let mut in_quotes = false;
        while let Some((at, character)) = characters.next() {
            if in_quotes {
                match character {
                    '"' if characters.peek().map(|(_, next)| *next) == Some('"') => {
                        characters.next();
                        value.push('"');
                    }
                    '"' => in_quotes = false,
                    '\\' => match characters.next() {
                        Some((_, escaped)) => value.push(escaped),
                        None => return Err(malformed("Unexpected end of input.")),
                    },
                    other => value.push(other),
                }
                continue;
            }
            match character {
                '"' => {
                    in_quotes = true;
                    quoted_any = true;
                }
                '\\' => match characters.next() {
                    Some((_, escaped)) => value.push(escaped),
                    None => return Err(malformed("Unexpected end of input.")),
                },
                ',' | ')' => {
                    end = Some((at, character));
                    break;
                }
                other => value.push(other),
            }
        }
        let Some((at, separator)) = end else {
            return Err(malformed("Unexpected end of input."));
        };
        fields.push(if value.is_empty() && !quoted_any {
            None
        } else {
            Some(value)
        });
        rest = &rest[at + 1..];
        if separator == ')' {
            if !rest.trim().is_empty() {
                return Err(malformed("Junk after right parenthesis."));
            }
            return Ok(fields);
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DomainCheck {
    signature: Signature,
}

impl ScalarUDFImpl for DomainCheck {
    fn name(&self) -> &str {
        "qubedb_domain_check"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arguments: &[ArrowType]) -> DataFusionResult<ArrowType> {
        Ok(arguments.first().cloned().unwrap_or(ArrowType::Null))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DataFusionResult<FieldRef> {
        let first = args
            .arg_fields
            .first()
            .ok_or_else(|| to_datafusion(Error::internal("qubedb_domain_check without a value")))?;
        Ok(Arc::new(
            first
                .as_ref()
                .clone()
                .with_name(self.name())
                .with_nullable(true),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DataFusionResult<ColumnarValue> {
        let rows = args.number_rows;
        let text = |position: usize| -> Result<String> {
            match args.args.get(position) {
                Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text)))) => Ok(text.clone()),
                _ => Err(Error::internal("qubedb_domain_check's names are literals")),
            }
        };
        let domain = text(1).map_err(to_datafusion)?;
        let not_null = matches!(
            args.args.get(2),
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
        );
        let value = args.args[0].to_array(rows)?;
        if not_null && value.null_count() > 0 {
            return Err(to_datafusion(Error::user(
                "23502",
                format!("domain {domain} does not allow null values"),
            )));
        }
        let mut position = 3;
        while position + 1 < args.args.len() {
            let constraint = text(position).map_err(to_datafusion)?;
            let verdicts = args.args[position + 1].to_array(rows)?;
            let verdicts = verdicts
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| {
                    to_datafusion(Error::user(
                        "42804",
                        format!("CHECK of domain {domain} must be type boolean"),
                    ))
                })?;
            if verdicts.iter().any(|verdict| verdict == Some(false)) {
                return Err(to_datafusion(Error::user(
                    "23514",
                    format!("value for domain {domain} violates check constraint \"{constraint}\""),
                )));
            }
            position += 2;
        }
        Ok(ColumnarValue::Array(value))
    }
}

/// `qubedb_domain_ok(checked, ...)`: true. Its arguments are `qubedb_domain_check` calls; as a filter
/// it makes them run for every row (a projection of unread columns would be pruned).
#[derive(Debug, PartialEq, Eq, Hash)]
struct DomainOk {
    signature: Signature,
}

impl ScalarUDFImpl for DomainOk {
    fn name(&self) -> &str {
        "qubedb_domain_ok"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arguments: &[ArrowType]) -> DataFusionResult<ArrowType> {
        Ok(ArrowType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DataFusionResult<ColumnarValue> {
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(vec![
            true;
            args.number_rows
        ]))))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Populate {
    name: &'static str,
    set: bool,
    signature: Signature,
}

impl Populate {
    /// PostgreSQL's name of the function, for messages.
    fn shown_name(&self) -> &'static str {
        if self.set {
            "jsonb_populate_recordset"
        } else {
            "jsonb_populate_record"
        }
    }

    fn shape(&self, explicit: Option<Shape>, base: &ArrowType) -> Result<Shape> {
        if let Some(shape) = explicit {
            return Ok(shape);
        }
        match Shape::of_arrow(base) {
            Some(shape @ Shape::Record { .. }) => Ok(shape),
            _ => Err(Error::user(
                "42804",
                format!(
                    "could not determine row type for result of {}",
                    self.shown_name()
                ),
            )
            .with_hint("Provide a non-null record argument, or call the function in the FROM clause using a column definition list.")),
        }
    }
}

/// A base record of another type than the column definition list says: PostgreSQL's error.
fn mismatched_row(have: &datafusion::arrow::datatypes::Fields, shape: &Shape) -> Error {
    let error = Error::user(
        "42804",
        "function return row and query-specified return row do not match",
    );
    let Shape::Record { fields: want, .. } = shape.base() else {
        return error;
    };
    if have.len() != want.len() {
        return error.with_detail(format!(
            "Returned row contains {} attribute{}, but query expects {}.",
            have.len(),
            if have.len() == 1 { "" } else { "s" },
            want.len()
        ));
    }
    for (position, (field, (_, wanted))) in have.iter().zip(want).enumerate() {
        if field.data_type() != &wanted.arrow_type() {
            return error.with_detail(format!(
                "Returned type {} at ordinal position {}, but query expects {}.",
                arrow_name(field.data_type()),
                position + 1,
                wanted.sql_name()
            ));
        }
    }
    error
}

impl ScalarUDFImpl for Populate {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arguments: &[ArrowType]) -> DataFusionResult<ArrowType> {
        Err(to_datafusion(Error::internal(
            "the record's type comes from the shape argument",
        )))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DataFusionResult<FieldRef> {
        let explicit = literal_shape(&args, 2).map_err(to_datafusion)?;
        let base = args
            .arg_fields
            .first()
            .map(|field| field.data_type().clone())
            .unwrap_or(ArrowType::Null);
        let shape = self.shape(explicit, &base).map_err(to_datafusion)?;
        let record = shape.arrow_type();
        if let ArrowType::Struct(have) = &base
            && base != record
        {
            return Err(to_datafusion(mismatched_row(have, &shape)));
        }
        let data_type = if self.set {
            ArrowType::List(Arc::new(Field::new_list_field(record, true)))
        } else {
            record
        };
        Ok(Arc::new(Field::new(self.name, data_type, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DataFusionResult<ColumnarValue> {
        let rows = args.number_rows;
        let explicit = shape_argument(&args, 2).map_err(to_datafusion)?;
        let base = args.args[0].to_array(rows)?;
        let shape = self
            .shape(explicit, base.data_type())
            .map_err(to_datafusion)?;
        let Shape::Record { fields, .. } = shape.base() else {
            return Err(to_datafusion(Error::user(
                "42804",
                format!("first argument of {} must be a row type", self.shown_name()),
            )));
        };
        let base = cast_array(&base, &shape).map_err(to_datafusion)?;
        let documents = args.args[1].to_array(rows)?;
        let record_type = shape.arrow_type();
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let base_value = ScalarValue::try_from_array(&base, row)?;
            let document = document_at(&documents, row).map_err(to_datafusion)?;
            let value = if self.set {
                let records = match &document {
                    None => Vec::new(),
                    Some(bytes) => self
                        .records(fields, &base_value, Jsonb::new(bytes))
                        .map_err(to_datafusion)?,
                };
                ScalarValue::List(ScalarValue::new_list(&records, &record_type, true))
            } else {
                match &document {
                    None => base_value,
                    Some(bytes) => {
                        let document = Jsonb::new(bytes);
                        match document.kind() {
                            Kind::Object => {
                                populate(fields, &base_value, document).map_err(to_datafusion)?
                            }
                            kind => {
                                return Err(to_datafusion(Error::user(
                                    "22023",
                                    format!(
                                        "cannot call {} on {}",
                                        self.shown_name(),
                                        kind_article(kind)
                                    ),
                                )));
                            }
                        }
                    }
                }
            };
            out.push(value);
        }
        let target = if self.set {
            ArrowType::List(Arc::new(Field::new_list_field(record_type, true)))
        } else {
            record_type
        };
        Ok(ColumnarValue::Array(
            scalars_to_array(out, &target).map_err(to_datafusion)?,
        ))
    }
}

impl Populate {
    /// The records of a JSON array of objects.
    fn records(
        &self,
        fields: &[(String, Shape)],
        base: &ScalarValue,
        document: Jsonb<'_>,
    ) -> Result<Vec<ScalarValue>> {
        if document.kind() != Kind::Array {
            return Err(Error::user(
                "22023",
                format!(
                    "cannot call {} on {}",
                    self.shown_name(),
                    kind_article(document.kind())
                ),
            ));
        }
        document
            .elements()
            .map(|element| {
                if element.kind() != Kind::Object {
                    return Err(Error::user(
                        "22023",
                        format!(
                            "argument of {} must be an array of objects",
                            self.shown_name()
                        ),
                    ));
                }
                populate(fields, base, element)
            })
            .collect()
    }
}

fn kind_article(kind: Kind) -> &'static str {
    match kind {
        Kind::Object => "an object",
        Kind::Array => "an array",
        _ => "a scalar",
    }
}

/// The jsonb document of row `row` (jsonb's binary form, or JSON text), `None` for NULL.
fn document_at(array: &ArrayRef, row: usize) -> Result<Option<Vec<u8>>> {
    if array.data_type() == &ArrowType::Null || array.is_null(row) {
        return Ok(None);
    }
    match array.data_type() {
        ArrowType::LargeBinary => Ok(Some(array.as_binary::<i64>().value(row).to_vec())),
        ArrowType::Utf8 => Ok(Some(crate::sql::convert::parse_jsonb(
            array.as_string::<i32>().value(row),
        )?)),
        ArrowType::LargeUtf8 => Ok(Some(crate::sql::convert::parse_jsonb(
            array.as_string::<i64>().value(row),
        )?)),
        ArrowType::Utf8View => Ok(Some(crate::sql::convert::parse_jsonb(
            array.as_string_view().value(row),
        )?)),
        other => Err(Error::user(
            "42883",
            format!(
                "function jsonb_populate_record(record, {}) does not exist",
                arrow_name(other)
            ),
        )),
    }
}

/// A record of `fields` from a JSON object, keeping `base`'s values for missing keys.
fn populate(
    fields: &[(String, Shape)],
    base: &ScalarValue,
    document: Jsonb<'_>,
) -> Result<ScalarValue> {
    let base_fields: Option<&StructArray> = match base {
        ScalarValue::Struct(record) if !record.is_null(0) => Some(record.as_ref()),
        _ => None,
    };
    let values = fields
        .iter()
        .enumerate()
        .map(|(position, (name, shape))| {
            let base_value = match base_fields {
                Some(record) => ScalarValue::try_from_array(record.column(position), 0)?,
                None => ScalarValue::try_from(&shape.arrow_type())?,
            };
            match document.get(name) {
                None => Ok(base_value),
                Some(value) => {
                    let mut path = Path {
                        key: name.clone(),
                        elements: Vec::new(),
                    };
                    json_value(value, shape, &base_value, &mut path)
                }
            }
        })
        .collect::<Result<Vec<_>>>()?;
    record_value(fields, values)
}

/// Where a value sits in the document, for PostgreSQL's hints.
struct Path {
    key: String,
    elements: Vec<usize>,
}

impl Path {
    fn hint(&self) -> String {
        if self.elements.is_empty() {
            format!("See the value of key \"{}\".", self.key)
        } else {
            let indexes: String = self
                .elements
                .iter()
                .map(|index| format!("[{index}]"))
                .collect();
            format!("See the array element {indexes} of key \"{}\".", self.key)
        }
    }
}

/// A JSON value as a value of `shape` (`base`: the base record's value, for nested records).
fn json_value(
    value: Jsonb<'_>,
    shape: &Shape,
    base: &ScalarValue,
    path: &mut Path,
) -> Result<ScalarValue> {
    if value.kind() == Kind::Null {
        return Ok(ScalarValue::try_from(&shape.arrow_type())?);
    }
    match shape.base() {
        Shape::Base(DataType::Jsonb) => {
            Ok(ScalarValue::LargeBinary(Some(value.to_json().encode())))
        }
        Shape::Base(DataType::Json) => Ok(ScalarValue::LargeUtf8(Some(value.to_text()))),
        Shape::Base(data_type) => {
            let text = match value.as_str() {
                Some(text) => text.to_string(),
                None => value.to_text(),
            };
            base_value(&text, *data_type)
        }
        Shape::Array(_) => match value.kind() {
            Kind::Array => {
                let mut lengths = Vec::new();
                json_array(value, shape, path, &mut lengths, 0)
            }
            Kind::String => text_value(value.as_str().unwrap_or_default(), shape),
            _ => Err(Error::user("22023", "expected JSON array").with_hint(path.hint())),
        },
        Shape::Record { fields, .. } => match value.kind() {
            Kind::Object => populate(fields, base, value),
            Kind::String => text_value(value.as_str().unwrap_or_default(), shape),
            Kind::Array => Err(Error::user(
                "22023",
                "cannot call populate_composite on an array",
            )),
            _ => Err(Error::user(
                "22023",
                "cannot call populate_composite on a scalar",
            )),
        },
        Shape::Domain(_) => unreachable!("base() strips domains"),
    }
}

/// A JSON array as an array of `shape` (an `Array` shape), checking that sub-arrays at each depth
/// have one length (`lengths[depth]`, set by the first seen), as PostgreSQL's multidimensional arrays
/// must.
fn json_array(
    value: Jsonb<'_>,
    shape: &Shape,
    path: &mut Path,
    lengths: &mut Vec<usize>,
    depth: usize,
) -> Result<ScalarValue> {
    let Shape::Array(element) = shape.base() else {
        unreachable!("json_array is called for array shapes");
    };
    let length = value.len();
    match lengths.get(depth) {
        Some(expected) if *expected != length => {
            return Err(Error::user("22P02", "malformed JSON array").with_detail(
                "Multidimensional arrays must have sub-arrays with matching dimensions.",
            ));
        }
        Some(_) => {}
        None => lengths.push(length),
    }
    let element_type = element.arrow_type();
    let nested = matches!(element.base(), Shape::Array(_));
    let mut values = Vec::with_capacity(length);
    for (index, item) in value.elements().enumerate() {
        path.elements.push(index);
        let converted = if nested {
            if item.kind() != Kind::Array {
                return Err(Error::user("22023", "expected JSON array").with_hint(path.hint()));
            }
            json_array(item, element, path, lengths, depth + 1)?
        } else {
            let null_base = ScalarValue::try_from(&element_type)?;
            json_value(item, element, &null_base, path)?
        };
        path.elements.pop();
        values.push(converted);
    }
    Ok(ScalarValue::List(ScalarValue::new_list(
        &values,
        &element_type,
        true,
    )))
}

#[cfg(test)]
mod tests {
    use super::parse_record;

    #[test]
    fn record_literals_read_as_postgresql_reads_them() {
        assert_eq!(
            parse_record("(abc,42,)").expect("valid"),
            vec![Some("abc".into()), Some("42".into()), None]
        );
        assert_eq!(
            parse_record(r#"("a,b","say ""hi""",\))"#).expect("valid"),
            vec![
                Some("a,b".into()),
                Some("say \"hi\"".into()),
                Some(")".into())
            ]
        );
        assert_eq!(
            parse_record("(\"\")").expect("valid"),
            vec![Some(String::new())]
        );
        assert!(parse_record("abc").is_err());
        assert!(parse_record("(a,b").is_err());
        assert!(parse_record("(a) x").is_err());
    }
}
