//! The benchmark itself: it measures against OpenBSD `nc` and reads each
//! process's CPU time and peak memory with `wait4`, so it runs on Unix.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{self, Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const SERVER: &str = env!("CARGO_BIN_EXE_chat-server");
const CLIENT: &str = env!("CARGO_BIN_EXE_chat-client");
const MIB: usize = 1 << 20;
const BULK: usize = 128 * MIB;
const ROUND_TRIPS: usize = 1000;
const LATENCY_BLOCKS: usize = 4;

pub fn main() {
    if Command::new("nc")
        .arg("-h")
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("nc not found: install OpenBSD netcat (Debian: apt-get install netcat-openbsd)");
        process::exit(2);
    }
    let rounds: usize = std::env::var("CHAT_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(9);
    // `CHAT_BENCH_ONLY=resume`: the resume row alone (a minute, not half
    // an hour).
    let only_resume = std::env::var("CHAT_BENCH_ONLY").is_ok_and(|only| only == "resume");
    let dir = std::env::temp_dir().join(format!("chat-bench-{}", process::id()));
    fs::create_dir_all(&dir).unwrap();
    let tls = Wire::Tls(dir.clone());
    let mut table = Table::default();

    let sizes = match only_resume {
        true => Vec::new(),
        false => vec![
            ("64 B lines", 64, 1.0, 1.0),
            ("1 KiB lines", 1024, 1.3, 0.8),
        ],
    };
    for (name, line_len, rate_target, cpu_target) in sizes {
        let file = write_lines(&dir, line_len, BULK);
        let lines = (BULK / line_len) as f64;
        let (mut ours, mut theirs, mut over_tls) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let run = bulk_ours(&file, &Wire::Plain);
            table.peak_bulk = table.peak_bulk.max(run.peak_kib);
            ours.push(run);
            theirs.push(bulk_nc(&file));
            if line_len == 1024 {
                over_tls.push(bulk_ours(&file, &tls));
            }
        }
        fs::remove_file(&file).unwrap();
        let rate = |d: Duration| BULK as f64 / d.as_secs_f64() / 1e6;
        let per_line = |d: Duration| d.as_secs_f64() * 1e9 / lines;
        // The machine's speed drifts over seconds, so each round's runs are
        // compared with each other, and the ratio is the median of those.
        let ratio = median_ratio(&ours, &theirs, |o, t| {
            t.elapsed.as_secs_f64() / o.elapsed.as_secs_f64()
        });
        let cpu_ratio = median_ratio(&ours, &theirs, |o, t| {
            o.cpu.as_secs_f64() / t.cpu.as_secs_f64()
        });
        let median_of = |runs: &[BulkRun], of: fn(&BulkRun) -> Duration| {
            median(&mut runs.iter().map(of).collect::<Vec<_>>())
        };
        let (elapsed_ours, elapsed_nc) = (
            median_of(&ours, |r| r.elapsed),
            median_of(&theirs, |r| r.elapsed),
        );
        table.row(
            &format!("bulk, 128 MiB of {name}"),
            format!("{:.0} MB/s", rate(elapsed_ours)),
            format!("{:.0} MB/s", rate(elapsed_nc)),
            ratio,
            &format!("ours/nc ≥ {rate_target:.1}"),
            ratio >= rate_target,
        );
        let (cpu_ours, cpu_nc) = (median_of(&ours, |r| r.cpu), median_of(&theirs, |r| r.cpu));
        table.row(
            &format!("CPU per line (user+sys, both), {name}"),
            format!("{:.1} ns", per_line(cpu_ours)),
            format!("{:.1} ns", per_line(cpu_nc)),
            cpu_ratio,
            &format!("ours/nc ≤ {cpu_target:.1}"),
            cpu_ratio <= cpu_target,
        );
        if !over_tls.is_empty() {
            // TLS against our own plain runs of the same rounds.
            let ratio = median_ratio(&over_tls, &ours, |tls, plain| {
                plain.elapsed.as_secs_f64() / tls.elapsed.as_secs_f64()
            });
            table.row(
                &format!("bulk over TLS, 128 MiB of {name} (nc column: ours, plain)"),
                format!("{:.0} MB/s", rate(median_of(&over_tls, |r| r.elapsed))),
                format!("{:.0} MB/s", rate(elapsed_ours)),
                ratio,
                "TLS/plain ≥ 0.5",
                ratio >= 0.5,
            );
        }
    }

    if only_resume {
        resume_row(&mut table);
        fs::remove_dir_all(&dir).ok();
        let all_met = table.print(rounds);
        process::exit(if all_met { 0 } else { 1 });
    }

    // The largest message: lines of exactly 1 MiB.
    let file = write_lines(&dir, MIB + 1, 64 * MIB);
    for _ in 0..2 {
        let run = bulk_ours(&file, &Wire::Plain);
        table.peak_large = table.peak_large.max(run.peak_kib);
    }
    fs::remove_file(&file).unwrap();

    let (ours, theirs, over_tls) = latency(&tls);
    let (ours_median, theirs_median) = (percentile(&ours, 0.5), percentile(&theirs, 0.5));
    let ratio = ours_median.as_secs_f64() / theirs_median.as_secs_f64();
    table.row(
        "latency, round trip, median",
        micros(ours_median),
        micros(theirs_median),
        ratio,
        "ours/nc ≤ 1.0",
        ratio <= 1.0,
    );
    let (ours_p99, theirs_p99) = (percentile(&ours, 0.99), percentile(&theirs, 0.99));
    table.row(
        "latency, round trip, p99",
        micros(ours_p99),
        micros(theirs_p99),
        ours_p99.as_secs_f64() / theirs_p99.as_secs_f64(),
        "ours < 1 ms",
        ours_p99 < Duration::from_millis(1),
    );
    let tls_median = percentile(&over_tls, 0.5);
    let ratio = tls_median.as_secs_f64() / ours_median.as_secs_f64();
    table.row(
        "latency over TLS, median (nc column: ours, plain)",
        micros(tls_median),
        micros(ours_median),
        ratio,
        "TLS/plain ≤ 1.5",
        ratio <= 1.5,
    );
    let tls_p99 = percentile(&over_tls, 0.99);
    table.row(
        "latency over TLS, p99 (nc column: ours, plain)",
        micros(tls_p99),
        micros(ours_p99),
        tls_p99.as_secs_f64() / ours_p99.as_secs_f64(),
        "TLS < 2 ms",
        tls_p99 < Duration::from_millis(2),
    );
    resume_row(&mut table);
    let peak_bulk = table.peak_bulk as f64 / 1024.0;
    table.row(
        "peak RSS per process, bulk",
        format!("{peak_bulk:.1} MiB"),
        "-".into(),
        f64::NAN,
        "≤ 8 MiB",
        peak_bulk <= 8.0,
    );
    let peak_large = table.peak_large as f64 / 1024.0;
    table.row(
        "peak RSS per process, 1 MiB messages",
        format!("{peak_large:.1} MiB"),
        "-".into(),
        f64::NAN,
        "≤ 16 MiB",
        peak_large <= 16.0,
    );
    fs::remove_dir_all(&dir).ok();
    let all_met = table.print(rounds);
    process::exit(if all_met { 0 } else { 1 });
}

#[derive(Default)]
struct Table {
    rows: Vec<String>,
    missed: usize,
    peak_bulk: u64,
    peak_large: u64,
}

impl Table {
    fn row(&mut self, what: &str, ours: String, nc: String, ratio: f64, target: &str, met: bool) {
        let ratio = if ratio.is_nan() {
            "-".to_string()
        } else {
            format!("{ratio:.2}")
        };
        let verdict = if met { "met" } else { "MISSED" };
        self.missed += usize::from(!met);
        self.rows.push(format!(
            "| {what} | {ours} | {nc} | {ratio} | {target} | {verdict} |"
        ));
    }

    fn print(&self, rounds: usize) -> bool {
        let date = Command::new("date").args(["-u", "+%Y-%m-%d"]).output().ok();
        let date = date
            .map(|d| String::from_utf8_lossy(&d.stdout).trim().to_string())
            .unwrap_or_default();
        let cpu = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        println!();
        println!(
            "chat e2e benchmark, {date}, {cpu}, {cores} cores; bulk: {rounds} rounds of ours then nc, rates are medians, the ratio is the median of the rounds' ratios; latency: {ROUND_TRIPS} round trips each, in {LATENCY_BLOCKS} alternating blocks"
        );
        println!();
        println!("| measure | ours | nc | ratio | target | |");
        println!("|---|---|---|---|---|---|");
        for row in &self.rows {
            println!("{row}");
        }
        self.missed == 0
    }
}

/// Writes `total` bytes of lines, each `line_len` bytes with its `\n`.
fn write_lines(dir: &Path, line_len: usize, total: usize) -> PathBuf {
    let path = dir.join(format!("lines-{line_len}"));
    let mut out = BufWriter::with_capacity(MIB, File::create(&path).unwrap());
    let mut line = vec![b'x'; line_len];
    *line.last_mut().unwrap() = b'\n';
    for _ in 0..total / line_len {
        out.write_all(&line).unwrap();
    }
    out.flush().unwrap();
    path
}

/// One bulk transfer: its wall-clock time, the CPU time (user + system) of
/// both processes together, and the larger of their peak RSS.
struct BulkRun {
    elapsed: Duration,
    cpu: Duration,
    peak_kib: u64,
}

/// How our two programs connect: plain TCP, or TLS with the server's
/// identity and the client's known hosts kept in a directory.
enum Wire {
    Plain,
    Tls(PathBuf),
}

impl Wire {
    fn server_args(&self) -> Vec<String> {
        match self {
            Wire::Plain => Vec::new(),
            Wire::Tls(dir) => vec![
                "--tls".into(),
                "--identity".into(),
                dir.join("identity.pem").to_string_lossy().into_owned(),
            ],
        }
    }

    fn client_args(&self) -> Vec<String> {
        match self {
            Wire::Plain => Vec::new(),
            Wire::Tls(dir) => vec![
                "--tls".into(),
                "--known-hosts".into(),
                dir.join("known_hosts").to_string_lossy().into_owned(),
            ],
        }
    }
}

fn bulk_ours(file: &Path, wire: &Wire) -> BulkRun {
    let mut server_args = vec!["--once".to_string()];
    server_args.extend(wire.server_args());
    let server_args: Vec<&str> = server_args.iter().map(String::as_str).collect();
    let (server, addr) = start_server(&server_args, Stdio::null(), Stdio::null());
    let start = Instant::now();
    let client = Command::new(CLIENT)
        .args(["--connect", &addr])
        .args(wire.client_args())
        .stdin(File::open(file).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = wait_usage(client);
    let server = wait_usage(server);
    BulkRun {
        elapsed: start.elapsed(),
        cpu: client.cpu + server.cpu,
        peak_kib: client.peak_kib.max(server.peak_kib),
    }
}

fn bulk_nc(file: &Path) -> BulkRun {
    let (listener, port) = start_nc_listener(Stdio::null(), Stdio::null());
    let start = Instant::now();
    let client = Command::new("nc")
        .args(["-N", "127.0.0.1", &port.to_string()])
        .stdin(File::open(file).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = wait_usage(client);
    let listener = wait_usage(listener);
    BulkRun {
        elapsed: start.elapsed(),
        cpu: client.cpu + listener.cpu,
        peak_kib: client.peak_kib.max(listener.peak_kib),
    }
}

/// The median over rounds of `ratio(ours, nc)`, each round's runs compared
/// with each other.
fn median_ratio(ours: &[BulkRun], nc: &[BulkRun], ratio: fn(&BulkRun, &BulkRun) -> f64) -> f64 {
    let mut ratios: Vec<f64> = ours.iter().zip(nc).map(|(o, t)| ratio(o, t)).collect();
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

/// Starts chat-server on a free port; returns it and its address.
fn start_server(args: &[&str], stdin: Stdio, stdout: Stdio) -> (Child, String) {
    let mut server = Command::new(SERVER)
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(server.stderr.take().unwrap());
    // A TLS server says which identity it has first.
    let addr = loop {
        let mut line = String::new();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "no listening line");
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            break addr.to_string();
        }
    };
    // Keep stderr drained; the latency run waits for "connected" on it.
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    STATUS.with(|s| *s.borrow_mut() = Some(rx));
    (server, addr)
}

thread_local! {
    /// The last started server's stderr lines.
    static STATUS: std::cell::RefCell<Option<std::sync::mpsc::Receiver<String>>> = const { std::cell::RefCell::new(None) };
}

fn wait_for_status(part: &str) {
    STATUS.with(|s| {
        let s = s.borrow();
        let rx = s.as_ref().unwrap();
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("server status");
            if line.contains(part) {
                return;
            }
        }
    });
}

/// Starts `nc -l` on a free loopback port and waits until it listens.
fn start_nc_listener(stdin: Stdio, stdout: Stdio) -> (Child, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("nc")
        .args(["-l", "127.0.0.1", &port.to_string()])
        .stdin(stdin)
        .stdout(stdout)
        .spawn()
        .unwrap();
    let needle = format!("0100007F:{port:04X} 00000000:0000 0A");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .contains(&needle)
    {
        assert!(Instant::now() < deadline, "nc -l did not start listening");
        thread::sleep(Duration::from_millis(1));
    }
    (child, port)
}

/// What a finished child used, from `wait4`.
struct Usage {
    /// User plus system CPU time.
    cpu: Duration,
    /// Peak resident memory.
    peak_kib: u64,
}

/// Waits for a child, which must succeed, and returns what it used.
fn wait_usage(child: Child) -> Usage {
    let mut status = 0;
    // SAFETY: wait4 fills `status` and `usage` for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "a process failed: {status}"
    );
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Usage {
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        peak_kib: usage.ru_maxrss as u64,
    }
}

/// Two programs wired for line round trips.
struct Pair {
    children: Vec<Child>,
    client_in: ChildStdin,
    client_out: BufReader<ChildStdout>,
    server_in: ChildStdin,
    server_out: BufReader<ChildStdout>,
}

impl Pair {
    fn ours(wire: &Wire) -> Self {
        let server_args = wire.server_args();
        let server_args: Vec<&str> = server_args.iter().map(String::as_str).collect();
        let (server, addr) = start_server(&server_args, Stdio::piped(), Stdio::piped());
        let client = Command::new(CLIENT)
            .args(["--connect", &addr])
            .args(wire.client_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_status("connected");
        Self::wire(server, client)
    }

    fn nc() -> Self {
        let (server, port) = start_nc_listener(Stdio::piped(), Stdio::piped());
        let client = Command::new("nc")
            .args(["127.0.0.1", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        Self::wire(server, client)
    }

    fn wire(mut server: Child, mut client: Child) -> Self {
        Self {
            client_in: client.stdin.take().unwrap(),
            client_out: BufReader::new(client.stdout.take().unwrap()),
            server_in: server.stdin.take().unwrap(),
            server_out: BufReader::new(server.stdout.take().unwrap()),
            children: vec![server, client],
        }
    }

    fn round_trips(&mut self, count: usize, times: &mut Vec<Duration>) {
        let mut line = String::new();
        for i in 0..count {
            let start = Instant::now();
            writeln!(self.client_in, "ping {i}").unwrap();
            line.clear();
            self.server_out.read_line(&mut line).unwrap();
            assert_eq!(line.trim_end(), format!("ping {i}"));
            writeln!(self.server_in, "pong {i}").unwrap();
            line.clear();
            self.client_out.read_line(&mut line).unwrap();
            assert_eq!(line.trim_end(), format!("pong {i}"));
            times.push(start.elapsed());
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Round trips over our plain pair, nc's, and our TLS pair, in alternating
/// blocks; each sorted.
fn latency(tls: &Wire) -> (Vec<Duration>, Vec<Duration>, Vec<Duration>) {
    let mut pairs = [Pair::ours(&Wire::Plain), Pair::nc(), Pair::ours(tls)];
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    // Warm up each, uncounted.
    for pair in &mut pairs {
        pair.round_trips(50, &mut Vec::new());
    }
    for _ in 0..LATENCY_BLOCKS {
        for (pair, times) in pairs.iter_mut().zip(&mut times) {
            pair.round_trips(ROUND_TRIPS / LATENCY_BLOCKS, times);
        }
    }
    let [mut ours, mut nc, mut over_tls] = times;
    ours.sort();
    nc.sort();
    over_tls.sort();
    (ours, nc, over_tls)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The `q` quantile of sorted times.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// The resume row: see [`resume_times`].
fn resume_row(table: &mut Table) {
    let resumes = resume_times(&[
        Duration::from_secs(5),
        Duration::from_secs(8),
        Duration::from_secs(12),
    ]);
    let worst = resumes
        .iter()
        .map(|(took, step)| took.saturating_sub(*step))
        .max()
        .unwrap_or_default();
    let took: Vec<String> = resumes
        .iter()
        .map(|(took, step)| {
            format!(
                "{:.1} s (step {:.1} s)",
                took.as_secs_f64(),
                step.as_secs_f64()
            )
        })
        .collect();
    table.row(
        "resume: the network back to the line typed in the outage arriving, outages of 5, 8, 12 s",
        took.join(", "),
        "-".into(),
        f64::NAN,
        "≤ 2 s + the backoff step",
        worst <= Duration::from_secs(2),
    );
}

/// How long after the network comes back a line typed during an outage
/// reaches the server: the client (`--dead-after 3`) notices the silent
/// path, reconnects with its backoff while the network is down (each try
/// reset), and resumes once a try gets through. One run per outage.
fn resume_times(outages: &[Duration]) -> Vec<(Duration, Duration)> {
    let mut times = Vec::new();
    for &outage in outages {
        let (mut server, addr) = start_server(
            &["--once", "--dead-after", "3"],
            Stdio::piped(),
            Stdio::piped(),
        );
        let mut server_out = BufReader::new(server.stdout.take().unwrap());
        let relay = relay::Relay::start(addr.parse().unwrap());
        let said_path = std::env::temp_dir().join(format!("chat-bench-resume-{}", process::id()));
        let mut client = Command::new(CLIENT)
            .args(["--connect", &relay.address, "--dead-after", "3"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(File::create(&said_path).unwrap())
            .spawn()
            .unwrap();
        let mut client_in = client.stdin.take().unwrap();
        let mut line = String::new();
        writeln!(client_in, "before").unwrap();
        server_out.read_line(&mut line).unwrap();
        assert_eq!(line.trim_end(), "before");
        relay.down();
        writeln!(client_in, "during the outage").unwrap();
        thread::sleep(outage);
        let back = Instant::now();
        relay.up();
        line.clear();
        server_out.read_line(&mut line).unwrap();
        if line.trim_end() != "during the outage" {
            let said: Vec<String> = STATUS.with(|s| {
                let s = s.borrow();
                s.as_ref().unwrap().try_iter().collect()
            });
            let client_said = fs::read_to_string(&said_path).unwrap_or_default();
            panic!(
                "the server said {line:?}; its status lines: {said:?}; the client's: {client_said:?}"
            );
        }
        // The delay before the try that got through, at most: the step the
        // backoff was at when the network came back.
        let step = (0..)
            .map(chat_backoff)
            .scan(Duration::from_secs(3), |at, delay| {
                *at += delay;
                Some((*at, delay))
            })
            .find(|(at, _)| *at >= outage)
            .map_or(Duration::ZERO, |(_, delay)| delay);
        times.push((back.elapsed(), step));
        drop(client_in);
        let _ = client.kill();
        let _ = client.wait();
        let _ = server.kill();
        let _ = server.wait();
    }
    times
}

/// The client's reconnect backoff, as the README gives it: 0.5 s, 1, 2, 4,
/// then every 5 s.
fn chat_backoff(attempt: u32) -> Duration {
    match attempt {
        0 => Duration::from_millis(500),
        1 => Duration::from_secs(1),
        2 => Duration::from_secs(2),
        3 => Duration::from_secs(4),
        _ => Duration::from_secs(5),
    }
}

/// A relay on loopback whose network can go down: the connections it
/// carries stop for good, silently, and new ones are reset until it is up.
mod relay {
    use std::io::{Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::Duration;

    pub struct Relay {
        pub address: String,
        down: Arc<AtomicBool>,
        dead: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
    }

    impl Relay {
        pub fn start(server: SocketAddr) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let address = listener.local_addr().unwrap().to_string();
            let down = Arc::new(AtomicBool::new(false));
            let dead: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
            let (is_down, pairs) = (Arc::clone(&down), Arc::clone(&dead));
            thread::spawn(move || {
                for client in listener.incoming().map_while(Result::ok) {
                    if is_down.load(Ordering::SeqCst) {
                        let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
                        continue;
                    }
                    let Ok(upstream) = TcpStream::connect(server) else {
                        continue;
                    };
                    let gone = Arc::new(AtomicBool::new(false));
                    pairs.lock().unwrap().push(Arc::clone(&gone));
                    let (a, b) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                    let back = Arc::clone(&gone);
                    thread::spawn(move || forward(b, a, &back));
                    thread::spawn(move || forward(client, upstream, &gone));
                }
            });
            Self {
                address,
                down,
                dead,
            }
        }

        pub fn down(&self) {
            self.down.store(true, Ordering::SeqCst);
            for gone in self.dead.lock().unwrap().iter() {
                gone.store(true, Ordering::SeqCst);
            }
        }

        pub fn up(&self) {
            self.down.store(false, Ordering::SeqCst);
        }
    }

    /// Copies until either side ends; on a dead path, reads on and passes
    /// nothing (what a path that died beyond a router does).
    fn forward(mut from: TcpStream, mut to: TcpStream, gone: &AtomicBool) {
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            if !gone.load(Ordering::SeqCst) && to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        if !gone.load(Ordering::SeqCst) {
            let _ = to.shutdown(Shutdown::Write);
        }
    }
}
