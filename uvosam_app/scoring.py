"""Score: J&F of the masks of an export zip (Run's or Re-render's, of any session) against an uploaded zip of
ground-truth PNGs. Both are unpacked safely (``zip_images``); ground truth that cannot be scored is refused from its
headers, and every file is named as it is in its zip. Nothing here imports gradio.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from uvosam.config import is_integer
from uvosam.errors import InputError
from uvosam.eval.clip import (
    ground_truth_files,
    id_gaps_note,
    late_objects_note,
    pair_ground_truth,
    score_clip,
    unscored_tail_note,
)
from uvosam.eval.davis import DavisScores
from uvosam.eval.layout import scaled_run_note
from uvosam.eval.masks_io import WRITE_HINT
from uvosam.text import and_list, count
from uvosam_app.results import MAX_RECORD_BYTES
from uvosam_app.text import GROUND_TRUTH_FRAMES, score_markdown
from uvosam_app.zip_images import check_unpackable, extract_images


def score_masks_zip(gt_zip: str, masks_zip: str, *, max_files: int, work_dir: Path) -> str:
    """J&F of the masks of an export zip (its DAVIS PNGs) against a zip of ground-truth PNGs, as Markdown
    (``score_markdown``).

    Args:
        gt_zip: indexed PNGs (0 background, 1..K objects, 255 void), one per frame of the video or per processed
            frame, in name order, or of key frames only, named as those frames. masks_zip: the zip Run or
            Re-render made: its run.json says which video frames its masks are (``_MasksRecord``), whichever
            session made it.
        max_files: the most PNGs taken from either zip. work_dir: where both are unpacked (a temporary folder
            inside it, deleted after).

    Raises:
        InputError: a zip that is not one of those, ground truth that does not match the
            frames (``pair_ground_truth``) or that cannot be scored (``_check_ground_truth``). Files are named
            as they are in their zip, never by the temporary folder.
    """
    with tempfile.TemporaryDirectory(prefix="score-", dir=work_dir) as tmp:
        gt = _Unpacked.truth(gt_zip, Path(tmp, "gt"), max_files)
        res = _Unpacked.masks(masks_zip, Path(tmp, "res"), max_files)
        processed = [p.stem for p in ground_truth_files(res.folder)]
        record = _MasksRecord.of(masks_zip)
        indices, num_frames = record.frame_indices(len(processed))
        every_truth = ground_truth_files(gt.folder)
        names, truth = pair_ground_truth(every_truth, processed, indices, num_frames)
        size = _mask_size(res.folder / f"{names[0]}.png", res)
        _check_ground_truth(truth, size, gt, scaled=record.scaled)
        try:
            scores = score_clip(res.folder, truth, names)
        # damaged pixel data, ids over 20... (a plain ValueError is a bug: as it is)
        except InputError as err:
            message = res.in_zip_terms(gt.in_zip_terms(str(err)))
            raise InputError(message.replace(WRITE_HINT, _WRITE_HINT_FOR_UPLOADS)) from err
        # each file by its name only (the notes' default): where they are is said once (``_Unpacked.files_in``)
        notes = (
            id_gaps_note(truth[0]),
            late_objects_note(truth),
            unscored_tail_note(every_truth, truth),
        )
        note = " ".join(n for n in notes if n)
        note = f"{note} ({gt.files_in()})" if note else None
    return score_markdown(
        scores,
        record.tracks,
        len(names),
        note,
        processed=len(processed),
        missed=missed_objects_line(scores),
    )


def missed_objects_line(scores: DavisScores) -> str | None:
    """Markdown: why an object that none of the run's masks has (``ObjectScore.result_empty``; track "none" in the
    table) scores over 0: DAVIS counts a frame where neither the ground truth nor the masks have the object as
    perfect (J = F = 1; ``design/DAVIS_METRIC.md``), so such an object's J, F and J&F are the share of the frames
    scored where the ground truth does not have it. None when no object is missed, or a missed one scores 0 (it is
    in every frame)."""
    missed = [
        o for o in sorted(scores.objects, key=lambda o: o.gt_id) if o.result_empty and o.j_mean > 0
    ]
    if not missed:
        return None
    frames = len(missed[0].j_frames)
    # a frame without the object in the ground truth is the only one an empty mask scores in: J = 1 there, else 0
    absent = and_list([str(int(np.count_nonzero(o.j_frames == 1.0))) for o in missed])
    one = len(missed) == 1
    return (
        f"**Missed:** {'object' if one else 'objects'} {and_list([str(o.gt_id) for o in missed])} "
        f"{'is' if one else 'are'} in none of the run's masks, yet {'scores' if one else 'score'} "
        f"{and_list([f'{(o.j_mean + o.f_mean) / 2:.3f}' for o in missed])}: the ground truth does not have "
        f"{'it' if one else 'them'} in {absent} of the {count(frames, 'frame')} scored, and DAVIS counts a frame "
        "where neither the ground truth nor the masks have an object as perfect (J = F = 1)."
    )


def _truth_prefix(names: list[str]) -> str:
    """Where the ground truth's PNGs are in a zip of member ``names``: ``davis/`` in a masks zip of this app (its
    ``run.json`` at the root; its DAVIS palette PNGs are ground truth's format: a run scored against another), else
    anywhere (its one folder). A masks zip was refused ("has .png files in 5 folders (., cutouts/...)")."""
    ours = "run.json" in names and any(n.startswith("davis/") and n.endswith(".png") for n in names)
    return "davis/" if ours else ""


GROUND_TRUTH_FORMAT = (
    "8-bit palette (indexed) or grayscale PNGs whose pixel values are the object ids (0 background, 1..K "
    "objects, 255 void), as DAVIS Annotations are"
)
_WRITE_HINT_FOR_UPLOADS = "save it as an 8-bit palette (indexed) or grayscale PNG of object ids"
_MODE_NAMES = {
    "RGB": "an RGB",
    "RGBA": "an RGBA",
    "LA": "a grayscale + alpha",
    "PA": "a palette + alpha",
}


@dataclass(frozen=True)
class _Unpacked:
    """The PNGs of one folder of an uploaded zip, unpacked into ``folder``; named as in the zip for the user."""

    zip_name: str
    inside: PurePosixPath  # their folder in the zip ("." for its root)
    folder: Path

    @classmethod
    def masks(cls, zip_path: str, parent: Path, max_files: int) -> _Unpacked:
        """The DAVIS PNGs (``davis/``) of a masks zip that Run or Re-render made."""
        return cls._of(
            zip_path,
            parent,
            max_files,
            prefix="davis/",
            expected="Score takes the masks zip that Run or Re-render made.",
            one_folder="the one folder of this clip's masks",
        )

    @classmethod
    def truth(cls, zip_path: str, parent: Path, max_files: int) -> _Unpacked:
        """The ground truth's PNGs: its one folder, or a masks zip's DAVIS PNGs (``_truth_prefix``); the zip is
        listed once."""
        return cls._of(
            zip_path,
            parent,
            max_files,
            prefix=_truth_prefix,
            expected=f"The ground truth must be {GROUND_TRUTH_FORMAT}, in a .zip: {GROUND_TRUTH_FRAMES}.",
            one_folder="the one folder of this clip's ground-truth PNGs",
        )

    @classmethod
    def _of(
        cls,
        zip_path: str,
        parent: Path,
        max_files: int,
        *,
        prefix: str | Callable[[list[str]], str],
        expected: str,
        one_folder: str,
    ) -> _Unpacked:
        images = extract_images(
            zip_path,
            parent,
            prefix=prefix,
            max_files=max_files,
            max_bytes=1 << 30,
            expected=expected,
            one_folder=one_folder,
        )
        return cls(Path(zip_path).name, images.inside, images.folder)

    def where(self, file: Path) -> str:
        """``file`` (unpacked) as the user knows it: ``gt.zip: annot/00000.png``."""
        return f"{self.zip_name}: {self.inside / file.name}"

    def files_in(self) -> str:
        """Where its files are, as the user knows it: ``files in gt.zip: annot/`` (``files in gt.zip`` at its
        root)."""
        inside = "" if self.inside == PurePosixPath(".") else f": {self.inside}/"
        return f"files in {self.zip_name}{inside}"

    def in_zip_terms(self, message: str) -> str:
        """``message`` with the unpacked folder named by the zip: ``gt.zip/annot/00000.png``."""
        return message.replace(str(self.folder), str(PurePosixPath(self.zip_name, self.inside)))

    def unreadable(self, err: Exception) -> str:
        """Why PIL could not open an unpacked file, in the zip's terms: "no image inside" for an
        ``UnidentifiedImageError`` (whose message names the file by the server's path), else ``err``'s message."""
        return (
            "no image inside"
            if isinstance(err, UnidentifiedImageError)
            else self.in_zip_terms(str(err))
        )


def _mask_size(file: Path, masks: _Unpacked) -> tuple[int, int]:
    """(width, height) of a mask PNG of the export zip, from its header: the video's size."""
    try:
        with Image.open(file) as image:
            return image.size
    except (OSError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise InputError(
            f"{masks.where(file)} is not a readable mask PNG ({masks.unreadable(err)}); score the zip that Run or "
            "Re-render made"
        ) from None


def _check_ground_truth(
    files: Sequence[Path], size: tuple[int, int], gt: _Unpacked, *, scaled: str | None = None
) -> None:
    """Refuse, from their headers (no pixel is decoded), ground-truth PNGs that cannot be scored against masks
    of ``size`` (w, h): not an image, not one id per pixel (a colour rendering), another size (a huge one too;
    ``scaled``: why the masks have another size than the video's, ``_MasksRecord.scaled``).

    Raises:
        InputError: naming the file as it is in the zip, and saying what to upload instead.
    """
    at_size = scaled or (
        f"the masks are {size[0]}x{size[1]} (the video's size): give the ground truth at that size (resized "
        "with nearest-neighbour sampling, so that ids stay ids)"
    )
    for file in files:
        try:
            with Image.open(file) as image:
                mode, got = image.mode, image.size
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InputError(
                f"{gt.where(file)} has too many pixels to open, but {at_size}"
            ) from None
        except OSError as err:
            raise InputError(
                f"{gt.where(file)} is not a readable PNG image ({gt.unreadable(err)}); save the annotations as "
                f"{GROUND_TRUTH_FORMAT}"
            ) from None
        if Image.getmodebands(mode) != 1:
            raise InputError(
                f"{gt.where(file)} is {_MODE_NAMES.get(mode, f'a {mode}')} PNG; expected one object id per "
                "pixel (a colour rendering of the masks cannot be scored): save the annotations as "
                f"{GROUND_TRUTH_FORMAT}"
            )
        if got != size:
            raise InputError(f"{gt.where(file)} is {got[0]}x{got[1]} but {at_size}")


@dataclass(frozen=True)
class _MasksRecord:
    """What an export zip says of its masks besides the PNGs: ``tracks`` (DAVIS label -> track id, tracks.csv)
    and its run's frame selection (run.json's ``settings.stride`` and ``video.source_frames``; a re-render keeps
    its run's), None where the zip does not say (the masks are then one per frame of the video, which the PNGs'
    names, those of the frames, overrule where they match); ``scaled``: what to do when its run scaled the frames
    down (``scaled_run_note``), else None."""

    tracks: dict[int, int]
    stride: int | None
    source_frames: int | None
    scaled: str | None = None

    @classmethod
    def of(cls, masks_zip: str) -> _MasksRecord:
        """Read from the zip, opened once (its listing is parsed on opening).

        Raises:
            InputError: the zip has no tracks.csv with those columns, or one over ``MAX_RECORD_BYTES`` (not a zip
                that Run or Re-render made).
        """
        name = Path(masks_zip).name
        with zipfile.ZipFile(masks_zip) as zf:
            listed = set(zf.namelist())
            if "tracks.csv" not in listed:
                raise InputError(
                    f"{name} has no tracks.csv: score the zip that Run or Re-render made"
                )
            table = _record(zf, name, "tracks.csv")
            try:
                rows = csv.DictReader(io.StringIO(table.decode("utf-8")))
                tracks = {
                    int(r["davis_label"]): int(r["track_id"]) for r in rows if r["davis_label"]
                }
            except _UNREADABLE as err:
                raise InputError(
                    f"{name}: its tracks.csv has no readable davis_label and track_id "
                    f"columns ({err!r}); score the zip that Run or Re-render made"
                ) from None
            # refused like tracks.csv if its bytes cannot be read whole (too big, damaged); text that is no JSON
            # (a zip edited by hand) counts as none: its masks are then taken as one per frame
            raw = _record(zf, name, "run.json") if "run.json" in listed else None
            try:
                record = None if raw is None else json.loads(raw)
            except ValueError:
                record = None
        return cls(
            tracks,
            _count_at(record, "settings", "stride"),
            _count_at(record, "video", "source_frames"),
            scaled_run_note(record, _RUN_AT_SOURCE),
        )

    def frame_indices(self, processed: int) -> tuple[list[int], int]:
        """The video frame of each of the ``processed`` masks, and the video's frame count."""
        stride = self.stride or 1
        indices = [i * stride for i in range(processed)]
        return indices, max(self.source_frames or 0, indices[-1] + 1 if indices else 0)


_RUN_AT_SOURCE = (
    "with `uvosam segment`, or in an app whose host set UVOSAM_MAX_SIDE to {side} or more"
)
_UNREADABLE = (KeyError, TypeError, ValueError, zipfile.BadZipFile, zlib.error, EOFError, csv.Error)


def _record(archive: zipfile.ZipFile, name: str, member: str) -> bytes:
    """The bytes of the export zip's ``member`` (the zip ``name``), read whole once its listing shows it small.

    Raises:
        InputError: over ``MAX_RECORD_BYTES``, a member ``zipfile`` cannot unpack (``check_unpackable``), damaged
            data.
    """
    info = archive.getinfo(member)
    check_unpackable(name, {PurePosixPath(member): info})
    if info.file_size > MAX_RECORD_BYTES:
        raise InputError(
            f"{name}: its {member} is {info.file_size} bytes, over the {MAX_RECORD_BYTES} an export's can be; "
            "score the zip that Run or Re-render made"
        )
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:  # a bad CRC, cut or garbled data
        raise InputError(f"{name}: its {member} is damaged ({err}); zip the files again") from None


def _count_at(record: object, section: str, key: str) -> int | None:
    """``record[section][key]`` when it is a count (a positive integer), else None (a run.json edited by hand)."""
    part = record.get(section) if isinstance(record, dict) else None
    value = part.get(key) if isinstance(part, dict) else None
    return int(value) if is_integer(value) and value >= 1 else None
