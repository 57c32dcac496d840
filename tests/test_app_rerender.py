"""Re-render (``App.rerenders.rerender``): a finished run's masks again with fewer tracks, merged tracks, a higher score
threshold or another style, without the models; and its refusals. Tiny models on CPU."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

pytest.importorskip("gradio")
from app_helpers import client, davis_labels, finished_run, run_json, stepped, zip_names
from doubles import MovingBoxTracker
from gradio_client import Client, handle_file

from uvosam.pipeline import UVOSAM
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.video import iter_frames, probe
from uvosam_app.settings import AppSettings


def test_rerender_with_a_subset_of_tracks_drops_the_others(server, clips):
    """Fewer tracks, another style, merged tracks, a higher score threshold: each re-render's files are named after
    what it did (they had the run's names: a browser saved "clip_a_uvosam (1).zip" beside the run's), the zip and
    the mp4 by the same rule; the zip's folders keep the video's name."""
    c = client(server)
    first = c.predict(handle_file(str(clips["a"])), stride=2, api_name="/segment")  # 16 frames -> 8
    assert davis_labels(first[4], "clip_a") == (8, {0, 1, 2})
    assert (Path(first[3]).name, Path(first[4]).name) == ("clip_a_overlay.mp4", "clip_a_uvosam.zip")
    status, _, _, mp4, zip_path, table = c.predict([2], api_name="/rerender")  # as in docs/app.md
    assert status.startswith("done: 8 frames, 1 track ")
    assert (Path(mp4).name, Path(zip_path).name) == (
        "clip_a_keep-2_overlay.mp4",
        "clip_a_keep-2_uvosam.zip",
    )
    assert [row[0] for row in table["data"]] == [2]
    names = zip_names(zip_path)
    assert not any(n.startswith("cutouts/clip_a/1/") for n in names)
    assert any(n.startswith("cutouts/clip_a/2/") for n in names)
    assert davis_labels(zip_path, "clip_a") == (8, {0, 1})  # only the kept track, relabelled 1
    assert probe(mp4).num_frames == 8
    # the same masks again, as a matte: another style without running the models
    status, _, _, matte, zip_path, _ = c.predict(
        [1, 2], style="matte", alpha_webm=True, api_name="/rerender"
    )
    assert status.startswith("done: 8 frames, 2 tracks") and matte.endswith(
        "/clip_a_keep-1-2_matte.mp4"
    )
    assert zip_path.endswith("/clip_a_keep-1-2_uvosam.zip")
    assert "clip_a_alpha.webm" in zip_names(zip_path) and "clip_a_alpha.webm" not in names
    frame = next(iter_frames(matte))
    assert frame.max() > 200 and (frame < 30).mean() > 0.5  # white objects on black
    # one object split into two ids: merged, everywhere (table, zip), without the models
    status, _, _, mp4, zip_path, table = c.predict([1, 2], merge="2>1", api_name="/rerender")
    assert status.startswith("done: 8 frames, 1 track ")
    assert (Path(mp4).name, Path(zip_path).name) == (
        "clip_a_keep-1_merge-2into1_overlay.mp4",
        "clip_a_keep-1_merge-2into1_uvosam.zip",
    )
    made, run = (
        run_json(zip_path),
        run_json(first[4]),
    )  # the run's models and stride, and what the re-render did
    assert (
        made["models"] == run["models"]
        and made["settings"] == run["settings"]
        and run["settings"]["stride"] == 2
    )
    assert (made["rerender"]["keep_ids"], made["rerender"]["merge"]) == ([1, 2], {"2": 1})
    assert [row[:2] for row in table["data"]] == [[1, "person"]]
    assert davis_labels(zip_path, "clip_a") == (8, {0, 1})
    assert not any(n.startswith("cutouts/clip_a/2/") for n in zip_names(zip_path))
    # a higher score threshold, applied to the cached masks: track 2 (0.6 in every frame) goes
    status, _, _, _, zip_path, table = c.predict([1, 2], min_score=0.7, api_name="/rerender")
    assert Path(zip_path).name == "clip_a_keep-1_min0.7_uvosam.zip"
    assert status.startswith("done: 8 frames, 1 track ") and [row[0] for row in table["data"]] == [
        1
    ]
    with pytest.raises(Exception, match=r"no track 9 in this run \(its tracks: 1, 2\)"):
        c.predict([1, 2], merge="9>1", api_name="/rerender")
    with pytest.raises(
        Exception, match=r"expected pairs 'source>target'.*could not read 'one>two'"
    ):
        c.predict([1, 2], merge="one>two", api_name="/rerender")


def test_rerender_splits_a_track_over_the_api_and_refuses_a_bad_split_naming_the_setting(
    server, clips
):
    """One id on two objects in turn: Split tracks gives its part from a frame on a new id (the next after the
    run's largest), which Merge tracks can name in the same re-render; Tracks to keep names the run's tracks,
    whose parts go with them."""
    c = client(server)
    c.predict(
        handle_file(str(clips["a"])), stride=2, api_name="/segment"
    )  # 16 frames -> 8: tracks 1, 2
    status, _, _, _, zip_path, table = c.predict([1, 2], split="2@5", api_name="/rerender")
    assert status.startswith("done: 8 frames, 3 tracks ")
    assert Path(zip_path).name == "clip_a_keep-1to3_split-2at5_uvosam.zip"
    # id, first and last frame (as the table counts them: processed frames)
    assert [[row[0], row[3], row[4]] for row in table["data"]] == [[1, 0, 7], [2, 0, 4], [3, 5, 7]]
    made = run_json(zip_path)["rerender"]
    assert (made["split"], made["split_ids"], made["keep_ids"]) == (
        {"2": [5]},
        {"2@5": 3},
        [1, 2, 3],
    )
    assert any(n.startswith("cutouts/clip_a/3/") for n in zip_names(zip_path))
    assert davis_labels(zip_path, "clip_a") == (8, {0, 1, 2, 3})
    # the part starts where its origin ended: the hints below the table proposed to undo the split ("3>2")
    from uvosam_app.results import merge_hints_markdown

    assert "3>2" not in merge_hints_markdown(zip_path, None)
    # the new id merged on in the same re-render (Enter in the box does the same)
    status, *_, table = c.predict([1, 2], merge="3>1", split="2@5", api_name="/rerender")
    assert [[row[0], row[3], row[4]] for row in table["data"]] == [[1, 0, 7], [2, 0, 4]]
    status, *_, table = c.predict(
        [1], split="2@5", api_name="/rerender"
    )  # 2 unticked: its part goes too
    assert status.startswith("done: 8 frames, 1 track ") and [row[0] for row in table["data"]] == [
        1
    ]
    refused = (
        r"^Split tracks: cannot split track 2 at frame 8: it is seen from frame 0 to 7; "
        r"split it at a frame from 1"
    )
    with pytest.raises(Exception, match=refused):
        c.predict([1, 2], split="2@8", api_name="/rerender")
    with pytest.raises(
        Exception, match=r"^Split tracks: expected 'track@frame'.*could not read 'two@five'"
    ):
        c.predict([1, 2], split="two@five", api_name="/rerender")
    with pytest.raises(
        Exception, match=r"^Merge tracks: there is no track 3 in this run \(its tracks: 1, 2\)"
    ):
        c.predict([1, 2], merge="3>1", api_name="/rerender")  # without the split, no track 3


def test_a_split_rerender_reads_the_runs_track_ids_once(server, clips, monkeypatch, tmp_path):
    """The app checked the split to find the parts of the tracks kept, then the re-render checked it again: two
    passes over the cache's files; one now. The Split tracks box says how its new ids and frames count."""
    from run_helpers import track_id_reads

    import app as app_module

    c = client(server)
    c.predict(handle_file(str(clips["a"])), stride=2, api_name="/segment")
    reads = track_id_reads(monkeypatch)
    status, *_, table = c.predict([1, 2], split="2@5, 1@6", merge="4>1", api_name="/rerender")
    assert status.startswith("done: 8 frames, 3 tracks ")
    assert [[row[0], row[3], row[4]] for row in table["data"]] == [[1, 0, 7], [2, 0, 4], [3, 5, 7]]
    assert len(reads) == 1
    demo = app_module.build_demo(lambda preset, sam: None, settings=AppSettings(work_root=tmp_path))
    config = demo.get_config_file()
    (box,) = [x for x in config["components"] if x["props"].get("elem_id") == "split"]
    # short (a screen reader reads it with the label at each focus): the order and the stride are in docs/app.md
    assert box["props"]["info"] == (
        "e.g. 3@120: track 3 goes on under a new id from frame 120 (as the tracks table counts frames); Merge tracks "
        "can name it."
    )


def test_rerender_before_any_run_says_what_to_do(server):
    with pytest.raises(Exception, match="Run a video first"):
        client(server).predict([], True, True, 0, api_name="/rerender")


def test_rerender_with_no_keep_keeps_all_over_the_api_and_the_page_with_none_ticked_is_refused(
    server, clips
):
    """``keep`` is optional in the API (default [], as the API page's sample shows): that call was always refused
    ("No track to keep"), so the API page's own sample and ``predict(merge="3>1", api_name="/rerender")`` failed.
    Over the API it keeps all the run's tracks now; the page, whose every track is unticked, is still refused, with
    the run's ids, not a video without any object."""
    c = client(server)
    c.predict(handle_file(str(clips["a"])), stride=4, api_name="/segment")
    status, *_, table = c.predict(style="matte", api_name="/rerender")
    assert status.startswith("done: 4 frames, 2 tracks "), status
    assert [row[0] for row in table["data"]] == [1, 2]
    status, *_, table = c.predict(merge="2>1", api_name="/rerender")
    assert [row[0] for row in table["data"]] == [1]
    page = Client(server[0], headers={"x-gradio-user": "app"}, verbose=False)
    page.predict(handle_file(str(clips["a"])), stride=4, api_name="/segment")
    with pytest.raises(
        Exception, match=r"No track to keep: tick at least one .*\(the run's tracks: 1, 2\)"
    ):
        page.predict([], style="matte", api_name="/rerender")


def test_a_run_started_during_a_rerender_of_the_same_session_leaves_its_masks_alone(
    tmp_path, tiny_sam_model, monkeypatch
):
    """Re-render (or Score) reads the last run's mask cache while a new Run of the same tab starts: the
    new Run deletes the session's idle folders, and the cache being read must not be one of them."""
    import types

    from uvosam_app import handlers as app_handlers
    from uvosam_app import rerender_handlers

    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    app = app_handlers.App(
        lambda preset, sam: pipe, AppSettings(work_root=tmp_path, status_interval_s=0.1)
    )
    request = types.SimpleNamespace(session_hash="tab")
    state = finished_run(app, request, tmp_path)
    reading, go_on = threading.Event(), threading.Event()
    real = rerender_handlers.rerender_iter

    def slow_rerender(*args, **kwargs):
        reading.set()
        go_on.wait(10)
        yield from real(*args, **kwargs)

    monkeypatch.setattr(rerender_handlers, "rerender_iter", slow_rerender)
    redo = stepped(app.rerenders.rerender([1, 2], True, True, 0, "matte", "", False, 0.0, state, request))  # fmt: skip
    first = next(redo)  # the re-render is under way
    assert reading.wait(10)
    new_run = app.work.new_dir("tab", "run")  # what a Run pressed now does first
    assert state.cache_dir.is_dir()
    go_on.set()
    updates = [first, *redo]
    assert updates[-1][0].startswith("done: 6 frames, 2 tracks"), updates[-1][0]
    app.work.release(new_run)


def test_rerender_or_score_during_a_run_say_to_let_it_finish(tmp_path):
    """A Run under way has let the tab's last run go: Re-render or Score pressed meanwhile said "Run a video
    first" to a user whose video was running."""
    import gradio as gr

    from uvosam_app import handlers as app_handlers

    app = app_handlers.App(lambda preset, sam: None, AppSettings(work_root=tmp_path))
    during_a_run = None  # the state once a Run has sent its first update
    with pytest.raises(gr.Error, match=r"Run a video first \(or let the run under way finish\)"):
        list(
            stepped(
                app.rerenders.rerender(
                    [1], True, True, 0, "overlay", "", False, 0.0, during_a_run, None
                )
            )
        )
    with pytest.raises(gr.Error, match=r"Run a video first \(or let the run under way finish\)"):
        app.views.score(None, None)


def test_enter_in_the_merge_box_re_renders(tmp_path):
    """Typing "2>1" in *Merge tracks* and pressing Enter did nothing (Enter in the link box loads); *Split tracks*
    does the same."""
    import app as app_module

    demo = app_module.build_demo(lambda preset, sam: None, settings=AppSettings(work_root=tmp_path))
    config = demo.get_config_file()
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    rerender = next(d for d in config["dependencies"] if d["api_name"] == "rerender")
    assert {tuple(t) for t in rerender["targets"]} == {
        (ids["rerender"], "click"),
        (ids["merge"], "submit"),
        (ids["split"], "submit"),
    }
    stop = next(d for d in config["dependencies"] if d["cancels"])
    assert rerender["id"] in stop["cancels"]  # Stop stops it either way


def _page_offer(c, server) -> dict:
    """What the page does after its Re-render (an event API clients never run): Tracks to keep offers the split's
    parts, and the session remembers the split. Called as the page calls it (``/run/predict``, this client's
    session, the zip shown); returns the update of Tracks to keep."""
    import httpx

    config = httpx.get(f"{server[0].rstrip('/')}/config", timeout=30).json()
    (rerender,) = [d for d in config["dependencies"] if d["api_name"] == "rerender"]
    (offer,) = [
        d
        for d in config["dependencies"]
        if d.get("trigger_after") == rerender["id"] and d.get("trigger_only_on_success")
    ]
    body = {"fn_index": offer["id"], "data": [None, c.zip_shown], "session_hash": c.session_hash}
    answer = httpx.post(f"{server[0].rstrip('/')}/gradio_api/run/predict", json=body, timeout=30)
    return answer.json()["data"][0]


def _rerender(c, *args, **kwargs) -> tuple:
    """/rerender over the API (a client that leaves the files on the server, as the page does); remembers the zip
    shown; the zip's path (the server is this process) in place of its file data."""
    *result, table = c.predict(*args, api_name="/rerender", **kwargs)
    c.zip_shown = result[4]
    return (*result[:4], result[4]["path"], table)


def test_the_page_offers_a_split_off_part_in_tracks_to_keep_and_drops_it_once_unticked(
    server, clips
):
    """After a Re-render with Split tracks, the page's Tracks to keep lists the part (labelled with its track and
    frame), ticked; unticked, the next re-render with the same split drops it (the track it came from stays);
    with another split, the former part's id is left out and the new parts go with their track; a new Run offers
    its own tracks again. The app always kept the parts with their track: a part could not be dropped."""
    from gradio_client import Client

    c = Client(server[0], verbose=False, download_files=False)
    c.predict(handle_file(str(clips["a"])), stride=2, api_name="/segment")  # tracks 1, 2; 8 frames
    *_, table = _rerender(c, [1, 2], split="2@5")
    assert [row[0] for row in table["data"]] == [1, 2, 3]
    keep = _page_offer(c, server)
    assert keep["choices"] == [
        ["#1 person", 1],
        ["#2 dog", 2],
        ["#3 dog (#2 from frame 5)", 3],
    ]
    assert keep["value"] == [1, 2, 3]
    # 3 unticked, the same split: 2 stays up to frame 4, what it was from frame 5 on goes
    status, _, _, _, zip_path, table = _rerender(c, [1, 2], split="2@5")
    assert status.startswith("done: 8 frames, 2 tracks ")
    assert [[row[0], row[3], row[4]] for row in table["data"]] == [[1, 0, 7], [2, 0, 4]]
    assert not any(n.startswith("cutouts/clip_a/3/") for n in zip_names(zip_path))
    assert run_json(zip_path)["rerender"]["keep_ids"] == [1, 2]
    assert _page_offer(c, server)["value"] == [1, 2]  # ticked as kept
    # the part alone kept, without its track: the part is what the id was from frame 5 on
    *_, table = _rerender(c, [1, 3], split="2@5")
    assert [[row[0], row[3], row[4]] for row in table["data"]] == [[1, 0, 7], [3, 5, 7]]
    _page_offer(c, server)
    # another split: 3 (a part of 2@5) names no track of it, and is not refused; 1's part from frame 6 goes with 1
    status, *_, table = _rerender(c, [1, 2, 3], split="1@6")
    assert [[row[0], row[3], row[4]] for row in table["data"]] == [[1, 0, 5], [2, 0, 7], [3, 6, 7]]
    keep = _page_offer(c, server)
    assert keep["choices"][-1] == ["#3 person (#1 from frame 6)", 3]
    with pytest.raises(
        Exception, match=r"Tracks to keep: only parts of the former split are ticked \(3\)"
    ):
        _rerender(c, [3], split="")  # only the former part ticked
    # a new Run: its own tracks again, the parts go with their track
    c.predict(handle_file(str(clips["a"])), stride=2, api_name="/segment")
    with pytest.raises(Exception, match=r"takes the track ids of the last run \(1, 2\); got 3"):
        _rerender(c, [1, 2, 3], split="2@5")
    *_, table = _rerender(c, [1, 2], split="2@5")
    assert [row[0] for row in table["data"]] == [1, 2, 3]


def test_an_api_client_keeps_each_tracks_parts_and_rerender_keeps_its_api(server, clips):
    """Over the API (no page event), keep names the run's tracks, each kept with its parts, however often the same
    split comes; /rerender's 9 parameters and 6 outputs are those it had (the page's State is none of them), and
    a call by position still works."""
    c = client(server)
    c.predict(handle_file(str(clips["a"])), stride=2, api_name="/segment")
    for _ in range(2):
        result = c.predict(
            [1, 2], True, True, "854", "overlay", "", False, 0.0, "2@5", api_name="/rerender"
        )  # fmt: skip
        assert len(result) == 6 and [row[0] for row in result[5]["data"]] == [1, 2, 3]
    info = c.view_api(print_info=False, return_format="dict")["named_endpoints"]["/rerender"]
    assert [p["parameter_name"] for p in info["parameters"]] == [
        "keep", "show_boxes", "show_labels", "output_side", "style", "merge", "alpha_webm", "min_score", "split",
    ]  # fmt: skip
    assert len(info["returns"]) == 6


def test_a_rerender_that_ends_after_a_new_run_offers_none_of_its_parts(
    tmp_path, tiny_sam_model, monkeypatch
):
    """A Run of the same tab may finish during a Re-render (its masks are held): the session's last run is then the
    new one, but the Re-render's zip is of the former run. Its split's part ids were offered beside the new run's
    tracks and the split remembered for the new run, whose next Re-render with that split dropped a real part."""
    import itertools
    import types

    import gradio as gr

    from uvosam import provenance
    from uvosam_app import handlers as app_handlers
    from uvosam_app.keep_parts import KeepOffer
    from uvosam_app.served import ServedFiles

    # each run or re-render starts in a second of its own (tiny runs start within one)
    seconds = itertools.count()
    monkeypatch.setattr(provenance, "utc_now", lambda: f"2030-01-01T00:00:{next(seconds):02d}Z")
    pipe = UVOSAM(MovingBoxTracker(num_objects=2), BoxPromptSegmenter(tiny_sam_model))
    served = ServedFiles(tmp_path / "served")
    app = app_handlers.App(
        lambda preset, sam: pipe,
        AppSettings(work_root=tmp_path / "work", status_interval_s=0.1),
        served=served,
    )
    request = types.SimpleNamespace(session_hash="tab")
    try:
        former = finished_run(app, request, tmp_path)
        redo = app.rerenders.rerender(
            [1, 2], True, True, 0, "overlay", "", False, 0.0, former, request, split="2@3"
        )
        zip_shown = list(stepped(redo))[-1][4]
        # of the run re-rendered: its part is offered
        keep, offer = app.rerenders.keep_offered(former, zip_shown)
        assert isinstance(offer, KeepOffer) and offer.parts == {3} and keep.choices[-1][1] == 3
        # a Run that ended before the re-render's follow-up event
        latest = finished_run(app, request, tmp_path)
        assert latest.created_utc != former.created_utc
        assert app.rerenders.keep_offered(latest, zip_shown) == (gr.skip(), gr.skip())
    finally:
        served.close()


def test_tracks_to_keep_says_which_ids_a_merge_took_into_another():
    """After a Re-render with a split and "4>2", Tracks to keep still offered "#4 person (#1 from frame 30)" as it
    was, while the table listed track 2 only."""
    from uvosam_app.keep_parts import keep_choices

    choices = keep_choices([(1, "person"), (2, "dog"), (3, "dog")], {(1, 30): 4}, {"4": 2, "3": 1})
    assert choices == [
        ("#1 person", 1),
        ("#2 dog", 2),
        ("#3 dog (merged into #1)", 3),
        ("#4 person (#1 from frame 30, merged into #2)", 4),
    ]


def test_a_rerenders_edits_name_its_files_portably_and_briefly(tmp_path):
    """The part of a re-render's names that says what it did: runs of ids, each edit, only characters every system
    writes; a long one is cut and keeps a hash of the whole (two re-renders keep two names)."""
    from uvosam.portable_names import safe_name
    from uvosam_app.rerender_names import MAX_EDITS_CHARS, edits_tag, renamed

    tag = edits_tag([5, 1, 2, 3, 7, 8], merge={9: 1, 4: 2}, split={2: [40, 10]}, min_score=0.25)
    assert tag == "keep-1to3-5-7-8_split-2at10-2at40_merge-4into2-9into1_min0.25"[:39] + tag[-9:]
    assert len(tag) == MAX_EDITS_CHARS and safe_name(tag) == tag
    other = edits_tag([5, 1, 2, 3, 7, 8], merge={9: 1, 4: 2}, split={2: [40, 10]}, min_score=0.3)
    assert other != tag and other[:39] == tag[:39]
    assert edits_tag([1, 2]) == "keep-1-2" and edits_tag([3], merge={}, split={}) == "keep-3"
    made = tmp_path / "con_overlay.mp4"
    made.write_bytes(b"mp4")
    served = renamed(made, "con", "keep-3")
    assert (
        served == tmp_path / "con_keep-3_overlay.mp4"
        and served.read_bytes() == b"mp4"
        and made.is_file()
    )
    with pytest.raises(
        ValueError,
        match=r"expected a file named clip_\.\.\. \(the job.s video name\); got con_overlay\.mp4",
    ):
        renamed(made, "clip", "keep-3")
