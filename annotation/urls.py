"""The annotation app's routes: labeler pages and API (the queue, drafts, submissions), and the admin and
reviewer pages and API (exports, quality, dashboards)."""

from django.urls import path

from annotation.api import converse, exports, gold, history, imports, quality, review
from annotation.api import labeler as labeler_api
from annotation.views import dashboard as views_dashboard
from annotation.views import dashboard_conversations as views_conversations
from annotation.views import review as views_review
from annotation.views.labeler import labeler_history_page, labeler_home, labeler_task
from annotation.views.triage import dashboard_triage

labeler = [
    path("", labeler_home, name="labeler-home"),
    path("tasks/<int:assignment_id>/", labeler_task, name="labeler-task"),
    path("history/", labeler_history_page, name="labeler-history"),
    path("api/labeler/history/", history.LabelerHistoryApi.as_view(), name="api-labeler-history"),
    path("api/labeler/me/", labeler_api.LabelerMeApi.as_view(), name="api-labeler-me"),
    path("api/labeler/work/", labeler_api.LabelerWorkApi.as_view(), name="api-labeler-work"),
    path(
        "api/labeler/assignments/lease/", labeler_api.AssignmentLeaseApi.as_view(), name="api-labeler-lease"
    ),
    path(
        "api/labeler/assignments/<int:assignment_id>/",
        labeler_api.AssignmentDetailApi.as_view(),
        name="api-labeler-assignment",
    ),
    path(
        "api/labeler/assignments/<int:assignment_id>/draft/",
        labeler_api.AssignmentDraftApi.as_view(),
        name="api-labeler-draft",
    ),
    path(
        "api/labeler/assignments/<int:assignment_id>/skip/",
        labeler_api.AssignmentSkipApi.as_view(),
        name="api-labeler-skip",
    ),
    path(
        "api/labeler/assignments/<int:assignment_id>/demonstration/",
        labeler_api.DemonstrationSubmitApi.as_view(),
        name="api-labeler-demonstration-submit",
    ),
    path(
        "api/labeler/assignments/<int:assignment_id>/ranking/",
        labeler_api.RankingSubmitApi.as_view(),
        name="api-labeler-ranking-submit",
    ),
    path("api/labeler/converse/open/", converse.ConverseOpenApi.as_view(), name="api-labeler-converse-open"),
    path(
        "api/labeler/assignments/<int:assignment_id>/live/",
        converse.LiveStateApi.as_view(),
        name="api-labeler-live",
    ),
    path(
        "api/labeler/assignments/<int:assignment_id>/live/stream",
        converse.LiveStreamApi.as_view(),
        name="api-labeler-live-stream",
    ),
    path(
        "api/labeler/assignments/<int:assignment_id>/live/retry/",
        converse.LiveRetryApi.as_view(),
        name="api-labeler-live-retry",
    ),
    path(
        "api/labeler/assignments/<int:assignment_id>/turn/",
        converse.TurnSubmitApi.as_view(),
        name="api-labeler-turn-submit",
    ),
]

api = [
    path(
        "api/projects/<int:project_id>/exports/", exports.ExportJobListApi.as_view(), name="export-job-list"
    ),
    path(
        "api/projects/<int:project_id>/exports/start",
        exports.ExportJobStartApi.as_view(),
        name="export-job-start",
    ),
    path(
        "api/projects/<int:project_id>/exports/count",
        exports.ExportCountApi.as_view(),
        name="export-count",
    ),
    path(
        "api/projects/<int:project_id>/exports/stream",
        exports.ExportStreamApi.as_view(),
        name="export-stream",
    ),
    path("api/exports/<int:job_id>/", exports.ExportJobDetailApi.as_view(), name="export-job-detail"),
    path(
        "api/exports/<int:job_id>/download",
        exports.ExportJobDownloadApi.as_view(),
        name="export-job-download",
    ),
    path("api/exports/<int:job_id>/card", exports.ExportJobCardApi.as_view(), name="export-job-card"),
    path(
        "api/projects/<int:project_id>/imports/",
        imports.PromptImportJobListApi.as_view(),
        name="prompt-import-list",
    ),
    path(
        "api/projects/<int:project_id>/imports/start",
        imports.PromptImportStartApi.as_view(),
        name="prompt-import-start",
    ),
    path(
        "api/imports/<int:import_id>/",
        imports.PromptImportJobDetailApi.as_view(),
        name="prompt-import-detail",
    ),
    path(
        "api/projects/<int:project_id>/quality/summary",
        quality.QualitySummaryApi.as_view(),
        name="quality-summary",
    ),
    path(
        "api/projects/<int:project_id>/quality/labelers/",
        quality.LabelerStatsListApi.as_view(),
        name="quality-labelers",
    ),
    path(
        "api/projects/<int:project_id>/quality/prompts/",
        quality.PromptAgreementListApi.as_view(),
        name="quality-prompts",
    ),
    path(
        "api/projects/<int:project_id>/quality/throughput",
        quality.ThroughputApi.as_view(),
        name="quality-throughput",
    ),
    path(
        "api/projects/<int:project_id>/quality/agreement-over-time",
        quality.AgreementOverTimeApi.as_view(),
        name="quality-agreement-over-time",
    ),
    path(
        "api/projects/<int:project_id>/quality/queue-depth",
        quality.QueueDepthApi.as_view(),
        name="quality-queue-depth",
    ),
    path(
        "api/projects/<int:project_id>/gold/labelers/",
        gold.GoldStandingListApi.as_view(),
        name="gold-standings",
    ),
    path(
        "api/projects/<int:project_id>/gold/labelers/<int:user_id>/lift",
        gold.MembershipPauseLiftApi.as_view(),
        name="membership-pause-lift",
    ),
    path("api/rankings/<int:ranking_id>/gold", quality.RankingGoldSetApi.as_view(), name="ranking-gold-set"),
    path(
        "api/rankings/<int:ranking_id>/exclude", quality.RankingExcludeApi.as_view(), name="ranking-exclude"
    ),
    path(
        "api/rankings/<int:ranking_id>/restore", quality.RankingRestoreApi.as_view(), name="ranking-restore"
    ),
    path(
        "api/prompts/<int:prompt_id>/more-rankings",
        quality.PromptMoreRankingsApi.as_view(),
        name="prompt-more-rankings",
    ),
    path("api/projects/<int:project_id>/review/next", review.ReviewNextApi.as_view(), name="api-review-next"),
    path(
        "api/projects/<int:project_id>/review/decide",
        review.ReviewDecideApi.as_view(),
        name="api-review-decide",
    ),
    path(
        "api/projects/<int:project_id>/adjudication/",
        review.AdjudicationListApi.as_view(),
        name="api-adjudication-list",
    ),
    path(
        "api/projects/<int:project_id>/adjudication/<int:prompt_id>",
        review.AdjudicationDetailApi.as_view(),
        name="api-adjudication-detail",
    ),
]

pages = [
    path("dashboard/", views_dashboard.dashboard_home, name="dashboard-home"),
    path("dashboard/projects/<int:project_id>/", views_dashboard.dashboard_project, name="dashboard-project"),
    path(
        "dashboard/projects/<int:project_id>/prompts/<int:prompt_id>/",
        views_dashboard.dashboard_prompt,
        name="dashboard-prompt",
    ),
    path(
        "dashboard/projects/<int:project_id>/conversations/",
        views_conversations.dashboard_conversations,
        name="dashboard-conversations",
    ),
    path(
        "dashboard/projects/<int:project_id>/conversations/<int:prompt_id>/",
        views_conversations.dashboard_conversation,
        name="dashboard-conversation",
    ),
    path("dashboard/projects/<int:project_id>/triage/", dashboard_triage, name="dashboard-triage"),
    path("dashboard/projects/<int:project_id>/review/", views_review.review_queue_page, name="review-queue"),
    path(
        "dashboard/projects/<int:project_id>/adjudication/",
        views_review.adjudication_list_page,
        name="review-adjudication-list",
    ),
    path(
        "dashboard/projects/<int:project_id>/adjudication/<int:prompt_id>/",
        views_review.adjudication_page,
        name="review-adjudication",
    ),
    path(
        "dashboard/projects/<int:project_id>/exports/",
        views_dashboard.dashboard_exports,
        name="dashboard-exports",
    ),
    path(
        "dashboard/projects/<int:project_id>/exports/download",
        views_dashboard.dashboard_export_download,
        name="dashboard-export-download",
    ),
    path(
        "dashboard/projects/<int:project_id>/exports/start",
        views_dashboard.dashboard_export_start,
        name="dashboard-export-start",
    ),
    path(
        "dashboard/exports/<int:job_id>/file",
        views_dashboard.dashboard_export_file,
        name="dashboard-export-file",
    ),
]

urlpatterns = labeler + api + pages
