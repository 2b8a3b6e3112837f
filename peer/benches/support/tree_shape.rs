//! The broadcast tree across an in-process network, for the bench's stderr:
//! its shape sampled while a case runs (how many pieces the two-way links
//! split the peers into, how many links are open at one end only; a whole
//! tree is one piece), and the counters that explain a slow case.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use sorcha_peer::node::NodeHandle;

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub pieces: usize,
    pub one_sided: usize,
}

pub fn shape(nodes: &[NodeHandle]) -> Shape {
    let index: HashMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.membership.id().to_owned(), i))
        .collect();
    let links: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            n.distributor
                .tree_links()
                .iter()
                .filter_map(|id| index.get(id).copied())
                .collect()
        })
        .collect();
    let mut parent: Vec<usize> = (0..nodes.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut one_sided = 0;
    for (i, out) in links.iter().enumerate() {
        for &j in out {
            if links[j].contains(&i) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a] = b;
            } else {
                one_sided += 1;
            }
        }
    }
    let pieces = (0..nodes.len())
        .filter(|&i| root(&mut parent, i) == i)
        .count();
    Shape { pieces, one_sided }
}

/// Samples of `shape`, taken at most every `every` by whoever calls
/// `sample` (the bench's own loops).
pub struct Samples {
    every: Duration,
    last: Option<Instant>,
    shapes: Vec<Shape>,
}

impl Samples {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            shapes: Vec::new(),
        }
    }

    pub fn sample(&mut self, nodes: &[NodeHandle]) {
        if self.last.is_some_and(|t| t.elapsed() < self.every) {
            return;
        }
        self.last = Some(Instant::now());
        self.shapes.push(shape(nodes));
    }

    /// A one-line summary (median and worst).
    pub fn summary(&self) -> String {
        if self.shapes.is_empty() {
            return "no samples".into();
        }
        let mut pieces: Vec<usize> = self.shapes.iter().map(|s| s.pieces).collect();
        let mut one_sided: Vec<usize> = self.shapes.iter().map(|s| s.one_sided).collect();
        pieces.sort_unstable();
        one_sided.sort_unstable();
        let whole = pieces.iter().filter(|&&p| p == 1).count();
        format!(
            "tree shape, {} samples: whole in {whole}; pieces median {} max {}; one-sided links median {} max {}",
            self.shapes.len(),
            pieces[pieces.len() / 2],
            pieces[pieces.len() - 1],
            one_sided[one_sided.len() / 2],
            one_sided[one_sided.len() - 1],
        )
    }
}

/// Prints the whole network's tree and traffic counters (since it started).
pub fn print_counters(nodes: &[NodeHandle]) {
    let sum = |f: &dyn Fn(&sorcha_peer::metrics::Metrics) -> u64| -> u64 {
        nodes.iter().map(|n| f(&n.membership.metrics)).sum()
    };
    eprintln!(
        "tree: {} prunes, {} grafts, {} eager links now (all peers)",
        sum(&|m| m.tree_prunes.get()),
        sum(&|m| m.tree_grafts.get()),
        sum(&|m| m.tree_eager_links.get() as u64),
    );
    eprintln!(
        "traffic: {} pushes by call, {} on streams, {} of them held already; \
         {} pulls served; {} anti-entropy repairs; {} announcements (all peers, whole run)",
        sum(&|m| m.tx_pushes_received.with_label_values(&["call"]).get()),
        sum(&|m| m.tx_pushes_received.with_label_values(&["stream"]).get()),
        sum(&|m| m.tx_push_duplicates.get()),
        sum(&|m| m.tx_pulls_served.get()),
        sum(&|m| m.anti_entropy_repairs.get()),
        sum(&|m| m.announcements_sent.get()),
    );
}
