"""The component's TypeScript types are what graphql-codegen makes of the contract today.

``frontend-stub/prefcenter-preferences.graphql.d.ts`` is generated (``npm run codegen``)
from ``schema.graphql`` and the operations in ``prefcenter-preferences.js`` and committed,
like the schema. This test runs the pinned generator (``package.json``; ``scripts/test``
installs it with ``npm ci`` when node is present) on copies of both and fails when the
committed file differs: a schema or operation change without a re-run. Without node it
skips with the reason, except under ``CI=true`` where it fails.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.helpers import npm_tool

ROOT = Path(__file__).resolve().parent.parent
GENERATED = "frontend-stub/prefcenter-preferences.graphql.d.ts"
INPUTS = ["codegen.yml", "schema.graphql", "frontend-stub/prefcenter-preferences.js"]


def _generator() -> Path:
    return npm_tool(".bin/graphql-codegen", "the codegen drift check")


def test_committed_types_equal_the_generated_ones(tmp_path: Path) -> None:
    cli = _generator()
    for name in INPUTS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tmp_path / name)
    (tmp_path / "node_modules").symlink_to(ROOT / "node_modules")
    result = subprocess.run([str(cli), "--config", "codegen.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (tmp_path / GENERATED).read_text() == (ROOT / GENERATED).read_text(), (
        f"{GENERATED} is out of date: run `npm ci && npm run codegen` and commit it")


def test_the_types_cover_every_operation_of_the_component() -> None:
    text = (ROOT / GENERATED).read_text()
    for name in ("PreferenceCentreQuery", "OptOutMutation", "OptInMutation",
                 "RequestOptBackInMutation", "SetFrequencyMutation",
                 "UndoNotInterestedMutation", "UpdateDetailsMutation", "HistoryQuery"):
        assert f"export type {name} = " in text, name
