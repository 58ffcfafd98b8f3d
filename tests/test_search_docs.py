"""docs/library.md's example runs as written and finds a feasible front within its budget."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "library.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_library_example_runs(capsys: object) -> None:
    blocks = python_blocks(DOC.read_text())
    assert blocks, "docs/library.md has no ```python example"
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    engine = namespace["engine"]
    assert engine.validations_used == 20  # type: ignore[attr-defined]
    front = engine.front()  # type: ignore[attr-defined]
    assert front.feasible and all(p.metrics["params"] <= 3000 for p in front.points)
