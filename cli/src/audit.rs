//! `platewatch audit verify | export` and `platewatch retention run`: operate on the server's
//! database directly (by URL). `verify` exits 2 with the first broken row when the hash chain
//! has been edited; `export` writes a time range as CSV or JSON and is itself audited.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use platewatch_server::export::{ExportFormat, Exporter, export, parse_instant};
use platewatch_server::{ChainStatus, Repo};

use crate::serve::{DatabaseArgs, config_from_env, runtime};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the audit log's hash chain; exit 2 (and say where) if any row was edited, inserted
    /// or deleted.
    Verify(VerifyArgs),
    /// Write the audit rows of a time range as CSV or JSON (the export is itself audited).
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// Start (inclusive): Unix ms, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ.
    #[arg(long)]
    from: String,
    /// End (exclusive), same forms.
    #[arg(long)]
    to: String,
    /// csv or json.
    #[arg(long, default_value = "csv")]
    format: String,
    /// Write here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Delete encounters older than the retention period unless their case is on hold, once.
    Run(RetentionArgs),
}

#[derive(Debug, Args)]
pub struct RetentionArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// Days to keep (default: `PLATEWATCH_RETENTION_DAYS`, else 730).
    #[arg(long)]
    days: Option<u32>,
    #[arg(long)]
    json: bool,
}

/// Who runs a command-line operation, for the audit log.
fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{}", user.chars().take(64).collect::<String>())
}

async fn open(db: &DatabaseArgs) -> Result<Repo> {
    let url = db.url()?;
    Repo::connect_existing(&url)
        .await
        .context("cannot open the database (is the URL right, and the server's schema there?)")
}

pub fn run(cmd: AuditCommand) -> Result<ExitCode> {
    let rt = runtime()?;
    match cmd {
        AuditCommand::Verify(a) => rt.block_on(async {
            let repo = open(&a.db).await?;
            let status = repo
                .verify_chain()
                .await
                .context("cannot read the audit log")?;
            Ok(match status {
                ChainStatus::Intact { rows } => {
                    if a.json {
                        println!("{}", serde_json::json!({ "intact": true, "rows": rows }));
                    } else {
                        println!("audit log intact: {rows} rows, every hash verified");
                    }
                    ExitCode::SUCCESS
                }
                ChainStatus::Broken { seq, problem } => {
                    if a.json {
                        println!(
                            "{}",
                            serde_json::json!({ "intact": false, "broken_at_seq": seq, "problem": problem })
                        );
                    }
                    eprintln!("AUDIT LOG BROKEN at row {seq}: {problem}");
                    ExitCode::from(2)
                }
            })
        }),
        AuditCommand::Export(a) => rt.block_on(async {
            let from = parse_instant(&a.from).map_err(|m| anyhow::anyhow!("--from: {m}"))?;
            let to = parse_instant(&a.to).map_err(|m| anyhow::anyhow!("--to: {m}"))?;
            let Some(format) = ExportFormat::parse(&a.format) else {
                bail!("--format must be csv or json");
            };
            let repo = open(&a.db).await?;
            let who = Exporter {
                user_id: None,
                username: actor(),
                client: Some("platewatch audit export".into()),
            };
            let (body, count) = export(&repo, from, to, format, who)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            match &a.out {
                Some(p) => std::fs::write(p, body)
                    .with_context(|| format!("cannot write {}", p.display()))?,
                None => print!("{body}"),
            }
            eprintln!("exported {count} audit rows");
            Ok(ExitCode::SUCCESS)
        }),
    }
}

pub fn run_retention(cmd: RetentionCommand) -> Result<ExitCode> {
    let RetentionCommand::Run(a) = cmd;
    let days = match a.days {
        Some(d) => d,
        None => config_from_env()?.ops.retention_days,
    };
    if days == 0 {
        bail!("--days must be positive");
    }
    let url = a.db.url()?;
    runtime()?.block_on(async {
        let repo = Repo::connect(&url)
            .await
            .context("cannot open the database")?;
        let r = platewatch_server::retention::run_once(
            &repo,
            days,
            platewatch_server::now_ms(),
            &actor(),
        )
        .await
        .context("retention failed")?;
        if a.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "retention ({} days): deleted {} encounters, kept {} on case hold",
                r.retention_days, r.deleted, r.held
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
