"""`python -m mlops_assets.deploy.ensure_database URL`: create the Postgres database URL names if it
does not exist yet. The compose deployment runs Dagster and MLflow on one Postgres server, each in its
own database (both keep an `alembic_version` table); the Postgres image creates only the first one."""

import sys
from urllib.parse import urlparse, urlunparse

import psycopg2
from psycopg2 import sql


def ensure_database(url: str) -> bool:
    """True when the database was created, False when it was there already."""
    parsed = urlparse(url.replace("postgresql+psycopg2://", "postgresql://"))
    name = parsed.path.lstrip("/")
    server = urlunparse(parsed._replace(path="/postgres"))
    connection = psycopg2.connect(server)
    connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone():
                return False
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    finally:
        connection.close()


if __name__ == "__main__":
    created = ensure_database(sys.argv[1])
    print(f"database {'created' if created else 'exists'}: {urlparse(sys.argv[1]).path.lstrip('/')}")
