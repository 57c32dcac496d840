"""A run into a folder that holds an earlier result: it replaces that result whole once finished, or (failed,
stopped, killed) leaves it exactly as it was (``uvosam.job_staging``)."""

import os
import re
from pathlib import Path

import pytest
from doubles import MovingBoxTracker
from proc import ffmpeg_children
from run_helpers import run_clip, snapshot

import uvosam.job
import uvosam_cli
from uvosam.export_types import ExportOptions
from uvosam.job import rerender, rerender_iter, run_job
from uvosam.job_staging import (
    STAGING_PREFIX,
    Staging,
    check_replaceable,
    rerender_keeps,
    sweep_leftovers,
)
from uvosam.job_types import JobOptions
from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter


@pytest.fixture()
def pipe(tiny_sam_model):
    return UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))


@pytest.fixture()
def earlier(tmp_path, pipe):
    """A finished run of clip.mp4 in matte style with a cache, mattes and the alpha WebM, and a user's files."""
    work = tmp_path / "out"
    options = JobOptions(
        style="matte", cache=True, export=ExportOptions(mattes=True, alpha_webm=True)
    )
    list(run_job(pipe, run_clip(tmp_path / "clip.mp4"), work, options))
    (work / "notes.txt").write_text("mine")
    (work / "export" / "notes.txt").write_text("mine too")
    return work


def _failing_decoder(monkeypatch, after):
    iter_probed = uvosam.job.iter_probed

    def failing(*args, **kwargs):
        for i, frame in enumerate(iter_probed(*args, **kwargs)):
            if i == after:
                raise OSError(28, "No space left on device (simulated)")
            yield frame

    monkeypatch.setattr(uvosam.job, "iter_probed", failing)


def test_a_rerun_that_fails_midway_leaves_the_earlier_result_as_it_was(
    tmp_path, pipe, earlier, monkeypatch
):
    before = snapshot(earlier)
    other = run_clip(
        tmp_path / "other" / "clip.mp4", num_frames=12, seed=9
    )  # same stem, another file
    _failing_decoder(monkeypatch, after=5)
    with pytest.raises(OSError, match="No space left"):
        list(run_job(pipe, other, earlier, JobOptions(cache=True)))
    assert snapshot(earlier) == before and ffmpeg_children() == []


def test_a_rerun_stopped_midway_leaves_the_earlier_result_as_it_was(tmp_path, pipe, earlier):
    """A closed generator: Ctrl-C in the CLI, Stop in the app."""
    before = snapshot(earlier)
    job = run_job(pipe, run_clip(tmp_path / "b" / "clip.mp4", seed=9), earlier, JobOptions())
    for _ in range(4):
        next(job)
    assert any(p.name.startswith(STAGING_PREFIX) for p in earlier.iterdir())
    job.close()
    assert snapshot(earlier) == before and ffmpeg_children() == []


def test_a_finished_rerun_replaces_every_file_of_the_earlier_result_and_only_those(
    tmp_path, pipe, earlier
):
    other = run_clip(tmp_path / "c" / "clip.mp4", num_frames=5, seed=9)
    final = list(run_job(pipe, other, earlier, JobOptions()))[-1].result
    files = sorted(str(p.relative_to(earlier)) for p in earlier.rglob("*") if p.is_file())
    assert (
        files
        == sorted(
            ["notes.txt", "export/notes.txt", "clip_overlay.mp4", "clip_uvosam.zip"]
            + [
                f"export/{n}"
                for n in ("README.txt", "run.json", "results.json", "ytvis_results.json")
            ]
            + ["export/tracks.csv", "export/timeline.png"]
            + [f"export/davis/clip/{i:05d}.png" for i in range(5)]
            + [f"export/cutouts/clip/{t}/{i:05d}.png" for t in (1, 2) for i in range(5)]
        )
    )  # the matte video, the mattes, the WebM and the cache of the earlier run are gone; no staging folder
    assert final.overlay_mp4 == earlier / "clip_overlay.mp4" and final.cache_dir is None
    assert (
        final.zip_path == earlier / "clip_uvosam.zip" and final.export.out_dir == earlier / "export"
    )
    assert final.export.davis_dir == earlier / "export" / "davis" / "clip"


def test_a_rerun_with_a_cache_moves_it_in_and_can_be_rerendered(tmp_path, pipe, earlier):
    other = run_clip(tmp_path / "d" / "clip.mp4", num_frames=7, seed=9)
    final = list(run_job(pipe, other, earlier, JobOptions(cache=True, chunk_seconds=0.3)))
    result = final[-1].result
    assert result.cache_dir == earlier / "cache" and final[-1].chunk.parent.parent == earlier
    assert final[-1].chunk.is_file()
    again = rerender(
        earlier, earlier, keep_ids=[1]
    )  # into its own folder: the cache it reads stays
    assert again.num_frames == 7 and (earlier / "cache" / "meta.json").is_file()
    assert [t.track_id for t in again.tracks] == [1]
    assert not any(p.name.startswith(STAGING_PREFIX) for p in earlier.iterdir())


def test_a_staging_folder_left_by_a_killed_run_goes_with_the_next_run(tmp_path, pipe, earlier):
    killed = earlier / f"{STAGING_PREFIX}1-dead"
    (killed / "export").mkdir(parents=True)
    (killed / ".lock").write_text("")  # nobody holds it: its run is gone
    (killed / "clip_overlay.mp4").write_bytes(b"half")
    list(run_job(pipe, run_clip(tmp_path / "e" / "clip.mp4", num_frames=3), earlier, JobOptions()))
    assert not killed.exists()


def test_an_output_that_is_the_input_is_refused_before_anything_is_written(tmp_path, pipe):
    name = (
        "A" * 80 + "_overlay.mp4"
    )  # its stem cut to 80 characters names the video: the input itself
    source = run_clip(tmp_path / name)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=f"would replace .*{name}, which is the input"):
        list(run_job(pipe, source, tmp_path, JobOptions()))
    assert snapshot(tmp_path) == before


def test_an_earlier_result_that_cannot_be_deleted_is_refused_at_once(earlier, monkeypatch):
    """As a rerun by another user into a folder whose davis/clip is root's (tests run as root: os.access says)."""
    import uvosam.job_staging

    davis = earlier / "export" / "davis" / "clip"
    access = os.access
    monkeypatch.setattr(
        uvosam.job_staging.os, "access", lambda p, mode: Path(p) != davis and access(p, mode)
    )
    with pytest.raises(ValueError, match=r"--out .* no permission to delete files in .*davis/clip"):
        check_replaceable(earlier, "clip", source=None, option="--out")
    assert check_replaceable(earlier / "nothing here", "clip", source=None, option="--out") is None


def test_a_run_json_naming_a_path_out_of_the_folder_is_not_followed(tmp_path, pipe, earlier):
    import json

    outside = tmp_path / "precious_uvosam.zip"
    outside.write_text("keep me")
    run_json = earlier / "export" / "run.json"
    record = json.loads(run_json.read_text())
    record["video"]["name"] = "../precious"
    run_json.write_text(json.dumps(record))
    list(run_job(pipe, run_clip(tmp_path / "f" / "clip.mp4", num_frames=3), earlier, JobOptions()))
    assert outside.read_text() == "keep me"


@pytest.mark.parametrize(
    ("recorded", "name"), [("con", "con"), ("bünny", "bünny"), ("../con", None), (".con", None)]
)
def test_a_run_json_names_the_folders_last_run_as_a_release_named_it(tmp_path, recorded, name):
    """A run of con.mp4 made before ``safe_name`` added ``_`` after a device name of Windows recorded ``con``, which
    the check (``safe_name(name) == name``) then refused: a later run's note took that run for its own."""
    import json

    from uvosam.job_staging import earlier_result

    (tmp_path / "export").mkdir()
    record = {"video": {"name": recorded, "source": "con.mp4"}}
    (tmp_path / "export" / "run.json").write_text(json.dumps(record))
    assert earlier_result(tmp_path, "con_").video_name == name


def test_a_run_of_another_video_keeps_its_result_and_replaces_the_folders_last_run_files(
    tmp_path, pipe, earlier
):
    """`for f in *.mp4; do uvosam segment $f --out results; done` kept only the last video's result."""
    import json

    before = snapshot(earlier)
    bunny = run_clip(tmp_path / "b" / "bunny.mp4", num_frames=5, seed=9)
    final = list(run_job(pipe, bunny, earlier, JobOptions()))[-1].result
    after = snapshot(earlier)
    last_run = {
        f"export/{n}" for n in ("README.txt", "run.json", "results.json", "ytvis_results.json")
    }
    last_run |= {"export/tracks.csv", "export/timeline.png"}
    for name, data in before.items():
        if name == "cache" or name.startswith("cache/"):
            assert name not in after  # the folder's cache is the last run's (this one kept none)
        elif name not in last_run:
            assert after[name] == data, (
                name
            )  # clip's videos, zip, davis/cutouts/mattes, WebM; the user's
    assert json.loads((earlier / "export" / "run.json").read_text())["video"]["name"] == "bunny"
    assert final.overlay_mp4 == earlier / "bunny_overlay.mp4" and final.overlay_mp4.is_file()
    assert len(list((earlier / "export" / "davis" / "bunny").glob("*.png"))) == 5


def test_a_second_job_into_a_folder_being_written_is_refused_at_once(tmp_path, pipe):
    """Two jobs in one folder: the second one's video was left beside the first one's PNGs and cache, and the
    first one's JobResult named the second one's video."""
    work = tmp_path / "out"
    first = run_job(pipe, run_clip(tmp_path / "a" / "clip.mp4"), work, JobOptions(cache=True))
    next(first)
    busy = f"another uvosam run is writing to {re.escape(str(work))}; wait for it or pass another folder"
    for job in (
        run_job(pipe, run_clip(tmp_path / "b" / "clip.mp4", seed=9), work, JobOptions()),
        run_job(pipe, run_clip(tmp_path / "c" / "other.mp4", seed=9), work, JobOptions()),
    ):
        with pytest.raises(ValueError, match=busy):
            next(job)
    with pytest.raises(ValueError, match=busy):
        check_replaceable(work, "clip", source=None, option="--out")
    result = list(first)[-1].result
    assert result.num_frames == 8 and result.overlay_mp4 == work / "clip_overlay.mp4"
    assert sorted(p.name for p in work.iterdir()) == [
        "cache",
        "clip_overlay.mp4",
        "clip_uvosam.zip",
        "export",
    ]  # fmt: skip  (the lock file goes with the job)
    again = rerender_iter(work, work, keep_ids=[1])  # a re-render holds it too, until it is stopped
    next(again)
    with pytest.raises(ValueError, match=busy):
        next(run_job(pipe, run_clip(tmp_path / "b" / "clip.mp4", seed=9), work, JobOptions()))
    again.close()
    final = list(run_job(pipe, tmp_path / "b" / "clip.mp4", work, JobOptions()))[-1].result
    assert final.num_frames == 8 and not (work / ".uvosam.lock").exists()


def test_an_unfinished_jobs_staging_folder_survives_another_jobs_sweep(earlier, monkeypatch):
    import uvosam.job_staging

    staging = Staging(earlier, "clip")
    try:
        assert staging.staged and staging.dir.name.startswith(STAGING_PREFIX)
        (staging.dir / "clip_overlay.mp4").write_bytes(b"being written")
        sweep_leftovers(earlier)  # as a job in another folder's... or a killed one's next run
        assert (staging.dir / "clip_overlay.mp4").read_bytes() == b"being written"
    finally:
        staging.close()
    assert not staging.dir.exists()
    # another job's sweep between a staging folder's making and its lock: it was deleted under the new job
    lock_file = uvosam.job_staging.lock_file

    def swept_first(path):
        sweep_leftovers(earlier)
        return lock_file(path)

    monkeypatch.setattr(uvosam.job_staging, "lock_file", swept_first)
    staging = Staging(earlier, "clip")
    try:
        assert staging.dir.is_dir() and (staging.dir / ".lock").is_file()
    finally:
        staging.close()


def _failing_renames(monkeypatch, *, put_back_fails):
    """``os.replace`` failing (EIO) on the first new file moved into the folder, and on putting back the earlier
    entry numbered ``put_back_fails``."""
    replace = os.replace

    def renamed(src, dst):
        src, dst = Path(src), Path(dst)
        in_staging = [any(p.startswith(STAGING_PREFIX) for p in path.parts) for path in (src, dst)]
        aside = src.parent.name == ".replaced"
        if (in_staging == [True, False] and not aside) or (aside and src.name == put_back_fails):
            raise OSError(5, "Input/output error (simulated)")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", renamed)


def test_an_earlier_file_that_cannot_be_put_back_is_kept_and_the_rest_put_back(
    tmp_path, pipe, earlier, monkeypatch, caplog
):
    """A failed restoring rename raised out of the rollback, and the staging folder, .replaced too (the earlier
    result), was deleted."""
    before = snapshot(earlier)
    zip_bytes = (earlier / "clip_uvosam.zip").read_bytes()
    _failing_renames(monkeypatch, put_back_fails="0")  # 0: the first entry moved aside, the zip
    with pytest.raises(OSError, match="Input/output error"):
        list(run_job(pipe, run_clip(tmp_path / "b" / "clip.mp4", seed=9), earlier, JobOptions()))
    monkeypatch.undo()
    (staging,) = [p for p in earlier.iterdir() if p.name.startswith(STAGING_PREFIX)]
    assert (staging / ".replaced" / "0").read_bytes() == zip_bytes
    assert f"{staging / '.replaced'} holds files of the earlier result" in caplog.text
    after = snapshot(earlier)
    assert {k: v for k, v in after.items() if not k.startswith(staging.name)} == {
        k: v for k, v in before.items() if k != "clip_uvosam.zip"
    }  # everything else is back as it was
    sweep_leftovers(earlier)  # the next job's sweep: it stays
    assert (staging / ".replaced" / "0").read_bytes() == zip_bytes


def test_a_rerender_into_another_runs_folder_replaces_its_cache_too(tmp_path, pipe, earlier):
    """The other run's cache stayed, beside a result it no longer matched (``rerender OTHER_RUN``'s masks)."""
    mine = tmp_path / "mine"
    list(
        run_job(
            pipe,
            run_clip(tmp_path / "m" / "clip.mp4", num_frames=5, seed=9),
            mine,
            JobOptions(cache=True),
        )
    )
    result = rerender(mine, earlier, keep_ids=[1])
    assert result.cache_dir == mine / "cache" and result.num_frames == 5
    assert not (earlier / "cache").exists()
    assert (mine / "cache" / "meta.json").is_file()
    again = rerender(
        earlier / ".." / "mine", mine, keep_ids=[2]
    )  # its own cache, by another path: it stays
    assert again.num_frames == 5 and (mine / "cache" / "meta.json").is_file()


def test_a_rerender_keeps_the_cache_it_reads_only_when_it_is_the_folders_own(tmp_path, monkeypatch):
    """The rule ``rerender`` and ``uvosam rerender`` share: however the two paths are written."""
    (tmp_path / "run" / "cache").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path)
    assert rerender_keeps(Path("run/cache"), tmp_path / "run") == ("cache",)
    assert rerender_keeps(tmp_path / "run" / "cache", Path("other/../run")) == ("cache",)
    assert rerender_keeps(Path("run/cache"), Path("other")) == ()


def _davis_pngs(work: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((work / "export" / "davis").rglob("*.png"))}


def test_a_run_into_a_folder_a_rerender_reads_is_refused_until_it_ends(tmp_path, pipe):
    """The re-render reads the run's cache frame by frame: a run promoted into that folder meanwhile replaced it,
    and the re-render mixed the two runs' frames (or failed, FileNotFoundError), its run.json naming the first."""
    run = tmp_path / "run"
    list(run_job(pipe, run_clip(tmp_path / "a" / "clip.mp4"), run, JobOptions(cache=True)))
    reading = f"a uvosam rerender is reading the mask cache in {re.escape(str(run))}; wait for it"
    steps = rerender_iter(run, tmp_path / "out")
    for _ in range(3):
        next(steps)
    other = run_clip(tmp_path / "b" / "clip.mp4", seed=9)
    with pytest.raises(ValueError, match=reading):
        next(run_job(pipe, other, run, JobOptions(cache=True)))
    with pytest.raises(ValueError, match=reading):
        check_replaceable(run, "clip", source=None, option="--out")
    alongside = rerender(run, tmp_path / "alongside")  # another re-render of it is not refused
    assert list(steps)[-1].result.num_frames == alongside.num_frames == 8
    assert _davis_pngs(tmp_path / "out") == _davis_pngs(tmp_path / "alongside")
    assert sorted(p.name for p in run.iterdir()) == [
        "cache",
        "clip_overlay.mp4",
        "clip_uvosam.zip",
        "export",
    ]  # fmt: skip  (the lock file goes with the last re-render)
    assert list(run_job(pipe, other, run, JobOptions(cache=True)))[-1].result.num_frames == 8


def test_a_rerender_of_a_folder_a_run_writes_to_is_refused(tmp_path, pipe, earlier, capsys):
    """It read the earlier run's cache, which the run replaced under it."""
    steps = run_job(
        pipe, run_clip(tmp_path / "b" / "clip.mp4", seed=9), earlier, JobOptions(cache=True)
    )
    next(steps)
    writing = (
        f"another uvosam run is writing to {earlier}, whose mask cache this rerender would read as it changes; "
        "wait for it to finish"
    )
    try:
        with pytest.raises(ValueError, match=re.escape(writing)):
            next(rerender_iter(earlier, tmp_path / "elsewhere"))
        assert (
            uvosam_cli.main(["rerender", str(earlier), "--out", str(tmp_path / "elsewhere")]) == 2
        )
        assert capsys.readouterr().err.splitlines()[-1] == f"uvosam rerender: error: {writing}"
        assert not (tmp_path / "elsewhere").exists()
    finally:
        steps.close()
