"""Test helpers that ship with the package (fake Lambda Cloud server, …)."""
