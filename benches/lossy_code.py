#!/usr/bin/env python3
"""Issue 19, item 7: `--tls --code` across an emulated lossy link, N tries.

    python3 benches/lossy_code.py BINDIR [N] [LINK_JSON]

As root, with ../shared/tools/netem.py: the server in namespace chat-a, a
client in chat-b that connects, proves the code, says one line and quits;
prints how many tries exited 0, their median and slowest time, and the
failures. Default link: 300 ms +- 100 ms each way, 20 % loss."""
import os, subprocess, sys, time, json, tempfile
B = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 25
NET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "tools", "netem.py")
link = sys.argv[3] if len(sys.argv) > 3 else '{"delay":0.3,"jitter":0.1,"loss":0.2}'
subprocess.run(["python3", NET, "down"], capture_output=True)
subprocess.run(["python3", NET, "up"], check=True)
subprocess.run(["python3", NET, "set", link], check=True)
d = tempfile.mkdtemp(prefix="item7-")
env = dict(os.environ, CHAT_CODE="7-orbit-velvet-candle")
srv_err = open(f"{d}/server.err", "w")
server = subprocess.Popen(["ip", "netns", "exec", "chat-a", f"{B}/chat-server", "--room", "--tls", "--code",
                           "--bind", "10.231.0.1:9527", "--identity", f"{d}/id.pem"],
                          stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=srv_err, env=env)
time.sleep(1.5)
ok, fails, times = 0, [], []
for i in range(N):
    t0 = time.time()
    try:
        p = subprocess.run(["ip", "netns", "exec", "chat-b", f"{B}/chat-client", "--connect", "10.231.0.1:9527",
                            "--tls", "--code", "--known-hosts", f"{d}/known", "--name", f"t{i}"],
                           input=f"hello {i}\nq\n", capture_output=True, text=True, env=env, timeout=120)
        dt = time.time() - t0
        if p.returncode == 0:
            ok += 1; times.append(dt)
        else:
            fails.append((i, p.returncode, round(dt, 1), p.stderr.strip().splitlines()[-3:]))
    except subprocess.TimeoutExpired:
        fails.append((i, "timeout", 120, []))
    print(f"try {i}: ok={ok} fails={len(fails)} ({time.time()-t0:.1f} s)", flush=True)
server.terminate(); server.wait()
subprocess.run(["python3", NET, "down"], capture_output=True)
times.sort()
print(json.dumps({"link": link, "ok": ok, "of": N, "median_s": times[len(times)//2] if times else None,
                  "max_s": max(times) if times else None, "fails": fails}, indent=1))
