//! The time a server's loop reads: the system's, or one a test moves.
//!
//! Everything the loop decides by time (timeouts, stall rules, the room's
//! pace, the waiting line's notices) takes the loop's `now` from here, so a
//! test can run a real server in-process and let ten minutes pass in a
//! call: [`Clock::manual`] starts at the real time and moves only when told
//! ([`Clock::advance`]), waking the loop that reads it and waiting until
//! that loop has done a round at the new time, so that a test moves in
//! steps the loop has certainly seen.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long [`Clock::advance`] waits, in real time, for the loop to take
/// the new time: only a loop that is stuck takes that long.
const ROUND_PATIENCE: Duration = Duration::from_secs(30);

/// A source of the current time; cheap to clone (clones share the time).
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

#[derive(Default)]
struct Manual {
    state: Mutex<ManualState>,
    /// Signalled when a loop finishes a round.
    rounds: Condvar,
}

struct ManualState {
    now: Instant,
    /// Called after every move: the loop reading this clock looks again.
    wakers: Vec<Box<dyn Fn() + Send>>,
    /// The time of the last round a loop finished, while one runs.
    round_at: Option<Instant>,
}

impl Default for ManualState {
    fn default() -> Self {
        Self {
            now: Instant::now(),
            wakers: Vec::new(),
            round_at: None,
        }
    }
}

impl Clock {
    /// The system's monotonic clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that stands still until [`advance`](Self::advance)d.
    pub fn manual() -> Self {
        Self {
            manual: Some(Arc::default()),
        }
    }

    pub fn now(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(manual) => crate::lock(&manual.state).now,
        }
    }

    /// Moves a manual clock forward by `by`, wakes the loop that reads it
    /// and waits until it has finished a round at the new time (its timers
    /// fired, its connections read); a no-op on the system clock.
    pub fn advance(&self, by: Duration) {
        let Some(manual) = &self.manual else { return };
        let mut state = crate::lock(&manual.state);
        state.now += by;
        let now = state.now;
        for wake in &state.wakers {
            wake();
        }
        let deadline = Instant::now() + ROUND_PATIENCE;
        while state.round_at.is_some_and(|at| at < now) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            state = match manual.rounds.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Waits until a loop reads this manual clock and has done a round at
    /// its time (a test, before it moves the clock: a move made before the
    /// loop starts would not wait for it); at most [`ROUND_PATIENCE`].
    pub fn wait_for_loop(&self) {
        let Some(manual) = &self.manual else { return };
        let deadline = Instant::now() + ROUND_PATIENCE;
        let mut state = crate::lock(&manual.state);
        while state.round_at.is_none_or(|at| at < state.now) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            state = match manual.rounds.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// For the loop: it finished a round at `now`; `None` when it stops
    /// (nobody waits for it from then on).
    pub(crate) fn round_done(&self, now: Option<Instant>) {
        if let Some(manual) = &self.manual {
            crate::lock(&manual.state).round_at = now;
            manual.rounds.notify_all();
        }
    }

    /// How long a loop may sleep before `deadline` is due: on a manual
    /// clock, until woken (`None`) while it is not due, since real time
    /// passing moves nothing.
    pub(crate) fn sleep_until(&self, deadline: Option<Instant>) -> Option<Duration> {
        let deadline = deadline?;
        let left = deadline.saturating_duration_since(self.now());
        match (&self.manual, left.is_zero()) {
            (Some(_), false) => None,
            _ => Some(left),
        }
    }

    /// Has `wake` called whenever a manual clock moves.
    pub(crate) fn on_advance(&self, wake: impl Fn() + Send + 'static) {
        if let Some(manual) = &self.manual {
            crate::lock(&manual.state).wakers.push(Box::new(wake));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_manual_clock_moves_only_when_told_and_wakes_its_readers() {
        let clock = Clock::manual();
        let start = clock.now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), start, "real time moves nothing");
        let woken = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&woken);
        clock.on_advance(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let due = start + Duration::from_secs(600);
        assert_eq!(clock.sleep_until(Some(due)), None, "sleeps until woken");
        clock.clone().advance(Duration::from_secs(600));
        assert_eq!(clock.now(), due, "clones share the time");
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        assert_eq!(clock.sleep_until(Some(due)), Some(Duration::ZERO));
    }

    #[test]
    fn advancing_waits_for_the_loop_to_take_the_new_time() {
        let clock = Clock::manual();
        clock.round_done(Some(clock.now()));
        let (tx, rx) = std::sync::mpsc::channel();
        let looping = clock.clone();
        clock.on_advance(move || {
            let _ = tx.send(());
        });
        let stepper = std::thread::spawn(move || {
            // The loop: woken by the move, it does its round.
            rx.recv().unwrap();
            looping.round_done(Some(looping.now()));
            rx.recv().unwrap();
            looping.round_done(None);
        });
        let start = clock.now();
        clock.advance(Duration::from_millis(100));
        assert_eq!(clock.now(), start + Duration::from_millis(100));
        // The loop stops: a move after that does not wait for it.
        clock.advance(Duration::from_secs(600));
        stepper.join().unwrap();
        clock.advance(Duration::from_secs(600));
    }

    #[test]
    fn the_system_clock_sleeps_until_the_deadline() {
        let clock = Clock::system();
        let left = clock.sleep_until(Some(clock.now() + Duration::from_secs(10)));
        assert!(left.is_some_and(|left| left <= Duration::from_secs(10)));
        assert_eq!(clock.sleep_until(None), None);
    }
}
