//! One behavioural suite for every `SessionStore`, run against each implementation so they cannot drift.
//!
//! Each behaviour is a plain async fn over `Arc<dyn SessionStore>`; `suite!` turns the list into one
//! `#[tokio::test]` per behaviour per backend (`store::embedded_memory::*`, `store::embedded_file::*`, ...).
//! Expiry is checked by polling until a deadline, never by sleeping for a fixed time.

use crate::support::redis::{RedisCluster, RedisServer};
use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tollgate::session::embedded::EmbeddedStore;
use tollgate::session::redis::RedisStore;
use tollgate::session::store::{
    ApprovalDecision, ApprovalRecord, CallSummary, DecideOutcome, RateQuota, RateVerdict, SessionRecord, SessionState,
    SessionStore, StoreError, StoredClient, Usage, new_id, now_ms,
};

type Store = Arc<dyn SessionStore>;

/// A store under test plus whatever must outlive it (a temp dir, a Redis server). Fields drop in
/// order: the store closes before its directory or server goes.
pub struct Opened {
    pub store: Store,
    _keep: Box<dyn Any + Send>,
}

/// Generous bound for anything expected to happen "soon" (expiry, refill, recovery).
const DEADLINE: Duration = Duration::from_secs(10);

/// Polls `check` every 20 ms until it is true; fails the test after [`DEADLINE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < DEADLINE, "{what}: not within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn record(id: &str) -> SessionRecord {
    let now = now_ms();
    SessionRecord {
        id: id.to_string(),
        principal: "alice@example.com".into(),
        client: Some(StoredClient {
            version: "2025-11-25".into(),
            stateless: false,
            client_info: serde_json::json!({"name": "it", "version": "1.0"}),
            capabilities: serde_json::json!({"roots": {}, "list": []}),
        }),
        upstream_sessions: BTreeMap::from([("fs".to_string(), "up-1".to_string())]),
        state: SessionState::Active,
        usage: Usage { calls: 2, denied: 1, bytes_in: 30, bytes_out: 40, tokens_in: 5, tokens_out: 6, cost_micros: 7 },
        created_ms: now,
        last_seen_ms: now,
        taint: None,
    }
}

fn call(n: u64) -> CallSummary {
    CallSummary {
        at_ms: now_ms(),
        upstream: "fs".into(),
        tool: format!("call-{n}"),
        outcome: "allowed".into(),
        rule: n.is_multiple_of(2).then(|| "rule-even".to_string()),
        latency_ms: n,
        bytes_in: n,
        bytes_out: n * 10,
        tokens_in: n.div_ceil(4),
        tokens_out: n * 3,
        cost_micros: 2000 + n,
    }
}

fn approval(id: &str, created_ms: u64, expires_ms: u64) -> ApprovalRecord {
    ApprovalRecord {
        id: id.to_string(),
        session: new_id(),
        principal: "alice@example.com".into(),
        upstream: "fs".into(),
        tool: "write_file".into(),
        arguments: serde_json::json!({"path": "/tmp/x", "content": "[REDACTED]", "empty": []}),
        rule: "writes-need-approval".into(),
        created_ms,
        expires_ms,
        decision: None,
    }
}

fn decision(by: &str) -> ApprovalDecision {
    ApprovalDecision { approved: true, by: by.to_string(), at_ms: now_ms(), reason: Some("looks fine".into()) }
}

const HOUR: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------------------- behaviours

pub async fn sessions_round_trip(s: Store) {
    s.ping().await.expect("ping");
    let id = new_id();
    assert_eq!(s.get_session(&id).await.unwrap(), None);
    let mut r = record(&id);
    s.put_session(&r, HOUR).await.unwrap();
    assert_eq!(s.get_session(&id).await.unwrap(), Some(r.clone()));

    // Replacing keeps the stored usage, takes everything else from the new record.
    let stored_usage = r.usage;
    r.principal = "bob".into();
    r.upstream_sessions.insert("git".into(), "up-2".into());
    r.usage = Usage { calls: 999, ..Usage::default() };
    s.put_session(&r, HOUR).await.unwrap();
    let got = s.get_session(&id).await.unwrap().expect("still there");
    assert_eq!(got.principal, "bob");
    assert_eq!(got.upstream_sessions.len(), 2);
    assert_eq!(got.usage, stored_usage);

    // A session without client info survives too, and ids with odd characters stay apart.
    let odd = format!("{id}:{{x}}*?[]%");
    let mut bare = record(&odd);
    bare.client = None;
    s.put_session(&bare, HOUR).await.unwrap();
    assert_eq!(s.get_session(&odd).await.unwrap(), Some(bare));
    assert_eq!(s.get_session(&id).await.unwrap().unwrap().principal, "bob");
}

pub async fn session_state_set_and_get(s: Store) {
    let id = new_id();
    assert_eq!(s.session_state(&id).await.unwrap(), None);
    assert!(!s.set_session_state(&id, SessionState::Paused).await.unwrap(), "no such session");
    assert_eq!(s.session_state(&id).await.unwrap(), None, "setting a state creates nothing");

    s.put_session(&record(&id), HOUR).await.unwrap();
    assert_eq!(s.session_state(&id).await.unwrap(), Some(SessionState::Active));
    assert!(s.set_session_state(&id, SessionState::Paused).await.unwrap());
    assert_eq!(s.session_state(&id).await.unwrap(), Some(SessionState::Paused));
    assert_eq!(s.get_session(&id).await.unwrap().unwrap().state, SessionState::Paused);
    assert!(s.set_session_state(&id, SessionState::Stopped).await.unwrap());
    assert_eq!(s.session_state(&id).await.unwrap(), Some(SessionState::Stopped));

    // A record put with a state starts in it.
    let other = new_id();
    let mut r = record(&other);
    r.state = SessionState::Paused;
    s.put_session(&r, HOUR).await.unwrap();
    assert_eq!(s.session_state(&other).await.unwrap(), Some(SessionState::Paused));
}

pub async fn touch_extends_ttl_and_expiry_removes(s: Store) {
    let short = Duration::from_millis(300);
    let (kept, control) = (new_id(), new_id());
    for id in [&kept, &control] {
        s.put_session(&record(id), short).await.unwrap();
        s.push_history(id, &[call(1)], 10, short).await.unwrap();
        s.add_usage(id, &Usage { calls: 1, ..Usage::default() }).await.unwrap();
    }
    let before = s.get_session(&kept).await.unwrap().expect("just put");
    s.touch_session(&kept, Duration::from_secs(30)).await.unwrap();

    // Once the untouched control session has expired, the original TTL has passed for both.
    eventually("the untouched session expires", || async { s.get_session(&control).await.unwrap().is_none() }).await;
    assert_eq!(s.session_state(&control).await.unwrap(), None);
    // The history has its own TTL (set by the push, a moment after the put): it goes a moment later.
    eventually("the untouched history expires", || async { s.history(&control, 10).await.unwrap().is_empty() }).await;

    let after = s.get_session(&kept).await.unwrap().expect("touched session outlives its first TTL");
    assert!(after.last_seen_ms >= before.last_seen_ms);
    assert_eq!(after.usage.calls, before.usage.calls, "usage survives a touch");
    assert_eq!(s.session_state(&kept).await.unwrap(), Some(SessionState::Active));
    assert_eq!(s.history(&kept, 10).await.unwrap().len(), 1, "a touch extends the history too");

    // Touching with a short TTL, then leaving it alone: everything of it goes.
    s.touch_session(&kept, short).await.unwrap();
    eventually("the touched session expires", || async { s.session_state(&kept).await.unwrap().is_none() }).await;
    assert_eq!(s.get_session(&kept).await.unwrap(), None);
    eventually("its history expires", || async { s.history(&kept, 10).await.unwrap().is_empty() }).await;

    // Touching (or adding to) a session that does not exist creates nothing.
    let ghost = new_id();
    s.touch_session(&ghost, HOUR).await.unwrap();
    s.add_usage(&ghost, &Usage { calls: 1, ..Usage::default() }).await.unwrap();
    assert_eq!(s.get_session(&ghost).await.unwrap(), None);
    assert_eq!(s.session_state(&ghost).await.unwrap(), None);
}

pub async fn usage_adds_exactly_under_concurrency(s: Store) {
    let id = new_id();
    let mut r = record(&id);
    r.usage = Usage::default();
    s.put_session(&r, HOUR).await.unwrap();
    let tasks: Vec<_> = (1..=20u64)
        .map(|n| {
            let (s, id) = (s.clone(), id.clone());
            tokio::spawn(async move {
                for _ in 0..5 {
                    let delta = Usage {
                        calls: 1,
                        denied: n % 2,
                        bytes_in: n,
                        bytes_out: 2 * n,
                        tokens_in: 3,
                        tokens_out: n,
                        cost_micros: 1_000_000 + n,
                    };
                    s.add_usage(&id, &delta).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let sum: u64 = (1..=20).sum();
    let usage = s.get_session(&id).await.unwrap().unwrap().usage;
    assert_eq!(
        usage,
        Usage {
            calls: 100,
            denied: 50,
            bytes_in: 5 * sum,
            bytes_out: 10 * sum,
            tokens_in: 300,
            tokens_out: 5 * sum,
            cost_micros: 100_000_000 + 5 * sum,
        }
    );
}

/// Cost is an integer of micro-units so that sums stay exact, also past 2^53 where a float (or
/// a Lua number) would start rounding; a record written before cost existed reads as 0.
pub async fn cost_sums_exactly(s: Store) {
    let id = new_id();
    let mut r = record(&id);
    r.usage = Usage { cost_micros: (1 << 53) + 1, ..Usage::default() };
    s.put_session(&r, HOUR).await.unwrap();
    s.add_usage(&id, &Usage { cost_micros: (1 << 53) + 1, ..Usage::default() }).await.unwrap();
    s.add_usage(&id, &Usage { calls: 1, cost_micros: 1, ..Usage::default() }).await.unwrap();
    let usage = s.get_session(&id).await.unwrap().unwrap().usage;
    assert_eq!(usage.cost_micros, (1 << 54) + 3);
    assert_eq!(usage.calls, 1);
    // Adding no cost leaves it as it is; replacing the record keeps the stored cost.
    s.add_usage(&id, &Usage { calls: 1, ..Usage::default() }).await.unwrap();
    s.put_session(&record(&id), HOUR).await.unwrap();
    assert_eq!(s.get_session(&id).await.unwrap().unwrap().usage.cost_micros, (1 << 54) + 3);
    assert_eq!(s.list_sessions().await.unwrap().iter().find(|x| x.id == id).unwrap().usage.cost_micros, (1 << 54) + 3);

    // Each recent call carries its own figures.
    s.push_history(&id, &[call(5)], 10, HOUR).await.unwrap();
    let h = s.history(&id, 1).await.unwrap();
    assert_eq!(
        (h[0].bytes_in, h[0].bytes_out, h[0].tokens_in, h[0].tokens_out, h[0].cost_micros),
        (5, 50, 2, 15, 2005)
    );
}

pub async fn history_capped_newest_first(s: Store) {
    let id = new_id();
    s.put_session(&record(&id), HOUR).await.unwrap();
    assert!(s.history(&id, 10).await.unwrap().is_empty());
    for n in 0..7 {
        s.push_history(&id, &[call(n)], 5, HOUR).await.unwrap();
    }
    let all = s.history(&id, 10).await.unwrap();
    let tools: Vec<_> = all.iter().map(|c| c.tool.as_str()).collect();
    assert_eq!(tools, ["call-6", "call-5", "call-4", "call-3", "call-2"]);
    assert_eq!(all[0], call(6).with_at(all[0].at_ms));
    let two: Vec<_> = s.history(&id, 2).await.unwrap().into_iter().map(|c| c.tool).collect();
    assert_eq!(two, ["call-6", "call-5"]);
    assert!(s.history(&id, 0).await.unwrap().is_empty());
    assert_eq!(s.history(&id, usize::MAX).await.unwrap(), all, "a huge limit is no limit");
    assert!(s.history(&new_id(), 10).await.unwrap().is_empty());

    // A flush pushes its calls (oldest first) in one write; more than the cap keeps the newest.
    s.push_history(&id, &[call(7), call(8), call(9)], 5, HOUR).await.unwrap();
    let tools: Vec<_> = s.history(&id, 10).await.unwrap().into_iter().map(|c| c.tool).collect();
    assert_eq!(tools, ["call-9", "call-8", "call-7", "call-6", "call-5"]);
    let burst: Vec<_> = (10..17).map(call).collect();
    s.push_history(&id, &burst, 5, HOUR).await.unwrap();
    let tools: Vec<_> = s.history(&id, 10).await.unwrap().into_iter().map(|c| c.tool).collect();
    assert_eq!(tools, ["call-16", "call-15", "call-14", "call-13", "call-12"]);
    s.push_history(&id, &[], 5, HOUR).await.unwrap();
    assert_eq!(s.history(&id, 10).await.unwrap().len(), 5, "an empty push changes nothing");

    // Deleting the session takes its history along.
    s.delete_session(&id).await.unwrap();
    assert!(s.history(&id, 10).await.unwrap().is_empty());
}

trait WithAt {
    fn with_at(self, at_ms: u64) -> Self;
}
impl WithAt for CallSummary {
    fn with_at(mut self, at_ms: u64) -> Self {
        self.at_ms = at_ms;
        self
    }
}

pub async fn delete_session_removes_everything(s: Store) {
    let id = new_id();
    s.put_session(&record(&id), HOUR).await.unwrap();
    s.push_history(&id, &[call(1)], 5, HOUR).await.unwrap();
    s.add_usage(&id, &Usage { calls: 7, ..Usage::default() }).await.unwrap();
    s.delete_session(&id).await.unwrap();
    assert_eq!(s.get_session(&id).await.unwrap(), None);
    assert_eq!(s.session_state(&id).await.unwrap(), None);
    assert!(s.history(&id, 5).await.unwrap().is_empty());
    s.delete_session(&id).await.unwrap();

    // A new session under the same id starts from its own record's usage, not the old one's.
    let fresh = record(&id);
    s.put_session(&fresh, HOUR).await.unwrap();
    assert_eq!(s.get_session(&id).await.unwrap().unwrap().usage, fresh.usage);
}

pub async fn list_sessions_lists_live_ones(s: Store) {
    let (a, b, brief) = (new_id(), new_id(), new_id());
    s.put_session(&record(&a), HOUR).await.unwrap();
    s.put_session(&record(&b), HOUR).await.unwrap();
    s.put_session(&record(&brief), Duration::from_millis(200)).await.unwrap();
    s.set_session_state(&b, SessionState::Paused).await.unwrap();
    s.add_usage(&a, &Usage { calls: 1, ..Usage::default() }).await.unwrap();
    let listed = s.list_sessions().await.unwrap();
    let ids: Vec<_> = listed.iter().map(|r| r.id.as_str()).collect();
    for id in [&a, &b] {
        assert!(ids.contains(&id.as_str()), "{id} listed");
    }
    let b_listed = listed.iter().find(|r| r.id == b).unwrap();
    assert_eq!(b_listed.state, SessionState::Paused);
    assert_eq!(listed.iter().find(|r| r.id == a).unwrap().usage.calls, 3);
    eventually("the brief session leaves the list", || async {
        !s.list_sessions().await.unwrap().iter().any(|r| r.id == brief)
    })
    .await;
}

pub async fn approvals_pending_and_decided_exactly_once(s: Store) {
    let now = now_ms();
    let (first, second, decided) = (new_id(), new_id(), new_id());
    let first_record = approval(&first, now, now + 60_000);
    s.put_approval(&approval(&second, now + 1, now + 60_000)).await.unwrap();
    s.put_approval(&first_record).await.unwrap();
    let mut done = approval(&decided, now, now + 60_000);
    done.decision = Some(decision("admin:ab12"));
    s.put_approval(&done).await.unwrap();
    assert_eq!(s.get_approval(&decided).await.unwrap(), Some(done));
    assert_eq!(s.get_approval(&first).await.unwrap(), Some(first_record));

    let pending: Vec<_> = s.pending_approvals().await.unwrap().into_iter().map(|a| a.id).collect();
    assert_eq!(pending, [first.clone(), second.clone()], "undecided ones, oldest first");

    // Ten deciders at once: exactly one wins, the rest see its decision.
    let deciders: Vec<_> = (0..10)
        .map(|n| {
            let (s, id) = (s.clone(), first.clone());
            tokio::spawn(async move { s.decide_approval(&id, &decision(&format!("admin:{n}"))).await.unwrap() })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for d in deciders {
        match d.await.expect("task") {
            DecideOutcome::Decided(a) => winners.push(a),
            DecideOutcome::AlreadyDecided(a) => losers.push(a),
            DecideOutcome::NotFound => panic!("the approval exists"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one decider wins");
    assert_eq!(losers.len(), 9);
    let winner = winners.pop().unwrap();
    let by = winner.decision.clone().expect("decided").by;
    assert!(losers.iter().all(|a| a.decision.as_ref().map(|d| &d.by) == Some(&by)), "losers see the winner");
    assert_eq!(s.get_approval(&first).await.unwrap(), Some(winner.clone()));
    assert_eq!(winner.arguments, serde_json::json!({"path": "/tmp/x", "content": "[REDACTED]", "empty": []}));

    let pending: Vec<_> = s.pending_approvals().await.unwrap().into_iter().map(|a| a.id).collect();
    assert_eq!(pending, [second]);
    assert_eq!(s.decide_approval(&new_id(), &decision("admin")).await.unwrap(), DecideOutcome::NotFound);
    assert_eq!(s.get_approval(&new_id()).await.unwrap(), None);
}

pub async fn expired_approval_cannot_be_decided(s: Store) {
    let now = now_ms();
    // Expired a moment ago: still readable, shown as it stands (undecided), not pending.
    let late = approval(&new_id(), now - 10_000, now - 1);
    s.put_approval(&late).await.unwrap();
    assert!(!s.pending_approvals().await.unwrap().iter().any(|a| a.id == late.id));
    assert_eq!(
        s.decide_approval(&late.id, &decision("admin")).await.unwrap(),
        DecideOutcome::AlreadyDecided(late.clone())
    );
    assert_eq!(s.get_approval(&late.id).await.unwrap(), Some(late));

    // Expiring while waiting: pending at first, then refused.
    let brief = approval(&new_id(), now, now_ms() + 300);
    s.put_approval(&brief).await.unwrap();
    eventually("the approval expires", || async {
        !s.pending_approvals().await.unwrap().iter().any(|a| a.id == brief.id)
    })
    .await;
    assert!(matches!(
        s.decide_approval(&brief.id, &decision("admin")).await.unwrap(),
        DecideOutcome::AlreadyDecided(a) if a.decision.is_none()
    ));

    // Long gone (past the retention): not found at all.
    let ancient = approval(&new_id(), 1_000, 2_000);
    s.put_approval(&ancient).await.unwrap();
    assert_eq!(s.decide_approval(&ancient.id, &decision("admin")).await.unwrap(), DecideOutcome::NotFound);
    assert_eq!(s.get_approval(&ancient.id).await.unwrap(), None);
}

pub async fn nonce_replay_refused(s: Store) {
    let nonce = new_id();
    assert!(s.use_nonce(&nonce, HOUR).await.unwrap(), "first use");
    assert!(!s.use_nonce(&nonce, HOUR).await.unwrap(), "replay");
    assert!(!s.use_nonce(&nonce, HOUR).await.unwrap(), "replay again");
    assert!(s.use_nonce(&new_id(), HOUR).await.unwrap(), "another nonce");

    // Ten at once: one wins.
    let n = new_id();
    let tries: Vec<_> = (0..10)
        .map(|_| {
            let (s, n) = (s.clone(), n.clone());
            tokio::spawn(async move { s.use_nonce(&n, HOUR).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for t in tries {
        wins += t.await.expect("task") as usize;
    }
    assert_eq!(wins, 1);

    // After its TTL the nonce is forgotten.
    let brief = new_id();
    assert!(s.use_nonce(&brief, Duration::from_millis(200)).await.unwrap());
    eventually("the nonce expires", || async { s.use_nonce(&brief, Duration::from_millis(200)).await.unwrap() }).await;
}

pub async fn pins_first_wins_set_replaces_sorted(s: Store) {
    let up = format!("up-{}", new_id());
    assert_eq!(s.get_pin(&up, "read").await.unwrap(), None);
    assert_eq!(s.pin_if_absent(&up, "read", "sha256:1").await.unwrap(), "sha256:1");
    assert_eq!(s.pin_if_absent(&up, "read", "sha256:2").await.unwrap(), "sha256:1", "the first pin stays");
    assert_eq!(s.get_pin(&up, "read").await.unwrap().as_deref(), Some("sha256:1"));
    s.set_pin(&up, "read", "sha256:3").await.unwrap();
    assert_eq!(s.get_pin(&up, "read").await.unwrap().as_deref(), Some("sha256:3"));

    // Names with separators and quotes stay apart.
    s.set_pin(&up, "b:\"x\"", "d-b").await.unwrap();
    s.set_pin(&up, "a", "d-a").await.unwrap();
    s.set_pin(&format!("{up}:b"), "a", "d-up-b").await.unwrap();
    assert_eq!(s.get_pin(&up, "b:\"x\"").await.unwrap().as_deref(), Some("d-b"));
    let mine: Vec<_> = s.list_pins().await.unwrap().into_iter().filter(|(u, _, _)| u.starts_with(&up)).collect();
    let expected = [
        (up.clone(), "a".to_string(), "d-a".to_string()),
        (up.clone(), "b:\"x\"".to_string(), "d-b".to_string()),
        (up.clone(), "read".to_string(), "sha256:3".to_string()),
        (format!("{up}:b"), "a".to_string(), "d-up-b".to_string()),
    ];
    assert_eq!(mine, expected);
    let all = s.list_pins().await.unwrap();
    assert!(all.windows(2).all(|w| w[0] <= w[1]), "sorted");
}

pub async fn rate_check_burst_then_limited(s: Store) {
    let slow = RateQuota { per_period: 1, period: Duration::from_secs(10), burst: 3 };
    let key = format!("alice:fs:{}", new_id());
    for n in 0..3 {
        assert_eq!(s.rate_check(&key, &slow).await.unwrap(), RateVerdict::Allowed, "call {n} of the burst");
    }
    match s.rate_check(&key, &slow).await.unwrap() {
        RateVerdict::Limited { retry_after } => {
            assert!(retry_after > Duration::from_secs(8) && retry_after <= Duration::from_secs(10), "{retry_after:?}")
        }
        RateVerdict::Allowed => panic!("the fourth call is over the burst"),
    }
    assert!(matches!(s.rate_check(&key, &slow).await.unwrap(), RateVerdict::Limited { .. }), "still limited");
    assert_eq!(s.rate_check(&format!("{key}-other"), &slow).await.unwrap(), RateVerdict::Allowed, "keys are apart");

    // A fast quota refills: limited now, allowed again after about one interval.
    let fast = RateQuota { per_period: 10, period: Duration::from_secs(1), burst: 2 };
    let key = format!("bob:{}", new_id());
    assert_eq!(s.rate_check(&key, &fast).await.unwrap(), RateVerdict::Allowed);
    assert_eq!(s.rate_check(&key, &fast).await.unwrap(), RateVerdict::Allowed);
    match s.rate_check(&key, &fast).await.unwrap() {
        RateVerdict::Limited { retry_after } => assert!(retry_after <= Duration::from_millis(100), "{retry_after:?}"),
        RateVerdict::Allowed => panic!("over the burst"),
    }
    eventually("the quota refills", || async { s.rate_check(&key, &fast).await.unwrap() == RateVerdict::Allowed })
        .await;

    // A zero-length period is no limit rather than an error.
    let unlimited = RateQuota { per_period: 1, period: Duration::ZERO, burst: 1 };
    for _ in 0..5 {
        assert_eq!(s.rate_check(&key, &unlimited).await.unwrap(), RateVerdict::Allowed);
    }
}

pub async fn memory_per_principal(s: Store) {
    let (a, b) = (format!("alice-{}", new_id()), format!("bob-{}", new_id()));
    assert_eq!(s.memory_get(&a, "x").await.unwrap(), None);
    for (k, v) in [("y", "2"), ("x", "1"), ("z/1", "3"), ("z/2", "4"), ("zz", "5"), ("ünï:{k}", "6")] {
        s.memory_put(&a, k, v).await.unwrap();
    }
    s.memory_put(&b, "x", "bob's").await.unwrap();
    assert_eq!(s.memory_get(&a, "x").await.unwrap().as_deref(), Some("1"));
    assert_eq!(s.memory_get(&b, "x").await.unwrap().as_deref(), Some("bob's"));
    assert_eq!(s.memory_get(&a, "ünï:{k}").await.unwrap().as_deref(), Some("6"));

    assert_eq!(s.memory_list(&a, "", 100).await.unwrap(), ["x", "y", "z/1", "z/2", "zz", "ünï:{k}"]);
    assert_eq!(s.memory_list(&a, "z/", 100).await.unwrap(), ["z/1", "z/2"]);
    assert_eq!(s.memory_list(&a, "z", 2).await.unwrap(), ["z/1", "z/2"]);
    assert_eq!(s.memory_list(&a, "", 0).await.unwrap(), Vec::<String>::new());
    assert_eq!(s.memory_list(&a, "q", 10).await.unwrap(), Vec::<String>::new());
    assert_eq!(s.memory_list(&b, "", 10).await.unwrap(), ["x"]);

    s.memory_put(&a, "x", "one").await.unwrap();
    assert_eq!(s.memory_get(&a, "x").await.unwrap().as_deref(), Some("one"), "put replaces");
    assert!(s.memory_delete(&a, "x").await.unwrap());
    assert!(!s.memory_delete(&a, "x").await.unwrap(), "already gone");
    assert_eq!(s.memory_get(&a, "x").await.unwrap(), None);
    assert_eq!(s.memory_list(&a, "x", 10).await.unwrap(), Vec::<String>::new());
    assert_eq!(s.memory_get(&b, "x").await.unwrap().as_deref(), Some("bob's"), "other principals untouched");
}

// ---------------------------------------------------------------------------------------- backends

macro_rules! suite {
    ($open:path) => {
        suite!(@each $open;
            sessions_round_trip,
            session_state_set_and_get,
            touch_extends_ttl_and_expiry_removes,
            usage_adds_exactly_under_concurrency,
            cost_sums_exactly,
            history_capped_newest_first,
            delete_session_removes_everything,
            list_sessions_lists_live_ones,
            approvals_pending_and_decided_exactly_once,
            expired_approval_cannot_be_decided,
            nonce_replay_refused,
            pins_first_wins_set_replaces_sorted,
            rate_check_burst_then_limited,
            memory_per_principal,
        );
    };
    (@each $open:path; $($name:ident),+ $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let opened = $open().await;
            super::$name(opened.store.clone()).await;
        }
    )+};
}

async fn embedded_memory() -> Opened {
    Opened { store: EmbeddedStore::in_memory().expect("in-memory store"), _keep: Box::new(()) }
}

async fn embedded_file() -> Opened {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("state").join("sessions.redb")).expect("open");
    Opened { store, _keep: Box::new(dir) }
}

async fn redis() -> Opened {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.expect("connect to the test redis-server");
    Opened { store, _keep: Box::new(server) }
}

async fn redis_cluster() -> Opened {
    let cluster = RedisCluster::start();
    let store = RedisStore::connect(&cluster.url()).await.expect("connect to the test cluster");
    Opened { store, _keep: Box::new(cluster) }
}

mod embedded_memory {
    suite!(super::embedded_memory);
}

mod embedded_file {
    suite!(super::embedded_file);
}

mod redis {
    suite!(super::redis);
}

mod redis_cluster {
    suite!(super::redis_cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_file_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sessions.redb");
    let id = new_id();
    let now = now_ms();
    let pending = approval(&new_id(), now, now + 60_000);
    {
        let s = EmbeddedStore::open(&path).expect("open");
        s.put_session(&record(&id), HOUR).await.unwrap();
        s.set_session_state(&id, SessionState::Paused).await.unwrap();
        // Relaxed (not fsynced) writes: made durable when the store is dropped.
        s.add_usage(&id, &Usage { calls: 40, ..Usage::default() }).await.unwrap();
        s.push_history(&id, &[call(3)], 10, HOUR).await.unwrap();
        s.put_approval(&pending).await.unwrap();
        s.set_pin("fs", "read", "sha256:1").await.unwrap();
        s.memory_put("alice", "k", "v").await.unwrap();
        assert!(s.use_nonce("n-1", HOUR).await.unwrap());
    }
    let s = EmbeddedStore::open(&path).expect("reopen after drop");
    let got = s.get_session(&id).await.unwrap().expect("session survives");
    assert_eq!(got.state, SessionState::Paused);
    assert_eq!(got.usage.calls, 42);
    assert_eq!(s.history(&id, 10).await.unwrap().len(), 1);
    assert_eq!(s.pending_approvals().await.unwrap(), [pending]);
    assert_eq!(s.get_pin("fs", "read").await.unwrap().as_deref(), Some("sha256:1"));
    assert_eq!(s.memory_get("alice", "k").await.unwrap().as_deref(), Some("v"));
    assert!(!s.use_nonce("n-1", HOUR).await.unwrap(), "a nonce stays used across a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_sweep_removes_expired_entries() {
    let s = EmbeddedStore::in_memory().expect("store");
    let brief = Duration::from_millis(100);
    let id = new_id();
    s.put_session(&record(&id), brief).await.unwrap();
    s.push_history(&id, &[call(1)], 5, brief).await.unwrap();
    s.use_nonce("n", brief).await.unwrap();
    s.put_approval(&approval(&new_id(), 1_000, 2_000)).await.unwrap();
    s.put_session(&record(&new_id()), HOUR).await.unwrap();
    // Session, state, history, nonce and approval: five entries to sweep once they have expired.
    let removed = Arc::new(AtomicUsize::new(0));
    eventually("the sweep removes all five", || {
        let (s, removed) = (s.clone(), removed.clone());
        async move {
            let n = s.sweep().await.unwrap();
            removed.fetch_add(n, Ordering::SeqCst) + n >= 5
        }
    })
    .await;
    assert_eq!(removed.load(Ordering::SeqCst), 5);
    assert_eq!(s.list_sessions().await.unwrap().len(), 1, "the live session stays");
}

/// Runs `op` against a Redis that is down (or hung) and checks it fails closed, promptly.
async fn fails_promptly<T: std::fmt::Debug>(what: &str, op: impl Future<Output = Result<T, StoreError>>) {
    let start = Instant::now();
    let result = op.await;
    let took = start.elapsed();
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{what}: {result:?}");
    assert!(took < Duration::from_secs(5), "{what} took {took:?}");
}

async fn all_fail_promptly(s: &RedisStore, id: &str) {
    let quota = RateQuota { per_period: 1, period: Duration::from_secs(1), burst: 1 };
    fails_promptly("ping", s.ping()).await;
    fails_promptly("session_state", s.session_state(id)).await;
    fails_promptly("put_session", s.put_session(&record(id), HOUR)).await;
    fails_promptly("add_usage", s.add_usage(id, &Usage::default())).await;
    fails_promptly("rate_check", s.rate_check("k", &quota)).await;
    fails_promptly("decide_approval", s.decide_approval("a", &decision("admin"))).await;
    fails_promptly("use_nonce", s.use_nonce("n", HOUR)).await;
    fails_promptly("list_sessions", s.list_sessions()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_is_unavailable_promptly_then_recovers() {
    let mut server = RedisServer::start();
    let s = RedisStore::connect(&server.url()).await.expect("connect");
    let id = new_id();
    s.put_session(&record(&id), HOUR).await.unwrap();

    server.kill();
    all_fail_promptly(&s, &id).await;

    // Same port, empty server: the connection comes back by itself.
    server.restart();
    eventually("the store reconnects", || async { s.ping().await.is_ok() }).await;
    assert_eq!(s.session_state(&id).await.unwrap(), None, "nothing was persisted");
    s.put_session(&record(&id), HOUR).await.unwrap();
    assert_eq!(s.session_state(&id).await.unwrap(), Some(SessionState::Active));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_hung_is_unavailable_promptly_then_recovers() {
    let server = RedisServer::start();
    let s = RedisStore::connect(&server.url()).await.expect("connect");
    let id = new_id();
    s.put_session(&record(&id), HOUR).await.unwrap();

    // Connections stay open but nothing answers: only timeouts can help.
    server.freeze();
    fails_promptly("session_state", s.session_state(&id)).await;
    fails_promptly("touch_session", s.touch_session(&id, HOUR)).await;
    server.thaw();
    eventually("the store answers again", || async { s.session_state(&id).await.is_ok() }).await;
    assert_eq!(s.session_state(&id).await.unwrap(), Some(SessionState::Active));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_connect_to_nothing_fails_promptly_without_the_password() {
    let port = RedisServer::start().port; // started and dropped: nothing listens there now
    let start = Instant::now();
    let result = RedisStore::connect(&format!("redis://:hunter2@127.0.0.1:{port}")).await;
    let err = result.err().expect("nothing to connect to");
    assert!(start.elapsed() < Duration::from_secs(8), "took {:?}", start.elapsed());
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keys_follow_the_documented_layout() {
    let server = RedisServer::start();
    let s = RedisStore::connect(&server.url()).await.expect("connect");
    let id = "0123abcd";
    s.put_session(&record(id), HOUR).await.unwrap();
    s.push_history(id, &[call(1)], 5, HOUR).await.unwrap();
    s.put_approval(&approval("ap1", now_ms(), now_ms() + 60_000)).await.unwrap();
    s.use_nonce("n1", HOUR).await.unwrap();
    s.set_pin("fs", "read", "d").await.unwrap();
    s.rate_check("alice:fs", &RateQuota { per_period: 1, period: Duration::from_secs(1), burst: 5 }).await.unwrap();
    s.memory_put("alice", "k", "v").await.unwrap();
    let kinds = [
        ("tollgate:{s:0123abcd}:record", "hash"),
        ("tollgate:{s:0123abcd}:state", "string"),
        ("tollgate:{s:0123abcd}:usage", "hash"),
        ("tollgate:{s:0123abcd}:history", "list"),
        ("tollgate:{a}:approval:ap1", "hash"),
        ("tollgate:{a}:pending", "zset"),
        ("tollgate:nonce:n1", "string"),
        ("tollgate:pins", "hash"),
        ("tollgate:rate:1000000:5:alice%3Afs", "string"),
        ("tollgate:{m:alice}:values", "hash"),
        ("tollgate:{m:alice}:keys", "zset"),
    ];
    for (key, kind) in kinds {
        assert_eq!(server.query(&["TYPE", key]).unwrap(), kind, "{key}");
        let ttl: i64 = server.query(&["PTTL", key]).unwrap().parse().unwrap();
        let expires = !matches!(key, "tollgate:pins" | "tollgate:{a}:pending") && !key.starts_with("tollgate:{m:");
        assert_eq!(ttl > 0, expires, "{key} has TTL {ttl}");
    }
    // Nothing else: every key is accounted for in ARCHITECTURE.md.
    let count: usize = server.query(&["DBSIZE"]).unwrap().parse().unwrap();
    assert_eq!(count, kinds.len());
    // The usage hash holds the documented counters, cost among them (HINCRBY-able integers).
    for (field, value) in [
        ("calls", "2"),
        ("denied", "1"),
        ("bytes_in", "30"),
        ("bytes_out", "40"),
        ("tokens_in", "5"),
        ("tokens_out", "6"),
        ("cost_micros", "7"),
    ] {
        assert_eq!(server.query(&["HGET", "tollgate:{s:0123abcd}:usage", field]).unwrap(), value, "{field}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unreadable_values_are_corrupt_not_a_panic() {
    let server = RedisServer::start();
    let s = RedisStore::connect(&server.url()).await.expect("connect");
    server.query(&["SET", "tollgate:{s:bad}:state", "sleepy"]).unwrap();
    server.query(&["HSET", "tollgate:{s:bad}:record", "json", "{oops"]).unwrap();
    server.query(&["SET", "tollgate:{s:typo}:record", "a string, not a hash"]).unwrap();
    server.query(&["HSET", "tollgate:{a}:approval:bad", "record", "[]"]).unwrap();
    assert!(matches!(s.session_state("bad").await, Err(StoreError::Corrupt { .. })));
    assert!(matches!(s.get_session("bad").await, Err(StoreError::Corrupt { .. })));
    let typo = s.get_session("typo").await;
    assert!(matches!(typo, Err(StoreError::Corrupt { .. })), "{typo:?}");
    assert!(matches!(s.get_approval("bad").await, Err(StoreError::Corrupt { .. })));
}

// ---------------------------------------------------------------------------------------- timings

/// Times the hot-path read, `session_state`, per store (with 1000 other sessions present). Run:
/// `cargo test --release --test it store::hot_path_timings -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn hot_path_timings() {
    let stores = [
        ("embedded, memory", embedded_memory().await),
        ("embedded, file", embedded_file().await),
        ("redis, loopback", redis().await),
        ("redis cluster, loopback", redis_cluster().await),
    ];
    for (name, opened) in stores {
        time_session_state(name, &opened.store).await;
    }
}

async fn time_session_state(name: &str, s: &Store) {
    for _ in 0..1000 {
        s.put_session(&record(&new_id()), HOUR).await.unwrap();
    }
    let id = new_id();
    s.put_session(&record(&id), HOUR).await.unwrap();
    for _ in 0..1000 {
        s.session_state(&id).await.unwrap();
    }
    let mut samples: Vec<Duration> = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        let start = Instant::now();
        let state = s.session_state(&id).await.unwrap();
        samples.push(start.elapsed());
        assert_eq!(state, Some(SessionState::Active));
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "session_state, {name}: median {:?}, p99 {:?}, mean {mean:?} ({} calls)",
        at(0.5),
        at(0.99),
        samples.len()
    );
}
