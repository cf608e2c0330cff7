//! Scanning sessions: who scans, on behalf of whom, why (a reason code from the server's list)
//! and under which case number or justification, on which device, from when to when, with a
//! bounded GPS track. Pure types and validation; the caller supplies ids, clocks and fixes.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

/// Longest case number, in characters (the server's limit).
pub const MAX_CASE_NUMBER_LEN: usize = 64;
/// Longest justification, in characters (the server's limit).
pub const MAX_JUSTIFICATION_LEN: usize = 2000;
/// Longest device or camera id, in characters.
pub const MAX_ID_LEN: usize = 64;
/// Default bound on the points a session's GPS track keeps.
pub const DEFAULT_MAX_TRACK_POINTS: usize = 4096;

/// Why a session could not start, resume or end. Messages never carry the values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionError {
    #[error("a scanning session needs a user")]
    MissingUser,
    #[error("user must be 3..=64 characters of a-z, A-Z, 0-9, '.', '_', '-', '@'")]
    InvalidUser,
    #[error("on_behalf_of must be 3..=64 characters of a-z, A-Z, 0-9, '.', '_', '-', '@'")]
    InvalidOnBehalfOf,
    #[error("on_behalf_of names the scanning user")]
    OnBehalfOfSelf,
    #[error("a scanning session needs a reason code")]
    MissingReason,
    #[error("no reason codes are configured")]
    NoReasonCodes,
    #[error("the reason code is not one of the configured reason codes")]
    UnknownReason,
    #[error("a scanning session needs a case number or a justification")]
    MissingCaseOrJustification,
    #[error("case_number must be 1..={MAX_CASE_NUMBER_LEN} characters without control characters")]
    InvalidCaseNumber,
    #[error(
        "justification must be 1..={MAX_JUSTIFICATION_LEN} characters without control characters"
    )]
    InvalidJustification,
    #[error("device_id must be 1..={MAX_ID_LEN} characters without control characters")]
    InvalidDevice,
    #[error("the session id must be a non-nil UUID")]
    InvalidId,
    #[error("the session has already ended")]
    Ended,
    #[error("a session cannot end before it started")]
    EndBeforeStart,
    #[error("GPS: {0}")]
    Gps(#[from] GpsError),
}

/// Why a GPS fix was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum GpsError {
    #[error("latitude must be between -90 and 90")]
    Latitude,
    #[error("longitude must be between -180 and 180")]
    Longitude,
    #[error("accuracy must be a non-negative number of metres")]
    Accuracy,
}

/// One position from the platform's location service.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GpsFix {
    pub lat: f64,
    pub lon: f64,
    /// Horizontal accuracy radius in metres, when the platform reports it.
    #[serde(default)]
    pub accuracy_m: Option<f32>,
    /// Unix time of the fix in milliseconds.
    pub at_ms: i64,
}

impl GpsFix {
    /// A validated fix.
    pub fn new(lat: f64, lon: f64, accuracy_m: Option<f32>, at_ms: i64) -> Result<Self, GpsError> {
        let fix = GpsFix {
            lat,
            lon,
            accuracy_m,
            at_ms,
        };
        fix.validate()?;
        Ok(fix)
    }

    pub fn validate(&self) -> Result<(), GpsError> {
        if !(self.lat.is_finite() && (-90.0..=90.0).contains(&self.lat)) {
            return Err(GpsError::Latitude);
        }
        if !(self.lon.is_finite() && (-180.0..=180.0).contains(&self.lon)) {
            return Err(GpsError::Longitude);
        }
        if self
            .accuracy_m
            .is_some_and(|a| !(a.is_finite() && a >= 0.0))
        {
            return Err(GpsError::Accuracy);
        }
        Ok(())
    }
}

/// A GPS track with a fixed bound on its size. When full it drops every other point (keeping
/// the first) and from then on keeps one fix in two, so a long session still covers its whole
/// route at a coarser spacing instead of losing its start or end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpsTrack {
    points: Vec<GpsFix>,
    max_points: usize,
    /// Keep one fix in `stride`.
    stride: u32,
    /// Fixes skipped since the last kept one.
    skipped: u32,
    /// The newest fix, kept or not (alerts use it).
    last: Option<GpsFix>,
}

impl GpsTrack {
    /// An empty track holding at most `max_points` (at least 2).
    pub fn new(max_points: usize) -> Self {
        GpsTrack {
            points: Vec::new(),
            max_points: max_points.max(2),
            stride: 1,
            skipped: 0,
            last: None,
        }
    }

    /// Adds a fix. Fixes older than the newest one are ignored (platforms redeliver).
    pub fn push(&mut self, fix: GpsFix) -> Result<(), GpsError> {
        fix.validate()?;
        if self.last.is_some_and(|l| fix.at_ms < l.at_ms) {
            return Ok(());
        }
        self.last = Some(fix);
        self.skipped += 1;
        if self.skipped < self.stride && !self.points.is_empty() {
            return Ok(());
        }
        self.skipped = 0;
        if self.points.len() >= self.max_points {
            let mut i = 0;
            self.points.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.stride = self.stride.saturating_mul(2);
        }
        self.points.push(fix);
        Ok(())
    }

    /// The kept points, oldest first.
    pub fn points(&self) -> &[GpsFix] {
        &self.points
    }

    /// The newest fix received (kept in the track or not).
    pub fn last(&self) -> Option<GpsFix> {
        self.last
    }

    pub fn max_points(&self) -> usize {
        self.max_points
    }
}

impl Default for GpsTrack {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_TRACK_POINTS)
    }
}

/// What an officer enters to start scanning.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionRequest {
    pub user: String,
    #[serde(default)]
    pub on_behalf_of: Option<String>,
    pub reason_code: String,
    #[serde(default)]
    pub case_number: Option<String>,
    #[serde(default)]
    pub justification: Option<String>,
    /// This device's identifier.
    pub device_id: String,
}

/// A validated scanning session. Fields are private so every session went through validation;
/// read them through the accessors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    id: Uuid,
    user: String,
    on_behalf_of: Option<String>,
    reason_code: String,
    case_number: Option<String>,
    justification: Option<String>,
    device_id: String,
    started_at_ms: i64,
    ended_at_ms: Option<i64>,
    track: GpsTrack,
}

/// Same rule as the server's usernames.
pub fn valid_username(s: &str) -> bool {
    (3..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

fn clean_text(
    s: &Option<String>,
    max: usize,
    err: SessionError,
) -> Result<Option<String>, SessionError> {
    match s.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.chars().count() > max || v.chars().any(char::is_control) => Err(err),
        Some(v) => Ok(Some(v.to_string())),
    }
}

/// Checks a request, except membership of the reason code in the configured list.
fn validated(req: &SessionRequest) -> Result<SessionRequest, SessionError> {
    let user = req.user.trim();
    if user.is_empty() {
        return Err(SessionError::MissingUser);
    }
    if !valid_username(user) {
        return Err(SessionError::InvalidUser);
    }
    let on_behalf_of = match req.on_behalf_of.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(u) if !valid_username(u) => return Err(SessionError::InvalidOnBehalfOf),
        Some(u) if u == user => return Err(SessionError::OnBehalfOfSelf),
        Some(u) => Some(u.to_string()),
    };
    let reason_code = req.reason_code.trim();
    if reason_code.is_empty() {
        return Err(SessionError::MissingReason);
    }
    let case_number = clean_text(
        &req.case_number,
        MAX_CASE_NUMBER_LEN,
        SessionError::InvalidCaseNumber,
    )?;
    let justification = clean_text(
        &req.justification,
        MAX_JUSTIFICATION_LEN,
        SessionError::InvalidJustification,
    )?;
    if case_number.is_none() && justification.is_none() {
        return Err(SessionError::MissingCaseOrJustification);
    }
    let device_id = clean_text(
        &Some(req.device_id.clone()),
        MAX_ID_LEN,
        SessionError::InvalidDevice,
    )?
    .ok_or(SessionError::InvalidDevice)?;
    Ok(SessionRequest {
        user: user.to_string(),
        on_behalf_of,
        reason_code: reason_code.to_string(),
        case_number,
        justification,
        device_id,
    })
}

impl Session {
    /// Starts a session. `reason_codes` is the list the server is configured with; the
    /// request's reason code must be one of them. `id` is a fresh client-generated UUID.
    pub fn start<S: AsRef<str>>(
        id: Uuid,
        req: &SessionRequest,
        reason_codes: &[S],
        started_at_ms: i64,
    ) -> Result<Session, SessionError> {
        if reason_codes.is_empty() {
            return Err(SessionError::NoReasonCodes);
        }
        let req = validated(req)?;
        if !reason_codes
            .iter()
            .any(|c| c.as_ref().trim() == req.reason_code)
        {
            return Err(SessionError::UnknownReason);
        }
        Self::from_parts(id, req, started_at_ms, None, GpsTrack::default())
    }

    /// Rebuilds a session kept in a store (the reason code was checked when it started).
    pub fn resume(
        id: Uuid,
        req: &SessionRequest,
        started_at_ms: i64,
        ended_at_ms: Option<i64>,
        track: GpsTrack,
    ) -> Result<Session, SessionError> {
        let req = validated(req)?;
        Self::from_parts(id, req, started_at_ms, ended_at_ms, track)
    }

    fn from_parts(
        id: Uuid,
        req: SessionRequest,
        started_at_ms: i64,
        ended_at_ms: Option<i64>,
        track: GpsTrack,
    ) -> Result<Session, SessionError> {
        if id.is_nil() {
            return Err(SessionError::InvalidId);
        }
        if ended_at_ms.is_some_and(|e| e < started_at_ms) {
            return Err(SessionError::EndBeforeStart);
        }
        for p in track.points() {
            p.validate()?;
        }
        Ok(Session {
            id,
            user: req.user,
            on_behalf_of: req.on_behalf_of,
            reason_code: req.reason_code,
            case_number: req.case_number,
            justification: req.justification,
            device_id: req.device_id,
            started_at_ms,
            ended_at_ms,
            track,
        })
    }

    /// Adds a GPS fix to the track (refused once the session ended).
    pub fn record_fix(&mut self, fix: GpsFix) -> Result<(), SessionError> {
        if self.ended_at_ms.is_some() {
            return Err(SessionError::Ended);
        }
        self.track.push(fix)?;
        Ok(())
    }

    /// Ends the session at `at_ms`.
    pub fn end(&mut self, at_ms: i64) -> Result<(), SessionError> {
        if self.ended_at_ms.is_some() {
            return Err(SessionError::Ended);
        }
        if at_ms < self.started_at_ms {
            return Err(SessionError::EndBeforeStart);
        }
        self.ended_at_ms = Some(at_ms);
        Ok(())
    }

    pub fn id(&self) -> Uuid {
        self.id
    }
    pub fn user(&self) -> &str {
        &self.user
    }
    pub fn on_behalf_of(&self) -> Option<&str> {
        self.on_behalf_of.as_deref()
    }
    pub fn reason_code(&self) -> &str {
        &self.reason_code
    }
    pub fn case_number(&self) -> Option<&str> {
        self.case_number.as_deref()
    }
    pub fn justification(&self) -> Option<&str> {
        self.justification.as_deref()
    }
    pub fn device_id(&self) -> &str {
        &self.device_id
    }
    pub fn started_at_ms(&self) -> i64 {
        self.started_at_ms
    }
    pub fn ended_at_ms(&self) -> Option<i64> {
        self.ended_at_ms
    }
    pub fn is_active(&self) -> bool {
        self.ended_at_ms.is_none()
    }
    pub fn track(&self) -> &GpsTrack {
        &self.track
    }
    /// The request this session was started with (validated and trimmed).
    pub fn request(&self) -> SessionRequest {
        SessionRequest {
            user: self.user.clone(),
            on_behalf_of: self.on_behalf_of.clone(),
            reason_code: self.reason_code.clone(),
            case_number: self.case_number.clone(),
            justification: self.justification.clone(),
            device_id: self.device_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODES: [&str; 2] = ["patrol", "investigation"];

    fn req() -> SessionRequest {
        SessionRequest {
            user: "ofc.lee".into(),
            on_behalf_of: None,
            reason_code: "patrol".into(),
            case_number: Some("2026-0001".into()),
            justification: None,
            device_id: "tablet-7".into(),
        }
    }

    fn id() -> Uuid {
        Uuid::from_u128(0x1234)
    }

    #[test]
    fn starts_with_everything_required() {
        let s = Session::start(id(), &req(), &CODES, 1_000).unwrap();
        assert_eq!(s.user(), "ofc.lee");
        assert_eq!(s.reason_code(), "patrol");
        assert!(s.is_active());
    }

    #[test]
    fn refuses_missing_fields() {
        type Edit = fn(&mut SessionRequest);
        let cases: [(Edit, SessionError); 7] = [
            (|r| r.user.clear(), SessionError::MissingUser),
            (|r| r.user = "a b".into(), SessionError::InvalidUser),
            (|r| r.reason_code = " ".into(), SessionError::MissingReason),
            (
                |r| r.reason_code = "curiosity".into(),
                SessionError::UnknownReason,
            ),
            (
                |r| r.case_number = Some("  ".into()),
                SessionError::MissingCaseOrJustification,
            ),
            (
                |r| r.on_behalf_of = Some("ofc.lee".into()),
                SessionError::OnBehalfOfSelf,
            ),
            (|r| r.device_id = String::new(), SessionError::InvalidDevice),
        ];
        for (edit, want) in cases {
            let mut r = req();
            edit(&mut r);
            assert_eq!(Session::start(id(), &r, &CODES, 0), Err(want));
        }
        let none: [&str; 0] = [];
        assert_eq!(
            Session::start(id(), &req(), &none, 0),
            Err(SessionError::NoReasonCodes)
        );
        assert_eq!(
            Session::start(Uuid::nil(), &req(), &CODES, 0),
            Err(SessionError::InvalidId)
        );
    }

    #[test]
    fn justification_alone_and_on_behalf_of() {
        let mut r = req();
        r.case_number = None;
        r.justification = Some("BOLO from dispatch".into());
        r.on_behalf_of = Some("det.ray".into());
        let s = Session::start(id(), &r, &CODES, 0).unwrap();
        assert_eq!(s.on_behalf_of(), Some("det.ray"));
        assert_eq!(s.case_number(), None);
        let long = "x".repeat(MAX_JUSTIFICATION_LEN + 1);
        r.justification = Some(long);
        assert_eq!(
            Session::start(id(), &r, &CODES, 0),
            Err(SessionError::InvalidJustification)
        );
    }

    #[test]
    fn end_and_fixes() {
        let mut s = Session::start(id(), &req(), &CODES, 1_000).unwrap();
        assert_eq!(s.end(999), Err(SessionError::EndBeforeStart));
        s.record_fix(GpsFix::new(37.0, -122.0, Some(5.0), 1_100).unwrap())
            .unwrap();
        assert_eq!(
            s.record_fix(GpsFix {
                lat: 91.0,
                lon: 0.0,
                accuracy_m: None,
                at_ms: 1_200
            }),
            Err(SessionError::Gps(GpsError::Latitude))
        );
        s.end(2_000).unwrap();
        assert_eq!(s.end(3_000), Err(SessionError::Ended));
        let fix = GpsFix::new(0.0, 0.0, None, 2_100).unwrap();
        assert_eq!(s.record_fix(fix), Err(SessionError::Ended));
        let back =
            Session::resume(s.id(), &s.request(), 1_000, Some(2_000), s.track().clone()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn track_stays_bounded_and_covers_the_route() {
        let mut t = GpsTrack::new(64);
        for i in 0..10_000i64 {
            t.push(GpsFix::new(0.0, (i as f64) * 1e-4, None, i).unwrap())
                .unwrap();
        }
        assert!(t.points().len() <= 64);
        assert!(t.points().len() >= 32);
        assert_eq!(t.points()[0].at_ms, 0);
        assert!(t.points().last().unwrap().at_ms > 9_000);
        assert_eq!(t.last().unwrap().at_ms, 9_999);
        assert!(t.points().windows(2).all(|w| w[0].at_ms < w[1].at_ms));
        // Out-of-order fixes are ignored.
        t.push(GpsFix::new(0.0, 0.0, None, 5).unwrap()).unwrap();
        assert_eq!(t.last().unwrap().at_ms, 9_999);
    }
}
