//! Plate reader: a plate quad warped to the reader's 160x48 input (one line, or two lines
//! stacked side by side), an ONNX CTC model, greedy decoding, the US state head and (when the
//! model has it) the region (country) head.

use serde::Serialize;

use crate::error::ModelError;
use crate::geometry::Quad;
use crate::imgproc::Sampler;
use crate::model::{OnnxModel, Output};
use crate::text::{CHARSET, REGIONS, STATES};

pub const INPUT_W: usize = 160;
pub const INPUT_H: usize = 48;
const CLASSES: usize = CHARSET.len() + 1;
/// Quads narrower than this width/height ratio are also tried as two-line plates.
const STACKED_MAX_ASPECT: f32 = 1.6;
/// Two-line plates as wide as 2.8:1 (Indian motorcycle and rear plates, `MP06M` over
/// `W4025`) look like one-line plates by shape: a quad under this aspect whose one-line read
/// is less sure than [`STACKED_RETRY_BELOW`] is also read stacked, and the surer read wins.
/// On roboflow-test that read 3 more plates with reader v9 (0.776 → 0.786 exact).
const STACKED_RETRY_ASPECT: f32 = 2.8;
/// See [`STACKED_RETRY_ASPECT`].
const STACKED_RETRY_BELOW: f32 = 0.9;
/// The margin added around a detected quad before it is read (share of its width left and
/// right, of its height above and below): the centre of the margins the networks are trained
/// on (-3% to +18%, -5% to +25%). `--read-margin` tries others; 15%/20% read 0.587 / 0.815
/// exact on scenes-dev against 0.577 / 0.840 at this default, so the default stays.
pub const DEFAULT_MARGIN: (f32, f32) = CROP_MARGIN;
/// The margin for an image that is already a plate crop (its own border is the margin).
pub const CROP_MARGIN: (f32, f32) = (0.06, 0.10);
/// Margins (x, y) at which every network reads an uncertain plate again: tighter and looser
/// than the trained margin, so a character cut by the edge, or a sticker or emblem beside the
/// serial, falls differently in each.
const RECHECK_MARGINS: [(f32, f32); 4] = [(0.0, 0.0), (0.02, 0.05), (0.12, 0.18), (0.20, 0.25)];
/// The optional outputs of second-opinion networks in `plate_reader.onnx` start with this
/// (`chars_alt`, `chars_alt2`, ...).
const ALT_OUTPUT: &str = "chars_alt";
/// Default `PlateReader::region_threshold`.
pub const DEFAULT_REGION_THRESHOLD: f32 = 0.5;
/// Default `PlateReader::recheck_below`.
pub const DEFAULT_RECHECK_BELOW: f32 = 0.9;

/// How much work the reader spends on one plate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Effort {
    /// One read (two for a squarish quad: one line and two lines stacked). For video and
    /// camera frames: the tracker votes over the reads of every frame of a vehicle pass.
    #[default]
    Frame,
    /// As `Frame`, and the second-opinion networks (when the model file has them) read the
    /// plate too; an uncertain read (see [`PlateReader::recheck_below`]), or one a second
    /// opinion disagrees with, is read again by every network at four other margins, and the
    /// reads vote; the winner's confidence shrinks with the share of the reads that agree with
    /// it, so a text few reads agree on is reported as uncertain. A stacked read is voted on by every network too. For
    /// still images, which get no second frame.
    Still,
}

/// How the plate's characters were laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Line,
    Stacked,
}

/// The text read from one plate image. `Debug` shows the length, never the text.
#[derive(Clone, PartialEq, Serialize)]
pub struct PlateText {
    /// Normalised text: upper-case letters and digits.
    pub text: String,
    /// Confidence of each character of `text`, 0..1.
    pub char_confidences: Vec<f32>,
    /// Mean character confidence (0 for an empty read).
    pub confidence: f32,
    /// US state postal code, when the state head is confident.
    pub state: Option<&'static str>,
    pub state_confidence: f32,
    /// The plate's country, when the model has a region head and it is confident.
    pub region: Option<&'static str>,
    pub region_confidence: f32,
    pub layout: Layout,
}

impl PlateText {
    /// Confidence of the least confident character (0 for an empty read).
    pub fn min_confidence(&self) -> f32 {
        self.char_confidences
            .iter()
            .copied()
            .reduce(f32::min)
            .unwrap_or(0.0)
    }
}

impl std::fmt::Debug for PlateText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlateText")
            .field("text", &crate::Redacted(self.text.len()))
            .field("confidence", &self.confidence)
            .field("state", &self.state)
            .field("state_confidence", &self.state_confidence)
            .field("region", &self.region)
            .field("region_confidence", &self.region_confidence)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

/// The plate reader, loaded and optimised once.
#[derive(Debug)]
pub struct PlateReader {
    model: OnnxModel,
    /// The second-opinion networks (outputs `chars_alt*`, see `models/CONTRACT.md`) in one
    /// plan, when the file has them.
    alt: Option<OnnxModel>,
    /// Minimum state probability to report a state.
    pub state_threshold: f32,
    /// Minimum region probability to report a region.
    pub region_threshold: f32,
    /// With [`Effort::Still`], a one-line read whose least confident character is below this
    /// (or that a second opinion disagrees with) is read again by every network at each of
    /// `RECHECK_MARGINS`; the text with the highest summed confidence over all reads wins.
    pub recheck_below: f32,
    /// Margin added around each quad before it is read: share of the quad's width left and
    /// right, of its height above and below.
    pub margin: (f32, f32),
}

impl PlateReader {
    /// Loads `plate_reader.onnx`: outputs `chars` and `state`, and optionally `chars_alt`,
    /// `chars_alt2`, ... (second networks, run only on still images).
    pub fn new(onnx: &[u8]) -> Result<Self, crate::Error> {
        const SHAPE: [usize; 4] = [1, 1, INPUT_H, INPUT_W];
        let parsed = OnnxModel::parse("reader", onnx)?;
        let alt_names = parsed.outputs_starting_with(ALT_OUTPUT);
        let (model, alt) = if alt_names.is_empty() {
            (OnnxModel::plan(parsed, &SHAPE, None)?, None)
        } else {
            let names: Vec<&str> = alt_names.iter().map(String::as_str).collect();
            let main_names: &[&str] = if parsed.outputs_starting_with("region").is_empty() {
                &["chars", "state"]
            } else {
                &["chars", "state", "region"]
            };
            let main = OnnxModel::plan(parsed.clone(), &SHAPE, Some(main_names))?;
            let alt = OnnxModel::plan(parsed, &SHAPE, Some(&names))?;
            (main, Some(alt))
        };
        let reader = PlateReader {
            model,
            alt,
            state_threshold: 0.5,
            region_threshold: DEFAULT_REGION_THRESHOLD,
            recheck_below: DEFAULT_RECHECK_BELOW,
            margin: DEFAULT_MARGIN,
        };
        let blank = vec![0.0; INPUT_W * INPUT_H];
        split_outputs(&reader.model.run(blank.clone())?)?;
        if let Some(alt) = &reader.alt {
            alt_outputs(&alt.run(blank)?)?;
        }
        Ok(reader)
    }

    /// How many second-opinion networks the model file carries.
    pub fn second_opinions(&self) -> usize {
        self.alt.as_ref().map_or(0, |a| a.outputs())
    }

    /// Reads the plate inside `quad` (upright pixels), with [`PlateReader::margin`] added
    /// around it (pixels beyond the image edge are replicated).
    pub fn read(
        &self,
        sampler: &Sampler<'_>,
        quad: &Quad,
        effort: Effort,
    ) -> Result<PlateText, ModelError> {
        self.read_with_margin(sampler, quad, effort, self.margin)
    }

    /// [`PlateReader::read`] with another margin around `quad`.
    pub fn read_with_margin(
        &self,
        sampler: &Sampler<'_>,
        quad: &Quad,
        effort: Effort,
        margin: (f32, f32),
    ) -> Result<PlateText, ModelError> {
        let q = quad.expand(margin.0, margin.1);
        // The main network's one-line read at this margin decides the stacked retry below (a
        // vote's share of agreeing reads is no measure of whether the plate has two lines).
        let (mut best, first_confidence) = if effort == Effort::Still {
            let mut reads = self.read_every_network(sampler, &q, Layout::Line)?;
            let first_confidence = reads[0].confidence;
            if disputed(&reads[0], &reads[1..], self.recheck_below) {
                (self.recheck(sampler, quad, reads)?, first_confidence)
            } else {
                (reads.swap_remove(0), first_confidence)
            }
        } else {
            let read = self.read_layout(sampler, &q, Layout::Line)?;
            let first_confidence = read.confidence;
            (read, first_confidence)
        };
        let (w, h) = (quad.width(), quad.height());
        let aspect = if h > 0.0 { w / h } else { f32::MAX };
        if aspect < STACKED_MAX_ASPECT
            || (aspect < STACKED_RETRY_ASPECT && first_confidence < STACKED_RETRY_BELOW)
        {
            // On a still image every network reads it stacked too, and they vote, so one
            // network's confident fragment of a plate does not beat the one-line read alone.
            let stacked = if effort == Effort::Still && self.alt.is_some() {
                let reads = self.read_every_network(sampler, &q, Layout::Stacked)?;
                let labels = labels_of(&reads[0]);
                with_labels(vote(reads), labels)
            } else {
                self.read_layout(sampler, &q, Layout::Stacked)?
            };
            if stacked.confidence * stacked.text.len().min(1) as f32 > best.confidence {
                best = stacked;
            }
        }
        Ok(best)
    }

    /// Every network's read of `q` (already expanded) in `layout`, from one warp: the main
    /// network's read first, then the second opinions' (none without them).
    fn read_every_network(
        &self,
        sampler: &Sampler<'_>,
        q: &Quad,
        layout: Layout,
    ) -> Result<Vec<PlateText>, ModelError> {
        let input = warp(sampler, q, layout);
        let alts = match &self.alt {
            Some(alt) => alt.run(input.clone())?,
            None => Vec::new(),
        };
        let mut reads = vec![self.read_input(input, layout)?];
        reads.extend(
            alt_outputs(&alts)?
                .into_iter()
                .map(|(chars, steps)| plate_text(chars, steps, Labels::default(), layout)),
        );
        Ok(reads)
    }

    /// Reads the plate again with every network at each of `RECHECK_MARGINS` and votes over
    /// these reads and `reads` (every network's read at the trained margin, the main one
    /// first) (see [`vote`]), keeping the main network's first state and region.
    fn recheck(
        &self,
        sampler: &Sampler<'_>,
        quad: &Quad,
        mut reads: Vec<PlateText>,
    ) -> Result<PlateText, ModelError> {
        let labels = labels_of(&reads[0]);
        for (x, y) in RECHECK_MARGINS {
            reads.extend(self.read_every_network(sampler, &quad.expand(x, y), Layout::Line)?);
        }
        Ok(with_labels(vote(reads), labels))
    }

    fn read_layout(
        &self,
        sampler: &Sampler<'_>,
        q: &Quad,
        layout: Layout,
    ) -> Result<PlateText, ModelError> {
        self.read_input(warp(sampler, q, layout), layout)
    }

    /// The main network's read of a warped `input` in `layout`.
    fn read_input(&self, input: Vec<f32>, layout: Layout) -> Result<PlateText, ModelError> {
        let outs = self.model.run(input)?;
        let (chars, steps, state, region) = split_outputs(&outs)?;
        let (state, state_confidence) = best_class(state, &STATES, self.state_threshold);
        let (region, region_confidence) = match region {
            Some(r) => best_class(r, &REGIONS, self.region_threshold),
            None => (None, 0.0),
        };
        let labels = Labels {
            state,
            state_confidence,
            region,
            region_confidence,
        };
        Ok(plate_text(chars, steps, labels, layout))
    }
}

/// The reader's input for `q` (already expanded) in `layout`.
fn warp(sampler: &Sampler<'_>, q: &Quad, layout: Layout) -> Vec<f32> {
    let mut input = vec![0.0; INPUT_W * INPUT_H];
    match layout {
        Layout::Line => sampler.warp_quad(q, INPUT_W, INPUT_H, &mut input, INPUT_W),
        Layout::Stacked => {
            let half = INPUT_W / 2;
            let top = Quad([
                q.at(0.0, 0.0),
                q.at(1.0, 0.0),
                q.at(1.0, 0.5),
                q.at(0.0, 0.5),
            ]);
            let bottom = Quad([
                q.at(0.0, 0.5),
                q.at(1.0, 0.5),
                q.at(1.0, 1.0),
                q.at(0.0, 1.0),
            ]);
            sampler.warp_quad(&top, half, INPUT_H, &mut input, INPUT_W);
            sampler.warp_quad(&bottom, half, INPUT_H, &mut input[half..], INPUT_W);
        }
    }
    input
}

/// The most probable class of a head whose class 0 is "unknown" and whose class `i` is
/// `names[i - 1]`: the name when it is at least `threshold` sure, and its probability.
fn best_class(
    probs: &[f32],
    names: &[&'static str],
    threshold: f32,
) -> (Option<&'static str>, f32) {
    let (best, p) =
        probs.iter().enumerate().fold(
            (0, 0.0f32),
            |acc, (i, &p)| if p > acc.1 { (i, p) } else { acc },
        );
    ((best > 0 && p >= threshold).then(|| names[best - 1]), p)
}

/// What the state and region heads said of one read.
#[derive(Debug, Clone, Copy, Default)]
struct Labels {
    state: Option<&'static str>,
    state_confidence: f32,
    region: Option<&'static str>,
    region_confidence: f32,
}

/// Greedy CTC decoding of `chars` into a read (mean character confidence). The letter O and
/// the digit 0 are kept as the network reads them: the hot list matcher treats them as
/// look-alikes, so an alert never depends on which one the plate's die uses.
fn plate_text(chars: &[f32], steps: usize, labels: Labels, layout: Layout) -> PlateText {
    let (text, char_confidences) = ctc_greedy(chars, steps, CLASSES);
    let confidence = if text.is_empty() {
        0.0
    } else {
        char_confidences.iter().sum::<f32>() / char_confidences.len() as f32
    };
    PlateText {
        text,
        char_confidences,
        confidence,
        state: labels.state,
        state_confidence: labels.state_confidence,
        region: labels.region,
        region_confidence: labels.region_confidence,
        layout,
    }
}

/// Whether a still image's `first` read is re-read: its least confident character is below
/// `below`, or a second opinion read other text.
fn disputed(first: &PlateText, alts: &[PlateText], below: f32) -> bool {
    first.min_confidence() < below || alts.iter().any(|a| a.text != first.text)
}

/// The state and region of `read`: the voted read takes those of the main network's read at the
/// trained margin (the second opinions have no such heads, and those heads see the state name
/// and the plate's design best at that margin).
fn labels_of(read: &PlateText) -> Labels {
    Labels {
        state: read.state,
        state_confidence: read.state_confidence,
        region: read.region,
        region_confidence: read.region_confidence,
    }
}

/// `read` with the state and region of `labels`.
fn with_labels(read: PlateText, labels: Labels) -> PlateText {
    PlateText {
        state: labels.state,
        state_confidence: labels.state_confidence,
        region: labels.region,
        region_confidence: labels.region_confidence,
        ..read
    }
}

/// The winner of a vote among `reads` (at least one): every read adds its mean confidence to
/// its text's score; the highest score wins (the earlier read on a tie). The most confident read
/// of that text is returned, with the geometric mean of its confidence and its text's score over
/// the number of reads as its confidence.
fn vote(mut reads: Vec<PlateText>) -> PlateText {
    let score = |text: &str| -> f32 {
        reads
            .iter()
            .filter(|r| r.text == text)
            .map(|r| r.confidence)
            .sum()
    };
    let mut text_winner = 0;
    let mut best_score = f32::MIN;
    for (i, r) in reads.iter().enumerate() {
        let s = score(&r.text);
        if s > best_score {
            best_score = s;
            text_winner = i;
        }
    }
    let mut winner = text_winner;
    for (i, r) in reads.iter().enumerate() {
        if r.text == reads[text_winner].text && r.confidence > reads[winner].confidence {
            winner = i;
        }
    }
    // The winner's confidence becomes the geometric mean of its own confidence and its text's
    // share of all reads (the summed confidence of the reads of its text over the number of
    // reads), and its characters' confidences shrink by the same factor. The most confident of
    // several reads overstated them: on scenes-dev, a third of the misreads reported at 0.9 or
    // more were a text that one or two of ten reads agreed on. The share alone made the
    // confidence honest too, but it put so many reads below the tracker's threshold for
    // reporting a read at all that fewer plates alerted (roboflow-test: match_rate 0.75
    // against 0.80 with the geometric mean; models/reader/MODEL_CARD.md, "Confidence").
    let n = reads.len() as f32;
    let mut best = reads.swap_remove(winner);
    if best.confidence > 0.0 {
        let agreement = (best_score / (n * best.confidence)).min(1.0).sqrt();
        best.confidence *= agreement;
        best.char_confidences
            .iter_mut()
            .for_each(|c| *c *= agreement);
    }
    best
}

/// The `[1, T, classes]` character outputs of the second-opinion plan, each with its T.
fn alt_outputs(outs: &[Output]) -> Result<Vec<(&[f32], usize)>, ModelError> {
    outs.iter()
        .map(|c| {
            if let Some(steps) = char_steps(c) {
                Ok((c.data(), steps))
            } else {
                Err(ModelError::Interface {
                    model: "reader",
                    reason: format!(
                        "expected {ALT_OUTPUT}* outputs [1,T,{CLASSES}], got {:?}",
                        outs.iter().map(Output::shape).collect::<Vec<_>>()
                    ),
                })
            }
        })
        .collect()
}

/// T when `o` is a `[1, T, CLASSES]` character output.
fn char_steps(o: &Output) -> Option<usize> {
    match o.shape() {
        [1, steps, c] if *c == CLASSES => Some(*steps),
        _ => None,
    }
}

/// The character output, its T, the state output and (when the model has one) the region
/// output of the main plan, told apart by their shapes.
type MainOutputs<'a> = (&'a [f32], usize, &'a [f32], Option<&'a [f32]>);

fn split_outputs(outs: &[Output]) -> Result<MainOutputs<'_>, ModelError> {
    let chars = outs.iter().find(|o| char_steps(o).is_some());
    let state = outs.iter().find(|o| o.shape() == [1, STATES.len() + 1]);
    let region = outs
        .iter()
        .find(|o| o.shape() == [1, REGIONS.len() + 1])
        .map(Output::data);
    match (chars, state) {
        (Some(c), Some(s)) => Ok((c.data(), c.shape()[1], s.data(), region)),
        _ => Err(ModelError::Interface {
            model: "reader",
            reason: format!(
                "expected outputs [1,T,{CLASSES}] and [1,{}], got {:?}",
                STATES.len() + 1,
                outs.iter().map(Output::shape).collect::<Vec<_>>()
            ),
        }),
    }
}

/// Greedy CTC decoding of `steps x classes` probabilities (class 0 = blank). Each emitted
/// character's confidence is its highest probability over the run of steps that emitted it.
pub fn ctc_greedy(probs: &[f32], steps: usize, classes: usize) -> (String, Vec<f32>) {
    let mut text = String::new();
    let mut confs: Vec<f32> = Vec::new();
    let mut prev = 0usize;
    for t in 0..steps {
        let row = &probs[t * classes..(t + 1) * classes];
        let (k, p) = row
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
        if k != 0 && k != prev {
            text.push(CHARSET[k - 1] as char);
            confs.push(p);
        } else if k != 0 && k == prev {
            if let Some(last) = confs.last_mut() {
                *last = last.max(p);
            }
        }
        prev = k;
    }
    (text, confs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hot(seq: &[(usize, f32)]) -> Vec<f32> {
        let mut v = vec![0.0; seq.len() * CLASSES];
        for (t, &(k, p)) in seq.iter().enumerate() {
            v[t * CLASSES + k] = p;
            v[t * CLASSES + if k == 0 { 1 } else { 0 }] = 1.0 - p;
        }
        v
    }

    fn read(text: &str, confidence: f32) -> PlateText {
        PlateText {
            text: text.into(),
            char_confidences: vec![confidence; text.len()],
            confidence,
            state: None,
            state_confidence: 0.0,
            region: None,
            region_confidence: 0.0,
            layout: Layout::Line,
        }
    }

    #[test]
    fn recheck_vote_sums_confidence_per_text() {
        // Two agreeing reads outvote one more confident read; the agreeing text's most
        // confident read is returned.
        let v = vote(vec![
            read("AB12", 0.95),
            read("AB123", 0.6),
            read("AB123", 0.7),
        ]);
        // Its confidence: the geometric mean of its own, 0.7, and its text's share of all
        // reads, (0.6 + 0.7) / 3.
        let want = (0.7f32 * 1.3 / 3.0).sqrt();
        assert_eq!(v.text, "AB123");
        assert!((v.confidence - want).abs() < 1e-6, "{}", v.confidence);
        assert!((v.char_confidences[0] - want).abs() < 1e-6);
        // Reads that all agree keep the best read's confidence.
        let v = vote(vec![read("AB12", 0.9), read("AB12", 0.9)]);
        assert!((v.confidence - 0.9).abs() < 1e-6);
        // All different: the most confident wins, with its confidence shrunk by √(1/3).
        let v = vote(vec![read("X1", 0.5), read("X2", 0.8), read("X3", 0.7)]);
        assert_eq!(v.text, "X2");
        assert!(
            (v.confidence - 0.8 / 3f32.sqrt()).abs() < 1e-6,
            "{}",
            v.confidence
        );
        // A tie keeps the first read.
        let v = vote(vec![read("X1", 0.5), read("X2", 0.5)]);
        assert_eq!(v.text, "X1");
        assert_eq!(read("", 0.0).min_confidence(), 0.0);
    }

    #[test]
    fn a_read_is_disputed_when_uncertain_or_contradicted() {
        let sure = read("7ABC123", 0.97);
        assert!(!disputed(&sure, &[], 0.9));
        assert!(!disputed(&sure, &[read("7ABC123", 0.6)], 0.9));
        assert!(disputed(&sure, &[read("7ABC12", 0.99)], 0.9));
        assert!(disputed(&read("7ABC123", 0.85), &[], 0.9));
        assert!(
            disputed(&read("", 0.0), &[], 0.9),
            "an empty read has no confidence"
        );
    }

    #[test]
    fn ctc_collapses_repeats_and_blanks() {
        // "A", "A", blank, "A", "1" -> "AA1"
        let a = 11;
        let probs = one_hot(&[(a, 0.6), (a, 0.9), (0, 0.8), (a, 0.7), (2, 0.95), (0, 0.9)]);
        let (text, conf) = ctc_greedy(&probs, 6, CLASSES);
        assert_eq!(text, "AA1");
        assert_eq!(conf, vec![0.9, 0.7, 0.95]);
        let (text, conf) = ctc_greedy(&one_hot(&[(0, 0.9); 4]), 4, CLASSES);
        assert!(text.is_empty() && conf.is_empty());
    }
}
