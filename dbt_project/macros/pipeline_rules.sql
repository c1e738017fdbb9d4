{#
    Pipeline rules (models/marts/pipeline, models/intermediate/pipeline). Settings are dbt vars with
    defaults here (they are not in dbt_project.yml / config/salesos.yml yet):
      - pipeline_closed_stages: stage names that mean the deal is closed. OpportunityHistory has no
        IsClosed, so in the history a closed state is read from the stage name.
      - pipeline_qualified_stage_rank: stage_rank from which a deal counts as qualified (2 =
        Qualification with the default stage_order).
      - pipeline_snapshot_months: months of daily snapshots kept in fct_pipeline_snapshots.
      - pipeline_daily_days: days of daily rows in mart_pipeline (month-ends before that).
#}

{% macro pipeline_closed_stage_names() -%}
    {{ return(var('pipeline_closed_stages', ['Closed Won', 'Closed Lost'])) }}
{%- endmacro %}

{# SQL boolean: the stage column is a closed stage. #}
{% macro pipeline_is_closed_stage(stage_column) -%}
    ({{ stage_column }} in (
        {%- for s in salesos.pipeline_closed_stage_names() -%}
            {{ salesos.sql_string(s) }}{% if not loop.last %}, {% endif %}
        {%- endfor -%}
    ))
{%- endmacro %}

{# SQL boolean: the stage column is a winning closed stage (first closed stage name containing 'Won'). #}
{% macro pipeline_is_won_stage(stage_column) -%}
    ({{ stage_column }} in (
        {%- set won = [] -%}
        {%- for s in salesos.pipeline_closed_stage_names() if 'won' in (s | lower) -%}
            {%- do won.append(s) -%}
        {%- endfor -%}
        {%- for s in (won or ['Closed Won']) -%}
            {{ salesos.sql_string(s) }}{% if not loop.last %}, {% endif %}
        {%- endfor -%}
    ))
{%- endmacro %}

{% macro pipeline_qualified_stage_rank() -%}
    {{ var('pipeline_qualified_stage_rank', 2) | int }}
{%- endmacro %}

{% macro pipeline_snapshot_months() -%}
    {{ var('pipeline_snapshot_months', 13) | int }}
{%- endmacro %}

{% macro pipeline_daily_days() -%}
    {{ var('pipeline_daily_days', 90) | int }}
{%- endmacro %}

{#
    The open funnel stages (var stage_order without the closed stages) as a relation with columns
    stage_rank (the rank of stage_rank()) and stage_name. Use as `from {{ pipeline_funnel_stages() }} as s`.
#}
{% macro pipeline_funnel_stages() -%}
    {%- set closed = salesos.pipeline_closed_stage_names() -%}
    (
        {%- for stage in var('stage_order') or [] %}
        {%- if stage not in closed %}
        select {{ loop.index }} as stage_rank, {{ salesos.sql_string(stage) }} as stage_name
        union all
        {%- endif %}
        {%- endfor %}
        select null as stage_rank, null as stage_name where 1 = 0
    )
{%- endmacro %}

{# Median of an expression, as an aggregate (ordered-set aggregate: DuckDB and PostgreSQL). #}
{% macro pipeline_median(expr) -%}
    percentile_cont(0.5) within group (order by {{ expr }})
{%- endmacro %}

{# A date plus n months, as a date (project wrapper of dbt.dateadd). #}
{% macro pipeline_add_months(date_expr, n) -%}
    {{ salesos.add_months(date_expr, n) }}
{%- endmacro %}

{#
    First day of the history window of fct_pipeline_snapshots on a first (full) run: as_of minus
    var pipeline_snapshot_months months plus one day, or, when var pipeline_snapshot_days is set (unit
    tests, small warehouses), as_of minus that many days plus one.
#}
{% macro pipeline_snapshot_window_start() -%}
    {%- set days = var('pipeline_snapshot_days', none) -%}
    {%- if days is not none -%}
        {{ salesos.add_days(salesos.as_of(), 1 - (days | int)) }}
    {%- else -%}
        {{ salesos.add_days(salesos.pipeline_add_months(salesos.as_of(), '-' ~ salesos.pipeline_snapshot_months()), 1) }}
    {%- endif -%}
{%- endmacro %}
