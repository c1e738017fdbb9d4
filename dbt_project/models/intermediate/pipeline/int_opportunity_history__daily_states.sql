{{
    config(
        materialized=incremental_materialization(),
        incremental_strategy='delete+insert',
        unique_key=['snapshot_date', 'opportunity_id'],
        pre_hook=["{{ stage_rules_hook('create') }}", "{{ stage_rules_hook('reset') }}"],
        post_hook=[
            "{% if can_delete_rows() %}delete from {{ this }} where snapshot_date < {{ pipeline_snapshot_window_start() }} or snapshot_date > {{ as_of() }}{% endif %}",
            "{% if can_delete_rows() %}delete from {{ this }} where opportunity_id not in (select opportunity_id from {{ ref('int_opportunity_history__changes') }}){% endif %}",
            "{{ stage_rules_hook('clear') }}",
            "{{ stage_rules_hook('record') }}"
        ]
    )
}}

-- depends_on: {{ ref('int_stages__resolved') }}
-- One row per snapshot day and opportunity whose state at the end of that day is an open stage: the
-- last OpportunityHistory row of the deal written on or before the day (history is append-only, so a
-- past day's state never changes). Only what the history says; fct_pipeline_snapshots adds the deal's
-- current attributes. First run: every day of the snapshot window (var pipeline_snapshot_months, 13,
-- ending at as_of). Later runs add only the days after the latest day built, up to as_of, and never
-- rewrite a past day; the post-hooks keep the window (drop days before its start or after as_of) and
-- drop deals that are no longer live, so the table equals a full build as long as history is only
-- appended. When the stage rules (int_stages__resolved: flags and ranks) differ from the ones the
-- table was built with, the pre-hook empties it and the night rebuilds it whole (stage_rules_hook).
-- --full-refresh after changing the window, after history rows were back-dated or deleted, or after a
-- deal was undeleted.
{%- set window_start = pipeline_snapshot_window_start() %}
{%- if is_incremental() %}
    {%- set next_day = '(select ' ~ add_days('max(snapshot_date)', 1) ~ ' from ' ~ this ~ ')' %}
    {%- set first_day = 'greatest(coalesce(' ~ next_day ~ ', ' ~ window_start ~ '), ' ~ window_start ~ ')' %}
{%- else %}
    {%- set first_day = window_start %}
{%- endif %}

with changes as (

    select * from {{ ref('int_opportunity_history__changes') }}
    where change_date <= {{ as_of() }}

),

days as (

    select date_day as snapshot_date
    from {{ date_series(first_day, as_of(), 'day') }} as spine

),

end_of_day as (

    -- the last history row of each opportunity and day
    select
        *,
        row_number() over (
            partition by opportunity_id, change_date
            order by change_number desc
        ) as day_rank
    from changes

),

states as (

    select
        opportunity_id,
        change_date as valid_from,
        stage_name,
        stage_rank,
        is_closed_stage,
        forecast_category,
        close_date,
        amount_local,
        probability_pct,
        lead(change_date) over (partition by opportunity_id order by change_date) as valid_until
    from end_of_day
    where day_rank = 1

)

select
    days.snapshot_date,
    states.opportunity_id,
    states.stage_name,
    states.stage_rank,
    states.forecast_category,
    states.close_date,
    states.amount_local,
    states.probability_pct
from days
inner join states
    on
        days.snapshot_date >= states.valid_from
        -- two plain inequalities (no OR) let the database use a range join
        and days.snapshot_date < coalesce(states.valid_until, cast('9999-12-31' as date))
where not states.is_closed_stage
