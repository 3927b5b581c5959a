"""Django admin for the annotation models: what an admin looks at to run a project."""

from annotation.admin import projects, prompts, webhooks, work

__all__ = ["projects", "prompts", "webhooks", "work"]
