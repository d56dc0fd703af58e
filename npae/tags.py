"""Equation tags: where each ``[PREFIX-N]`` of ``docs/derivations/<prefix>.md`` is implemented.

``python -m npae.tags`` prints ``TAG  file:line`` for every line of npae's code that implements a
tagged equation, so a reader of a derivation can jump to the exact line; the test suite uses the
same functions to check that every tag in the code is derived in the docs and every derived tag is
implemented.

Only *implementing* lines count: a tag in the comment that ends a line of code (``dx = dy @ W.T
# [DENSE-2]``). A tag in a docstring or on a comment-only line is a cross-reference ("see [KL-1]")
and is not listed. The kernels of the fused backend carry no tags (their docstrings name the
reference unit they replace), so every listed line runs under ``NPAE_BACKEND=reference``.
"""
import re
import sys
import tokenize
from pathlib import Path

TAG = re.compile(r"\[([A-Z][A-Z0-9]*)-(\d+)\]")
PACKAGE = Path(__file__).resolve().parent


def code_tags(package=PACKAGE):
    """Map tag -> list of "path:line" of the lines implementing it: tags in a comment that ends a
    line holding code (read with :mod:`tokenize`: docstrings and comment-only lines do not count)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        code_lines, comments = set(), []
        with open(path, "rb") as fh:
            for tok in tokenize.tokenize(fh.readline):
                if tok.type == tokenize.COMMENT:
                    comments.append((tok.start[0], tok.string))
                elif tok.type in (tokenize.NAME, tokenize.OP, tokenize.NUMBER):
                    code_lines.update(range(tok.start[0], tok.end[0] + 1))
        for lineno, comment in comments:
            if lineno not in code_lines:
                continue
            for prefix, num in TAG.findall(comment):
                found.setdefault(f"{prefix}-{num}", []).append(f"{path.relative_to(package.parent)}:{lineno}")
    return found


def doc_tags(docs):
    """Map tag -> docs file for tags that head a section (a Markdown heading line)."""
    found = {}
    for path in sorted(Path(docs).glob("*.md")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                for prefix, num in TAG.findall(line):
                    found[f"{prefix}-{num}"] = path
    return found


def main(argv=None):
    for tag, places in sorted(code_tags().items(),
                              key=lambda kv: (kv[0].split("-")[0], int(kv[0].split("-")[1]))):
        print(f"{tag:<10} {', '.join(places)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
