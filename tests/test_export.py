import csv
import json
import zipfile
from dataclasses import replace

import numpy as np
import pytest
from export_helpers import mean_scores, results_from_video
from PIL import Image
from pycocotools import mask as mask_utils

from uvosam.colours import davis_palette
from uvosam.export import ExportWriter, make_zip
from uvosam.export_types import ExportOptions
from uvosam.testing import moving_shapes
from uvosam.types import FrameResult, select_tracks

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

CLASSES = ["object", "thing"]
ALL = ExportOptions(mattes=True)


def _export(tmp_path, results, *, options=ALL, **kwargs):
    height, width = results[0].image.shape[:2]
    with ExportWriter(
        tmp_path / "out",
        video_name="vid",
        class_names=CLASSES,
        height=height,
        width=width,
        options=options,
        **kwargs,
    ) as writer:
        for res in results:
            writer.add(res)
    return writer, writer.close()


def _read_png(path):
    with Image.open(path) as image:
        return image.mode, image.getpalette(), np.array(image)


def _expected_label_map(res, labels_of):
    out = np.zeros(res.image.shape[:2], np.uint8)
    for track_id, mask in zip(res.track_ids.tolist(), res.masks):
        out[mask] = labels_of.get(track_id, 0)
    return out


@pytest.fixture(scope="module")
def gapped():
    """3 objects; object 0 (the first track) is absent on frames 2-4, object 2 appears at frame 3."""
    video = moving_shapes(
        8, height=40, width=56, num_objects=3, seed=3, absent={0: range(2, 5), 2: range(3)}
    )
    return results_from_video(video)


def test_davis_pngs_palette_and_stable_ids(tmp_path, gapped):
    _, export = _export(tmp_path, gapped)
    assert export.davis_labels == {10: 1, 13: 2, 16: 3}
    for res in gapped:
        mode, palette, labels = _read_png(export.davis_dir / f"{res.frame_index:05d}.png")
        assert mode == "P" and palette[:768] == davis_palette()
        # the release shifted labels down when track 10 was absent; here each track keeps its label
        assert (labels == _expected_label_map(res, export.davis_labels)).all()
    assert sorted(p.name for p in export.davis_dir.iterdir()) == [f"{t:05d}.png" for t in range(8)]
    assert not (export.out_dir / ".work").exists()


def test_exactly_max_objects_tracks_are_all_painted(tmp_path, gapped):
    # 3 tracks and max_objects=3: no overflow, so the last track (slot 3) is painted too (slot <= max_objects)
    options = ExportOptions(cutouts=False, ytvis=False, results_json=False, max_objects=3)
    _, export = _export(tmp_path, gapped, options=options)
    assert export.davis_labels == {10: 1, 13: 2, 16: 3}
    for res in gapped:
        _, _, labels = _read_png(export.davis_dir / f"{res.frame_index:05d}.png")
        assert (labels == _expected_label_map(res, export.davis_labels)).all()
    assert (labels == 3).any()  # the last frame shows track 16


def test_at_most_20_ids_keeps_highest_scores_everywhere(tmp_path):
    n = 25
    absent = {k: range(k // 4) for k in range(n)}  # tracks keep appearing during the clip
    video = moving_shapes(9, height=48, width=64, num_objects=n, seed=1, absent=absent)
    rng = np.random.default_rng(0)
    results = results_from_video(video, base_scores=list(rng.uniform(0.2, 0.9, n)))
    _writer, export = _export(tmp_path, results, options=ExportOptions(cutouts=False))
    scores = mean_scores(results)
    top = sorted(scores, key=lambda i: -scores[i])[:20]
    first_seen = [int(i) for res in results for i in res.track_ids]
    order = sorted(top, key=first_seen.index)
    assert export.davis_labels == {track_id: k + 1 for k, track_id in enumerate(order)}
    assert order != sorted(scores, key=first_seen.index)[:20], "test must exercise the relabel pass"
    for res in results:
        _, _, labels = _read_png(export.davis_dir / f"{res.frame_index:05d}.png")
        assert labels.max() <= 20
        assert (labels == _expected_label_map(res, export.davis_labels)).all()
    assert len(export.tracks) == 25  # the JSON/CSV keep all tracks
    assert not (export.out_dir / ".work").exists()
    with open(export.tracks_csv) as handle:
        rows = list(csv.DictReader(handle))
    dropped = [r for r in rows if r["davis_label"] == ""]
    assert len(rows) == 25 and {int(r["track_id"]) for r in dropped} == set(scores) - set(top)


def test_more_tracks_than_a_palette_png_holds_are_left_out_never_wrapped(tmp_path):
    """300 one-pixel tracks on one frame, max_objects=255 (the most an 8-bit palette PNG holds): the 255 of highest
    score get labels 1..255 and the others none; label 256 would have wrapped to 0 (background), 300 to 44 (another
    object's)."""
    n, height, width = 300, 16, 20
    masks = np.zeros((n, height, width), bool)
    masks.reshape(n, -1)[np.arange(n), np.arange(n)] = True  # track k on pixel k
    ys, xs = np.divmod(np.arange(n), width)
    scores = np.linspace(0.9, 0.3, n, dtype=np.float32)[np.random.default_rng(0).permutation(n)]
    frame = FrameResult(
        frame_index=0,
        image=np.zeros((height, width, 3), np.uint8),
        track_ids=np.arange(1, n + 1),
        boxes_xyxy=np.stack([xs, ys, xs + 1, ys + 1], axis=1).astype(np.float32),
        scores=scores,
        labels=np.zeros(n, np.int64),
        masks=masks,
        mask_scores=np.ones(n, np.float32),
    )
    options = ExportOptions(cutouts=False, ytvis=False, timeline=False, max_objects=255)
    _, export = _export(tmp_path, [frame], options=options)
    kept = sorted(np.argsort(-scores, kind="stable")[:255] + 1)
    assert export.davis_labels == {int(track_id): k for k, track_id in enumerate(kept, start=1)}
    _, _, labels = _read_png(export.davis_dir / "00000.png")
    expected = np.zeros(n, np.uint8)
    expected[np.array(kept) - 1] = np.arange(1, 256)
    assert (labels.reshape(-1)[:n] == expected).all() and not labels.reshape(-1)[n:].any()
    assert len(export.tracks) == n
    readme = export.readme.read_text()
    assert "Left out of the PNGs here: tracks [" in readme


def test_a_palette_png_refuses_labels_it_cannot_hold(tmp_path):
    from uvosam.export_formats import write_palette_png

    for labels, told in [([[0, 300]], "0..300"), ([[-1, 2]], "-1..2"), ([[256]], "256..256")]:
        with pytest.raises(
            ValueError,
            match=rf"^write_palette_png: a.png: labels {told} do not fit a palette "
            r"PNG, whose 8-bit pixels hold 0..255 \(0: background\); number at most 255 objects",
        ):
            write_palette_png(tmp_path / "a.png", np.array(labels))
    assert not (tmp_path / "a.png").exists()
    write_palette_png(tmp_path / "b.png", np.array([[0, 255], [1, 7]], np.int64))
    assert _read_png(tmp_path / "b.png")[2].tolist() == [[0, 255], [1, 7]]
    with pytest.raises(
        ValueError,
        match=r"1\.\.255 \(labels in a DAVIS PNG, whose 8-bit pixels hold 255 .*"
        r"the cut-outs, results.json and tracks.csv keep every one\); got 256",
    ):
        ExportOptions(max_objects=256)


def test_a_dropped_track_leaves_no_hole_where_masks_overlap(tmp_path):
    """With ``SegmenterConfig(overlap="none")`` masks may overlap (later rows are painted on top). A track left out
    of the DAVIS PNGs must be absent there: the kept track under it keeps its pixels, before and after overflow."""

    def frame(t, scores):
        n, masks = len(scores), np.zeros((len(scores), 6, 6), bool)
        masks[0, :4] = True  # track 1, kept
        masks[2, :2] = True  # track 3 lies on top of track 1 and is dropped (lowest mean score)
        masks[1, 5], masks[n - 1, 4] = True, True
        return FrameResult(
            frame_index=t, image=np.zeros((6, 6, 3), np.uint8), track_ids=np.arange(1, n + 1),
            boxes_xyxy=np.zeros((n, 4), np.float32), scores=np.array(scores, np.float32),
            labels=np.zeros(n, np.int64), masks=masks, mask_scores=np.ones(n, np.float32),
        )  # fmt: skip

    results = [
        frame(0, [0.9, 0.8, 0.1]),
        frame(1, [0.9, 0.8, 0.1, 0.7]),
    ]  # track 4 overflows max_objects=3
    options = ExportOptions(
        cutouts=False, ytvis=False, results_json=False, tracks_csv=False, max_objects=3
    )
    _, export = _export(tmp_path, results, options=options)
    assert export.davis_labels == {1: 1, 2: 2, 4: 3}
    for res in results:
        kept = select_tracks(res, set(export.davis_labels))
        _, _, labels = _read_png(export.davis_dir / f"{res.frame_index:05d}.png")
        assert (labels == _expected_label_map(kept, export.davis_labels)).all()
        assert (labels[:4] == 1).all()


def _spans(results):
    """``{track_id: (first frame, last frame)}`` of the tracks in ``results``."""
    seen = {}
    for res in results:
        for track_id in res.track_ids.tolist():
            seen.setdefault(track_id, []).append(res.frame_index)
    return {track_id: (frames[0], frames[-1]) for track_id, frames in seen.items()}


def test_cutouts_and_mattes(tmp_path, gapped):
    """Over each track's span: its mask where present, blank where absent (track 10 on frames 2-4)."""
    _, export = _export(tmp_path, gapped)
    spans = _spans(gapped)
    assert spans == {10: (0, 7), 13: (0, 7), 16: (3, 7)}
    for res in gapped:
        present = dict(zip(res.track_ids.tolist(), res.masks))
        for track_id in (10, 13, 16):
            first, last = spans[track_id]
            if not first <= res.frame_index <= last:
                continue
            cut = np.array(
                Image.open(export.cutouts_dir / str(track_id) / f"{res.frame_index:05d}.png")
            )
            matte = np.array(
                Image.open(export.mattes_dir / str(track_id) / f"{res.frame_index:05d}.png")
            )
            mask = present.get(track_id, np.zeros(res.image.shape[:2], bool))
            assert cut.shape == (*res.image.shape[:2], 4)
            assert (cut[..., 3] == mask * 255).all() and (matte == mask * 255).all()
            assert (cut[mask, :3] == res.image[mask]).all() and (cut[~mask, :3] == 0).all()


def test_cutouts_can_keep_the_whole_frame_rgb(tmp_path, gapped):
    _, export = _export(tmp_path, gapped, options=ExportOptions(cutout_keep_frame_rgb=True))
    res = gapped[1]
    cut = np.array(Image.open(export.cutouts_dir / "13" / "00001.png"))
    assert (cut[..., :3] == res.image).all() and (cut[..., 3] == res.masks[1] * 255).all()


def test_results_json_exact_format(tmp_path, gapped):
    writer, export = _export(tmp_path, gapped)
    data = json.loads(export.results_json.read_text())
    assert [d["category_id"] for d in data] == [1, 2, 1]  # labels k % 2, + 1
    for k, entry in enumerate(data):
        assert set(entry) == {"video_id", "score", "category_id", "boxes"}
        assert entry["video_id"] == "vid" and len(entry["boxes"]) == 8
        track_id = 10 + 3 * k
        for res in gapped:
            rows = np.flatnonzero(res.track_ids == track_id)
            box = entry["boxes"][res.frame_index]
            if len(rows) == 0:
                assert box is None
            else:
                assert box == res.boxes_xyxy[rows[0]].tolist()
        assert entry["score"] == pytest.approx(mean_scores(gapped)[track_id], abs=1e-6)
    assert data[0]["boxes"][2:5] == [None, None, None]
    summary = writer.summaries()[2]
    assert (summary.track_id, summary.first_frame, summary.last_frame, summary.num_frames) == (
        16,
        3,
        7,
        5,
    )
    assert summary.class_name == "object" and summary.score == pytest.approx(data[2]["score"])


def test_tracks_csv_category_id_is_the_class_index_plus_one_as_in_results_json(tmp_path, gapped):
    _, export = _export(tmp_path, gapped, options=ExportOptions(cutouts=False, ytvis=False))
    with open(export.tracks_csv) as handle:
        rows = list(csv.DictReader(handle))
    data = json.loads(export.results_json.read_text())
    assert [int(r["track_id"]) for r in rows] == [10, 13, 16]
    assert [int(r["category_id"]) for r in rows] == [1, 2, 1]  # labels k % 2, + 1
    assert [int(r["category_id"]) for r in rows] == [d["category_id"] for d in data]
    assert [r["class_name"] for r in rows] == [CLASSES[0], CLASSES[1], CLASSES[0]]


def test_ytvis_rle_round_trip(tmp_path, gapped):
    _, export = _export(tmp_path, gapped, ytvis_video_id=42)
    data = json.loads(export.ytvis_json.read_text())
    assert len(data) == 3
    for k, entry in enumerate(data):
        assert set(entry) == {"video_id", "category_id", "score", "segmentations"}
        assert entry["video_id"] == 42
        for res in gapped:
            rows = np.flatnonzero(res.track_ids == 10 + 3 * k)
            rle = entry["segmentations"][res.frame_index]
            if len(rows) == 0:
                assert rle is None
                continue
            assert rle["size"] == list(res.image.shape[:2]) and isinstance(rle["counts"], str)
            # pycocotools takes the entry as written, str counts and all (README.txt says so)
            decoded = mask_utils.decode(rle)
            assert (decoded.astype(bool) == res.masks[rows[0]]).all()
            assert mask_utils.area(rle) == res.masks[rows[0]].sum()


def test_rle_masks_wait_on_disk_not_in_ram_until_close(tmp_path, gapped):
    """RAM must not grow with video length: each frame's RLE goes to a per-track spool file until close()."""
    writer = ExportWriter(
        tmp_path / "out", video_name="vid", class_names=CLASSES, height=40, width=56, options=ALL
    )
    for res in gapped:
        writer.add(res)
    seen = {tid: sum(tid in r.track_ids for r in gapped) for tid in (10, 13, 16)}
    for tid, rec in writer._records.items():
        assert not hasattr(rec, "rles")
        assert len(rec.rle_spool.read_text().splitlines()) == seen[tid]
    export = writer.close()
    assert not (tmp_path / "out" / ".work" / "vid").exists()
    assert [
        sum(s is not None for s in e["segmentations"])
        for e in json.loads(export.ytvis_json.read_text())
    ] == [seen[10], seen[13], seen[16]]


def test_zip_bundles_everything(tmp_path, gapped):
    writer, export = _export(tmp_path, gapped)
    zip_path = make_zip(export, tmp_path / "bundle.zip")
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        readme = archive.read("README.txt").decode()
        infos = {i.filename: i for i in archive.infolist()}
        png = archive.read("davis/vid/00003.png")
    on_disk = {
        p.relative_to(export.out_dir).as_posix() for p in export.out_dir.rglob("*") if p.is_file()
    }
    assert names == on_disk
    for name in (
        "README.txt",
        "results.json",
        "ytvis_results.json",
        "tracks.csv",
        "davis/vid/00000.png",
        "cutouts/vid/16/00003.png",
        "cutouts/vid/10/00003.png",  # a blank: track 10 is away on frames 2-4
        "mattes/vid/10/00007.png",
    ):
        assert name in names
    assert infos["results.json"].compress_type == zipfile.ZIP_DEFLATED
    assert infos["davis/vid/00000.png"].compress_type == zipfile.ZIP_STORED
    assert png == (export.davis_dir / "00003.png").read_bytes()
    for word in (
        "UVOSAM",
        "IDOL",
        "Segment Anything",
        "davis/vid",
        "cutouts",
        "mattes",
        "ytvis_results.json",
        "tracks.csv",
        "at most 20",
    ):
        assert word.lower() in readme.lower(), word
    # either mask model
    assert "prompt Segment Anything (SAM or SAM 2.1, as chosen)" in " ".join(readme.split())
    # credited like SAM
    assert 'N. Ravi et al., "SAM 2: Segment Anything in Images and Videos"' in readme
    # close() again gives the same result to zip
    assert make_zip(writer.close(), tmp_path / "again.zip").exists()


def test_readme_names_the_frame_files_as_written_and_says_how_to_read_the_files(tmp_path, gapped):
    """README.txt names the export's first and last frame files (a frame folder's own names, kept: they must match
    its ground truth), not a fixed 00000.png; it says to read the PNGs with PIL and that pycocotools takes the RLE
    entries as written (no advice to turn the counts into bytes)."""
    names = ["a:0", *(f"x {t}" for t in range(1, 7)), "ü7"]
    _, export = _export(tmp_path, gapped, frame_names=names)
    readme = " ".join(export.readme.read_text().split())
    assert "Frame file names follow the input's frames, unchanged" in readme
    assert "here a:0.png ... ü7.png." in readme and "e.g. 00000.png" not in readme
    assert sorted(p.name for p in export.davis_dir.iterdir()) == sorted(f"{n}.png" for n in names)
    assert "Read them with PIL" in readme and "cv2.imread gives the palette's colours" in readme
    assert "pycocotools takes the entries as written" in readme and "into bytes" not in readme
    _, plain = _export(tmp_path / "plain", gapped[:1])
    assert "here 00000.png." in plain.readme.read_text()


def test_readme_names_frame_files_only_as_they_were_written(tmp_path, gapped):
    """It said "here 00000.png ... 00007.png" of an export that wrote no per-frame file, and of cut-outs alone,
    whose files start where their track starts (track 16: frame 3)."""
    options = ExportOptions(davis=False, cutouts=False, ytvis=False, timeline=False)
    _, none = _export(tmp_path / "none", gapped, options=options)
    assert "Frame file names" not in none.readme.read_text() and not list(
        none.out_dir.rglob("*.png")
    )
    _, cutouts = _export(
        tmp_path / "cutouts", gapped, options=replace(options, cutouts=True), keep_ids={16}
    )
    readme = " ".join(cutouts.readme.read_text().split())
    assert "here 00003.png ... 00007.png." in readme
    written = sorted(p.name for p in (cutouts.cutouts_dir / "16").iterdir())
    assert (written[0], written[-1]) == ("00003.png", "00007.png")
    _, mattes = _export(
        tmp_path / "m", gapped, options=replace(options, mattes=True), keep_ids={99}
    )
    assert mattes.tracks == () and "Frame file names" not in mattes.readme.read_text()


def _boxes_readme(tmp_path, results, provenance):
    _, export = _export(tmp_path, results, provenance=provenance)
    readme = " ".join(export.readme.read_text().split())
    return readme[readme.index("The boxes are") : readme.index("ytvis_results.json")]


def test_readme_says_which_pixels_the_boxes_are_in(tmp_path, gapped):
    """results.json's boxes are in the pixels of the frames the run processed: a scaled run's README names both
    sizes and the scale (it said "pixels of the original frame", which the boxes of a --fit-side run are not)."""

    def record(width, height, fit_side=56):
        video = {
            "name": "vid",
            "width": 56,
            "height": 40,
            "source_width": width,
            "source_height": height,
        }
        return {"video": video, "settings": {"fit_side": fit_side}}

    assert _boxes_readme(tmp_path / "a", gapped, record(112, 80)) == (
        "The boxes are in pixels of the frames the run processed, 56x40 (the masks' size): the source's 112x80 "
        "frames scaled down (fit_side 56), scale 0.5: divide the boxes by 0.5 for the source's pixels. "
    )
    assert (
        "scale 0.504505 across and 0.493827 down: divide x by 0.504505 and y by 0.493827 for"
        in (_boxes_readme(tmp_path / "b", gapped, record(111, 81)))
    )
    same = _boxes_readme(tmp_path / "c", gapped, record(56, 40, None))
    assert same == "The boxes are in pixels of the original frame (56x40, the masks' size). "
    alone = _boxes_readme(
        tmp_path / "d", gapped, None
    )  # a writer given no record knows its frames only
    assert alone == "The boxes are in pixels of the frames (56x40, the masks' size). "


def test_options_frame_names_and_errors(tmp_path, gapped):
    names = [f"f{t}" for t in range(8)]
    options = ExportOptions(davis=True, cutouts=False, ytvis=False, full_sequences=False)
    _, export = _export(tmp_path, gapped, options=options, frame_names=names)
    assert export.cutouts_dir is None and export.ytvis_json is None and export.mattes_dir is None
    assert (export.davis_dir / "f7.png").exists()
    with ExportWriter(
        tmp_path / "o2", video_name="v", class_names=CLASSES, height=40, width=56
    ) as writer:
        with pytest.raises(ValueError, match="expected frame_index 0"):
            writer.add(gapped[1])
        with pytest.raises(ValueError, match="original size"):
            ExportWriter(
                tmp_path / "o3", video_name="v", class_names=CLASSES, height=4, width=5
            ).add(gapped[0])
    with pytest.raises(ValueError, match="plain file name"):
        ExportWriter(tmp_path / "o4", video_name="../x", class_names=CLASSES, height=4, width=5)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="write_threads must be a positive integer or None"):
            ExportOptions(write_threads=bad)


def test_full_sequences_off_writes_only_seen_frames(tmp_path, gapped):
    _, export = _export(tmp_path, gapped, options=ExportOptions(full_sequences=False))
    seen = sorted(p.stem for p in (export.cutouts_dir / "16").iterdir())
    assert seen == [f"{t:05d}" for t in range(3, 8)]
    away = sorted(p.stem for p in (export.cutouts_dir / "10").iterdir())
    assert away == [f"{t:05d}" for t in (0, 1, 5, 6, 7)]


def _results_of(frames_of, num_frames, height=12, width=16):
    """FrameResults in which track ``i`` is present on the frames ``frames_of[i]``, as a distinct small square."""
    image = np.arange(height * width * 3, dtype=np.uint8).reshape(height, width, 3)
    out = []
    for t in range(num_frames):
        ids = [i for i, frames in frames_of.items() if t in frames]
        masks = np.zeros((len(ids), height, width), bool)
        for row, i in enumerate(ids):
            y, x = divmod(i % 12, 4)
            masks[row, 4 * y : 4 * y + 3, 4 * x : 4 * x + 3] = True
        n, ids = len(ids), np.array(ids, np.int64)
        boxes, scores = np.tile(np.float32([0, 0, 3, 3]), (n, 1)), np.full(n, 0.9, np.float32)
        out.append(FrameResult(t, image, ids, boxes, scores, np.zeros(n, np.int64), masks, scores))
    return out


def _stems(folder):
    return sorted(int(p.stem) for p in folder.iterdir()) if folder.exists() else []


def test_full_sequences_span_a_tracks_first_to_last_frame(tmp_path):
    """Track 5 is seen on frames 2, 3 and 7 of 10: files 2-7 (blanks 4-6), none on 0-1 (before it) or 8-9 (after)."""
    results = _results_of({1: range(10), 5: {2, 3, 7}}, 10)
    _, export = _export(
        tmp_path, results, options=ExportOptions(mattes=True, davis=False, ytvis=False)
    )
    for kind in (export.cutouts_dir, export.mattes_dir):
        assert _stems(kind / "1") == list(range(10))
        assert _stems(kind / "5") == list(range(2, 8))
    for t in range(2, 8):
        cut = np.array(Image.open(export.cutouts_dir / "5" / f"{t:05d}.png"))
        matte = np.array(Image.open(export.mattes_dir / "5" / f"{t:05d}.png"))
        mask = results[t].masks[1] if t in (2, 3, 7) else np.zeros((12, 16), bool)
        assert cut.shape == (12, 16, 4) and matte.shape == (12, 16)
        assert (cut[..., 3] == mask * 255).all() and (matte == mask * 255).all()
        assert (cut[..., :3][~mask] == 0).all()


def test_a_track_born_late_writes_nothing_for_earlier_frames(tmp_path):
    results = _results_of({1: range(6), 2: range(4, 6)}, 6)
    _, export = _export(
        tmp_path, results, options=ExportOptions(mattes=True, davis=False, ytvis=False)
    )
    assert _stems(export.cutouts_dir / "2") == _stems(export.mattes_dir / "2") == [4, 5]


def test_cutout_files_are_the_sum_of_the_spans_not_frames_x_tracks(tmp_path):
    """60 frames; every 5 frames 3 new ids replace the old ones (36 tracks), each away on the middle frame of its 5:
    5 files per track (one blank), 180 in all, not 60 x 36. Without full sequences, the 4 frames seen."""
    frames_of = {i: {5 * (i // 3) + k for k in (0, 1, 3, 4)} for i in range(36)}
    results = _results_of(frames_of, 60)
    full = ExportOptions(mattes=True, davis=False, ytvis=False)
    _, export = _export(tmp_path / "full", results, options=full)
    assert len(list(export.cutouts_dir.rglob("*.png"))) == 36 * 5
    assert len(list(export.mattes_dir.rglob("*.png"))) == 36 * 5
    assert _stems(export.cutouts_dir / "7") == list(range(10, 15))
    seen_only = ExportOptions(mattes=True, davis=False, ytvis=False, full_sequences=False)
    _, export = _export(tmp_path / "seen", results, options=seen_only)
    assert len(list(export.cutouts_dir.rglob("*.png"))) == 36 * 4


def test_videos_can_share_one_davis_root(tmp_path, gapped):
    options = ExportOptions(cutouts=False, results_json=False, ytvis=False, tracks_csv=False)
    for name in ("seq_a", "seq_b"):
        with ExportWriter(
            tmp_path, video_name=name, class_names=CLASSES, height=40, width=56, options=options
        ) as w:
            for res in gapped:
                w.add(res)
    assert sorted(p.name for p in (tmp_path / "davis").iterdir()) == ["seq_a", "seq_b"]
    assert (
        len(list((tmp_path / "davis" / "seq_a").iterdir())) == 8
        and not (tmp_path / ".work").exists()
    )


def test_uint8_masks_and_empty_video(tmp_path, gapped):
    as_uint8 = [replace(r, masks=r.masks.astype(np.uint8)) for r in gapped[:2]]
    _, export = _export(tmp_path / "a", as_uint8)
    _, _, labels = _read_png(export.davis_dir / "00001.png")
    assert (labels == _expected_label_map(gapped[1], export.davis_labels)).all()
    with ExportWriter(
        tmp_path / "b", video_name="v", class_names=CLASSES, height=4, width=5
    ) as writer:
        pass
    empty = writer.close()
    assert (
        empty.num_frames == 0
        and empty.tracks == ()
        and json.loads(empty.results_json.read_text()) == []
    )
    assert "timeline.png" not in empty.readme.read_text()  # not written without frames: not listed
    with zipfile.ZipFile(make_zip(empty)) as archive:
        assert "README.txt" in archive.namelist()


def _export_threads():
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("uvosam-export")]


def test_image_writes_run_in_background_threads_and_finish_by_close(tmp_path, gapped, monkeypatch):
    """PNG encoding happens off the caller's thread; close() returns once every file is on disk; no thread stays."""
    import threading

    import uvosam.export_formats as fmt

    writers, original = set(), fmt.write_cutout_png
    monkeypatch.setattr(fmt, "write_cutout_png", lambda *a, **k: writers.add(threading.current_thread().name)
                        or original(*a, **k))  # fmt: skip
    _, export = _export(tmp_path, gapped)
    assert writers and all(name.startswith("uvosam-export") for name in writers)
    assert len(list(export.cutouts_dir.rglob("*.png"))) == 8 + 8 + 5  # tracks 10, 13 and 16's spans
    assert not list(export.out_dir.rglob("*.tmp"))
    assert not _export_threads()


def test_a_failed_background_write_is_raised_and_discard_leaves_nothing(
    tmp_path, gapped, monkeypatch
):
    import uvosam.export_formats as fmt

    def disk_full(path, *args, **kwargs):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(fmt, "write_matte_png", disk_full)
    writer = ExportWriter(
        tmp_path / "out", video_name="vid", class_names=CLASSES, height=40, width=56, options=ALL
    )
    with pytest.raises(OSError, match="No space left"):
        for res in gapped:
            writer.add(res)
        writer.close()
    writer.discard()
    assert not (tmp_path / "out").exists()
    assert not _export_threads()


def test_discard_after_close_deletes_what_the_writer_wrote_and_nothing_else(tmp_path, gapped):
    """A run can fail after its exports are closed (zipping them): they must go too, another video's files stay."""
    out = tmp_path / "out"
    (out / "davis" / "other").mkdir(parents=True)
    (out / "davis" / "other" / "00000.png").write_bytes(b"png")
    (out / "notes.txt").write_text("mine")
    writer, export = _export(
        tmp_path, gapped, options=ExportOptions(mattes=True, alpha_webm=True), fps=10
    )
    assert (
        export.tracks_csv.is_file()
        and export.alpha_webm.is_file()
        and export.timeline_png.is_file()
    )
    writer.discard()
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["davis/other/00000.png", "notes.txt"]


def test_a_zip_that_fails_leaves_no_file(tmp_path, gapped, monkeypatch):
    _, export = _export(tmp_path, gapped)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "write", disk_full)
    with pytest.raises(OSError, match="No space left"):
        make_zip(export, tmp_path / "bundle.zip")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_table_that_fails_to_write_leaves_no_tmp(tmp_path, gapped, monkeypatch):
    import uvosam.export_formats as fmt
    from uvosam import atomic_files

    def disk_full(path, *args, **kwargs):  # an atomic writer, as every one of the export's
        with atomic_files.replacing(path) as tmp:
            tmp.write_text("row 1")  # half written when the disk filled up
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(fmt, "write_tracks_csv", disk_full)
    with pytest.raises(OSError, match="No space left"):
        _export(tmp_path, gapped)
    assert not list((tmp_path / "out").glob("*.tmp"))


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_a_value_that_is_not_finite_is_refused_at_its_frame_naming_it(tmp_path, gapped, value):
    """The pipeline refuses such tracker output (``check_tracks``); a caller of ExportWriter of its own that gave
    one got "Out of range float values are not JSON compliant: inf" only at close(), naming no frame nor track,
    after every frame's PNGs were written. ``add`` refuses it with the pipeline's words (``types.track_problem``)."""
    third = gapped[3]
    boxes = np.where(np.arange(4) == 2, value, third.boxes_xyxy).astype(np.float32)
    wrong = [*gapped[:3], replace(third, boxes_xyxy=boxes), *gapped[4:]]
    box = f"[{boxes[0, 0]}, {boxes[0, 1]}, {value}, {boxes[0, 3]}]"
    with pytest.raises(ValueError) as caught:
        _export(tmp_path, wrong, options=ExportOptions(ytvis=False))
    assert str(caught.value).startswith(
        f"ExportWriter.add: frame 3's tracks have a box that is not finite (track {third.track_ids[0]}: box {box}, "
        f"score {third.scores[0]:.4g}; 2 of its 2 tracks); the exports take finite boxes, scores in [0, 1]"
    )
    assert not (tmp_path / "out" / "results.json").exists()
    assert not list((tmp_path / "out").glob("*.tmp"))
    score = np.where(np.arange(len(third)) == 1, value, third.scores).astype(np.float32)
    wrong = [*gapped[:3], replace(third, scores=score), *gapped[4:]]
    with pytest.raises(ValueError, match=rf"^ExportWriter.add: frame 3's tracks have a score that is not finite "
                       rf"\(track {third.track_ids[1]}: box "):  # fmt: skip
        _export(tmp_path, wrong, options=ExportOptions(results_json=False))
    assert not (tmp_path / "out" / "ytvis_results.json").exists()


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_the_json_tables_never_hold_a_value_that_is_not_finite(tmp_path, value):
    """The last guard, under ExportWriter's check: results.json is refused (the file as it was), not written with
    ``Infinity`` or ``NaN`` (which JSON readers refuse)."""
    import uvosam.export_formats as fmt

    record = fmt.TrackRecord(
        track_id=1, slot=1, label=0, first_frame=0, num_frames=1, score_sum=0.5
    )
    record.boxes[0] = [1.0, 2.0, float(value), 4.0]
    path = tmp_path / "results.json"
    path.write_text("[]\n")
    with pytest.raises(ValueError, match="not JSON compliant"):
        fmt.write_results_json(path, [record], video_id=1, num_frames=1)
    assert path.read_text() == "[]\n" and list(tmp_path.iterdir()) == [path]


def _decode_rgba(path, width, height):
    """Every frame of a WebM as (N, H, W, 4) RGBA, alpha kept (libvpx decodes it; ffmpeg's own VP9 decoder drops it)."""
    from proc import ffmpeg

    data = ffmpeg("-c:v", "libvpx-vp9", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgba", "-")
    return np.frombuffer(data, np.uint8).reshape(-1, height, width, 4)


def _iou(a, b):
    union = (a | b).sum()
    return (a & b).sum() / union if union else 1.0  # both empty: the same


def test_alpha_webm_shows_the_exported_tracks_over_transparency(tmp_path, gapped):
    from proc import ffmpeg_children

    options = ExportOptions(davis=False, cutouts=False, ytvis=False, alpha_webm=True)
    _, export = _export(tmp_path, gapped, options=options, fps=10, keep_ids={10, 16})
    assert export.alpha_webm == tmp_path / "out" / "vid_alpha.webm" and not ffmpeg_children()
    frames = _decode_rgba(export.alpha_webm, 56, 40)
    assert len(frames) == len(gapped)
    errors = []
    for res, frame in zip(gapped, frames):
        # frame 2 has neither: all transparent
        union = select_tracks(res, {10, 16}).masks.any(axis=0)
        assert _iou(frame[..., 3] > 127, union) > 0.95, res.frame_index  # VP9 is lossy at the edges
        inside = union & (frame[..., 3] > 250)
        errors.append(np.abs(frame[inside, :3].astype(int) - res.image[inside]).ravel())
    errors = np.concatenate(errors)
    assert errors.size > 1000 and errors.mean() < 16
    with zipfile.ZipFile(make_zip(export)) as archive:
        assert "vid_alpha.webm" in archive.namelist()
        assert "vid_alpha.webm" in archive.read("README.txt").decode()


def test_alpha_webm_of_an_odd_size_keeps_the_source_size(tmp_path):
    """VP9 takes odd sizes (only H.264's yuv420p needs padding): the WebM lines up with the source and the PNGs."""
    from uvosam.video import probe

    video = moving_shapes(3, height=39, width=55, num_objects=1, seed=1)
    _, export = _export(
        tmp_path, results_from_video(video), options=ExportOptions(alpha_webm=True), fps=24
    )
    info = probe(export.alpha_webm)
    assert (info.width, info.height) == (55, 39)
    frames = _decode_rgba(export.alpha_webm, 55, 39)
    assert len(frames) == 3 and _iou(frames[0, ..., 3] > 127, video.masks[0, 0]) > 0.95


def test_alpha_webm_needs_the_frame_rate_and_a_failed_export_leaves_no_file(tmp_path, gapped):
    from proc import ffmpeg_children

    options = ExportOptions(alpha_webm=True)
    with pytest.raises(ValueError, match=r"needs the frame rate; pass fps="):
        ExportWriter(
            tmp_path / "o",
            video_name="v",
            class_names=CLASSES,
            height=40,
            width=56,
            options=options,
        )
    writer = ExportWriter(tmp_path / "out", video_name="vid", class_names=CLASSES, height=40, width=56,
                          options=options, fps=10)  # fmt: skip
    with pytest.raises(ValueError, match="expected frame_index 2"), writer:
        for res in gapped[:2]:
            writer.add(res)
        assert ffmpeg_children()
        writer.add(gapped[3])  # a skipped frame: the run fails
    writer.discard()
    assert not (tmp_path / "out").exists() and not ffmpeg_children()


def test_a_close_that_fails_stops_the_alpha_encoder_and_removes_its_file(
    tmp_path, gapped, monkeypatch
):
    """A PNG write failing at the end surfaces in close(): the WebM's ffmpeg must not wait on for frames."""
    from proc import ffmpeg_children

    from uvosam.background_writes import BackgroundWrites

    real_wait = BackgroundWrites.wait

    def disk_full(self):
        real_wait(self)  # the threads are let go, then the last write turns out to have failed
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(BackgroundWrites, "wait", disk_full)
    options = ExportOptions(davis=False, ytvis=False, alpha_webm=True)
    writer = ExportWriter(tmp_path / "out", video_name="vid", class_names=CLASSES, height=40, width=56,
                          options=options, fps=10)  # fmt: skip
    with pytest.raises(OSError, match="No space left"), writer:
        for res in gapped:
            writer.add(res)
    assert not ffmpeg_children() and not (tmp_path / "out" / "vid_alpha.webm").exists()


@pytest.mark.parametrize("name", ["-clip", "cam:1"])
def test_alpha_webm_of_any_video_name_in_the_current_folder(tmp_path, monkeypatch, name):
    """A name ExportWriter accepts is never read by ffmpeg as an option ('-...') or a protocol ('cam:...')."""
    monkeypatch.chdir(tmp_path)
    (res,) = results_from_video(moving_shapes(1, height=8, width=8, num_objects=1, seed=1))
    options = ExportOptions(davis=False, cutouts=False, ytvis=False, alpha_webm=True)
    with ExportWriter(
        ".", video_name=name, class_names=CLASSES, height=8, width=8, options=options, fps=5
    ) as w:
        w.add(res)
    assert (tmp_path / f"{name}_alpha.webm").stat().st_size > 0
