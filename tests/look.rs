//! How what is shown looks when piped: `--timestamps` (and
//! `CHAT_TIMESTAMPS`), `--color`, `--bell`. The terminal's
//! side of the same flags is in `terminal.rs`.

mod support;

use support::{CLIENT, Program, start_room};

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

#[test]
fn piped_timestamps_put_an_rfc3339_time_before_every_line_but_history() {
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

    // The environment variable makes it the default.
    let addr = server.addr.to_string();
    let mut bob = Program::spawn_with_env(
        CLIENT,
        &["--connect", &addr, "--name", "bob"],
        &[("CHAT_TIMESTAMPS", "1")],
    );
    // History carries no time: not when it was said, and the time it is
    // shown would pass for that.
    bob.expect_status("-- earlier: server: before bob");
    let earlier = bob.said("-- earlier: server: before bob").unwrap();
    assert_eq!(earlier, "-- earlier: server: before bob");
    bob.expect_status("you joined as bob;");
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
