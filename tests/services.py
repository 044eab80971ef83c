"""The database servers the project's machines run (development and CI), for the tests that need one.

PostgreSQL 15 on 127.0.0.1:5432 (trust authentication) and MariaDB on 127.0.0.1:3306 (root without a password)
run from the start there. Each test gets a database of its own (and, on MariaDB, a user with a password, as
Cloud SQL would give it), dropped afterwards. Where a server is not running the test skips and says so; the
README says how to start them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import socket
from collections.abc import Iterator

import pytest

POSTGRES = ("127.0.0.1", 5432)
MARIADB = ("127.0.0.1", 3306)
HOW_TO_START = "see README: 'Databases for the tests'"


def require(address: tuple[str, int], name: str) -> None:
    """Skips the calling test, saying why, when nothing listens on ``address``."""
    with socket.socket() as probe:
        probe.settimeout(2)
        if probe.connect_ex(address) != 0:
            pytest.skip(f"no {name} on {address[0]}:{address[1]} ({HOW_TO_START})")


@dataclasses.dataclass(frozen=True)
class MySqlAccount:
    """A MariaDB database and a user of its own with a password: what Composer's Cloud SQL store gives."""

    host: str
    port: int
    database: str
    user: str
    password: str

    def overrides(self) -> list[str]:
        """The profile's ``[metadata]`` keys for this account (the password goes in the environment)."""
        return [
            f"metadata.mysql_host={self.host}",
            f"metadata.mysql_port={self.port}",
            f"metadata.mysql_database={self.database}",
            f"metadata.mysql_user={self.user}",
        ]


@contextlib.contextmanager
def mariadb_account(prefix: str) -> Iterator[MySqlAccount]:
    """A fresh database and user on the local MariaDB; both are dropped afterwards."""
    require(MARIADB, "MariaDB")
    import pymysql

    name = f"{prefix}_{secrets.token_hex(4)}"
    account = MySqlAccount(*MARIADB, database=name, user=name, password=secrets.token_urlsafe(12))
    admin = pymysql.connect(host=MARIADB[0], port=MARIADB[1], user="root", autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}`")
            # '%' and not 'localhost': the client connects over TCP to 127.0.0.1
            cursor.execute(f"CREATE USER '{name}'@'%%' IDENTIFIED BY %s", (account.password,))
            cursor.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{name}'@'%'")
        yield account
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute(f"DROP USER IF EXISTS '{name}'@'%'")
        admin.close()


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database; yields its SQLAlchemy URL (psycopg2 driver) and drops it afterwards."""
    require(POSTGRES, "PostgreSQL")
    import psycopg2

    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = psycopg2.connect(host=POSTGRES[0], port=POSTGRES[1], user="postgres", dbname="postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg2://postgres@{POSTGRES[0]}:{POSTGRES[1]}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
