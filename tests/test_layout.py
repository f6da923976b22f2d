"""The package's imports run one way: no cycle, counting imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

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
