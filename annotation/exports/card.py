"""The dataset card written beside every background export: README.md in Hugging Face's format.

A YAML header (`license`, `task_categories`, `tags`, `size_categories`, `pretty_name` and `configs`,
whose `data_files` name the files the export wrote, so `load_dataset` on the folder finds the splits),
then what a reader needs to trust the data: counts per split, the labelers' agreement, the filters and
options used, the cut-off (the latest row's time), and the licence and source the project's admin
filled in (Project.dataset_license, Project.dataset_source).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from annotation.exports.text import json_encode

# Which TRL trainers read each kind of format (for the card's prose and tags).
_TRAINERS = {
    "pairs": ("preference", "RewardTrainer, DPOTrainer and other preference trainers"),
    "kto": ("kto", "KTOTrainer (unpaired desirable / undesirable answers)"),
    "rankings": ("rankings", "reward-model training on whole K-way rankings"),
    "demonstrations": ("sft", "SFTTrainer"),
    "prompts": ("prompt-only", "online trainers that generate the answers (GRPOTrainer, RLOOTrainer)"),
    "conversation_pairs": (
        "preference",
        "RewardTrainer, DPOTrainer and other preference trainers (conversational: the history is the prompt)",
    ),
    "trees": (
        "conversation-trees",
        "Open-Assistant's tree readers (oasst_data.read_message_trees) and your own",
    ),
}


@dataclass
class ExportTally:
    """What the card counts, gathered while the export is written: rows and prompts per split, and
    the latest row's time (ISO 8601 text in UTC, which sorts as time does)."""

    rows: dict[str, int] = field(default_factory=dict)
    prompts: dict[str, set[int]] = field(default_factory=dict)
    latest: str | None = None

    def add(self, *, prompt_id: int, split: str, created_at: str | None) -> None:
        self.rows[split] = self.rows.get(split, 0) + 1
        self.prompts.setdefault(split, set()).add(prompt_id)
        if created_at is not None and (self.latest is None or created_at > self.latest):
            self.latest = created_at

    def add_records(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            created = record.get("created_at")
            if created is None and record.get("rankings"):
                created = max(r["created_at"] for r in record["rankings"])
            self.add(prompt_id=record["prompt_id"], split=record.get("split", "train"), created_at=created)


def _size_category(rows: int) -> str:
    for bound, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if rows < bound:
            return name
    return "1M<n<10M" if rows < 10_000_000 else "n>10M"


def _yaml_string(value: str) -> str:
    return json_encode(value)  # a JSON string is a valid YAML scalar, quotes and escapes included


def dataset_card(
    *,
    project_name: str,
    license_id: str,
    source: str,
    format_name: str,
    format_description: str,
    kind: str,
    file_format: str,
    data_files: dict[str, str],
    tally: ExportTally,
    filters: dict[str, Any],
    agreement: dict[str, Any],
    exported_at: str,
    format_details: str = "",
) -> str:
    """The card's Markdown. `data_files` maps each split to its path relative to the card;
    `format_details` (Markdown) describes the rows, when the format says more than one line."""
    tag, readers = _TRAINERS[kind]
    total = sum(tally.rows.values())
    header = [
        "---",
        f"license: {license_id or 'other'}",
        f"pretty_name: {_yaml_string(f'{project_name} ({format_name})')}",
        "task_categories:",
        "- text-generation",
        "tags:",
        "- rlhf",
        "- trl",
        f"- {tag}",
        "size_categories:",
        f"- {_size_category(total)}",
        "configs:",
        "- config_name: default",
        "  data_files:",
    ]
    for split, path in data_files.items():
        header += [f"  - split: {split}", f"    path: {_yaml_string(path)}"]
    header.append("---")
    counts = ["| split | rows | prompts |", "|---|---:|---:|"]
    for split in sorted(tally.rows, key=lambda s: (s != "train", s)):
        counts.append(f"| {split} | {tally.rows[split]:,} | {len(tally.prompts[split]):,} |")
    if not tally.rows:
        counts.append("| train | 0 | 0 |")
    shown_filters = "\n".join(f"- `{key}`: `{json_encode(value)}`" for key, value in sorted(filters.items()))
    agreed = agreement.get("agreement")
    agreement_text = (
        "No prompt was ranked by two labelers, so there is no agreement to report."
        if agreed is None
        else f"Pairwise agreement between labelers who ranked the same prompt: {agreed:.1%} "
        f"over {agreement.get('pairs_compared', 0):,} compared pairs"
        + (
            f"; mean Kendall's tau-b {agreement['kendall_tau']:.3f}."
            if agreement.get("kendall_tau") is not None
            else "."
        )
        + " Measured over the whole project's rankings."
    )
    body = [
        f"# {project_name}: {format_name}",
        "",
        f"{format_description}. Read by {readers}. File format: {file_format}.",
        "",
        *(["## Rows", "", format_details.strip(), ""] if format_details.strip() else []),
        "## Counts",
        "",
        *counts,
        "",
        "## Agreement",
        "",
        agreement_text,
        "",
        "## Filters and options",
        "",
        shown_filters or "None: every row of the project.",
        "",
        "## Cut-off",
        "",
        f"The latest row was made at {tally.latest or 'no row'}; exported at {exported_at}.",
        "",
        "## Licence and source",
        "",
        f"Licence: {license_id or 'other (not set on the project)'}.",
        "",
        source.strip() or "Source: not described on the project.",
        "",
    ]
    return "\n".join(header + [""] + body)
