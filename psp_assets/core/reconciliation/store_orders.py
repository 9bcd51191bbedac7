"""Store orders, read through each platform's own API or from an export file, behind one interface.

Every source returns the same raw frame (RAW_ORDER_COLUMNS, values as the platform gave them, timestamps
as ISO 8601 text with their offset when the platform states one); `reconciliation.validate_orders` turns
it into typed rows and reports the bad ones. Healing re-reads one order (`fetch_order`) and pushes the
PSP's state (`push_state`) idempotently: each client leaves the PSP event id on the order and refuses an
event it has already applied.

Which platform state means what is data (the template's `status_map` and `reconciliation` section); the
clients only speak the platforms' documented APIs:

- WooCommerce REST API v3 (`/wp-json/wc/v3/orders`, HTTP Basic with consumer key and secret).
- Magento 2 REST (`/rest/V1/orders` with searchCriteria, bearer integration token; paid = an invoice).
- PrestaShop webservice (`/api/orders`, `/api/order_histories`, `/api/currencies`, `/api/configurations`;
  the webservice key as Basic user). Order dates are shop-local time: the shop's PS_TIMEZONE places them.
- OpenCart API (`index.php?route=api/login`, `api/order/info`, `api/order/history`, api_token session).
  OpenCart's API has no order listing: orders are read by the references the PSP knows, so orders paid
  in the store without any PSP payment are only found from an export file.
- Shopify Admin API (REST `orders.json` with `page_info` pagination, GraphQL `orderMarkAsPaid`; header
  X-Shopify-Access-Token).
- CSV or Parquet exports with the columns RAW_ORDER_COLUMNS.
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import requests

from psp_assets.core.errors import ReconciliationError
from psp_assets.core.reconciliation.references import reference_keys  # one normalization, shared with matching

RAW_ORDER_COLUMNS: tuple[str, ...] = (
    "order_ref",
    "store_order_id",
    "state",
    "total",
    "currency",
    "created_at",
    "updated_at",
    "payment_method",
)
EVENT_MARKER = "psp_event_id"  # the key / text marker a healed order carries


@dataclass(frozen=True)
class OrderSnapshot:
    """One order as the store has it right now (read just before healing)."""

    store_order_id: str
    order_ref: str
    state: str
    updated_at: datetime | None
    applied_event_ids: frozenset[str] = frozenset()
    extra: Mapping[str, Any] = field(default_factory=dict)
    total: Any = None  # as the store gives it (decimal text or number), with its currency
    currency: str | None = None


class OrderSource(Protocol):
    label: str

    def fetch_orders(self, since: datetime | None = None, refs: Sequence[str] = ()) -> pd.DataFrame: ...

    def fetch_order(self, store_order_id: str) -> OrderSnapshot: ...

    def push_state(self, order: OrderSnapshot, state: str, event_id: str, note: str) -> str: ...


def raw_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(RAW_ORDER_COLUMNS), dtype=object)
    return frame


def utc_text(value: Any) -> Any:
    """A platform timestamp documented as UTC but written without an offset, made explicit."""
    if isinstance(value, str) and value and not re.search(r"(Z|[+-]\d\d:?\d\d)$", value):
        return value.replace(" ", "T") + "+00:00"
    return value


# --- export files ------------------------------------------------------------------------------------


@dataclass
class FileOrderSource:
    """A CSV or Parquet export with the RAW_ORDER_COLUMNS (extra columns are ignored)."""

    path: Path
    label: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or str(self.path)

    def fetch_orders(self, since: datetime | None = None, refs: Sequence[str] = ()) -> pd.DataFrame:
        """Every row of the export (an export is complete: `since` and `refs` don't narrow it). A CSV line
        that cannot be split into the header's columns comes back as a row with `malformed` set and its
        line number in `source_row`; every well-formed row is read."""
        if not self.path.is_file():
            raise ReconciliationError(f"{self.path}: order export not found")
        try:
            frame = pd.read_parquet(self.path) if self.path.suffix == ".parquet" else read_orders_csv(self.path)
        except (ValueError, OSError, pa.ArrowException) as exc:
            raise ReconciliationError(f"{self.path}: unreadable order export: {exc}") from None
        missing = [c for c in ("order_ref", "state", "total", "currency", "created_at") if c not in frame.columns]
        if missing:
            raise ReconciliationError(
                f"{self.path}: missing columns {', '.join(missing)}; "
                f"an order export needs {', '.join(RAW_ORDER_COLUMNS)}"
            )
        for column in RAW_ORDER_COLUMNS:
            if column not in frame.columns:
                frame[column] = None
        return frame[[*RAW_ORDER_COLUMNS, *(c for c in ("source_row", "malformed") if c in frame.columns)]]

    def fetch_order(self, store_order_id: str) -> OrderSnapshot:
        raise ReconciliationError(f"{self.label}: an export file cannot be re-read per order; heal through the API")

    def push_state(self, order: OrderSnapshot, state: str, event_id: str, note: str) -> str:
        raise ReconciliationError(f"{self.label}: an export file cannot be updated; configure the store's API")


def read_orders_csv(path: Path) -> pd.DataFrame:
    """A CSV export as text columns (Arrow-backed), with `source_row` (the line each record starts on; the
    header is line 1) and `malformed` (why a line could not be read; null for good rows).

    The fast path is pyarrow's multithreaded reader. Only when it meets a line it cannot split, a blank
    line, a line break inside a quoted value or bytes that are not UTF-8 (where its row count and the
    file's line count part) is the file read again line by line, to give every row its true line number."""
    header = _csv_header(path)
    skipped: list[str] = []

    def invalid(row: Any) -> str:
        skipped.append(row.text)
        return "skip"

    data = path.read_bytes()
    try:
        table = pacsv.read_csv(
            pa.py_buffer(data),
            # A blank line comes back as a row of empty fields: kept while numbering, dropped after. Blocks
            # are cut at any line break (a third of the work of quote-aware cutting): a quoted line break
            # inside a block is kept and found below; one a cut falls in leaves a row with too few fields
            # or a parse error. Each sends the file to the line-by-line read.
            parse_options=pacsv.ParseOptions(
                newlines_in_values=False, invalid_row_handler=invalid, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return _read_csv_by_line(path, header)
    # One line per record and the header: no value holds a line break (counted in the bytes, not searched
    # for in every column). Any other count sends the file to the line-by-line read.
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if skipped or lines != table.num_rows + 1:
        return _read_csv_by_line(path, header)
    table = table.append_column("source_row", pa.array(np.arange(2, table.num_rows + 2)))
    # A row of empty fields only (",,,"): looked for in the other columns only where the first is empty.
    blank = pc.equal(pc.utf8_length(table[header[0]]), 0)
    if pc.any(blank).as_py():
        for column in header[1:]:
            blank = pc.and_(blank, pc.equal(pc.utf8_length(table[column]), 0))
        if pc.any(blank).as_py():
            table = table.filter(pc.invert(blank))
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def _csv_header(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        header = next(csv.reader(handle), [])
    if not header:
        raise ReconciliationError(f"{path}: empty order export (no header line)")
    return [h.strip() for h in header]


def _read_csv_by_line(path: Path, header: list[str]) -> pd.DataFrame:
    rows: list[list[Any]] = []
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        line = reader.line_num + 1
        for record in reader:
            start, line = line, reader.line_num + 1
            if not record or record == [""]:
                continue
            text = ",".join(record)
            reason = None
            if len(record) != len(header):
                reason = (
                    f"malformed CSV line {start}: {len(record)} field(s), the header has {len(header)}: {text[:200]!r}"
                )
            elif any(_not_utf8(v) for v in record):
                reason = f"malformed CSV line {start}: not UTF-8 text"
                record = [v.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for v in record]
            values = [*record[: len(header)], *[None] * max(0, len(header) - len(record))]
            rows.append([*values, start, reason])
    frame = pd.DataFrame(rows, columns=[*header, "source_row", "malformed"], dtype=object)
    frame["source_row"] = frame["source_row"].astype("int64")
    return frame


def _not_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def write_orders_file(frame: pd.DataFrame, path: Path) -> Path:
    """Write an order export (CSV or Parquet by suffix) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    tmp.replace(path)
    return path


# --- platform APIs -----------------------------------------------------------------------------------


@dataclass
class _Api:
    base_url: str
    secret: str
    key: str = ""
    label: str = ""
    api_states: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 20.0
    page_size: int = 100
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.label = self.label or self.base_url
        self._to_id = {name: api_id for api_id, name in self.api_states.items()}

    def _state(self, api_value: Any) -> str:
        text = "" if api_value is None else str(api_value)
        return self.api_states.get(text, text)

    def _api_state(self, state: str) -> str:
        return self._to_id.get(state, state)

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise ReconciliationError(f"{self.label}: {method} {_public(url)}: {exc.__class__.__name__}") from None
        if response.status_code >= 400:
            raise ReconciliationError(
                f"{self.label}: {method} {_public(url)} answered HTTP {response.status_code}: {response.text[:200]!r}"
            )
        return response

    def fetch_orders(self, since: datetime | None = None, refs: Sequence[str] = ()) -> pd.DataFrame:
        """The orders changed since `since` (every order without it), plus each of `refs` the listing did not
        return, fetched by its reference: an old order untouched for longer than the window is still judged
        against its payment, never reported as missing."""
        listed = self._list(since)
        if since is None or not refs:
            return listed
        have = set(reference_keys(listed["order_ref"]).to_pylist()) if len(listed) else set()
        wanted = pa.array(list(dict.fromkeys(refs)), type=pa.string())
        missing = [
            r for r, k in zip(wanted.to_pylist(), reference_keys(wanted).to_pylist(), strict=True) if k not in have
        ]
        if not missing:
            return listed
        found = self._by_refs(missing)
        keys = set(reference_keys(pa.array(missing, type=pa.string())).to_pylist())
        if len(found):
            found = found[[k in keys for k in reference_keys(found["order_ref"]).to_pylist()]]
        return pd.concat([listed, found], ignore_index=True) if len(found) else listed

    def _list(self, since: datetime | None) -> pd.DataFrame:
        raise NotImplementedError

    def _by_refs(self, refs: Sequence[str]) -> pd.DataFrame:
        raise NotImplementedError

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ReconciliationError(
                f"{self.label}: {method} {_public(response.url)}: expected JSON, got {response.text[:120]!r}"
            ) from None


def _public(url: str) -> str:
    """A URL for messages: no query string (it may carry tokens)."""
    return url.split("?", 1)[0]


class WooCommerceOrders(_Api):
    """WooCommerce REST API v3. Dates come from the `*_gmt` fields (UTC, written without offset)."""

    def _auth(self) -> dict[str, Any]:
        return {"auth": (self.key, self.secret)}

    def _list(self, since: datetime | None, **filters: Any) -> pd.DataFrame:
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            params: dict[str, Any] = {"per_page": self.page_size, "page": page, "orderby": "id", "order": "asc"}
            params |= filters
            if since is not None:
                params |= {
                    "modified_after": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "dates_are_gmt": "true",
                }
            response = self._request("GET", "/wp-json/wc/v3/orders", params=params, **self._auth())
            batch = response.json()
            rows += [self._row(o) for o in batch]
            if page >= int(response.headers.get("X-WP-TotalPages", "1") or 1) or not batch:
                return raw_frame(rows)
            page += 1

    def _by_refs(self, refs: Sequence[str]) -> pd.DataFrame:
        """Order numbers are order ids unless a numbering plugin is used: ids are read in batches
        (`include`), any other reference through `search`."""
        ids = [r.strip() for r in refs if r.strip().isdigit()]
        frames = [self._list(None, include=",".join(ids[i : i + 100])) for i in range(0, len(ids), 100)]
        frames += [self._list(None, search=r.strip()) for r in refs if not r.strip().isdigit()]
        return pd.concat(frames, ignore_index=True) if frames else raw_frame([])

    def _row(self, order: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "order_ref": str(order.get("number") or order.get("id")),
            "store_order_id": str(order.get("id")),
            "state": self._state(order.get("status")),
            "total": order.get("total"),
            "currency": order.get("currency"),
            "created_at": utc_text(order.get("date_created_gmt")),
            "updated_at": utc_text(order.get("date_modified_gmt")),
            "payment_method": order.get("payment_method"),
        }

    def fetch_order(self, store_order_id: str) -> OrderSnapshot:
        order = self._json("GET", f"/wp-json/wc/v3/orders/{store_order_id}", **self._auth())
        row = self._row(order)
        events = frozenset(str(m.get("value")) for m in order.get("meta_data") or [] if m.get("key") == EVENT_MARKER)
        return _snapshot(row, events)

    def push_state(self, order: OrderSnapshot, state: str, event_id: str, note: str) -> str:
        body = {"status": self._api_state(state), "meta_data": [{"key": EVENT_MARKER, "value": event_id}]}
        self._json("PUT", f"/wp-json/wc/v3/orders/{order.store_order_id}", json=body, **self._auth())
        self._json(
            "POST",
            f"/wp-json/wc/v3/orders/{order.store_order_id}/notes",
            json={"note": note, "customer_note": False},
            **self._auth(),
        )
        return f"PUT wc/v3/orders/{order.store_order_id} status={body['status']}"


class Magento2Orders(_Api):
    """Magento 2 REST. The order `state` is what status_map speaks; dates are UTC without offset. Paid is
    reached by invoicing the order (POST /V1/order/{id}/invoice), the way Magento's own gateways do."""

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}

    def _by_refs(self, refs: Sequence[str]) -> pd.DataFrame:
        batches = [refs[i : i + 100] for i in range(0, len(refs), 100)]
        frames = [self._list(None, ("increment_id", ",".join(r.strip() for r in b), "in")) for b in batches]
        return pd.concat(frames, ignore_index=True) if frames else raw_frame([])

    def _list(self, since: datetime | None, condition: tuple[str, str, str] | None = None) -> pd.DataFrame:
        rows: list[dict[str, Any]] = []
        page = 1
        if since is not None:
            condition = ("updated_at", since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"), "gteq")
        while True:
            params: dict[str, Any] = {"searchCriteria[pageSize]": self.page_size, "searchCriteria[currentPage]": page}
            if condition is not None:
                prefix = "searchCriteria[filter_groups][0][filters][0]"
                params |= {
                    f"{prefix}[field]": condition[0],
                    f"{prefix}[value]": condition[1],
                    f"{prefix}[condition_type]": condition[2],
                }
            data = self._json("GET", "/rest/V1/orders", params=params, headers=self._headers())
            items = data.get("items") or []
            rows += [self._row(o) for o in items]
            if not items or page * self.page_size >= int(data.get("total_count") or 0):
                return raw_frame(rows)
            page += 1

    def _row(self, order: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "order_ref": order.get("increment_id"),
            "store_order_id": str(order.get("entity_id")),
            "state": self._state(order.get("state")),
            "total": order.get("grand_total"),
            "currency": order.get("order_currency_code"),
            "created_at": utc_text(order.get("created_at")),
            "updated_at": utc_text(order.get("updated_at")),
            "payment_method": (order.get("payment") or {}).get("method"),
        }

    def fetch_order(self, store_order_id: str) -> OrderSnapshot:
        order = self._json("GET", f"/rest/V1/orders/{store_order_id}", headers=self._headers())
        row = self._row(order)
        comments = " ".join(str(h.get("comment") or "") for h in order.get("status_histories") or [])
        events = frozenset(re.findall(rf"{EVENT_MARKER}=([A-Za-z0-9_.:-]+)", comments))
        return _snapshot(row, events)

    def push_state(self, order: OrderSnapshot, state: str, event_id: str, note: str) -> str:
        comment = {"comment": f"{note} ({EVENT_MARKER}={event_id})", "is_visible_on_front": 0}
        invoice = self._json(
            "POST",
            f"/rest/V1/order/{order.store_order_id}/invoice",
            json={"capture": False, "notify": False, "appendComment": True, "comment": comment},
            headers=self._headers(),
        )
        return f"invoice {invoice} created for order {order.store_order_id} (state -> {state})"


class PrestaShopOrders(_Api):
    """PrestaShop webservice (JSON output). `current_state` ids map to status_map names through the
    template's `reconciliation.api_states`; currencies are ids resolved through /api/currencies."""

    def _get(self, resource: str, **params: Any) -> Any:
        params = {"output_format": "JSON", **params}
        return self._json("GET", f"/api/{resource}", params=params, auth=(self.secret, ""))

    def _timezone(self) -> ZoneInfo | None:
        data = self._get("configurations", display="full", **{"filter[name]": "[PS_TIMEZONE]"})
        values = [c.get("value") for c in data.get("configurations", []) if isinstance(data, dict)]
        try:
            return ZoneInfo(values[0]) if values and values[0] else None
        except ZoneInfoNotFoundError:
            return None

    def _currencies(self) -> dict[str, str]:
        data = self._get("currencies", display="[id,iso_code]")
        return {str(c["id"]): c.get("iso_code") for c in (data.get("currencies", []) if isinstance(data, dict) else [])}

    def _by_refs(self, refs: Sequence[str]) -> pd.DataFrame:
        batches = [refs[i : i + 50] for i in range(0, len(refs), 50)]
        frames = [self._list(None, {"filter[reference]": "[" + "|".join(r.strip() for r in b) + "]"}) for b in batches]
        return pd.concat(frames, ignore_index=True) if frames else raw_frame([])

    def _list(self, since: datetime | None, filters: Mapping[str, str] | None = None) -> pd.DataFrame:
        tz, currencies = self._timezone(), self._currencies()
        rows: list[dict[str, Any]] = []
        offset = 0
        while True:
            params: dict[str, Any] = {"display": "full", "sort": "[id_ASC]", "limit": f"{offset},{self.page_size}"}
            params |= dict(filters or {})
            if since is not None and tz is not None:
                local = since.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
                params |= {"filter[date_upd]": f">[{local}]", "date": "1"}
            data = self._get("orders", **params)
            batch = data.get("orders", []) if isinstance(data, dict) else []
            rows += [self._row(o, tz, currencies) for o in batch]
            if len(batch) < self.page_size:
                return raw_frame(rows)
            offset += self.page_size

    def _row(self, order: Mapping[str, Any], tz: ZoneInfo | None, currencies: Mapping[str, str]) -> dict[str, Any]:
        return {
            "order_ref": order.get("reference"),
            "store_order_id": str(order.get("id")),
            "state": self._state(order.get("current_state")),
            "total": order.get("total_paid"),
            "currency": currencies.get(str(order.get("id_currency")), f"currency id {order.get('id_currency')}"),
            "created_at": _localized(order.get("date_add"), tz),
            "updated_at": _localized(order.get("date_upd"), tz),
            "payment_method": order.get("module"),
        }

    def fetch_order(self, store_order_id: str) -> OrderSnapshot:
        data = self._get(f"orders/{store_order_id}")
        order = data.get("order", data)
        row = self._row(order, self._timezone(), {})
        histories = self._get("order_histories", display="full", **{"filter[id_order]": f"[{store_order_id}]"})
        events: set[str] = set()
        for history in histories.get("order_histories", []) if isinstance(histories, dict) else []:
            events.update(re.findall(rf"{EVENT_MARKER}=([A-Za-z0-9_.:-]+)", str(history.get("note") or "")))
        # Order messages carry the marker too (order_histories has no free text in every version).
        messages = self._get("messages", display="full", **{"filter[id_order]": f"[{store_order_id}]"})
        for message in messages.get("messages", []) if isinstance(messages, dict) else []:
            events.update(re.findall(rf"{EVENT_MARKER}=([A-Za-z0-9_.:-]+)", str(message.get("message") or "")))
        return _snapshot(row, frozenset(events))

    def push_state(self, order: OrderSnapshot, state: str, event_id: str, note: str) -> str:
        state_id = self._api_state(state)
        if not state_id.isdigit():
            raise ReconciliationError(
                f"{self.label}: no PrestaShop order state id for {state!r}; add it to the template's "
                "reconciliation.api_states (state id -> name)"
            )
        history = _xml("order_history", {"id_order": order.store_order_id, "id_order_state": state_id})
        self._request("POST", "/api/order_histories", data=history, auth=(self.secret, ""), params={"sendemail": 0})
        message = _xml(
            "message",
            {"id_order": order.store_order_id, "message": f"{note} {EVENT_MARKER}={event_id}", "private": "1"},
        )
        self._request("POST", "/api/messages", data=message, auth=(self.secret, ""))
        return f"order_histories: order {order.store_order_id} -> state {state_id} ({state})"


def _xml(resource: str, fields: Mapping[str, str]) -> bytes:
    root = ET.Element("prestashop")
    node = ET.SubElement(root, resource)
    for key, value in fields.items():
        ET.SubElement(node, key).text = value
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _localized(value: Any, tz: ZoneInfo | None) -> Any:
    """Shop-local 'YYYY-MM-DD HH:MM:SS' placed in the shop's timezone; without one it stays as given, and
    validation reports it as a timestamp without timezone (never guessed)."""
    if tz is None or not isinstance(value, str) or not value or value.startswith("0000"):
        return value
    try:
        return datetime.fromisoformat(value).replace(tzinfo=tz).isoformat()
    except ValueError:
        return value


class OpenCartOrders(_Api):
    """OpenCart's session API: log in with the API user and key, then read orders one by one (the API
    has no listing: `fetch_orders` reads the references it is given) and add order history."""

    routes: ClassVar[dict[str, str]] = {"login": "api/login", "info": "api/order/info", "history": "api/order/history"}
    timezone: str = "UTC"

    def _call(self, route: str, token: str | None = None, **data: Any) -> Any:
        query = {"route": self.routes[route], **({"api_token": token} if token else {})}
        payload = self._json("POST", f"/index.php?{urlencode(query)}", data=data)
        if isinstance(payload, dict) and payload.get("error"):
            raise ReconciliationError(f"{self.label}: {self.routes[route]}: {payload['error']}")
        return payload

    def _token(self) -> str:
        if not getattr(self, "_api_token", None):
            self._api_token = str(self._call("login", username=self.key, key=self.secret).get("api_token") or "")
            if not self._api_token:
                raise ReconciliationError(f"{self.label}: api/login returned no api_token (check API user and key)")
        return self._api_token

    def fetch_orders(self, since: datetime | None = None, refs: Sequence[str] = ()) -> pd.DataFrame:
        token = self._token()
        return raw_frame(self._row(self._call("info", token, order_id=ref).get("order") or {}) for ref in refs)

    def _row(self, order: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "order_ref": str(order.get("order_id")),
            "store_order_id": str(order.get("order_id")),
            "state": self._state(order.get("order_status_id")),
            "total": order.get("total"),
            "currency": order.get("currency_code"),
            "created_at": utc_text(order.get("date_added")),
            "updated_at": utc_text(order.get("date_modified")),
            "payment_method": (order.get("payment_method") or {}).get("code")
            if isinstance(order.get("payment_method"), dict)
            else order.get("payment_code"),
        }

    def fetch_order(self, store_order_id: str) -> OrderSnapshot:
        order = self._call("info", self._token(), order_id=store_order_id).get("order") or {}
        row = self._row(order)
        history = " ".join(str(h.get("comment") or "") for h in order.get("histories") or [])
        events = frozenset(re.findall(rf"{EVENT_MARKER}=([A-Za-z0-9_.:-]+)", history))
        return _snapshot(row, events)

    def push_state(self, order: OrderSnapshot, state: str, event_id: str, note: str) -> str:
        state_id = self._api_state(state)
        self._call(
            "history",
            self._token(),
            order_id=order.store_order_id,
            order_status_id=state_id,
            notify=0,
            override=0,
            comment=f"{note} ({EVENT_MARKER}={event_id})",
        )
        return f"api/order/history: order {order.store_order_id} -> status {state_id} ({state})"


class ShopifyOrders(_Api):
    """Shopify Admin API. The order's `financial_status` is the state status_map speaks."""

    api_version: str = "2025-01"

    def _headers(self) -> dict[str, str]:
        return {"X-Shopify-Access-Token": self.secret}

    def _by_refs(self, refs: Sequence[str]) -> pd.DataFrame:
        frames = [self._list(None, name=r.strip()) for r in refs]
        return pd.concat(frames, ignore_index=True) if frames else raw_frame([])

    def _list(self, since: datetime | None, **filters: Any) -> pd.DataFrame:
        rows: list[dict[str, Any]] = []
        params: dict[str, Any] | None = {"status": "any", "limit": min(self.page_size, 250), **filters}
        if since is not None and params is not None:
            params["updated_at_min"] = since.astimezone(UTC).isoformat()
        url = f"/admin/api/{self.api_version}/orders.json"
        while True:
            response = self._request("GET", url, params=params, headers=self._headers())
            rows += [self._row(o) for o in response.json().get("orders", [])]
            nxt = response.links.get("next", {}).get("url")
            if not nxt:
                return raw_frame(rows)
            url, params = nxt, None  # the page_info link carries every parameter

    def _row(self, order: Mapping[str, Any]) -> dict[str, Any]:
        gateways = order.get("payment_gateway_names") or []
        return {
            "order_ref": str(order.get("name") or "").lstrip("#") or str(order.get("id")),
            "store_order_id": str(order.get("id")),
            "state": self._state(order.get("financial_status")),
            "total": order.get("total_price"),
            "currency": order.get("currency"),
            "created_at": order.get("created_at"),
            "updated_at": order.get("updated_at"),
            "payment_method": gateways[0] if gateways else None,
        }

    def fetch_order(self, store_order_id: str) -> OrderSnapshot:
        data = self._json("GET", f"/admin/api/{self.api_version}/orders/{store_order_id}.json", headers=self._headers())
        order = data.get("order") or {}
        row = self._row(order)
        events = frozenset(
            str(a.get("value")) for a in order.get("note_attributes") or [] if a.get("name") == EVENT_MARKER
        )
        return _snapshot(row, events)

    def push_state(self, order: OrderSnapshot, state: str, event_id: str, note: str) -> str:
        gid = f"gid://shopify/Order/{order.store_order_id}"
        mutation = (
            "mutation markPaid($input: OrderMarkAsPaidInput!) { orderMarkAsPaid(input: $input) "
            "{ order { id displayFinancialStatus } userErrors { field message } } }"
        )
        data = self._json(
            "POST",
            f"/admin/api/{self.api_version}/graphql.json",
            json={"query": mutation, "variables": {"input": {"id": gid}}},
            headers=self._headers(),
        )
        result = (data.get("data") or {}).get("orderMarkAsPaid") or {}
        if data.get("errors") or result.get("userErrors"):
            raise ReconciliationError(
                f"{self.label}: orderMarkAsPaid {gid}: "
                f"{json.dumps(data.get('errors') or result.get('userErrors'))[:300]}"
            )
        self._json(
            "PUT",
            f"/admin/api/{self.api_version}/orders/{order.store_order_id}.json",
            json={
                "order": {
                    "id": int(order.store_order_id),
                    "note_attributes": [
                        {"name": EVENT_MARKER, "value": event_id},
                        {"name": "psp_reconciliation", "value": note},
                    ],
                }
            },
            headers=self._headers(),
        )
        return f"orderMarkAsPaid {gid} -> {(result.get('order') or {}).get('displayFinancialStatus')}"


def _snapshot(row: Mapping[str, Any], events: frozenset[str]) -> OrderSnapshot:
    currency = row.get("currency")
    return OrderSnapshot(
        row["store_order_id"],
        row["order_ref"],
        row["state"],
        _ts(row["updated_at"]),
        events,
        total=row.get("total"),
        currency=currency if isinstance(currency, str) and len(currency) == 3 else None,
    )


def _ts(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


# The API client per platform. This is how each platform's API is spoken, not what its states mean.
API_CLIENTS: dict[str, type[_Api]] = {
    "woocommerce": WooCommerceOrders,
    "magento2": Magento2Orders,
    "prestashop": PrestaShopOrders,
    "opencart": OpenCartOrders,
    "shopify": ShopifyOrders,
}


def api_source(
    platform: str,
    base_url: str,
    secret: str,
    key: str = "",
    label: str = "",
    api_states: Mapping[str, str] | None = None,
) -> _Api:
    if platform not in API_CLIENTS:
        raise ReconciliationError(f"{label or base_url}: no order API client for platform {platform!r}")
    return API_CLIENTS[platform](
        base_url=base_url, secret=secret, key=key, label=label, api_states=dict(api_states or {})
    )


@dataclass(frozen=True)
class StoreRef:
    """One store of one client, as the reconciliation reads it."""

    client_id: str
    platform: str
    store: str
    source: OrderSource


def sources_for(
    client: Any,
    data_dir: Path,
    api_states: Mapping[str, Mapping[str, str]],
    secret: Any,
    demo_dir: Path | None = None,
) -> list[StoreRef]:
    """The order sources of one client config (`reconciliation.stores`). `secret(name)` resolves an env var
    name to its value at run time. Without configured stores, `demo_dir` (the embedded demo) supplies one
    export per enabled platform when it has one."""
    refs: list[StoreRef] = []
    for store in client.reconciliation.stores:
        if store.export_file:
            source: OrderSource = FileOrderSource(data_dir / store.export_file, label=f"{client.id}/{store.name}")
        else:
            source = api_source(
                store.platform,
                str(store.api_base_url),
                secret(store.secret_env),
                secret(store.key_env) if store.key_env else "",
                label=f"{client.id}/{store.name} ({store.platform} API)",
                api_states=api_states.get(store.platform, {}),
            )
        refs.append(StoreRef(client.id, store.platform, store.name, source))
    if not refs and demo_dir is not None:
        for platform in client.enabled_platforms():
            path = demo_dir / client.id / f"{platform}.csv"
            if path.is_file():
                refs.append(StoreRef(client.id, platform, "shop", FileOrderSource(path, label=str(path))))
    return refs
