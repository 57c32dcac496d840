"""run_job with a mask cache, then rerender a subset of tracks without running any model."""

import json
import re
import shutil
import zipfile

import numpy as np
import pytest
from clip_helpers import write_clip
from doubles import MovingBoxTracker
from PIL import Image
from proc import ffmpeg

import uvosam_cli
from uvosam.export_types import ExportOptions
from uvosam.job import rerender, rerender_iter, run_job
from uvosam.job_plan import run_output
from uvosam.job_types import SOURCE_GONE, SOURCE_REPLACED, JobOptions
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.testing import moving_shapes
from uvosam.video import probe


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", 10, 64, 48, fps=10, seed=3)


@pytest.fixture(scope="module")
def cached_run(clip, tmp_path_factory, tiny_sam_model):
    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    work = tmp_path_factory.mktemp("run")
    steps = list(run_job(pipe, clip, work, JobOptions(cache=True, chunk_seconds=0.5)))
    return steps[-1].result


def _davis_labels(zip_path):
    with zipfile.ZipFile(zip_path) as zf:
        pngs = sorted(n for n in zf.namelist() if n.startswith("davis/") and n.endswith(".png"))
        labels = set()
        for name in pngs:
            with zf.open(name) as f:
                labels |= set(np.unique(np.asarray(Image.open(f))).tolist())
        return pngs, labels, zf.namelist()


def test_cached_run_records_what_rerender_needs(cached_run):
    assert cached_run.cache_dir is not None and (cached_run.cache_dir / "meta.json").is_file()
    meta = json.loads((cached_run.cache_dir / "meta.json").read_text())["meta"]
    assert meta["class_names"] == ["person", "dog", "car"]
    assert meta["frame_names"] == [f"{i:05d}" for i in range(10)]
    assert [t.track_id for t in cached_run.tracks] == [1, 2]


def test_rerender_drops_a_track_everywhere(cached_run, tmp_path):
    out = rerender(cached_run.cache_dir, tmp_path, keep_ids=[2], options=JobOptions())
    assert [t.track_id for t in out.tracks] == [2]
    assert out.cache_dir == cached_run.cache_dir and out.num_frames == 10
    pngs, labels, names = _davis_labels(out.zip_path)
    assert len(pngs) == 10 and labels == {0, 1}  # track 2 is relabelled 1 among the kept tracks
    assert not any(n.startswith("cutouts/clip/1/") for n in names)
    assert any(n.startswith("cutouts/clip/2/") for n in names)
    with zipfile.ZipFile(out.zip_path) as zf:
        results = json.loads(zf.read("results.json"))
        ytvis = json.loads(zf.read("ytvis_results.json"))
        csv_rows = zf.read("tracks.csv").decode().strip().splitlines()
    assert [r["category_id"] for r in results] == [2]  # only track 2 ("dog", label 1) is left
    assert [r["category_id"] for r in ytvis] == [2]
    assert len(csv_rows) == 2 and csv_rows[1].split(",")[0] == "2"
    info = probe(out.overlay_mp4)
    assert (info.num_frames, info.width, info.height) == (10, 64, 48)


def test_rerender_all_tracks_matches_the_run(cached_run, tmp_path):
    out = rerender(cached_run.cache_dir, tmp_path)
    assert out.tracks == cached_run.tracks
    _, labels, _ = _davis_labels(out.zip_path)
    _, run_labels, _ = _davis_labels(cached_run.zip_path)
    assert labels == run_labels == {0, 1, 2}


def test_rerender_iter_streams_chunks_and_can_be_closed(cached_run, tmp_path):
    steps = rerender_iter(
        cached_run.cache_dir, tmp_path, options=JobOptions(chunk_seconds=0.5, output_max_side=32)
    )
    first = [next(steps) for _ in range(6)]
    assert any(s.chunk is not None and s.chunk.is_file() for s in first)
    assert first[0].preview.shape == (24, 32, 3)
    steps.close()
    assert not (tmp_path / "clip_overlay.mp4").exists()  # the unfinished full video was removed


def test_an_odd_output_max_side_gives_even_sides_none_over_it(cached_run, tmp_path):
    """64x48 at 31: 31x23 used to be padded to 32x24 by the encoder, one pixel over the limit."""
    out = rerender(cached_run.cache_dir, tmp_path, options=JobOptions(output_max_side=31))
    info = probe(out.overlay_mp4)
    assert (info.width, info.height) == (30, 22)


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((640, 360), 101, (100, 56)),  # was 102x58
        ((360, 640), 31, (16, 30)),  # portrait; was 18x31, padded to 18x32
        ((101, 57), 101, (100, 56)),  # fits, but its padded 102x58 does not
        ((101, 57), 102, (101, 57)),  # padded 102x58 fits: the source size
        ((64, 48), 32, (32, 24)),
        ((640, 360), None, (640, 360)),
        ((1000, 3), 10, (10, 2)),  # never under 2
    ],
)
def test_overlay_size_is_even_and_never_over_the_limit(size, max_side, expected):
    from uvosam.job_outputs import overlay_size

    assert overlay_size(*size, max_side) == expected


def test_overlay_size_keeps_the_aspect_as_closely_as_even_sides_allow():
    from uvosam.job_outputs import overlay_size

    for width, height, max_side in [
        (w, h, m) for w in (37, 64, 641) for h in (21, 48, 359) for m in (17, 30, 33)
    ]:
        out_w, out_h = overlay_size(width, height, max_side)
        assert out_w % 2 == out_h % 2 == 0 and max(out_w, out_h) in (max_side, max_side - 1)
        scaled_short = min(width, height) * max(out_w, out_h) / max(width, height)
        assert abs(min(out_w, out_h) - max(2, scaled_short)) <= 1


def test_job_options_refuse_an_output_max_side_under_2():
    with pytest.raises(ValueError, match="output_max_side must be at least 2 .* got 1"):
        JobOptions(output_max_side=1)


def test_rerender_refuses_a_folder_that_is_not_a_cache(tmp_path):
    with pytest.raises(ValueError, match="not a finished run_job cache"):
        rerender(tmp_path / "nothing" / "cache", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # no nothing/cache/meta.json made on the way


def test_rerender_refuses_the_cache_of_a_run_that_did_not_finish(clip, tmp_path, tiny_sam_model):
    """A cache as a killed run leaves it (copied mid-run): not re-rendered into a shorter video."""
    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    steps = run_job(pipe, clip, tmp_path / "run", JobOptions(cache=True))
    for _ in range(4):
        next(steps)
    shutil.copytree(tmp_path / "run" / "cache", tmp_path / "killed")
    steps.close()
    with pytest.raises(
        ValueError, match=r"did not finish \(it holds 4 frames.*run the video again"
    ):
        rerender(tmp_path / "killed", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rerender_refuses_a_cache_with_frames_missing(cached_run, tmp_path):
    cache = shutil.copytree(cached_run.cache_dir, tmp_path / "cache")
    (cache / "frame_0000009.npz").unlink()
    with pytest.raises(ValueError, match="holds 9 of the 10 frames its run wrote"):
        rerender(cache, tmp_path / "out")


@pytest.mark.parametrize("found", [None, 2], ids=["no_number", "another"])
def test_rerender_refuses_a_cache_of_another_format_saying_to_run_again(
    cached_run, tmp_path, capsys, found
):
    """A cache without this version's format number (a development build's) or with another is not half read: the
    library and ``uvosam rerender`` say what they found and to make the run again."""
    run = shutil.copytree(cached_run.cache_dir.parent, tmp_path / "run")
    info = json.loads((run / "cache" / "meta.json").read_text())
    assert info.pop("cache_format") == 1
    if found is not None:
        info["cache_format"] = found
    (run / "cache" / "meta.json").write_text(json.dumps(info))
    said = (
        rf"cache at .*cache has {'no format number' if found is None else 'format 2'}"
        r".*reads format 1\. Make the run again"
    )
    with pytest.raises(ValueError, match=said):
        rerender(run / "cache", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    assert uvosam_cli.main(["rerender", str(run)]) == 2
    assert re.search(said, capsys.readouterr().err)
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


def test_rerender_refuses_a_run_cache_whose_meta_lacks_keys(cached_run, tmp_path, capsys):
    """A run's meta.json without video_name crashed `uvosam rerender` with a KeyError traceback."""
    run = shutil.copytree(cached_run.cache_dir.parent, tmp_path / "run")
    info = json.loads((run / "cache" / "meta.json").read_text())
    del info["meta"]["video_name"], info["meta"]["fps"]
    (run / "cache" / "meta.json").write_text(json.dumps(info))
    said = (
        f"the mask cache at {run / 'cache'} is incomplete or damaged (meta.json lacks video_name, fps); make the "
        "run again with its cache on (`uvosam segment ... --cache`; Python: JobOptions(cache=True))"
    )
    with pytest.raises(ValueError) as err:
        rerender(run / "cache", tmp_path / "out")
    assert str(err.value) == said
    assert uvosam_cli.main(["rerender", str(run), "--keep", "1"]) == 2
    assert capsys.readouterr().err == f"uvosam rerender: error: {said}\n"


@pytest.mark.parametrize(
    "key, value, why",
    [
        ("frame_names", None, "meta.json's frame_names is a JSON NoneType"),
        ("output", None, "meta.json's output is a JSON NoneType"),
        ("info", [], "meta.json's info is a JSON list"),
        (
            "info",
            {},
            (
                "meta.json's info is not a video's (it lacks path, fps, num_frames, width, height, rotation, "
                "duration_s, is_folder, frame_names)"
            ),
        ),
    ],
)
def test_rerender_refuses_a_run_cache_whose_meta_has_values_of_another_type(
    cached_run, tmp_path, capsys, key, value, why
):
    """With every key there but a value of another type (frame_names null, info a list), `uvosam rerender` ended
    in a TypeError or KeyError traceback."""
    run = shutil.copytree(cached_run.cache_dir.parent, tmp_path / "run")
    info = json.loads((run / "cache" / "meta.json").read_text())
    info["meta"][key] = value
    (run / "cache" / "meta.json").write_text(json.dumps(info))
    with pytest.raises(
        ValueError, match=re.escape(f"is incomplete or damaged ({why}); make the run again")
    ):
        rerender(run / "cache", tmp_path / "out")
    assert uvosam_cli.main(["rerender", str(run)]) == 2
    assert why in capsys.readouterr().err


def test_a_bug_reading_a_run_meta_is_not_told_as_a_damaged_cache(cached_run, tmp_path, monkeypatch):
    """``check_run_meta`` caught ``info_from_meta``'s TypeError: a bug there read as "the mask cache ... is
    incomplete or damaged; make the run again"."""
    import uvosam.job
    import uvosam.job_plan

    def bug(data):
        raise TypeError("VideoInfo.__init__() got an unexpected keyword argument 'fps_mode'")

    for module in (uvosam.job, uvosam.job_plan):
        monkeypatch.setattr(module, "info_from_meta", bug)
    with pytest.raises(TypeError, match="fps_mode"):
        rerender(cached_run.cache_dir, tmp_path / "out")


def test_the_checked_run_meta_keys_are_those_a_run_writes(cached_run):
    """``check_run_meta``'s list is a hand copy of ``cache_meta``'s keys: a key dropped from the run but left in the
    list would refuse every new cache."""
    from uvosam.job_plan import RUN_META_TYPES

    meta = json.loads((cached_run.cache_dir / "meta.json").read_text())["meta"]
    assert set(meta) == set(RUN_META_TYPES)


def test_a_second_cached_run_in_the_same_folder_starts_a_fresh_cache(
    clip, tmp_path, tiny_sam_model
):
    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    list(run_job(pipe, clip, tmp_path, JobOptions(cache=True)))
    second = list(run_job(pipe, clip, tmp_path, JobOptions(cache=True, stride=3)))[-1].result
    meta = json.loads((second.cache_dir / "meta.json").read_text())["meta"]
    assert meta["stride"] == 3 and meta["frame_names"] == ["00000", "00003", "00006", "00009"]
    again = rerender(second.cache_dir, tmp_path / "again", options=JobOptions())
    assert again.num_frames == second.num_frames == 4


def test_a_run_without_cache_in_a_cached_runs_folder_removes_that_cache(
    clip, tmp_path, tiny_sam_model
):
    """The earlier run's cache no longer matches the folder's outputs: re-rendering it silently replaced the newer
    run's exports and zip with the earlier run's."""
    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    first = list(run_job(pipe, clip, tmp_path, JobOptions(cache=True)))[-1].result
    list(run_job(pipe, clip, tmp_path, JobOptions(stride=3)))
    assert not first.cache_dir.exists()
    with pytest.raises(ValueError, match="not a finished run_job cache"):
        rerender(first.cache_dir, tmp_path)


def test_rerender_in_another_style_without_running_a_model(cached_run, tmp_path):
    """The cached masks redrawn as a matte: white exactly where the run's masks are (up to H.264)."""
    out = rerender(cached_run.cache_dir, tmp_path, options=JobOptions(style="matte"))
    assert out.overlay_mp4.name == "clip_matte.mp4"
    assert out.tracks == cached_run.tracks
    from uvosam.mask_cache import MaskCache
    from uvosam.video import iter_frames

    cached = list(MaskCache(cached_run.cache_dir).iter_results())
    frames = list(iter_frames(out.overlay_mp4))
    assert len(frames) == len(cached) == 10
    for frame, result in zip(frames, cached):
        inside = result.masks.any(0)
        assert inside.any() and (~inside).any()
        assert frame[inside].mean() > 200 and frame[~inside].mean() < 55


def test_job_options_refuse_an_unknown_style():
    with pytest.raises(ValueError, match=r"style must be one of .*'matte'\); got 'Matte'"):
        JobOptions(style="Matte")


def test_job_options_keep_their_positional_order():
    """``style`` came after yesterday's fields: ``JobOptions(1, None, limits, None, None, False)`` still hides boxes."""
    from uvosam.config import VideoLimits

    options = JobOptions(2, 5, VideoLimits(), 1.0, 64, False, False)
    assert (options.show_boxes, options.show_labels, options.style) == (False, False, "overlay")


def test_rerender_refuses_keep_ids_the_run_has_not(cached_run, tmp_path):
    with pytest.raises(
        ValueError, match=r"keep_ids: there is no track 12 in this run \(its tracks: 1, 2\)"
    ):
        rerender(cached_run.cache_dir, tmp_path / "out", keep_ids=[12])
    assert not (tmp_path / "out").exists()
    # none kept: allowed
    assert rerender(cached_run.cache_dir, tmp_path / "none", keep_ids=[]).tracks == ()


def test_the_cache_records_how_the_run_drew_for_rerender_to_default_to(
    clip, tmp_path, tiny_sam_model
):
    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    options = JobOptions(
        cache=True, style="matte", output_max_side=32, show_labels=False,
        export=ExportOptions(alpha_webm=True), audio=False,
    )  # fmt: skip
    result = list(run_job(pipe, clip, tmp_path, options))[-1].result
    meta = json.loads((result.cache_dir / "meta.json").read_text())["meta"]
    assert run_output(meta) == {
        "style": "matte", "output_max_side": 32, "show_boxes": True, "show_labels": False,
        "alpha_webm": True, "audio": False,
    }  # fmt: skip


def test_rerender_raises_the_score_threshold_frame_by_frame(cached_run, tmp_path):
    """Track 1 scores 0.9 and track 2 0.6 in every frame of the run."""
    out = rerender(cached_run.cache_dir, tmp_path / "a", min_score=0.7)
    assert [t.track_id for t in out.tracks] == [1] and out.num_frames == 10
    both = rerender(cached_run.cache_dir, tmp_path / "b", min_score=0.5)
    assert [t.track_id for t in both.tracks] == [1, 2]
    # 2 goes before the merge
    merged = rerender(cached_run.cache_dir, tmp_path / "c", merge={2: 1}, min_score=0.7)
    assert _davis_labels(merged.zip_path)[2] == _davis_labels(out.zip_path)[2]
    assert [(t.track_id, t.num_frames) for t in merged.tracks] == [(1, 10)]
    with pytest.raises(
        ValueError, match=r"min_score must be in \[0, 1\] \(a tracker score\); got 1.5"
    ):
        rerender(cached_run.cache_dir, tmp_path / "d", min_score=1.5)


def test_rerender_takes_a_merge_as_the_text_the_cli_and_app_take(cached_run, tmp_path):
    as_text = rerender(cached_run.cache_dir, tmp_path / "a", merge="2>1", keep_ids=np.array([1]))
    as_map = rerender(cached_run.cache_dir, tmp_path / "b", merge={"2": np.int64(1)}, keep_ids=[1])
    assert [(t.track_id, t.num_frames) for t in as_text.tracks] == [(1, 10)]
    assert _davis_labels(as_text.zip_path) == _davis_labels(as_map.zip_path)
    record = json.loads(as_text.export.run_json.read_text())
    assert record["rerender"]["merge"] == {"2": 1} and record["rerender"]["keep_ids"] == [1]


def test_the_threshold_drops_a_track_only_from_the_frames_where_it_scores_below(tmp_path):
    from export_helpers import results_from_video

    from uvosam.job import _scoring_at_least

    video = moving_shapes(6, height=32, width=48, num_objects=2, seed=1)
    counts = []
    # 2 wobbles around 0.5
    for result in results_from_video(video, track_ids=[1, 2], base_scores=[0.9, 0.5]):
        kept = _scoring_at_least(result, 0.5)
        assert kept.track_ids.tolist() == [i for i, s in zip([1, 2], result.scores) if s >= 0.5]
        assert kept.masks.shape == (len(kept), 32, 48)
        counts.append(len(kept))
    assert set(counts) == {1, 2}  # track 2 kept in some frames, dropped in others


def _with_sound(path, frames: int):
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=1", "-frames:v", frames, "-c:v", "libx264", "-c:a", "aac", path)  # fmt: skip
    return path


def test_a_silent_rerender_says_why_and_the_cli_prints_it(tmp_path, tiny_sam_model, capsys):
    """The library decided a re-render's video is silent (its run's source gone or replaced) and logged it at INFO
    only; the app re-derived it after the fact. ``JobResult.silent_because`` says it; ``uvosam rerender`` prints
    it."""
    source = _with_sound(tmp_path / "sine.mp4", 6)
    pipe = UVOSAM(MovingBoxTracker(num_objects=1), BoxPromptSegmenter(tiny_sam_model))
    run = list(run_job(pipe, source, tmp_path / "run", JobOptions(cache=True)))[-1].result
    assert run.silent_because is None
    assert rerender(run.cache_dir, tmp_path / "again").silent_because is None
    assert (
        rerender(run.cache_dir, tmp_path / "mute", options=JobOptions(audio=False)).silent_because
        is None
    )
    source.rename(tmp_path / "moved.mp4")
    assert rerender(run.cache_dir, tmp_path / "gone").silent_because == SOURCE_GONE
    assert uvosam_cli.main(["rerender", str(tmp_path / "run"), "--out", str(tmp_path / "cli")]) == 0
    said = capsys.readouterr()  # a note: on stderr
    assert f"note: the video is silent: {SOURCE_GONE} ({source}).\n" in said.err
    assert "is silent" not in said.out
    _with_sound(source, 9)  # another clip under the run's name
    assert rerender(run.cache_dir, tmp_path / "other").silent_because == SOURCE_REPLACED


def test_rerender_takes_the_runs_folder_that_holds_the_cache(cached_run, tmp_path):
    """``rerender(run folder)`` (as ``uvosam rerender`` takes it) said "not a finished run_job cache ...; run the job
    with JobOptions(cache=True) first" of a run made with it: the cache is in its ``cache/``."""
    run_folder = cached_run.cache_dir.parent
    out = rerender(run_folder, tmp_path, keep_ids=[1])
    assert out.cache_dir == cached_run.cache_dir and [t.track_id for t in out.tracks] == [1]


def test_paths_starting_with_a_tilde_are_in_the_home_folder(
    clip, tmp_path, monkeypatch, tiny_sam_model
):
    """``run_job(pipe, "~/clip.mp4", "~/out")`` looked for ./~/clip.mp4 and wrote into a folder named "~" in the
    current directory (one ``rm -rf ~`` from deleting the home folder), while weight paths expand ``~``."""
    home, elsewhere = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    elsewhere.mkdir()
    shutil.copy(clip, home / "clip.mp4")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)
    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    options = JobOptions(cache=True, max_frames=2)
    result = list(run_job(pipe, "~/clip.mp4", "~/out", options))[-1].result
    assert result.zip_path.parent == home / "out" and result.zip_path.is_file()
    again = rerender("~/out", "~/again", keep_ids=[2])
    assert again.zip_path.parent == home / "again"
    assert list(elsewhere.iterdir()) == []


def test_a_run_and_its_rerender_keep_an_anamorphic_inputs_shape(tmp_path, tiny_sam_model):
    """The overlay (and the alpha WebM) of a 64x48 input shown 192x48 ([SAR 3:1]) was written with square pixels:
    players showed it 4:3 instead of 4:1. Its pixels stay 64x48 (the masks' grid); the files are marked."""
    from proc import ffmpeg_header

    src = tmp_path / "sar.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10", "-t", "0.4", "-vf", "setsar=3/1", "-c:v", "libx264",
           src)  # fmt: skip
    pipe = UVOSAM(MovingBoxTracker(num_objects=1), BoxPromptSegmenter(tiny_sam_model))
    options = JobOptions(cache=True, export=ExportOptions(alpha_webm=True))
    run = list(run_job(pipe, src, tmp_path / "run", options))[-1].result
    redo = rerender(run.cache_dir, tmp_path / "redo", options=JobOptions(style="matte"))
    for video in (
        run.overlay_mp4,
        tmp_path / "run" / "export" / "sar_alpha.webm",
        redo.overlay_mp4,
    ):
        assert "SAR 3:1 DAR 4:1" in ffmpeg_header(video), video


def test_a_rerender_under_another_name_records_that_name_and_the_runs_models(cached_run, tmp_path):
    """A re-render exported under a new video name writes that name in run.json's video entry and in its
    davis/<name>/ folder, and carries the run's models and settings (they made the masks) unchanged."""
    keep = [cached_run.tracks[0].track_id]
    out = rerender(
        cached_run.cache_dir, tmp_path, keep_ids=keep, options=JobOptions(video_name="renamed")
    )
    record = json.loads(out.export.run_json.read_text(encoding="utf-8"))
    run = json.loads(cached_run.export.run_json.read_text(encoding="utf-8"))
    assert record["video"] == {**run["video"], "name": "renamed"}
    assert record["models"] == run["models"] and record["settings"] == run["settings"]
    assert record["rerender"]["keep_ids"] == keep
    assert out.video_name == "renamed" and out.export.davis_dir.name == "renamed"
    pngs, _, _ = _davis_labels(out.zip_path)
    assert pngs and all(name.startswith("davis/renamed/") for name in pngs)


def test_a_rerender_on_a_full_disk_names_its_folder_and_removes_the_one_it_made(
    cached_run, tmp_path, monkeypatch
):
    """As a run's (test_job.py): a bare "[Errno 28] No space left on device" (no path), and the fresh, empty
    folder was left."""
    import errno

    from uvosam import export_formats

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export_formats, "write_tracks_csv", disk_full)
    out = tmp_path / "new" / "out"
    with pytest.raises(OSError) as caught:
        rerender(cached_run.cache_dir, out)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(out)
    assert str(caught.value) == f"[Errno 28] No space left on device: '{out}'"
    assert list(tmp_path.iterdir()) == []


def test_a_rerender_of_a_run_named_before_device_names_got_a_mark_replaces_its_files(
    tmp_path, tiny_sam_model, monkeypatch
):
    """A run of con.mp4 made before ``safe_name`` added ``_`` after a device name of Windows is named ``con``; its
    re-render named its files ``con_`` (the name cleaned again) and left the run's ``con_*`` files beside them."""
    from run_helpers import run_clip

    from uvosam import job_plan

    pipe = UVOSAM(MovingBoxTracker(), BoxPromptSegmenter(tiny_sam_model))
    monkeypatch.setattr(job_plan, "safe_name", lambda name: name)  # that release's name of con.mp4
    run = tmp_path / "run"
    list(run_job(pipe, run_clip(tmp_path / "con.mp4"), run, JobOptions(cache=True)))
    monkeypatch.undo()
    before = sorted(p.name for p in run.iterdir())
    assert before == ["cache", "con_overlay.mp4", "con_uvosam.zip", "export"]
    out = rerender(run / "cache", run, keep_ids=[1])
    assert out.video_name == "con" and sorted(p.name for p in run.iterdir()) == before
    assert [p.name for p in (run / "export" / "davis").iterdir()] == ["con"]
    assert json.loads((run / "export" / "run.json").read_text())["video"]["name"] == "con"
