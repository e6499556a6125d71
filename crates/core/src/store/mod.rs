//! The store: the few atomic operations the schemes need, behind one trait.
//!
//! Every lifetime is a TTL kept by the store and every "single use" is one atomic
//! operation of the store, so any number of gateway replicas sharing one Redis see
//! the same keys, codes, sessions and counters. A caller hands the store a batch of
//! [`Op`]s and gets one [`Reply`] per op back: the Redis store sends a batch as one
//! pipeline (one network round trip), the memory store runs it under one lock.
//! Each op is atomic on its own; a batch as a whole is not a transaction.
//!
//! Outside this module nobody names an [`Op`] or decodes a [`Reply`]: callers
//! queue typed operations on a [`Batch`] and read each result from its
//! [`Handle`] ([`StoreExt::run`]).

mod batch;
pub mod cache;
mod memory;
mod redis;
pub mod slot;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::text::concat;

pub use self::batch::{Batch, Count, Entry, Handle, Limited, Mapped};
pub use self::cache::{CacheStats, ReadCache, Remembered};
pub use self::memory::MemoryStore;
pub use self::redis::{
    ensure_tls_provider, without_credentials, RedisMode, RedisOptions, RedisStore,
    REDIS_QUEUE_LIMIT,
};

/// The store could not be reached or answered something unexpected.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend is unreachable or failed the command; the request may be retried later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with a shape this code did not expect (a bug or a foreign key).
    #[error("unexpected store reply: {0}")]
    Protocol(String),
    /// The store is configured in a way that cannot work (a bad URL, an
    /// unreadable certificate): retrying will not help.
    #[error("store misconfigured: {0}")]
    Config(String),
}

/// One atomic operation on the store.
#[derive(Debug, Clone)]
pub enum Op {
    /// Read a value. Replies [`Reply::Value`].
    Get(String),
    /// Write a value, replacing any earlier one, with an optional lifetime. Replies [`Reply::Done`].
    Set {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// Lifetime; `None` keeps the value until deleted.
        ttl: Option<Duration>,
    },
    /// Write a value only if the key is absent. Replies [`Reply::Flag`] (true when written).
    SetIfAbsent {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// Lifetime; `None` keeps the value until deleted.
        ttl: Option<Duration>,
    },
    /// Read and delete a value in one step: single use. Replies [`Reply::Value`].
    Take(String),
    /// Delete keys. Replies [`Reply::Int`] with how many existed.
    Delete(Vec<String>),
    /// Remaining lifetime. Replies [`Reply::Int`]: milliseconds, -1 without TTL, -2 when absent.
    TtlMillis(String),
    /// Count one event in a fixed window that starts with the first event. Replies [`Reply::Counter`].
    Hit {
        /// The counter's key.
        key: String,
        /// The window's length.
        window: Duration,
    },
    /// Count one event unless `member` was already counted in the current window
    /// (clients that resend a refused request, as some SDKs do on 401, then spend
    /// one guess, not several). Replies [`Reply::Counter`].
    HitUnlessSeen {
        /// The counter's key.
        key: String,
        /// The set of members counted in this window (same hash tag).
        seen: String,
        /// What identifies this event (a keyed digest of the guess).
        member: String,
        /// The window's length.
        window: Duration,
    },
    /// Read a counter without counting. Replies [`Reply::Counter`] (zero when absent).
    Peek(String),
    /// Count one event, and only while the count is within `limit` also write `key`.
    /// Replies [`Reply::Counted`]. This is how a key or code request both counts
    /// towards its limit and replaces the earlier secret without a race.
    SetUnderLimit {
        /// The counter's key.
        counter: String,
        /// The counter's window.
        window: Duration,
        /// The most events allowed in one window; 0 means unlimited (nothing is counted).
        limit: u64,
        /// The key written when within the limit.
        key: String,
        /// The value written.
        value: Vec<u8>,
        /// The written value's lifetime.
        ttl: Duration,
    },
    /// Check a one-time code's digest: a match deletes the code (single use); a
    /// mismatch counts a try, and the `max_tries`-th wrong try deletes the code.
    /// Replies [`Reply::Code`].
    ///
    /// The code is one key: the digest, then each wrong digest counted so far
    /// after a newline (digests are text without newlines, such as hex). So a
    /// repeated wrong guess does not spend another try, the tries live exactly
    /// as long as the code, and writing a new code (a plain write of its digest)
    /// starts its tries afresh.
    CheckCode {
        /// The code's key.
        key: String,
        /// The digest presented.
        digest: String,
        /// Wrong tries that burn the code.
        max_tries: u64,
    },
    /// [`Op::CheckCode`] under a guess limit, in one step: when `guard`'s
    /// counter has reached its limit the code is left alone and the reply is
    /// [`CodeCheck::Throttled`]; a wrong digest is counted as a guess once per
    /// window (as [`Op::HitUnlessSeen`] counts). Replies [`Reply::Code`].
    /// `guard`'s keys share the code's hash tag.
    CheckCodeGuarded {
        /// The code's key.
        key: String,
        /// The digest presented.
        digest: String,
        /// Wrong tries that burn the code.
        max_tries: u64,
        /// The guess limit.
        guard: GuessLimit,
    },
    /// Append an entry to a stream (the outbox). Replies [`Reply::Value`] with its id.
    StreamAdd {
        /// The stream.
        stream: String,
        /// The entry's one field.
        entry: Vec<u8>,
    },
    /// Append `entry` to `stream` only when `field` is present in the map `index`;
    /// otherwise append `decoy` (the same length, no secret in it) to `decoys`, a
    /// stream trimmed to one entry, so that both cases cost the store the same
    /// work. All four keys share one hash tag. Replies [`Reply::Done`] either
    /// way: the caller learns nothing of which happened.
    StreamAddIfPresent {
        /// The map to look in.
        index: String,
        /// The field that must be present.
        field: String,
        /// The stream appended to when it is.
        stream: String,
        /// The entry's one field.
        entry: Vec<u8>,
        /// The stream appended to when it is not.
        decoys: String,
        /// What is appended then.
        decoy: Vec<u8>,
    },
    /// Read up to `count` new entries for `consumer` of `group`, creating the group
    /// (and the stream) when missing. Entries stay pending until acknowledged.
    /// Replies [`Reply::Entries`].
    StreamRead {
        /// The stream.
        stream: String,
        /// The consumer group (all replicas share one).
        group: String,
        /// This replica's consumer name.
        consumer: String,
        /// The most entries to take.
        count: usize,
    },
    /// Take over entries another consumer left pending for longer than `min_idle`
    /// (a crashed replica's). Replies [`Reply::Entries`].
    StreamClaim {
        /// The stream.
        stream: String,
        /// The consumer group.
        group: String,
        /// The consumer taking them.
        consumer: String,
        /// How long an entry must have been pending.
        min_idle: Duration,
        /// The most entries to take.
        count: usize,
    },
    /// Acknowledge and delete entries. Replies [`Reply::Done`].
    StreamAck {
        /// The stream.
        stream: String,
        /// The consumer group.
        group: String,
        /// The entries' ids.
        ids: Vec<String>,
    },
    /// Schedule `entry` to be appended to a stream at `due` (Unix milliseconds).
    /// Replies [`Reply::Done`].
    Schedule {
        /// The schedule (same hash tag as the stream).
        schedule: String,
        /// When it is due.
        due_ms: i64,
        /// The entry.
        entry: Vec<u8>,
    },
    /// Move up to `max` due entries from a schedule to its stream. Replies [`Reply::Int`].
    Release {
        /// The schedule.
        schedule: String,
        /// The stream (same hash tag).
        stream: String,
        /// Now, in Unix milliseconds.
        now_ms: i64,
        /// The most entries to move.
        max: usize,
    },
    /// Push to the front of a list, keep its first `keep` items. Replies [`Reply::Done`].
    ListPush {
        /// The list.
        key: String,
        /// The item.
        value: Vec<u8>,
        /// How many items to keep.
        keep: usize,
    },
    /// The first `count` items of a list. Replies [`Reply::Items`].
    ListRange {
        /// The list.
        key: String,
        /// How many items.
        count: usize,
    },
    /// Read all fields of a map. Replies [`Reply::Map`] (empty when absent).
    MapGetAll(String),
    /// Read one field of a map. Replies [`Reply::Value`].
    MapGet(String, String),
    /// Write fields of a map, then set the map's lifetime when given. Replies [`Reply::Done`].
    MapSet {
        /// The map's key.
        key: String,
        /// Fields to write.
        fields: Vec<(String, Vec<u8>)>,
        /// Lifetime of the whole map; `None` leaves it as it is.
        ttl: Option<Duration>,
    },
    /// Write one field only if it is absent. Replies [`Reply::Flag`].
    MapSetIfAbsent(String, String, Vec<u8>),
    /// Delete fields of a map. Replies [`Reply::Int`] with how many existed.
    MapDelete(String, Vec<String>),
    /// Add a member to an index for `ttl`: an index's members each have a
    /// lifetime of their own; those past it are never listed, and are dropped
    /// by adds (every add, or one in a few, depending on the store), so an index
    /// holds about as many members as live there, however many were ever added.
    /// The index lives as long as its longest-lived member. Replies
    /// [`Reply::Done`].
    IndexAdd {
        /// The index's key.
        key: String,
        /// The member (again: its lifetime starts over).
        member: String,
        /// How long the member stays.
        ttl: Duration,
    },
    /// The members of an index whose lifetime has not passed. Replies
    /// [`Reply::Members`].
    IndexMembers(String),
    /// Wait, for a bounded time, until the writes queued before it in this batch
    /// on `key`'s slot reach the replicas the store is configured to wait for,
    /// so that a failover soon after cannot lose them. Replies [`Reply::Int`]
    /// with how many replicas acknowledged (0 when the store waits for none).
    Replicate {
        /// A key of the slot whose writes must be replicated.
        key: String,
    },
    /// Rotate a session's refresh secret: compare-and-swap on the map field `r`.
    /// Replies [`Reply::Rotated`].
    RotateRefresh {
        /// The session map's key.
        key: String,
        /// Digest of the refresh token presented.
        presented: String,
        /// Fields written when the presented digest is the current one.
        fields: Vec<(String, Vec<u8>)>,
        /// The session's new lifetime.
        ttl: Duration,
    },
}

/// What a compare-and-swap of a refresh secret found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The presented secret was current and has been replaced.
    Rotated,
    /// The presented secret had already been rotated: the session has been deleted.
    Reused,
    /// No such session, or a secret it never had.
    Unknown,
}

/// What checking a one-time code found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// The code matched and is now used up.
    Matched,
    /// Wrong; `burnt` when that was the last allowed try and the code is gone.
    Wrong {
        /// Whether the code has been deleted.
        burnt: bool,
    },
    /// No live code.
    Missing,
    /// The guess limit is reached: the code was not checked.
    Throttled {
        /// Time until the limit's window ends.
        retry_after: Duration,
    },
}

/// The guess limit of an [`Op::CheckCodeGuarded`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuessLimit {
    /// The counter of wrong guesses.
    pub guesses: String,
    /// The guesses counted in this window (so a repeated one counts once).
    pub seen: String,
    /// The most wrong guesses in a window (at least 1).
    pub limit: u64,
    /// The window's length.
    pub window: Duration,
}

/// The answer to one [`Op`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Nothing to say beyond success.
    Done,
    /// A value, or `None` when absent.
    Value(Option<Vec<u8>>),
    /// Whether a conditional write happened.
    Flag(bool),
    /// A number.
    Int(i64),
    /// A window counter: events so far and time until the window resets.
    Counter {
        /// Events counted in the current window.
        count: u64,
        /// Time until the window ends.
        reset: Duration,
    },
    /// A counter that guarded a write.
    Counted {
        /// Events counted in the current window, this one included.
        count: u64,
        /// Time until the window ends.
        reset: Duration,
        /// Whether the guarded write happened.
        written: bool,
    },
    /// A map's fields.
    Map(HashMap<String, Vec<u8>>),
    /// A set's members.
    Members(Vec<String>),
    /// The outcome of [`Op::RotateRefresh`].
    Rotated(Rotation),
    /// The outcome of [`Op::CheckCode`].
    Code(CodeCheck),
    /// Stream entries: (id, entry).
    Entries(Vec<(String, Vec<u8>)>),
    /// List items.
    Items(Vec<Vec<u8>>),
}

impl Reply {
    /// The value of a [`Reply::Value`].
    pub fn into_value(self) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Reply::Value(v) => Ok(v),
            other => Err(unexpected("value", &other)),
        }
    }

    /// The flag of a [`Reply::Flag`].
    pub fn into_flag(self) -> Result<bool, StoreError> {
        match self {
            Reply::Flag(v) => Ok(v),
            other => Err(unexpected("flag", &other)),
        }
    }

    /// The number of a [`Reply::Int`].
    pub fn into_int(self) -> Result<i64, StoreError> {
        match self {
            Reply::Int(v) => Ok(v),
            other => Err(unexpected("int", &other)),
        }
    }

    /// The count and reset of a [`Reply::Counter`].
    pub fn into_counter(self) -> Result<(u64, Duration), StoreError> {
        match self {
            Reply::Counter { count, reset } => Ok((count, reset)),
            other => Err(unexpected("counter", &other)),
        }
    }

    /// The fields of a [`Reply::Map`].
    pub fn into_map(self) -> Result<HashMap<String, Vec<u8>>, StoreError> {
        match self {
            Reply::Map(v) => Ok(v),
            other => Err(unexpected("map", &other)),
        }
    }

    /// The entries of a [`Reply::Entries`].
    pub fn into_entries(self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        match self {
            Reply::Entries(v) => Ok(v),
            other => Err(unexpected("entries", &other)),
        }
    }

    /// The items of a [`Reply::Items`].
    pub fn into_items(self) -> Result<Vec<Vec<u8>>, StoreError> {
        match self {
            Reply::Items(v) => Ok(v),
            other => Err(unexpected("items", &other)),
        }
    }

    /// The members of a [`Reply::Members`].
    pub fn into_members(self) -> Result<Vec<String>, StoreError> {
        match self {
            Reply::Members(v) => Ok(v),
            other => Err(unexpected("members", &other)),
        }
    }
}

fn unexpected(wanted: &str, got: &Reply) -> StoreError {
    StoreError::Protocol(format!("wanted a {wanted} reply, got {got:?}"))
}

/// A shared store of keys with lifetimes.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Runs a batch of operations, each atomically, in order, and returns one reply per op.
    async fn exec(&self, ops: Vec<Op>) -> Result<Vec<Reply>, StoreError>;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// A short name for logs and readiness output (`memory`, `redis`).
    fn kind(&self) -> &'static str;

    /// This replica's memory of the token sessions it read, when the store
    /// keeps one (see [`ReadCache`]); callers consult it before reading a
    /// session and tell it about sessions they change.
    fn read_cache(&self) -> Option<std::sync::Arc<ReadCache>> {
        None
    }
}

/// Typed batches and one-op conveniences over [`Store::exec`].
#[async_trait]
pub trait StoreExt: Store {
    /// Runs a batch in one round trip and settles its handles; on failure every
    /// handle holds the error too.
    async fn run(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (ops, sinks) = batch.into_parts();
        match self.exec(ops).await {
            Ok(replies) => {
                Batch::settle(sinks, Ok(replies));
                Ok(())
            }
            Err(e) => {
                Batch::settle(sinks, Err(&e));
                Err(e)
            }
        }
    }

    /// Runs a single op.
    async fn one(&self, op: Op) -> Result<Reply, StoreError> {
        self.exec(vec![op])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Protocol("empty reply".into()))
    }

    /// Reads a value.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.one(Op::Get(key.to_owned())).await?.into_value()
    }

    /// Writes a value.
    async fn set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.one(Op::Set {
            key: key.to_owned(),
            value,
            ttl,
        })
        .await
        .map(drop)
    }
}

impl<T: Store + ?Sized> StoreExt for T {}

/// How many shards the directory and the delivery outbox are spread over.
///
/// Part of the stored layout: the shard of a document, an index entry or an
/// outbox entry is [`Keys::shard_of`] of its id, and the tag of each shard is
/// fixed ([`Keys::in_shard`]), so changing this means moving every key.
pub const SHARDS: usize = 16;

/// The hash tags of the shards, chosen once: shard `i`'s is the first `s<i>.<n>`
/// (n = 0, 1, ...) whose slot lies in the `i`-th sixteenth of the slot space.
/// So the shards cover the slots evenly, and a cluster whose primaries own
/// contiguous ranges of slots gets its share of them on each primary.
fn shard_tags() -> &'static [String; SHARDS] {
    static TAGS: OnceLock<[String; SHARDS]> = OnceLock::new();
    TAGS.get_or_init(|| {
        let span = usize::from(slot::SLOTS) / SHARDS;
        std::array::from_fn(|i| {
            let mut n = 0u32;
            loop {
                let tag = format!("s{i}.{n}");
                if usize::from(slot::slot(tag.as_bytes())) / span == i {
                    break tag;
                }
                n += 1;
            }
        })
    })
}

/// The keys of one user of one scope ([`Keys::user_keys`]).
#[derive(Debug, Clone)]
pub struct UserKeys {
    base: String,
}

impl UserKeys {
    /// The same as [`Keys::user`] with this scope and user.
    pub fn key(&self, what: &str) -> String {
        let mut key = String::with_capacity(self.base.len() + what.len());
        key.push_str(&self.base);
        key.push_str(what);
        key
    }
}

/// Key names, with Redis Cluster hash tags.
///
/// Everything one atomic op touches shares a `{tag}`, so a Redis Cluster keeps it
/// in one slot. Names of people never appear in keys: a user's tag is a digest of
/// who they are, so a dump of the keyspace lists no usernames.
///
/// The directory's maps and the delivery outbox are spread over [`SHARDS`]
/// shards, each a hash tag of its own ([`Keys::in_shard`]): a document, an index
/// entry or an outbox entry lives in the shard of its id ([`Keys::shard_of`]).
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys starting with `prefix` (which must not contain `{` or `}`).
    pub fn new(prefix: &str) -> Self {
        let prefix = prefix.replace(['{', '}'], "");
        Self { prefix }
    }

    /// The prefix in use.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The shard (below [`SHARDS`]) of `item`, an id or an index entry: the first
    /// two bytes of its SHA-256, modulo [`SHARDS`]. Part of the stored layout, so
    /// it never changes.
    pub fn shard_of(&self, item: &str) -> usize {
        let digest = Sha256::digest(item.as_bytes());
        usize::from(u16::from_be_bytes([digest[0], digest[1]])) % SHARDS
    }

    /// Key `name` in shard `shard` (taken modulo [`SHARDS`]): `<prefix>{<tag>}:name`,
    /// where each shard's tag sits in its own sixteenth of the slot space.
    pub fn in_shard(&self, shard: usize, name: &str) -> String {
        let tag = &shard_tags()[shard % SHARDS];
        let mut key = String::with_capacity(self.prefix.len() + tag.len() + name.len() + 3);
        key.push_str(&self.prefix);
        key.push('{');
        key.push_str(tag);
        key.push_str("}:");
        key.push_str(name);
        key
    }

    /// Key `name` in the shard of `item` ([`Keys::shard_of`]).
    pub fn sharded(&self, name: &str, item: &str) -> String {
        self.in_shard(self.shard_of(item), name)
    }

    /// Values shared by all replicas at start-up (generated secrets, the realm,
    /// the layout's version).
    pub fn bootstrap(&self, name: &str) -> String {
        format!("{}{{boot}}:{name}", self.prefix)
    }

    /// Something about one user of one scope: `scope` names the login surface
    /// (a web phone application, a password profile), `who` the username.
    pub fn user(&self, scope: &str, who: &str, what: &str) -> String {
        self.user_keys(scope, who).key(what)
    }

    /// All keys of one user of one scope, for a caller naming several: the
    /// digest behind their tag is computed once.
    pub fn user_keys(&self, scope: &str, who: &str) -> UserKeys {
        let tag = crate::crypto::tag(scope, who);
        UserKeys {
            base: concat(&[&self.prefix, "{u:", &tag, "}:"]),
        }
    }

    /// A session's map.
    pub fn session(&self, session_id: &str) -> String {
        // Built by hand: every token check makes one, and `format!` costs more.
        let mut key = String::with_capacity(self.prefix.len() + session_id.len() + 4);
        key.push_str(&self.prefix);
        key.push_str("{s:");
        key.push_str(session_id);
        key.push('}');
        key
    }

    /// What every session key starts with ([`Keys::session`]).
    pub fn session_prefix(&self) -> String {
        format!("{}{{s:", self.prefix)
    }

    /// The index of a directory user's sessions ([`Op::IndexAdd`]).
    pub fn user_sessions(&self, user_id: &str) -> String {
        concat(&[&self.prefix, "{us:", user_id, "}"])
    }

    /// The log of delivery tries of one integration, or of all when `None`; each
    /// under a tag of its own, apart from the shards.
    pub fn delivery_log(&self, integration_id: Option<&str>) -> String {
        match integration_id {
            Some(id) => format!("{}{{lg:{id}}}:logs", self.prefix),
            None => format!("{}{{lg}}:logs", self.prefix),
        }
    }

    /// A per-client-address counter.
    pub fn address(&self, what: &str, address: &str) -> String {
        format!("{}{{ip:{address}}}:{what}", self.prefix)
    }
}

/// How many rotated refresh digests a session remembers for reuse detection.
const USED_REMEMBERED: usize = 64;

/// Keeps the comma-separated list of rotated digests bounded.
fn trim_used(used: Vec<u8>) -> Vec<u8> {
    let parts: Vec<&[u8]> = used
        .split(|b| *b == b',')
        .filter(|p| !p.is_empty())
        .collect();
    let keep = &parts[parts.len().saturating_sub(USED_REMEMBERED)..];
    let mut out = Vec::with_capacity(used.len());
    for p in keep {
        out.extend_from_slice(p);
        out.push(b',');
    }
    out
}

fn used_contains(used: &[u8], digest: &str) -> bool {
    used.split(|b| *b == b',')
        .any(|p| !p.is_empty() && p == digest.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_user_share_a_hash_tag_and_hide_the_name() {
        let keys = Keys::new("ag:");
        let a = keys.user("myapp.myaccount", "myuser", "key");
        let b = keys.user("myapp.myaccount", "myuser", "guesses");
        let tag = |k: &str| k[k.find('{').unwrap_or(0)..=k.find('}').unwrap_or(0)].to_owned();
        assert_eq!(tag(&a), tag(&b));
        assert!(!a.contains("myuser"));
        assert_ne!(tag(&a), tag(&keys.user("myapp.myaccount", "other", "key")));
    }

    #[test]
    fn braces_in_a_prefix_cannot_break_the_hash_tag() {
        let keys = Keys::new("a{b}:");
        assert_eq!(
            keys.in_shard(3, "x"),
            format!("ab:{{{}}}:x", shard_tags()[3])
        );
        assert_eq!(keys.bootstrap("x"), "ab:{boot}:x");
        let plain = Keys::new("ab:");
        for shard in 0..SHARDS {
            let (a, b) = (keys.in_shard(shard, "x"), plain.in_shard(shard, "y"));
            assert_eq!(slot::slot(a.as_bytes()), slot::slot(b.as_bytes()));
        }
    }

    #[test]
    fn each_shard_s_tag_lands_in_its_sixteenth_of_the_slots() {
        let keys = Keys::new("ag:");
        let span = slot::SLOTS / SHARDS as u16;
        let mut tags = std::collections::HashSet::new();
        for shard in 0..SHARDS {
            let key = keys.in_shard(shard, "profiles");
            let slot = slot::slot(key.as_bytes());
            assert_eq!(usize::from(slot / span), shard, "{key} in slot {slot}");
            assert!(tags.insert(key[key.find('{').unwrap_or(0)..].to_owned()));
            // The prefix and the name play no part: only the tag places the key.
            assert_eq!(
                slot,
                slot::slot(Keys::new("other:").in_shard(shard, "x").as_bytes())
            );
        }
        assert_eq!(keys.in_shard(SHARDS + 2, "x"), keys.in_shard(2, "x"));
    }

    #[test]
    fn shards_and_their_tags_never_change() {
        // The stored layout: a change here strands every document, index entry
        // and outbox entry in a shard nobody reads any more.
        let keys = Keys::new("ag:");
        for (item, shard) in [
            ("", 0),
            ("0b7d6c5a-4e3f-4a2b-9c1d-0e9f8a7b6c5d", 13),
            ("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", 7),
            ("shop.acme", 15),
            (
                "0b7d6c5a-4e3f-4a2b-9c1d-0e9f8a7b6c5d\u{0}jo@example.com",
                10,
            ),
        ] {
            assert_eq!(keys.shard_of(item), shard, "{item:?}");
        }
        let tags = [
            "s0.10", "s1.13", "s2.23", "s3.20", "s4.0", "s5.3", "s6.40", "s7.43", "s8.23", "s9.20",
            "s10.22", "s11.21", "s12.2", "s13.1", "s14.41", "s15.42",
        ];
        assert_eq!(shard_tags().as_slice(), tags.as_slice());
        assert_eq!(keys.in_shard(13, "profiles"), "ag:{s13.1}:profiles");
    }

    #[test]
    fn items_spread_over_every_shard() {
        let keys = Keys::new("ag:");
        let mut seen = [0usize; SHARDS];
        for n in 0..1_600 {
            seen[keys.shard_of(&format!("user-{n}"))] += 1;
        }
        assert!(seen.iter().all(|n| (50..=150).contains(n)), "{seen:?}");
    }

    #[test]
    fn delivery_logs_have_a_tag_each() {
        let keys = Keys::new("ag:");
        assert_eq!(keys.delivery_log(Some("i-1")), "ag:{lg:i-1}:logs");
        assert_eq!(keys.delivery_log(None), "ag:{lg}:logs");
    }
}
