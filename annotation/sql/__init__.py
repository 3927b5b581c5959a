"""The app's hand-written SQL, in one place: only what the ORM cannot say or a benchmark showed it needs.

Everything else reads and writes through the ORM. What is here, and why:

`annotation.sql.queue`: the lease. The ORM cannot say the first two.
- `prompt_next_locked`: the fast paths to the next prompt a labeler may take. Each is one
  `SELECT ... FOR UPDATE OF p SKIP LOCKED ... LIMIT 1`. Its conditions repeat the partial indexes'
  own predicates as literals (`rankings_done = 0`, the live-lease condition), so that PostgreSQL walks
  those indexes instead of every prompt already worked on. Its EXISTS clauses carry `LIMIT 1 OFFSET 0`
  so that they stay per-row filters and are not flattened into joins.
  These statements must serve exactly the prompts of the queue's specification,
  `annotation.selectors.queue.prompts_needing_work`, in its order. tests/annotation/test_queue_spec.py
  checks that on generated queue states, on PostgreSQL and SQLite. The specification stays the
  lease's last resort: it counts rows, so it is right even when a prompt's done counts are off.
- `prompt_for_lease`: the slot re-count, conversation, candidate ids and carried draft of the prompt
  the lease holds locked, in one round trip while other leases of that prompt wait on the lock.
  `slots_taken` is the same re-count for a late submission.
- `projects_for_labeler_list`: the projects a lease looks in. The rule is
  `annotation.permissions.projects_for_labeler`; tests/annotation/test_visibility.py checks that
  the two agree on generated memberships, roles, closed projects and staff.
- `labeler_leases_locked`: the labeler's row lock and the leases they already hold.
- `prompt_done_count_add`: one more piece of work on a prompt's done count.

`annotation.sql.requests`: what every other labeler request runs.
- `token_user`: the API token and its user, on every API request.
- `assignment_for_labeler`: the labeler's assignment with its project and prompt, on every submit,
  draft save and skip.
- `submission_conflicts`: the checks a submission makes before it writes (still a member, the
  idempotency key unused elsewhere, no work of theirs on the prompt yet), in one round trip.
- `ranking_children_insert`: a ranking's items and comparisons, one multi-row INSERT each.
- `assignment_submitted_update`: the one-row update that marks a task submitted.
- `candidate_texts`: the texts of the candidates a rank task shows, and whether each was cut off.

Why these and not the ORM: each was measured with bench/queue_load.py, which compares lease
latency and server CPU per request. Building and compiling an ORM query costs several times the
CPU of running it, and a lease-and-submit cycle runs a dozen; written with the ORM, these pushed the
lease p99 well past the benchmark's budget. Re-measure before moving one back.

`annotation.sql.rows`: rows read by hand come back as ordinary model instances (`model_reader`), with
the same columns and database converters (JSON decoding, datetimes on SQLite) as the ORM's, so no
caller can tell them apart; `rows_insert` prepares values with the fields' own `get_db_prep_save`.
"""
