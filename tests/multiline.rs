//! Messages of several lines (issue 20, item 1) between the real programs
//! and peers written by hand: one message whole between peers that said in
//! their `HELLO` they take them, a line each to a version 1 peer, and one
//! line of piped output with its breaks as U+2028. (Typing and pasting them
//! at a terminal: `terminal.rs`.)

mod support;

use std::io::Write;
use std::net::{Shutdown, TcpStream};

use support::{
    OFFER, Program, RawMember, Server, frame, hello_frame, next_control, read_data, start_room,
};

/// How piped output writes a line break inside a message.
const BREAK: char = '\u{2028}';

/// What a `HELLO` payload says its sender takes (0 if it says nothing).
fn takes(hello: &[u8]) -> u32 {
    assert_eq!(hello[0], b'H', "a HELLO: {hello:?}");
    hello
        .get(46..50)
        .map_or(0, |b| u32::from_be_bytes(b.try_into().unwrap()))
}

/// Reads frames until one that starts with `start`, returning it.
fn data_starting(stream: &mut TcpStream, start: &str) -> String {
    loop {
        let text = read_data(stream).expect("a frame, not the end");
        if text.starts_with(start) {
            return text;
        }
    }
}

/// A room member that speaks version 2 by hand and says it takes messages
/// of several lines, named `name`.
fn member_taking_breaks(server: &Server, name: &str) -> TcpStream {
    let mut stream = server.raw();
    stream.write_all(&OFFER).unwrap();
    // The greeting, then the room's offer and its `HELLO`.
    let hello = next_control(&mut stream);
    assert_eq!(takes(&hello) & 1, 1, "the room takes them");
    stream
        .write_all(&hello_frame([0; 16], [0; 16], 0, 1))
        .unwrap();
    stream
        .write_all(&frame(format!("/nick {name}").as_bytes()))
        .unwrap();
    data_starting(&mut stream, &format!("-- you joined as {name}"));
    stream
}

/// A plain (version 1) member named `name`.
fn plain_member(server: &Server, name: &str) -> RawMember {
    let mut member = server.speaking_raw_member();
    member.send(&format!("/nick {name}"));
    loop {
        if member
            .next_text()
            .starts_with(&format!("-- you joined as {name}"))
        {
            return member;
        }
    }
}

#[test]
fn a_room_relays_a_message_of_several_lines_whole_or_a_line_each() {
    let mut server = start_room(&[]);
    let mut bob = server.join_room("bob");
    let mut carol = plain_member(&server, "carol");
    let mut alice = member_taking_breaks(&server, "alice");
    server.expect_status("alice joined");
    alice
        .write_all(&frame(b"before"))
        .and_then(|()| alice.write_all(&frame(b"one\ntwo\n\nthree \x1b[2J")))
        .and_then(|()| alice.write_all(&frame(b"after")))
        .unwrap();
    // Our client: one message, one line of piped output, its breaks marked;
    // the rest of it made safe as ever.
    let whole = format!("alice: one{BREAK}two{BREAK}{BREAK}three \\x1b[2J");
    for program in [&mut bob as &mut Program, &mut server] {
        program.expect_message_eventually("alice: before");
        program.expect_message(&whole);
        program.expect_message("alice: after");
    }
    // A plain peer: a line each, each under alice's name, in order; the
    // empty line left out.
    let said: Vec<String> = carol.expect_text("alice: after");
    let said: Vec<&String> = said.iter().filter(|l| !l.starts_with("-- ")).collect();
    assert_eq!(
        said,
        [
            "alice: before",
            "alice: one",
            "alice: two",
            "alice: three \\x1b[2J"
        ]
    );
    // A private message of several lines too, to the plain peer.
    alice.write_all(&frame(b"/msg carol psst\nsecret")).unwrap();
    assert_eq!(
        data_starting(&mut alice, "you \u{2192} carol"),
        "you \u{2192} carol: psst\nsecret"
    );
    assert_eq!(carol.next_text(), "alice \u{2192} you: psst");
    assert_eq!(carol.next_text(), "alice \u{2192} you: secret");
    // A plain peer's line end is text: escaped for everyone.
    carol.send("x\ny");
    bob.expect_message("carol: x\\ny");
    assert_eq!(data_starting(&mut alice, "carol: "), "carol: x\\ny");
}

#[test]
fn a_newcomer_is_shown_an_earlier_message_of_several_lines_whole_or_a_line_each() {
    let mut server = start_room(&[]);
    let mut alice = member_taking_breaks(&server, "alice");
    server.expect_status("alice joined");
    alice
        .write_all(&frame(b"one\ntwo"))
        .and_then(|()| alice.write_all(&frame(b"after")))
        .unwrap();
    server.expect_message_eventually("alice: after");
    // Our client: one earlier message, with its breaks marked (shown
    // before it is told it joined).
    let mut bob = server.join_room("bob");
    let earlier: Vec<String> = bob
        .drain_stderr()
        .into_iter()
        .filter(|l| l.contains("earlier: "))
        .collect();
    assert_eq!(
        earlier,
        [
            format!("-- earlier: alice: one{BREAK}two"),
            "-- earlier: alice: after".to_string()
        ]
    );
    // One whose input ends at once: its `/nick` may come before its
    // `HELLO` (the room's greeting comes before the room's offer); its
    // announcement waits for the `HELLO`, so it too is shown it whole.
    for _ in 0..3 {
        let mut dave = server.connect_client(&["--name", "dave"]);
        dave.say("hi");
        dave.close_stdin();
        let first = dave.expect_status("-- earlier: alice: ");
        assert_eq!(first, format!("-- earlier: alice: one{BREAK}two"));
        // Its input ended: it leaves once its line is taken.
        assert_eq!(dave.wait().code(), Some(0));
        server.expect_status("dave left");
    }
    // A plain peer: a line each, under alice's name.
    let mut carol = server.speaking_raw_member();
    carol.send("/nick carol");
    let mut shown = Vec::new();
    loop {
        let text = carol.next_text();
        if text.starts_with("-- you joined as carol;") {
            break;
        }
        shown.push(text);
    }
    let earlier: Vec<&String> = shown.iter().filter(|l| l.contains("earlier: ")).collect();
    assert_eq!(
        earlier,
        [
            "-- earlier: alice: one",
            "-- earlier: alice: two",
            "-- earlier: alice: after",
            "-- earlier: dave: hi",
            "-- earlier: dave: hi",
            "-- earlier: dave: hi"
        ]
    );
}

#[test]
fn a_client_shows_a_message_of_several_lines_as_one_line_of_piped_output() {
    let (mut client, mut server) = support::client_of_a_hand_made_server(1);
    let hello = next_control(&mut server);
    assert_eq!(takes(&hello) & 1, 1, "the client takes them");
    server.write_all(&frame(b"first\nsecond\\n")).unwrap();
    server.write_all(&frame(b"plain")).unwrap();
    client.expect_message(&format!("first{BREAK}second\\n"));
    client.expect_message("plain");
    server.shutdown(Shutdown::Write).unwrap();
    client.expect_status("ended the conversation");
    assert_eq!(client.wait().code(), Some(0));
}

#[test]
fn a_server_shows_a_message_of_several_lines_from_a_client_that_sends_them() {
    let mut server = Server::start(&["--once"]);
    let mut client = server.raw();
    client.write_all(&OFFER).unwrap();
    let hello = next_control(&mut client);
    assert_eq!(takes(&hello) & 1, 1, "the server takes them");
    client
        .write_all(&hello_frame([0; 16], [0; 16], 0, 1))
        .unwrap();
    client.write_all(&frame("一\n二\r三".as_bytes())).unwrap();
    server.expect_message(&format!("一{BREAK}二\\r三"));
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_data(&mut client), None);
    assert_eq!(server.wait().code(), Some(0));
}

/// A version 2 peer says in its `HELLO` the largest message it takes: a
/// longer one (a big paste, a long piped line) is refused where it is
/// typed, and the conversation goes on (it ended as the receiver's
/// protocol error, the operator told only that the client left).
#[test]
fn a_message_over_the_peers_maximum_is_refused_where_it_is_typed() {
    let mut server = Server::start(&["--once"]);
    let mut client = server.connect_client(&["--max-message-size", "1000"]);
    server.expect_status("connected");
    // A round trip: the client's `HELLO` came before its answer.
    server.say("ping");
    client.expect_message("ping");
    client.say("pong");
    server.expect_message("pong");
    server.say(&"x".repeat(2000));
    let said = server.expect_status("not sent");
    assert!(said.contains("over the maximum of 1000"), "{said}");
    server.say("short");
    client.expect_message("short");
    client.say("q");
    assert_eq!(client.wait().code(), Some(0), "{:?}", client.drain_stderr());
}
