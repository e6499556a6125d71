//! `--exchange`: phase (f), the passwordless exchange (`POST /v2/account-members/tokens`),
//! as bench/lua/exchange.lua drives it with wrk, natively. Each (username, code) pair is sent
//! once (a code is single use): connection i takes pairs i, i + C, i + 2C, … of the list, one
//! request in flight, and stops when its share is used up. A 201 is a success, anything else a
//! failure, which makes the run INVALID (bench.py). The run's duration is from the first
//! request sent to the last answer, as exchange.lua measures it.
//!
//! wrk with a `response()` callback in Lua builds a table of every answer's headers: about
//! 21 µs of client CPU per exchange on this box, against 7–10 for wrk on the other phases and
//! for this client.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant};

use crate::conn::{exchange, Outcome, BUF};
use crate::hist::Histogram;
use crate::http::json_escape;

/// Where the exchange's inputs come from (exchange.lua's environment).
pub struct Setup {
    /// `BENCH_PAIRS` (or `BENCH_PAIRS_CAL` with `BENCH_CAL=1`): lines `<username> <code>`.
    pub pairs: Vec<(String, String)>,
    /// `BENCH_OTP_PROFILE`: the password profile's id.
    pub profile: String,
    /// `BENCH_OTP_BEARER`: an implicit client token.
    pub bearer: String,
}

/// Reads the environment exchange.lua reads.
pub fn load() -> Result<Setup, String> {
    let var = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set"));
    let file = if std::env::var("BENCH_CAL").as_deref() == Ok("1") {
        var("BENCH_PAIRS_CAL")?
    } else {
        var("BENCH_PAIRS")?
    };
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{file}: {e}"))?;
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match line.split_once(' ') {
            Some((u, c)) if !u.is_empty() && !c.is_empty() && !c.contains(' ') => {
                pairs.push((u.to_owned(), c.to_owned()));
            }
            _ => return Err(format!("{file}:{}: not \"<username> <code>\"", n + 1)),
        }
    }
    if pairs.is_empty() {
        return Err(format!("{file}: no pairs"));
    }
    Ok(Setup {
        pairs,
        profile: var("BENCH_OTP_PROFILE")?,
        bearer: var("BENCH_OTP_BEARER")?,
    })
}

/// The request of one pair, as exchange.lua formats it.
pub fn request(authority: &str, setup: &Setup, username: &str, code: &str) -> Vec<u8> {
    let body = format!(
        "{{\"data\":{{\"type\":\"account_management_authentication_token\",\
         \"authentication_mechanism\":\"passwordless\",\"password_profile_id\":\"{}\",\
         \"username\":\"{}\",\"one_time_password_token\":\"{}\"}}}}",
        json_escape(&setup.profile),
        json_escape(username),
        json_escape(code)
    );
    format!(
        "POST /v2/account-members/tokens HTTP/1.1\r\nHost: {authority}\r\n\
         Content-Type: application/json\r\nAuthorization: Bearer {}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        setup.bearer,
        body.len()
    )
    .into_bytes()
}

/// Connection `i` of `connections`: its share of `all` (pairs i, i + C, …).
pub fn share<T: Clone>(all: &[T], i: usize, connections: usize) -> Vec<T> {
    all.iter()
        .skip(i)
        .step_by(connections.max(1))
        .cloned()
        .collect()
}

/// What the connections counted.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Latency of the answers, µs.
    pub latency: Histogram,
    /// Answered 201.
    pub ok: u64,
    /// Answered otherwise, or lost to a socket error or a timeout (not sent again: its code
    /// may have been used).
    pub bad: u64,
    /// Pairs in the shares.
    pub pairs: u64,
    /// The statuses of the first failures, `status ` each (exchange.lua's `bad_status`).
    pub bad_status: String,
    /// Bytes of the answers.
    pub bytes: u64,
    /// Answers with a status above 399.
    pub status_errors: u64,
    /// Connections refused, reads and writes that failed.
    pub socket_errors: u64,
    /// Requests unanswered after the timeout.
    pub timeouts: u64,
    /// The first request sent and the last answer read, over every connection.
    pub first: Option<Instant>,
    /// See `first`.
    pub last: Option<Instant>,
}

impl Tally {
    /// Adds another's counts to these.
    pub fn merge(&mut self, o: &Tally) {
        self.latency.merge(&o.latency);
        self.ok += o.ok;
        self.bad += o.bad;
        self.pairs += o.pairs;
        if self.bad_status.len() < 200 {
            self.bad_status.push_str(&o.bad_status);
        }
        self.bytes += o.bytes;
        self.status_errors += o.status_errors;
        self.socket_errors += o.socket_errors;
        self.timeouts += o.timeouts;
        self.first = match (self.first, o.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last = match (self.last, o.last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// From the first request to the last answer (zero if nothing was answered).
    pub fn span(&self) -> Duration {
        match (self.first, self.last) {
            (Some(f), Some(l)) => l.saturating_duration_since(f),
            _ => Duration::ZERO,
        }
    }

    fn failed(&mut self, what: &str) {
        self.bad += 1;
        if self.bad_status.len() < 200 {
            self.bad_status.push_str(what);
            self.bad_status.push(' ');
        }
    }
}

/// Sends each of `reqs` once, in order, on one connection (reopened after an error), until
/// they are used up or `deadline`.
pub async fn run(
    addr: SocketAddr,
    reqs: Vec<Vec<u8>>,
    deadline: Instant,
    timeout: Duration,
) -> Tally {
    let mut t = Tally {
        pairs: reqs.len() as u64,
        ..Tally::default()
    };
    let mut buf = vec![0u8; BUF];
    let timer = sleep_until(deadline.min(Instant::now() + timeout));
    tokio::pin!(timer);
    let mut stream: Option<TcpStream> = None;
    for req in &reqs {
        if Instant::now() >= deadline {
            break;
        }
        let s = match stream.as_mut() {
            Some(s) => s,
            None => {
                let now = Instant::now();
                match tokio::time::timeout_at(deadline.min(now + timeout), TcpStream::connect(addr))
                    .await
                {
                    Ok(Ok(s)) => {
                        let _ = s.set_nodelay(true);
                        stream.insert(s)
                    }
                    _ => {
                        // This pair was not sent: it fails, and the next one tries again.
                        t.socket_errors += 1;
                        t.failed("connect");
                        sleep_until(deadline.min(Instant::now() + Duration::from_millis(10))).await;
                        continue;
                    }
                }
            }
        };
        let sent = Instant::now();
        t.first.get_or_insert(sent);
        match exchange(s, req, &mut buf, timer.as_mut(), sent, deadline, timeout).await {
            Outcome::Answer(resp, n) => {
                let done = Instant::now();
                t.last = Some(done);
                t.latency.record(
                    u64::try_from(done.duration_since(sent).as_micros()).unwrap_or(u64::MAX),
                );
                t.bytes += n as u64;
                if resp.status > 399 {
                    t.status_errors += 1;
                }
                if resp.status == 201 {
                    t.ok += 1;
                } else {
                    t.failed(&resp.status.to_string());
                }
                if resp.close {
                    stream = None;
                }
            }
            // The pair in flight is left uncounted: the run is INVALID (not all answered).
            Outcome::Deadline => break,
            Outcome::Timeout => {
                t.timeouts += 1;
                t.failed("timeout");
                stream = None;
            }
            Outcome::WriteError | Outcome::ReadError => {
                t.socket_errors += 1;
                t.failed("socket");
                stream = None;
            }
            Outcome::Fatal(why) => {
                eprintln!("authgate-flowload: unexpected answer from {addr}: {why}");
                std::process::exit(2);
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn setup() -> Setup {
        Setup {
            pairs: Vec::new(),
            profile: "prof-1".to_owned(),
            bearer: "tok".to_owned(),
        }
    }

    #[test]
    fn the_request_is_exchange_luas() {
        let r = String::from_utf8(request("127.0.0.1:9", &setup(), "a\"b@x", "ABC123")).unwrap();
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("POST /v2/account-members/tokens HTTP/1.1\r\nHost: 127.0.0.1:9\r\n")
        );
        assert!(head.contains("\r\nAuthorization: Bearer tok\r\n"));
        assert!(head.ends_with(&format!("Content-Length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["data"]["username"], "a\"b@x");
        assert_eq!(v["data"]["one_time_password_token"], "ABC123");
        assert_eq!(v["data"]["password_profile_id"], "prof-1");
        assert_eq!(v["data"]["authentication_mechanism"], "passwordless");
        assert_eq!(v["data"]["type"], "account_management_authentication_token");
    }

    #[test]
    fn the_shares_take_every_pair_once() {
        let all: Vec<u32> = (0..10).collect();
        let shares: Vec<Vec<u32>> = (0..3).map(|i| share(&all, i, 3)).collect();
        assert_eq!(shares, [vec![0, 3, 6, 9], vec![1, 4, 7], vec![2, 5, 8]]);
        assert_eq!(share(&all, 5, 64), [5]);
        assert!(share(&all, 20, 64).is_empty());
    }

    #[test]
    fn tallies_merge_with_the_earliest_start_and_the_latest_end() {
        let t0 = Instant::now();
        let mut a = Tally {
            ok: 2,
            pairs: 2,
            first: Some(t0 + Duration::from_millis(5)),
            last: Some(t0 + Duration::from_millis(50)),
            ..Tally::default()
        };
        let b = Tally {
            ok: 1,
            bad: 1,
            pairs: 2,
            bad_status: "401 ".to_owned(),
            first: Some(t0),
            last: Some(t0 + Duration::from_millis(40)),
            ..Tally::default()
        };
        a.merge(&b);
        assert_eq!((a.ok, a.bad, a.pairs), (3, 1, 4));
        assert_eq!(a.span(), Duration::from_millis(50));
        assert_eq!(a.bad_status, "401 ");
        assert_eq!(Tally::default().span(), Duration::ZERO);
    }
}
