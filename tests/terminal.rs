//! The line-editor form, driven in a real pseudo-terminal as a person would:
//! typing, receiving mid-line, quitting, and the terminal left as it was.
//! Unix only: it needs a pseudo-terminal, a shell, `stty` and `kill`.
#![cfg(unix)]

mod support;

#[path = "support/screen.rs"]
mod screen;

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;

use expectrl::{Eof, Expect, Regex, Session};
use screen::Screen;
use support::{CLIENT, PATIENCE, SERVER, frame, read_frame, read_text, start_room};

type Pty = expectrl::session::OsSession;

/// Shell that prints the program's exit status and the terminal's line-mode
/// and echo flags once the program has exited.
const REPORT: &str = "echo EXIT=$?; echo MODES $(stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo) END; sleep 1";

/// Runs `script` under `sh -c` in a new pseudo-terminal, with a known terminal
/// type and colour as the test asks.
fn in_terminal(script: &str, color: bool) -> Pty {
    // The pseudo-terminal starts without echo; a user's terminal has it.
    let script = format!("stty icanon echo; {script}");
    let mut command = Command::new("sh");
    command.args(["-c", &script]).env("TERM", "xterm");
    if color {
        command.env_remove("NO_COLOR");
    } else {
        command.env("NO_COLOR", "1");
    }
    let mut session = Session::spawn(command).expect("spawn in a pseudo-terminal");
    session.set_expect_timeout(Some(PATIENCE));
    session
}

/// Checks that the client ended its side with nothing more to send, then
/// ends the raw server's side as chat-server does.
fn finish(mut server: TcpStream) {
    assert_eq!(
        read_frame(&mut server),
        None,
        "a clean end, and nothing more"
    );
    server.shutdown(Shutdown::Write).unwrap();
}

/// Types `keys` and Enter, and checks that the peer received `sent`.
fn enter(session: &mut Pty, peer: &mut TcpStream, keys: &str, sent: &str) {
    session.send(format!("{keys}\r")).unwrap();
    assert_eq!(read_text(peer), sent);
}

/// A client in a terminal, talking to a raw server held by the test. After
/// the client exits, the shell prints its status and the terminal's modes.
fn client_in_terminal(color: bool) -> (Pty, TcpStream) {
    client_in_terminal_with(color, "")
}

/// [`client_in_terminal`], with `flags` on the client's command line.
fn client_in_terminal_with(color: bool, flags: &str) -> (Pty, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let script = format!("{CLIENT} --connect {addr} {flags}; {REPORT}");
    let mut session = in_terminal(&script, color);
    let (server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(PATIENCE)).unwrap();
    session.expect("> ").unwrap();
    (session, server)
}

/// A chat-server in a terminal, and the address it listens on. After it
/// exits, the shell prints its status and the terminal's modes.
fn server_in_terminal() -> (Pty, String) {
    let script = format!("{SERVER} --bind 127.0.0.1:0; {REPORT}");
    let mut session = in_terminal(&script, false);
    let listening = session
        .expect(Regex(r"listening on (127\.0\.0\.1:\d+)"))
        .unwrap();
    let addr = String::from_utf8_lossy(&listening[1]).to_string();
    (session, addr)
}

/// Waits for the shell's report after the program and checks the status and
/// that the terminal is back in line mode with echo.
fn expect_exit_and_sane_terminal(session: &mut Pty, code: i32) {
    let rest = session.expect(Eof).unwrap();
    // At the end of output everything unread is the match.
    let rest: Vec<u8> = rest
        .before()
        .iter()
        .chain(rest.matches().flatten())
        .copied()
        .collect();
    let rest = String::from_utf8_lossy(&rest).to_string();
    assert!(rest.contains(&format!("EXIT={code}")), "{rest:?}");
    let modes = rest
        .split("MODES ")
        .nth(1)
        .and_then(|m| m.split(" END").next());
    let text = modes.unwrap_or_else(|| panic!("no modes in {rest:?}"));
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(words, ["icanon", "echo"], "terminal left in raw mode");
}

#[test]
fn a_message_arriving_mid_line_leaves_the_half_line_intact() {
    let (mut session, mut server) = client_in_terminal(false);
    session.send("hello wor").unwrap();
    session.expect("hello wor").unwrap();

    server
        .write_all(&frame("incoming! 你好".as_bytes()))
        .unwrap();
    session.expect("server: incoming! 你好").unwrap();
    // Repainted below the message, exactly as it was.
    session.expect("> hello wor").unwrap();

    enter(&mut session, &mut server, "ld", "hello world");

    // Up arrow brings the line back from history.
    session.send("\x1b[A").unwrap();
    session.expect("hello world").unwrap();
    enter(&mut session, &mut server, "!", "hello world!");

    session.send("q\r").unwrap();
    finish(server);
    expect_exit_and_sane_terminal(&mut session, 0);
}

#[test]
fn ctrl_d_on_an_empty_line_quits_like_q() {
    let (mut session, mut server) = client_in_terminal(false);
    enter(&mut session, &mut server, "sent first", "sent first");
    session.send("\x04").unwrap();
    finish(server);
    expect_exit_and_sane_terminal(&mut session, 0);
}

#[test]
fn ctrl_c_quits_and_restores_the_terminal() {
    let (mut session, server) = client_in_terminal(false);
    session.send("half").unwrap();
    session.expect("half").unwrap();
    session.send("\x03").unwrap();
    finish(server);
    expect_exit_and_sane_terminal(&mut session, 130);
}

#[test]
fn when_the_server_leaves_the_client_exits_without_a_key_press() {
    let (mut session, mut server) = client_in_terminal(false);
    session.send("typed but not sent").unwrap();
    session.expect("typed but not sent").unwrap();
    server.write_all(&frame(b"goodbye")).unwrap();
    server.shutdown(Shutdown::Write).unwrap();
    session.expect("server: goodbye").unwrap();
    session.expect("the server ended the conversation").unwrap();
    expect_exit_and_sane_terminal(&mut session, 0);
    assert_eq!(read_frame(&mut server), None);
}

#[test]
fn messages_show_their_sender_in_colour_unless_no_color() {
    let (mut session, mut server) = client_in_terminal(true);
    server.write_all(&frame(b"coloured")).unwrap();
    // Bold cyan around the sender's name.
    session
        .expect(Regex(r"\x1b\[[0-9;]*m+server:\x1b\[0m coloured"))
        .unwrap();
    session.send("q\r").unwrap();
    finish(server);
    expect_exit_and_sane_terminal(&mut session, 0);

    let (mut session, mut server) = client_in_terminal(false);
    server.write_all(&frame(b"plain")).unwrap();
    let seen = session.expect("plain").unwrap();
    let before = String::from_utf8_lossy(seen.before()).to_string();
    assert!(before.ends_with("server: "), "{before:?}");
    session.send("q\r").unwrap();
    finish(server);
    expect_exit_and_sane_terminal(&mut session, 0);
}

/// A dumb terminal (`TERM=dumb`, as Emacs' `M-x shell` sets) gets plain
/// lines and not one escape sequence: no prompt drawn, no cursor
/// movement, no bracketed paste, no colour.
#[test]
fn a_dumb_terminal_gets_plain_lines_without_escape_sequences() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let script = format!("TERM=dumb {CLIENT} --connect {addr}; {REPORT}");
    let mut session = in_terminal(&script, true);
    let (mut server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(PATIENCE)).unwrap();
    server.write_all(&frame(b"hello, dumb terminal")).unwrap();
    let seen = session.expect("hello, dumb terminal").unwrap();
    let mut everything = seen.before().to_vec();
    everything.extend_from_slice(seen.get(0).unwrap());
    enter(&mut session, &mut server, "typed plainly", "typed plainly");
    session.send("q\r").unwrap();
    finish(server);
    let seen = session.expect(Regex("EXIT=[0-9]+")).unwrap();
    everything.extend_from_slice(seen.before());
    everything.extend_from_slice(seen.get(0).unwrap());
    let shown = String::from_utf8_lossy(&everything);
    assert!(
        !shown.contains('\x1b'),
        "an escape sequence reached a dumb terminal: {shown:?}"
    );
    assert!(shown.contains("EXIT=0"), "{shown:?}");
}

#[test]
fn control_characters_never_reach_the_terminal_raw() {
    let (mut session, mut server) = client_in_terminal(false);
    server
        .write_all(&frame(b"\x1b]0;owned\x07\x1b[2Jstill here"))
        .unwrap();
    session
        .expect(r"server: \x1b]0;owned\x07\x1b[2Jstill here")
        .unwrap();
    session.send("q\r").unwrap();
    finish(server);
    expect_exit_and_sane_terminal(&mut session, 0);
}

#[test]
fn the_server_prompt_shows_its_state_and_ctrl_c_stops_it() {
    let (mut session, addr) = server_in_terminal();
    session.expect("[waiting for a client] > ").unwrap();
    // A draft typed while waiting survives the prompt's change.
    session.send("draft").unwrap();
    session.expect("draft").unwrap();

    let mut client = TcpStream::connect(&addr).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let me = client.local_addr().unwrap().to_string();
    session.expect(format!("{me} connected").as_str()).unwrap();
    session.expect(format!("[{me}] > draft").as_str()).unwrap();
    enter(&mut session, &mut client, " sent", "draft sent");

    client.write_all(&frame(b"hi operator")).unwrap();
    session
        .expect(format!("{me}: hi operator").as_str())
        .unwrap();
    enter(&mut session, &mut client, "hi client", "hi client");

    // A second client waits; the prompt says so, redrawn with what is
    // being typed meanwhile.
    session.send("half typed").unwrap();
    session.expect("half typed").unwrap();
    let mut second = TcpStream::connect(&addr).unwrap();
    second.set_read_timeout(Some(PATIENCE)).unwrap();
    assert!(read_text(&mut second).contains("number 1 in line"));
    session
        .expect(format!("[{me}, 1 waiting] > half typed").as_str())
        .unwrap();

    session.send("\x03").unwrap();
    assert_eq!(read_frame(&mut client), None, "the client is told");
    expect_exit_and_sane_terminal(&mut session, 130);
}

#[test]
fn lines_typed_in_one_burst_all_arrive_in_order() {
    let (mut session, mut server) = client_in_terminal(false);
    // One write, as a fast typist, a paste without bracketed paste, or an
    // expect script delivers it.
    session.send("first\rsecond\rthird\r").unwrap();
    for line in ["first", "second", "third"] {
        assert_eq!(read_text(&mut server), line);
    }
    // Far more than one read of the terminal: twenty lines of 100 bytes.
    let lines: Vec<String> = (0..20)
        .map(|i| format!("{i:04} {}", "w".repeat(95)))
        .collect();
    session.send(format!("{}\r", lines.join("\r"))).unwrap();
    for line in &lines {
        assert_eq!(&read_text(&mut server), line);
    }
    // A bracketed paste of several lines, then more typing on the last one.
    session
        .send("\x1b[200~pasted one\npasted two\npartial\x1b[201~ end\r")
        .unwrap();
    for line in ["pasted one", "pasted two", "partial end"] {
        assert_eq!(read_text(&mut server), line);
    }
    session.send("q\r").unwrap();
    finish(server);
    expect_exit_and_sane_terminal(&mut session, 0);
}

/// A client in a terminal, talking to a server held by the test that
/// speaks version 2 and takes messages of several lines; once the client
/// has shown the server's first message, it knows that.
fn client_in_terminal_taking_breaks() -> (Pty, TcpStream) {
    use std::io::Read;
    use support::{OFFER, hello_frame, next_control};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut session = in_terminal(&format!("{CLIENT} --connect {addr}; {REPORT}"), false);
    let (mut server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut offer = [1; 32];
    server.read_exact(&mut offer).unwrap();
    assert_eq!(offer, OFFER);
    let mut answer = OFFER.to_vec();
    answer.extend_from_slice(&hello_frame([3; 16], [0; 16], 0, 1));
    server.write_all(&answer).unwrap();
    assert_eq!(next_control(&mut server)[0], b'H', "the client's HELLO");
    // Shown after the client took the `HELLO` that came before it.
    server.write_all(&frame(b"ready")).unwrap();
    session.expect("server: ready").unwrap();
    (session, server)
}

/// Reads the client's next message, and acknowledges it (its `n`-th), as a
/// version 2 server does: else `q` would wait for it.
fn take_message(server: &mut TcpStream, n: u64) -> String {
    let text = support::read_data(server).expect("a message");
    let mut ack = vec![0x80, 0, 0, 9, b'A'];
    ack.extend_from_slice(&n.to_be_bytes());
    server.write_all(&ack).unwrap();
    text
}

/// Issue 20, item 1: a bracketed paste of several lines stays in the
/// editor as one message, and Enter sends it whole; Alt-Enter breaks a
/// line while typing. A message of several lines received is one block,
/// its lines under its text.
#[test]
fn a_paste_of_several_lines_is_one_message_that_enter_sends_whole() {
    let (mut session, mut server) = client_in_terminal_taking_breaks();
    session
        .send("\x1b[200~pasted one\r\npasted two\n\x1b[201~and typed")
        .unwrap();
    // Nothing goes before Enter: the paste is shown, its lines under the first.
    session.expect("pasted one").unwrap();
    session.expect("  pasted two").unwrap();
    session.send("\r").unwrap();
    assert_eq!(
        take_message(&mut server, 1),
        "pasted one\npasted two\nand typed"
    );
    // Alt-Enter (Esc, then Enter) breaks the line; Enter sends.
    session.send("first\x1b\rsecond\r").unwrap();
    assert_eq!(take_message(&mut server, 2), "first\nsecond");
    server.write_all(&frame(b"alpha\nbeta")).unwrap();
    session.expect("server: alpha\r\n        beta").unwrap();
    session.send("q\r").unwrap();
    assert_eq!(support::read_data(&mut server), None, "the client's end");
    server.shutdown(Shutdown::Write).unwrap();
    expect_exit_and_sane_terminal(&mut session, 0);
}

/// The server's operator too: a paste of several lines goes to a client
/// that takes them as one message.
#[test]
fn the_operators_paste_of_several_lines_is_one_message_to_its_client() {
    use std::io::Read;
    use support::{OFFER, hello_frame, next_control, read_data};
    let (mut session, addr) = server_in_terminal();
    let mut client = TcpStream::connect(&addr).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    client.write_all(&OFFER).unwrap();
    let mut offer = [1; 32];
    client.read_exact(&mut offer).unwrap();
    assert_eq!(offer, OFFER);
    assert_eq!(next_control(&mut client)[0], b'H');
    let mut hello = hello_frame([0; 16], [0; 16], 0, 1);
    hello.extend_from_slice(&frame(b"ready"));
    client.write_all(&hello).unwrap();
    // Shown once the `HELLO` before it was taken.
    session.expect("ready").unwrap();
    session
        .send("\x1b[200~from the operator\nsecond line\x1b[201~\r")
        .unwrap();
    assert_eq!(
        read_data(&mut client).as_deref(),
        Some("from the operator\nsecond line")
    );
    session.send("\x03").unwrap();
    expect_exit_and_sane_terminal(&mut session, 130);
}

/// A peer that did not say it takes messages of several lines (a version 1
/// server) gets one a line each, in order, its empty lines left out.
#[test]
fn a_message_of_several_lines_goes_a_line_each_to_a_plain_peer() {
    let (mut session, mut server) = client_in_terminal(false);
    session
        .send("\x1b[200~one\n\ntwo\x1b[201~\x1b\rthree\r")
        .unwrap();
    for line in ["one", "two", "three"] {
        assert_eq!(read_text(&mut server), line);
    }
    enter(&mut session, &mut server, "after", "after");
    session.send("q\r").unwrap();
    finish(server);
    expect_exit_and_sane_terminal(&mut session, 0);
}

/// A shell prints its own pid and then becomes `program`, so the test can
/// signal the program and find its terminal.
fn exec_in_terminal(program: &str) -> (Pty, u32, String) {
    let script = format!("echo PID=$$ TTY=$(tty) END; exec {program}");
    let mut session = in_terminal(&script, false);
    let found = session.expect(Regex(r"PID=(\d+) TTY=(\S+) END")).unwrap();
    let pid = String::from_utf8_lossy(&found[1]).parse().unwrap();
    let tty = String::from_utf8_lossy(&found[2]).to_string();
    (session, pid, tty)
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// The terminal's line-mode and echo flags, as `stty` reports them.
fn terminal_modes(tty: &str) -> Vec<String> {
    let out = Command::new("stty")
        .args(["-F", tty, "-a"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| ["icanon", "-icanon", "echo", "-echo"].contains(w))
        .map(str::to_string)
        .collect()
}

fn wait_for_exit(pid: u32) {
    support::wait_until("the program exits", || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| stat.split_whitespace().nth(2) == Some("Z"))
    });
}

#[test]
fn after_an_outside_stop_and_continue_the_editor_takes_the_terminal_back() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (mut session, pid, tty) = exec_in_terminal(&format!("{CLIENT} --connect {addr}"));
    let (mut server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(PATIENCE)).unwrap();
    session.expect("> ").unwrap();
    assert_eq!(terminal_modes(&tty), ["-icanon", "-echo"]);

    signal(pid, "TSTP");
    // What a shell does when its job stops: the terminal back in line mode.
    let sane = Command::new("stty")
        .args(["-F", &tty, "sane"])
        .status()
        .unwrap();
    assert!(sane.success());
    assert_eq!(terminal_modes(&tty), ["icanon", "echo"]);
    signal(pid, "CONT");
    support::wait_until("the editor takes the terminal back", || {
        terminal_modes(&tty) == ["-icanon", "-echo"]
    });
    enter(&mut session, &mut server, "after fg", "after fg");
    session.send("\x03").unwrap();
    finish(server);
    session.expect(Eof).unwrap();
}

#[test]
fn a_closed_terminal_and_a_vanished_server_after_a_burst_leave_no_orphan() {
    for _ in 0..5 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (mut session, pid, _) = exec_in_terminal(&format!("{CLIENT} --connect {addr}"));
        let (server, _) = listener.accept().unwrap();
        session.expect("> ").unwrap();
        session
            .send("a burst of keys\rmore keys\rand more")
            .unwrap();
        // The terminal goes away (its client gets SIGHUP), and so does the server.
        drop(session);
        drop(server);
        wait_for_exit(pid);
    }
}

#[test]
fn prompt_changes_while_typing_are_never_taken_for_ctrl_c() {
    let (mut session, addr) = server_in_terminal();
    let mut client = TcpStream::connect(&addr).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let me = client.local_addr().unwrap().to_string();
    session.expect(format!("[{me}] > ").as_str()).unwrap();
    // Clients join and leave the line (each a prompt change) while the
    // operator types, key by key.
    let churn = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            for _ in 0..100 {
                let waiting = TcpStream::connect(&addr).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
                drop(waiting);
            }
        })
    };
    let typed = "typing while the prompt changes";
    // The terminal is read meanwhile, as a user's is: one that is not
    // stops the editor once its buffer is full, whatever the prompt does.
    let mut shown = [0u8; 64 * 1024];
    for key in typed.chars() {
        session.send(key.to_string()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(3));
        while session.try_read(&mut shown).is_ok_and(|n| n > 0) {}
    }
    while !churn.is_finished() {
        while session.try_read(&mut shown).is_ok_and(|n| n > 0) {}
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    churn.join().unwrap();
    session.send("\r").unwrap();
    assert_eq!(read_text(&mut client), typed);
    session.send("q\r").unwrap();
    assert_eq!(read_frame(&mut client), None);
    session.send("\x03").unwrap();
    expect_exit_and_sane_terminal(&mut session, 130);
}

#[test]
fn a_paste_of_megabytes_to_a_client_that_reads_nothing_never_freezes_q() {
    let (mut session, addr) = server_in_terminal();
    // A client with a small window that never reads.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .connect(&addr.parse::<std::net::SocketAddr>().unwrap().into())
        .unwrap();
    let stalled: TcpStream = socket.into();
    let me = stalled.local_addr().unwrap().to_string();
    session.expect(format!("[{me}] > ").as_str()).unwrap();

    // A megabyte, sent by Enter (a paste is one message until then, which
    // goes to a plain peer a line each): far more than the client's window
    // and the kernels' buffers hold. (Three took 6 to 12 s of the editor's echo here, and
    // once over a minute on a loaded CI machine.)
    let line = "z".repeat(99);
    let paste: String = (0..10_000).map(|_| format!("{line}\n")).collect();
    session
        .send(format!("\x1b[200~{paste}\x1b[201~\rq\r"))
        .unwrap();
    // `q` is acted on at once, though the paste is still held up: the
    // conversation is ending. (What the stall rule then says, and how much
    // it counts as not delivered, `timeouts.rs` checks on a manual clock.)
    session
        .expect(format!("[ending {me}] > ").as_str())
        .unwrap();
    // The client goes, with the paste unread: the next client is awaited.
    drop(stalled);
    session.expect("[waiting for a client] > ").unwrap();
    session.send("\x03").unwrap();
    expect_exit_and_sane_terminal(&mut session, 130);
}

/// A signal while the client asks for the shared code (its terminal in raw
/// mode, before any conversation listens) ends it as Ctrl-C would, with
/// the terminal given back.
#[test]
fn a_signal_at_the_code_prompt_gives_the_terminal_back() {
    for name in ["TERM", "HUP", "INT"] {
        let (mut session, pid, tty) = exec_in_terminal(&format!(
            "env -u CHAT_CODE {CLIENT} --tls --code --connect 127.0.0.1:9"
        ));
        session
            .expect("code (from the server's operator): ")
            .unwrap();
        signal(pid, name);
        wait_for_exit(pid);
        assert_eq!(terminal_modes(&tty), ["icanon", "echo"], "after SIG{name}");
    }
}

/// A client on a screen of `size`, talking to a raw server held by the
/// test, with the client's process id; the prompt is drawn.
fn client_on_screen(size: (u16, u16)) -> (Screen, u32, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (mut screen, pid) = Screen::exec(&format!("{CLIENT} --connect {addr}"), size);
    let (server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(PATIENCE)).unwrap();
    expect_at_cursor(&mut screen, "> ");
    (screen, pid, server)
}

/// Waits until the row with the cursor reads `text` up to the cursor.
fn expect_at_cursor(screen: &mut Screen, text: &str) {
    screen.wait_for(&format!("{text:?} before the cursor"), |screen| {
        screen.before_cursor() == text && screen.cursor().1 == text.chars().count()
    });
}

/// Waits until the program has stopped (`T` in `/proc/PID/stat`).
fn wait_for_stop(pid: u32) {
    support::wait_until("the program stops", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.split_whitespace().nth(2) == Some("T"))
    });
}

/// The lines on the screen that contain `part`.
fn lines_with(screen: &Screen, part: &str) -> Vec<String> {
    screen
        .lines()
        .into_iter()
        .map(|(_, line)| line)
        .filter(|line| line.contains(part))
        .collect()
}

/// Bracketed paste on: what the editor sends when it takes the terminal,
/// and again once continued after a stop (a shell may have turned it off).
const PASTE_ON: &[u8] = b"\x1b[?2004h";

/// Issue 21, item 7: stopped and continued with no shell to redraw (`kill
/// -STOP`/`-CONT`, or `ssh -t` and `xterm -e`, where `-TSTP` does nothing
/// either: no shell can continue the program), the line was drawn a second
/// time after the first, the cursor in the middle, and what arrived
/// meanwhile was glued to it. Now it is erased and drawn once, below what
/// arrived. Both programs draw through the same editor.
#[test]
fn after_a_stop_and_continue_the_line_is_drawn_once_below_what_arrived() {
    let (mut screen, pid, mut server) = client_on_screen((40, 12));
    stop_and_continue(&mut screen, pid, &mut server, "> ", "server");

    let (mut screen, pid) = Screen::exec(&format!("{SERVER} --bind 127.0.0.1:0"), (40, 12));
    let mut addr = None;
    screen.wait_for("the address", |screen| {
        addr = screen.rows().iter().find_map(|row| {
            let at = row.find("listening on ")?;
            Some(row[at + "listening on ".len()..].to_string())
        });
        addr.is_some()
    });
    let mut client = TcpStream::connect(addr.unwrap()).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let me = client.local_addr().unwrap().to_string();
    expect_at_cursor(&mut screen, &format!("[{me}] > "));
    stop_and_continue(&mut screen, pid, &mut client, &format!("[{me}] > "), &me);
}

/// Stops and continues the program behind `screen` with a line half typed,
/// twice: a line over two rows, the cursor on the second (`-TSTP`, which
/// does nothing here, then `-CONT`); then a short line, stopped for good
/// while `peer` sends a message. The screen must then show the line once,
/// last, below the message, with the cursor at its end.
fn stop_and_continue(
    screen: &mut Screen,
    pid: u32,
    peer: &mut TcpStream,
    prompt: &str,
    from: &str,
) {
    let more = format!("half typed and{}", " more".repeat(8));
    screen.send(&more);
    let line = format!("{prompt}{more}");
    screen.wait_for("the line wrapped", |screen| {
        lines_with(screen, "half typed") == [line.clone()]
    });
    let mark = screen.mark();
    signal(pid, "TSTP");
    signal(pid, "CONT");
    // The redraw after the continue, written at the end of its turn: a key
    // typed now comes after it.
    screen.wait_for("the redraw after the continue", |screen| {
        screen.mark() > mark
    });
    screen.send("?");
    screen.wait_for("the key after the continue", |screen| {
        screen.lines().iter().any(|(_, l)| l.ends_with("more?"))
    });
    let line = format!("{line}?");
    assert_eq!(
        lines_with(screen, "half typed"),
        std::slice::from_ref(&line),
        "{}",
        screen.dump()
    );
    let lines = screen.lines();
    let (_, last) = lines.iter().rfind(|(_, l)| !l.is_empty()).unwrap();
    assert_eq!(last, &line, "nothing below the line:\n{}", screen.dump());
    screen.wait_for("bracketed paste on again", |screen| {
        screen.count_since(mark, PASTE_ON) > 0
    });
    screen.send("\r");
    assert_eq!(read_text(peer), format!("{more}?"));

    screen.send("typed again");
    let line = format!("{prompt}typed again");
    expect_at_cursor(screen, &line);
    signal(pid, "STOP");
    wait_for_stop(pid);
    peer.write_all(&frame(b"said while stopped")).unwrap();
    let mark = screen.mark();
    signal(pid, "CONT");
    let said = format!("{from}: said while stopped");
    // Once the editor has acted on the continue (bracketed paste on again),
    // in whichever order it took that and the message.
    screen.wait_for("the line below the message", |screen| {
        let lines = screen.lines();
        let shown: Vec<&str> = lines
            .iter()
            .map(|(_, l)| l.as_str())
            .filter(|l| !l.is_empty())
            .collect();
        screen.count_since(mark, PASTE_ON) > 0
            && shown.ends_with(&[said.as_str(), line.as_str()])
            && screen.before_cursor() == line
    });
    assert_eq!(
        lines_with(screen, "typed again"),
        std::slice::from_ref(&line),
        "{}",
        screen.dump()
    );
    screen.send("\x03");
    wait_for_exit(pid);
}

/// Issue 21, item 7: Ctrl-Z, then `fg` from a shell with job control: the
/// line is drawn once after the shell's words, however the continue and
/// the return from the stop are ordered. Bracketed paste is off while the
/// shell has the terminal, on again after.
#[test]
fn ctrl_z_then_fg_draws_the_line_once() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // `set -m`: job control in a script, where a stopped job lets the
    // script go on, here to `fg` it at once.
    let script = format!("set -m; {CLIENT} --connect {addr}; echo STOPPED=$?; fg >/dev/null");
    let (mut screen, _) = Screen::spawn(&script, (40, 12));
    let (mut server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(PATIENCE)).unwrap();
    expect_at_cursor(&mut screen, "> ");
    screen.send("half typed");
    expect_at_cursor(&mut screen, "> half typed");
    let mark = screen.mark();
    screen.send("\x1a");
    // On once back from the stop, and once on the continue, in any order.
    screen.wait_for("the editor back after fg", |screen| {
        screen.count_since(mark, PASTE_ON) == 2 && screen.before_cursor() == "> half typed"
    });
    assert_eq!(screen.count_since(mark, b"\x1b[?2004l"), 1);
    let stopped = screen
        .lines()
        .iter()
        .position(|(_, l)| l.starts_with("STOPPED="));
    let stopped = stopped.expect("the shell's report");
    assert_eq!(
        lines_with(&screen, "half typed"),
        ["> half typed"],
        "{}",
        screen.dump()
    );
    assert!(
        screen.lines()[stopped + 1..]
            .iter()
            .any(|(_, l)| l == "> half typed")
    );
    screen.send("!\r");
    assert_eq!(read_text(&mut server), "half typed!");
    screen.send("\x03");
    finish(server);
}

/// The lines on the screen that hold the typed line (its words `w000`…).
fn typed_lines(screen: &Screen) -> Vec<(isize, String)> {
    screen
        .lines()
        .into_iter()
        .filter(|(_, line)| line.contains("w0"))
        .collect()
}

/// Issue 21, item 8: a line that wraps, then the screen narrower and wider
/// again (which the terminal wraps anew, as tmux does): the line is shown
/// once, right below the message above it, with the cursor at its end.
/// The first row of the line used to be taken to be the cursor's: four
/// stale rows at 60 columns, the line three times back at 100.
#[test]
fn a_resize_leaves_the_wrapped_line_once_and_nothing_stale() {
    let (mut screen, pid, mut server) = client_on_screen((100, 24));
    // A screenful of conversation: the prompt is on the bottom row, as in
    // a chat under way. (Higher up, a narrower screen can push the line's
    // first rows off the top, out of reach, as tmux does too.)
    for i in 0..30 {
        server
            .write_all(&frame(format!("earlier {i}").as_bytes()))
            .unwrap();
    }
    server.write_all(&frame(b"above the line")).unwrap();
    screen.wait_for("the messages", |screen| {
        screen
            .rows()
            .iter()
            .any(|row| row == "server: above the line")
    });
    let words: Vec<String> = (0..50).map(|i| format!("w{i:03}")).collect();
    let mut typed = words.join(" ");
    screen.send(&typed);
    // 251 columns with the prompt: 51 on the third row.
    expect_at_cursor(&mut screen, &typed[typed.len() - 51..]);
    for (columns, key) in [(60, "!"), (100, "?"), (37, "+")] {
        let mark = screen.resize(columns, 24);
        // Erased below the cursor: the editor has seen the resize, and the
        // key after comes after it.
        screen.wait_for("the redraw after the resize", |screen| {
            screen.count_since(mark, b"\x1b[J") > 0
        });
        screen.send(key);
        typed.push_str(key);
        screen.wait_for("the key after the resize", |screen| {
            typed_lines(screen)
                .iter()
                .any(|(_, line)| line.ends_with(key))
        });
        let line = format!("> {typed}");
        let shown = typed_lines(&screen);
        assert_eq!(shown.len(), 1, "at {columns}:\n{}", screen.dump());
        let (first, text) = &shown[0];
        assert_eq!(text, &line, "at {columns}:\n{}", screen.dump());
        // Right below the message, and nothing below it.
        let lines = screen.lines();
        let at = lines.iter().position(|(_, l)| l == &line).unwrap();
        assert_eq!(
            lines[at - 1].1,
            "server: above the line",
            "{}",
            screen.dump()
        );
        assert!(
            lines[at + 1..].iter().all(|(_, l)| l.is_empty()),
            "{}",
            screen.dump()
        );
        let width = line.chars().count();
        let columns = usize::from(columns);
        let row = usize::try_from(first + (width / columns) as isize).unwrap();
        assert_eq!(screen.cursor(), (row, width % columns), "{}", screen.dump());
    }
    screen.send("\r");
    assert_eq!(read_text(&mut server), typed);
    screen.send("\x03");
    wait_for_exit(pid);
}

/// Issue 21, item 8: a line taller than the screen. Home put the cursor on
/// the screen's top row, which showed the middle of the line, and what was
/// typed there went to the start, out of sight; Ctrl-L drew the whole line
/// from the top and left the cursor as far off. Now the screenful with the
/// cursor is shown.
#[test]
fn in_a_line_taller_than_the_screen_the_cursor_is_where_text_goes() {
    let (mut screen, pid, mut server) = client_on_screen((40, 8));
    // 80 words of 5 columns: 11 rows of 40 with the prompt.
    let words: Vec<String> = (0..80).map(|i| format!("t{i:03}")).collect();
    let line = words.join(" ");
    screen.send(&line);
    // Its last 8 rows fill the screen, the cursor at the end.
    let shown: Vec<char> = format!("> {line}").chars().collect();
    let rows: Vec<String> = shown
        .chunks(40)
        .map(|row| row.iter().collect::<String>().trim_end().to_string())
        .collect();
    screen.wait_for("the end of the line at the bottom", |screen| {
        screen.rows() == rows[rows.len() - 8..]
    });
    assert_eq!(screen.cursor(), (7, 1), "{}", screen.dump());

    screen.send("\x1b[HX");
    expect_at_cursor(&mut screen, "> X");
    assert!(
        screen.rows()[screen.cursor().0].starts_with("> Xt000 t001"),
        "{}",
        screen.dump()
    );
    // Ctrl-L: the screen cleared, the same screenful drawn at its top.
    screen.send("\x0cY");
    expect_at_cursor(&mut screen, "> XY");
    assert_eq!(screen.cursor().0, 0, "{}", screen.dump());
    // End: the last screenful, the cursor at the end on the bottom row.
    screen.send("\x1b[FZ");
    screen.wait_for("the end of the line", |screen| {
        screen.before_cursor().ends_with("079Z")
    });
    assert_eq!(screen.cursor().0, 7, "{}", screen.dump());
    screen.send("\r");
    assert_eq!(read_text(&mut server), format!("XY{line}Z"));
    screen.send("\x03");
    wait_for_exit(pid);
}

/// Issue 21, item 9: the keys move over what people see as one character.
/// `a`, `e` + combining acute, `b`, Left Left `Y` sent `a e Y U+0301 b`
/// (the accent on Y); Backspace after a flag sent half of it.
#[test]
fn keys_move_over_accents_flags_and_emoji_whole() {
    let (mut screen, pid, mut server) = client_on_screen((40, 12));
    enter_keys(
        &mut screen,
        &mut server,
        "ae\u{301}b\x1b[D\x1b[DY",
        "aYe\u{301}b",
    );
    enter_keys(&mut screen, &mut server, "x🇩🇪\x7f", "x");
    enter_keys(&mut screen, &mut server, "👍🏽\x1b[Dz", "z👍🏽");
    enter_keys(&mut screen, &mut server, "🇩🇪🇫🇷\x1b[D\x1b[3~", "🇩🇪");
    screen.send("\x03");
    wait_for_exit(pid);
}

fn enter_keys(screen: &mut Screen, peer: &mut TcpStream, keys: &str, sent: &str) {
    screen.send(&format!("{keys}\r"));
    assert_eq!(read_text(peer), sent);
}

/// Everything the terminal shows from now until the shell's report of the
/// exit (after the program was told to end).
fn rest_until_exit(session: &mut Pty) -> String {
    let seen = session.expect(Regex("EXIT=[0-9]+")).unwrap();
    let mut everything = seen.before().to_vec();
    everything.extend_from_slice(seen.get(0).unwrap());
    String::from_utf8_lossy(&everything).into_owned()
}

#[test]
fn timestamps_show_the_local_time_before_messages_and_status_lines() {
    let (mut session, mut server) = client_in_terminal_with(false, "--timestamps");
    server.write_all(&frame(b"stamped")).unwrap();
    session
        .expect(Regex(r"[0-2][0-9]:[0-5][0-9] server: stamped"))
        .unwrap();
    enter(&mut session, &mut server, "typed", "typed");
    // The server ends: the last status line, written once the editor gave
    // the terminal back, is stamped as the editor stamps (it was in the
    // piped form, a full RFC 3339 time).
    server.shutdown(Shutdown::Write).unwrap();
    let rest = rest_until_exit(&mut session);
    assert!(rest.contains("EXIT=0"), "{rest:?}");
    let at = rest
        .find("the server ended the conversation")
        .expect("the last status line");
    let stamp: Vec<char> = rest[..at].trim_end().chars().rev().take(6).collect();
    // Reversed: `MM:HH` and what was before it, not an offset's sign.
    assert!(
        stamp[..5].iter().enumerate().all(|(i, c)| match i {
            2 => *c == ':',
            _ => c.is_ascii_digit(),
        }) && !matches!(stamp.get(5), Some('+' | '-' | ':')),
        "{rest:?}"
    );

    // A status line too, dim when in colour; and from the environment.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let script = format!("CHAT_TIMESTAMPS=1 {CLIENT} --connect {addr}; {REPORT}");
    let mut session = in_terminal(&script, true);
    let (server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(PATIENCE)).unwrap();
    session
        .expect(Regex(
            r"\x1b\[2m[0-2][0-9]:[0-5][0-9]\x1b\[0m (\x1b\[[0-9;]*m)+-- connected to",
        ))
        .unwrap();
    session.expect("> ").unwrap();
    session.send("q\r").unwrap();
    finish(server);
    expect_exit_and_sane_terminal(&mut session, 0);
}

/// A room member named `name` in a terminal, in colour, with `flags`.
fn member_in_terminal(room: &support::Server, name: &str, flags: &str) -> Pty {
    let addr = room.addr;
    let script = format!("{CLIENT} --connect {addr} --name {name} {flags}; {REPORT}");
    let mut session = in_terminal(&script, true);
    session
        .expect(format!("you joined as {name};").as_str())
        .unwrap();
    session
}

#[test]
fn a_message_that_names_you_is_highlighted_and_rings_the_bell() {
    let mut room = start_room(&[]);
    let mut alice = member_in_terminal(&room, "alice", "");
    let mut bob = room.join_room("bob");
    bob.say("hi ALICE, look");
    // Bold and reversed, after bob's coloured name; then the bell.
    alice
        .expect(Regex(
            r"bob:\x1b\[0m \x1b\[1m\x1b\[7mhi ALICE, look\x1b\[0m",
        ))
        .unwrap();
    alice.expect("\x07").unwrap();
    // Not for a message that does not name alice (malice is not alice).
    bob.say("malice aforethought");
    let seen = alice.expect("malice aforethought").unwrap();
    let rest = no_bell_to_the_end(&mut alice, &mut bob, seen.before().to_vec());
    assert!(!rest.contains('\x07'), "{rest:?}");
    room.expect_status("alice left");
}

/// Has `bob` say "the end" and checks that `alice` rang no bell from
/// `between` (what she showed since the last ring) to it; then she quits,
/// cleanly, and what she showed last is returned.
fn no_bell_to_the_end(alice: &mut Pty, bob: &mut support::Program, mut between: Vec<u8>) -> String {
    bob.say("the end");
    let seen = alice.expect("the end").unwrap();
    between.extend_from_slice(seen.before());
    assert!(
        !between.contains(&7),
        "{:?}",
        String::from_utf8_lossy(&between)
    );
    alice.send("q\r").unwrap();
    let rest = rest_until_exit(alice);
    assert!(rest.contains("EXIT=0"), "{rest:?}");
    rest
}

#[test]
fn a_private_message_received_is_highlighted_and_rings_the_bell_and_one_sent_does_not() {
    let room = start_room(&[]);
    let mut alice = member_in_terminal(&room, "alice", "");
    let mut bob = room.join_room("bob");
    bob.say("/msg alice psst");
    alice
        .expect(Regex(
            r"bob\x1b\[0m \u{2192} you: \x1b\[1m\x1b\[7mpsst\x1b\[0m",
        ))
        .unwrap();
    alice.expect("\x07").unwrap();
    // Its own, as the room confirms it: no bell.
    alice.send("/msg bob back\r").unwrap();
    let seen = alice.expect(Regex(r"you \u{2192} \S*bob\S*: ")).unwrap();
    let between = seen.before().to_vec();
    bob.expect_message("you \u{2192} alice: psst");
    bob.expect_message("alice \u{2192} you: back");
    no_bell_to_the_end(&mut alice, &mut bob, between);
}

#[test]
fn with_bell_off_a_mention_is_highlighted_without_the_bell() {
    let room = start_room(&[]);
    let mut carol = member_in_terminal(&room, "carol", "--bell off");
    let mut bob = room.join_room("bob");
    bob.say("carol: quiet please");
    let seen = carol
        .expect(Regex(r"\x1b\[1m\x1b\[7mcarol: quiet please"))
        .unwrap();
    let mut everything = seen.before().to_vec();
    bob.say("the end");
    let seen = carol.expect("the end").unwrap();
    everything.extend_from_slice(seen.before());
    carol.send("q\r").unwrap();
    everything.extend_from_slice(rest_until_exit(&mut carol).as_bytes());
    assert!(
        !everything.contains(&7),
        "{:?}",
        String::from_utf8_lossy(&everything)
    );
}

#[test]
fn color_never_at_a_terminal_writes_no_colour_at_all() {
    let (mut session, mut server) = client_in_terminal_with(true, "--color never --timestamps");
    server.write_all(&frame(b"uncoloured")).unwrap();
    let seen = session.expect("uncoloured").unwrap();
    let mut everything = seen.before().to_vec();
    enter(&mut session, &mut server, "typed", "typed");
    session.send("q\r").unwrap();
    finish(server);
    everything.extend_from_slice(rest_until_exit(&mut session).as_bytes());
    let shown = String::from_utf8_lossy(&everything);
    // Select Graphic Rendition: `ESC [ … m`. (Cursor movements stay.)
    let sgr = regex_lite_sgr(&shown);
    assert!(sgr.is_none(), "colour at {sgr:?} in {shown:?}");
    assert!(shown.contains("EXIT=0"), "{shown:?}");
}

/// Where the first SGR sequence (`ESC [` digits and `;` then `m`) is.
fn regex_lite_sgr(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find(|&at| {
        bytes[at..].starts_with(b"\x1b[") && {
            let rest = &bytes[at + 2..];
            let params = rest
                .iter()
                .take_while(|b| b.is_ascii_digit() || **b == b';')
                .count();
            rest.get(params) == Some(&b'm')
        }
    })
}

#[test]
fn with_timestamps_history_shows_the_time_it_was_said_and_its_mark() {
    let mut room = start_room(&[]);
    let mut bob = room.join_room("bob");
    room.say("said before alice came");
    bob.expect_message("server: said before alice came");
    let addr = room.addr;
    let script = format!("{CLIENT} --connect {addr} --name alice --timestamps; {REPORT}");
    let mut alice = in_terminal(&script, false);
    alice
        .expect(Regex(
            r"[0-2][0-9]:[0-5][0-9] \(earlier\) server: said before alice came",
        ))
        .unwrap();
    alice
        .expect(Regex(r"[0-2][0-9]:[0-5][0-9] -- you joined as alice;"))
        .unwrap();
    alice.send("q\r").unwrap();
    expect_exit_and_sane_terminal(&mut alice, 0);
}

/// At a terminal, `q` while the server is away waits for it to come back
/// and take the lines; `q` again gives up, and says what was not
/// delivered (a user trial found the second `q` refused as a line of a
/// conversation that was ending, and the client reconnecting on).
#[test]
fn a_second_q_while_the_server_is_away_gives_up_waiting() {
    use support::relay::Relay;
    let mut server = support::Server::start(&["--once", "--dead-after", "3"]);
    let relay = Relay::start(server.addr);
    let script = format!(
        "{CLIENT} --connect {} --dead-after 3; {REPORT}",
        relay.address()
    );
    let mut session = in_terminal(&script, false);
    session.expect("> ").unwrap();
    server.expect_status("connected");
    session.send("hello\r").unwrap();
    server.expect_message("hello");
    relay.settle(std::time::Duration::from_millis(300));
    relay.down();
    session.send("into the dead path\r").unwrap();
    session.expect("reconnecting for up to 300 s").unwrap();
    session.send("q\r").unwrap();
    session.expect("q again or Ctrl-C to give up").unwrap();
    session.send("q\r").unwrap();
    session
        .expect(
            "gave up waiting for the server to come back; 1 line not delivered: \"into the dead path\"",
        )
        .unwrap();
    expect_exit_and_sane_terminal(&mut session, 1);
}
