//! The scheme's rules: key requests and the four ways to log in, on the store.
//!
//! Keys are never kept: the store holds a random nonce per (application, user)
//! under a TTL, and the key is an HMAC of that nonce under the gateway's keyring,
//! so a dump of the store yields no key. `Take` (GETDEL) makes every attempt
//! consume the key, right or wrong, and a request replaces the nonce, voiding the
//! earlier key. A key request is one round trip to the store; a key login two (one
//! read of everything it needs, then the session).

use std::sync::Arc;
use std::time::Duration;

use authgate_core::crypto::{ct_eq, random_bytes, Keyring, MacKey};
use authgate_core::directory::{login_record_in, Directory, LoginRecord};
use authgate_core::funnel::{Funnel, Observer, Stage, ONE_TIME_KEY};
use authgate_core::limits::{AddressCount, AddressLimiter, Limits, Throttled};
use authgate_core::password;
use authgate_core::store::{Batch, Count, Handle, Keys, Store, StoreError, StoreExt, UserKeys};
use authgate_core::tokens::{
    Check, IssuedTokens, Refresh, Role, Scheme, Subject, SubjectId, TokenService,
};

use crate::digest::{is_md5_hex, key_response};
use crate::username::WebUsername;

/// Settings of the scheme.
#[derive(Debug, Clone)]
pub struct KeySchemeConfig {
    /// How long a key lives (300 s).
    pub key_ttl: Duration,
    /// Answer key requests for unknown users with 404 instead of a decoy key.
    pub reveal_unknown_users: bool,
    /// The shared rate limits.
    pub limits: Limits,
}

impl Default for KeySchemeConfig {
    fn default() -> Self {
        Self {
            key_ttl: Duration::from_secs(300),
            reveal_unknown_users: false,
            limits: Limits::default(),
        }
    }
}

/// Why a request did not succeed. The gateway turns each into the SDKs' result
/// code and an HTTP status (its `errors` module); nothing here knows either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Malformed input. Nothing was changed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Wrong hash, password or token, or no live key.
    #[error("wrong credentials")]
    WrongCredentials,
    /// The user is disabled.
    #[error("account disabled")]
    Disabled,
    /// No such user; only when revealing unknown users is switched on.
    #[error("invalid username")]
    UnknownUser,
    /// A rate limit was hit.
    #[error("too many attempts")]
    Throttled(Throttled),
    /// The access token has expired.
    #[error("token expired")]
    TokenExpired,
    /// The store is unreachable.
    #[error("store unavailable")]
    Unavailable,
    /// Something unexpected.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(reason) => {
                tracing::error!(%reason, "store unavailable");
                Failure::Unavailable
            }
            StoreError::Protocol(reason) | StoreError::Config(reason) => Failure::Internal(reason),
        }
    }
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// The user's display name.
    pub display_name: String,
    /// The new session's tokens.
    pub tokens: IssuedTokens,
}

type Outcome<T> = Result<T, Failure>;

/// The scheme, ready to serve any transport.
#[derive(Clone)]
pub struct KeyScheme {
    store: Arc<dyn Store>,
    keys: Keys,
    addresses: AddressLimiter,
    keyring: Keyring,
    /// The subkey keys are derived under ([`KeyScheme::key_for`]).
    key_mac: MacKey,
    tokens: TokenService,
    config: KeySchemeConfig,
    funnel: Funnel,
}

impl std::fmt::Debug for KeyScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyScheme")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

const KEY: &str = "login-key";
const REQUESTS: &str = "key-requests";
const GUESSES: &str = "guesses";
const IP_COUNTER: &str = "login";

fn parse(username: &str) -> Outcome<WebUsername> {
    WebUsername::parse(username).map_err(|e| Failure::BadRequest(e.to_string()))
}

impl KeyScheme {
    /// The scheme on the shared services.
    pub fn new(
        store: Arc<dyn Store>,
        keys: Keys,
        tokens: TokenService,
        directory: &Directory,
        config: KeySchemeConfig,
    ) -> Self {
        Self {
            keyring: directory.keyring().clone(),
            key_mac: directory.keyring().mac_key("one-time login key"),
            store,
            addresses: AddressLimiter::new(keys.clone(), config.limits.per_ip),
            keys,
            tokens,
            config,
            funnel: Funnel::new(ONE_TIME_KEY),
        }
    }

    /// Reports funnel events to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.funnel = self.funnel.observed_by(observer);
        self
    }

    /// Reports the funnel stage a failure stands for.
    fn failed<T>(&self, f: Failure) -> Outcome<T> {
        match &f {
            Failure::Throttled(_) => self.funnel.saw(Stage::Throttled),
            Failure::TokenExpired => self.funnel.saw(Stage::Expired),
            Failure::WrongCredentials | Failure::Disabled | Failure::UnknownUser => {
                self.funnel.saw(Stage::Failed)
            }
            _ => {}
        }
        Err(f)
    }

    /// The scheme's settings.
    pub fn config(&self) -> &KeySchemeConfig {
        &self.config
    }

    fn key_for(&self, who: &WebUsername, nonce: &[u8]) -> String {
        let mac = self
            .key_mac
            .mac(&[who.application().as_bytes(), who.user().as_bytes(), nonce]);
        hex::encode(&mac[..16])
    }

    /// The keys of `who`, for every key a request names (their tag is a digest,
    /// computed once here).
    fn user_keys(&self, who: &WebUsername) -> UserKeys {
        self.keys.user_keys(who.application(), who.user())
    }

    /// Queues the count of a login-related request from `ip`.
    fn count_address(&self, batch: &mut Batch, ip: &str) -> AddressCount {
        self.addresses.count_in(batch, IP_COUNTER, ip)
    }

    /// Fails when the address has gone past its limit.
    fn address_verdict(&self, counted: AddressCount) -> Outcome<()> {
        self.addresses.verdict(counted)?.map_err(Failure::Throttled)
    }

    /// Runs `batch`, in which `counted` was queued, and fails when the address
    /// has gone past its limit.
    async fn run_counted(&self, batch: Batch, counted: AddressCount) -> Outcome<()> {
        self.store.run(batch).await?;
        self.address_verdict(counted)
    }

    /// Only the per-address count, for a request with nothing else to read.
    async fn count_only(&self, ip: &str) -> Outcome<()> {
        let mut batch = Batch::new();
        let counted = self.count_address(&mut batch, ip);
        self.run_counted(batch, counted).await
    }

    /// Queues a look at the username's wrong-guess counter, when its limit is on
    /// (with the limit off there is nothing to read).
    fn peek_guesses(&self, batch: &mut Batch, keys: &UserKeys) -> Option<Handle<Count>> {
        let limit = self.config.limits.guesses_per_user;
        (!limit.is_off()).then(|| batch.peek_count(keys.key(GUESSES)))
    }

    fn check_guesses(&self, guesses: Option<Handle<Count>>) -> Outcome<()> {
        let Some(guesses) = guesses else {
            return Ok(());
        };
        let Count { count, reset } = guesses.get()?;
        let limit = self.config.limits.guesses_per_user;
        // Past the limit every attempt is refused, the right one too.
        if count >= limit.count {
            return Err(Failure::Throttled(Throttled { retry_after: reset }));
        }
        Ok(())
    }

    /// Counts a wrong guess against the username. A repeated identical wrong
    /// password (`repeat` is its keyed digest) counts once per window, since some
    /// clients resend refused requests; every key attempt counts, keys being single use.
    async fn wrong_guess(&self, keys: &UserKeys, repeat: Option<String>) -> Outcome<()> {
        let limit = self.config.limits.guesses_per_user;
        if !limit.is_off() {
            let key = keys.key(GUESSES);
            let mut batch = Batch::new();
            let counted = match repeat {
                Some(member) => {
                    batch.count_unless_seen(key, keys.key("guessed"), member, limit.window)
                }
                None => batch.count(key, limit.window),
            };
            self.store.run(batch).await?;
            counted.get()?;
        }
        Ok(())
    }

    /// Issues a key for `username`: a decoy for unknown users unless revealing is on.
    pub async fn request_key(&self, username: &str, ip: &str) -> Outcome<String> {
        match self.issue_key(username, ip).await {
            Ok(key) => {
                self.funnel.saw(Stage::Issued);
                Ok(key)
            }
            Err(f) => self.failed(f),
        }
    }

    async fn issue_key(&self, username: &str, ip: &str) -> Outcome<String> {
        let who = parse(username)?;
        let keys = self.user_keys(&who);
        let nonce = random_bytes::<16>();
        let limit = self.config.limits.requests_per_user;
        let mut batch = Batch::new();
        let counted = self.count_address(&mut batch, ip);
        let written = batch.put_under_limit(
            keys.key(REQUESTS),
            limit.window,
            limit.count,
            keys.key(KEY),
            nonce.to_vec(),
            self.config.key_ttl,
        );
        let record = self
            .config
            .reveal_unknown_users
            .then(|| login_record_in(&mut batch, &keys));
        self.run_counted(batch, counted).await?;
        let written = written.get()?;
        if !written.written {
            return Err(Failure::Throttled(Throttled {
                retry_after: written.count.reset,
            }));
        }
        if let Some(record) = record {
            if record.get()?.is_none() {
                return Err(Failure::UnknownUser);
            }
        }
        Ok(self.key_for(&who, &nonce))
    }

    /// Logs in with `hash = MD5(key|HA1)`, consuming the key whatever the outcome.
    pub async fn login_with_key(&self, username: &str, hash: &str, ip: &str) -> Outcome<LoggedIn> {
        self.counted(self.key_login(username, hash, ip).await)
    }

    /// Reports a login's outcome to the funnel.
    fn counted(&self, outcome: Outcome<LoggedIn>) -> Outcome<LoggedIn> {
        match outcome {
            Ok(l) => {
                self.funnel.saw(Stage::Verified);
                Ok(l)
            }
            Err(f) => self.failed(f),
        }
    }

    async fn key_login(&self, username: &str, hash: &str, ip: &str) -> Outcome<LoggedIn> {
        let who = parse(username)?;
        if !is_md5_hex(hash) {
            return Err(Failure::BadRequest(
                "hash must be 32 hexadecimal digits".into(),
            ));
        }
        let keys = self.user_keys(&who);
        let mut batch = Batch::new();
        let counted = self.count_address(&mut batch, ip);
        let guesses = self.peek_guesses(&mut batch, &keys);
        let nonce = batch.take(keys.key(KEY));
        let record = login_record_in(&mut batch, &keys);
        self.run_counted(batch, counted).await?;
        self.check_guesses(guesses)?;
        let Some(nonce) = nonce.get()? else {
            // No live key: not a guess, nothing to compare.
            self.funnel.saw(Stage::Expired);
            return Err(Failure::WrongCredentials);
        };
        let record = record.get()?;
        let key = self.key_for(&who, &nonce);
        let expected = record
            .as_ref()
            .and_then(|r| r.ha1_sealed.as_deref().map(|s| (r, s)))
            .and_then(|(r, sealed)| self.keyring.open(sealed, r.credential_id.as_str()).ok())
            .map(|ha1| key_response(&key, &String::from_utf8_lossy(&ha1)));
        let matches = match &expected {
            Some(e) => ct_eq(e.as_bytes(), hash.to_ascii_lowercase().as_bytes()),
            None => {
                // Compare against something anyway, so unknown users cost the same.
                let _ = ct_eq(key.as_bytes(), hash.as_bytes());
                false
            }
        };
        match record {
            Some(r) if matches => self.start_session(&who, &r).await,
            _ => {
                self.funnel.saw(Stage::Burnt);
                self.wrong_guess(&keys, None).await?;
                Err(Failure::WrongCredentials)
            }
        }
    }

    /// Logs in with the password, or with its HA1 (32 hex digits) as some SDKs send.
    pub async fn login_with_password(
        &self,
        username: &str,
        secret: &str,
        ip: &str,
    ) -> Outcome<LoggedIn> {
        self.counted(self.password_login(username, secret, ip).await)
    }

    async fn password_login(&self, username: &str, secret: &str, ip: &str) -> Outcome<LoggedIn> {
        let who = parse(username)?;
        if secret.is_empty() || secret.len() > password::MAX_PASSWORD_LEN {
            return Err(Failure::BadRequest(
                "password must be 1 to 1024 bytes".into(),
            ));
        }
        let keys = self.user_keys(&who);
        let mut batch = Batch::new();
        let counted = self.count_address(&mut batch, ip);
        let guesses = self.peek_guesses(&mut batch, &keys);
        let record = login_record_in(&mut batch, &keys);
        self.run_counted(batch, counted).await?;
        self.check_guesses(guesses)?;
        let record = record.get()?;
        let by_ha1 = is_md5_hex(secret)
            && record
                .as_ref()
                .and_then(|r| r.ha1_sealed.as_deref().map(|s| (r, s)))
                .and_then(|(r, sealed)| self.keyring.open(sealed, r.credential_id.as_str()).ok())
                .is_some_and(|ha1| ct_eq(&ha1, secret.to_ascii_lowercase().as_bytes()));
        let matches = by_ha1 || {
            let phc = record
                .as_ref()
                .and_then(|r| r.password_hash.clone())
                .unwrap_or_else(|| password::decoy().to_owned());
            password::verify_async(secret.to_owned(), phc).await
        };
        match record {
            Some(r) if matches => self.start_session(&who, &r).await,
            _ => {
                let repeat = hex::encode(self.keyring.mac(
                    "wrong password",
                    &[
                        who.application().as_bytes(),
                        who.user().as_bytes(),
                        secret.as_bytes(),
                    ],
                ));
                self.wrong_guess(&keys, Some(repeat)).await?;
                Err(Failure::WrongCredentials)
            }
        }
    }

    /// Logs in with a live access token of the same user, starting a new session.
    pub async fn login_with_token(
        &self,
        username: &str,
        access_token: &str,
        ip: &str,
    ) -> Outcome<LoggedIn> {
        self.counted(self.token_login(username, access_token, ip).await)
    }

    async fn token_login(&self, username: &str, access_token: &str, ip: &str) -> Outcome<LoggedIn> {
        let who = parse(username)?;
        self.count_only(ip).await?;
        let principal = match self.tokens.check(access_token).await? {
            Check::Valid(p) => p,
            Check::Expired => return Err(Failure::TokenExpired),
            Check::Invalid => return Err(Failure::WrongCredentials),
        };
        if principal.subject.scheme != Scheme::OneTimeKey
            || principal.subject.username != who.to_string()
        {
            return Err(Failure::WrongCredentials);
        }
        let mut batch = Batch::new();
        let record = login_record_in(&mut batch, &self.user_keys(&who));
        self.store.run(batch).await?;
        match record.get()? {
            Some(r) => self.start_session(&who, &r).await,
            None => Err(Failure::WrongCredentials),
        }
    }

    /// Rotates a refresh token: new tokens, once; a reused token ends the session.
    pub async fn refresh(
        &self,
        username: &str,
        refresh_token: &str,
        ip: &str,
    ) -> Outcome<IssuedTokens> {
        let who = parse(username)?;
        self.count_only(ip).await?;
        match self.tokens.refresh(refresh_token).await? {
            Refresh::Rotated(tokens, before) => {
                if before.subject.scheme != Scheme::OneTimeKey
                    || before.subject.username != who.to_string()
                {
                    // A refresh token presented for someone else is treated as stolen.
                    self.tokens.revoke_session(&before.session_id).await?;
                    return Err(Failure::WrongCredentials);
                }
                Ok(tokens)
            }
            Refresh::Reused => {
                tracing::warn!(target: "authgate::audit", "refresh token reused; session revoked");
                Err(Failure::WrongCredentials)
            }
            Refresh::Invalid => Err(Failure::WrongCredentials),
        }
    }

    /// Ends the session of an access or refresh token.
    pub async fn logout(&self, token: &str) -> Outcome<bool> {
        Ok(self.tokens.revoke(token).await?)
    }

    async fn start_session(&self, who: &WebUsername, r: &LoginRecord) -> Outcome<LoggedIn> {
        if !r.enabled {
            return Err(Failure::Disabled);
        }
        let subject = Subject {
            id: SubjectId::User(r.user_id.clone()),
            username: who.canonical(),
            realm_id: r.realm_id.clone(),
            scheme: Scheme::OneTimeKey,
            role: Role::User,
        };
        let tokens = self.tokens.issue(&subject, None).await?;
        Ok(LoggedIn {
            display_name: r.display_name.clone(),
            tokens,
        })
    }
}
