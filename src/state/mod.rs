//! State machines with no I/O and no clock of their own: each is fed the
//! time and what happened, and says what to do.
//!
//! [`ending`] decides how a connection ends; [`session`] keeps a version 2
//! session's acknowledgements and heartbeats; [`room`] who is in a room and
//! what goes to whom (with each member's pace); [`throttle`] how often a
//! repeated event is reported; [`access`] who may connect; [`first_words`]
//! how long a client may hold a place without sending anything,
//! [`prefix`] the network an address counts in and [`points`] what
//! networks did lately. [`clock`] is
//! where the programs take the time from: the system's, or a test's.

pub mod access;
pub mod clock;
pub(crate) mod ending;
pub(crate) mod first_words;
pub(crate) mod points;
pub(crate) mod prefix;
pub(crate) mod room;
pub(crate) mod session;
pub(crate) mod throttle;
