//! A replica's memory of what it read from the store (the token sessions, in
//! the form a check uses), so that checking a token seen lately needs no
//! round trip.
//!
//! The cache is only as good as what tells it about changes: Redis pushes the
//! name of every session key written or deleted anywhere
//! (`CLIENT TRACKING ... BCAST`, in `redis::tracking`), and each push removes
//! the key here. While that channel is not known to be working the cache is
//! *not live*: it holds nothing, serves nothing, and every check goes to the
//! store (fail closed).
//!
//! A read races with the pushes: a write may land after the store answered
//! the read but before the answer is remembered. So a read starts with
//! [`ReadCache::begin`], which leaves a numbered placeholder; a push for the
//! key removes the placeholder; [`ReadCache::finish`] keeps the answer only if
//! its own placeholder is still there. Whatever order the read's answer and
//! the push arrive in, a stale answer is never kept.
//!
//! What is kept is what the reader made of the map ([`Remembered`]), not the
//! map: a token check keeps the session parsed, so a check from memory neither
//! parses it again nor holds the raw map beside it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a reader keeps of a map it read: any type of its own, which it gets
/// back with [`Any::downcast_ref`].
pub type Remembered = Arc<dyn Any + Send + Sync>;

/// Remembered maps, invalidated by the store's pushes; see the module's docs.
#[derive(Debug)]
pub struct ReadCache {
    inner: Mutex<Inner>,
    live: AtomicBool,
    max_entries: usize,
    max_age: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Cached>,
    next_ticket: u64,
}

#[derive(Debug)]
enum Cached {
    /// A read is under way; its number.
    Reading(u64),
    /// What the reader made of the store's answer, and when it was remembered.
    Known(Remembered, Instant),
}

/// A read under way ([`ReadCache::begin`]).
#[derive(Debug)]
pub struct Ticket {
    key: String,
    number: u64,
}

/// Counters for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Maps served from memory.
    pub hits: u64,
    /// Maps read from the store.
    pub misses: u64,
    /// Keys the store said changed.
    pub invalidations: u64,
    /// Maps held now.
    pub entries: usize,
    /// Whether the cache serves at all.
    pub live: bool,
}

impl ReadCache {
    /// A cache of at most `max_entries` maps, each kept at most `max_age`;
    /// not live until [`ReadCache::set_live`] says so.
    pub fn new(max_entries: usize, max_age: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            live: AtomicBool::new(false),
            max_entries: max_entries.max(1),
            max_age,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves nothing half-written that a
        // later reader could take for true: entries are replaced whole.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What was remembered of `key`, if the cache is live and has it fresh.
    pub fn get(&self, key: &str) -> Option<Remembered> {
        if !self.is_live() {
            return None;
        }
        let inner = self.lock();
        let found = match inner.entries.get(key) {
            Some(Cached::Known(kept, at)) if at.elapsed() < self.max_age => Some(kept.clone()),
            _ => None,
        };
        drop(inner);
        match &found {
            Some(_) => self.hits.fetch_add(1, Ordering::Relaxed),
            None => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        found
    }

    /// Marks the start of a read of `key` from the store; `None` when the
    /// cache is not live (the answer will not be kept).
    pub fn begin(&self, key: &str) -> Option<Ticket> {
        if !self.is_live() {
            return None;
        }
        let mut inner = self.lock();
        inner.next_ticket += 1;
        let number = inner.next_ticket;
        if !inner.entries.contains_key(key) && inner.entries.len() >= self.max_entries {
            // Full: drop one entry (any; the map's order is as good as random).
            if let Some(victim) = inner.entries.keys().next().cloned() {
                inner.entries.remove(&victim);
            }
        }
        inner
            .entries
            .insert(key.to_owned(), Cached::Reading(number));
        Some(Ticket {
            key: key.to_owned(),
            number,
        })
    }

    /// Keeps `kept` (what the reader made of the ticket's key's map), unless
    /// the key changed (or the cache stopped being live) since the read began.
    pub fn finish(&self, ticket: Ticket, kept: Remembered) {
        let mut inner = self.lock();
        if !self.is_live() {
            return;
        }
        if let Some(Cached::Reading(n)) = inner.entries.get(&ticket.key) {
            if *n == ticket.number {
                inner
                    .entries
                    .insert(ticket.key, Cached::Known(kept, Instant::now()));
            }
        }
    }

    /// Gives up a read (nothing worth keeping, such as a map that is not there).
    pub fn abandon(&self, ticket: Ticket) {
        let mut inner = self.lock();
        if let Some(Cached::Reading(n)) = inner.entries.get(&ticket.key) {
            if *n == ticket.number {
                inner.entries.remove(&ticket.key);
            }
        }
    }

    /// Forgets `key`: the store says it changed, or this replica changed it.
    pub fn invalidate(&self, key: &str) {
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        self.lock().entries.remove(key);
    }

    /// Forgets everything.
    pub fn invalidate_all(&self) {
        self.lock().entries.clear();
    }

    /// Starts or stops serving. Stopping forgets everything, reads under way
    /// included, so nothing read before the stop is kept after a restart.
    pub fn set_live(&self, live: bool) {
        let mut inner = self.lock();
        inner.entries.clear();
        self.live.store(live, Ordering::SeqCst);
    }

    /// Whether the cache serves.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }

    /// The counters, for the metrics.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            entries: self
                .lock()
                .entries
                .values()
                .filter(|c| matches!(c, Cached::Known(..)))
                .count(),
            live: self.is_live(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    fn kept(v: &str) -> Remembered {
        Arc::new(v.to_owned())
    }

    fn text(r: Option<Remembered>) -> Option<String> {
        r.and_then(|r| r.downcast_ref::<String>().cloned())
    }

    fn live(max: usize) -> ReadCache {
        let c = ReadCache::new(max, Duration::from_secs(60));
        c.set_live(true);
        c
    }

    #[test]
    fn a_read_is_kept_and_served_until_its_key_changes() {
        let c = live(10);
        assert!(c.get("k").is_none());
        let t = c.begin("k").expect("live");
        c.finish(t, kept("1"));
        assert_eq!(text(c.get("k")).as_deref(), Some("1"));
        c.invalidate("k");
        assert!(c.get("k").is_none());
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.invalidations), (1, 2, 1));
    }

    #[test]
    fn a_change_during_the_read_keeps_the_answer_out() {
        let c = live(10);
        let t = c.begin("k").expect("live");
        // The push for a write after the store answered arrives first.
        c.invalidate("k");
        c.finish(t, kept("stale"));
        assert!(
            c.get("k").is_none(),
            "an answer older than a change is not kept"
        );
    }

    #[test]
    fn only_the_latest_read_of_a_key_is_kept() {
        let c = live(10);
        let first = c.begin("k").expect("live");
        c.invalidate("k");
        let second = c.begin("k").expect("live");
        c.finish(first, kept("old"));
        assert!(c.get("k").is_none());
        c.finish(second, kept("new"));
        assert_eq!(text(c.get("k")).as_deref(), Some("new"));
    }

    #[test]
    fn a_cache_that_is_not_live_serves_and_keeps_nothing() {
        let c = ReadCache::new(10, Duration::from_secs(60));
        assert!(c.begin("k").is_none());
        c.set_live(true);
        let t = c.begin("k").expect("live");
        c.finish(t, kept("1"));
        let t = c.begin("j").expect("live");
        c.set_live(false);
        assert!(c.get("k").is_none(), "stopping forgets what it held");
        c.set_live(true);
        c.finish(t, kept("1"));
        assert!(
            c.get("j").is_none(),
            "a read begun before a stop is not kept after the restart"
        );
        assert!(c.get("k").is_none());
    }

    #[test]
    fn the_cache_holds_at_most_its_bound_and_forgets_old_answers() {
        let c = live(3);
        for k in ["a", "b", "c", "d", "e"] {
            let t = c.begin(k).expect("live");
            c.finish(t, kept(k));
        }
        assert_eq!(c.stats().entries, 3);
        let c = ReadCache::new(3, Duration::from_millis(1));
        c.set_live(true);
        let t = c.begin("k").expect("live");
        c.finish(t, kept("1"));
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.get("k").is_none(), "older than the bound's age");
    }

    #[test]
    fn what_a_reader_kept_comes_back_as_its_own_type_until_the_key_changes() {
        #[derive(Debug, PartialEq)]
        struct Parsed(u32);
        let c = live(10);
        let t = c.begin("k").expect("live");
        c.finish(t, Arc::new(Parsed(7)));
        let got = c.get("k").expect("kept");
        assert_eq!(got.downcast_ref::<Parsed>(), Some(&Parsed(7)));
        assert!(
            got.downcast_ref::<String>().is_none(),
            "no other type is made up"
        );
        c.invalidate("k");
        assert!(c.get("k").is_none(), "a change forgets it");
    }

    #[test]
    fn an_abandoned_read_leaves_nothing() {
        let c = live(3);
        let t = c.begin("k").expect("live");
        c.abandon(t);
        assert!(c.get("k").is_none());
        assert_eq!(c.stats().entries, 0);
    }
}
