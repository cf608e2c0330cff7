//! The one place that reads pixel memory by address (`Scanner::push_frame_buffers`): CameraX
//! plane buffers and `CVPixelBuffer`s are handed over as address + length, so Kotlin and Swift
//! copy nothing and the worker copies only the rows it needs.
//!
//! This is the crate's only hand-written `unsafe` (tests/no_unsafe.rs allows this file alone).
//! Its contract, stated on `push_frame_buffers` for the foreign callers: every plane's
//! `address` points to at least `len` readable bytes that stay valid and are not written
//! while the call runs. The Kotlin layer takes them from direct `ByteBuffer`s of an open
//! `ImageProxy`, the Swift layer from a `CVPixelBuffer` locked for reading.

use crate::error::PlatewatchError;
use crate::types::BufferPlane;

/// The plane's bytes, borrowed for as long as the plane description is (the call).
pub(crate) fn plane_bytes(p: &BufferPlane) -> Result<&[u8], PlatewatchError> {
    if p.address == 0 {
        return Err(PlatewatchError::invalid("a plane's address is null"));
    }
    let len = usize::try_from(p.len)
        .ok()
        .filter(|&l| l > 0 && l <= isize::MAX as usize)
        .ok_or_else(|| PlatewatchError::invalid("a plane's len is out of range"))?;
    let addr = usize::try_from(p.address)
        .map_err(|_| PlatewatchError::invalid("a plane's address is out of range"))?;
    if addr
        .checked_add(len)
        .is_none_or(|end| end > isize::MAX as usize)
    {
        return Err(PlatewatchError::invalid(
            "a plane's address + len is out of range",
        ));
    }
    // SAFETY: the address is non-null, the range does not wrap and fits `isize`, `u8` has no
    // alignment; the caller guarantees (documented contract above and on
    // `push_frame_buffers`) that `len` bytes from `address` are readable and unchanged until
    // the call returns, and the returned slice cannot outlive `p`, which lives no longer than
    // the call.
    Ok(unsafe { std::slice::from_raw_parts(addr as *const u8, len) })
}

/// Copies `rows` rows of `row_bytes` bytes, `stride` apart, into one tight buffer.
pub(crate) fn copy_rows(src: &[u8], stride: usize, row_bytes: usize, rows: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(row_bytes * rows);
    for r in 0..rows {
        let start = r * stride;
        out.extend_from_slice(&src[start..start + row_bytes]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(address: u64, len: u64) -> BufferPlane {
        BufferPlane {
            address,
            len,
            row_stride: 4,
            pixel_stride: 1,
        }
    }

    #[test]
    fn bad_addresses_are_refused_not_read() {
        assert!(plane_bytes(&plane(0, 16)).is_err());
        assert!(plane_bytes(&plane(4096, 0)).is_err());
        assert!(plane_bytes(&plane(u64::MAX - 2, 16)).is_err());
        assert!(plane_bytes(&plane(4096, u64::MAX)).is_err());
    }

    #[test]
    fn reads_memory_in_place() {
        let data: Vec<u8> = (0..32).collect();
        let p = plane(data.as_ptr() as u64, data.len() as u64);
        assert_eq!(plane_bytes(&p).expect("readable"), &data[..]);
        assert_eq!(
            copy_rows(&data, 8, 3, 4),
            vec![0, 1, 2, 8, 9, 10, 16, 17, 18, 24, 25, 26]
        );
    }
}
