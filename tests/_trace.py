"""Which tagged lines of npae a piece of code runs: the check that a derivation's tag sits on the
training path (used by test_backend.py and test_conv_layers.py)."""
import sys
from pathlib import Path

import npae
from npae import tags

PACKAGE = str(Path(npae.__file__).resolve().parent)


def tags_not_run(tag_names, run):
    """Call ``run()`` with a line tracer on npae's files; return ``{tag: places}`` for each of
    ``tag_names`` none of whose tagged lines ran (an empty dict: all of them ran)."""
    ran = set()

    def tracer(frame, event, arg):
        if event == "line" and frame.f_code.co_filename.startswith(PACKAGE):
            ran.add((Path(frame.f_code.co_filename).name, frame.f_lineno))
        return tracer

    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(None)
    places = tags.code_tags()
    not_run = {}
    for tag in tag_names:
        lines = [(Path(p.rsplit(":", 1)[0]).name, int(p.rsplit(":", 1)[1])) for p in places[tag]]
        if not any(line in ran for line in lines):
            not_run[tag] = places[tag]
    return not_run
