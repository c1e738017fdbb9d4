{#
    Settings and helpers of the people marts (quota attainment, lead funnel, activity, commissions,
    scorecard). Every setting is a dbt var with the default below: pass it with --vars (or add it to
    dbt_project.yml / config/salesos.yml) to change it. Nothing here reads the wall clock.
#}

{# Minutes of selling time counted for one completed call / one completed email (Task.TaskSubtype). #}
{% macro people_minutes_per_call() -%}
    {{ var('people_minutes_per_call', 10) | float }}
{%- endmacro %}

{% macro people_minutes_per_email() -%}
    {{ var('people_minutes_per_email', 5) | float }}
{%- endmacro %}

{# Working hours in a week, the denominator of the time-spent-selling share. #}
{% macro people_working_hours_per_week() -%}
    {{ var('people_working_hours_per_week', 40) | float }}
{%- endmacro %}

{#
    Event types that are internal (not customer-facing). Every other non-empty Event.Type is
    customer-facing (in the sample exports: Meeting and Demo); an event without a type is not counted.
#}
{% macro people_internal_event_types() -%}
    {%- set types = var('people_internal_event_types', ['Internal', 'Training', 'Personal', 'Out of Office']) -%}
    ({% for t in types %}{{ salesos.sql_string(t) }}{% if not loop.last %}, {% endif %}{% endfor %})
{%- endmacro %}

{# Task statuses of tasks not done yet: such a call or email is not counted as an activity. #}
{% macro people_open_task_statuses() -%}
    {%- set statuses = var('people_open_task_statuses', ['Not Started', 'In Progress', 'Waiting on someone else', 'Deferred', 'Open']) -%}
    ({% for s in statuses %}{{ salesos.sql_string(s) }}{% if not loop.last %}, {% endif %}{% endfor %})
{%- endmacro %}

{# Monday of the ISO week of a date, as a date. #}
{% macro people_week_start(date_expr) -%}
    cast({{ dbt.date_trunc('week', date_expr) }} as date)
{%- endmacro %}

{# Hours (fractional) from one timestamp to a later one. #}
{% macro people_hours_between(from_ts, to_ts) -%}
    (cast({{ dbt.datediff(from_ts, to_ts, 'second') }} as {{ salesos.float_type() }}) / 3600.0)
{%- endmacro %}

{# First month of the fiscal quarter / fiscal year of a month start date. #}
{% macro people_fiscal_quarter_start(month_expr) -%}
    {{ salesos.add_months(month_expr, '(-1 * mod(' ~ salesos.fiscal_month_of_year(month_expr) ~ ' - 1, 3))') }}
{%- endmacro %}

{% macro people_fiscal_year_start(month_expr) -%}
    {{ salesos.add_months(month_expr, '(1 - ' ~ salesos.fiscal_month_of_year(month_expr) ~ ')') }}
{%- endmacro %}

{# Salesforce key prefixes: a WhoId of a lead, a WhatId of an opportunity. #}
{% macro people_is_lead_id(id_expr) -%}
    (coalesce(substr({{ id_expr }}, 1, 3), '') = '00Q')
{%- endmacro %}

{% macro people_is_opportunity_id(id_expr) -%}
    (coalesce(substr({{ id_expr }}, 1, 3), '') = '006')
{%- endmacro %}

{# Calls, emails and meetings among activity rows (int_people__activities), in a grouped select. #}
{% macro people_activity_counts() -%}
    count(case when activity_type = 'call' then 1 end) as call_count,
    count(case when activity_type = 'email' then 1 end) as email_count,
    count(case when activity_type = 'meeting' then 1 end) as meeting_count
{%- endmacro %}
