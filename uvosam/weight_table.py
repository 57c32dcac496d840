"""The table of known weight files: ``WEIGHTS`` (name -> ``WeightSpec``: Hub repo, file, size, SHA-256, URL), and
which entry a name or a path means.

Finding, downloading and verifying the files is ``uvosam.hub`` (and ``uvosam.weight_checksums``); loading them is
``uvosam.weight_loading``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from uvosam.config import SEGMENTER_MODEL_TYPES

TABLE_DOC = Path(__file__).with_name("weights.md")
"""The table of weight files with their sizes, checksums and sources; shipped with the package, so messages name it
by this path."""


@dataclass(frozen=True)
class WeightSpec:
    """One known weight file.

    Attributes:
        name: key in ``WEIGHTS`` (e.g. ``"sam_vit_h"``).
        repo_id: Hugging Face Hub model repo holding the file, or ``None`` if it is not on the Hub.
        filename: path of the file inside ``repo_id`` (its basename is the name looked for in
            ``checkpoints/``).
        sha256: expected SHA-256, lowercase hex; ``None`` when not published (then the file's hash is
            computed once and logged, and only ``size_bytes`` is checked, when known).
        size_bytes: expected size in bytes, or ``None`` when not published.
        url: direct public download URL used as a fallback (and shown in error messages), or
            ``None``.
        description: one line for humans.
        tracker: a tracker checkpoint (IDOL / UVOSAM); else a mask model's (SAM, SAM 2.1).
    """

    name: str
    repo_id: str | None
    filename: str
    sha256: str | None
    size_bytes: int | None
    url: str | None = None
    description: str = ""
    tracker: bool = False

    @property
    def basename(self) -> str:
        return PurePosixPath(self.filename).name

    @property
    def hub_url(self) -> str | None:
        if self.repo_id is None:
            return None
        return f"https://huggingface.co/{self.repo_id}/resolve/main/{self.filename}"

    @property
    def redownload_hint(self) -> str:
        """What to do with a bad copy of this file: ``"Delete it and download it again (<its URL>)."``"""
        where = self.hub_url or self.url or f"see {TABLE_DOC}"
        return f"Delete it and download it again ({where})."

    @property
    def size_text(self) -> str:
        """The expected size for messages: ``"375,042,383 bytes"`` or ``"size not published"``."""
        return f"{self.size_bytes:,} bytes" if self.size_bytes is not None else "size not published"


_SAM_REPO = "ybelkada/segment-anything"
_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"

_SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"

_IDOL_REPO = "QHL067/VNext_ECCV"
DAVIS_REPO_ENV = "UVOSAM_DAVIS_REPO"
"""Env var naming a Hub repo that holds the release's ``davis.pth`` (``owner/name`` or ``owner/name:path``)."""


def _idol(name: str, filename: str, classes: str, size: int | None = None) -> WeightSpec:
    return WeightSpec(
        name=name,
        repo_id=_IDOL_REPO,
        filename=f"IDOL/{filename}",
        sha256=None,
        size_bytes=size,
        description=f"IDOL ResNet-50 tracker (VNext release), {classes}",
        tracker=True,
    )


def _sam(
    model: str, suffix: str, sha256: str, size: int, note: str = "original segment_anything .pth"
) -> WeightSpec:
    """The SAM checkpoint of ``model`` (``vit_b``...): ``sam_<model>_<suffix>.pth`` (Meta's names end in a hash
    prefix), with its checksum and size."""
    filename = f"sam_{model}_{suffix}.pth"
    return WeightSpec(
        name=f"sam_{model}",
        repo_id=_SAM_REPO,
        filename=f"checkpoints/{filename}",
        sha256=sha256,
        size_bytes=size,
        url=_SAM_URL + filename,
        description=f"Segment Anything ViT-{model[-1].upper()} ({note})",
    )


def _sam2(size: str, repo_size: str, params: str) -> WeightSpec:
    """A SAM 2.1 checkpoint (Meta publishes no checksums; the Hub repos are Meta's own)."""
    return WeightSpec(
        name=f"sam2.1_{size}",
        repo_id=f"facebook/sam2.1-hiera-{repo_size}",
        filename=f"sam2.1_hiera_{size}.pt",
        sha256=None,
        size_bytes=None,
        url=_SAM2_URL + f"sam2.1_hiera_{size}.pt",
        description=f"SAM 2.1 Hiera-{repo_size} image+video model, {params} parameters (its image path is used)",
    )


# To add a file, append a WeightSpec; the key is its ``name``.
_SPECS = (
    _sam(
        "vit_b",
        "01ec64",
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        375_042_383,
    ),
    _sam(
        "vit_l",
        "0b3195",
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        1_249_524_607,
    ),
    _sam(
        "vit_h",
        "4b8939",
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        2_564_550_879,
        "original .pth; the one the UVOSAM release uses",
    ),
    _sam2("tiny", "tiny", "39M"),
    _sam2("small", "small", "46M"),
    _sam2("base_plus", "base-plus", "81M"),
    _sam2("large", "large", "224M"),
    _idol("idol-ytvis19-r50", "YTVIS19_R50_502AP.pth", "YouTube-VIS 2019, 40 classes, AP 50.2"),
    _idol("idol-ytvis21-r50", "YTVIS21_R50_478AP.pth", "YouTube-VIS 2021, 40 classes, AP 47.7"),
    _idol("idol-ovis-r50", "OVIS_R50_294AP.pth", "OVIS, 25 classes, AP 29.5", 172_791_667),
    _idol("idol-coco-r50", "cocopretrain_R50.pth", "COCO pre-training, 80 classes"),
    WeightSpec(
        name="uvosam-davis-r50",
        repo_id=None,
        filename="davis.pth",
        sha256=None,
        size_bytes=None,
        url="https://cloudbook-public-daily.oss-cn-hangzhou.aliyuncs.com/UVOSAM/davis.pth",
        description=(
            "the UVOSAM release's single-class tracker (not on the Hub; set "
            f"{DAVIS_REPO_ENV}=owner/name[:path] to use a Hub copy)"
        ),
        tracker=True,
    ),
)
WEIGHTS: dict[str, WeightSpec] = {spec.name: spec for spec in _SPECS}
TRACKERS: tuple[str, ...] = tuple(spec.name for spec in _SPECS if spec.tracker)
"""The tracker weights' names, in the table's order (the app offers them in this order)."""


def unknown_weights_message(
    value: str, role: str | None, found: str, *, also: tuple[str, ...] = ()
) -> str:
    """What a weight name that is neither a known name nor a file is told (the library's ``resolve`` and the CLI's
    ``--tracker``/``--sam`` checks, which put the option first): the names of its ``role`` only.

    Args:
        value: the name or path given.
        role: ``"tracker"``, ``"sam"`` (SAM / SAM 2.1), or None (any weight file).
        found: what is at the path instead ("no file at ..."), for the parenthesis.
        also: further words the caller accepts, listed first (the CLI's ``none``).
    """
    if role == "tracker":
        names = [*also, *(n for n, spec in WEIGHTS.items() if spec.tracker)]
        return (
            f"{value} is neither a tracker weight name nor a checkpoint file ({found}); expected one of "
            f"{', '.join(names)}, or the path of an IDOL / UVOSAM tracker checkpoint"
        )
    if role == "sam":
        keys = [
            n for n, spec in WEIGHTS.items() if not spec.tracker and n not in SEGMENTER_MODEL_TYPES
        ]
        return (
            f"{value} is neither a SAM / SAM 2.1 model nor a checkpoint file ({found}); expected one of "
            f"{', '.join(SEGMENTER_MODEL_TYPES)} (also as {', '.join(keys)}), or the path of a SAM / SAM 2.1 "
            "checkpoint"
        )
    return (
        f"{value} is neither a weight name nor a checkpoint file ({found}); expected one of {', '.join(WEIGHTS)}, "
        "or the path of a checkpoint"
    )


def weights_label(name_or_path: str | os.PathLike) -> str:
    """How a weight file is named in an export's ``run.json``: a ``WEIGHTS`` key as it is (``"idol-ytvis19-r50"``),
    anything else by its file name only (``"/data/ckpt/my_model.pth"`` -> ``"my_model.pth"``: no folder of the
    machine that ran it)."""
    if isinstance(name_or_path, str) and name_or_path in WEIGHTS:
        return name_or_path
    return Path(name_or_path).name


def lookup(name_or_path: str | os.PathLike) -> tuple[WeightSpec | None, Path | None]:
    """A table key -> (spec, None); a path -> (spec with that basename or None, path); see ``_with_env``."""
    if isinstance(name_or_path, str) and name_or_path in WEIGHTS:
        return _with_env(WEIGHTS[name_or_path]), None
    path = Path(name_or_path).expanduser()
    by_basename = [s for s in WEIGHTS.values() if s.basename == path.name]
    return (_with_env(by_basename[0]) if by_basename else None), path


def _with_env(spec: WeightSpec) -> WeightSpec:
    """The davis.pth spec gains a Hub location when ``UVOSAM_DAVIS_REPO`` is set."""
    env = os.environ.get(DAVIS_REPO_ENV, "").strip()
    if spec.name != "uvosam-davis-r50" or not env:
        return spec
    repo, _, filename = env.partition(":")
    return replace(spec, repo_id=repo, filename=filename or spec.filename)
