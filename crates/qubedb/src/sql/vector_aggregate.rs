//! `avg` and `sum` of vectors, as pgvector's aggregates, without changing them for other types.
//!
//! DataFusion has one aggregate per name, so QubeDB registers its own `avg` and `sum`, each wrapping
//! DataFusion's: for a vector argument they accumulate element by element (the average in `f64`, as
//! pgvector's `float8[]` state; the sum in `f32` with pgvector's overflow check), and for anything
//! else they hand every decision (types, accumulators, grouped and sliding accumulators, ordering)
//! to the wrapped aggregate, so numbers aggregate exactly as before.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, FieldRef, Float64Type};
use datafusion::common::{Result as DataFusionResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, ReversedUDAF, Signature,
    TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;

use crate::error::{Error, to_datafusion};
use qubedb_model::vector::VectorKind;

use crate::sql::vector::{
    VectorBuilder, Vectors, arrow_type, arrow_type_of, check_dimensions_of, computed_element,
    different_dimensions_of, is_vector, kind_of,
};

/// Registers `avg` and `sum` over DataFusion's.
pub(crate) fn register(context: &SessionContext) {
    use datafusion::functions_aggregate::average::avg_udaf;
    use datafusion::functions_aggregate::sum::sum_udaf;
    for (inner, kind) in [(avg_udaf(), Kind::Average), (sum_udaf(), Kind::Sum)] {
        let signature = Signature::one_of(
            vec![
                inner.signature().type_signature.clone(),
                TypeSignature::Exact(vec![arrow_type()]),
                TypeSignature::Exact(vec![arrow_type_of(VectorKind::Half)]),
            ],
            Volatility::Immutable,
        );
        context.register_udaf(AggregateUDF::new_from_impl(VectorAware {
            inner,
            kind,
            signature,
        }));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Average,
    Sum,
}

/// `avg` or `sum`: pgvector's for vectors, DataFusion's for the rest.
#[derive(Debug, PartialEq, Eq, Hash)]
struct VectorAware {
    inner: Arc<AggregateUDF>,
    kind: Kind,
    signature: Signature,
}

fn of_vectors(types: &[ArrowType]) -> bool {
    types.first().is_some_and(is_vector)
}

fn fields_of_vectors(fields: &[FieldRef]) -> bool {
    fields
        .first()
        .is_some_and(|field| is_vector(field.data_type()))
}

impl AggregateUDFImpl for VectorAware {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arguments: &[ArrowType]) -> DataFusionResult<ArrowType> {
        if of_vectors(arguments) {
            return Ok(arguments[0].clone());
        }
        self.inner.return_type(arguments)
    }

    fn return_field(&self, arguments: &[FieldRef]) -> DataFusionResult<FieldRef> {
        if fields_of_vectors(arguments) {
            return Ok(Arc::new(Field::new(
                self.name(),
                arguments[0].data_type().clone(),
                true,
            )));
        }
        self.inner.return_field(arguments)
    }

    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DataFusionResult<Box<dyn Accumulator>> {
        if fields_of_vectors(args.expr_fields) {
            return Ok(Box::new(VectorAccumulator {
                kind: self.kind,
                vectors: kind_of(args.expr_fields[0].data_type()).unwrap_or_default(),
                count: 0,
                averages: Vec::new(),
                sums: None,
            }));
        }
        self.inner.accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DataFusionResult<Vec<FieldRef>> {
        if fields_of_vectors(args.input_fields) {
            let name = |part: &str| format!("{}[{part}]", args.name);
            return Ok(match self.kind {
                Kind::Average => vec![
                    Arc::new(Field::new(name("count"), ArrowType::UInt64, true)),
                    Arc::new(Field::new(
                        name("sums"),
                        ArrowType::List(Arc::new(Field::new_list_field(ArrowType::Float64, true))),
                        true,
                    )),
                ],
                Kind::Sum => vec![Arc::new(Field::new(
                    name("sum"),
                    args.input_fields[0].data_type().clone(),
                    true,
                ))],
            });
        }
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !fields_of_vectors(args.expr_fields) && self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DataFusionResult<Box<dyn GroupsAccumulator>> {
        self.inner.create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DataFusionResult<Box<dyn Accumulator>> {
        if fields_of_vectors(args.expr_fields) {
            return self.accumulator(args);
        }
        self.inner.create_sliding_accumulator(args)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.inner().order_sensitivity()
    }

    fn default_value(&self, data_type: &ArrowType) -> DataFusionResult<ScalarValue> {
        if is_vector(data_type) {
            return ScalarValue::try_from(data_type);
        }
        self.inner.default_value(data_type)
    }

    fn coerce_types(&self, arguments: &[ArrowType]) -> DataFusionResult<Vec<ArrowType>> {
        if of_vectors(arguments) {
            return Ok(arguments.to_vec());
        }
        self.inner.coerce_types(arguments)
    }
}

/// The running average (count and `f64` sums) or sum (`f32`) of vectors.
#[derive(Debug)]
struct VectorAccumulator {
    kind: Kind,
    /// The kind of vectors aggregated (the result's).
    vectors: VectorKind,
    count: u64,
    averages: Vec<f64>,
    sums: Option<Vec<f32>>,
}

impl VectorAccumulator {
    fn add_to_average(&mut self, count: u64, sums: &[f64]) -> crate::error::Result<()> {
        if self.count == 0 {
            self.averages = sums.to_vec();
        } else if sums.len() != self.averages.len() {
            return Err(Error::user(
                "22000",
                format!(
                    "expected {} dimensions, not {}",
                    self.averages.len(),
                    sums.len()
                ),
            ));
        } else {
            for (total, value) in self.averages.iter_mut().zip(sums) {
                *total += value;
            }
        }
        self.count += count;
        Ok(())
    }

    fn add_to_sum(&mut self, elements: &[f32]) -> crate::error::Result<()> {
        let Some(sums) = &mut self.sums else {
            self.sums = Some(elements.to_vec());
            return Ok(());
        };
        if sums.len() != elements.len() {
            return Err(different_dimensions_of(
                self.vectors,
                sums.len(),
                elements.len(),
            ));
        }
        for (total, value) in sums.iter_mut().zip(elements) {
            *total = computed_element(self.vectors, *total + value)?;
        }
        Ok(())
    }

    fn update(&mut self, values: &[ArrayRef]) -> crate::error::Result<()> {
        let vectors = Vectors::new(values[0].as_ref())?;
        for row in 0..vectors.len() {
            let Some(elements) = vectors.get(row) else {
                continue;
            };
            match self.kind {
                Kind::Average => {
                    let sums: Vec<f64> = elements.iter().map(|&x| f64::from(x)).collect();
                    self.add_to_average(1, &sums)?;
                }
                Kind::Sum => self.add_to_sum(elements)?,
            }
        }
        Ok(())
    }

    fn merge(&mut self, states: &[ArrayRef]) -> crate::error::Result<()> {
        match self.kind {
            Kind::Average => {
                let counts = states[0].as_primitive::<datafusion::arrow::datatypes::UInt64Type>();
                let sums = states[1].as_list::<i32>();
                for row in 0..counts.len() {
                    if counts.is_null(row) || counts.value(row) == 0 || sums.is_null(row) {
                        continue;
                    }
                    let values = sums.value(row);
                    let values = values.as_primitive::<Float64Type>();
                    self.add_to_average(counts.value(row), values.values())?;
                }
                Ok(())
            }
            Kind::Sum => self.update(states),
        }
    }
}

impl Accumulator for VectorAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DataFusionResult<()> {
        self.update(values).map_err(to_datafusion)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DataFusionResult<()> {
        self.merge(states).map_err(to_datafusion)
    }

    fn state(&mut self) -> DataFusionResult<Vec<ScalarValue>> {
        Ok(match self.kind {
            Kind::Average => {
                let sums = ListArray::new(
                    Arc::new(Field::new_list_field(ArrowType::Float64, true)),
                    OffsetBuffer::from_lengths([self.averages.len()]),
                    Arc::new(Float64Array::from(self.averages.clone())),
                    None,
                );
                vec![
                    ScalarValue::UInt64(Some(self.count)),
                    ScalarValue::List(Arc::new(sums)),
                ]
            }
            Kind::Sum => vec![self.evaluate()?],
        })
    }

    fn evaluate(&mut self) -> DataFusionResult<ScalarValue> {
        let mut builder = VectorBuilder::of_kind(self.vectors, 1, 0);
        match self.kind {
            Kind::Average if self.count > 0 => {
                let averages = self
                    .averages
                    .iter()
                    .map(|sum| computed_element(self.vectors, (sum / self.count as f64) as f32))
                    .collect::<crate::error::Result<Vec<f32>>>()
                    .map_err(to_datafusion)?;
                check_dimensions_of(self.vectors, averages.len(), None).map_err(to_datafusion)?;
                builder.append(&averages);
            }
            Kind::Sum if self.sums.is_some() => builder.append_option(self.sums.as_deref()),
            _ => builder.append_null(),
        }
        Ok(ScalarValue::LargeList(Arc::new(builder.finish())))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.averages.capacity() * 8
            + self.sums.as_ref().map_or(0, |sums| sums.capacity() * 4)
    }
}
