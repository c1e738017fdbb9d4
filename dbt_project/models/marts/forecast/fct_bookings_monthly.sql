-- One row per series (level x series_key) and calendar month: THE monthly bookings series that the
-- forecaster trains on and the accuracy marts score against. Bookings = won amount (reporting currency)
-- by month of close_date, close dates on or before as_of. Dense: every month from the series' first
-- booking month to the month of as_of, zero months included. is_complete: the month ended on or
-- before as_of.
with bookings as (

    select * from {{ ref('int_forecast__bookings_by_series') }}

),

series as (

    select
        series_level,
        series_key,
        max(series_name) as series_name,
        min(month_start) as first_month
    from bookings
    group by series_level, series_key

),

months as (

    select date_month as month_start
    from {{ date_series('(select min(first_month) from series)', month_start(as_of()), 'month') }} as spine

),

dense as (

    select
        series.series_level,
        series.series_key,
        series.series_name,
        months.month_start,
        coalesce(bookings.bookings, 0) as bookings,
        coalesce(bookings.won_count, 0) as won_count
    from series
    inner join months
        on series.first_month <= months.month_start
    left join bookings
        on
            series.series_level = bookings.series_level
            and series.series_key = bookings.series_key
            and months.month_start = bookings.month_start

)

select
    series_level || ':' || series_key as series_id,
    series_level as level,
    series_key,
    series_name,
    month_start,
    cast(bookings as {{ numeric_type() }}) as bookings,
    cast(won_count as integer) as won_count,
    {{ add_days(add_months('month_start', 1), -1) }} <= {{ as_of() }} as is_complete
from dense
