//! The committed HNSW graph as searches read it: nodes numbered densely, vectors side by side.
//!
//! [`crate::hnsw::GraphState`] keeps each node as stored (`Node`: its vector and its neighbours' primary
//! keys), which inserts and the store's format need. A search through that form hashes and copies a key
//! for every neighbour it looks at and follows two pointers to reach its vector; most of a search's time
//! went there rather than into distances. [`Dense`] is the same graph for reading: every node has a slot
//! (`u32`), vectors lie in one array at `slot * dimensions`, neighbour lists hold slots, and a search
//! marks visited slots in a per-thread array stamped with a generation number (hnswlib's visited-list
//! pool), so it allocates nothing per node and touches memory in few places.
//!
//! It is derived, never stored: built when a graph is loaded or built, and kept up to date node by
//! node as commits change the graph ([`Dense::set`]). A slot, once given to a primary key, keeps it
//! (a deleted node's slot is marked absent); neighbour keys not seen yet get a slot at once, filled
//! when their node arrives.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use crate::hnsw::{Node, distance};
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

/// The graph with nodes numbered (see the module docs).
#[derive(Debug, Default)]
pub struct Dense {
    slot_of: HashMap<Vec<u8>, u32>,
    /// Per slot: the primary key.
    keys: Vec<Vec<u8>>,
    /// Per slot: whether the node is in the graph with a vector of `dimensions` elements.
    present: Vec<bool>,
    /// The dimensions of every present node's vector (set by the first node).
    dimensions: usize,
    /// Per slot, `dimensions` elements (zeros while absent).
    vectors: Vec<f32>,
    /// Per slot, per layer `0..=level`, the neighbours' slots.
    links: Vec<Vec<Vec<u32>>>,
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
        self.links.push(Vec::new());
        slot
    }

    /// Sets the node of `primary_key` (`None`: removes it).
    pub fn set(&mut self, primary_key: &[u8], node: Option<&Node>) {
        let slot = self.slot(primary_key) as usize;
        let Some(node) = node else {
            self.present[slot] = false;
            self.links[slot] = Vec::new();
            return;
        };
        if self.dimensions == 0 && !node.vector.is_empty() {
            self.dimensions = node.vector.len();
            self.vectors = vec![0.0; self.keys.len() * self.dimensions];
        }
        if node.vector.len() != self.dimensions {
            // Not searchable with this graph's queries (a search skips such nodes too).
            self.present[slot] = false;
            self.links[slot] = Vec::new();
            return;
        }
        let links: Vec<Vec<u32>> = node
            .neighbors
            .iter()
            .map(|layer| layer.iter().map(|key| self.slot(key)).collect())
            .collect();
        let start = slot * self.dimensions;
        self.vectors[start..start + self.dimensions].copy_from_slice(&node.vector);
        self.links[slot] = links;
        self.present[slot] = true;
    }

    /// The primary key of `slot`.
    pub(crate) fn key(&self, slot: u32) -> &[u8] {
        &self.keys[slot as usize]
    }

    fn vector(&self, slot: u32) -> Option<&[f32]> {
        let slot = slot as usize;
        if !self.present.get(slot).copied().unwrap_or(false) {
            return None;
        }
        let start = slot * self.dimensions;
        Some(&self.vectors[start..start + self.dimensions])
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
                nearest = self.search_layer(&mut visited, metric, query, &nearest, 1, layer);
            }
            Some(self.search_layer(&mut visited, metric, query, &nearest, ef, 0))
        })
    }

    fn search_layer(
        &self,
        visited: &mut Visited,
        metric: Metric,
        query: &[f32],
        entry: &[Reached],
        ef: usize,
        layer: usize,
    ) -> Vec<Reached> {
        visited.start(self.keys.len());
        for reached in entry {
            visited.insert(reached.slot);
        }
        let mut candidates: BinaryHeap<std::cmp::Reverse<Reached>> =
            entry.iter().copied().map(std::cmp::Reverse).collect();
        let mut results: BinaryHeap<Reached> = entry.iter().copied().collect();
        while let Some(std::cmp::Reverse(nearest)) = candidates.pop() {
            let farthest = results.peek().map_or(f64::INFINITY, |found| found.distance);
            if nearest.distance > farthest && results.len() >= ef {
                break;
            }
            let Some(links) = self.links[nearest.slot as usize].get(layer) else {
                continue;
            };
            for &neighbor in links {
                if !visited.insert(neighbor) {
                    continue;
                }
                let Some(vector) = self.vector(neighbor) else {
                    continue;
                };
                let distance = distance(metric, query, vector);
                let farthest = results.peek().map_or(f64::INFINITY, |found| found.distance);
                if results.len() < ef || distance < farthest {
                    let reached = Reached {
                        distance,
                        slot: neighbor,
                    };
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
}

/// Slots visited by the current search layer: a slot is visited when its mark equals the generation.
#[derive(Default)]
struct Visited {
    marks: Vec<u32>,
    generation: u32,
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
