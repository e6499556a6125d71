//! Directory users (user authentication info); disabling or deleting one ends
//! their sessions.

use crate::ids::UserId;
use crate::store::Op;

use super::records::{check_email, check_text};
use super::{now, Directory, Result, UserInfo, USERS};

impl Directory {
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
        self.put_doc(USERS, user.id.as_str(), &user).await?;
        Ok(user)
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
        self.put_doc(USERS, u.id.as_str(), &u).await?;
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
                self.key(USERS, u.id.as_str()),
                vec![u.id.as_str().to_owned()],
            )])
            .await?;
        self.tokens.revoke_user(&u.id).await?;
        Ok(())
    }
}
