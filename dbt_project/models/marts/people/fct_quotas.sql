-- One row per rep (owner_id) and quota month: the resolved quotas (int_quotas__resolved), credited to the
-- team the rep was in on the quota month's first day (team_id, team_name, region: the team of the day) with
-- today's team as current_*. The fact the semantic layer's quota metrics read (a mart, so the BI role may).
select
    owner_id,
    quota_month,
    {{ fiscal_quarter('quota_month') }} as fiscal_quarter,
    {{ fiscal_year('quota_month') }} as fiscal_year,
    {{ team_columns(current=true) }},
    cast(quota_amount as {{ numeric_type() }}) as quota_amount,
    quota_rows
from {{ ref('int_quotas__resolved') }}
