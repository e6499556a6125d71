//! The `one-time-password-token-request.created` event, typed: the webhook body
//! ([`Event`]) and the payload it carries ([`Payload`]), field for field as the
//! platform sends them (SPEC §2 "Event").
//!
//! The payload is also what an outbox entry keeps while a delivery waits for a
//! retry, so its serialized form is a stored format: change a field and old
//! replicas can no longer read new entries (and the other way round).

use authgate_core::ids::{CredentialId, ProfileId, RealmId, UserId};
use authgate_core::integrations::{Integration, IntegrationType, OTP_REQUEST_CREATED};
use authgate_otp::{IssuedCode, OneTimeCode, Purpose};
use serde::{Deserialize, Serialize};

use crate::outbox::DeliveryEntry;

/// The webhook body: one event, for one integration, at one try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The event's id (a UUID), the same at every try and for every integration.
    pub id: String,
    /// The deployment (the authentication realm's id).
    pub store_id: RealmId,
    /// What happened: always `one-time-password-token-request.created`.
    pub triggered_by: String,
    /// Which try this is, from 1.
    pub attempt: u32,
    /// The integration the event is delivered to.
    pub integration: IntegrationInfo,
    /// What happened, in detail.
    pub payload: Payload,
    /// The integration's webhook settings.
    pub configuration: WebhookConfiguration,
}

impl Event {
    /// The body of `delivery`'s current try to `integration`, whose unsealed
    /// signing secret is `secret_key`; `store_id` names this deployment.
    pub fn new(
        delivery: &DeliveryEntry,
        store_id: &RealmId,
        integration: &Integration,
        secret_key: String,
    ) -> Self {
        Self {
            id: delivery.event_id.clone(),
            store_id: store_id.clone(),
            triggered_by: OTP_REQUEST_CREATED.to_owned(),
            attempt: delivery.attempt,
            integration: IntegrationInfo {
                id: integration.id.clone(),
                integration_type: integration.integration_type,
                name: integration.name.clone(),
                description: integration.description.clone(),
            },
            payload: delivery.payload.clone(),
            configuration: WebhookConfiguration {
                url: integration.url.clone(),
                secret_key,
            },
        }
    }
}

/// The integration an event is delivered to, as the body names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationInfo {
    /// The integration's id.
    pub id: String,
    /// `webhook` (an email integration sends no body).
    pub integration_type: IntegrationType,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
}

/// A webhook's settings, repeated in each body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookConfiguration {
    /// Where the body is posted.
    pub url: Option<String>,
    /// The shared secret (also sent as `X-MOLTIN-SECRET-KEY` and used to sign).
    pub secret_key: String,
}

/// An issued code and who it is for: the event's `payload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The authentication realm (the deployment).
    pub authentication_realm_id: RealmId,
    /// When the code was requested (RFC 3339).
    pub created_at: String,
    /// The code, in clear.
    #[serde(with = "code")]
    pub one_time_password_token: OneTimeCode,
    /// The password profile the code is for.
    pub password_profile_id: ProfileId,
    /// What the code is for.
    #[serde(with = "purpose")]
    pub purpose: Purpose,
    /// The same as `created_at`: a code request is never updated.
    pub updated_at: String,
    /// The user.
    pub user_authentication_info: UserAuthenticationInfo,
    /// The user's credential in the profile.
    pub user_authentication_password_profile_info: PasswordProfileInfo,
}

impl Payload {
    /// The payload of `issued`, requested at `created_at`, in the realm `realm_id`.
    pub fn new(realm_id: &RealmId, issued: &IssuedCode, created_at: &str) -> Self {
        Self {
            authentication_realm_id: realm_id.clone(),
            created_at: created_at.to_owned(),
            one_time_password_token: issued.code.clone(),
            password_profile_id: issued.profile.id.clone(),
            purpose: issued.purpose,
            updated_at: created_at.to_owned(),
            user_authentication_info: UserAuthenticationInfo {
                email: issued.user.email.clone(),
                id: issued.user.id.clone(),
                name: issued.user.name.clone(),
            },
            user_authentication_password_profile_info: PasswordProfileInfo {
                id: issued.credential.id.clone(),
                password_profile_id: issued.credential.password_profile_id.clone(),
                username: issued.credential.username.clone(),
            },
        }
    }
}

/// The user a code is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAuthenticationInfo {
    /// Email address, if the user has one (`null` otherwise).
    pub email: Option<String>,
    /// The user's id (also the account member id).
    pub id: UserId,
    /// Full name.
    pub name: String,
}

/// The credential (username in a profile) a code is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordProfileInfo {
    /// The credential's id.
    pub id: CredentialId,
    /// Its profile.
    pub password_profile_id: ProfileId,
    /// The username, canonical.
    pub username: String,
}

/// A code as its six characters.
pub(crate) mod code {
    use authgate_otp::OneTimeCode;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(code: &OneTimeCode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(code.as_str())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OneTimeCode, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        OneTimeCode::parse(&raw).map_err(D::Error::custom)
    }
}

/// A purpose as its wire name.
pub(crate) mod purpose {
    use authgate_otp::Purpose;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(purpose: &Purpose, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(purpose.as_str())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Purpose, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Purpose::parse(&raw).map_err(D::Error::custom)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// The ids of the test payload, as the gateway makes them.
    pub(crate) const REALM: &str = "5e1f0c3a-9d2b-4c6e-8f70-1a2b3c4d5e6f";
    pub(crate) const PROFILE: &str = "0b7d6c5a-4e3f-4a2b-9c1d-0e9f8a7b6c5d";
    const USER: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
    const CREDENTIAL: &str = "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f";

    /// An id of the test data.
    pub(crate) fn id<T: std::str::FromStr<Err = authgate_core::ids::IdError>>(
        s: &str,
    ) -> Result<T, String> {
        s.parse()
            .map_err(|e: authgate_core::ids::IdError| e.to_string())
    }

    /// A payload as the worker builds it, for tests.
    pub(crate) fn payload(purpose: Purpose, name: &str) -> Result<Payload, String> {
        Ok(Payload {
            authentication_realm_id: id(REALM)?,
            created_at: "2023-09-05T14:53:01.584Z".into(),
            one_time_password_token: OneTimeCode::parse("ab12cd").map_err(|e| e.to_string())?,
            password_profile_id: id(PROFILE)?,
            purpose,
            updated_at: "2023-09-05T14:53:01.584Z".into(),
            user_authentication_info: UserAuthenticationInfo {
                email: Some("jo@example.com".into()),
                id: id(USER)?,
                name: name.into(),
            },
            user_authentication_password_profile_info: PasswordProfileInfo {
                id: id(CREDENTIAL)?,
                password_profile_id: id(PROFILE)?,
                username: "jo+1@example.com".into(),
            },
        })
    }

    #[test]
    fn the_body_is_the_documented_event_field_for_field() -> Result<(), String> {
        let delivery = DeliveryEntry {
            event_id: "7a4b0a6e-0000-4000-8000-000000000001".into(),
            integration_id: "int-1".into(),
            attempt: 3,
            accepted_ms: 1_693_925_581_584,
            payload: payload(Purpose::ResetPassword, "Jo")?,
        };
        let integration: Integration = serde_json::from_value(json!({
            "id": "int-1", "name": "hook", "description": "codes", "enabled": true,
            "integration_type": "webhook", "observes": [OTP_REQUEST_CREATED],
            "url": "https://x.test/hook", "secret_key_sealed": null,
            "created_at": "t", "updated_at": "t"}))
        .map_err(|e| e.to_string())?;
        let event = Event::new(&delivery, &id(REALM)?, &integration, "shh".into());
        // What the gateway sent before the event was typed (a `json!` of these fields).
        let documented = json!({
            "id": "7a4b0a6e-0000-4000-8000-000000000001",
            "store_id": REALM,
            "triggered_by": "one-time-password-token-request.created",
            "attempt": 3,
            "integration": {"id": "int-1", "integration_type": "webhook", "name": "hook", "description": "codes"},
            "payload": {
                "authentication_realm_id": REALM,
                "created_at": "2023-09-05T14:53:01.584Z",
                "one_time_password_token": "ab12cd",
                "password_profile_id": PROFILE,
                "purpose": "reset_password",
                "updated_at": "2023-09-05T14:53:01.584Z",
                "user_authentication_info": {"email": "jo@example.com", "id": USER, "name": "Jo"},
                "user_authentication_password_profile_info": {"id": CREDENTIAL, "password_profile_id": PROFILE, "username": "jo+1@example.com"}
            },
            "configuration": {"url": "https://x.test/hook", "secret_key": "shh"}
        });
        assert_eq!(
            serde_json::to_value(&event).map_err(|e| e.to_string())?,
            documented
        );
        let back: Event = serde_json::from_value(documented).map_err(|e| e.to_string())?;
        assert_eq!(back, event);
        Ok(())
    }

    #[test]
    fn a_user_without_email_has_null_and_a_bad_code_is_refused() -> Result<(), String> {
        let mut p = payload(Purpose::PasswordlessAuthentication, "Jo")?;
        p.user_authentication_info.email = None;
        let v = serde_json::to_value(&p).map_err(|e| e.to_string())?;
        assert_eq!(v["user_authentication_info"]["email"], json!(null));
        assert_eq!(v["purpose"], "passwordless_authentication");
        let mut bad = v.clone();
        bad["one_time_password_token"] = json!("not a code");
        assert!(serde_json::from_value::<Payload>(bad).is_err());
        let mut bad = v.clone();
        bad["purpose"] = json!("order");
        assert!(serde_json::from_value::<Payload>(bad).is_err());
        let mut bad = v;
        bad["password_profile_id"] = json!("profile-1");
        assert!(serde_json::from_value::<Payload>(bad).is_err());
        Ok(())
    }
}
