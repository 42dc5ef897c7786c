//! `qubedb_expand_array(a)`: the elements of an array with their 1-based positions, as a list of
//! `{x, n}` structs. Unnested, it is PostgreSQL's `information_schema._pg_expandarray(a)` (a set of
//! records JDBC's metadata queries read), to which the SQL rewrite maps that name.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, ListArray, StructArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Fields};
use datafusion::common::{Result as DataFusionResult, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Registers the function.
pub(crate) fn register(context: &SessionContext) {
    context.register_udf(ScalarUDF::new_from_impl(ExpandArray {
        signature: Signature::any(1, Volatility::Immutable),
    }));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArray {
    signature: Signature,
}

fn struct_fields(element: &ArrowType) -> Fields {
    Fields::from(vec![
        Field::new("x", element.clone(), true),
        Field::new("n", ArrowType::Int32, false),
    ])
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        "qubedb_expand_array"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arguments: &[ArrowType]) -> DataFusionResult<ArrowType> {
        match arguments.first() {
            Some(ArrowType::List(element)) => Ok(ArrowType::List(Arc::new(Field::new_list_field(
                ArrowType::Struct(struct_fields(element.data_type())),
                true,
            )))),
            Some(other) => plan_err!("_pg_expandarray needs an array, not {other}"),
            None => plan_err!("_pg_expandarray needs one argument"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DataFusionResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(list) = arrays.first().and_then(|array| array.as_list_opt::<i32>()) else {
            return plan_err!("_pg_expandarray needs an array");
        };
        let values: ArrayRef = list.values().clone();
        // Positions restart at 1 in every row's slice of the flat values.
        let mut positions = vec![0i32; values.len()];
        for row in 0..list.len() {
            let start = list.value_offsets()[row] as usize;
            let end = list.value_offsets()[row + 1] as usize;
            for (position, slot) in positions[start..end].iter_mut().enumerate() {
                *slot = position as i32 + 1;
            }
        }
        let fields = struct_fields(values.data_type());
        let structs = StructArray::try_new(
            fields.clone(),
            vec![values, Arc::new(Int32Array::from(positions)) as ArrayRef],
            None,
        )?;
        let result = ListArray::try_new(
            Arc::new(Field::new_list_field(ArrowType::Struct(fields), true)),
            OffsetBuffer::new(list.offsets().inner().clone()),
            Arc::new(structs),
            list.nulls().cloned(),
        )?;
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
}
