#!/usr/bin/env python3
"""Idle connections against chat-server, and a legitimate client trying to
get in meanwhile (issue 19, item 6: "idle plain connections that never send
a byte cannot hold conversation or room places for long").

    python3 benches/idle/idle.py --mode conv --idle 10
    python3 benches/idle/idle.py --mode room --idle 5000 -- --max-clients 5000
    python3 benches/idle/idle.py --mode room --idle 100 --reconnect
    python3 benches/idle/idle.py --mode room --idle 100 --rate 20

Starts the release `chat-server` on a free loopback port (arguments after
`--` go to it), opens IDLE plain TCP connections that never send a byte
(with --reconnect, each one cut off is replaced at once, as an attacker
would; with --rate R, R more a second besides, all the time), then runs the real `chat-client` every half second until it gets a
place: a place in the waiting line or the conversation (conversation mode),
or a seat in the room. Prints how long that took, how many tries, how many
idle connections the server let go, and how many lines its log had.

Loopback only; needs the release binaries (`cargo build --release`), or
CHAT_BIN=DIR where chat-server and chat-client are.
"""

import argparse
import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "..", "..", "target"))
BIN = os.environ.get("CHAT_BIN", os.path.join(TARGET, "release"))


def start_server(mode, extra):
    args = [os.path.join(BIN, "chat-server"), "--bind", "127.0.0.1:0"]
    if mode == "room":
        args.append("--room")
    args += extra
    # The operator's input stays open (a closed one is fine too, but an
    # open one is the usual case), and nobody types.
    server = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    lines = []
    for raw in server.stderr:
        line = raw.decode(errors="replace").rstrip("\n")
        lines.append(line)
        if "listening on " in line:
            address = line.split("listening on ")[1].split()[0]
            break
    else:
        sys.exit("the server did not say where it listens: " + "\n".join(lines))
    log = {"lines": len(lines), "let_go": 0, "text": lines}

    def keep_reading():
        for raw in server.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            log["lines"] += 1
            log["text"].append(line)

    threading.Thread(target=keep_reading, daemon=True).start()
    host, port = address.rsplit(":", 1)
    return server, (host, int(port)), log


class Idlers:
    """IDLE connections that never send a byte; they read (and drop) what
    the server sends, and notice when they are let go."""

    def __init__(self, address, count, reconnect, rate=0.0):
        self.address = address
        self.reconnect = reconnect
        self.selector = selectors.DefaultSelector()
        self.closed = 0
        self.open = 0
        self.lock = threading.Lock()
        for _ in range(count):
            self.connect()
        threading.Thread(target=self.watch, daemon=True).start()
        if rate > 0:
            threading.Thread(target=self.stream, args=(rate,), daemon=True).start()

    def stream(self, rate):
        began = time.monotonic()
        opened = 0
        while True:
            due = int((time.monotonic() - began) * rate)
            while opened < due:
                self.connect()
                opened += 1
            time.sleep(0.01)

    def connect(self):
        try:
            sock = socket.create_connection(self.address)
        except OSError:
            return
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ)
        self.open += 1

    def watch(self):
        while True:
            for key, _ in self.selector.select(timeout=0.2):
                sock = key.fileobj
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    continue
                self.selector.unregister(sock)
                sock.close()
                with self.lock:
                    self.closed += 1
                    self.open -= 1
                if self.reconnect:
                    self.connect()


def legitimate_try(address, mode, patience):
    """Runs chat-client once: True if it got a place, False if refused."""
    args = [os.path.join(BIN, "chat-client"), "--connect", "%s:%d" % address]
    if mode == "room":
        args += ["--name", "legit"]
    client = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    got = [None]

    def read():
        for raw in client.stderr:
            line = raw.decode(errors="replace")
            if mode == "room" and ("you joined as" in line or "welcome to the room" in line):
                got[0] = True
                return
            if mode == "conv" and ("in line" in line or "your turn" in line):
                got[0] = True
                return
            if "refused" in line or "full" in line or "not served" in line:
                got[0] = False
                return
        got[0] = False

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(patience)
    if got[0] is None and mode == "conv" and client.poll() is None:
        # Served at once (no notice: nobody else holds the conversation).
        got[0] = True
    client.kill()
    client.wait()
    return bool(got[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["conv", "room"], default="conv")
    parser.add_argument("--idle", type=int, default=10)
    parser.add_argument("--reconnect", action="store_true")
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--give-up", type=float, default=60.0)
    parser.add_argument("--warm-up", type=float, default=0.5, help="seconds of attack before the first try")
    parser.add_argument("--show-log", action="store_true", help="print the server's stderr")
    parser.add_argument("server_args", nargs="*")
    options = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    server, address, log = start_server(options.mode, options.server_args)
    began = time.monotonic()
    idlers = Idlers(address, options.idle, options.reconnect, options.rate)
    opened = time.monotonic() - began
    time.sleep(options.warm_up)
    start = time.monotonic()
    tries = 0
    got_in = None
    while time.monotonic() - start < options.give_up:
        tries += 1
        if legitimate_try(address, options.mode, 3.0):
            got_in = time.monotonic() - start
            break
        time.sleep(0.5)
    closed = idlers.closed
    server.kill()
    server.wait()
    if options.show_log:
        print("\n".join(log["text"]))
    let_go = sum(
        1 for line in log["text"] if "sent nothing" in line or "said nothing" in line
    )
    print(
        "mode=%s idle=%d reconnect=%s rate=%g warm-up=%g s server_args=%r: idle connections opened in %.2f s; "
        "legitimate client %s after %s tries; idle connections closed by the server: %d "
        "(log lines about them: %d); server log lines: %d"
        % (
            options.mode,
            options.idle,
            options.reconnect,
            options.rate,
            options.warm_up,
            options.server_args,
            opened,
            "got in after %.1f s" % got_in if got_in is not None
            else "did not get in within %.0f s" % options.give_up,
            tries,
            closed,
            let_go,
            log["lines"],
        )
    )


if __name__ == "__main__":
    main()
