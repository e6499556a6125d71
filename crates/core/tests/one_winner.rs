//! "Exactly one winner" on the memory store, as a property: many tasks race for
//! one single-use thing (a value taken once, a code checked once, a refresh token
//! rotated once), and proptest chooses how many, what each presents, how long
//! each waits before it goes, what else each batch carries, and how many worker
//! threads run them. Whatever the interleaving, the thing is spent exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use authgate_core::crypto::Keyring;
use authgate_core::ids::{RealmId, UserId};
use authgate_core::store::{Batch, Keys, MemoryStore, Store, StoreExt};
use authgate_core::store::{CodeCheck, StoreError};
use authgate_core::tokens::{Refresh, Role, Scheme, Subject, SubjectId, TokenService};
use proptest::collection::vec;
use proptest::prelude::*;
use secrecy::SecretString;
use tokio::sync::Barrier;

const MAX_TASKS: usize = 32;
const TTL: Duration = Duration::from_secs(60);

/// How one racer behaves before and around its operation.
#[derive(Debug, Clone)]
struct Racer {
    /// Times it yields to the scheduler after the start signal.
    yields: u8,
    /// Whether it sleeps a little (a real timer) before it goes.
    sleeps: bool,
    /// Unrelated reads queued in its batch before the operation.
    noise: u8,
}

fn racer() -> impl Strategy<Value = Racer> {
    (0u8..16, any::<bool>(), 0u8..3).prop_map(|(yields, sleeps, noise)| Racer {
        yields,
        sleeps,
        noise,
    })
}

impl Racer {
    async fn wait(&self, start: &Barrier) {
        start.wait().await;
        for _ in 0..self.yields {
            tokio::task::yield_now().await;
        }
        if self.sleeps {
            tokio::time::sleep(Duration::from_micros(u64::from(self.yields) * 50)).await;
        }
    }

    fn noise(&self, batch: &mut Batch) {
        for i in 0..self.noise {
            let _ = batch.get(format!("noise:{i}"));
        }
    }
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Runs `race` for each racer at once (after a common start signal) and
/// collects the results.
async fn race_all<T, F, Fut>(racers: &[Racer], race: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize, Racer, Arc<Barrier>) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let start = Arc::new(Barrier::new(racers.len()));
    let tasks: Vec<_> = racers
        .iter()
        .enumerate()
        .map(|(i, r)| tokio::spawn(race(i, r.clone(), start.clone())))
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("no racer panics"));
    }
    out
}

fn tokens(store: Arc<dyn Store>) -> TokenService {
    TokenService::new(
        store,
        Keys::new("p:"),
        &Keyring::new(SecretString::from("one winner".to_owned())),
        Duration::from_secs(60),
        Duration::from_secs(600),
    )
}

fn subject() -> Subject {
    Subject {
        id: SubjectId::User(UserId::new()),
        username: "jo".into(),
        realm_id: RealmId::new(),
        scheme: Scheme::OneTimeKey,
        role: Role::User,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// A value taken by many at once is had by exactly one.
    #[test]
    fn a_value_taken_by_many_is_had_by_exactly_one(
        racers in vec(racer(), 2..MAX_TASKS),
        threads in 1usize..4,
    ) {
        let won = runtime(threads).block_on(async {
            let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
            store.set("key", b"nonce".to_vec(), Some(TTL)).await?;
            let results = race_all(&racers, |_, r, start| {
                let store = store.clone();
                async move {
                    r.wait(&start).await;
                    let mut batch = Batch::new();
                    r.noise(&mut batch);
                    let taken = batch.take("key".to_owned());
                    store.run(batch).await?;
                    taken.get()
                }
            })
            .await;
            let mut won = Vec::new();
            for taken in results {
                if let Some(v) = taken? {
                    won.push(v);
                }
            }
            // Gone for good.
            assert_eq!(store.get("key").await?, None);
            Ok::<_, StoreError>(won)
        })?;
        prop_assert_eq!(won, vec![b"nonce".to_vec()]);
    }

    /// A code checked by many at once, some with the right digest and some with
    /// wrong ones (repeats among them), ends exactly once: matched by one racer
    /// or burnt by one wrong try, whichever comes first; and it ends at all
    /// exactly when someone had it right or enough different wrong tries came.
    #[test]
    fn a_code_checked_by_many_ends_exactly_once(
        guesses in vec((racer(), prop_oneof![Just(None), (0u8..6).prop_map(Some)]), 2..MAX_TASKS),
        max_tries in 1u64..8,
        threads in 1usize..4,
    ) {
        let racers: Vec<Racer> = guesses.iter().map(|(r, _)| r.clone()).collect();
        let digests: Vec<String> = guesses
            .iter()
            .map(|(_, g)| match g {
                None => "right".to_owned(),
                Some(n) => format!("wrong{n}"),
            })
            .collect();
        let outcomes = runtime(threads).block_on(async {
            let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
            store.set("code", b"right".to_vec(), Some(TTL)).await?;
            let digests = Arc::new(digests.clone());
            let results = race_all(&racers, |i, r, start| {
                let (store, digests) = (store.clone(), digests.clone());
                async move {
                    r.wait(&start).await;
                    let mut batch = Batch::new();
                    r.noise(&mut batch);
                    let check = batch.check_code("code".to_owned(), digests[i].clone(), max_tries);
                    store.run(batch).await?;
                    check.get()
                }
            })
            .await;
            results.into_iter().collect::<Result<Vec<CodeCheck>, StoreError>>()
        })?;
        let matched = outcomes.iter().filter(|o| **o == CodeCheck::Matched).count();
        let burnt = outcomes
            .iter()
            .filter(|o| **o == CodeCheck::Wrong { burnt: true })
            .count();
        let right = digests.iter().filter(|d| *d == "right").count();
        let distinct_wrong = {
            let mut w: Vec<&String> = digests.iter().filter(|d| *d != "right").collect();
            w.sort();
            w.dedup();
            w.len() as u64
        };
        prop_assert!(matched <= 1, "{outcomes:?}");
        prop_assert!(matched + burnt <= 1, "{outcomes:?}");
        let must_end = right > 0 || distinct_wrong >= max_tries;
        prop_assert_eq!(matched + burnt, usize::from(must_end), "{:?}", outcomes);
        // With fewer different wrong tries than it takes to burn it, a right
        // digest always wins.
        if right > 0 && distinct_wrong < max_tries {
            prop_assert_eq!(matched, 1);
        }
        // Only a racer with the right digest can match.
        for (o, d) in outcomes.iter().zip(&digests) {
            if *o == CodeCheck::Matched {
                prop_assert_eq!(d.as_str(), "right");
            }
        }
    }

    /// A refresh token presented by many at once is rotated for exactly one; the
    /// next to present it is caught reusing it, which ends the session (so the
    /// winner's new tokens die too), and the rest find nothing. Forged tokens of
    /// the same session, racing along, get nothing and change nothing.
    #[test]
    fn a_refresh_token_presented_by_many_is_rotated_for_exactly_one(
        racers in vec((racer(), any::<bool>()), 2..MAX_TASKS),
        threads in 1usize..4,
    ) {
        let honest = racers.iter().filter(|(_, forged)| !forged).count();
        let (outcomes, winner_alive, access_alive) = runtime(threads).block_on(async {
            let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
            let service = tokens(store);
            let issued = service.issue(&subject(), None).await?;
            let refresh = issued.refresh_token.clone().expect("a refresh token");
            // Same kind and session, another secret of the same shape.
            let forged = format!("{}{}", &refresh[..refresh.len() - 43], "A".repeat(43));
            let presented: Vec<String> = racers
                .iter()
                .map(|(_, f)| if *f { forged.clone() } else { refresh.clone() })
                .collect();
            let presented = Arc::new(presented);
            let rs: Vec<Racer> = racers.iter().map(|(r, _)| r.clone()).collect();
            let results = race_all(&rs, |i, r, start| {
                let (service, presented) = (service.clone(), presented.clone());
                async move {
                    r.wait(&start).await;
                    service.refresh(&presented[i]).await
                }
            })
            .await;
            let outcomes = results.into_iter().collect::<Result<Vec<Refresh>, StoreError>>()?;
            let new_refresh = outcomes.iter().find_map(|o| match o {
                Refresh::Rotated(t, _) => t.refresh_token.clone(),
                _ => None,
            });
            let winner_alive = match new_refresh {
                Some(t) => matches!(service.refresh(&t).await?, Refresh::Rotated(..)),
                None => false,
            };
            let access_alive = service.verify(&issued.access_token).await?.is_some();
            Ok::<_, StoreError>((outcomes, winner_alive, access_alive))
        })?;
        let rotated = outcomes.iter().filter(|o| matches!(o, Refresh::Rotated(..))).count();
        let reused = outcomes.iter().filter(|o| matches!(o, Refresh::Reused)).count();
        let invalid = outcomes.iter().filter(|o| matches!(o, Refresh::Invalid)).count();
        prop_assert_eq!(rotated, usize::from(honest > 0), "{:?}", outcomes);
        prop_assert_eq!(reused, usize::from(honest > 1), "{:?}", outcomes);
        prop_assert_eq!(invalid, racers.len() - rotated - reused);
        // Forged tokens never win.
        for ((_, forged), o) in racers.iter().zip(&outcomes) {
            if *forged {
                prop_assert!(matches!(o, Refresh::Invalid));
            }
        }
        // Reuse ends the session; a lone honest refresh keeps it, rotated (so the
        // first access token is replaced either way).
        prop_assert_eq!(winner_alive, honest == 1);
        prop_assert_eq!(access_alive, honest == 0);
    }
}
