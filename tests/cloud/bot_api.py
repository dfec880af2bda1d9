"""A local stand-in for the Telegram Bot API: a real HTTP server on loopback speaking the subset the cloud uses —
``getMe``, ``getUpdates`` (the updates a test puts in, by offset) and ``sendMessage`` (kept, to be read back).
Parameters come as python-telegram-bot sends them (a form whose values are JSON) or as a JSON body."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

TOKEN = "123456:TEST-token"


class BotApi:
    def __init__(self, token: str = TOKEN):
        self.token, self.updates, self.sent, self.calls = token, [], [], []
        self._next_update, self._next_message = 1, 1
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> BotApi:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def says(self, chat_id: int, text: str) -> None:
        """A person writes ``text`` to the bot from ``chat_id``."""
        self.updates.append({"update_id": self._next_update, "message": {
            "message_id": self._next_update, "date": int(time.time()), "text": text,
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "Тест"}}})
        self._next_update += 1

    def texts_to(self, chat_id) -> list[str]:
        return [m["text"] for m in self.sent if str(m["chat_id"]) == str(chat_id)]

    def _answer(self, method: str, params: dict):
        self.calls.append(method)
        if method == "getMe":
            return {"id": 42, "is_bot": True, "first_name": "Balans", "username": "balans_test_bot"}
        if method == "getUpdates":
            offset = int(params.get("offset") or 0)
            return [u for u in self.updates if u["update_id"] >= offset]
        if method == "sendMessage":
            message = {"message_id": self._next_message, "date": int(time.time()), "text": params["text"],
                       "chat": {"id": int(params["chat_id"]), "type": "private"}}
            self._next_message += 1
            self.sent.append({"chat_id": params["chat_id"], "text": params["text"]})
            return message
        return None

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                prefix = f"/bot{api.token}/"
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not self.path.startswith(prefix):
                    return self._send(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    params = json.loads(body or b"{}")
                else:
                    params = {}
                    for key, values in parse_qs(body.decode()).items():
                        try:
                            params[key] = json.loads(values[0])
                        except ValueError:
                            params[key] = values[0]
                result = api._answer(self.path[len(prefix):].split("?")[0], params)
                if result is None:
                    return self._send(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                return self._send(200, {"ok": True, "result": result})

            do_GET = do_POST

            def _send(self, status: int, payload: dict):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
