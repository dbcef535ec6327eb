"""Messages that used to stop a partition, and what happens to them instead.

Each check raises `Rejected` (a dead letter with a reason and a bounded error class) or builds
the dead letter's form; none needs a broker:

- (in `refold.core.schemas`) JSON nested thousands of levels deep made the decoder raise
  `RecursionError`, which is not a `SchemaError`, so the worker crashed on it, restarted and read
  it again: it is a `SchemaError` now, a `too_deep` dead letter;
- `check_numbers`: a weight beyond `max_abs_weight` (or any number beyond float32's range) would
  turn a user's confidences into infinities and NaN the fold-in: `out_of_range`;
- (in `consumers.deadletter.truncated_copy`) a dead letter must itself fit the producer's message
  limit, so an oversize event's dead letter keeps its first bytes, with its size and sha256;
- `exception_reason`: the reason of a message whose handling raised an unexpected exception, after
  the retries (the loop isolates it), short enough for a header.

>>> from refold.core.schemas import Event
>>> ev = Event(event_id="e", user_id="u", item_id="i", event_type="click", event_time=1.0,
...            weight=1e39)
>>> try:
...     check_numbers(ev, max_abs_weight=1e4)
... except Rejected as exc:
...     print(exc.error_class, "|", exc)
out_of_range | weight: 1e+39 is beyond float32's range (±3.4e+38)
"""

from __future__ import annotations

import math

from consumers.deadletter import Rejected
from refold.core.schemas import Event

FLOAT32_MAX = 3.4028234663852886e38
EXCEPTION_REASON_CHARS = 500


def check_numbers(event: Event, max_abs_weight: float) -> None:
    """Refuse numbers the fold-in cannot hold: beyond float32, or a weight beyond the limit."""
    for name in ("weight", "value"):
        x = getattr(event, name)
        if x is None:
            continue
        if not math.isfinite(x) or abs(x) > FLOAT32_MAX:
            raise Rejected(name, f"{x:g} is beyond float32's range (±{FLOAT32_MAX:.2g})",
                           "out_of_range")
    if event.weight is not None and abs(event.weight) > max_abs_weight:
        raise Rejected("weight", f"{event.weight:g} is beyond ±{max_abs_weight:g} "
                       "(max_abs_weight)", "out_of_range")


def exception_reason(exc: BaseException) -> str:
    """`Type: message`, cut to `EXCEPTION_REASON_CHARS`."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= EXCEPTION_REASON_CHARS else \
        text[: EXCEPTION_REASON_CHARS - 3] + "..."
