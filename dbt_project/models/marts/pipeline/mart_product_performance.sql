-- One row per fiscal month and product with at least one closed deal selling it (close date in the month
-- and on or before as_of): deals won and lost that had the product on a line, the product's line amounts
-- won (its bookings) and lost, and its win rates. Counts and amounts are additive over months: roll up by
-- summing them and recompute the rates (a deal selling two products counts once for each).
with lines as (

    select * from {{ ref('fct_opportunity_line_items') }}
    where
        is_closed
        and close_date <= {{ as_of() }}

),

grouped as (

    select
        close_fiscal_month as fiscal_month,
        product_id,
        product_name,
        product_family,
        count(distinct case when is_won then opportunity_id end) as won_count,
        count(distinct case when not is_won then opportunity_id end) as lost_count,
        cast(coalesce(sum(case when is_won then quantity end), 0) as {{ numeric_type() }}) as won_quantity,
        cast(coalesce(sum(case when is_won then amount end), 0) as {{ numeric_type() }}) as won_amount,
        cast(coalesce(sum(case when not is_won then amount end), 0) as {{ numeric_type() }}) as lost_amount
    from lines
    group by close_fiscal_month, product_id, product_name, product_family

),

final as (

    select
        fiscal_month,
        {{ fiscal_quarter('fiscal_month') }} as fiscal_quarter,
        {{ fiscal_year('fiscal_month') }} as fiscal_year,
        product_id,
        product_name,
        product_family,
        won_count,
        lost_count,
        won_count + lost_count as closed_count,
        won_quantity,
        won_amount,
        lost_amount,
        won_amount + lost_amount as closed_amount,
        {{ win_rates() }}
    from grouped

)

select * from final
