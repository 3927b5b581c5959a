"""Dashboard pages for conversations: the project's conversation trees, and one tree whole (its turns,
branches, the replies of each turn with who ranked them and how, edits, own replies and "none
acceptable"). Thin: the trees come from annotation.selectors.conversations, the roles from
annotation.permissions, as for the prompt page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation.models.projects import Role
from annotation.permissions import project_for_role
from annotation.rendering import answer_safe_html
from annotation.selectors.conversations import TreeTurn, conversation_roots_page, conversation_tree_get
from annotation.views.dashboard import _domain_errors_as_http


@require_GET
@login_required
@_domain_errors_as_http
def dashboard_conversations(request: HttpRequest, project_id: int) -> HttpResponse:
    """Root prompts someone has continued, most recently continued first, 25 a page."""
    project = project_for_role(user=request.user, project_id=project_id, minimum=Role.REVIEWER)
    page = conversation_roots_page(project=project, page=request.GET.get("page"))
    return render(request, "dashboard/conversations.html", {"project": project, "page": page})


def _with_html(turn: TreeTurn) -> None:
    """Each reply's text as the labelers saw it (sanitised Markdown), down the whole tree."""
    for reply in turn.replies:
        reply.html = answer_safe_html(reply.text)
        for child in reply.continuations:
            _with_html(child)
    for child in turn.detached:
        _with_html(child)


@require_GET
@login_required
@_domain_errors_as_http
def dashboard_conversation(request: HttpRequest, project_id: int, prompt_id: int) -> HttpResponse:
    """The whole tree that prompt `prompt_id` belongs to, from its root; that prompt's turn marked."""
    project = project_for_role(user=request.user, project_id=project_id, minimum=Role.REVIEWER)
    tree = conversation_tree_get(project=project, prompt_id=prompt_id)
    _with_html(tree.root)
    return render(
        request,
        "dashboard/conversation.html",
        {"project": project, "tree": tree, "focus": prompt_id},
    )
