//! The directory API, client tokens and the token checks, black box on a private Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use authgate_tests::app::parts;
use authgate_tests::{redis_or_skip, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn assert_error_shape(body: &Value, status: StatusCode) {
    let e = &body["errors"][0];
    assert_eq!(e["status"], status.as_u16().to_string(), "{body}");
    assert!(e["title"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
}

#[tokio::test]
async fn client_tokens_come_from_the_two_grants_and_wrong_secrets_get_401() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let form = |pairs: &[(&str, &str)]| {
        let req = app.http.post(app.url("/oauth/access_token")).form(pairs);
        async move { parts(req.send().await.unwrap()).await }
    };
    let (status, body) = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "authgate"),
        ("client_secret", authgate_tests::app::CLIENT_SECRET),
    ])
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["identifier"], "client_credentials");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["expires"].as_i64().unwrap() > 1_700_000_000);

    let (status, body) = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "authgate"),
        ("client_secret", "wrong"),
    ])
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_shape(&body, StatusCode::UNAUTHORIZED);
    let (status, _) = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "other"),
        ("client_secret", authgate_tests::app::CLIENT_SECRET),
    ])
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = form(&[("grant_type", "password"), ("client_id", "authgate")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_shape(&body, StatusCode::BAD_REQUEST);

    let (status, body) = form(&[("grant_type", "implicit"), ("client_id", "authgate")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["identifier"], "implicit");
    let implicit = body["access_token"].as_str().unwrap();
    let (status, body) = app
        .admin(
            implicit,
            Method::GET,
            "/v2/settings/account-authentication",
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "admin operations refuse an implicit token"
    );
    assert_error_shape(&body, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn v2_calls_without_a_live_bearer_token_get_401_in_the_errors_shape() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let resp = app
        .http
        .get(app.url("/v2/settings/account-authentication"))
        .send()
        .await
        .unwrap();
    let (status, body) = parts(resp).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_shape(&body, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .admin(
            "a.AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
            Method::GET,
            "/v2/settings/account-authentication",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_shape(&body, StatusCode::UNAUTHORIZED);
    // A user's session token is not an API client token.
    let u = app.web_user("uma", "umapass12").await;
    let login = app.key_login(&u).await;
    let (status, _) = app
        .admin(
            login["tokens"]["accessToken"].as_str().unwrap(),
            Method::GET,
            "/v2/settings/account-authentication",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn settings_profiles_users_and_credentials_round_trip() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let t = app.admin_token().await;
    let (status, settings) = app
        .admin(&t, Method::GET, "/v2/settings/account-authentication", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(settings["data"]["type"], "account_authentication_settings");
    assert_eq!(
        settings["data"]["account_member_self_management"],
        "disabled"
    );
    assert_eq!(
        settings["data"]["account_management_authentication_token_timeout_secs"],
        86400
    );
    let realm = settings["data"]["relationships"]["authentication_realm"]["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, body) = app
        .admin(&t, Method::PUT, "/v2/settings/account-authentication",
            Some(json!({"data": {"type": "account_authentication_settings", "account_member_self_management": "update_only"}})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["account_member_self_management"],
        "update_only"
    );

    let base = format!("/v2/authentication-realms/{realm}");
    let (status, p) = app
        .admin(&t, Method::POST, &format!("{base}/password-profiles"),
            Some(json!({"data": {"type": "password_profile", "name": "Customers", "username_format": "email", "enable_one_time_password_token": true}})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["data"]["type"], "password_profile");
    assert_eq!(p["data"]["username_format"], "email");
    assert_eq!(p["data"]["enable_one_time_password_token"], true);
    assert_eq!(p["data"]["voximplant_application"], Value::Null);
    assert!(p["data"]["meta"]["created_at"].as_str().is_some());
    let pid = p["data"]["id"].as_str().unwrap().to_owned();

    let (status, list) = app
        .admin(&t, Method::GET, &format!("{base}/password-profiles"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["meta"]["results"]["total"], 1);
    assert_eq!(list["data"][0]["id"], pid.as_str());

    let (status, p2) = app
        .admin(&t, Method::PUT, &format!("{base}/password-profiles/{pid}"),
            Some(json!({"data": {"type": "password_profile", "voximplant_application": "shop.acme"}})))
        .await;
    assert_eq!(status, StatusCode::OK, "{p2}");
    assert_eq!(p2["data"]["voximplant_application"], "shop.acme");
    assert_eq!(p2["data"]["name"], "Customers", "fields not given stay");

    let (status, user) = app
        .admin(&t, Method::POST, &format!("{base}/user-authentication-info"),
            Some(json!({"data": {"type": "user_authentication_info", "name": "John Doe", "email": "john.doe@banks.com"}})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["data"]["type"], "user_authentication_info");
    assert_eq!(user["data"]["email"], "john.doe@banks.com");
    let uid = user["data"]["id"].as_str().unwrap().to_owned();

    let creds =
        format!("{base}/user-authentication-info/{uid}/user-authentication-password-profile-info");
    let (status, c) = app
        .admin(&t, Method::POST, &creds,
            Some(json!({"data": {"type": "user_authentication_password_profile_info", "password_profile_id": pid, "username": "John.Doe@Banks.com", "password": "correct-horse"}})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(
        c["data"]["username"], "john.doe@banks.com",
        "email usernames are kept lowercase"
    );
    assert!(
        c["data"].get("password").is_none(),
        "passwords are never returned"
    );
    let cid = c["data"]["id"].as_str().unwrap().to_owned();

    let (status, got) = app
        .admin(&t, Method::GET, &format!("{creds}/{cid}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["data"]["password_profile_id"], pid.as_str());
    let (status, list) = app.admin(&t, Method::GET, &creds, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["meta"]["results"]["total"], 1);

    // The profile is exposed as shop.acme, so this user logs in with a password there.
    let (status, body) = app
        .post(
            "/v1/login/password",
            &json!({"username": "john.doe@banks.com@shop.acme", "password": "correct-horse"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an @ in the bare user is not a web phone username: {body}"
    );

    let (status, _) = app
        .admin(&t, Method::DELETE, &format!("{creds}/{cid}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app
        .admin(&t, Method::GET, &format!("{creds}/{cid}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&body, StatusCode::NOT_FOUND);
    let (status, _) = app
        .admin(
            &t,
            Method::DELETE,
            &format!("{base}/user-authentication-info/{uid}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .admin(
            &t,
            Method::DELETE,
            &format!("{base}/password-profiles/{pid}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = app
        .admin(&t, Method::GET, &format!("{base}/password-profiles"), None)
        .await;
    assert_eq!(list["meta"]["results"]["total"], 0);
}

#[tokio::test]
async fn bad_directory_input_gets_a_clear_4xx_and_changes_nothing() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let t = app.admin_token().await;
    let realm = app.realm(&t).await;
    let base = format!("/v2/authentication-realms/{realm}");
    let profile = app.web_profile(&t, "app.acct").await;
    let u = app
        .web_user_in(&t, &profile, "app.acct", "vic", "vicpass12")
        .await;
    let creds = format!(
        "{base}/user-authentication-info/{}/user-authentication-password-profile-info",
        u.user_id
    );

    let cases = [
        (
            Method::POST,
            format!("{base}/password-profiles"),
            json!({"data": {"type": "wrong_type", "name": "x"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("{base}/password-profiles"),
            json!({"data": {"type": "password_profile"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("{base}/password-profiles"),
            json!({"data": {"type": "password_profile", "name": "x", "username_format": "phone"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("{base}/password-profiles"),
            json!({"name": "no envelope"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("{base}/password-profiles"),
            json!({"data": {"type": "password_profile", "name": "dup", "voximplant_application": "app.acct"}}),
            StatusCode::CONFLICT,
        ),
        (
            Method::POST,
            format!("{base}/password-profiles"),
            json!({"data": {"type": "password_profile", "name": "bad", "voximplant_application": "not an app"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/v2/authentication-realms/no-such-realm/password-profiles".to_owned(),
            json!({"data": {"type": "password_profile", "name": "x"}}),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("{base}/user-authentication-info"),
            json!({"data": {"type": "user_authentication_info", "name": "x", "email": "not-an-email"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            creds.clone(),
            json!({"data": {"type": "user_authentication_password_profile_info", "password_profile_id": profile, "username": "vic", "password": "another1"}}),
            StatusCode::CONFLICT,
        ),
        (
            Method::POST,
            creds.clone(),
            json!({"data": {"type": "user_authentication_password_profile_info", "password_profile_id": profile, "username": "walt", "password": "short"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            creds.clone(),
            json!({"data": {"type": "user_authentication_password_profile_info", "password_profile_id": "nope", "username": "walt", "password": "longenough"}}),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PUT,
            format!("{creds}/{}", u.credential_id),
            json!({"data": {"type": "user_authentication_password_profile_info", "id": "other-id", "password": "longenough"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            format!("{base}/password-profiles?page[limit]=1000"),
            Value::Null,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            format!("{base}/user-authentication-info/nope"),
            Value::Null,
            StatusCode::NOT_FOUND,
        ),
    ];
    let before = redis.dump().await;
    for (method, path, body, want) in cases {
        let body = if body.is_null() { None } else { Some(body) };
        let (status, resp) = app.admin(&t, method.clone(), &path, body.clone()).await;
        assert_eq!(status, want, "{method} {path} {body:?}: {resp}");
        assert_error_shape(&resp, want);
    }
    assert_eq!(
        redis.dump().await,
        before,
        "refused requests changed nothing"
    );
    // The old password still works after the refused change.
    let (status, _) = app
        .post(
            "/v1/login/password",
            &json!({"username": u.username, "password": "vicpass12"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn verify_and_introspect_answer_for_live_tokens_only() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let u = app.web_user("wes", "wespass12").await;
    let login = app.key_login(&u).await;
    let access = login["tokens"]["accessToken"].as_str().unwrap();

    let resp = app
        .http
        .get(app.url("/v1/auth/verify"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers();
    assert_eq!(h["x-auth-user"], "wes@app.acct");
    assert_eq!(h["x-auth-user-id"], u.user_id.as_str());
    assert_eq!(h["x-auth-scheme"], "one-time-key");
    let realm = h["x-auth-realm"].to_str().unwrap().to_owned();
    assert_eq!(realm, app.realm(&app.admin_token().await).await);

    let resp = app
        .http
        .get(app.url("/v1/auth/verify"))
        .header("EP-Account-Management-Authentication-Token", access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the header form is read too");

    for bad in [None, Some("Bearer nonsense"), Some("Basic dXNlcjpwYXNz")] {
        let mut req = app.http.get(app.url("/v1/auth/verify"));
        if let Some(v) = bad {
            req = req.header("authorization", v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let (_, body) = parts(resp).await;
        assert_error_shape(&body, StatusCode::UNAUTHORIZED);
    }
    let refresh = login["tokens"]["refreshToken"].as_str().unwrap();
    assert_eq!(
        app.verify(refresh).await.0,
        StatusCode::UNAUTHORIZED,
        "a refresh token is not an access token"
    );
    let admin = app.admin_token().await;
    assert_eq!(
        app.verify(&admin).await.0,
        StatusCode::UNAUTHORIZED,
        "client tokens are not user sessions"
    );

    let (status, body) = app.introspect(access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], u.user_id.as_str());
    assert_eq!(body["username"], "wes@app.acct");
    assert_eq!(body["realm_id"], realm.as_str());
    assert_eq!(body["scheme"], "one-time-key");
    let exp = body["exp"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((exp - now - 48 * 3600).abs() < 60, "exp {exp}");
    let (_, body) = app.introspect(&admin).await;
    assert_eq!(body["scheme"], "client");
    let (_, body) = app.introspect("garbage").await;
    assert_eq!(body, json!({"active": false}));
}

#[tokio::test]
async fn unknown_routes_and_probes_answer_in_the_errors_shape() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let resp = app
        .http
        .get(app.url("/v2/nothing-here"))
        .send()
        .await
        .unwrap();
    let (status, body) = parts(resp).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&body, StatusCode::NOT_FOUND);
    let (status, body) = parts(app.http.get(app.url("/health/live")).send().await.unwrap()).await;
    assert_eq!(
        (status, body["status"].clone()),
        (StatusCode::OK, json!("ok"))
    );
    let (status, body) = parts(app.http.get(app.url("/health/ready")).send().await.unwrap()).await;
    assert_eq!(
        (status, body["store"].clone()),
        (StatusCode::OK, json!("redis"))
    );
    let resp = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.text().await.unwrap().contains("swagger"),
        "Swagger UI is served"
    );
}

#[tokio::test]
async fn generated_secrets_are_shared_by_replicas_through_the_store() {
    let redis = redis_or_skip!();
    // Two replicas without a token secret: a key issued by one logs in on the other.
    let unset = |c: &mut authgate_gateway::Config| c.token_secret = None;
    let a = authgate_tests::spawn_app_with(Some(&redis), unset).await;
    let b = authgate_tests::spawn_app_with(Some(&redis), unset).await;
    let u = a.web_user("xena", "xenapass1").await;
    let key = a.key(&u.username).await;
    let (status, body) = b
        .login_key(
            &u.username,
            &authgate_tests::app::hash(&key, &u.user, &u.password),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Without a client secret, the first replica generates one, the second learns it
    // was generated elsewhere, and both accept it; only its digest is stored.
    let mut config = authgate_tests::app::test_config(Some(&redis));
    config.client_secret = None;
    config.token_secret = None;
    let (first, generated) = authgate_gateway::state::AppState::build(&config)
        .await
        .unwrap();
    let secret = generated
        .client_secret
        .expect("the first replica generates the secret");
    let (second, again) = authgate_gateway::state::AppState::build(&config)
        .await
        .unwrap();
    assert!(again.client_secret.is_none(), "generated once");
    use secrecy::ExposeSecret;
    assert!(first.client_secret_matches(secret.expose_secret()));
    assert!(second.client_secret_matches(secret.expose_secret()));
    assert!(!second.client_secret_matches("something else"));
    assert!(!redis.dump().await.contains(secret.expose_secret()));
}

#[tokio::test]
async fn handler_errors_keep_their_detail_and_headers() {
    let redis = redis_or_skip!();
    let app = authgate_tests::spawn_app_with(Some(&redis), |c| {
        c.limits.per_ip = authgate_tests::app::limit(3, 60)
    })
    .await;
    let t = app.admin_token().await;
    let realm = app.realm(&t).await;
    let profile = app.web_profile(&t, "app.acct").await;
    let u = app
        .web_user_in(&t, &profile, "app.acct", "yan", "yanpass12")
        .await;
    let (status, body) = app
        .admin(&t, Method::POST, &format!("/v2/authentication-realms/{realm}/user-authentication-info/{}/user-authentication-password-profile-info", u.user_id),
            Some(json!({"data": {"type": "user_authentication_password_profile_info", "password_profile_id": profile, "username": "zed", "password": "short"}})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("at least 8"),
        "{body}"
    );
    // The token above was the first client-auth request; two more fit, the fourth is refused.
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "authgate"),
        ("client_secret", "wrong"),
    ];
    for _ in 0..2 {
        let resp = app
            .http
            .post(app.url("/oauth/access_token"))
            .form(&form)
            .send()
            .await
            .unwrap();
        let (status, body) = parts(resp).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            body["errors"][0]["detail"]
                .as_str()
                .unwrap()
                .contains("client_secret"),
            "{body}"
        );
    }
    let resp = app
        .http
        .post(app.url("/oauth/access_token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        resp.headers().contains_key("retry-after"),
        "{:?}",
        resp.headers()
    );
}

#[tokio::test]
async fn a_replica_with_another_token_secret_refuses_to_start() {
    let redis = redis_or_skip!();
    let _first = spawn_app(Some(&redis)).await;
    let mut config = authgate_tests::app::test_config(Some(&redis));
    config.token_secret = Some(secrecy::SecretString::from(
        "a-different-token-secret-of-enough-length".to_owned(),
    ));
    let err = match authgate_gateway::state::AppState::build(&config).await {
        Ok(_) => panic!("a replica with another secret started"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("AUTHGATE_TOKEN_SECRET"), "{err}");
}

/// A well-formed id that names nothing.
const UNKNOWN: &str = "00000000-0000-4000-8000-000000000000";

/// Ids that do not parse, made from `real` (an id that exists): junk, and near
/// misses of the real one.
fn malformed(real: &str) -> [String; 5] {
    [
        "nope".to_owned(),
        real.to_uppercase(),
        format!("{real}0"),
        real[1..].to_owned(),
        "-".to_owned(),
    ]
}

#[tokio::test]
async fn a_malformed_id_in_a_path_or_body_is_answered_as_an_unknown_one_is() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let t = app.admin_token().await;
    let realm = app.realm(&t).await;
    let profile = app.web_profile(&t, "app.acct").await;
    let u = app
        .web_user_in(&t, &profile, "app.acct", "vic", "vicpass12")
        .await;
    let (user, cred) = (u.user_id.as_str(), u.credential_id.as_str());
    let base = format!("/v2/authentication-realms/{realm}");
    let creds =
        format!("{base}/user-authentication-info/{user}/user-authentication-password-profile-info");
    let profile_body = json!({"data": {"type": "password_profile", "name": "x"}});
    let user_body = json!({"data": {"type": "user_authentication_info", "name": "x"}});
    let cred_body = |profile: &str| {
        json!({"data": {"type": "user_authentication_password_profile_info",
            "password_profile_id": profile, "username": "walt", "password": "longenough"}})
    };
    let password_body = json!({"data": {"type": "user_authentication_password_profile_info", "password": "longenough"}});
    // Each case has one id, `@ID@`, that is given a well-formed unknown id, then
    // each malformed one; the real id it is made from is the case's last field.
    let cases: Vec<(Method, String, Option<Value>, &str)> = vec![
        (Method::GET, "/v2/authentication-realms/@ID@/password-profiles".to_owned(), None, &realm),
        (Method::POST, "/v2/authentication-realms/@ID@/password-profiles".to_owned(), Some(profile_body.clone()), &realm),
        (Method::GET, format!("{base}/password-profiles/@ID@"), None, &profile),
        (Method::PUT, format!("{base}/password-profiles/@ID@"), Some(profile_body), &profile),
        (Method::DELETE, format!("{base}/password-profiles/@ID@"), None, &profile),
        (Method::GET, format!("{base}/user-authentication-info/@ID@"), None, user),
        (Method::PUT, format!("{base}/user-authentication-info/@ID@"), Some(user_body), user),
        (Method::DELETE, format!("{base}/user-authentication-info/@ID@"), None, user),
        (Method::GET, format!("{base}/user-authentication-info/@ID@/user-authentication-password-profile-info"), None, user),
        (Method::POST, format!("{base}/user-authentication-info/@ID@/user-authentication-password-profile-info"), Some(cred_body(&profile)), user),
        // An unknown user comes before a profile id that does not parse.
        (Method::POST, format!("{base}/user-authentication-info/@ID@/user-authentication-password-profile-info"), Some(cred_body("nope")), user),
        (Method::POST, creds.clone(), Some(cred_body("@ID@")), &profile),
        (Method::GET, format!("{creds}/@ID@"), None, cred),
        (Method::PUT, format!("{creds}/@ID@"), Some(password_body.clone()), cred),
        (Method::DELETE, format!("{creds}/@ID@"), None, cred),
        (Method::GET, format!("{base}/user-authentication-info/@ID@/user-authentication-password-profile-info/{cred}"), None, user),
        (Method::PUT, format!("{base}/user-authentication-info/@ID@/user-authentication-password-profile-info/{cred}"), Some(password_body), user),
        (Method::DELETE, format!("{base}/user-authentication-info/@ID@/user-authentication-password-profile-info/{cred}"), None, user),
        // `data.id` repeats the path's id, whatever it is.
        (Method::PUT, format!("{creds}/@ID@"), Some(json!({"data": {"type": "user_authentication_password_profile_info", "id": "@ID@", "password": "longenough"}})), cred),
    ];
    let before = redis.dump().await;
    for (method, path, body, real) in cases {
        let with = |id: &str| {
            let body = body
                .as_ref()
                .map(|b| serde_json::from_str(&b.to_string().replace("@ID@", id)).unwrap());
            (path.replace("@ID@", id), body)
        };
        let (path, body) = with(UNKNOWN);
        let unknown = app.admin(&t, method.clone(), &path, body).await;
        assert!(unknown.0.is_client_error(), "{method} {path}: {unknown:?}");
        for id in malformed(real) {
            let (path, body) = with(&id);
            let answer = app.admin(&t, method.clone(), &path, body.clone()).await;
            assert_eq!(answer, unknown, "{method} {path} {body:?}");
        }
    }
    assert_eq!(
        redis.dump().await,
        before,
        "refused requests changed nothing"
    );
}
