"""Training data: the three box sources, clip sampling/augmentation, the sharded clip stream, the
training config and the ``uvosam train`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from uvosam.train.clips import ClipDataset, ClipIndexSampler, augment_frame, make_clip
from uvosam.train.config import TrainConfig, load_train_config
from uvosam.train.datasets import (
    VideoRecord,
    load_davis,
    load_folder,
    load_spec,
    load_specs,
    load_ytvis,
    parse_data_spec,
)

NO_AUG = TrainConfig.tiny().replace(crop_prob=0.0, flip_prob=0.0, min_size_train=(32,))


def write_frames(folder, n, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(n):
        Image.new("RGB", size, (10 * t, 0, 0)).save(folder / f"{t:05d}.jpg")


def test_parse_data_spec():
    spec = parse_data_spec("ytvis:/d/train.json:/d/JPEGImages:0.75")
    assert (spec.kind, spec.ratio) == ("ytvis", 0.75)
    assert spec.paths == ("/d/train.json", "/d/JPEGImages")
    assert parse_data_spec("davis:/data/DAVIS").ratio == 1.0
    assert parse_data_spec("folder:vids:2").paths == ("vids",)
    for bad in ("coco:/x", "davis:", "ytvis:/only.json", "folder:a:b:c", "davis:/x:-1"):
        with pytest.raises(ValueError):
            parse_data_spec(bad)


def test_load_ytvis_reads_boxes_only(tmp_path):
    data = {
        "videos": [{"id": 7, "file_names": ["v/0.jpg", "v/1.jpg", "v/2.jpg"]}],
        "annotations": [
            {
                "video_id": 7,
                "id": 3,
                "bboxes": [[1, 2, 10, 20], None, [5, 5, 1, 1]],
                "segmentations": [None, None, None],
            },
            {"video_id": 7, "id": 4, "iscrowd": 1, "bboxes": [[0, 0, 5, 5], None, None]},
        ],
    }
    (tmp_path / "train.json").write_text(json.dumps(data))
    (video,) = load_ytvis(tmp_path / "train.json", tmp_path / "img")
    assert video.frames[1] == tmp_path / "img" / "v/1.jpg"
    assert video.boxes == ({3: (1.0, 2.0, 11.0, 22.0)}, {}, {3: (5.0, 5.0, 6.0, 6.0)})


def write_ytvis(tmp_path, annotations, *, frames=3):
    """A YouTube-VIS JSON with video 7 of ``frames`` frames (files written) -> its ``DataSpec``."""
    write_frames(tmp_path / "img" / "v", frames)
    video = {"id": 7, "file_names": [f"v/{t:05d}.jpg" for t in range(frames)]}
    data = {"videos": [video], "annotations": annotations}
    (tmp_path / "train.json").write_text(json.dumps(data))
    return parse_data_spec(f"ytvis:{tmp_path / 'train.json'}:{tmp_path / 'img'}")


@pytest.mark.parametrize(
    "annotations",
    [
        [],
        [{"video_id": 7, "id": 1, "bboxes": [None] * 3}],
        [{"video_id": 7, "id": 1, "bboxes": [[5, 5, -2, 4], None, None]}],
    ],
    ids=["no annotations", "all null", "only a negative width"],
)
def test_data_without_a_box_is_refused(tmp_path, annotations):
    """Such a dataset trained with loss 0 at every iteration and wrote model_final.pth."""
    spec = write_ytvis(tmp_path, annotations)
    with pytest.raises(
        ValueError,
        match=r"no frame of its 1 video \(3 frames\) holds a box",  # not "1 videos"
    ) as err:
        load_specs([spec])
    assert "each annotation's 'bboxes'" in str(err.value)


def test_folder_data_without_a_box_is_refused(tmp_path):
    write_frames(tmp_path / "clip" / "frames", 2)
    (tmp_path / "clip" / "boxes.json").write_text(json.dumps([[], []]))
    with pytest.raises(ValueError, match=r"holds a box .* boxes.json"):
        load_specs([parse_data_spec(f"folder:{tmp_path / 'clip'}")])


def test_a_dataset_without_a_box_is_taken_beside_one_with_boxes(tmp_path, caplog):
    """Videos without objects teach "no object" (``load_ytvis`` keeps them): such a dataset was refused on its own
    even beside another that has boxes; only data with no box at all is (nothing to train on)."""
    empty = write_ytvis(tmp_path / "empty", [])
    boxed = write_ytvis(
        tmp_path / "boxed", [{"video_id": 7, "id": 1, "bboxes": [[1, 1, 4, 4]] * 3}]
    )
    sources = load_specs([empty, boxed])
    assert [len(videos) for videos in sources] == [1, 1]
    assert (
        "empty/train.json" in caplog.text
        and "holds no box: its videos only teach 'no object'" in caplog.text
    )


def test_ytvis_annotation_without_bboxes_is_an_error(tmp_path):
    """It was read as "no boxes" (``ann.get("bboxes") or []``)."""
    ann = {"video_id": 7, "id": 1, "boxes": [[1, 1, 4, 4]] * 3}
    write_ytvis(tmp_path, [ann])
    with pytest.raises(ValueError, match=r"annotations\[0\] has no 'bboxes'; expected .* got keys"):
        load_ytvis(tmp_path / "train.json", tmp_path / "img")


def test_ytvis_annotation_of_an_unknown_video_names_it(tmp_path):
    """A raw ``KeyError: 999`` traceback before."""
    box = [[1, 1, 4, 4]] * 3
    write_ytvis(
        tmp_path,
        [{"video_id": 7, "id": 1, "bboxes": box}, {"video_id": 999, "id": 2, "bboxes": box}],
    )
    with pytest.raises(
        ValueError, match=r"annotations\[1\] \(id 2\): video_id 999 is not the id of any"
    ):
        load_ytvis(tmp_path / "train.json", tmp_path / "img")


@pytest.mark.parametrize("length", [2, 4])
def test_ytvis_bboxes_not_one_per_frame_are_refused(tmp_path, length):
    """A shorter list was read as absent objects, a longer one truncated."""
    write_ytvis(tmp_path, [{"video_id": 7, "id": 1, "bboxes": [[1, 1, 4, 4]] * length}])
    with pytest.raises(
        ValueError, match=rf"\(id 1\): bboxes has {length} entries for the 3 file_names"
    ):
        load_ytvis(tmp_path / "train.json", tmp_path / "img")


def test_boxes_without_width_or_height_are_counted_in_one_warning(tmp_path, caplog):
    anns = [
        {"video_id": 7, "id": 1, "bboxes": [[5, 5, -2, 4], [1, 1, 4, 4], None]},
        {"video_id": 7, "id": 2, "bboxes": [[1, 1, 4, 4], [1, 1, 3, -1], [1, 1, 4, 4]]},
    ]
    with caplog.at_level("WARNING", logger="uvosam.train.datasets"):
        (video,) = load_spec(write_ytvis(tmp_path, anns))
    (record,) = caplog.records
    assert (
        "taken as absent: 2 of 5 (e.g. video '7' frame 0 object 1: width -2, height 4)"
        in record.message
    )
    assert video.boxes[1] == {1: (1.0, 1.0, 5.0, 5.0), 2: (1.0, 1.0, 4.0, 0.0)}


def test_missing_frame_files_are_found_when_the_data_is_loaded(tmp_path):
    """Found only when a clip first read the frame, possibly hours into training."""
    spec = write_ytvis(tmp_path, [{"video_id": 7, "id": 1, "bboxes": [[1, 1, 4, 4]] * 3}])
    for t in (1, 2):
        (tmp_path / "img" / "v" / f"{t:05d}.jpg").unlink()
    missing = tmp_path / "img" / "v" / "00001.jpg"
    with pytest.raises(
        FileNotFoundError, match=r"2 of its 3 frame files missing, e.g. (.*) \(video '7' frame 1\)"
    ) as err:
        load_spec(spec)
    assert str(missing) in str(err.value)


@pytest.mark.parametrize("box", [[1, 1, 4], 5, [1, 1, "4", 4]])
def test_ytvis_box_that_is_not_four_numbers_is_named(tmp_path, box):
    """Not enough values to unpack, or a TypeError traceback, before."""
    write_ytvis(tmp_path, [{"video_id": 7, "id": 1, "bboxes": [None, box, None]}])
    with pytest.raises(
        ValueError, match=r"\(id 1\): bboxes\[1\] is .*; expected \[x, y, w, h\] or null"
    ):
        load_ytvis(tmp_path / "train.json", tmp_path / "img")


def test_load_davis_boxes_from_palette_masks(tmp_path):
    write_frames(tmp_path / "JPEGImages/480p/cows", 2)
    ann = tmp_path / "Annotations/480p/cows"
    ann.mkdir(parents=True)
    for t in range(2):
        label = np.zeros((30, 40), np.uint8)
        label[5:10, 3 + t : 8 + t] = 1
        label[20:25, 30:35] = 2 if t == 0 else 0
        im = Image.fromarray(label, mode="P")
        im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
        im.save(ann / f"{t:05d}.png")
    (video,) = load_davis(tmp_path)
    assert video.name == "cows" and len(video) == 2
    assert video.boxes[0] == {1: (3.0, 5.0, 8.0, 10.0), 2: (30.0, 20.0, 35.0, 25.0)}
    assert video.boxes[1] == {1: (4.0, 5.0, 9.0, 10.0)}


@pytest.mark.parametrize("as_dict", [True, False])
def test_load_folder(tmp_path, as_dict):
    write_frames(tmp_path / "clip" / "frames", 3)
    rows = [[[1, 0, 0, 10, 10], [2, 5, 5, 20, 25]], [], [[1, 1, 1, 11, 11]]]
    boxes = {f"{t:05d}.jpg": r for t, r in enumerate(rows) if r} if as_dict else rows
    (tmp_path / "clip" / "boxes.json").write_text(json.dumps(boxes))
    for root in (tmp_path / "clip", tmp_path):
        (video,) = load_folder(root)
        assert video.boxes[0][2] == (5.0, 5.0, 20.0, 25.0) and video.boxes[1] == {}
        assert video.frames[2].name == "00002.jpg"


def test_flip_and_resize_move_the_boxes():
    image = np.zeros((30, 40, 3), np.uint8)
    out, boxes = augment_frame(
        image,
        np.array([[4.0, 6.0, 14.0, 16.0]]),
        crop=None,
        short_edge=60,
        max_size=1000,
        flip=True,
    )
    assert out.shape == (60, 80, 3)
    np.testing.assert_allclose(boxes, [[80 - 28, 12, 80 - 8, 32]])
    _, cropped = augment_frame(
        image,
        np.array([[4.0, 6.0, 14.0, 16.0]]),
        crop=(10, 10, 20, 20),
        short_edge=20,
        max_size=1000,
        flip=False,
    )
    np.testing.assert_allclose(cropped, [[0, 0, 4, 6]])


def test_clip_drops_objects_absent_from_the_key_frame():
    frames = tuple(np.full((32, 32, 3), t, np.uint8) for t in range(2))
    video = VideoRecord(
        "v",
        frames,
        ({1: (0, 0, 8, 8), 2: (10, 10, 20, 20)}, {2: (11, 10, 21, 20), 3: (1, 1, 5, 5)}),
    )
    clip = make_clip(video, NO_AUG.replace(sampling_frame_range=1), np.random.default_rng(0))
    assert clip.track_ids.tolist() == [1, 2]  # 3 only in the reference frame: dropped
    assert clip.valid.tolist() == [[True, True], [False, True]]
    np.testing.assert_allclose(clip.boxes_xyxy[1, 1], [11, 10, 21, 20])


def test_clip_stream_is_deterministic_and_sharded():
    video = VideoRecord(
        "v",
        tuple(np.zeros((32, 32, 3), np.uint8) for _ in range(5)),
        tuple({1: (t, 0.0, t + 8.0, 8.0)} for t in range(5)),
    )

    def clips(seed):  # the boxes say which two frames each clip holds
        ds = ClipDataset([[video]], [1.0], NO_AUG, seed=seed)
        return [ds[i].boxes_xyxy.tolist() for i in range(8)]

    # clip i = f(seed, i): equal in another dataset (another rank); varies with i and the seed
    assert clips(0) == clips(0) and clips(0) != clips(1)
    assert len({str(c) for c in clips(0)}) > 1
    shares = [
        list(_take(ClipIndexSampler(8, rank=r, world_size=2, start_iter=3), 8)) for r in range(2)
    ]
    assert shares[0] == [24, 25, 26, 27, 32, 33, 34, 35]
    assert shares[1] == [28, 29, 30, 31, 36, 37, 38, 39]
    with pytest.raises(ValueError):
        ClipIndexSampler(8, world_size=3)


def _take(iterable, n):
    it = iter(iterable)
    return [next(it) for _ in range(n)]


def test_train_config_presets_and_yaml(tmp_path):
    release = TrainConfig.davis_r50()
    assert (release.max_iter, release.lr_steps, release.clips_per_batch) == (12000, (8500,), 8)
    assert release.base_lr == 5e-5 and release.clip_grad_norm == 0.01
    with pytest.raises(ValueError, match="num_classes"):
        TrainConfig(detector=TrainConfig.tiny().detector.__class__(num_classes=80))
    ours = tmp_path / "ours.yaml"
    ours.write_text("max_iter: 50\nlr_steps: [40]\ndetector:\n  num_queries: 30\n")
    cfg = load_train_config(ours)
    assert (cfg.max_iter, cfg.lr_steps, cfg.detector.num_queries) == (50, (40,), 30)
    d2 = tmp_path / "davis_r50.yaml"
    d2.write_text(
        "MODEL:\n  META_ARCHITECTURE: IDOL\n  RESNETS:\n    STRIDE_IN_1X1: False\n"
        "  IDOL:\n    NUM_CLASSES: 1\nSOLVER:\n  IMS_PER_BATCH: 16\n  STEPS: (8500,)\n"
        "  MAX_ITER: 12000\nINPUT:\n  FORMAT: RGB\n  SAMPLING_FRAME_RANGE: 10\n"
        "  CROP:\n    SIZE: (384, 600)\n"
    )
    cfg = load_train_config(d2)
    assert (cfg.clips_per_batch, cfg.lr_steps, cfg.crop_size) == (16, (8500,), (384, 600))
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        ours.write_text("max_iters: 5\n")
        load_train_config(ours)
    ours.write_text("max_iter: [5\n")  # a yaml traceback on the command line before
    with pytest.raises(ValueError, match=r"ours.yaml is not valid YAML \(.* at line 2, column 1\)"):
        load_train_config(ours)


D2_MODEL = (
    "MODEL:\n  META_ARCHITECTURE: IDOL\n  RESNETS:\n    STRIDE_IN_1X1: False\n"
    "  IDOL:\n    NUM_CLASSES: 1\nINPUT:\n  FORMAT: RGB\n"
)


def test_d2_yaml_switches_off_clipping_crop_and_flip(tmp_path):
    d2 = tmp_path / "no_aug.yaml"
    d2.write_text(
        D2_MODEL + "  RANDOM_FLIP: none\n  CROP:\n    ENABLED: False\n    SIZE: (384, 600)\n"
        "SOLVER:\n  CLIP_GRADIENTS:\n    ENABLED: False\n    CLIP_TYPE: full_model\n"
        "    CLIP_VALUE: 0.01\n"
    )
    cfg = load_train_config(d2)
    assert (cfg.clip_grad_norm, cfg.crop_prob, cfg.flip_prob) == (0.0, 0.0, 0.0)
    d2.write_text(
        D2_MODEL + "SOLVER:\n  CLIP_GRADIENTS:\n    ENABLED: True\n"
        "    CLIP_TYPE: value\n    CLIP_VALUE: 1.0\n"
    )
    with pytest.raises(ValueError, match="full_model"):
        load_train_config(d2)


def test_d2_yaml_follows_base(tmp_path):
    (tmp_path / "base.yaml").write_text(
        D2_MODEL + "  SAMPLING_FRAME_RANGE: 5\nSOLVER:\n  STEPS: (5000,)\n  MAX_ITER: 6000\n"
        "  BASE_LR: 0.0002\n"
    )
    child = tmp_path / "child.yaml"
    child.write_text("_BASE_: base.yaml\nSOLVER:\n  BASE_LR: 0.0001\n")
    cfg = load_train_config(child)
    assert (cfg.lr_steps, cfg.max_iter, cfg.base_lr) == ((5000,), 6000, 1e-4)
    assert cfg.sampling_frame_range == 5


def test_cli_trains_from_a_folder(tmp_path):
    from uvosam_cli import main

    clip = tmp_path / "data" / "clip"
    write_frames(clip / "frames", 4, size=(48, 40))
    (clip / "boxes.json").write_text(json.dumps([[[1, 5, 5, 25, 30]]] * 4))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(
            [
                "train",
                "--config",
                "tiny",
                "--data",
                f"folder:{tmp_path / 'data'}",
                "--out",
                str(tmp_path / "run"),
                "--iters",
                "2",
            ]
        )
    finally:
        torch.set_num_threads(before)
    assert code == 0
    saved = torch.load(tmp_path / "run" / "model_final.pth", weights_only=True)
    assert saved["iteration"] == 2 and saved["train_config"]["max_iter"] == 2


@pytest.mark.parametrize(
    ("bboxes", "said"),
    [
        ([None] * 3, "holds a box"),
        ([[1, 1, 4, 4]] * 2, "bboxes has 2 entries for the 3 file_names"),
    ],
)
def test_cli_refuses_bad_data_in_one_line_before_building_the_model(
    tmp_path, monkeypatch, capsys, bboxes, said
):
    from uvosam.train import loop
    from uvosam_cli import main

    monkeypatch.setattr(loop, "train", lambda *a, **k: pytest.fail("training started"))
    write_ytvis(tmp_path, [{"video_id": 7, "id": 1, "bboxes": bboxes}])
    data = f"ytvis:{tmp_path / 'train.json'}:{tmp_path / 'img'}"
    argv = ["train", "--config", "tiny", "--data", data, "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("uvosam train: error: ") and said in line
    assert not (tmp_path / "run" / "model_final.pth").exists()


def test_a_damaged_json_file_is_named_with_where_it_breaks_and_what_to_do(tmp_path):
    """A damaged annotations file or boxes.json gave the bare JSONDecodeError text, which named no file."""
    (tmp_path / "train.json").write_text('{"videos": [\n  {"id": 1,}\n]}')
    with pytest.raises(ValueError) as err:
        load_ytvis(tmp_path / "train.json", tmp_path / "img")
    assert str(err.value).startswith(
        f"{tmp_path / 'train.json'} is not valid JSON (Expecting property name enclosed in double quotes at "
        "line 2, column 12); fix or re-export the annotations (see "
    )
    write_frames(tmp_path / "clip" / "frames", 2)
    (tmp_path / "clip" / "boxes.json").write_bytes(b"[[1, 2, 3, 4]\xff")
    with pytest.raises(ValueError) as err:
        load_folder(tmp_path / "clip")
    assert str(err.value).startswith(
        f"{tmp_path / 'clip' / 'boxes.json'} is not valid JSON (byte 13 is not UTF-8 text); fix or re-export "
        "the boxes"
    )
