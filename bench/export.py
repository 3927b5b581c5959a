"""Benchmark: the preference-pairs export against PostgreSQL's own COPY of the same rows.

    .venv/bin/python bench/export.py --rows 1000000 --json var/bench-export.json
    .venv/bin/python bench/export.py --small --json OUT   # seconds; what `make test` runs

Seeds N comparisons (K=4, two labelers: 12 comparisons per prompt) into its own database on
127.0.0.1 with set-based SQL (generate_series), then, each in a fresh process so peak memory is its
own, streams:
- the floor: `COPY (SELECT <the export's columns, joined>) TO STDOUT`, i.e. the same rows with the same
  texts in whatever order PostgreSQL finds cheapest; for reference also the same COPY in the export's
  order (prompt, id), which makes PostgreSQL sort the joined texts, and COPY of the bare comparison table;
- the app's `pairs` export through export_stream (JSONL, and Parquet for reference), bytes discarded;
- the export matrix's other paths, JSONL (MATRIX below): implicit-prompt conversational pairs, pairs
  derived from the rankings under options (adjacent tiers, ties kept, margin, a test split), KTO from
  rankings and from ratings, prompt-only rows.
Goal: rows/s within 3x of the joined COPY, and peak RSS under 300 MB. For the matrix, whose rows are
not the comparisons (KTO gives 4 rows per prompt, prompt-only 1), the same goal in time: each export
of the project within 3x of the COPY's seconds, under 300 MB. Prints a table, writes JSON with
rows_per_s, copy_rows_per_s and peak_rss_mb (the JSONL export's) and `matrix`.

--small seeds a couple of hundred rows into a database of its own (the default name plus `_small`),
runs each phase once and drops that database: a check that the benchmark still runs end to end,
not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/rlhf_bench_export"
PROJECT_NAME = "bench-export"
PAIRS_PER_PROMPT = 12  # K=4 -> 6 pairs per ranking, two rankings

COPY_JOINED = """
COPY (
  SELECT p.turns, b.text, w.text, c.prompt_id, c.better_id, c.worse_id, c.ranking_id, u.username, c.created_at
  FROM annotation_comparison c
  JOIN annotation_prompt p ON p.id = c.prompt_id
  JOIN annotation_candidate b ON b.id = c.better_id
  JOIN annotation_candidate w ON w.id = c.worse_id
  LEFT JOIN auth_user u ON u.id = c.labeler_id
  WHERE p.project_id = {project_id}{order}
) TO STDOUT
"""
COPY_BARE = "COPY (SELECT * FROM annotation_comparison ORDER BY prompt_id, id) TO STDOUT"


def django_setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DEBUG"] = "false"  # no query log kept in memory
    os.environ.setdefault("SECRET_KEY", "bench")
    os.environ.setdefault("ALLOWED_HOSTS", "localhost")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def database_ensure(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def insert_select(cursor, model, *, values: dict[str, str], source: str, params: dict[str, Any]) -> None:
    """`INSERT INTO <model's table> (...) SELECT <values> <source>`, one statement.

    `values` maps column names to SQL expressions over `source` (named placeholders: %(name)s from
    `params`). Every other NOT NULL column gets what the ORM would store, the field's default (now()
    for auto_now_add), so a column added to the model later is filled rather than failing the seed;
    a NOT NULL column with no default stops the benchmark naming it.
    """
    from django.db import connection

    columns, expressions, params = list(values), list(values.values()), dict(params)
    for field in model._meta.concrete_fields:
        if field.column in values or field.primary_key or field.null:
            continue
        columns.append(field.column)
        if getattr(field, "auto_now_add", False) or getattr(field, "auto_now", False):
            expressions.append("now()")
            continue
        default = field.get_default()
        if default is None:
            raise SystemExit(
                f"bench/export.py: {model._meta.db_table}.{field.column} is NOT NULL without a default: "
                "give it a value in seed()"
            )
        name = f"default_{field.column}"
        params[name] = field.get_db_prep_save(default, connection)
        expressions.append(f"CAST(%({name})s AS {field.db_type(connection)})")
    unknown = set(values) - {field.column for field in model._meta.concrete_fields}
    if unknown:
        raise SystemExit(
            f"bench/export.py: {model._meta.db_table} has no column {', '.join(sorted(unknown))}"
        )
    quoted = ", ".join(connection.ops.quote_name(column) for column in columns)
    cursor.execute(
        f"INSERT INTO {model._meta.db_table} ({quoted})\nSELECT {', '.join(expressions)}\n{source}", params
    )


def database_drop(url: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(rows: int) -> tuple[int, int]:
    """Make sure the bench project holds rows // 12 prompts' worth of comparisons; returns (project id, rows).

    Set-based SQL, one statement per execute(): the settings bind parameters on the server
    (DATABASE_PREPARE_THRESHOLD), and a prepared statement holds exactly one command.
    """
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction

    from annotation.models import Candidate, Comparison, Project, Prompt, Ranking, RankingItem

    call_command("migrate", verbosity=0)
    prompts = max(1, rows // PAIRS_PER_PROMPT)
    project = Project.objects.filter(name=PROJECT_NAME).first()
    if (
        project
        and Comparison.objects.filter(prompt__project=project).count() == prompts * PAIRS_PER_PROMPT
        and RankingItem.objects.filter(ranking__prompt__project=project).count() == prompts * 8
    ):
        return project.pk, prompts * PAIRS_PER_PROMPT
    if project:
        project.delete()
    users = get_user_model().objects
    first = users.get_or_create(username="bench-alice")[0]
    second = users.get_or_create(username="bench-bob")[0]
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        project = Project.objects.create(name=PROJECT_NAME, k=4, rankings_per_prompt=2)
        ids = {"project_id": project.pk, "prompts": prompts, "first": first.pk, "second": second.pk}
        insert_select(
            cursor,
            Prompt,
            values={
                "project_id": "%(project_id)s",
                "turns": "jsonb_build_array(jsonb_build_object('role', 'user', 'content', "
                "'Question ' || g || ': ' || repeat('what would a careful assistant say here? ', 3)))",
                "content_hash": "md5('bench-prompt-' || g)",
                "source": "'bench'",
                "created_at": "now()",
                # Both rankings below are labelers': the counts the queue keeps say so.
                "rankings_done": "2",
            },
            source="FROM generate_series(1, %(prompts)s) AS g",
            params=ids,
        )
        insert_select(
            cursor,
            Candidate,
            values={
                "prompt_id": "p.id",
                "text": "'Answer ' || n || ' to prompt ' || p.id || '. ' || repeat('A plain, \"quoted\" sentence. ', 9)",
                "content_hash": "md5('bench-candidate-' || p.id || '-' || n)",
                "source": "'model'",
                "backend": "'embedded'",
                "model_name": "'bench-model'",
                "sampling_params": "'{\"temperature\": 0.9}'::jsonb",
                "seed": "n",
                "created_at": "now()",
            },
            source="FROM annotation_prompt p CROSS JOIN generate_series(0, 3) AS n WHERE p.project_id = %(project_id)s",
            params=ids,
        )
        # Labeler one ranks by candidate id; labeler two swaps the top two.
        for statement in (
            """
            CREATE TEMP TABLE bench_c ON COMMIT DROP AS
            SELECT id, prompt_id, (row_number() OVER (PARTITION BY prompt_id ORDER BY id) - 1) AS n
            FROM annotation_candidate
            WHERE prompt_id IN (SELECT id FROM annotation_prompt WHERE project_id = %(project_id)s)
            """,
            "CREATE INDEX ON bench_c (prompt_id)",
            """
            CREATE TEMP TABLE bench_pos ON COMMIT DROP AS
            SELECT c.id, c.prompt_id, l.labeler_id,
                   CASE WHEN l.swap AND c.n = 0 THEN 1 WHEN l.swap AND c.n = 1 THEN 0 ELSE c.n END AS pos
            FROM bench_c c
            CROSS JOIN (VALUES (%(first)s::bigint, false), (%(second)s::bigint, true)) AS l(labeler_id, swap)
            """,
            "CREATE INDEX ON bench_pos (prompt_id, labeler_id)",
        ):
            cursor.execute(statement, ids if "%(" in statement else None)
        insert_select(
            cursor,
            Ranking,
            values={
                "prompt_id": "prompt_id",
                "labeler_id": "labeler_id",
                "source": "'labeler'",
                "order": "jsonb_agg(jsonb_build_array(id) ORDER BY pos)",
                "seconds_spent": "30",
                "created_at": "now()",
            },
            source="FROM bench_pos GROUP BY prompt_id, labeler_id",
            params={},
        )
        # Each ranked answer's item: its tie group and a rating that follows it (7, 6, 5, 4).
        insert_select(
            cursor,
            RankingItem,
            values={
                "ranking_id": "r.id",
                "candidate_id": "a.id",
                "rank": "a.pos",
                "rating": "7 - a.pos",
                "flags": "'[]'::jsonb",
            },
            source="""FROM annotation_ranking r
            JOIN bench_pos a ON a.prompt_id = r.prompt_id AND a.labeler_id = r.labeler_id
            WHERE r.prompt_id IN (SELECT id FROM annotation_prompt WHERE project_id = %(project_id)s)""",
            params=ids,
        )
        insert_select(
            cursor,
            Comparison,
            values={
                "ranking_id": "r.id",
                "prompt_id": "r.prompt_id",
                "labeler_id": "r.labeler_id",
                "better_id": "a.id",
                "worse_id": "b.id",
                "created_at": "r.created_at",
            },
            source="""FROM annotation_ranking r
            JOIN bench_pos a ON a.prompt_id = r.prompt_id AND a.labeler_id = r.labeler_id
            JOIN bench_pos b ON b.prompt_id = r.prompt_id AND b.labeler_id = r.labeler_id AND a.pos < b.pos
            WHERE r.prompt_id IN (SELECT id FROM annotation_prompt WHERE project_id = %(project_id)s)
            ORDER BY r.id, a.pos, b.pos""",
            params=ids,
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    count = Comparison.objects.filter(prompt__project_id=project.pk).count()
    print(f"seeded {count:,} comparisons in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return project.pk, count


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def phase_copy(project_id: int, variant: str) -> dict:
    from django.db import connection

    connection.ensure_connection()
    raw = connection.connection
    if variant == "bare":
        sql = COPY_BARE
    else:
        order = "\n  ORDER BY c.prompt_id, c.id" if variant == "ordered" else ""
        sql = COPY_JOINED.format(project_id=int(project_id), order=order)
    started = time.perf_counter()
    size = lines = 0
    with raw.cursor() as cursor, cursor.copy(sql) as copy:
        for block in copy:
            size += len(block)
            lines += bytes(block).count(b"\n")
    seconds = time.perf_counter() - started
    return {"rows": lines, "seconds": seconds, "bytes": size, "peak_rss_mb": peak_rss_mb()}


# The matrix's phases: (result key, label, export format, filters and options).
MATRIX = [
    ("export_pairs_implicit_conversational", "implicit conversational", "pairs_implicit_conversational", {}),
    (
        "export_pairs_derived",
        "pairs adjacent+ties+margin+split",
        "pairs",
        {"pair_policy": "adjacent", "tie_policy": "keep", "margin": True, "test_fraction": 0.1},
    ),
    ("export_kto_rankings", "KTO from rankings", "kto", {}),
    ("export_kto_ratings", "KTO from ratings", "kto", {"kto_from": "ratings"}),
    ("export_prompt_only", "prompt-only", "prompt_only", {}),
]


def phase_export(
    project_id: int, file_format: str, export_format: str = "pairs", filters: str = "{}"
) -> dict:
    from annotation.models import Project
    from annotation.services.exports import export_request_validate, export_stream

    request = export_request_validate(
        project=Project.objects.get(pk=project_id),
        export_format=export_format,
        file_format=file_format,
        filters=json.loads(filters),
    )
    rows = [0]

    def progress(written: int, _read: int) -> None:
        rows[0] = written

    started = time.perf_counter()
    size = 0
    for chunk in export_stream(request=request, on_progress=progress):
        size += len(chunk)
    seconds = time.perf_counter() - started
    return {"rows": rows[0], "seconds": seconds, "bytes": size, "peak_rss_mb": peak_rss_mb()}


REPEAT = 2
# --small: enough rows for every phase to have some (two batches' worth is not needed to run end to end).
SMALL = {"rows": 200, "repeat": 1, "drop_db": True}


def run_phase(url: str, project_id: int, *args: str) -> dict:
    """Run a phase REPEAT times, each in a fresh process; keep the fastest (the least disturbed by
    whatever else the machine was doing) and the highest peak memory."""
    runs = []
    for _ in range(REPEAT):
        output = subprocess.run(
            [
                sys.executable,
                __file__,
                "--database-url",
                url,
                "--phase",
                *args,
                "--project-id",
                str(project_id),
            ],
            capture_output=True,
            text=True,
        )
        if output.returncode:  # say why: a bare CalledProcessError would hide the phase's traceback
            raise SystemExit(f"phase {' '.join(args)} failed ({output.returncode}):\n{output.stderr}")
        runs.append(json.loads(output.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda run: run["seconds"])
    best["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs)
    best["all_seconds"] = [round(run["seconds"], 3) for run in runs]
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="comparisons to seed (default 1,000,000)")
    parser.add_argument("--json", dest="json_out", help="write the results here")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--project-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--skip-parquet", action="store_true", help="only the JSONL export")
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs per phase; the fastest is kept (default 2)"
    )
    parser.add_argument("--drop-db", action="store_true", help="drop the benchmark database afterwards")
    parser.add_argument(
        "--small",
        action="store_true",
        help=f"a smoke run in seconds ({SMALL['rows']} rows, one run per phase, its own database, "
        "dropped afterwards), as `make test` runs it: it must run, its speed is not judged",
    )
    args = parser.parse_args()
    if args.small:  # the small sizes become the defaults; options given on the command line still win
        parser.set_defaults(**SMALL, database_url=parser.get_default("database_url") + "_small")
        args = parser.parse_args()
    if not args.database_url.startswith("postgres"):
        parser.error("--database-url must be a PostgreSQL URL")

    if args.phase:
        django_setup(args.database_url)
        kind, *rest = args.phase
        if kind == "baseline":
            result = {"rows": 0, "seconds": 0.0, "bytes": 0, "peak_rss_mb": peak_rss_mb()}
        elif kind == "copy":
            result = phase_copy(args.project_id, rest[0])
        else:
            result = phase_export(args.project_id, *rest)
        print(json.dumps(result))
        return

    if args.rows < PAIRS_PER_PROMPT:
        parser.error(f"--rows must be at least {PAIRS_PER_PROMPT}")
    global REPEAT
    REPEAT = max(1, args.repeat)
    database_ensure(args.database_url)
    django_setup(args.database_url)
    try:
        summary = measure(args)
    finally:
        if args.drop_db:
            database_drop(args.database_url)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.json_out}")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Seed, run every phase, print the table; returns the summary the JSON holds."""
    project_id, rows = seed(args.rows)

    results = {
        "django_baseline": run_phase(args.database_url, project_id, "baseline"),
        "copy_joined": run_phase(args.database_url, project_id, "copy", "joined"),
        "copy_joined_ordered": run_phase(args.database_url, project_id, "copy", "ordered"),
        "copy_bare": run_phase(args.database_url, project_id, "copy", "bare"),
        "export_jsonl": run_phase(args.database_url, project_id, "export", "jsonl"),
    }
    if not args.skip_parquet:
        results["export_parquet"] = run_phase(args.database_url, project_id, "export", "parquet")
    for key, _label, export_format, filters in MATRIX:
        results[key] = run_phase(
            args.database_url, project_id, "export", "jsonl", export_format, json.dumps(filters)
        )
    for result in results.values():
        result["rows_per_s"] = result["rows"] / result["seconds"] if result["seconds"] else 0.0

    export = results["export_jsonl"]
    floor = results["copy_joined"]
    summary = {
        "rows": rows,
        "rows_per_s": export["rows_per_s"],
        "copy_rows_per_s": floor["rows_per_s"],
        "copy_ordered_rows_per_s": results["copy_joined_ordered"]["rows_per_s"],
        "copy_bare_rows_per_s": results["copy_bare"]["rows_per_s"],
        "slowdown_vs_copy": floor["rows_per_s"] / export["rows_per_s"] if export["rows_per_s"] else None,
        "peak_rss_mb": export["peak_rss_mb"],
        # What django.setup() alone costs in this process (the apps' imports), before any export work.
        "baseline_rss_mb": results["django_baseline"]["peak_rss_mb"],
        "export_rss_over_baseline_mb": export["peak_rss_mb"] - results["django_baseline"]["peak_rss_mb"],
        "goal": {"slowdown_vs_copy_max": 3.0, "peak_rss_mb_max": 300},
        "small": args.small,
        "repeat": REPEAT,
        "load_average_at_end": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "phases": results,
    }
    summary["goal_met"] = bool(
        summary["slowdown_vs_copy"] is not None
        and summary["slowdown_vs_copy"] <= 3.0
        and export["peak_rss_mb"] < 300
    )
    summary["matrix"] = {
        key: {
            "rows": results[key]["rows"],
            "seconds_vs_copy": results[key]["seconds"] / floor["seconds"] if floor["seconds"] else None,
            "peak_rss_mb": results[key]["peak_rss_mb"],
        }
        for key, *_rest in MATRIX
    }
    summary["matrix_goal_met"] = all(
        phase["seconds_vs_copy"] is not None
        and phase["seconds_vs_copy"] <= 3.0
        and phase["peak_rss_mb"] < 300
        for phase in summary["matrix"].values()
    )

    print(f"\nPairs export of {rows:,} comparisons (PostgreSQL, {args.database_url.rsplit('/', 1)[1]})")
    print(f"{'phase':<44}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'MB out':>10}{'peak RSS MB':>13}")
    labels = {
        "django_baseline": "django.setup() only (baseline)",
        "copy_joined": "COPY of the same rows (floor)",
        "copy_joined_ordered": "COPY, same rows in export order",
        "copy_bare": "COPY of the bare comparison table",
        "export_jsonl": "app export, pairs JSONL",
        "export_parquet": "app export, pairs Parquet",
        **{key: f"app export, {label}" for key, label, *_rest in MATRIX},
    }
    for key, result in results.items():
        if not result["rows"] and key != "django_baseline":
            continue
        print(
            f"{labels[key]:<44}{result['rows']:>12,}{result['seconds']:>10.2f}{result['rows_per_s']:>12,.0f}"
            f"{result['bytes'] / 1e6:>10.1f}{result['peak_rss_mb']:>13.1f}"
        )
    print(
        f"\nslowdown vs COPY: {summary['slowdown_vs_copy']:.2f}x (goal <= 3x); "
        f"peak RSS {export['peak_rss_mb']:.0f} MB (goal < 300 MB), of which {summary['baseline_rss_mb']:.0f} MB "
        f"is django.setup() alone: {'met' if summary['goal_met'] else 'NOT met'}"
        + (" (small mode: a smoke run, speed not judged)" if args.small else "")
    )
    slowest = max(summary["matrix"].items(), key=lambda item: item[1]["seconds_vs_copy"] or 0.0)
    print(
        f"matrix: slowest {slowest[0]} at {slowest[1]['seconds_vs_copy']:.2f}x the COPY's time, highest peak RSS "
        f"{max(p['peak_rss_mb'] for p in summary['matrix'].values()):.0f} MB (goal <= 3x, < 300 MB): "
        f"{'met' if summary['matrix_goal_met'] else 'NOT met'}"
    )
    return summary


if __name__ == "__main__":
    main()
