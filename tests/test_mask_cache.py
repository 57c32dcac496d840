import json

import numpy as np
import pytest
from export_helpers import results_from_video

from uvosam.mask_cache import CACHE_FORMAT, MaskCache, has_cache
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


def test_cache_round_trip_and_keep_ids(tmp_path, results):
    """Ids, boxes, scores, labels and masks come back exactly; the frames as JPEG (up to its loss)."""
    cache = _fill(MaskCache(tmp_path / "c", meta={"video": "v"}), results)
    assert len(cache) == 6 and cache.frame_indices() == list(range(6))
    for original, replayed in zip(results, cache.iter_results(), strict=True):
        _assert_same(original, replayed, exact_image=False)
    reopened = MaskCache(tmp_path / "c", meta={"video": "other"})  # meta.json wins
    assert reopened.info.meta == {"video": "v"}
    assert (reopened.info.height, reopened.info.width) == (40, 56)
    _assert_same(results[3], reopened.load(3), exact_image=False)
    kept = list(cache.iter_results(keep_ids={13}))
    assert [r.track_ids.tolist() for r in kept] == [[13], [13], [], [], [13], [13]]


def test_cache_rejects_other_frame_size(tmp_path, results):
    cache = _fill(MaskCache(tmp_path / "c"), results[:1])
    other = results_from_video(moving_shapes(1, height=20, width=20, num_objects=1))[0]
    with pytest.raises(ValueError, match="one cache per video"):
        cache.append(other)


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


@pytest.mark.parametrize("found", [None, 0, "1", True], ids=["none", "zero", "text", "bool"])
def test_a_cache_of_another_format_is_refused_when_opened(tmp_path, results, found):
    cache = _fill(MaskCache(tmp_path / "c"), results[:1])
    cache.finish(1)
    meta = json.loads((cache.root / "meta.json").read_text())
    assert meta["cache_format"] == CACHE_FORMAT == 1 and MaskCache(cache.root).finished
    if found is None:
        del meta["cache_format"]
    else:
        meta["cache_format"] = found
    (cache.root / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(
        ValueError,
        match=r"has (no format number|format ).*; this version of uvosam reads format 1\. Make the run again",
    ):
        MaskCache(cache.root)


@pytest.mark.parametrize(
    "text, why",
    [
        ('{"height": 4,', (r"is not valid JSON \(Expecting property name enclosed in double quotes at line 1, "
                           r"column 14\); the mask cache is damaged; make the run again with its cache on")),
        ("[1, 2]", r"is incomplete or damaged \(meta.json holds a JSON list, not an object\); make the run again"),
        ('{"cache_format": 1, "width": 4, "meta": {}}', r"is incomplete or damaged \(meta.json lacks height\)"),
        ('{"cache_format": 1, "height": 4, "width": 4, "meta": {}, "colour": 2}',
         r"is incomplete or damaged \(meta.json has keys a mask cache does not have: colour\)"),
        ('{"cache_format": 1, "height": 4, "width": 4, "meta": []}',
         r"is incomplete or damaged \(meta.json's meta is a JSON list, not an object\)"),
    ],
    ids=["not_json", "a_list", "lacks_a_key", "an_unknown_key", "meta_not_an_object"],
)  # fmt: skip
def test_a_damaged_meta_json_is_refused_saying_so(tmp_path, text, why):
    """A damaged meta.json gave the bare JSONDecodeError text or a TypeError from CacheInfo(**data) (a traceback in
    `uvosam rerender`), and a JSON list "has no format number (a development build wrote it)"."""
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "meta.json").write_text(text)
    with pytest.raises(ValueError, match=why) as err:
        MaskCache(tmp_path / "c")
    assert str(tmp_path / "c") in str(err.value) and str(err.value).endswith(
        "(`uvosam segment ... --cache`; Python: JobOptions(cache=True))"
    )


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("frame_0000002.npz", lambda data: data[: len(data) // 2]),
        ("frame_0000002.npz", lambda data: b""),
        ("frame_0000002.jpg", lambda data: data[: len(data) // 2]),
        ("frame_0000002.jpg", lambda data: b""),
        ("frame_0000002.npz", lambda data: b"garbage"),
    ],
    ids=["npz-cut", "npz-empty", "jpeg-cut", "jpeg-empty", "npz-not-one"],
)
def test_a_frame_file_damaged_from_outside_is_refused_naming_it(tmp_path, results, name, damage):
    """A cut or empty .npz raised BadZipFile / EOFError (a traceback in `uvosam rerender`), and a cut JPEG said
    "image file is truncated" without naming the file."""
    cache = _fill(MaskCache(tmp_path / "c"), results)
    path = tmp_path / "c" / name
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError) as caught:
        list(cache.iter_results())
    message = str(caught.value)
    assert message.startswith(
        f"the mask cache at {tmp_path / 'c'} is incomplete or damaged ({name} cannot be read"
    )
    assert message.endswith("(`uvosam segment ... --cache`; Python: JobOptions(cache=True))")
    assert "pickle" not in message  # numpy's advice to load a file that is no .npz "unsafely"
    if name.endswith(".npz"):
        with pytest.raises(ValueError, match=f"damaged \\({name} cannot be read"):
            cache.track_labels()
