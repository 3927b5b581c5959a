"""Server-rendered pages: the labeler's queue and tasks, the dashboards, the health check."""
