//! Shared helpers for the end-to-end tests in `tests/tests/`: locating `../shared/datasets`,
//! loading images and labels, and building the engine with the shipped models.

pub mod sync_fixture;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;
use platewatch_core::{Engine, EngineConfig};

/// `../shared/datasets` beside the repository (override with `PLATEWATCH_DATASETS`).
pub fn datasets() -> PathBuf {
    let p = std::env::var_os("PLATEWATCH_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets"));
    assert!(
        p.join("MANIFEST.md").exists(),
        "the real-image tests need the shared datasets at {} (set PLATEWATCH_DATASETS)",
        p.display()
    );
    p
}

/// The engine with the models shipped in `models/` and the default configuration.
pub fn engine() -> Arc<Engine> {
    Arc::new(Engine::with_default_models(EngineConfig::default()).expect("shipped models load"))
}

/// A borrowed RGB8 frame of `img`.
pub fn rgb_frame(img: &RgbImage) -> platewatch_core::Frame<'_> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    platewatch_core::Frame::rgb8(img.as_raw(), w, h, w * 3).expect("valid frame")
}

pub fn load_rgb(path: &Path) -> RgbImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
        .to_rgb8()
}

/// Rows of a simple CSV (header skipped), split on commas.
pub fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let body = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    body.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(|f| f.trim().to_string()).collect())
        .collect()
}

/// `(image path, state, text)` of every crop in `ocr-us-crops`.
pub fn us_crops() -> Vec<(PathBuf, String, String)> {
    let dir = datasets().join("ocr-us-crops");
    csv_rows(&dir.join("labels.csv"))
        .into_iter()
        .map(|r| {
            (
                dir.join(&r[0]),
                r[1].to_ascii_uppercase(),
                r[2].to_ascii_uppercase(),
            )
        })
        .collect()
}
