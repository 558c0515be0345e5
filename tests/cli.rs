//! The conventions of the command line: `--version` says the protocols a
//! build speaks, and `--generate` writes man pages and completions made
//! from the same definitions as `--help`, which the tools that read them
//! accept.

mod support;

use std::process::{Command, Stdio};

use support::{CLIENT, SERVER};

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the program");
    assert!(out.status.success(), "{program} {args:?}: {:?}", out.status);
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn the_version_says_the_protocols_spoken() {
    for (program, name) in [(SERVER, "chat-server"), (CLIENT, "chat-client")] {
        let said = run(program, &["--version"]);
        assert!(said.starts_with(&format!("{name} ")), "{said}");
        assert!(said.contains("chat protocol 1 and 2"), "{said}");
    }
}

#[test]
fn man_pages_describe_every_flag_and_man_reads_them() {
    for (program, name, flags) in [
        (
            SERVER,
            "chat-server",
            &["--bind", "--room", "--dead-after", "--protocol"][..],
        ),
        (
            CLIENT,
            "chat-client",
            &["--connect", "--name", "--dead-after", "--protocol"][..],
        ),
    ] {
        let page = run(program, &["--generate", "man"]);
        assert!(page.contains(&format!(".TH {name} 1")), "{page}");
        for flag in flags {
            assert!(
                page.contains(&flag.replace('-', "\\-")),
                "{name}: no {flag}"
            );
        }
        // What no flag says: the editor's keys and the environment.
        for said in [
            "Alt\\-Enter",
            "Ctrl\\-R",
            "CHAT_TIMESTAMPS",
            "CHAT_CODE",
            "NO_COLOR",
        ] {
            assert!(page.contains(said), "{name}: no {said}");
        }
        // `man -l` renders it, where man is installed.
        #[cfg(unix)]
        if let Ok(mut man) = Command::new("man")
            .args(["-l", "-"])
            .env("MANPAGER", "cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            use std::io::Write;
            man.stdin
                .take()
                .unwrap()
                .write_all(page.as_bytes())
                .unwrap();
            let out = man.wait_with_output().unwrap();
            assert!(out.status.success(), "man -l: {:?}", out);
            let shown = String::from_utf8_lossy(&out.stdout);
            assert!(shown.contains("NAME") && shown.contains(name), "{shown}");
        } else {
            eprintln!("man is not installed: its reading of the page not checked");
        }
    }
}

#[test]
fn completions_are_written_for_each_shell_and_bash_accepts_its_own() {
    for (program, name) in [(SERVER, "chat-server"), (CLIENT, "chat-client")] {
        for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
            let script = run(program, &["--generate", &format!("complete-{shell}")]);
            assert!(script.contains(name), "{name} {shell}: {script}");
            assert!(script.contains("dead-after"), "{name} {shell}: no flags");
        }
        #[cfg(unix)]
        {
            let script = run(program, &["--generate", "complete-bash"]);
            let checked = Command::new("bash")
                .args(["-n", "-c", &script])
                .status()
                .expect("bash, which the tests need");
            assert!(checked.success(), "bash -n refused {name}'s completions");
        }
    }
}

/// `CHAT_TIMESTAMPS` empty is as unset (`export CHAT_TIMESTAMPS=` is how
/// many unset a default: it stopped the program), a word that is no switch
/// is a usage error (2), and `--timestamps=false` turns the default off.
#[test]
fn an_empty_chat_timestamps_is_unset_and_the_flag_can_say_false() {
    let status = |env: &str, args: &[&str]| {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap().to_string();
        drop(closed);
        let mut all = vec!["--connect", addr.as_str()];
        all.extend_from_slice(args);
        Command::new(CLIENT)
            .args(&all)
            .env("CHAT_TIMESTAMPS", env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run the client")
            .code()
    };
    // 1: it ran, and could not connect.
    assert_eq!(status("", &[]), Some(1));
    assert_eq!(status("1", &["--timestamps=false"]), Some(1));
    assert_eq!(status("0", &["--timestamps"]), Some(1));
    assert_eq!(status("bogus", &[]), Some(2));
}
