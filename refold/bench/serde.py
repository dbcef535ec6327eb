"""Event (de)serialization: msgspec (what refold uses) next to stdlib json and orjson.

The alternatives decode to a dict and validate by hand the way a careful service would (required
fields, types, enum), so the comparison is of like with like.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from refold.core.schemas import EVENT_TYPES, Event, decode_event, encode

_TYPES = frozenset(EVENT_TYPES)


def sample(n: int) -> list[Event]:
    return [
        Event(event_id=f"e{i}", user_id=f"user-{i % 977}", item_id=f"item-{i % 4001}",
              event_type=EVENT_TYPES[i % 5], event_time=1.7e9 + i, session_id=f"s{i // 7}",
              context={"page": "home", "pos": i % 20})
        for i in range(n)
    ]


def _check(d: dict) -> dict:
    for name in ("event_id", "user_id", "item_id"):
        if not isinstance(d.get(name), str) or not d[name].strip():
            raise ValueError(name)
    if d.get("event_type") not in _TYPES:
        raise ValueError("event_type")
    if not isinstance(d.get("event_time"), int | float):
        raise ValueError("event_time")
    return d


def _time(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(n: int = 100_000) -> dict:
    """Messages per second for encode and decode+validate, per library."""
    events = sample(n)
    blobs = [encode(e) for e in events]
    dicts = [json.loads(b) for b in blobs]
    rows = {
        "msgspec": (lambda: [encode(e) for e in events],
                    lambda: [decode_event(b) for b in blobs]),
        "json": (lambda: [json.dumps(d).encode() for d in dicts],
                 lambda: [_check(json.loads(b)) for b in blobs]),
    }
    try:
        import orjson

        rows["orjson"] = (lambda: [orjson.dumps(d) for d in dicts],
                          lambda: [_check(orjson.loads(b)) for b in blobs])
    except ImportError:  # optional
        pass
    out = {"messages": n, "bytes_per_message": sum(map(len, blobs)) / n, "libraries": {}}
    for name, (enc, dec) in rows.items():
        out["libraries"][name] = {
            "encode_per_s": n / _time(enc),
            "decode_validate_per_s": n / _time(dec),
        }
    return out


def table(result: dict) -> str:
    base = result["libraries"]["msgspec"]
    lines = [f"{result['messages']:,} events, {result['bytes_per_message']:.0f} bytes each",
             f"{'library':10} {'encode/s':>12} {'decode+validate/s':>18} {'msgspec speed-up':>17}"]
    for name, r in result["libraries"].items():
        ratio = base["decode_validate_per_s"] / r["decode_validate_per_s"]
        lines.append(f"{name:10} {r['encode_per_s']:12,.0f} {r['decode_validate_per_s']:18,.0f} "
                     f"{ratio:16.1f}x")
    return "\n".join(lines)
