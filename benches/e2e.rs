//! End-to-end benchmark: the release binaries against OpenBSD `nc` on loopback,
//! measured side by side in one run, alternating ours and nc.
//!
//! `cargo bench --bench e2e` (set `CHAT_BENCH_ROUNDS` for more or fewer bulk
//! rounds, 9 by default; `CHAT_BENCH_ONLY=resume` for the resume row alone).
//! It prints a table of ratios and exits 1 if a target is missed.
//!
//! - Bulk: 128 MiB of 64-byte lines, and of 1 KiB lines, piped into
//!   `chat-client`, received by `chat-server --once` with stdout to /dev/null;
//!   against `nc -N` into `nc -l` moving the same file. Throughput, and CPU
//!   per line: user + system time of both processes (from `wait4`), the
//!   figure that carries from machine to machine.
//! - Latency: one line into the client, waited for on the server's stdout, then
//!   one line back: 1,000 round trips, against the same harness over an nc pair.
//! - Memory: each process's peak RSS during the bulk runs, and during a run of
//!   1 MiB messages.
//! - TLS: the 1 KiB bulk runs and the round trips again over `--tls`, in the
//!   same rounds and blocks, against our own plain figures.
//! - Resume: a line typed while the network is down (a relay whose path
//!   dies silently and which resets new connections meanwhile) reaches the
//!   server how long after the network is back, against the client's
//!   backoff step at that moment.

#[cfg(unix)]
#[path = "e2e/unix.rs"]
mod unix;

fn main() {
    #[cfg(unix)]
    unix::main();
    #[cfg(not(unix))]
    eprintln!("the e2e benchmark compares with OpenBSD nc and runs on Unix only");
}
