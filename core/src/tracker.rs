//! Multi-frame consensus: associates per-frame plate observations into tracks (box overlap
//! with constant-velocity prediction, or agreeing text nearby) and emits ONE `PlateRead`
//! per track when it ends, voting per character position weighted by confidence. Beside each
//! track's best crop it keeps the vehicle context image from that crop's frame.

use serde::Serialize;

use crate::encounter::{ContextPolicy, context_crop};
use crate::frame::Frame;
use crate::geometry::{BBox, Quad};
use crate::imgproc::GrayImage;
use crate::reader::PlateText;
use crate::text::edit_distance;

/// Tracker tuning.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    /// Minimum IoU between a track's predicted box and an observation to associate them.
    pub min_iou: f32,
    /// A track ends after this many consecutive frames without an observation.
    pub max_missed_frames: u32,
    /// ... or when this much time passed since it was last seen.
    pub max_gap_ms: u64,
    /// Reads with a lower consensus confidence are not emitted.
    pub min_confidence: f32,
    /// Plates shorter than this are not emitted.
    pub min_len: usize,
    /// Plates longer than this are not emitted (no real plate has more characters).
    pub max_len: usize,
    /// How much of the vehicle around the best crop to keep as the read's context image,
    /// taken from the frame of the best crop (only when frames are given, see
    /// [`Tracker::update_in`]); `None` keeps no context image.
    pub context: Option<ContextPolicy>,
}

impl TrackerConfig {
    /// True when a read of this text and confidence is plausible enough to report.
    pub fn accepts(&self, text: &str, confidence: f32) -> bool {
        (self.min_len..=self.max_len).contains(&text.len()) && confidence >= self.min_confidence
    }
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            min_iou: 0.15,
            max_missed_frames: 8,
            max_gap_ms: 1500,
            min_confidence: 0.5,
            min_len: 2,
            max_len: 10,
            context: Some(ContextPolicy::default()),
        }
    }
}

/// One per-frame observation handed to the tracker.
#[derive(Debug, Clone)]
pub struct TrackInput {
    pub quad: Quad,
    pub bbox: BBox,
    pub text: PlateText,
    pub crop: GrayImage,
}

/// The consensus read of one plate over one vehicle pass. `Debug` shows the text's length,
/// never the text.
#[derive(Clone, PartialEq, Serialize)]
pub struct PlateRead {
    pub track_id: u64,
    pub text: String,
    pub char_confidences: Vec<f32>,
    pub confidence: f32,
    pub state: Option<&'static str>,
    pub state_confidence: f32,
    /// The plate's country (the region head's vote over the pass), when the reader has one.
    pub region: Option<&'static str>,
    pub region_confidence: f32,
    /// Box and outline of the best observation, in upright frame pixels.
    pub bbox: BBox,
    pub quad: Quad,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// Frames in which the plate was read.
    pub frames: u32,
    /// The clearest crop of the plate (grayscale, native resolution).
    #[serde(skip)]
    pub crop: GrayImage,
    /// The vehicle around that crop, from the same frame, trimmed by the tracker's
    /// [`ContextPolicy`] (never the whole frame unless the vehicle fills it); `None` when the
    /// frames were not given to the tracker or the policy keeps none.
    #[serde(skip)]
    pub context: Option<GrayImage>,
}

impl std::fmt::Debug for PlateRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlateRead")
            .field("track_id", &self.track_id)
            .field("text", &crate::Redacted(self.text.len()))
            .field("confidence", &self.confidence)
            .field("state", &self.state)
            .field("region", &self.region)
            .field("bbox", &self.bbox)
            .field("first_seen_ms", &self.first_seen_ms)
            .field("last_seen_ms", &self.last_seen_ms)
            .field("frames", &self.frames)
            .field(
                "context",
                &self.context.as_ref().map(|c| (c.width, c.height)),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Track {
    id: u64,
    votes: Vec<PlateText>,
    bbox: BBox,
    velocity: (f32, f32),
    missed: u32,
    first_ms: u64,
    last_ms: u64,
    best_score: f32,
    best: Option<TrackInput>,
    /// Context image from the frame of `best`.
    best_context: Option<GrayImage>,
}

impl Track {
    fn predicted(&self) -> BBox {
        let k = (self.missed + 1) as f32;
        BBox::new(
            self.bbox.x + self.velocity.0 * k,
            self.bbox.y + self.velocity.1 * k,
            self.bbox.w,
            self.bbox.h,
        )
    }

    /// Adds an observation; true when it became the track's best (its crop is the evidence).
    fn add(&mut self, obs: TrackInput, ts_ms: u64) -> bool {
        let (c_old, c_new) = (self.bbox.center(), obs.bbox.center());
        if self.votes.is_empty() && self.best.is_none() {
            self.velocity = (0.0, 0.0);
        } else {
            let k = (self.missed + 1) as f32;
            let v = ((c_new.x - c_old.x) / k, (c_new.y - c_old.y) / k);
            self.velocity = (
                0.5 * self.velocity.0 + 0.5 * v.0,
                0.5 * self.velocity.1 + 0.5 * v.1,
            );
        }
        self.bbox = obs.bbox;
        self.missed = 0;
        self.last_ms = ts_ms;
        if !obs.text.text.is_empty() {
            // Prefer confident reads of large plates as the evidence crop.
            let score = obs.text.confidence * (obs.bbox.h / 24.0).min(1.0);
            if score > self.best_score || self.best.is_none() {
                self.best_score = score;
                self.votes.push(obs.text.clone());
                self.best = Some(obs);
                return true;
            }
            self.votes.push(obs.text);
        }
        false
    }

    fn consensus_text(&self) -> Option<String> {
        consensus(&self.votes).map(|c| c.text)
    }
}

/// Associates observations across frames and emits consensus reads.
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Tracker {
            config,
            tracks: Vec::new(),
            next_id: 1,
        }
    }

    /// Number of tracks still open.
    pub fn open_tracks(&self) -> usize {
        self.tracks.len()
    }

    /// Feeds one frame's observations; returns reads of tracks that ended. Without the frame
    /// the reads carry no context image (see [`Tracker::update_in`]).
    pub fn update(&mut self, ts_ms: u64, observations: Vec<TrackInput>) -> Vec<PlateRead> {
        self.update_in(ts_ms, observations, None)
    }

    /// Feeds one frame's observations made in `frame`; returns reads of tracks that ended.
    /// When an observation becomes its track's best crop, the vehicle context around it is
    /// cropped from `frame` by the configured [`ContextPolicy`] (only then, so the per-frame
    /// cost stays small).
    pub fn update_in(
        &mut self,
        ts_ms: u64,
        observations: Vec<TrackInput>,
        frame: Option<&Frame<'_>>,
    ) -> Vec<PlateRead> {
        let policy = self.config.context;
        let context = |b: &BBox| match (frame, policy) {
            (Some(f), Some(p)) => Some(context_crop(f, b, p)),
            _ => None,
        };
        // Tracks not seen for too long end before association: a plate seen again later is
        // a new pass.
        let gap = self.config.max_gap_ms;
        let (mut ended, open): (Vec<Track>, Vec<Track>) = std::mem::take(&mut self.tracks)
            .into_iter()
            .partition(|t| ts_ms.saturating_sub(t.last_ms) > gap);
        self.tracks = open;
        // Score every (track, observation) pair; greedy assignment, best first.
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        let texts: Vec<Option<String>> = self.tracks.iter().map(Track::consensus_text).collect();
        for (ti, t) in self.tracks.iter().enumerate() {
            let pred = t.predicted();
            for (oi, o) in observations.iter().enumerate() {
                let iou = pred.iou(&o.bbox).max(t.bbox.iou(&o.bbox));
                let text_match = match &texts[ti] {
                    Some(tt) if tt.len() >= 4 && !o.text.text.is_empty() => {
                        edit_distance(tt, &o.text.text) <= 1
                    }
                    _ => false,
                };
                let (pc, oc) = (pred.center(), o.bbox.center());
                let dist = ((pc.x - oc.x).powi(2) + (pc.y - oc.y).powi(2)).sqrt();
                let near = dist < 3.0 * pred.w.max(o.bbox.w);
                // Boxes of one plate vary in tightness from frame to frame: a box holding the
                // other's centre is the same plate even when the overlap is small.
                let nested = o.bbox.contains(pc) || pred.contains(oc);
                let score = if iou >= self.config.min_iou {
                    iou + if text_match { 1.0 } else { 0.0 }
                } else if nested {
                    0.1 + if text_match { 1.0 } else { 0.0 }
                } else if text_match && near {
                    0.5
                } else {
                    continue;
                };
                pairs.push((score, ti, oi));
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut track_used = vec![false; self.tracks.len()];
        let mut assigned: Vec<Option<usize>> = vec![None; observations.len()];
        for (_, ti, oi) in pairs {
            if !track_used[ti] && assigned[oi].is_none() {
                track_used[ti] = true;
                assigned[oi] = Some(ti);
            }
        }
        for (ti, used) in track_used.iter().enumerate() {
            if !used {
                self.tracks[ti].missed += 1;
            }
        }
        // A second detection on a plate that already continued its track this frame (half
        // the plate behind an obstacle, a loose box around it) must not start a new pass.
        let matched: Vec<BBox> = observations
            .iter()
            .zip(&assigned)
            .filter(|(_, a)| a.is_some())
            .map(|(o, _)| o.bbox)
            .collect();
        // Boxes of two different plates hardly ever overlap; a box sharing a fifth of its
        // area with a plate's box is a piece of that plate (its state-name band, one line of
        // it) found twice.
        let duplicate = |b: &BBox| {
            matched
                .iter()
                .any(|m| m.overlap(b) > 0.2 || m.contains(b.center()) || b.contains(m.center()))
        };
        for (obs, a) in observations.into_iter().zip(assigned) {
            match a {
                Some(ti) => {
                    let t = &mut self.tracks[ti];
                    let bbox = obs.bbox;
                    if t.add(obs, ts_ms) {
                        t.best_context = context(&bbox);
                    }
                }
                None if duplicate(&obs.bbox) => {}
                None => {
                    let mut t = Track {
                        id: self.next_id,
                        votes: Vec::new(),
                        bbox: obs.bbox,
                        velocity: (0.0, 0.0),
                        missed: 0,
                        first_ms: ts_ms,
                        last_ms: ts_ms,
                        best_score: 0.0,
                        best: None,
                        best_context: None,
                    };
                    self.next_id += 1;
                    let bbox = obs.bbox;
                    if t.add(obs, ts_ms) {
                        t.best_context = context(&bbox);
                    }
                    self.tracks.push(t);
                }
            }
        }
        let max_missed = self.config.max_missed_frames;
        let (lost, open): (Vec<Track>, Vec<Track>) = std::mem::take(&mut self.tracks)
            .into_iter()
            .partition(|t| t.missed > max_missed);
        self.tracks = open;
        ended.extend(lost);
        ended.sort_by_key(|t| t.id);
        ended.into_iter().filter_map(|t| self.finalize(t)).collect()
    }

    /// Ends every open track (end of stream) and returns their reads.
    pub fn finish(&mut self) -> Vec<PlateRead> {
        let tracks = std::mem::take(&mut self.tracks);
        let mut reads: Vec<PlateRead> = tracks
            .into_iter()
            .filter_map(|t| self.finalize(t))
            .collect();
        reads.sort_by_key(|r| r.track_id);
        reads
    }

    fn finalize(&self, t: Track) -> Option<PlateRead> {
        let Consensus {
            text,
            char_confidences,
            confidence,
            state,
            state_confidence,
            region,
            region_confidence,
        } = consensus(&t.votes)?;
        if !self.config.accepts(&text, confidence) {
            return None;
        }
        let best = t.best?;
        Some(PlateRead {
            track_id: t.id,
            text,
            char_confidences,
            confidence,
            state,
            state_confidence,
            region,
            region_confidence,
            bbox: best.bbox,
            quad: best.quad,
            first_seen_ms: t.first_ms,
            last_seen_ms: t.last_ms,
            frames: t.votes.len() as u32,
            crop: best.crop,
            context: t.best_context,
        })
    }
}

/// The consensus of a pass's reads (see [`consensus`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Consensus {
    pub text: String,
    pub char_confidences: Vec<f32>,
    pub confidence: f32,
    pub state: Option<&'static str>,
    pub state_confidence: f32,
    pub region: Option<&'static str>,
    pub region_confidence: f32,
}

/// Confidence-weighted vote: the text length with the most total confidence wins, then each
/// position takes the character with the most confidence; a position's confidence is that
/// total divided by the number of votes of that length. The state and the region are each
/// voted by [`label_vote`].
pub fn consensus(votes: &[PlateText]) -> Option<Consensus> {
    let mut by_len: Vec<(usize, f32)> = Vec::new();
    for v in votes.iter().filter(|v| !v.text.is_empty()) {
        match by_len.iter_mut().find(|(l, _)| *l == v.text.len()) {
            Some(e) => e.1 += v.confidence,
            None => by_len.push((v.text.len(), v.confidence)),
        }
    }
    let &(len, _) = by_len
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))?;
    let group: Vec<&PlateText> = votes.iter().filter(|v| v.text.len() == len).collect();
    let n = group.len() as f32;
    let mut text = String::with_capacity(len);
    let mut confs = Vec::with_capacity(len);
    for i in 0..len {
        let mut scores: Vec<(u8, f32)> = Vec::new();
        for v in &group {
            let c = v.text.as_bytes()[i];
            let w = v.char_confidences.get(i).copied().unwrap_or(v.confidence);
            match scores.iter_mut().find(|(ch, _)| *ch == c) {
                Some(e) => e.1 += w,
                None => scores.push((c, w)),
            }
        }
        let (c, s) = scores.into_iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
        text.push(c as char);
        confs.push(s / n);
    }
    let confidence = confs.iter().sum::<f32>() / len as f32;
    let (state, state_confidence) = label_vote(votes, |v| (v.state, v.state_confidence));
    let (region, region_confidence) = label_vote(votes, |v| (v.region, v.region_confidence));
    Some(Consensus {
        text,
        char_confidences: confs,
        confidence,
        state,
        state_confidence,
        region,
        region_confidence,
    })
}

/// The label (state or region, as `label` picks it from a read) with the most summed
/// confidence over `votes`, and that sum divided by the number of votes (reads without the
/// label count as zero).
fn label_vote(
    votes: &[PlateText],
    label: impl Fn(&PlateText) -> (Option<&'static str>, f32),
) -> (Option<&'static str>, f32) {
    let mut sums: Vec<(&'static str, f32)> = Vec::new();
    for (name, conf) in votes.iter().map(label) {
        if let Some(name) = name {
            match sums.iter_mut().find(|(n, _)| *n == name) {
                Some(e) => e.1 += conf,
                None => sums.push((name, conf)),
            }
        }
    }
    match sums.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        Some((name, w)) => (Some(name), w / votes.len() as f32),
        None => (None, 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::Layout;

    fn pt(text: &str, conf: f32) -> PlateText {
        PlateText {
            text: text.into(),
            char_confidences: vec![conf; text.len()],
            confidence: conf,
            state: Some("CA"),
            state_confidence: 0.9,
            region: Some("United States"),
            region_confidence: 0.8,
            layout: Layout::Line,
        }
    }

    fn obs(x: f32, text: &str, conf: f32) -> TrackInput {
        let bbox = BBox::new(x, 100.0, 80.0, 30.0);
        TrackInput {
            quad: Quad::from_bbox(&bbox),
            bbox,
            text: pt(text, conf),
            crop: GrayImage::default(),
        }
    }

    #[test]
    fn vote_fixes_a_single_misread() {
        let c = consensus(&[
            pt("7ABC123", 0.9),
            pt("7A8C123", 0.6),
            pt("7ABC123", 0.8),
            pt("ABC123", 0.99),
        ])
        .expect("votes");
        assert_eq!(c.text, "7ABC123");
        assert_eq!(c.state, Some("CA"));
        assert_eq!(c.region, Some("United States"));
        assert!(c.char_confidences[2] < c.char_confidences[0]);
        assert!(c.confidence > 0.7 && c.confidence < 0.9);
        assert!(consensus(&[]).is_none());
    }

    #[test]
    fn one_read_per_moving_plate_and_separate_plates_stay_apart() {
        let mut t = Tracker::new(TrackerConfig::default());
        let mut reads = Vec::new();
        for f in 0..20u64 {
            let mut o = vec![obs(
                10.0 + 12.0 * f as f32,
                if f == 5 { "7A8C123" } else { "7ABC123" },
                0.9,
            )];
            if f < 10 {
                o.push(obs(600.0, "XYZ789", 0.8));
            }
            reads.extend(t.update(f * 33, o));
        }
        reads.extend(t.finish());
        let mut texts: Vec<&str> = reads.iter().map(|r| r.text.as_str()).collect();
        texts.sort();
        assert_eq!(texts, vec!["7ABC123", "XYZ789"]);
        let r = reads.iter().find(|r| r.text == "7ABC123").expect("read");
        assert_eq!(r.frames, 20);
        assert_eq!(r.first_seen_ms, 0);
        assert_eq!(r.last_seen_ms, 19 * 33);
    }

    #[test]
    fn a_second_box_on_a_tracked_plate_is_not_a_new_pass() {
        let mut t = Tracker::new(TrackerConfig::default());
        let mut reads = Vec::new();
        for f in 0..10u64 {
            let mut o = vec![obs(100.0 + 5.0 * f as f32, "ABC123", 0.9)];
            if f >= 4 {
                // A looser box around the same plate, read differently.
                let mut loose = obs(80.0 + 5.0 * f as f32, "ABC1234", 0.6);
                loose.bbox = loose.bbox.expand(0.3, 0.5);
                o.push(loose);
            }
            reads.extend(t.update(f * 33, o));
        }
        reads.extend(t.finish());
        assert_eq!(reads.len(), 1);
        assert_eq!(reads[0].text, "ABC123");
    }

    #[test]
    fn a_returning_plate_after_a_long_gap_is_a_new_pass() {
        let mut t = Tracker::new(TrackerConfig::default());
        let mut reads = t.update(0, vec![obs(10.0, "ABC123", 0.9)]);
        reads.extend(t.update(5000, vec![obs(10.0, "ABC123", 0.9)]));
        reads.extend(t.finish());
        assert_eq!(reads.len(), 2);
    }

    #[test]
    fn a_sequence_read_carries_the_context_of_its_best_frame_within_the_policy() {
        let (w, h) = (1280usize, 720usize);
        let policy = ContextPolicy::default();
        let mut t = Tracker::new(TrackerConfig::default());
        let mut reads = Vec::new();
        let mut best_bbox = None;
        for f in 0..8u64 {
            // Every frame a different flat grey, so the context shows which frame it came from.
            let pixels = vec![10 + f as u8 * 20; w * h];
            let frame = Frame::gray8(&pixels, w, h, w).expect("valid frame");
            // The plate grows as the car approaches; frame 5 is read most confidently.
            let mut o = obs(
                400.0 + 10.0 * f as f32,
                "7ABC123",
                if f == 5 { 0.97 } else { 0.8 },
            );
            o.bbox = BBox::new(
                o.bbox.x,
                300.0,
                60.0 + 4.0 * f as f32,
                20.0 + f as f32 * 1.5,
            );
            if f == 5 {
                best_bbox = Some(o.bbox);
            }
            reads.extend(t.update_in(f * 33, vec![o], Some(&frame)));
        }
        reads.extend(t.finish());
        assert_eq!(reads.len(), 1);
        let r = &reads[0];
        assert_eq!(Some(r.bbox), best_bbox);
        let ctx = r.context.as_ref().expect("a context image");
        let allowed = crate::encounter::context_box(&r.bbox, w, h, policy);
        assert!(
            ctx.width as f32 <= allowed.w.ceil() + 1.0,
            "{} > {}",
            ctx.width,
            allowed.w
        );
        assert!(
            ctx.height as f32 <= allowed.h.ceil() + 1.0,
            "{} > {}",
            ctx.height,
            allowed.h
        );
        assert!(ctx.width as f32 <= r.bbox.w * policy.width_factor + 1.0);
        assert!(ctx.height as f32 <= r.bbox.h * (1.0 + policy.above + policy.below) + 1.0);
        assert!(ctx.width * ctx.height < w * h / 4, "never the whole frame");
        assert!(ctx.width > 0 && ctx.height > 0);
        // Taken from the frame of the best crop (frame 5's grey).
        assert!(ctx.pixels.iter().all(|&p| p == 10 + 5 * 20));
        assert!(format!("{r:?}").contains("context"));
        assert!(!format!("{r:?}").contains("7ABC123"));
    }

    #[test]
    fn no_frames_or_no_policy_means_no_context() {
        let mut t = Tracker::new(TrackerConfig::default());
        t.update(0, vec![obs(10.0, "ABC123", 0.9)]);
        assert!(t.finish()[0].context.is_none());
        let mut t = Tracker::new(TrackerConfig {
            context: None,
            ..TrackerConfig::default()
        });
        let pixels = vec![0u8; 640 * 480];
        let frame = Frame::gray8(&pixels, 640, 480, 640).expect("valid frame");
        t.update_in(0, vec![obs(10.0, "ABC123", 0.9)], Some(&frame));
        assert!(t.finish()[0].context.is_none());
    }

    #[test]
    fn low_confidence_tracks_are_not_emitted() {
        let mut t = Tracker::new(TrackerConfig::default());
        t.update(0, vec![obs(10.0, "ABC123", 0.2)]);
        assert!(t.finish().is_empty());
    }
}
