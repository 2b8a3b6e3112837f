//! The node's Online / Degraded / Offline state machine, exactly the design's
//! transition table:
//!
//! ```text
//! [Offline]  --(peers discovered)-->  [Online]
//! [Online]   --(all peers lost)---->  [Offline]
//! [Online]   --(peers < threshold)->  [Degraded]
//! [Degraded] --(peers recovered)--->  [Online]
//! [Degraded] --(all peers lost)---->  [Offline]
//! ```
//!
//! The table has no Offline -> Degraded edge, yet the state definitions call a
//! node with some peers but fewer than MinHealthyPeers Degraded. We keep the
//! table: leaving Offline always passes through Online (so "peers appeared"
//! consumers, such as the queue flush, fire) and then drops to Degraded in
//! the same evaluation. Both steps are reported.
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum NodeState {
    Online,
    Degraded,
    Offline,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Online => "Online",
            NodeState::Degraded => "Degraded",
            NodeState::Offline => "Offline",
        }
    }

    pub const ALL: [NodeState; 3] = [NodeState::Online, NodeState::Degraded, NodeState::Offline];
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state change together with the design's name for its trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: NodeState,
    pub to: NodeState,
    pub trigger: &'static str,
}

/// The transitions taken from `current` when `active` peers respond and the
/// node wants `min_healthy` of them. Empty when the state does not change.
pub fn evaluate(current: NodeState, active: usize, min_healthy: usize) -> Vec<Transition> {
    use NodeState::*;
    let step = |from, to, trigger| Transition { from, to, trigger };
    match current {
        Offline if active == 0 => vec![],
        Offline => {
            let mut out = vec![step(Offline, Online, "peers discovered")];
            if active < min_healthy {
                out.push(step(Online, Degraded, "peers < threshold"));
            }
            out
        }
        Online if active == 0 => vec![step(Online, Offline, "all peers lost")],
        Online if active < min_healthy => vec![step(Online, Degraded, "peers < threshold")],
        Online => vec![],
        Degraded if active == 0 => vec![step(Degraded, Offline, "all peers lost")],
        Degraded if active >= min_healthy => vec![step(Degraded, Online, "peers recovered")],
        Degraded => vec![],
    }
}

/// The state `evaluate` ends in.
pub fn settle(current: NodeState, active: usize, min_healthy: usize) -> NodeState {
    evaluate(current, active, min_healthy)
        .last()
        .map_or(current, |t| t.to)
}

#[cfg(test)]
mod tests {
    use super::NodeState::*;
    use super::*;

    /// The design's table, edge by edge; anything else must not happen.
    const TABLE: [(NodeState, NodeState); 5] = [
        (Offline, Online),
        (Online, Offline),
        (Online, Degraded),
        (Degraded, Online),
        (Degraded, Offline),
    ];

    #[test]
    fn each_design_edge_is_taken_by_its_trigger() {
        assert_eq!(
            evaluate(Offline, 5, 5),
            vec![Transition {
                from: Offline,
                to: Online,
                trigger: "peers discovered"
            }]
        );
        assert_eq!(evaluate(Online, 0, 5)[0].to, Offline);
        assert_eq!(evaluate(Online, 4, 5)[0].to, Degraded);
        assert_eq!(evaluate(Degraded, 5, 5)[0].to, Online);
        assert_eq!(evaluate(Degraded, 0, 5)[0].to, Offline);
    }

    #[test]
    fn stable_states_do_not_move() {
        assert!(evaluate(Offline, 0, 5).is_empty());
        assert!(evaluate(Online, 5, 5).is_empty());
        assert!(evaluate(Online, 50, 5).is_empty());
        assert!(evaluate(Degraded, 3, 5).is_empty());
    }

    #[test]
    fn offline_with_too_few_peers_goes_through_online_to_degraded() {
        let t = evaluate(Offline, 2, 5);
        assert_eq!(
            t.iter().map(|t| (t.from, t.to)).collect::<Vec<_>>(),
            vec![(Offline, Online), (Online, Degraded)]
        );
        assert_eq!(settle(Offline, 2, 5), Degraded);
    }

    #[test]
    fn every_transition_for_every_input_is_an_edge_of_the_table() {
        for from in NodeState::ALL {
            for active in 0..8 {
                for min in 1..6 {
                    let steps = evaluate(from, active, min);
                    let mut at = from;
                    for t in &steps {
                        assert_eq!(t.from, at);
                        assert!(
                            TABLE.contains(&(t.from, t.to)),
                            "{t:?} not in the design's table"
                        );
                        at = t.to;
                    }
                    // The end state matches the design's definitions.
                    let want = if active == 0 {
                        Offline
                    } else if active < min {
                        Degraded
                    } else {
                        Online
                    };
                    assert_eq!(at, want, "from {from:?} active={active} min={min}");
                }
            }
        }
    }
}
