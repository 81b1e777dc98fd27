#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""compat-latency SOCKET N: p50/p99/max of POST /v1/send against GET /v1/health, on one
keep-alive connection as the upstream CLI's client would use (run by bench/send-accept)."""
import http.client
import json
import socket
import sys
import time


class Conn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def timed(conn, method, url, body=None):
    t = time.perf_counter_ns()
    conn.request(method, url, body=body, headers={"host": "localhost", "accept": "application/json"})
    resp = conn.getresponse()
    resp.read()
    if resp.status >= 300:
        sys.exit(f"{method} {url}: {resp.status}")
    return (time.perf_counter_ns() - t) // 1000


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    conn = Conn(path)
    tag = time.time_ns()
    send = sorted(timed(conn, "POST", "/v1/send",
                        json.dumps({"to": "*", "message": "benchmark", "client_message_id": f"http-{tag}-{i}"}))
                  for i in range(n))
    health = sorted(timed(conn, "GET", "/v1/health") for _ in range(n))
    for name, v in (("http_send", send), ("http_health", health)):
        print(f"{name}_p50_us {v[len(v) // 2]}")
        print(f"{name}_p99_us {v[int(0.99 * (len(v) - 1))]}")
        print(f"{name}_max_us {v[-1]}")


main()
