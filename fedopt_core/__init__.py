"""fedopt core: predict GPU job times per platform, compare platforms, manage how to pay.

Importable without Streamlit; the dashboard (``streamlit_app.py``, ``pages/``) and the
``fedopt`` command are thin faces over this package.
"""

__version__ = "0.1.0"

__all__ = ["track", "record_actual_performance"]


def __getattr__(name: str):  # noqa: ANN202 - module __getattr__ (PEP 562)
    # Lazy, so `import fedopt_core` stays light and a job script pays for runs only when it uses them.
    if name in ("track", "record_actual_performance"):
        from fedopt_core import runs

        return getattr(runs, name)
    raise AttributeError(f"module 'fedopt_core' has no attribute {name!r}")
