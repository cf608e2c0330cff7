//! Delivering events to listeners: the foreign [`ScanListener`] trait, one delivery thread per
//! subscription with a bounded queue (frame results are dropped first when a listener falls
//! behind; nothing ever blocks the inference thread), and the [`TaskHandle`] that stops it.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

use crate::error::ErrorKind;
use crate::types::{AlertEvent, FrameResult, PlateReadEvent, ScanError, SyncStatus};

/// Implemented by the app (Kotlin, Swift) or by Rust. Called on a delivery thread owned by
/// the subscription, never on the caller's or the inference thread; one call at a time, in
/// order. A slow listener loses frame results first, then other events (counted in
/// `FrameStats::events_dropped`).
#[uniffi::export(with_foreign)]
pub trait ScanListener: Send + Sync {
    /// Plates seen in one processed frame (for the live overlay).
    fn on_frame(&self, frame: FrameResult);
    /// A vehicle pass ended with a consensus read.
    fn on_read(&self, read: PlateReadEvent);
    /// A read matched a hot list.
    fn on_alert(&self, alert: AlertEvent);
    /// Progress of a `sync_now`: started, then finished or failed with the report (uploads,
    /// per-list hot list outcomes — a refused list is reported here —, list ages and
    /// staleness).
    fn on_sync(&self, status: SyncStatus);
    /// An error from the inference thread or a background task.
    fn on_error(&self, error: ScanError);
}

#[derive(Debug, Clone)]
pub(crate) enum Event {
    Frame(FrameResult),
    Read(PlateReadEvent),
    Alert(AlertEvent),
    Sync(SyncStatus),
    Error(ScanError),
}

impl Event {
    pub(crate) fn error(kind: ErrorKind, message: impl Into<String>) -> Event {
        Event::Error(ScanError {
            kind,
            message: message.into(),
        })
    }
}

/// Frame results queued per listener before newer ones are dropped.
const MAX_QUEUED_FRAMES: usize = 4;
/// Events of any kind queued per listener before new ones are dropped.
const MAX_QUEUED: usize = 1024;

#[derive(Debug, Default)]
struct QueueState {
    events: VecDeque<Event>,
    frames: usize,
    closed: bool,
}

/// One subscription's queue.
#[derive(Debug, Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Queue {
    /// Queues `e`; false when it was dropped (full, or closed).
    fn push(&self, e: Event) -> bool {
        let mut s = lock(&self.state);
        if s.closed {
            return false;
        }
        let is_frame = matches!(e, Event::Frame(_));
        if s.events.len() >= MAX_QUEUED || (is_frame && s.frames >= MAX_QUEUED_FRAMES) {
            return false;
        }
        s.frames += usize::from(is_frame);
        s.events.push_back(e);
        drop(s);
        self.ready.notify_one();
        true
    }

    /// The next event, or None once closed.
    fn pop(&self) -> Option<Event> {
        let mut s = lock(&self.state);
        loop {
            if s.closed {
                return None;
            }
            if let Some(e) = s.events.pop_front() {
                if matches!(e, Event::Frame(_)) {
                    s.frames -= 1;
                }
                return Some(e);
            }
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn close(&self) {
        let mut s = lock(&self.state);
        s.closed = true;
        s.events.clear();
        s.frames = 0;
        drop(s);
        self.ready.notify_all();
    }

    fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }
}

/// Fans events out to every subscription.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    subs: Mutex<Vec<(u64, Arc<Queue>)>>,
    next_id: AtomicU64,
    dropped: AtomicU64,
}

impl Hub {
    pub(crate) fn publish(&self, e: Event) {
        let subs = lock(&self.subs);
        for (_, q) in subs.iter() {
            if !q.push(e.clone()) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events that could not be queued for a listener.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Starts delivering to `listener` on its own thread.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        listener: Arc<dyn ScanListener>,
    ) -> Result<TaskHandle, std::io::Error> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(Queue::default());
        let q = queue.clone();
        std::thread::Builder::new()
            .name(format!("platewatch-listener-{id}"))
            .spawn(move || deliver(&q, listener.as_ref()))?;
        lock(&self.subs).push((id, queue.clone()));
        Ok(TaskHandle {
            id,
            queue,
            hub: Arc::downgrade(self),
        })
    }

    fn unsubscribe(&self, id: u64) {
        lock(&self.subs).retain(|(i, _)| *i != id);
    }

    /// Stops every delivery thread (the scanner is going away).
    pub(crate) fn close_all(&self) {
        for (_, q) in lock(&self.subs).drain(..) {
            q.close();
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.close_all();
    }
}

/// The delivery loop. A listener that throws (or panics) loses that one event, not the
/// subscription. The listener is released when the loop ends.
fn deliver(queue: &Queue, listener: &dyn ScanListener) {
    while let Some(e) = queue.pop() {
        let call = AssertUnwindSafe(|| match e {
            Event::Frame(f) => listener.on_frame(f),
            Event::Read(r) => listener.on_read(r),
            Event::Alert(a) => listener.on_alert(a),
            Event::Sync(s) => listener.on_sync(s),
            Event::Error(err) => listener.on_error(err),
        });
        if catch_unwind(call).is_err() {
            tracing::warn!("a scan listener failed while handling an event");
        }
    }
}

/// A running subscription. `cancel()` (or dropping it: `close()` in Kotlin) stops delivery;
/// events still queued are discarded and the listener is released.
#[derive(Debug, uniffi::Object)]
pub struct TaskHandle {
    id: u64,
    queue: Arc<Queue>,
    hub: Weak<Hub>,
}

#[uniffi::export]
impl TaskHandle {
    /// Stops delivery. Safe to call more than once, and from inside a listener callback.
    pub fn cancel(&self) {
        self.queue.close();
        if let Some(hub) = self.hub.upgrade() {
            hub.unsubscribe(self.id);
        }
    }

    /// False once cancelled or once the scanner is gone.
    pub fn is_active(&self) -> bool {
        !self.queue.is_closed() && self.hub.strong_count() > 0
    }
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        self.cancel();
    }
}
