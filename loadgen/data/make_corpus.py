"""Regenerate ``corpus.txt``: deterministic English-like prose, written for finishline.

Run ``python loadgen/data/make_corpus.py``; the same file comes out every time (seeded). The
word lists below were written for this project, so the corpus carries the project's license
(Apache-2.0) and no third-party text.
"""

from __future__ import annotations

import random
from pathlib import Path

SUBJECTS = (
    "the engineer",
    "a small team",
    "the operator",
    "the old lighthouse keeper",
    "the river pilot",
    "our neighbour",
    "the archivist",
    "a travelling musician",
    "the night nurse",
    "the baker",
    "the surveyor",
    "a curious child",
    "the ship's cook",
    "the mayor",
    "the gardener",
    "the clerk",
    "a retired teacher",
    "the farmer",
    "the cartographer",
    "the young apprentice",
    "the weaver",
    "the station master",
    "a quiet student",
    "the potter",
    "the beekeeper",
    "the translator",
)
VERBS = (
    "repaired",
    "measured",
    "described",
    "carried",
    "painted",
    "studied",
    "remembered",
    "counted",
    "built",
    "opened",
    "followed",
    "questioned",
    "planted",
    "explained",
    "recorded",
    "noticed",
    "cleaned",
    "borrowed",
    "shared",
    "weighed",
    "tested",
    "mended",
    "collected",
    "arranged",
)
OBJECTS = (
    "the broken clock",
    "a map of the valley",
    "the wooden bridge",
    "the letters from the coast",
    "a basket of apples",
    "the signal lamp",
    "the winter accounts",
    "a box of old photographs",
    "the narrow staircase",
    "the harbour wall",
    "a song about the mountains",
    "the copper kettle",
    "the list of names",
    "the schedule of trains",
    "a field of barley",
    "the library ledger",
    "the weather station",
    "a pair of boots",
    "the village well",
    "the tide tables",
    "the iron gate",
    "a loaf of rye bread",
    "the stone chapel",
    "the garden fence",
)
PLACES = (
    "before dawn",
    "after the storm",
    "near the market",
    "beside the canal",
    "under the old oak",
    "during the harvest",
    "at the edge of town",
    "in the cold cellar",
    "on the northern road",
    "by the window",
    "across the square",
    "behind the mill",
    "on a grey afternoon",
    "in the first week of spring",
    "while the bells rang",
    "as the fog lifted",
)
CLAUSES = (
    "because nobody else had the time",
    "although the work was slow",
    "so that the others could rest",
    "while the kettle boiled",
    "and then wrote it all down",
    "without asking for help",
    "as the instructions suggested",
    "even though it was raining",
    "and the result surprised everyone",
    "until the light began to fade",
    "which took longer than expected",
    "and kept a careful note of every step",
)
OPENERS = (
    "Later that year,",
    "In the morning,",
    "Some say that",
    "According to the records,",
    "Without much fuss,",
    "For three days,",
    "Once again,",
    "By the end of the month,",
    "Quite unexpectedly,",
    "As usual,",
    "Meanwhile,",
    "In the evening,",
)
NUMBERS = ("two", "three", "seven", "twelve", "forty", "a hundred", "several", "a dozen")


def sentence(rng: random.Random) -> str:
    parts = []
    if rng.random() < 0.35:
        parts.append(rng.choice(OPENERS))
    parts += [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS)]
    if rng.random() < 0.6:
        parts.append(rng.choice(PLACES))
    if rng.random() < 0.5:
        parts.append(rng.choice(CLAUSES))
    if rng.random() < 0.2:
        parts.append(f"and counted {rng.choice(NUMBERS)} of them")
    text = " ".join(parts)
    return text[0].upper() + text[1:] + rng.choice((".", ".", ".", "!", "?"))


def corpus(paragraphs: int = 1500, seed: int = 20261127) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(paragraphs):
        out.append(" ".join(sentence(rng) for _ in range(rng.randint(3, 8))))
    return "\n\n".join(out) + "\n"


if __name__ == "__main__":
    path = Path(__file__).with_name("corpus.txt")
    path.write_text(corpus())
    print(f"wrote {path} ({path.stat().st_size} bytes)")
