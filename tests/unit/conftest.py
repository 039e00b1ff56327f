"""Hypothesis without its per-example deadline: speed is never a timed test here, and a
2-core machine shared with a running stack can take 400 ms for an example that takes 40 ms
alone (a FlakyFailure, not a finding)."""

from hypothesis import settings

settings.register_profile("seatflow", deadline=None)
settings.load_profile("seatflow")
