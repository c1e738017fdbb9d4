{#
    The team of the day: the row of int_users__assignment_history (`assignments`) in force on `on_date`.
    An assignment holds from valid_from (null: since before any record) to valid_to (exclusive; null: still
    in force), and a user's rows never overlap, so a left join on this condition finds at most one row.
    Which date is the fact's is each model's (docs/metrics.md, "Credited to the team of the day"): a closed
    deal's close date (int_opportunities__converted), a quota's month (int_quotas__resolved), a rep-month's
    first day (mart_rep_performance, mart_sales_velocity, mart_lead_funnel), a pipeline snapshot's date
    (int_forecast__call_pipeline).
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

{#
    The attribution columns of a fact, after join_owner_and_assignment: team_id, team_name and region of the
    team of the day (the one rule: a fact counts in the team its owner was in on the fact's date), then
    current_team_id, current_team_name and current_region (the owner's today, for a reader who wants today's
    tree; current=false leaves them out). Missing names read as the marts' 'No team' and 'Unassigned'.
#}
{% macro attribution_columns(current=true) -%}
    {{ team_of_the_day('team_id') }} as team_id,
    coalesce({{ team_of_the_day('team_name') }}, {{ no_team_name() }}) as team_name,
    coalesce({{ team_of_the_day('region') }}, {{ unassigned_region() }}) as region
    {%- if current %},
    owners.team_id as current_team_id,
    coalesce(owners.team_name, {{ no_team_name() }}) as current_team_name,
    coalesce(owners.region, {{ unassigned_region() }}) as current_region
    {%- endif %}
{%- endmacro %}
