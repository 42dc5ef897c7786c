//! PostgreSQL's bit strings, `bit(n)` and `bit varying(n)`, and pgvector's functions over them.
//!
//! A bit string computes as its text, one `0` or `1` per bit, in Arrow `Utf8` (as `uuid` computes as
//! its text), and is stored as that text. The text orders, compares, hashes and concatenates as
//! PostgreSQL's bit strings do — bit by bit, a string before a longer one it begins — so sorting,
//! grouping, joins, `DISTINCT` and `||` need nothing of their own, and a column carries its SQL type
//! in its field's metadata (wire OIDs 1560 and 1562, `sql/system.rs`). The price is eight times the
//! packed size on disk: a packed form is for when bit columns grow large.
//!
//! Input (`B'1010'`, `'1010'::bit(4)`, `'x1f'::varbit`, and text assigned to a bit column) checks
//! the digits and the type's length as PostgreSQL's `bit_in` / `varbit_in` do: `bit(n)` takes exactly
//! `n` bits, `bit varying(n)` at most `n`, `bit` alone is `bit(1)`. pgvector's functions:
//! `binary_quantize(vector | halfvec)` (a 1 for each element above zero), `hamming_distance` and
//! `jaccard_distance` (and their operators `<~>`, `<%>`, `sql/vector_planner.rs`); and
//! PostgreSQL's `bit_count` and operators `&`, `|`, `#` (of strings of one length) and `<<`, `>>`
//! (`sql/vector_planner.rs` maps each operator on text-typed operands, which bit strings are); `~`
//! (`qubedb_bitwise_not`, which also inverts integers: the rewrite cannot see the operand's type);
//! `get_bit` / `set_bit` of bit strings (bit 0 leftmost) and of bytea (bit 0 the lowest of the
//! first byte); casts of integers to `bit(n)` (the value's lowest `n` bits, the sign repeated beyond
//! 64).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, Float64Array, Int32Array, Int64Array, StringArray,
};
use datafusion::arrow::compute::kernels::cast::cast;
use datafusion::arrow::datatypes::{DataType as ArrowType, Int64Type};
use datafusion::error::Result as DataFusionResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::sql::vector::{Vectors, invoke_arrays, is_text, is_vector, no_such_function};

/// Most bits a bit string holds (PostgreSQL's: its largest value, 1 GB, in bits less headers).
pub const BIT_LENGTH_MAX: u32 = 83_886_080;

/// Reads bit-string input as PostgreSQL's `bit_in` does: binary digits (after an optional `b`), or
/// hexadecimal ones after `x`, four bits each.
pub fn parse(text: &str) -> Result<String> {
    let (hexadecimal, digits) = match text.as_bytes().first() {
        Some(b'x' | b'X') => (true, &text[1..]),
        Some(b'b' | b'B') => (false, &text[1..]),
        _ => (false, text),
    };
    let mut bits = String::with_capacity(digits.len() * if hexadecimal { 4 } else { 1 });
    for digit in digits.chars() {
        if hexadecimal {
            let Some(value) = digit.to_digit(16) else {
                return Err(Error::user(
                    "22P02",
                    format!("\"{digit}\" is not a valid hexadecimal digit"),
                ));
            };
            for shift in (0..4).rev() {
                bits.push(if (value >> shift) & 1 == 1 { '1' } else { '0' });
            }
        } else if digit == '0' || digit == '1' {
            bits.push(digit);
        } else {
            return Err(Error::user(
                "22P02",
                format!("\"{digit}\" is not a valid binary digit"),
            ));
        }
    }
    if bits.len() > BIT_LENGTH_MAX as usize {
        return Err(Error::user(
            "54000",
            format!("bit string length exceeds the maximum allowed ({BIT_LENGTH_MAX})"),
        ));
    }
    Ok(bits)
}

/// Checks that `bits` fits its type: `bit(length)` exactly, `bit varying(length)` at most.
pub fn check_length(bits: &str, length: Option<u32>, varying: bool) -> Result<()> {
    let count = bits.len();
    match length {
        Some(length) if !varying && count != length as usize => Err(Error::user(
            "22026",
            format!("bit string length {count} does not match type bit({length})"),
        )),
        Some(length) if varying && count > length as usize => Err(Error::user(
            "22026",
            format!("bit string too long for type bit varying({length})"),
        )),
        _ => Ok(()),
    }
}

/// Bit-string input for a value of type `bit(length)` or `bit varying(length)`.
pub fn input(text: &str, length: Option<u32>, varying: bool) -> Result<String> {
    let bits = parse(text)?;
    check_length(&bits, length, varying)?;
    Ok(bits)
}

/// Checks the length a type modifier gives (`bit(n)`, `varbit(n)`).
pub fn check_type_modifier(length: i64, varying: bool) -> Result<u32> {
    let name = if varying { "varbit" } else { "bit" };
    if length < 1 {
        return Err(Error::user(
            "22023",
            format!("length for type {name} must be at least 1"),
        ));
    }
    if length > i64::from(BIT_LENGTH_MAX) {
        return Err(Error::user(
            "22023",
            format!("length for type {name} cannot exceed {BIT_LENGTH_MAX}"),
        ));
    }
    Ok(length as u32)
}

/// The bits of `text`, a value that computes as a bit string (checked: a text argument may be
/// anything).
fn bits_of(text: &str) -> Result<&[u8]> {
    let bytes = text.as_bytes();
    match bytes.iter().find(|&&byte| byte != b'0' && byte != b'1') {
        None => Ok(bytes),
        Some(_) => parse(text).map(|_| bytes),
    }
}

/// pgvector's error for two bit strings of different lengths.
fn different_lengths(a: usize, b: usize) -> Error {
    Error::user("22000", format!("different bit lengths {a} and {b}"))
}

/// The number of positions at which `a` and `b` differ.
pub fn hamming_distance(a: &[u8], b: &[u8]) -> Result<f64> {
    if a.len() != b.len() {
        return Err(different_lengths(a.len(), b.len()));
    }
    Ok(a.iter().zip(b).filter(|(x, y)| x != y).count() as f64)
}

/// One less the share of set bits that both have: `1 - |a ∧ b| / |a ∨ b|` (1 when no bit is set in
/// both, as pgvector).
pub fn jaccard_distance(a: &[u8], b: &[u8]) -> Result<f64> {
    if a.len() != b.len() {
        return Err(different_lengths(a.len(), b.len()));
    }
    let (mut both, mut either) = (0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        both += usize::from(x == b'1' && y == b'1');
        either += usize::from(x == b'1' || y == b'1');
    }
    Ok(if both == 0 {
        1.0
    } else {
        1.0 - both as f64 / either as f64
    })
}

/// The functions of bit strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Operation {
    /// `qubedb_bit(text, length)`: the cast to `bit(length)`.
    Fixed,
    /// `qubedb_varbit(text [, length])`: the cast to `bit varying[(length)]`.
    Varying,
    /// `binary_quantize(vector | halfvec)`.
    Quantize,
    /// `hamming_distance(bit, bit)`.
    Hamming,
    /// `jaccard_distance(bit, bit)`.
    Jaccard,
    /// `bit_count(bit)`: the set bits.
    Count,
    /// `a & b`, `a | b`, `a # b` of bit strings of one length (`sql/vector_planner.rs` maps them).
    Bitwise(Bitwise),
    /// `bits << n` (a negative `n` shifts the other way): the length stays, zeros come in.
    ShiftLeft,
    /// `bits >> n`.
    ShiftRight,
    /// `~bits`, and `~n` of an integer.
    Not,
    /// `get_bit(bits | bytea, n)`.
    GetBit,
    /// `set_bit(bits | bytea, n, value)`.
    SetBit,
    /// `bits::integer` / `bits::bigint` (`qubedb_bit_to_integer(bits, width)`): the bits as a two's
    /// complement number of `width` bits, as PostgreSQL's `bittoint4` / `bittoint8`.
    ToInteger,
}

/// The bitwise operators of bit strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Bitwise {
    And,
    Or,
    Xor,
}

impl Bitwise {
    fn apply(self, a: u8, b: u8) -> u8 {
        let (a, b) = (a == b'1', b == b'1');
        let bit = match self {
            Bitwise::And => a && b,
            Bitwise::Or => a || b,
            Bitwise::Xor => a != b,
        };
        if bit { b'1' } else { b'0' }
    }

    /// PostgreSQL's name of the operation in its error.
    fn verb(self) -> &'static str {
        match self {
            Bitwise::And => "AND",
            Bitwise::Or => "OR",
            Bitwise::Xor => "XOR",
        }
    }
}

/// The lowest `length` bits of `value` in two's complement, the sign repeated beyond 64 bits (PostgreSQL's
/// `bitfromint8`; an `integer` widened to 64 bits keeps its sign, as `bitfromint4` repeats it).
pub fn from_integer(value: i64, length: u32) -> String {
    (0..length)
        .rev()
        .map(|position| {
            let set = if position >= 64 {
                value < 0
            } else {
                (value >> position) & 1 == 1
            };
            if set { '1' } else { '0' }
        })
        .collect()
}

/// `bits` as a two's complement integer of `width` bits (32 or 64), as PostgreSQL's `bittoint4` /
/// `bittoint8`: longer strings are out of range, shorter ones are the low bits.
pub fn to_integer(bits: &[u8], width: i64) -> Result<i64> {
    if bits.len() as i64 > width {
        return Err(Error::user(
            "22003",
            if width <= 32 {
                "integer out of range"
            } else {
                "bigint out of range"
            },
        ));
    }
    let mut value: u64 = 0;
    for &bit in bits {
        value = (value << 1) | u64::from(bit == b'1');
    }
    Ok(if width <= 32 {
        i64::from(value as u32 as i32)
    } else {
        value as i64
    })
}

/// The bit of `bits` at `index` (0 the leftmost), as PostgreSQL's `bitgetbit`.
fn bit_index(bits: &[u8], index: i64) -> Result<usize> {
    usize::try_from(index)
        .ok()
        .filter(|&index| index < bits.len())
        .ok_or_else(|| {
            Error::user(
                "2202E",
                format!(
                    "bit index {index} out of valid range (0..{})",
                    bits.len() as i64 - 1
                ),
            )
        })
}

/// The byte and the bit in it of bit `index` of `bytes` (bit 0 the lowest of the first byte), as
/// PostgreSQL's `byteaGetBit`.
fn byte_bit_index(bytes: &[u8], index: i64) -> Result<(usize, u8)> {
    let total = bytes.len() as i64 * 8;
    if !(0..total).contains(&index) {
        return Err(Error::user(
            "2202E",
            format!("index {index} out of valid range, 0..{}", total - 1),
        ));
    }
    Ok(((index / 8) as usize, (index % 8) as u8))
}

fn new_bit(value: i64) -> Result<bool> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Error::user("22023", "new bit must be 0 or 1")),
    }
}

/// `bits` shifted left by `count` places (right for a negative count), as PostgreSQL's `bitshiftleft`.
pub fn shift_left(bits: &[u8], count: i64) -> String {
    let length = bits.len() as i64;
    (0..length)
        .map(|position| {
            let source = position.saturating_add(count);
            if (0..length).contains(&source) {
                bits[source as usize] as char
            } else {
                '0'
            }
        })
        .collect()
}

const FUNCTIONS: &[(&str, Operation)] = &[
    ("qubedb_bit", Operation::Fixed),
    ("qubedb_varbit", Operation::Varying),
    ("binary_quantize", Operation::Quantize),
    ("hamming_distance", Operation::Hamming),
    ("jaccard_distance", Operation::Jaccard),
    ("bit_count", Operation::Count),
    ("qubedb_bit_and", Operation::Bitwise(Bitwise::And)),
    ("qubedb_bit_or", Operation::Bitwise(Bitwise::Or)),
    ("qubedb_bit_xor", Operation::Bitwise(Bitwise::Xor)),
    ("qubedb_bit_shift_left", Operation::ShiftLeft),
    ("qubedb_bit_shift_right", Operation::ShiftRight),
    ("qubedb_bitwise_not", Operation::Not),
    ("get_bit", Operation::GetBit),
    ("set_bit", Operation::SetBit),
    ("qubedb_bit_to_integer", Operation::ToInteger),
];

/// Whether `expr` computes a bit string: a call of one of the functions above that returns one. (A bit
/// string computes as text; a column of one says so in its field's metadata instead.)
///
/// `operand_is_bit_string` says whether an argument is a bit string (for `~` and `set_bit`, which
/// also take integers or bytea).
pub(crate) fn is_bit_string_call(
    expr: &datafusion::logical_expr::Expr,
    operand_is_bit_string: &dyn Fn(&datafusion::logical_expr::Expr) -> bool,
) -> bool {
    let datafusion::logical_expr::Expr::ScalarFunction(call) = expr else {
        return false;
    };
    let Some((_, operation)) = FUNCTIONS.iter().find(|(name, _)| *name == call.func.name()) else {
        return false;
    };
    match operation {
        Operation::Fixed
        | Operation::Varying
        | Operation::Quantize
        | Operation::Bitwise(_)
        | Operation::ShiftLeft
        | Operation::ShiftRight => true,
        // Of a bit string, not of an integer or a bytea.
        Operation::Not | Operation::SetBit => call.args.first().is_some_and(operand_is_bit_string),
        _ => false,
    }
}

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
        .map_or(Operation::Varying, |(_, operation)| *operation);
    Arc::new(ScalarUDF::new_from_impl(BitFunction {
        name,
        operation,
        signature: Signature::user_defined(Volatility::Immutable),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct BitFunction {
    name: &'static str,
    operation: Operation,
    signature: Signature,
}

impl ScalarUDFImpl for BitFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arguments: &[ArrowType]) -> DataFusionResult<Vec<ArrowType>> {
        let text = |argument: &ArrowType| is_text(argument) || argument.is_null();
        let binary = |argument: &ArrowType| {
            matches!(
                argument,
                ArrowType::Binary | ArrowType::LargeBinary | ArrowType::BinaryView
            )
        };
        let integer = |argument: &ArrowType| argument.is_integer() || argument.is_null();
        match (self.operation, arguments) {
            (Operation::Fixed, [value, _]) if value.is_integer() => {
                Ok(vec![ArrowType::Int64, ArrowType::Int64])
            }
            (Operation::Not, [value]) if value.is_integer() => Ok(vec![value.clone()]),
            (Operation::ToInteger, [value, width]) if text(value) && integer(width) => {
                Ok(vec![ArrowType::Utf8, ArrowType::Int64])
            }
            (Operation::Not, [value]) if text(value) => Ok(vec![ArrowType::Utf8]),
            (Operation::GetBit, [value, index])
                if integer(index) && (text(value) || binary(value)) =>
            {
                Ok(vec![string_or_binary(value), ArrowType::Int64])
            }
            (Operation::SetBit, [value, index, bit])
                if integer(index) && integer(bit) && (text(value) || binary(value)) =>
            {
                Ok(vec![
                    string_or_binary(value),
                    ArrowType::Int64,
                    ArrowType::Int64,
                ])
            }
            (Operation::Fixed, [value, _]) | (Operation::Varying, [value, _]) if text(value) => {
                Ok(vec![ArrowType::Utf8, ArrowType::Int64])
            }
            (Operation::Varying, [value]) if text(value) => Ok(vec![ArrowType::Utf8]),
            (Operation::Quantize, [vector]) if is_vector(vector) => Ok(vec![vector.clone()]),
            (Operation::Hamming | Operation::Jaccard, [a, b]) if text(a) && text(b) => {
                Ok(vec![ArrowType::Utf8, ArrowType::Utf8])
            }
            (Operation::Count, [bits]) if text(bits) => Ok(vec![ArrowType::Utf8]),
            (Operation::Bitwise(_), [a, b]) if text(a) && text(b) => {
                Ok(vec![ArrowType::Utf8, ArrowType::Utf8])
            }
            (Operation::ShiftLeft | Operation::ShiftRight, [bits, count])
                if text(bits) && (count.is_integer() || count.is_null()) =>
            {
                Ok(vec![ArrowType::Utf8, ArrowType::Int64])
            }
            _ => Err(no_such_function(self.name, arguments)),
        }
    }

    fn return_type(&self, arguments: &[ArrowType]) -> DataFusionResult<ArrowType> {
        Ok(match self.operation {
            Operation::Not | Operation::SetBit => {
                arguments.first().cloned().unwrap_or(ArrowType::Utf8)
            }
            Operation::GetBit => ArrowType::Int32,
            Operation::ToInteger => ArrowType::Int64,
            Operation::Fixed
            | Operation::Varying
            | Operation::Quantize
            | Operation::Bitwise(_)
            | Operation::ShiftLeft
            | Operation::ShiftRight => ArrowType::Utf8,
            Operation::Hamming | Operation::Jaccard => ArrowType::Float64,
            Operation::Count => ArrowType::Int64,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DataFusionResult<ColumnarValue> {
        invoke_arrays(args, |arrays, rows| self.compute(arrays, rows))
    }
}

impl BitFunction {
    fn compute(&self, arrays: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
        let strings = |index: usize| -> Result<&StringArray> {
            arrays[index]
                .as_string_opt::<i32>()
                .ok_or_else(|| Error::internal(format!("{} of a non-text argument", self.name)))
        };
        match self.operation {
            Operation::Fixed if arrays[0].data_type().is_integer() => {
                let values = arrays[0]
                    .as_primitive_opt::<Int64Type>()
                    .ok_or_else(|| Error::internal("an integer cast to bit that is not an int8"))?;
                let lengths = arrays[1]
                    .as_primitive_opt::<Int64Type>()
                    .ok_or_else(|| Error::internal("a bit string length that is not an integer"))?;
                let mut out = Vec::with_capacity(rows);
                for row in 0..rows {
                    if values.is_null(row) || lengths.is_null(row) {
                        out.push(None);
                        continue;
                    }
                    let length = check_type_modifier(lengths.value(row), false)?;
                    out.push(Some(from_integer(values.value(row), length)));
                }
                Ok(Arc::new(StringArray::from(out)))
            }
            Operation::Not => self.not(&arrays[0]),
            Operation::ToInteger => Ok(Arc::new(Int64Array::from(with_integer(
                strings(0)?,
                &arrays[1],
                rows,
                to_integer,
            )?))),
            Operation::GetBit | Operation::SetBit => self.get_or_set_bit(arrays, rows),
            Operation::Fixed | Operation::Varying => {
                let varying = self.operation == Operation::Varying;
                let lengths = arrays
                    .get(1)
                    .map(|array| {
                        array.as_primitive_opt::<Int64Type>().ok_or_else(|| {
                            Error::internal("a bit string length that is not an integer")
                        })
                    })
                    .transpose()?;
                let values = strings(0)?;
                let mut out = Vec::with_capacity(rows);
                for row in 0..rows {
                    if values.is_null(row) {
                        out.push(None);
                        continue;
                    }
                    let length = match lengths {
                        Some(lengths) if !lengths.is_null(row) => {
                            Some(check_type_modifier(lengths.value(row), varying)?)
                        }
                        _ => None,
                    };
                    out.push(Some(input(values.value(row), length, varying)?));
                }
                Ok(Arc::new(StringArray::from(out)))
            }
            Operation::Quantize => {
                let vectors = Vectors::new(arrays[0].as_ref())?;
                let out: StringArray = (0..rows)
                    .map(|row| {
                        vectors.get(row).map(|elements| {
                            elements
                                .iter()
                                .map(|&element| if element > 0.0 { '1' } else { '0' })
                                .collect::<String>()
                        })
                    })
                    .collect();
                Ok(Arc::new(out))
            }
            Operation::Hamming => Ok(Arc::new(Float64Array::from(pairwise(
                strings(0)?,
                strings(1)?,
                rows,
                hamming_distance,
            )?))),
            Operation::Jaccard => Ok(Arc::new(Float64Array::from(pairwise(
                strings(0)?,
                strings(1)?,
                rows,
                jaccard_distance,
            )?))),
            Operation::Bitwise(operation) => {
                let bits = pairwise(strings(0)?, strings(1)?, rows, |a, b| {
                    if a.len() != b.len() {
                        return Err(Error::user(
                            "22026",
                            format!("cannot {} bit strings of different sizes", operation.verb()),
                        ));
                    }
                    Ok(a.iter()
                        .zip(b)
                        .map(|(&x, &y)| operation.apply(x, y) as char)
                        .collect::<String>())
                })?;
                Ok(Arc::new(StringArray::from(bits)))
            }
            Operation::ShiftLeft | Operation::ShiftRight => {
                let left = self.operation == Operation::ShiftLeft;
                Ok(Arc::new(StringArray::from(with_integer(
                    strings(0)?,
                    &arrays[1],
                    rows,
                    |bits, count| {
                        Ok(shift_left(
                            bits,
                            if left { count } else { count.saturating_neg() },
                        ))
                    },
                )?)))
            }
            Operation::Count => {
                let values = strings(0)?;
                let mut out = Vec::with_capacity(rows);
                for row in 0..rows {
                    if values.is_null(row) {
                        out.push(None);
                        continue;
                    }
                    let bits = bits_of(values.value(row))?;
                    out.push(Some(bits.iter().filter(|&&bit| bit == b'1').count() as i64));
                }
                Ok(Arc::new(Int64Array::from(out)))
            }
        }
    }
}

impl BitFunction {
    /// `~value`: each bit of a bit string, or of an integer, inverted.
    fn not(&self, array: &ArrayRef) -> Result<ArrayRef> {
        if array.data_type().is_integer() {
            let widened = cast(array, &ArrowType::Int64)?;
            let inverted: Int64Array = widened
                .as_primitive::<Int64Type>()
                .iter()
                .map(|value| value.map(|value| !value))
                .collect();
            return Ok(cast(&(Arc::new(inverted) as ArrayRef), array.data_type())?);
        }
        let values = array
            .as_string_opt::<i32>()
            .ok_or_else(|| Error::internal("~ of a non-text argument"))?;
        let mut out = Vec::with_capacity(values.len());
        for value in values.iter() {
            out.push(match value {
                None => None,
                Some(text) => Some(
                    bits_of(text)?
                        .iter()
                        .map(|&bit| if bit == b'1' { '0' } else { '1' })
                        .collect::<String>(),
                ),
            });
        }
        Ok(Arc::new(StringArray::from(out)))
    }

    /// `get_bit(value, index)` and `set_bit(value, index, bit)` of bit strings and of bytea.
    fn get_or_set_bit(&self, arrays: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
        let integers = |index: usize| -> Result<&datafusion::arrow::array::Int64Array> {
            arrays[index]
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| Error::internal(format!("{} of a non-integer index", self.name)))
        };
        let indexes = integers(1)?;
        let new_bits = if self.operation == Operation::SetBit {
            Some(integers(2)?)
        } else {
            None
        };
        let null_at = |row: usize| {
            arrays[0].is_null(row)
                || indexes.is_null(row)
                || new_bits.is_some_and(|bits| bits.is_null(row))
        };
        if let Some(values) = arrays[0].as_string_opt::<i32>() {
            let mut got = Vec::with_capacity(rows);
            let mut set = Vec::with_capacity(rows);
            for row in 0..rows {
                if null_at(row) {
                    got.push(None);
                    set.push(None);
                    continue;
                }
                let bits = bits_of(values.value(row))?;
                let position = bit_index(bits, indexes.value(row))?;
                match new_bits {
                    None => got.push(Some(i32::from(bits[position] == b'1'))),
                    Some(new_bits) => {
                        let mut changed = bits.to_vec();
                        changed[position] = if new_bit(new_bits.value(row))? {
                            b'1'
                        } else {
                            b'0'
                        };
                        set.push(Some(String::from_utf8(changed).map_err(|_| {
                            Error::internal("a bit string that is not ASCII")
                        })?));
                    }
                }
            }
            return Ok(match new_bits {
                None => Arc::new(Int32Array::from(got)),
                Some(_) => Arc::new(StringArray::from(set)),
            });
        }
        let values = arrays[0]
            .as_binary_opt::<i32>()
            .ok_or_else(|| Error::internal(format!("{} of a non-binary value", self.name)))?;
        let mut got = Vec::with_capacity(rows);
        let mut set: Vec<Option<Vec<u8>>> = Vec::with_capacity(rows);
        for row in 0..rows {
            if null_at(row) {
                got.push(None);
                set.push(None);
                continue;
            }
            let bytes = values.value(row);
            let (byte, bit) = byte_bit_index(bytes, indexes.value(row))?;
            match new_bits {
                None => got.push(Some(i32::from((bytes[byte] >> bit) & 1))),
                Some(new_bits) => {
                    let mut changed = bytes.to_vec();
                    if new_bit(new_bits.value(row))? {
                        changed[byte] |= 1 << bit;
                    } else {
                        changed[byte] &= !(1 << bit);
                    }
                    set.push(Some(changed));
                }
            }
        }
        Ok(match new_bits {
            None => Arc::new(Int32Array::from(got)),
            Some(_) => Arc::new(BinaryArray::from_iter(set)),
        })
    }
}

/// The text type (as `Utf8`) or the binary type (as `Binary`) a bit function reads `argument` as.
fn string_or_binary(argument: &ArrowType) -> ArrowType {
    match argument {
        ArrowType::Binary | ArrowType::LargeBinary | ArrowType::BinaryView => ArrowType::Binary,
        _ => ArrowType::Utf8,
    }
}

/// `compute` of each row's bit string and integer (`integers`, an int8 array); NULL where either is.
fn with_integer<T>(
    bits: &StringArray,
    integers: &ArrayRef,
    rows: usize,
    compute: impl Fn(&[u8], i64) -> Result<T>,
) -> Result<Vec<Option<T>>> {
    let integers = integers
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| Error::internal("a bit-string function's integer that is not an int8"))?;
    (0..rows)
        .map(|row| {
            if bits.is_null(row) || integers.is_null(row) {
                return Ok(None);
            }
            compute(bits_of(bits.value(row))?, integers.value(row)).map(Some)
        })
        .collect()
}

/// `compute` of each row's two bit strings; NULL where either is.
fn pairwise<T>(
    left: &StringArray,
    right: &StringArray,
    rows: usize,
    compute: impl Fn(&[u8], &[u8]) -> Result<T>,
) -> Result<Vec<Option<T>>> {
    (0..rows)
        .map(|row| {
            if left.is_null(row) || right.is_null(row) {
                return Ok(None);
            }
            compute(bits_of(left.value(row))?, bits_of(right.value(row))?).map(Some)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_reads_as_postgresql() {
        assert_eq!(parse("1010").expect("binary"), "1010");
        assert_eq!(parse("b101").expect("binary with b"), "101");
        assert_eq!(parse("x1F").expect("hexadecimal"), "00011111");
        assert_eq!(parse("").expect("empty"), "");
        let error = parse("1021").expect_err("bad digit");
        assert_eq!(
            (error.code, error.message.as_str()),
            ("22P02", "\"2\" is not a valid binary digit")
        );
        let error = parse("xg").expect_err("bad hexadecimal digit");
        assert_eq!(error.message, "\"g\" is not a valid hexadecimal digit");
        let error = input("101", Some(4), false).expect_err("length");
        assert_eq!(
            (error.code, error.message.as_str()),
            ("22026", "bit string length 3 does not match type bit(4)")
        );
        let error = input("101", Some(2), true).expect_err("too long");
        assert_eq!(error.message, "bit string too long for type bit varying(2)");
        assert_eq!(input("10", Some(2), true).expect("fits"), "10");
        assert_eq!(
            check_type_modifier(0, false).expect_err("zero").code,
            "22023"
        );
    }

    #[test]
    fn distances_are_pgvectors() {
        let distance = |a: &str, b: &str| hamming_distance(a.as_bytes(), b.as_bytes());
        assert_eq!(distance("111", "111").expect("same"), 0.0);
        assert_eq!(distance("111", "100").expect("two"), 2.0);
        assert_eq!(distance("", "").expect("empty"), 0.0);
        let error = distance("111", "00").expect_err("lengths");
        assert_eq!(
            (error.code, error.message.as_str()),
            ("22000", "different bit lengths 3 and 2")
        );
        let jaccard = |a: &str, b: &str| jaccard_distance(a.as_bytes(), b.as_bytes());
        assert_eq!(jaccard("1111", "1111").expect("same"), 0.0);
        assert_eq!(jaccard("1111", "1110").expect("one"), 0.25);
        assert_eq!(jaccard("1100", "1000").expect("half"), 0.5);
        assert_eq!(jaccard("1111", "0000").expect("none"), 1.0);
        assert_eq!(jaccard("", "").expect("empty"), 1.0);
    }

    #[test]
    fn integers_become_their_lowest_bits() {
        assert_eq!(from_integer(5, 8), "00000101");
        assert_eq!(from_integer(5, 1), "1");
        assert_eq!(from_integer(-1, 4), "1111");
        assert_eq!(from_integer(-2, 66), format!("11{}0", "1".repeat(63)));
        assert_eq!(from_integer(i64::MAX, 65), format!("00{}", "1".repeat(63)));
        assert_eq!(to_integer(b"101", 32).expect("fits"), 5);
        assert_eq!(to_integer(&[b'1'; 32], 32).expect("fits"), -1);
        assert_eq!(
            to_integer(&[b'1'; 33], 32).expect_err("too long").code,
            "22003"
        );
        assert_eq!(bit_index(b"101", 2).expect("in range"), 2);
        assert_eq!(
            bit_index(b"101", 3).expect_err("past the end").message,
            "bit index 3 out of valid range (0..2)"
        );
        assert_eq!(byte_bit_index(&[0, 0], 9).expect("in range"), (1, 1));
        assert_eq!(
            byte_bit_index(&[0], -1).expect_err("negative").message,
            "index -1 out of valid range, 0..7"
        );
    }

    #[test]
    fn shifts_keep_the_length() {
        assert_eq!(shift_left(b"10110", 2), "11000");
        assert_eq!(shift_left(b"10110", -2), "00101");
        assert_eq!(shift_left(b"10110", 9), "00000");
        assert_eq!(shift_left(b"10110", i64::MIN), "00000");
        assert_eq!(shift_left(b"", 1), "");
    }
}
