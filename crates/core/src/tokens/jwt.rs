//! The account management authentication token: an HS256 JWT whose `jti` names
//! the session that makes it revocable. Signing it and reading the session back
//! out of it; the session itself is an ordinary one of the token service.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;

use super::{now, session_fields, Subject, TokenService};
use crate::crypto::ct_eq;
use crate::ids::{AccountId, SessionId};
use crate::store::{Batch, Handle, StoreError, StoreExt};

/// An account token whose session is queued on a batch
/// ([`TokenService::account_token_in`]), not yet handed out. The caller runs
/// the batch, checks what it read along with it (the member is still enabled,
/// the account is the one in the token), then [`PendingAccountToken::keep`]s
/// it. Dropped unkept, its session is deleted: a token nobody was given must
/// not leave a session behind.
#[derive(Debug)]
#[must_use = "an unkept account token's session is deleted when it is dropped"]
pub struct PendingAccountToken {
    token: String,
    exp: i64,
    sid: SessionId,
    written: Vec<Handle<()>>,
    /// `None` once kept.
    service: Option<TokenService>,
}

impl PendingAccountToken {
    /// The token and its expiry (Unix time), once its session's writes are done.
    pub fn keep(mut self) -> Result<(String, i64), StoreError> {
        std::mem::take(&mut self.written)
            .into_iter()
            .try_for_each(Handle::get)?;
        self.service = None;
        Ok((std::mem::take(&mut self.token), self.exp))
    }
}

impl Drop for PendingAccountToken {
    fn drop(&mut self) {
        let Some(service) = self.service.take() else {
            return;
        };
        let sid = self.sid.clone();
        // Without a runtime (nothing ran the batch either) there is nothing to undo
        // but a session no token reaches, which expires with its lifetime.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = service.revoke_session(&sid).await {
                    tracing::warn!(error = %e, "could not delete the session of an account token that was not handed out; it expires with its lifetime");
                }
            });
        }
    }
}

/// `{"alg":"HS256","typ":"JWT"}` in base64url, every token's first part.
const HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// An account token's claims, written straight to JSON in the order a
/// `serde_json::Value` writes them (by name), as every token before did.
#[derive(serde::Serialize)]
struct Claims<'a> {
    account_member_self_management: &'a str,
    exp: i64,
    iat: i64,
    jti: &'a str,
    realm_id: &'a str,
    scope: &'a str,
    sub: &'a str,
}

impl Claims<'_> {
    fn json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| unreachable!("strings and integers serialize"))
    }
}

impl TokenService {
    fn jwt_mac(&self, signing_input: &str) -> [u8; 32] {
        let mut mac = self.jwt_mac.clone();
        mac.update(signing_input.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The session id (`jti`) of a JWT whose HS256 signature is ours.
    pub(super) fn jwt_session(&self, token: &str) -> Option<SessionId> {
        let (input, signature) = token.rsplit_once('.')?;
        let (header, payload) = input.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        if !ct_eq(&signature, &self.jwt_mac(input)) {
            return None;
        }
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.get("alg")?.as_str()? != "HS256" {
            return None;
        }
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        SessionId::parse(claims.get("jti")?.as_str()?).ok()
    }

    /// Issues an account management authentication token: an HS256 JWT with the
    /// platform's claims plus `jti`, the session that makes it revocable.
    /// Returns the token and its expiry (Unix time).
    pub async fn issue_account_token(
        &self,
        subject: &Subject,
        ttl: Duration,
        account_id: &AccountId,
        self_management: &str,
    ) -> Result<(String, i64), StoreError> {
        let mut batch = Batch::new();
        let pending = self.account_token_in(&mut batch, subject, ttl, account_id, self_management);
        self.store.run(batch).await?;
        pending.keep()
    }

    /// [`TokenService::issue_account_token`] with the session's writes queued on
    /// `batch`, so that they share a round trip with the caller's reads.
    pub fn account_token_in(
        &self,
        batch: &mut Batch,
        subject: &Subject,
        ttl: Duration,
        account_id: &AccountId,
        self_management: &str,
    ) -> PendingAccountToken {
        let sid = SessionId::new();
        let iat = now();
        let exp = iat + ttl.as_secs() as i64;
        let claims = Claims {
            account_member_self_management: self_management,
            exp,
            iat,
            jti: sid.as_str(),
            realm_id: subject.realm_id.as_str(),
            scope: account_id.as_str(),
            sub: subject.id.as_str(),
        };
        let mut token = String::with_capacity(384);
        token.push_str(HEADER);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.json(), &mut token);
        let signature = self.jwt_mac(&token);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        let written = self.session_in(
            batch,
            &sid,
            subject,
            session_fields(subject, &token, exp),
            ttl,
        );
        PendingAccountToken {
            token,
            exp,
            sid,
            written,
            service: Some(self.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claims_and_header_are_written_as_a_json_value_writes_them() {
        assert_eq!(
            URL_SAFE_NO_PAD.decode(HEADER).unwrap_or_default(),
            br#"{"alg":"HS256","typ":"JWT"}"#
        );
        let claims = Claims {
            account_member_self_management: "update_only",
            exp: 1_799_278_619,
            iat: -5,
            jti: "pQnzoNAAs9bWgu_VgQpY_A",
            realm_id: "d1f86b63-2ed7-48e3-a2b9-72ede5437c55",
            scope: "a\"b\\c\u{1}é",
            sub: "",
        };
        let value = serde_json::json!({
            "sub": claims.sub,
            "realm_id": claims.realm_id,
            "scope": claims.scope,
            "iat": claims.iat,
            "exp": claims.exp,
            "account_member_self_management": claims.account_member_self_management,
            "jti": claims.jti,
        });
        assert_eq!(
            String::from_utf8(claims.json()).unwrap_or_default(),
            value.to_string()
        );
    }
    use crate::tokens::tests::{alice, id, service, ACCT1, U1};
    use crate::tokens::Scheme;

    #[tokio::test]
    async fn an_account_token_is_a_signed_jwt_backed_by_a_revocable_session(
    ) -> Result<(), StoreError> {
        let s = service();
        let mut who = alice();
        who.scheme = Scheme::AccountManagement;
        let (jwt, exp) = s
            .issue_account_token(&who, Duration::from_secs(60), &id(ACCT1), "update_only")
            .await?;
        assert_eq!(jwt.split('.').count(), 3);
        let claims: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(jwt.split('.').nth(1).unwrap_or_default())
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        assert_eq!(claims["sub"], U1);
        assert_eq!(claims["scope"], ACCT1);
        assert_eq!(claims["exp"], exp);
        let p = s.verify(&jwt).await?.map(|p| p.subject);
        assert_eq!(p, Some(who));
        // A forged signature or a changed claim is refused.
        let (input, _) = jwt.rsplit_once('.').unwrap_or_default();
        assert_eq!(s.verify(&format!("{input}.AAAA")).await?, None);
        assert!(s.revoke(&jwt).await?);
        assert_eq!(s.verify(&jwt).await?, None, "revocation is immediate");
        Ok(())
    }
}
