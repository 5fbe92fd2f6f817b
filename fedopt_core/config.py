"""One Settings object for the whole process, built once from the environment.

Everything that can be configured is read here, and nothing else in the package reads
``os.environ`` for configuration.  :func:`get_settings` builds the settings on first use and
returns the same object afterwards; :func:`reload_settings` rebuilds them at once (the CLI's
``--database-url``) and :func:`reset_settings` on next use (tests that change the environment).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

#: The installed package (its catalogues and migrations ship inside it).
PACKAGE_DIR = Path(__file__).resolve().parent

#: The curated catalogues that ship with the app (platforms, GPUs, techniques, university domains).
DEFAULT_DATA_DIR = PACKAGE_DIR / "data"


def checkout_root() -> Path | None:
    """The source checkout this package runs from (an editable install), or None when installed."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "fedopt_core").is_dir() else None


def _default_home() -> Path:
    # In a checkout, a git-ignored folder inside it keeps a laptop install self-contained;
    # installed elsewhere, the user's home.
    root = checkout_root()
    return root / ".fedopt" if root is not None else Path.home() / ".fedopt"


def _default_shared_data() -> Path:
    # The public data sets sit beside the checkout (never copied in); installed, beside the working folder.
    root = checkout_root()
    return (root.parent if root is not None else Path.cwd().parent) / "shared" / "data"


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


def _from_environment(database_url: str | None = None) -> Settings:
    home = Path(os.environ.get("FEDOPT_HOME") or _default_home()).expanduser()
    retrain_raw = os.environ.get("FEDOPT_RETRAIN_EVERY", "10")
    try:
        retrain_every = max(1, int(retrain_raw))
    except ValueError:
        raise ValueError(f"FEDOPT_RETRAIN_EVERY must be a whole number, got {retrain_raw!r}") from None
    return Settings(
        home=home,
        database_url=database_url or os.environ.get("DATABASE_URL") or f"sqlite:///{home / 'fedopt.db'}",
        data_dir=Path(os.environ.get("FEDOPT_DATA_DIR") or DEFAULT_DATA_DIR),
        shared_data_dir=Path(os.environ.get("FEDOPT_SHARED_DATA") or _default_shared_data()),
        secret_key=os.environ.get("FEDOPT_SECRET_KEY") or None,
        retrain_every_n_runs=retrain_every,
        lambda_base_url=os.environ.get("FEDOPT_LAMBDA_BASE_URL") or "https://cloud.lambda.ai/api/v1",
    )


_current: Settings | None = None
_lock = threading.Lock()


def get_settings() -> Settings:
    """The process's settings (built from the environment on the first call, then reused)."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = _from_environment()
    return _current


def reload_settings(*, database_url: str | None = None) -> Settings:
    """Rebuild the settings from the environment now; ``database_url`` overrides ``DATABASE_URL``."""
    global _current
    with _lock:
        _current = _from_environment(database_url)
    return _current


def reset_settings() -> None:
    """Forget the settings; the next :func:`get_settings` builds them from the environment again."""
    global _current
    with _lock:
        _current = None


#: Files next to a SQLite database that are part of it.
_SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def protected_paths(settings: Settings | None = None) -> set[Path]:
    """Files no export may write over: the secret key (and a rotation's next key), and the
    SQLite database with its journal files."""
    settings = settings or get_settings()
    paths = {settings.home / "secret.key", settings.home / "secret.key.next"}
    if settings.is_sqlite:
        database = settings.database_url.split("///", 1)[-1]
        if database and database != ":memory:":
            paths |= {Path(database + suffix) for suffix in _SQLITE_COMPANIONS}
    return {p.expanduser().resolve() for p in paths}


def output_path(path: str | Path, *, force: bool = False, settings: Settings | None = None) -> Path:
    """Where an export may write: never over the key or the database; an existing file only with
    ``force``; never a directory.  Raises ``FedoptInputError`` naming ``out``."""
    from fedopt_core.errors import FedoptInputError

    target = Path(path).expanduser()
    if target.resolve() in protected_paths(settings):
        raise FedoptInputError("out", f"{target} is fedopt's own database or key file; choose another file")
    if target.is_dir():
        raise FedoptInputError("out", f"{target} is a directory; give a file name")
    if target.exists() and not force:
        raise FedoptInputError("out", f"{target} already exists; pass --force to overwrite it")
    return target
