"""bin/extract_talon_schemas.py on a small OpenAPI document of our own."""

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bin" / "extract_talon_schemas.py"


@pytest.fixture(scope="module")
def extractor() -> ModuleType:
    spec = importlib.util.spec_from_file_location("extract_talon_schemas", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def document(operation_ids: tuple[str, ...]) -> dict:
    error = {"$ref": "#/components/schemas/ErrorResponseWithStatus"}
    paths = {}
    for index, operation_id in enumerate(operation_ids):
        paths[f"/v2/things/{index}"] = {
            "put": {
                "operationId": operation_id,
                "summary": "prose that must not be copied",
                "parameters": [{"$ref": "#/components/parameters/silent"}],
                "requestBody": {"$ref": "#/components/requestBodies/Body"},
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Profile"}}
                        },
                    },
                    "204": {"description": "No content"},
                    "400": {
                        "description": "Bad",
                        "content": {"application/json": {"schema": error}},
                    },
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"version": "9"},
        "paths": paths,
        "components": {
            "parameters": {
                "silent": {
                    "name": "silent",
                    "in": "query",
                    "description": "prose",
                    "schema": {"type": "string", "enum": ["yes", "no"], "example": "yes"},
                },
            },
            "requestBodies": {
                "Body": {
                    "content": {
                        "application/json": {
                            "examples": {"a": {"value": 1}},
                            "schema": {"$ref": "#/components/schemas/Profile"},
                        }
                    }
                },
            },
            "schemas": {
                "Profile": {
                    "type": "object",
                    "title": "Profile",
                    "description": "prose",
                    "required": ["integrationId"],
                    "properties": {
                        "integrationId": {"type": "string", "maxLength": 1000, "example": "u1"},
                        "description": {"type": "string"},
                        "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
                    },
                    "x-internal": True,
                },
                "Tag": {"allOf": [{"type": "string", "minLength": 1, "description": "prose"}]},
                "ErrorResponseWithStatus": {
                    "type": "object",
                    "properties": {"message": {"type": "string"}},
                },
            },
        },
    }


def test_refs_are_inlined_and_only_structure_is_kept(extractor: ModuleType, tmp_path) -> None:
    source = tmp_path / "openapi.json"
    source.write_text(json.dumps(document(extractor.OPERATIONS)))
    output = tmp_path / "schemas.json"

    assert extractor.main([str(source), "--output", str(output)]) == 0

    written = json.loads(output.read_text())
    operation = written["operations"]["updateCustomerProfilesV2"]
    profile = {
        "type": "object",
        "required": ["integrationId"],
        "properties": {
            "integrationId": {"type": "string", "maxLength": 1000},
            "description": {"type": "string"},  # a property named so is kept
            "tags": {"type": "array", "items": {"allOf": [{"type": "string", "minLength": 1}]}},
        },
    }
    assert operation == {
        "method": "PUT",
        "path": f"/v2/things/{extractor.OPERATIONS.index('updateCustomerProfilesV2')}",
        "parameters": {
            "silent": {
                "in": "query",
                "required": False,
                "schema": {"type": "string", "enum": ["yes", "no"]},
            }
        },
        "request": profile,
        "responses": {"200": profile, "204": None, "400": written["error"]},
    }
    assert written["error"] == {"type": "object", "properties": {"message": {"type": "string"}}}
    assert "prose" not in output.read_text()
    assert set(written["operations"]) == set(extractor.OPERATIONS)


def test_a_missing_operation_is_an_error(extractor: ModuleType) -> None:
    with pytest.raises(KeyError, match="updateCustomerProfilesV2"):
        extractor.extract(document(("updateCustomerProfileV2",)))


def test_a_recursive_schema_is_refused_rather_than_cut(extractor: ModuleType) -> None:
    tree = {"$ref": "#/components/schemas/Node"}
    doc = {"components": {"schemas": {"Node": {"properties": {"children": {"items": tree}}}}}}

    with pytest.raises(ValueError, match="recursive"):
        extractor.Extractor(doc).schema(tree)


def prose(node: object) -> list[str]:
    """Strings under keys that are prose in OpenAPI (a property may be named so)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("description", "summary", "title", "example") and isinstance(value, str):
                found.append(value)
            found += prose(value)
    elif isinstance(node, list):
        for value in node:
            found += prose(value)
    return found


def test_the_committed_schemas_hold_every_operation_and_no_prose(extractor: ModuleType) -> None:
    committed = json.loads(extractor.DEFAULT_OUTPUT.read_text())
    assert set(committed["operations"]) == set(extractor.OPERATIONS)
    assert committed["error"]["properties"]["errors"]["items"]["required"] == ["source", "title"]
    assert prose(committed) == []
