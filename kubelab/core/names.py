"""Generated names, spelled as Kubernetes spells them.

`generateName` and the names controllers make (a Deployment's pods, a Service's
EndpointSlices) end in five characters of `rand.SafeEncodeString`'s alphabet: no vowels,
so no words, and no 0, 1 or 3, which look like letters. The same alphabet spells a
pod-template-hash.
"""

from __future__ import annotations

import random

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
SUFFIX_LENGTH = 5
# Kubernetes' maxGeneratedNameLength: a base is cut so that base + suffix fits 63.
MAX_GENERATED_BASE = 63 - SUFFIX_LENGTH


def random_suffix(rng: random.Random) -> str:
    return "".join(rng.choice(SAFE_ALPHABET) for _ in range(SUFFIX_LENGTH))


def unique_name(base: str, taken: set[str], rng: random.Random) -> str:
    """`base` plus a random suffix that is not in `taken`; the name is added to it."""
    while True:
        name = base + random_suffix(rng)
        if name not in taken:
            taken.add(name)
            return name
