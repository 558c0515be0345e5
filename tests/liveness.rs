//! A peer that vanishes without a word (its machine gone, the path cut: no
//! FIN, no reset) is noticed by both programs within `--dead-after`, even
//! while nobody talks, and said as a lost connection, with exit status 1.
//!
//! Across two network namespaces this test makes, joined by a veth pair
//! whose server end it then sets down (see `support::netns`): root and `ip`
//! are needed, and the tests say they were skipped otherwise.

mod support;

use std::time::{Duration, Instant};

use std::path::Path;

use support::netns::Link;
use support::{Program, path, scratch};

/// `--dead-after` in these tests, and how late past it the loss may be
/// noticed: the system's probes tick in whole seconds, and a loaded
/// machine is slow to start the programs' next round.
const DEAD_AFTER: &str = "3";
const SLACK: Duration = Duration::from_secs(10);

/// A server (serving one conversation) and a client across `link`, both
/// watching for death after [`DEAD_AFTER`], talking once; over TLS with
/// their files in `tls`. The client does not resume (`--resume-for 0`,
/// which its `HELLO` tells the server): a loss is the end (`resume.rs`
/// and the tests below it try resuming).
fn talking(link: &Link, tls: Option<&Path>) -> (Program, Program) {
    let mut server_args = vec!["--once", "--dead-after", DEAD_AFTER];
    let mut client_args = vec!["--dead-after", DEAD_AFTER, "--resume-for", "0"];
    let (identity, known) = match tls {
        Some(dir) => (path(dir, "identity.pem"), path(dir, "known_hosts")),
        None => Default::default(),
    };
    if tls.is_some() {
        server_args.extend(["--tls", "--identity", &identity]);
        client_args.extend(["--tls", "--known-hosts", &known]);
    }
    let (mut server, address) = link.listening(&server_args);
    client_args.extend(["--connect", &address]);
    let mut client = link.client(&client_args);
    client.expect_status("connected to");
    server.expect_status("connected");
    client.say("hello across the link");
    server.expect_message("hello across the link");
    server.say("hello back");
    client.expect_message("hello back");
    (server, client)
}

/// Both programs say the connection was lost and exit with status 1;
/// returns what the client said.
fn both_lost(server: &mut Program, client: &mut Program) -> String {
    let said = client.expect_status("connection lost");
    assert!(said.contains("nothing came back for 3 s"), "{said}");
    assert_eq!(
        client.wait().code(),
        Some(1),
        "a lost connection is a failure"
    );
    // The server's own end went down: its system may say so instead
    // (`network is unreachable`), if a last acknowledgement was lost in
    // the cut and it was still retransmitting.
    server.expect_status("connection lost");
    assert_eq!(server.wait().code(), Some(1));
    said
}

#[test]
fn a_peer_that_vanishes_while_nobody_talks_is_lost_on_both_sides() {
    let Some(link) = Link::new("silent death while idle") else {
        return;
    };
    let (mut server, mut client) = talking(&link, None);
    link.cut();
    let cut_at = Instant::now();
    both_lost(&mut server, &mut client);
    assert!(
        cut_at.elapsed() < Duration::from_secs(3) + SLACK,
        "noticed only after {:?}",
        cut_at.elapsed()
    );
}

#[test]
fn lines_typed_into_a_dead_link_are_reported_not_delivered() {
    let Some(link) = Link::new("lines into a dead link") else {
        return;
    };
    let (mut server, mut client) = talking(&link, None);
    link.cut();
    client.say("nobody will read this");
    let said = both_lost(&mut server, &mut client);
    // In lines, as the server acknowledges them: the one typed.
    assert!(
        said.ends_with("; 1 line not delivered: \"nobody will read this\""),
        "{said}"
    );
}

#[test]
fn a_peer_that_vanishes_is_lost_over_tls_too() {
    let Some(link) = Link::new("silent death over TLS") else {
        return;
    };
    let dir = scratch("silent-death-tls");
    let (mut server, mut client) = talking(&link, Some(&dir));
    link.cut();
    both_lost(&mut server, &mut client);
}

/// A peer that is only slow, its window shut for longer than
/// `--dead-after` while its system answers every probe, is not lost: the
/// programs wait on a reader as long as it takes (Linux's
/// `TCP_USER_TIMEOUT` would have ended it, which is why it is not used).
/// On loopback, no namespaces needed.
#[test]
fn a_peer_that_reads_nothing_for_longer_than_dead_after_is_not_lost() {
    let mut server = support::Server::start(&["--dead-after", DEAD_AFTER]);
    let mut reader = server.raw();
    server.expect_status("connected");
    let lines = support::flood("operator", 8 << 20);
    let mut text = lines.join("\n");
    text.push('\n');
    let typing = server.type_in_background(text.into_bytes());
    // Twice `--dead-after` with the window shut (and under the 10 s
    // without progress after which the operator's waiting input gives up).
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        server.said("connection lost").is_none(),
        "{:?}",
        server.drain_stderr()
    );
    for line in &lines {
        assert_eq!(&support::read_text(&mut reader), line);
    }
    drop(typing.join());
    assert!(
        server.said("error").is_none(),
        "{:?}",
        server.drain_stderr()
    );
}

/// A client waiting in line whose link dies keeps its place while it may
/// come back (`--resume-for`), and then is seen to have left: the
/// keepalives the server sends the line go unanswered for `--dead-after`.
/// Its place is free; the client, on its side, says its lines were not
/// delivered.
#[test]
fn a_waiting_client_whose_link_dies_keeps_its_place_and_then_leaves_the_line() {
    let Some(link) = Link::new("waiting client lost") else {
        return;
    };
    let (mut server, address) = link.listening(&["--dead-after", DEAD_AFTER, "--resume-for", "4"]);
    // Served: a client beside the server, whose link is never cut.
    let mut served = link.client_beside_server(&["--connect", &address]);
    server.expect_status("connected");
    let mut waiting = link.client(&[
        "--connect",
        &address,
        "--dead-after",
        DEAD_AFTER,
        "--resume-for",
        "4",
    ]);
    waiting.expect_status("number 1 in line");
    waiting.say("never delivered");
    server.expect_status("is waiting (number 1 in line)");
    link.cut();
    let said = server.expect_status("keeping its place for 4 s");
    assert!(
        said.contains("(number 1 in line): connection lost: nothing came back for 3 s"),
        "{said}"
    );
    waiting.expect_status("reconnecting for up to 4 s");
    let said = server.expect_status("left the line");
    assert!(said.contains("not resumed within 4 s"), "{said}");
    let said = waiting.expect_status("not resumed within 4 s");
    assert!(said.contains("1 line not delivered"), "{said}");
    assert_eq!(waiting.wait().code(), Some(1));
    served.say("q");
    assert_eq!(served.wait().code(), Some(0));
}

/// A real network's outage with a change of address: the server's link
/// goes down with lines of both sides in flight, the client's machine
/// moves to a new address meanwhile, and the link comes back. The client
/// reconnects from its new address and resumes: every line arrives once,
/// in order, and the server says where its client came back from.
#[test]
fn a_client_that_changes_its_address_during_an_outage_resumes() {
    let Some(link) = Link::new("resume from a new address") else {
        return;
    };
    let (mut server, address) = link.listening(&["--once", "--dead-after", DEAD_AFTER]);
    let mut client = link.client(&["--connect", &address, "--dead-after", DEAD_AFTER]);
    server.expect_status("connected");
    client.say("before the outage");
    server.expect_message("before the outage");
    link.cut();
    client.say("client line 1");
    server.say("server line 1");
    client.expect_status("reconnecting for up to 300 s");
    server.expect_status("keeping the conversation for 300 s");
    client.say("client line 2");
    server.say("server line 2");
    let moved_to = link.roam();
    link.restore();
    client.expect_status("reconnected after");
    let back = server.expect_status("is back");
    assert!(back.contains(&format!("from {moved_to}:")), "{back}");
    for line in ["client line 1", "client line 2"] {
        assert_eq!(server.next_message(), line);
    }
    for line in ["server line 1", "server line 2"] {
        assert_eq!(client.next_message(), line);
    }
    client.say("q");
    assert_eq!(client.wait().code(), Some(0), "{:?}", client.drain_stderr());
    assert_eq!(server.wait().code(), Some(0), "{:?}", server.drain_stderr());
}
