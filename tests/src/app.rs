//! The real gateway on a free port, and a client for its API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use authgate_core::limits::Limit;
use authgate_gateway::state::AppState;
use authgate_gateway::{Application, Config};
use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::redis::TestRedis;

/// The API client secret every test gateway uses.
pub const CLIENT_SECRET: &str = "test-client-secret-0123456789";

/// A running gateway.
///
/// `S` is what the test holds of its shared state: the state itself for the
/// gateways of [`spawn_app`], [`spawn_app_with`] and [`spawn_app_on`], whose
/// store answered at start-up; `Option<Arc<AppState>>` for a [`StartingApp`],
/// which may have started before its store answered.
pub struct TestApp<S = Arc<AppState>> {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where it serves `/metrics` and the health probes apart, when
    /// `metrics_bind` is set.
    pub metrics_addr: Option<SocketAddr>,
    /// Its shared state.
    pub state: S,
    /// A client without cookies or redirects.
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// A gateway that may have started before its store answered (see
/// [`spawn_starting`]). `state` is the state at start-up: `None` when the store
/// did not answer then, and it stays `None` once the gateway serves (the state
/// is then inside the running server, out of the test's reach).
pub type StartingApp = TestApp<Option<Arc<AppState>>>;

impl<S> Drop for TestApp<S> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A config for tests: port 0, the test's Redis and prefix, fixed secrets.
pub fn test_config(redis: Option<&TestRedis>) -> Config {
    let mut config = config_on("mem:");
    config.redis_url = redis.map(|r| r.url.clone());
    if let Some(r) = redis {
        config.redis_prefix = r.prefix.clone();
    }
    config
}

/// A config for tests on the Redis (or Redis Cluster) at `url`, under `prefix`:
/// port 0, fixed secrets.
pub fn test_config_on(url: &str, prefix: &str) -> Config {
    let mut config = config_on(prefix);
    config.redis_url = Some(url.to_owned());
    config
}

fn config_on(prefix: &str) -> Config {
    Config {
        bind: "127.0.0.1:0".parse().expect("addr"),
        redis_url: None,
        redis_prefix: prefix.to_owned(),
        client_secret: Some(SecretString::from(CLIENT_SECRET.to_owned())),
        token_secret: Some(SecretString::from(
            "test-token-secret-for-sealing-and-keys".to_owned(),
        )),
        ..Config::default()
    }
}

/// Starts a gateway on `redis` (or the memory store) with the default test config.
pub async fn spawn_app(redis: Option<&TestRedis>) -> TestApp {
    spawn_app_with(redis, |_| {}).await
}

/// Starts a gateway after `tweak` has adjusted its config.
pub async fn spawn_app_with(redis: Option<&TestRedis>, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = test_config(redis);
    tweak(&mut config);
    spawn_config(config).await
}

/// Starts a gateway on the Redis or Redis Cluster at `url` (one node, or a
/// comma-separated list of nodes) under the key prefix `prefix`, after `tweak`
/// has adjusted its config (TLS files, mode, limits, ...).
pub async fn spawn_app_on(url: &str, prefix: &str, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = test_config_on(url, prefix);
    tweak(&mut config);
    spawn_config(config).await
}

/// Starts a gateway with `config`; panics unless it builds and its store
/// answered at start-up.
pub async fn spawn_config(config: Config) -> TestApp {
    let app = spawn_starting(config).await.expect("the gateway builds");
    let state = app.state.clone().expect("the store answered at start-up");
    app.with_state(state)
}

/// A client for a gateway that runs elsewhere (another process) at `addr`: the
/// same API helpers, without a gateway to stop.
pub fn client_for(addr: SocketAddr) -> TestApp<()> {
    TestApp {
        addr,
        metrics_addr: None,
        state: (),
        http: client(),
        stop: None,
        task: None,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Starts a gateway with `config` whether or not its store answers yet (the
/// gateway then answers 503 until it does); `Err` when `Application::build`
/// fails (a misconfigured store, a bad listener). Bounded: a build that takes
/// over 30 s is an error too.
pub async fn spawn_starting(config: Config) -> anyhow::Result<StartingApp> {
    let app = tokio::time::timeout(Duration::from_secs(30), Application::build(config))
        .await
        .map_err(|_| anyhow::anyhow!("Application::build took over 30 s"))??;
    let addr = app.addr();
    let metrics_addr = app.metrics_addr();
    let state = app.state();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = app
            .run_until(async {
                let _ = rx.await;
            })
            .await;
    });
    let http = client();
    Ok(TestApp {
        addr,
        metrics_addr,
        state,
        http,
        stop: Some(tx),
        task: Some(task),
    })
}

impl<S> TestApp<S> {
    /// Asks the gateway to shut down as a signal would (graceful, within its
    /// `shutdown_grace`) and returns at once; [`TestApp::stopped`] waits for the end.
    pub fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits, at most `within`, for the gateway to have shut down; whether it had.
    pub async fn stopped(&mut self, within: Duration) -> bool {
        self.shut_down();
        match self.task.as_mut() {
            Some(task) => {
                let done = tokio::time::timeout(within, task).await.is_ok();
                if done {
                    self.task = None;
                }
                done
            }
            None => true,
        }
    }

    /// The same running gateway, holding `state` instead.
    fn with_state<T>(mut self, state: T) -> TestApp<T> {
        TestApp {
            addr: self.addr,
            metrics_addr: self.metrics_addr,
            state,
            http: self.http.clone(),
            stop: self.stop.take(),
            task: self.task.take(),
        }
    }
}

/// A limit for tests.
pub fn limit(count: u64, secs: u64) -> Limit {
    Limit::new(count, Duration::from_secs(secs))
}

/// A web phone user created through the API.
#[derive(Debug, Clone)]
pub struct WebUser {
    /// The full username, `user@app.account.voximplant.com`.
    pub username: String,
    /// The bare user.
    pub user: String,
    /// The password.
    pub password: String,
    /// The directory user id.
    pub user_id: String,
    /// The credential id.
    pub credential_id: String,
    /// The password profile id.
    pub profile_id: String,
}

/// Scheme B's setting, made through the API: a password profile with one-time
/// password tokens on, a member with a username (their email) and the password
/// `old-password-1` in it, an integration that delivers the codes, and the tokens
/// to call with.
#[derive(Debug, Clone)]
pub struct Shop {
    /// The realm's id.
    pub realm: String,
    /// The password profile's id.
    pub profile: String,
    /// The member's user id.
    pub user_id: String,
    /// The member's credential id.
    pub credential_id: String,
    /// An admin client token.
    pub admin: String,
    /// A public client token, as a shop's frontend holds.
    pub implicit: String,
    /// The integration's id.
    pub integration: String,
}

impl Shop {
    /// The member's username and password record.
    pub fn credential_path(&self) -> String {
        format!("/v2/authentication-realms/{}/user-authentication-info/{}/user-authentication-password-profile-info/{}",
            self.realm, self.user_id, self.credential_id)
    }
}

/// A response's status and JSON body (Null when the body is empty or not JSON).
pub async fn parts(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

impl<S> TestApp<S> {
    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GETs `path`; the raw response.
    pub async fn get_raw(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().await.expect("request")
    }

    /// The status of `/health/ready`.
    pub async fn ready(&self) -> StatusCode {
        self.get_raw("/health/ready").await.status()
    }

    /// Polls `/health/ready` every 100 ms until it is 200; how long that took,
    /// or `Err` with the last status after `within`.
    pub async fn wait_ready(&self, within: Duration) -> Result<Duration, StatusCode> {
        let start = std::time::Instant::now();
        loop {
            let status = self.ready().await;
            if status == StatusCode::OK {
                return Ok(start.elapsed());
            }
            if start.elapsed() >= within {
                return Err(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// POSTs JSON.
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        parts(
            self.http
                .post(self.url(path))
                .json(body)
                .send()
                .await
                .expect("request"),
        )
        .await
    }

    /// POSTs JSON and returns the raw response.
    pub async fn post_raw(&self, path: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// An admin client token.
    pub async fn admin_token(&self) -> String {
        self.client_token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "authgate"),
            ("client_secret", CLIENT_SECRET),
        ])
        .await
    }

    /// A public client token (the implicit grant).
    pub async fn implicit_token(&self) -> String {
        self.client_token(&[("grant_type", "implicit"), ("client_id", "authgate")])
            .await
    }

    async fn client_token(&self, form: &[(&str, &str)]) -> String {
        let resp = self
            .http
            .post(self.url("/oauth/access_token"))
            .form(form)
            .send()
            .await
            .expect("token request");
        let (status, body) = parts(resp).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Sends an admin request with `token`.
    pub async fn admin(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        parts(req.send().await.expect("request")).await
    }

    /// The realm's id, read from the settings.
    pub async fn realm(&self, token: &str) -> String {
        let (status, body) = self
            .admin(
                token,
                reqwest::Method::GET,
                "/v2/settings/account-authentication",
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]["relationships"]["authentication_realm"]["data"]["id"]
            .as_str()
            .expect("realm id")
            .to_owned()
    }

    /// A profile exposed to web phone login as `application`.
    pub async fn web_profile(&self, token: &str, application: &str) -> String {
        let realm = self.realm(token).await;
        self.create(
            token,
            &format!("/v2/authentication-realms/{realm}/password-profiles"),
            json!({"type": "password_profile", "name": "phones", "username_format": "any",
                "enable_one_time_password_token": false, "voximplant_application": application}),
        )
        .await
    }

    /// A user with a credential in `profile`.
    pub async fn web_user_in(
        &self,
        token: &str,
        profile: &str,
        application: &str,
        user: &str,
        password: &str,
    ) -> WebUser {
        let base = format!("/v2/authentication-realms/{}", self.realm(token).await);
        let user_id = self
            .create(token, &format!("{base}/user-authentication-info"),
                json!({"type": "user_authentication_info", "name": format!("{user} display"), "email": format!("{user}@example.com")}))
            .await;
        let credential_id = self
            .create(token, &format!("{base}/user-authentication-info/{user_id}/user-authentication-password-profile-info"),
                json!({"type": "user_authentication_password_profile_info", "password_profile_id": profile,
                    "username": user, "password": password}))
            .await;
        WebUser {
            username: format!("{user}@{application}.voximplant.com"),
            user: user.to_owned(),
            password: password.to_owned(),
            user_id,
            credential_id,
            profile_id: profile.to_owned(),
        }
    }

    /// A web phone user `user` of a fresh application `app.acct`.
    pub async fn web_user(&self, user: &str, password: &str) -> WebUser {
        let token = self.admin_token().await;
        let profile = self.web_profile(&token, "app.acct").await;
        self.web_user_in(&token, &profile, "app.acct", user, password)
            .await
    }

    /// Requests a key; returns it (panics unless the answer is 302).
    pub async fn key(&self, username: &str) -> String {
        let (status, body) = self
            .post(
                "/v1/login/one-time-key/request",
                &json!({"username": username}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["code"], 302, "{body}");
        assert_eq!(body["result"], false, "{body}");
        body["key"].as_str().expect("key").to_owned()
    }

    /// Logs in with a key hash.
    pub async fn login_key(&self, username: &str, hash: &str) -> (StatusCode, Value) {
        self.post(
            "/v1/login/one-time-key",
            &json!({"username": username, "hash": hash}),
        )
        .await
    }

    /// Requests a key and logs in with the right hash; returns the AuthResult.
    pub async fn key_login(&self, u: &WebUser) -> Value {
        let key = self.key(&u.username).await;
        let (status, body) = self
            .login_key(&u.username, &hash(&key, &u.user, &u.password))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// POSTs `{"data": data}` with an admin `token`; asserts 201 and returns the
    /// new resource's id.
    pub async fn create(&self, token: &str, path: &str, data: Value) -> String {
        let body = Some(json!({ "data": data }));
        let (status, body) = self.admin(token, reqwest::Method::POST, path, body).await;
        assert_eq!(status, StatusCode::CREATED, "POST {path}: {body}");
        body["data"]["id"].as_str().expect("an id").to_owned()
    }

    /// A [`Shop`] whose member is `name` with the username `email`, and whose codes
    /// go through `integration` (the `data` of an integration to create).
    pub async fn shop(&self, name: &str, email: &str, integration: Value) -> Shop {
        let admin = self.admin_token().await;
        let realm = self.realm(&admin).await;
        let base = format!("/v2/authentication-realms/{realm}");
        let profile = self
            .create(&admin, &format!("{base}/password-profiles"),
                json!({"type": "password_profile", "name": "Customers", "username_format": "email", "enable_one_time_password_token": true}))
            .await;
        let user_id = self
            .create(
                &admin,
                &format!("{base}/user-authentication-info"),
                json!({"type": "user_authentication_info", "name": name, "email": email}),
            )
            .await;
        let credential_id = self
            .create(&admin, &format!("{base}/user-authentication-info/{user_id}/user-authentication-password-profile-info"),
                json!({"type": "user_authentication_password_profile_info", "password_profile_id": profile, "username": email, "password": "old-password-1"}))
            .await;
        let integration = self.create(&admin, "/v2/integrations", integration).await;
        Shop {
            realm,
            profile,
            user_id,
            credential_id,
            implicit: self.implicit_token().await,
            integration,
            admin,
        }
    }

    /// Requests a one-time password token for `username` of the shop's profile.
    pub async fn request_code(&self, s: &Shop, username: &str, purpose: &str) -> Response {
        self.http
            .post(self.url(&format!("/v2/authentication-realms/{}/password-profiles/{}/one-time-password-token-request", s.realm, s.profile)))
            .bearer_auth(&s.implicit)
            .json(&json!({"data": {"type": "one_time_password_token_request", "username": username, "purpose": purpose}}))
            .send()
            .await
            .expect("code request")
    }

    /// Exchanges a one-time password token for an account management token.
    pub async fn exchange_code(&self, s: &Shop, username: &str, code: &str) -> (StatusCode, Value) {
        self.account_token(s, json!({"type": "account_management_authentication_token", "authentication_mechanism": "passwordless",
            "password_profile_id": s.profile, "username": username, "one_time_password_token": code}))
            .await
    }

    /// Exchanges a username and password for an account management token.
    pub async fn password_token(
        &self,
        s: &Shop,
        username: &str,
        password: &str,
    ) -> (StatusCode, Value) {
        self.account_token(s, json!({"type": "account_management_authentication_token", "authentication_mechanism": "password",
            "password_profile_id": s.profile, "username": username, "password": password}))
            .await
    }

    /// Sets the password of the credential at `path` as a member does: the shop's
    /// client token and the member's account management `token`.
    pub async fn member_password(
        &self,
        s: &Shop,
        path: &str,
        token: &str,
        password: &str,
    ) -> (StatusCode, Value) {
        let resp = self
            .http
            .put(self.url(path))
            .bearer_auth(&s.implicit)
            .header("EP-Account-Management-Authentication-Token", token)
            .json(&json!({"data": {"type": "user_authentication_password_profile_info", "password": password}}))
            .send()
            .await
            .expect("password change");
        parts(resp).await
    }

    /// The delivery tries of the integration `id`, newest first, read with an
    /// admin `token`.
    pub async fn delivery_log(&self, token: &str, id: &str) -> (StatusCode, Value) {
        let path = format!("/v2/integrations/{id}/logs");
        self.admin(token, reqwest::Method::GET, &path, None).await
    }

    async fn account_token(&self, s: &Shop, data: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.url("/v2/account-members/tokens"))
            .bearer_auth(&s.implicit)
            .json(&json!({ "data": data }))
            .send()
            .await
            .expect("token request");
        parts(resp).await
    }

    /// Introspects `token` as the API client does (HTTP Basic with the client id
    /// and secret, a JSON body): the status and the body.
    pub async fn introspect(&self, token: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.url("/v1/tokens/introspect"))
            .basic_auth("authgate", Some(CLIENT_SECRET))
            .json(&json!({ "token": token }))
            .send()
            .await
            .expect("introspection");
        parts(resp).await
    }

    /// Forward-auth with a bearer token: the status and the X-Auth-User header.
    pub async fn verify(&self, token: &str) -> (StatusCode, Option<String>) {
        let resp = self
            .http
            .get(self.url("/v1/auth/verify"))
            .bearer_auth(token)
            .send()
            .await
            .expect("verify");
        let user = resp
            .headers()
            .get("x-auth-user")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (resp.status(), user)
    }
}

/// What a customer's backend answers a key with.
pub fn hash(key: &str, user: &str, password: &str) -> String {
    authgate_onetimekey::digest::key_response(
        key,
        &authgate_onetimekey::digest::ha1(user, password),
    )
}

/// Sends every request at once (each on a task of its own) and returns their
/// statuses in order: for "exactly one winner" checks.
pub async fn all_at_once(requests: Vec<reqwest::RequestBuilder>) -> Vec<reqwest::StatusCode> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|req| tokio::spawn(async move { req.send().await.expect("request").status() }))
        .collect();
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|status| status.expect("the request's task"))
        .collect()
}
