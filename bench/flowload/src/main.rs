//! `authgate-flowload`: the load client of the benchmark's phase (c), the one-time-key login
//! flow (bench/README.md). It does what `wrk` with bench/lua/flow.lua did, natively: each
//! connection logs in as its own user, one request in flight, a key request
//! (`POST /v1/login/one-time-key/request`) then a login with MD5(key "|" HA1)
//! (`POST /v1/login/one-time-key`), again until the run ends. Its report has wrk's shape,
//! then flow.lua's lines and the `BENCH {json}` line bench/run.sh reads.
//!
//! wrk needed one thread per connection for this (its Lua state is per thread, and each
//! connection must own one user) and computed MD5 in Lua: about four times wrk's own cost
//! per request on the ceiling, taken from the gateway on a two-core box. This client costs
//! about what wrk costs on the ceiling.
//!
//! With `--exchange` it drives phase (f) instead, as bench/lua/exchange.lua does: see
//! `exchange.rs`.

mod args;
mod conn;
mod exchange;
mod hist;
mod http;
mod setup;

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use conn::Stats;
use hist::Histogram;
use http::Requests;

/// What a connection's loop counts, added up over connections and threads.
trait Merge: Default + Send + 'static {
    fn merge_from(&mut self, other: &Self);
}

impl Merge for Stats {
    fn merge_from(&mut self, other: &Self) {
        self.merge(other);
    }
}

impl Merge for exchange::Tally {
    fn merge_from(&mut self, other: &Self) {
        self.merge(other);
    }
}

/// Runs the connections of one OS thread on its own current-thread runtime.
fn run_current_thread<T, S, F, Fut>(
    work: Vec<T>,
    conn: F,
    addr: std::net::SocketAddr,
    deadline: Instant,
    timeout: Duration,
) -> Result<S, String>
where
    T: Send + 'static,
    S: Merge,
    F: Fn(std::net::SocketAddr, T, Instant, Duration) -> Fut,
    Fut: Future<Output = S> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    Ok(rt.block_on(run_all(work, conn, addr, deadline, timeout)))
}

/// Spawns one task per connection on the current runtime and adds up their counts.
async fn run_all<T, S, F, Fut>(
    work: Vec<T>,
    conn: F,
    addr: std::net::SocketAddr,
    deadline: Instant,
    timeout: Duration,
) -> S
where
    S: Merge,
    F: Fn(std::net::SocketAddr, T, Instant, Duration) -> Fut,
    Fut: Future<Output = S> + Send + 'static,
{
    let handles: Vec<_> = work
        .into_iter()
        .map(|w| tokio::spawn(conn(addr, w, deadline, timeout)))
        .collect();
    let mut total = S::default();
    for h in handles {
        match h.await {
            Ok(s) => total.merge_from(&s),
            Err(e) => eprintln!("authgate-flowload: a connection's task failed: {e}"),
        }
    }
    total
}

/// Runs every connection's `work` (`per_thread[i]` on OS thread i, or all on one multi-thread
/// runtime) until `deadline`, and adds up what they counted.
fn drive<T, S, F, Fut>(
    args: &args::Args,
    per_thread: Vec<Vec<T>>,
    conn: F,
    deadline: Instant,
) -> Result<S, (i32, String)>
where
    T: Send + 'static,
    S: Merge,
    F: Fn(std::net::SocketAddr, T, Instant, Duration) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = S> + Send + 'static,
{
    let (addr, timeout) = (args.addr, args.timeout);
    if args.multi {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
            .map_err(|e| (1, format!("tokio runtime: {e}")))?;
        let work = per_thread.into_iter().flatten().collect();
        return Ok(rt.block_on(run_all(work, conn, addr, deadline, timeout)));
    }
    let threads: Vec<_> = per_thread
        .into_iter()
        .enumerate()
        .map(|(i, work)| {
            std::thread::Builder::new()
                .name(format!("flowload-{i}"))
                .spawn(move || run_current_thread(work, conn, addr, deadline, timeout))
        })
        .collect();
    let mut total = S::default();
    for t in threads {
        let t = t.map_err(|e| (1, format!("cannot start a thread: {e}")))?;
        match t.join() {
            Ok(Ok(s)) => total.merge_from(&s),
            Ok(Err(e)) => return Err((1, e)),
            Err(_) => return Err((1, "a thread panicked".to_owned())),
        }
    }
    Ok(total)
}

/// wrk's time format: 812.00us, 2.93ms, 1.20s.
fn fmt_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.2}us")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

/// wrk's size format, powers of 1024: 512.00B, 3.20MB.
fn fmt_bytes(b: f64) -> String {
    let mut v = b;
    for unit in ["B", "KB", "MB", "GB"] {
        if v < 1024.0 {
            return format!("{v:.2}{unit}");
        }
        v /= 1024.0;
    }
    format!("{v:.2}TB")
}

/// wrk's latency table and its `N requests in T, B read` line (no final newline).
fn wrk_stats(h: &Histogram, requests: u64, secs: f64, bytes: u64) -> String {
    let mut out = String::from("  Thread Stats   Avg      Stdev     Max   +/- Stdev\n");
    out.push_str(&format!(
        "    Latency   {:>8}  {:>8}  {:>8}  {:>6.2}%\n",
        fmt_us(h.mean()),
        fmt_us(h.stdev()),
        fmt_us(h.max() as f64),
        h.within_stdev()
    ));
    out.push_str("  Latency Distribution\n");
    for p in [50.0, 75.0, 90.0, 99.0] {
        out.push_str(&format!("  {p:>3.0}%  {:>8}\n", fmt_us(h.percentile(p))));
    }
    out.push_str(&format!(
        "  {requests} requests in {}, {} read",
        fmt_us(secs * 1e6),
        fmt_bytes(bytes as f64)
    ));
    out
}

/// wrk's `Non-2xx or 3xx responses` line (when there are any), then its `Requests/sec:`
/// (the line run.sh reads) and `Transfer/sec:` over `secs` (no final newline).
fn wrk_rates(status_errors: u64, requests: u64, bytes: u64, secs: f64) -> String {
    let mut out = String::new();
    if status_errors > 0 {
        out.push_str(&format!("  Non-2xx or 3xx responses: {status_errors}\n"));
    }
    out.push_str(&format!(
        "Requests/sec: {:>10.2}\nTransfer/sec: {:>10}",
        requests as f64 / secs,
        fmt_bytes(bytes as f64 / secs)
    ));
    out
}

/// The report: wrk's text (with the `Requests/sec:` line run.sh reads), flow.lua's lines,
/// and the `BENCH {json}` line.
fn report(args: &args::Args, st: &Stats, elapsed: Duration) -> String {
    let mut all = Histogram::default();
    all.merge(&st.key);
    all.merge(&st.login);
    let secs = elapsed.as_secs_f64().max(1e-9);
    let requests = st.requests();
    let socket = st.connect_errors + st.read_errors + st.write_errors;
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "Running {} test @ {} (authgate-flowload, the one-time-key login flow)",
        fmt_secs(args.duration),
        args.url
    ));
    line(format!(
        "  {} threads and {} connections ({} runtime)",
        args.threads,
        args.connections,
        if args.multi {
            "one multi-thread"
        } else {
            "a current-thread"
        }
    ));
    line(wrk_stats(&all, requests, elapsed.as_secs_f64(), st.bytes));
    if socket + st.timeouts > 0 {
        line(format!(
            "  Socket errors: connect {}, read {}, write {}, timeout {}",
            st.connect_errors, st.read_errors, st.write_errors, st.timeouts
        ));
    }
    line(wrk_rates(st.status_errors, requests, st.bytes, secs));
    line(format!(
        "flows: key requests ok {}, failed {}; logins ok (200, result:true) {}, failed {}",
        st.key_ok, st.key_bad, st.login_ok, st.login_bad
    ));
    if st.login_bad > 0 {
        line(format!("some failed logins: {}", st.bad_logins));
    }
    let mut b = Map::new();
    let mut put = |k: &str, v: Value| {
        b.insert(k.to_owned(), v);
    };
    put("requests", json!(requests));
    put("duration_us", json!(elapsed.as_micros() as u64));
    put("bytes", json!(st.bytes));
    put("errors_status", json!(st.status_errors));
    put("errors_socket", json!(socket));
    put("errors_timeout", json!(st.timeouts));
    put("p50_us", json!(all.percentile(50.0)));
    put("p90_us", json!(all.percentile(90.0)));
    put("p99_us", json!(all.percentile(99.0)));
    put("max_us", json!(all.max()));
    put("mean_us", json!((all.mean() * 1000.0).round() / 1000.0));
    put("key_ok", json!(st.key_ok));
    put("key_bad", json!(st.key_bad));
    put("login_ok", json!(st.login_ok));
    put("login_bad", json!(st.login_bad));
    put("flows", json!(st.login_ok + st.login_bad));
    put("key_p50_us", json!(st.key.percentile(50.0)));
    put("key_p99_us", json!(st.key.percentile(99.0)));
    put("login_p50_us", json!(st.login.percentile(50.0)));
    put("login_p99_us", json!(st.login.percentile(99.0)));
    put("client", json!("authgate-flowload"));
    put("threads", json!(args.threads));
    put(
        "runtime",
        json!(if args.multi { "multi" } else { "current" }),
    );
    line(format!("BENCH {}", Value::Object(b)));
    out
}

/// `--exchange`'s report: wrk's text (its `Requests/sec:` over the exchanges' span),
/// exchange.lua's line, and the `BENCH {json}` line with exchange.lua's fields.
fn exchange_report(args: &args::Args, t: &exchange::Tally, pairs: u64) -> String {
    let span = t.span();
    let secs = span.as_secs_f64().max(1e-9);
    let requests = t.ok + t.bad;
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "Running {} test @ {} (authgate-flowload --exchange, each (username, code) pair once)",
        fmt_secs(args.duration),
        args.url
    ));
    line(format!(
        "  {} threads and {} connections",
        args.threads, args.connections
    ));
    let h = &t.latency;
    line(wrk_stats(h, requests, secs, t.bytes));
    if t.socket_errors + t.timeouts > 0 {
        line(format!(
            "  Socket errors: {}, timeout {}",
            t.socket_errors, t.timeouts
        ));
    }
    line(wrk_rates(t.status_errors, requests, t.bytes, secs));
    line(format!(
        "exchanges: {} ok (201), {} failed {}, of {} pairs",
        t.ok, t.bad, t.bad_status, pairs
    ));
    if t.bad > 0 || requests < pairs {
        line("some failed or were not sent: INVALID".to_owned());
    }
    let b = json!({
        "requests": requests,
        "duration_us": span.as_micros() as u64,
        "bytes": t.bytes,
        "errors_status": t.status_errors,
        "errors_socket": t.socket_errors,
        "errors_timeout": t.timeouts,
        "p50_us": h.percentile(50.0),
        "p90_us": h.percentile(90.0),
        "p99_us": h.percentile(99.0),
        "max_us": h.max(),
        "mean_us": (h.mean() * 1000.0).round() / 1000.0,
        "exchange_ok": t.ok,
        "exchange_bad": t.bad,
        "pairs": pairs,
        "client": "authgate-flowload",
        "threads": args.threads,
    });
    line(format!("BENCH {b}"));
    out
}

/// A duration as wrk prints it in its first line: 10s, 500ms.
fn fmt_secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Parses, self-tests, runs and reports; the exit status is the error's.
fn main_inner() -> Result<(), (i32, String)> {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{}", args::USAGE);
            return Ok(());
        }
        Err(e) => return Err((2, format!("{e}\n{}", args::USAGE))),
    };
    let text = if args.exchange {
        exchanges(&args)?
    } else {
        flows(&args)?
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| (1, format!("stdout: {e}")))?;
    Ok(())
}

/// Phase (c): the login flow until the duration is up; the report's text.
fn flows(args: &args::Args) -> Result<String, (i32, String)> {
    // The self-test comes first, before anything is sent (flow.lua's setup()).
    let (users, msg) = setup::load().map_err(|e| (3, format!("SELF-TEST FAILED: {e}")))?;
    if users.len() < args.connections {
        return Err((
            3,
            format!(
                "authgate-flowload: {} connections but only {} users in BENCH_USERS_FILE",
                args.connections,
                users.len()
            ),
        ));
    }
    // Connection i logs in as line i; connection i runs on thread i mod THREADS.
    let mut per_thread: Vec<Vec<Requests>> = (0..args.threads).map(|_| Vec::new()).collect();
    for (i, u) in users.iter().take(args.connections).enumerate() {
        if let Some(v) = per_thread.get_mut(i % args.threads) {
            v.push(Requests::new(&args.authority, &u.name, &u.ha1));
        }
    }
    let start = Instant::now();
    let total: Stats = drive(args, per_thread, conn::run, start + args.duration)?;
    let text = format!("{msg}\n{}", report(args, &total, start.elapsed()));
    Ok(text)
}

/// Phase (f), `--exchange`: each pair once, until they are used up or the duration is; the
/// report's text.
fn exchanges(args: &args::Args) -> Result<String, (i32, String)> {
    let setup = exchange::load().map_err(|e| (3, format!("authgate-flowload --exchange: {e}")))?;
    let reqs: Vec<Vec<u8>> = setup
        .pairs
        .iter()
        .map(|(u, c)| exchange::request(&args.authority, &setup, u, c))
        .collect();
    let mut per_thread: Vec<Vec<Vec<Vec<u8>>>> = (0..args.threads).map(|_| Vec::new()).collect();
    for i in 0..args.connections {
        let share = exchange::share(&reqs, i, args.connections);
        if let Some(v) = per_thread
            .get_mut(i % args.threads)
            .filter(|_| !share.is_empty())
        {
            v.push(share);
        }
    }
    drop(reqs);
    let start = Instant::now();
    let total: exchange::Tally = drive(args, per_thread, exchange::run, start + args.duration)?;
    Ok(exchange_report(args, &total, setup.pairs.len() as u64))
}

fn main() {
    if let Err((code, msg)) = main_inner() {
        eprintln!("{msg}");
        std::process::exit(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_what_run_sh_reads() {
        let a = match args::parse(
            ["-t1", "-c1", "-d1s", "http://127.0.0.1:9"]
                .into_iter()
                .map(str::to_owned),
        ) {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        let mut st = Stats::default();
        for us in [900, 1100, 1300] {
            st.key.record(us);
            st.login.record(us + 100);
        }
        st.key_ok = 3;
        st.login_ok = 2;
        st.login_bad = 1;
        st.bad_logins = "401:{\"result\":false} | ".to_owned();
        let text = report(&a, &st, Duration::from_secs(2));
        assert!(text.contains("\nRequests/sec:       3.00\n"), "{text}");
        assert!(text.contains(
            "\nflows: key requests ok 3, failed 0; logins ok (200, result:true) 2, failed 1\n"
        ));
        assert!(text.contains("\nsome failed logins: 401:{\"result\":false} | \n"));
        let last = text.lines().last().unwrap_or_default();
        let json: Value = match serde_json::from_str(last.strip_prefix("BENCH ").unwrap_or("")) {
            Ok(v) => v,
            Err(e) => panic!("{e}: {last}"),
        };
        for k in [
            "requests",
            "duration_us",
            "bytes",
            "errors_status",
            "errors_socket",
            "errors_timeout",
            "p50_us",
            "p90_us",
            "p99_us",
            "max_us",
            "mean_us",
            "key_ok",
            "key_bad",
            "login_ok",
            "login_bad",
            "flows",
            "key_p50_us",
            "key_p99_us",
            "login_p50_us",
            "login_p99_us",
        ] {
            assert!(json.get(k).is_some_and(Value::is_number), "{k} in {last}");
        }
        assert_eq!(json["requests"], 6);
        assert_eq!(json["duration_us"], 2_000_000);
        assert_eq!(json["flows"], 3);
        assert_eq!(json["max_us"], 1400);
        // 1,100 µs is in a bucket 16 µs wide: its middle is within 1% of it.
        let p50 = json["key_p50_us"].as_f64().unwrap_or_default();
        assert!((p50 - 1100.0).abs() <= 11.0, "{p50}");
    }

    #[test]
    fn the_exchange_report_has_what_run_sh_and_bench_py_read() {
        let a = match args::parse(
            ["--exchange", "-t1", "-c2", "-d10s", "http://127.0.0.1:9"]
                .into_iter()
                .map(str::to_owned),
        ) {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        assert!(a.exchange);
        let t0 = Instant::now();
        let mut t = exchange::Tally {
            ok: 3,
            bad: 1,
            pairs: 5,
            bad_status: "401 ".to_owned(),
            first: Some(t0),
            last: Some(t0 + Duration::from_millis(500)),
            ..exchange::Tally::default()
        };
        for us in [900, 1000, 1100, 1200] {
            t.latency.record(us);
        }
        let text = exchange_report(&a, &t, 5);
        assert!(text.contains("\nRequests/sec:       8.00\n"), "{text}");
        assert!(
            text.contains("\nexchanges: 3 ok (201), 1 failed 401 , of 5 pairs\n"),
            "{text}"
        );
        assert!(
            text.contains("\nsome failed or were not sent: INVALID\n"),
            "{text}"
        );
        let last = text.lines().last().unwrap_or_default();
        let json: Value = match serde_json::from_str(last.strip_prefix("BENCH ").unwrap_or("")) {
            Ok(v) => v,
            Err(e) => panic!("{e}: {last}"),
        };
        assert_eq!(json["requests"], 4);
        assert_eq!(json["duration_us"], 500_000);
        assert_eq!(json["exchange_ok"], 3);
        assert_eq!(json["exchange_bad"], 1);
        assert_eq!(json["pairs"], 5);
        for k in [
            "p50_us",
            "p90_us",
            "p99_us",
            "max_us",
            "mean_us",
            "bytes",
            "errors_status",
        ] {
            assert!(json.get(k).is_some_and(Value::is_number), "{k} in {last}");
        }
        t.bad = 0;
        t.ok = 5;
        assert!(!exchange_report(&a, &t, 5).contains("INVALID"));
    }
}
