"""The page's own scripts, run in the browser (no request): the live region that tells a screen reader of a job's
start and end, and what it says. Nothing here imports gradio.
"""

# The live region that tells a screen reader of a job's start and end (the status line, a disabled textbox, is
# read by no screen reader as it changes): the container of ``Outputs.announce`` gets its role once the page is
# built (Gradio keeps no such attribute of a component), its text changes inside it (``ANNOUNCE_JS``).
LIVE_REGION_JS = """() => {
  const mark = () => {
    const region = document.getElementById("announce");
    if (!region) return false;
    region.setAttribute("role", "status");
    region.setAttribute("aria-live", "polite");
    region.setAttribute("aria-atomic", "true");
    return true;
  };
  if (!mark()) {
    const watch = new MutationObserver(() => mark() && watch.disconnect());
    watch.observe(document.body, { childList: true, subtree: true });
  }
}"""
# In the browser, on each change of the status line (no request): "Run started" / "Re-render started" once a job's
# first line replaces an earlier end (or none), the line itself once it ends ("done: ...", "failed: ...",
# "stopped: ..."), else the text stays (no word per frame). Markdown's marks are escaped: the line shows as written.
ANNOUNCE_JS = r"""(status, said) => {
  const line = status || "";
  const ended = (text) => /^(done|failed|stopped):/.test(text || "");
  const shown = (text) => text.replace(/[!-\/:-@\[-`{-~]/g, "\\$&");
  if (ended(line)) return shown(line);
  if (line && (!said || ended(said.replace(/\\(.)/g, "$1")))) {
    return line.startsWith("re-rendering") ? "Re-render started" : "Run started";
  }
  return said;
}"""
