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


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"UVOSAM_MAX_FRAMES": "abc"}, "UVOSAM_MAX_FRAMES must be a positive int; got 'abc'. "),
        ({"UVOSAM_TRACKER": "foo"}, "AppSettings.default_preset (UVOSAM_TRACKER) must be one of "),
        (
            {"UVOSAM_WORK_DIR": "/proc/nope"},
            "UVOSAM_WORK_DIR=/proc/nope cannot be used: the folder cannot be",
        ),
    ],
)
def test_python_app_py_with_a_bad_setting_exits_with_one_line(env, reason, monkeypatch, capsys):
    """It exited with a 15-line traceback whose last line said why, before any model loaded; now that line alone
    (a Space's log shows it), exit status 2."""
    import app as app_module

    loads = []
    monkeypatch.setattr(app_module, "make_loader", lambda settings: loads.append(settings))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as ended:
        app_module.main()
    assert ended.value.code == 2 and not loads
    err = capsys.readouterr().err
    assert err.startswith(f"The app did not start: {reason}") and err.count("\n") == 1
    assert "Traceback" not in err


def test_a_work_folder_that_cannot_be_used_is_refused_when_the_settings_are_read(tmp_path):
    """UVOSAM_WORK_DIR=/proc/nope failed with a bare FileNotFoundError from the first session's folder, after the
    models had loaded."""
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    cases = {
        "/proc/nope": r"the folder cannot be made \(No such file or directory\)",
        str(a_file / "work"): r"the folder cannot be made \(Not a directory\)",
        str(a_file): "it is a file, not a folder",
        "/proc/self": r"nothing can be written in it \(",
    }
    for raw, why in cases.items():
        with pytest.raises(
            ValueError, match=rf"^UVOSAM_WORK_DIR={raw} cannot be used: {why}.*\. Set it to a"
        ):
            AppSettings.from_env({"UVOSAM_WORK_DIR": raw})
    made = AppSettings.from_env({"UVOSAM_WORK_DIR": str(tmp_path / "new" / "work")}).work_root
    assert made == tmp_path / "new" / "work" and made.is_dir() and not any(made.iterdir())
