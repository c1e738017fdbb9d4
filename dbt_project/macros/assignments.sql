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

{#
    The two joins every team-of-the-day model makes: the owner today (`owners`, int_users__enriched) and the
    owner's assignment in force on `on_date` (`assignments`, int_users__assignment_history).
#}
{% macro join_owner_and_assignment(fact, on_date) -%}
    left join owners
        on {{ fact }}.owner_id = owners.user_id
    left join assignments
        on
            {{ fact }}.owner_id = assignments.rep_id
            and {{ assignment_in_force('assignments', on_date) }}
{%- endmacro %}

{#
    An attribute (team_id, team_name, region) of the owner's team of the day: the assignment's, or where no
    assignment covers the day (a gap in user_assignments.csv) the owner's today. After join_owner_and_assignment.
#}
{% macro team_of_the_day(attribute) -%}
    case when assignments.rep_id is null then owners.{{ attribute }} else assignments.{{ attribute }} end
{%- endmacro %}
