"""Embedding files as row arrays that are read in chunks or by row index.

:func:`open_embeddings` opens ``.npy``, ``.safetensors``, ``.pt``/``.pth`` and
``.npz`` files. A ``.npy`` or ``.safetensors`` file is never loaded whole:
:class:`FileArray` copies each chunk or set of rows from the file with
positional reads, so a pass over a file of 1.5 GB keeps one chunk in memory.
The file's data stays in the operating system's page cache, which is not part
of the process's resident memory. A ``.pt`` file saved by
``torch.save`` is memory-mapped by ``torch.load``, so the pages it reads stay
resident, and a ``.npz`` member is read whole into memory.

Every reader returns float32 numpy arrays, or float64 where the file stores
float64. float16 and bfloat16 are widened to float32.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import pickle
import struct
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from alignsphere.measure.errors import MeasureInputError

EMBEDDING_SUFFIXES = (".npy", ".safetensors", ".pt", ".pth", ".npz")

# safetensors dtype names (format spec: huggingface/safetensors README) that hold
# floating-point numbers this module can widen to float32 or float64.
_SAFETENSORS_FLOATS = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "BF16": "bfloat16"}
_SAFETENSORS_INTEGERS = {"BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64"}


class EmbeddingArray(ABC):
    """A 2-D array of embeddings, one row per item, read without loading it whole.

    Attributes:
        label: Name used in messages, normally the file path as given.
        num_rows: Number of rows N.
        dim: Number of columns d.
        stored_dtype: Element type in the file, such as ``"float32"``.
    """

    def __init__(
        self,
        label: str,
        num_rows: int,
        dim: int,
        stored_dtype: str,
        row_name: Callable[[int], str] | None = None,
    ) -> None:
        self.label = label
        self.num_rows = num_rows
        self.dim = dim
        self.stored_dtype = stored_dtype
        self._row_name = row_name

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the arrays that :meth:`read` and :meth:`take` return."""
        wide = self.stored_dtype.endswith("float64")
        return np.dtype(np.float64 if wide else np.float32)

    def row_name(self, row: int) -> str:
        """Return how messages refer to ``row``, such as ``"emb.npy row index 17"``."""
        if self._row_name is not None:
            return self._row_name(row)
        return f"{self.label} row index {row}"

    @abstractmethod
    def read(self, start: int, stop: int) -> np.ndarray:
        """Return rows ``start:stop`` as a new C-contiguous array."""

    @abstractmethod
    def take(self, rows: np.ndarray) -> np.ndarray:
        """Return the rows at the int64 indices ``rows`` (any order, repeats allowed)."""

    @abstractmethod
    def close(self) -> None:
        """Release the file or memory; the array cannot be read afterwards."""

    def __enter__(self) -> EmbeddingArray:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.label!r}, rows={self.num_rows}, "
            f"dim={self.dim}, dtype={self.stored_dtype})"
        )


class _StoredRows(EmbeddingArray):
    """Shared parts of the readers of raw little- or big-endian arrays in a file."""

    def __init__(
        self,
        path: str | Path,
        offset: int,
        shape: tuple[int, int],
        dtype: np.dtype | str,
        label: str | None,
    ) -> None:
        self._bfloat16 = isinstance(dtype, str) and dtype == "bfloat16"
        self._storage = np.dtype("<u2") if self._bfloat16 else np.dtype(dtype)
        stored = "bfloat16" if self._bfloat16 else _dtype_name(self._storage)
        super().__init__(label or str(path), shape[0], shape[1], stored)
        self._offset = offset
        self._row_bytes = shape[1] * self._storage.itemsize

    def _convert(self, block: np.ndarray, *, owned: bool = False) -> np.ndarray:
        """Return ``block`` widened to :attr:`dtype`, copying it unless ``owned``."""
        if self._bfloat16:
            # A bfloat16 is the upper half of a float32 with the same value.
            widened = block.astype(np.uint32) << 16
            return widened.view(np.float32)
        if owned:
            return block.astype(self.dtype, order="C", copy=False)
        return np.array(block, dtype=self.dtype, order="C", copy=True)


class FileArray(_StoredRows):
    """Rows of a row-major array in a file, read with positional reads.

    Nothing is memory-mapped: each read copies the requested bytes from the
    operating system's page cache into a new array, so the process keeps only
    the rows it asked for. A memory map does worse: on the Linux 6.18 machine
    of the benchmarks, a page fault mapped the page cache's whole large folio,
    about 760 KB per row read at random, so sampling pairs made most of the
    file resident.

    Args:
        path: The file.
        offset: Byte offset of the first element.
        shape: ``(N, d)``.
        dtype: Stored numpy dtype, or ``"bfloat16"`` for 16-bit brain floats.
        label: Name used in messages; defaults to ``path``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        offset: int,
        shape: tuple[int, int],
        dtype: np.dtype | str,
        label: str | None = None,
    ) -> None:
        super().__init__(path, offset, shape, dtype, label)
        self._file = open(path, "rb", buffering=0)

    def read(self, start: int, stop: int) -> np.ndarray:
        block = np.empty((stop - start, self.dim), dtype=self._storage)
        self._read_runs(block, [0], [stop - start], [start])
        return self._convert(block, owned=True)

    def take(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        block = np.empty((len(rows), self.dim), dtype=self._storage)
        if len(rows):
            # One read per run of consecutive rows.
            breaks = np.flatnonzero(np.diff(rows) != 1) + 1
            starts = np.concatenate([[0], breaks])
            stops = np.concatenate([breaks, [len(rows)]])
            self._read_runs(
                block, starts.tolist(), stops.tolist(), rows[starts].tolist()
            )
        return self._convert(block, owned=True)

    def _read_runs(
        self, block: np.ndarray, starts: list[int], stops: list[int], rows: list[int]
    ) -> None:
        """Read file rows ``rows[k]...`` into ``block[starts[k]:stops[k]]``."""
        view = memoryview(block).cast("B")
        size = self._row_bytes
        base = self._offset
        done = 0
        if hasattr(os, "preadv"):
            # The hot loop of sampled uniformity: one system call per run.
            handle = self._file.fileno()
            preadv = os.preadv
            for begin, end, row in zip(starts, stops, rows, strict=True):
                done += preadv(
                    handle, [view[begin * size : end * size]], base + row * size
                )
        else:
            for begin, end, row in zip(starts, stops, rows, strict=True):
                self._file.seek(base + row * size)
                done += self._file.readinto(view[begin * size : end * size])
        if done != len(view):
            raise MeasureInputError(
                f"{self.label}: is truncated (shorter than its header's shape), so "
                "some rows are missing; write the file again"
            )

    def close(self) -> None:
        self._file.close()


class MappedArray(_StoredRows):
    """Rows of a column-major (Fortran-order) array, read through a memory map.

    Reading a row of a column-major file touches d places in it, so this
    reader maps the file and releases its pages (``madvise(MADV_DONTNEED)``)
    after every read.

    NOTE: while a :meth:`take` of scattered rows runs, every touched page
    (with its large folio, see :class:`FileArray`) is resident, so memory can
    reach a large part of the file. Re-save the array in row-major order
    (``np.save(path, np.ascontiguousarray(x))``) to read it in bounded memory.

    Args:
        path: File to map.
        offset: Byte offset of the first element.
        shape: ``(N, d)``.
        dtype: Stored numpy dtype.
        label: Name used in messages; defaults to ``path``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        offset: int,
        shape: tuple[int, int],
        dtype: np.dtype | str,
        label: str | None = None,
    ) -> None:
        super().__init__(path, offset, shape, dtype, label)
        self._file = open(path, "rb")
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        flat = np.frombuffer(
            self._map, dtype=self._storage, count=shape[0] * shape[1], offset=offset
        )
        self._view = flat.reshape(shape[1], shape[0]).T

    def read(self, start: int, stop: int) -> np.ndarray:
        values = self._convert(self._view[start:stop])
        self._release()
        return values

    def take(self, rows: np.ndarray) -> np.ndarray:
        values = self._convert(self._view[np.asarray(rows, dtype=np.int64)])
        self._release()
        return values

    def _release(self) -> None:
        """Drop every mapped page of the file from resident memory."""
        if hasattr(mmap, "MADV_DONTNEED") and not self._map.closed:
            self._map.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        if self._map.closed:
            return
        del self._view
        self._map.close()
        self._file.close()


class TensorArray(EmbeddingArray):
    """Rows of a tensor in memory (or mapped by ``torch.load(mmap=True)``).

    Args:
        values: ``(N, d)`` floating-point tensor or numpy array.
        label: Name used in messages.
        row_name: Maps a row index to the name messages use for it, for rows
            that come from lines of a text file.
    """

    def __init__(
        self,
        values: torch.Tensor | np.ndarray,
        label: str,
        row_name: Callable[[int], str] | None = None,
    ) -> None:
        if isinstance(values, np.ndarray):
            check_layout(
                label, values.shape, values.dtype.kind == "f", str(values.dtype)
            )
            native = values.dtype.newbyteorder("=")
            values = torch.from_numpy(values.astype(native, copy=False))
        else:
            check_layout(
                label,
                tuple(values.shape),
                values.is_floating_point(),
                str(values.dtype).removeprefix("torch."),
            )
        stored = str(values.dtype).removeprefix("torch.")
        super().__init__(label, values.shape[0], values.shape[1], stored, row_name)
        self._values = values

    def read(self, start: int, stop: int) -> np.ndarray:
        return self._to_numpy(self._values[start:stop])

    def take(self, rows: np.ndarray) -> np.ndarray:
        index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        return self._to_numpy(self._values[index])

    def close(self) -> None:
        # Dropping the reference frees the tensor, or unmaps a torch.load(mmap=True) file.
        self._values = self._values[:0]

    def _to_numpy(self, block: torch.Tensor) -> np.ndarray:
        wide = torch.float64 if self.dtype == np.float64 else torch.float32
        return block.detach().to(wide, copy=True).contiguous().numpy()


def check_layout(
    label: str, shape: Sequence[int], is_float: bool, dtype_name: str
) -> None:
    """Raise :class:`MeasureInputError` unless ``shape`` and dtype hold embeddings.

    Embeddings are a non-empty 2-D floating-point array of shape ``(N, d)``.
    """
    shape = tuple(int(size) for size in shape)
    if len(shape) == 1:
        raise MeasureInputError(
            f"{label}: contains a 1-D array of shape {shape}, but embeddings must be "
            "2-D with one row per item; save x.reshape(1, -1) for a single vector, "
            "or stack the vectors into an (N, d) array"
        )
    if len(shape) != 2:
        raise MeasureInputError(
            f"{label}: contains an array of shape {shape}, but embeddings must be "
            "2-D with one row per item; reshape it to (N, d), for example with "
            "x.reshape(-1, x.shape[-1])"
        )
    if not is_float or dtype_name in ("float128", "longdouble", "complex64"):
        raise MeasureInputError(
            f"{label}: has dtype {dtype_name}, but embeddings must be float16, "
            "bfloat16, float32 or float64; save x.astype(np.float32) "
            "(or x.float() for a torch tensor)"
        )
    if shape[0] == 0:
        raise MeasureInputError(
            f"{label}: has no rows; check that the file was written"
        )
    if shape[1] == 0:
        raise MeasureInputError(
            f"{label}: has {shape[0]} rows of 0 columns; embeddings need d >= 1"
        )


def open_embeddings(spec: str | Path) -> EmbeddingArray:
    """Open an embedding file for reading in chunks.

    Args:
        spec: Path of a ``.npy``, ``.safetensors``, ``.pt``/``.pth`` or ``.npz``
            file. A file that contains several tensors is given as
            ``PATH:NAME``, naming the tensor to read.

    Returns:
        An :class:`EmbeddingArray`; close it (or use it in a ``with`` block) to
        release the file.

    Raises:
        MeasureInputError: the file is missing, of an unknown type, not 2-D, not
            floating point, empty, or contains several tensors and none was named.

    Example:
        >>> import tempfile, numpy as np
        >>> path = tempfile.mkdtemp() + "/emb.npy"
        >>> np.save(path, np.eye(3, dtype=np.float32))
        >>> with open_embeddings(path) as array:
        ...     (array.num_rows, array.dim, array.read(0, 2).shape)
        (3, 3, torch.Size([2, 3]))
    """
    path, key = _split_key(str(spec))
    suffix = path.suffix.lower()
    label = str(spec)
    if suffix == ".npy":
        if key is not None:
            raise MeasureInputError(
                f"{label}: a .npy file contains one array, so it takes no :NAME suffix"
            )
        return _open_npy(path, label)
    if suffix == ".safetensors":
        return _open_safetensors(path, key, label)
    if suffix in (".pt", ".pth"):
        return _open_torch(path, key, label)
    if suffix == ".npz":
        return _open_npz(path, key, label)
    raise MeasureInputError(
        f"{label}: unknown embedding file type {suffix or '(no suffix)'!r}; "
        f"save the embeddings as one of {', '.join(EMBEDDING_SUFFIXES)}"
    )


def _split_key(spec: str) -> tuple[Path, str | None]:
    path = Path(spec)
    if path.exists():
        if path.is_dir():
            raise MeasureInputError(f"{spec}: is a folder, not an embedding file")
        return path, None
    head, separator, key = spec.rpartition(":")
    if separator and key and Path(head).is_file():
        return Path(head), key
    raise MeasureInputError(f"{spec}: file not found; check the path")


def _dtype_name(dtype: np.dtype) -> str:
    name = dtype.name
    return name if dtype.byteorder in ("=", "|", "<") else f">{name}"


def _open_npy(path: Path, label: str) -> EmbeddingArray:
    try:
        header = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise MeasureInputError(
            f"{label}: cannot be read as a .npy array ({_one_line(error)}); write it "
            "with np.save(path, x) from a float array"
        ) from None
    if not isinstance(header, np.memmap):
        raise MeasureInputError(
            f"{label}: is not a single .npy array; an archive of arrays needs the "
            ".npz suffix and PATH.npz:NAME"
        )
    dtype = header.dtype
    check_layout(label, header.shape, dtype.kind == "f", str(dtype))
    shape = (int(header.shape[0]), int(header.shape[1]))
    fortran = bool(header.flags.f_contiguous and not header.flags.c_contiguous)
    offset = int(header.offset)
    del header
    reader = MappedArray if fortran else FileArray
    return reader(path, offset=offset, shape=shape, dtype=dtype, label=label)


def _open_safetensors(path: Path, key: str | None, label: str) -> EmbeddingArray:
    # Layout: 8-byte little-endian header size, a JSON header, then the data.
    file_size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise _not_safetensors(label, "shorter than 8 bytes")
        (header_size,) = struct.unpack("<Q", prefix)
        if header_size > file_size - 8:
            raise _not_safetensors(label, f"header size {header_size} exceeds the file")
        try:
            header = json.loads(handle.read(header_size))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _not_safetensors(label, "the header is not JSON") from None
    if not isinstance(header, dict):
        raise _not_safetensors(label, "the header is not a JSON object")

    names = sorted(name for name in header if name != "__metadata__")
    name = _select_tensor(label, names, key)
    info = header[name]
    try:
        dtype_code = str(info["dtype"])
        shape = tuple(int(size) for size in info["shape"])
        begin, end = (int(value) for value in info["data_offsets"])
    except (KeyError, TypeError, ValueError):
        raise _not_safetensors(label, f"entry {name!r} is malformed") from None
    where = label if key is not None or len(names) == 1 else f"{label}:{name}"
    if dtype_code in _SAFETENSORS_INTEGERS:
        check_layout(where, shape, False, dtype_code)
    if dtype_code not in _SAFETENSORS_FLOATS:
        raise MeasureInputError(
            f"{where}: has dtype {dtype_code}, which this reader does not convert; "
            "save the tensor as float32 (x.float()) before saving"
        )
    check_layout(where, shape, True, dtype_code)

    storage = _SAFETENSORS_FLOATS[dtype_code]
    itemsize = 2 if storage == "bfloat16" else np.dtype(storage).itemsize
    data_start = 8 + header_size
    if end - begin != math.prod(shape) * itemsize or data_start + end > file_size:
        raise _not_safetensors(where, "the data is truncated or its offsets are wrong")
    return FileArray(
        path,
        offset=data_start + begin,
        shape=(shape[0], shape[1]),
        dtype=storage,
        label=where,
    )


def _not_safetensors(label: str, reason: str) -> MeasureInputError:
    return MeasureInputError(
        f"{label}: is not a valid .safetensors file ({reason}); write it with "
        "safetensors.torch.save_file({'embeddings': x}, path)"
    )


def _open_torch(path: Path, key: str | None, label: str) -> EmbeddingArray:
    # weights_only=True: an untrusted file cannot run code while loading.
    # mmap=True needs the zip format that torch.save has written since 1.6.
    try:
        content = torch.load(
            path,
            map_location="cpu",
            weights_only=True,
            mmap=zipfile.is_zipfile(path),
        )
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
        raise MeasureInputError(
            f"{label}: cannot be loaded with torch.load(weights_only=True) "
            f"({_one_line(error)}); save a tensor or a dict of tensors with torch.save"
        ) from None
    if isinstance(content, torch.Tensor):
        if key is not None:
            raise MeasureInputError(
                f"{label}: contains a single tensor, so it takes no :NAME suffix"
            )
        return TensorArray(content, label)
    if isinstance(content, dict):
        tensors = {
            str(name): value
            for name, value in content.items()
            if isinstance(value, torch.Tensor)
        }
        name = _select_tensor(label, sorted(tensors), key)
        where = label if key is not None or len(tensors) == 1 else f"{label}:{name}"
        return TensorArray(tensors[name], where)
    raise MeasureInputError(
        f"{label}: contains a {type(content).__name__}, not a tensor or a dict of "
        "tensors; save the embeddings with torch.save(x, path)"
    )


def _open_npz(path: Path, key: str | None, label: str) -> EmbeddingArray:
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise MeasureInputError(
            f"{label}: cannot be read as a .npz archive ({_one_line(error)}); write "
            "it with np.savez(path, embeddings=x)"
        ) from None
    with archive:
        if not hasattr(archive, "files"):
            raise MeasureInputError(f"{label}: is a .npy array; rename it to .npy")
        name = _select_tensor(label, sorted(archive.files), key)
        where = (
            label if key is not None or len(archive.files) == 1 else f"{label}:{name}"
        )
        try:
            values = archive[name]
        except ValueError as error:
            raise MeasureInputError(f"{where}: {_one_line(error)}") from None
    return TensorArray(values, where)


def _select_tensor(label: str, names: list[str], key: str | None) -> str:
    if key is not None:
        if key not in names:
            shown = ", ".join(names[:10]) or "nothing"
            raise MeasureInputError(
                f"{label}: has no tensor named {key!r}; it contains {shown}"
            )
        return key
    if len(names) == 1:
        return names[0]
    if not names:
        raise MeasureInputError(f"{label}: contains no tensors")
    shown = ", ".join(names[:10]) + (
        f" and {len(names) - 10} more" if len(names) > 10 else ""
    )
    raise MeasureInputError(
        f"{label}: contains {len(names)} tensors ({shown}); name the one to measure "
        f"as {label}:NAME"
    )


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 200 else text[:197] + "..."
