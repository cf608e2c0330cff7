//! Reading the files a user names, safely: only regular files (a FIFO or a device such as
//! `/dev/zero` would hang or never end), and never more than a stated size.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Largest hot list file `hotlist import` reads.
pub const MAX_HOTLIST_BYTES: u64 = 512 * 1024 * 1024;
/// Largest still image `scan` and `eval` read.
pub const MAX_IMAGE_BYTES: u64 = 128 * 1024 * 1024;
/// Largest ONNX model file read with `--detector`, `--refiner` or `--reader`.
pub const MAX_MODEL_BYTES: u64 = 256 * 1024 * 1024;

/// The bytes of the regular file at `path` (`what` names it in errors), at most `max`.
pub fn read_file(path: &Path, what: &str, max: u64) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if !meta.is_file() {
        bail!(
            "{what} {} is not a regular file (a directory, pipe or device cannot be read)",
            path.display()
        );
    }
    if meta.len() > max {
        bail!(
            "{what} {} is {} MiB, more than the {} MiB this command reads",
            path.display(),
            meta.len() / (1024 * 1024),
            max / (1024 * 1024)
        );
    }
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may grow while it is read: never past the limit.
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if bytes.len() as u64 > max {
        bail!(
            "{what} {} grew past the {} MiB this command reads",
            path.display(),
            max / (1024 * 1024)
        );
    }
    Ok(bytes)
}

/// Whether `bytes` is a JPEG whose end-of-image marker is missing: a file cut short in a
/// copy or an upload decodes to a partly grey picture without any error from the decoder.
pub fn truncated_jpeg(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    // Some writers pad after the marker.
    let end = bytes
        .iter()
        .rposition(|&b| b != 0x00 && b != 0xFF)
        .map_or(0, |i| i + 1);
    let tail = &bytes[..(end + 1).min(bytes.len())];
    !tail.windows(2).rev().take(64).any(|w| w == [0xFF, 0xD9])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_devices_pipes_directories_and_oversized_files() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(read_file(Path::new("/dev/zero"), "file", 10).is_err());
        assert!(read_file(dir.path(), "file", 10).is_err());
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 11]).expect("write");
        let e = read_file(&big, "hot list", 10).expect_err("too big");
        assert!(e.to_string().contains("more than"), "{e}");
        let ok = dir.path().join("ok");
        std::fs::write(&ok, b"abc").expect("write");
        assert_eq!(read_file(&ok, "file", 10).expect("read"), b"abc");
        #[cfg(unix)]
        {
            let fifo = dir.path().join("fifo");
            let made = std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .is_ok_and(|s| s.success());
            if made {
                let e = read_file(&fifo, "file", 10).expect_err("a FIFO is refused at once");
                assert!(e.to_string().contains("not a regular file"), "{e}");
            }
        }
    }

    #[test]
    fn finds_jpegs_cut_short() {
        let mut img = image::RgbImage::new(64, 48);
        for (x, _, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 4) as u8, 90, 200]);
        }
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode_image(&img)
            .expect("encode");
        assert!(!truncated_jpeg(&jpeg));
        let mut padded = jpeg.clone();
        padded.extend_from_slice(&[0, 0, 0]);
        assert!(!truncated_jpeg(&padded));
        assert!(truncated_jpeg(&jpeg[..jpeg.len() * 2 / 3]));
        assert!(!truncated_jpeg(b"\x89PNG\r\n"));
    }
}
