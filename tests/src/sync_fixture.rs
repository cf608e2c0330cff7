//! Fixtures for the device-sync tests and their crash-test child: plate reads with known
//! text, small but real evidence images (PNG crop, JPEG context), a session request and the
//! image key, so the child process and the test agree on what was recorded.

use platewatch_core::encounter::{ContextPolicy, context_crop};
use platewatch_core::{BBox, Frame, GrayImage, PlateRead, Quad};
use platewatch_store::{Evidence, ImageKey};

/// The image key the sync tests encrypt blobs with.
pub fn image_key() -> ImageKey {
    ImageKey::from_bytes(*b"platewatch-sync-tests-image-key!")
}

/// The plate text of the `i`-th recorded encounter of a run (unique per index).
pub fn plate_for(i: u64) -> String {
    format!("PW{i:07}")
}

/// A consensus read of `text` at a fixed place in a 1280x720 frame.
pub fn plate_read(text: &str) -> PlateRead {
    let bbox = BBox::new(600.0, 480.0, 96.0, 32.0);
    PlateRead {
        track_id: 1,
        text: text.to_string(),
        char_confidences: vec![0.95; text.len()],
        confidence: 0.93,
        state: Some("CA"),
        state_confidence: 0.8,
        region: None,
        region_confidence: 0.0,
        bbox,
        quad: Quad::from_bbox(&bbox),
        first_seen_ms: 0,
        last_seen_ms: 120,
        frames: 4,
        crop: GrayImage::default(),
        context: None,
    }
}

/// A synthetic 1280x720 grayscale frame with some texture.
pub fn frame_pixels() -> Vec<u8> {
    (0..1280 * 720)
        .map(|i: usize| {
            let (x, y) = (i % 1280, i / 1280);
            ((x * 3 + y * 5) % 256) as u8 ^ (((x / 16 + y / 16) % 2) as u8 * 90)
        })
        .collect()
}

/// Encoded evidence for [`plate_read`]: the plate crop and the vehicle context from a
/// synthetic frame (about 2 KB + 20 KB).
pub fn evidence() -> Evidence {
    let pixels = frame_pixels();
    let frame = Frame::gray8(&pixels, 1280, 720, 1280).expect("valid synthetic frame");
    let read = plate_read("X");
    let crop =
        platewatch_core::imgproc::Sampler::new(frame.luma(), frame.rotation()).crop(&read.bbox);
    let context = context_crop(&frame, &read.bbox, ContextPolicy::default());
    Evidence::encode(&crop, Some(&context)).expect("synthetic evidence encodes")
}
