//! The `vector` type in SQL (pgvector's): input and output, casts, functions and operators.
//!
//! A vector computes as an Arrow `LargeList<Float32>`, which no other SQL type uses (arrays are
//! `List`), so the Arrow type alone marks a value as a vector wherever it flows, as `LargeBinary`
//! marks jsonb. The elements of a whole column lie in one contiguous `f32` buffer, which the distance
//! kernels (`qubedb_model::vector`) read in place.
//!
//! Text input and output, the errors and the arithmetic follow pgvector 0.8: `[1,2,3]`, elements as
//! `real` prints them, NaN and infinities refused, 1 to 16,000 dimensions; `vector(n)` fixes the
//! dimension. The operators `<->`, `<#>`, `<=>`, `<+>`, `+`, `-`, `*` and `||` become calls of the
//! functions here in `sql/vector_planner.rs`; casts (`::vector`, `::vector(n)`, `::vector[]`) in
//! `sql/rewrite.rs`; `avg` and `sum` of vectors in `sql/vector_aggregate.rs`.
//!
//! `halfvec` shares all of it: it computes as `LargeList<Float16>` ([`kind_of`] tells the kinds
//! apart), its elements are read as `f32` ([`Vectors`] converts once per array) and every result of
//! the halfvec kind is rounded back to half precision, with pgvector's range errors (`parse_of`,
//! `computed_element`). The functions take the kind of their first vector argument.

use std::sync::Arc;

use datafusion::arrow::array::Float16Array;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Float64Array, Int32Array, LargeListArray, ListArray,
    StringArray,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field};
use datafusion::arrow::datatypes::{Float16Type, Float32Type};
use datafusion::error::Result as DataFusionResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use half::f16;
use qubedb_model::vector::{self as kernels, Metric, VECTOR_DIMENSIONS_MAX, VectorKind};

use crate::error::{Error, Result, to_datafusion};
use crate::sql::format::format_f32;
use crate::sql::sparse_vector::{self, Pairwise, is_sparse};

/// The Arrow type of vectors.
pub fn arrow_type() -> ArrowType {
    arrow_type_of(VectorKind::Single)
}

/// The Arrow type of vectors of `kind`: `vector` a `LargeList<Float32>`, `halfvec` a
/// `LargeList<Float16>`.
pub fn arrow_type_of(kind: VectorKind) -> ArrowType {
    ArrowType::LargeList(Arc::new(Field::new_list_field(element_type(kind), true)))
}

fn element_type(kind: VectorKind) -> ArrowType {
    match kind {
        VectorKind::Single => ArrowType::Float32,
        VectorKind::Half => ArrowType::Float16,
    }
}

/// The kind of vector an Arrow type holds, `None` for other types.
pub fn kind_of(data_type: &ArrowType) -> Option<VectorKind> {
    match data_type {
        ArrowType::LargeList(field) => match field.data_type() {
            ArrowType::Float32 => Some(VectorKind::Single),
            ArrowType::Float16 => Some(VectorKind::Half),
            _ => None,
        },
        _ => None,
    }
}

/// True for the Arrow type of vectors of either kind (`vector`, `halfvec`).
pub fn is_vector(data_type: &ArrowType) -> bool {
    kind_of(data_type).is_some()
}

/// True for the Arrow types of pgvector's types (`vector`, `halfvec`, `sparsevec`): values that are
/// no array or record in PostgreSQL (JSON gets their text).
pub fn is_pgvector_type(data_type: &ArrowType) -> bool {
    is_vector(data_type) || is_sparse(data_type)
}

/// The vectors of an array: `vector`s read in place, `halfvec`s converted to `f32` once.
pub struct Vectors<'a> {
    offsets: &'a [i64],
    values: std::borrow::Cow<'a, [f32]>,
    nulls: Option<&'a NullBuffer>,
    pub kind: VectorKind,
}

impl<'a> Vectors<'a> {
    /// The vectors of `array`, which must be of [`arrow_type_of`] a kind.
    pub fn new(array: &'a dyn Array) -> Result<Vectors<'a>> {
        let list = array
            .as_any()
            .downcast_ref::<LargeListArray>()
            .ok_or_else(|| Error::internal(format!("{:?} read as vector", array.data_type())))?;
        let (values, kind) = if let Some(values) = list.values().as_primitive_opt::<Float32Type>() {
            (
                std::borrow::Cow::Borrowed(values.values().as_ref()),
                VectorKind::Single,
            )
        } else if let Some(values) = list.values().as_primitive_opt::<Float16Type>() {
            (
                std::borrow::Cow::Owned(values.values().iter().map(|half| half.to_f32()).collect()),
                VectorKind::Half,
            )
        } else {
            return Err(Error::internal("vector elements are not real"));
        };
        Ok(Vectors {
            offsets: list.value_offsets(),
            values,
            nulls: list.nulls(),
            kind,
        })
    }

    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `row`'s elements, `None` for NULL.
    pub fn get(&self, row: usize) -> Option<&[f32]> {
        if self.nulls.is_some_and(|nulls| nulls.is_null(row)) {
            return None;
        }
        let start = usize::try_from(self.offsets[row]).ok()?;
        let end = usize::try_from(self.offsets[row + 1]).ok()?;
        self.values.get(start..end)
    }
}

/// Builds an array of vectors (of `kind`: a halfvec's elements are appended as `f32`s a half holds).
#[derive(Default)]
pub struct VectorBuilder {
    offsets: Vec<i64>,
    values: Vec<f32>,
    valid: Vec<bool>,
    kind: VectorKind,
}

impl VectorBuilder {
    pub fn with_capacity(rows: usize, values: usize) -> VectorBuilder {
        VectorBuilder::of_kind(VectorKind::Single, rows, values)
    }

    pub fn of_kind(kind: VectorKind, rows: usize, values: usize) -> VectorBuilder {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        VectorBuilder {
            offsets,
            values: Vec::with_capacity(values),
            valid: Vec::with_capacity(rows),
            kind,
        }
    }

    /// The kind of vectors built.
    pub fn kind(&self) -> VectorKind {
        self.kind
    }

    pub fn append(&mut self, elements: &[f32]) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.values.extend_from_slice(elements);
        self.offsets.push(self.values.len() as i64);
        self.valid.push(true);
    }

    pub fn append_option(&mut self, elements: Option<&[f32]>) {
        match elements {
            Some(elements) => self.append(elements),
            None => self.append_null(),
        }
    }

    pub fn append_null(&mut self) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.offsets.push(self.values.len() as i64);
        self.valid.push(false);
    }

    /// The array of the vectors appended; the builder starts over empty (of the same kind).
    pub fn finish(&mut self) -> LargeListArray {
        let kind = self.kind;
        let mut taken = std::mem::replace(self, VectorBuilder::of_kind(kind, 0, 0));
        if taken.offsets.is_empty() {
            taken.offsets.push(0);
        }
        let nulls = if taken.valid.iter().all(|&valid| valid) {
            None
        } else {
            Some(NullBuffer::from(taken.valid))
        };
        let values: ArrayRef = match kind {
            VectorKind::Single => Arc::new(Float32Array::from(taken.values)),
            VectorKind::Half => Arc::new(Float16Array::from_iter_values(
                taken.values.into_iter().map(f16::from_f32),
            )),
        };
        LargeListArray::new(
            Arc::new(Field::new_list_field(element_type(kind), true)),
            OffsetBuffer::new(taken.offsets.into()),
            values,
            nulls,
        )
    }
}

/// Errors of vector values, as pgvector words them.
pub(crate) fn data_error(message: impl Into<String>) -> Error {
    Error::user("22000", message)
}

/// `different vector dimensions a and b`.
pub fn different_dimensions(a: usize, b: usize) -> Error {
    different_dimensions_of(VectorKind::Single, a, b)
}

/// `different halfvec dimensions a and b` and the like.
pub fn different_dimensions_of(kind: VectorKind, a: usize, b: usize) -> Error {
    data_error(format!(
        "different {} dimensions {a} and {b}",
        kind.type_name()
    ))
}

/// Checks a vector's dimension count: at least one, at most the limit, and `expected` when the type
/// fixes it.
pub fn check_dimensions(dimensions: usize, expected: Option<u32>) -> Result<()> {
    check_dimensions_of(VectorKind::Single, dimensions, expected)
}

/// [`check_dimensions`] for a vector of `kind`, its errors naming the type.
pub fn check_dimensions_of(
    kind: VectorKind,
    dimensions: usize,
    expected: Option<u32>,
) -> Result<()> {
    if let Some(expected) = expected
        && dimensions != expected as usize
    {
        return Err(data_error(format!(
            "expected {expected} dimensions, not {dimensions}"
        )));
    }
    let name = kind.type_name();
    if dimensions < 1 {
        return Err(data_error(format!("{name} must have at least 1 dimension")));
    }
    if dimensions > VECTOR_DIMENSIONS_MAX {
        return Err(Error::user(
            "54000",
            format!("{name} cannot have more than {VECTOR_DIMENSIONS_MAX} dimensions"),
        ));
    }
    Ok(())
}

/// Checks one element: finite.
fn check_element(kind: VectorKind, value: f32) -> Result<()> {
    check_finite(kind.type_name(), value)
}

/// Checks one element of a value of the pgvector type `name`: finite.
pub(crate) fn check_finite(name: &str, value: f32) -> Result<()> {
    if value.is_nan() {
        return Err(data_error(format!("NaN not allowed in {name}")));
    }
    if value.is_infinite() {
        return Err(data_error(format!("infinite value not allowed in {name}")));
    }
    Ok(())
}

/// `invalid input syntax for type <name>: "<text>"` (22P02), placed at the literal.
pub(crate) fn syntax_error(name: &str, text: &str) -> Error {
    let mut error = Error::user(
        "22P02",
        format!("invalid input syntax for type {name}: \"{text}\""),
    );
    error.set_input(text);
    error
}

/// A finite `value` as an element of a vector of `kind`: checked, and for halfvec rounded to half
/// precision, past whose range it is out of range (`written` is the value as the input spelled it).
fn element(kind: VectorKind, value: f32, written: impl FnOnce() -> String) -> Result<f32> {
    check_element(kind, value)?;
    if kind == VectorKind::Single {
        return Ok(value);
    }
    let half = qubedb_model::vector::round_to_half(value);
    if half.is_infinite() {
        return Err(Error::user(
            "22003",
            format!("\"{}\" is out of range for type halfvec", written()),
        ));
    }
    Ok(half)
}

/// `elements` as a vector of `kind` and `dimensions` (any when `None`): each checked (and rounded for
/// halfvec) as the cast checks it, with the cast's errors. Parameters bound without SQL use it.
pub fn checked_elements(
    kind: VectorKind,
    elements: &[f32],
    dimensions: Option<u32>,
) -> Result<Vec<f32>> {
    check_dimensions_of(kind, elements.len(), dimensions)?;
    elements
        .iter()
        .map(|&x| element(kind, x, || format_f32(x)))
        .collect()
}

/// A computed element of a halfvec (`value` finite or not): rounded, or an overflow error.
pub(crate) fn computed_element(kind: VectorKind, value: f32) -> Result<f32> {
    let value = match kind {
        VectorKind::Single => value,
        VectorKind::Half => qubedb_model::vector::round_to_half(value),
    };
    if value.is_infinite() {
        return Err(Error::user("22003", "value out of range: overflow"));
    }
    Ok(value)
}

/// Checks the dimension count a type modifier gives (`vector(n)`).
pub fn check_type_modifier(dimensions: i64) -> Result<u32> {
    check_type_modifier_of(VectorKind::Single, dimensions)
}

/// [`check_type_modifier`] for `halfvec(n)` and the like.
pub fn check_type_modifier_of(kind: VectorKind, dimensions: i64) -> Result<u32> {
    let name = kind.type_name();
    if dimensions < 1 {
        return Err(Error::user(
            "22023",
            format!("dimensions for type {name} must be at least 1"),
        ));
    }
    if dimensions > VECTOR_DIMENSIONS_MAX as i64 {
        return Err(Error::user(
            "22023",
            format!("dimensions for type {name} cannot exceed {VECTOR_DIMENSIONS_MAX}"),
        ));
    }
    Ok(dimensions as u32)
}

/// Reads a vector's text form (`[1,2,3]`), as pgvector's `vector_in`.
pub fn parse(text: &str) -> Result<Vec<f32>> {
    parse_of(VectorKind::Single, text)
}

/// Reads the text form of a vector of `kind` (`halfvec_in` rounds each element to half precision).
pub fn parse_of(kind: VectorKind, text: &str) -> Result<Vec<f32>> {
    let name = kind.type_name();
    let syntax = || syntax_error(name, text);
    let located = |mut error: Error| {
        error.set_input(text);
        error
    };
    let bytes = text.as_bytes();
    let mut at = skip_space(bytes, 0);
    if bytes.get(at) != Some(&b'[') {
        return Err(syntax().with_detail("Vector contents must start with \"[\"."));
    }
    at = skip_space(bytes, at + 1);
    let mut elements = Vec::new();
    if bytes.get(at) == Some(&b']') {
        at += 1;
    } else {
        loop {
            if elements.len() == VECTOR_DIMENSIONS_MAX {
                return Err(located(Error::user(
                    "54000",
                    format!("{name} cannot have more than {VECTOR_DIMENSIONS_MAX} dimensions"),
                )));
            }
            at = skip_space(bytes, at);
            let length = float_prefix(&bytes[at..]);
            if length == 0 {
                return Err(syntax());
            }
            let number = &text[at..at + length];
            let value = parse_float(number).ok_or_else(syntax)?;
            if value.is_infinite() && !is_infinity_word(number) {
                return Err(located(Error::user(
                    "22003",
                    format!("\"{number}\" is out of range for type {name}"),
                )));
            }
            elements.push(element(kind, value, || number.to_string()).map_err(located)?);
            at = skip_space(bytes, at + length);
            match bytes.get(at) {
                Some(b',') => at += 1,
                Some(b']') => {
                    at += 1;
                    break;
                }
                _ => return Err(syntax()),
            }
        }
    }
    at = skip_space(bytes, at);
    if at != bytes.len() {
        return Err(syntax().with_detail("Junk after closing right brace."));
    }
    check_dimensions_of(kind, elements.len(), None).map_err(located)?;
    Ok(elements)
}

pub(crate) fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|byte| byte.is_ascii_whitespace()) {
        at += 1;
    }
    at
}

/// The length of the number `strtof` would read at the start of `bytes` (0 for none).
pub(crate) fn float_prefix(bytes: &[u8]) -> usize {
    let mut at = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        at += 1;
    }
    let rest = &bytes[at..];
    for word in ["infinity", "inf", "nan"] {
        if rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word.as_bytes()) {
            return at + word.len();
        }
    }
    let digits_from = |mut at: usize| {
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        at
    };
    let integer_end = digits_from(at);
    let mut end = integer_end;
    let mut digits = integer_end > at;
    if bytes.get(end) == Some(&b'.') {
        let fraction_end = digits_from(end + 1);
        digits |= fraction_end > end + 1;
        end = fraction_end;
    }
    if !digits {
        return 0;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut exponent = end + 1;
        if matches!(bytes.get(exponent), Some(b'+' | b'-')) {
            exponent += 1;
        }
        let exponent_end = digits_from(exponent);
        if exponent_end > exponent {
            end = exponent_end;
        }
    }
    end
}

pub(crate) fn is_infinity_word(number: &str) -> bool {
    let word = number.trim_start_matches(['+', '-']);
    word.eq_ignore_ascii_case("inf") || word.eq_ignore_ascii_case("infinity")
}

pub(crate) fn parse_float(number: &str) -> Option<f32> {
    let unsigned = number.trim_start_matches(['+', '-']);
    let negative = number.starts_with('-');
    let value = if unsigned.eq_ignore_ascii_case("nan") {
        f32::NAN
    } else if is_infinity_word(number) {
        f32::INFINITY
    } else {
        // Rust wants a digit before an exponent's `e` only; `1.` and `.5` read as strtof reads them.
        unsigned.parse::<f32>().ok()?
    };
    Some(if negative { -value } else { value })
}

/// A vector's text form, as pgvector's `vector_out`: `[1,2.5,3e+38]`.
pub fn format(elements: &[f32]) -> String {
    let mut text = String::with_capacity(elements.len() * 8 + 2);
    text.push('[');
    for (position, element) in elements.iter().enumerate() {
        if position > 0 {
            text.push(',');
        }
        text.push_str(&format_f32(*element));
    }
    text.push(']');
    text
}

/// `array` as vectors of `dimensions` (when the type fixes them): text read as vectors, vectors
/// checked, arrays of numbers converted (pgvector's array casts).
pub fn cast_array(array: &ArrayRef, dimensions: Option<u32>) -> Result<ArrayRef> {
    cast_array_of(VectorKind::Single, array, dimensions)
}

/// [`cast_array`] to vectors of `kind`: the casts between `vector` and `halfvec` too.
pub fn cast_array_of(
    kind: VectorKind,
    array: &ArrayRef,
    dimensions: Option<u32>,
) -> Result<ArrayRef> {
    let rows = array.len();
    let mut builder = VectorBuilder::of_kind(kind, rows, rows * dimensions.unwrap_or(4) as usize);
    let converted = |elements: &[f32]| -> Result<Vec<f32>> {
        elements
            .iter()
            .map(|&x| element(kind, x, || format_f32(x)))
            .collect()
    };
    match array.data_type() {
        data_type if kind_of(data_type) == Some(kind) => {
            if dimensions.is_none() {
                return Ok(array.clone());
            }
            let vectors = Vectors::new(array.as_ref())?;
            for row in 0..rows {
                if let Some(elements) = vectors.get(row) {
                    check_dimensions_of(kind, elements.len(), dimensions)?;
                }
                builder.append_option(vectors.get(row));
            }
        }
        data_type if is_vector(data_type) => {
            let vectors = Vectors::new(array.as_ref())?;
            for row in 0..rows {
                match vectors.get(row) {
                    None => builder.append_null(),
                    Some(elements) => {
                        check_dimensions_of(kind, elements.len(), dimensions)?;
                        builder.append(&converted(elements)?);
                    }
                }
            }
        }
        data_type if is_sparse(data_type) => {
            let rows = sparse_vector::dense_rows(array, |count| {
                check_dimensions_of(kind, count, dimensions)
            })?;
            for elements in rows {
                match elements {
                    None => builder.append_null(),
                    Some(elements) => builder.append(&converted(&elements)?),
                }
            }
        }
        ArrowType::Null => {
            for _ in 0..rows {
                builder.append_null();
            }
        }
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => {
            let text = cast_with_options(array, &ArrowType::Utf8, &CastOptions::default())?;
            let strings = text.as_string::<i32>();
            for value in strings.iter() {
                match value {
                    None => builder.append_null(),
                    Some(text) => {
                        let elements = parse_of(kind, text)?;
                        check_dimensions_of(kind, elements.len(), dimensions)?;
                        builder.append(&elements);
                    }
                }
            }
        }
        ArrowType::List(_) | ArrowType::LargeList(_) | ArrowType::FixedSizeList(..) => {
            for elements in float_lists(array, |other| cannot_cast(kind, other))? {
                match elements {
                    None => builder.append_null(),
                    Some(elements) => {
                        let elements = converted(&elements)?;
                        check_dimensions_of(kind, elements.len(), dimensions)?;
                        builder.append(&elements);
                    }
                }
            }
        }
        other => return Err(cannot_cast(kind, other)),
    }
    Ok(Arc::new(builder.finish()))
}

/// The rows of `array`, a list of numbers, as `f32` elements (pgvector's casts from `real[]`,
/// `double precision[]`, `numeric[]` and `integer[]`): an array of arrays is not 1-D, a NULL element
/// is refused, and other element types get `cannot_cast`'s error.
pub(crate) fn float_lists(
    array: &ArrayRef,
    cannot_cast: impl Fn(&ArrowType) -> Error,
) -> Result<Vec<Option<Vec<f32>>>> {
    let list = cast_with_options(
        array,
        &ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Float64, true))),
        &CastOptions::default(),
    )
    .map_err(|_| match array.data_type() {
        ArrowType::List(field) | ArrowType::LargeList(field)
            if matches!(
                field.data_type(),
                ArrowType::List(_) | ArrowType::LargeList(_)
            ) =>
        {
            data_error("array must be 1-D")
        }
        other => cannot_cast(other),
    })?;
    let list = list.as_list::<i32>();
    (0..list.len())
        .map(|row| {
            if list.is_null(row) {
                return Ok(None);
            }
            let values = list.value(row);
            let values = values.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
            if values.null_count() > 0 {
                return Err(Error::user("22004", "array must not contain nulls"));
            }
            Ok(Some(values.values().iter().map(|&x| x as f32).collect()))
        })
        .collect()
}

/// Calls `compute` with a function call's arguments as arrays of the call's rows (one row when every
/// argument is a constant, and then a constant result).
pub(crate) fn invoke_arrays(
    args: ScalarFunctionArgs,
    compute: impl FnOnce(&[ArrayRef], usize) -> Result<ArrayRef>,
) -> DataFusionResult<ColumnarValue> {
    let all_scalar = args
        .args
        .iter()
        .all(|argument| matches!(argument, ColumnarValue::Scalar(_)));
    let rows = if all_scalar { 1 } else { args.number_rows };
    let arrays: Vec<ArrayRef> = args
        .args
        .iter()
        .map(|argument| argument.to_array(rows))
        .collect::<DataFusionResult<_>>()?;
    let result = compute(&arrays, rows).map_err(to_datafusion)?;
    if all_scalar {
        Ok(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::try_from_array(&result, 0)?,
        ))
    } else {
        Ok(ColumnarValue::Array(result))
    }
}

/// PostgreSQL's error for a function called with argument types it does not take.
pub(crate) fn no_such_function(
    name: &str,
    arguments: &[ArrowType],
) -> datafusion::error::DataFusionError {
    let names: Vec<String> = arguments.iter().map(type_name).collect();
    to_datafusion(
        Error::user(
            "42883",
            format!("function {name}({}) does not exist", names.join(", ")),
        )
        .with_hint(
            "No function matches the given name and argument types. You might need to add explicit type casts.",
        ),
    )
}

fn cannot_cast(kind: VectorKind, from: &ArrowType) -> Error {
    Error::user(
        "42846",
        format!(
            "cannot cast type {} to {}",
            type_name(from),
            kind.type_name()
        ),
    )
}

/// What a vector function computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Operation {
    /// `qubedb_vector(value [, dimensions])`: the cast to vector (`qubedb_halfvec`: to halfvec).
    Input(VectorKind),
    /// `qubedb_vector_array(text [, dimensions])`: `'{"[1,2]"}'::vector[]`.
    InputArray(VectorKind),
    /// `qubedb_vector_text(vector)`: the cast to text.
    Output,
    Dimensions,
    Norm,
    Distance(Metric),
    /// `inner_product`: the inner product itself (`<#>` negates it).
    InnerProduct,
    L2Squared,
    Normalize,
    Subvector,
    Add,
    Subtract,
    Multiply,
    Concat,
    Compare,
    /// `vector_accum(state, vector)`: pgvector's aggregate transition (state: count, then sums).
    Accumulate,
    /// `vector_combine(state, state)`.
    Combine,
    /// `vector_avg(state)`: the average a state holds.
    Average,
}

/// pgvector's functions behind its casts: `(value, type modifier or -1, explicit)`.
const CAST_FUNCTIONS: &[&str] = &[
    "array_to_vector",
    "halfvec_to_vector",
    "array_to_halfvec",
    "vector_to_halfvec",
];

/// The functions, by name. A function whose name starts with `halfvec` reads text arguments as
/// halfvecs; the others as vectors, unless another argument is a halfvec.
const FUNCTIONS: &[(&str, Operation)] = &[
    ("qubedb_vector", Operation::Input(VectorKind::Single)),
    (
        "qubedb_vector_array",
        Operation::InputArray(VectorKind::Single),
    ),
    ("qubedb_halfvec", Operation::Input(VectorKind::Half)),
    (
        "qubedb_halfvec_array",
        Operation::InputArray(VectorKind::Half),
    ),
    ("qubedb_vector_text", Operation::Output),
    ("array_to_vector", Operation::Input(VectorKind::Single)),
    ("halfvec_to_vector", Operation::Input(VectorKind::Single)),
    ("array_to_halfvec", Operation::Input(VectorKind::Half)),
    ("vector_to_halfvec", Operation::Input(VectorKind::Half)),
    ("vector_dims", Operation::Dimensions),
    ("vector_norm", Operation::Norm),
    ("l2_norm", Operation::Norm),
    ("l2_distance", Operation::Distance(Metric::L2)),
    (
        "vector_negative_inner_product",
        Operation::Distance(Metric::InnerProduct),
    ),
    ("cosine_distance", Operation::Distance(Metric::Cosine)),
    ("l1_distance", Operation::Distance(Metric::L1)),
    ("inner_product", Operation::InnerProduct),
    ("vector_l2_squared_distance", Operation::L2Squared),
    ("l2_normalize", Operation::Normalize),
    ("subvector", Operation::Subvector),
    ("vector_add", Operation::Add),
    ("vector_sub", Operation::Subtract),
    ("vector_mul", Operation::Multiply),
    ("vector_concat", Operation::Concat),
    ("vector_cmp", Operation::Compare),
    ("vector_accum", Operation::Accumulate),
    ("vector_combine", Operation::Combine),
    ("vector_avg", Operation::Average),
    ("halfvec_cmp", Operation::Compare),
    ("halfvec_accum", Operation::Accumulate),
    ("halfvec_combine", Operation::Combine),
    ("halfvec_avg", Operation::Average),
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
        .map_or(Operation::Input(VectorKind::Single), |(_, operation)| {
            *operation
        });
    let kind = if name.starts_with("halfvec") {
        VectorKind::Half
    } else {
        VectorKind::Single
    };
    Arc::new(ScalarUDF::new_from_impl(VectorFunction {
        name,
        operation,
        kind,
        signature: Signature::user_defined(Volatility::Immutable),
    }))
}

/// The distance function of a metric (what its operator becomes).
pub(crate) fn distance_function(metric: Metric) -> &'static str {
    match metric {
        Metric::L2 => "l2_distance",
        Metric::InnerProduct => "vector_negative_inner_product",
        Metric::Cosine => "cosine_distance",
        Metric::L1 => "l1_distance",
    }
}

/// The metric a distance function measures, for the planner's index rule.
pub(crate) fn metric_of_function(name: &str) -> Option<Metric> {
    FUNCTIONS
        .iter()
        .find_map(|(known, operation)| match operation {
            Operation::Distance(metric) if *known == name => Some(*metric),
            _ => None,
        })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct VectorFunction {
    name: &'static str,
    operation: Operation,
    /// The kind text arguments are read as when no argument is a vector.
    kind: VectorKind,
    signature: Signature,
}

pub(crate) fn type_name(data_type: &ArrowType) -> String {
    if let Some(kind) = kind_of(data_type) {
        return kind.type_name().into();
    }
    if is_sparse(data_type) {
        return "sparsevec".into();
    }
    crate::sql::convert::sql_type_of_arrow(data_type)
        .map_or_else(|| data_type.to_string(), |sql| sql.sql_name())
}

pub(crate) fn is_text(data_type: &ArrowType) -> bool {
    matches!(
        data_type,
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View
    )
}

impl VectorFunction {
    fn no_such_function(&self, arguments: &[ArrowType]) -> datafusion::error::DataFusionError {
        no_such_function(self.name, arguments)
    }

    /// The kind of vector the function computes with: the first vector argument's, else its own.
    fn argument_kind(&self, arguments: &[ArrowType]) -> VectorKind {
        let vectors = match self.operation {
            Operation::Accumulate => &arguments[arguments.len().min(1)..],
            _ => arguments,
        };
        vectors.iter().find_map(kind_of).unwrap_or(self.kind)
    }

    /// True for pgvector's functions behind its casts (`array_to_vector`, `vector_to_halfvec`, ...),
    /// which take the target's type modifier and whether the cast is explicit.
    fn is_cast_function(&self) -> bool {
        CAST_FUNCTIONS.contains(&self.name)
    }

    /// True for the functions pgvector also defines for `sparsevec`.
    fn takes_sparse(&self) -> bool {
        matches!(
            self.operation,
            Operation::Distance(_)
                | Operation::InnerProduct
                | Operation::L2Squared
                | Operation::Norm
                | Operation::Normalize
        ) && self.name != "vector_norm"
    }

    /// The function of sparse vectors this one is, computed over `arrays` (sparse vectors).
    fn compute_sparse(&self, arrays: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
        let arrays = sparse_vector::as_sparse(arrays)?;
        let pairwise = match self.operation {
            Operation::Norm => return sparse_vector::norms(&arrays[0]),
            Operation::Normalize => return sparse_vector::normalized(&arrays[0]),
            Operation::Distance(metric) => Pairwise::Distance(metric),
            Operation::InnerProduct => Pairwise::InnerProduct,
            Operation::L2Squared => Pairwise::L2Squared,
            _ => return Err(Error::internal(format!("{} of sparsevec", self.name))),
        };
        sparse_vector::pairwise(pairwise, &arrays[0], &arrays[1], rows)
    }

    /// How many vector arguments the function takes, then how many integers.
    fn arity(&self) -> (usize, usize) {
        match self.operation {
            Operation::Input(_) | Operation::InputArray(_) | Operation::Output => (1, 0),
            Operation::Dimensions | Operation::Norm | Operation::Normalize => (1, 0),
            Operation::Subvector => (1, 2),
            _ => (2, 0),
        }
    }
}

impl ScalarUDFImpl for VectorFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arguments: &[ArrowType]) -> DataFusionResult<Vec<ArrowType>> {
        match self.operation {
            // The casts take anything they can read; a second argument is the dimension count.
            // pgvector's cast functions (`array_to_vector(value, typmod, explicit)`) take a third.
            Operation::Input(_) | Operation::InputArray(_) => {
                let most = if self.is_cast_function() { 3 } else { 2 };
                if arguments.is_empty() || arguments.len() > most {
                    return Err(self.no_such_function(arguments));
                }
                let mut coerced = vec![arguments[0].clone()];
                if arguments.len() >= 2 {
                    coerced.push(ArrowType::Int64);
                }
                if arguments.len() == 3 {
                    coerced.push(ArrowType::Boolean);
                }
                return Ok(coerced);
            }
            Operation::Accumulate | Operation::Combine | Operation::Average => {
                let states = match self.operation {
                    Operation::Average => 1,
                    _ => 2,
                };
                if arguments.len() != states {
                    return Err(self.no_such_function(arguments));
                }
                let mut coerced = vec![arguments[0].clone()];
                if self.operation == Operation::Accumulate {
                    coerced.push(arrow_type_of(self.argument_kind(arguments)));
                } else if states == 2 {
                    coerced.push(arguments[1].clone());
                }
                return Ok(coerced);
            }
            Operation::Output => {
                return match arguments {
                    [argument] if is_vector(argument) => Ok(vec![argument.clone()]),
                    [ArrowType::Null] => Ok(vec![arrow_type()]),
                    _ => Err(self.no_such_function(arguments)),
                };
            }
            _ => {}
        }
        let (vectors, integers) = self.arity();
        if arguments.len() != vectors + integers {
            return Err(self.no_such_function(arguments));
        }
        if self.takes_sparse() && arguments.iter().any(is_sparse) {
            // pgvector's functions of sparse vectors: every argument a sparsevec, or text read as
            // one when the function runs (Arrow has no cast from text to a struct).
            return arguments
                .iter()
                .map(|argument| {
                    if is_sparse(argument) || is_text(argument) || argument == &ArrowType::Null {
                        Ok(argument.clone())
                    } else {
                        Err(self.no_such_function(arguments))
                    }
                })
                .collect();
        }
        let kind = self.argument_kind(arguments);
        let mut coerced = Vec::with_capacity(arguments.len());
        for (position, argument) in arguments.iter().enumerate() {
            if position < vectors {
                if is_vector(argument) || is_text(argument) || argument == &ArrowType::Null {
                    coerced.push(arrow_type_of(kind));
                } else {
                    return Err(self.no_such_function(arguments));
                }
            } else if argument.is_integer() || argument == &ArrowType::Null {
                coerced.push(ArrowType::Int64);
            } else {
                return Err(self.no_such_function(arguments));
            }
        }
        Ok(coerced)
    }

    fn return_type(&self, arguments: &[ArrowType]) -> DataFusionResult<ArrowType> {
        if self.operation == Operation::Normalize && arguments.iter().any(is_sparse) {
            return Ok(sparse_vector::arrow_type());
        }
        let kind = self.argument_kind(arguments);
        Ok(match self.operation {
            Operation::Input(kind) => arrow_type_of(kind),
            Operation::Normalize
            | Operation::Subvector
            | Operation::Add
            | Operation::Subtract
            | Operation::Multiply
            | Operation::Concat => arrow_type_of(kind),
            Operation::InputArray(kind) => {
                ArrowType::List(Arc::new(Field::new_list_field(arrow_type_of(kind), true)))
            }
            Operation::Output => ArrowType::Utf8,
            Operation::Average => arrow_type_of(self.kind),
            Operation::Accumulate | Operation::Combine => {
                ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Float64, true)))
            }
            Operation::Dimensions | Operation::Compare => ArrowType::Int32,
            Operation::Norm
            | Operation::Distance(_)
            | Operation::InnerProduct
            | Operation::L2Squared => ArrowType::Float64,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DataFusionResult<ColumnarValue> {
        invoke_arrays(args, |arrays, rows| self.compute(arrays, rows))
    }
}

/// A constant integer argument (`None` for NULL).
fn integer_at(array: &ArrayRef, row: usize) -> Option<i64> {
    let integers = array.as_primitive_opt::<datafusion::arrow::datatypes::Int64Type>()?;
    (!integers.is_null(row)).then(|| integers.value(row))
}

impl VectorFunction {
    fn compute(&self, arrays: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
        match self.operation {
            Operation::Input(kind) => {
                let dimensions = match arrays.get(1).and_then(|array| integer_at(array, 0)) {
                    // A cast function's type modifier is not checked (PostgreSQL checked it when
                    // the type was named); -1 stands for no dimensions declared.
                    Some(dimensions) if self.is_cast_function() => u32::try_from(dimensions)
                        .ok()
                        .filter(|dimensions| *dimensions >= 1),
                    Some(dimensions) => Some(check_type_modifier_of(kind, dimensions)?),
                    None => None,
                };
                return cast_array_of(kind, &arrays[0], dimensions);
            }
            Operation::Accumulate | Operation::Combine | Operation::Average => {
                return self.state_function(arrays, rows);
            }
            Operation::InputArray(kind) => {
                let dimensions = match arrays.get(1) {
                    Some(array) => match integer_at(array, 0) {
                        Some(dimensions) => Some(check_type_modifier_of(kind, dimensions)?),
                        None => None,
                    },
                    None => None,
                };
                return vector_array(kind, &arrays[0], dimensions);
            }
            _ => {}
        }
        if arrays.iter().any(|array| is_sparse(array.data_type())) {
            return self.compute_sparse(arrays, rows);
        }
        let first = Vectors::new(arrays[0].as_ref())?;
        let kind = first.kind;
        match self.operation {
            Operation::Output => {
                let strings: StringArray =
                    (0..rows).map(|row| first.get(row).map(format)).collect();
                Ok(Arc::new(strings))
            }
            Operation::Dimensions => {
                let dims: Int32Array = (0..rows)
                    .map(|row| first.get(row).map(|elements| elements.len() as i32))
                    .collect();
                Ok(Arc::new(dims))
            }
            Operation::Norm => {
                let norms: Float64Array = (0..rows)
                    .map(|row| first.get(row).map(kernels::norm))
                    .collect();
                Ok(Arc::new(norms))
            }
            Operation::Normalize => {
                let mut builder = VectorBuilder::of_kind(kind, rows, first.values.len());
                for row in 0..rows {
                    match first.get(row) {
                        None => builder.append_null(),
                        Some(elements) => {
                            let norm = kernels::norm(elements);
                            if norm > 0.0 {
                                let normalized = elements
                                    .iter()
                                    .map(|&x| computed_element(kind, (f64::from(x) / norm) as f32))
                                    .collect::<Result<Vec<f32>>>()?;
                                builder.append(&normalized);
                            } else {
                                builder.append(elements);
                            }
                        }
                    }
                }
                Ok(Arc::new(builder.finish()))
            }
            Operation::Subvector => {
                let mut builder = VectorBuilder::of_kind(kind, rows, 0);
                for row in 0..rows {
                    let (Some(elements), Some(start), Some(count)) = (
                        first.get(row),
                        integer_at(&arrays[1], row),
                        integer_at(&arrays[2], row),
                    ) else {
                        builder.append_null();
                        continue;
                    };
                    builder.append(subvector(kind, elements, start, count)?);
                }
                Ok(Arc::new(builder.finish()))
            }
            _ => {
                let second = Vectors::new(arrays[1].as_ref())?;
                self.binary(&first, &second, rows)
            }
        }
    }

    /// The two-vector operations.
    fn binary(&self, first: &Vectors, second: &Vectors, rows: usize) -> Result<ArrayRef> {
        let pairs = (0..rows).map(|row| match (first.get(row), second.get(row)) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        });
        let kind = first.kind;
        let same = |a: &[f32], b: &[f32]| {
            if a.len() == b.len() {
                Ok(())
            } else {
                Err(different_dimensions_of(kind, a.len(), b.len()))
            }
        };
        match self.operation {
            Operation::Distance(_) | Operation::InnerProduct | Operation::L2Squared => {
                let mut out = Vec::with_capacity(rows);
                for pair in pairs {
                    out.push(match pair {
                        None => None,
                        Some((a, b)) => {
                            same(a, b)?;
                            Some(match self.operation {
                                Operation::Distance(metric) => metric.distance(a, b),
                                Operation::InnerProduct => kernels::inner_product(a, b),
                                _ => kernels::l2_squared(a, b),
                            })
                        }
                    });
                }
                Ok(Arc::new(Float64Array::from(out)))
            }
            Operation::Compare => {
                let out: Int32Array = pairs
                    .map(|pair| pair.map(|(a, b)| kernels::compare(a, b) as i32))
                    .collect();
                Ok(Arc::new(out))
            }
            _ => {
                let mut builder = VectorBuilder::of_kind(kind, rows, first.values.len());
                for pair in pairs {
                    let Some((a, b)) = pair else {
                        builder.append_null();
                        continue;
                    };
                    if self.operation == Operation::Concat {
                        check_dimensions_of(kind, a.len() + b.len(), None)?;
                        let mut joined = a.to_vec();
                        joined.extend_from_slice(b);
                        builder.append(&joined);
                        continue;
                    }
                    same(a, b)?;
                    let mut result = Vec::with_capacity(a.len());
                    for (&x, &y) in a.iter().zip(b) {
                        let value = computed_element(
                            kind,
                            match self.operation {
                                Operation::Add => x + y,
                                Operation::Subtract => x - y,
                                _ => x * y,
                            },
                        )?;
                        if self.operation == Operation::Multiply
                            && value == 0.0
                            && x != 0.0
                            && y != 0.0
                        {
                            return Err(Error::user("22003", "value out of range: underflow"));
                        }
                        result.push(value);
                    }
                    builder.append(&result);
                }
                Ok(Arc::new(builder.finish()))
            }
        }
    }
}

impl VectorFunction {
    /// `vector_accum`, `vector_combine`, `vector_avg` over pgvector's aggregate state: a
    /// one-dimensional `float8[]` of the count then the sums.
    fn state_function(&self, arrays: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
        let name = self.name;
        let kind = self.kind;
        let first = states(kind, &arrays[0], name)?;
        let mut sums_out: Vec<Option<Vec<f64>>> = Vec::with_capacity(rows);
        let mut averages = VectorBuilder::of_kind(kind, rows, 0);
        let second_states = match self.operation {
            Operation::Combine => Some(states(kind, &arrays[1], name)?),
            _ => None,
        };
        let vectors = match self.operation {
            Operation::Accumulate => Some(Vectors::new(arrays[1].as_ref())?),
            _ => None,
        };
        for row in 0..rows {
            let Some(state) = first.get(row).cloned().flatten() else {
                sums_out.push(None);
                averages.append_null();
                continue;
            };
            let state = state?;
            match self.operation {
                Operation::Average => {
                    let count = state[0];
                    if count == 0.0 {
                        averages.append_null();
                        continue;
                    }
                    check_dimensions_of(kind, state.len() - 1, None)?;
                    let average = state[1..]
                        .iter()
                        .map(|sum| {
                            let value = (sum / count) as f32;
                            check_element(kind, value)?;
                            computed_element(kind, value)
                        })
                        .collect::<Result<Vec<f32>>>()?;
                    averages.append(&average);
                }
                Operation::Accumulate => {
                    let Some(elements) = vectors.as_ref().and_then(|vectors| vectors.get(row))
                    else {
                        sums_out.push(Some(state));
                        continue;
                    };
                    let mut next = if state[0] == 0.0 && state.len() == 1 {
                        let mut fresh = vec![0.0; elements.len() + 1];
                        fresh[0] = 0.0;
                        fresh
                    } else {
                        if state.len() - 1 != elements.len() {
                            return Err(data_error(format!(
                                "expected {} dimensions, not {}",
                                state.len() - 1,
                                elements.len()
                            )));
                        }
                        state
                    };
                    next[0] += 1.0;
                    for (sum, &element) in next[1..].iter_mut().zip(elements) {
                        *sum += f64::from(element);
                    }
                    sums_out.push(Some(next));
                }
                _ => {
                    let other = second_states
                        .as_ref()
                        .and_then(|states| states.get(row).cloned().flatten());
                    let Some(other) = other else {
                        sums_out.push(Some(state));
                        continue;
                    };
                    let other = other?;
                    for side in [&state, &other] {
                        check_dimensions_of(kind, side.len() - 1, None)
                            .or_else(|error| if side.len() == 1 { Ok(()) } else { Err(error) })?;
                    }
                    let combined = if state[0] == 0.0 {
                        other
                    } else if other[0] == 0.0 {
                        state
                    } else {
                        if state.len() != other.len() {
                            return Err(data_error(format!(
                                "expected {} dimensions, not {}",
                                state.len() - 1,
                                other.len() - 1
                            )));
                        }
                        state.iter().zip(&other).map(|(a, b)| a + b).collect()
                    };
                    sums_out.push(Some(combined));
                }
            }
        }
        if self.operation == Operation::Average {
            return Ok(Arc::new(averages.finish()));
        }
        let mut offsets = vec![0i32];
        let mut values = Vec::new();
        let mut valid = Vec::with_capacity(rows);
        for sums in sums_out {
            valid.push(sums.is_some());
            values.extend(sums.unwrap_or_default());
            offsets.push(values.len() as i32);
        }
        let nulls = (!valid.iter().all(|&valid| valid)).then(|| NullBuffer::from(valid));
        Ok(Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(ArrowType::Float64, true)),
            OffsetBuffer::new(offsets.into()),
            Arc::new(Float64Array::from(values)),
            nulls,
        )))
    }
}

/// The `float8[]` aggregate states of `array` (array text or a list of numbers), each checked as
/// pgvector checks them: one dimension, no NULL, not empty (`<name>: expected state array`).
fn states(kind: VectorKind, array: &ArrayRef, name: &str) -> Result<Vec<Option<Result<Vec<f64>>>>> {
    let expected = || data_error(format!("{name}: expected state array"));
    let rows = array.len();
    let mut out = Vec::with_capacity(rows);
    match array.data_type() {
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => {
            let text = cast_with_options(array, &ArrowType::Utf8, &CastOptions::default())?;
            for value in text.as_string::<i32>().iter() {
                out.push(value.map(|text| {
                    if text.trim_start().starts_with("{{") {
                        return Err(expected());
                    }
                    let items =
                        crate::sql::array_literals::parse_array(text).ok_or_else(expected)?;
                    if items.is_empty() {
                        return Err(expected());
                    }
                    items
                        .into_iter()
                        .map(|item| {
                            item.ok_or_else(expected)?
                                .trim()
                                .parse::<f64>()
                                .map_err(|_| expected())
                        })
                        .collect()
                }));
            }
        }
        ArrowType::List(field) | ArrowType::LargeList(field) => {
            if matches!(
                field.data_type(),
                ArrowType::List(_) | ArrowType::LargeList(_)
            ) {
                return Err(expected());
            }
            let list = cast_with_options(
                array,
                &ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Float64, true))),
                &CastOptions::default(),
            )?;
            let list = list.as_list::<i32>();
            for row in 0..rows {
                if list.is_null(row) {
                    out.push(None);
                    continue;
                }
                let values = list.value(row);
                let values = values.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
                out.push(Some(if values.is_empty() || values.null_count() > 0 {
                    Err(expected())
                } else {
                    // pgvector's limit on a state: the dimensions past the count.
                    if values.len() - 1 > VECTOR_DIMENSIONS_MAX {
                        Err(Error::user(
                            "54000",
                            format!(
                                "{} cannot have more than {VECTOR_DIMENSIONS_MAX} dimensions",
                                kind.type_name()
                            ),
                        ))
                    } else {
                        Ok(values.values().to_vec())
                    }
                }));
            }
        }
        ArrowType::Null => out.resize_with(rows, || None),
        _ => return Err(expected()),
    }
    Ok(out)
}

/// pgvector's `subvector(v, start, count)`: `count` elements from the 1-based `start`, cut to the
/// vector.
fn subvector(kind: VectorKind, elements: &[f32], start: i64, count: i64) -> Result<&[f32]> {
    let dimensions = elements.len() as i64;
    let too_few = || {
        data_error(format!(
            "{} must have at least 1 dimension",
            kind.type_name()
        ))
    };
    if count < 1 {
        return Err(too_few());
    }
    let end = if start > dimensions - count {
        dimensions + 1
    } else {
        start + count
    };
    let start = if start < 1 {
        1
    } else if start > dimensions {
        return Err(too_few());
    } else {
        start
    };
    let length = end - start;
    check_dimensions_of(kind, length.max(0) as usize, None)?;
    Ok(&elements[(start - 1) as usize..(end - 1) as usize])
}

/// `'{"[1,2]","[3,4]"}'::vector[]`: PostgreSQL's array text of vectors; an array of anything else
/// has each element cast.
fn vector_array(kind: VectorKind, array: &ArrayRef, dimensions: Option<u32>) -> Result<ArrayRef> {
    if let ArrowType::List(_) = array.data_type() {
        let list = array.as_list::<i32>();
        let elements = cast_array_of(kind, list.values(), dimensions)?;
        return Ok(Arc::new(ListArray::new(
            Arc::new(Field::new_list_field(arrow_type_of(kind), true)),
            list.offsets().clone(),
            elements,
            list.nulls().cloned(),
        )));
    }
    let text = cast_with_options(array, &ArrowType::Utf8, &CastOptions::default())?;
    let strings = text.as_string::<i32>();
    let mut offsets = vec![0i32];
    let mut valid = Vec::with_capacity(strings.len());
    let mut builder = VectorBuilder::of_kind(kind, strings.len(), 0);
    for value in strings.iter() {
        match value {
            None => valid.push(false),
            Some(text) => {
                let items = crate::sql::array_literals::parse_array(text).ok_or_else(|| {
                    let mut error =
                        Error::user("22P02", format!("malformed array literal: \"{text}\""));
                    error.set_input(text);
                    error
                })?;
                for item in items {
                    match item {
                        None => builder.append_null(),
                        Some(item) => {
                            let elements = parse_of(kind, &item)?;
                            check_dimensions_of(kind, elements.len(), dimensions)?;
                            builder.append(&elements);
                        }
                    }
                }
                valid.push(true);
            }
        }
        offsets.push(builder.valid.len() as i32);
    }
    let nulls = (!valid.iter().all(|&valid| valid)).then(|| NullBuffer::from(valid));
    Ok(Arc::new(ListArray::new(
        Arc::new(Field::new_list_field(arrow_type_of(kind), true)),
        OffsetBuffer::new(offsets.into()),
        Arc::new(builder.finish()),
        nulls,
    )))
}

/// The elements of row `row` of a vector array as a stored value.
pub fn value_at(array: &ArrayRef, row: usize) -> Result<Vec<f32>> {
    let vectors = Vectors::new(array.as_ref())?;
    vectors
        .get(row)
        .map(<[f32]>::to_vec)
        .ok_or_else(|| Error::internal("NULL vector read as a value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reads_as_pgvector() {
        assert_eq!(parse(" [ 1,  2 ,    3  ] ").unwrap(), vec![1.0, 2.0, 3.0]);
        assert_eq!(parse("[1.,-2.5e1,.5]").unwrap(), vec![1.0, -25.0, 0.5]);
        assert_eq!(parse("[1e-46]").unwrap(), vec![0.0]);
        for bad in [
            "[1,2,3", "[1,2,3]9", "1,2,3", "", "[", "[,]", "[1,]", "[1a]", "[1, ,3]",
        ] {
            assert_eq!(parse(bad).unwrap_err().code, "22P02", "{bad}");
        }
        assert_eq!(
            parse("[]").unwrap_err().message,
            "vector must have at least 1 dimension"
        );
        assert_eq!(
            parse("[NaN]").unwrap_err().message,
            "NaN not allowed in vector"
        );
        assert_eq!(
            parse("[4e38]").unwrap_err().message,
            "\"4e38\" is out of range for type vector"
        );
        assert_eq!(
            format(&[1.0, -0.0, 1.5e38, 1.23456]),
            "[1,-0,1.5e+38,1.23456]"
        );
    }

    #[test]
    fn subvector_cuts_as_pgvector() {
        let elements = [1.0, 2.0, 3.0, 4.0, 5.0];
        let subvector =
            |elements, start, count| subvector(VectorKind::Single, elements, start, count);
        assert_eq!(subvector(&elements, 1, 3).unwrap(), &[1.0, 2.0, 3.0]);
        assert_eq!(subvector(&elements, -1, 3).unwrap(), &[1.0]);
        assert_eq!(subvector(&elements, 3, 9).unwrap(), &[3.0, 4.0, 5.0]);
        assert_eq!(
            subvector(&elements, -2147483644, 2147483647).unwrap(),
            &[1.0, 2.0]
        );
        assert!(subvector(&elements, -1, 2).is_err());
        assert!(subvector(&elements, 2147483647, 10).is_err());
    }
}
