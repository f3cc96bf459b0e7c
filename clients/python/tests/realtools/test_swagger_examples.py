"""Every operation in ``/openapi.json``, executed the way Swagger UI's *Try it
out* → *Execute* sends it when the user types nothing.

Swagger UI (5.x, the version poem-openapi serves at ``/docs``) fills each
parameter from, in order: the parameter's ``examples`` (first one), its
``content`` example, its ``example``, its schema's ``example``, its schema's
``default``. It fills the request body from the media type's ``examples``
(first one) or ``example``; without either, from the schema's ``example``;
without that, it *generates* a body from the schema (random strings matching
``pattern``, ``additionalProp1``…, every optional field set). That generated
body is what a user got on ``POST /api/v1/runs`` before the spec carried
examples: a 422. This module mirrors those rules in Python (no browser; the
browser itself is exercised in ``test_swagger_browser.py``), sends the result
with httpx to a fresh server, and expects each operation's documented success
status.

Ids the server makes (``run_…``, validation ids) cannot be known by an example,
so an operation that needs one only works for a Swagger user if the spec says
where it comes from: an OpenAPI ``links`` entry on the response that created
it. Those links are followed here; a missing link is reported, and the created
id is substituted so the rest of the operation is still checked.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import quote, urlencode

import httpx
import pytest

from conftest import Registry, run_registry

try:  # Python 3.11+ moved the regex parser; the old name still works, with a warning.
    import re._parser as sre_parse  # type: ignore[import-not-found]
    from re import _constants as sre_constants  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants
    import sre_parse

JSON = Any
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

#: The order a person trying the API would follow on one run: create it, read
#: it, keep it alive, record a validation against it, read those back, then
#: finish it, and only then wait for it (which answers at once for a final
#: run instead of blocking for ``timeout`` seconds). Operations not listed
#: (added later) run after these, in spec order.
ORDER = (
    "health",
    "ready",
    "create_run",
    "get_run",
    "list_runs",
    "heartbeat_run",
    "list_run_events",
    "record_validation",
    "get_validation",
    "list_validations",
    "get_validation_stats",
    "update_run",
    "wait_for_run",
    "create_webhook",
    "list_webhooks",
    "get_webhook",
    "test_webhook",
    "list_webhook_deliveries",
    "redeliver_webhook_message",
    "delete_webhook",
)

#: Path parameters that name something only the server can mint, and the
#: operation whose response carries it (JSON pointer into the body). These are
#: the parameters that need an OpenAPI link; others (``contract_id``) are
#: chosen by the client, so their example works as is.
SERVER_IDS = {
    "run_id": ("create_run", "/id"),
    "validation_id": ("record_validation", "/id"),
    "webhook_id": ("create_webhook", "/id"),
    "delivery_id": ("test_webhook", "/id"),
}

#: A server that waits (``wait_for_run``, up to 60 s by its rules) must not be
#: cut off by the client.
HTTP_TIMEOUT = 75.0


# --------------------------------------------------------------------------
# Reading the spec the way Swagger UI's resolver does.
# --------------------------------------------------------------------------


def pointer_get(document: JSON, pointer: str) -> JSON:
    """RFC 6901: ``/a/b~1c`` → ``document["a"]["b/c"]``; KeyError when absent."""
    if pointer in ("", "#"):
        return document
    node = document
    for raw in pointer.lstrip("#").lstrip("/").split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(token)]
        elif isinstance(node, dict):
            node = node[token]
        else:
            raise KeyError(pointer)
    return node


def deep_merge(base: Dict[str, Any], extra: Dict[str, Any]) -> Dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if key == "required" and isinstance(value, list):
            merged[key] = list(dict.fromkeys([*merged.get(key, []), *value]))
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve(spec: JSON, node: JSON, seen: Tuple[str, ...] = ()) -> JSON:
    """``node`` with local ``$ref``s replaced and ``allOf`` merged into its
    parent, as swagger-client hands schemas to Swagger UI's sampler."""
    if isinstance(node, list):
        return [resolve(spec, item, seen) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node and isinstance(node["$ref"], str):
        ref = node["$ref"]
        if ref in seen:  # a recursive schema: stop, as Swagger does
            return {}
        target = resolve(spec, pointer_get(spec, ref), (*seen, ref))
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return deep_merge(target, resolve(spec, rest, seen)) if rest else target
    out = {key: resolve(spec, value, seen) for key, value in node.items()}
    if isinstance(out.get("allOf"), list):
        merged: Dict[str, Any] = {}
        for member in out.pop("allOf"):
            if isinstance(member, dict):
                merged = deep_merge(merged, member)
        out = deep_merge(merged, out)
    return out


@dataclass
class Operation:
    method: str
    path: str
    operation_id: str
    raw: Dict[str, Any]  # resolved operation object
    parameters: List[Dict[str, Any]]

    @property
    def label(self) -> str:
        return f"{self.operation_id} ({self.method.upper()} {self.path})"

    def expected_status(self) -> int:
        """The documented success status of a first call on a fresh database.

        The lowest documented 2xx, except that a create documenting 201 is
        expected to answer 201: its 200 documents the Idempotency-Key replay,
        which a first call cannot get.
        """
        statuses = sorted(int(code) for code in self.raw.get("responses", {})
                          if code.isdigit() and 200 <= int(code) < 300)
        if not statuses:
            raise AssertionError(f"{self.label} documents no 2xx response")
        return 201 if 201 in statuses else statuses[0]


def operations(spec: JSON) -> List[Operation]:
    found: List[Operation] = []
    for path, item in spec.get("paths", {}).items():
        item = resolve(spec, item)
        shared = item.get("parameters", [])
        for method in HTTP_METHODS:
            raw = item.get(method)
            if raw is None:
                continue
            own = raw.get("parameters", [])
            names = {(p["name"], p["in"]) for p in own}
            params = [p for p in shared if (p["name"], p["in"]) not in names] + own
            found.append(Operation(method, path, raw.get("operationId", f"{method} {path}"), raw, params))
    rank = {name: index for index, name in enumerate(ORDER)}
    return sorted(found, key=lambda op: rank.get(op.operation_id, len(ORDER)))


# --------------------------------------------------------------------------
# What Swagger UI prefills.
# --------------------------------------------------------------------------


def js_string(value: JSON) -> str:
    """Swagger UI's ``stringify``: strings as they are, objects as JSON,
    numbers and booleans as JavaScript prints them."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, indent=2)


def first_example(holder: Dict[str, Any]) -> Tuple[bool, JSON]:
    """(found, value) from ``examples`` (the first, which Swagger UI selects)
    or else ``example`` of a parameter or media type object."""
    examples = holder.get("examples")
    if isinstance(examples, dict) and examples:
        first = next(iter(examples.values()))
        if isinstance(first, dict) and "value" in first:
            return True, first["value"]
        return False, None
    if "example" in holder:
        return True, holder["example"]
    return False, None


def parameter_value(param: Dict[str, Any]) -> Optional[JSON]:
    """What Swagger UI puts in a parameter's input before the user types
    (parameter-row.jsx ``setDefaultValue``, OpenAPI 3 branch)."""
    schema = param.get("schema") or {}
    found, value = first_example(param) if "examples" in param else (False, None)
    if not found:
        content = param.get("content") or {}
        if content:
            media = next(iter(content.values()))
            if isinstance(media, dict) and "example" in media:
                return media["example"]
        if "example" in param:
            return param["example"]
        if "example" in schema:
            return schema["example"]
        if "default" in schema:
            return schema["default"]
        return param.get("default")
    return value


# --------------------------------------------------------------------------
# The body Swagger UI generates when there is no example (its JSON Schema 5
# sampler): kept close enough to reproduce what users were sent.
# --------------------------------------------------------------------------

#: randexp, which Swagger UI uses for ``pattern``, draws from printable ASCII
#: and caps unbounded repeats at min + 100.
PRINTABLE = [chr(c) for c in range(32, 127)]


def _class_matches(char: str, items: List[Tuple[Any, Any]]) -> bool:
    negate = False
    hit = False
    code = ord(char)
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            hit = hit or code == arg
        elif name == "RANGE":
            hit = hit or arg[0] <= code <= arg[1]
        elif name == "CATEGORY":
            cat = str(arg)
            if "SPACE" in cat:
                test = char.isspace()
            elif "DIGIT" in cat:
                test = char.isdigit()
            else:
                test = char.isalnum() or char == "_"
            hit = hit or (not test if "NOT" in cat else test)
    return hit != negate


def _generate(parsed: Any, rng: random.Random) -> str:
    out: List[str] = []
    for op, arg in parsed:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append(rng.choice([c for c in PRINTABLE if ord(c) != arg]))
        elif name == "ANY":
            out.append(rng.choice(PRINTABLE))
        elif name == "IN":
            choices = [c for c in PRINTABLE if _class_matches(c, arg)]
            out.append(rng.choice(choices) if choices else "")
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = arg
            high = low + 100 if high == sre_constants.MAXREPEAT else high
            out.extend(_generate(sub, rng) for _ in range(rng.randint(low, high)))
        elif name == "SUBPATTERN":
            out.append(_generate(arg[-1], rng))
        elif name == "BRANCH":
            out.append(_generate(rng.choice(arg[1]), rng))
        # AT (anchors) and anything exotic generate nothing.
    return "".join(out)


def string_from_regex(pattern: str, rng: random.Random) -> str:
    try:
        return _generate(sre_parse.parse(pattern), rng)
    except Exception:  # Swagger UI falls back the same way on a regex it cannot read
        return "string"


def sample(schema: JSON, rng: random.Random, override: Any = None, has_override: bool = False) -> JSON:
    """Swagger UI's ``sampleFromSchema`` for JSON, write-only fields included."""
    schema = schema if isinstance(schema, dict) else {}
    value: JSON
    if has_override or "example" in schema or "default" in schema:
        value = override if has_override else schema.get("example", schema.get("default"))
        if isinstance(value, str) and schema.get("type") not in (None, "string"):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value
    kind = schema.get("type")
    if kind is None:
        if "properties" in schema or "additionalProperties" in schema:
            kind = "object"
        elif "items" in schema:
            kind = "array"
        elif not schema.get("enum"):
            kind = "string"
    if kind == "object":
        obj: Dict[str, Any] = {}
        for name, prop in (schema.get("properties") or {}).items():
            if isinstance(prop, dict) and (prop.get("deprecated") or prop.get("readOnly")):
                continue
            obj[name] = sample(prop, rng)
        extra = schema.get("additionalProperties")
        if extra is True:
            obj["additionalProp1"] = {}
        elif isinstance(extra, dict):
            for n in range(1, 4):
                obj[f"additionalProp{n}"] = sample(extra, rng)
        return obj
    if kind == "array":
        return [sample(schema.get("items") or {}, rng)]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            value = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        elif fmt == "date":
            value = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        elif isinstance(schema.get("pattern"), str):
            value = string_from_regex(schema["pattern"], rng)
        else:
            value = "string"
    elif kind in ("integer", "number"):
        value = 0
        if schema.get("minimum") is not None:
            value = schema["minimum"] + (1 if schema.get("exclusiveMinimum") else 0)
        if schema.get("maximum") is not None:
            value = schema["maximum"] - (1 if schema.get("exclusiveMaximum") else 0)
        if kind == "integer":
            value = int(value)
    elif kind == "boolean":
        value = True
    else:
        value = "string"
    if isinstance(value, str):
        if schema.get("maxLength") is not None:
            value = value[: schema["maxLength"]]
        if schema.get("minLength") is not None and value:
            index = 0
            while len(value) < schema["minLength"]:
                value += value[index % len(value)]
                index += 1
    return value


@dataclass
class Body:
    media_type: str
    text: str
    value: JSON
    generated: bool  # no example anywhere: Swagger UI made it up from the schema


def request_body(op: Operation, rng: random.Random) -> Optional[Body]:
    """request-body.jsx ``getDefaultRequestBodyValue`` for the first media
    type (the one Swagger UI selects)."""
    body = op.raw.get("requestBody")
    if not body:
        return None
    media_type, media = next(iter((body.get("content") or {}).items()))
    schema = media.get("schema") or {}
    found, example = first_example(media)
    generated = not found and "example" not in schema and "default" not in schema
    value = sample(schema, rng, example, found)
    return Body(media_type, js_string(value), value, generated)


# --------------------------------------------------------------------------
# OpenAPI links.
# --------------------------------------------------------------------------


@dataclass
class Exchange:
    """One call as made, for runtime expressions and for the report."""

    op: Operation
    url: str
    path_params: Dict[str, str]
    query: List[Tuple[str, str]]
    headers: Dict[str, str]
    body: Optional[Body]
    response: Optional[httpx.Response] = None

    def response_json(self) -> JSON:
        assert self.response is not None
        try:
            return self.response.json()
        except ValueError:
            return None


def evaluate(expression: Any, exchange: Exchange) -> Any:
    """An OpenAPI runtime expression, or a literal; ``{…}`` embedded in a
    string is expanded."""
    if not isinstance(expression, str):
        return expression
    if not expression.startswith("$"):
        return re.sub(r"\{(\$[^}]+)\}", lambda m: str(evaluate(m.group(1), exchange)), expression)
    assert exchange.response is not None
    if expression == "$url":
        return exchange.url
    if expression == "$method":
        return exchange.op.method.upper()
    if expression == "$statusCode":
        return exchange.response.status_code
    if expression.startswith("$response.body"):
        return pointer_get(exchange.response_json(), expression[len("$response.body"):])
    if expression.startswith("$response.header."):
        return exchange.response.headers[expression[len("$response.header."):]]
    if expression.startswith("$request.body"):
        assert exchange.body is not None
        return pointer_get(exchange.body.value, expression[len("$request.body"):])
    if expression.startswith("$request.path."):
        return exchange.path_params[expression[len("$request.path."):]]
    if expression.startswith("$request.query."):
        return dict(exchange.query)[expression[len("$request.query."):]]
    if expression.startswith("$request.header."):
        wanted = expression[len("$request.header."):].lower()
        return {k.lower(): v for k, v in exchange.headers.items()}[wanted]
    raise KeyError(f"unsupported runtime expression {expression!r}")


def evaluate_deep(value: Any, exchange: Exchange) -> Any:
    """A link's ``requestBody``: an expression, or an object whose string
    leaves may be expressions (how this spec writes its body links)."""
    if isinstance(value, dict):
        return {key: evaluate_deep(item, exchange) for key, item in value.items()}
    if isinstance(value, list):
        return [evaluate_deep(item, exchange) for item in value]
    if isinstance(value, str) and value.startswith("{$") and value.endswith("}"):
        return evaluate(value[1:-1], exchange)
    return evaluate(value, exchange)


def link_targets(spec: JSON, link: Dict[str, Any], target: Operation) -> bool:
    if "operationId" in link:
        return bool(link["operationId"] == target.operation_id)
    ref = link.get("operationRef")
    if isinstance(ref, str) and ref.startswith("#/paths/"):
        tokens = ref[len("#/paths/"):].split("/")
        path = tokens[0].replace("~1", "/").replace("~0", "~")
        return path == target.path and tokens[-1].lower() == target.method
    return False


def linked_value(spec: JSON, done: List[Exchange], target: Operation, param: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    """(value, where from) for ``param`` of ``target`` from a link on a
    response already received, the latest first."""
    for exchange in reversed(done):
        if exchange.response is None:
            continue
        responses = exchange.op.raw.get("responses", {})
        status = str(exchange.response.status_code)
        response = responses.get(status) or responses.get(status[0] + "XX") or responses.get("default") or {}
        for name, link in (response.get("links") or {}).items():
            if not isinstance(link, dict) or not link_targets(spec, link, target):
                continue
            params = link.get("parameters") or {}
            key = next((k for k in (f"{param['in']}.{param['name']}", param["name"]) if k in params), None)
            if key is None:
                continue
            try:
                value = evaluate(params[key], exchange)
            except (KeyError, IndexError, ValueError, TypeError, AssertionError) as exc:
                raise AssertionError(
                    f"link {name!r} on {exchange.op.operation_id}'s {status} response: "
                    f"cannot evaluate {params[key]!r}: {exc!r}") from exc
            return js_string(value), f"link {name!r} on {exchange.op.operation_id}'s {status} response"
    return None


# --------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------


@dataclass
class Outcome:
    exchange: Exchange
    expected: int
    problems: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.problems)

    def report(self) -> str:
        ex = self.exchange
        lines = [f"* {ex.op.label}"]
        lines += [f"    - {problem}" for problem in self.problems]
        lines += [f"    note: {note}" for note in self.notes]
        query = "&".join(f"{k}={v}" for k, v in ex.query)
        lines.append(f"    sent: {ex.op.method.upper()} {ex.url}{'?' + query if query else ''}")
        if ex.body is not None:
            origin = "generated from the schema: no example in the spec" if ex.body.generated else "the spec's example"
            lines.append(f"    body ({origin}): {ex.body.text[:2000]}")
        if ex.response is not None:
            lines.append(f"    got: {ex.response.status_code} {ex.response.text[:1000]}")
        return "\n".join(lines)


def api_key_headers(spec: JSON, op: Operation, api_key: str) -> Tuple[Dict[str, str], Dict[str, str]]:
    """The credentials Swagger UI adds after Authorize: the key goes to every
    operation whose security names an apiKey scheme (headers, query)."""
    schemes = spec.get("components", {}).get("securitySchemes", {})
    requirements = op.raw.get("security", spec.get("security", []))
    headers: Dict[str, str] = {}
    query: Dict[str, str] = {}
    for requirement in requirements:
        for name in requirement:
            scheme = schemes.get(name, {})
            if scheme.get("type") == "apiKey":
                (headers if scheme.get("in") == "header" else query)[scheme["name"]] = api_key
        if headers or query:
            break
    return headers, query


def execute_all(spec: JSON, registry: Registry, http: httpx.Client) -> List[Outcome]:
    rng = random.Random(0)
    done: List[Exchange] = []
    outcomes: List[Outcome] = []
    created: Dict[str, JSON] = {}  # operationId -> response body, for substitutions
    for op in operations(spec):
        outcome_problems: List[str] = []
        notes: List[str] = []
        path_params: Dict[str, str] = {}
        query: List[Tuple[str, str]] = []
        headers, auth_query = api_key_headers(spec, op, registry.api_key)
        query.extend(auth_query.items())
        for param in op.parameters:
            where, name = param["in"], param["name"]
            raw = parameter_value(param)
            value = None if raw is None else js_string(raw)
            if where == "path" and name in SERVER_IDS:
                # Swagger UI does not follow links itself; they tell the user
                # (and any client) which earlier answer to copy the id from.
                producer, pointer = SERVER_IDS[name]
                linked = linked_value(spec, done, op, param)
                if linked is not None:
                    value, origin = linked
                    notes.append(f"path parameter {name} = {value} from {origin}")
                else:
                    prefilled = (f"its example {value!r} names no existing resource on a fresh server" if value
                                 else "it has no example either, so Swagger UI refuses to execute")
                    outcome_problems.append(
                        f"no OpenAPI link from {producer}'s response supplies path parameter {name}; "
                        + prefilled)
                    value = None
                    if producer in created:
                        value = js_string(pointer_get(created[producer], pointer))
                        notes.append(f"substituted {name} = {value} (the id {producer} returned) "
                                     "to check the rest of the operation")
            elif (value is None or value == "") and param.get("required"):
                outcome_problems.append(
                    f"required {where} parameter {name} has no example or default: Swagger UI "
                    "refuses to execute until the user types one")
            if value is None or value == "":
                continue
            if where == "path":
                path_params[name] = value
            elif where == "query":
                query.append((name, value))
            elif where == "header":
                headers[name] = value
            elif where == "cookie":
                headers["Cookie"] = f"{name}={value}"
        url_path = op.path
        for name, value in path_params.items():
            url_path = url_path.replace("{" + name + "}", quote(value, safe=""))
        body = request_body(op, rng)
        success = op.raw.get("responses", {}).get(str(op.expected_status()), {})
        accept = next(iter(success.get("content") or {}), "*/*")
        headers["accept"] = accept
        if body is not None:
            headers["Content-Type"] = body.media_type
        exchange = Exchange(op, f"{registry.url}{url_path}", path_params, query, headers, body)
        outcome = Outcome(exchange, op.expected_status(), outcome_problems, notes)
        outcomes.append(outcome)
        if "{" in url_path:
            outcome.problems.append(f"path parameters left unfilled in {url_path}")
            continue
        try:
            exchange.response = http.request(
                op.method.upper(), exchange.url, params=urlencode(query, quote_via=quote, safe=""), headers=headers,
                content=body.text.encode() if body is not None else None,
            )
        except httpx.HTTPError as exc:
            outcome.problems.append(f"request failed: {exc!r}")
            continue
        done.append(exchange)
        status = exchange.response.status_code
        if status != outcome.expected:
            outcome.problems.append(f"answered {status}, expected {outcome.expected}")
        elif op.operation_id not in created:
            created[op.operation_id] = exchange.response_json()
    return outcomes + follow_body_links(spec, done, registry, http)


def fail_if(problems: List[str], header: str) -> None:
    """One failure listing every problem, without pytest's repr of the list."""
    if problems:
        pytest.fail(header + "\n" + "\n".join(f"  {p}" for p in problems), pytrace=False)


def follow_body_links(spec: JSON, done: List[Exchange], registry: Registry, http: httpx.Client) -> List[Outcome]:
    """Links that carry a ``requestBody`` promise that this body, built from
    the response, is accepted by the target: send it and check."""
    outcomes: List[Outcome] = []
    ops = operations(spec)
    for exchange in list(done):
        assert exchange.response is not None
        responses = exchange.op.raw.get("responses", {})
        response = responses.get(str(exchange.response.status_code)) or {}
        for name, link in (response.get("links") or {}).items():
            if not isinstance(link, dict) or "requestBody" not in link:
                continue
            target = next((op for op in ops if link_targets(spec, link, op)), None)
            label = f"link {name!r} on {exchange.op.operation_id}'s {exchange.response.status_code} response"
            if target is None:
                dummy = Exchange(exchange.op, exchange.url, {}, [], {}, None)
                outcomes.append(Outcome(dummy, 0, [f"{label} names no operation in the spec"]))
                continue
            problems: List[str] = []
            path_params: Dict[str, str] = {}
            try:
                value = evaluate_deep(link["requestBody"], exchange)
                for key, expression in (link.get("parameters") or {}).items():
                    path_params[key.split(".", 1)[-1]] = js_string(evaluate(expression, exchange))
            except (KeyError, IndexError, ValueError, TypeError, AssertionError) as exc:
                dummy = Exchange(target, exchange.url, {}, [], {}, None)
                outcomes.append(Outcome(dummy, 0, [f"{label}: cannot evaluate: {exc!r}"]))
                continue
            url_path = target.path
            for key, param_value in path_params.items():
                url_path = url_path.replace("{" + key + "}", quote(param_value, safe=""))
            media_type = next(iter((target.raw.get("requestBody") or {}).get("content") or {}), "application/json")
            headers, query = api_key_headers(spec, target, registry.api_key)
            headers["Content-Type"] = media_type
            body = Body(media_type, json.dumps(value, indent=2), value, False)
            followed = Exchange(target, f"{registry.url}{url_path}", path_params, list(query.items()), headers, body)
            outcome = Outcome(followed, target.expected_status(), problems, [f"body from {label}"])
            outcomes.append(outcome)
            try:
                followed.response = http.request(target.method.upper(), followed.url, params=urlencode(followed.query, quote_via=quote, safe=""),
                                                 headers=headers, content=body.text.encode())
            except httpx.HTTPError as exc:
                problems.append(f"request failed: {exc!r}")
                continue
            if followed.response.status_code != outcome.expected:
                problems.append(f"following {label} answered {followed.response.status_code}, "
                                f"expected {outcome.expected}")
    return outcomes


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Registry, JSON]]:
    """A server of its own, with an empty database, so every example meets
    the state a first-time Swagger user's server has."""
    with run_registry(tmp_path_factory.mktemp("swagger-examples")) as server:
        spec = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
        # The user authorizes with an admin key, which may also write: the
        # webhook operations need one.
        yield dataclasses.replace(server, api_key=server.create_key("swagger-admin", "admin")), spec


def test_every_operation_answers_its_success_status_with_swaggers_prefilled_request(
    live: Tuple[Registry, JSON],
) -> None:
    registry, spec = live
    with httpx.Client(timeout=HTTP_TIMEOUT) as http:
        outcomes = execute_all(spec, registry, http)
    assert outcomes, "the spec lists no operation"
    failed = [o for o in outcomes if o.failed]
    summary = ", ".join(
        f"{o.exchange.op.operation_id}{' (via a link)' if o.notes and o.notes[-1].startswith('body from') else ''}: "
        f"{o.exchange.response.status_code if o.exchange.response is not None else 'not sent'}"
        for o in outcomes)
    if failed:
        pytest.fail(
            f"{len(failed)} of {len(outcomes)} operations fail when executed as Swagger UI sends them "
            f"with nothing typed (all: {summary}):\n" + "\n".join(o.report() for o in failed),
            pytrace=False,
        )


def test_every_request_body_has_an_example(live: Tuple[Registry, JSON]) -> None:
    """Without one, Swagger UI generates a body from the schema, which the
    rules then refuse (random strings, ``completed_at`` with ``pending``)."""
    _, spec = live
    missing = []
    for op in operations(spec):
        body = request_body(op, random.Random(0))
        if body is not None and body.generated:
            missing.append(f"{op.label}: {body.media_type} has no example; Swagger UI sends {body.text[:300]}")
    fail_if(missing, "request bodies without an example:")


def test_every_path_and_query_parameter_is_prefilled(live: Tuple[Registry, JSON]) -> None:
    """Each path or query parameter gets a value in Swagger UI without typing
    (an example, or a default). Optional headers (Idempotency-Key, If-Match)
    are left out on purpose: an empty one is what a first call should send;
    so is ``cursor``, which would start every Try it out in mid-list."""
    _, spec = live
    missing = [
        f"{op.label}: {p['in']} parameter {p['name']}"
        for op in operations(spec)
        for p in op.parameters
        if p["in"] in ("path", "query") and p["name"] != "cursor" and parameter_value(p) in (None, "")
    ]
    fail_if(missing, "parameters Swagger UI leaves empty:")


def test_every_response_with_a_body_has_an_example(live: Tuple[Registry, JSON]) -> None:
    """Swagger UI shows a response's example beside it; without one it shows a
    sample generated from the schema, which breaks the rules it documents."""
    _, spec = live
    missing = []
    for op in operations(spec):
        statuses = [
            status
            for status, response in op.raw.get("responses", {}).items()
            for media in (response.get("content") or {}).values()
            if not first_example(media)[0] and "example" not in (media.get("schema") or {})
        ]
        if statuses:
            missing.append(f"{op.label}: {', '.join(statuses)}")
    fail_if(missing, "responses without an example, by operation:")


def test_examples_follow_their_schemas(live: Tuple[Registry, JSON]) -> None:
    """Each example the spec carries (bodies, parameters, responses) fits the
    schema printed next to it: types, enums, required and unknown fields."""
    _, spec = live
    problems: List[str] = []
    for op in operations(spec):
        for param in op.parameters:
            for origin, example in examples_of(param):
                problems += [f"{op.label} parameter {param['name']} {origin}: {p}"
                             for p in check(example, param.get("schema") or {}, "")]
        body = op.raw.get("requestBody") or {}
        for media_type, media in (body.get("content") or {}).items():
            for origin, example in examples_of(media):
                problems += [f"{op.label} request {media_type} {origin}: {p}"
                             for p in check(example, media.get("schema") or {}, "")]
        for status, response in op.raw.get("responses", {}).items():
            for media_type, media in (response.get("content") or {}).items():
                for origin, example in examples_of(media):
                    problems += [f"{op.label} {status} {origin}: {p}"
                                 for p in check(example, media.get("schema") or {}, "")]
    fail_if(problems, "examples that contradict their schema:")


def test_server_ids_are_linked_from_the_response_that_creates_them(live: Tuple[Registry, JSON]) -> None:
    """Every operation with a run_id (validation_id, webhook_id, delivery_id)
    path parameter is the target of an OpenAPI link that supplies it: on the
    success response of the operation that creates the id, or on one that
    passes it on from its own request (``$request.path.<name>``), so a reader
    of the spec knows where the id comes from."""
    _, spec = live
    ops = {op.operation_id: op for op in operations(spec)}
    missing = []
    for op in ops.values():
        for param in op.parameters:
            if param["in"] != "path" or param["name"] not in SERVER_IDS:
                continue
            name = param["name"]
            producer_id, _ = SERVER_IDS[name]
            if producer_id not in ops:
                missing.append(f"{op.label}: no operation {producer_id} in the spec")
                continue
            found = False
            for source in ops.values():
                success = source.raw["responses"].get(str(source.expected_status()), {})
                for link in (success.get("links") or {}).values():
                    if not (isinstance(link, dict) and link_targets(spec, link, op)):
                        continue
                    params = link.get("parameters") or {}
                    value = params.get(name, params.get(f"path.{name}"))
                    from_producer = source.operation_id == producer_id and value is not None
                    passed_on = value == f"$request.path.{name}"
                    found = found or from_producer or passed_on
            if not found:
                missing.append(f"{op.label}: no link on {producer_id}'s {ops[producer_id].expected_status()} "
                               f"response (or passing it on) supplies {name}")
    fail_if(missing, "operations a Swagger user cannot chain to the call that made their id:")


# --------------------------------------------------------------------------
# A small OpenAPI 3.0 schema check for examples (no jsonschema dependency).
# --------------------------------------------------------------------------


def examples_of(holder: Dict[str, Any]) -> List[Tuple[str, JSON]]:
    found: List[Tuple[str, JSON]] = []
    for name, example in (holder.get("examples") or {}).items():
        if isinstance(example, dict) and "value" in example:
            found.append((f"example {name!r}", example["value"]))
    if "example" in holder:
        found.append(("example", holder["example"]))
    schema = holder.get("schema") or {}
    if isinstance(schema, dict) and "example" in schema:
        found.append(("schema example", schema["example"]))
    return found


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        return True
    except ValueError:
        # fromisoformat before 3.11 is strict about fractions; fall back to a pattern.
        return bool(re.fullmatch(
            r"\d{4}-\d\d-\d\d([Tt ]\d\d:\d\d(:\d\d(\.\d+)?)?([Zz]|[+-]\d\d:?\d\d)?)?", value))


def check(value: JSON, schema: JSON, where: str) -> List[str]:
    """Problems of ``value`` against a resolved OpenAPI 3.0 schema."""
    at = where or "/"
    if not isinstance(schema, dict) or not schema:
        return []
    if value is None:
        return [] if schema.get("nullable") or "type" not in schema and "enum" not in schema else [f"{at}: null is not allowed"]
    for key in ("oneOf", "anyOf"):
        if isinstance(schema.get(key), list):
            if not any(not check(value, option, where) for option in schema[key]):
                return [f"{at}: matches none of {key}"]
            return []
    if isinstance(schema.get("enum"), list) and value not in schema["enum"]:
        return [f"{at}: {value!r} is not one of {schema['enum']}"]
    kind = schema.get("type")
    types = {
        "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
        "array": (list,), "object": (dict,),
    }
    if kind in types:
        if not isinstance(value, types[kind]) or (kind in ("integer", "number") and isinstance(value, bool)):
            return [f"{at}: {value!r} is not a{'n' if kind[0] in 'aeiou' else ''} {kind}"]
    problems: List[str] = []
    if isinstance(value, str):
        if schema.get("format") == "date-time" and not _is_datetime(value):
            problems.append(f"{at}: {value!r} is not a date-time")
        if schema.get("minLength") is not None and len(value) < schema["minLength"]:
            problems.append(f"{at}: shorter than {schema['minLength']}")
        if schema.get("maxLength") is not None and len(value) > schema["maxLength"]:
            problems.append(f"{at}: longer than {schema['maxLength']}")
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                if re.search(pattern, value) is None:
                    problems.append(f"{at}: {value!r} does not match {pattern!r}")
            except re.error:
                pass
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if schema.get("minimum") is not None and value < schema["minimum"]:
            problems.append(f"{at}: {value} < minimum {schema['minimum']}")
        if schema.get("maximum") is not None and value > schema["maximum"]:
            problems.append(f"{at}: {value} > maximum {schema['maximum']}")
    if isinstance(value, list):
        for index, item in enumerate(value):
            problems += check(item, schema.get("items") or {}, f"{where}/{index}")
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name in schema.get("required") or []:
            if name not in value:
                problems.append(f"{at}: required field {name!r} is missing")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                problems += check(item, properties[name], f"{where}/{name}")
            elif extra is False or (properties and "additionalProperties" not in schema):
                # poem-openapi objects list every field (the server refuses
                # unknown ones); a name outside them is a typo.
                problems.append(f"{at}: unknown field {name!r}")
            elif isinstance(extra, dict):
                problems += check(item, extra, f"{where}/{name}")
    return problems
