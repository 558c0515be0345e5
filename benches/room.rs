//! Room benchmark: `chat-server --room` beside `ncat --broker` in one run,
//! 50 members each sending 2,000 lines, every member receiving all the
//! others' lines.
//!
//! `cargo bench --bench room` (set `CHAT_BENCH_ROUNDS` for more or fewer
//! rounds, 3 by default). It prints deliveries per second (one line reaching
//! one member is one delivery) and each server's peak memory, and exits 1
//! if ours delivers less than twice as fast as ncat.
//!
//! `CHAT_BENCH_SCALE=1000,5000,10000 cargo bench --bench room` runs the
//! scale run instead (`room/scale.rs`): that many members in one room, ours
//! beside ngircd, one member talking and everyone else receiving.

#[cfg(unix)]
#[path = "room/unix.rs"]
mod unix;

#[cfg(unix)]
#[path = "room/scale.rs"]
mod scale;

#[cfg(unix)]
#[path = "room/members.rs"]
mod members;

#[cfg(unix)]
#[path = "room/svg.rs"]
mod svg;

fn main() {
    #[cfg(unix)]
    match std::env::var("CHAT_BENCH_SCALE") {
        Ok(counts) => scale::main(&counts),
        Err(_) => unix::main(),
    }
    #[cfg(not(unix))]
    eprintln!("the room benchmark compares with ncat --broker and runs on Unix only");
}
