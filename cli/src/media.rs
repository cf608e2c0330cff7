//! Frame sources for the CLI: still images and folders, video files (ffmpeg, feature
//! `video`) and cameras (nokhwa, feature `camera`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use image::RgbImage;

pub const IMAGE_EXTS: &[&str] = &["jpg", "jpeg", "png", "bmp", "webp"];
pub const VIDEO_EXTS: &[&str] = &[
    "mp4", "mov", "avi", "mkv", "webm", "m4v", "ts", "mpg", "mpeg", "3gp",
];

fn ext_of(p: &Path) -> String {
    p.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

pub fn is_image(p: &Path) -> bool {
    IMAGE_EXTS.contains(&ext_of(p).as_str())
}

pub fn is_video(p: &Path) -> bool {
    VIDEO_EXTS.contains(&ext_of(p).as_str())
}

/// Expands folders (sorted, non-recursive into hidden entries) into their image and video
/// files; plain files are kept whatever their extension so that bad input is reported.
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot open {}", p.display()))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot list folder {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|e| {
                    !e.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            entries.sort();
            for e in entries {
                if e.is_dir() {
                    out.extend(expand_inputs(&[e])?);
                } else if is_image(&e) || is_video(&e) {
                    out.push(e);
                }
            }
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Decodes a still image to RGB.
pub fn load_image(path: &Path) -> Result<RgbImage> {
    let bytes = crate::input::read_file(path, "image", crate::input::MAX_IMAGE_BYTES)?;
    let img = image::load_from_memory(&bytes).with_context(|| {
        format!(
            "{} is not a readable image (corrupt or unsupported format)",
            path.display()
        )
    })?;
    // The decoder fills a JPEG cut short with grey without an error: say so instead.
    if crate::input::truncated_jpeg(&bytes) {
        bail!(
            "{} is a truncated JPEG (its end is missing): copy it again",
            path.display()
        );
    }
    Ok(img.to_rgb8())
}

/// A decoded video frame: luma and chroma planes (I420) plus its timestamp.
#[derive(Debug)]
pub struct VideoFrame {
    pub width: usize,
    pub height: usize,
    pub y: (Vec<u8>, usize),
    pub u: (Vec<u8>, usize),
    pub v: (Vec<u8>, usize),
    pub timestamp_ms: u64,
}

/// Calls `on_frame` for every frame of the video at `path`; returns the number of frames.
/// A truncated or corrupt stream is an error after the frames that could be decoded.
#[cfg(feature = "video")]
pub fn for_each_video_frame(
    path: &Path,
    mut on_frame: impl FnMut(&VideoFrame, Option<u64>) -> Result<()>,
) -> Result<u64> {
    use ffmpeg_next as ff;
    ff::init().context("ffmpeg failed to initialise")?;
    ff::util::log::set_level(ff::util::log::Level::Fatal);
    if !path.exists() {
        bail!("cannot open {}: no such file", path.display());
    }
    let mut ictx = ff::format::input(path).with_context(|| {
        format!(
            "{} is not a readable video (corrupt, truncated or unsupported)",
            path.display()
        )
    })?;
    let stream = ictx
        .streams()
        .best(ff::media::Type::Video)
        .with_context(|| format!("{} has no video stream", path.display()))?;
    let index = stream.index();
    let tb = stream.time_base();
    let total = (stream.frames() > 0).then_some(stream.frames() as u64);
    let ctx = ff::codec::context::Context::from_parameters(stream.parameters())
        .with_context(|| format!("{}: unsupported video codec", path.display()))?;
    let mut decoder = ctx
        .decoder()
        .video()
        .with_context(|| format!("{}: cannot open the video decoder", path.display()))?;
    let (w, h) = (decoder.width(), decoder.height());
    if w == 0 || h == 0 {
        bail!("{}: video stream has no frame size", path.display());
    }
    let mut scaler: Option<ff::software::scaling::Context> = None;
    let mut count = 0u64;
    let mut decoded = ff::util::frame::video::Video::empty();
    let mut converted = ff::util::frame::video::Video::empty();
    let mut emit = |frame: &ff::util::frame::video::Video, count: &mut u64| -> Result<()> {
        let ts = frame.timestamp().or(frame.pts()).unwrap_or(0);
        let ms = (ts as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator()).max(1.0)
            * 1000.0)
            .max(0.0) as u64;
        let plane = |i: usize| (frame.data(i).to_vec(), frame.stride(i));
        let vf = VideoFrame {
            width: frame.width() as usize,
            height: frame.height() as usize,
            y: plane(0),
            u: plane(1),
            v: plane(2),
            timestamp_ms: ms,
        };
        *count += 1;
        on_frame(&vf, total)
    };
    let mut receive = |decoder: &mut ff::decoder::Video, count: &mut u64| -> Result<()> {
        while decoder.receive_frame(&mut decoded).is_ok() {
            if decoded.format() == ff::format::Pixel::YUV420P
                || decoded.format() == ff::format::Pixel::YUVJ420P
            {
                emit(&decoded, count)?;
            } else {
                let sc = match &mut scaler {
                    Some(s) => s,
                    None => scaler.insert(
                        ff::software::scaling::Context::get(
                            decoded.format(),
                            decoded.width(),
                            decoded.height(),
                            ff::format::Pixel::YUV420P,
                            decoded.width(),
                            decoded.height(),
                            ff::software::scaling::Flags::BILINEAR,
                        )
                        .context("cannot convert the video's pixel format")?,
                    ),
                };
                sc.run(&decoded, &mut converted)
                    .context("video frame conversion failed")?;
                converted.set_pts(decoded.timestamp().or(decoded.pts()));
                emit(&converted, count)?;
            }
        }
        Ok(())
    };
    let mut errors = 0u32;
    for (s, packet) in ictx.packets() {
        if s.index() != index {
            continue;
        }
        if decoder.send_packet(&packet).is_err() {
            errors += 1;
            continue;
        }
        receive(&mut decoder, &mut count)?;
    }
    let _ = decoder.send_eof();
    receive(&mut decoder, &mut count)?;
    if count == 0 {
        bail!(
            "{}: no frame could be decoded (corrupt or truncated video)",
            path.display()
        );
    }
    if errors > 0 {
        bail!(
            "{}: {errors} packets could not be decoded after {count} frames (corrupt or truncated video)",
            path.display()
        );
    }
    if let Some(t) = total {
        if count + 2 < t {
            bail!(
                "{}: the video ended after {count} of {t} frames (truncated)",
                path.display()
            );
        }
    }
    Ok(count)
}

#[cfg(not(feature = "video"))]
pub fn for_each_video_frame(
    path: &Path,
    _on_frame: impl FnMut(&VideoFrame, Option<u64>) -> Result<()>,
) -> Result<u64> {
    bail!(
        "{}: this build has no video support; rebuild with `cargo build --release -p platewatch-cli --features video`",
        path.display()
    )
}

/// Calls `on_frame` with RGB frames from camera `index` until it returns false.
#[cfg(feature = "camera")]
pub fn for_each_camera_frame(
    index: u32,
    mut on_frame: impl FnMut(&RgbImage, u64) -> Result<bool>,
) -> Result<()> {
    use nokhwa::Camera;
    use nokhwa::pixel_format::RgbFormat;
    use nokhwa::utils::{ApiBackend, CameraIndex, RequestedFormat, RequestedFormatType};
    let cams = nokhwa::query(ApiBackend::Auto).unwrap_or_default();
    if cams.is_empty() {
        bail!("no camera found on this machine");
    }
    if index as usize >= cams.len() {
        bail!(
            "camera {index} does not exist ({} camera(s) found: 0..{})",
            cams.len(),
            cams.len() - 1
        );
    }
    let format = RequestedFormat::new::<RgbFormat>(RequestedFormatType::AbsoluteHighestResolution);
    let mut cam = Camera::new(CameraIndex::Index(index), format)
        .with_context(|| format!("cannot open camera {index}"))?;
    cam.open_stream()
        .with_context(|| format!("cannot start camera {index}"))?;
    let start = std::time::Instant::now();
    loop {
        let buf = cam.frame().context("camera frame capture failed")?;
        let img = buf
            .decode_image::<RgbFormat>()
            .context("camera frame decode failed")?;
        if !on_frame(&img, start.elapsed().as_millis() as u64)? {
            break;
        }
    }
    Ok(())
}

#[cfg(not(feature = "camera"))]
pub fn for_each_camera_frame(
    _index: u32,
    _on_frame: impl FnMut(&RgbImage, u64) -> Result<bool>,
) -> Result<()> {
    bail!(
        "this build has no camera support; rebuild with `cargo build --release -p platewatch-cli --features camera`"
    )
}
