"""The same flood into ngircd: 50 IRC clients (irc_client.py) in one channel,
each sending PRIVMSG as fast as ngircd takes it for 10 s, then reading until
it has every other client's lines. Usage: python3 ngircd.py [WORKDIR]."""
import os, subprocess, sys, time, re, glob
HERE = os.path.dirname(os.path.abspath(__file__))
N = int(os.environ.get("N", "50")); D = sys.argv[1] if len(sys.argv) > 1 else "/tmp/flood-ngircd"
os.system(f"rm -rf {D}; mkdir -p {D}")
srv = subprocess.Popen(["ngircd", "-n", "-f", f"{HERE}/ngircd.conf"], stdout=open(f"{D}/srv.log","wb"), stderr=subprocess.STDOUT)
time.sleep(1)
cl = [subprocess.Popen([sys.executable, f"{HERE}/irc_client.py", str(i), D]) for i in range(N)]
while len(glob.glob(f"{D}/joined.*")) < N: time.sleep(0.2)
start = time.time(); open(f"{D}/go","w").write("1")
done = None
while time.time() - start < float(os.environ.get("CAP", "1200")):
    time.sleep(2)
    ps = []
    for i in range(N):
        try: ps.append(open(f"{D}/p.{i}").read().split())
        except Exception: ps.append(["-1","0"])
    sent = [int(p[0]) for p in ps]; got = [int(p[1]) for p in ps]
    if min(sent) >= 0:
        total = sum(sent)
        if all(got[i] >= total - sent[i] for i in range(N)):
            done = time.time() - start; break
        if all(len(p) > 2 for p in ps): break
hwm = re.search(r"VmHWM:\s+(\d+)", open(f"/proc/{srv.pid}/status").read()).group(1)
closed = sum(1 for p in ps if len(p) > 2)
lost = sum(max(0, (total - sent[i]) - got[i]) for i in range(N)) if min(sent) >= 0 else "?"
print(f"ngircd members={N} sent={sum(sent)} lost_deliveries={lost} disconnected={closed} finished_after={'%.0f s' % done if done else 'not finished'} peak_rss={int(hwm)/1024:.1f} MiB")
for p in cl: p.kill()
srv.kill()
