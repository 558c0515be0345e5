#!/usr/bin/env python3
"""50 real chat-client processes, 10 s of `yes` each, into one room.
Counts lines sent (what each client read from its stdin), lines each
member received from each other member, members disconnected, time until
every member has every other member's lines, and the server's peak RSS."""
import os, subprocess, sys, time, re
N = int(os.environ.get("N", "50"))
BIN = sys.argv[1]          # directory with chat-server and chat-client
# Usage: python3 ours.py target/release WORKDIR [chat-server flags...]
D = sys.argv[2]; os.makedirs(D, exist_ok=True)
srv = subprocess.Popen([f"{BIN}/chat-server", "--room", "--bind", "127.0.0.1:0", "--max-clients", "200"] + sys.argv[3:],
                       stdin=subprocess.PIPE, stdout=open(f"{D}/server.out", "wb"), stderr=subprocess.PIPE)
line = srv.stderr.readline().decode()
addr = re.search(r"listening on (\S+)", line).group(1)
err = open(f"{D}/server.err", "wb")
import threading
def pump():
    for l in srv.stderr: err.write(l); err.flush()
threading.Thread(target=pump, daemon=True).start()
clients = []
start = time.time()
for i in range(N):
    # Everyone talks once everyone is in (a member that joined late missed
    # what was said before, and that is not a loss).
    cmd = (f'{{ while [ ! -e {D}/go ]; do sleep 0.05; done; '
           f'timeout 10 yes "c{i} some line of text"; }} | tee >(wc -l > {D}/sent.{i}) '
           f'| {{ cat; sleep 100000; }} | {BIN}/chat-client --connect {addr} --name c{i} > {D}/out.{i} 2> {D}/err.{i}')
    clients.append(subprocess.Popen(["bash", "-c", cmd], start_new_session=True))
def count(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0
while open(f"{D}/server.err", "rb").read().count(b" joined") < N and time.time() - start < 60:
    time.sleep(0.1)
open(f"{D}/go", "w").close()
start = time.time()
done_at = None
sent = None
while time.time() - start < 900:
    time.sleep(2)
    if sent is None and all(os.path.exists(f"{D}/sent.{i}") and open(f"{D}/sent.{i}").read().strip() for i in range(N)):
        sent = [int(open(f"{D}/sent.{i}").read()) for i in range(N)]
        total = sum(sent)
        print(f"sent: {total} lines in all ({time.time()-start:.0f} s)", flush=True)
    if sent is not None:
        got = [count(f"{D}/out.{i}") for i in range(N)]
        if all(got[i] >= total - sent[i] for i in range(N)):
            done_at = time.time() - start
            break
    dis = open(f"{D}/server.err", "rb").read().count(b"was disconnected")
    if dis == N: break
hwm = re.search(r"VmHWM:\s+(\d+)", open(f"/proc/{srv.pid}/status").read()).group(1)
got = [count(f"{D}/out.{i}") for i in range(N)]
# Per member, lines from each other member, checked against what it sent.
lost = 0
for i in range(N):
    per = {}
    with open(f"{D}/out.{i}", "rb") as f:
        for l in f:
            who = l.split(b":", 1)[0]
            per[who] = per.get(who, 0) + 1
    for k in range(N):
        if k != i and sent:
            lost += max(0, sent[k] - per.get(f"c{k}".encode(), 0))
dis = open(f"{D}/server.err", "rb").read().count(b"was disconnected")
print(f"members={N} sent={sum(sent) if sent else '?'} lost_deliveries={lost} disconnected={dis} "
      f"finished_after={'%.0f s' % done_at if done_at else 'not finished'} server_peak_rss={int(hwm)/1024:.1f} MiB")
for p in clients:
    try: os.killpg(p.pid, 9)
    except Exception: pass
srv.kill()
