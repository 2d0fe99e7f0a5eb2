"""The warehouse as a Dagster resource."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
import sqlalchemy as sa

from dagster_project.warehouse import connection


class WarehouseResource(dg.ConfigurableResource):
    """The Postgres warehouse. `url` unset means `WAREHOUSE_URL`, else the embedded server."""

    url: str | None = None

    def get_url(self) -> str:
        if self.url:
            return self.url
        resolved = connection.warehouse_url()
        connection.ensure_schemas(resolved)
        return resolved

    def engine(self, **kwargs) -> sa.Engine:
        return connection.create_engine(self.get_url(), **kwargs)

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        """A psycopg 3 connection (used for COPY); commits on success, rolls back on error."""
        with psycopg.connect(connection.libpq_url(self.get_url())) as conn:
            yield conn
