"""Orchestration between the HTTP layer, the numeric core and the database. Never commits."""
