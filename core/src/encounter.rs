//! Encounters: one plate read with everything the seeds require beside it (who, on behalf of
//! whom, why, case, device, camera, time, position, match tags), the officer's disposition of an
//! alert, the context-image box trimmed to the vehicle, and the conversion to the wire format.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::frame::Frame;
use crate::geometry::BBox;
use crate::hotlist::Match;
use crate::hotlist::entry::MAX_PLATE_LEN;
use crate::imgproc::{GrayImage, Sampler};
use crate::session::{GpsFix, MAX_ID_LEN, Session};
use crate::text::CHARSET;
use crate::tracker::PlateRead;
use crate::wire::{AlertDisposition, EncounterUpload};

/// Longest disposition reason, in characters (the server's limit).
pub const MAX_REASON_LEN: usize = 500;

/// Why an encounter or disposition could not be built. Messages never carry plate text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncounterError {
    #[error("plate must be 1..={MAX_PLATE_LEN} characters of A-Z and 0-9")]
    InvalidPlate,
    #[error("no GPS position: neither a fix nor one in the session's track")]
    NoPosition,
    #[error("GPS: {0}")]
    Gps(#[from] crate::session::GpsError),
    #[error("the session has ended")]
    SessionEnded,
    #[error("camera_id must be 1..={MAX_ID_LEN} characters without control characters")]
    InvalidCamera,
    #[error("a rejection needs a reason of 1..={MAX_REASON_LEN} characters")]
    MissingReason,
    #[error("the encounter id must be a non-nil UUID")]
    InvalidId,
}

/// A plate read as kept on the device and uploaded: the read, its session's accountability
/// fields (copied, so the row stands on its own), position and match tags.
#[derive(Clone, PartialEq, Serialize)]
pub struct Encounter {
    /// Client-generated UUID: the upload's idempotency key.
    pub id: Uuid,
    pub session_id: Uuid,
    pub user: String,
    pub on_behalf_of: Option<String>,
    pub reason_code: String,
    pub case_number: Option<String>,
    pub justification: Option<String>,
    pub device_id: String,
    pub camera_id: String,
    pub plate: String,
    pub state: Option<String>,
    pub state_confidence: f32,
    pub confidence: f32,
    pub char_confidences: Vec<f32>,
    /// Unix time of the read in milliseconds.
    pub captured_at_ms: i64,
    pub position: GpsFix,
    /// The plate's box in the upright frame.
    pub plate_box: BBox,
    /// Categories of the hot list matches that raised an alert (sorted, unique).
    pub match_tags: Vec<String>,
}

impl std::fmt::Debug for Encounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encounter")
            .field("id", &self.id)
            .field("session_id", &self.session_id)
            .field("plate", &"<redacted>")
            .field("captured_at_ms", &self.captured_at_ms)
            .field("match_tags", &self.match_tags)
            .finish_non_exhaustive()
    }
}

/// True for text the server accepts as a plate.
pub fn valid_plate(p: &str) -> bool {
    !p.is_empty() && p.len() <= MAX_PLATE_LEN && p.bytes().all(|b| CHARSET.contains(&b))
}

/// Match tags from the matcher's results: the categories of alerting matches.
pub fn match_tags(matches: &[Match]) -> Vec<String> {
    let mut tags: Vec<String> = matches
        .iter()
        .filter(|m| m.alert)
        .map(|m| m.category.as_str().to_string())
        .collect();
    tags.sort_unstable();
    tags.dedup();
    tags
}

impl Encounter {
    /// Builds the encounter for `read`, made during `session` by `camera_id` at
    /// `captured_at_ms`. `fix` is the position at the read; without one the session's newest
    /// fix is used. `matches` are the matcher's results for the read.
    pub fn from_read(
        id: Uuid,
        read: &PlateRead,
        session: &Session,
        camera_id: &str,
        captured_at_ms: i64,
        fix: Option<GpsFix>,
        matches: &[Match],
    ) -> Result<Encounter, EncounterError> {
        if id.is_nil() {
            return Err(EncounterError::InvalidId);
        }
        if !session.is_active() {
            return Err(EncounterError::SessionEnded);
        }
        if !valid_plate(&read.text) {
            return Err(EncounterError::InvalidPlate);
        }
        let camera_id = camera_id.trim();
        if camera_id.is_empty()
            || camera_id.chars().count() > MAX_ID_LEN
            || camera_id.chars().any(char::is_control)
        {
            return Err(EncounterError::InvalidCamera);
        }
        let position = match fix {
            Some(f) => {
                f.validate()?;
                f
            }
            None => session.track().last().ok_or(EncounterError::NoPosition)?,
        };
        Ok(Encounter {
            id,
            session_id: session.id(),
            user: session.user().to_string(),
            on_behalf_of: session.on_behalf_of().map(str::to_string),
            reason_code: session.reason_code().to_string(),
            case_number: session.case_number().map(str::to_string),
            justification: session.justification().map(str::to_string),
            device_id: session.device_id().to_string(),
            camera_id: camera_id.to_string(),
            plate: read.text.clone(),
            state: read.state.map(str::to_string),
            state_confidence: read.state_confidence,
            confidence: read.confidence.clamp(0.0, 1.0),
            char_confidences: read.char_confidences.clone(),
            captured_at_ms,
            position,
            plate_box: read.bbox,
            match_tags: match_tags(matches),
        })
    }

    /// The upload row. `crop` and `context` are the encoded images; `disposition` the
    /// officer's decision on the alert, if any. A misread correction uploads the corrected
    /// plate and tags the row `misread_corrected`.
    pub fn to_upload(
        &self,
        crop: &[u8],
        context: Option<&[u8]>,
        disposition: Option<&Disposition>,
    ) -> EncounterUpload {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let mut tags = self.match_tags.clone();
        let mut plate = self.plate.clone();
        if let Some(c) = disposition.and_then(|d| d.corrected_plate.as_ref()) {
            plate.clone_from(c);
            tags.push("misread_corrected".into());
        }
        EncounterUpload {
            id: self.id.hyphenated().to_string(),
            plate,
            state: self.state.clone(),
            confidence: f64::from(self.confidence),
            crop: b64(crop),
            context_image: context.map(b64),
            lat: self.position.lat,
            lon: self.position.lon,
            captured_at_ms: self.captured_at_ms,
            device_id: None,
            camera_id: self.camera_id.clone(),
            user: Some(self.user.clone()),
            on_behalf_of: self.on_behalf_of.clone(),
            reason_code: self.reason_code.clone(),
            case_number: self.case_number.clone(),
            justification: self.justification.clone(),
            session_id: self.session_id.hyphenated().to_string(),
            match_tags: tags,
            alert: disposition.map(|d| AlertDisposition {
                decision: d.decision.as_str().to_string(),
                reason: d.reason.clone(),
            }),
        }
    }
}

/// Accepted or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Accepted,
    Rejected,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Accepted => "accepted",
            Decision::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "accepted" => Some(Decision::Accepted),
            "rejected" => Some(Decision::Rejected),
            _ => None,
        }
    }
}

/// The officer's decision on an alert after comparing the crop with the read.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disposition {
    pub decision: Decision,
    /// Required when rejected.
    pub reason: Option<String>,
    /// The plate as the officer reads it on the crop, when the engine misread it.
    pub corrected_plate: Option<String>,
    /// Unix time of the decision in milliseconds.
    pub decided_at_ms: i64,
}

impl std::fmt::Debug for Disposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disposition")
            .field("decision", &self.decision)
            .field("corrected", &self.corrected_plate.is_some())
            .field("decided_at_ms", &self.decided_at_ms)
            .finish_non_exhaustive()
    }
}

fn reason_text(reason: &str) -> Result<String, EncounterError> {
    let r = reason.trim();
    if r.is_empty() || r.chars().count() > MAX_REASON_LEN || r.chars().any(char::is_control) {
        return Err(EncounterError::MissingReason);
    }
    Ok(r.to_string())
}

impl Disposition {
    pub fn accept(decided_at_ms: i64) -> Disposition {
        Disposition {
            decision: Decision::Accepted,
            reason: None,
            corrected_plate: None,
            decided_at_ms,
        }
    }

    pub fn reject(reason: &str, decided_at_ms: i64) -> Result<Disposition, EncounterError> {
        Ok(Disposition {
            decision: Decision::Rejected,
            reason: Some(reason_text(reason)?),
            corrected_plate: None,
            decided_at_ms,
        })
    }

    /// The engine misread the plate: the alert is rejected as a misread and the officer's
    /// reading is kept as the correction.
    pub fn misread(corrected: &str, decided_at_ms: i64) -> Result<Disposition, EncounterError> {
        let c: String = corrected
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .collect::<String>()
            .to_ascii_uppercase();
        if !valid_plate(&c) {
            return Err(EncounterError::InvalidPlate);
        }
        Ok(Disposition {
            decision: Decision::Rejected,
            reason: Some("misread".into()),
            corrected_plate: Some(c),
            decided_at_ms,
        })
    }

    /// Rebuilds a stored disposition, checking it again.
    pub fn restore(
        decision: Decision,
        reason: Option<&str>,
        corrected_plate: Option<&str>,
        decided_at_ms: i64,
    ) -> Result<Disposition, EncounterError> {
        let reason = reason.map(reason_text).transpose()?;
        if decision == Decision::Rejected && reason.is_none() {
            return Err(EncounterError::MissingReason);
        }
        if corrected_plate.is_some_and(|p| !valid_plate(p)) {
            return Err(EncounterError::InvalidPlate);
        }
        Ok(Disposition {
            decision,
            reason,
            corrected_plate: corrected_plate.map(str::to_string),
            decided_at_ms,
        })
    }
}

/// How far the context image reaches around the plate, in plate widths and heights: enough
/// for the vehicle's rear or front, not the street around it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContextPolicy {
    /// Total width as a multiple of the plate's width.
    pub width_factor: f32,
    /// Height above the plate, in plate heights.
    pub above: f32,
    /// Height below the plate, in plate heights.
    pub below: f32,
}

impl Default for ContextPolicy {
    fn default() -> Self {
        // A US plate is about 30 cm wide; a car about 1.8 m: six plate widths. Above the plate
        // the boot and rear window, below it the bumper.
        ContextPolicy {
            width_factor: 6.0,
            above: 7.0,
            below: 3.0,
        }
    }
}

/// The box of the context image: the vehicle around `plate`, clipped to a `width` x `height`
/// upright frame. Never the whole frame unless the vehicle fills it.
pub fn context_box(plate: &BBox, width: usize, height: usize, policy: ContextPolicy) -> BBox {
    let (fw, fh) = (width as f32, height as f32);
    let w = (plate.w * policy.width_factor).max(1.0);
    let cx = plate.x + plate.w / 2.0;
    let x0 = (cx - w / 2.0).clamp(0.0, fw);
    let x1 = (cx + w / 2.0).clamp(0.0, fw);
    let y0 = (plate.y - plate.h * policy.above).clamp(0.0, fh);
    let y1 = (plate.y + plate.h * (1.0 + policy.below)).clamp(0.0, fh);
    BBox::new(x0, y0, (x1 - x0).max(1.0), (y1 - y0).max(1.0))
}

/// The context image (grayscale, native resolution) of a read in `frame`: the vehicle around
/// the plate, trimmed by [`context_box`].
pub fn context_crop(frame: &Frame<'_>, plate: &BBox, policy: ContextPolicy) -> GrayImage {
    let (w, h) = frame.upright_size();
    let b = context_box(plate, w, h, policy);
    Sampler::new(frame.luma(), frame.rotation()).crop(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Quad;
    use crate::hotlist::{Category, MatchKind, StateCheck};
    use crate::session::SessionRequest;

    fn session() -> Session {
        let mut s = Session::start(
            Uuid::from_u128(7),
            &SessionRequest {
                user: "ofc.lee".into(),
                on_behalf_of: Some("det.ray".into()),
                reason_code: "patrol".into(),
                case_number: Some("C-1".into()),
                justification: None,
                device_id: "phone-1".into(),
            },
            &["patrol"],
            1_000,
        )
        .unwrap();
        s.record_fix(GpsFix::new(37.77, -122.42, Some(4.0), 1_500).unwrap())
            .unwrap();
        s
    }

    fn read(text: &str) -> PlateRead {
        let bbox = BBox::new(100.0, 200.0, 60.0, 20.0);
        PlateRead {
            track_id: 1,
            text: text.into(),
            char_confidences: vec![0.9; text.len()],
            confidence: 0.9,
            state: Some("CA"),
            state_confidence: 0.8,
            region: None,
            region_confidence: 0.0,
            bbox,
            quad: Quad::from_bbox(&bbox),
            first_seen_ms: 0,
            last_seen_ms: 10,
            frames: 3,
            crop: GrayImage::default(),
            context: None,
        }
    }

    fn m(category: Category, alert: bool) -> Match {
        Match {
            id: 1,
            list: 0,
            category,
            priority: 50,
            kind: MatchKind::Exact,
            score: 1.0,
            lookalikes: 0,
            edit: None,
            state: StateCheck::Agree,
            alert,
        }
    }

    #[test]
    fn carries_session_fields_position_and_tags() {
        let s = session();
        let matches = [
            m(Category::Wanted, true),
            m(Category::StolenVehicle, true),
            m(Category::Wanted, true),
            m(Category::Amber, false),
        ];
        let e = Encounter::from_read(
            Uuid::from_u128(9),
            &read("7ABC123"),
            &s,
            "rear",
            2_000,
            None,
            &matches,
        )
        .unwrap();
        assert_eq!(e.session_id, s.id());
        assert_eq!(e.on_behalf_of.as_deref(), Some("det.ray"));
        assert_eq!(e.reason_code, "patrol");
        assert_eq!(e.position.at_ms, 1_500);
        assert_eq!(e.match_tags, ["stolen_vehicle", "wanted"]);
        assert!(!format!("{e:?}").contains("7ABC123"));
        let up = e.to_upload(
            b"png",
            Some(b"jpg"),
            Some(&Disposition::misread("7-ab c128", 2_100).unwrap()),
        );
        assert_eq!(up.plate, "7ABC128");
        assert_eq!(up.alert.as_ref().unwrap().decision, "rejected");
        assert!(up.match_tags.contains(&"misread_corrected".to_string()));
        assert_eq!(up.session_id, s.id().hyphenated().to_string());
    }

    #[test]
    fn refuses_bad_input() {
        let s = session();
        let id = Uuid::from_u128(9);
        assert_eq!(
            Encounter::from_read(id, &read("ab-1"), &s, "rear", 0, None, &[]),
            Err(EncounterError::InvalidPlate)
        );
        assert_eq!(
            Encounter::from_read(id, &read("AB1"), &s, " ", 0, None, &[]),
            Err(EncounterError::InvalidCamera)
        );
        let mut no_fix = Session::start(Uuid::from_u128(1), &s.request(), &["patrol"], 0).unwrap();
        assert_eq!(
            Encounter::from_read(id, &read("AB1"), &no_fix, "rear", 0, None, &[]),
            Err(EncounterError::NoPosition)
        );
        no_fix.end(5).unwrap();
        assert_eq!(
            Encounter::from_read(id, &read("AB1"), &no_fix, "rear", 0, None, &[]),
            Err(EncounterError::SessionEnded)
        );
        assert_eq!(
            Disposition::reject("  ", 0),
            Err(EncounterError::MissingReason)
        );
        assert_eq!(
            Disposition::misread("??", 0),
            Err(EncounterError::InvalidPlate)
        );
    }

    #[test]
    fn context_is_trimmed_to_the_vehicle() {
        let plate = BBox::new(600.0, 500.0, 60.0, 20.0);
        let b = context_box(&plate, 1280, 720, ContextPolicy::default());
        assert!(b.w <= 360.0 + 1e-3 && b.h <= 220.0 + 1e-3);
        assert!(b.x <= plate.x && b.x + b.w >= plate.x + plate.w);
        assert!(b.y <= plate.y && b.y + b.h >= plate.y + plate.h);
        assert!(b.area() < 0.1 * 1280.0 * 720.0);
        // Clipped at the frame's edge.
        let edge = context_box(
            &BBox::new(0.0, 700.0, 60.0, 20.0),
            1280,
            720,
            ContextPolicy::default(),
        );
        assert!(edge.x >= 0.0 && edge.y + edge.h <= 720.0 + 1e-3);
        let pixels = vec![128u8; 1280 * 720];
        let frame = Frame::gray8(&pixels, 1280, 720, 1280).unwrap();
        let img = context_crop(&frame, &plate, ContextPolicy::default());
        assert_eq!((img.width, img.height), (360, 220));
    }
}
