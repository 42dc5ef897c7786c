//! Vectors (`VECTOR(n)`, pgvector's type): their limits, storage form and distance kernels.
//!
//! A vector is a list of `f32`. In a row it is stored as its elements' little-endian bytes (4 per
//! dimension, no header: the slot's length gives the dimension); in a key (a B-tree index on a vector
//! column) as each element's order-preserving 4 bytes behind a `0x01` marker, closed by `0x00`, so
//! keys order as pgvector's `vector_cmp`: element by element, then the shorter first.
//!
//! A `HALFVEC(n)` holds half-precision elements: in a row, 2 little-endian bytes each; everywhere else
//! (values, keys, the HNSW graph) as the `f32`s they convert to exactly, so the kernels below serve both
//! types and measure what pgvector measures (it converts halves to `float` before every sum).
//!
//! The distances are pgvector's: L2 (`<->`), negative inner product (`<#>`), cosine (`<=>`) and L1
//! (`<+>`). Sums run in `f32` lanes, as pgvector's vectorized loops do, through SimSIMD's kernels
//! (chosen at run time for the CPU: AVX2/FMA, AVX-512, NEON); the results are `f64`. L1 has no SimSIMD
//! kernel for `f32`: its loop keeps eight independent lanes so the compiler vectorizes it.

use simsimd::SpatialSimilarity;

/// Most dimensions a vector may have (pgvector's limit).
pub const VECTOR_DIMENSIONS_MAX: usize = 16_000;

/// The two element types of vectors: `vector`'s `f32` and `halfvec`'s half-precision floats.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum VectorKind {
    #[default]
    Single,
    Half,
}

impl VectorKind {
    /// The SQL type's name: `vector` or `halfvec`.
    pub fn type_name(self) -> &'static str {
        match self {
            VectorKind::Single => "vector",
            VectorKind::Half => "halfvec",
        }
    }
}

/// `value` rounded to the nearest half-precision float, as an `f32` (infinite past ±65,504).
pub fn round_to_half(value: f32) -> f32 {
    half::f16::from_f32(value).to_f32()
}

/// The stored form of a halfvec: each element's half-precision little-endian bytes.
pub fn to_half_bytes(elements: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(elements.len() * 2);
    for &element in elements {
        bytes.extend_from_slice(&half::f16::from_f32(element).to_le_bytes());
    }
    bytes
}

/// The elements of a stored halfvec; `None` when the length is odd.
pub fn from_half_bytes(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(2)
            .map(|chunk| half::f16::from_le_bytes([chunk[0], chunk[1]]).to_f32())
            .collect(),
    )
}

/// How a distance is measured: one per pgvector operator class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Metric {
    /// `<->`, `vector_l2_ops`: Euclidean distance.
    L2,
    /// `<#>`, `vector_ip_ops`: the inner product, negated (smaller is nearer).
    InnerProduct,
    /// `<=>`, `vector_cosine_ops`: one minus the cosine similarity.
    Cosine,
    /// `<+>`, `vector_l1_ops`: taxicab distance.
    L1,
}

impl Metric {
    /// The SQL operator that measures this distance.
    pub fn operator(self) -> &'static str {
        match self {
            Metric::L2 => "<->",
            Metric::InnerProduct => "<#>",
            Metric::Cosine => "<=>",
            Metric::L1 => "<+>",
        }
    }

    /// The pgvector operator class of an HNSW index over vectors of `kind` ordering by this distance.
    pub fn operator_class(self, kind: VectorKind) -> &'static str {
        match (kind, self) {
            (VectorKind::Single, Metric::L2) => "vector_l2_ops",
            (VectorKind::Single, Metric::InnerProduct) => "vector_ip_ops",
            (VectorKind::Single, Metric::Cosine) => "vector_cosine_ops",
            (VectorKind::Single, Metric::L1) => "vector_l1_ops",
            (VectorKind::Half, Metric::L2) => "halfvec_l2_ops",
            (VectorKind::Half, Metric::InnerProduct) => "halfvec_ip_ops",
            (VectorKind::Half, Metric::Cosine) => "halfvec_cosine_ops",
            (VectorKind::Half, Metric::L1) => "halfvec_l1_ops",
        }
    }

    /// The metric and element type of a pgvector operator class name.
    pub fn of_operator_class(name: &str) -> Option<(Metric, VectorKind)> {
        [VectorKind::Single, VectorKind::Half]
            .into_iter()
            .flat_map(|kind| {
                [Metric::L2, Metric::InnerProduct, Metric::Cosine, Metric::L1]
                    .map(|metric| (metric, kind))
            })
            .find(|(metric, kind)| metric.operator_class(*kind) == name)
    }

    /// The distance between `a` and `b` (of equal length), as the SQL operator returns it.
    pub fn distance(self, a: &[f32], b: &[f32]) -> f64 {
        match self {
            Metric::L2 => l2_squared(a, b).sqrt(),
            Metric::InnerProduct => -inner_product(a, b),
            Metric::Cosine => cosine_distance(a, b),
            Metric::L1 => l1_distance(a, b),
        }
    }
}

/// The squared Euclidean distance.
pub fn l2_squared(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    f32::l2sq(a, b).unwrap_or(f64::NAN)
}

/// The inner product.
pub fn inner_product(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    f32::dot(a, b).unwrap_or(f64::NAN)
}

/// One minus the cosine similarity, the similarity kept within [-1, 1] (rounding can step past it);
/// NaN when either vector is zero, as pgvector. The NaN is the positive one: `0.0 / 0.0` gives a
/// negative NaN on x86, which sorts before every number, where PostgreSQL sorts NaN after them.
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let similarity = inner_product(a, b) / (inner_product(a, a) * inner_product(b, b)).sqrt();
    if similarity.is_nan() {
        return f64::NAN;
    }
    1.0 - similarity.clamp(-1.0, 1.0)
}

/// The taxicab distance.
pub fn l1_distance(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut lanes = [0f32; 8];
    let mut a_chunks = a.chunks_exact(8);
    let mut b_chunks = b.chunks_exact(8);
    for (a_chunk, b_chunk) in (&mut a_chunks).zip(&mut b_chunks) {
        for lane in 0..8 {
            lanes[lane] += (a_chunk[lane] - b_chunk[lane]).abs();
        }
    }
    let mut sum: f32 = lanes.iter().sum();
    for (x, y) in a_chunks.remainder().iter().zip(b_chunks.remainder()) {
        sum += (x - y).abs();
    }
    f64::from(sum)
}

/// The Euclidean norm, summed in `f64` (as pgvector's `vector_norm`, which cannot overflow `f32`).
pub fn norm(a: &[f32]) -> f64 {
    a.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// The elements of a stored vector (its little-endian bytes); `None` when the length is not a whole
/// number of elements.
pub fn from_bytes(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .collect(),
    )
}

/// The stored form of a vector: its elements' little-endian bytes.
pub fn to_bytes(elements: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(elements.len() * 4);
    for element in elements {
        bytes.extend_from_slice(&element.to_le_bytes());
    }
    bytes
}

/// Order-preserving bits of an `f32` (as keycode's doubles: -0 as 0, negatives all flipped).
pub(crate) fn ordered_f32(value: f32) -> [u8; 4] {
    let value = if value == 0.0 { 0.0 } else { value };
    let bits = value.to_bits();
    let bits = if bits >> 31 == 1 {
        !bits
    } else {
        bits ^ (1u32 << 31)
    };
    bits.to_be_bytes()
}

/// The `f32` of [`ordered_f32`]'s bytes.
pub(crate) fn unordered_f32(bytes: [u8; 4]) -> f32 {
    let bits = u32::from_be_bytes(bytes);
    let bits = if bits >> 31 == 1 {
        bits ^ (1u32 << 31)
    } else {
        !bits
    };
    f32::from_bits(bits)
}

/// pgvector's `vector_cmp`: element by element, then the shorter first.
pub fn compare(a: &[f32], b: &[f32]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        if x < y {
            return std::cmp::Ordering::Less;
        }
        if x > y {
            return std::cmp::Ordering::Greater;
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halfvecs_store_two_bytes_per_element_and_round_to_half() {
        assert_eq!(round_to_half(1.23456), 1.234375);
        assert_eq!(round_to_half(65519.0), 65504.0);
        assert!(round_to_half(65520.0).is_infinite());
        let elements = [1.5, -2.0, 0.0, 65504.0];
        let bytes = to_half_bytes(&elements);
        assert_eq!(bytes.len(), 8);
        assert_eq!(from_half_bytes(&bytes), Some(elements.to_vec()));
        assert_eq!(from_half_bytes(&bytes[..3]), None);
        assert_eq!(
            Metric::of_operator_class("halfvec_cosine_ops"),
            Some((Metric::Cosine, VectorKind::Half))
        );
        assert_eq!(
            Metric::of_operator_class("vector_l1_ops"),
            Some((Metric::L1, VectorKind::Single))
        );
        assert_eq!(Metric::of_operator_class("sparsevec_l2_ops"), None);
        assert_eq!(
            Metric::InnerProduct.operator_class(VectorKind::Half),
            "halfvec_ip_ops"
        );
    }

    #[test]
    fn distances_match_their_definitions() {
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0];
        let b = [0.5f32, -2.0, 3.5, 0.0, 5.0, 1.0, -7.0, 8.0, 2.0, -1.0, 0.25];
        let l2: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from(x - y).powi(2))
            .sum::<f64>()
            .sqrt();
        let dot: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
        let l1: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from((x - y).abs()))
            .sum();
        assert!((Metric::L2.distance(&a, &b) - l2).abs() < 1e-4);
        assert!((Metric::InnerProduct.distance(&a, &b) + dot).abs() < 1e-3);
        assert!((Metric::L1.distance(&a, &b) - l1).abs() < 1e-4);
        let cosine = 1.0 - dot / (norm(&a) * norm(&b));
        assert!((Metric::Cosine.distance(&a, &b) - cosine).abs() < 1e-6);
        assert_eq!(Metric::Cosine.distance(&a, &a), 0.0);
        let undefined = Metric::Cosine.distance(&a, &[0.0; 11]);
        assert!(undefined.is_nan());
        // Positive, so that it sorts after every distance as PostgreSQL's NaN does.
        assert!(undefined.is_sign_positive());
        assert_eq!(
            undefined.total_cmp(&f64::INFINITY),
            std::cmp::Ordering::Greater
        );
    }

    #[test]
    fn ordered_bits_sort_as_floats() {
        let values = [
            f32::NEG_INFINITY,
            -3.5,
            -1e-30,
            0.0,
            1e-30,
            2.0,
            f32::INFINITY,
        ];
        for pair in values.windows(2) {
            assert!(ordered_f32(pair[0]) < ordered_f32(pair[1]), "{pair:?}");
        }
        for value in values {
            assert_eq!(unordered_f32(ordered_f32(value)), value);
        }
        assert_eq!(ordered_f32(-0.0), ordered_f32(0.0));
    }

    #[test]
    fn bytes_round_trip() {
        let elements = [1.5f32, -2.25, 1e-40];
        assert_eq!(
            from_bytes(&to_bytes(&elements)).as_deref(),
            Some(&elements[..])
        );
        assert_eq!(from_bytes(&[0, 0, 0]), None);
    }
}
