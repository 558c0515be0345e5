#!/usr/bin/env python3
"""CPU per line (user+sys of both programs, from wait4) of a 128 MiB piped
flood through chat-client into chat-server --once, several builds
interleaved run by run, so that the machine's drift falls on all alike:

    python3 benches/cpu_per_line.py ROUNDS LINE_LEN NAME=BINDIR...

BINDIR holds chat-server and chat-client (a release build's target
directory, or a copy); a BINDIR of two wrapper scripts that add
`--protocol 1` measures version 1 with the same build; `nc` as BINDIR
measures OpenBSD nc (`nc -N` into `nc -l`) the same way.
"""
import os, subprocess, sys, time, statistics, socket
rounds, line_len = int(sys.argv[1]), int(sys.argv[2])
builds = [a.split('=', 1) for a in sys.argv[3:]]
path = f'/tmp/cpu-lines-{line_len}'
total = 128 << 20
if not os.path.exists(path):
    line = (b'x' * (line_len - 1)) + b'\n'
    with open(path, 'wb') as f:
        f.write(line * (total // line_len))
lines = total // line_len
def run(bindir):
    srv = subprocess.Popen([f'{bindir}/chat-server', '--bind', '127.0.0.1:0', '--once'],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    addr = None
    while addr is None:
        l = srv.stderr.readline().decode()
        if 'listening on ' in l:
            addr = l.split('listening on ')[1].split()[0].rstrip(';')
    t0 = time.time()
    cli = subprocess.Popen([f'{bindir}/chat-client', '--connect', addr], stdin=open(path, 'rb'),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, rc = os.wait4(cli.pid, 0)
    srv.stderr.read()
    _, _, rs = os.wait4(srv.pid, 0)
    el = time.time() - t0
    cpu = rc.ru_utime + rc.ru_stime + rs.ru_utime + rs.ru_stime
    return cpu * 1e9 / lines, el
def run_nc():
    probe = socket.socket()
    probe.bind(('127.0.0.1', 0))
    port = str(probe.getsockname()[1])
    probe.close()
    srv = subprocess.Popen(['nc', '-l', '127.0.0.1', port],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    time.sleep(0.2)
    t0 = time.time()
    cli = subprocess.Popen(['nc', '-N', '127.0.0.1', port], stdin=open(path, 'rb'),
                           stdout=subprocess.DEVNULL)
    _, _, rc = os.wait4(cli.pid, 0)
    _, _, rs = os.wait4(srv.pid, 0)
    el = time.time() - t0
    cpu = rc.ru_utime + rc.ru_stime + rs.ru_utime + rs.ru_stime
    return cpu * 1e9 / lines, el
res = {n: [] for n, _ in builds}
for r in range(rounds):
    for n, b in builds:
        res[n].append(run_nc() if b == 'nc' else run(b))
for n, _ in builds:
    cpu = statistics.median(x[0] for x in res[n]); el = statistics.median(x[1] for x in res[n])
    print(f'{n}: CPU per line {cpu:.1f} ns (median of {rounds}), {total/el/1e6:.0f} MB/s; all: {[round(x[0],1) for x in res[n]]}')
