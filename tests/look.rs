//! How what is shown looks when piped, and the transcript: `--timestamps`
//! (and `CHAT_TIMESTAMPS`), `--color`, `--bell`, `--log`. The terminal's
//! side of the same flags is in `terminal.rs`.

mod support;

use std::fs;
use std::path::PathBuf;

use support::{CLIENT, Program, SERVER, start_room, wait_until};

/// Whether `line` starts with an RFC 3339 time to the second and a space
/// (`2026-12-07T12:31:05+01:00 `); the rest of it.
fn after_time(line: &str) -> Option<&str> {
    let (time, rest) = line.split_once(' ')?;
    let b = time.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    let ok = b.len() == 25
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && matches!(b[19], b'+' | b'-')
        && digits(20..22)
        && b[22] == b':'
        && digits(23..25);
    ok.then_some(rest)
}

/// A file in a directory of its own, for a test's transcript.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chat-look-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir.join("log.txt")
}

fn lines_of(path: &PathBuf) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// In a conversation too, each message is written once, stamped (a user
/// trial found every message written twice, stamped and then not).
#[test]
fn piped_timestamps_in_a_conversation_stamp_each_message_once() {
    let mut server = support::Server::start(&["--once", "--timestamps"]);
    let mut client = server.connect_client(&["--timestamps"]);
    server.expect_status("connected");
    for text in ["one", "two"] {
        client.say(text);
    }
    server.say("three");
    let line = client.next_message();
    assert_eq!(after_time(&line), Some("three"), "{line:?}");
    for text in ["one", "two"] {
        let line = server.next_message();
        assert_eq!(after_time(&line), Some(text), "{line:?}");
    }
    // Nothing more: no line written again.
    client.say("q");
    assert_eq!(client.wait().code(), Some(0));
    assert_eq!(client.rest_of_stdout(), Vec::<String>::new());
    assert_eq!(server.rest_of_stdout(), Vec::<String>::new());
}

#[test]
fn piped_timestamps_put_an_rfc3339_time_before_every_line_history_the_time_it_was_said() {
    let mut server = start_room(&["--timestamps"]);
    let mut alice = server.connect_client(&["--name", "alice", "--timestamps"]);
    let joined = alice.expect_status("you joined as alice;");
    assert_eq!(
        after_time(&joined),
        Some("you joined as alice; here: server (/nick NEW changes your name)")
    );
    let seen = server.expect_status("alice joined");
    assert!(after_time(&seen).is_some(), "{seen:?}");
    server.say("before bob");
    let line = alice.next_message();
    assert_eq!(after_time(&line), Some("server: before bob"), "{line:?}");
    let said = line[..25].to_string();

    // The environment variable makes it the default.
    let addr = server.addr.to_string();
    let mut bob = Program::spawn_with_env(
        CLIENT,
        &["--connect", &addr, "--name", "bob"],
        &[("CHAT_TIMESTAMPS", "1")],
    );
    // History carries the time it was said, as the room tells it (to the
    // second; alice's screen showed it at most a second later), not the
    // time it is shown.
    let earlier = bob.expect_status("-- earlier: server: before bob");
    assert_eq!(
        after_time(&earlier),
        Some("-- earlier: server: before bob"),
        "{earlier:?}"
    );
    let joined = bob.expect_status("you joined as bob;");
    // The same offset throughout: the strings compare as the times do.
    assert!(earlier[..25] <= said[..], "{earlier:?} said at {said}");
    assert!(
        earlier[..25] <= joined[..25],
        "{earlier:?} before {joined:?}"
    );
    alice.say("hi bob");
    let line = bob.next_message();
    assert_eq!(after_time(&line), Some("alice: hi bob"), "{line:?}");
    let line = server.next_message();
    assert_eq!(after_time(&line), Some("alice: hi bob"), "{line:?}");

    // Without it, lines are as before.
    let mut carol = server.connect_client(&["--name", "carol"]);
    carol.expect_status("you joined as carol;");
    alice.say("plain");
    carol.expect_message("alice: plain");
}

#[test]
fn color_always_colours_piped_output_whatever_no_color_says_and_auto_does_not() {
    let mut server = start_room(&[]);
    let addr = server.addr.to_string();
    let mut always = Program::spawn_with_env(
        CLIENT,
        &["--connect", &addr, "--name", "alice", "--color", "always"],
        &[("NO_COLOR", "1")],
    );
    always.expect_status("you joined as alice;");
    let mut auto = server.join_room("bob");
    let mut never = server.connect_client(&["--name", "carol", "--color", "never"]);
    never.expect_status("you joined as carol;");
    server.say("hello");
    let line = always.next_message();
    assert!(
        line.contains('\x1b') && line.contains("server:") && line.ends_with("hello"),
        "{line:?}"
    );
    let joined = always.said("you joined as alice;").unwrap();
    assert!(joined.contains("\x1b["), "status lines too: {joined:?}");
    auto.expect_message("server: hello");
    never.expect_message("server: hello");
}

#[test]
fn piped_output_never_rings_the_bell_even_for_a_mention() {
    let mut server = start_room(&[]);
    let addr = server.addr.to_string();
    let mut alice = Program::spawn(
        CLIENT,
        &["--connect", &addr, "--name", "alice", "--bell", "all"],
    );
    alice.expect_status("you joined as alice;");
    let mut default = server.join_room("bob");
    server.say("alice and bob, look");
    let line = alice.next_message();
    assert_eq!(line, "server: alice and bob, look");
    default.expect_message("server: alice and bob, look");
}

#[test]
fn a_log_keeps_every_message_and_status_line_with_its_time() {
    let server_log = scratch("server");
    let client_log = scratch("client");
    let mut server = start_room(&["--log", server_log.to_str().unwrap()]);
    server.say("first words");
    let mut alice =
        server.connect_client(&["--name", "alice", "--log", client_log.to_str().unwrap()]);
    alice.expect_status("you joined as alice;");
    server.expect_status("alice joined");
    alice.say("hello from alice");
    server.expect_message("alice: hello from alice");
    server.say("hello alice");
    alice.expect_message("server: hello alice");
    alice.say("q");
    assert_eq!(alice.wait().code(), Some(0));
    server.expect_status("alice left");

    let client = lines_of(&client_log);
    let timed: Vec<&str> = client.iter().filter_map(|l| after_time(l)).collect();
    assert!(
        timed.iter().any(|l| l.starts_with("-- connected to ")),
        "{client:?}"
    );
    assert!(timed.contains(&"server: hello alice"), "{client:?}");
    assert!(
        timed
            .iter()
            .any(|l| l.starts_with("-- you joined as alice;")),
        "{client:?}"
    );
    // History with the time it was said (see the timestamps' test).
    assert!(
        timed.contains(&"-- earlier: server: first words"),
        "{client:?}"
    );
    for line in &client {
        assert!(after_time(line).is_some(), "{line:?}");
    }
    wait_until("the server's log has alice leaving", || {
        lines_of(&server_log)
            .iter()
            .any(|l| after_time(l) == Some("-- alice left"))
    });
    let server_lines = lines_of(&server_log);
    let timed: Vec<&str> = server_lines.iter().filter_map(|l| after_time(l)).collect();
    assert!(
        timed.contains(&"alice: hello from alice"),
        "{server_lines:?}"
    );
    assert!(
        timed.iter().any(|l| l.starts_with("-- listening on ")),
        "{server_lines:?}"
    );

    // Appended to, not replaced.
    let before = lines_of(&client_log).len();
    let mut again =
        server.connect_client(&["--name", "alice", "--log", client_log.to_str().unwrap()]);
    again.expect_status("you joined as alice;");
    again.say("q");
    assert_eq!(again.wait().code(), Some(0));
    let after = lines_of(&client_log);
    assert!(after.len() > before, "{after:?}");
    assert_eq!(after[..before], client[..before]);
}

#[test]
fn a_log_that_cannot_be_opened_stops_either_program_at_the_start() {
    // A directory cannot be opened for appending, on any system.
    let dir = scratch("unwritable");
    let dir = dir.parent().unwrap().to_str().unwrap().to_string();
    for (program, name) in [(SERVER, "chat-server"), (CLIENT, "chat-client")] {
        // The client has no server to reach: the log is said first.
        let mut run = Program::spawn(program, &["--log", &dir, "--bind", "127.0.0.1:0"][..2]);
        let status = run.wait();
        assert_eq!(status.code(), Some(1), "{name}");
        let said = run.all_stderr();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].starts_with(&format!("{name}: cannot open the log {dir}")),
            "{said:?}"
        );
        assert!(run.rest_of_stdout().is_empty());
    }
}

/// A peer killed outright: what was shown until then is in the
/// transcript of the one left, and in the killed one's own.
#[cfg(unix)]
#[test]
fn after_the_server_is_killed_both_logs_have_everything_shown_until_then() {
    let server_log = scratch("killed-server");
    let client_log = scratch("killed-client");
    let mut server = start_room(&["--log", server_log.to_str().unwrap()]);
    let mut alice =
        server.connect_client(&["--name", "alice", "--log", client_log.to_str().unwrap()]);
    alice.expect_status("you joined as alice;");
    alice.say("said before the crash");
    server.expect_message("alice: said before the crash");
    server.say("the server's last words");
    alice.expect_message("server: the server's last words");
    server.signal("KILL");
    assert_eq!(server.wait().code(), None);
    assert_eq!(alice.wait().code(), Some(1));
    let said_last = alice.all_stderr().last().cloned().unwrap();

    let client = lines_of(&client_log);
    let timed: Vec<&str> = client.iter().filter_map(|l| after_time(l)).collect();
    assert!(
        timed.contains(&"server: the server's last words"),
        "{client:?}"
    );
    // Up to the client's own last status line.
    assert!(
        timed.last().is_some_and(|l| l.ends_with(&said_last)),
        "{client:?} ends with {said_last:?}"
    );
    let server_lines = lines_of(&server_log);
    let timed: Vec<&str> = server_lines.iter().filter_map(|l| after_time(l)).collect();
    assert!(
        timed.contains(&"alice: said before the crash"),
        "{server_lines:?}"
    );
    assert!(
        timed.iter().any(|l| l.starts_with("-- alice joined")),
        "{server_lines:?}"
    );
}

/// A transcript that fails later (a full disk) is said once; the program
/// goes on.
#[cfg(target_os = "linux")]
#[test]
fn a_log_that_fails_later_is_said_once_and_the_program_goes_on() {
    let mut server = start_room(&[]);
    let mut alice = server.connect_client(&["--name", "alice", "--log", "/dev/full"]);
    alice.expect_status("you joined as alice;");
    let part = "cannot write the log /dev/full";
    let failed = alice
        .said(part)
        .unwrap_or_else(|| alice.expect_status(part));
    assert!(failed.contains("going on without it"), "{failed:?}");
    server.say("still here");
    alice.expect_message("server: still here");
    server.say("and again");
    alice.expect_message("server: and again");
    alice.say("q");
    assert_eq!(alice.wait().code(), Some(0));
    let failures = alice
        .all_stderr()
        .iter()
        .filter(|l| l.contains("cannot write the log"))
        .count();
    assert_eq!(failures, 1);
}

/// A peer that knows nothing of the times of earlier messages (a plain
/// protocol peer, or a client older than them) reads them as one more
/// notice, and the earlier messages after it as before.
#[test]
fn a_peer_that_does_not_know_the_times_of_history_reads_them_as_a_notice() {
    let mut server = start_room(&[]);
    let mut alice = server.join_room("alice");
    server.say("one");
    server.say("two");
    alice.expect_message("server: one");
    alice.expect_message("server: two");
    let mut old = server.raw_member();
    let notice = old.next_text();
    let times = notice
        .strip_prefix("-- the earlier messages below were said at ")
        .unwrap_or_else(|| panic!("{notice:?}"));
    let times: Vec<&str> = times.split(", ").collect();
    assert_eq!(times.len(), 2, "{notice:?}");
    for time in times {
        assert!(time.len() == 20 && time.ends_with('Z'), "{time:?}");
    }
    assert_eq!(old.next_text(), "-- earlier: server: one");
    assert_eq!(old.next_text(), "-- earlier: server: two");
}
