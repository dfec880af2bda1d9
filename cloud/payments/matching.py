"""Finding the account (особовий рахунок) a payment is for, in the forms people actually write.

«о/р 1234», «ос.рах. 001234», «особовий рахунок №1234», «рахунок 1234 Іваненко», «12 34», Latin look-alike
letters — then the payer's IBAN seen before. Ambiguity is unmatched, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Latin letters that look like Cyrillic ones in «о/р», «ос. рах.»
LOOKALIKES = str.maketrans({"o": "о", "p": "р", "c": "с", "a": "а", "x": "х", "e": "е", "i": "і",
                            "O": "О", "P": "Р", "C": "С", "A": "А", "X": "Х", "E": "Е", "I": "І"})
MARKER = re.compile(
    r"(?:о\s*[/.\\]\s*р|ос(?:обов\w*)?\.?\s*(?:рах(?:унок|\.)?|р\.)|особ\w*\s+рах\w*|рахун\w*|рах\.|"
    r"р\s*/\s*р|л\s*/\s*с|account|acc\.?)\s*(?:№|n|#|:)?\s*((?:\d[\s-]?){1,12})",
    re.IGNORECASE,
)
DIGITS = re.compile(r"(?<![\d.,])(\d{3,10})(?![\d.,])")


@dataclass(frozen=True)
class Match:
    account: str | None
    how: str  # purpose | payer_iban | none | ambiguous


def normalise(number: str) -> str:
    return re.sub(r"\D", "", number).lstrip("0")


def match_payment(purpose: str, payer_iban: str, accounts: dict[str, str], known_ibans: dict[str, str]) -> Match:
    """``accounts``: normalised number (no leading zeros) → account number as written in the register."""
    text = (purpose or "").translate(LOOKALIKES)
    candidates = {normalise(m.group(1)) for m in MARKER.finditer(text)}
    candidates = {c for c in candidates if c in accounts}
    if not candidates:
        # No marker word: a lone number that is exactly an account number (never an amount or a date).
        candidates = {n for n in (normalise(d) for d in DIGITS.findall(text)) if n in accounts}
    if len(candidates) == 1:
        return Match(accounts[candidates.pop()], "purpose")
    if len(candidates) > 1:
        return Match(None, "ambiguous")
    if payer_iban and payer_iban in known_ibans:
        return Match(known_ibans[payer_iban], "payer_iban")
    return Match(None, "none")
