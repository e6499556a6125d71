//! The records the directory keeps (settings, password profiles, users,
//! credentials, login records) as they are stored, and the checks of their fields.
//!
//! A change of what a record holds, or of what a field accepts, belongs here;
//! the field names are the stored JSON, so they must read what older replicas wrote.

use serde::{Deserialize, Serialize};

use crate::ids::{CredentialId, IdError, ProfileId, RealmId, UserId};
use crate::password;
use crate::store::StoreError;

use super::{DirectoryError, Result};

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

pub(super) fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

pub(super) fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| DirectoryError::Store(StoreError::Protocol(format!("bad document: {e}"))))
}

/// An id the store holds as a value (an index's entry), read as any id is.
pub(super) fn stored_id<T: std::str::FromStr<Err = IdError>>(
    bytes: &[u8],
) -> std::result::Result<T, StoreError> {
    String::from_utf8_lossy(bytes)
        .parse()
        .map_err(|e: IdError| StoreError::Protocol(format!("bad index entry: {e}")))
}

pub(super) fn check_text(field: &str, value: &str, max: usize) -> Result<String> {
    let v = value.trim();
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(DirectoryError::Invalid(format!(
            "{field} must be 1 to {max} characters without control characters"
        )));
    }
    Ok(v.to_owned())
}

pub(super) fn check_email(value: &str) -> Result<String> {
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

pub(super) fn check_password(password: &str) -> Result<()> {
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
