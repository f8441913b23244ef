//! Dependency order: a topological sort that prefers a fixed kind order.
//!
//! Kahn's algorithm with a priority queue: of the objects whose dependencies
//! are all placed, the one with the smallest key goes next. Keys start with a
//! kind rank (schemas, extensions, collations, types, sequences, functions,
//! aggregates, tables, views, materialized views), so the output reads in
//! that order wherever dependencies allow, and is deterministic. Pure.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// The outcome of [`toposort`].
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Sorted<N> {
    /// Every node, dependencies first.
    pub order: Vec<N>,
    /// Nodes placed while some of their dependencies were not (they sit in a
    /// cycle); empty when the graph is acyclic.
    pub cycle_breaks: Vec<N>,
}

/// Orders `nodes` so that each comes after everything it depends on.
///
/// `edges` are `(dependent, dependency)` pairs; edges naming a node outside
/// `nodes`, and self edges, are ignored. On a cycle, the remaining node with
/// the smallest key is placed anyway and reported in `cycle_breaks`.
pub(super) fn toposort<N, K>(
    nodes: &BTreeSet<N>,
    edges: &[(N, N)],
    key: impl Fn(&N) -> K,
) -> Sorted<N>
where
    N: Ord + Copy,
    K: Ord,
{
    let mut waiting_on: BTreeMap<N, BTreeSet<N>> =
        nodes.iter().map(|n| (*n, BTreeSet::new())).collect();
    let mut dependents: BTreeMap<N, Vec<N>> = BTreeMap::new();
    for (from, to) in edges {
        if from == to || !nodes.contains(from) || !nodes.contains(to) {
            continue;
        }
        if waiting_on.entry(*from).or_default().insert(*to) {
            dependents.entry(*to).or_default().push(*from);
        }
    }
    let mut ready: BinaryHeap<Reverse<(K, N)>> = waiting_on
        .iter()
        .filter(|(_, deps)| deps.is_empty())
        .map(|(n, _)| Reverse((key(n), *n)))
        .collect();
    let mut placed = BTreeSet::new();
    let mut sorted = Sorted {
        order: Vec::with_capacity(nodes.len()),
        cycle_breaks: Vec::new(),
    };
    while placed.len() < nodes.len() {
        let next = match ready.pop() {
            Some(Reverse((_, n))) => n,
            None => {
                // A cycle: place the smallest remaining node and go on.
                let n = waiting_on
                    .keys()
                    .filter(|n| !placed.contains(*n))
                    .min_by_key(|n| key(n))
                    .copied()
                    .expect("fewer placed than nodes, so one remains");
                sorted.cycle_breaks.push(n);
                n
            }
        };
        if !placed.insert(next) {
            continue;
        }
        sorted.order.push(next);
        for dependent in dependents.get(&next).into_iter().flatten() {
            if placed.contains(dependent) {
                continue;
            }
            let deps = waiting_on
                .get_mut(dependent)
                .expect("every dependent is a node");
            deps.remove(&next);
            if deps.is_empty() {
                ready.push(Reverse((key(dependent), *dependent)));
            }
        }
    }
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[u32]) -> BTreeSet<u32> {
        items.iter().copied().collect()
    }

    #[test]
    fn dependencies_come_first_and_ties_follow_the_key() {
        // 1 depends on 3; key is the value itself, so 2 would go first
        // without edges, then 3 before 1.
        let sorted = toposort(&set(&[1, 2, 3]), &[(1, 3)], |n| *n);
        assert_eq!(sorted.order, [2, 3, 1]);
        assert!(sorted.cycle_breaks.is_empty());
    }

    #[test]
    fn a_function_returning_a_row_type_waits_for_its_table() {
        // Kind ranks: function 5, table 7. The function depends on the table.
        let rank = |n: &u32| if *n == 10 { 5 } else { 7 };
        let sorted = toposort(&set(&[10, 20]), &[(10, 20)], rank);
        assert_eq!(sorted.order, [20, 10]);
    }

    #[test]
    fn view_on_view_chains_resolve() {
        let sorted = toposort(&set(&[1, 2, 3, 4]), &[(1, 2), (2, 3), (3, 4)], |n| *n);
        assert_eq!(sorted.order, [4, 3, 2, 1]);
    }

    #[test]
    fn cycles_are_broken_at_the_smallest_key_and_reported() {
        let sorted = toposort(&set(&[1, 2, 3]), &[(1, 2), (2, 1), (3, 1)], |n| *n);
        assert_eq!(sorted.order, [1, 2, 3]);
        assert_eq!(sorted.cycle_breaks, [1]);
    }

    #[test]
    fn edges_to_unknown_nodes_and_self_edges_are_ignored() {
        let sorted = toposort(&set(&[1, 2]), &[(1, 1), (1, 99), (2, 1)], |n| *n);
        assert_eq!(sorted.order, [1, 2]);
        assert!(sorted.cycle_breaks.is_empty());
    }
}
