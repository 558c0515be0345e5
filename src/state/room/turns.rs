//! Whose turn it is to be read: the talkers with something to say, in
//! turns of at most [`TURN`] bytes each, round robin.
//!
//! Why: when the room is the bottleneck (it waits for its slowest
//! members), the pace it can relay is shared by the talkers. Read in the
//! order their sockets said they had something, the first talkers of each
//! round would take it all; in turns, each gets its share, and every one
//! of them is read every round.

use std::collections::{BTreeSet, VecDeque};

use super::Who;

/// The most read from one talker in one turn.
pub const TURN: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct Turns {
    /// Talkers waiting for their turn, the next first.
    queue: VecDeque<Who>,
    /// The same, to tell at once whether one waits (a room of thousands).
    waiting: BTreeSet<Who>,
}

impl Turns {
    /// `who` has something to say: it waits for its turn (once, however
    /// often it is said).
    pub fn ready(&mut self, who: Who) {
        if self.waiting.insert(who) {
            self.queue.push_back(who);
        }
    }

    /// The talker whose turn it is, taken out of the queue: if it has more
    /// to say after its turn, it is [`ready`](Self::ready) again, last.
    pub fn next(&mut self) -> Option<Who> {
        let who = self.queue.pop_front()?;
        self.waiting.remove(&who);
        Some(who)
    }

    pub fn forget(&mut self, who: Who) {
        if self.waiting.remove(&who) {
            self.queue.retain(|&w| w != who);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn talkers_with_more_to_say_are_read_in_turns_round_robin() {
        let mut turns = Turns::default();
        turns.ready(1);
        turns.ready(2);
        turns.ready(1);
        turns.ready(3);
        let mut order = Vec::new();
        // Talker 2 has said all after its first turn; 1 and 3 have more.
        while let Some(who) = turns.next() {
            order.push(who);
            if order.len() > 6 {
                break;
            }
            if who != 2 {
                turns.ready(who);
            }
        }
        assert_eq!(order, [1, 2, 3, 1, 3, 1, 3]);
        // 1 waits; 3 says it has more; 1 is gone.
        turns.ready(3);
        turns.forget(1);
        assert_eq!(turns.next(), Some(3));
        assert!(turns.is_empty());
    }
}
