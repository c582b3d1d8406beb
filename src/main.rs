//! The `tollgate` command line: parse, then hand over to `gateway`. Exit codes: 0 ok,
//! 1 runtime failure, 2 bad usage or configuration.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tollgate::config::Config;

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
        /// Policy directory or files (default: ./policies).
        #[arg(long = "policy")]
        paths: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
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

fn try_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
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
        Command::Sessions { admin, command } => {
            use tollgate::commands::admin_client::{SessionsAction, sessions};
            let action = match command {
                SessionsCommand::List => SessionsAction::List,
                SessionsCommand::Show { id } => SessionsAction::Show(id),
                SessionsCommand::Pause { id } => SessionsAction::Steer(id, "pause"),
                SessionsCommand::Resume { id } => SessionsAction::Steer(id, "resume"),
                SessionsCommand::Stop { id } => SessionsAction::Steer(id, "stop"),
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
        Command::Stdio { config, policy, allow_writes, audit, command } => {
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
            let telemetry = start_telemetry(&runtime, &config)?;
            let served = runtime.block_on(tollgate::gateway::stdio(config, command, telemetry.metrics()));
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
        PolicyCommand::Explain { tool, upstream, args, read_only_hint, paths } => {
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
            let (_, text) = policy::explain(&policy, &upstream, &tool, read_only_hint, &args);
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
    }
}
