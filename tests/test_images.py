"""Image loading: every PIL mode, file or memory, small or huge, gives the right pixels at the model's size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, JpegImagePlugin

from pez_nodes.core.clip.images import iter_images, load_image, preprocess

MEAN, STD = (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)
WHITE, BLACK, RED, BLUE = (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
PALETTE = [255, 0, 0, 0, 0, 255] + [0] * 762  # index 0 red, index 1 blue


def _halves(mode: str, w: int, h: int, left, right) -> Image.Image:
    """A ``mode`` image whose left half holds pixel value ``left`` and right half ``right``."""
    image = Image.new(mode, (w, h), left)
    if mode in ("P", "PA"):
        image.putpalette(PALETTE)
    image.paste(right, (w // 2, 0, w, h))
    return image


def _case(mode: str, w: int, h: int):
    """(image, expected RGB of the left half, of the right half, file suffix) for one mode."""
    if mode == "1":
        return _halves("1", w, h, 0, 1), BLACK, WHITE, ".png"
    if mode == "L":
        return _halves("L", w, h, 51, 204), (0.2,) * 3, (0.8,) * 3, ".png"
    if mode == "LA":  # right half transparent: white
        return _halves("LA", w, h, (102, 255), (0, 0)), (0.4,) * 3, WHITE, ".png"
    if mode == "P":
        return _halves("P", w, h, 0, 1), RED, BLUE, ".png"
    if mode == "P+transparency":  # palette index 1 transparent: white
        image = _halves("P", w, h, 0, 1)
        image.info["transparency"] = 1
        return image, RED, WHITE, ".png"
    if mode == "PA":
        return _halves("PA", w, h, (0, 255), (1, 0)), RED, WHITE, ".tiff"
    if mode == "RGB":
        return _halves("RGB", w, h, (255, 0, 0), (0, 0, 255)), RED, BLUE, ".png"
    if mode == "RGBA":  # right half: transparent red, white once composited
        return _halves("RGBA", w, h, (0, 0, 255, 255), (255, 0, 0, 0)), BLUE, WHITE, ".png"
    if mode == "CMYK":  # cyan | black
        return _halves("CMYK", w, h, (255, 0, 0, 0), (0, 0, 0, 255)), (0.0, 1.0, 1.0), BLACK, ".tiff"
    if mode == "I;16":  # 65535 is white, 32768 mid grey
        return Image.fromarray(_split_array(w, h, 65535, 32768, np.uint16)), WHITE, (0.5,) * 3, ".png"
    if mode == "I":
        return Image.fromarray(_split_array(w, h, 65535, 16384, np.int32)), WHITE, (0.25,) * 3, ".tiff"
    if mode == "F":  # floats in 0..1
        return Image.fromarray(_split_array(w, h, 0.75, 0.25, np.float32)), (0.75,) * 3, (0.25,) * 3, ".tiff"
    raise AssertionError(mode)


def _split_array(w, h, left, right, dtype):
    arr = np.full((h, w), left, dtype=dtype)
    arr[:, w // 2:] = right
    return arr


def _rgb01(pixels: torch.Tensor) -> torch.Tensor:
    """Preprocessed pixels [N, 3, S, S] back to 0..1."""
    return pixels * torch.tensor(STD)[:, None, None] + torch.tensor(MEAN)[:, None, None]


def _check_halves(pixels: torch.Tensor, size: int, left, right, atol: float = 0.01) -> None:
    assert pixels.shape == (1, 3, size, size)
    assert torch.isfinite(pixels).all()
    rgb, margin = _rgb01(pixels)[0], max(2, size // 8)  # keep away from the edge between the halves
    got_left = rgb[:, :, : size // 2 - margin].reshape(3, -1)
    got_right = rgb[:, :, size // 2 + margin :].reshape(3, -1)
    for got, want in ((got_left, left), (got_right, right)):
        err = (got - torch.tensor(want)[:, None]).abs().max()
        assert err <= atol, f"got {got.mean(1).tolist()}, want {want}"


MODES = ["1", "L", "LA", "P", "P+transparency", "PA", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]
SIZES = [(224, 600, 500), (32, 600, 500), (32, 40, 30)]  # model input, image width, height


@pytest.mark.parametrize("size,w,h", SIZES)
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_in_memory_and_from_file_gives_the_right_colours(tmp_path, mode, size, w, h):
    image, left, right, suffix = _case(mode, w, h)
    assert image.mode == mode.split("+")[0]
    _check_halves(preprocess([image], size, MEAN, STD), size, left, right)

    path = tmp_path / f"halves{suffix}"
    image.save(path)
    with Image.open(path) as stored:
        assert stored.mode == image.mode
    shrunk = iter_images([path], max_side=size)  # as image_features opens files: small at decode time
    assert shrunk[0].mode == "RGB" and min(shrunk[0].size) < 4 * size
    _check_halves(preprocess(shrunk, size, MEAN, STD), size, left, right)
    _check_halves(preprocess(iter_images([str(path)]), size, MEAN, STD), size, left, right)  # old callers


def _expected(arr: np.ndarray, size: int) -> torch.Tensor:
    """open_clip's preprocessing written out with torch: bicubic antialiased short side, centre crop, normalise."""
    t = torch.tensor(arr).permute(2, 0, 1).float() / 255.0
    h, w = arr.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    t = F.interpolate(t[None], size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)[0]
    top, left = (nh - size) // 2, (nw - size) // 2
    t = t[:, top : top + size, left : left + size].clamp(0, 1)
    return ((t - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None])[None]


@pytest.mark.parametrize("size,w,h", [(224, 300, 260), (224, 224, 224), (32, 50, 40), (32, 64, 100)])
def test_small_rgb_images_give_exactly_the_same_pixels_as_before(tmp_path, size, w, h):
    arr = np.random.default_rng(w * h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    want = _expected(arr, size)
    assert torch.equal(preprocess([Image.fromarray(arr)], size, MEAN, STD), want)
    Image.fromarray(arr).save(tmp_path / "noise.png")
    assert torch.equal(preprocess(iter_images([tmp_path / "noise.png"], max_side=size), size, MEAN, STD), want)
    assert torch.equal(preprocess(iter_images([tmp_path / "noise.png"]), size, MEAN, STD), want)


def test_huge_image_shrinks_by_a_whole_factor_before_resizing(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (1000, 1300, 3), dtype=np.uint8)
    reduced = np.asarray(Image.fromarray(arr).reduce(1000 // 64))  # box average by 15: 87x67
    assert torch.equal(preprocess([Image.fromarray(arr)], 32, MEAN, STD), _expected(reduced, 32))
    Image.fromarray(arr).save(tmp_path / "big.png")
    loaded = load_image(tmp_path / "big.png", max_side=32)
    assert loaded.size == (87, 67) and np.array_equal(np.asarray(loaded), reduced)


@pytest.mark.parametrize("size", [32, 224])
def test_big_jpeg_is_decoded_small(tmp_path, monkeypatch, size):
    w, h = 3000, 2000
    image = _halves("RGB", w, h, (255, 0, 0), (0, 0, 255))
    path = tmp_path / "big.jpg"
    image.save(path, quality=95)
    decoded = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, want):
        result = real_draft(self, mode, want)
        decoded.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    loaded = load_image(path, max_side=size)
    assert len(decoded) == 1 and min(decoded[0]) >= 2 * size and decoded[0][1] <= h // 4  # 1/4 or 1/8 scale
    assert 2 * size <= min(loaded.size) < 4 * size and loaded.mode == "RGB"
    _check_halves(preprocess([loaded], size, MEAN, STD), size, RED, BLUE, atol=0.1)
    assert load_image(path).size == (w, h)  # without max_side: the file as stored


def test_greyscale_and_rgba_tensors(toy):
    grey = torch.full((50, 60, 1), 0.3)
    rgba = torch.cat([torch.tensor([0.2, 0.4, 0.6]).expand(50, 60, 3), torch.zeros(50, 60, 1)], dim=-1)
    size = toy.image_size
    pixels = _rgb01(preprocess([grey, rgba], size, MEAN, STD))
    assert pixels.shape == (2, 3, size, size)
    assert torch.allclose(pixels[0], torch.full_like(pixels[0], 0.3), atol=1e-5)
    assert torch.allclose(pixels[1], torch.tensor([0.2, 0.4, 0.6])[:, None, None].expand_as(pixels[1]), atol=1e-5)
    from pez_nodes.core import image_features

    assert image_features(toy, [grey, rgba]).shape[0] == 2


def test_image_features_of_a_file_equal_those_of_the_image_in_memory(toy, tmp_path):
    from pez_nodes.core import image_features

    image, _, _, _ = _case("RGB", 600, 500)
    image.save(tmp_path / "halves.png")
    assert torch.equal(image_features(toy, [tmp_path / "halves.png"]), image_features(toy, [image]))


def _one_clear_error(match: str, fn, *args):
    with pytest.raises(ValueError, match=match) as info:
        fn(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_empty_images_and_nan_give_one_clear_error(tmp_path):
    _one_clear_error("empty", preprocess, [Image.new("RGB", (0, 0))], 32, MEAN, STD)
    _one_clear_error("empty", preprocess, [Image.new("I;16", (0, 5))], 32, MEAN, STD)
    _one_clear_error("empty", preprocess, [torch.zeros(0, 0, 3)], 32, MEAN, STD)
    _one_clear_error("NaN", preprocess, [torch.full((16, 16, 3), float("nan"))], 32, MEAN, STD)
    nan = np.zeros((600, 500), np.float32)
    nan[7, 7] = np.nan
    _one_clear_error("NaN", preprocess, [Image.fromarray(nan)], 32, MEAN, STD)
    (tmp_path / "empty.png").write_bytes(b"")
    assert "empty.png" in _one_clear_error("could not be read", load_image, tmp_path / "empty.png", 32)


def test_decompression_bomb_is_one_clear_error(tmp_path, monkeypatch):
    Image.new("RGB", (100, 100)).save(tmp_path / "bomb.png")
    Image.new("RGB", (100, 100)).save(tmp_path / "bomb.jpg")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for name in ("bomb.png", "bomb.jpg"):
        for max_side in (None, 32):
            assert name in _one_clear_error("safety limit", load_image, tmp_path / name, max_side)
