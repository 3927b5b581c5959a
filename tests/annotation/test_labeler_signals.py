"""Bias and spam signals, pure (no database): each fires on data built to trigger it and not on clean data.

Clean labelers rank by a true order with a little noise; candidates are shown in a fresh random order
per ranking, as the queue shows them; times vary around the same median.
"""

from __future__ import annotations

import random
from collections.abc import Hashable

from annotation.labeler_signals import (
    MIN_RANKINGS,
    RankingRecord,
    length_bias_signal,
    near_duplicate_pairs,
    near_duplicate_signals,
    position_bias_signal,
    project_median_seconds,
    ranking_signals,
    repeated_order_signal,
    speed_signal,
)

K = 4
TRUTH_LENGTHS = (300, 120, 480, 60)  # the best answer is not always the longest


def project_rankings(
    *, labelers: int = 8, prompts: int = 40, seed: int = 1
) -> tuple[list[RankingRecord], dict]:
    """Honest rankings: truth = candidate order within a prompt, a swap of two neighbours now and then."""
    rng = random.Random(seed)
    records, lengths = [], {}
    for prompt in range(prompts):
        truth = [prompt * K + i for i in range(K)]
        lengths.update({cid: TRUTH_LENGTHS[(i + prompt) % K] for i, cid in enumerate(truth)})
        for labeler in rng.sample(range(labelers), 5):
            order = list(truth)
            if rng.random() < 0.4:
                i = rng.randrange(K - 1)
                order[i], order[i + 1] = order[i + 1], order[i]
            shown = rng.sample(truth, K)
            records.append(
                RankingRecord(
                    f"honest{labeler}", prompt, [[c] for c in order], shown, 60 * rng.uniform(0.6, 1.6)
                )
            )
    return records, lengths


def replace_labeler(
    records: list[RankingRecord], labeler: str, make_order, seconds: float | None = None
) -> list:
    """The same tasks, `labeler`'s rankings redone by make_order(record) (and with other times)."""
    return [
        RankingRecord(
            r.labeler_id, r.prompt_id, make_order(r), r.shown_order, seconds if seconds else r.seconds
        )
        if r.labeler_id == labeler
        else r
        for r in records
    ]


def fired(records: list[RankingRecord], lengths: dict) -> dict[str, set[Hashable]]:
    signals = ranking_signals(rankings=records, candidate_lengths=lengths)
    names = {name for by_name in signals.values() for name in by_name}
    return {name: {lab for lab, by_name in signals.items() if by_name[name].fires} for name in names}


def test_no_ranking_signal_fires_on_clean_data():
    records, lengths = project_rankings()
    assert fired(records, lengths) == {
        name: set() for name in ("position_bias", "repeated_order", "speed", "length_bias")
    }


def test_position_bias_fires_on_a_labeler_who_keeps_the_shown_order():
    records, lengths = project_rankings()
    biased = replace_labeler(records, "honest3", lambda r: [[c] for c in r.shown_order])
    mine = [r for r in biased if r.labeler_id == "honest3"]

    signal = position_bias_signal(rankings=mine)
    assert (
        signal.fires
        and signal.value == 1.0
        and signal.samples == len(mine)
        and "shown position" in signal.reason
    )
    assert fired(biased, lengths)["position_bias"] == {"honest3"}
    # Reversing the shown order is the same habit.
    assert position_bias_signal(
        rankings=[RankingRecord(r.labeler_id, r.prompt_id, r.order[::-1], r.shown_order) for r in mine]
    ).fires
    # Too few rankings to judge, and rankings without a recorded shown order, never fire.
    assert not position_bias_signal(rankings=mine[: MIN_RANKINGS - 1]).fires
    unknown = position_bias_signal(rankings=[RankingRecord("x", 1, r.order) for r in mine])
    assert not unknown.fires and unknown.value is None and unknown.samples == 0


def test_repeated_order_fires_on_the_same_clicks_even_without_position_bias():
    records, lengths = project_rankings()
    # Ranks by shown position (1, 3, 0, 2): Kendall's tau against the shown order is exactly 0.
    pattern = (1, 3, 0, 2)

    def same_clicks(r: RankingRecord) -> list[list[int]]:
        return [[r.shown_order[pattern.index(rank)]] for rank in range(K)]

    repeating = replace_labeler(records, "honest5", same_clicks)
    mine = [r for r in repeating if r.labeler_id == "honest5"]
    signal = repeated_order_signal(rankings=mine)

    assert signal.fires and signal.value == 1.0 and "[1, 3, 0, 2]" in signal.reason
    assert position_bias_signal(rankings=mine).value == 0.0
    assert fired(repeating, lengths)["repeated_order"] == {"honest5"}
    assert fired(repeating, lengths)["position_bias"] == set()


def test_speed_fires_on_a_labeler_far_below_the_project_median():
    records, lengths = project_rankings()
    hasty = replace_labeler(records, "honest2", lambda r: r.order, seconds=8.0)
    assert fired(hasty, lengths)["speed"] == {"honest2"}

    # The project median is the median of labelers' medians: a prolific fast labeler cannot move it.
    assert project_median_seconds(seconds_by_labeler={"a": [60, 70], "b": [50], "fast": [5] * 100}) == 50
    signal = speed_signal(seconds=[10, 12, 9, 11, 10], project_median=60)
    assert signal.fires and abs(signal.value - 10 / 60) < 1e-9
    assert not speed_signal(seconds=[10, 12, 9, 11], project_median=60).fires  # fewer than the minimum tasks
    assert not speed_signal(seconds=[40, 50, 45, 55, 60], project_median=60).fires
    assert not speed_signal(seconds=[], project_median=None).fires


def test_length_bias_fires_on_a_labeler_who_always_prefers_the_longer_answer():
    records, lengths = project_rankings()
    longest_first = replace_labeler(
        records, "honest4", lambda r: [[c] for c in sorted(r.shown_order, key=lambda c: -lengths[c])]
    )
    assert fired(longest_first, lengths)["length_bias"] == {"honest4"}
    shortest_first = replace_labeler(
        records, "honest4", lambda r: [[c] for c in sorted(r.shown_order, key=lambda c: lengths[c])]
    )
    assert fired(shortest_first, lengths)["length_bias"] == {"honest4"}

    # Measured against the project: if everyone prefers longer answers, preferring them is no bias.
    mine = [r for r in longest_first if r.labeler_id == "honest4"]
    assert length_bias_signal(rankings=mine, candidate_lengths=lengths, project_longer_share=0.5).fires
    assert not length_bias_signal(rankings=mine, candidate_lengths=lengths, project_longer_share=0.95).fires


ANSWERS = [
    "Water the plant once a week and keep it near a bright window, but out of direct afternoon sun.",
    "A budget starts with what comes in each month; list fixed costs first, then set aside savings.",
    "The French Revolution began in 1789, driven by debt, bread prices and Enlightenment ideas.",
    "To boil an egg, cover it with cold water, bring it to a boil, then simmer for nine minutes.",
    "Stretch before running, start slowly, and add no more than ten percent distance each week.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in the chloroplasts.",
]


def test_near_duplicates_fire_on_the_copier_and_own_repeats_not_on_the_copied():
    honest = [(f"h{i}", f"writer{i % 3}", text) for i, text in enumerate(ANSWERS)]
    copied = [
        ("c1", "copier", ANSWERS[0].replace("once a week", "once a week or so")),
        ("c2", "copier", "Sure! " + ANSWERS[3]),
        ("c3", "copier", ANSWERS[4].replace("Stretch", "Always stretch")),
        ("c4", "copier", "Sure! " + ANSWERS[3] + " Enjoy."),  # their own c2 again, and h3 again
    ]
    signals = near_duplicate_signals(demonstrations=honest + copied, min_demonstrations=2)

    assert signals["copier"].fires and signals["copier"].value == 1.0
    assert signals["copier"].details == {"own": 1, "others": 4}
    assert not any(signals[f"writer{i}"].fires or signals[f"writer{i}"].value for i in range(3))

    repeater = [
        ("r1", "lazy", ANSWERS[1]),
        ("r2", "lazy", ANSWERS[1] + " Thanks."),
        ("r3", "lazy", ANSWERS[1]),
    ]
    assert near_duplicate_signals(demonstrations=repeater)["lazy"].fires
    assert not near_duplicate_signals(demonstrations=repeater[:2])["lazy"].fires  # below the minimum count


def test_near_duplicate_pairs_finds_light_edits_and_nothing_between_different_texts():
    rng = random.Random(4)
    words = [
        "the",
        "a",
        "plant",
        "water",
        "light",
        "budget",
        "month",
        "egg",
        "boil",
        "run",
        "week",
        "sugar",
        "oxygen",
        "river",
        "city",
        "music",
    ]
    texts = {i: " ".join(rng.choice(words) for _ in range(60)) for i in range(200)}
    for i in range(0, 40, 2):  # every other text of the first 40 is copied with one word changed
        copy = texts[i].split()
        copy[rng.randrange(len(copy))] = "zebra"
        texts[1000 + i] = " ".join(copy)

    found = {(a, b) for a, b, _ in near_duplicate_pairs(texts=texts)}

    assert found == {(i, 1000 + i) for i in range(0, 40, 2)}
