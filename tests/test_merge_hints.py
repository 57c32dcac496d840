"""Possible id switches: a track starting right where and when another ended is proposed as a merge."""

from __future__ import annotations

from uvosam.merge_hints import merge_text, split_groups, suggest_merges
from uvosam.track_edit import check_merge, parse_merge


def _track(frames, x0=0.0, dx=2.0, size=20.0):
    """Boxes of a square moving right by ``dx`` px per frame, on ``frames``."""
    return {t: [x0 + dx * t, 10.0, x0 + dx * t + size, 10.0 + size] for t in frames}


def test_a_track_that_picks_up_where_another_stopped_is_proposed():
    boxes = {
        1: _track(range(10)),  # object A, lost at frame 9
        2: _track(range(30), x0=200),  # object B, far away, seen all along
        3: _track(range(13, 30)),  # object A again from frame 13: 3 frames later, on its path
    }
    (hint,) = suggest_merges(boxes)
    assert (hint.source, hint.target, hint.gap_frames) == (3, 1, 3)
    assert 0 < hint.distance < 0.5
    assert hint.describe() == (
        f"track 3 starts 3 frames after track 1 ends, {hint.distance:.2f} box diagonals "
        "from where it was last seen"
    )
    assert merge_text([hint]) == "3>1"


def test_far_away_late_or_overlapping_tracks_are_not_proposed():
    boxes = {
        1: _track(range(10)),
        2: _track(range(12, 20), x0=300),  # starts just after, but far away
        3: _track(range(60, 70)),  # on 1's path, but 50 frames later
        4: _track(range(5, 20)),  # overlaps 1 in time: two objects, not one
    }
    assert suggest_merges(boxes) == []
    (far,) = suggest_merges(boxes, max_distance=20)  # the limits are what keeps 2 out
    assert (far.source, far.target, far.gap_frames) == (2, 1, 2) and far.distance > 10


def test_a_chain_is_merged_into_its_first_id_and_each_track_continues_one():
    boxes = {
        1: _track(range(5)),
        2: _track(range(6, 10)),  # continues 1
        3: _track(range(11, 15)),  # continues 2, so 1
        # could continue 1 too, but 2 is closer: 1 is continued once only
        4: _track(range(6, 10), x0=-10.0),
    }
    hints = suggest_merges(boxes)
    assert merge_text(hints) == "2>1, 3>1"
    check_merge(parse_merge(merge_text(hints)), boxes)  # valid as it stands: no chain
    assert suggest_merges({}) == [] and suggest_merges({1: {}}) == []


def test_the_app_reads_the_hints_from_the_zip_it_shows(tmp_path):
    from uvosam.export import make_zip
    from uvosam_app import handlers as app_handlers
    from uvosam_app.settings import AppSettings

    export = _export(tmp_path, {1: _track(range(6)), 2: _track(range(8, 12))})
    assert merge_text(export.merge_hints) == "2>1"
    app = app_handlers.App(lambda preset, sam: None, AppSettings())
    text = app.views.merge_hints(str(make_zip(export)))
    assert text.startswith("**Possible id switches**") and "put `2>1` in *Merge tracks*" in text
    assert (
        app.views.merge_hints(None) == ""
        and app.views.merge_hints(str(tmp_path / "gone.zip")) == ""
    )


def test_a_gap_of_one_frame_is_said_in_the_singular():
    (hint,) = suggest_merges({1: _track(range(5)), 2: _track(range(6, 10))})
    assert hint.gap_frames == 1
    # not "1 frames"
    assert hint.describe().startswith("track 2 starts 1 frame after track 1 ends, ")


def test_a_hint_in_a_chain_says_which_track_it_follows_not_only_the_first_id():
    boxes = {
        1: _track(range(5)),
        2: _track(range(8, 13)),
        3: _track(range(13, 17)),
    }  # 1 -> 2 -> 3
    first, second = suggest_merges(boxes)
    # 3 starts the frame after 2 ends (12 -> 13), not after 1 (frame 4): the gap and distance are to 2
    assert second.describe().startswith(
        "track 3 starts the frame after track 2 ends (itself part of track 1), "
    )
    assert (second.source, second.target, second.after, second.gap_frames) == (3, 1, 2, 0)
    assert (first.source, first.target, first.after, first.gap_frames) == (2, 1, 1, 3)
    assert first.describe().startswith("track 2 starts 3 frames after track 1 ends, ")


def test_the_printed_command_can_be_pasted_for_a_run_folder_with_spaces(capsys):
    import shlex
    from pathlib import Path

    from uvosam_cli.hints import print_merge_hints

    hints = suggest_merges({1: _track(range(5)), 2: _track(range(6, 10))})
    print_merge_hints(hints, Path("my runs/clip 1"))
    command = capsys.readouterr().out.splitlines()[-1].split(": ", 1)[1]
    assert shlex.split(command) == ["uvosam", "rerender", "my runs/clip 1", "--merge", "2>1"]
    # after a re-render with --split: the command repeats it (it starts from the run's masks: else the split is undone)
    print_merge_hints(hints, Path("run"), split=["3@4", "5@2,5@6"])
    command = capsys.readouterr().out.splitlines()[-1].split(": ", 1)[1]
    assert shlex.split(command) == [
        "uvosam",
        "rerender",
        "run",
        "--split",
        "3@4",
        "5@2,5@6",
        "--merge",
        "2>1",
    ]


def _export(out, boxes, merge=None):
    """An ``ExportWriter`` export of ``boxes`` ({track: {frame: xyxy}}) on a 40x64 video (made with ``merge``, as a
    re-render's)."""
    import numpy as np

    from uvosam.export import ExportWriter
    from uvosam.types import FrameResult

    image = np.zeros((40, 64, 3), np.uint8)
    num_frames = max(max(frames) for frames in boxes.values()) + 1
    with ExportWriter(
        out, video_name="v", class_names=["o"], height=40, width=64, merge=merge
    ) as writer:
        for t in range(num_frames):
            ids = [i for i in boxes if t in boxes[i]]
            masks = np.zeros((len(ids), 40, 64), bool)
            masks[:, 12:30, :] = True
            writer.add(FrameResult(t, image, np.array(ids, np.int64), np.array([boxes[i][t] for i in ids], np.float32)
                                   .reshape(-1, 4), np.full(len(ids), 0.9, np.float32), np.zeros(len(ids), np.int64),
                                   masks, np.ones(len(ids), np.float32)))  # fmt: skip
    return writer.close()


def _export_zip(out, boxes, merge=None):
    """The zip of ``_export(out, boxes, merge)``."""
    from uvosam.export import make_zip

    return str(make_zip(_export(out, boxes, merge)))


def test_after_a_rerender_with_merges_the_app_proposes_the_whole_merge(tmp_path):
    """Re-render starts from the run's tracks: after one made with "2>1" (shown in Merge tracks), the track left
    over is proposed with 2>1 kept, or putting the new pair alone in the box would undo 2>1."""
    from uvosam_app import handlers as app_handlers
    from uvosam_app.settings import AppSettings

    run = {
        1: _track(range(5)),
        2: _track(range(7, 12)),
        3: _track(range(14, 18)),
        4: _track(range(18), 200),
    }
    merged = {1: {**run[1], **run[2]}, 3: run[3], 4: run[4]}  # the re-render's tracks after "2>1"
    app = app_handlers.App(lambda preset, sam: None, AppSettings())
    text = app.views.merge_hints(_export_zip(tmp_path / "rerender", merged), "2>1")
    assert "- `3>1`: track 3 starts 2 frames after track 1 ends" in text
    assert "put `2>1, 3>1` in *Merge tracks*" in text, text
    check_merge(parse_merge("2>1, 3>1"), run)
    # a run's zip: what the box holds (an earlier run's merges, a typo) names none of its merged-away tracks
    shown = _export_zip(tmp_path / "run", run)
    for box in ("", "4>1", "2>1 oops", None):
        assert "put `2>1, 3>1` in *Merge tracks*" in app.views.merge_hints(shown, box)


def test_the_hints_follow_the_zip_shown_and_read_the_merge_tracks_box(tmp_path):
    import app as app_module
    from uvosam_app.settings import AppSettings

    config = app_module.build_demo(
        lambda preset, sam: None, settings=AppSettings(work_root=tmp_path)
    ).get_config_file()
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    (shown,) = [
        d for d in config["dependencies"] if ids["hints"] in d["outputs"]
    ]  # with the timeline
    assert [list(t) for t in shown["targets"]] == [[ids["zip"], "change"]] and shown[
        "queue"
    ] is False
    assert shown["inputs"] == [ids["zip"], ids["merge"]]


def test_the_zip_readme_of_a_rerender_with_merges_gives_the_whole_merge(tmp_path):
    """The README of a re-render's zip lists the hints among its tracks; following the merge it gives must not undo
    the re-render's own merges (a re-render starts from the run's tracks)."""
    import zipfile

    merged = {
        1: {**_track(range(5)), **_track(range(7, 12))},
        3: _track(range(14, 18)),
    }  # made with "2>1"
    readme = (
        zipfile.ZipFile(_export_zip(tmp_path / "a", merged, merge={2: 1}))
        .read("README.txt")
        .decode()
    )
    assert 're-render with merge "2>1, 3>1"' in readme, readme
    alone = zipfile.ZipFile(_export_zip(tmp_path / "b", merged)).read("README.txt").decode()
    assert 're-render with merge "3>1"' in alone  # a run's zip: the hints alone


def test_the_whole_merge_after_an_applied_one_has_no_chain():
    run = {1: _track(range(5)), 2: _track(range(7, 12)), 5: _track(range(7, 12), 1.0)}
    shown = {1: run[1], 2: {**run[2], **run[5]}}  # re-rendered with "5>2": 2 now continues 1
    hints = suggest_merges(shown)
    assert merge_text(hints) == "2>1"
    whole = merge_text(hints, {5: 2})
    assert whole == "5>1, 2>1"  # not "5>2, 2>1", a chain that check_merge refuses
    check_merge(parse_merge(whole), run)


def test_an_object_back_after_idols_memory_ran_out_is_proposed():
    """IDOL forgets a lost track after 10 processed frames: the object comes back under a new id 10+ frames later."""
    boxes = {
        1: _track(range(10), dx=0.5),
        2: _track(range(25, 40), dx=0.5),
    }  # away for 15 frames, slow
    (hint,) = suggest_merges(boxes)
    assert (hint.source, hint.target, hint.gap_frames) == (2, 1, 15)


def test_a_near_pair_is_not_taken_by_a_sooner_but_farther_one():
    """Track 3 starts right after 1 ended but far from it, and near where 2 was; track 4 starts a frame later, on 1."""
    boxes = {
        1: {9: [100.0, 0.0, 120.0, 20.0]},
        2: {4: [160.0, 0.0, 180.0, 20.0]},
        3: {
            10: [120.0, 0.0, 140.0, 20.0],
            11: [120.0, 0.0, 140.0, 20.0],
        },  # 0.71 diagonals from 1, 1.41 from 2
        4: {11: [101.0, 0.0, 121.0, 20.0]},  # 0.04 diagonals from 1
    }
    # (by gap first: "3>1" alone)
    assert merge_text(suggest_merges(boxes, max_distance=2.0)) == "3>2, 4>1"


def test_segment_without_cache_says_how_to_join_them(capsys, tmp_path):
    from uvosam_cli.hints import print_merge_hints

    hints = suggest_merges({1: _track(range(5)), 2: _track(range(7, 12))})
    print_merge_hints(hints, tmp_path, cached=False)
    out = capsys.readouterr().out
    assert f'run segment again with --cache, then: uvosam rerender {tmp_path} --merge "2>1"' in out
    print_merge_hints(hints, tmp_path)
    assert f'to join them: uvosam rerender {tmp_path} --merge "2>1"' in capsys.readouterr().out
    print_merge_hints([], tmp_path)
    assert capsys.readouterr().out == ""


def test_the_parts_of_a_split_track_are_kept_apart_not_only_dropped():
    """A split-off part (3, from 1's frame 6 on) continues its track where it ended: never proposed, and the track
    it is kept from (2) may continue it instead. Groups are the ids in the export: after the merge, 3>5 puts the
    part in 5, and 1's own id follows a merge of it too."""
    boxes = {1: _track(range(6)), 3: _track(range(6, 12)), 2: _track(range(14, 20))}
    assert merge_text(suggest_merges(boxes)) == "3>1, 2>1"
    rerender = {"split_ids": {"1@6": 3}, "merge": {}}
    assert split_groups(rerender) == [{1, 3}]
    assert merge_text(suggest_merges(boxes, apart=split_groups(rerender))) == "2>3"
    # a chain through another track: 2 after 3 after 1, with 1 and 2 the parts of one split
    assert merge_text(suggest_merges(boxes, apart=[{1, 2}])) == "3>1"
    assert split_groups({"split_ids": {"1@6": 3, "1@9": 4, "7@2": 8}, "merge": {"3": 5, "1": 9}}) == [
        {9, 5, 4}, {7, 8},
    ]  # fmt: skip
    assert split_groups(None) == [] and split_groups({"split_ids": {}, "merge": {"2": 1}}) == []


def test_the_page_lists_the_first_hints_and_counts_the_rest_which_the_readme_lists(tmp_path):
    """9,000 tracks made a megabyte of hints Markdown; the page lists ``MAX_HINTS_SHOWN``, the merge to put joins
    those, and the zip's README.txt (and the CLI) keeps them all."""
    import zipfile

    from uvosam_app.results import MAX_HINTS_SHOWN, merge_hints_markdown

    # one hint each: a track lost at frame 4, one picking up at frame 6
    chains = MAX_HINTS_SHOWN + 5
    boxes = {}
    for k in range(chains):
        boxes[k + 1] = _track(range(5), x0=100.0 * k)
        boxes[k + 1 + chains] = _track(range(6, 9), x0=100.0 * k)
    zip_path = _export_zip(tmp_path, boxes)
    text = merge_hints_markdown(zip_path)
    assert text.count("\n- `") == MAX_HINTS_SHOWN
    assert "\n- and 5 more: the zip's README.txt lists them all" in text
    shown = ", ".join(f"{k + 1 + chains}>{k + 1}" for k in range(MAX_HINTS_SHOWN))
    assert f"To join the {MAX_HINTS_SHOWN} above, put `{shown}` in *Merge tracks*" in text
    readme = zipfile.ZipFile(zip_path).read("README.txt").decode()
    assert readme.count(" box diagonals from where it was last seen") == chains


def test_a_zip_with_a_timeline_too_large_to_read_still_shows_a_timeline_and_its_hints(
    tmp_path, monkeypatch
):
    """A zip of an earlier version drew a row per track: 9,000 tracks made a timeline.png Pillow refuses to open
    (DecompressionBombError), and the event that shows the zip's timeline lost its merge hints with it. Such a
    timeline is drawn again from the zip's tables, as the export draws it now."""
    import io
    import zipfile

    from PIL import Image

    from uvosam.timeline import largest_size
    from uvosam_app import handlers as app_handlers
    from uvosam_app.results import timeline_views
    from uvosam_app.settings import AppSettings

    made = _export_zip(tmp_path / "run", {1: _track(range(6)), 2: _track(range(8, 12))})
    old = tmp_path / "old.zip"
    with zipfile.ZipFile(made) as run, zipfile.ZipFile(old, "w") as out:
        for name in run.namelist():
            if name != "timeline.png":
                out.writestr(name, run.read(name))
        tall = io.BytesIO()
        Image.new("RGB", (1066, 3000), "white").save(tall, format="PNG")  # 136 rows: over the bound
        out.writestr("timeline.png", tall.getvalue())
    app = app_handlers.App(lambda preset, sam: None, AppSettings())
    monkeypatch.setattr(app.served, "shows", lambda path: True)
    # refused over twice that (the app's: 179 Mpx)
    for pillow_limit in (Image.MAX_IMAGE_PIXELS, 1_500_000):
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)
        wide, narrow, alt = timeline_views(str(old))
        assert wide.shape[0] < largest_size()[0] and wide.shape[1] == largest_size()[1]
        assert narrow is not None and alt.startswith("Track timeline of 12 frames: #1 o frames 0-5")
        *_, hints, _ = app.views.zip_shown(str(old))
        assert "put `2>1` in *Merge tracks*" in hints


def test_the_views_of_a_zip_read_its_run_json_within_the_bound_and_split_ids_one_way(tmp_path):
    """The timeline and the merge hints read a zip's run.json whole, however large its listing said it was (only
    Tracks to keep's reader had a bound): one bounded reader now serves them all. A run.json of spaces declaring
    more than ``MAX_RECORD_BYTES`` (a few kB of zip) is no export's: read as none."""
    import json
    import zipfile

    from uvosam.merge_hints import recorded_split_ids
    from uvosam_app.keep_parts import rerender_record
    from uvosam_app.results import MAX_RECORD_BYTES, merge_hints_markdown, timeline_views

    made = _export_zip(tmp_path / "run", {1: _track(range(6)), 2: _track(range(8, 12))})
    record = json.loads(zipfile.ZipFile(made).read("run.json"))
    record["rerender"] = {
        "split_ids": {"1@8": 2},
        "merge": {},
    }  # 2 is a part of 1: no hint to undo the split

    def with_run_json(name: str, text: str) -> str:
        out = tmp_path / name
        with zipfile.ZipFile(made) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
            for member in src.namelist():
                dst.writestr(member, text if member == "run.json" else src.read(member))
        return str(out)

    small = with_run_json("small.zip", json.dumps(record))
    padded = with_run_json("padded.zip", json.dumps(record) + " " * MAX_RECORD_BYTES)
    assert merge_hints_markdown(small) == "" and "put `2>1`" in merge_hints_markdown(padded)
    assert timeline_views(small)[1] is not None and timeline_views(padded)[1] is None
    assert rerender_record(small) == record["rerender"] and rerender_record(padded) is None
    assert recorded_split_ids(record["rerender"]) == {(1, 8): 2} and recorded_split_ids(None) == {}
