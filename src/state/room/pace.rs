//! How fast one member may talk: a token bucket, kept without a clock (the
//! caller says what time it is).
//!
//! Why: a member whose backlog passes its bound is disconnected, so that
//! one who stops reading never slows the others. Without a pace, a single
//! member piping a file at loopback speed would push every reader slower
//! than loopback past its bound, attentive ones included. Paced, a reader
//! that keeps up with the pace never falls more than the burst behind, and
//! the talker is slowed instead: the server reads its lines later, TCP
//! holds them back in its client, and none is lost (while the room is open).

use std::time::{Duration, Instant};

pub struct Pace {
    /// Bytes per second, sustained.
    rate: f64,
    /// Bytes that may be said at once after a quiet spell.
    burst: f64,
    /// Bytes that may be said now; below zero, a debt paid off at `rate`.
    allowance: f64,
    /// When `allowance` was last brought up to date.
    at: Option<Instant>,
}

impl Pace {
    pub fn new(rate: usize, burst: usize) -> Self {
        Self {
            rate: rate.max(1) as f64,
            burst: burst as f64,
            allowance: burst as f64,
            at: None,
        }
    }

    /// Takes `bytes` said at `now`; returns how long the talker must wait
    /// before more is taken from it (zero when it is within its pace). What
    /// was said is never refused: one read may go over the allowance, and
    /// the wait pays for it.
    pub fn take(&mut self, bytes: usize, now: Instant) -> Duration {
        if let Some(at) = self.at {
            let earned = now.saturating_duration_since(at).as_secs_f64() * self.rate;
            self.allowance = (self.allowance + earned).min(self.burst);
        }
        self.at = Some(now);
        self.allowance -= bytes as f64;
        match self.allowance < 0.0 {
            true => Duration::from_secs_f64(-self.allowance / self.rate),
            false => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;

    #[test]
    fn a_burst_passes_and_what_goes_over_it_waits_at_the_rate() {
        let t0 = Instant::now();
        let mut pace = Pace::new(100 * KIB, 500 * KIB);
        assert_eq!(pace.take(400 * KIB, t0), Duration::ZERO);
        assert_eq!(pace.take(100 * KIB, t0), Duration::ZERO);
        // 50 KiB over, at 100 KiB/s: half a second.
        assert_eq!(pace.take(50 * KIB, t0), Duration::from_millis(500));
        // Paid off half a second later, and 10 KiB more earned 0.1 s after.
        assert_eq!(
            pace.take(10 * KIB, t0 + Duration::from_millis(600)),
            Duration::ZERO
        );
    }

    #[test]
    fn a_steady_talker_within_the_rate_never_waits() {
        let t0 = Instant::now();
        let mut pace = Pace::new(100 * KIB, 10 * KIB);
        for tenth in 0..1000u32 {
            let now = t0 + Duration::from_millis(100) * tenth;
            assert_eq!(pace.take(10 * KIB, now), Duration::ZERO, "at {tenth}");
        }
    }

    #[test]
    fn a_flood_is_held_to_the_rate_over_minutes() {
        let t0 = Instant::now();
        let mut pace = Pace::new(100 * KIB, 200 * KIB);
        // A talker that says 64 KiB whenever it is let: ten minutes later it
        // has said the burst plus ten minutes at the rate, and one read more.
        let (mut now, mut said) = (t0, 0);
        while now < t0 + Duration::from_secs(600) {
            said += 64 * KIB;
            now += pace.take(64 * KIB, now);
        }
        let most = 200 * KIB + 600 * 100 * KIB + 64 * KIB;
        assert!(said <= most, "{said} > {most}");
        assert!(said >= most - 2 * 64 * KIB, "{said} held back too much");
    }

    #[test]
    fn a_quiet_spell_earns_the_burst_and_no_more() {
        let t0 = Instant::now();
        let mut pace = Pace::new(100 * KIB, 200 * KIB);
        assert_eq!(pace.take(200 * KIB, t0), Duration::ZERO);
        let later = t0 + Duration::from_secs(600);
        assert_eq!(pace.take(200 * KIB, later), Duration::ZERO);
        assert_eq!(pace.take(100 * KIB, later), Duration::from_secs(1));
    }

    #[test]
    fn time_going_backwards_earns_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut pace = Pace::new(100 * KIB, 100 * KIB);
        assert_eq!(pace.take(100 * KIB, t0), Duration::ZERO);
        let earlier = t0 - Duration::from_secs(5);
        assert_eq!(pace.take(10 * KIB, earlier), Duration::from_millis(100));
    }
}
