"""A conversation tree made through the real converse services, for the export and dashboard tests.

Each turn is leased and submitted through the services a labeler's page calls (assignment_lease,
converse_turn_submit: ranking, edit, "none acceptable" with an own reply, continuing). Only the
generation is left out: a turn's replies are stored as the live worker stores them (model candidates
with their provenance, and the turn's shown order), since these tests are about what is stored from
the conversation, not about the model. The tree:

    root R  (system "Be brief.", user "Plan a picnic for four.")
    ├─ alice: ranks S > P > N, edits S into E, continues with E ─ P1 "And for dessert?"
    │     alice: none acceptable (Ice > Cake = Cookies), writes her own reply O, continues with O
    │     └─ P2 "Anything to drink?": alice ranks Lemonade > Water, ends
    ├─ bob: ranks T > S > P, continues with T ─ P3 "Where should we go?": bob ranks park > beach, ends
    ├─ carol (rank task): S > E > P = T > N   (the edit below the reply it came from)
    └─ bob's demonstration of R (demonstrate task; no candidate)
    root Q  (one user turn, four answers ranked by bob: no conversation)

`export` and `counted` read an export's rows and its count through the export services.
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass, field

import pyarrow.parquet as pq

from annotation.models import Assignment, Candidate, Membership, Prompt
from annotation.models.assignments import TaskKind
from annotation.models.projects import Role
from annotation.selectors.exports import export_rows_count
from annotation.services.assignments import assignment_lease
from annotation.services.candidates import candidate_text_hash
from annotation.services.converse import TurnEdit, converse_turn_submit
from annotation.services.exports import export_request_validate, export_stream
from annotation.services.prompts import prompt_create
from annotation.services.rankings import ItemInput, ranking_record
from tests.annotation.export_data import candidate_make, demonstration_make, ranked_prompt

SANDWICH = "Sandwiches and fruit."
EDITED = "Sandwiches, fruit and lemonade."
OWN_REPLY = "Fresh berries with cream."
# Pairs per ranking: root alice [[E],[S],[P],[N]] 6, bob [[T],[S],[P]] 3, carol [[S],[E],[P,T],[N]] 9;
# P1 alice 2; P2 alice 1; P3 bob 1; the plain prompt Q, bob, 4 answers in order: 6.
ALL_PAIRS = 28


@dataclass
class World:
    project: object
    root: Prompt
    plain: Prompt  # root Q: ranked once, never continued
    turns: dict[str, Prompt]  # "P1", "P2", "P3"
    texts: dict[str, Candidate] = field(default_factory=dict)  # every reply by its text

    def id(self, text: str) -> int:
        return self.texts[text].pk


def replies_arrive(assignment: Assignment, texts: list[str], world: World) -> None:
    """Store a turn's replies as the live worker does: one model candidate per distinct text (an
    answer the prompt already has is reused), and the order they were shown in."""
    shown = []
    for seed, text in enumerate(texts):
        candidate = Candidate.objects.filter(
            prompt=assignment.prompt, content_hash=candidate_text_hash(text=text)
        ).first() or candidate_make(
            assignment.prompt,
            text,
            backend="embedded",
            model_name="gemma-test",
            sampling_params={"temperature": 0.9, "live": True},
            seed=seed,
            finish_reason="stop",
        )
        world.texts[text] = candidate
        shown.append(candidate.pk)
    Assignment.objects.filter(pk=assignment.pk).update(shown_order=shown)


def take_turn(world: World, assignment: Assignment, labeler, order: list[list[str]], **submit):
    """Submit the turn through converse_turn_submit with the order given by texts; the next turn."""
    if "items" in submit:
        submit["items"] = {world.id(text): item for text, item in submit["items"].items()}
    if "continue_with" in submit:
        submit["continue_with"] = world.id(submit["continue_with"])
    result, created = converse_turn_submit(
        assignment_id=assignment.pk,
        labeler=labeler,
        idempotency_key=f"turn-{assignment.pk}",
        order=[[world.id(text) for text in group] for group in order],
        seconds_spent=20.0,
        **submit,
    )
    assert created
    for candidate in Candidate.objects.filter(prompt=assignment.prompt):
        world.texts.setdefault(candidate.text, candidate)
    return result.next_assignment


def conversation_world(project, alice, bob, carol) -> World:
    project.converse_per_prompt = 2
    project.converse_max_turns = 4
    project.save(update_fields=["converse_per_prompt", "converse_max_turns"])
    Membership.objects.get_or_create(project=project, user=carol, defaults={"role": Role.LABELER})
    root = prompt_create(
        project=project,
        turns=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Plan a picnic for four."},
        ],
    )
    world = World(project=project, root=root, plain=root, turns={})
    # Both start from the root (the only prompt yet), as the converse queue serves it to two labelers.
    alice_turn, _ = assignment_lease(labeler=alice, kind=TaskKind.CONVERSE, project_id=project.pk)
    bob_turn, _ = assignment_lease(labeler=bob, kind=TaskKind.CONVERSE, project_id=project.pk)
    assert alice_turn is not None and bob_turn is not None
    assert alice_turn.prompt_id == bob_turn.prompt_id == root.pk

    replies_arrive(alice_turn, [SANDWICH, "Pizza.", "Nothing."], world)
    alice_turn = take_turn(
        world,
        alice_turn,
        alice,
        [[SANDWICH], ["Pizza."], ["Nothing."]],
        items={
            SANDWICH: ItemInput(rating=6),
            "Pizza.": ItemInput(rating=4),
            "Nothing.": ItemInput(rating=1, flags=["other"]),
        },
        edit=TurnEdit(candidate_id=world.id(SANDWICH), text=EDITED),
        next_user_turn="And for dessert?",
    )
    world.turns["P1"] = alice_turn.prompt
    replies_arrive(alice_turn, ["Cake.", "Ice cream.", "Cookies."], world)
    alice_turn = take_turn(
        world,
        alice_turn,
        alice,
        [["Ice cream."], ["Cake.", "Cookies."]],
        none_acceptable=True,
        reply=OWN_REPLY,
        next_user_turn="Anything to drink?",
    )
    world.turns["P2"] = alice_turn.prompt
    replies_arrive(alice_turn, ["Water.", "Lemonade."], world)
    assert take_turn(world, alice_turn, alice, [["Lemonade."], ["Water."]]) is None

    replies_arrive(bob_turn, [SANDWICH, "Pizza.", "Tacos."], world)
    bob_turn = take_turn(
        world,
        bob_turn,
        bob,
        [["Tacos."], [SANDWICH], ["Pizza."]],
        continue_with="Tacos.",
        next_user_turn="Where should we go?",
    )
    world.turns["P3"] = bob_turn.prompt
    replies_arrive(bob_turn, ["A park.", "The beach."], world)
    assert take_turn(world, bob_turn, bob, [["A park."], ["The beach."]]) is None

    # Carol ranks the root's replies again (the rank queue serves a turn's replies to others).
    ranked = [EDITED, SANDWICH, "Pizza.", "Tacos.", "Nothing."]
    ranking_record(
        prompt=root,
        candidate_ids=[world.id(text) for text in ranked],
        order=[
            [world.id(SANDWICH)],
            [world.id(EDITED)],
            [world.id("Pizza."), world.id("Tacos.")],
            [world.id("Nothing.")],
        ],
        labeler=carol,
    )
    demonstration_make(root, bob, "Bring a blanket, sandwiches and water.")
    world.plain, _ = ranked_prompt(project, 7, [bob], [[[0], [1], [2], [3]]])
    return world


def export(
    project, export_format: str, filters: dict | None = None, file_format: str = "jsonl"
) -> list[dict]:
    request = export_request_validate(
        project=project, export_format=export_format, file_format=file_format, filters=filters or {}
    )
    data = b"".join(export_stream(request=request))
    if file_format == "parquet":
        return pq.read_table(io.BytesIO(data)).to_pylist()
    if file_format == "jsonl.gz":
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.decode().splitlines()]


def counted(project, export_format: str, filters: dict) -> int:
    request = export_request_validate(
        project=project, export_format=export_format, file_format="jsonl", filters=filters
    )
    return export_rows_count(project=project, export_format=request.export_format, filters=request.filters)
