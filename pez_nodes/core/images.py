"""Images in, model-ready pixels out: any PIL mode, file or ComfyUI tensor, of any size.

RGBA / LA / palette images are composited on white, greyscale is repeated to three channels,
16-bit and float images are rescaled to 0..1. Huge images are shrunk with Pillow's reducing
resize before they become tensors, so a 100-megapixel photo costs no more memory than a small one.
Preprocessing follows open_clip's: resize the short side to the model's size (bicubic), centre-crop,
normalise with the model's mean and std.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

ImageLike = Union[Image.Image, torch.Tensor, np.ndarray]


def load_image(path: str | Path) -> Image.Image:
    """Open an image file, or raise one ``ValueError`` that names the file and the fix."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"image {str(path)!r} does not exist; give the path of an image file.")
    try:
        with Image.open(p) as im:
            im.load()
            return im.copy()
    except Image.DecompressionBombError as e:
        raise ValueError(f"image {str(path)!r} is too large for Pillow's safety limit ({e}); downscale it first.") from e
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"image {str(path)!r} could not be read as an image ({e}); give a PNG, JPEG or WebP file.") from e


def to_rgb(image: Image.Image, max_side: int | None = None) -> Image.Image:
    """An RGB copy of ``image`` whatever its mode; shrunk so its short side is about ``max_side`` if given."""
    if max_side and min(image.size) > 2 * max_side:
        image = image.copy()
        factor = min(image.size) / (2 * max_side)
        image = image.reduce(max(1, int(factor)))
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float32)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        if mode == "F" and arr.max() <= 1.0:
            top = 1.0
        image = Image.fromarray((np.clip(arr / top, 0, 1) * 255).astype(np.uint8), "L")
    if mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
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


def iter_images(items: Iterable[ImageLike | str | Path]) -> list[ImageLike]:
    """Open paths, keep images and tensors as they are."""
    return [load_image(x) if isinstance(x, (str, Path)) else x for x in items]
