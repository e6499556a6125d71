//! Where the directory, the integrations and the delivery outbox live in the
//! store, and the move of a store from the earlier layout at start-up.
//!
//! # Layout 2 (this one)
//!
//! The directory's maps, the integrations and the outbox are spread over the
//! store's [`SHARDS`] shards, each a hash tag of its own in its own sixteenth of
//! Redis Cluster's slots ([`Keys::in_shard`]), so a cluster's primaries share
//! them. A document or an index entry lives in the shard of its id or field
//! ([`Keys::shard_of`]); reading one is one op on one shard, listing a map is
//! one batch of an op per shard.
//!
//! | key (in each shard) | holds | keyed by, and so in the shard of |
//! |---|---|---|
//! | `profiles`, `users`, `credentials` | documents | their id |
//! | `names` | profile id, NUL, username → credential id | that field |
//! | `apps` | web phone application → profile id | the application |
//! | `accounts` | member id → personal account id | the member id |
//! | `integrations` | integrations | their id |
//! | `outbox:events`, `outbox:decoys`, `outbox:retry` | the outbox's stream, decoys and retries | a code request: its `names` field; a retry: its event id |
//! | `settings` (the first shard only) | the settings | (one value) |
//!
//! A code request appends to the outbox of the shard of its `names` field, so
//! the one atomic op that looks the username up and appends the request (or a
//! decoy) touches three keys of one slot, known username or not. The delivery
//! logs have tags of their own ([`Keys::delivery_log`]).
//!
//! # Layout 1 (before)
//!
//! Everything above sat under one tag, `<prefix>{dir}:<name>`, the outbox as
//! `{dir}:outbox:events`, `:retry`, `:decoys`, and the logs as
//! `{dir}:outbox:logs` and `{dir}:outbox:logs:<integration id>`: one primary
//! of a cluster carried every code request and exchange.
//!
//! [`migrate_layout`] moves such a store, once, at start-up; `<prefix>{boot}:layout`
//! records the layout a store is in (absent: 1).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::{ACCOUNTS, APPS, CREDENTIALS, NAMES, PROFILES, SETTINGS, USERS};
use crate::integrations::{INTEGRATIONS, LOGS_KEPT};
use crate::store::{Batch, Handle, Keys, Op, Reply, Store, StoreError, StoreExt, SHARDS};

/// The layout this version keeps the store in.
pub const LAYOUT: u64 = 2;

/// The outbox's stream, in each shard.
pub const OUTBOX_STREAM: &str = "outbox:events";
/// The outbox's retries by when they are due, in each shard (beside its stream).
pub const OUTBOX_SCHEDULE: &str = "outbox:retry";
/// Where the decoys of code requests for unknown usernames go, in each shard
/// (beside its stream and its `names` index).
pub const OUTBOX_DECOYS: &str = "outbox:decoys";

/// The maps spread over the shards, by the id of what they hold.
const MAPS: [&str; 7] = [
    PROFILES,
    USERS,
    CREDENTIALS,
    NAMES,
    APPS,
    ACCOUNTS,
    INTEGRATIONS,
];

/// The settings' key: one value, in the first shard.
pub(crate) fn settings_key(keys: &Keys) -> String {
    keys.in_shard(0, SETTINGS)
}

/// Queues the read of every shard of map `name`, one op a shard.
pub(crate) fn all_shards_in(
    keys: &Keys,
    batch: &mut Batch,
    name: &str,
) -> Vec<Handle<HashMap<String, Vec<u8>>>> {
    (0..SHARDS)
        .map(|shard| batch.push(Op::MapGetAll(keys.in_shard(shard, name)), Reply::into_map))
        .collect()
}

/// Every field of map `name`, from all its shards, read in one batch (which a
/// cluster store runs on each primary at once).
pub(crate) async fn read_all_shards(
    store: &dyn Store,
    keys: &Keys,
    name: &str,
) -> Result<HashMap<String, Vec<u8>>, StoreError> {
    let mut batch = Batch::new();
    let shards = all_shards_in(keys, &mut batch, name);
    store.run(batch).await?;
    let mut all = HashMap::new();
    for shard in shards {
        all.extend(shard.get()?);
    }
    Ok(all)
}

/// What [`migrate_layout`] moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Fields of maps, and the settings, copied into their shards.
    pub fields: usize,
    /// Outbox entries (pending deliveries and retries) moved into the shards.
    pub entries: usize,
    /// Delivery log entries copied.
    pub logs: usize,
}

/// How long the replica moving the keys holds the lock before another may
/// take over (it renews the lock after every step).
const LOCK_TTL: Duration = Duration::from_secs(30);
/// How often a replica waiting for another's move looks again.
const WAIT: Duration = Duration::from_millis(200);
/// The most ops sent in one batch while moving.
const CHUNK: usize = 500;
/// The consumer group that reads the old outbox while moving it.
const MOVER: &str = "layout-migration";

/// Brings the store into [`LAYOUT`], unless it is there already (one read).
///
/// A store of layout 1 (`<prefix>{boot}:layout` absent or below 2) is moved by
/// the one replica that takes `<prefix>{boot}:layout-lock` (SET NX, 30 s,
/// renewed after each step); the others wait until the move is recorded. The
/// move, each step safe to repeat when a replica dies halfway and another
/// starts over:
///
/// 1. every field of each old map (`{dir}:profiles`, `users`, `credentials`,
///    `names`, `apps`, `accounts`, `integrations`) is written into its shard
///    only if absent there (HSETNX: nothing newer is overwritten), and the
///    settings likewise (SET NX);
/// 2. the old retries are released into the old stream at once, and the old
///    stream's entries (pending ones included) are read through a group of
///    the move's own, appended to the shard of their id and only then
///    acknowledged and deleted: a move cut short repeats a delivery rather than
///    losing one;
/// 3. the delivery logs are copied to their new keys, oldest first, skipping
///    entries already there;
/// 4. the old keys are deleted, and the layout recorded as 2.
///
/// Replicas of the earlier version must be stopped first: what they write to
/// the old keys after the move is not read any more.
pub async fn migrate_layout(
    store: &dyn Store,
    keys: &Keys,
) -> Result<Option<Migrated>, StoreError> {
    let version = keys.bootstrap("layout");
    let lock = keys.bootstrap("layout-lock");
    let mut waiting = false;
    loop {
        if current(store, &version).await? >= LAYOUT {
            if waiting {
                tracing::info!("another replica moved the store's keys to layout {LAYOUT}");
            }
            return Ok(None);
        }
        let mut batch = Batch::new();
        let locked = batch.put_if_absent(lock.clone(), b"1".to_vec(), Some(LOCK_TTL));
        store.run(batch).await?;
        if locked.get()? {
            tracing::info!("moving the store's keys to layout {LAYOUT}");
            return match migrate(store, keys, &lock).await {
                Ok(moved) => {
                    let mut batch = Batch::new();
                    let recorded = batch.put(version, LAYOUT.to_string().into_bytes(), None);
                    let _released = batch.delete(vec![lock]);
                    store.run(batch).await?;
                    recorded.get()?;
                    tracing::info!(
                        fields = moved.fields,
                        entries = moved.entries,
                        logs = moved.logs,
                        "the store's keys are in layout {LAYOUT}"
                    );
                    Ok(Some(moved))
                }
                Err(e) => {
                    // Another replica may start over at once; every step is repeatable.
                    let mut batch = Batch::new();
                    let _released = batch.delete(vec![lock]);
                    let _ = store.run(batch).await;
                    Err(e)
                }
            };
        }
        if !waiting {
            tracing::info!(
                "waiting for another replica to move the store's keys to layout {LAYOUT}"
            );
            waiting = true;
        }
        tokio::time::sleep(WAIT).await;
    }
}

/// The layout the store is in (1 when none was recorded).
async fn current(store: &dyn Store, version: &str) -> Result<u64, StoreError> {
    let mut batch = Batch::new();
    let recorded = batch.get(version.to_owned());
    store.run(batch).await?;
    Ok(recorded
        .get()?
        .and_then(|v| String::from_utf8_lossy(&v).trim().parse().ok())
        .unwrap_or(1))
}

/// The name of key `name` in layout 1.
pub(super) fn old(keys: &Keys, name: &str) -> String {
    format!("{}{{dir}}:{name}", keys.prefix())
}

/// Runs `ops` a chunk at a time, renewing the lock with each chunk.
async fn run_chunked(store: &dyn Store, ops: Vec<Op>, lock: &str) -> Result<(), StoreError> {
    let mut ops = ops.into_iter().peekable();
    while ops.peek().is_some() {
        let mut chunk: Vec<Op> = ops.by_ref().take(CHUNK).collect();
        chunk.push(renew(lock));
        store.exec(chunk).await?;
    }
    Ok(())
}

fn renew(lock: &str) -> Op {
    Op::Set {
        key: lock.to_owned(),
        value: b"1".to_vec(),
        ttl: Some(LOCK_TTL),
    }
}

/// The move itself (see [`migrate_layout`]).
async fn migrate(store: &dyn Store, keys: &Keys, lock: &str) -> Result<Migrated, StoreError> {
    let mut moved = Migrated::default();
    let (stream, schedule) = (old(keys, "outbox:events"), old(keys, "outbox:retry"));

    // What there is: the old maps, the settings, whether the outbox exists.
    let mut batch = Batch::new();
    let maps: Vec<_> = MAPS
        .iter()
        .map(|map| {
            (
                *map,
                batch.push(Op::MapGetAll(old(keys, map)), Reply::into_map),
            )
        })
        .collect();
    let settings = batch.get(old(keys, SETTINGS));
    let exists = |batch: &mut Batch, key: &str| {
        batch
            .push(Op::TtlMillis(key.to_owned()), Reply::into_int)
            .map(|ttl| ttl != -2)
    };
    let stream_exists = exists(&mut batch, &stream);
    let schedule_exists = exists(&mut batch, &schedule);
    store.run(batch).await?;

    // 1. Each field into its shard, unless the shard has it (newer) already.
    let mut writes = Vec::new();
    let mut integrations = Vec::new();
    for (map, fields) in maps {
        for (field, value) in fields.get()? {
            if map == INTEGRATIONS {
                integrations.push(field.clone());
            }
            writes.push(Op::MapSetIfAbsent(keys.sharded(map, &field), field, value));
        }
    }
    if let Some(value) = settings.get()? {
        writes.push(Op::SetIfAbsent {
            key: settings_key(keys),
            value,
            ttl: None,
        });
    }
    moved.fields = writes.len();
    run_chunked(store, writes, lock).await?;

    // 2. The outbox: retries into the old stream (due at once), then the old
    // stream into the shards, each entry acknowledged once it is there.
    let mut released_any = false;
    if schedule_exists.get()? {
        loop {
            let mut batch = Batch::new();
            let released = batch.release(schedule.clone(), stream.clone(), i64::MAX, CHUNK);
            let _renewed = batch.push(renew(lock), |_| Ok(()));
            store.run(batch).await?;
            if released.get()? == 0 {
                break;
            }
            released_any = true;
        }
    }
    if stream_exists.get()? || released_any {
        loop {
            let mut batch = Batch::new();
            // Entries a mover that died took but did not finish, then new ones.
            let unfinished = batch.stream_claim(
                stream.clone(),
                MOVER.into(),
                MOVER.into(),
                Duration::ZERO,
                CHUNK,
            );
            let fresh = batch.stream_read(stream.clone(), MOVER.into(), MOVER.into(), CHUNK);
            store.run(batch).await?;
            // By id: a store that had to load a script again may run the claim
            // after the read, and then both hand over the same entries.
            let mut entries: BTreeMap<String, Vec<u8>> = unfinished.get()?.into_iter().collect();
            entries.extend(fresh.get()?);
            if entries.is_empty() {
                break;
            }
            moved.entries += entries.len();
            let mut ids = Vec::with_capacity(entries.len());
            let mut adds = Vec::with_capacity(entries.len());
            for (id, entry) in entries {
                adds.push(Op::StreamAdd {
                    stream: keys.sharded(OUTBOX_STREAM, &id),
                    entry,
                });
                ids.push(id);
            }
            run_chunked(store, adds, lock).await?;
            let mut batch = Batch::new();
            let acked = batch.stream_ack(stream.clone(), MOVER.into(), ids);
            store.run(batch).await?;
            acked.get()?;
        }
    }

    // 3. The delivery logs, oldest first, without what a cut-short move copied.
    let mut lists = vec![(old(keys, "outbox:logs"), keys.delivery_log(None))];
    for id in &integrations {
        lists.push((
            old(keys, &format!("outbox:logs:{id}")),
            keys.delivery_log(Some(id)),
        ));
    }
    let mut batch = Batch::new();
    let mut ranges = Vec::with_capacity(lists.len());
    for (from, to) in &lists {
        let range = |batch: &mut Batch, key: &str| {
            batch.push(
                Op::ListRange {
                    key: key.to_owned(),
                    count: LOGS_KEPT,
                },
                Reply::into_items,
            )
        };
        ranges.push((range(&mut batch, from), range(&mut batch, to)));
    }
    store.run(batch).await?;
    let mut pushes = Vec::new();
    for ((_, to), (from, there)) in lists.iter().zip(ranges) {
        let there = there.get()?;
        for item in from.get()?.into_iter().rev() {
            if !there.contains(&item) {
                pushes.push(Op::ListPush {
                    key: to.clone(),
                    value: item,
                    keep: LOGS_KEPT,
                });
            }
        }
    }
    moved.logs = pushes.len();
    run_chunked(store, pushes, lock).await?;

    // 4. The old keys (all under one tag: one op).
    let mut gone: Vec<String> = MAPS.iter().map(|map| old(keys, map)).collect();
    gone.extend([
        old(keys, SETTINGS),
        stream,
        schedule,
        old(keys, "outbox:decoys"),
    ]);
    gone.extend(lists.into_iter().map(|(from, _)| from));
    let mut batch = Batch::new();
    let deleted = batch.delete(gone);
    store.run(batch).await?;
    deleted.get()?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use super::*;
    use crate::store::MemoryStore;

    const PROFILE: &str = "0b7d6c5a-4e3f-4a2b-9c1d-0e9f8a7b6c5d";
    const USER: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
    const INTEGRATION: &str = "5f1e2d3c-4b5a-4968-8776-655443322110";

    fn keys() -> Keys {
        Keys::new("t:")
    }

    async fn exec(store: &dyn Store, ops: Vec<Op>) -> Vec<Reply> {
        store.exec(ops).await.unwrap()
    }

    fn map_set(key: String, field: &str, value: &str) -> Op {
        Op::MapSet {
            key,
            fields: vec![(field.to_owned(), value.as_bytes().to_vec())],
            ttl: None,
        }
    }

    /// A store as the earlier layout left it: documents and indexes, settings,
    /// an integration, the outbox with entries new, pending (taken by a
    /// replica that is gone) and scheduled, and delivery logs.
    async fn old_store(keys: &Keys) -> Arc<dyn Store> {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let o = |name: &str| old(keys, name);
        exec(
            &*store,
            vec![
                map_set(o(PROFILES), PROFILE, "profile"),
                map_set(o(USERS), USER, "user"),
                map_set(o(USERS), "another-user", "user 2"),
                map_set(o(CREDENTIALS), "c-1", "credential"),
                map_set(o(NAMES), &format!("{PROFILE}\u{0}jo"), "c-1"),
                map_set(o(APPS), "shop.acme", PROFILE),
                map_set(o(ACCOUNTS), USER, "a-1"),
                map_set(o(INTEGRATIONS), INTEGRATION, "integration"),
                Op::Set {
                    key: o(SETTINGS),
                    value: b"settings".to_vec(),
                    ttl: None,
                },
            ],
        )
        .await;
        let add = |entry: &str| Op::StreamAdd {
            stream: o("outbox:events"),
            entry: entry.as_bytes().to_vec(),
        };
        exec(&*store, vec![add("pending-1"), add("pending-2")]).await;
        // The earlier version's worker took those two and died.
        exec(
            &*store,
            vec![Op::StreamRead {
                stream: o("outbox:events"),
                group: "delivery".into(),
                consumer: "gone".into(),
                count: 10,
            }],
        )
        .await;
        let mut ops = vec![add("new-1")];
        for (due, entry) in [(1, "retry-due"), (i64::MAX - 1, "retry-later")] {
            ops.push(Op::Schedule {
                schedule: o("outbox:retry"),
                due_ms: due,
                entry: entry.as_bytes().to_vec(),
            });
        }
        ops.push(Op::StreamAdd {
            stream: o("outbox:decoys"),
            entry: b"----".to_vec(),
        });
        for (list, items) in [
            ("outbox:logs".to_owned(), ["log-1", "log-2", "log-3"]),
            (
                format!("outbox:logs:{INTEGRATION}"),
                ["log-1", "log-2", "log-3"],
            ),
        ] {
            for item in items {
                ops.push(Op::ListPush {
                    key: o(&list),
                    value: item.as_bytes().to_vec(),
                    keep: LOGS_KEPT,
                });
            }
        }
        exec(&*store, ops).await;
        store
    }

    /// Every entry of every shard's outbox stream, read by a fresh group.
    async fn outbox_entries(store: &dyn Store, keys: &Keys) -> Vec<(usize, String)> {
        let reads = (0..SHARDS)
            .map(|shard| Op::StreamRead {
                stream: keys.in_shard(shard, OUTBOX_STREAM),
                group: "check".into(),
                consumer: "check".into(),
                count: 100,
            })
            .collect();
        let mut all = Vec::new();
        for (shard, reply) in exec(store, reads).await.into_iter().enumerate() {
            for (_, entry) in reply.into_entries().unwrap() {
                all.push((shard, String::from_utf8(entry).unwrap()));
            }
        }
        all.sort_by(|a, b| a.1.cmp(&b.1));
        all
    }

    async fn list(store: &dyn Store, key: String) -> Vec<String> {
        let reply = store
            .one(Op::ListRange {
                key,
                count: LOGS_KEPT,
            })
            .await
            .unwrap();
        reply
            .into_items()
            .unwrap()
            .into_iter()
            .map(|i| String::from_utf8(i).unwrap())
            .collect()
    }

    async fn field(store: &dyn Store, key: String, field: &str) -> Option<String> {
        let reply = store.one(Op::MapGet(key, field.to_owned())).await.unwrap();
        reply
            .into_value()
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap())
    }

    #[tokio::test]
    async fn a_store_of_the_earlier_layout_moves_into_the_shards_once() {
        let keys = keys();
        let store = old_store(&keys).await;
        let moved = migrate_layout(&*store, &keys).await.unwrap();
        assert_eq!(
            moved,
            Some(Migrated {
                fields: 9,
                entries: 5,
                logs: 6
            })
        );
        for (map, item, value) in [
            (PROFILES, PROFILE, "profile"),
            (USERS, USER, "user"),
            (USERS, "another-user", "user 2"),
            (CREDENTIALS, "c-1", "credential"),
            (NAMES, &format!("{PROFILE}\u{0}jo"), "c-1"),
            (APPS, "shop.acme", PROFILE),
            (ACCOUNTS, USER, "a-1"),
            (INTEGRATIONS, INTEGRATION, "integration"),
        ] {
            assert_eq!(
                field(&*store, keys.sharded(map, item), item)
                    .await
                    .as_deref(),
                Some(value),
                "{map} {item:?}"
            );
        }
        assert_eq!(
            store.get(&settings_key(&keys)).await.unwrap().as_deref(),
            Some(&b"settings"[..])
        );
        // New, pending and scheduled entries alike, each in the shard of its old id.
        let entries = outbox_entries(&*store, &keys).await;
        let texts: Vec<&str> = entries.iter().map(|(_, e)| e.as_str()).collect();
        assert_eq!(
            texts,
            [
                "new-1",
                "pending-1",
                "pending-2",
                "retry-due",
                "retry-later"
            ]
        );
        // The logs, newest first as before.
        for id in [None, Some(INTEGRATION)] {
            assert_eq!(
                list(&*store, keys.delivery_log(id)).await,
                ["log-3", "log-2", "log-1"]
            );
        }
        // Nothing left under the old tag, and the layout recorded.
        let old_keys = [
            PROFILES,
            USERS,
            CREDENTIALS,
            NAMES,
            APPS,
            ACCOUNTS,
            INTEGRATIONS,
            SETTINGS,
            "outbox:events",
            "outbox:retry",
            "outbox:decoys",
            "outbox:logs",
            &format!("outbox:logs:{INTEGRATION}"),
        ];
        for name in old_keys {
            let ttl = store
                .one(Op::TtlMillis(old(&keys, name)))
                .await
                .unwrap()
                .into_int()
                .unwrap();
            assert_eq!(ttl, -2, "{name} is gone");
        }
        assert_eq!(
            store
                .get(&keys.bootstrap("layout"))
                .await
                .unwrap()
                .as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(migrate_layout(&*store, &keys).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_move_cut_short_is_finished_without_loss_or_overwriting_newer_data() {
        let keys = keys();
        let store = old_store(&keys).await;
        let o = |name: &str| old(&keys, name);
        // The first mover copied the user and a log entry, the user was changed
        // since, and the mover took two entries of the stream and died.
        exec(
            &*store,
            vec![
                map_set(keys.sharded(USERS, USER), USER, "user, changed"),
                Op::ListPush {
                    key: keys.delivery_log(None),
                    value: b"log-1".to_vec(),
                    keep: LOGS_KEPT,
                },
                Op::StreamRead {
                    stream: o("outbox:events"),
                    group: MOVER.into(),
                    consumer: MOVER.into(),
                    count: 2,
                },
            ],
        )
        .await;
        migrate_layout(&*store, &keys).await.unwrap();
        assert_eq!(
            field(&*store, keys.sharded(USERS, USER), USER)
                .await
                .as_deref(),
            Some("user, changed"),
            "never overwritten"
        );
        assert_eq!(
            list(&*store, keys.delivery_log(None)).await,
            ["log-3", "log-2", "log-1"],
            "no entry twice"
        );
        assert_eq!(outbox_entries(&*store, &keys).await.len(), 5, "none lost");
    }

    #[tokio::test]
    async fn a_fresh_store_is_recorded_in_the_layout_and_replicas_wait_for_the_mover() {
        let keys = keys();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        // Another replica holds the lock: this one waits until the layout is recorded.
        exec(
            &*store,
            vec![Op::Set {
                key: keys.bootstrap("layout-lock"),
                value: b"1".to_vec(),
                ttl: Some(LOCK_TTL),
            }],
        )
        .await;
        let waiting = tokio::spawn({
            let (store, keys) = (store.clone(), keys.clone());
            async move { migrate_layout(&*store, &keys).await }
        });
        tokio::time::sleep(WAIT * 2).await;
        assert!(!waiting.is_finished(), "waits while another replica moves");
        store
            .set(&keys.bootstrap("layout"), b"2".to_vec(), None)
            .await
            .unwrap();
        let waited = tokio::time::timeout(WAIT * 5, waiting).await;
        assert_eq!(waited.unwrap().unwrap().unwrap(), None);

        // Nothing to move: recorded at once.
        let fresh: Arc<dyn Store> = Arc::new(MemoryStore::new());
        assert_eq!(
            migrate_layout(&*fresh, &keys).await.unwrap(),
            Some(Migrated::default())
        );
        assert_eq!(
            fresh
                .get(&keys.bootstrap("layout"))
                .await
                .unwrap()
                .as_deref(),
            Some(&b"2"[..])
        );
    }
}
