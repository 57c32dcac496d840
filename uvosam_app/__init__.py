"""The web demo's parts (``app.py`` at the repository root is the Space's entry point and wires them).

One concept per module:

- ``gpu``: the ``spaces`` import (imported first, before torch), the device, the ZeroGPU function;
- ``settings``: ``AppSettings`` from the environment; ``models``: presets, mask models, the shared loader;
  ``start_models``: the models loaded at start, and what failed (logged for the host);
- ``work``: session folders, the job's worker thread, a job as a handler holds it; ``progress``: a job's updates as
  UI updates; ``process_folders``: the process's own work folder, and those earlier processes left;
- ``uploads``: zips of frames; ``zip_images``: an uploaded zip of images, bounded and unpacked safely;
  ``zip_names``: the names a zip's files are written under, and which would be one file; ``links``: a downloaded
  link, shown in the player or kept as downloaded (and what stands in for the player of a file browsers cannot play);
  ``file_links``: a file input that an API client gives as a link, fetched with Load's limits;
- ``component_classes``: the app's subclasses of Gradio's components (its checks, in every session's copy too);
  ``file_input``: the app's file boxes (Gradio's, less the empty temp file each read left); ``checked_inputs``:
  the settings' components the app checks itself (sliders, output side, tracks to keep, the fixed choices);
- ``served``: what Gradio keeps serving of the outputs (the files shown in its cache, the streamed video's chunks)
  and how it goes;
- ``probes``: what the input files are (``probe``), each probed once;
- ``text``: everything the page says but its footer; ``footer``: the device, models, weight files and versions;
  ``results``: what a finished run shows from its zip; ``scoring``: Score, its J&F against uploaded ground truth;
- ``errors``: what a user is told when a request fails, and how the page's toast shows it (as written);
  ``refusals``: the refusals met before a handler runs (a full queue, a file value not uploaded), each logged;
  ``server_log``: the server log's set-up and the start and end lines of each job;
- ``handlers``: the event handlers (``App``); ``link_handlers``: Load (``App.links``); ``rerender_handlers``:
  Re-render (``App.rerenders``); ``result_views``: the timeline, merge hints and Score of a finished run
  (``App.views``); ``keep_parts``: what *Tracks to keep* offers after a re-render that split tracks;
  ``rerender_names``: the names a re-render's files are served under;
  ``describe``: what an input is and what Run will cover, before Run;
  ``checks``: what a request is checked against before any work; ``queue_turns``: one waiting run a session, so
  that one API client cannot fill the queue; ``layout``: the components;
  ``page_scripts``: the page's scripts (the live region a screen reader reads).

Only ``handlers``, ``link_handlers``, ``rerender_handlers``, ``result_views``, ``file_links``,
``component_classes``, ``file_input``, ``checked_inputs``, ``served``, ``checks``, ``queue_turns``, ``layout``,
``errors`` and ``refusals`` import gradio.
``uvosam`` imports nothing from here.
"""
