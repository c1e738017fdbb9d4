-- One row per day, from the earliest date in the data (deal created or closed, quota month) through
-- as_of + 365 days, with calendar and fiscal periods.
with bounds as (

    select min(first_date) as first_date
    from (
        select min(created_date) as first_date from {{ ref('fct_opportunities') }}
        union all
        select min(close_date) as first_date from {{ ref('fct_opportunities') }}
        union all
        select min(quota_month) as first_date from {{ ref('int_quotas__resolved') }}
        union all
        select {{ as_of() }} as first_date
    ) as candidates

),

days as (

    select date_day
    from {{ date_series(
        '(select ' ~ month_start('first_date') ~ ' from bounds)',
        add_days(as_of(), 365),
        'day'
    ) }} as spine

)

select
    date_day,
    {{ date_part_int('year', 'date_day') }} as calendar_year,
    {{ date_part_int('quarter', 'date_day') }} as calendar_quarter,
    {{ date_part_int('month', 'date_day') }} as calendar_month,
    {{ date_part_int('day', 'date_day') }} as day_of_month,
    {{ date_part_int('isodow', 'date_day') }} as day_of_week,
    {{ month_start('date_day') }} as month_start_date,
    {{ fiscal_year('date_day') }} as fiscal_year,
    {{ fiscal_quarter('date_day') }} as fiscal_quarter,
    {{ fiscal_month_of_year('date_day') }} as fiscal_month_of_year,
    date_day <= {{ as_of() }} as is_on_or_before_as_of
from days
