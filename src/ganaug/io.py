"""Small shared helpers: atomic writes, explicit seeds, image reading with clear errors, device choice."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np


class InputError(ValueError):
    """Bad input (a file, a column, a config key): the message names it and says what is wrong."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; on success it replaces `path` atomically.

    A crash leaves the previous file (or nothing) in place, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def append_jsonl(path, obj) -> None:
    """Append one JSON line (used for metrics logs; a line is written whole or not at all)."""
    line = json.dumps(obj, sort_keys=True, default=_json_default) + "\n"
    with open(path, "a") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_csv(path, df) -> None:
    """Write a pandas DataFrame as CSV atomically (no index column)."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def save_npy(path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def save_torch(path, obj) -> None:
    """torch.save through a temp file; checkpoints hold plain state dicts and tensors only."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path, map_location="cpu"):
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # a truncated or foreign file: say which one
        raise InputError(f"{path}: cannot load checkpoint: {e}") from e


def seed_from(*names) -> int:
    """A stable 32-bit seed derived from names, so any job is reproducible on its own."""
    h = hashlib.sha256("\x1f".join(str(n) for n in names).encode()).digest()
    return int.from_bytes(h[:4], "little")


def read_image(path, size: int | None = None) -> np.ndarray:
    """Decode an image file to uint8 RGB (H, W, 3), optionally resized to size x size.

    An unreadable or corrupt file raises InputError naming the file.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.LANCZOS)
            return np.asarray(im, dtype=np.uint8).copy()
    except FileNotFoundError as e:
        raise InputError(f"{path}: image file not found") from e
    except Exception as e:
        raise InputError(f"{path}: cannot read image ({type(e).__name__}: {e})") from e


def select_device(preference: str = "auto"):
    """'auto' -> CUDA when present, else CPU; 'cpu' or 'cuda[:k]' as given."""
    import torch

    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise InputError(f"device '{preference}' requested (GANAUG_DEVICE) but CUDA is not available"
                         + (f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else "")
                         + "; use GANAUG_DEVICE=auto or cpu")
    try:
        return torch.device(preference)
    except RuntimeError as e:
        raise InputError(f"device '{preference}' (GANAUG_DEVICE): not a device ('auto', 'cpu', 'cuda' or "
                         f"'cuda:k'): {e}") from None


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
