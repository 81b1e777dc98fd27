# SPDX-License-Identifier: LGPL-2.1-or-later
"""A /v1 client over the daemon's Unix socket, shaped like the upstream CLI's (reference §2.7)."""
import http.client
import json
import socket


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def request(path, method, url, body=None, headers=None, raw=None):
    """Returns (status, parsed JSON body or None, raw body bytes)."""
    conn = UnixHTTPConnection(path)
    h = {"host": "localhost", "accept": "application/json"}
    h.update(headers or {})
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None:
        h.setdefault("content-type", "application/json")
    conn.request(method, url, body=data, headers=h)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    try:
        parsed = json.loads(payload) if payload else None
    except ValueError:
        parsed = None
    return resp.status, parsed, payload
