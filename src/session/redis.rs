//! The Redis session store: state shared by every replica, and the only file that speaks to Redis.
//!
//! Key layout: ARCHITECTURE.md, "State store keys". All keys start `tollgate:`; untrusted parts
//! (ids, principals, names) are percent-encoded so they can neither end a hash tag nor act as glob
//! characters. A session's keys share the hash tag `{s:<id>}`, approvals share `{a}` and a
//! principal's memory `{m:<principal>}`, so each multi-key script touches one cluster slot.
//!
//! Atomicity lives in Redis: scripts (EVALSHA) where a check and a write must not interleave
//! (decide an approval, touch or add to a session only if it exists, GCRA on Redis's clock),
//! single commands where one suffices (SET NX PX for nonces, HSETNX for pins, SET XX KEEPTTL for
//! states). Needs Redis 6.0 or newer (KEEPTTL).
//!
//! Failure: every operation has a deadline, so a dead or unreachable Redis yields
//! [`StoreError::Unavailable`] within about two seconds instead of a hang; the connection
//! reconnects by itself once Redis answers again.

use super::store::{
    ApprovalDecision, ApprovalRecord, CallSummary, DecideOutcome, RateQuota, RateVerdict, SessionRecord, SessionState,
    SessionStore, StoreError, StoreResult, Usage, now_ms,
};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Script, Value, cmd, pipe};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// Per connection attempt, and per request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// The most any single-key operation may take, retries included.
const OP_DEADLINE: Duration = Duration::from_millis(2500);
/// The most an operator's listing (a SCAN over the keyspace) may take.
const SCAN_DEADLINE: Duration = Duration::from_secs(30);

/// How long an approval stays readable after it expires, so a late decider is told "already
/// decided / expired" rather than "not found". Same as the embedded store.
pub const APPROVAL_RETENTION: Duration = Duration::from_secs(3600);

pub struct RedisStore {
    conn: Conn,
    /// The URL without credentials: for messages.
    location: String,
}

/// One connection type for both deployments, so each operation is written once.
#[derive(Clone)]
enum Conn {
    /// Multiplexed, reconnects by itself.
    Single(ConnectionManager),
    /// Routes by slot, refreshes its topology by itself.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

// ---------------------------------------------------------------------------------------- keys

/// Percent-encodes everything but a readable safe set, so a part cannot close a hash tag (`}`),
/// add a separator (`:`) or act as a SCAN glob (`*?[]\`).
fn part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@+=/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unpart(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

const SESSION_RECORD_PATTERN: &str = "tollgate:{s:*}:record";

fn session_key(id: &str, what: &str) -> String {
    format!("tollgate:{{s:{}}}:{what}", part(id))
}

/// record, state, usage, history: the order every session script takes its KEYS in.
fn session_keys(id: &str) -> [String; 4] {
    ["record", "state", "usage", "history"].map(|what| session_key(id, what))
}

fn session_id_from_record_key(key: &str) -> Option<String> {
    unpart(key.strip_prefix("tollgate:{s:")?.strip_suffix("}:record")?)
}

const APPROVALS_PENDING: &str = "tollgate:{a}:pending";

fn approval_key(id: &str) -> String {
    format!("tollgate:{{a}}:approval:{}", part(id))
}

fn nonce_key(nonce: &str) -> String {
    format!("tollgate:nonce:{}", part(nonce))
}

const PINS: &str = "tollgate:pins";

/// A pin's field: JSON `[upstream, tool]`, unambiguous whatever the names contain.
fn pin_field(upstream: &str, tool: &str) -> String {
    serde_json::json!([upstream, tool]).to_string()
}

/// The quota is part of the key: a key checked under two quotas keeps two states, as governor does.
fn rate_key(key: &str, interval_us: u64, burst: u32) -> String {
    format!("tollgate:rate:{interval_us}:{burst}:{}", part(key))
}

fn memory_keys(principal: &str) -> (String, String) {
    let tag = part(principal);
    (format!("tollgate:{{m:{tag}}}:values"), format!("tollgate:{{m:{tag}}}:keys"))
}

/// The first characters of an id, for error messages (session ids are bearer credentials).
fn short(id: &str) -> String {
    match id.char_indices().nth(8) {
        Some((i, _)) => format!("{}…", &id[..i]),
        None => id.to_string(),
    }
}

fn session_label(id: &str, what: &str) -> String {
    format!("tollgate:{{s:{}}}:{what}", short(id))
}

// ---------------------------------------------------------------------------------------- scripts

/// KEYS: record, state, usage, history. ARGV: json, last_seen_ms, ttl_ms, state, seven usage counters.
/// Replaces the record; usage is kept if the session existed, else set from the record.
static PUT_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'json', ARGV[1], 'last_seen_ms', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])
if existed == 0 then
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[3], 'calls', ARGV[5], 'denied', ARGV[6], 'bytes_in', ARGV[7],
    'bytes_out', ARGV[8], 'tokens_in', ARGV[9], 'tokens_out', ARGV[10], 'cost_micros', ARGV[11])
end
redis.call('PEXPIRE', KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[4], ARGV[3])
return existed
",
    )
});

/// KEYS: record, state, usage, history. ARGV: now_ms, ttl_ms. A script rather than a pipeline so
/// that touching a session that has gone creates nothing (a bare HSET would).
static TOUCH_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'last_seen_ms', ARGV[1])
for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
return 1
",
    )
});

/// KEYS: record, usage. ARGV: the seven counters' deltas. HINCRBY only on a live session, so a late
/// call after expiry cannot leave a usage hash without a TTL.
static ADD_USAGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return 0 end
local fields = {'calls', 'denied', 'bytes_in', 'bytes_out', 'tokens_in', 'tokens_out', 'cost_micros'}
for i = 1, 7 do
  if ARGV[i] ~= '0' then redis.call('HINCRBY', KEYS[2], fields[i], ARGV[i]) end
end
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
",
    )
});

/// KEYS: approval, pending index. ARGV: id, record json (no decision), decision json or '',
/// expires_ms, keep_until_ms.
static PUT_APPROVAL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'record', ARGV[2], 'expires_ms', ARGV[4])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'decision', ARGV[3])
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
end
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
return 1
",
    )
});

/// KEYS: approval, pending index. ARGV: id, decision json, now_ms.
/// Returns {0,'',''} not found, {1, record, decision-or-''} already decided or expired,
/// {2, record, decision} decided now.
static DECIDE_APPROVAL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('HMGET', KEYS[1], 'record', 'decision', 'expires_ms')
if not v[1] then return {0, '', ''} end
if v[2] or (tonumber(v[3]) or 0) <= tonumber(ARGV[3]) then return {1, v[1], v[2] or ''} end
redis.call('HSET', KEYS[1], 'decision', ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
return {2, v[1], ARGV[2]}
",
    )
});

/// KEYS: the key's theoretical arrival time (µs, Redis clock). ARGV: emission interval µs, burst.
/// Returns 0 when allowed, else the µs until a retry can succeed. The same GCRA as governor's:
/// tolerance = interval × (burst − 1). Redis's clock (TIME), not the callers', so replicas with
/// skewed clocks share one timeline.
static RATE_CHECK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or '') or now
local earliest = tat - tau
if now < earliest then return earliest - now end
local new_tat = math.max(tat, now) + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return 0
",
    )
});

/// KEYS: values hash, key index (a sorted set for prefix listing). ARGV: key, value.
static MEMORY_PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
",
    )
});

/// KEYS: values hash, key index. ARGV: key. Returns 1 if it existed.
static MEMORY_DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return n
",
    )
});

// ---------------------------------------------------------------------------------------- errors

/// Maps a Redis error met at `key`: data of the wrong shape is corrupt, anything else unavailable.
fn at(key: &str) -> impl Fn(RedisError) -> StoreError + '_ {
    move |e| {
        if wrong_shape(&e) {
            StoreError::Corrupt { key: key.to_string(), reason: e.to_string() }
        } else {
            StoreError::Unavailable(format!("redis: {e}"))
        }
    }
}

/// A reply that is not what the key should hold: a value we cannot convert, or WRONGTYPE (also
/// when it comes from one command of a pipeline).
fn wrong_shape(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Parse | ErrorKind::UnexpectedReturnType)
        || e.clone().into_server_errors().is_some_and(|errors| errors.iter().any(|(_, se)| se.code() == "WRONGTYPE"))
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt { key: key.to_string(), reason: e.to_string() })
}

fn encode<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Unavailable(format!("redis store: cannot encode: {e}")))
}

/// The index of the last of `n` (n ≥ 1) list items, for LRANGE and LTRIM; -1 (the end) when
/// `n` does not fit.
fn last_index(n: usize) -> isize {
    isize::try_from(n).map_or(-1, |n| n - 1)
}

fn ms(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

/// Bounds an operation: a dead Redis is an error within `limit`, never a hang.
async fn deadline<T>(limit: Duration, what: &str, op: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
    match tokio::time::timeout(limit, op).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable(format!("redis did not answer {what} within {limit:?}"))),
    }
}

/// The URL with any password replaced, for messages and logs.
fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// The nodes of a cluster URL: `redis+cluster://[auth@]h1:p1,h2:p2`, or a comma-separated list of
/// `redis://` URLs. None for a single-server URL.
fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    if let Some(rest) = url.strip_prefix("redis+cluster://") {
        let (auth, hosts) = match rest.split_once('@') {
            Some((auth, hosts)) if !auth.contains(',') => (format!("{auth}@"), hosts),
            _ => (String::new(), rest),
        };
        return Some(
            hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(|h| format!("redis://{auth}{h}")).collect(),
        );
    }
    url.contains(',').then(|| url.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_string).collect())
}

impl RedisStore {
    /// Connects to one Redis (`redis://…`) or a cluster (`redis+cluster://h1:p1,h2:p2`, or a
    /// comma-separated list of `redis://` URLs), and checks it answers.
    pub async fn connect(url: &str) -> Result<Arc<RedisStore>, StoreError> {
        let location = without_credentials(url);
        let refused = |e: RedisError| StoreError::Unavailable(format!("redis at {location}: {e}"));
        let conn = match cluster_nodes(url) {
            Some(nodes) => {
                let client = redis::cluster::ClusterClientBuilder::new(nodes)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(2)
                    .min_retry_wait(50)
                    .max_retry_wait(500)
                    .build()
                    .map_err(refused)?;
                let connecting = async { client.get_async_connection().await.map_err(refused) };
                Conn::Cluster(deadline(OP_DEADLINE * 2, "a connection", connecting).await?)
            }
            None => {
                let client = redis::Client::open(url).map_err(refused)?;
                // Few, short reconnect attempts: callers fail closed and retry on their own;
                // the manager reconnects in the background whenever an I/O error shows.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(2)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                let connecting = async { client.get_connection_manager_with_config(config).await.map_err(refused) };
                Conn::Single(deadline(OP_DEADLINE * 2, "a connection", connecting).await?)
            }
        };
        let store = Arc::new(RedisStore { conn, location });
        store.ping().await?;
        Ok(store)
    }

    /// Where the data lives: the URL without credentials.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn conn(&self) -> Conn {
        self.conn.clone()
    }

    async fn fetch_session(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        let [record_key, state_key, usage_key, _] = session_keys(id);
        let label = session_label(id, "record");
        let (fields, state, usage): (Vec<Option<String>>, Option<String>, HashMap<String, u64>) = pipe()
            .cmd("HMGET")
            .arg(&record_key)
            .arg("json")
            .arg("last_seen_ms")
            .cmd("GET")
            .arg(&state_key)
            .cmd("HGETALL")
            .arg(&usage_key)
            .query_async(&mut self.conn())
            .await
            .map_err(at(&label))?;
        let Some(Some(json)) = fields.first() else { return Ok(None) };
        let mut record: SessionRecord = decode(&label, json)?;
        if let Some(Some(last_seen)) = fields.get(1) {
            record.last_seen_ms = last_seen.parse().map_err(|_| StoreError::Corrupt {
                key: label.clone(),
                reason: "last_seen_ms is not a number".into(),
            })?;
        }
        if let Some(state) = state {
            record.state = parse_state(id, &state)?;
        }
        let get = |field: &str| usage.get(field).copied().unwrap_or(0);
        record.usage = Usage {
            calls: get("calls"),
            denied: get("denied"),
            bytes_in: get("bytes_in"),
            bytes_out: get("bytes_out"),
            tokens_in: get("tokens_in"),
            tokens_out: get("tokens_out"),
            cost_micros: get("cost_micros"),
        };
        Ok(Some(record))
    }

    /// Every key matching `pattern`, on every node (one SCAN per primary in a cluster).
    async fn scan(&self, pattern: &str) -> StoreResult<Vec<String>> {
        let mut keys = Vec::new();
        match self.conn() {
            Conn::Single(mut c) => {
                let mut cursor = "0".to_string();
                loop {
                    let (next, batch): (String, Vec<String>) =
                        scan_cmd(&cursor, pattern).query_async(&mut c).await.map_err(at(pattern))?;
                    keys.extend(batch);
                    if next == "0" {
                        break;
                    }
                    cursor = next;
                }
            }
            Conn::Cluster(mut c) => {
                let nodes: String = redis::from_redis_value(
                    c.route_command(
                        cmd("CLUSTER").arg("NODES").clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                    )
                    .await
                    .map_err(at("CLUSTER NODES"))?,
                )
                .map_err(|e| at("CLUSTER NODES")(e.into()))?;
                for (host, port) in cluster_primaries(&nodes) {
                    let mut cursor = "0".to_string();
                    loop {
                        let route =
                            RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host: host.clone(), port });
                        let reply = c.route_command(scan_cmd(&cursor, pattern), route).await.map_err(at(pattern))?;
                        let (next, batch): (String, Vec<String>) =
                            redis::from_redis_value(reply).map_err(|e| at(pattern)(e.into()))?;
                        keys.extend(batch);
                        if next == "0" {
                            break;
                        }
                        cursor = next;
                    }
                }
            }
        }
        Ok(keys)
    }
}

fn scan_cmd(cursor: &str, pattern: &str) -> Cmd {
    let mut c = cmd("SCAN");
    c.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(500);
    c
}

/// (host, port) of each reachable primary in `CLUSTER NODES` output.
fn cluster_primaries(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") || flags.contains("noaddr") {
                return None;
            }
            // ip:port@cport[,hostname]
            let address = fields.get(1)?.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some((host.trim_matches(['[', ']']).to_string(), port.parse().ok()?))
        })
        .collect()
}

fn parse_state(id: &str, text: &str) -> StoreResult<SessionState> {
    match text {
        "active" => Ok(SessionState::Active),
        "paused" => Ok(SessionState::Paused),
        "stopped" => Ok(SessionState::Stopped),
        other => Err(StoreError::Corrupt {
            key: session_label(id, "state"),
            reason: format!("unknown state {:?}", other.chars().take(20).collect::<String>()),
        }),
    }
}

/// The counters in the scripts' order. HINCRBY takes signed 64-bit integers, so each is capped
/// at `i64::MAX` (no real counter gets near it; a bogus one must not fail the whole update).
fn usage_args(u: &Usage) -> [u64; 7] {
    [u.calls, u.denied, u.bytes_in, u.bytes_out, u.tokens_in, u.tokens_out, u.cost_micros]
        .map(|n| n.min(i64::MAX as u64))
}

/// An approval from its stored fields.
fn approval_from(label: &str, record: &str, decision: Option<&str>) -> StoreResult<ApprovalRecord> {
    let mut approval: ApprovalRecord = decode(label, record)?;
    approval.decision = match decision.filter(|d| !d.is_empty()) {
        Some(d) => Some(decode(label, d)?),
        None => None,
    };
    Ok(approval)
}

#[async_trait::async_trait]
impl SessionStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> StoreResult<()> {
        deadline(OP_DEADLINE, "PING", async {
            let _: String = cmd("PING").query_async(&mut self.conn()).await.map_err(at("PING"))?;
            Ok(())
        })
        .await
    }

    async fn put_session(&self, record: &SessionRecord, ttl: Duration) -> StoreResult<()> {
        let keys = session_keys(&record.id);
        let label = session_label(&record.id, "record");
        let json = encode(record)?;
        deadline(OP_DEADLINE, "put_session", async {
            let mut call = PUT_SESSION.prepare_invoke();
            call.key(&keys[..]).arg(json).arg(record.last_seen_ms).arg(ms(ttl)).arg(record.state.as_str());
            for n in usage_args(&record.usage) {
                call.arg(n);
            }
            let _: i64 = call.invoke_async(&mut self.conn()).await.map_err(at(&label))?;
            Ok(())
        })
        .await
    }

    async fn get_session(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        deadline(OP_DEADLINE, "get_session", self.fetch_session(id)).await
    }

    async fn session_state(&self, id: &str) -> StoreResult<Option<SessionState>> {
        // The hot path: one GET of a short string.
        let key = session_key(id, "state");
        deadline(OP_DEADLINE, "session_state", async {
            let state: Option<String> =
                cmd("GET").arg(&key).query_async(&mut self.conn()).await.map_err(at(&session_label(id, "state")))?;
            state.map(|s| parse_state(id, &s)).transpose()
        })
        .await
    }

    async fn set_session_state(&self, id: &str, state: SessionState) -> StoreResult<bool> {
        let key = session_key(id, "state");
        deadline(OP_DEADLINE, "set_session_state", async {
            // XX: only an existing session; KEEPTTL: the state expires with the rest of it.
            let set: Option<String> = cmd("SET")
                .arg(&key)
                .arg(state.as_str())
                .arg("XX")
                .arg("KEEPTTL")
                .query_async(&mut self.conn())
                .await
                .map_err(at(&session_label(id, "state")))?;
            Ok(set.is_some())
        })
        .await
    }

    async fn touch_session(&self, id: &str, ttl: Duration) -> StoreResult<()> {
        let keys = session_keys(id);
        deadline(OP_DEADLINE, "touch_session", async {
            let _: i64 = TOUCH_SESSION
                .key(&keys[..])
                .arg(now_ms())
                .arg(ms(ttl))
                .invoke_async(&mut self.conn())
                .await
                .map_err(at(&session_label(id, "record")))?;
            Ok(())
        })
        .await
    }

    async fn add_usage(&self, id: &str, delta: &Usage) -> StoreResult<()> {
        let [record, _, usage, _] = session_keys(id);
        deadline(OP_DEADLINE, "add_usage", async {
            let mut call = ADD_USAGE.prepare_invoke();
            call.key(record).key(usage);
            for n in usage_args(delta) {
                call.arg(n);
            }
            let _: i64 = call.invoke_async(&mut self.conn()).await.map_err(at(&session_label(id, "usage")))?;
            Ok(())
        })
        .await
    }

    async fn delete_session(&self, id: &str) -> StoreResult<()> {
        let keys = session_keys(id);
        deadline(OP_DEADLINE, "delete_session", async {
            // One slot (shared hash tag), so one DEL works in a cluster too.
            let _: i64 =
                cmd("DEL").arg(&keys[..]).query_async(&mut self.conn()).await.map_err(at(&session_label(id, "*")))?;
            Ok(())
        })
        .await
    }

    async fn list_sessions(&self) -> StoreResult<Vec<SessionRecord>> {
        deadline(SCAN_DEADLINE, "list_sessions", async {
            let keys = self.scan(SESSION_RECORD_PATTERN).await?;
            let ids: Vec<String> = keys.iter().filter_map(|k| session_id_from_record_key(k)).collect();
            let records = futures::future::try_join_all(ids.iter().map(|id| self.fetch_session(id))).await?;
            let mut out: Vec<SessionRecord> = records.into_iter().flatten().collect();
            out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
            out.dedup_by(|a, b| a.id == b.id);
            Ok(out)
        })
        .await
    }

    async fn push_history(&self, id: &str, calls: &[CallSummary], cap: usize, ttl: Duration) -> StoreResult<()> {
        if cap > 0 && calls.is_empty() {
            return Ok(());
        }
        let key = session_key(id, "history");
        // Only the newest `cap` can survive the trim. LPUSH puts each value at the head in turn,
        // so oldest first in ends newest first in the list.
        let json = calls[calls.len().saturating_sub(cap)..].iter().map(encode).collect::<StoreResult<Vec<_>>>()?;
        deadline(OP_DEADLINE, "push_history", async {
            let mut p = pipe();
            if cap == 0 {
                p.del(&key);
            } else {
                // Not atomic, and needs not be: concurrent pushes still end newest first and capped.
                p.lpush(&key, json).ltrim(&key, 0, last_index(cap)).pexpire(&key, ms(ttl) as i64);
            }
            p.exec_async(&mut self.conn()).await.map_err(at(&session_label(id, "history")))
        })
        .await
    }

    async fn history(&self, id: &str, limit: usize) -> StoreResult<Vec<CallSummary>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let key = session_key(id, "history");
        let label = session_label(id, "history");
        deadline(OP_DEADLINE, "history", async {
            let items: Vec<String> = cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(last_index(limit))
                .query_async(&mut self.conn())
                .await
                .map_err(at(&label))?;
            items.iter().map(|item| decode(&label, item)).collect()
        })
        .await
    }

    async fn put_approval(&self, approval: &ApprovalRecord) -> StoreResult<()> {
        let key = approval_key(&approval.id);
        let decision = match &approval.decision {
            Some(d) => encode(d)?,
            None => String::new(),
        };
        let record = encode(&ApprovalRecord { decision: None, ..approval.clone() })?;
        let keep_until = approval.expires_ms.saturating_add(APPROVAL_RETENTION.as_millis() as u64);
        deadline(OP_DEADLINE, "put_approval", async {
            let _: i64 = PUT_APPROVAL
                .key(&key)
                .key(APPROVALS_PENDING)
                .arg(&approval.id)
                .arg(record)
                .arg(decision)
                .arg(approval.expires_ms)
                .arg(keep_until)
                .invoke_async(&mut self.conn())
                .await
                .map_err(at(&key))?;
            Ok(())
        })
        .await
    }

    async fn get_approval(&self, id: &str) -> StoreResult<Option<ApprovalRecord>> {
        let key = approval_key(id);
        deadline(OP_DEADLINE, "get_approval", async {
            let (record, decision): (Option<String>, Option<String>) = cmd("HMGET")
                .arg(&key)
                .arg("record")
                .arg("decision")
                .query_async(&mut self.conn())
                .await
                .map_err(at(&key))?;
            record.map(|r| approval_from(&key, &r, decision.as_deref())).transpose()
        })
        .await
    }

    async fn pending_approvals(&self) -> StoreResult<Vec<ApprovalRecord>> {
        deadline(SCAN_DEADLINE, "pending_approvals", async {
            let now = now_ms();
            let mut conn = self.conn();
            // The index holds undecided approvals scored by expiry; expired ones are dropped here.
            let (ids, _): (Vec<String>, i64) = pipe()
                .cmd("ZRANGEBYSCORE")
                .arg(APPROVALS_PENDING)
                .arg(format!("({now}"))
                .arg("+inf")
                .cmd("ZREMRANGEBYSCORE")
                .arg(APPROVALS_PENDING)
                .arg("-inf")
                .arg(now)
                .query_async(&mut conn)
                .await
                .map_err(at(APPROVALS_PENDING))?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut p = pipe();
            for id in &ids {
                p.cmd("HMGET").arg(approval_key(id)).arg("record").arg("decision");
            }
            let rows: Vec<(Option<String>, Option<String>)> =
                p.query_async(&mut conn).await.map_err(at(APPROVALS_PENDING))?;
            let mut out = Vec::new();
            for (id, (record, decision)) in ids.iter().zip(rows) {
                let Some(record) = record else { continue };
                let approval = approval_from(&approval_key(id), &record, decision.as_deref())?;
                if approval.decision.is_none() && approval.expires_ms > now {
                    out.push(approval);
                }
            }
            out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
            Ok(out)
        })
        .await
    }

    async fn decide_approval(&self, id: &str, decision: &ApprovalDecision) -> StoreResult<DecideOutcome> {
        let key = approval_key(id);
        let json = encode(decision)?;
        deadline(OP_DEADLINE, "decide_approval", async {
            let (status, record, stored): (i64, String, String) = DECIDE_APPROVAL
                .key(&key)
                .key(APPROVALS_PENDING)
                .arg(id)
                .arg(json)
                .arg(now_ms())
                .invoke_async(&mut self.conn())
                .await
                .map_err(at(&key))?;
            Ok(match status {
                0 => DecideOutcome::NotFound,
                1 => DecideOutcome::AlreadyDecided(approval_from(&key, &record, Some(&stored))?),
                _ => DecideOutcome::Decided(approval_from(&key, &record, Some(&stored))?),
            })
        })
        .await
    }

    async fn use_nonce(&self, nonce: &str, ttl: Duration) -> StoreResult<bool> {
        let key = nonce_key(nonce);
        deadline(OP_DEADLINE, "use_nonce", async {
            let set: Option<String> = cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ms(ttl))
                .query_async(&mut self.conn())
                .await
                .map_err(at("tollgate:nonce:…"))?;
            Ok(set.is_some())
        })
        .await
    }

    async fn get_pin(&self, upstream: &str, tool: &str) -> StoreResult<Option<String>> {
        let field = pin_field(upstream, tool);
        deadline(OP_DEADLINE, "get_pin", async {
            cmd("HGET").arg(PINS).arg(&field).query_async(&mut self.conn()).await.map_err(at(PINS))
        })
        .await
    }

    async fn pin_if_absent(&self, upstream: &str, tool: &str, digest: &str) -> StoreResult<String> {
        let field = pin_field(upstream, tool);
        deadline(OP_DEADLINE, "pin_if_absent", async {
            // HSETNX decides; the HGET after it reads whichever pin is in force.
            let (_, pinned): (i64, String) = pipe()
                .cmd("HSETNX")
                .arg(PINS)
                .arg(&field)
                .arg(digest)
                .cmd("HGET")
                .arg(PINS)
                .arg(&field)
                .query_async(&mut self.conn())
                .await
                .map_err(at(PINS))?;
            Ok(pinned)
        })
        .await
    }

    async fn set_pin(&self, upstream: &str, tool: &str, digest: &str) -> StoreResult<()> {
        let field = pin_field(upstream, tool);
        deadline(OP_DEADLINE, "set_pin", async {
            let _: i64 =
                cmd("HSET").arg(PINS).arg(&field).arg(digest).query_async(&mut self.conn()).await.map_err(at(PINS))?;
            Ok(())
        })
        .await
    }

    async fn list_pins(&self) -> StoreResult<Vec<(String, String, String)>> {
        deadline(SCAN_DEADLINE, "list_pins", async {
            let all: HashMap<String, String> =
                cmd("HGETALL").arg(PINS).query_async(&mut self.conn()).await.map_err(at(PINS))?;
            let mut out = Vec::with_capacity(all.len());
            for (field, digest) in all {
                let (upstream, tool): (String, String) = decode(PINS, &field)?;
                out.push((upstream, tool, digest));
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn rate_check(&self, key: &str, quota: &RateQuota) -> StoreResult<RateVerdict> {
        // Below a microsecond between calls (over a million a second) is no limit: Redis's clock
        // has microseconds, and a zero period is "unlimited" in the embedded store too.
        let interval_us = quota.emission_interval().as_micros() as u64;
        if interval_us == 0 {
            return Ok(RateVerdict::Allowed);
        }
        let burst = quota.burst.max(1);
        let key = rate_key(key, interval_us, burst);
        deadline(OP_DEADLINE, "rate_check", async {
            let wait_us: i64 = RATE_CHECK
                .key(&key)
                .arg(interval_us)
                .arg(burst)
                .invoke_async(&mut self.conn())
                .await
                .map_err(at("tollgate:rate:…"))?;
            Ok(match wait_us {
                n if n > 0 => RateVerdict::Limited { retry_after: Duration::from_micros(n as u64) },
                _ => RateVerdict::Allowed,
            })
        })
        .await
    }

    async fn memory_put(&self, principal: &str, key: &str, value: &str) -> StoreResult<()> {
        let (values, index) = memory_keys(principal);
        deadline(OP_DEADLINE, "memory_put", async {
            let _: i64 = MEMORY_PUT
                .key(&values)
                .key(&index)
                .arg(key)
                .arg(value)
                .invoke_async(&mut self.conn())
                .await
                .map_err(at(&values))?;
            Ok(())
        })
        .await
    }

    async fn memory_get(&self, principal: &str, key: &str) -> StoreResult<Option<String>> {
        let (values, _) = memory_keys(principal);
        deadline(OP_DEADLINE, "memory_get", async {
            cmd("HGET").arg(&values).arg(key).query_async(&mut self.conn()).await.map_err(at(&values))
        })
        .await
    }

    async fn memory_list(&self, principal: &str, prefix: &str, limit: usize) -> StoreResult<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (_, index) = memory_keys(principal);
        // Members all score 0, so the set is in byte order and a prefix is a lexicographic range:
        // [prefix, prefix + 0xFF) holds exactly the UTF-8 strings that start with it.
        let min = [b"[".as_slice(), prefix.as_bytes()].concat();
        let max = [b"(".as_slice(), prefix.as_bytes(), &[0xFF]].concat();
        deadline(OP_DEADLINE, "memory_list", async {
            cmd("ZRANGEBYLEX")
                .arg(&index)
                .arg(min)
                .arg(max)
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .query_async(&mut self.conn())
                .await
                .map_err(at(&index))
        })
        .await
    }

    async fn memory_delete(&self, principal: &str, key: &str) -> StoreResult<bool> {
        let (values, index) = memory_keys(principal);
        deadline(OP_DEADLINE, "memory_delete", async {
            let removed: i64 = MEMORY_DELETE
                .key(&values)
                .key(&index)
                .arg(key)
                .invoke_async(&mut self.conn())
                .await
                .map_err(at(&values))?;
            Ok(removed > 0)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cannot_break_out_of_a_hash_tag_or_glob() {
        let id = "a}b:{c*d?[e]\\f%g h/é";
        let key = session_key(id, "record");
        assert_eq!(key, "tollgate:{s:a%7Db%3A%7Bc%2Ad%3F%5Be%5D%5Cf%25g%20h/%C3%A9}:record");
        assert_eq!(session_id_from_record_key(&key).as_deref(), Some(id));
        assert_eq!(session_key("0123abcd", "state"), "tollgate:{s:0123abcd}:state");
        assert_eq!(part("alice@example.com"), "alice@example.com");
        assert_eq!(unpart("%zz"), None);
        assert_eq!(unpart("%4"), None);
    }

    #[test]
    fn a_session_keys_share_one_hash_tag() {
        let tags: Vec<String> = session_keys("x}y")
            .iter()
            .map(|k| {
                let open = k.find('{').expect("tag");
                let close = open + k[open..].find('}').expect("tag end");
                k[open..=close].to_string()
            })
            .collect();
        assert!(tags.iter().all(|t| t == "{s:x%7Dy}"), "{tags:?}");
    }

    #[test]
    fn credentials_stay_out_of_messages() {
        assert_eq!(without_credentials("redis://:hunter2@db:6379/0"), "redis://***@db:6379/0");
        assert_eq!(without_credentials("redis://db:6379"), "redis://db:6379");
        assert_eq!(without_credentials("redis+cluster://u:p@a:1,b:2"), "redis+cluster://***@a:1,b:2");
    }

    #[test]
    fn cluster_urls() {
        assert_eq!(cluster_nodes("redis://a:1"), None);
        assert_eq!(
            cluster_nodes("redis+cluster://u:p@a:1,b:2"),
            Some(vec!["redis://u:p@a:1".to_string(), "redis://u:p@b:2".to_string()])
        );
        assert_eq!(
            cluster_nodes("redis://a:1, redis://b:2"),
            Some(vec!["redis://a:1".to_string(), "redis://b:2".to_string()])
        );
    }

    #[test]
    fn cluster_nodes_output_gives_reachable_primaries() {
        let nodes = "\
07c3 127.0.0.1:7101@17101 myself,master - 0 0 1 connected 0-5460
67ed 127.0.0.1:7102@17102,host-b master - 0 1 2 connected 5461-10922
2924 127.0.0.1:7104@17104 slave 07c3 0 1 1 connected
8888 127.0.0.1:7105@17105 master,fail - 0 1 3 disconnected
aaaa [::1]:7103@17103 master - 0 1 3 connected 10923-16383
";
        assert_eq!(
            cluster_primaries(nodes),
            [("127.0.0.1".to_string(), 7101), ("127.0.0.1".to_string(), 7102), ("::1".to_string(), 7103)]
        );
    }
}
