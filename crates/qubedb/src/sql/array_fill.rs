//! `array_fill(value, dimensions [, lower_bounds])`: PostgreSQL's array of `value` repeated.
//!
//! QubeDB's arrays are one-dimensional and start at 1 (Arrow lists), so `dimensions` may hold one length
//! (or none: the empty array) and `lower_bounds`, when given, only 1; anything else is refused with
//! 0A000 rather than answered with a different array. The other errors are PostgreSQL's: NULL
//! arguments (22004), arrays of different sizes (2202E), lengths out of range (54000).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray, UInt32Array};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field};
use datafusion::common::{Result as DataFusionResult, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use crate::error::{Error, to_datafusion};

/// PostgreSQL's `MaxArraySize`: the most elements an array holds.
const ARRAY_SIZE_MAX: i64 = 134_217_727;

/// Registers the function.
pub(crate) fn register(context: &SessionContext) {
    context.register_udf(ScalarUDF::new_from_impl(ArrayFill {
        signature: Signature::variadic_any(Volatility::Immutable),
    }));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrayFill {
    signature: Signature,
}

/// The integers of row `row` of a list of integers, `None` for a NULL list (a NULL element is `None`
/// inside).
fn integers(list: &ArrayRef, row: usize) -> DataFusionResult<Option<Vec<Option<i64>>>> {
    let list = match list.data_type() {
        ArrowType::List(_) => list.as_list::<i32>(),
        other => return plan_err!("array_fill needs an integer array, not {other}"),
    };
    if list.is_null(row) {
        return Ok(None);
    }
    let values = cast(&list.value(row), &ArrowType::Int64)?;
    let values = values.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    Ok(Some(values.iter().collect()))
}

/// How many elements row `row` asks for.
fn length(
    dimensions: &ArrayRef,
    lower_bounds: Option<&ArrayRef>,
    row: usize,
) -> crate::error::Result<usize> {
    let null_argument =
        || Error::user("22004", "dimension array or low bound array cannot be null");
    let dimensions = integers(dimensions, row)
        .map_err(|error| Error::user("42804", error.to_string()))?
        .ok_or_else(null_argument)?;
    if let Some(lower_bounds) = lower_bounds {
        let lower_bounds = integers(lower_bounds, row)
            .map_err(|error| Error::user("42804", error.to_string()))?
            .ok_or_else(null_argument)?;
        if lower_bounds.len() != dimensions.len() {
            return Err(Error::user("2202E", "wrong number of array subscripts")
                .with_detail("Low bound array has different size than dimensions array."));
        }
        if lower_bounds.iter().any(Option::is_none) {
            return Err(Error::user("22004", "dimension values cannot be null"));
        }
        if lower_bounds.iter().any(|bound| *bound != Some(1)) {
            return Err(Error::user(
                "0A000",
                "arrays with lower bounds other than 1 are not supported",
            ));
        }
    }
    match dimensions.as_slice() {
        [] => Ok(0),
        [None] => Err(Error::user("22004", "dimension values cannot be null")),
        [Some(length)] if (0..=ARRAY_SIZE_MAX).contains(length) => Ok(*length as usize),
        [Some(_)] => Err(Error::user(
            "54000",
            format!("array size exceeds the maximum allowed ({ARRAY_SIZE_MAX})"),
        )),
        _ => Err(Error::user(
            "0A000",
            "multidimensional arrays are not supported",
        )),
    }
}

impl ScalarUDFImpl for ArrayFill {
    fn name(&self) -> &str {
        "array_fill"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arguments: &[ArrowType]) -> DataFusionResult<ArrowType> {
        match arguments {
            [value, _] | [value, _, _] => Ok(ArrowType::List(Arc::new(Field::new_list_field(
                value.clone(),
                true,
            )))),
            _ => plan_err!("array_fill takes a value, a dimensions array and lower bounds"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DataFusionResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (values, dimensions, lower_bounds) = match arrays.as_slice() {
            [values, dimensions] => (values, dimensions, None),
            [values, dimensions, lower_bounds] => (values, dimensions, Some(lower_bounds)),
            _ => return plan_err!("array_fill takes two or three arguments"),
        };
        let mut indices: Vec<u32> = Vec::new();
        let mut offsets: Vec<i32> = Vec::with_capacity(rows + 1);
        offsets.push(0);
        for row in 0..rows {
            let length = length(dimensions, lower_bounds, row).map_err(to_datafusion)?;
            let source = u32::try_from(row.min(values.len().saturating_sub(1)))
                .map_err(|_| to_datafusion(Error::internal("array_fill over too many rows")))?;
            indices.extend(std::iter::repeat_n(source, length));
            let end = i32::try_from(indices.len()).map_err(|_| {
                to_datafusion(Error::user("54000", "array_fill's result is too large"))
            })?;
            offsets.push(end);
        }
        let filled = take(values.as_ref(), &UInt32Array::from(indices), None)?;
        let list = ListArray::try_new(
            Arc::new(Field::new_list_field(values.data_type().clone(), true)),
            OffsetBuffer::new(offsets.into()),
            filled,
            None,
        )?;
        Ok(ColumnarValue::Array(Arc::new(list)))
    }
}
