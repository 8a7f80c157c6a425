#!/usr/bin/env python3
"""COMPRESS=DEFLATE client (RFC 4978) built on raw sockets and zlib.

usage: compress_client.py HOST PORT USER CAFILE   (password in E2E_PASSWORD)
Logs in over implicit TLS, sends COMPRESS DEFLATE when advertised, and then
appends, selects, fetches and logs out through the compressed stream (or
uncompressed when the server refused). Prints the results as JSON.
"""
import json
import os
import socket
import ssl
import sys
import zlib

host, port, user, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False
sock = ctx.wrap_socket(socket.create_connection((host, port), timeout=30))


class Stream:
    def __init__(self, sock):
        self.sock, self.buf, self.comp, self.decomp = sock, b"", None, None

    def send(self, data):
        if self.comp:
            data = self.comp.compress(data) + self.comp.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            if self.decomp:
                chunk = self.decomp.decompress(chunk)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if self.decomp:
                chunk = self.decomp.decompress(chunk)
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def until(self, tag):
        while True:
            line = self.line()
            if line.startswith(tag + " "):
                return line


s = Stream(sock)
res = {}
s.line()  # greeting
s.send(("a1 LOGIN %s %s\r\n" % (user, os.environ["E2E_PASSWORD"])).encode())
ok = s.until("a1")
res["advertised"] = "COMPRESS=DEFLATE" in ok
s.send(b"a2 COMPRESS DEFLATE\r\n")
answer = s.until("a2")
res["compress"] = answer.split()[1]
if res["compress"] == "OK":
    s.comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    s.decomp = zlib.decompressobj(-15)
    assert s.buf == b"", s.buf
msg = b"Subject: c\r\n\r\nhello compressed world"
s.send(b"a3 APPEND INBOX {%d+}\r\n%s\r\n" % (len(msg), msg))
s.until("a3")
s.send(b"a4 SELECT INBOX\r\n")
s.until("a4")
s.send(b"a5 FETCH 1 BODY[TEXT]\r\n")
line = s.line()
n = int(line[line.rindex("{") + 1:-1])
res["fetched"] = s.read(n).decode()
s.until("a5")
s.send(b"a6 LOGOUT\r\n")
res["logout"] = s.until("a6").split()[1]
print(json.dumps(res))
