//! Email integrations, black box: a real SMTP server (aiosmtpd) receives the code,
//! the test reads the message back and logs in with it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use authgate_tests::app::{Shop, TestApp};
use authgate_tests::smtp::SmtpSink;
use authgate_tests::{redis_or_skip, spawn_app_with};
use mail_parser::{MessageParser, MimeHeaders};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

macro_rules! smtp_or_skip {
    () => {
        match SmtpSink::start() {
            Some(s) => s,
            None => return,
        }
    };
}

/// A shop whose member is `name` at `email` and whose codes go out by email, as
/// `configuration` says.
async fn shop(app: &TestApp, name: &str, email: &str, configuration: Value) -> Shop {
    app.shop(name, email,
        json!({"type": "integration", "name": "Code emails", "integration_type": "email", "configuration": configuration}))
        .await
}

/// Requests a code, which is always accepted.
async fn request(app: &TestApp, s: &Shop, username: &str, purpose: &str) {
    let resp = app.request_code(s, username, purpose).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
}

/// The message's subject, text part and HTML part.
fn read(raw: &[u8]) -> (String, String, String, mail_parser::Message<'_>) {
    let m = MessageParser::default().parse(raw).expect("a MIME message");
    let subject = m.subject().unwrap_or_default().to_owned();
    let text = m.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let html = m.body_html(0).map(|t| t.into_owned()).unwrap_or_default();
    (subject, text, html, m)
}

/// Decodes the entities an HTML escaper produces.
fn unescape(html: &str) -> String {
    html.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

async fn log_entries(app: &TestApp, s: &Shop) -> Vec<Value> {
    let (_, logs) = app.delivery_log(&s.admin, &s.integration).await;
    logs["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_passwordless_code_arrives_by_email_and_logs_in() {
    let redis = redis_or_skip!();
    let smtp = smtp_or_skip!();
    let app = spawn_app_with(Some(&redis), |c| {
        c.smtp_url = Some(secrecy::SecretString::from(smtp.url()));
        c.email_from = Some("Shop <no-reply@shop.test>".into());
    })
    .await;
    let s = shop(
        &app,
        "Jo <b>& Co</b>",
        "jo@banks.test",
        json!({"passwordless_url": "https://shop.test/sign-in", "reply_to": "help@shop.test"}),
    )
    .await;
    request(&app, &s, "jo@banks.test", "passwordless_authentication").await;
    let mail = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mail.len(), 1, "the SMTP server received the message");
    let (subject, text, html, m) = read(&mail[0]);
    assert!(
        m.content_type()
            .is_some_and(|c| c.ctype() == "multipart" && c.subtype() == Some("alternative")),
        "multipart/alternative"
    );
    assert_eq!(
        m.from().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("no-reply@shop.test")
    );
    assert_eq!(
        m.to().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("jo@banks.test")
    );
    assert_eq!(
        m.reply_to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("help@shop.test")
    );
    let code = subject.rsplit(' ').next().unwrap().to_owned();
    assert_eq!(code.len(), 6, "{subject}");
    assert!(text.contains(&code) && html.contains(&code));
    assert!(
        text.contains("10 minutes") && html.contains("10 minutes"),
        "the lifetime in minutes"
    );
    assert!(
        text.contains("did not") && html.contains("did not"),
        "what to do if you did not ask"
    );
    let link = format!("https://shop.test/sign-in?username=jo%40banks.test&token={code}");
    assert!(text.contains(&link), "{text}");
    assert!(
        unescape(&html).contains(&format!("href=\"{link}\"")),
        "{html}"
    );
    assert!(
        !html.contains("<b>"),
        "user values are escaped in HTML: {html}"
    );
    assert!(html.contains("Jo &lt;b&gt;&amp; Co&lt;"), "{html}");
    assert!(unescape(&html).contains("Jo <b>& Co</b>"));

    let (status, body) = app.exchange_code(&s, "jo@banks.test", &code).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let logs = log_entries(&app, &s).await;
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["succeeded"], true);
    assert_eq!(logs[0]["status_code"], 250);
}

#[tokio::test]
async fn a_reset_email_links_to_the_reset_page_and_the_code_resets_the_password() {
    let redis = redis_or_skip!();
    let smtp = smtp_or_skip!();
    let app = spawn_app_with(Some(&redis), |c| {
        c.smtp_url = Some(secrecy::SecretString::from(smtp.url()));
    })
    .await;
    let s = shop(&app, "Ann", "ann@banks.test", json!({"from": "Shop <shop@shop.test>", "reset_password_url": "https://shop.test/reset?src=mail"})).await;
    app.admin(&s.admin, Method::PUT, "/v2/settings/account-authentication",
        Some(json!({"data": {"type": "account_authentication_settings", "account_member_self_management": "update_only"}}))).await;
    request(&app, &s, "ann@banks.test", "reset_password").await;
    let mail = smtp.wait_for(1, Duration::from_secs(10)).await;
    let (subject, text, _, m) = read(&mail[0]);
    assert_eq!(
        m.from().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("shop@shop.test"),
        "the integration's sender wins"
    );
    assert!(subject.to_lowercase().contains("reset"), "{subject}");
    let code = subject.rsplit(' ').next().unwrap().to_owned();
    assert!(
        text.contains(&format!(
            "https://shop.test/reset?src=mail&username=ann%40banks.test&token={code}"
        )),
        "{text}"
    );
    let (status, body) = app.exchange_code(&s, "ann@banks.test", &code).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["data"][0]["token"].as_str().unwrap();
    let (status, _) = app
        .member_password(&s, &s.credential_path(), token, "new-password-2")
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .password_token(&s, "ann@banks.test", "new-password-2")
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn mail_waits_out_an_smtp_outage_and_nothing_is_lost() {
    let redis = redis_or_skip!();
    let mut smtp = smtp_or_skip!();
    let app = spawn_app_with(Some(&redis), |c| {
        c.smtp_url = Some(secrecy::SecretString::from(smtp.url()));
        c.email_from = Some("no-reply@shop.test".into());
        c.webhook_retry_base = Duration::from_millis(100);
    })
    .await;
    let s = shop(&app, "Bo", "bo@banks.test", json!({})).await;
    smtp.stop();
    request(&app, &s, "bo@banks.test", "passwordless_authentication").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let failed = log_entries(&app, &s).await;
    assert!(
        failed.len() >= 2 && failed.iter().all(|l| l["succeeded"] == false),
        "{failed:?}"
    );
    smtp.restart();
    let mail = smtp.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(mail.len(), 1, "delivered once the server is back");
    let (subject, ..) = read(&mail[0]);
    let code = subject.rsplit(' ').next().unwrap().to_owned();
    assert_eq!(
        app.exchange_code(&s, "bo@banks.test", &code).await.0,
        StatusCode::CREATED
    );
    let logs = log_entries(&app, &s).await;
    assert_eq!(logs[0]["succeeded"], true);
    assert!(logs[0]["attempt"].as_u64().unwrap() >= 3);
}

#[tokio::test]
async fn a_permanent_rejection_is_logged_and_not_retried() {
    let redis = redis_or_skip!();
    let smtp = smtp_or_skip!();
    let app = spawn_app_with(Some(&redis), |c| {
        c.smtp_url = Some(secrecy::SecretString::from(smtp.url()));
        c.email_from = Some("no-reply@shop.test".into());
        c.webhook_retry_base = Duration::from_millis(100);
    })
    .await;
    let s = shop(&app, "Rej", "reject-me@banks.test", json!({})).await;
    request(&app, &s, "reject-me@banks.test", "reset_password").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let logs = log_entries(&app, &s).await;
    assert_eq!(logs.len(), 1, "one try, no retries: {logs:?}");
    assert_eq!(logs[0]["succeeded"], false);
    assert_eq!(logs[0]["status_code"], 550);
    assert!(
        logs[0]["error_detail"].as_str().unwrap().contains("SMTP"),
        "{:?}",
        logs[0]
    );
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn templates_can_be_overridden_per_locale_from_a_directory() {
    let redis = redis_or_skip!();
    let smtp = smtp_or_skip!();
    let dir = std::env::temp_dir().join(format!(
        "authgate-templates-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(dir.join("fr")).unwrap();
    std::fs::write(
        dir.join("passwordless_authentication.subject"),
        "Shop code {{ code }}",
    )
    .unwrap();
    std::fs::write(
        dir.join("fr/passwordless_authentication.subject"),
        "Votre code {{ code }}",
    )
    .unwrap();
    std::fs::write(
        dir.join("fr/passwordless_authentication.txt"),
        "Bonjour {{ name }}, votre code : {{ code }} ({{ minutes }} minutes)",
    )
    .unwrap();
    let templates = dir.clone();
    let app = spawn_app_with(Some(&redis), |c| {
        c.smtp_url = Some(secrecy::SecretString::from(smtp.url()));
        c.email_from = Some("no-reply@shop.test".into());
        c.email_templates = Some(templates);
    })
    .await;
    let s = shop(&app, "Zoé", "zoe@banks.test", json!({})).await;
    request(&app, &s, "zoe@banks.test", "passwordless_authentication").await;
    let mail = smtp.wait_for(1, Duration::from_secs(10)).await;
    let (subject, text, html, _) = read(&mail[0]);
    assert!(
        subject.starts_with("Shop code "),
        "the override took effect: {subject}"
    );
    assert!(
        html.contains("expires in 10 minutes"),
        "parts not overridden keep the built-in text"
    );
    assert!(text.contains("sign in"), "{text}");

    let (status, _) = app
        .admin(
            &s.admin,
            Method::PUT,
            &format!("/v2/integrations/{}", s.integration),
            Some(json!({"data": {"type": "integration", "configuration": {"locale": "fr"}}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    request(&app, &s, "zoe@banks.test", "passwordless_authentication").await;
    let mail = smtp.wait_for(2, Duration::from_secs(10)).await;
    let (subject, text, ..) = read(&mail[1]);
    assert!(subject.starts_with("Votre code "), "{subject}");
    assert!(text.starts_with("Bonjour Zoé, votre code : "), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}
