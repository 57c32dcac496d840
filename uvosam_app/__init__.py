"""The web demo's parts (``app.py`` at the repository root is the Space's entry point and wires them).

Each module holds one concept: ``gpu`` (the ``spaces`` import, device, ZeroGPU function: imported first, before
torch), ``settings`` (``AppSettings`` from the environment), ``models`` (presets, mask models, the shared loader),
``work`` (session folders, the job's worker thread), ``uploads`` (zips of frames), ``text`` (everything the page
says), ``results`` (what a finished run shows from its zip), ``errors`` (what a user is told when a request fails),
``progress`` (a job's updates as UI updates), ``handlers`` (the event handlers), ``layout`` (the components).
Only ``handlers``, ``layout``, ``progress`` and ``errors`` import gradio. Nothing here is imported by ``uvosam``.
"""
