"""The PSP API contract: psp_assets/contract/psp-api.openapi.yaml, read as OpenAPI 3.1.

One document describes every PSP call the plugins make and the webhook the PSP sends them. This module
loads it (local `$ref`s resolved), validates instances against its schemas with `jsonschema` (Draft
2020-12, OpenAPI 3.1's dialect), matches a request (method, URL) to its operation, lists the fields of
a payload schema, and says what is wrong with the document itself. The contract tests
(verify/contract/cases.py, verify/contract/api.py) build their vectors from its examples and judge what
the plugins' cores sent against it. docs/contract.md explains the rules.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, UnknownType
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from psp_assets.core.errors import PspError
from psp_assets.core.payments.statuses import CANONICAL_STATUSES

CONTRACT_DIR = Path(__file__).resolve().parents[2] / "contract"
DEFAULT_CONTRACT_FILE = CONTRACT_DIR / "psp-api.openapi.yaml"
# The OpenAPI Initiative's JSON Schema for OAS 3.1 documents (2022-10-07), vendored unchanged.
OAS_SCHEMA_FILE = CONTRACT_DIR / "oas-3.1-schema.json"
CONTRACT_ENV = "PSP_CONTRACT_FILE"
STATUS_SCHEMA = "PaymentStatus"
_DOC_URI = "urn:psp:contract"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# Keywords that only annotate: editing them changes no behaviour, so they stay out of the digest.
_ANNOTATIONS = frozenset({"description", "summary", "title", "externalDocs"})
# Keywords whose value is data (examples, enums, defaults), kept byte for byte.
_DATA = frozenset({"example", "value", "enum", "const", "default"})
# Keywords whose value maps names (not keywords) to objects.
_NAME_MAPS = frozenset(
    {
        "properties", "patternProperties", "$defs", "dependentSchemas", "schemas", "parameters", "responses",
        "paths", "webhooks", "headers", "content", "examples", "securitySchemes", "requestBodies", "callbacks",
        "links", "variables", "encoding", "mapping", "pathItems",
    }
)  # fmt: skip


class ContractError(PspError):
    """The PSP API contract file is missing, unreadable or not the document the checks need."""


def contract_file(environ: Mapping[str, str] | None = None) -> Path:
    """The contract in force: $PSP_CONTRACT_FILE, else the repo's psp_assets/contract/psp-api.openapi.yaml."""
    env = os.environ if environ is None else environ
    return Path(env.get(CONTRACT_ENV) or DEFAULT_CONTRACT_FILE).resolve()


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # path, header, query, cookie
    required: bool
    schema: str | None  # JSON pointer of its schema in the document
    example: Any = None


@dataclass(frozen=True)
class Body:
    """A request body or response: its JSON schema (pointer) and named examples."""

    schema: str | None
    examples: Mapping[str, Any]
    media_type: str = "application/json"

    def example(self) -> Any:
        """The first example (document order); None when there is none."""
        return copy.deepcopy(next(iter(self.examples.values()))) if self.examples else None


@dataclass(frozen=True)
class Operation:
    method: str  # upper case
    path: str  # the path template (for a webhook: its name)
    operation_id: str
    parameters: tuple[Parameter, ...]
    body: Body | None
    body_required: bool
    responses: Mapping[str, Body | None] = field(default_factory=dict)
    pointer: str = ""

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def segments(self) -> list[str | None]:
        """Path segments; None stands for a path parameter."""
        return [None if s.startswith("{") and s.endswith("}") else s for s in self.path.strip("/").split("/")]

    def success(self) -> tuple[int, Body | None]:
        """The lowest 2xx response: the answer to a request that worked."""
        codes = sorted(c for c in self.responses if c.isdigit() and c.startswith("2"))
        if not codes:
            return 200, None
        return int(codes[0]), self.responses[codes[0]]

    def error(self) -> Body | None:
        for code in ("4XX", "400", "404", "default", "5XX"):
            if self.responses.get(code) is not None:
                return self.responses[code]
        return None

    def parameter(self, location: str, name: str) -> Parameter | None:
        for p in self.parameters:
            if p.location == location and p.name.lower() == name.lower():
                return p
        return None


@dataclass(frozen=True)
class Match:
    """What a request (method, URL) is in the contract: an operation and its path values, or a problem."""

    operation: Operation | None
    path_values: Mapping[str, str]
    problem: str


class Contract:
    """A loaded contract document. Build with `Contract.load(path)` (cached per file content)."""

    def __init__(self, document: dict[str, Any], path: Path) -> None:
        self.document = document
        self.path = path
        self._registry: Registry = Registry().with_resource(
            _DOC_URI, Resource(contents=document, specification=DRAFT202012)
        )

    @classmethod
    def load(cls, path: Path | None = None) -> Contract:
        path = (path or contract_file()).resolve()
        try:
            stat = path.stat()
        except OSError as exc:
            raise ContractError(f"{path}: the PSP API contract cannot be read ({exc.strerror})") from None
        return _load(str(path), stat.st_mtime_ns, stat.st_size)

    # --- the document ------------------------------------------------------------------------------

    def resolve(self, pointer: str) -> Any:
        """The node at a local JSON pointer ('#/components/schemas/Payment' or '/components/...')."""
        node: Any = self.document
        for raw in pointer.lstrip("#").strip("/").split("/") if pointer.strip("#/") else []:
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                raise ContractError(f"{self.path}: {pointer} does not exist in the contract")
        return node

    def _follow(self, node: Any, pointer: str) -> tuple[Any, str]:
        """Follow `$ref`s of a non-schema object (parameter, response, request body) to the object."""
        seen = set()
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise ContractError(f"{self.path}: {pointer}: only local $refs (#/...) are supported, not {ref!r}")
            if ref in seen:
                raise ContractError(f"{self.path}: {pointer}: $ref cycle through {ref}")
            seen.add(ref)
            pointer, node = ref[1:], self.resolve(ref)
        return node, pointer

    def schema(self, name: str) -> str:
        """The pointer of components/schemas/<name>."""
        pointer = f"/components/schemas/{name}"
        self.resolve(pointer)
        return pointer

    def schema_node(self, pointer: str) -> dict[str, Any]:
        """The schema at `pointer` with `$ref`s at its top followed."""
        node, _ = self._follow(self.resolve(pointer), pointer)
        return node if isinstance(node, dict) else {}

    @cached_property
    def digest(self) -> str:
        """sha256 of what the contract means: annotations (description, summary, title) left out, so a
        wording edit rebuilds nothing; every schema, path, parameter and example counts."""
        canonical = json.dumps(_semantic(self.document), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    # --- operations --------------------------------------------------------------------------------

    @cached_property
    def operations(self) -> tuple[Operation, ...]:
        """Every operation under `paths`, in document order."""
        out = []
        for path, item in (self.document.get("paths") or {}).items():
            out += self._operations_of(item, f"/paths/{_escape(path)}", path)
        return tuple(out)

    @cached_property
    def webhooks(self) -> dict[str, Operation]:
        """Webhook name -> its (POST) operation; `path` is the webhook's name."""
        out = {}
        for name, item in (self.document.get("webhooks") or {}).items():
            for op in self._operations_of(item, f"/webhooks/{_escape(name)}", name):
                out.setdefault(name, op)
        return out

    def operation(self, operation_id: str) -> Operation | None:
        return next((op for op in self.operations if op.operation_id == operation_id), None)

    def _operations_of(self, item: Any, pointer: str, path: str) -> list[Operation]:
        item, pointer = self._follow(item, pointer)
        if not isinstance(item, dict):
            return []
        shared = self._parameters(item.get("parameters") or [], pointer + "/parameters")
        out = []
        for method in _METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            where = f"{pointer}/{method}"
            own = self._parameters(op.get("parameters") or [], where + "/parameters")
            merged = {(p.location, p.name.lower()): p for p in (*shared, *own)}
            body, required = None, False
            if "requestBody" in op:
                node, at = self._follow(op["requestBody"], where + "/requestBody")
                body, required = self._body(node, at), bool(node.get("required"))
            responses = {
                str(code): self._body(*self._follow(node, f"{where}/responses/{_escape(str(code))}"))
                for code, node in (op.get("responses") or {}).items()
            }
            out.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    operation_id=str(op.get("operationId") or f"{method.upper()} {path}"),
                    parameters=tuple(merged.values()),
                    body=body,
                    body_required=required,
                    responses=responses,
                    pointer=where,
                )
            )
        return out

    def _parameters(self, nodes: list[Any], pointer: str) -> list[Parameter]:
        out = []
        for index, raw in enumerate(nodes):
            node, at = self._follow(raw, f"{pointer}/{index}")
            if isinstance(node, dict) and "name" in node and "in" in node:
                schema = f"{at}/schema" if "schema" in node else None
                example = node.get("example", (node.get("schema") or {}).get("example"))
                out.append(Parameter(str(node["name"]), str(node["in"]), bool(node.get("required")), schema, example))
        return out

    def _body(self, node: Any, pointer: str) -> Body | None:
        content = node.get("content") if isinstance(node, dict) else None
        if not isinstance(content, dict) or not content:
            return None
        media_type = "application/json" if "application/json" in content else next(iter(content))
        media = content[media_type] or {}
        at = f"{pointer}/content/{_escape(media_type)}"
        examples: dict[str, Any] = {}
        for name, example in (media.get("examples") or {}).items():
            resolved, _ = self._follow(example, f"{at}/examples/{_escape(name)}")
            if isinstance(resolved, dict) and "value" in resolved:
                examples[name] = resolved["value"]
        if not examples and "example" in media:
            examples["example"] = media["example"]
        return Body(f"{at}/schema" if "schema" in media else None, examples, media_type)

    # --- requests ----------------------------------------------------------------------------------

    def match(self, method: str, url: str, base: str) -> Match:
        """The operation `method url` calls, for an API at `base` (the client's api_base_url)."""
        base = base.rstrip("/")
        if not url.startswith(base + "/"):
            return Match(None, {}, f"{url} is not under the API base {base}")
        path = url[len(base) :].split("?", 1)[0].split("#", 1)[0]
        segments = path.strip("/").split("/")
        same_path: list[tuple[Operation, dict[str, str]]] = []
        for op in self.operations:
            template = op.segments
            if len(template) != len(segments):
                continue
            values = []
            for want, got in zip(template, segments, strict=True):
                if want is None:
                    values.append(unquote(got))
                elif want != got:
                    break
            else:
                names = [s[1:-1] for s in op.path.strip("/").split("/") if s.startswith("{")]
                same_path.append((op, dict(zip(names, values, strict=True))))
        for op, values in same_path:
            if op.method == method.upper():
                return Match(op, values, "")
        known = ", ".join(op.label for op in self.operations)
        if same_path:
            there = ", ".join(op.method for op, _ in same_path)
            return Match(None, {}, f"{method} {path}: the contract has only {there} on {same_path[0][0].path}")
        return Match(None, {}, f"{method} {path} is not in the contract (it has: {known})")

    def check_request(self, method: str, url: str, headers: Mapping[str, str], body: str | None, base: str) -> Match:
        """Match a request and check its path values, headers and body; `problem` lists what is wrong."""
        found = self.match(method, url, base)
        op = found.operation
        if op is None:
            return found
        problems: list[str] = []
        sent = {k.lower(): v for k, v in headers.items()}
        for p in op.parameters:
            value = found.path_values.get(p.name) if p.location == "path" else sent.get(p.name.lower())
            if p.location not in ("path", "header"):
                continue
            if value is None:
                if p.required:
                    problems.append(f"{p.location} parameter {p.name} missing (required)")
                continue
            problems += [f"{p.location} parameter {p.name}: {e}" for e in self.validate(value, p.schema)]
        if self._bearer and not sent.get("authorization", "").startswith("Bearer "):
            problems.append("no Authorization: Bearer <key> header (the contract's bearerAuth)")
        if op.body is None:
            if body not in (None, ""):
                problems.append(f"sends a body, but {op.label} takes none")
        elif body in (None, ""):
            if op.body_required:
                problems.append("sends no body (the contract requires one)")
        else:
            if sent.get("content-type", "").split(";")[0].strip() != op.body.media_type:
                problems.append(f"Content-Type is {sent.get('content-type')!r}, expected {op.body.media_type}")
            try:
                decoded = json.loads(body)
            except json.JSONDecodeError:
                problems.append("body is not JSON")
            else:
                problems += [f"body: {e}" for e in self.validate(decoded, op.body.schema)]
        return Match(op, found.path_values, "; ".join(problems))

    @cached_property
    def _bearer(self) -> bool:
        schemes = ((self.document.get("components") or {}).get("securitySchemes")) or {}
        wanted = {name for requirement in self.document.get("security") or [] for name in requirement}
        return any((schemes.get(n) or {}).get("scheme") == "bearer" for n in wanted)

    # --- schemas -----------------------------------------------------------------------------------

    def validator(self, pointer: str | None) -> Draft202012Validator:
        return Draft202012Validator({"$ref": f"{_DOC_URI}#{pointer or ''}"}, registry=self._registry)

    def validate(self, instance: Any, pointer: str | None) -> list[str]:
        """What is wrong with `instance` under the schema at `pointer` ('' when valid, each with its place)."""
        if pointer is None:
            return []
        try:
            errors = sorted(self.validator(pointer).iter_errors(instance), key=lambda e: list(e.absolute_path))
        except (SchemaError, UnknownType, Unresolvable) as exc:
            reason = str(exc).splitlines()[0]
            return [f"the contract's schema at {pointer} cannot be used ({reason}); see its problems"]
        return [f"{e.json_path}: {e.message}" for e in errors]

    def fields(self, pointer: str) -> dict[str, bool]:
        """Every field of an object schema as a dotted path -> whether it is required (at every level).

        Nested objects are walked (their own path listed too); arrays are leaves."""
        out: dict[str, bool] = {}

        def walk(node: dict[str, Any], prefix: str, required_above: bool, depth: int) -> None:
            properties, required = self._object_parts(node)
            for name, sub in properties.items():
                dotted = f"{prefix}{name}"
                needed = required_above and name in required
                out[dotted] = needed
                resolved = self._schema_deref(sub)
                if depth < 8 and self._object_parts(resolved)[0]:
                    walk(resolved, dotted + ".", needed, depth + 1)

        walk(self.schema_node(pointer), "", True, 0)
        return out

    def _schema_deref(self, node: Any) -> dict[str, Any]:
        for _ in range(16):
            if isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
                node = self.resolve(node["$ref"])
            else:
                break
        return node if isinstance(node, dict) else {}

    def _object_parts(self, node: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
        properties = dict(node.get("properties") or {})
        required = set(node.get("required") or [])
        for part in node.get("allOf") or []:
            sub_properties, sub_required = self._object_parts(self._schema_deref(part))
            properties.update(sub_properties)
            required |= sub_required
        return properties, required

    # --- the document's own problems ----------------------------------------------------------------

    @cached_property
    def problems(self) -> list[str]:
        """What keeps this document from being a valid OpenAPI 3.1 contract the checks can use."""
        where = str(self.path)
        out = [f"{where}: {e}" for e in _oas_errors(self.document)]
        if out:
            return out
        for pointer in _refs(self.document):
            try:
                self.resolve(pointer)
            except ContractError as exc:
                out.append(f"{where}: $ref {pointer!r} does not resolve ({exc})")
        if out:
            return out
        for name in (self.document.get("components") or {}).get("schemas") or {}:
            out += [f"{where}: components.schemas.{name}: {p}" for p in _schema_errors(self.resolve(self.schema(name)))]
        if out:
            return out  # examples cannot be checked against broken schemas
        ids: dict[str, str] = {}
        for op in (*self.operations, *self.webhooks.values()):
            if op.operation_id in ids:
                out.append(f"{where}: operationId {op.operation_id!r} used by {ids[op.operation_id]} and {op.label}")
            ids[op.operation_id] = op.label
            out += [f"{where}: {op.label}: {p}" for p in self._operation_problems(op)]
        return out

    def _operation_problems(self, op: Operation) -> list[str]:
        problems = []
        if op.pointer.startswith("/paths/"):
            in_path = {s[1:-1] for s in op.path.strip("/").split("/") if s.startswith("{")}
            declared = {p.name for p in op.parameters if p.location == "path"}
            problems += [f"path parameter {{{n}}} is not declared" for n in sorted(in_path - declared)]
            problems += [f"path parameter {n} is not in the path" for n in sorted(declared - in_path)]
        for p in op.parameters:
            node = self._follow(self.resolve(p.schema.rsplit("/schema", 1)[0]), "")[0] if p.schema else {}
            if "example" in node:
                problems += [f"parameter {p.name}: example: {e}" for e in self.validate(node["example"], p.schema)]
        bodies = [("request body", op.body)] if op.body else []
        bodies += [(f"response {code}", b) for code, b in op.responses.items() if b and code.startswith("2")]
        for what, body in bodies:
            if not body.examples:
                problems.append(f"{what}: no example (every request, response and event needs one)")
            for name, value in body.examples.items():
                problems += [f"{what}: example {name!r}: {e}" for e in self.validate(value, body.schema)]
        for code, body in op.responses.items():
            if body is not None and not code.startswith("2"):
                for name, value in body.examples.items():
                    problems += [f"response {code}: example {name!r}: {e}" for e in self.validate(value, body.schema)]
        return problems

    def status_problems(self) -> list[str]:
        """The contract's status enum must be statuses.CANONICAL_STATUSES, in order (one fact, one place)."""
        try:
            enum = self.schema_node(self.schema(STATUS_SCHEMA)).get("enum")
        except ContractError:
            enum = None
        if list(enum or []) == list(CANONICAL_STATUSES):
            return []
        return [
            f"{self.path}: components.schemas.{STATUS_SCHEMA}.enum is {enum}; it must be the canonical statuses "
            f"of psp_assets/core/payments/statuses.py, in order: {list(CANONICAL_STATUSES)}"
        ]


@lru_cache(maxsize=8)
def _load(path: str, _mtime_ns: int, _size: int) -> Contract:
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        raise ContractError(f"{path}:{at} not valid YAML: {getattr(exc, 'problem', exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"{path}: the PSP API contract cannot be read ({exc})") from None
    if not isinstance(document, dict):
        raise ContractError(f"{path}: the PSP API contract must be a YAML mapping (an OpenAPI 3.1 document)")
    return Contract(document, Path(path))


@lru_cache(maxsize=1)
def _oas_validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(OAS_SCHEMA_FILE.read_text(encoding="utf-8")))


def _oas_errors(document: dict[str, Any]) -> list[str]:
    errors = sorted(_oas_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    out = []
    for error in errors:
        # the OAS schema nests its reasons; the deepest says what is actually wrong
        deepest = min(error.context or [error], key=lambda e: -len(e.absolute_path)) if error.context else error
        place = ".".join(str(p) for p in deepest.absolute_path) or "(document)"
        out.append(f"{place}: {deepest.message[:300]} (OpenAPI 3.1 schema)")
    return out[:20]


def _schema_errors(schema: Any) -> list[str]:
    validator = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(schema)]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _semantic(node: Any, names: bool = False) -> Any:
    """The document without annotation keywords; names in name maps and data values kept verbatim."""
    if isinstance(node, list):
        return [_semantic(v) for v in node]
    if not isinstance(node, dict):
        return node
    if names:
        return {k: _semantic(v) for k, v in node.items()}
    out = {}
    for key, value in node.items():
        if key in _ANNOTATIONS:
            continue
        if key in _DATA or (key == "examples" and isinstance(value, list)):
            out[key] = value
        else:
            out[key] = _semantic(value, names=key in _NAME_MAPS and isinstance(value, dict))
    return out
