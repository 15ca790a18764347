"""The JSON Schema and the spec dataclasses describe the same language: these tests fail
when one changes without the other."""

import dataclasses
import json
from pathlib import Path

import jsonschema
import pytest

from dfc.lang import schema
from dfc.lang.model import SCHEMA_DEFS

ROOT = Path(__file__).resolve().parents[2]
# keys a schema definition has beyond its dataclass's YAML fields, and why
EXTRA = {"step_task": {"name"}}  # a task's name is its key under `tasks:`; a step's is `name:`


def yaml_keys(cls) -> set[str]:
    return {f.metadata["yaml"] for f in dataclasses.fields(cls) if "yaml" in f.metadata}


@pytest.mark.parametrize("definition", sorted(SCHEMA_DEFS))
def test_dataclass_fields_match_schema_properties(definition):
    s = schema()
    props = set((s if definition == "" else s["$defs"][definition])["properties"])
    assert yaml_keys(SCHEMA_DEFS[definition]) | EXTRA.get(definition, set()) == props


def test_every_object_definition_has_a_dataclass():
    objects = {name for name, d in schema()["$defs"].items() if d.get("type") == "object" and "properties" in d}
    assert objects <= set(SCHEMA_DEFS), objects - set(SCHEMA_DEFS)


def _walk(node, path=()):
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, path + (i,))


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_closed_objects_and_descriptions_everywhere():
    for path, node in _walk(schema()):
        if "properties" in node and path[-1:] != ("properties",):
            assert node.get("additionalProperties") is False, path
            for name, prop in node["properties"].items():
                assert prop.get("description"), path + (name,)


def test_package_copy_is_the_repository_schema():
    shipped = json.loads((ROOT / "dfc" / "lang" / "dfc.schema.json").read_text())
    assert shipped == json.loads((ROOT / "schemas" / "dfc.schema.json").read_text())


def test_specs_point_editors_at_the_schema():
    for spec in sorted((ROOT / "specs").glob("*.yaml")):
        assert spec.read_text().startswith("# yaml-language-server: $schema=../schemas/dfc.schema.json"), spec


def test_enums_match_the_op_types():
    from dfc.ops.types import DTYPES

    assert schema()["$defs"]["array"]["properties"]["dtype"]["enum"] == list(DTYPES)
    assert schema()["$defs"]["scalar"]["properties"]["dtype"]["enum"] == list(DTYPES)
