//! The store's behaviour suite: the same checks against the memory store, a
//! real, private Redis and a real, private Redis Cluster, so all keep the same
//! semantics (TTLs included); and what only a cluster can show: a batch spread
//! over every primary, scripts every node forgot.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authgate_core::store::slot::slot;
use authgate_core::store::{
    CodeCheck, GuessLimit, Keys, MemoryStore, Op, RedisStore, Reply, Rotation, Store, StoreExt,
    REDIS_QUEUE_LIMIT,
};
use authgate_tests::{TestCluster, TestRedis};
use futures::FutureExt;

type Shared = Arc<dyn Store>;

async fn memory() -> Option<(Shared, Keys, Option<TestRedis>)> {
    Some((Arc::new(MemoryStore::new()), Keys::new("m:"), None))
}

async fn redis() -> Option<(Shared, Keys, Option<TestRedis>)> {
    let r = TestRedis::start().await?;
    let store = RedisStore::connect(&r.url).await.expect("connects");
    let keys = Keys::new(&r.prefix);
    Some((Arc::new(store), keys, Some(r)))
}

/// A private Redis Cluster (3 primaries, 3 replicas) and the store on it,
/// connected from one node's URL in auto mode, which must find the cluster.
async fn cluster() -> Option<(Shared, TestCluster)> {
    let cluster = TestCluster::start().await?;
    let store = RedisStore::connect(&cluster.seed_url())
        .await
        .expect("connects to the cluster");
    assert!(
        store.is_cluster(),
        "auto mode detects a cluster from one node's URL"
    );
    let listed = RedisStore::connect(&cluster.seed_urls())
        .await
        .expect("connects from a comma-separated list of nodes");
    assert!(listed.is_cluster(), "a list of nodes is a cluster");
    Some((Arc::new(store), cluster))
}

/// Keys under a prefix of their own.
fn fresh_keys() -> Keys {
    Keys::new(&format!("c{}:", uuid::Uuid::new_v4().simple()))
}

/// Runs one check of the suite, noting its name and panic message in `failed`
/// when it fails, and its time either way.
async fn run_one(name: &str, failed: &mut Vec<String>, check: impl Future<Output = ()>) {
    let started = Instant::now();
    let outcome = AssertUnwindSafe(check).catch_unwind().await;
    let took = started.elapsed();
    match outcome {
        Ok(()) => eprintln!("cluster: {name} passed in {took:?}"),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "(no message)".into());
            eprintln!("cluster: {name} FAILED in {took:?}: {message}");
            failed.push(format!("{name}: {message}"));
        }
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod on_memory {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some((s, k, _guard)) = super::memory().await {
                        super::$name(s, k).await;
                    }
                }
            )*
        }
        mod on_redis {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some((s, k, _guard)) = super::redis().await {
                        super::$name(s, k).await;
                    }
                }
            )*
        }
        /// The same suite on a real Redis Cluster: one cluster for all of it
        /// (starting one per check would be too heavy), every check in turn,
        /// each under its own prefix. Every check runs even when an earlier one
        /// failed; the failures are listed together at the end.
        mod on_cluster {
            #[tokio::test]
            async fn the_whole_suite() {
                let Some((s, cluster)) = super::cluster().await else {
                    return;
                };
                let mut failed: Vec<String> = Vec::new();
                $(
                    super::run_one(stringify!($name), &mut failed, super::$name(s.clone(), super::fresh_keys())).await;
                )*
                super::run_one("a_batch_over_every_primary_answers_each_op_in_order", &mut failed,
                    super::a_batch_over_every_primary_answers_each_op_in_order(s.clone(), &cluster, super::fresh_keys())).await;
                super::run_one("scripts_survive_a_cluster_that_forgot_them", &mut failed,
                    super::scripts_survive_a_cluster_that_forgot_them(s.clone(), &cluster, super::fresh_keys())).await;
                // Last: it kills a primary.
                super::run_one("ping_fails_while_a_primary_is_down", &mut failed,
                    super::ping_fails_while_a_primary_is_down(s.clone(), &cluster, super::fresh_keys())).await;
                assert!(failed.is_empty(), "failed on the cluster:\n{}", failed.join("\n"));
            }
        }
    };
}

both!(
    a_value_lives_until_its_ttl_runs_out,
    a_set_replaces_the_earlier_value_and_its_ttl,
    take_returns_a_value_once,
    concurrent_takes_have_exactly_one_winner,
    set_if_absent_writes_only_the_first_time,
    a_window_counts_hits_and_resets_after_the_window,
    set_under_limit_writes_only_within_the_limit,
    set_under_limit_with_no_limit_always_writes,
    maps_and_sets_keep_fields_and_members,
    rotation_swaps_once_and_detects_reuse,
    a_batch_answers_each_op_in_order,
    a_code_matches_once_and_burns_after_the_last_wrong_try,
    a_new_code_starts_with_no_tries,
    a_stream_hands_each_entry_to_one_consumer_until_acknowledged,
    an_entry_is_appended_only_when_its_index_has_the_field,
    entries_left_pending_are_claimed_by_another_consumer_after_their_idle_time,
    scheduled_entries_reach_the_stream_when_due,
    lists_keep_the_newest_items,
    a_repeated_wrong_code_spends_one_try,
    a_repeated_event_counts_once_per_window,
    a_guarded_code_check_counts_wrong_guesses_and_stops_at_the_limit,
    an_index_drops_members_past_their_lifetime,
);

async fn a_repeated_wrong_code_spends_one_try(s: Shared, k: Keys) {
    let key = k.user("p", "u", "code");
    let check = |d: &str| Op::CheckCode {
        key: key.clone(),
        digest: d.into(),
        max_tries: 2,
    };
    s.one(Op::Set {
        key: key.clone(),
        value: b"right".to_vec(),
        ttl: Some(Duration::from_secs(60)),
    })
    .await
    .unwrap();
    for _ in 0..4 {
        assert_eq!(
            s.one(check("typo")).await.unwrap(),
            Reply::Code(CodeCheck::Wrong { burnt: false }),
            "a resent wrong code"
        );
    }
    assert_eq!(
        s.one(check("right")).await.unwrap(),
        Reply::Code(CodeCheck::Matched)
    );
    s.one(Op::Set {
        key: key.clone(),
        value: b"right".to_vec(),
        ttl: Some(Duration::from_secs(60)),
    })
    .await
    .unwrap();
    assert_eq!(
        s.one(check("w1")).await.unwrap(),
        Reply::Code(CodeCheck::Wrong { burnt: false })
    );
    assert_eq!(
        s.one(check("w2")).await.unwrap(),
        Reply::Code(CodeCheck::Wrong { burnt: true }),
        "distinct guesses still burn"
    );
}

async fn a_repeated_event_counts_once_per_window(s: Shared, k: Keys) {
    let hit = |m: &str| Op::HitUnlessSeen {
        key: k.user("a", "b", "g"),
        seen: k.user("a", "b", "seen"),
        member: m.into(),
        window: Duration::from_millis(400),
    };
    let count = |r: Reply| r.into_counter().unwrap().0;
    assert_eq!(count(s.one(hit("x")).await.unwrap()), 1);
    assert_eq!(
        count(s.one(hit("x")).await.unwrap()),
        1,
        "the same member again"
    );
    assert_eq!(count(s.one(hit("y")).await.unwrap()), 2);
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(
        count(s.one(hit("x")).await.unwrap()),
        1,
        "a new window forgets what it saw"
    );
}

async fn an_entry_is_appended_only_when_its_index_has_the_field(s: Shared, k: Keys) {
    let index = k.in_shard(0, "names");
    let stream = k.in_shard(0, "outbox:events");
    let decoys = k.in_shard(0, "outbox:decoys");
    s.one(Op::MapSet {
        key: index.clone(),
        fields: vec![("known".into(), b"id".to_vec())],
        ttl: None,
    })
    .await
    .unwrap();
    for (field, entry) in [
        ("known", "a"),
        ("unknown", "b"),
        ("unknown", "c"),
        ("known", "d"),
    ] {
        let op = Op::StreamAddIfPresent {
            index: index.clone(),
            field: field.into(),
            stream: stream.clone(),
            entry: entry.as_bytes().to_vec(),
            decoys: decoys.clone(),
            decoy: b"-".to_vec(),
        };
        assert_eq!(s.one(op).await.unwrap(), Reply::Done, "the same answer");
    }
    let read = |key: &str| Op::StreamRead {
        stream: key.to_owned(),
        group: "g".into(),
        consumer: "c".into(),
        count: 10,
    };
    let got = s.one(read(&stream)).await.unwrap().into_entries().unwrap();
    assert_eq!(
        got.iter().map(|(_, v)| v.as_slice()).collect::<Vec<_>>(),
        vec![&b"a"[..], b"d"],
        "only the entries whose field is present"
    );
    let kept = s.one(read(&decoys)).await.unwrap().into_entries().unwrap();
    assert_eq!(kept.len(), 1, "decoys are kept at one entry: {kept:?}");
    assert_eq!(kept[0].1, b"-");
}

async fn a_stream_hands_each_entry_to_one_consumer_until_acknowledged(s: Shared, k: Keys) {
    let stream = k.in_shard(0, "outbox:events");
    let read = |c: &str| Op::StreamRead {
        stream: stream.clone(),
        group: "g".into(),
        consumer: c.into(),
        count: 10,
    };
    assert!(
        s.one(read("a"))
            .await
            .unwrap()
            .into_entries()
            .unwrap()
            .is_empty(),
        "an empty stream, group created"
    );
    for e in ["one", "two", "three"] {
        s.one(Op::StreamAdd {
            stream: stream.clone(),
            entry: e.as_bytes().to_vec(),
        })
        .await
        .unwrap();
    }
    let a = s.one(read("a")).await.unwrap().into_entries().unwrap();
    assert_eq!(
        a.iter().map(|(_, v)| v.as_slice()).collect::<Vec<_>>(),
        vec![&b"one"[..], b"two", b"three"]
    );
    assert!(
        s.one(read("b"))
            .await
            .unwrap()
            .into_entries()
            .unwrap()
            .is_empty(),
        "each entry goes to one consumer"
    );
    // All of them in one op; an empty acknowledgement is no error either.
    for ids in [a.iter().map(|(id, _)| id.clone()).collect(), Vec::new()] {
        assert_eq!(
            s.one(Op::StreamAck {
                stream: stream.clone(),
                group: "g".into(),
                ids,
            })
            .await
            .unwrap(),
            Reply::Done
        );
    }
    s.one(Op::StreamAdd {
        stream: stream.clone(),
        entry: b"four".to_vec(),
    })
    .await
    .unwrap();
    let b = s.one(read("b")).await.unwrap().into_entries().unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].1, b"four");
}

async fn entries_left_pending_are_claimed_by_another_consumer_after_their_idle_time(
    s: Shared,
    k: Keys,
) {
    let stream = k.in_shard(0, "outbox:events");
    s.one(Op::StreamAdd {
        stream: stream.clone(),
        entry: b"job".to_vec(),
    })
    .await
    .unwrap();
    let taken = s
        .one(Op::StreamRead {
            stream: stream.clone(),
            group: "g".into(),
            consumer: "crashed".into(),
            count: 10,
        })
        .await
        .unwrap()
        .into_entries()
        .unwrap();
    assert_eq!(taken.len(), 1);
    let claim = || Op::StreamClaim {
        stream: stream.clone(),
        group: "g".into(),
        consumer: "rescuer".into(),
        min_idle: Duration::from_millis(300),
        count: 10,
    };
    assert!(
        s.one(claim())
            .await
            .unwrap()
            .into_entries()
            .unwrap()
            .is_empty(),
        "not idle long enough yet"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let claimed = s.one(claim()).await.unwrap().into_entries().unwrap();
    assert_eq!(claimed, taken);
    s.one(Op::StreamAck {
        stream: stream.clone(),
        group: "g".into(),
        ids: vec![claimed[0].0.clone()],
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        s.one(claim())
            .await
            .unwrap()
            .into_entries()
            .unwrap()
            .is_empty(),
        "acknowledged entries are gone"
    );
}

async fn scheduled_entries_reach_the_stream_when_due(s: Shared, k: Keys) {
    let stream = k.in_shard(0, "outbox:events");
    let schedule = k.in_shard(0, "outbox:retry");
    s.one(Op::Schedule {
        schedule: schedule.clone(),
        due_ms: 1_000,
        entry: b"early".to_vec(),
    })
    .await
    .unwrap();
    s.one(Op::Schedule {
        schedule: schedule.clone(),
        due_ms: 5_000,
        entry: b"late".to_vec(),
    })
    .await
    .unwrap();
    let release = |now_ms| Op::Release {
        schedule: schedule.clone(),
        stream: stream.clone(),
        now_ms,
        max: 10,
    };
    assert_eq!(s.one(release(500)).await.unwrap(), Reply::Int(0));
    assert_eq!(s.one(release(2_000)).await.unwrap(), Reply::Int(1));
    let read = Op::StreamRead {
        stream: stream.clone(),
        group: "g".into(),
        consumer: "c".into(),
        count: 10,
    };
    let got = s.one(read.clone()).await.unwrap().into_entries().unwrap();
    assert_eq!(
        got.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
        vec![b"early".to_vec()]
    );
    assert_eq!(
        s.one(release(2_000)).await.unwrap(),
        Reply::Int(0),
        "released once"
    );
    assert_eq!(s.one(release(9_000)).await.unwrap(), Reply::Int(1));
    assert_eq!(
        s.one(read).await.unwrap().into_entries().unwrap()[0].1,
        b"late"
    );
}

async fn lists_keep_the_newest_items(s: Shared, k: Keys) {
    let key = k.delivery_log(None);
    for i in 0..5 {
        s.one(Op::ListPush {
            key: key.clone(),
            value: vec![b'0' + i],
            keep: 3,
        })
        .await
        .unwrap();
    }
    let items = s
        .one(Op::ListRange {
            key: key.clone(),
            count: 10,
        })
        .await
        .unwrap()
        .into_items()
        .unwrap();
    assert_eq!(items, vec![b"4".to_vec(), b"3".to_vec(), b"2".to_vec()]);
    assert_eq!(
        s.one(Op::ListRange { key, count: 1 })
            .await
            .unwrap()
            .into_items()
            .unwrap(),
        vec![b"4".to_vec()]
    );
}

async fn a_code_matches_once_and_burns_after_the_last_wrong_try(s: Shared, k: Keys) {
    let key = k.user("p", "u", "code");
    let put = |v: &str| Op::Set {
        key: key.clone(),
        value: v.as_bytes().to_vec(),
        ttl: Some(Duration::from_secs(600)),
    };
    let check = |d: &str| Op::CheckCode {
        key: key.clone(),
        digest: d.into(),
        max_tries: 3,
    };
    s.one(put("right")).await.unwrap();
    assert_eq!(
        s.one(check("wrong")).await.unwrap(),
        Reply::Code(CodeCheck::Wrong { burnt: false })
    );
    let ttl = s
        .one(Op::TtlMillis(key.clone()))
        .await
        .unwrap()
        .into_int()
        .unwrap();
    assert!(
        ttl > 590_000,
        "a wrong try leaves the code's lifetime alone: {ttl}"
    );
    assert_eq!(
        s.get(&key).await.unwrap().as_deref(),
        Some(&b"right\nwrong"[..]),
        "the wrong try is counted in the code's own key"
    );
    assert_eq!(
        s.one(check("right")).await.unwrap(),
        Reply::Code(CodeCheck::Matched)
    );
    assert_eq!(
        s.one(check("right")).await.unwrap(),
        Reply::Code(CodeCheck::Missing),
        "single use"
    );
    s.one(put("right")).await.unwrap();
    assert_eq!(
        s.one(check("w1")).await.unwrap(),
        Reply::Code(CodeCheck::Wrong { burnt: false })
    );
    assert_eq!(
        s.one(check("w2")).await.unwrap(),
        Reply::Code(CodeCheck::Wrong { burnt: false })
    );
    assert_eq!(
        s.one(check("w3")).await.unwrap(),
        Reply::Code(CodeCheck::Wrong { burnt: true })
    );
    assert_eq!(
        s.one(check("right")).await.unwrap(),
        Reply::Code(CodeCheck::Missing),
        "burnt"
    );
}

/// The code check and the guess limit in one op: wrong guesses are counted
/// (a repeated one once), a right code still matches under the limit, and at
/// the limit nothing is checked, so a right code stays usable for later.
async fn a_guarded_code_check_counts_wrong_guesses_and_stops_at_the_limit(s: Shared, k: Keys) {
    let key = k.user("p", "u", "code");
    let guesses = k.user("p", "u", "guesses");
    let window = Duration::from_secs(60);
    let check = |d: &str| Op::CheckCodeGuarded {
        key: key.clone(),
        digest: d.into(),
        max_tries: 10,
        guard: GuessLimit {
            guesses: guesses.clone(),
            seen: k.user("p", "u", "guessed"),
            limit: 3,
            window,
        },
    };
    let count = |s: Shared| {
        let guesses = guesses.clone();
        async move {
            match s.one(Op::Peek(guesses)).await.unwrap() {
                Reply::Counter { count, .. } => count,
                other => panic!("a counter, not {other:?}"),
            }
        }
    };
    let put = Op::Set {
        key: key.clone(),
        value: b"right".to_vec(),
        ttl: Some(Duration::from_secs(600)),
    };
    // No code: not a guess.
    assert_eq!(
        s.one(check("w0")).await.unwrap(),
        Reply::Code(CodeCheck::Missing)
    );
    assert_eq!(count(s.clone()).await, 0, "a missing code counts no guess");
    s.one(put.clone()).await.unwrap();
    for (guess, counted) in [("w1", 1), ("w1", 1), ("w2", 2)] {
        assert_eq!(
            s.one(check(guess)).await.unwrap(),
            Reply::Code(CodeCheck::Wrong { burnt: false }),
            "{guess}"
        );
        assert_eq!(count(s.clone()).await, counted, "after {guess}");
    }
    assert_eq!(
        s.one(check("right")).await.unwrap(),
        Reply::Code(CodeCheck::Matched),
        "under the limit, the right code matches"
    );
    s.one(put).await.unwrap();
    assert_eq!(
        s.one(check("w3")).await.unwrap(),
        Reply::Code(CodeCheck::Wrong { burnt: false })
    );
    assert_eq!(count(s.clone()).await, 3);
    match s.one(check("right")).await.unwrap() {
        Reply::Code(CodeCheck::Throttled { retry_after }) => assert!(
            retry_after > Duration::ZERO && retry_after <= window,
            "{retry_after:?}"
        ),
        other => panic!("at the limit: {other:?}"),
    }
    assert_eq!(
        s.get(&key).await.unwrap().as_deref(),
        Some(&b"right\nw3"[..]),
        "at the limit the code is left alone"
    );
    assert_eq!(count(s.clone()).await, 3, "a refused check counts nothing");
}

async fn a_new_code_starts_with_no_tries(s: Shared, k: Keys) {
    let key = k.user("p", "u", "code");
    for limit in [10, 0] {
        let request = |v: &str| Op::SetUnderLimit {
            counter: k.user("p", "u", "requests"),
            window: Duration::from_secs(60),
            limit,
            key: key.clone(),
            value: v.as_bytes().to_vec(),
            ttl: Duration::from_secs(600),
        };
        let check = |d: &str| Op::CheckCode {
            key: key.clone(),
            digest: d.into(),
            max_tries: 2,
        };
        s.one(request("first")).await.unwrap();
        assert_eq!(
            s.one(check("bad")).await.unwrap(),
            Reply::Code(CodeCheck::Wrong { burnt: false })
        );
        s.one(request("second")).await.unwrap();
        assert_eq!(
            s.one(check("first")).await.unwrap(),
            Reply::Code(CodeCheck::Wrong { burnt: false }),
            "replaced, and the tries start again (limit {limit})"
        );
        assert_eq!(
            s.one(check("second")).await.unwrap(),
            Reply::Code(CodeCheck::Matched)
        );
    }
}

async fn a_value_lives_until_its_ttl_runs_out(s: Shared, k: Keys) {
    let key = k.user("app", "bob", "v");
    s.set(&key, b"x".to_vec(), Some(Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(s.get(&key).await.unwrap().as_deref(), Some(&b"x"[..]));
    let ttl = s
        .one(Op::TtlMillis(key.clone()))
        .await
        .unwrap()
        .into_int()
        .unwrap();
    assert!((1..=300).contains(&ttl), "ttl {ttl}");
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(s.get(&key).await.unwrap(), None);
    assert_eq!(s.one(Op::TtlMillis(key)).await.unwrap(), Reply::Int(-2));
}

async fn a_set_replaces_the_earlier_value_and_its_ttl(s: Shared, k: Keys) {
    let key = k.user("app", "bob", "v");
    s.set(&key, b"1".to_vec(), Some(Duration::from_secs(100)))
        .await
        .unwrap();
    s.set(&key, b"2".to_vec(), None).await.unwrap();
    assert_eq!(s.get(&key).await.unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(s.one(Op::TtlMillis(key)).await.unwrap(), Reply::Int(-1));
}

async fn take_returns_a_value_once(s: Shared, k: Keys) {
    let key = k.user("app", "bob", "once");
    s.set(&key, b"secret".to_vec(), Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(
        s.one(Op::Take(key.clone())).await.unwrap(),
        Reply::Value(Some(b"secret".to_vec()))
    );
    assert_eq!(
        s.one(Op::Take(key.clone())).await.unwrap(),
        Reply::Value(None)
    );
    assert_eq!(s.get(&key).await.unwrap(), None);
}

async fn concurrent_takes_have_exactly_one_winner(s: Shared, k: Keys) {
    for round in 0..20 {
        let key = k.user("app", "race", &format!("r{round}"));
        s.set(&key, b"v".to_vec(), Some(Duration::from_secs(5)))
            .await
            .unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let s = s.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    s.one(Op::Take(key))
                        .await
                        .unwrap()
                        .into_value()
                        .unwrap()
                        .is_some()
                })
            })
            .collect();
        let wins = futures::future::join_all(tasks)
            .await
            .into_iter()
            .filter(|r| *r.as_ref().unwrap())
            .count();
        assert_eq!(wins, 1, "round {round}");
    }
}

async fn set_if_absent_writes_only_the_first_time(s: Shared, k: Keys) {
    let key = k.bootstrap("secret");
    let first = Op::SetIfAbsent {
        key: key.clone(),
        value: b"a".to_vec(),
        ttl: None,
    };
    let second = Op::SetIfAbsent {
        key: key.clone(),
        value: b"b".to_vec(),
        ttl: None,
    };
    assert_eq!(s.one(first).await.unwrap(), Reply::Flag(true));
    assert_eq!(s.one(second).await.unwrap(), Reply::Flag(false));
    assert_eq!(s.get(&key).await.unwrap().as_deref(), Some(&b"a"[..]));
}

async fn a_window_counts_hits_and_resets_after_the_window(s: Shared, k: Keys) {
    let key = k.address("t", "127.0.0.1");
    let window = Duration::from_millis(400);
    for want in 1..=3u64 {
        let (count, reset) = s
            .one(Op::Hit {
                key: key.clone(),
                window,
            })
            .await
            .unwrap()
            .into_counter()
            .unwrap();
        assert_eq!(count, want);
        assert!(reset <= window && reset > Duration::ZERO, "reset {reset:?}");
    }
    let (peeked, _) = s
        .one(Op::Peek(key.clone()))
        .await
        .unwrap()
        .into_counter()
        .unwrap();
    assert_eq!(peeked, 3, "peek does not count");
    tokio::time::sleep(Duration::from_millis(550)).await;
    let (count, _) = s
        .one(Op::Hit {
            key: key.clone(),
            window,
        })
        .await
        .unwrap()
        .into_counter()
        .unwrap();
    assert_eq!(count, 1, "a new window starts after the old one ends");
    let (absent, _) = s
        .one(Op::Peek(k.address("t", "10.9.9.9")))
        .await
        .unwrap()
        .into_counter()
        .unwrap();
    assert_eq!(absent, 0);
}

async fn set_under_limit_writes_only_within_the_limit(s: Shared, k: Keys) {
    let counter = k.user("app", "bob", "requests");
    let key = k.user("app", "bob", "key");
    let op = |v: &str| Op::SetUnderLimit {
        counter: counter.clone(),
        window: Duration::from_secs(60),
        limit: 2,
        key: key.clone(),
        value: v.as_bytes().to_vec(),
        ttl: Duration::from_secs(30),
    };
    for (v, want_written) in [("1", true), ("2", true), ("3", false)] {
        match s.one(op(v)).await.unwrap() {
            Reply::Counted {
                written,
                count,
                reset,
            } => {
                assert_eq!(written, want_written, "value {v}, count {count}");
                assert!(reset > Duration::ZERO);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        s.get(&key).await.unwrap().as_deref(),
        Some(&b"2"[..]),
        "a refused request changes nothing"
    );
    let ttl = s.one(Op::TtlMillis(key)).await.unwrap().into_int().unwrap();
    assert!(ttl > 29_000 && ttl <= 30_000, "ttl {ttl}");
}

async fn set_under_limit_with_no_limit_always_writes(s: Shared, k: Keys) {
    let key = k.user("app", "bob", "key");
    for i in 0..5 {
        let op = Op::SetUnderLimit {
            counter: k.user("app", "bob", "requests"),
            window: Duration::from_secs(60),
            limit: 0,
            key: key.clone(),
            value: vec![b'0' + i],
            ttl: Duration::from_secs(30),
        };
        assert!(matches!(
            s.one(op).await.unwrap(),
            Reply::Counted { written: true, .. }
        ));
    }
    assert_eq!(s.get(&key).await.unwrap().as_deref(), Some(&b"4"[..]));
}

async fn maps_and_sets_keep_fields_and_members(s: Shared, k: Keys) {
    let map = k.in_shard(0, "things");
    s.one(Op::MapSet {
        key: map.clone(),
        fields: vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())],
        ttl: None,
    })
    .await
    .unwrap();
    assert_eq!(
        s.one(Op::MapGet(map.clone(), "a".into())).await.unwrap(),
        Reply::Value(Some(b"1".to_vec()))
    );
    assert_eq!(
        s.one(Op::MapSetIfAbsent(map.clone(), "a".into(), b"9".to_vec()))
            .await
            .unwrap(),
        Reply::Flag(false)
    );
    assert_eq!(
        s.one(Op::MapSetIfAbsent(map.clone(), "c".into(), b"3".to_vec()))
            .await
            .unwrap(),
        Reply::Flag(true)
    );
    assert_eq!(
        s.one(Op::MapDelete(map.clone(), vec!["b".into(), "zz".into()]))
            .await
            .unwrap(),
        Reply::Int(1)
    );
    let all = s
        .one(Op::MapGetAll(map.clone()))
        .await
        .unwrap()
        .into_map()
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all.get("c").map(Vec::as_slice), Some(&b"3"[..]));
    assert!(s
        .one(Op::MapGetAll(k.in_shard(0, "none")))
        .await
        .unwrap()
        .into_map()
        .unwrap()
        .is_empty());

    let index = k.user_sessions("u1");
    for m in ["x", "y", "x"] {
        s.one(Op::IndexAdd {
            key: index.clone(),
            member: m.into(),
            ttl: Duration::from_secs(60),
        })
        .await
        .unwrap();
    }
    assert_eq!(members(&s, &index).await, ["x", "y"]);
    let ttl = s
        .one(Op::TtlMillis(index))
        .await
        .unwrap()
        .into_int()
        .unwrap();
    assert!(ttl > 59_000, "an index gets its members' lifetime: {ttl}");
}

/// An index's members, sorted.
async fn members(s: &Shared, key: &str) -> Vec<String> {
    let mut all = s
        .one(Op::IndexMembers(key.to_owned()))
        .await
        .unwrap()
        .into_members()
        .unwrap();
    all.sort();
    all
}

async fn an_index_drops_members_past_their_lifetime(s: Shared, k: Keys) {
    let index = k.user_sessions("u2");
    let add = |m: &str, ms: u64| Op::IndexAdd {
        key: index.clone(),
        member: m.into(),
        ttl: Duration::from_millis(ms),
    };
    s.one(add("long", 60_000)).await.unwrap();
    s.one(add("short", 300)).await.unwrap();
    // A shorter member never shortens the index's own lifetime.
    let ttl = s.one(Op::TtlMillis(index.clone())).await.unwrap();
    assert!(ttl.into_int().unwrap() > 59_000);
    assert_eq!(members(&s, &index).await, ["long", "short"]);
    tokio::time::sleep(Duration::from_millis(450)).await;
    // Past its lifetime a member is not listed, and the next add drops it.
    assert_eq!(members(&s, &index).await, ["long"]);
    for i in 0..3 {
        s.one(add(&format!("n{i}"), 300)).await.unwrap();
    }
    s.one(add("short", 60_000)).await.unwrap();
    assert_eq!(
        members(&s, &index).await,
        ["long", "n0", "n1", "n2", "short"]
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    s.one(add("last", 60_000)).await.unwrap();
    assert_eq!(members(&s, &index).await, ["last", "long", "short"]);
}

async fn rotation_swaps_once_and_detects_reuse(s: Shared, k: Keys) {
    let key = k.session("sid");
    s.one(Op::MapSet {
        key: key.clone(),
        fields: vec![("r".into(), b"r1".to_vec()), ("a".into(), b"a1".to_vec())],
        ttl: Some(Duration::from_secs(60)),
    })
    .await
    .unwrap();
    let rotate = |presented: &str, next: &str| Op::RotateRefresh {
        key: key.clone(),
        presented: presented.into(),
        fields: vec![
            ("r".into(), next.as_bytes().to_vec()),
            ("a".into(), format!("a-{next}").into_bytes()),
        ],
        ttl: Duration::from_secs(120),
    };
    assert_eq!(
        s.one(rotate("r1", "r2")).await.unwrap(),
        Reply::Rotated(Rotation::Rotated)
    );
    assert_eq!(
        s.one(Op::MapGet(key.clone(), "a".into())).await.unwrap(),
        Reply::Value(Some(b"a-r2".to_vec()))
    );
    let ttl = s
        .one(Op::TtlMillis(key.clone()))
        .await
        .unwrap()
        .into_int()
        .unwrap();
    assert!(ttl > 100_000, "rotation extends the session: {ttl}");
    assert_eq!(
        s.one(rotate("never", "x")).await.unwrap(),
        Reply::Rotated(Rotation::Unknown)
    );
    assert_eq!(
        s.one(rotate("r1", "r3")).await.unwrap(),
        Reply::Rotated(Rotation::Reused)
    );
    assert!(
        s.one(Op::MapGetAll(key.clone()))
            .await
            .unwrap()
            .into_map()
            .unwrap()
            .is_empty(),
        "reuse deletes the session"
    );
    assert_eq!(
        s.one(rotate("r2", "r4")).await.unwrap(),
        Reply::Rotated(Rotation::Unknown)
    );
}

async fn a_batch_answers_each_op_in_order(s: Shared, k: Keys) {
    let a = k.user("app", "a", "v");
    let m = k.in_shard(0, "m");
    let replies = s
        .exec(vec![
            Op::Set {
                key: a.clone(),
                value: b"1".to_vec(),
                ttl: None,
            },
            Op::MapSet {
                key: m.clone(),
                fields: vec![("f".into(), b"v".to_vec())],
                ttl: Some(Duration::from_secs(9)),
            },
            Op::Get(a.clone()),
            Op::Peek(k.address("p", "1.1.1.1")),
            Op::Take(a.clone()),
            Op::Delete(vec![a, m]),
        ])
        .await
        .unwrap();
    assert_eq!(replies.len(), 6, "{replies:?}");
    assert_eq!(replies[2], Reply::Value(Some(b"1".to_vec())));
    assert!(matches!(replies[3], Reply::Counter { count: 0, .. }));
    assert_eq!(replies[4], Reply::Value(Some(b"1".to_vec())));
    assert_eq!(replies[5], Reply::Int(1));
}

/// A user's sessions were listed in a plain set before members had lifetimes of
/// their own: the first add converts it, every member kept (for what was left
/// of the set's lifetime), so ending all of the user's sessions still finds them.
#[tokio::test]
async fn an_index_kept_as_a_plain_set_is_converted_on_the_next_add() {
    let Some(r) = TestRedis::start().await else {
        return;
    };
    let s: Shared = Arc::new(RedisStore::connect(&r.url).await.unwrap());
    let k = Keys::new(&r.prefix);
    let index = k.user_sessions("old");
    let mut c = r.conn().await;
    // More members than the script's batches of 500.
    let old: Vec<String> = (0..1200).map(|i| format!("s{i:04}")).collect();
    let _: () = redis::cmd("SADD")
        .arg(&index)
        .arg(&old)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("PEXPIRE")
        .arg(&index)
        .arg(30_000)
        .query_async(&mut c)
        .await
        .unwrap();
    let add = |member: &str, ms: u64| {
        s.one(Op::IndexAdd {
            key: index.clone(),
            member: member.into(),
            ttl: Duration::from_millis(ms),
        })
    };
    // Read before any add: the set's members as they are.
    assert_eq!(members(&s, &index).await, old);
    add("new", 60_000).await.unwrap();
    let kind: String = redis::cmd("TYPE")
        .arg(&index)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(kind, "zset");
    let mut want = old.clone();
    want.push("new".into());
    want.sort();
    assert_eq!(members(&s, &index).await, want);
    // The old members are kept at least for what was left of the set's
    // lifetime (30 s), and no longer than the new member (60 s). (An add by
    // plain commands lengthens the set's lifetime before the script converts
    // it, so on one server they get the new member's; the script alone, on a
    // cluster, keeps the 30 s.)
    let score = |m: &str| {
        let (index, m, mut c) = (index.clone(), m.to_owned(), c.clone());
        async move {
            let v: f64 = redis::cmd("ZSCORE")
                .arg(&index)
                .arg(&m)
                .query_async(&mut c)
                .await
                .unwrap();
            v
        }
    };
    let (secs, micros): (u64, u64) = redis::cmd("TIME")
        .query_async(&mut c.clone())
        .await
        .unwrap();
    let server_ms = (secs * 1000 + micros / 1000) as f64;
    let (kept, newest) = (score("s0000").await, score("new").await);
    assert!(kept >= server_ms + 29_000.0, "{}", kept - server_ms);
    assert!(kept <= newest, "{}", newest - kept);
    assert!((59_000.0..=60_100.0).contains(&(newest - server_ms)));
    let ttl = s
        .one(Op::TtlMillis(index.clone()))
        .await
        .unwrap()
        .into_int()
        .unwrap();
    assert!(ttl > 59_000, "{ttl}");
    // Members past their lifetime leave the sorted set itself, not only the
    // listing: within eight adds (one plain add in eight prunes; the script,
    // on a cluster, every add).
    for i in 0..3 {
        add(&format!("brief{i}"), 200).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut held = Vec::new();
    for i in 0..8 {
        add(&format!("later{i}"), 60_000).await.unwrap();
        let n = zcard(&c, &index).await;
        // The old members, "new", later0..=i, and the brief ones until pruned.
        held.push(n - (old.len() + 2 + i));
    }
    assert!(
        held.contains(&0) && held.iter().skip_while(|&&n| n == 3).all(|&n| n == 0),
        "the brief members are gone within eight adds: {held:?}"
    );
}

/// How many members the sorted set at `key` holds, ended ones included.
async fn zcard(c: &redis::aio::MultiplexedConnection, key: &str) -> usize {
    redis::cmd("ZCARD")
        .arg(key)
        .query_async(&mut c.clone())
        .await
        .unwrap()
}

/// `SCRIPT FLUSH` on the test's server, as a restart would leave it.
async fn forget_scripts(r: &TestRedis) {
    let mut c = r.conn().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut c)
        .await
        .unwrap();
}

#[tokio::test]
async fn scripts_survive_a_redis_that_forgot_them() {
    let Some(r) = TestRedis::start().await else {
        return;
    };
    let s = RedisStore::connect(&r.url).await.unwrap();
    let k = Keys::new(&r.prefix);
    let hit = || Op::Hit {
        key: k.address("n", "1"),
        window: Duration::from_secs(60),
    };
    assert_eq!(s.one(hit()).await.unwrap().into_counter().unwrap().0, 1);
    forget_scripts(&r).await;
    // A batch mixing a script with plain commands: each runs exactly once.
    let replies = s
        .exec(vec![
            hit(),
            Op::Set {
                key: k.user("a", "b", "v"),
                value: b"1".to_vec(),
                ttl: None,
            },
            hit(),
        ])
        .await
        .unwrap();
    assert_eq!(replies[0].clone().into_counter().unwrap().0, 2);
    assert_eq!(replies[2].clone().into_counter().unwrap().0, 3);
    assert_eq!(
        s.get(&k.user("a", "b", "v")).await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
}

/// The same on one server when no later command of the batch touches the
/// script's key: the batch goes as it was queued, the script meets NOSCRIPT,
/// and its second run (with its source) is the only one that counts.
#[tokio::test]
async fn a_script_the_server_forgot_runs_once_among_plain_commands() {
    let Some(r) = TestRedis::start().await else {
        return;
    };
    let s = RedisStore::connect(&r.url).await.unwrap();
    let k = Keys::new(&r.prefix);
    let hit = |n: &str| Op::Hit {
        key: k.address("n", n),
        window: Duration::from_secs(60),
    };
    let count = |r: &Reply| r.clone().into_counter().unwrap().0;
    assert_eq!(count(&s.one(hit("1")).await.unwrap()), 1);
    forget_scripts(&r).await;
    let replies = s
        .exec(vec![
            Op::Set {
                key: k.user("a", "b", "v"),
                value: b"1".to_vec(),
                ttl: None,
            },
            hit("1"),
            Op::Get(k.user("a", "b", "v")),
            hit("2"),
        ])
        .await
        .unwrap();
    assert_eq!(replies[0], Reply::Done, "{replies:?}");
    assert_eq!(count(&replies[1]), 2, "{replies:?}");
    assert_eq!(replies[2], Reply::Value(Some(b"1".to_vec())), "{replies:?}");
    assert_eq!(count(&replies[3]), 1, "{replies:?}");
    // And the scripts are known again: the next batch needs no second run.
    assert_eq!(count(&s.one(hit("1")).await.unwrap()), 3);
}

/// User keys (`{u:…}` tags) whose slots fall in each third of the slot space,
/// which is how `redis-cli --cluster create` spreads three primaries: one user
/// per primary. (The checks confirm it with each primary's command counts.)
fn one_user_per_primary(k: &Keys) -> [String; 3] {
    let mut found: [Option<String>; 3] = [None, None, None];
    for i in 0..10_000 {
        let who = format!("u{i}");
        let third = match slot(k.user("app", &who, "x").as_bytes()) {
            0..=5_460 => 0,
            5_461..=10_922 => 1,
            _ => 2,
        };
        if found[third].is_none() {
            found[third] = Some(who);
        }
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    found.map(|w| w.expect("a user in every third of the slots"))
}

/// Asserts that every primary processed commands since the stats were reset.
async fn every_primary_worked(cluster: &TestCluster) {
    let counts = cluster.command_counts().await;
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(
        counts.iter().all(|(_, n)| *n > 0),
        "the batch reached every primary: {counts:?}"
    );
}

async fn a_batch_over_every_primary_answers_each_op_in_order(
    s: Shared,
    cluster: &TestCluster,
    k: Keys,
) {
    let [a, b, c] = one_user_per_primary(&k);
    let key = |who: &str, what: &str| k.user("app", who, what);
    let ttl = Some(Duration::from_secs(60));
    let set = |who: &str, v: &str| Op::Set {
        key: key(who, "v"),
        value: v.as_bytes().to_vec(),
        ttl,
    };
    let hit = |who: &str| Op::Hit {
        key: key(who, "count"),
        window: Duration::from_secs(60),
    };
    cluster.reset_stats().await;
    let ops = vec![
        set(&a, "a"),
        set(&b, "b"),
        set(&c, "c"),
        hit(&a),
        Op::Get(key(&b, "v")),
        Op::MapSet {
            key: key(&c, "map"),
            fields: vec![("f".into(), b"mapped".to_vec())],
            ttl,
        },
        Op::Peek(key(&a, "count")),
        Op::ListPush {
            key: key(&b, "list"),
            value: b"item".to_vec(),
            keep: 3,
        },
        Op::StreamAck {
            stream: key(&c, "stream"),
            group: "g".into(),
            ids: Vec::new(),
        },
        Op::Take(key(&a, "v")),
        Op::SetUnderLimit {
            counter: key(&b, "requests"),
            window: Duration::from_secs(60),
            limit: 0,
            key: key(&b, "secret"),
            value: b"s".to_vec(),
            ttl: Duration::from_secs(60),
        },
        Op::MapGet(key(&c, "map"), "f".into()),
        Op::Delete(vec![key(&b, "v")]),
        Op::Get(key(&a, "v")),
        hit(&b),
        hit(&a),
        Op::SetIfAbsent {
            key: key(&c, "v"),
            value: b"other".to_vec(),
            ttl,
        },
        Op::Delete(Vec::new()),
        Op::ListRange {
            key: key(&b, "list"),
            count: 10,
        },
        Op::Get(key(&c, "v")),
        Op::SetUnderLimit {
            counter: key(&c, "requests"),
            window: Duration::from_secs(60),
            limit: 1,
            key: key(&c, "secret"),
            value: b"s".to_vec(),
            ttl: Duration::from_secs(60),
        },
        Op::Get(key(&b, "secret")),
    ];
    let n = ops.len();
    let r = s.exec(ops).await.expect("the batch runs");
    assert_eq!(r.len(), n, "one reply per op: {r:?}");
    let value = |v: &str| Reply::Value(Some(v.as_bytes().to_vec()));
    let counter = |r: &Reply| r.clone().into_counter().map(|(n, _)| n).ok();
    assert_eq!(r[0..3], [Reply::Done, Reply::Done, Reply::Done], "{r:?}");
    assert_eq!(counter(&r[3]), Some(1), "{r:?}");
    assert_eq!(r[4], value("b"), "{r:?}");
    assert_eq!(r[5], Reply::Done, "{r:?}");
    assert_eq!(counter(&r[6]), Some(1), "a peek after the hit: {r:?}");
    assert_eq!(r[7], Reply::Done, "{r:?}");
    assert_eq!(r[8], Reply::Done, "{r:?}");
    assert_eq!(r[9], value("a"), "{r:?}");
    assert!(
        matches!(r[10], Reply::Counted { written: true, .. }),
        "{r:?}"
    );
    assert_eq!(r[11], value("mapped"), "{r:?}");
    assert_eq!(r[12], Reply::Int(1), "{r:?}");
    assert_eq!(
        r[13],
        Reply::Value(None),
        "taken earlier in the batch: {r:?}"
    );
    assert_eq!(counter(&r[14]), Some(1), "{r:?}");
    assert_eq!(counter(&r[15]), Some(2), "{r:?}");
    assert_eq!(r[16], Reply::Flag(false), "{r:?}");
    assert_eq!(r[17], Reply::Int(0), "{r:?}");
    assert_eq!(r[18], Reply::Items(vec![b"item".to_vec()]), "{r:?}");
    assert_eq!(r[19], value("c"), "{r:?}");
    assert!(
        matches!(
            r[20],
            Reply::Counted {
                written: true,
                count: 1,
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(r[21], value("s"), "{r:?}");
    every_primary_worked(cluster).await;
}

/// `SCRIPT FLUSH` on every node of the cluster, replicas included.
async fn flush_scripts_everywhere(cluster: &TestCluster) {
    for port in cluster.ports() {
        let mut c = cluster
            .node_client(port)
            .get_multiplexed_async_connection()
            .await
            .expect("node connection");
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut c)
            .await
            .expect("SCRIPT FLUSH");
    }
}

async fn scripts_survive_a_cluster_that_forgot_them(s: Shared, cluster: &TestCluster, k: Keys) {
    let users = one_user_per_primary(&k);
    let hit = |who: &str| Op::Hit {
        key: k.user("app", who, "count"),
        window: Duration::from_secs(60),
    };
    let count = |r: &Reply| r.clone().into_counter().unwrap().0;
    for who in &users {
        assert_eq!(count(&s.one(hit(who)).await.unwrap()), 1);
    }
    flush_scripts_everywhere(cluster).await;
    cluster.reset_stats().await;
    // Scripts and plain commands on every primary in one batch: each runs once.
    let mut ops = Vec::new();
    for who in &users {
        ops.push(hit(who));
        ops.push(Op::Set {
            key: k.user("app", who, "v"),
            value: who.as_bytes().to_vec(),
            ttl: None,
        });
        ops.push(hit(who));
        ops.push(Op::SetUnderLimit {
            counter: k.user("app", who, "requests"),
            window: Duration::from_secs(60),
            limit: 5,
            key: k.user("app", who, "secret"),
            value: b"s".to_vec(),
            ttl: Duration::from_secs(60),
        });
    }
    let r = s
        .exec(ops)
        .await
        .expect("the batch runs after SCRIPT FLUSH");
    for (i, who) in users.iter().enumerate() {
        assert_eq!(count(&r[4 * i]), 2, "{who}: {r:?}");
        assert_eq!(r[4 * i + 1], Reply::Done, "{who}: {r:?}");
        assert_eq!(count(&r[4 * i + 2]), 3, "{who}: {r:?}");
        assert!(
            matches!(
                r[4 * i + 3],
                Reply::Counted {
                    written: true,
                    count: 1,
                    ..
                }
            ),
            "{who}: {r:?}"
        );
        assert_eq!(
            s.get(&k.user("app", who, "v")).await.unwrap().as_deref(),
            Some(who.as_bytes())
        );
    }
    every_primary_worked(cluster).await;
    // And again, now that every primary knows them.
    for who in &users {
        assert_eq!(count(&s.one(hit(who)).await.unwrap()), 4, "{who}");
    }
}

/// Readiness is the store's ping: while a primary is down, its slots cannot be
/// served, so the ping fails; once a replica took over, it succeeds again.
async fn ping_fails_while_a_primary_is_down(s: Shared, cluster: &TestCluster, k: Keys) {
    s.ping().await.expect("a healthy cluster answers the ping");
    let key = k.user("app", "ping", "x");
    s.set(&key, b"1".to_vec(), None).await.unwrap();
    let killed = cluster.kill_primary_of(&key).await;
    let t0 = Instant::now();
    // With `--cluster-node-timeout 1000`, no replica can take over within the
    // first second: the killed primary's slots have no primary then.
    let mut pings = Vec::new();
    while t0.elapsed() < Duration::from_millis(900) {
        let ping = tokio::time::timeout(Duration::from_secs(5), s.ping()).await;
        let get = s.get(&key).await;
        pings.push(format!(
            "{:?}: ping {ping:?}, get of a key of the dead primary {get:?}",
            t0.elapsed()
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = pings.join("\n");
    eprintln!("primary {killed} killed:\n{seen}");
    let answered = pings.iter().filter(|p| p.contains("ping Ok(Ok")).count();
    assert_eq!(
        answered, 0,
        "the ping answered Ok while primary {killed} was down and its slots unserved:\n{seen}"
    );
    let failover = cluster.wait_failover(Duration::from_secs(15)).await;
    let mut last = None;
    for _ in 0..50 {
        match s.ping().await {
            Ok(()) => {
                last = None;
                break;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        last.is_none(),
        "no ping 5 s after the failover ({failover:?}): {last:?}"
    );
    assert_eq!(s.get(&key).await.unwrap().as_deref(), Some(&b"1"[..]));
}

/// On one server of Redis 7 an index add goes as plain commands, scored by the
/// server's clock as the store follows it: a member's score is its end as the
/// script (which reads `TIME`) would have put it, and the index's lifetime is
/// the longest of its members'.
#[tokio::test]
async fn an_index_add_by_plain_commands_scores_by_the_servers_clock() {
    let Some(r) = TestRedis::start().await else {
        return;
    };
    let s: Shared = Arc::new(RedisStore::connect(&r.url).await.unwrap());
    let k = Keys::new(&r.prefix);
    let index = k.user_sessions("clock");
    let mut c = r.conn().await;
    for (member, ms) in [("long", 90_000), ("short", 10_000)] {
        s.one(Op::IndexAdd {
            key: index.clone(),
            member: member.into(),
            ttl: Duration::from_millis(ms),
        })
        .await
        .unwrap();
    }
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut c).await.unwrap();
    let server_ms = (secs * 1000 + micros / 1000) as f64;
    for (member, ms) in [("long", 90_000.0), ("short", 10_000.0)] {
        let score: f64 = redis::cmd("ZSCORE")
            .arg(&index)
            .arg(member)
            .query_async(&mut c)
            .await
            .unwrap();
        let off = score - (server_ms + ms);
        assert!((-500.0..=50.0).contains(&off), "{member}: {off} ms off");
    }
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&index)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!((89_000..=90_000).contains(&ttl), "{ttl}");
    // Commands, not the script (this Redis is the test's own).
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut c)
        .await
        .unwrap();
    let calls = |cmd: &str| {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
            .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert_eq!((calls("zadd"), calls("evalsha")), (2, 0), "{stats}");
}

/// On one server of Redis 7 a plain index add drops the members that have
/// ended on one add in eight: in between they stay in the sorted set, unlisted,
/// and the next pruning add takes them all.
#[tokio::test]
async fn a_plain_index_add_drops_ended_members_once_in_eight_adds() {
    let Some(r) = TestRedis::start().await else {
        return;
    };
    // A store of its own: its count of adds starts at zero.
    let s: Shared = Arc::new(RedisStore::connect(&r.url).await.unwrap());
    let k = Keys::new(&r.prefix);
    let index = k.user_sessions("prune");
    let c = r.conn().await;
    let add = |m: String, ms: u64| Op::IndexAdd {
        key: index.clone(),
        member: m,
        ttl: Duration::from_millis(ms),
    };
    // Add 0 (a pruning one, with nothing ended) keeps the index alive; adds 1-7
    // are members that end at once.
    s.one(add("anchor".into(), 60_000)).await.unwrap();
    for i in 1..8 {
        s.one(add(format!("brief{i}"), 200)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(members(&s, &index).await, ["anchor"]);
    assert_eq!(
        zcard(&c, &index).await,
        8,
        "ended, unlisted, not yet dropped"
    );
    // Add 8 prunes; 9-15 do not.
    let mut after = Vec::new();
    for i in 0..8 {
        s.one(add(format!("lasting{i}"), 60_000)).await.unwrap();
        after.push(zcard(&c, &index).await);
    }
    assert_eq!(after, [2, 3, 4, 5, 6, 7, 8, 9]);
    // Adds 16 (a pruning one) and 17 end soon; 18-23 leave them; 24 takes them.
    s.one(add("brief-a".into(), 200)).await.unwrap();
    s.one(add("brief-b".into(), 200)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..6 {
        s.one(add(format!("more{i}"), 60_000)).await.unwrap();
    }
    assert_eq!(zcard(&c, &index).await, 17);
    assert_eq!(members(&s, &index).await.len(), 15);
    s.one(add("pruner".into(), 60_000)).await.unwrap();
    assert_eq!(zcard(&c, &index).await, 16);
    assert_eq!(members(&s, &index).await.len(), 16);
}

/// The store's own connection to one server (not redis-rs's) opens plain TCP
/// and Unix sockets, chooses the URL's database, and opens again by itself
/// after the server restarts: the batch in flight fails, the next succeeds.
#[tokio::test]
async fn batches_reach_the_urls_database_over_tcp_and_a_unix_socket_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("authgate-sock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("redis.sock");
    let socket_arg = socket.to_string_lossy().into_owned();
    let Some(mut r) =
        TestRedis::start_with_args(&["--unixsocket", &socket_arg, "--unixsocketperm", "700"]).await
    else {
        return;
    };
    let k = Keys::new(&r.prefix);
    let tcp = RedisStore::connect(&format!("{}/2", r.url)).await.unwrap();
    let unix = RedisStore::connect(&format!("unix://{socket_arg}?db=3"))
        .await
        .unwrap();
    let set = |key: &str| Op::Set {
        key: k.in_shard(0, key),
        value: b"v".to_vec(),
        ttl: Some(Duration::from_secs(60)),
    };
    tcp.one(set("over-tcp")).await.unwrap();
    unix.one(set("over-unix")).await.unwrap();
    let mut c = r.conn().await;
    let in_db = |db: i64, key: &str| {
        let (mut c, key) = (c.clone(), k.in_shard(0, key));
        async move {
            let _: () = redis::cmd("SELECT")
                .arg(db)
                .query_async(&mut c)
                .await
                .unwrap();
            let n: i64 = redis::cmd("EXISTS")
                .arg(&key)
                .query_async(&mut c)
                .await
                .unwrap();
            let _: () = redis::cmd("SELECT")
                .arg(0)
                .query_async(&mut c)
                .await
                .unwrap();
            n == 1
        }
    };
    assert!(in_db(2, "over-tcp").await && !in_db(0, "over-tcp").await);
    assert!(in_db(3, "over-unix").await && !in_db(2, "over-unix").await);
    // Many requests' batches share one connection: replies go to their own.
    let batches = (0..200).map(|i| {
        let (tcp, key) = (&tcp, k.in_shard(0, &format!("n{i}")));
        async move {
            tcp.one(Op::Set {
                key: key.clone(),
                value: i.to_string().into_bytes(),
                ttl: None,
            })
            .await
            .unwrap();
            tcp.one(Op::Get(key)).await.unwrap()
        }
    });
    let got = futures::future::join_all(batches).await;
    for (i, reply) in got.into_iter().enumerate() {
        assert_eq!(reply, Reply::Value(Some(i.to_string().into_bytes())));
    }
    r.stop();
    assert!(tcp.one(set("while-down")).await.is_err());
    assert!(unix.one(set("while-down")).await.is_err());
    r.restart().await;
    // The first batch after the restart may still find the old connection.
    for store in [&tcp, &unix] {
        let mut ok = false;
        for _ in 0..3 {
            if store.one(set("after")).await.is_ok() {
                ok = true;
                break;
            }
        }
        assert!(ok, "the store reconnected by itself");
    }
    c = r.conn().await;
    let _: () = redis::cmd("SELECT")
        .arg(3)
        .query_async(&mut c)
        .await
        .unwrap();
    let n: i64 = redis::cmd("EXISTS")
        .arg(k.in_shard(0, "after"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 1, "after reconnecting, still the URL's database");
    let _ = std::fs::remove_dir_all(&dir);
}

/// While the server stalls, batches past the connection's queue fail at once
/// (503 material) instead of piling up, and those whose callers gave up are
/// never sent: after the server is back, none of their writes has landed.
#[tokio::test]
async fn a_stalled_redis_sheds_batches_past_the_queue_and_never_runs_abandoned_ones() {
    let Some(r) = TestRedis::start().await else {
        return;
    };
    if !r.is_private() {
        eprintln!("\n*** SKIPPED: stalling Redis needs a private redis-server ***\n");
        return;
    }
    let k = Keys::new(&r.prefix);
    let store = Arc::new(RedisStore::connect(&r.url).await.unwrap());
    let set = |key: String, value: Vec<u8>| Op::Set {
        key,
        value,
        ttl: None,
    };
    store
        .one(set(k.in_shard(0, "before"), b"v".to_vec()))
        .await
        .unwrap();
    r.pause();
    // A write larger than both sockets' buffers (32 MiB at most here) blocks the
    // connection's writer, so what follows waits in its queue.
    let big = {
        let (store, key) = (store.clone(), k.in_shard(0, "big"));
        tokio::spawn(async move { store.one(set(key, vec![b'x'; 64 << 20])).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let extra = 300;
    let batches: Vec<_> = (0..REDIS_QUEUE_LIMIT + extra)
        .map(|i| {
            let (store, key) = (store.clone(), k.in_shard(0, &format!("stalled{i}")));
            tokio::spawn(async move {
                let t = Instant::now();
                let out = store.one(set(key, b"v".to_vec())).await;
                (out.is_ok(), out.err().map(|e| e.to_string()), t.elapsed())
            })
        })
        .collect();
    let mut shed = 0;
    let mut timed_out = 0;
    for b in batches {
        let (ok, err, took) = b.await.unwrap();
        assert!(!ok, "nothing is answered while the server is frozen");
        let err = err.unwrap_or_default();
        if err.contains("not keeping up") {
            assert!(
                took < Duration::from_millis(500),
                "shed at once, not after {took:?}"
            );
            shed += 1;
        } else {
            assert!(took >= Duration::from_millis(1900), "{err} after {took:?}");
            assert!(took < Duration::from_secs(10), "{err} after {took:?}");
            timed_out += 1;
        }
    }
    assert_eq!(shed, extra, "exactly the batches past the queue are shed");
    assert_eq!(timed_out, REDIS_QUEUE_LIMIT);
    assert!(
        big.await.unwrap().is_err(),
        "the big write's caller gave up too"
    );
    r.resume();
    // The connection goes on by itself once the server is back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store
        .one(set(k.in_shard(0, "after"), b"v".to_vec()))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the store answers again within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let keys = r.keys().await;
    assert!(keys.iter().any(|key| key.ends_with("after")), "{keys:?}");
    assert!(
        keys.iter().all(|key| !key.contains("stalled")),
        "a batch whose caller gave up was sent: {:?}",
        keys.iter()
            .filter(|key| key.contains("stalled"))
            .take(5)
            .collect::<Vec<_>>()
    );
}
