//! The `tollgate` command line: parse, then hand over to `gateway`. Exit codes: 0 ok,
//! 1 runtime failure, 2 bad usage or configuration.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use tollgate::config::Config;

/// mimalloc: many small, short-lived allocations per message (frames, maps, futures) are where
/// glibc's allocator spent ~13% of the gateway's CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tollgate", version, about = "A security-first MCP gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Streamable HTTP endpoint (or sidecar) described by a config file.
    Serve {
        #[arg(long, short, env = "TOLLGATE_CONFIG")]
        config: PathBuf,
        /// Listen on this address instead of the config's `server.listen` (e.g. 0.0.0.0:8080 in a container).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Wrap an MCP server launched over stdio: `tollgate stdio -- npx @modelcontextprotocol/server-filesystem /dir`.
    Stdio {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// A directory of policy files (overrides the config's `policy.dir`).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Without a policy: also allow tools that are not annotated read-only.
        #[arg(long)]
        allow_writes: bool,
        /// Write the audit log here (overrides the config's `audit.file`).
        #[arg(long)]
        audit: Option<PathBuf>,
        /// Pass this variable of our environment to COMMAND (repeatable; `PREFIX*` for a
        /// prefix). COMMAND otherwise gets only PATH, HOME, USER, LOGNAME, LANG, LC_ALL,
        /// LC_CTYPE, TZ and TMPDIR: credentials in the client's environment stay out unless named.
        #[arg(long = "inherit-env", value_name = "NAME")]
        inherit_env: Vec<String>,
        /// The upstream server's command and arguments.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Validate a config file and exit.
    CheckConfig { file: PathBuf },
    /// The audit log: verify its hash chain, show the latest records or one session's.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Tool-definition pins (rug-pull defence), through the admin API: list them, approve a
    /// changed definition.
    Pins {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: PinsCommand,
    },
    /// Policy files: validate them, or explain which rule decides a call.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Sessions of a running gateway (through its admin API): list, show, pause, resume, stop.
    Sessions {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Authentication helpers: `tollgate auth hash-key < keyfile` prints the digest for `[[auth.api_key]]`.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// Calls, bytes, estimated tokens and cost per principal (or upstream, or tool) over a time
    /// window, from the audit log (durable and complete, unlike the store's expiring sessions).
    Usage {
        /// Start of the window: a duration back from now (24h, 30m, 7d, 1h30m) or an RFC 3339 UTC time.
        #[arg(long, default_value = "24h")]
        since: String,
        /// Group rows by one or more of principal, upstream, tool (comma-separated).
        #[arg(long, value_enum, value_delimiter = ',', default_value = "principal")]
        by: Vec<tollgate::commands::usage::GroupBy>,
        /// The audit log (default: the config's audit.file).
        #[arg(long)]
        audit: Option<PathBuf>,
        /// The gateway's config file, for audit.file.
        #[arg(long, short, env = "TOLLGATE_CONFIG")]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Calls waiting for a person (through the admin API): list, approve, deny.
    Approvals {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
}

/// How to reach a running gateway's admin API. The token comes from TOLLGATE_ADMIN_TOKEN or the
/// config's `admin.token` reference.
#[derive(clap::Args)]
struct AdminArgs {
    /// The admin API's base URL (default: the config's admin.listen, else http://127.0.0.1:8081).
    #[arg(long, global = true)]
    admin: Option<String>,
    /// The gateway's config file, for admin.listen and admin.token.
    #[arg(long, short, global = true, env = "TOLLGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// Every live session, most recently active first.
    List,
    /// One session: state, client, usage, pending approvals and recent calls.
    Show { id: String },
    /// Hold the session's new tool calls until it is resumed.
    Pause { id: String },
    /// Release held calls, in order.
    Resume { id: String },
    /// End the session: cancel in-flight calls, close its upstream sessions, refuse its id.
    Stop { id: String },
    /// Re-decide the session's recorded calls (from the audit log) under the current policy and
    /// show what would now be decided differently. Offline: needs --dry-run; nothing is sent.
    Replay {
        /// The session id or its handle as audit records show it.
        id: String,
        /// Required: only re-evaluate (replaying calls for real is not supported).
        #[arg(long)]
        dry_run: bool,
        /// Policy directory or files to decide by (default: the config's policy).
        #[arg(long = "policy")]
        policy: Vec<PathBuf>,
        /// The audit log (default: the config's audit.file).
        #[arg(long)]
        audit: Option<PathBuf>,
        /// List every call, not only those decided differently.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// Calls waiting for a decision, oldest first.
    List,
    /// Let the call run.
    Approve {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        /// Who is deciding (recorded in the audit log; default "operator").
        #[arg(long = "as")]
        operator: Option<String>,
    },
    /// Refuse the call.
    Deny {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long = "as")]
        operator: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuthCommand {
    /// Read an API key from stdin and print its SHA-256 (hex) for `[[auth.api_key]] sha256`.
    /// The key itself never goes into the config.
    HashKey,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every record's hash and link (rotated files included); exit 1 on tampering.
    Verify { file: PathBuf },
    /// The last N records.
    Tail {
        file: PathBuf,
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Print the JSON records instead of one line each.
        #[arg(long)]
        json: bool,
    },
    /// Every record of one session (its id or the handle shown in records).
    Show {
        file: PathBuf,
        #[arg(long)]
        session: String,
        #[arg(long)]
        json: bool,
    },
    /// Why did this call happen? Its whole chain from the log: client, principal, session, the
    /// request's id and _meta, every policy decision and rule, approval, upstream, timing,
    /// outcome, size, redactions, cost, and the hash chain's state around it.
    Explain {
        file: PathBuf,
        /// The session (its id or handle).
        #[arg(long)]
        session: Option<String>,
        /// The Nth tool call of the session (1-based, in log order).
        #[arg(long, requires = "session")]
        call: Option<usize>,
        /// Calls to this upstream.
        #[arg(long)]
        upstream: Option<String>,
        /// Calls of this tool (namespaced or the upstream's own name).
        #[arg(long)]
        tool: Option<String>,
        /// Calls whose redacted arguments mention this file path.
        #[arg(long)]
        path: Option<String>,
        /// Only the newest matching call.
        #[arg(long)]
        last: bool,
        /// JSON (an array of calls) instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PinsCommand {
    /// Every pinned tool and whether its definition changed.
    List,
    /// Accept the changed definition of TOOL on UPSTREAM (its upstream name, not the namespaced one).
    Approve { upstream: String, tool: String },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate policy files or a policy directory (default: ./policies).
    Check { paths: Vec<PathBuf> },
    /// Show which rule decides a call to TOOL and why.
    Explain {
        #[arg(long)]
        tool: String,
        /// The upstream's configured name.
        #[arg(long, default_value = "upstream")]
        upstream: String,
        /// The call's arguments as JSON.
        #[arg(long, default_value = "{}")]
        args: String,
        /// The tool's readOnlyHint annotation as the upstream lists it (omit if it has none).
        #[arg(long)]
        read_only_hint: Option<bool>,
        /// A role the calling identity holds (repeatable); without any, a role-less identity.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Policy directory or files (default: ./policies).
        #[arg(long = "policy")]
        paths: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    // Before any HTTP client exists, including those libraries build (the OTLP exporter's).
    tollgate::transport::client_tls::install_crypto_provider();
    let cli = Cli::parse();
    // A gateway sets up its logs with its exporters, once its config is read.
    if !matches!(cli.command, Command::Serve { .. } | Command::Stdio { .. }) {
        tollgate::telemetry::init_logs();
    }
    match try_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tollgate: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs one admin-API client command: prints its output, or the error (exit 1).
fn admin_command<F, Fut>(runtime: &tokio::runtime::Runtime, args: AdminArgs, run: F) -> ExitCode
where
    F: FnOnce(tollgate::commands::admin_client::AdminTarget) -> Fut,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    let config = match args.config.as_deref().map(load) {
        Some(Ok(c)) => Some(c),
        Some(Err(code)) => return code,
        None => None,
    };
    let target = match tollgate::commands::admin_client::AdminTarget::resolve(args.admin, config.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tollgate: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(target)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tollgate: {e}");
            ExitCode::from(1)
        }
    }
}

/// Logs and exporters for a gateway process; inside the runtime's context, which gRPC export needs.
fn start_telemetry(
    runtime: &tokio::runtime::Runtime,
    config: &Config,
) -> anyhow::Result<tollgate::telemetry::Telemetry> {
    let _context = runtime.enter();
    tollgate::telemetry::init(&config.telemetry).map_err(|e| anyhow::anyhow!(e))
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("tollgate: invalid config: {e}");
        ExitCode::from(2)
    })
}

/// The async runtime: one worker per core unless `TOLLGATE_WORKER_THREADS` says otherwise (on
/// a small machine shared with the upstreams, fewer workers mean fewer cross-thread wakeups per
/// call; BENCHMARKS.md has the measurements).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("TOLLGATE_WORKER_THREADS").ok().and_then(|v| v.parse::<usize>().ok()) {
        builder.worker_threads(n.max(1));
    }
    Ok(builder.enable_all().build()?)
}

fn try_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = runtime()?;
    match cli.command {
        Command::CheckConfig { file } => {
            let config = match load(&file) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            if let Some(dir) = config.policy.resolved_dir(&config.base_dir)
                && let Err(e) = tollgate::policy::Policy::load_dir(&dir)
            {
                eprintln!("tollgate: invalid policy: {e}");
                return Ok(ExitCode::from(2));
            }
            let memory = if config.memory.enabled {
                format!(", built-in memory as {:?}", config.memory.name)
            } else {
                String::new()
            };
            println!("{}: ok ({} upstreams{memory})", file.display(), config.upstreams.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy { command } => Ok(policy_command(command)),
        Command::Usage { since, by, audit, config, json } => {
            Ok(usage_command(&since, &by, audit, config.as_deref(), json))
        }
        Command::Sessions { admin, command } => {
            use tollgate::commands::admin_client::{SessionsAction, sessions};
            let action = match command {
                SessionsCommand::List => SessionsAction::List,
                SessionsCommand::Show { id } => SessionsAction::Show(id),
                SessionsCommand::Pause { id } => SessionsAction::Steer(id, "pause"),
                SessionsCommand::Resume { id } => SessionsAction::Steer(id, "resume"),
                SessionsCommand::Stop { id } => SessionsAction::Steer(id, "stop"),
                // Offline: reads the audit log, not the admin API.
                SessionsCommand::Replay { id, dry_run, policy, audit, all } => {
                    return Ok(replay_command(&id, dry_run, &policy, audit, admin.config.as_deref(), admin.json, all));
                }
            };
            let json = admin.json;
            Ok(admin_command(&runtime, admin, |target| async move { sessions(&target, action, json).await }))
        }
        Command::Approvals { admin, command } => {
            use tollgate::commands::admin_client::{ApprovalsAction, approvals};
            let action = match command {
                ApprovalsCommand::List => ApprovalsAction::List,
                ApprovalsCommand::Approve { id, reason, operator } => {
                    ApprovalsAction::Decide { id, approve: true, reason, operator }
                }
                ApprovalsCommand::Deny { id, reason, operator } => {
                    ApprovalsAction::Decide { id, approve: false, reason, operator }
                }
            };
            let json = admin.json;
            Ok(admin_command(&runtime, admin, |target| async move { approvals(&target, action, json).await }))
        }
        Command::Audit { command } => Ok(audit_command(command)),
        Command::Auth { command: AuthCommand::HashKey } => {
            let mut input = String::new();
            std::io::stdin().take(64 * 1024).read_to_string(&mut input)?;
            match tollgate::auth::api_key::hash_key_from_input(&input) {
                Ok(digest) => {
                    println!("{digest}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("tollgate: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Pins { admin, command } => {
            let json = admin.json;
            Ok(admin_command(&runtime, admin, |target| async move {
                match command {
                    PinsCommand::List => tollgate::commands::pins::list(&target, json).await,
                    PinsCommand::Approve { upstream, tool } => {
                        tollgate::commands::pins::approve(&target, &upstream, &tool).await
                    }
                }
            }))
        }
        Command::Serve { config, listen } => {
            let mut config = match load(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            if let Some(addr) = listen {
                config.server.listen = addr;
            }
            let telemetry = start_telemetry(&runtime, &config)?;
            let served = runtime.block_on(tollgate::gateway::serve(config, telemetry.metrics()));
            // After the runtime stops serving, before it is dropped: the last spans still go out.
            telemetry.shutdown();
            served?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stdio { config, policy, allow_writes, audit, inherit_env, command } => {
            let mut config = match config {
                Some(path) => match load(&path) {
                    Ok(c) => c,
                    Err(code) => return Ok(code),
                },
                None => Config::default(),
            };
            if let Some(dir) = policy {
                config.policy.dir = Some(std::env::current_dir()?.join(dir));
            }
            config.policy.allow_writes |= allow_writes;
            if let Some(path) = audit {
                config.audit.file = Some(std::env::current_dir()?.join(path));
            }
            if command.is_empty() && config.upstreams.is_empty() {
                eprintln!("tollgate: usage: tollgate stdio [--config FILE] -- COMMAND [ARGS...]");
                return Ok(ExitCode::from(2));
            }
            if let Some(bad) = inherit_env.iter().find(|n| {
                let body = n.strip_suffix('*').unwrap_or(n);
                body.is_empty() || !body.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }) {
                eprintln!(
                    "tollgate: --inherit-env {bad:?}: use a variable name (A-Z a-z 0-9 _), optionally ending in *"
                );
                return Ok(ExitCode::from(2));
            }
            let telemetry = start_telemetry(&runtime, &config)?;
            let served = runtime.block_on(tollgate::gateway::stdio(config, command, inherit_env, telemetry.metrics()));
            telemetry.shutdown();
            served?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn policy_command(command: PolicyCommand) -> ExitCode {
    use tollgate::commands::policy;
    match command {
        PolicyCommand::Check { paths } => match policy::load(&paths) {
            Ok(p) => {
                println!("policy ok (version {})", p.version);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tollgate: invalid policy: {e}");
                ExitCode::from(2)
            }
        },
        PolicyCommand::Explain { tool, upstream, args, read_only_hint, roles, paths } => {
            let args: serde_json::Value = match serde_json::from_str(&args) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("tollgate: --args is not JSON: {e}");
                    return ExitCode::from(2);
                }
            };
            let policy = match policy::load(&paths) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("tollgate: invalid policy: {e}");
                    return ExitCode::from(2);
                }
            };
            let (_, text) =
                policy::explain(&policy, &tollgate::policy::Roles::new(roles), &upstream, &tool, read_only_hint, &args);
            print!("{text}");
            ExitCode::SUCCESS
        }
    }
}

fn audit_command(command: AuditCommand) -> ExitCode {
    use tollgate::audit::read;
    let print = |records: Result<Vec<tollgate::audit::AuditRecord>, String>, json: bool| match records {
        Ok(records) => {
            for r in &records {
                if json {
                    println!("{}", serde_json::to_string(r).unwrap_or_default());
                } else {
                    println!("{}", read::format_line(r));
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tollgate: {e}");
            ExitCode::from(2)
        }
    };
    match command {
        AuditCommand::Verify { file } => match read::verify(&file) {
            Ok(report) => {
                println!("ok: {} records in {} file(s), chain intact", report.records, report.files);
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("TAMPERED: {e}");
                ExitCode::from(1)
            }
        },
        AuditCommand::Tail { file, lines, json } => print(read::tail(&file, lines), json),
        AuditCommand::Show { file, session, json } => print(read::by_session(&file, &session), json),
        AuditCommand::Explain { file, session, call, upstream, tool, path, last, json } => {
            use tollgate::commands::explain::{Selector, explain};
            let selector = Selector { session, call, upstream, tool, path, last };
            if selector.session.is_none()
                && selector.upstream.is_none()
                && selector.tool.is_none()
                && selector.path.is_none()
            {
                eprintln!("tollgate: choose calls with --session S [--call N], --upstream U --tool T, or --path P");
                return ExitCode::from(2);
            }
            finish(explain(&file, &selector, json))
        }
    }
}

/// Prints a command's output, or its error (exit 1).
fn finish(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tollgate: {e}");
            ExitCode::from(1)
        }
    }
}

/// The audit log to read: `--audit`, else the config's `audit.file`.
fn audit_file(audit: Option<PathBuf>, config: Option<&std::path::Path>) -> Result<PathBuf, ExitCode> {
    if let Some(path) = audit {
        return Ok(path);
    }
    let Some(config) = config else {
        eprintln!("tollgate: give the audit log with --audit FILE, or the gateway's --config FILE");
        return Err(ExitCode::from(2));
    };
    let config = load(config)?;
    config.audit.resolved_file(&config.base_dir).ok_or_else(|| {
        eprintln!("tollgate: the config has no [audit] file; give the log with --audit FILE");
        ExitCode::from(2)
    })
}

fn usage_command(
    since: &str,
    by: &[tollgate::commands::usage::GroupBy],
    audit: Option<PathBuf>,
    config: Option<&std::path::Path>,
    json: bool,
) -> ExitCode {
    use tollgate::commands::usage;
    let file = match audit_file(audit, config) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let now = tollgate::session::store::now_ms();
    let since = match usage::parse_since(since, now) {
        Ok(ms) => ms,
        Err(e) => {
            eprintln!("tollgate: {e}");
            return ExitCode::from(2);
        }
    };
    finish(usage::summarise(&file, since, now, by).map(|report| {
        if json {
            format!("{}\n", serde_json::to_string_pretty(&report).unwrap_or_default())
        } else {
            usage::render(&report)
        }
    }))
}

fn replay_command(
    id: &str,
    dry_run: bool,
    policy_paths: &[PathBuf],
    audit: Option<PathBuf>,
    config: Option<&std::path::Path>,
    json: bool,
    all: bool,
) -> ExitCode {
    use tollgate::commands::replay;
    if !dry_run {
        eprintln!(
            "tollgate: sessions replay only re-evaluates recorded calls (--dry-run); sending them to upstreams again \
             is not supported (the log keeps only redacted arguments, and re-running writes is not safe)"
        );
        return ExitCode::from(2);
    }
    let file = match audit_file(audit, config) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let policy = if !policy_paths.is_empty() {
        tollgate::commands::policy::load(policy_paths)
    } else if let Some(path) = config {
        let config = match load(path) {
            Ok(c) => c,
            Err(code) => return code,
        };
        match config.policy.resolved_dir(&config.base_dir) {
            Some(dir) => tollgate::policy::Policy::load_dir(&dir),
            None => Ok(tollgate::policy::Policy::annotations_only(config.policy.allow_writes)),
        }
    } else {
        eprintln!("tollgate: give the policy to decide by with --policy DIR, or the gateway's --config FILE");
        return ExitCode::from(2);
    };
    let policy = match policy {
        Ok(p) => p,
        Err(e) => {
            eprintln!("tollgate: invalid policy: {e}");
            return ExitCode::from(2);
        }
    };
    finish(replay::replay(&file, id, &policy).map(|report| {
        if json {
            format!("{}\n", serde_json::to_string_pretty(&report).unwrap_or_default())
        } else {
            replay::render(&report, all)
        }
    }))
}
