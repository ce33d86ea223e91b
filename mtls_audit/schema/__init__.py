"""The JSON Schema of the report, shipped in the package so users can validate what they parse.

It is data, not code: read it with `load_report_schema()` rather than opening a path, so it works
from a wheel or a zip as well as from a checkout.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

REPORT_SCHEMA = "report.schema.json"


def load_report_schema() -> dict[str, Any]:
    """A fresh copy on every call, so a caller that edits it cannot change it for the next."""
    text = resources.files(__name__).joinpath(REPORT_SCHEMA).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
