//! Points held against networks ([`Prefix`]) for what they did lately,
//! fading with time: how the server tells a network that keeps trying
//! (guessing the code, opening connections that say nothing) from one it
//! has hardly heard of. A state machine fed the time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::state::prefix::Prefix;

/// Networks with points kept at most; past this the lowest are forgotten
/// (a network forgotten is new again, which only an attacker with
/// thousands of networks gains by).
const MAX_NETWORKS: usize = 4096;

/// Points below this are as good as none, and forgotten first.
const NEXT_TO_NOTHING: f64 = 0.01;

#[derive(Debug)]
pub struct Points {
    half_life: Duration,
    scores: HashMap<Prefix, Score>,
}

/// A network's points, as they were at `at`.
#[derive(Debug, Clone, Copy)]
struct Score {
    points: f64,
    at: Instant,
}

impl Points {
    /// Points halved every `half_life`.
    pub fn new(half_life: Duration) -> Self {
        Self {
            half_life,
            scores: HashMap::new(),
        }
    }

    /// The points `network` has at `now`.
    pub fn of(&self, network: Prefix, now: Instant) -> f64 {
        self.scores
            .get(&network)
            .map_or(0.0, |score| decayed(score, now, self.half_life))
    }

    /// Gives `network` `points` more at `now`.
    pub fn add(&mut self, network: Prefix, now: Instant, points: f64) {
        let points = self.of(network, now) + points;
        self.scores.insert(network, Score { points, at: now });
        if self.scores.len() > MAX_NETWORKS {
            let half_life = self.half_life;
            self.scores
                .retain(|_, score| decayed(score, now, half_life) >= NEXT_TO_NOTHING);
            if self.scores.len() > MAX_NETWORKS / 2 {
                let mut all: Vec<f64> = self
                    .scores
                    .values()
                    .map(|score| decayed(score, now, half_life))
                    .collect();
                all.sort_by(f64::total_cmp);
                let floor = all[all.len() - MAX_NETWORKS / 2];
                self.scores
                    .retain(|_, score| decayed(score, now, half_life) >= floor);
            }
        }
    }

    /// How many networks have points kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.scores.len()
    }
}

fn decayed(score: &Score, now: Instant, half_life: Duration) -> f64 {
    let halvings = now.saturating_duration_since(score.at).as_secs_f64() / half_life.as_secs_f64();
    score.points * 0.5f64.powf(halvings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn network(n: u8) -> Prefix {
        Prefix::of(IpAddr::from([10, 0, n, 1]))
    }

    #[test]
    fn points_fade_by_half_every_half_life() {
        for half_life in [Duration::from_millis(100), Duration::from_secs(600)] {
            let start = Instant::now();
            let mut points = Points::new(half_life);
            assert_eq!(points.of(network(1), start), 0.0);
            points.add(network(1), start, 4.0);
            points.add(network(1), start, 4.0);
            assert_eq!(points.of(network(1), start), 8.0);
            assert_eq!(points.of(network(2), start), 0.0);
            let one = points.of(network(1), start + half_life);
            assert!((one - 4.0).abs() < 1e-9, "{one}");
            let ten = points.of(network(1), start + half_life * 10);
            assert!(ten < 0.01, "{ten}");
            // Added to what is left.
            points.add(network(1), start + half_life, 1.0);
            let now = points.of(network(1), start + half_life);
            assert!((now - 5.0).abs() < 1e-9, "{now}");
        }
    }

    #[test]
    fn points_are_kept_for_a_bounded_number_of_networks_the_highest_first() {
        let start = Instant::now();
        let mut points = Points::new(Duration::from_secs(60));
        let guesser = Prefix::of(IpAddr::from([192, 0, 2, 1]));
        points.add(guesser, start, 10.0);
        for n in 0..10_000u32 {
            let [_, a, b, c] = n.to_be_bytes();
            let now = start + Duration::from_millis(u64::from(n));
            points.add(Prefix::of(IpAddr::from([11, a, b, c])), now, 1.0);
            assert!(points.len() <= MAX_NETWORKS);
        }
        assert!(points.of(guesser, start + Duration::from_secs(10)) > 8.0);
    }
}
