"""How the run explorer runs: where it listens, which home it shows, and whether it may start runs."""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets

from pipeline.config import PipelineConfig

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address of this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True)
class UiSettings:
    """The explorer's settings.

    ``run_token``: on a bind that is not loopback, the New run form and Stop work only for someone who gives
    this token; without one they are off there. On loopback they always work (the user is on this machine).
    ``csrf_secret`` signs the forms that change state; a new one each start.
    """

    config: PipelineConfig
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    run_token: str = ""
    csrf_secret: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def local_runs(self) -> bool:
        """Whether the explorer starts this profile's runs: those with a SQLite store in the home. A MySQL store is
        where an orchestrator's runs land (Composer's Cloud SQL), shared by a team: the explorer browses it and
        starts nothing there (``taxi-pipeline run`` can still record a local run into it, on purpose)."""
        return bool(self.config.metadata.sqlite_path) and not self.config.metadata.mysql_host

    @property
    def can_start_runs(self) -> bool:
        """Whether the New run form is offered at all."""
        return self.local_runs and (self.loopback or bool(self.run_token))
