//! `platewatch alerts`: the officer's review of the device's alerts on the terminal: those
//! waiting for a disposition and recent decided or uploaded ones, and `accept`, `reject` and
//! `correct` (a misread) by id or unique id prefix. The terminal shows the plates (it is the
//! officer's screen); error messages never carry plate text.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use platewatch_core::encounter::{Decision, Disposition};
use platewatch_store::{AlertView, StoreError, UploadState};
use platewatch_sync::now_ms;
use serde_json::json;

use crate::device::{DeviceDir, fmt_time_ms};

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    action: Option<AlertAction>,
    /// Device directory.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "platewatch-device",
        global = true
    )]
    device_dir: PathBuf,
    /// Print one JSON object.
    #[arg(long, global = true)]
    json: bool,
    /// How many decided or uploaded alerts to list after the waiting ones (newest first).
    #[arg(long, value_name = "N", default_value_t = 20)]
    recent: usize,
}

#[derive(Debug, Subcommand)]
pub enum AlertAction {
    /// The plate on the crop is the listed one: confirm the alert.
    Accept {
        /// Alert id (the encounter's id, or a unique prefix of it as listed).
        id: String,
    },
    /// Not a hit: reject the alert, with the reason.
    Reject {
        id: String,
        /// Why the alert is rejected (required).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// The engine misread the plate: reject the alert as a misread, keeping the officer's
    /// reading of the plate (uploaded tagged `misread_corrected`).
    Correct {
        id: String,
        /// The plate as read on the crop.
        plate: String,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run(a: AlertsArgs) -> Result<ExitCode> {
    runtime()?.block_on(run_async(a))
}

/// The short id shown on the terminal (a unique prefix is accepted back).
fn short(a: &AlertView) -> String {
    a.id.simple().to_string()[..8].to_string()
}

/// The alert named by `id`: the full id or a unique prefix (hyphens and case ignored). Errors
/// never repeat what was typed (it could be a plate typed in the wrong place).
fn find<'a>(alerts: &'a [AlertView], id: &str) -> Result<&'a AlertView> {
    let want: String = id
        .trim()
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    if want.len() < 4 || !want.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!(
            "that is not an alert id: give the id `platewatch alerts` lists (at least 4 hex digits)"
        );
    }
    let hits: Vec<&AlertView> = alerts
        .iter()
        .filter(|a| a.id.simple().to_string().starts_with(&want))
        .collect();
    match hits.as_slice() {
        [one] => Ok(one),
        [] => bail!(
            "no alert with that id on this device (alerts leave the device once uploaded and \
             purged; `platewatch alerts` lists those still here)"
        ),
        many => bail!(
            "that id is ambiguous ({} alerts start with it): give more of it",
            many.len()
        ),
    }
}

fn describe(d: &Disposition) -> String {
    match (d.decision, &d.corrected_plate) {
        (Decision::Accepted, _) => "accepted".into(),
        (Decision::Rejected, Some(c)) => format!("corrected to {c} (misread)"),
        (Decision::Rejected, None) => {
            format!("rejected: {}", d.reason.as_deref().unwrap_or_default())
        }
    }
}

fn upload_state(u: UploadState) -> &'static str {
    match u {
        UploadState::Pending => "on the device",
        UploadState::Acked => "uploaded",
        UploadState::Rejected => "refused by the server",
    }
}

fn print_alert(a: &AlertView) {
    println!(
        "{}  {}  {:<10} {:<3} {:>5.1}%  {}",
        short(a),
        fmt_time_ms(a.captured_at_ms),
        a.plate,
        a.state.as_deref().unwrap_or("--"),
        a.confidence * 100.0,
        match &a.disposition {
            Some(d) => format!("{}, {}", describe(d), upload_state(a.upload)),
            None if a.upload == UploadState::Pending => "WAITING for a disposition".into(),
            None => format!("{} without a disposition", upload_state(a.upload)),
        }
    );
    for m in &a.matches {
        println!(
            "          list {:<16} priority {:>3}  {:<18} {:<10} score {:.2}  listed {}{}{}",
            m.list.as_deref().unwrap_or("(removed)"),
            m.priority
                .map_or_else(|| "-".to_string(), |p| p.to_string()),
            m.category.as_deref().unwrap_or("-"),
            m.kind,
            m.score,
            m.entry_plate.as_deref().unwrap_or("(removed)"),
            m.entry_state
                .as_deref()
                .map(|s| format!(" {s}"))
                .unwrap_or_default(),
            if m.retro { "  RETRO-HIT" } else { "" }
        );
    }
}

async fn run_async(a: AlertsArgs) -> Result<ExitCode> {
    let mut dir = DeviceDir::open_existing(&a.device_dir)?;
    let (_, enc) = dir.stores().await?;
    let alerts = enc.alerts().await?;
    let Some(action) = &a.action else {
        let (mut waiting, mut recent): (Vec<&AlertView>, Vec<&AlertView>) =
            alerts.iter().partition(|x| x.waiting());
        waiting.sort_by_key(|x| x.captured_at_ms);
        recent.sort_by_key(|x| {
            std::cmp::Reverse(
                x.disposition
                    .as_ref()
                    .map_or(x.captured_at_ms, |d| d.decided_at_ms),
            )
        });
        recent.truncate(a.recent);
        if a.json {
            println!("{}", json!({ "waiting": waiting, "recent": recent }));
            return Ok(ExitCode::SUCCESS);
        }
        if waiting.is_empty() {
            println!("no alert waiting for a disposition");
        } else {
            println!("{} alert(s) waiting for a disposition:", waiting.len());
            for x in &waiting {
                print_alert(x);
            }
        }
        if !recent.is_empty() {
            println!("recent:");
            for x in &recent {
                print_alert(x);
            }
        }
        if !waiting.is_empty() {
            println!(
                "decide with `platewatch alerts accept ID`, `reject ID --reason TEXT` or `correct ID PLATE`"
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let now = now_ms();
    let (id, disposition) = match action {
        AlertAction::Accept { id } => (id, Disposition::accept(now)),
        AlertAction::Reject { id, reason } => {
            (id, Disposition::reject(reason, now).context("--reason")?)
        }
        AlertAction::Correct { id, plate } => (
            id,
            Disposition::misread(plate, now).context("the corrected plate")?,
        ),
    };
    let alert = find(&alerts, id)?;
    match alert.upload {
        UploadState::Pending => {}
        UploadState::Acked => bail!(
            "alert {} was already uploaded to the server; its disposition can no longer change",
            short(alert)
        ),
        UploadState::Rejected => bail!(
            "alert {} was refused by the server and is kept on the device as it was; its \
             disposition can no longer change",
            short(alert)
        ),
    }
    match enc.set_disposition(alert.id, &disposition).await {
        Ok(()) => {}
        // Uploaded between the listing and now.
        Err(StoreError::Invalid(_)) => bail!(
            "alert {} was already uploaded to the server; its disposition can no longer change",
            short(alert)
        ),
        Err(StoreError::NotFound(_)) => bail!("alert {} is no longer on this device", short(alert)),
        Err(e) => return Err(e.into()),
    }
    let what = describe(&disposition);
    if a.json {
        println!(
            "{}",
            json!({
                "id": alert.id,
                "decision": disposition.decision,
                "reason": disposition.reason,
                "corrected": disposition.corrected_plate.is_some(),
                "replaced": alert.disposition.is_some(),
            })
        );
    } else {
        println!(
            "alert {} {what}{}; it uploads with the next `platewatch sync`",
            short(alert),
            if alert.disposition.is_some() {
                " (replaces the earlier decision)"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn view(id: u128) -> AlertView {
        AlertView {
            seq: 1,
            id: Uuid::from_u128(id),
            captured_at_ms: 0,
            plate: "ABC123".into(),
            state: None,
            confidence: 0.9,
            upload: UploadState::Pending,
            disposition: None,
            matches: Vec::new(),
        }
    }

    #[test]
    fn ids_resolve_by_unique_prefix() {
        let a = [
            view(0xabcd_0000_0000_0000_0000_0000_0000_0001),
            view(0xabce_0000_0000_0000_0000_0000_0000_0002),
        ];
        assert_eq!(find(&a, "abcd").expect("unique").seq, 1);
        assert_eq!(
            find(&a, &a[1].id.hyphenated().to_string().to_uppercase())
                .expect("full id")
                .id,
            a[1].id
        );
        let e = find(&a, "abc").expect_err("too short").to_string();
        assert!(e.contains("at least 4"), "{e}");
        let e = find(&a, "abcd0000000000000000000000000009")
            .expect_err("unknown")
            .to_string();
        assert!(e.contains("no alert"), "{e}");
        let e = find(&[a[0].clone(), a[0].clone()], "abcd")
            .expect_err("ambiguous")
            .to_string();
        assert!(e.contains("ambiguous"), "{e}");
        // What was typed is never repeated (a plate typed in the wrong place, hex or not).
        let e = find(&a, "7XYZ123").expect_err("not hex").to_string();
        assert!(
            e.contains("not an alert id") && !e.contains("7XYZ123"),
            "{e}"
        );
        let e = find(&a, "7ABC123").expect_err("unknown").to_string();
        assert!(e.contains("no alert") && !e.contains("7ABC123"), "{e}");
    }
}
