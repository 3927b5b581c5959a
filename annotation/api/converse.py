"""The converse API: open a conversation, follow a turn's replies as they stream, retry, submit a turn.

Leasing a converse task from the queue is the ordinary lease (kind "converse"); reading it is the
ordinary task detail, whose `conversation` says where the turn stands.

The stream is server-sent events read from the turn's LiveGeneration row, which a worker writes
(annotation/services/live.py); this process only reads the database, never runs a model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.labeler import _submitted, _validated_for_owner
from annotation.api.output import output_data
from annotation.api.serializers_converse import (
    ConverseOpenInputSerializer,
    LiveOutputSerializer,
    TurnOutputSerializer,
    TurnSubmitInputSerializer,
)
from annotation.api.serializers_labeler import TaskOutputSerializer
from annotation.models.assignments import TaskKind
from annotation.selectors.converse import live_state, live_state_for_assignment
from annotation.selectors.queue import assignment_task_data
from annotation.services.assignments import assignment_get_for_labeler
from annotation.services.converse import TurnEdit, converse_open, converse_retry, converse_turn_submit
from annotation.services.rankings import ItemInput
from config.errors import NotFound, ValidationFailed
from config.openapi import error_response

# How often the stream re-reads the row: the worker writes about every 0.1 s, so this adds at most
# half a write interval of delay.
POLL_SECONDS = 0.05
# A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_SECONDS = 10.0
# One response streams at most this long, then ends; EventSource reconnects by itself and gets a
# fresh snapshot, so a web thread is never held by a page that was left open.
MAX_STREAM_SECONDS = 120.0
ENDED = ("done", "failed", "stalled")


class JsonErrorsNegotiation(BaseContentNegotiation):
    """The stream's errors are JSON whatever the client accepts (EventSource asks for
    text/event-stream only); its events are written by the view itself, outside the renderers."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: Any, format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def live_events(*, assignment_id: int) -> Iterator[str]:
    """The turn's replies as server-sent events: a snapshot, then deltas, then `end` with the final state.

    Deltas are per reply: the text appended since the last event. A retry (a new attempt) or any
    text that is not an extension of what was sent gets a fresh snapshot.
    """
    started = last_sent = time.monotonic()
    state = live_state_for_assignment(assignment_id=assignment_id)
    if state is None:
        yield _event("end", None)
        return
    yield _event("snapshot", state)
    sent = state
    while state["status"] not in ENDED and time.monotonic() - started < MAX_STREAM_SECONDS:
        time.sleep(POLL_SECONDS)
        state = live_state_for_assignment(assignment_id=assignment_id)
        if state is None:
            break
        now = time.monotonic()
        if state["attempt"] != sent["attempt"] or any(
            not new.startswith(old) for old, new in zip(sent["texts"], state["texts"], strict=False)
        ):
            yield _event("snapshot", state)
        else:
            slots = [
                [index, new[len(old) :]]
                for index, (old, new) in enumerate(zip(sent["texts"], state["texts"], strict=False))
                if len(new) > len(old)
            ]
            if slots or state["finished"] != sent["finished"] or state["status"] != sent["status"]:
                yield _event(
                    "delta", {"slots": slots, "finished": state["finished"], "status": state["status"]}
                )
            elif now - last_sent < KEEPALIVE_SECONDS:
                continue
            else:
                yield ": keep-alive\n\n"
        last_sent, sent = now, state
    yield _event("end", state)


def _converse_assignment(*, request: Request, assignment_id: int) -> None:
    assignment = assignment_get_for_labeler(assignment_id=assignment_id, labeler=request.user)
    if assignment.kind != TaskKind.CONVERSE:
        raise ValidationFailed(
            f"assignment {assignment_id} is a {assignment.kind} task, not converse", code="wrong_kind"
        )


class ConverseOpenApi(APIView):
    """Start a conversation from your own opening turn, where the project allows it (201, the first turn)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=ConverseOpenInputSerializer,
        responses={
            201: TaskOutputSerializer,
            400: error_response("Conversations off, own openings not allowed, or an empty opening."),
            403: error_response("A member who may not label there."),
            404: error_response("No active project of that id that the caller belongs to."),
            409: error_response("The caller already ranked this very conversation."),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = ConverseOpenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        assignment = converse_open(
            labeler=request.user,
            project_id=serializer.validated_data["project"],
            opening=serializer.validated_data["opening"],
        )
        body = output_data(TaskOutputSerializer, assignment_task_data(assignment=assignment))
        return Response(body, status=status.HTTP_201_CREATED)


class LiveStateApi(APIView):
    """The turn's replies so far (for clients that poll rather than stream)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={
            200: LiveOutputSerializer,
            400: error_response("The assignment is not a converse task."),
            404: error_response("Not the caller's assignment, or no replies being written."),
        }
    )
    def get(self, request: Request, assignment_id: int) -> Response:
        _converse_assignment(request=request, assignment_id=assignment_id)
        state = live_state_for_assignment(assignment_id=assignment_id)
        if state is None:
            raise NotFound("this turn has no replies being written", code="no_live_generation")
        return Response(output_data(LiveOutputSerializer, state))


class LiveStreamApi(APIView):
    """The turn's replies as server-sent events (text/event-stream): snapshot, delta..., end."""

    permission_classes = [IsAuthenticated]
    content_negotiation_class = JsonErrorsNegotiation

    @extend_schema(
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description="Events `snapshot` (the full state), `delta` ({slots: [[index, appended text]], "
                "finished, status}) and `end` (the final state; fetch the task for the replies' ids).",
            ),
            400: error_response("The assignment is not a converse task."),
            404: error_response("Not the caller's assignment."),
        }
    )
    def get(self, request: Request, assignment_id: int) -> StreamingHttpResponse:
        _converse_assignment(request=request, assignment_id=assignment_id)
        response = StreamingHttpResponse(
            live_events(assignment_id=assignment_id), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx would otherwise hold the events back
        return response


class LiveRetryApi(APIView):
    """Write the turn's replies again after a failure or a stall (what the labeler typed is untouched)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={
            200: LiveOutputSerializer,
            400: error_response("The assignment is not a converse task."),
            404: error_response("Not the caller's assignment."),
            409: error_response("The replies are done or still streaming, or the task is closed."),
        },
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        live = converse_retry(assignment_id=assignment_id, labeler=request.user)
        return Response(output_data(LiveOutputSerializer, live_state(live=live)))


class TurnSubmitApi(APIView):
    """Submit a turn: the ranking of its replies, an optional edit or own reply, and the next user turn.

    201 with the ranking and the next turn's task id (null when the conversation ended); a retry
    with the same idempotency key returns the same body with 200 and stores nothing twice.
    """

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=TurnSubmitInputSerializer, responses={201: TurnOutputSerializer, 200: TurnOutputSerializer}
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        serializer = _validated_for_owner(
            TurnSubmitInputSerializer, request=request, assignment_id=assignment_id
        )
        data = serializer.validated_data
        items: dict[int, ItemInput] = {}
        for item in data["items"]:
            if item["candidate"] in items:
                assignment_get_for_labeler(assignment_id=assignment_id, labeler=request.user)
                raise ValidationFailed(
                    f"candidate {item['candidate']} has more than one entry in items",
                    code="repeated_candidate",
                    details={"repeated": [item["candidate"]]},
                )
            items[item["candidate"]] = ItemInput(rating=item.get("rating"), flags=item["flags"])
        edit = data["edit"]
        result, created = converse_turn_submit(
            assignment_id=assignment_id,
            labeler=request.user,
            idempotency_key=data["idempotency_key"],
            order=data["order"],
            items=items,
            comment=data["comment"],
            seconds_spent=data["seconds_spent"],
            none_acceptable=data["none_acceptable"],
            reply=data["reply"],
            edit=TurnEdit(candidate_id=edit["candidate"], text=edit["text"]) if edit else None,
            continue_with=data["continue_with"],
            next_user_turn=data["next_user_turn"],
        )
        return Response(output_data(TurnOutputSerializer, result), status=_submitted(created))
