#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A small HTTP/1.1 file server for imgforge's fetch tests, on loopback only.

    httpd.py --root DIR --port-file FILE [--log FILE] [--tls CERT KEY]

Binds 127.0.0.1 on an ephemeral port and writes the port number to
--port-file once it is listening. Serves the files under --root with GET and
HEAD, honouring single byte ranges the way a real server does (206 with
Content-Range, 416 with "Content-Range: bytes */SIZE" for a range that cannot
be satisfied, the Range ignored for units other than bytes or several ranges).

With --tls it speaks HTTPS (tests/helpers/tls/ holds a self-signed
certificate for 127.0.0.1, valid until 2126, made for these tests only).

Fault injection through the query string, counted per path+query so that a
test can say "fail twice, then work":
    ?drop=N&times=K     send the headers for the full response but close the
                        connection after N bytes of body, for the first K
                        requests (K defaults to 1)
    ?status=S&times=K   answer status S (e.g. 500) to the first K requests
    ?norange=1          ignore Range headers (answer 200 with the whole file)
    ?delay=MS           wait MS milliseconds before sending the body
    ?stall=MS&times=K   send half the body, then nothing for MS milliseconds
                        before closing, for the first K requests
    &after=N            (with stall) only from the request after the first N
    ?trickle=MS         send the body one byte every MS milliseconds
    ?endless=1          answer 200 with a chunked body that never ends (until
                        the client hangs up)
    /redirect?to=URL    answer 302 with Location: URL

Each request is appended to --log as one line:
    METHOD PATH range=<Range header or -> status=<code>
"""
import argparse
import os
import re
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {}
counts_lock = threading.Lock()
log_lock = threading.Lock()
args = None


def take(key, times, after=0):
    """True for `times` calls with this key, after the first `after` ones."""
    with counts_lock:
        n = counts.get(key, 0)
        counts[key] = n + 1
    return after <= n < after + times


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "imgforge-test-httpd/1"

    def log_message(self, fmt, *a):  # silence the default stderr log
        pass

    def record(self, status):
        if not args.log:
            return
        with log_lock, open(args.log, "a") as f:
            f.write("%s %s range=%s status=%d\n" % (
                self.command, self.path, self.headers.get("Range", "-"), status))

    def simple(self, status, body=b""):
        self.record(status)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def parse_range(self, size):
        """Return (start, end) inclusive, None for no/ignored range, or 'bad'."""
        h = self.headers.get("Range")
        if not h:
            return None
        m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", h)
        if not m:
            return None  # other units or several ranges: ignore (allowed)
        a, b = m.group(1), m.group(2)
        if a == "" and b == "":
            return "bad"
        if a == "":
            n = int(b)
            if n == 0:
                return "bad"
            return (max(0, size - n), size - 1)
        start = int(a)
        end = int(b) if b != "" else size - 1
        if end < start or start >= size:
            return "bad"
        return (start, min(end, size - 1))

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        times = int(q.get("times", "1"))
        after = int(q.get("after", "0"))
        key = self.path
        rel = urllib.parse.unquote(u.path).lstrip("/")
        full = os.path.realpath(os.path.join(args.root, rel))
        root = os.path.realpath(args.root)
        if not (full == root or full.startswith(root + os.sep)):
            return self.simple(403, b"forbidden\n")
        if rel == "redirect" and "to" in q:
            self.record(302)
            self.send_response(302)
            self.send_header("Location", q["to"])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if q.get("endless"):
            self.record(200)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"%x\r\n%s\r\n" % (65536, b"\0" * 65536)
            try:
                while True:
                    self.wfile.write(chunk)
            except OSError:
                pass
            self.close_connection = True
            return
        if "status" in q and take(key, times):
            return self.simple(int(q["status"]), b"injected failure\n")
        if not os.path.isfile(full):
            return self.simple(404, b"not found\n")
        with open(full, "rb") as f:
            data = f.read()
        size = len(data)
        rng = None if q.get("norange") else self.parse_range(size)
        if rng == "bad":
            self.record(416)
            self.send_response(416)
            self.send_header("Content-Range", "bytes */%d" % size)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if rng is None:
            status, body = 200, data
        else:
            status, body = 206, data[rng[0]:rng[1] + 1]
        self.record(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (rng[0], rng[1], size))
        self.end_headers()
        if self.command == "HEAD":
            return
        if "delay" in q:
            time.sleep(int(q["delay"]) / 1000.0)
        if "stall" in q and take(key + "#stall", times, after):
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            time.sleep(int(q["stall"]) / 1000.0)
            self.close_connection = True
            return
        if "trickle" in q:
            try:
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(int(q["trickle"]) / 1000.0)
            except OSError:
                pass
            self.close_connection = True
            return
        if "drop" in q and take(key + "#drop", times):
            n = int(q["drop"])
            self.wfile.write(body[:n])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients hanging up mid-response are part of the tests


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log")
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = p.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
