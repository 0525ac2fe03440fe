"""alembic environment and revisions of guard's schema (shipped in the wheel)."""
