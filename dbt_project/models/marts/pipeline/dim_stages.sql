-- One row per stage name: whether a deal in it is open, closed, won, its funnel rank and which source
-- decided each (int_stages__resolved), for BI tools that group or order by stage.
select
    stage_name,
    is_open,
    is_closed,
    is_won,
    stage_rank,
    is_ranked,
    flags_source,
    rank_source,
    default_probability_pct,
    forecast_category,
    is_active,
    is_in_data
from {{ ref('int_stages__resolved') }}
