//! What a browser frontend or a generated client meets at the HTTP layer: CORS,
//! `OPTIONS` and `Allow`, the framework's own rejections in each dialect's shape,
//! Swagger UI's page, and a sweep that every status the gateway answers is one
//! its document lists for that operation.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;

use authgate_tests::app::{parts, spawn_app_with};
use authgate_tests::redis_or_skip;
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

const APP_ORIGIN: &str = "http://app.test:3000";

fn cors_on(c: &mut authgate_gateway::Config) {
    c.cors_allowed_origins = vec![APP_ORIGIN.to_owned()];
}

fn header_of(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn preflight(
    app: &authgate_tests::TestApp,
    path: &str,
    origin: &str,
    method: &str,
) -> reqwest::Response {
    app.http
        .request(Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

/// A liveness probe sent by a page of `origin`.
async fn live_from(app: &authgate_tests::TestApp, origin: &str) -> reqwest::Response {
    app.http
        .get(app.url("/health/live"))
        .header("origin", origin)
        .send()
        .await
        .unwrap()
}

/// A key request sent by a page of `origin`.
async fn key_request_from(app: &authgate_tests::TestApp, origin: &str) -> reqwest::Response {
    app.http
        .post(app.url("/v1/login/one-time-key/request"))
        .header("origin", origin)
        .json(&json!({"username": "someone@app.acct"}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn without_allowed_origins_no_cors_header_is_ever_sent() {
    let redis = redis_or_skip!();
    let app = spawn_app_with(Some(&redis), |_| {}).await;
    let resp = preflight(&app, "/v1/login/password", APP_ORIGIN, "POST").await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_of(&resp, "allow").as_deref(), Some("OPTIONS, POST"));
    let resp = live_from(&app, APP_ORIGIN).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cors: Vec<_> = resp
        .headers()
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .collect();
    assert!(cors.is_empty(), "{cors:?}");
}

#[tokio::test]
async fn an_allowed_origin_gets_preflights_and_readable_answers_errors_included() {
    let redis = redis_or_skip!();
    let app = spawn_app_with(Some(&redis), cors_on).await;
    for (path, method, allowed) in [
        ("/v1/login/one-time-key/request", "POST", "OPTIONS, POST"),
        ("/v1/auth/verify", "GET", "GET, HEAD, OPTIONS"),
        (
            "/v2/authentication-realms/r1/user-authentication-info/u1/user-authentication-password-profile-info/c1",
            "PUT",
            "DELETE, GET, HEAD, OPTIONS, PUT",
        ),
        ("/oauth/access_token", "POST", "OPTIONS, POST"),
    ] {
        let resp = preflight(&app, path, APP_ORIGIN, method).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{path}");
        assert_eq!(
            header_of(&resp, "access-control-allow-origin").as_deref(),
            Some(APP_ORIGIN),
            "{path}"
        );
        assert_eq!(
            header_of(&resp, "access-control-allow-methods").as_deref(),
            Some(allowed),
            "{path}"
        );
        let headers = header_of(&resp, "access-control-allow-headers").unwrap();
        for h in [
            "authorization",
            "content-type",
            "ep-account-management-authentication-token",
        ] {
            assert!(headers.contains(h), "{headers}");
        }
        assert!(header_of(&resp, "access-control-allow-credentials").is_none());
    }
    // A method the path does not answer gets no permission.
    let resp = preflight(&app, "/v1/auth/verify", APP_ORIGIN, "DELETE").await;
    assert!(header_of(&resp, "access-control-allow-origin").is_none());

    let resp = key_request_from(&app, APP_ORIGIN).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header_of(&resp, "access-control-allow-origin").as_deref(),
        Some(APP_ORIGIN)
    );
    assert!(header_of(&resp, "vary").unwrap().contains("origin"));
    // The failure a page must be able to read carries the headers too, and the
    // forward-auth headers and Retry-After are readable by the page.
    let resp = app
        .http
        .get(app.url("/v1/auth/verify"))
        .header("origin", APP_ORIGIN)
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header_of(&resp, "access-control-allow-origin").as_deref(),
        Some(APP_ORIGIN)
    );
    let exposed = header_of(&resp, "access-control-expose-headers").unwrap();
    for h in [
        "retry-after",
        "x-auth-user",
        "x-auth-realm",
        "x-auth-scheme",
    ] {
        assert!(exposed.contains(h), "{exposed}");
    }
}

#[tokio::test]
async fn a_foreign_origin_is_served_but_never_told_it_may_read() {
    let redis = redis_or_skip!();
    let app = spawn_app_with(Some(&redis), cors_on).await;
    for foreign in [
        "http://evil.test",
        "http://app.test:3001",
        "https://app.test:3000",
    ] {
        let resp = preflight(&app, "/v1/login/password", foreign, "POST").await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert!(
            header_of(&resp, "access-control-allow-origin").is_none(),
            "{foreign}"
        );
        let resp = key_request_from(&app, foreign).await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "not refused, just not readable"
        );
        assert!(header_of(&resp, "access-control-allow-origin").is_none());
    }
}

#[tokio::test]
async fn credentials_mode_is_only_granted_when_configured() {
    let redis = redis_or_skip!();
    let app = spawn_app_with(Some(&redis), |c| {
        cors_on(c);
        c.cors_allow_credentials = true;
    })
    .await;
    let resp = preflight(&app, "/v1/logout", APP_ORIGIN, "POST").await;
    assert_eq!(
        header_of(&resp, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let resp = live_from(&app, APP_ORIGIN).await;
    assert_eq!(
        header_of(&resp, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
}

#[tokio::test]
async fn a_wrong_method_gets_405_with_allow_in_the_dialect_shape() {
    let redis = redis_or_skip!();
    let app = spawn_app_with(Some(&redis), |_| {}).await;
    let resp = app
        .http
        .delete(app.url("/v1/login/password"))
        .send()
        .await
        .unwrap();
    assert_eq!(header_of(&resp, "allow").as_deref(), Some("OPTIONS, POST"));
    let (status, body) = parts(resp).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        (body["result"].clone(), body["code"].clone()),
        (json!(false), json!(405))
    );

    let resp = app
        .http
        .post(app.url("/v2/integrations/abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header_of(&resp, "allow").as_deref(),
        Some("DELETE, GET, HEAD, OPTIONS, PUT")
    );
    let (status, body) = parts(resp).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["errors"][0]["status"], "405", "{body}");
}

#[tokio::test]
async fn bodies_the_framework_cannot_read_are_answered_in_the_dialect_shape() {
    let redis = redis_or_skip!();
    let app = spawn_app_with(Some(&redis), |c| c.max_body_bytes = 4096).await;
    let token = app.admin_token().await;
    let send = |path: &str, content_type: &str, body: Vec<u8>| {
        app.http
            .post(app.url(path))
            .bearer_auth(&token)
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
    };
    let cases: [(&str, Vec<u8>, StatusCode); 3] = [
        (
            "text/plain",
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "application/json",
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "application/json",
            vec![b' '; 5000],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (content_type, body, want) in cases {
        let (status, b) = parts(
            send("/v1/login/password", content_type, body.clone())
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, want, "web phone, {content_type}: {b}");
        assert_eq!(b["result"], false, "{b}");
        assert_eq!(b["code"], want.as_u16(), "{b}");
        let (status, b) = parts(send("/v2/integrations", content_type, body).await.unwrap()).await;
        assert_eq!(status, want, "commerce, {content_type}: {b}");
        assert_eq!(b["errors"][0]["status"], want.as_u16().to_string(), "{b}");
    }
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_gateway_alone_under_a_strict_policy() {
    let redis = redis_or_skip!();
    let app = spawn_app_with(Some(&redis), |_| {}).await;
    let resp = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(header_of(&resp, "location").as_deref(), Some("docs/"));
    let resp = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let policy = header_of(&resp, "content-security-policy").unwrap();
    assert!(policy.contains("script-src 'self';"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    let page = resp.text().await.unwrap();
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    assert!(!page.contains("<script>"), "no inline script: {page}");
    for (asset, kind, needle) in [
        ("swagger-ui-bundle.js", "text/javascript", "SwaggerUIBundle"),
        ("swagger-ui.css", "text/css", ".swagger-ui"),
        ("init.js", "text/javascript", "validatorUrl: null"),
    ] {
        let resp = app
            .http
            .get(app.url(&format!("/docs/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{asset}");
        assert!(header_of(&resp, "content-type").unwrap().starts_with(kind));
        assert!(resp.text().await.unwrap().contains(needle), "{asset}");
    }
}

/// The statuses the document lists for each operation, by method and path template.
fn documented(doc: &Value) -> Vec<(Method, String, BTreeSet<u16>, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let statuses = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.parse().unwrap())
                .collect();
            out.push((
                method.to_uppercase().parse().unwrap(),
                path.clone(),
                statuses,
                op.clone(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn every_answer_to_a_bad_request_is_one_the_document_lists() {
    let redis = redis_or_skip!();
    let app = spawn_app_with(Some(&redis), |c| {
        c.max_body_bytes = 4096;
        c.limits.per_ip = authgate_core::limits::Limit::OFF;
    })
    .await;
    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = app.admin_token().await;
    let realm = app.realm(&admin).await;
    let implicit = app.implicit_token().await;
    let mut checked = 0;
    for (method, template, statuses, op) in documented(&doc) {
        let path = template
            .replace("{realm}", &realm)
            .replace("{profile}", "no-such-profile")
            .replace("{user}", "no-such-user")
            .replace("{id}", "no-such-id");
        let has_body = op.get("requestBody").is_some();
        // (credentials, content type, body): none; wrong media; malformed; oversized;
        // an empty object; and the same with each kind of client token.
        let mut variants: Vec<(Option<&str>, Option<&str>, Vec<u8>)> = vec![(None, None, vec![])];
        for token in [None, Some(admin.as_str()), Some(implicit.as_str())] {
            if has_body {
                variants.push((token, Some("text/plain"), b"{}".to_vec()));
                variants.push((token, Some("application/json"), b"{\"data\": [".to_vec()));
                variants.push((token, Some("application/json"), vec![b' '; 5000]));
                variants.push((token, Some("application/json"), b"{}".to_vec()));
                variants.push((
                    token,
                    Some("application/json"),
                    br#"{"data": {"type": "wrong"}}"#.to_vec(),
                ));
            } else {
                variants.push((token, None, vec![]));
            }
        }
        for (token, content_type, body) in variants {
            let mut req = app
                .http
                .request(method.clone(), app.url(&path))
                .query(&[("page[limit]", "0")]);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(ct) = content_type {
                req = req.header(header::CONTENT_TYPE, ct).body(body.clone());
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            assert!(
                statuses.contains(&status),
                "{method} {template} answered {status}, which its document does not list ({statuses:?}); \
                 token: {}, content type: {content_type:?}, body: {:?}",
                token.is_some(),
                String::from_utf8_lossy(&body[..body.len().min(40)])
            );
            checked += 1;
        }
    }
    assert!(checked > 150, "only {checked} requests were checked");
}
