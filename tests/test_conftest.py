"""The test suite's own plumbing: pytest-xdist keeps the tiny study's users on one worker."""

import re
from pathlib import Path

from conftest import TINY_STUDY_MODULES


def test_every_module_using_the_tiny_study_is_scheduled_with_it():
    here = Path(__file__).parent
    users = sorted(p.name for p in here.glob("test_*.py")
                   if p.name != Path(__file__).name and re.search(r"\btiny_study\b", p.read_text()))
    assert users == sorted(TINY_STUDY_MODULES)
