"""The admin's project form as a browser posts it: every field the fieldsets show, at its stored value."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import FieldDoesNotExist

from annotation.admin.projects import ProjectAdmin
from annotation.models import Project

# Write-only or form-only fields a browser leaves empty unless the admin types in them, and the
# generation server's address and model, which each test's form states itself.
NOT_POSTED = {"generation_api_key", "clear_generation_api_key", "generation_base_url", "generation_model"}


def project_form_defaults(project: Project) -> dict[str, Any]:
    """POST data for the project's change form that changes nothing (checkboxes off are left out)."""
    data: dict[str, Any] = {}
    for _title, options in ProjectAdmin.fieldsets:
        for name in options["fields"]:
            if name in NOT_POSTED:
                continue
            try:
                Project._meta.get_field(name)
            except FieldDoesNotExist:
                continue
            value = getattr(project, name)
            if isinstance(value, bool):
                if value:
                    data[name] = "on"
            elif isinstance(value, dict | list):
                data[name] = json.dumps(value)
            else:
                data[name] = "" if value is None else value
    return data
