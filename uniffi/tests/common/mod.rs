//! Shared by the facade's integration tests and the benchmark example: a scanner over the
//! repository's models in a temporary store, a recording listener, and camera frames rendered
//! like `platewatch demo` and laid out as CameraX and iOS deliver them.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;
use platewatch_ffi::*;

pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models")
}

pub fn config(store: &std::path::Path) -> ScannerConfig {
    let m = models_dir();
    ScannerConfig {
        detector: ModelSource::File {
            path: m.join("plate_detector.onnx").display().to_string(),
        },
        reader: ModelSource::File {
            path: m.join("plate_reader.onnx").display().to_string(),
        },
        refiner: Some(ModelSource::File {
            path: m.join("plate_refiner.onnx").display().to_string(),
        }),
        store_path: store.display().to_string(),
        device_id: "test-phone".into(),
        camera_id: "rear".into(),
        reason_codes: vec!["patrol".into(), "investigation".into()],
        server_url: None,
        device_token: None,
        device: None,
        hotlist_key: None,
        image_key: Some(vec![7; 32]),
        input_width: 0,
        input_height: 0,
        detector_threshold: 0.0,
        min_read_confidence: 0.0,
        alert_threshold: 0.0,
        alert_hold_ms: -1,
    }
}

pub fn session() -> SessionStart {
    SessionStart {
        user: "ofc.lee".into(),
        reason_code: "patrol".into(),
        case_number: Some("C-2026-17".into()),
        justification: None,
        on_behalf_of: None,
    }
}

/// Everything a listener received.
#[derive(Debug, Default)]
pub struct Seen {
    pub frames: Vec<FrameResult>,
    pub reads: Vec<PlateReadEvent>,
    pub alerts: Vec<AlertEvent>,
    pub syncs: Vec<SyncStatus>,
    pub errors: Vec<ScanError>,
}

#[derive(Debug, Default)]
pub struct Recorder {
    pub seen: Mutex<Seen>,
    changed: Condvar,
}

impl Recorder {
    fn with(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.seen.lock().expect("recorder lock"));
        self.changed.notify_all();
    }

    /// Waits until `cond` holds (or `timeout`); returns whether it did.
    pub fn wait(&self, timeout: Duration, cond: impl Fn(&Seen) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.seen.lock().expect("recorder lock");
        while !cond(&s) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self.changed.wait_timeout(s, left).expect("recorder lock").0;
        }
        true
    }
}

impl ScanListener for Recorder {
    fn on_frame(&self, frame: FrameResult) {
        self.with(|s| s.frames.push(frame));
    }
    fn on_read(&self, read: PlateReadEvent) {
        self.with(|s| s.reads.push(read));
    }
    fn on_alert(&self, alert: AlertEvent) {
        self.with(|s| s.alerts.push(alert));
    }
    fn on_sync(&self, status: SyncStatus) {
        self.with(|s| s.syncs.push(status));
    }
    fn on_error(&self, error: ScanError) {
        self.with(|s| s.errors.push(error));
    }
}

/// BT.601 luma of an RGB pixel (the engine's own formula).
fn luma(p: [u8; 3]) -> u8 {
    ((77 * p[0] as u32 + 150 * p[1] as u32 + 29 * p[2] as u32 + 128) >> 8) as u8
}

/// An RGB image as CameraX `YUV_420_888` with padded rows and interleaved chroma (pixel
/// stride 2, as most Android devices deliver it): Y row stride = width + 64.
pub fn yuv_frame(img: &RgbImage, timestamp_ms: i64, gps: Option<GpsPosition>) -> CameraFrame {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let ys = w + 64;
    let mut y = vec![0u8; ys * h];
    for (x, yy, p) in img.enumerate_pixels() {
        y[yy as usize * ys + x as usize] = luma(p.0);
    }
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let cs = cw * 2 + 32;
    // One interleaved VU buffer; U starts one byte in (NV21 layout), as ImageProxy planes do.
    let vu = vec![128u8; cs * ch];
    let u = vu[1..].to_vec();
    CameraFrame {
        width: w as u32,
        height: h as u32,
        rotation_degrees: 0,
        timestamp_ms,
        pixels: FramePixels::Yuv420 {
            y: PlaneData {
                bytes: y,
                row_stride: ys as u32,
                pixel_stride: 1,
            },
            u: PlaneData {
                bytes: u,
                row_stride: cs as u32,
                pixel_stride: 2,
            },
            v: PlaneData {
                bytes: vu,
                row_stride: cs as u32,
                pixel_stride: 2,
            },
        },
        gps,
    }
}

/// An RGB image as a `kCVPixelFormatType_32BGRA` buffer with padded rows.
pub fn bgra_frame(img: &RgbImage, timestamp_ms: i64) -> CameraFrame {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let rs = w * 4 + 64;
    let mut b = vec![0u8; rs * h];
    for (x, y, p) in img.enumerate_pixels() {
        let o = y as usize * rs + x as usize * 4;
        b[o..o + 4].copy_from_slice(&[p.0[2], p.0[1], p.0[0], 255]);
    }
    CameraFrame {
        width: w as u32,
        height: h as u32,
        rotation_degrees: 0,
        timestamp_ms,
        pixels: FramePixels::Bgra {
            bytes: b,
            row_stride: rs as u32,
        },
        gps: None,
    }
}

pub fn gps(at_ms: i64) -> Option<GpsPosition> {
    Some(GpsPosition {
        lat: 37.7749,
        lon: -122.4194,
        accuracy_m: Some(5.0),
        at_ms,
    })
}

/// Pushes `frame`, retrying while the inference thread is busy (tests want every frame read).
pub fn push_all(scanner: &Scanner, frame: CameraFrame) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while scanner.push_frame(frame.clone()).expect("valid frame") == PushOutcome::Dropped {
        assert!(
            Instant::now() < deadline,
            "the inference thread never took a frame"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn scanner_with(store: &std::path::Path) -> Arc<Scanner> {
    Scanner::new(config(store)).expect("scanner loads the repository's models")
}

/// A minimal executor for the async exports (the foreign side uses coroutines / Swift async).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Thread(std::thread::Thread);
    impl Wake for Thread {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Thread(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// The frame's planes as `BufferPlane`s pointing into its own byte vectors (which outlive the
/// push), as the Kotlin and Swift layers pass CameraX / CVPixelBuffer memory.
pub fn in_place(f: &CameraFrame) -> BufferFrame {
    let plane = |bytes: &[u8], row_stride: u32, pixel_stride: u32| BufferPlane {
        address: bytes.as_ptr() as u64,
        len: bytes.len() as u64,
        row_stride,
        pixel_stride,
    };
    let pixels = match &f.pixels {
        FramePixels::Yuv420 { y, u, v } => BufferPixels::Yuv420 {
            y: plane(&y.bytes, y.row_stride, y.pixel_stride),
            u: plane(&u.bytes, u.row_stride, u.pixel_stride),
            v: plane(&v.bytes, v.row_stride, v.pixel_stride),
        },
        FramePixels::Bgra { bytes, row_stride } => BufferPixels::Bgra {
            plane: plane(bytes, *row_stride, 4),
        },
        FramePixels::Gray { bytes, row_stride } => BufferPixels::Gray {
            plane: plane(bytes, *row_stride, 1),
        },
    };
    BufferFrame {
        width: f.width,
        height: f.height,
        rotation_degrees: f.rotation_degrees,
        timestamp_ms: f.timestamp_ms,
        pixels,
        gps: f.gps,
    }
}
