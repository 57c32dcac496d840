"""Names that Windows refuses (its device names, in any case, with any extension) get a ``_`` from every cleaner of
file names, on every system: a result made on Linux is copied to Windows as it is."""

import unicodedata

import pytest

from uvosam.portable_names import (
    is_safe_name,
    portable_characters,
    portable_name,
    recorded_name,
    safe_name,
)
from uvosam.remote_files import safe_file_name


@pytest.mark.parametrize(
    ("name", "portable"),
    [
        ("CON", "CON_"),
        ("con.mp4", "con_.mp4"),
        ("Nul.tar.gz", "Nul_.tar.gz"),
        ("aux", "aux_"),
        ("PRN", "PRN_"),
        ("COM1.png", "COM1_.png"),
        ("lpt9", "lpt9_"),
        ("COM\u00b9", "COM\u00b9_"),
        ("CON .mp4", "CON _.mp4"),  # Windows ignores the space
        ("CONSOLE.mp4", "CONSOLE.mp4"),
        ("COM10", "COM10"),
        ("my_con.mp4", "my_con.mp4"),
        (".con", ".con"),
    ],
)
def test_a_device_name_of_windows_gets_an_underscore(name, portable):
    assert portable_name(name) == portable


def test_the_cleaners_of_video_and_download_names_leave_no_device_name():
    """``CON`` as a video name made ``export/davis/CON/``, a folder Windows cannot make; a download of ``nul.mp4``
    a file it cannot write."""
    assert (
        safe_name("CON") == "CON_"
        and safe_name("con.v2") == "con_.v2"
        and safe_name("aux!") == "aux_"
    )
    assert safe_name("concert") == "concert" and safe_name("c" * 200) == "c" * 80
    assert (
        safe_file_name("nul.mp4") == "nul_.mp4"
        and safe_file_name("COM1", "video/mp4") == "COM1_.mp4"
    )
    assert safe_file_name("lpt1.html") == "lpt1_html"  # no device name: its dot is gone
    assert safe_file_name("prn.final.MKV") == "prn_.final.MKV"


def test_the_characters_windows_refuses_in_a_name_become_underscores():
    assert portable_characters('12:00:01 <a|b>?*"x\x00\t.png') == "12_00_01 _a_b____x__.png"
    assert portable_characters("動画 é-_.png") == "動画 é-_.png"


def test_a_cut_name_ends_in_no_dot_and_its_cut_counts_no_stripped_character():
    """The name was stripped of ``._`` before it was cut to 80 characters, so a cut name could end in ``.``
    (Windows drops it: the files' names changed on copy; the docs say it is stripped)."""
    assert safe_name("a" * 79 + ".b") == "a" * 79
    assert safe_name("_." * 10 + "c" * 200) == "c" * 80
    assert safe_name("b" * 78 + "._x") == "b" * 78
    assert safe_name("con." + "x" * 200) == "con_." + "x" * 76  # the device name's _ comes last


def test_a_name_from_macos_keeps_its_accented_letters():
    """macOS gives file names in Unicode's NFD form ("u" and a combining diaeresis): the mark, no letter, became
    ``_`` ("bu_nny"), where ``remote_files.safe_file_name`` (NFC) kept "bünny"."""
    nfd = unicodedata.normalize("NFD", "bünny.mp4")
    assert nfd != "bünny.mp4"
    assert safe_name(nfd) == "bünny.mp4" == safe_name("bünny.mp4")


def test_a_recorded_name_is_kept_if_safe_name_made_it_in_this_release_or_an_earlier_one():
    """A re-render of a run named ``con`` (made before ``CON_``) named its files ``con_`` and left the run's ``con_*``
    files beside them; a name that is no such name (a path, a hidden file) is still cleaned."""
    for name in ("con", "clip", "bünny", "CON_", "a" * 80 + ".", "con_." + "x" * 76):
        assert is_safe_name(name) and recorded_name(name) == name, name
    for name in ("../x", "a/b", ".hidden", "_x", "", "a" * 82, "a b", None, 3):
        assert not is_safe_name(name), name
    assert recorded_name("../x") == "x" and recorded_name(".hidden") == "hidden"
