//! The room's own deadlines, kept without a clock: the caller says what
//! time it is. (How each member's connection ends is `crate::state::ending`'s,
//! one state machine per member.)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a newcomer has to choose its name (`/nick`, as our client does
/// as soon as it sees the greeting) before it is announced under the name
/// it was given; lines it sends meanwhile wait for the announcement.
pub const HELLO_WAIT: Duration = Duration::from_secs(1);

/// Deadlines by key.
#[derive(Debug)]
pub struct Deadlines<K> {
    at: BTreeMap<K, Instant>,
}

impl<K: Ord + Copy> Default for Deadlines<K> {
    fn default() -> Self {
        Self {
            at: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Copy> Deadlines<K> {
    pub fn set(&mut self, key: K, at: Instant) {
        self.at.insert(key, at);
    }

    pub fn cancel(&mut self, key: K) {
        self.at.remove(&key);
    }

    /// Removes and returns the keys whose deadline is at or before `now`,
    /// earliest first.
    pub fn due(&mut self, now: Instant) -> Vec<K> {
        let mut due: Vec<(Instant, K)> = self
            .at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, at)| (*at, *k))
            .collect();
        due.sort();
        for (_, key) in &due {
            self.at.remove(key);
        }
        due.into_iter().map(|(_, k)| k).collect()
    }

    /// The earliest deadline still set.
    pub fn next(&self) -> Option<Instant> {
        self.at.values().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_fall_due_in_order_once_and_cancelled_ones_never() {
        let start = Instant::now();
        let mut deadlines = Deadlines::default();
        deadlines.set(1, start + HELLO_WAIT);
        deadlines.set(2, start + Duration::from_millis(300));
        deadlines.set(3, start + Duration::from_millis(600));
        deadlines.cancel(3);
        assert_eq!(deadlines.next(), Some(start + Duration::from_millis(300)));
        assert!(deadlines.due(start).is_empty());
        assert!(deadlines.due(start + Duration::from_millis(299)).is_empty());
        assert_eq!(deadlines.due(start + Duration::from_secs(5)), [2, 1]);
        assert!(deadlines.due(start + Duration::from_secs(6)).is_empty());
        assert_eq!(deadlines.next(), None);
    }

    #[test]
    fn a_deadline_set_again_moves() {
        let start = Instant::now();
        let mut deadlines = Deadlines::default();
        deadlines.set(7, start + Duration::from_secs(1));
        deadlines.set(7, start + Duration::from_secs(10));
        assert!(deadlines.due(start + Duration::from_secs(2)).is_empty());
        assert_eq!(deadlines.due(start + Duration::from_secs(10)), [7]);
    }
}
