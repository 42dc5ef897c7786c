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
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use parking_lot::RwLock;
use qubedb_kv::{ReadView, Transaction};

use crate::error::{Error, Result};
use crate::hnsw_dense::Dense;
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
    pub(crate) fn links_max(&self, layer: usize) -> usize {
        if layer == 0 { self.m * 2 } else { self.m }
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
pub struct Entry {
    pub(crate) level: usize,
    pub(crate) primary_key: Vec<u8>,
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
pub(crate) fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
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

/// Where the graph's nodes are read from: the store as a transaction or a read view sees it, the
/// in-memory copy of the committed graph under a transaction's own writes ([`Overlay`]), or a graph
/// being built ([`GraphState`]).
pub trait NodeReader {
    /// The node of the row with primary key `primary_key`.
    fn node(&self, index: u64, primary_key: &[u8]) -> Result<Option<Arc<Node>>>;
    /// The entry point.
    fn entry(&self, index: u64) -> Result<Option<Entry>>;
}

fn decode_entry_value(bytes: Option<&[u8]>) -> Result<Option<Entry>> {
    bytes.map(Entry::decode).transpose()
}

/// Reads nodes from the store: what `get` returns, decoded.
fn stored_node(
    get: impl FnOnce(&[u8]) -> qubedb_kv::Result<Option<Vec<u8>>>,
    index: u64,
    primary_key: &[u8],
) -> Result<Option<Arc<Node>>> {
    match get(&node_key(index, primary_key))? {
        Some(bytes) => Ok(Some(Arc::new(Node::decode(&bytes)?))),
        None => Ok(None),
    }
}

impl NodeReader for Transaction {
    fn node(&self, index: u64, primary_key: &[u8]) -> Result<Option<Arc<Node>>> {
        stored_node(|key| self.get(key), index, primary_key)
    }

    fn entry(&self, index: u64) -> Result<Option<Entry>> {
        decode_entry_value(self.get(&entry_key(index))?.as_deref())
    }
}

impl NodeReader for ReadView {
    fn node(&self, index: u64, primary_key: &[u8]) -> Result<Option<Arc<Node>>> {
        stored_node(|key| self.get(key), index, primary_key)
    }

    fn entry(&self, index: u64) -> Result<Option<Entry>> {
        decode_entry_value(self.get(&entry_key(index))?.as_deref())
    }
}

/// A graph held in memory: every node decoded, by primary key, and the entry point; for a committed
/// graph also its numbered form for searches (`hnsw_dense.rs`), which [`GraphState::index`] makes and
/// [`Graph::apply`] keeps up to date.
#[derive(Debug, Default)]
pub struct GraphState {
    pub nodes: HashMap<Vec<u8>, Arc<Node>>,
    pub entry: Option<Entry>,
    dense: Option<Dense>,
    /// The commit sequence of the snapshot the graph was loaded from, raised to that of the fresh
    /// snapshot each applied commit is read from: the graph holds nothing committed after it.
    synced_sequence: u64,
    /// True only while every node is known to be of a row that exists with the node's vector (set
    /// by whoever loaded the graph and checked, cleared by a commit that deleted a row or set its
    /// vector to NULL, as those leave the node in place).
    rows_verified: bool,
}

impl GraphState {
    /// Numbers the graph for searches (see `hnsw_dense.rs`).
    pub fn index(&mut self) {
        let mut dense = Dense::default();
        for (primary_key, node) in &self.nodes {
            dense.set(primary_key, Some(node));
        }
        self.dense = Some(dense);
    }

    /// Sets or removes one node, in both forms.
    fn set(&mut self, primary_key: Vec<u8>, node: Option<Arc<Node>>) {
        if let Some(dense) = &mut self.dense {
            dense.set(&primary_key, node.as_deref());
        }
        match node {
            Some(node) => {
                self.nodes.insert(primary_key, node);
            }
            None => {
                self.nodes.remove(&primary_key);
            }
        }
    }
}

impl NodeReader for GraphState {
    fn node(&self, _index: u64, primary_key: &[u8]) -> Result<Option<Arc<Node>>> {
        Ok(self.nodes.get(primary_key).cloned())
    }

    fn entry(&self, _index: u64) -> Result<Option<Entry>> {
        Ok(self.entry.clone())
    }
}

/// What a transaction wrote and has not committed.
pub trait Buffered {
    fn buffered(&self, key: &[u8]) -> Option<Option<&[u8]>>;
}

impl Buffered for Transaction {
    fn buffered(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        Transaction::buffered(self, key)
    }
}

impl Buffered for ReadView {
    fn buffered(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        ReadView::buffered(self, key)
    }
}

/// A transaction's own writes over the committed graph in memory: a node it wrote is read from its
/// buffer, any other from memory. (A candidate the memory holds that the transaction's snapshot
/// does not see is harmless: the scan reads every candidate's row in the snapshot.)
pub struct Overlay<'a, B: Buffered + ?Sized> {
    pub buffer: &'a B,
    pub committed: &'a GraphState,
}

impl<B: Buffered + ?Sized> NodeReader for Overlay<'_, B> {
    fn node(&self, index: u64, primary_key: &[u8]) -> Result<Option<Arc<Node>>> {
        match self.buffer.buffered(&node_key(index, primary_key)) {
            Some(Some(bytes)) => Ok(Some(Arc::new(Node::decode(bytes)?))),
            Some(None) => Ok(None),
            None => Ok(self.committed.nodes.get(primary_key).cloned()),
        }
    }

    fn entry(&self, index: u64) -> Result<Option<Entry>> {
        match self.buffer.buffered(&entry_key(index)) {
            Some(bytes) => decode_entry_value(bytes),
            None => Ok(self.committed.entry.clone()),
        }
    }
}

/// The committed graph of one index, in memory: loaded from the store once, then kept up to date by
/// the commits that change it ([`Graph::apply`]).
///
/// # Exact graphs
///
/// A search must not return a row its snapshot cannot see, so the scans read each found row. They may
/// skip the read when the graph is known to hold exactly the snapshot's nodes, each of a visible row
/// ([`Graph::reflects`]): every commit that may change the graph or its rows is counted in
/// `commits_in_flight` from before it commits until after it is applied, so when none is in flight,
/// the graph holds nothing newer than the snapshot (`synced_sequence`) and its rows are verified,
/// the graph and the snapshot agree. The check holds the graph's read lock for the whole search, and
/// an apply needs the write lock, so it stays true while the search runs.
#[derive(Debug, Default)]
pub struct Graph {
    pub state: RwLock<GraphState>,
    /// Shared by the graphs of one database; `None`: never exact.
    commits_in_flight: Option<Arc<AtomicUsize>>,
}

impl Graph {
    /// The graph of `index` as `transaction` (a fresh one: the latest commit) sees it.
    pub fn load(transaction: &Transaction, index: u64) -> Result<Graph> {
        let mut state = GraphState::default();
        let prefix_length = Key::index_prefix(index).len();
        for item in transaction.scan(Key::index_range(index), false)? {
            let (key, value) = item?;
            match key.get(prefix_length) {
                Some(&TAG_ENTRY) => state.entry = Some(Entry::decode(&value)?),
                Some(&TAG_NODE) => {
                    state.nodes.insert(
                        key[prefix_length + 1..].to_vec(),
                        Arc::new(Node::decode(&value)?),
                    );
                }
                _ => return Err(Error::corruption("HNSW index has an unknown key")),
            }
        }
        state.index();
        state.synced_sequence = transaction.snapshot_sequence();
        Ok(Graph {
            state: RwLock::new(state),
            commits_in_flight: None,
        })
    }

    /// Makes the graph able to be exact (see the type's docs): `commits_in_flight` counts the
    /// database's commits in flight, `rows_verified` says the loader found every node's row.
    pub fn track_commits(&mut self, commits_in_flight: Arc<AtomicUsize>, rows_verified: bool) {
        self.commits_in_flight = Some(commits_in_flight);
        self.state.get_mut().rows_verified = rows_verified;
    }

    /// True when `state` (this graph's, read-locked by the caller) holds exactly the nodes of a
    /// snapshot of commit sequence `sequence`, each of a row that snapshot holds with its vector.
    pub fn reflects(&self, state: &GraphState, sequence: u64) -> bool {
        state.rows_verified
            && state.synced_sequence <= sequence
            && self
                .commits_in_flight
                .as_ref()
                .is_some_and(|count| count.load(AtomicOrdering::SeqCst) == 0)
    }

    /// Brings the keys `keys` (of this index, written by a transaction that committed) up to date
    /// from `fresh`, a transaction begun after that commit; `rows_died`: the commit deleted a row of
    /// the table or set its vector to NULL (its node stays, so the nodes are no longer all verified).
    pub fn apply(
        &self,
        fresh: &Transaction,
        index: u64,
        keys: &[Vec<u8>],
        rows_died: bool,
    ) -> Result<()> {
        let prefix_length = Key::index_prefix(index).len();
        let mut state = self.state.write();
        state.synced_sequence = state.synced_sequence.max(fresh.snapshot_sequence());
        if rows_died {
            state.rows_verified = false;
        }
        for key in keys {
            let value = fresh.get(key)?;
            match key.get(prefix_length) {
                Some(&TAG_ENTRY) => state.entry = decode_entry_value(value.as_deref())?,
                Some(&TAG_NODE) => {
                    let node = value
                        .map(|bytes| Node::decode(&bytes).map(Arc::new))
                        .transpose()?;
                    state.set(key[prefix_length + 1..].to_vec(), node);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Nodes read during one operation, kept so each is read (and decoded) once; a reader that holds
/// them decoded already (a graph in memory) is read directly.
struct Nodes<'a> {
    reader: &'a dyn NodeReader,
    index: u64,
    cache: Option<HashMap<Vec<u8>, Option<Arc<Node>>>>,
}

impl<'a> Nodes<'a> {
    fn new(reader: &'a dyn NodeReader, index: u64) -> Self {
        Nodes {
            reader,
            index,
            cache: Some(HashMap::new()),
        }
    }

    fn in_memory(reader: &'a dyn NodeReader, index: u64) -> Self {
        Nodes {
            reader,
            index,
            cache: None,
        }
    }

    fn get(&mut self, primary_key: &[u8]) -> Result<Option<Arc<Node>>> {
        let Some(cache) = &mut self.cache else {
            return self.reader.node(self.index, primary_key);
        };
        if let Some(node) = cache.get(primary_key) {
            return Ok(node.clone());
        }
        let node = self.reader.node(self.index, primary_key)?;
        cache.insert(primary_key.to_vec(), node.clone());
        Ok(node)
    }
}

/// The `ef` nearest nodes to `query` found on `layer` from `entry`, nearest first.
fn search_layer(
    nodes: &mut Nodes<'_>,
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

/// Of `candidates` (nearest first, with their vectors), the ones to link to: each kept only if it is
/// nearer to the node than to every one kept before it (hnswlib's heuristic), at most `links_max`.
fn select_neighbors(
    metric: Metric,
    candidates: Vec<(Found, Arc<[f32]>)>,
    links_max: usize,
) -> Vec<Vec<u8>> {
    let mut kept: Vec<(Found, Arc<[f32]>)> = Vec::with_capacity(links_max);
    for (candidate, vector) in candidates {
        if kept.len() >= links_max {
            break;
        }
        let diverse = kept.iter().all(|(_, other)| {
            other.len() != vector.len() || distance(metric, &vector, other) >= candidate.distance
        });
        if diverse {
            kept.push((candidate, vector));
        }
    }
    kept.into_iter()
        .map(|(found, _)| found.primary_key)
        .collect()
}

/// Greedy descent from the entry point to layer `down_to + 1`'s nearest node: the entry list for
/// `down_to`.
fn descend(
    nodes: &mut Nodes<'_>,
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

/// A new node, linked: its neighbour lists, and the neighbours that must link back to it.
pub struct Linked {
    pub node: Node,
    /// `(layer, neighbour)`: the neighbour gets a link to the new node on that layer.
    pub backlinks: Vec<(usize, Vec<u8>)>,
    /// The new node's level is above the entry point's (or the graph was empty): it becomes the
    /// entry point.
    pub new_entry: bool,
}

/// Links the node of `primary_key` (vector `query`, in its indexed form) into the graph `reader`
/// holds: searches each layer from the top and picks its neighbours. Nothing is written.
pub fn link(
    reader: &dyn NodeReader,
    index: u64,
    config: &HnswConfig,
    primary_key: &[u8],
    query: Vec<f32>,
) -> Result<Linked> {
    link_with(reader, false, index, config, primary_key, query)
}

/// [`link`], told whether `reader` holds the nodes decoded in memory.
fn link_with(
    reader: &dyn NodeReader,
    in_memory: bool,
    index: u64,
    config: &HnswConfig,
    primary_key: &[u8],
    query: Vec<f32>,
) -> Result<Linked> {
    let level = level_of(primary_key, config.m);
    let entry = reader.entry(index)?;
    let mut neighbors: Vec<Vec<Vec<u8>>> = vec![Vec::new(); level + 1];
    let mut backlinks = Vec::new();
    let mut nodes = if in_memory {
        Nodes::in_memory(reader, index)
    } else {
        Nodes::new(reader, index)
    };
    // (When the node is the entry point itself, being relinked with a new vector, the search starts
    // from its old links and leaves it out of its own neighbours.)
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
            let mut candidates = Vec::with_capacity(found.len());
            for found in &found {
                if found.primary_key == primary_key {
                    continue;
                }
                if let Some(node) = nodes.get(&found.primary_key)? {
                    candidates.push((found.clone(), Arc::<[f32]>::from(node.vector.as_slice())));
                }
            }
            let chosen = select_neighbors(config.metric, candidates, config.links_max(layer));
            for neighbor in &chosen {
                backlinks.push((layer, neighbor.clone()));
            }
            neighbors[layer] = chosen;
            nearest = found;
            if nearest.is_empty() {
                break;
            }
        }
    }
    Ok(Linked {
        new_entry: entry.as_ref().is_none_or(|entry| level > entry.level),
        node: Node {
            level,
            vector: query,
            neighbors,
        },
        backlinks,
    })
}

/// `neighbor` with a link to the new node `primary_key` (vector `vector`) on `layer`, its list cut
/// back to its maximum by the same heuristic when it grows past it; `None` when it has the link.
pub fn add_backlink(
    reader: &dyn NodeReader,
    index: u64,
    config: &HnswConfig,
    neighbor: &Node,
    layer: usize,
    primary_key: &[u8],
    vector: &[f32],
) -> Result<Option<Node>> {
    let Some(links) = neighbor.neighbors.get(layer) else {
        return Ok(None);
    };
    if links.iter().any(|existing| existing == primary_key) {
        return Ok(None);
    }
    let mut updated = neighbor.clone();
    updated.neighbors[layer].push(primary_key.to_vec());
    if updated.neighbors[layer].len() > config.links_max(layer) {
        let mut scored = Vec::with_capacity(updated.neighbors[layer].len());
        for other in &updated.neighbors[layer] {
            let other_vector: Option<Arc<[f32]>> = if other == primary_key {
                Some(Arc::from(vector))
            } else {
                reader
                    .node(index, other)?
                    .map(|node| Arc::<[f32]>::from(node.vector.as_slice()))
            };
            if let Some(other_vector) = other_vector
                && other_vector.len() == updated.vector.len()
            {
                scored.push((
                    Found {
                        distance: distance(config.metric, &updated.vector, &other_vector),
                        primary_key: other.clone(),
                    },
                    other_vector,
                ));
            }
        }
        scored.sort_by(|a, b| a.0.cmp(&b.0));
        updated.neighbors[layer] = select_neighbors(config.metric, scored, config.links_max(layer));
    }
    Ok(Some(updated))
}

/// Adds the row with primary key `primary_key` and vector `elements` to the graph of `index`, in
/// `transaction`, reading the graph through `reader` (the transaction itself, or an [`Overlay`] of it
/// over the committed graph in memory). A vector the metric cannot index (a zero vector under cosine
/// distance) is left out; a node already there with the same vector is left as it is.
pub fn insert(
    transaction: &mut Transaction,
    reader: Option<&GraphState>,
    index: u64,
    config: &HnswConfig,
    primary_key: &[u8],
    elements: &[f32],
) -> Result<()> {
    let Some(query) = indexed_form(config.metric, elements) else {
        return Ok(());
    };
    let writes = {
        let overlay;
        let reader: &dyn NodeReader = match reader {
            Some(committed) => {
                overlay = Overlay {
                    buffer: &*transaction,
                    committed,
                };
                &overlay
            }
            None => &*transaction,
        };
        if let Some(existing) = reader.node(index, primary_key)?
            && existing.vector == query
        {
            return Ok(());
        }
        let linked = link(reader, index, config, primary_key, query)?;
        let mut changed: Vec<(Vec<u8>, Node)> = Vec::new();
        for (layer, neighbor) in &linked.backlinks {
            let current = match changed.iter().find(|(key, _)| key == neighbor) {
                Some((_, node)) => node.clone(),
                None => match reader.node(index, neighbor)? {
                    Some(node) => (*node).clone(),
                    None => continue,
                },
            };
            if let Some(updated) = add_backlink(
                reader,
                index,
                config,
                &current,
                *layer,
                primary_key,
                &linked.node.vector,
            )? {
                match changed.iter_mut().find(|(key, _)| key == neighbor) {
                    Some((_, existing)) => *existing = updated,
                    None => changed.push((neighbor.clone(), updated)),
                }
            }
        }
        (linked, changed)
    };
    let (linked, changed) = writes;
    for (neighbor, node) in changed {
        transaction.put(node_key(index, &neighbor), node.encode())?;
    }
    if linked.new_entry {
        transaction.put(
            entry_key(index),
            Entry {
                level: linked.node.level,
                primary_key: primary_key.to_vec(),
            }
            .encode(),
        )?;
    }
    transaction.put(node_key(index, primary_key), linked.node.encode())?;
    Ok(())
}

/// Builds the graph of `rows` (primary key, vector) on `threads` threads: each thread links its next
/// row while others may (under a shared lock), then takes the lock alone to add the node and its
/// backlinks, recomputed against the neighbours as they are by then. Rows the metric cannot index
/// are left out. Vectors of one dimension count (always, for a typed column) build in the numbered
/// form with a lock per node instead (`hnsw_dense.rs`); the decoded-node way below remains for
/// anything else.
pub fn build(
    index: u64,
    config: &HnswConfig,
    rows: Vec<(Vec<u8>, Vec<f32>)>,
    threads: usize,
) -> Result<GraphState> {
    let indexed: Vec<(Vec<u8>, Vec<f32>)> = rows
        .iter()
        .filter_map(|(primary_key, elements)| {
            Some((primary_key.clone(), indexed_form(config.metric, elements)?))
        })
        .collect();
    if let Some(graph) = crate::hnsw_dense::build(config, indexed, threads) {
        return Ok(graph);
    }
    let graph = RwLock::new(GraphState::default());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failure: parking_lot::Mutex<Option<Error>> = parking_lot::Mutex::new(None);
    let work = || {
        loop {
            let at = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some((primary_key, elements)) = rows.get(at) else {
                return;
            };
            if failure.lock().is_some() {
                return;
            }
            let Some(query) = indexed_form(config.metric, elements) else {
                continue;
            };
            let outcome = (|| -> Result<()> {
                let linked = {
                    let state = graph.read();
                    link_with(&*state, true, index, config, primary_key, query)?
                };
                let mut state = graph.write();
                let mut updates = Vec::with_capacity(linked.backlinks.len());
                for (layer, neighbor) in &linked.backlinks {
                    let Some(current) = state.nodes.get(neighbor).cloned() else {
                        continue;
                    };
                    // The node being added is not in the map yet: its vector is passed along.
                    if let Some(updated) = add_backlink(
                        &*state,
                        index,
                        config,
                        &current,
                        *layer,
                        primary_key,
                        &linked.node.vector,
                    )? {
                        updates.push((neighbor.clone(), updated));
                        // Later backlinks to the same neighbour (other layers) build on this one.
                        let (key, node) = updates.last().expect("just pushed");
                        state.nodes.insert(key.clone(), Arc::new(node.clone()));
                    }
                }
                // The entry point may have risen meanwhile: compare again under the lock.
                let higher = state
                    .entry
                    .as_ref()
                    .is_none_or(|entry| linked.node.level > entry.level);
                if higher {
                    state.entry = Some(Entry {
                        level: linked.node.level,
                        primary_key: primary_key.clone(),
                    });
                }
                state
                    .nodes
                    .insert(primary_key.clone(), Arc::new(linked.node));
                Ok(())
            })();
            if let Err(error) = outcome {
                *failure.lock() = Some(error);
                return;
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads.max(1) {
            scope.spawn(work);
        }
        work();
    });
    if let Some(error) = failure.into_inner() {
        return Err(error);
    }
    Ok(graph.into_inner())
}

/// Writes a built graph into `transaction`.
pub fn write(transaction: &mut Transaction, index: u64, graph: &GraphState) -> Result<()> {
    if let Some(entry) = &graph.entry {
        transaction.put(entry_key(index), entry.encode())?;
    }
    for (primary_key, node) in &graph.nodes {
        transaction.put(node_key(index, primary_key), node.encode())?;
    }
    Ok(())
}

/// Puts the nodes of `found` not in `returned` into `batch`; how many were found.
fn keep(returned: &HashSet<Vec<u8>>, batch: &mut Batch, found: Vec<Found>) -> usize {
    for node in &found {
        if !returned.contains(&node.primary_key) {
            batch.push(&node.primary_key);
        }
    }
    found.len()
}

/// Where a search reads the graph: a read view alone, or a read view's writes over the committed
/// graph in memory.
pub enum SearchSource {
    Store(ReadView),
    Cached(ReadView, Arc<Graph>),
}

/// A search of one index, widened on demand: [`Search::next_batch`] first finds the `ef` nearest
/// nodes, then each call searches again with twice the list and keeps the nodes not returned before
/// (pgvector's iterative scan, relaxed order: each batch is in distance order, batches follow each
/// other). [`Search::key`] reads a node of the batch.
pub struct Search {
    source: SearchSource,
    index: u64,
    metric: Metric,
    query: Option<Vec<f32>>,
    ef: usize,
    /// The batch last found.
    batch: Batch,
    /// The nodes of the batches before it (filled only when a search is widened: a query answered
    /// by its first batch copies no key twice).
    returned: HashSet<Vec<u8>>,
    exhausted: bool,
    /// The last batch came from a graph that [`Graph::reflects`] the search's snapshot.
    exact: bool,
}

/// The nodes of one search batch, nearest first. A batch holds `ef` nodes, of which a query often
/// reads only the first `k`: found in the numbered graph, a batch keeps their slots and a key is
/// read only when asked for (a node's key lies apart from everything the search read, so each one
/// costs cache misses); found otherwise, their primary keys side by side in one buffer.
#[derive(Debug, Default)]
struct Batch {
    slots: Vec<u32>,
    keys: Vec<u8>,
    /// Where each key ends in `keys`.
    ends: Vec<usize>,
}

impl Batch {
    fn len(&self) -> usize {
        self.slots.len() + self.ends.len()
    }

    /// The primary key at `position` of a batch of keys.
    fn key(&self, position: usize) -> Option<&[u8]> {
        let end = *self.ends.get(position)?;
        let start = position
            .checked_sub(1)
            .map_or(0, |before| self.ends[before]);
        Some(&self.keys[start..end])
    }

    fn push(&mut self, primary_key: &[u8]) {
        self.keys.extend_from_slice(primary_key);
        self.ends.push(self.keys.len());
    }

    fn clear(&mut self) {
        self.slots.clear();
        self.keys.clear();
        self.ends.clear();
    }
}

impl Search {
    /// A search of `index` for the nodes nearest `query` (as given: normalized here for cosine
    /// distance), starting with a candidate list of `ef`.
    pub fn new(source: SearchSource, index: u64, metric: Metric, query: &[f32], ef: usize) -> Self {
        Search {
            source,
            index,
            metric,
            query: indexed_form(metric, query),
            ef: ef.max(1),
            batch: Batch::default(),
            returned: HashSet::new(),
            exhausted: false,
            exact: false,
        }
    }

    /// True when the last batch came from a graph holding exactly the search's snapshot's nodes,
    /// each of a row the snapshot holds with the node's vector ([`Graph::reflects`]), and the
    /// searching transaction wrote nothing in the index: its keys are of visible rows without
    /// reading them, unless the transaction changed those rows itself (the caller checks).
    pub fn exact(&self) -> bool {
        self.exact
    }

    /// Finds the next nodes; how many (nearest first, read with [`Search::key`]), zero once the
    /// graph has no more.
    pub fn next_batch(&mut self) -> Result<usize> {
        for position in 0..self.batch.len() {
            if let Some(primary_key) = self.key(position) {
                self.returned.insert(primary_key);
            }
        }
        self.batch.clear();
        self.exact = false;
        if self.exhausted {
            return Ok(0);
        }
        let found = match &self.source {
            SearchSource::Store(view) => self
                .search(view, false)?
                .map(|found| keep(&self.returned, &mut self.batch, found)),
            SearchSource::Cached(view, graph) => {
                let committed = graph.state.read();
                if view.buffers_any(&Key::index_range(self.index)) {
                    let overlay = Overlay {
                        buffer: view,
                        committed: &committed,
                    };
                    self.search(&overlay, false)?
                        .map(|found| keep(&self.returned, &mut self.batch, found))
                } else if let Some(dense) = &committed.dense {
                    // Nothing of the index's own: the graph in memory alone, numbered.
                    self.exact = graph.reflects(&committed, view.snapshot_sequence());
                    self.query
                        .as_ref()
                        .zip(committed.entry.as_ref())
                        .and_then(|(query, entry)| {
                            let reached = dense.search(
                                self.metric,
                                query,
                                &entry.primary_key,
                                entry.level,
                                self.ef,
                            )?;
                            self.batch.slots.extend(
                                reached
                                    .iter()
                                    .map(|node| node.slot)
                                    .filter(|&slot| !self.returned.contains(dense.key(slot))),
                            );
                            Some(reached.len())
                        })
                } else {
                    self.search(&*committed, true)?
                        .map(|found| keep(&self.returned, &mut self.batch, found))
                }
            }
        };
        let Some(found) = found else {
            self.exhausted = true;
            return Ok(0);
        };
        // Fewer than asked for: the search reached every node it could, so nothing more to find;
        // nothing new: widening finds nothing either.
        if found < self.ef || self.batch.len() == 0 {
            self.exhausted = true;
        }
        self.ef = self.ef.saturating_mul(2);
        Ok(self.batch.len())
    }

    /// Appends the primary key of the node at `position` of the last batch to `into`; false when
    /// the batch has no such node.
    pub fn append_key(&self, position: usize, into: &mut Vec<u8>) -> bool {
        if let Some(&slot) = self.batch.slots.get(position) {
            // Slots come only from the graph's numbered form, and a slot keeps its key for the
            // graph's life (`hnsw_dense.rs`).
            if let SearchSource::Cached(_, graph) = &self.source
                && let Some(dense) = &graph.state.read().dense
            {
                into.extend_from_slice(dense.key(slot));
                return true;
            }
            return false;
        }
        match self.batch.key(position) {
            Some(primary_key) => {
                into.extend_from_slice(primary_key);
                true
            }
            None => false,
        }
    }

    /// The primary key of the node at `position` of the last batch.
    pub fn key(&self, position: usize) -> Option<Vec<u8>> {
        let mut primary_key = Vec::new();
        self.append_key(position, &mut primary_key)
            .then_some(primary_key)
    }

    fn search(&self, reader: &dyn NodeReader, in_memory: bool) -> Result<Option<Vec<Found>>> {
        let Some(query) = &self.query else {
            return Ok(None);
        };
        let Some(entry) = reader.entry(self.index)? else {
            return Ok(None);
        };
        let mut nodes = if in_memory {
            Nodes::in_memory(reader, self.index)
        } else {
            Nodes::new(reader, self.index)
        };
        let Some(nearest) = descend(&mut nodes, self.metric, query, &entry, 0)? else {
            return Ok(None);
        };
        Ok(Some(search_layer(
            &mut nodes,
            self.metric,
            query,
            &nearest,
            self.ef,
            0,
        )?))
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
                    None,
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
                let mut search =
                    Search::new(SearchSource::Store(view.clone()), index, metric, query, 40);
                let found = search.next_batch().expect("search");
                hits += (0..found.min(10))
                    .filter(|&position| {
                        truth.contains(&search.key(position).expect("a key in the batch"))
                    })
                    .count();
            }
            let recall = hits as f64 / (queries * 10) as f64;
            assert!(recall >= 0.9, "{metric:?}: recall {recall}");
        }
    }

    #[test]
    fn a_parallel_build_searched_in_memory_finds_the_nearest() {
        let store = qubedb_kv::Store::in_memory().unwrap();
        let data = points(1500, 16);
        let config = HnswConfig {
            m: 8,
            ef_construction: 40,
            metric: Metric::L2,
        };
        let rows: Vec<(Vec<u8>, Vec<f32>)> = data
            .iter()
            .enumerate()
            .map(|(id, point)| (primary_key(id as i64), point.clone()))
            .collect();
        let built = build(9, &config, rows, 2).unwrap();
        assert_eq!(built.nodes.len(), data.len());
        // Every list, trimmed by either thread, is within its layer's bound, without the node
        // itself, a repeat or a node the graph does not hold.
        for (key, node) in &built.nodes {
            for (layer, neighbors) in node.neighbors.iter().enumerate() {
                assert!(neighbors.len() <= config.links_max(layer));
                assert!(!neighbors.contains(key));
                let distinct: HashSet<&Vec<u8>> = neighbors.iter().collect();
                assert_eq!(distinct.len(), neighbors.len());
                assert!(
                    neighbors
                        .iter()
                        .all(|neighbor| built.nodes.contains_key(neighbor))
                );
            }
        }
        let mut transaction = store.begin().unwrap();
        write(&mut transaction, 9, &built).unwrap();
        transaction.commit().unwrap();
        let graph = Arc::new(Graph::load(&store.begin().unwrap(), 9).unwrap());
        assert_eq!(graph.state.read().nodes.len(), data.len());
        // One more row, inserted through the in-memory graph and not yet committed: the search
        // in its transaction finds it, from the buffer.
        let mut transaction = store.begin().unwrap();
        let extra: Vec<f32> = data[3].iter().map(|x| x + 0.001).collect();
        {
            let committed = graph.state.read();
            insert(
                &mut transaction,
                Some(&committed),
                9,
                &config,
                &primary_key(5000),
                &extra,
            )
            .unwrap();
        }
        let mut search = Search::new(
            SearchSource::Cached(transaction.read_view(), graph.clone()),
            9,
            Metric::L2,
            &extra,
            10,
        );
        search.next_batch().expect("search");
        assert_eq!(search.key(0), Some(primary_key(5000)));
        let mut hits = 0;
        for q in 0..40 {
            let query = &data[(q * 37) % data.len()];
            let mut exact: Vec<(f64, usize)> = data
                .iter()
                .enumerate()
                .map(|(id, point)| (Metric::L2.distance(query, point), id))
                .collect();
            exact.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let truth: HashSet<Vec<u8>> = exact[..10]
                .iter()
                .map(|(_, id)| primary_key(*id as i64))
                .collect();
            let view = store.begin().unwrap().read_view();
            let mut search = Search::new(
                SearchSource::Cached(view, graph.clone()),
                9,
                Metric::L2,
                query,
                40,
            );
            let found = search.next_batch().expect("search");
            hits += (0..found.min(10))
                .filter(|&position| {
                    truth.contains(&search.key(position).expect("a key in the batch"))
                })
                .count();
        }
        assert!(hits as f64 / 400.0 >= 0.9, "recall {}", hits as f64 / 400.0);

        // Committed and applied to the graph in memory, the new node is found by the numbered form
        // (no buffer involved); its node deleted, it is not.
        let first_found = |graph: &Arc<Graph>| {
            let mut search = Search::new(
                SearchSource::Cached(store.begin().unwrap().read_view(), graph.clone()),
                9,
                Metric::L2,
                &extra,
                10,
            );
            search.next_batch().expect("search");
            search.key(0)
        };
        let written = transaction.buffered_keys(&Key::index_range(9));
        transaction.commit().unwrap();
        graph
            .apply(&store.begin().expect("begin"), 9, &written, false)
            .expect("apply the commit");
        assert_eq!(first_found(&graph), Some(primary_key(5000)));
        let mut transaction = store.begin().unwrap();
        transaction.delete(node_key(9, &primary_key(5000))).unwrap();
        let written = transaction.buffered_keys(&Key::index_range(9));
        transaction.commit().unwrap();
        graph
            .apply(&store.begin().expect("begin"), 9, &written, false)
            .expect("apply the commit");
        assert_eq!(first_found(&graph), Some(primary_key(3)));
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
            insert(
                &mut transaction,
                None,
                1,
                &config,
                &primary_key(id as i64),
                point,
            )
            .unwrap();
        }
        transaction.commit().unwrap();
        // From the store (batches of keys) and from the graph in memory (batches of slots).
        let graph = Arc::new(Graph::load(&store.begin().expect("begin"), 1).expect("load"));
        let sources = [
            SearchSource::Store(store.begin().expect("begin").read_view()),
            SearchSource::Cached(store.begin().expect("begin").read_view(), graph),
        ];
        for source in sources {
            let mut search = Search::new(source, 1, Metric::L2, &data[0], 10);
            let mut seen = HashSet::new();
            loop {
                let found = search.next_batch().expect("search");
                if found == 0 {
                    break;
                }
                assert_eq!(search.key(found), None, "past the batch's end");
                for position in 0..found {
                    assert!(
                        seen.insert(search.key(position).expect("a key in the batch")),
                        "a node came twice"
                    );
                }
            }
            assert!(seen.len() >= 290, "{} of 300 reached", seen.len());
        }
    }
}
