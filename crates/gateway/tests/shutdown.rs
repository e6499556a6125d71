//! Graceful shutdown of the `authgate` binary itself: a SIGTERM in the middle of a
//! burst of code requests loses no delivery.
//!
//! The binary runs on a private Redis with a shop whose codes go to a webhook. The
//! burst's clients request codes, one user each (a new request for the same user
//! would replace the code, and the replaced one is rightly never sent), until the
//! gateway stops answering. Then: the process must exit 0 within the grace period
//! (plus a margin), every request it answered must have been answered whole, and a
//! second gateway on the same Redis must bring every code answered 202 to the
//! webhook.
//!
//! Strictly: while the first gateway runs, the webhook refuses every delivery
//! (503, a retry) after [`WEBHOOK_DELAY`], longer than the grace period, so that
//! deliveries are under way when the signal comes and none of them counts. Every
//! accepted code must then reach the webhook through the second gateway alone:
//! from the outbox's stream (never read), from the first worker's unacknowledged
//! entries (cut off by the shutdown, claimed after `claim_after`), or from the
//! retry schedule (refused before the shutdown).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::capture;

use std::collections::{BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authgate_tests::app::{client_for, test_config, Shop, CLIENT_SECRET};
use authgate_tests::spawn_app_with;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{handler, post, EndpointExt, Route, Server};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

/// Users of the shop, one code request each at most.
const USERS: usize = 300;
/// Clients of the burst, each requesting codes one after the other.
const CLIENTS: usize = 8;
/// The SIGTERM comes once this many requests have been answered and the webhook
/// has a delivery under way.
const ANSWERED_BEFORE_SIGTERM: usize = 30;

/// What the webhook saw.
struct Hook {
    /// How long it takes to refuse a delivery of the first gateway.
    delay: Duration,
    /// Set once the first gateway has exited: from then on deliveries are taken.
    taking: std::sync::atomic::AtomicBool,
    /// Deliveries that arrived while the first gateway ran.
    arrived: std::sync::atomic::AtomicUsize,
    /// Deliveries refused while the first gateway ran.
    refused: std::sync::atomic::AtomicUsize,
    /// Usernames delivered (and taken), as many times as each was.
    delivered: Mutex<HashMap<String, usize>>,
}

#[handler]
async fn receive(body: Vec<u8>, hook: Data<&Arc<Hook>>) -> StatusCode {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let username = body["payload"]["user_authentication_password_profile_info"]["username"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if !hook.taking.load(std::sync::atomic::Ordering::SeqCst) {
        hook.arrived
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(hook.delay).await;
        hook.refused
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    *hook.delivered.lock().unwrap().entry(username).or_default() += 1;
    StatusCode::OK
}

/// The webhook, on a free port.
async fn webhook(delay: Duration) -> (String, Arc<Hook>, tokio::task::JoinHandle<()>) {
    let shared = Arc::new(Hook {
        delay,
        taking: Default::default(),
        arrived: Default::default(),
        refused: Default::default(),
        delivered: Default::default(),
    });
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    let app = Route::new().at("/hook", post(receive)).data(shared.clone());
    let task = tokio::spawn(async move {
        let _ = Server::new_with_acceptor(acceptor).run(app).await;
    });
    (format!("http://127.0.0.1:{port}/hook"), shared, task)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child if the test ends before it has exited.
struct Reaper(std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How one code request went.
#[derive(Debug)]
enum Outcome {
    /// Answered whole, with this status.
    Answered(StatusCode),
    /// Not answered: refused, or closed before an answer began.
    NotAnswered(#[allow(dead_code)] String),
    /// An answer began and broke off: what a graceful shutdown must never do.
    Broken(String),
}

async fn request_code(http: &reqwest::Client, base: &str, s: &Shop, username: &str) -> Outcome {
    let url = format!(
        "{base}/v2/authentication-realms/{}/password-profiles/{}/one-time-password-token-request",
        s.realm, s.profile
    );
    let sent = http
        .post(url)
        .bearer_auth(&s.implicit)
        .json(&json!({"data": {"type": "one_time_password_token_request",
            "username": username, "purpose": "passwordless_authentication"}}))
        .send()
        .await;
    let resp = match sent {
        Ok(resp) => resp,
        Err(e) => return Outcome::NotAnswered(format!("{e:?}")),
    };
    let status = resp.status();
    match resp.bytes().await {
        Ok(_) => Outcome::Answered(status),
        Err(e) => Outcome::Broken(format!("{status}: {e:?}")),
    }
}

fn email(i: usize) -> String {
    format!("member{i}@shop.example")
}

/// How the first gateway's shutdown went.
struct Report {
    /// From the end of the burst (the signal, give or take a request) to the exit.
    exited_after: Duration,
    /// Deliveries the webhook refused while the first gateway ran.
    refused: usize,
    /// The first gateway's log.
    log: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_during_a_burst_loses_no_delivery_when_deliveries_outlast_the_grace_period() {
    let grace = Duration::from_secs(2);
    let Some(report) = sigterm_during_a_burst(grace, Duration::from_secs(3)).await else {
        return;
    };
    // The deliveries under way were cut off at the deadline, and taken over.
    assert!(report.exited_after < grace + Duration::from_secs(5));
    assert!(
        report
            .log
            .contains("the delivery worker did not finish in time"),
        "{}",
        report.log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_during_a_burst_loses_no_delivery_when_the_worker_finishes_in_time() {
    let grace = Duration::from_secs(10);
    let Some(report) = sigterm_during_a_burst(grace, Duration::from_millis(500)).await else {
        return;
    };
    // The worker finished the deliveries under way (refused: retries scheduled),
    // and the process did not wait for the deadline.
    assert!(report.refused > 0, "{}", report.log);
    assert!(
        report.exited_after < Duration::from_secs(6),
        "{:?}",
        report.exited_after
    );
    assert!(
        !report.log.contains("did not finish in time"),
        "{}",
        report.log
    );
}

/// The scenario of the module's description, with the binary's grace period
/// `grace` and a webhook taking `webhook_delay` to refuse the first gateway's
/// deliveries; `None` without Redis.
async fn sigterm_during_a_burst(grace: Duration, webhook_delay: Duration) -> Option<Report> {
    let redis = authgate_tests::TestRedis::start().await?;
    let (hook_url, hook, hook_task) = webhook(webhook_delay).await;
    let config = test_config(Some(&redis));
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("serve")
        .env("AUTHGATE_BIND", format!("127.0.0.1:{port}"))
        .env("AUTHGATE_REDIS_URL", &redis.url)
        .env("AUTHGATE_REDIS_PREFIX", &redis.prefix)
        .env("AUTHGATE_CLIENT_SECRET", CLIENT_SECRET)
        .env(
            "AUTHGATE_TOKEN_SECRET",
            config.token_secret.as_ref().unwrap().expose_secret(),
        )
        .env("AUTHGATE_LIMIT_PER_IP", "off")
        .env("AUTHGATE_LIMIT_REQUESTS_PER_USER", "off")
        .env("AUTHGATE_SHUTDOWN_GRACE_SECS", grace.as_secs().to_string())
        .env("AUTHGATE_LOG", "info,authgate_delivery=debug")
        .env_remove("AUTHGATE_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reaper(child);
    let log = capture(&mut child.0);
    let gw = client_for(format!("127.0.0.1:{port}").parse().unwrap());
    let started = Instant::now();
    while gw
        .http
        .get(gw.url("/health/ready"))
        .send()
        .await
        .map(|r| r.status())
        .ok()
        != Some(StatusCode::OK)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the gateway did not get ready: {}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The shop, its webhook, and its members (usernames only: codes need no password).
    let shop = gw
        .shop(
            "Member 0",
            &email(0),
            json!({"type": "integration", "name": "codes", "integration_type": "webhook",
                "enabled": true, "observes": ["one-time-password-token-request.created"],
                "configuration": {"url": hook_url, "secret_key": "whsec-shutdown"}}),
        )
        .await;
    let base = format!("/v2/authentication-realms/{}", shop.realm);
    for i in 1..USERS {
        let user = gw
            .create(
                &shop.admin,
                &format!("{base}/user-authentication-info"),
                json!({"type": "user_authentication_info", "name": format!("Member {i}"), "email": email(i)}),
            )
            .await;
        gw.create(
            &shop.admin,
            &format!(
                "{base}/user-authentication-info/{user}/user-authentication-password-profile-info"
            ),
            json!({"type": "user_authentication_password_profile_info",
                "password_profile_id": shop.profile, "username": email(i)}),
        )
        .await;
    }

    // The burst: each client takes the next user, until the gateway stops answering.
    let next_user = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (next_user, answered) = (next_user.clone(), answered.clone());
        let (shop, base) = (shop.clone(), gw.url(""));
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let mut outcomes = Vec::new();
            loop {
                let i = next_user.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= USERS {
                    return outcomes;
                }
                let outcome = request_code(&http, &base, &shop, &email(i)).await;
                let stop = !matches!(outcome, Outcome::Answered(_));
                if !stop {
                    answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                outcomes.push((i, outcome));
                if stop {
                    return outcomes;
                }
            }
        }));
    }
    // The signal, mid-burst, with a delivery under way.
    let waiting = Instant::now();
    while answered.load(std::sync::atomic::Ordering::SeqCst) < ANSWERED_BEFORE_SIGTERM
        || hook.arrived.load(std::sync::atomic::Ordering::SeqCst) == 0
    {
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "no delivery under way: {}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut outcomes = Vec::new();
    for client in clients {
        outcomes.extend(
            tokio::time::timeout(Duration::from_secs(60), client)
                .await
                .expect("the burst ends")
                .unwrap(),
        );
    }
    let signalled_at = Instant::now();

    // The process exits 0 within the grace period and a margin.
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled_at.elapsed() < grace + Duration::from_secs(15),
            "the gateway has not exited: {}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = log.lock().unwrap().clone();
    assert_eq!(status.code(), Some(0), "{log}");
    let exited_after = signalled_at.elapsed();
    eprintln!("exited {exited_after:?} after the burst ended");
    if std::env::var_os("AUTHGATE_TEST_SHOW_LOG").is_some() {
        eprintln!("{log}");
    }

    let mut accepted = BTreeSet::new();
    let mut not_answered = 0;
    for (i, outcome) in &outcomes {
        match outcome {
            Outcome::Answered(StatusCode::ACCEPTED) => {
                accepted.insert(email(*i));
            }
            Outcome::Answered(status) => panic!("{}: answered {status}\n{log}", email(*i)),
            Outcome::NotAnswered(_) => not_answered += 1,
            Outcome::Broken(e) => panic!("{}: an answer broke off: {e}\n{log}", email(*i)),
        }
    }
    assert!(accepted.len() >= ANSWERED_BEFORE_SIGTERM);
    // The signal came mid-burst: the shutdown cut it short.
    assert!(not_answered > 0, "the burst ended before the signal");
    hook.taking.store(true, std::sync::atomic::Ordering::SeqCst);
    let refused = hook.refused.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!(
        "{} accepted, {not_answered} not answered; the first gateway's deliveries refused \
         before it exited: {refused}",
        accepted.len(),
    );

    // A second gateway on the same Redis takes over what the first left.
    let second = spawn_app_with(Some(&redis), |c| {
        c.delivery_claim_after = Duration::from_secs(1);
        c.webhook_retry_base = Duration::from_millis(100);
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let missing: Vec<String> = {
            let got = hook.delivered.lock().unwrap();
            accepted
                .iter()
                .filter(|u| !got.contains_key(*u))
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never delivered: {missing:?}\nfirst gateway's log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = hook.delivered.lock().unwrap().clone();
    eprintln!(
        "{} delivered by the second gateway ({} more than once)",
        got.len(),
        got.values().filter(|n| **n > 1).count()
    );
    // Nothing was delivered that was not accepted.
    for user in got.keys() {
        assert!(
            accepted.contains(user),
            "{user} was delivered but not accepted"
        );
    }
    drop(second);
    hook_task.abort();
    Some(Report {
        exited_after,
        refused,
        log,
    })
}
