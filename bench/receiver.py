#!/usr/bin/env python3
"""A fast loopback webhook receiver for the benchmark (standard library only).

  receiver.py PORT

Answers every POST with 200 and an empty body at once, keep-alive, and records the
arrival time (time.time(), the same clock as the gateway's on this machine) and the raw
body. Nothing is parsed on the hot path. Control requests (GET):

  /_ctl/count                 how many deliveries are recorded
  /_ctl/dump?path=FILE        writes one JSON line per delivery, then forgets them:
                              {"t": arrival, "created_at": ..., "username": ..., "code": ...}
"""

import asyncio
import json
import sys
import time
import urllib.parse

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
records: list = []


def dump(path: str) -> int:
    global records
    got, records = records, []
    with open(path, "w") as f:
        for t, body in got:
            try:
                b = json.loads(body)
                p = b.get("payload", {})
                line = {
                    "t": t,
                    "created_at": p.get("created_at"),
                    "username": (p.get("user_authentication_password_profile_info") or {}).get("username"),
                    "code": p.get("one_time_password_token"),
                    "attempt": b.get("attempt"),
                }
            except ValueError:
                line = {"t": t, "error": "body is not JSON"}
            f.write(json.dumps(line) + "\n")
    return len(got)


class Conn(asyncio.Protocol):
    def connection_made(self, transport):
        self.tr = transport
        self.buf = b""

    def data_received(self, data):
        now = time.time()
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            method, target = head.split(" ", 2)[:2]
            if target.startswith("/_ctl/"):
                u = urllib.parse.urlsplit(target)
                q = urllib.parse.parse_qs(u.query)
                if u.path == "/_ctl/count":
                    out = str(len(records)).encode()
                elif u.path == "/_ctl/dump":
                    out = str(dump(q["path"][0])).encode()
                else:
                    out = b"?"
                self.tr.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(out), out))
            else:
                records.append((now, body))
                self.tr.write(OK)


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Conn, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
