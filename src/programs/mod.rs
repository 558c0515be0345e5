//! The programs, which wire the layers below together: [`server`] (one
//! conversation at a time, or with [`room`] everyone in one room) and
//! [`client`]; [`outcome`] is what a run comes to and its exit status.

pub mod client;
pub mod outcome;
pub mod room;
pub mod server;
