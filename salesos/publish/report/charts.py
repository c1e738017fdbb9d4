"""The report's charts as Vega-Lite specs, data inlined (the pages open from disk, so nothing is fetched).

Every chart reads without colour: values are labelled, series differ by dash or point shape as well as by
colour, and intervals are named in the caption. Amounts use Vega's `$` format, which the page's
`formatLocale` (salesos.publish.report.money) turns into the reporting currency.
"""

from __future__ import annotations

from typing import Any

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"  # an identifier only: vega-embed never fetches it
MONEY_AXIS = "$~s"  # $1.2M
MONEY_TIP = "$,.0f"  # $1,234,567
WIDTH = "container"
SHAPES = ["circle", "square", "triangle-up", "diamond", "cross", "triangle-down"]
DASHES = [[1, 0], [6, 3], [2, 2], [8, 3, 2, 3], [4, 4], [1, 3]]


def _base(values: list[dict[str, Any]], height: int = 260) -> dict[str, Any]:
    return {"$schema": SCHEMA, "width": WIDTH, "height": height, "data": {"values": values},
            "config": {"view": {"stroke": None}, "axis": {"labelFontSize": 11, "titleFontSize": 12},
                       "legend": {"orient": "bottom", "labelFontSize": 11}}}


def bookings_vs_quota(values: list[dict[str, Any]], period_label: str, height: int = 260) -> dict[str, Any]:
    """Bars: booked; dashed line with diamonds: quota; each bar labelled with its attainment.

    values: period (label), period_start, booked_amount, quota_amount, attainment (share or null).
    """
    x = {"field": "period", "type": "ordinal", "sort": {"field": "period_start"}, "title": period_label,
         "axis": {"labelAngle": -40}}
    tips = [{"field": "period", "title": period_label},
            {"field": "booked_amount", "title": "Booked", "format": MONEY_TIP},
            {"field": "quota_amount", "title": "Quota", "format": MONEY_TIP},
            {"field": "attainment", "title": "Attainment", "format": ".0%"}]
    spec = _base(values, height)
    spec["encoding"] = {"x": x, "tooltip": tips}
    spec["layer"] = [
        {"mark": {"type": "bar", "color": "#4c78a8", "width": {"band": 0.7}},
         "encoding": {"y": {"field": "booked_amount", "type": "quantitative", "title": "Booked (bars) / quota (dashed)",
                            "axis": {"format": MONEY_AXIS}}}},
        {"mark": {"type": "line", "color": "#222", "strokeDash": [6, 3], "point": {"shape": "diamond", "size": 60,
                                                                                  "filled": True, "color": "#222"}},
         "encoding": {"y": {"field": "quota_amount", "type": "quantitative"}}},
        {"mark": {"type": "text", "dy": -8, "fontSize": 10},
         "encoding": {"y": {"field": "label_at", "type": "quantitative"},
                      "text": {"field": "attainment", "type": "quantitative", "format": ".0%"}}},
    ]
    for v in values:
        v["label_at"] = max(v.get("booked_amount") or 0, v.get("quota_amount") or 0)
    return spec


def forecast_band(values: list[dict[str, Any]], height: int = 300) -> dict[str, Any]:
    """Actual bookings (solid line, circles) and the forecast (dashed line, squares) with 95% and 80% bands.

    values: month, kind ("Actual" or "Forecast"), value, lower_80, upper_80, lower_95, upper_95.
    """
    spec = _base(values, height)
    x = {"field": "month", "type": "temporal", "title": "Month", "axis": {"format": "%b %Y", "labelAngle": -40}}
    tips = [{"field": "month", "type": "temporal", "format": "%b %Y", "title": "Month"},
            {"field": "kind", "title": "Series"},
            {"field": "value", "title": "Bookings", "format": MONEY_TIP},
            {"field": "lower_80", "title": "80% from", "format": MONEY_TIP},
            {"field": "upper_80", "title": "80% to", "format": MONEY_TIP},
            {"field": "lower_95", "title": "95% from", "format": MONEY_TIP},
            {"field": "upper_95", "title": "95% to", "format": MONEY_TIP}]
    band = {"filter": "datum.kind == 'Forecast'"}
    spec["encoding"] = {"x": x}
    spec["layer"] = [
        {"transform": [band], "mark": {"type": "area", "opacity": 0.18, "color": "#4c78a8"},
         "encoding": {"y": {"field": "lower_95", "type": "quantitative"}, "y2": {"field": "upper_95"}}},
        {"transform": [band], "mark": {"type": "area", "opacity": 0.3, "color": "#4c78a8"},
         "encoding": {"y": {"field": "lower_80", "type": "quantitative"}, "y2": {"field": "upper_80"}}},
        {"mark": {"type": "line", "point": {"filled": True, "size": 40}},
         "encoding": {"y": {"field": "value", "type": "quantitative", "title": "Bookings",
                            "axis": {"format": MONEY_AXIS}},
                      "color": {"field": "kind", "type": "nominal", "title": None,
                                "scale": {"domain": ["Actual", "Forecast"], "range": ["#222", "#1f5fa8"]}},
                      "strokeDash": {"field": "kind", "type": "nominal", "title": None,
                                     "scale": {"domain": ["Actual", "Forecast"], "range": [[1, 0], [6, 3]]}},
                      "shape": {"field": "kind", "type": "nominal", "title": None,
                                "scale": {"domain": ["Actual", "Forecast"], "range": ["circle", "square"]}},
                      "tooltip": tips}},
    ]
    return spec


def lines(values: list[dict[str, Any]], x_field: str, x_title: str, y_title: str, *, x_type: str = "temporal",
          y_format: str = MONEY_AXIS, tip_format: str = MONEY_TIP, series_title: str = "Series",
          height: int = 260, band: tuple[str, str] | None = None, y_zero: bool = True,
          x_format: str = "%d %b", x_values: list[Any] | None = None) -> dict[str, Any]:
    """One line per `series`, each with its own dash and point shape (and colour).

    values: x_field, series, value (and band's two fields, drawn as a shaded interval per series).
    """
    series = list(dict.fromkeys(v["series"] for v in values))
    scale_shape = {"domain": series, "range": SHAPES[: len(series)] or SHAPES[:1]}
    scale_dash = {"domain": series, "range": DASHES[: len(series)] or DASHES[:1]}
    x: dict[str, Any] = {"field": x_field, "type": x_type, "title": x_title, "axis": {}}
    if x_type == "temporal":
        x["axis"] = {"format": x_format, "labelAngle": -40}
    if x_values is not None:
        x["axis"]["values"] = x_values
    tip_x = {"field": x_field, "type": x_type, "title": x_title}
    if x_type == "temporal":
        tip_x["format"] = x_format if "%Y" in x_format else x_format + " %Y"
    spec = _base(values, height)
    spec["encoding"] = {"x": x}
    layer: list[dict[str, Any]] = []
    if band:
        layer.append({"mark": {"type": "area", "opacity": 0.18},
                      "encoding": {"y": {"field": band[0], "type": "quantitative"}, "y2": {"field": band[1]},
                                   "color": {"field": "series", "type": "nominal", "legend": None,
                                             "scale": {"domain": series}}}})
    layer.append({"mark": {"type": "line", "point": {"filled": True, "size": 36}},
                  "encoding": {"y": {"field": "value", "type": "quantitative", "title": y_title,
                                     "axis": {"format": y_format}, "scale": {"zero": y_zero}},
                               "color": {"field": "series", "type": "nominal", "title": series_title,
                                         "scale": {"domain": series}},
                               "strokeDash": {"field": "series", "type": "nominal", "title": series_title,
                                              "scale": scale_dash},
                               "shape": {"field": "series", "type": "nominal", "title": series_title,
                                         "scale": scale_shape},
                               "tooltip": [tip_x, {"field": "series", "title": series_title},
                                           {"field": "value", "title": y_title, "format": tip_format}]}})
    spec["layer"] = layer
    return spec


def waterfall(values: list[dict[str, Any]], height: int = 300) -> dict[str, Any]:
    """Start, each flow and end as floating bars, each labelled with its signed amount.

    values: step (label), order, start, end, amount (signed), kind ("total", "in", "out").
    """
    spec = _base(values, height)
    x = {"field": "step", "type": "ordinal", "sort": {"field": "order"}, "title": None, "axis": {"labelAngle": -30}}
    spec["encoding"] = {"x": x}
    spec["layer"] = [
        {"mark": {"type": "bar", "width": {"band": 0.7}, "stroke": "#222", "strokeWidth": 0.5},
         "encoding": {"y": {"field": "start", "type": "quantitative", "title": "Open pipeline",
                            "axis": {"format": MONEY_AXIS}},
                      "y2": {"field": "end"},
                      "color": {"field": "kind", "type": "nominal", "title": None,
                                "scale": {"domain": ["total", "in", "out"],
                                          "range": ["#7f8796", "#4c9a6a", "#c2574a"]},
                                "legend": None},
                      "tooltip": [{"field": "step", "title": "Step"},
                                  {"field": "amount", "title": "Amount", "format": MONEY_TIP}]}},
        {"mark": {"type": "text", "dy": -6, "fontSize": 11},
         "encoding": {"y": {"field": "top", "type": "quantitative"}, "text": {"field": "label"}}},
    ]
    return spec


def hbars(values: list[dict[str, Any]], y_field: str, x_field: str, x_title: str, *, x_format: str = MONEY_AXIS,
          label_field: str = "label", height: int | None = None, sort_field: str | None = None,
          rule: tuple[float, str] | None = None) -> dict[str, Any]:
    """Horizontal bars, each labelled at its end (a funnel, a ranking); `rule`: a dashed line at a value, named."""
    spec = _base(values, height or max(120, 26 * len(values)))
    top = max([float(v.get(x_field) or 0) for v in values] + [0.0])
    x_scale = {"domainMax": top * 1.9} if top > 0 else {}  # room for each bar's label
    y = {"field": y_field, "type": "ordinal", "title": None,
         "sort": {"field": sort_field} if sort_field else None}
    spec["layer"] = [
        {"mark": {"type": "bar", "color": "#4c78a8"},
         "encoding": {"y": y, "x": {"field": x_field, "type": "quantitative", "title": x_title,
                                    "axis": {"format": x_format}, "scale": x_scale},
                      "tooltip": [{"field": y_field, "title": "Name"}, {"field": label_field, "title": x_title}]}},
        {"mark": {"type": "text", "align": "left", "dx": 4, "fontSize": 11},
         "encoding": {"y": y, "x": {"field": x_field, "type": "quantitative"}, "text": {"field": label_field}}},
    ]
    if rule is not None:
        spec["layer"] += [
            {"mark": {"type": "rule", "strokeDash": [6, 3], "color": "#222"}, "encoding": {"x": {"datum": rule[0]}}},
            {"mark": {"type": "text", "align": "left", "dx": 3, "dy": -4, "baseline": "bottom", "fontSize": 10},
             "encoding": {"x": {"datum": rule[0]}, "y": {"value": 0}, "text": {"value": rule[1]}}},
        ]
    return spec


def grouped_bars(values: list[dict[str, Any]], x_field: str, x_title: str, group_field: str, y_title: str,
                 *, y_format: str = ".0%", height: int = 260) -> dict[str, Any]:
    """Bars side by side per x, one per group, each labelled with its value and told apart by a pattern of
    strokes (its outline dash) as well as colour."""
    groups = list(dict.fromkeys(v[group_field] for v in values))
    spec = _base(values, height)
    spec["encoding"] = {"x": {"field": x_field, "type": "nominal", "title": x_title, "sort": None,
                              "axis": {"labelAngle": -30}},
                        "xOffset": {"field": group_field, "type": "nominal", "sort": groups}}
    spec["layer"] = [
        {"mark": {"type": "bar", "stroke": "#222", "strokeWidth": 1},
         "encoding": {"y": {"field": "value", "type": "quantitative", "title": y_title, "axis": {"format": y_format}},
                      "color": {"field": group_field, "type": "nominal", "title": None,
                                "scale": {"domain": groups}},
                      "strokeDash": {"field": group_field, "type": "nominal", "title": None,
                                     "scale": {"domain": groups, "range": DASHES[: len(groups)]}},
                      "tooltip": [{"field": x_field, "title": x_title}, {"field": group_field, "title": "Which"},
                                  {"field": "value", "title": y_title, "format": y_format}]}},
        {"mark": {"type": "text", "dy": -6, "fontSize": 9},
         "encoding": {"y": {"field": "value", "type": "quantitative"},
                      "text": {"field": "short", "type": "nominal"}}},
    ]
    return spec
