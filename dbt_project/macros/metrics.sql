{#
    The one rule for every rate and average of the marts (win rate by count and by amount, attainment,
    coverage, conversion, share, error ratios, deal size...): numerator / denominator in double precision,
    null when the denominator is not positive (no closed deals, a zero quota, nothing left to cover: "no
    rate", not 0 and not an error; a share of a negative whole has no meaning either).
#}
{% macro ratio(numerator, denominator) -%}
    case
        when ({{ denominator }}) > 0
            then cast(({{ numerator }}) as {{ salesos.float_type() }}) / cast(({{ denominator }}) as {{ salesos.float_type() }})
    end
{%- endmacro %}

{#
    A group's win rates by count and by amount, from its won_/lost_ counts and amounts: the one definition
    of the win rate (won over closed = won + lost; open deals never count).
#}
{% macro win_rates(won_count='won_count', lost_count='lost_count', won_amount='won_amount',
                   lost_amount='lost_amount') -%}
    {{ salesos.ratio(won_count, won_count ~ ' + ' ~ lost_count) }} as win_rate,
    {{ salesos.ratio(won_amount, won_amount ~ ' + ' ~ lost_amount) }} as win_rate_amount
{%- endmacro %}

{#
    The accuracy of a forecast over scored rows, one definition for the machine forecasts and the reps'
    calls (aggregates; use in a grouped select): WAPE = sum |error| / sum |actual|; MAPE = mean absolute
    percentage error over rows with actual > 0; bias = sum(forecast - actual) / sum(actual) (positive =
    over-forecast).
#}
{% macro accuracy_metrics(forecast, actual='actual', abs_error='abs_error', abs_pct_error='abs_pct_error') -%}
    {{ salesos.ratio('sum(' ~ abs_error ~ ')', 'sum(abs(' ~ actual ~ '))') }} as wape,
    avg(case when {{ actual }} > 0 then {{ abs_pct_error }} end) as mape,
    {{ salesos.ratio('sum(' ~ forecast ~ ' - ' ~ actual ~ ')', 'sum(' ~ actual ~ ')') }} as bias
{%- endmacro %}
