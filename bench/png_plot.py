"""A line chart written as a PNG with the standard library only (zlib), for benchmarks on machines
without matplotlib: axes, ticks, a 3x5 pixel font, one coloured line per series and a legend."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

# 3x5 glyphs, rows top to bottom, "#" lit. Lower-case text is drawn in these upper-case shapes.
_FONT_ROWS = {
    "0": "###|#.#|#.#|#.#|###", "1": ".#.|##.|.#.|.#.|###", "2": "###|..#|###|#..|###",
    "3": "###|..#|.##|..#|###", "4": "#.#|#.#|###|..#|..#", "5": "###|#..|###|..#|###",
    "6": "###|#..|###|#.#|###", "7": "###|..#|.#.|.#.|.#.", "8": "###|#.#|###|#.#|###",
    "9": "###|#.#|###|..#|###", "a": ".#.|#.#|###|#.#|#.#", "b": "##.|#.#|##.|#.#|##.",
    "c": ".##|#..|#..|#..|.##", "d": "##.|#.#|#.#|#.#|##.", "e": "###|#..|##.|#..|###",
    "f": "###|#..|##.|#..|#..", "g": ".##|#..|#.#|#.#|.##", "h": "#.#|#.#|###|#.#|#.#",
    "i": "###|.#.|.#.|.#.|###", "j": "..#|..#|..#|#.#|.#.", "k": "#.#|#.#|##.|#.#|#.#",
    "l": "#..|#..|#..|#..|###", "m": "#.#|###|###|#.#|#.#", "n": "##.|#.#|#.#|#.#|#.#",
    "o": ".#.|#.#|#.#|#.#|.#.", "p": "##.|#.#|##.|#..|#..", "q": ".#.|#.#|#.#|##.|.##",
    "r": "##.|#.#|##.|#.#|#.#", "s": ".##|#..|.#.|..#|##.", "t": "###|.#.|.#.|.#.|.#.",
    "u": "#.#|#.#|#.#|#.#|###", "v": "#.#|#.#|#.#|#.#|.#.", "w": "#.#|#.#|###|###|#.#",
    "x": "#.#|#.#|.#.|#.#|#.#", "y": "#.#|#.#|.#.|.#.|.#.", "z": "###|..#|.#.|#..|###",
    ".": "...|...|...|...|.#.", "_": "...|...|...|...|###", "-": "...|...|###|...|...",
    "+": "...|.#.|###|.#.|...", "=": "...|###|...|###|...", "(": ".#.|#..|#..|#..|.#.",
    ")": ".#.|..#|..#|..#|.#.", ",": "...|...|...|.#.|#..", " ": "...|...|...|...|...",
    "%": "#.#|..#|.#.|#..|#.#", "/": "..#|..#|.#.|#..|#..",
}  # fmt: skip
_PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75)]
Color = tuple[int, int, int]


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(b"\xff" * (width * height * 3))

    def dot(self, x: int, y: int, color: Color, size: int = 1) -> None:
        for dy in range(size):
            for dx in range(size):
                px, py = x + dx - size // 2, y + dy - size // 2
                if 0 <= px < self.width and 0 <= py < self.height:
                    offset = (py * self.width + px) * 3
                    self.pixels[offset : offset + 3] = bytes(color)

    def line(self, start: tuple[int, int], end: tuple[int, int], color: Color, size: int = 1) -> None:
        (x0, y0), (x1, y1) = start, end
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for step in range(steps + 1):
            self.dot(round(x0 + (x1 - x0) * step / steps), round(y0 + (y1 - y0) * step / steps), color, size)

    def text(self, x: int, y: int, text: str, color: Color = (0, 0, 0), scale: int = 2) -> None:
        for index, character in enumerate(text.lower()):
            rows = _FONT_ROWS.get(character, _FONT_ROWS[" "]).split("|")
            for row, bits in enumerate(rows):
                for column, bit in enumerate(bits):
                    if bit == "#":
                        for dy in range(scale):
                            for dx in range(scale):
                                self.dot(x + (index * 4 + column) * scale + dx, y + row * scale + dy, color)

    def png(self) -> bytes:
        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        stride = self.width * 3
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * stride : (y + 1) * stride]) for y in range(self.height)
        )
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)  # 8-bit RGB
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    return [low + (high - low) * index / (count - 1) for index in range(count)]


def line_chart_png(
    *,
    path: Path,
    series: Mapping[str, Sequence[tuple[float, float]]],
    title: str,
    x_label: str,
    y_label: str,
    width: int = 720,
    height: int = 440,
) -> None:
    """Write `series` (name -> (x, y) points) as one line each, with axes fitted to the data."""
    canvas = _Canvas(width, height)
    left, right, top, bottom = 70, width - 190, 52, height - 50
    points = [point for values in series.values() for point in values]
    x_low, x_high = min(p[0] for p in points), max(p[0] for p in points)
    y_low, y_high = min(p[1] for p in points), max(p[1] for p in points)
    y_pad = (y_high - y_low) * 0.05 or 0.01
    y_low, y_high = y_low - y_pad, y_high + y_pad
    x_high = x_high if x_high > x_low else x_low + 1

    def place(x: float, y: float) -> tuple[int, int]:
        return (
            round(left + (x - x_low) / (x_high - x_low) * (right - left)),
            round(bottom - (y - y_low) / (y_high - y_low) * (bottom - top)),
        )

    grey = (200, 200, 200)
    for y in _ticks(y_low, y_high):
        _, py = place(x_low, y)
        canvas.line((left, py), (right, py), grey)
        canvas.text(8, py - 5, f"{y:.3f}")
    for x in _ticks(x_low, x_high):
        px, _ = place(x, y_low)
        canvas.line((px, top), (px, bottom), grey)
        canvas.text(px - 12, bottom + 8, f"{x:.0f}")
    canvas.line((left, bottom), (right, bottom), (0, 0, 0))
    canvas.line((left, top), (left, bottom), (0, 0, 0))
    canvas.text(left, 8, title)
    canvas.text((left + right) // 2 - 4 * len(x_label), bottom + 28, x_label)
    canvas.text(8, top - 24, y_label)
    for index, (name, values) in enumerate(series.items()):
        color = _PALETTE[index % len(_PALETTE)]
        placed = [place(x, y) for x, y in values]
        for start, end in zip(placed, placed[1:], strict=False):
            canvas.line(start, end, color, size=2)
        for point in placed:
            canvas.dot(*point, color, size=5)
        canvas.line((right + 15, top + 10 + 20 * index), (right + 35, top + 10 + 20 * index), color, size=3)
        canvas.text(right + 42, top + 5 + 20 * index, name)
    path.write_bytes(canvas.png())
