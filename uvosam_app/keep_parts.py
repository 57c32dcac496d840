"""*Tracks to keep* once a Re-render split tracks: the choices it then offers (the run's tracks and the parts the split
gave new ids, ``keep_choices``), what the page remembers of them (``KeepOffer``) and what the next re-render's keep
ids mean (``rerender_keep``).

The page alone offers the parts: a page-only event after each Re-render (``app.py``) reads what it did from its zip's
run.json (``rerender_record``) and sets the choices and the ``KeepOffer``; an API client's ``/rerender`` has none,
and its keep ids name the run's tracks, each kept with its parts, as before. Nothing here imports gradio.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uvosam.job_types import JobResult
from uvosam.provenance import read_record
from uvosam_app.results import zip_run_record

SplitKey = tuple[tuple[int, tuple[int, ...]], ...]


def split_key(split: Mapping[Any, Sequence[int]] | None) -> SplitKey:
    """A split ``{track_id: [frames]}`` (``parse_split``'s, or run.json's ``rerender.split`` with string keys) in one
    comparable form: sorted, each frame once."""
    return tuple(
        sorted(
            (int(track), tuple(sorted({int(f) for f in frames})))
            for track, frames in (split or {}).items()
        )
    )


@dataclass(frozen=True)
class KeepOffer:
    """What *Tracks to keep* offers after a page's Re-render: the ids once split by ``split`` (a ``split_key``) of
    the run in ``run_dir``; ``parts`` are the ids the split gave the parts (none without a split)."""

    run_dir: Path
    split: SplitKey
    parts: frozenset[int]


def keep_choices(
    tracks: Sequence[tuple[int, str]],
    split_ids: Mapping[tuple[int, int], int] | None = None,
    merge: Mapping[int, int] | None = None,
) -> list[tuple[str, int]]:
    """*Tracks to keep*'s (label, id) choices: the run's ``tracks`` (id, class name), then the parts a split gave
    new ids, ``{(track_id, frame): new_id}``, each labelled with its track and frame ("#8 person (#3 from frame
    120)"); an id that ``merge`` (``{source: target}``, ids once split) merges into another says so ("#8 person (#3
    from frame 120, merged into #2)": after a merge the table lists its target only, and the list looked stale)."""
    merged = {int(source): int(target) for source, target in (merge or {}).items()}

    def into(track: int) -> str:
        return f"merged into #{merged[track]}" if track in merged else ""

    choices = [
        (f"#{track} {name}" + (f" ({into(track)})" if into(track) else ""), track)
        for track, name in tracks
    ]
    names = dict(tracks)
    for (track, frame), new in sorted((split_ids or {}).items(), key=lambda item: item[1]):
        name = f" {names[track]}" if track in names else ""
        where = ", ".join(part for part in (f"#{track} from frame {frame}", into(new)) if part)
        choices.append((f"#{new}{name} ({where})", new))
    return choices


def rerender_record(masks_zip: str | Path) -> dict[str, Any] | None:
    """The ``rerender`` section of a zip's run.json (``uvosam.provenance.rerender_record``, read by
    ``results.zip_run_record``): ``split``, ``split_ids`` (``{"3@120": 8}``: ``merge_hints.recorded_split_ids``),
    ``keep_ids`` (the ids once split kept, or None: all) and ``run_created_utc`` (the run's); None for a Run's zip or
    one without a (readable) run.json."""
    with zipfile.ZipFile(masks_zip) as archive:
        section = zip_run_record(archive).get("rerender")
    return section if isinstance(section, dict) else None


def run_created_utc(result: JobResult) -> str | None:
    """When a Run's run started, as its run.json says (``created_utc``); a re-render of its masks names it so
    (``rerender_record``'s ``run_created_utc``). None: its export wrote no run.json."""
    record = read_record(result.export.run_json) if result.export.run_json else None
    created = (record or {}).get("created_utc")
    return created if isinstance(created, str) else None


def rerender_keep(
    keep: Sequence[int],
    split: Mapping[int, Sequence[int]],
    offer: KeepOffer | None,
    run_dir: Path,
) -> tuple[list[int], bool]:
    """What a re-render's ``keep`` ids mean, given the page's ``offer`` (None over the API): (the ids to keep,
    whether each is kept with its split-off parts, ``rerender_iter(keep_split_parts=...)``).

    When ``split`` is the one the choices were offered for (of this run), ``keep`` names ids once split: a part
    unticked is dropped. Otherwise (no offer, or Split tracks changed) ``keep`` names the run's tracks, each kept
    with its parts; the ids of the former split's parts are left out (they name no track of this split)."""
    if offer is None or offer.run_dir != run_dir:
        return list(keep), True
    if offer.split == split_key(split):
        return list(keep), False
    return [k for k in keep if k not in offer.parts], True
