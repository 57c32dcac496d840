"""Colours: the DAVIS (PASCAL-VOC) palette of annotation PNGs, each track id's colour and the ink of its tag.

Colours are a pure function of the track id, so an object keeps its colour across frames, runs, re-renders and
processes (``colour_for_id``); ``uvosam.render`` draws with them, ``uvosam.timeline`` labels its rows with them, the
DAVIS export writes ``davis_palette`` into its PNGs.
"""

from __future__ import annotations

from functools import lru_cache

PALETTE_MAX_LABEL = 255
"""The highest label an 8-bit palette PNG holds (0: background): at most 255 objects in a DAVIS PNG."""


def davis_palette() -> list[int]:
    """The standard PASCAL-VOC / DAVIS palette used by DAVIS annotation PNGs.

    Returns:
        768 ints: ``[r0, g0, b0, r1, g1, b1, ...]`` for indices 0..255 (0 black, 1 (128,0,0), 2 (0,128,0),
        3 (128,128,0), 4 (0,0,128), ...). The bits of the index are interleaved into the high bits of r, g, b.
    """
    return list(_palette())


@lru_cache(maxsize=1)
def _palette() -> tuple[int, ...]:
    palette = []
    for index in range(256):
        rgb = [0, 0, 0]
        value = index
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        palette.extend(rgb)
    return tuple(palette)


def _triples(rgb: bytes) -> tuple[tuple[int, int, int], ...]:
    """``b"\\x3c\\x0f\\xff..."`` as ``((60, 15, 255), ...)``."""
    return tuple((rgb[i], rgb[i + 1], rgb[i + 2]) for i in range(0, len(rgb), 3))


FIRST_COLOURS: tuple[tuple[int, int, int], ...] = _triples(
    bytes.fromhex(
        "3c0fff ffd200 1e694b 00f0f0 f06996 4b96ff d24b00 873c69 87b469 b4000f"
        "e1e196 9669a5 ff7800 e10f5a 3cc3f0 009678 871ea5 4bb4b4 4b69f0 96e1c3"
    )
)
"""The colours of ids 1-20, chosen (a max-min search over sRGB levels 0, 15, ..., 255 with CIELAB L* 35-88 and
chroma >= 30) so that any two stay apart in normal vision and for the colour-blind: their CIE76 distance in CIELAB
is >= 19 in normal vision, >= 13 in simulated deuteranopia and protanopia (Machado, Oliveira and Fernandes 2009,
severity 1, applied in linear RGB), >= 30 between consecutive ids in all three; the first ids are the farthest
apart. The golden-ratio walk these replace gave ids 6 and 14 a distance of 9, and 2 and 20 one of 2.5 in
protanopia (``tests/test_render.py`` measures it)."""

LATER_COLOURS: tuple[tuple[int, int, int], ...] = _triples(
    bytes.fromhex(
        "cc1f35 4b4bf0 ffa5a5 0078c3 691ed2 a50f87 2dd2a5 c3692d 1e5a87 e1a578 5aa5ff 2df0ff d2a53c 695a1e 00e1d2 "
        "a51e3c ffb400 ff4b78 b496d2 87f05a 5a2dff f02d87 1e78e1 e169a5 d2c369 78d2ff 964b69 787800 4b5af0 f0785a "
        "b41eb4 78964b 1eff2d 87b4ff 87f0b4 e10fa5 87693c 3cf087 b478c3 ff782d 87b487 5a1ee1 00b40f 4b87ff 962d78 "
        "9687e1 4b5a00 00d2d2 870fb4 ff87c3 96c34b ffc3f0 1e9687 3c5ad2 964b4b 873ca5 3c9669 ffd25a 4b87b4 e1e178"
    )
)
"""The colours of ids 21 on, a cycle of 60 (ids 21, 81, 141 ... share one), found by a max-min search over the
candidates of ``FIRST_COLOURS`` (id 21 keeps its earlier (204, 31, 53)). In normal vision / simulated deuteranopia
and protanopia, CIE76 in CIELAB: any two ids fewer than 20 apart (the labels of a DAVIS PNG; objects on screen
together mostly have near ids) are >= 14 / 7.5 apart (id 21's kept colour vs ids 10 and 3; any other two
>= 17 / 9.4), consecutive ids >= 30; an id from 21 on is >= 9 / 6 from every id 1-20, and ids 21-80 are >= 9 / 6
from each other. Ids past 20 took a golden-ratio walk of hues before: id 116 came within 1.4 of id 1, id 26 within
4.6 of id 13, ids 98 and 6 within 0.4 in deuteranopia, and id 2005 took id 31's very colour (``tests/test_render.py``
measures the table)."""


@lru_cache(maxsize=4096)
def colour_for_id(track_id: int) -> tuple[int, int, int]:
    """A bright RGB colour for a track id that stands apart from its neighbours' (the ids fewer than 20 away, for
    any number of ids), the same in every frame, run and process.

    Ids 1-20 take ``FIRST_COLOURS``, later ones ``LATER_COLOURS`` in turn, again from its start every 60 ids (a
    non-positive id takes that of the id a multiple of 60 above it: 0 that of 60).

    Args:
        track_id: any int (track ids are >= 1).

    Returns:
        ``(r, g, b)`` ints in [0, 255].
    """
    track_id = int(track_id)
    if 1 <= track_id <= len(FIRST_COLOURS):
        return FIRST_COLOURS[track_id - 1]
    return LATER_COLOURS[(track_id - len(FIRST_COLOURS) - 1) % len(LATER_COLOURS)]


def ink_for(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever contrasts more with ``colour`` (WCAG 2 contrast ratio): at least 4.58:1."""
    luminance = _relative_luminance(colour)
    return (0, 0, 0) if (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) else (255, 255, 255)


def _relative_luminance(colour: tuple[int, int, int]) -> float:
    """WCAG 2 relative luminance of an sRGB colour, in [0, 1]."""
    linear = [c / 3294.6 if c <= 10.31 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in colour]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
