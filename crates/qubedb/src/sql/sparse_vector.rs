//! The `sparsevec` type in SQL (pgvector's): its Arrow form, input and output, casts and functions.
//!
//! A sparse vector computes as an Arrow struct of three fields, `sparsevec_dimensions` (`Int32`),
//! `sparsevec_indices` (`List<Int32>`, 0-based) and `sparsevec_values` (`List<Float32>`): a struct no
//! other SQL value has (a record's fields are named after its columns), so the Arrow type alone marks
//! the value wherever it flows, as `LargeList<Float32>` marks a vector.
//!
//! Text input and output, the errors, the casts and the functions follow pgvector 0.8: `{1:1.5,3:2}/5`
//! (indices from 1, in any order, zeros dropped; printed ascending), at most 1,000,000,000 dimensions
//! and 16,000 non-zero elements. The functions sharing names with `vector`'s (`l2_distance`,
//! `inner_product`, `cosine_distance`, `l1_distance`, `l2_norm`, `l2_normalize`, and the operators
//! that become them) take this path when their first argument is a sparse vector (`sql/vector.rs`);
//! comparisons become `sparsevec_cmp(a, b) <op> 0` (`sql/vector_planner.rs`), pgvector's order.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, Float32Builder, Float64Array, Int32Array, Int32Builder,
    ListArray, ListBuilder, StringArray, StructArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Fields, Float32Type, Int32Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result as DataFusionResult;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::SessionContext;
use qubedb_model::sparse_vector::{SPARSE_DIMENSIONS_MAX, SPARSE_NONZERO_MAX, SparseVector};
use qubedb_model::vector::Metric;

use crate::error::{Error, Result};
use crate::sql::format::format_f32;
use crate::sql::vector::{
    Vectors, check_finite, data_error, float_lists, float_prefix, invoke_arrays, is_infinity_word,
    is_text, is_vector, no_such_function, parse_float, skip_space, syntax_error, type_name,
};

const DIMENSIONS_FIELD: &str = "sparsevec_dimensions";
const INDICES_FIELD: &str = "sparsevec_indices";
const VALUES_FIELD: &str = "sparsevec_values";

/// The type's name in errors.
const NAME: &str = "sparsevec";

fn fields() -> Fields {
    Fields::from(vec![
        Field::new(DIMENSIONS_FIELD, ArrowType::Int32, true),
        Field::new(
            INDICES_FIELD,
            ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Int32, true))),
            true,
        ),
        Field::new(
            VALUES_FIELD,
            ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Float32, true))),
            true,
        ),
    ])
}

/// The Arrow type of sparse vectors.
pub fn arrow_type() -> ArrowType {
    ArrowType::Struct(fields())
}

/// True for the Arrow type of sparse vectors.
pub fn is_sparse(data_type: &ArrowType) -> bool {
    match data_type {
        ArrowType::Struct(fields) => {
            fields.len() == 3
                && fields[0].name() == DIMENSIONS_FIELD
                && fields[1].name() == INDICES_FIELD
                && fields[2].name() == VALUES_FIELD
        }
        _ => false,
    }
}

/// The sparse vectors of an array of [`arrow_type`].
pub struct SparseVectors<'a> {
    array: &'a StructArray,
    dimensions: &'a Int32Array,
    indices: &'a ListArray,
    values: &'a ListArray,
}

impl<'a> SparseVectors<'a> {
    pub fn new(array: &'a dyn Array) -> Result<SparseVectors<'a>> {
        let malformed = || Error::internal(format!("{:?} read as sparsevec", array.data_type()));
        let array = array.as_struct_opt().ok_or_else(malformed)?;
        if !is_sparse(array.data_type()) {
            return Err(malformed());
        }
        Ok(SparseVectors {
            array,
            dimensions: array
                .column(0)
                .as_primitive_opt::<Int32Type>()
                .ok_or_else(malformed)?,
            indices: array.column(1).as_list_opt::<i32>().ok_or_else(malformed)?,
            values: array.column(2).as_list_opt::<i32>().ok_or_else(malformed)?,
        })
    }

    pub fn len(&self) -> usize {
        self.array.len()
    }

    pub fn is_empty(&self) -> bool {
        self.array.is_empty()
    }

    /// Row `row`, `None` for NULL.
    pub fn get(&self, row: usize) -> Option<SparseVector> {
        if self.array.is_null(row) {
            return None;
        }
        let indices = self.indices.value(row);
        let values = self.values.value(row);
        Some(SparseVector {
            dimensions: u32::try_from(self.dimensions.value(row)).unwrap_or(0),
            indices: indices
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .map(|&index| index as u32)
                .collect(),
            values: values.as_primitive::<Float32Type>().values().to_vec(),
        })
    }
}

/// An array of [`arrow_type`] holding `values`.
pub fn build(values: &[Option<SparseVector>]) -> ArrayRef {
    let mut dimensions = Int32Builder::with_capacity(values.len());
    let mut indices = ListBuilder::new(Int32Builder::new());
    let mut elements = ListBuilder::new(Float32Builder::new());
    for value in values {
        let value = value.as_ref();
        dimensions.append_value(value.map_or(0, |value| value.dimensions as i32));
        for &index in value.map_or(&[][..], |value| &value.indices) {
            indices.values().append_value(index as i32);
        }
        indices.append(true);
        elements
            .values()
            .append_slice(value.map_or(&[][..], |value| &value.values));
        elements.append(true);
    }
    let nulls = NullBuffer::from(values.iter().map(Option::is_some).collect::<Vec<bool>>());
    Arc::new(StructArray::new(
        fields(),
        vec![
            Arc::new(dimensions.finish()),
            Arc::new(indices.finish()),
            Arc::new(elements.finish()),
        ],
        Some(nulls),
    ))
}

/// The value of row `row` of `array` (of [`arrow_type`]), for storing.
pub fn value_at(array: &ArrayRef, row: usize) -> Result<SparseVector> {
    SparseVectors::new(array.as_ref())?
        .get(row)
        .ok_or_else(|| Error::internal("NULL sparse vector read as a value"))
}

/// Checks the dimensions of a sparse vector: `expected` when the type fixes them, at least one, at
/// most the limit.
pub fn check_dimensions(dimensions: i64, expected: Option<u32>) -> Result<()> {
    if let Some(expected) = expected
        && dimensions != i64::from(expected)
    {
        return Err(data_error(format!(
            "expected {expected} dimensions, not {dimensions}"
        )));
    }
    if dimensions < 1 {
        return Err(data_error(format!("{NAME} must have at least 1 dimension")));
    }
    if dimensions > i64::from(SPARSE_DIMENSIONS_MAX) {
        return Err(Error::user(
            "54000",
            format!("{NAME} cannot have more than {SPARSE_DIMENSIONS_MAX} dimensions"),
        ));
    }
    Ok(())
}

/// Checks the number of non-zero elements.
fn check_nonzero(count: usize) -> Result<()> {
    if count > SPARSE_NONZERO_MAX {
        return Err(Error::user(
            "54000",
            format!("{NAME} cannot have more than {SPARSE_NONZERO_MAX} non-zero elements"),
        ));
    }
    Ok(())
}

/// The sparse vector of dense `elements`, checked as pgvector's casts check them.
fn from_dense(elements: &[f32], expected: Option<u32>) -> Result<SparseVector> {
    check_dimensions(elements.len() as i64, expected)?;
    for &element in elements {
        check_finite(NAME, element)?;
    }
    let sparse = SparseVector::from_dense(elements);
    check_nonzero(sparse.indices.len())?;
    Ok(sparse)
}

/// Reads a sparse vector's text form (`{1:1.5,3:2}/5`), as pgvector's `sparsevec_in`.
pub fn parse(text: &str) -> Result<SparseVector> {
    let syntax = || syntax_error(NAME, text);
    let located = |mut error: Error| {
        error.set_input(text);
        error
    };
    let bytes = text.as_bytes();
    let mut at = skip_space(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return Err(syntax().with_detail("Vector contents must start with \"{\"."));
    }
    at = skip_space(bytes, at + 1);
    let mut elements: Vec<(i64, f32)> = Vec::new();
    if bytes.get(at) == Some(&b'}') {
        at += 1;
    } else {
        loop {
            at = skip_space(bytes, at);
            let index_length = integer_prefix(&bytes[at..]);
            if index_length == 0 {
                return Err(syntax());
            }
            let index = saturating_integer(&text[at..at + index_length]);
            at = skip_space(bytes, at + index_length);
            if bytes.get(at) != Some(&b':') {
                return Err(syntax());
            }
            at = skip_space(bytes, at + 1);
            let length = float_prefix(&bytes[at..]);
            if length == 0 {
                return Err(syntax());
            }
            let number = &text[at..at + length];
            let value = parse_float(number).ok_or_else(syntax)?;
            let out_of_range = (value.is_infinite() && !is_infinity_word(number))
                || (value == 0.0 && has_nonzero_digit(number))
                || (value != 0.0 && value.is_finite() && value.abs() < f32::MIN_POSITIVE);
            if out_of_range {
                return Err(located(Error::user(
                    "22003",
                    format!("\"{number}\" is out of range for type {NAME}"),
                )));
            }
            check_finite(NAME, value).map_err(located)?;
            elements.push((index, value));
            at = skip_space(bytes, at + length);
            match bytes.get(at) {
                Some(b',') => at += 1,
                Some(b'}') => {
                    at += 1;
                    break;
                }
                _ => return Err(syntax()),
            }
        }
    }
    at = skip_space(bytes, at);
    if at == bytes.len() {
        return Err(syntax().with_detail("Unexpected end of input."));
    }
    if bytes[at] != b'/' {
        return Err(syntax());
    }
    at = skip_space(bytes, at + 1);
    let dimensions_length = integer_prefix(&bytes[at..]);
    if dimensions_length == 0 {
        return Err(syntax());
    }
    let dimensions = saturating_integer(&text[at..at + dimensions_length]);
    at = skip_space(bytes, at + dimensions_length);
    if at != bytes.len() {
        return Err(syntax().with_detail("Junk after closing."));
    }
    check_dimensions(dimensions, None).map_err(located)?;
    check_nonzero(elements.len()).map_err(located)?;
    for &(index, _) in &elements {
        if index < 1 {
            return Err(located(data_error(format!(
                "{NAME} index out of bounds (< 1)"
            ))));
        }
        if index > dimensions {
            return Err(located(data_error(format!(
                "{NAME} index out of bounds (> dimensions)"
            ))));
        }
    }
    elements.sort_by_key(|&(index, _)| index);
    if elements.windows(2).any(|pair| pair[0].0 == pair[1].0) {
        return Err(located(data_error(format!(
            "{NAME} indices must not contain duplicates"
        ))));
    }
    let mut sparse = SparseVector {
        dimensions: dimensions as u32,
        ..SparseVector::default()
    };
    for (index, value) in elements {
        if value != 0.0 {
            sparse.indices.push((index - 1) as u32);
            sparse.values.push(value);
        }
    }
    Ok(sparse)
}

/// The length of the integer `strtol` would read at the start of `bytes` (0 for none).
fn integer_prefix(bytes: &[u8]) -> usize {
    let sign = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let digits = bytes[sign..]
        .iter()
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    if digits == 0 { 0 } else { sign + digits }
}

/// An integer's value, held at `i64`'s bounds when it lies past them (every such value is out of
/// a sparse vector's bounds anyway).
fn saturating_integer(digits: &str) -> i64 {
    digits.parse::<i64>().unwrap_or(if digits.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// True when a number's mantissa has a digit other than zero (so reading it as zero underflowed).
fn has_nonzero_digit(number: &str) -> bool {
    number
        .split(['e', 'E'])
        .next()
        .is_some_and(|mantissa| mantissa.bytes().any(|byte| (b'1'..=b'9').contains(&byte)))
}

/// A sparse vector's text form, as pgvector's `sparsevec_out`: `{1:1.5,3:2}/5`.
pub fn format(sparse: &SparseVector) -> String {
    let mut text = String::with_capacity(sparse.indices.len() * 10 + 8);
    text.push('{');
    for (position, (&index, &value)) in sparse.indices.iter().zip(&sparse.values).enumerate() {
        if position > 0 {
            text.push(',');
        }
        text.push_str(&(u64::from(index) + 1).to_string());
        text.push(':');
        text.push_str(&format_f32(value));
    }
    text.push_str("}/");
    text.push_str(&sparse.dimensions.to_string());
    text
}

/// `array` as sparse vectors of `dimensions` (when the type fixes them): text read, sparse vectors
/// checked, vectors and arrays of numbers converted (pgvector's casts).
pub fn cast_array(array: &ArrayRef, dimensions: Option<u32>) -> Result<ArrayRef> {
    let rows = array.len();
    let mut values: Vec<Option<SparseVector>> = Vec::with_capacity(rows);
    match array.data_type() {
        data_type if is_sparse(data_type) => {
            if dimensions.is_none() {
                return Ok(array.clone());
            }
            let sparse = SparseVectors::new(array.as_ref())?;
            for row in 0..rows {
                let value = sparse.get(row);
                if let Some(value) = &value {
                    check_dimensions(i64::from(value.dimensions), dimensions)?;
                }
                values.push(value);
            }
        }
        data_type if is_vector(data_type) => {
            let vectors = Vectors::new(array.as_ref())?;
            for row in 0..rows {
                values.push(
                    vectors
                        .get(row)
                        .map(|elements| from_dense(elements, dimensions))
                        .transpose()?,
                );
            }
        }
        ArrowType::Null => values.resize(rows, None),
        data_type if is_text(data_type) => {
            let text = cast_with_options(array, &ArrowType::Utf8, &CastOptions::default())?;
            for value in text.as_string::<i32>().iter() {
                values.push(match value {
                    None => None,
                    Some(text) => {
                        let sparse = parse(text)?;
                        check_dimensions(i64::from(sparse.dimensions), dimensions)?;
                        Some(sparse)
                    }
                });
            }
        }
        ArrowType::List(_) | ArrowType::LargeList(_) | ArrowType::FixedSizeList(..) => {
            for elements in float_lists(array, cannot_cast)? {
                values.push(
                    elements
                        .map(|elements| from_dense(&elements, dimensions))
                        .transpose()?,
                );
            }
        }
        other => return Err(cannot_cast(other)),
    }
    Ok(build(&values))
}

fn cannot_cast(from: &ArrowType) -> Error {
    Error::user(
        "42846",
        format!("cannot cast type {} to {NAME}", type_name(from)),
    )
}

/// The dense elements of each sparse vector of `array`, checked against `dimensions` and the
/// dense type's limit by `check` (the cast to `vector` or `halfvec`).
pub fn dense_rows(
    array: &ArrayRef,
    mut check: impl FnMut(usize) -> Result<()>,
) -> Result<Vec<Option<Vec<f32>>>> {
    let sparse = SparseVectors::new(array.as_ref())?;
    (0..sparse.len())
        .map(|row| {
            sparse
                .get(row)
                .map(|value| {
                    check(value.dimensions as usize)?;
                    Ok(value.to_dense())
                })
                .transpose()
        })
        .collect()
}

/// `arrays` as sparse vectors: text (and NULL) arguments read as the functions of sparse vectors
/// take them.
pub(crate) fn as_sparse(arrays: &[ArrayRef]) -> Result<Vec<ArrayRef>> {
    arrays
        .iter()
        .map(|array| {
            if is_sparse(array.data_type()) {
                Ok(array.clone())
            } else {
                cast_array(array, None)
            }
        })
        .collect()
}

/// `different sparsevec dimensions a and b`.
fn different_dimensions(a: u32, b: u32) -> Error {
    data_error(format!("different {NAME} dimensions {a} and {b}"))
}

/// What a two-argument function of sparse vectors computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pairwise {
    Distance(Metric),
    InnerProduct,
    L2Squared,
    Compare,
}

/// `operation` of each pair of rows of `first` and `second` (sparse vectors of equal dimensions).
pub(crate) fn pairwise(
    operation: Pairwise,
    first: &ArrayRef,
    second: &ArrayRef,
    rows: usize,
) -> Result<ArrayRef> {
    let (first, second) = (
        SparseVectors::new(first.as_ref())?,
        SparseVectors::new(second.as_ref())?,
    );
    let mut results = Vec::with_capacity(rows);
    for row in 0..rows {
        let (Some(a), Some(b)) = (first.get(row), second.get(row)) else {
            results.push(None);
            continue;
        };
        if operation == Pairwise::Compare {
            results.push(Some(a.compare(&b) as i64 as f64));
            continue;
        }
        if a.dimensions != b.dimensions {
            return Err(different_dimensions(a.dimensions, b.dimensions));
        }
        results.push(Some(match operation {
            Pairwise::Distance(metric) => a.distance(metric, &b),
            Pairwise::InnerProduct => a.inner_product(&b),
            Pairwise::L2Squared => a.l2_squared(&b),
            Pairwise::Compare => 0.0,
        }));
    }
    if operation == Pairwise::Compare {
        let compared: Int32Array = results
            .into_iter()
            .map(|result| result.map(|order| order as i32))
            .collect();
        return Ok(Arc::new(compared));
    }
    Ok(Arc::new(Float64Array::from(results)))
}

/// `l2_norm` of each row.
pub(crate) fn norms(array: &ArrayRef) -> Result<ArrayRef> {
    let sparse = SparseVectors::new(array.as_ref())?;
    let norms: Float64Array = (0..sparse.len())
        .map(|row| sparse.get(row).map(|value| value.norm()))
        .collect();
    Ok(Arc::new(norms))
}

/// `l2_normalize` of each row: each element divided by the norm (in `f64`), elements that become
/// zero dropped; a zero vector stays as it is.
pub(crate) fn normalized(array: &ArrayRef) -> Result<ArrayRef> {
    let sparse = SparseVectors::new(array.as_ref())?;
    let values: Vec<Option<SparseVector>> = (0..sparse.len())
        .map(|row| {
            sparse.get(row).map(|value| {
                let norm = value.norm();
                if norm <= 0.0 {
                    return value;
                }
                let mut normalized = SparseVector {
                    dimensions: value.dimensions,
                    ..SparseVector::default()
                };
                for (&index, &element) in value.indices.iter().zip(&value.values) {
                    let element = (f64::from(element) / norm) as f32;
                    if element != 0.0 {
                        normalized.indices.push(index);
                        normalized.values.push(element);
                    }
                }
                normalized
            })
        })
        .collect();
    Ok(build(&values))
}

/// The functions of sparse vectors that no `vector` function shares a name with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Operation {
    /// `qubedb_sparsevec(value [, dimensions])`: the cast to sparsevec.
    Input,
    /// `qubedb_sparsevec_text(sparsevec)`: the cast to text.
    Output,
    /// `sparsevec_cmp(a, b)`: -1, 0 or 1.
    Compare,
    /// `qubedb_sparsevec_key(sparsevec)`: bytes that sort in pgvector's order (what `ORDER BY`
    /// of a sparse vector sorts by, [`SparseOrder`]).
    SortKey,
}

const FUNCTIONS: &[(&str, Operation)] = &[
    ("qubedb_sparsevec", Operation::Input),
    ("qubedb_sparsevec_text", Operation::Output),
    ("sparsevec_cmp", Operation::Compare),
    ("qubedb_sparsevec_key", Operation::SortKey),
];

/// Registers the functions.
pub(crate) fn register(context: &SessionContext) {
    for (name, _) in FUNCTIONS {
        context.register_udf(udf(name).as_ref().clone());
    }
}

/// The function `name` (one of [`FUNCTIONS`]).
pub(crate) fn udf(name: &'static str) -> Arc<ScalarUDF> {
    let operation = FUNCTIONS
        .iter()
        .find(|(known, _)| *known == name)
        .map_or(Operation::Input, |(_, operation)| *operation);
    Arc::new(ScalarUDF::new_from_impl(SparseFunction {
        name,
        operation,
        signature: Signature::user_defined(Volatility::Immutable),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SparseFunction {
    name: &'static str,
    operation: Operation,
    signature: Signature,
}

impl SparseFunction {
    fn no_such_function(&self, arguments: &[ArrowType]) -> datafusion::error::DataFusionError {
        no_such_function(self.name, arguments)
    }
}

impl ScalarUDFImpl for SparseFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arguments: &[ArrowType]) -> DataFusionResult<Vec<ArrowType>> {
        let sparse_or_text =
            |argument: &ArrowType| is_sparse(argument) || is_text(argument) || argument.is_null();
        match (self.operation, arguments) {
            (Operation::Input, [value]) => Ok(vec![value.clone()]),
            (Operation::Input, [value, _]) => Ok(vec![value.clone(), ArrowType::Int64]),
            (Operation::Output | Operation::SortKey, [argument]) if sparse_or_text(argument) => {
                Ok(vec![argument.clone()])
            }
            (Operation::Compare, [a, b]) if sparse_or_text(a) && sparse_or_text(b) => {
                Ok(vec![a.clone(), b.clone()])
            }
            _ => Err(self.no_such_function(arguments)),
        }
    }

    fn return_type(&self, _arguments: &[ArrowType]) -> DataFusionResult<ArrowType> {
        Ok(match self.operation {
            Operation::Input => arrow_type(),
            Operation::Output => ArrowType::Utf8,
            Operation::Compare => ArrowType::Int32,
            Operation::SortKey => ArrowType::Binary,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DataFusionResult<ColumnarValue> {
        invoke_arrays(args, |arrays, rows| self.compute(arrays, rows))
    }
}

impl SparseFunction {
    fn compute(&self, arrays: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
        let arrays = match self.operation {
            Operation::Input => arrays.to_vec(),
            Operation::Output | Operation::Compare | Operation::SortKey => as_sparse(arrays)?,
        };
        match self.operation {
            Operation::Input => {
                let dimensions = match arrays.get(1) {
                    Some(array) => {
                        let integers = array
                            .as_primitive_opt::<datafusion::arrow::datatypes::Int64Type>()
                            .ok_or_else(|| Error::internal("sparsevec dimensions not integer"))?;
                        if integers.is_null(0) {
                            None
                        } else {
                            Some(check_type_modifier(integers.value(0))?)
                        }
                    }
                    None => None,
                };
                cast_array(&arrays[0], dimensions)
            }
            Operation::Output => {
                let sparse = SparseVectors::new(arrays[0].as_ref())?;
                let strings: StringArray = (0..rows)
                    .map(|row| sparse.get(row).as_ref().map(format))
                    .collect();
                Ok(Arc::new(strings))
            }
            Operation::Compare => pairwise(Pairwise::Compare, &arrays[0], &arrays[1], rows),
            Operation::SortKey => {
                let sparse = SparseVectors::new(arrays[0].as_ref())?;
                let keys: BinaryArray = (0..rows)
                    .map(|row| {
                        sparse.get(row).map(|value| {
                            let mut key = Vec::new();
                            value.encode_key(&mut key);
                            key
                        })
                    })
                    .collect();
                Ok(Arc::new(keys))
            }
        }
    }
}

/// The analyzer rule that sorts sparse vectors in pgvector's order: an `ORDER BY` key that is a
/// sparse vector becomes its sort key (`qubedb_sparsevec_key`), since Arrow would order the struct
/// field by field (dimensions first). It also refuses `min` and `max` of sparse vectors, which
/// pgvector does not define (DataFusion's would compare the struct). Runs after type coercion.
#[derive(Debug, Default)]
pub(crate) struct SparseOrder;

impl AnalyzerRule for SparseOrder {
    fn name(&self) -> &str {
        "qubedb_sparsevec_order"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DataFusionResult<LogicalPlan> {
        let rewritten = plan.transform_up_with_subqueries(|node| {
            if let LogicalPlan::Aggregate(aggregate) = &node {
                refuse_extremes(aggregate)?;
            }
            let LogicalPlan::Sort(mut sort) = node else {
                return Ok(Transformed::no(node));
            };
            let schema = sort.input.schema().clone();
            let mut changed = false;
            for key in &mut sort.expr {
                if key
                    .expr
                    .get_type(&schema)
                    .is_ok_and(|data_type| is_sparse(&data_type))
                {
                    key.expr = Expr::ScalarFunction(ScalarFunction::new_udf(
                        udf("qubedb_sparsevec_key"),
                        vec![key.expr.clone()],
                    ));
                    changed = true;
                }
            }
            let node = LogicalPlan::Sort(sort);
            Ok(if changed {
                Transformed::yes(node)
            } else {
                Transformed::no(node)
            })
        })?;
        Ok(rewritten.data)
    }
}

/// An error for `min` or `max` of a sparse vector in `aggregate`.
fn refuse_extremes(aggregate: &datafusion::logical_expr::Aggregate) -> DataFusionResult<()> {
    let schema = aggregate.input.schema();
    for expr in &aggregate.aggr_expr {
        let mut refused = None;
        expr.apply(|inner| {
            if let Expr::AggregateFunction(function) = inner
                && matches!(function.func.name(), "min" | "max")
                && function.params.args.iter().any(|argument| {
                    argument
                        .get_type(schema)
                        .is_ok_and(|data_type| is_sparse(&data_type))
                })
            {
                refused = Some(function.func.name().to_string());
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if let Some(name) = refused {
            return Err(no_such_function(&name, &[arrow_type()]));
        }
    }
    Ok(())
}

/// Checks the dimension count a type modifier gives (`sparsevec(n)`).
pub fn check_type_modifier(dimensions: i64) -> Result<u32> {
    if dimensions < 1 {
        return Err(Error::user(
            "22023",
            format!("dimensions for type {NAME} must be at least 1"),
        ));
    }
    if dimensions > i64::from(SPARSE_DIMENSIONS_MAX) {
        return Err(Error::user(
            "22023",
            format!("dimensions for type {NAME} cannot exceed {SPARSE_DIMENSIONS_MAX}"),
        ));
    }
    Ok(dimensions as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reads_as_pgvector() {
        let sparse = parse(" { 3 : 3.5 , 1 : 1.5, 2: 0 } / 5 ").expect("parses");
        assert_eq!(sparse.indices, vec![0, 2]);
        assert_eq!(format(&sparse), "{1:1.5,3:3.5}/5");
        assert_eq!(format(&parse("{}/1").expect("parses")), "{}/1");
        for (text, message) in [
            ("", "invalid input syntax for type sparsevec: \"\""),
            ("{}", "invalid input syntax for type sparsevec: \"{}\""),
            (
                "{1:}/1",
                "invalid input syntax for type sparsevec: \"{1:}/1\"",
            ),
            (
                "{}/1a",
                "invalid input syntax for type sparsevec: \"{}/1a\"",
            ),
            ("{0:1}/1", "sparsevec index out of bounds (< 1)"),
            ("{2:1}/1", "sparsevec index out of bounds (> dimensions)"),
            (
                "{1:1,1:2}/2",
                "sparsevec indices must not contain duplicates",
            ),
            ("{}/0", "sparsevec must have at least 1 dimension"),
            (
                "{}/9223372036854775808",
                "sparsevec cannot have more than 1000000000 dimensions",
            ),
            ("{1:NaN}/1", "NaN not allowed in sparsevec"),
            ("{1:-inf}/1", "infinite value not allowed in sparsevec"),
            ("{1:4e38}/1", "\"4e38\" is out of range for type sparsevec"),
            (
                "{1:1e-46}/1",
                "\"1e-46\" is out of range for type sparsevec",
            ),
        ] {
            let error = parse(text).expect_err(text);
            assert_eq!(error.message, message, "{text}");
        }
    }

    #[test]
    fn arrays_round_trip() {
        let values = vec![
            Some(parse("{1:1,3:-2}/4").expect("parses")),
            None,
            Some(parse("{}/2").expect("parses")),
        ];
        let array = build(&values);
        assert!(is_sparse(array.data_type()));
        let read = SparseVectors::new(array.as_ref()).expect("sparse");
        assert_eq!((0..3).map(|row| read.get(row)).collect::<Vec<_>>(), values);
    }
}
