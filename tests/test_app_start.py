"""The app as a Space host meets it: its settings read from the environment (and refused), its start-up (the models
loaded at start, the banner, the page built from the settings) and its work folders across restarts. Fast: no
server, but one ``python app.py`` stopped with SIGTERM."""

from __future__ import annotations

import pytest

pytest.importorskip("gradio")

from uvosam_app.settings import AppSettings


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("UVOSAM_MAX_SECONDS", "nan"),
        ("UVOSAM_MAX_SECONDS", "NaN"),
        ("UVOSAM_MAX_SECONDS", "inf"),
        ("UVOSAM_MAX_SECONDS", "-inf"),
        ("UVOSAM_MAX_FRAMES", "abc"),
        ("UVOSAM_MAX_SIDE", "0"),
    ],
)
def test_a_limit_that_is_no_number_is_refused_naming_its_variable(name, raw):
    """nan passed the ``<= 0`` check and then disabled the duration limit (every comparison with nan is False)."""
    with pytest.raises(
        ValueError, match=rf"^{name} must be a .*positive \w+; got '{raw}'\. Unset it"
    ):
        AppSettings.from_env({name: raw})


def test_an_unknown_tracker_is_refused_naming_its_variable():
    with pytest.raises(ValueError, match=r"\(UVOSAM_TRACKER\) must be one of \('idol-ytvis19-r50'"):
        AppSettings.from_env({"UVOSAM_TRACKER": "foo"})
