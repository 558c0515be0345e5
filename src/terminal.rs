//! The user's side of a program: the screen it shows things on and the thread
//! that reads what the user types.
//!
//! [`Console::open`] picks the form: plain lines when standard input or output
//! is a pipe or file.

use std::io;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::thread;

use crate::conversation::Event;
use crate::input::{AfterQuit, Composer, Recipient, read_plain};
use crate::screen::{PlainScreen, Screen};

pub struct Console {
    pub screen: Arc<dyn Screen>,
    /// Where the user's lines go; the program points it at the current
    /// conversation.
    pub recipient: Arc<Recipient>,
    max_message_size: usize,
}

impl Console {
    /// Sets up the screen and forwards Ctrl-C (SIGINT) to `events`.
    pub fn open(max_message_size: usize, events: &Sender<Event>) -> io::Result<Self> {
        let screen: Arc<dyn Screen> = Arc::new(PlainScreen);
        forward_interrupts(events.clone())?;
        Ok(Self {
            screen,
            recipient: Arc::new(Recipient::default()),
            max_message_size,
        })
    }

    /// Starts reading the user's input on its own thread; point
    /// [`recipient`](Self::recipient) where the first lines should go first.
    pub fn start_input(&self, events: &Sender<Event>, after_quit: AfterQuit) -> io::Result<()> {
        let composer = Composer::new(
            self.max_message_size,
            Arc::clone(&self.recipient),
            Arc::clone(&self.screen),
        );
        let events = events.clone();
        thread::Builder::new()
            .name("input".into())
            .spawn(move || read_plain(io::stdin(), composer, events, after_quit))?;
        Ok(())
    }
}

fn forward_interrupts(events: Sender<Event>) -> io::Result<()> {
    ctrlc::set_handler(move || {
        let _ = events.send(Event::Interrupt);
    })
    .map_err(io::Error::other)
}
