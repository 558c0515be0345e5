//! Room benchmark: `chat-server --room` beside `ncat --broker` in one run,
//! 50 members each sending 2,000 lines, every member receiving all the
//! others' lines.
//!
//! `cargo bench --bench room` (set `CHAT_BENCH_ROUNDS` for more or fewer
//! rounds, 3 by default). It prints deliveries per second (one line reaching
//! one member is one delivery) and each server's peak memory, and exits 1
//! if ours delivers less than twice as fast as ncat.

#[cfg(unix)]
#[path = "room/unix.rs"]
mod unix;

fn main() {
    #[cfg(unix)]
    unix::main();
    #[cfg(not(unix))]
    eprintln!("the room benchmark compares with ncat --broker and runs on Unix only");
}
