"""One IRC client of ngircd.py: joins #f, floods it for 10 s once D/go exists,
reports "sent received" in D/p.I every second."""
import socket, sys, time, os, threading
i = int(sys.argv[1]); D = sys.argv[2]
s = socket.create_connection(("127.0.0.1", 6699))
nick = f"c{i}"
s.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode())
buf = b""; joined = False; got = 0; sent = -1; disconnected = False
def lines():
    global buf
    while True:
        while b"\r\n" not in buf:
            d = s.recv(1 << 16)
            if not d:
                return
            buf += d
        l, buf = buf.split(b"\r\n", 1)
        yield l
it = lines()
for l in it:
    if l.startswith(b"PING"):
        s.sendall(b"PONG" + l[4:] + b"\r\n")
    p = l.split(b" ")
    if len(p) > 1 and p[1] == b"001":
        s.sendall(b"JOIN #f\r\n")
    if len(p) > 1 and p[1] == b"366":
        break
open(f"{D}/joined.{i}", "w").write("1")
while not os.path.exists(f"{D}/go"):
    time.sleep(0.05)
def send():
    global sent
    batch = f"PRIVMSG #f :c{i} some line of text\r\n".encode() * 100
    n = 0; end = time.time() + 10
    while time.time() < end:
        s.sendall(batch); n += 100
    sent = n
threading.Thread(target=send, daemon=True).start()
def report():
    while True:
        open(f"{D}/p.{i}.tmp", "w").write(f"{sent} {got}")
        os.replace(f"{D}/p.{i}.tmp", f"{D}/p.{i}")
        time.sleep(1)
threading.Thread(target=report, daemon=True).start()
for l in it:
    if l.startswith(b"PING"):
        s.sendall(b"PONG" + l[4:] + b"\r\n")
    elif b" PRIVMSG " in l:
        got += 1
    elif l.startswith(b"ERROR"):
        disconnected = True
open(f"{D}/p.{i}", "w").write(f"{sent} {got} closed")
