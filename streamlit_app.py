"""fedopt dashboard: sign-in, navigation and the shared sidebar.  Run with `make run`."""

from pages.ui_common import run_shell

run_shell()
