"""ADF validation against Atlassian's published schema (``@atlaskit/adf-schema`` v1 full).

The emulator refuses what real Jira refuses, so a client that passes here will not be surprised
in production; the tests use the same check on every document our formatters produce.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from jsonschema import Draft4Validator

SCHEMA_PATH = Path(__file__).with_name("adf-schema-v1-full.json")


@cache
def validator() -> Draft4Validator:
    """Compiled once: the schema is large and building a validator is the slow part."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return Draft4Validator(schema)


def _empty_text_paths(node: object, path: str = "") -> list[str]:
    """Empty text nodes, which Jira rejects even where a schema variant might not."""
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("type") == "text" and not node.get("text"):
            found.append(path or "(root)")
        for index, child in enumerate(node.get("content") or []):
            found.extend(_empty_text_paths(child, f"{path}/content/{index}"))
    return found


def adf_errors(document: object) -> list[str]:
    """Why ``document`` is not a valid ADF document; empty when it is."""
    if not isinstance(document, dict):
        return [f"not an ADF document (got {type(document).__name__})"]
    errors = [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator().iter_errors(document)
    ]
    errors.extend(f"{path}: empty text node" for path in _empty_text_paths(document))
    return errors


def is_valid_adf(document: object) -> bool:
    return not adf_errors(document)
