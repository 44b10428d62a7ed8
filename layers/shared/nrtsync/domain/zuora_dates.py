"""Dates and date-times as Zuora's merge fields render them, read without guessing.

Zuora renders a date merge field of a custom-event callout by the locale of the communication profile the
event uses (for Account, Subscription, Invoice and Payment: the profile of the customer account). Its
documented locale formats (docs.zuora.com, "Locale date formats"):

    YYYY/MM/DD   日本語 (日本)                                     accepted
    DD.MM.YYYY   Deutsch (Deutschland)                            accepted
    DD-MM-YYYY   Dansk (Danmark), português (Portugal)            accepted
    MM/DD/YYYY   English (United States)                          refused: ambiguous
    DD/MM/YYYY   English (United Kingdom), español, français,     refused: ambiguous
                 italiano

plus ISO 8601 (``2024-03-05``, ``2024-03-05T10:22:39.000-08:00``), which is what the API and an unlocalised
merge field give. ``03/05/2024`` is 5 March in one locale and 3 May in another, and nothing in the text says
which; guessing would write a wrong date (or misorder changes by months) without anyone noticing, so both
slash layouts with the year last are refused with a message that names the format expected. The dot and dash
layouts with the year last are day-first in every locale Zuora documents, so they are read as such.

A time may follow a date, separated by ``T`` or spaces: ``HH:mm``, ``HH:mm:ss``, fractions of a second, a
12-hour ``AM``/``PM`` suffix (Zuora's datetime custom fields render ``06/18/2023 02:54 PM``), and an offset
(``Z``, ``-08``, ``-0800``, ``-08:00``). A time without an offset is returned naive: the caller decides.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

EXPECTED = "ISO 8601 such as 2024-03-05T10:22:39.000-08:00 (or 2024-03-05 for a date)"


class ZuoraDateError(ValueError):
    """The text is not a date in a format we can read without guessing; the message names the format expected."""


_NUMBER = re.compile(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Locale layouts, date part only; each names the groups in the order they appear.
_LOCALE_DATES = (
    re.compile(r"(?P<y>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})"),  # YYYY/MM/DD (Japanese)
    re.compile(r"(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})"),  # DD.MM.YYYY (German)
    re.compile(r"(?P<d>\d{1,2})-(?P<m>\d{1,2})-(?P<y>\d{4})"),  # DD-MM-YYYY (Danish, Portuguese)
)
_AMBIGUOUS_DATE = re.compile(r"\d{1,2}/\d{1,2}/\d{4}")
_TIME = re.compile(
    r"(?:(?:T|\s+)(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
    r"(?:\s*(?P<ampm>[AaPp][Mm]))?"
    r"\s*(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?)?"
)


def parse_zuora_datetime(value: str, *, require_time: bool = True) -> datetime:
    """Read a rendered date-time; naive when the text has no offset.

    ``require_time=False`` also accepts a bare date (as midnight); ``updatedDate`` needs a time of day.
    """
    text = value.strip()
    if not text:
        raise ZuoraDateError(f"must not be empty; expected {EXPECTED}")
    if _NUMBER.fullmatch(text):
        raise ZuoraDateError(f"must be a date-time string, not a number; expected {EXPECTED}")
    iso = _ISO_DATE.match(text)
    if iso:
        if require_time and iso.end() == len(text):
            raise ZuoraDateError(f"must have a time of day, not only a date; expected {EXPECTED}")
        # fromisoformat takes any character between date and time; ISO 8601 and Zuora use T or a space.
        if iso.end() < len(text) and text[iso.end()] not in "Tt ":
            raise ZuoraDateError(f"is not a valid date or time; expected {EXPECTED}")
        try:
            return datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise ZuoraDateError(f"is not a valid date or time; expected {EXPECTED}") from None
    if _AMBIGUOUS_DATE.match(text):
        raise ZuoraDateError(
            "has day and month in an ambiguous order (Zuora renders MM/DD/YYYY for English (United States) and "
            "DD/MM/YYYY for English (United Kingdom), French, Spanish and Italian); "
            f"expected {EXPECTED}, or YYYY/MM/DD, DD.MM.YYYY or DD-MM-YYYY (docs/CALLOUTS.md)"
        )
    for layout in _LOCALE_DATES:
        found = layout.match(text)
        if found:
            return _locale_datetime(text, found, require_time=require_time)
    raise ZuoraDateError(f"is not a date in a format Zuora renders; expected {EXPECTED}")


def parse_zuora_date(value: str) -> date:
    """Read a rendered date; a date-time gives its date as written (no conversion to another time zone)."""
    return parse_zuora_datetime(value, require_time=False).date()


def _locale_datetime(text: str, found: re.Match[str], *, require_time: bool) -> datetime:
    rest = _TIME.fullmatch(text, found.end())
    if rest is None:
        raise ZuoraDateError(f"is not a date in a format Zuora renders; expected {EXPECTED}")
    if require_time and rest["H"] is None:
        raise ZuoraDateError(f"must have a time of day, not only a date; expected {EXPECTED}")
    hour = int(rest["H"] or 0)
    if rest["ampm"]:
        if not 1 <= hour <= 12:
            raise ZuoraDateError(f"has an hour outside 1-12 before AM/PM; expected {EXPECTED}")
        hour = hour % 12 + (12 if rest["ampm"].lower() == "pm" else 0)
    try:
        return datetime(
            int(found["y"]),
            int(found["m"]),
            int(found["d"]),
            hour,
            int(rest["M"] or 0),
            int(rest["S"] or 0),
            int((rest["f"] or "0")[:6].ljust(6, "0")),
            tzinfo=_offset(rest["tz"]),
        )
    except ValueError:
        raise ZuoraDateError(f"is not a valid date or time; expected {EXPECTED}") from None


def _offset(text: str | None) -> timezone | None:
    if text is None:
        return None
    if text == "Z":
        return UTC
    digits = text[1:].replace(":", "")
    minutes = int(digits[2:] or 0)
    if minutes >= 60:
        raise ValueError("offset minutes out of range")
    delta = timedelta(hours=int(digits[:2]), minutes=minutes)
    return timezone(-delta if text[0] == "-" else delta)
