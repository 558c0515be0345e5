//! Repeated reports, at most one per period, each saying how many it stands
//! for: a problem that recurs many times a second (a full descriptor table,
//! a flood of refused connections) is told to the operator, not shouted.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Throttle {
    period: Duration,
    last_report: Option<Instant>,
    /// Occurrences since the last report.
    unreported: u64,
}

impl Throttle {
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            last_report: None,
            unreported: 0,
        }
    }

    /// Counts one occurrence at `now`; returns how many occurrences a report
    /// made now should speak for, or `None` if it is too soon to report.
    pub fn occurred(&mut self, now: Instant) -> Option<u64> {
        self.unreported += 1;
        if self
            .last_report
            .is_some_and(|last| now.duration_since(last) < self.period)
        {
            return None;
        }
        self.last_report = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_first_then_one_per_period_with_the_count() {
        let start = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(10));
        assert_eq!(throttle.occurred(start), Some(1));
        let mut reports = Vec::new();
        // Ten a second for a minute.
        for tenth in 1..=600 {
            let now = start + Duration::from_millis(100 * tenth);
            if let Some(count) = throttle.occurred(now) {
                reports.push((tenth, count));
            }
        }
        assert_eq!(reports.len(), 6);
        assert_eq!(reports[0], (100, 100));
        assert!(reports.iter().all(|&(_, count)| count == 100));
        // After a quiet spell, the next one is told at once.
        let later = start + Duration::from_secs(600);
        assert_eq!(throttle.occurred(later), Some(1));
    }
}
