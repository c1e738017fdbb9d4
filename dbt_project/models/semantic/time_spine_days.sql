-- The time spine of the semantic layer (MetricFlow): one row per day of dim_dates, with the fiscal
-- periods as custom granularities. A fiscal quarter or year is labelled by the fiscal year it belongs
-- to (named by the calendar year it ends in), so a label is unique across years.
with dates as (

    select * from {{ ref('dim_dates') }}

),

final as (

    select
        date_day,
        'FY' || cast(fiscal_year as varchar(4)) || '-Q' || cast(fiscal_quarter as varchar(1)) as fiscal_quarter,
        'FY' || cast(fiscal_year as varchar(4)) as fiscal_year
    from dates

)

select * from final
