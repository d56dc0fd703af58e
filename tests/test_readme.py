"""The README's Quick start is one fenced block with exactly two commands, and CI runs the second."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```[^\n]*\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Quick start section must hold exactly one fenced block"
    return [line.strip() for line in blocks[0].splitlines() if line.strip() and not line.startswith("#")]


def test_quick_start_has_exactly_two_commands():
    commands = quick_start_commands()
    assert len(commands) == 2, commands
    assert "npae train vae" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = quick_start_commands()[1]
    assert any(line.strip() == test_command for line in ci.splitlines()), test_command


def test_readme_python_example_runs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    code = code.replace("vae.fit(X, epochs=10, batch_size=64)",
                        "vae.fit(X, epochs=10, batch_size=64, progress=False)")
    exec(compile(code, "README.md", "exec"), {})
