"""What every page of the explorer needs: its settings, the read-only store and the runs list."""

from __future__ import annotations

import dataclasses

from pipeline.config import PipelineConfig
from runs.catalog import RunCatalog
from runs.store import SharedReader
from ui.settings import UiSettings


@dataclasses.dataclass
class Explorer:
    """What every page needs: the settings, the read-only store and the runs list of the home's pipeline."""

    settings: UiSettings
    store: SharedReader
    catalog: RunCatalog

    @property
    def config(self) -> PipelineConfig:
        return self.settings.config

    @property
    def pipeline_name(self) -> str:
        return self.settings.config.pipeline.name
