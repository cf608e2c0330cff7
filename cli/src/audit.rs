//! `platewatch audit verify | export | checkpoints | key` and `platewatch retention run`: operate
//! on the server's database directly (by URL), with the server's audit key files. `verify` exits
//! 2 with the first broken row when the keyed hash chain has been edited, or when it no longer
//! matches the signed checkpoints an auditor kept (`--checkpoints FILE`), or when one of those
//! is forged; `export` writes a time range as CSV or JSON, is itself audited and signs a
//! checkpoint; `checkpoints` writes the stored checkpoints as JSON lines; `key` the public key
//! that verifies them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use platewatch_server::audit::{AuditKeys, Checkpoint, parse_checkpoints, parse_public_key};
use platewatch_server::export::{ExportFormat, Exporter, export, parse_instant};
use platewatch_server::{ChainStatus, Config, Repo};
use serde_json::json;

use crate::serve::{DatabaseArgs, config_from_env, runtime};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the audit log's keyed hash chain; exit 2 (and say where) if any row was edited,
    /// inserted or deleted, or (with `--checkpoints`) if the log no longer matches checkpoints
    /// kept outside the server, or one of them is forged.
    Verify(VerifyArgs),
    /// Write the audit rows of a time range as CSV or JSON (the export is itself audited, then
    /// a checkpoint of the head is signed).
    Export(ExportArgs),
    /// Write the server's signed checkpoints of the audit chain as JSON lines, for auditors
    /// to keep outside the server.
    Checkpoints(CheckpointsArgs),
    /// Write the public key that verifies audit checkpoints (JSON, as `GET /v1/audit/key`).
    Key(KeyArgs),
}

/// The server's audit key files.
#[derive(Debug, Args)]
pub struct AuditKeyArgs {
    /// The audit chain's HMAC key file (default: `PLATEWATCH_AUDIT_KEY_FILE`, else beside the
    /// SQLite file, else `platewatch-audit.key`).
    #[arg(long, value_name = "FILE")]
    audit_key_file: Option<PathBuf>,
    /// The audit checkpoint signing key file (default: `PLATEWATCH_AUDIT_SIGNING_KEY_FILE`,
    /// else beside the SQLite file, else `platewatch-audit-signing.key`).
    #[arg(long, value_name = "FILE")]
    audit_signing_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(flatten)]
    keys: AuditKeyArgs,
    /// Checkpoints kept outside the server: the JSON of `GET /v1/audit/checkpoints`, the output
    /// of `platewatch audit checkpoints` (JSON lines), a JSON export, or a JSON array. Every
    /// signature is checked, then the chain against each of them.
    #[arg(long, value_name = "FILE")]
    checkpoints: Option<PathBuf>,
    /// The public key to check the checkpoints' signatures with (the JSON of
    /// `GET /v1/audit/key` or `platewatch audit key`, or the base64 key alone). Default: the
    /// server's signing key file.
    #[arg(long, value_name = "FILE", requires = "checkpoints")]
    public_key: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(flatten)]
    keys: AuditKeyArgs,
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

#[derive(Debug, Args)]
pub struct CheckpointsArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(flatten)]
    keys: AuditKeyArgs,
    /// Sign a checkpoint of the current head first (after verifying the rows since the last).
    #[arg(long)]
    new: bool,
    /// Only checkpoints signed at or after this instant: Unix ms, YYYY-MM-DD or
    /// YYYY-MM-DDTHH:MM:SSZ.
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Write here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(flatten)]
    keys: AuditKeyArgs,
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
    #[command(flatten)]
    keys: AuditKeyArgs,
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

/// The server's configuration for `db` and `keys`: environment, then flags.
fn config(db: &DatabaseArgs, keys: &AuditKeyArgs) -> Result<Config> {
    let mut c = config_from_env()?;
    c.database_url = db.url()?;
    if let Some(p) = &keys.audit_key_file {
        c.ops.audit_key_file = Some(p.clone());
    }
    if let Some(p) = &keys.audit_signing_key_file {
        c.ops.audit_signing_key_file = Some(p.clone());
    }
    Ok(c)
}

/// The server's audit keys (never new ones: they would not match the log).
fn keys(config: &Config) -> Result<AuditKeys> {
    AuditKeys::load(config).context("cannot read the server's audit keys")
}

/// Opens the existing database (never migrated, never created) with the server's audit keys.
async fn open(db: &DatabaseArgs, key_args: &AuditKeyArgs) -> Result<Repo> {
    let config = config(db, key_args)?;
    let repo = Repo::connect_existing(&config.database_url)
        .await
        .context("cannot open the database (is the URL right, and the server's schema there?)")?;
    Ok(repo.with_audit_keys(keys(&config)?))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn write_out(out: Option<&Path>, text: &str) -> Result<()> {
    match out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// A checkpoint from the file whose signature was refused.
struct Rejected {
    /// 1-based position in the file.
    index: usize,
    seq: i64,
    problem: String,
}

async fn verify(a: &VerifyArgs) -> Result<ExitCode> {
    let repo = open(&a.db, &a.keys).await?;
    let mut kept: Vec<Checkpoint> = Vec::new();
    let mut rejected: Vec<Rejected> = Vec::new();
    if let Some(file) = &a.checkpoints {
        let all = parse_checkpoints(&read(file)?)
            .map_err(|m| anyhow::anyhow!("{}: {m}", file.display()))?;
        let key = match &a.public_key {
            Some(p) => {
                parse_public_key(&read(p)?).map_err(|m| anyhow::anyhow!("{}: {m}", p.display()))?
            }
            None => repo.audit_keys().verifying_key(),
        };
        for (i, cp) in all.into_iter().enumerate() {
            match cp.verify(&key) {
                Ok(()) => kept.push(cp),
                Err(e) => rejected.push(Rejected {
                    index: i + 1,
                    seq: cp.seq,
                    problem: e.to_string(),
                }),
            }
        }
    }
    let status = repo
        .verify_chain_against(&kept)
        .await
        .context("cannot read the audit log")?;
    for r in &rejected {
        eprintln!(
            "CHECKPOINT REJECTED: checkpoint {} (row {}): {}",
            r.index, r.seq, r.problem
        );
    }
    let newest = kept.iter().map(|c| c.seq).max();
    let rejected_json: Vec<_> = rejected
        .iter()
        .map(|r| json!({ "index": r.index, "seq": r.seq, "problem": r.problem }))
        .collect();
    let with_checkpoints = a.checkpoints.is_some();
    Ok(match status {
        ChainStatus::Intact { rows } => {
            if a.json {
                let mut v = json!({ "intact": rejected.is_empty(), "rows": rows });
                if with_checkpoints {
                    v["checkpoints"] = json!(kept.len());
                    v["newest_checkpoint_seq"] = json!(newest);
                    v["rejected_checkpoints"] = json!(rejected_json);
                }
                println!("{v}");
            } else {
                let mut line = format!("audit log intact: {rows} rows, every hash verified");
                if let Some(seq) = newest {
                    line.push_str(&format!(
                        "; {} signed checkpoints (the newest at row {seq}) match",
                        kept.len()
                    ));
                }
                println!("{line}");
            }
            if rejected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        ChainStatus::Broken { seq, problem } => {
            if a.json {
                let mut v = json!({ "intact": false, "broken_at_seq": seq, "problem": problem });
                if with_checkpoints {
                    v["checkpoints"] = json!(kept.len());
                    v["rejected_checkpoints"] = json!(rejected_json);
                }
                println!("{v}");
            }
            eprintln!("AUDIT LOG BROKEN at row {seq}: {problem}");
            ExitCode::from(2)
        }
    })
}

pub fn run(cmd: AuditCommand) -> Result<ExitCode> {
    let rt = runtime()?;
    match cmd {
        AuditCommand::Verify(a) => rt.block_on(verify(&a)),
        AuditCommand::Export(a) => rt.block_on(async {
            let from = parse_instant(&a.from).map_err(|m| anyhow::anyhow!("--from: {m}"))?;
            let to = parse_instant(&a.to).map_err(|m| anyhow::anyhow!("--to: {m}"))?;
            let Some(format) = ExportFormat::parse(&a.format) else {
                bail!("--format must be csv or json");
            };
            let repo = open(&a.db, &a.keys).await?;
            let who = Exporter {
                user_id: None,
                username: actor(),
                client: Some("platewatch audit export".into()),
            };
            let done = export(&repo, from, to, format, who)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            write_out(a.out.as_deref(), &done.body)?;
            eprintln!("exported {} audit rows", done.count);
            match &done.checkpoint {
                Some(cp) => eprintln!(
                    "signed a checkpoint at row {} (keep it outside the server: `platewatch \
                     audit checkpoints`)",
                    cp.seq
                ),
                None => eprintln!(
                    "AUDIT LOG BROKEN: no checkpoint was signed (see `platewatch audit verify`)"
                ),
            }
            Ok(ExitCode::SUCCESS)
        }),
        AuditCommand::Checkpoints(a) => rt.block_on(async {
            let since = match &a.since {
                Some(s) => parse_instant(s).map_err(|m| anyhow::anyhow!("--since: {m}"))?,
                None => i64::MIN,
            };
            let repo = open(&a.db, &a.keys).await?;
            if a.new {
                let cp = repo
                    .sign_checkpoint(platewatch_server::now_ms())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                eprintln!("signed a checkpoint at row {}", cp.seq);
            }
            let all = repo
                .audit_checkpoints(since, usize::MAX)
                .await
                .context("cannot read the checkpoints")?;
            let mut text = String::new();
            for cp in &all {
                text.push_str(&serde_json::to_string(cp)?);
                text.push('\n');
            }
            write_out(a.out.as_deref(), &text)?;
            eprintln!(
                "{} checkpoints (key id {})",
                all.len(),
                repo.audit_keys().key_id()
            );
            Ok(ExitCode::SUCCESS)
        }),
        AuditCommand::Key(a) => {
            let keys = keys(&config(&a.db, &a.keys)?)?;
            let mut text = serde_json::to_string(&keys.public_key_info())?;
            text.push('\n');
            write_out(a.out.as_deref(), &text)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn run_retention(cmd: RetentionCommand) -> Result<ExitCode> {
    let RetentionCommand::Run(a) = cmd;
    let config = config(&a.db, &a.keys)?;
    let days = a.days.unwrap_or(config.ops.retention_days);
    if days == 0 {
        bail!("--days must be positive");
    }
    runtime()?.block_on(async {
        let repo = Repo::connect(&config.database_url)
            .await
            .context("cannot open the database")?
            .with_audit_keys(keys(&config)?);
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
