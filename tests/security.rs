//! TLS, trust on first use, pinned fingerprints, the shared code and access
//! control, through the real binaries over loopback. Every test keeps its
//! identity and known-hosts files in a directory of its own.

#[path = "support/mitm.rs"]
mod mitm;
mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use support::{
    CLIENT, Program, SERVER, Server, frame, path, read_frame, read_text, scratch, tls_client,
    tls_server,
};

/// Checks a conversation works both ways, then ends it from the client.
fn talk_and_quit(server: &mut Server, client: &mut Program) {
    for text in ["hello over TLS", "你好，世界 🎉", "  spaced\ttabs  "] {
        client.say(text);
        server.expect_message(text);
        server.say(text);
        client.expect_message(text);
    }
    client.say("q");
    assert_eq!(client.wait().code(), Some(0), "{:?}", client.drain_stderr());
    server.expect_status("left");
}

#[test]
fn a_tls_conversation_is_exact_both_ways_and_first_use_is_recorded() {
    let dir = scratch("conversation");
    let (mut server, print) = tls_server(&dir, &["--once"], &[]);
    let mut client = tls_client(&server, &dir, &[], &[]);
    let note = client.expect_status("first connection to");
    assert!(note.contains(&print), "{note}");
    client.expect_status("over TLS");
    server.expect_status("connected");
    talk_and_quit(&mut server, &mut client);
    assert_eq!(server.wait().code(), Some(0));
    let known = fs::read_to_string(dir.join("known_hosts")).unwrap();
    assert_eq!(known, format!("{} {print}\n", server.addr));
    #[cfg(unix)]
    for file in ["identity.pem", "known_hosts"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
}

#[test]
fn the_identity_is_kept_and_a_known_server_is_accepted_quietly() {
    let dir = scratch("kept");
    let (mut first, print) = tls_server(&dir, &["--once"], &[]);
    let mut client = tls_client(&first, &dir, &[], &[]);
    client.expect_status("first connection to");
    first.expect_status("connected");
    client.say("q");
    assert_eq!(client.wait().code(), Some(0));
    assert_eq!(first.wait().code(), Some(0));

    // Same identity file: same fingerprint, not made again.
    let (mut again, second_print) = tls_server(&dir, &["--once"], &[]);
    assert_eq!(print, second_print);
    assert!(
        again
            .drain_stderr()
            .iter()
            .all(|line| !line.contains("made now")),
        "{:?}",
        again.drain_stderr()
    );
    // Known (recorded under the new address by hand, as if met before): no note.
    fs::write(dir.join("known_hosts"), format!("{} {print}\n", again.addr)).unwrap();
    let mut client = tls_client(&again, &dir, &[], &[]);
    client.expect_status("connected to");
    assert!(
        client
            .drain_stderr()
            .iter()
            .all(|l| !l.contains("first connection")),
        "{:?}",
        client.drain_stderr()
    );
    again.expect_status("connected");
    talk_and_quit(&mut again, &mut client);
}

#[test]
fn a_changed_identity_at_a_known_address_is_refused_before_anything_is_sent() {
    let dir = scratch("changed");
    let (mut server, print) = tls_server(&dir, &[], &[]);
    let old = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    fs::write(
        dir.join("known_hosts"),
        format!("# a comment\nother:1 {print}\n{} {old}\n", server.addr),
    )
    .unwrap();
    let mut client = tls_client(&server, &dir, &[], &[]);
    client.say("a secret that must not leave");
    assert_eq!(client.wait().code(), Some(1));
    let said = client.all_stderr().join("\n");
    for part in [
        server.addr.to_string().as_str(),
        print.as_str(),
        old,
        "line 3",
        "known_hosts",
        "delete that line",
    ] {
        assert!(said.contains(part), "{part:?} missing from {said:?}");
    }
    server.expect_status("refused this server's certificate");
    // Nothing reached the operator, and the server serves the next client.
    assert!(server.stdout.try_recv().is_err());
    fs::remove_file(dir.join("known_hosts")).unwrap();
    let mut client = tls_client(&server, &dir, &[], &[]);
    client.expect_status("first connection to");
    server.expect_status("connected");
    client.say("after the refusal");
    server.expect_message("after the refusal");
}

#[test]
fn a_pinned_fingerprint_is_required() {
    let dir = scratch("pinned");
    let (mut server, print) = tls_server(&dir, &[], &[]);
    // A well-formed fingerprint, of another certificate (SHA-256 of nothing).
    let wrong = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
    let mut client = tls_client(&server, &dir, &["--fingerprint", wrong], &[]);
    client.say("not for them");
    assert_eq!(client.wait().code(), Some(1));
    let said = client.all_stderr().join("\n");
    assert!(said.contains(wrong) && said.contains(&print), "{said}");
    server.expect_status("refused this server's certificate");

    let mut client = tls_client(&server, &dir, &["--fingerprint", &print], &[]);
    client.expect_status("connected to");
    server.expect_status("connected");
    talk_and_quit(&mut server, &mut client);
    // A pinned connection records nothing.
    assert!(!dir.join("known_hosts").exists());

    // A malformed fingerprint is a bad argument.
    let mut client = tls_client(&server, &dir, &["--fingerprint", "SHA256:short"], &[]);
    assert_eq!(client.wait().code(), Some(2));
}

#[test]
fn a_shared_code_authenticates_and_a_wrong_one_is_refused_on_both_sides() {
    let dir = scratch("code");
    let code = [("CHAT_CODE", "42-orbit-velvet-candle")];
    let (mut server, _) = tls_server(&dir, &["--code"], &code);
    assert!(
        server
            .drain_stderr()
            .iter()
            .any(|l| l.starts_with("code taken from CHAT_CODE")),
        "{:?}",
        server.drain_stderr()
    );

    support::wrong_code_is_refused(&mut server, &dir, &[]);

    // Typed differently (spaces, capitals): the same code.
    let mut right = tls_client(
        &server,
        &dir,
        &["--code"],
        &[("CHAT_CODE", "42 Orbit velvet CANDLE")],
    );
    right.expect_status("knows the code");
    server.expect_status("connected");
    talk_and_quit(&mut server, &mut right);
    // Neither recorded a fingerprint: the code did the authenticating.
    assert!(!dir.join("known_hosts").exists());

    // A client without --code is told to use one, and nothing passes.
    let mut plain_tls = tls_client(&server, &dir, &[], &[]);
    assert_eq!(plain_tls.wait().code(), Some(1));
    let said = plain_tls.all_stderr().join("\n");
    assert!(said.contains("needs a shared code"), "{said}");
    assert!(server.stdout.try_recv().is_err());
}

#[test]
fn a_code_on_the_command_line_is_not_accepted() {
    let output = std::process::Command::new(CLIENT)
        .args(["--tls", "--code", "42-orbit-velvet-candle"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_man_in_the_middle_is_caught_by_a_recorded_fingerprint() {
    let dir = scratch("mitm-print");
    let (server, print) = tls_server(&dir, &[], &[]);
    let proxy = mitm::start(server.addr);
    // The client met the real server at this address before.
    fs::write(dir.join("known_hosts"), format!("{proxy} {print}\n")).unwrap();
    let known = path(&dir, "known_hosts");
    let address = proxy.to_string();
    let mut client = Program::spawn(
        CLIENT,
        &["--connect", &address, "--tls", "--known-hosts", &known],
    );
    client.say("for the real server only");
    assert_eq!(client.wait().code(), Some(1));
    let said = client.all_stderr().join("\n");
    assert!(said.contains("someone may be intercepting"), "{said}");
    assert!(server.stdout.try_recv().is_err());
}

#[test]
fn a_man_in_the_middle_is_caught_on_both_legs_by_a_code() {
    let dir = scratch("mitm-code");
    let code = [("CHAT_CODE", "7-apple-river-stone")];
    let (mut server, _) = tls_server(&dir, &["--code"], &code);
    let proxy = mitm::start(server.addr);
    let known = path(&dir, "known_hosts");
    let address = proxy.to_string();
    let mut client = Program::spawn_with_env(
        CLIENT,
        &[
            "--connect",
            &address,
            "--tls",
            "--code",
            "--known-hosts",
            &known,
        ],
        &code,
    );
    client.say("for the real server only");
    assert_eq!(client.wait().code(), Some(1));
    let said = client.all_stderr().join("\n");
    assert!(
        said.contains("wrong code") || said.contains("does not know the code"),
        "{said}"
    );
    assert!(!said.contains("knows the code:"), "{said}");
    // The server saw a proof made for another TLS session.
    server.expect_status("wrong code (or someone in the middle)");
    assert!(server.stdout.try_recv().is_err());
}

#[test]
fn a_plain_client_of_a_tls_server_is_told_to_use_tls() {
    let dir = scratch("plain-to-tls");
    let (mut server, _) = tls_server(&dir, &[], &[]);
    let started = Instant::now();
    let mut client = server.connect_client(&[]);
    client.expect_status("this server speaks TLS only: connect with chat-client --tls");
    // Told once the server's wait for a first byte (5 s) is over, not at
    // some later timeout; generous for a loaded machine.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "told after {:?}",
        started.elapsed()
    );
    client.expect_status("not served: the server refused this client");
    assert_eq!(client.wait().code(), Some(1), "a refusal is a failure");
    assert!(client.stdout.try_recv().is_err(), "not shown as a message");
    server.expect_status("refused a connection from 127.0.0.1: it does not speak TLS");

    // A raw plain peer that talks at once is told too, not left hanging.
    let mut raw = server.raw();
    raw.write_all(&frame(b"hello?")).unwrap();
    assert_eq!(
        read_text(&mut raw),
        "-- refused: this server speaks TLS only: connect with chat-client --tls"
    );

    // One that says nothing is told once the wait for a first byte is
    // over, and the log does not claim to know it is plain: a TLS client
    // whose hello is late on a lossy link is silent too.
    let mut silent = server.raw();
    assert_eq!(
        read_text(&mut silent),
        "-- refused: this server speaks TLS only: connect with chat-client --tls"
    );
    let said = server.expect_status("refused a connection from 127.0.0.1: it sent nothing for 5 s");
    assert!(said.contains("a TLS client's hello slow to come"), "{said}");
}

#[test]
fn a_tls_client_of_a_plain_server_is_told_it_does_not_speak_tls() {
    let mut server = Server::start(&[]);
    let dir = scratch("tls-to-plain");
    let mut client = tls_client(&server, &dir, &[], &[]);
    assert_eq!(client.wait().code(), Some(1));
    let said = client.all_stderr().join("\n");
    assert!(
        said.contains("or not speak TLS") || said.contains("did not answer in TLS"),
        "{said}"
    );
    server.expect_status("it speaks TLS and this side does not");

    // A silent peer that never answers: told within the connect timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let known = path(&dir, "known_hosts");
    let mut client = Program::spawn(
        CLIENT,
        &[
            "--connect",
            &address,
            "--tls",
            "--known-hosts",
            &known,
            "--handshake-timeout",
            "1",
        ],
    );
    assert_eq!(client.wait().code(), Some(1));
    let said = client.all_stderr().join("\n");
    assert!(said.contains("no TLS answer"), "{said}");
}

#[test]
fn allow_and_deny_decide_who_gets_in_and_refusals_are_counted() {
    let mut denied = Server::start(&["--deny", "127.0.0.0/8"]);
    // A plain peer that talks at once is told why in one frame, then closed.
    let mut raw = denied.raw();
    raw.write_all(&frame(b"hello?")).unwrap();
    assert_eq!(
        read_text(&mut raw),
        "-- refused: this server does not accept connections from your address"
    );
    assert_eq!(read_frame(&mut raw), None, "then the server closes");
    denied.expect_status("refused a connection from 127.0.0.1: not allowed by --allow/--deny");
    // A burst: reported at most once a second, with the count.
    for _ in 0..20 {
        let _ = denied.raw();
    }
    let report = denied.expect_status("refused 20 connections");
    assert!(report.contains("the last from 127.0.0.1"), "{report}");
    // Our client shows why and fails, its line undelivered.
    let mut client = denied.connect_client(&[]);
    client.say("never delivered");
    client.expect_status("this server does not accept connections from your address");
    assert_eq!(client.wait().code(), Some(1));

    let mut outside = Server::start(&["--allow", "10.0.0.0/8"]);
    let _ = outside.raw().read(&mut [0u8; 1]);
    outside.expect_status("refused a connection from 127.0.0.1");

    // A TLS server closes a denied client without a word: a plain frame
    // would read as a server without TLS.
    let dir = scratch("deny-tls");
    let (mut tls_denied, _) = tls_server(&dir, &["--deny", "127.0.0.1"], &[]);
    let mut client = tls_client(&tls_denied, &dir, &[], &[]);
    assert_eq!(client.wait().code(), Some(1));
    let said = client.all_stderr().join("\n");
    assert!(said.contains("it may refuse your address"), "{said}");
    tls_denied.expect_status("not allowed by --allow/--deny");

    let mut inside = Server::start(&["--allow", "10.0.0.0/8", "--allow", "127.0.0.1"]);
    inside.serves_a_polite_client("let in");

    let mut bad = Program::spawn(SERVER, &["--bind", "127.0.0.1:0", "--allow", "10.0.0.0/33"]);
    assert_eq!(bad.wait().code(), Some(2));
}

#[test]
fn a_plain_server_on_a_network_address_warns_that_it_is_not_encrypted() {
    let mut open = Program::spawn(SERVER, &["--bind", "0.0.0.0:0"]);
    open.expect_status("not encrypted");
    open.expect_status("listening on");
    let mut local = Server::start(&[]);
    local.serves_a_polite_client("quiet");
    assert!(
        local
            .drain_stderr()
            .iter()
            .all(|l| !l.contains("not encrypted")),
        "{:?}",
        local.drain_stderr()
    );
}

#[test]
fn a_key_others_can_read_is_refused_with_the_chmod_to_run() {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("chmod");
        let (server, _) = tls_server(&dir, &["--once"], &[]);
        drop(server);
        let identity = dir.join("identity.pem");
        fs::set_permissions(&identity, fs::Permissions::from_mode(0o644)).unwrap();
        let shown = identity.to_string_lossy().into_owned();
        let mut again = Program::spawn(
            SERVER,
            &["--bind", "127.0.0.1:0", "--tls", "--identity", &shown],
        );
        assert_eq!(again.wait().code(), Some(1));
        let said = again.all_stderr().join("\n");
        assert!(said.contains(&format!("chmod 600 {shown}")), "{said}");
    }
    let dir = scratch("garbage");
    let identity = dir.join("identity.pem");
    let mut file = fs::File::create(&identity).unwrap();
    file.write_all(b"-----BEGIN NONSENSE-----\n").unwrap();
    drop(file);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&identity, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let shown = identity.to_string_lossy().into_owned();
    let mut bad = Program::spawn(
        SERVER,
        &["--bind", "127.0.0.1:0", "--tls", "--identity", &shown],
    );
    assert_eq!(bad.wait().code(), Some(1));
    let said = bad.all_stderr().join("\n");
    assert!(said.contains(&shown), "{said}");
}

/// A Python peer with only `ssl` and `struct` talks to a `--tls` server.
#[cfg(unix)]
#[test]
fn a_python_ssl_peer_talks_to_a_tls_server() {
    let dir = scratch("python");
    let (mut server, _) = tls_server(&dir, &["--once"], &[]);
    let script = r#"
import socket, ssl, struct, sys
host, port = sys.argv[1].rsplit(":", 1)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
with socket.create_connection((host, int(port))) as raw:
    with context.wrap_socket(raw) as tls:
        text = "from python: héllo".encode()
        tls.sendall(struct.pack("!I", len(text)) + text)
        def exactly(n):
            data = b""
            while len(data) < n:
                chunk = tls.recv(n - len(data))
                if not chunk:
                    raise SystemExit("closed early")
                data += chunk
            return data
        (length,) = struct.unpack("!I", exactly(4))
        print(exactly(length).decode())
"#;
    let python = python_peer(script, &server);
    server.expect_message("from python: héllo");
    server.say("hello, python");
    let said = python_said(python);
    assert_eq!(said, "hello, python\n");
}

/// A code exchange whose client sends its SPAKE2 message and its proof in
/// one write (one TLS record) is answered at once, as one whose client
/// waits between them: the proof used to be read with the message and
/// lost, and the client waited for the handshake's deadline (30 s). The
/// peer here is a guesser's: the server's own SPAKE2 point sent back as the
/// client's (valid, and free to make) and a random proof, so the answer
/// is a wrong code.
#[cfg(unix)]
#[test]
fn a_code_exchange_sent_in_one_write_is_answered_at_once() {
    let dir = scratch("code-one-write");
    let (mut server, _) = tls_server(&dir, &["--code"], &[("CHAT_CODE", "7-orbit-velvet-candle")]);
    let script = r#"
import os, socket, ssl, struct, sys
host, port = sys.argv[1].rsplit(":", 1)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
context.set_alpn_protocols(["chat-code"])
with socket.create_connection((host, int(port))) as raw:
    with context.wrap_socket(raw) as tls:
        def exactly(n):
            data = b""
            while len(data) < n:
                chunk = tls.recv(n - len(data))
                if not chunk:
                    raise SystemExit("closed early")
                data += chunk
            return data
        def frame():
            (length,) = struct.unpack("!I", exactly(4))
            return exactly(length)
        theirs = frame()
        ours = b"A" + theirs[1:]
        proof = os.urandom(32)
        tls.sendall(struct.pack("!I", len(ours)) + ours + struct.pack("!I", len(proof)) + proof)
        print(frame().decode())
"#;
    let python = python_peer(script, &server);
    server.expect_status("wrong code (or someone in the middle); refused");
    let said = python_said(python);
    assert_eq!(said, "wrong code (or someone in the middle)\n");
}

/// A certificate authority made for a test, and an identity file for a
/// server, issued by it for 127.0.0.1, valid until `not_after` (a year).
fn issued_identity(dir: &std::path::Path, name: &str, not_after: i32) -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("test authority {name}"));
    let ca_certificate = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    leaf.not_before = rcgen::date_time_ymd(2000, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(not_after, 1, 1);
    let certificate = leaf.signed_by(&key, &issuer).unwrap();
    let identity = dir.join(format!("{name}-identity.pem"));
    let authority = dir.join(format!("{name}-ca.pem"));
    fs::write(
        &identity,
        format!("{}{}", certificate.pem(), key.serialize_pem()),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&identity, fs::Permissions::from_mode(0o600)).unwrap();
    }
    fs::write(&authority, ca_certificate.pem()).unwrap();
    (
        identity.to_string_lossy().into_owned(),
        authority.to_string_lossy().into_owned(),
    )
}

/// `--identity` takes a CA-issued certificate, and `--ca` checks the chain
/// and the dates: another authority's or an expired certificate is refused.
#[test]
fn a_certificate_authority_is_checked_by_a_client_given_one() {
    let dir = scratch("authority");
    let (identity, authority) = issued_identity(&dir, "good", 2999);
    let (_, other_authority) = issued_identity(&dir, "other", 2999);
    let (expired_identity, expired_authority) = issued_identity(&dir, "expired", 2001);

    let mut server = Server::start(&["--tls", "--identity", &identity]);
    let mut client = tls_client(&server, &dir, &["--ca", &authority], &[]);
    client.expect_status("connected to");
    server.expect_status("connected");
    talk_and_quit(&mut server, &mut client);

    let mut stranger = tls_client(&server, &dir, &["--ca", &other_authority], &[]);
    assert_eq!(stranger.wait().code(), Some(1));
    let said = stranger.all_stderr().join("\n");
    assert!(
        said.contains("not issued by the certificate authority"),
        "{said}"
    );
    assert!(said.contains(&other_authority), "{said}");

    let expired = Server::start(&["--tls", "--identity", &expired_identity]);
    let mut client = tls_client(&expired, &dir, &["--ca", &expired_authority], &[]);
    assert_eq!(client.wait().code(), Some(1));
    let said = client.all_stderr().join("\n");
    assert!(said.contains("expired certificate"), "{said}");
}

/// A TLS client waiting in line: what it types is read ahead as ciphertext
/// and delivered, decrypted and in order, when its turn comes.
#[test]
fn a_waiting_tls_client_is_served_with_what_it_sent() {
    let dir = scratch("waiting");
    let (mut server, _) = tls_server(&dir, &[], &[]);
    let mut first = tls_client(&server, &dir, &[], &[]);
    server.expect_status("connected");
    let mut waiting = tls_client(&server, &dir, &[], &[]);
    // The server's notices are status lines to our client.
    waiting.expect_status("number 1 in line");
    for i in 0..100 {
        waiting.say(&format!("sent while waiting {i}"));
    }
    // Long enough for the line to read ahead (it looks every 0.2 s), so that
    // the turn starts with ciphertext already taken from the socket.
    std::thread::sleep(std::time::Duration::from_millis(500));
    first.say("q");
    assert_eq!(first.wait().code(), Some(0));
    for i in 0..100 {
        server.expect_message(&format!("sent while waiting {i}"));
    }
    waiting.expect_status("your turn: you are now talking with the server");
    server.say("hello, patient one");
    waiting.expect_message("hello, patient one");
}

/// A mistaken path for the TLS files (`/dev/zero`, a huge file) is a
/// clear error at once, never read until memory runs out; and known
/// hosts that are a symbolic link are not written through. Unix: it needs
/// `/dev/zero` and symbolic links.
#[cfg(unix)]
#[test]
fn tls_files_are_read_within_a_limit_and_known_hosts_not_written_through_a_link() {
    let mut server = Program::spawn(
        SERVER,
        &["--bind", "127.0.0.1:0", "--tls", "--identity", "/dev/zero"],
    );
    server.expect_status("cannot read /dev/zero: larger than 4 MiB");
    assert_eq!(server.wait().code(), Some(1));

    let dir = scratch("file-limits");
    let (server, _) = tls_server(&dir, &[], &[]);
    let address = server.addr.to_string();
    let mut client = Program::spawn(
        CLIENT,
        &["--connect", &address, "--tls", "--known-hosts", "/dev/zero"],
    );
    client.expect_status("cannot read /dev/zero: larger than 4 MiB");
    assert_eq!(client.wait().code(), Some(1));

    let target = dir.join("elsewhere");
    fs::write(&target, "precious\n").unwrap();
    let link = dir.join("linked_known_hosts");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let link = link.to_string_lossy().into_owned();
    let mut client = Program::spawn(
        CLIENT,
        &["--connect", &address, "--tls", "--known-hosts", &link],
    );
    client.expect_status("it is a symbolic link, which is not written through");
    assert_eq!(client.wait().code(), Some(1));
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious\n");
}

/// `--max-message-size` has a ceiling (64 MiB): a message is held whole in
/// memory, so 4 GB would let one client take the machine's.
#[test]
fn the_maximum_message_size_has_a_ceiling() {
    for program in [SERVER, CLIENT] {
        let mut over = Program::spawn(program, &["--max-message-size", "4000000000"]);
        over.expect_status("from 1 to 67108864 (64 MiB)");
        assert_eq!(over.wait().code(), Some(2));
    }
}

/// A flood of failing TLS handshakes (a scanner, a fuzzer) is told to the
/// operator at most about once a second, with a count and the last one's
/// words, not a line each: the log stays readable.
#[test]
fn failed_handshakes_are_told_once_a_second_with_a_count() {
    let dir = scratch("handshake-flood");
    let (mut server, _) = tls_server(&dir, &[], &[]);
    // A TLS record header, then a handshake that is not one.
    let bogus = [0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff];
    for _ in 0..200 {
        let mut peer = server.raw();
        peer.write_all(&bogus).unwrap();
        let _ = peer.read(&mut [0; 64]);
    }
    // The end of the burst is told once its second is over.
    let deadline = Instant::now() + support::PATIENCE;
    let failures = loop {
        let said = server.drain_stderr();
        let failures: Vec<String> = said
            .into_iter()
            .filter(|line| line.contains("TLS handshake"))
            .collect();
        let counted: u64 = failures
            .iter()
            .map(
                |line| match line.find(" TLS handshakes failed since the last report") {
                    Some(at) => line["error: ".len()..at].parse::<u64>().unwrap(),
                    None => 1,
                },
            )
            .sum();
        if counted >= 200 {
            assert_eq!(counted, 200, "{failures:?}");
            break failures;
        }
        assert!(
            Instant::now() < deadline,
            "told {counted} of 200: {failures:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        failures.len() <= 6,
        "{} lines: {failures:?}",
        failures.len()
    );
}

/// A TLS client whose hello reaches the server after its wait for a first
/// byte (a slow, lossy link) is told, in plain text, to use TLS. Ours then
/// knows its hello came late, not that the server is plain: it tries once
/// more, and if told so again, says exactly that (not "a plain
/// chat-server?").
#[test]
fn a_tls_client_told_its_hello_came_late_tries_once_more() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let refusal = frame(b"-- refused: this server speaks TLS only: connect with chat-client --tls");
    let server = std::thread::spawn(move || {
        let mut tries = 0;
        for stream in listener.incoming().take(2) {
            let mut stream = stream.unwrap();
            // As a TLS server whose wait ran out before the hello came;
            // a try is a connection whose first byte is a TLS record's.
            stream.write_all(&refusal).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut first = [0; 1];
            if stream.read_exact(&mut first).is_ok() && first[0] == 0x16 {
                tries += 1;
            }
        }
        tries
    });
    let dir = scratch("late-hello");
    let known = path(&dir, "known_hosts");
    let mut client = Program::spawn(
        CLIENT,
        &["--connect", &address, "--tls", "--known-hosts", &known],
    );
    client.expect_status("took this client for a plain one: its TLS hello came too late");
    assert_eq!(client.wait().code(), Some(1));
    // If it did not try again, this is the second connection (no hello).
    drop(std::net::TcpStream::connect(&address));
    assert_eq!(server.join().unwrap(), 2, "tried once more");
    assert!(
        !client
            .drain_stderr()
            .iter()
            .any(|l| l.contains("plain chat-server")),
        "{:?}",
        client.drain_stderr()
    );
}

/// Clients that open TLS connections and then say nothing cannot keep a
/// real client out: with every handshake slot taken (64, by 8 addresses
/// of 8 each), a newcomer from another address ends the oldest and gets
/// in. Linux: it binds the loopback addresses 127.0.0.2 to 127.0.0.9.
#[cfg(target_os = "linux")]
#[test]
fn idle_handshakes_cannot_keep_a_real_client_out() {
    use socket2::{Domain, Socket, Type};
    let dir = scratch("idle-handshakes");
    let (mut server, _) = tls_server(&dir, &[], &[]);
    let mut idle = Vec::new();
    for host in 2..=9u8 {
        for _ in 0..8 {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            let from: std::net::SocketAddr = ([127, 0, 0, host], 0).into();
            socket.bind(&from.into()).unwrap();
            socket.connect(&server.addr.into()).unwrap();
            let mut stream: std::net::TcpStream = socket.into();
            // The first byte of a TLS record, then nothing: a handshake
            // that takes its slot for the whole of its time.
            stream.write_all(&[0x16]).unwrap();
            idle.push(stream);
        }
    }
    // Every slot taken: one more from those addresses is refused.
    let deadline = Instant::now() + support::PATIENCE;
    while server
        .said("too many clients in the TLS handshake")
        .is_none()
    {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let from: std::net::SocketAddr = ([127, 0, 0, 2], 0).into();
        socket.bind(&from.into()).unwrap();
        socket.connect(&server.addr.into()).unwrap();
        assert!(Instant::now() < deadline, "never full");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut client = tls_client(&server, &dir, &[], &[]);
    client.expect_status("connected to");
    server.expect_status("TLS handshake cut short: the oldest");
    client.say("let in");
    server.expect_message("let in");
    drop(idle);
}

/// A real client whose handshake is slow (a long link) is not the one cut
/// when every slot is taken and more come: the handshake cut is the oldest
/// of the network holding the most slots (127.1.0.0/24 here, 63 of 64),
/// not the oldest of all (the real one's, from 127.0.0.1). Linux: it binds
/// 127.1.0.1 to 127.1.0.9.
#[cfg(target_os = "linux")]
#[test]
fn a_slow_real_handshake_is_not_cut_for_a_network_holding_the_most() {
    let dir = scratch("slow-handshake");
    let (mut server, _) = tls_server(&dir, &[], &[]);
    // The first byte of a TLS record, then nothing: a handshake that has
    // not progressed, as a real one on a slow link looks for a while.
    let mut real = std::net::TcpStream::connect(server.addr).unwrap();
    real.write_all(&[0x16]).unwrap();
    let mut idle = Vec::new();
    for n in 0..63u8 {
        let mut stream = support::connect_from(server.addr, &format!("127.1.0.{}", 1 + n / 8));
        stream.write_all(&[0x16]).unwrap();
        idle.push(stream);
    }
    // One more from the same network, from an address under its share.
    let mut more = support::connect_from(server.addr, "127.1.0.9");
    more.write_all(&[0x16]).unwrap();
    let cut = server.expect_status("TLS handshake cut short");
    assert!(
        cut.contains("127.1.0.1:")
            && cut.ends_with(
                "the oldest of 127.1.0.0/24, which held the most (63) of the 64 when a newcomer came"
            ),
        "{cut}"
    );
    // The real one's handshake is still there: it goes on when its bytes
    // come (here, the rest of a record that is no handshake: it fails, as
    // the server says, rather than having been cut).
    real.write_all(&[3, 1, 0, 4, 0xff, 0, 0, 0]).unwrap();
    let failed = server.expect_status("TLS handshake failed");
    assert!(failed.contains("127.0.0.1:"), "{failed}");
    drop(idle);
}

/// Guessers of the code from eight networks (127.1.0.0/24 to
/// 127.1.7.0/24), each guessing again as soon as it is answered, do not
/// keep a real client with the right code out: it goes before them at the
/// code gate (they have presented proofs again and again, it none), and is
/// connected. First come, first served kept their guesses five seconds
/// deep ahead of it, and refused it as busy. Linux: it binds 127.1.N.1.
#[cfg(target_os = "linux")]
#[test]
fn code_guessers_from_many_networks_do_not_keep_a_real_client_out() {
    let dir = scratch("code-guessers");
    let code = [("CHAT_CODE", "42-orbit-velvet-candle")];
    let (mut server, _) = tls_server(&dir, &["--code"], &code);
    // Each guess: a handshake, the server's own SPAKE2 point sent back as
    // ours (valid, and free to make), then a random proof. Says `warm`
    // once every guesser has been answered twice, and guesses on until
    // its stdin closes.
    let script = r#"
import os, socket, ssl, struct, sys, threading, time
host, port = sys.argv[1].rsplit(":", 1)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
context.set_alpn_protocols(["chat-code"])
answered = [0] * 8
lock = threading.Lock()
def guess(n):
    while True:
        try:
            raw = socket.create_connection((host, int(port)), source_address=("127.1.%d.1" % n, 0))
            tls = context.wrap_socket(raw)
            def exactly(k):
                data = b""
                while len(data) < k:
                    chunk = tls.recv(k - len(data))
                    if not chunk:
                        raise OSError("closed")
                    data += chunk
                return data
            def frame():
                (length,) = struct.unpack("!I", exactly(4))
                return exactly(length)
            theirs = frame()
            tls.sendall(struct.pack("!I", 33) + b"A" + theirs[1:])
            time.sleep(0.02)
            tls.sendall(struct.pack("!I", 32) + os.urandom(32))
            frame()
            tls.close()
        except OSError:
            time.sleep(0.02)
            continue
        with lock:
            answered[n] += 1
            if min(answered) == 2 and answered[n] == 2:
                print("warm", flush=True)
for n in range(8):
    threading.Thread(target=guess, args=(n,), daemon=True).start()
sys.stdin.read()
"#;
    let mut python = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(server.addr.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("this test needs python3 (Debian: apt-get install python3)");
    let mut warm = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(python.stdout.take().unwrap()),
        &mut warm,
    )
    .unwrap();
    assert_eq!(warm, "warm\n");
    let mut real = tls_client(&server, &dir, &["--code"], &code);
    real.expect_status("knows the code");
    server.expect_status("connected");
    real.say("in, past the guessers");
    server.expect_message("in, past the guessers");
    drop(python.stdin.take());
    let _ = python.kill();
    let _ = python.wait();
}

/// Runs the Python `script` against `server` (its address as the script's
/// argument), its stdout kept.
#[cfg(unix)]
fn python_peer(script: &str, server: &Server) -> std::process::Child {
    std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(server.addr.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        // Not a pass without it: the test says what it needs.
        .expect("this test needs python3 (Debian: apt-get install python3)")
}

/// What a [`python_peer`] printed, once it finished (within the patience).
#[cfg(unix)]
fn python_said(mut python: std::process::Child) -> String {
    let deadline = Instant::now() + support::PATIENCE;
    while python.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "python did not finish");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut said = String::new();
    python
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    said
}

/// Garbage from a client waiting in line (a length over the maximum, an
/// HTTP request) is a protocol error in the operator's log, as it is from
/// the client being served; it was logged as the client leaving the line.
#[test]
fn garbage_from_a_client_in_line_is_logged_as_a_protocol_error() {
    let mut server = Server::start(&[]);
    let mut first = server.raw();
    first.write_all(&frame(b"i am served")).unwrap();
    server.expect_message("i am served");
    let mut second = server.raw();
    second.write_all(&frame(b"")).unwrap();
    assert!(read_text(&mut second).contains("number 1 in line"));
    second.write_all(&[0xff; 4]).unwrap();
    let said = server.expect_status("protocol error: message of 4294967295 bytes");
    assert!(said.starts_with("error: 127.0.0.1:"), "{said}");
    assert!(said.ends_with("(waiting in line)"), "{said}");
    assert!(server.said("left the line").is_none());
}
