"""uvosam.hub (with weight_table, weight_checksums and weight_loading) against a hand-built Hugging Face cache in
tmp_path, offline, tiny SAM weights."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import pickle
import sys
import threading
import time
from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub.utils import LocalEntryNotFoundError  # (.errors only from 0.25)

from uvosam import hub, weight_checksums, weight_loading, weight_table
from uvosam.errors import MissingWeightsError, WeightsError
from uvosam.pipeline import UVOSAM
from uvosam.testing import tiny_sam

COMMIT = "0123456789abcdef0123456789abcdef01234567"
NAME = "sam_vit_b"
# the real lookup (an autouse fixture of conftest.py replaces it in every test with one that always resolves)
REAL_HOST_LOOKUP_FAILURE = hub._host_lookup_failure


@pytest.fixture
def ckpt_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("src") / "tiny.pth"
    torch.save(tiny_sam().state_dict(), path)
    return path.read_bytes()


@pytest.fixture
def spec(monkeypatch, ckpt_bytes) -> weight_table.WeightSpec:
    """WEIGHTS['sam_vit_b'] pointed at the tiny checkpoint; hash memory cleared; offline."""
    real = weight_table.WEIGHTS[NAME]
    fake = dataclasses.replace(
        real, sha256=hashlib.sha256(ckpt_bytes).hexdigest(), size_bytes=len(ckpt_bytes), url=None
    )
    monkeypatch.setitem(weight_table.WEIGHTS, NAME, fake)
    monkeypatch.setattr(weight_checksums, "_HASHES", {})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return fake


def put_in_cache(cache: Path, spec: weight_table.WeightSpec, data: bytes) -> Path:
    """The HF cache layout: refs/main -> commit; snapshots/<commit>/<file> -> blobs/<sha256>."""
    repo = cache / ("models--" + spec.repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(exist_ok=True)
    blob.write_bytes(data)
    entry = repo / "snapshots" / COMMIT / spec.filename
    entry.parent.mkdir(parents=True, exist_ok=True)
    if entry.is_symlink() or entry.exists():
        entry.unlink()
    entry.symlink_to(os.path.relpath(blob, entry.parent))
    return entry


def corrupt(data: bytes, at: int = 100) -> bytes:
    """Same size, different content."""
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def test_checkpoints_dir_comes_first_and_the_hash_is_remembered(
    tmp_path, spec, ckpt_bytes, monkeypatch
):
    ckdir = tmp_path / "checkpoints"
    ckdir.mkdir()
    (ckdir / spec.basename).write_bytes(ckpt_bytes)
    put_in_cache(tmp_path / "hf", spec, ckpt_bytes)
    found = hub.resolve(NAME, checkpoints_dir=ckdir, cache_dir=tmp_path / "hf")
    assert found == ckdir / spec.basename
    sidecar = ckdir / (spec.basename + ".sha256")
    assert spec.sha256 in sidecar.read_text()

    # A new process (empty memory) trusts the sidecar: no hashing at all.
    monkeypatch.setattr(weight_checksums, "_HASHES", {})
    monkeypatch.setattr(
        weight_checksums.hashlib,
        "sha256",
        lambda *a: pytest.fail("re-hashed despite a valid sidecar"),
    )
    assert hub.resolve(NAME, checkpoints_dir=ckdir) == found
    # A changed mtime invalidates the sidecar.
    os.utime(found, ns=(1, 1))
    monkeypatch.setattr(weight_checksums, "_HASHES", {})
    with pytest.raises(pytest.fail.Exception, match="re-hashed"):
        hub.resolve(NAME, checkpoints_dir=ckdir)


def _replace_keeping_mtime(path: Path, data: bytes, *, in_place: bool) -> None:
    """Other bytes into ``path`` with its mtime set back: ``cp -p`` / ``curl -R`` write in place,
    ``rsync -t`` / ``wget -N`` write a new file and rename it over."""
    st = path.stat()
    time.sleep(0.02)  # a kernel with coarse timestamps moves ctime once a clock tick (a few ms)
    if in_place:
        path.write_bytes(data)
    else:
        path.with_name("new.tmp").write_bytes(data)
        os.replace(path.with_name("new.tmp"), path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)


@pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "renamed-over"])
@pytest.mark.parametrize("new_process", [False, True], ids=["same-process", "new-process"])
def test_a_same_size_copy_with_its_mtime_restored_is_hashed_again(
    tmp_path, spec, ckpt_bytes, monkeypatch, in_place, new_process
):
    path = tmp_path / spec.basename
    path.write_bytes(ckpt_bytes)
    weight_checksums.verify_file(path, spec)
    _replace_keeping_mtime(path, corrupt(ckpt_bytes), in_place=in_place)
    if new_process:  # only the sidecar remembers the good copy
        monkeypatch.setattr(weight_checksums, "_HASHES", {})
    with pytest.raises(WeightsError, match="is not a good copy"):
        weight_checksums.verify_file(path, spec)


def test_a_sidecar_without_inode_and_ctime_is_stale_not_an_error(tmp_path, spec, ckpt_bytes):
    """A sidecar written before the inode and ctime were kept: the file is hashed once, the sidecar
    rewritten, and trusted from then on."""
    path = tmp_path / spec.basename
    path.write_bytes(ckpt_bytes)
    st = path.stat()
    sidecar = weight_checksums.sidecar_path(path)
    old = {"sha256": spec.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    sidecar.write_text(json.dumps(old) + "\n")
    hashed = []
    real_sha256 = weight_checksums.hashlib.sha256

    def counting():
        hashed.append(1)
        return real_sha256()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(weight_checksums.hashlib, "sha256", counting)
        weight_checksums.verify_file(path, spec)
        assert len(hashed) == 1
        assert json.loads(sidecar.read_text()) == {
            **old, "ino": st.st_ino, "ctime_ns": path.stat().st_ctime_ns,
        }  # fmt: skip
        patch.setattr(weight_checksums, "_HASHES", {})
        weight_checksums.verify_file(path, spec)
        assert len(hashed) == 1


def test_found_in_hf_cache_offline(tmp_path, spec, ckpt_bytes):
    entry = put_in_cache(tmp_path / "hf", spec, ckpt_bytes)
    found = hub.resolve(NAME, checkpoints_dir=tmp_path / "empty", cache_dir=tmp_path / "hf")
    assert found == entry
    state = weight_loading.load_checkpoint(found)
    model = tiny_sam(seed=3)
    model.load_state_dict(state)
    assert torch.equal(
        model.mask_decoder.iou_token.weight, tiny_sam().mask_decoder.iou_token.weight
    )


def test_missing_names_every_place_and_how_to_get_it(tmp_path, spec):
    ckdir = tmp_path / "checkpoints"
    # a FileNotFoundError (callers' except clauses) that an app tells apart from a missing input file
    with pytest.raises(MissingWeightsError) as info:
        hub.resolve(
            str(tmp_path / "ckpt" / spec.basename), checkpoints_dir=ckdir, cache_dir=tmp_path / "hf"
        )
    text = str(info.value)
    for needle in (
        str(tmp_path / "ckpt" / spec.basename),
        str(ckdir / spec.basename),
        str(tmp_path / "hf"),
        "HF_HUB_OFFLINE",
        f"hf download {spec.repo_id} {spec.filename}",
        f"huggingface-cli download {spec.repo_id} {spec.filename}",  # huggingface_hub < 0.34
        spec.hub_url,
        spec.sha256,
    ):
        assert needle in text


def test_offline_the_missing_message_says_the_cache_was_looked_in_and_the_hub_not_asked(
    tmp_path, spec
):
    """ "Hugging Face cache ... — not available (HF_HUB_OFFLINE is set)" read as if offline mode skipped the cache,
    which was looked in."""
    with pytest.raises(FileNotFoundError) as info:
        hub.resolve(NAME, checkpoints_dir=tmp_path / "checkpoints", cache_dir=tmp_path / "hf")
    [cache_line] = [
        line for line in str(info.value).splitlines() if line.startswith("  - Hugging Face cache")
    ]
    assert cache_line.endswith(
        f"Hugging Face cache {tmp_path / 'hf'} ({spec.repo_id}: {spec.filename}) — not available (not in the "
        "cache; the Hub was not asked because HF_HUB_OFFLINE is set)"
    )


def test_offline_a_cache_that_cannot_be_read_is_not_called_empty(tmp_path, spec, monkeypatch):
    """Any error looking in the cache offline was told as "not in the cache" (a HOME that is not a folder made
    huggingface_hub raise NotADirectoryError reading its token, with the file in the cache)."""

    def unreadable(*args, **kwargs):
        raise NotADirectoryError(20, "Not a directory", "/dev/null/nohome/.cache/huggingface/token")

    monkeypatch.setattr(hub, "_hf_download", unreadable)
    with pytest.raises(FileNotFoundError) as info:
        hub.resolve(NAME, checkpoints_dir=tmp_path / "checkpoints", cache_dir=tmp_path / "hf")
    assert (
        "— not available (the cache cannot be read (NotADirectoryError: [Errno 20] Not a directory: "
        "'/dev/null/nohome/.cache/huggingface/token'); the Hub was not asked because HF_HUB_OFFLINE is set)"
    ) in str(info.value)


def test_unknown_name_is_a_clear_error(tmp_path):
    with pytest.raises(
        MissingWeightsError, match="nope.pth is neither a weight name nor a checkpoint file"
    ):
        hub.resolve(str(tmp_path / "nope.pth"))


def test_an_unknown_name_is_offered_the_names_of_its_role_only():
    """Every weight name was listed whatever the name was for: a tracker was offered SAM's, and sam='vit_q' got
    tracker names and sam_vit_b, never vit_b (the name from_pretrained takes)."""
    with pytest.raises(MissingWeightsError) as err:
        hub.resolve("idol-q", role="tracker")
    assert str(err.value) == (
        "idol-q is neither a tracker weight name nor a checkpoint file (no file at idol-q); expected one of "
        "idol-ytvis19-r50, idol-ytvis21-r50, idol-ovis-r50, idol-coco-r50, uvosam-davis-r50, or the path of an "
        "IDOL / UVOSAM tracker checkpoint"
    )
    with pytest.raises(MissingWeightsError) as err:
        UVOSAM.from_pretrained("idol-ytvis19-r50", "vit_q", device="cpu")
    said = [line for line in str(err.value).splitlines() if line.startswith("vit_q")]
    assert said == [
        (
            "vit_q is neither a SAM / SAM 2.1 model nor a checkpoint file (no file at vit_q); expected one of "
            "vit_b, vit_l, vit_h, sam2.1_tiny, sam2.1_small, sam2.1_base_plus, sam2.1_large (also as sam_vit_b, "
            "sam_vit_l, sam_vit_h), or the path of a SAM / SAM 2.1 checkpoint"
        )
    ]


def test_bad_file_in_checkpoints_is_reported_and_kept(tmp_path, spec, ckpt_bytes):
    ckdir = tmp_path / "checkpoints"
    ckdir.mkdir()
    bad = ckdir / spec.basename
    bad.write_bytes(corrupt(ckpt_bytes))
    with pytest.raises(WeightsError, match="expected .* sha256 " + spec.sha256):
        hub.resolve(NAME, checkpoints_dir=ckdir)
    assert bad.exists()
    bad.write_bytes(ckpt_bytes[:-10])
    with pytest.raises(WeightsError, match=f"got {len(ckpt_bytes) - 10:,} bytes"):
        hub.resolve(NAME, checkpoints_dir=ckdir)
    assert hub.resolve(NAME, checkpoints_dir=ckdir, verify=False) == bad


def test_explicit_path_with_a_known_basename_is_verified(tmp_path, spec, ckpt_bytes):
    path = tmp_path / "elsewhere" / spec.basename
    path.parent.mkdir()
    path.write_bytes(ckpt_bytes)
    assert hub.resolve(path, checkpoints_dir=tmp_path / "empty") == path
    path.write_bytes(corrupt(ckpt_bytes))
    with pytest.raises(WeightsError):
        hub.resolve(path)
    other = tmp_path / "finetuned.pth"
    other.write_bytes(b"anything")
    assert hub.resolve(other) == other


def test_bad_cached_copy_offline_is_deleted(tmp_path, spec, ckpt_bytes):
    """... and the message names the checkpoints folder a good copy can go in (not the repository's
    ``checkpoints/``, which an installed package has not)."""
    entry = put_in_cache(tmp_path / "hf", spec, corrupt(ckpt_bytes))
    blob = entry.resolve()
    with pytest.raises(WeightsError, match="deleted .* HF_HUB_OFFLINE") as caught:
        hub.resolve(NAME, checkpoints_dir=tmp_path / "empty", cache_dir=tmp_path / "hf")
    assert str(caught.value).endswith(f"or put a good copy in {tmp_path / 'empty'}/.")
    assert not blob.exists() and not entry.is_symlink()


def test_a_bad_copy_in_a_read_only_cache_says_it_stays(tmp_path, spec, ckpt_bytes, monkeypatch):
    """In a read-only Hugging Face cache the lock beside a bad copy could not be made, nor the copy deleted: a bare
    OSError (the app's "Something went wrong on our side"). Now it is the bad copy's WeightsError, saying it stays."""
    entry = put_in_cache(tmp_path / "hf", spec, corrupt(ckpt_bytes))
    real_open, real_unlink = os.open, Path.unlink
    snapshot = str(entry.parent)

    def read_only_open(file, flags, *args, **kwargs):
        if str(file).startswith(snapshot) and flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, flags, *args, **kwargs)

    def read_only_unlink(self, missing_ok=False):
        if str(self).startswith(str(tmp_path / "hf")):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(os, "open", read_only_open)
    monkeypatch.setattr(Path, "unlink", read_only_unlink)
    with pytest.raises(WeightsError) as caught:
        hub.resolve(NAME, checkpoints_dir=tmp_path / "empty", cache_dir=tmp_path / "hf")
    assert str(caught.value).endswith(
        "The bad copy could not be deleted from the Hugging Face cache (Read-only file system): delete it there, or "
        f"put a good copy in {tmp_path / 'empty'}/."
    )
    assert entry.resolve().exists()


class FakeDownloader:
    """Stands in for hf_hub_download; a forced download writes ``fresh`` into the cache."""

    def __init__(self, cache: Path, spec: weight_table.WeightSpec, fresh: bytes) -> None:
        self.cache, self.spec, self.fresh, self.calls = cache, spec, fresh, []

    def __call__(self, *, repo_id, filename, cache_dir, local_files_only, force_download):
        assert (repo_id, filename, Path(cache_dir)) == (
            self.spec.repo_id,
            self.spec.filename,
            self.cache,
        )
        self.calls.append((local_files_only, force_download))
        entry = (
            self.cache / ("models--" + repo_id.replace("/", "--")) / "snapshots" / COMMIT / filename
        )
        if force_download:
            put_in_cache(self.cache, self.spec, self.fresh)
        return str(entry)


@pytest.mark.parametrize("fresh_is_good", [True, False])
def test_bad_cached_copy_is_downloaded_again_once(
    tmp_path, spec, ckpt_bytes, monkeypatch, fresh_is_good
):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    cache = tmp_path / "hf"
    bad_blob = put_in_cache(cache, spec, corrupt(ckpt_bytes)).resolve()
    fake = FakeDownloader(cache, spec, ckpt_bytes if fresh_is_good else corrupt(ckpt_bytes, at=200))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    if fresh_is_good:
        found = hub.resolve(NAME, checkpoints_dir=tmp_path / "empty", cache_dir=cache)
        assert found.read_bytes() == ckpt_bytes
    else:
        with pytest.raises(WeightsError):
            hub.resolve(NAME, checkpoints_dir=tmp_path / "empty", cache_dir=cache)
    assert fake.calls == [(False, False), (False, True)]
    assert not bad_blob.exists()


@pytest.fixture
def bad_copy_online(tmp_path, spec, ckpt_bytes, monkeypatch):
    """A corrupt copy in the HF cache at ``tmp_path / "hf"``, the Hub allowed and taken as reachable, and a
    ``FakeDownloader`` of the good bytes (not installed): (cache, fake)."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "_unreachable_reason", lambda: None)
    monkeypatch.setattr(hub, "_hub_unreachable_by_name", lambda: None)
    cache = tmp_path / "hf"
    put_in_cache(cache, spec, corrupt(ckpt_bytes))
    return cache, FakeDownloader(cache, spec, ckpt_bytes)


def test_a_failed_download_of_a_bad_cached_copy_names_the_checkpoints_folder(
    tmp_path, monkeypatch, bad_copy_online
):
    cache, fake = bad_copy_online

    def download(**kwargs):
        if kwargs["force_download"]:
            raise OSError("connection reset")
        return fake(**kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    with pytest.raises(WeightsError, match="was corrupt and was deleted") as caught:
        hub.resolve(NAME, checkpoints_dir=tmp_path / "mine", cache_dir=cache)
    assert str(caught.value).endswith(f"or put a good copy in {tmp_path / 'mine'}/.")


def test_direct_url_fallback(tmp_path, spec, ckpt_bytes, monkeypatch):
    source = tmp_path / "server" / spec.basename
    source.parent.mkdir()
    source.write_bytes(ckpt_bytes)
    monkeypatch.setitem(
        weight_table.WEIGHTS, NAME, dataclasses.replace(spec, repo_id=None, url=source.as_uri())
    )
    ckdir = tmp_path / "checkpoints"
    with pytest.raises(FileNotFoundError, match=source.as_uri()):  # offline: the URL is only a hint
        hub.resolve(NAME, checkpoints_dir=ckdir)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    assert hub.resolve(NAME, checkpoints_dir=ckdir) == ckdir / spec.basename
    assert (ckdir / spec.basename).read_bytes() == ckpt_bytes
    source.write_bytes(corrupt(ckpt_bytes))
    (ckdir / spec.basename).unlink()
    with pytest.raises(WeightsError):
        hub.resolve(NAME, checkpoints_dir=ckdir)
    assert list(ckdir.iterdir()) == [ckdir / (spec.basename + ".sha256")]


@pytest.mark.parametrize("cut", ["content-length", "chunked"])
def test_a_download_cut_short_is_not_kept(tmp_path, spec, ckpt_bytes, monkeypatch, cut):
    """A server closing early ends a body without an error (Content-Length) or with http.client's IncompleteRead
    (chunked): the cut file, which a file without a published checksum cannot be checked against, is not kept."""
    from http_helpers import serving

    half = ckpt_bytes[: len(ckpt_bytes) // 2]

    def send_half(handler):
        handler.send_response(200)
        if cut == "chunked":
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(ckpt_bytes), half))
        else:
            handler.send_header("Content-Length", str(len(ckpt_bytes)))
            handler.end_headers()
            handler.wfile.write(half)
        handler.close_connection = True

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    ckdir = tmp_path / "checkpoints"
    with serving() as server:
        server.routes["/davis.pth"] = send_half
        unpinned = dataclasses.replace(
            spec, repo_id=None, url=server.url("/davis.pth"), sha256=None
        )
        monkeypatch.setitem(weight_table.WEIGHTS, NAME, unpinned)
        with pytest.raises(FileNotFoundError, match=r"download failed \((OSError|IncompleteRead)"):
            hub.resolve(NAME, checkpoints_dir=ckdir)
    assert not ckdir.exists() or list(ckdir.iterdir()) == []


class SlowResponse:
    """A response of ``payload`` in 16 KiB chunks, ``per_chunk_s`` apart (urlopen's context manager)."""

    def __init__(self, payload: bytes, per_chunk_s: float) -> None:
        self.payload, self.per_chunk_s, self.pos = payload, per_chunk_s, 0
        self.headers = {"Content-Length": str(len(payload))}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self, n: int) -> bytes:
        time.sleep(self.per_chunk_s)
        chunk = self.payload[self.pos : self.pos + 16384]
        self.pos += len(chunk)
        return chunk


@pytest.mark.parametrize("pinned", [True, False])
def test_two_fetches_of_one_file_at_once_make_one_good_file(tmp_path, spec, monkeypatch, pinned):
    """Two fetches of a file from its URL at once (two app sessions, two workers, a CLI and an app on one
    checkpoints folder) shared ``<file>.part``: the second one truncated the first one's file mid-write, the first
    renamed a file with zeroed blocks into place (kept for good without a published checksum: its sidecar had the
    network's hash) and the second failed as "not found". Now the second waits and uses the first one's file;
    leftovers of killed fetches go."""
    payload = bytes(range(1, 256)) * 1024  # no zero run
    monkeypatch.setitem(
        weight_table.WEIGHTS,
        NAME,
        dataclasses.replace(
            spec,
            repo_id=None,
            url="https://example.invalid/" + spec.basename,
            sha256=hashlib.sha256(payload).hexdigest() if pinned else None,
            size_bytes=len(payload) if pinned else None,
        ),
    )
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    opened = []

    def urlopen(url, timeout=None):
        opened.append(url)
        return SlowResponse(payload, 0.005 if len(opened) == 1 else 0.01)

    monkeypatch.setattr(hub.urllib.request, "urlopen", urlopen)
    ckdir = tmp_path / "checkpoints"
    ckdir.mkdir()
    for left in (f".{spec.basename}.a1b2c3.part", f"{spec.basename}.part"):  # of killed fetches
        (ckdir / left).write_bytes(b"\0" * 100)
    results = {}

    def fetch(i):
        try:
            results[i] = hub.resolve(NAME, checkpoints_dir=ckdir)
        except Exception as err:  # noqa: BLE001 - reported by the assert below
            results[i] = err

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(2)]
    threads[0].start()
    time.sleep(0.03)  # the second one starts while the first one downloads
    threads[1].start()
    for t in threads:
        t.join()
    assert results == {0: ckdir / spec.basename, 1: ckdir / spec.basename}
    assert (ckdir / spec.basename).read_bytes() == payload
    assert len(opened) == 1  # the second used the first one's file
    sidecar = json.loads((ckdir / (spec.basename + ".sha256")).read_text())
    assert sidecar["sha256"] == hashlib.sha256(payload).hexdigest()
    assert sorted(p.name for p in ckdir.iterdir()) == [spec.basename, spec.basename + ".sha256"]


def test_a_bad_cached_copy_is_fetched_again_once_by_two_fetches_at_once(
    tmp_path, ckpt_bytes, monkeypatch, bad_copy_online
):
    """Two fetches finding the same bad copy in the HF cache each deleted it and fetched it again: the second one
    deleted the good copy the first one had just fetched (and returned), or failed on a file deleted under it. Now
    the second waits for the first and uses its copy."""
    cache, fake = bad_copy_online
    both_looked = threading.Barrier(2)

    def download(**kwargs):
        if kwargs["force_download"]:
            time.sleep(0.2)
        path = fake(**kwargs)
        if not kwargs["force_download"]:
            both_looked.wait(timeout=5)  # both have the bad copy's path
        return path

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    results = {}

    def fetch(i):
        try:
            results[i] = hub.resolve(NAME, checkpoints_dir=tmp_path / "empty", cache_dir=cache)
            results[i].read_bytes()
        except Exception as err:  # noqa: BLE001 - reported by the assert below
            results[i] = err

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isinstance(results[0], Path) and results[0] == results[1]
    assert results[0].read_bytes() == ckpt_bytes
    assert sorted(fake.calls) == [(False, False), (False, False), (False, True)]
    assert not results[0].with_name(results[0].name + ".lock").exists()


def test_a_checksum_sidecar_is_never_seen_half_written(tmp_path, monkeypatch):
    """The sidecar was written in place: a process checking the same file at that moment read an empty or half
    record (and hashed the multi-GB file again), and two writers wrote into one file."""
    monkeypatch.setattr(weight_checksums, "_HASHES", {})
    path = tmp_path / "w.pth"
    path.write_bytes(b"weights")
    weight_checksums.remember_sha256(path, "0" * 64)
    sidecar = weight_checksums.sidecar_path(path)
    seen, done = [], threading.Event()

    def read():
        while not done.is_set():
            seen.append(sidecar.read_text())

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the threads take turns often
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(300):
            weight_checksums.remember_sha256(path, "0" * 64)
    finally:
        done.set()
        reader.join()
        sys.setswitchinterval(interval)
    assert len(seen) > 10 and all(json.loads(text)["sha256"] == "0" * 64 for text in seen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pth", "w.pth.sha256"]


def test_a_read_only_folder_skips_the_sidecar_and_still_checks_the_file(tmp_path, monkeypatch):
    """On a read-only file system (a ``:ro`` mount of the checkpoints, a read-only HF cache) the sidecar cannot be
    written, and deleting the temp file that was never made raises EROFS, not ENOENT: that escaped, and every check
    of a file without a sidecar failed. The file is checked; no sidecar is written."""
    monkeypatch.setattr(weight_checksums, "_HASHES", {})
    path = tmp_path / "w.pth"
    path.write_bytes(b"weights")
    spec = weight_table.WeightSpec("x", None, "w.pth", hashlib.sha256(b"weights").hexdigest(), 7)
    real_open, real_unlink = open, Path.unlink

    def read_only_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wxa"):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, mode, *args, **kwargs)

    def read_only_unlink(self, missing_ok=False):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr("builtins.open", read_only_open)
    monkeypatch.setattr(Path, "unlink", read_only_unlink)
    weight_checksums.verify_file(path, spec)
    monkeypatch.setattr(Path, "unlink", real_unlink)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pth"]


def test_a_file_that_is_no_checkpoint_says_so(tmp_path):
    """An HTML error page or a Git LFS pointer saved under a checkpoint's name is no 'refused pickle object'
    (torch.load's error), and no unsafe load is suggested for it."""
    for head in (
        b"<!DOCTYPE html><html>Not Found</html>",
        b"version https://git-lfs.github.com/spec/v1\n",
    ):
        path = tmp_path / "sam_vit_b_01ec64.pth"
        path.write_bytes(head)
        with pytest.raises(
            WeightsError, match=r"is not a PyTorch checkpoint: it starts with"
        ) as err:
            weight_loading.load_checkpoint(path)
        assert "weights_only=False" not in str(err.value)


def test_truncated_checkpoint_is_a_weights_error(tmp_path, ckpt_bytes):
    path = tmp_path / "truncated.pth"
    path.write_bytes(ckpt_bytes[: len(ckpt_bytes) // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        weight_loading.load_checkpoint(path)
    path.write_bytes(b"")
    with pytest.raises(WeightsError):
        weight_loading.load_checkpoint(path)


@pytest.mark.parametrize(
    "name, url",
    [
        (
            "idol-ytvis19-r50",
            "https://huggingface.co/QHL067/VNext_ECCV/resolve/main/IDOL/YTVIS19_R50_502AP.pth",
        ),
        (
            "sam2.1_tiny",
            "https://huggingface.co/facebook/sam2.1-hiera-tiny/resolve/main/sam2.1_hiera_tiny.pt",
        ),
    ],
)
def test_a_truncated_file_without_a_published_size_says_briefly_where_to_download_it(
    tmp_path, ckpt_bytes, name, url
):
    """A truncated IDOL or SAM 2.1 file (no published size or checksum: only torch.load finds it cut) gave torch's
    paragraph on "an internal miniz error" and "download it again" without saying where; a SAM ViT file (whose size
    is published) says where. Each now reads as SAM ViT's message does; as does a file that is no checkpoint."""
    path = tmp_path / weight_table.WEIGHTS[name].basename
    path.write_bytes(ckpt_bytes[: len(ckpt_bytes) // 2])
    with pytest.raises(WeightsError) as err:
        weight_loading.load_checkpoint(path)
    message = str(err.value)
    assert message.startswith(
        f"{path} is not a good copy of {path.name} ({name}): it could not be read as a PyTorch checkpoint "
        "(RuntimeError: PytorchStreamReader failed reading zip archive"
    )
    assert message.endswith(
        f"). The file is truncated, corrupt or a different file. Delete it and download it again ({url})."
    )
    assert "miniz" not in message and len(message) < 500, message
    path.write_bytes(b"<!DOCTYPE html><html>Not found</html>")
    with pytest.raises(
        WeightsError, match=rf"it starts with .*Delete it and download it again \({url}\)\.$"
    ):
        weight_loading.load_checkpoint(path)


@pytest.mark.parametrize("error", weight_loading.CORRUPT_CHECKPOINT_ERRORS)
def test_load_and_peek_share_what_counts_as_a_corrupt_checkpoint(
    tmp_path, ckpt_bytes, monkeypatch, error
):
    """load_checkpoint and peek_checkpoint each listed torch.load's corrupt-file errors: one constant now."""
    path = tmp_path / "corrupt.pth"
    path.write_bytes(ckpt_bytes)

    def fail(*args, **kwargs):
        raise error("corrupt")

    monkeypatch.setattr(torch, "load", fail)
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        weight_loading.load_checkpoint(path)
    assert weight_loading.peek_checkpoint(path) is None


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", ["torch.save", "raw pickle"])
def test_malicious_pickle_never_runs(tmp_path, container):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    obj = {"weight": torch.zeros(2), "evil": Payload(marker)}
    if container == "torch.save":
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(WeightsError, match="nothing in the file was run"):
        weight_loading.load_checkpoint(path)
    assert not marker.exists()


def test_non_dict_checkpoint(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(WeightsError, match="expected a dict"):
        weight_loading.load_checkpoint(path)


def test_table_has_the_three_sam_files():
    assert {"sam_vit_b", "sam_vit_l", "sam_vit_h"} <= set(weight_table.WEIGHTS)
    h = weight_table.WEIGHTS["sam_vit_h"]
    assert (h.repo_id, h.filename, h.size_bytes) == (
        "ybelkada/segment-anything",
        "checkpoints/sam_vit_h_4b8939.pth",
        2_564_550_879,
    )
    sam = {k: s for k, s in weight_table.WEIGHTS.items() if k.startswith("sam_")}
    assert all(len(s.sha256) == 64 and s.name == k for k, s in sam.items())


def test_table_has_the_tracker_presets():
    names = {
        "idol-ytvis19-r50",
        "idol-ytvis21-r50",
        "idol-ovis-r50",
        "idol-coco-r50",
        "uvosam-davis-r50",
    }
    assert names <= set(weight_table.WEIGHTS)
    assert weight_table.WEIGHTS["idol-ytvis19-r50"].hub_url == (
        "https://huggingface.co/QHL067/VNext_ECCV/resolve/main/IDOL/YTVIS19_R50_502AP.pth"
    )
    assert weight_table.WEIGHTS["uvosam-davis-r50"].repo_id is None
    assert weight_table.WEIGHTS["uvosam-davis-r50"].url.endswith("/UVOSAM/davis.pth")


def test_unpinned_file_is_accepted_and_its_hash_logged(tmp_path, monkeypatch, caplog):
    ckdir = tmp_path / "ck"
    ckdir.mkdir()
    (ckdir / "davis.pth").write_bytes(b"tracker weights")
    with caplog.at_level("INFO", logger="uvosam.weight_checksums"):
        path = hub.resolve("uvosam-davis-r50", checkpoints_dir=ckdir)
    assert path == ckdir / "davis.pth"
    assert weight_checksums.file_sha256(path) in caplog.text


def test_an_unpinned_files_hash_is_logged_once_however_often_it_is_checked(
    tmp_path, monkeypatch, caplog
):
    """The app's start-up checks a weight file, then loads it (checked again): its sha256 line came twice. A copy
    at another path, or other bytes at that path, get a line of their own."""
    ckdir, other = tmp_path / "ck", tmp_path / "other"
    ckdir.mkdir(), other.mkdir()
    weights = (
        f"tracker weights of {tmp_path}".encode()
    )  # bytes of this test only: hashes no other test logged
    (ckdir / "davis.pth").write_bytes(weights)
    (other / "davis.pth").write_bytes(weights)
    with caplog.at_level("INFO", logger="uvosam.weight_checksums"):
        for _ in range(3):
            hub.resolve("uvosam-davis-r50", checkpoints_dir=ckdir)
        hub.resolve("uvosam-davis-r50", checkpoints_dir=other)
        (ckdir / "davis.pth").write_bytes(weights + b" changed")
        hub.resolve("uvosam-davis-r50", checkpoints_dir=ckdir)
    lines = [r.getMessage() for r in caplog.records if "no published checksum" in r.getMessage()]
    assert [line.split(" (")[0] for line in lines] == [
        str(ckdir / "davis.pth"),
        str(other / "davis.pth"),
        str(ckdir / "davis.pth"),
    ]


def test_davis_repo_env_var_points_resolve_at_the_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(weight_table.DAVIS_REPO_ENV, "someone/uvosam-weights:trackers/davis.pth")
    with pytest.raises(FileNotFoundError, match="someone/uvosam-weights: trackers/davis.pth"):
        hub.resolve("uvosam-davis-r50", checkpoints_dir=tmp_path, cache_dir=tmp_path / "hf")


def test_info_finds_the_davis_tracker_where_the_env_var_points(tmp_path, monkeypatch):
    """`uvosam info` lists the local weights as hub.resolve finds them, UVOSAM_DAVIS_REPO included."""
    from uvosam import environment

    monkeypatch.setenv(weight_table.DAVIS_REPO_ENV, "someone/uvosam-weights:trackers/davis.pth")
    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(tmp_path / "empty"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    cached = put_in_cache(
        tmp_path / "hf", weight_table.lookup("uvosam-davis-r50")[0], b"tracker weights"
    )
    assert environment.local_weights()["uvosam-davis-r50"] == cached


def test_network_failure_during_a_hub_download_falls_back_and_names_it(tmp_path, spec, ckpt_bytes,
                                                                        monkeypatch):  # fmt: skip
    """huggingface_hub does not retry a connection reset mid-file (httpx ReadError): the Hub is then
    'not available', the direct URL is tried, and a miss names the reason (not a raw httpx error)."""
    import huggingface_hub.file_download as download

    http = getattr(download, "httpx2", None) or getattr(download, "httpx", None)
    if http is None:
        pytest.skip("this huggingface_hub downloads with requests, whose errors are OSErrors")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def reset(**kwargs):
        raise http.ReadError("[Errno 104] Connection reset by peer")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", reset)
    ckdir = tmp_path / "checkpoints"
    with pytest.raises(FileNotFoundError, match=r"not available \(ReadError: \[Errno 104\]"):
        hub.resolve(NAME, checkpoints_dir=ckdir, cache_dir=tmp_path / "hf")
    source = tmp_path / "server" / spec.basename
    source.parent.mkdir()
    source.write_bytes(ckpt_bytes)
    monkeypatch.setitem(weight_table.WEIGHTS, NAME, dataclasses.replace(spec, url=source.as_uri()))
    assert (
        hub.resolve(NAME, checkpoints_dir=ckdir, cache_dir=tmp_path / "hf") == ckdir / spec.basename
    )


def test_checkpoints_folder_is_the_repos_in_a_checkout_else_a_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("UVOSAM_CHECKPOINTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert hub.default_checkpoints_dir() == hub._REPO_ROOT / "checkpoints"  # this checkout
    installed = tmp_path / "site-packages"  # a wheel: the package's parent has no pyproject.toml
    installed.mkdir()
    monkeypatch.setattr(hub, "_REPO_ROOT", installed)
    assert hub.default_checkpoints_dir() == tmp_path / "cache" / "uvosam" / "checkpoints"
    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(tmp_path / "mine"))
    assert hub.default_checkpoints_dir() == tmp_path / "mine"


def test_checkpoints_readme_lists_every_weight_file_with_the_table_values():
    """uvosam/weights.md's table has a row per ``weight_table.WEIGHTS`` entry: its file, its size and SHA-256 where the
    table has them and "not published" where it has none, and its Hub repo."""
    readme = weight_table.TABLE_DOC.read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().split()[0].strip("`"): line for line in readme.splitlines()
            if line.startswith("| `")}  # fmt: skip
    assert set(rows) == set(weight_table.WEIGHTS)
    for name, spec in weight_table.WEIGHTS.items():
        cells = [cell.strip() for cell in rows[name].split("|")[1:-1]]
        assert cells[1] == f"`{spec.basename}`", name
        assert cells[2] == (
            f"{spec.size_bytes:,}" if spec.size_bytes is not None else "not published"
        ), name
        assert cells[3].startswith(
            f"`{spec.sha256}`" if spec.sha256 is not None else "not published"
        ), name
        if spec.repo_id is not None:
            assert f"HF `{spec.repo_id}` → `{spec.filename}`" in cells[4], name
        if spec.url is not None:
            assert f"<{spec.url}>" in cells[4] or "release's URL" in cells[4], name


def test_an_unreachable_hub_is_asked_once_then_the_cache_only(tmp_path, spec, monkeypatch, caplog):
    """Offline without HF_HUB_OFFLINE=1 each missing file cost ~25 s of huggingface_hub's retries: after a failed
    connection the next file is looked for in the cache only, and a warning says once to set HF_HUB_OFFLINE=1."""
    import huggingface_hub.file_download as download

    http = getattr(download, "httpx2", None) or getattr(download, "httpx", None)
    if http is None:
        pytest.skip("this huggingface_hub downloads with requests")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    other = dataclasses.replace(weight_table.WEIGHTS["sam_vit_l"], url=None)
    monkeypatch.setitem(weight_table.WEIGHTS, "sam_vit_l", other)
    asked, failure = [], {"error": http.ReadError("[Errno 104] Connection reset by peer")}

    def hf_hub_download(*, repo_id, filename, cache_dir, local_files_only, force_download):
        asked.append((filename, local_files_only))
        try:
            raise failure["error"]
        except Exception as err:  # as huggingface_hub raises it once its retries are spent
            raise LocalEntryNotFoundError(
                "An error happened while trying to locate the file"
            ) from err

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    folders = {"checkpoints_dir": tmp_path / "ck", "cache_dir": tmp_path / "hf"}
    with pytest.raises(FileNotFoundError):  # a reset mid-file is no sign of an unreachable Hub
        hub.resolve(NAME, **folders)
    failure["error"] = http.ConnectError("[Errno -2] Name or service not known")
    for name in (NAME, "sam_vit_l", NAME):
        with pytest.raises(FileNotFoundError) as err:
            hub.resolve(name, **folders)
    assert asked == [(spec.filename, False), (spec.filename, False), (other.filename, True),
                     (spec.filename, True)]  # fmt: skip
    assert "the Hub was not asked: it cannot be reached (ConnectError: [Errno -2]" in str(err.value)
    said = [r.getMessage() for r in caplog.records if "cannot be reached" in r.getMessage()]
    assert len(said) == 1 and "Set HF_HUB_OFFLINE=1" in said[0]
    monkeypatch.setattr(hub, "HUB_RETRY_AFTER_S", 0.0)  # later, the Hub is asked again
    with pytest.raises(FileNotFoundError):
        hub.resolve(NAME, **folders)
    assert asked[-1] == (spec.filename, False)


def test_a_hub_whose_name_does_not_resolve_is_not_asked(tmp_path, spec, monkeypatch, caplog):
    """Offline, huggingface_hub retried the name lookup of huggingface.co for ~23 s before it gave up on the first
    file: a failed lookup now sends the file to the cache only at once, says why, and warns once; the name is looked
    up again after HUB_NAME_RETRY_AFTER_S (not the 10 minutes of a failed connection: a DNS blip must not cut a
    server off the Hub)."""
    from urllib.parse import urlsplit

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for proxy in (
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("NO_PROXY", "localhost")  # a bypass list alone is no proxy
    host = urlsplit(huggingface_hub.constants.ENDPOINT).hostname
    looked_up, asked, dns = [], [], {"up": False}

    def lookup(name):
        looked_up.append(name)
        return (
            None
            if dns["up"]
            else f"its host name {name} does not resolve: Name or service not known"
        )

    def hf_hub_download(*, repo_id, filename, cache_dir, local_files_only, force_download):
        asked.append(local_files_only)
        raise LocalEntryNotFoundError("not in the cache")

    monkeypatch.setattr(hub, "_host_lookup_failure", lookup)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    folders = {"checkpoints_dir": tmp_path / "ck", "cache_dir": tmp_path / "hf"}
    for _ in range(2):
        with pytest.raises(FileNotFoundError) as err:
            hub.resolve(NAME, **folders)
    assert asked == [True, True]  # the cache only, never the Hub
    assert looked_up == [host]  # the second file: remembered, not looked up again
    assert (
        "Hugging Face cache " in str(err.value)
        and f"the Hub was not asked: it cannot be reached (its host name {host} does not resolve"
        in str(err.value)
    )
    said = [r.getMessage() for r in caplog.records if "cannot be reached" in r.getMessage()]
    assert (
        len(said) == 1
        and "cache only for the next 30 s" in said[0]
        and "HF_HUB_OFFLINE=1" in said[0]
    )
    monkeypatch.setattr(
        hub, "HUB_NAME_RETRY_AFTER_S", 0.0
    )  # later, the DNS is back: the Hub is asked
    dns["up"] = True
    with pytest.raises(FileNotFoundError):
        hub.resolve(NAME, **folders)
    assert looked_up == [host, host] and asked[-1] is False


def test_the_name_lookup_is_left_to_a_proxy(tmp_path, spec, monkeypatch):
    """Behind a proxy the local machine may resolve no names at all: the proxy does, so the Hub is asked."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setattr(hub, "_host_lookup_failure", lambda host: "does not resolve")
    asked = []

    def hf_hub_download(*, repo_id, filename, cache_dir, local_files_only, force_download):
        asked.append(local_files_only)
        raise LocalEntryNotFoundError("not found")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    with pytest.raises(FileNotFoundError):
        hub.resolve(NAME, checkpoints_dir=tmp_path / "ck", cache_dir=tmp_path / "hf")
    assert asked == [False]


def test_the_host_lookup_tells_a_name_that_resolves_from_one_that_does_not():
    assert REAL_HOST_LOOKUP_FAILURE("localhost") is None
    reason = REAL_HOST_LOOKUP_FAILURE("uvosam-test.invalid")  # RFC 6761: never resolves
    assert reason is not None and reason.startswith(
        "its host name uvosam-test.invalid does not resolve: "
    )


def test_a_file_of_the_users_own_that_is_no_checkpoint_is_not_told_to_download_it_again(tmp_path):
    """``my_model.pth`` holding a web page was told "Delete it and download it again": it is the user's own file,
    which no download gives; check it is the one meant."""
    path = tmp_path / "my_model.pth"
    path.write_bytes(b"<!DOCTYPE html><html>Not found</html>")
    with pytest.raises(WeightsError) as err:
        weight_loading.load_checkpoint(path)
    assert str(err.value).endswith(
        f"Check that {path} is the checkpoint you meant (the released files: {weight_table.TABLE_DOC})."
    )
    assert "download" not in str(err.value)
