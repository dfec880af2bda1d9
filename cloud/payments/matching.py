"""Finding the особовий рахунок a payment is for, in the forms people actually write, then by a payer IBAN
seen before. Two candidates is ambiguity, and ambiguity stays unmatched: Balans never guesses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PURPOSE, PAYER_IBAN, NONE, AMBIGUOUS = "purpose", "payer_iban", "none", "ambiguous"

# Latin letters typed instead of the Cyrillic ones they look like («o/p 1234», «ос.paх.»).
LOOKALIKES = str.maketrans("aceiopxykmhtbAСEIOPXYKMHTB", "асеіорхукмнтвАСЕІОРХУКМНТВ")
# A letter O between digits is a zero someone typed with the wrong key («1O23»).
LETTER_ZERO = re.compile(r"(?<=\d)[oOоО]+(?=\d)")
# Words that introduce an account number; matched on the lower-cased, Cyrillicised purpose.
MARKER = re.compile(
    r"(?<!\w)(?:"
    r"о\s*[/\\.|,]\s*р\.?"  # о/р, о.р., о\р
    r"|ос\w*\.?\s*[/.]?\s*р(?:а[хз]\w*)?\.?"  # ос.рах., особовий рахунок, осбовий рах, ос.р.
    r"|рах(?!\w*\s*-?\s*фактур)\w*\.?"  # рахунок, рахунку, рах. (not рахунок-фактура: that is an invoice)
    r"|р\s*[/.]\s*р\.?"  # р/р, р.р.
    r"|л\s*[/.]\s*[рс]\.?"  # л/с, л/р (old forms)
    r"|абон\w*\.?"  # абонент, абон.
    r"|account|acc\.?|acct\.?"  # Latin, as some banking apps write it
    r")\s*(?:№|n|no\.?|#|:|-)?\s*(\d++(?:[ \u00a0-]\d++){0,3})(?!\w|[.,/]\d)",
)
# A number standing alone: not part of an IBAN, an amount, a date or a phone number.
LONE_NUMBER = re.compile(r"(?<![\w.,/:+-])(\d{3,12})(?!\w|[.,/:-]\d)")
YEARS = range(2000, 2100)
# «рахунок-фактура №123» is an invoice number, not an account: it never counts as a lone number.
INVOICE_NUMBER = re.compile(r"фактур\w*\s*(?:№|n|#)?\s*\d+")


def normalise(number: str) -> str:
    """An account number as compared: its digits without leading zeros («001234» → «1234»)."""
    return re.sub(r"\D", "", number).lstrip("0")


@dataclass(frozen=True)
class Match:
    """Where a payment goes: ``account`` (as written in the register) or None, and how that was decided."""

    account: str | None
    how: str  # purpose | payer_iban | none | ambiguous
    confidence: float = 0.0  # 0.95 marker + number; 0.85 the number needed mending; 0.8 payer IBAN; 0.7 lone number
    evidence: str = ""  # the words that decided it, or why nothing did
    candidates: tuple[str, ...] = ()

    @property
    def matched(self) -> bool:
        return self.account is not None


class AccountIndex:
    """An organisation's account numbers, normalised once; two numbers that normalise alike are ambiguous."""

    def __init__(self, numbers: Iterable[str]):
        self._by_key: dict[str, list[str]] = {}
        for number in numbers:
            key = normalise(number)
            if key:
                self._by_key.setdefault(key, []).append(number)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_key.values())

    def get(self, digits: str) -> list[str]:
        return self._by_key.get(digits.lstrip("0"), [])


def _readable(purpose: str) -> str:
    text = LETTER_ZERO.sub(lambda m: "0" * len(m.group(0)), purpose)
    return text.translate(LOOKALIKES).lower().replace("\u00a0", " ")


def _marker_candidates(text: str, accounts: AccountIndex) -> tuple[set[str], list[str], bool, list[str]]:
    """Accounts named after a marker word, whether the number needed mending, and numbers not in the register."""
    found: set[str] = set()
    evidence, unknown, mended = [], [], False
    for hit in MARKER.finditer(text):
        groups = re.split(r"[ \u00a0-]", hit.group(1))
        # «о/р 12 34 за 2026» — try «12», «1234», «12342026»: a misplaced space joins, a later number doesn't.
        readings = ["".join(groups[: i + 1]) for i in range(len(groups))]
        known = {n for reading in readings for n in accounts.get(reading)}
        if known:
            found |= known
            evidence.append(hit.group(0).strip())
            mended |= not accounts.get(readings[0])
        else:
            unknown.append(readings[0])
    return found, evidence, mended, unknown


def match_account(purpose: str, payer_iban: str, accounts: AccountIndex,
                  known_ibans: Mapping[str, str] | None = None) -> Match:
    """The account a payment is for: by the purpose, else by a payer IBAN seen before, else none.

    ``known_ibans`` maps a payer IBAN to the account number it paid for before (remembered when an
    accountant resolved a payment by hand, or when the purpose named the account).
    """
    text = _readable(purpose or "")
    found, evidence, mended, unknown = _marker_candidates(text, accounts)
    if len(found) == 1:
        retyped = text != (purpose or "").lower().replace("\u00a0", " ")
        return Match(found.pop(), PURPOSE, 0.85 if mended or retyped else 0.95, "; ".join(evidence))
    if len(found) > 1:
        return Match(None, AMBIGUOUS, 0.0, f"the purpose names {len(found)} accounts", tuple(sorted(found)))
    if unknown:
        # The payer named an account the organisation does not have (a typo?): a person decides, not the IBAN.
        return Match(None, NONE, 0.0, f"the purpose names account {unknown[0]}, which is not in the register")
    lone = {n for d in LONE_NUMBER.findall(INVOICE_NUMBER.sub(" ", text)) if int(d) not in YEARS for n in accounts.get(d)}
    if len(lone) == 1:
        return Match(lone.pop(), PURPOSE, 0.7, "a number in the purpose that is exactly an account number")
    if len(lone) > 1:
        return Match(None, AMBIGUOUS, 0.0, f"the purpose holds {len(lone)} account numbers", tuple(sorted(lone)))
    account = (known_ibans or {}).get(payer_iban) if payer_iban else None
    if account is not None:
        return Match(account, PAYER_IBAN, 0.8, f"payer IBAN {payer_iban} paid for {account} before")
    return Match(None, NONE, 0.0, "no account number in the purpose and the payer IBAN is new")
