//! The token service: sessions with access and refresh tokens, shared by both
//! schemes and by API clients.
//!
//! A token reads `<kind>.<session id>.<secret>`. The store keeps one map per
//! session holding only SHA-256 digests of the current secrets, so a dump of the
//! store yields no usable token, and checking a token is one read of one key.
//! Deleting that key revokes the session on every replica at once. Refresh rotates
//! both tokens by compare-and-swap; a rotated refresh token presented again
//! deletes the whole session (reuse detection).
//!
//! # Layout
//!
//! - this module: [`TokenService`] (issuing, checking, refreshing and revoking
//!   sessions, the session map's fields, the token format) and [`PendingCheck`];
//! - `subject`: who a session is for and what the service answers
//!   ([`Subject`], [`SubjectId`], [`Scheme`], [`Role`], [`Principal`],
//!   [`IssuedTokens`], [`Check`], [`Refresh`]);
//! - `jwt`: the account management authentication token, an HS256 JWT
//!   ([`TokenService::issue_account_token`], or queued on a caller's batch as a
//!   [`PendingAccountToken`]) and reading its session back.

mod jwt;
mod subject;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::crypto::{ct_eq, digest, random_token, Keyring};
use crate::ids::{RealmId, SessionId, UserId};
use crate::recent::Recent;
use crate::store::{
    Batch, Handle, Keys, Op, ReadCache, Reply, Rotation, Store, StoreError, StoreExt,
};
use crate::text::concat;

pub use self::jwt::PendingAccountToken;
pub use self::subject::{
    Check, IssuedTokens, Principal, Refresh, Role, Scheme, Subject, SubjectId,
};

/// Issues, checks, rotates and revokes tokens.
#[derive(Clone)]
pub struct TokenService {
    store: Arc<dyn Store>,
    keys: Keys,
    access_ttl: Duration,
    refresh_ttl: Duration,
    /// HMAC-SHA256 keyed for account tokens' signatures, cloned for each one
    /// (the key's two blocks are hashed once, here).
    jwt_mac: hmac::Hmac<sha2::Sha256>,
    /// API client sessions verified lately, by session id, with the token's digest.
    clients: Recent<(String, Principal)>,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .finish_non_exhaustive()
    }
}

/// How long a replica trusts an API client's token it verified, without asking
/// the store again: revoking one through another replica takes this long to be
/// seen here.
pub const CLIENT_MEMORY: Duration = Duration::from_secs(1);

const ACCESS: &str = "a";
const REFRESH: &str = "r";

/// A token split into its kind and session; `None` for anything not shaped like ours.
fn split(token: &str) -> Option<(&str, SessionId)> {
    let (kind, rest) = token.split_once('.')?;
    if kind != ACCESS && kind != REFRESH {
        return None;
    }
    let (sid, secret) = rest.split_once('.')?;
    let secret_ok = secret.len() == 43 && secret.bytes().all(|b| URL_SAFE[usize::from(b)]);
    secret_ok.then_some((kind, SessionId::parse(sid).ok()?))
}

/// Which bytes URL-safe base64 uses: a table, as every token check asks of 43 bytes.
const URL_SAFE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    table
};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn text(map: &HashMap<String, Vec<u8>>, field: &str) -> String {
    map.get(field)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// A token check waiting for its one store read ([`TokenService::prepare_check`]).
#[derive(Debug, Clone)]
pub struct PendingCheck {
    sid: SessionId,
    key: String,
    digest: String,
    /// This replica's memory of sessions, when the store keeps one.
    cache: Option<Arc<ReadCache>>,
}

impl PendingCheck {
    /// Queues the check's one read on `batch`; the handle holds the verdict.
    /// A session this replica read lately, and which has not changed since
    /// (the store's cache knows), is judged from memory: nothing is queued,
    /// and nothing is parsed (the cache keeps the session's [`SessionView`]).
    pub fn check_in(&self, batch: &mut Batch) -> Handle<Check> {
        let ticket = match &self.cache {
            Some(cache) => {
                let kept = cache.get(&self.key);
                if let Some(view) = kept.as_ref().and_then(|k| k.downcast_ref::<SessionView>()) {
                    return Handle::ready(self.judge(view));
                }
                cache.begin(&self.key).map(|t| (cache.clone(), t))
            }
            None => None,
        };
        let this = self.clone();
        batch.push(Op::MapGetAll(self.key.clone()), move |reply| {
            let view = SessionView::of(&reply.into_map()?);
            let check = this.judge(&view);
            if let Some((cache, ticket)) = ticket {
                // Only sessions are worth keeping: not the absence of one.
                if view.access.is_some() {
                    cache.finish(ticket, Arc::new(view));
                } else {
                    cache.abandon(ticket);
                }
            }
            Ok(check)
        })
    }

    /// The verdict on the token, given its session.
    fn judge(&self, view: &SessionView) -> Check {
        let Some(current) = &view.access else {
            return Check::Invalid;
        };
        if !ct_eq(current, self.digest.as_bytes()) {
            return Check::Invalid;
        }
        match &view.holder {
            Some((subject, expires_at)) if *expires_at > now() => Check::Valid(Principal {
                session_id: self.sid.clone(),
                subject: subject.clone(),
                expires_at: *expires_at,
            }),
            Some(_) => Check::Expired,
            None => Check::Invalid,
        }
    }
}

/// What a check needs of a session's map: the current access token's digest,
/// and who the session is for with that token's expiry (`None` for a map that
/// is not a session's). Parsed once per read of the map, and what the cache
/// keeps of it (not the map).
#[derive(Debug)]
struct SessionView {
    access: Option<Vec<u8>>,
    holder: Option<(Subject, i64)>,
}

impl SessionView {
    fn of(map: &HashMap<String, Vec<u8>>) -> Self {
        Self {
            access: map.get(ACCESS).cloned(),
            holder: TokenService::holder(map, "ax"),
        }
    }
}

/// A session's fields: who it belongs to, and its access token's digest and
/// expiry. Only what a check answers with: no display name, so that an exchange
/// can write its session in the same round trip that reads the user's record.
fn session_fields(subject: &Subject, access: &str, access_exp: i64) -> Vec<(String, Vec<u8>)> {
    vec![
        ("sub".to_owned(), subject.id.as_str().as_bytes().to_vec()),
        ("user".to_owned(), subject.username.clone().into_bytes()),
        (
            "realm".to_owned(),
            subject.realm_id.as_str().as_bytes().to_vec(),
        ),
        (
            "scheme".to_owned(),
            subject.scheme.as_str().as_bytes().to_vec(),
        ),
        ("role".to_owned(), subject.role.as_str().as_bytes().to_vec()),
        ("a".to_owned(), digest(access).into_bytes()),
        ("ax".to_owned(), access_exp.to_string().into_bytes()),
    ]
}

impl TokenService {
    /// A service whose access tokens live `access_ttl` and refresh tokens `refresh_ttl`.
    pub fn new(
        store: Arc<dyn Store>,
        keys: Keys,
        keyring: &Keyring,
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> Self {
        Self {
            store,
            keys,
            access_ttl,
            refresh_ttl,
            jwt_mac: <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(
                &keyring.derive("account management token hs256"),
            )
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
            clients: Recent::new(CLIENT_MEMORY, 10_000),
        }
    }

    /// An API client's token this replica verified within the last
    /// [`CLIENT_MEMORY`], so the check needs no store read. Only API client
    /// tokens are remembered: users' tokens are checked against the store every
    /// time. Revoking a session through this replica forgets it at once.
    pub fn recent_client(&self, pending: &PendingCheck) -> Option<Principal> {
        let (digest, principal) = self.clients.get(pending.sid.as_str())?;
        ct_eq(digest.as_bytes(), pending.digest.as_bytes()).then_some(principal)
    }

    /// Remembers an API client's token just verified (see [`TokenService::recent_client`]).
    pub fn remember_client(&self, pending: &PendingCheck, principal: &Principal) {
        if principal.subject.scheme != Scheme::Client {
            return;
        }
        let left = principal.expires_at - now();
        if left <= 0 {
            return;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(left as u64);
        self.clients.put(
            pending.sid.as_str().to_owned(),
            (pending.digest.clone(), principal.clone()),
            Some(deadline),
        );
    }

    /// Writes a session's map and, for a user's session, lists it under the user
    /// (so a password change or a disabled account can end them all).
    async fn store_session(
        &self,
        sid: SessionId,
        subject: &Subject,
        fields: Vec<(String, Vec<u8>)>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut batch = Batch::new();
        let written = self.session_in(&mut batch, &sid, subject, fields, ttl);
        self.store.run(batch).await?;
        written.into_iter().try_for_each(Handle::get)
    }

    /// Queues [`TokenService::store_session`]'s writes on `batch`; the handles
    /// say whether they were done.
    fn session_in(
        &self,
        batch: &mut Batch,
        sid: &SessionId,
        subject: &Subject,
        fields: Vec<(String, Vec<u8>)>,
        ttl: Duration,
    ) -> Vec<Handle<()>> {
        let mut written = vec![batch.push(
            Op::MapSet {
                key: self.keys.session(sid.as_str()),
                fields,
                ttl: Some(ttl),
            },
            |_| Ok(()),
        )];
        if let SubjectId::User(user) = &subject.id {
            written.push(batch.push(
                Op::IndexAdd {
                    key: self.keys.user_sessions(user.as_str()),
                    member: sid.as_str().to_owned(),
                    ttl,
                },
                |_| Ok(()),
            ));
        }
        written
    }

    /// How long access tokens live.
    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    fn token(kind: &str, sid: &SessionId) -> String {
        concat(&[kind, ".", sid.as_str(), ".", &random_token::<32>()])
    }

    /// Starts a session for `subject`: access and refresh tokens for users,
    /// an access token of `client_ttl` alone for API clients.
    pub async fn issue(
        &self,
        subject: &Subject,
        client_ttl: Option<Duration>,
    ) -> Result<IssuedTokens, StoreError> {
        let sid = SessionId::new();
        let access = Self::token(ACCESS, &sid);
        let now = now();
        let access_ttl = client_ttl.unwrap_or(self.access_ttl);
        let mut fields = session_fields(subject, &access, now + access_ttl.as_secs() as i64);
        let (refresh, session_ttl) = if client_ttl.is_some() {
            (None, access_ttl)
        } else {
            let refresh = Self::token(REFRESH, &sid);
            fields.push(("r".to_owned(), digest(&refresh).into_bytes()));
            fields.push((
                "rx".to_owned(),
                (now + self.refresh_ttl.as_secs() as i64)
                    .to_string()
                    .into_bytes(),
            ));
            (Some(refresh), self.refresh_ttl.max(access_ttl))
        };
        self.store_session(sid, subject, fields, session_ttl)
            .await?;
        Ok(IssuedTokens {
            access_token: access,
            access_expires_in: access_ttl,
            refresh_expires_in: if refresh.is_some() {
                self.refresh_ttl
            } else {
                Duration::ZERO
            },
            refresh_token: refresh,
        })
    }

    /// The session `sid` as its map holds it; `None` for a map that is not a
    /// session's (gone, or not written by us).
    fn principal(
        sid: SessionId,
        map: &HashMap<String, Vec<u8>>,
        exp_field: &str,
    ) -> Option<Principal> {
        let (subject, expires_at) = Self::holder(map, exp_field)?;
        Some(Principal {
            session_id: sid,
            subject,
            expires_at,
        })
    }

    /// Who a session's map is for, and the expiry in its `exp_field`; `None`
    /// for a map that is not a session's.
    fn holder(map: &HashMap<String, Vec<u8>>, exp_field: &str) -> Option<(Subject, i64)> {
        let scheme = Scheme::parse(&text(map, "scheme"))?;
        let sub = text(map, "sub");
        let id = match scheme {
            Scheme::Client => SubjectId::Client(sub),
            Scheme::OneTimeKey | Scheme::AccountManagement => {
                SubjectId::User(UserId::parse(&sub).ok()?)
            }
        };
        let subject = Subject {
            id,
            username: text(map, "user"),
            realm_id: RealmId::parse(&text(map, "realm")).ok()?,
            scheme,
            role: Role::parse(&text(map, "role")),
        };
        Some((subject, text(map, exp_field).parse().ok()?))
    }

    /// Checks an access token: its session, if the token is current and unexpired.
    pub async fn verify(&self, token: &str) -> Result<Option<Principal>, StoreError> {
        Ok(match self.check(token).await? {
            Check::Valid(p) => Some(p),
            Check::Expired | Check::Invalid => None,
        })
    }

    /// Checks an access token, telling an expired one from an unknown one.
    pub async fn check(&self, token: &str) -> Result<Check, StoreError> {
        let Some(pending) = self.prepare_check(token) else {
            return Ok(Check::Invalid);
        };
        let mut batch = Batch::new();
        let check = pending.check_in(&mut batch);
        if !batch.is_empty() {
            self.store.run(batch).await?;
        }
        check.get()
    }

    /// The store read that checks `token`, for a caller that batches it with its
    /// own ops into one round trip; `None` when the token cannot be ours at all.
    pub fn prepare_check(&self, token: &str) -> Option<PendingCheck> {
        let sid = match split(token) {
            Some((ACCESS, sid)) => sid,
            Some(_) => return None,
            None => self.jwt_session(token)?,
        };
        Some(PendingCheck {
            key: self.keys.session(sid.as_str()),
            sid,
            digest: digest(token),
            cache: self.store.read_cache(),
        })
    }

    /// Exchanges a refresh token for new tokens, once.
    pub async fn refresh(&self, token: &str) -> Result<Refresh, StoreError> {
        let Some((REFRESH, sid)) = split(token) else {
            return Ok(Refresh::Invalid);
        };
        let key = self.keys.session(sid.as_str());
        let access = Self::token(ACCESS, &sid);
        let refresh = Self::token(REFRESH, &sid);
        let now = now();
        let fields = vec![
            ("a".to_owned(), digest(&access).into_bytes()),
            (
                "ax".to_owned(),
                (now + self.access_ttl.as_secs() as i64)
                    .to_string()
                    .into_bytes(),
            ),
            ("r".to_owned(), digest(&refresh).into_bytes()),
            (
                "rx".to_owned(),
                (now + self.refresh_ttl.as_secs() as i64)
                    .to_string()
                    .into_bytes(),
            ),
        ];
        let mut batch = Batch::new();
        let before = batch.push(Op::MapGetAll(key.clone()), Reply::into_map);
        let rotation = batch.rotate_refresh(
            key,
            digest(token),
            fields,
            self.refresh_ttl.max(self.access_ttl),
        );
        let done = self.store.run(batch).await;
        self.forget_session(&self.keys.session(sid.as_str()));
        done?;
        let (before, outcome) = (before.get()?, rotation.get()?);
        Ok(match outcome {
            Rotation::Rotated => match Self::principal(sid.clone(), &before, "rx") {
                Some(p) if p.expires_at > now => Refresh::Rotated(
                    IssuedTokens {
                        access_token: access,
                        access_expires_in: self.access_ttl,
                        refresh_token: Some(refresh),
                        refresh_expires_in: self.refresh_ttl,
                    },
                    p,
                ),
                _ => {
                    self.revoke_session(&sid).await?;
                    Refresh::Invalid
                }
            },
            Rotation::Reused => Refresh::Reused,
            Rotation::Unknown => Refresh::Invalid,
        })
    }

    /// Ends the session of an access, refresh or account token. Returns whether it was live.
    pub async fn revoke(&self, token: &str) -> Result<bool, StoreError> {
        let (kind, sid) = match split(token) {
            Some(parts) => parts,
            None => match self.jwt_session(token) {
                Some(sid) => (ACCESS, sid),
                None => return Ok(false),
            },
        };
        let map = self
            .store
            .exec(vec![Op::MapGetAll(self.keys.session(sid.as_str()))])
            .await?
            .pop()
            .map(|r| r.into_map())
            .transpose()?
            .unwrap_or_default();
        let field = if kind == ACCESS { "a" } else { "r" };
        match map.get(field) {
            Some(current) if ct_eq(current, digest(token).as_bytes()) => {
                self.revoke_session(&sid).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Deletes one session.
    pub async fn revoke_session(&self, sid: &SessionId) -> Result<(), StoreError> {
        self.clients.forget(sid.as_str());
        let key = self.keys.session(sid.as_str());
        let done = self.store.exec(vec![Op::Delete(vec![key.clone()])]).await;
        // Seen here at once (other replicas hear of it from the store).
        self.forget_session(&key);
        done.map(drop)
    }

    /// Drops this replica's memory of the session at `key`.
    fn forget_session(&self, key: &str) {
        if let Some(cache) = self.store.read_cache() {
            cache.invalidate(key);
        }
    }

    /// Ends every session of a directory user (after a password change, a deletion).
    pub async fn revoke_user(&self, user_id: &UserId) -> Result<usize, StoreError> {
        let set = self.keys.user_sessions(user_id.as_str());
        let members = self
            .store
            .exec(vec![Op::IndexMembers(set.clone())])
            .await?
            .pop()
            .map(|r| r.into_members())
            .transpose()?
            .unwrap_or_default();
        // One delete per key: sessions live in different cluster slots.
        let mut ops: Vec<Op> = members
            .iter()
            .map(|sid| Op::Delete(vec![self.keys.session(sid)]))
            .collect();
        ops.push(Op::Delete(vec![set]));
        let done = self.store.exec(ops).await;
        for sid in &members {
            self.forget_session(&self.keys.session(sid));
        }
        done?;
        Ok(members.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    pub(super) fn service() -> TokenService {
        TokenService::new(
            Arc::new(MemoryStore::new()),
            Keys::new("t:"),
            &Keyring::new(secrecy::SecretString::from("k".to_owned())),
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
    }

    pub(super) const U1: &str = "00000000-0000-4000-8000-0000000000a1";
    const R1: &str = "00000000-0000-4000-8000-0000000000f1";
    pub(super) const ACCT1: &str = "00000000-0000-4000-8000-0000000000c1";

    pub(super) fn id<T: std::str::FromStr>(s: &str) -> T {
        s.parse()
            .unwrap_or_else(|_| panic!("{s} is a well-formed id"))
    }

    pub(super) fn alice() -> Subject {
        Subject {
            id: SubjectId::User(id(U1)),
            username: "alice".into(),
            realm_id: id(R1),
            scheme: Scheme::OneTimeKey,
            role: Role::User,
        }
    }

    #[tokio::test]
    async fn an_issued_access_token_verifies_and_a_forged_one_does_not() -> Result<(), StoreError> {
        let s = service();
        let t = s.issue(&alice(), None).await?;
        let p = s.verify(&t.access_token).await?;
        assert_eq!(p.map(|p| p.subject), Some(alice()));
        let mut forged = t.access_token.clone();
        forged.replace_range(forged.len() - 3.., "AAA");
        assert_eq!(s.verify(&forged).await?, None);
        assert_eq!(
            s.verify(t.refresh_token.as_deref().unwrap_or("")).await?,
            None
        );
        assert_eq!(s.verify("garbage").await?, None);
        Ok(())
    }

    #[test]
    fn only_the_two_token_shapes_split_into_kind_and_session() {
        let sid = "abc-_DEF0123456789xyzQ";
        let secret = "A".repeat(42) + "_";
        let ok = |t: &str| split(t).map(|(kind, sid)| (kind.to_owned(), sid.to_string()));
        for kind in [ACCESS, REFRESH] {
            assert_eq!(
                ok(&format!("{kind}.{sid}.{secret}")),
                Some((kind.to_owned(), sid.to_owned()))
            );
        }
        for bad in [
            format!("xx.{sid}.{secret}"),
            format!("{ACCESS}.{sid}"),
            format!("{ACCESS}.{sid}.{secret}A"),
            format!("{ACCESS}.{sid}.{}", &secret[1..]),
            format!("{ACCESS}.{sid}.{}.", &secret[1..]),
            format!("{ACCESS}.{sid}.{}+", &secret[1..]),
            format!("{ACCESS}.{sid}.{}é", &secret[2..]),
            format!("{ACCESS}.short.{secret}"),
            format!("{ACCESS}..{secret}"),
            String::new(),
        ] {
            assert_eq!(ok(&bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn a_refresh_token_works_once_and_its_reuse_kills_the_session() -> Result<(), StoreError>
    {
        let s = service();
        let t = s.issue(&alice(), None).await?;
        let r1 = t.refresh_token.clone().unwrap_or_default();
        let Refresh::Rotated(t2, _) = s.refresh(&r1).await? else {
            panic!("first refresh must rotate");
        };
        assert!(s.verify(&t2.access_token).await?.is_some());
        assert!(
            s.verify(&t.access_token).await?.is_none(),
            "rotation retires the old access token"
        );
        assert!(matches!(s.refresh(&r1).await?, Refresh::Reused));
        assert!(
            s.verify(&t2.access_token).await?.is_none(),
            "reuse revokes the session"
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_api_client_s_session_keeps_its_client_id_which_need_not_be_a_user_id(
    ) -> Result<(), StoreError> {
        let s = service();
        let client = Subject {
            id: SubjectId::Client("authgate".into()),
            username: "authgate".into(),
            realm_id: id(R1),
            scheme: Scheme::Client,
            role: Role::Admin,
        };
        let t = s.issue(&client, Some(Duration::from_secs(60))).await?;
        let p = s.verify(&t.access_token).await?.map(|p| p.subject);
        assert_eq!(p.as_ref().map(|p| p.id.as_str()), Some("authgate"));
        assert_eq!(p, Some(client));
        Ok(())
    }

    #[tokio::test]
    async fn revoking_a_user_ends_all_their_sessions() -> Result<(), StoreError> {
        let s = service();
        let a = s.issue(&alice(), None).await?;
        let b = s.issue(&alice(), None).await?;
        assert_eq!(s.revoke_user(&id(U1)).await?, 2);
        assert!(s.verify(&a.access_token).await?.is_none());
        assert!(s.verify(&b.access_token).await?.is_none());
        Ok(())
    }
}
