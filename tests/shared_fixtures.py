"""Where ../shared (reference payloads and DESIGN.md, beside the checkout) is, and what a test
does without it.

The one place that knows the path. Tests that compare with a reference file there run when the
folder exists (CI has it) and are skipped, with the reason below, on a clone with nothing beside
it; every other test uses the project's own fixtures (tests/fixtures/).
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


def shared_path(relative: str) -> Path:
    """../shared/<relative>, whether or not it exists."""
    return SHARED / relative


def shared_missing(relative: str, why: str) -> str | None:
    """The skip reason when ../shared/<relative> is absent, else None."""
    if shared_path(relative).exists():
        return None
    return f"../shared/{relative} not found beside the checkout: {why}"


def needs_shared(relative: str, why: str) -> pytest.MarkDecorator:
    """A mark that skips the test (or module, as pytestmark) when ../shared/<relative> is absent."""
    reason = shared_missing(relative, why)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def require_shared(relative: str, why: str) -> Path:
    """../shared/<relative>; inside a test, skips it when the path is absent."""
    reason = shared_missing(relative, why)
    if reason is not None:
        pytest.skip(reason)
    return shared_path(relative)
