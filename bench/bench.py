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
    "flow": "1.5 (key 1; login 2: GET+PTTL+GETDEL+GET, then HSET+PEXPIRE+EVAL)",
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
        if len(parts) == 3 and float(parts[1]) > 0:
            out.setdefault(parts[0], []).append(float(parts[2]) / float(parts[1]))
    return out


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
        else f"Redis {meta.get('redis_version', '?')} (private, no persistence)"
    )
    w(
        f"Machine: {meta.get('cpus', '?')} CPUs ({meta.get('cpu_model', '?')}), load average at start "
        f"{meta.get('loadavg_start', '?')}, steal {meta.get('steal_pct', '?')}% of the CPU time over the run; "
        f"{redis}; wrk {meta.get('wrk_version', '?')}; gateway commit {meta.get('commit', '?')}."
    )
    w(
        f"Each phase: {meta.get('duration', '?')} with {meta.get('connections', '?')} connections "
        f"(wrk threads: {meta.get('threads', '?')} for a, b, d; {meta.get('connections', '?')} for c, "
        f"one connection per thread, see README); rounds: {meta.get('rounds', 1)}; phase d cycles over "
        f"{meta.get('verify_tokens', 1)} access token(s), one session key each."
    )
    w("")
    w("| phase | req/s | p50 ms | p99 ms | ratio to ceiling | errors / non-2xx |")
    w("|---|---:|---:|---:|---:|---:|")
    for name, label in PHASES:
        r = rows.get(name)
        if not r:
            w(f"| {label} | not run | | | | |")
            continue
        ratio = "1.00" if name == "health" else (f"{r['rps'] / ceiling:.2f}" if ceiling else "-")
        errs = r["errors_status"] + r["errors_socket"] + r["errors_timeout"]
        w(f"| {label} | {r['rps']:.0f} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | {ratio} | {errs} |")
    w("")
    w("Cost per HTTP request (the flow's key requests and logins averaged):")
    w("")
    w("| phase | Redis cmds/req | Redis round trips/req: measured at c=1 | from the code | gateway CPU us/req | Redis CPU us/req | cores used: gateway / Redis / wrk / softirq / **other processes** |")
    w("|---|---:|---:|---:|---:|---:|---|")
    for name, label in PHASES:
        r = rows.get(name)
        if not r:
            continue
        reads = (r.get("calibration") or {}).get("reads_per_req")
        w(
            f"| {label} | {r['redis']['per_request']:.2f} | {'-' if reads is None else f'{reads:.2f}'} | "
            f"{CODE_ROUND_TRIPS[name]} | {r['gateway_cpu_us_per_request']:.0f} | {r['redis_cpu_us_per_request']:.0f} | "
            f"{cores(r)} |"
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
            "All rounds, req/s (p99 ms; cores taken by other processes during the round):"
        )
        w("")
        for name, label in PHASES:
            r = rows.get(name)
            if r and r.get("rounds"):
                w(
                    f"- {label}: "
                    + ", ".join(
                        f"{x['rps']:.0f} ({ms(x['p99_us'])}; {x['other_cores']:.2f})" for x in r["rounds"]
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
    fixed = load(d, "fixed")
    targets = []
    kr, vr = rows.get("keyreq"), rows.get("verify")

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    paired = load_pairs(d)

    def ratio_target(label: str, name: str, row, goal: float) -> None:
        # The verdict comes from the paired slices when the run has them (ceiling and
        # endpoint back to back, so the box's drift largely cancels); the phases'
        # best-round ratio is shown beside it.
        best = row["rps"] / ceiling if (ceiling and row) else None
        shown = [] if best is None else [f"best rounds {best:.2f}"]
        if paired.get(name):
            v = median(paired[name])
            shown.insert(0, f"paired median **{v:.2f}** ({', '.join(f'{x:.2f}' for x in paired[name])})")
        elif best is not None:
            v = best
        else:
            return
        targets.append((label, f">= {goal:.2f}", "; ".join(shown), verdict(v >= goal)))

    ratio_target("key request / ceiling", "keyreq", kr, 0.5)
    ratio_target("verify / ceiling", "verify", vr, 0.6)
    ratio_target("code request / ceiling", "otpreq", rows.get("otpreq"), 0.4)
    steady = load(d, "delivery-steady")
    if steady and steady.get("p99_ms") is not None:
        targets.append(
            (
                "webhook delivery p99, healthy receiver, steady moderate rate",
                "< 250 ms",
                f"{steady['p99_ms']:.1f} ms ({steady['deliveries']} webhooks)",
                verdict(steady["p99_ms"] < 250),
            )
        )
    rss = meta.get("vmhwm_kib")
    if rss:
        targets.append(("gateway peak RSS (VmHWM)", "< 64 MiB", f"{rss / 1024:.1f} MiB", verdict(rss < 64 * 1024)))
    if fixed:
        p99 = fixed.get("p99_ms")
        ok = p99 is not None and p99 < 10 and fixed.get("achieved_rps", 0) >= 0.95 * fixed["rate"]
        targets.append(
            (
                f"key request p99 at a fixed {fixed['rate']} req/s (half the ceiling)",
                "< 10 ms",
                f"{p99:.2f} ms at {fixed.get('achieved_rps', 0):.0f} req/s achieved, "
                f"{fixed.get('non_200', 0)} non-200",
                verdict(ok),
            )
        )
    w("")
    w("| target | goal | measured | result |")
    w("|---|---|---|---|")
    for t in targets:
        w("| " + " | ".join(t) + " |")
    for key in ("fixed", "fixed-context"):
        f = load(d, key)
        if not f:
            continue
        w("")
        w(
            f"Fixed rate ({key}, {f.get('why', '')}): {f.get('tool', '?')}, {f['rate']} req/s asked, "
            f"{f.get('achieved_rps', 0):.0f} req/s achieved, {meta.get('duration', '?')}, "
            f"{meta.get('connections', '?')} connections, latency from each request's scheduled send time "
            f"(coordinated omission corrected): p50 {f.get('p50_ms', 0):.2f} ms, p99 {f.get('p99_ms', 0):.2f} ms, "
            f"max {f.get('max_ms', 0):.2f} ms; status codes {f.get('status_codes')}."
            + (
                " Cores used: gateway {gateway:.2f}, Redis {redis:.2f}, oha {oha:.2f}, softirq {softirq:.2f}, "
                "other processes {other:.2f} of {available}.".format(**{"softirq": 0, **f["cores"]})
                if f.get("cores")
                else ""
            )
        )
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
            f"received {x['span_s']:.1f} s."
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
    print("\n".join(out))


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
    elif cmd == "summarize":
        summarize(args[0])
    elif cmd == "compare":
        compare(args[0], args[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
