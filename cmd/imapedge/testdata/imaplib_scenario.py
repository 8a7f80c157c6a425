#!/usr/bin/env python3
"""Works a mailbox with Python's imaplib and prints what it saw as JSON.

usage: imaplib_scenario.py HOST PORT ssl|starttls USER CAFILE
The password comes from the environment variable E2E_PASSWORD so that it
never appears in a process listing or a test log.

The output is normalized (no UIDVALIDITY, no dates) so that runs against
Dovecot directly and through imapedge can be compared byte for byte.
"""
import hashlib
import imaplib
import json
import os
import re
import socket
import ssl
import sys
import time

host, port, mode, user, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
password = os.environ["E2E_PASSWORD"]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False  # certificates name "localhost"; we connect to 127.0.0.1 with the IP SAN
ctx.verify_mode = ssl.CERT_REQUIRED


def connect():
    if mode == "ssl":
        c = imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=60)
    else:
        c = imaplib.IMAP4(host, port, timeout=60)
        typ, _ = c.starttls(ssl_context=ctx)
        assert typ == "OK"
    typ, _ = c.login(user, password)
    assert typ == "OK", typ
    return c


def message(subject, body):
    return ("From: py <py@example.org>\r\nTo: user@example.org\r\nSubject: %s\r\n"
            "Message-ID: <%s@py>\r\n\r\n%s\r\n" % (subject, subject.replace(" ", "-"), body)).encode()


def big():
    line = ("0123456789abcdef" * 4 + "\r\n").encode()
    out = [b"From: py <py@example.org>\r\nTo: user@example.org\r\nSubject: big py\r\n\r\n"]
    n, i = len(out[0]), 0
    while n < 10 << 20:
        chunk = b"%08d " % i + line
        out.append(chunk)
        n += len(chunk)
        i += 1
    return b"".join(out)


TIMING = re.compile(rb" \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)")


def untimed(b):
    """Dovecot appends how long a command took; that differs between runs."""
    return TIMING.sub(b"", b)


res = {}
c = connect()
res["create"] = c.create("Archive")[0]
appends = []
for m in (message("hello one", "first"), big(), message("hello three", "third")):
    typ, data = c.append("INBOX", r"(\Seen)", None, m)
    appends.append([typ, re.sub(rb"\[APPENDUID \d+ ", b"[APPENDUID V ", untimed(data[0])).decode()])
res["append"] = appends
typ, data = c.select("INBOX")
res["select"] = [typ, data[0].decode()]


def fetch():
    typ, data = c.fetch("1:*", "(UID FLAGS RFC822.SIZE BODY.PEEK[])")
    out = []
    for item in data:
        if isinstance(item, tuple):
            meta, body = item
            out.append([re.sub(rb"BODY\[\] \{\d+\}", b"BODY[]", meta).decode(), hashlib.sha256(body).hexdigest()[:16]])
    return [typ, out]


res["fetch"] = fetch()
res["search"] = [x.decode() if isinstance(x, bytes) else x for x in c.search(None, "SUBJECT", '"hello"')[1]]
res["store"] = [x.decode() for x in c.store("1", "+FLAGS", r"(\Flagged)")[1]]
typ, data = c.copy("1:2", "Archive")
res["copy"] = [typ, re.sub(rb"\[COPYUID \d+ ", b"[COPYUID V ", untimed(data[0])).decode()]
c.store("2", "+FLAGS", r"(\Deleted)")
res["expunge"] = [x.decode() for x in c.expunge()[1] if x]
res["fetch_after"] = fetch()

# IDLE (imaplib has no IDLE before Python 3.14): speak it by hand.
tag = c._new_tag()
c.send(tag + b" IDLE\r\n")
cont = c.readline()
assert cont.startswith(b"+"), cont
c2 = connect()
c2.append("INBOX", None, None, message("during idle", "idle body"))
c2.logout()
seen = []
c.sock.settimeout(10)
while True:
    line = c.readline()
    if not line:
        break
    if re.match(rb"\* \d+ EXISTS", line):
        seen.append(line.strip().decode())
        break
c.send(b"DONE\r\n")
while True:
    line = c.readline()
    if line.startswith(tag + b" "):
        res["idle_done"] = line.split(b" ")[1].decode()
        break
res["idle_exists"] = seen
c.sock.settimeout(60)
res["status"] = c.status("Archive", "(MESSAGES)")[1][0].decode()
res["logout"] = c.logout()[0]
print(json.dumps(res, indent=1, sort_keys=True))
