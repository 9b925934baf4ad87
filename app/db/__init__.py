"""Persistence: models, sessions, repositories and migrations (SQLite or PostgreSQL).

Import what you need from the submodules: ``app.db.session`` (engines, :func:`session_scope`),
``app.db.repositories`` (queries), ``app.db.models`` (ORM rows), ``app.db.migrate``.
"""
