//! The timeouts of both programs, run in-process on a manual clock: a silence of
//! ten minutes, the stall rule, the idle timeout and the close limit take
//! a call each, not real seconds. The peers are raw protocol sockets; what
//! only a real process shows (signals, terminals, exit codes) is tested on
//! the binaries elsewhere.

mod support;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use chat::Exit;
use chat::server::Mode;
use support::inproc::{
    Budget, Client, Running, Wire, client_config, conversations, no_errors, talking_once,
};
use support::{PATIENCE, frame, read_frame, read_text};

const TENTH: Duration = Duration::from_millis(100);
const TEN_MINUTES: Duration = Duration::from_secs(600);

fn server() -> Running {
    Running::start(Mode::Conversations(conversations()))
}

fn server_with_idle_timeout(secs: u64) -> Running {
    let mut config = conversations();
    config.idle_timeout = Some(Duration::from_secs(secs));
    Running::start(Mode::Conversations(config))
}

/// Without an idle timeout, a conversation silent for ten minutes goes on
/// both ways, and so does a client waiting in line meanwhile that said it
/// is there (one keepalive: see the next test for one that did not): no
/// timeout the server runs is taken for the peer's silence.
#[test]
fn ten_silent_minutes_end_nothing() {
    let mut server = server();
    let mut talking = server.raw();
    talking.write_all(&frame(b"before the pause")).unwrap();
    server.expect_message("before the pause");
    let mut waiting = server.raw();
    waiting.write_all(&frame(b"")).unwrap();
    server.expect_status("is waiting (number 1 in line)");
    // The notice that it waits comes on the server's clock.
    server.pass(Duration::from_secs(1));
    assert!(read_text(&mut waiting).starts_with("server is busy; you are number 1 in line"));

    server.pass(TEN_MINUTES);
    talking.write_all(&frame(b"after the pause")).unwrap();
    server.expect_message("after the pause");
    server.say("still here");
    assert_eq!(read_text(&mut talking), "still here");

    // The one waiting is served next, with what it said while waiting.
    waiting.write_all(&frame(b"said while waiting")).unwrap();
    talking.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_frame(&mut talking), None);
    server.expect_status(" left");
    assert_eq!(
        read_text(&mut waiting),
        "your turn: you are now talking with the server"
    );
    server.expect_message("said while waiting");
    let no_errors = server.drain_stderr();
    assert!(
        !no_errors.iter().any(|l| l.starts_with("error")),
        "{no_errors:?}"
    );
}

/// A client in line that has sent nothing at all (not one whole frame) is
/// let go exactly `--speak-within` (10 s) after it took its place, not a
/// tenth of a second before, and told why; the one being served, as
/// silent, is not, for ten minutes.
#[test]
fn a_client_in_line_that_sends_nothing_is_let_go_at_its_deadline_and_not_before() {
    let mut server = server();
    let mut talking = server.raw();
    server.expect_status("connected");
    let mut waiting = server.raw();
    server.expect_status("is waiting (number 1 in line)");
    server.pass(Duration::from_secs(1));
    assert!(read_text(&mut waiting).starts_with("server is busy; you are number 1 in line"));
    server.pass(Duration::from_secs(9) - TENTH);
    assert!(
        server.said("let go").is_none(),
        "{:?}",
        server.drain_stderr()
    );
    server.pass(TENTH);
    server.expect_status("let go: it sent nothing within 10 s of taking its place in line");
    assert!(read_text(&mut waiting).starts_with("-- refused: your place in line was given up"));
    assert_eq!(read_frame(&mut waiting), None);

    server.pass(TEN_MINUTES);
    server.say("still here");
    assert_eq!(read_text(&mut talking), "still here");
}

/// A full line makes room for a newcomer: the client that has waited
/// longest without sending anything gives up its place, once it has held
/// it for half of `--speak-within` (5 s), not a tenth of a second before;
/// one that sent a keepalive never does. The newcomers come from another
/// network than those in line (127.0.2.0/24): one from the silent
/// client's own would not be given its place (see the next tests).
#[test]
fn a_full_line_gives_the_place_of_the_oldest_silent_client_to_a_newcomer() {
    let mut config = conversations();
    config.max_waiting = 2;
    let mut server = Running::start(Mode::Conversations(config));
    let _talking = server.raw();
    server.expect_status("connected");
    let mut keeper = server.raw();
    keeper.write_all(&frame(b"")).unwrap();
    server.expect_status("is waiting (number 1 in line)");
    let mut silent = server.raw();
    server.expect_status("is waiting (number 2 in line)");
    server.pass(Duration::from_secs(5) - TENTH);
    let mut early = server.raw_from("127.0.2.1");
    assert!(read_text(&mut early).starts_with("-- refused: server is full"));
    server.expect_status("turned away: the line is full (2 waiting)");
    server.pass(TENTH);
    let mut newcomer = server.raw_from("127.0.2.2");
    server.expect_status(
        "let go: it sent nothing within 5 s of taking its place in line, and a newcomer needed it",
    );
    server.expect_status("is waiting (number 2 in line)");
    server.pass(Duration::from_secs(1));
    assert!(read_text(&mut newcomer).contains("number 2 in line"));
    assert!(read_text(&mut silent).contains("number 2 in line"));
    assert!(
        read_text(&mut silent).starts_with(
            "-- refused: your place in line was given up: you sent nothing within 5 s of taking it, and a newcomer needed it"
        )
    );
    assert!(read_text(&mut keeper).contains("number 1 in line"));
}

/// The same in a room: a newcomer to a full room takes the seat of the
/// member that has held it longest without a word, once it has held it
/// for half of `--speak-within`; the room sees that member leave. The
/// newcomers come from another network, as above.
#[test]
fn a_full_room_gives_the_seat_of_the_oldest_silent_member_to_a_newcomer() {
    let mut server = Running::start(Mode::Room(support::inproc::room(2)));
    let mut alice = server.raw();
    alice.write_all(&frame(b"/nick alice")).unwrap();
    server.expect_status("alice joined");
    let mut silent = server.raw();
    // In the room once greeted; announced a second later, under a guest name.
    assert!(read_text(&mut silent).ends_with("[room protocol 2]"));
    server.pass(Duration::from_secs(1));
    server.expect_status("guest-2 joined");
    server.pass(Duration::from_secs(4) - TENTH);
    let mut early = server.raw_from("127.0.2.1");
    assert!(read_text(&mut early).contains("the room is full"));
    server.pass(TENTH);
    let mut newcomer = server.raw_from("127.0.2.2");
    server.expect_status(
        "let go: it sent nothing within 5 s of joining, and a newcomer needed the seat",
    );
    assert!(read_text(&mut newcomer).ends_with("[room protocol 2]"));
    let mut told = String::new();
    while !told.contains("given up") {
        told = read_text(&mut silent);
    }
    assert_eq!(
        told,
        "-- you sent nothing within 5 s of joining, and a newcomer needed the seat, so your place in the room was given up (a member that only reads keeps it by sending an empty frame first)"
    );
    let mut left = String::new();
    while !left.contains("left") {
        left = read_text(&mut alice);
    }
    assert!(
        left.ends_with(
            " left (sent nothing within 5 s of joining, and a newcomer needed the seat)"
        ),
        "{left}"
    );
}

/// One network (127.1.0.0/24, five addresses) fills the line with
/// connections that say nothing, and opens more: its own newcomers are
/// turned away (they would only push out its own, and it waits on their
/// words), but a newcomer from another network gets a place at once,
/// however young the silent ones are, for one of them. It keeps it once it
/// has spoken. Before networks were counted, a stream of such connections
/// kept every place.
#[test]
fn a_network_filling_the_line_with_silence_gives_a_place_at_once_to_another() {
    let mut server = Running::start(Mode::Conversations(conversations()));
    let mut talking = server.raw();
    talking.write_all(&frame(b"here")).unwrap();
    server.expect_message("here");
    let mut silent: Vec<TcpStream> = (1..=5)
        .map(|n| {
            let stream = server.raw_from(&format!("127.1.0.{n}"));
            server.expect_status(&format!("is waiting (number {n} in line)"));
            stream
        })
        .collect();
    let mut more = server.raw_from("127.1.0.6");
    assert!(read_text(&mut more).starts_with("-- refused: server is full"));
    server.expect_status("turned away: the line is full (5 waiting)");

    let mut real = server.raw_from("127.0.0.1");
    server.expect_status(&format!(
        "{} let go: it had sent nothing yet, and its network 127.1.0.0/24 held 5 of the places in line without a word: a newcomer from another network needed one",
        silent[0].local_addr().unwrap()
    ));
    server.expect_status(&format!(
        "{} is waiting (number 5 in line)",
        real.local_addr().unwrap()
    ));
    real.write_all(&frame(b"")).unwrap();
    let mut told = String::new();
    while !told.starts_with("-- refused") {
        told = read_text(&mut silent[0]);
    }
    assert_eq!(
        told,
        "-- refused: your place in line was given up: you had sent nothing yet, and your network 127.1.0.0/24 held 5 of the places in line without a word: a newcomer from another network needed one (a client keeps its place by sending something, a line or an empty frame)"
    );
    // The real client spoke: the network's newcomers take nothing from it,
    // nor from its own silent ones.
    let mut again = server.raw_from("127.1.0.7");
    assert!(read_text(&mut again).starts_with("-- refused: server is full"));
    drop(silent);
}

/// The same in a room: one network's silent members hold every seat, and a
/// newcomer from another network takes one of them at once; the room sees
/// that member leave, and why.
#[test]
fn a_network_filling_the_room_with_silence_gives_a_seat_at_once_to_another() {
    let mut server = Running::start(Mode::Room(support::inproc::room(3)));
    let mut silent: Vec<TcpStream> = (1..=3)
        .map(|n| {
            let mut stream = server.raw_from(&format!("127.1.0.{n}"));
            assert!(read_text(&mut stream).ends_with("[room protocol 2]"));
            stream
        })
        .collect();
    let mut more = server.raw_from("127.1.0.4");
    assert!(read_text(&mut more).contains("the room is full"));

    let mut alice = server.raw_from("127.0.0.1");
    alice.write_all(&frame(b"/nick alice")).unwrap();
    server.expect_status(&format!(
        "{} let go: it had sent nothing yet, and its network 127.1.0.0/24 held 3 of the room's seats without a word: a newcomer from another network needed one",
        silent[0].local_addr().unwrap()
    ));
    server.expect_status("alice joined");
    let mut told = String::new();
    while !told.contains("given up") {
        told = read_text(&mut silent[0]);
    }
    assert_eq!(
        told,
        "-- you had sent nothing yet, and your network 127.1.0.0/24 held 3 of the room's seats without a word: a newcomer from another network needed one, so your place in the room was given up (a member that only reads keeps it by sending an empty frame first)"
    );
    // Alice spoke; the network's next newcomer is turned away.
    let mut again = server.raw_from("127.1.0.5");
    assert!(read_text(&mut again).contains("the room is full"));
    drop(silent);
}

/// The idle timeout counts from the last traffic, which the server notes
/// within a second (its progress sample): a conversation idle for 5 s is
/// ended between 5 and 6 s after its last message, not before.
#[test]
fn the_idle_timeout_ends_a_silent_conversation_and_says_so() {
    let mut server = server_with_idle_timeout(5);
    let mut idle = server.raw();
    server.expect_status("connected");
    server.pass(Duration::from_secs(4));
    idle.write_all(&frame(b"just in time")).unwrap();
    server.expect_message("just in time");
    server.pass(Duration::from_secs(5) - TENTH);
    let mut next = server.raw();
    server.expects_before("is waiting", "no traffic");
    server.pass(Duration::from_secs(1) + TENTH);
    assert_eq!(read_frame(&mut idle), None, "the server closes");
    idle.shutdown(Shutdown::Write).unwrap();
    server.expect_status("no traffic for 5 s; conversation ended");
    next.write_all(&frame(b"still serving")).unwrap();
    server.expect_message("still serving");
}

/// A message trickling in byte by byte, and keepalives, are traffic.
#[test]
fn the_idle_timeout_counts_bytes_and_keepalives() {
    let mut server = server_with_idle_timeout(2);
    let mut raw = server.raw();
    server.expect_status("connected");
    // Three seconds of traffic that completes no message until the end,
    // then three of keepalives only.
    let message = frame(b"slowly but surely");
    for byte in &message {
        raw.write_all(&[*byte]).unwrap();
        server.pass(Duration::from_millis(150));
    }
    server.expect_message("slowly but surely");
    for _ in 0..6 {
        raw.write_all(&frame(b"")).unwrap();
        server.pass(Duration::from_millis(500));
    }
    raw.write_all(&frame(b"still here")).unwrap();
    server.expect_message("still here");
    // Then silence: the timeout ends it, and the peer, told so by the end
    // of the stream, closes too.
    server.pass(Duration::from_secs(3));
    assert_eq!(read_frame(&mut raw), None);
    raw.shutdown(Shutdown::Write).unwrap();
    server.expect_status("no traffic for 2 s; conversation ended");
}

/// A peer that sent half a frame and went silent: the operator's `q`
/// closes our side at once, and the stall rule ends the wait for the
/// peer's side ten seconds later, not a tenth before.
#[test]
fn half_a_frame_then_silence_can_be_ended_by_the_operator() {
    let mut server = server();
    let mut silent = server.raw();
    silent.write_all(&[0, 0, 0, 50, b'h']).unwrap();
    server.expect_status("connected");
    server.say("q");
    // Our side closes at once; the peer gets the end of stream.
    assert_eq!(read_frame(&mut silent), None);
    server.pass(Duration::from_secs(10) - TENTH);
    let mut next = server.raw();
    server.expects_before("is waiting", "stopped responding");
    server.pass(TENTH);
    server.expect_status("stopped responding");
    next.write_all(&frame(b"served after the silent one"))
        .unwrap();
    server.expect_message("served after the silent one");
}

/// A client that never stops sending after the operator's `q` cannot hold
/// the server: its side is given 30 s to close, then it is cut off.
#[test]
fn a_client_that_never_stops_sending_cannot_hold_the_server() {
    let mut server = server();
    let mut flood = server.raw();
    let me = flood.local_addr().unwrap().to_string();
    server.expect_status("connected");
    let batch = frame(b"more").repeat(100);
    flood.write_all(&batch).unwrap();
    server.expect_message("more");
    server.say("q");
    // Our side ends at once (the clock moves only once it has).
    assert_eq!(read_frame(&mut flood), None);
    // It sends something every second: never a stall.
    for _ in 0..29 {
        flood.write_all(&batch).unwrap();
        server.pass(Duration::from_secs(1));
    }
    let mut next = server.raw();
    server.expects_before("is waiting", "did not close its side");
    for _ in 0..2 {
        let _ = flood.write_all(&batch);
        server.pass(Duration::from_secs(1));
    }
    let line = server.expect_status("did not close its side within 30 s");
    assert!(line.contains(&me), "{line}");
    next.write_all(&frame(b"next")).unwrap();
    server.expect_message_eventually("next");
}

/// The server stops when asked, as Ctrl-C asks it, and says so.
#[test]
fn a_shutdown_request_ends_the_server_and_its_conversation() {
    let mut server = server();
    let mut talking = server.raw();
    talking.write_all(&frame(b"hello")).unwrap();
    server.expect_message("hello");
    server.shutdown.request();
    assert_eq!(read_frame(&mut talking), None);
    // The peer does not close its side: it is given half a second.
    server.pass(Duration::from_secs(1));
    server.expect_status("interrupted; closed the conversation with");
    assert_eq!(server.exit(), Exit::Interrupted);
    // Its output has ended: nothing is left running that writes.
    assert!(server.rest_of_stdout().is_empty());
}

/// A raw server for an in-process client: the listener, and the client's
/// connection once accepted.
fn raw_server() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

fn accept(listener: &TcpListener) -> TcpStream {
    let (stream, _) = listener.accept().unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// The client, silent for ten minutes with a server as silent: nothing
/// ends, and then lines go both ways.
#[test]
fn the_client_sits_through_ten_silent_minutes() {
    let (listener, addr) = raw_server();
    let mut client = Client::start(addr, client_config(), None);
    let mut server = accept(&listener);
    client.say("before the pause");
    assert_eq!(read_text(&mut server), "before the pause");
    client.pass(TEN_MINUTES);
    server.write_all(&frame(b"after the pause")).unwrap();
    client.expect_message("after the pause");
    client.say("still here");
    assert_eq!(read_text(&mut server), "still here");
    client.say("q");
    assert_eq!(read_frame(&mut server), None, "the client closes");
    drop(server);
    assert_eq!(client.exit(), Exit::Success);
    assert!(
        !client.all_stderr().iter().any(|l| l.starts_with("error")),
        "no errors"
    );
}

/// The client's idle timeout: its own words, not a stall, and a clean end.
#[test]
fn the_clients_idle_timeout_says_so() {
    let (listener, addr) = raw_server();
    let mut config = client_config();
    config.idle_timeout = Some(Duration::from_secs(2));
    let mut client = Client::start(addr, config, None);
    let mut server = accept(&listener);
    server.write_all(&frame(b"hello")).unwrap();
    client.expect_message("hello");
    client.pass(Duration::from_secs(3));
    assert_eq!(read_frame(&mut server), None, "the client closes");
    drop(server);
    client.expect_status("no traffic for 2 s; conversation ended");
    assert_eq!(client.exit(), Exit::Success);
}

/// A client whose piped input floods a server that reads nothing: one
/// line says what happened and how much was not delivered, and the status
/// is a failure.
#[test]
fn a_piped_flood_to_a_server_that_reads_nothing_is_one_clear_error() {
    let (listener, addr) = raw_server();
    let mut text = support::flood("piped", 6 << 20).join("\n");
    text.push('\n');
    let input: Box<dyn std::io::Read + Send> = Box::new(std::io::Cursor::new(text.into_bytes()));
    let mut client = Client::start(addr, client_config(), Some(input));
    let _never_reads = accept(&listener);
    // However long filling the buffers takes, ten seconds without progress
    // after it ends the conversation.
    let mut passed = 0;
    while client.said("stopped responding").is_none() {
        assert!(passed < 120, "never cut off");
        client.pass(Duration::from_secs(1));
        passed += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(client.exit(), Exit::Failure);
    let stderr = client.all_stderr();
    let errors: Vec<&String> = stderr.iter().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr:?}");
    assert!(
        errors[0].contains("stopped responding") && errors[0].contains("bytes not delivered"),
        "{stderr:?}"
    );
}

/// Each way a conversation ends, after ten minutes of silence, over plain
/// TCP and over TLS: the right words on each side, the right statuses,
/// and no error anywhere.
#[test]
fn every_ending_is_right_after_ten_silent_minutes() {
    for wire in Wire::both("endings-in-process") {
        let mut pairs: Vec<(Running, Client)> = (0..6).map(|_| talking_once(&wire)).collect();
        // Both clocks together, a second at a time, as ten real minutes
        // pass for both: each side's heartbeats keep the other from
        // taking it as lost.
        for _ in 0..TEN_MINUTES.as_secs() {
            for (server, client) in &pairs {
                server.pass(Duration::from_secs(1));
                client.pass(Duration::from_secs(1));
            }
        }
        let over = match wire {
            Wire::Plain => "plain TCP",
            Wire::Tls(_) => "TLS",
        };
        let [
            (mut server_a, mut client_a),
            (mut server_b, mut client_b),
            (mut server_c, mut client_c),
            (mut server_d, mut client_d),
            (mut server_e, mut client_e),
            (mut server_f, mut client_f),
        ] = <[(Running, Client); 6]>::try_from(std::mem::take(&mut pairs))
            .ok()
            .unwrap();

        // `q` from the client.
        client_a.say("q");
        assert_eq!(client_a.exit(), Exit::Success, "{over}");
        server_a.expect_status(" left");
        assert_eq!(server_a.exit(), Exit::Success, "{over}");
        no_errors(&mut client_a, &format!("client after q over {over}"));
        no_errors(
            &mut server_a,
            &format!("server after the client's q over {over}"),
        );

        // `q` from the server, right after its last words.
        server_b.say("last words");
        server_b.say("q");
        client_b.expect_message("last words");
        client_b.expect_status("the server ended the conversation");
        assert_eq!(client_b.exit(), Exit::Success, "{over}");
        server_b.expect_status("ended the conversation with");
        assert_eq!(server_b.exit(), Exit::Success, "{over}");
        no_errors(
            &mut client_b,
            &format!("client after the server's q over {over}"),
        );
        no_errors(&mut server_b, &format!("server after q over {over}"));

        // The client's input ends: it keeps listening until the server ends.
        client_c.say("said before the end of input");
        client_c.close_stdin();
        server_c.expect_message("said before the end of input");
        server_c.expect_status(" left");
        client_c.expect_status("input ended, and the server has closed its side too");
        assert_eq!(client_c.exit(), Exit::Success, "{over}");
        assert_eq!(server_c.exit(), Exit::Success, "{over}");
        no_errors(
            &mut client_c,
            &format!("client after its input ended over {over}"),
        );
        no_errors(
            &mut server_c,
            &format!("server after the client's input ended over {over}"),
        );

        // The operator's input ends: the conversation goes on, receive-only.
        server_d.close_stdin();
        server_d.expect_status("standard input has ended");
        client_d.say("still heard");
        server_d.expect_message("still heard");
        client_d.say("q");
        assert_eq!(client_d.exit(), Exit::Success, "{over}");
        assert_eq!(server_d.exit(), Exit::Success, "{over}");
        no_errors(
            &mut server_d,
            &format!("server after its input ended over {over}"),
        );

        // Ctrl-C on the client: 130, and the server sees a clean leave.
        client_e.shutdown.request();
        assert_eq!(client_e.exit(), Exit::Interrupted, "{over}");
        server_e.expect_status(" left");
        assert_eq!(server_e.exit(), Exit::Success, "{over}");
        no_errors(
            &mut server_e,
            &format!("server after the client's Ctrl-C over {over}"),
        );

        // Ctrl-C on the server: 130, and the client is told.
        server_f.shutdown.request();
        assert_eq!(server_f.exit(), Exit::Interrupted, "{over}");
        client_f.expect_status("the server ended the conversation");
        assert_eq!(client_f.exit(), Exit::Success, "{over}");
        no_errors(
            &mut client_f,
            &format!("client after the server's Ctrl-C over {over}"),
        );
    }
}

/// Ctrl-C while a named client's lines wait for a room's greeting (from a
/// server that never speaks), the interrupt's half-second grace running
/// out before the second the lines wait: the client closes its side
/// cleanly, not with a reset (once, the core held the socket for the
/// greeting longer than the grace).
#[test]
fn ctrl_c_while_lines_wait_for_the_greeting_closes_cleanly() {
    let (listener, addr) = raw_server();
    let mut config = client_config();
    config.name = Some("early".into());
    config.name_chosen = true;
    let mut client = Client::start(addr, config, None);
    let mut server = accept(&listener);
    client.shutdown.request();
    client.pass(Duration::from_secs(1));
    assert_eq!(read_frame(&mut server), None, "a clean end, not a reset");
    drop(server);
    assert_eq!(client.exit(), Exit::Interrupted);
}

/// A client that stops reading (a tiny receive buffer, never a read) while
/// the operator pipes eight megabytes and `q`: ten seconds without progress
/// end it with one line that counts what was not delivered, the rest of the
/// flood finds nobody to go to, and the next client is served.
#[test]
#[cfg_attr(
    windows,
    ignore = "under wine, the server's piped stdin stops being read after the cut-off; unexplained, see the README"
)]
fn a_client_that_stops_reading_never_freezes_the_operator() {
    let mut server = server();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let stalled: TcpStream = socket.into();
    server.expect_status("connected");
    let line = "y".repeat(199);
    let mut flood: String = (0..40_000).map(|_| format!("{line}\n")).collect();
    flood.push_str("q\n");
    let typing = server.type_in_background(flood.into_bytes());
    // However long filling the buffers takes, ten seconds without progress
    // after it end the conversation.
    let mut passed = 0;
    let said = loop {
        if let Some(said) = server.said("stopped responding") {
            break said;
        }
        assert!(passed < 120, "never cut off");
        server.pass(Duration::from_secs(1));
        passed += 1;
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        said.contains(&stalled.local_addr().unwrap().to_string()),
        "{said}"
    );
    let undelivered: u64 = said
        .split("; ")
        .find_map(|part| part.strip_suffix(" bytes not delivered"))
        .unwrap_or_else(|| panic!("no count of what was not delivered: {said}"))
        .parse()
        .unwrap();
    // Linux and macOS count what sits in the kernel's send queue too; on
    // Windows only what never left our own queue (at least 1 MiB here).
    let least = if cfg!(windows) { 1 << 20 } else { 4_000_000 };
    assert!(undelivered > least, "{said}");
    // The rest of the piped flood, and its `q`, find nobody to go to; only
    // then is the next client sure to get nothing of it.
    drop(typing.join().unwrap());
    support::wait_until("the flood's q finds nobody", || {
        server.said("nobody is connected; nothing to end").is_some()
    });
    server.serves_a_polite_client("next client");
}

/// The operator pipes `bytes` of lines and `q` to a client whose stdout is
/// read `rate` bytes each second (of both programs' clocks): every line
/// arrives in order, both end well, nobody reports an error.
fn operator_floods_a_slow_reader(wire: &Wire, bytes: usize, rate: usize) {
    let lines = support::flood("operator", bytes);
    let mut config = conversations();
    config.once = true;
    config.tls = wire.server();
    let mut server = Running::start(Mode::Conversations(config));
    let budget = Budget::default();
    let mut client = Client::start_reading(
        server.addr,
        client_config(),
        None,
        wire.client(),
        Some(budget.clone()),
    );
    server.expect_status("connected");
    let typing = server.type_in_background(format!("{}\nq\n", lines.join("\n")).into_bytes());
    read_slowly(&lines, &client.io.stdout, &budget, rate, || {
        server.pass(Duration::from_secs(1));
        client.pass(Duration::from_secs(1));
    });
    drop(typing.join().unwrap());
    client.expect_status("the server ended the conversation");
    assert_eq!(client.exit(), Exit::Success);
    assert_eq!(server.exit(), Exit::Success);
    no_errors(&mut server, "server after flooding a slow reader");
    no_errors(&mut client, "slow client");
}

/// A client whose stdout is read steadily but slowly (100 KB a second: its
/// queued megabyte takes ten seconds to drain) keeps reading its socket as
/// its stdout takes bytes, so the server never sees it stall: every line
/// arrives, and nobody is cut off.
#[test]
fn a_steady_reader_slower_than_its_queue_is_never_cut_off() {
    operator_floods_a_slow_reader(&Wire::Plain, 2_000_000, 100_000);
}

/// A client pipes `bytes` of lines and `q` to a server whose operator's
/// stdout is read `rate` bytes each second: every line arrives in order,
/// both end well, nobody reports an error.
fn client_floods_a_slow_reader(wire: &Wire, bytes: usize, rate: usize) {
    let lines = support::flood("client", bytes);
    let mut config = conversations();
    config.once = true;
    config.tls = wire.server();
    let budget = Budget::default();
    let mut server = Running::start_reading(Mode::Conversations(config), Some(budget.clone()));
    let mut client = Client::start_over(server.addr, client_config(), None, wire.client());
    server.expect_status("connected");
    let typing = client.type_in_background(format!("{}\nq\n", lines.join("\n")).into_bytes());
    read_slowly(&lines, &server.io.stdout, &budget, rate, || {
        server.pass(Duration::from_secs(1));
        client.pass(Duration::from_secs(1));
    });
    drop(typing.join().unwrap());
    assert_eq!(client.exit(), Exit::Success);
    assert_eq!(server.exit(), Exit::Success);
    no_errors(&mut server, "slow server");
    no_errors(&mut client, "client after flooding a slow reader");
}

/// Each side floods and quits at once, towards a peer whose stdout is read
/// at a megabyte a second: everything arrives, byte for byte, and both end
/// well; over plain TCP and over TLS.
#[test]
fn a_flood_then_q_reaches_a_slow_reader_byte_exact() {
    for wire in Wire::both("flood-in-process") {
        operator_floods_a_slow_reader(&wire, 4 << 20, 1 << 20);
        client_floods_a_slow_reader(&wire, 4 << 20, 1 << 20);
    }
}

/// A TLS handshake trickled a byte every 0.2 s is cut off when the
/// handshake's time is up, not kept as long as it keeps trickling; and no
/// address may hold more than its share of handshakes.
#[test]
fn a_trickled_handshake_is_cut_off_and_one_address_cannot_take_every_slot() {
    let wire = Wire::Tls(support::scratch("trickle-in-process"));
    let mut config = conversations();
    config.tls = wire.server();
    let mut server = Running::start(Mode::Conversations(config));
    let mut trickler = server.raw();
    // A record header that promises 512 bytes, then one byte every 0.2 s.
    trickler.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    let mut steps = 0;
    while server
        .said("TLS handshake failed: no answer in time")
        .is_none()
    {
        assert!(
            steps < 300,
            "the trickler was never cut off: {:?}",
            server.drain_stderr()
        );
        let _ = trickler.write_all(&[0x01]);
        server.pass(Duration::from_millis(200));
        steps += 1;
        // Paced, so that the server has taken the connection (nothing says
        // when it has) long before its ten seconds are up.
        std::thread::sleep(Duration::from_millis(10));
    }
    // The handshake's ten seconds, from the connection (however late the
    // server took it).
    assert!(steps >= 49, "cut off after {steps} steps of 0.2 s");
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut trickler, &mut rest);

    // Eight silent handshakes from one address: the ninth is refused at once.
    let silent: Vec<_> = (0..8).map(|_| server.raw()).collect();
    let mut ninth = server.raw();
    let _ = std::io::Read::read_to_end(&mut ninth, &mut rest);
    server.expect_status("too many clients in the TLS handshake");
    drop(silent);
}

/// Reads `lines`, checking each, from a stdout whose reader takes `rate`
/// bytes of `budget` each second, the second passing (`second`) once the
/// reader has taken its share or all there is; then lets it read freely.
fn read_slowly(
    lines: &[String],
    stdout: &std::sync::mpsc::Receiver<String>,
    budget: &Budget,
    rate: usize,
    second: impl Fn(),
) {
    let mut next = 0;
    while next < lines.len() {
        budget.grant(rate);
        for _ in 0..40 {
            let spent = budget.spent_within(Duration::from_millis(50));
            while let Ok(line) = stdout.try_recv() {
                assert_eq!(line, lines[next], "line {next}");
                next += 1;
            }
            if spent || next == lines.len() {
                break;
            }
        }
        second();
    }
    budget.grant(usize::MAX / 2);
}

/// A waiting client that sent more than the line reads ahead (its end of
/// stream then hides behind the rest) and then goes away is still seen
/// to go: the keepalive the server sends its waiting clients every 5 s
/// meets a closed socket, which resets. Nothing it sent is shown later.
#[test]
fn a_waiting_client_that_sent_much_and_went_is_seen_to_go() {
    let mut server = server();
    let mut talking = server.raw();
    server.expect_status("connected");
    let mut gone = server.raw();
    server.expect_status("is waiting (number 1 in line)");
    server.pass(Duration::from_secs(1));
    assert!(read_text(&mut gone).contains("number 1 in line"));
    for i in 0..300 {
        let line = format!("{i:04} {}", "x".repeat(1019));
        gone.write_all(&frame(line.as_bytes())).unwrap();
    }
    drop(gone);
    // At the first keepalive after it went (5 s), where the system
    // reports the reset it draws as an error at once (Linux); at the next
    // one, whose write fails, where it waits for a write (Windows).
    // The reset comes back in real time: the clock stands still past the
    // keepalive(s) while the test waits for it.
    let within = if cfg!(windows) { 11 } else { 6 };
    server.pass(Duration::from_secs(within));
    server.expect_status("left the line");
    talking.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_frame(&mut talking), None);
    server.expect_status(" left");
    let mut next = server.raw();
    next.write_all(&frame(b"the next one")).unwrap();
    // Served at once, and nothing of the gone client's shown before it.
    server.expect_message("the next one");
}
