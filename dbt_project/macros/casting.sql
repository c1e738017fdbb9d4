{#
    Casting raw text to types, the same way on DuckDB and PostgreSQL.

    Raw tables hold every value as text exactly as exported. These macros trim the value, read an
    empty string as null, and return null (never an error) for a value that does not parse, so a bad
    cell is visible in staging as a null next to the raw table's text rather than failing the build.
    (The Great Expectations suites already stop the run on bad values in fields that matter.)
#}

{# Text: surrounding spaces removed, empty -> null. #}
{% macro clean_string(column) -%}
    nullif(trim({{ column }}), '')
{%- endmacro %}


{# Upper-cased code (currency codes): 'usd ' -> 'USD', empty -> null. #}
{% macro clean_code(column) -%}
    upper(nullif(trim({{ column }}), ''))
{%- endmacro %}


{# Booleans: true/false, t/f, 1/0, yes/no, y/n in any case; anything else -> null. #}
{% macro to_boolean(column) -%}
    {{ return(adapter.dispatch('to_boolean', 'salesos')(column)) }}
{%- endmacro %}

{% macro default__to_boolean(column) -%}
    case
        when lower(trim({{ column }})) in ('true', 't', '1', 'yes', 'y') then true
        when lower(trim({{ column }})) in ('false', 'f', '0', 'no', 'n') then false
    end
{%- endmacro %}

{% macro duckdb__to_boolean(column) -%}
    {{ salesos.default__to_boolean(column) }}
{%- endmacro %}


{#
    Dates: YYYY-MM-DD, optionally followed by a time (the date part of a date-time is kept as written;
    use to_timestamp then cast when the UTC date of an offset date-time matters).
#}
{% macro to_date(column) -%}
    {{ return(adapter.dispatch('to_date', 'salesos')(column)) }}
{%- endmacro %}

{% macro duckdb__to_date(column) -%}
    try_cast(left(trim({{ column }}), 10) as date)
{%- endmacro %}

{% macro spark__to_date(column) -%}
    case
        when trim({{ column }}) rlike '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([T ].*)?$'
            then cast(left(trim({{ column }}), 10) as date)
    end
{%- endmacro %}

{% macro default__to_date(column) -%}
    case
        when trim({{ column }}) ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([T ].*)?$'
            then cast(left(trim({{ column }}), 10) as date)
    end
{%- endmacro %}


{#
    Date-times, as a timestamp without time zone in UTC. Accepts Salesforce's
    `2024-01-05T10:00:00.000Z`, `2024-01-05 10:00:00`, `2024-01-05T10:00`, a bare date (midnight), and
    an explicit offset (`+02:00`, `+0200`), which is converted to UTC. A value without an offset is
    read as UTC, whatever the session's time zone.
#}
{% macro to_timestamp(column) -%}
    {{ return(adapter.dispatch('to_timestamp', 'salesos')(column)) }}
{%- endmacro %}

{% macro duckdb__to_timestamp(column) -%}
    case
        when regexp_matches(trim({{ column }}), '[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)? ?[+-][0-9]{2}(:?[0-9]{2})?$')
            then make_timestamp(epoch_us(try_cast(trim({{ column }}) as timestamptz)))
        else try_cast(trim({{ column }}) as timestamp)
    end
{%- endmacro %}

{# Spark: the session runs in UTC (salesos.warehouse.spark.spark_conf), so a value without an offset is read as
   UTC; Spark's cast reads an ISO offset (`+02:00`) and converts to it; `+0200`, `+02` and a space before the
   offset are written as `+02:00` first. #}
{% macro spark__to_timestamp(column) -%}
    {%- set day = "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])" -%}
    {%- set time = "[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]+)?)?" -%}
    case
        when trim({{ column }}) rlike '^{{ day }}({{ time }})?Z?$'
            then cast(trim({{ column }}) as timestamp)
        when trim({{ column }}) rlike '^{{ day }}{{ time }} ?[+-][0-9]{2}(:?[0-9]{2})?$'
            then cast(regexp_replace(regexp_replace(trim({{ column }}), ' ?([+-][0-9]{2})$', '$1:00'),
                ' ?([+-][0-9]{2}):?([0-9]{2})$', '$1:$2') as timestamp)
    end
{%- endmacro %}

{% macro default__to_timestamp(column) -%}
    {%- set day = "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])" -%}
    {%- set time = "[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?" -%}
    case
        when trim({{ column }}) ~ '^{{ day }}({{ time }})?Z?$'
            then cast(replace(trim({{ column }}), 'Z', '') as timestamp)
        when trim({{ column }}) ~ '^{{ day }}{{ time }} ?[+-][0-9]{2}(:?[0-9]{2})?$'
            then cast(trim({{ column }}) as timestamptz) at time zone 'UTC'
    end
{%- endmacro %}


{#
    Numbers with a dot as decimal separator (`1234.5`, `-3`, `+0.25`), as numeric(28, scale).
#}
{% macro to_number(column, scale=6) -%}
    {{ return(adapter.dispatch('to_number', 'salesos')(column, scale)) }}
{%- endmacro %}

{% macro duckdb__to_number(column, scale=6) -%}
    case
        when regexp_full_match(trim({{ column }}), '[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)')
            then try_cast(trim({{ column }}) as numeric(28, {{ scale }}))
    end
{%- endmacro %}

{% macro spark__to_number(column, scale=6) -%}
    case
        when trim({{ column }}) rlike '^[+-]?([0-9]{1,{{ 28 - scale }}}\\.?[0-9]*|\\.[0-9]+)$'
            then cast(trim({{ column }}) as decimal(28, {{ scale }}))
    end
{%- endmacro %}

{% macro default__to_number(column, scale=6) -%}
    case
        when trim({{ column }}) ~ '^[+-]?([0-9]{1,{{ 28 - scale }}}\.?[0-9]*|\.[0-9]+)$'
            then cast(trim({{ column }}) as numeric(28, {{ scale }}))
    end
{%- endmacro %}


{# Whole numbers (`150`, also `150.0`), as bigint; `150.5` -> null. #}
{% macro to_integer(column) -%}
    {{ return(adapter.dispatch('to_integer', 'salesos')(column)) }}
{%- endmacro %}

{% macro duckdb__to_integer(column) -%}
    case
        when regexp_full_match(trim({{ column }}), '[+-]?[0-9]+(\.0*)?')
            then try_cast(try_cast(trim({{ column }}) as numeric(38, 6)) as bigint)
    end
{%- endmacro %}

{% macro spark__to_integer(column) -%}
    case
        when trim({{ column }}) rlike '^[+-]?[0-9]{1,18}(\\.0*)?$'
            then cast(cast(trim({{ column }}) as decimal(38, 6)) as bigint)
    end
{%- endmacro %}

{% macro default__to_integer(column) -%}
    case
        when trim({{ column }}) ~ '^[+-]?[0-9]{1,18}(\.0*)?$'
            then cast(cast(trim({{ column }}) as numeric(38, 6)) as bigint)
    end
{%- endmacro %}


{# A SQL string literal for a Python/Jinja value, quotes escaped. #}
{% macro sql_string(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}


{# The numeric type used for amounts and rates in the models: numeric(28,6) on every adapter. #}
{% macro numeric_type() -%}
    {{ dbt.type_numeric() }}
{%- endmacro %}


{# Text, for casts (`varchar`; Spark's `string`: it takes varchar only with a length). #}
{% macro string_type() -%}
    {{ return(adapter.dispatch('string_type', 'salesos')()) }}
{%- endmacro %}

{% macro default__string_type() -%}
    varchar
{%- endmacro %}

{% macro spark__string_type() -%}
    string
{%- endmacro %}


{# Double precision, for ratios (win rate, attainment). #}
{% macro float_type() -%}
    {{ return(adapter.dispatch('float_type', 'salesos')()) }}
{%- endmacro %}

{% macro default__float_type() -%}
    double precision
{%- endmacro %}

{% macro spark__float_type() -%}
    double
{%- endmacro %}
