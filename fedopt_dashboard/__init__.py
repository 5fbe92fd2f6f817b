"""The fedopt dashboard: a multipage Streamlit app over ``fedopt_core``.

What lives here: ``streamlit_app.py`` (the entry point: sign-in, role-filtered navigation, the
shared sidebar), ``pages/`` (one short script per page, each a face of ``fedopt_core``) and
:mod:`.ui` (what the pages share: the page guard, cached reads, display helpers).  The only
package that imports Streamlit; it imports ``fedopt_core`` and nothing imports it.  Start it
with ``fedopt dashboard``.
"""
