"""The content fingerprints that let TFX's cache see edits of user code and of the curated schema.

The end-to-end effect on a real run (an edited schema file is imported again) is in ``test_e2e_local.py``; these
tests pin the parts: what a fingerprint covers, and that the pipeline puts it into the parameters TFX hashes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipeline.components.curated_schema import FINGERPRINT_KEY
from pipeline.config import load_config
from pipeline.fingerprints import code_fingerprint, file_fingerprint, package_fingerprint
from pipeline.pipeline import CODE_FINGERPRINT_KEY, create_pipeline


@pytest.fixture
def package(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "userpkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "layers.py").write_text("UNITS = 8\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return root


def test_package_fingerprint_follows_every_source_file_and_nothing_else(package):
    before = package_fingerprint("userpkg")
    assert before == package_fingerprint("userpkg")
    (package / "notes.txt").write_text("not code")
    assert package_fingerprint("userpkg") == before
    (package / "sub" / "layers.py").write_text("UNITS = 16\n")
    edited = package_fingerprint("userpkg")
    assert edited != before
    (package / "sub" / "layers.py").rename(package / "sub" / "renamed.py")
    assert package_fingerprint("userpkg") != edited


def test_package_fingerprint_of_a_missing_package_is_an_error():
    with pytest.raises(ValueError, match="not an importable package"):
        package_fingerprint("no_such_package_here")


def test_file_fingerprint_is_the_contents_hash_or_empty_when_not_on_this_machine(tmp_path):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text("feature {}\n")
    assert file_fingerprint(str(schema)) == hashlib.sha256(b"feature {}\n").hexdigest()
    assert file_fingerprint("/pipeline/schema/schema.pbtxt") == ""


def test_the_pipeline_puts_the_fingerprints_where_tfx_hashes_them(tmp_path):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text(Path(load_config("local", []).schema.path).read_text())
    config = load_config("local", [f"schema.path={schema}"], home=str(tmp_path / "home"))
    nodes = {node.id: node for node in create_pipeline(config).components}
    code = code_fingerprint()
    assert code == package_fingerprint("models", "tfx_compat")
    for node_id in ("Transform", *(f"Trainer_{name}" for name in config.candidates.names)):
        custom_config = json.loads(nodes[node_id].exec_properties["custom_config"])
        assert custom_config[CODE_FINGERPRINT_KEY] == code, node_id
    assert nodes["ImportSchemaGen"].exec_properties[FINGERPRINT_KEY] == file_fingerprint(str(schema))
    assert nodes["ImportSchemaGen"].exec_properties["schema_file"] == str(schema)
