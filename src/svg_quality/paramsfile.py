"""A params file read strictly: bounded in size and depth, no aliases, no repeated keys.

:func:`read_yaml` is how :func:`svg_quality.config.load_params` reads params.yaml: a
hostile or mistyped file is refused in milliseconds with the file, the line and the fix,
before any value is built (:mod:`svg_quality.config` then checks the values).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from svg_quality.paramspace import shown

# Limits on a params file, so a hostile one is refused in milliseconds: the repository's
# is ~15 kB and a few levels deep; PyYAML's pure-Python reader is slow on megabytes
# (a 50 MB value took 42 s), and an alias bomb expands a few lines into gigabytes.
MAX_PARAMS_BYTES = 1 << 20
MAX_YAML_DEPTH = 32


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file strictly: a syntax error or a key given twice in one mapping
    raises ``ValueError`` naming the file, the line and the fix (PyYAML would raise a
    multi-line error, and silently keep the last of two equal keys). A file over
    ``MAX_PARAMS_BYTES``, an alias (``*name``: the "billion laughs" expands a few lines
    into gigabytes) and nesting deeper than ``MAX_YAML_DEPTH`` are refused before any
    value is built."""
    import yaml  # lazy: the trainer (and its benchmark) import config without needing PyYAML

    class StrictLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise ValueError(
                    f"{path}: line {event.start_mark.line + 1}: YAML aliases "
                    f"(*{event.anchor[:40]}) are not accepted; write the value out"
                )
            self.depth += 1
            if self.depth > MAX_YAML_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise ValueError(
                    f"{path}: line {line}: nested more than {MAX_YAML_DEPTH} levels deep; "
                    "a params file is a few levels of mappings"
                )
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                try:
                    given = key in seen
                except TypeError:  # a list or mapping as a key
                    raise ValueError(
                        f"{path}: line {line}: a {type(key).__name__} as a key; keys are names"
                    ) from None
                if given:
                    raise ValueError(
                        f"{path}: line {line}: key {shown(key)} is given twice (first on line "
                        f"{seen[key]}); keep one"
                    )
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

    with Path(path).open("rb") as fh:
        data = fh.read(MAX_PARAMS_BYTES + 1)
    if len(data) > MAX_PARAMS_BYTES:
        raise ValueError(
            f"{path}: larger than {MAX_PARAMS_BYTES >> 20} MB, the most a params file may be "
            "(the repository's is ~15 kB); check the path, or trim the file"
        )
    try:
        return yaml.load(data, Loader=StrictLoader) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"{path}: not valid YAML: {where}{problem}; fix the syntax") from None
