"""Shared fixtures: where the shared data (UD English EWT) lives."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """$SEQTAG_SHARED, or the `shared` folder next to the repository."""
    return Path(os.environ.get("SEQTAG_SHARED") or REPO_ROOT.parent / "shared")


@pytest.fixture(scope="session")
def ewt_dir() -> Path:
    """The UD English EWT folder (en_ewt-ud-{train,dev,test}.conllu); skips the test if absent."""
    path = shared_dir() / "data" / "ud-english-ewt"
    if not path.is_dir():
        pytest.skip(f"UD English EWT not found at {path}; set SEQTAG_SHARED")
    return path
