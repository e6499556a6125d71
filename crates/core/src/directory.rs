//! The directory: one authentication realm, its password profiles, users
//! (user authentication info) and their credentials (user authentication password
//! profile info), kept as JSON documents in the store.
//!
//! Passwords are kept as Argon2id hashes. A profile exposed to the one-time login
//! key scheme (`voximplant_application` set) also keeps each password's HA1, sealed
//! with the gateway's keyring, and a denormalised [`LoginRecord`] per user under a
//! key of that user's own hash tag, so a login reads one slot in one round trip.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::crypto::Keyring;
use crate::ids::{AccountId, CredentialId, IdError, ProfileId, RealmId, UserId};
use crate::password;
use crate::recent::Recent;
use crate::store::{Batch, Handle, Keys, Op, Reply, Store, StoreError, StoreExt};
use crate::tokens::TokenService;

/// Computes the HA1 of (username, password) for profiles exposed to the key scheme.
pub type Ha1Fn = fn(&str, &str) -> String;

/// What went wrong in a directory operation.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// No such object.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The object would clash with an existing one.
    #[error("{0}")]
    Conflict(String),
    /// A field's value is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An id that does not parse names no record: it is not found, as an unknown
/// one is not (the gateway's edges answer both alike).
impl From<IdError> for DirectoryError {
    fn from(e: IdError) -> Self {
        DirectoryError::NotFound(e.what())
    }
}

type Result<T> = std::result::Result<T, DirectoryError>;

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
}

/// Who may change their own directory records with an account management token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SelfManagement {
    /// Members may not change their records.
    #[default]
    Disabled,
    /// Members may update their own records.
    UpdateOnly,
}

/// Account authentication settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// The realm account members authenticate in.
    pub realm_id: RealmId,
    /// Whether members may update their own records.
    pub account_member_self_management: SelfManagement,
    /// Lifetime of account management authentication tokens.
    pub account_management_authentication_token_timeout_secs: u64,
}

/// How usernames of a profile look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UsernameFormat {
    /// Any non-empty string.
    #[default]
    Any,
    /// An email address.
    Email,
}

/// A password profile: a namespace of usernames with passwords.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordProfile {
    /// Id.
    pub id: ProfileId,
    /// Display name.
    pub name: String,
    /// How usernames look.
    pub username_format: UsernameFormat,
    /// Whether one-time password tokens may be requested.
    pub enable_one_time_password_token: bool,
    /// The web phone application (`app.account`) whose users log in with this profile.
    pub voximplant_application: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last update (RFC 3339).
    pub updated_at: String,
}

/// The editable fields of a password profile.
#[derive(Debug, Clone, Default)]
pub struct ProfileChanges {
    /// New name.
    pub name: Option<String>,
    /// New username format.
    pub username_format: Option<UsernameFormat>,
    /// New one-time password switch.
    pub enable_one_time_password_token: Option<bool>,
    /// New application: `Some(None)` clears it.
    pub voximplant_application: Option<Option<String>>,
}

/// A directory user (user authentication info).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Id (also the account member id).
    pub id: UserId,
    /// Full name, shown as the display name.
    pub name: String,
    /// Email address.
    pub email: Option<String>,
    /// Whether the user may log in.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last update (RFC 3339).
    pub updated_at: String,
}

fn yes() -> bool {
    true
}

/// A user's username and password in one profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Id.
    pub id: CredentialId,
    /// The user it belongs to.
    pub user_id: UserId,
    /// The profile it is in.
    pub password_profile_id: ProfileId,
    /// The username, unique within the profile.
    pub username: String,
    /// Argon2id PHC string of the password.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// HA1 of the password, sealed; present when the profile was exposed to the key scheme when set.
    #[serde(default)]
    pub ha1_sealed: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last update (RFC 3339).
    pub updated_at: String,
}

/// What the key scheme reads at login, kept under the user's own hash tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRecord {
    /// The credential.
    pub credential_id: CredentialId,
    /// The directory user.
    pub user_id: UserId,
    /// The realm.
    pub realm_id: RealmId,
    /// The username within the profile.
    pub username: String,
    /// The user's display name.
    pub display_name: String,
    /// Whether the user may log in.
    pub enabled: bool,
    /// Argon2id PHC string of the password.
    pub password_hash: Option<String>,
    /// Sealed HA1 (context: the credential id).
    pub ha1_sealed: Option<String>,
}

/// The directory service.
#[derive(Clone)]
pub struct Directory {
    store: Arc<dyn Store>,
    keys: Keys,
    keyring: Keyring,
    tokens: TokenService,
    ha1: Ha1Fn,
    realm_id: RealmId,
    default_token_timeout: u64,
    profiles: Recent<Arc<PasswordProfile>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("realm_id", &self.realm_id)
            .finish_non_exhaustive()
    }
}

/// How long a replica may answer from a password profile it read, without
/// reading it again (see [`Directory::recent_profile`]).
pub const PROFILE_MEMORY: Duration = Duration::from_secs(1);

const PROFILES: &str = "profiles";
const USERS: &str = "users";
const CREDENTIALS: &str = "credentials";
const NAMES: &str = "names";
const APPS: &str = "apps";
const SETTINGS: &str = "settings";
/// Member id to personal account id.
const ACCOUNTS: &str = "accounts";

/// The key scheme's record key for (application, username).
pub fn login_record_key(keys: &Keys, application: &str, username: &str) -> String {
    keys.user(application, username, "record")
}

/// Queues the read of the key scheme's record of (application, username).
pub fn login_record_in(
    keys: &Keys,
    batch: &mut Batch,
    application: &str,
    username: &str,
) -> Handle<Option<LoginRecord>> {
    batch.push(
        Op::Get(login_record_key(keys, application, username)),
        |reply| {
            reply
                .into_value()?
                .map(|bytes| {
                    Directory::parse_login_record(&bytes)
                        .map_err(|e| StoreError::Protocol(e.to_string()))
                })
                .transpose()
        },
    )
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| DirectoryError::Store(StoreError::Protocol(format!("bad document: {e}"))))
}

/// An id the store holds as a value (an index's entry), read as any id is.
fn stored_id<T: std::str::FromStr<Err = IdError>>(
    bytes: &[u8],
) -> std::result::Result<T, StoreError> {
    String::from_utf8_lossy(bytes)
        .parse()
        .map_err(|e: IdError| StoreError::Protocol(format!("bad index entry: {e}")))
}

fn check_text(field: &str, value: &str, max: usize) -> Result<String> {
    let v = value.trim();
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(DirectoryError::Invalid(format!(
            "{field} must be 1 to {max} characters without control characters"
        )));
    }
    Ok(v.to_owned())
}

fn check_email(value: &str) -> Result<String> {
    let v = check_text("email", value, 254)?;
    match v.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') && !v.contains(' ') => {
            Ok(v)
        }
        _ => Err(DirectoryError::Invalid(
            "email must be an email address".into(),
        )),
    }
}

/// Checks a web phone application name: `app.account`, lowercase letters, digits and dashes.
pub fn check_application(value: &str) -> Result<String> {
    let v = value.trim().to_ascii_lowercase();
    let parts: Vec<&str> = v.split('.').collect();
    let ok = parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 63
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(v)
    } else {
        Err(DirectoryError::Invalid(
            "voximplant_application must look like app.account (letters, digits, dashes)".into(),
        ))
    }
}

fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < password::MIN_PASSWORD_LEN || password.len() > password::MAX_PASSWORD_LEN {
        return Err(DirectoryError::Invalid(format!(
            "password must be at least {} characters (and at most {} bytes)",
            password::MIN_PASSWORD_LEN,
            password::MAX_PASSWORD_LEN
        )));
    }
    Ok(())
}

impl Directory {
    /// Opens the directory, creating the realm on first use (shared by all replicas).
    pub async fn open(
        store: Arc<dyn Store>,
        keys: Keys,
        keyring: Keyring,
        tokens: TokenService,
        ha1: Ha1Fn,
        default_token_timeout: u64,
    ) -> Result<Self> {
        let realm_key = keys.bootstrap("realm");
        let mut replies = store
            .exec(vec![
                Op::SetIfAbsent {
                    key: realm_key.clone(),
                    value: RealmId::new().as_str().as_bytes().to_vec(),
                    ttl: None,
                },
                Op::Get(realm_key),
            ])
            .await?;
        let realm_id = replies
            .pop()
            .and_then(|r| r.into_value().ok().flatten())
            .ok_or_else(|| {
                DirectoryError::Store(StoreError::Protocol("realm id missing".into()))
            })?;
        let realm_id = RealmId::parse(&String::from_utf8_lossy(&realm_id))
            .map_err(|e| DirectoryError::Store(StoreError::Protocol(e.to_string())))?;
        Ok(Self {
            store,
            keys,
            keyring,
            tokens,
            ha1,
            realm_id,
            default_token_timeout,
            profiles: Recent::new(PROFILE_MEMORY, 1_000),
        })
    }

    /// A profile this replica read within the last [`PROFILE_MEMORY`], for hot
    /// paths that can live with that much staleness (profiles change rarely, and
    /// the delivery side reads the profile again before sending anything).
    pub fn recent_profile(&self, id: &ProfileId) -> Option<Arc<PasswordProfile>> {
        self.profiles.get(id.as_str())
    }

    /// Remembers a profile just read (see [`Directory::recent_profile`]).
    pub fn remember_profile(&self, profile: Arc<PasswordProfile>) {
        self.profiles
            .put(profile.id.as_str().to_owned(), profile, None);
    }

    /// The authentication realm's id.
    pub fn realm_id(&self) -> &RealmId {
        &self.realm_id
    }

    /// The keyring that seals HA1s.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Fails with NotFound unless `realm` is this directory's realm.
    pub fn check_realm(&self, realm: &RealmId) -> Result<()> {
        if *realm == self.realm_id {
            Ok(())
        } else {
            Err(DirectoryError::NotFound(RealmId::WHAT))
        }
    }

    fn key(&self, name: &str) -> String {
        self.keys.directory(name)
    }

    async fn doc<T: for<'de> Deserialize<'de>>(
        &self,
        map: &str,
        id: &str,
        what: &'static str,
    ) -> Result<T> {
        let reply = self
            .store
            .exec(vec![Op::MapGet(self.key(map), id.to_owned())])
            .await?
            .pop();
        match reply.map(Reply::into_value).transpose()?.flatten() {
            Some(bytes) => from_json(&bytes),
            None => Err(DirectoryError::NotFound(what)),
        }
    }

    async fn docs<T: for<'de> Deserialize<'de>>(&self, map: &str) -> Result<Vec<T>> {
        let reply = self
            .store
            .exec(vec![Op::MapGetAll(self.key(map))])
            .await?
            .pop();
        let map: HashMap<String, Vec<u8>> =
            reply.map(Reply::into_map).transpose()?.unwrap_or_default();
        map.values().map(|v| from_json(v)).collect()
    }

    /// Queues the read of document `id` of `map`: `None` when there is none.
    fn doc_in<T>(&self, batch: &mut Batch, map: &str, id: &str) -> Handle<Option<T>>
    where
        T: for<'de> Deserialize<'de> + Send + 'static,
    {
        batch.push(Op::MapGet(self.key(map), id.to_owned()), |reply| {
            reply
                .into_value()?
                .map(|bytes| {
                    serde_json::from_slice(&bytes)
                        .map_err(|e| StoreError::Protocol(format!("bad document: {e}")))
                })
                .transpose()
        })
    }

    /// Queues the read of the settings (the defaults when none were ever saved).
    pub fn settings_in(&self, batch: &mut Batch) -> Handle<Settings> {
        let defaults = Settings {
            realm_id: self.realm_id.clone(),
            account_member_self_management: SelfManagement::Disabled,
            account_management_authentication_token_timeout_secs: self.default_token_timeout,
        };
        batch.push(Op::Get(self.key(SETTINGS)), move |reply| {
            match reply.into_value()? {
                Some(b) => serde_json::from_slice(&b)
                    .map_err(|e| StoreError::Protocol(format!("bad document: {e}"))),
                None => Ok(defaults),
            }
        })
    }

    /// Queues the read of a password profile.
    pub fn profile_in(&self, batch: &mut Batch, id: &ProfileId) -> Handle<Option<PasswordProfile>> {
        self.doc_in(batch, PROFILES, id.as_str())
    }

    /// Queues the read of a user.
    pub fn user_in(&self, batch: &mut Batch, id: &UserId) -> Handle<Option<UserInfo>> {
        self.doc_in(batch, USERS, id.as_str())
    }

    /// Queues the read of a credential.
    pub fn credential_in(
        &self,
        batch: &mut Batch,
        id: &CredentialId,
    ) -> Handle<Option<Credential>> {
        self.doc_in(batch, CREDENTIALS, id.as_str())
    }

    /// Queues the read of the id of the credential with `username` in a profile.
    pub fn credential_id_in(
        &self,
        batch: &mut Batch,
        profile_id: &ProfileId,
        username: &str,
    ) -> Handle<Option<CredentialId>> {
        let (index, field) = self.name_index(profile_id, username);
        batch.push(Op::MapGet(index, field), |reply| {
            reply.into_value()?.map(|b| stored_id(&b)).transpose()
        })
    }

    /// Queues the read of the personal account of member `user_id`.
    pub fn account_in(&self, batch: &mut Batch, user_id: &UserId) -> Handle<Option<AccountId>> {
        batch.push(
            Op::MapGet(self.key(ACCOUNTS), user_id.as_str().to_owned()),
            |reply| reply.into_value()?.map(|b| stored_id(&b)).transpose(),
        )
    }

    /// The personal account of member `user_id`, made now if they have none
    /// (their first account management token). Replicas racing to make it agree
    /// on one.
    pub async fn account(&self, user_id: &UserId) -> Result<AccountId> {
        let mut batch = Batch::new();
        let _made = batch.map_put_if_absent(
            self.key(ACCOUNTS),
            user_id.as_str().to_owned(),
            AccountId::new().as_str().as_bytes().to_vec(),
        );
        let id = self.account_in(&mut batch, user_id);
        self.store.run(batch).await?;
        id.get()?
            .ok_or_else(|| DirectoryError::Store(StoreError::Protocol("no account".into())))
    }

    /// The account authentication settings.
    pub async fn settings(&self) -> Result<Settings> {
        let mut batch = Batch::new();
        let settings = self.settings_in(&mut batch);
        self.store.run(batch).await?;
        Ok(settings.get()?)
    }

    /// Updates the settings.
    pub async fn update_settings(
        &self,
        self_management: Option<SelfManagement>,
        token_timeout_secs: Option<u64>,
    ) -> Result<Settings> {
        let mut s = self.settings().await?;
        if let Some(m) = self_management {
            s.account_member_self_management = m;
        }
        if let Some(t) = token_timeout_secs {
            if !(60..=31_536_000).contains(&t) {
                return Err(DirectoryError::Invalid(
                    "account_management_authentication_token_timeout_secs must be between 60 and 31536000".into(),
                ));
            }
            s.account_management_authentication_token_timeout_secs = t;
        }
        self.store
            .exec(vec![Op::Set {
                key: self.key(SETTINGS),
                value: to_json(&s),
                ttl: None,
            }])
            .await?;
        Ok(s)
    }

    // ---- password profiles ----

    /// Creates a password profile.
    pub async fn create_profile(
        &self,
        name: &str,
        username_format: UsernameFormat,
        enable_otp: bool,
        application: Option<&str>,
    ) -> Result<PasswordProfile> {
        let name = check_text("name", name, 255)?;
        let application = application.map(check_application).transpose()?;
        let ts = now();
        let profile = PasswordProfile {
            id: ProfileId::new(),
            name,
            username_format,
            enable_one_time_password_token: enable_otp,
            voximplant_application: application,
            created_at: ts.clone(),
            updated_at: ts,
        };
        if let Some(app) = &profile.voximplant_application {
            self.claim_application(app, &profile.id).await?;
        }
        self.put_profile(&profile).await?;
        Ok(profile)
    }

    async fn claim_application(&self, app: &str, profile_id: &ProfileId) -> Result<()> {
        let claimed = self
            .store
            .exec(vec![Op::MapSetIfAbsent(
                self.key(APPS),
                app.to_owned(),
                profile_id.as_str().as_bytes().to_vec(),
            )])
            .await?
            .pop()
            .map(Reply::into_flag)
            .transpose()?
            .unwrap_or(false);
        if claimed {
            Ok(())
        } else {
            Err(DirectoryError::Conflict(format!(
                "voximplant_application {app} is already used by another password profile"
            )))
        }
    }

    async fn put_profile(&self, p: &PasswordProfile) -> Result<()> {
        self.profiles.forget(p.id.as_str());
        self.store
            .exec(vec![Op::MapSet {
                key: self.key(PROFILES),
                fields: vec![(p.id.as_str().to_owned(), to_json(p))],
                ttl: None,
            }])
            .await?;
        Ok(())
    }

    /// A password profile.
    pub async fn profile(&self, id: &ProfileId) -> Result<PasswordProfile> {
        self.doc(PROFILES, id.as_str(), ProfileId::WHAT).await
    }

    /// All password profiles, oldest first.
    pub async fn profiles(&self) -> Result<Vec<PasswordProfile>> {
        let mut all: Vec<PasswordProfile> = self.docs(PROFILES).await?;
        all.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok(all)
    }

    /// Updates a password profile; a changed application moves its users' login records.
    pub async fn update_profile(
        &self,
        id: &ProfileId,
        changes: ProfileChanges,
    ) -> Result<PasswordProfile> {
        let mut p = self.profile(id).await?;
        let old_app = p.voximplant_application.clone();
        if let Some(name) = changes.name {
            p.name = check_text("name", &name, 255)?;
        }
        if let Some(f) = changes.username_format {
            p.username_format = f;
        }
        if let Some(e) = changes.enable_one_time_password_token {
            p.enable_one_time_password_token = e;
        }
        if let Some(app) = changes.voximplant_application {
            p.voximplant_application = app.as_deref().map(check_application).transpose()?;
        }
        if p.voximplant_application != old_app {
            if let Some(app) = &p.voximplant_application {
                self.claim_application(app, &p.id).await?;
            }
            if let Some(app) = &old_app {
                self.store
                    .exec(vec![Op::MapDelete(self.key(APPS), vec![app.clone()])])
                    .await?;
            }
        }
        p.updated_at = now();
        self.put_profile(&p).await?;
        if p.voximplant_application != old_app {
            for c in self
                .credentials_where(|c| c.password_profile_id == p.id)
                .await?
            {
                if let Some(app) = &old_app {
                    self.store
                        .exec(vec![Op::Delete(vec![login_record_key(
                            &self.keys,
                            app,
                            &c.username,
                        )])])
                        .await?;
                }
                self.sync_login_record(&c).await?;
            }
        }
        Ok(p)
    }

    /// Deletes a password profile and every credential in it.
    pub async fn delete_profile(&self, id: &ProfileId) -> Result<()> {
        let p = self.profile(id).await?;
        for c in self
            .credentials_where(|c| c.password_profile_id == p.id)
            .await?
        {
            self.delete_credential(&c.user_id, &c.id).await?;
        }
        self.profiles.forget(p.id.as_str());
        let mut ops = vec![Op::MapDelete(
            self.key(PROFILES),
            vec![p.id.as_str().to_owned()],
        )];
        if let Some(app) = &p.voximplant_application {
            ops.push(Op::MapDelete(self.key(APPS), vec![app.clone()]));
        }
        self.store.exec(ops).await?;
        Ok(())
    }

    /// The profile exposed to the key scheme as `application`, if any.
    pub async fn profile_for_application(
        &self,
        application: &str,
    ) -> Result<Option<PasswordProfile>> {
        let id = self
            .store
            .exec(vec![Op::MapGet(self.key(APPS), application.to_owned())])
            .await?
            .pop()
            .map(Reply::into_value)
            .transpose()?
            .flatten();
        match id {
            Some(id) => Ok(Some(self.profile(&stored_id(&id)?).await?)),
            None => Ok(None),
        }
    }

    // ---- users ----

    /// Creates a user.
    pub async fn create_user(&self, name: &str, email: Option<&str>) -> Result<UserInfo> {
        let ts = now();
        let user = UserInfo {
            id: UserId::new(),
            name: check_text("name", name, 255)?,
            email: email.map(check_email).transpose()?,
            enabled: true,
            created_at: ts.clone(),
            updated_at: ts,
        };
        self.put_user(&user).await?;
        Ok(user)
    }

    async fn put_user(&self, u: &UserInfo) -> Result<()> {
        self.store
            .exec(vec![Op::MapSet {
                key: self.key(USERS),
                fields: vec![(u.id.as_str().to_owned(), to_json(u))],
                ttl: None,
            }])
            .await?;
        Ok(())
    }

    /// A user.
    pub async fn user(&self, id: &UserId) -> Result<UserInfo> {
        self.doc(USERS, id.as_str(), UserId::WHAT).await
    }

    /// All users, oldest first.
    pub async fn users(&self) -> Result<Vec<UserInfo>> {
        let mut all: Vec<UserInfo> = self.docs(USERS).await?;
        all.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok(all)
    }

    /// Updates a user; a disabled user's sessions end.
    pub async fn update_user(
        &self,
        id: &UserId,
        name: Option<&str>,
        email: Option<Option<&str>>,
        enabled: Option<bool>,
    ) -> Result<UserInfo> {
        let mut u = self.user(id).await?;
        if let Some(n) = name {
            u.name = check_text("name", n, 255)?;
        }
        if let Some(e) = email {
            u.email = e.map(check_email).transpose()?;
        }
        let disabling = enabled == Some(false) && u.enabled;
        if let Some(e) = enabled {
            u.enabled = e;
        }
        u.updated_at = now();
        self.put_user(&u).await?;
        for c in self.credentials_where(|c| c.user_id == u.id).await? {
            self.sync_login_record(&c).await?;
        }
        if disabling {
            self.tokens.revoke_user(&u.id).await?;
        }
        Ok(u)
    }

    /// Deletes a user, their credentials and sessions.
    pub async fn delete_user(&self, id: &UserId) -> Result<()> {
        let u = self.user(id).await?;
        for c in self.credentials_where(|c| c.user_id == u.id).await? {
            self.delete_credential(&u.id, &c.id).await?;
        }
        self.store
            .exec(vec![Op::MapDelete(
                self.key(USERS),
                vec![u.id.as_str().to_owned()],
            )])
            .await?;
        self.tokens.revoke_user(&u.id).await?;
        Ok(())
    }

    // ---- credentials ----

    async fn credentials_where(
        &self,
        keep: impl Fn(&Credential) -> bool,
    ) -> Result<Vec<Credential>> {
        let mut all: Vec<Credential> = self.docs(CREDENTIALS).await?;
        all.retain(|c| keep(c));
        all.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok(all)
    }

    fn name_field(profile_id: &ProfileId, username: &str) -> String {
        format!("{profile_id}\u{0}{username}")
    }

    /// The canonical form of a username in `profile` (emails lowercase), or Invalid.
    pub fn check_username(profile: &PasswordProfile, username: &str) -> Result<String> {
        let u = check_text("username", username, 255)?;
        match profile.username_format {
            UsernameFormat::Email => check_email(&u).map(|e| e.to_lowercase()),
            UsernameFormat::Any => {
                if profile.voximplant_application.is_some() && u.contains('@') {
                    Err(DirectoryError::Invalid(
                        "usernames of a profile with voximplant_application cannot contain @"
                            .into(),
                    ))
                } else {
                    Ok(u)
                }
            }
        }
    }

    async fn secrets(
        &self,
        cred_id: &CredentialId,
        username: &str,
        password: &str,
        exposed: bool,
    ) -> (String, Option<String>) {
        let hash = password::hash_async(password.to_owned()).await;
        let ha1 = exposed.then(|| {
            self.keyring
                .seal((self.ha1)(username, password).as_bytes(), cred_id.as_str())
        });
        (hash, ha1)
    }

    /// Gives a user a username and password in a profile.
    pub async fn create_credential(
        &self,
        user_id: &UserId,
        profile_id: &ProfileId,
        username: &str,
        password: Option<&str>,
    ) -> Result<Credential> {
        self.user(user_id).await?;
        let profile = self.profile(profile_id).await?;
        let username = Self::check_username(&profile, username)?;
        if let Some(p) = password {
            check_password(p)?;
        }
        let id = CredentialId::new();
        let claimed = self
            .store
            .exec(vec![Op::MapSetIfAbsent(
                self.key(NAMES),
                Self::name_field(&profile.id, &username),
                id.as_str().as_bytes().to_vec(),
            )])
            .await?
            .pop()
            .map(Reply::into_flag)
            .transpose()?
            .unwrap_or(false);
        if !claimed {
            return Err(DirectoryError::Conflict(format!(
                "username {username} is already taken in this password profile"
            )));
        }
        let (password_hash, ha1_sealed) = match password {
            Some(p) => {
                let (h, a) = self
                    .secrets(&id, &username, p, profile.voximplant_application.is_some())
                    .await;
                (Some(h), a)
            }
            None => (None, None),
        };
        let ts = now();
        let cred = Credential {
            id,
            user_id: user_id.clone(),
            password_profile_id: profile.id.clone(),
            username,
            password_hash,
            ha1_sealed,
            created_at: ts.clone(),
            updated_at: ts,
        };
        self.put_credential(&cred).await?;
        self.sync_login_record(&cred).await?;
        Ok(cred)
    }

    async fn put_credential(&self, c: &Credential) -> Result<()> {
        self.store
            .exec(vec![Op::MapSet {
                key: self.key(CREDENTIALS),
                fields: vec![(c.id.as_str().to_owned(), to_json(c))],
                ttl: None,
            }])
            .await?;
        Ok(())
    }

    /// A user's credential.
    pub async fn credential(&self, user_id: &UserId, id: &CredentialId) -> Result<Credential> {
        let c: Credential = self
            .doc(CREDENTIALS, id.as_str(), CredentialId::WHAT)
            .await?;
        if c.user_id != *user_id {
            return Err(DirectoryError::NotFound(CredentialId::WHAT));
        }
        Ok(c)
    }

    /// A user's credentials.
    pub async fn credentials(&self, user_id: &UserId) -> Result<Vec<Credential>> {
        self.user(user_id).await?;
        self.credentials_where(|c| c.user_id == *user_id).await
    }

    /// The map and field under which the id of the credential with `username`
    /// in a profile is indexed (read by [`Directory::credential_id_in`]).
    pub fn name_index(&self, profile_id: &ProfileId, username: &str) -> (String, String) {
        (self.key(NAMES), Self::name_field(profile_id, username))
    }

    /// The credential with `username` in a profile.
    pub async fn credential_by_username(
        &self,
        profile_id: &ProfileId,
        username: &str,
    ) -> Result<Option<Credential>> {
        let id = self
            .store
            .exec(vec![Op::MapGet(
                self.key(NAMES),
                Self::name_field(profile_id, username),
            )])
            .await?
            .pop()
            .map(Reply::into_value)
            .transpose()?
            .flatten();
        // The second read happens for unknown usernames too (of an id that cannot
        // exist), so a lookup costs the same whether or not the username exists.
        let id = id.map(|b| String::from_utf8_lossy(&b).into_owned());
        let found = self
            .doc::<Credential>(CREDENTIALS, id.as_deref().unwrap_or("-"), "credential")
            .await;
        match (id, found) {
            (Some(_), Ok(c)) => Ok(Some(c)),
            (_, Ok(_)) | (_, Err(DirectoryError::NotFound(_))) => Ok(None),
            (_, Err(e)) => Err(e),
        }
    }

    /// Changes a credential's username and/or password. A new password replaces the
    /// hash and the HA1 and ends the user's sessions.
    pub async fn update_credential(
        &self,
        user_id: &UserId,
        id: &CredentialId,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<Credential> {
        let mut c = self.credential(user_id, id).await?;
        let profile = self.profile(&c.password_profile_id).await?;
        if let Some(p) = password {
            check_password(p)?;
        }
        let old_username = c.username.clone();
        if let Some(u) = username {
            let u = Self::check_username(&profile, u)?;
            if u != c.username {
                let claimed = self
                    .store
                    .exec(vec![Op::MapSetIfAbsent(
                        self.key(NAMES),
                        Self::name_field(&profile.id, &u),
                        c.id.as_str().as_bytes().to_vec(),
                    )])
                    .await?
                    .pop()
                    .map(Reply::into_flag)
                    .transpose()?
                    .unwrap_or(false);
                if !claimed {
                    return Err(DirectoryError::Conflict(format!(
                        "username {u} is already taken in this password profile"
                    )));
                }
                let mut ops = vec![Op::MapDelete(
                    self.key(NAMES),
                    vec![Self::name_field(&profile.id, &c.username)],
                )];
                if let Some(app) = &profile.voximplant_application {
                    ops.push(Op::Delete(vec![login_record_key(
                        &self.keys,
                        app,
                        &c.username,
                    )]));
                }
                self.store.exec(ops).await?;
                c.username = u;
                if password.is_none() {
                    // The HA1 covers the username: it is void now, until the next password.
                    c.ha1_sealed = None;
                }
            }
        }
        if let Some(p) = password {
            let (h, a) = self
                .secrets(
                    &c.id,
                    &c.username,
                    p,
                    profile.voximplant_application.is_some(),
                )
                .await;
            c.password_hash = Some(h);
            c.ha1_sealed = a;
        }
        c.updated_at = now();
        self.put_credential(&c).await?;
        self.sync_login_record(&c).await?;
        if password.is_some() || old_username != c.username {
            self.tokens.revoke_user(&c.user_id).await?;
        }
        Ok(c)
    }

    /// Deletes a credential.
    pub async fn delete_credential(&self, user_id: &UserId, id: &CredentialId) -> Result<()> {
        let c = self.credential(user_id, id).await?;
        let mut ops = vec![
            Op::MapDelete(self.key(CREDENTIALS), vec![c.id.as_str().to_owned()]),
            Op::MapDelete(
                self.key(NAMES),
                vec![Self::name_field(&c.password_profile_id, &c.username)],
            ),
        ];
        if let Ok(p) = self.profile(&c.password_profile_id).await {
            if let Some(app) = &p.voximplant_application {
                ops.push(Op::Delete(vec![login_record_key(
                    &self.keys,
                    app,
                    &c.username,
                )]));
            }
        }
        self.store.exec(ops).await?;
        Ok(())
    }

    /// Writes (or removes) the key scheme's login record of a credential.
    async fn sync_login_record(&self, c: &Credential) -> Result<()> {
        let profile = self.profile(&c.password_profile_id).await?;
        let Some(app) = &profile.voximplant_application else {
            return Ok(());
        };
        let user = self.user(&c.user_id).await?;
        let record = LoginRecord {
            credential_id: c.id.clone(),
            user_id: user.id.clone(),
            realm_id: self.realm_id.clone(),
            username: c.username.clone(),
            display_name: user.name.clone(),
            enabled: user.enabled,
            password_hash: c.password_hash.clone(),
            ha1_sealed: c.ha1_sealed.clone(),
        };
        self.store
            .exec(vec![Op::Set {
                key: login_record_key(&self.keys, app, &c.username),
                value: to_json(&record),
                ttl: None,
            }])
            .await?;
        Ok(())
    }

    /// Decodes a login record read by a scheme.
    pub fn parse_login_record(bytes: &[u8]) -> Result<LoginRecord> {
        from_json(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use secrecy::SecretString;

    // Ids as the gateway has always made them (UUIDs), and documents as the
    // version before typed ids stored them, byte for byte.
    const REALM: &str = "3f0c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b";
    const PROFILE: &str = "0b7d6c5a-4e3f-4a2b-9c1d-0e9f8a7b6c5d";
    const USER: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
    const CREDENTIAL: &str = "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f";
    const ACCOUNT: &str = "6e5d4c3b-2a19-4087-b6a5-f4e3d2c1b0a9";
    const OLD_PROFILE: &str = r#"{"id":"0b7d6c5a-4e3f-4a2b-9c1d-0e9f8a7b6c5d","name":"Customers","username_format":"any","enable_one_time_password_token":true,"voximplant_application":"shop.acme","created_at":"2023-09-05T14:53:01Z","updated_at":"2023-09-05T14:53:01Z"}"#;
    const OLD_USER: &str = r#"{"id":"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d","name":"Jo","email":"jo@example.com","enabled":true,"created_at":"2023-09-05T14:53:02Z","updated_at":"2023-09-05T14:53:02Z"}"#;
    const OLD_CREDENTIAL: &str = r#"{"id":"2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f","user_id":"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d","password_profile_id":"0b7d6c5a-4e3f-4a2b-9c1d-0e9f8a7b6c5d","username":"jo","password_hash":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g","ha1_sealed":null,"created_at":"2023-09-05T14:53:03Z","updated_at":"2023-09-05T14:53:03Z"}"#;
    const OLD_RECORD: &str = r#"{"credential_id":"2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f","user_id":"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d","realm_id":"3f0c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b","username":"jo","display_name":"Jo","enabled":true,"password_hash":null,"ha1_sealed":null}"#;
    const OLD_SETTINGS: &str = r#"{"realm_id":"3f0c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b","account_member_self_management":"update_only","account_management_authentication_token_timeout_secs":3600}"#;

    fn id<T: std::str::FromStr<Err = IdError>>(s: &str) -> T {
        s.parse()
            .unwrap_or_else(|e| panic!("{s} is a well-formed id: {e}"))
    }

    fn no_ha1(_: &str, _: &str) -> String {
        String::new()
    }

    /// A store holding what the untyped version left: the realm, one profile,
    /// user, credential, its indexes, the member's account, settings and login record.
    async fn old_store(keys: &Keys) -> Arc<dyn Store> {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let map = |name: &str, field: &str, value: &str| Op::MapSet {
            key: keys.directory(name),
            fields: vec![(field.to_owned(), value.as_bytes().to_vec())],
            ttl: None,
        };
        let set = |key: String, value: &str| Op::Set {
            key,
            value: value.as_bytes().to_vec(),
            ttl: None,
        };
        store
            .exec(vec![
                set(keys.bootstrap("realm"), REALM),
                map(PROFILES, PROFILE, OLD_PROFILE),
                map(APPS, "shop.acme", PROFILE),
                map(USERS, USER, OLD_USER),
                map(CREDENTIALS, CREDENTIAL, OLD_CREDENTIAL),
                map(NAMES, &format!("{PROFILE}\u{0}jo"), CREDENTIAL),
                map(ACCOUNTS, USER, ACCOUNT),
                set(keys.directory(SETTINGS), OLD_SETTINGS),
                set(login_record_key(keys, "shop.acme", "jo"), OLD_RECORD),
            ])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
    }

    async fn open(store: Arc<dyn Store>, keys: Keys) -> Result<Directory> {
        let keyring = Keyring::new(SecretString::from("k".repeat(32)));
        let tokens = TokenService::new(
            store.clone(),
            keys.clone(),
            &keyring,
            Duration::from_secs(60),
            Duration::from_secs(600),
        );
        Directory::open(store, keys, keyring, tokens, no_ha1, 600).await
    }

    #[tokio::test]
    async fn documents_stored_before_ids_were_typed_read_and_write_back_alike() -> Result<()> {
        let keys = Keys::new("t:");
        let store = old_store(&keys).await;
        let dir = open(store.clone(), keys.clone()).await?;
        assert_eq!(dir.realm_id().as_str(), REALM);

        let profile = dir.profile(&id(PROFILE)).await?;
        assert_eq!(profile.id.as_str(), PROFILE);
        let user = dir.user(&id(USER)).await?;
        let credential = dir.credential(&user.id, &id(CREDENTIAL)).await?;
        assert_eq!(credential.password_profile_id, profile.id);
        let settings = dir.settings().await?;
        assert_eq!(settings.realm_id, *dir.realm_id());
        let mut batch = Batch::new();
        let record = login_record_in(&keys, &mut batch, "shop.acme", "jo");
        store.run(batch).await?;
        let record = record.get()?.ok_or(DirectoryError::NotFound("record"))?;
        assert_eq!(record.credential_id, credential.id);

        // Written back, each is what the untyped version wrote, so replicas of
        // either version read the other's.
        for (typed, old) in [
            (to_json(&profile), OLD_PROFILE),
            (to_json(&user), OLD_USER),
            (to_json(&credential), OLD_CREDENTIAL),
            (to_json(&settings), OLD_SETTINGS),
            (to_json(&record), OLD_RECORD),
        ] {
            assert_eq!(String::from_utf8_lossy(&typed), old);
        }

        // The indexes, which hold ids as values, read too.
        let found = dir.profile_for_application("shop.acme").await?;
        assert_eq!(found.map(|p| p.id), Some(profile.id.clone()));
        let by_name = dir.credential_by_username(&profile.id, "jo").await?;
        assert_eq!(by_name.map(|c| c.id), Some(credential.id.clone()));
        let account = dir.account(&user.id).await?;
        assert_eq!(account.as_str(), ACCOUNT, "the existing account is kept");
        assert_eq!(dir.credentials(&user.id).await?.len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn a_stored_document_naming_a_malformed_id_is_a_bad_document() -> Result<()> {
        let keys = Keys::new("t:");
        let store = old_store(&keys).await;
        let bad = OLD_USER.replace(USER, "u1");
        store
            .exec(vec![Op::MapSet {
                key: keys.directory(USERS),
                fields: vec![(USER.to_owned(), bad.into_bytes())],
                ttl: None,
            }])
            .await?;
        let dir = open(store, keys).await?;
        assert!(matches!(
            dir.user(&id(USER)).await,
            Err(DirectoryError::Store(StoreError::Protocol(_)))
        ));
        Ok(())
    }

    #[tokio::test]
    async fn a_new_realm_and_new_records_get_well_formed_ids() -> Result<()> {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let keys = Keys::new("t:");
        let dir = open(store.clone(), keys.clone()).await?;
        let again = open(store, keys).await?;
        assert_eq!(
            dir.realm_id(),
            again.realm_id(),
            "replicas agree on one realm"
        );
        let profile = dir
            .create_profile("P", UsernameFormat::Any, true, None)
            .await?;
        let user = dir.create_user("U", None).await?;
        let credential = dir
            .create_credential(&user.id, &profile.id, "u", None)
            .await?;
        for text in [
            dir.realm_id().as_str(),
            profile.id.as_str(),
            user.id.as_str(),
            credential.id.as_str(),
            dir.account(&user.id).await?.as_str(),
        ] {
            assert_eq!(
                ProfileId::parse(text).map(String::from),
                Ok(text.to_owned())
            );
        }
        Ok(())
    }
}
