"""Admin and reviewer pages and API: exports, quality, dashboards."""

urlpatterns: list = []
