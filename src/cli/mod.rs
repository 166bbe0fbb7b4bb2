//! The `hsm-otp` command line: one typed tree of subcommands (clap derive).
//!
//! Every admin command takes `--json` for machine-readable output. Errors go to standard
//! error and set a non-zero exit code; they never include a secret.

mod channel;
mod dev;
mod token;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError};
use crate::startup::{Application, StartupError};

pub use channel::ChannelCommand;
pub use dev::DevArgs;
pub use token::TokenCommand;

/// hsm-otp: OATH (HOTP/TOTP) verification with every seed and key inside a PKCS#11 HSM.
#[derive(Debug, Parser)]
#[command(name = "hsm-otp", version, about)]
pub struct Cli {
    /// Configuration file (TOML); `HSM_OTP_*` environment variables override it.
    #[arg(long, global = true, env = "HSM_OTP_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (mTLS) and the metrics listener.
    Serve,
    /// Apply pending database migrations.
    Migrate {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Set up a ready local environment (SoftHSM token, dev PKI, database, demo channel)
    /// and serve it.
    Dev(DevArgs),
    /// Manage channels (calling applications) and their keys.
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Manage a channel's message templates.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Manage tokens in bulk (seed file import).
    #[command(subcommand)]
    Token(TokenCommand),
}

/// Template administration.
#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Store a template for a channel and print its `ref_id`. The text must contain `{otp}`;
    /// `{app}` and `{minutes}` are filled in too.
    Create {
        /// The channel.
        #[arg(long)]
        channel: String,
        /// Language tag, such as `en_US`.
        #[arg(long)]
        lang: String,
        /// The text.
        #[arg(long)]
        text: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// A command's failure, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad configuration or arguments (exit 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Startup failed (exit 1).
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// A use case failed (exit 1).
    #[error(transparent)]
    Service(#[from] crate::service::Error),
    /// Anything else (exit 1).
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Config(_) | Self::Startup(StartupError::Config(_)) => 2,
            _ => 1,
        }
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve => {
            let config = Config::load(cli.config.as_deref())?;
            crate::telemetry::init(&config.log_level, &config.log_format);
            serve(&config)
        }
        Command::Migrate { json } => {
            let database_url = Config::database_url(cli.config.as_deref())?;
            crate::telemetry::init("warn", "text");
            let applied = crate::store::migrate::run(database_url.expose())
                .map_err(|e| CliError::Other(e.to_string()))?;
            if json {
                println!("{}", serde_json::json!({ "applied": applied }));
            } else if applied.is_empty() {
                println!("database is up to date");
            } else {
                for version in applied {
                    println!("applied {version}");
                }
            }
            Ok(())
        }
        Command::Dev(args) => dev::run(args, cli.config.as_deref()),
        Command::Token(command) => {
            let config = Config::load(cli.config.as_deref())?;
            crate::telemetry::init("warn", &config.log_format);
            token::run(command, &config)
        }
        Command::Channel(command) => {
            let config = Config::load(cli.config.as_deref())?;
            crate::telemetry::init("warn", &config.log_format);
            channel::run(command, &config)
        }
        Command::Template(TemplateCommand::Create {
            channel,
            lang,
            text,
            json,
        }) => {
            let config = Config::load(cli.config.as_deref())?;
            crate::telemetry::init("warn", &config.log_format);
            let services = crate::startup::services(&config)?;
            services
                .ensure_keys()
                .map_err(|e| CliError::Other(e.to_string()))?;
            let ref_id = services.create_template(&channel, &lang, &text)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ref_id": ref_id, "channel": channel, "lang": lang})
                );
            } else {
                println!("created template {ref_id}");
            }
            Ok(())
        }
    }
}

/// Builds the application and serves until stopped.
pub fn serve(config: &Config) -> Result<(), CliError> {
    actix_web::rt::System::new().block_on(async {
        let app = Application::build(config)?;
        let (api, metrics) = (app.api_addr(), app.metrics_addr());
        tracing::info!(%api, %metrics, "listening");
        // One line on standard output that scripts (and the tests) can read.
        println!(
            "{}",
            serde_json::json!({"event": "listening", "api": api, "metrics": metrics})
        );
        app.run_until_stopped()
            .await
            .map_err(|e| CliError::Other(e.to_string()))
    })
}
