"""Regenerate the stored notebooks, outputs included, from their ``.py`` twins.

    python demos/notebooks/build.py              # every notebook, full mode
    python demos/notebooks/build.py 03 05        # only those whose name contains 03 or 05
    python demos/notebooks/build.py --quick      # NPAE_QUICK=1 (seconds each; rougher figures)

Each ``demos/notebooks/NN_*.py`` (jupytext percent format, the source reviews read) is read,
executed top to bottom in a fresh ``python3`` kernel with this checkout's ``npae`` first on the path,
and written to its ``.ipynb`` with the outputs, so the figures render where the code is hosted
(GitHub, nbviewer) without running anything. What is stored is kept small and stable: PNG
figures only, re-encoded with a 256-colour palette (a third of the bytes; the plots read the same),
no widget state (the kernel runs as if ipywidgets were absent, so each ``fit`` leaves its one
summary line rather than a live bar), a cell's prints as one block, no per-cell timestamps,
execution counts 1, 2, 3, ... and no absolute path of this machine (the build refuses to write a
notebook whose outputs name one). What changes between two builds is the time in each ``fit``'s
summary line (and the last digits of a few gradient-check errors near 1e-12).

Needs jupytext, nbclient, nbformat and ipykernel (``pip install -e ".[test]"`` or ``".[notebooks]"``).
``tests/test_notebooks.py`` checks that each stored notebook holds the cells of its ``.py``.
"""
import argparse
import os
import sys
import time
from pathlib import Path

NB_DIR = Path(__file__).resolve().parent
ROOT = NB_DIR.parents[1]
#: Seconds one cell may take before the build gives up on the notebook.
CELL_TIMEOUT = 1200

#: Run first in the kernel, then removed: ipywidgets is made unimportable, so ``fit`` prints its
#: summary line instead of a widget that a stored notebook cannot show; a warning prints as
#: ``CollapseWarning: message`` without the kernel's temporary file name (/tmp/ipykernel_<pid>/...),
#: which would change on every build.
SETUP = """
import sys as _sys, warnings as _warnings
_sys.modules["ipywidgets"] = None
_warnings.formatwarning = lambda message, category, *args, **kwargs: f"{category.__name__}: {message}\\n"
del _sys, _warnings
"""


def small_png(data):
    """A figure's base64 PNG re-encoded with a 256-colour palette (no dithering): the plots have few
    colours, so it reads the same at a third of the bytes. Pillow comes with matplotlib."""
    import base64
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(data)))
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(white, image)
    palette = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT,
                                            dither=Image.Dither.NONE)
    out = io.BytesIO()
    palette.save(out, format="PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode("ascii")


def merged_streams(outputs):
    """Consecutive stdout (or stderr) outputs as one: the kernel splits a cell's prints by timing,
    which would change the stored file from one build to the next; a notebook shows them alike."""
    merged = []
    for out in outputs:
        if (out.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                and merged[-1].get("name") == out.get("name")):
            merged[-1]["text"] += out["text"]
        else:
            merged.append(out)
    return merged


def sources(patterns=()):
    """The ``.py`` twins to build: every ``NN_*.py`` here, or those whose name contains a pattern."""
    scripts = sorted(p for p in NB_DIR.glob("[0-9][0-9]_*.py"))
    if patterns:
        scripts = [p for p in scripts if any(pat in p.stem for pat in patterns)]
    return scripts


def build(script, quick=False):
    """Execute ``script`` (a jupytext ``.py``) and write its ``.ipynb`` with outputs; returns
    (path, seconds)."""
    import jupytext
    import nbformat
    from jupytext.combine import combine_inputs_with_outputs
    from nbclient import NotebookClient

    target = script.with_suffix(".ipynb")
    nb = jupytext.read(script)
    if target.exists():  # keep the stored cell ids and notebook metadata: smaller diffs
        stored = nbformat.read(str(target), as_version=4)
        combine_inputs_with_outputs(nb, stored, fmt="ipynb")
        ids = {(c.cell_type, c.source): c.get("id") for c in stored.cells}
        for i, cell in enumerate(nb.cells):
            same = ids.get((cell.cell_type, cell.source))
            if same is None and i < len(stored.cells) and stored.cells[i].cell_type == cell.cell_type:
                same = stored.cells[i].get("id")  # an edited cell keeps the id of its place
            if same is not None:
                cell["id"] = same
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells.insert(0, nbformat.v4.new_code_cell(SETUP))

    env = dict(os.environ, NPAE_QUICK="1" if quick else "0",
               PYTHONPATH=os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH")] if p))
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, startup_timeout=120, kernel_name="python3",
                            record_timing=False, store_widget_state=False,
                            resources={"metadata": {"path": str(NB_DIR)}})
    started = time.perf_counter()
    client.execute(env=env)  # raises CellExecutionError, naming the cell, if one fails
    seconds = time.perf_counter() - started

    nb.cells.pop(0)
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        cell.outputs = merged_streams(cell.outputs)
        count += 1
        cell.execution_count = count
        for out in cell.outputs:
            if "execution_count" in out:
                out["execution_count"] = count
            if "image/png" in out.get("data", {}):
                out["data"]["image/png"] = small_png(out["data"]["image/png"])
    nb.metadata.pop("widgets", None)

    text = nbformat.writes(nb)
    if str(ROOT) in text.replace(str(NB_DIR), ""):  # links in the sources are relative
        raise RuntimeError(f"{script.name}: an output names {ROOT}; print relative paths")
    if str(NB_DIR) in text or "/ipykernel_" in text:
        raise RuntimeError(f"{script.name}: an output names a path of this machine; print relative paths")
    jupytext.write(nb, target, fmt="ipynb")
    return target, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="build only notebooks whose name contains one of these")
    parser.add_argument("--quick", action="store_true", help="run with NPAE_QUICK=1 (fewer epochs)")
    args = parser.parse_args(argv)
    scripts = sources(args.names)
    if not scripts:
        parser.error(f"no notebook source matches {args.names}")
    for script in scripts:
        target, seconds = build(script, quick=args.quick)
        print(f"{target.relative_to(ROOT)}: {seconds:.0f} s, {target.stat().st_size:,} bytes", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
