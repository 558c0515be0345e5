//! The room benchmark's scale run: thousands of members in one room, ours
//! (`chat-server --room`) beside ngircd (Debian's IRC server: one thread,
//! one poll loop), one server at a time.
//!
//! `CHAT_BENCH_SCALE=1000,5000,10000 cargo bench --bench room` runs it for
//! those member counts (and not the ncat run). For each server and count:
//! the members join one room, at most `CHAT_BENCH_SCALE_JOINING` (200) of
//! them between connecting and being admitted, and at most
//! `CHAT_BENCH_SCALE_CONNECTING` (8) between connecting and hearing from
//! the server, so that no accept queue overflows (ngircd listens with a
//! backlog of 10; a SYN dropped by a full queue is sent again a second
//! later, then 3, 7 s..., which would time the kernel, not the server); then one member says ten lines a second for
//! `CHAT_BENCH_SCALE_SECS` (30) seconds and every other member notes when
//! each line reaches it. It prints one table, ours beside ngircd, and writes
//! three charts as SVG (`CHAT_BENCH_SCALE_SVG`, by default
//! `bench-room-scale.svg` in the target directory; with
//! `CHAT_BENCH_SVG_DOCS=1` a copy to `docs/room-scale.svg`).
//!
//! The members (`members.rs`) are sockets of this process served by a few
//! threads (`CHAT_BENCH_SCALE_THREADS`, 2), each an event loop over its
//! share. Unmet targets are reported, not failed: the run must serve the
//! thread-per-member server of today and the event-loop one to come.
//!
//! ngircd tells every join to everyone, so admitting 10,000 members takes
//! it well over a quarter of an hour: with `CHAT_BENCH_SCALE_NGIRCD_MAX`
//! set (e.g. 5000), ngircd is not run above that many members, and the
//! table says so (`CHAT_BENCH_SCALE=1000,5000,10000
//! CHAT_BENCH_SCALE_NGIRCD_MAX=5000`: ours alone at 10,000).

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{self, Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use crate::members::{
    COUNTING, LINES_PER_SECOND, Members, Protocol, STOPPED, SYNCING, Shared, TALKING,
};
use crate::svg;

const SERVER: &str = env!("CARGO_BIN_EXE_chat-server");
/// Descriptors a process needs besides one per member (listener, logs,
/// pipes, the poll instances).
const SPARE_FDS: u64 = 64;
/// How long the run waits for every member to receive the last line.
const GRACE: Duration = Duration::from_secs(5);
/// A phase with no progress for this long has stalled: the run moves on.
const STALL: Duration = Duration::from_secs(30);
/// Threads above the idle count that still count as "independent of N"
/// (an event loop per core, a timer, a logger).
const THREADS_SLACK: usize = 16;

pub fn main(counts: &str) {
    let Some(ngircd) = find_ngircd() else {
        eprintln!(
            "ngircd not found: install it (Debian: apt-get update && apt-get install -y ngircd)"
        );
        process::exit(2);
    };
    let counts: Vec<usize> = counts
        .split(',')
        .map(|c| c.trim().replace('_', "").parse().ok().filter(|&n| n >= 2))
        .collect::<Option<_>>()
        .unwrap_or_else(|| {
            eprintln!("CHAT_BENCH_SCALE: member counts of 2 or more, e.g. 1000,5000,10000");
            process::exit(2);
        });
    let settings = Settings::from_env();
    let fds = raise_fd_limit();
    let dir = settings.target.join("bench-room-scale");
    fs::create_dir_all(&dir).expect("a directory for the servers' logs");
    eprintln!(
        "scale run: {counts:?} members, talking {} s; {} member threads, {} joining and {} \
         connecting at once; descriptors: {fds}; logs in {}",
        settings.secs,
        settings.threads,
        settings.joining,
        settings.connecting,
        dir.display()
    );
    let mut rows = Vec::new();
    for &n in &counts {
        // Both this process (one socket per member) and the server (which
        // inherits the limit) need one descriptor per member.
        if n as u64 + SPARE_FDS > fds {
            eprintln!(
                "{n} members skipped: needs about {} descriptors, the limit is {fds}",
                n as u64 + SPARE_FDS
            );
            continue;
        }
        let ours = run(&Side::Ours, n, &settings, &dir);
        let theirs = match settings.ngircd_max {
            Some(max) if n > max => {
                eprintln!("ngircd with {n} members: not run (CHAT_BENCH_SCALE_NGIRCD_MAX={max})");
                Outcome {
                    skipped: Some(max),
                    ..Outcome::default()
                }
            }
            _ => run(&Side::Ngircd(ngircd.clone()), n, &settings, &dir),
        };
        rows.push(Row { n, ours, theirs });
    }
    if rows.is_empty() {
        eprintln!("no member count could be run");
        process::exit(2);
    }
    report(&rows, &settings);
    let charts = svg::render(&charts(&rows));
    write_file(&settings.svg, &charts);
    if settings.docs {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/room-scale.svg");
        write_file(&docs, &charts);
    }
}

struct Settings {
    secs: u64,
    threads: usize,
    joining: usize,
    connecting: usize,
    /// How long joining may take [default: grows with N²].
    join_limit: Option<Duration>,
    /// ngircd is not run for more members than this [default: always run].
    ngircd_max: Option<usize>,
    target: PathBuf,
    svg: PathBuf,
    docs: bool,
}

impl Settings {
    fn from_env() -> Self {
        let number = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .map(|v| match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        eprintln!("{name}: a whole number above 0");
                        process::exit(2);
                    }
                })
                .unwrap_or(default)
        };
        // Cargo runs a benchmark in the package's directory; the target
        // directory is where the build went.
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        let svg = std::env::var_os("CHAT_BENCH_SCALE_SVG")
            .map(PathBuf::from)
            .unwrap_or_else(|| target.join("bench-room-scale.svg"));
        Self {
            secs: number("CHAT_BENCH_SCALE_SECS", 30) as u64,
            threads: number("CHAT_BENCH_SCALE_THREADS", 2),
            joining: number("CHAT_BENCH_SCALE_JOINING", 200),
            connecting: number("CHAT_BENCH_SCALE_CONNECTING", 8),
            join_limit: std::env::var_os("CHAT_BENCH_SCALE_JOIN_SECS")
                .map(|_| Duration::from_secs(number("CHAT_BENCH_SCALE_JOIN_SECS", 1) as u64)),
            ngircd_max: std::env::var_os("CHAT_BENCH_SCALE_NGIRCD_MAX")
                .map(|_| number("CHAT_BENCH_SCALE_NGIRCD_MAX", 1)),
            target,
            svg,
            docs: std::env::var("CHAT_BENCH_SVG_DOCS").is_ok_and(|v| v == "1"),
        }
    }
}

fn find_ngircd() -> Option<PathBuf> {
    // Debian puts it in /usr/sbin, which is not on every user's PATH.
    ["ngircd", "/usr/sbin/ngircd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| {
            Command::new(path)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        })
}

/// Raises this process's soft limit on descriptors to the hard one (the
/// servers inherit it), and returns the limit now in force.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            limit = raised;
        }
    }
    // rlim_t is u64 on Linux, not on every Unix.
    #[allow(clippy::unnecessary_cast)]
    let limit = limit.rlim_cur as u64;
    limit
}

fn write_file(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        let _ = fs::create_dir_all(parent);
    }
    match fs::write(path, text) {
        Ok(()) => eprintln!("wrote {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}

// ---------------------------------------------------------------------------
// The servers

enum Side {
    Ours,
    Ngircd(PathBuf),
}

impl Side {
    fn name(&self) -> &'static str {
        match self {
            Side::Ours => "ours",
            Side::Ngircd(_) => "ngircd",
        }
    }

    fn protocol(&self) -> Protocol {
        match self {
            Side::Ours => Protocol::Frames,
            Side::Ngircd(_) => Protocol::Irc,
        }
    }

    /// Starts the server for `n` members and returns it once it listens.
    fn start(&self, n: usize, dir: &Path) -> (Child, SocketAddr) {
        let log = dir.join(format!("{}-{n}.log", self.name()));
        match self {
            Side::Ours => {
                let mut server = Command::new(SERVER)
                    .args(["--room", "--bind", "127.0.0.1:0", "--max-clients"])
                    .arg((n + 10).to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("chat-server starts");
                let mut status = BufReader::new(server.stderr.take().expect("stderr"));
                let mut line = String::new();
                status
                    .read_line(&mut line)
                    .expect("chat-server's first line");
                let addr = line
                    .trim()
                    .strip_prefix("listening on ")
                    .unwrap_or_else(|| panic!("chat-server said {line:?}, not where it listens"))
                    .parse()
                    .expect("an address");
                // A line for every member that joins: kept, as ngircd's log is.
                let mut file = File::create(&log).expect("a log file");
                thread::spawn(move || io::copy(&mut status, &mut file));
                (server, addr)
            }
            Side::Ngircd(path) => {
                // ngircd cannot be told port 0; a port just free is as near
                // as it gets.
                let port = TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .expect("a free port")
                    .port();
                let conf = dir.join("ngircd.conf");
                let includes = dir.join("ngircd.conf.d");
                fs::create_dir_all(&includes).expect("an empty include directory");
                fs::write(&conf, ngircd_conf(port, &includes)).expect("ngircd.conf written");
                let log = File::create(&log).expect("a log file");
                let server = Command::new(path)
                    .arg("-n")
                    .arg("-f")
                    .arg(&conf)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().expect("the log again"))
                    .stderr(log)
                    .spawn()
                    .expect("ngircd starts");
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                let deadline = Instant::now() + Duration::from_secs(10);
                while std::net::TcpStream::connect(addr).is_err() {
                    assert!(
                        Instant::now() < deadline,
                        "ngircd does not listen on {addr}"
                    );
                    thread::sleep(Duration::from_millis(20));
                }
                (server, addr)
            }
        }
    }
}

/// ngircd as fast and as open as it can be configured: no limits on
/// connections (ours has none per address either), no DNS or ident
/// lookups, no penalties (its flood control delays a client's next command
/// by a second or more), no pings during the run.
fn ngircd_conf(port: u16, includes: &Path) -> String {
    format!(
        "[Global]\n\
         Name = bench.invalid\n\
         Info = chat room benchmark\n\
         AdminInfo1 = chat room benchmark\n\
         AdminInfo2 = localhost\n\
         AdminEMail = bench@bench.invalid\n\
         Listen = 127.0.0.1\n\
         Ports = {port}\n\
         MotdPhrase = bench\n\
         [Limits]\n\
         MaxConnections = 0\n\
         MaxConnectionsIP = 0\n\
         MaxJoins = 0\n\
         MaxNickLength = 16\n\
         MaxPenaltyTime = 0\n\
         PingTimeout = 3600\n\
         PongTimeout = 3600\n\
         [Options]\n\
         DNS = no\n\
         Ident = no\n\
         PAM = no\n\
         IncludeDir = {}\n",
        includes.display()
    )
}

/// A field of `/proc/PID/status` (kB for sizes).
fn proc_status(pid: u32, field: &str) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// User + system CPU time of a process, all its threads, from `/proc`.
fn cpu_time(pid: u32) -> Duration {
    cpu_time_of(&pid.to_string())
}

/// User + system CPU time of the process `pid` (a number, or `self`), all
/// its threads, from `/proc`.
pub fn cpu_time_of(pid: &str) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses: utime and
    // stime are the 12th and 13th of them, in clock ticks.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf only reads a constant of the system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / per_second)
}

// ---------------------------------------------------------------------------
// One run: one server, n members

/// What one server did with n members. `None` where the run did not get
/// that far.
#[derive(Default)]
struct Outcome {
    idle_threads: usize,
    threads: usize,
    rss_per_member_kib: Option<f64>,
    /// Time until the last member was admitted, if all were.
    admit: Option<Duration>,
    admitted: usize,
    p50: Option<Duration>,
    p99: Option<Duration>,
    cpu_per_delivery_ns: Option<f64>,
    expected: usize,
    received: usize,
    disconnected: usize,
    /// What went wrong, in words.
    notes: Vec<String>,
    /// Not run: more members than this (`CHAT_BENCH_SCALE_NGIRCD_MAX`).
    skipped: Option<usize>,
}

struct Row {
    n: usize,
    ours: Outcome,
    theirs: Outcome,
}

fn run(side: &Side, n: usize, settings: &Settings, dir: &Path) -> Outcome {
    eprintln!("{} with {n} members:", side.name());
    let (mut server, addr) = side.start(n, dir);
    let pid = server.id();
    let mut out = Outcome {
        idle_threads: proc_status(pid, "Threads").unwrap_or(0) as usize,
        ..Outcome::default()
    };
    let rss_before = proc_status(pid, "VmRSS").unwrap_or(0);
    let shared = Arc::new(Shared::new(
        side.protocol(),
        (settings.secs * LINES_PER_SECOND) as usize,
    ));
    let threads = settings.threads.min(n);
    let joining = settings.joining.div_ceil(threads);
    let connecting = settings.connecting.div_ceil(threads);
    let overflows = listen_overflows();
    let members_cpu = cpu_time(process::id());
    let members: Vec<_> = (0..threads)
        .map(|t| {
            let shared = Arc::clone(&shared);
            let ids: Vec<usize> = (t..n).step_by(threads).collect();
            thread::Builder::new()
                .name(format!("members-{t}"))
                .spawn(move || Members::new(shared, addr, ids, joining, connecting).run())
                .expect("a member thread")
        })
        .collect();

    // Joining: everyone admitted, or no one more can be. Joining is O(N²)
    // (each newcomer is announced to everyone), and so is its time limit.
    let limit = settings
        .join_limit
        .unwrap_or_else(|| Duration::from_secs(60) + Duration::from_micros(10) * (n * n) as u32);
    let joined = wait_for(&mut server, "joining", limit, n, || {
        shared.admitted.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed)
    });
    out.admitted = shared.admitted.load(Ordering::Relaxed);
    if out.admitted == n {
        out.admit = Some(Duration::from_nanos(
            shared.last_admitted.load(Ordering::Relaxed),
        ));
    } else {
        out.notes.push(format!(
            "{} of {n} members admitted{}",
            out.admitted,
            joined.err().map(|e| format!(" ({e})")).unwrap_or_default()
        ));
    }
    eprintln!(
        "  {} admitted in {:.2} s (CPU: the server {:.2} s, the members {:.2} s)",
        out.admitted,
        shared.base.elapsed().as_secs_f64(),
        cpu_time(pid).as_secs_f64(),
        cpu_time(process::id()).as_secs_f64() - members_cpu.as_secs_f64(),
    );
    let overflowed = listen_overflows().saturating_sub(overflows);
    if overflowed > 0 {
        out.notes.push(format!(
            "{overflowed} connections dropped by a full accept queue while joining \
             (the machine's count; each waits a second or more to try again)"
        ));
    }
    shared.phase(COUNTING);
    let _ = wait_for(&mut server, "counting", STALL, threads, || {
        shared.threads_counted.load(Ordering::Relaxed)
    });
    let counted = shared.counted.load(Ordering::Relaxed);
    let talker = shared.talker_counted.load(Ordering::Relaxed);
    if !talker {
        out.notes
            .push("the talker was not admitted: nothing said".into());
    }

    // Syncing: every join notice delivered, so the room is complete.
    if talker && counted > 1 {
        shared.phase(SYNCING);
        let limit = Duration::from_secs(60) + Duration::from_millis(5) * n as u32;
        if let Err(e) = wait_for(&mut server, "syncing", limit, counted - 1, || {
            shared.synced.load(Ordering::Relaxed)
        }) {
            out.notes.push(format!("not every member synced ({e})"));
        }
    }
    out.threads = proc_status(pid, "Threads").unwrap_or(0) as usize;
    if out.admitted > 0 {
        let rss = proc_status(pid, "VmRSS").unwrap_or(0);
        out.rss_per_member_kib = Some(rss.saturating_sub(rss_before) as f64 / out.admitted as f64);
    }

    // Talking, then a grace period for the last line to arrive everywhere.
    let mut said = Vec::new();
    if talker && counted > 1 {
        let (cpu_before, members_before) = (cpu_time(pid), cpu_time(process::id()));
        shared.talk_from.store(shared.now(), Ordering::Release);
        shared.phase(TALKING);
        eprintln!("  talking for {} s", settings.secs);
        let limit = Duration::from_secs(settings.secs + 30);
        if let Err(e) = wait_for(&mut server, "talking", limit, shared.lines, || {
            shared.said.load(Ordering::Relaxed)
        }) {
            out.notes
                .push(format!("the talker could not say every line ({e})"));
        }
        out.expected = shared.said.load(Ordering::Relaxed) * (counted - 1);
        let _ = wait_for(&mut server, "the last lines", GRACE, out.expected, || {
            shared.received.load(Ordering::Relaxed)
        });
        let cpu = cpu_time(pid).saturating_sub(cpu_before);
        out.received = shared.received.load(Ordering::Relaxed);
        eprintln!(
            "  {} of {} deliveries (CPU: the server {:.2} s, the members {:.2} s)",
            out.received,
            out.expected,
            cpu.as_secs_f64(),
            cpu_time(process::id())
                .saturating_sub(members_before)
                .as_secs_f64()
        );
        if out.received > 0 {
            out.cpu_per_delivery_ns = Some(cpu.as_nanos() as f64 / out.received as f64);
        }
    }
    out.disconnected =
        shared.failed.load(Ordering::Relaxed) + shared.dropped.load(Ordering::Relaxed);
    if let Ok(Some(status)) = server.try_wait() {
        out.notes.push(format!("the server exited: {status}"));
    }
    shared.phase(STOPPED);

    // The members' sockets come back open: closed after the server is
    // gone, so that it does not spend the end telling everyone who left.
    let mut receipts = Vec::new();
    let mut sockets = Vec::new();
    for members in members {
        let (tally, open) = members.join().expect("a member thread");
        receipts.extend(tally.receipts);
        said.extend(tally.said);
        sockets.push(open);
    }
    let _ = server.kill();
    let _ = server.wait();
    drop(sockets);

    let mut latencies: Vec<u64> = receipts
        .iter()
        .filter_map(|&(line, at)| Some(at.saturating_sub(*said.get(line as usize)?)))
        .collect();
    latencies.sort_unstable();
    let quantile = |q: f64| {
        let last = latencies.len().checked_sub(1)?;
        Some(Duration::from_nanos(
            latencies[(last as f64 * q).round() as usize],
        ))
    };
    (out.p50, out.p99) = (quantile(0.5), quantile(0.99));
    for note in &out.notes {
        eprintln!("  {note}");
    }
    out
}

/// How many times a full accept queue has dropped a connection on this
/// machine (`ListenOverflows`, from `/proc/net/netstat`).
fn listen_overflows() -> u64 {
    let netstat = fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut tcp = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenOverflows")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0)
}

/// Waits until `progress` reaches `target`: Err if `limit` passes, if it
/// stalls for [`STALL`], or if the server exits.
fn wait_for(
    server: &mut Child,
    what: &str,
    limit: Duration,
    target: usize,
    progress: impl Fn() -> usize,
) -> Result<(), String> {
    let start = Instant::now();
    let (mut last, mut moved) = (progress(), Instant::now());
    loop {
        let now = progress();
        if now >= target {
            return Ok(());
        }
        if now != last {
            (last, moved) = (now, Instant::now());
        }
        if let Ok(Some(status)) = server.try_wait() {
            return Err(format!("{what}: the server exited, {status}"));
        }
        if start.elapsed() > limit {
            return Err(format!(
                "{what}: {now} of {target} after {} s, the limit",
                limit.as_secs()
            ));
        }
        if moved.elapsed() > STALL {
            return Err(format!(
                "{what}: stuck at {now} of {target} for {} s",
                STALL.as_secs()
            ));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// The report

fn report(rows: &[Row], settings: &Settings) {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                Some(
                    l.strip_prefix("model name")?
                        .split_once(':')?
                        .1
                        .trim()
                        .to_string(),
                )
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\nroom at scale: one talker, {LINES_PER_SECOND} lines a second for {} s, every other member \
         receiving; {cpu}, {cores} cores\n",
        settings.secs
    );
    println!("| members | measure | ours | ngircd | target | |");
    println!("|---|---|---|---|---|---|");
    let verdict = |met: Option<bool>| match met {
        Some(true) => "met",
        Some(false) => "not met",
        None => "-",
    };
    let mut targets = Targets::default();
    for row in rows {
        let (o, t, n) = (&row.ours, &row.theirs, row.n);
        // ngircd's cell, or why it is empty.
        let their = |cell: String| match t.skipped {
            Some(max) => format!("not run (> {max})"),
            None => cell,
        };
        let threads_met = o.threads.saturating_sub(o.idle_threads) <= THREADS_SLACK;
        targets.threads.push((n, Some(threads_met)));
        println!(
            "| {n} | server threads (idle → full room) | {} → {} | {} | ours independent of N | {} |",
            o.idle_threads,
            o.threads,
            their(format!("{} → {}", t.idle_threads, t.threads)),
            verdict(Some(threads_met))
        );
        let rss = both(o.rss_per_member_kib, t.rss_per_member_kib, |o, t| o <= t);
        targets.rss.push((n, rss));
        println!(
            "| {n} | RSS per member | {} | {} | ours ≤ ngircd | {} |",
            kib(o.rss_per_member_kib),
            their(kib(t.rss_per_member_kib)),
            verdict(rss)
        );
        println!(
            "| {n} | time to admit everyone | {} | {} | - | |",
            admitted(o, n),
            their(admitted(t, n))
        );
        println!(
            "| {n} | fan-out latency p50 | {} | {} | - | |",
            duration(o.p50),
            their(duration(t.p50))
        );
        let p99 = both(o.p99, t.p99, |o, t| o <= t);
        targets.p99.push((n, p99));
        println!(
            "| {n} | fan-out latency p99 | {} | {} | ours ≤ ngircd | {} |",
            duration(o.p99),
            their(duration(t.p99)),
            verdict(p99)
        );
        let cpu = both(o.cpu_per_delivery_ns, t.cpu_per_delivery_ns, |o, t| o <= t);
        targets.cpu.push((n, cpu));
        println!(
            "| {n} | server CPU per delivery (user+sys, talking) | {} | {} | ours ≤ ngircd | {} |",
            ns(o.cpu_per_delivery_ns),
            their(ns(t.cpu_per_delivery_ns)),
            verdict(cpu)
        );
        println!(
            "| {n} | lines lost (of deliveries expected) | {} | {} | - | |",
            lost(o),
            their(lost(t))
        );
        let held = (n >= 10_000).then_some(
            o.admitted == n && o.disconnected == 0 && o.expected > 0 && o.received == o.expected,
        );
        if let Some(held) = held {
            targets.held.push((n, Some(held)));
        }
        println!(
            "| {n} | members disconnected | {} | {} | {} | {} |",
            o.disconnected,
            their(t.disconnected.to_string()),
            if held.is_some() {
                "ours: all held, none lost"
            } else {
                "-"
            },
            verdict(held)
        );
    }
    println!();
    let verdict = |results: &[(usize, Option<bool>)]| {
        let missed: Vec<String> = results
            .iter()
            .filter(|(_, met)| *met == Some(false))
            .map(|(n, _)| n.to_string())
            .collect();
        let measured = results.iter().any(|(_, met)| met.is_some());
        match (measured, missed.is_empty()) {
            (false, _) => "not measured".to_string(),
            (true, true) => "met".to_string(),
            (true, false) => format!("not met (N = {})", missed.join(", ")),
        }
    };
    // Independent of N: each count near the idle one, and all the same.
    let threads: Vec<usize> = rows.iter().map(|r| r.ours.threads).collect();
    let spread = threads.iter().max().unwrap_or(&0) - threads.iter().min().unwrap_or(&0);
    let mut threads_verdict = verdict(&targets.threads);
    if spread > 2 {
        let counts: Vec<String> = threads.iter().map(usize::to_string).collect();
        threads_verdict = format!("not met (with a full room: {} threads)", counts.join(", "));
    }
    println!(
        "- RSS per member, ours ≤ ngircd's: {}",
        verdict(&targets.rss)
    );
    println!(
        "- our server's threads independent of N (at most {THREADS_SLACK} above idle, \
         the same for every N): {threads_verdict}"
    );
    println!(
        "- server CPU per delivery, ours ≤ ngircd's: {}",
        verdict(&targets.cpu)
    );
    println!("- fan-out p99, ours ≤ ngircd's: {}", verdict(&targets.p99));
    println!(
        "- 10,000 members held, none disconnected, no line lost: {}",
        verdict(&targets.held)
    );
    for row in rows {
        if let Some(max) = row.theirs.skipped {
            println!(
                "- {} members, ngircd: not run (CHAT_BENCH_SCALE_NGIRCD_MAX={max}); ours alone",
                row.n
            );
        }
        for (side, out) in [("ours", &row.ours), ("ngircd", &row.theirs)] {
            for note in &out.notes {
                println!("- {} members, {side}: {note}", row.n);
            }
        }
    }
    println!("\n(unmet targets do not fail the scale run)");
}

#[derive(Default)]
struct Targets {
    rss: Vec<(usize, Option<bool>)>,
    threads: Vec<(usize, Option<bool>)>,
    cpu: Vec<(usize, Option<bool>)>,
    p99: Vec<(usize, Option<bool>)>,
    held: Vec<(usize, Option<bool>)>,
}

/// 1234567 as 1,234,567.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn both<T>(ours: Option<T>, theirs: Option<T>, met: impl Fn(T, T) -> bool) -> Option<bool> {
    Some(met(ours?, theirs?))
}

fn kib(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1} KiB"))
}

fn ns(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0} ns"))
}

fn duration(d: Option<Duration>) -> String {
    match d {
        None => "-".into(),
        Some(d) if d < Duration::from_millis(10) => format!("{:.0} µs", d.as_secs_f64() * 1e6),
        Some(d) if d < Duration::from_secs(10) => format!("{:.1} ms", d.as_secs_f64() * 1e3),
        Some(d) => format!("{:.1} s", d.as_secs_f64()),
    }
}

fn admitted(out: &Outcome, n: usize) -> String {
    match out.admit {
        Some(d) => format!("{:.2} s", d.as_secs_f64()),
        None => format!("{} of {n} admitted", out.admitted),
    }
}

fn lost(out: &Outcome) -> String {
    match out.expected {
        0 => "-".into(),
        expected => format!(
            "{} of {}",
            thousands(expected.saturating_sub(out.received)),
            thousands(expected)
        ),
    }
}

/// The three charts: members → RSS per member, fan-out p99, CPU per delivery.
fn charts(rows: &[Row]) -> Vec<svg::Chart> {
    let series = |value: &dyn Fn(&Outcome) -> Option<f64>| {
        let points = |side: fn(&Row) -> &Outcome| {
            rows.iter()
                .filter_map(|row| Some((row.n as f64, value(side(row))?)))
                .collect()
        };
        vec![
            svg::Series {
                label: "ours (chat-server --room)".into(),
                color: "#1f77b4",
                points: points(|row| &row.ours),
            },
            svg::Series {
                label: "ngircd".into(),
                color: "#d62728",
                points: points(|row| &row.theirs),
            },
        ]
    };
    vec![
        svg::Chart {
            title: "RSS per member".into(),
            unit: "KiB".into(),
            series: series(&|o| o.rss_per_member_kib),
        },
        svg::Chart {
            title: "fan-out latency p99".into(),
            unit: "ms".into(),
            series: series(&|o| o.p99.map(|d| d.as_secs_f64() * 1e3)),
        },
        svg::Chart {
            title: "server CPU per delivery".into(),
            unit: "ns".into(),
            series: series(&|o| o.cpu_per_delivery_ns),
        },
    ]
}
