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
