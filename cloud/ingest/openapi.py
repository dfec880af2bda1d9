"""The OpenAPI 3.1 document of the gateway API (served at /api/v1/openapi.json)."""

ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}},
}

SIGNED = [{"name": "code", "in": "path", "required": True, "schema": {"type": "string"}},
          {"name": "X-Balans-Signature", "in": "header", "required": True,
           "description": "base64 Ed25519 signature (64 bytes) of the exact body, by the gateway's key",
           "schema": {"type": "string", "pattern": "^[A-Za-z0-9+/]{86}==$"}}]
SIGNED_REFUSALS = {
    "400": {"description": "malformed or not in canonical form", "content": {"application/json": {"schema": ERROR}}},
    "401": {"description": "unknown gateway or bad signature", "content": {"application/json": {"schema": ERROR}}},
    "403": {"description": "revoked gateway", "content": {"application/json": {"schema": ERROR}}},
    "413": {"description": "too large", "content": {"application/json": {"schema": ERROR}}},
    "422": {"description": "invalid field", "content": {"application/json": {"schema": ERROR}}},
    "429": {"description": "over the gateway's message budget, or too many refusals from this address",
            "content": {"application/json": {"schema": ERROR}}},
}


def signed_message(required: list[str], properties: dict) -> dict:
    """A gateway's signed message (docs/remote.md): canonical JSON (sorted keys, no spaces, UTF-8)."""
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["v", "gateway", "sent", *required],
        "properties": {"v": {"const": 1}, "gateway": {"type": "string"},
                       "sent": {"type": "string", "format": "date-time"}, **properties}}}}}


OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "Balans gateway API", "version": "1.0.0",
             "description": "Gateways enrol with a one-time token and send signed, chained batches "
                            "(docs/batch-format.md)."},
    "paths": {
        "/api/v1/batches": {
            "post": {
                "summary": "Send one sealed batch (idempotent by gateway and seq)",
                "parameters": [
                    {"name": "X-Balans-Gateway", "in": "header", "required": True, "schema": {"type": "string"}},
                    {"name": "X-Balans-Signature", "in": "header", "required": True,
                     "description": "base64 Ed25519 signature (64 bytes) of the exact (un-gzipped) body",
                     "schema": {"type": "string", "pattern": "^[A-Za-z0-9+/]{86}==$"}},
                    {"name": "Content-Encoding", "in": "header", "required": False,
                     "schema": {"type": "string", "enum": ["gzip", "identity"]}},
                ],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["v", "gateway", "seq", "prev", "created", "readings", "intervals", "events"],
                }}}},
                "responses": {
                    "201": {"description": "stored"},
                    "200": {"description": "duplicate: already stored, nothing changed"},
                    "400": {"description": "malformed", "content": {"application/json": {"schema": ERROR}}},
                    "401": {"description": "unknown gateway or bad signature",
                            "content": {"application/json": {"schema": ERROR}}},
                    "403": {"description": "revoked gateway", "content": {"application/json": {"schema": ERROR}}},
                    "409": {"description": "seq conflict or chain break",
                            "content": {"application/json": {"schema": ERROR}}},
                    "413": {"description": "too large", "content": {"application/json": {"schema": ERROR}}},
                    "422": {"description": "invalid field", "content": {"application/json": {"schema": ERROR}}},
                    "429": {"description": "rate limited", "content": {"application/json": {"schema": ERROR}}},
                },
            }
        },
        "/api/v1/gateways/{code}/key": {
            "post": {
                "summary": "Rotate the gateway's key: the new PEM signed by the current key",
                "parameters": [{"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["public_key", "signature"],
                    "properties": {
                        "public_key": {"type": "string", "description": "new key, PEM, Ed25519"},
                        "signature": {"type": "string", "description": "base64 signature of the PEM by the old key"},
                    },
                }}}},
                "responses": {
                    "200": {"description": "rotated"},
                    "400": {"description": "malformed", "content": {"application/json": {"schema": ERROR}}},
                    "401": {"description": "unknown gateway or bad signature",
                            "content": {"application/json": {"schema": ERROR}}},
                    "403": {"description": "revoked", "content": {"application/json": {"schema": ERROR}}},
                    "422": {"description": "invalid field", "content": {"application/json": {"schema": ERROR}}},
                    "429": {"description": "too many refused requests from this address",
                            "content": {"application/json": {"schema": ERROR}}},
                },
            }
        },
        "/api/v1/gateways/{code}/heartbeat": {
            "post": {
                "summary": "The gateway's health; answered with its clock offset, the requests waiting for it and "
                           "the site configuration's newest version",
                "parameters": SIGNED,
                "requestBody": signed_message(["n", "health", "config"], {
                    "n": {"type": "integer", "minimum": 1, "description": "grows with every heartbeat"},
                    "health": {"type": "object", "description": "backlog, disk_free_bytes, meters_answering, "
                               "meters_configured, software_version, uptime_s"},
                    "config": {"type": "object", "required": ["version"],
                               "properties": {"version": {"type": "integer", "minimum": 0}}}}),
                "responses": {"200": {"description": "stored and answered"},
                              "409": {"description": "replayed (n not newer)",
                                      "content": {"application/json": {"schema": ERROR}}},
                              **SIGNED_REFUSALS},
            }
        },
        "/api/v1/gateways/{code}/config": {
            "post": {
                "summary": "Fetch a version of the site's configuration: its bytes and the organisation's signature",
                "parameters": SIGNED,
                "requestBody": signed_message(["version"], {"version": {"type": "integer", "minimum": 1}}),
                "responses": {"200": {"description": "the version (body and signature, base64)"},
                              "404": {"description": "no such version",
                                      "content": {"application/json": {"schema": ERROR}}},
                              **SIGNED_REFUSALS},
            }
        },
        "/api/v1/gateways/{code}/results": {
            "post": {
                "summary": "Answer a request the cloud queued (a log excerpt, a re-read)",
                "parameters": SIGNED,
                "requestBody": signed_message(["request", "ok", "result"], {
                    "request": {"type": "integer"}, "ok": {"type": "boolean"}, "result": {"type": "object"}}),
                "responses": {"200": {"description": "recorded"},
                              "404": {"description": "no such request for this gateway",
                                      "content": {"application/json": {"schema": ERROR}}},
                              "409": {"description": "already answered",
                                      "content": {"application/json": {"schema": ERROR}}},
                              **SIGNED_REFUSALS},
            }
        },
        "/api/v1/updates/metadata/{name}": {
            "get": {
                "summary": "The release channel's TUF metadata (root, timestamp, snapshot, targets: docs/updates.md); "
                           "signed, so served to anyone",
                "parameters": [{"name": "name", "in": "path", "required": True,
                                "schema": {"type": "string", "maxLength": 60},
                                "description": "timestamp.json, snapshot.json, targets.json, N.root.json"}],
                "responses": {"200": {"description": "the metadata, as signed"},
                              "404": {"description": "no such metadata (or no channel yet)",
                                      "content": {"application/json": {"schema": ERROR}}}},
            }
        },
        "/api/v1/updates/targets/{name}": {
            "get": {
                "summary": "A release package; the gateway checks its length and hashes against the signed targets",
                "parameters": [{"name": "name", "in": "path", "required": True,
                                "schema": {"type": "string", "maxLength": 200}}],
                "responses": {"200": {"description": "the package (a wheel)",
                                      "content": {"application/octet-stream": {}}},
                              "404": {"description": "no such package",
                                      "content": {"application/json": {"schema": ERROR}}}},
            }
        },
        "/api/v1/payments/liqpay": {
            "post": {
                "summary": "LiqPay server callback: data (base64 JSON) and signature",
                "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
                    "type": "object", "required": ["data", "signature"],
                    "properties": {"data": {"type": "string"}, "signature": {"type": "string"}}}}}},
                "responses": {
                    "200": {"description": "applied (or already applied)"},
                    "400": {"description": "malformed", "content": {"application/json": {"schema": ERROR}}},
                    "403": {"description": "bad signature", "content": {"application/json": {"schema": ERROR}}},
                    "404": {"description": "unknown order", "content": {"application/json": {"schema": ERROR}}},
                    "422": {"description": "unexpected amount", "content": {"application/json": {"schema": ERROR}}},
                },
            }
        },
        "/api/v1/enrol": {
            "post": {
                "summary": "Enrol a gateway with a one-time token",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["token", "gateway", "public_key", "site"],
                    "properties": {
                        "token": {"type": "string"},
                        "gateway": {"type": "string", "maxLength": 60},
                        "public_key": {"type": "string", "description": "PEM, Ed25519"},
                        "site": {"type": "object", "description": "the site document: docs/site-document.md "
                                 "(lines, meters with their roles, optional v and created)"},
                    },
                }}}},
                "responses": {
                    "201": {"description": "enrolled"},
                    "400": {"description": "malformed", "content": {"application/json": {"schema": ERROR}}},
                    "403": {"description": "bad, used or expired token",
                            "content": {"application/json": {"schema": ERROR}}},
                    "409": {"description": "gateway exists", "content": {"application/json": {"schema": ERROR}}},
                    "422": {"description": "invalid field", "content": {"application/json": {"schema": ERROR}}},
                },
            }
        },
    },
}
