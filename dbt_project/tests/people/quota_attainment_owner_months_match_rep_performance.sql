-- mart_quota_attainment (level owner, period month) and mart_rep_performance agree on quota, bookings
-- and attainment for every owner-month they share; returns the owner-months that disagree.
select
    rep.owner_id,
    rep.fiscal_month,
    rep.quota_amount as rep_quota_amount,
    qa.quota_amount as qa_quota_amount,
    rep.won_amount as rep_won_amount,
    qa.booked_amount as qa_booked_amount
from {{ ref('mart_rep_performance') }} as rep
inner join {{ ref('mart_quota_attainment') }} as qa
    on
        rep.owner_id = qa.owner_id
        and rep.fiscal_month = qa.period_start
        and qa.level = {{ hierarchy_level('rep') }}
        and qa.period_type = 'month'
where
    abs(rep.quota_amount - qa.quota_amount) > 0.01
    or abs(rep.won_amount - qa.booked_amount) > 0.01
    or (rep.attainment is null) <> (qa.attainment is null)
    or abs(coalesce(rep.attainment, 0) - coalesce(qa.attainment, 0)) > 0.000001
