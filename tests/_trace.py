"""Which tagged lines of npae a piece of code runs: the check that a derivation's tag sits on the
training path (used by test_backend.py and test_conv_layers.py)."""
import sys
from pathlib import Path

import npae
from npae import tags

PACKAGE = str(Path(npae.__file__).resolve().parent)


def lines_run(run):
    """Call ``run()`` with a line tracer on npae's files; return the set of ``(file name, line)``
    that ran."""
    ran = set()

    def tracer(frame, event, arg):
        if not frame.f_code.co_filename.startswith(PACKAGE):
            return None  # no line events for NumPy's, the standard library's or the tests' frames
        if event == "line":
            ran.add((Path(frame.f_code.co_filename).name, frame.f_lineno))
        return tracer

    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(None)
    return ran


def place_ran(place, ran):
    """Whether the tagged line ``place`` ("npae/x/y.py:12", as :func:`npae.tags.code_tags` gives it)
    is among the lines of :func:`lines_run`."""
    path, line = place.rsplit(":", 1)
    return (Path(path).name, int(line)) in ran


def tags_not_run(tag_names, run):
    """Call ``run()`` with a line tracer on npae's files; return ``{tag: places}`` for each of
    ``tag_names`` none of whose tagged lines ran (an empty dict: all of them ran)."""
    ran = lines_run(run)
    places = tags.code_tags()
    return {tag: places[tag] for tag in tag_names if not any(place_ran(p, ran) for p in places[tag])}
