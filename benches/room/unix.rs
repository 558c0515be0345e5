//! The room benchmark itself: the members are threads of this process on
//! raw sockets (version 1 frames for ours, lines for ncat), so that the
//! servers alone are compared; each server's peak memory is read from
//! `/proc` (Linux) before it is stopped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{self, Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const SERVER: &str = env!("CARGO_BIN_EXE_chat-server");
const MEMBERS: usize = 50;
const LINES: usize = 2000;
const DELIVERIES: usize = MEMBERS * (MEMBERS - 1) * LINES;
/// A member that receives nothing for this long has been lost: the run fails.
const STUCK: Duration = Duration::from_secs(60);

pub fn main() {
    if Command::new("ncat")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("ncat not found: install it (Debian: apt-get install ncat)");
        process::exit(2);
    }
    let rounds: usize = std::env::var("CHAT_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut our_peak, mut their_peak) = (0, 0);
    // CPU per delivery, ns: the server's, and the members' (this process).
    let (mut our_cpu, mut their_cpu) = (Vec::new(), Vec::new());
    let (mut our_members, mut their_members) = (Vec::new(), Vec::new());
    let (mut our_broken, mut their_broken) = (0, 0);
    for round in 0..rounds {
        room_ours().add_to(
            &mut ours,
            &mut our_peak,
            &mut our_cpu,
            &mut our_members,
            &mut our_broken,
        );
        room_ncat().add_to(
            &mut theirs,
            &mut their_peak,
            &mut their_cpu,
            &mut their_members,
            &mut their_broken,
        );
        eprintln!(
            "round {}: ours {:.2} s, ncat {:.2} s",
            round + 1,
            ours[round].as_secs_f64(),
            theirs[round].as_secs_f64()
        );
    }
    let mut ratios: Vec<f64> = ours
        .iter()
        .zip(&theirs)
        .map(|(o, t)| t.as_secs_f64() / o.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    ours.sort();
    theirs.sort();
    let rate = |d: Duration| DELIVERIES as f64 / d.as_secs_f64();
    let (ours, theirs) = (ours[ours.len() / 2], theirs[theirs.len() / 2]);
    let met = ratio >= 2.0;
    println!(
        "\nroom: {MEMBERS} members × {LINES} lines, {DELIVERIES} deliveries; median of {rounds} rounds\n"
    );
    println!("| measure | ours | ncat --broker | ratio | target | |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| deliveries per second | {:.0} | {:.0} | {ratio:.2} | ours/ncat ≥ 2 | {} |",
        rate(ours),
        rate(theirs),
        if met { "met" } else { "missed" }
    );
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ours_cpu, theirs_cpu) = (median(&mut our_cpu), median(&mut their_cpu));
    println!(
        "| server CPU per delivery (user+sys) | {ours_cpu:.1} ns | {theirs_cpu:.1} ns | {:.2} | - | |",
        ours_cpu / theirs_cpu
    );
    let their_members = median(&mut their_members);
    println!(
        "| the members' CPU per delivery (this process, same for both sides by design) | {:.1} ns | {their_members:.1} ns | - | - | |",
        median(&mut our_members),
    );
    // What no server can beat here: the members' own CPU spread over every
    // core, as if the server took none. Against ncat's time, the best ratio
    // any server could reach on this machine with this harness.
    let cores = thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let floor = their_members * DELIVERIES as f64 / 1e9 / cores;
    println!(
        "| best ratio a server taking no CPU could reach here (the members' CPU over {cores} cores: {:.0} ms) | - | - | {:.2} | - | |",
        floor * 1e3,
        theirs.as_secs_f64() / floor
    );
    // And the server CPU per delivery that would leave room for 2x: what
    // the cores have in half ncat's time, less what the members take.
    let budget = (cores * theirs.as_secs_f64() / 2.0) * 1e9 / DELIVERIES as f64 - their_members;
    println!(
        "| server CPU per delivery that 2x would allow here, at best (ncat column: what ncat takes) | {budget:.1} ns | {theirs_cpu:.1} ns | - | - | |"
    );
    println!(
        "| server peak RSS | {:.1} MiB | {:.1} MiB | - | - | |",
        our_peak as f64 / 1024.0,
        their_peak as f64 / 1024.0
    );
    println!(
        "| lines delivered cut or mixed with another's, all rounds | {our_broken} | {their_broken} | - | ours = 0 | {} |",
        if our_broken == 0 { "met" } else { "missed" }
    );
    if !met || our_broken > 0 {
        process::exit(1);
    }
}

struct Run {
    elapsed: Duration,
    /// The server's CPU time (user + system) over its whole life.
    server_cpu: Duration,
    /// This process's CPU time while the members sent and received.
    members_cpu: Duration,
    peak_kib: u64,
    /// Lines that arrived cut or mixed with another sender's.
    broken: usize,
}

impl Run {
    /// Adds this run to a side's figures (CPU as ns per delivery).
    fn add_to(
        &self,
        elapsed: &mut Vec<Duration>,
        peak_kib: &mut u64,
        server_cpu: &mut Vec<f64>,
        members_cpu: &mut Vec<f64>,
        broken: &mut usize,
    ) {
        let per_delivery = |d: Duration| d.as_secs_f64() * 1e9 / DELIVERIES as f64;
        elapsed.push(self.elapsed);
        *peak_kib = (*peak_kib).max(self.peak_kib);
        server_cpu.push(per_delivery(self.server_cpu));
        members_cpu.push(per_delivery(self.members_cpu));
        *broken += self.broken;
    }
}

/// Whether `line` is one line as a member sent it: `mN line K`.
fn sent_line(line: &[u8]) -> bool {
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let Some(rest) = line.strip_prefix(b"m") else {
        return false;
    };
    let Some(space) = rest.iter().position(|&b| b == b' ') else {
        return false;
    };
    digits(&rest[..space]) && rest[space..].strip_prefix(b" line ").is_some_and(digits)
}

/// Our room: members join and name themselves, then all send at once.
fn room_ours() -> Run {
    let mut server = Command::new(SERVER)
        .args(["--room", "--bind", "127.0.0.1:0", "--max-clients", "64"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = BufReader::new(server.stderr.take().unwrap());
    let mut line = String::new();
    status.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_string();
    thread::spawn(move || for _ in status.lines().map_while(Result::ok) {});
    let members: Vec<TcpStream> = (0..MEMBERS)
        .map(|i| {
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream.set_read_timeout(Some(STUCK)).unwrap();
            stream
                .write_all(&frame(format!("/nick m{i}").as_bytes()))
                .unwrap();
            let joined = format!("-- you joined as m{i};");
            while !read_frame(&mut stream).starts_with(joined.as_bytes()) {}
            stream
        })
        .collect();
    let relayed = relay(
        members,
        |i| {
            let mut bytes = Vec::new();
            for n in 0..LINES {
                bytes.extend_from_slice(&frame(format!("m{i} line {n}").as_bytes()));
            }
            bytes
        },
        |stream| {
            // Large reads, frames counted where they lie, as ncat's members
            // below count lines: the harness costs the same for both.
            let mut buf = vec![0; 256 * 1024];
            let (mut start, mut end, mut got, mut broken) = (0, 0, 0, 0);
            while got < (MEMBERS - 1) * LINES {
                if start == end {
                    (start, end) = (0, 0);
                } else if buf.len() - end < 64 * 1024 {
                    buf.copy_within(start..end, 0);
                    (start, end) = (0, end - start);
                }
                let n = stream.read(&mut buf[end..]).unwrap();
                assert!(n > 0, "the server closed a member");
                end += n;
                while end - start >= 4 {
                    let len = u32::from_be_bytes(buf[start..start + 4].try_into().unwrap());
                    let total = 4 + len as usize;
                    if end - start < total {
                        break;
                    }
                    // Messages are `NAME: TEXT`; notices (joins) start with `--`.
                    let payload = &buf[start + 4..start + total];
                    if payload.first() == Some(&b'm') {
                        got += 1;
                        let intact = payload
                            .iter()
                            .position(|&b| b == b':')
                            .is_some_and(|colon| {
                                payload[colon + 2..].starts_with(&payload[..colon])
                                    && sent_line(&payload[colon + 2..])
                            });
                        broken += usize::from(!intact);
                    }
                    start += total;
                }
            }
            broken
        },
    );
    finish(server, relayed)
}

/// `ncat --broker`: every line from a client goes to every other client.
fn room_ncat() -> Run {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Command::new("ncat")
        .args([
            "-l",
            "--broker",
            "--max-conns",
            "64",
            "127.0.0.1",
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let members: Vec<TcpStream> = (0..MEMBERS)
        .map(|_| {
            loop {
                match TcpStream::connect(("127.0.0.1", port)) {
                    Ok(stream) => {
                        stream.set_read_timeout(Some(STUCK)).unwrap();
                        break stream;
                    }
                    Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                    Err(e) => panic!("ncat does not listen: {e}"),
                }
            }
        })
        .collect();
    // ncat has no greeting to wait for: give it time to take in everyone.
    thread::sleep(Duration::from_millis(500));
    let relayed = relay(
        members,
        |i| {
            (0..LINES)
                .map(|n| format!("m{i} line {n}\n"))
                .collect::<String>()
                .into_bytes()
        },
        |stream| {
            let (mut got, mut broken) = (0, 0);
            let mut buf = vec![0; 256 * 1024];
            let mut partial = Vec::new();
            while got < (MEMBERS - 1) * LINES {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0, "ncat closed a member");
                for piece in buf[..n].split_inclusive(|&b| b == b'\n') {
                    let Some(line) = piece.strip_suffix(b"\n") else {
                        partial.extend_from_slice(piece);
                        continue;
                    };
                    got += 1;
                    let intact = match partial.is_empty() {
                        true => sent_line(line),
                        false => {
                            partial.extend_from_slice(line);
                            let intact = sent_line(&partial);
                            partial.clear();
                            intact
                        }
                    };
                    broken += usize::from(!intact);
                }
            }
            broken
        },
    );
    finish(server, relayed)
}

/// Every member sends what `lines` gives it, all at once, and receives with
/// `receive`; returns when the last member has received everything.
fn relay(
    members: Vec<TcpStream>,
    lines: impl Fn(usize) -> Vec<u8>,
    receive: impl Fn(&mut TcpStream) -> usize + Send + Sync + 'static,
) -> Relayed {
    let start = Arc::new(Barrier::new(2 * MEMBERS + 1));
    let receive = Arc::new(receive);
    let mut threads = Vec::new();
    for (i, stream) in members.into_iter().enumerate() {
        let bytes = lines(i);
        let mut writing = stream.try_clone().unwrap();
        let start_writing = Arc::clone(&start);
        threads.push(thread::spawn(move || {
            start_writing.wait();
            writing.write_all(&bytes).unwrap();
            0
        }));
        let (start, receive) = (Arc::clone(&start), Arc::clone(&receive));
        let mut reading = stream;
        threads.push(thread::spawn(move || {
            start.wait();
            receive(&mut reading)
        }));
    }
    start.wait();
    let (began, cpu_before) = (Instant::now(), cpu_time("self"));
    let broken = threads
        .into_iter()
        .map(|thread| thread.join().expect("a member failed"))
        .sum();
    Relayed {
        elapsed: began.elapsed(),
        members_cpu: cpu_time("self").saturating_sub(cpu_before),
        broken,
    }
}

struct Relayed {
    elapsed: Duration,
    members_cpu: Duration,
    broken: usize,
}

/// User + system CPU time of a process (`self` or a pid), from `/proc`.
fn cpu_time(pid: &str) -> Duration {
    crate::scale::cpu_time_of(pid)
}

/// Reads the server's peak memory and CPU time, then stops it.
fn finish(mut server: Child, relayed: Relayed) -> Run {
    let server_cpu = cpu_time(&server.id().to_string());
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap_or_default();
    let peak_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let _ = server.kill();
    let _ = server.wait();
    Run {
        elapsed: relayed.elapsed,
        server_cpu,
        members_cpu: relayed.members_cpu,
        peak_kib,
        broken: relayed.broken,
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

fn read_frame(stream: &mut impl Read) -> Vec<u8> {
    let mut header = [0; 4];
    stream.read_exact(&mut header).expect("a frame header");
    let mut payload = vec![0; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut payload).expect("a payload");
    payload
}
