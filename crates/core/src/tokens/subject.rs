//! Who a session is for and what the token service hands back: the subject
//! (user or API client), the scheme it logged in through, its role, and the
//! outcomes of issuing, checking and refreshing.

use std::time::Duration;

use crate::ids::{RealmId, SessionId, UserId};

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

    /// The scheme of a wire name; `None` for one that is not ours.
    pub(super) fn parse(s: &str) -> Option<Self> {
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
    /// The name sessions keep.
    pub(super) fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Public => "public",
            Role::User => "user",
        }
    }

    /// The role a session keeps; anything unknown is [`Role::User`].
    pub(super) fn parse(s: &str) -> Self {
        match s {
            "admin" => Role::Admin,
            "public" => Role::Public,
            _ => Role::User,
        }
    }
}

/// Whose a session is (its `sub`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectId {
    /// A directory user (user authentication info): a session of
    /// [`Scheme::OneTimeKey`] or [`Scheme::AccountManagement`].
    User(UserId),
    /// The API client, by its configured client id: a session of [`Scheme::Client`].
    Client(String),
}

impl SubjectId {
    /// The id as sessions keep it and tokens and headers show it.
    pub fn as_str(&self) -> &str {
        match self {
            SubjectId::User(id) => id.as_str(),
            SubjectId::Client(id) => id,
        }
    }

    /// The directory user, unless it is the API client.
    pub fn user(&self) -> Option<&UserId> {
        match self {
            SubjectId::User(id) => Some(id),
            SubjectId::Client(_) => None,
        }
    }
}

/// Who a session is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The directory user, or the API client (which `scheme` says).
    pub id: SubjectId,
    /// The username as the user logs in.
    pub username: String,
    /// The authentication realm.
    pub realm_id: RealmId,
    /// Where the session came from.
    pub scheme: Scheme,
    /// What it may do.
    pub role: Role,
}

/// A checked, live token's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The session's id.
    pub session_id: SessionId,
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
