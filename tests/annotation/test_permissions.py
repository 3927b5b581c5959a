"""The permission matrix: every /api/ endpoint in the URLconf, every role.

Endpoints are enumerated from `get_resolver()`, so endpoints other apps add are covered too. Each one
belongs to an endpoint class, and each class has an explicit row of expected outcomes per role below.
The class comes from the view's project-role permission (annotation.permissions) when it uses one, or
from ENDPOINT_CLASS_BY_NAME; an endpoint in neither fails the test until someone says what it expects.

"ok" means the caller got past authorisation: any status other than 401, 403 or 404 (a 400 for an
empty body counts, a 409 for a state conflict counts) and never a 5xx.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.permissions import SAFE_METHODS
from rest_framework.test import APIClient

from annotation.models import Assignment, ExportJob, Membership, Project, PromptImportJob, Ranking
from annotation.models.projects import Role
from annotation.permissions import _ProjectRolePermission
from tests.annotation.export_data import ranked_prompt

ROLES = ["anonymous", "outsider", "labeler", "reviewer", "project_admin", "staff"]
OK = "ok"


def _anonymous_status() -> int:
    """DRF answers 401 when the first authentication class names a WWW-Authenticate scheme (token),
    403 when it is session authentication, which has none."""
    from rest_framework.settings import api_settings

    first = api_settings.DEFAULT_AUTHENTICATION_CLASSES[0]()
    return 401 if first.authenticate_header(None) else 403


ANONYMOUS = _anonymous_status()

# The expected outcome of each endpoint class for each role (None: anonymous).
EXPECTED: dict[str, dict[str, int | str]] = {
    # The OpenAPI schema and its browsable page are public documentation.
    "public_docs": dict.fromkeys(ROLES, OK),
    # Labeler API without an object: any signed-in user works on their own queue.
    "labeler_self": {
        "anonymous": ANONYMOUS,
        "outsider": OK,
        "labeler": OK,
        "reviewer": OK,
        "project_admin": OK,
        "staff": OK,
    },
    # Labeler API on one assignment: only its holder; to anyone else it does not exist.
    "labeler_own_assignment": {
        "anonymous": ANONYMOUS,
        "outsider": 404,
        "labeler": OK,
        "reviewer": 404,
        "project_admin": 404,
        "staff": 404,
    },
    # Reads open to reviewers and admins of the project (non-members: the project does not exist).
    "project_reviewer_read": {
        "anonymous": ANONYMOUS,
        "outsider": 404,
        "labeler": 403,
        "reviewer": OK,
        "project_admin": OK,
        "staff": OK,
    },
    # Writes in a project, and admin-only reads (exports): project admins and staff.
    "project_admin": {
        "anonymous": ANONYMOUS,
        "outsider": 404,
        "labeler": 403,
        "reviewer": 403,
        "project_admin": OK,
        "staff": OK,
    },
    # Reads open to every member (labelers included).
    "project_member": {
        "anonymous": ANONYMOUS,
        "outsider": 404,
        "labeler": OK,
        "reviewer": OK,
        "project_admin": OK,
        "staff": OK,
    },
}

# Endpoints whose view does not carry a project-role permission class, by URL name.
ENDPOINT_CLASS_BY_NAME: dict[str, str] = {
    "api-schema": "public_docs",
    "api-docs": "public_docs",
    "api-labeler-me": "labeler_self",
    "api-labeler-work": "labeler_self",
    "api-labeler-history": "labeler_self",
    "api-labeler-lease": "labeler_self",
    "api-labeler-assignment": "labeler_own_assignment",
    "api-labeler-draft": "labeler_own_assignment",
    "api-labeler-skip": "labeler_own_assignment",
    "api-labeler-demonstration-submit": "labeler_own_assignment",
    "api-labeler-ranking-submit": "labeler_own_assignment",
    "api-labeler-converse-open": "labeler_self",
    "api-labeler-live": "labeler_own_assignment",
    "api-labeler-live-stream": "labeler_own_assignment",
    "api-labeler-live-retry": "labeler_own_assignment",
    "api-labeler-turn-submit": "labeler_own_assignment",
    # Object-scoped views that check the object's project through permissions.project_for_role.
    "export-job-detail": "project_admin",
    "export-job-download": "project_admin",
    "export-job-card": "project_admin",
    "prompt-import-detail": "project_admin",
    "ranking-gold-set": "project_admin",
    # Triage: reviewers act as well as read.
    "project-triage": "project_reviewer_read",
    "ranking-exclude": "project_reviewer_read",
    "ranking-restore": "project_reviewer_read",
    "prompt-more-rankings": "project_reviewer_read",
    # Review and adjudication: reviewers act as well as read.
    "api-review-next": "project_reviewer_read",
    "api-review-decide": "project_reviewer_read",
    "api-adjudication-list": "project_reviewer_read",
    "api-adjudication-detail": "project_reviewer_read",
    # Lists only what the caller reviews (projects_for_role): anyone signed in, an outsider gets none.
    "reward-model-active-list": "labeler_self",
}

ROLE_CLASS = {
    Role.LABELER: "project_member",
    Role.REVIEWER: "project_reviewer_read",
    Role.ADMIN: "project_admin",
}


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def _view_class(pattern):
    callback = pattern.callback
    return getattr(callback, "view_class", None) or getattr(callback, "cls", None)


def _methods(view_class) -> list[str]:
    if view_class is None:
        return ["get"]
    return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)]


def endpoint_class(name: str, view_class, method: str) -> str | None:
    if name in ENDPOINT_CLASS_BY_NAME:
        return ENDPOINT_CLASS_BY_NAME[name]
    for permission in getattr(view_class, "permission_classes", []):
        if isinstance(permission, type) and issubclass(permission, _ProjectRolePermission):
            role = permission.read_role if method.upper() in SAFE_METHODS else permission.write_role
            return ROLE_CLASS[Role(role)]
    return None


API_ENDPOINTS = [
    (route, pattern.name, _view_class(pattern), method)
    for route, pattern in _walk(get_resolver().url_patterns)
    if route.startswith("api/")
    for method in _methods(_view_class(pattern))
]


def test_every_api_endpoint_has_an_expected_outcome_row():
    unknown = [
        f"{method.upper()} /{route} ({name})"
        for route, name, view_class, method in API_ENDPOINTS
        if endpoint_class(name, view_class, method) is None
    ]
    assert not unknown, "add these endpoints to ENDPOINT_CLASS_BY_NAME: " + ", ".join(unknown)
    assert len(API_ENDPOINTS) >= 15


@pytest.fixture
def world(db, django_user_model, settings, tmp_path):
    settings.EXPORT_DIR = tmp_path / "exports"
    users = {
        "outsider": django_user_model.objects.create_user("outsider"),
        "labeler": django_user_model.objects.create_user("labeler"),
        "reviewer": django_user_model.objects.create_user("reviewer"),
        "project_admin": django_user_model.objects.create_user("padmin"),
        "staff": django_user_model.objects.create_superuser("staff", "s@example.com", None),
    }
    project = Project.objects.create(name="Matrix", k=4, rankings_per_prompt=2)
    other = Project.objects.create(name="Elsewhere")
    Membership.objects.create(project=project, user=users["labeler"], role=Role.LABELER)
    Membership.objects.create(project=project, user=users["reviewer"], role=Role.REVIEWER)
    Membership.objects.create(project=project, user=users["project_admin"], role=Role.ADMIN)
    Membership.objects.create(project=other, user=users["outsider"], role=Role.ADMIN)
    prompt, candidates = ranked_prompt(project, 0, [users["reviewer"]], [[[0], [1], [2], [3]]])
    second, second_candidates = ranked_prompt(project, 1, [], [])
    now = timezone.now()
    assignment = Assignment.objects.create(
        project=project,
        prompt=second,
        labeler=users["labeler"],
        kind="rank",
        leased_at=now,
        expires_at=now + timedelta(hours=1),
        shown_order=[c.pk for c in second_candidates],
    )
    export_file = settings.EXPORT_DIR / "project-matrix" / "export.jsonl"
    export_file.parent.mkdir(parents=True, exist_ok=True)
    export_file.write_text("{}\n")
    (export_file.parent / "export.README.md").write_text("---\nlicense: other\n---\n")  # its dataset card
    job = ExportJob.objects.create(
        project=project,
        export_format="pairs",
        file_format="jsonl",
        status="succeeded",
        file_path=str(export_file),
    )
    ids = {
        "project_id": project.pk,
        "job_id": job.pk,
        "ranking_id": Ranking.objects.get(prompt=prompt).pk,
        "assignment_id": assignment.pk,
        "prompt_id": prompt.pk,
        "import_id": PromptImportJob.objects.create(project=project, filename="p.jsonl").pk,
        "user_id": users["labeler"].pk,  # a member whose gold standing an admin may lift
    }
    try:
        from rewards.models import RewardModel

        ids["reward_model_id"] = RewardModel.objects.create(
            project=project, trigger="admin", status="succeeded"
        ).pk
    except ImportError:  # the reward-model app is optional for this matrix
        pass
    return {"users": users, "ids": ids}


def _url(route: str, ids: dict[str, int]) -> str:
    import re

    def fill(match):
        name = match.group(2)
        if name not in ids:
            pytest.fail(
                f"no test object for URL parameter {name!r} in /{route}: add one to the world fixture"
            )
        return str(ids[name])

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, route)


@pytest.mark.parametrize(
    ("route", "name", "view_class", "method"),
    API_ENDPOINTS,
    ids=[f"{method.upper()} {name}" for _route, name, _view, method in API_ENDPOINTS],
)
def test_permission_matrix(world, route, name, view_class, method, django_capture_on_commit_callbacks):
    klass = endpoint_class(name, view_class, method)
    if klass is None:
        pytest.fail(f"{method.upper()} /{route} has no endpoint class (see the test above)")
    url = _url(route, world["ids"])
    outcomes = {}
    for role in ROLES:
        client = APIClient()
        if role != "anonymous":
            client.force_authenticate(world["users"][role])
        # Writes never reach a worker here: on-commit callbacks are captured, not run.
        with django_capture_on_commit_callbacks(execute=False):
            response = getattr(client, method)(url, {}, format="json") if method != "get" else client.get(url)
        outcomes[role] = response.status_code
        assert response.status_code < 500, f"{method.upper()} {url} as {role}: {response.status_code}"
    expected = EXPECTED[klass]

    def matches(want, status: int) -> bool:
        if want == OK:
            return status not in (401, 403, 404)
        # Strict: authorisation comes before reading the body, so a refused caller never sees a 400.
        return status == want

    mismatches = {
        role: (expected[role], status)
        for role, status in outcomes.items()
        if not matches(expected[role], status)
    }
    assert not mismatches, f"{method.upper()} {url} [{klass}] expected vs got: {mismatches}"


def test_denials_use_the_error_shape(world):
    client = APIClient()
    url = f"/api/projects/{world['ids']['project_id']}/quality/summary"
    anonymous = client.get(url)
    assert anonymous.status_code == ANONYMOUS and anonymous.json()["error"]["code"] == "not_authenticated"
    client.force_authenticate(world["users"]["labeler"])
    forbidden = client.get(url)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    client.force_authenticate(world["users"]["outsider"])
    hidden = client.get(url)
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "project_not_found"


def test_token_auth_for_scripts(world):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=world["users"]["reviewer"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get(f"/api/projects/{world['ids']['project_id']}/quality/summary").status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Token wrong")
    assert client.get(f"/api/projects/{world['ids']['project_id']}/quality/summary").status_code == ANONYMOUS


@pytest.mark.parametrize(
    ("role", "home", "project_page", "exports_page"),
    [
        ("outsider", 200, 404, 404),
        ("labeler", 200, 403, 403),
        ("reviewer", 200, 200, 403),
        ("project_admin", 200, 200, 200),
        ("staff", 200, 200, 200),
    ],
)
def test_dashboard_pages_by_role(world, client, role, home, project_page, exports_page):
    pid = world["ids"]["project_id"]
    assert client.get("/dashboard/").status_code == 302  # anonymous: to the login page
    client.force_login(world["users"][role])
    assert client.get("/dashboard/").status_code == home
    assert client.get(f"/dashboard/projects/{pid}/").status_code == project_page
    assert client.get(f"/dashboard/projects/{pid}/exports/").status_code == exports_page
    download = client.get(f"/dashboard/projects/{pid}/exports/download", {"export_format": "pairs"})
    assert download.status_code == exports_page
    start = client.post(f"/dashboard/projects/{pid}/exports/start", {"export_format": "pairs"})
    assert start.status_code == (302 if exports_page == 200 else exports_page)


def test_dashboard_home_lists_only_reviewable_projects(world, client):
    client.force_login(world["users"]["reviewer"])
    assert b"Matrix" in client.get("/dashboard/").content
    client.force_login(world["users"]["labeler"])
    assert b"Matrix" not in client.get("/dashboard/").content


def test_helpers_agree_with_roles(world):
    from annotation.permissions import can_administer, can_view_all_project_data, project_role

    pid = world["ids"]["project_id"]
    users = world["users"]
    assert project_role(user=users["outsider"], project=pid) is None
    assert project_role(user=users["staff"], project=pid) == Role.ADMIN
    assert can_view_all_project_data(user=users["reviewer"], project=pid)
    assert not can_view_all_project_data(user=users["labeler"], project=pid)
    assert can_administer(user=users["project_admin"], project=pid)
    assert not can_administer(user=users["reviewer"], project=pid)
    assert get_user_model().objects.count() == 5
