#!/usr/bin/env python3
"""Idle connections against chat-server, and a legitimate client trying to
get in meanwhile (issue 19, item 6: "idle plain connections that never send
a byte cannot hold conversation or room places for long").

    python3 benches/idle/idle.py --mode conv --idle 10
    python3 benches/idle/idle.py --mode room --idle 5000 -- --max-clients 5000
    python3 benches/idle/idle.py --mode room --idle 100 --reconnect
    python3 benches/idle/idle.py --mode room --idle 100 --rate 20
    python3 benches/idle/idle.py --mode conv --idle 10 --rate 50 --networks 5
    python3 benches/idle/idle.py --tls hello --idle 200 --addresses 50 --networks 50
    python3 benches/idle/idle.py --code --guessers 40 --networks 40

Starts the release `chat-server` on a free loopback port (arguments after
`--` go to it), opens IDLE plain TCP connections that never send a byte
(with --reconnect, each one cut off is replaced at once, as an attacker
would; with --rate R, R more a second besides, all the time), then runs the real `chat-client` every half second until it gets a
place: a place in the waiting line or the conversation (conversation mode),
or a seat in the room. Prints how long that took, how many tries, how many
idle connections the server let go, and how many lines its log had.

Where the attacker is: its connections come from --addresses source
addresses spread over --networks IPv4 /24s of loopback (127.1.0.1,
127.1.1.1, …; the server counts networks by /24), the real client from
127.0.0.1, another network; with --share-network, the attacker's come from
127.0.0.2… instead, the real client's own network.

With --tls (server and client speak TLS; the client is given the server's
fingerprint), idle connections either send nothing (--tls silent: they
hold a handshake slot until the server takes them for plain clients) or a
TLS ClientHello and nothing more (--tls hello: they hold one until the
handshake's deadline). With --code (TLS and a shared code, which the real
client knows), --guessers N threads (over --addresses/--networks, one
address each in turn) guess the code as fast as the server lets them:
each completes a TLS handshake, replays a valid SPAKE2 message and sends a
random proof, which costs the server a check. The real client has
--patience seconds (3, or 10 with TLS) to get in on each try.

Loopback only (Linux: all of 127.0.0.0/8 is loopback); needs the release
binaries (`cargo build --release`), or CHAT_BIN=DIR where chat-server and
chat-client are. With --tls and --slow-client SECS, the real client is a
TLS client played by this script, each of its flights sent SECS late, as
over a slow link: it gets in if its handshake is done and not cut.
"""

import argparse
import os
import resource
import selectors
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "..", "..", "target"))
BIN = os.environ.get("CHAT_BIN", os.path.join(TARGET, "release"))


CODE = "7-orbit-velvet-candle"


def attacker_addresses(addresses, networks, share):
    """ADDRESSES source addresses over NETWORKS /24s of loopback, or in the
    real client's own 127.0.0.0/24 with SHARE."""
    if share:
        return ["127.0.0.%d" % (2 + i) for i in range(min(addresses, 250))]
    networks = max(1, min(networks, addresses))
    out = []
    for i in range(addresses):
        net, host = i % networks, i // networks
        out.append("127.%d.%d.%d" % (1 + net // 256, net % 256, 1 + host))
    return out


def start_server(mode, extra, tls=None, code=False):
    args = [os.path.join(BIN, "chat-server"), "--bind", "127.0.0.1:0"]
    if mode == "room":
        args.append("--room")
    env = dict(os.environ)
    if tls:
        args += ["--tls", "--identity", os.path.join(tls, "identity.pem")]
    if code:
        args.append("--code")
        env["CHAT_CODE"] = CODE
    args += extra
    # The operator's input stays open (a closed one is fine too, but an
    # open one is the usual case), and nobody types.
    server = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    lines = []
    fingerprint = None
    for raw in server.stderr:
        line = raw.decode(errors="replace").rstrip("\n")
        lines.append(line)
        if "TLS identity " in line:
            fingerprint = line.split("TLS identity ")[1].split()[0]
        if "listening on " in line:
            address = line.split("listening on ")[1].split()[0]
            break
    else:
        sys.exit("the server did not say where it listens: " + "\n".join(lines))
    log = {"lines": len(lines), "let_go": 0, "text": lines, "fingerprint": fingerprint}

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

    def __init__(self, address, count, reconnect, rate=0.0, sources=None, hello=None):
        self.address = address
        self.reconnect = reconnect
        self.sources = sources or [None]
        self.next_source = 0
        self.hello = hello
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
        source = self.sources[self.next_source % len(self.sources)]
        self.next_source += 1
        try:
            sock = socket.create_connection(
                self.address, source_address=(source, 0) if source else None
            )
            if self.hello:
                sock.sendall(self.hello())
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


def client_hello(alpn):
    """A TLS ClientHello, new each time, as a real client's first flight."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols([alpn])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class Guessers:
    """Threads that guess the code as fast as the server lets them, each
    from one source address (thread n from the n-th): a TLS handshake, a replayed
    SPAKE2 message (the server's own point, marked as the client's: valid,
    and free to make) and a random proof, which takes the server a check."""

    def __init__(self, address, count, sources):
        self.address = address
        self.sources = sources
        self.tries = 0
        self.busy = 0
        self.wrong = 0
        self.lock = threading.Lock()
        for n in range(count):
            threading.Thread(target=self.guess, args=(n,), daemon=True).start()

    def guess(self, n):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["chat-code"])
        source = self.sources[n % len(self.sources)]
        while True:
            try:
                raw = socket.create_connection(self.address, source_address=(source, 0), timeout=40)
                tls = context.wrap_socket(raw)
                theirs = read_frame(tls)
                # As our client does: the message, then the proof once the
                # server's message has come (before the gate took every
                # frame of a read, both in one record stalled the check).
                tls.sendall(frame(b"A" + theirs[1:]))
                time.sleep(0.05)
                tls.sendall(frame(os.urandom(32)))
                answer = read_frame(tls)
                tls.close()
            except (OSError, ValueError):
                time.sleep(0.05)
                continue
            with self.lock:
                self.tries += 1
                if b"too many" in answer:
                    self.busy += 1
                elif b"wrong code" in answer:
                    self.wrong += 1


def frame(payload):
    return struct.pack("!I", len(payload)) + payload


def read_frame(stream):
    def exactly(n):
        data = b""
        while len(data) < n:
            more = stream.recv(n - len(data))
            if not more:
                raise ValueError("closed")
            data += more
        return data

    (length,) = struct.unpack("!I", exactly(4))
    return exactly(length)


def slow_tls_try(address, delay, patience):
    """A TLS client on a slow link, played here: each flight it sends
    leaves DELAY seconds after the last answer came. True if its handshake
    was done and the server still held it a second later; False if cut."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["chat"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)
    try:
        sock = socket.create_connection(address, timeout=patience)
        while True:
            try:
                tls.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            flight = outgoing.read()
            if flight:
                time.sleep(delay)
                sock.sendall(flight)
            if done:
                break
            answer = sock.recv(65536)
            if not answer:
                return False
            incoming.write(answer)
        sock.settimeout(1.0)
        try:
            return sock.recv(1) != b""
        except socket.timeout:
            return True
    except OSError:
        return False


def legitimate_try(address, mode, patience, tls=None, fingerprint=None, code=False):
    """Runs chat-client once: True if it got a place, False if refused."""
    args = [os.path.join(BIN, "chat-client"), "--connect", "%s:%d" % address]
    if mode == "room":
        args += ["--name", "legit"]
    env = dict(os.environ)
    if tls:
        args += ["--tls", "--known-hosts", os.path.join(tls, "known_hosts")]
        if code:
            args.append("--code")
            env["CHAT_CODE"] = CODE
        else:
            args += ["--fingerprint", fingerprint]
    client = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
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
            if tls and mode == "conv" and "connected to" in line:
                got[0] = True
                return
            if "refused" in line or "full" in line or "not served" in line or "error" in line:
                got[0] = False
                return
        got[0] = False

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(patience)
    if got[0] is None and mode == "conv" and not tls and client.poll() is None:
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
    parser.add_argument("--addresses", type=int, default=1, help="source addresses of the idle connections (and guessers)")
    parser.add_argument("--networks", type=int, default=1, help="IPv4 /24s those addresses are spread over")
    parser.add_argument("--share-network", action="store_true", help="the attacker in the real client's own /24")
    parser.add_argument("--tls", choices=["silent", "hello"], help="a TLS server; idle connections send nothing, or a ClientHello")
    parser.add_argument("--code", action="store_true", help="a TLS server with a shared code, which the real client knows")
    parser.add_argument("--guessers", type=int, default=0, help="threads guessing the code (with --code)")
    parser.add_argument("--patience", type=float, help="seconds a try of the real client may take")
    parser.add_argument("--slow-client", type=float, metavar="SECS", help="with --tls: the real client is played here, each flight it sends SECS late (a slow link)")
    parser.add_argument("server_args", nargs="*")
    options = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    tls = None
    if options.tls or options.code:
        tls = tempfile.mkdtemp(prefix="idle-tls-")
    server, address, log = start_server(options.mode, options.server_args, tls, options.code)
    sources = attacker_addresses(options.addresses, options.networks, options.share_network)
    hello = None
    if options.tls == "hello" or (options.code and options.idle):
        alpn = "chat-code" if options.code else "chat"
        hello = lambda: client_hello(alpn)
    began = time.monotonic()
    idlers = Idlers(address, options.idle, options.reconnect, options.rate, sources, hello)
    guessers = None
    if options.guessers:
        guessers = Guessers(address, options.guessers, sources)
    opened = time.monotonic() - began
    time.sleep(options.warm_up)
    patience = options.patience or (10.0 if tls else 3.0)
    start = time.monotonic()
    tries = 0
    got_in = None
    while time.monotonic() - start < options.give_up:
        tries += 1
        if options.slow_client is not None:
            ok = slow_tls_try(address, options.slow_client, patience)
        else:
            ok = legitimate_try(address, options.mode, patience, tls, log["fingerprint"], options.code)
        if ok:
            got_in = time.monotonic() - start
            break
        time.sleep(0.5)
    closed = idlers.closed
    if guessers:
        with guessers.lock:
            print(
                "guesses answered: %d (wrong code: %d, refused as busy: %d) in %.0f s"
                % (guessers.tries, guessers.wrong, guessers.busy, time.monotonic() - began)
            )
    server.kill()
    server.wait()
    if options.show_log:
        print("\n".join(log["text"]))
    let_go = sum(
        1 for line in log["text"] if "sent nothing" in line or "said nothing" in line
    )
    print(
        "mode=%s idle=%d reconnect=%s rate=%g warm-up=%g s addresses=%d networks=%d%s tls=%s code=%s guessers=%d "
        "server_args=%r: idle connections opened in %.2f s; "
        "legitimate client %s after %s tries; idle connections closed by the server: %d "
        "(log lines about them: %d); server log lines: %d"
        % (
            options.mode,
            options.idle,
            options.reconnect,
            options.rate,
            options.warm_up,
            options.addresses,
            options.networks,
            " (the real client's)" if options.share_network else "",
            options.tls,
            options.code,
            options.guessers,
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
