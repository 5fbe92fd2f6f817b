"""fedopt core: predict GPU job times per platform, compare platforms, manage how to pay.

Importable without Streamlit; the dashboard (``streamlit_app.py``, ``pages/``) and the
``fedopt`` command are thin faces over this package.
"""

__version__ = "0.1.0"
