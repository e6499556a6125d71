//! Password hashing at rest: Argon2id in PHC string form, with the crate's
//! default (OWASP-recommended) parameters.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// The shortest password the directory accepts.
pub const MIN_PASSWORD_LEN: usize = 8;
/// The longest password the directory accepts (bounds hashing work).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Hashes `password` with a fresh salt. CPU-heavy: call it off the async workers.
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_else(|e| unreachable!("argon2 with default parameters failed: {e}"))
}

/// Whether `password` matches the PHC string `phc` (false for a malformed string).
/// CPU-heavy: call it off the async workers.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// At most this many hashes run at once per process: each Argon2id computation
/// holds 19 MiB, so unbounded concurrency turns a burst of logins into gigabytes
/// of memory. Further requests wait their turn.
fn hashing_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    })
}

/// [`hash`] on a blocking thread, within the process's hashing slots.
pub async fn hash_async(password: String) -> String {
    let _slot = hashing_slots().acquire().await;
    let fallback = password.clone();
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .unwrap_or_else(|_| hash(&fallback))
}

/// [`verify`] on a blocking thread, within the process's hashing slots.
pub async fn verify_async(password: String, phc: String) -> bool {
    let _slot = hashing_slots().acquire().await;
    tokio::task::spawn_blocking(move || verify(&password, &phc))
        .await
        .unwrap_or(false)
}

/// A PHC string for a password nobody knows, so that a login for an unknown user
/// costs the same hashing work as one for a known user.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash(&crate::crypto::random_token::<24>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashing_runs_at_most_one_per_core_at_once() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let busy = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..cores * 3)
            .map(|_| {
                let (busy, peak) = (busy.clone(), peak.clone());
                tokio::spawn(async move {
                    let _slot = hashing_slots().acquire().await;
                    let now = busy.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    busy.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        let peak = peak.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            (1..=cores).contains(&peak),
            "peak {peak} with {cores} cores"
        );
        assert!(verify_async("pw123456".into(), hash_async("pw123456".into()).await).await);
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsE", &h));
        assert!(!verify("correct horse", "not a phc string"));
    }
}
