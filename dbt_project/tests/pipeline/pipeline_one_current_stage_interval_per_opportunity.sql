-- fct_opportunity_stage_history: every opportunity has exactly one current interval, and its
-- intervals are numbered 1..n without gaps. Returns the opportunities that break this.
select
    opportunity_id,
    count(*) as interval_count,
    max(interval_number) as max_interval_number,
    sum(case when is_current then 1 else 0 end) as current_count
from {{ ref('fct_opportunity_stage_history') }}
group by opportunity_id
having
    sum(case when is_current then 1 else 0 end) <> 1
    or max(interval_number) <> count(*)
