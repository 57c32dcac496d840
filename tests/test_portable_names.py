"""Names that Windows refuses (its device names, in any case, with any extension) get a ``_`` from every cleaner of
file names, on every system: a result made on Linux is copied to Windows as it is."""

import pytest

from uvosam.portable_names import portable_characters, portable_name, safe_name
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
