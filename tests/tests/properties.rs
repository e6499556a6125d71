//! Properties of what the gateway reads from the network, over arbitrary and
//! structured input, in a bounded time on the stable toolchain:
//!
//! - every JSON request body type of both dialects (and the form bodies of
//!   `/oauth/access_token` and `/v1/tokens/introspect`), read from arbitrary bytes and from values shaped like
//!   it, as the handlers read them: no panic, every documented length bound holds
//!   for what is accepted, and what is accepted writes back to JSON that reads
//!   back the same;
//! - the same bodies against the running gateway (memory store): every answer is
//!   below 500, and the connection survives;
//! - the `/platform` socket, frame by frame: a malformed frame closes the socket
//!   with 1007, a binary one with 1003, an oversized one with 1009 (also one too
//!   large for the transport to read); a well-formed
//!   frame with a login or refresh name gets exactly one answer of its kind, a
//!   ping a pong, any other name nothing; and the socket never just drops.
//!
//! The `fuzz/` workspace's `json_bodies` and `platform_frame` targets do the same
//! with coverage guidance, on nightly (fuzz/README.md).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod oracle;

use authgate_gateway::platform::MAX_FRAME_BYTES;
use authgate_tests::{spawn_app_with, TestApp, WebUser};
use oracle::bodies::{check_forms, Kind, BODIES, NO_BOUND};
use oracle::bodies::{Bool, Obj, OneOf, Text, Texts, Uint};
use oracle::bodies::{CODE_REQUEST, CREDENTIAL, INTEGRATION, INTROSPECT, KEY_LOGIN, KEY_REQUEST};
use oracle::bodies::{LOGOUT, PASSWORD_LOGIN, PROFILE, SETTINGS, TOKEN_EXCHANGE, TOKEN_LOGIN};
use oracle::bodies::{TOKEN_REFRESH, USER};
use oracle::platform::{Client, Frame};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------
// Values shaped like the request bodies (their shapes are in `oracle/bodies.rs`).

/// Any JSON value, nested a little.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map("[a-z_]{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A string of about `limit` characters, on either side of it, of one- to
/// four-byte characters.
fn around(limit: usize) -> impl Strategy<Value = String> {
    let limit = limit.min(5000);
    (
        limit.saturating_sub(2)..=limit + 2,
        prop_oneof![Just("a"), Just("é"), Just("€"), Just("😀")],
    )
        .prop_map(|(n, unit)| unit.repeat(n))
}

/// Strings a field of text may get: short, odd, near its bound, or shaped like
/// what the gateway expects somewhere (usernames, hex, tokens, codes, ids).
fn text(limit: usize) -> BoxedStrategy<String> {
    prop_oneof![
        4 => "\\PC{0,24}",
        2 => any::<String>(),
        2 => around(if limit == NO_BOUND { 300 } else { limit }),
        3 => shaped(),
    ]
    .boxed()
}

/// Values shaped like the things the gateway parses.
fn shaped() -> impl Strategy<Value = String> {
    prop_oneof![
        // Usernames in every form, good and bad.
        (
            "[a-zA-Z0-9._-]{1,12}",
            "[a-zA-Z0-9-]{1,8}",
            "[a-zA-Z0-9-]{1,8}",
            0u8..4
        )
            .prop_map(|(u, a, b, form)| match form {
                0 => format!("{u}@{a}.{b}"),
                1 => format!("{u}@{a}.{b}.voximplant.com"),
                2 => format!("{u}@{a}.{b}.n7.voximplant.com"),
                _ => format!("{u}@{a}.{b}.example"),
            }),
        Just("myuser@app.acct.voximplant.com".to_owned()),
        Just("jo@shop.example".to_owned()),
        "[0-9a-fA-F]{30,34}",
        "[a-z0-9]{6}|[A-Z0-9 ]{5,8}",
        // Tokens of our shape (kind, session, secret) and account JWTs' shape.
        ("[ar]", "[A-Za-z0-9_-]{22}", "[A-Za-z0-9_-]{43}")
            .prop_map(|(k, s, t)| format!("{k}.{s}.{t}")),
        "[A-Za-z0-9_-]{10,40}\\.[A-Za-z0-9_-]{10,80}\\.[A-Za-z0-9_-]{0,43}",
        // Ids.
        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        "https?://[a-z0-9.:/]{0,30}",
    ]
}

/// A JSON value for a field of `kind`: mostly of the right type, sometimes not.
fn value(kind: Kind) -> BoxedStrategy<Value> {
    let right: BoxedStrategy<Value> = match kind {
        Text(limit) => text(limit).prop_map(Value::String).boxed(),
        OneOf(names) => prop_oneof![
            4 => proptest::sample::select(names).prop_map(|s| json!(s)),
            1 => "\\PC{0,20}".prop_map(Value::String),
        ]
        .boxed(),
        Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Uint => prop_oneof![
            any::<u64>().prop_map(|n| json!(n)),
            (0u64..40_000_000).prop_map(|n| json!(n)),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
        ]
        .boxed(),
        Texts(limit) => vec(text(limit).prop_map(Value::String), 0..4)
            .prop_map(Value::Array)
            .boxed(),
        Obj(fields) => {
            let each: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
                .iter()
                .map(|(name, kind)| {
                    let name = (*name).to_owned();
                    proptest::option::weighted(0.85, value(*kind))
                        .prop_map(move |v| v.map(|v| (name.clone(), v)))
                        .boxed()
                })
                .collect();
            (
                each,
                proptest::option::weighted(0.1, ("[a-z_]{1,8}", any_json())),
            )
                .prop_map(|(fields, extra)| {
                    let mut m: Map<String, Value> = fields.into_iter().flatten().collect();
                    if let Some((k, v)) = extra {
                        m.entry(k).or_insert(v);
                    }
                    Value::Object(m)
                })
                .boxed()
        }
    };
    prop_oneof![9 => right, 1 => any_json()].boxed()
}

/// Bytes a client may send as a body of `kind`: mostly JSON shaped like it,
/// sometimes broken JSON or junk.
fn body(kind: Kind) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => value(kind).prop_map(|v| v.to_string().into_bytes()),
        1 => value(kind).prop_flat_map(|v| {
            let text = v.to_string();
            let len = text.len();
            (Just(text), 0..=len).prop_map(|(t, cut)| t.as_bytes()[..cut].to_vec())
        }),
        1 => vec(any::<u8>(), 0..64),
        1 => any_json().prop_map(|v| v.to_string().into_bytes()),
        1 => (1usize..200).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d)).into_bytes()),
    ]
}

// ---------------------------------------------------------------------------
// Body types, read as the handlers read them.

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

#[test]
fn every_json_body_type_reads_any_bytes_without_panic_and_keeps_its_bounds() {
    for (name, kind, check) in BODIES {
        let mut runner = runner(384);
        let result = runner.run(&body(*kind), |bytes| {
            check(*kind, &bytes);
            Ok(())
        });
        assert!(result.is_ok(), "{name}: {result:?}");
    }
}

#[test]
fn every_json_body_type_reads_arbitrary_bytes_without_panic() {
    let mut runner = runner(512);
    let result = runner.run(&vec(any::<u8>(), 0..256), |bytes| {
        for (_, kind, check) in BODIES {
            check(*kind, &bytes);
        }
        check_forms(&bytes);
        Ok(())
    });
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn the_form_bodies_read_any_bytes_without_panic() {
    let form = prop_oneof![
        vec(any::<u8>(), 0..128),
        (
            "grant_type=(client_credentials|implicit|[a-z_%]{0,12})",
            "client_id=[a-zA-Z0-9%+&=]{0,20}",
            proptest::option::of("client_secret=\\PC{0,40}|token=[a-zA-Z0-9%+.=_-]{0,80}"),
        )
            .prop_map(|(g, c, s)| {
                let mut parts = vec![g, c];
                parts.extend(s);
                parts.join("&").into_bytes()
            }),
    ];
    let mut runner = runner(512);
    let result = runner.run(&form, |bytes| {
        check_forms(&bytes);
        Ok(())
    });
    assert!(result.is_ok(), "{result:?}");
}

// ---------------------------------------------------------------------------
// The running gateway.

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A gateway on the memory store with one web phone user and one shop, no
/// per-address limit (so every case reaches the code it is meant for) and no
/// delivery worker.
async fn gateway() -> (TestApp, WebUser, authgate_tests::app::Shop) {
    let app = spawn_app_with(None, |c| {
        c.limits.per_ip = authgate_core::limits::Limit::OFF;
        c.delivery_worker = false;
    })
    .await;
    let user = app.web_user("myuser", "mypass123").await;
    let shop = app
        .shop(
            "Jo",
            "jo@shop.example",
            json!({"type": "integration", "name": "hook", "integration_type": "webhook",
                "configuration": {"url": "http://127.0.0.1:9/hook", "secret_key": "s"}}),
        )
        .await;
    (app, user, shop)
}

#[test]
fn the_gateway_answers_any_body_on_every_json_endpoint_below_500() {
    let rt = runtime();
    let (app, user, shop) = rt.block_on(gateway());
    let base = format!("/v2/authentication-realms/{}", shop.realm);
    // (method, path, shape, bearer token)
    let endpoints: Vec<(reqwest::Method, String, Kind, Option<String>)> = {
        use reqwest::Method as M;
        let admin = Some(shop.admin.clone());
        let public = Some(shop.implicit.clone());
        vec![
            (
                M::POST,
                "/v1/login/one-time-key/request".into(),
                KEY_REQUEST,
                None,
            ),
            (M::POST, "/v1/login/one-time-key".into(), KEY_LOGIN, None),
            (M::POST, "/v1/login/password".into(), PASSWORD_LOGIN, None),
            (M::POST, "/v1/login/token".into(), TOKEN_LOGIN, None),
            (
                M::POST,
                "/v1/login/token/refresh".into(),
                TOKEN_REFRESH,
                None,
            ),
            (M::POST, "/v1/logout".into(), LOGOUT, None),
            (
                M::POST,
                "/v1/tokens/introspect".into(),
                INTROSPECT,
                admin.clone(),
            ),
            (
                M::POST,
                format!(
                    "{base}/password-profiles/{}/one-time-password-token-request",
                    shop.profile
                ),
                CODE_REQUEST,
                public.clone(),
            ),
            (
                M::POST,
                "/v2/account-members/tokens".into(),
                TOKEN_EXCHANGE,
                public,
            ),
            (
                M::POST,
                format!("{base}/password-profiles"),
                PROFILE,
                admin.clone(),
            ),
            (
                M::PUT,
                format!("{base}/password-profiles/{}", shop.profile),
                PROFILE,
                admin.clone(),
            ),
            (
                M::POST,
                format!("{base}/user-authentication-info"),
                USER,
                admin.clone(),
            ),
            (
                M::POST,
                format!(
                    "{base}/user-authentication-info/{}/user-authentication-password-profile-info",
                    user.user_id
                ),
                CREDENTIAL,
                admin.clone(),
            ),
            (
                M::PUT,
                "/v2/settings/account-authentication".into(),
                SETTINGS,
                admin.clone(),
            ),
            (M::POST, "/v2/integrations".into(), INTEGRATION, admin),
        ]
    };
    // A body shaped for one of the endpoints, with that endpoint.
    let cases = proptest::strategy::Union::new(
        endpoints
            .iter()
            .enumerate()
            .map(|(i, (_, _, kind, _))| body(*kind).prop_map(move |b| (i, b)).boxed()),
    );
    let mut runner = runner(256);
    let seen = std::cell::RefCell::new(vec![0usize; endpoints.len()]);
    let result = runner.run(&cases, |(i, bytes)| {
        let (method, path, _, token) = &endpoints[i];
        seen.borrow_mut()[i] += 1;
        let status = rt.block_on(async {
            let mut req = app
                .http
                .request(method.clone(), app.url(path))
                .header("content-type", "application/json")
                .body(bytes.clone());
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send().await.map(|r| r.status())
        });
        match status {
            Ok(s) => prop_assert!(
                s.as_u16() < 500,
                "{method} {path}: {s} for {}",
                String::from_utf8_lossy(&bytes)
            ),
            Err(e) => prop_assert!(
                false,
                "{method} {path}: no answer ({e}) for {}",
                String::from_utf8_lossy(&bytes)
            ),
        }
        Ok(())
    });
    assert!(result.is_ok(), "{result:?}");
    // The gateway still answers, and every endpoint was tried.
    assert_eq!(rt.block_on(app.ready()), reqwest::StatusCode::OK);
    let seen = seen.into_inner();
    assert!(seen.iter().all(|n| *n > 0), "{seen:?}");
}

// ---------------------------------------------------------------------------
// The `/platform` socket (what each frame must get is in `oracle/platform.rs`).

/// Parameters as the SDK sends them, and not.
fn param(tokens: Vec<String>) -> BoxedStrategy<Value> {
    let token = proptest::sample::select(tokens);
    let texty = prop_oneof![
        4 => shaped(),
        2 => "\\PC{0,24}",
        1 => around(512),
        1 => around(64),
        1 => around(1024),
        1 => around(256),
        2 => token.clone(),
        1 => Just("mypass123".to_owned()),
        1 => Just(String::new()),
    ];
    let options = (
        proptest::option::of(prop_oneof![
            token.clone().prop_map(Value::String),
            any_json()
        ]),
        proptest::option::of(prop_oneof![token.prop_map(Value::String), any_json()]),
        proptest::option::of(any_json()),
    )
        .prop_map(|(access, refresh, other)| {
            let mut m = Map::new();
            if let Some(a) = access {
                m.insert("accessToken".into(), a);
            }
            if let Some(r) = refresh {
                m.insert("refreshToken".into(), r);
            }
            if let Some(o) = other {
                m.insert("deviceToken".into(), o);
            }
            Value::Object(m)
        });
    prop_oneof![
        6 => texty.prop_map(Value::String),
        2 => options,
        1 => any_json(),
    ]
    .boxed()
}

/// Frames near the protocol: names the gateway knows and some it does not,
/// parameters as the SDK sends them and not, and junk.
fn frame(tokens: Vec<String>) -> impl Strategy<Value = Frame> {
    let name = prop_oneof![
        Just("loginGenerateOneTimeKey".to_owned()),
        Just("loginUsingOneTimeKey".to_owned()),
        Just("login".to_owned()),
        Just("refreshOauthToken".to_owned()),
        Just("__ping".to_owned()),
        Just("setOperatorACDStatus".to_owned()),
        "\\PC{0,12}",
    ];
    let params = prop_oneof![
        8 => vec(param(tokens), 0..4).prop_map(|p| Some(Value::Array(p))),
        1 => Just(None),
        1 => Just(Some(Value::Null)),
        1 => any_json().prop_map(Some),
    ];
    let sdk = (
        name.prop_map(Value::String),
        params,
        proptest::option::weighted(0.1, any_json()),
        proptest::option::weighted(0.05, any_json()),
    )
        .prop_map(|(name, params, other_name, extra)| {
            let mut m = Map::new();
            m.insert("name".into(), other_name.unwrap_or(name));
            if let Some(p) = params {
                m.insert("params".into(), p);
            }
            if let Some(e) = extra {
                m.insert("extra".into(), e);
            }
            Value::Object(m).to_string()
        });
    // A well-formed frame padded to about the size bound.
    let big = (MAX_FRAME_BYTES - 64..MAX_FRAME_BYTES + 64).prop_map(|n| {
        let bare = json!({"name": "login", "params": ["u@a.b", "", {"x": ""}]}).to_string();
        let pad = "p".repeat(n.saturating_sub(bare.len()));
        json!({"name": "login", "params": ["u@a.b", "", {"x": pad}]}).to_string()
    });
    // Beyond what the transport reads at all (four times the bound): still a
    // 1009 the client can read.
    let huge = (4 * MAX_FRAME_BYTES - 16..4 * MAX_FRAME_BYTES + 4096)
        .prop_map(|n| format!(r#"{{"name":"login","params":["{}"]}}"#, "h".repeat(n)));
    let deep = (100usize..160, any::<bool>()).prop_map(|(d, wrapped)| {
        let nest = format!("{}{}", "[".repeat(d), "]".repeat(d));
        if wrapped {
            format!(r#"{{"name":"login","params":{nest}}}"#)
        } else {
            nest
        }
    });
    prop_oneof![
        10 => sdk.prop_map(Frame::Text),
        2 => any::<String>().prop_map(Frame::Text),
        1 => any_json().prop_map(|v| Frame::Text(v.to_string())),
        1 => big.prop_map(Frame::Text),
        1 => huge.prop_map(Frame::Text),
        1 => deep.prop_map(Frame::Text),
        1 => vec(any::<u8>(), 0..32).prop_map(Frame::Binary),
    ]
}

#[test]
fn the_platform_socket_answers_every_frame_as_the_protocol_says() {
    let rt = runtime();
    let (app, user, _shop) = rt.block_on(gateway());
    // Real tokens of the user, to present among the junk.
    let tokens = rt.block_on(async {
        let body = app.key_login(&user).await;
        let t = &body["tokens"];
        vec![
            t["accessToken"].as_str().unwrap_or_default().to_owned(),
            t["refreshToken"].as_str().unwrap_or_default().to_owned(),
        ]
    });
    let client = std::cell::RefCell::new(Client::new(app.addr));
    let mut runner = runner(768);
    let result = runner.run(&frame(tokens), |f| {
        rt.block_on(client.borrow_mut().case(&f)).map_err(|e| {
            eprintln!("failed: {e}\nframe: {f:?}");
            TestCaseError::fail(format!("{e}\nframe: {f:?}"))
        })
    });
    assert!(result.is_ok(), "{result:?}");
    // Every kind of outcome came up, and the gateway is still there.
    let seen = client.into_inner().seen;
    eprintln!("answers, pongs, ignored, closes: {seen:?}");
    assert!(seen.iter().all(|n| *n > 10), "{seen:?}");
    assert_eq!(rt.block_on(app.ready()), reqwest::StatusCode::OK);
}
