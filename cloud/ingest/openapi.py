"""The OpenAPI 3.1 document of the gateway API (served at /api/v1/openapi.json)."""

ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}},
}

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
