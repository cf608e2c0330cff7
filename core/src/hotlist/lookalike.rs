//! Look-alike character classes (8/B, 0/O/D/Q, 1/I/L, 5/S, 2/Z, 6/G) and the packed, hashed
//! keys the matcher indexes plates by. Equivalence is decided per character position; plates
//! are never rewritten.

/// Characters a plate reader (or a human) confuses. Each group is one class; every other
/// character is its own class.
pub const LOOKALIKE_GROUPS: [&str; 6] = ["0ODQ", "8B", "1IL", "5S", "2Z", "6G"];

/// Symbol code of a plate byte: `0-9` → 1..=10, `A-Z` → 11..=36, `*` → 37, `?` → 38, else 0.
#[inline]
pub fn code(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0' + 1,
        b'A'..=b'Z' => b - b'A' + 11,
        b'*' => 37,
        b'?' => 38,
        _ => 0,
    }
}

const fn build_class() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        t[b] = b as u8;
        b += 1;
    }
    let mut g = 0;
    while g < LOOKALIKE_GROUPS.len() {
        let s = LOOKALIKE_GROUPS[g].as_bytes();
        let mut i = 1;
        while i < s.len() {
            t[s[i] as usize] = s[0];
            i += 1;
        }
        g += 1;
    }
    t
}

static CLASS: [u8; 256] = build_class();

/// The representative of `b`'s look-alike class (`O` → `0`, `B` → `8`, …; others unchanged).
#[inline]
pub fn class(b: u8) -> u8 {
    CLASS[b as usize]
}

/// True when `a` and `b` are different characters of one look-alike class.
#[inline]
pub fn is_lookalike(a: u8, b: u8) -> bool {
    a != b && class(a) == class(b)
}

/// Packed key of a byte string of at most 21 symbols, 6 bits each (codes are non-zero, so the
/// length is implied).
#[inline]
pub fn pack<I: IntoIterator<Item = u8>>(bytes: I) -> u128 {
    bytes
        .into_iter()
        .fold(0u128, |k, b| (k << 6) | u128::from(code(b)))
}

/// Packed key of the look-alike classes of `bytes`.
#[inline]
pub fn pack_class(bytes: &[u8]) -> u128 {
    pack(bytes.iter().map(|&b| class(b)))
}

/// Packed key of the classes of `bytes` without position `skip`.
#[inline]
pub fn pack_class_without(bytes: &[u8], skip: usize) -> u128 {
    pack(
        bytes
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != skip)
            .map(|(_, &b)| class(b)),
    )
}

/// A 64-bit hash of a packed key (a multiply-xorshift mix; keys are not attacker-chosen in a
/// way that matters: a collision costs one extra comparison, never a wrong answer).
#[inline]
pub fn hash(key: u128) -> u64 {
    let lo = key as u64;
    let hi = (key >> 64) as u64;
    let mut h = lo ^ hi.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_per_character() {
        assert_eq!(class(b'O'), b'0');
        assert_eq!(class(b'Q'), b'0');
        assert_eq!(class(b'B'), b'8');
        assert_eq!(class(b'L'), b'1');
        assert_eq!(class(b'Z'), b'2');
        assert_eq!(class(b'X'), b'X');
        assert!(is_lookalike(b'8', b'B'));
        assert!(!is_lookalike(b'8', b'8'));
        assert!(!is_lookalike(b'8', b'3'));
        assert_eq!(pack_class(b"OB1"), pack_class(b"D8L"));
        assert_ne!(pack(*b"OB1"), pack(*b"D8L"));
        assert_eq!(pack_class_without(b"ABC", 1), pack_class(b"AC"));
    }

    #[test]
    fn packing_keeps_length() {
        assert_ne!(pack(*b"1"), pack(*b"01"));
        assert_ne!(hash(pack(*b"ABC123")), hash(pack(*b"ABC124")));
    }
}
