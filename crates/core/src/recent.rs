//! A replica's short memory of answers it read from the store.
//!
//! Some reads are made on every request but change rarely (a password profile) or
//! are only ever revoked, never altered (an API client's session). Remembering
//! them for about a second saves a store round trip on the hot path and bounds
//! how stale a replica can be: a change made through another replica is seen
//! here within [`Recent::ttl`]; one made through this replica at once, since its
//! writers call [`Recent::forget`]. Nothing is remembered past a deadline the
//! caller gives (a token's expiry), and nothing that is absent is remembered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Answers remembered for at most `ttl` each, at most `capacity` of them.
#[derive(Debug, Clone)]
pub struct Recent<V> {
    ttl: Duration,
    capacity: usize,
    entries: Arc<Mutex<HashMap<String, (V, Instant)>>>,
}

impl<V: Clone> Recent<V> {
    /// Remembers up to `capacity` answers for `ttl` each; a zero `ttl` remembers nothing.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Arc::default(),
        }
    }

    /// How long an answer is remembered.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The answer remembered under `key`, if it is still fresh.
    pub fn get(&self, key: &str) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(key) {
            Some((value, until)) if Instant::now() < *until => Some(value.clone()),
            _ => None,
        }
    }

    /// Remembers `value` under `key` for the ttl, or until `deadline` if sooner.
    pub fn put(&self, key: String, value: V, deadline: Option<Instant>) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let until = deadline.map_or(now + self.ttl, |d| d.min(now + self.ttl));
        if until <= now {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            entries.retain(|_, (_, u)| *u > now);
            if entries.len() >= self.capacity {
                // Full of fresh answers: start over rather than grow (they cost one read each).
                entries.clear();
            }
        }
        entries.insert(key, (value, until));
    }

    /// Forgets the answer under `key` (its writer changed or removed it).
    pub fn forget(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_kept_for_the_ttl_or_until_the_deadline() {
        let r = Recent::new(Duration::from_millis(50), 10);
        r.put("a".into(), 1, None);
        r.put(
            "b".into(),
            2,
            Some(Instant::now() + Duration::from_millis(5)),
        );
        r.put("c".into(), 3, Some(Instant::now()));
        assert_eq!(r.get("a"), Some(1));
        assert_eq!(r.get("b"), Some(2));
        assert_eq!(r.get("c"), None, "a deadline already past keeps nothing");
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(r.get("b"), None, "the deadline came before the ttl");
        assert_eq!(r.get("a"), Some(1));
        std::thread::sleep(Duration::from_millis(45));
        assert_eq!(r.get("a"), None);
    }

    #[test]
    fn forget_and_zero_ttl_and_capacity() {
        let r = Recent::new(Duration::from_secs(5), 2);
        r.put("a".into(), 1, None);
        r.forget("a");
        assert_eq!(r.get("a"), None);
        r.put("a".into(), 1, None);
        r.put("b".into(), 2, None);
        r.put("c".into(), 3, None);
        assert_eq!(r.get("c"), Some(3));
        assert!(r.entries.lock().map(|e| e.len() <= 2).unwrap_or(false));
        let off = Recent::new(Duration::ZERO, 2);
        off.put("a".into(), 1, None);
        assert_eq!(off.get("a"), None);
    }
}
