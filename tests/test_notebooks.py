"""The lecture notebooks in demos/notebooks/ run headless in quick mode and keep their conventions.

Every ``demos/notebooks/*.ipynb`` (the folder is globbed: a notebook added later is run too) is
executed with nbclient in a fresh kernel, ``NPAE_QUICK=1``, a per-cell timeout, RuntimeWarnings as
errors (as in the rest of the suite) and the ``npae`` of this checkout. Then, per notebook:

* every cell ran without error;
* every cell tagged ``figure`` (cell metadata ``tags``; ``# %% tags=["figure"]`` in the paired
  ``.py``) displayed an ``image/png``, and no untagged cell did;
* every training run (each ``fit``: counted by wrapping ``npae.training.loop.fit_loop`` in the kernel)
  left exactly one summary line (``VAE: 40 epochs in 1.3 s | loss ...``) in its own cell, and no
  progress-bar debris (carriage returns);

and, without running anything:

* the stored notebooks carry their outputs (``python demos/notebooks/build.py`` executes each from
  its ``.py`` and writes them): every code cell ran, in order, without error; every ``figure`` cell
  stores a PNG; no widget state, per-cell timestamps or absolute paths of the machine that built it;
* every link to ``docs/derivations/<page>.md#<tag>`` points at a heading of that page, and every
  relative link at a file that exists;
* each notebook has its ``.py`` twin (jupytext percent format, the source for review and for the
  build) and holds exactly its cells: same order, kinds, sources and tags, so a notebook edited
  without its twin (or the reverse) fails.

nbclient, ipykernel and nbformat (and jupytext for the pairing test) come with the ``test``
extras; without them the execution tests skip, saying which is missing.
"""
import asyncio
import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

from npae.tags import doc_tags

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "demos" / "notebooks"
DERIVATIONS = ROOT / "docs" / "derivations"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
#: The notebooks this suite was written with (04 comes from another author; the glob runs it too).
EXPECTED = ["01_autoencoders_and_pca", "02_regularised_autoencoders", "03_vae_and_its_bound",
            "05_estimators_and_gradients"]
#: Seconds one cell may take in quick mode before the run is declared hung.
CELL_TIMEOUT = 180

#: The summary line ``npae.training.report.Progress.close`` prints when a kernel shows no live bar.
SUMMARY = re.compile(r"^\w+: \d+ epochs? in \d+\.\d s( \| .*)?$")
#: A displayed live bar (tqdm's notebook widget, where ipywidgets is installed) counts as the line.
WIDGET = "application/vnd.jupyter.widget-view+json"
MARKER = "NPAE-NOTEBOOK-FITS "

#: Run first in the kernel (and removed before the checks): the suite's warning rule, a check that
#: the kernel imports this checkout's npae, and a count of training runs per cell (every module of
#: npae that holds ``npae.training.loop.fit_loop``, the one loop behind every ``fit``, gets a counting
#: wrapper, so a ``fit(..., progress=False)`` is counted too).
SETUP = f"""
import json as _json, sys as _sys, warnings as _warnings
_warnings.simplefilter("error", RuntimeWarning)
import npae, npae.training.loop as _training
assert npae.__file__.startswith({str(ROOT)!r}), npae.__file__
_cells_run = []  # [source, training runs] of every cell run after this one


def _pre_run_cell(info):
    _cells_run.append([info.raw_cell, 0])


get_ipython().events.register("pre_run_cell", _pre_run_cell)
_fit_loop = _training.fit_loop


def _counting_fit_loop(*args, **kwargs):
    _cells_run[-1][1] += 1
    return _fit_loop(*args, **kwargs)


for _name, _module in list(_sys.modules.items()):
    if _name.split(".")[0] == "npae" and getattr(_module, "fit_loop", None) is _fit_loop:
        _module.fit_loop = _counting_fit_loop
"""
REPORT = f"print({MARKER!r} + _json.dumps(_cells_run[:-1]))"


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell):
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _tags(cell):
    return list(cell.get("metadata", {}).get("tags", []))


def _ids(path):
    return path.stem


# --------------------------------------------------------------------------------------------------
# the stored notebooks
# --------------------------------------------------------------------------------------------------
def test_the_lecture_notebooks_are_there_and_listed():
    names = [p.stem for p in NOTEBOOKS]
    assert all(name in names for name in EXPECTED), names
    readme = (NB_DIR / "README.md").read_text(encoding="utf-8")
    for name in names:
        assert f"{name}.ipynb" in readme, f"demos/notebooks/README.md does not list {name}.ipynb"


#: A stored notebook larger than this holds more than its figures (a widget, a figure per loop step).
MAX_BYTES = 1_000_000


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_stored_with_outputs(path):
    """The stored notebook is an executed one, so its figures render where the code is hosted."""
    rebuild = f"rebuild it: python demos/notebooks/build.py {path.stem[:2]}"
    nb = _load(path)
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and _source(c).strip()]
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: execution counts {counts}: not every cell ran, in order, once; {rebuild}")
    errors = [i for i, c in enumerate(code) if any(o["output_type"] == "error" for o in c["outputs"])]
    assert not errors, f"{path.name}: code cells {errors} stored an error; {rebuild}"
    for cell in code:
        pngs = [o for o in cell["outputs"] if "image/png" in o.get("data", {})]
        first_line = _source(cell).splitlines()[0]
        if "figure" in _tags(cell):
            assert pngs, f"{path.name}: the figure cell starting {first_line!r} stores no PNG; {rebuild}"
        assert "execution" not in cell.get("metadata", {}), f"{path.name} stores cell timestamps"
    assert "widgets" not in nb.get("metadata", {}), f"{path.name} stores widget state"
    text = path.read_text(encoding="utf-8")
    for where in (str(ROOT), "/ipykernel_"):  # the checkout; the kernel's temporary files
        assert where not in text, f"{path.name} names {where}: outputs must not hold absolute paths"
    assert len(text.encode()) < MAX_BYTES, f"{path.name}: {len(text.encode()):,} bytes"


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_links_resolve(path):
    """Relative links point at files that exist; ``docs/derivations/<page>.md#<tag>`` anchors name a
    tag that heads a section of that page (the anchors npae's docstrings use)."""
    headings = doc_tags(DERIVATIONS)
    derivation_links, bad = 0, []
    for cell in _load(path)["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for target in LINK.findall(_source(cell)):
            if re.match(r"^[a-z]+://", target):
                continue
            file, _, anchor = target.partition("#")
            where = (path.parent / file).resolve()
            if not where.is_file():
                bad.append(f"{target}: no such file")
                continue
            if where.parent == DERIVATIONS.resolve():
                derivation_links += 1
                if anchor and headings.get(anchor.upper()) != DERIVATIONS / where.name:
                    bad.append(f"{target}: [{anchor.upper()}] heads no section of {where.name}")
    assert not bad, f"{path.name}: {bad}"
    assert derivation_links, f"{path.name} links no derivation page"


def test_every_source_has_its_notebook():
    scripts = sorted(p.stem for p in NB_DIR.glob("[0-9][0-9]_*.py"))
    assert scripts == [p.stem for p in NOTEBOOKS], (
        "each demos/notebooks/NN_*.py and its .ipynb come in pairs: python demos/notebooks/build.py")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_paired_script_holds_the_same_cells(path):
    """The .ipynb's cells (kind, source, tags, in order) are those jupytext reads from the .py."""
    script = path.with_suffix(".py")
    assert script.exists(), f"{path.name} has no .py twin (the source the build executes)"
    jupytext = pytest.importorskip("jupytext", reason="jupytext (test extras) reads the paired .py")

    def cells(nb):
        return [(c["cell_type"], _source(c).strip(), _tags(c)) for c in nb["cells"]]

    paired = json.loads(jupytext.writes(jupytext.read(script), fmt="ipynb"))
    assert cells(paired) == cells(_load(path)), (
        f"{script.name} and {path.name} differ: edit the .py, then "
        f"`python demos/notebooks/build.py {path.stem[:2]}` (or `jupytext --sync {script.name}`)")


# --------------------------------------------------------------------------------------------------
# executing them
# --------------------------------------------------------------------------------------------------
def _missing_runner():
    for module in ("nbclient", "nbformat", "ipykernel"):
        if importlib.util.find_spec(module) is None:
            return module
    return None


#: Notebooks run side by side (each kernel computes on one BLAS thread; the machine has two cores).
JOBS = max(1, min(2, os.cpu_count() or 1))
#: The tests that need executed notebooks (the fixture runs the notebooks these selected).
EXECUTION_TESTS = ("test_notebook_runs_in_quick_mode", "test_figure_cells_display_a_png",
                   "test_each_fit_leaves_exactly_one_summary_line")


class Run:
    """One notebook run in quick mode: its executed code cells in order, the training runs counted
    in each (``[source, count]`` per cell, None if the count was lost), the error text, the time."""

    def __init__(self, cells, runs, error, seconds):
        self.cells, self.runs, self.error, self.seconds = cells, runs, error, seconds


async def _execute(path, gate):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(str(path), as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(SETUP))
    nb.cells.append(nbformat.v4.new_code_cell(REPORT))
    env = dict(os.environ, NPAE_QUICK="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, startup_timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    async with gate:
        started, error = time.perf_counter(), None
        try:
            await client.async_execute(env=env)
        except CellExecutionError as exc:
            error = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # without the traceback's colours
        except Exception as exc:  # noqa: BLE001 (a timeout, a dead kernel: report it, do not hide it)
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
    report = nb.cells.pop()
    nb.cells.pop(0)
    runs = None
    for out in report.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("text", "").startswith(MARKER):
            runs = json.loads(out["text"][len(MARKER):])
    cells = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    return Run(cells, runs, error, seconds)


def execute_all(paths, jobs=JOBS):
    """Run ``paths`` in quick mode, ``jobs`` kernels at a time; ``{path: Run}``."""
    async def main():
        gate = asyncio.Semaphore(jobs)
        return await asyncio.gather(*(_execute(path, gate) for path in paths))

    return dict(zip(paths, asyncio.run(main())))


@pytest.fixture(scope="module")
def executed(request):
    """The selected notebooks, each run once in quick mode for all the tests that look at it."""
    missing = _missing_runner()
    if missing:
        pytest.skip(f"{missing} is not installed: the notebooks cannot be executed "
                    f"(pip install -e '.[test]')")
    wanted = sorted({item.callspec.params["path"] for item in request.session.items
                     if getattr(item, "module", None) is sys.modules[__name__]
                     and getattr(item, "originalname", None) in EXECUTION_TESTS
                     and hasattr(item, "callspec")})
    return execute_all(wanted)


def _stream_text(cell):
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_runs_in_quick_mode(path, executed):
    run = executed[path]
    sys.stdout.write(f"{path.name}: {run.seconds:.1f} s\n")
    assert run.error is None, f"{path.name} failed in quick mode after {run.seconds:.0f} s:\n{run.error}"
    assert run.runs is not None and len(run.runs) == len(run.cells), \
        "the per-cell count of training runs was lost"
    assert [source for source, _ in run.runs] == [c.source for c in run.cells], "cells ran out of order"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_figure_cells_display_a_png(path, executed):
    cells, error = executed[path].cells, executed[path].error
    if error is not None:
        pytest.skip("the notebook failed (see test_notebook_runs_in_quick_mode)")
    figures = [c for c in cells if "figure" in _tags(c)]
    assert figures, f"{path.name} has no cell tagged 'figure'"
    for cell in cells:
        pngs = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        first_line = cell.source.splitlines()[0]
        if "figure" in _tags(cell):
            assert pngs, f"{path.name}: the figure cell starting {first_line!r} displayed no PNG"
        else:
            assert not pngs, (f"{path.name}: the cell starting {first_line!r} displays a PNG but is "
                              f"not tagged 'figure'")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_each_fit_leaves_exactly_one_summary_line(path, executed):
    cells, runs, error = executed[path].cells, executed[path].runs, executed[path].error
    if error is not None:
        pytest.skip("the notebook failed (see test_notebook_runs_in_quick_mode)")
    assert sum(n for _, n in runs) > 0, f"{path.name} trains nothing"
    for cell, (_, n_runs) in zip(cells, runs):
        text = _stream_text(cell)
        lines = [line for line in text.splitlines() if SUMMARY.match(line)]
        bars = [o for o in cell.outputs if WIDGET in o.get("data", {})]
        first_line = cell.source.splitlines()[0]
        assert len(lines) + len(bars) == n_runs, (
            f"{path.name}: the cell starting {first_line!r} trained {n_runs} time(s) but shows "
            f"{len(lines)} summary line(s) and {len(bars)} bar(s):\n{text}")
        assert "\r" not in text, f"{path.name}: progress-bar debris in the cell starting {first_line!r}"
