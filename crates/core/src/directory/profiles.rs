//! Password profiles: their lifecycle, and the web phone application each may be
//! exposed to the key scheme as (one profile an application).

use crate::ids::ProfileId;
use crate::store::{Op, Reply};

use super::credentials::login_record_key;
use super::records::{check_application, check_text, stored_id};
use super::{now, Directory, DirectoryError, Result, APPS, PROFILES};
use super::{PasswordProfile, ProfileChanges, UsernameFormat};

impl Directory {
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
        if self
            .claim(APPS, app.to_owned(), profile_id.as_str())
            .await?
        {
            Ok(())
        } else {
            Err(DirectoryError::Conflict(format!(
                "voximplant_application {app} is already used by another password profile"
            )))
        }
    }

    async fn put_profile(&self, p: &PasswordProfile) -> Result<()> {
        self.profiles.forget(p.id.as_str());
        self.put_doc(PROFILES, p.id.as_str(), p).await
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
                    .exec(vec![Op::MapDelete(self.key(APPS, app), vec![app.clone()])])
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
            self.key(PROFILES, p.id.as_str()),
            vec![p.id.as_str().to_owned()],
        )];
        if let Some(app) = &p.voximplant_application {
            ops.push(Op::MapDelete(self.key(APPS, app), vec![app.clone()]));
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
            .exec(vec![Op::MapGet(
                self.key(APPS, application),
                application.to_owned(),
            )])
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
}
