"""The 1,529 real prompts in ../shared/data, for tests and benchmarks (never copied here)."""

import csv
import sys

import pytest

from tests.support import PROJECT_ROOT

PROMPTS_CSV = PROJECT_ROOT.parent / "shared" / "data" / "awesome-chatgpt-prompts.csv"


def real_prompts() -> list[dict]:
    """Every row; skips the calling test only when the shared data folder is absent."""
    if not PROMPTS_CSV.parent.exists():
        pytest.skip("../shared/data is absent")
    csv.field_size_limit(sys.maxsize)  # one prompt is 144,260 characters long
    with PROMPTS_CSV.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))
