import json

import numpy as np
import pytest
from export_helpers import results_from_video
from PIL import Image

from uvosam.export_types import ExportOptions
from uvosam.mask_cache import MaskCache, filter_tracks, has_cache, rebuild_exports
from uvosam.testing import moving_shapes


@pytest.fixture(scope="module")
def results():
    video = moving_shapes(6, height=40, width=56, num_objects=3, seed=5, absent={1: range(2, 4)})
    return results_from_video(video)


def _fill(cache, results):
    for res in results:
        cache.append(res)
    return cache


def _assert_same(a, b, *, exact_image=True):
    assert a.frame_index == b.frame_index
    for name in ("track_ids", "boxes_xyxy", "scores", "labels", "masks", "mask_scores"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and (x == y).all(), name
    if exact_image:
        assert (a.image == b.image).all()
    else:
        assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() < 6


def test_png_cache_round_trip_is_exact(tmp_path, results):
    cache = _fill(MaskCache(tmp_path / "c", image_format="png", meta={"video": "v"}), results)
    assert len(cache) == 6 and cache.frame_indices() == list(range(6))
    for original, replayed in zip(results, cache.iter_results(), strict=True):
        _assert_same(original, replayed)
    reopened = MaskCache(tmp_path / "c", image_format="jpeg")  # meta.json wins
    assert reopened.info.image_format == "png" and reopened.info.meta == {"video": "v"}
    assert (reopened.info.height, reopened.info.width) == (40, 56)
    _assert_same(results[3], reopened.load(3))


def test_jpeg_cache_and_keep_ids(tmp_path, results):
    cache = _fill(MaskCache(tmp_path / "c"), results)
    for original, replayed in zip(results, cache.iter_results(), strict=True):
        _assert_same(original, replayed, exact_image=False)
    kept = list(cache.iter_results(keep_ids={13}))
    assert [r.track_ids.tolist() for r in kept] == [[13], [13], [], [], [13], [13]]
    assert [r.track_ids.tolist() for r in filter_tracks(results, {13})] == [
        r.track_ids.tolist() for r in kept
    ]


def test_cache_without_images_needs_frames(tmp_path, results):
    cache = _fill(MaskCache(tmp_path / "c", image_format="none"), results)
    with pytest.raises(ValueError, match="image_format='none'"):
        next(cache.iter_results())
    frames = (r.image for r in results)
    for original, replayed in zip(results, cache.iter_results(frames=frames), strict=True):
        _assert_same(original, replayed)
    too_few = [r.image for r in results[:-1]]
    with pytest.raises(
        ValueError, match=f"ran out after {len(too_few)} frames.*holds {len(results)}"
    ):
        list(cache.iter_results(frames=too_few))


def test_cache_rejects_other_frame_size(tmp_path, results):
    cache = _fill(MaskCache(tmp_path / "c"), results[:1])
    other = results_from_video(moving_shapes(1, height=20, width=20, num_objects=1))[0]
    with pytest.raises(ValueError, match="one cache per video"):
        cache.append(other)


def test_rebuild_exports_with_a_subset(tmp_path, results):
    cache = _fill(MaskCache(tmp_path / "c", image_format="png"), results)
    out = tmp_path / "out"
    kwargs = {
        "video_name": "v",
        "class_names": ["object", "thing"],
        "options": ExportOptions(mattes=True),
    }
    full = rebuild_exports(cache, out, **kwargs)
    assert full.davis_labels == {10: 1, 13: 2, 16: 3}
    subset = rebuild_exports(cache, out, keep_ids={13, 16}, **kwargs)
    assert subset.davis_labels == {13: 1, 16: 2}
    assert sorted(p.name for p in subset.cutouts_dir.iterdir()) == [
        "13",
        "16",
    ]  # old track 10 files removed
    assert [e["category_id"] for e in json.loads(subset.results_json.read_text())] == [2, 1]
    labels = np.array(Image.open(subset.davis_dir / "00000.png"))
    res = results[0]
    expected = np.zeros_like(labels)
    expected[res.masks[1]], expected[res.masks[2]] = 1, 2
    assert (labels == expected).all()


def test_a_cache_is_finished_once_its_writer_marks_it_and_only_while_every_frame_is_there(
    tmp_path, results
):
    cache = _fill(MaskCache(tmp_path / "c"), results)
    assert (
        not cache.finished and not MaskCache(tmp_path / "c").finished
    )  # a run killed here leaves this
    cache.finish(len(results))
    reopened = MaskCache(tmp_path / "c")
    assert reopened.finished and reopened.info.num_frames == len(results)
    (tmp_path / "c" / "frame_0000000.npz").unlink()
    assert not MaskCache(tmp_path / "c").finished


def test_has_cache_creates_nothing(tmp_path, results):
    assert not has_cache(tmp_path / "none") and not (tmp_path / "none").exists()
    assert has_cache(MaskCache(tmp_path / "c").root)
