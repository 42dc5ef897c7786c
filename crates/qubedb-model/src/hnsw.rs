//! HNSW: the approximate nearest-neighbour index of vector columns, stored in the key-value store.
//!
//! A hierarchical navigable small world graph (Malkov and Yashunin, 2016): every indexed row is a node
//! with a level drawn from a geometric distribution; on each layer up to its level it links to its
//! nearest neighbours (`m` of them, `2 * m` on layer 0), chosen by the heuristic that keeps a link only
//! when the neighbour is nearer to the node than to any neighbour already kept. A search starts at the
//! entry point (a node of the top level), walks greedily down the upper layers and explores layer 0
//! best-first, keeping the `ef` nearest nodes found.
//!
//! # Storage
//!
//! Each node is one key-value pair, written in the transaction that writes its row, so the graph
//! commits and rolls back with the rows and a search reads the graph of its own snapshot:
//!
//! ```text
//!   11 <index id u64> 00                     entry point: level u8, primary key (keycode)
//!   11 <index id u64> 01 <primary key>       node: level u8, dimensions u32, f32 elements (LE),
//!                                            per layer 0..=level: count u16, then per neighbour
//!                                            its primary key (length u16, keycode)
//! ```
//!
//! A node is named by its row's primary key, so no counter is shared between inserting
//! transactions and a search's results are row keys. The pairs live in the index's own key range
//! (`Key::Index`), so dropping, truncating and rebuilding the index treat them as any index's entries.
//!
//! # Deletes
//!
//! Deleting a row leaves its node in the graph (as pgvector leaves it until VACUUM): other nodes keep
//! their paths through it, and a search returns its key, which the scan then finds no row for. An
//! update that keeps the vector leaves the node as it is; one that changes it relinks the node.
//! REINDEX rebuilds the graph from the live rows.
//!
//! # Levels
//!
//! A node's level comes from a hash of its primary key, not from a random generator: inserts need no
//! shared state and a rebuild makes the same levels.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};

use qubedb_kv::{ReadView, Transaction};

use crate::error::{Error, Result};
use crate::keys::Key;
use crate::vector::{self, Metric};

/// Default links per node on the upper layers (pgvector's `m`).
pub const M_DEFAULT: usize = 16;
/// Default candidate list size while building (pgvector's `ef_construction`).
pub const EF_CONSTRUCTION_DEFAULT: usize = 64;
/// Default candidate list size while searching (pgvector's `hnsw.ef_search`).
pub const EF_SEARCH_DEFAULT: usize = 40;
/// Highest level a node may get.
pub const LEVEL_MAX: usize = 16;
/// Most dimensions an HNSW index accepts (pgvector stops at 2,000; the node is one value here, so the
/// limit is the vector type's).
pub const HNSW_DIMENSIONS_MAX: usize = vector::VECTOR_DIMENSIONS_MAX;

const NODE_FORMAT: u8 = 1;
const TAG_ENTRY: u8 = 0x00;
const TAG_NODE: u8 = 0x01;

/// How an index is built and what it measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswConfig {
    pub m: usize,
    pub ef_construction: usize,
    pub metric: Metric,
}

impl HnswConfig {
    /// Most links on `layer`.
    fn links_max(&self, layer: usize) -> usize {
        if layer == 0 { self.m * 2 } else { self.m }
    }
}

/// Where a search reads nodes from: a transaction (its writes included) or a read view.
pub trait NodeReader {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
}

impl NodeReader for Transaction {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.get(key)?)
    }
}

impl NodeReader for ReadView {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.get(key)?)
    }
}

/// The key of the entry point of `index`.
pub fn entry_key(index: u64) -> Vec<u8> {
    Key::Index(index, vec![TAG_ENTRY]).encode()
}

/// The key of the node of the row whose primary-key keycode is `primary_key`.
pub fn node_key(index: u64, primary_key: &[u8]) -> Vec<u8> {
    let mut tail = Vec::with_capacity(1 + primary_key.len());
    tail.push(TAG_NODE);
    tail.extend_from_slice(primary_key);
    Key::Index(index, tail).encode()
}

/// The level of the node of `primary_key` in an index of `m` links: geometric with ratio `1 / m`.
pub fn level_of(primary_key: &[u8], m: usize) -> usize {
    // FNV-1a, then a 64-bit finalizer (splitmix64) to spread short keys.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in primary_key {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    // A uniform draw in (0, 1].
    let uniform = ((hash >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let multiplier = 1.0 / (m.max(2) as f64).ln();
    ((-uniform.ln() * multiplier).floor() as usize).min(LEVEL_MAX)
}

/// A node as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub level: usize,
    /// The vector as indexed (normalized for cosine distance).
    pub vector: Vec<f32>,
    /// Per layer `0..=level`, the neighbours' primary keys.
    pub neighbors: Vec<Vec<Vec<u8>>>,
}

impl Node {
    pub fn encode(&self) -> Vec<u8> {
        let links: usize = self
            .neighbors
            .iter()
            .flatten()
            .map(|key| key.len() + 2)
            .sum();
        let mut out =
            Vec::with_capacity(6 + self.vector.len() * 4 + links + 2 * self.neighbors.len());
        out.push(NODE_FORMAT);
        out.push(self.level as u8);
        out.extend_from_slice(&(self.vector.len() as u32).to_le_bytes());
        for element in &self.vector {
            out.extend_from_slice(&element.to_le_bytes());
        }
        for layer in &self.neighbors {
            out.extend_from_slice(&(layer.len() as u16).to_le_bytes());
            for key in layer {
                out.extend_from_slice(&(key.len() as u16).to_le_bytes());
                out.extend_from_slice(key);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Node> {
        let corrupt = || Error::corruption("HNSW node is malformed");
        let mut reader = Bytes { bytes, at: 0 };
        if reader.take(1).ok_or_else(corrupt)?[0] != NODE_FORMAT {
            return Err(Error::corruption("HNSW node has an unknown format"));
        }
        let level = reader.take(1).ok_or_else(corrupt)?[0] as usize;
        let dimensions = u32::from_le_bytes(
            reader
                .take(4)
                .ok_or_else(corrupt)?
                .try_into()
                .map_err(|_| corrupt())?,
        ) as usize;
        let vector = vector::from_bytes(reader.take(dimensions * 4).ok_or_else(corrupt)?)
            .ok_or_else(corrupt)?;
        let mut neighbors = Vec::with_capacity(level + 1);
        for _ in 0..=level {
            let count = reader.u16().ok_or_else(corrupt)? as usize;
            let mut layer = Vec::with_capacity(count);
            for _ in 0..count {
                let length = reader.u16().ok_or_else(corrupt)? as usize;
                layer.push(reader.take(length).ok_or_else(corrupt)?.to_vec());
            }
            neighbors.push(layer);
        }
        Ok(Node {
            level,
            vector,
            neighbors,
        })
    }
}

struct Bytes<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, length: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(length)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
}

/// The entry point: the top level and the node at it.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    level: usize,
    primary_key: Vec<u8>,
}

impl Entry {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.primary_key.len());
        out.push(self.level as u8);
        out.extend_from_slice(&self.primary_key);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Entry> {
        let (&level, primary_key) = bytes
            .split_first()
            .ok_or_else(|| Error::corruption("HNSW entry point is empty"))?;
        Ok(Entry {
            level: level as usize,
            primary_key: primary_key.to_vec(),
        })
    }
}

/// The vector as the index keeps it: normalized for cosine distance (whose distance is then one
/// minus the inner product); `None` for a vector cosine distance cannot index (all zeros).
pub fn indexed_form(metric: Metric, elements: &[f32]) -> Option<Vec<f32>> {
    if metric != Metric::Cosine {
        return Some(elements.to_vec());
    }
    let norm = vector::norm(elements);
    if norm == 0.0 || !norm.is_finite() {
        return None;
    }
    Some(
        elements
            .iter()
            .map(|&element| (f64::from(element) / norm) as f32)
            .collect(),
    )
}

/// The distance between two vectors in their indexed forms.
fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
    match metric {
        Metric::L2 => vector::l2_squared(a, b),
        Metric::InnerProduct => -vector::inner_product(a, b),
        Metric::Cosine => 1.0 - vector::inner_product(a, b),
        Metric::L1 => vector::l1_distance(a, b),
    }
}

/// A node found, by distance (ordered by distance, then key, for determinism).
#[derive(Debug, Clone)]
struct Found {
    distance: f64,
    primary_key: Vec<u8>,
}

impl PartialEq for Found {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Found {}

impl PartialOrd for Found {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Found {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then_with(|| self.primary_key.cmp(&other.primary_key))
    }
}

/// Reads and decodes nodes of one index, remembering them for the operation's length.
struct Nodes<'a, R: NodeReader + ?Sized> {
    reader: &'a R,
    index: u64,
    cache: std::collections::HashMap<Vec<u8>, Option<std::rc::Rc<Node>>>,
}

impl<'a, R: NodeReader + ?Sized> Nodes<'a, R> {
    fn new(reader: &'a R, index: u64) -> Self {
        Nodes {
            reader,
            index,
            cache: std::collections::HashMap::new(),
        }
    }

    fn get(&mut self, primary_key: &[u8]) -> Result<Option<std::rc::Rc<Node>>> {
        if let Some(node) = self.cache.get(primary_key) {
            return Ok(node.clone());
        }
        let node = match self.reader.read(&node_key(self.index, primary_key))? {
            Some(bytes) => Some(std::rc::Rc::new(Node::decode(&bytes)?)),
            None => None,
        };
        self.cache.insert(primary_key.to_vec(), node.clone());
        Ok(node)
    }

    fn forget(&mut self, primary_key: &[u8]) {
        self.cache.remove(primary_key);
    }
}

/// The `ef` nearest nodes to `query` found on `layer` from `entry`, nearest first.
fn search_layer<R: NodeReader + ?Sized>(
    nodes: &mut Nodes<'_, R>,
    metric: Metric,
    query: &[f32],
    entry: &[Found],
    ef: usize,
    layer: usize,
) -> Result<Vec<Found>> {
    let mut visited: HashSet<Vec<u8>> = entry
        .iter()
        .map(|found| found.primary_key.clone())
        .collect();
    // Candidates to expand, nearest first; results kept, farthest first.
    let mut candidates: BinaryHeap<std::cmp::Reverse<Found>> =
        entry.iter().cloned().map(std::cmp::Reverse).collect();
    let mut results: BinaryHeap<Found> = entry.iter().cloned().collect();
    while let Some(std::cmp::Reverse(nearest)) = candidates.pop() {
        let farthest = results.peek().map_or(f64::INFINITY, |found| found.distance);
        if nearest.distance > farthest && results.len() >= ef {
            break;
        }
        let Some(node) = nodes.get(&nearest.primary_key)? else {
            continue;
        };
        let Some(links) = node.neighbors.get(layer) else {
            continue;
        };
        for neighbor in links {
            if !visited.insert(neighbor.clone()) {
                continue;
            }
            let Some(other) = nodes.get(neighbor)? else {
                continue;
            };
            if other.vector.len() != query.len() {
                continue;
            }
            let distance = distance(metric, query, &other.vector);
            let farthest = results.peek().map_or(f64::INFINITY, |found| found.distance);
            if results.len() < ef || distance < farthest {
                let found = Found {
                    distance,
                    primary_key: neighbor.clone(),
                };
                candidates.push(std::cmp::Reverse(found.clone()));
                results.push(found);
                if results.len() > ef {
                    results.pop();
                }
            }
        }
    }
    Ok(results.into_sorted_vec())
}

/// Of `candidates` (nearest first), the ones to link to: each kept only if it is nearer to the node
/// than to every one kept before it (hnswlib's heuristic), at most `links_max`.
fn select_neighbors<R: NodeReader + ?Sized>(
    nodes: &mut Nodes<'_, R>,
    metric: Metric,
    candidates: &[Found],
    links_max: usize,
) -> Result<Vec<Found>> {
    let mut kept: Vec<(Found, std::rc::Rc<Node>)> = Vec::with_capacity(links_max);
    for candidate in candidates {
        if kept.len() >= links_max {
            break;
        }
        let Some(node) = nodes.get(&candidate.primary_key)? else {
            continue;
        };
        let diverse = kept.iter().all(|(_, other)| {
            other.vector.len() != node.vector.len()
                || distance(metric, &node.vector, &other.vector) >= candidate.distance
        });
        if diverse {
            kept.push((candidate.clone(), node));
        }
    }
    Ok(kept.into_iter().map(|(found, _)| found).collect())
}

/// Greedy descent from the entry point to `layer + 1`'s nearest node, then the entry list for `layer`.
fn descend<R: NodeReader + ?Sized>(
    nodes: &mut Nodes<'_, R>,
    metric: Metric,
    query: &[f32],
    entry: &Entry,
    down_to: usize,
) -> Result<Option<Vec<Found>>> {
    let Some(node) = nodes.get(&entry.primary_key)? else {
        return Ok(None);
    };
    if node.vector.len() != query.len() {
        return Ok(None);
    }
    let mut nearest = vec![Found {
        distance: distance(metric, query, &node.vector),
        primary_key: entry.primary_key.clone(),
    }];
    let mut layer = entry.level;
    while layer > down_to {
        nearest = search_layer(nodes, metric, query, &nearest, 1, layer)?;
        layer -= 1;
    }
    Ok(Some(nearest))
}

/// Adds the row with primary key `primary_key` and vector `elements` to the graph of `index`, in
/// `transaction`. A vector the metric cannot index (a zero vector under cosine distance) is left out;
/// a node already there with the same vector is left as it is.
pub fn insert(
    transaction: &mut Transaction,
    index: u64,
    config: &HnswConfig,
    primary_key: &[u8],
    elements: &[f32],
) -> Result<()> {
    let Some(query) = indexed_form(config.metric, elements) else {
        return Ok(());
    };
    let key = node_key(index, primary_key);
    if let Some(existing) = transaction.get(&key)?
        && Node::decode(&existing)?.vector == query
    {
        return Ok(());
    }
    let level = level_of(primary_key, config.m);
    let entry = match transaction.get(&entry_key(index))? {
        Some(bytes) => Some(Entry::decode(&bytes)?),
        None => None,
    };
    let mut neighbors: Vec<Vec<Vec<u8>>> = vec![Vec::new(); level + 1];
    let mut changed: Vec<(Vec<u8>, Node)> = Vec::new();
    {
        let mut nodes = Nodes::new(&*transaction, index);
        // (When the node is the entry point itself, being relinked with a new vector, the search
        // starts from its old links and leaves it out of its own neighbours.)
        if let Some(entry) = &entry
            && let Some(mut nearest) = descend(
                &mut nodes,
                config.metric,
                &query,
                entry,
                level.min(entry.level),
            )?
        {
            for layer in (0..=level.min(entry.level)).rev() {
                let found = search_layer(
                    &mut nodes,
                    config.metric,
                    &query,
                    &nearest,
                    config.ef_construction,
                    layer,
                )?;
                let found: Vec<Found> = found
                    .into_iter()
                    .filter(|found| found.primary_key != primary_key)
                    .collect();
                let chosen =
                    select_neighbors(&mut nodes, config.metric, &found, config.links_max(layer))?;
                neighbors[layer] = chosen
                    .iter()
                    .map(|found| found.primary_key.clone())
                    .collect();
                // Link back, pruning a neighbour's list that grows past its maximum.
                for link in &chosen {
                    let Some(node) = nodes.get(&link.primary_key)? else {
                        continue;
                    };
                    let mut node = changed
                        .iter()
                        .find(|(key, _)| *key == link.primary_key)
                        .map(|(_, node)| node.clone())
                        .unwrap_or_else(|| (*node).clone());
                    let Some(links) = node.neighbors.get_mut(layer) else {
                        continue;
                    };
                    if links.iter().any(|existing| existing == primary_key) {
                        continue;
                    }
                    links.push(primary_key.to_vec());
                    if links.len() > config.links_max(layer) {
                        let mut scored = Vec::with_capacity(links.len());
                        for other in links.iter() {
                            let other_vector = if other == primary_key {
                                Some(query.clone())
                            } else {
                                nodes.get(other)?.map(|other| other.vector.clone())
                            };
                            if let Some(other_vector) = other_vector
                                && other_vector.len() == node.vector.len()
                            {
                                scored.push(Found {
                                    distance: distance(config.metric, &node.vector, &other_vector),
                                    primary_key: other.clone(),
                                });
                            }
                        }
                        scored.sort();
                        let kept = select_with_vectors(
                            &mut nodes,
                            config.metric,
                            &scored,
                            config.links_max(layer),
                            primary_key,
                            &query,
                        )?;
                        node.neighbors[layer] = kept;
                    }
                    match changed.iter_mut().find(|(key, _)| *key == link.primary_key) {
                        Some((_, existing)) => *existing = node,
                        None => changed.push((link.primary_key.clone(), node)),
                    }
                }
                nearest = found;
                if nearest.is_empty() {
                    break;
                }
            }
        }
        for (key, _) in &changed {
            nodes.forget(key);
        }
    }
    for (neighbor, node) in changed {
        transaction.put(node_key(index, &neighbor), node.encode())?;
    }
    let node = Node {
        level,
        vector: query,
        neighbors,
    };
    transaction.put(key, node.encode())?;
    let higher = entry.as_ref().is_none_or(|entry| level > entry.level);
    if higher {
        transaction.put(
            entry_key(index),
            Entry {
                level,
                primary_key: primary_key.to_vec(),
            }
            .encode(),
        )?;
    }
    Ok(())
}

/// [`select_neighbors`] where one candidate (the node being inserted) is not stored yet.
fn select_with_vectors<R: NodeReader + ?Sized>(
    nodes: &mut Nodes<'_, R>,
    metric: Metric,
    candidates: &[Found],
    links_max: usize,
    new_key: &[u8],
    new_vector: &[f32],
) -> Result<Vec<Vec<u8>>> {
    let mut kept: Vec<(Vec<u8>, Vec<f32>, f64)> = Vec::with_capacity(links_max);
    for candidate in candidates {
        if kept.len() >= links_max {
            break;
        }
        let vector = if candidate.primary_key == new_key {
            new_vector.to_vec()
        } else {
            match nodes.get(&candidate.primary_key)? {
                Some(node) => node.vector.clone(),
                None => continue,
            }
        };
        let diverse = kept.iter().all(|(_, other, _)| {
            other.len() != vector.len() || distance(metric, &vector, other) >= candidate.distance
        });
        if diverse {
            kept.push((candidate.primary_key.clone(), vector, candidate.distance));
        }
    }
    Ok(kept.into_iter().map(|(key, _, _)| key).collect())
}

/// A search of one index, widened on demand: [`Search::next_batch`] first returns the `ef` nearest
/// nodes found, then each call searches again with twice the list and returns the nodes not returned
/// before (pgvector's iterative scan, relaxed order: each batch is in distance order, batches follow
/// each other).
pub struct Search<R: NodeReader> {
    reader: R,
    index: u64,
    metric: Metric,
    query: Option<Vec<f32>>,
    ef: usize,
    returned: HashSet<Vec<u8>>,
    exhausted: bool,
}

impl<R: NodeReader> Search<R> {
    /// A search of `index` for the nodes nearest `query` (as given: normalized here for cosine
    /// distance), starting with a candidate list of `ef`.
    pub fn new(reader: R, index: u64, metric: Metric, query: &[f32], ef: usize) -> Self {
        Search {
            reader,
            index,
            metric,
            query: indexed_form(metric, query),
            ef: ef.max(1),
            returned: HashSet::new(),
            exhausted: false,
        }
    }

    /// The primary keys of the next nodes, nearest first; empty once the graph has no more.
    pub fn next_batch(&mut self) -> Result<Vec<Vec<u8>>> {
        if self.exhausted {
            return Ok(Vec::new());
        }
        let Some(query) = &self.query else {
            self.exhausted = true;
            return Ok(Vec::new());
        };
        let entry = match self.reader.read(&entry_key(self.index))? {
            Some(bytes) => Entry::decode(&bytes)?,
            None => {
                self.exhausted = true;
                return Ok(Vec::new());
            }
        };
        let mut nodes = Nodes::new(&self.reader, self.index);
        let Some(nearest) = descend(&mut nodes, self.metric, query, &entry, 0)? else {
            self.exhausted = true;
            return Ok(Vec::new());
        };
        let found = search_layer(&mut nodes, self.metric, query, &nearest, self.ef, 0)?;
        if found.len() < self.ef {
            // The search reached every node it could: nothing more to find.
            self.exhausted = true;
        }
        self.ef = self.ef.saturating_mul(2);
        let fresh: Vec<Vec<u8>> = found
            .into_iter()
            .filter(|found| !self.returned.contains(&found.primary_key))
            .map(|found| found.primary_key)
            .collect();
        self.returned.extend(fresh.iter().cloned());
        if fresh.is_empty() {
            self.exhausted = true;
        }
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keycode::encode_values;
    use crate::types::Value;

    fn primary_key(id: i64) -> Vec<u8> {
        encode_values(&[Value::Integer(id)])
    }

    /// Points of a few Gaussian-ish clusters, from a fixed linear congruential generator.
    fn points(count: usize, dimensions: usize) -> Vec<Vec<f32>> {
        let mut state: u64 = 42;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f64 / (1u64 << 31) as f64) as f32
        };
        let centers: Vec<Vec<f32>> = (0..8)
            .map(|_| (0..dimensions).map(|_| next() * 10.0).collect())
            .collect();
        (0..count)
            .map(|i| {
                let center = &centers[i % centers.len()];
                center.iter().map(|c| c + (next() - 0.5) * 2.0).collect()
            })
            .collect()
    }

    #[test]
    fn node_round_trips() {
        let node = Node {
            level: 1,
            vector: vec![1.0, -2.5],
            neighbors: vec![vec![primary_key(1), primary_key(2)], vec![primary_key(3)]],
        };
        assert_eq!(Node::decode(&node.encode()).unwrap(), node);
        assert!(Node::decode(&node.encode()[..7]).is_err());
    }

    #[test]
    fn levels_are_geometric() {
        let levels: Vec<usize> = (0..10_000).map(|i| level_of(&primary_key(i), 16)).collect();
        let above = levels.iter().filter(|&&level| level >= 1).count();
        // Expected 1/16 of 10,000 = 625.
        assert!((450..800).contains(&above), "{above}");
    }

    #[test]
    fn search_finds_the_nearest_with_high_recall() {
        let store = qubedb_kv::Store::in_memory().unwrap();
        let data = points(1500, 16);
        for metric in [Metric::L2, Metric::Cosine, Metric::InnerProduct, Metric::L1] {
            let config = HnswConfig {
                m: 8,
                ef_construction: 40,
                metric,
            };
            let index = metric as u64 + 1;
            let mut transaction = store.begin().unwrap();
            for (id, point) in data.iter().enumerate() {
                insert(
                    &mut transaction,
                    index,
                    &config,
                    &primary_key(id as i64),
                    point,
                )
                .unwrap();
            }
            transaction.commit().unwrap();
            let view = store.begin().unwrap().read_view();
            let mut hits = 0;
            let queries = 40;
            for q in 0..queries {
                let query = &data[(q * 37) % data.len()];
                let mut exact: Vec<(f64, usize)> = data
                    .iter()
                    .enumerate()
                    .map(|(id, point)| (metric.distance(query, point), id))
                    .collect();
                exact.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let truth: HashSet<Vec<u8>> = exact[..10]
                    .iter()
                    .map(|(_, id)| primary_key(*id as i64))
                    .collect();
                let mut search = Search::new(view.clone(), index, metric, query, 40);
                let found = search.next_batch().unwrap();
                hits += found[..10]
                    .iter()
                    .filter(|key| truth.contains(*key))
                    .count();
            }
            let recall = hits as f64 / (queries * 10) as f64;
            assert!(recall >= 0.9, "{metric:?}: recall {recall}");
        }
    }

    #[test]
    fn widening_returns_every_node_once() {
        let store = qubedb_kv::Store::in_memory().unwrap();
        let data = points(300, 4);
        let config = HnswConfig {
            m: 4,
            ef_construction: 16,
            metric: Metric::L2,
        };
        let mut transaction = store.begin().unwrap();
        for (id, point) in data.iter().enumerate() {
            insert(&mut transaction, 1, &config, &primary_key(id as i64), point).unwrap();
        }
        transaction.commit().unwrap();
        let view = store.begin().unwrap().read_view();
        let mut search = Search::new(view, 1, Metric::L2, &data[0], 10);
        let mut seen = HashSet::new();
        loop {
            let batch = search.next_batch().unwrap();
            if batch.is_empty() {
                break;
            }
            for key in batch {
                assert!(seen.insert(key), "a node came twice");
            }
        }
        assert!(seen.len() >= 290, "{} of 300 reached", seen.len());
    }
}
