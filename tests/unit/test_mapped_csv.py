"""A shop's CSV export read through the bridge's mapping (`produce replay`, `evaluate`)."""

from __future__ import annotations

import pytest

from producers.datasets import DatasetError, load_csv
from refold.core.mapping import EventMapping

SHOP = EventMapping.from_specs(["user_id=uid", "item_id=sku", "event_type=action",
                                "event_time=ts", "value=stars"],
                               ["pv=view", "atc=add_to_cart", "rate=rating"], "auto",
                               ["heartbeat"])


def write(tmp_path, rows: str):
    path = tmp_path / "shop.csv"
    path.write_text("uid,sku,action,ts,stars\n" + rows)
    return path


def test_columns_types_and_times_come_from_the_mapping(tmp_path):
    path = write(tmp_path, "1,a,pv,1732356000250,\n1,b,atc,1732356001250,\n"
                           "2,a,heartbeat,1732356002250,\n2,c,rate,2024-11-23T10:00:05Z,4\n")
    log = load_csv(path, "unused", "unused", "unused", mapping=SHOP)
    assert len(log) == 3  # the heartbeat is dropped
    assert sorted(log.event_types.tolist()) == ["add_to_cart", "rating", "view"]
    assert sorted(log.times.tolist()) == pytest.approx([1732356000.25, 1732356001.25,
                                                        1732356005.0])
    assert sorted(v for v in log.values.tolist() if v == v) == [4.0]


def test_a_bad_row_names_its_line(tmp_path):
    with pytest.raises(DatasetError, match=r"line 3: event_type: 'teleport' is neither"):
        load_csv(write(tmp_path, "1,a,pv,1,\n1,b,teleport,2,\n"), "u", "i", "t", mapping=SHOP)
    with pytest.raises(DatasetError, match=r"line 2: not an ISO 8601 time"):
        load_csv(write(tmp_path, "1,a,pv,soon,\n"), "u", "i", "t", mapping=SHOP)
    with pytest.raises(DatasetError, match="no column 'sku'"):
        path = tmp_path / "other.csv"
        path.write_text("uid,item,action,ts\n1,a,pv,1\n")
        load_csv(path, "u", "i", "t", mapping=SHOP)
