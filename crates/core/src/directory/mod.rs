//! The directory: one authentication realm, its password profiles, users
//! (user authentication info) and their credentials (user authentication password
//! profile info), kept as JSON documents in the store.
//!
//! Passwords are kept as Argon2id hashes. A profile exposed to the one-time login
//! key scheme (`voximplant_application` set) also keeps each password's HA1, sealed
//! with the gateway's keyring, and a denormalised [`LoginRecord`] per user under a
//! key of that user's own hash tag, so a login reads one slot in one round trip.
//!
//! # Layout
//!
//! - this module: [`Directory`] itself (opening the realm, the replica's memory of
//!   recent profiles), [`DirectoryError`], the store's maps and the reads of their
//!   documents, one at a time or queued on a [`Batch`] (`*_in`).
//! - `records`: the stored records ([`Settings`], [`PasswordProfile`],
//!   [`UserInfo`], [`Credential`], [`LoginRecord`], ...) and the checks of their
//!   fields.
//! - `settings`: the account authentication settings and members' personal accounts.
//! - `profiles`: password profiles and the web phone application each is exposed as.
//! - `users`: directory users.
//! - `credentials`: usernames and passwords, their index, and the login records
//!   of the key scheme ([`login_record_key`], [`login_record_in`]).
//! - [`layout`]: where the maps live (each spread over the store's shards, a
//!   document in the shard of its id), reading every shard of a map in one
//!   batch, and [`migrate_layout`], which moves a store of the earlier layout
//!   (one hash tag for everything) into the shards at start-up.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::crypto::{Keyring, MacKey};
use crate::ids::{AccountId, CredentialId, IdError, ProfileId, RealmId, UserId};
use crate::recent::Recent;
use crate::store::{Batch, Handle, Keys, Op, Reply, Store, StoreError};
use crate::tokens::TokenService;

mod credentials;
pub mod layout;
mod profiles;
mod records;
mod settings;
mod users;

pub use credentials::{login_record_in, login_record_key};
pub use layout::migrate_layout;
pub use records::{
    check_application, Credential, LoginRecord, PasswordProfile, ProfileChanges, SelfManagement,
    Settings, UserInfo, UsernameFormat,
};
use records::{from_json, stored_id, to_json};

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

/// The directory service.
#[derive(Clone)]
pub struct Directory {
    store: Arc<dyn Store>,
    keys: Keys,
    keyring: Keyring,
    /// The subkey members' personal account ids are derived under.
    account_mac: MacKey,
    tokens: TokenService,
    ha1: Ha1Fn,
    realm_id: RealmId,
    default_token_timeout: u64,
    profiles: Recent<Arc<PasswordProfile>>,
    settings: Recent<Settings>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("realm_id", &self.realm_id)
            .finish_non_exhaustive()
    }
}

/// How long a replica may answer from a password profile it read, without
/// reading it again (see [`Directory::recent_profile`]); the settings are
/// remembered as long (see [`Directory::settings_in`]).
pub const PROFILE_MEMORY: Duration = Duration::from_secs(1);

// The directory's maps, each spread over the store's shards: a document or an
// index entry lives in the shard of its id or field ([`Keys::sharded`]).
/// Profile id to profile.
const PROFILES: &str = "profiles";
/// User id to user.
const USERS: &str = "users";
/// Credential id to credential.
const CREDENTIALS: &str = "credentials";
/// Profile id, NUL, username to credential id.
const NAMES: &str = "names";
/// Web phone application to profile id.
const APPS: &str = "apps";
/// Member id to personal account id.
const ACCOUNTS: &str = "accounts";
/// The settings: one value, in the first shard.
const SETTINGS: &str = "settings";

impl Directory {
    /// Opens the directory, creating the realm on first use (shared by all
    /// replicas), once the store's keys are in the current layout: a store of
    /// an earlier layout is migrated first ([`migrate_layout`]; replicas
    /// starting together wait for the one that migrates).
    pub async fn open(
        store: Arc<dyn Store>,
        keys: Keys,
        keyring: Keyring,
        tokens: TokenService,
        ha1: Ha1Fn,
        default_token_timeout: u64,
    ) -> Result<Self> {
        migrate_layout(&*store, &keys).await?;
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
            account_mac: keyring.mac_key("personal account"),
            keyring,
            tokens,
            ha1,
            realm_id,
            default_token_timeout,
            profiles: Recent::new(PROFILE_MEMORY, 1_000),
            settings: Recent::new(PROFILE_MEMORY, 1),
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

    /// The shard of `map` that holds `item` (a document's id, an index's field).
    fn key(&self, map: &str, item: &str) -> String {
        self.keys.sharded(map, item)
    }

    async fn doc<T: for<'de> Deserialize<'de>>(
        &self,
        map: &str,
        id: &str,
        what: &'static str,
    ) -> Result<T> {
        let reply = self
            .store
            .exec(vec![Op::MapGet(self.key(map, id), id.to_owned())])
            .await?
            .pop();
        match reply.map(Reply::into_value).transpose()?.flatten() {
            Some(bytes) => from_json(&bytes),
            None => Err(DirectoryError::NotFound(what)),
        }
    }

    /// Every document of `map`: all its shards, read in one batch.
    async fn docs<T: for<'de> Deserialize<'de>>(&self, map: &str) -> Result<Vec<T>> {
        let all = layout::read_all_shards(&*self.store, &self.keys, map).await?;
        all.values().map(|v| from_json(v)).collect()
    }

    /// Queues the read of document `id` of `map`: `None` when there is none.
    fn doc_in<T>(&self, batch: &mut Batch, map: &str, id: &str) -> Handle<Option<T>>
    where
        T: for<'de> Deserialize<'de> + Send + 'static,
    {
        batch.push(Op::MapGet(self.key(map, id), id.to_owned()), |reply| {
            reply
                .into_value()?
                .map(|bytes| {
                    serde_json::from_slice(&bytes)
                        .map_err(|e| StoreError::Protocol(format!("bad document: {e}")))
                })
                .transpose()
        })
    }

    /// Writes document `id` of `map`.
    async fn put_doc<T: Serialize>(&self, map: &str, id: &str, doc: &T) -> Result<()> {
        self.store
            .exec(vec![Op::MapSet {
                key: self.key(map, id),
                fields: vec![(id.to_owned(), to_json(doc))],
                ttl: None,
            }])
            .await?;
        Ok(())
    }

    /// Sets entry `field` of index `map` to `id` unless it is set: whether it was
    /// set now (replicas racing for one entry agree on one winner).
    async fn claim(&self, map: &str, field: String, id: &str) -> Result<bool> {
        Ok(self
            .store
            .exec(vec![Op::MapSetIfAbsent(
                self.key(map, &field),
                field,
                id.as_bytes().to_vec(),
            )])
            .await?
            .pop()
            .map(Reply::into_flag)
            .transpose()?
            .unwrap_or(false))
    }

    fn settings_key(&self) -> String {
        layout::settings_key(&self.keys)
    }

    /// The settings (the defaults when none were ever saved) for a hot path:
    /// this replica's memory of them when it read or wrote them within the last
    /// [`PROFILE_MEMORY`], with nothing queued on `batch`; otherwise a read
    /// queued on `batch`, remembered once it has run. A change made through
    /// another replica is seen within that second, one made through this
    /// replica at once.
    pub fn settings_in(&self, batch: &mut Batch) -> Handle<Settings> {
        match self.settings.get(SETTINGS) {
            Some(remembered) => Handle::ready(remembered),
            None => self.read_settings_in(batch),
        }
    }

    /// Queues the read of the settings from the store, remembered once read.
    fn read_settings_in(&self, batch: &mut Batch) -> Handle<Settings> {
        let defaults = Settings {
            realm_id: self.realm_id.clone(),
            account_member_self_management: SelfManagement::Disabled,
            account_management_authentication_token_timeout_secs: self.default_token_timeout,
        };
        let memory = self.settings.clone();
        batch.push(Op::Get(self.settings_key()), move |reply| {
            let settings: Settings = match reply.into_value()? {
                Some(b) => serde_json::from_slice(&b)
                    .map_err(|e| StoreError::Protocol(format!("bad document: {e}")))?,
                None => defaults,
            };
            memory.put(SETTINGS.to_owned(), settings.clone(), None);
            Ok(settings)
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
            reply
                .into_value()?
                .map(|b| credentials::name_entry_ids(&b).map(|(id, _)| id))
                .transpose()
        })
    }

    /// Queues the read of the ids of the credential with `username` in a
    /// profile and of its user (`None` for an entry indexed before the user's
    /// id was kept with it), so that both records can be read in one trip.
    pub fn credential_ids_in(
        &self,
        batch: &mut Batch,
        profile_id: &ProfileId,
        username: &str,
    ) -> Handle<Option<(CredentialId, Option<UserId>)>> {
        let (index, field) = self.name_index(profile_id, username);
        batch.push(Op::MapGet(index, field), |reply| {
            reply
                .into_value()?
                .map(|b| credentials::name_entry_ids(&b))
                .transpose()
        })
    }

    /// Queues the read of the personal account of member `user_id`.
    pub fn account_in(&self, batch: &mut Batch, user_id: &UserId) -> Handle<Option<AccountId>> {
        batch.push(
            Op::MapGet(
                self.key(ACCOUNTS, user_id.as_str()),
                user_id.as_str().to_owned(),
            ),
            |reply| reply.into_value()?.map(|b| stored_id(&b)).transpose(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, StoreExt};
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

    /// A store holding what the untyped version left, in the layout of the
    /// time (one hash tag, `{dir}`): the realm, one profile, user, credential,
    /// its indexes, the member's account, settings and login record.
    async fn old_store(keys: &Keys) -> Arc<dyn Store> {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let map = |name: &str, field: &str, value: &str| Op::MapSet {
            key: layout::old(keys, name),
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
                set(layout::old(keys, SETTINGS), OLD_SETTINGS),
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
        let record = login_record_in(&mut batch, &keys.user_keys("shop.acme", "jo"));
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
        // An entry written before the user's id was kept with it.
        let mut batch = Batch::new();
        let ids = dir.credential_ids_in(&mut batch, &profile.id, "jo");
        dir.store.run(batch).await?;
        assert_eq!(ids.get()?, Some((credential.id.clone(), None)));
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
                key: layout::old(&keys, USERS),
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
    async fn a_listing_merges_every_shard_and_documents_live_in_the_shard_of_their_id() -> Result<()>
    {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let keys = Keys::new("t:");
        let dir = open(store.clone(), keys.clone()).await?;
        let mut made = Vec::new();
        for n in 0..40 {
            made.push(dir.create_user(&format!("User {n}"), None).await?.id);
        }
        let listed: Vec<UserId> = dir.users().await?.into_iter().map(|u| u.id).collect();
        assert_eq!(listed.len(), made.len());
        assert!(made.iter().all(|id| listed.contains(id)));
        let mut shards = std::collections::BTreeSet::new();
        for (shard, map) in (0..crate::store::SHARDS).map(|s| (s, keys.in_shard(s, USERS))) {
            let fields = store.one(Op::MapGetAll(map)).await?.into_map()?;
            for id in fields.keys() {
                assert_eq!(keys.shard_of(id), shard, "{id} in its own shard");
                shards.insert(shard);
            }
        }
        assert!(shards.len() > 8, "40 users over {} shards", shards.len());
        Ok(())
    }

    /// The names index gives the credential's and the user's ids in one read,
    /// also after a change of username.
    #[tokio::test]
    async fn the_names_index_holds_the_credential_and_its_user() -> Result<()> {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let dir = open(store, Keys::new("t:")).await?;
        let profile = dir
            .create_profile("Customers", UsernameFormat::Any, true, None)
            .await?;
        let user = dir.create_user("Jo", None).await?;
        let c = dir
            .create_credential(&user.id, &profile.id, "jo", Some("correct horse"))
            .await?;
        let ids = |name: &'static str| {
            let mut batch = Batch::new();
            let h = dir.credential_ids_in(&mut batch, &profile.id, name);
            let dir = &dir;
            async move {
                dir.store.run(batch).await?;
                h.get()
            }
        };
        assert_eq!(
            ids("jo").await?,
            Some((c.id.clone(), Some(user.id.clone())))
        );
        dir.update_credential(&user.id, &c.id, Some("joanna"), None)
            .await?;
        assert_eq!(ids("jo").await?, None);
        assert_eq!(
            ids("joanna").await?,
            Some((c.id.clone(), Some(user.id.clone())))
        );
        let by_name = dir.credential_by_username(&profile.id, "joanna").await?;
        assert_eq!(by_name.map(|c| c.id), Some(c.id));
        Ok(())
    }

    #[tokio::test]
    async fn the_settings_are_remembered_for_the_hot_path_and_a_write_here_is_seen_at_once(
    ) -> Result<()> {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let keys = Keys::new("t:");
        let here = open(store.clone(), keys.clone()).await?;
        let there = open(store.clone(), keys).await?;
        let read = |dir: &Directory| {
            let mut batch = Batch::new();
            let settings = dir.settings_in(&mut batch);
            (batch, settings)
        };
        let (batch, first) = read(&here);
        assert!(
            !batch.is_empty(),
            "nothing remembered yet: a read is queued"
        );
        store.run(batch).await?;
        assert_eq!(
            first.get()?.account_member_self_management,
            SelfManagement::Disabled
        );
        let (batch, again) = read(&here);
        assert!(batch.is_empty(), "remembered: nothing queued");
        assert_eq!(
            again.get()?.account_member_self_management,
            SelfManagement::Disabled
        );

        here.update_settings(Some(SelfManagement::UpdateOnly), None)
            .await?;
        let (batch, mine) = read(&here);
        assert!(batch.is_empty());
        assert_eq!(
            mine.get()?.account_member_self_management,
            SelfManagement::UpdateOnly
        );
        // Another replica that has not read them reads the store; one that has,
        // within the second; the admin read always does.
        let (batch, theirs) = read(&there);
        store.run(batch).await?;
        assert_eq!(
            theirs.get()?.account_member_self_management,
            SelfManagement::UpdateOnly
        );
        there
            .update_settings(Some(SelfManagement::Disabled), None)
            .await?;
        assert_eq!(
            here.settings().await?.account_member_self_management,
            SelfManagement::Disabled
        );
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
