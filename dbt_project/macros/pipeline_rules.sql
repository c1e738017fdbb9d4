{#
    Pipeline rules (models/marts/pipeline, models/intermediate/pipeline). Settings are dbt vars with
    defaults here (they are not in dbt_project.yml / config/salesos.yml yet):
      - pipeline_qualified_stage_rank: stage_rank from which a deal counts as qualified (2 =
        Qualification with the default stage_order).
      - pipeline_snapshot_months: months of daily snapshots kept in fct_pipeline_snapshots.
      - pipeline_daily_days: days of daily rows in mart_pipeline (month-ends before that).
    Whether a stage is closed or won is never decided here from its name: int_stages__resolved
    resolves every stage from the CRM's flags first and the settings (stage_order,
    closed_won_stages, closed_lost_stages) last, and the models join to it.
#}

{#
    The settings' stage list as a relation: stage_name, settings_position (1-based position in var
    stage_order, null for a closed stage not listed there), is_closed, is_won. A stage listed in
    stage_order is open unless it is in var closed_won_stages or closed_lost_stages (salesos.settings
    .settings_stage_flags reads the settings the same way). Use as `from {{ pipeline_settings_stages() }} as s`.
#}
{% macro pipeline_settings_stages() -%}
    {%- set won = var('closed_won_stages', []) or [] -%}
    {%- set lost = var('closed_lost_stages', []) or [] -%}
    {%- set order = var('stage_order') or [] -%}
    {%- set seen = [] -%}
    (
        {%- for stage in order + won + lost %}
        {%- if stage not in seen %}
        {%- do seen.append(stage) %}
        select
            cast({{ salesos.sql_string(stage) }} as {{ salesos.string_type() }}) as stage_name,
            {{ (order.index(stage) + 1) if stage in order else 'cast(null as integer)' }} as settings_position,
            {{ 'true' if (stage in won or stage in lost) else 'false' }} as is_closed,
            {{ 'true' if stage in won else 'false' }} as is_won
        union all
        {%- endif %}
        {%- endfor %}
        select
            cast(null as {{ salesos.string_type() }}) as stage_name,
            cast(null as integer) as settings_position,
            cast(null as boolean) as is_closed,
            cast(null as boolean) as is_won
        where 1 = 0
    )
{%- endmacro %}

{#
    The closed/won flags one source's rows give each stage name, as a relation (stage_name, is_closed,
    is_won): only stages whose rows all agree, so a source that contradicts itself decides nothing.
    Used for the history's and the opportunities' own IsClosed/IsWon in int_stages__resolved.
#}
{% macro pipeline_stage_flags_agreed(relation) -%}
    (
        select
            stage_name,
            bool_and(is_closed) as is_closed,
            bool_and(is_closed and coalesce(is_won, false)) as is_won
        from {{ relation }}
        where stage_name is not null and is_closed is not null
        group by stage_name
        having
            bool_and(is_closed) = bool_or(is_closed)
            and bool_and(is_closed and coalesce(is_won, false)) = bool_or(is_closed and coalesce(is_won, false))
    )
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

{#
    Stage rules and the incremental pipeline tables (int_opportunity_history__daily_states,
    fct_opportunity_stage_history, fct_pipeline_snapshots). Their rows carry stage flags and ranks from
    int_stages__resolved, which follows the data (an OpportunityStage export that adds a stage or
    changes its SortOrder or flags) as well as the settings. Each of those models records the
    fingerprint of the stage rules it was built with in its own table intermediate._stage_rules__<model>
    (one table per model: the models build in parallel); when the rules differ on a later night, its
    pre-hook empties the model's table, so that night rebuilds it whole: the result equals a full build
    whatever changed. stage_rules_hook(step) is the SQL of each hook: create (the record table) and
    reset (pre-hooks), clear and record (post-hooks).
#}
{% macro stage_rules_table() -%}
    {{ api.Relation.create(database=this.database, schema=var('schema_prefix', '') ~ 'intermediate', identifier='_stage_rules__' ~ this.identifier) }}
{%- endmacro %}

{% macro stage_rules_fingerprint() -%}
    (
        select md5(coalesce(string_agg(
            stages.stage_name || '|' || coalesce(cast(stages.is_closed as {{ salesos.string_type() }}), '?') || '|'
            || coalesce(cast(stages.is_won as {{ salesos.string_type() }}), '?') || '|' || cast(stages.stage_rank as {{ salesos.string_type() }}),
            ';' order by stages.stage_name
        ), ''))
        from {{ ref('int_stages__resolved') }} as stages
    )
{%- endmacro %}

{% macro stage_rules_hook(step) -%}
    {{ return(adapter.dispatch('stage_rules_hook', 'salesos')(step)) }}
{%- endmacro %}

{# Spark: these models are tables rebuilt whole every night (macro incremental_materialization), so no
   rule change can leave rows of an earlier build behind and there is nothing to record. #}
{% macro spark__stage_rules_hook(step) -%}
    select 1 as nothing_to_reset
{%- endmacro %}

{% macro default__stage_rules_hook(step) -%}
    {%- set table = salesos.stage_rules_table() -%}
    {%- if step == 'create' -%}
        create table if not exists {{ table }} (fingerprint varchar)
    {%- elif step == 'reset' and is_incremental() -%}
        delete from {{ this }}
        where coalesce((select max(built.fingerprint) from {{ table }} as built), '') <> {{ salesos.stage_rules_fingerprint() }}
    {%- elif step == 'clear' -%}
        delete from {{ table }}
    {%- elif step == 'record' -%}
        insert into {{ table }} (fingerprint) select {{ salesos.stage_rules_fingerprint() }}
    {%- else -%}
        select 1 as nothing_to_reset
    {%- endif -%}
{%- endmacro %}


{#
    The config of those three incremental models, written once: delete+insert on unique_key (a table rebuilt
    whole where the target cannot delete rows: incremental_materialization, can_delete_rows), the stage
    rules' pre-hooks (create, reset), then the model's own post-hooks `prune` (the deletes that keep the
    table equal to a full build) and the stage rules' post-hooks (clear, record). Hooks are SQL strings
    with Jinja, rendered when the model runs.
#}
{% macro stage_rules_incremental(unique_key, prune=[]) -%}
    {#- A target that cannot delete rows (Spark's Parquet tables) rebuilds these models whole: no prune. -#}
    {%- set guarded = [] -%}
    {%- for hook in prune -%}
        {%- do guarded.append("{% if can_delete_rows() %}" ~ hook ~ "{% endif %}") -%}
    {%- endfor %}
    {{ config(
        materialized=incremental_materialization(),
        incremental_strategy='delete+insert',
        unique_key=unique_key,
        pre_hook=["{{ stage_rules_hook('create') }}", "{{ stage_rules_hook('reset') }}"],
        post_hook=guarded + ["{{ stage_rules_hook('clear') }}", "{{ stage_rules_hook('record') }}"]
    ) }}
{%- endmacro %}
