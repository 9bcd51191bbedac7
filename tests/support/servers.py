"""Local HTTP servers standing in for services this machine cannot reach. Each answers like the documented
API it replaces, for the subset the platform uses, and records the requests it received:

- SlackApi: Slack Web API `chat.postMessage` (bearer token, JSON body; `{"ok": false, "error": ...}`).
- WooCommerceStore: REST API v3 `/wp-json/wc/v3/orders` (Basic auth, X-WP-Total / X-WP-TotalPages,
  `*_gmt` dates; filters `modified_after` with `dates_are_gmt`, `include`, `search`), `PUT /orders/<id>`,
  `POST /orders/<id>/notes`.
- MagentoStore: `/rest/V1/orders` with searchCriteria paging (`items`, `total_count`) and one filter
  (`gteq`, `in`), `/rest/V1/orders/<id>`,
  `POST /rest/V1/order/<id>/invoice` (the order moves to `processing`).
- ShopifyStore: Admin REST `orders.json` with `Link: <...page_info=...>; rel="next"`, `orders/<id>.json`,
  GraphQL `orderMarkAsPaid`.
- PrestaShopStore: webservice JSON (`orders`, `currencies`, `configurations`, `order_histories`, `messages`),
  key as Basic user.
- OpenCartStore: `index.php?route=api/login`, `api/order/info`, `api/order/history` with api_token.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class _Server:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _dispatch(self) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = {
                    "method": self.command,
                    "path": url.path,
                    "query": parse_qs(url.query),
                    "headers": dict(self.headers),
                    "body": body,
                }
                with outer.lock:
                    outer.requests.append(request)
                    status, payload, headers = outer.handle(request)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _dispatch

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def handle(self, request: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    def calls(self, method: str, pattern: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and re.fullmatch(pattern, r["path"])]


@contextmanager
def serving(server: _Server) -> Iterator[_Server]:
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def _basic(request: dict[str, Any]) -> tuple[str, str]:
    header = request["headers"].get("Authorization", "")
    if not header.startswith("Basic "):
        return "", ""
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user, password


class SlackApi(_Server):
    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.messages: list[dict[str, Any]] = []

    def handle(self, request):
        if request["path"] != "/api/chat.postMessage":
            return 404, {"ok": False, "error": "unknown_method"}, {}
        if request["headers"].get("Authorization") != f"Bearer {self.token}":
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        body = json.loads(request["body"] or b"{}")
        if not str(body.get("channel", "")).startswith(("#", "C")):
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        self.messages.append(body)
        return (
            200,
            {
                "ok": True,
                "channel": "C0PSPALERT",
                "ts": f"1700000000.{len(self.messages):06d}",
                "message": {"text": body.get("text")},
            },
            {},
        )


class WooCommerceStore(_Server):
    def __init__(self, orders: list[dict[str, Any]], key: str, secret: str) -> None:
        super().__init__()
        self.orders = {str(o["id"]): o for o in orders}
        self.auth = (key, secret)

    def handle(self, request):
        if _basic(request) != self.auth:
            return 401, {"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources."}, {}
        path, q = request["path"], request["query"]
        if request["method"] == "GET" and path == "/wp-json/wc/v3/orders":
            per_page, page = int(q.get("per_page", ["10"])[0]), int(q.get("page", ["1"])[0])
            items = sorted(self.orders.values(), key=lambda o: o["id"])
            if "modified_after" in q:  # with dates_are_gmt: compared with the *_gmt dates
                items = [o for o in items if str(o.get("date_modified_gmt") or "") > q["modified_after"][0]]
            if "include" in q:
                wanted = set(q["include"][0].split(","))
                items = [o for o in items if str(o["id"]) in wanted]
            if "search" in q:
                items = [o for o in items if q["search"][0].lower() in str(o.get("number", "")).lower()]
            pages = max(1, -(-len(items) // per_page))
            chunk = items[(page - 1) * per_page : page * per_page]
            return 200, chunk, {"X-WP-Total": str(len(items)), "X-WP-TotalPages": str(pages)}
        match = re.fullmatch(r"/wp-json/wc/v3/orders/(\d+)(/notes)?", path)
        if match and match.group(1) in self.orders:
            order = self.orders[match.group(1)]
            if request["method"] == "GET":
                return 200, order, {}
            body = json.loads(request["body"])
            if match.group(2):
                return 201, {"id": 1, "note": body["note"]}, {}
            order["status"] = body.get("status", order["status"])
            order["meta_data"] = order.get("meta_data", []) + body.get("meta_data", [])
            return 200, order, {}
        return 404, {"code": "woocommerce_rest_shop_order_invalid_id", "message": "Invalid ID."}, {}


class MagentoStore(_Server):
    def __init__(self, orders: list[dict[str, Any]], token: str) -> None:
        super().__init__()
        self.orders = {str(o["entity_id"]): o for o in orders}
        self.token = token

    def handle(self, request):
        if request["headers"].get("Authorization") != f"Bearer {self.token}":
            return 401, {"message": "The consumer isn't authorized to access %resources."}, {}
        path, q = request["path"], request["query"]
        if path == "/rest/V1/orders":
            size = int(q.get("searchCriteria[pageSize]", ["20"])[0])
            page = int(q.get("searchCriteria[currentPage]", ["1"])[0])
            items = sorted(self.orders.values(), key=lambda o: o["entity_id"])
            prefix = "searchCriteria[filter_groups][0][filters][0]"
            if f"{prefix}[field]" in q:
                field, value = q[f"{prefix}[field]"][0], q[f"{prefix}[value]"][0]
                if q[f"{prefix}[condition_type]"][0] == "in":
                    items = [o for o in items if str(o.get(field)) in value.split(",")]
                else:  # gteq
                    items = [o for o in items if str(o.get(field) or "") >= value]
            return (
                200,
                {
                    "items": items[(page - 1) * size : page * size],
                    "total_count": len(items),
                    "search_criteria": {"page_size": size, "current_page": page},
                },
                {},
            )
        match = re.fullmatch(r"/rest/V1/orders/(\d+)", path)
        if match and match.group(1) in self.orders:
            return 200, self.orders[match.group(1)], {}
        match = re.fullmatch(r"/rest/V1/order/(\d+)/invoice", path)
        if match and request["method"] == "POST" and match.group(1) in self.orders:
            order = self.orders[match.group(1)]
            body = json.loads(request["body"])
            order["state"] = order["status"] = "processing"
            order.setdefault("status_histories", []).append({"comment": body["comment"]["comment"]})
            return 200, b'"4711"', {}
        return 404, {"message": "The entity that was requested doesn't exist. Verify the entity and try again."}, {}


class ShopifyStore(_Server):
    version = "2025-01"

    def __init__(self, orders: list[dict[str, Any]], token: str) -> None:
        super().__init__()
        self.orders = {str(o["id"]): o for o in orders}
        self.token = token

    def handle(self, request):
        if request["headers"].get("X-Shopify-Access-Token") != self.token:
            return 401, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}, {}
        path, q = request["path"], request["query"]
        base = f"/admin/api/{self.version}"
        if path == f"{base}/orders.json":
            limit = int(q.get("limit", ["50"])[0])
            start = int(q.get("page_info", ["0"])[0])
            items = sorted(self.orders.values(), key=lambda o: o["id"])
            headers = {}
            if start + limit < len(items):
                headers["Link"] = f'<{self.url}{base}/orders.json?limit={limit}&page_info={start + limit}>; rel="next"'
            return 200, {"orders": items[start : start + limit]}, headers
        match = re.fullmatch(rf"{base}/orders/(\d+)\.json", path)
        if match and match.group(1) in self.orders:
            order = self.orders[match.group(1)]
            if request["method"] == "PUT":
                order["note_attributes"] = json.loads(request["body"])["order"]["note_attributes"]
            return 200, {"order": order}, {}
        if path == f"{base}/graphql.json":
            body = json.loads(request["body"])
            oid = body["variables"]["input"]["id"].rsplit("/", 1)[-1]
            order = self.orders[oid]
            if order["financial_status"] == "paid":
                return (
                    200,
                    {
                        "data": {
                            "orderMarkAsPaid": {
                                "order": None,
                                "userErrors": [{"field": ["id"], "message": "Order cannot be marked as paid."}],
                            }
                        }
                    },
                    {},
                )
            order["financial_status"] = "paid"
            return (
                200,
                {
                    "data": {
                        "orderMarkAsPaid": {
                            "order": {"id": f"gid://shopify/Order/{oid}", "displayFinancialStatus": "PAID"},
                            "userErrors": [],
                        }
                    }
                },
                {},
            )
        return 404, {"errors": "Not Found"}, {}


class PrestaShopStore(_Server):
    def __init__(self, orders: list[dict[str, Any]], key: str, timezone: str = "Europe/Paris") -> None:
        super().__init__()
        self.orders = {str(o["id"]): o for o in orders}
        self.key = key
        self.timezone = timezone
        self.histories: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []

    def handle(self, request):
        if _basic(request)[0] != self.key:
            return 401, b'{"errors":[{"code":17,"message":"Authentication key is empty"}]}', {}
        path, q = request["path"], request["query"]
        if path == "/api/configurations":
            return 200, {"configurations": [{"id": 90, "name": "PS_TIMEZONE", "value": self.timezone}]}, {}
        if path == "/api/currencies":
            return 200, {"currencies": [{"id": 1, "iso_code": "EUR"}, {"id": 2, "iso_code": "PLN"}]}, {}
        if path == "/api/orders" and request["method"] == "GET":
            offset, count = (int(x) for x in q.get("limit", ["0,1000"])[0].split(","))
            items = sorted(self.orders.values(), key=lambda o: o["id"])[offset : offset + count]
            return 200, ({"orders": items} if items else []), {}
        match = re.fullmatch(r"/api/orders/(\d+)", path)
        if match and match.group(1) in self.orders:
            return 200, {"order": self.orders[match.group(1)]}, {}
        if path in ("/api/order_histories", "/api/messages") and request["method"] == "POST":
            fields = {m.group(1): m.group(2) for m in re.finditer(rb"<(\w+)>([^<]*)</\1>", request["body"])}
            fields = {k.decode(): v.decode() for k, v in fields.items()}
            if path == "/api/order_histories":
                self.histories.append(fields)
                self.orders[fields["id_order"]]["current_state"] = fields["id_order_state"]
            else:
                self.messages.append(fields)
            return 201, b"<prestashop/>", {}
        if path in ("/api/order_histories", "/api/messages"):
            oid = q.get("filter[id_order]", ["[]"])[0].strip("[]")
            rows = [{"message": m["message"]} for m in self.messages if m["id_order"] == oid]
            return 200, ({"messages": rows} if path.endswith("messages") and rows else {"order_histories": []}), {}
        return 404, {"errors": [{"code": 3, "message": "Resource not found"}]}, {}


class OpenCartStore(_Server):
    def __init__(self, orders: list[dict[str, Any]], username: str, key: str) -> None:
        super().__init__()
        self.orders = {str(o["order_id"]): o for o in orders}
        self.credentials = (username, key)
        self.token = "tok3n"

    def handle(self, request):
        route = request["query"].get("route", [""])[0]
        form = {k: v[0] for k, v in parse_qs(request["body"].decode()).items()}
        if route == "api/login":
            if (form.get("username"), form.get("key")) != self.credentials:
                return 200, {"error": {"key": "Warning: Incorrect API Key!"}}, {}
            return 200, {"success": "Success: API session successfully started!", "api_token": self.token}, {}
        if request["query"].get("api_token", [""])[0] != self.token:
            return 200, {"error": {"warning": "Warning: You do not have permission to access the API!"}}, {}
        order = self.orders.get(form.get("order_id", ""))
        if route == "api/order/info":
            return 200, ({"order": order} if order else {"error": "Warning: Order could not be found!"}), {}
        if route == "api/order/history" and order:
            order["order_status_id"] = form["order_status_id"]
            order.setdefault("histories", []).append({"comment": form.get("comment", "")})
            return 200, {"success": "Success: You have modified orders!"}, {}
        return 404, {"error": "not found"}, {}
