"""Component classes of the app's own that Gradio takes for its own (``gradio_like``): where the app overrides a
method of a Gradio component (a check of an input: ``checked_inputs``; how a file given as a link is fetched:
``file_links``), the override is a method of a subclass, so that it holds in every session.

Why a class, not a method set on the instance: Gradio 6.31 gives a session its own copy of a component once an
event updates the component's props (``gr.update(...)``, a component returned, and ``gr.skip()`` too, which Run and
Re-render send on every step and every refusal), built from the class: ``block.__class__(**constructor_args)``
(``Blocks.postprocess_data``); that session's later events read and check their inputs with the copy. A method set
on the instance was lost there: after any /segment, a link given to /score went to Gradio's own download (no size
limit, no deadline, taken with ``UVOSAM_URL_INPUT=0``) and the keep list's check was Gradio's again ("Value: 1 ...
is not in the list of choices: []"). A method of the class is the copy's too.

Why it looks like Gradio's class: the page picks a component's Svelte code by its class's name
(``Block.get_block_name``), the config's class id hashes the name and the module's file
(``get_component_class_id``), and the API info comes from the component. The subclass has its base's
``__name__``, ``__qualname__``, ``__module__`` and docstring, so the config, the page and ``/gradio_api/info`` are
those of the base (``tests/test_app_session_copies.py`` compares them). Gradio's look-up of a class by its name
(``utils.component_or_layout_class``) still answers Gradio's own: it takes the names of ``gradio.components`` last.

Why not a ``class`` statement: Gradio's metaclass (``ComponentMeta.__new__``) writes a ``.pyi`` stub beside the
module of every component class defined (an import-time side effect; for a class that names Gradio's module as its
own, into Gradio's installed files) and raises when it cannot find the class's source in that module.
``gradio_like`` creates the class with ``abc.ABCMeta.__new__`` under Gradio's metaclass, skipping that step only:
the rest of ``ComponentMeta.__new__`` wraps a new ``__init__`` (``updateable``) and makes the listeners of a new
``EVENTS``, which the subclass has neither of: it inherits its base's, made when Gradio defined it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

C = TypeVar("C", bound=gr.components.Component)


def gradio_like(base: type[C], **methods: Callable[..., Any]) -> type[C]:
    """A subclass of the component class ``base`` with ``methods`` (functions of ``self``; call the base's as
    ``base.name(self, ...)``: no ``super()`` outside a class body), named as ``base`` (module docstring)."""
    namespace = {
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        "__doc__": base.__doc__,
        **methods,
    }
    return abc.ABCMeta.__new__(type(base), base.__name__, (base,), namespace)
