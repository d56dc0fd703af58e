"""The plain VAE reads top to bottom: following one training step of the Bernoulli VAE
(``loss_and_grads(x, eps=eps)`` under the ``reference`` backend, on a model already built) enters
at most 5 npae files and at most 300 source lines (the sum of the lengths of the distinct functions
it enters). Measured with ``sys.settrace``; the figures are printed (``pytest -s``)."""
import ast
import sys
from pathlib import Path

import numpy as np

import npae

PACKAGE = str(Path(npae.__file__).resolve().parent)
MAX_FILES = 5
MAX_LINES = 300


def _function_spans(filename):
    """``{first line: number of lines}`` of every function in ``filename``; a decorated function is
    keyed by its first decorator's line and by its ``def`` line (a code object starts at the first)."""
    tree = ast.parse(Path(filename).read_text(encoding="utf-8"))
    spans = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            spans[start] = spans[node.lineno] = node.end_lineno - start + 1
    return spans


def reading_path(run):
    """Run ``run()`` under a call tracer; return the figures of the npae code it entered: ``files``
    (in the order first entered), ``functions`` (distinct ``file:name``), ``lines`` (sum of their
    source lengths) and ``jumps`` (calls from a function of one npae file into another file)."""
    entered, files, jumps = {}, [], [0]

    def tracer(frame, event, arg):
        if event != "call":
            return None
        filename = frame.f_code.co_filename
        if not filename.startswith(PACKAGE):
            return None
        name = Path(filename).relative_to(PACKAGE).as_posix()
        if name not in files:
            files.append(name)
        caller = frame.f_back
        if caller is not None and caller.f_code.co_filename.startswith(PACKAGE) \
                and caller.f_code.co_filename != filename:
            jumps[0] += 1
        spans = _function_spans(filename)
        first = frame.f_code.co_firstlineno
        if first in spans:  # a def (comprehensions and generator expressions are inside one)
            entered[f"{name}:{frame.f_code.co_name}:{first}"] = spans[first]
        return None

    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(None)
    return {"files": files, "functions": sorted(entered), "lines": sum(entered.values()),
            "jumps": jumps[0]}


def _batch():
    rng = np.random.default_rng(0)
    x = (rng.random((8, 12)) < 0.5).astype(float)  # (B, D) binary pixels
    eps = rng.standard_normal((8, 3))  # (B, Z)
    return x, eps


def _report(label, figures):
    print(f"\n{label}: {len(figures['files'])} files, {len(figures['functions'])} functions, "
          f"{figures['lines']} source lines, {figures['jumps']} jumps between files")
    print("  files: " + ", ".join(figures["files"]))
    for function in figures["functions"]:
        print("   ", function)


def test_the_plain_vae_step_reads_in_few_files_and_lines():
    """The step on a built model: at most 5 files and 300 source lines."""
    x, eps = _batch()
    with npae.backend("reference"):
        model = npae.VAE(12, hidden=(16,), latent_dim=3, seed=0)
        model.params  # noqa: B018  builds the network (build on first use is not the step)
        figures = reading_path(lambda: model.loss_and_grads(x, eps=eps))
    _report("plain VAE step, built model", figures)
    assert len(figures["files"]) <= MAX_FILES, figures["files"]
    assert figures["lines"] <= MAX_LINES, figures["functions"]


def test_the_figures_including_the_build_are_reported():
    """The same step on a model built by it (first use): printed for the report; the step's own
    figures must be among them."""
    x, eps = _batch()
    with npae.backend("reference"):
        model = npae.VAE(12, hidden=(16,), latent_dim=3, seed=0)
        figures = reading_path(lambda: model.loss_and_grads(x, eps=eps))
        step = reading_path(lambda: model.loss_and_grads(x, eps=eps))
    _report("plain VAE step, including the build", figures)
    assert set(step["files"]) <= set(figures["files"])
    assert set(step["functions"]) <= set(figures["functions"])
    assert figures["lines"] >= step["lines"]
