"""Readers of embedding files: every format, dtype and layout, and bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from alignsphere.measure import (
    FileArray,
    MappedArray,
    MeasureInputError,
    TensorArray,
    open_embeddings,
)

ROWS = np.array([5, 1, 1, 36, 2, 3, 4])


def _check_reads(path, expected: np.ndarray) -> None:
    with open_embeddings(path) as array:
        assert (array.num_rows, array.dim) == expected.shape
        assert_array_equal(array.read(0, len(expected)), expected)
        assert_array_equal(array.read(3, 10), expected[3:10])
        assert_array_equal(array.take(ROWS), expected[ROWS])


@pytest.mark.parametrize(
    ("stored", "returned"),
    [
        (np.float16, np.float32),
        (np.float32, np.float32),
        (np.float64, np.float64),
        (">f4", np.float32),
    ],
)
def test_npy_dtypes(tmp_path, rng, stored, returned):
    x = rng.standard_normal((37, 5)).astype(stored)
    np.save(tmp_path / "emb.npy", x)
    _check_reads(tmp_path / "emb.npy", x.astype(returned))
    with open_embeddings(tmp_path / "emb.npy") as array:
        assert isinstance(array, FileArray)
        assert array.read(0, 2).dtype == returned


def test_npy_fortran_order(tmp_path, rng):
    x = np.asfortranarray(rng.standard_normal((37, 5)).astype(np.float32))
    np.save(tmp_path / "emb.npy", x)
    with open_embeddings(tmp_path / "emb.npy") as array:
        assert isinstance(array, MappedArray)
    _check_reads(tmp_path / "emb.npy", np.ascontiguousarray(x))


@pytest.mark.parametrize(
    "dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64]
)
def test_safetensors_dtypes(tmp_path, dtype):
    from safetensors.torch import save_file

    x = torch.randn(37, 5, generator=torch.Generator().manual_seed(0)).to(dtype)
    save_file({"embeddings": x}, tmp_path / "emb.safetensors")
    wide = torch.float64 if dtype == torch.float64 else torch.float32
    _check_reads(tmp_path / "emb.safetensors", x.to(wide).numpy())


def test_safetensors_named_tensor(tmp_path, rng):
    from safetensors.numpy import save_file

    x = rng.standard_normal((37, 5)).astype(np.float32)
    save_file({"a": x, "b": 2 * x}, str(tmp_path / "two.safetensors"))
    with pytest.raises(MeasureInputError, match=r"contains 2 tensors \(a, b\).*:NAME"):
        open_embeddings(tmp_path / "two.safetensors")
    _check_reads(f"{tmp_path / 'two.safetensors'}:b", 2 * x)
    with pytest.raises(
        MeasureInputError, match="has no tensor named 'c'; it contains a, b"
    ):
        open_embeddings(f"{tmp_path / 'two.safetensors'}:c")


def test_safetensors_integer_tensor(tmp_path):
    from safetensors.torch import save_file

    save_file({"ids": torch.arange(10).reshape(5, 2)}, tmp_path / "ids.safetensors")
    with pytest.raises(MeasureInputError, match="has dtype I64.*float32"):
        open_embeddings(tmp_path / "ids.safetensors")


def test_safetensors_garbage(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(
        b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!"
    )
    with pytest.raises(MeasureInputError, match="not a valid .safetensors file"):
        open_embeddings(tmp_path / "bad.safetensors")


@pytest.mark.parametrize("zip_format", [True, False])
def test_pt_tensor(tmp_path, zip_format):
    x = torch.randn(37, 5, dtype=torch.float64)
    torch.save(x, tmp_path / "emb.pt", _use_new_zipfile_serialization=zip_format)
    _check_reads(tmp_path / "emb.pt", x.numpy())


def test_pt_dict_of_tensors(tmp_path):
    x = torch.randn(37, 5)
    torch.save({"x": x, "y": 2 * x, "step": 3}, tmp_path / "emb.pt")
    with pytest.raises(MeasureInputError, match=r"contains 2 tensors \(x, y\)"):
        open_embeddings(tmp_path / "emb.pt")
    _check_reads(f"{tmp_path / 'emb.pt'}:y", (2 * x).numpy())


def test_pt_rejects_pickled_objects(tmp_path):
    torch.save({"x": np.zeros((3, 2))}, tmp_path / "numpy.pt")
    with pytest.raises(MeasureInputError, match=r"weights_only=True"):
        open_embeddings(tmp_path / "numpy.pt")


def test_npz_member(tmp_path, rng):
    x = rng.standard_normal((37, 5)).astype(np.float32)
    np.savez_compressed(tmp_path / "emb.npz", embeddings=x)
    _check_reads(tmp_path / "emb.npz", x)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (
            np.zeros(8, dtype=np.float32),
            "1-D array of shape \\(8,\\).*reshape\\(1, -1\\)",
        ),
        (
            np.zeros((2, 3, 4), dtype=np.float32),
            "shape \\(2, 3, 4\\).*reshape it to \\(N, d\\)",
        ),
        (np.zeros((5, 3), dtype=np.int64), "dtype int64.*astype\\(np.float32\\)"),
        (np.zeros((5, 3), dtype=bool), "dtype bool"),
        (np.zeros((5, 3), dtype=np.complex64), "dtype complex64"),
        (np.zeros((0, 3), dtype=np.float32), "has no rows"),
        (np.zeros((4, 0), dtype=np.float32), "0 columns"),
    ],
)
def test_npy_layout_errors(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(MeasureInputError, match=message) as error:
        open_embeddings(tmp_path / "bad.npy")
    assert str(error.value).startswith(str(tmp_path / "bad.npy"))


def test_npy_object_array(tmp_path):
    np.save(
        tmp_path / "objects.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True
    )
    with pytest.raises(MeasureInputError, match="cannot be read as a .npy array"):
        open_embeddings(tmp_path / "objects.npy")


def test_npy_truncated(tmp_path, rng):
    np.save(tmp_path / "emb.npy", rng.standard_normal((100, 8)).astype(np.float32))
    data = (tmp_path / "emb.npy").read_bytes()
    (tmp_path / "emb.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(MeasureInputError, match="emb.npy"):
        with open_embeddings(tmp_path / "emb.npy") as array:
            array.read(0, 100)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(MeasureInputError, match="file not found; check the path"):
        open_embeddings(tmp_path / "missing.npy")
    (tmp_path / "emb.csv").write_text("1,2\n")
    with pytest.raises(MeasureInputError, match="unknown embedding file type '.csv'"):
        open_embeddings(tmp_path / "emb.csv")
    with pytest.raises(MeasureInputError, match="is a folder"):
        open_embeddings(tmp_path)


def test_tensor_array_from_numpy_and_torch(rng):
    x = rng.standard_normal((10, 4)).astype(np.float32)
    assert_array_equal(TensorArray(x, "x").take(np.array([3, 3])), x[[3, 3]])
    half = torch.from_numpy(x).to(torch.bfloat16)
    assert TensorArray(half, "half").read(0, 2).dtype == np.float32
    with pytest.raises(MeasureInputError, match="x: has dtype int32"):
        TensorArray(np.zeros((2, 2), dtype=np.int32), "x")


def _resident_kib() -> int:
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return int(fields["VmRSS"].split()[0])


@pytest.mark.skipif(
    not __import__("os").path.exists("/proc/self/status"), reason="needs Linux /proc"
)
def test_reading_keeps_memory_bounded(tmp_path):
    # 96 MiB of float32 rows, read in 8 MiB chunks and by scattered index: the
    # process must not keep the file's pages.
    rows, dim = 65536, 384
    path = tmp_path / "big.npy"
    out = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.float32, shape=(rows, dim)
    )
    for start in range(0, rows, 8192):
        out[start : start + 8192] = start
    out.flush()
    del out
    before = _resident_kib()
    with open_embeddings(path) as array:
        for start in range(0, rows, 5461):
            assert (
                array.read(start, min(start + 5461, rows))[0, 0] == start // 8192 * 8192
            )
        scattered = np.sort(np.random.default_rng(0).choice(rows, 8192, replace=False))
        assert_array_equal(array.take(scattered)[:, 0], scattered // 8192 * 8192)
    grown_mib = (_resident_kib() - before) / 1024
    assert grown_mib < 40, (
        f"resident memory grew by {grown_mib:.0f} MiB reading a 96 MiB file"
    )
