"""Labeler quality in the product: every bias and spam signal through the labeler stats API, reliability
and the reliability-weighted consensus, Krippendorff's alpha in the summary, and the periodic job that
sends a flagged labeler's recent work to review.

Data is built through the real ranking service: each ranking has a submitted assignment with the
order its candidates were shown in (shuffled per assignment, as the queue shows them) and its time.
The pure math is tested in test_reliability.py and test_labeler_signals.py.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Assignment, Membership, QualityEvent, Ranking
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.models.projects import Role
from annotation.models.quality import QualityAction, QualityState
from annotation.ranking_math import comparisons_from_order
from annotation.reliability import rankings_krippendorff_alpha
from annotation.services.prompts import prompt_create
from annotation.services.quality import ranking_exclude
from annotation.services.rankings import ranking_record
from annotation.services.review import ReviewKind, review_decide
from annotation.services.signals import RECENT_RANKINGS
from annotation.tasks import labeler_signals_review
from tests.annotation.export_data import candidate_make, demonstration_make

K = 4
# Candidate lengths by true rank, rotated per prompt: the best answer is not always the longest.
TRUTH_LENGTHS = (300, 120, 480, 60)
CAREFUL = ("carla", "cory", "cathy", "colin", "cyril")
REPEATED_PATTERN = (1, 3, 0, 2)  # ranks over shown positions; Kendall tau against the shown order is 0
WORDS = [
    "water",
    "light",
    "budget",
    "river",
    "salt",
    "engine",
    "garden",
    "letter",
    "music",
    "window",
    "paper",
    "stone",
    "winter",
    "harbour",
    "pepper",
    "ladder",
    "candle",
    "forest",
    "bridge",
    "copper",
    "violin",
    "meadow",
    "anchor",
    "basket",
    "cotton",
    "marble",
]


def _careful(truth, shown, rng):
    order = list(truth)
    if rng.random() < 0.3:  # a careful labeler still swaps two neighbours now and then
        i = rng.randrange(K - 1)
        order[i], order[i + 1] = order[i + 1], order[i]
    return order


def _position(truth, shown, rng):
    order = list(shown)  # mostly keeps the order they were shown, with a swap often enough to vary
    if rng.random() < 0.6:
        i = rng.randrange(K - 1)
        order[i], order[i + 1] = order[i + 1], order[i]
    return order


BEHAVIOURS = {
    "careful": _careful,
    "adversarial": lambda truth, shown, rng: list(reversed(truth)),
    "position": _position,
    "repeated": lambda truth, shown, rng: [shown[REPEATED_PATTERN.index(rank)] for rank in range(K)],
    "longer": None,  # needs the lengths: see _order
    "random": lambda truth, shown, rng: rng.sample(list(truth), K),
}


class World:
    """A project whose prompts have a known true order, ranked by labelers of known behaviour."""

    def __init__(self, project, django_user_model, password, *, seed: int = 7):
        self.project, self.users, self.rng = project, {}, random.Random(seed)
        self.make_user = lambda name: django_user_model.objects.create_user(name, f"{name}@ex.com", password)
        self.truths: dict[int, list[int]] = {}
        self.lengths: dict[int, int] = {}

    def user(self, name: str, role: str = Role.LABELER):
        if name not in self.users:
            self.users[name] = self.make_user(name)
            Membership.objects.create(project=self.project, user=self.users[name], role=role)
        return self.users[name]

    def prompt(self):
        index = len(self.truths)
        prompt = prompt_create(project=self.project, turns=[{"role": "user", "content": f"Task {index}?"}])
        ids = []
        for rank in range(K):
            length = TRUTH_LENGTHS[(rank + index) % K]
            text = f"Answer {index}.{rank} " + "x" * length
            ids.append(candidate_make(prompt, text).pk)
            self.lengths[ids[-1]] = len(text)
        self.truths[prompt.pk] = ids
        return prompt

    def rank(self, prompt, name: str, behaviour: str, *, seconds: float | None = None):
        truth = self.truths[prompt.pk]
        shown = self.rng.sample(truth, K)
        if behaviour == "longer":
            order = sorted(shown, key=lambda c: -self.lengths[c])
        else:
            order = BEHAVIOURS[behaviour](truth, shown, self.rng)
        now = timezone.now()
        assignment = Assignment.objects.create(
            project=self.project,
            prompt=prompt,
            labeler=self.user(name),
            kind=TaskKind.RANK,
            status=AssignmentStatus.SUBMITTED,
            leased_at=now,
            expires_at=now + timedelta(minutes=30),
            submitted_at=now,
            shown_order=shown,
        )
        return ranking_record(
            prompt=prompt,
            candidate_ids=shown,
            order=[[c] for c in order],
            labeler=self.user(name),
            assignment=assignment,
            seconds_spent=seconds if seconds is not None else 60 * self.rng.uniform(0.6, 1.6),
        )

    def demonstrate(self, prompt, name: str, text: str | None = None):
        text = text or " ".join(self.rng.choice(WORDS) for _ in range(30))
        return demonstration_make(prompt, self.user(name), text)


@pytest.fixture
def world(project, django_user_model, password):
    world = World(project, django_user_model, password)
    world.user("rita", Role.REVIEWER)
    return world


def _team(world: World, special: dict[str, str], *, prompts: int = 14, seconds: dict | None = None):
    """Every prompt ranked by the careful labelers and by each `special` labeler with their behaviour."""
    for _ in range(prompts):
        prompt = world.prompt()
        for name in CAREFUL:
            world.rank(prompt, name, "careful")
        for name, behaviour in special.items():
            world.rank(prompt, name, behaviour, seconds=(seconds or {}).get(name))


def _stats(api_client, world: World) -> dict[str, dict]:
    api_client.force_authenticate(world.users["rita"])
    response = api_client.get(f"/api/projects/{world.project.pk}/quality/labelers/")
    assert response.status_code == 200
    return {row["username"]: row for row in response.json()["results"]}


def _firing(stats: dict[str, dict]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for username, row in stats.items():
        for name, signal in row["signals"].items():
            found.setdefault(name, set())
            if signal["fires"]:
                found[name].add(username)
    return found


def test_no_signal_fires_on_careful_labelers(world, api_client):
    _team(world, {})
    prompts = list(world.truths)
    for index, name in enumerate(CAREFUL):  # own, different demonstrations
        for prompt_id in prompts[index * 2 : index * 2 + 3]:
            world.demonstrate(world.project.prompts.get(pk=prompt_id), name)
    stats = _stats(api_client, world)
    assert _firing(stats) == {
        name: set() for name in ("position_bias", "repeated_order", "speed", "length_bias", "near_duplicates")
    }
    for name in CAREFUL:
        row = stats[name]
        assert row["signals_firing"] == [] and not row["adversarial"]
        assert row["reliability"] > 0.8
        assert set(row["signals"]["speed"]) == {"value", "samples", "threshold", "fires", "reason"}
        assert row["signals"]["position_bias"]["threshold"] == world.project.position_bias_threshold
    assert stats["rita"]["reliability"] is None and stats["rita"]["signals"] == {}


@pytest.mark.parametrize(
    ("behaviour", "signal", "seconds"),
    [
        ("position", "position_bias", None),
        ("repeated", "repeated_order", None),
        ("longer", "length_bias", None),
        ("careful", "speed", 4.0),
    ],
)
def test_each_ranking_signal_fires_on_the_labeler_built_to_trigger_it(
    world, api_client, behaviour, signal, seconds
):
    _team(world, {"sam": behaviour}, seconds={"sam": seconds} if seconds else None)
    stats = _stats(api_client, world)
    assert _firing(stats)[signal] == {"sam"}
    assert stats["sam"]["signals"][signal]["fires"] and signal in stats["sam"]["signals_firing"]
    assert all(stats[name]["signals_firing"] == [] for name in CAREFUL)


def test_a_project_threshold_decides_whether_a_signal_fires(world, api_client):
    _team(world, {"sam": "careful"}, seconds={"sam": 15.0})  # a quarter of the usual minute
    assert _firing(_stats(api_client, world))["speed"] == {"sam"}
    world.project.speed_ratio_threshold = 0.2
    world.project.save(update_fields=["speed_ratio_threshold"])
    stats = _stats(api_client, world)
    assert _firing(stats)["speed"] == set() and stats["sam"]["signals"]["speed"]["threshold"] == 0.2


def test_near_duplicates_fire_on_the_copier_not_on_the_copied(world, api_client):
    _team(world, {}, prompts=4)
    prompts = [world.project.prompts.get(pk=pid) for pid in world.truths]
    originals = [world.demonstrate(prompt, "carla") for prompt in prompts]
    world.demonstrate(prompts[0], "cory")
    world.demonstrate(prompts[1], "cory")
    for prompt, original in zip(prompts, originals, strict=True):
        world.demonstrate(prompt, "dupe", original.text.replace("water", "waters", 1) + " ok")
    stats = _stats(api_client, world)
    assert _firing(stats)["near_duplicates"] == {"dupe"}
    assert stats["dupe"]["signals"]["near_duplicates"]["value"] == 1.0


def test_reliability_and_weighted_consensus_follow_the_careful_labeler(world, api_client, client):
    _team(world, {"adam": "adversarial"}, prompts=12)
    # One more prompt ranked only by a careful labeler and the adversarial one: the votes split.
    split = world.prompt()
    careful_ranking = world.rank(split, "carla", "careful")
    world.rank(split, "adam", "adversarial")

    stats = _stats(api_client, world)
    assert stats["adam"]["adversarial"] and stats["adam"]["reliability"] < 0.2
    assert stats["carla"]["reliability"] > 0.8 > stats["adam"]["reliability"]
    assert not stats["carla"]["adversarial"]

    rows = api_client.get(f"/api/projects/{world.project.pk}/quality/prompts/", {"limit": 100}).json()[
        "results"
    ]
    row = next(r for r in rows if r["prompt_id"] == split.pk)
    assert row["weighted_consensus_order"] == careful_ranking.order
    assert row["consensus_order"] != careful_ranking.order  # the unweighted one is split: all tied
    assert len(row["consensus_order"]) == 1

    summary = api_client.get(f"/api/projects/{world.project.pk}/quality/summary").json()
    expected = rankings_krippendorff_alpha(
        rankings=[(r.prompt_id, r.pk, r.order) for r in Ranking.objects.filter(prompt__project=world.project)]
    )
    assert summary["krippendorff_alpha"] == pytest.approx(expected)
    assert 0 < summary["krippendorff_alpha"] < 1 and "agreement" in summary and "kendall_tau" in summary

    # The project page has the places the dashboard's script fills from these APIs.
    client.force_login(world.users["rita"])
    page = client.get(f"/dashboard/projects/{world.project.pk}/").content.decode()
    assert 'id="stat-alpha"' in page and "Weighted consensus" in page and "Reliability</th>" in page


def test_alpha_is_one_when_everyone_agrees_and_left_out_work_does_not_count(world, api_client):
    prompt = world.prompt()
    truth = [[c] for c in world.truths[prompt.pk]]
    for name in ("carla", "cory"):
        ranking_record(
            prompt=prompt, candidate_ids=world.truths[prompt.pk], order=truth, labeler=world.user(name)
        )
    api_client.force_authenticate(world.users["rita"])
    url = f"/api/projects/{world.project.pk}/quality/summary"
    assert api_client.get(url).json()["krippendorff_alpha"] == pytest.approx(1.0)
    reversed_ranking = ranking_record(
        prompt=prompt, candidate_ids=world.truths[prompt.pk], order=truth[::-1], labeler=world.user("adam")
    )
    assert api_client.get(url).json()["krippendorff_alpha"] < 0.5
    api_client.force_authenticate(world.project.members.get(username="alice"))  # a labeler: no access
    assert api_client.get(url).status_code == 403
    ranking_exclude(ranking_id=reversed_ranking.pk, actor=None, reason="reversed")
    api_client.force_authenticate(world.users["rita"])
    assert api_client.get(url).json()["krippendorff_alpha"] == pytest.approx(1.0)


def test_the_job_sends_a_spammers_recent_work_to_review_once(world):
    _team(world, {"sam": "repeated"}, prompts=24, seconds={"sam": 3.0})
    result = labeler_signals_review()
    sent = result[str(world.project.pk)]
    assert sent == {"labelers_flagged": 1, "rankings_sent": RECENT_RANKINGS, "demonstrations_sent": 0}

    sams = Ranking.objects.filter(labeler=world.users["sam"]).order_by("-created_at", "-id")
    recent = list(sams[:RECENT_RANKINGS])
    assert all(r.quality_state == QualityState.UNDER_REVIEW for r in recent)
    assert all(r.quality_state == QualityState.COUNTED for r in sams[RECENT_RANKINGS:])
    events = QualityEvent.objects.filter(ranking__labeler=world.users["sam"])
    assert {(e.action, e.reason, e.actor_id) for e in events} == {
        (QualityAction.REVIEW_REQUEST, "repeated_order", None)
    }
    careful = Ranking.objects.filter(labeler__username__in=CAREFUL)
    assert set(careful.values_list("quality_state", flat=True)) == {QualityState.COUNTED}

    # Idempotent: under review stays put, and work a reviewer accepted is not sent again.
    review_decide(
        project=world.project,
        reviewer=world.users["rita"],
        kind=ReviewKind.RANKING,
        item_id=recent[0].pk,
        decision="accept",
    )
    assert labeler_signals_review()[str(world.project.pk)]["rankings_sent"] == 0
    assert Ranking.objects.get(pk=recent[0].pk).quality_state == QualityState.COUNTED
    assert events.filter(action=QualityAction.REVIEW_REQUEST).count() == RECENT_RANKINGS


def _export(api_client, project, **query) -> list[dict]:
    response = api_client.get(f"/api/projects/{project.pk}/exports/stream", {"file_format": "jsonl", **query})
    assert response.status_code == 200, response.content[:300]
    return [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]


def test_exports_weight_the_consensus_and_filter_by_reliability(world, api_client, admin_user, client):
    _team(world, {"adam": "adversarial"}, prompts=12)
    split = world.prompt()
    careful = world.rank(split, "carla", "careful")
    world.rank(split, "adam", "adversarial")
    careful_pairs = set(comparisons_from_order(order=careful.order))
    api_client.force_authenticate(admin_user)

    def split_pairs(rows):
        return {(r["chosen_id"], r["rejected_id"]) for r in rows if r["prompt_id"] == split.pk}

    unweighted = _export(api_client, world.project, export_format="pairs", consensus_only="true")
    weighted = _export(
        api_client,
        world.project,
        export_format="pairs",
        consensus_only="true",
        consensus_weighting="reliability",
    )
    assert split_pairs(unweighted) == set()  # one vote each way: no majority
    assert split_pairs(weighted) == careful_pairs
    assert len(weighted) > len(unweighted)

    rankings = _export(
        api_client,
        world.project,
        export_format="rankings",
        consensus_only="true",
        consensus_weighting="reliability",
    )
    record = next(r for r in rankings if r["prompt_id"] == split.pk)
    assert record["consensus_order"] == careful.order

    everyone = _export(api_client, world.project, export_format="pairs")
    reliable = _export(api_client, world.project, export_format="pairs", min_labeler_reliability="0.5")
    assert {r["labeler"] for r in everyone} == {*CAREFUL, "adam"}
    assert {r["labeler"] for r in reliable} == set(CAREFUL)
    assert len(reliable) == len([r for r in everyone if r["labeler"] != "adam"])

    url = f"/api/projects/{world.project.pk}/exports/stream"
    refused = [
        {"export_format": "pairs", "consensus_weighting": "reliability"},  # needs consensus_only
        {"export_format": "pairs", "consensus_only": "true", "consensus_weighting": "loudest"},
        {"export_format": "pairs", "min_labeler_reliability": "1.5"},
        {"export_format": "prompts", "min_labeler_reliability": "0.5"},
        {
            "export_format": "pairs",
            "consensus_only": "true",
            "consensus_weighting": "reliability",
            "margin": "true",
        },
    ]
    for query in refused:
        response = api_client.get(url, {"file_format": "jsonl", **query})
        assert response.status_code == 400, query

    # The dashboard's export form offers both and passes them on.
    client.force_login(admin_user)
    page = client.get(f"/dashboard/projects/{world.project.pk}/exports/").content.decode()
    assert 'name="consensus_weighting"' in page and 'name="min_labeler_reliability"' in page
    download = client.get(
        f"/dashboard/projects/{world.project.pk}/exports/download",
        {
            "export_format": "pairs",
            "file_format": "jsonl",
            "consensus_only": "on",
            "consensus_weighting": "reliability",
            "min_labeler_reliability": "0.1",
        },
    )
    assert download.status_code == 200
    rows = [json.loads(line) for line in b"".join(download.streaming_content).splitlines()]
    # adam is dropped before the consensus: carla alone decides the split prompt.
    assert split_pairs(rows) == careful_pairs


def test_the_job_is_scheduled_by_beat_on_the_default_queue():
    from config.celery import app

    assert any(e["task"] == "annotation.labeler_signals_review" for e in app.conf.beat_schedule.values())
    assert app.conf.task_routes["annotation.labeler_signals_review"] == {"queue": "default"}
    assert "annotation.labeler_signals_review" in app.tasks
