"""Storage adapters: SQLAlchemy tables, repositories, candidate queries, migrations."""
