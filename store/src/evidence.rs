//! Evidence images of an encounter: the plate crop (PNG) and the context image trimmed to the
//! vehicle (JPEG), encoded within the server's size limits, and optional encryption at rest
//! with ChaCha20-Poly1305 under a key the shell supplies (Android Keystore / iOS Keychain).

use std::io::Cursor;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageEncoder};
use platewatch_core::GrayImage;

use crate::{Result, StoreError};

/// Largest plate crop the server accepts by default, in bytes.
pub const MAX_CROP_BYTES: usize = 256 * 1024;
/// Largest context image the server accepts by default, in bytes.
pub const MAX_CONTEXT_BYTES: usize = 2 * 1024 * 1024;
/// JPEG quality of context images.
pub const CONTEXT_JPEG_QUALITY: u8 = 80;
const NONCE_LEN: usize = 12;

/// How an image's bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
}

impl ImageFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpeg",
        }
    }

    pub fn parse(s: &str) -> Option<ImageFormat> {
        match s {
            "png" => Some(ImageFormat::Png),
            "jpeg" => Some(ImageFormat::Jpeg),
            _ => None,
        }
    }
}

/// An encoded image.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    pub format: ImageFormat,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("format", &self.format)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// The images kept with an encounter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub crop: Image,
    /// Trimmed to the vehicle (`platewatch_core::encounter::context_crop`); `None` when the
    /// shell keeps no context image.
    pub context: Option<Image>,
}

impl Evidence {
    /// Encodes a plate crop as PNG (JPEG if the PNG would be too large) and a context image as
    /// JPEG, lowering the quality until each fits the server's limits.
    pub fn encode(crop: &GrayImage, context: Option<&GrayImage>) -> Result<Evidence> {
        let png = encode_png(crop)?;
        let crop = if png.len() <= MAX_CROP_BYTES {
            Image {
                format: ImageFormat::Png,
                bytes: png,
            }
        } else {
            jpeg_within(crop, MAX_CROP_BYTES)?
        };
        let context = context
            .map(|c| jpeg_within(c, MAX_CONTEXT_BYTES))
            .transpose()?;
        Ok(Evidence { crop, context })
    }

    /// Already-encoded images (from a shell that encodes with the platform's codecs).
    pub fn from_encoded(crop: Image, context: Option<Image>) -> Result<Evidence> {
        if crop.bytes.is_empty() || crop.bytes.len() > MAX_CROP_BYTES {
            return Err(StoreError::Image(format!(
                "the crop must be 1..={MAX_CROP_BYTES} bytes"
            )));
        }
        if context
            .as_ref()
            .is_some_and(|c| c.bytes.is_empty() || c.bytes.len() > MAX_CONTEXT_BYTES)
        {
            return Err(StoreError::Image(format!(
                "the context image must be 1..={MAX_CONTEXT_BYTES} bytes"
            )));
        }
        Ok(Evidence { crop, context })
    }
}

fn check_dims(img: &GrayImage) -> Result<(u32, u32)> {
    let (w, h) = (
        u32::try_from(img.width).map_err(|_| StoreError::Image("image too wide".into()))?,
        u32::try_from(img.height).map_err(|_| StoreError::Image("image too tall".into()))?,
    );
    if w == 0 || h == 0 || img.pixels.len() != img.width * img.height {
        return Err(StoreError::Image(
            "image is empty or its pixel buffer does not match its size".into(),
        ));
    }
    Ok((w, h))
}

/// Lossless grayscale PNG.
pub fn encode_png(img: &GrayImage) -> Result<Vec<u8>> {
    let (w, h) = check_dims(img)?;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        Cursor::new(&mut out),
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Adaptive,
    )
    .write_image(&img.pixels, w, h, ExtendedColorType::L8)
    .map_err(|e| StoreError::Image(format!("PNG encoding failed: {e}")))?;
    Ok(out)
}

/// Grayscale JPEG at `quality` (1..=100).
pub fn encode_jpeg(img: &GrayImage, quality: u8) -> Result<Vec<u8>> {
    let (w, h) = check_dims(img)?;
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(Cursor::new(&mut out), quality.clamp(1, 100))
        .write_image(&img.pixels, w, h, ExtendedColorType::L8)
        .map_err(|e| StoreError::Image(format!("JPEG encoding failed: {e}")))?;
    Ok(out)
}

fn jpeg_within(img: &GrayImage, max: usize) -> Result<Image> {
    for q in [CONTEXT_JPEG_QUALITY, 60, 40, 20, 10] {
        let bytes = encode_jpeg(img, q)?;
        if bytes.len() <= max {
            return Ok(Image {
                format: ImageFormat::Jpeg,
                bytes,
            });
        }
    }
    Err(StoreError::Image(format!(
        "the image does not fit in {max} bytes even at low quality"
    )))
}

/// A 256-bit key for image blobs at rest. Debug output never shows it.
#[derive(Clone)]
pub struct ImageKey(Key);

impl ImageKey {
    pub fn from_bytes(bytes: [u8; 32]) -> ImageKey {
        ImageKey(Key::from(bytes))
    }

    /// Seals `plain`, bound to `aad` (the encounter id and image kind, so blobs cannot be
    /// swapped between rows). Output: nonce || ciphertext with tag.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = Nonce::from(nonce_bytes);
        let ct = ChaCha20Poly1305::new(&self.0)
            .encrypt(&nonce, Payload { msg: plain, aad })
            .map_err(|_| StoreError::Crypto)?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens what [`ImageKey::seal`] produced; a wrong key, `aad` or altered bytes fail.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return Err(StoreError::Crypto);
        }
        let (n, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::from_slice(n);
        ChaCha20Poly1305::new(&self.0)
            .decrypt(nonce, Payload { msg: ct, aad })
            .map_err(|_| StoreError::Crypto)
    }
}

impl std::fmt::Debug for ImageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ImageKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(w: usize, h: usize) -> GrayImage {
        GrayImage {
            width: w,
            height: h,
            pixels: (0..w * h).map(|i| (i * 7 % 251) as u8).collect(),
        }
    }

    #[test]
    fn encodes_within_limits() {
        let e = Evidence::encode(&gray(120, 40), Some(&gray(360, 220))).unwrap();
        assert_eq!(e.crop.format, ImageFormat::Png);
        assert!(e.crop.bytes.starts_with(b"\x89PNG"));
        let ctx = e.context.unwrap();
        assert_eq!(ctx.format, ImageFormat::Jpeg);
        assert!(ctx.bytes.starts_with(&[0xFF, 0xD8]));
        assert!(Evidence::encode(&GrayImage::default(), None).is_err());
        let bad = GrayImage {
            width: 10,
            height: 10,
            pixels: vec![0; 3],
        };
        assert!(Evidence::encode(&bad, None).is_err());
    }

    #[test]
    fn sealing_is_bound_to_key_and_row() {
        let k = ImageKey::from_bytes([7; 32]);
        let sealed = k.seal(b"row-1/crop", b"pixels").unwrap();
        assert_ne!(&sealed[NONCE_LEN..], b"pixels");
        assert_eq!(k.open(b"row-1/crop", &sealed).unwrap(), b"pixels");
        assert!(k.open(b"row-2/crop", &sealed).is_err());
        assert!(
            ImageKey::from_bytes([8; 32])
                .open(b"row-1/crop", &sealed)
                .is_err()
        );
        let mut tampered = sealed.clone();
        tampered[NONCE_LEN] ^= 1;
        assert!(k.open(b"row-1/crop", &tampered).is_err());
        assert!(k.open(b"", &[1, 2]).is_err());
        assert_eq!(format!("{k:?}"), "ImageKey(<redacted>)");
    }
}
