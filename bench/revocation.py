#!/usr/bin/env python3
"""How soon one replica refuses a token another replica revoked (standard library only).

  revocation.py URL_A URL_B TOKENS_FILE SAMPLES OUT_JSON

For each of SAMPLES access tokens (one per line in TOKENS_FILE, each from its own
login): replica B checks it twice (`GET /v1/auth/verify`, so that B answers it from
its memory), a poller starts checking it on B in a tight loop on a kept-alive
connection, then the token is logged out on replica A (`POST /v1/logout`). The
sample is the time from A's answer to the logout to B's first 401 (0 when B refused
it before A's answer arrived), and the time from sending the logout. A replica that
missed the revocation would keep answering 200 from memory: the poller gives up
after 2 s and the sample counts as missed.

Writes {samples, missed, p50_ms, p99_ms, max_ms, from_send_p99_ms, polls_per_sample}
to OUT_JSON and prints one line.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
import urllib.parse

GIVE_UP = 2.0


def connect(url: str) -> http.client.HTTPConnection:
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=5)


def verify(conn: http.client.HTTPConnection, token: str) -> int:
    conn.request("GET", "/v1/auth/verify", headers={"Authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def logout(conn: http.client.HTTPConnection, token: str) -> int:
    body = json.dumps({"accessToken": token})
    conn.request("POST", "/v1/logout", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def one(a: http.client.HTTPConnection, b_url: str, b: http.client.HTTPConnection, token: str):
    for _ in range(2):
        status = verify(b, token)
        if status != 200:
            raise SystemExit(f"replica B refused a fresh token ({status})")
    poller = connect(b_url)
    verify(poller, token)  # open the connection before the clock starts
    seen: dict[str, float] = {}
    polls = [0]
    started = threading.Event()

    def poll() -> None:
        started.set()
        deadline = time.perf_counter() + GIVE_UP
        while time.perf_counter() < deadline:
            polls[0] += 1
            if verify(poller, token) == 401:
                seen["at"] = time.perf_counter()
                return

    t = threading.Thread(target=poll)
    t.start()
    started.wait()
    sent = time.perf_counter()
    status = logout(a, token)
    answered = time.perf_counter()
    if status != 204:
        raise SystemExit(f"logout on replica A answered {status}")
    t.join()
    poller.close()
    if "at" not in seen:
        return None, None, polls[0]
    return max(0.0, seen["at"] - answered), seen["at"] - sent, polls[0]


def main() -> None:
    if len(sys.argv) != 6:
        raise SystemExit(__doc__)
    url_a, url_b, tokens_file, samples, out = sys.argv[1:]
    tokens = [line.strip() for line in open(tokens_file) if line.strip()][: int(samples)]
    a, b = connect(url_a), connect(url_b)
    after_answer: list[float] = []
    after_send: list[float] = []
    polls: list[int] = []
    missed = 0
    for token in tokens:
        x, y, n = one(a, url_b, b, token)
        polls.append(n)
        if x is None:
            missed += 1
        else:
            after_answer.append(x * 1000)
            after_send.append(y * 1000)
    result = {
        "samples": len(tokens),
        "missed": missed,
        "p50_ms": round(percentile(after_answer, 50), 3),
        "p99_ms": round(percentile(after_answer, 99), 3),
        "max_ms": round(max(after_answer, default=float("nan")), 3),
        "from_send_p99_ms": round(percentile(after_send, 99), 3),
        "polls_per_sample": round(sum(polls) / max(1, len(polls)), 1),
    }
    with open(out, "w") as f:
        json.dump(result, f)
    print(
        f"revocation seen by the other replica: {result['samples']} samples, {missed} missed, "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms "
        f"after the logout's answer (p99 {result['from_send_p99_ms']} ms after sending it)"
    )


if __name__ == "__main__":
    main()
