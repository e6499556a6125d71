//! Slots moving between the primaries of a Redis Cluster while the store and
//! the gateway run, moved the way `redis-cli --cluster reshard` moves them:
//! `CLUSTER SETSLOT IMPORTING`/`MIGRATING`, `MIGRATE` of the keys, then
//! `CLUSTER SETSLOT NODE` on every primary ([`TestCluster::migrate_slot`] and
//! its steps).
//!
//! - While a slot migrates, its old owner answers `ASK` for the keys it no
//!   longer holds: a batch touching the slot must still get the right answers,
//!   with each op run once. (A script on two keys of the slot is the one
//!   exception Redis makes: it refuses it with TRYAGAIN while one of them is
//!   missing, until the migration is over; that is noted, not failed.)
//! - Once it has moved, the old owner answers `MOVED`: the store must follow,
//!   and so must a running gateway, with no restart; single use holds across
//!   the move (a value taken once is gone on the new owner); and a batch still
//!   runs in order on the new owner, which has never run the store's scripts.
//!
//! The store tests run every check to the end and report all failures at
//! once, each with its phase and batch, rather than stopping at the first.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::time::{Duration, Instant};

use authgate_core::limits::Limit;
use authgate_core::store::slot::{key_in, slot, SLOTS};
use authgate_core::store::{CodeCheck, Keys, Op, RedisStore, Reply, Store, StoreExt};
use authgate_tests::app::hash;
use authgate_tests::{spawn_app_on, TestApp, TestCluster, WebUser};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The longest one batch, one request or one check may take.
const BOUND: Duration = Duration::from_secs(15);
/// Long enough for nothing to expire during a test.
const LONG: Duration = Duration::from_secs(600);

fn fresh_prefix() -> String {
    format!("r{}:", uuid::Uuid::new_v4().simple())
}

/// Key `name` in `slot`, under `prefix`.
fn in_slot(prefix: &str, slot: u16, name: &str) -> String {
    format!("{prefix}{}:{name}", key_in(slot))
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// A primary other than the one on `port`.
fn another_primary(cluster: &TestCluster, port: u16) -> u16 {
    cluster
        .primaries()
        .iter()
        .map(|a| port_of(a))
        .find(|p| *p != port)
        .expect("another primary")
}

/// The first slot after `after` (wrapping) that the primary on `port` serves.
async fn a_slot_of(cluster: &TestCluster, port: u16, after: u16) -> u16 {
    // Primaries serve ranges of about a third of the slots each: a step of a
    // 64th finds one of each within a few tries.
    for step in 1..=64u16 {
        let candidate = after.wrapping_add(step * (SLOTS / 64) + 1) % SLOTS;
        if cluster.owner_of(candidate).await == port {
            return candidate;
        }
    }
    panic!("no slot served by {port}");
}

/// `f`, or `Err` when it takes longer than [`BOUND`].
async fn bounded<T>(f: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(BOUND, f)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {BOUND:?}")))
}

/// A reply with the time left of a counter's window dropped, so that replies
/// compare exactly.
fn comparable(reply: Reply) -> Reply {
    match reply {
        Reply::Counter { count, .. } => Reply::Counter {
            count,
            reset: Duration::ZERO,
        },
        Reply::Counted { count, written, .. } => Reply::Counted {
            count,
            reset: Duration::ZERO,
            written,
        },
        other => other,
    }
}

fn counter(count: u64) -> Reply {
    Reply::Counter {
        count,
        reset: Duration::ZERO,
    }
}

fn value(v: &str) -> Reply {
    Reply::Value(Some(v.as_bytes().to_vec()))
}

fn set(key: &str, v: &str) -> Op {
    Op::Set {
        key: key.to_owned(),
        value: v.as_bytes().to_vec(),
        ttl: Some(LONG),
    }
}

fn hit(key: &str) -> Op {
    Op::Hit {
        key: key.to_owned(),
        window: LONG,
    }
}

fn check_code(key: &str, digest: &str) -> Op {
    Op::CheckCode {
        key: key.to_owned(),
        digest: digest.to_owned(),
        max_tries: 3,
    }
}

fn get(key: &str) -> Op {
    Op::Get(key.to_owned())
}

fn take(key: &str) -> Op {
    Op::Take(key.to_owned())
}

/// The checks of one test: each failure noted with its phase, the test
/// failing at the end with all of them.
struct Findings {
    store: RedisStore,
    phase: &'static str,
    failed: Vec<String>,
    passed: usize,
    /// Batches Redis refused with TRYAGAIN, which is not a failure (see
    /// [`Findings::expect_unless_refused`]).
    refused: Vec<String>,
}

impl Findings {
    fn new(store: RedisStore) -> Self {
        Self {
            store,
            phase: "before the move",
            failed: Vec::new(),
            passed: 0,
            refused: Vec::new(),
        }
    }

    fn fail(&mut self, what: &str, why: String) {
        let line = format!("{}: {what}: {why}", self.phase);
        eprintln!("FAILED {line}");
        self.failed.push(line);
    }

    /// Runs `ops` as one batch and checks that the replies are `want`; the
    /// replies, or `None` when the batch failed.
    async fn expect(&mut self, what: &str, ops: Vec<Op>, want: Vec<Reply>) -> Option<Vec<Reply>> {
        let shown = format!("{ops:?}");
        let got = bounded(async { self.store.exec(ops).await.map_err(|e| e.to_string()) }).await;
        self.judge(what, &shown, got, want)
    }

    /// Like [`Findings::expect`], but a batch Redis refuses with TRYAGAIN is
    /// noted, not failed: a command on several keys of a migrating slot is
    /// refused so while some of them are missing on the node asked (Redis
    /// Cluster's rule; the client is meant to retry later), and while the test
    /// holds the migration half-way, "later" never comes. Whether it was answered.
    async fn expect_unless_refused(&mut self, what: &str, ops: Vec<Op>, want: Vec<Reply>) -> bool {
        let shown = format!("{ops:?}");
        let got = bounded(async { self.store.exec(ops).await.map_err(|e| e.to_string()) }).await;
        match got {
            Err(e) if e.contains("TryAgain") => {
                eprintln!("refused {}: {what}: {e}", self.phase);
                self.refused.push(format!("{}: {what}: {e}", self.phase));
                false
            }
            got => self.judge(what, &shown, got, want).is_some(),
        }
    }

    fn judge(
        &mut self,
        what: &str,
        shown: &str,
        got: Result<Vec<Reply>, String>,
        want: Vec<Reply>,
    ) -> Option<Vec<Reply>> {
        match got {
            Ok(replies) => {
                let replies: Vec<Reply> = replies.into_iter().map(comparable).collect();
                if replies == want {
                    self.passed += 1;
                    eprintln!("ok     {}: {what}", self.phase);
                } else {
                    self.fail(
                        what,
                        format!("batch {shown}\n    got    {replies:?}\n    wanted {want:?}"),
                    );
                }
                Some(replies)
            }
            Err(e) => {
                self.fail(what, format!("batch {shown}\n    failed: {e}"));
                None
            }
        }
    }

    /// The value of `key` now, for explaining a failure.
    async fn peek_value(&self, key: &str) -> String {
        match bounded(async { self.store.get(key).await.map_err(|e| e.to_string()) }).await {
            Ok(Some(v)) => format!("{:?}", String::from_utf8_lossy(&v)),
            Ok(None) => "absent".into(),
            Err(e) => format!("unreadable ({e})"),
        }
    }

    fn conclude(self, test: &str) {
        eprintln!(
            "{test}: {} checks passed, {} failed, {} refused with TRYAGAIN",
            self.passed,
            self.failed.len(),
            self.refused.len()
        );
        assert!(
            self.failed.is_empty(),
            "{test}: {} of {} checks failed:\n{}",
            self.failed.len(),
            self.passed + self.failed.len(),
            self.failed.join("\n")
        );
    }
}

/// The store on `cluster`, from one node's URL.
async fn store_on(cluster: &TestCluster) -> RedisStore {
    let store = RedisStore::connect(&cluster.seed_url())
        .await
        .expect("the store connects to the cluster");
    assert!(store.is_cluster());
    store
}

/// `GET key` straight on the node on `port`, no redirection followed: the
/// value, or the node's error (`MOVED …` from a node that does not serve it).
async fn get_on_node(
    cluster: &TestCluster,
    port: u16,
    key: &str,
) -> Result<Option<Vec<u8>>, String> {
    let mut c = cluster
        .node_client(port)
        .get_multiplexed_async_connection()
        .await
        .expect("node connection");
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut c)
        .await
        .map_err(|e| e.to_string())
}

/// The keys the node on `port` holds in `slot` (`CLUSTER GETKEYSINSLOT`).
async fn keys_on(cluster: &TestCluster, port: u16, slot: u16) -> Vec<String> {
    let mut c = cluster
        .node_client(port)
        .get_multiplexed_async_connection()
        .await
        .expect("node connection");
    let mut keys: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(slot)
        .arg(1_000)
        .query_async(&mut c)
        .await
        .expect("CLUSTER GETKEYSINSLOT");
    keys.sort();
    keys
}

/// `cmd` on the node on `port` as a client redirected there by `ASK` sends
/// it: right after `ASKING`, on a connection of its own.
async fn asking(cluster: &TestCluster, port: u16, cmd: &mut redis::Cmd) -> redis::Value {
    let mut c = cluster
        .node_client(port)
        .get_multiplexed_async_connection()
        .await
        .expect("node connection");
    let (value,): (redis::Value,) = redis::pipe()
        .cmd("ASKING")
        .ignore()
        .add_command(cmd.clone())
        .query_async(&mut c)
        .await
        .expect("ASKING and a command");
    value
}

/// A slot, the keys of the store tests in it and in two slots that stay
/// where they are, and the primaries it moves between.
struct Layout {
    prefix: String,
    moving: u16,
    from: u16,
    to: u16,
    /// A key in a slot that stays on `from`.
    stays_home: String,
    /// A key in a slot served by `to` all along.
    over_there: String,
}

impl Layout {
    async fn new(cluster: &TestCluster) -> Self {
        let prefix = fresh_prefix();
        let moving = slot(format!("{prefix}moving").as_bytes());
        let from = cluster.owner_of(moving).await;
        let to = another_primary(cluster, from);
        let home = a_slot_of(cluster, from, moving).await;
        let there = a_slot_of(cluster, to, moving).await;
        eprintln!("slot {moving} moves from port {from} to port {to}");
        Self {
            stays_home: in_slot(&prefix, home, "home"),
            over_there: in_slot(&prefix, there, "there"),
            prefix,
            moving,
            from,
            to,
        }
    }

    /// Key `name` in the moving slot.
    fn key(&self, name: &str) -> String {
        in_slot(&self.prefix, self.moving, name)
    }
}

/// While a slot migrates (IMPORTING and MIGRATING set, part of its keys
/// moved), batches reading and writing its keys get the right answers: alone,
/// across slots, and several ops of the slot in one batch, whether their keys
/// have moved yet or not. Once it has moved, everything written before or
/// during the migration reads back from the new owner, and every counted
/// event counted exactly once.
#[tokio::test]
async fn a_batch_answers_while_its_slot_is_migrating() {
    let Some(cluster) = TestCluster::start().await else {
        return;
    };
    let started = Instant::now();
    let l = Layout::new(&cluster).await;
    let mut f = Findings::new(store_on(&cluster).await);
    let k = |name: &str| l.key(name);
    // `m:*` keys migrate early, `s:*` keys only once the checks are done.
    let early = ["m:a", "m:b", "m:take", "m:code", "m:hits", "m:requests"].map(k);
    f.expect(
        "writing the slot's keys and two other slots'",
        vec![
            set(&k("m:a"), "a"),
            set(&k("m:b"), "b"),
            set(&k("m:take"), "taken-once"),
            set(&k("m:code"), "right"),
            hit(&k("m:hits")),
            hit(&k("m:requests")),
            set(&k("s:a"), "sa"),
            set(&k("s:b"), "sb"),
            set(&k("s:take"), "taken-once-too"),
            hit(&k("s:hits")),
            set(&l.stays_home, "home"),
            set(&l.over_there, "there"),
        ],
        [
            vec![Reply::Done; 4],
            vec![counter(1), counter(1)],
            vec![Reply::Done; 3],
            vec![counter(1)],
            vec![Reply::Done; 2],
        ]
        .concat(),
    )
    .await;
    assert_eq!(keys_on(&cluster, l.from, l.moving).await.len(), 10);

    cluster.start_slot_migration(l.moving, l.from, l.to).await;
    cluster.migrate_keys(l.from, l.to, &early).await;
    assert_eq!(
        (
            keys_on(&cluster, l.from, l.moving).await.len(),
            keys_on(&cluster, l.to, l.moving).await.len()
        ),
        (4, 6),
        "half-way: 4 keys of slot {} still on {}, 6 on {}",
        l.moving,
        l.from,
        l.to
    );
    f.phase = "during the migration";

    // One op of the slot per batch: the old owner answers ASK or serves it.
    f.expect(
        "a read of a migrated key, alone",
        vec![get(&k("m:a"))],
        vec![value("a")],
    )
    .await;
    f.expect(
        "a read of a key not migrated yet, alone",
        vec![get(&k("s:a"))],
        vec![value("sa")],
    )
    .await;
    f.expect(
        "a write of a new key, alone",
        vec![set(&k("new"), "n")],
        vec![Reply::Done],
    )
    .await;
    f.expect(
        "a read of the new key, alone",
        vec![get(&k("new"))],
        vec![value("n")],
    )
    .await;
    f.expect(
        "a script (Hit) on a migrated counter, alone",
        vec![hit(&k("m:hits"))],
        vec![counter(2)],
    )
    .await;
    // A key request's shape: one script on two keys, the counter (migrated)
    // and the key (absent). Redis refuses it (TRYAGAIN) until the migration
    // is over; then it must count once and write.
    let key_request = || Op::SetUnderLimit {
        counter: k("m:requests"),
        window: LONG,
        limit: 100,
        key: k("m:key"),
        value: b"nonce".to_vec(),
        ttl: LONG,
    };
    let counted = |count| Reply::Counted {
        count,
        reset: Duration::ZERO,
        written: true,
    };
    let requested = f
        .expect_unless_refused(
            "a key request's shape (SetUnderLimit): a migrated counter, an absent key",
            vec![key_request()],
            vec![counted(2)],
        )
        .await;
    f.expect(
        "a Take of a migrated key",
        vec![take(&k("m:take"))],
        vec![value("taken-once")],
    )
    .await;
    f.expect(
        "the same Take again",
        vec![take(&k("m:take"))],
        vec![Reply::Value(None)],
    )
    .await;
    f.expect(
        "a wrong code (CheckCode) on a migrated code",
        vec![check_code(&k("m:code"), "wrong")],
        vec![Reply::Code(CodeCheck::Wrong { burnt: false })],
    )
    .await;
    f.expect(
        "a batch over three slots, one op in the migrating slot",
        vec![get(&l.stays_home), get(&k("m:b")), get(&l.over_there)],
        vec![value("home"), value("b"), value("there")],
    )
    .await;

    // Several ops of the slot in one batch, as the gateway's batches have.
    f.expect(
        "two reads of migrated keys in one batch",
        vec![get(&k("m:a")), get(&k("m:b"))],
        vec![value("a"), value("b")],
    )
    .await;
    f.expect(
        "a read of a key not migrated yet and one of a migrated key in one batch",
        vec![get(&k("s:b")), get(&k("m:b"))],
        vec![value("sb"), value("b")],
    )
    .await;
    // A key login's batch: the user's wrong guesses (absent) and the key.
    let login = f
        .expect(
            "a key login's shape: Peek of an absent counter, Take of a key not migrated yet",
            vec![Op::Peek(k("s:guesses")), take(&k("s:take"))],
            vec![counter(0), value("taken-once-too")],
        )
        .await;
    if login.is_none() {
        let left = f.peek_value(&k("s:take")).await;
        f.fail(
            "after that failed batch, the value to take",
            format!("is {left} (it must still be there when the Take was not answered)"),
        );
    }
    f.expect(
        "a Hit on a counter not migrated yet with a read of a migrated key",
        vec![hit(&k("s:hits")), get(&k("m:a"))],
        vec![counter(2), value("a")],
    )
    .await;
    f.expect(
        "the right code and a read of a migrated key in one batch",
        vec![check_code(&k("m:code"), "right"), get(&k("m:a"))],
        vec![Reply::Code(CodeCheck::Matched), value("a")],
    )
    .await;

    // A key may now be on both nodes: written to the importing node by a
    // batch redirected there while the old owner still held it. Redis then
    // refuses to migrate it (BUSYKEY), so that `redis-cli --cluster reshard`
    // stops too. Noted, then settled as `--cluster-replace` would: the old
    // owner's copy wins.
    let on_target = keys_on(&cluster, l.to, l.moving).await;
    let split: Vec<String> = keys_on(&cluster, l.from, l.moving)
        .await
        .into_iter()
        .filter(|key| on_target.contains(key))
        .collect();
    for key in &split {
        let mut get_cmd = redis::cmd("GET");
        get_cmd.arg(key);
        let there = asking(&cluster, l.to, &mut get_cmd).await;
        let home = match get_on_node(&cluster, l.from, key).await {
            Ok(Some(v)) => format!("{:?}", String::from_utf8_lossy(&v)),
            other => format!("{other:?}"),
        };
        f.fail(
            "a key on both the old and the new owner",
            format!(
                "{key}: {home} on the old owner, {there:?} on the new one \
                 (MIGRATE of it fails with BUSYKEY)"
            ),
        );
        let mut del = redis::cmd("DEL");
        del.arg(key);
        asking(&cluster, l.to, &mut del).await;
    }
    let rest = cluster.migrate_remaining_keys(l.moving, l.from, l.to).await;
    cluster.finish_slot_migration(l.moving, l.from, l.to).await;
    eprintln!("moved the other {rest} keys and the slot");
    f.phase = "after the migration";
    assert_eq!(keys_on(&cluster, l.from, l.moving).await.len(), 0);
    f.expect(
        "every value written before or during the migration",
        vec![
            get(&k("m:a")),
            get(&k("m:b")),
            get(&k("s:a")),
            get(&k("s:b")),
            get(&k("new")),
            get(&l.stays_home),
            get(&l.over_there),
        ],
        ["a", "b", "sa", "sb", "n", "home", "there"]
            .map(value)
            .to_vec(),
    )
    .await;
    f.expect(
        "values taken once stay gone",
        vec![take(&k("m:take")), take(&k("s:take"))],
        vec![Reply::Value(None), Reply::Value(None)],
    )
    .await;
    f.expect(
        "a code matched once stays used",
        vec![check_code(&k("m:code"), "right")],
        vec![Reply::Code(CodeCheck::Missing)],
    )
    .await;
    f.expect(
        "the key request's shape, counted once more",
        vec![key_request()],
        vec![counted(if requested { 3 } else { 2 })],
    )
    .await;
    f.expect(
        "the key it wrote",
        vec![get(&k("m:key"))],
        vec![value("nonce")],
    )
    .await;
    f.expect(
        "each Hit counted exactly once",
        vec![Op::Peek(k("m:hits")), Op::Peek(k("s:hits"))],
        vec![counter(2), counter(2)],
    )
    .await;
    eprintln!("took {:?}", started.elapsed());
    f.conclude("a_batch_answers_while_its_slot_is_migrating");
}

/// Once a slot has moved, the store, still holding the old slot map, follows
/// the old owner's MOVED: a batch with several ops of the slot and ops of
/// other slots answers right, values are read from the new owner, and a value
/// is taken once however often its slot moves. And back again.
#[tokio::test]
async fn a_batch_follows_a_slot_that_moved() {
    let Some(cluster) = TestCluster::start().await else {
        return;
    };
    let started = Instant::now();
    let l = Layout::new(&cluster).await;
    let mut f = Findings::new(store_on(&cluster).await);
    let k = |name: &str| l.key(name);
    f.expect(
        "writing the slot's keys and two other slots'",
        vec![
            set(&k("a"), "a"),
            set(&k("take"), "taken-after-the-move"),
            set(&k("gone"), "taken-before-the-move"),
            set(&k("code"), "right"),
            hit(&k("hits")),
            set(&l.stays_home, "home"),
            set(&l.over_there, "there"),
        ],
        [vec![Reply::Done; 4], vec![counter(1)], vec![Reply::Done; 2]].concat(),
    )
    .await;
    f.expect(
        "a Take before the move",
        vec![take(&k("gone"))],
        vec![value("taken-before-the-move")],
    )
    .await;

    let moved = cluster.migrate_slot(l.moving, l.from, l.to).await;
    assert_eq!(moved, 4, "the slot's keys moved with it");
    f.phase = "after the move";
    assert_eq!(
        get_on_node(&cluster, l.to, &k("a")).await,
        Ok(Some(b"a".to_vec())),
        "the new owner serves the slot"
    );
    let old = get_on_node(&cluster, l.from, &k("a")).await;
    assert!(
        old.as_ref()
            .is_err_and(|e| e.to_ascii_uppercase().contains("MOVED")),
        "the old owner redirects: {old:?}"
    );
    f.expect(
        "one batch: several ops of the moved slot and two other slots",
        vec![
            get(&k("a")),
            take(&k("take")),
            take(&k("gone")),
            hit(&k("hits")),
            check_code(&k("code"), "right"),
            set(&k("new"), "n"),
            get(&l.stays_home),
            get(&l.over_there),
        ],
        vec![
            value("a"),
            value("taken-after-the-move"),
            Reply::Value(None),
            counter(2),
            Reply::Code(CodeCheck::Matched),
            Reply::Done,
            value("home"),
            value("there"),
        ],
    )
    .await;
    f.expect(
        "taken and matched once, on the new owner",
        vec![
            take(&k("take")),
            check_code(&k("code"), "right"),
            get(&k("new")),
        ],
        vec![
            Reply::Value(None),
            Reply::Code(CodeCheck::Missing),
            value("n"),
        ],
    )
    .await;
    assert_eq!(
        get_on_node(&cluster, l.to, &k("new")).await,
        Ok(Some(b"n".to_vec())),
        "a key written after the move lives on the new owner"
    );

    let back = cluster.migrate_slot(l.moving, l.to, l.from).await;
    assert_eq!(back, 3, "a, hits and new moved back");
    f.phase = "after moving back";
    f.expect(
        "one batch on the slot back home",
        vec![
            get(&k("a")),
            hit(&k("hits")),
            get(&k("new")),
            take(&k("take")),
            get(&l.over_there),
        ],
        vec![
            value("a"),
            counter(3),
            value("n"),
            Reply::Value(None),
            value("there"),
        ],
    )
    .await;
    eprintln!("took {:?}", started.elapsed());
    f.conclude("a_batch_follows_a_slot_that_moved");
}

/// A slot's new owner has never run the store's scripts, so the first script
/// op of a batch there meets NOSCRIPT; the ops after it in the batch must
/// still see its effect (a batch runs in order).
#[tokio::test]
async fn a_batch_on_a_slot_s_new_owner_runs_in_order() {
    let Some(cluster) = TestCluster::start().await else {
        return;
    };
    let started = Instant::now();
    let l = Layout::new(&cluster).await;
    let mut f = Findings::new(store_on(&cluster).await);
    let k = |name: &str| l.key(name);
    f.expect(
        "a code and a counter",
        vec![set(&k("code"), "right"), hit(&k("hits"))],
        vec![Reply::Done, counter(1)],
    )
    .await;
    let moved = cluster.migrate_slot(l.moving, l.from, l.to).await;
    assert_eq!(moved, 2, "the slot's keys moved with it");
    f.phase = "after the move";
    f.expect(
        "the right code (CheckCode), then a read of the code, in one batch",
        vec![check_code(&k("code"), "right"), get(&k("code"))],
        vec![Reply::Code(CodeCheck::Matched), Reply::Value(None)],
    )
    .await;
    f.expect(
        "a Hit, then a Peek of its counter, in one batch",
        vec![hit(&k("hits")), Op::Peek(k("hits"))],
        vec![counter(2), counter(2)],
    )
    .await;
    f.expect(
        "the same again, the scripts now known",
        vec![hit(&k("hits")), Op::Peek(k("hits"))],
        vec![counter(3), counter(3)],
    )
    .await;
    eprintln!("took {:?}", started.elapsed());
    f.conclude("a_batch_on_a_slot_s_new_owner_runs_in_order");
}

/// Limits out of the way: the tests count only what they mean to.
fn roomy(c: &mut authgate_gateway::Config) {
    c.limits.requests_per_user = Limit::new(10_000, LONG);
    c.limits.guesses_per_user = Limit::new(10_000, LONG);
    c.limits.per_ip = Limit::new(100_000, LONG);
}

/// A key requested on `app`, or why not.
async fn request_key(app: &TestApp, u: &WebUser) -> Result<String, String> {
    let (status, body) = bounded(async {
        Ok(app
            .post(
                "/v1/login/one-time-key/request",
                &json!({"username": u.username}),
            )
            .await)
    })
    .await?;
    match (status, body["key"].as_str()) {
        (StatusCode::OK, Some(key)) => Ok(key.to_owned()),
        _ => Err(format!("key request: {status} {body}")),
    }
}

/// A login on `app` with `key`: its body, or the status and body.
async fn login_with(app: &TestApp, u: &WebUser, key: &str) -> Result<Value, String> {
    let (status, body) = bounded(async {
        Ok(app
            .login_key(&u.username, &hash(key, &u.user, &u.password))
            .await)
    })
    .await?;
    if status == StatusCode::OK && body["result"] == true {
        Ok(body)
    } else {
        Err(format!("login: {status} {body}"))
    }
}

/// A web phone user on `app` and the slot of their login key.
async fn user_and_slot(app: &TestApp, prefix: &str) -> (WebUser, String, u16) {
    let u = app.web_user("ann", "annpass12").await;
    let key = Keys::new(prefix).user("app.acct", &u.user, "login-key");
    let s = slot(key.as_bytes());
    (u, key, s)
}

/// A gateway on `cluster`, a web phone user, the name of their login key, its
/// slot, the primary serving it and another primary to move it to.
struct Setup {
    prefix: String,
    app: TestApp,
    u: WebUser,
    key_name: String,
    moving: u16,
    from: u16,
    to: u16,
}

async fn setup(cluster: &TestCluster) -> Setup {
    let prefix = fresh_prefix();
    let app = spawn_app_on(&cluster.seed_url(), &prefix, roomy).await;
    let (u, key_name, moving) = user_and_slot(&app, &prefix).await;
    let from = cluster.owner_of(moving).await;
    let to = another_primary(cluster, from);
    eprintln!(
        "{}'s key, in slot {moving}, moves from port {from} to port {to}",
        u.username
    );
    Setup {
        prefix,
        app,
        u,
        key_name,
        moving,
        from,
        to,
    }
}

/// A gateway on a cluster whose slot holding a user's key moves to another
/// primary keeps logging the user in, with no restart: a key requested
/// before the move logs in after it (once), keys requested after it are
/// written to the new owner and log in too.
#[tokio::test]
async fn a_gateway_follows_a_user_s_slot_to_another_primary() {
    let Some(cluster) = TestCluster::start().await else {
        return;
    };
    let started = Instant::now();
    let Setup {
        app,
        u,
        key_name,
        moving,
        from,
        to,
        ..
    } = setup(&cluster).await;

    let key = request_key(&app, &u).await.expect("a key before the move");
    login_with(&app, &u, &key)
        .await
        .expect("a login before the move");
    let early = request_key(&app, &u).await.expect("a key before the move");
    assert!(
        get_on_node(&cluster, from, &key_name)
            .await
            .is_ok_and(|v| v.is_some()),
        "the key is on port {from} (is {key_name} the key's name?)"
    );

    let moved = cluster.migrate_slot(moving, from, to).await;
    eprintln!(
        "moved slot {moving} and its {moved} keys in {:?}",
        started.elapsed()
    );
    assert!(
        get_on_node(&cluster, to, &key_name)
            .await
            .is_ok_and(|v| v.is_some()),
        "the key moved to port {to}"
    );

    let body = login_with(&app, &u, &early)
        .await
        .expect("a key requested before the move logs in after it");
    let access = body["tokens"]["accessToken"].as_str().expect("a token");
    assert_eq!(
        app.verify(access).await,
        (StatusCode::OK, Some("ann@app.acct".to_owned()))
    );
    let again = login_with(&app, &u, &early).await;
    assert!(
        again.as_ref().is_err_and(|e| e.starts_with("login: 401")),
        "the key is single use across the move: {again:?}"
    );
    let key = request_key(&app, &u).await.expect("a key after the move");
    assert!(
        get_on_node(&cluster, to, &key_name)
            .await
            .is_ok_and(|v| v.is_some()),
        "a key requested after the move is written to port {to}"
    );
    login_with(&app, &u, &key)
        .await
        .expect("a key requested after the move logs in");
    assert_eq!(app.ready().await, StatusCode::OK);
    eprintln!("took {:?}", started.elapsed());
}

/// A gateway keeps logging a user in while the slot of their key is half-way
/// to another primary: a key requested before the migration started (still
/// on the old owner) logs in during it; a key requested during it logs in
/// during it; and after it, the gateway carries on.
#[tokio::test]
async fn a_gateway_logs_in_while_the_user_s_slot_is_migrating() {
    let Some(cluster) = TestCluster::start().await else {
        return;
    };
    let started = Instant::now();
    let Setup {
        prefix,
        app,
        u,
        key_name,
        moving,
        from,
        to,
    } = setup(&cluster).await;
    let early = request_key(&app, &u).await.expect("a key before");

    cluster.start_slot_migration(moving, from, to).await;
    // Part of the slot: the user's request counter moves, the key stays.
    let counter = Keys::new(&prefix).user("app.acct", &u.user, "key-requests");
    assert_eq!(slot(counter.as_bytes()), moving);
    cluster
        .migrate_keys(from, to, std::slice::from_ref(&counter))
        .await;
    assert_eq!(
        keys_on(&cluster, to, moving).await,
        std::slice::from_ref(&counter),
        "half-way: the counter on {to}"
    );
    assert!(
        get_on_node(&cluster, from, &key_name)
            .await
            .is_ok_and(|v| v.is_some()),
        "half-way: the key still on {from}"
    );

    let mut failed = Vec::new();
    match login_with(&app, &u, &early).await {
        Ok(_) => eprintln!("ok     during the migration: a key requested before it logs in"),
        Err(e) => {
            let home = match get_on_node(&cluster, from, &key_name).await {
                Ok(Some(_)) => "still on the old owner".to_owned(),
                Err(ask) if ask.starts_with("Ask") => "gone from the old owner".to_owned(),
                other => format!("{other:?} on the old owner"),
            };
            let mut get_cmd = redis::cmd("GET");
            get_cmd.arg(&key_name);
            let there = match asking(&cluster, to, &mut get_cmd).await {
                redis::Value::Nil => "absent on the new one".to_owned(),
                other => format!("{other:?} on the new one"),
            };
            failed.push(format!(
                "during the migration: a key requested before it (still on the old owner) \
                 does not log in: {e}; the key is now {home}, {there}"
            ));
        }
    }
    // A key request is one script on two keys of the user's slot (the request
    // counter and the key): Redis refuses it with TRYAGAIN while one of them
    // is missing on the node asked, that is until the migration is over. The
    // gateway's 503 is accepted when the same op on a store of the test's own
    // is refused so (which has no effect).
    match request_key(&app, &u).await {
        Ok(key) => {
            eprintln!("ok     during the migration: a key request");
            if let Err(e) = login_with(&app, &u, &key).await {
                failed.push(format!(
                    "during the migration: a key requested during it does not log in: {e}"
                ));
            }
        }
        Err(e) if e.starts_with("key request: 503") => {
            let store = store_on(&cluster).await;
            let same = store
                .exec(vec![Op::SetUnderLimit {
                    counter: counter.clone(),
                    window: LONG,
                    limit: 10_000,
                    key: key_name.clone(),
                    value: b"unused".to_vec(),
                    ttl: LONG,
                }])
                .await;
            match same {
                Err(refused) if refused.to_string().contains("TryAgain") => {
                    eprintln!("refused during the migration: a key request: {e} (Redis: {refused})")
                }
                other => failed.push(format!(
                    "during the migration: a key request: {e}, and the same op on the store \
                     answers {other:?}, not TRYAGAIN"
                )),
            }
        }
        Err(e) => failed.push(format!("during the migration: a key request: {e}")),
    }

    cluster.migrate_remaining_keys(moving, from, to).await;
    cluster.finish_slot_migration(moving, from, to).await;
    let after = async {
        let key = request_key(&app, &u).await?;
        login_with(&app, &u, &key).await
    };
    if let Err(e) = after.await {
        failed.push(format!("after the migration: a key login: {e}"));
    }
    eprintln!("took {:?}", started.elapsed());
    assert!(
        failed.is_empty(),
        "{} failure(s):\n{}",
        failed.len(),
        failed.join("\n")
    );
}
