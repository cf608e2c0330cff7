//! `platewatch bench sync`: the device side of the encounter pipeline. Stores N encounters
//! with real evidence images (PNG plate crop + JPEG context trimmed to the vehicle, from
//! generated street scenes) in the device store, one transaction each as a scanning device
//! does, then uploads them through the outbox to the real server on loopback (SQLite) and
//! purges them. Prints encounters per second for each step.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use platewatch_core::encounter::{ContextPolicy, Encounter, context_crop};
use platewatch_core::imgproc::Sampler;
use platewatch_core::session::{GpsFix, Session, SessionRequest};
use platewatch_core::{BBox, Frame, GrayImage, PlateRead, Quad};
use platewatch_server::{AppState, Config, Repo};
use platewatch_store::{EncounterStore, Evidence, ImageKey, Store};
use platewatch_sync::{ClientConfig, Uploader, UploaderConfig, now_ms};
use serde_json::{Value, json};

use crate::scene::{self, Placement, Rng};

#[derive(Debug, Args)]
pub struct SyncBenchArgs {
    /// Encounters stored and uploaded.
    #[arg(long, default_value_t = 20_000)]
    n: usize,
    /// Encounters per upload request (the server accepts up to 500).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Keep image blobs in the clear (default: encrypted at rest with ChaCha20-Poly1305).
    #[arg(long)]
    no_encrypt: bool,
    /// Print a JSON object with the figures as the last line.
    #[arg(long)]
    json: bool,
}

/// Distinct evidence images cycled through (generated scenes, encoded once).
const SCENES: usize = 24;
const PASSWORD: &str = "bench-password-123";

fn gray_of(img: &image::RgbImage) -> Vec<u8> {
    img.pixels()
        .map(|p| {
            ((77 * u32::from(p[0]) + 150 * u32::from(p[1]) + 29 * u32::from(p[2]) + 128) >> 8) as u8
        })
        .collect()
}

/// Evidence from generated 1280x720 scenes: the plate crop and its vehicle context.
/// A generated read: plate text, its box in the frame, its encoded evidence.
type SceneRead = (String, BBox, Evidence);

fn scene_evidence(rng: &mut Rng) -> Result<(Vec<SceneRead>, f64)> {
    let mut out = Vec::with_capacity(SCENES);
    let mut encode_ms = 0.0;
    for _ in 0..SCENES {
        let text = scene::random_plate(rng);
        let plate = scene::render_plate(&text, rng);
        let bg = scene::background(1280, 720, rng);
        let place = Placement {
            plate: &plate,
            cx: rng.range(300.0, 980.0),
            cy: rng.range(380.0, 600.0),
            height: rng.range(28.0, 60.0),
            car_colour: [
                rng.range(20.0, 230.0) as u8,
                90,
                rng.range(20.0, 230.0) as u8,
            ],
        };
        let (img, boxes) = scene::compose(&bg, &[place]);
        let [x, y, w, h] = boxes[0];
        let bbox = BBox::new(x, y, w, h);
        let luma = gray_of(&img);
        let frame = Frame::gray8(&luma, 1280, 720, 1280)?;
        let t = Instant::now();
        let crop: GrayImage = Sampler::new(frame.luma(), frame.rotation()).crop(&bbox);
        let context = context_crop(&frame, &bbox, ContextPolicy::default());
        let evidence = Evidence::encode(&crop, Some(&context))?;
        encode_ms += t.elapsed().as_secs_f64() * 1000.0;
        let text: String = text.chars().filter(char::is_ascii_alphanumeric).collect();
        out.push((text, bbox, evidence));
    }
    Ok((out, encode_ms / SCENES as f64))
}

async fn post(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> Result<Value> {
    let mut req = http.post(&url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.context("answer is not JSON")?;
    if !status.is_success() {
        bail!("POST {url}: {status} {body}");
    }
    Ok(body)
}

/// Starts the server on a SQLite file in `dir`; returns its URL, an officer's device token and
/// the task serving it.
async fn start_server(
    dir: &std::path::Path,
) -> Result<(String, String, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let path = dir.join("server.db");
    let repo = Repo::connect(path.to_str().context("temp path is not UTF-8")?).await?;
    let config = Config {
        bootstrap_admin: Some(("admin".into(), PASSWORD.into())),
        ..Config::default()
    };
    let state = AppState::new(repo, config);
    platewatch_server::bootstrap(&state).await?;
    let (addr, task) = platewatch_server::serve_loopback(state).await?;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let login = |u: &str| json!({"username": u, "password": PASSWORD});
    let admin = post(&http, format!("{base}/v1/login"), None, login("admin")).await?;
    let admin = admin["token"].as_str().context("no token")?.to_string();
    post(
        &http,
        format!("{base}/v1/users"),
        Some(&admin),
        json!({"username": "ofc.bench", "password": PASSWORD, "role": "officer"}),
    )
    .await?;
    let officer = post(&http, format!("{base}/v1/login"), None, login("ofc.bench")).await?;
    let officer = officer["token"].as_str().context("no token")?.to_string();
    let device = post(
        &http,
        format!("{base}/v1/devices"),
        Some(&officer),
        json!({"name": "bench device"}),
    )
    .await?;
    let token = device["token"]
        .as_str()
        .context("no device token")?
        .to_string();
    Ok((base, token, task))
}

async fn run_async(a: SyncBenchArgs) -> Result<ExitCode> {
    if a.n == 0 || a.batch == 0 || a.batch > 500 {
        bail!("--n must be positive and --batch 1..=500");
    }
    let dir = tempfile::tempdir()?;
    let (base, token, server) = start_server(dir.path()).await?;
    let mut rng = Rng::new(7);
    let (scenes, encode_ms) = scene_evidence(&mut rng)?;

    let mut enc = EncounterStore::new(Store::open(&dir.path().join("device.db")).await?);
    if !a.no_encrypt {
        let key: [u8; 32] = std::array::from_fn(|i| (rng.next_u64() >> (i % 8)) as u8);
        enc = enc.with_image_key(ImageKey::from_bytes(key));
    }
    let mut session = Session::start(
        uuid::Uuid::new_v4(),
        &SessionRequest {
            user: "ofc.bench".into(),
            on_behalf_of: None,
            reason_code: "patrol".into(),
            case_number: Some("BENCH-1".into()),
            justification: None,
            device_id: "bench-device".into(),
        },
        &Config::default().reason_codes,
        now_ms(),
    )?;
    session.record_fix(GpsFix::new(37.7749, -122.4194, Some(5.0), now_ms())?)?;
    enc.save_session(&session).await?;
    let client = platewatch_sync::ServerClient::new(&ClientConfig::new(&base, &token))?;
    platewatch_sync::account::start_session(&client, &session).await?;

    // Build the encounters first: the timed part is the store.
    let encounters: Vec<Encounter> = (0..a.n)
        .map(|i| {
            let (text, bbox, _) = &scenes[i % SCENES];
            let read = PlateRead {
                track_id: i as u64,
                text: text.clone(),
                char_confidences: vec![0.9; text.len()],
                confidence: 0.9,
                state: Some("CA"),
                state_confidence: 0.7,
                region: None,
                region_confidence: 0.0,
                bbox: *bbox,
                quad: Quad::from_bbox(bbox),
                first_seen_ms: 0,
                last_seen_ms: 200,
                frames: 5,
                crop: GrayImage::default(),
                context: None,
            };
            Encounter::from_read(
                uuid::Uuid::new_v4(),
                &read,
                &session,
                "rear",
                now_ms(),
                None,
                &[],
            )
        })
        .collect::<Result<_, _>>()?;
    let pb = crate::progress(a.n as u64, "storing");
    let t = Instant::now();
    for (i, e) in encounters.iter().enumerate() {
        enc.record(e, &scenes[i % SCENES].2, &[], now_ms()).await?;
        pb.inc(1);
    }
    let store_s = t.elapsed().as_secs_f64();
    pb.finish_and_clear();

    let mut config = UploaderConfig::new(ClientConfig::new(base, token));
    config.batch_rows = a.batch;
    config.purge_grace = Duration::ZERO;
    let up = Uploader::new(enc.clone(), config)?;
    let t = Instant::now();
    let totals = up.drain().await?;
    let upload_s = t.elapsed().as_secs_f64();
    if totals.stored != a.n {
        bail!(
            "the server stored {} of {} encounters ({} failed requests)",
            totals.stored,
            a.n,
            totals.failures
        );
    }
    let t = Instant::now();
    let purged = up.purge(now_ms()).await?;
    let purge_s = t.elapsed().as_secs_f64();
    server.abort();

    let crop_bytes = scenes.iter().map(|s| s.2.crop.bytes.len()).sum::<usize>() / SCENES;
    let context_bytes = scenes
        .iter()
        .map(|s| s.2.context.as_ref().map_or(0, |c| c.bytes.len()))
        .sum::<usize>()
        / SCENES;
    let store_per_s = a.n as f64 / store_s;
    let upload_per_s = a.n as f64 / upload_s;
    println!(
        "encounters           {} (crop PNG ~{} B, context JPEG ~{} B, {})",
        a.n,
        crop_bytes,
        context_bytes,
        if a.no_encrypt {
            "blobs in the clear"
        } else {
            "blobs encrypted"
        }
    );
    println!("encode evidence      {encode_ms:.2} ms per encounter (crop + context)");
    println!(
        "store                {store_per_s:.0} encounters/s (one transaction each; goal 1,000)"
    );
    println!(
        "upload               {upload_per_s:.0} encounters/s over loopback, {} requests of up to {} (goal 2,000)",
        totals.requests, a.batch
    );
    println!(
        "purge                {purged} rows in {:.0} ms",
        purge_s * 1000.0
    );
    if a.json {
        println!(
            "{}",
            json!({"store_per_s": store_per_s, "upload_per_s": upload_per_s, "n": a.n,
                   "batch": a.batch, "encrypted": !a.no_encrypt, "crop_bytes": crop_bytes,
                   "context_bytes": context_bytes, "encode_ms": encode_ms,
                   "purge_ms": purge_s * 1000.0})
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(a: SyncBenchArgs) -> Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(run_async(a))
}
