//! The wire: what goes between the programs, and what of it is shown.
//!
//! [`frame`] is the protocol's one form (a 4-byte big-endian length before
//! each payload); [`room`] the room's forms inside frames; [`farewell`] the
//! refusal's; [`session`] version 2's offer and control frames; [`display`] makes a peer's text safe to show; [`scan`] finds
//! line ends and unprintable bytes a whole buffer at a time. Nothing here
//! does I/O or keeps time.

pub(crate) mod display;
pub(crate) mod farewell;
pub mod frame;
pub(crate) mod line;
pub(crate) mod names;
pub(crate) mod room;
pub(crate) mod scan;
pub(crate) mod session;
