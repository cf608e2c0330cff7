//! `platewatch demo`: the whole product on one machine. Starts the server on loopback (SQLite
//! in a temporary directory), creates an administrator and an officer, publishes rules of
//! behaviour and a signed demo hot list holding some of the plates about to be seen, then — as
//! the officer, with a reason code and a case number — signs in, registers the device, syncs
//! the list, scans synthetic vehicle passes (raising alerts), stores and uploads the
//! encounters, runs one audited plate query and verifies the audit chain, saying what happened
//! at each step.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use platewatch_core::hotlist::Query;
use platewatch_core::{Frame, PlateRead, Scanner};
use platewatch_server::{AppState, Config, Repo};
use serde_json::{Value, json};

use crate::ModelArgs;
use crate::device::DeviceArgs;
use crate::field::{Field, ServerArgs};
use crate::hotlist::{HotlistSet, HotlistSource};
use crate::scene::{self, Rng};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of vehicle passes.
    #[arg(long, default_value_t = 5)]
    passes: usize,
    /// Frames per pass (30 fps).
    #[arg(long, default_value_t = 12)]
    frames: usize,
    /// Random seed for the scenes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write the frames as JPEG files into this folder (scan them with
    /// `platewatch scan DIR --sequence 30`).
    #[arg(long, value_name = "DIR")]
    save_frames: Option<PathBuf>,
    /// Print a JSON summary as the last line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArgs,
}

const OFFICER: &str = "ofc.demo";
const LIST: &str = "demo-stolen";
const CASE: &str = "DEMO-2026-001";

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Value> {
    let mut req = http.request(method.clone(), &url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{method} {url}: {status} {body}");
    }
    Ok(body)
}

fn token(v: &Value) -> Result<String> {
    Ok(v["token"]
        .as_str()
        .context("no token in the answer")?
        .to_string())
}

/// A random password (two UUIDs' worth of hex).
fn password() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

struct Server {
    base: String,
    key_b64: String,
    admin: String,
    officer_password: String,
    rules_version: i64,
}

/// Starts the server on 127.0.0.1:0 over SQLite in `dir`, with an admin, rules, an officer
/// and the demo hot list holding `listed` (plus unrelated plates).
async fn start_server(dir: &std::path::Path, listed: &[String], rng: &mut Rng) -> Result<Server> {
    let db = dir.join("server.db");
    let repo = Repo::connect(db.to_str().context("temporary path is not UTF-8")?).await?;
    let admin_password = password();
    let config = Config {
        bootstrap_admin: Some(("admin".into(), admin_password.clone())),
        ..Config::default()
    };
    let state = AppState::new(repo, config);
    let key_b64 = state.signer.public_key_info().public_key;
    platewatch_server::bootstrap(&state).await?;
    let (addr, _task) = platewatch_server::serve_loopback(state).await?;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let admin = token(
        &call(
            &http,
            reqwest::Method::POST,
            format!("{base}/v1/login"),
            None,
            Some(json!({"username": "admin", "password": admin_password})),
        )
        .await?,
    )?;
    let rules = call(
        &http,
        reqwest::Method::PUT,
        format!("{base}/v1/rules"),
        Some(&admin),
        Some(
            json!({"text": "Scan only for an authorised purpose, with a reason code and a case \
                    number. Every query is audited. Verify every alert against the plate image \
                    before acting on it."}),
        ),
    )
    .await?;
    let rules_version = rules["version"].as_i64().context("no rules version")?;
    // The admin acknowledges the new rules too.
    let admin = token(
        &call(
            &http,
            reqwest::Method::POST,
            format!("{base}/v1/login"),
            None,
            Some(json!({"username": "admin", "password": admin_password,
                        "acknowledge_rules_version": rules_version})),
        )
        .await?,
    )?;
    let officer_password = password();
    call(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/users"),
        Some(&admin),
        Some(json!({"username": OFFICER, "password": officer_password, "role": "officer"})),
    )
    .await?;
    let mut file = String::from("plate;category;priority\n");
    for p in listed {
        file.push_str(&format!("{p};stolen;90\n"));
    }
    for _ in 0..200 {
        file.push_str(&format!("{};wanted;70\n", scene::random_plate(rng)));
    }
    let http_raw = http
        .post(format!(
            "{base}/v1/hotlists?list={LIST}&format=delimited&source=agency"
        ))
        .bearer_auth(&admin)
        .body(file)
        .send()
        .await?;
    let status = http_raw.status();
    let published: Value = http_raw.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("publishing the demo hot list: {status} {published}");
    }
    Ok(Server {
        base,
        key_b64,
        admin,
        officer_password,
        rules_version,
    })
}

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    if args.passes == 0 || args.frames == 0 {
        bail!("--passes and --frames must be positive");
    }
    let started = Instant::now();
    let engine = args.model.engine()?;
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut rng = Rng::new(args.seed);
    println!(
        "Platewatch demo: {} synthetic vehicle passes of {} frames (1280x720, 30 fps)",
        args.passes, args.frames
    );
    let pb = crate::progress(args.passes as u64, "rendering");
    let passes: Vec<scene::Pass> = (0..args.passes)
        .map(|_| {
            pb.inc(1);
            scene::vehicle_pass(&mut rng, args.frames, 18.0, 70.0)
        })
        .collect();
    pb.finish_and_clear();
    // Every other pass is a listed vehicle.
    let listed: Vec<String> = passes.iter().step_by(2).map(|p| p.text.clone()).collect();

    let server = rt.block_on(start_server(tmp.path(), &listed, &mut rng))?;
    println!(
        "\n1. server     started on {} (SQLite in a temporary directory); admin and officer {OFFICER} created",
        server.base
    );
    println!(
        "              rules of behaviour v{} published; hot list {LIST:?} published: {} stolen \
         vehicles seen in the passes + 200 other entries, signed with ed25519",
        server.rules_version,
        listed.len()
    );

    println!("\n2. device     signs in as {OFFICER} and starts a session");
    let pw_file = tmp.path().join("officer.password");
    std::fs::write(&pw_file, &server.officer_password)?;
    let server_args = ServerArgs {
        server: Some(server.base.clone()),
        user: Some(OFFICER.into()),
        reason: Some("stolen-vehicle".into()),
        case_number: Some(CASE.into()),
        justification: None,
        on_behalf_of: None,
        acknowledge_rules: Some(server.rules_version),
        password_file: Some(pw_file),
        position: Some("37.7749,-122.4194".into()),
        camera_id: "demo-rear".into(),
        alert_hold_secs: 0,
        device: DeviceArgs {
            device_dir: tmp.path().join("device"),
            hotlist_key: Some(server.key_b64.clone()),
            trust_server_key: false,
        },
    };
    let say = |s: &str| println!("              {s}");
    let mut field = Field::start(&server_args, &say)?;
    let hot = HotlistSet::load(
        &HotlistSource {
            files: Vec::new(),
            store: Some(field.dir.db_path()),
            max_age_hours: 24.0,
            alert_threshold: platewatch_core::hotlist::MatcherConfig::default().alert_threshold,
        },
        true,
    )?
    .context("no hot lists")?;
    println!(
        "              {} hot list entries loaded for matching",
        hot.matcher.len()
    );

    println!("\n3. scan       {} passes as one stream", passes.len());
    let mut scanner = Scanner::new(engine);
    let mut ts = 0u64;
    let mut t = Tally::default();
    if let Some(d) = &args.save_frames {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let mut frame_no = 0usize;
    let scan_pb = crate::progress((passes.len() * args.frames) as u64, "scanning");
    for (p, pass) in passes.iter().enumerate() {
        t.lines.push(format!(
            "           pass {}: rendered plate {}",
            p + 1,
            pass.text
        ));
        let before = t.reads;
        for img in &pass.frames {
            let (w, h) = (img.width() as usize, img.height() as usize);
            let frame = Frame::rgb8(img.as_raw(), w, h, w * 3)?;
            for r in scanner.push(&frame, ts)?.reads {
                t.handle(&hot, &mut field, &r, Some(&pass.text))?;
            }
            ts += 33;
            if let Some(d) = &args.save_frames {
                let path = d.join(format!("frame-{frame_no:05}.jpg"));
                img.save(&path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            frame_no += 1;
            scan_pb.inc(1);
        }
        // A gap between cars ends the pass.
        ts += 3000;
        for r in scanner.push(&blank(), ts)?.reads {
            t.handle(&hot, &mut field, &r, Some(&pass.text))?;
        }
        if t.reads == before {
            t.lines.push("              no read".into());
        }
    }
    for r in scanner.finish() {
        t.handle(&hot, &mut field, &r, None)?;
    }
    let Tally {
        reads,
        exact,
        alerts,
        alerted,
        lines,
    } = t;
    scan_pb.finish_and_clear();
    for l in &lines {
        println!("{l}");
    }
    println!(
        "              {} passes, {reads} consensus reads, {exact} exact, {alerts} alert(s)",
        passes.len()
    );

    println!(
        "\n4. upload     encounters (crop encrypted at rest on the device) through the outbox"
    );
    let report = field.finish(Duration::ZERO, &say)?;

    println!("\n5. query      the officer looks up an alerted plate (audited)");
    let (query, audit) = rt.block_on(query_and_verify(&server, alerted.first()))?;
    let mut query_count = None;
    match (&query, alerted.first()) {
        (Some(q), Some(plate)) => {
            query_count = q["count"].as_u64();
            println!(
                "              POST /v1/queries/plate {plate}, last hour, reason stolen-vehicle, case {CASE}: {} encounter(s); audit row {}",
                q["count"], q["audit_seq"]
            );
        }
        _ => println!("              no alert was raised, so there is no plate to look up"),
    }

    println!("\n6. audit      the server's hash-chained audit log");
    let intact = audit["intact"].as_bool().unwrap_or(false);
    println!(
        "              {} rows, chain {}",
        audit["rows"],
        if intact { "intact" } else { "BROKEN" }
    );
    println!(
        "\ndone in {:.1} s: {reads} reads, {alerts} alert(s), {} encounter(s) stored on the device, {} uploaded, {} pending",
        started.elapsed().as_secs_f64(),
        report.stats.encounters,
        report.upload.stored + report.upload.duplicates,
        report.pending
    );
    if args.json {
        println!(
            "{}",
            json!({"passes": passes.len(), "reads": reads, "exact": exact, "alerts": alerts,
                   "encounters": report.stats.encounters,
                   "uploaded": report.upload.stored + report.upload.duplicates,
                   "pending": report.pending, "query_count": query_count,
                   "audit_rows": audit["rows"], "audit_intact": intact,
                   "session_id": report.session_id,
                   "seconds": started.elapsed().as_secs_f64()})
        );
    }
    drop(rt);
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The officer's audited plate query (when a plate alerted) and the admin's chain check.
async fn query_and_verify(
    server: &Server,
    plate: Option<&String>,
) -> Result<(Option<Value>, Value)> {
    let http = reqwest::Client::new();
    let base = &server.base;
    let query =
        match plate {
            Some(plate) => {
                let officer = token(
                    &call(
                        &http,
                        reqwest::Method::POST,
                        format!("{base}/v1/login"),
                        None,
                        Some(
                            json!({"username": OFFICER, "password": server.officer_password,
                                "acknowledge_rules_version": server.rules_version}),
                        ),
                    )
                    .await?,
                )?;
                let now = platewatch_sync::now_ms();
                Some(
                call(
                    &http,
                    reqwest::Method::POST,
                    format!("{base}/v1/queries/plate"),
                    Some(&officer),
                    Some(json!({"plate": plate, "from_ms": now - 3_600_000, "to_ms": now + 60_000,
                                "reason_code": "stolen-vehicle", "case_number": CASE})),
                )
                .await?,
            )
            }
            None => None,
        };
    let audit = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/v1/audit/verify"),
        Some(&server.admin),
        None,
    )
    .await?;
    Ok((query, audit))
}

/// What the scan saw, and the lines describing it.
#[derive(Default)]
struct Tally {
    reads: usize,
    exact: usize,
    alerts: usize,
    alerted: Vec<String>,
    lines: Vec<String>,
}

impl Tally {
    /// Matches a read, stores it as an encounter with its alerts, and describes it.
    fn handle(
        &mut self,
        hot: &HotlistSet,
        field: &mut Field,
        r: &PlateRead,
        truth: Option<&str>,
    ) -> Result<()> {
        self.reads += 1;
        let ok = truth == Some(r.text.as_str());
        self.exact += usize::from(ok);
        let now = crate::hotlist::now_secs();
        let matches = hot.matcher.alerts(
            &Query {
                text: &r.text,
                confidences: &r.char_confidences,
                state: r.state,
                state_confidence: r.state_confidence,
            },
            now,
        );
        field.record(r, &matches)?;
        self.lines.push(format!(
            "              read {:<9} {:<7} confidence {:>5.1}%  frames {:>2}",
            r.text,
            if ok { "exact" } else { "MISREAD" },
            r.confidence * 100.0,
            r.frames,
        ));
        for m in &matches {
            self.alerts += 1;
            if !self.alerted.contains(&r.text) {
                self.alerted.push(r.text.clone());
            }
            self.lines
                .push(format!("              {}", hot.alert_line(&r.text, m, now)));
        }
        Ok(())
    }
}

fn blank() -> Frame<'static> {
    static GRAY: [u8; 64 * 64] = [96; 64 * 64];
    Frame::gray8(&GRAY, 64, 64, 64).expect("static frame is valid")
}
