//! The `authgate` binary: `serve` (the default), `openapi`, `hash` and `ha1`.

use std::path::PathBuf;
use std::process::ExitCode;

use authgate_gateway::{api, state::AppState, Application, Config};
use authgate_onetimekey::{digest, WebUsername};
use clap::{Parser, Subcommand};

// Many small short-lived allocations per request (JSON, headers, replies): mimalloc
// serves them faster than the system allocator and returns memory more readily.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An auth gateway: one-time login keys and one-time password tokens on Redis.
#[derive(Debug, Parser)]
#[command(
    name = "authgate",
    version,
    about = "An auth gateway: one-time login keys and one-time password tokens on Redis."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default). Configured by AUTHGATE_* variables and an optional TOML file.
    #[command(after_help = variables_help())]
    Serve {
        /// Seed the documentation's example users.
        #[arg(long)]
        demo: bool,
        /// A TOML config file; AUTHGATE_* variables override it.
        #[arg(long, env = "AUTHGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the OpenAPI document (JSON).
    Openapi,
    /// Print MD5(key|MD5(user:voximplant.com:password)): what a customer's backend answers a key with.
    Hash {
        /// The one-time login key.
        #[arg(long)]
        key: String,
        /// The user (bare, or user@app.account...).
        #[arg(long)]
        user: String,
        /// The password.
        #[arg(long)]
        password: String,
    },
    /// Print MD5(user:voximplant.com:password), the HA1 a customer's backend stores.
    Ha1 {
        /// The user (bare, or user@app.account...).
        #[arg(long)]
        user: String,
        /// The password.
        #[arg(long)]
        password: String,
    },
}

/// The variables table for `authgate serve --help`, from the settings table.
fn variables_help() -> String {
    let mut out = String::from(
        "Environment variables (they override the config file, whose keys are their names \
         in lower case without AUTHGATE_; docs/configuration.md lists both):\n",
    );
    for s in authgate_gateway::config::SETTINGS {
        out.push_str(&format!(
            "  {:<34} {:<18} {} [{}]\n",
            s.var(),
            s.default_shown().to_string(),
            s.about(),
            s.accepts()
        ));
    }
    out
}

/// The bare user of `user` or `user@app.account...`.
fn bare_user(user: &str) -> String {
    WebUsername::parse(user)
        .map(|u| u.user().to_owned())
        .unwrap_or_else(|_| user.to_owned())
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUTHGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,poem=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM, naming it.
async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "SIGINT",
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
                "SIGTERM"
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<&'static str>();
    tokio::select! {
        name = ctrl_c => name,
        name = term => name,
    }
}

/// The first signal starts a graceful shutdown (see `Application::run_until`),
/// after which the process exits 0; a second one exits at once, with 1.
async fn until_signalled() {
    let name = shutdown_signal().await;
    tracing::info!(
        signal = name,
        "shutting down gracefully; a second signal exits at once"
    );
    tokio::spawn(async {
        let name = shutdown_signal().await;
        tracing::warn!(signal = name, "exiting at once");
        std::process::exit(1);
    });
}

async fn serve(demo_data: bool, config: Option<PathBuf>) -> anyhow::Result<()> {
    let mut config = Config::load(config.as_deref())?;
    init_logs(config.log_format == "json");
    if demo_data {
        // The demo's email integration writes its messages to the log unless a
        // real SMTP server is configured.
        if config.smtp_url.is_none() {
            config.smtp_url = Some(secrecy::SecretString::from("log".to_owned()));
        }
        config
            .email_from
            .get_or_insert_with(|| "authgate demo <no-reply@authgate.invalid>".to_owned());
    }
    let mut app = Application::build(config).await?;
    if demo_data {
        app.seed_demo_data().await?;
    }
    app.announce();
    app.run_until(until_signalled()).await?;
    Ok(())
}

async fn openapi() -> anyhow::Result<()> {
    let (state, _) = AppState::build(&Config::default()).await?;
    print!(
        "{}",
        api::document(&api::service(state)).map_err(anyhow::Error::msg)?
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve {
        demo: false,
        config: None,
    }) {
        Command::Serve { demo, config } => serve(demo, config).await,
        Command::Openapi => openapi().await,
        Command::Hash {
            key,
            user,
            password,
        } => {
            let ha1 = digest::ha1(&bare_user(&user), &password);
            println!("{}", digest::key_response(&key, &ha1));
            Ok(())
        }
        Command::Ha1 { user, password } => {
            println!("{}", digest::ha1(&bare_user(&user), &password));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("authgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
