//! One connection's loop: its own user, one request in flight, key request then login, until
//! the run's deadline.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant, Sleep};

use crate::hist::Histogram;
use crate::http::{json_key, json_result_true, parse_response, Requests, Response, MAX_BODY};

/// What a connection (or a thread, or the run) counted.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Latency of the key requests answered, µs.
    pub key: Histogram,
    /// Latency of the logins answered, µs.
    pub login: Histogram,
    /// Bytes of the answers counted.
    pub bytes: u64,
    /// Key requests answered 200 with a key.
    pub key_ok: u64,
    /// Key requests answered otherwise.
    pub key_bad: u64,
    /// Logins answered 200 with `"result":true`.
    pub login_ok: u64,
    /// Logins answered otherwise.
    pub login_bad: u64,
    /// The first failed logins, `status:body | ` (as flow.lua keeps them).
    pub bad_logins: String,
    /// Answers with a status above 399 (wrk's "Non-2xx or 3xx responses").
    pub status_errors: u64,
    /// Connections refused or failed.
    pub connect_errors: u64,
    /// Reads that failed, or the server closing in the middle of an answer.
    pub read_errors: u64,
    /// Writes that failed.
    pub write_errors: u64,
    /// Requests unanswered after the timeout.
    pub timeouts: u64,
}

impl Stats {
    /// HTTP requests answered.
    pub fn requests(&self) -> u64 {
        self.key.count() + self.login.count()
    }

    /// Adds another's counts to these.
    pub fn merge(&mut self, o: &Stats) {
        self.key.merge(&o.key);
        self.login.merge(&o.login);
        self.bytes += o.bytes;
        self.key_ok += o.key_ok;
        self.key_bad += o.key_bad;
        self.login_ok += o.login_ok;
        self.login_bad += o.login_bad;
        if self.bad_logins.len() < 400 {
            self.bad_logins.push_str(&o.bad_logins);
        }
        self.status_errors += o.status_errors;
        self.connect_errors += o.connect_errors;
        self.read_errors += o.read_errors;
        self.write_errors += o.write_errors;
        self.timeouts += o.timeouts;
    }
}

/// How one request ended.
pub(crate) enum Outcome {
    /// Answered: the response and the bytes read for it.
    Answer(Response, usize),
    /// The run is over (the request, if any, is abandoned uncounted).
    Deadline,
    /// Unanswered after the timeout.
    Timeout,
    /// The write failed.
    WriteError,
    /// The read failed, or the server closed the connection.
    ReadError,
    /// The answer is not one this client can frame: the run stops.
    Fatal(String),
}

/// The read buffer's first size; an answer of the gateway's is a few hundred bytes.
pub(crate) const BUF: usize = 8 * 1024;

/// Sends `req` and reads its answer into `buf`. `timer` is the connection's one timer, reset
/// lazily: it is set to the earlier of the deadline and a request's timeout, and when it fires
/// early (the request it was set for was answered) it is moved to the current request's.
pub(crate) async fn exchange(
    stream: &mut TcpStream,
    req: &[u8],
    buf: &mut Vec<u8>,
    mut timer: Pin<&mut Sleep>,
    sent: Instant,
    deadline: Instant,
    timeout: Duration,
) -> Outcome {
    let io = async {
        if stream.write_all(req).await.is_err() {
            return Outcome::WriteError;
        }
        let mut filled = 0;
        loop {
            if filled == buf.len() {
                if buf.len() > MAX_BODY + BUF {
                    return Outcome::Fatal(format!("an answer longer than {} bytes", buf.len()));
                }
                buf.resize(buf.len() * 2, 0);
            }
            let Some(spare) = buf.get_mut(filled..) else {
                return Outcome::Fatal("read buffer".to_owned());
            };
            match stream.read(spare).await {
                Ok(0) | Err(_) => return Outcome::ReadError,
                Ok(n) => filled += n,
            }
            let got = buf.get(..filled).unwrap_or_default();
            match parse_response(got) {
                Ok(None) => {}
                Ok(Some(r)) if r.total_len() == filled => return Outcome::Answer(r, filled),
                Ok(Some(r)) => {
                    return Outcome::Fatal(format!(
                        "{} bytes after a {}-byte answer, with one request in flight",
                        filled - r.total_len(),
                        r.total_len()
                    ))
                }
                Err(e) => return Outcome::Fatal(e),
            }
        }
    };
    tokio::pin!(io);
    loop {
        tokio::select! {
            biased;
            out = &mut io => return out,
            () = timer.as_mut() => {
                let now = Instant::now();
                if now >= deadline {
                    return Outcome::Deadline;
                }
                let due = sent + timeout;
                if now >= due {
                    timer.as_mut().reset(deadline.min(now + timeout));
                    return Outcome::Timeout;
                }
                timer.as_mut().reset(deadline.min(due));
            }
        }
    }
}

/// Runs one connection until `deadline`: key request, login with MD5(key "|" HA1), again.
/// On a socket error or a timeout it reconnects and starts over with a new key request (a
/// key is never sent twice). An answer it cannot frame ends the process (exit status 2).
pub async fn run(
    addr: SocketAddr,
    mut reqs: Requests,
    deadline: Instant,
    timeout: Duration,
) -> Stats {
    let mut st = Stats::default();
    let mut buf = vec![0u8; BUF];
    let timer = sleep_until(deadline.min(Instant::now() + timeout));
    tokio::pin!(timer);
    // A key answered and not yet sent in a login: kept across a reconnect only when the
    // server closed cleanly after answering (`Connection: close`), so never sent twice.
    let mut have_key = false;
    'connect: loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let mut stream =
            match tokio::time::timeout_at(deadline.min(now + timeout), TcpStream::connect(addr))
                .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(_)) | Err(_) => {
                    if Instant::now() >= deadline {
                        break;
                    }
                    st.connect_errors += 1;
                    // Not a busy loop if the gateway is gone.
                    sleep_until(deadline.min(Instant::now() + Duration::from_millis(10))).await;
                    continue;
                }
            };
        // One write per request; no small segment waits for an ACK anyway, but say so.
        let _ = stream.set_nodelay(true);
        loop {
            let is_login = have_key;
            have_key = false;
            let req = if is_login {
                reqs.login_request()
            } else {
                reqs.key_request()
            };
            let sent = Instant::now();
            let outcome = exchange(
                &mut stream,
                req,
                &mut buf,
                timer.as_mut(),
                sent,
                deadline,
                timeout,
            )
            .await;
            let (resp, n) = match outcome {
                Outcome::Answer(resp, n) => (resp, n),
                Outcome::Deadline => break 'connect,
                // The flow starts over with a new key request (have_key is false here).
                Outcome::Timeout => {
                    st.timeouts += 1;
                    continue 'connect;
                }
                Outcome::WriteError => {
                    st.write_errors += 1;
                    continue 'connect;
                }
                Outcome::ReadError => {
                    st.read_errors += 1;
                    continue 'connect;
                }
                Outcome::Fatal(why) => {
                    eprintln!("authgate-flowload: unexpected answer from {addr}: {why}");
                    std::process::exit(2);
                }
            };
            let done = Instant::now();
            if done > deadline {
                break 'connect;
            }
            let us = u64::try_from(done.duration_since(sent).as_micros()).unwrap_or(u64::MAX);
            st.bytes += n as u64;
            if resp.status > 399 {
                st.status_errors += 1;
            }
            let body = resp.body(&buf);
            if is_login {
                st.login.record(us);
                if resp.status == 200 && json_result_true(body) {
                    st.login_ok += 1;
                } else {
                    st.login_bad += 1;
                    if st.bad_logins.len() < 200 {
                        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]);
                        st.bad_logins
                            .push_str(&format!("{}:{shown} | ", resp.status));
                    }
                }
            } else {
                st.key.record(us);
                match json_key(body).filter(|_| resp.status == 200) {
                    Some(key) => {
                        reqs.set_key(key);
                        have_key = true;
                        st.key_ok += 1;
                    }
                    None => st.key_bad += 1,
                }
            }
            if resp.close {
                continue 'connect;
            }
        }
    }
    st
}
