"""Synthetic licence-plate renderer for reader training (US state formats, 2-line plates, RO, EU, UK, Indian
and Brazilian plates).

`make_sample(rng)` returns (uint8 [48,160] image in the contract's "line" or "stacked" layout, text,
state class index, layout). Rendering is done directly in grayscale (what the model sees).
Run `python3 models/reader/synth.py --out /tmp/synth.png` to write a preview montage.
"""
import glob
import io
import os
import re
import sys

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import IN_H, IN_W, STATE_INDEX, STATE_NAMES, STATES, stack_halves  # noqa: E402


def _site_fonts(pattern):
    out = []
    for d in sys.path:
        if d and os.path.isdir(d):
            out += glob.glob(os.path.join(d, pattern))
    return sorted(set(out))


DEB = "/usr/share/fonts/truetype/"
SERIAL_FONTS = [DEB + p for p in (
    "dejavu/DejaVuSansCondensed-Bold.ttf", "dejavu/DejaVuSansCondensed.ttf", "dejavu/DejaVuSansMono-Bold.ttf",
    "dejavu/DejaVuSans-Bold.ttf", "dejavu/DejaVuSansMono.ttf",
    "liberation/LiberationSansNarrow-Bold.ttf", "liberation/LiberationSansNarrow-Regular.ttf",
    "liberation/LiberationMono-Bold.ttf", "liberation/LiberationSans-Bold.ttf",
    "liberation/LiberationSans-Regular.ttf", "freefont/FreeSansBold.ttf", "freefont/FreeSans.ttf",
    "freefont/FreeMonoBold.ttf", "dejavu/DejaVuSerifCondensed-Bold.ttf")]
SERIAL_FONTS += _site_fonts("fontpkg_*/files/*[!c].ttf")  # fontpkg-* wheels (skip *Italic)
SERIAL_FONTS = [f for f in SERIAL_FONTS if os.path.exists(f) and "Thin" not in f
                and "ExtraLight" not in f and "Italic" not in f]
TITLE_FONTS = sorted(f for f in glob.glob(DEB + "*/*.ttf") if "Math" not in f and "Mono" not in f
                     and "Condensed" not in f and "ExtraLight" not in f)
# small text (state names, slogans, stickers) also uses the condensed wheels, italics included
TITLE_FONTS += [f for f in _site_fonts("fontpkg_*/files/*.ttf") if "Thin" not in f and "ExtraLight" not in f]


def _family(path):
    return re.split(r"[-\[_.]", os.path.basename(path))[0].replace("Condensed", "").replace("Narrow", "")


# Serial fonts are drawn family-first (a family with 10 weights must not dominate). The tall condensed
# gothic families that US plates resemble (Penitentiary-Gothic-like) get a higher family weight.
PLATE_LIKE = ("BebasNeue", "Oswald", "Teko", "FjallaOne", "Anton", "PT", "RobotoCondensed", "Barlow",
              "LiberationSans", "Saira", "FiraSans", "ArchivoNarrow")
_FAMS = {}
for _f in SERIAL_FONTS:
    _FAMS.setdefault(_family(_f), []).append(_f)
FAMILIES = sorted(_FAMS)
_FAM_W = np.array([3.0 if any(_family(p) in k or k in p for p in PLATE_LIKE) else 1.0 for k in FAMILIES])
_FAM_W /= _FAM_W.sum()


def serial_font(rng):
    fam = _FAMS[FAMILIES[rng.choice(len(FAMILIES), p=_FAM_W)]]
    return fam[rng.integers(len(fam))]

_FONT_CACHE = {}


def font(path, size):
    size = int(max(6, size))
    k = (path, size)
    f = _FONT_CACHE.get(k)
    if f is None:
        f = ImageFont.truetype(path, size)
        _FONT_CACHE[k] = f
    return f


LET = "ABCDEFGHIJKLMNPQRSTUVWXYZ"  # O rarer: most states avoid it; added below with low prob
DIG = "0123456789"


def load_formats(path=os.path.join(os.path.dirname(os.path.abspath(__file__)), "serial_formats.txt")):
    """serial_formats.txt -> ({state: [formats]}, US formats, US two-line (top, bottom),
    other countries [(style, country, format)]), in file order."""
    states, generic, two, intl = {}, [], [], []
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where, fmt = line.split(" ", 1)
        if where.startswith("INTL-"):
            country, fmt = fmt.split(" ", 1)
            intl.append((where[5:], country, fmt))
        elif where == "US":
            generic.append(fmt)
        elif where == "US2":
            two.append(tuple(fmt.split("/")))
        elif where != "RO":  # Romanian serials are composed in render_plate
            states.setdefault(where, []).append(fmt)
    return states, generic, two, intl


STATE_FORMATS, GENERIC, TWO_LINE, INTL = load_formats()
INTL_STYLES = sorted({st for st, _, _ in INTL})
RO_COUNTY = ("AB AR AG BC BH BN BT BV BR BZ CS CL CJ CT CV DB DJ GL GR GJ HR HD IL IS IF MM MH MS "
             "NT OT PH SM SJ SB SV TR TM TL VS VL VN").split()
SLOGANS = ["THE GOLDEN STATE", "SUNSHINE STATE", "EMPIRE STATE", "GARDEN STATE", "LAND OF LINCOLN",
           "FIRST IN FLIGHT", "THE LONE STAR STATE", "Great Lakes State", "Live Free or Die",
           "Explore Minnesota", "AMERICA'S DAIRYLAND", "Ocean State", "dmv.ca.gov", "PEACH STATE",
           "Famous Potatoes", "Sportsman's Paradise", "Grand Canyon State", "Land of Enchantment",
           "Greatest Snow on Earth", "Wild Wonderful", "Spirit of America", "Green Mountain State",
           "Taxation Without Representation", "COUNTY", "Virginia is for Lovers", "Aloha State",
           "The Silver State", "Celebrating Statehood", "IN GOD WE TRUST", "Pacific Wonderland"]


# Share of single-line US serials drawn edge to edge (tight side margins, stretched to fill their box):
# 0 for reader v4 (and before), 0.35 for v6. train.py --edge-serials sets it.
EDGE_SERIALS = 0.35

# Share of serials (all plate kinds) whose digit 1 is a plain vertical bar, as in the plate fonts of New
# Hampshire, Massachusetts, Vermont, Oregon or Virginia, where a 1 looks like an I; 0 for reader v6 and before.
BAR_ONES = 0.0
# Share of serials drawn monospaced (each character centred in a cell at least as wide as the font's 0), as
# most US plate dies are: a 1 keeps a full cell of space around it; 0 for reader v6 and before.
MONO_SERIALS = 0.0

# Most states never issue I, O or Q in sequential serials (they look like 1, 0 and 0): keep them rare so the
# letter prior matches real plates. Vanity plates (below) use the full alphabet.
LET_SERIAL = "ABCDEFGHJKLMNPRSTUVWXYZ"


def rand_serial(rng, fmt):
    out = []
    for c in fmt:
        if c == "L":
            r = rng.random()
            out.append("IOQ"[rng.integers(3)] if r < 0.03 else LET_SERIAL[rng.integers(len(LET_SERIAL))])
        elif c == "D":
            out.append(DIG[rng.integers(10)])
        else:
            out.append(c)
    return "".join(out)


def vanity(rng):
    n = rng.integers(3, 9)
    pool = CAPS if rng.random() < 0.5 else LET + "O" + LET  # letter-heavy words, full alphabet
    s = "".join(pool[rng.integers(len(pool))] for _ in range(n))
    for _ in range(rng.integers(0, 3)):  # repeated letters (BUBBIE, GOOD, 2FFF): CTC must keep both
        k = rng.integers(len(s))
        s = s[:k + 1] + s[k] * int(rng.integers(1, 3)) + s[k + 1:]
    s = s[:8]
    if rng.random() < 0.4:
        k = rng.integers(1, n)
        s = s[:k] + " " + s[k:]
    return s


_MASK_CACHE = {}
_GLYPH_CACHE = {}
CAPS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def text_mask(txt, fpath, size=48, stroke=0):
    """Render text as an L mask tightly cropped to ink (cached per font/text)."""
    k = (txt, fpath, stroke)
    m = _MASK_CACHE.get(k)
    if m is not None:
        return m
    f = font(fpath, 28)  # small text is pasted at <= 26 px in the 100 px plate: 28 px is enough
    l, t, r, b = f.getbbox(txt, stroke_width=stroke)
    w, h = max(1, r - l), max(1, b - t)
    im = Image.new("L", (w + 4, h + 4), 0)
    ImageDraw.Draw(im).text((2 - l, 2 - t), txt, fill=255, font=f, stroke_width=stroke, stroke_fill=255)
    m = np.asarray(im, np.float32) / 255.0
    ys, xs = np.nonzero(m > 0.05)
    if len(xs):
        m = m[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    if len(_MASK_CACHE) > 20000:
        _MASK_CACHE.clear()
    _MASK_CACHE[k] = m
    return m


def glyph(ch, fpath, stroke=0):
    """Cap-height-aligned glyph mask (height = font cap band), cropped horizontally to ink."""
    k = (ch, fpath, stroke)
    g = _GLYPH_CACHE.get(k)
    if g is not None:
        return g
    f = font(fpath, 64)
    ck = ("__band__", fpath, stroke)
    band = _GLYPH_CACHE.get(ck)
    if band is None:
        band = f.getbbox(CAPS, stroke_width=stroke)[1::2]
        _GLYPH_CACHE[ck] = band
    top, bot = band
    l, _, r, _ = f.getbbox(ch, stroke_width=stroke)
    im = Image.new("L", (r - l + 4, bot - top + 2), 0)
    ImageDraw.Draw(im).text((2 - l, 1 - top), ch, fill=255, font=f, stroke_width=stroke, stroke_fill=255)
    g = np.asarray(im, np.float32) / 255.0
    xs = np.nonzero(g.max(0) > 0.05)[0]
    if len(xs):
        g = g[:, xs.min():xs.max() + 1]
    _GLYPH_CACHE[k] = g
    return g


def bar_glyph(fpath, stroke=0):
    """A plain vertical bar as tall as the cap band, as wide as the font's vertical stems (the left stem of H)."""
    k = ("__bar__", fpath, stroke)
    g = _GLYPH_CACHE.get(k)
    if g is None:
        h = glyph("H", fpath, stroke)
        row = h[h.shape[0] // 4] > 0.5
        stem = int(np.argmin(row)) if not row.all() else max(1, h.shape[1] // 5)
        g = np.ones((h.shape[0], max(2, stem)), np.float32)
        _GLYPH_CACHE[k] = g
    return g


def word_mask(txt, fpath, stroke, track, bar_one=False, mono=False):
    """One word of a serial: glyphs joined with a gap of `track` x height. With `bar_one` the digit 1 is a
    plain bar; with `mono` each glyph is centred in a cell at least as wide as the font's 0."""
    gs = [bar_glyph(fpath, stroke) if bar_one and c == "1" else glyph(c, fpath, stroke) for c in txt]
    h = gs[0].shape[0]
    if mono:
        cell = glyph("0", fpath, stroke).shape[1]
        gs = [np.pad(g, ((0, 0), ((max(cell, g.shape[1]) - g.shape[1]) // 2,
                                  (max(cell, g.shape[1]) - g.shape[1] + 1) // 2))) for g in gs]
    gap = np.zeros((h, max(0, int(track * h))), np.float32)
    parts = []
    for i, g in enumerate(gs):
        if i:
            parts.append(gap)
        parts.append(g)
    return np.hstack(parts)


def paste(canvas, mask, x0, y0, w, h, val):
    """Composite `val` through `mask` resized to w x h at (x0, y0)."""
    w, h = max(1, int(w)), max(1, int(h))
    m = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA if mask.shape[1] > w else cv2.INTER_LINEAR)
    H, W = canvas.shape
    x0, y0 = int(x0), int(y0)
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if xb <= xa or yb <= ya:
        return
    mm = m[ya - y0:yb - y0, xa - x0:xb - x0]
    region = canvas[ya:yb, xa:xb]
    canvas[ya:yb, xa:xb] = region * (1 - mm) + val * mm


def background(rng, h, w):
    base = rng.uniform(0.55, 0.98) if rng.random() < 0.75 else rng.uniform(0.05, 0.5)
    img = np.full((h, w), base, np.float32)
    if rng.random() < 0.6:  # gradient
        g = rng.uniform(-0.25, 0.25)
        if rng.random() < 0.5:
            img += np.linspace(0, g, h, dtype=np.float32)[:, None]
        else:
            img += np.linspace(0, g, w, dtype=np.float32)[None, :]
    for _ in range(rng.integers(0, 4)):  # soft graphics (mountains, sun, blobs)
        v = rng.uniform(-0.3, 0.3)
        kind = rng.random()
        if kind < 0.4:
            cv2.circle(img, (int(rng.uniform(0, w)), int(rng.uniform(0, h))), int(rng.uniform(h * .1, h * .6)),
                       float(base + v), -1)
        elif kind < 0.75:
            pts = np.array([[0, h], [rng.uniform(0, w), rng.uniform(h * .3, h)],
                            [rng.uniform(0, w), rng.uniform(h * .4, h)], [w, h]], np.int32)
            cv2.fillPoly(img, [pts], float(base + v))
        else:
            y = int(rng.uniform(0, h))
            cv2.rectangle(img, (0, y), (w, y + int(rng.uniform(2, h * .25))), float(base + v), -1)
    if rng.random() < 0.7:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(1, 6))
    return img


def ink_for(rng, bgval):
    if bgval > 0.5:
        return rng.uniform(0.0, 0.4) if rng.random() < 0.9 else rng.uniform(0.2, max(0.25, bgval - 0.22))
    return rng.uniform(max(bgval + 0.3, 0.6), 1.0)


def draw_serial(rng, img, txt, x0, y0, w, h, ink, fpath, bgval=None):
    """Draw serial text filling the box (w, h), with separator styles. Given the plate's background
    level, a separator is sometimes a full-height emblem between the groups (Oregon's tree)."""
    sep_style = rng.random()
    big_emblem = bgval is not None and sep_style < 0.45 and rng.random() < 0.35
    parts = txt.replace("-", " ").split(" ")
    joined = "".join(parts)
    stroke = int(rng.integers(0, 2)) if rng.random() < 0.3 else 0
    track = rng.uniform(0.03, 0.2)
    bar_one = BAR_ONES > 0 and rng.random() < BAR_ONES  # no draw when 0: v6 and before stay reproducible
    mono = MONO_SERIALS > 0 and rng.random() < MONO_SERIALS
    masks = [word_mask(p, fpath, stroke, track, bar_one, mono) for p in parts if p]
    gap_w = [0.0] * len(parts)
    gw = h * (rng.uniform(0.5, 0.9) if big_emblem else rng.uniform(0.15, 0.6))
    nat_w = sum(m.shape[1] * h / m.shape[0] for m in masks) + gw * (len(parts) - 1)
    # Horizontal squeeze/stretch; in EDGE_SERIALS of serials stretched or squeezed to fill the whole box.
    sx = min(1.35, max(0.6, w / nat_w)) if rng.random() < EDGE_SERIALS else rng.uniform(0.75, 1.15)
    sx = min(w / nat_w, sx)
    total = nat_w * sx
    x = x0 + (w - total) / 2
    for i, m in enumerate(masks):
        mw = m.shape[1] * h / m.shape[0] * sx
        paste(img, m, x, y0, mw, h, ink)
        x += mw
        if i < len(masks) - 1:
            g = gw * sx
            cx, cy = x + g / 2, y0 + h / 2
            if "-" in txt and sep_style < 0.6:
                cv2.rectangle(img, (int(cx - g * .3), int(cy - h * .05)), (int(cx + g * .3), int(cy + h * .05)),
                              float(ink), -1)
            elif sep_style < 0.25:
                cv2.circle(img, (int(cx), int(cy)), max(1, int(h * 0.06)), float(ink), -1)
            elif big_emblem:
                emblem(rng, img, x + g * 0.05, y0 - h * 0.1, g * 0.9, h * 1.2, bgval)
            elif sep_style < 0.45:  # emblem between groups
                cv2.circle(img, (int(cx), int(cy)), max(2, int(min(g, h) * 0.35)),
                           float(rng.uniform(0.2, 0.9)), -1)
            x += g
    _ = joined, gap_w


def small_text(rng, img, txt, cx, cy, h, ink, maxw):
    fp = TITLE_FONTS[rng.integers(len(TITLE_FONTS))]
    m = text_mask(txt, fp)
    mw = m.shape[1] * h / max(1, m.shape[0])
    if mw > maxw:
        mw = maxw
    paste(img, m, cx - mw / 2, cy - h / 2, mw, h, ink)


MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
SIDE_WORDS = ["ES", "19", "TRK", "PL", "MC", "DV", "CB", "AZ", "NC", "WB", "3", "6", "12", "08", "A", "TN"]


def sticker_text(rng):
    r = rng.random()
    if r < 0.3:
        return str(rng.integers(0, 13)).zfill(int(rng.integers(1, 3)))
    if r < 0.55:
        return MONTHS[rng.integers(12)]
    if r < 0.75:
        return str(rng.integers(1990, 2030)) if rng.random() < 0.5 else str(rng.integers(0, 100)).zfill(2)
    if r < 0.9:
        return rand_serial(rng, ["DDDDDDD", "LDDDDD", "DD"][rng.integers(3)])
    return ["USA", "WB", "TRK", "COUNTY", "EXP"][rng.integers(5)]


def _symbol_chars():
    """Pictographs (dingbats, symbols, geometric shapes) the symbol fonts can draw: stand-ins for the
    emblems real plates carry beside or inside the serial (an archer, a tree, a loon, a ribbon). Codepoints
    that look like characters (circled digits, check marks, crosses) are left out."""
    skip = (set(range(0x2776, 0x2794)) | set(range(0x2713, 0x2719)) | set(range(0x2758, 0x2776))  # digits,
            | set(range(0x25CB, 0x25D0)) | {0x25EF, 0x26AA, 0x26AB, 0x25AE, 0x25AF, 0x25AC, 0x25AD})  # quotes, O, I
    fonts = [DEB + "dejavu/DejaVuSans.ttf", DEB + "freefont/FreeSerif.ttf"]
    out = []
    for fp in fonts:
        if not os.path.exists(fp):
            continue
        f = font(fp, 40)
        notdef = np.asarray(_draw_char(f, "\U000F0000"))
        for c in list(range(0x25A0, 0x2600)) + list(range(0x2600, 0x27C0)):
            if c in skip:
                continue
            a = np.asarray(_draw_char(f, chr(c)))
            if a.sum() > 0 and not np.array_equal(a, notdef):
                out.append((chr(c), fp))
    return out


def _draw_char(f, ch):
    im = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(im).text((6, 6), ch, fill=255, font=f)
    return im


_SYMBOLS = None


def emblem(rng, img, x, y, w, h, bgval):
    """A pictograph filling about (w, h) at (x, y): a symbol glyph, or a filled silhouette of random
    polygons and ellipses. Drawn dark on light plates or light on dark ones, sometimes mid-grey."""
    global _SYMBOLS
    if _SYMBOLS is None:
        _SYMBOLS = _symbol_chars()
    val = float(ink_for(rng, bgval) if rng.random() < 0.6 else rng.uniform(0.1, 0.9))
    if _SYMBOLS and rng.random() < 0.65:
        ch, fp = _SYMBOLS[rng.integers(len(_SYMBOLS))]
        m = text_mask(ch, fp)
        ar = m.shape[1] / max(1, m.shape[0])
        mh = h
        mw = min(w, mh * ar)
        mh = mw / max(ar, 1e-3)
        paste(img, m, x + (w - mw) / 2, y + (h - mh) / 2, mw, mh, val)
        return
    H, W = img.shape
    for _ in range(rng.integers(1, 4)):
        if rng.random() < 0.5:
            n = int(rng.integers(3, 8))
            pts = np.stack([x + rng.uniform(0, w, n), y + rng.uniform(0, h, n)], 1).astype(np.int32)
            cv2.fillPoly(img, [cv2.convexHull(pts)], val)
        else:
            c = (int(x + rng.uniform(0.2, 0.8) * w), int(y + rng.uniform(0.2, 0.8) * h))
            ax = (max(1, int(rng.uniform(0.15, 0.5) * w)), max(1, int(rng.uniform(0.15, 0.5) * h)))
            cv2.ellipse(img, c, ax, float(rng.uniform(0, 180)), 0, 360, val, -1)


def side_stack(rng, img, x, y, w, h, ink, bgval, fpath):
    """Two or three letters stacked vertically beside the serial, together about as tall as it (the
    `B/R` of a Massachusetts Bruins plate, `T/R/K`, a county code). Not part of the plate number."""
    word = SIDE_WORDS[rng.integers(len(SIDE_WORDS))] if rng.random() < 0.5 else \
        "".join(CAPS[10 + rng.integers(26)] if rng.random() < 0.85 else CAPS[rng.integers(10)]
                for _ in range(rng.integers(2, 4)))
    word = word[:3] if len(word) > 1 else word + CAPS[10 + rng.integers(26)]
    n = len(word)
    ch_h = h / (n + 0.15 * (n - 1)) * rng.uniform(0.9, 1.05)
    tv = ink if rng.random() < 0.7 else ink_for(rng, bgval)
    fp = fpath if rng.random() < 0.6 else TITLE_FONTS[rng.integers(len(TITLE_FONTS))]
    yy = y + (h - (n * ch_h + (n - 1) * 0.15 * ch_h)) / 2
    for c in word:
        g = glyph(c, fp)
        gw = min(w, g.shape[1] * ch_h / max(1, g.shape[0]))
        paste(img, g, x + (w - gw) / 2, yy, gw, ch_h, tv)
        yy += ch_h * 1.15


def distractors(rng, img, bgval, ink, two):
    """Small non-serial characters a real plate carries at its edges: registration stickers with month/year
    digits, small vertical side letters, county/dealer text. They are never part of the label, and are kept
    clearly smaller than the serial so the model can learn to ignore them."""
    ph, pw = img.shape
    for _ in range(rng.integers(0, 4)):  # stickers in the corners, usually with text
        sw, sh = pw * rng.uniform(0.06, 0.16), ph * rng.uniform(0.1, 0.24)
        sx = rng.choice([rng.uniform(0.0, 0.1), rng.uniform(0.76, 0.94)]) * pw
        sy = rng.uniform(0.0, 0.18) * ph if rng.random() < 0.7 else rng.uniform(0.72, 0.88) * ph
        sv = float(rng.uniform(0.1, 0.95))
        cv2.rectangle(img, (int(sx), int(sy)), (int(sx + sw), int(sy + sh)), sv, -1)
        if rng.random() < 0.75:
            tv = float(0.05 if sv > 0.5 else 0.95) if rng.random() < 0.8 else float(rng.uniform(0, 1))
            small_text(rng, img, sticker_text(rng), sx + sw / 2, sy + sh / 2, sh * rng.uniform(0.5, 0.85), tv,
                       sw * 0.95)
    if rng.random() < 0.2 and not two:  # small vertical side text (stacked letters), left or right
        word = SIDE_WORDS[rng.integers(len(SIDE_WORDS))] if rng.random() < 0.6 else \
            "".join(CAPS[rng.integers(36)] for _ in range(rng.integers(1, 4)))
        ch_h = ph * rng.uniform(0.08, 0.15)
        x = pw * (rng.uniform(0.01, 0.06) if rng.random() < 0.5 else rng.uniform(0.91, 0.97))
        y = ph * 0.5 - len(word) * ch_h * 0.6 + ph * rng.uniform(-0.05, 0.05)
        tv = ink if rng.random() < 0.6 else ink_for(rng, bgval)
        for c in word:
            small_text(rng, img, c, x, y + ch_h / 2, ch_h, tv, ch_h)
            y += ch_h * 1.2
    if rng.random() < 0.15:  # small text in a top or bottom corner ("49 - Marion", "TRK", plate id)
        t = ["%d - %s" % (rng.integers(1, 99), ["Marion", "Lake", "Cook", "Kent", "Wayne"][rng.integers(5)]),
             sticker_text(rng), rand_serial(rng, "DDDDDD")][rng.integers(3)]
        h = ph * rng.uniform(0.07, 0.12)
        small_text(rng, img, t, pw * rng.choice([0.15, 0.85]), ph * rng.choice([0.08, 0.92]), h,
                   ink_for(rng, bgval), pw * 0.3)


# serial_formats.txt's INTL country codes -> the region head's class names (common.REGIONS)
INTL_REGION = {"IN": "India", "BR": "Brazil", "AR": "Argentina", "D": "Germany", "F": "France", "I": "Italy",
               "E": "Spain", "NL": "Netherlands", "PL": "Poland", "P": "Portugal", "BG": "Bulgaria",
               "CZ": "Czech Republic", "A": "Austria", "H": "Hungary", "GB": "United Kingdom"}


def render_plate(rng, kind):
    """Return (plate float32 gray image, text lines list, state code or None, region name or None)."""
    state = None
    if kind == "ro":
        ph = 60
        pw = int(ph * rng.uniform(4.0, 4.8))
        img = background(rng, ph, pw) * 0 + rng.uniform(0.8, 1.0)
        band = int(pw * 0.085)
        img[:, :band] = rng.uniform(0.15, 0.4)
        small_text(rng, img, "RO", band / 2, ph * 0.78, ph * 0.22, 0.95, band * 0.9)
        cty = "B" if rng.random() < 0.35 else RO_COUNTY[rng.integers(len(RO_COUNTY))]
        num = rand_serial(rng, "DDD" if (cty == "B" and rng.random() < 0.5) else "DD")
        txt = "%s %s %s" % (cty, num, rand_serial(rng, "LLL"))
        fp = serial_font(rng)
        th = ph * rng.uniform(0.6, 0.78)
        draw_serial(rng, img, txt, band + pw * 0.03, (ph - th) / 2, pw - band - pw * 0.06, th,
                    rng.uniform(0, 0.2), fp)
        cv2.rectangle(img, (1, 1), (pw - 2, ph - 2), float(rng.uniform(0, 0.3)), 1 + int(rng.integers(2)))
        return img, [txt], None, "Romania"
    if kind == "intl":
        return render_intl(rng)
    two = kind == "two"
    ph = 100
    pw = int(ph * (rng.uniform(1.15, 1.6) if two else rng.uniform(1.8, 2.15)))
    img = background(rng, ph, pw)
    bgval = float(np.median(img))
    us = rng.random() < 0.8
    if us and rng.random() < 0.85:
        state = STATES[rng.integers(len(STATES))]
    ink = ink_for(rng, bgval)
    fp = serial_font(rng)
    top_h = ph * rng.uniform(0.12, 0.26)
    if state is not None:
        name = STATE_NAMES[state]
        r = rng.random()
        name = name.upper() if r < 0.55 else name
        if rng.random() < 0.1:
            name += ".gov"
        tink = ink_for(rng, bgval) if rng.random() < 0.6 else ink
        small_text(rng, img, name, pw / 2 + rng.uniform(-0.05, 0.05) * pw, ph * rng.uniform(0.1, 0.16),
                   top_h, tink, pw * rng.uniform(0.5, 0.92))
    elif rng.random() < 0.3:
        small_text(rng, img, ["TRUCK", "DEALER", "COUNTY", "MOTORCYCLE", "TRAILER", "USA", "APPORTIONED",
                              "EXEMPT", "VETERAN", "TAXI"][rng.integers(10)], pw / 2, ph * 0.12, top_h, ink, pw * 0.6)
    if rng.random() < 0.7:
        sl = SLOGANS[rng.integers(len(SLOGANS))]
        if rng.random() < 0.5:
            sl = sl.upper()
        small_text(rng, img, sl, pw / 2, ph * rng.uniform(0.86, 0.92), ph * rng.uniform(0.08, 0.13),
                   ink_for(rng, bgval), pw * rng.uniform(0.4, 0.85))
    if two:
        l1, l2 = TWO_LINE[rng.integers(len(TWO_LINE))]
        lines = [rand_serial(rng, l1), rand_serial(rng, l2)]
        lh = ph * rng.uniform(0.28, 0.34)
        ys = [ph * 0.2, ph * 0.2 + lh + ph * rng.uniform(0.03, 0.08)]
        for ln, y in zip(lines, ys):
            draw_serial(rng, img, ln, pw * 0.08, y, pw * 0.84, lh, ink, fp)
    else:
        if state is not None and rng.random() < 0.65:
            fmts = STATE_FORMATS.get(state, GENERIC)
        else:
            fmts = GENERIC
        txt = vanity(rng) if rng.random() < 0.1 else rand_serial(rng, fmts[rng.integers(len(fmts))])
        th = ph * rng.uniform(0.4, 0.6)
        y0 = ph * 0.5 - th / 2 + ph * rng.uniform(-0.04, 0.06)
        # Many real serials run almost from edge to edge (Utah, California, Virginia): EDGE_SERIALS
        # of the plates get a 1-4% side margin, so characters touching the crop edge stay in the label.
        margin = pw * (rng.uniform(0.01, 0.04) if rng.random() < EDGE_SERIALS else rng.uniform(0.04, 0.12))
        x0, x1 = margin, pw - margin
        # Beside the serial, at full serial height: an emblem (25%) and/or stacked side letters (20%).
        # Both sit where real plates put them and are never part of the label.
        if us and rng.random() < 0.25:
            ew = pw * rng.uniform(0.14, 0.3)
            eh = min(ph * 0.95, th * rng.uniform(1.0, 1.8))
            ey = max(0.0, y0 + th / 2 - eh / 2)
            if rng.random() < 0.75:
                emblem(rng, img, x0, ey, ew, eh, bgval)
                x0 += ew + pw * rng.uniform(0.0, 0.03)
            else:
                emblem(rng, img, x1 - ew, ey, ew, eh, bgval)
                x1 -= ew + pw * rng.uniform(0.0, 0.03)
        if us and rng.random() < 0.2:
            sw = th * rng.uniform(0.3, 0.45)
            if rng.random() < 0.7:
                side_stack(rng, img, x0, y0, sw, th, ink, bgval, fp)
                x0 += sw + th * rng.uniform(0.05, 0.25)
            else:
                side_stack(rng, img, x1 - sw, y0, sw, th, ink, bgval, fp)
                x1 -= sw + th * rng.uniform(0.05, 0.25)
        draw_serial(rng, img, txt, x0, y0, x1 - x0, th, ink, fp, bgval)
        lines = [txt]
    distractors(rng, img, bgval, ink, two)
    # bolt holes, border
    if rng.random() < 0.6:
        for hx in (0.25, 0.75):
            cv2.circle(img, (int(pw * hx), int(ph * rng.uniform(0.06, 0.1))), 3, float(rng.uniform(0, 0.4)), -1)
    if rng.random() < 0.6:
        cv2.rectangle(img, (1, 1), (pw - 2, ph - 2), float(rng.uniform(0, 0.5)), int(rng.integers(1, 4)))
    return img, lines, state, ("United States" if state is not None else None)


def render_intl(rng):
    """A plate of another country (serial_formats.txt's INTL lines): India, Mercosul, Brazil's grey plates,
    EU plates with the blue band, UK. Returns (plate, lines, None, region); two lines when the format has a "/"."""
    style = INTL_STYLES[rng.integers(len(INTL_STYLES))]
    fmts = [(c, f) for st, c, f in INTL if st == style]
    country, fmt = fmts[rng.integers(len(fmts))]
    lines = [rand_serial(rng, part) for part in fmt.split("/")]
    two = len(lines) == 2
    ph = 100 if two else 60
    fp = serial_font(rng)
    if style == "mercosul" or style == "br-grey":
        pw = int(ph * rng.uniform(2.9, 3.3))
    elif two:  # Indian two-line plates (reader v13 tried 1.6-2.8:1: worse on roboflow-test)
        pw = int(ph * rng.uniform(1.6, 2.0))
    else:
        pw = int(ph * rng.uniform(3.9, 4.8))
    if style == "br-grey":
        bg = rng.uniform(0.5, 0.75)
    elif style in ("eu", "uk", "in") and rng.random() < 0.3:
        bg = rng.uniform(0.7, 0.88)  # yellow plates (NL, UK rear, Indian commercial) in luma
    else:
        bg = rng.uniform(0.8, 1.0)
    img = background(rng, ph, pw) * 0 + bg
    if rng.random() < 0.4:  # a gradient or reflection across the plate
        img += np.linspace(0, rng.uniform(-0.15, 0.15), pw, dtype=np.float32)[None, :]
    ink = rng.uniform(0, 0.2)
    x0, x1, y0, y1 = pw * 0.03, pw * 0.97, ph * 0.1, ph * 0.9
    if style == "mercosul":  # blue band on top with the country name, a flag and the emblem
        band = int(ph * rng.uniform(0.18, 0.26))
        img[:band] = rng.uniform(0.15, 0.4)
        small_text(rng, img, {"BR": "BRASIL", "AR": "ARGENTINA"}.get(country, "MERCOSUL"), pw / 2, band / 2,
                   band * 0.7, 0.95, pw * 0.4)
        y0 = band + ph * 0.06
    elif style == "br-grey":  # city and state at the top
        small_text(rng, img, ["SAO PAULO - SP", "RIO DE JANEIRO - RJ", "CURITIBA - PR", "BELO HORIZONTE - MG",
                              "PORTO ALEGRE - RS"][rng.integers(5)], pw / 2, ph * 0.14, ph * 0.16, ink, pw * 0.6)
        y0 = ph * 0.27
    elif style == "eu" or (style == "uk" and rng.random() < 0.5):
        band = int(pw * rng.uniform(0.07, 0.1))
        img[:, :band] = rng.uniform(0.15, 0.4)
        small_text(rng, img, "UK" if style == "uk" else country, band / 2, ph * 0.75, ph * 0.2, 0.95, band * 0.9)
        x0 = band + pw * 0.02
        if country in ("F", "I") and rng.random() < 0.7:  # the right-hand band with the region
            img[:, pw - band:] = rng.uniform(0.15, 0.4)
            x1 = pw - band - pw * 0.02
    elif style == "in" and rng.random() < 0.4:  # "IND" and a hologram at the left
        small_text(rng, img, "IND", pw * 0.05, ph * 0.7, ph * 0.15, ink, pw * 0.08)
        cv2.circle(img, (int(pw * 0.05), int(ph * 0.3)), max(2, int(ph * 0.1)), float(rng.uniform(0.4, 0.8)), -1)
        x0 = pw * 0.1
    if two:
        lh = (y1 - y0) * rng.uniform(0.4, 0.46)
        gap = (y1 - y0) - 2 * lh
        for i, ln in enumerate(lines):
            draw_serial(rng, img, ln, x0 + pw * 0.05, y0 + i * (lh + gap), x1 - x0 - pw * 0.1, lh, ink, fp)
    else:
        th = (y1 - y0) * rng.uniform(0.75, 0.95)
        draw_serial(rng, img, lines[0], x0, y0 + (y1 - y0 - th) / 2, x1 - x0, th, ink, fp)
    if style == "in" and rng.random() < 0.3:  # Indian plates often add a frame and a dealer's sticker
        small_text(rng, img, sticker_text(rng), pw / 2, ph * 0.95, ph * 0.08, ink, pw * 0.3)
    cv2.rectangle(img, (1, 1), (pw - 2, ph - 2), float(rng.uniform(0, 0.3)), 1 + int(rng.integers(3)))
    return img, lines, None, INTL_REGION[country]


def degrade(rng, img):
    """Photometric degradations on a float [0,1] image."""
    if rng.random() < 0.3:  # glare
        h, w = img.shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.2, 0.8) * w
        img = img + rng.uniform(0.2, 0.7) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    if rng.random() < 0.25:  # shadow
        h, w = img.shape
        m = np.zeros((h, w), np.float32)
        pts = np.array([[rng.uniform(0, w), 0], [rng.uniform(0, w), h], [w * 2, h], [w * 2, 0]], np.int32)
        cv2.fillPoly(m, [pts], 1.0)
        img = img * (1 - m * rng.uniform(0.2, 0.6))
    if rng.random() < 0.25:  # dirt
        h, w = img.shape
        for _ in range(rng.integers(1, 6)):
            m = np.zeros((h, w), np.float32)
            cv2.circle(m, (int(rng.uniform(0, w)), int(rng.uniform(0, h))), int(rng.uniform(1, h * 0.15)), 1.0, -1)
            m = cv2.GaussianBlur(m, (0, 0), 2)
            img = img * (1 - m * rng.uniform(0.2, 0.6))
    # contrast / brightness / gamma; night
    r = rng.random()
    if r < 0.08:
        img = img * rng.uniform(0.2, 0.45) + rng.uniform(0, 0.1)
    elif r < 0.4:  # mild: a clean, well-exposed plate (a large share of real crops look like this)
        img = (img - 0.5) * rng.uniform(0.85, 1.25) + 0.5 + rng.uniform(-0.08, 0.08)
    else:
        c = rng.uniform(0.5, 1.2)
        img = (img - 0.5) * c + 0.5 + rng.uniform(-0.2, 0.2)
    img = np.clip(img, 0, 1)
    img = img ** (rng.uniform(0.6, 1.6) if r >= 0.4 or r < 0.08 else rng.uniform(0.85, 1.2))
    if rng.random() < 0.03:
        img = 1.0 - img  # rare inverted polarity (robustness)
    return img


def finish(rng, out):
    """Blur/noise/JPEG on the final uint8-range 48x160 image."""
    if rng.random() < 0.4:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < 0.15:
        k = int(rng.integers(3, 6))
        ker = np.zeros((k, k), np.float32)
        ker[k // 2, :] = 1.0 / k
        out = cv2.filter2D(out, -1, ker)
    if rng.random() < 0.5:
        out = out + rng.normal(0, rng.uniform(0.005, 0.035), out.shape).astype(np.float32)
    out = np.clip(out * 255, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        _, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 90))])
        out = cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE)
    return out


def crop_from_scene(rng, scene, quad, stacked, border_mode):
    """Simulate the Rust crop: jitter the quad, random margins -3%..+15% (x) / -3%..+20% (y)."""
    q = quad.astype(np.float32).copy()
    w = np.linalg.norm(q[1] - q[0])
    h = np.linalg.norm(q[3] - q[0])
    q += rng.normal(0, 1, q.shape).astype(np.float32) * np.float32([w, h]) * rng.uniform(0, 0.02)
    ex = rng.uniform(-0.03, 0.15)
    ey = rng.uniform(-0.03, 0.2)
    from common import expand_quad
    qq = expand_quad(q, ex, ey)
    oh = 2 * IN_H if stacked else IN_H
    dst = np.float32([[0, 0], [IN_W, 0], [IN_W, oh], [0, oh]])
    m = cv2.getPerspectiveTransform(qq, dst)
    bv = float(rng.uniform(0, 1))
    out = cv2.warpPerspective(scene, m, (IN_W, oh), flags=cv2.INTER_LINEAR, borderMode=border_mode,
                              borderValue=bv)
    if stacked:
        out = stack_halves(out)
    return out


def make_sample(rng, kind=None):
    """-> (uint8 [48,160], text (normalised), state class, layout 'line'|'stacked', region name or None)."""
    if kind is None:
        r = rng.random()
        kind = "two" if r < 0.11 else ("ro" if r < 0.18 else ("intl" if r < 0.4 else "us"))
    plate, lines, state, region = render_plate(rng, kind)
    stacked = len(lines) == 2
    ph, pw = plate.shape
    # low resolution: plate rendered small then upsampled by the crop warp
    target_h = rng.uniform(14, 40) if rng.random() < 0.3 else rng.uniform(40, 100)
    if kind in ("ro", "intl") and not stacked:
        target_h *= 0.6
    s = min(1.0, target_h / ph)
    # scene: plate + surrounding car context, plate warped by a random homography
    mh, mw = int(ph * s * 0.6) + 4, int(pw * s * 0.4) + 4
    sh_, sw_ = int(ph * s) + 2 * mh, int(pw * s) + 2 * mw
    alone = rng.random() < 0.3
    scene = background(rng, sh_, sw_) * rng.uniform(0.3, 1.0)
    if rng.random() < 0.3:
        scene = scene + rng.normal(0, 0.05, scene.shape).astype(np.float32)
    src = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
    dst = np.float32([[mw, mh], [mw + pw * s, mh], [mw + pw * s, mh + ph * s], [mw, mh + ph * s]])
    jit = rng.uniform(0, 0.12) * np.float32([pw * s, ph * s])
    dst = dst + rng.uniform(-1, 1, (4, 2)).astype(np.float32) * jit
    if rng.random() < 0.5:  # in-plane rotation
        a = np.deg2rad(rng.uniform(-8, 8))
        c = dst.mean(0)
        R = np.float32([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        dst = (dst - c) @ R.T + c
    H = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(plate, H, (sw_, sh_), flags=cv2.INTER_AREA if s < 0.7 else cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=-1)
    mask = warped >= 0
    scene = np.where(mask, warped, scene).astype(np.float32)
    scene = degrade(rng, scene)
    border = cv2.BORDER_REPLICATE
    if alone:  # whole-crop-image input: nothing outside the plate but the border fill
        x0, y0 = np.floor(dst.min(0)).astype(int)
        x1, y1 = np.ceil(dst.max(0)).astype(int)
        x0, y0 = max(0, x0), max(0, y0)
        scene = scene[y0:y1, x0:x1]
        dst = dst - np.float32([x0, y0])
        border = cv2.BORDER_REPLICATE if rng.random() < 0.6 else cv2.BORDER_CONSTANT
    out = crop_from_scene(rng, scene, dst, stacked, border)
    out = finish(rng, out.astype(np.float32))
    text = "".join(lines).replace(" ", "").replace("-", "")
    st = STATE_INDEX[state] if state else 0
    return out, text, st, ("stacked" if stacked else "line"), region


if __name__ == "__main__":
    import argparse
    import time
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/synth_preview.png")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--bar-ones", type=float, default=BAR_ONES)
    ap.add_argument("--mono-serials", type=float, default=MONO_SERIALS)
    ap.add_argument("--kind", choices=["us", "two", "ro", "intl"], default=None, help="only this plate kind")
    a = ap.parse_args()
    BAR_ONES, MONO_SERIALS = a.bar_ones, a.mono_serials
    rng = np.random.default_rng(0)
    t = time.time()
    ims = []
    for i in range(a.n):
        im, txt, st, lay, _ = make_sample(rng, a.kind)
        im = cv2.cvtColor(im, cv2.COLOR_GRAY2BGR)
        im = cv2.copyMakeBorder(im, 0, 14, 0, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255))
        cv2.putText(im, "%s %s %s" % (txt, STATES[st - 1] if st else "-", lay[0]), (2, 59), 0, 0.4,
                    (0, 0, 255), 1)
        ims.append(im)
    print("%.1f ms/sample" % ((time.time() - t) * 1000 / a.n), len(SERIAL_FONTS), "serial fonts")
    cols = 6
    rows = [np.hstack(ims[i:i + cols]) for i in range(0, len(ims) - len(ims) % cols, cols)]
    cv2.imwrite(a.out, np.vstack(rows))
