"""The package's imports run one way: no cycle, counting imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "svg_quality"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its body."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import mod` imports the submodule when it is one
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                if t in modules and t != name:
                    graph[name].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "svg_quality.serving.predictor" in graph  # the walk sees the subpackage
    assert "svg_quality.serving.graphs" in graph["svg_quality.serving.export"] or any(
        "svg_quality.serving.graphs" in graph[m] for m in graph["svg_quality.serving.export"]
    )
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_serving_runtime_and_predictor_stay_torch_free_at_import() -> None:
    """The ONNX predictor's module imports no torch graph module at module level."""
    for name in ("runtime", "predictor"):
        tree = ast.parse((PACKAGE / "serving" / f"{name}.py").read_text())
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        mods = {a.name for n in top if isinstance(n, ast.Import) for a in n.names} | {
            n.module for n in top if isinstance(n, ast.ImportFrom)
        }
        assert not {m for m in mods if m and m.split(".")[0] == "torch"}, name
        assert "svg_quality.serving.graphs" not in mods and "svg_quality.model" not in mods, name


# --------------------------------------------------------------------------- stage deps

REPO = PACKAGE.parents[1]


def runtime_imports(path: Path) -> set[str]:
    """The package modules ``path`` imports when it runs, in functions too; ``if
    TYPE_CHECKING:`` blocks (never run) left out. Parent packages count (they run first)."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in node.body
        for n in ast.walk(child)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    out = set()
    for name in names:
        parts = name.split(".")
        if parts[0] != "svg_quality":
            continue
        out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return out


def module_path(name: str) -> Path | None:
    base = PACKAGE.parent / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def stage_modules(script: Path) -> set[str]:
    """Every package file (repo-relative) that running ``script`` can import."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += [p for m in runtime_imports(path) if (p := module_path(m)) is not None]
    return {p.relative_to(REPO).as_posix() for p in seen if p != script}


def test_runtime_imports_skip_type_checking_and_add_parent_packages(tmp_path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "from svg_quality.serving.predictor import Predictor\n"
        "if TYPE_CHECKING:\n    from svg_quality.colour import ColourReference\n"
        "def f():\n    import svg_quality.io\n"
    )
    got = runtime_imports(src)
    assert {"svg_quality", "svg_quality.serving", "svg_quality.serving.predictor"} <= got
    assert "svg_quality.io" in got and "svg_quality.colour" not in got


def test_each_stage_lists_every_module_it_runs_as_a_dep() -> None:
    """dvc.yaml's deps of a stage cover the package modules its script imports, directly or
    not, in functions too: a change to any of them reruns the stage."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    problems = []
    for name, stage in stages.items():
        script = REPO / "stages" / f"{name}.py"
        assert f"stages/{name}.py" in stage["cmd"], name
        deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
        assert f"stages/{name}.py" in deps, name
        missing = sorted(
            m
            for m in stage_modules(script)
            if not any(m == d or m.startswith(d.rstrip("/") + "/") for d in deps)
        )
        if missing:
            problems.append(f"{name}: {', '.join(missing)}")
    assert not problems, "dvc.yaml deps lack modules the stage runs:\n" + "\n".join(problems)
