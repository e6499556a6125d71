//! The `authgate` binary's one-shot commands.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::capture;

use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn ha1_prints_the_digest_alone_on_one_line() {
    // md5 -s 'myuser:voximplant.com:mypass123'
    let (ok, out, _) = run(&["ha1", "--user", "myuser", "--password", "mypass123"]);
    assert!(ok);
    assert_eq!(out, "ed0b761222371ac9eab34bbfb26e474b\n");
    let (_, full, _) = run(&[
        "ha1",
        "--user",
        "myuser@myapp.myaccount.voximplant.com",
        "--password",
        "mypass123",
    ]);
    assert_eq!(full, out, "a full username is reduced to the bare user");
}

#[test]
fn hash_prints_what_a_backend_answers_a_key_with() {
    // md5 of 'f3a5c3f6b0e1c6a1c2d3e4f5a6b7c8d9|' + md5('myuser:voximplant.com:mypass')
    let (ok, out, _) = run(&[
        "hash",
        "--key",
        "f3a5c3f6b0e1c6a1c2d3e4f5a6b7c8d9",
        "--user",
        "myuser",
        "--password",
        "mypass",
    ]);
    assert!(ok);
    assert_eq!(out, "1e359e51620d71540f35419668fd0ddd\n");
}

#[test]
fn a_malformed_setting_stops_serve_with_the_variable_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("serve")
        .env("AUTHGATE_LIMIT_PER_IP", "plenty")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("AUTHGATE_LIMIT_PER_IP"), "{err}");
}

#[tokio::test]
async fn the_demo_writes_code_emails_to_the_log() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["serve", "--demo"])
        .env("AUTHGATE_BIND", format!("127.0.0.1:{port}"))
        .env("AUTHGATE_CLIENT_SECRET", "demo-test-client-secret")
        .env_remove("AUTHGATE_REDIS_URL")
        .env_remove("AUTHGATE_SMTP_URL")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let log = capture(&mut child);
    let gw = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if http.get(format!("{gw}/health/ready")).send().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "the demo gateway started: {}", log.lock().unwrap());
    let token = |form: Vec<(&'static str, &'static str)>| {
        let req = http.post(format!("{gw}/oauth/access_token")).form(&form);
        async move {
            req.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let admin = token(vec![
        ("grant_type", "client_credentials"),
        ("client_id", "authgate"),
        ("client_secret", "demo-test-client-secret"),
    ])
    .await;
    let implicit = token(vec![("grant_type", "implicit"), ("client_id", "authgate")]).await;
    let settings: serde_json::Value = http
        .get(format!("{gw}/v2/settings/account-authentication"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let realm = settings["data"]["relationships"]["authentication_realm"]["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let profiles: serde_json::Value = http
        .get(format!(
            "{gw}/v2/authentication-realms/{realm}/password-profiles"
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let profile = profiles["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["enable_one_time_password_token"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let status = http
        .post(format!("{gw}/v2/authentication-realms/{realm}/password-profiles/{profile}/one-time-password-token-request"))
        .bearer_auth(&implicit)
        .json(&serde_json::json!({"data": {"type": "one_time_password_token_request", "username": "john.doe@banks.com", "purpose": "passwordless_authentication"}}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202);
    let mut seen = String::new();
    for _ in 0..100 {
        seen = log.lock().unwrap().clone();
        if seen.contains("Your code to sign in as john.doe@banks.com") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("email (log transport, not sent)"), "{seen}");
    assert!(
        seen.contains("Your code to sign in as john.doe@banks.com"),
        "{seen}"
    );
    // The demo's integration names no page: the link opens the gateway's own.
    assert!(
        seen.contains(&format!(
            "{gw}/ui/sign-in/confirm?profile={profile}&username=john.doe%40banks.com&token="
        )),
        "{seen}"
    );
}
