"""Input checks shared by the losses, metrics and settings.

Every public numeric function validates its features here, so that bad input
fails with one message that names the argument, the offending row and the fix.
"""

from __future__ import annotations

import math

import torch

# Largest accepted deviation of a row's L2 norm from 1, by dtype. Rounding each
# coordinate of a unit vector to float16 moves the norm by up to about 5e-4, and a
# normalisation computed in float16 by about 1e-3. bfloat16 keeps 8 bits of
# mantissa, so its rounding moves the norm by up to about 1e-2. The bounds leave
# room for that and still reject a row of norm 1.05.
UNIT_NORM_TOLERANCE = {
    torch.float64: 1e-6,
    torch.float32: 1e-4,
    torch.float16: 5e-3,
    torch.bfloat16: 3e-2,
}

_ROWS_SHOWN = 5


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """Return the dtype used inside: float64 stays, everything narrower is float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _row_list(mask: torch.Tensor, offset: int = 0) -> str:
    rows = (torch.nonzero(mask).flatten() + offset).tolist()
    shown = ", ".join(str(r) for r in rows[:_ROWS_SHOWN])
    more = f" and {len(rows) - _ROWS_SHOWN} more" if len(rows) > _ROWS_SHOWN else ""
    return f"{shown}{more}"


def is_integer(value: object) -> bool:
    """Return whether ``value`` is an int. A bool, which Python counts as one, is not."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """Return whether ``value`` is an int or a float, and not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_positive(name: str, value: float) -> float:
    """Return ``value`` as a float after checking that it is finite and above 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def check_features(
    x: torch.Tensor,
    name: str = "x",
    *,
    normalize: bool = False,
    min_rows: int = 1,
    row_offset: int = 0,
) -> torch.Tensor:
    """Validate a batch of features and return it in the internal float dtype.

    Args:
        x: Features of shape ``(N, d)``.
        name: Argument name used in error messages.
        normalize: If True, rows are L2-normalised here (a zero row is an error).
            If False, every row must already have unit length within
            ``UNIT_NORM_TOLERANCE`` of its dtype.
        min_rows: Smallest accepted N.
        row_offset: Added to row numbers in messages, for a chunk of a larger array.

    Returns:
        ``x`` cast to float32 (float64 stays float64), normalised if requested.
        Gradients flow through the cast and the normalisation.

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: wrong shape, too few rows, NaN or infinite values, zero rows
            with ``normalize=True``, or rows that are not unit length.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}; "
            f"convert it with {name}.float()"
        )
    if x.dim() != 2:
        raise ValueError(
            f"{name} must have shape (N, d), got shape {tuple(x.shape)}; "
            "reshape a single vector with x.unsqueeze(0)"
        )
    if x.shape[0] < min_rows:
        raise ValueError(
            f"{name} has {x.shape[0]} rows but at least {min_rows} are needed"
            + (" (uniformity is a mean over pairs of rows)" if min_rows == 2 else "")
        )
    if x.shape[1] < 1:
        raise ValueError(f"{name} has shape {tuple(x.shape)}: d must be at least 1")

    detached = x.detach()
    out = x.to(compute_dtype(x))
    # One reduction over the rows covers the common case: a NaN or infinite
    # value makes its row's norm non-finite, which fails both checks below.
    norms = torch.linalg.vector_norm(detached.to(out.dtype), dim=1)
    tolerance = UNIT_NORM_TOLERANCE.get(x.dtype, 1e-4)
    if normalize:
        if bool(((norms > 0) & torch.isfinite(norms)).all()):
            return torch.nn.functional.normalize(out, dim=1)
    elif bool(((norms - 1).abs() <= tolerance).all()):
        return out

    finite = torch.isfinite(detached).all(dim=1)
    if not bool(finite.all()):
        raise ValueError(
            f"{name} contains NaN or infinite values in row(s) "
            f"{_row_list(~finite, row_offset)}; check the encoder output or drop "
            "those rows"
        )
    if normalize:
        zero = norms == 0
        if bool(zero.any()):
            raise ValueError(
                f"{name} has zero row(s) {_row_list(zero, row_offset)}, which cannot "
                "be normalised to unit length; drop them first"
            )
        # Finite rows whose norm overflowed: scale them down before normalising.
        scaled = out / detached.abs().amax(dim=1, keepdim=True).clamp_min(1).to(
            out.dtype
        )
        return torch.nn.functional.normalize(scaled, dim=1)

    off = ~((norms - 1).abs() <= tolerance)
    first = int(torch.nonzero(off)[0])
    raise ValueError(
        f"{name} rows must have unit L2 norm, but row(s) {_row_list(off, row_offset)} "
        f"do not (row {first + row_offset} has norm {float(norms[first]):.6g}, "
        f"tolerance {tolerance:g} for {x.dtype}); pass normalize=True or apply "
        "torch.nn.functional.normalize(x, dim=1) first"
    )


def check_pair(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    normalize: bool = False,
    names: tuple[str, str] = ("x", "y"),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two row-aligned batches of positive pairs."""
    x = check_features(x, names[0], normalize=normalize)
    y = check_features(y, names[1], normalize=normalize)
    if x.shape != y.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape (row i of one is "
            f"the positive of row i of the other), got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    dtype = torch.promote_types(x.dtype, y.dtype)
    return x.to(dtype), y.to(dtype)


def check_rows_in_chunks(
    x: torch.Tensor,
    name: str = "x",
    *,
    normalize: bool = False,
    min_rows: int = 1,
    chunk_rows: int = 1 << 16,
) -> None:
    """Run :func:`check_features` over ``x`` chunk by chunk, in bounded memory."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        check_features(x, name, normalize=normalize, min_rows=min_rows)
    if x.shape[0] < min_rows:
        check_features(x, name, normalize=normalize, min_rows=min_rows)
    for start in range(0, x.shape[0], chunk_rows):
        check_features(
            x[start : start + chunk_rows], name, normalize=normalize, row_offset=start
        )
