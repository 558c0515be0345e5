//! A version 2 session's clocks and counts, with no I/O and no clock of its
//! own: what was sent, taken and acknowledged goes in with the time; which
//! control frames to send, how long the peer has been silent and when to
//! look again come out.
//!
//! The rules (see `docs/PROTOCOL.md`, "Version 2: sessions"):
//! - Data frames are numbered from 1 in each direction, from the sender's
//!   `HELLO` on; an `ACK` says how many of them the peer has taken.
//! - We acknowledge what we took with our next message if there is one,
//!   or at once, but not again within [`ACK_DELAY`] unless
//!   [`FLOOD_ACK_EVERY_BYTES`] wait (a flood, read a quarter of a megabyte
//!   at a time, was answered every read, and each answer woke its sender's
//!   loop: a fifth of the flood's CPU); in a room, where every member would answer every message at
//!   once, up to [`ROOM_ACK_DELAY`] later, or once [`ACK_EVERY_FRAMES`]
//!   frames or [`ACK_EVERY_BYTES`] bytes wait; and at once when the peer
//!   ends its side (its last lines are then known to be taken).
//! - Whoever has sent nothing for [`PING_AFTER`] sends a `PING`: a live
//!   peer is never silent longer, so one silent for `--dead-after` (three
//!   times that, by default) is lost, whatever TCP says.
//! - A line of ours that waits longer than [`OVERDUE_AFTER`] for its
//!   acknowledgement is worth showing as not yet delivered.

use std::time::{Duration, Instant};

/// A side that has sent nothing for this long sends a heartbeat, unless
/// the peer asked for them more often ([`Session::beat_every`]).
pub const PING_AFTER: Duration = Duration::from_secs(5);

/// The heartbeat a side asks its peer for: a third of its `--dead-after`
/// (so two may be lost), at most [`PING_AFTER`], at least a tenth of a
/// second.
pub fn heartbeat_for(dead_after: Option<Duration>) -> Duration {
    dead_after.map_or(PING_AFTER, |after| {
        (after / 3).clamp(Duration::from_millis(100), PING_AFTER)
    })
}

/// In a conversation, what we took is acknowledged at once, but at most
/// once in this long (a person sees nothing of it: a line is shown as not
/// yet delivered after [`OVERDUE_AFTER`]) ...
pub const ACK_DELAY: Duration = Duration::from_millis(20);

/// ... or at once when this many bytes wait for it (well within what the
/// sender keeps for them).
pub const FLOOD_ACK_EVERY_BYTES: u64 = 1 << 20;

/// In a room, what a member took is acknowledged at most this much later:
/// a busy room's messages are acknowledged a few at a time.
pub const ROOM_ACK_DELAY: Duration = Duration::from_millis(200);

/// ... or at once when this many frames, or bytes, wait for it.
pub const ACK_EVERY_FRAMES: u64 = 64;
pub const ACK_EVERY_BYTES: u64 = 64 * 1024;

/// Lines unacknowledged for this long are shown as not yet delivered.
pub const OVERDUE_AFTER: Duration = Duration::from_secs(2);

/// How long a client waits before its `attempt`-th try (from 0) to
/// reconnect a lost session: quickly at first, for a blip, then every few
/// seconds, so that a link back after a long outage is found soon.
pub fn reconnect_delay(attempt: u32) -> Duration {
    match attempt {
        0 => Duration::from_millis(500),
        1 => Duration::from_secs(1),
        2 => Duration::from_secs(2),
        3 => Duration::from_secs(4),
        _ => Duration::from_secs(5),
    }
}

/// A lost session's wait for its peer to come back: given up at `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Away {
    pub since: Instant,
    pub until: Instant,
}

impl Away {
    /// Lost at `now`, kept for `resume_for`.
    pub fn new(now: Instant, resume_for: Duration) -> Self {
        Self {
            since: now,
            until: now + resume_for,
        }
    }

    /// The wait is over at `now`: the session is given up.
    pub fn expired(&self, now: Instant) -> bool {
        now >= self.until
    }

    /// How long the peer was away, back at `now`.
    pub fn lasted(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.since)
    }

    /// How long the session is kept for its peer.
    pub fn kept_for(&self) -> Duration {
        self.until.saturating_duration_since(self.since)
    }
}

/// The peer acknowledged more than we ever sent: it broke the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overacked {
    pub acked: u64,
    pub sent: u64,
}

/// Control frames due now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Due {
    /// Send an `ACK` with this count.
    pub ack: Option<u64>,
    /// Send a `PING`.
    pub ping: bool,
}

#[derive(Debug, Clone)]
pub struct Session {
    /// Data frames we numbered (sent since our `HELLO`).
    sent: u64,
    /// How many of them the peer has taken.
    acked: u64,
    /// Since when the oldest frame not yet acknowledged has waited (at the
    /// latest: after a partial acknowledgement, from then).
    unacked_since: Option<Instant>,
    /// Data frames of the peer's we took (since its `HELLO`).
    taken: u64,
    /// The count our last `ACK` said.
    ack_sent: u64,
    /// Bytes taken since our last `ACK`.
    bytes_unacked: u64,
    /// Our next `ACK` is due then, at the latest.
    ack_due: Option<Instant>,
    /// The last time anything came from the peer.
    heard_at: Instant,
    /// The last time we sent anything.
    sent_at: Instant,
    /// We send something at least this often.
    ping_after: Duration,
    /// What we take is acknowledged at most this much later, or once this
    /// many frames or bytes wait.
    ack_delay: Duration,
    ack_every: (u64, u64),
    /// A conversation's: what we take is acknowledged at once if we have
    /// not acknowledged anything within `ack_delay` (a room's: always
    /// `ack_delay` later, so that one answer covers a burst).
    ack_at_once: bool,
    /// When we last sent an acknowledgement.
    acked_at: Option<Instant>,
    /// We are not reading the peer (a room holding a talker back) since
    /// then: what it sends, heartbeats included, waits unread, so its
    /// silence meanwhile is ours.
    deaf_since: Option<Instant>,
}

impl Session {
    pub fn new(now: Instant) -> Self {
        Self {
            sent: 0,
            acked: 0,
            unacked_since: None,
            taken: 0,
            ack_sent: 0,
            bytes_unacked: 0,
            ack_due: None,
            heard_at: now,
            sent_at: now,
            ping_after: PING_AFTER,
            ack_delay: ACK_DELAY,
            ack_every: (u64::MAX, FLOOD_ACK_EVERY_BYTES),
            ack_at_once: true,
            acked_at: None,
            deaf_since: None,
        }
    }

    /// What we take is acknowledged up to `delay` later (0: at once), or
    /// once [`ACK_EVERY_FRAMES`] frames or [`ACK_EVERY_BYTES`] wait (a
    /// room's member).
    pub fn delay_acks(&mut self, delay: Duration) {
        self.ack_delay = delay;
        self.ack_every = (ACK_EVERY_FRAMES, ACK_EVERY_BYTES);
        self.ack_at_once = false;
    }

    /// The peer asks for something at least every `every` (its `HELLO`
    /// says), or [`PING_AFTER`] if that is more often.
    pub fn beat_every(&mut self, every: Duration) {
        self.ping_after = every.clamp(Duration::from_millis(100), PING_AFTER);
    }

    /// We queued `frames` data frames (and maybe nothing else).
    pub fn sent(&mut self, frames: u64, now: Instant) {
        if frames == 0 {
            return;
        }
        self.sent += frames;
        self.unacked_since = self.unacked_since.or(Some(now));
        self.sent_at = now;
    }

    /// We took `frames` data frames of the peer's, `bytes` in all.
    pub fn took(&mut self, frames: u64, bytes: u64, now: Instant) {
        if frames == 0 {
            return;
        }
        self.taken += frames;
        self.bytes_unacked += bytes;
        let due = match (self.ack_at_once, self.acked_at) {
            (true, None) => now,
            (true, Some(acked)) => now.max(acked + self.ack_delay),
            (false, _) => now + self.ack_delay,
        };
        self.ack_due = self.ack_due.or(Some(due));
    }

    /// Something came from the peer.
    pub fn heard(&mut self, now: Instant) {
        self.heard_at = self.heard_at.max(now);
    }

    /// The peer says it took our first `count` frames; how many more than
    /// it said before.
    pub fn acked(&mut self, count: u64, now: Instant) -> Result<u64, Overacked> {
        if count > self.sent {
            return Err(Overacked {
                acked: count,
                sent: self.sent,
            });
        }
        let newly = count.saturating_sub(self.acked);
        if newly > 0 {
            self.acked = count;
            self.unacked_since = (self.acked < self.sent).then_some(now);
        }
        Ok(newly)
    }

    /// The control frames due at `now`, counted as sent; `hurry`: the
    /// peer is ending its side, so what we took is acknowledged at once.
    pub fn due(&mut self, now: Instant, hurry: bool) -> Due {
        let mut due = Due::default();
        let waiting = self.taken - self.ack_sent;
        if waiting > 0
            && (hurry
                || waiting >= self.ack_every.0
                || self.bytes_unacked >= self.ack_every.1
                || self.ack_due.is_some_and(|at| at <= now))
        {
            due.ack = Some(self.taken);
            self.ack_sent = self.taken;
            self.bytes_unacked = 0;
            self.ack_due = None;
            self.sent_at = now;
            self.acked_at = Some(now);
        }
        if now >= self.sent_at + self.ping_after {
            due.ping = true;
            self.sent_at = now;
        }
        due
    }

    /// We are about to send data: what we took and have not acknowledged
    /// goes with it (its count, then), as TCP's acknowledgements ride on
    /// data.
    pub fn ack_with_data(&mut self, now: Instant) -> Option<u64> {
        if self.taken == self.ack_sent {
            return None;
        }
        self.ack_sent = self.taken;
        self.bytes_unacked = 0;
        self.ack_due = None;
        self.sent_at = now;
        self.acked_at = Some(now);
        Some(self.taken)
    }

    /// When [`due`](Self::due) may have something next.
    pub fn wake_at(&self) -> Instant {
        let ping = self.sent_at + self.ping_after;
        self.ack_due.map_or(ping, |ack| ack.min(ping))
    }

    /// How long the peer has sent nothing at all.
    pub fn silent_for(&self, now: Instant) -> Duration {
        self.deaf_since
            .unwrap_or(now)
            .saturating_duration_since(self.heard_at)
    }

    /// We stop reading the peer at `now`, or read it again (`deaf` false):
    /// its silence counts only while we read it (a talker a busy room held
    /// back for long is not lost for it), and the time we did not is left
    /// out, not the silence before it (a room that looks at a member and
    /// lets it go a thousand times a minute must not make a dead one look
    /// alive: the readiness rechecks on Windows did).
    pub fn deafen(&mut self, deaf: bool, now: Instant) {
        match (self.deaf_since, deaf) {
            (None, true) => self.deaf_since = Some(now),
            (Some(since), false) => {
                self.deaf_since = None;
                let unread = now.saturating_duration_since(since);
                self.heard_at = (self.heard_at + unread).min(now);
            }
            _ => {}
        }
    }

    /// Data frames we sent that the peer has not acknowledged.
    pub fn unacked(&self) -> u64 {
        self.sent - self.acked
    }

    /// How many of the peer's data frames we have taken.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// How many the peer has acknowledged.
    pub fn acked_count(&self) -> u64 {
        self.acked
    }

    /// Frames of ours have waited longer than [`OVERDUE_AFTER`].
    pub fn overdue(&self, now: Instant) -> bool {
        self.unacked_since
            .is_some_and(|since| now >= since + OVERDUE_AFTER)
    }

    /// When frames of ours become overdue, if they are not acknowledged
    /// first.
    pub fn overdue_at(&self) -> Option<Instant> {
        self.unacked_since.map(|since| since + OVERDUE_AFTER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_MINUTES: Duration = Duration::from_secs(600);

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    /// In a conversation: at once, but not again within [`ACK_DELAY`]
    /// unless a megabyte waits or the peer ends its side; said once.
    #[test]
    fn what_is_taken_is_acknowledged_at_once_but_not_more_often_than_the_delay() {
        let t0 = Instant::now();
        let mut session = Session::new(t0);
        session.took(1, 10, t0);
        assert_eq!(session.due(t0, false).ack, Some(1));
        assert_eq!(session.due(t0, false).ack, None, "said twice");
        // More within the delay: at its end.
        session.took(1, 10, at(t0, 5));
        assert_eq!(session.due(at(t0, 5), false).ack, None);
        assert_eq!(session.wake_at(), t0 + ACK_DELAY);
        assert_eq!(session.due(t0 + ACK_DELAY, false).ack, Some(2));
        // A flood: at once past a megabyte, whatever the count.
        session.took(5_000, FLOOD_ACK_EVERY_BYTES - 1, at(t0, 21));
        assert_eq!(session.due(at(t0, 21), false).ack, None);
        session.took(1, 1, at(t0, 22));
        assert_eq!(session.due(at(t0, 22), false).ack, Some(5_003));
        // The peer's end: at once.
        session.took(1, 1, at(t0, 23));
        assert_eq!(session.due(at(t0, 23), true).ack, Some(5_004));
        // Ten minutes later, a line is acknowledged at once again.
        session.took(2, 2, at(t0, 200) + TEN_MINUTES);
        assert_eq!(
            session.due(at(t0, 200) + TEN_MINUTES, false).ack,
            Some(5_006)
        );
    }

    #[test]
    fn in_a_room_what_is_taken_is_acknowledged_within_the_delay_and_once() {
        let t0 = Instant::now();
        let mut session = Session::new(t0);
        session.delay_acks(ROOM_ACK_DELAY);
        session.took(1, 10, at(t0, 0));
        assert_eq!(session.due(at(t0, 100), false), Due::default());
        assert_eq!(session.wake_at(), at(t0, 200));
        assert_eq!(session.due(at(t0, 200), false).ack, Some(1));
        assert_eq!(session.due(at(t0, 300), false).ack, None, "said twice");
        // More later: a new delay from when it was taken.
        session.took(2, 20, at(t0, 1000));
        assert_eq!(session.due(at(t0, 1100), false).ack, None);
        assert_eq!(session.due(at(t0, 1200), false).ack, Some(3));
    }

    #[test]
    fn an_acknowledgement_rides_on_data_at_once() {
        let t0 = Instant::now();
        let mut session = Session::new(t0);
        assert_eq!(session.ack_with_data(t0), None, "nothing taken");
        session.took(2, 10, t0);
        assert_eq!(session.ack_with_data(at(t0, 10)), Some(2));
        assert_eq!(session.ack_with_data(at(t0, 20)), None, "said twice");
        assert_eq!(session.due(at(t0, 500), false), Due::default());
    }

    #[test]
    fn a_flood_is_acknowledged_at_once_by_count_or_bytes_and_an_ending_at_once() {
        let t0 = Instant::now();
        let mut session = Session::new(t0);
        session.delay_acks(ROOM_ACK_DELAY);
        session.took(ACK_EVERY_FRAMES, 64 * 10, t0);
        assert_eq!(session.due(t0, false).ack, Some(ACK_EVERY_FRAMES));
        session.took(1, ACK_EVERY_BYTES, t0);
        assert_eq!(session.due(t0, false).ack, Some(ACK_EVERY_FRAMES + 1));
        session.took(1, 5, t0);
        assert_eq!(session.due(t0, false).ack, None);
        assert_eq!(session.due(t0, true).ack, Some(ACK_EVERY_FRAMES + 2));
    }

    #[test]
    fn a_side_that_sends_nothing_pings_every_five_seconds_and_not_otherwise() {
        let t0 = Instant::now();
        let mut session = Session::new(t0);
        assert!(!session.due(at(t0, 4_999), false).ping);
        assert_eq!(session.wake_at(), at(t0, 5_000));
        assert!(session.due(at(t0, 5_000), false).ping);
        assert!(!session.due(at(t0, 5_001), false).ping);
        // Sending is as good as a ping.
        session.sent(1, at(t0, 9_000));
        assert!(!session.due(at(t0, 10_000), false).ping);
        assert!(session.due(at(t0, 14_000), false).ping);
        // An ack is sending too.
        session.took(1, 1, at(t0, 15_000));
        assert_eq!(session.due(at(t0, 15_000), true).ack, Some(1));
        assert!(!session.due(at(t0, 19_000), false).ping);
        // Ten minutes of nothing: one ping, not a backlog of them.
        assert!(session.due(at(t0, 19_000) + TEN_MINUTES, false).ping);
        assert!(!session.due(at(t0, 19_001) + TEN_MINUTES, false).ping);
    }

    /// A peer that takes a silence of 3 s as death asks for a heartbeat
    /// every second; one that waits longer gets one every 5 s at most.
    #[test]
    fn heartbeats_come_as_often_as_the_peer_asks() {
        let t0 = Instant::now();
        assert_eq!(
            heartbeat_for(Some(Duration::from_secs(3))),
            Duration::from_secs(1)
        );
        assert_eq!(heartbeat_for(Some(Duration::from_secs(15))), PING_AFTER);
        assert_eq!(heartbeat_for(Some(TEN_MINUTES)), PING_AFTER);
        assert_eq!(heartbeat_for(None), PING_AFTER);
        assert_eq!(
            heartbeat_for(Some(Duration::ZERO)),
            Duration::from_millis(100)
        );
        let mut session = Session::new(t0);
        session.beat_every(Duration::from_secs(1));
        assert!(!session.due(at(t0, 999), false).ping);
        assert!(session.due(at(t0, 1_000), false).ping);
        assert_eq!(session.wake_at(), at(t0, 2_000));
        // Asked for less often than the default: the default.
        session.beat_every(TEN_MINUTES);
        assert_eq!(session.wake_at(), at(t0, 6_000));
    }

    #[test]
    fn silence_is_counted_from_the_last_thing_heard() {
        let t0 = Instant::now();
        let mut session = Session::new(t0);
        assert_eq!(session.silent_for(at(t0, 100)), Duration::from_millis(100));
        session.heard(at(t0, 100));
        assert_eq!(session.silent_for(at(t0, 100) + TEN_MINUTES), TEN_MINUTES);
        // An old report does not turn the clock back.
        session.heard(at(t0, 50));
        assert_eq!(session.silent_for(at(t0, 200)), Duration::from_millis(100));
    }

    #[test]
    fn silence_is_not_counted_while_the_peer_is_not_read() {
        let t0 = Instant::now();
        let mut session = Session::new(t0);
        session.deafen(true, at(t0, 100));
        // Ten minutes unread: no more silent than when we stopped, since
        // its heartbeats wait unread.
        assert_eq!(
            session.silent_for(at(t0, 100) + TEN_MINUTES),
            Duration::from_millis(100)
        );
        // Read again: the 100 ms of silence before counts, the ten minutes
        // unread do not.
        let again = at(t0, 100) + TEN_MINUTES;
        session.deafen(false, again);
        assert_eq!(
            session.silent_for(again + Duration::from_millis(100)),
            Duration::from_millis(200)
        );
    }

    /// A peer looked at and let go again and again (each a moment of not
    /// reading it) goes on being silent: a dead one is still lost.
    #[test]
    fn brief_moments_unread_do_not_make_a_silent_peer_look_alive() {
        let t0 = Instant::now();
        let mut session = Session::new(t0);
        for ms in (0..3_000).step_by(100) {
            session.deafen(true, at(t0, ms));
            session.deafen(false, at(t0, ms));
        }
        assert_eq!(session.silent_for(at(t0, 3_000)), Duration::from_secs(3));
        // A second unread in all: a second less.
        session.deafen(true, at(t0, 3_000));
        session.deafen(false, at(t0, 4_000));
        assert_eq!(session.silent_for(at(t0, 4_000)), Duration::from_secs(3));
        assert_eq!(
            session.silent_for(at(t0, 4_000) + TEN_MINUTES),
            Duration::from_secs(3) + TEN_MINUTES
        );
    }

    #[test]
    fn acknowledgements_count_once_and_never_past_what_was_sent() {
        let t0 = Instant::now();
        let mut session = Session::new(t0);
        session.sent(3, t0);
        assert_eq!(session.unacked(), 3);
        assert_eq!(session.acked(2, t0), Ok(2));
        assert_eq!(session.acked(2, t0), Ok(0), "a repeated ack");
        assert_eq!(session.acked(1, t0), Ok(0), "an old ack");
        assert_eq!(session.unacked(), 1);
        assert_eq!(session.acked(4, t0), Err(Overacked { acked: 4, sent: 3 }));
        assert_eq!(session.acked(3, t0), Ok(1));
        assert_eq!(session.unacked(), 0);
    }

    #[test]
    fn lines_are_overdue_after_two_seconds_unacknowledged_and_not_once_acknowledged() {
        let t0 = Instant::now();
        let mut session = Session::new(t0);
        assert!(!session.overdue(t0 + TEN_MINUTES), "nothing sent");
        session.sent(2, at(t0, 0));
        assert!(!session.overdue(at(t0, 1_999)));
        assert_eq!(session.overdue_at(), Some(at(t0, 2_000)));
        assert!(session.overdue(at(t0, 2_000)));
        // One of the two came through: the other counts from now.
        session.acked(1, at(t0, 2_500)).unwrap();
        assert!(!session.overdue(at(t0, 4_000)));
        assert!(session.overdue(at(t0, 4_500)));
        session.acked(2, at(t0, 4_600)).unwrap();
        assert!(!session.overdue(at(t0, 4_600) + TEN_MINUTES));
        assert_eq!(session.overdue_at(), None);
    }

    #[test]
    fn reconnecting_is_quick_at_first_then_every_five_seconds() {
        let delays: Vec<u64> = (0..7)
            .map(|n| reconnect_delay(n).as_millis() as u64)
            .collect();
        assert_eq!(delays, [500, 1_000, 2_000, 4_000, 5_000, 5_000, 5_000]);
        // Five minutes of trying: a try at least every 5 s throughout.
        let mut at = Duration::ZERO;
        let mut attempt = 0;
        while at < TEN_MINUTES / 2 {
            at += reconnect_delay(attempt);
            attempt += 1;
        }
        assert!(attempt >= 60, "{attempt} tries");
        assert_eq!(reconnect_delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn a_lost_session_is_kept_for_its_time_and_no_longer() {
        let t0 = Instant::now();
        let away = Away::new(t0, Duration::from_millis(100));
        assert!(!away.expired(at(t0, 99)));
        assert!(away.expired(at(t0, 100)));
        assert_eq!(away.lasted(at(t0, 42)), Duration::from_millis(42));
        let away = Away::new(t0, TEN_MINUTES);
        assert!(!away.expired(t0 + TEN_MINUTES - Duration::from_millis(1)));
        assert!(away.expired(t0 + TEN_MINUTES));
        assert_eq!(away.lasted(t0 + TEN_MINUTES), TEN_MINUTES);
    }
}
