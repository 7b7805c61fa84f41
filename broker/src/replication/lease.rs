//! The leader lease: how long this node may still serve partitions on its metadata image.
//!
//! The controller fences a broker whose heartbeats stop for `broker.session.timeout.ms` and
//! moves its leaderships elsewhere; the broker learns that only when its image catches up.
//! A node paused (SIGSTOP, a VM freeze) or cut off for longer than that wakes up believing
//! it still leads: it would acknowledge acks=1 writes that its successor's log then
//! overwrites, and answer reads from a log that ended when it stopped, so that a consumer
//! told OFFSET_OUT_OF_RANGE resets to the stale end and reads again what it had read (found
//! by the fault matrix with kcat). The lease closes that window: each heartbeat the
//! controller leader acknowledges, once the local image holds everything the leader had
//! applied when it answered, proves that no fencing can take effect before the heartbeat's
//! send time plus the session timeout; past that, partition requests are refused with
//! NOT_LEADER_OR_FOLLOWER until a heartbeat gets through again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Until when the last acknowledged heartbeat covers this node.
pub struct LeaderLease {
    /// The reference point for `until_ms`.
    base: Instant,
    /// Milliseconds after `base`; 0 before the first renewal.
    until_ms: AtomicU64,
    session: Duration,
}

impl LeaderLease {
    /// A lease not yet held, lasting `session` (`broker.session.timeout.ms`) from each
    /// renewal.
    pub fn new(session: Duration) -> Self {
        Self {
            base: Instant::now(),
            until_ms: AtomicU64::new(0),
            session,
        }
    }

    /// A heartbeat sent at `sent` was acknowledged and the local image has caught up with
    /// what the controller leader had applied when it answered.
    pub fn renew(&self, sent: Instant) {
        let until = sent.saturating_duration_since(self.base) + self.session;
        self.until_ms
            .fetch_max(until.as_millis() as u64, Ordering::Relaxed);
    }

    /// Whether this node may act on its image as a partition's leader or replica now.
    pub fn held(&self) -> bool {
        let now = self.base.elapsed().as_millis() as u64;
        now < self.until_ms.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_runs_out_a_session_after_the_heartbeat_was_sent() {
        let lease = LeaderLease::new(Duration::from_millis(200));
        assert!(!lease.held(), "not held before the first heartbeat");
        lease.renew(Instant::now());
        assert!(lease.held());
        std::thread::sleep(Duration::from_millis(250));
        assert!(
            !lease.held(),
            "a session after the heartbeat, it has run out"
        );
        // An older heartbeat answered late does not shorten a newer renewal.
        let old = Instant::now();
        lease.renew(Instant::now() + Duration::from_millis(500));
        lease.renew(old);
        std::thread::sleep(Duration::from_millis(250));
        assert!(lease.held());
    }
}
