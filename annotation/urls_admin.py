"""Admin and reviewer pages and API: exports, quality, dashboards."""

from django.urls import path

from annotation import views_dashboard
from annotation.api import exports, quality

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
        "api/projects/<int:project_id>/quality/reward-models/",
        quality.RewardModelHistoryApi.as_view(),
        name="quality-reward-model-history",
    ),
    path("api/rankings/<int:ranking_id>/gold", quality.RankingGoldSetApi.as_view(), name="ranking-gold-set"),
]

pages = [
    path("dashboard/", views_dashboard.dashboard_home, name="dashboard-home"),
    path("dashboard/projects/<int:project_id>/", views_dashboard.dashboard_project, name="dashboard-project"),
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

urlpatterns = api + pages
