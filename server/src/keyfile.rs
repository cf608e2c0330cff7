//! Secret key files kept outside the database: base64 (standard alphabet) of 32 random bytes on
//! one line, created with mode 0600 when missing. The hot list signing key, the audit chain's
//! HMAC key and the audit checkpoint signing key are such files.

use std::io::Write as _;
use std::path::Path;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine as _;

/// Why a key file could not be used. `what` names the key (`hot list key`, `audit key`, …).
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{what} file {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{what} file {path} does not hold base64 of 32 bytes")]
    Malformed { what: &'static str, path: String },
    #[error("{what} file {path} does not exist (the server creates it when it first starts)")]
    Missing { what: &'static str, path: String },
}

/// 32 bytes from the operating system's random source.
pub fn random_32() -> [u8; 32] {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    b
}

/// Reads the 32 bytes in `path`; [`KeyFileError::Missing`] when there is no such file.
pub fn load(path: &Path, what: &'static str) -> Result<[u8; 32], KeyFileError> {
    let shown = || path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| KeyFileError::Malformed {
                what,
                path: shown(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(KeyFileError::Missing {
            what,
            path: shown(),
        }),
        Err(source) => Err(KeyFileError::Io {
            what,
            path: shown(),
            source,
        }),
    }
}

/// Reads the 32 bytes in `path`, or writes 32 new random bytes there (a new file, mode 0600)
/// when it does not exist. Returns the bytes and whether the file was created.
pub fn load_or_create(path: &Path, what: &'static str) -> Result<([u8; 32], bool), KeyFileError> {
    match load(path, what) {
        Ok(bytes) => Ok((bytes, false)),
        Err(KeyFileError::Missing { .. }) => {
            let io = |source| KeyFileError::Io {
                what,
                path: path.display().to_string(),
                source,
            };
            let bytes = random_32();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(path).map_err(io)?;
            let text = base64::engine::general_purpose::STANDARD.encode(bytes);
            writeln!(f, "{text}").map_err(io)?;
            f.sync_all().map_err(io)?;
            Ok((bytes, true))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_read_back_and_bad_contents_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("k");
        assert!(matches!(
            load(&path, "test key"),
            Err(KeyFileError::Missing { .. })
        ));
        let (a, created) = load_or_create(&path, "test key").expect("create");
        assert!(created);
        let (b, created) = load_or_create(&path, "test key").expect("read");
        assert!(!created);
        assert_eq!(a, b);
        assert_eq!(load(&path, "test key").expect("load"), a);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not base64!\n").expect("write");
        let e = load_or_create(&path, "test key").expect_err("malformed");
        assert!(matches!(e, KeyFileError::Malformed { .. }), "{e}");
        assert!(e.to_string().starts_with("test key file "), "{e}");
    }
}
