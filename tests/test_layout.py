"""The folders show the architecture: imports only go down, from the application to the models,
training, files and data, the fast layer and the lecture's math, and nothing imports in a circle."""
import ast
from pathlib import Path

import npae

PACKAGE = Path(npae.__file__).parent

#: Sub-packages from the bottom up; a module may import its own sub-package and those below it.
#: Top-level leaves (constants, validation, version, init) sit below everything; the tools beside
#: the package's face (gradcheck, tags, __init__, __main__) above everything.
LAYERS = ["leaves", "pairs", "fast", "data", "training", "models", "export", "app", "tools"]
LEAVES = {"constants", "validation", "version", "init"}


def layer_of(module):
    """The layer of a dotted module name such as ``npae.models.vae``."""
    parts = module.split(".")[1:]
    if not parts or parts[0] in ("__init__", "__main__", "gradcheck", "tags"):
        return "tools"
    if parts[0] in LEAVES:
        return "leaves"
    return parts[0]


def module_name(path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def imports(path):
    """npae modules that ``path`` imports anywhere (module level or inside functions), resolved to
    modules (``from npae.pairs import latent`` is ``npae.pairs.latent``)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "npae":
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _exists(candidate) else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "npae")
    found.discard(me)
    return me, found


def _exists(module):
    rel = Path(*module.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").exists() or (PACKAGE / rel / "__init__.py").exists()


def graph():
    return dict(imports(p) for p in sorted(PACKAGE.rglob("*.py")))


def test_the_import_graph_has_no_cycle():
    g = graph()
    g = {m: {d for d in deps if d in g} for m, deps in g.items()}
    state, cycles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for dep in sorted(g[node]):
            if state.get(dep) == "open":
                cycles.append(trail + [dep])
            elif dep not in state:
                visit(dep, trail + [dep])
        state[node] = "done"

    for node in sorted(g):
        if node not in state:
            visit(node, [node])
    assert not cycles, f"import cycles: {cycles}"


def test_imports_only_go_down():
    upward = []
    for module, deps in graph().items():
        mine = LAYERS.index(layer_of(module))
        for dep in sorted(deps):
            if dep == "npae":
                upward.append(f"{module} imports the package face npae")
            elif LAYERS.index(layer_of(dep)) > mine:
                upward.append(f"{module} ({layer_of(module)}) imports {dep} ({layer_of(dep)})")
    assert not upward, "\n".join(upward)


def test_every_module_sits_in_a_known_room():
    rooms = {p.relative_to(PACKAGE).parts[0] for p in PACKAGE.rglob("*.py")}
    top = {r[:-3] for r in rooms if r.endswith(".py")}
    folders = {r for r in rooms if not r.endswith(".py")}
    assert folders == set(LAYERS) - {"leaves", "tools"}, folders
    assert top <= LEAVES | {"__init__", "__main__", "gradcheck", "tags"}, top


def test_the_math_imports_no_model_speed_or_file():
    """The pairs are the lecture's math: they import NumPy, the leaves and each other only."""
    for module, deps in graph().items():
        if layer_of(module) == "pairs":
            assert {layer_of(d) for d in deps} <= {"leaves", "pairs"}, (module, deps)


def test_no_module_is_over_600_lines():
    """A module holds one job; past 600 lines it is holding several (split it by job, not by size)."""
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert not long, long
