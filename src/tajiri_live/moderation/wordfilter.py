"""A bad-word filter that sees through case, spacing, repeated letters and digit swaps."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

# Digits and symbols people swap for letters.
LOOKALIKES = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "8": "b",
        "@": "a",
        "$": "s",
        "!": "i",
        "|": "i",
        "+": "t",
    }
)

# Defaults, kept short and mild on purpose; deployments configure their own lists.
DEFAULT_WORDS = {
    "en": ["fuck", "shit", "bitch", "bastard", "asshole", "cunt", "dick", "whore", "slut"],
    "sw": ["malaya", "kuma", "mkundu", "msenge", "mbwa wewe", "kumamako", "fala", "mshenzi"],
}


def _fold(text: str) -> str:
    """Lower case, no accents, look-alikes mapped, every run of a letter squeezed to one."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c)).translate(LOOKALIKES)
    return re.sub(r"(.)\1+", r"\1", text)


def fold_with_positions(text: str) -> tuple[str, Sequence[int]]:
    """`text` folded character by character (lower case, no accents, look-alikes mapped, no
    squeezing), with the index in `text` each folded character came from."""
    if text.isascii():
        # Every chat line in practice: ASCII lowers and maps one character to one, with no
        # accents to strip, so the folded text lines up with the original as it is.
        return text.lower().translate(LOOKALIKES), range(len(text))
    folded_chars: list[str] = []
    positions: list[int] = []
    for index, char in enumerate(text):
        folded = unicodedata.normalize("NFKD", char.lower())
        folded = "".join(c for c in folded if not unicodedata.combining(c))
        for c in folded.translate(LOOKALIKES):
            folded_chars.append(c)
            positions.append(index)
    return "".join(folded_chars), positions


@dataclass(frozen=True)
class Match:
    word: str
    start: int  # in the original text
    end: int


class WordFilter:
    def __init__(self, words: list[str]) -> None:
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        for word in words:
            letters = [c for c in _fold(word) if c.isalnum()]
            if not letters:
                continue
            # Letters may be separated by spaces, dots, dashes... ("f u c k", "f.u.c.k").
            gap = r"[\W_]*"
            body = gap.join(re.escape(c) + "+" for c in letters)
            self._patterns.append((word, re.compile(body)))
        # One search says whether any word occurs at all (most lines have none): it finds a
        # match exactly when one of the patterns does.
        self._any = re.compile("|".join(f"(?:{p.pattern})" for _, p in self._patterns) or "(?!)")

    def find(self, text: str) -> list[Match]:
        """Matches, with positions in the original text (folding keeps a position map)."""
        folded_text, positions = fold_with_positions(text)
        if self._any.search(folded_text) is None:
            return []
        found: list[Match] = []
        for word, pattern in self._patterns:
            for hit in pattern.finditer(folded_text):
                start, end = positions[hit.start()], positions[hit.end() - 1] + 1
                # Whole words only, judged on the original text: "Scunthorpe" is fine, and
                # "m.a.l.a.y.a!" is caught although "!" folds to a letter.
                inside_word = (start > 0 and text[start - 1].isalnum()) or (
                    end < len(text) and text[end].isalnum()
                )
                if not inside_word:
                    found.append(Match(word, start, end))
        return sorted(found, key=lambda m: m.start)

    def mask(self, text: str) -> str:
        chars = list(text)
        for hit in self.find(text):
            for index in range(hit.start, hit.end):
                if not chars[index].isspace():
                    chars[index] = "*"
        return "".join(chars)
