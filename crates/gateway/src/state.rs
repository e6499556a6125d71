//! What every handler shares: the store, the services and the client settings.
//!
//! Built once by [`AppState::build`], which also bootstraps what all replicas must
//! agree on (the realm, generated secrets) through the store.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use authgate_core::crypto::{ct_eq, digest, random_token, Keyring};
use authgate_core::directory::Directory;
use authgate_core::integrations::Integrations;
use authgate_core::limits::{AddressCount, AddressLimiter};
use authgate_core::store::{Batch, Keys, MemoryStore, RedisStore, Store, StoreError, StoreExt};
use authgate_core::text;
use authgate_core::tokens::TokenService;
use authgate_delivery::{DeliveryConfig, Mailer, Outbox, Senders};
use authgate_onetimekey::{KeyScheme, KeySchemeConfig};
use authgate_otp::{OtpConfig, OtpScheme};
use poem::Request;
use secrecy::{ExposeSecret, SecretString};

use crate::config::Config;
use crate::metrics::Metrics;

/// Shared state of one gateway instance.
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Key naming.
    pub keys: Keys,
    /// Sessions and tokens.
    pub tokens: TokenService,
    /// Realm, profiles, users, credentials.
    pub directory: Directory,
    /// The one-time login key scheme.
    pub key_scheme: KeyScheme,
    /// The one-time password token scheme.
    pub otp: OtpScheme,
    /// Integrations and their logs.
    pub integrations: Integrations,
    /// Where accepted events wait for delivery.
    pub outbox: Outbox,
    /// How deliveries are tried.
    pub delivery: DeliveryConfig,
    /// The webhook client and the mailer the delivery worker sends with.
    pub senders: Senders,
    /// Request and funnel metrics.
    pub metrics: Arc<Metrics>,
    /// The API client's id.
    pub client_id: String,
    /// Digest of the API client's secret.
    client_secret_digest: String,
    /// Lifetime of client tokens.
    pub client_token_ttl: Duration,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// The per-address limit of login-related requests.
    pub addresses: AddressLimiter,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store.kind())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Generated secrets the operator must learn about once.
#[derive(Debug, Default)]
pub struct Generated {
    /// The API client secret, when this instance generated it.
    pub client_secret: Option<SecretString>,
    /// Whether this instance generated the token secret.
    pub token_secret: bool,
}

impl AppState {
    /// Connects the store and builds the services from `config`.
    pub async fn build(config: &Config) -> anyhow::Result<(Arc<Self>, Generated)> {
        let keys = Keys::new(&config.redis_prefix);
        let store: Arc<dyn Store> = match config.redis_options() {
            Some(options) => {
                let store = RedisStore::connect_with(&options).await?;
                Arc::new(match config.verify_cache_entries {
                    0 => store,
                    entries => store.with_session_cache(
                        keys.session_prefix(),
                        entries,
                        config.verify_cache_max_age,
                    ),
                })
            }
            None => Arc::new(MemoryStore::new()),
        };
        let mut generated = Generated::default();

        let token_secret = match &config.token_secret {
            Some(s) => s.clone(),
            None => {
                let (secret, fresh) = shared_secret(
                    &*store,
                    &keys.bootstrap("token-secret"),
                    random_token::<32>(),
                )
                .await?;
                generated.token_secret = fresh;
                SecretString::from(secret)
            }
        };
        let client_secret_digest = match &config.client_secret {
            Some(s) => digest(s.expose_secret()),
            None => {
                let candidate = random_token::<24>();
                let (stored, fresh) = shared_secret(
                    &*store,
                    &keys.bootstrap("client-secret-digest"),
                    digest(&candidate),
                )
                .await?;
                if fresh {
                    generated.client_secret = Some(SecretString::from(candidate));
                }
                stored
            }
        };
        let keyring = Keyring::new(token_secret);
        // Replicas with different secrets would refuse each other's keys and tokens
        // with nothing but 401s: compare fingerprints through the store instead.
        let fingerprint = hex::encode(keyring.mac("token secret fingerprint", &[]));
        let (agreed, _) = shared_secret(
            &*store,
            &keys.bootstrap("token-secret-fingerprint"),
            fingerprint.clone(),
        )
        .await?;
        if agreed != fingerprint {
            anyhow::bail!(
                "AUTHGATE_TOKEN_SECRET differs from the secret the other replicas sharing this store use; \
                 give every replica the same value (or, to rotate it, start from an empty store prefix)"
            );
        }
        let keyring_for_integrations = keyring.clone();
        let tokens = TokenService::new(
            store.clone(),
            keys.clone(),
            &keyring,
            config.access_token_ttl,
            config.refresh_token_ttl,
        );
        let directory = Directory::open(
            store.clone(),
            keys.clone(),
            keyring,
            tokens.clone(),
            authgate_onetimekey::digest::ha1,
            86_400,
        )
        .await?;
        let integrations = Integrations::new(store.clone(), keys.clone(), keyring_for_integrations);
        let mut mailer = Mailer::new(
            config.smtp_url.as_ref(),
            config.email_from.clone(),
            config.email_templates.clone(),
        )?
        // Integrations that name no page link to the hosted pages (`crate::ui`).
        .with_public_url(config.public_url.clone());
        if config.redis_url.is_none() {
            // Trying the gateway on the embedded store needs no mail server either.
            mailer = mailer.or_log();
        }
        let delivery = DeliveryConfig {
            max_attempts: config.webhook_max_attempts,
            retry_base: config.webhook_retry_base,
            claim_after: config.delivery_claim_after,
            give_up_after: config.otp_ttl,
            ..DeliveryConfig::default()
        };
        // Fails rather than sending webhooks without a timeout or following redirects.
        let senders = Senders::new(&delivery, mailer)?;
        let outbox = Outbox::new(store.clone(), keys.clone(), directory.realm_id().clone());
        let metrics = Arc::new(Metrics::default());
        if let Some(cache) = store.read_cache() {
            metrics.watch_cache(cache);
        }
        let otp = OtpScheme::new(
            store.clone(),
            keys.clone(),
            directory.clone(),
            OtpConfig {
                ttl: config.otp_ttl,
                max_tries: 5,
                limits: config.limits,
            },
        )
        .with_observer(metrics.clone());
        let key_scheme = KeyScheme::new(
            store.clone(),
            keys.clone(),
            tokens.clone(),
            &directory,
            KeySchemeConfig {
                key_ttl: config.login_key_ttl,
                reveal_unknown_users: config.reveal_unknown_users,
                limits: config.limits,
            },
        )
        .with_observer(metrics.clone());
        let addresses = AddressLimiter::new(keys.clone(), config.limits.per_ip);
        let state = Self {
            addresses,
            store,
            keys,
            tokens,
            directory,
            key_scheme,
            otp,
            integrations,
            outbox,
            delivery,
            senders,
            metrics,
            client_id: config.client_id.clone(),
            client_secret_digest,
            client_token_ttl: config.client_token_ttl,
            trusted_proxies: config.trusted_proxies.clone(),
        };
        Ok((Arc::new(state), generated))
    }

    /// Whether `secret` is the API client's secret (constant time).
    pub fn client_secret_matches(&self, secret: &str) -> bool {
        ct_eq(
            digest(secret).as_bytes(),
            self.client_secret_digest.as_bytes(),
        )
    }

    /// Queues the count of a request from the client's address (`bucket` names
    /// the counter: logins and client authentication are counted apart).
    pub fn count_address(&self, batch: &mut Batch, req: &Request, bucket: &str) -> AddressCount {
        self.addresses.count_in(batch, bucket, &self.client_ip(req))
    }

    /// 429 when the counted address is past its limit.
    pub fn address_verdict(&self, counted: AddressCount) -> Result<(), crate::errors::ApiError> {
        self.addresses
            .verdict(counted)?
            .map_err(crate::errors::ApiError::too_many)
    }

    /// Counts a request from the client's address on its own round trip; 429 past
    /// the limit.
    pub async fn count_ip(
        &self,
        req: &Request,
        bucket: &str,
    ) -> Result<(), crate::errors::ApiError> {
        let mut batch = Batch::new();
        let counted = self.count_address(&mut batch, req, bucket);
        self.store.run(batch).await?;
        self.address_verdict(counted)
    }

    /// The client's address: the peer, or the nearest untrusted hop of
    /// `X-Forwarded-For` when the peer is a trusted proxy.
    pub fn client_ip(&self, req: &Request) -> String {
        let peer = req
            .remote_addr()
            .as_socket_addr()
            .map(|a| a.ip().to_canonical());
        let Some(peer) = peer else {
            return "unknown".to_owned();
        };
        if !self.trusted_proxies.contains(&peer) {
            return text::address(peer);
        }
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter_map(|s| s.parse::<IpAddr>().ok())
            .map(|ip| ip.to_canonical())
            .collect::<Vec<_>>();
        forwarded
            .iter()
            .rev()
            .find(|ip| !self.trusted_proxies.contains(ip))
            .or(forwarded.first())
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| peer.to_string())
    }
}

/// A value every replica agrees on: the first writer's wins. Returns it and
/// whether this call wrote it.
async fn shared_secret(
    store: &dyn Store,
    key: &str,
    candidate: String,
) -> Result<(String, bool), StoreError> {
    let mut batch = Batch::new();
    let fresh = batch.put_if_absent(key.to_owned(), candidate.into_bytes(), None);
    let value = batch.get(key.to_owned());
    store.run(batch).await?;
    let fresh = fresh.get()?;
    let value = value
        .get()?
        .ok_or_else(|| StoreError::Protocol(format!("{key} vanished")))?;
    Ok((String::from_utf8_lossy(&value).into_owned(), fresh))
}
