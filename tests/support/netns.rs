//! Two network namespaces made by a test, joined by a veth pair, so that
//! the programs talk across a link the test can cut without a word (no FIN,
//! no reset): the server in one, the client in the other. Needs root and
//! `ip`; [`Link::new`] says so on stderr and returns `None` otherwise, and
//! the test then passes without checking anything, visibly.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::{CLIENT, Program, SERVER};

/// The server's side is 10.233.N.1, the client's 10.233.N.2.
pub struct Link {
    server_ns: String,
    client_ns: String,
    server_end: String,
    client_end: String,
    /// The client's address and its subnet (`10.233.N.2/24`).
    client_ip: String,
    pub server_ip: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

impl Link {
    /// A fresh pair of namespaces for the test `name`, or `None` (said)
    /// where they cannot be made.
    pub fn new(name: &str) -> Option<Self> {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        // Unique across test processes running at once, and short: an
        // interface name has at most 15 bytes.
        let tag = format!("{}x{n}", std::process::id() % 100_000);
        let link = Self {
            server_ns: format!("chat-s{tag}"),
            client_ns: format!("chat-c{tag}"),
            server_end: format!("cs{tag}"),
            client_end: format!("cc{tag}"),
            client_ip: format!("10.233.{}.2/24", n % 250),
            server_ip: format!("10.233.{}.1", n % 250),
        };
        let (client_end, client_ip) = (link.client_end.clone(), link.client_ip.clone());
        let made = ip(&["netns", "add", &link.server_ns])
            && ip(&["netns", "add", &link.client_ns])
            && ip(&[
                "link",
                "add",
                &link.server_end,
                "netns",
                &link.server_ns,
                "type",
                "veth",
                "peer",
                "name",
                &client_end,
                "netns",
                &link.client_ns,
            ])
            && ip(&[
                "-n",
                &link.server_ns,
                "addr",
                "add",
                &format!("{}/24", link.server_ip),
                "dev",
                &link.server_end,
            ])
            && ip(&[
                "-n",
                &link.client_ns,
                "addr",
                "add",
                &client_ip,
                "dev",
                &client_end,
            ])
            && ip(&["-n", &link.server_ns, "link", "set", &link.server_end, "up"])
            && ip(&["-n", &link.client_ns, "link", "set", &client_end, "up"])
            && ip(&["-n", &link.server_ns, "link", "set", "lo", "up"])
            && ip(&["-n", &link.client_ns, "link", "set", "lo", "up"]);
        if !made {
            eprintln!(
                "{name}: skipped: two network namespaces could not be made here (needs root and ip)"
            );
            return None;
        }
        Some(link)
    }

    /// chat-server in the server's namespace on its address (a free
    /// port), with `args`, once it listens; and the address.
    pub fn listening(&self, args: &[&str]) -> (Program, String) {
        let bind = format!("{}:0", self.server_ip);
        let mut all = vec!["--bind", &bind];
        all.extend_from_slice(args);
        let mut server = self.server(&all);
        let line = server.expect_status("listening on ");
        let address = line["listening on ".len()..].to_string();
        (server, address)
    }

    /// chat-server in the server's namespace, with `args`.
    pub fn server(&self, args: &[&str]) -> Program {
        Program::spawn_command(
            Command::new("ip")
                .args(["netns", "exec", &self.server_ns, SERVER])
                .args(args),
        )
    }

    /// chat-client in the client's namespace, with `args`.
    pub fn client(&self, args: &[&str]) -> Program {
        Program::spawn_command(
            Command::new("ip")
                .args(["netns", "exec", &self.client_ns, CLIENT])
                .args(args),
        )
    }

    /// The server's machine vanishes: its end of the link goes down, and
    /// nothing more passes either way, without a word to anyone.
    pub fn cut(&self) {
        assert!(
            ip(&[
                "-n",
                &self.server_ns,
                "link",
                "set",
                &self.server_end,
                "down"
            ]),
            "cannot set the link down"
        );
    }

    /// The server's machine is back: its end of the link comes up again.
    pub fn restore(&self) {
        assert!(
            ip(&["-n", &self.server_ns, "link", "set", &self.server_end, "up"]),
            "cannot set the link up"
        );
    }

    /// The client's machine changes its address (a laptop on another
    /// network): `10.233.N.3` instead of `.2`, which is gone. Returns the
    /// new address.
    pub fn roam(&self) -> String {
        let new = self.client_ip.replace(".2/24", ".3/24");
        // The old one goes first: a second address in the same subnet is
        // deleted with the first.
        assert!(
            ip(&[
                "-n",
                &self.client_ns,
                "addr",
                "del",
                &self.client_ip,
                "dev",
                &self.client_end
            ]) && ip(&[
                "-n",
                &self.client_ns,
                "addr",
                "add",
                &new,
                "dev",
                &self.client_end
            ]),
            "cannot change the client's address"
        );
        new.trim_end_matches("/24").to_string()
    }

    /// chat-client in the server's own namespace (its link never cut).
    pub fn client_beside_server(&self, args: &[&str]) -> Program {
        Program::spawn_command(
            Command::new("ip")
                .args(["netns", "exec", &self.server_ns, CLIENT])
                .args(args),
        )
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // The veth pair goes with its namespaces.
        ip(&["netns", "del", &self.server_ns]);
        ip(&["netns", "del", &self.client_ns]);
    }
}
