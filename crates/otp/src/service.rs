//! Code requests and the exchanges for an account member, on the store.
//!
//! A request stores the code's keyed digest under the username's own hash tag
//! with a TTL, replacing the earlier one and clearing its try counter, in the
//! same atomic op that counts the request towards its per-username limit. The
//! request never asks whether the username exists: every username takes the
//! same path, and the delivery side, off the request path, resolves the
//! recipient ([`OtpScheme::recipients`]) and sends nothing for unknown, disabled
//! or throttled ones. So the answer, the store traffic and the timing are alike.

use std::sync::Arc;
use std::time::Duration;

use authgate_core::crypto::{ct_eq, Keyring, MacKey};
use authgate_core::directory::{Credential, Directory, DirectoryError, PasswordProfile, UserInfo};
use authgate_core::funnel::{Funnel, Observer, Stage, ONE_TIME_PASSWORD};
use authgate_core::ids::{CredentialId, ProfileId, UserId};
use authgate_core::limits::{Limits, Throttled};
use authgate_core::password;
use authgate_core::store::{
    Batch, CodeCheck, Count, GuessLimit, Handle, Keys, Limited, Mapped, Store, StoreError, StoreExt,
};

use crate::code::{OneTimeCode, Purpose};

mod exchange;

/// Settings of the scheme.
#[derive(Debug, Clone)]
pub struct OtpConfig {
    /// How long a code lives (600 s).
    pub ttl: Duration,
    /// Wrong tries that burn a code (5).
    pub max_tries: u64,
    /// The shared rate limits.
    pub limits: Limits,
}

impl Default for OtpConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(600),
            max_tries: 5,
            limits: Limits::default(),
        }
    }
}

/// Why a request or exchange did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum OtpError {
    /// No such password profile.
    #[error("password profile not found")]
    ProfileNotFound,
    /// The profile does not allow one-time password tokens.
    #[error("one-time password tokens are not enabled for this password profile")]
    NotEnabled,
    /// Malformed input.
    #[error("{0}")]
    Invalid(String),
    /// Wrong code, password or username; no detail is given on purpose.
    #[error("authentication failed")]
    Unauthorized,
    /// Too many wrong guesses for this username.
    #[error("too many attempts")]
    Throttled(Throttled),
    /// The store is unreachable.
    #[error("store unavailable")]
    Unavailable,
    /// Something unexpected.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for OtpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(reason) => {
                tracing::error!(%reason, "store unavailable");
                OtpError::Unavailable
            }
            StoreError::Protocol(reason) | StoreError::Config(reason) => OtpError::Internal(reason),
        }
    }
}

impl From<DirectoryError> for OtpError {
    fn from(e: DirectoryError) -> Self {
        match e {
            DirectoryError::Store(s) => s.into(),
            DirectoryError::NotFound(_) => OtpError::Unauthorized,
            DirectoryError::Invalid(m) | DirectoryError::Conflict(m) => OtpError::Invalid(m),
        }
    }
}

/// A code issued to a known user, to be delivered.
#[derive(Debug, Clone)]
pub struct IssuedCode {
    /// The code, in clear: only the delivery may see it.
    pub code: OneTimeCode,
    /// What it is for.
    pub purpose: Purpose,
    /// The profile.
    pub profile: PasswordProfile,
    /// The user's credential in that profile.
    pub credential: Credential,
    /// The user.
    pub user: UserInfo,
}

/// A code request the scheme accepted, before anyone knows whether the
/// username exists. It travels through the outbox to the delivery worker.
#[derive(Debug, Clone)]
pub struct CodeRequest {
    /// The code, in clear: only the outbox and the delivery may see it.
    pub code: OneTimeCode,
    /// What it is for.
    pub purpose: Purpose,
    /// The password profile.
    pub profile_id: ProfileId,
    /// The username in its canonical form.
    pub username: String,
}

/// An authenticated account member.
#[derive(Debug, Clone)]
pub struct Member {
    /// The user (the member).
    pub user: UserInfo,
    /// The credential they authenticated with.
    pub credential: Credential,
}

/// The scheme.
#[derive(Clone)]
pub struct OtpScheme {
    store: Arc<dyn Store>,
    keys: Keys,
    keyring: Keyring,
    /// The subkey codes are digested under at rest ([`OtpScheme::digest`]).
    code_mac: MacKey,
    directory: Directory,
    config: OtpConfig,
    funnel: Funnel,
}

impl std::fmt::Debug for OtpScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtpScheme")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

const CODE: &str = "otp";
const GUESSED: &str = "otp-guessed";
const REQUESTS: &str = "otp-requests";
const GUESSES: &str = "otp-guesses";

impl OtpScheme {
    /// The scheme on the shared services.
    pub fn new(store: Arc<dyn Store>, keys: Keys, directory: Directory, config: OtpConfig) -> Self {
        Self {
            keyring: directory.keyring().clone(),
            code_mac: directory.keyring().mac_key("one-time password token"),
            store,
            keys,
            directory,
            config,
            funnel: Funnel::new(ONE_TIME_PASSWORD),
        }
    }

    /// Reports funnel events to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.funnel = self.funnel.observed_by(observer);
        self
    }

    /// Reports an exchange's outcome to the funnel.
    fn counted<T>(&self, outcome: Result<T, OtpError>) -> Result<T, OtpError> {
        match &outcome {
            Ok(_) => self.funnel.saw(Stage::Verified),
            Err(OtpError::Throttled(_)) => self.funnel.saw(Stage::Throttled),
            Err(OtpError::Unauthorized) => self.funnel.saw(Stage::Failed),
            Err(_) => {}
        }
        outcome
    }

    /// The scheme's settings.
    pub fn config(&self) -> &OtpConfig {
        &self.config
    }

    fn digest(&self, profile_id: &ProfileId, username: &str, code: &OneTimeCode) -> String {
        hex::encode(self.code_mac.mac(&[
            profile_id.as_str().as_bytes(),
            username.as_bytes(),
            code.as_str().as_bytes(),
        ]))
    }

    fn key(&self, profile_id: &ProfileId, username: &str, what: &str) -> String {
        self.keys.user(profile_id.as_str(), username, what)
    }

    /// The canonical username, or the raw one when it cannot be a username here
    /// (it is then simply unknown: no hint in the answer).
    fn username(profile: &PasswordProfile, raw: &str) -> Result<String, OtpError> {
        if raw.trim().is_empty() || raw.len() > 255 {
            return Err(OtpError::Invalid(
                "username must be 1 to 255 characters".into(),
            ));
        }
        Ok(Directory::check_username(profile, raw).unwrap_or_else(|_| raw.trim().to_owned()))
    }

    /// Checks that a profile, as read by [`Directory::profile_in`], exists and
    /// allows codes.
    pub fn requestable_profile(
        found: Handle<Option<PasswordProfile>>,
    ) -> Result<PasswordProfile, OtpError> {
        match found.get()? {
            Some(p) if p.enable_one_time_password_token => Ok(p),
            Some(_) => Err(OtpError::NotEnabled),
            None => Err(OtpError::ProfileNotFound),
        }
    }

    /// Prepares a code request: a fresh code, and the write of its digest queued
    /// on `batch`, replacing the earlier code while the username is within its
    /// request limit. Nothing here depends on whether the username exists: the
    /// delivery side finds that out ([`OtpScheme::recipients`]), so the request
    /// costs the same store work and time for every username.
    pub fn prepare_request(
        &self,
        batch: &mut Batch,
        profile: &PasswordProfile,
        username: &str,
        purpose: Purpose,
    ) -> Result<(CodeRequest, Handle<Limited>), OtpError> {
        if !profile.enable_one_time_password_token {
            return Err(OtpError::NotEnabled);
        }
        let username = Self::username(profile, username)?;
        let code = OneTimeCode::generate();
        let limit = self.config.limits.requests_per_user;
        let keys = self.keys.user_keys(profile.id.as_str(), &username);
        let stored = batch.put_under_limit(
            keys.key(REQUESTS),
            limit.window,
            limit.count,
            keys.key(CODE),
            self.digest(&profile.id, &username, &code).into_bytes(),
            self.config.ttl,
        );
        let request = CodeRequest {
            code,
            purpose,
            profile_id: profile.id.clone(),
            username,
        };
        Ok((request, stored))
    }

    /// Whether a [`OtpScheme::prepare_request`]'s code was stored (false: the
    /// username is over its limit, and the code is void).
    pub fn request_stored(&self, stored: Handle<Limited>) -> Result<bool, OtpError> {
        if stored.get()?.written {
            return Ok(true);
        }
        self.request_throttled();
        Ok(false)
    }

    /// Records a code request that a limit stopped before anything was stored or
    /// sent: the username's ([`OtpScheme::request_stored`]), or one the caller
    /// keeps, such as the gateway's per-address limit, where the caller drops the
    /// prepared batch unsent and still answers as usual.
    pub fn request_throttled(&self) {
        tracing::info!(target: "authgate::audit", "one-time password token request throttled");
        self.funnel.saw(Stage::Throttled);
    }

    /// Whether `code` is still the live code of (profile, username): not
    /// replaced by a later request, used, burnt or expired. A code that is not
    /// live is not worth delivering.
    pub async fn is_live(
        &self,
        profile_id: &ProfileId,
        username: &str,
        code: &OneTimeCode,
    ) -> Result<bool, OtpError> {
        let mut batch = Batch::new();
        let live = self.live_in(&mut batch, profile_id, username, code);
        self.store.run(batch).await?;
        Ok(live.get()?)
    }

    /// Queues the check that `code` is still the live code of (profile, username).
    fn live_in(
        &self,
        batch: &mut Batch,
        profile_id: &ProfileId,
        username: &str,
        code: &OneTimeCode,
    ) -> Mapped<Option<Vec<u8>>, bool> {
        let want = self.digest(profile_id, username, code);
        batch
            .get(self.key(profile_id, username, CODE))
            .map(move |stored| {
                // The stored value starts with the live code's digest (wrong tries follow it).
                stored.is_some_and(|v| {
                    v.get(..want.len())
                        .is_some_and(|c| ct_eq(c, want.as_bytes()))
                })
            })
    }

    /// Who each requested code goes to: the user behind the username, when the
    /// code is still live, the profile still allows codes, and the user exists
    /// and is enabled; `None` otherwise (an unknown username, a throttled or
    /// replaced request, a disabled user), and nothing is to be sent. At most
    /// three store round trips whatever the number of requests: the codes,
    /// profiles and names; then the credentials; then the users.
    pub async fn recipients(
        &self,
        requests: &[CodeRequest],
    ) -> Result<Vec<Option<IssuedCode>>, OtpError> {
        let n = requests.len();
        let mut profile_ids: Vec<&ProfileId> = requests.iter().map(|r| &r.profile_id).collect();
        profile_ids.sort_unstable();
        profile_ids.dedup();
        let mut batch = Batch::new();
        let first: Vec<_> = requests
            .iter()
            .map(|r| {
                (
                    self.live_in(&mut batch, &r.profile_id, &r.username, &r.code),
                    self.directory
                        .credential_id_in(&mut batch, &r.profile_id, &r.username),
                )
            })
            .collect();
        let found: Vec<_> = profile_ids
            .iter()
            .map(|id| self.directory.profile_in(&mut batch, id))
            .collect();
        self.store.run(batch).await?;
        let mut stage = Vec::with_capacity(n);
        for (live, id) in first {
            let id = id.get()?;
            stage.push(if live.get()? { id } else { None });
        }
        let mut profiles = std::collections::HashMap::new();
        for (id, found) in profile_ids.into_iter().zip(found) {
            if let Some(p) = found.get()?.filter(|p| p.enable_one_time_password_token) {
                profiles.insert(id, p);
            }
        }
        // Live codes of known usernames in profiles that still allow codes.
        let wanted: Vec<(usize, CredentialId)> = stage
            .into_iter()
            .enumerate()
            .filter_map(|(i, id)| {
                let id = id?;
                profiles
                    .contains_key(&requests[i].profile_id)
                    .then_some((i, id))
            })
            .collect();
        let mut out: Vec<Option<IssuedCode>> = vec![None; n];
        if wanted.is_empty() {
            return Ok(out);
        }
        let mut batch = Batch::new();
        let found: Vec<_> = wanted
            .iter()
            .map(|(i, id)| (*i, self.directory.credential_in(&mut batch, id)))
            .collect();
        self.store.run(batch).await?;
        let mut credentials = Vec::new();
        for (i, found) in found {
            if let Some(c) = found.get()? {
                credentials.push((i, c));
            }
        }
        if credentials.is_empty() {
            return Ok(out);
        }
        let mut batch = Batch::new();
        let users: Vec<_> = credentials
            .iter()
            .map(|(_, c)| self.directory.user_in(&mut batch, &c.user_id))
            .collect();
        self.store.run(batch).await?;
        for ((i, credential), user) in credentials.into_iter().zip(users) {
            let Some(user) = user.get()?.filter(|u| u.enabled) else {
                continue;
            };
            let r = &requests[i];
            self.funnel.saw(Stage::Issued);
            out[i] = Some(IssuedCode {
                code: r.code.clone(),
                purpose: r.purpose,
                profile: profiles[&r.profile_id].clone(),
                credential,
                user,
            });
        }
        Ok(out)
    }
}
