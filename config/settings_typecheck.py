"""The settings as mypy's Django plugin loads them: the real module, with DEBUG on unless set.

Type checking imports the settings only to learn the names and types; it serves nothing, so it
needs no production SECRET_KEY or ALLOWED_HOSTS. Nothing else may use this module.
"""

import os

os.environ.setdefault("DEBUG", "true")

from config.settings import *  # noqa: E402, F403
