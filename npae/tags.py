"""Equation tags: where each ``[PREFIX-N]`` of ``docs/derivations/<prefix>.md`` is implemented.

``python -m npae.tags`` prints ``TAG  file:line`` for every line of npae's code that implements a
tagged equation, so a reader of a derivation can jump to the exact line; the test suite uses the
same functions to check that every tag in the code is derived in the docs and every derived tag is
implemented. In a source checkout, ``python -m npae.tags --tests`` adds the tests that check each
tag: those whose docstring names it (``tests/test_tags.py`` requires one for every derived tag).
``python -m npae.tags KL-1 ELBO`` shows only the tags named (a bare prefix such as ``ELBO`` names
all of its tags), with the docs section that derives each when the docs are beside the package.

Only *implementing* lines count: a tag in the comment that ends a line of code (``dx = dy @ W.T
# [DENSE-2]``). A tag in a docstring or on a comment-only line is a cross-reference ("see [KL-1]")
and is not listed. The kernels of the fused backend carry no tags (their docstrings name the
reference unit they replace), so every listed line runs under ``NPAE_BACKEND=reference``.
"""
import argparse
import ast
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


def checks_by_tag(tests_dir):
    """Map tag -> list of "file::test" for the test functions whose docstring names the tag (a tag
    in a comment, a module docstring or a helper does not count: the docstring says what it checks)."""
    found = {}
    for path in sorted(Path(tests_dir).glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                for prefix, num in TAG.findall(ast.get_docstring(node) or ""):
                    found.setdefault(f"{prefix}-{num}", []).append(f"{path.name}::{node.name}")
    return found


def _tag_order(tag):
    prefix, num = tag.split("-")
    return prefix, int(num)


def _selected(parser, found, names):
    """The tags of ``found`` that ``names`` ask for (all when none); an unknown name is a command-line
    error naming the closest tags."""
    import difflib

    if not names:
        return set(found)
    wanted = set()
    for name in names:
        key = name.strip("[]").upper()
        hits = {tag for tag in found if tag == key or tag.split("-")[0] == key}
        if not hits:
            close = difflib.get_close_matches(key, sorted(found), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            parser.error(f"no tag {name!r} in npae's code{hint}")
        wanted |= hits
    return wanted


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m npae.tags",
                                     description="Where each equation tag is implemented (and tested).")
    parser.add_argument("tags", nargs="*", metavar="TAG",
                        help="show only these tags (KL-1), or every tag of a prefix (KL); default: all")
    parser.add_argument("--tests", action="store_true",
                        help="also list the tests whose docstring names each tag (needs a source checkout)")
    args = parser.parse_args(argv)
    tests_dir = PACKAGE.parent / "tests"
    if args.tests and not tests_dir.is_dir():
        parser.error(f"--tests needs the test suite beside the package; there is no {tests_dir}")
    found = code_tags()
    wanted = _selected(parser, found, args.tags)
    derived = doc_tags(PACKAGE.parent / "docs" / "derivations") if args.tags else {}
    checked = checks_by_tag(tests_dir) if args.tests else {}
    for tag, places in sorted(found.items(), key=lambda kv: _tag_order(kv[0])):
        if tag not in wanted:
            continue
        print(f"{tag:<10} {', '.join(places)}")
        if tag in derived:
            print(f"{'':<10} derived in: {derived[tag].relative_to(PACKAGE.parent)}#{tag.lower()}")
        if args.tests:
            print(f"{'':<10} tested by: {', '.join(checked.get(tag, ['(none)']))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
