//! The first-message deadline (`--speak-within`): a client that holds a
//! place, one in the conversation mode's waiting line or a seat in a room,
//! must have sent one whole frame within a few seconds of getting it, or
//! it is let go, told why, and the place is free for someone else.
//!
//! What counts is one whole frame of any kind: a message, a keepalive (an
//! empty frame), version 2's offer or one of its control frames. Why that
//! and not more, or less:
//! - Bytes alone do not count: three bytes of a header and nothing more
//!   would otherwise hold a place for ever, for a peer that trickles.
//! - Our client sends its offer (32 bytes: eight empty frames) as soon as
//!   it is connected, and its `HELLO` once the server's offer comes, so it
//!   has spoken within a round trip, whether its user types at once or in
//!   a minute, whatever the server's `--protocol`.
//! - An offer followed by silence holds a place no longer than that: a
//!   peer that offered is judged from its offer on by its heartbeats, and
//!   one silent for `--dead-after` (15 s) is taken as lost, in the line
//!   and in a room alike. So the offer may count here.
//! - A version 1 script that only reads has no way to look alive but to
//!   send something: an empty frame (4 zero bytes) is the protocol's own
//!   keepalive, shown to nobody, and keeps its place. One that sends
//!   nothing at all cannot be told from a connection held open to keep
//!   others out, and is let go: `--speak-within 0` keeps such readers.
//! - What a client that was served says, or does not say, is not judged
//!   here: a quiet conversation is the operator's (its `q`, or
//!   `--idle-timeout`), and a peer already in one is never cut for its
//!   silence.
//!
//!
//! A full line or room makes room for a newcomer ([`FirstWords::make_room`]),
//! by two rules, the first counting networks ([`Prefix`]: an IPv4 /24, an
//! IPv6 /64), not addresses:
//! - Fair shares: a network that holds at least two more places than the
//!   newcomer's without a word from them gives up one, however young.
//!   Without it, one network that opens idle connections faster than they
//!   are let go (50 a second was enough for the conversation mode's five
//!   places) keeps every place, for as long as it goes on; with it, it
//!   keeps none against a real client from elsewhere, which gets a place
//!   at once and keeps it, having spoken within a round trip. Two more and
//!   not one more: a swap must never just turn the imbalance the other way
//!   (two networks would take the place back and forth).
//! - By age: the one silent longest gives up its place once it has held it
//!   for half the deadline (see [`FirstWords::make_room`]), but only to a
//!   newcomer whose network waits on no word of its own, and had none of
//!   its clients let go for their silence lately (a minute or so: see
//!   [`LATELY`]). Without these, a stream of idle connections from as many
//!   networks as there are places renewed every place as soon as it was
//!   half a deadline old, and a real client raced them for it (15 to 20 s
//!   at 50 a second); with them, an attacker's networks renew nothing by
//!   age once their first idle connections were let go, places are freed
//!   only at their deadline, and a real client finds one half a deadline
//!   old at any time.
//!
//! [`FirstWords`] keeps who must speak by when; the loop tells it, at each
//! deadline, what the peer sent ([`Heard`]). [`Told`] groups the operator's
//! reports of those let go, once a second with a count, as the gate's
//! refusals are.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::state::points::Points;
use crate::state::prefix::Prefix;
use crate::state::throttle::Throttle;

/// A peer whose bytes wait unread (the service held off reading it) is
/// looked at again this much later: its first frame may be among them.
pub const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// Reports of clients let go come at most this often.
const REPORT_PERIOD: Duration = Duration::from_secs(1);

/// What a connection's peer has sent, as far as it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// At least one whole frame, of any kind.
    Frame,
    /// Not one whole frame (perhaps a part of one).
    Nothing,
    /// Not one whole frame read, but the service held off reading it:
    /// what waits may hold one.
    Unread,
}

/// Clients holding a place, each with the time by which its first whole
/// frame must have come.
#[derive(Debug)]
pub struct FirstWords {
    within: Option<Duration>,
    by: HashMap<usize, (Instant, Prefix)>,
    /// The same, in order of deadline.
    order: BTreeSet<(Instant, usize)>,
    /// The same, by network, each in order of deadline.
    networks: HashMap<Prefix, BTreeSet<(Instant, usize)>>,
    /// How many each network has here, in order of that count. Some of
    /// them may have spoken since: a count is an upper bound until the
    /// network is looked at ([`FirstWords::settle`]).
    counts: BTreeSet<(usize, Prefix)>,
    /// A point for each client let go for its silence, by network, fading
    /// (see [`LATELY`]).
    let_go: Points,
}

/// A network whose clients were let go for their silence lately (points
/// of at least this: one let go within the last minute or so, a point
/// each, halved every [`LET_GO_HALF_LIFE`]) takes no place by age: its
/// newcomers would only renew the places its silent ones held.
const LATELY: f64 = 0.5;
const LET_GO_HALF_LIFE: Duration = Duration::from_secs(60);

/// Why a newcomer was given a place ([`FirstWords::make_room`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Making {
    /// Its network held `held` places not yet seen to have spoken, at least
    /// two more without a word than the newcomer's: it gives one up,
    /// however young.
    Share { network: Prefix, held: usize },
    /// It had held its place for half the deadline without a word.
    Age,
}

impl FirstWords {
    /// Each client that takes a place must speak `within` of it; `None`:
    /// no deadline.
    pub fn new(within: Option<Duration>) -> Self {
        Self {
            within,
            by: HashMap::new(),
            order: BTreeSet::new(),
            networks: HashMap::new(),
            counts: BTreeSet::new(),
            let_go: Points::new(LET_GO_HALF_LIFE),
        }
    }

    /// The deadline, if there is one.
    pub fn within(&self) -> Option<Duration> {
        self.within
    }

    /// Client `who`, from `from`, took a place at `now`.
    pub fn took_place(&mut self, who: usize, from: IpAddr, now: Instant) {
        if let Some(within) = self.within {
            self.set(who, now + within, Prefix::of(from));
        }
    }

    fn set(&mut self, who: usize, at: Instant, network: Prefix) {
        self.forget(who);
        self.by.insert(who, (at, network));
        self.order.insert((at, who));
        let mine = self.networks.entry(network).or_default();
        let held = mine.len();
        mine.insert((at, who));
        self.counts.remove(&(held, network));
        self.counts.insert((held + 1, network));
    }

    /// Client `who` holds no place any more (served, gone, let go).
    pub fn forget(&mut self, who: usize) {
        let Some((at, network)) = self.by.remove(&who) else {
            return;
        };
        self.order.remove(&(at, who));
        let mine = self.networks.get_mut(&network).expect("counted");
        let held = mine.len();
        mine.remove(&(at, who));
        self.counts.remove(&(held, network));
        match held - 1 {
            0 => {
                self.networks.remove(&network);
            }
            left => {
                self.counts.insert((left, network));
            }
        }
    }

    /// How many places `network` holds here without a word, counting to
    /// `enough` at most, and the one that has held its place longest of
    /// those; those of its clients found to have spoken on the way are
    /// forgotten.
    fn settle(
        &mut self,
        network: Prefix,
        enough: usize,
        heard: &mut impl FnMut(usize) -> Heard,
    ) -> (usize, Option<usize>) {
        let Some(mine) = self.networks.get(&network) else {
            return (0, None);
        };
        let mut held = 0;
        let mut oldest = None;
        let mut spoke = Vec::new();
        for &(_, who) in mine {
            if held >= enough {
                break;
            }
            match heard(who) {
                Heard::Frame => spoke.push(who),
                // Unread bytes may hold a frame: counted, never let go.
                Heard::Unread => held += 1,
                Heard::Nothing => {
                    held += 1;
                    oldest.get_or_insert(who);
                }
            }
        }
        for who in spoke {
            self.forget(who);
        }
        (held, oldest)
    }

    /// Every place is taken, and a newcomer from `newcomer` wants one: the
    /// client to give it up, if one must, and why (it is forgotten here;
    /// the caller lets it go). By the rules in this module's header: fair
    /// shares between networks first, then age
    /// ([`FirstWords::oldest_silent`]) for a newcomer whose network waits
    /// on no word of its own.
    pub fn make_room(
        &mut self,
        now: Instant,
        newcomer: IpAddr,
        mut heard: impl FnMut(usize) -> Heard,
    ) -> Option<(usize, Making)> {
        self.within?;
        let mine = Prefix::of(newcomer);
        // Counts are upper bounds: the largest other one says whether any
        // network could owe the newcomer's a place at all.
        let most = self
            .counts
            .iter()
            .rev()
            .find(|&&(_, network)| network != mine)
            .map_or(0, |&(held, _)| held);
        let (own, _) = self.settle(mine, most.saturating_sub(1).max(1), &mut heard);
        let owing: Vec<Prefix> = self
            .counts
            .iter()
            .rev()
            .take_while(|&&(held, _)| held >= own + 2)
            .map(|&(_, network)| network)
            .filter(|&network| network != mine)
            .collect();
        for network in owing {
            let (silent, oldest) = self.settle(network, own + 2, &mut heard);
            if silent >= own + 2
                && let Some(who) = oldest
            {
                // What it held, for the words: its places not yet seen to
                // have spoken.
                let held = self.networks.get(&network).map_or(0, BTreeSet::len);
                self.forget(who);
                self.let_go.add(network, now, 1.0);
                return Some((who, Making::Share { network, held }));
            }
        }
        if own > 0 || self.let_go.of(mine, now) >= LATELY {
            return None;
        }
        self.oldest_silent(now, heard).map(|who| (who, Making::Age))
    }

    /// Whether client `who` is still awaited.
    #[cfg(test)]
    pub fn awaits(&self, who: usize) -> bool {
        self.by.contains_key(&who)
    }

    /// The clients whose deadline has come by `now` and that sent nothing,
    /// as `heard` says of each: they are to be let go (and are forgotten).
    /// Those that spoke are forgotten too; one whose bytes wait unread is
    /// looked at again [`LOOK_AGAIN`] later.
    pub fn due(&mut self, now: Instant, mut heard: impl FnMut(usize) -> Heard) -> Vec<usize> {
        let mut silent = Vec::new();
        let mut again = Vec::new();
        while let Some(&(at, who)) = self.order.first() {
            if at > now {
                break;
            }
            let network = self.by[&who].1;
            self.forget(who);
            match heard(who) {
                Heard::Frame => {}
                Heard::Nothing => {
                    self.let_go.add(network, now, 1.0);
                    silent.push(who);
                }
                Heard::Unread => again.push((who, network)),
            }
        }
        for (who, network) in again {
            self.set(who, now + LOOK_AGAIN, network);
        }
        silent
    }

    /// The client that has held its place longest without a whole frame,
    /// if it has held it for half the deadline at least: every place is
    /// taken, and a newcomer is given that one (it is forgotten here; the
    /// caller lets it go). Without this, an attacker that opens its
    /// connections again as fast as they are let go would keep every
    /// place, all the time but for a moment every `within`; with it, a real
    /// client gets a place while the attacker's are half a deadline old,
    /// and keeps it, having spoken within a round trip. Half the deadline,
    /// and not less, for a real client on a lossy link whose offer needed
    /// a resend or two.
    fn oldest_silent(
        &mut self,
        now: Instant,
        mut heard: impl FnMut(usize) -> Heard,
    ) -> Option<usize> {
        let within = self.within?;
        let mut spoke = Vec::new();
        let mut found = None;
        for &(at, who) in &self.order {
            // In order of deadline, so of arrival: the rest are younger.
            let Some(since) = at.checked_sub(within) else {
                continue;
            };
            if now < since + within / 2 {
                break;
            }
            match heard(who) {
                Heard::Frame => spoke.push(who),
                Heard::Nothing => {
                    found = Some(who);
                    break;
                }
                Heard::Unread => {}
            }
        }
        if let Some(who) = found {
            let network = self.by[&who].1;
            self.let_go.add(network, now, 1.0);
        }
        for who in spoke.into_iter().chain(found) {
            self.forget(who);
        }
        found
    }

    /// When the next deadline comes.
    pub fn wake_at(&self) -> Option<Instant> {
        self.order.first().map(|&(at, _)| at)
    }
}

/// The operator's reports of clients let go for their silence (or, with
/// [`Told::new`], turned away from a full line or room): the first at
/// once, then at most one a second, with how many it stands for and the
/// last one's words.
#[derive(Debug)]
pub struct Told {
    throttle: Throttle,
    last: String,
    /// What the reports count: `clients let go for sending nothing`.
    what: &'static str,
}

impl Default for Told {
    fn default() -> Self {
        Self::new("clients let go for sending nothing")
    }
}

impl Told {
    /// Reports that count `what` (`clients turned away`).
    pub fn new(what: &'static str) -> Self {
        Self {
            throttle: Throttle::new(REPORT_PERIOD),
            last: String::new(),
            what,
        }
    }

    /// A client was let go at `now`, as `line` says: the report to show
    /// now, if one is due.
    pub fn let_go(&mut self, line: String, now: Instant) -> Option<String> {
        self.last = line;
        let count = self.throttle.occurred(now)?;
        Some(self.describe(count))
    }

    /// The report of those let go since the last one, once it is due.
    pub fn overdue(&mut self, now: Instant) -> Option<String> {
        let count = self.throttle.overdue(now)?;
        Some(self.describe(count))
    }

    /// When a report is due, if any waits.
    pub fn wake_at(&self) -> Option<Instant> {
        self.throttle.due_at()
    }

    fn describe(&self, count: u64) -> String {
        match count {
            1 => self.last.clone(),
            n => format!(
                "{n} {} since the last report; the last: {}",
                self.what, self.last
            ),
        }
    }
}

/// The words for a client let go after `within` of silence, to the
/// operator and in the room: `sent nothing within 10 s of …`.
pub fn sent_nothing(within: Duration, of: &str) -> String {
    format!("sent nothing within {} of {of}", seconds(within))
}

/// The words for a client let go for its network's unfair share
/// (`held`: `127.1.0.0/24 held 5 of the places in line`), `who` and `whose`
/// naming it: `you had sent nothing yet, and your network 127.1.0.0/24
/// held 5 of the places…`.
pub fn unfair_share(who: &str, whose: &str, held: &str) -> String {
    format!(
        "{who} had sent nothing yet, and {whose} network {held} without a word: a newcomer from another network needed one"
    )
}

fn seconds(duration: Duration) -> String {
    match duration.subsec_millis() {
        0 => format!("{} s", duration.as_secs()),
        _ => format!("{:.1} s", duration.as_secs_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Where the clients of the tests that do not look at networks come from.
    const HERE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_client_that_sends_nothing_is_due_at_its_deadline_and_not_before() {
        for within in [ms(100), Duration::from_secs(600)] {
            let start = Instant::now();
            let mut words = FirstWords::new(Some(within));
            words.took_place(7, HERE, start);
            assert_eq!(words.wake_at(), Some(start + within));
            // A moment before: nothing due, and the peer is not even asked.
            let before = start + within - ms(1);
            assert!(
                words
                    .due(before, |_| panic!("asked before the deadline"))
                    .is_empty()
            );
            assert!(words.awaits(7));
            assert_eq!(words.due(start + within, |_| Heard::Nothing), [7]);
            assert!(!words.awaits(7));
            assert_eq!(words.wake_at(), None);
            // Asked once only: forgotten once let go.
            assert!(
                words
                    .due(start + within * 10, |_| Heard::Nothing)
                    .is_empty()
            );
        }
    }

    #[test]
    fn a_client_that_sent_a_frame_is_forgotten_at_its_deadline() {
        let start = Instant::now();
        let mut words = FirstWords::new(Some(ms(100)));
        words.took_place(1, HERE, start);
        words.took_place(2, HERE, start + ms(50));
        let heard = |who| match who {
            1 => Heard::Frame,
            _ => Heard::Nothing,
        };
        assert!(words.due(start + ms(100), heard).is_empty());
        assert!(!words.awaits(1));
        assert_eq!(words.wake_at(), Some(start + ms(150)));
        assert_eq!(words.due(start + ms(150), heard), [2]);
    }

    #[test]
    fn ten_silent_minutes_hold_a_place_only_until_the_deadline() {
        // Ten minutes stepped a tenth of a second at a time: each client is
        // due once, at its own deadline, whenever it came.
        let start = Instant::now();
        let within = Duration::from_secs(10);
        let mut words = FirstWords::new(Some(within));
        let mut let_go = Vec::new();
        for tenth in 0..6000u64 {
            let now = start + ms(100 * tenth);
            // A newcomer every 7 s, none of which says anything.
            if tenth % 70 == 0 {
                words.took_place(tenth as usize, HERE, now);
            }
            for who in words.due(now, |_| Heard::Nothing) {
                let_go.push((who, tenth));
            }
        }
        // 86 came (at 0, 7, … 595 s); the last is not yet due.
        assert_eq!(let_go.len(), 85);
        for (who, tenth) in let_go {
            assert_eq!(tenth, who as u64 + 100, "let go at its deadline exactly");
        }
    }

    #[test]
    fn unread_bytes_are_looked_at_again_until_read() {
        let start = Instant::now();
        let mut words = FirstWords::new(Some(Duration::from_secs(10)));
        words.took_place(3, HERE, start);
        let at = start + Duration::from_secs(10);
        assert!(words.due(at, |_| Heard::Unread).is_empty());
        assert_eq!(words.wake_at(), Some(at + LOOK_AGAIN));
        assert!(words.due(at + LOOK_AGAIN, |_| Heard::Unread).is_empty());
        // Read at last, and nothing whole in it.
        let later = at + LOOK_AGAIN * 2;
        assert_eq!(words.due(later, |_| Heard::Nothing), [3]);
    }

    #[test]
    fn without_a_deadline_nobody_is_awaited_and_a_place_taken_again_counts_anew() {
        let start = Instant::now();
        let mut off = FirstWords::new(None);
        off.took_place(1, HERE, start);
        assert!(!off.awaits(1));
        assert_eq!(off.wake_at(), None);
        assert!(
            off.due(start + Duration::from_secs(600), |_| Heard::Nothing)
                .is_empty()
        );

        let mut words = FirstWords::new(Some(ms(100)));
        words.took_place(1, HERE, start);
        words.took_place(1, HERE, start + ms(80));
        assert!(words.due(start + ms(100), |_| Heard::Nothing).is_empty());
        assert_eq!(words.due(start + ms(180), |_| Heard::Nothing), [1]);
        // Served (or gone) before its deadline: never judged.
        words.took_place(2, HERE, start);
        words.forget(2);
        assert_eq!(words.wake_at(), None);
    }

    #[test]
    fn a_newcomer_gets_the_place_of_the_oldest_silent_one_once_it_is_half_a_deadline_old() {
        for within in [ms(100), Duration::from_secs(600)] {
            let start = Instant::now();
            let mut words = FirstWords::new(Some(within));
            // 1 spoke, 2 and 3 did not; 4 came later.
            words.took_place(1, HERE, start);
            words.took_place(2, HERE, start + ms(1));
            words.took_place(3, HERE, start + ms(2));
            words.took_place(4, HERE, start + within / 4);
            let heard = |who| match who {
                1 => Heard::Frame,
                _ => Heard::Nothing,
            };
            // Younger than half the deadline: nobody gives up its place.
            let young = start + within / 2;
            assert_eq!(words.oldest_silent(young, heard), None);
            let half = start + ms(1) + within / 2;
            assert_eq!(words.oldest_silent(half, heard), Some(2));
            assert!(!words.awaits(1), "one that spoke is forgotten on the way");
            assert!(!words.awaits(2) && words.awaits(3) && words.awaits(4));
            assert_eq!(words.oldest_silent(half, heard), None, "3 is younger");
            assert_eq!(words.oldest_silent(half + ms(1), heard), Some(3));
            // Unread bytes may be its first frame: passed over, kept.
            assert_eq!(words.oldest_silent(start + within, |_| Heard::Unread), None);
            assert!(words.awaits(4));
        }
        assert_eq!(
            FirstWords::new(None).oldest_silent(Instant::now(), |_| Heard::Nothing),
            None
        );
    }

    #[test]
    fn reports_are_grouped_once_a_second_with_a_count_and_the_last_words() {
        let start = Instant::now();
        let mut told = Told::default();
        assert_eq!(told.wake_at(), None);
        assert_eq!(told.let_go("a".into(), start).as_deref(), Some("a"));
        // A thousand in the next 0.9 s: none told at once.
        for n in 1..=1000u64 {
            let now = start + Duration::from_micros(900 * n);
            assert_eq!(told.let_go(format!("c{n}"), now), None);
        }
        assert_eq!(told.wake_at(), Some(start + Duration::from_secs(1)));
        assert_eq!(told.overdue(start + ms(999)), None);
        assert_eq!(
            told.overdue(start + Duration::from_secs(1)).as_deref(),
            Some("1000 clients let go for sending nothing since the last report; the last: c1000")
        );
        assert_eq!(told.wake_at(), None);
        assert_eq!(told.overdue(start + Duration::from_secs(600)), None);
        // After ten quiet minutes, the next is told at once.
        let later = start + Duration::from_secs(600);
        assert_eq!(told.let_go("z".into(), later).as_deref(), Some("z"));
    }

    #[test]
    fn the_words_say_the_deadline() {
        assert_eq!(
            sent_nothing(Duration::from_secs(10), "joining"),
            "sent nothing within 10 s of joining"
        );
        assert_eq!(
            sent_nothing(ms(1500), "taking its place in line"),
            "sent nothing within 1.5 s of taking its place in line"
        );
    }
    fn from(network: u8, host: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, network, 0, host))
    }

    #[test]
    fn a_network_holding_every_place_gives_one_up_at_once_to_a_newcomer_from_another() {
        for within in [ms(100), Duration::from_secs(600)] {
            let start = Instant::now();
            let mut words = FirstWords::new(Some(within));
            // Network 1 takes all five places, from five addresses.
            for who in 0..5 {
                words.took_place(who, from(1, who as u8), start + ms(who as u64));
            }
            let silent = |_| Heard::Nothing;
            let young = start + ms(5);
            let one = Prefix::of(from(1, 0));
            // One of its own is refused: nothing is owed to it, and its
            // network waits on words of its own.
            assert_eq!(words.make_room(young, from(1, 9), silent), None);
            // A newcomer from network 2 gets the oldest of them, young as
            // it is; and a second one too (5 against 1).
            let made = words.make_room(young, from(2, 1), silent);
            assert_eq!(
                made,
                Some((
                    0,
                    Making::Share {
                        network: one,
                        held: 5
                    }
                ))
            );
            words.took_place(10, from(2, 1), young);
            let made = words.make_room(young, from(2, 2), silent);
            assert_eq!(
                made,
                Some((
                    1,
                    Making::Share {
                        network: one,
                        held: 4
                    }
                ))
            );
            words.took_place(11, from(2, 2), young);
            // 3 against 2: a swap would only turn it around.
            assert_eq!(words.make_room(young, from(2, 3), silent), None);
            // A third network, holding none, is owed one of network 1's.
            let made = words.make_room(young, from(3, 1), silent);
            assert_eq!(
                made,
                Some((
                    2,
                    Making::Share {
                        network: one,
                        held: 3
                    }
                ))
            );
            assert!(!words.awaits(0) && !words.awaits(1) && !words.awaits(2));
            assert!(words.awaits(3) && words.awaits(10) && words.awaits(11));
        }
    }

    #[test]
    fn by_age_a_place_goes_only_to_a_newcomer_whose_network_waits_on_no_word() {
        for within in [ms(100), Duration::from_secs(600)] {
            let start = Instant::now();
            let mut words = FirstWords::new(Some(within));
            // Five networks, one place each: none owes another anything.
            for who in 0..5 {
                words.took_place(who, from(who as u8, 1), start);
            }
            let half = start + within / 2;
            let heard = |who| match who {
                4 => Heard::Frame,
                _ => Heard::Nothing,
            };
            // Network 0 waits on its own client's word: refused.
            assert_eq!(words.make_room(half, from(0, 2), heard), None);
            // Network 4's client spoke: its newcomer is owed the oldest.
            assert_eq!(
                words.make_room(half, from(4, 2), heard),
                Some((0, Making::Age))
            );
            // And one from elsewhere the next, once it is old enough.
            let early = start + within / 4;
            let mut late = FirstWords::new(Some(within));
            late.took_place(1, from(1, 1), start);
            assert_eq!(late.make_room(early, from(9, 1), heard), None);
            assert_eq!(
                late.make_room(half, from(9, 1), heard),
                Some((1, Making::Age))
            );
        }
    }

    #[test]
    fn clients_that_spoke_or_whose_bytes_wait_unread_are_never_given_up() {
        let start = Instant::now();
        let mut words = FirstWords::new(Some(ms(100)));
        for who in 0..5 {
            words.took_place(who, from(1, who as u8), start);
        }
        let heard = |who| match who {
            0..=2 => Heard::Frame,
            _ => Heard::Unread,
        };
        // Network 1 counts 5, but three spoke (forgotten on the way) and
        // two may have: nothing is given up, ever.
        let late = start + Duration::from_secs(600);
        assert_eq!(words.make_room(late, from(2, 1), heard), None);
        assert!(!words.awaits(0) && !words.awaits(1) && !words.awaits(2));
        assert!(words.awaits(3) && words.awaits(4));
        assert_eq!(
            FirstWords::new(None).make_room(late, from(2, 1), heard),
            None
        );
    }

    /// The attack that kept the conversation mode's line full: one network
    /// opening 50 idle connections a second into five places, then 6 and 50
    /// networks doing it in turn. Ten minutes, a tenth of a second at a
    /// time; a real client from elsewhere wants in once in a while from
    /// two minutes on (by when every network has had idle connections let
    /// go: until then, those that have not take places by age, and the
    /// real client waited up to 12.5 s here against 50 networks), trying
    /// every half second: it gets a place at its first try every time
    /// against one network, and within half a deadline against more (here
    /// every place is taken at the same moment, and all are younger than
    /// that for a while); it then speaks, and leaves 2 s later.
    #[test]
    fn fifty_idle_connections_a_second_from_any_number_of_networks_keep_no_real_client_out() {
        for networks in [1, 6, 50] {
            fifty_a_second_from(networks);
        }
    }

    fn fifty_a_second_from(networks: usize) {
        let start = Instant::now();
        let within = Duration::from_secs(10);
        let mut words = FirstWords::new(Some(within));
        let mut places: Vec<usize> = Vec::new();
        let mut next = 0usize;
        let mut real: Option<(usize, Instant)> = None;
        let mut wanting: Option<Instant> = None;
        let mut waits = Vec::new();
        let real_ids = 1_000_000;
        for tenth in 0..6000u64 {
            let now = start + ms(100 * tenth);
            let heard = |who| match who >= real_ids {
                true => Heard::Frame,
                false => Heard::Nothing,
            };
            for who in words.due(now, heard) {
                places.retain(|&p| p != who);
            }
            if let Some((who, since)) = real
                && now >= since + Duration::from_secs(2)
            {
                places.retain(|&p| p != who);
                words.forget(who);
                real = None;
            }
            let mut come = |who: usize, address: IpAddr, words: &mut FirstWords| -> bool {
                if places.len() >= 5 {
                    match words.make_room(now, address, heard) {
                        Some((out, _)) => places.retain(|&p| p != out),
                        None => return false,
                    }
                }
                places.push(who);
                words.took_place(who, address, now);
                true
            };
            for _ in 0..5 {
                next += 1;
                let network = 1 + (next % networks) as u8;
                come(
                    next,
                    from(network, (next / networks % 250) as u8),
                    &mut words,
                );
            }
            if tenth % 70 == 35 && tenth >= 1200 && real.is_none() && wanting.is_none() {
                wanting = Some(now);
            }
            // It tries every half second until it is in.
            if let Some(since) = wanting
                && tenth % 5 == 0
            {
                let who = real_ids + tenth as usize;
                if come(who, from(200, 1), &mut words) {
                    waits.push(now - since);
                    real = Some((who, now));
                    wanting = None;
                }
            }
            assert!(places.len() <= 5);
        }
        assert!(waits.len() > 50, "{}", waits.len());
        let longest = waits.iter().max().unwrap();
        match networks {
            // One network: at the first try, every time.
            1 => assert!(waits.iter().all(|w| w.is_zero()), "{waits:?}"),
            // More: never longer than it takes a place to be half a
            // deadline old.
            _ => assert!(*longest <= within / 2, "{networks}: {waits:?}"),
        }
    }

    #[test]
    fn a_network_whose_clients_were_let_go_lately_takes_no_place_by_age() {
        // Lately is a minute or so, whatever the deadline.
        for within in [ms(100), Duration::from_secs(10)] {
            let start = Instant::now();
            let mut words = FirstWords::new(Some(within));
            let silent = |_| Heard::Nothing;
            // Network 1's first client is let go for its silence.
            words.took_place(0, from(1, 1), start);
            assert_eq!(words.due(start + within, silent), [0]);
            // Five networks then hold a place each, half a deadline old.
            let later = start + within;
            for who in 1..=5 {
                words.took_place(who, from(1 + who as u8, 1), later);
            }
            let half = later + within / 2;
            // Network 1 waits on no word, but was let go lately: refused.
            assert_eq!(words.make_room(half, from(1, 2), silent), None);
            // A network with nothing against it takes the oldest.
            assert_eq!(
                words.make_room(half, from(9, 1), silent),
                Some((1, Making::Age))
            );
            // Network 2, whose client that was, now has a point too.
            assert_eq!(words.make_room(half, from(2, 2), silent), None);
            // Ten minutes later, network 1's point has faded: it may again.
            let minutes = half + Duration::from_secs(600);
            assert_eq!(
                words.make_room(minutes, from(1, 3), silent),
                Some((2, Making::Age))
            );
        }
    }
}
