{#
    The currency rule, written once: an amount in the reporting currency (var reporting_currency; a deal
    without a currency is in it) converts at 1; any other at the rate in force on the deal's close date
    (int_fx_rates__valid_periods: valid_from up to valid_to, valid_to null = still valid). No rate in force:
    null (is_fx_missing), never a guess.
#}

{# Join condition: the row of `rates` (an alias of int_fx_rates__valid_periods) in force for `currency` on `on_date`. #}
{% macro fx_rate_in_force(rates, currency, on_date) -%}
    {{ currency }} = {{ rates }}.currency_iso_code
    and {{ on_date }} >= {{ rates }}.valid_from
    and ({{ rates }}.valid_to is null or {{ on_date }} <= {{ rates }}.valid_to)
{%- endmacro %}

{# The rate to multiply by: 1 in the reporting currency, else `rate` (the joined rate in force). #}
{% macro fx_rate(currency, rate) -%}
    case
        when coalesce({{ currency }}, {{ salesos.reporting_currency() }}) = {{ salesos.reporting_currency() }} then 1
        else {{ rate }}
    end
{%- endmacro %}
