"""Numbers as the report shows them: amounts in the reporting currency (setting `reporting_currency`).

The same rule is given to Vega (its `formatLocale`, so chart axes and tooltips read like the tables) and
used for every table cell and tile, so a number looks the same wherever it is shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Symbols for the currencies a sales team commonly reports in; any other ISO code is written before the number.
SYMBOLS = {
    "USD": ("$", ""), "EUR": ("€", ""), "GBP": ("£", ""), "JPY": ("¥", ""), "CNY": ("CN¥", ""),
    "INR": ("₹", ""), "CAD": ("CA$", ""), "AUD": ("A$", ""), "NZD": ("NZ$", ""), "CHF": ("CHF ", ""),
    "SEK": ("", " kr"), "NOK": ("", " kr"), "DKK": ("", " kr"), "BRL": ("R$", ""), "MXN": ("MX$", ""),
    "SGD": ("S$", ""), "HKD": ("HK$", ""), "KRW": ("₩", ""), "ZAR": ("R ", ""), "PLN": ("", " zł"),
}


@dataclass(frozen=True)
class Money:
    """Formats amounts in one currency: `Money("EUR").full(1234.5)` is '€1,235'."""

    currency: str

    @property
    def affixes(self) -> tuple[str, str]:
        code = self.currency.upper()
        return SYMBOLS.get(code, (f"{code} ", ""))

    def vega_locale(self) -> dict[str, Any]:
        """d3-format's locale: Vega's `$` format directive then writes this currency."""
        prefix, suffix = self.affixes
        return {"decimal": ".", "thousands": ",", "grouping": [3], "currency": [prefix, suffix]}

    def full(self, value: float | None) -> str:
        """The amount to the unit: '$1,234,568'."""
        if _missing(value):
            return "–"
        value = float(value)  # a DECIMAL column reads as Decimal
        prefix, suffix = self.affixes
        sign = "-" if value < 0 else ""
        return f"{sign}{prefix}{abs(value):,.0f}{suffix}"

    def short(self, value: float | None) -> str:
        """Three significant figures with k/M/B: '$1.23M' (tiles, chart labels)."""
        if _missing(value):
            return "–"
        value = float(value)
        prefix, suffix = self.affixes
        sign, v = ("-" if value < 0 else ""), abs(value)
        for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
            if v >= size:
                return f"{sign}{prefix}{_three(v / size)}{unit}{suffix}"
        return f"{sign}{prefix}{v:,.0f}{suffix}"


def _three(x: float) -> str:
    text = f"{x:.3g}"
    return text if "e" not in text else f"{x:.0f}"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def pct(value: float | None, digits: int = 0) -> str:
    """A share as a percentage: 0.953 -> '95%'; missing -> '–'."""
    if _missing(value):
        return "–"
    return f"{value * 100:.{digits}f}%"


def number(value: float | None, digits: int = 0) -> str:
    if _missing(value):
        return "–"
    return f"{value:,.{digits}f}"
