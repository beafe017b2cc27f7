"""Read a canary marker back from whatever the integration delivered.

The decoder answers one question per image — whose canary is this, provably? —
and returns an `Observation`. It never raises on image content: hostile or broken
input becomes an `UNDECODABLE` observation with a reason.

Three reads, cheapest first:

* reduced: the JPEG header says how big a module is; the frame is decoded at 1/2–1/8
  scale (libjpeg's DCT scaling skips most of the inverse DCT) so that a module is
  still ≥ 5 px, and of a baseline JPEG only the rows that hold the signed message (the
  frame header is rewritten to claim only those: libjpeg stops entropy decoding there).
  The module centres are sampled where an untouched frame has them, and only a message
  whose MAC verifies is accepted (a progressive JPEG, decoded whole: only a clean
  codeword). Nearly every frame ends here. A frame that is not 16:9 cannot be an
  untouched canary: it is decoded whole at that scale, its uniform bars trimmed (a
  letterbox), and the grid inside them read with errors and erasures corrected; again
  only a MAC that verifies concludes. Anything else — a symbol error, a forged MAC, no
  marker — is not concluded at this scale: the frame is decoded again at full
  resolution.
* fast: the same read on the full-resolution frame; concludes `VERIFIED` (errors and
  erasures corrected) or `FORGED`.
* robust: letterboxed, cropped, rotated, blurred, overlaid — at a working resolution,
  trim uniform bars, find the four anchors by template matching, fit an affine grid,
  sample, correct errors *and* erasures, verify. Only this read uses OpenCV (imported
  on first use): a viewer whose JPEG frames verify never loads its ~30 MiB.

A JPEG whose pixels do not verify as stored and whose EXIF tag says a display shows
them turned (``markers.orientation``) is read again turned, as OpenCV read every JPEG:
a canary stored sideways under its tag verifies, and is never `foreign`.

If nothing verifies, the decoder still has to say whether the image was a canary at
all: `DEGRADED` (the anchors are there, the payload is not readable) versus
`NOT_CANARY` (positive evidence of non-canary content: an image with content in which
not even two anchors match). A badly damaged canary must never look foreign.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from canarywatch.markers import ecc
from canarywatch.markers.damage import canary_border, intact_rows, scan_damage
from canarywatch.markers.images import ImageLimits, ImageRejected, Probe, load_gray, probe
from canarywatch.markers.keyring import Keyring
from canarywatch.markers.layout import ANCHORS, COLS, LAYOUT, ROWS
from canarywatch.markers.levels import two_means
from canarywatch.markers.observation import Observation, Status
from canarywatch.markers.orientation import AS_STORED, oriented
from canarywatch.markers.payload import PAYLOAD_BYTES, Payload, split_signed
from canarywatch.markers.reduced import read_scaled, reduced_scale, reduction, scaled_message

__all__ = ["Decoder", "Observation", "Status"]

_CODE_BITS = ecc.CODEWORD_BYTES * 8
# A MAC failure after a decode that used at most this share of the RS budget is a
# forgery, not noise: a miscorrection that lands this close to a codeword has odds
# far below 1e-9 (the MAC check is what makes it an attribution, not this number).
_FORGED_MAX_BUDGET = 0.5
_MIN_CONTRAST = 24.0  # gray levels between the dark and light module clusters
_ANCHOR_ACCEPT = 0.45  # normalised correlation for an anchor to enter the geometry fit
# Evidence that an image is a canary even when its payload is gone. Measured over the
# robustness suite and the scikit-image photographs: canary frames score >= 0.93 on
# their second-best anchor, photographs <= 0.44 (best single anchor <= 0.61).
_ANCHOR_STRONG = 0.6
_ANCHOR_SURE = 0.75
_BLANK_STD = 3.0
# A frame whose aspect ratio is this far from the marker's 16:9 cannot be an untouched
# canary frame: its reduced read looks for the marker inside uniform bars instead.
_ASPECT_SLACK = 0.03


class _Budget:
    """A decode's time budget, checked between stages: past it, `ImageRejected`."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.deadline = None if seconds is None else time.perf_counter() + seconds

    def check(self, stage: str) -> None:
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise ImageRejected(f"decode over its {self.seconds:g} s budget before {stage}")


@dataclass(slots=True)
class _Read:
    """Outcome of reading one grid hypothesis."""

    correction: ecc.Correction | None
    contrast: float


class Decoder:
    """Decodes canary markers; one instance per keyring (it caches sampling grids)."""

    def __init__(
        self,
        keyring: Keyring,
        *,
        limits: ImageLimits | None = None,
        fast_path: bool = True,
        reduced_path: bool = True,
    ) -> None:
        self.keyring = keyring
        self.limits = limits or ImageLimits()
        self.fast_path = fast_path
        # False: always decode at full resolution (the reference the reduced read must agree with)
        self.reduced_path = reduced_path

    # -- entry points ---------------------------------------------------------------
    def decode(self, data: bytes, *, budget_s: float | None = None) -> Observation:
        """Classify encoded image bytes (JPEG, PNG, GIF, BMP, WebP).

        `budget_s`: the longest the decode may run; checked between stages (each one
        bounded by the image limits), past it the frame is `UNDECODABLE`.
        """
        budget = _Budget(budget_s)
        try:
            info = probe(data, self.limits)
            reduce = reduced_scale(info)
            if self.fast_path and self.reduced_path and reduce > 1:
                if abs(info.width * ROWS - info.height * COLS) > info.height * COLS * _ASPECT_SLACK:
                    boxed = self._verify_boxed(data, info, reduce)  # not 16:9: letterboxed, say
                    if boxed is not None:
                        return boxed
                else:
                    samples = read_scaled(data, info, reduce)
                    if samples is not None:
                        obs = self._verify_clean(scaled_message(samples), info) or self._verify_clean(
                            scaled_message(samples, own_levels=True), info
                        )
                        if obs is not None:
                            return obs
            budget.check("the full-resolution decode")
            gray = load_gray(data, info)
            obs = self._classify(
                gray, info, robust_reduce=reduction(info, min_width=COLS * 10), budget=budget
            )
        except ImageRejected as e:
            return Observation(Status.UNDECODABLE, reason=str(e))
        damage = scan_damage(data) if info.format == "jpeg" and obs.status in _RECONSIDERED else None
        obs = _reconsidered(obs, gray, info, damage)
        return obs if obs.status is Status.VERIFIED else self._as_shown(obs, gray, info, budget)

    def _as_shown(self, stored: Observation, gray: np.ndarray, info: Probe, budget: _Budget) -> Observation:
        """`stored`, the verdict of the pixels as stored, unless the JPEG's EXIF tag says a
        display shows them turned (``cv2.imdecode`` read them so) and, read turned, they
        verify, or are not a photograph where `stored` saw one (a canary stored sideways).
        Attribution still needs a MAC that verifies; a tag can take `foreign` away, never
        give it."""
        if info.orientation == AS_STORED:
            return stored
        shown = oriented(gray, info.orientation)
        turned = info.orientation >= 5  # a quarter turn: width and height swap
        shown_info = dataclasses.replace(info, width=info.height, height=info.width) if turned else info
        try:
            obs = self._classify(
                shown, shown_info, robust_reduce=reduction(shown_info, min_width=COLS * 10), budget=budget
            )
        except ImageRejected:  # over the budget: what the stored pixels said stands
            return stored
        obs = _reconsidered(obs, shown, shown_info, None)
        if obs.status is Status.VERIFIED or (
            stored.status is Status.NOT_CANARY and obs.status is not Status.NOT_CANARY
        ):
            return obs
        return stored

    def decode_image(self, image: np.ndarray) -> Observation:
        """Classify an already decoded frame (BGR or grayscale array), e.g. from a video."""
        if image.ndim == 3:
            import cv2

            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if image.size == 0 or image.ndim != 2:
            return Observation(Status.UNDECODABLE, reason="empty or malformed image array")
        gray = np.ascontiguousarray(image, dtype=np.uint8)
        info = Probe("array", gray.shape[1], gray.shape[0])
        return _reconsidered(self._classify(gray, info, robust_reduce=1), gray, info, None)

    def _classify(
        self, gray: np.ndarray, info: Probe, *, robust_reduce: int, budget: _Budget | None = None
    ) -> Observation:
        """Every verdict but a reduced-scale `VERIFIED` comes from here, on the full frame."""
        budget = budget or _Budget(None)
        if self.fast_path:
            budget.check("the fast read")
            obs = self._conclude(_read_grid(gray, None), "fast", info)
            if obs is not None:
                return obs
        budget.check("the robust read")
        if robust_reduce > 1:
            # the working resolution the robust path was tuned at (1/2–1/8 of a large frame)
            import cv2

            h, w = gray.shape
            size = (-(-w // robust_reduce), -(-h // robust_reduce))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        return self._robust(gray, info)

    # -- robust path ----------------------------------------------------------------
    def _robust(self, gray: np.ndarray, info: Probe) -> Observation:
        work = _working_resolution(gray)
        if float(work.std()) < _BLANK_STD:
            return Observation(
                Status.UNDECODABLE,
                reason="blank image (no content)",
                width=info.width,
                height=info.height,
            )
        y0, y1, x0, x1 = _content_box(work)
        content = work[y0:y1, x0:x1]
        if content.shape[0] < ROWS * 2 or content.shape[1] < COLS * 2:
            # mostly uniform (a dark photo, say): judge the whole image instead
            y0, y1, x0, x1 = 0, work.shape[0], 0, work.shape[1]
            content = work
        smooth = _smooth(content)
        best_forged: Observation | None = None
        if (y0, y1, x0, x1) != (0, work.shape[0], 0, work.shape[1]):
            obs = self._conclude(_read_grid(smooth, None), "robust", info)
            if obs is not None and obs.status is Status.VERIFIED:
                return obs
            best_forged = obs
        anchors = _find_anchors(content)
        scores = [*sorted((a[2] for a in anchors), reverse=True), 0.0, 0.0]
        strong = sum(1 for x in scores if x >= _ANCHOR_STRONG)
        for matrix in _geometries(anchors, content.shape):
            obs = self._conclude(_read_grid(smooth, matrix), "robust", info)
            if obs is not None and obs.status is Status.VERIFIED:
                return obs
            best_forged = best_forged or obs
        if best_forged is not None:
            return best_forged
        evidence = f"anchors matched: {strong}/4, best match {scores[0]:.2f}"
        if strong >= 2 or scores[0] >= _ANCHOR_SURE:
            return Observation(
                Status.DEGRADED,
                reason=f"canary structure present but payload unreadable ({evidence})",
                width=info.width,
                height=info.height,
            )
        return Observation(
            Status.NOT_CANARY,
            reason=f"no canary structure ({evidence})",
            width=info.width,
            height=info.height,
        )

    # -- verification ---------------------------------------------------------------
    def _verify_clean(self, message: bytes | None, info: Probe) -> Observation | None:
        """VERIFIED from a clean reduced-scale read, else None (decode at full resolution)."""
        if message is None:
            return None
        fields, signature = split_signed(message)
        tenant = self.keyring.verify(fields, fields[1:4], signature)
        if tenant is None:
            return None
        try:
            payload = Payload.from_bytes(fields)
        except ValueError:
            return None
        return Observation(
            Status.VERIFIED,
            tenant=tenant,
            payload=payload,
            confidence=1.0,
            path="reduced",
            width=info.width,
            height=info.height,
        )

    def _verify_boxed(self, data: bytes, info: Probe, reduce: int) -> Observation | None:
        """VERIFIED from the whole frame at reduced scale with its uniform bars trimmed (a
        16:9 canary letterboxed into 4:3, say), else None (decode at full resolution).
        Errors and erasures are corrected here, but only a MAC that verifies concludes."""
        gray = load_gray(data, info, reduce=reduce)
        y0, y1, x0, x1 = _content_box(gray)
        if x1 - x0 < COLS * 4 or y1 - y0 < ROWS * 4:  # modules under 4 px: not read here
            return None
        matrix = np.array([[(x1 - x0) / COLS, 0.0, x0 - 0.5], [0.0, (y1 - y0) / ROWS, y0 - 0.5]])
        obs = self._conclude(_read_grid(gray, matrix), "reduced", info)
        return obs if obs is not None and obs.status is Status.VERIFIED else None

    def _conclude(self, read: _Read, path: str, info: Probe) -> Observation | None:
        """VERIFIED or FORGED from a successful RS decode, else None (try harder)."""
        corr = read.correction
        if corr is None:
            return None
        fields, signature = split_signed(corr.message)
        try:
            payload = Payload.from_bytes(fields)
        except ValueError:
            payload = None
        tenant = self.keyring.verify(fields, fields[1:4], signature)
        confidence = round(max(0.0, 1.0 - corr.budget_used), 3)
        if tenant is not None and payload is not None:
            return Observation(
                Status.VERIFIED,
                tenant=tenant,
                payload=payload,
                confidence=confidence,
                path=path,
                width=info.width,
                height=info.height,
            )
        if corr.budget_used <= _FORGED_MAX_BUDGET:
            known = "known" if self.keyring.knows_tag(fields[1:4]) else "unknown"
            return Observation(
                Status.FORGED,
                payload=payload,
                confidence=confidence,
                path=path,
                reason=f"marker signature invalid under all {len(self.keyring)} known keys "
                f"(tenant tag {fields[1:4].hex()} is {known})",
                width=info.width,
                height=info.height,
            )
        return None


# -- damaged frames -------------------------------------------------------------------

# What a damaged or partial frame could wrongly conclude: both are leak verdicts.
_RECONSIDERED = frozenset({Status.NOT_CANARY, Status.FORGED})


def _reconsidered(obs: Observation, gray: np.ndarray, info: Probe, damage: str | None) -> Observation:
    """`obs` unless the frame is damaged (`damage`: libjpeg's complaint about its scan) or
    partial: a damaged scan is never `forged` or `foreign`, and a frame showing a
    canary's border in its top rows is never `foreign` (see `markers.damage`)."""
    if obs.status not in _RECONSIDERED or (damage is None and obs.status is Status.FORGED):
        return obs  # a whole frame whose marker decoded cleanly is forged: that is its proof
    rows = intact_rows(gray) if damage is not None else gray.shape[0]
    border = canary_border(gray[:rows])
    scan = f"damaged JPEG scan ({damage})" if damage is not None else "partial frame"
    if border is not None:
        matching, visible = border
        return Observation(
            Status.DEGRADED,
            reason=f"{scan}: canary border in the top {rows} rows ({matching}/{visible} fixed modules match)",
            width=info.width,
            height=info.height,
        )
    if damage is None:
        return obs
    return Observation(
        Status.UNDECODABLE,
        reason=f"{scan}, {rows} intact rows, no canary border in them",
        width=info.width,
        height=info.height,
    )


# -- sampling and reading -------------------------------------------------------------


def _identity(shape: tuple[int, ...]) -> np.ndarray:
    """Module coordinates → pixel coordinates for a frame that fills the image."""
    h, w = shape[:2]
    return np.array([[w / COLS, 0.0, -0.5], [0.0, h / ROWS, -0.5]])


_WHITENING = LAYOUT.whitening[:_CODE_BITS]
_OFFSETS = np.array([[-0.2, -0.2], [0.2, -0.2], [-0.2, 0.2], [0.2, 0.2]])


@lru_cache(maxsize=64)
def _identity_index(h: int, w: int) -> np.ndarray:
    return _sample_points(_identity((h, w)), h, w)[0]


def _sample_points(matrix: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices (4 per data module) and a per-module in-bounds mask."""
    u = LAYOUT.data_cols[:_CODE_BITS, None] + 0.5 + _OFFSETS[None, :, 0]
    v = LAYOUT.data_rows[:_CODE_BITS, None] + 0.5 + _OFFSETS[None, :, 1]
    x = matrix[0, 0] * u + matrix[0, 1] * v + matrix[0, 2]
    y = matrix[1, 0] * u + matrix[1, 1] * v + matrix[1, 2]
    xi, yi = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
    inside = ((xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)).all(axis=1)
    return (np.clip(yi, 0, h - 1) * w + np.clip(xi, 0, w - 1)).ravel(), inside


def _read_grid(img: np.ndarray, matrix: np.ndarray | None) -> _Read:
    """Read the codeword through `matrix` (module → pixel); None means the frame fills the image."""
    h, w = img.shape
    if matrix is None:
        index, inside = _identity_index(h, w), None
    else:
        index, inside = _sample_points(matrix, h, w)
    samples = img.ravel()[index].reshape(-1, 4).mean(axis=1, dtype=np.float32)
    valid = samples if inside is None else samples[inside]
    if valid.size < _CODE_BITS // 2:
        return _Read(None, 0.0)
    lo, hi, thr = two_means(sorted(valid.tolist()))
    contrast = hi - lo
    if contrast < _MIN_CONTRAST:
        return _Read(None, contrast)
    bits = (samples < thr).astype(np.uint8) ^ _WHITENING
    codeword = np.packbits(bits)
    if inside is None and ecc.is_codeword(codeword):
        return _Read(ecc.Correction(bytes(codeword[:PAYLOAD_BYTES]), 0, 0), contrast)
    raw = codeword.tobytes()
    corr = ecc.correct(raw)
    if corr is None:
        margin = np.abs(samples - thr)
        if inside is not None:
            margin[~inside] = 0.0
        byte_margin = margin.reshape(-1, 8).min(axis=1)
        # Errors-and-erasures: bytes whose weakest module sat near the threshold
        # (or fell outside the image) are erased, which doubles what RS can repair.
        order = np.argsort(byte_margin, kind="stable")
        for k in (4, 8, 12, 16):
            erased = sorted(int(i) for i in order[:k])
            corr = ecc.correct(raw, erased)
            if corr is not None:
                break
    return _Read(corr, contrast)


# -- robust-path geometry -------------------------------------------------------------


def _working_resolution(gray: np.ndarray) -> np.ndarray:
    h, w = gray.shape
    if w > 2 * COLS * 10:
        import cv2

        scale = COLS * 10 / w
        return cv2.resize(gray, (COLS * 10, max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return gray


def _smooth(img: np.ndarray) -> np.ndarray:
    import cv2

    k = max(1, round(img.shape[1] / COLS / 3)) | 1
    return cv2.blur(img, (k, k)) if k > 1 else img


def _content_box(img: np.ndarray) -> tuple[int, int, int, int]:
    """Trim uniform letterbox/pillarbox bars (a canary row or column is never uniform)."""
    h, w = img.shape

    def bar(line: np.ndarray, colour: float) -> bool:
        return bool(np.mean(np.abs(line.astype(np.float32) - colour) <= 14) >= 0.8)

    def scan(lines: np.ndarray, limit: int) -> int:
        colour = float(np.median(lines[0]))
        n = 0
        while n < limit and bar(lines[n], colour):
            n += 1
        return n if n >= 2 else 0

    top = scan(img, h * 2 // 5)
    bottom = scan(img[::-1], h * 2 // 5)
    left = scan(img.T, w * 2 // 5)
    right = scan(img.T[::-1], w * 2 // 5)
    return top, h - bottom, left, w - right


@lru_cache(maxsize=128)
def _anchor_template(size: int) -> np.ndarray:
    import cv2

    pattern = np.full((5, 5), 202.0, dtype=np.float32)
    pattern[1:4, 1:4] = 47.0
    pattern[2, 2] = 202.0
    big = np.kron(pattern, np.ones((20, 20), dtype=np.float32))
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def _find_anchors(img: np.ndarray) -> list[tuple[float, float, float, int]]:
    """(x, y, score, anchor index) for the best match of each anchor."""
    import cv2

    h, w = img.shape
    sx, sy = w / COLS, h / ROWS
    module = (sx + sy) / 2
    f = img.astype(np.float32)
    found: list[tuple[float, float, float, int]] = []
    for k, (ac, ar) in enumerate(ANCHORS):
        ex, ey = (ac + 0.5) * sx - 0.5, (ar + 0.5) * sy - 0.5
        best: tuple[float, float, float, int] | None = None
        for scale in (1.0, 1.055, 1.11):
            size = max(5, round(5 * module * scale))
            half_x = 0.07 * w + size / 2 + 2
            half_y = 0.07 * h + size / 2 + 2
            wx0, wx1 = max(0, int(ex - half_x)), min(w, int(ex + half_x) + 1)
            wy0, wy1 = max(0, int(ey - half_y)), min(h, int(ey + half_y) + 1)
            if wx1 - wx0 < size + 2 or wy1 - wy0 < size + 2:
                continue
            res = cv2.matchTemplate(f[wy0:wy1, wx0:wx1], _anchor_template(size), cv2.TM_CCOEFF_NORMED)
            _, score, _, (lx, ly) = cv2.minMaxLoc(res)
            dx = _parabolic(res[ly, lx - 1], score, res[ly, lx + 1]) if 0 < lx < res.shape[1] - 1 else 0.0
            dy = _parabolic(res[ly - 1, lx], score, res[ly + 1, lx]) if 0 < ly < res.shape[0] - 1 else 0.0
            cand = (wx0 + lx + dx + (size - 1) / 2, wy0 + ly + dy + (size - 1) / 2, float(score), k)
            if best is None or cand[2] > best[2]:
                best = cand
        if best is not None:
            found.append(best)
    return found


def _parabolic(left: float, centre: float, right: float) -> float:
    denom = left - 2 * centre + right
    return 0.0 if denom == 0 else float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5))


def _geometries(anchors: list[tuple[float, float, float, int]], shape: tuple[int, ...]) -> list[np.ndarray]:
    """Affine grid hypotheses from the accepted anchors, best first."""
    good = [a for a in anchors if a[2] >= _ANCHOR_ACCEPT]
    h, w = shape[:2]
    nominal = np.array([w / COLS, h / ROWS])
    out: list[np.ndarray] = []
    subsets: list[list[tuple[float, float, float, int]]] = [good] if len(good) >= 2 else []
    if len(good) == 4:
        # Only when one anchor disagrees with the others (an overlay or a data blob
        # matched instead) is it worth refitting without each in turn.
        full = _fit(good, nominal)
        if full is not None and _max_residual(full, good) > 0.25 * float(nominal.mean()):
            subsets.extend([[a for a in good if a is not drop] for drop in good])
    for subset in subsets:
        matrix = _fit(subset, nominal)
        if matrix is not None and _plausible(matrix, nominal):
            out.append(matrix)
    return out


def _max_residual(matrix: np.ndarray, anchors: list[tuple[float, float, float, int]]) -> float:
    src = np.array([[ANCHORS[a[3]][0] + 0.5, ANCHORS[a[3]][1] + 0.5, 1.0] for a in anchors])
    dst = np.array([[a[0], a[1]] for a in anchors])
    return float(np.abs(src @ matrix.T - dst).max())


def _fit(anchors: list[tuple[float, float, float, int]], nominal: np.ndarray) -> np.ndarray | None:
    src = np.array([[ANCHORS[a[3]][0] + 0.5, ANCHORS[a[3]][1] + 0.5] for a in anchors])
    dst = np.array([[a[0], a[1]] for a in anchors])
    if len(anchors) >= 3:
        design = np.hstack([src, np.ones((len(src), 1))])
        sol, *_ = np.linalg.lstsq(design, dst, rcond=None)
        return np.asarray(sol.T)
    # Two anchors: similarity transform with the image's module aspect ratio.
    aspect = nominal[1] / nominal[0]
    s = src * np.array([1.0, aspect])
    (ax, ay), (bx, by) = s
    (px, py), (qx, qy) = dst
    ds, dd = complex(bx - ax, by - ay), complex(qx - px, qy - py)
    if abs(ds) < 1e-9:
        return None
    z = dd / ds
    rot = np.array([[z.real, -z.imag], [z.imag, z.real]]) @ np.diag([1.0, aspect])
    offset = np.array([px, py]) - rot @ src[0]
    return np.hstack([rot, offset[:, None]])


def _plausible(matrix: np.ndarray, nominal: np.ndarray) -> bool:
    sx = float(np.hypot(matrix[0, 0], matrix[1, 0])) / nominal[0]
    sy = float(np.hypot(matrix[0, 1], matrix[1, 1])) / nominal[1]
    angle = abs(float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0]))))
    return 0.8 <= sx <= 1.35 and 0.8 <= sy <= 1.35 and angle <= 6.0
