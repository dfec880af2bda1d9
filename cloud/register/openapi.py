"""The OpenAPI 3.1 document of the register API (served at /api/v1/register/openapi.json). The fields are the
register's own (cloud/register/fields.py, meters.py); every value is a string, as the office would type it."""

from __future__ import annotations

from cloud.register.fields import ACCOUNT_KEYS
from cloud.register.meters import METER_FIELDS, REPLACE_FIELDS, ROLES, STATES

TEXT = {"type": "string", "maxLength": 400}
ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                   "field": {"type": "string", "description": "the field that was refused"},
                   "errors": {"type": "array", "items": {"type": "object"}}},
}
ACCOUNT_TEXTS = {"type": "object", "additionalProperties": False,
                 "description": "fields as text: decimals as \"12.50\" (a comma works too), yes/no as так/ні",
                 "properties": {key: TEXT for key in ("number", "site", *ACCOUNT_KEYS)}}
READING = {"type": ["object", "null"], "properties": {"value": {"type": "string"}, "at": {"type": "string"}}}
METER = {"type": "object", "required": ["id", "site", "code", "role"],
         "properties": {"id": {"type": "integer"}, **{key: {"type": ["string", "null"]} for key in METER_FIELDS},
                        "role": {"type": "string", "enum": list(ROLES)}, "last_reading": READING}}
ACCOUNT = {"type": "object", "required": ["number"],
           "properties": {**{key: {"type": "string"} for key in ("number", "site", *ACCOUNT_KEYS)},
                          "meters": {"type": "array", "items": METER}}}
METER_TEXTS = {"type": "object", "additionalProperties": False,
               "description": "times are Kyiv wall clock (2026-10-15 12:00) unless they carry an offset",
               "properties": {**{key: TEXT for key in METER_FIELDS},
                              "role": {"type": "string", "enum": list(ROLES)}}}
REPLACE_TEXTS = {"type": "object", "additionalProperties": False, "required": ["at", "old_reading", "new_code"],
                 "properties": {key: TEXT for key in REPLACE_FIELDS}}
PREVIEW = {"type": "object", "required": ["id", "status", "counts", "rows"],
           "properties": {"id": {"type": "integer"}, "status": {"type": "string"}, "ok": {"type": "boolean"},
                          "counts": {"type": "object"}, "errors": {"type": "array"},
                          "rows": {"type": "array", "items": {"type": "object", "properties": {
                              "line": {"type": "integer"}, "number": {"type": "string"},
                              "status": {"type": "string", "enum": ["new", "changed", "unchanged", "error"]},
                              "changes": {"type": "object"}, "errors": {"type": "array"}}}}}}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _answers(ok: str, schema: dict, *refusals: str) -> dict:
    words = {"401": "no token, or a revoked one", "403": "the token's role may not do this",
             "404": "not in this organisation's register", "422": "a field refused (nothing written)"}
    answers = {ok: {"description": "done", "content": _json(schema)}}
    answers.update({code: {"description": words[code], "content": _json(ERROR)} for code in ("401", *refusals)})
    return answers


def _query(*names: str) -> list[dict]:
    return [{"name": name, "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1} if name == "page" else
             {"type": "string", "enum": list(ROLES)} if name == "role" else
             {"type": "string", "enum": list(STATES)} if name == "state" else {"type": "string", "maxLength": 100}}
            for name in names]


NUMBER = [{"name": "number", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 30}}]
METER_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}]
IMPORT_ID = [{"name": "import_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}]


def _page_of(name: str, item: dict) -> dict:
    return {"type": "object", "properties": {name: {"type": "array", "items": item}, "total": {"type": "integer"},
                                             "page": {"type": "integer"}, "pages": {"type": "integer"},
                                             "next": {"type": ["string", "null"]}}}


OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "Balans register API", "version": "1.0.0",
             "description": "The subscriber and meter register (docs/register.md). Send an API token made by the "
                            "organisation's admin as 'Authorization: Bearer <token>'."},
    "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
    "security": [{"token": []}],
    "paths": {
        "/api/v1/register/accounts": {
            "get": {"summary": "Accounts by number, 50 to a page", "parameters": _query("query", "site", "category",
                                                                                      "page"),
                    "responses": _answers("200", _page_of("accounts", ACCOUNT))},
            "post": {"summary": "A new account", "requestBody": {"required": True, "content": _json(ACCOUNT_TEXTS)},
                     "responses": _answers("201", ACCOUNT, "403", "422")},
        },
        "/api/v1/register/accounts/{number}": {
            "get": {"summary": "One account with its meters", "parameters": NUMBER,
                    "responses": _answers("200", ACCOUNT, "404")},
            "put": {"summary": "Change the fields given (the others stay)", "parameters": NUMBER,
                    "requestBody": {"required": True, "content": _json(ACCOUNT_TEXTS)},
                    "responses": _answers("200", ACCOUNT, "403", "404", "422")},
        },
        "/api/v1/register/meters": {
            "get": {"summary": "Meters by site and code, 50 to a page",
                    "parameters": _query("query", "site", "line", "role", "state", "page"),
                    "responses": _answers("200", _page_of("meters", METER), "422")},
            "post": {"summary": "A new meter", "requestBody": {"required": True, "content": _json(METER_TEXTS)},
                     "responses": _answers("201", METER, "403", "422")},
        },
        "/api/v1/register/meters/{id}": {
            "get": {"summary": "One meter", "parameters": METER_ID, "responses": _answers("200", METER, "404")},
            "put": {"summary": "Change the fields given", "parameters": METER_ID,
                    "requestBody": {"required": True, "content": _json(METER_TEXTS)},
                    "responses": _answers("200", METER, "403", "404", "422")},
        },
        "/api/v1/register/meters/{id}/replace": {
            "post": {"summary": "Заміна лічильника: the old meter's final reading, the new one's code and first "
                                "reading; billing splits the month between them",
                     "parameters": METER_ID, "requestBody": {"required": True, "content": _json(REPLACE_TEXTS)},
                     "responses": _answers("201", {"type": "object", "properties": {"old": METER, "new": METER}},
                                           "403", "404", "422")},
        },
        "/api/v1/register/imports": {
            "post": {"summary": "Upload a register file (CSV or XLSX as the body): each row's fate, nothing "
                                "written to the register",
                     "parameters": _query("filename"),
                     "requestBody": {"required": True, "content": {
                         "text/csv": {"schema": {"type": "string"}},
                         "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                     "responses": _answers("201", PREVIEW, "403", "422")},
        },
        "/api/v1/register/imports/{import_id}/apply": {
            "post": {"summary": "Apply an uploaded file: every row, or on any error none",
                     "parameters": IMPORT_ID, "responses": _answers("200", PREVIEW, "403", "404", "422")},
        },
    },
}
