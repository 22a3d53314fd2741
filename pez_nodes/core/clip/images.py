"""Images in, model-ready pixels out: any PIL mode, file or ComfyUI tensor, of any size.

RGBA / LA / palette images are composited on white, greyscale is repeated to three channels,
16-bit and float images are rescaled to 0..1. Huge images are shrunk before they become tensors:
a JPEG file is decoded at 1/2, 1/4 or 1/8 scale (``Image.draft``), any other image is first put in a
mode Pillow can shrink (RGB, RGBA, L, LA, I, F) and then box-averaged with ``Image.reduce`` to between
2x and 4x the model's input, so a 100-megapixel photo never exists as a tensor or as a second full copy.
Preprocessing follows open_clip's: resize the short side to the model's size (bicubic), centre-crop,
normalise with the model's mean and std.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

ImageLike = Union[Image.Image, torch.Tensor, np.ndarray]

REDUCIBLE = ("L", "LA", "RGB", "RGBA", "I", "F")  # the modes Image.reduce supports that to_rgb finishes


def load_image(path: str | Path, max_side: int | None = None) -> Image.Image:
    """Open an image file, or raise one ``ValueError`` that names the file and the fix.

    Without ``max_side`` the image comes back as stored (any mode, full size). With it, the image comes
    back as ``to_rgb(image, max_side)``: RGB, short side 2x to 4x ``max_side``. A JPEG is then decoded at
    1/2, 1/4 or 1/8 scale (``Image.draft``, short side still at least ``2 * max_side``); other formats are
    decoded once at full size and shrunk at once, so only the shrunk image is kept. The file is read
    through our own handle: closing it leaves the decoded pixels usable, so no copy is needed.
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"image {str(path)!r} is a directory; give the path of an image file.")
    if not p.is_file():
        raise ValueError(f"image {str(path)!r} does not exist; give the path of an image file.")
    with open(p, "rb") as f:
        return _decode(f, f"image {str(path)!r}", max_side)


def decode_image(data: bytes, label: str, max_side: int | None = None) -> Image.Image:
    """:func:`load_image` for an image file's bytes (an upload, a base64 payload); errors begin with ``label``."""
    return _decode(io.BytesIO(data), label, max_side)


def _decode(f, label: str, max_side: int | None) -> Image.Image:
    try:
        image = Image.open(f)
        if max_side:
            image.draft(None, (2 * max_side, 2 * max_side))  # only JPEG decoders act on it
        image.load()
        return to_rgb(image, max_side) if max_side else image
    except Image.DecompressionBombError as e:
        raise ValueError(f"{label} is too large for Pillow's safety limit ({e}); downscale it first.") from e
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{label} could not be read as an image ({e}); give a PNG, JPEG or WebP file.") from e
    except ValueError as e:  # from to_rgb: name the file too
        raise ValueError(f"{label}: {e}") from e


def _reducible(image: Image.Image) -> Image.Image:
    """``image`` in one of ``REDUCIBLE``'s modes, keeping its alpha and its 16-bit range."""
    mode = image.mode
    if mode in REDUCIBLE:
        return image
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I;16"):
        return image.convert("I")
    if mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    try:
        return image.convert("RGBA" if mode in ("PA", "RGBa") else "RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...
    except ValueError as e:
        raise ValueError(f"image mode {mode!r} cannot be converted to RGB ({e}); save it as an RGB PNG or JPEG.") from e


def _top(image: Image.Image) -> float | None:
    """The value that means white in a 16-bit / 32-bit / float image (None for 8-bit modes)."""
    mode = image.mode
    if mode.startswith("I;16"):
        return 65535.0
    if mode not in ("I", "F"):
        return None
    high = image.getextrema()[1]
    if mode == "F" and high <= 1.0:
        return 1.0
    return 65535.0 if high > 255 else 255.0


def to_rgb(image: Image.Image, max_side: int | None = None) -> Image.Image:
    """An RGB version of ``image`` whatever its mode; shrunk so its short side is 2x to 4x ``max_side`` if given.

    The mode is converted before shrinking (``Image.reduce`` does not take palette, 1-bit or 16-bit images);
    the white level of 16-bit and float images is taken from the full image, before shrinking.
    """
    if min(image.size) < 1:
        raise ValueError(f"image of size {image.width}x{image.height} is empty; give an image with pixels.")
    top = _top(image)
    image = _reducible(image)
    factor = int(min(image.size) / (2 * max_side)) if max_side else 1
    if factor >= 2:  # box-average by a whole factor: the short side stays at least 2 * max_side
        image = image.reduce(factor)
    if top is not None:
        arr = np.asarray(image, dtype=np.float32)
        if np.isnan(arr).any():
            raise ValueError("image contains NaN pixel values; give pixel values in 0..1 (float) or 0..65535 (16-bit).")
        image = Image.fromarray((np.clip(arr / top, 0, 1) * 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")


def to_tensor(image: ImageLike, max_side: int | None = None) -> torch.Tensor:
    """One image as a float tensor [3, H, W] in 0..1.

    Accepts PIL images (any mode), HWC/CHW arrays or tensors with 1, 3 or 4 channels (alpha is dropped,
    as ComfyUI does), uint8 or float in 0..1.
    """
    if isinstance(image, Image.Image):
        arr = np.asarray(to_rgb(image, max_side), dtype=np.uint8)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0
    t = torch.as_tensor(image)
    if t.ndim == 2:
        t = t[..., None]
    if t.ndim != 3:
        raise ValueError(f"image tensor has shape {tuple(t.shape)}; give [H, W, C] or [C, H, W] with C in 1, 3, 4.")
    if t.shape[-1] in (1, 3, 4):  # HWC, as ComfyUI and numpy hold images
        t = t.permute(2, 0, 1)
    elif t.shape[0] not in (1, 3, 4):
        raise ValueError(f"image tensor has shape {tuple(t.shape)}; give 1 (grey), 3 (RGB) or 4 (RGBA) channels.")
    t = t.float() / 255.0 if not torch.is_floating_point(t) else t.float()
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    t = t[:3]
    if not torch.isfinite(t).all():
        raise ValueError("image tensor contains NaN or infinite values; give pixel values in 0..1.")
    return t.clamp(0, 1)


def preprocess(images: Sequence[ImageLike], size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Model-ready pixels [N, 3, size, size]: resize short side (bicubic, antialiased), centre crop, normalise."""
    if len(images) == 0:
        raise ValueError("no images were given; give at least one image to invert.")
    out = []
    for image in images:
        t = to_tensor(image, max_side=size)
        _, h, w = t.shape
        if h < 1 or w < 1:
            raise ValueError(f"image of size {w}x{h} is empty; give an image with pixels.")
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        t = F.interpolate(t[None], size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)[0]
        top, left = (nh - size) // 2, (nw - size) // 2
        out.append(t[:, top : top + size, left : left + size].clamp(0, 1))
    pixels = torch.stack(out)
    m = torch.tensor(mean, dtype=pixels.dtype)[:, None, None]
    s = torch.tensor(std, dtype=pixels.dtype)[:, None, None]
    return (pixels - m) / s


def split_batch(batch: torch.Tensor) -> list[torch.Tensor]:
    """A ComfyUI IMAGE batch ([B, H, W, C], 0..1) as a list of single images; rejects an empty batch."""
    if batch is None or batch.ndim != 4 or batch.shape[0] == 0:
        shape = None if batch is None else tuple(batch.shape)
        raise ValueError(f"image batch has shape {shape}; connect a non-empty IMAGE ([B, H, W, C]).")
    return list(batch.unbind(0))


def iter_images(items: Iterable[ImageLike | str | Path], max_side: int | None = None) -> list[ImageLike]:
    """Open paths (shrunk for a model of input size ``max_side`` if given), keep images and tensors as they are."""
    return [load_image(x, max_side) if isinstance(x, (str, Path)) else x for x in items]
