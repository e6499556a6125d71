//! The webhook POST: the [`Event`] as JSON, with the receiver's secret and a
//! signature in the headers.
//!
//! Each POST carries `X-MOLTIN-SECRET-KEY: <secret_key>` and
//! `X-Authgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
//! keyed by the same secret, so receivers can check the body and refuse replays.
//! A receiver has a fixed time to answer and redirects are not followed: a 3xx is
//! a failure like any other non-2xx answer.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::event::Event;
use crate::send::{Attempt, Failure};
use crate::StartupError;

/// The most of a receiver's answer kept in the delivery log.
const BODY_KEPT: usize = 1024;

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed by `secret`.
pub fn signature(secret: &str, unix_secs: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(unix_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={unix_secs},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The HTTP client webhooks are posted with.
#[derive(Debug, Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl WebhookClient {
    /// A client that waits at most `timeout` for an answer and follows no redirects.
    pub fn new(timeout: Duration) -> Result<Self, StartupError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("authgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| StartupError::HttpClient { timeout, source })?;
        Ok(Self { http, timeout })
    }

    /// Posts `event` to its `configuration.url`, signed with its `configuration.secret_key`.
    pub async fn post(&self, event: &Event) -> Attempt {
        let body = match serde_json::to_string(event) {
            Ok(body) => body,
            Err(e) => {
                return Attempt::failed(None, String::new(), Failure::permanent(e.to_string()))
            }
        };
        let secret = &event.configuration.secret_key;
        let url = event.configuration.url.as_deref().unwrap_or_default();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let sent = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("X-MOLTIN-SECRET-KEY", secret)
            .header(
                "X-Authgate-Signature",
                signature(secret, now, body.as_bytes()),
            )
            .body(body)
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.status();
                let mut text = resp.text().await.unwrap_or_default();
                truncate(&mut text, BODY_KEPT);
                if status.is_success() {
                    Attempt::delivered(Some(status.as_u16()), text)
                } else {
                    Attempt::failed(
                        Some(status.as_u16()),
                        text,
                        Failure::transient(format!("the receiver answered {status}")),
                    )
                }
            }
            Err(e) => {
                let detail = if e.is_timeout() {
                    format!("no answer within {} s", self.timeout.as_secs())
                } else if e.is_connect() {
                    "could not connect to the receiver".to_owned()
                } else {
                    format!("request failed: {e}")
                };
                Attempt::failed(None, String::new(), Failure::transient(detail))
            }
        }
    }
}

/// Cuts `text` to at most `max` bytes, on a character boundary.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::{id, payload, REALM};
    use crate::event::{IntegrationInfo, WebhookConfiguration};
    use authgate_core::integrations::IntegrationType;
    use authgate_otp::Purpose;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_signature_is_an_hmac_of_time_dot_body() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'shh'
        assert_eq!(
            signature("shh", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=be310eac0f84daf469d630347a950258de768b365563ab68f29f2f783473d547"
        );
    }

    #[test]
    fn a_long_answer_is_cut_on_a_character_boundary() {
        let mut s = "é".repeat(600);
        truncate(&mut s, 1024);
        assert_eq!(s.len(), 1024);
        let mut s = format!("x{}", "é".repeat(600));
        truncate(&mut s, 1024);
        assert_eq!(s.len(), 1023);
    }

    /// A receiver that answers every request with `answer`, and the URL it listens on.
    async fn receiver(answer: &'static str) -> Result<String, std::io::Error> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                read_request(&mut socket).await;
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        Ok(url)
    }

    /// Reads a whole request (headers and `content-length` bytes of body), so
    /// that closing the socket does not reset the connection under the answer.
    async fn read_request(socket: &mut tokio::net::TcpStream) {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&seen);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if seen.len() >= end + 4 + length {
                    return;
                }
            }
        }
    }

    fn event(url: String) -> Result<Event, String> {
        Ok(Event {
            id: "e-1".into(),
            store_id: id(REALM)?,
            triggered_by: "one-time-password-token-request.created".into(),
            attempt: 1,
            integration: IntegrationInfo {
                id: "int-1".into(),
                integration_type: IntegrationType::Webhook,
                name: "hook".into(),
                description: String::new(),
            },
            payload: payload(Purpose::ResetPassword, "Jo")?,
            configuration: WebhookConfiguration {
                url: Some(url),
                secret_key: "shh".into(),
            },
        })
    }

    #[tokio::test]
    async fn a_redirect_is_a_failure_not_followed() -> Result<(), String> {
        let url = receiver(
            "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:9/elsewhere\r\ncontent-length: 5\r\nconnection: close\r\n\r\nmoved",
        )
        .await
        .map_err(|e| e.to_string())?;
        let client = WebhookClient::new(Duration::from_secs(5)).map_err(|e| e.to_string())?;
        let attempt = client.post(&event(url)?).await;
        assert_eq!(attempt.status_code, Some(302));
        assert_eq!(attempt.body, "moved");
        assert_eq!(
            attempt.failure,
            Some(Failure::transient("the receiver answered 302 Found"))
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_receiver_that_does_not_answer_in_time_is_a_failure() -> Result<(), String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let url = format!(
            "http://{}/hook",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        // Accepts and then says nothing.
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let client = WebhookClient::new(Duration::from_secs(1)).map_err(|e| e.to_string())?;
        let attempt = client.post(&event(url)?).await;
        held.abort();
        assert_eq!(attempt.status_code, None);
        assert_eq!(
            attempt.failure,
            Some(Failure::transient("no answer within 1 s"))
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_2xx_answer_is_delivered() -> Result<(), String> {
        let url = receiver("HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let client = WebhookClient::new(Duration::from_secs(5)).map_err(|e| e.to_string())?;
        let attempt = client.post(&event(url)?).await;
        assert!(attempt.succeeded(), "{attempt:?}");
        assert_eq!(attempt.status_code, Some(204));
        Ok(())
    }
}
