-- mart_pipeline: for every snapshot day after the first, the open pipeline equals the previous
-- snapshot day's plus the waterfall of the period (to the cent). Returns the days that do not add up.
with days as (

    select
        snapshot_date,
        previous_snapshot_date,
        sum(open_amount) as open_amount,
        sum(
            created_amount + other_added_amount + amount_change_amount
            - won_amount - lost_amount - other_removed_amount
        ) as net_change
    from {{ ref('mart_pipeline') }}
    group by snapshot_date, previous_snapshot_date

)

select
    days.snapshot_date,
    days.open_amount,
    previous_days.open_amount as previous_open_amount,
    days.net_change
from days
inner join days as previous_days
    on days.previous_snapshot_date = previous_days.snapshot_date
where abs(previous_days.open_amount + days.net_change - days.open_amount) > 0.01
