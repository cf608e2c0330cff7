//! `platewatch serve`: runs the backend server. With no flags or environment it serves HTTP on
//! 127.0.0.1:8080 from a local SQLite file; `--tls-cert` + `--tls-key` switch it to HTTPS only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use platewatch_server::Config;

/// Database options shared by the server subcommands.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `sqlite://FILE`, a SQLite path or `postgres://…` (default: `PLATEWATCH_DATABASE_URL`,
    /// else `sqlite://platewatch-server.db`).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

impl DatabaseArgs {
    pub fn url(&self) -> Result<String> {
        Ok(match &self.database_url {
            Some(u) => u.clone(),
            None => config_from_env()?.database_url,
        })
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// Address to listen on (default: `PLATEWATCH_LISTEN`, else 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// PEM certificate chain; with `--tls-key` the server speaks HTTPS only.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for `--tls-cert`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Hot list signing key file (base64 ed25519 seed; created when missing; default: beside
    /// the SQLite file).
    #[arg(long, value_name = "FILE")]
    hotlist_key_file: Option<PathBuf>,
    /// Days encounters are kept unless their case is on hold (default 730).
    #[arg(long, value_name = "DAYS")]
    retention_days: Option<u32>,
}

/// `Config::from_env` with the error made readable.
pub fn config_from_env() -> Result<Config> {
    Config::from_env().map_err(|e| anyhow::anyhow!("{e}"))
}

/// The configuration `serve` runs with: environment, then flags.
pub fn config(a: &ServeArgs) -> Result<Config> {
    let mut c = config_from_env()?;
    if let Some(u) = &a.db.database_url {
        c.database_url = u.clone();
    }
    if let Some(l) = a.listen {
        c.listen = l;
    }
    if a.tls_cert.is_some() {
        c.ops.tls_cert = a.tls_cert.clone();
        c.ops.tls_key = a.tls_key.clone();
    }
    if let Some(k) = &a.hotlist_key_file {
        c.ops.hotlist_key_file = Some(k.clone());
    }
    if let Some(d) = a.retention_days {
        c.ops.retention_days = d;
    }
    if c.ops.validate().is_err() {
        bail!(
            "invalid settings: --retention-days must be positive; TLS needs both a certificate and a key"
        );
    }
    Ok(c)
}

/// A multi-threaded runtime for the server commands.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run(a: ServeArgs) -> Result<ExitCode> {
    let config = config(&a)?;
    // The certificate and key are checked before anything says it serves HTTPS.
    let scheme = match (&config.ops.tls_cert, &config.ops.tls_key) {
        (Some(cert), Some(key)) => {
            platewatch_server::tls::server_config(cert, key).context("cannot serve HTTPS")?;
            "https"
        }
        _ => "http",
    };
    eprintln!(
        "platewatch: serving {scheme}://{} ({} database)",
        config.listen,
        config.database_url.split(':').next().unwrap_or("sqlite")
    );
    runtime()?
        .block_on(platewatch_server::serve(config))
        .context("the server stopped")?;
    Ok(ExitCode::SUCCESS)
}
