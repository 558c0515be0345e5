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
        self.occurred_times(1, now)
    }

    /// [`occurred`](Self::occurred), `times` over.
    pub fn occurred_times(&mut self, times: u64, now: Instant) -> Option<u64> {
        self.unreported += times;
        if self
            .last_report
            .is_some_and(|last| now.duration_since(last) < self.period)
        {
            return None;
        }
        self.last_report = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }

    /// Occurrences not yet reported whose report is due at `now`: call it
    /// now and then, so that the end of a burst is told too.
    pub fn overdue(&mut self, now: Instant) -> Option<u64> {
        if self.unreported == 0 {
            return None;
        }
        self.occurred_times(0, now)
    }

    /// When the occurrences not yet reported are due to be, if any are.
    pub fn due_at(&self) -> Option<Instant> {
        match self.unreported {
            0 => None,
            _ => self.last_report.map(|last| last + self.period),
        }
    }

    /// Whatever is not yet reported, due or not (the last word on it).
    pub fn rest(&mut self) -> Option<u64> {
        (self.unreported > 0).then(|| std::mem::take(&mut self.unreported))
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

    #[test]
    fn many_at_once_are_counted_and_the_rest_told_at_the_end() {
        let start = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(1));
        assert_eq!(throttle.occurred_times(40, start), Some(40));
        // A read of 40 lines every 10 ms for a second and a half.
        let mut told = vec![40];
        for step in 1..150 {
            let now = start + Duration::from_millis(10 * step);
            told.extend(throttle.occurred_times(40, now));
        }
        told.extend(throttle.rest());
        assert_eq!(told, [40, 4000, 1960]);
        assert_eq!(throttle.rest(), None);
    }

    #[test]
    fn the_end_of_a_burst_is_told_once_its_period_is_over() {
        let start = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(1));
        assert_eq!(throttle.overdue(start), None);
        assert_eq!(throttle.occurred(start), Some(1));
        for tenth in 1..=5 {
            assert_eq!(
                throttle.occurred(start + Duration::from_millis(100 * tenth)),
                None
            );
        }
        // Not yet due 0.9 s after the report; due at 1 s, and told once.
        assert_eq!(throttle.overdue(start + Duration::from_millis(900)), None);
        assert_eq!(throttle.overdue(start + Duration::from_secs(1)), Some(5));
        assert_eq!(throttle.overdue(start + Duration::from_secs(600)), None);
    }
}
