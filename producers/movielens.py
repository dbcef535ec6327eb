"""MovieLens 100K from a directory (the GroupLens layout or the atomic one), and its download.

Ratings become `rating` events with their value; genres become item categories.
"""

from __future__ import annotations

import re
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from producers.interactions import Catalog, DatasetError, InteractionLog
from producers.tables import floats, read_table
from refold.core.schemas import Item

ML_100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML_100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # the order of the genre flag columns of u.item, used when u.genre is absent


def load_movielens(path: str | Path) -> tuple[InteractionLog, Catalog]:
    """MovieLens 100K from a directory: the GroupLens layout (`u.data`, `u.item`, `u.genre`) or
    the tab-separated atomic layout (`<name>.inter`, `<name>.item`). Ratings become `rating`
    events with their value; genres become item categories."""
    root = Path(path)
    if not (root / "u.data").is_file() and (root / "ml-100k" / "u.data").is_file():
        root = root / "ml-100k"  # the directory download_movielens extracted into
    if (root / "u.data").is_file():
        return _load_grouplens(root)
    if inter := sorted(root.glob("*.inter")):
        return _load_atomic(inter[0])
    raise DatasetError(
        f"{root}: no MovieLens files here (expected u.data and u.item, or <name>.inter and "
        "<name>.item)"
    )


def _title_year(title: str, date: str) -> tuple[str, int | None]:
    """'Toy Story (1995)', '01-Jan-1995' -> ('Toy Story', 1995)."""
    m = re.fullmatch(r"(.*?)\s*\((\d{4})\)\s*", title)
    year = date[-4:] if date[-4:].isdigit() else m[2] if m else ""
    return (m[1] if m else title), int(year) if year else None


def _load_grouplens(root: Path) -> tuple[InteractionLog, Catalog]:
    _, cols, lines = read_table(root / "u.data", "\t", header=False)
    if len(cols) != 4:
        raise DatasetError(f"{root / 'u.data'}: expected 4 columns (user item rating timestamp)")
    ratings, times = (floats(c, f"{root / 'u.data'}", lines, empty_is_nan=False)
                      for c in cols[2:])
    log = InteractionLog(cols[0], cols[1], np.full(len(times), "rating"), ratings, times,
                         name="ml-100k")
    genres = list(ML_100K_GENRES)
    if (root / "u.genre").is_file():
        _, g, _ = read_table(root / "u.genre", "|", header=False, encoding="latin-1")
        genres = g[0][np.argsort(g[1].astype(int))].tolist()
    catalog = Catalog()
    if (root / "u.item").is_file():
        _, cols, lines = read_table(root / "u.item", "|", header=False, encoding="latin-1")
        if len(cols) != 5 + len(genres):
            raise DatasetError(f"{root / 'u.item'}: expected {5 + len(genres)} columns "
                               f"(id title date video-date url and {len(genres)} genre flags)")
        flags = np.stack(cols[5:], axis=1) == "1"
        for k, (item, title, date) in enumerate(zip(*(c.tolist() for c in cols[:3]), strict=True)):
            name, year = _title_year(title, date)
            catalog.append(Item(
                item_id=item, categories=[g for g, f in zip(genres, flags[k], strict=True) if f],
                attributes={"title": name, "year": year},
            ))
    return log, catalog


def _load_atomic(inter: Path) -> tuple[InteractionLog, Catalog]:
    """`<name>.inter` / `<name>.item`: tab-separated, header fields typed as `name:type`."""
    head, cols, lines = read_table(inter, "\t", header=True)
    col = {h.split(":")[0]: c for h, c in zip(head, cols, strict=True)}
    for needed in ("user_id", "item_id", "rating", "timestamp"):
        if needed not in col:
            raise DatasetError(f"{inter}: no column {needed!r} (columns: {', '.join(head)})")
    ratings, times = (floats(col[c], str(inter), lines, empty_is_nan=False)
                      for c in ("rating", "timestamp"))
    log = InteractionLog(col["user_id"], col["item_id"], np.full(len(times), "rating"), ratings,
                         times, name=inter.stem)
    catalog = Catalog()
    item_file = inter.with_suffix(".item")
    if item_file.is_file():
        head, cols, _ = read_table(item_file, "\t", header=True)
        col = {h.split(":")[0]: c.tolist() for h, c in zip(head, cols, strict=True)}
        if "item_id" not in col:
            raise DatasetError(f"{item_file}: no column 'item_id' (columns: {', '.join(head)})")
        blank = [""] * len(col["item_id"])
        for item, title, year, genres in zip(col["item_id"], col.get("movie_title", blank),
                                             col.get("release_year", blank),
                                             col.get("class", blank), strict=True):
            catalog.append(Item(item_id=item, categories=genres.split(), attributes={
                "title": title, "year": int(year) if year.isdigit() else None}))
    return log, catalog


def download_movielens(dest_dir: str | Path, url: str = ML_100K_URL) -> Path:
    """Download and unzip the original ml-100k archive into `dest_dir`; returns `dest_dir/ml-100k`.

    Only ever called explicitly (the MovieLens terms ask that the data not be redistributed).
    Does nothing when `dest_dir/ml-100k/u.data` already exists.
    """
    dest = Path(dest_dir)
    target = dest / "ml-100k"
    if (target / "u.data").is_file():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as tmp:
        with urllib.request.urlopen(url, timeout=60) as resp:
            size = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc=Path(url).name) as bar:
                while block := resp.read(1 << 16):
                    tmp.write(block)
                    bar.update(len(block))
        tmp.seek(0)
        with zipfile.ZipFile(tmp) as archive:
            archive.extractall(dest)  # extractall keeps member paths inside dest
    if not (target / "u.data").is_file():
        raise DatasetError(f"{url}: the archive has no ml-100k/u.data")
    return target
