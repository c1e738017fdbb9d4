-- One row per currency and rate period: the rate applies from valid_from up to the day before the
-- next rate of the same currency (valid_to null = still valid). A rate without valid_from applies
-- from the beginning of time. When one currency has two rates from the same day, the later row of
-- the file wins. Rates for the reporting currency are ignored: it always converts at 1.
with rates as (

    select
        currency_iso_code,
        rate,
        _row_number,
        coalesce(valid_from, cast('1900-01-01' as date)) as valid_from
    from {{ ref('stg_sales_ops__fx_rates') }}
    where
        currency_iso_code is not null
        and currency_iso_code <> {{ reporting_currency() }}
        and rate is not null

),

deduplicated as (

    select
        currency_iso_code,
        valid_from,
        rate,
        row_number() over (
            partition by currency_iso_code, valid_from
            order by _row_number desc
        ) as row_rank
    from rates

),

periods as (

    select
        currency_iso_code,
        valid_from,
        rate,
        lead(valid_from) over (
            partition by currency_iso_code
            order by valid_from
        ) as next_valid_from
    from deduplicated
    where row_rank = 1

)

select
    currency_iso_code,
    valid_from,
    rate,
    {{ add_days('next_valid_from', -1) }} as valid_to
from periods
