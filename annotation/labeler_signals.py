"""Bias and spam signals per labeler. Pure: no Django, no database.

Each signal is a number, how many observations it rests on, and whether it fires against a
threshold the caller passes (a project setting; the defaults below say why they are what they are).
A signal never fires on fewer observations than its minimum: a handful of tasks proves nothing.

Inputs are plain rows the service layer reads in one query each:
- RankingRecord: Ranking.labeler_id, prompt_id, order, seconds_spent, with Assignment.shown_order.
- candidate lengths: Candidate.id -> len(Candidate.text).
- demonstrations: (Demonstration.id, labeler_id, text).
"""

from __future__ import annotations

import re
import statistics
import zlib
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from annotation.ranking_math import comparisons_from_order, kendall_tau_b, rank_map

# Mean Kendall tau between shown position and given rank. Shown orders are shuffled per assignment,
# so a careful labeler averages 0; one who mostly keeps the shown order is near 1 (or -1 reversed).
# 0.5 is more than three standard errors from 0 once MIN_RANKINGS K=4 rankings are in.
POSITION_BIAS_THRESHOLD = 0.5
# Share of rankings with the labeler's most frequent pattern of ranks over shown positions. With
# K=4 there are 24 strict patterns and shuffled candidates, so an honest labeler's top pattern holds a
# small share; half their rankings on one pattern is a fixed answer.
REPEATED_ORDER_THRESHOLD = 0.5
# Ratio of the labeler's median seconds per task to the project's: under a third of the usual time
# leaves no time to read K answers.
SPEED_RATIO_THRESHOLD = 0.35
# Preference for the longer answer minus the project's: 25 points is a habit, not a taste.
LENGTH_BIAS_THRESHOLD = 0.25
# Share of a labeler's demonstrations that near-duplicate another (theirs or anyone's). One generic
# refusal written twice is fine; a third of everything is copy-paste.
DUPLICATE_SHARE_THRESHOLD = 0.3
# Character-shingle Jaccard at which two demonstrations count as the same text lightly edited.
NEAR_DUPLICATE_SIMILARITY = 0.8
MIN_RANKINGS = 10  # position, repeated order: ten rankings before judging a habit
MIN_PAIRS = 60  # length bias: about ten K=4 rankings' worth of pairs of unequal length
MIN_TASKS = 5  # speed: a median of five tasks
MIN_DEMONSTRATIONS = 3  # near-duplicates
SHINGLE_CHARS = 5  # word-fragment shingles: robust to a changed word, sensitive to different text
MINHASH_BANDS, MINHASH_ROWS = 8, 4  # 32 hashes; pairs at Jaccard 0.8 become candidates 98.5 % of the time


@dataclass(frozen=True)
class RankingRecord:
    labeler_id: Hashable
    prompt_id: Hashable
    order: Sequence[Sequence[int]]  # tie groups, best first
    shown_order: Sequence[int] = ()  # candidate ids as shown; empty when unknown
    seconds: float | None = None


@dataclass(frozen=True)
class Signal:
    name: str
    value: float | None  # None: nothing to measure
    samples: int
    threshold: float
    fires: bool
    reason: str  # one line for the labeler stats page, filled whether it fires or not
    details: Mapping[str, Any] = field(default_factory=dict)


def _shown_positions(record: RankingRecord) -> dict[int, int] | None:
    ranked = {cid for group in record.order for cid in group}
    if not record.shown_order or set(record.shown_order) != ranked:
        return None
    return {cid: position for position, cid in enumerate(record.shown_order)}


def position_bias_signal(
    *,
    rankings: Sequence[RankingRecord],
    threshold: float = POSITION_BIAS_THRESHOLD,
    min_rankings: int = MIN_RANKINGS,
) -> Signal:
    """Mean Kendall tau-b between shown position and rank, over one labeler's rankings with a known
    shown order. Positive: the first shown is ranked best; fires on |mean| >= threshold."""
    taus = []
    for record in rankings:
        positions = _shown_positions(record)
        if positions is not None:
            tau = kendall_tau_b(positions, rank_map(record.order))
            if tau is not None:
                taus.append(tau)
    value = statistics.fmean(taus) if taus else None
    fires = value is not None and len(taus) >= min_rankings and abs(value) >= threshold
    return Signal(
        name="position_bias",
        value=value,
        samples=len(taus),
        threshold=threshold,
        fires=fires,
        reason=f"rank follows the shown position (mean tau {value:+.2f} over {len(taus)} rankings)"
        if value is not None
        else "no rankings with a recorded shown order",
    )


def repeated_order_signal(
    *,
    rankings: Sequence[RankingRecord],
    threshold: float = REPEATED_ORDER_THRESHOLD,
    min_rankings: int = MIN_RANKINGS,
) -> Signal:
    """Share of rankings whose pattern (rank group per shown position) is the labeler's most common
    one: the same clicks submitted again and again, whatever the answers."""
    patterns: Counter[tuple[int, ...]] = Counter()
    for record in rankings:
        if _shown_positions(record) is not None:
            ranks = rank_map(record.order)
            patterns[tuple(ranks[cid] for cid in record.shown_order)] += 1
    total = sum(patterns.values())
    top, top_count = patterns.most_common(1)[0] if patterns else ((), 0)
    value = top_count / total if total else None
    fires = value is not None and total >= min_rankings and value >= threshold
    return Signal(
        name="repeated_order",
        value=value,
        samples=total,
        threshold=threshold,
        fires=fires,
        reason=f"{top_count} of {total} rankings repeat the pattern {list(top)} over shown positions"
        if total
        else "no rankings with a recorded shown order",
    )


def longer_preferred(
    *, rankings: Iterable[RankingRecord], candidate_lengths: Mapping[int, int]
) -> tuple[int, int]:
    """(pairs where the longer answer was ranked better, pairs of unequal length compared)."""
    longer = compared = 0
    for record in rankings:
        for better, worse in comparisons_from_order(order=record.order):
            a, b = candidate_lengths.get(better), candidate_lengths.get(worse)
            if a is None or b is None or a == b:
                continue
            compared += 1
            longer += a > b
    return longer, compared


def length_bias_signal(
    *,
    rankings: Sequence[RankingRecord],
    candidate_lengths: Mapping[int, int],
    project_longer_share: float,
    threshold: float = LENGTH_BIAS_THRESHOLD,
    min_pairs: int = MIN_PAIRS,
) -> Signal:
    """How much more (or less) often this labeler prefers the longer answer than the project does.

    `project_longer_share`: longer_preferred over every labeler's rankings, as a share. Measured
    against the project because longer answers are often better: only the excess is a bias."""
    longer, compared = longer_preferred(rankings=rankings, candidate_lengths=candidate_lengths)
    value = longer / compared - project_longer_share if compared else None
    fires = value is not None and compared >= min_pairs and abs(value) >= threshold
    return Signal(
        name="length_bias",
        value=value,
        samples=compared,
        threshold=threshold,
        fires=fires,
        reason=f"prefers the longer answer in {longer}/{compared} pairs, project {project_longer_share:.0%}"
        if compared
        else "no compared pairs of unequal length",
    )


def project_median_seconds(*, seconds_by_labeler: Mapping[Hashable, Sequence[float]]) -> float | None:
    """Median of the labelers' median times: one prolific fast labeler cannot drag it down."""
    medians = [statistics.median(values) for values in seconds_by_labeler.values() if values]
    return statistics.median(medians) if medians else None


def speed_signal(
    *,
    seconds: Sequence[float],
    project_median: float | None,
    threshold: float = SPEED_RATIO_THRESHOLD,
    min_tasks: int = MIN_TASKS,
) -> Signal:
    """The labeler's median seconds per task over the project's; fires when below threshold."""
    usable = [s for s in seconds if s is not None and s >= 0]
    own = statistics.median(usable) if usable else None
    value = own / project_median if own is not None and project_median else None
    fires = value is not None and len(usable) >= min_tasks and value < threshold
    return Signal(
        name="speed",
        value=value,
        samples=len(usable),
        threshold=threshold,
        fires=fires,
        reason=f"median {own:.0f} s per task against the project's {project_median:.0f} s"
        if value is not None and own is not None and project_median
        else "no timed tasks",
    )


def _shingles(text: str) -> set[int]:
    normal = re.sub(r"\s+", " ", text.lower()).strip()
    if len(normal) <= SHINGLE_CHARS:
        return {zlib.crc32(normal.encode())}
    return {
        zlib.crc32(normal[i : i + SHINGLE_CHARS].encode()) for i in range(len(normal) - SHINGLE_CHARS + 1)
    }


# XOR with fixed 32-bit masks permutes the hash space: cheap MinHash without per-shingle arithmetic
# in Python. Only candidate generation uses it; every candidate pair is checked by exact Jaccard.
_MASKS = [zlib.crc32(f"minhash-{i}".encode()) for i in range(MINHASH_BANDS * MINHASH_ROWS)]


def near_duplicate_pairs(
    *, texts: Mapping[Hashable, str], similarity: float = NEAR_DUPLICATE_SIMILARITY
) -> list[tuple[Hashable, Hashable, float]]:
    """(id_a, id_b, Jaccard) for every pair of texts whose character-shingle Jaccard >= similarity,
    id_a before id_b in the order of `texts`.

    MinHash with banding proposes pairs (recall about 98 % at 0.8, more above), exact Jaccard decides.
    """
    ids = list(texts)
    sets = {key: _shingles(texts[key]) for key in ids}
    buckets: dict[tuple[int, tuple[int, ...]], list[int]] = defaultdict(list)
    for index, key in enumerate(ids):
        signature = [min(map(mask.__xor__, sets[key])) for mask in _MASKS]
        for band in range(MINHASH_BANDS):
            rows = tuple(signature[band * MINHASH_ROWS : (band + 1) * MINHASH_ROWS])
            buckets[(band, rows)].append(index)
    candidates = {
        (a, b) for members in buckets.values() for i, a in enumerate(members) for b in members[i + 1 :]
    }
    found = []
    for a, b in sorted(candidates):
        set_a, set_b = sets[ids[a]], sets[ids[b]]
        jaccard = len(set_a & set_b) / len(set_a | set_b)
        if jaccard >= similarity:
            found.append((ids[a], ids[b], jaccard))
    return found


def near_duplicate_signals(
    *,
    demonstrations: Iterable[tuple[Hashable, Hashable, str]],
    similarity: float = NEAR_DUPLICATE_SIMILARITY,
    threshold: float = DUPLICATE_SHARE_THRESHOLD,
    min_demonstrations: int = MIN_DEMONSTRATIONS,
) -> dict[Hashable, Signal]:
    """Per labeler, the share of their demonstrations that near-duplicate an earlier demonstration,
    their own or someone else's.

    `demonstrations`: (demonstration_id, labeler_id, text) in submission order (created_at, id). Only
    the later text of a near-duplicate pair counts, against its author: whoever was copied wrote first
    and is not to blame. The details count repeats of their own and of others' texts; one text can be both."""
    rows = list(demonstrations)
    author = {demo_id: labeler_id for demo_id, labeler_id, _ in rows}
    duplicated_own: set[Hashable] = set()
    duplicated_other: set[Hashable] = set()
    # near_duplicate_pairs keeps the input order within a pair: the second is the later one.
    for earlier, later, _ in near_duplicate_pairs(
        texts={d: text for d, _, text in rows}, similarity=similarity
    ):
        (duplicated_own if author[earlier] == author[later] else duplicated_other).add(later)
    by_labeler: dict[Hashable, list[Hashable]] = defaultdict(list)
    for demo_id, labeler_id, _ in rows:
        by_labeler[labeler_id].append(demo_id)
    signals = {}
    for labeler_id, demo_ids in by_labeler.items():
        own = sum(d in duplicated_own for d in demo_ids)
        other = sum(d in duplicated_other for d in demo_ids)
        any_duplicate = sum(d in duplicated_own or d in duplicated_other for d in demo_ids)
        value = any_duplicate / len(demo_ids)
        signals[labeler_id] = Signal(
            name="near_duplicates",
            value=value,
            samples=len(demo_ids),
            threshold=threshold,
            fires=len(demo_ids) >= min_demonstrations and value >= threshold,
            reason=f"{any_duplicate} of {len(demo_ids)} demonstrations near-duplicate an earlier one "
            f"({own} their own, {other} someone else's)",
            details={"own": own, "others": other},
        )
    return signals


@dataclass(frozen=True)
class RankingThresholds:
    """A project's thresholds for the ranking signals; the defaults are the module's."""

    position_bias: float = POSITION_BIAS_THRESHOLD
    repeated_order: float = REPEATED_ORDER_THRESHOLD
    speed_ratio: float = SPEED_RATIO_THRESHOLD
    length_bias: float = LENGTH_BIAS_THRESHOLD


def ranking_signals(
    *,
    rankings: Sequence[RankingRecord],
    candidate_lengths: Mapping[int, int],
    thresholds: RankingThresholds = RankingThresholds(),  # noqa: B008 (frozen, so one shared default is safe)
) -> dict[Hashable, dict[str, Signal]]:
    """Every ranking signal for every labeler of a project: labeler_id -> signal name -> Signal.

    `rankings`: the project's rankings (the baselines, project median time and longer-answer share,
    come from all of them). `candidate_lengths`: candidate id -> characters."""
    by_labeler: dict[Hashable, list[RankingRecord]] = defaultdict(list)
    for record in rankings:
        by_labeler[record.labeler_id].append(record)
    seconds = {
        labeler_id: [r.seconds for r in records if r.seconds is not None]
        for labeler_id, records in by_labeler.items()
    }
    median = project_median_seconds(seconds_by_labeler=seconds)
    longer, compared = longer_preferred(rankings=rankings, candidate_lengths=candidate_lengths)
    project_share = longer / compared if compared else 0.5
    result = {}
    for labeler_id, records in by_labeler.items():
        signals = [
            position_bias_signal(rankings=records, threshold=thresholds.position_bias),
            repeated_order_signal(rankings=records, threshold=thresholds.repeated_order),
            speed_signal(
                seconds=seconds[labeler_id], project_median=median, threshold=thresholds.speed_ratio
            ),
            length_bias_signal(
                rankings=records,
                candidate_lengths=candidate_lengths,
                project_longer_share=project_share,
                threshold=thresholds.length_bias,
            ),
        ]
        result[labeler_id] = {signal.name: signal for signal in signals}
    return result
