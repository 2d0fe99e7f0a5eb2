"""Validate HTTP requests against the ESPs' OpenAPI 3.0 descriptions (read from ../shared/esp-specs).

Used by the contract tests (every request an adapter sends) and by the local ESP sandbox (every request
it receives). Checks: the operation exists, auth and required headers, required and known query
parameters with their types, and the JSON body against the operation's request schema.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from jsonschema import Draft4Validator

KLAVIYO_SPEC_FILES = ("klaviyo-integration-subset.prism.json", "klaviyo-stable.json")
MAILCHIMP_SPEC_FILES = ("mailchimp-marketing-3.0.55-apisguru.json",)


class SpecViolation(ValueError):
    """A request that does not conform to the ESP's API description."""


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    spec: dict
    definition: dict
    parameters: tuple[dict, ...]


def _nullable_to_type_list(node: object) -> object:
    """OpenAPI 3.0 `nullable: true` means the JSON Schema type also admits null."""
    if isinstance(node, dict):
        out = {key: _nullable_to_type_list(value) for key, value in node.items()}
        if out.get("nullable") is True and isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        return out
    if isinstance(node, list):
        return [_nullable_to_type_list(item) for item in node]
    return node


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    regex = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
    return re.compile(f"^{regex}$")


class SpecValidator:
    """Validates requests against one or more OpenAPI documents (first one describing the path wins)."""

    def __init__(self, spec_files: list[Path]):
        self.spec_files = [path for path in spec_files if path.exists()]
        if not self.spec_files:
            raise FileNotFoundError(f"none of the ESP spec files exist: {[str(p) for p in spec_files]}")
        self.operations: list[Operation] = []
        self._schema_validators: dict[tuple[int, str, str], Draft4Validator] = {}
        for path in self.spec_files:
            spec = orjson.loads(path.read_bytes())
            base_path = urlsplit((spec.get("servers") or [{"url": ""}])[0]["url"]).path.rstrip("/")
            for template, item in spec["paths"].items():
                shared_params = item.get("parameters", [])
                for method, definition in item.items():
                    if method not in {"get", "post", "put", "patch", "delete"}:
                        continue
                    params = tuple(
                        self._resolve(spec, p) for p in [*shared_params, *definition.get("parameters", [])]
                    )
                    self.operations.append(
                        Operation(
                            method=method.upper(),
                            template=template,
                            pattern=_template_pattern(base_path + template),
                            spec=spec,
                            definition=definition,
                            parameters=params,
                        )
                    )

    @staticmethod
    def _resolve(spec: dict, node: dict) -> dict:
        while isinstance(node, dict) and "$ref" in node:
            target: object = spec
            for token in node["$ref"].lstrip("#/").split("/"):
                target = target[token.replace("~1", "/").replace("~0", "~")]  # type: ignore[index]
            node = target  # type: ignore[assignment]
        return node

    def find_operation(self, method: str, path: str) -> Operation | None:
        for operation in self.operations:
            if operation.method == method.upper() and operation.pattern.match(path):
                return operation
        return None

    def _body_validator(self, operation: Operation, content_type: str) -> Draft4Validator:
        key = (id(operation.spec), operation.method + operation.template, content_type)
        if key not in self._schema_validators:
            body = self._resolve(operation.spec, operation.definition["requestBody"])
            schema = copy.deepcopy(body["content"][content_type]["schema"])
            # Root the body schema beside the spec's components so `#/components/...` refs resolve.
            root = _nullable_to_type_list({**schema, "components": operation.spec.get("components", {})})
            self._schema_validators[key] = Draft4Validator(root)
        return self._schema_validators[key]

    def violations(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
        query: Mapping[str, list[str]] | None = None,
    ) -> list[str]:
        """Everything wrong with the request (empty list: it conforms)."""
        from urllib.parse import parse_qs

        parts = urlsplit(url)
        query = query if query is not None else parse_qs(parts.query, keep_blank_values=True)
        lower_headers = {key.lower(): value for key, value in headers.items()}
        operation = self.find_operation(method, parts.path)
        if operation is None:
            return [f"{method} {parts.path}: no such operation in {[p.name for p in self.spec_files]}"]
        problems = self._auth_violations(operation, lower_headers)
        known_query = set()
        for param in operation.parameters:
            name, where = param["name"], param["in"]
            if where == "header":
                if param.get("required") and name.lower() not in lower_headers:
                    problems.append(f"header {name!r} is required")
            elif where == "query":
                known_query.add(name)
                if name not in query:
                    if param.get("required"):
                        problems.append(f"query parameter {name!r} is required")
                    continue
                problems += _query_value_violations(name, param.get("schema", {}), query[name])
        problems += [f"query parameter {name!r} is not defined" for name in query if name not in known_query]
        problems += self._body_violations(operation, lower_headers, body)
        return [f"{method} {parts.path}: {problem}" for problem in problems]

    def _auth_violations(self, operation: Operation, headers: dict[str, str]) -> list[str]:
        schemes = operation.spec.get("components", {}).get("securitySchemes", {})
        requirements = operation.definition.get("security", operation.spec.get("security"))
        names = [name for requirement in requirements or [] for name in requirement] or list(schemes)
        for name in names:
            scheme = schemes.get(name, {})
            if scheme.get("type") == "apiKey" and scheme.get("in") == "header":
                value = headers.get(scheme["name"].lower(), "")
                prefix = scheme.get("x-default", "").split(" ")[0]
                if value and (not prefix or value.startswith(prefix + " ")):
                    return []
            elif scheme.get("type") == "http" and scheme.get("scheme") == "basic":
                basic = headers.get("authorization", "").startswith("Basic ")
                if basic:
                    return []
        return [f"missing or malformed authorization (expected one of {names})"] if names else []

    def _body_violations(
        self, operation: Operation, headers: dict[str, str], body: bytes | None
    ) -> list[str]:
        declared = operation.definition.get("requestBody")
        if not declared:
            return ["a body is not accepted here"] if body else []
        declared = self._resolve(operation.spec, declared)
        if not body:
            return ["a request body is required"] if declared.get("required") else []
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if content_type not in declared.get("content", {}):
            return [f"content-type {content_type!r} not in {list(declared.get('content', {}))}"]
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            return [f"body is not JSON: {error}"]
        validator = self._body_validator(operation, content_type)
        return [
            f"body at /{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
            for error in list(validator.iter_errors(document))[:20]
        ]

    def check(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None) -> None:
        problems = self.violations(method, url, headers, body)
        if problems:
            raise SpecViolation("; ".join(problems))


def _query_value_violations(name: str, schema: dict, values: list[str]) -> list[str]:
    problems = []
    items = values
    if schema.get("type") == "array":
        items = [item for value in values for item in value.split(",")]
        schema = schema.get("items", {})
    for value in items:
        if schema.get("type") == "integer":
            if not re.fullmatch(r"-?\d+", value):
                problems.append(f"query parameter {name!r}={value!r} is not an integer")
                continue
            number = int(value)
            if "maximum" in schema and number > schema["maximum"]:
                problems.append(f"query parameter {name!r}={number} exceeds maximum {schema['maximum']}")
            if "minimum" in schema and number < schema["minimum"]:
                problems.append(f"query parameter {name!r}={number} is below minimum {schema['minimum']}")
        if "enum" in schema and value not in schema["enum"]:
            problems.append(f"query parameter {name!r}={value!r} not in {schema['enum']}")
    return problems


@functools.lru_cache(maxsize=4)
def _cached_validator(files: tuple[str, ...]) -> SpecValidator:
    return SpecValidator([Path(f) for f in files])


def klaviyo_validator(specs_dir: Path) -> SpecValidator | None:
    """Validator over the Klaviyo subset (then the full stable spec); None when the specs are absent."""
    files = tuple(str(specs_dir / name) for name in KLAVIYO_SPEC_FILES if (specs_dir / name).exists())
    return _cached_validator(files) if files else None


def mailchimp_validator(specs_dir: Path) -> SpecValidator | None:
    files = tuple(str(specs_dir / name) for name in MAILCHIMP_SPEC_FILES if (specs_dir / name).exists())
    return _cached_validator(files) if files else None
