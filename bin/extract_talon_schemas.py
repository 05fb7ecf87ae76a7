#!/usr/bin/env python3
"""Extract the JSON Schemas of the Talon.One operations this project uses.

Reads Talon.One's OpenAPI document and writes, for each operation below, its
parameters, request body and response bodies as self-contained JSON Schemas:
every $ref resolved, and only structural keywords kept (names, types, required,
limits), so no prose or examples of Talon.One's are copied. The contract tests
validate against the file written here (tests/data/talon_one_schemas.json).

    python bin/extract_talon_schemas.py PATH/TO/talon-one-openapi.json \
        [--output tests/data/talon_one_schemas.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OPERATIONS = (
    "updateCustomerProfileV2",
    "updateCustomerProfilesV2",
    "trackEventV2",
    "createAudienceV2",
    "updateCustomerProfileAudiences",
    "deleteCustomerData",
    "getAttributes",
)
ERROR_SCHEMA = "ErrorResponseWithStatus"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "tests" / "data" / "talon_one_schemas.json"
HTTP_METHODS = ("get", "put", "post", "patch", "delete")

# JSON Schema keywords kept; everything else (description, title, example(s),
# deprecated, x-* extensions...) is left out.
SCHEMA_KEYWORDS = {
    "type", "format", "enum", "const", "nullable", "default",
    "required", "properties", "additionalProperties", "minProperties", "maxProperties",
    "items", "minItems", "maxItems", "uniqueItems",
    "minLength", "maxLength", "pattern",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "allOf", "anyOf", "oneOf", "not",
}  # fmt: skip


class Extractor:
    def __init__(self, document: dict[str, Any]):
        self.document = document

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        """Follow local $refs (#/components/...) until a node that is not one."""
        seen: list[str] = []
        while "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/") or ref in seen:
                raise ValueError(f"cannot resolve {ref!r}")
            seen.append(ref)
            node = self.document
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def schema(self, node: Any, stack: tuple[str, ...] = ()) -> Any:
        """A schema with its $refs inlined and only structural keywords."""
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            ref = node["$ref"]
            if ref in stack:
                raise ValueError(f"recursive schema {ref!r}: cannot inline it")
            return self.schema(self.resolve(node), (*stack, ref))
        kept: dict[str, Any] = {}
        for key, value in node.items():
            if key not in SCHEMA_KEYWORDS:
                continue
            if key == "properties":
                kept[key] = {name: self.schema(sub, stack) for name, sub in value.items()}
            elif key in ("allOf", "anyOf", "oneOf"):
                kept[key] = [self.schema(sub, stack) for sub in value]
            elif key in ("items", "additionalProperties", "not"):
                kept[key] = self.schema(value, stack)
            else:
                kept[key] = value
        return kept

    def operation(self, operation_id: str) -> dict[str, Any]:
        for path, item in self.document["paths"].items():
            for method in HTTP_METHODS:
                operation = item.get(method)
                if operation and operation.get("operationId") == operation_id:
                    return self._operation(method, path, operation)
        raise KeyError(f"operation {operation_id} not in the document")

    def _operation(self, method: str, path: str, operation: dict[str, Any]) -> dict[str, Any]:
        parameters = {}
        for parameter in operation.get("parameters", []):
            parameter = self.resolve(parameter)
            parameters[parameter["name"]] = {
                "in": parameter["in"],
                "required": bool(parameter.get("required")),
                "schema": self.schema(parameter.get("schema", {})),
            }
        result: dict[str, Any] = {"method": method.upper(), "path": path}
        result["parameters"] = parameters
        if "requestBody" in operation:
            body = self.resolve(operation["requestBody"])
            result["request"] = self._json_schema(body)
        result["responses"] = {
            status: self._json_schema(self.resolve(response))
            for status, response in operation.get("responses", {}).items()
        }
        return result

    def _json_schema(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The application/json schema of a request or response; None for no body."""
        media = body.get("content", {}).get("application/json")
        return None if media is None else self.schema(media.get("schema", {}))


def extract(document: dict[str, Any]) -> dict[str, Any]:
    extractor = Extractor(document)
    return {
        "openapi": document.get("openapi"),
        "version": document.get("info", {}).get("version"),
        "operations": {name: extractor.operation(name) for name in OPERATIONS},
        "error": extractor.schema({"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("openapi", type=Path, help="Talon.One's OpenAPI document (JSON)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    schemas = extract(json.loads(args.openapi.read_text()))
    args.output.write_text(json.dumps(schemas, indent=1, sort_keys=True) + "\n")
    print(f"{len(schemas['operations'])} operations written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
