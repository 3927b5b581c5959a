"""Services send tasks by name (config.celery.task_send), which a worker cannot check: a misspelt
name would sit on a queue that nobody consumes. Every name the code sends must be a registered task."""

from __future__ import annotations

import ast
from pathlib import Path

from config.celery import app

ROOT = Path(__file__).resolve().parents[1]


def _sent_names() -> dict[str, str]:
    """{task name: where} for every task_send call, with the name as a literal or a module constant."""
    sent: dict[str, str] = {}
    for path in [*(ROOT / "annotation").rglob("*.py"), *(ROOT / "rewards").rglob("*.py")]:
        tree = ast.parse(path.read_text(), filename=str(path))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name) and isinstance(node.value.value, str)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            called, args = node.func, node.args
            if (
                isinstance(called, ast.Name)
                and called.id == "partial"
                and args
                and getattr(args[0], "id", "") == "task_send"
            ):
                args = args[1:]
            elif not (isinstance(called, ast.Name) and called.id == "task_send"):
                continue
            first = args[0]
            name = first.value if isinstance(first, ast.Constant) else constants.get(getattr(first, "id", ""))
            assert isinstance(name, str), f"{path}:{node.lineno}: task_send needs a literal task name"
            sent[name] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return sent


def test_every_task_sent_by_name_is_registered():
    sent = _sent_names()
    assert {
        "annotation.export_run",
        "rewards.reward_model_train",
        "annotation.generation.candidates_generate",
    } <= set(sent)
    app.loader.import_default_modules()  # what a worker's autodiscovery imports
    unknown = {name: where for name, where in sent.items() if name not in app.tasks}
    assert not unknown, f"sent but not registered: {unknown}"
