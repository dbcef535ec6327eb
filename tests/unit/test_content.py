"""Content features: TF-IDF against scikit-learn's own vectorizer, idf shipping, tag sets, and
the index's scores against a brute-force computation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from models.content import Idf, TextEncoder, tag_set, tfidf
from models.content_index import ContentIndex, Profile

WORDS = ["red", "blue", "green", "shoes", "jacket", "wine", "cheese", "trail", "road", "running",
         "hiking", "city", "summer", "winter", "wool", "cotton", "leather", "light", "heavy",
         "classic", "modern"]


def texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(2, 9))) for _ in range(n)]


def test_tfidf_equals_scikit_learns_vectorizer() -> None:
    docs = texts(60)
    counts = TextEncoder().counts(docs)
    ours = tfidf(counts, Idf.fit(counts))
    ref = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit_transform(docs)
    assert np.allclose((ours @ ours.T).toarray(), (ref @ ref.T).toarray())


def test_uniform_idf_is_cosine_of_term_frequencies() -> None:
    counts = TextEncoder().counts(["wool wool jacket", "wool jacket jacket"])
    X = tfidf(counts, Idf.uniform())
    a = np.array([1 + np.log(2), 1.0])
    assert (X @ X.T).toarray()[0, 1] == pytest.approx(2 * a[0] * a[1] / (a @ a))


def test_idf_of_unseen_features_is_the_largest_and_survives_its_arrays() -> None:
    counts = TextEncoder().counts(["red shoes", "red wine", "blue wine"])
    idf = Idf.fit(counts)
    assert idf.default == pytest.approx(np.log(4) + 1)
    unseen = np.setdiff1d(np.arange(10), idf.features)[:3]
    assert idf.of(unseen).tolist() == [idf.default] * 3
    assert idf.of(idf.features).tolist() == idf.values.tolist()
    back = Idf.from_arrays(idf.to_arrays())
    assert back.n_docs == 3 and np.array_equal(back.features, idf.features)
    assert np.array_equal(back.of(np.arange(5000)), idf.of(np.arange(5000)))


def test_idf_arrays_are_checked() -> None:
    arrays = Idf.fit(TextEncoder().counts(["red shoes", "blue wine"])).to_arrays()
    bad = {**arrays, "idf_features": arrays["idf_features"][::-1].copy()}
    with pytest.raises(ValueError, match="inconsistent"):
        Idf.from_arrays(bad)
    bad = {**arrays, "idf_values": np.full(len(arrays["idf_values"]), np.nan)}
    with pytest.raises(ValueError, match="NaN"):
        Idf.from_arrays(bad)


def test_tag_set_normalises_tags_categories_and_text_attributes() -> None:
    got = tag_set(["  Machine   Learning", "", "python"], ["Jobs"],
                  {"remote": True, "city": "Berlin", "salary": 70000, "level": None})
    assert got == {"machine learning", "python", "jobs", "remote=true", "city=berlin"}


def brute(ci: ContentIndex, profile: Profile, docs: list[str], tags: list[list[str]],
          idf: Idf) -> np.ndarray:
    """Dense cosine and weighted Jaccard, item by item."""
    X = tfidf(TextEncoder().counts(docs), idf)
    q = np.zeros(X.shape[1])
    q[profile.terms] = profile.weights
    a = {ci.tag_name(t): w for t, w in zip(profile.tags.tolist(), profile.tag_weights, strict=True)}
    out = []
    for x, ts in zip(X @ q, tags, strict=True):
        b = tag_set(ts)
        keys = set(a) | b
        num = sum(min(a.get(t, 0.0), float(t in b)) for t in keys)
        den = sum(max(a.get(t, 0.0), float(t in b)) for t in keys)
        out.append(0.4 * float(x) + 0.6 * (num / den if den else 0.0))
    return np.array(out)


def catalog(n: int, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    rng = np.random.default_rng(seed)
    pool = [f"tag{k}" for k in range(12)]
    return texts(n, seed), [list(rng.choice(pool, rng.integers(0, 4))) for _ in range(n)]


@pytest.mark.parametrize("rebuild", [True, False])
def test_scores_equal_brute_force_before_and_after_a_rebuild(rebuild: bool) -> None:
    docs, tags = catalog(300)
    idf = Idf.fit(TextEncoder().counts(docs))
    ci = ContentIndex(profile_terms=10_000)
    ci.set_idf(idf)
    ci.set_items(range(300), docs, tags)
    if rebuild:
        ci.rebuild()
        assert ci.waiting == 0
    else:
        assert ci.waiting == 300  # changed since the last build (none): scored directly
    rng = np.random.default_rng(1)
    items = rng.choice(300, 6, replace=False)
    p = ci.profile_of_items(items, rng.uniform(0.1, 1.0, 6))
    assert np.allclose(ci.scores(p, 300), brute(ci, p, docs, tags, idf))
    user = ci.profile_of_user("wool jacket for winter hiking", ["tag1", "tag3", "never-used"])
    assert len(user.tags) == 2
    assert np.allclose(ci.scores(user, 300), brute(ci, user, docs, tags, idf))


def test_changed_items_are_scored_as_changed() -> None:
    docs, tags = catalog(200, seed=2)
    ci = ContentIndex()
    for i, (d, t) in enumerate(zip(docs, tags, strict=True)):
        ci.set_item(i, d, t)
    p = ci.profile_of_user("leather shoes", ["tag2"])
    ci.scores(p, 200)  # builds
    ci.set_item(5, "leather shoes", ["tag2"])
    ci.set_item(7, None)
    s = ci.scores(p, 202)
    assert s[5] == pytest.approx(1.0)
    assert s[7] == 0.0 and s[200:].tolist() == [0.0, 0.0]
    fresh = ContentIndex()
    for i, (d, t) in enumerate(zip(docs, tags, strict=True)):
        fresh.set_item(i, "leather shoes" if i == 5 else None if i == 7 else d,
                       ["tag2"] if i == 5 else [] if i == 7 else t)
    assert np.allclose(s[:200], fresh.scores(fresh.profile_of_user("leather shoes", ["tag2"]),
                                             200))
    assert ci.has_content(202)[[5, 7, 201]].tolist() == [True, False, False]


def test_a_new_idf_reweighs_every_item() -> None:
    docs = ["red shoes", "red wine", "red jacket", "blue shoes"]
    ci = ContentIndex(text_weight=1.0, tag_weight=0.0)
    for i, d in enumerate(docs):
        ci.set_item(i, d)
    p = ci.profile_of_user("red shoes")
    before = ci.scores(p, 4)
    assert before[1] == pytest.approx(before[3])  # "red" and "shoes" weigh the same
    ci.set_idf(Idf.fit(TextEncoder().counts(docs)))
    after = ci.scores(ci.profile_of_user("red shoes"), 4)
    assert after[3] > after[1]  # "shoes" is rarer than "red"
    with pytest.raises(ValueError, match="features"):
        ci.set_idf(Idf.uniform(1 << 10))


def test_profile_keeps_the_heaviest_terms_at_unit_length() -> None:
    ci = ContentIndex(profile_terms=2)
    ci.set_item(0, "wool wool wool jacket coat")
    p = ci.profile_of_items(np.array([0]), np.array([1.0]))
    assert len(p.terms) == 2 and np.linalg.norm(p.weights) == pytest.approx(1.0)
    assert not ci.profile_of_items(np.array([0]), np.array([-1.0]))  # negatives do not count


def test_merged_profiles_add_terms_and_tags() -> None:
    ci = ContentIndex()
    ci.set_item(0, "wool jacket", ["winter"])
    ci.set_item(1, "cotton shirt", ["summer"])
    a = ci.profile_of_items(np.array([0]), np.array([1.0]))
    b = ci.profile_of_user("cotton shirt", ["summer"])
    m = a.merged(b, limit=64)
    s = ci.scores(m, 2)
    assert s[0] == pytest.approx(s[1]) and s[0] > 0
    assert sorted(m.tag_weights.tolist()) == [1.0, 1.0]


def test_similar_items_by_content() -> None:
    ci = ContentIndex()
    for i, (d, t) in enumerate([("wool jacket", ["winter"]), ("wool coat", ["winter"]),
                                ("red wine", ["food"]), ("", [])]):
        ci.set_item(i, d, t)
    idx, val = ci.similar(0, 3, 4)
    assert idx.tolist() == [1] and val[0] > 0
    assert ci.similar(3, 3, 4)[0].tolist() == []


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="weight"):
        ContentIndex(text_weight=0.0, tag_weight=0.0)
    with pytest.raises(ValueError, match="profile_terms"):
        ContentIndex(profile_terms=0)
