"""Relational storage of the jobs system: delivery logs and job-id deduplication keys.

``db.session`` builds engines and sessionmakers, ``db.models`` declares the tables,
``db.migrate`` brings a database to the latest Alembic revision.
"""
