"""Test helpers that ship with the package: what lives here is the fake Lambda Cloud server
(:mod:`.fake_lambda`), which tests and ``fedopt lambda fake-server`` run on loopback."""
