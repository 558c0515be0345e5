//! What the main thread of either program reacts to: the user's input, signals,
//! and each conversation's threads reporting how they ended.

use std::io;

/// Everything the main thread of either program reacts to.
#[derive(Debug)]
pub enum Event {
    /// From the user's input.
    Input(Input),
    /// SIGINT.
    Interrupt,
    /// Conversation `id` stopped receiving.
    Received { id: u64, end: ReceiveEnd },
    /// Conversation `id` stopped sending; `Ok` once its sending half is shut down.
    Sent { id: u64, result: io::Result<()> },
    /// Conversation `id` can no longer show messages (stdout closed).
    OutputClosed { id: u64 },
    /// The server's line has a client for an idle server.
    ClientArrived,
    /// Clients joined or left the server's line.
    LineChanged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `q`, or Ctrl-D in the line editor: end the conversation.
    Quit,
    /// Standard input ended: the user has nothing more to say.
    Closed,
    /// Ctrl-C in the line editor.
    Interrupted,
}

#[derive(Debug)]
pub enum ReceiveEnd {
    /// End of stream at a frame boundary.
    Closed,
    Failed(io::Error),
}
