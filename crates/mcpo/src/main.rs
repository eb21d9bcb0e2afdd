//! `mcpo`: run the whole platform in one process or one of its services
//! alone, apply migrations, or serve the fixture MCP server.

use clap::{Parser, Subcommand};

mod admin;
mod import;
mod up;

#[derive(Debug, Parser)]
#[command(
    name = "mcpo",
    version,
    about = "MCPO: every MCP server as plain, documented REST endpoints"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run registry, executor and publisher in one process (creates the database and applies migrations first).
    Up {
        /// Also register the built-in fixture MCP server as service `demo`.
        #[arg(long)]
        demo: bool,
    },
    /// Run one service alone, exactly as its own binary (`mcpo-registry`,
    /// `mcpo-executor`, `mcpo-publisher`) does: one image can run any of them.
    Serve {
        #[arg(value_enum)]
        service: ServiceName,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Register every server of an `{"mcpServers": {...}}` file through the registry API.
    Import {
        /// The file (as written by mcpo, Claude Desktop, VS Code and other MCP clients).
        file: std::path::PathBuf,
        /// The registry's base URL.
        #[arg(
            long,
            env = "MCPO_REGISTRY_URL",
            default_value = "http://127.0.0.1:8080"
        )]
        registry: String,
        /// An access token or API key with `registry:write` (and
        /// `registry:admin` for stdio entries).
        #[arg(long, env = "MCPO_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Manage API keys directly in the database (bootstrap; the registry API does the same).
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Manage the keys that seal transport secrets.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Serve the fixture MCP server (tests, benchmarks and the demo use it).
    Fixture {
        #[command(subcommand)]
        command: mcpo_fixture::FixtureCommand,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ServiceName {
    Registry,
    Executor,
    Publisher,
}

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Create a key and print it (once) on stdout.
    Create {
        #[arg(long)]
        name: String,
        /// A permission the key carries; repeat for several.
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Print a new key entry (`id:base64`) to put first in MCPO_SECRET_KEYS.
    NewKey {
        #[arg(long, default_value = "k1")]
        id: String,
    },
    /// Seal every stored secret with the first key of MCPO_SECRET_KEYS.
    Reseal,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::Serve { service } = cli.command {
        return serve(service);
    }
    let runtime = match &cli.command {
        Command::Fixture { command } => mcpo_fixture::runtime(command),
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mcpo: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        // Taken above, before a runtime it does not use was built.
        Command::Serve { service } => return serve(service),
        Command::Fixture { command } => runtime.block_on(mcpo_fixture::run(command)),
        Command::Migrate => runtime.block_on(migrate()),
        Command::ApiKey {
            command:
                ApiKeyCommand::Create {
                    name,
                    permissions,
                    expires_in_days,
                },
        } => runtime.block_on(admin::create_api_key(name, permissions, expires_in_days)),
        Command::Secrets {
            command: SecretsCommand::NewKey { id },
        } => admin::new_key(&id),
        Command::Secrets {
            command: SecretsCommand::Reseal,
        } => runtime.block_on(admin::reseal()),
        Command::Import {
            file,
            registry,
            token,
        } => runtime.block_on(import::import(&file, &registry, token.as_deref())),
        // actix's server wants a LocalSet-capable system; run it the way actix_web::main does.
        Command::Up { demo } => {
            actix_web::rt::System::with_tokio_rt(move || runtime).block_on(up::up(demo))
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcpo: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// What each service's own binary runs (`#[actix_web::main]`: an actix
/// system on a one-thread runtime, the HTTP workers on threads of their own).
fn serve(service: ServiceName) -> std::process::ExitCode {
    use mcpo_core::server::run_binary;
    actix_web::rt::System::new().block_on(async move {
        match service {
            ServiceName::Registry => run_binary("mcpo-registry", mcpo_registry::run).await,
            ServiceName::Executor => run_binary("mcpo-executor", mcpo_executor::run).await,
            ServiceName::Publisher => run_binary("mcpo-publisher", mcpo_publisher::run).await,
        }
    })
}

async fn migrate() -> anyhow::Result<()> {
    let settings = mcpo_core::Settings::from_env()?;
    mcpo_core::telemetry::init(settings.log_format);
    mcpo_core::db::create_database_if_missing(&settings.database.url).await?;
    let applied = mcpo_core::db::run_migrations(&settings.database.url).await?;
    println!("{} migration(s) applied", applied.len());
    Ok(())
}
