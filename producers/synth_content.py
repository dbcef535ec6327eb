"""A content-rich synthetic world: the synthetic shop (`producers.synth`), plus item texts and
tags and users' declared interests, all drawn from the same latent tastes that drive the events.

Each word of a vocabulary and each tag has a random vector in the world's latent space. An
item's text is `words_per_item` words drawn with probability ∝ exp(sharpness · cos(word, item)),
its tags `tags_per_item` distinct tags drawn the same way; a user's declared profile (what a
signup form or a CV gives: interests as text, skills as tags, the signup time) is drawn from the
user's own tastes. `sharpness` sets how much content says: 0 makes it noise. Words are
pronounceable nonsense (`"kalomi"`), so nothing but their co-occurrence carries meaning.

By default the world has many arrivals (half as many new items and users again as at the start)
so that content matters: items that no one has touched yet, and users with no history yet.

>>> w = generate_content(content_synth_config(n_users=40, n_items=30, n_events=400, seed=2))
>>> len(w.log), len(w.items), len(w.profiles)
(400, 45, 60)
>>> text, tags = w.items["i0"]
>>> len(text.split()), len(tags)
(30, 3)
>>> item = catalog_with_content(w)[0]
>>> item.text == text, declared_profiles(w)[0].user_id
(True, 'u0')
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import msgspec
import numpy as np

from producers.datasets import Catalog, InteractionLog
from producers.synth import SynthConfig, SynthTruth, SynthWorld
from refold.core.schemas import User

SYLLABLES = ("ka", "lo", "mi", "ru", "te", "sa", "no", "vi", "de", "pu", "ri", "go", "ba", "ze",
             "chi", "mo", "fa", "li", "tu", "ne")


@dataclass(frozen=True)
class ContentConfig:
    vocabulary: int = 3000
    words_per_item: int = 30
    n_tags: int = 150
    tags_per_item: int = 3
    profile_words: int = 15
    profile_tags: int = 4
    sharpness: float = 6.0
    seed: int = 0


@dataclass(frozen=True, eq=False)
class ContentWorld:
    """A synthetic log with its catalog, every item's (text, tags) and every user's declared
    (interests, skills, signup time), and the truth behind them."""

    log: InteractionLog
    catalog: Catalog
    items: dict[str, tuple[str, list[str]]]
    profiles: dict[str, tuple[str, list[str], float]]
    truth: SynthTruth


def content_synth_config(**changes: object) -> SynthConfig:
    """The default content-rich world: 2,000 users and 1,000 items at the start, half as many
    again arriving over four weeks, 100,000 events."""
    return replace(SynthConfig(new_users=0.5, new_items=0.5), **changes)  # type: ignore[arg-type]


def generate_content(config: SynthConfig | None = None,
                     content: ContentConfig | None = None) -> ContentWorld:
    world = SynthWorld(config or content_synth_config())
    c = content or ContentConfig()
    log, truth = world.log(), world.truth
    rng = np.random.default_rng([c.seed, 20])
    words = np.array([_word(k) for k in range(c.vocabulary)])
    tags = np.array([f"tag-{_word(k)}" for k in range(c.n_tags)])
    dim = truth.item_factors.shape[1]
    W, T = _unit(rng.normal(size=(c.vocabulary, dim))), _unit(rng.normal(size=(c.n_tags, dim)))
    items = {}
    for k, y in enumerate(_unit(truth.item_factors)):
        text = " ".join(words[_draw(rng, W @ y, c.sharpness, c.words_per_item, True)])
        items[f"i{k}"] = (text, tags[_draw(rng, T @ y, c.sharpness, c.tags_per_item, False)]
                          .tolist())
    profiles = {}
    for k, (x, t) in enumerate(zip(_unit(truth.user_factors), truth.user_arrival.tolist(),
                                   strict=True)):
        text = " ".join(words[_draw(rng, W @ x, c.sharpness, c.profile_words, True)])
        skills = tags[_draw(rng, T @ x, c.sharpness, c.profile_tags, False)].tolist()
        profiles[f"u{k}"] = (text, skills, t)
    return ContentWorld(log, world.catalog, items, profiles, truth)


def catalog_with_content(world: ContentWorld) -> Catalog:
    """The world's catalog messages with each item's text and tags."""
    return Catalog(msgspec.structs.replace(item, text=world.items[item.item_id][0],
                                           tags=world.items[item.item_id][1])
                   for item in world.catalog)


def declared_profiles(world: ContentWorld) -> list[User]:
    """Every user's declared profile as a `User` message."""
    return [User(user_id=u, interests=text, skills=skills, signup_at=t)
            for u, (text, skills, t) in world.profiles.items()]


def _word(k: int) -> str:
    n = len(SYLLABLES)
    return SYLLABLES[k % n] + SYLLABLES[(k // n) % n] + SYLLABLES[(k // n // n) % n]


def _unit(X: np.ndarray) -> np.ndarray:
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _draw(rng: np.random.Generator, affinity: np.ndarray, sharpness: float, n: int,
          replace: bool) -> np.ndarray:
    p = np.exp(sharpness * (affinity - affinity.max()))
    return rng.choice(len(p), n, replace=replace, p=p / p.sum())
