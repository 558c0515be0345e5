//! How a conversation ends, as a state machine with no I/O and no clock of
//! its own: what happened, the current time and how many bytes have moved go
//! in; what to do to the connection and when to look again come out.
//!
//! The rules:
//! - Whoever ends first (the user's `q`, the idle timeout, the peer's end of
//!   stream) finishes sending what was accepted, shuts down its sending half
//!   and reads until the peer closes too, so nothing in flight is lost.
//! - While we wait on the peer (we are ending, or our user's piped input
//!   waits for room because the peer does not read), it is cut off only
//!   after [`STALL_TIMEOUT`] with no byte moving either way, counted from the
//!   later of the last movement and the moment the waiting began (silence
//!   before it is not held against the peer). A slow reader is waited for as
//!   long as it reads.
//! - Once our half is shut down, a peer that keeps sending without closing
//!   its side is cut off after [`CLOSING_LIMIT`].
//! - Ctrl-C (or SIGTERM, or stdout going away) gives the peer
//!   [`INTERRUPT_GRACE`] to take what is queued, then cuts it off; a second
//!   Ctrl-C cuts it off at once.
//! - The idle timeout counts bytes, not messages: a keepalive or a large
//!   message trickling in is traffic.
//! - A version 2 peer that has sent nothing, not even its heartbeat, for
//!   longer than its heartbeat comes, or a peer whose system has answered
//!   nothing as long while bytes of ours wait for it, is unreachable, not
//!   slow: the 10-s rule waits for it (a link down for a while, TCP's
//!   retransmissions backing off), and `dead_after` alone decides whether
//!   it is lost.

use std::time::{Duration, Instant};

/// How long a peer we are waiting on may move no byte before it is cut off.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a peer may go on sending after our half is shut down.
pub const CLOSING_LIMIT: Duration = Duration::from_secs(30);

/// While a stall clock runs, bytes moved are looked at this often, so that
/// the clock restarts within this of the real movement.
pub const PROGRESS_SAMPLE: Duration = Duration::from_secs(1);

/// A heartbeating peer silent this much longer than its heartbeat comes
/// is unreachable, not slow.
const UNREACHABLE_MARGIN: Duration = Duration::from_secs(1);

/// An ending that takes this long is worth a word to the user.
pub const NOTICE_AFTER: Duration = Duration::from_secs(1);

/// How long Ctrl-C waits for queued messages to leave before cutting off.
pub const INTERRUPT_GRACE: Duration = Duration::from_millis(500);

/// Something that happened to a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happening {
    /// Our user ended it (`q`, Ctrl-D).
    Quit,
    /// Our user's input ended; `closes` says whether that ends our sending
    /// half (the client) or changes nothing here (the server's operator).
    InputEnded,
    /// Ctrl-C, SIGTERM, a hangup.
    Interrupted,
    /// Our stdout went away: we are exiting quietly.
    OutputClosed,
    /// Our user left before the conversation began (a client waiting in
    /// line): nothing is owed either way, so the connection is reset now.
    Left,
    /// The peer's end of stream, at a frame boundary.
    PeerClosed,
    /// Receiving failed (reset, protocol error); the text says how.
    ReceiveFailed(String),
    /// Everything accepted was written and our sending half shut down.
    SendFinished,
    /// Sending failed; the text says how.
    SendFailed(String),
    /// Nothing happened, but what is observed changed (a caller's marker;
    /// stepping with it is stepping with nothing).
    Nothing,
}

/// What the caller can see of the connection, read just before each step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// Bytes moved so far, both ways (received, and taken by the peer).
    pub moved: u64,
    /// Bytes accepted for sending that the peer has not yet taken.
    pub undelivered: u64,
    /// Our user's input is waiting for the peer to take what is queued.
    pub backlogged: bool,
    /// How long the peer's system has answered nothing while bytes of
    /// ours wait for its acknowledgement (where the system says).
    pub unanswered: Option<Duration>,
    /// How long a peer that sends a heartbeat every few seconds (version 2,
    /// its side open) has sent nothing at all.
    pub silent: Option<Duration>,
}

/// Why we cut a peer off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// Nothing moved for this long while we waited on it.
    NoProgress(Duration),
    /// It kept sending for this long after our side was closed.
    NeverClosed(Duration),
}

/// How a conversation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The peer closed its side first.
    PeerLeft,
    /// Our user ended it.
    Quit,
    /// No traffic either way for this long.
    Idle(Duration),
    /// Ctrl-C (or SIGTERM, a hangup).
    Interrupted,
    /// Our stdout went away; the program exits quietly.
    OutputClosed,
    /// Our user left before the conversation began.
    Left,
    /// We cut the peer off; `undelivered` bytes of ours never reached it.
    CutOff { why: Stall, undelivered: u64 },
    /// The connection failed or the peer broke the protocol.
    Failed { why: String, undelivered: u64 },
}

/// What differs between the two programs.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Whether the end of our input ends our sending half.
    pub input_end_closes: bool,
    pub idle_timeout: Option<Duration>,
    /// A peer that answers nothing this long, not even the system's
    /// keepalive probes, is taken as lost (the engine asks the system to
    /// watch; see `platform::watch_liveness`).
    pub dead_after: Option<Duration>,
}

/// What to do after a step. The actions are idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// Send what is queued, then shut down our sending half.
    pub finish_sending: bool,
    /// Drop what is queued and shut the connection down both ways now.
    pub abort: bool,
    /// Both halves are done: the conversation is over.
    pub ended: Option<Ending>,
    /// We have waited on the peer for [`NOTICE_AFTER`]: worth telling the
    /// user what we wait for (given once).
    pub still_waiting: bool,
    /// No traffic either way for this long: the ending began now (given
    /// once), for a room to say why the member is leaving.
    pub went_idle: Option<Duration>,
    /// Step again at this time if nothing happens before.
    pub wake_at: Option<Instant>,
}

/// Why we are ending, once we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Quit,
    Idle(Duration),
    PeerLeft,
    Interrupted,
    OutputClosed,
    Left,
}

/// One conversation's ending, step by step.
#[derive(Debug)]
pub struct Closing {
    rules: Rules,
    cause: Option<Cause>,
    /// When the cause was set: the waiting on the peer starts here.
    since: Option<Instant>,
    /// Since when our input has been waiting on the peer, while it does.
    backlogged_since: Option<Instant>,
    /// When our input ended and so our sending half began to close.
    input_ended_at: Option<Instant>,
    /// The "still waiting" notice was given.
    noticed: bool,
    failure: Option<String>,
    cut: Option<Stall>,
    receiving: bool,
    sending: bool,
    finishing: bool,
    aborted: bool,
    /// Bytes of ours await the peer's answer (see [`Observed::unanswered`]).
    watched: bool,
    /// Since when bytes of ours have waited for the peer's answer.
    in_flight_since: Option<Instant>,
    /// When a heartbeating peer's silence reaches `dead_after`.
    silent_until: Option<Instant>,
    /// When our sending half was shut down.
    send_done_at: Option<Instant>,
    /// When Ctrl-C (or a closed stdout) started the short goodbye.
    hurry_since: Option<Instant>,
    moved: u64,
    moved_at: Instant,
    undelivered: u64,
}

impl Closing {
    pub fn new(rules: Rules, now: Instant) -> Self {
        Self {
            rules,
            cause: None,
            since: None,
            backlogged_since: None,
            input_ended_at: None,
            noticed: false,
            failure: None,
            cut: None,
            receiving: true,
            sending: true,
            finishing: false,
            aborted: false,
            watched: false,
            in_flight_since: None,
            silent_until: None,
            send_done_at: None,
            hurry_since: None,
            moved: 0,
            moved_at: now,
            undelivered: 0,
        }
    }

    /// Takes in what was observed at `now` and, if any, what happened; says
    /// what to do.
    pub fn step(&mut self, now: Instant, seen: Observed, happening: Option<Happening>) -> Decision {
        if seen.moved != self.moved {
            self.moved = seen.moved;
            self.moved_at = now;
        }
        self.undelivered = seen.undelivered;
        self.backlogged_since = match seen.backlogged {
            true => self.backlogged_since.or(Some(now)),
            false => None,
        };
        self.watched = seen.unanswered.is_some();
        // The peer can answer only what was sent: a silence before our
        // bytes went out (an idle link, then a line typed into a link that
        // is down for a while) is not one it kept. Since when bytes have
        // waited, as first seen (a step may come a while after they went:
        // the later time, so never too soon).
        self.in_flight_since = match seen.unanswered {
            Some(_) => self.in_flight_since.or(Some(now)),
            None => None,
        };
        let mut decision = Decision::default();
        if let Some(happening) = happening {
            self.happen(happening, now, &mut decision);
        }
        let kept_silent = seen
            .unanswered
            .zip(self.in_flight_since)
            .map(|(silent, since)| silent.min(now.saturating_duration_since(since)));
        // Unreachable for now (see the module's rules): not a stall. A
        // peer whose system has answered nothing for as long is not slow
        // either (a lossy link: TCP's retransmissions backing off while
        // the last line and the end wait for the peer's answer; the 10-s
        // rule cut a server that was only late, 1 try in 79 over a link
        // losing a fifth of its packets). A live peer that reads nothing
        // answers the system's probes of its shut window.
        if let Some(after) = self.rules.dead_after
            && [seen.silent, kept_silent].into_iter().flatten().max()
                >= Some(crate::state::session::heartbeat_for(Some(after)) + UNREACHABLE_MARGIN)
        {
            self.moved_at = now;
        }
        self.silent_until = self
            .rules
            .dead_after
            .zip(seen.silent)
            .map(|(after, silent)| now + after.saturating_sub(silent));
        let silent = [kept_silent, seen.silent].into_iter().flatten().max();
        if let (Some(after), Some(silent)) = (self.rules.dead_after, silent)
            && silent >= after
        {
            let why = lost_after(after);
            self.receiving = false;
            self.sending = false;
            self.fail(why, &mut decision);
        }
        if !self.aborted {
            self.check_clocks(now, &mut decision);
        }
        if !self.receiving && !self.sending {
            decision.ended = Some(self.ending());
        } else if !self.aborted {
            decision.wake_at = self.next_deadline(now);
        }
        decision
    }

    fn happen(&mut self, happening: Happening, now: Instant, decision: &mut Decision) {
        match happening {
            Happening::Quit => {
                self.begin(Cause::Quit, now);
                self.finish(decision);
            }
            Happening::InputEnded => {
                if self.rules.input_end_closes {
                    self.input_ended_at.get_or_insert(now);
                    self.finish(decision);
                }
            }
            Happening::Interrupted => {
                if self.cause == Some(Cause::Interrupted) {
                    self.abort(decision);
                    return;
                }
                self.cause = Some(Cause::Interrupted);
                self.since.get_or_insert(now);
                self.hurry_since.get_or_insert(now);
                self.finish(decision);
            }
            Happening::OutputClosed => {
                if self.cause != Some(Cause::Interrupted) {
                    self.cause = Some(Cause::OutputClosed);
                }
                self.since.get_or_insert(now);
                self.hurry_since.get_or_insert(now);
                self.finish(decision);
            }
            Happening::Left => {
                self.cause = Some(Cause::Left);
                self.abort(decision);
            }
            Happening::PeerClosed => {
                self.receiving = false;
                self.begin(Cause::PeerLeft, now);
                self.finish(decision);
            }
            Happening::ReceiveFailed(why) => {
                self.receiving = false;
                self.fail(why, decision);
            }
            Happening::SendFinished => {
                self.sending = false;
                self.send_done_at = Some(now);
            }
            Happening::SendFailed(why) => {
                self.sending = false;
                self.fail(why, decision);
            }
            Happening::Nothing => {}
        }
    }

    fn check_clocks(&mut self, now: Instant, decision: &mut Decision) {
        if let Some(hurry) = self.hurry_since
            && now >= hurry + INTERRUPT_GRACE
        {
            self.abort(decision);
            return;
        }
        if let Some(deadline) = self.stall_deadline()
            && now >= deadline
        {
            self.cut = Some(Stall::NoProgress(STALL_TIMEOUT));
            self.abort(decision);
            return;
        }
        if let Some(deadline) = self.closing_deadline()
            && now >= deadline
        {
            self.cut = Some(Stall::NeverClosed(CLOSING_LIMIT));
            self.abort(decision);
            return;
        }
        if !self.noticed
            && let Some(at) = self.notice_at()
            && now >= at
        {
            self.noticed = true;
            decision.still_waiting = true;
        }
        if let Some(deadline) = self.idle_deadline()
            && now >= deadline
        {
            let idle = self
                .rules
                .idle_timeout
                .expect("an idle deadline has a timeout");
            if self.cause.is_none() {
                decision.went_idle = Some(idle);
            }
            self.begin(Cause::Idle(idle), now);
            self.finish(decision);
        }
    }

    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        [
            // Is the peer still answering? Each second while bytes of ours
            // wait for its answer, and a few times in `dead_after`
            // otherwise (bytes may go out between steps).
            self.rules.dead_after.map(|after| match self.watched {
                true => now + PROGRESS_SAMPLE,
                false => now + (after / 3).max(PROGRESS_SAMPLE),
            }),
            self.hurry_since.map(|t| t + INTERRUPT_GRACE),
            self.silent_until,
            self.stall_deadline(),
            self.stall_deadline().map(|_| now + PROGRESS_SAMPLE),
            self.idle_deadline().map(|_| now + PROGRESS_SAMPLE),
            self.notice_at().filter(|_| !self.noticed),
            self.closing_deadline(),
            self.idle_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// While we wait on the peer: STALL_TIMEOUT after the later of the last
    /// movement and the start of the waiting.
    fn stall_deadline(&self) -> Option<Instant> {
        let since = self.waiting_since()?;
        (self.receiving || self.sending).then(|| since.max(self.moved_at) + STALL_TIMEOUT)
    }

    /// Since when we have been waiting on the peer: we are ending, our
    /// input waits for room, or our input ended with data still to deliver.
    fn waiting_since(&self) -> Option<Instant> {
        let input_ended = self.input_ended_at.filter(|_| self.sending);
        [self.since, self.backlogged_since, input_ended]
            .into_iter()
            .flatten()
            .min()
    }

    /// When an ending has taken long enough to be worth a word.
    fn notice_at(&self) -> Option<Instant> {
        if self.hurry_since.is_some() || !(self.receiving || self.sending) {
            return None;
        }
        Some(self.since? + NOTICE_AFTER)
    }

    /// Once we are ending and our half is shut down: CLOSING_LIMIT for the
    /// peer to close its side.
    fn closing_deadline(&self) -> Option<Instant> {
        let since = self.since?;
        let done = self.send_done_at?;
        self.receiving.then(|| since.max(done) + CLOSING_LIMIT)
    }

    fn idle_deadline(&self) -> Option<Instant> {
        if self.cause.is_some() {
            return None;
        }
        Some(self.moved_at + self.rules.idle_timeout?)
    }

    fn begin(&mut self, cause: Cause, now: Instant) {
        if self.cause.is_none() {
            self.cause = Some(cause);
            self.since = Some(now);
        }
    }

    /// Whether our side ends the conversation (our user, Ctrl-C, a
    /// timeout): not only stopped sending, as when our input ended and we
    /// listen on, nor ended by the peer.
    pub fn ended_by_us(&self) -> bool {
        self.cause.is_some_and(|cause| cause != Cause::PeerLeft)
    }

    fn finish(&mut self, decision: &mut Decision) {
        if !self.finishing && !self.aborted {
            self.finishing = true;
            decision.finish_sending = true;
        }
    }

    fn fail(&mut self, why: String, decision: &mut Decision) {
        // After we cut the peer off, its errors are our doing, not news.
        if !self.aborted && self.failure.is_none() {
            self.failure = Some(why);
        }
        self.abort(decision);
    }

    fn abort(&mut self, decision: &mut Decision) {
        if !self.aborted {
            self.aborted = true;
            decision.abort = true;
        }
    }

    fn ending(&self) -> Ending {
        let undelivered = self.undelivered;
        match (self.cause, self.cut, &self.failure) {
            (Some(Cause::Interrupted), _, _) => Ending::Interrupted,
            (Some(Cause::OutputClosed), _, _) => Ending::OutputClosed,
            (Some(Cause::Left), _, _) => Ending::Left,
            (_, Some(why), _) => Ending::CutOff { why, undelivered },
            (_, None, Some(why)) => Ending::Failed {
                why: why.clone(),
                undelivered,
            },
            (Some(Cause::Quit), None, None) => Ending::Quit,
            (Some(Cause::Idle(after)), None, None) => Ending::Idle(after),
            (Some(Cause::PeerLeft) | None, None, None) => Ending::PeerLeft,
        }
    }
}

/// How a peer that answered nothing for `after` is said to be lost.
pub fn lost_after(after: Duration) -> String {
    format!(
        "connection lost: nothing came back for {} s",
        after.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENTH: Duration = Duration::from_millis(100);
    const TEN_MINUTES: Duration = Duration::from_secs(600);

    /// A conversation under test, with a clock we move by hand.
    struct Bench {
        closing: Closing,
        start: Instant,
        now: Instant,
        seen: Observed,
        finish_sending: bool,
        aborted: bool,
        ended: Option<Ending>,
        wake_at: Option<Instant>,
        /// Each time the idle timeout was said to have run out.
        went_idle: Vec<Duration>,
        /// How many times the user was to be told that we still wait.
        told_waiting: usize,
    }

    impl Bench {
        fn new(input_end_closes: bool, idle_timeout: Option<Duration>) -> Self {
            let start = Instant::now();
            let rules = Rules {
                input_end_closes,
                idle_timeout,
                dead_after: None,
            };
            let mut bench = Self {
                closing: Closing::new(rules, start),
                start,
                now: start,
                seen: Observed::default(),
                finish_sending: false,
                aborted: false,
                ended: None,
                wake_at: None,
                went_idle: Vec::new(),
                told_waiting: 0,
            };
            // The main loop's first step, before anything happens.
            bench.progress(0);
            bench
        }

        fn client() -> Self {
            Self::new(true, None)
        }

        fn apply(&mut self, decision: Decision) {
            assert!(self.ended.is_none(), "a step after the end: {decision:?}");
            self.finish_sending |= decision.finish_sending;
            self.aborted |= decision.abort;
            self.ended = decision.ended;
            self.wake_at = decision.wake_at;
            self.went_idle.extend(decision.went_idle);
            self.told_waiting += usize::from(decision.still_waiting);
        }

        fn happen(&mut self, happening: Happening) {
            let decision = self.closing.step(self.now, self.seen, Some(happening));
            self.apply(decision);
        }

        /// Lets `time` pass, stepping at every deadline on the way, as the
        /// main loop does when nothing happens.
        fn wait(&mut self, time: Duration) {
            let until = self.now + time;
            while let Some(at) = self.wake_at.filter(|&at| at <= until) {
                if self.ended.is_some() {
                    break;
                }
                self.now = at.max(self.now);
                let decision = self.closing.step(self.now, self.seen, None);
                self.apply(decision);
            }
            self.now = until;
        }

        /// Bytes move (the peer reads, or sends) at the current time.
        fn progress(&mut self, bytes: u64) {
            self.seen.moved += bytes;
            let decision = self.closing.step(self.now, self.seen, None);
            self.apply(decision);
        }

        fn elapsed(&self) -> Duration {
            self.now - self.start
        }

        /// After an abort, both threads report their halves as failed.
        fn threads_stop(&mut self) {
            self.happen(Happening::SendFailed("aborted".into()));
            self.happen(Happening::ReceiveFailed("aborted".into()));
        }

        /// Checks the connection is cut off exactly when the stall timeout is
        /// up (not a tenth of a second before), then that the ending, once
        /// both threads stop, names the stall and the undelivered bytes.
        fn expect_cut_off_at_the_timeout(&mut self, undelivered: u64) {
            self.wait(TENTH);
            assert!(self.aborted);
            self.threads_stop();
            assert_eq!(
                self.ended,
                Some(Ending::CutOff {
                    why: Stall::NoProgress(STALL_TIMEOUT),
                    undelivered
                })
            );
        }

        /// Our side drains and shuts down, then the peer closes.
        fn both_close(&mut self) {
            self.happen(Happening::SendFinished);
            self.happen(Happening::PeerClosed);
        }
    }

    #[test]
    fn quit_after_any_pause_is_a_clean_quit() {
        for pause in [TENTH, Duration::from_secs(4), TEN_MINUTES] {
            let mut bench = Bench::client();
            bench.progress(10);
            bench.wait(pause);
            bench.happen(Happening::Quit);
            assert!(bench.finish_sending && !bench.aborted);
            bench.wait(TENTH);
            bench.both_close();
            assert_eq!(bench.ended, Some(Ending::Quit), "after {pause:?}");
        }
    }

    #[test]
    fn the_peer_gets_the_full_stall_timeout_counted_from_the_quit() {
        for pause in [TENTH, TEN_MINUTES] {
            let mut bench = Bench::client();
            bench.wait(pause);
            bench.happen(Happening::Quit);
            bench.happen(Happening::SendFinished);
            bench.wait(STALL_TIMEOUT - TENTH);
            assert!(!bench.aborted, "still within the timeout after {pause:?}");
            bench.wait(TENTH);
            assert!(bench.aborted);
            bench.happen(Happening::ReceiveFailed("shut down".into()));
            assert_eq!(
                bench.ended,
                Some(Ending::CutOff {
                    why: Stall::NoProgress(STALL_TIMEOUT),
                    undelivered: 0
                })
            );
        }
    }

    #[test]
    fn a_slow_reader_is_waited_for_as_long_as_it_reads() {
        let mut bench = Bench::new(false, None);
        bench.seen.undelivered = 5_000_000;
        bench.happen(Happening::Quit);
        // Ten minutes of a byte every nine seconds: never cut off.
        while bench.elapsed() < TEN_MINUTES {
            bench.wait(Duration::from_secs(9));
            bench.seen.undelivered -= 1;
            bench.progress(1);
            assert!(!bench.aborted, "at {:?}", bench.elapsed());
        }
        bench.seen.undelivered = 0;
        bench.both_close();
        assert_eq!(bench.ended, Some(Ending::Quit));
    }

    #[test]
    fn progress_right_after_the_quit_does_not_double_the_wait() {
        let mut bench = Bench::new(false, None);
        bench.happen(Happening::Quit);
        // The peer takes a last window's worth an instant later, then nothing.
        bench.seen.moved += 4096;
        bench.wait(PROGRESS_SAMPLE + STALL_TIMEOUT);
        assert!(
            bench.aborted,
            "cut off within a sample of the real last movement"
        );
    }

    #[test]
    fn a_reader_that_stops_is_cut_off_and_told_how_much_was_not_delivered() {
        let mut bench = Bench::new(false, None);
        bench.happen(Happening::Quit);
        bench.wait(Duration::from_secs(5));
        bench.progress(1000);
        bench.seen.undelivered = 4321;
        bench.wait(STALL_TIMEOUT - TENTH);
        assert!(!bench.aborted, "progress restarts the clock");
        bench.expect_cut_off_at_the_timeout(4321);
    }

    #[test]
    fn the_peer_leaving_first_is_answered_with_what_we_have_queued() {
        let mut bench = Bench::new(false, None);
        bench.wait(TEN_MINUTES);
        bench.happen(Happening::PeerClosed);
        assert!(bench.finish_sending && !bench.aborted);
        // Our queue drains slowly; the peer still reads.
        for _ in 0..20 {
            bench.wait(Duration::from_secs(5));
            bench.progress(100);
        }
        bench.happen(Happening::SendFinished);
        assert_eq!(bench.ended, Some(Ending::PeerLeft));
    }

    #[test]
    fn a_peer_that_keeps_sending_after_our_end_is_cut_off() {
        let mut bench = Bench::new(false, None);
        bench.happen(Happening::Quit);
        bench.happen(Happening::SendFinished);
        while !bench.aborted {
            bench.wait(Duration::from_secs(1));
            bench.progress(100);
        }
        assert_eq!(bench.elapsed(), CLOSING_LIMIT);
        bench.happen(Happening::ReceiveFailed("shut down".into()));
        assert!(matches!(
            bench.ended,
            Some(Ending::CutOff {
                why: Stall::NeverClosed(_),
                ..
            })
        ));
    }

    #[test]
    fn after_the_end_of_its_input_a_client_listens_as_long_as_the_server_talks() {
        let mut bench = Bench::client();
        bench.happen(Happening::InputEnded);
        assert!(bench.finish_sending);
        bench.happen(Happening::SendFinished);
        assert_eq!(bench.wake_at, None, "no clock runs: the server may talk on");
        bench.wait(TEN_MINUTES);
        bench.happen(Happening::PeerClosed);
        assert_eq!(bench.ended, Some(Ending::PeerLeft));
    }

    #[test]
    fn the_end_of_the_operators_input_changes_nothing() {
        let mut bench = Bench::new(false, None);
        bench.happen(Happening::InputEnded);
        assert!(!bench.finish_sending);
        assert_eq!(bench.wake_at, None);
    }

    #[test]
    fn ctrl_c_after_any_pause_ends_within_the_grace_and_says_interrupted() {
        for pause in [TENTH, TEN_MINUTES] {
            let mut bench = Bench::client();
            bench.wait(pause);
            bench.happen(Happening::Interrupted);
            assert!(bench.finish_sending && !bench.aborted);
            bench.wait(INTERRUPT_GRACE);
            assert!(bench.aborted, "cut off after the grace");
            bench.threads_stop();
            assert_eq!(bench.ended, Some(Ending::Interrupted));
        }
    }

    #[test]
    fn ctrl_c_with_a_prompt_peer_is_a_clean_interrupt() {
        let mut bench = Bench::client();
        bench.happen(Happening::Interrupted);
        bench.wait(TENTH);
        bench.both_close();
        assert!(!bench.aborted);
        assert_eq!(bench.ended, Some(Ending::Interrupted));
    }

    #[test]
    fn a_second_ctrl_c_cuts_off_at_once() {
        let mut bench = Bench::client();
        bench.happen(Happening::Quit);
        bench.happen(Happening::Interrupted);
        assert!(!bench.aborted);
        bench.happen(Happening::Interrupted);
        assert!(bench.aborted);
    }

    #[test]
    fn idle_timeout_counts_bytes_not_messages() {
        let idle = Duration::from_secs(5);
        let mut bench = Bench::new(false, Some(idle));
        // A message trickling in a byte every four seconds is traffic.
        for _ in 0..150 {
            bench.wait(Duration::from_secs(4));
            bench.progress(1);
        }
        assert!(!bench.finish_sending, "traffic kept it alive");
        bench.wait(idle);
        assert!(bench.finish_sending);
        bench.both_close();
        assert_eq!(bench.ended, Some(Ending::Idle(idle)));
    }

    #[test]
    fn idle_timeout_after_ten_minutes_is_reported_as_idle() {
        let mut bench = Bench::new(false, Some(TEN_MINUTES));
        bench.wait(TEN_MINUTES - TENTH);
        assert!(!bench.finish_sending);
        assert!(bench.went_idle.is_empty());
        bench.wait(TENTH);
        assert!(bench.finish_sending);
        // The peer answers our end late, but within the stall timeout.
        bench.wait(STALL_TIMEOUT - TENTH);
        bench.both_close();
        assert_eq!(bench.ended, Some(Ending::Idle(TEN_MINUTES)));
        assert_eq!(bench.went_idle, [TEN_MINUTES], "said once, when it ran out");
    }

    #[test]
    fn a_failure_is_reported_with_what_was_not_delivered() {
        let mut bench = Bench::client();
        bench.seen.undelivered = 77;
        bench.happen(Happening::ReceiveFailed("connection reset by peer".into()));
        assert!(bench.aborted);
        bench.happen(Happening::SendFailed("broken pipe".into()));
        assert_eq!(
            bench.ended,
            Some(Ending::Failed {
                why: "connection reset by peer".into(),
                undelivered: 77
            })
        );
    }

    /// A client's ending that takes a peer as lost after 15 s.
    fn watching_for_death(start: Instant) -> Closing {
        let rules = Rules {
            input_end_closes: true,
            idle_timeout: None,
            dead_after: Some(Duration::from_secs(15)),
        };
        Closing::new(rules, start)
    }

    #[test]
    fn a_peer_whose_system_answers_nothing_for_dead_after_is_lost() {
        let start = Instant::now();
        let mut closing = watching_for_death(start);
        let seen = |unanswered: Option<Duration>| Observed {
            moved: 10,
            undelivered: 25,
            backlogged: false,
            unanswered,
            silent: None,
        };
        // Ten silent minutes with nothing in flight: keepalive's to judge,
        // and a look every 5 s.
        let decision = closing.step(start + TEN_MINUTES, seen(None), None);
        assert_eq!(decision.ended, None);
        assert_eq!(
            decision.wake_at,
            Some(start + TEN_MINUTES + Duration::from_secs(5))
        );
        // Bytes in flight, answered a tenth of a second ago, then not for
        // 14.9 s: still talking, looked at again each second.
        let at = start + TEN_MINUTES + TENTH;
        let decision = closing.step(at, seen(Some(TENTH)), None);
        assert_eq!(decision.wake_at, Some(at + PROGRESS_SAMPLE));
        let secs = |s: u64| Duration::from_secs(s);
        let decision = closing.step(at + secs(14), seen(Some(secs(14) + TENTH * 9)), None);
        assert!(decision.ended.is_none() && !decision.abort);
        // 15 s: lost, with what was not delivered.
        let decision = closing.step(at + secs(15), seen(Some(secs(15))), None);
        assert!(decision.abort);
        assert_eq!(
            decision.ended,
            Some(Ending::Failed {
                why: "connection lost: nothing came back for 15 s".into(),
                undelivered: 25,
            })
        );
    }

    /// The peer can answer only what was sent: a line typed 10 s into a
    /// silence (the link down meanwhile, say) gives it 15 s from then, not
    /// 5; the link back and the line answered within them, nothing is lost.
    #[test]
    fn the_silence_before_bytes_went_out_is_not_the_peers() {
        let start = Instant::now();
        let mut closing = watching_for_death(start);
        let secs = Duration::from_secs;
        let seen = |unanswered: Option<Duration>| Observed {
            unanswered,
            undelivered: unanswered.map_or(0, |_| 24),
            ..Observed::default()
        };
        // Nothing in flight for 10 s; then a line, its last answer 10 s old.
        closing.step(start + secs(10), seen(None), None);
        let decision = closing.step(start + secs(10), seen(Some(secs(10))), None);
        assert!(!decision.abort);
        // 15 s since the last answer, 5 since the line: not lost.
        let decision = closing.step(start + secs(15), seen(Some(secs(15))), None);
        assert!(
            !decision.abort,
            "lost for a silence before the line went out"
        );
        // Answered at last (the link came back): nothing in flight.
        let decision = closing.step(start + secs(22), seen(None), None);
        assert!(!decision.abort && decision.ended.is_none());
        // Another line, never answered: lost 15 s after it went.
        closing.step(start + secs(30), seen(Some(secs(8))), None);
        let decision = closing.step(start + secs(44), seen(Some(secs(22))), None);
        assert!(!decision.abort);
        let decision = closing.step(start + secs(45), seen(Some(secs(23))), None);
        assert!(decision.abort);
    }

    /// A version 2 peer sends something every 5 s while its side is open:
    /// silent for `dead_after`, it is lost, idle conversation or not, and
    /// the step comes when the silence reaches it, not a second later.
    #[test]
    fn a_heartbeating_peer_silent_for_dead_after_is_lost_at_that_moment() {
        let start = Instant::now();
        let mut closing = watching_for_death(start);
        let secs = Duration::from_secs;
        let seen = |silent: Duration| Observed {
            silent: Some(silent),
            undelivered: 3,
            ..Observed::default()
        };
        // Heard from a tenth of a second ago, ten minutes in.
        let now = start + TEN_MINUTES;
        let decision = closing.step(now, seen(TENTH), None);
        assert!(decision.ended.is_none());
        assert!(decision.wake_at <= Some(now + secs(15) - TENTH));
        // 14.9 s of silence: alive, and looked at again when it is 15 s.
        let decision = closing.step(now + secs(14) + TENTH * 8, seen(secs(14) + TENTH * 9), None);
        assert!(!decision.abort);
        assert_eq!(decision.wake_at, Some(now + secs(15) - TENTH));
        // 15 s: lost.
        let decision = closing.step(now + secs(15) - TENTH, seen(secs(15)), None);
        assert!(decision.abort);
        assert_eq!(
            decision.ended,
            Some(Ending::Failed {
                why: "connection lost: nothing came back for 15 s".into(),
                undelivered: 3,
            })
        );
    }

    /// We are ending and the peer takes nothing: a version 2 peer that
    /// still sends its heartbeats is slow, and cut off after 10 s; one
    /// that sends nothing at all is unreachable, waited for (a link back
    /// after 12 s loses nothing), and lost only after `dead_after`.
    #[test]
    fn a_silent_peer_is_waited_for_and_a_heartbeating_one_that_reads_nothing_is_not() {
        let secs = Duration::from_secs;
        let seen = |silent: Duration| Observed {
            moved: 100,
            undelivered: 50,
            silent: Some(silent),
            ..Observed::default()
        };
        // Heard every 5 s (its heartbeat), reading nothing: the 10-s rule.
        let start = Instant::now();
        let mut closing = watching_for_death(start);
        closing.step(start, seen(Duration::ZERO), Some(Happening::Quit));
        let mut cut = None;
        for s in 1..=12 {
            let decision = closing.step(start + secs(s), seen(secs(s % 5)), None);
            if decision.abort {
                cut = Some(s);
                break;
            }
        }
        assert_eq!(cut, Some(10), "a peer that pings but reads nothing");
        // Nothing at all from it for 12 s, then its bytes move: waited for.
        let mut closing = watching_for_death(start);
        closing.step(start, seen(Duration::ZERO), Some(Happening::Quit));
        for s in 1..=12 {
            let decision = closing.step(start + secs(s), seen(secs(s)), None);
            assert!(!decision.abort, "cut off at {s} s while unreachable");
        }
        let back = Observed {
            moved: 150,
            ..seen(Duration::ZERO)
        };
        let decision = closing.step(start + secs(13), back, None);
        assert!(!decision.abort);
        // And if it never comes back: lost at 15 s, not before.
        let mut closing = watching_for_death(start);
        closing.step(start, seen(Duration::ZERO), Some(Happening::Quit));
        let decision = closing.step(start + secs(14), seen(secs(14)), None);
        assert!(!decision.abort);
        let decision = closing.step(start + secs(15), seen(secs(15)), None);
        assert!(decision.abort);
        assert!(
            matches!(&decision.ended, Some(Ending::Failed { why, .. }) if why.contains("nothing came back")),
            "{decision:?}"
        );
    }

    /// We are ending over a lossy link: the peer's heartbeats come, but
    /// its system has answered nothing of our last bytes for a while (TCP
    /// backing off its retransmissions). Unreachable for now, not slow:
    /// not cut off at 10 s, answered at 13 s loses nothing; never
    /// answered, lost (a failure, which a session resumes) at 15 s.
    #[test]
    fn a_peer_whose_system_is_late_to_answer_is_waited_for_not_cut_off() {
        let secs = Duration::from_secs;
        let seen = |unanswered: Option<Duration>, silent: Duration| Observed {
            moved: 100,
            undelivered: unanswered.map_or(0, |_| 40),
            unanswered,
            silent: Some(silent),
            ..Observed::default()
        };
        let start = Instant::now();
        let mut closing = watching_for_death(start);
        closing.step(
            start,
            seen(Some(Duration::ZERO), Duration::ZERO),
            Some(Happening::Quit),
        );
        for s in 1..=12 {
            let decision = closing.step(start + secs(s), seen(Some(secs(s)), secs(s % 5)), None);
            assert!(!decision.abort, "cut off at {s} s while unanswered");
        }
        let answered = Observed {
            moved: 140,
            ..seen(None, Duration::ZERO)
        };
        let decision = closing.step(start + secs(13), answered, None);
        assert!(!decision.abort && decision.ended.is_none(), "{decision:?}");
        // Never answered: lost at 15 s.
        let mut closing = watching_for_death(start);
        closing.step(
            start,
            seen(Some(Duration::ZERO), Duration::ZERO),
            Some(Happening::Quit),
        );
        let decision = closing.step(start + secs(14), seen(Some(secs(14)), secs(4)), None);
        assert!(!decision.abort);
        let decision = closing.step(start + secs(15), seen(Some(secs(15)), Duration::ZERO), None);
        assert!(
            matches!(&decision.ended, Some(Ending::Failed { why, .. }) if why.contains("nothing came back")),
            "{decision:?}"
        );
        // A peer whose system answers at once but takes nothing (its
        // heartbeats coming): slow, cut off at 10 s as ever.
        let mut closing = watching_for_death(start);
        closing.step(start, seen(None, Duration::ZERO), Some(Happening::Quit));
        let decision = closing.step(start + secs(10), seen(Some(TENTH), secs(0)), None);
        assert!(decision.abort, "{decision:?}");
    }

    #[test]
    fn without_dead_after_an_unanswering_peer_is_the_systems_to_judge() {
        let start = Instant::now();
        let rules = Rules {
            input_end_closes: true,
            idle_timeout: None,
            dead_after: None,
        };
        let mut closing = Closing::new(rules, start);
        let seen = Observed {
            unanswered: Some(TEN_MINUTES),
            ..Observed::default()
        };
        let decision = closing.step(start + TEN_MINUTES, seen, None);
        assert!(decision.ended.is_none() && !decision.abort && decision.wake_at.is_none());
    }

    #[test]
    fn leaving_before_the_conversation_began_resets_at_once() {
        let mut bench = Bench::new(true, None);
        bench.happen(Happening::Left);
        assert!(bench.aborted, "not at once");
        bench.threads_stop();
        assert_eq!(bench.ended, Some(Ending::Left));
    }

    #[test]
    fn a_closed_stdout_ends_quietly_and_quickly() {
        let mut bench = Bench::new(false, None);
        bench.happen(Happening::OutputClosed);
        bench.wait(INTERRUPT_GRACE);
        assert!(bench.aborted);
        bench.threads_stop();
        assert_eq!(bench.ended, Some(Ending::OutputClosed));
    }

    #[test]
    fn piped_input_waiting_on_a_peer_that_reads_nothing_is_cut_off() {
        let mut bench = Bench::client();
        bench.wait(TEN_MINUTES);
        bench.seen.backlogged = true;
        bench.seen.undelivered = 3_000_000;
        bench.progress(0);
        bench.wait(STALL_TIMEOUT - TENTH);
        assert!(
            !bench.aborted,
            "ten minutes of silence before are not held against it"
        );
        bench.expect_cut_off_at_the_timeout(3_000_000);
    }

    #[test]
    fn piped_input_waiting_on_a_slow_reader_waits_as_long_as_it_reads() {
        let mut bench = Bench::client();
        bench.seen.backlogged = true;
        bench.progress(0);
        for _ in 0..100 {
            bench.wait(Duration::from_secs(9));
            bench.progress(10);
        }
        bench.seen.backlogged = false;
        bench.progress(10);
        bench.wait(TEN_MINUTES);
        assert!(!bench.aborted && !bench.finish_sending);
    }

    #[test]
    fn input_ended_with_data_a_peer_never_takes_is_cut_off() {
        let mut bench = Bench::client();
        bench.seen.undelivered = 5_000_000;
        bench.happen(Happening::InputEnded);
        bench.wait(STALL_TIMEOUT);
        assert!(bench.aborted);
    }

    #[test]
    fn a_slow_ending_is_told_once_a_fast_one_never() {
        let mut bench = Bench::new(false, None);
        bench.happen(Happening::Quit);
        for _ in 0..30 {
            bench.now += TENTH;
            let decision = bench.closing.step(bench.now, bench.seen, None);
            bench.apply(decision);
        }
        assert_eq!(bench.told_waiting, 1, "a slow ending is told once");

        let mut bench = Bench::new(false, None);
        bench.happen(Happening::Quit);
        bench.wait(NOTICE_AFTER - TENTH);
        bench.both_close();
        assert_eq!(bench.ended, Some(Ending::Quit));
        assert_eq!(bench.told_waiting, 0, "a fast ending is told nothing");
    }

    #[test]
    fn the_idle_clock_restarts_within_a_sample_of_the_first_movement() {
        let idle = Duration::from_secs(3);
        let mut bench = Bench::new(false, Some(idle));
        // A notice goes out right at the start, seen only at the next sample.
        bench.seen.moved += 50;
        bench.wait(idle + PROGRESS_SAMPLE);
        assert!(bench.finish_sending, "idle by {:?}", bench.elapsed());
    }

    #[test]
    fn nothing_is_cut_off_while_talking_however_long_the_silence() {
        let mut bench = Bench::client();
        assert_eq!(bench.wake_at, None);
        bench.wait(TEN_MINUTES);
        assert!(!bench.finish_sending && !bench.aborted);
    }
}
