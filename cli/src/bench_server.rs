//! `platewatch bench server`: the backend over real loopback HTTP (reqwest against the axum
//! server on 127.0.0.1:0). Measures the ingest rate (encounters/s through `POST /v1/encounters`
//! batches) on SQLite and PostgreSQL, then bulk-loads the rest of `--encounters` straight into
//! the repository and measures the p95 latency of partial-plate and polygon queries over HTTP.
//!
//! PostgreSQL: `--postgres-url`, else `PLATEWATCH_PG_URL`, else a private server started with
//! `server/scripts/start-test-postgres.sh` (and removed at the end). Each run works in a fresh
//! database (`pwbench_<uuid>`) that it drops afterwards.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use platewatch_server::ingest::Encounter;
use platewatch_server::queries::Criteria;
use platewatch_server::{AppState, Config, Db, Repo};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::scene::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryBackend {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Debug, Args)]
pub struct ServerBenchArgs {
    /// Encounters in the database the queries run over (the ingested ones included).
    #[arg(long, default_value_t = 1_000_000)]
    encounters: usize,
    /// Encounters uploaded over HTTP on each backend to measure the ingest rate.
    #[arg(long, default_value_t = 50_000)]
    ingest: usize,
    /// Encounters per upload batch (the server accepts up to 500).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Concurrent upload connections (a fleet uploads from many devices at once; on SQLite
    /// the uploads that queue while one is written share its transaction, so the rate grows
    /// with concurrency: 4 connections gave about 15k/s where 8 gave 21k/s).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Timed queries of each kind (after a few untimed warm-up queries).
    #[arg(long, default_value_t = 60)]
    queries: usize,
    /// Backend(s) whose query latency is measured; the JSON's `partial_p95_ms` and
    /// `polygon_p95_ms` are PostgreSQL's when it is measured.
    #[arg(long, value_enum, default_value = "both")]
    query_backend: QueryBackend,
    /// A PostgreSQL server where a scratch database may be created (default:
    /// `PLATEWATCH_PG_URL`, else a private server is started).
    #[arg(long, value_name = "URL")]
    postgres_url: Option<String>,
    /// Print the query plans at full size.
    #[arg(long)]
    explain: bool,
    /// Print a JSON object with the figures as the last line.
    #[arg(long)]
    json: bool,
}

/// The metro area the synthetic encounters fall in (about 55 x 53 km) and the 30 days they span.
const LAT: (f64, f64) = (37.5, 38.0);
const LON: (f64, f64) = (-122.6, -122.0);
const SPAN_MS: i64 = 30 * 24 * 3600 * 1000;
const ADMIN_PASSWORD: &str = "bench-admin-password";
const PASSWORD: &str = "bench-user-password";
const SESSION_ID: &str = "5a1d5e0c-0b1e-4c5a-9d7e-3f1b2c4d5e6f";

/// Synthetic encounters: a pool of vehicles, each seen about five times at random places and
/// times in the metro area.
struct Gen {
    rng: Rng,
    plates: Vec<String>,
    start_ms: i64,
}

impl Gen {
    fn new(encounters: usize, now_ms: i64) -> Self {
        let mut rng = Rng::new(0x5EED);
        let n = (encounters / 5).max(1000);
        let plates = (0..n)
            .map(|_| crate::scene::random_plate(&mut rng))
            .collect();
        Self {
            rng,
            plates,
            start_ms: now_ms - SPAN_MS - 60_000,
        }
    }

    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// (plate, lat, lon, captured_at_ms)
    fn next(&mut self) -> (String, f64, f64, i64) {
        let plate = self.plates[self.rng.below(self.plates.len())].clone();
        let lat = LAT.0 + (LAT.1 - LAT.0) * self.unit();
        let lon = LON.0 + (LON.1 - LON.0) * self.unit();
        let t = self.start_ms + (SPAN_MS as f64 * self.unit()) as i64;
        (plate, lat, lon, t)
    }

    fn upload_row(&mut self) -> Value {
        let (plate, lat, lon, t) = self.next();
        json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "plate": plate,
            "state": "CA",
            "confidence": 0.9,
            "crop": "AAAAAAAAAAAAAAAAAAAAAA==",
            "lat": lat,
            "lon": lon,
            "captured_at_ms": t,
            "camera_id": "rear",
            "reason_code": "patrol",
            "case_number": "BENCH-1",
            "session_id": SESSION_ID,
            "match_tags": [],
        })
    }

    fn encounter(&mut self, user_id: i64, device_id: i64) -> Encounter {
        let (plate, lat, lon, t) = self.next();
        Encounter {
            id: uuid::Uuid::new_v4().to_string(),
            plate,
            state: Some("CA"),
            confidence: 0.9,
            crop: vec![0u8; 16],
            context_image: None,
            lat,
            lon,
            captured_at_ms: t,
            device_id,
            camera_id: "rear".into(),
            user_id,
            on_behalf_of_user_id: None,
            reason_code: "patrol".into(),
            case_number: Some("BENCH-1".into()),
            justification: None,
            session_id: SESSION_ID.into(),
            match_tags: "[]".into(),
            alert_decision: None,
            alert_reason: None,
        }
    }
}

/// A private PostgreSQL started for this run; stopped and removed on drop.
struct PrivatePg {
    dir: PathBuf,
    url: String,
}

fn scripts_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../server/scripts"))
}

impl PrivatePg {
    fn start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("platewatch-bench-pg-")
            .tempdir()
            .context("temp dir")?
            .keep();
        let out = Command::new("bash")
            .arg(scripts_dir().join("start-test-postgres.sh"))
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .context("running server/scripts/start-test-postgres.sh")?;
        if !out.status.success() {
            bail!(
                "could not start PostgreSQL (give --postgres-url or set PLATEWATCH_PG_URL): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(Self { dir, url })
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(scripts_dir().join("stop-test-postgres.sh"))
            .arg(&self.dir)
            .env("REMOVE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// One backend under test: its repository, the server on loopback and the HTTP client.
struct Site {
    repo: Repo,
    base: String,
    http: reqwest::Client,
    officer_id: i64,
    device_id: i64,
    device_token: String,
    analyst_token: String,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> Result<Value> {
    let mut req = http.post(url).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let value: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST {url}: {status} {value}");
    }
    Ok(value)
}

async fn start_site(repo: Repo) -> Result<Site> {
    let config = Config {
        bootstrap_admin: Some(("bench.admin".into(), ADMIN_PASSWORD.into())),
        ..Config::default()
    };
    let state = AppState::new(repo.clone(), config);
    platewatch_server::bootstrap(&state)
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap: {e}"))?;
    let (addr, server) = platewatch_server::serve_loopback(state).await?;
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder()
        .user_agent("platewatch-bench/1")
        .pool_max_idle_per_host(64)
        .build()?;
    let login = |user: &str, pw: &str| json!({ "username": user, "password": pw });
    let admin = post(
        &http,
        &format!("{base}/v1/login"),
        None,
        &login("bench.admin", ADMIN_PASSWORD),
    )
    .await?;
    let admin = admin["token"].as_str().context("admin token")?.to_string();
    for (name, role) in [("bench.officer", "officer"), ("bench.analyst", "analyst")] {
        post(
            &http,
            &format!("{base}/v1/users"),
            Some(&admin),
            &json!({ "username": name, "password": PASSWORD, "role": role, "enhanced_queries": role == "analyst" }),
        )
        .await?;
    }
    let officer = post(
        &http,
        &format!("{base}/v1/login"),
        None,
        &login("bench.officer", PASSWORD),
    )
    .await?;
    let officer = officer["token"]
        .as_str()
        .context("officer token")?
        .to_string();
    let analyst = post(
        &http,
        &format!("{base}/v1/login"),
        None,
        &login("bench.analyst", PASSWORD),
    )
    .await?;
    let analyst_token = analyst["token"]
        .as_str()
        .context("analyst token")?
        .to_string();
    let device = post(
        &http,
        &format!("{base}/v1/devices"),
        Some(&officer),
        &json!({ "name": "bench" }),
    )
    .await?;
    let officer_id = repo
        .user_id_by_name("bench.officer")
        .await?
        .context("officer id")?;
    Ok(Site {
        repo,
        base,
        http,
        officer_id,
        device_id: device["id"].as_i64().context("device id")?,
        device_token: device["token"]
            .as_str()
            .context("device token")?
            .to_string(),
        analyst_token,
        server,
    })
}

/// Uploads `n` generated encounters in batches over `concurrency` connections; encounters/s.
async fn ingest(
    site: &Site,
    synth: &mut Gen,
    n: usize,
    batch: usize,
    concurrency: usize,
) -> Result<f64> {
    let batch = batch.clamp(1, 500);
    let bodies: Vec<Vec<u8>> = (0..n.div_ceil(batch))
        .map(|i| {
            let rows: Vec<Value> = (i * batch..((i + 1) * batch).min(n))
                .map(|_| synth.upload_row())
                .collect();
            serde_json::to_vec(&json!({ "encounters": rows })).unwrap_or_default()
        })
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let url = format!("{}/v1/encounters", site.base);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let queue = queue.clone();
        let http = site.http.clone();
        let url = url.clone();
        let token = site.device_token.clone();
        tasks.push(tokio::spawn(async move {
            let mut stored = 0u64;
            loop {
                let body = match queue.lock() {
                    Ok(mut q) => q.pop(),
                    Err(_) => None,
                };
                let Some(body) = body else { break };
                let resp = http
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let status = resp.status();
                let v: Value = resp.json().await?;
                if !status.is_success() {
                    anyhow::bail!("upload: {status} {v}");
                }
                stored += v["stored"].as_u64().unwrap_or(0);
            }
            Ok::<u64, anyhow::Error>(stored)
        }));
    }
    let mut stored = 0;
    for t in tasks {
        stored += t.await.context("upload task")??;
    }
    let secs = started.elapsed().as_secs_f64();
    if stored != n as u64 {
        bail!("uploaded {n} encounters but the server stored {stored}");
    }
    Ok(n as f64 / secs)
}

/// Loads `n` more generated encounters straight into the repository; encounters/s.
async fn bulk_load(site: &Site, synth: &mut Gen, n: usize) -> Result<f64> {
    let chunk = if site.repo.backend() == "postgres" {
        20_000
    } else {
        50_000
    };
    let started = Instant::now();
    let mut done = 0usize;
    let pb = crate::progress(n as u64, "bulk load");
    while done < n {
        let k = chunk.min(n - done);
        let rows: Vec<Encounter> = (0..k)
            .map(|_| synth.encounter(site.officer_id, site.device_id))
            .collect();
        site.repo
            .bulk_insert_encounters(&rows, platewatch_server::now_ms())
            .await?;
        done += k;
        pb.set_position(done as u64);
    }
    pb.finish_and_clear();
    site.repo.analyze().await?;
    Ok(n as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

fn p95(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64) * 0.95).ceil() as usize;
    v[i.clamp(1, v.len()) - 1]
}

fn hexagon(lat: f64, lon: f64, radius_km: f64) -> Value {
    let dlat = radius_km / 111.0;
    let dlon = radius_km / (111.0 * lat.to_radians().cos());
    let ring: Vec<[f64; 2]> = (0..6)
        .map(|i| {
            let a = f64::from(i) * std::f64::consts::PI / 3.0;
            [lat + dlat * a.sin(), lon + dlon * a.cos()]
        })
        .collect();
    json!([ring])
}

/// A partial pattern from a known plate: one position hidden by `*`, `?` or a leading `*`.
fn pattern_of(plate: &str, k: usize) -> String {
    let b: Vec<char> = plate.chars().collect();
    let n = b.len();
    let s = |r: std::ops::Range<usize>| b[r].iter().collect::<String>();
    match k % 3 {
        0 if n > 4 => format!("{}*{}", s(0..3), s(4..n)),
        1 if n > 3 => format!("{}?{}", s(0..2), s(3..n)),
        _ => format!("*{}", s(n.saturating_sub(4)..n)),
    }
}

struct QueryFigures {
    partial_p95_ms: f64,
    polygon_p95_ms: f64,
    partial_rows: f64,
    polygon_rows: f64,
}

async fn time_queries(site: &Site, synth: &mut Gen, n: usize, now_ms: i64) -> Result<QueryFigures> {
    let url = |k: &str| format!("{}/v1/queries/{k}", site.base);
    let basis = |from: i64, to: i64| json!({ "from_ms": from, "to_ms": to, "reason_code": "investigation", "case_number": "BENCH-Q" });
    let mut partial = Vec::new();
    let mut polygon = Vec::new();
    let (mut partial_rows, mut polygon_rows) = (0u64, 0u64);
    let warmup = 3;
    for i in 0..n + warmup {
        let plate = synth.plates[synth.rng.below(synth.plates.len())].clone();
        let mut body = basis(now_ms - SPAN_MS - 120_000, now_ms);
        body["pattern"] = json!(pattern_of(&plate, i));
        body["confirm"] = json!(true);
        let t = Instant::now();
        let v = post(
            &site.http,
            &url("partial"),
            Some(&site.analyst_token),
            &body,
        )
        .await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if i >= warmup {
            partial.push(ms);
            partial_rows += v["count"].as_u64().unwrap_or(0);
        }
        // A 1 km hexagon somewhere in the area, over one week.
        let lat = LAT.0 + 0.02 + (LAT.1 - LAT.0 - 0.04) * synth.unit();
        let lon = LON.0 + 0.02 + (LON.1 - LON.0 - 0.04) * synth.unit();
        let week = 7 * 24 * 3600 * 1000;
        let from = synth.start_ms + ((SPAN_MS - week) as f64 * synth.unit()) as i64;
        let mut body = basis(from, from + week);
        body["polygons"] = json!([hexagon(lat, lon, 1.0)]);
        body["confirm"] = json!(true);
        let t = Instant::now();
        let v = post(
            &site.http,
            &url("polygon"),
            Some(&site.analyst_token),
            &body,
        )
        .await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if i >= warmup {
            polygon.push(ms);
            polygon_rows += v["count"].as_u64().unwrap_or(0);
        }
    }
    let n = n.max(1) as f64;
    Ok(QueryFigures {
        partial_p95_ms: p95(&mut partial),
        polygon_p95_ms: p95(&mut polygon),
        partial_rows: partial_rows as f64 / n,
        polygon_rows: polygon_rows as f64 / n,
    })
}

async fn print_plans(site: &Site, now_ms: i64) -> Result<()> {
    let partial = Criteria::Partial {
        pattern: "7AB*123".into(),
        state: None,
    };
    let polygons: Vec<platewatch_server::areas::RingsIn> =
        vec![serde_json::from_value(hexagon(37.75, -122.3, 1.0))?];
    let limits = platewatch_server::areas::AreaLimits {
        max_polygons: 10,
        max_vertices: 5000,
    };
    let polygon = Criteria::Polygon {
        areas: platewatch_server::areas::parse_polygons("polygons", &polygons, 1, limits)
            .map_err(anyhow::Error::msg)?,
        polygons,
    };
    for (what, c) in [("partial", &partial), ("polygon", &polygon)] {
        let plan = site
            .repo
            .explain(c, now_ms - SPAN_MS, now_ms, false)
            .await?;
        println!("{} {what} plan:\n{plan}", site.repo.backend());
    }
    Ok(())
}

struct BackendFigures {
    ingest_per_s: f64,
    load_per_s: f64,
    queries: Option<QueryFigures>,
}

async fn run_backend(
    repo: Repo,
    a: &ServerBenchArgs,
    measure_queries: bool,
) -> Result<BackendFigures> {
    let now_ms = platewatch_server::now_ms();
    let backend = repo.backend();
    let site = start_site(repo).await?;
    let mut synth = Gen::new(a.encounters, now_ms);
    let ingest_per_s = ingest(&site, &mut synth, a.ingest, a.batch, a.concurrency).await?;
    println!(
        "{backend}: ingest over HTTP {:.0} encounters/s ({} in batches of {}, {} connections)",
        ingest_per_s, a.ingest, a.batch, a.concurrency
    );
    let mut load_per_s = 0.0;
    let mut queries = None;
    if measure_queries {
        let rest = a.encounters.saturating_sub(a.ingest);
        load_per_s = bulk_load(&site, &mut synth, rest).await?;
        println!(
            "{backend}: bulk-loaded {rest} more encounters at {load_per_s:.0}/s ({} in all)",
            site.repo.count_encounters().await?
        );
        if a.explain {
            print_plans(&site, now_ms).await?;
        }
        let q = time_queries(&site, &mut synth, a.queries, platewatch_server::now_ms()).await?;
        println!(
            "{backend}: partial plate p95 {:.1} ms ({:.0} rows on average), polygon p95 {:.1} ms ({:.0} rows on average), {} queries each",
            q.partial_p95_ms, q.partial_rows, q.polygon_p95_ms, q.polygon_rows, a.queries
        );
        queries = Some(q);
    }
    site.server.abort();
    Ok(BackendFigures {
        ingest_per_s,
        load_per_s,
        queries,
    })
}

async fn run_async(a: ServerBenchArgs) -> Result<ExitCode> {
    if a.encounters < a.ingest {
        bail!("--encounters must be at least --ingest");
    }
    let want_sqlite_q = matches!(a.query_backend, QueryBackend::Sqlite | QueryBackend::Both);
    let want_pg_q = matches!(a.query_backend, QueryBackend::Postgres | QueryBackend::Both);

    // SQLite: a file in a temporary directory.
    let dir = tempfile::tempdir().context("temp dir")?;
    let path = dir.path().join("bench.db");
    let repo = Repo::connect(path.to_str().context("utf-8 temp path")?).await?;
    let sqlite = run_backend(repo, &a, want_sqlite_q).await?;
    drop(dir);

    // PostgreSQL: a scratch database on the given or a private server.
    let mut private = None;
    let admin_url = match a.postgres_url.clone().or_else(|| {
        std::env::var("PLATEWATCH_PG_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
    }) {
        Some(u) => u,
        None => {
            let pg = PrivatePg::start()?;
            let url = pg.url.clone();
            private = Some(pg);
            url
        }
    };
    let name = format!("pwbench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::postgres::PgConnection::connect(&admin_url)
        .await
        .with_context(
            || "connecting to PostgreSQL (give --postgres-url or set PLATEWATCH_PG_URL)",
        )?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let opts: sqlx::postgres::PgConnectOptions = admin_url.parse()?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect_with(opts.database(&name))
        .await?;
    let result = async {
        let repo = Repo::from_db(Db::Postgres(pool.clone())).await?;
        run_backend(repo, &a, want_pg_q).await
    }
    .await;
    pool.close().await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut admin)
        .await;
    let _ = admin.close().await;
    drop(private);
    let postgres = result?;

    let main = postgres.queries.as_ref().or(sqlite.queries.as_ref());
    let mut out = json!({
        "ingest_sqlite_per_s": sqlite.ingest_per_s.round(),
        "ingest_postgres_per_s": postgres.ingest_per_s.round(),
        "partial_p95_ms": main.map(|q| (q.partial_p95_ms * 10.0).round() / 10.0),
        "polygon_p95_ms": main.map(|q| (q.polygon_p95_ms * 10.0).round() / 10.0),
        "encounters": a.encounters,
        "query_backend": if postgres.queries.is_some() { "postgres" } else { "sqlite" },
        "bulk_load_sqlite_per_s": sqlite.load_per_s.round(),
        "bulk_load_postgres_per_s": postgres.load_per_s.round(),
    });
    if let (Some(q), Some(obj)) = (sqlite.queries.as_ref(), out.as_object_mut()) {
        obj.insert(
            "partial_p95_ms_sqlite".into(),
            json!((q.partial_p95_ms * 10.0).round() / 10.0),
        );
        obj.insert(
            "polygon_p95_ms_sqlite".into(),
            json!((q.polygon_p95_ms * 10.0).round() / 10.0),
        );
    }
    if a.json {
        println!("{out}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(a: ServerBenchArgs) -> Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?
        .block_on(run_async(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_hide_one_position() {
        assert_eq!(pattern_of("7ABC123", 0), "7AB*123");
        assert_eq!(pattern_of("7ABC123", 1), "7A?C123");
        assert_eq!(pattern_of("7ABC123", 2), "*C123");
        assert_eq!(p95(&mut [5.0, 1.0, 3.0, 2.0, 4.0]), 5.0);
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(p95(&mut v), 95.0);
    }
}
