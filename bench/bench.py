#!/usr/bin/env python3
"""Helpers for bench/run.sh (standard library only).

  bench.py seed URL CLIENT_SECRET COUNT PASSWORD   create web phone users bench1..benchCOUNT
  bench.py login URL USERNAME HASH_CMD...          key request + login; prints the access token
  bench.py tokens URL USERNAME COUNT HASH_CMD...   COUNT such logins, one access token per line
  bench.py otp-setup URL CLIENT_SECRET HOOK_URL COUNT OUTDIR
                                                   scheme B: disable the demo's email integration, add a
                                                   webhook to HOOK_URL, create COUNT password-less users
                                                   of the "Customers" profile; writes OUTDIR/otp.env and
                                                   OUTDIR/otp-users.txt
  bench.py pairs DUMP USERS OUT                    (username, code) pairs from a receiver dump, one per user
  bench.py delivery DUMP OUT_JSON WHY              delivery latency (created_at -> arrival) of a dump
  bench.py nodes RESULTS_DIR STEM PORT...          per-node INFO dumps (STEM.node-PORT.txt) -> the
                                                   primaries' sums (STEM.commandstats.txt, STEM.stats.txt)
                                                   and nodes-STEM.json
  bench.py stalls LATENCY_FILE                     LATENCY LATEST output (every node's) -> JSON {event: max ms}
  bench.py summarize RESULTS_DIR                   the summary table (markdown) from the phase files
  bench.py compare SINGLE_DIR CLUSTER_DIR          side by side: a single-node run and a cluster run
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

APPLICATION = "myapp.myaccount"


def call(method: str, url: str, body=None, token: str | None = None, form: bool = False):
    headers = {}
    data = None
    if body is not None:
        if form:
            data = urllib.parse.urlencode(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def expect(status, body, want, what):
    if status != want:
        sys.exit(f"bench.py: {what}: HTTP {status}, expected {want}: {body}")
    return body


def admin_token(url: str, secret: str) -> str:
    """A client-credentials token of the demo's API client."""
    return expect(
        *call(
            "POST",
            f"{url}/oauth/access_token",
            {"grant_type": "client_credentials", "client_id": "authgate", "client_secret": secret},
            form=True,
        ),
        200,
        "client token",
    )["access_token"]


def seed(url: str, secret: str, count: int, password: str) -> None:
    """Creates users bench1..benchCOUNT in the demo's web phone profile, through the admin API."""
    token = admin_token(url, secret)
    settings = expect(*call("GET", f"{url}/v2/settings/account-authentication", token=token), 200, "settings")
    realm = settings["data"]["relationships"]["authentication_realm"]["data"]["id"]
    profiles = expect(
        *call("GET", f"{url}/v2/authentication-realms/{realm}/password-profiles?page[limit]=100", token=token),
        200,
        "profiles",
    )["data"]
    profile = next((p["id"] for p in profiles if p.get("voximplant_application") == APPLICATION), None)
    if not profile:
        sys.exit(f"bench.py: no password profile for {APPLICATION}: was the gateway started with --demo?")
    base = f"{url}/v2/authentication-realms/{realm}/user-authentication-info"
    for i in range(1, count + 1):
        user = expect(
            *call("POST", base, {"data": {"type": "user_authentication_info", "name": f"Bench {i}"}}, token=token),
            201,
            f"create user {i}",
        )["data"]["id"]
        expect(
            *call(
                "POST",
                f"{base}/{user}/user-authentication-password-profile-info",
                {
                    "data": {
                        "type": "user_authentication_password_profile_info",
                        "password_profile_id": profile,
                        "username": f"bench{i}",
                        "password": password,
                    }
                },
                token=token,
            ),
            201,
            f"create credential {i}",
        )
        print(f"bench{i}")


def login(url: str, username: str, hash_cmd: list[str]) -> None:
    """Logs in once with a one-time key; the hash comes from `authgate hash` (HASH_CMD + --key K)."""
    print(login_token(url, username, hash_cmd))


def tokens(url: str, username: str, count: int, hash_cmd: list[str]) -> None:
    """COUNT logins of USERNAME, one access token (one session, so one session key) per line."""
    for _ in range(count):
        print(login_token(url, username, hash_cmd))


def login_token(url: str, username: str, hash_cmd: list[str]) -> str:
    body = expect(
        *call("POST", f"{url}/v1/login/one-time-key/request", {"username": username}), 200, "key request"
    )
    if body.get("code") != 302 or not body.get("key"):
        sys.exit(f"bench.py: key request answered {body}")
    digest = subprocess.run(
        [*hash_cmd, "--key", body["key"]], check=True, capture_output=True, text=True
    ).stdout.strip()
    result = expect(
        *call("POST", f"{url}/v1/login/one-time-key", {"username": username, "hash": digest}), 200, "login"
    )
    if result.get("result") is not True:
        sys.exit(f"bench.py: login answered {result}")
    return result["tokens"]["accessToken"]


# ---------------------------------------------------------------- scheme B (one-time password tokens)


def otp_setup(url: str, secret: str, hook: str, count: int, outdir: str) -> None:
    import http.client
    import threading
    from concurrent.futures import ThreadPoolExecutor

    admin = admin_token(url, secret)
    implicit = expect(
        *call("POST", f"{url}/oauth/access_token", {"grant_type": "implicit", "client_id": "authgate"}, form=True),
        200,
        "implicit token",
    )["access_token"]
    settings = expect(*call("GET", f"{url}/v2/settings/account-authentication", token=admin), 200, "settings")
    realm = settings["data"]["relationships"]["authentication_realm"]["data"]["id"]
    profiles = expect(
        *call("GET", f"{url}/v2/authentication-realms/{realm}/password-profiles?page[limit]=100", token=admin),
        200,
        "profiles",
    )["data"]
    profile = next((p["id"] for p in profiles if p.get("name") == "Customers"), None)
    if not profile:
        sys.exit("bench.py: no password profile 'Customers': was the gateway started with --demo?")
    # The demo's email integration writes every code to the log (CPU the benchmark would
    # measure): disable it, then add the webhook to the loopback receiver.
    for i in expect(*call("GET", f"{url}/v2/integrations", token=admin), 200, "integrations")["data"]:
        if i.get("enabled") and i.get("integration_type") != "webhook":
            expect(
                *call(
                    "PUT",
                    f"{url}/v2/integrations/{i['id']}",
                    {"data": {"type": "integration", "enabled": False}},
                    token=admin,
                ),
                200,
                f"disable integration {i['id']}",
            )
    expect(
        *call(
            "POST",
            f"{url}/v2/integrations",
            {
                "data": {
                    "type": "integration",
                    "name": "bench receiver",
                    "description": "loopback webhook of bench/receiver.py",
                    "integration_type": "webhook",
                    "enabled": True,
                    "observes": ["one-time-password-token-request.created"],
                    "configuration": {"url": hook, "secret_key": "bench-secret"},
                }
            },
            token=admin,
        ),
        201,
        "webhook integration",
    )
    host = urllib.parse.urlsplit(url)
    base = f"/v2/authentication-realms/{realm}/user-authentication-info"
    local = threading.local()

    def post(path, body):
        c = getattr(local, "c", None)
        if c is None:
            c = local.c = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        c.request(
            "POST",
            path,
            json.dumps(body),
            {"Content-Type": "application/json", "Authorization": f"Bearer {admin}"},
        )
        r = c.getresponse()
        raw = r.read()
        if r.status != 201:
            raise RuntimeError(f"{path}: HTTP {r.status}: {raw[:300]!r}")
        return json.loads(raw)

    def create(i: int) -> str:
        name = f"otp{i}@bench.example.com"
        uid = post(base, {"data": {"type": "user_authentication_info", "name": f"Otp {i}", "email": name}})["data"]["id"]
        post(
            f"{base}/{uid}/user-authentication-password-profile-info",
            {
                "data": {
                    "type": "user_authentication_password_profile_info",
                    "password_profile_id": profile,
                    "username": name,
                }
            },
        )
        return name

    with ThreadPoolExecutor(8) as ex:
        names = list(ex.map(create, range(1, count + 1), chunksize=64))
    with open(os.path.join(outdir, "otp-users.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    with open(os.path.join(outdir, "otp.env"), "w") as f:
        f.write(f"OTP_REALM={realm}\nOTP_PROFILE={profile}\nOTP_IMPLICIT={implicit}\n")


def pairs(dump: str, users: str, out: str) -> None:
    """One (username, code) per user: the latest created_at wins (a new code replaces the old)."""
    want = [u.strip() for u in open(users) if u.strip()]
    latest = {}
    for line in open(dump):
        d = json.loads(line)
        u = d.get("username")
        if u and (u not in latest or d["created_at"] > latest[u][0]):
            latest[u] = (d["created_at"], d["code"])
    missing = [u for u in want if u not in latest]
    if len(missing) > len(want) // 100:
        sys.exit(f"bench.py: no code delivered for {len(missing)} of {len(want)} users (e.g. {missing[0]})")
    if missing:
        print(f"    -> no code delivered for {len(missing)} of {len(want)} users ({', '.join(missing[:3])}): left out", file=sys.stderr)
    with open(out, "w") as f:
        for u in want:
            if u not in latest:
                continue
            f.write(f"{u} {latest[u][1]}\n")


def parse_ts(s: str) -> float:
    """RFC 3339 with any number of fraction digits -> unix seconds."""
    from datetime import datetime

    main, _, rest = s.partition(".")
    frac, tz = "", ""
    if rest:
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        frac, tz = rest[:i], rest[i:]
    else:
        for sep in ("Z", "+", "-"):
            j = main.find(sep, 10)
            if j > 0:
                main, tz = main[:j], main[j:]
                break
    tz = "+00:00" if tz in ("Z", "") else tz
    base = datetime.fromisoformat(main + tz).timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def delivery(dump: str, out: str, why: str) -> None:
    lat = []
    first_created = last_arrival = None
    for line in open(dump):
        d = json.loads(line)
        if not d.get("created_at"):
            continue
        c = parse_ts(d["created_at"])
        lat.append((d["t"] - c) * 1000)
        first_created = c if first_created is None else min(first_created, c)
        last_arrival = d["t"] if last_arrival is None else max(last_arrival, d["t"])
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] if lat else None

    r = {
        "why": why,
        "deliveries": len(lat),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": lat[-1] if lat else None,
        "min_ms": lat[0] if lat else None,
        "span_s": (last_arrival - first_created) if lat else None,
    }
    json.dump(r, open(out, "w"), indent=1)
    print(
        f"    -> delivery ({why}): {r['deliveries']} webhooks, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
        f"max {r['max_ms']:.1f} ms; first accepted to last received {r['span_s']:.1f} s",
        file=sys.stderr,
    )


# ---------------------------------------------------------------- Redis nodes

# Left out of every command count: connection set-up, topology discovery, replication and the
# bench's own introspection (the same list as tests/src/redis/cluster.rs). WAIT is not in it:
# the gateway sends it (an outbox write waiting for a replica) and it costs the primary.
HOUSEKEEPING = {
    "auth", "client", "cluster", "command", "config", "hello", "info", "ping", "psync",
    "readonly", "readwrite", "replconf", "select", "sync",
}
# Read-only commands: a replica never gets these from its primary (reads are not replicated,
# and scripts replicate their effects), so on a replica they would be the gateway's own reads.
READ_COMMANDS = {
    "get", "mget", "getrange", "strlen", "exists", "ttl", "pttl", "type", "hget", "hmget",
    "hgetall", "hexists", "hlen", "hkeys", "hvals", "smembers", "sismember", "smismember",
    "scard", "zrange", "zrangebyscore", "zscore", "zcard", "xrange", "xrevrange", "xlen",
    "xread", "xinfo", "lrange", "llen", "scan", "evalsha_ro", "eval_ro",
}


def info_fields(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and ":" in line:
            k, v = line.split(":", 1)
            out[k] = v
    return out


def commandstats(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("cmdstat_") and ":" in line:
            name, rest = line[len("cmdstat_"):].split(":", 1)
            for kv in rest.split(","):
                if kv.startswith("calls="):
                    out[name] = int(kv[len("calls="):])
    return out


def stalls(path: str) -> None:
    """LATENCY LATEST as redis-cli prints it (four lines per event: name, time, latest ms,
    max ms; every node's one after the other) -> {event: max ms over the nodes}."""
    lines = [l.strip() for l in open(path) if l.strip()]
    out: dict = {}
    for i in range(0, len(lines) - 3, 4):
        name, _, latest, most = lines[i:i + 4]
        try:
            ms = max(int(latest), int(most))
        except ValueError:
            continue
        out[name] = max(out.get(name, 0), ms)
    print(json.dumps(out))


def nodes(d: str, stem: str, ports: list[str]) -> None:
    """Each node's INFO (replication, stats, commandstats) after a phase -> per node: role,
    commands (housekeeping left out), socket reads of the gateway; and the primaries' sums in the
    formats run.sh's phase analysis reads (a single server is one primary).

    Reads: total_reads_processed, less our own INFO (one read per node) and the replicas'
    REPLCONF ACKs (one read each; a WAIT makes the replica send one), so what is left is the
    gateway's (and its background's) socket reads."""
    out = []
    for port in ports:
        text = open(os.path.join(d, f"{stem}.node-{port}.txt")).read()
        f = info_fields(text)
        calls_all = commandstats(text)
        calls = {k: v for k, v in calls_all.items() if k.split("|")[0] not in HOUSEKEEPING}
        replconf = sum(v for k, v in calls_all.items() if k.split("|")[0] == "replconf")
        raw = int(f.get("total_reads_processed", "0"))
        out.append(
            {
                "port": int(port),
                "role": f.get("role", "?"),
                "calls": calls,
                "read_calls": sum(v for k, v in calls.items() if k.split("|")[0] in READ_COMMANDS),
                "reads_raw": raw,
                "replconf": replconf,
                "reads": max(raw - replconf - 1, 0),
                "expired_keys": int(f.get("expired_keys", "0")),
            }
        )
    primaries = [x for x in out if x["role"] == "master"]
    total: dict = {}
    for x in primaries:
        for k, v in x["calls"].items():
            total[k] = total.get(k, 0) + v
    ports_p = ", ".join(str(x["port"]) for x in primaries)
    with open(os.path.join(d, f"{stem}.commandstats.txt"), "w") as f:
        f.write(f"# Commandstats summed over the primaries ({ports_p}), housekeeping left out\n")
        for k, v in sorted(total.items()):
            f.write(f"cmdstat_{k}:calls={v}\n")
    with open(os.path.join(d, f"{stem}.stats.txt"), "w") as f:
        f.write(f"# Summed over the primaries ({ports_p}), less our INFO and the replicas' REPLCONF ACKs\n")
        f.write(f"total_reads_processed:{sum(x['reads'] for x in primaries)}\n")
        f.write(f"expired_keys:{sum(x['expired_keys'] for x in primaries)}\n")
    json.dump({"nodes": out}, open(os.path.join(d, f"nodes-{stem}.json"), "w"), indent=1)


# ---------------------------------------------------------------- summary

PHASES = [
    ("health", "(a) GET /health/live (ceiling)"),
    ("keyreq", "(b) POST /v1/login/one-time-key/request"),
    ("flow", "(c) key request + login flow"),
    ("verify", "(d) GET /v1/auth/verify"),
    ("otpreq", "(e) POST .../one-time-password-token-request"),
    ("exchange", "(f) POST /v2/account-members/tokens (passwordless)"),
]


# Store pipelines per request, read from the code (crates/onetimekey/src/service.rs,
# crates/core/src/tokens.rs); each pipeline is one round trip (crates/core/src/store/redis.rs).
CODE_ROUND_TRIPS = {
    "health": "0",
    "keyreq": "1 (SET; with a per-user limit, EVALSHA set-under-limit)",
    "flow": "1.5 (key 1; login 2: GETDEL+GET, and GET+PTTL of the guess counter when its limit is on, then HSET+PEXPIRE "
    "and the sessions index's ZADD+PEXPIRE NX+PEXPIRE GT, with ZREMRANGEBYSCORE on one add in eight; an EVALSHA on a cluster)",
    "verify": "1 (HGETALL)",
    "otpreq": "see README",
    "exchange": "see README",
}


def cores(r) -> str:
    c = r.get("cores")
    if not c:
        return "-"
    return (
        f"{c['gateway']:.2f} / {c['redis']:.2f} / {c['wrk']:.2f} / {c.get('softirq', 0):.2f} / "
        f"**{c['other']:.2f}**" + (f" (steal {c['steal']:.2f})" if "steal" in c else "") + f" of {c['available']}"
    )


def ms(us) -> str:
    return "-" if us is None else f"{us / 1000:.2f}"


def load(d: str, name: str):
    p = os.path.join(d, f"{name}.json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def same_round_ratios(rows) -> dict:
    """Per phase, each round's req/s over the ceiling of the same round."""
    health = (rows.get("health") or {}).get("rounds") or []
    out = {}
    for name, _ in PHASES:
        r = rows.get(name)
        if name == "health" or not r or not r.get("rounds"):
            continue
        pairs = [
            x["rps"] / h["rps"]
            for x, h in zip(r["rounds"], health)
            if h.get("rps")
        ]
        if len(pairs) > 1:
            out[name] = pairs
    return out


def load_pairs(d: str) -> dict:
    """The paired slices (run.sh): per endpoint, each pair's endpoint req/s over ceiling req/s."""
    out: dict = {}
    p = os.path.join(d, "paired.txt")
    if not os.path.exists(p):
        return out
    for line in open(p):
        parts = line.split()
        # target, ceiling req/s, endpoint req/s, then (since issue 15) steal and CPU columns
        if len(parts) >= 3 and float(parts[1]) > 0:
            out.setdefault(parts[0], []).append(float(parts[2]) / float(parts[1]))
    return out


def load_pair_rows(d: str) -> dict:
    """paired.txt with its optional columns: per endpoint, a list of dicts (ratio, steal ticks and
    all ticks over the pair, the endpoint slice's gateway CPU ticks, Redis CPU s, wall s, req/s, and
    since the native flow client its load client's CPU s)."""
    out: dict = {}
    p = os.path.join(d, "paired.txt")
    if not os.path.exists(p):
        return out
    for line in open(p):
        parts = line.split()
        if len(parts) < 3 or float(parts[1]) <= 0:
            continue
        row = {"ceiling": float(parts[1]), "rps": float(parts[2]), "ratio": float(parts[2]) / float(parts[1])}
        if len(parts) >= 8:
            row.update(steal=int(parts[3]), all=int(parts[4]), gw_ticks=int(parts[5]), redis_s=float(parts[6]),
                       wall=float(parts[7]))
        if len(parts) >= 9:
            row["client_s"] = float(parts[8])
        out.setdefault(parts[0], []).append(row)
    return out


def steal_limit(meta: dict) -> float:
    return float(meta.get("steal_limit") or os.environ.get("STEAL_LIMIT") or 5)


def steal_cell(r, limit: float) -> str:
    """A phase's steal share, marked noisy above the limit."""
    v = (r or {}).get("steal_pct")
    if v is None:
        return "-"
    return f"**{v:.1f} noisy**" if v > limit else f"{v:.1f}"


def stalls_cell(f) -> str:
    """A fixed-rate run's Redis stalls (latency monitor, 2 ms or more) and expired keys."""
    if "redis_stalls_ms" not in f:
        return "-"
    stalls = ", ".join(f"{k} {v}" for k, v in sorted(f["redis_stalls_ms"].items())) or "none"
    return f"{stalls} / {f.get('expired_keys', 0)}"


def steal_text(r, limit: float) -> str:
    """The same in prose: "0.1%", or "**7.2%, noisy**"."""
    v = (r or {}).get("steal_pct")
    if v is None:
        return "-"
    return f"**{v:.1f}%, noisy**" if v > limit else f"{v:.1f}%"


def pairs_steal(rows) -> float | None:
    """Steal over a target's whole series of pairs, as a share of all CPU time."""
    if not rows or "steal" not in rows[0]:
        return None
    a = sum(x["all"] for x in rows)
    return 100 * sum(x["steal"] for x in rows) / a if a else 0.0


def disturbed_phases(d: str, meta: dict, cores_limit: float = 0.25) -> list:
    """(label, cores) of the measured phases in which other processes (not steal) used more than
    cores_limit cores: another workload on the machine, which also disturbs throughput."""
    out = []
    rounds = int(meta.get("rounds") or 1)
    tags = [""] if rounds == 1 else [f".r{i}" for i in range(1, rounds + 1)]
    names = [n for n, _ in PHASES] + [f"peer-{n}" for n, _ in PEER_PHASES]
    for name in [n + t for n in names for t in tags] + list(FIXED_RUNS):
        r = load(d, name)
        c = (r or {}).get("cores") or {}
        other = c.get("other", 0) - c.get("steal", 0)
        if other > cores_limit:
            out.append((name.replace(".r", " round "), other))
    return out


def measured_phases(d: str, meta: dict) -> list:
    """(label, steal %) of every measured phase of the run: each round's phases (authgate's and the
    peer's), each target's paired slices, the fixed-rate runs, the issuing bursts and (g)."""
    out = []
    rounds = int(meta.get("rounds") or 1)
    tags = [""] if rounds == 1 else [f".r{i}" for i in range(1, rounds + 1)]
    names = [n for n, _ in PHASES] + [f"peer-{n}" for n, _ in PEER_PHASES]
    for name in names:
        for tag in tags:
            r = load(d, name + tag)
            if r and r.get("steal_pct") is not None:
                out.append((f"{name}{tag.replace('.r', ' round ')}", r["steal_pct"]))
    for target, rows in load_pair_rows(d).items():
        v = pairs_steal(rows)
        if v is not None:
            out.append((f"paired slices of {target}", v))
    for name in FIXED_RUNS:
        r = load(d, name)
        if r and r.get("steal_pct") is not None:
            out.append((name, r["steal_pct"]))
    import glob

    for p in sorted(glob.glob(os.path.join(d, "delivery-*.json"))):
        x = json.load(open(p))
        if x.get("steal_pct") is not None:
            out.append((os.path.basename(p)[:-5], x["steal_pct"]))
    return out


PEER_PHASES = [
    ("otpreq", "(e) code request: Better Auth `POST /api/auth/email-otp/send-verification-otp` (type sign-in)"),
    ("exchange", "(f) exchange: Better Auth `POST /api/auth/sign-in/email-otp`"),
]
FIXED_RUNS = ("fixed-keyreq", "fixed-verify", "fixed-otpreq", "fixed")
FIXED_LABELS = {"keyreq": "key request", "verify": "verify", "otpreq": "code request"}
PAIR_LABELS = {**FIXED_LABELS, "flow": "login flow (HTTP req/s)"}
FIXED_OK = {"keyreq": "200", "verify": "200", "otpreq": "202"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


SPREAD_PHASES = ("keyreq", "flow", "verify", "otpreq", "exchange")
SPREAD_GOAL = 0.45


def primary_ports(rows) -> list:
    ports = []
    for r in rows.values():
        for p in ((r or {}).get("spread") or {}).get("primaries", []):
            if p["port"] not in ports:
                ports.append(p["port"])
    return sorted(ports)


def spread_section(rows, w) -> None:
    """The cluster's per-primary spread of each phase's commands, with the target."""
    ports = primary_ports(rows)
    if not ports:
        return
    w("")
    w(
        "Spread over the primaries: each primary's share of the phase's Redis commands (`INFO commandstats` "
        "after `CONFIG RESETSTAT` on every node; housekeeping commands and the background measured in (a) left "
        f"out). Target: the busiest primary at most {SPREAD_GOAL:.0%} in (b)-(f); one third is even. Round trips "
        "are socket reads summed over the primaries at one connection: one pipeline per slot a store call "
        "touches, sent concurrently (see the README)."
    )
    w("")
    w(
        "| phase | Redis cmds/req | round trips/req (c=1, all primaries) | "
        + " | ".join(f"primary :{p}" for p in ports)
        + f" | busiest | <= {SPREAD_GOAL:.0%} |"
    )
    w("|---|---:|---:|" + "---:|" * len(ports) + "---:|---|")
    for name, label in PHASES:
        r = rows.get(name)
        if not r or not r.get("spread"):
            continue
        sp = r["spread"]
        shares = {p["port"]: p.get("share") for p in sp["primaries"]}
        cells = [("-" if shares.get(p) is None else f"{shares[p] * 100:.1f}%") for p in ports]
        busiest = sp.get("busiest_share")
        if name in SPREAD_PHASES and busiest is not None:
            verdict = "PASS" if busiest <= SPREAD_GOAL else "**FAIL**"
        else:
            verdict = "-"
        reads = (r.get("calibration") or {}).get("reads_per_req")
        top = "-" if busiest is None else f"{busiest * 100:.1f}% (:{sp.get('busiest_port')})"
        w(
            f"| {label} | {r['redis']['per_request']:.2f} | {'-' if reads is None else f'{reads:.2f}'} | "
            + " | ".join(cells)
            + f" | {top} | {verdict} |"
        )
    stray = {name: r["spread"]["replica_reads"] for name, r in rows.items() if r and r.get("spread", {}).get("replica_reads")}
    if stray:
        w("")
        w("Read commands run on replicas (the gateway reading from replicas): " + ", ".join(f"{k} {v}" for k, v in stray.items()))


def summarize(d: str) -> None:
    meta = load(d, "meta") or {}
    rows = {name: load(d, name) for name, _ in PHASES}
    ceiling = (rows.get("health") or {}).get("rps")
    out = []
    w = out.append
    cluster = meta.get("redis_mode") == "cluster"
    w(f"# authgate benchmark{' on a Redis Cluster' if cluster else ''}: {meta.get('date', '?')}")
    w("")
    redis = (
        f"Redis {meta.get('redis_version', '?')}, a private 6-node cluster (3 primaries, 3 replicas, no "
        f"persistence; {meta.get('topology', '?')}), the gateway given node {meta.get('redis_seed', '?')} only, "
        f"outbox replicas: {meta.get('outbox_replicas', 'default')}"
        if cluster
        else f"Redis {meta.get('redis_version', '?')} (private, no persistence"
        + (
            f"; filled beforehand with {meta['filled']} keys that live a day, see the README)"
            if meta.get("filled")
            else "; empty at the start)"
        )
    )
    w(
        f"Machine: {meta.get('cpus', '?')} CPUs ({meta.get('cpu_model', '?')}), load average at start "
        f"{meta.get('loadavg_start', '?')}, steal {meta.get('steal_pct', '?')}% of the CPU time over the run; "
        f"{redis}; wrk {meta.get('wrk_version', '?')}; gateway commit {meta.get('commit', '?')}."
    )
    if meta.get("flow_client", "wrk") == "native":
        clients = (
            f"wrk threads: {meta.get('threads', '?')} for a, b, d, e, f; c runs the native flow client "
            f"(bench/flowload) with {meta.get('flow_threads', '?')} threads, see README"
        )
    else:
        clients = (
            f"wrk threads: {meta.get('threads', '?')} for a, b, d; {meta.get('connections', '?')} for c, "
            "one connection per thread, see README"
        )
    w(
        f"Each phase: {meta.get('duration', '?')} with {meta.get('connections', '?')} connections "
        f"({clients}); rounds: {meta.get('rounds', 1)}; phase d cycles over "
        f"{meta.get('verify_tokens', 1)} access token(s), one session key each."
    )
    limit = steal_limit(meta)
    w(
        f"CPU steal (the hypervisor's, `/proc/stat`) is sampled over every measured phase, as a share of all "
        f"the machine's CPU time in that phase; above {limit:g}% a phase is **noisy**: its verdict says so "
        "instead of pass/fail, and its figures should not be trusted. CPU per request (gateway and Redis, "
        "below) moves less with steal than throughput does."
    )
    w("")
    w("| phase | req/s | p50 ms | p99 ms | ratio to ceiling | steal % | gateway CPU us/req | Redis CPU us/req | errors / non-2xx |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, label in PHASES:
        r = rows.get(name)
        if not r:
            w(f"| {label} | not run | | | | | | | |")
            continue
        ratio = "1.00" if name == "health" else (f"{r['rps'] / ceiling:.2f}" if ceiling else "-")
        errs = r["errors_status"] + r["errors_socket"] + r["errors_timeout"]
        w(
            f"| {label} | {r['rps']:.0f} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | {ratio} | {steal_cell(r, limit)} | "
            f"{r['gateway_cpu_us_per_request']:.0f} | {r['redis_cpu_us_per_request']:.0f} | {errs} |"
        )
    w("")
    w("Cost per HTTP request (the flow's key requests and logins averaged):")
    w("")
    w("| phase | Redis cmds/req | Redis round trips/req: measured at c=1 | from the code | gateway CPU us/req | Redis CPU us/req | load client CPU us/req | cores used: gateway / Redis / load client / softirq / **other processes** |")
    w("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, label in PHASES:
        r = rows.get(name)
        if not r:
            continue
        reads = (r.get("calibration") or {}).get("reads_per_req")
        w(
            f"| {label} | {r['redis']['per_request']:.2f} | {'-' if reads is None else f'{reads:.2f}'} | "
            f"{CODE_ROUND_TRIPS[name]} | {r['gateway_cpu_us_per_request']:.0f} | {r['redis_cpu_us_per_request']:.0f} | "
            + (f"{r['client_cpu_us_per_request']:.0f} ({r.get('client', 'wrk')})" if "client_cpu_us_per_request" in r else "-")
            + f" | {cores(r)} |"
        )
    if cluster:
        w("")
        w(
            "On the cluster, commands and round trips are summed over the three primaries, and a round trip "
            "is one pipeline per slot a store call touches (sent concurrently); \"from the code\" is the "
            "single-server count. Redis CPU is summed over all six nodes."
        )
    nrounds = max(len((r or {}).get("rounds", [])) for r in rows.values()) if rows else 0
    if nrounds > 1:
        w("")
        w(
            f"{nrounds} rounds, phases a-d interleaved; each phase shows its best round (highest req/s). "
            "All rounds, req/s (p99 ms; cores taken by other processes during the round; steal %):"
        )
        w("")
        for name, label in PHASES:
            r = rows.get(name)
            if r and r.get("rounds"):
                w(
                    f"- {label}: "
                    + ", ".join(
                        f"{x['rps']:.0f} ({ms(x['p99_us'])}; {x['other_cores']:.2f}; "
                        + ("-" if x.get("steal_pct") is None else f"{x['steal_pct']:.1f}%")
                        + ("" if (x.get("steal_pct") or 0) <= limit else " noisy")
                        + ")"
                        for x in r["rounds"]
                    )
                )
        paired = same_round_ratios(rows)
        if paired:
            w("")
            w(
                "Ratios to the ceiling measured in the same round (each round's phase over that round's "
                "(a); this box's speed drifts over minutes, and pairing within a round cancels part of it), "
                "and their median:"
            )
            w("")
            for name, label in PHASES:
                if name in paired:
                    ratios = paired[name]
                    w(f"- {label}: " + ", ".join(f"{v:.2f}" for v in ratios) + f"; median **{median(ratios):.2f}**")
    flow = rows.get("flow")
    if flow:
        secs = flow["duration_us"] / 1e6
        w("")
        w(
            f"Flow (c): {flow['flows'] / secs:.0f} flows/s (a flow = key request + login); logins ok "
            f"{flow['login_ok']}, failed {flow['login_bad']}; key requests ok {flow['key_ok']}, failed "
            f"{flow['key_bad']}. Key request p50/p99 {ms(flow['key_p50_us'])}/{ms(flow['key_p99_us'])} ms, "
            f"login p50/p99 {ms(flow['login_p50_us'])}/{ms(flow['login_p99_us'])} ms."
            + ("" if flow["login_bad"] == 0 and flow["login_ok"] > 0 else " **INVALID: logins failed.**")
        )
    ex = rows.get("exchange")
    if ex:
        w("")
        w(
            f"Exchange (f): {ex['exchange_ok']} exchanges answered 201 and **{ex['exchange_bad']} failed**, of "
            f"{ex['pairs']} (username, code) pairs, each used once; the run lasts until the pairs are used up "
            f"or {meta.get('duration', '?')} ({ex['duration_us'] / 1e6:.1f} s here)."
            + ("" if ex["exchange_bad"] == 0 and ex["exchange_ok"] > 0 else " **INVALID: exchanges failed.**")
        )
    h = rows.get("health")
    if h:
        bg = h["redis"].get("background_per_s", {})
        w("")
        w(
            f"Background Redis traffic of the gateway, whatever the load (measured in phase a, which sends "
            f"nothing to Redis, and subtracted from the other phases): {sum(bg.values()):.0f} commands/s "
            f"({', '.join(f'{k} {v:.1f}' for k, v in sorted(bg.items(), key=lambda kv: -kv[1])) or 'none'}), "
            f"{(h.get('calibration') or {}).get('bg_reads_per_s', 0):.0f} socket reads/s."
        )
    w("")
    w("Redis commands per HTTP request, by command (commands run inside EVAL scripts included):")
    w("")
    for name, label in PHASES:
        r = rows.get(name)
        if not r:
            continue
        per = r["redis"]["by_command"]
        parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1])) or "none"
        w(f"- {label}: {parts}")
    if cluster:
        spread_section(rows, w)
    targets = []
    kr, vr = rows.get("keyreq"), rows.get("verify")

    def verdict(ok: bool, noisy: bool = False) -> str:
        if noisy:
            return "**noisy** (steal over the limit: not to be trusted)"
        return "PASS" if ok else "FAIL"

    paired = load_pairs(d)
    pair_rows = load_pair_rows(d)

    def noisy(*rs) -> bool:
        return any((x or {}).get("steal_pct") is not None and x["steal_pct"] > limit for x in rs)

    def ratio_target(label: str, name: str, row, goal: float) -> None:
        # The verdict comes from the paired slices when the run has them (ceiling and
        # endpoint back to back, so the box's drift largely cancels); the phases'
        # best-round ratio is shown beside it. Noisy: steal over the limit across the pairs,
        # or (without pairs) in the phase or its round's ceiling.
        best = row["rps"] / ceiling if (ceiling and row) else None
        health_round = load(d, "health" + (f".r{row['round']}" if row and row.get("rounds") and len(row["rounds"]) > 1 else ""))
        shown = [] if best is None else [
            f"best rounds {best:.2f} (steal {steal_text(row, limit)}, its ceiling's {steal_text(health_round, limit)})"
        ]
        if paired.get(name):
            v = median(paired[name])
            ps = pairs_steal(pair_rows.get(name))
            shown.insert(
                0,
                f"paired median **{v:.2f}** ({', '.join(f'{x:.2f}' for x in paired[name])})"
                + ("" if ps is None else f", steal {steal_text({'steal_pct': ps}, limit)} over the pairs"),
            )
            is_noisy = ps is not None and ps > limit
        elif best is not None:
            v = best
            is_noisy = noisy(row, health_round)
        else:
            return
        targets.append((label, f">= {goal:.2f}", "; ".join(shown), verdict(v >= goal, is_noisy)))

    ratio_target("key request / ceiling", "keyreq", kr, 0.5)
    ratio_target("verify / ceiling", "verify", vr, 0.6)
    ratio_target("code request / ceiling", "otpreq", rows.get("otpreq"), 0.4)
    ratio_target("login flow in HTTP req/s / ceiling", "flow", rows.get("flow"), 0.4)
    steady = load(d, "delivery-steady")
    if steady and steady.get("p99_ms") is not None:
        targets.append(
            (
                "webhook delivery p99, healthy receiver, steady moderate rate",
                "< 250 ms",
                f"{steady['p99_ms']:.1f} ms ({steady['deliveries']} webhooks); steal {steal_text(steady, limit)}",
                verdict(steady["p99_ms"] < 250, noisy(steady)),
            )
        )
    rss = meta.get("vmhwm_kib")
    if rss:
        # Memory does not move with steal: pass/fail either way.
        targets.append(("gateway peak RSS (VmHWM)", "< 64 MiB", f"{rss / 1024:.1f} MiB", verdict(rss < 64 * 1024)))
    fixed_rows = {name: load(d, name) for name in FIXED_RUNS}
    for name, f in fixed_rows.items():
        if not f:
            continue
        goal = f.get("goal_p99_ms") or 10.0
        p99 = f.get("p99_ms")
        ok = (
            p99 is not None
            and p99 < goal
            and f.get("achieved_rps", 0) >= 0.95 * f["rate"]
            and f.get("non_ok", f.get("non_200", 0)) == 0
        )
        what = FIXED_LABELS.get(f.get("endpoint", "keyreq"), "key request")
        how = "half the ceiling" if name == "fixed" else "half its own capacity"
        targets.append(
            (
                f"{what} p99 at a fixed {f['rate']} req/s ({how})",
                f"< {goal:g} ms",
                f"{p99:.2f} ms at {f.get('achieved_rps', 0):.0f} req/s achieved, "
                f"{f.get('non_ok', f.get('non_200', 0))} not {FIXED_OK.get(f.get('endpoint', 'keyreq'), '200')}; "
                f"steal {steal_text(f, limit)}",
                verdict(ok, noisy(f)),
            )
        )
    w("")
    w("| target | goal | measured | result |")
    w("|---|---|---|---|")
    for t in targets:
        w("| " + " | ".join(t) + " |")
    if any(fixed_rows.values()):
        w("")
        w(
            f"Fixed rate: {next(f for f in fixed_rows.values() if f).get('tool', 'oha')}, "
            f"{meta.get('fixed_duration', meta.get('duration', '?'))} "
            f"each, {meta.get('connections', '?')} connections, latency from each request's scheduled send time "
            "(coordinated omission corrected). The half-ceiling run is issue 2's target (key requests, p99 < 10 ms); "
            "the others run each endpoint at half the throughput its own phase reached in this run (best round), "
            "p99 < 5 ms. CPU per request is over the answered requests."
        )
        w("")
        w(
            "| run | endpoint | asked req/s | achieved | p50 ms | p99 ms | p99.9 ms | max ms | not OK | Redis cmds/req "
            "| gateway CPU us/req | Redis CPU us/req | cores: gateway / Redis / oha / softirq / other | steal % "
            "| Redis stalls (longest, ms) / keys expired | p99 goal | result |"
        )
        w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---|")
        for name, f in fixed_rows.items():
            if not f:
                continue
            c = {"softirq": 0, **(f.get("cores") or {})}
            goal = f.get("goal_p99_ms") or 10.0
            ok = (
                f.get("p99_ms") is not None
                and f["p99_ms"] < goal
                and f.get("achieved_rps", 0) >= 0.95 * f["rate"]
                and f.get("non_ok", f.get("non_200", 0)) == 0
            )
            fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
            w(
                f"| {name} ({f.get('why', '')}) | {FIXED_LABELS.get(f.get('endpoint', 'keyreq'), '?')} | {f['rate']} | "
                f"{f.get('achieved_rps', 0):.0f} | {fmt(f.get('p50_ms'))} | {fmt(f.get('p99_ms'))} | "
                f"{fmt(f.get('p999_ms'))} | {fmt(f.get('max_ms'))} | {f.get('non_ok', f.get('non_200', 0))} | "
                f"{fmt(f.get('redis_per_request'))} | "
                + (
                    f"{f['gateway_cpu_us_per_request']:.0f} | {f['redis_cpu_us_per_request']:.0f} | "
                    if f.get("gateway_cpu_us_per_request") is not None
                    else "- | - | "
                )
                + (
                    "{gateway:.2f} / {redis:.2f} / {oha:.2f} / {softirq:.2f} / {other:.2f}".format(**c)
                    if f.get("cores")
                    else "-"
                )
                + f" | {steal_cell(f, limit)} | {stalls_cell(f)} | < {goal:g} ms | {verdict(ok, noisy(f))} |"
            )
    if pair_rows:
        w("")
        w(
            "Paired slices (the ceiling, then the endpoint, back to back; the verdicts above use the median "
            "ratio): per pair, the ratio, the steal over the pair, and the endpoint slice's gateway and Redis CPU "
            "per request (and, when recorded, its load client's)."
        )
        w("")
        for target, prs in pair_rows.items():
            parts = []
            for x in prs:
                cell = f"{x['ratio']:.2f}"
                if "steal" in x:
                    st = 100 * x["steal"] / x["all"] if x["all"] else 0.0
                    n = x["rps"] * x["wall"]
                    cell += (
                        f" (steal {st:.1f}%{' noisy' if st > limit else ''}; "
                        f"{x['gw_ticks'] / CLK_TCK * 1e6 / max(n, 1):.0f} + {x['redis_s'] * 1e6 / max(n, 1):.0f} us"
                        + (f"; client {x['client_s'] * 1e6 / max(n, 1):.0f} us" if "client_s" in x else "")
                        + ")"
                    )
                parts.append(cell)
            w(f"- {PAIR_LABELS.get(target, target)}: " + ", ".join(parts))
    peer_section(d, meta, rows, w, limit)
    import glob

    for p in sorted(glob.glob(os.path.join(d, "delivery-*.json"))):
        x = json.load(open(p))
        if x.get("p50_ms") is None:
            continue
        w("")
        w(
            f"Delivery latency ({os.path.basename(p)[:-5]}: {x['why']}"
            + (f"; code requests at {x['request_rps']:.0f} req/s" if x.get("request_rps") else "")
            + f"): {x['deliveries']} webhooks, payload.created_at to arrival at the receiver: p50 {x['p50_ms']:.1f} ms, "
            f"p90 {x['p90_ms']:.1f} ms, p99 {x['p99_ms']:.1f} ms, max {x['max_ms']:.1f} ms; first accepted to last "
            f"received {x['span_s']:.1f} s"
            + ("." if x.get("steal_pct") is None else f"; steal {steal_text(x, limit)}.")
        )
    rv = load(d, "revocation")
    if rv:
        w("")
        w(
            f"(h) Revocation across replicas: {rv['samples']} logouts on one replica of tokens a second replica "
            f"had just checked (and so answered from memory), the second polling each: refused there "
            f"p50 {rv['p50_ms']:.2f} ms, **p99 {rv['p99_ms']:.2f} ms**, max {rv['max_ms']:.2f} ms after the logout's "
            f"answer (p99 {rv['from_send_p99_ms']:.2f} ms after sending it); {rv['missed']} missed (still accepted "
            f"2 s later); target p99 < 10 ms: " + ("PASS" if rv["missed"] == 0 and rv["p99_ms"] < 10 else "FAIL") + "."
        )
    pw = load(d, "pwlogin")
    if pw:
        w("")
        w(
            f"Password-login burst (after everything else; {meta.get('connections', '?')} connections on "
            f"POST /v1/login/password for 5 s): {pw['rps'] or 0:.0f} logins/s, {pw['non_2xx']} non-2xx; gateway VmHWM "
            f"{pw['vmhwm_before_kib'] / 1024:.1f} MiB before, **{pw['vmhwm_after_kib'] / 1024:.1f} MiB after**; VmRSS "
            f"after {pw['vmrss_after_kib'] / 1024:.1f} MiB; {pw['threads']} threads."
        )
    if rss:
        w("")
        w(
            f"Gateway memory: VmHWM {rss / 1024:.1f} MiB; VmRSS (MiB) {meta.get('rss_timeline_mib', '?')}. "
            f"The setup replica that created the {meta.get('setup_users', '?')} flow users (one Argon2id hash "
            f"each) reached VmHWM {meta.get('setup_replica_vmhwm_kib', 0) / 1024:.1f} MiB; see the README."
        )
    busy = disturbed_phases(d, meta)
    if busy:
        w("")
        w(
            f"Other processes (another workload on this machine, not steal) used more than 0.25 cores during "
            f"{len(busy)} phase{'s' if len(busy) > 1 else ''} (" + ", ".join(f"{label} {c:.2f}" for label, c in busy) + "): their throughput and "
            "latency are disturbed too, though they are not marked noisy."
        )
    # Last: how many measured phases were noisy.
    phases = measured_phases(d, meta)
    bad = [(label, v) for label, v in phases if v > limit]
    w("")
    if not phases:
        w("**Steal:** not sampled in this run (results of an older run.sh).")
    elif bad:
        w(
            f"**Noisy: {len(bad)} of {len(phases)} measured phases had more than {limit:g}% CPU steal** ("
            + ", ".join(f"{label} {v:.1f}%" for label, v in bad)
            + "). Their figures should not be trusted: the hypervisor took CPU time from this machine while "
            "they ran. Rerun on a quieter machine, or compare CPU per request rather than throughput."
        )
    else:
        top = max(phases, key=lambda x: x[1])
        w(
            f"**Steal:** none of the {len(phases)} measured phases had more than {limit:g}% CPU steal "
            f"(highest: {top[0]}, {top[1]:.1f}%); over the whole run {meta.get('steal_pct', '?')}%."
        )
    print("\n".join(out))


def peer_section(d: str, meta: dict, rows: dict, w, limit: float) -> None:
    """PEERS=1: authgate and Better Auth side by side, phase by phase."""
    peer = {name: load(d, f"peer-{name}") for name, _ in PEER_PHASES}
    if not any(peer.values()):
        return
    pm = meta.get("peer") or {}
    w("")
    w(
        f"**The peer** (PEERS=1): Better Auth {pm.get('better_auth', '?')} with its emailOTP plugin, one Node "
        f"{pm.get('node', '?')} process (NODE_ENV=production), better-sqlite3 for its users ({pm.get('users', '?')} "
        "created at start), its own private Redis as secondary storage (codes and sessions), rate limit off. Each "
        "peer phase ran right after authgate's, with the same wrk settings; see the README for what differs. "
        "authgate / peer is the throughput ratio; RSS is each server's VmRSS right after its phase."
    )
    w("")
    w(
        "| phase | authgate req/s | peer req/s | authgate / peer | p50 / p99 ms authgate | p50 / p99 ms peer | "
        "CPU us/req authgate: gateway + Redis | CPU us/req peer: Node + Redis | Redis cmds/req authgate / peer | "
        "VmRSS MiB authgate / peer | steal % authgate / peer | verdict |"
    )
    w("|---|---:|---:|---:|---|---|---|---|---|---|---|---|")
    for name, label in PEER_PHASES:
        a, b = rows.get(name), peer.get(name)
        if not a or not b:
            continue
        ratio = f"**{a['rps'] / b['rps']:.1f}**" if b["rps"] else "-"
        noisy = any(((x or {}).get("steal_pct") or 0) > limit for x in (a, b))
        w(
            f"| {label} | {a['rps']:.0f} | {b['rps']:.0f} | {ratio} | {ms(a['p50_us'])} / {ms(a['p99_us'])} | "
            f"{ms(b['p50_us'])} / {ms(b['p99_us'])} | "
            f"{a['gateway_cpu_us_per_request']:.0f} + {a['redis_cpu_us_per_request']:.0f} | "
            f"{b['server_cpu_us_per_request']:.0f} + {b['redis_cpu_us_per_request']:.0f} | "
            f"{a['redis']['per_request']:.2f} / {b['redis']['per_request']:.2f} | "
            f"{a.get('vmrss_kib', 0) / 1024:.1f} / {b['vmrss_kib'] / 1024:.1f} | "
            f"{steal_cell(a, limit)} / {steal_cell(b, limit)} | "
            + ("**noisy** (not to be trusted)" if noisy else "no target")
            + " |"
        )
    for name, label in PEER_PHASES:
        b = peer.get(name)
        if not b:
            continue
        per = ", ".join(f"{k} {v:.2f}" for k, v in sorted(b["redis"]["by_command"].items(), key=lambda kv: -kv[1]))
        extra = ""
        if name == "exchange":
            extra = (
                f"; {b.get('peer_ok', 0)} sign-ins answered 200, {b.get('peer_bad', 0)} did not, of {b.get('list', '?')} "
                f"(address, code) pairs, each used once ({b['duration_us'] / 1e6:.1f} s)"
            )
        c = b.get("cores") or {}
        w(
            f"- peer {label}: Redis commands per request: {per or 'none'}{extra}; cores used: Node "
            f"{c.get('server', 0):.2f}, Redis {c.get('redis', 0):.2f}, wrk {c.get('wrk', 0):.2f}, other "
            f"{c.get('other', 0):.2f}."
        )
    if pm.get("vmhwm_kib"):
        w(
            f"- Peak RSS (VmHWM) at the end: authgate {meta.get('vmhwm_kib', 0) / 1024:.1f} MiB, the peer "
            f"{pm['vmhwm_kib'] / 1024:.1f} MiB (VmRSS {pm.get('vmrss_kib', 0) / 1024:.1f} MiB)."
        )


def compare(single: str, cluster: str) -> None:
    """Side by side: the single-node half and the cluster half of a REDIS=both run."""
    ms_, mc = load(single, "meta") or {}, load(cluster, "meta") or {}
    rs = {name: load(single, name) for name, _ in PHASES}
    rc = {name: load(cluster, name) for name, _ in PHASES}
    hs, hc = (rs.get("health") or {}).get("rps"), (rc.get("health") or {}).get("rps")
    out = []
    w = out.append
    w(f"# authgate benchmark, one Redis server vs a Redis Cluster: {ms_.get('date', '?')}")
    w("")
    w(
        f"Gateway commit {ms_.get('commit', '?')}; {ms_.get('cpus', '?')} CPUs ({ms_.get('cpu_model', '?')}); "
        f"Redis {ms_.get('redis_version', '?')}; each phase {ms_.get('duration', '?')} with "
        f"{ms_.get('connections', '?')} connections, rounds {ms_.get('rounds', 1)}, phase d over "
        f"{ms_.get('verify_tokens', 1)} / {mc.get('verify_tokens', 1)} session(s). The single-node half started "
        f"{ms_.get('date', '?')} (steal {ms_.get('steal_pct', '?')}% over the half), the cluster half "
        f"{mc.get('date', '?')} (steal {mc.get('steal_pct', '?')}%; {mc.get('topology', '?')}; outbox replicas "
        f"{mc.get('outbox_replicas', 'default')})."
    )
    w("")
    w(
        "The halves ran one after the other, minutes apart, on a box whose speed drifts: the ceiling (a), which "
        "does not touch Redis, measures that drift. *Normalised* divides each half's req/s by its own ceiling "
        "before taking the ratio; read it beside the raw ratio, and compare figures within this run only."
    )
    w("")
    w(
        "| phase | single req/s | cluster req/s | cluster / single | normalised | Redis cmds/req single / cluster | "
        "round trips/req (c=1) single / cluster | gateway CPU us/req single / cluster | Redis CPU us/req single / cluster "
        "| busiest primary (cluster) | other processes, cores (steal) single / cluster |"
    )
    w("|---|---:|---:|---:|---:|---|---|---|---|---:|---|")

    def other(r):
        c = r.get("cores") or {}
        return f"{c.get('other', 0):.2f} ({c.get('steal', 0):.2f})"

    for name, label in PHASES:
        a, b = rs.get(name), rc.get(name)
        if not a or not b:
            cells = ["not run" if not x else f"{x['rps']:.0f}" for x in (a, b)]
            w(f"| {label} | {cells[0]} | {cells[1]} | | | | | | | | |")
            continue
        ratio = b["rps"] / a["rps"] if a["rps"] else None
        norm = (b["rps"] / hc) / (a["rps"] / hs) if (hs and hc and a["rps"] and name != "health") else None
        ra = (a.get("calibration") or {}).get("reads_per_req")
        rb = (b.get("calibration") or {}).get("reads_per_req")
        busiest = (b.get("spread") or {}).get("busiest_share")
        w(
            f"| {label} | {a['rps']:.0f} | {b['rps']:.0f} | {'-' if ratio is None else f'{ratio:.2f}'} | "
            f"{'-' if norm is None else f'{norm:.2f}'} | "
            f"{a['redis']['per_request']:.2f} / {b['redis']['per_request']:.2f} | "
            f"{'-' if ra is None else f'{ra:.2f}'} / {'-' if rb is None else f'{rb:.2f}'} | "
            f"{a['gateway_cpu_us_per_request']:.0f} / {b['gateway_cpu_us_per_request']:.0f} | "
            f"{a['redis_cpu_us_per_request']:.0f} / {b['redis_cpu_us_per_request']:.0f} | "
            f"{'-' if busiest is None else f'{busiest * 100:.1f}%'} | {other(a)} / {other(b)} |"
        )
    spread_section(rc, w)
    bad = [
        name
        for name in SPREAD_PHASES
        if ((rc.get(name) or {}).get("spread") or {}).get("busiest_share") is not None
        and rc[name]["spread"]["busiest_share"] > SPREAD_GOAL
    ]
    w("")
    w(
        f"Spread target (busiest primary <= {SPREAD_GOAL:.0%} in (b)-(f)): "
        + ("met in every phase." if not bad else "missed in " + ", ".join(bad) + ".")
    )
    print("\n".join(out))


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "seed":
        seed(args[0], args[1], int(args[2]), args[3])
    elif cmd == "login":
        login(args[0], args[1], args[2:])
    elif cmd == "tokens":
        tokens(args[0], args[1], int(args[2]), args[3:])
    elif cmd == "otp-setup":
        otp_setup(args[0], args[1], args[2], int(args[3]), args[4])
    elif cmd == "pairs":
        pairs(args[0], args[1], args[2])
    elif cmd == "delivery":
        delivery(args[0], args[1], args[2])
    elif cmd == "nodes":
        nodes(args[0], args[1], args[2:])
    elif cmd == "stalls":
        stalls(args[0])
    elif cmd == "summarize":
        summarize(args[0])
    elif cmd == "compare":
        compare(args[0], args[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
