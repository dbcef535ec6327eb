from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from producers.datasets import (
    ML_100K_GENRES,
    Catalog,
    DatasetError,
    InteractionLog,
    download_movielens,
    load_csv,
    load_movielens,
)
from refold.core.schemas import decode_event, encode

ML_100K = Path(os.environ.get(
    "REFOLD_ML100K", Path(__file__).resolve().parents[3] / "shared" / "datasets" / "ml-100k"))

# user item rating timestamp; rows 1, 3 and 4 share a time: file order must survive the sort
U_DATA = "7\t10\t4\t300\n8\t11\t5\t200\n9\t10\t1\t200\n7\t12\t3\t200\n8\t10\t2\t100\n"


def flags(*on: int) -> str:
    return "|".join("1" if k in on else "0" for k in range(19))


U_ITEM = (
    f"10|Toy Story (1995)|01-Jan-1995||http://x/10|{flags(3, 4, 5)}\n"
    f"11|Café \"Noir\" (1962)|01-Jan-1962||http://x/11|{flags(10)}\n"
    f"12|unknown||||{flags(0)}\n"
)


def write_grouplens(root: Path, genre_file: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "u.data").write_text(U_DATA)
    (root / "u.item").write_text(U_ITEM, encoding="latin-1")
    (root / "u.user").write_text("7|24|M|technician|85711\n8|53|F|other|94043\n")
    if genre_file:
        genres = "".join(f"{g}|{k}\n" for k, g in enumerate(ML_100K_GENRES)) + "\n"
        (root / "u.genre").write_text(genres)
    return root


def test_grouplens_layout_in_time_order_with_ties_in_file_order(tmp_path: Path) -> None:
    log, catalog = load_movielens(write_grouplens(tmp_path / "ml"))
    assert log.name == "ml-100k" and len(log) == 5
    assert log.times.tolist() == [100, 200, 200, 200, 300]
    assert log.user_ids.tolist() == ["8", "8", "9", "7", "7"]
    assert log.item_ids.tolist() == ["10", "11", "10", "12", "10"]
    assert log.values.tolist() == [2, 5, 1, 3, 4]
    assert set(log.event_types.tolist()) == {"rating"}
    assert isinstance(catalog, Catalog)
    items = catalog.by_id()
    assert items["10"].categories == ["Animation", "Children's", "Comedy"]
    assert items["10"].attributes == {"title": "Toy Story", "year": 1995}
    assert items["11"].attributes == {"title": 'Café "Noir"', "year": 1962}
    assert items["11"].categories == ["Film-Noir"]
    assert items["12"].attributes == {"title": "unknown", "year": None}


def test_grouplens_layout_without_u_genre_uses_the_fixed_genres(tmp_path: Path) -> None:
    _, catalog = load_movielens(write_grouplens(tmp_path, genre_file=False))
    assert catalog.by_id()["10"].categories == ["Animation", "Children's", "Comedy"]


def test_grouplens_genre_order_comes_from_u_genre(tmp_path: Path) -> None:
    root = write_grouplens(tmp_path)
    (root / "u.genre").write_text("".join(f"g{18 - k}|{18 - k}\n" for k in range(19)))
    assert load_movielens(root)[1].by_id()["11"].categories == ["g10"]


def test_grouplens_bad_row_names_the_line(tmp_path: Path) -> None:
    root = write_grouplens(tmp_path)
    (root / "u.data").write_text("1\t2\t3\t4\n1\t2\tx\t5\n")
    with pytest.raises(DatasetError, match=r"u\.data, line 2: not a finite number: 'x'"):
        load_movielens(root)
    (root / "u.data").write_text("1\t2\t3\t4\n1\t2\t3\n")
    with pytest.raises(DatasetError, match=r"line 2: 3 fields, expected 4"):
        load_movielens(root)


def test_a_directory_without_movielens_files_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no MovieLens files"):
        load_movielens(tmp_path)


def test_atomic_layout_small(tmp_path: Path) -> None:
    (tmp_path / "tiny.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t5\t4\t20\n2\t6\t3\t10\n3\t5\t5\t20\n"
    )
    (tmp_path / "tiny.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "5\tA \"quoted\" title\t1990\tDrama Sci-Fi\n6\tNo year\tunkonwn\t\n"
    )
    log, catalog = load_movielens(tmp_path)
    assert log.name == "tiny" and log.user_ids.tolist() == ["2", "1", "3"]
    assert catalog[0].categories == ["Drama", "Sci-Fi"]
    assert catalog[0].attributes == {"title": 'A "quoted" title', "year": 1990}
    assert catalog[1].categories == [] and catalog[1].attributes["year"] is None


@pytest.mark.slow
@pytest.mark.skipif(not ML_100K.is_dir(), reason="ml-100k is not beside the checkout")
def test_atomic_layout_ml_100k() -> None:
    log, catalog = load_movielens(ML_100K)
    assert len(log) == 100_000
    assert len(np.unique(log.user_ids)) == 943 and len(np.unique(log.item_ids)) == 1682
    assert len(catalog) == 1682 and "Sci-Fi" in catalog.categories()
    assert np.all(np.diff(log.times) >= 0)
    # stable order: Python's sort is stable, so this is file order within each timestamp
    with open(ML_100K / "ml-100k.inter") as f:
        rows = [line.split("\t") for line in f.read().splitlines()[1:]]
    expected = sorted(rows, key=lambda r: float(r[3]))
    assert log.user_ids.tolist() == [r[0] for r in expected]
    assert log.item_ids.tolist() == [r[1] for r in expected]
    assert np.array_equal(log.values, [float(r[2]) for r in expected])


def small_log() -> InteractionLog:
    nan = float("nan")
    return InteractionLog(
        user_ids=["a", "b", "a", "c"], item_ids=["x", "y", "z", "x"],
        event_types=["click", "rating", "purchase", "view"], values=[nan, 4.5, nan, nan],
        times=[5.0, 1.0, 5.0, 3.0], session_ids=["s1", None, "s1", ""], name="small",
    )


def test_log_sorts_stably_and_iterates_valid_events_with_row_ids() -> None:
    log = small_log()
    assert log.times.tolist() == [1, 3, 5, 5] and log.item_ids.tolist() == ["y", "x", "x", "z"]
    events = list(log.iter_events("t"))
    assert [e.event_id for e in events] == ["t-0", "t-1", "t-2", "t-3"]
    assert events[0].event_type == "rating" and events[0].value == 4.5
    assert events[0].session_id is None and events[2].session_id == "s1"
    assert events[1].value is None
    for e in events:  # each passes the wire contract
        assert decode_event(encode(e)) == e


def test_slices_keep_event_ids_take_renumbers() -> None:
    log = small_log()
    tail = log[2:]
    assert len(tail) == 2 and tail.first_row == 2
    assert [e.event_id for e in tail.iter_events("t")] == ["t-2", "t-3"]
    assert [e.event_id for e in log[1:3][1:].iter_events("t")] == ["t-2"]
    picked = log.take([3, 0])
    assert picked.times.tolist() == [1, 5] and picked.first_row == 0
    assert log[np.array([True, False, False, True])].item_ids.tolist() == ["y", "z"]
    assert len(log[10:]) == 0 and list(log[10:].iter_events("t")) == []
    with pytest.raises(TypeError):
        log[0]
    ids = [e.event_id for c in log.chunks(3) for e in c.iter_events("t")]
    assert ids == ["t-0", "t-1", "t-2", "t-3"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"event_types": ["click", "like", "view", "view"]}, "row 1: unknown event type"),
        ({"values": [1.0, float("nan"), 1.0, 1.0]}, "row 1: rating without value"),
        ({"user_ids": ["a", "b", "", "c"]}, "row 2: empty user id"),
        ({"times": [1.0, 2.0, -3.0, 4.0]}, "row 2: time not finite"),
        ({"item_ids": ["x", "y"]}, "equal length"),
    ],
)
def test_log_rejects_rows_that_make_invalid_events(change: dict, message: str) -> None:
    columns = {"user_ids": ["a", "b", "a", "c"], "item_ids": ["x", "y", "z", "x"],
               "event_types": ["click", "rating", "view", "view"],
               "values": [1.0, 2.0, 3.0, 4.0], "times": [1.0, 2.0, 3.0, 4.0]}
    with pytest.raises(DatasetError, match=message):
        InteractionLog(**(columns | change))


CSV = """user,item,when,score,kind,session
alice,book-1,2024-01-02T10:00:00Z,,view,s1
bob,book-2,2024-01-01T00:00:00,4,rating,
alice,book-1,2024-01-02T10:00:00+00:00,,,s1
"""


def test_load_csv_maps_columns_iso_times_and_default_type(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text(CSV)
    log = load_csv(path, "user", "item", "when", value_col="score", type_col="kind",
                   default_event_type="purchase", time_format="iso", session_col="session")
    assert log.name == "mine" and log.user_ids.tolist() == ["bob", "alice", "alice"]
    assert log.event_types.tolist() == ["rating", "view", "purchase"]
    assert log.times[0] == 1704067200.0 and log.times[1] == log.times[2] == 1704189600.0
    assert log.values[0] == 4 and np.isnan(log.values[1:]).all()
    assert log.session_ids.tolist() == ["", "s1", "s1"]


def test_load_csv_unix_times_and_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "log.tsv"
    path.write_text("u;i;t\n1;9;1700000000.5\n2;8;1600000000\n")
    log = load_csv(path, "u", "i", "t", delimiter=";")
    assert log.item_ids.tolist() == ["8", "9"] and log.event_types.tolist() == ["click"] * 2
    assert log.times.tolist() == [1600000000.0, 1700000000.5]


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("u,i,t\n1,2,3\n", {"time_col": "ts"}, r"no column 'ts' \(columns: u, i, t\)"),
        ("u,i,t\n1,2,3\n1,2,soon\n", {}, r"column 't', line 3: not a finite number: 'soon'"),
        ("u,i,t\n1,2,3\n\n1,2\n", {}, r"line 4: 2 fields, expected 3"),
        ("u,i,t,k\n1,2,3,click\n1,2,3,like\n", {"type_col": "k"}, r"line 3: unknown event type"),
        ("u,i,t\n1,2,3\n,2,3\n", {}, r"line 3: empty user id"),
        ("u,i,t,k\n1,2,3,rating\n", {"type_col": "k"}, r"line 2: rating without value"),
        ("u,i,t\n1,2,yesterday\n", {"time_format": "iso"}, r"line 2: not an ISO 8601 time"),
    ],
)
def test_load_csv_errors_name_the_column_or_line(
    tmp_path: Path, text: str, kwargs: dict, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_csv(path, **({"user_col": "u", "item_col": "i", "time_col": "t"} | kwargs))


def test_download_unzips_the_archive_and_is_not_repeated(tmp_path: Path) -> None:
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ml-100k/u.data", U_DATA)
        z.writestr("ml-100k/u.item", U_ITEM.encode("latin-1"))
    target = download_movielens(tmp_path / "data", url=archive.as_uri())
    assert target == tmp_path / "data" / "ml-100k"
    assert len(load_movielens(target)[0]) == 5
    assert len(load_movielens(tmp_path / "data")[0]) == 5  # the parent directory also works
    archive.unlink()  # a second call finds the files and does not download
    assert download_movielens(tmp_path / "data", url=archive.as_uri()) == target
