"""Equation tags: where each ``[PREFIX-N]`` of ``docs/derivations/<prefix>.md`` is implemented.

``python -m npae.tags`` prints ``TAG  file:line`` for every tagged line of npae's code, so a reader of
a derivation can jump to the exact line; the test suite uses the same functions to check that every
tag in the code is derived in the docs and every derived tag is implemented.
"""
import re
import sys
from pathlib import Path

TAG = re.compile(r"\[([A-Z][A-Z0-9]*)-(\d+)\]")
PACKAGE = Path(__file__).resolve().parent


def code_tags(package=PACKAGE):
    """Map tag -> list of "path:line" for tags in comments of npae's Python files."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "#" not in line:
                continue
            comment = line[line.index("#"):]
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
    for tag, places in sorted(code_tags().items(), key=lambda kv: (kv[0].split("-")[0], int(kv[0].split("-")[1]))):
        print(f"{tag:<10} {', '.join(places)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
