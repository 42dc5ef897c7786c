//! Sparse vectors (`SPARSEVEC(n)`, pgvector's type): their limits, storage form, order and distances.
//!
//! A sparse vector has a number of dimensions and its non-zero elements, each an index (0-based here;
//! the text form `{1:1.5,3:2}/5` counts from 1) and an `f32`, indices ascending. In a row it is stored
//! as pgvector's binary form without its unused word: dimensions and count (`u32`, little-endian),
//! then the indices (`u32` each), then the values (`f32` each). In a key see [`SparseVector::encode_key`].
//!
//! The distances are pgvector's for `sparsevec`: the two index lists are merged, so a distance costs
//! the non-zero elements, not the dimensions; sums run in `f32` as pgvector's loops do, results are
//! `f64`.

use std::cmp::Ordering;

use crate::vector::{Metric, ordered_f32, unordered_f32};

/// Most dimensions a sparse vector may have (pgvector's limit).
pub const SPARSE_DIMENSIONS_MAX: u32 = 1_000_000_000;

/// Most non-zero elements a sparse vector may have (pgvector's limit).
pub const SPARSE_NONZERO_MAX: usize = 16_000;

/// A sparse vector (see the module docs).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct SparseVector {
    pub dimensions: u32,
    /// The non-zero elements' indices, 0-based, ascending.
    pub indices: Vec<u32>,
    /// The non-zero elements, one per index.
    pub values: Vec<f32>,
}

impl SparseVector {
    /// The non-zero elements of `elements` (a dense vector).
    pub fn from_dense(elements: &[f32]) -> SparseVector {
        let mut sparse = SparseVector {
            dimensions: u32::try_from(elements.len()).unwrap_or(u32::MAX),
            ..SparseVector::default()
        };
        for (index, &value) in elements.iter().enumerate() {
            if value != 0.0 {
                sparse
                    .indices
                    .push(u32::try_from(index).unwrap_or(u32::MAX));
                sparse.values.push(value);
            }
        }
        sparse
    }

    /// Every element, zeros included.
    pub fn to_dense(&self) -> Vec<f32> {
        let mut elements = vec![0.0; self.dimensions as usize];
        for (&index, &value) in self.indices.iter().zip(&self.values) {
            if let Some(element) = elements.get_mut(index as usize) {
                *element = value;
            }
        }
        elements
    }

    /// The stored form (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(8 + self.indices.len() * 8);
        bytes.extend_from_slice(&self.dimensions.to_le_bytes());
        bytes.extend_from_slice(&(self.indices.len() as u32).to_le_bytes());
        for index in &self.indices {
            bytes.extend_from_slice(&index.to_le_bytes());
        }
        for value in &self.values {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes
    }

    /// A sparse vector from its stored form; `None` when the bytes are not one (wrong length,
    /// indices out of order or past the dimensions).
    pub fn from_bytes(bytes: &[u8]) -> Option<SparseVector> {
        let word = |at: usize| -> Option<[u8; 4]> { bytes.get(at..at + 4)?.try_into().ok() };
        let dimensions = u32::from_le_bytes(word(0)?);
        let count = u32::from_le_bytes(word(4)?) as usize;
        if bytes.len() != 8 + count * 8 {
            return None;
        }
        let indices: Vec<u32> = (0..count)
            .map(|position| word(8 + position * 4).map(u32::from_le_bytes))
            .collect::<Option<_>>()?;
        let values: Vec<f32> = (0..count)
            .map(|position| word(8 + count * 4 + position * 4).map(f32::from_le_bytes))
            .collect::<Option<_>>()?;
        let sparse = SparseVector {
            dimensions,
            indices,
            values,
        };
        sparse.is_well_formed().then_some(sparse)
    }

    /// True when the indices ascend strictly, lie within the dimensions and match the values.
    pub fn is_well_formed(&self) -> bool {
        self.indices.len() == self.values.len()
            && self.indices.windows(2).all(|pair| pair[0] < pair[1])
            && self
                .indices
                .last()
                .is_none_or(|&last| last < self.dimensions)
    }

    /// The Euclidean norm, summed in `f64` (pgvector's `l2_norm`).
    pub fn norm(&self) -> f64 {
        // Folded from +0 (a float `sum` starts from -0, which a vector without elements would
        // print).
        self.values
            .iter()
            .fold(0.0, |sum, &x| sum + f64::from(x) * f64::from(x))
            .sqrt()
    }

    /// Calls `pair` with the two elements at every index where either vector has a non-zero one.
    fn merge(&self, other: &SparseVector, mut pair: impl FnMut(f32, f32)) {
        let (mut a, mut b) = (0, 0);
        while a < self.indices.len() || b < other.indices.len() {
            let left = self.indices.get(a).copied().unwrap_or(u32::MAX);
            let right = other.indices.get(b).copied().unwrap_or(u32::MAX);
            match left.cmp(&right) {
                Ordering::Less => {
                    pair(self.values[a], 0.0);
                    a += 1;
                }
                Ordering::Greater => {
                    pair(0.0, other.values[b]);
                    b += 1;
                }
                Ordering::Equal => {
                    pair(self.values[a], other.values[b]);
                    a += 1;
                    b += 1;
                }
            }
        }
    }

    /// The squared Euclidean distance (the vectors have the same dimensions).
    pub fn l2_squared(&self, other: &SparseVector) -> f64 {
        let mut sum = 0f32;
        self.merge(other, |x, y| sum += (x - y) * (x - y));
        f64::from(sum)
    }

    /// The inner product.
    pub fn inner_product(&self, other: &SparseVector) -> f64 {
        let mut sum = 0f32;
        self.merge(other, |x, y| sum += x * y);
        f64::from(sum)
    }

    /// One minus the cosine similarity, kept within [-1, 1]; NaN when either vector is zero.
    pub fn cosine_distance(&self, other: &SparseVector) -> f64 {
        let (mut dot, mut left, mut right) = (0f32, 0f32, 0f32);
        self.merge(other, |x, y| {
            dot += x * y;
            left += x * x;
            right += y * y;
        });
        let similarity = f64::from(dot) / (f64::from(left) * f64::from(right)).sqrt();
        if similarity.is_nan() {
            return f64::NAN;
        }
        1.0 - similarity.clamp(-1.0, 1.0)
    }

    /// The taxicab distance.
    pub fn l1_distance(&self, other: &SparseVector) -> f64 {
        let mut sum = 0f32;
        self.merge(other, |x, y| sum += (x - y).abs());
        f64::from(sum)
    }

    /// The distance `metric` measures, as its SQL operator returns it.
    pub fn distance(&self, metric: Metric, other: &SparseVector) -> f64 {
        match metric {
            Metric::L2 => self.l2_squared(other).sqrt(),
            Metric::InnerProduct => -self.inner_product(other),
            Metric::Cosine => self.cosine_distance(other),
            Metric::L1 => self.l1_distance(other),
        }
    }

    /// pgvector's `sparsevec_cmp`: as the dense vectors compare element by element (the first
    /// non-zero element one has where the other has zero decides by its sign), then the fewer
    /// dimensions first.
    pub fn compare(&self, other: &SparseVector) -> Ordering {
        let shared = self.indices.len().min(other.indices.len());
        for position in 0..shared {
            let (left, right) = (self.values[position], other.values[position]);
            match self.indices[position].cmp(&other.indices[position]) {
                Ordering::Less => return sign_order(left),
                Ordering::Greater => return sign_order(right).reverse(),
                Ordering::Equal => match left.partial_cmp(&right) {
                    Some(Ordering::Equal) | None => {}
                    Some(order) => return order,
                },
            }
        }
        if self.indices.len() > shared && self.indices[shared] < other.dimensions {
            return sign_order(self.values[shared]);
        }
        if other.indices.len() > shared && other.indices[shared] < self.dimensions {
            return sign_order(other.values[shared]).reverse();
        }
        self.dimensions.cmp(&other.dimensions)
    }

    /// The key form, ordered bytewise as [`SparseVector::compare`] orders values: each element as
    /// a tag (0x00 negative, 0x02 positive), its index (ascending for a negative element, inverted
    /// for a positive one, so that at the first index where one vector has an element and the other
    /// has not, the element's sign decides) and its order-preserving bits; then 0x00, the
    /// dimensions and four zero bytes. That end sorts after a negative element at an index below
    /// the dimensions and before one at or past them (where pgvector compares the dimensions,
    /// which are then larger), and before every positive element; no element's bits are four zero
    /// bytes, so the end is told from an element.
    pub fn encode_key(&self, out: &mut Vec<u8>) {
        for (&index, &value) in self.indices.iter().zip(&self.values) {
            if value < 0.0 {
                out.push(0x00);
                out.extend_from_slice(&index.to_be_bytes());
            } else {
                out.push(0x02);
                out.extend_from_slice(&(!index).to_be_bytes());
            }
            out.extend_from_slice(&ordered_f32(value));
        }
        out.push(0x00);
        out.extend_from_slice(&self.dimensions.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
    }

    /// The sparse vector of [`SparseVector::encode_key`]'s bytes at `position`, which it advances;
    /// `None` when they end early.
    pub(crate) fn decode_key(bytes: &[u8], position: &mut usize) -> Option<SparseVector> {
        let mut take = |length: usize| -> Option<&[u8]> {
            let taken = bytes.get(*position..*position + length)?;
            *position += length;
            Some(taken)
        };
        let mut sparse = SparseVector::default();
        loop {
            let tag = take(1)?[0];
            let word: [u8; 4] = take(4)?.try_into().ok()?;
            let value: [u8; 4] = take(4)?.try_into().ok()?;
            match tag {
                0x00 if value == [0; 4] => {
                    sparse.dimensions = u32::from_be_bytes(word);
                    return Some(sparse);
                }
                0x00 => sparse.indices.push(u32::from_be_bytes(word)),
                _ => sparse.indices.push(!u32::from_be_bytes(word)),
            }
            sparse.values.push(unordered_f32(value));
        }
    }
}

/// How a vector with a non-zero element `value` compares with one that has zero there.
fn sign_order(value: f32) -> Ordering {
    if value < 0.0 {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sparse(dimensions: u32, elements: &[(u32, f32)]) -> SparseVector {
        SparseVector {
            dimensions,
            indices: elements.iter().map(|(index, _)| *index).collect(),
            values: elements.iter().map(|(_, value)| *value).collect(),
        }
    }

    #[test]
    fn distances_match_the_dense_vectors() {
        let a = sparse(6, &[(0, 1.0), (2, -2.0), (5, 3.5)]);
        let b = sparse(6, &[(2, 4.0), (3, 1.0)]);
        let (dense_a, dense_b) = (a.to_dense(), b.to_dense());
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine, Metric::L1] {
            let expected = metric.distance(&dense_a, &dense_b);
            let actual = a.distance(metric, &b);
            assert!(
                (expected - actual).abs() < 1e-6,
                "{metric:?}: {expected} vs {actual}"
            );
        }
        assert_eq!(SparseVector::from_dense(&dense_a), a);
        assert!(a.distance(Metric::Cosine, &sparse(6, &[])).is_nan());
    }

    #[test]
    fn stored_form_round_trips_and_is_checked() {
        let a = sparse(1_000_000, &[(3, 1.5), (999_999, -2.0)]);
        assert_eq!(SparseVector::from_bytes(&a.to_bytes()), Some(a.clone()));
        let mut bytes = a.to_bytes();
        bytes.pop();
        assert_eq!(SparseVector::from_bytes(&bytes), None);
        let past_the_end = sparse(3, &[(3, 1.0)]);
        assert_eq!(SparseVector::from_bytes(&past_the_end.to_bytes()), None);
    }

    #[test]
    fn keys_order_as_compare_and_as_the_dense_vectors() {
        let values = [
            sparse(2, &[]),
            sparse(2, &[(1, -1.0)]),
            sparse(3, &[(0, 1.0), (2, -3.0e38)]),
            sparse(3, &[(0, 1.0), (2, 2.0)]),
            sparse(3, &[(0, 1.0)]),
            sparse(4, &[]),
            sparse(4, &[(0, 1.0)]),
            sparse(4, &[(0, -1.0)]),
            sparse(4, &[(1, 2.0)]),
            sparse(4, &[(1, -2.0)]),
            sparse(4, &[(0, 1.0), (3, 5.0)]),
            sparse(4, &[(0, 1.0), (3, -5.0)]),
            sparse(4, &[(0, 1.0), (1, 0.5)]),
            sparse(4, &[(2, 1.0), (3, 1.0)]),
            sparse(4, &[(3, -0.5)]),
        ];
        for a in &values {
            for b in &values {
                let dense = crate::vector::compare(&a.to_dense(), &b.to_dense());
                if a.dimensions == b.dimensions {
                    assert_eq!(a.compare(b), dense, "{a:?} vs {b:?}");
                }
                let dense = a.compare(b);
                let (mut key_a, mut key_b) = (Vec::new(), Vec::new());
                a.encode_key(&mut key_a);
                b.encode_key(&mut key_b);
                assert_eq!(key_a.cmp(&key_b), dense, "keys of {a:?} vs {b:?}");
                let mut position = 0;
                assert_eq!(
                    SparseVector::decode_key(&key_a, &mut position).as_ref(),
                    Some(a)
                );
                assert_eq!(position, key_a.len());
            }
        }
        // pgvector: a negative element past the other's dimensions leaves the order to them.
        assert_eq!(
            sparse(3, &[(2, -1.0)]).compare(&sparse(2, &[])),
            Ordering::Greater
        );
        assert_eq!(
            sparse(3, &[(1, -1.0)]).compare(&sparse(2, &[])),
            Ordering::Less
        );
    }
}
