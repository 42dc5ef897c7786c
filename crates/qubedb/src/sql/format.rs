//! Values as PostgreSQL prints them in text format: `t`/`f`, shortest round-trip floats with `Infinity` and
//! `NaN`, `NUMERIC` with its scale, ISO dates and times, `+00` on `TIMESTAMPTZ` (sessions run in UTC),
//! intervals in the `postgres` style (`1 year 2 mons 3 days 04:05:06`), `BYTEA` as `\x` hex, `jsonb`
//! as its JSON text.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Date64Array, Decimal128Array,
    Float16Array, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array,
    IntervalDayTimeArray, IntervalMonthDayNanoArray, IntervalYearMonthArray, UInt8Array,
    UInt16Array, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType as ArrowType, IntervalUnit, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::convert::TYPE_METADATA_KEY;

/// Formats every value of a column; `None` for NULL.
pub struct ColumnFormatter<'a> {
    array: &'a ArrayRef,
    /// Unconstrained NUMERIC prints without trailing zeros.
    trim_numeric: bool,
    /// `int2vector` / `oidvector` print their elements separated by spaces.
    vector: bool,
}

impl<'a> ColumnFormatter<'a> {
    /// A formatter for `array`, whose field metadata (if any) names its SQL type.
    pub fn new(array: &'a ArrayRef, metadata: &std::collections::HashMap<String, String>) -> Self {
        let type_name = metadata.get(TYPE_METADATA_KEY).map(String::as_str);
        ColumnFormatter {
            array,
            trim_numeric: type_name == Some("numeric"),
            vector: matches!(type_name, Some("int2vector" | "oidvector")),
        }
    }

    /// The text of row `row`, or `None` for NULL.
    pub fn format(&self, row: usize) -> Option<String> {
        if self.array.is_null(row) {
            return None;
        }
        if self.vector
            && let Some(list) = self
                .array
                .as_any()
                .downcast_ref::<datafusion::arrow::array::ListArray>()
        {
            let elements = list.value(row);
            let texts: Vec<String> = (0..elements.len())
                .filter(|&element| !elements.is_null(element))
                .map(|element| format_value(&elements, element, false))
                .collect();
            return Some(texts.join(" "));
        }
        Some(format_value(self.array, row, self.trim_numeric))
    }
}

fn format_value(array: &ArrayRef, row: usize, trim_numeric: bool) -> String {
    let any = array.as_any();
    match array.data_type() {
        ArrowType::Boolean => {
            let value = any.downcast_ref::<BooleanArray>().map(|a| a.value(row));
            if value == Some(true) {
                "t".into()
            } else {
                "f".into()
            }
        }
        ArrowType::Int8 => downcast::<Int8Array>(any).value(row).to_string(),
        ArrowType::Int16 => downcast::<Int16Array>(any).value(row).to_string(),
        ArrowType::Int32 => downcast::<Int32Array>(any).value(row).to_string(),
        ArrowType::Int64 => downcast::<Int64Array>(any).value(row).to_string(),
        ArrowType::UInt8 => downcast::<UInt8Array>(any).value(row).to_string(),
        ArrowType::UInt16 => downcast::<UInt16Array>(any).value(row).to_string(),
        ArrowType::UInt32 => downcast::<UInt32Array>(any).value(row).to_string(),
        ArrowType::UInt64 => downcast::<UInt64Array>(any).value(row).to_string(),
        ArrowType::Float16 => format_f32(downcast::<Float16Array>(any).value(row).to_f32()),
        ArrowType::Float32 => format_f32(downcast::<Float32Array>(any).value(row)),
        ArrowType::Float64 => format_float(downcast::<Float64Array>(any).value(row), 15),
        ArrowType::Decimal128(_, scale) => {
            let text = format_decimal(downcast::<Decimal128Array>(any).value(row), *scale);
            if trim_numeric {
                trim_fraction(text)
            } else {
                text
            }
        }
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => string_value(array, row),
        // jsonb's binary form (see `sql/convert.rs`).
        ArrowType::LargeBinary => {
            qubedb_model::jsonb::Jsonb::new(array.as_binary::<i64>().value(row)).to_text()
        }
        ArrowType::Binary | ArrowType::BinaryView | ArrowType::FixedSizeBinary(_) => {
            let bytes = binary_value(array, row);
            let mut out = String::with_capacity(2 + bytes.len() * 2);
            out.push_str("\\x");
            for byte in bytes {
                out.push_str(&format!("{byte:02x}"));
            }
            out
        }
        ArrowType::Date32 => format_date(i64::from(downcast::<Date32Array>(any).value(row))),
        ArrowType::Date64 => format_date(
            downcast::<Date64Array>(any)
                .value(row)
                .div_euclid(86_400_000),
        ),
        ArrowType::Timestamp(unit, zone) => {
            let raw = timestamp_value(array, row);
            let microseconds = match unit {
                TimeUnit::Second => raw.saturating_mul(1_000_000),
                TimeUnit::Millisecond => raw.saturating_mul(1000),
                TimeUnit::Microsecond => raw,
                TimeUnit::Nanosecond => raw.div_euclid(1000),
            };
            let mut text = format_timestamp(microseconds);
            if zone.is_some() {
                text.push_str("+00");
            }
            text
        }
        ArrowType::Time32(_) | ArrowType::Time64(_) => {
            let microseconds =
                match array.data_type() {
                    ArrowType::Time64(TimeUnit::Nanosecond) => {
                        array
                            .as_primitive::<datafusion::arrow::datatypes::Time64NanosecondType>()
                            .value(row)
                            / 1000
                    }
                    ArrowType::Time64(_) => array
                        .as_primitive::<datafusion::arrow::datatypes::Time64MicrosecondType>()
                        .value(row),
                    ArrowType::Time32(TimeUnit::Second) => {
                        i64::from(
                            array
                                .as_primitive::<datafusion::arrow::datatypes::Time32SecondType>()
                                .value(row),
                        ) * 1_000_000
                    }
                    _ => i64::from(
                        array
                            .as_primitive::<datafusion::arrow::datatypes::Time32MillisecondType>()
                            .value(row),
                    ) * 1000,
                };
            format_time(microseconds)
        }
        ArrowType::Interval(IntervalUnit::MonthDayNano) => {
            let value = downcast::<IntervalMonthDayNanoArray>(any).value(row);
            format_interval(value.months, value.days, value.nanoseconds / 1000)
        }
        ArrowType::Interval(IntervalUnit::YearMonth) => {
            format_interval(downcast::<IntervalYearMonthArray>(any).value(row), 0, 0)
        }
        ArrowType::Interval(IntervalUnit::DayTime) => {
            let value = downcast::<IntervalDayTimeArray>(any).value(row);
            format_interval(0, value.days, i64::from(value.milliseconds) * 1000)
        }
        // vectors (see `sql/vector.rs`).
        data_type if crate::sql::vector::is_vector(data_type) => {
            let values = array.slice(row, 1);
            match crate::sql::vector::Vectors::new(values.as_ref()) {
                Ok(vectors) => vectors
                    .get(0)
                    .map(crate::sql::vector::format)
                    .unwrap_or_default(),
                Err(_) => String::new(),
            }
        }
        ArrowType::List(_) | ArrowType::LargeList(_) | ArrowType::FixedSizeList(..) => {
            format_list(array, row, trim_numeric)
        }
        data_type if crate::sql::sparse_vector::is_sparse(data_type) => {
            crate::sql::sparse_vector::SparseVectors::new(array.as_ref())
                .ok()
                .and_then(|sparse| sparse.get(row))
                .map(|sparse| crate::sql::sparse_vector::format(&sparse))
                .unwrap_or_default()
        }
        ArrowType::Struct(_) => format_record(array, row),
        _ => ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
            .map(|formatter| formatter.value(row).to_string())
            .unwrap_or_else(|error| format!("<{error}>")),
    }
}

fn downcast<T: 'static>(any: &dyn std::any::Any) -> &T {
    any.downcast_ref::<T>()
        .expect("the match on the Arrow data type selects the array type")
}

fn string_value(array: &ArrayRef, row: usize) -> String {
    match array.data_type() {
        ArrowType::LargeUtf8 => array.as_string::<i64>().value(row).to_string(),
        ArrowType::Utf8View => array.as_string_view().value(row).to_string(),
        _ => array.as_string::<i32>().value(row).to_string(),
    }
}

fn binary_value(array: &ArrayRef, row: usize) -> Vec<u8> {
    match array.data_type() {
        ArrowType::LargeBinary => array.as_binary::<i64>().value(row).to_vec(),
        ArrowType::BinaryView => array.as_binary_view().value(row).to_vec(),
        ArrowType::FixedSizeBinary(_) => array.as_fixed_size_binary().value(row).to_vec(),
        _ => array.as_binary::<i32>().value(row).to_vec(),
    }
}

fn timestamp_value(array: &ArrayRef, row: usize) -> i64 {
    use datafusion::arrow::datatypes::{
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    match array.data_type() {
        ArrowType::Timestamp(TimeUnit::Second, _) => {
            array.as_primitive::<TimestampSecondType>().value(row)
        }
        ArrowType::Timestamp(TimeUnit::Millisecond, _) => {
            array.as_primitive::<TimestampMillisecondType>().value(row)
        }
        ArrowType::Timestamp(TimeUnit::Microsecond, _) => {
            array.as_primitive::<TimestampMicrosecondType>().value(row)
        }
        _ => array.as_primitive::<TimestampNanosecondType>().value(row),
    }
}

/// A record as PostgreSQL's `record_out` prints it: `(a,,"b c")` (NULL fields empty; fields that are
/// empty or hold quotes, backslashes, parentheses, commas or spaces quoted, `"` and `\` doubled).
fn format_record(array: &ArrayRef, row: usize) -> String {
    let record = array.as_struct();
    let fields: Vec<String> = record
        .columns()
        .iter()
        .map(|column| {
            if column.is_null(row) {
                return String::new();
            }
            let text = format_value(column, row, false);
            let needs_quotes = text.is_empty()
                || text
                    .chars()
                    .any(|c| matches!(c, '"' | '\\' | '(' | ')' | ',') || c.is_whitespace());
            if needs_quotes {
                format!("\"{}\"", text.replace('"', "\"\"").replace('\\', "\\\\"))
            } else {
                text
            }
        })
        .collect();
    format!("({})", fields.join(","))
}

/// True if a list's elements hold no values at any depth (`[[], []]` prints as `{}`, as PostgreSQL
/// has no empty sub-arrays).
fn list_is_empty(values: &ArrayRef) -> bool {
    match values.data_type() {
        ArrowType::List(_) => {
            let lists = values.as_list::<i32>();
            (0..lists.len()).all(|index| lists.is_null(index) || list_is_empty(&lists.value(index)))
        }
        _ => values.is_empty(),
    }
}

fn format_list(array: &ArrayRef, row: usize, trim_numeric: bool) -> String {
    let values = match array.data_type() {
        ArrowType::LargeList(_) => array.as_list::<i64>().value(row),
        ArrowType::FixedSizeList(..) => array.as_fixed_size_list().value(row),
        _ => array.as_list::<i32>().value(row),
    };
    let nested = matches!(values.data_type(), ArrowType::List(_));
    if nested && list_is_empty(&values) {
        return "{}".to_string();
    }
    let items: Vec<String> = (0..values.len())
        .map(|index| {
            if values.is_null(index) {
                "NULL".to_string()
            } else if nested {
                // A sub-array of a multidimensional array: its braces are part of the syntax.
                format_value(&values, index, trim_numeric)
            } else {
                let text = format_value(&values, index, trim_numeric);
                let needs_quotes = text.is_empty()
                    || text.eq_ignore_ascii_case("null")
                    || text.contains([',', '{', '}', '"', '\\', ' ']);
                if needs_quotes {
                    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
                } else {
                    text
                }
            }
        })
        .collect();
    format!("{{{}}}", items.join(","))
}

/// A float as PostgreSQL 12+ prints it: the shortest text that reads back to the same value, in
/// exponent form when the decimal exponent is below -4 or at least `precision` (15 for double precision,
/// 6 for real).
pub fn format_float(value: f64, precision: i32) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let exponent = value.abs().log10().floor() as i32;
    if exponent < -4 || exponent >= precision {
        format_exponent(&format!("{value:e}"))
    } else {
        format!("{value}")
    }
}

/// A `real` as PostgreSQL prints it (shortest round-trip text, exponent form from 1e6 and below 1e-4).
pub fn format_f32(value: f32) -> String {
    if value.is_nan() || value.is_infinite() || value == 0.0 {
        return format_float(f64::from(value), 6);
    }
    let exponent = value.abs().log10().floor() as i32;
    if !(-4..6).contains(&exponent) {
        format_exponent(&format!("{value:e}"))
    } else {
        format!("{value}")
    }
}

/// Rust's `1.5e-7` → PostgreSQL's `1.5e-07`; `1e20` → `1e+20`.
fn format_exponent(rust: &str) -> String {
    let Some((mantissa, exponent)) = rust.split_once('e') else {
        return rust.to_string();
    };
    let (sign, digits) = match exponent.strip_prefix('-') {
        Some(digits) => ('-', digits),
        None => ('+', exponent),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// A decimal of `units * 10^-scale` with exactly `scale` fraction digits.
pub fn format_decimal(units: i128, scale: i8) -> String {
    if scale <= 0 {
        let mut text = units.to_string();
        if units != 0 {
            text.extend(std::iter::repeat_n('0', scale.unsigned_abs() as usize));
        }
        return text;
    }
    let negative = units < 0;
    let digits = units.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale - digits.len() + 1))
    } else {
        digits
    };
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{}{whole}.{fraction}", if negative { "-" } else { "" })
}

fn trim_fraction(text: String) -> String {
    if !text.contains('.') {
        return text;
    }
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A date from days since 1970-01-01, with ` BC` for years before 1.
pub fn format_date(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    if year <= 0 {
        format!("{:04}-{month:02}-{day:02} BC", 1 - year)
    } else {
        format!("{year:04}-{month:02}-{day:02}")
    }
}

/// A timestamp from microseconds since 1970-01-01 00:00:00.
pub fn format_timestamp(microseconds: i64) -> String {
    let days = microseconds.div_euclid(86_400_000_000);
    let time = microseconds.rem_euclid(86_400_000_000);
    let date = format_date(days);
    match date.strip_suffix(" BC") {
        Some(date) => format!("{date} {} BC", format_time(time)),
        None => format!("{date} {}", format_time(time)),
    }
}

/// A time of day from microseconds since midnight, fraction digits only as needed.
pub fn format_time(microseconds: i64) -> String {
    let seconds = microseconds / 1_000_000;
    let fraction = microseconds % 1_000_000;
    let mut text = format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60
    );
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    text
}

/// An interval in PostgreSQL's default `postgres` output style.
pub fn format_interval(months: i32, days: i32, microseconds: i64) -> String {
    let mut parts = Vec::new();
    let years = months / 12;
    let months = months % 12;
    let plural = |count: i64, unit: &str| {
        if count == 1 {
            format!("{count} {unit}")
        } else {
            format!("{count} {unit}s")
        }
    };
    if years != 0 {
        parts.push(plural(i64::from(years), "year"));
    }
    if months != 0 {
        parts.push(plural(i64::from(months), "mon"));
    }
    if days != 0 {
        parts.push(plural(i64::from(days), "day"));
    }
    if microseconds != 0 || parts.is_empty() {
        let negative = microseconds < 0;
        let magnitude = microseconds.unsigned_abs();
        let seconds = magnitude / 1_000_000;
        let fraction = magnitude % 1_000_000;
        let mut time = format!(
            "{:02}:{:02}:{:02}",
            seconds / 3600,
            (seconds / 60) % 60,
            seconds % 60
        );
        if fraction != 0 {
            time.push('.');
            time.push_str(format!("{fraction:06}").trim_end_matches('0'));
        }
        let any_negative_before = years < 0 || months < 0 || days < 0;
        if negative {
            parts.push(format!("-{time}"));
        } else if any_negative_before && !parts.is_empty() {
            parts.push(format!("+{time}"));
        } else {
            parts.push(time);
        }
    }
    parts.join(" ")
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (year 0 = 1 BC).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_postgresql() {
        assert_eq!(format_float(1.5, 15), "1.5");
        assert_eq!(format_float(0.1 + 0.2, 15), "0.30000000000000004");
        assert_eq!(format_float(1e20, 15), "1e+20");
        assert_eq!(format_float(1.5e-7, 15), "1.5e-07");
        assert_eq!(format_float(123456789012345.0, 15), "123456789012345");
        assert_eq!(format_float(f64::INFINITY, 15), "Infinity");
        assert_eq!(format_f32(3.4f32), "3.4");
    }

    #[test]
    fn decimals_dates_and_intervals() {
        assert_eq!(format_decimal(12345, 2), "123.45");
        assert_eq!(format_decimal(-5, 3), "-0.005");
        assert_eq!(format_decimal(7, 0), "7");
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(-719_163), "0001-12-31 BC");
        assert_eq!(format_date(19_723), "2024-01-01");
        assert_eq!(format_timestamp(1_500_000), "1970-01-01 00:00:01.5");
        assert_eq!(
            format_interval(14, 3, 14_706_000_000),
            "1 year 2 mons 3 days 04:05:06"
        );
        assert_eq!(format_interval(0, 0, 0), "00:00:00");
        assert_eq!(format_interval(0, -1, 0), "-1 days");
    }
}
