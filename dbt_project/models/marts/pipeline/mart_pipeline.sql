-- One row per snapshot day, owner, stage and forecast category: the open pipeline at the end of the
-- day and the waterfall of the period since the previous snapshot day of this mart. Snapshot days:
-- every day of the last var pipeline_daily_days (90) days up to as_of, and the month-ends of
-- fct_pipeline_snapshots before that. Deals still open at the end of the day are counted under their
-- stage and forecast category of that day; deals that left the pipeline in the period (won, lost,
-- other) under those of the previous snapshot day.
with {{ import_ctes(snapshots='fct_pipeline_snapshots', changes='int_opportunity_history__changes') }},

all_days as (

    select date_day as snapshot_date
    from {{ date_series('(select min(snapshot_date) from snapshots)', as_of(), 'day') }} as spine

),

selected_days as (

    select
        snapshot_date,
        lag(snapshot_date) over (order by snapshot_date) as previous_snapshot_date
    from all_days
    where
        snapshot_date > {{ add_days(as_of(), '-' ~ pipeline_daily_days()) }}
        or {{ date_part_int('day', add_days('snapshot_date', 1)) }} = 1

),

{#- the deals open at the end of each snapshot day (current_rows) and of the snapshot day before it
    (previous_rows): the same rows of fct_pipeline_snapshots, joined on the one day or the other #}
{%- for cte, day_column in [('current_rows', 'snapshot_date'), ('previous_rows', 'previous_snapshot_date')] %}
    {{ cte }} as (

        select
            selected_days.snapshot_date,
            selected_days.previous_snapshot_date,
            snapshots.opportunity_id,
            snapshots.owner_id,
            snapshots.stage_name,
            snapshots.forecast_category,
            snapshots.created_date,
            snapshots.close_date,
            coalesce(snapshots.amount, 0) as amount,
            coalesce(snapshots.weighted_amount, 0) as weighted_amount
        from selected_days
        inner join snapshots
            on selected_days.{{ day_column }} = snapshots.snapshot_date

    ),
{% endfor %}
last_change_in_period as (

    -- how a deal that left the pipeline in the period stood at the end of the period
    select
        previous_rows.snapshot_date,
        previous_rows.opportunity_id,
        changes.is_closed_stage,
        changes.is_won_stage,
        row_number() over (
            partition by previous_rows.snapshot_date, previous_rows.opportunity_id
            order by changes.change_number desc
        ) as change_rank
    from previous_rows
    inner join changes
        on
            previous_rows.opportunity_id = changes.opportunity_id
            and previous_rows.previous_snapshot_date < changes.change_date
            and previous_rows.snapshot_date >= changes.change_date

),

movements as (

    -- deals open at the end of the day
    select
        current_rows.snapshot_date,
        current_rows.owner_id,
        current_rows.stage_name,
        current_rows.forecast_category,
        1 as open_count,
        current_rows.amount as open_amount,
        current_rows.weighted_amount,
        case
            when
                previous_rows.opportunity_id is null
                and current_rows.created_date > current_rows.previous_snapshot_date
                then current_rows.amount
            else 0
        end as created_amount,
        case
            when
                previous_rows.opportunity_id is null
                and current_rows.previous_snapshot_date is not null
                and (
                    current_rows.created_date is null
                    or current_rows.created_date <= current_rows.previous_snapshot_date
                )
                then current_rows.amount
            else 0
        end as other_added_amount,
        case when current_rows.close_date > previous_rows.close_date then current_rows.amount else 0 end
            as pushed_out_amount,
        case when current_rows.close_date < previous_rows.close_date then current_rows.amount else 0 end
            as pulled_in_amount,
        case
            when current_rows.close_date > previous_rows.close_date then 1 else 0
        end as pushed_out_count,
        case
            when current_rows.close_date < previous_rows.close_date then 1 else 0
        end as pulled_in_count,
        coalesce(current_rows.amount - previous_rows.amount, 0) as amount_change_amount,
        0 as won_count,
        0 as won_amount,
        0 as lost_count,
        0 as lost_amount,
        0 as other_removed_amount
    from current_rows
    left join previous_rows
        on
            current_rows.snapshot_date = previous_rows.snapshot_date
            and current_rows.opportunity_id = previous_rows.opportunity_id

    union all

    -- deals open at the previous snapshot day that left the pipeline in the period
    select
        previous_rows.snapshot_date,
        previous_rows.owner_id,
        previous_rows.stage_name,
        previous_rows.forecast_category,
        0 as open_count,
        0 as open_amount,
        0 as weighted_amount,
        0 as created_amount,
        0 as other_added_amount,
        0 as pushed_out_amount,
        0 as pulled_in_amount,
        0 as pushed_out_count,
        0 as pulled_in_count,
        0 as amount_change_amount,
        case when last_change.is_won_stage then 1 else 0 end as won_count,
        case when last_change.is_won_stage then previous_rows.amount else 0 end as won_amount,
        case when last_change.is_closed_stage and not last_change.is_won_stage then 1 else 0 end as lost_count,
        case
            when last_change.is_closed_stage and not last_change.is_won_stage then previous_rows.amount else 0
        end as lost_amount,
        case when coalesce(last_change.is_closed_stage, false) then 0 else previous_rows.amount end
            as other_removed_amount
    from previous_rows
    left join current_rows
        on
            previous_rows.snapshot_date = current_rows.snapshot_date
            and previous_rows.opportunity_id = current_rows.opportunity_id
    left join last_change_in_period as last_change
        on
            previous_rows.snapshot_date = last_change.snapshot_date
            and previous_rows.opportunity_id = last_change.opportunity_id
            and last_change.change_rank = 1
    where current_rows.opportunity_id is null

)

select
    movements.snapshot_date,
    selected_days.previous_snapshot_date,
    movements.owner_id,
    movements.stage_name,
    movements.forecast_category,
    sum(movements.open_count) as open_count,
    cast(sum(movements.open_amount) as {{ numeric_type() }}) as open_amount,
    cast(sum(movements.weighted_amount) as {{ numeric_type() }}) as weighted_amount,
    cast(sum(movements.created_amount) as {{ numeric_type() }}) as created_amount,
    cast(sum(movements.other_added_amount) as {{ numeric_type() }}) as other_added_amount,
    sum(movements.pushed_out_count) as pushed_out_count,
    cast(sum(movements.pushed_out_amount) as {{ numeric_type() }}) as pushed_out_amount,
    sum(movements.pulled_in_count) as pulled_in_count,
    cast(sum(movements.pulled_in_amount) as {{ numeric_type() }}) as pulled_in_amount,
    cast(sum(movements.amount_change_amount) as {{ numeric_type() }}) as amount_change_amount,
    sum(movements.won_count) as won_count,
    cast(sum(movements.won_amount) as {{ numeric_type() }}) as won_amount,
    sum(movements.lost_count) as lost_count,
    cast(sum(movements.lost_amount) as {{ numeric_type() }}) as lost_amount,
    cast(sum(movements.other_removed_amount) as {{ numeric_type() }}) as other_removed_amount
from movements
inner join selected_days
    on movements.snapshot_date = selected_days.snapshot_date
group by
    movements.snapshot_date,
    selected_days.previous_snapshot_date,
    movements.owner_id,
    movements.stage_name,
    movements.forecast_category
