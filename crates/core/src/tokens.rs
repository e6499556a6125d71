//! The token service: sessions with access and refresh tokens, shared by both
//! schemes and by API clients.
//!
//! A token reads `<kind>.<session id>.<secret>`. The store keeps one map per
//! session holding only SHA-256 digests of the current secrets, so a dump of the
//! store yields no usable token, and checking a token is one read of one key.
//! Deleting that key revokes the session on every replica at once. Refresh rotates
//! both tokens by compare-and-swap; a rotated refresh token presented again
//! deletes the whole session (reuse detection).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::crypto::{ct_eq, digest, random_token};
use crate::store::{Keys, Op, Rotation, Store, StoreError};

/// Which login surface a session came from (the `X-Auth-Scheme` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Scheme A: one-time login key, password or token login of a web phone user.
    OneTimeKey,
    /// Scheme B: an account management authentication token.
    AccountManagement,
    /// An API client token from `/oauth/access_token`.
    Client,
}

impl Scheme {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Scheme::OneTimeKey => "one-time-key",
            Scheme::AccountManagement => "account-management",
            Scheme::Client => "client",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "one-time-key" => Scheme::OneTimeKey,
            "account-management" => Scheme::AccountManagement,
            "client" => Scheme::Client,
            _ => return None,
        })
    }
}

/// What an API client token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything (client credentials grant).
    Admin,
    /// Public operations only (implicit grant).
    Public,
    /// A logged-in user.
    User,
}

impl Role {
    fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Public => "public",
            Role::User => "user",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "admin" => Role::Admin,
            "public" => Role::Public,
            _ => Role::User,
        }
    }
}

/// Who a session is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The directory user's id (user authentication info), or the client id.
    pub user_id: String,
    /// The username as the user logs in.
    pub username: String,
    /// The authentication realm.
    pub realm_id: String,
    /// The user's display name.
    pub display_name: String,
    /// Where the session came from.
    pub scheme: Scheme,
    /// What it may do.
    pub role: Role,
}

/// A checked, live token's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The session's id.
    pub session_id: String,
    /// Who it is for.
    pub subject: Subject,
    /// Unix time the presented token expires.
    pub expires_at: i64,
}

/// Tokens handed to a client.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    /// The access token.
    pub access_token: String,
    /// Its lifetime from now.
    pub access_expires_in: Duration,
    /// The refresh token, when the session has one.
    pub refresh_token: Option<String>,
    /// Its lifetime from now.
    pub refresh_expires_in: Duration,
}

/// What checking an access token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Current and unexpired.
    Valid(Principal),
    /// Genuine, but past its expiry.
    Expired,
    /// Unknown, revoked, rotated away or malformed.
    Invalid,
}

/// What a refresh found.
// Returned once per refresh and never stored, so the large variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Refresh {
    /// New tokens, and the session as it was before.
    Rotated(IssuedTokens, Principal),
    /// The token had been used before: the session is gone.
    Reused,
    /// Unknown, malformed or expired.
    Invalid,
}

/// Issues, checks, rotates and revokes tokens.
#[derive(Clone)]
pub struct TokenService {
    store: Arc<dyn Store>,
    keys: Keys,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .finish_non_exhaustive()
    }
}

const ACCESS: &str = "a";
const REFRESH: &str = "r";

/// A token split into its parts; `None` for anything not shaped like ours.
fn split(token: &str) -> Option<(&str, &str)> {
    let mut parts = token.splitn(3, '.');
    let kind = parts.next()?;
    let sid = parts.next()?;
    let secret = parts.next()?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (ok(sid, 22) && ok(secret, 43) && (kind == ACCESS || kind == REFRESH)).then_some((kind, sid))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn text(map: &HashMap<String, Vec<u8>>, field: &str) -> String {
    map.get(field)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

impl TokenService {
    /// A service whose access tokens live `access_ttl` and refresh tokens `refresh_ttl`.
    pub fn new(
        store: Arc<dyn Store>,
        keys: Keys,
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> Self {
        Self {
            store,
            keys,
            access_ttl,
            refresh_ttl,
        }
    }

    /// How long access tokens live.
    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    fn token(kind: &str, sid: &str) -> String {
        format!("{kind}.{sid}.{}", random_token::<32>())
    }

    /// Starts a session for `subject`: access and refresh tokens for users,
    /// an access token of `client_ttl` alone for API clients.
    pub async fn issue(
        &self,
        subject: &Subject,
        client_ttl: Option<Duration>,
    ) -> Result<IssuedTokens, StoreError> {
        let sid = random_token::<16>();
        let access = Self::token(ACCESS, &sid);
        let now = now();
        let access_ttl = client_ttl.unwrap_or(self.access_ttl);
        let mut fields = vec![
            ("sub".to_owned(), subject.user_id.clone().into_bytes()),
            ("user".to_owned(), subject.username.clone().into_bytes()),
            ("realm".to_owned(), subject.realm_id.clone().into_bytes()),
            ("name".to_owned(), subject.display_name.clone().into_bytes()),
            (
                "scheme".to_owned(),
                subject.scheme.as_str().as_bytes().to_vec(),
            ),
            ("role".to_owned(), subject.role.as_str().as_bytes().to_vec()),
            ("a".to_owned(), digest(&access).into_bytes()),
            (
                "ax".to_owned(),
                (now + access_ttl.as_secs() as i64).to_string().into_bytes(),
            ),
        ];
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
        let mut ops = vec![Op::MapSet {
            key: self.keys.session(&sid),
            fields,
            ttl: Some(session_ttl),
        }];
        if subject.scheme != Scheme::Client {
            ops.push(Op::SetAdd {
                key: self.keys.user_sessions(&subject.user_id),
                member: sid,
                ttl: session_ttl,
            });
        }
        self.store.exec(ops).await?;
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

    fn principal(sid: &str, map: &HashMap<String, Vec<u8>>, exp_field: &str) -> Option<Principal> {
        Some(Principal {
            session_id: sid.to_owned(),
            subject: Subject {
                user_id: text(map, "sub"),
                username: text(map, "user"),
                realm_id: text(map, "realm"),
                display_name: text(map, "name"),
                scheme: Scheme::parse(&text(map, "scheme"))?,
                role: Role::parse(&text(map, "role")),
            },
            expires_at: text(map, exp_field).parse().ok()?,
        })
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
        let Some((ACCESS, sid)) = split(token) else {
            return Ok(Check::Invalid);
        };
        let map = self
            .store
            .exec(vec![Op::MapGetAll(self.keys.session(sid))])
            .await?
            .pop()
            .map(|r| r.into_map())
            .transpose()?
            .unwrap_or_default();
        let Some(current) = map.get("a") else {
            return Ok(Check::Invalid);
        };
        if !ct_eq(current, digest(token).as_bytes()) {
            return Ok(Check::Invalid);
        }
        Ok(match Self::principal(sid, &map, "ax") {
            Some(p) if p.expires_at > now() => Check::Valid(p),
            Some(_) => Check::Expired,
            None => Check::Invalid,
        })
    }

    /// Exchanges a refresh token for new tokens, once.
    pub async fn refresh(&self, token: &str) -> Result<Refresh, StoreError> {
        let Some((REFRESH, sid)) = split(token) else {
            return Ok(Refresh::Invalid);
        };
        let key = self.keys.session(sid);
        let access = Self::token(ACCESS, sid);
        let refresh = Self::token(REFRESH, sid);
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
        let mut replies = self
            .store
            .exec(vec![
                Op::MapGetAll(key.clone()),
                Op::RotateRefresh {
                    key,
                    presented: digest(token),
                    fields,
                    ttl: self.refresh_ttl.max(self.access_ttl),
                },
            ])
            .await?
            .into_iter();
        let before = replies
            .next()
            .map(|r| r.into_map())
            .transpose()?
            .unwrap_or_default();
        let outcome = match replies.next() {
            Some(crate::store::Reply::Rotated(r)) => r,
            other => return Err(StoreError::Protocol(format!("rotation reply {other:?}"))),
        };
        Ok(match outcome {
            Rotation::Rotated => match Self::principal(sid, &before, "rx") {
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
                    self.revoke_session(sid).await?;
                    Refresh::Invalid
                }
            },
            Rotation::Reused => Refresh::Reused,
            Rotation::Unknown => Refresh::Invalid,
        })
    }

    /// Ends the session of an access or refresh token. Returns whether it was live.
    pub async fn revoke(&self, token: &str) -> Result<bool, StoreError> {
        let Some((kind, sid)) = split(token) else {
            return Ok(false);
        };
        let map = self
            .store
            .exec(vec![Op::MapGetAll(self.keys.session(sid))])
            .await?
            .pop()
            .map(|r| r.into_map())
            .transpose()?
            .unwrap_or_default();
        let field = if kind == ACCESS { "a" } else { "r" };
        match map.get(field) {
            Some(current) if ct_eq(current, digest(token).as_bytes()) => {
                self.revoke_session(sid).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Deletes one session.
    pub async fn revoke_session(&self, sid: &str) -> Result<(), StoreError> {
        self.store
            .exec(vec![Op::Delete(vec![self.keys.session(sid)])])
            .await
            .map(drop)
    }

    /// Ends every session of a directory user (after a password change, a deletion).
    pub async fn revoke_user(&self, user_id: &str) -> Result<usize, StoreError> {
        let set = self.keys.user_sessions(user_id);
        let members = self
            .store
            .exec(vec![Op::SetMembers(set.clone())])
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
        self.store.exec(ops).await?;
        Ok(members.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn service() -> TokenService {
        TokenService::new(
            Arc::new(MemoryStore::new()),
            Keys::new("t:"),
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
    }

    fn alice() -> Subject {
        Subject {
            user_id: "u1".into(),
            username: "alice".into(),
            realm_id: "r1".into(),
            display_name: "Alice".into(),
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
    async fn revoking_a_user_ends_all_their_sessions() -> Result<(), StoreError> {
        let s = service();
        let a = s.issue(&alice(), None).await?;
        let b = s.issue(&alice(), None).await?;
        assert_eq!(s.revoke_user("u1").await?, 2);
        assert!(s.verify(&a.access_token).await?.is_none());
        assert!(s.verify(&b.access_token).await?.is_none());
        Ok(())
    }
}
