//! The device directory of the command line (`--device-dir`, default `platewatch-device`): the
//! device store (`device.db`: hot lists, encounters, outbox) and `device.json` (server, user,
//! device token, pinned hot list key, image key, last sync times, the server's reason codes as
//! last fetched), written atomically with mode 0600. Also resolves which hot list key to trust.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use ed25519_dalek::VerifyingKey;
use platewatch_core::hotlist::signed;
use platewatch_store::{EncounterStore, ImageKey, Store};
use platewatch_sync::account::Device;
use platewatch_sync::{ClientConfig, ServerClient};
use serde::{Deserialize, Serialize};

/// Where the device keeps its state, and which hot list key it trusts.
#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// Device directory: the device store and its registration.
    #[arg(long, value_name = "DIR", default_value = "platewatch-device")]
    pub device_dir: PathBuf,
    /// Pin this hot list public key (base64 ed25519, as in `GET /v1/hotlists/key`); every
    /// list must be signed with it. Replaces a key pinned before.
    #[arg(long, value_name = "BASE64")]
    pub hotlist_key: Option<String>,
    /// When no key is pinned yet, fetch the server's key and pin it (trust on first use).
    #[arg(long)]
    pub trust_server_key: bool,
}

/// What `device.json` holds.
#[derive(Default, Serialize, Deserialize)]
pub struct DeviceState {
    pub server: Option<String>,
    pub user: Option<String>,
    pub device: Option<Device>,
    /// The pinned hot list key (base64) and its id.
    pub hotlist_key: Option<String>,
    pub hotlist_key_id: Option<String>,
    /// Key for image blobs at rest (base64 of 32 bytes).
    pub image_key: Option<String>,
    pub last_upload_ms: Option<i64>,
    pub last_hotlist_sync_ms: Option<i64>,
    /// Lists refused at the last hot list sync.
    #[serde(default)]
    pub last_hotlist_refused: usize,
    /// The server's reason codes as last fetched (in its order), and when.
    #[serde(default)]
    pub reason_codes: Vec<String>,
    #[serde(default)]
    pub reason_codes_at_ms: Option<i64>,
}

impl std::fmt::Debug for DeviceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceState")
            .field("server", &self.server)
            .field("user", &self.user)
            .field("device", &self.device)
            .field("hotlist_key_id", &self.hotlist_key_id)
            .field("reason_codes", &self.reason_codes)
            .finish_non_exhaustive()
    }
}

/// An opened device directory.
#[derive(Debug)]
pub struct DeviceDir {
    pub path: PathBuf,
    pub state: DeviceState,
}

fn restrict(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

impl DeviceDir {
    /// Opens (creating) the directory and reads `device.json` if present.
    pub fn open(path: &Path) -> Result<DeviceDir> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create the device directory {}", path.display()))?;
        restrict(path, 0o700);
        let file = path.join("device.json");
        let state = if file.exists() {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a device state file", file.display()))?
        } else {
            DeviceState::default()
        };
        Ok(DeviceDir {
            path: path.to_path_buf(),
            state,
        })
    }

    /// Opens an existing device directory (for `sync` and `status`).
    pub fn open_existing(path: &Path) -> Result<DeviceDir> {
        if !path.join("device.json").exists() && !path.join("device.db").exists() {
            bail!(
                "{} is not a device directory: run `platewatch scan … --server URL --user U` first",
                path.display()
            );
        }
        Self::open(path)
    }

    /// Writes `device.json` atomically (temporary file of this process, then rename), mode
    /// 0600, so two commands on one device (a `scan` beside `sync --watch`) never interleave.
    pub fn save(&self) -> Result<()> {
        let file = self.path.join("device.json");
        let tmp = self
            .path
            .join(format!("device.json.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(&self.state)?;
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        restrict(&tmp, 0o600);
        std::fs::rename(&tmp, &file)
            .with_context(|| format!("cannot replace {}", file.display()))?;
        Ok(())
    }

    /// Re-reads `device.json` (another command may have changed it, e.g. a `scan` beside a
    /// running `sync --watch`).
    pub fn reload(&mut self) -> Result<()> {
        self.state = Self::open(&self.path)?.state;
        Ok(())
    }

    /// Fetches the server's reason codes with the device token and caches them in
    /// `device.json` (for `status`, and so a session's code is checked against the server's
    /// list before scanning).
    pub async fn refresh_reason_codes(&mut self, client: &ServerClient) -> Result<Vec<String>> {
        let codes = client
            .reason_codes()
            .await
            .context("cannot fetch the server's reason codes")?;
        self.state.reason_codes.clone_from(&codes);
        self.state.reason_codes_at_ms = Some(platewatch_sync::now_ms());
        self.save()?;
        Ok(codes)
    }

    pub fn db_path(&self) -> PathBuf {
        self.path.join("device.db")
    }

    /// The image key, created (random) on first use.
    pub fn image_key(&mut self) -> Result<ImageKey> {
        let bytes = match &self.state.image_key {
            Some(b) => B64
                .decode(b)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .context("device.json holds a malformed image key")?,
            None => {
                let mut k = [0u8; 32];
                k[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                k[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                self.state.image_key = Some(B64.encode(k));
                self.save()?;
                k
            }
        };
        Ok(ImageKey::from_bytes(bytes))
    }

    /// The device store and the encounter store over it (image blobs encrypted).
    pub async fn stores(&mut self) -> Result<(Store, EncounterStore)> {
        let key = self.image_key()?;
        let db = self.db_path();
        let store = Store::open(&db)
            .await
            .with_context(|| format!("cannot open the device store {}", db.display()))?;
        let enc = EncounterStore::new(store.clone())
            .with_image_key(key)
            .with_alert_hold_ms(0);
        Ok((store, enc))
    }

    /// A client with the stored device token, renewed first when half of its lifetime is gone
    /// (the new token is saved before it is used). A renewal the server refuses for a revoked
    /// or expired token is an error; one that fails on the network is retried at the next
    /// sync, with the old token still valid.
    pub async fn client(&mut self) -> Result<ServerClient> {
        let client = ServerClient::new(&self.client_config()?)?;
        let Some(device) = self.state.device.clone() else {
            return Ok(client);
        };
        if !device.renewal_due(platewatch_sync::now_ms()) {
            return Ok(client);
        }
        match platewatch_sync::account::renew_device(&client, &device).await {
            Ok(renewed) => {
                self.state.device = Some(renewed);
                self.save()?;
                Ok(ServerClient::new(&self.client_config()?)?)
            }
            Err(e @ platewatch_sync::SyncError::Unauthorized { .. }) => Err(anyhow::Error::from(e)
                .context("the server refused this device's token: sign in again with `platewatch scan --server URL --user U`")),
            Err(_) => Ok(client),
        }
    }

    /// The client configuration with the stored device token.
    pub fn client_config(&self) -> Result<ClientConfig> {
        match (&self.state.server, &self.state.device) {
            (Some(server), Some(device)) => Ok(ClientConfig::new(server, &device.token)),
            _ => bail!(
                "this device is not registered with a server: run `platewatch scan … --server URL --user U` first"
            ),
        }
    }

    /// The hot list key to verify against: `--hotlist-key` (pinned from now on), else the key
    /// pinned before, else — only with `--trust-server-key` — the server's key, pinned on first
    /// use. Returns the key and a line describing where it came from.
    pub async fn hotlist_key(
        &mut self,
        args: &DeviceArgs,
        client: &ServerClient,
    ) -> Result<(VerifyingKey, String)> {
        if let Some(b64) = &args.hotlist_key {
            let key = signed::parse_public_key(b64).context("--hotlist-key")?;
            let id = signed::key_id(&key);
            let note = match &self.state.hotlist_key_id {
                Some(old) if *old != id => format!("hot list key {id} pinned (replaces {old})"),
                _ => format!("hot list key {id} pinned from the command line"),
            };
            self.state.hotlist_key = Some(B64.encode(key.as_bytes()));
            self.state.hotlist_key_id = Some(id);
            self.save()?;
            return Ok((key, note));
        }
        if let Some(b64) = &self.state.hotlist_key {
            let key = signed::parse_public_key(b64)
                .context("device.json holds a malformed hot list key")?;
            return Ok((
                key,
                format!("hot list key {} (pinned)", signed::key_id(&key)),
            ));
        }
        if !args.trust_server_key {
            bail!(
                "no hot list key is pinned: pass --hotlist-key BASE64 (the publisher's key from the \
                 server operator) or --trust-server-key to pin the server's key on first use"
            );
        }
        let info = platewatch_sync::hotlists::fetch_public_key(client)
            .await
            .context("cannot fetch the server's hot list key")?;
        let key = signed::parse_public_key(&info.public_key)?;
        self.state.hotlist_key = Some(info.public_key);
        self.state.hotlist_key_id = Some(info.key_id.clone());
        self.save()?;
        Ok((
            key,
            format!(
                "hot list key {} fetched from the server and pinned (trust on first use)",
                info.key_id
            ),
        ))
    }
}

/// Milliseconds since the epoch as a UTC `YYYY-MM-DD HH:MM:SS` string.
pub fn fmt_time_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(fmt_time_ms(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(fmt_time_ms(1_709_210_096_000), "2024-02-29 12:34:56 UTC");
    }

    #[test]
    fn state_round_trips_and_hides_the_token() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut d = DeviceDir::open(dir.path()).expect("open");
        d.state.server = Some("http://127.0.0.1:1".into());
        d.state.device = Some(Device {
            id: 3,
            name: "cli".into(),
            token: "pwd_secret".into(),
            expires_at_ms: Some(2_000),
            issued_at_ms: Some(1_000),
        });
        d.save().expect("save");
        let again = DeviceDir::open_existing(dir.path()).expect("reopen");
        assert_eq!(again.state.device.as_ref().map(|d| d.id), Some(3));
        assert!(!format!("{again:?}").contains("pwd_secret"));
    }
}
