-- mart_rep_performance counts exactly the deals of fct_opportunities closed on or before as_of, in
-- the month of their close date: won/lost counts and won/lost amounts agree per owner and month, and
-- the mart has no row with closed deals that fct_opportunities does not have (and vice versa).
-- Returns the owner-months that disagree.
with from_fct as (

    select
        owner_id,
        close_fiscal_month as fiscal_month,
        count(case when status = 'won' then 1 end) as won_count,
        count(case when status = 'lost' then 1 end) as lost_count,
        coalesce(sum(case when status = 'won' then amount end), 0) as won_amount,
        coalesce(sum(case when status = 'lost' then amount end), 0) as lost_amount
    from {{ ref('fct_opportunities') }}
    where is_closed and close_date <= {{ as_of() }}
    group by owner_id, close_fiscal_month

),

from_mart as (

    select
        owner_id,
        fiscal_month,
        won_count,
        lost_count,
        won_amount,
        lost_amount
    from {{ ref('mart_rep_performance') }}
    where won_count + lost_count > 0

)

select
    from_fct.owner_id as fct_owner_id,
    from_mart.owner_id as mart_owner_id,
    from_fct.fiscal_month as fct_fiscal_month,
    from_mart.fiscal_month as mart_fiscal_month,
    from_fct.won_count as fct_won_count,
    from_mart.won_count as mart_won_count,
    from_fct.lost_count as fct_lost_count,
    from_mart.lost_count as mart_lost_count,
    from_fct.won_amount as fct_won_amount,
    from_mart.won_amount as mart_won_amount,
    from_fct.lost_amount as fct_lost_amount,
    from_mart.lost_amount as mart_lost_amount
from from_fct
full outer join from_mart
    on
        from_fct.owner_id = from_mart.owner_id
        and from_fct.fiscal_month = from_mart.fiscal_month
where
    from_fct.owner_id is null
    or from_mart.owner_id is null
    or from_fct.won_count <> from_mart.won_count
    or from_fct.lost_count <> from_mart.lost_count
    or abs(from_fct.won_amount - from_mart.won_amount) > 0.01
    or abs(from_fct.lost_amount - from_mart.lost_amount) > 0.01
