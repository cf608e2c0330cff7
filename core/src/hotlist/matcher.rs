//! The hot list matcher: given a plate read (text, per-character confidences, state) it finds
//! the entries it may be, ranked by score, with the kind of match (exact, look-alike, one edit,
//! wildcard) and the state check.
//!
//! Index: entries live in a compact slot array ordered by the hash of each plate's look-alike
//! class string, with a small bucket directory (exact and look-alike reads: one directory word
//! from cache, then one line of slots from memory), every one-character
//! deletion of them in a second one (reads one edit away: about 2n probes, a symmetric-deletion
//! scheme), and wildcard patterns by their literal prefix or suffix. Candidates are verified
//! position by position. Additions go to a small overlay index; removals are tombstones; the
//! whole index is rebuilt when the overlay grows.
//!
//! Score: the product of one factor per difference, each derived from the reader's confidence
//! `c` at that position (see [`MatcherConfig`]): a difference the reader was sure about makes
//! a match unlikely; an uncertain one keeps it plausible.

use std::cmp::Ordering;

use serde::Serialize;

use super::entry::{Category, EntryError, MAX_PLATE_LEN, region_number};
use super::lookalike::{class, code, hash, is_lookalike, pack_class};

/// Tunable matching rules. The defaults keep the false alert rate on random reads against a
/// one-million-entry list below 1e-4 (`platewatch bench hotlist` measures it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MatcherConfig {
    /// Matches scoring at least this raise an alert.
    pub alert_threshold: f32,
    /// Look-alike difference at confidence c: `min(1, lookalike_weight·(1-c)/c)`.
    pub lookalike_weight: f32,
    /// Other substitution at confidence c: `min(1, substitution_weight·(1-c)/c)`.
    pub substitution_weight: f32,
    /// Extra character in the read at confidence c: `min(1, insertion_weight·(1-c)/c)`.
    pub insertion_weight: f32,
    /// Character missing from the read.
    pub deletion_factor: f32,
    /// Character missing from the read where the plate repeats it (`BB`): CTC readers merge
    /// repeats, so this is the commonest deletion. Below the default threshold: across plate
    /// formats of different lengths it would alert too often on its own.
    pub repeat_deletion_factor: f32,
    /// Wildcard entries score at most this.
    pub wildcard_factor: f32,
    /// Factor when the read's state (at least `state_min_confidence`) differs from the entry's.
    pub state_conflict_factor: f32,
    pub state_min_confidence: f32,
    /// Search the one-edit neighbourhood (about 2n extra probes per read).
    pub one_edit: bool,
    /// Return at most this many matches.
    pub max_matches: usize,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        Self {
            alert_threshold: 0.5,
            lookalike_weight: 2.0,
            substitution_weight: 0.25,
            insertion_weight: 0.25,
            deletion_factor: 0.3,
            repeat_deletion_factor: 0.45,
            wildcard_factor: 0.9,
            state_conflict_factor: 0.3,
            state_min_confidence: 0.5,
            one_edit: true,
            max_matches: 8,
        }
    }
}

impl MatcherConfig {
    fn evidence(weight: f32, c: f32) -> f32 {
        let c = c.clamp(0.01, 0.999);
        (weight * (1.0 - c) / c).min(1.0)
    }
}

/// What the matcher needs of an entry. `id` is the caller's key (the store's row id);
/// `list` the caller's list index.
#[derive(Debug, Clone, Copy)]
pub struct IndexEntry<'a> {
    pub id: u32,
    pub list: u16,
    pub plate: &'a str,
    pub state: Option<&'a str>,
    pub category: Category,
    pub priority: u8,
    /// Unix seconds from which the entry no longer matches.
    pub expires_at: Option<i64>,
}

/// A read to match: normalised text, one confidence per character, optional state.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub text: &'a str,
    pub confidences: &'a [f32],
    pub state: Option<&'a str>,
    pub state_confidence: f32,
}

impl<'a> Query<'a> {
    /// A read the reader is fully sure of (typed by a user, say).
    pub fn typed(text: &'a str) -> Self {
        Self {
            text,
            confidences: &[],
            state: None,
            state_confidence: 0.0,
        }
    }

    fn conf(&self, i: usize) -> f32 {
        self.confidences.get(i).copied().unwrap_or(1.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    Exact,
    LookAlike,
    OneEdit,
    Wildcard,
}

impl MatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Exact => "exact",
            MatchKind::LookAlike => "look_alike",
            MatchKind::OneEdit => "one_edit",
            MatchKind::Wildcard => "wildcard",
        }
    }
}

/// The single edit of a one-edit match, at a read position (for `Delete`, the position in the
/// read before which the entry's character is missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "op", content = "pos")]
pub enum Edit {
    Substitute(u8),
    Insert(u8),
    Delete(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateCheck {
    Agree,
    Conflict,
    /// The read or the entry has no state (or the read's is not confident).
    Unknown,
}

/// One candidate entry for a read.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Match {
    pub id: u32,
    pub list: u16,
    pub category: Category,
    pub priority: u8,
    pub kind: MatchKind,
    pub score: f32,
    /// Look-alike differences counted in the score.
    pub lookalikes: u8,
    pub edit: Option<Edit>,
    pub state: StateCheck,
    /// `score >= alert_threshold`.
    pub alert: bool,
}

/// Most entries one index holds: slot numbers share a `u32` with an 8-bit hash tag.
pub const MAX_INDEX_ENTRIES: usize = (1 << 24) - 1;
const SLOT_MASK: u32 = (1 << 24) - 1;

/// Bucketed hash table from 64-bit hashes to slot indices, stored as two flat arrays: a bucket
/// directory (4 bytes per bucket) and the items (4 bytes each: a 24-bit slot number and an
/// 8-bit tag from the hash, so most non-matching items are skipped without touching a slot).
#[derive(Debug, Clone, Default)]
struct Buckets {
    shift: u32,
    starts: Vec<u32>,
    items: Vec<u32>,
}

impl Buckets {
    /// Build from a generator that yields every (hash, slot) pair; it is called twice.
    /// `buckets` is the wanted bucket count (rounded up to a power of two); a few items per
    /// bucket keep the directory small, and the tags keep probes cheap.
    fn build<F: Fn(&mut dyn FnMut(u64, u32))>(buckets: usize, each: F) -> Buckets {
        let bits = (buckets.max(1).next_power_of_two().trailing_zeros()).clamp(4, 30);
        let n = 1usize << bits;
        let shift = 64 - bits;
        let mut starts = vec![0u32; n + 1];
        each(&mut |h, _| starts[(h >> shift) as usize] += 1);
        let mut total = 0u32;
        for c in starts.iter_mut().take(n) {
            total += *c;
            *c = total; // end of the bucket for now
        }
        starts[n] = total;
        let mut items = vec![0u32; total as usize];
        // Fill each bucket from its end; afterwards starts[b] is the bucket's beginning.
        each(&mut |h, slot| {
            let b = (h >> shift) as usize;
            starts[b] -= 1;
            items[starts[b] as usize] = (slot & SLOT_MASK) | (u32::from(h as u8) << 24);
        });
        Buckets {
            shift,
            starts,
            items,
        }
    }

    #[inline]
    fn probe(&self, h: u64, mut f: impl FnMut(u32)) {
        if self.items.is_empty() {
            return;
        }
        let b = (h >> self.shift) as usize;
        let (s, e) = (self.starts[b] as usize, self.starts[b + 1] as usize);
        let tag = u32::from(h as u8);
        for &item in &self.items[s..e] {
            if item >> 24 == tag {
                f(item & SLOT_MASK);
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        self.starts.capacity() * 4 + self.items.capacity() * 4
    }
}

/// Directory over the plain (non-wildcard) slots, which [`Index::build`] sorts by their
/// class-key hash: bucket `b` (the hash's top bits) is `slots[starts[b]..starts[b + 1]]`, and
/// inside a bucket the slots are in order of their tag (the next 16 bits). With about 64
/// slots per bucket the directory is small enough to stay in cache (256 KB at a million
/// entries), and a probe interpolates the tag's position in the bucket: it usually lands on
/// the right cache line of slots, the only one that comes from memory.
#[derive(Debug, Clone, Default)]
struct SlotDirectory {
    shift: u32,
    starts: Vec<u32>,
}

/// Tag bits: hash bits just below the directory's, kept in every plain slot.
const TAG_BITS: u32 = 16;

impl SlotDirectory {
    /// Directory bits for `n` slots: about 64 slots per bucket.
    fn bits(n: usize) -> u32 {
        (n / 64)
            .max(1)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(4, 30)
    }

    #[inline]
    fn bucket(&self, h: u64) -> usize {
        (h >> self.shift) as usize
    }

    #[inline]
    fn tag(&self, h: u64) -> u16 {
        (h >> (self.shift - TAG_BITS)) as u16
    }

    #[inline]
    fn range(&self, h: u64) -> std::ops::Range<usize> {
        if self.starts.is_empty() {
            return 0..0;
        }
        let b = self.bucket(h);
        self.starts[b] as usize..self.starts[b + 1] as usize
    }

    fn heap_bytes(&self) -> usize {
        self.starts.capacity() * 4
    }
}

const NO_EXPIRY: u32 = u32::MAX;
const FLAG_WILDCARD: u8 = 1;
const FLAG_REMOVED: u8 = 2;

/// One entry in 32 bytes, aligned so that it never straddles two cache lines.
#[derive(Debug, Clone, Copy)]
#[repr(align(32))]
struct Slot {
    plate: [u8; MAX_PLATE_LEN],
    len: u8,
    state: u8,
    flags: u8,
    priority: u8,
    category: u8,
    list: u16,
    /// Unix seconds, saturated to u32 (`NO_EXPIRY` = never).
    expires: u32,
    id: u32,
    /// [`SlotDirectory::tag`] of the class-key hash (plain slots).
    tag: u16,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 32);

impl Slot {
    fn plate(&self) -> &[u8] {
        &self.plate[..self.len as usize]
    }
    fn live(&self, now: i64) -> bool {
        self.flags & FLAG_REMOVED == 0
            && (self.expires == NO_EXPIRY || now < i64::from(self.expires))
    }
}

fn region_index(s: Option<&str>) -> Result<u8, EntryError> {
    s.map_or(Ok(0), |s| region_number(s).ok_or(EntryError::UnknownState))
}

/// Calls `f` with the hash of each distinct one-character deletion of `p`'s class string, in
/// O(len) overall: packed prefixes and suffixes are combined, not recomputed.
#[inline]
fn for_each_deletion(p: &[u8], mut f: impl FnMut(u64)) {
    let n = p.len();
    let mut cls = [0u8; MAX_PLATE_LEN];
    for (c, &b) in cls.iter_mut().zip(p) {
        *c = class(b);
    }
    // suffix[k] = packed cls[k..]
    let mut suffix = [0u128; MAX_PLATE_LEN + 1];
    for k in (0..n).rev() {
        suffix[k] = suffix[k + 1] | (u128::from(code(cls[k])) << (6 * (n - 1 - k)));
    }
    let mut prefix = 0u128;
    for k in 0..n {
        if k == 0 || cls[k] != cls[k - 1] {
            // Deleting k: prefix cls[..k] shifted above the n-1-k suffix characters.
            f(hash((prefix << (6 * (n - 1 - k))) | suffix[k + 1]));
        }
        prefix = (prefix << 6) | u128::from(code(cls[k]));
    }
}

/// Wildcard patterns are keyed by their literal prefix and suffix anchors (the characters
/// before the first and after the last wildcard), each used when it has at least this many
/// characters; a pattern with neither goes to a list checked for every read.
const MIN_ANCHOR: usize = 2;
/// Keys use at most this many characters of each anchor, so a read needs few probes: one per
/// (prefix length, suffix length) pair that some pattern uses, out of 0, 2 and 3 each.
const MAX_ANCHOR_KEY: usize = 3;

/// The bit of a `bits`-bit filter (a power of two) for hash `h`: middle bits, independent of
/// the bucket (top bits) and the tag (low bits) that [`Buckets`] uses.
#[inline]
fn filter_bit(h: u64, bits: usize) -> usize {
    (h >> 16) as usize & (bits - 1)
}

/// The anchor key lengths of a wildcard pattern: `(prefix, suffix)`, each 0 (not keyed) or
/// `MIN_ANCHOR..=MAX_ANCHOR_KEY`.
fn anchor_key_lens(pattern: &[u8]) -> (usize, usize) {
    let (pre, suf) = anchors(pattern);
    let key = |k: usize| {
        if k >= MIN_ANCHOR {
            k.min(MAX_ANCHOR_KEY)
        } else {
            0
        }
    };
    (key(pre), key(suf))
}

/// Hash of a wildcard key: the classes of `prefix` and `suffix` and both lengths. A read can
/// match a pattern only when its first and last characters have the pattern's anchor classes
/// (`wildcard_match` requires it), so keying on both anchors finds every candidate.
#[inline]
fn anchor_key(prefix: &[u8], suffix: &[u8]) -> u64 {
    hash(
        pack_class(prefix)
            | (pack_class(suffix) << 18)
            | ((prefix.len() as u128) << 36)
            | ((suffix.len() as u128) << 40),
    )
}

/// An immutable index over a set of entries.
#[derive(Debug, Clone, Default)]
struct Index {
    /// Plain slots sorted by directory bucket, then the wildcard slots (few, so contiguous
    /// and cache-resident when every read checks them).
    slots: Vec<Slot>,
    exact: SlotDirectory,
    deletions: Buckets,
    /// Wildcard slots by [`anchor_key`].
    wild: Buckets,
    /// One bit per hashed [`anchor_key`] in use (eight bits per wildcard): a read's probes
    /// touch this small, cache-resident bitset and reach `wild` only when a bit is set.
    wild_filter: Vec<u64>,
    /// Wildcard slots with no anchor long enough to key on.
    wild_broad: Vec<u32>,
    /// Bit `4 * prefix + suffix` set when some wildcard has those anchor key lengths.
    wild_pairs: u16,
}

fn anchors(p: &[u8]) -> (usize, usize) {
    let pre = p.iter().take_while(|b| b.is_ascii_alphanumeric()).count();
    let suf = p
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    (pre, suf)
}

impl Index {
    fn build(input: Vec<Slot>) -> Index {
        // Plain slots in directory order (a counting sort on the bucket), wildcards after.
        // Plain slots sorted by (bucket, tag), wildcards after them: the sort key is the hash's
        // top bits above the slot number.
        let plain = input
            .iter()
            .filter(|s| s.flags & FLAG_WILDCARD == 0)
            .count();
        let bits = SlotDirectory::bits(plain);
        let mut exact = SlotDirectory {
            shift: 64 - bits,
            starts: vec![0u32; (1usize << bits) + 1],
        };
        let key_shift = exact.shift - TAG_BITS;
        let mut keys: Vec<u64> = input
            .iter()
            .enumerate()
            .filter(|(_, s)| s.flags & FLAG_WILDCARD == 0)
            .map(|(i, s)| ((hash(pack_class(s.plate())) >> key_shift) << 24) | i as u64)
            .collect();
        keys.sort_unstable();
        for &k in &keys {
            exact.starts[(k >> (24 + TAG_BITS)) as usize + 1] += 1;
        }
        for b in 1..exact.starts.len() {
            exact.starts[b] += exact.starts[b - 1];
        }
        let mut slots: Vec<Slot> = Vec::with_capacity(input.len());
        slots.extend(keys.iter().map(|&k| {
            let mut s = input[(k as u32 & SLOT_MASK) as usize];
            s.tag = (k >> 24) as u16;
            s
        }));
        drop(keys);
        slots.extend(input.iter().filter(|s| s.flags & FLAG_WILDCARD != 0));
        drop(input);
        let n = slots.len();
        // About 6.3 deletions per plate, 25 per bucket (two cache lines of items): the
        // directory (one word per four plates) stays in cache while it is built, which is what
        // keeps building a million entries well under a second.
        let deletions = Buckets::build(n / 4, |emit| {
            for (i, s) in slots.iter().enumerate().take(plain) {
                for_each_deletion(s.plate(), |h| emit(h, i as u32));
            }
        });
        // Wildcards are the slots after the plain ones.
        let mut wild_pairs = 0u16;
        let mut wild_broad = Vec::new();
        let wild_slots = || {
            slots
                .iter()
                .enumerate()
                .skip(plain)
                .map(|(i, s)| (i as u32, s.plate()))
        };
        for (i, p) in wild_slots() {
            match anchor_key_lens(p) {
                (0, 0) => wild_broad.push(i),
                (pl, sl) => wild_pairs |= 1 << (4 * pl + sl),
            }
        }
        let each_keyed = |emit: &mut dyn FnMut(u64, u32)| {
            for (i, p) in wild_slots() {
                let (pl, sl) = anchor_key_lens(p);
                if (pl, sl) != (0, 0) {
                    emit(anchor_key(&p[..pl], &p[p.len() - sl..]), i);
                }
            }
        };
        let wild = Buckets::build(slots.len() - plain, each_keyed);
        let filter_bits = ((slots.len() - plain) * 8).next_power_of_two().max(64);
        let mut wild_filter = vec![0u64; filter_bits / 64];
        each_keyed(&mut |h, _| {
            let bit = filter_bit(h, filter_bits);
            wild_filter[bit / 64] |= 1 << (bit % 64);
        });
        Index {
            slots,
            exact,
            deletions,
            wild,
            wild_filter,
            wild_broad,
            wild_pairs,
        }
    }

    fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.exact.heap_bytes()
            + self.deletions.heap_bytes()
            + self.wild.heap_bytes()
            + self.wild_filter.capacity() * 8
            + self.wild_broad.capacity() * 4
    }

    /// Candidate slots whose class string equals the read's (same length).
    fn exact_candidates(&self, cls_key: u128, out: &mut Vec<u32>) {
        self.plain_probe(hash(cls_key), |i| out.push(i));
    }

    /// Where [`Index::plain_probe`] starts: the bucket and the interpolated position of the tag.
    #[inline]
    fn plain_start(&self, h: u64) -> (usize, &[Slot], usize) {
        let r = self.exact.range(h);
        let (start, slots) = (r.start, &self.slots[r]);
        let i = (usize::from(self.exact.tag(h)) * slots.len()) >> TAG_BITS;
        (start, slots, i.min(slots.len().saturating_sub(1)))
    }

    /// Start loading the slot line an exact probe for `h` will read, so that the memory access
    /// overlaps the work done before the probe (a plain load whose value is not waited for).
    #[inline]
    fn preload_plain(&self, h: u64) {
        let (_, slots, i) = self.plain_start(h);
        if let Some(s) = slots.get(i) {
            std::hint::black_box(s.tag);
        }
    }

    /// Plain slots whose class-key hash may be `h`: the bucket's slots with its tag, found by
    /// interpolation (tags are uniform) and a short walk.
    #[inline]
    fn plain_probe(&self, h: u64, mut f: impl FnMut(u32)) {
        let (start, slots, mut i) = self.plain_start(h);
        if slots.is_empty() {
            return;
        }
        let tag = self.exact.tag(h);
        if slots[i].tag < tag {
            while i < slots.len() && slots[i].tag < tag {
                i += 1;
            }
        } else {
            while i > 0 && slots[i - 1].tag >= tag {
                i -= 1;
            }
        }
        while i < slots.len() && slots[i].tag == tag {
            f((start + i) as u32);
            i += 1;
        }
    }

    fn wildcard_candidates(&self, read: &[u8], out: &mut Vec<u32>) {
        let n = read.len();
        let mut pairs = self.wild_pairs;
        while pairs != 0 {
            let bit = pairs.trailing_zeros() as usize;
            pairs &= pairs - 1;
            let (pl, sl) = (bit / 4, bit % 4);
            if pl + sl <= n {
                let h = anchor_key(&read[..pl], &read[n - sl..]);
                let bit = filter_bit(h, self.wild_filter.len() * 64);
                if self.wild_filter[bit / 64] & (1 << (bit % 64)) != 0 {
                    self.wild.probe(h, |i| out.push(i));
                }
            }
        }
        out.extend_from_slice(&self.wild_broad);
    }

    fn one_edit_candidates(&self, read: &[u8], cls_key: u128, out: &mut Vec<u32>) {
        // Entry one longer (read lost a character): the read is one of its deletions.
        self.deletions.probe(hash(cls_key), |i| out.push(i));
        for_each_deletion(read, |h| {
            // Entry one shorter (read has an extra character).
            self.plain_probe(h, |i| out.push(i));
            // Same length, one substitution (shares a deletion).
            self.deletions.probe(h, |i| out.push(i));
        });
    }
}

/// Alignment of a read with an entry plate: score factor, look-alikes and the edit.
#[derive(Debug, Clone, Copy)]
struct Alignment {
    factor: f32,
    lookalikes: u8,
    edit: Option<Edit>,
}

fn align_same(q: &Query<'_>, read: &[u8], plate: &[u8], cfg: &MatcherConfig) -> Option<Alignment> {
    let mut a = Alignment {
        factor: 1.0,
        lookalikes: 0,
        edit: None,
    };
    for (i, (&r, &e)) in read.iter().zip(plate).enumerate() {
        if r == e {
            continue;
        }
        if is_lookalike(r, e) {
            a.lookalikes += 1;
            a.factor *= MatcherConfig::evidence(cfg.lookalike_weight, q.conf(i));
        } else if a.edit.is_none() {
            a.edit = Some(Edit::Substitute(i as u8));
            a.factor *= MatcherConfig::evidence(cfg.substitution_weight, q.conf(i));
        } else {
            return None;
        }
    }
    Some(a)
}

/// Classwise comparison of `a` with `b` (equal lengths), multiplying look-alike factors.
/// `conf_at` maps a position in `a` to the read position whose confidence applies.
fn classwise(
    q: &Query<'_>,
    a: &[u8],
    b: &[u8],
    conf_at: impl Fn(usize) -> usize,
    cfg: &MatcherConfig,
) -> Option<(f32, u8)> {
    let mut f = 1.0;
    let mut n = 0u8;
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        if x == y {
            continue;
        }
        if class(x) != class(y) {
            return None;
        }
        n += 1;
        f *= MatcherConfig::evidence(cfg.lookalike_weight, q.conf(conf_at(i)));
    }
    Some((f, n))
}

fn align(q: &Query<'_>, read: &[u8], plate: &[u8], cfg: &MatcherConfig) -> Option<Alignment> {
    let (n, m) = (read.len(), plate.len());
    let mut best: Option<Alignment> = None;
    let mut keep = |a: Alignment| {
        if best.is_none_or(|b| a.factor > b.factor) {
            best = Some(a);
        }
    };
    if n == m {
        return align_same(q, read, plate, cfg);
    }
    let mut buf = [0u8; MAX_PLATE_LEN + 1];
    if n == m + 1 {
        // The read has an extra character at k.
        // Every position is tried, repeats included: the extra character's own confidence
        // decides, and of two equal neighbours the less sure one is the likelier extra.
        for k in 0..n {
            let len = n - 1;
            buf[..k].copy_from_slice(&read[..k]);
            buf[k..len].copy_from_slice(&read[k + 1..]);
            if let Some((f, l)) = classwise(
                q,
                &buf[..len],
                plate,
                |i| if i < k { i } else { i + 1 },
                cfg,
            ) {
                keep(Alignment {
                    factor: f * MatcherConfig::evidence(cfg.insertion_weight, q.conf(k)),
                    lookalikes: l,
                    edit: Some(Edit::Insert(k as u8)),
                });
            }
        }
    } else if m == n + 1 && m <= MAX_PLATE_LEN {
        // The read lost the plate's character at k.
        for k in 0..m {
            if k > 0 && plate[k] == plate[k - 1] {
                continue;
            }
            let len = m - 1;
            buf[..k].copy_from_slice(&plate[..k]);
            buf[k..len].copy_from_slice(&plate[k + 1..]);
            if let Some((f, l)) = classwise(q, read, &buf[..len], |i| i, cfg) {
                let repeat =
                    (k > 0 && plate[k - 1] == plate[k]) || (k + 1 < m && plate[k + 1] == plate[k]);
                let d = if repeat {
                    cfg.repeat_deletion_factor
                } else {
                    cfg.deletion_factor
                };
                keep(Alignment {
                    factor: f * d,
                    lookalikes: l,
                    edit: Some(Edit::Delete(k as u8)),
                });
            }
        }
    }
    best
}

/// Best look-alike-aware match of a wildcard pattern (`*` any run, `?` one character) against
/// the read, as (factor, look-alikes). Cheap length and anchor checks run before the dynamic
/// programme.
fn wildcard_match(
    q: &Query<'_>,
    read: &[u8],
    pat: &[u8],
    cfg: &MatcherConfig,
) -> Option<(f32, u8)> {
    const W: usize = MAX_PLATE_LEN + 1;
    let (n, m) = (read.len(), pat.len());
    if n >= W || m >= W {
        return None;
    }
    let stars = pat.iter().filter(|&&b| b == b'*').count();
    if (stars == 0 && n != m) || n + stars < m {
        return None;
    }
    let (pre, suf) = anchors(pat);
    if pre > n
        || suf > n
        || (0..pre).any(|i| class(read[i]) != class(pat[i]))
        || (1..=suf).any(|i| class(read[n - i]) != class(pat[m - i]))
    {
        return None;
    }
    let better = |a: Option<(f32, u8)>, b: Option<(f32, u8)>| match (a, b) {
        (Some(x), Some(y)) => Some(if y.0 > x.0 { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    };
    // Rolling rows: prev[j] = best matching pat[..i-1] against read[..j].
    let mut prev = [None::<(f32, u8)>; W + 1];
    let mut cur = [None::<(f32, u8)>; W + 1];
    prev[0] = Some((1.0, 0));
    for &p in pat {
        for j in 0..=n {
            cur[j] = match p {
                b'*' => better(prev[j], if j > 0 { cur[j - 1] } else { None }),
                b'?' if j > 0 => prev[j - 1],
                _ if j > 0 => {
                    let r = read[j - 1];
                    prev[j - 1].and_then(|(f, l)| {
                        if r == p {
                            Some((f, l))
                        } else if is_lookalike(r, p) {
                            Some((
                                f * MatcherConfig::evidence(cfg.lookalike_weight, q.conf(j - 1)),
                                l + 1,
                            ))
                        } else {
                            None
                        }
                    })
                }
                _ => None,
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[n]
}

/// Match order: best score first, then higher priority, then entry id (stable output).
fn rank(a: &Match, b: &Match) -> Ordering {
    b.score
        .partial_cmp(&a.score)
        .unwrap_or(Ordering::Equal)
        .then(b.priority.cmp(&a.priority))
        .then(a.id.cmp(&b.id))
}

/// A hot list matcher over live entries, with incremental additions and removals.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    base: Index,
    overlay: Index,
    /// Live entries (not removed), for statistics.
    live: usize,
    config: MatcherConfig,
}

/// Per-call scratch space, to keep lookups allocation-free.
#[derive(Debug, Default)]
pub struct Scratch {
    candidates: Vec<(u8, u32)>,
    tmp: Vec<u32>,
}

fn make_slot(e: &IndexEntry<'_>) -> Result<Slot, EntryError> {
    let p = e.plate.as_bytes();
    if p.is_empty() {
        return Err(EntryError::EmptyPlate);
    }
    if p.len() > MAX_PLATE_LEN {
        return Err(EntryError::TooLong { len: p.len() });
    }
    if !p
        .iter()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'*' || *b == b'?')
    {
        return Err(EntryError::BadCharacter);
    }
    let mut plate = [0u8; MAX_PLATE_LEN];
    plate[..p.len()].copy_from_slice(p);
    let wildcard = p.iter().any(|&b| b == b'*' || b == b'?');
    Ok(Slot {
        plate,
        len: p.len() as u8,
        state: region_index(e.state)?,
        flags: if wildcard { FLAG_WILDCARD } else { 0 },
        priority: e.priority.min(100),
        category: Category::ALL
            .iter()
            .position(|&c| c == e.category)
            .unwrap_or(0) as u8,
        list: e.list,
        expires: e
            .expires_at
            .map_or(NO_EXPIRY, |t| t.clamp(0, i64::from(NO_EXPIRY - 1)) as u32),
        tag: 0,
        id: e.id,
    })
}

impl Matcher {
    /// Build a matcher over `entries` (normalised plates, as [`super::PlatePattern`] gives).
    pub fn build<'a>(
        entries: impl IntoIterator<Item = IndexEntry<'a>>,
        config: MatcherConfig,
    ) -> Result<Matcher, EntryError> {
        let slots = entries
            .into_iter()
            .map(|e| make_slot(&e))
            .collect::<Result<Vec<_>, _>>()?;
        if slots.len() > MAX_INDEX_ENTRIES {
            return Err(EntryError::TooManyEntries);
        }
        let live = slots.len();
        Ok(Matcher {
            base: Index::build(slots),
            overlay: Index::default(),
            live,
            config,
        })
    }

    pub fn config(&self) -> &MatcherConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: MatcherConfig) {
        self.config = config;
    }

    /// Entries that can match (added and not removed; expiry is checked per lookup).
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Heap memory held by the index, in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.base.heap_bytes() + self.overlay.heap_bytes()
    }

    /// Apply a delta: remove entries by id, then add new ones. Additions go to a small overlay
    /// that is rebuilt (cost proportional to the overlay); when the overlay passes an eighth of
    /// the base, everything is rebuilt into one index.
    pub fn apply_delta<'a>(
        &mut self,
        remove_ids: &[u32],
        add: impl IntoIterator<Item = IndexEntry<'a>>,
    ) -> Result<(), EntryError> {
        let new: Vec<Slot> = add
            .into_iter()
            .map(|e| make_slot(&e))
            .collect::<Result<_, _>>()?;
        // Checked before anything changes: a refused delta leaves the matcher as it was.
        if self.live + new.len() > MAX_INDEX_ENTRIES {
            return Err(EntryError::TooManyEntries);
        }
        if !remove_ids.is_empty() {
            let mut ids = remove_ids.to_vec();
            ids.sort_unstable();
            for s in self
                .base
                .slots
                .iter_mut()
                .chain(self.overlay.slots.iter_mut())
            {
                if s.flags & FLAG_REMOVED == 0 && ids.binary_search(&s.id).is_ok() {
                    s.flags |= FLAG_REMOVED;
                    self.live -= 1;
                }
            }
        }
        self.live += new.len();
        let mut overlay: Vec<Slot> = self
            .overlay
            .slots
            .iter()
            .copied()
            .filter(|s| s.flags & FLAG_REMOVED == 0)
            .collect();
        overlay.extend(new);
        if overlay.len() * 8 > self.base.slots.len().max(4096) {
            let mut all: Vec<Slot> = self
                .base
                .slots
                .iter()
                .copied()
                .filter(|s| s.flags & FLAG_REMOVED == 0)
                .collect();
            all.extend(overlay);
            self.base = Index::build(all);
            self.overlay = Index::default();
        } else {
            self.overlay = Index::build(overlay);
        }
        Ok(())
    }

    /// Matches for a read at `now` (Unix seconds), best first. Returns every candidate scoring
    /// above zero, at most `max_matches`; `Match::alert` marks those at or above the threshold.
    /// When an exact, look-alike or wildcard match already alerts, the one-edit neighbourhood is
    /// not searched (the read explains itself); [`Matcher::explain`] always searches it.
    pub fn lookup(&self, q: &Query<'_>, now: i64, scratch: &mut Scratch, out: &mut Vec<Match>) {
        self.run(q, now, scratch, out, false);
    }

    /// Like [`Matcher::lookup`] but always searches the one-edit neighbourhood.
    pub fn explain(&self, q: &Query<'_>, now: i64) -> Vec<Match> {
        let mut out = Vec::new();
        self.run(q, now, &mut Scratch::default(), &mut out, true);
        out
    }

    /// Convenience: alerting matches for a read.
    pub fn alerts(&self, q: &Query<'_>, now: i64) -> Vec<Match> {
        let mut out = Vec::new();
        self.lookup(q, now, &mut Scratch::default(), &mut out);
        out.retain(|m| m.alert);
        out
    }

    fn run(&self, q: &Query<'_>, now: i64, s: &mut Scratch, out: &mut Vec<Match>, all: bool) {
        out.clear();
        let read = q.text.as_bytes();
        if read.is_empty()
            || read.len() > MAX_PLATE_LEN
            || !read
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return;
        }
        let key = pack_class(read);
        // The exact probe's slot line is the one access that usually comes from memory: start
        // it first and let the wildcard probes (cache-resident) run while it arrives.
        self.base.preload_plain(hash(key));
        s.candidates.clear();
        for (which, idx) in [(0u8, &self.base), (1u8, &self.overlay)] {
            if idx.slots.is_empty() {
                continue;
            }
            s.tmp.clear();
            idx.wildcard_candidates(read, &mut s.tmp);
            idx.exact_candidates(key, &mut s.tmp);
            s.candidates.extend(s.tmp.iter().map(|&i| (which, i)));
        }
        self.verify(q, read, now, &s.candidates, out);
        let alerted = out.iter().any(|m| m.alert);
        if self.config.one_edit && (all || !alerted) {
            s.candidates.clear();
            for (which, idx) in [(0u8, &self.base), (1u8, &self.overlay)] {
                if idx.slots.is_empty() {
                    continue;
                }
                s.tmp.clear();
                idx.one_edit_candidates(read, key, &mut s.tmp);
                s.candidates.extend(s.tmp.iter().map(|&i| (which, i)));
            }
            s.candidates.sort_unstable();
            s.candidates.dedup();
            self.verify(q, read, now, &s.candidates, out);
        }
        out.sort_by(rank);
        out.dedup_by(|a, b| a.id == b.id && a.list == b.list);
        out.truncate(self.config.max_matches);
    }

    fn verify(
        &self,
        q: &Query<'_>,
        read: &[u8],
        now: i64,
        cands: &[(u8, u32)],
        out: &mut Vec<Match>,
    ) {
        let cfg = &self.config;
        let read_state = q
            .state
            .filter(|_| q.state_confidence >= cfg.state_min_confidence)
            .and_then(|s| region_index(Some(s)).ok());
        for &(which, i) in cands {
            let idx = if which == 0 {
                &self.base
            } else {
                &self.overlay
            };
            let Some(slot) = idx.slots.get(i as usize) else {
                continue;
            };
            if !slot.live(now) || out.iter().any(|m| m.id == slot.id && m.list == slot.list) {
                continue;
            }
            let plate = slot.plate();
            let (kind, factor, lookalikes, edit) = if slot.flags & FLAG_WILDCARD != 0 {
                match wildcard_match(q, read, plate, cfg) {
                    Some((f, l)) => (MatchKind::Wildcard, f * cfg.wildcard_factor, l, None),
                    None => continue,
                }
            } else {
                match align(q, read, plate, cfg) {
                    Some(a) => {
                        let kind = match (a.edit, a.lookalikes) {
                            (Some(_), _) => MatchKind::OneEdit,
                            (None, 0) => MatchKind::Exact,
                            (None, _) => MatchKind::LookAlike,
                        };
                        (kind, a.factor, a.lookalikes, a.edit)
                    }
                    None => continue,
                }
            };
            let state = match (read_state, slot.state) {
                (Some(r), e) if e != 0 && r == e => StateCheck::Agree,
                (Some(_), e) if e != 0 => StateCheck::Conflict,
                _ => StateCheck::Unknown,
            };
            let score = if state == StateCheck::Conflict {
                factor * cfg.state_conflict_factor
            } else {
                factor
            };
            if score <= 0.0 {
                continue;
            }
            out.push(Match {
                id: slot.id,
                list: slot.list,
                category: Category::ALL[slot.category as usize % Category::ALL.len()],
                priority: slot.priority,
                kind,
                score,
                lookalikes,
                edit,
                state,
                alert: score >= cfg.alert_threshold,
            });
        }
    }

    /// Every live entry compared one by one: the reference the index is tested and benchmarked
    /// against. Same results as [`Matcher::explain`] (up to `max_matches`).
    pub fn linear_scan(&self, q: &Query<'_>, now: i64) -> Vec<Match> {
        let read = q.text.as_bytes();
        let mut out = Vec::new();
        if read.is_empty() || read.len() > MAX_PLATE_LEN {
            return out;
        }
        let mut cands: Vec<(u8, u32)> = (0..self.base.slots.len() as u32).map(|i| (0, i)).collect();
        cands.extend((0..self.overlay.slots.len() as u32).map(|i| (1, i)));
        self.verify(q, read, now, &cands, &mut out);
        out.sort_by(rank);
        out.truncate(self.config.max_matches);
        out
    }

    /// Plate of an entry held by the index, by id (for explanations; linear time).
    pub fn plate_of(&self, id: u32) -> Option<String> {
        self.base
            .slots
            .iter()
            .chain(&self.overlay.slots)
            .find(|s| s.id == id && s.flags & FLAG_REMOVED == 0)
            .map(|s| String::from_utf8_lossy(s.plate()).into_owned())
    }
}

#[cfg(test)]
mod tests;
