//! The command line, in wrk's syntax: `-t THREADS -c CONNECTIONS -d DURATION --timeout T URL`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// What the command line asked for.
#[derive(Debug)]
pub struct Args {
    /// OS threads, each driving its share of the connections.
    pub threads: usize,
    /// Open connections, one user and one request in flight each.
    pub connections: usize,
    /// Length of the run.
    pub duration: Duration,
    /// A request unanswered after this long counts as a timeout (and its connection is
    /// reopened).
    pub timeout: Duration,
    /// The URL as given (for the report).
    pub url: String,
    /// `host:port` of the URL, sent as the `Host` header.
    pub authority: String,
    /// The gateway's address, resolved once.
    pub addr: SocketAddr,
    /// `multi`: one multi-thread tokio runtime with `threads` workers instead of one
    /// current-thread runtime per OS thread (the default; see the README for the costs).
    pub multi: bool,
    /// `--exchange`: phase (f), each (username, code) pair once, instead of the login flow.
    pub exchange: bool,
}

/// The usage text, printed on `-h` and on a bad command line.
pub const USAGE: &str = "\
usage: authgate-flowload [-t THREADS] [-c CONNECTIONS] [-d DURATION] [--timeout T] [--latency]
                         [--runtime current|multi] [--exchange] http://HOST:PORT[/...]

  -t, --threads      OS threads (default 2)
  -c, --connections  connections, one user each (default 10)
  -d, --duration     length of the run: 10s, 1m, 500ms, 2h, or whole seconds (default 10s)
      --timeout      a request unanswered this long is a timeout (default 2s)
      --latency      accepted for wrk's sake; the latency distribution is always printed
      --runtime      current: a current-thread tokio runtime per OS thread (default);
                     multi: one multi-thread runtime with THREADS workers
      --exchange     phase (f) instead of the flow: POST /v2/account-members/tokens once per
                     (username, code) pair, connection i taking pairs i, i+C, ...; stops when
                     they are used up (or at the duration)

environment (as bench/lua/flow.lua):
  BENCH_USERS_FILE   lines \"<username> <ha1>\"; connection i logs in as line i
  BENCH_PASSWORD     the users' password, to check each HA1
  BENCH_MD5_VECTORS  lines \"<md5sum hex> <input>\" for the MD5 self-test

with --exchange (as bench/lua/exchange.lua):
  BENCH_PAIRS        lines \"<username> <code>\" (BENCH_PAIRS_CAL instead with BENCH_CAL=1)
  BENCH_OTP_PROFILE  the password profile's id
  BENCH_OTP_BEARER   an implicit client token";

/// Parses a duration in wrk's syntax: a whole number with an optional unit, `ms`, `s`, `m`
/// or `h` (none: seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!("not a duration: {s:?} (10s, 1m, 500ms)"));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (10s, 1m, 500ms)"))?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(format!("unknown unit in {s:?} (ms, s, m, h)")),
    }
    .ok_or_else(|| format!("duration too long: {s:?}"))?;
    Ok(Duration::from_millis(ms))
}

/// Splits `http://host:port/path` into `host:port`; only plain `http` is spoken.
pub fn parse_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs are supported: {url:?}"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("no host in {url:?}"));
    }
    // An IPv6 literal keeps its brackets; a port is required after the last ':'.
    let port_ok = authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if port_ok {
        Ok(authority.to_owned())
    } else {
        Ok(format!("{authority}:80"))
    }
}

/// Parses the arguments after the program's name.
pub fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut threads = 2usize;
    let mut connections = 10usize;
    let mut duration = Duration::from_secs(10);
    let mut timeout = Duration::from_secs(2);
    let mut multi = false;
    let mut exchange = false;
    let mut url = None;
    while let Some(arg) = argv.next() {
        // `-t2`, `-t 2`, `--threads 2` and `--threads=2` all work, as in wrk.
        let (flag, attached) = if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some((f, v)) => (format!("--{f}"), Some(v.to_owned())),
                None => (arg.clone(), None),
            }
        } else if arg.len() > 2 && arg.starts_with('-') && arg.is_char_boundary(2) {
            (arg[..2].to_owned(), Some(arg[2..].to_owned()))
        } else {
            (arg.clone(), None)
        };
        let mut value = |name: &str| -> Result<String, String> {
            match attached.clone() {
                Some(v) => Ok(v),
                None => argv.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        let number = |name: &str, v: String| -> Result<usize, String> {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("{name} must be a positive integer: {v:?}"))
        };
        match flag.as_str() {
            "-t" | "--threads" => threads = number("threads", value("threads")?)?,
            "-c" | "--connections" => connections = number("connections", value("connections")?)?,
            "-d" | "--duration" => duration = parse_duration(&value("duration")?)?,
            "-T" | "--timeout" => timeout = parse_duration(&value("timeout")?)?,
            "-L" | "--latency" => {}
            "--exchange" => exchange = true,
            "--runtime" => {
                multi = match value("runtime")?.as_str() {
                    "current" => false,
                    "multi" => true,
                    other => return Err(format!("--runtime is current or multi: {other:?}")),
                }
            }
            "-h" | "--help" => return Err(String::new()),
            f if f.starts_with('-') => return Err(format!("unknown option {f}")),
            _ => {
                if url.replace(arg).is_some() {
                    return Err("one URL only".to_owned());
                }
            }
        }
    }
    let url = url.ok_or_else(|| "no URL".to_owned())?;
    if connections < threads {
        return Err(format!(
            "connections ({connections}) must be at least threads ({threads})"
        ));
    }
    if duration.is_zero() || timeout.is_zero() {
        return Err("the duration and the timeout must not be zero".to_owned());
    }
    let authority = parse_url(&url)?;
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to no address"))?;
    Ok(Args {
        threads,
        connections,
        duration,
        timeout,
        url,
        authority,
        addr,
        multi,
        exchange,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn durations_in_wrk_syntax() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080"),
            Ok("127.0.0.1:8080".to_owned())
        );
        assert_eq!(
            parse_url("http://127.0.0.1:8080/x/y"),
            Ok("127.0.0.1:8080".to_owned())
        );
        assert_eq!(parse_url("http://localhost"), Ok("localhost:80".to_owned()));
        assert_eq!(parse_url("http://[::1]:81/"), Ok("[::1]:81".to_owned()));
        assert!(parse_url("https://127.0.0.1:1").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn command_lines_as_run_sh_writes_them() {
        let a = args("-t2 -c64 -d10s --timeout 10s --latency http://127.0.0.1:9/");
        let a = match a {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        assert_eq!((a.threads, a.connections), (2, 64));
        assert_eq!(a.duration, Duration::from_secs(10));
        assert_eq!(a.timeout, Duration::from_secs(10));
        assert_eq!(a.authority, "127.0.0.1:9");
        assert!(!a.multi);
        let b = match args("--threads=1 -c 1 -d 500ms --runtime multi http://127.0.0.1:9") {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
        assert_eq!((b.threads, b.connections, b.multi), (1, 1, true));
        assert_eq!(b.duration, Duration::from_millis(500));
        assert!(args("-t4 -c2 http://127.0.0.1:9").is_err());
        assert!(args("-t0 -c2 http://127.0.0.1:9").is_err());
        assert!(args("-c2").is_err());
        assert!(args("-x http://127.0.0.1:9").is_err());
        assert!(args("http://127.0.0.1:9 http://127.0.0.1:8").is_err());
    }
}
