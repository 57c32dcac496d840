"""The settings' components whose values the app checks itself, not Gradio: the sliders (``slider``: Gradio's range
check named no setting), the output side (``output_side``: its choices are strings, an int is taken too) and the
tracks to keep (``keep_list``: before a run it has no choices, and Gradio refused every id). Each is a subclass made
by ``component_classes.gradio_like``, whose check is a method of the class, so a session's copy keeps it; the
handlers refuse what is out of range (``checks.check_ranges``). The settings of fixed choices (tracker, mask model,
style) go to the handlers as sent, which refuse what they do not offer (``_as_sent``). ``layout`` places them.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from uvosam_app.checks import SliderRange, not_one_of
from uvosam_app.component_classes import gradio_like

# (label, value): string values, as Gradio's API info lists a Dropdown's choices (type "string"); the int form of
# each is taken too (``output_side``)
OUTPUT_SIDES = [
    ("same as input", "0"),
    ("1280 px", "1280"),
    ("854 px", "854"),
    ("640 px", "640"),
    ("480 px", "480"),
]


def _unchecked(self: gr.Slider, payload: float | None) -> float | None:
    """A slider's value as sent, rounded to its step's precision: the handlers check the range."""
    return None if payload is None else gr.Number.round_to_precision(payload, self.precision)


# a method of a class, not of the instance: a session's copy of the component keeps it (``component_classes``)
UncheckedSlider = gradio_like(gr.Slider, preprocess=_unchecked)


def slider(bounds: SliderRange, **kwargs: Any) -> gr.Slider | gr.Number:
    """A setting's slider whose range the handlers check, not Gradio: Gradio's ``Slider.preprocess`` refused a
    number out of range (typed in the box before it lost focus, or sent over the API) with "Value 0 is less than
    minimum value 1.", naming no setting, an "Error" badge on the description and a traceback in the server log.
    Run refuses such a value naming the setting and its range, or caps an upper bound (``checks.check_ranges``);
    the description shows what the box will hold (``checks.page_values``). The slider is an ``UncheckedSlider``,
    whose ``preprocess`` only rounds.

    A range of one value (``UVOSAM_MAX_FRAMES=1``) is a box showing it that the page cannot change (Gradio refuses
    a slider of one value, "Slider minimum must be less than maximum.", and the app did not start); an API client
    that asks for more gets it capped (``checks.check_ranges``)."""
    if bounds.minimum >= bounds.maximum:
        step = kwargs.pop("step", 1)
        kwargs.pop("value", None)
        return gr.Number(
            bounds.maximum,
            precision=0 if float(step).is_integer() else None,
            interactive=False,
            info=f"This app takes {bounds.maximum:g} only (its host's limit).",
            **kwargs,
        )
    return UncheckedSlider(bounds.minimum, bounds.maximum, **kwargs)


def _either_form(self: gr.Dropdown, payload: str | int | None) -> str:
    """The output side's value as its string (an int taken too), or a refusal naming the setting and its choices."""
    values = [value for _, value in self.choices]
    if payload is None or isinstance(payload, bool) or str(payload) not in values:
        raise not_one_of(
            "Output video: longest side", "output_side", values, payload, " (0: the input's size)"
        )
    return str(payload)


SideDropdown = gradio_like(gr.Dropdown, preprocess=_either_form)  # (as ``UncheckedSlider``)


def output_side() -> gr.Dropdown:
    """The output video's longest side. Gradio's API info (and the "Use via API" page's sample) gives a Dropdown's
    choices as strings, whatever their type: with int values the sample's ``output_side="854"`` was refused ("Value:
    854 is not in the list of choices"). The values are strings, and an API client's int (``output_side=854``, as
    the app took before) is taken as its string; anything else is refused naming the setting and its choices, None
    too (the page always sends one of them: the dropdown has a value and takes no other): a ``SideDropdown``."""
    return SideDropdown(OUTPUT_SIDES, value="854", label="Output video: longest side")


def _track_ids(self: gr.CheckboxGroup, payload: list[int | str | float] | None) -> list[int]:
    """The ids sent, as ints; refused naming the setting: anything that is no track id, and once a run set the
    choices (the session's copy: ``component_classes``), an id that is not one of that run's (or, after the page's
    Re-render with a split, of the parts it offers: ``App.rerenders.keep_offered``)."""
    run_ids = [value for _, value in self.choices]
    ids = []
    for value in payload or []:
        if isinstance(value, bool) or not str(value).strip().isdecimal():
            raise gr.Error(
                f"Tracks to keep (keep over the API) takes the track ids of the last run, e.g. [1, 3]; got "
                f"{value!r}.",
                print_exception=False,
            )
        track_id = int(str(value).strip())
        if run_ids and track_id not in run_ids:
            raise gr.Error(
                f"Tracks to keep (keep over the API) takes the track ids of the last run "
                f"({', '.join(map(str, run_ids))}); got {value!r}.",
                print_exception=False,
            )
        ids.append(track_id)
    return ids


KeepList = gradio_like(gr.CheckboxGroup, preprocess=_track_ids)  # (as ``UncheckedSlider``)


def _as_sent(self: gr.Radio | gr.Dropdown, payload: Any) -> Any:
    """A setting of fixed choices' value as sent: the handlers refuse one that is none of them, naming the setting
    and what this app offers (``checks.check_models``, ``checks.check_style``). Gradio's own check came first and
    said "Value: 'vit_x' (type: <class 'str'>) is not in the list of choices: [...]", naming no setting, with a
    traceback in the server log, and hid the handlers' notes (on ZeroGPU: the models loaded at start; SAM 2.1
    without its package)."""
    return payload


# (as ``UncheckedSlider``): the tracker preset, the mask model and the style
UncheckedDropdown = gradio_like(gr.Dropdown, preprocess=_as_sent)
UncheckedRadio = gradio_like(gr.Radio, preprocess=_as_sent)


def keep_list() -> gr.CheckboxGroup:
    """The tracks to keep, whose choices each run sets (a ``KeepList``). While it has none (before a session's
    first run; a run clears them as it starts: during a run, after a stopped or failed one), Gradio's
    ``CheckboxGroup.preprocess`` refused any id over the API with "Value: 1 (type: <class 'int'>) is not in the list
    of choices: []", so a ``/rerender`` call said nothing of the missing run: here the ids go to the handler, which
    says to Run first. Anything that is no track id is refused naming the setting, and so is an id that is not one
    of the last run's: the session's copy of the component, which a run's update of the choices gives it, holds
    that run's ids."""
    return KeepList([], label="Tracks to keep", elem_id="keep")
