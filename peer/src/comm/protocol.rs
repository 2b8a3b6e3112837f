//! Protocol negotiation (design "Communication Manager"): gRPC stream →
//! gRPC unary → REST. Each peer link starts at the highest protocol both
//! sides allow, steps down when the peer does not serve a protocol, and is
//! probed upward again after `REPROBE_AFTER`, since a peer may be upgraded
//! or a middlebox fixed.
use std::time::Duration;

pub use crate::config::CommunicationProtocol as Protocol;

/// How long a link stays below its ceiling before trying upward again.
pub const REPROBE_AFTER: Duration = Duration::from_secs(5 * 60);

impl Protocol {
    /// The name advertised in `supported_protocols`.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::GrpcStream => "grpc-stream",
            Protocol::Grpc => "grpc",
            Protocol::Rest => "rest",
        }
    }

    fn rank(self) -> u8 {
        match self {
            Protocol::GrpcStream => 2,
            Protocol::Grpc => 1,
            Protocol::Rest => 0,
        }
    }

    /// The next protocol down, `None` below REST.
    pub fn below(self) -> Option<Protocol> {
        match self {
            Protocol::GrpcStream => Some(Protocol::Grpc),
            Protocol::Grpc => Some(Protocol::Rest),
            Protocol::Rest => None,
        }
    }

    pub fn min(self, other: Protocol) -> Protocol {
        if self.rank() <= other.rank() {
            self
        } else {
            other
        }
    }

    /// What a node serving up to `self` advertises, highest first.
    pub fn advertised(self) -> Vec<String> {
        let mut out = vec![self.label().to_owned()];
        let mut p = self;
        while let Some(lower) = p.below() {
            out.push(lower.label().to_owned());
            p = lower;
        }
        out
    }

    /// The highest protocol in a peer's `supported_protocols`; `None` when
    /// it names none we know (unknown: assume the best and negotiate down).
    pub fn highest_advertised(list: &[String]) -> Option<Protocol> {
        let has = |name: &str| list.iter().any(|p| p.eq_ignore_ascii_case(name));
        if has("grpc-stream") {
            Some(Protocol::GrpcStream)
        } else if has("grpc") {
            Some(Protocol::Grpc)
        } else if has("rest") {
            Some(Protocol::Rest)
        } else {
            None
        }
    }
}

/// One peer link's negotiated protocol.
#[derive(Debug, Clone)]
pub struct Negotiation {
    /// This node's `PreferredProtocol`, lowered to what the peer
    /// advertises: never exceeded.
    ceiling: Protocol,
    current: Protocol,
    /// When the link last stepped down (clock time).
    lowered_at: Option<Duration>,
}

impl Negotiation {
    pub fn new(ceiling: Protocol) -> Self {
        Negotiation {
            ceiling,
            current: ceiling,
            lowered_at: None,
        }
    }

    pub fn current(&self) -> Protocol {
        self.current
    }

    /// The protocol to use at `now`. Returns `(protocol, true)` when this
    /// call is an upward re-probe.
    pub fn protocol(&mut self, now: Duration) -> (Protocol, bool) {
        match self.lowered_at {
            Some(at) if now.saturating_sub(at) >= REPROBE_AFTER && self.current != self.ceiling => {
                self.current = self.ceiling;
                self.lowered_at = None;
                (self.current, true)
            }
            _ => (self.current, false),
        }
    }

    /// Sets the ceiling to `own` lowered to what the peer advertises. A
    /// changed advertisement is news about the peer: the link starts over
    /// at the new ceiling.
    pub fn advertised(&mut self, own: Protocol, theirs: Option<Protocol>) {
        let ceiling = theirs.map_or(own, |t| own.min(t));
        if ceiling != self.ceiling {
            self.ceiling = ceiling;
            self.current = ceiling;
            self.lowered_at = None;
        }
    }

    /// The peer does not serve `failed`: step below it. Returns the new
    /// protocol, or `None` when nothing is left (REST failed).
    pub fn step_down(&mut self, failed: Protocol, now: Duration) -> Option<Protocol> {
        let next = failed.below()?;
        if self.current.rank() > next.rank() {
            self.current = next;
        }
        self.lowered_at = Some(now);
        Some(self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn advertisement_lists_everything_down_to_rest() {
        assert_eq!(
            Protocol::GrpcStream.advertised(),
            s(&["grpc-stream", "grpc", "rest"])
        );
        assert_eq!(Protocol::Grpc.advertised(), s(&["grpc", "rest"]));
        assert_eq!(Protocol::Rest.advertised(), s(&["rest"]));
        for p in [Protocol::GrpcStream, Protocol::Grpc, Protocol::Rest] {
            assert_eq!(Protocol::highest_advertised(&p.advertised()), Some(p));
        }
        assert_eq!(Protocol::highest_advertised(&s(&["smtp"])), None);
        assert_eq!(Protocol::highest_advertised(&[]), None);
    }

    #[test]
    fn steps_down_and_reprobes_upward_later() {
        let mut n = Negotiation::new(Protocol::GrpcStream);
        assert_eq!(n.protocol(Duration::ZERO), (Protocol::GrpcStream, false));
        let t = Duration::from_secs(10);
        assert_eq!(n.step_down(Protocol::GrpcStream, t), Some(Protocol::Grpc));
        assert_eq!(n.step_down(Protocol::Grpc, t), Some(Protocol::Rest));
        assert_eq!(n.step_down(Protocol::Rest, t), None);
        assert_eq!(
            n.protocol(t + Duration::from_secs(1)),
            (Protocol::Rest, false)
        );
        assert_eq!(
            n.protocol(t + REPROBE_AFTER),
            (Protocol::GrpcStream, true),
            "re-probed at the top"
        );
        assert_eq!(
            n.protocol(t + REPROBE_AFTER * 2),
            (Protocol::GrpcStream, false)
        );
    }

    #[test]
    fn a_late_step_down_from_a_stale_call_does_not_raise_the_link() {
        let mut n = Negotiation::new(Protocol::GrpcStream);
        n.step_down(Protocol::Grpc, Duration::ZERO);
        assert_eq!(n.current(), Protocol::Rest);
        n.step_down(Protocol::GrpcStream, Duration::ZERO);
        assert_eq!(n.current(), Protocol::Rest);
    }

    #[test]
    fn the_ceiling_follows_own_preference_and_the_peers_advertisement() {
        let mut n = Negotiation::new(Protocol::GrpcStream);
        n.advertised(Protocol::GrpcStream, Some(Protocol::Rest));
        assert_eq!(n.protocol(Duration::ZERO).0, Protocol::Rest);
        // Never above the ceiling, even when re-probing.
        assert_eq!(n.protocol(REPROBE_AFTER * 3).0, Protocol::Rest);
        n.advertised(Protocol::GrpcStream, Some(Protocol::Grpc));
        assert_eq!(n.protocol(REPROBE_AFTER * 3).0, Protocol::Grpc);
        let mut own_rest = Negotiation::new(Protocol::Rest);
        own_rest.advertised(Protocol::Rest, Some(Protocol::GrpcStream));
        assert_eq!(own_rest.protocol(Duration::ZERO).0, Protocol::Rest);
    }
}
