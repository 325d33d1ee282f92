"""Coordination: coordinator pool, assignment, preparation and the conference itself."""
