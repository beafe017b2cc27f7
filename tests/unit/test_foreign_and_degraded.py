"""`foreign` needs positive evidence; a damaged canary is `degraded`, never `foreign`."""

import cv2
import numpy as np
import pytest
import skimage.data

from canarywatch.markers import Decoder, FrameSpec, Keyring, Status, encode_image, render_frame

# Photographs that ship inside scikit-image (no download needed).
PHOTOS = [
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "horse",
    "page",
    "text",
    "coins",
    "brick",
    "grass",
    "gravel",
    "retina",
    "immunohistochemistry",
    "clock",
    "colorwheel",
    "logo",
    "microaneurysms",
    "cell",
    "moon",
    "hubble_deep_field",
]


def _photo(name: str) -> np.ndarray:
    img = getattr(skimage.data, name)()
    if img.dtype != np.uint8:
        img = (img * 255).astype(np.uint8) if img.max() <= 1 else img.astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(img[..., 2::-1] if img.shape[2] >= 3 else img)


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize(("w", "h", "q"), [(1280, 720, 85), (640, 360, 60), (160, 90, 40)])
def test_photographs_are_not_canaries(decoder: Decoder, name: str, w: int, h: int, q: int) -> None:
    img = cv2.resize(_photo(name), (w, h), interpolation=cv2.INTER_AREA)
    obs = decoder.decode(encode_image(img, quality=q))
    assert obs.status is Status.NOT_CANARY, obs.reason
    assert "no canary structure" in obs.reason


def test_photograph_letterboxed_and_grayscale_is_still_foreign(decoder: Decoder) -> None:
    img = cv2.cvtColor(cv2.resize(_photo("chelsea"), (640, 360)), cv2.COLOR_BGR2GRAY)
    canvas = np.zeros((480, 640), np.uint8)
    canvas[60:420] = img
    assert decoder.decode(encode_image(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR))).status is Status.NOT_CANARY


def _canary(keyring: Keyring) -> np.ndarray:
    return render_frame(FrameSpec("acme-7", 1, 2, 1_795_000_000.0, 640, 360), keyring.key("acme-7"))


BEYOND_SPEC = {
    "blur sigma 3 at 160x90": lambda f: cv2.GaussianBlur(
        cv2.resize(f, (160, 90), interpolation=cv2.INTER_AREA), (0, 0), 3.0
    ),
    "rotated 8 degrees": lambda f: cv2.warpAffine(f, cv2.getRotationMatrix2D((320, 180), 8, 1), (640, 360)),
    "half covered": lambda f: np.concatenate([f[:, :320], np.full_like(f[:, 320:], 128)], axis=1),
    "noise sigma 90": lambda f: np.clip(f + np.random.default_rng(0).normal(0, 90, f.shape), 0, 255).astype(
        np.uint8
    ),
    "60x34 thumbnail": lambda f: cv2.resize(
        cv2.resize(f, (60, 34), interpolation=cv2.INTER_AREA), (640, 360)
    ),
}


@pytest.mark.parametrize("name", sorted(BEYOND_SPEC))
def test_badly_damaged_canaries_are_degraded_not_foreign(
    keyring: Keyring, decoder: Decoder, name: str
) -> None:
    damaged = BEYOND_SPEC[name](_canary(keyring))
    obs = decoder.decode(encode_image(damaged, quality=10))
    # whether some of these still decode is a bonus; what matters is they never look foreign
    assert obs.status in (Status.DEGRADED, Status.VERIFIED), obs.reason
    if obs.status is Status.VERIFIED:
        assert obs.tenant == "acme-7"
