"""Fixtures for reward-model tests: a tiny randomly-initialised BERT (fast to train), rankings."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from annotation.models import Candidate, Project, Prompt
from annotation.services.candidates import candidate_text_hash
from annotation.services.prompts import prompt_create
from annotation.services.rankings import ranking_record
from rewards.ml.config import default_backbone_path


@pytest.fixture(scope="session")
def tiny_backbone() -> Iterator[str]:
    """A 2-layer, 32-wide BERT with MiniLM's tokenizer: trains in a second, same code paths.

    It lives in VAR_DIR/models, one of the default MODEL_DIRS (the only folders a backbone may come
    from), so the workers that tests start accept it too.
    """
    from transformers import AutoTokenizer, BertConfig, BertModel

    models = Path(settings.VAR_DIR) / "models"
    models.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="tiny-bert-", dir=models))
    tokenizer = AutoTokenizer.from_pretrained(default_backbone_path(), local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    yield str(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def artifact_dir(settings, tmp_path) -> Path:
    settings.REWARD_MODEL_ARTIFACT_DIR = tmp_path / "reward_models"
    return settings.REWARD_MODEL_ARTIFACT_DIR


@pytest.fixture
def tiny_config(tiny_backbone) -> dict:
    return {"backbone": tiny_backbone, "epochs": 1, "max_length": 64, "learning_rate": 0.001}


def candidate_add(prompt: Prompt, text: str) -> Candidate:
    return Candidate.objects.create(
        prompt=prompt, text=text, content_hash=candidate_text_hash(text=text), source="model"
    )


GOOD = "Certainly! Here is a clear, kind and helpful answer about {topic}."
BAD = "No. Figure it out yourself."
MEH = "{topic}?"
ODD = "I only talk about the weather."


def rankings_make(project: Project, *, prompts: int, labeler=None, start: int = 0) -> list:
    """Prompts with 4 candidates each, ranked good > (meh = odd) > bad: 5 comparisons per ranking."""
    rankings = []
    for index in range(start, start + prompts):
        topic = f"topic {index}"
        prompt = prompt_create(
            project=project, turns=[{"role": "user", "content": f"Tell me about {topic}."}]
        )
        good, bad, meh, odd = (
            candidate_add(prompt, GOOD.format(topic=topic)),
            candidate_add(prompt, BAD),
            candidate_add(prompt, MEH.format(topic=topic)),
            candidate_add(prompt, ODD),
        )
        ids = [good.pk, bad.pk, meh.pk, odd.pk]
        rankings.append(
            ranking_record(
                prompt=prompt,
                candidate_ids=ids,
                order=[[good.pk], [meh.pk, odd.pk], [bad.pk]],
                labeler=labeler,
                source="labeler" if labeler else "import",
            )
        )
    return rankings


@pytest.fixture
def make_rankings():
    return rankings_make
