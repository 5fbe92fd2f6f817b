"""One Settings object for the whole application.

Everything that can be configured is read here, from the environment, once per call to
:func:`get_settings`.  Nothing else in the package reads ``os.environ`` for configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The curated catalogues that ship with the app (platforms, GPUs, techniques).
DEFAULT_DATA_DIR = REPO_ROOT / "data"

#: The public data sets shipped beside the repository (read-only, never copied in).
DEFAULT_SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Settings:
    """Configuration of one fedopt process."""

    home: Path
    database_url: str
    data_dir: Path
    shared_data_dir: Path
    secret_key: str | None
    retrain_every_n_runs: int
    lambda_base_url: str

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _default_home() -> Path:
    # A git-ignored folder inside the checkout keeps a laptop install self-contained.
    return REPO_ROOT / ".fedopt"


def get_settings() -> Settings:
    """Read the settings from the environment (cheap; call it where needed)."""
    home = Path(os.environ.get("FEDOPT_HOME") or _default_home()).expanduser()
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{home / 'fedopt.db'}"
    retrain_raw = os.environ.get("FEDOPT_RETRAIN_EVERY", "10")
    try:
        retrain_every = max(1, int(retrain_raw))
    except ValueError:
        raise ValueError(f"FEDOPT_RETRAIN_EVERY must be a whole number, got {retrain_raw!r}") from None
    return Settings(
        home=home,
        database_url=database_url,
        data_dir=Path(os.environ.get("FEDOPT_DATA_DIR") or DEFAULT_DATA_DIR),
        shared_data_dir=Path(os.environ.get("FEDOPT_SHARED_DATA") or DEFAULT_SHARED_DATA_DIR),
        secret_key=os.environ.get("FEDOPT_SECRET_KEY") or None,
        retrain_every_n_runs=retrain_every,
        lambda_base_url=os.environ.get("FEDOPT_LAMBDA_BASE_URL") or "https://cloud.lambda.ai/api/v1",
    )
