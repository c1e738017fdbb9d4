{#
    Dates and fiscal periods. Nothing here reads the wall clock: "today" is always var('as_of').
#}

{# The reporting date, as a typed date literal. Fails at compile time when the var is not YYYY-MM-DD. #}
{% macro as_of() -%}
    {%- set value = var('as_of') | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$', value) -%}
        {{ exceptions.raise_compiler_error("var as_of must be a date YYYY-MM-DD, got '" ~ value ~ "'") }}
    {%- endif -%}
    {%- do modules.datetime.date.fromisoformat(value) -%}
    cast('{{ value }}' as date)
{%- endmacro %}


{# First day of the calendar month of a date, as a date. #}
{% macro month_start(date_expr) -%}
    cast({{ dbt.date_trunc('month', date_expr) }} as date)
{%- endmacro %}


{# A date plus n days / months (n may be negative), as a date. #}
{% macro add_days(date_expr, n) -%}
    cast({{ dbt.dateadd('day', n, date_expr) }} as date)
{%- endmacro %}

{% macro add_months(date_expr, n) -%}
    cast({{ dbt.dateadd('month', n, date_expr) }} as date)
{%- endmacro %}


{# Whole days from one date to another (later - earlier), as an integer. #}
{% macro days_between(from_date, to_date) -%}
    cast({{ dbt.datediff(from_date, to_date, 'day') }} as integer)
{%- endmacro %}


{# Calendar parts as integers (extract returns numeric on PostgreSQL). #}
{% macro date_part_int(part, date_expr) -%}
    {{ return(adapter.dispatch('date_part_int', 'salesos')(part, date_expr)) }}
{%- endmacro %}

{% macro default__date_part_int(part, date_expr) -%}
    cast(extract({{ part }} from {{ date_expr }}) as integer)
{%- endmacro %}

{# Spark names the ISO day of the week (Monday = 1) dayofweek_iso. #}
{% macro spark__date_part_int(part, date_expr) -%}
    cast(extract({{ {'isodow': 'dayofweek_iso'}.get(part, part) }} from {{ date_expr }}) as integer)
{%- endmacro %}


{#
    Fiscal periods. The fiscal year starts on the first day of var('fiscal_year_start_month') and is
    named by the calendar year in which it ends: with start month 2, February 2026 - January 2027 is
    FY2027. With start month 1 the fiscal year is the calendar year.
#}
{% macro fiscal_start_month() -%}
    {%- set m = var('fiscal_year_start_month') | int -%}
    {%- if m < 1 or m > 12 -%}
        {{ exceptions.raise_compiler_error("var fiscal_year_start_month must be 1-12, got " ~ var('fiscal_year_start_month')) }}
    {%- endif -%}
    {{ return(m) }}
{%- endmacro %}

{% macro fiscal_year(date_expr) -%}
    {%- set start = salesos.fiscal_start_month() -%}
    {%- if start == 1 -%}
        {{ salesos.date_part_int('year', date_expr) }}
    {%- else -%}
        ({{ salesos.date_part_int('year', date_expr) }}
            + case when {{ salesos.date_part_int('month', date_expr) }} >= {{ start }} then 1 else 0 end)
    {%- endif -%}
{%- endmacro %}

{# Month of the fiscal year, 1-12 (1 = the fiscal year's first month). #}
{% macro fiscal_month_of_year(date_expr) -%}
    {%- set start = salesos.fiscal_start_month() -%}
    (mod({{ salesos.date_part_int('month', date_expr) }} + {{ 12 - start }}, 12) + 1)
{%- endmacro %}

{# Quarter of the fiscal year, 1-4. #}
{% macro fiscal_quarter(date_expr) -%}
    (cast(floor(({{ salesos.fiscal_month_of_year(date_expr) }} - 1) / 3) as integer) + 1)
{%- endmacro %}


{#
    A one-column relation (column `date_<datepart>`) with every day or month from start to end,
    both included; start and end are SQL date expressions (scalar subqueries allowed). A recursive
    CTE, which DuckDB and PostgreSQL both run. Use it as `from {{ date_series(...) }} as alias`.
#}
{% macro date_series(start_date, end_date, datepart='day') -%}
    {%- if datepart not in ('day', 'month') -%}
        {{ exceptions.raise_compiler_error("date_series: datepart must be day or month, got " ~ datepart) }}
    {%- endif -%}
    {{ return(adapter.dispatch('date_series', 'salesos')(start_date, end_date, datepart)) }}
{%- endmacro %}

{# Spark has no recursive CTE: sequence() of the dates, one row each (none when end is before start). #}
{% macro spark__date_series(start_date, end_date, datepart='day') -%}
    (
        select explode(sequence(cast({{ start_date }} as date), cast({{ end_date }} as date),
            interval 1 {{ datepart }})) as date_{{ datepart }}
        where cast({{ start_date }} as date) <= cast({{ end_date }} as date)
    )
{%- endmacro %}

{% macro default__date_series(start_date, end_date, datepart='day') -%}
    (
        with recursive salesos__date_series (d) as (
            select cast({{ start_date }} as date)
            union all
            select cast({{ dbt.dateadd(datepart, 1, 'd') }} as date)
            from salesos__date_series
            where d < cast({{ end_date }} as date)
        )

        select d as date_{{ datepart }} from salesos__date_series
        where d <= cast({{ end_date }} as date)
    )
{%- endmacro %}
