//! Wiring: builds the shared parts, runs the listeners, and shuts down in order:
//! stop accepting → let in-flight calls finish (grace period) → close sessions (which stops
//! every upstream child) → exit.

use crate::audit::sink::AuditLog;
use crate::auth::Authenticator;
use crate::config::StoreBackend;
use crate::config::{Config, UpstreamConfig};
use crate::policy::handle::{PolicyHandle, Watch};
use crate::policy::stack;
use crate::policy::{Policy, Roles};
use crate::session::embedded::EmbeddedStore;
use crate::session::pins::PinStore;
use crate::session::redis::RedisStore;
use crate::session::registry::Registry;
use crate::session::request_state::StateKey;
use crate::session::store::SessionStore;
use crate::session::{self, Session, Shared};
use crate::telemetry::metrics::Metrics;
use crate::transport::downstream::{http, listener, stdio};
use crate::transport::upstream::clients::UpstreamClients;
use anyhow::Context;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The live policy: the configured directory (validated now, watched for changes) or the
/// annotation-only default.
pub fn policy_handle(config: &Config) -> anyhow::Result<(Arc<PolicyHandle>, Option<Watch>)> {
    match config.policy.resolved_dir(&config.base_dir) {
        Some(dir) => {
            let handle = PolicyHandle::from_dir(&dir).map_err(|e| anyhow::anyhow!("invalid policy: {e}"))?;
            let watch = if config.policy.watch { handle.watch().map_err(|e| anyhow::anyhow!(e))? } else { None };
            Ok((handle, watch))
        }
        None => Ok((PolicyHandle::fixed(Policy::annotations_only(config.policy.allow_writes)), None)),
    }
}

/// The audit log, if the config names one; refuses to start if it cannot be opened.
fn audit_log(config: &Config) -> anyhow::Result<Option<Arc<AuditLog>>> {
    match config.audit.resolved_file(&config.base_dir) {
        Some(path) => {
            let log = AuditLog::open(&path, config.audit.max_bytes).map_err(|e| anyhow::anyhow!(e))?;
            tracing::info!(path = %path.display(), "audit log open");
            Ok(Some(log))
        }
        None => {
            tracing::warn!("no audit log configured ([audit] file, or --audit): tool calls are not recorded");
            Ok(None)
        }
    }
}

/// How often the embedded store deletes what expired (Redis expires keys itself).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The state store the config asks for; refuses to start if it cannot be opened or reached.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn SessionStore>> {
    let store: Arc<dyn SessionStore> = match config.store.backend {
        StoreBackend::Embedded => match config.store.resolved_file(&config.base_dir) {
            Some(path) => {
                let store = EmbeddedStore::open(&path).map_err(|e| anyhow::anyhow!("store.file: {e}"))?;
                tracing::info!(path = %path.display(), "state store: embedded file");
                store.spawn_sweeper(SWEEP_EVERY);
                store
            }
            None => {
                tracing::info!("state store: in memory (set store.file to keep sessions across restarts)");
                let store = EmbeddedStore::in_memory().map_err(|e| anyhow::anyhow!("in-memory store: {e}"))?;
                store.spawn_sweeper(SWEEP_EVERY);
                store
            }
        },
        StoreBackend::Redis => {
            let url = config.store.url.as_deref().unwrap_or_default();
            let store = RedisStore::connect(url).await.map_err(|e| anyhow::anyhow!("store.url: {e}"))?;
            tracing::info!("state store: redis");
            store
        }
    };
    Ok(store)
}

// Wiring: every argument is one of the gateway-wide parts `Shared` holds.
#[allow(clippy::too_many_arguments)]
fn shared(
    config: &Config,
    upstreams: Vec<UpstreamConfig>,
    policy: Arc<PolicyHandle>,
    (principal, roles): (String, Roles),
    store: Arc<dyn SessionStore>,
    pins: Arc<PinStore>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Arc<Shared>> {
    let http = UpstreamClients::new(&upstreams).map_err(anyhow::Error::msg)?;
    let audit = audit_log(config)?;
    Ok(Arc::new(Shared {
        upstreams: upstreams.into_iter().map(Arc::new).collect(),
        separator: config.gateway.separator.clone(),
        request_timeout: config.gateway.request_timeout(),
        http,
        tool_stack: stack::build(config.gateway.request_timeout(), audit.clone()),
        policy,
        pins,
        principal,
        roles,
        store,
        session_ttl: Duration::from_secs(config.server.session_idle_timeout_secs),
        sessions: config.sessions.clone(),
        approvals: config.approvals.clone(),
        decisions: Default::default(),
        state_key: match &config.approvals.state_key {
            Some(r) => StateKey::from_secret(
                &crate::secrets::resolve(r, &config.base_dir)
                    .map_err(|e| anyhow::anyhow!("approvals.state_key: {e}"))?,
            ),
            None => StateKey::random(),
        },
        cost: Arc::new(crate::cost::CostModel::from_config(&config.cost).map_err(|e| anyhow::anyhow!(e))?),
        max_in_flight_per_session: config.server.max_in_flight_per_session,
        metrics,
        audit,
    }))
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}

/// `tollgate serve`: the Streamable HTTP endpoint until a signal arrives. Calls are counted in
/// `metrics` (see `telemetry::init`).
pub async fn serve(config: Config, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    let (policy, _watch) = policy_handle(&config)?;
    // Before anything else starts: a network listener without [auth] refuses to run.
    Authenticator::check_listener(&config, config.server.listen)?;
    let store = open_store(&config).await?;
    let pins = Arc::new(PinStore::load(store.clone()).await.map_err(|e| anyhow::anyhow!("tool pins: {e}"))?);
    // HTTP sessions carry their caller's principal; this default names nobody.
    let nobody = (crate::auth::ANONYMOUS.to_string(), Roles::none());
    let shared = shared(&config, config.all_upstreams(), policy, nobody, store, pins, metrics)?;
    let registry = Arc::new(Registry::new(shared).with_max_sessions(config.server.max_sessions));
    let admin = match &config.admin {
        Some(admin) => Some(
            crate::admin::serve(admin, &config.base_dir, registry.clone(), config.telemetry.metrics_require_token)
                .await?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {} (server.listen)", config.server.listen))?;
    let addr = listener.local_addr()?;
    // After binding: on loopback the bound address makes the default resource URL.
    let auth = Arc::new(Authenticator::from_config(&config, addr).await?);
    let state = http::HttpState::new(registry.clone(), config.server.clone(), auth);
    let app = http::router(state);
    let handshake = match &config.server.tls {
        Some(tls) => Some(crate::transport::downstream::tls::handshake(tls).map_err(|e| anyhow::anyhow!(e))?),
        None => None,
    };
    let scheme = if handshake.is_some() { "https" } else { "http" };
    // Tests and scripts read the bound address from this line (port 0 picks a free port).
    println!("listening on {scheme}://{addr}{}", config.server.path);
    let _ = std::io::stdout().flush();
    tracing::info!(
        %addr,
        path = %config.server.path,
        upstreams = config.upstreams.len(),
        memory = config.memory.enabled,
        "tollgate serving"
    );

    let stop = CancellationToken::new();
    let settings = listener::Settings::from_config(&config.server);
    let server = tokio::spawn(listener::serve(listener, app, settings, handshake, stop.clone()));
    let reaper = tokio::spawn({
        let registry = registry.clone();
        let idle = Duration::from_secs(config.server.session_idle_timeout_secs);
        async move {
            let mut tick = tokio::time::interval(idle.min(Duration::from_secs(60)).max(Duration::from_secs(1)));
            loop {
                tick.tick().await;
                registry.reap(idle).await;
            }
        }
    });

    shutdown_signal().await;
    stop.cancel();
    drain(&registry, config.gateway.shutdown_grace()).await;
    registry.close_all().await;
    if let Err(e) = registry.shared().store.flush().await {
        tracing::warn!(error = %e, "could not flush the state store at shutdown");
    }
    reaper.abort();
    if let Some(admin) = admin {
        admin.abort();
    }
    if tokio::time::timeout(Duration::from_secs(2), server).await.is_err() {
        tracing::warn!("connections still open after shutdown; closing them");
    }
    tracing::info!("tollgate stopped");
    Ok(())
}

/// Waits for in-flight requests to finish, up to `grace`.
async fn drain(registry: &Registry, grace: Duration) {
    let deadline = tokio::time::Instant::now() + grace;
    while registry.in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = registry.in_flight();
    if left > 0 {
        tracing::warn!(left, "grace period over; failing calls still in flight");
    }
}

/// `tollgate stdio -- CMD ARGS`: one client on our stdin/stdout, `CMD` (plus any configured
/// upstreams) behind it. `inherit_env` names the variables `CMD` gets from our environment
/// besides the default allowlist (`--inherit-env`).
pub async fn stdio(
    config: Config,
    command: Vec<String>,
    inherit_env: Vec<String>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let mut upstreams = Vec::new();
    if !command.is_empty() {
        let mut wrapped = UpstreamConfig::from_command(&command);
        wrapped.inherit_env = inherit_env;
        upstreams.push(wrapped);
    }
    upstreams.extend(config.upstreams.iter().cloned());
    if upstreams.is_empty() {
        anyhow::bail!("nothing to front: give a command after `--` or upstreams in --config");
    }
    if let Some(memory) = config.memory.upstream() {
        // The wrapped command's upstream is named "upstream"; config validation saw only the file.
        if upstreams.iter().any(|u| u.name == memory.name || u.prefix() == memory.name) {
            anyhow::bail!(
                "memory.name = {:?}: another upstream uses this name; set [memory] name to another",
                memory.name
            );
        }
        upstreams.push(memory);
    }
    let (policy, _watch) = policy_handle(&config)?;
    // The person who launched the wrapper is who the calls are attributed to: the configured
    // stdio principal, else the OS user. stdio has no credentials to check (MCP: they come from
    // the environment).
    let auth = config.auth.clone().unwrap_or_default();
    let principal = auth
        .stdio_principal
        .clone()
        .unwrap_or_else(|| std::env::var("USER").map(|u| format!("os:{u}")).unwrap_or_else(|_| "os:unknown".into()));
    let store = open_store(&config).await?;
    let pins = Arc::new(PinStore::load(store.clone()).await.map_err(|e| anyhow::anyhow!("tool pins: {e}"))?);
    let identity = (principal, Roles::new(auth.stdio_roles));
    let shared = shared(&config, upstreams, policy, identity, store, pins, metrics)?;
    let session = Session::new(shared, session::new_session_id());
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            stop.cancel();
        }
    });
    stdio::serve(session, config.server.max_body_bytes, stop, config.gateway.shutdown_grace()).await;
    Ok(())
}
