"""Every equation tag in the code is derived in docs/derivations/<prefix>.md, every derived tag is
implemented somewhere in the code, and every derived tag is named in the docstring of a test that
checks it. (That every tagged line runs in some fit: tests/test_tag_coverage.py.)"""
from pathlib import Path

from npae.tags import code_tags, doc_tags, checks_by_tag

DOCS = Path(__file__).resolve().parents[1] / "docs" / "derivations"


def test_every_code_tag_is_derived_in_its_docs_file():
    derived = doc_tags(DOCS)
    missing = {}
    for tag, places in code_tags().items():
        expected = DOCS / f"{tag.split('-')[0].lower()}.md"
        if derived.get(tag) != expected:
            missing[tag] = (places[0], str(expected.relative_to(DOCS.parents[1])))
    assert not missing, f"tags with no derivation heading (tag: code place, docs file): {missing}"


def test_every_derived_tag_is_implemented():
    implemented = code_tags()
    orphans = sorted(tag for tag in doc_tags(DOCS) if tag not in implemented)
    assert not orphans, f"derivations whose tag appears on no line of npae/: {orphans}"


def test_tag_listing_runs(capsys):
    from npae.tags import main
    assert main([]) == 0
    assert "DENSE-2" in capsys.readouterr().out
    assert main(["--tests"]) == 0
    assert "tested by: test_functional.py::test_dense_pair_gradcheck" in capsys.readouterr().out


def test_only_implementing_lines_count(tmp_path):
    """A tag at the end of a line of code implements; one in a docstring or on a comment-only line
    is a cross-reference and is not listed."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text('"""Module doc citing [DOC-1]."""\n'
                              "# a comment-only line citing [NOTE-1]\n"
                              "def f(x):\n"
                              '    """Docstring citing [DOC-2]."""\n'
                              "    return {\n"
                              '        "a": x + 1,  # [CODE-1]\n'
                              "    }  # [CODE-2]\n", encoding="utf-8")
    found = code_tags(pkg)
    assert set(found) == {"CODE-1", "CODE-2"}
    assert found["CODE-1"] == [f"{pkg.name}/m.py:6"]


def test_every_derived_tag_is_named_by_a_test():
    """Tests are found by equation: each gradient or identity test names the tags it checks in its
    docstring ("... checks [KL-1], [KL-2] ..."), so ``grep '\\[KL-2\\]' tests/`` finds the check. A
    derived tag that no test's docstring names has no test a reader can find (a tag in a comment or
    in a test's own helper code does not count)."""
    named = checks_by_tag(Path(__file__).parent)
    unnamed = sorted((tag for tag in doc_tags(DOCS) if tag not in named),
                     key=lambda t: (t.split("-")[0], int(t.split("-")[1])))
    assert not unnamed, f"derivation tags that no test names (name them where a test checks them): {unnamed}"


def test_a_tag_named_only_outside_a_test_docstring_does_not_count(tmp_path):
    (tmp_path / "test_x.py").write_text('"""Module doc [A-1]."""\n'
                                        "def helper():\n"
                                        '    """[A-2]"""\n'
                                        "def test_y():\n"
                                        '    """Checks [A-3]."""\n'
                                        "    x = 1  # [A-4]\n", encoding="utf-8")
    assert checks_by_tag(tmp_path) == {"A-3": ["test_x.py::test_y"]}
