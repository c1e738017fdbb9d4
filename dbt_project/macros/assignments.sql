{#
    The team of the day: the row of int_users__assignment_history (`assignments`) in force on `on_date`.
    An assignment holds from valid_from (null: since before any record) to valid_to (exclusive; null: still
    in force), and a user's rows never overlap, so a left join on this condition finds at most one row.
    Used by int_opportunities__converted (a deal's close date) and mart_quota_attainment (a quota month).
#}
{% macro assignment_in_force(assignments, on_date) -%}
    ({{ assignments }}.valid_from is null or {{ on_date }} >= {{ assignments }}.valid_from)
    and ({{ assignments }}.valid_to is null or {{ on_date }} < {{ assignments }}.valid_to)
{%- endmacro %}
