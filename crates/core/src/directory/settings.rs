//! The account authentication settings and the personal accounts of members.

use crate::ids::{AccountId, UserId};
use crate::store::{Batch, Handle, Op, StoreError, StoreExt};

use super::records::to_json;
use super::{Directory, DirectoryError, Result, ACCOUNTS, SETTINGS};
use super::{SelfManagement, Settings};

impl Directory {
    /// The personal account of member `user_id`, made now if they have none
    /// (their first account management token). Replicas racing to make it agree
    /// on one.
    pub async fn account(&self, user_id: &UserId) -> Result<AccountId> {
        let mut batch = Batch::new();
        let id = self.account_made_in(&mut batch, user_id, &self.personal_account(user_id));
        self.store.run(batch).await?;
        id.get()?
            .ok_or_else(|| DirectoryError::Store(StoreError::Protocol("no account".into())))
    }

    /// Queues the read of member `user_id`'s personal account, made first with
    /// id `made` (their [`Directory::personal_account`]) if the member has none
    /// (one map field written only when absent, then read: replicas racing
    /// agree on one account), so that an exchange needs no extra round trip for
    /// a member's first token.
    pub fn account_made_in(
        &self,
        batch: &mut Batch,
        user_id: &UserId,
        made: &AccountId,
    ) -> Handle<Option<AccountId>> {
        let _made = batch.map_put_if_absent(
            self.key(ACCOUNTS, user_id.as_str()),
            user_id.as_str().to_owned(),
            made.as_str().as_bytes().to_vec(),
        );
        self.account_in(batch, user_id)
    }

    /// The id member `user_id`'s personal account gets when it is made: a keyed
    /// digest of the user id, so an exchange knows it (for its token's `scope`)
    /// before the store answers. Accounts made before keep their random ids,
    /// which the store's answer then gives.
    pub fn personal_account(&self, user_id: &UserId) -> AccountId {
        let mac = self.account_mac.mac(&[user_id.as_str().as_bytes()]);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&mac[..16]);
        AccountId::from_digest(bytes)
    }

    /// The settings as this replica read them within the last
    /// [`super::PROFILE_MEMORY`], if it did.
    pub fn recent_settings(&self) -> Option<Settings> {
        self.settings.get(SETTINGS)
    }

    /// The account authentication settings, read from the store (the hot path
    /// that can live with a second's staleness queues [`Directory::settings_in`]).
    pub async fn settings(&self) -> Result<Settings> {
        let mut batch = Batch::new();
        let settings = self.read_settings_in(&mut batch);
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
        self.settings.forget(SETTINGS);
        self.store
            .exec(vec![Op::Set {
                key: self.settings_key(),
                value: to_json(&s),
                ttl: None,
            }])
            .await?;
        // This replica sees its own write at once.
        self.settings.put(SETTINGS.to_owned(), s.clone(), None);
        Ok(s)
    }
}
