//! Whether the room may read its talkers now, and which member has
//! stalled: kept without a clock (the caller says what time it is, and
//! what each member's connection shows).
//!
//! Why: a room that relays faster than some member takes must either
//! queue without end, drop lines, or slow the talkers. It slows them:
//! while any member has more than its bound queued, nobody is read, and
//! TCP holds the talkers' lines in their clients. Nothing is dropped. But
//! then one member that takes nothing at all would stop the whole room,
//! so a member that takes no byte for [`STALL`] while something waits for
//! it is cut off, and the room goes on without it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Who;

/// How long a member may take nothing at all while something waits for
/// it before it is cut off.
pub const STALL: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Track {
    /// Bytes queued for it and not yet taken, as last seen.
    queued: usize,
    /// Bytes it has taken so far, as last seen.
    taken: u64,
    /// Since when it has taken nothing while bytes waited for it.
    since: Instant,
}

/// The room's flow: each member's queue and progress.
#[derive(Debug)]
pub struct Flow {
    /// Bytes a member may have queued while the room reads on.
    bound: usize,
    stall: Duration,
    members: BTreeMap<Who, Track>,
}

impl Flow {
    pub fn new(bound: usize, stall: Duration) -> Self {
        Self {
            bound,
            stall,
            members: BTreeMap::new(),
        }
    }

    /// What member `who`'s connection shows at `now`: `queued` bytes wait
    /// for it, and it has taken `taken` bytes in all.
    pub fn observe(&mut self, who: Who, queued: usize, taken: u64, now: Instant) {
        let track = self.members.entry(who).or_insert(Track {
            queued: 0,
            taken,
            since: now,
        });
        // Its clock runs only while something waits for it and it takes
        // nothing: a member with nothing queued is never stalled.
        if taken != track.taken || track.queued == 0 {
            track.since = now;
        }
        track.queued = queued;
        track.taken = taken;
    }

    /// Member `who` is no longer watched (it left, or was cut off).
    pub fn forget(&mut self, who: Who) {
        self.members.remove(&who);
    }

    /// Whether talkers may be read now: no member has more than the bound
    /// queued.
    pub fn may_read(&self) -> bool {
        self.members.values().all(|t| t.queued <= self.bound)
    }

    /// Members that have taken nothing for the stall time while bytes
    /// waited for them, at `now`.
    pub fn stalled(&self, now: Instant) -> Vec<Who> {
        self.members
            .iter()
            .filter(|(_, t)| t.queued > 0 && now.saturating_duration_since(t.since) >= self.stall)
            .map(|(&who, _)| who)
            .collect()
    }

    /// When a member would be found stalled if it takes nothing until
    /// then.
    pub fn wake_at(&self) -> Option<Instant> {
        self.members
            .values()
            .filter(|t| t.queued > 0)
            .map(|t| t.since + self.stall)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;

    fn flow() -> Flow {
        Flow::new(256 * KIB, STALL)
    }

    #[test]
    fn a_member_over_the_bound_stops_the_reading_until_it_takes_enough() {
        let (mut flow, t0) = (flow(), Instant::now());
        flow.observe(1, 0, 0, t0);
        flow.observe(2, 300 * KIB, 0, t0);
        assert!(!flow.may_read());
        // A tenth of a second later it took 100 KiB: under the bound again.
        let t1 = t0 + Duration::from_millis(100);
        flow.observe(2, 200 * KIB, 100 * KIB as u64, t1);
        assert!(flow.may_read());
        assert_eq!(flow.stalled(t1), Vec::<Who>::new());
    }

    #[test]
    fn a_member_that_takes_nothing_for_the_stall_time_is_stalled_and_only_then() {
        let (mut flow, t0) = (flow(), Instant::now());
        flow.observe(1, 10, 0, t0);
        flow.observe(2, 10, 0, t0);
        assert_eq!(flow.wake_at(), Some(t0 + STALL));
        // Member 2 takes a byte at 4.9 s; member 1 takes nothing.
        let t1 = t0 + Duration::from_millis(4900);
        flow.observe(1, 10, 0, t1);
        flow.observe(2, 10, 1, t1);
        assert_eq!(flow.stalled(t1), Vec::<Who>::new());
        let t2 = t0 + STALL;
        flow.observe(1, 10, 0, t2);
        flow.observe(2, 10, 1, t2);
        assert_eq!(flow.stalled(t2), [1]);
        flow.forget(1);
        assert_eq!(flow.stalled(t2), Vec::<Who>::new());
        assert_eq!(flow.wake_at(), Some(t1 + STALL));
    }

    #[test]
    fn a_member_with_nothing_queued_is_never_stalled_however_long() {
        let (mut flow, t0) = (flow(), Instant::now());
        flow.observe(1, 0, 0, t0);
        // Ten minutes of quiet, then something queued: its clock starts now.
        let later = t0 + Duration::from_secs(600);
        flow.observe(1, 0, 0, later);
        assert_eq!(flow.stalled(later), Vec::<Who>::new());
        assert_eq!(flow.wake_at(), None);
        flow.observe(1, 50, 0, later);
        assert_eq!(flow.stalled(later), Vec::<Who>::new());
        assert_eq!(flow.wake_at(), Some(later + STALL));
        let stuck = later + STALL;
        flow.observe(1, 50, 0, stuck);
        assert_eq!(flow.stalled(stuck), [1]);
    }
}
