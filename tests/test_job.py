"""run_job end to end on a real encoded video with tiny SAM and a replaying tracker; the `uvosam segment` CLI."""

import importlib
import json
import zipfile

import pytest
from clip_helpers import write_video
from doubles import ReplayTracker
from proc import ffmpeg_children

import uvosam_cli
import uvosam_cli.rerender
import uvosam_cli.segment
from uvosam.job import run_job
from uvosam.job_types import JobOptions
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.testing import moving_shapes
from uvosam.video import probe

FPS = 10.0


@pytest.fixture()
def clip(tmp_path):
    video = moving_shapes(25, height=48, width=64, num_objects=2, seed=5)
    return write_video(tmp_path / "shapes clip.mp4", video.frames, FPS, crf=10), video


def _pipe(video, sam):
    return UVOSAM(ReplayTracker(video.boxes_xyxy, lookahead=2), BoxPromptSegmenter(sam))


def test_the_job_api_the_readme_names_is_importable_from_uvosam_job():
    """``run_job``, ``JobOptions``, ``rerender``, ``JobResult`` are "in uvosam.job" (docs/python.md); the
    types are defined in job_types."""
    import uvosam.job
    import uvosam.job_types

    for name in ("JobOptions", "JobProgress", "JobResult"):
        assert (
            getattr(uvosam.job, name) is getattr(uvosam.job_types, name)
            and name in uvosam.job.__all__
        )
    assert {"run_job", "rerender", "rerender_iter"} <= set(uvosam.job.__all__)


def test_run_job_streams_chunks_and_writes_every_output(tmp_path, clip, tiny_sam_model):
    path, video = clip
    updates = list(
        run_job(_pipe(video, tiny_sam_model), path, tmp_path / "job", JobOptions(chunk_seconds=1.0))
    )
    final = updates[-1].result
    assert final is not None and all(u.result is None for u in updates[:-1])
    assert [u.frames_done for u in updates[:-1]] == list(range(1, 26))
    assert updates[0].preview.shape == (48, 64, 3) and updates[0].frames_total == 25
    chunks = [u.chunk for u in updates if u.chunk is not None]
    assert len(chunks) == 3  # 10 + 10 + 5 frames at 10 fps
    assert chunks[0] is not None and updates.index(next(u for u in updates if u.chunk)) == 9
    info = probe(final.overlay_mp4)
    assert (info.num_frames, info.width, info.height) == (25, 64, 48)
    assert final.video_name == "shapes_clip" and final.num_frames == 25
    assert [t.track_id for t in final.tracks] == [1, 2]
    names = zipfile.ZipFile(final.zip_path).namelist()
    assert "results.json" in names and "ytvis_results.json" in names and "README.txt" in names
    assert sum(n.startswith("davis/shapes_clip/") and n.endswith(".png") for n in names) == 25


def test_stride_and_max_frames_and_output_size(tmp_path, clip, tiny_sam_model):
    path, video = clip
    boxes = video.boxes_xyxy[::2]
    pipe = UVOSAM(ReplayTracker(boxes), BoxPromptSegmenter(tiny_sam_model))
    options = JobOptions(stride=2, max_frames=7, output_max_side=32)
    final = list(run_job(pipe, path, tmp_path / "job", options))[-1].result
    assert final.num_frames == 7
    info = probe(final.overlay_mp4)
    assert (info.num_frames, info.width, info.height) == (7, 32, 24)
    assert info.fps == pytest.approx(FPS / 2, rel=0.01)


def test_closing_the_job_midway_stops_ffmpeg_and_keeps_no_partial_video(
    tmp_path, clip, tiny_sam_model
):
    path, video = clip
    job = run_job(
        _pipe(video, tiny_sam_model), path, tmp_path / "job", JobOptions(chunk_seconds=1.0)
    )
    for _ in range(5):
        next(job)
    assert ffmpeg_children()
    job.close()
    assert ffmpeg_children() == []
    assert not (tmp_path / "job" / "shapes_clip_overlay.mp4").exists()


def test_bad_input_fails_at_the_first_step(tmp_path, tiny_sam_model):
    bad = tmp_path / "empty.mp4"
    bad.write_bytes(b"")
    job = run_job(_pipe(moving_shapes(2), tiny_sam_model), bad, tmp_path / "job")
    with pytest.raises(ValueError, match=r"empty\.mp4 is empty \(0 bytes\)"):  # not just its name
        next(job)


def test_segment_cli_writes_outputs_and_prints_a_summary(
    tmp_path, clip, tiny_sam_model, monkeypatch, capsys
):
    path, video = clip
    seen = {}

    def fake_load(args):
        seen["args"] = args
        return _pipe(video, tiny_sam_model)

    monkeypatch.setattr(uvosam_cli.segment, "load_pipeline", fake_load)
    code = uvosam_cli.main(["segment", str(path), "--out", str(tmp_path / "out"), "--sam", "vit_b",
                            "--max-objects", "1"])  # fmt: skip
    assert code == 0
    assert seen["args"].sam == "vit_b" and seen["args"].tracker == "idol-ytvis19-r50"
    line = capsys.readouterr().out.strip().splitlines()[-1]
    # tracks, as the log, the table and the app say; never "1 tracks" (nor "1 frames")
    assert line.startswith("shapes_clip: 25 frames, 1 track,") and "fps" in line
    assert (tmp_path / "out" / "shapes_clip_uvosam.zip").is_file()
    with zipfile.ZipFile(tmp_path / "out" / "shapes_clip_uvosam.zip") as archive:
        assert "25 frames, 1 track. Frame file names" in archive.read("README.txt").decode()
    assert (tmp_path / "out" / "shapes_clip_overlay.mp4").is_file()
    code = uvosam_cli.main(["segment", str(path), "--out", str(tmp_path / "matte"), "--max-frames", "2",
                            "--style", "matte"])  # fmt: skip
    assert code == 0 and probe(tmp_path / "matte" / "shapes_clip_matte.mp4").num_frames == 2
    with pytest.raises(SystemExit):
        uvosam_cli.main(
            ["segment", str(path), "--out", str(tmp_path / "o"), "--style", "no-such-style"]
        )
    assert "invalid choice: 'no-such-style'" in capsys.readouterr().err


def test_segment_cli_threads_precision_and_compile(tmp_path, clip, tiny_sam_model, monkeypatch):
    path, video = clip
    seen = []

    def fake_from_pretrained(*args, **kwargs):
        seen.append(kwargs)
        return _pipe(video, tiny_sam_model)

    monkeypatch.setattr(uvosam_cli.segment.UVOSAM, "from_pretrained", fake_from_pretrained)
    for flags in ([], ["--precision", "bf16", "--compile"]):
        code = uvosam_cli.main(["segment", str(path), "--out", str(tmp_path / f"o{len(flags)}"), "--max-frames", "2",
                                "--device", "cpu", *flags])  # fmt: skip
        assert code == 0
    got = [(k["tracker_precision"], k["segmenter_config"].compile) for k in seen]
    assert got == [("fp32", False), ("bf16", True)]


def test_segment_cli_reports_bad_input_without_a_traceback(
    tmp_path, capsys, monkeypatch, tiny_sam_model
):
    monkeypatch.setattr(
        uvosam_cli.segment, "load_pipeline", lambda a: _pipe(moving_shapes(2), tiny_sam_model)
    )
    (tmp_path / "notes.mp4").write_text("hello")
    code = uvosam_cli.main(["segment", str(tmp_path / "notes.mp4"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "uvosam segment: error:" in err and "Traceback" not in err


def test_writer_failing_to_start_leaves_no_export_or_cache(
    tmp_path, clip, tiny_sam_model, monkeypatch
):
    import uvosam.job_outputs

    def broken_writer(*args, **kwargs):
        raise OSError("ffmpeg could not start")

    monkeypatch.setattr(uvosam.job_outputs, "VideoWriter", broken_writer)
    path, video = clip
    work = tmp_path / "job"
    with pytest.raises(OSError, match="ffmpeg could not start"):
        list(run_job(_pipe(video, tiny_sam_model), path, work, JobOptions(cache=True)))
    assert not work.exists()  # made by the run, left empty: removed


def test_exporter_failing_to_start_leaves_no_ffmpeg(tmp_path, clip, tiny_sam_model, monkeypatch):
    import uvosam.job_outputs

    def broken_exporter(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(uvosam.job_outputs, "ExportWriter", broken_exporter)
    path, video = clip
    work = tmp_path / "job"
    with pytest.raises(OSError, match="disk full"):
        list(run_job(_pipe(video, tiny_sam_model), path, work, JobOptions(cache=True)))
    assert ffmpeg_children() == [] and not work.exists()


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _fail_zip_at_its_third_file(monkeypatch):
    import zipfile

    write, calls = zipfile.ZipFile.write, []

    def failing(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise OSError(28, "No space left on device (simulated)")
        return write(self, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "write", failing)


def _fail(module, name):
    def failing(monkeypatch):
        def disk_full(*args, **kwargs):
            raise OSError(28, "No space left on device (simulated)")

        monkeypatch.setattr(importlib.import_module(module), name, disk_full)

    return failing


@pytest.mark.parametrize(
    "fail",
    [
        _fail("uvosam.export_formats", "write_tracks_csv"),
        _fail("uvosam.export", "write_run_json"),
        _fail("uvosam.export", "readme_text"),
        _fail_zip_at_its_third_file,
    ],
    ids=["tracks.csv", "run.json", "README", "zip"],
)
def test_a_run_failing_after_its_last_frame_leaves_none_of_its_outputs(
    tmp_path, clip, tiny_sam_model, monkeypatch, fail
):
    """Video, chunks, exports (at the export's root too), zip and cache go; files it did not write stay (an earlier
    run's files it had not yet replaced when it failed too)."""
    from uvosam.export_types import ExportOptions

    path, video = clip
    work = tmp_path / "job"
    # an earlier run in the same --out, in another style
    list(run_job(_pipe(video, tiny_sam_model), path, work, JobOptions(max_frames=3, style="matte")))
    (work / "export" / "notes.txt").write_text("mine")
    before = {name: (work / name).read_bytes() for name in _files(work)}
    fail(monkeypatch)
    options = JobOptions(max_frames=6, chunk_seconds=0.2, cache=True,
                         export=ExportOptions(mattes=True, alpha_webm=True))  # fmt: skip
    with pytest.raises(OSError, match="No space left"):
        list(run_job(_pipe(video, tiny_sam_model), path, work, options))
    assert ffmpeg_children() == []
    after = _files(work)  # nothing of this run: no new file, none changed
    assert set(after) <= set(before) and all((work / n).read_bytes() == before[n] for n in after)
    # nor a file it did not write: the earlier run's video and zip, a user's notes
    assert {"shapes_clip_matte.mp4", "shapes_clip_uvosam.zip", "export/notes.txt"} <= set(after)


def test_run_job_probes_the_video_once(tmp_path, clip, tiny_sam_model, monkeypatch):
    import uvosam.video

    counted = []
    count_frames = uvosam.video.count_frames
    monkeypatch.setattr(
        uvosam.video, "count_frames", lambda *a, **kw: counted.append(1) or count_frames(*a, **kw)
    )
    path, video = clip
    steps = list(
        run_job(_pipe(video, tiny_sam_model), path, tmp_path / "job", JobOptions(stride=2))
    )
    assert steps[-1].result.num_frames == 13 and len(counted) == 1


def test_segment_cache_then_rerender_cli_without_models(
    tmp_path, clip, tiny_sam_model, monkeypatch, capsys
):
    path, video = clip
    monkeypatch.setattr(
        uvosam_cli.segment, "load_pipeline", lambda args: _pipe(video, tiny_sam_model)
    )
    run = tmp_path / "run"
    assert uvosam_cli.main(["segment", str(path), "--out", str(run), "--max-frames", "6", "--cache",
                            "--alpha-webm"]) == 0  # fmt: skip
    assert (run / "cache" / "meta.json").is_file()
    assert "shapes_clip_alpha.webm" in zipfile.ZipFile(run / "shapes_clip_uvosam.zip").namelist()
    gray = tmp_path / "gray"
    assert uvosam_cli.main(["segment", str(path), "--out", str(gray), "--max-frames", "2", "--cache",
                            "--style", "gray"]) == 0  # fmt: skip
    # in the run's style by default
    assert uvosam_cli.main(["rerender", str(gray), "--keep", "1"]) == 0
    assert (
        capsys.readouterr()
        .out.strip()
        .endswith(f"tracks 1 -> {gray / 'shapes_clip_gray.mp4'}, {gray / 'shapes_clip_uvosam.zip'}")
    )

    def models_forbidden(*args, **kwargs):
        raise AssertionError("rerender must not load a model")

    monkeypatch.setattr(uvosam_cli.segment, "load_pipeline", models_forbidden)
    code = uvosam_cli.main(["rerender", str(run), "--merge", "2>1", "--style", "matte", "--out",
                            str(tmp_path / "merged")])  # fmt: skip
    assert code == 0
    assert (
        capsys.readouterr()
        .out.strip()
        .endswith(
            f"shapes_clip: 6 frames, tracks 1 -> {tmp_path / 'merged' / 'shapes_clip_matte.mp4'}, "
            f"{tmp_path / 'merged' / 'shapes_clip_uvosam.zip'}"
        )
    )
    made = json.loads(
        zipfile.ZipFile(tmp_path / "merged" / "shapes_clip_uvosam.zip").read("run.json")
    )
    # segment's, with its --max-frames
    run_made = json.loads((run / "export" / "run.json").read_text())
    assert (
        run_made["settings"]["max_frames"] == 6
        and run_made["models"]["mask_model"]["class"] == "BoxPromptSegmenter"
    )
    assert made["models"] == run_made["models"] and made["settings"] == run_made["settings"]
    assert made["rerender"]["merge"] == {"2": 1} and made["output"]["style"] == "matte"
    assert uvosam_cli.main(["rerender", str(run), "--keep", "2"]) == 0  # into the run's own folder
    assert "tracks 2 ->" in capsys.readouterr().out
    names = zipfile.ZipFile(run / "shapes_clip_uvosam.zip").namelist()
    assert "shapes_clip_alpha.webm" in names  # the run made one: so does its re-render, by default
    assert any(n.startswith("cutouts/shapes_clip/2/") for n in names)
    assert not any(n.startswith("cutouts/shapes_clip/1/") for n in names)
    assert uvosam_cli.main(["rerender", str(run)]) == 0  # the cache is intact: all tracks again
    assert "tracks 1, 2 ->" in capsys.readouterr().out
    assert (
        uvosam_cli.main(
            ["rerender", str(run), "--min-score", "1.0", "--out", str(tmp_path / "none")]
        )
        == 0
    )
    assert "tracks none ->" in capsys.readouterr().out  # no replayed track scores 1.0
    # meant 1 2: not an empty video
    assert uvosam_cli.main(["rerender", str(run), "--keep", "12"]) == 2
    assert (
        "uvosam rerender: error: --keep: there is no track 12 in this run (its tracks: 1, 2)\n"
        in capsys.readouterr().err
    )
    names = zipfile.ZipFile(
        run / "shapes_clip_uvosam.zip"
    ).namelist()  # the run's files are left as they were
    assert any(n.startswith("cutouts/shapes_clip/1/") for n in names)
    assert uvosam_cli.main(["rerender", str(run), "--merge", "2>9"]) == 2
    assert (
        "uvosam rerender: error: --merge: there is no track 9 in this run (its tracks: 1, 2).\n"
        in capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        uvosam_cli.main(["rerender", str(run), "--merge", "two>one"])
    # the option named once (its message had the app's "Merge tracks: " too)
    err = capsys.readouterr().err
    assert (
        "error: argument --merge: expected pairs 'source>target'" in err
        and "could not read 'two>one'" in err
    )
    with pytest.raises(SystemExit):
        uvosam_cli.main(["rerender", str(run), "--keep", "a"])  # argparse: "invalid int value: 'a'"
    assert (
        "error: argument --keep: takes track ids (whole numbers), e.g. --keep 1 3; got 'a'\n"
        in capsys.readouterr().err
    )
    assert uvosam_cli.main(["rerender", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"no mask cache in {tmp_path}" in err and "segment ... --out <folder> --cache" in err
    # not a folder at all: said "no mask cache in ..." too
    expected = "expected the --out folder of a `uvosam segment ... --cache` run"
    assert uvosam_cli.main(["rerender", str(tmp_path / "nonexist")]) == 2
    assert (
        f"error: RUN {tmp_path / 'nonexist'} does not exist; {expected}\n"
        in capsys.readouterr().err
    )
    (tmp_path / "clip.mp4").write_bytes(b"x")
    assert uvosam_cli.main(["rerender", str(tmp_path / "clip.mp4")]) == 2
    assert f"error: RUN {tmp_path / 'clip.mp4'} is a file; {expected}\n" in capsys.readouterr().err
    a_file = tmp_path / "clip.mp4"
    a_file.write_bytes(b"x")
    assert (
        uvosam_cli.main(["rerender", str(run), "--out", str(a_file)]) == 2
    )  # before the cache is read
    assert f"--out {a_file} is a file; expected an output folder" in capsys.readouterr().err


def test_rerender_cli_draws_as_the_run_did_unless_a_flag_says_otherwise(
    tmp_path, clip, tiny_sam_model, monkeypatch, capsys
):
    path, video = clip
    monkeypatch.setattr(
        uvosam_cli.segment, "load_pipeline", lambda args: _pipe(video, tiny_sam_model)
    )
    run = tmp_path / "run"
    assert uvosam_cli.main(["segment", str(path), "--out", str(run), "--max-frames", "3", "--cache",
                            "--alpha-webm", "--output-max-side", "32", "--style", "cutout", "--no-boxes",
                            "--no-labels"]) == 0  # fmt: skip
    drawn = []
    real_rerender_iter = uvosam_cli.rerender.rerender_iter

    def recording(*args, **kwargs):
        drawn.append(kwargs["options"])
        return real_rerender_iter(*args, **kwargs)

    monkeypatch.setattr(uvosam_cli.rerender, "rerender_iter", recording)
    webm = run / "export" / "shapes_clip_alpha.webm"
    assert uvosam_cli.main(["rerender", str(run), "--keep", "1"]) == 0  # into the run's own folder
    info = probe(run / "shapes_clip_cutout.mp4")
    assert (info.width, info.height) == (32, 24)  # the run's size, not the source's 64x48
    assert webm.is_file()
    assert "shapes_clip_alpha.webm" in zipfile.ZipFile(run / "shapes_clip_uvosam.zip").namelist()
    options = drawn[-1]
    assert (options.style, options.show_boxes, options.show_labels) == ("cutout", False, False)
    made = json.loads((run / "export" / "run.json").read_text())
    assert made["output"] == {"style": "cutout", "output_max_side": 32}
    # every flag still wins over the run's choice
    assert uvosam_cli.main(["rerender", str(run), "--output-max-side", "source", "--no-alpha-webm",
                            "--boxes", "--labels", "--style", "overlay"]) == 0  # fmt: skip
    info = probe(run / "shapes_clip_overlay.mp4")
    assert (info.width, info.height) == (64, 48)
    assert not webm.exists()
    assert (
        "shapes_clip_alpha.webm" not in zipfile.ZipFile(run / "shapes_clip_uvosam.zip").namelist()
    )
    options = drawn[-1]
    assert (options.output_max_side, options.show_boxes, options.show_labels) == (None, True, True)
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        uvosam_cli.main(["rerender", str(run), "--output-max-side", "1"])
    assert refused.value.code == 2
    assert (
        "argument --output-max-side: must be a longest side of at least 2 pixels, or 'source' for the "
        "frames' size; got '1'" in capsys.readouterr().err
    )


def test_a_frame_folder_with_a_dot_keeps_its_whole_name(tmp_path, tiny_sam_model):
    from PIL import Image

    video = moving_shapes(3, height=48, width=64, num_objects=2, seed=5)
    folder = tmp_path / "bmx.v1"
    folder.mkdir()
    for i, frame in enumerate(video.frames):
        Image.fromarray(frame).save(folder / f"{i:05d}.jpg")
    result = list(run_job(_pipe(video, tiny_sam_model), folder, tmp_path / "out"))[-1].result
    assert result.video_name == "bmx.v1" and result.overlay_mp4.name == "bmx.v1_overlay.mp4"
    assert any(
        n.startswith("davis/bmx.v1/00000") for n in zipfile.ZipFile(result.zip_path).namelist()
    )


def test_the_live_counts_follow_tracks_that_come_and_go_up_to_the_last_update(
    tmp_path, tiny_sam_model
):
    """JobProgress.objects / tracks_so_far: track 2 appears at frame 4 and is gone from frame 9 on; the last update
    (the one with the result) still says how many tracks were seen, not 0."""
    video = moving_shapes(12, height=48, width=64, num_objects=2, seed=5, absent={1: range(4)})
    boxes = video.boxes_xyxy.copy()
    boxes[9:, 1] = float("nan")  # the tracker loses track 2 for good
    path = write_video(tmp_path / "come_and_go.mp4", video.frames, FPS, crf=10)
    pipe = UVOSAM(ReplayTracker(boxes, lookahead=2), BoxPromptSegmenter(tiny_sam_model))
    steps = list(run_job(pipe, path, tmp_path / "job"))
    assert [s.objects for s in steps[:-1]] == [1] * 4 + [2] * 5 + [1] * 3
    assert [s.tracks_so_far for s in steps[:-1]] == [1] * 4 + [2] * 8
    final = steps[-1]
    assert final.result is not None and len(final.result.tracks) == 2
    assert (final.objects, final.tracks_so_far) == (
        1,
        2,
    )  # the last frame's count, all the tracks seen


def test_a_track_that_comes_back_is_marked_in_the_video_for_about_a_second(
    tmp_path, tiny_sam_model, monkeypatch
):
    import uvosam.job_outputs

    video = moving_shapes(30, height=48, width=64, num_objects=2, seed=5, absent={1: range(8, 12)})
    path = write_video(tmp_path / "gap.mp4", video.frames, FPS, crf=10)
    drawn = []
    real = uvosam.job_outputs.render
    monkeypatch.setattr(
        uvosam.job_outputs, "render", lambda r, **kw: drawn.append(kw["tag_notes"]) or real(r, **kw)
    )
    steps = list(run_job(_pipe(video, tiny_sam_model), path, tmp_path / "job"))
    final = steps[-1].result
    assert [s.objects for s in steps[7:13]] == [
        2,
        1,
        1,
        1,
        1,
        2,
    ]  # the live count: track 2 away on 8-11
    assert {s.tracks_so_far for s in steps[:-1]} == {2}
    marked = [t for t, notes in enumerate(drawn) if notes]
    assert marked == list(range(12, 12 + int(FPS))) and drawn[12] == {
        2: "back after 4"
    }  # FPS frames = 1 s
    assert [(t.track_id, t.returns) for t in final.tracks] == [(1, 0), (2, 1)]


def _segment_replayed(tmp_path, name, video, boxes, sam, monkeypatch):
    """``uvosam segment <name>.mp4 --out <tmp>/run --cache`` of ``video`` with a tracker replaying ``boxes``."""
    pipe = UVOSAM(ReplayTracker(boxes, lookahead=2), BoxPromptSegmenter(sam))
    monkeypatch.setattr(uvosam_cli.segment, "load_pipeline", lambda args: pipe)
    path, run = write_video(tmp_path / f"{name}.mp4", video.frames, FPS), tmp_path / "run"
    assert uvosam_cli.main(["segment", str(path), "--out", str(run), "--cache"]) == 0
    return run


class _BareSegmenter:
    """A ``BoxSegmenter`` with only what the protocol requires (no optional ``describe()``)."""

    def __init__(self, inner: BoxPromptSegmenter) -> None:
        self.config, self.device, self._inner = inner.config, inner.device, inner

    def segment(self, image, boxes_xyxy):
        return self._inner.segment(image, boxes_xyxy)

    def segment_batch(self, images, boxes_list, *, scores, track_ids):
        return self._inner.segment_batch(images, boxes_list, scores=scores, track_ids=track_ids)


def test_segment_takes_a_segmenter_without_describe(tmp_path, tiny_sam_model, monkeypatch):
    """``describe()`` is optional in the protocol (``uvosam.types.BoxSegmenter``), but ``uvosam segment`` called it
    for its CPU note (AttributeError: '_BareSegmenter' object has no attribute 'describe')."""
    import numpy as np

    video = moving_shapes(4, height=48, width=64, num_objects=1, seed=5)
    boxes = np.tile(np.array([[[8, 8, 30, 30]]], np.float32), (4, 1, 1))
    pipe = UVOSAM(
        ReplayTracker(boxes, lookahead=2), _BareSegmenter(BoxPromptSegmenter(tiny_sam_model))
    )
    monkeypatch.setattr(uvosam_cli.segment, "load_pipeline", lambda args: pipe)
    path, run = write_video(tmp_path / "bare.mp4", video.frames, FPS), tmp_path / "run"
    assert uvosam_cli.main(["segment", str(path), "--out", str(run)]) == 0
    record = json.loads(zipfile.ZipFile(run / "bare_uvosam.zip").read("run.json"))
    assert record["models"]["mask_model"] == {"class": "_BareSegmenter", "family": None}


def test_a_track_that_continues_another_is_proposed_as_a_merge(
    tmp_path, tiny_sam_model, monkeypatch, capsys
):
    import numpy as np

    video = moving_shapes(25, height=48, width=64, num_objects=1, seed=5)
    boxes = np.full((25, 2, 4), np.nan, np.float32)
    # one object moving right; the tracker loses it after frame 9, a new id from frame 13
    for t in range(25):
        boxes[t, 0 if t < 10 else 1] = [t, 10, t + 16, 26] if t < 10 or t >= 13 else np.nan
    run = _segment_replayed(tmp_path, "switch", video, boxes, tiny_sam_model, monkeypatch)
    out = capsys.readouterr().out
    assert (
        "  2>1: track 2 starts 3 frames after track 1 ends, 0.18 box diagonals from where it was last seen"
        in out
    )
    assert f'uvosam rerender {run} --merge "2>1"' in out
    readme = zipfile.ZipFile(run / "switch_uvosam.zip").read("README.txt").decode()
    assert "Possible id switches" in readme and 're-render with merge "2>1"' in readme
    assert uvosam_cli.main(["rerender", str(run), "--merge", "2>1"]) == 0
    out = capsys.readouterr().out
    # joined: nothing left to propose
    assert "tracks 1 ->" in out and "possible id switches" not in out


def test_the_command_printed_after_a_rerender_keeps_its_merges_and_tracks(
    tmp_path, tiny_sam_model, monkeypatch, capsys
):
    """rerender starts from the run's masks: the command it prints for the hints left must repeat the merges,
    --keep and --min-score it was given, or following it undoes them (here 2 would split off 1 again, unproposed:
    1 and 3 joined leave 2 inside their span)."""
    import shlex

    import numpy as np

    video = moving_shapes(25, height=48, width=64, num_objects=1, seed=5)
    boxes = np.full((25, 4, 4), np.nan, np.float32)
    # one object, three ids: 1, 2, 3
    for slot, frames in enumerate((range(8), range(10, 16), range(18, 25))):
        for t in frames:
            boxes[t, slot] = [t, 10, t + 16, 26]
    boxes[:, 3] = [44, 30, 60, 46]  # track 4, another object all along, which the user drops
    run = _segment_replayed(tmp_path, "chain", video, boxes, tiny_sam_model, monkeypatch)
    assert f'uvosam rerender {run} --merge "2>1, 3>1"' in capsys.readouterr().out
    # the user joins 2 and 1 first, and drops 4
    assert (
        uvosam_cli.main(
            ["rerender", str(run), "--keep", "1", "2", "3", "--min-score", "0.3", "--merge", "2>1"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "tracks 1, 3 ->" in out
    assert "  3>1: track 3 starts 2 frames after track 1 ends, " in out
    command = f'uvosam rerender {run} --keep 1 2 3 --min-score 0.3 --merge "2>1, 3>1"'
    assert command in out, out
    readme = zipfile.ZipFile(run / "chain_uvosam.zip").read("README.txt").decode()
    # the zip's README knows the re-render's merge too
    assert 're-render with merge "2>1, 3>1"' in readme
    assert uvosam_cli.main(shlex.split(command)[1:]) == 0  # as printed
    out = capsys.readouterr().out
    assert "tracks 1 ->" in out and "possible id switches" not in out


def test_rerender_cli_splits_and_merges_an_id_switch_away(
    tmp_path, tiny_sam_model, monkeypatch, capsys
):
    """Two objects whose ids the tracker swaps at frame 4: --split gives each id's part from there a new id (3, 4:
    the next after the run's largest, in the order given), --merge names those, in one command."""
    import csv

    video = moving_shapes(8, height=48, width=64, num_objects=2, seed=2)
    boxes = video.boxes_xyxy.copy()
    boxes[4:] = video.boxes_xyxy[4:, ::-1]
    run = _segment_replayed(tmp_path, "swap", video, boxes, tiny_sam_model, monkeypatch)
    capsys.readouterr()

    def tracks(folder):
        with open(folder / "export" / "tracks.csv", newline="") as f:
            return [(r["track_id"], r["first_frame"], r["last_frame"]) for r in csv.DictReader(f)]

    def refused(*args):
        assert uvosam_cli.main(["rerender", str(run), *args, "--out", str(tmp_path / "no")]) == 2
        assert not (tmp_path / "no").exists()
        return capsys.readouterr().err

    out = tmp_path / "fixed"
    assert uvosam_cli.main(["rerender", str(run), "--split", "1@4", "2@4", "--merge", "3>2, 4>1", "--out",
                            str(out)]) == 0  # fmt: skip
    assert "tracks 1, 2 ->" in capsys.readouterr().out
    assert tracks(out) == [("1", "0", "7"), ("2", "0", "7")]
    fixed = json.loads((out / "export" / "results.json").read_text())
    # track 1 is object 0 in every frame (its boxes: the video's), 2 object 1
    assert [r["boxes"] for r in fixed] == [video.boxes_xyxy[:, k].tolist() for k in (0, 1)]
    assert (
        uvosam_cli.main(["rerender", str(run), "--split", "1@4", "--keep", "3", "--out", str(out)])
        == 0
    )
    assert tracks(out) == [("3", "4", "7")]  # --keep names an id the split made
    capsys.readouterr()
    assert refused("--split", "1@9") == (
        "uvosam rerender: error: --split: cannot split track 1 at frame 9: it is seen from frame 0 to 7; split "
        "it at a frame from 1 to 7 (the part from there on gets a new id).\n"
    )
    assert "--split: there is no track 5 in this run (its tracks: 1, 2)" in refused(
        "--split", "5@2"
    )
    assert "--split: 1@4 is given twice" in refused("--split", "1@4", "2@1,1@4")
    assert "--keep: there is no track 4 in this run (its tracks once split: 1, 2, 3)" in refused(
        "--split", "1@4", "--keep", "4"
    )
    assert "--merge: there is no track 3 in this run (its tracks: 1, 2)" in refused(
        "--merge", "3>1"
    )
    # --split and --keep given twice add up (the last one alone was kept)
    assert uvosam_cli.main(["rerender", str(run), "--split", "1@4", "--split", "2@4", "--keep", "3",
                            "--keep", "4", "--out", str(out)]) == 0  # fmt: skip
    assert tracks(out) == [("3", "4", "7"), ("4", "4", "7")]
    capsys.readouterr()
    # RUN after --split was read as one more split
    with pytest.raises(SystemExit):
        uvosam_cli.main(["rerender", "--split", "1@4", str(run)])
    assert (
        f"could not read {str(run)!r} ({str(run)!r} is a folder: if it is RUN, put it before the option, or end "
        "the option's values with --).\n" in capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        uvosam_cli.main(["rerender", "--keep", "1", str(run)])
    assert f"got {str(run)!r} ({str(run)!r} is a folder: if it is RUN" in capsys.readouterr().err
    assert uvosam_cli.main(["rerender", "--out", str(out), "--split", "1@4", "--", str(run)]) == 0
    assert tracks(out) == [("1", "0", "3"), ("2", "0", "7"), ("3", "4", "7")]


def test_rerender_cli_reads_the_runs_track_ids_once(tmp_path, tiny_sam_model, monkeypatch, capsys):
    """--split, --keep and --merge were checked by the command, then again by the re-render: two passes over the
    cache's files; one now, the re-render's, whose refusals name the option."""
    from run_helpers import track_id_reads

    video = moving_shapes(8, height=48, width=64, num_objects=2, seed=2)
    run = _segment_replayed(tmp_path, "once", video, video.boxes_xyxy, tiny_sam_model, monkeypatch)
    reads = track_id_reads(monkeypatch)
    assert uvosam_cli.main(["rerender", str(run), "--split", "1@4", "--keep", "1", "3", "--merge", "3>2",
                            "--out", str(tmp_path / "a")]) == 0  # fmt: skip
    assert len(reads) == 1
    assert uvosam_cli.main(["rerender", str(run), "--split", "1@4", "--keep", "4",
                            "--out", str(tmp_path / "b")]) == 2  # fmt: skip
    assert "error: --keep: there is no track 4 in this run (its tracks once split: 1, 2, 3)\n" in (
        capsys.readouterr().err
    )
    assert len(reads) == 2 and not (tmp_path / "b").exists()


def test_with_a_stride_the_readme_says_how_frame_numbers_map_to_the_files(
    tmp_path, clip, tiny_sam_model
):
    """tracks.csv counts processed frames, the PNGs keep the input frames' names: with a stride they differ."""
    path, video = clip
    pipe = UVOSAM(ReplayTracker(video.boxes_xyxy[::2]), BoxPromptSegmenter(tiny_sam_model))
    final = list(run_job(pipe, path, tmp_path / "job", JobOptions(stride=2, max_frames=4)))[
        -1
    ].result
    with zipfile.ZipFile(final.zip_path) as z:
        readme = z.read("README.txt").decode()
        pngs = sorted(n.rsplit("/", 1)[-1] for n in z.namelist() if n.startswith("davis/"))
    assert "Frame stride 2: one frame in 2 of the input was processed" in readme
    assert (
        "frame k is the input's frame 2k" in readme and "(frame 1: 00002.png for a video)" in readme
    )
    assert pngs[:2] == ["00000.png", "00002.png"]
    plain = list(run_job(pipe, path, tmp_path / "plain", JobOptions(max_frames=2)))[-1].result
    assert "Frame stride" not in zipfile.ZipFile(plain.zip_path).read("README.txt").decode()


def test_fit_side_runs_at_the_scaled_size_and_over_the_source_changes_nothing(
    tmp_path, clip, tiny_sam_model
):
    """``JobOptions.fit_side``: a run's frames, masks, video, exports and re-render have the scaled size, run.json
    and the README record both sizes; a fit_side over the source's size gives the same files, byte for byte, as
    none."""
    from doubles import MovingBoxTracker
    from PIL import Image

    from uvosam.job import rerender

    path, _ = clip  # 64x48
    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))

    def run(name, **fields):
        options = JobOptions(max_frames=3, cache=True, **fields)
        return list(run_job(pipe, path, tmp_path / name, options))[-1].result

    def pngs(result):
        export = result.zip_path.parent / "export"
        return {p.relative_to(export): p for p in sorted(export.rglob("*.png"))}

    def record(result):
        return json.loads(zipfile.ZipFile(result.zip_path).read("run.json"))

    plain, over = run("plain"), run("over", fit_side=1920)
    assert over.info == plain.info and over.info.scaled_from is None
    assert {k: p.read_bytes() for k, p in pngs(over).items()} == {
        k: p.read_bytes() for k, p in pngs(plain).items()
    }
    assert record(over)["video"] == record(plain)["video"]
    scaled = run("scaled", fit_side=33)  # the longest side rounded down to even: 32x24
    assert (scaled.info.width, scaled.info.height, scaled.info.scaled_from) == (32, 24, (64, 48))
    assert (probe(scaled.overlay_mp4).width, probe(scaled.overlay_mp4).height) == (32, 24)
    masks = [p for k, p in pngs(scaled).items() if k.parts[0] in ("davis", "cutouts")]
    assert any("cutouts" in p.parts for p in masks)
    assert {Image.open(p).size for p in masks} == {(32, 24)}
    made = record(scaled)
    assert made["video"] | {"fps": None} == {
        "name": "shapes_clip", "source": path.name, "width": 32, "height": 24, "source_width": 64,
        "source_height": 48, "fps": None, "source_frames": 25,
    }  # fmt: skip
    assert made["settings"]["fit_side"] == 33 and record(plain)["settings"]["fit_side"] is None
    readme = " ".join(zipfile.ZipFile(scaled.zip_path).read("README.txt").decode().split())
    assert (
        "masks at the frames' size, 32x24, scaled down from the source's 64x48 (fit_side 33)."
        in readme
    )
    assert (  # results.json's boxes too: not the original frame's pixels
        "The boxes are in pixels of the frames the run processed, 32x24 (the masks' size): the source's 64x48 "
        "frames scaled down (fit_side 33), scale 0.5: divide the boxes by 0.5 for the source's pixels."
        in readme
    )
    again = rerender(scaled.cache_dir, tmp_path / "again", keep_ids=[1])
    assert {Image.open(p).size for p in pngs(again).values() if "davis" in p.parts} == {(32, 24)}
    assert record(again)["video"] == made["video"] and record(again)["settings"] == made["settings"]


def test_segment_cli_fit_side_runs_at_the_scaled_size(
    tmp_path, clip, tiny_sam_model, monkeypatch, capsys
):
    """``segment --fit-side``: run.json and the video at the scaled size, and a note on stderr that says so (it
    said nothing of a scaled run); a --fit-side over the source's size scales nothing and says nothing."""
    from doubles import MovingBoxTracker

    path, _ = clip  # 64x48
    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    monkeypatch.setattr(uvosam_cli.segment, "load_pipeline", lambda args: pipe)
    out = tmp_path / "out"
    assert uvosam_cli.main(["segment", str(path), "--out", str(out), "--max-frames", "2",
                            "--fit-side", "32"]) == 0  # fmt: skip
    noted = f"note: {path.name} is 64x48, processed at 32x24 (--fit-side 32)\n"
    assert noted in capsys.readouterr().err
    made = json.loads((out / "export" / "run.json").read_text())
    assert (made["video"]["width"], made["video"]["height"], made["settings"]["fit_side"]) == (
        32,
        24,
        32,
    )
    overlay = probe(out / "shapes_clip_overlay.mp4")
    assert (overlay.num_frames, overlay.width, overlay.height) == (2, 32, 24)
    assert uvosam_cli.main(["segment", str(path), "--out", str(tmp_path / "over"), "--max-frames", "1",
                            "--fit-side", "64"]) == 0  # fmt: skip
    assert "processed at" not in capsys.readouterr().err


def test_a_run_on_a_full_disk_names_its_folder_and_removes_the_one_it_made(
    tmp_path, tiny_sam_model
):
    """A bare "[Errno 28] No space left on device" (no path), and the fresh, empty --out folder was left (the
    command line removed it, Python callers had to)."""
    import errno

    from doubles import MovingBoxTracker
    from run_helpers import run_clip

    full = MovingBoxTracker(
        fail_at=2, error=lambda: OSError(errno.ENOSPC, "No space left on device")
    )
    pipe = UVOSAM(full, BoxPromptSegmenter(tiny_sam_model))
    out = tmp_path / "new" / "out"
    with pytest.raises(OSError) as caught:
        list(run_job(pipe, run_clip(tmp_path / "clip.mp4"), out))
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(out)
    assert str(caught.value) == f"[Errno 28] No space left on device: '{out}'"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_a_failing_clean_up_neither_hides_the_runs_error_nor_stops_the_rest(
    tmp_path, clip, tiny_sam_model, monkeypatch, caplog
):
    """A tracker's TypeError, then the video's deletion failing: the command line said "no permission to write in
    <out>" (the TypeError only in -v's chained traceback) and the exports and the cache were left. Now the run's
    error is raised, the clean-up's is a warning with its traceback, and every other clean-up step ran."""
    import logging

    from doubles import MovingBoxTracker

    from uvosam.video_writer import VideoWriter

    discard = VideoWriter.discard

    def denied(self):
        discard(self)
        raise PermissionError(13, "Permission denied", str(self.path))

    monkeypatch.setattr(VideoWriter, "discard", denied)
    bug = TypeError("'NoneType' object is not subscriptable")
    pipe = UVOSAM(
        MovingBoxTracker(fail_at=2, error=lambda: bug), BoxPromptSegmenter(tiny_sam_model)
    )
    work = tmp_path / "job"
    with pytest.raises(TypeError) as raised:
        list(run_job(pipe, clip[0], work, JobOptions(cache=True)))
    assert raised.value is bug
    (warning,) = [r for r in caplog.records if "clean-up after" in r.getMessage()]
    assert warning.levelno == logging.WARNING and isinstance(warning.exc_info[1], PermissionError)
    assert _files(work) == []  # the exports and the cache went too


def test_rerender_cli_refuses_a_killed_runs_cache_with_cli_advice(
    tmp_path, clip, tiny_sam_model, monkeypatch, capsys
):
    """A cache with no end mark (the run was killed): the advice is the command's ``--cache``, not Python's
    ``JobOptions(cache=True)``, and nothing is written."""
    path, video = clip
    monkeypatch.setattr(
        uvosam_cli.segment, "load_pipeline", lambda args: _pipe(video, tiny_sam_model)
    )
    run = tmp_path / "run"
    assert (
        uvosam_cli.main(["segment", str(path), "--out", str(run), "--max-frames", "3", "--cache"])
        == 0
    )
    capsys.readouterr()
    meta = run / "cache" / "meta.json"
    data = json.loads(meta.read_text())
    # as a SIGKILLed run leaves it: frames, no end mark
    data["num_frames"] = None
    meta.write_text(json.dumps(data))
    assert uvosam_cli.main(["rerender", str(run), "--out", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err
    assert "did not finish (it holds 3 frames but no end mark" in err
    assert "run the video again with `uvosam segment ... --out <folder> --cache`" in err
    assert "JobOptions" not in err
    assert not (tmp_path / "again").exists()
