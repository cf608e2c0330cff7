//! The inference thread and its one-frame mailbox. `offer` never waits for inference: a frame
//! pushed while the thread is busy (or while another frame waits for it) is dropped and
//! counted, so at most one frame waits and one is processed, whatever the camera's rate.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use platewatch_core::hotlist::{Match, Matcher, Query, Scratch};
use platewatch_core::tracker::PlateRead;
use platewatch_core::{Frame, GpsFix, Rotation};
use platewatch_core::{Scanner as CoreScanner, encounter::Encounter};
use platewatch_store::{Evidence, ListStatus};
use uuid::Uuid;

use crate::error::{ErrorKind, PlatewatchError, panic_error};
use crate::events::Event;
use crate::scanner::Shared;
use crate::types::{AlertEvent, AlertMatch, Detection, FrameResult, PlateReadEvent};

/// Pixels the worker owns (only luma is needed for YUV frames: the chroma planes are
/// validated and released on the caller's thread).
#[derive(Debug)]
pub(crate) enum OwnedPixels {
    Gray { bytes: Vec<u8>, stride: usize },
    Bgra { bytes: Vec<u8>, stride: usize },
}

/// A validated frame waiting for the inference thread.
#[derive(Debug)]
pub(crate) struct PendingFrame {
    pub width: usize,
    pub height: usize,
    pub rotation: Rotation,
    pub timestamp_ms: i64,
    pub gps: Option<GpsFix>,
    pub pixels: OwnedPixels,
}

impl PendingFrame {
    fn frame(&self) -> Result<Frame<'_>, PlatewatchError> {
        let f = match &self.pixels {
            OwnedPixels::Gray { bytes, stride } => {
                Frame::gray8(bytes, self.width, self.height, *stride)?
            }
            OwnedPixels::Bgra { bytes, stride } => {
                Frame::bgra8(bytes, self.width, self.height, *stride)?
            }
        };
        Ok(f.with_rotation(self.rotation))
    }
}

#[derive(Debug, Default)]
struct State {
    frame: Option<PendingFrame>,
    busy: bool,
    stop: bool,
    flush_requested: u64,
    flush_done: u64,
}

enum Job {
    Frame(PendingFrame),
    Flush(u64),
    Stop,
}

/// The single-slot hand-off between `push_frame` and the inference thread.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    state: Mutex<State>,
    wake: Condvar,
    done: Condvar,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Mailbox {
    /// Hands `f` to the inference thread, or gives it back when the thread is busy.
    pub(crate) fn offer(&self, f: PendingFrame) -> Result<(), PendingFrame> {
        let mut s = lock(&self.state);
        if s.busy || s.stop || s.frame.is_some() {
            return Err(f);
        }
        s.frame = Some(f);
        drop(s);
        self.wake.notify_one();
        Ok(())
    }

    /// Whether an `offer` now would be taken (so a caller can skip copying a frame that would
    /// be dropped). Only a hint: the answer may change right after.
    pub(crate) fn is_free(&self) -> bool {
        let s = lock(&self.state);
        !(s.busy || s.stop || s.frame.is_some())
    }

    /// Asks the thread to end every open track, and waits until it has (at most `timeout`).
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let mut s = lock(&self.state);
        s.flush_requested += 1;
        let generation = s.flush_requested;
        self.wake.notify_one();
        let deadline = Instant::now() + timeout;
        while s.flush_done < generation && !s.stop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self
                .done
                .wait_timeout(s, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        s.flush_done >= generation
    }

    pub(crate) fn stop(&self) {
        let mut s = lock(&self.state);
        s.stop = true;
        s.frame = None;
        drop(s);
        self.wake.notify_all();
        self.done.notify_all();
    }

    fn next(&self) -> Job {
        let mut s = lock(&self.state);
        loop {
            if s.stop {
                return Job::Stop;
            }
            // A frame accepted before a flush was asked for is processed first.
            if let Some(f) = s.frame.take() {
                s.busy = true;
                return Job::Frame(f);
            }
            if s.flush_requested > s.flush_done {
                s.busy = true;
                return Job::Flush(s.flush_requested);
            }
            s = self.wake.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn finished(&self, flushed: Option<u64>) {
        let mut s = lock(&self.state);
        s.busy = false;
        if let Some(g) = flushed {
            s.flush_done = s.flush_done.max(g);
        }
        drop(s);
        self.done.notify_all();
    }
}

/// The inference thread's loop: frames → engine + tracker → reads → match, store, events.
pub(crate) fn run(shared: Arc<Shared>, mailbox: Arc<Mailbox>) {
    let mut scanner = CoreScanner::new(shared.engine.clone());
    let mut scratch = Scratch::default();
    loop {
        let job = mailbox.next();
        let (outcome, flushed) = match job {
            Job::Stop => return,
            Job::Frame(f) => (
                catch_unwind(AssertUnwindSafe(|| {
                    process(&shared, &mut scanner, &mut scratch, &f)
                })),
                None,
            ),
            Job::Flush(g) => (
                catch_unwind(AssertUnwindSafe(|| {
                    let reads = scanner.finish();
                    for r in reads {
                        handle_read(&shared, &mut scratch, r, None);
                    }
                    Ok(())
                })),
                Some(g),
            ),
        };
        let error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(panic) => {
                // The tracker may be half-updated: start afresh.
                scanner = CoreScanner::new(shared.engine.clone());
                Some(panic_error(panic.as_ref()))
            }
        };
        if let Some(e) = error {
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            shared
                .hub
                .publish(Event::error(e.kind(), format!("frame not processed: {e}")));
        }
        mailbox.finished(flushed);
    }
}

fn process(
    shared: &Shared,
    scanner: &mut CoreScanner,
    scratch: &mut Scratch,
    f: &PendingFrame,
) -> Result<(), PlatewatchError> {
    let t0 = Instant::now();
    let frame = f.frame()?;
    let ts = u64::try_from(f.timestamp_ms).unwrap_or(0);
    let result = scanner.push(&frame, ts)?;
    let elapsed = t0.elapsed();
    shared.counters.processed.fetch_add(1, Ordering::Relaxed);
    shared.counters.last_inference_us.store(
        u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    let rule = &shared.engine.config().tracker;
    let (w, h) = frame.upright_size();
    shared.hub.publish(Event::Frame(FrameResult {
        timestamp_ms: f.timestamp_ms,
        width: u32::try_from(w).unwrap_or(u32::MAX),
        height: u32::try_from(h).unwrap_or(u32::MAX),
        detections: result
            .observations
            .iter()
            .filter(|o| o.is_confirmed(rule))
            .map(|o| Detection {
                bbox: o.detection.bbox.into(),
                text: o.text.text.clone(),
                confidence: o.text.confidence,
            })
            .collect(),
        inference_ms: elapsed.as_secs_f64() * 1e3,
    }));
    for r in result.reads {
        handle_read(shared, scratch, r, f.gps);
    }
    Ok(())
}

/// Matches a finished read against the hot lists, stores it as an encounter (with its alerts)
/// when a session is active, and tells the listeners.
fn handle_read(shared: &Shared, scratch: &mut Scratch, read: PlateRead, gps: Option<GpsFix>) {
    let now_ms = platewatch_sync::now_ms();
    let matcher = shared.matcher();
    let mut matches = Vec::new();
    let q = Query {
        text: &read.text,
        confidences: &read.char_confidences,
        state: read.state,
        state_confidence: read.state_confidence,
    };
    matcher.lookup(&q, now_ms.div_euclid(1000), scratch, &mut matches);
    let mut event = PlateReadEvent {
        id: String::new(),
        plate: read.text.clone(),
        confidence: read.confidence,
        state: read.state.map(str::to_string),
        bbox: read.bbox.into(),
        frames: read.frames,
        first_seen_ms: i64::try_from(read.first_seen_ms).unwrap_or(i64::MAX),
        last_seen_ms: i64::try_from(read.last_seen_ms).unwrap_or(i64::MAX),
        stored: false,
    };
    // The plate crop and the vehicle context the tracker kept from the best crop's frame
    // (trimmed to the vehicle; never the whole frame).
    let evidence = match Evidence::encode(&read.crop, read.context.as_ref()) {
        Ok(e) => Some(e),
        Err(e) => {
            shared.hub.publish(Event::error(
                ErrorKind::Internal,
                format!("the plate crop could not be encoded: {e}"),
            ));
            None
        }
    };
    let session = shared.session_snapshot();
    match (&session, &evidence) {
        (Some(s), Some(ev)) => {
            let id = Uuid::new_v4();
            let stored = Encounter::from_read(
                id,
                &read,
                s,
                &shared.camera_id,
                event.last_seen_ms,
                gps,
                &matches,
            )
            .map_err(PlatewatchError::from)
            .and_then(|e| {
                shared
                    .rt
                    .block_on(shared.encounters.record(&e, ev, &matches, now_ms))
                    .map_err(PlatewatchError::from)
            });
            match stored {
                Ok(_) => {
                    event.id = id.hyphenated().to_string();
                    event.stored = true;
                }
                Err(e) => shared.hub.publish(Event::error(
                    e.kind(),
                    format!("a read could not be stored: {e}"),
                )),
            }
        }
        (None, _) => shared.hub.publish(Event::error(
            ErrorKind::InvalidInput,
            "a read ended outside a session and was not stored",
        )),
        (Some(_), None) => {}
    }
    shared.hub.publish(Event::Read(event.clone()));

    let alerting: Vec<_> = matches.iter().filter(|m| m.alert).collect();
    if alerting.is_empty() {
        return;
    }
    let lists = shared
        .rt
        .block_on(
            shared
                .encounters
                .store()
                .list_status(now_ms.div_euclid(1000)),
        )
        .unwrap_or_default();
    shared.hub.publish(Event::Alert(AlertEvent {
        alert_id: event.id.clone(),
        read: event,
        crop_png: evidence.map(|e| e.crop.bytes).unwrap_or_default(),
        matches: alert_matches(&matcher, &lists, alerting),
        retro: false,
    }));
}

/// The alerting matches as the listener sees them: list name, version, age and staleness
/// from `lists` (the store's list status), the entry's plate from `matcher`.
pub(crate) fn alert_matches<'m>(
    matcher: &Matcher,
    lists: &[ListStatus],
    alerting: impl IntoIterator<Item = &'m Match>,
) -> Vec<AlertMatch> {
    alerting
        .into_iter()
        .map(|m| {
            let list = lists.iter().find(|l| l.id == i64::from(m.list));
            AlertMatch {
                list: list.map(|l| l.name.clone()).unwrap_or_default(),
                list_version: list.map_or(0, |l| l.version),
                entry_plate: matcher.plate_of(m.id).unwrap_or_default(),
                category: m.category.as_str().to_string(),
                priority: m.priority,
                kind: m.kind.into(),
                score: m.score,
                list_age_secs: list.map_or(0, |l| l.age_secs),
                // A list we know nothing about cannot be vouched for.
                stale: list.is_none_or(|l| l.stale),
            }
        })
        .collect()
}
