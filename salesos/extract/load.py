"""Load archived export files into raw tables; rows that cannot be loaded go to quarantine.

Every export is read as text (encoding and delimiter detected; a file not in UTF-8 is read through a
UTF-8 copy in the work folder), checked row by row against the contract, and split in two:

- `raw.<table>`: the rows that load, with typed fields normalised to one canonical text form (dates
  `YYYY-MM-DD`, date-times `YYYY-MM-DD HH:MM:SS` in UTC, numbers as exact decimals read by the file's
  one number rule (`NumberFormat`), booleans `true`/`false`) so the dbt staging models only cast, the
  same way on every adapter;
- `quarantine.<table>`: the rows that do not, exactly as read, with the rule they broke, the field
  and the value, and their file and row number; a record the CSV reader cannot split into fields or
  decode keeps its number and its raw text.

Nothing is dropped: loaded + quarantined = read, for every file. The archive keeps the original bytes.
Each export is a full snapshot of its object, so `raw.<table>` always ends holding exactly the file's
loadable rows: loading the same files twice never duplicates rows. `raw._loads` keeps one audit row per
file and run.

Incremental nights: when the warehouse already holds a raw table of the same columns from an earlier
night and the export has an Id key, only the difference is applied (delete + insert by key): rows new
or changed in content get this run's `_run_id`/`_loaded_at`, unchanged rows keep the ones of the run
that loaded them (their `_row_number` follows the new file), rows gone from the export are deleted. The
content then equals a full load of the same file, and the dbt models rebuild only what this run's
`_run_id` and `raw._changes` (every key inserted, updated or deleted by the latest load) name. A first
load, a changed column list, a keyless export (quotas, fx rates) or `full_refresh` replace the table.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from salesos.contract import EXPORTS, ExportFile, Field, map_headers
from salesos.extract.connectors.translate import PROVENANCE_COLUMNS
from salesos.extract.landing import ArchivedFile, ExportError
from salesos.progress import StepProgress
from salesos.settings import Settings

log = logging.getLogger(__name__)

RAW_SCHEMA = "raw"
QUARANTINE_SCHEMA = "quarantine"
NON_NEGATIVE = {"amount", "quota_amount", "annual_revenue", "number_of_employees", "duration_in_minutes"}
POSITIVE = {"rate"}
PLAUSIBLE_YEARS = (1990, 2100)
MAX_ABS_NUMBER = "1e15"  # no deal, quota or head count is a quadrillion; beyond it is a broken cell
# compared as a decimal, exactly (a double literal would make 999999999999999.99 equal to it)
MAX_DECIMAL = f"cast({MAX_ABS_NUMBER} as decimal(38, 6))"
CHANGES_TABLE = f"{RAW_SCHEMA}._changes"
# Work tables of a load: in memory (temp) for files up to this size, else in this schema of the database.
SCRATCH_SCHEMA = "_load"
# (the size is the setting `load_scratch_bytes`, salesos/settings.py)


@dataclass(frozen=True)
class PlannedLoad:
    export: ExportFile
    path: Path | None  # the archived file (named in raw and quarantine)
    mapping: dict[str, str]  # file header -> warehouse column
    encoding: str = "utf-8"
    # malformed rows (too many fields, a stray quote, bytes that are not UTF-8) go to quarantine, short
    # rows are padded with nulls: the single-threaded reader, used only when the strict one fails
    tolerant: bool = False
    delimiter: str = ","
    headers: tuple[str, ...] = ()
    read_path: Path | None = None  # the file DuckDB reads: the archived one, or its UTF-8 transcoding
    number_setting: tuple[str, str] = ("auto", "auto")  # number_decimal_separator, number_thousands_separator

    @property
    def source(self) -> Path | None:
        return self.read_path or self.path


@dataclass
class LoadResult:
    """Rows read, loaded and quarantined per export file, and quarantined rows per rule."""

    read: dict[str, int] = field(default_factory=dict)
    loaded: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    by_rule: dict[str, int] = field(default_factory=dict)
    encodings: dict[str, str] = field(default_factory=dict)
    # Schema drift per file: optional contract columns the file lacks, columns the contract does not name.
    missing_columns: dict[str, list[str]] = field(default_factory=dict)
    extra_columns: dict[str, list[str]] = field(default_factory=dict)
    # How each file was loaded ("full" or "incremental") and what the load changed in raw, per file:
    # {"inserted": n, "updated": n, "deleted": n} (a full load of a table that existed counts every
    # row loaded as inserted and the keys gone as deleted; a first load counts every row as inserted).
    mode: dict[str, str] = field(default_factory=dict)
    changes: dict[str, dict[str, int]] = field(default_factory=dict)
    # The number format each file was read with (decimal and thousands separators, and why), as in raw._loads.
    number_formats: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TableLoad:
    """What loading one file did."""

    loaded: int
    quarantined: int
    mode: str
    inserted: int
    updated: int
    deleted: int
    number_format: str = ""


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


REJECTS = "_rejects"  # DuckDB's rejects table of a tolerant read (one row per error, with line and text)
REJECTS_SCAN = "_rejects_scan"
HEAD_BYTES = 1 << 20  # the sample an encoding is detected from; DuckDB validates the rest while reading
SPACES = (" ", "\u00a0", "\u202f")  # a space, no-break space or narrow no-break space groups thousands


def _read_csv(path: Path, headers: tuple[str, ...], delimiter: str = ",", tolerant: bool = False) -> str:
    """DuckDB's reader over a UTF-8 file with the header we parsed: no sniffing, so no row can fool it.

    tolerant: rows that break the CSV grammar go to the rejects table (`REJECTS`) with their record
    number and text instead of failing the read; short rows are padded with nulls.
    """
    columns = "{" + ", ".join(f"{_sql_str(h)}: 'VARCHAR'" for h in headers) + "}"
    extra = (
        f", null_padding=true, parallel=false, ignore_errors=true, store_rejects=true, "
        f"rejects_table={_sql_str(REJECTS)}, rejects_scan={_sql_str(REJECTS_SCAN)}"
        if tolerant
        else ""
    )
    return (
        f"read_csv({_sql_str(str(path))}, columns={columns}, auto_detect=false, header=true, "
        # comment='' and skip=0: every line of an export is a record or an error, never skipped
        f"delim={_sql_str(delimiter)}, quote='\"', escape='\"', comment='', skip=0, encoding='utf-8'{extra})"
    )


def _drop_rejects(con: duckdb.DuckDBPyConnection) -> None:
    for table in (REJECTS, REJECTS_SCAN):
        con.execute(f"drop table if exists {table}")


def sniff_delimiter(first_line: str) -> str:
    """The delimiter of the header line: the candidate it contains most often (Excel in Europe writes ';')."""
    counts = {d: first_line.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_header(path: Path, name: str) -> tuple[tuple[str, ...], str]:
    """The header names of a UTF-8 file, parsed as CSV, and its delimiter.

    A name repeated exactly (`Amount,Amount`) stops the run: DuckDB would silently call the second one
    `Amount_1`, and which of the two holds the amount is anybody's guess.
    """
    text = _head(path, 1 << 16).decode("utf-8", errors="replace").lstrip("\ufeff")
    delimiter = sniff_delimiter(text.split("\n", 1)[0])
    header = next(csv.reader(io.StringIO(text), delimiter=delimiter, quotechar='"', doublequote=True), [])
    names = [h if h.strip() else f"column{i + 1}" for i, h in enumerate(header)]
    seen: dict[str, int] = {}
    for i, h in enumerate(names, start=1):
        key = h.strip()
        if key in seen:
            raise ExportError(
                f"{name}: header {key!r} appears twice (columns {seen[key]} and {i}); "
                "every column needs its own name"
            )
        seen[key] = i
    return tuple(names), delimiter


def _head(path: Path, size: int = 4096) -> bytes:
    """The first bytes of a file, without reading the rest (an export can be larger than the memory cap)."""
    with path.open("rb") as fh:
        return fh.read(size)


def _utf8_lines(path: Path) -> tuple[int, int]:
    """(non-ASCII lines that are valid UTF-8, lines that are not): one streaming pass, off the clean path."""
    good = bad = 0
    with path.open("rb") as fh:
        for line in fh:
            if line.isascii():
                continue
            try:
                line.decode("utf-8")
                good += 1
            except UnicodeDecodeError:
                bad += 1
    return good, bad


def detect_encoding(path: Path, setting: str = "auto") -> str:
    """The encoding of an export: the setting, else a BOM, else UTF-8 when the text is UTF-8, else Windows-1252.

    Only the first MB is sampled on the clean path; DuckDB validates the rest as it reads. A file whose
    sample is not UTF-8 is scanned line by line: mostly valid UTF-8 (some lines broken) stays UTF-8, and
    its undecodable rows are quarantined; a file with no valid UTF-8 text is Windows-1252 (Excel's "CSV"
    on Windows), which also reads every Latin-1 text file the same way except for C1 control bytes.
    """
    setting = setting.lower()
    if setting != "auto":
        return setting
    head = _head(path, HEAD_BYTES)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    good, bad = _utf8_lines(path)
    return "utf-8" if good > bad else "windows-1252"


# Windows-1252 is Latin-1 except for 0x80-0x9F, where it has printable characters (the five bytes it
# leaves undefined keep their Latin-1 control character, so no byte is lost).
_CP1252 = {b: bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in range(0x80, 0xA0)}
_CP1252_TABLE = str.maketrans({chr(b): c for b, c in _CP1252.items()})


def transcode_to_utf8(src: Path, dest: Path, encoding: str) -> None:
    """Stream a UTF-16, Windows-1252 or Latin-1 file into UTF-8 (no BOM), 4 MB at a time.

    Lines stay lines, so record numbers are the archived file's. The archive is never touched; the copy
    lives in the run's work folder and costs one pass over the file (only files that are not UTF-8).
    """
    codec = "latin-1" if encoding in ("windows-1252", "latin-1") else encoding
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as fin, dest.open("w", encoding="utf-8", newline="") as fout:
        first = True
        while True:
            chunk = fin.read(4 << 20)
            text = decoder.decode(chunk, final=not chunk)
            if encoding == "windows-1252":
                text = text.translate(_CP1252_TABLE)
            if first:
                text, first = text.lstrip("\ufeff"), False
            fout.write(text)
            if not chunk:
                break


def _strict_error(con: duckdb.DuckDBPyConnection, reader: str, headers: tuple[str, ...]) -> str | None:
    """None when every row of the file reads; else DuckDB's first error line.

    Every column is counted: DuckDB checks a value's UTF-8 only when the value is used (count(*) reads
    a Windows-1252 file without complaint).
    """
    counts = ", ".join(f"count({quote(h)})" for h in headers) or "count(*)"
    try:
        con.execute(f"select {counts} from {reader}").fetchall()
        return None
    except duckdb.Error as exc:
        return " ".join(str(exc).split())


def _plan_reading(
    con: duckdb.DuckDBPyConnection, path: Path, work_dir: Path | None, encoding_setting: str
) -> tuple[str, Path | None, tuple[str, ...], str, bool]:
    """How to read one archived file: (encoding, transcoded copy or None, headers, delimiter, tolerant)."""
    encoding = detect_encoding(path, encoding_setting)
    for _attempt in range(2):
        read_path = None
        if encoding not in ("utf-8", "utf-8-sig"):
            read_path = (work_dir or Path(tempfile.mkdtemp(prefix="salesos-load-"))) / path.name
            try:
                transcode_to_utf8(path, read_path, encoding)
            except UnicodeDecodeError as exc:
                raise ExportError(f"{path.name}: not {encoding} text (byte {exc.start}): {exc.reason}") from exc
        source = read_path or path
        headers, delimiter = read_header(source, path.name)
        error = _strict_error(con, _read_csv(source, headers, delimiter), headers)
        if error is None:
            return encoding, read_path, headers, delimiter, False
        if "unicode" in error.lower() and encoding == "utf-8" and encoding_setting.lower() == "auto":
            # the sample was UTF-8 but later bytes are not: a Windows-1252 file, or UTF-8 with broken rows
            good, bad = _utf8_lines(path)
            if good <= bad:
                encoding = "windows-1252"
                continue
        break
    _drop_rejects(con)
    tolerant_error = _strict_error(con, _read_csv(source, headers, delimiter, tolerant=True), headers)
    _drop_rejects(con)
    if tolerant_error is not None:
        raise ExportError(f"{path.name}: cannot be read as CSV: {tolerant_error[:300]}")
    log.warning("%s: %s; the rows that do not read go to quarantine", path.name, (error or "")[:200])
    return encoding, read_path, headers, delimiter, True


def plan_loads(
    con: duckdb.DuckDBPyConnection,
    archive_dir: Path,
    files: list[ArchivedFile],
    settings: Settings | None = None,
    work_dir: Path | None = None,
) -> list[PlannedLoad]:
    """Check every file's header against the contract before anything is written.

    work_dir receives the UTF-8 copies of files in other encodings (load_raw passes its own and removes
    it; without one, each copy gets a new temporary folder).
    """
    settings = settings or Settings()
    number_setting = (str(settings.number_decimal_separator), str(settings.number_thousands_separator))
    by_table = {f.table: f for f in files}
    plans: list[PlannedLoad] = []
    for export in EXPORTS:
        archived = by_table.get(export.table)
        if archived is None:
            plans.append(PlannedLoad(export, None, {}))
            continue
        path = archive_dir / archived.filename
        if archived.bytes == 0 or not _head(path).strip(b"\xef\xbb\xbf\xff\xfe\x00 \r\n\t"):
            if export.required:
                raise ExportError(f"{archived.filename}: the file is empty (not even a header row)")
            log.warning("%s is empty: treated as absent", archived.filename)
            plans.append(PlannedLoad(export, None, {}))
            continue
        encoding, read_path, headers, delimiter, tolerant = _plan_reading(
            con, path, work_dir, str(settings.export_encoding)
        )
        try:
            mapping = map_headers(export, list(headers))
        except ValueError as exc:
            raise ExportError(str(exc)) from exc
        columns = set(mapping.values())
        missing = [f.api_name for f in export.fields if f.required and f.column not in columns]
        if missing:
            raise ExportError(
                f"{archived.filename}: required column(s) missing: {', '.join(missing)} "
                f"(header has: {', '.join(headers)})"
            )
        for group in export.one_of:
            if not columns.intersection(group):
                raise ExportError(f"{archived.filename}: needs one of the columns {' or '.join(group)}")
        plans.append(
            PlannedLoad(export, path, mapping, encoding, tolerant, delimiter, headers, read_path, number_setting)
        )
    return plans


def _blank(col: str) -> str:
    return f"nullif(trim({col}), '') is null"


@dataclass(frozen=True)
class NumberFormat:
    """The rule a file's numbers are read by: one decimal separator, the characters that group thousands.

    `settled` says whether a value that reads as two numbers (`1.234`: 1.234 or 1234) may be read by
    this rule; it is not when the file's own numbers disagree or say nothing, and such values are
    quarantined as `ambiguous_number` instead of being guessed.
    """

    decimal: str = "."
    thousands: tuple[str, ...] = (",", *SPACES)
    settled: bool = True
    why: str = "the contract's default"

    @property
    def label(self) -> str:
        """How the file was read, for raw._loads and the summary (equal labels: equal parsing)."""
        names = {" ": "space", "\u00a0": "no-break space", "\u202f": "narrow no-break space"}
        groups = ", ".join(names.get(c, repr(c)) for c in self.thousands) or "none"
        return f"decimal {self.decimal!r}, thousands {groups} ({self.why})"


def _default_thousands(decimal: str) -> tuple[str, ...]:
    return ("." if decimal == "," else ",", *SPACES)


def _thousands(setting: str, decimal: str) -> tuple[str, ...]:
    if setting == "auto":
        return _default_thousands(decimal)
    if setting == "none":
        return ()
    return SPACES if setting == " " else (setting,)


def _number_regex(decimal: str, thousands: tuple[str, ...]) -> str:
    """A full-match regex for a number written by this rule: -1234,5 / 1.234,50 / 1 234,50 / ,5."""
    d = "\\." if decimal == "." else decimal
    whole = "[0-9]+"
    if thousands:
        group = "".join("\\." if c == "." else c for c in thousands)
        whole = f"([0-9]+|[1-9][0-9]{{0,2}}([{group}][0-9]{{3}})+)"
    return f"[+-]?({whole}({d}[0-9]+)?|{d}[0-9]+)"


# Scientific notation and IEEE specials read the same under either rule (inf is quarantined as out of range).
_SPECIAL_NUMBER = "[+-]?([0-9]+(\\.[0-9]+)?e[+-]?[0-9]+|inf|infinity|nan)"
_DOT_RULE = _number_regex(".", _default_thousands("."))
_COMMA_RULE = _number_regex(",", _default_thousands(","))


def _matches(value: str, regex: str) -> str:
    return f"regexp_full_match({value}, {_sql_str(regex)})"


def decide_number_format(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    columns: list[str],
    setting: tuple[str, str] = ("auto", "auto"),
    name: str = "",
) -> NumberFormat:
    """The file's number rule: from the settings, or once per file from the evidence of all its number columns.

    A value that only one convention reads (`1234,50`, `1.234,50`, `1 234,50` say comma; `1,234.50`,
    `1234.5`, `0.125` say dot) is evidence; `1.234` and `1,234` are not. Evidence one way decides the
    file; none, or both ways, leaves the rule at the majority (dot on a tie) and not settled.
    """
    decimal_setting, thousands_setting = setting
    if decimal_setting != "auto":
        return NumberFormat(decimal_setting, _thousands(thousands_setting, decimal_setting), True, "set in settings")
    n_dot = n_comma = 0
    if columns:
        # one pass; each value trimmed once, and the common case (45000.00: a dot, no comma, not three
        # digits after it) is told by cheap string tests before any regex (6x faster on real exports)
        values = ", ".join(f"nullif(trim({c}), '') as _v{i}" for i, c in enumerate(columns))
        counts = []
        for i in range(len(columns)):
            v = f"_v{i}"
            dot, comma = _matches(v, _DOT_RULE), _matches(v, _COMMA_RULE)
            plain = f"({v} is null or not (contains({v}, '.') or contains({v}, ',')))"
            only_dot = (
                f"(not contains({v}, ',') and length({v}) - strpos({v}, '.') not in (0, 3) "
                f"and try_cast({v} as double) is not null)"
            )
            counts.append(f"sum(case when {plain} then 0 when {only_dot} then 1 when {dot} and not {comma} then 1 end)")
            counts.append(f"sum(case when {plain} or {only_dot} then 0 when {comma} and not {dot} then 1 end)")
        row = con.execute(f"select {', '.join(counts)} from (select {values} from {relation})").fetchall()[0]
        n_dot, n_comma = sum(n or 0 for n in row[0::2]), sum(n or 0 for n in row[1::2])  # no rows: null
    decimal = "," if n_comma > n_dot else "."
    thousands = _thousands(thousands_setting, decimal)
    if n_dot and n_comma:
        # the counts go to the log only: the label is compared night to night (see _load_file)
        log.warning("%s: %d number(s) say decimal dot, %d decimal comma", name or relation, n_dot, n_comma)
        return NumberFormat(decimal, thousands, False, "mixed in the file: ambiguous values quarantined")
    if n_dot or n_comma:
        return NumberFormat(decimal, thousands, True, "from the file's numbers")
    return NumberFormat(decimal, thousands, False, "no value in the file says which: ambiguous values quarantined")


def number_text_expr(v: str, fmt: NumberFormat) -> str:
    """SQL: the value as plain number text (`-1234.5`), NULL when the file's rule does not read it."""
    clean = v
    for c in fmt.thousands:
        clean = f"replace({clean}, {_sql_str(c)}, '')"
    if fmt.decimal != ".":
        clean = f"replace({clean}, {_sql_str(fmt.decimal)}, '.')"
    rule = _number_regex(fmt.decimal, fmt.thousands)
    return f"case when {_matches(v, rule)} then {clean} when {_matches(f'lower({v})', _SPECIAL_NUMBER)} then {v} end"


def _number(text: str) -> str:
    return f"try_cast({text} as double)"


def _out_of_range(text: str) -> str:
    """SQL: a parsed number at or beyond MAX_ABS_NUMBER, or not finite, compared exactly (as a decimal:
    999999999999999.99 is a double's 1e15); a decimal(38, 6) cannot hold it (1e32, inf, nan) is beyond."""
    return f"({text} is not null and coalesce(abs(try_cast({text} as decimal(38, 6))) >= {MAX_DECIMAL}, true))"


def parse_expr(f: Field, col: str, fmt: NumberFormat | None = None) -> str | None:
    """SQL that parses a text value into its contract type, NULL when it does not parse.

    Numbers parse into plain number text (exact: the canonical value is cast from it as a decimal,
    never through a float), by the file's `NumberFormat`.
    """
    v = f"nullif(trim({col}), '')"
    if f.type == "date":
        return (
            f"coalesce(try_strptime({v}, '%Y-%m-%d'), try_strptime({v}, '%m/%d/%Y'), "
            f"try_strptime({v}, '%Y/%m/%d'), timezone('UTC', try_cast({v} as timestamptz)))::date"
        )
    if f.type == "datetime":
        return (
            f"coalesce(timezone('UTC', try_cast({v} as timestamptz)), try_strptime({v}, '%m/%d/%Y %H:%M:%S'), "
            f"try_strptime({v}, '%m/%d/%Y %H:%M'), try_strptime({v}, '%m/%d/%Y %I:%M %p'), "
            f"try_strptime({v}, '%m/%d/%Y'))"
        )
    if f.type in ("number", "integer"):
        return number_text_expr(v, fmt or NumberFormat())
    if f.type == "boolean":
        return (
            f"case when lower({v}) in ('true', '1', 'yes', 't', 'y') then true "
            f"when lower({v}) in ('false', '0', 'no', 'f', 'n') then false end"
        )
    return None


def canonical_expr(f: Field, parsed: str) -> str:
    """The canonical text of a parsed value, as stored in raw."""
    if f.type == "date":
        return f"strftime({parsed}, '%Y-%m-%d')"
    if f.type == "datetime":
        return f"strftime({parsed}, '%Y-%m-%d %H:%M:%S')"
    # Out-of-range numbers never reach raw (they are quarantined); the guard keeps the cast itself safe.
    in_range = f"not {_out_of_range(parsed)}"
    if f.type == "integer":
        return f"case when {in_range} then cast(cast(cast({parsed} as decimal(38, 6)) as bigint) as varchar) end"
    if f.type == "number":
        return f"case when {in_range} then cast(cast({parsed} as decimal(38, 6)) as varchar) end"
    if f.type == "boolean":
        return f"case when {parsed} then 'true' when not {parsed} then 'false' end"
    raise ValueError(f.type)


def parsed_column(column: str) -> str:
    """The name of the column holding `column` parsed into its contract type while a file is checked."""
    return f"_parsed__{column}"


def row_rules(
    export: ExportFile, present: set[str], parsed_columns: bool = False, fmt: NumberFormat | None = None
) -> list[tuple[str, str, str]]:
    """(condition, rule, field column) in the order they are checked; the first that holds is the reason.

    parsed_columns: the conditions read each typed field's value from its `parsed_column` (parsed once
    per row) instead of repeating the parsing expression in every rule. fmt: the file's number rule.
    """
    fmt = fmt or NumberFormat()
    other = _COMMA_RULE if fmt.decimal == "." else _DOT_RULE
    rules: list[tuple[str, str, str]] = []
    key = export.field_by_column("id") if export.key else None
    if key is not None and key.column in present:
        rules.append((_blank(quote(key.column)), "missing_id", key.column))
        # _dups holds every occurrence of a repeated key after the first (see _load_one)
        rules.append(("_row_number in (select _row_number from _dups)", "duplicate_id", key.column))
    for f in export.fields:
        if f.column not in present:
            continue
        col = quote(f.column)
        if f.not_null and f.column != "id":
            rules.append((_blank(col), "missing_value", f.column))
        parsed = parse_expr(f, col, fmt)
        if parsed is None:
            continue
        if parsed_columns:
            parsed = quote(parsed_column(f.column))
        if f.type in ("number", "integer"):
            v = f"nullif(trim({col}), '')"
            # written in the other convention, or (rule not settled) readable as two different numbers
            ambiguous = f"({parsed}) is null and {_matches(v, other)}"
            if not fmt.settled:
                both = f"{_matches(v, _DOT_RULE)} and {_matches(v, _COMMA_RULE)}"
                ambiguous = f"({ambiguous}) or ((contains({v}, '.') or contains({v}, ',')) and {both})"
            rules.append((f"not {_blank(col)} and ({ambiguous})", "ambiguous_number", f.column))
            x = _number(parsed)
            whole = f" or {x} <> floor({x})" if f.type == "integer" else ""
            rules.append((f"not {_blank(col)} and (({parsed}) is null{whole})", f"unparseable_{f.type}", f.column))
            rules.append((_out_of_range(parsed), "number_out_of_range", f.column))
            if f.column in NON_NEGATIVE:
                rules.append((f"{x} < 0", "negative_value", f.column))
            if f.column in POSITIVE:
                rules.append((f"{x} <= 0", "non_positive_value", f.column))
            continue
        rules.append((f"not {_blank(col)} and ({parsed}) is null", f"unparseable_{f.type}", f.column))
        if f.type in ("date", "datetime"):
            lo, hi = PLAUSIBLE_YEARS
            rules.append((f"year({parsed}) not between {lo} and {hi}", "implausible_date", f.column))
        if f.column in NON_NEGATIVE:
            rules.append((f"({parsed}) < 0", "negative_value", f.column))
        if f.column in POSITIVE:
            rules.append((f"({parsed}) <= 0", "non_positive_value", f.column))
    for group in export.one_of:
        cols = [quote(c) for c in group if c in present]
        rules.append((" and ".join(_blank(c) for c in cols), "missing_value", "|".join(group)))
    return rules


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"describe {relation}").fetchall()]


def _raw_table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_catalog = current_database() and table_schema = ? and table_name = ?",
            [RAW_SCHEMA, table],
        ).fetchall()[0][0]
    )


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    return int(con.execute(f"select count(*) from {relation}").fetchall()[0][0])


def _load_one(
    con: duckdb.DuckDBPyConnection,
    plan: PlannedLoad,
    run_id: str,
    loaded_at: datetime,
    full_refresh: bool = False,
    scratch_bytes: int = Settings.load_scratch_bytes,
) -> TableLoad:
    """Load one file; a file bigger than `scratch_bytes` works in the `_load` schema (see there)."""
    scratch = plan.path is not None and plan.path.stat().st_size > scratch_bytes
    if scratch:
        con.execute(f"create schema if not exists {SCRATCH_SCHEMA}")
        con.execute(f"set schema = '{SCRATCH_SCHEMA}'")  # the work tables below, unqualified, land there
    try:
        return _load_file(con, plan, run_id, loaded_at, full_refresh, scratch)
    finally:
        if scratch:
            con.execute("set schema = 'main'")


@dataclass(frozen=True)
class _FileShape:
    """The names and SQL pieces one file's load is written with (`_file_shape`)."""

    work: str  # the kind of the work tables and views: temp (in memory) or in the scratch schema
    view: str
    raw_target: str
    q_target: str
    meta_cols: str  # the load metadata columns of a raw or quarantine row
    present: set[str]  # columns the file has
    all_cols: list[str]  # the file's columns, then the contract's it lacks
    select_in: list[str]
    row_hash: str


def _file_shape(plan: PlannedLoad, run_id: str, loaded_at: datetime, scratch: bool) -> _FileShape:
    """Where one file's rows go and which columns it reads (no SQL runs here)."""
    # In-memory temp tables spill uncompressed (27 GB for the 10 GB Task.csv of scale L); tables of the
    # database itself are written compressed. Small files stay in memory, where they are fastest.
    work, view = ("table", "view") if scratch else ("temp table", "temp view")
    export = plan.export
    run_meta = f"{_sql_str(run_id)} as _run_id, {_sql_str(loaded_at.isoformat(sep=' '))}::timestamp as _loaded_at"
    source = _sql_str(plan.path.name) if plan.path else "null::varchar"
    mapped = dict(plan.mapping)
    present = set(mapped.values())
    all_cols = [c for c in dict.fromkeys([*mapped.values(), *export.columns])]
    select_in = [f"{quote(h)}::varchar as {quote(c)}" for h, c in mapped.items()]
    select_in += [f"null::varchar as {quote(c)}" for c in export.columns if c not in present]
    # The fingerprint of a row as read (before any parsing); rows equal in text have equal hashes.
    row_hash = f"(hash({', '.join(quote(c) for c in all_cols)}) >> 1)::bigint" if all_cols else "0::bigint"
    return _FileShape(
        work=work,
        view=view,
        raw_target=f"{RAW_SCHEMA}.{quote(export.table)}",
        q_target=f"{QUARANTINE_SCHEMA}.{quote(export.table)}",
        meta_cols=f"{source} as _source_file, _row_number, {run_meta}",
        present=present,
        all_cols=all_cols,
        select_in=select_in,
        row_hash=row_hash,
    )


def _read_incoming(con: duckdb.DuckDBPyConnection, plan: PlannedLoad, shape: _FileShape) -> int:
    """Read the file into `_file` and number its records in `_incoming`; returns the records the reader rejected."""
    work, view, row_hash = shape.work, shape.view, shape.row_hash
    if plan.source is None:
        con.execute(f"create or replace {work} _file as select {', '.join(shape.select_in)} limit 0")
    else:
        if plan.tolerant:
            _drop_rejects(con)
        # preserve_insertion_order keeps the file's order, so the rowid gives each record's number
        con.execute(
            f"create or replace {work} _file as select {', '.join(shape.select_in)} "
            f"from {_read_csv(plan.source, plan.headers, plan.delimiter, plan.tolerant)}"
        )
    # rowids of a table written in this transaction start at an offset, but are contiguous and in order
    base, last, n = con.execute("select coalesce(min(rowid), 0), max(rowid), count(*) from _file").fetchall()[0]
    if n and last - base + 1 != n:  # never seen; the row numbers would not be the file's lines
        raise RuntimeError(f"{plan.export.filename}: rows read are not contiguous ({n} rows, ids {base}..{last})")
    rejected = _rejected_rows(con, plan, work) if plan.tolerant and plan.source is not None else 0
    if rejected:
        # a rejected record keeps its number: the k-th row read is record k + (records rejected before it)
        con.execute(
            f"""create or replace {view} _incoming as select *, {row_hash} as _row_hash from (
                select f.* exclude (_k), f._k + coalesce(r.m, 0) as _row_number
                from (select *, rowid - {int(base)} + 1 as _k from _file) as f
                asof left join (select _row_number - m as _before, max(m) as m
                                from (select _row_number, row_number() over (order by _row_number) as m
                                      from _rejected) group by 1) as r
                on f._k > r._before)"""
        )
    else:
        con.execute(
            f"create or replace {view} _incoming as select *, rowid - {int(base)} + 1 as _row_number, "
            f"{row_hash} as _row_hash from _file"
        )
    return rejected


def _mark_repeated_keys(con: duckdb.DuckDBPyConnection, shape: _FileShape, has_key: bool) -> None:
    """`_dups`: every occurrence of a key after the first (a narrow window over the repeated keys only)."""
    con.execute(f"create or replace {shape.work} _dups (_row_number bigint)")
    if has_key:
        con.execute(
            """insert into _dups select _row_number from (
                select _row_number, row_number() over (partition by trim(id) order by _row_number) as k
                from _incoming
                where trim(id) in (select trim(id) from _file where nullif(trim(id), '') is not null
                                   group by 1 having count(*) > 1))
            where k > 1"""
        )


def _mark_kept_rows(con: duckdb.DuckDBPyConnection, shape: _FileShape, incremental: bool) -> None:
    """`_kept`: rows of the file equal to a raw row of the earlier night (same key, same fingerprint)."""
    con.execute(f"create or replace {shape.work} _kept (id varchar, _row_number bigint)")
    if incremental:
        con.execute(
            f"""insert into _kept select i.id, i._row_number from _incoming as i
            semi join {shape.raw_target} as r on r.id = i.id and r._row_hash = i._row_hash
            where i._row_number not in (select _row_number from _dups)"""
        )


def _check_rows(
    con: duckdb.DuckDBPyConnection, export: ExportFile, shape: _FileShape, fmt: NumberFormat, incremental: bool
) -> None:
    """`_checked`: the rows to check (all, or those not kept), parsed once, with the rule each breaks, if any;
    `_new`: the checked rows that load, normalised, without the run metadata."""
    all_cols, present, work = shape.all_cols, shape.present, shape.work
    candidates = "_incoming anti join _kept using (_row_number)" if incremental else "_incoming"
    # Each typed field is parsed once per row; the rules and the normalised values read the result.
    typed = {
        c: expr
        for c in all_cols
        if c in present and (f := export.field_by_column(c)) is not None and (expr := parse_expr(f, quote(c), fmt))
    }
    parsing = "".join(f", {expr} as {quote(parsed_column(c))}" for c, expr in typed.items())
    rules = row_rules(export, present, parsed_columns=True, fmt=fmt)
    reason = "case " + " ".join(f"when {c} then {_sql_str(r)}" for c, r, _ in rules) + " end" if rules else "null"
    fld = "case " + " ".join(f"when {c} then {_sql_str(f)}" for c, _, f in rules) + " end" if rules else "null"
    con.execute(
        f"create or replace {work} _checked as select *, {reason} as _reason, {fld} as _field "
        f"from (select *{parsing} from {candidates})"
    )
    normalised = []
    for c in all_cols:
        f = export.field_by_column(c)
        if f is not None and c in typed:
            normalised.append(f"{canonical_expr(f, quote(parsed_column(c)))} as {quote(c)}")
        elif f is not None and parse_expr(f, quote(c)) is not None:
            normalised.append(f"null::varchar as {quote(c)}")  # a typed field the file does not have
        else:
            normalised.append(quote(c))
    con.execute(
        f"create or replace {work} _new as select {', '.join(normalised)}, _row_number, _row_hash "
        f"from _checked where _reason is null"
    )


def _write_quarantine(con: duckdb.DuckDBPyConnection, shape: _FileShape, rejected: int) -> None:
    """Replace the quarantine table with the rows that broke a rule and the records the reader rejected."""
    all_cols, meta_cols = shape.all_cols, shape.meta_cols
    field_value = (
        "case _field " + " ".join(f"when {_sql_str(c)} then {quote(c)}" for c in all_cols) + " end"
        if all_cols
        else "null"
    )
    # rows the CSV reader rejected (malformed, undecodable) join the quarantine with their raw text
    unread = (
        f" union all by name select _reason, _field, _value, {meta_cols} from _rejected" if rejected else ""
    )
    con.execute(
        f"create or replace table {shape.q_target} as select * from ("
        f"select {', '.join(quote(c) for c in all_cols)}, "
        f"_reason, _field, {field_value} as _value, {meta_cols} "
        f"from _checked where _reason is not null{unread}) order by _row_number"
    )
    if rejected:
        con.execute("drop table _rejected")
    con.execute("drop table _checked")  # free the memory before the raw table is written


def _apply_difference(con: duckdb.DuckDBPyConnection, shape: _FileShape) -> bool:
    """Incremental: write only the rows inserted, updated or deleted (`_delta`); False if raw then disagrees."""
    raw_target, meta_cols = shape.raw_target, shape.meta_cols
    cols = ", ".join(quote(c) for c in shape.all_cols)
    # Checked rows whose content differs from raw (EXCEPT compares whole rows, nulls equal): a row
    # whose text changed but whose normalised values did not (1,500 -> 1500) keeps its run.
    con.execute(
        f"""insert into _delta
        select u.id, case when r.id is null then 'insert' else 'update' end
        from (select id from (select {cols} from _new
                              except select {cols} from {raw_target} where id in (select id from _new))) as u
        left join {raw_target} as r on u.id = r.id
        union all
        select id, 'delete' from (select id from {raw_target}
                                  except select id from _kept except select id from _new)"""
    )
    con.execute(f"delete from {raw_target} where id in (select id from _delta)")
    con.execute(
        f"insert into {raw_target} select {cols}, {meta_cols}, _row_hash from _new "
        f"where id in (select id from _delta where change <> 'delete') order by _row_number"
    )
    # rows equal in content keep their run but take this file's line and fingerprint
    con.execute(
        f"update {raw_target} as r set _row_number = n._row_number, _row_hash = n._row_hash from _new as n "
        f"where r.id = n.id and (r._row_number <> n._row_number or r._row_hash <> n._row_hash)"
    )
    con.execute(
        f"update {raw_target} as r set _row_number = k._row_number from _kept as k "
        f"where r.id = k.id and r._row_number <> k._row_number"
    )
    # cannot differ while raw was written by this loader (keys unique)
    return _count(con, raw_target) == _count(con, "_kept") + _count(con, "_new")


def _replace_table(
    con: duckdb.DuckDBPyConnection, export: ExportFile, shape: _FileShape, existing: list[tuple[str, str]]
) -> None:
    """Full load: replace the raw table, listing each key as inserted, updated or deleted (`_delta`)."""
    raw_target = shape.raw_target
    if existing and export.key is not None and ("id", "VARCHAR") in existing:
        con.execute(
            f"""insert into _delta
            select coalesce(n.id, o.id), case when o.id is null then 'insert' when n.id is null then 'delete'
                                               else 'update' end
            from (select id from _new where id is not null) as n
            full outer join (select id from {raw_target} where id is not null) as o on n.id = o.id"""
        )
    else:
        old = _count(con, raw_target) if existing else 0
        con.execute(
            "insert into _delta select null, 'insert' from _new union all select null, 'delete' from range(?)",
            [old],
        )
    con.execute(
        f"create or replace table {raw_target} as select {', '.join(quote(c) for c in shape.all_cols)}, "
        f"{shape.meta_cols}, _row_hash from _new order by _row_number"
    )


def _finish_load(
    con: duckdb.DuckDBPyConnection,
    export: ExportFile,
    shape: _FileShape,
    run_id: str,
    incremental: bool,
    number_format: str,
) -> TableLoad:
    """Drop the work tables, record the changed keys in raw._changes and count what the load did."""
    for temp in ("_new", "_kept", "_dups"):
        con.execute(f"drop table {temp}")
    con.execute("drop view _incoming")
    con.execute("drop table _file")
    if export.key is not None:
        con.execute(
            f"insert into {CHANGES_TABLE} select ?, ?, id, change from _delta where id is not null",
            [run_id, export.table],
        )
    counts = dict(con.execute("select change, count(*) from _delta group by change").fetchall())
    con.execute("drop table _delta")
    return TableLoad(
        loaded=_count(con, shape.raw_target),
        quarantined=_count(con, shape.q_target),
        mode="incremental" if incremental else "full",
        inserted=int(counts.get("insert", 0)),
        updated=int(counts.get("update", 0)),
        deleted=int(counts.get("delete", 0)),
        number_format=number_format,
    )


def _load_file(
    con: duckdb.DuckDBPyConnection,
    plan: PlannedLoad,
    run_id: str,
    loaded_at: datetime,
    full_refresh: bool,
    scratch: bool,
) -> TableLoad:
    """Load one file: every row checked on a full load; on an incremental one only rows new or changed.

    A row whose key and fingerprint (`_row_hash`, a hash of the row's text as read) match a raw row of
    the earlier night passed every rule then and passes them now (the rules look at the row alone,
    duplicate keys aside, which are found over the whole file), so only the other rows are checked,
    parsed and compared: the cost of a night follows what changed, not the size of the export.
    """
    export = plan.export
    shape = _file_shape(plan, run_id, loaded_at, scratch)
    rejected = _read_incoming(con, plan, shape)
    numeric = [
        quote(c)
        for c in shape.present
        if (f := export.field_by_column(c)) is not None and f.type in ("number", "integer")
    ]
    fmt = decide_number_format(con, "_file", sorted(numeric), plan.number_setting, export.filename)
    number_format = fmt.label if numeric else ""  # as raw._loads records it
    if numeric:
        log.info("%s: numbers read with %s", export.filename, number_format)
    has_key = export.key is not None and "id" in shape.present
    _mark_repeated_keys(con, shape, has_key)
    existing = _columns(con, shape.raw_target) if _raw_table_exists(con, export.table) else []
    incremental = (
        not full_refresh
        and plan.path is not None
        and has_key
        and existing == _raw_columns(shape.all_cols)
        # the kept rows were parsed by the last load's number rule: another rule reloads the file in full
        # (once after an upgrade too, as loads before recorded none; a file without numbers never)
        and (not numeric or _last_number_format(con, export.table) == number_format)
    )
    _mark_kept_rows(con, shape, incremental)
    _check_rows(con, export, shape, fmt, incremental)
    _write_quarantine(con, shape, rejected)
    con.execute(f"create or replace {shape.work} _delta (id varchar, change varchar)")
    if incremental:
        if not _apply_difference(con, shape):  # never keep a wrong table
            log.warning("%s: incremental load did not match the file; reloading it in full", export.filename)
            return _load_file(con, plan, run_id, loaded_at, True, scratch)
    else:
        _replace_table(con, export, shape, existing)
    return _finish_load(con, export, shape, run_id, incremental, number_format)


def _last_number_format(con: duckdb.DuckDBPyConnection, table: str) -> str | None:
    """The number rule of the latest load of `table` (None before this column existed: reload once)."""
    rows = con.execute(
        f"select number_format from {RAW_SCHEMA}._loads where table_name = ? "
        "order by loaded_at desc, rowid desc limit 1",
        [table],
    ).fetchall()
    return rows[0][0] if rows else None


def _rejected_rows(con: duckdb.DuckDBPyConnection, plan: PlannedLoad, work: str) -> int:
    """Collect the records DuckDB's tolerant reader rejected into `_rejected`; returns how many.

    DuckDB numbers records from the header (line 1), so record `line` is data row `line - 1`, as
    `_row_number` counts. One record may carry several errors: the first one is its reason. The raw text
    is the record as DuckDB saw it; for bytes that are not UTF-8 it is read again from the archived file
    at the record's offset, with the undecodable bytes written as `\\xNN`.
    """
    by_header = dict(plan.mapping)
    field_of = (
        "case column_name " + " ".join(f"when {_sql_str(h)} then {_sql_str(c)}" for h, c in by_header.items()) + " end"
        if by_header
        else "null"
    )
    con.execute(
        f"""create or replace {work} _rejected as
        select line - 1 as _row_number,
               case when first(error_type order by column_idx) = 'INVALID ENCODING' then 'undecodable_text'
                    else 'malformed_row' end as _reason,
               first({field_of} order by column_idx) as _field,
               ltrim(first(csv_line order by column_idx), chr(13) || chr(10)) as _value,
               min(line_byte_position) as _offset
        from {REJECTS} group by line"""
    )
    _drop_rejects(con)
    undecodable = con.execute(
        "select _row_number, _offset from _rejected where _reason = 'undecodable_text' order by 1"
    ).fetchall()
    if undecodable and plan.read_path is None and plan.path is not None:
        texts = []
        with plan.path.open("rb") as fh:
            for row_number, offset in undecodable:
                # DuckDB's offset (1-based) is just past the previous line's first line-end byte: the
                # record starts after the rest of that line end (LF, or the LF of a CRLF)
                fh.seek(max(int(offset) - 2, 0))
                fh.readline()
                line = fh.readline(1 << 16).rstrip(b"\r\n")
                texts.append((row_number, line.decode("utf-8", errors="backslashreplace")))
        con.execute("create or replace temp table _raw_text (_row_number bigint, _value varchar)")
        con.executemany("insert into _raw_text values (?, ?)", texts)
        con.execute(
            "update _rejected as r set _value = t._value from _raw_text as t where r._row_number = t._row_number"
        )
        con.execute("drop table _raw_text")
    return _count(con, "_rejected")


def _raw_columns(all_cols: list[str]) -> list[tuple[str, str]]:
    """The columns (name, type) a raw table written by this loader has, in order."""
    meta = [
        ("_source_file", "VARCHAR"),
        ("_row_number", "BIGINT"),
        ("_run_id", "VARCHAR"),
        ("_loaded_at", "TIMESTAMP"),
        ("_row_hash", "BIGINT"),
    ]
    return [(c, "VARCHAR") for c in all_cols] + meta


def load_raw(
    con: duckdb.DuckDBPyConnection,
    archive_dir: Path,
    files: list[ArchivedFile],
    run_id: str,
    loaded_at: datetime,
    full_refresh: bool = False,
    settings: Settings | None = None,
    work_dir: Path | None = None,
    progress: StepProgress | None = None,
) -> LoadResult:
    """Make the raw and quarantine tables hold this run's files, applying only the difference when it can.

    full_refresh=True replaces every table (the run's `RunContext.full_refresh`). Every key the load
    inserted, updated or deleted is listed in `raw._changes` (which keeps the latest load only), so the
    dbt models can rebuild just those. settings: the number and encoding rules and `load_scratch_bytes`
    (default: the defaults). work_dir: where UTF-8 copies of files in other encodings are written while loading
    (a temporary folder by default; removed afterwards either way). progress: told the number of exports,
    then each export's rows as it is loaded (what `salesos run` shows).
    """
    con.execute("set TimeZone = 'UTC'")
    scratch_dir = Path(tempfile.mkdtemp(prefix="salesos-load-", dir=work_dir))
    try:
        return _load_raw(con, archive_dir, files, run_id, loaded_at, full_refresh, settings, scratch_dir, progress)
    finally:
        shutil.rmtree(scratch_dir, ignore_errors=True)


def _load_raw(
    con: duckdb.DuckDBPyConnection,
    archive_dir: Path,
    files: list[ArchivedFile],
    run_id: str,
    loaded_at: datetime,
    full_refresh: bool,
    settings: Settings | None,
    scratch_dir: Path,
    progress: StepProgress | None = None,
) -> LoadResult:
    plans = plan_loads(con, archive_dir, files, settings, scratch_dir)
    if progress is not None:
        progress.set_total(len(plans), "exports")
    sha = {f.table: f for f in files}
    result = LoadResult()
    for schema in (RAW_SCHEMA, QUARANTINE_SCHEMA):
        con.execute(f"create schema if not exists {schema}")
    con.execute(
        f"""create table if not exists {RAW_SCHEMA}._loads (
            run_id varchar, table_name varchar, source_file varchar, sha256 varchar, bytes bigint,
            row_count bigint, quarantined bigint, encoding varchar, loaded_at timestamp)"""
    )
    audit = (
        ("load_mode", "varchar"),
        ("inserted", "bigint"),
        ("updated", "bigint"),
        ("deleted", "bigint"),
        ("number_format", "varchar"),
    )
    for column, kind in audit:
        con.execute(f"alter table {RAW_SCHEMA}._loads add column if not exists {column} {kind}")
    con.execute(
        f"create table if not exists {CHANGES_TABLE} (run_id varchar, table_name varchar, id varchar, change varchar)"
    )
    con.execute("begin transaction")
    try:
        con.execute(f"delete from {RAW_SCHEMA}._loads where run_id = ?", [run_id])
        con.execute(f"delete from {CHANGES_TABLE}")
        for plan in plans:
            name = plan.export.filename
            t = _load_one(con, plan, run_id, loaded_at, full_refresh,
                          (settings or Settings()).load_scratch_bytes)
            loaded, quarantined = t.loaded, t.quarantined
            result.loaded[name] = loaded
            result.quarantined[name] = quarantined
            result.read[name] = loaded + quarantined
            result.mode[name] = t.mode
            result.changes[name] = {"inserted": t.inserted, "updated": t.updated, "deleted": t.deleted}
            if progress is not None:
                progress.advance(1, rows=loaded + quarantined)
            if t.mode == "incremental":
                log.info("%s: +%d ~%d -%d row(s)", name, t.inserted, t.updated, t.deleted)
            if plan.path is None:
                continue
            result.encodings[name] = plan.encoding
            if t.number_format:
                result.number_formats[name] = t.number_format
            present = set(plan.mapping.values())
            alternatives = {c for g in plan.export.one_of if present.intersection(g) for c in g}
            missing = [f.api_name for f in plan.export.fields
                       if f.column not in present | alternatives and not f.not_in_every_source]
            extra = [h for h, c in plan.mapping.items()
                     if plan.export.field_by_column(c) is None and c not in PROVENANCE_COLUMNS]
            if missing:
                result.missing_columns[name] = missing
                log.warning("%s: optional column(s) absent, loaded as empty: %s", name, ", ".join(missing))
            if extra:
                result.extra_columns[name] = extra
            f = sha[plan.export.table]
            con.execute(
                f"""insert into {RAW_SCHEMA}._loads (run_id, table_name, source_file, sha256, bytes, row_count,
                    quarantined, encoding, loaded_at, load_mode, inserted, updated, deleted, number_format)
                values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    run_id,
                    plan.export.table,
                    f.filename,
                    f.sha256,
                    f.bytes,
                    loaded,
                    quarantined,
                    plan.encoding,
                    loaded_at,
                    t.mode,
                    t.inserted,
                    t.updated,
                    t.deleted,
                    t.number_format,
                ],
            )
            if quarantined:
                q_table = f"{QUARANTINE_SCHEMA}.{quote(plan.export.table)}"
                rules = con.execute(f"select _reason, count(*) from {q_table} group by 1 order by 1").fetchall()
                for rule, n in rules:
                    result.by_rule[f"{name}:{rule}"] = n
                log.warning(
                    "%s: %d row(s) quarantined (%s)", name, quarantined, ", ".join(f"{r}={n}" for r, n in rules)
                )
        con.execute(f"drop schema if exists {SCRATCH_SCHEMA} cascade")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return result
