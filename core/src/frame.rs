//! Borrowed camera frames (Gray8, RGB8, RGBA8/BGRA8, YUV 4:2:0 as I420/NV12/NV21 or
//! generic planes with pixel strides) with row strides and rotation, validated on construction.

use std::borrow::Cow;

use crate::error::FrameError;

const MAX_DIM: usize = 16384;

/// Clockwise rotation to apply to the buffer to make the scene upright
/// (CameraX `rotationDegrees`, AVFoundation orientation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rotation {
    #[default]
    R0,
    R90,
    R180,
    R270,
}

impl Rotation {
    /// From degrees (0, 90, 180, 270; negative and >360 values are wrapped).
    pub fn from_degrees(deg: i32) -> Option<Rotation> {
        match deg.rem_euclid(360) {
            0 => Some(Rotation::R0),
            90 => Some(Rotation::R90),
            180 => Some(Rotation::R180),
            270 => Some(Rotation::R270),
            _ => None,
        }
    }
}

/// One plane of pixel data: bytes, the distance between rows and between pixels.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    pub data: &'a [u8],
    pub row_stride: usize,
    pub pixel_stride: usize,
}

impl<'a> Plane<'a> {
    pub fn new(data: &'a [u8], row_stride: usize, pixel_stride: usize) -> Self {
        Plane {
            data,
            row_stride,
            pixel_stride,
        }
    }

    fn check(
        &self,
        name: &'static str,
        width: usize,
        height: usize,
        bytes_per_pixel: usize,
    ) -> Result<(), FrameError> {
        let row = (width - 1) * self.pixel_stride + bytes_per_pixel;
        if self.row_stride < row {
            return Err(FrameError::StrideTooSmall {
                plane: name,
                stride: self.row_stride,
                needed: row,
            });
        }
        let needed = (height - 1) * self.row_stride + row;
        if self.data.len() < needed {
            return Err(FrameError::BufferTooSmall {
                plane: name,
                len: self.data.len(),
                needed,
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Pixels<'a> {
    Gray(Plane<'a>),
    Rgb(Plane<'a>),
    Rgba(Plane<'a>),
    Bgra(Plane<'a>),
    Yuv420 {
        y: Plane<'a>,
        u: Plane<'a>,
        v: Plane<'a>,
    },
}

/// A borrowed camera frame. Construct with one of the checked constructors.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    width: usize,
    height: usize,
    rotation: Rotation,
    pixels: Pixels<'a>,
}

fn check_dims(width: usize, height: usize) -> Result<(), FrameError> {
    if width == 0 || height == 0 || width > MAX_DIM || height > MAX_DIM {
        return Err(FrameError::BadDimensions { width, height });
    }
    Ok(())
}

impl<'a> Frame<'a> {
    /// 8-bit grayscale, `stride` bytes per row.
    pub fn gray8(
        data: &'a [u8],
        width: usize,
        height: usize,
        stride: usize,
    ) -> Result<Self, FrameError> {
        Self::packed(Pixels::Gray(Plane::new(data, stride, 1)), width, height, 1)
    }

    /// Packed RGB, 3 bytes per pixel.
    pub fn rgb8(
        data: &'a [u8],
        width: usize,
        height: usize,
        stride: usize,
    ) -> Result<Self, FrameError> {
        Self::packed(Pixels::Rgb(Plane::new(data, stride, 3)), width, height, 3)
    }

    /// Packed RGBA, 4 bytes per pixel (Android `Bitmap`, nokhwa).
    pub fn rgba8(
        data: &'a [u8],
        width: usize,
        height: usize,
        stride: usize,
    ) -> Result<Self, FrameError> {
        Self::packed(Pixels::Rgba(Plane::new(data, stride, 4)), width, height, 4)
    }

    /// Packed BGRA, 4 bytes per pixel (iOS `kCVPixelFormatType_32BGRA`).
    pub fn bgra8(
        data: &'a [u8],
        width: usize,
        height: usize,
        stride: usize,
    ) -> Result<Self, FrameError> {
        Self::packed(Pixels::Bgra(Plane::new(data, stride, 4)), width, height, 4)
    }

    fn packed(
        pixels: Pixels<'a>,
        width: usize,
        height: usize,
        bpp: usize,
    ) -> Result<Self, FrameError> {
        check_dims(width, height)?;
        let plane = match pixels {
            Pixels::Gray(p) | Pixels::Rgb(p) | Pixels::Rgba(p) | Pixels::Bgra(p) => p,
            Pixels::Yuv420 { .. } => unreachable!("packed() is only called with packed formats"),
        };
        plane.check("packed", width, height, bpp)?;
        Ok(Frame {
            width,
            height,
            rotation: Rotation::R0,
            pixels,
        })
    }

    /// YUV 4:2:0 from three planes with row and pixel strides, as CameraX `ImageProxy`
    /// delivers (`YUV_420_888`). Chroma planes are (width+1)/2 x (height+1)/2.
    pub fn yuv420(
        width: usize,
        height: usize,
        y: Plane<'a>,
        u: Plane<'a>,
        v: Plane<'a>,
    ) -> Result<Self, FrameError> {
        check_dims(width, height)?;
        if y.pixel_stride != 1 {
            return Err(FrameError::BadPixelStride {
                plane: "Y",
                stride: y.pixel_stride,
                expected: "1",
            });
        }
        for (name, p) in [("U", &u), ("V", &v)] {
            if p.pixel_stride == 0 || p.pixel_stride > 4 {
                return Err(FrameError::BadPixelStride {
                    plane: name,
                    stride: p.pixel_stride,
                    expected: "1 or 2",
                });
            }
        }
        y.check("Y", width, height, 1)?;
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        u.check("U", cw, ch, 1)?;
        v.check("V", cw, ch, 1)?;
        Ok(Frame {
            width,
            height,
            rotation: Rotation::R0,
            pixels: Pixels::Yuv420 { y, u, v },
        })
    }

    /// I420: Y plane, then separate U and V planes (pixel stride 1).
    pub fn i420(
        width: usize,
        height: usize,
        y: (&'a [u8], usize),
        u: (&'a [u8], usize),
        v: (&'a [u8], usize),
    ) -> Result<Self, FrameError> {
        Self::yuv420(
            width,
            height,
            Plane::new(y.0, y.1, 1),
            Plane::new(u.0, u.1, 1),
            Plane::new(v.0, v.1, 1),
        )
    }

    /// NV12: Y plane, then one interleaved UV plane (U first).
    pub fn nv12(
        width: usize,
        height: usize,
        y: (&'a [u8], usize),
        uv: (&'a [u8], usize),
    ) -> Result<Self, FrameError> {
        let v = uv.0.get(1..).unwrap_or(&[]);
        Self::yuv420(
            width,
            height,
            Plane::new(y.0, y.1, 1),
            Plane::new(uv.0, uv.1, 2),
            Plane::new(v, uv.1, 2),
        )
    }

    /// NV21: Y plane, then one interleaved VU plane (V first; Android camera default).
    pub fn nv21(
        width: usize,
        height: usize,
        y: (&'a [u8], usize),
        vu: (&'a [u8], usize),
    ) -> Result<Self, FrameError> {
        let u = vu.0.get(1..).unwrap_or(&[]);
        Self::yuv420(
            width,
            height,
            Plane::new(y.0, y.1, 1),
            Plane::new(u, vu.1, 2),
            Plane::new(vu.0, vu.1, 2),
        )
    }

    /// The same frame with a rotation to apply to make it upright.
    pub fn with_rotation(mut self, rotation: Rotation) -> Self {
        self.rotation = rotation;
        self
    }

    /// Buffer width before rotation.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Buffer height before rotation.
    pub fn height(&self) -> usize {
        self.height
    }

    pub fn rotation(&self) -> Rotation {
        self.rotation
    }

    /// Width and height of the upright scene (after rotation).
    pub fn upright_size(&self) -> (usize, usize) {
        match self.rotation {
            Rotation::R0 | Rotation::R180 => (self.width, self.height),
            Rotation::R90 | Rotation::R270 => (self.height, self.width),
        }
    }

    /// The luma (BT.601) plane. Borrowed without copying for Gray8 and YUV frames;
    /// computed for packed colour frames.
    pub fn luma(&self) -> Luma<'a> {
        let (w, h) = (self.width, self.height);
        let convert = |p: Plane<'a>, r: usize, g: usize, b: usize| {
            let mut out = vec![0u8; w * h];
            for (row, dst) in out.chunks_exact_mut(w).enumerate() {
                let line = &p.data[row * p.row_stride..];
                // A constant pixel stride lets the compiler unroll and vectorise the loop.
                match p.pixel_stride {
                    3 => luma_row(line, dst, 3, r, g, b),
                    4 => luma_row(line, dst, 4, r, g, b),
                    n => luma_row(line, dst, n, r, g, b),
                }
            }
            Luma {
                data: Cow::Owned(out),
                width: w,
                height: h,
                stride: w,
            }
        };
        match self.pixels {
            Pixels::Gray(p) => Luma {
                data: Cow::Borrowed(p.data),
                width: w,
                height: h,
                stride: p.row_stride,
            },
            Pixels::Yuv420 { y, .. } => Luma {
                data: Cow::Borrowed(y.data),
                width: w,
                height: h,
                stride: y.row_stride,
            },
            Pixels::Rgb(p) => convert(p, 0, 1, 2),
            Pixels::Rgba(p) => convert(p, 0, 1, 2),
            Pixels::Bgra(p) => convert(p, 2, 1, 0),
        }
    }

    /// The RGB colour of buffer pixel (x, y) (not rotated). Used to cut colour evidence crops.
    pub fn rgb_at(&self, x: usize, y: usize) -> [u8; 3] {
        let at = |p: &Plane<'_>, x: usize, y: usize| p.data[y * p.row_stride + x * p.pixel_stride];
        match &self.pixels {
            Pixels::Gray(p) => {
                let g = at(p, x, y);
                [g, g, g]
            }
            Pixels::Rgb(p) | Pixels::Rgba(p) => {
                let i = y * p.row_stride + x * p.pixel_stride;
                [p.data[i], p.data[i + 1], p.data[i + 2]]
            }
            Pixels::Bgra(p) => {
                let i = y * p.row_stride + x * p.pixel_stride;
                [p.data[i + 2], p.data[i + 1], p.data[i]]
            }
            Pixels::Yuv420 { y: yp, u, v } => {
                let yy = at(yp, x, y) as f32;
                let uu = at(u, x / 2, y / 2) as f32 - 128.0;
                let vv = at(v, x / 2, y / 2) as f32 - 128.0;
                let c = |f: f32| f.round().clamp(0.0, 255.0) as u8;
                [
                    c(yy + 1.402 * vv),
                    c(yy - 0.344_136 * uu - 0.714_136 * vv),
                    c(yy + 1.772 * uu),
                ]
            }
        }
    }
}

/// A luma plane, borrowed from the frame where possible.
#[derive(Debug, Clone)]
pub struct Luma<'a> {
    pub data: Cow<'a, [u8]>,
    pub width: usize,
    pub height: usize,
    pub stride: usize,
}

impl Luma<'_> {
    /// Pixel at (x, y); callers keep coordinates in range.
    #[inline]
    pub fn at(&self, x: usize, y: usize) -> u8 {
        self.data[y * self.stride + x]
    }

    /// True when the plane borrows the caller's buffer (no copy was made).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.data, Cow::Borrowed(_))
    }
}

/// BT.601 luma (8.8 fixed point) of one row of `dst.len()` packed pixels of `stride` bytes,
/// channels at `r`, `g`, `b`. Always inlined, so a constant `stride` specialises the loop.
#[inline(always)]
fn luma_row(line: &[u8], dst: &mut [u8], stride: usize, r: usize, g: usize, b: usize) {
    for (px, d) in line.chunks_exact(stride).zip(dst.iter_mut()) {
        *d = ((77 * px[r] as u32 + 150 * px[g] as u32 + 29 * px[b] as u32 + 128) >> 8) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuv_luma_is_borrowed_and_rgb_is_converted() {
        let y = vec![10u8; 8 * 4];
        let uv = vec![128u8; 8 * 2];
        let f = Frame::nv21(6, 4, (&y, 8), (&uv, 8)).expect("valid nv21");
        let l = f.luma();
        assert!(l.is_borrowed());
        assert_eq!(l.at(5, 3), 10);
        assert_eq!(f.rgb_at(1, 1), [10, 10, 10]);

        let rgb = [255u8, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255];
        let f = Frame::rgb8(&rgb, 4, 1, 12).expect("valid rgb");
        let l = f.luma();
        assert!(!l.is_borrowed());
        assert_eq!(&l.data[..], &[77, 149, 29, 255]);
        let bgra = [0u8, 0, 255, 255];
        assert_eq!(
            Frame::bgra8(&bgra, 1, 1, 4).expect("valid").luma().at(0, 0),
            77
        );
    }

    #[test]
    fn bad_frames_are_rejected() {
        let buf = vec![0u8; 100];
        assert!(matches!(
            Frame::gray8(&buf, 0, 10, 10),
            Err(FrameError::BadDimensions { .. })
        ));
        assert!(matches!(
            Frame::gray8(&buf, 20, 5, 10),
            Err(FrameError::StrideTooSmall { .. })
        ));
        assert!(matches!(
            Frame::gray8(&buf, 10, 11, 10),
            Err(FrameError::BufferTooSmall { .. })
        ));
        assert!(matches!(
            Frame::rgba8(&buf, 5, 6, 20),
            Err(FrameError::BufferTooSmall { .. })
        ));
        // Last row may be shorter than the stride.
        assert!(Frame::gray8(&buf, 10, 10, 10).is_ok());
        assert!(Frame::gray8(&buf[..95], 5, 10, 10).is_ok());
        let y = vec![0u8; 16];
        assert!(matches!(
            Frame::nv12(4, 4, (&y, 4), (&y[..3], 4)),
            Err(FrameError::BufferTooSmall { .. })
        ));
        assert!(Frame::nv12(4, 4, (&y, 4), (&y[..8], 4)).is_ok());
        assert!(matches!(
            Frame::yuv420(
                4,
                4,
                Plane::new(&y, 4, 2),
                Plane::new(&y, 4, 1),
                Plane::new(&y, 4, 1)
            ),
            Err(FrameError::BadPixelStride { .. })
        ));
    }

    #[test]
    fn rotation_swaps_upright_size() {
        let buf = vec![0u8; 200];
        let f = Frame::gray8(&buf, 20, 10, 20)
            .expect("valid")
            .with_rotation(Rotation::R90);
        assert_eq!(f.upright_size(), (10, 20));
        assert_eq!(Rotation::from_degrees(-90), Some(Rotation::R270));
        assert_eq!(Rotation::from_degrees(45), None);
    }
}
