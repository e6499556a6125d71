//! Credentials (a user's username and password in a profile), the username index,
//! and the login records the key scheme reads, kept in step with them.

use crate::ids::{CredentialId, ProfileId, UserId};
use crate::password;
use crate::store::{Batch, Handle, Keys, Op, Reply, StoreError, UserKeys};

use super::records::{check_email, check_password, check_text, from_json, to_json};
use super::{now, Directory, DirectoryError, Result, CREDENTIALS, NAMES};
use super::{Credential, LoginRecord, PasswordProfile, UsernameFormat};

/// The record's name among a user's keys.
const RECORD: &str = "record";

/// The key scheme's record key for (application, username).
pub fn login_record_key(keys: &Keys, application: &str, username: &str) -> String {
    keys.user(application, username, RECORD)
}

/// Queues the read of the key scheme's record of the user `keys` are of
/// ([`Keys::user_keys`] of the application and the username).
pub fn login_record_in(batch: &mut Batch, keys: &UserKeys) -> Handle<Option<LoginRecord>> {
    batch.push(Op::Get(keys.key(RECORD)), |reply| {
        reply
            .into_value()?
            .map(|bytes| {
                Directory::parse_login_record(&bytes)
                    .map_err(|e| StoreError::Protocol(e.to_string()))
            })
            .transpose()
    })
}

impl Directory {
    /// The credentials `keep` accepts, oldest first.
    pub(super) async fn credentials_where(
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

    /// Indexes `username` in a profile as credential `id`'s (of user
    /// `user_id`), or Conflict when another credential holds it.
    async fn claim_username(
        &self,
        profile_id: &ProfileId,
        username: &str,
        id: &CredentialId,
        user_id: &UserId,
    ) -> Result<()> {
        let field = Self::name_field(profile_id, username);
        if self.claim(NAMES, field, &name_entry(id, user_id)).await? {
            Ok(())
        } else {
            Err(DirectoryError::Conflict(format!(
                "username {username} is already taken in this password profile"
            )))
        }
    }

    /// The canonical form of a username in `profile` (emails lowercase), or Invalid.
    pub fn check_username(profile: &PasswordProfile, username: &str) -> Result<String> {
        let u = check_text("username", username, 255)?;
        match profile.username_format {
            // Lower-cased before it is checked: lower case can be longer (`İ` is two
            // bytes, `i̇` three), and the bound holds for what is stored.
            UsernameFormat::Email => check_email(&u.to_lowercase()),
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
        self.claim_username(&profile.id, &username, &id, user_id)
            .await?;
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
        self.put_doc(CREDENTIALS, cred.id.as_str(), &cred).await?;
        self.sync_login_record(&cred).await?;
        Ok(cred)
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
        let field = Self::name_field(profile_id, username);
        (self.key(NAMES, &field), field)
    }

    /// The credential with `username` in a profile.
    pub async fn credential_by_username(
        &self,
        profile_id: &ProfileId,
        username: &str,
    ) -> Result<Option<Credential>> {
        let (index, field) = self.name_index(profile_id, username);
        let id = self
            .store
            .exec(vec![Op::MapGet(index, field)])
            .await?
            .pop()
            .map(Reply::into_value)
            .transpose()?
            .flatten();
        // The second read happens for unknown usernames too (of an id that cannot
        // exist), so a lookup costs the same whether or not the username exists.
        let id = id.map(|b| {
            let entry = String::from_utf8_lossy(&b).into_owned();
            match entry.split_once(' ') {
                Some((id, _)) => id.to_owned(),
                None => entry,
            }
        });
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
                self.claim_username(&profile.id, &u, &c.id, &c.user_id)
                    .await?;
                let (index, field) = self.name_index(&profile.id, &c.username);
                let mut ops = vec![Op::MapDelete(index, vec![field])];
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
        self.put_doc(CREDENTIALS, c.id.as_str(), &c).await?;
        self.sync_login_record(&c).await?;
        if password.is_some() || old_username != c.username {
            self.tokens.revoke_user(&c.user_id).await?;
        }
        Ok(c)
    }

    /// Deletes a credential.
    pub async fn delete_credential(&self, user_id: &UserId, id: &CredentialId) -> Result<()> {
        let c = self.credential(user_id, id).await?;
        let (index, field) = self.name_index(&c.password_profile_id, &c.username);
        let mut ops = vec![
            Op::MapDelete(
                self.key(CREDENTIALS, c.id.as_str()),
                vec![c.id.as_str().to_owned()],
            ),
            Op::MapDelete(index, vec![field]),
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
    pub(super) async fn sync_login_record(&self, c: &Credential) -> Result<()> {
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

/// The names index's entry for a credential: its id and, after a space, its
/// user's (read by [`Directory::credential_ids_in`]), so that the user can be
/// read with the credential. Entries written before the user's id was added
/// hold the credential's id alone, and still read.
fn name_entry(id: &CredentialId, user_id: &UserId) -> String {
    format!("{} {}", id.as_str(), user_id.as_str())
}

/// The ids in a names index entry: the credential's, and its user's when the
/// entry has it.
pub(super) fn name_entry_ids(
    bytes: &[u8],
) -> std::result::Result<(CredentialId, Option<UserId>), crate::store::StoreError> {
    match bytes.iter().position(|b| *b == b' ') {
        Some(at) => Ok((
            super::records::stored_id(&bytes[..at])?,
            Some(super::records::stored_id(&bytes[at + 1..])?),
        )),
        None => Ok((super::records::stored_id(bytes)?, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email_profile() -> PasswordProfile {
        PasswordProfile {
            id: ProfileId::new(),
            name: "p".into(),
            username_format: UsernameFormat::Email,
            enable_one_time_password_token: true,
            voximplant_application: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    /// Found by `crates/core/tests/directory_properties.rs`: an email of 172 bytes
    /// whose lower case is 255 bytes was stored in a form the same check refused
    /// (over 254 bytes), so the stored username could not be sent back as it was.
    #[test]
    fn a_lowercased_email_stays_within_the_bound_and_checks_as_itself() {
        let p = email_profile();
        let raw = format!("a@a.aa{}", "\u{130}".repeat(83));
        assert_eq!(raw.len(), 172);
        assert!(Directory::check_username(&p, &raw).is_err());
        let fits = format!("a@a.aa{}", "\u{130}".repeat(82));
        let canonical = Directory::check_username(&p, &fits).unwrap_or_default();
        assert_eq!(canonical, format!("a@a.aa{}", "i\u{307}".repeat(82)));
        assert_eq!(canonical.len(), 252);
        assert_eq!(
            Directory::check_username(&p, &canonical).ok(),
            Some(canonical.clone())
        );
    }
}
