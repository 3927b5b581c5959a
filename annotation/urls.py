"""Labeler pages and the labeler API (the queue, drafts, submissions)."""

from django.urls import path

from annotation.api import labeler as api
from annotation.views_labeler import labeler_home, labeler_task

urlpatterns = [
    path("", labeler_home, name="labeler-home"),
    path("tasks/<int:assignment_id>/", labeler_task, name="labeler-task"),
    path("api/labeler/me/", api.LabelerMeApi.as_view(), name="api-labeler-me"),
    path("api/labeler/work/", api.LabelerWorkApi.as_view(), name="api-labeler-work"),
    path("api/labeler/assignments/lease/", api.AssignmentLeaseApi.as_view(), name="api-labeler-lease"),
    path(
        "api/labeler/assignments/<int:assignment_id>/",
        api.AssignmentDetailApi.as_view(),
        name="api-labeler-assignment",
    ),
    path(
        "api/labeler/assignments/<int:assignment_id>/draft/",
        api.AssignmentDraftApi.as_view(),
        name="api-labeler-draft",
    ),
    path(
        "api/labeler/assignments/<int:assignment_id>/skip/",
        api.AssignmentSkipApi.as_view(),
        name="api-labeler-skip",
    ),
    path(
        "api/labeler/assignments/<int:assignment_id>/demonstration/",
        api.DemonstrationSubmitApi.as_view(),
        name="api-labeler-demonstration-submit",
    ),
    path(
        "api/labeler/assignments/<int:assignment_id>/ranking/",
        api.RankingSubmitApi.as_view(),
        name="api-labeler-ranking-submit",
    ),
]
