//! The committed HNSW graph as searches read it: nodes numbered densely, vectors side by side.
//!
//! [`crate::hnsw::GraphState`] keeps each node as stored (`Node`: its vector and its neighbours' primary
//! keys), which inserts and the store's format need. A search through that form hashes and copies a key
//! for every neighbour it looks at and follows two pointers to reach its vector; most of a search's time
//! went there rather than into distances. [`Dense`] is the same graph for reading: every node has a slot
//! (`u32`), vectors lie in one array at `slot * dimensions`, the layer-0 neighbour lists (slots) in
//! another at `slot * stride` (so reaching one is a single memory read, not three), the few upper-layer
//! lists apart, and a search marks visited slots in a per-thread array stamped with a generation
//! number (hnswlib's visited-list pool), so it allocates nothing per node and touches memory in few
//! places.
//!
//! It is derived, never stored: built when a graph is loaded, and kept up to date node by node as
//! commits change the graph ([`Dense::set`]). `CREATE INDEX` builds numbered too ([`build`]): every
//! row gets its slot up front, and threads link rows with a lock per node, as hnswlib does (a thread
//! holds one node's lock at a time: to read its links while searching, or to add a backlink and trim
//! the list), and the result is turned into stored nodes at the end. A slot, once given to a primary
//! key, keeps it (a deleted node's slot is marked absent); neighbour keys not seen yet get a slot at
//! once, filled when their node arrives.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

use parking_lot::{Mutex, RwLock};

use crate::hnsw::{Entry, GraphState, HnswConfig, Node, distance, level_of};
use crate::vector::Metric;

/// A node reached by a search: its distance to the query and its slot, ordered by distance, then slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reached {
    pub distance: f64,
    pub slot: u32,
}

impl PartialEq for Reached {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Reached {}

impl PartialOrd for Reached {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Reached {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then_with(|| self.slot.cmp(&other.slot))
    }
}

/// The vector of `slot` in `vectors`, which holds `dimensions` elements per slot.
fn slot_row(vectors: &[f32], dimensions: usize, slot: u32) -> &[f32] {
    let start = slot as usize * dimensions;
    &vectors[start..start + dimensions]
}

/// Elements of `f32` or `u32` per 64-byte cache line.
const LINE_ELEMENTS: usize = 16;

/// Asks the processor to bring `values` into cache, one request per cache line, and goes on without
/// waiting (hnswlib's `_mm_prefetch`; `mem_prefetch` wraps the instruction, whose `unsafe` we forbid
/// in our own code). A search reads neighbours' vectors and lists at scattered places: asked for
/// all at once, the memory system fetches them side by side rather than one stall after another.
fn prefetch<T>(values: &[T]) {
    for start in (0..values.len()).step_by(LINE_ELEMENTS) {
        mem_prefetch::prefetch_read_data::<T, 3>(&values[start]);
    }
}

/// A growable array of bits.
#[derive(Debug, Default, Clone)]
struct Bits {
    words: Vec<u64>,
    len: usize,
}

impl Bits {
    fn push(&mut self, value: bool) {
        if self.len.is_multiple_of(64) {
            self.words.push(0);
        }
        self.len += 1;
        self.set(self.len - 1, value);
    }

    fn set(&mut self, index: usize, value: bool) {
        let word = &mut self.words[index / 64];
        if value {
            *word |= 1 << (index % 64);
        } else {
            *word &= !(1 << (index % 64));
        }
    }

    /// The bit at `index`; false past the end.
    fn get(&self, index: usize) -> bool {
        self.words
            .get(index / 64)
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }
}

/// The graph with nodes numbered (see the module docs).
#[derive(Debug, Default)]
pub struct Dense {
    slot_of: HashMap<Vec<u8>, u32>,
    /// Per slot: the primary key.
    keys: Vec<Vec<u8>>,
    /// Per slot: whether the node is in the graph with a vector of `dimensions` elements. One bit
    /// each: a search asks for every neighbour it meets, and 100,000 nodes' bits stay in L1.
    present: Bits,
    /// The dimensions of every present node's vector (set by the first node).
    dimensions: usize,
    /// Per slot, `dimensions` elements (zeros while absent).
    vectors: Vec<f32>,
    /// Per slot, `bottom_stride` entries: how many neighbours the node has on layer 0, then their
    /// slots. One flat array, so reaching a node's layer-0 list is one memory read, not three.
    bottom: Vec<u32>,
    /// Entries per slot in `bottom`: one more than the longest layer-0 list seen (grown, and the
    /// array laid out again, when a longer one arrives).
    bottom_stride: usize,
    /// Per slot, per layer `1..=level`, the neighbours' slots (empty for a node of level 0).
    upper: Vec<Vec<Vec<u32>>>,
}

impl Dense {
    /// The slot of `primary_key`, given one if it has none.
    fn slot(&mut self, primary_key: &[u8]) -> u32 {
        if let Some(&slot) = self.slot_of.get(primary_key) {
            return slot;
        }
        let slot = u32::try_from(self.keys.len()).expect("fewer than 2^32 nodes in one index");
        self.slot_of.insert(primary_key.to_vec(), slot);
        self.keys.push(primary_key.to_vec());
        self.present.push(false);
        self.vectors
            .extend(std::iter::repeat_n(0.0, self.dimensions));
        self.bottom
            .extend(std::iter::repeat_n(0, self.bottom_stride));
        self.upper.push(Vec::new());
        slot
    }

    /// Makes room for `count` neighbours per slot on layer 0.
    fn widen_bottom(&mut self, count: usize) {
        let stride = count + 1;
        if stride <= self.bottom_stride {
            return;
        }
        let mut bottom = vec![0; self.keys.len() * stride];
        if self.bottom_stride > 0 {
            for (old, new) in self
                .bottom
                .chunks_exact(self.bottom_stride)
                .zip(bottom.chunks_exact_mut(stride))
            {
                new[..old.len()].copy_from_slice(old);
            }
        }
        self.bottom = bottom;
        self.bottom_stride = stride;
    }

    /// Sets the layer-0 neighbours of `slot`.
    fn set_bottom(&mut self, slot: usize, neighbors: &[u32]) {
        self.widen_bottom(neighbors.len());
        let start = slot * self.bottom_stride;
        let entries = &mut self.bottom[start..start + self.bottom_stride];
        entries[0] = u32::try_from(neighbors.len()).expect("a neighbour list fits in u32");
        entries[1..=neighbors.len()].copy_from_slice(neighbors);
    }

    /// The layer-0 neighbours of `slot`.
    fn bottom_links(&self, slot: usize) -> &[u32] {
        let start = slot * self.bottom_stride;
        match self.bottom.get(start..start + self.bottom_stride) {
            Some([count, neighbors @ ..]) => &neighbors[..*count as usize],
            _ => &[],
        }
    }

    /// Sets the node of `primary_key` (`None`: removes it).
    pub fn set(&mut self, primary_key: &[u8], node: Option<&Node>) {
        let slot = self.slot(primary_key) as usize;
        let Some(node) = node else {
            self.remove(slot);
            return;
        };
        if self.dimensions == 0 && !node.vector.is_empty() {
            self.dimensions = node.vector.len();
            self.vectors = vec![0.0; self.keys.len() * self.dimensions];
        }
        if node.vector.len() != self.dimensions {
            // Not searchable with this graph's queries (a search skips such nodes too).
            self.remove(slot);
            return;
        }
        let links: Vec<Vec<u32>> = node
            .neighbors
            .iter()
            .map(|layer| layer.iter().map(|key| self.slot(key)).collect())
            .collect();
        let mut layers = links.into_iter();
        let bottom = layers.next().unwrap_or_default();
        self.upper[slot] = layers.collect();
        self.set_bottom(slot, &bottom);
        let start = slot * self.dimensions;
        self.vectors[start..start + self.dimensions].copy_from_slice(&node.vector);
        self.present.set(slot, true);
    }

    /// Takes `slot`'s node out of the graph (its slot stays with its key).
    fn remove(&mut self, slot: usize) {
        self.present.set(slot, false);
        self.upper[slot] = Vec::new();
        self.set_bottom(slot, &[]);
    }

    /// The primary key of `slot`.
    pub(crate) fn key(&self, slot: u32) -> &[u8] {
        &self.keys[slot as usize]
    }

    /// Whether the node of `slot` is in the graph.
    fn is_present(&self, slot: usize) -> bool {
        self.present.get(slot)
    }

    fn vector(&self, slot: u32) -> Option<&[f32]> {
        self.is_present(slot as usize)
            .then(|| slot_row(&self.vectors, self.dimensions, slot))
    }

    /// The `ef` nodes nearest `query` on layer 0, nearest first, searching from `entry` (the entry
    /// point's primary key and level); `None` when the entry point is not in the graph or `query`
    /// has other dimensions.
    pub(crate) fn search(
        &self,
        metric: Metric,
        query: &[f32],
        entry: &[u8],
        entry_level: usize,
        ef: usize,
    ) -> Option<Vec<Reached>> {
        if query.len() != self.dimensions {
            return None;
        }
        let slot = *self.slot_of.get(entry)?;
        let vector = self.vector(slot)?;
        let mut nearest = vec![Reached {
            distance: distance(metric, query, vector),
            slot,
        }];
        VISITED.with(|visited| {
            let mut visited = visited.borrow_mut();
            for layer in (1..=entry_level).rev() {
                nearest = search_layer(self, &mut visited, metric, query, &nearest, 1, layer);
            }
            Some(search_layer(
                self,
                &mut visited,
                metric,
                query,
                &nearest,
                ef,
                0,
            ))
        })
    }
}

/// What a layer search reads: vectors and neighbour lists by slot. The committed graph ([`Dense`])
/// hands its lists out directly; a graph being built ([`Building`]) under each node's lock.
trait Layers {
    /// How many slots there are.
    fn slot_count(&self) -> usize;

    /// The vector of `slot`, present or not (a build fills every slot's vector up front).
    fn slot_vector(&self, slot: u32) -> &[f32];

    /// The vector of `slot` if its node is in the graph.
    fn present_vector(&self, slot: u32) -> Option<&[f32]>;

    /// Calls `visit` with the neighbours of `slot` on `layer`; false when it has no such layer.
    fn with_links(&self, slot: u32, layer: usize, visit: impl FnOnce(&[u32])) -> bool;

    /// Starts bringing the neighbour list of `slot` on `layer` into cache (see [`prefetch`]): a
    /// candidate's list is read when it is expanded, some time after it was found.
    fn prefetch_links(&self, _slot: u32, _layer: usize) {}
}

impl Layers for Dense {
    fn slot_count(&self) -> usize {
        self.keys.len()
    }

    fn slot_vector(&self, slot: u32) -> &[f32] {
        slot_row(&self.vectors, self.dimensions, slot)
    }

    fn present_vector(&self, slot: u32) -> Option<&[f32]> {
        self.vector(slot)
    }

    fn with_links(&self, slot: u32, layer: usize, visit: impl FnOnce(&[u32])) -> bool {
        let slot = slot as usize;
        if layer == 0 {
            if !self.is_present(slot) {
                return false;
            }
            visit(self.bottom_links(slot));
            return true;
        }
        match self.upper[slot].get(layer - 1) {
            Some(links) => {
                visit(links);
                true
            }
            None => false,
        }
    }

    fn prefetch_links(&self, slot: u32, layer: usize) {
        if layer == 0 {
            let start = slot as usize * self.bottom_stride;
            if let Some(entries) = self.bottom.get(start..start + self.bottom_stride) {
                prefetch(entries);
            }
        }
    }
}

/// The `ef` nodes nearest `query` on `layer`, nearest first, searching from `entry`.
fn search_layer<L: Layers>(
    graph: &L,
    visited: &mut Visited,
    metric: Metric,
    query: &[f32],
    entry: &[Reached],
    ef: usize,
    layer: usize,
) -> Vec<Reached> {
    visited.start(graph.slot_count());
    for reached in entry {
        visited.insert(reached.slot);
    }
    let mut candidates: BinaryHeap<std::cmp::Reverse<Reached>> =
        entry.iter().copied().map(std::cmp::Reverse).collect();
    let mut results: BinaryHeap<Reached> = entry.iter().copied().collect();
    let mut fresh: Vec<u32> = Vec::new();
    while let Some(std::cmp::Reverse(nearest)) = candidates.pop() {
        let farthest = results.peek().map_or(f64::INFINITY, |found| found.distance);
        if nearest.distance > farthest && results.len() >= ef {
            break;
        }
        // First the neighbours not seen yet, each vector's memory asked for; then the distances,
        // by which time the first vectors are in cache.
        fresh.clear();
        let has_layer = graph.with_links(nearest.slot, layer, |links| {
            for &neighbor in links {
                if visited.insert(neighbor)
                    && let Some(vector) = graph.present_vector(neighbor)
                {
                    prefetch(vector);
                    fresh.push(neighbor);
                }
            }
        });
        if !has_layer {
            continue;
        }
        for &neighbor in &fresh {
            // Present: `fresh` holds only present nodes.
            let distance = distance(metric, query, graph.slot_vector(neighbor));
            let farthest = results.peek().map_or(f64::INFINITY, |found| found.distance);
            if results.len() < ef || distance < farthest {
                let reached = Reached {
                    distance,
                    slot: neighbor,
                };
                graph.prefetch_links(neighbor, layer);
                candidates.push(std::cmp::Reverse(reached));
                results.push(reached);
                if results.len() > ef {
                    results.pop();
                }
            }
        }
    }
    results.into_sorted_vec()
}

/// Of `candidates` (nearest first), the ones to link `own` to: each kept only if it is nearer to the
/// node than to every one kept before it (hnswlib's heuristic), at most `links_max`.
fn select<L: Layers>(
    graph: &L,
    metric: Metric,
    candidates: &[Reached],
    links_max: usize,
    own: u32,
) -> Vec<u32> {
    let mut kept: Vec<u32> = Vec::with_capacity(links_max);
    for candidate in candidates {
        if kept.len() >= links_max {
            break;
        }
        if candidate.slot == own {
            continue;
        }
        let vector = graph.slot_vector(candidate.slot);
        if kept
            .iter()
            .all(|&other| distance(metric, vector, graph.slot_vector(other)) >= candidate.distance)
        {
            kept.push(candidate.slot);
        }
    }
    kept
}

/// A graph being built: every row's vector from the start, and the links.
///
/// Layer 0 — every node's, where a build spends its time — lies flat, as the numbered graph's does:
/// at `slot * stride` the count, then up to `2 * m` neighbours, each an atomic. A node's lists change
/// only under its lock (`upper`, which also holds its lists of the layers above; hnswlib's scheme: a
/// thread holds one node's lock at a time), but a search reads layer 0 without the lock: one cache
/// line or two instead of a lock and two pointers to follow. A search that races a change may read a
/// list mixing the old and the new neighbours (the count is published after the entries, each entry
/// is a node): a search of a graph still being built is approximate anyway.
struct Building {
    dimensions: usize,
    vectors: Vec<f32>,
    level0: Vec<AtomicU32>,
    stride: usize,
    /// Per node: its lock, and its lists of layers `1..=level` (empty until the node is linked).
    upper: Vec<Mutex<Vec<Vec<u32>>>>,
    entry: RwLock<Option<(u32, usize)>>,
}

/// Most layer-0 neighbours read onto the stack (`2 * m` for `m` up to 64); larger lists are copied to
/// the heap.
const STACK_LINKS: usize = 128;

impl Building {
    /// The layer-0 neighbours of `slot`, as written last.
    fn bottom(&self, slot: u32, into: &mut [u32]) -> usize {
        let start = slot as usize * self.stride;
        let count = (self.level0[start].load(AtomicOrdering::Acquire) as usize)
            .min(self.stride - 1)
            .min(into.len());
        for (target, source) in into[..count]
            .iter_mut()
            .zip(&self.level0[start + 1..start + 1 + count])
        {
            *target = source.load(AtomicOrdering::Relaxed);
        }
        count
    }

    /// Replaces the layer-0 neighbours of `slot` (its lock held by the caller).
    fn set_bottom(&self, slot: u32, links: &[u32]) {
        let start = slot as usize * self.stride;
        let count = links.len().min(self.stride - 1);
        for (target, &link) in self.level0[start + 1..start + 1 + count].iter().zip(links) {
            target.store(link, AtomicOrdering::Relaxed);
        }
        self.level0[start].store(count as u32, AtomicOrdering::Release);
    }

    /// The neighbours of `slot` on `layer`, copied (its lock held by the caller for upper layers).
    fn links_of(&self, slot: u32, layer: usize, upper: &[Vec<u32>]) -> Option<Vec<u32>> {
        if layer == 0 {
            let mut links = vec![0; self.stride - 1];
            let count = self.bottom(slot, &mut links);
            links.truncate(count);
            return Some(links);
        }
        upper.get(layer - 1).cloned()
    }
}

impl Layers for Building {
    fn slot_count(&self) -> usize {
        self.upper.len()
    }

    fn slot_vector(&self, slot: u32) -> &[f32] {
        slot_row(&self.vectors, self.dimensions, slot)
    }

    /// Every vector: a node is reachable only once linked, and it is linked before any link to it.
    fn present_vector(&self, slot: u32) -> Option<&[f32]> {
        Some(self.slot_vector(slot))
    }

    fn with_links(&self, slot: u32, layer: usize, visit: impl FnOnce(&[u32])) -> bool {
        if layer > 0 {
            return match self.upper[slot as usize].lock().get(layer - 1) {
                Some(links) => {
                    visit(links);
                    true
                }
                None => false,
            };
        }
        if self.stride - 1 <= STACK_LINKS {
            let mut links = [0u32; STACK_LINKS];
            let count = self.bottom(slot, &mut links);
            visit(&links[..count]);
        } else {
            let mut links = vec![0u32; self.stride - 1];
            let count = self.bottom(slot, &mut links);
            visit(&links[..count]);
        }
        true
    }

    fn prefetch_links(&self, slot: u32, layer: usize) {
        if layer == 0 {
            let start = slot as usize * self.stride;
            if let Some(entries) = self.level0.get(start..start + self.stride) {
                prefetch(entries);
            }
        }
    }
}

/// Builds the graph of `rows` (primary key, vector in its indexed form) on `threads` threads (see the
/// module docs); `None` when the vectors do not all have the same dimensions (the caller builds the
/// other way).
pub(crate) fn build(
    config: &HnswConfig,
    rows: Vec<(Vec<u8>, Vec<f32>)>,
    threads: usize,
) -> Option<GraphState> {
    let dimensions = rows.first().map_or(0, |(_, vector)| vector.len());
    if dimensions == 0 || rows.iter().any(|(_, vector)| vector.len() != dimensions) {
        return None;
    }
    u32::try_from(rows.len()).expect("fewer than 2^32 rows in one index build");
    let mut keys = Vec::with_capacity(rows.len());
    let mut levels = Vec::with_capacity(rows.len());
    let mut vectors = Vec::with_capacity(rows.len() * dimensions);
    for (primary_key, vector) in rows {
        levels.push(level_of(&primary_key, config.m));
        keys.push(primary_key);
        vectors.extend_from_slice(&vector);
    }
    let count = keys.len();
    let stride = config.links_max(0) + 1;
    let building = Building {
        dimensions,
        vectors,
        level0: (0..count * stride).map(|_| AtomicU32::new(0)).collect(),
        stride,
        upper: (0..count).map(|_| Mutex::new(Vec::new())).collect(),
        entry: RwLock::new(None),
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        loop {
            let slot = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if slot >= count {
                return;
            }
            add(&building, config, slot as u32, levels[slot]);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads.max(1) {
            scope.spawn(work);
        }
        work();
    });
    let entry = *building.entry.read();
    let mut graph = GraphState::default();
    let mut bottom = vec![0u32; stride - 1];
    for slot in 0..count {
        let upper = std::mem::take(&mut *building.upper[slot].lock());
        let found = building.bottom(slot as u32, &mut bottom);
        let links: Vec<&[u32]> = std::iter::once(&bottom[..found])
            .chain(upper.iter().map(Vec::as_slice))
            .collect();
        let node = Node {
            level: levels[slot],
            vector: slot_row(&building.vectors, dimensions, slot as u32).to_vec(),
            neighbors: links
                .iter()
                .map(|layer| {
                    layer
                        .iter()
                        .map(|&neighbor| keys[neighbor as usize].clone())
                        .collect()
                })
                .collect(),
        };
        graph
            .nodes
            .insert(keys[slot].clone(), std::sync::Arc::new(node));
    }
    graph.entry = entry.map(|(slot, level)| Entry {
        level,
        primary_key: keys[slot as usize].clone(),
    });
    Some(graph)
}

/// Links the node of `slot` (level `level`) into the graph being built.
fn add(building: &Building, config: &HnswConfig, slot: u32, level: usize) {
    let known = *building.entry.read();
    let (entry, entry_level) = match known {
        Some(found) => found,
        None => {
            // The first node: the entry point, with nothing to link to (checked again under the
            // exclusive lock, so a second node never starts alone too).
            let mut entry = building.entry.write();
            match *entry {
                Some(found) => found,
                None => {
                    *building.upper[slot as usize].lock() = vec![Vec::new(); level];
                    *entry = Some((slot, level));
                    return;
                }
            }
        }
    };
    let metric = config.metric;
    let query = building.slot_vector(slot);
    let mut neighbors = vec![Vec::new(); level + 1];
    let mut nearest = vec![Reached {
        distance: distance(metric, query, building.slot_vector(entry)),
        slot: entry,
    }];
    VISITED.with(|visited| {
        let mut visited = visited.borrow_mut();
        let mut layer = entry_level;
        while layer > level {
            nearest = search_layer(building, &mut visited, metric, query, &nearest, 1, layer);
            layer -= 1;
        }
        for layer in (0..=level.min(entry_level)).rev() {
            let found = search_layer(
                building,
                &mut visited,
                metric,
                query,
                &nearest,
                config.ef_construction,
                layer,
            );
            neighbors[layer] = select(building, metric, &found, config.links_max(layer), slot);
            nearest = found;
        }
    });
    // Its own links first: nothing reaches it before a backlink does.
    {
        let mut upper = building.upper[slot as usize].lock();
        building.set_bottom(slot, &neighbors[0]);
        *upper = neighbors[1..].to_vec();
    }
    for (layer, chosen) in neighbors.iter().enumerate() {
        for &neighbor in chosen {
            let mut upper = building.upper[neighbor as usize].lock();
            let Some(mut list) = building.links_of(neighbor, layer, &upper) else {
                continue;
            };
            if list.contains(&slot) {
                continue;
            }
            if list.len() < config.links_max(layer) {
                list.push(slot);
            } else {
                // Full: the node joins the list and the heuristic cuts it back to size.
                let base = building.slot_vector(neighbor);
                let mut scored: Vec<Reached> = list
                    .iter()
                    .chain(std::iter::once(&slot))
                    .map(|&other| Reached {
                        distance: distance(metric, base, building.slot_vector(other)),
                        slot: other,
                    })
                    .collect();
                scored.sort();
                list = select(building, metric, &scored, config.links_max(layer), neighbor);
            }
            match layer {
                0 => building.set_bottom(neighbor, &list),
                _ => upper[layer - 1] = list,
            }
        }
    }
    if level > entry_level {
        let mut entry = building.entry.write();
        if entry.is_none_or(|(_, known)| level > known) {
            *entry = Some((slot, level));
        }
    }
}

/// Slots visited by the current search layer: a slot is visited when its mark equals the generation.
#[derive(Default)]
struct Visited {
    /// Per slot, the generation of the search that last visited it: two bytes (hnswlib's size), so
    /// the marks of 100,000 nodes fit in L2.
    marks: Vec<u16>,
    generation: u16,
}

impl Visited {
    /// Forgets every visit, for a graph of `slots` slots.
    fn start(&mut self, slots: usize) {
        if self.marks.len() < slots {
            self.marks.resize(slots, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.fill(0);
            self.generation = 1;
        }
    }

    /// Marks `slot`; false when it was marked already.
    fn insert(&mut self, slot: u32) -> bool {
        let mark = &mut self.marks[slot as usize];
        if *mark == self.generation {
            return false;
        }
        *mark = self.generation;
        true
    }
}

thread_local! {
    /// One visited array per thread, reused by every search on it.
    static VISITED: RefCell<Visited> = RefCell::new(Visited::default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_hold_each_slot_across_words() {
        let mut bits = Bits::default();
        for index in 0..130 {
            bits.push(index % 3 == 0);
        }
        bits.set(64, true);
        bits.set(129, true);
        bits.set(0, false);
        let set: Vec<usize> = (0..140).filter(|&index| bits.get(index)).collect();
        let mut expected: Vec<usize> = (1..130).filter(|index| index % 3 == 0).collect();
        expected.extend([64, 129]);
        expected.sort();
        expected.dedup();
        assert_eq!(set, expected);
    }

    fn node(vector: &[f32], neighbors: &[&[&str]]) -> Node {
        Node {
            level: neighbors.len() - 1,
            vector: vector.to_vec(),
            neighbors: neighbors
                .iter()
                .map(|layer| layer.iter().map(|key| key.as_bytes().to_vec()).collect())
                .collect(),
        }
    }

    fn links(dense: &Dense, key: &str, layer: usize) -> Option<Vec<String>> {
        let slot = *dense.slot_of.get(key.as_bytes())?;
        let mut found = None;
        dense.with_links(slot, layer, |links| {
            found = Some(
                links
                    .iter()
                    .map(|&slot| String::from_utf8(dense.key(slot).to_vec()).expect("utf-8"))
                    .collect(),
            );
        });
        found
    }

    #[test]
    fn blocks_keep_vectors_and_lists_when_laid_out_again() {
        let mut dense = Dense::default();
        // A neighbour named before its node gets a slot at once (absent until its node arrives).
        dense.set(b"a", Some(&node(&[1.0, 2.0], &[&["b"]])));
        assert_eq!(dense.vector(1), None);
        dense.set(b"b", Some(&node(&[3.0, 4.0], &[&["a"], &[]])));
        // Longer lists than any before: the blocks are laid out again, twice.
        dense.set(b"c", Some(&node(&[5.0, 6.0], &[&["a", "b"], &["a"]])));
        dense.set(b"d", Some(&node(&[7.0, 8.0], &[&["c", "b", "a"]])));
        assert_eq!(dense.vector(0), Some(&[1.0, 2.0][..]));
        assert_eq!(dense.vector(1), Some(&[3.0, 4.0][..]));
        assert_eq!(dense.vector(2), Some(&[5.0, 6.0][..]));
        assert_eq!(dense.vector(3), Some(&[7.0, 8.0][..]));
        assert_eq!(links(&dense, "a", 0), Some(vec!["b".into()]));
        assert_eq!(links(&dense, "b", 0), Some(vec!["a".into()]));
        assert_eq!(links(&dense, "b", 1), Some(vec![]));
        assert_eq!(links(&dense, "c", 0), Some(vec!["a".into(), "b".into()]));
        assert_eq!(links(&dense, "c", 1), Some(vec!["a".into()]));
        assert_eq!(
            links(&dense, "d", 0),
            Some(vec!["c".into(), "b".into(), "a".into()])
        );
        assert_eq!(links(&dense, "a", 1), None);
        // A removed node is absent, its list gone; the others are untouched.
        dense.set(b"c", None);
        assert_eq!(dense.vector(2), None);
        assert_eq!(links(&dense, "c", 0), None);
        assert_eq!(links(&dense, "c", 1), None);
        assert_eq!(dense.vector(3), Some(&[7.0, 8.0][..]));
        // A vector of other dimensions cannot be searched with this graph's queries.
        dense.set(b"e", Some(&node(&[1.0], &[&["a"]])));
        assert_eq!(dense.vector(4), None);
        // Searching from "d" reaches the nearest present node.
        let found = dense
            .search(Metric::L2, &[3.1, 4.1], b"d", 0, 2)
            .expect("entry point present");
        assert_eq!(dense.key(found[0].slot), b"b");
    }
}
