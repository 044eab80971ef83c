"""``CuratedSchemaGen``: TFX's ImportSchemaGen, plus the schema file's fingerprint as a parameter.

The executor is ImportSchemaGen's own, unchanged (it copies the file into the pipeline root). The extra parameter
only enters TFX's cache key, so an edited ``schema.pbtxt`` is imported again instead of the old copy being reused;
see ``pipeline/fingerprints.py``.
"""

from __future__ import annotations

from tfx import types
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

from pipeline.fingerprints import file_fingerprint
from tfx_compat import init_component_with_spec

NODE_ID = "ImportSchemaGen"
FINGERPRINT_KEY = "schema_fingerprint"


class CuratedSchemaGenSpec(standard_component_specs.ImportSchemaGenSpec):
    PARAMETERS = {
        **standard_component_specs.ImportSchemaGenSpec.PARAMETERS,
        FINGERPRINT_KEY: ExecutionParameter(type=str),
    }


class CuratedSchemaGen(ImportSchemaGen):
    """Imports ``schema_file`` as the pipeline's Schema artifact; node id ``ImportSchemaGen``, as TFX names it."""

    SPEC_CLASS = CuratedSchemaGenSpec

    def __init__(self, schema_file: str):
        spec = CuratedSchemaGenSpec(
            schema_file=schema_file,
            schema_fingerprint=file_fingerprint(schema_file),
            schema=types.Channel(type=standard_artifacts.Schema),
        )
        # ImportSchemaGen.__init__ would build its own spec without the fingerprint; its base takes ours.
        init_component_with_spec(self, spec)
        self.with_id(NODE_ID)
