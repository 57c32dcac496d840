"""The app in a real browser: Debian chromium driven by Playwright (never `playwright install`).

Upload the example clip, press Run, see the streamed <video> become playable while the (deliberately
slow) tiny pipeline is still working, download the zip, save a screenshot to
test-artifacts/app_browser.png.
"""

from __future__ import annotations

import contextlib
import importlib.util
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from uvosam.video import iter_frames

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
EXAMPLE = ROOT / "examples" / "synthetic_shapes.mp4"  # 48 frames, 320x240, 12 fps
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
STREAM_PLAYABLE = (
    "() => { const v = document.querySelector('#stream video'); return v && v.readyState >= 2; }"
)
STATUS = "() => document.querySelector('#status textarea')?.value ?? ''"
# Gradio's red "Error" badge over a component (its status tracker, not hidden)
ERROR_BADGE = (
    "(id) => !!document.querySelector(`#${id} [data-testid=status-tracker]:not(.hide) .error`)"
)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, tiny_sam_model):
    from app_helpers import launch_local
    from doubles import MovingBoxTracker

    import app as app_module
    from uvosam.pipeline import UVOSAM
    from uvosam.segmenter import BoxPromptSegmenter
    from uvosam_app.settings import AppSettings

    pipe = UVOSAM(MovingBoxTracker(num_objects=2, delay_s=0.1), BoxPromptSegmenter(tiny_sam_model))
    work = tmp_path_factory.mktemp("work")
    settings = AppSettings(work_root=work)
    demo = app_module.build_demo(lambda preset, sam: pipe, settings=settings)
    url = launch_local(demo, settings)  # as app.main: no show_error
    yield url, work
    demo.close()
    demo.served_files.close()  # as ``app.main`` does


@contextlib.contextmanager
def chromium(width: int, height: int):
    """A page of a fresh chromium profile, in a window of ``width`` x ``height`` CSS pixels."""
    if not CHROMIUM.exists():
        pytest.skip(f"BROWSER TEST NOT RUN: {CHROMIUM} is missing (apt-get install -y chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="BROWSER TEST NOT RUN: pip install playwright"
    )
    with sync_api.sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
            viewport={"width": width, "height": height},
            accept_downloads=True,
        )
        try:
            yield context.new_page()
        finally:
            context.close()


@pytest.fixture()
def page():
    with chromium(1280, 1100) as page:
        yield page


@pytest.fixture()
def phone():
    with chromium(390, 844) as page:  # a phone held upright (CSS pixels)
        yield page


def _open_with_example(page, url: str) -> None:
    """The page at ``url``, with the example clip uploaded (its input player shown)."""
    page.goto(url)
    page.wait_for_selector("#run")
    page.locator("#inp input[type=file]").set_input_files(str(EXAMPLE))
    page.wait_for_selector("#inp video", timeout=30_000)


def test_upload_run_stream_download(app_url, page, tmp_path):
    url, work = app_url
    page.goto(url)
    page.wait_for_selector("#run")
    assert not page.locator("#banner").is_visible()  # models loaded: no warning banner
    assert page.get_by_text(
        "Big Buck Bunny (c) 2008 Blender Foundation"
    ).count()  # the example clip's CC-BY credit
    page.locator("#inp input[type=file]").set_input_files(str(EXAMPLE))
    page.wait_for_selector(
        "#inp video", timeout=30_000
    )  # upload finished, the input player is shown
    described = page.locator("#video-info", has_text="320x240, 48 frames at 12 fps (4.0 s)")
    described.wait_for(timeout=30_000)  # told before Run what the upload is
    # as the UI names them
    assert "No time estimate yet for idol-ytvis19-r50 + SAM ViT-B" in described.inner_text()
    page.get_by_role("button", name="Settings ▼").click()
    mask_models = page.locator("#mask-model")
    assert mask_models.get_by_label("SAM ViT-B").is_checked()  # readable labels; the value is vit_b
    assert mask_models.get_by_label("SAM 2.1 tiny").count() == (
        1 if importlib.util.find_spec("sam2") else 0
    )
    stride = page.locator("#stride input[type=range]")
    stride.wait_for(state="visible")  # the Settings panel has opened (under load it takes a while)
    stride.focus()
    page.wait_for_function("() => document.activeElement?.matches('#stride input[type=range]')")
    page.keyboard.press("ArrowRight")  # the keyboard changes a slider too: the description follows
    page.wait_for_function(
        "() => document.querySelector('#stride input[type=range]').value === '2'"
    )
    # (once in a full CI run the description had not followed within 10 s, on a busy machine: 30 s; once more
    # within 30 s, not seen since in runs alone or under load: the failure now says what the page showed)
    from playwright.sync_api import TimeoutError as PageTimeout

    try:
        page.locator("#video-info", has_text="Run covers 24 frames (every 2nd frame)").wait_for(
            timeout=30_000
        )
    except PageTimeout:
        shown = page.locator("#video-info").inner_text()
        box = page.locator("#stride input[type=number]").input_value()
        pytest.fail(
            f"the description did not follow Stride 2 in 30 s (its box: {box!r}): {shown!r}"
        )
    page.keyboard.press("ArrowLeft")
    page.locator("#video-info", has_text="Run covers 48 frames").wait_for(timeout=30_000)
    page.click("#run")

    page.wait_for_function(STREAM_PLAYABLE, timeout=60_000)
    status_when_playable = page.evaluate(STATUS)
    # streamed before the end
    assert not status_when_playable.startswith("done"), status_when_playable
    page.wait_for_selector("#preview img", timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app_browser_midrun.png"), full_page=True)

    page.wait_for_function(f"() => ({STATUS})().startsWith('done')", timeout=120_000)
    assert page.evaluate(STATUS).startswith("done: 48 frames, 2 tracks")
    estimate = page.locator("#video-info", has_text="fps in the last run here")
    estimate.wait_for(timeout=30_000)  # the description now has this run's speed, not "No run yet"
    assert "No time estimate yet" not in estimate.inner_text()
    page.locator("#timeline img").wait_for(timeout=30_000)  # the track timeline under the table
    labels = [b.get_attribute("aria-label") for b in page.locator("#timeline button").all()]
    assert "Fullscreen" in labels and not {"Download", "Share"} & set(
        labels
    )  # on a phone they hid bars
    page.screenshot(path=str(ARTIFACTS / "app_browser.png"), full_page=True)

    with page.expect_download(timeout=30_000) as download:
        page.locator("#zip a").first.click()
    saved = tmp_path / "masks.zip"
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as zf:
        names = zf.namelist()
    assert sum(n.startswith("davis/synthetic_shapes/") and n.endswith(".png") for n in names) == 48
    assert "results.json" in names and "ytvis_results.json" in names
    table = page.locator("#tracks").inner_text()
    assert "person" in table and "dog" in table

    page.locator("#style").get_by_label("Matte: white objects on black (for editors)").check()
    page.click("#rerender")  # from the cached masks
    # another style
    page.locator("#mp4", has_text="synthetic_shapes_keep-1-2_matte").wait_for(timeout=60_000)
    assert page.evaluate(STATUS).startswith("done: 48 frames, 2 tracks")
    with page.expect_download(timeout=30_000) as download:
        page.locator("#mp4 a").first.click()
    matte = tmp_path / "matte.mp4"
    download.value.save_as(matte)
    frame = next(iter_frames(matte))  # white objects on black
    assert frame.max() > 200 and (frame < 30).mean() > 0.5

    page.locator("#merge textarea").fill("2>1")  # one object split into two ids: merged
    page.click("#rerender")
    page.wait_for_function(
        f"() => ({STATUS})().startsWith('done: 48 frames, 1 track ')", timeout=60_000
    )
    table = page.locator("#tracks").inner_text()
    assert "person" in table and "dog" not in table
    assert {p.name.split("-")[0] for p in work.glob("*/*")} == {"run", "rerender"}

    page.locator(
        "#inp button[aria-label='Clear']"
    ).first.click()  # another video: the results shown are not its
    page.locator("#inp input[type=file]").set_input_files(
        str(ROOT / "examples" / "bigbuckbunny_cut.mp4")
    )
    page.locator(
        "#video-info",
        has_text="The results below are of your last run, on an earlier input (synthetic_shapes.mp4)",
    ).wait_for(timeout=30_000)

    page.click("#run")  # again, and stop it with the Stop button
    page.wait_for_function(f"() => ({STATUS})().startsWith('segmenting: frame')", timeout=60_000)
    page.click("#stop")
    page.wait_for_function(f"() => ({STATUS})().startsWith('stopped')", timeout=10_000)
    page.wait_for_timeout(1500)  # a cancelled run sends nothing more
    assert page.evaluate(STATUS).startswith("stopped")

    # the new Run replaced the session's earlier folders; the stopped one goes, and the session's folder with it
    deadline = time.monotonic() + 20
    while any(work.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(work.iterdir())
    page.close()  # the session ends (demo.unload: nothing left to remove)


def test_on_a_phone_the_status_comes_before_settings_and_a_toast_shows_its_message_as_written(
    app_url, phone, tmp_path
):
    """On a 390 px phone the open Settings panel stood between Run and the status line (and the live video): after
    Run no progress was in sight. The toast rendered its message as HTML ("<zipfile.ZipExtFile ...>" vanished with
    all that followed it). A number typed in a slider's box out of range gave an "Error" badge; the description
    now says what Run will take, and follows the box when the page puts the number back in range. On a wide
    window the live column is beside the inputs, Run and Stop at its top."""
    url, _ = app_url
    member = "f/00000<zipfile.ZipExtFile name='a'>&amp;.jpg"
    frames = tmp_path / "frames.zip"
    with zipfile.ZipFile(frames, "w") as zf:
        zf.writestr(member, b"not a jpeg")
        zf.writestr("f/00001.jpg", b"nor this")
    phone.goto(url)
    phone.wait_for_selector("#run")
    phone.locator("#frames input[type=file]").set_input_files(str(frames))
    phone.get_by_role("button", name="Settings ▼").click()
    stride = phone.locator("#stride input[type=number]")
    stride.wait_for(state="visible")

    def box(selector: str) -> dict:
        return phone.locator(selector).bounding_box()

    assert box("#run")["y"] < box("#status")["y"] < box("#stream")["y"] < box("#settings")["y"]
    assert box("#settings")["y"] < box("#stride")["y"]  # inside the open panel
    stride.fill("0")
    note = phone.locator("#video-info", has_text="Frame stride takes 1 to 10: Run takes 1.")
    note.wait_for(timeout=30_000)
    phone.locator("#status").click()  # the box loses focus: the page puts 1 in it
    note.wait_for(state="hidden", timeout=30_000)
    assert stride.input_value() == "1" and not phone.locator(".error").count()

    phone.click("#run")
    message = f"frames.zip: {member} is not a readable image (not a JPEG or PNG inside); replace or remove it"
    toast = phone.locator("[data-testid=toast-text]").first
    toast.wait_for(timeout=30_000)
    assert toast.inner_text() == message
    phone.wait_for_function(f"() => ({STATUS})().startsWith('failed')", timeout=30_000)
    assert phone.evaluate(STATUS) == f"failed: {message}"
    # the toast came with the failure, the failure listener right after it: the line is in sight, not under an
    # "Error" badge
    phone.wait_for_timeout(1000)
    assert not phone.evaluate(ERROR_BADGE, "status")

    phone.set_viewport_size({"width": 1280, "height": 1100})
    phone.wait_for_timeout(300)
    assert box("#status")["x"] > box("#settings")["x"] + 300  # side by side
    assert (
        abs(box("#run")["x"] - box("#status")["x"]) < 20 and box("#run")["y"] < box("#status")["y"]
    )


def test_after_stop_the_status_box_shows_stopped_not_an_error_badge(app_url, page):
    """Gradio's page covered the status box with a red "Error" badge, for good, after 2-4 of 6 Stops: the cancel's
    empty answer failed the page's handling of the run's data, while the cancel marked the run complete, whichever
    came last; and a last update of the run could replace Stop's line. The run's failure listener now writes it after
    both. Stopped 5 times (before: a badge after about half of them)."""
    url, _ = app_url
    _open_with_example(page, url)
    for stop in range(5):
        page.click("#run")
        page.wait_for_function(
            f"() => ({STATUS})().startsWith('segmenting: frame')", timeout=60_000
        )
        page.click("#stop")
        page.wait_for_function(f"() => ({STATUS})().startsWith('stopped')", timeout=10_000)
        page.wait_for_timeout(1000)  # the failure listener has written the line
        assert page.evaluate(STATUS) == "stopped: press Run to start again", stop
        assert not page.evaluate(ERROR_BADGE, "status"), f"an Error badge after Stop {stop + 1}"


def test_stop_with_nothing_running_says_nothing_and_stops_a_queued_run(app_url, page, tmp_path):
    """Stop on a fresh page wrote "stopped: press Run to start again" (nothing ran). A run waiting in Gradio's
    queue (another tab's run holds the app's one worker; its status line has no text yet) is still stopped and
    says so: its failure listener writes the line once the page has cancelled it."""
    from app_helpers import write_clip

    url, _ = app_url
    # the other tab's run must outlast this tab's queueing and stop (the example's 48 frames took ~5 s: on a busy
    # machine it had ended when its Stop was pressed): 300 frames at the tracker's 0.1 s each
    long_clip = write_clip(tmp_path / "long.mp4", 300, 160, 120, fps=12)
    other = page.context.new_page()  # another tab: another session
    for tab in (other, page):
        tab.goto(url)
        tab.wait_for_selector("#run")
    page.click("#stop")
    page.wait_for_timeout(1500)
    assert page.evaluate(STATUS) == ""
    for tab, clip in ((other, long_clip), (page, EXAMPLE)):
        tab.locator("#inp input[type=file]").set_input_files(str(clip))
        tab.wait_for_selector("#inp video", timeout=30_000)
    other.click("#run")
    other.wait_for_function(f"() => ({STATUS})().startsWith('segmenting: frame')", timeout=60_000)
    page.click("#run")
    page.locator("#status", has_text="queue").wait_for(timeout=10_000)  # Gradio's queue position
    assert page.evaluate(STATUS) == ""
    page.click("#stop")
    page.wait_for_function(
        f"() => ({STATUS})() === 'stopped: press Run to start again'", timeout=10_000
    )
    other.click("#stop")
    other.wait_for_function(f"() => ({STATUS})().startsWith('stopped')", timeout=10_000)


def test_a_failed_score_says_why_in_place_of_the_scores(app_url, page, tmp_path):
    """A failed Score covered the scores' place with Gradio's red "Error" badge, and said why only in the toast,
    which goes after a few seconds; now why stays there ("Score failed: ..."), with no badge over it."""
    from app_helpers import write_clip

    url, _ = app_url
    page.goto(url)
    page.wait_for_selector("#run")
    page.locator("#inp input[type=file]").set_input_files(
        str(write_clip(tmp_path / "c.mp4", 6, 96, 64))
    )
    page.wait_for_selector("#inp video", timeout=30_000)
    page.click("#run")
    page.wait_for_function(f"() => ({STATUS})().startsWith('done: 6 frames')", timeout=60_000)
    gt = tmp_path / "gt.zip"
    with zipfile.ZipFile(gt, "w") as zf:
        for i in range(6):
            zf.writestr(f"annot/{i:05d}.png", b"not a png")
    page.get_by_role("button", name="Score against your ground truth (DAVIS J&F) ▼").click()
    # the file goes in once the accordion is open (in a full test run, under load, it was lost: no "gt.zip" in 30 s)
    page.locator("#gt").wait_for(state="visible", timeout=30_000)
    page.locator("#gt input[type=file]").set_input_files(str(gt))
    # uploaded: its download link is there (has_text="gt.zip" timed out in 1 of 3 runs of this file under load, with
    # the file shown: the name is drawn as "gt" and ".zip" in two spans)
    page.locator("#gt a[download='gt.zip']").wait_for(timeout=30_000)
    page.click("#score")
    why = "gt.zip: annot/00000.png is not a readable PNG image (no image inside)"
    page.locator("[data-testid=toast-text]", has_text=why).first.wait_for(timeout=30_000)
    page.locator("#scores", has_text="Score failed: " + why).wait_for(timeout=10_000)
    page.wait_for_timeout(1000)  # the failure listener has run
    assert not page.evaluate(ERROR_BADGE, "scores")
    assert page.locator("#scores").inner_text().startswith("Score failed: " + why)


@pytest.fixture(scope="module")
def link_app(tmp_path_factory, tiny_sam_model):
    """The app taking links to local addresses (``url_allow_private``), and a local server with a 12-frame clip."""
    from app_helpers import launched, write_clip
    from doubles import MovingBoxTracker
    from http_helpers import send, serving

    from uvosam.pipeline import UVOSAM
    from uvosam.segmenter import BoxPromptSegmenter
    from uvosam_app.settings import AppSettings

    clip = write_clip(tmp_path_factory.mktemp("site") / "c.mp4", 12, 96, 64).read_bytes()
    # the longest class names of the released checkpoints (in pixels, Chromium's font at 12 px)
    names = ("tennis_racket", "refrigerator")
    pipe = UVOSAM(
        MovingBoxTracker(num_objects=2, class_names=names), BoxPromptSegmenter(tiny_sam_model)
    )
    settings = AppSettings(work_root=tmp_path_factory.mktemp("work"), url_allow_private=True)
    with serving() as server, launched(lambda preset, sam: pipe, settings) as url:
        server.routes["/media/street.mp4"] = send(clip, {"Content-Type": "video/mp4"})
        avi = mpeg4_avi(tmp_path_factory.mktemp("avi") / "c.mp4", clip)
        server.routes["/media/old.avi"] = send(avi, {"Content-Type": "video/x-msvideo"})
        named = 'attachment; filename="x__ [login](evil.example) __ www.evil.example.avi"'
        server.routes["/media/named"] = send(
            avi, {"Content-Type": "video/x-msvideo", "Content-Disposition": named}
        )
        yield url, server


def test_a_direct_link_loads_into_the_player_and_runs(link_app, page):
    """A link refused after another one loaded leaves that one in sight: "Error" badges covered the player and the
    zip box (the video looked gone, though Run still ran it)."""
    url, server = link_app
    page.goto(url)
    box = page.locator("#url").get_by_role("textbox")
    box.fill(server.url("/media/street.mp4"))
    box.press("Enter")  # Enter loads too
    page.wait_for_selector("#inp video", timeout=30_000)  # the downloaded clip in the input player
    page.locator("#video-info", has_text="96x64, 12 frames at 8 fps").wait_for(timeout=30_000)
    assert "street.mp4" in page.locator("#video-info").inner_text()
    box.fill("https://www.youtube.com/watch?v=abc")
    page.click("#load-url")
    toast = page.get_by_text("youtube.com page link, not a video file")
    toast.first.wait_for(timeout=30_000)  # the error, as a toast
    page.wait_for_timeout(1000)  # the toast came with the failure: the page has marked Load failed
    assert page.locator("#inp video").is_visible()
    assert not any(page.evaluate(ERROR_BADGE, part) for part in ("inp", "frames", "url"))
    assert box.input_value() == "https://www.youtube.com/watch?v=abc"  # to be corrected
    page.click("#run")
    page.wait_for_function(f"() => ({STATUS})().startsWith('done: 12 frames')", timeout=60_000)
    named = page.locator(
        "#mp4", has_text="street_overlay"
    )  # the outputs are named after the link's file
    named.wait_for(timeout=30_000)


def test_on_a_phone_the_tracks_table_breaks_no_class_name(link_app, phone):
    """At 390 px the tracks table broke class names mid-word ("tennis|_racket" on three lines, "refrig|erator"):
    the CSS meant to stop it reached none of Gradio's visible cells. Now no word of the table is cut, and every
    column is still in sight."""
    url, server = link_app
    phone.goto(url)
    box = phone.locator("#url").get_by_role("textbox")
    box.fill(server.url("/media/street.mp4"))
    box.press("Enter")
    phone.wait_for_selector("#inp video", timeout=30_000)
    phone.click("#run")
    phone.wait_for_function(f"() => ({STATUS})().startsWith('done: 12 frames')", timeout=60_000)
    phone.locator("#tracks", has_text="refrigerator").wait_for(timeout=30_000)
    assert "tennis_racket" in phone.locator("#tracks").inner_text()
    assert phone.evaluate(CLASS_WORDS_CUT) == []
    tracks, row = (
        phone.locator(s).first.bounding_box() for s in ("#tracks", "#tracks .virtual-row")
    )
    assert row["width"] <= tracks["width"], "the tracks table hides columns"


def mpeg4_avi(mp4: Path, clip: bytes) -> bytes:
    """``clip`` (an H.264 mp4) as MPEG-4 Part 2 in an .avi: a codec browsers cannot play."""
    import subprocess

    import imageio_ffmpeg

    mp4.write_bytes(clip)
    avi = mp4.with_suffix(".avi")
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(mp4), "-c:v", "mpeg4"]
    subprocess.run([*ffmpeg, str(avi)], check=True, timeout=60)
    return avi.read_bytes()


def test_a_link_browsers_cannot_play_is_described_previewed_and_run(link_app, page):
    """The linked route in a browser: no player, the description says why, the first frame is shown under
    Latest frame (the State's change event), and Run runs the file as downloaded."""
    url, server = link_app
    page.goto(url)
    box = page.locator("#url").get_by_role("textbox")
    assert not page.locator("#preview img").count()  # nothing under Latest frame yet
    box.fill(server.url("/media/old.avi"))
    box.press("Enter")
    page.locator("#video-info", has_text="no preview").wait_for(timeout=30_000)
    assert "old.avi" in page.locator("#video-info").inner_text()
    assert not page.locator("#inp video").count()  # no player for it
    page.wait_for_selector("#preview img", timeout=30_000)  # its first frame
    page.click("#run")
    page.wait_for_function(f"() => ({STATUS})().startsWith('done: 12 frames')", timeout=60_000)
    page.locator("#mp4", has_text="old_overlay").wait_for(timeout=30_000)


def test_a_links_file_name_shows_as_written_not_as_markdown(link_app, page):
    """The description names a Load's file in Markdown: the name x__ [login](evil.example) __ www.evil.example.avi
    showed two links there ("login", and the bare www. one)."""
    url, server = link_app
    page.goto(url)
    box = page.locator("#url").get_by_role("textbox")
    box.fill(server.url("/media/named"))
    box.press("Enter")
    info = page.locator("#video-info", has_text="(MPEG-4 Part 2) loaded from the link")
    info.wait_for(timeout=30_000)
    assert "x__ [login](evil.example) __ www.evil.example.avi (MPEG-4 Part 2)" in info.inner_text()
    assert not page.locator("#video-info a").count()
    assert [e.inner_text() for e in page.locator("#video-info em").all()] == [
        "Latest frame"
    ]  # the note's


@pytest.fixture(scope="module")
def long_step_app(tmp_path_factory, tiny_sam_model):
    """The app with long waits for the job: a status line every 2 s, chunks of 8 s of video (none mid-run)."""
    from app_helpers import launched
    from doubles import MovingBoxTracker

    from uvosam.pipeline import UVOSAM
    from uvosam.segmenter import BoxPromptSegmenter
    from uvosam_app.settings import AppSettings

    pipe = UVOSAM(MovingBoxTracker(num_objects=2, delay_s=0.1), BoxPromptSegmenter(tiny_sam_model))
    work = tmp_path_factory.mktemp("work")
    settings = AppSettings(work_root=work, status_interval_s=2.0, chunk_seconds=8.0)
    with launched(lambda preset, sam: pipe, settings) as url:
        yield url, work


def test_run_pressed_right_after_stop_starts_the_new_run(long_step_app, page):
    """Stop, then Run 100 ms later: the Run press was dropped (Run ignores presses while its event is pending, and
    the stopped run's event stayed pending until its current wait for the job ended, up to a status interval) and
    the user had to press Run again. Now Stop ends the event at once: the second press starts a run that finishes."""
    from app_helpers import wait_for
    from playwright.sync_api import TimeoutError as PageTimeout

    url, work = long_step_app
    _open_with_example(page, url)
    page.click("#run")
    # the first frame counter: the run is in a wait for the job (the next update comes up to 2 s later)
    page.wait_for_function(f"() => ({STATUS})().startsWith('segmenting: frame')", timeout=60_000)
    page.click("#stop")
    page.wait_for_timeout(100)
    page.click("#run")
    # the stopped run's line is replaced: by Stop's, or already by the new run's
    page.wait_for_function(f"() => /^(stopped|starting)/.test(({STATUS})())", timeout=10_000)
    try:  # the new run's first frame counter comes within a status interval or two of its start
        page.wait_for_function(
            f"() => ({STATUS})().startsWith('segmenting: frame')", timeout=20_000
        )
    except PageTimeout as err:
        raise AssertionError(
            f"Run pressed 100 ms after Stop started no run: the status stays {page.evaluate(STATUS)!r}"
        ) from err
    page.wait_for_function(f"() => ({STATUS})().startsWith('done: 48 frames')", timeout=120_000)
    assert page.evaluate(STATUS).startswith("done: 48 frames, 2 tracks")
    page.locator("#zip a").first.wait_for(timeout=30_000)  # its results
    assert "person" in page.locator("#tracks").inner_text()
    # the stopped run's folder is gone: only the new run's is left
    assert wait_for(lambda: [p.name.split("-")[0] for p in work.glob("*/*")] == ["run"], 20)


PREVIEW_SHOWN = "() => !!document.querySelector('#preview img')"
PHONE_TIMELINE = """() => { const img = document.querySelector('#timeline-narrow img'),
  shown = img.getBoundingClientRect();
  const box = document.getElementById('timeline-narrow');
  return {left: shown.left, right: shown.right, width: shown.width, natural: img.naturalWidth,
          scrolls: box.scrollWidth > box.clientWidth, page: document.documentElement.scrollWidth,
          wide: getComputedStyle(document.getElementById('timeline')).display}; }"""
DISPLAY = "(id) => getComputedStyle(document.getElementById(id)).display"


def test_a_portrait_clip_fits_a_laptop_and_a_phone_screen(app_url, tmp_path):
    """A portrait (9:16) clip: on a 1366x800 laptop the input and live players grew to 600x1065, taller than the
    window; now they are at most 55% of its height (letterboxed). Run was below that window's first screen (at
    y=827 before any upload, and the player and the description pushed it further); now Run and the upload's
    description are in it. On a 390 px phone the live video pushed *Latest frame* into a second column off the
    screen to the right (the page scrolled sideways); the tracks table hid columns unless scrolled sideways inside
    it; the timeline's labels were scaled to 4 px, then at their size its bars scrolled sideways: a timeline drawn
    for a phone's width takes its place there, at its size."""
    from app_helpers import write_clip

    url, _ = app_url
    clip = write_clip(tmp_path / "portrait.mp4", 8, 72, 128)
    with chromium(1366, 800) as page:
        page.goto(url)
        page.wait_for_selector("#run")

        def bottom(selector: str) -> float:
            shown = page.locator(selector).bounding_box()
            return shown["y"] + shown["height"]

        assert bottom("#run") <= 800, "Run is below the first screen"
        assert page.get_by_role("button", name="Big Buck Bunny").count() == 1  # an example, named
        page.locator("#inp input[type=file]").set_input_files(str(clip))
        page.locator("#video-info", has_text="72x128, 8 frames").wait_for(timeout=30_000)
        page.wait_for_selector("#inp video")
        assert bottom("#run") <= 800 and bottom("#video-info") <= 800, "below the first screen"
        page.click("#run")
        page.wait_for_function(f"() => ({STATUS})().startsWith('done')", timeout=60_000)
        page.wait_for_function(PREVIEW_SHOWN, timeout=30_000)
        page.wait_for_function(
            "() => document.querySelector('#timeline img')?.naturalWidth > 0", timeout=30_000
        )
        for shown in ("#inp video", "#stream video", "#preview img"):
            height = page.locator(shown).bounding_box()["height"]
            assert height <= 0.55 * 800 + 1, f"{shown} is {height} px tall in an 800 px window"
        # the zip's timeline, not the phone's
        assert page.evaluate(DISPLAY, "timeline-narrow") == "none"

        page.set_viewport_size({"width": 390, "height": 844})  # a phone held upright
        page.wait_for_timeout(500)
        stream, preview = (page.locator(s).bounding_box() for s in ("#stream", "#preview"))
        assert preview["x"] + preview["width"] <= 390, f"Latest frame off the screen: {preview}"
        assert preview["x"] == stream["x"] and preview["y"] > stream["y"] + stream["height"]
        tracks, table = (page.locator(s).bounding_box() for s in ("#tracks", "#tracks table"))
        assert table["width"] <= tracks["width"], "the tracks table hides columns"
        # its image loads once near the screen
        page.locator("#timeline-narrow").scroll_into_view_if_needed()
        page.wait_for_function(
            "() => document.querySelector('#timeline-narrow img')?.naturalWidth > 0", timeout=30_000
        )
        timeline = page.evaluate(PHONE_TIMELINE)
        assert timeline["wide"] == "none", timeline  # the phone's timeline instead
        assert timeline["width"] >= timeline["natural"] - 1, f"its labels shrunk: {timeline}"
        assert timeline["left"] >= 0 and timeline["right"] <= 390, f"off the screen: {timeline}"
        assert not timeline["scrolls"] and timeline["page"] <= 390, (
            f"it scrolls sideways: {timeline}"
        )


LUMINANCE = """(colour) => {
  const [r, g, b] = colour.match(/[\\d.]+/g).slice(0, 3).map((v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}"""


def _contrast(page, selector: str) -> float:
    """WCAG contrast of the element's text colour on its own background colour."""
    colours = page.evaluate(
        "(s) => { const c = getComputedStyle(document.querySelector(s)); return [c.color, c.backgroundColor]; }",
        selector,
    )
    lum = sorted((page.evaluate(LUMINANCE, c) for c in colours), reverse=True)
    return (lum[0] + 0.05) / (lum[1] + 0.05)


def test_a_screen_reader_hears_a_jobs_start_and_end_and_the_timeline(app_url, page):
    """The status line (a disabled textbox) was the only place a run's progress and end showed: no screen reader
    announced "done", "failed" or "stopped". A live region (role=status) now says a job started and how it ended,
    not each frame. The timeline and the latest frame had alt="" (their buttons no name); the timeline's alt
    text now names each track and its frames. Run's white text on orange was 2.8:1, Stop's 3.8:1 (AA: 4.5), and
    Run's focus ring a grey outline on orange."""
    url, _ = app_url
    page.goto(url)
    page.wait_for_selector("#run")
    region = page.locator("#announce")
    page.wait_for_function(
        "() => document.querySelector('#announce')?.getAttribute('aria-live') === 'polite'"
    )
    assert region.get_attribute("role") == "status"
    assert region.bounding_box()["width"] <= 1  # out of sight
    for selector in ("#run", "#stop"):
        assert _contrast(page, selector) >= 4.5, selector
    page.locator("#run").focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    page.wait_for_timeout(600)  # Gradio's buttons' transition
    ring = page.evaluate(
        "() => { const c = getComputedStyle(document.activeElement); "
        "return [document.activeElement.id, c.outlineStyle, c.outlineWidth, c.outlineColor]; }"
    )
    assert ring == ["run", "solid", "3px", "rgb(29, 78, 216)"]

    page.locator("#inp input[type=file]").set_input_files(str(EXAMPLE))
    page.wait_for_selector("#inp video", timeout=30_000)
    page.evaluate(
        "() => { window.said = []; new MutationObserver(() => window.said.push("
        "document.querySelector('#announce').innerText.trim())).observe(document.querySelector('#announce'), "
        "{subtree: true, childList: true, characterData: true}); }"
    )
    page.click("#run")
    page.wait_for_function(f"() => ({STATUS})().startsWith('done')", timeout=120_000)
    page.wait_for_function("() => window.said.some((t) => t.startsWith('done'))", timeout=5_000)
    said = [t for t in dict.fromkeys(page.evaluate("() => window.said")) if t]
    assert said == ["Run started", page.evaluate(STATUS)]  # no frame counter
    page.locator("#timeline img").wait_for(timeout=30_000)
    alt = page.locator("#timeline img").get_attribute("alt")
    assert alt == "Track timeline of 48 frames: #1 person frames 0-47; #2 dog frames 0-47", alt
    assert page.locator("#timeline").get_by_role("button", name=alt).count() == 1
    assert page.locator("#preview").get_by_role("img", name="Latest frame: of the run").count() == 1

    page.evaluate("() => { window.said = []; }")
    page.click("#rerender")
    page.wait_for_function("() => window.said.some((t) => t.startsWith('done'))", timeout=60_000)
    said = [t for t in dict.fromkeys(page.evaluate("() => window.said")) if t]
    assert said == ["Re-render started", page.evaluate(STATUS)]


def test_on_a_phone_run_is_in_the_first_screen_and_tab_reaches_it_before_settings(app_url, phone):
    """Below 768 px CSS showed Settings under the live column while the page's source kept them in the input column:
    Tab went from the examples to the 23 settings, lower on the screen, then back up to Run. Settings now follow
    the live column in the page; a wide window's grid still shows them under the inputs. And on a 390x844 phone Run
    was 1214 px down the page, after the link, the zip of frames and the examples: those now follow the live column
    (under the upload on a wide window), and Run is in the first screen (686 px down, Chromium, 2026-12-01)."""
    url, _ = app_url
    phone.goto(url)
    phone.wait_for_selector("#run")
    order = []
    for _ in range(20):
        phone.keyboard.press("Tab")
        order.append(phone.evaluate("() => document.activeElement.closest('[id]')?.id"))
    assert "run" in order and order.index("run") < order.index("settings"), order
    tops = [
        phone.locator(s).bounding_box()["y"] for s in ("#inp", "#run", "#examples", "#settings")
    ]
    assert tops == sorted(tops)
    run = phone.evaluate(
        "() => document.getElementById('run').getBoundingClientRect().bottom + scrollY"
    )
    assert run <= 800, f"Run ends {run} px down a 390x844 phone's page"
    phone.set_viewport_size({"width": 1280, "height": 1100})
    phone.wait_for_timeout(300)
    box = {
        s: phone.locator(s).bounding_box()
        for s in ("#inp", "#url", "#frames", "#examples", "#run", "#settings", "#status")
    }
    # the upload, then the other inputs, then Settings: under each other, left; Run at the top on the right
    assert all(
        abs(box[s]["x"] - box["#inp"]["x"]) < 20
        for s in ("#url", "#frames", "#examples", "#settings")
    )
    tops = [box[s]["y"] for s in ("#inp", "#url", "#frames", "#examples", "#settings")]
    assert tops == sorted(tops) and tops[-1] < box["#examples"]["y"] + 200
    assert (
        abs(box["#run"]["y"] - box["#inp"]["y"]) < 20
        and box["#status"]["x"] > box["#settings"]["x"] + 300
    )


CLASS_WORDS_CUT = """() => {
  const clip = (e, cell) => { for (let x = e; x && x !== cell; x = x.parentElement) {
    if (getComputedStyle(x).overflowX !== 'visible') return x; } return cell; };
  const cut = [];
  for (const cell of document.querySelectorAll('#tracks .body-cell, #tracks .header-cell')) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const box = clip(n.parentElement, cell).getBoundingClientRect();
      for (const m of n.data.matchAll(/\\S+/g)) {
        const r = document.createRange();
        r.setStart(n, m.index);
        r.setEnd(n, m.index + m[0].length);
        const parts = [...r.getClientRects()].filter((x) => x.width > 0);
        if (new Set(parts.map((x) => Math.round(x.top))).size > 1 || parts.some((x) => x.right > box.right + 0.5))
          cut.push(m[0]);
      } } }
  return cut; }"""
"""The words of the tracks table's cells (its headers too) drawn on two lines, or past their cell's visible part."""


def test_a_split_off_part_can_be_unticked_and_is_dropped(app_url, page):
    """After a Re-render with Split tracks, Tracks to keep offers the part, ticked; unticked, the next Re-render
    drops it (the app kept every part with its track). A part merged into another track says so (the list still
    offered it as it was while the table listed the target only), and a new Run empties the Split and Merge boxes
    (they were kept, and the next Re-render applied the former run's edits to its tracks)."""
    url, _ = app_url
    _open_with_example(page, url)
    page.click("#run")
    page.wait_for_function(f"() => ({STATUS})().startsWith('done')", timeout=120_000)
    page.locator("#split textarea, #split input").first.fill("2@20")
    page.locator("#split textarea, #split input").first.press("Enter")
    page.wait_for_function(
        f"() => ({STATUS})().startsWith('done: 48 frames, 3 tracks')", timeout=60_000
    )
    part = page.locator("#keep").get_by_label("#3 dog (#2 from frame 20)")
    part.wait_for(timeout=10_000)
    assert part.is_checked() and page.locator("#keep").get_by_label("#2 dog").is_checked()
    part.uncheck()
    page.click("#rerender")
    page.wait_for_function(
        f"() => ({STATUS})().startsWith('done: 48 frames, 2 tracks')", timeout=60_000
    )
    assert not page.locator("#keep").get_by_label("#3 dog (#2 from frame 20)").is_checked()
    assert page.locator("#keep").get_by_label("#2 dog").is_checked()
    page.locator("#keep").get_by_label("#3 dog (#2 from frame 20)").check()
    merge = page.locator("#merge textarea, #merge input").first
    merge.fill("3>1")
    merge.press("Enter")
    merged = page.locator("#keep").get_by_label("#3 dog (#2 from frame 20, merged into #1)")
    merged.wait_for(timeout=60_000)
    page.click("#run")
    page.wait_for_function(f"() => ({STATUS})().startsWith('done')", timeout=120_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#merge textarea, #split textarea')].every(box => box.value === '')",
        timeout=10_000,
    )
