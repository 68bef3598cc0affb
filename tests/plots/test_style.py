"""Figure output: PNG at 200 dpi and PDF, written atomically and reproducibly."""

from __future__ import annotations

from PIL import Image

from alignsphere.plots.style import PNG_DPI, new_figure, print_style, save_figure


def _figure():
    with print_style():
        figure, axes = new_figure(3.0, 2.0)
        axes.plot([0, 1], [1, 0], label="line")
        axes.set_xlabel("x (units)")
        axes.legend()
    return figure


def test_writes_png_and_pdf(tmp_path):
    paths = save_figure(_figure(), tmp_path / "sub" / "figure")
    assert [path.name for path in paths] == ["figure.png", "figure.pdf"]
    png, pdf = paths
    assert png.read_bytes().startswith(b"\x89PNG")
    assert pdf.read_bytes().startswith(b"%PDF")
    with Image.open(png) as image:
        assert image.size == (3 * PNG_DPI, 2 * PNG_DPI)
    assert not list(tmp_path.rglob(".*.tmp"))


def test_same_figure_gives_same_bytes(tmp_path):
    first = save_figure(_figure(), tmp_path / "a")
    second = save_figure(_figure(), tmp_path / "b")
    for one, other in zip(first, second, strict=True):
        assert one.read_bytes() == other.read_bytes()
