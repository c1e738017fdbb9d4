"""A deterministic sample CRM: a sales org's four years of Salesforce data exports, with real signal.

The warehouse, its validation suites and the Prophet forecasts need data that behaves like a real
org's: hires and leavers, ramping quotas, funnels that leak by stage and segment, pushed close dates,
quarter-end spikes, growth and seasonality. This module writes such an export folder from a seed.

Everything is streamed: the org (a few thousand users at most) is built up front, then each rep's
leads, deals, history, activities, accounts and quotas are simulated and written before the next
rep starts, so memory does not grow with the scale. Each rep draws from its own random stream
(`random.Random` seeded from the seed and the rep's position), and the same arguments always give
byte-identical files.
"""

from __future__ import annotations

import csv
import heapq
import json
import math
import random
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date
from itertools import accumulate
from pathlib import Path
from typing import IO, Any

from salesos.contract import (
    ACCOUNT,
    CONTACT,
    EVENT,
    FX_RATES,
    LEAD,
    OPPORTUNITY,
    OPPORTUNITY_HISTORY,
    OPPORTUNITY_LINE_ITEM,
    OPPORTUNITY_STAGE,
    PRODUCT,
    TASK,
    USER,
    USER_ASSIGNMENTS,
    USER_ROLE,
)

DAY = 86_400
HISTORY_MONTHS = 48
# The CRM "went live" HISTORY_MONTHS before as_of with the open pipeline migrated into it: the model runs
# this many months earlier so the first months of history already have steady pipeline, renewals and
# customers. Deals closed before go-live, and leads and activities from before it, are not written.
WARMUP_MONTHS = 12
FISCAL_YEAR_START_MONTH = 2  # as in config/salesos.yml: quarters end in April, July, October, January
REPORTING_CURRENCY = "USD"
OPPORTUNITY_CUSTOM_FIELD = "Competitor__c"
ACCOUNT_CUSTOM_FIELD = "Tier__c"
FAULTS_FILE = "faults.json"
RENAMED_LEAD_COLUMN = ("LeadSource", "Lead_Source_Name")
# Every value quoted, as in Salesforce's own exports. It also keeps CSV sniffers honest: with minimal
# quoting, DuckDB's sniffer sees no quote in its sample of a large file and then fails on a quoted
# "Co., Ltd." far down.
CSV_FORMAT: dict[str, Any] = {"lineterminator": "\n", "quoting": csv.QUOTE_ALL}

# ---------------------------------------------------------------------------------------------
# Scales: S, M and L differ only in these numbers.


@dataclass(frozen=True)
class Scale:
    """How big an org to simulate; every other number of the model is shared by all scales."""

    name: str
    teams: int  # first-line sales teams of 6-10 reps at as_of
    deal_rate: float  # multiplier on leads and deals created per rep-month (quotas follow it)
    activity_rate: float  # multiplier on calls, emails and meetings per deal and per lead
    internal_events_per_week: float  # internal meetings per rep-week


SCALES: dict[str, Scale] = {
    "XS": Scale("XS", teams=2, deal_rate=0.5, activity_rate=0.5, internal_events_per_week=0.5),  # tests only
    "S": Scale("S", teams=6, deal_rate=1.0, activity_rate=1.0, internal_events_per_week=1.5),
    "M": Scale("M", teams=62, deal_rate=2.4, activity_rate=1.4, internal_events_per_week=2.0),
    "L": Scale("L", teams=620, deal_rate=2.4, activity_rate=1.4, internal_events_per_week=2.0),
}

# ---------------------------------------------------------------------------------------------
# The sales model.

# (StageName, Probability, ForecastCategoryName), in the stage order of config/salesos.yml.
STAGES: tuple[tuple[str, int, str], ...] = (
    ("Prospecting", 10, "Pipeline"),
    ("Qualification", 20, "Pipeline"),
    ("Needs Analysis", 30, "Pipeline"),
    ("Value Proposition", 40, "Pipeline"),
    ("Id. Decision Makers", 50, "Best Case"),
    ("Perception Analysis", 60, "Best Case"),
    ("Proposal/Price Quote", 75, "Best Case"),
    ("Negotiation/Review", 90, "Commit"),
    ("Closed Won", 100, "Closed"),
    ("Closed Lost", 0, "Omitted"),
)
WON, LOST = 8, 9
# Chance that a deal in stage k moves on to stage k+1 (the last one: Negotiation -> Closed Won), before
# scaling each deal's funnel to its own target win rate.
_BASE_ADVANCE = (0.72, 0.80, 0.85, 0.88, 0.90, 0.90, 0.88, 0.80)
_LOG_ADVANCE = tuple(math.log(a) for a in _BASE_ADVANCE)
_LOG_FUNNEL_FROM = tuple(sum(_LOG_ADVANCE[k:]) for k in range(len(_LOG_ADVANCE)))

NEW_BUSINESS, UPSELL, RENEWAL = "New Business", "Existing Business", "Renewal"
# Won deals on annual terms, which come back as a renewal opportunity (the rest are multi-year).
RENEWAL_SHARE = 0.4


@dataclass(frozen=True)
class _Segment:
    name: str
    min_employees: int
    max_employees: int
    median_employees: float
    leads: float  # leads per rep-month at full ramp (scale S)
    direct: float  # deals per rep-month that do not come from a lead (scale S)
    cycle_days: float  # median sales cycle of a won new-business deal
    deal_usd: float  # median new-business deal
    win: float  # target win rate of a new-business deal
    activities: float  # calls, emails and meetings over the life of a deal that goes the distance
    skip: float  # chance a stage is skipped in the history
    quota: float  # full monthly quota in USD at the start of history (scale S)
    lead_sources: tuple[tuple[str, float], ...]


SEGMENTS: dict[str, _Segment] = {
    s.name: s
    for s in (
        _Segment(
            "SMB",
            min_employees=5,
            max_employees=199,
            median_employees=40,
            leads=22.0,
            direct=8.5,
            cycle_days=24,
            deal_usd=10_000,
            win=0.32,
            activities=12,
            skip=0.22,
            quota=52_000,
            lead_sources=(
                ("Web", 40),
                ("Advertisement", 18),
                ("Outbound", 15),
                ("Referral", 10),
                ("Partner", 9),
                ("Event", 8),
            ),
        ),
        _Segment(
            "Mid-Market",
            min_employees=200,
            max_employees=1999,
            median_employees=600,
            leads=13.0,
            direct=7.0,
            cycle_days=62,
            deal_usd=40_000,
            win=0.27,
            activities=20,
            skip=0.12,
            quota=131_000,
            lead_sources=(
                ("Web", 28),
                ("Outbound", 22),
                ("Event", 15),
                ("Partner", 13),
                ("Referral", 12),
                ("Advertisement", 10),
            ),
        ),
        _Segment(
            "Enterprise",
            min_employees=2000,
            max_employees=250_000,
            median_employees=9_000,
            leads=6.5,
            direct=4.5,
            cycle_days=125,
            deal_usd=150_000,
            win=0.22,
            activities=34,
            skip=0.06,
            quota=217_000,
            lead_sources=(
                ("Outbound", 35),
                ("Event", 20),
                ("Partner", 18),
                ("Referral", 15),
                ("Web", 10),
                ("Advertisement", 2),
            ),
        ),
    )
}
SEGMENT_ORDER = ("SMB", "Mid-Market", "Enterprise")

# Lead source -> (conversion rate, median hours to first touch, win-rate factor of its deals).
LEAD_SOURCES: dict[str, tuple[float, float, float]] = {
    "Referral": (0.38, 8.0, 1.25),
    "Partner": (0.28, 18.0, 1.10),
    "Event": (0.15, 36.0, 0.95),
    "Web": (0.13, 3.0, 1.0),
    "Outbound": (0.09, 0.5, 0.80),
    "Advertisement": (0.06, 6.0, 0.90),
}
DIRECT_SOURCES = (("Outbound", 50), ("Partner", 20), ("Referral", 15), ("Event", 10), ("", 5))
LEAD_STATUS_OPEN = "Open - Not Contacted"
LEAD_STATUS_WORKING = "Working - Contacted"
LEAD_STATUS_CONVERTED = "Closed - Converted"
LEAD_STATUS_LOST = "Closed - Not Converted"


@dataclass(frozen=True)
class _Region:
    name: str
    short: str
    weight: float
    utc_offset: int  # hours; working hours are 08:00-18:00 local
    segment_weights: tuple[float, float, float]
    # (country, weight, currency, legal suffixes)
    countries: tuple[tuple[str, float, str, tuple[str, ...]], ...]


REGIONS: tuple[_Region, ...] = (
    _Region(
        "North America",
        "NA",
        0.45,
        -5,
        (0.40, 0.35, 0.25),
        (
            ("United States", 80, "USD", ("Inc.", "LLC", "Corp.")),
            ("Canada", 20, "CAD", ("Inc.", "Ltd.")),
        ),
    ),
    _Region(
        "EMEA",
        "EMEA",
        0.30,
        1,
        (0.33, 0.37, 0.30),
        (
            ("United Kingdom", 28, "GBP", ("Ltd", "plc")),
            ("Germany", 24, "EUR", ("GmbH", "AG")),
            ("France", 15, "EUR", ("SA", "SAS")),
            ("Netherlands", 10, "EUR", ("B.V.",)),
            ("Spain", 8, "EUR", ("S.L.", "S.A.")),
            ("Ireland", 8, "EUR", ("Ltd",)),
            ("United Arab Emirates", 7, "USD", ("LLC", "FZE")),
        ),
    ),
    _Region(
        "APAC",
        "APAC",
        0.15,
        8,
        (0.25, 0.35, 0.40),
        (
            ("Japan", 30, "JPY", ("K.K.", "Co., Ltd.")),
            ("Australia", 30, "AUD", ("Pty Ltd",)),
            ("Singapore", 20, "USD", ("Pte. Ltd.",)),
            ("India", 20, "USD", ("Pvt. Ltd.",)),
        ),
    ),
    _Region(
        "LATAM",
        "LATAM",
        0.10,
        -3,
        (0.45, 0.35, 0.20),
        (
            ("Brazil", 45, "USD", ("Ltda.", "S.A.")),
            ("Mexico", 30, "USD", ("S.A. de C.V.",)),
            ("Chile", 10, "USD", ("SpA",)),
            ("Colombia", 10, "USD", ("S.A.S.",)),
            ("Argentina", 5, "USD", ("S.R.L.",)),
        ),
    ),
)

# Starting rate to USD and monthly drift (log-space) of each deal currency.
FX_START: dict[str, tuple[float, float]] = {
    "USD": (1.0, 0.0),
    "EUR": (1.07, 0.0008),
    "GBP": (1.24, 0.0005),
    "JPY": (0.0071, -0.0025),
    "AUD": (0.66, -0.0004),
    "CAD": (0.74, -0.0003),
}

# Industry -> (weight, USD revenue per employee).
INDUSTRIES: dict[str, tuple[float, float]] = {
    "Technology": (18, 260_000),
    "Financial Services": (12, 420_000),
    "Healthcare": (10, 160_000),
    "Manufacturing": (12, 310_000),
    "Retail": (9, 210_000),
    "Professional Services": (9, 180_000),
    "Education": (5, 90_000),
    "Energy": (4, 900_000),
    "Media": (5, 230_000),
    "Transportation": (6, 260_000),
    "Telecommunications": (4, 520_000),
    "Government": (3, 130_000),
    "Hospitality": (3, 110_000),
}
_INDUSTRY_WORDS: dict[str, tuple[str, ...]] = {
    "Technology": ("Systems", "Software", "Labs", "Technologies", "Digital", "Networks", "Data"),
    "Financial Services": ("Capital", "Financial", "Bank", "Insurance", "Partners", "Payments"),
    "Healthcare": ("Health", "Medical", "Clinics", "Biotech", "Care", "Pharma"),
    "Manufacturing": ("Industries", "Manufacturing", "Components", "Machines", "Materials", "Metals"),
    "Retail": ("Retail", "Stores", "Outfitters", "Markets", "Goods", "Brands"),
    "Professional Services": ("Consulting", "Advisors", "Group", "Associates", "Services"),
    "Education": ("Learning", "Academy", "University", "Education", "Schools"),
    "Energy": ("Energy", "Power", "Utilities", "Renewables", "Oil & Gas"),
    "Media": ("Media", "Studios", "Publishing", "Entertainment", "Broadcasting"),
    "Transportation": ("Logistics", "Freight", "Airlines", "Shipping", "Transport"),
    "Telecommunications": ("Telecom", "Communications", "Mobile", "Wireless"),
    "Government": ("Agency", "Authority", "Council", "Department"),
    "Hospitality": ("Hotels", "Resorts", "Hospitality", "Restaurants"),
}
_COMPANY_WORDS = tuple(
    w.strip()
    for w in (
        "Acme, Northwind, Blue Harbor, Summit, Redwood, Silverline, Evergreen, Ironclad, Brightwater, "
        "Cobalt, Granite, Pioneer, Lakeside, Horizon, Vertex, Meridian, Keystone, Sterling, Beacon, "
        "Crescent, Falcon, Juniper, Oakridge, Pinnacle, Quantum, Riverbend, Sapphire, Tidewater, Union, "
        "Westfield, Apex, Bayview, Cedar, Delta, Elm Street, Fairview, Golden Gate, Highland, Indigo, "
        "Kestrel, Lumen, Maple, Nimbus, Orchid, Polaris, Radiant, Solstice, Trident, Umbra, Vantage, "
        "Willow, Zenith, Aurora, Boreal, Catalina, Driftwood, Ember, Foxglove"
    ).split(",")
)
_FIRST_NAMES = tuple(
    w.strip()
    for w in (
        "Olivia, Liam, Emma, Noah, Ava, Lucas, Sofia, Mateo, Mia, Ethan, Amelia, Hiro, Yuki, Priya, "
        "Arjun, Chloe, Leon, Hannah, Felix, Lea, Marco, Giulia, Camila, Diego, Valentina, Gabriel, "
        "Isabela, Wei, Mei, Jun, Aisha, Omar, Fatima, Lars, Ingrid, Sven, Claire, Julien, Elena, Pablo, "
        "Nora, Finn, Grace, Samuel, Zoe, Daniel, Sara, Tomas, Ana, Kofi, Amara, Ravi, Anika, Connor, "
        "Siobhan, Jack, Ruby, Oscar, Ella, Kenji"
    ).split(",")
)
_LAST_NAMES = tuple(
    w.strip()
    for w in (
        "Smith, Johnson, Garcia, Martinez, Brown, Lee, Nguyen, Patel, Kim, Müller, Schmidt, Dubois, "
        "Martin, Rossi, Bianchi, Silva, Santos, Oliveira, Tanaka, Suzuki, Sato, Chen, Wang, Singh, "
        "Sharma, Khan, Haddad, Johansson, Larsen, O'Brien, Murphy, Walsh, Fischer, Weber, Moreau, Lopez, "
        "Hernandez, Gonzalez, Rodriguez, Perez, Cohen, Novak, Kowalski, Nielsen, Andersen, Taylor, "
        "Wilson, Davies, Evans, Thomas, Clarke, Walker, Wright, Young, King, Scott, Green, Baker, Adams, "
        "Hall"
    ).split(",")
)
COMPETITORS = (
    ("", 55),
    ("Northbeam", 14),
    ("Quotient Cloud", 11),
    ("Salient CRM", 9),
    ("Atlas Revenue", 7),
    ("In-house build", 4),
)
# Calendar month -> how many leads and deals get created (budget cycles, summer and December lulls).
_CREATION_SEASON = (1.00, 1.12, 1.10, 1.02, 1.00, 0.95, 0.86, 0.80, 1.05, 1.10, 1.04, 0.74)
_RATE_GROWTH = 1.04  # deals per rep per year
_PRICE_GROWTH = 1.03  # deal size per year
_QUOTA_GROWTH = 1.10  # plan growth per rep per fiscal year (the installed base adds upsells and renewals)
_MEAN_TENURE_YEARS = 5.5
_RAMP = (0.25, 0.5, 0.75)
_DEAL_EVENTS = (
    ("Meeting", ("Discovery meeting", "Requirements review", "Stakeholder meeting")),
    ("Demo", ("Product demo", "Technical deep dive", "Solution walkthrough")),
    ("Meeting", ("Pricing discussion", "Executive alignment", "Contract review")),
)
_INTERNAL_SUBJECTS = (
    "Pipeline review",
    "Forecast call",
    "1:1 with manager",
    "Team meeting",
    "Sales training",
    "Deal strategy session",
)


# ---------------------------------------------------------------------------------------------
# Small helpers.

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_POD = "8d"


def _upper_bits(text: str) -> int:
    return sum(1 << j for j, ch in enumerate(text) if "A" <= ch <= "Z")


# Two base-62 digits with their upper-case bits, precomputed: ids are made half a million times a second.
_TWO_DIGITS = [(a + b, _upper_bits(a + b)) for a in _B62 for b in _B62]
_THREE_DIGITS: dict[int, tuple[str, int]] = {}


def _five_digits(n: int) -> tuple[str, int]:
    hi, lo = divmod(n, 3844)
    head = _THREE_DIGITS.get(hi)
    if head is None:
        a, rest = divmod(hi, 3844)
        text = _B62[a] + _TWO_DIGITS[rest][0]
        head = _THREE_DIGITS[hi] = (text, _upper_bits(text))
    text, bits = _TWO_DIGITS[lo]
    return head[0] + text, head[1] | bits << 3


def sfid(prefix: str, n: int) -> str:
    """An 18-character Salesforce-style id: 3-char key prefix, pod, base-62 counter, case-safe suffix.

    The suffix is Salesforce's: one character per 5-character chunk, encoding which are upper case.
    """
    hi, lo = divmod(n, 62**5)
    hi_text, hi_bits = _five_digits(hi)
    lo_text, lo_bits = _five_digits(lo)
    head = prefix + _POD
    return head + hi_text + lo_text + _SUFFIX[_upper_bits(head)] + _SUFFIX[hi_bits] + _SUFFIX[lo_bits]


class _Ids:
    """One counter per object prefix, so ids depend only on the order records are made in."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def new(self, prefix: str) -> str:
        n = self._next.get(prefix, 1000) + 1
        self._next[prefix] = n
        return sfid(prefix, n)


class _Fmt:
    """Cached text for the dates and times that repeat millions of times in the activity files."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}
        self._tods: dict[int, str] = {}

    def day(self, d: int) -> str:
        s = self._days.get(d)
        if s is None:
            s = self._days[d] = date.fromordinal(d).isoformat()
        return s

    def dt(self, sec: float) -> str:
        d, r = divmod(int(sec), DAY)
        t = self._tods.get(r)
        if t is None:
            h, rem = divmod(r, 3600)
            t = self._tods[r] = f"T{h:02d}:{rem // 60:02d}:{rem % 60:02d}.000Z"
        return self.day(d) + t


def _money(x: float) -> str:
    return f"{x:.2f}"


def _bool(b: bool) -> str:
    return "true" if b else "false"


def _weighted(items: tuple[tuple[Any, float], ...]) -> tuple[tuple[Any, ...], list[float]]:
    values = tuple(v for v, _ in items)
    cum = list(accumulate(w for _, w in items))
    total = cum[-1]
    return values, [c / total for c in cum]


def _pick(rng: random.Random, table: tuple[tuple[Any, ...], list[float]]) -> Any:
    values, cum = table
    return values[min(bisect_right(cum, rng.random()), len(values) - 1)]


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam < 30:
        limit, k, p = math.exp(-lam), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


def _month_index(d: date) -> int:
    return d.year * 12 + d.month - 1


def _month_start(index: int) -> date:
    return date(index // 12, index % 12 + 1, 1)


def _weekday(day: int) -> int:
    return (day - 1) % 7  # ordinal 1 (0001-01-01) is a Monday


def _round_amount(rng: random.Random, x: float) -> float:
    """Deal amounts are mostly round numbers (3 significant figures), sometimes quoted to the unit."""
    x = max(x, 1.0)
    if rng.random() < 0.85:
        step = 10 ** max(0, math.floor(math.log10(x)) - 2)
        return max(step, round(x / step) * step)
    return float(round(x))


def _quarter_end(d: date) -> date:
    """Last day of the fiscal quarter holding d (fiscal year from FISCAL_YEAR_START_MONTH)."""
    months_in = (d.month - FISCAL_YEAR_START_MONTH) % 12
    end_index = _month_index(d) + (2 - months_in % 3)
    return date.fromordinal(_month_start(end_index + 1).toordinal() - 1)


# ---------------------------------------------------------------------------------------------
# The org.


class _User:
    __slots__ = (
        "created",
        "department",
        "division",
        "email",
        "hire_day",
        "id",
        "kind",
        "leave_day",
        "leave_sec",
        "manager",
        "move",
        "name",
        "offset",
        "region",
        "role_id",
        "segment",
        "skill",
        "successor",
        "team",
    )

    def __init__(self, kind: str, name: str, hire_day: int, region: _Region | None, segment: str) -> None:
        self.kind = kind
        self.name = name
        self.hire_day = hire_day
        self.region = region
        self.segment = segment
        self.offset = region.utc_offset if region else 0
        self.division = region.name if region else ""
        self.department = segment
        self.leave_day: int | None = None
        self.leave_sec = math.inf
        self.successor: _User | None = None
        self.manager: _User | None = None
        self.role_id = ""
        self.id = ""
        self.email = ""
        self.created = 0.0
        self.skill = 1.0
        self.team = -1
        # a move between teams: (day, earlier manager, role id, division, department, then the exported
        # division and department now); the simulation keeps selling from the original region and segment
        self.move: tuple[int, _User, str, str, str, str, str] | None = None

    def owner_at(self, sec: float) -> _User:
        """Who owns this rep's book at `sec`: the rep, or after they left, their successor (and so on)."""
        u = self
        while sec >= u.leave_sec and u.successor is not None:
            u = u.successor
        return u


@dataclass
class _Org:
    users: list[_User]  # in id order
    roles: list[tuple[str, str, str]]  # (Id, Name, ParentRoleId)
    reps: list[_User]  # in simulation order


# Share of the reps still selling who moved to another team during the last months (at least one when the
# org has two teams): the User export names their new manager, user_assignments.csv when they moved.
MOVED_REP_SHARE = 0.06
MOVE_DAYS_AGO = (60, 300)


def _move_reps(org_reps: list[_User], teams: list[tuple[_User, str, _Region]], seed: int, scale: Scale,
               as_of_day: int) -> None:
    """Move a few long-serving reps to another team (same region when it has one), months before as_of.

    Their own RNG, drawn after the org is built, so every other file stays as it was; the simulation sells
    from the rep's original region (the accounts stay where they were), only the exports see the move.
    """
    if len(teams) < 2:
        return
    rng = random.Random(f"salesos-moves/{seed}/{scale.name}")
    candidates = [r for r in org_reps if r.leave_day is None and r.hire_day < as_of_day - 540]
    n = min(len(candidates), max(1, round(len(candidates) * MOVED_REP_SHARE)))
    for rep in rng.sample(candidates, n):
        others = [t for t in teams if t[0] is not rep.manager]
        same_region = [t for t in others if t[2] is rep.region]
        manager, role_id, region = rng.choice(same_region or others)
        day = as_of_day - rng.randint(*MOVE_DAYS_AGO)
        assert rep.manager is not None
        # the rep keeps their own department (the segment of the book they sell: their accounts stay theirs)
        rep.move = (day, rep.manager, rep.role_id, rep.division, rep.department, region.name, rep.department)
        rep.manager, rep.role_id = manager, role_id


def _allocate(n: int, weights: tuple[float, ...], minimum: int) -> list[int]:
    """D'Hondt: split n seats by weight, each party getting `minimum` first when n allows."""
    counts = [minimum if n >= minimum * len(weights) else 0 for _ in weights]
    while sum(counts) < n:
        best = max(range(len(weights)), key=lambda i: (weights[i] / (counts[i] + 1), -i))
        counts[best] += 1
    return counts


def _build_org(seed: int, scale: Scale, hist_start: int, as_of_day: int) -> _Org:
    rng = random.Random(f"salesos-org/{seed}/{scale.name}")
    used_names: set[str] = set()

    def person() -> str:
        for _ in range(50):
            name = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"
            if name not in used_names:
                break
        else:
            name = f"{name} {len(used_names)}"
        used_names.add(name)
        return name

    def before_history(min_days: int, max_days: int) -> int:
        return hist_start - rng.randint(min_days, max_days)

    org_start = before_history(5 * 365, 6 * 365)
    others = [
        _User("admin", "Salesforce Admin", org_start, None, "Sales Operations"),
        _User("integration", "Integration User", org_start, None, ""),
        _User("ops", person(), before_history(365, 3 * 365), None, "Sales Operations"),
        _User("ops", person(), hist_start + rng.randint(200, 900), None, "Sales Operations"),
    ]
    vp = _User("vp", person(), before_history(3 * 365, 5 * 365), None, "")
    roles: list[tuple[str, str, str]] = []
    role_ids = _Ids()
    vp_role = role_ids.new("00E")
    roles.append((vp_role, "VP Sales", ""))
    vp.role_id = vp_role

    region_counts = _allocate(scale.teams, tuple(r.weight for r in REGIONS), 1)
    directors: list[_User] = []
    managers: list[_User] = []
    teams: list[tuple[_User, str, _Region]] = []  # (manager, the team's rep role id, region)
    reps: list[_User] = []
    span = as_of_day - hist_start
    team_no = 0
    for region, n_teams in zip(REGIONS, region_counts, strict=True):
        if n_teams == 0:
            continue
        director = _User("director", person(), before_history(365, 5 * 365), region, "")
        director.manager = vp
        director.role_id = role_ids.new("00E")
        roles.append((director.role_id, f"{region.name} Sales Director", vp_role))
        directors.append(director)
        seg_counts = _allocate(n_teams, region.segment_weights, 0)
        per_segment = [0, 0, 0]
        for seg_i, n_seg in enumerate(seg_counts):
            for _ in range(n_seg):
                per_segment[seg_i] += 1
                seg = SEGMENT_ORDER[seg_i]
                label = f"{region.short} {seg} {per_segment[seg_i]}"
                manager = _User("manager", person(), before_history(90, 4 * 365), region, seg)
                manager.manager = director
                manager.role_id = role_ids.new("00E")
                roles.append((manager.role_id, f"{label} Sales Manager", director.role_id))
                rep_role = role_ids.new("00E")
                roles.append((rep_role, f"{label} Sales Rep", manager.role_id))
                managers.append(manager)
                teams.append((manager, rep_role, region))
                team: list[_User] = []
                seats = rng.randint(6, 10)
                initial = max(3, round(seats * rng.uniform(0.52, 0.66)))
                for s in range(seats):
                    if s < initial:
                        hire = before_history(30, 4 * 365)
                        leave = hist_start + int(rng.expovariate(1 / (_MEAN_TENURE_YEARS * 365)))
                    else:
                        frac = (s - initial + rng.random()) / (seats - initial)
                        hire = hist_start + int(frac * span * 0.97)
                        leave = hire + max(150, int(rng.expovariate(1 / (_MEAN_TENURE_YEARS * 365))))
                    while hire <= as_of_day:
                        rep = _User("rep", person(), hire, region, seg)
                        rep.manager = manager
                        rep.role_id = rep_role
                        rep.team = team_no
                        rep.skill = min(1.8, max(0.5, rng.lognormvariate(0.0, 0.28)))
                        team.append(rep)
                        if leave > as_of_day:
                            break
                        rep.leave_day = leave
                        rep.leave_sec = leave * DAY
                        hire = leave + rng.randint(30, 120)
                        leave = hire + max(150, int(rng.expovariate(1 / (_MEAN_TENURE_YEARS * 365))))
                for rep in team:
                    if rep.leave_day is None:
                        continue
                    mates = [
                        m
                        for m in team
                        if m is not rep
                        and m.hire_day <= rep.leave_day
                        and (m.leave_day or math.inf) > rep.leave_day
                    ]
                    rep.successor = rng.choice(mates) if mates else manager
                reps.extend(team)
                team_no += 1

    _move_reps(reps, teams, seed, scale, as_of_day)
    users = [*others, vp, *directors, *managers, *reps]
    for u in users:
        u.created = u.hire_day * DAY + (9 - u.offset) * 3600 + rng.randrange(0, 4 * 3600)
    ordered = sorted(users, key=lambda u: u.created)  # Salesforce ids grow with creation
    ids = _Ids()
    emails: set[str] = set()
    for u in ordered:
        u.id = ids.new("005")
        if u.kind == "integration":
            local = "integration"
        else:
            local = ".".join(p.lower().replace("'", "") for p in u.name.split()[:2])
        email, k = f"{local}@salesos-demo.example.com", 1
        while email in emails:
            k += 1
            email = f"{local}{k}@salesos-demo.example.com"
        emails.add(email)
        u.email = email
    return _Org(ordered, roles, reps)


# ---------------------------------------------------------------------------------------------
# The generator.


class _Account:
    __slots__ = (
        "base",
        "country",
        "created",
        "currency",
        "employees",
        "id",
        "in_use",
        "industry",
        "name",
        "parent_id",
        "revenue",
        "won_sec",
    )

    def __init__(self) -> None:
        self.won_sec = math.inf
        # a live deal or lead points at it: Salesforce deletes an account's opportunities with it, so an
        # account in use never goes to the recycle bin
        self.in_use = False


@dataclass
class _Deal:
    """The terms of one simulated deal, fixed when it is created (salesos.generate: `_Generator._deal_terms`)."""

    seed: _Seed
    rep: _User
    seg: _Segment
    t0: float
    kind: str
    source: str
    account: _Account | None
    opp_id: str
    competitor: str
    start: int
    cycle: float
    win: float
    currency: str
    amount: float


class _Seed:
    """A deal about to be simulated (created by a lead conversion, a rep, or a renewal)."""

    __slots__ = ("account", "amount", "created", "id", "inherited", "kind", "source")

    def __init__(
        self,
        kind: str,
        created: float,
        source: str = "",
        account: _Account | None = None,
        opp_id: str = "",
        amount: float = 0.0,
        inherited: bool = False,
    ) -> None:
        self.kind = kind
        self.created = created
        self.source = source
        self.account = account
        self.id = opp_id
        self.amount = amount
        self.inherited = inherited


def _header(export: Any, *extra: str) -> list[str]:
    """The fields a Salesforce data export has: not those only some sources carry (a connector's SyncedAt)."""
    return [f.api_name for f in export.fields if not f.not_in_every_source] + list(extra)


class _Writers:
    """The export files, open for the whole run and written row by row."""

    def __init__(self, out: Path, faults: bool) -> None:
        self.counts: dict[str, int] = {}
        self._files: list[IO[str]] = []
        lead_header = _header(LEAD)
        if faults:
            lead_header = [RENAMED_LEAD_COLUMN[1] if h == RENAMED_LEAD_COLUMN[0] else h for h in lead_header]
        self.opp = self._open(out, OPPORTUNITY.filename, _header(OPPORTUNITY, OPPORTUNITY_CUSTOM_FIELD))
        # Salesforce's OpportunityHistory has no IsClosed/IsWon (a connector's history-mode table does)
        history_header = _header(OPPORTUNITY_HISTORY)  # Salesforce's OpportunityHistory has no IsClosed/IsWon
        self.history = self._open(out, OPPORTUNITY_HISTORY.filename, history_header)
        self.account = self._open(out, ACCOUNT.filename, _header(ACCOUNT, ACCOUNT_CUSTOM_FIELD), bom=faults)
        self.user = self._open(out, USER.filename, _header(USER))
        self.role = self._open(out, USER_ROLE.filename, _header(USER_ROLE))
        self.lead = self._open(out, LEAD.filename, lead_header)
        self.task = self._open(out, TASK.filename, _header(TASK))
        self.event = self._open(out, EVENT.filename, _header(EVENT))
        self.quota = self._open(out, "quotas.csv", ["owner_id", "period_start", "quota_amount"])
        self.fx = self._open(out, FX_RATES.filename, _header(FX_RATES))

    def _open(self, out: Path, name: str, header: list[str], bom: bool = False) -> Any:
        fh = (out / name).open("w", newline="", encoding="utf-8-sig" if bom else "utf-8", buffering=1 << 20)
        self._files.append(fh)
        self.counts[name] = 0
        w = csv.writer(fh, **CSV_FORMAT)
        w.writerow(header)
        return w.writerow

    def close(self) -> None:
        for fh in self._files:
            fh.close()


class _Generator:
    def __init__(
        self,
        out: Path,
        scale: Scale,
        seed: int,
        as_of: date,
        faults: bool,
        stage_export: bool = True,
        rename_stages: dict[str, str] | None = None,
    ) -> None:
        self.out = out
        rename = rename_stages or {}
        self.stages = tuple((rename.get(name, name), prob, fc) for name, prob, fc in STAGES)
        self.stage_export = stage_export
        self.scale = scale
        self.seed = seed
        self.as_of = as_of
        self.as_of_day = as_of.toordinal()
        self.as_of_end = (self.as_of_day + 1) * DAY - 1
        self.as_of_month = _month_index(as_of)
        self.first_month = self.as_of_month - (HISTORY_MONTHS - 1)
        self.hist_start = _month_start(self.first_month).toordinal()
        self.hist_start_sec = self.hist_start * DAY
        self.sim_start = _month_start(self.first_month - WARMUP_MONTHS).toordinal()
        self.faults = faults
        self.fmt = _Fmt()
        self.ids = _Ids()
        self.w = _Writers(out, faults)
        self.n = self.w.counts
        self.fx_first_month = self.first_month - WARMUP_MONTHS  # migrated deals need their rates too
        self.fx = self._fx_table()
        self._industries = _weighted(tuple((k, v[0]) for k, v in INDUSTRIES.items()))
        self._competitors = _weighted(COMPETITORS)
        self._direct_sources = _weighted(DIRECT_SOURCES)
        self._lead_sources = {s: _weighted(seg.lead_sources) for s, seg in SEGMENTS.items()}
        self._countries = {r.name: _weighted(tuple((c, c[1]) for c in r.countries)) for r in REGIONS}

    # -- reference data -------------------------------------------------------------------------

    def _fx_table(self) -> dict[str, list[float]]:
        rng = random.Random(f"salesos-fx/{self.seed}")
        table: dict[str, list[float]] = {}
        for cur, (start, drift) in FX_START.items():
            rate, rates = start, []
            for _ in range(self.as_of_month - self.fx_first_month + 1):
                rates.append(rate)
                if cur != REPORTING_CURRENCY:
                    rate *= math.exp(drift + rng.gauss(0.0, 0.012))
            table[cur] = rates
        return table

    def _rate(self, currency: str, sec: float) -> float:
        m = _month_index(date.fromordinal(int(sec // DAY))) - self.fx_first_month
        rates = self.fx[currency]
        return rates[min(max(m, 0), len(rates) - 1)]

    def _write_stages(self) -> None:
        """The stage picklist (OpportunityStage.csv): the sales process's flags and order, under this sample's names."""
        path = self.out / OPPORTUNITY_STAGE.filename
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, **CSV_FORMAT)
            w.writerow(_header(OPPORTUNITY_STAGE))
            for k, (name, prob, fc) in enumerate(self.stages):
                closed, won = k >= WON, k == WON
                w.writerow([sfid("01J", 1001 + k), name, name, _bool(closed), _bool(won), prob, k + 1, "true", fc])
        self.n[OPPORTUNITY_STAGE.filename] = len(self.stages)

    def _write_reference(self, org: _Org) -> None:
        if self.stage_export:
            self._write_stages()
        elif (self.out / OPPORTUNITY_STAGE.filename).exists():
            (self.out / OPPORTUNITY_STAGE.filename).unlink()  # a folder reused for a sample without it
        for cur in sorted(self.fx):
            for m, rate in enumerate(self.fx[cur]):
                self.w.fx([cur, f"{rate:.6f}", _month_start(self.fx_first_month + m).isoformat()])
                self.n[FX_RATES.filename] += 1
        for role in org.roles:
            self.w.role(list(role))
            self.n[USER_ROLE.filename] += 1
        for u in org.users:
            active = u.leave_day is None
            self.w.user(
                [
                    u.id,
                    u.name,
                    u.email,
                    u.manager.id if u.manager else "",
                    u.role_id,
                    u.move[5] if u.move else u.division,
                    u.move[6] if u.move else u.department,
                    _bool(active),
                    self.fmt.dt(u.created),
                ]
            )
            self.n[USER.filename] += 1
        self._write_assignments(org)

    def _write_assignments(self, org: _Org) -> None:
        """user_assignments.csv: every rep's assignments since hire, two rows for a rep who moved."""
        path = self.out / USER_ASSIGNMENTS.filename
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, **CSV_FORMAT)
            w.writerow(_header(USER_ASSIGNMENTS))
            n = 0
            for u in org.users:
                if u.kind != "rep" or u.manager is None:
                    continue
                hired = date.fromordinal(u.hire_day).isoformat()
                if u.move:
                    day, before, role_before, division_before, department_before, division, department = u.move
                    moved = date.fromordinal(day).isoformat()
                    w.writerow([u.id, hired, moved, before.id, role_before, division_before, department_before])
                    w.writerow([u.id, moved, "", u.manager.id, u.role_id, division, department])
                    n += 2
                else:
                    w.writerow([u.id, hired, "", u.manager.id, u.role_id, u.division, u.department])
                    n += 1
        self.n[USER_ASSIGNMENTS.filename] = n

    # -- time -----------------------------------------------------------------------------------

    def _years(self, sec: float) -> float:
        return (sec / DAY - self.hist_start) / 365.25

    def _biz(self, rng: random.Random, day: int, offset: int) -> int:
        """A moment in working hours (08:00-18:00 local) on `day`, in UTC seconds."""
        return day * DAY + (8 - offset) * 3600 + rng.randrange(10 * 3600)

    def _to_weekday(self, rng: random.Random, day: int, floor_day: int) -> int:
        wd = _weekday(day)
        if wd >= 5 and rng.random() < 0.93:
            moved = day - (wd - 4)
            return moved if moved >= floor_day else day
        return day

    def _rep_months(self, rep: _User) -> list[tuple[int, int, int, float]]:
        """(first day, end day, calendar month, productivity) for each month the rep sells in."""
        start = max(rep.hire_day, self.sim_start)
        end = min(rep.leave_day or math.inf, self.as_of_day + 1)
        hire_month = _month_index(date.fromordinal(rep.hire_day))
        out = []
        m = _month_index(date.fromordinal(start))
        while True:
            first = max(_month_start(m).toordinal(), start)
            last = min(_month_start(m + 1).toordinal(), end)
            if first >= last:
                break
            tenure = m - hire_month
            prod = _RAMP[tenure] if tenure < len(_RAMP) else 1.0
            if rep.leave_day is not None and rep.leave_day - first < 60:
                prod *= 0.7  # checked out before leaving
            season = _CREATION_SEASON[m % 12]
            growth = _RATE_GROWTH ** self._years(first * DAY)
            out.append((first, int(last), m, prod * season * growth))
            m += 1
        return out

    # -- one rep ----------------------------------------------------------------------------------

    def run_rep(self, index: int, rep: _User) -> None:
        rng = random.Random(f"salesos-rep/{self.seed}/{self.scale.name}/{index}")
        seg = SEGMENTS[rep.segment]
        book: list[_Account] = []
        heap: list[tuple[float, int, _Seed]] = []
        seq = 0
        months = self._rep_months(rep)
        # Leads, and the deals converted from them.
        for first, last, _m, factor in months:
            n = _poisson(rng, self.scale.deal_rate * seg.leads * factor)
            for created in sorted(first * DAY + rng.randrange((last - first) * DAY) for _ in range(n)):
                s = self._lead(rng, rep, seg, book, created)
                if s is not None:
                    seq += 1
                    heapq.heappush(heap, (s.created, seq, s))
        # Deals reps source themselves (outbound, partners, upsells).
        for first, last, _m, factor in months:
            n = _poisson(rng, self.scale.deal_rate * seg.direct * factor)
            for _ in range(n):
                day = self._to_weekday(rng, first + rng.randrange(last - first), first)
                created = min(self._biz(rng, day, rep.offset), self.as_of_end)
                seq += 1
                heapq.heappush(heap, (created, seq, _Seed("direct", created)))
        customers: list[_Account] = []
        while heap:
            _, _, s = heapq.heappop(heap)
            renewal = self._opp(rng, rep, seg, s, book, customers)
            if renewal is not None:
                seq += 1
                heapq.heappush(heap, (renewal.created, seq, renewal))
        self._internal_events(rng, rep, months)
        self._accounts(rng, rep, seg, book)
        self._quotas(rep, seg)

    def _new_account(
        self, rng: random.Random, rep: _User, seg: _Segment, book: list[_Account], created: float
    ) -> _Account:
        a = _Account()
        a.id = self.ids.new("001")
        a.created = created
        a.industry = _pick(rng, self._industries)
        country, _w, currency, suffixes = _pick(rng, self._countries[rep.division])
        a.country, a.currency = country, currency
        a.employees = int(
            min(
                seg.max_employees,
                max(seg.min_employees, rng.lognormvariate(math.log(seg.median_employees), 0.8)),
            )
        )
        a.revenue = _round_amount(
            rng, a.employees * INDUSTRIES[a.industry][1] * rng.lognormvariate(0.0, 0.45)
        )
        a.parent_id = ""
        parents = [b for b in book[-40:] if not b.parent_id and b.employees >= a.employees]
        if parents and rng.random() < (0.12 if seg.name != "SMB" else 0.04):
            parent = rng.choice(parents)
            a.parent_id = parent.id
            a.base = f"{parent.base} {country}"
            a.industry = parent.industry
        else:
            a.base = f"{rng.choice(_COMPANY_WORDS)} {rng.choice(_INDUSTRY_WORDS[a.industry])}"
        a.name = f"{a.base} {rng.choice(suffixes)}"
        book.append(a)
        return a

    def _lead(
        self, rng: random.Random, rep: _User, seg: _Segment, book: list[_Account], created: int
    ) -> _Seed | None:
        fmt, w = self.fmt, self.w
        source = _pick(rng, self._lead_sources[seg.name])
        conv_rate, delay_hours, _ = LEAD_SOURCES[source]
        lead_id = self.ids.new("00Q")
        status, converted_day, opp_id, account_id = LEAD_STATUS_OPEN, "", "", ""
        seed = None
        visible = created >= self.hist_start_sec  # leads from before the CRM went live were not migrated
        if rng.random() >= 0.04:  # a few leads are never touched at all
            touch = created + rng.lognormvariate(math.log(delay_hours * 3600), 1.1)
            day, local_h = divmod(touch + rep.offset * 3600, DAY)
            day = int(day)
            if local_h < 8 * 3600:
                touch = day * DAY + (8 - rep.offset) * 3600 + rng.randrange(5400)
            elif local_h >= 18 * 3600:
                day += 1
                touch = day * DAY + (8 - rep.offset) * 3600 + rng.randrange(5400)
            if _weekday(day) >= 5:
                touch += (7 - _weekday(day)) * DAY
            if touch <= self.as_of_end and touch < rep.leave_sec:
                decide = touch + rng.lognormvariate(math.log(6 * DAY), 0.8)
                decide_day = self._to_weekday(rng, int(decide // DAY), int(touch // DAY))
                decide = max(self._biz(rng, decide_day, rep.offset), touch + 600)
                stop = min(decide, self.as_of_end, rep.leave_sec - 1)
                n = _poisson(rng, self.scale.activity_rate * 2.2)
                if visible:
                    self._lead_activity(rng, rep, lead_id, touch, first=True)
                    for t in sorted(touch + rng.random() * (stop - touch) for _ in range(n)):
                        day = self._to_weekday(rng, int(t // DAY), int(touch // DAY))
                        t = min(max(self._biz(rng, day, rep.offset), touch + 600), stop)
                        self._lead_activity(rng, rep, lead_id, t, first=False)
                if decide > self.as_of_end or decide >= rep.leave_sec:
                    status = LEAD_STATUS_WORKING
                elif rng.random() < conv_rate * rep.skill**0.5:
                    status = LEAD_STATUS_CONVERTED
                    converted_day = fmt.day(int(decide // DAY))
                    prospects = [b for b in book[-30:] if b.created <= decide]
                    if prospects and rng.random() < 0.2:
                        account = rng.choice(prospects)
                    else:
                        account = self._new_account(rng, rep, seg, book, decide)
                    opp_id = self.ids.new("006")
                    account_id = account.id
                    seed = _Seed(NEW_BUSINESS, decide, source, account, opp_id)
                else:
                    status = LEAD_STATUS_LOST
        deleted = rng.random() < 0.004
        if visible and account_id and not deleted:
            account.in_use = True
        if visible:
            w.lead(
                [
                    lead_id,
                    rep.id,
                    fmt.dt(created),
                    status,
                    source,
                    _bool(bool(opp_id)),
                    converted_day,
                    opp_id,
                    account_id,
                    _bool(deleted),
                ]
            )
            self.n[LEAD.filename] += 1
        return seed

    def _lead_activity(self, rng: random.Random, rep: _User, lead_id: str, t: float, first: bool) -> None:
        day = int(t // DAY)
        if rng.random() < (0.05 if first else 0.12):
            start = day * DAY + (8 - rep.offset) * 3600 + 900 * rng.randrange(36)
            if start < t:
                start = t + 900 - t % 900
            dur = 30
            if start + dur * 60 <= self.as_of_end:
                self.w.event(
                    [
                        self.ids.new("00U"),
                        rep.id,
                        lead_id,
                        "",
                        self.fmt.dt(start),
                        self.fmt.dt(start + dur * 60),
                        dur,
                        "Meeting",
                        "Intro call",
                        _bool(rng.random() < 0.002),
                    ]
                )
                self.n[EVENT.filename] += 1
                return
        subtype = "Call" if rng.random() < 0.6 else "Email"
        status = "Completed"
        if day > self.as_of_day - 10 and rng.random() < 0.3:
            status = "Not Started"
        self.w.task(
            [
                self.ids.new("00T"),
                rep.id,
                lead_id,
                "",
                self.fmt.day(day),
                subtype,
                status,
                self.fmt.dt(t),
                _bool(rng.random() < 0.002),
            ]
        )
        self.n[TASK.filename] += 1

    # -- one deal -------------------------------------------------------------------------------

    def _opp(
        self,
        rng: random.Random,
        rep: _User,
        seg: _Segment,
        s: _Seed,
        book: list[_Account],
        customers: list[_Account],
    ) -> _Seed | None:
        """Simulate one deal from creation to close (or the as-of date); write it; return its renewal, if any.

        The steps draw from `rng` in a fixed order, so a seed always gives the same sample byte for byte.
        """
        deal = self._deal_terms(rng, rep, seg, s, book, customers)
        path, won, d, times, tc = self._funnel(rng, deal)
        rows, tc = self._core_events(rng, deal, path, times, tc, won)
        rows = self._reshape_events(rng, deal, rows)
        rows, life_end = self._reopened(rng, deal, rows, tc, won, d)
        rows, orphan_from = self._orphaned(rng, deal, rows)
        hist = self._history_rows(rng, deal, rows, d, orphan_from)
        last_t, last_amount, closed, is_won, visible = self._write_opp(rng, deal, hist, life_end, orphan_from)
        self._opp_activities(rng, deal, rows, life_end, last_t, closed, orphan_from, visible)
        if is_won and deal.account is not None:
            return self._won_account(rng, deal, customers, last_t, last_amount)
        return None

    def _deal_terms(
        self,
        rng: random.Random,
        rep: _User,
        seg: _Segment,
        s: _Seed,
        book: list[_Account],
        customers: list[_Account],
    ) -> _Deal:
        """What the deal is: its kind, source, account, first stage, cycle, win chance, currency and amount."""
        t0 = s.created
        kind, source, account = s.kind, s.source, s.account
        years = self._years(t0)
        size = seg.deal_usd * _PRICE_GROWTH**years
        start = 0
        cycle = seg.cycle_days
        win = seg.win
        if kind == "direct":
            kind = NEW_BUSINESS
            if customers and rng.random() < 0.3:
                pick = rng.choice(customers)
                if pick.won_sec <= t0:
                    kind, account, source = UPSELL, pick, ""
            if kind == NEW_BUSINESS:
                source = _pick(rng, self._direct_sources)
                r = rng.random()
                if r < 0.005:
                    account = None
                elif r < 0.3 and book:
                    pick = rng.choice(book[-50:])
                    account = pick if pick.created <= t0 else self._new_account(rng, rep, seg, book, t0)
                else:
                    account = self._new_account(rng, rep, seg, book, t0 - rng.randrange(30 * DAY))
        opp_id = s.id or self.ids.new("006")
        competitor = _pick(rng, self._competitors) if kind != RENEWAL or rng.random() < 0.3 else ""
        if kind == NEW_BUSINESS:
            if s.id:  # converted from a lead: qualified already, a bit quicker
                start = 1 if rng.random() < 0.7 else 0
                cycle *= 0.9
            fit = (account.employees / seg.median_employees) ** 0.25 if account else 1.0
            usd = size * fit * rng.lognormvariate(0.0, 0.6)
            win *= rep.skill * LEAD_SOURCES.get(source, (0, 0, 1.0))[2]
        elif kind == UPSELL:
            start, cycle = 1, cycle * 0.6
            usd = 0.35 * size * rng.lognormvariate(0.0, 0.6)
            win = 0.5 * rep.skill**0.5
        else:  # renewal
            start, cycle, win = 1, 40, 0.85
            usd = 0.0
        if competitor:
            win *= 0.85
        win = min(0.95, max(0.03, win))
        currency = account.currency if account else ("EUR" if rep.division == "EMEA" else REPORTING_CURRENCY)
        if kind == RENEWAL:
            amount = s.amount
        else:
            amount = _round_amount(rng, usd / self._rate(currency, t0))
        return _Deal(s, rep, seg, t0, kind, source, account, opp_id, competitor, start, cycle, win, currency, amount)

    def _funnel(self, rng: random.Random, deal: _Deal) -> tuple[list[int], bool, float, list[float], float]:
        """Walk the stages until lost or won: the stages reached, won or not, the cycle, stage times and close."""
        t0, start = deal.t0, deal.start
        e = math.log(deal.win) / _LOG_FUNNEL_FROM[start]
        path = [start]
        k = start
        while k < WON:
            if rng.random() < math.exp(_LOG_ADVANCE[k] * e):
                k += 1
                if k < WON:
                    path.append(k)
            else:
                break
        won = k == WON
        d = max(2.0, rng.lognormvariate(math.log(deal.cycle), 0.55)) * DAY
        if won:
            total = d
        else:
            total = d * len(path) / (WON - start + 1) * rng.uniform(0.6, 1.5)
            if rng.random() < 0.15:
                total *= rng.uniform(1.5, 3.0)  # left to rot before someone closes it out
        total = max(total, DAY)
        weights = [rng.expovariate(1.0) + 0.35 for _ in path]
        wsum = sum(weights)
        times = []
        acc = 0.0
        for wgt in weights[:-1]:
            acc += wgt
            times.append(t0 + total * acc / wsum)
        tc = t0 + total
        # Quarter-end push: reps pull (or slip) winnable deals to the last days of the fiscal quarter.
        if won:
            close_date = date.fromordinal(int(tc // DAY))
            qe = _quarter_end(close_date)
            p_pull = 0.3 if qe.month == (FISCAL_YEAR_START_MONTH - 2) % 12 + 1 else 0.2
            if rng.random() < p_pull:
                new_day = self._to_weekday(rng, qe.toordinal() - int(rng.random() ** 1.5 * 10), 0)
                new_tc = new_day * DAY + 12 * 3600
                if new_tc - t0 > DAY:
                    factor = (new_tc - t0) / (tc - t0)
                    times = [t0 + (t - t0) * factor for t in times]
                    tc = new_tc
        return path, won, d, times, tc

    def _core_events(
        self, rng: random.Random, deal: _Deal, path: list[int], times: list[float], tc: float, won: bool
    ) -> tuple[list[list[Any]], float]:
        """The stage changes on working days in the rep's hours: [time, stage, amount] rows, and the close time."""
        rep, t0, amount = deal.rep, deal.t0, deal.amount
        created_day = int(t0 // DAY)
        rows: list[list[Any]] = [[t0, deal.start, amount]]  # core events: [time, stage, amount]
        prev = t0
        for t, stage in zip(times, path[1:], strict=True):
            day = self._to_weekday(rng, int(t // DAY), created_day)
            t = max(self._biz(rng, day, rep.offset), prev + 300)
            rows.append([t, stage, amount])
            prev = t
        close_day = self._to_weekday(rng, int(tc // DAY), int(prev // DAY))
        tc = max(self._biz(rng, close_day, rep.offset), prev + 300)
        rows.append([tc, WON if won else LOST, amount])
        return rows, tc

    def _reshape_events(self, rng: random.Random, deal: _Deal, rows: list[list[Any]]) -> list[list[Any]]:
        """What real histories show: an amount renegotiated, skipped stages, a slip back one stage."""
        # Amount renegotiated at some stage.
        if len(rows) > 2 and rng.random() < 0.3:
            j = rng.randrange(1, len(rows) - 1)
            new_amount = _round_amount(rng, deal.amount * rng.uniform(0.75, 1.35))
            for r in rows[j:]:
                r[2] = new_amount
        # Skipped stages: the history jumps.
        if len(rows) > 3:
            rows = [rows[0]] + [r for r in rows[1:-2] if rng.random() >= deal.seg.skip] + rows[-2:]
        # A slip back one stage, then forward again.
        if len(rows) > 3 and rng.random() < 0.06:
            j = rng.randrange(1, len(rows) - 1)
            ta, tb, st = rows[j][0], rows[j + 1][0], rows[j][1]
            if st >= 2 and tb - ta > 2 * 600:
                rows[j + 1 : j + 1] = [
                    [ta + (tb - ta) / 3, st - 1, rows[j][2]],
                    [ta + 2 * (tb - ta) / 3, st, rows[j][2]],
                ]
        return rows

    def _reopened(
        self, rng: random.Random, deal: _Deal, rows: list[list[Any]], tc: float, won: bool, d: float
    ) -> tuple[list[list[Any]], float]:
        """Reopened: lost, then back in play a few weeks later (a 4th item marks the reopening row).

        Returns the rows and the end of the deal's natural life (its last event, before any reassignment).
        """
        life_end = tc
        if not won and deal.kind != RENEWAL and rng.random() < 0.015:
            tr = tc + rng.uniform(14, 90) * DAY
            r_stage = rng.choice((1, 2, 3))
            e2 = math.log(0.4) / _LOG_FUNNEL_FROM[r_stage]
            rows.append([tr, r_stage, rows[-1][2], "reopen"])
            k = r_stage
            t = tr
            step = d * rng.uniform(0.4, 0.8) / (WON - r_stage + 1)
            while True:
                t += step * rng.uniform(0.5, 1.5)
                if k < WON and rng.random() < math.exp(_LOG_ADVANCE[k] * e2):
                    k += 1
                    rows.append([t, k if k < WON else WON, rows[-1][2]])
                    if k == WON:
                        break
                else:
                    rows.append([t, LOST, rows[-1][2]])
                    break
            life_end = t
        return rows, life_end

    def _orphaned(self, rng: random.Random, deal: _Deal, rows: list[list[Any]]) -> tuple[list[list[Any]], float]:
        """The rep left while the deal was open: reassigned to the successor, or closed out later.

        Returns the rows and when the deal was orphaned (infinity when it was not).
        """
        rep = deal.rep
        orphan_from = math.inf
        if not deal.seed.inherited and rows[-1][0] >= rep.leave_sec:
            if rng.random() >= 0.6:
                orphan_from = rep.leave_sec
                rows = [r for r in rows if r[0] < orphan_from]
                if rows[-1][1] < WON:  # still open when the rep left: closed out by the manager later
                    cleanup = orphan_from + rng.uniform(7, 45) * DAY
                    rows.append([cleanup, LOST, rows[-1][2]])
        return rows, orphan_from

    def _history_rows(
        self, rng: random.Random, deal: _Deal, rows: list[list[Any]], d: float, orphan_from: float
    ) -> list[tuple[float, int, float, int]]:
        """History rows up to the as-of date, with the close date pushed every time it passes while open."""
        rep, t0 = deal.rep, deal.t0
        created_day = int(t0 // DAY)
        plan = int((t0 + d * rng.uniform(0.5, 1.0)) // DAY)
        if rng.random() < 0.5:
            pd = date.fromordinal(plan)
            plan = _month_start(_month_index(pd) + 1).toordinal() - 1
        plan = max(plan, created_day)
        working_until = min(orphan_from, self.as_of_end)
        hist: list[tuple[float, int, float, int]] = []  # (time, stage, amount, close day)
        is_open = True
        cur_stage, cur_amount = deal.start, deal.amount
        for row in rows:
            t, stage, amt = row[0], row[1], row[2]
            if is_open and hist:
                while True:
                    push_day = plan + rng.randint(1, 6)
                    push = max(self._biz(rng, push_day, rep.offset), hist[-1][0] + 600)
                    if push >= t or push >= working_until:
                        break
                    plan = max(plan + rng.randint(14, 45), push_day + 7)
                    if rng.random() < 0.4:
                        pd = date.fromordinal(plan)
                        plan = _month_start(_month_index(pd) + 1).toordinal() - 1
                    hist.append((push, cur_stage, cur_amount, plan))
            if t > self.as_of_end:
                break
            if stage >= WON:
                plan = int(t // DAY)
                is_open = False
            elif len(row) > 3:  # reopened
                plan = int(t // DAY) + rng.randint(30, 75)
                is_open = True
            hist.append((t, stage, amt, plan))
            cur_stage, cur_amount = stage, amt
        return hist

    def _write_opp(
        self,
        rng: random.Random,
        deal: _Deal,
        hist: list[tuple[float, int, float, int]],
        life_end: float,
        orphan_from: float,
    ) -> tuple[float, float, bool, bool, bool]:
        """Write the Opportunity row (as the deal stands at the as-of date) and its history rows.

        A deal closed before the CRM went live was never migrated: nothing is written. Returns the last
        change's time and amount, closed, won, and whether the deal was written.
        """
        rep, account, kind, t0 = deal.rep, deal.account, deal.kind, deal.t0
        last_t, last_stage, last_amount, last_close = hist[-1]
        closed = last_stage >= WON
        is_won = last_stage == WON
        if orphan_from < math.inf:
            owner = rep
        else:
            owner = rep.owner_at(last_t if closed else self.as_of_end)
        deleted = rng.random() < 0.003
        visible = not closed or last_t >= self.hist_start_sec  # closed before go-live: never migrated
        if account is None:
            name = f"{rng.choice(_COMPANY_WORDS)} - {kind}"
        elif kind == RENEWAL:
            name = f"{account.name} - Renewal {date.fromordinal(int(life_end // DAY)).year}"
        elif kind == UPSELL:
            name = f"{account.name} - Upsell"
        else:
            name = f"{account.name} - New Business"
        fmt = self.fmt
        stage_name, prob, fc = self.stages[last_stage]
        if visible and account is not None and not deleted:
            account.in_use = True
        if visible:
            self.w.opp(
                [
                    deal.opp_id,
                    account.id if account else "",
                    owner.id,
                    name,
                    stage_name,
                    _money(last_amount),
                    prob,
                    fc,
                    fmt.day(last_close),
                    fmt.dt(t0),
                    _bool(closed),
                    _bool(is_won),
                    _bool(deleted),
                    kind,
                    deal.source,
                    deal.currency,
                    fmt.dt(last_t),
                    deal.competitor,
                ]
            )
            self.n[OPPORTUNITY.filename] += 1
            deleted_s = _bool(deleted)
            for t, stage, amt, close in hist:
                stage_name, prob, fc = self.stages[stage]
                self.w.history(
                    [
                        self.ids.new("008"),
                        deal.opp_id,
                        stage_name,
                        _money(amt),
                        prob,
                        fmt.day(close),
                        fc,
                        fmt.dt(t),
                        deleted_s,
                    ]
                )
            self.n[OPPORTUNITY_HISTORY.filename] += len(hist)
        return last_t, last_amount, closed, is_won, visible

    def _opp_activities(
        self,
        rng: random.Random,
        deal: _Deal,
        rows: list[list[Any]],
        life_end: float,
        last_t: float,
        closed: bool,
        orphan_from: float,
        visible: bool,
    ) -> None:
        """Calls, emails and meetings over the deal's life, denser towards the close."""
        seg, t0 = deal.seg, deal.t0
        depth = (max(r[1] for r in rows if r[1] != LOST) + 1) / 9
        life = max(life_end - t0, DAY)
        lam = (
            self.scale.activity_rate
            * seg.activities
            * (0.25 + 0.75 * depth)
            * min(2.0, life / (seg.cycle_days * DAY)) ** 0.4
        )
        window_end = min(last_t if closed else self.as_of_end, orphan_from)
        n = _poisson(rng, lam)
        if n and visible:
            self._deal_activities(rng, deal.rep, deal.opp_id, deal.account, t0, life, window_end, n)

    def _won_account(
        self, rng: random.Random, deal: _Deal, customers: list[_Account], last_t: float, last_amount: float
    ) -> _Seed | None:
        """Book keeping for upsells and renewals: the account is a customer; its renewal, when one comes."""
        account, rep = deal.account, deal.rep
        assert account is not None
        if last_t < account.won_sec:
            if account.won_sec == math.inf:
                customers.append(account)
            account.won_sec = last_t
        if rng.random() < RENEWAL_SHARE:
            renew_at = last_t + (365 - rng.randint(40, 90)) * DAY
            if renew_at <= self.as_of_end:
                day = self._to_weekday(rng, int(renew_at // DAY), 0)
                renew_at = min(self._biz(rng, day, rep.offset), self.as_of_end)
                return _Seed(
                    RENEWAL,
                    renew_at,
                    "",
                    account,
                    amount=_round_amount(rng, last_amount * rng.uniform(0.95, 1.12)),
                    inherited=renew_at >= rep.leave_sec,
                )
        return None

    def _deal_activities(
        self,
        rng: random.Random,
        rep: _User,
        opp_id: str,
        account: _Account | None,
        t0: float,
        life: float,
        window_end: float,
        n: int,
    ) -> None:
        fmt, w, ids = self.fmt, self.w, self.ids
        off = rep.offset
        created_day = int(t0 // DAY)
        first_day = max(created_day, self.hist_start)
        near_end = self.as_of_day - 10
        n_task = n_event = 0
        for u in sorted(rng.random() ** 0.6 for _ in range(n)):
            t = t0 + u * life
            if t > window_end:
                break
            if t < self.hist_start_sec:
                continue
            day = int(t // DAY)
            wd = (day - 1) % 7
            if wd >= 5 and rng.random() < 0.93 and day - (wd - 4) >= first_day:
                day -= wd - 4
            owner_id = (rep if t < rep.leave_sec else rep.owner_at(t)).id
            if rng.random() < 0.24:
                start = day * DAY + (8 - off) * 3600 + 900 * rng.randrange(36)
                if start < t0 or start > window_end:
                    continue
                r = rng.random()
                etype, subjects = _DEAL_EVENTS[0 if u < 0.3 else (1 if u < 0.7 else 2)]
                if r < 0.25:
                    etype, subjects = _DEAL_EVENTS[1]
                dur = (30, 45, 60)[min(2, int(rng.random() * 2.9))]
                w.event(
                    [
                        ids.new("00U"),
                        owner_id,
                        "",
                        opp_id,
                        fmt.dt(start),
                        fmt.dt(start + dur * 60),
                        dur,
                        etype,
                        rng.choice(subjects),
                        "true" if rng.random() < 0.002 else "false",
                    ]
                )
                n_event += 1
            else:
                created = day * DAY + (8 - off) * 3600 + rng.randrange(36_000)
                if created < t0:
                    created = t0 + rng.randrange(60, 900)
                created = min(created, self.as_of_end)
                status = "Completed"
                if (day > near_end and rng.random() < 0.35) or rng.random() < 0.02:
                    status = "Not Started"
                what = account.id if account is not None and rng.random() < 0.1 else opp_id
                w.task(
                    [
                        ids.new("00T"),
                        owner_id,
                        "",
                        what,
                        fmt.day(day),
                        "Call" if rng.random() < 0.55 else "Email",
                        status,
                        fmt.dt(created),
                        "true" if rng.random() < 0.002 else "false",
                    ]
                )
                n_task += 1
        self.n[TASK.filename] += n_task
        self.n[EVENT.filename] += n_event

    # -- the rest of a rep's chunk ---------------------------------------------------------------

    def _internal_events(
        self, rng: random.Random, rep: _User, months: list[tuple[int, int, int, float]]
    ) -> None:
        fmt, w, ids = self.fmt, self.w, self.ids
        rate = self.scale.internal_events_per_week / 5
        n_event = 0
        for first, last, _m, _f in months:
            for day in range(max(first, self.hist_start), last):
                if _weekday(day) >= 5:
                    continue
                for _ in range(_poisson(rng, rate)):
                    start = day * DAY + (8 - rep.offset) * 3600 + 900 * rng.randrange(36)
                    dur = (30, 45, 60)[min(2, int(rng.random() * 2.9))]
                    w.event(
                        [
                            ids.new("00U"),
                            rep.id,
                            "",
                            "",
                            fmt.dt(start),
                            fmt.dt(start + dur * 60),
                            dur,
                            "Internal",
                            rng.choice(_INTERNAL_SUBJECTS),
                            "false",
                        ]
                    )
                    n_event += 1
        self.n[EVENT.filename] += n_event

    def _accounts(self, rng: random.Random, rep: _User, seg: _Segment, book: list[_Account]) -> None:
        for _ in range(_poisson(rng, len(book) * 0.12)):  # prospects nobody has opened a deal on yet
            self._new_account(rng, rep, seg, book, self.as_of_end - rng.randrange(3 * 365 * DAY))
        owner = rep.owner_at(self.as_of_end)
        for a in book:
            if a.won_sec <= self.as_of_end:
                atype = "Customer"
            else:
                atype = "Partner" if rng.random() < 0.03 else "Prospect"
            employees, revenue = str(a.employees), _money(a.revenue)
            if rng.random() < 0.01:
                employees = revenue = ""
            tier = "Tier 1" if a.revenue >= 500e6 else ("Tier 2" if a.revenue >= 50e6 else "Tier 3")
            if rng.random() < 0.1:
                tier = ""
            self.w.account(
                [
                    a.id,
                    a.name,
                    a.industry,
                    employees,
                    revenue,
                    a.country,
                    a.parent_id,
                    owner.id,
                    atype,
                    _bool(rng.random() < 0.003 and not a.in_use),
                    tier,
                ]
            )
        self.n[ACCOUNT.filename] += len(book)

    def _quotas(self, rep: _User, seg: _Segment) -> None:
        start = _month_index(date.fromordinal(max(rep.hire_day, self.hist_start)))
        end = (
            _month_index(date.fromordinal(rep.leave_day))
            if rep.leave_day is not None
            else self.as_of_month + 12
        )
        hire_month = _month_index(date.fromordinal(rep.hire_day))
        for m in range(start, end + 1):
            # Quotas are set once a fiscal year, from the plan's growth at the start of that year.
            fy_start = m - (m % 12 - (FISCAL_YEAR_START_MONTH - 1)) % 12
            years = (_month_start(fy_start).toordinal() - self.hist_start) / 365.25
            full = seg.quota * self.scale.deal_rate * _QUOTA_GROWTH**years
            tenure = m - hire_month
            amount = full * (_RAMP[tenure] if tenure < len(_RAMP) else 1.0)
            self.w.quota([rep.id, _month_start(m).isoformat(), _money(round(amount, -2))])
            self.n["quotas.csv"] += 1

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> dict[str, int]:
        org = _build_org(self.seed, self.scale, self.hist_start, self.as_of_day)
        try:
            self._write_reference(org)
            for i, rep in enumerate(org.reps):
                self.run_rep(i, rep)
        finally:
            self.w.close()
        return dict(self.n)


# ---------------------------------------------------------------------------------------------
# Products, line items and contacts: written from the finished Opportunity.csv and Account.csv, each record
# from its own random stream, so they add files without changing any other.

# (name, product code, family, active); the first two are a deal's core product, the rest add-ons and services
PRODUCTS = (
    ("Sales Cloud Platform", "PLT-100", "Platform", True),
    ("Legacy Suite", "LEG-050", "Platform", False),
    ("Analytics Add-on", "ADD-210", "Add-on", True),
    ("Integration Pack", "ADD-220", "Add-on", True),
    ("Premium Support", "SVC-310", "Services", True),
    ("Onboarding Services", "SVC-320", "Services", True),
)
_TITLES = ("VP Sales", "Head of Operations", "IT Director", "CFO", "Procurement Manager", "Project Lead")
# deals created before this day sell the legacy suite as their core product
_LEGACY_BEFORE = "2024-01-01"


def _write_products_and_contacts(out: Path, seed: int) -> dict[str, int]:
    """Product2.csv, OpportunityLineItem.csv (lines summing to each deal's Amount) and Contact.csv."""
    counts: dict[str, int] = {}
    with (out / PRODUCT.filename).open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, **CSV_FORMAT)
        w.writerow(_header(PRODUCT))
        for k, (name, code, family, active) in enumerate(PRODUCTS):
            w.writerow([sfid("01t", 1001 + k), name, code, family, _bool(active), "false"])
    counts[PRODUCT.filename] = len(PRODUCTS)
    first_deal: dict[str, str] = {}
    n_lines = 0
    ids = _Ids()
    with (out / OPPORTUNITY.filename).open(newline="", encoding="utf-8") as fin, \
            (out / OPPORTUNITY_LINE_ITEM.filename).open("w", newline="", encoding="utf-8") as fout:
        w = csv.writer(fout, **CSV_FORMAT)
        w.writerow(_header(OPPORTUNITY_LINE_ITEM))
        for opp in csv.DictReader(fin):
            if opp["AccountId"] and opp["IsDeleted"] != "true":
                first_deal[opp["AccountId"]] = min(first_deal.get(opp["AccountId"], opp["CreatedDate"]),
                                                   opp["CreatedDate"])
            if not opp["Amount"] or float(opp["Amount"]) <= 0:
                continue
            rng = random.Random(f"salesos-lines/{seed}/{opp['Id']}")
            cents = round(float(opp["Amount"]) * 100)
            core = 1 if opp["CreatedDate"] < _LEGACY_BEFORE else 0
            extras = rng.sample(range(2, len(PRODUCTS)), rng.choice((0, 0, 1, 1, 2)))
            shares = [rng.uniform(0.55, 0.8)] + [rng.uniform(0.1, 0.3) for _ in extras]
            parts = [int(cents * x / sum(shares)) for x in shares]
            parts[0] += cents - sum(parts)  # the lines add up to the deal's amount exactly
            for product, part in zip([core, *extras], parts, strict=True):
                if part <= 0:
                    continue
                n_lines += 1
                quantity = rng.choice((1, 1, 2, 5, 10, 25)) if product != 4 else 1
                w.writerow([ids.new("00k"), opp["Id"], sfid("01t", 1001 + product), quantity,
                            f"{part / quantity / 100:.2f}", f"{part / 100:.2f}", opp["CreatedDate"], opp["IsDeleted"]])
    counts[OPPORTUNITY_LINE_ITEM.filename] = n_lines
    n_contacts = 0
    with (out / ACCOUNT.filename).open(newline="", encoding="utf-8-sig") as fin, \
            (out / CONTACT.filename).open("w", newline="", encoding="utf-8") as fout:
        w = csv.writer(fout, **CSV_FORMAT)
        w.writerow(_header(CONTACT))
        for account in csv.DictReader(fin):
            rng = random.Random(f"salesos-contacts/{seed}/{account['Id']}")
            domain = "".join(ch for ch in account["Name"].split(" ")[0].lower() if ch.isalnum()) or "example"
            for _ in range(rng.choice((1, 1, 2, 2, 3))):
                n_contacts += 1
                first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
                local = f"{first}.{last}".lower().replace("'", "").replace(" ", "")
                w.writerow([ids.new("003"), account["Id"], account["OwnerId"], first, last,
                            f"{local}@{domain}.example.com", rng.choice(_TITLES),
                            first_deal.get(account["Id"], ""), account["IsDeleted"]])
    counts[CONTACT.filename] = n_contacts
    return counts


# ---------------------------------------------------------------------------------------------
# Faults.


def _inject_faults(out: Path, seed: int, counts: dict[str, int]) -> list[dict[str, Any]]:
    """Damage Opportunity.csv the way real exports are damaged; the header faults were written already."""
    rng = random.Random(f"salesos-faults/{seed}")
    n = counts[OPPORTUNITY.filename]
    if n < 20:
        raise ValueError(f"too few opportunities ({n}) to inject faults")
    rows = rng.sample(range(1, n + 1), 11)
    dup_rows, date_rows, neg_rows, owner_rows = rows[:2], rows[2:5], rows[5:8], rows[8:]
    bad_dates = ("31/02/2024", "not a date", "2024-02-30")
    faults: list[dict[str, Any]] = [
        {"file": ACCOUNT.filename, "row": None, "field": None, "kind": "utf8_bom", "value": "\ufeff"},
        {
            "file": LEAD.filename,
            "row": None,
            "field": RENAMED_LEAD_COLUMN[0],
            "kind": "renamed_column",
            "value": RENAMED_LEAD_COLUMN[1],
        },
    ]
    path = out / OPPORTUNITY.filename
    tmp = path.with_suffix(".csv.tmp")
    duplicates: list[tuple[int, list[str]]] = []
    with path.open(newline="", encoding="utf-8") as fin, tmp.open("w", newline="", encoding="utf-8") as fout:
        reader = csv.reader(fin)
        writer = csv.writer(fout, **CSV_FORMAT)
        header = next(reader)
        writer.writerow(header)
        col = {h: i for i, h in enumerate(header)}
        for i, row in enumerate(reader, start=1):
            if i in dup_rows:
                duplicates.append((i, row))
            elif i in date_rows:
                value = bad_dates[date_rows.index(i)]
                row[col["CloseDate"]] = value
                faults.append(
                    {
                        "file": path.name,
                        "row": i,
                        "field": "CloseDate",
                        "kind": "unparseable_date",
                        "value": value,
                    }
                )
            elif i in neg_rows:
                value = _money(-float(row[col["Amount"]]) - 1.0)
                row[col["Amount"]] = value
                faults.append(
                    {
                        "file": path.name,
                        "row": i,
                        "field": "Amount",
                        "kind": "negative_amount",
                        "value": value,
                    }
                )
            elif i in owner_rows:
                value = sfid("005", 900_000_000 + owner_rows.index(i))
                row[col["OwnerId"]] = value
                faults.append(
                    {"file": path.name, "row": i, "field": "OwnerId", "kind": "unknown_owner", "value": value}
                )
            writer.writerow(row)
        for k, (original, row) in enumerate(sorted(duplicates)):
            writer.writerow(row)
            faults.append(
                {
                    "file": path.name,
                    "row": n + 1 + k,
                    "field": "Id",
                    "kind": "duplicate_id",
                    "value": row[col["Id"]],
                    "duplicate_of_row": original,
                }
            )
    tmp.replace(path)
    counts[OPPORTUNITY.filename] = n + len(duplicates)
    return faults


# ---------------------------------------------------------------------------------------------
# Public API.


def generate(
    out_dir: str | Path,
    scale: str = "S",
    seed: int = 42,
    as_of: date = date(2026, 10, 31),
    faults: bool = False,
    stage_export: bool = True,
    rename_stages: dict[str, str] | None = None,
) -> dict[str, int]:
    """Write the sample exports into out_dir; return rows written per file name.

    `stage_export` writes OpportunityStage.csv (the stage picklist with its closed/won flags and sort
    order); `rename_stages` ({"Closed Won": "Signed", ...}) writes the same sample under other stage
    names, as orgs that renamed their stages have them: everything else stays byte-identical.

    The same (scale, seed, as_of, faults) always gives byte-identical files, so a demo or a test
    can rely on exact numbers. With `faults`, a handful of the defects real exports carry are
    injected and listed in `faults.json` (file, 1-based data row, field, kind, value) so tests can
    check that the pipeline catches each one.
    """
    if scale not in SCALES:
        raise ValueError(
            f"unknown scale {scale!r}; choose one of {', '.join(s for s in SCALES if s != 'XS')}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(rename_stages or {}) - {name for name, _, _ in STAGES})
    if unknown:
        raise ValueError(f"rename_stages: not a stage of the sample: {', '.join(unknown)}")
    counts = _Generator(out, SCALES[scale], seed, as_of, faults, stage_export, rename_stages).run()
    counts.update(_write_products_and_contacts(out, seed))
    fault_file = out / FAULTS_FILE
    if faults:
        injected = _inject_faults(out, seed, counts)
        fault_file.write_text(json.dumps(injected, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    elif fault_file.exists():
        fault_file.unlink()
    return counts
