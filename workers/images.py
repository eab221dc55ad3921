"""Event images: one PNG per (style, platform), the event's Korean text drawn with Pillow.

Sizes follow what each channel shows (`PLATFORM_SIZES`); the three styles differ
in palette, layout and decoration. Text is wrapped to its box and its size shrunk until it
fits, so any title fits any canvas. The font must draw Hangul (Debian's fonts-nanum,
`IMAGE_FONT_PATH`): a missing file or a font without Hangul fails the image with a clear
error instead of drawing empty boxes.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "PLATFORM_SIZES",
    "STYLES",
    "FontError",
    "FontMissingError",
    "Look",
    "render",
]

log = logging.getLogger(__name__)

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]  # left, top, right, bottom

# (width, height) in pixels, per channel (schemas/eventpipe.Channel.avsc).
PLATFORM_SIZES: dict[str, tuple[int, int]] = {
    "URIDONGNE_TV": (1920, 1080),  # a TV screen, 16:9 Full HD
    "GENIE_TV": (1920, 1080),  # a TV screen, 16:9 Full HD
    "RINGO_BIZ": (1080, 1920),  # a phone screen, 9:16 (the video shown while a call rings)
    "INSTAGRAM": (1080, 1080),  # a square feed post
    "NAVER_BLOG": (966, 644),  # the blog's 966 px content width, 3:2
    "KAKAO_CHANNEL": (800, 800),  # a square message image
}


class FontError(RuntimeError):
    """The configured font cannot draw the event's Korean text."""


class FontMissingError(FontError, FileNotFoundError):
    """No font file at the configured path."""


@dataclass(frozen=True)
class Look:
    """A style: colours, where the text sits, and what is drawn around it."""

    top: RGB  # background gradient, from the top (or top-left) ...
    bottom: RGB  # ... to the bottom (or bottom-right)
    diagonal: bool
    title: RGB
    subtitle: RGB
    store: RGB
    accent: RGB
    align: Literal["left", "center"]
    decorate: Callable[[Image.Image, Box, Look], None]
    shadow: bool = False  # a soft shadow under the text, for text on a busy background
    pill: bool = False  # the store's name on a pill of the accent colour


# ---------------------------------------------------------------- decorations


def _simple(image: Image.Image, inner: Box, look: Look) -> None:
    """A bar at the left edge and a thin rule at the top: quiet, like a notice."""
    w, h = image.size
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, max(6, w // 60), h), fill=look.accent)
    left, top, right, _ = inner
    draw.line((left, top, right, top), fill=look.accent, width=max(2, h // 300))


def _fancy(image: Image.Image, inner: Box, look: Look) -> None:
    """A double gold frame with diamonds at its corners: an invitation card."""
    w, h = image.size
    draw = ImageDraw.Draw(image)
    gap = max(8, min(w, h) // 40)
    for inset, width in ((gap, max(3, gap // 3)), (gap * 2, max(1, gap // 8))):
        draw.rectangle((inset, inset, w - inset, h - inset), outline=look.accent, width=width)
    r = gap
    for x, y in ((gap, gap), (w - gap, gap), (gap, h - gap), (w - gap, h - gap)):
        draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=look.accent)


def _trendy(image: Image.Image, inner: Box, look: Look) -> None:
    """Big translucent circles and diagonal stripes over a loud gradient: a poster."""
    w, h = image.size
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    m = min(w, h)
    draw.ellipse((w - m * 0.55, -m * 0.25, w + m * 0.25, m * 0.55), fill=(255, 255, 255, 60))
    draw.ellipse((-m * 0.2, h - m * 0.35, m * 0.3, h + m * 0.15), fill=(255, 255, 255, 45))
    step = max(12, m // 18)
    for i in range(5):
        x = w - m * 0.35 + i * step
        draw.line((x, h, x + m * 0.35, h - m * 0.35), fill=(*look.accent, 140),
                  width=max(3, m // 120))
    image.alpha_composite(overlay)


STYLES: dict[str, Look] = {
    "SIMPLE": Look(top=(250, 250, 247), bottom=(236, 238, 240), diagonal=False,
                   title=(33, 37, 41), subtitle=(90, 98, 106), store=(13, 110, 253),
                   accent=(13, 110, 253), align="left", decorate=_simple),
    "FANCY": Look(top=(20, 30, 60), bottom=(70, 30, 90), diagonal=False,
                  title=(230, 190, 90), subtitle=(245, 235, 215), store=(230, 190, 90),
                  accent=(212, 175, 55), align="center", decorate=_fancy),
    "TRENDY": Look(top=(255, 60, 120), bottom=(255, 180, 0), diagonal=True,
                   title=(255, 255, 255), subtitle=(255, 255, 255), store=(255, 255, 255),
                   accent=(25, 25, 25), align="left", decorate=_trendy, shadow=True,
                   pill=True),
}


# ---------------------------------------------------------------- fonts and text


@lru_cache(maxsize=64)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@lru_cache(maxsize=8)
def _missing_glyph(path: str) -> bytes:
    """What the font draws for a character it lacks (a private-use one no font maps)."""
    return bytes(_font(path, 32).getmask("\U000f0000"))


def _draws(path: str, char: str) -> bool:
    return char.isspace() or bytes(_font(path, 32).getmask(char)) != _missing_glyph(path)


@lru_cache(maxsize=8)
def _check_font(path: str) -> None:
    if not Path(path).is_file():
        raise FontMissingError(
            f"no font at {path}: install Debian's fonts-nanum (bash stack/stack.sh install) "
            "or set IMAGE_FONT_PATH to a Korean TrueType font")
    if not all(_draws(path, c) for c in "가맛이벤트"):
        raise FontError(f"the font {path} has no Hangul glyphs; set IMAGE_FONT_PATH "
                        "to a Korean font (fonts-nanum)")


def _drawable(path: str, text: str) -> str:
    """The text without what the font cannot draw (an emoji, say), instead of empty boxes."""
    kept = "".join(c for c in text if _draws(path, c))
    if kept != text:
        log.info("dropped characters the font cannot draw: %r", sorted(set(text) - set(kept)))
    return " ".join(kept.split())


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Greedy wrap at spaces; a word wider than the line is broken between syllables."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for char in word:
            if font.getlength(line + char) > width and line:
                lines.append(line)
                line = ""
            line += char
    if line:
        lines.append(line)
    return lines


def _fit(text: str, path: str, box: tuple[int, int], size: int, max_lines: int,
         ) -> tuple[ImageFont.FreeTypeFont, list[str]]:
    """The largest size (from `size` down) at which the text fits the box in `max_lines`;
    at the smallest size, the lines that fit, the last one cut with an ellipsis."""
    width, height = box
    min_size = max(10, size // 3)
    while True:
        font = _font(path, size)
        lines = _wrap(text, font, width)
        if (len(lines) <= max_lines and len(lines) * _line_height(font) <= height) \
                or size <= min_size:
            break
        size = max(min_size, int(size * 0.9))
    fitting = max(1, min(max_lines, height // _line_height(font)))
    if len(lines) > fitting:
        lines = lines[:fitting]
        last = lines[-1]
        while last and font.getlength(last + "…") > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + "…"
    return font, lines


def _line_height(font: ImageFont.FreeTypeFont) -> int:
    return int(font.size * 1.3)


# ---------------------------------------------------------------- drawing


def _background(size: tuple[int, int], look: Look) -> Image.Image:
    gradient = Image.linear_gradient("L")  # 256 x 256, black at the top to white
    mask = gradient.resize(size)
    if look.diagonal:  # half of top-to-bottom plus half of left-to-right
        across = gradient.transpose(Image.Transpose.ROTATE_90).resize(size)
        mask = Image.blend(mask, across, 0.5)
    top = Image.new("RGBA", size, (*look.top, 255))
    bottom = Image.new("RGBA", size, (*look.bottom, 255))
    return Image.composite(bottom, top, mask)


def _draw_lines(draw: ImageDraw.ImageDraw, lines: list[str], font: ImageFont.FreeTypeFont,
                x: tuple[int, int], y: int, colour: RGB, look: Look) -> int:
    """Draw lines from y down, aligned within x = (left, right); return the y below them."""
    left, right = x
    offset = max(2, font.size // 25)
    for line in lines:
        if look.align == "center":
            lx = left + (right - left - font.getlength(line)) / 2
        else:
            lx = left
        if look.shadow:
            draw.text((lx + offset, y + offset), line, font=font, fill=(0, 0, 0, 90))
        draw.text((lx, y), line, font=font, fill=colour)
        y += _line_height(font)
    return y


def render(title: str, subtitle: str | None, store_name: str, style: str, platform: str,
           font_path: str) -> bytes:
    """One event image as PNG bytes, sized for `platform`, drawn in `style`."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; one of {', '.join(STYLES)}")
    if platform not in PLATFORM_SIZES:
        raise ValueError(f"unknown platform {platform!r}; one of {', '.join(PLATFORM_SIZES)}")
    _check_font(font_path)
    look, (w, h) = STYLES[style], PLATFORM_SIZES[platform]
    unit = min(w, h)
    margin = unit * 12 // 100
    inner = (margin, margin, w - margin, h - margin)
    text_width = inner[2] - inner[0]
    inner_height = inner[3] - inner[1]

    image = _background((w, h), look)
    look.decorate(image, inner, look)
    draw = ImageDraw.Draw(image)

    title_font, title_lines = _fit(_drawable(font_path, title), font_path,
                                   (text_width, inner_height * 45 // 100), unit * 12 // 100, 3)
    sub_font, sub_lines = _fit(_drawable(font_path, subtitle or ""), font_path,
                               (text_width, inner_height * 28 // 100), unit * 5 // 100, 4)
    store_font, store_lines = _fit(_drawable(font_path, store_name), font_path,
                                   (text_width, unit // 10), unit * 45 // 1000, 1)
    gap = title_font.size // 2 if sub_lines else 0
    block = (len(title_lines) * _line_height(title_font) + gap
             + len(sub_lines) * _line_height(sub_font))
    # Title and subtitle: centred for FANCY, a little above the middle otherwise.
    room = inner_height - _line_height(store_font)
    y = inner[1] + (room - block) // (2 if look.align == "center" else 3)
    across = (inner[0], inner[2])
    y = _draw_lines(draw, title_lines, title_font, across, y, look.title, look)
    _draw_lines(draw, sub_lines, sub_font, across, y + gap, look.subtitle, look)
    _draw_store(draw, store_lines, store_font, inner, look)

    out = io.BytesIO()
    # Level 3: a fraction of the default's time for a slightly larger file.
    image.convert("RGB").save(out, "PNG", compress_level=3)
    return out.getvalue()


def _draw_store(draw: ImageDraw.ImageDraw, lines: list[str], font: ImageFont.FreeTypeFont,
                inner: Box, look: Look) -> None:
    """The store's name at the bottom, on a pill if the look has one."""
    if not lines:
        return
    y = inner[3] - _line_height(font)
    if look.pill:
        pad = font.size // 2
        width = font.getlength(lines[0])
        draw.rounded_rectangle((inner[0] - pad, y - pad // 2, inner[0] + width + pad,
                                y + font.size + pad), radius=pad, fill=look.accent)
    _draw_lines(draw, lines, font, (inner[0], inner[2]), y, look.store, look)
