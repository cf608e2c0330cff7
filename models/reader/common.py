"""Shared constants and helpers for the plate reader (alphabet, US state codes/names, layouts, CTC decode)."""
import re

import cv2
import numpy as np

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # class i+1; class 0 = CTC blank
STATES = ("AK AL AR AZ CA CO CT DC DE FL GA HI IA ID IL IN KS KY LA MA MD ME MI MN MO MS "
          "MT NC ND NE NH NJ NM NV NY OH OK OR PA RI SC SD TN TX UT VA VT WA WI WV WY").split()
STATE_INDEX = {s: i + 1 for i, s in enumerate(STATES)}  # class 0 = unknown / not US
STATE_NAMES = {
    "AK": "Alaska", "AL": "Alabama", "AR": "Arkansas", "AZ": "Arizona", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DC": "Washington D.C.", "DE": "Delaware",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "IA": "Iowa", "ID": "Idaho",
    "IL": "Illinois", "IN": "Indiana", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "MA": "Massachusetts", "MD": "Maryland", "ME": "Maine", "MI": "Michigan", "MN": "Minnesota",
    "MO": "Missouri", "MS": "Mississippi", "MT": "Montana", "NC": "North Carolina",
    "ND": "North Dakota", "NE": "Nebraska", "NH": "New Hampshire", "NJ": "New Jersey",
    "NM": "New Mexico", "NV": "Nevada", "NY": "New York", "OH": "Ohio", "OK": "Oklahoma",
    "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina",
    "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VA": "Virginia",
    "VT": "Vermont", "WA": "Washington", "WI": "Wisconsin", "WV": "West Virginia",
    "WY": "Wyoming",
}
IN_H, IN_W, T_STEPS = 48, 160, 40
# The region head's classes: class 0 is unknown, then these countries (the regions fast-plate-ocr's teacher
# names, the labels of our real plates, plus India, which our synthetic plates draw).
REGIONS = [r.replace("_", " ") for r in ("Albania Andorra Argentina Armenia Australia Austria Azerbaijan Bahrain "
           "Belarus Belgium Bosnia_and_Herzegovina Brazil Bulgaria Cambodia Canada Croatia Cyprus Czech_Republic "
           "Denmark Estonia Finland France Georgia Germany Gibraltar Greece Guernsey Hungary Iceland India Indonesia "
           "Ireland Israel Italy Latvia Liechtenstein Lithuania Luxembourg Malaysia Malta Mexico Moldova Monaco "
           "Montenegro Netherlands New_Zealand North_Macedonia Norway Poland Portugal Qatar Romania San_Marino "
           "Serbia Singapore Slovakia Slovenia Spain Sweden Switzerland Thailand Turkey Ukraine United_Kingdom "
           "United_States Vietnam").split()]
REGION_INDEX = {r: i + 1 for i, r in enumerate(REGIONS)}  # class 0 = unknown


def norm_text(s):
    """Upper-case and keep only 0-9A-Z (drops spaces, dashes, dots, separators)."""
    return re.sub(r"[^0-9A-Z]", "", s.upper())


def encode(text):
    return [ALPHABET.index(c) + 1 for c in text]


def ctc_greedy(probs):
    """probs [T, 37] -> (text, mean char confidence). Char conf = max prob over its steps."""
    text, confs = ctc_greedy_confs(probs)
    return text, float(np.mean(confs)) if confs else 0.0


# Mirrors core/src/reader.rs (`Effort::Still`): a one-line read is re-checked when its least confident character
# is below RECHECK_BELOW or a second-opinion network (outputs `chars_alt*`) reads other text at the trained
# margin. Every network then reads the plate again at each of these margins (x, y), and the text with the highest
# summed mean confidence over all reads wins.
RECHECK_BELOW = 0.9
RECHECK_MARGINS = ((0.0, 0.0), (0.02, 0.05), (0.12, 0.18), (0.20, 0.25))


def ctc_greedy_confs(probs):
    """probs [T, 37] -> (text, per-character confidences), as ctc_greedy."""
    best = probs.argmax(1)
    out, confs, prev = [], [], 0
    for t, k in enumerate(best):
        if k != 0 and k != prev:
            out.append(ALPHABET[k - 1])
            confs.append(float(probs[t, k]))
        elif k != 0 and k == prev:
            confs[-1] = max(confs[-1], float(probs[t, k]))
        prev = k
    return "".join(out), confs


def vote(reads):
    """reads: [(text, mean conf, extra)] -> the most confident read of the text that wins core's recheck vote
    (first on ties), with the mean confidence of that text's reads."""
    score = {}
    for t, c, _ in reads:
        score[t] = score.get(t, 0.0) + c
    text = max(score, key=score.get)  # first inserted wins a tie
    best = max((r for r in reads if r[0] == text), key=lambda r: r[1])
    return (best[0], score[text] / sum(r[0] == text for r in reads), best[2])


def read_line(run, gray, quad):
    """One-line read of `quad` with core's re-check. run(batch [N,1,48,160] f32) -> [chars, state, (region,)
    *chars_alt] (every output of the model file, in order). Returns (text, mean conf, state probs); the state is
    always the first read's (the trained margin)."""
    outs = run(warp_line(gray, quad)[None, None].astype(np.float32) / 255.0)
    text, confs = ctc_greedy_confs(outs[0][0])
    first = (text, float(np.mean(confs)) if confs else 0.0, outs[1][0])
    alts = [(*ctc_greedy(o[0]), first[2]) for o in outs[2:] if o.ndim == 3]
    if (min(confs) if confs else 0.0) >= RECHECK_BELOW and all(a[0] == text for a in alts):
        return first
    xs = np.stack([warp_line(gray, quad, ex, ey) for ex, ey in RECHECK_MARGINS])[:, None].astype(np.float32) / 255.0
    more = run(xs)
    nets = [more[0]] + [o for o in more[2:] if o.ndim == 3]
    reads = [first] + alts
    reads += [(*ctc_greedy(net[i]), first[2]) for i in range(len(RECHECK_MARGINS)) for net in nets]
    return vote(reads)


def expand_quad(quad, ex=0.06, ey=0.10):
    """Contract expansion: +ex of the quad width left/right, +ey of its height top/bottom."""
    q = np.asarray(quad, np.float32)
    tl, tr, br, bl = q
    ux = ((tr - tl) + (br - bl)) / 2.0  # width vector
    uy = ((bl - tl) + (br - tr)) / 2.0  # height vector
    return np.stack([tl - ex * ux - ey * uy, tr + ex * ux - ey * uy,
                     br + ex * ux + ey * uy, bl - ex * ux + ey * uy]).astype(np.float32)


def warp_line(gray, quad, ex=0.06, ey=0.10):
    """"line" layout: expanded quad -> 160x48 bilinear."""
    q = expand_quad(quad, ex, ey)
    dst = np.float32([[0, 0], [IN_W, 0], [IN_W, IN_H], [0, IN_H]])
    m = cv2.getPerspectiveTransform(q, dst)
    return cv2.warpPerspective(gray, m, (IN_W, IN_H), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)


def warp_stacked(gray, quad, ex=0.06, ey=0.10):
    """"stacked" layout: expanded quad -> 160x96, top half | bottom half each resized to 80x48."""
    q = expand_quad(quad, ex, ey)
    dst = np.float32([[0, 0], [IN_W, 0], [IN_W, 2 * IN_H], [0, 2 * IN_H]])
    m = cv2.getPerspectiveTransform(q, dst)
    w = cv2.warpPerspective(gray, m, (IN_W, 2 * IN_H), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    return stack_halves(w)


def stack_halves(img96):
    top = cv2.resize(img96[:IN_H], (IN_W // 2, IN_H), interpolation=cv2.INTER_LINEAR)
    bot = cv2.resize(img96[IN_H:], (IN_W // 2, IN_H), interpolation=cv2.INTER_LINEAR)
    return np.hstack([top, bot])


def to_gray(bgr):
    """BT.601 luma as the contract specifies (cv2's BGR2GRAY uses the same weights)."""
    if bgr.ndim == 2:
        return bgr
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
