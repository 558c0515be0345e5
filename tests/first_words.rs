//! `--speak-within`: connections that hold a place (in the waiting line,
//! or a seat in a room) and send nothing are let go, told why, and the
//! place is free again; real clients, quiet or not, and the conversation
//! being served, are never cut for their silence.
//!
//! The servers here run with `--speak-within 1` or `2`: every test waits for
//! what the server says or sends, never for an amount of time, so a loaded
//! machine only makes them slower.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use support::{Program, SERVER, Server, frame, read_frame, read_text, start_room};

/// The server's line for a client let go from the waiting line.
fn let_go_from_line(peer: &TcpStream) -> String {
    format!(
        "{} let go: it sent nothing within 1 s of taking its place in line",
        peer.local_addr().unwrap()
    )
}

/// A plain connection that sends nothing in the waiting line is let go
/// once its time is up: told why in one frame, then its stream ends; the
/// operator is told; the place is free for the next, and the line moves.
#[test]
fn an_idle_connection_in_line_is_let_go_told_why_and_its_place_given_to_the_next() {
    let mut server = Server::start(&["--speak-within", "1", "--max-waiting", "1"]);
    let mut first = server.admit_client();

    let mut idle = server.raw();
    assert!(read_text(&mut idle).contains("number 1 in line"));
    let notice = read_text(&mut idle);
    assert_eq!(
        notice,
        "-- refused: your place in line was given up: you sent nothing within 1 s of taking it \
         (a client keeps its place by sending something, a line or an empty frame)"
    );
    assert_eq!(read_frame(&mut idle), None, "then its stream ends");
    server.expect_status(&let_go_from_line(&idle));

    // Its place is free: the next one waits where it waited.
    let mut next = server.raw();
    assert!(read_text(&mut next).contains("number 1 in line"));
    next.write_all(&frame(b"here")).unwrap();
    first.say("q");
    assert_eq!(first.wait().code(), Some(0));
    server.expect_message("here");
    assert!(read_text(&mut next).contains("your turn"));
}

/// Half a frame is not a frame: a peer that trickles two bytes of a header
/// holds no place for longer than one that sends nothing.
#[test]
fn part_of_a_header_does_not_keep_a_place() {
    let mut server = Server::start(&["--speak-within", "1"]);
    let _first = server.admit_client();
    let mut trickler = server.raw();
    trickler.write_all(&[0, 0]).unwrap();
    assert!(read_text(&mut trickler).contains("number 1 in line"));
    assert!(read_text(&mut trickler).contains("your place in line was given up"));
    server.expect_status(&let_go_from_line(&trickler));
}

/// What keeps a place: one whole frame of any kind. A version 1 script
/// that sends one keepalive (an empty frame) and then only reads, and our
/// own client whose user types nothing (its offer, and its `HELLO` to a
/// server that speaks version 2), are still in line long after an idle
/// connection that came after them was let go, and are served in turn.
#[test]
fn a_keepalive_or_our_quiet_client_keeps_its_place_past_the_deadline() {
    for protocol in ["2", "1"] {
        let mut server = Server::start(&["--speak-within", "1", "--protocol", protocol]);
        let mut first = server.admit_client();

        let mut keeper = server.raw();
        keeper.write_all(&frame(b"")).unwrap();
        assert!(read_text(&mut keeper).contains("number 1 in line"));
        let mut quiet = server.connect_client(&[]);
        quiet.expect_status("number 2 in line");
        // Came after both, and sends nothing: its deadline is after theirs.
        let mut idle = server.raw();
        assert!(read_text(&mut idle).contains("number 3 in line"));
        server.expect_status(&let_go_from_line(&idle));
        assert!(
            server
                .said("let go")
                .is_none_or(|l| l == let_go_from_line(&idle)),
            "--protocol {protocol}: only the idle one was let go: {:?}",
            server.drain_stderr()
        );

        first.say("q");
        assert_eq!(first.wait().code(), Some(0));
        assert!(read_text(&mut keeper).contains("your turn"));
        quiet.expect_status("now number 1 in line");
        server.say("hello, keeper");
        assert_eq!(read_text(&mut keeper), "hello, keeper");
        drop(keeper);
        server.expect_status("left");
        quiet.expect_status("your turn");
        server.say("hello, quiet one");
        quiet.expect_message("hello, quiet one");
        quiet.say("hi");
        server.expect_message("hi");
    }
}

/// The conversation being served is the operator's: a version 1 peer that
/// is served and says nothing is never cut for it, long after a peer in
/// line that said nothing was let go.
#[test]
fn a_quiet_peer_being_served_is_never_cut() {
    let mut server = Server::start(&["--speak-within", "1"]);
    let mut served = server.raw();
    server.expect_status("connected");
    let mut idle = server.raw();
    assert!(read_text(&mut idle).contains("number 1 in line"));
    server.expect_status(&let_go_from_line(&idle));
    // And a second deadline over, for good measure.
    let mut idle = server.raw();
    assert!(read_text(&mut idle).contains("number 1 in line"));
    server.expect_status("sent nothing within 1 s");
    server.say("still there?");
    assert_eq!(read_text(&mut served), "still there?");
    served.write_all(&frame(b"yes")).unwrap();
    server.expect_message("yes");
}

/// A peer that offers version 2 and then says nothing counts as having
/// spoken, but holds its place only until `--dead-after`: from its offer
/// on, it is judged by its heartbeats, and it sends none.
#[test]
fn an_offer_followed_by_silence_holds_a_place_only_until_dead_after() {
    let mut server = Server::start(&["--speak-within", "1", "--dead-after", "3"]);
    let _first = server.admit_client();
    let mut offer = server.raw();
    offer.write_all(&[0; 32]).unwrap();
    server.expect_status("is waiting (number 1 in line)");
    server.expect_status("left the line (connection lost: nothing came back for 3 s)");
    assert!(
        server.said("let go").is_none(),
        "left for its silence after the offer, not let go for saying nothing: {:?}",
        server.drain_stderr()
    );
}

/// In a room: a member that sends nothing is let go once its time is up,
/// told why, the room sees it leave (it had been announced) and its seat
/// is free for the next.
#[test]
fn an_idle_member_is_let_go_told_why_and_its_seat_given_to_the_next() {
    let mut server = start_room(&["--speak-within", "2", "--max-clients", "2"]);
    let mut alice = server.join_room("alice");
    let mut idle = server.raw_member();
    let peer = idle.stream.local_addr().unwrap();
    let before = idle.expect_text(
        "-- you sent nothing within 2 s of joining, so your place in the room was given up \
         (a member that only reads keeps it by sending an empty frame first)",
    );
    assert!(before.iter().all(|t| !t.contains("given up")), "{before:?}");
    assert_eq!(read_frame(&mut idle.stream), None, "then its stream ends");
    // Announced after a second under a guest name, it leaves under it.
    let joined = alice.expect_status("joined");
    let guest = joined
        .trim_start_matches("-- ")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    alice.expect_status(&format!(
        "{guest} left (sent nothing within 2 s of joining)"
    ));
    server.expect_status(&format!(
        "{peer} let go: it sent nothing within 2 s of joining"
    ));
    // The room was full; now bob has the seat.
    let mut bob = server.join_room("bob");
    alice.expect_status("bob joined");
    bob.say("hi");
    alice.expect_message("bob: hi");
}

/// In a room, an empty frame keeps a member that only reads, and our
/// client whose user types nothing stays too.
#[test]
fn a_reading_member_that_sent_a_keepalive_and_our_quiet_client_stay() {
    let mut server = start_room(&["--speak-within", "1"]);
    let mut reader = server.raw_member();
    reader.stream.write_all(&frame(b"")).unwrap();
    let mut quiet = server.join_room("quiet");
    // An idle one that came after both is let go: their deadlines passed.
    let idle = server.raw_member();
    server.expect_status(&format!(
        "{} let go: it sent nothing within 1 s of joining",
        idle.stream.local_addr().unwrap()
    ));
    server.say("still here?");
    reader.expect_text("server: still here?");
    quiet.expect_message("server: still here?");
}

/// Many idle connections let go at once are one line, then one a second
/// with a count, on the operator's screen; not one line each.
#[test]
fn many_let_go_at_once_are_reported_once_a_second_with_a_count() {
    let mut server = start_room(&["--speak-within", "1"]);
    let idle: Vec<TcpStream> = (0..30).map(|_| server.raw()).collect();
    let first = server.expect_status("let go: it sent nothing within 1 s of joining");
    let grouped = server.expect_status("clients let go for sending nothing since the last report");
    let count: usize = grouped
        .split_whitespace()
        .find_map(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("{grouped:?}"));
    let lines = server
        .drain_stderr()
        .iter()
        .filter(|l| l.contains("sent nothing"))
        .count();
    assert!(
        count >= 2 && lines < 30,
        "{first:?}, then {grouped:?}; {lines} lines in all"
    );
    drop(idle);
}

#[test]
fn the_deadline_is_whole_seconds_up_to_an_hour_or_0_for_never() {
    for bad in ["-1", "1.5", "3601", "soon"] {
        let mut server = Program::spawn(SERVER, &["--speak-within", bad]);
        assert_eq!(server.wait().code(), Some(2), "{bad}");
    }
    // 0: never. An idle connection in line is still there when the
    // keepalive sent to the line every 5 s comes, and is served in turn.
    let mut server = Server::start(&["--speak-within", "0"]);
    let mut first = server.admit_client();
    let mut idle = server.raw();
    assert!(read_text(&mut idle).contains("number 1 in line"));
    let mut keepalive = [1; 4];
    idle.read_exact(&mut keepalive).unwrap();
    assert_eq!(keepalive, [0; 4]);
    first.say("q");
    assert_eq!(first.wait().code(), Some(0));
    assert!(read_text(&mut idle).contains("your turn"));
    assert!(server.said("let go").is_none());
}

/// A stream of newcomers to a full line, or a full room, is one line at
/// once and then one a second with a count on the operator's screen, not
/// one line each.
#[test]
fn newcomers_turned_away_from_a_full_line_or_room_are_reported_once_a_second() {
    for room in [false, true] {
        let mut server = match room {
            false => Server::start(&["--max-waiting", "1", "--speak-within", "0"]),
            true => start_room(&["--max-clients", "1", "--speak-within", "0"]),
        };
        let mut first = server.raw();
        first.write_all(&frame(b"here")).unwrap();
        if !room {
            // Served once its first bytes are read, which may come after a
            // later connection's (a new connection's first bytes decide
            // whether it resumes a session): the second connects after,
            // or it may be the one served (1 CI run in many: the second
            // then waited 60 s for a place in line it never took).
            server.expect_status(" connected");
            let mut second = server.raw();
            second.write_all(&frame(b"")).unwrap();
            assert!(read_text(&mut second).contains("number 1 in line"));
        }
        let turned: Vec<TcpStream> = (0..30).map(|_| server.raw()).collect();
        let first_report = server.expect_status("turned away: the");
        let grouped = server.expect_status("clients turned away since the last report; the last: ");
        let lines = server
            .drain_stderr()
            .iter()
            .filter(|l| l.contains("turned away"))
            .count();
        assert!(
            lines < 30,
            "room: {room}: {first_report:?}, {grouped:?}; {lines} lines"
        );
        drop(turned);
    }
}
