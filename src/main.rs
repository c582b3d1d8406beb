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
        /// The upstream server's command and arguments.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Validate a config file and exit.
    CheckConfig { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tollgate::telemetry::init();
    match try_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tollgate: {e:#}");
            ExitCode::from(1)
        }
    }
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
            println!("{}: ok ({} upstreams)", file.display(), config.upstreams.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { config, listen } => {
            let mut config = match load(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            if let Some(addr) = listen {
                config.server.listen = addr;
            }
            runtime.block_on(tollgate::gateway::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stdio { config, policy, allow_writes, command } => {
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
            if command.is_empty() && config.upstreams.is_empty() {
                eprintln!("tollgate: usage: tollgate stdio [--config FILE] -- COMMAND [ARGS...]");
                return Ok(ExitCode::from(2));
            }
            runtime.block_on(tollgate::gateway::stdio(config, command))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
