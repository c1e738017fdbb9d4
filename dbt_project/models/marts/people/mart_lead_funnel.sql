-- One row per lead month (month of the lead's creation), lead source and lead owner, for every
-- combination with at least one lead that is not deleted and was created on or before as_of. Team and
-- region are the owner's on the lead month's first day (the team of the day); current_team_name and
-- current_region the owner's today.
with {{ import_ctes(leads='int_people__lead_responses', owners='int_users__enriched',
                    assignments='int_users__assignment_history') }},

aggregated as (

    select
        lead_month,
        lead_source,
        owner_id,
        count(*) as lead_count,
        count(case when is_contacted then 1 end) as contacted_count,
        count(case when is_converted then 1 end) as converted_count,
        percentile_cont(0.5) within group (order by response_hours) as median_response_hours,
        percentile_cont(0.9) within group (order by response_hours) as p90_response_hours,
        avg(cast(days_to_convert as {{ float_type() }})) as avg_days_to_convert
    from leads
    group by lead_month, lead_source, owner_id

)

select
    aggregated.lead_month,
    {{ fiscal_quarter('aggregated.lead_month') }} as fiscal_quarter,
    {{ fiscal_year('aggregated.lead_month') }} as fiscal_year,
    aggregated.lead_source,
    aggregated.owner_id,
    owners.user_name as owner_name,
    {{ attribution_columns() }},
    aggregated.lead_count,
    aggregated.contacted_count,
    {{ ratio('aggregated.contacted_count', 'aggregated.lead_count') }} as contact_rate,
    cast(aggregated.median_response_hours as {{ float_type() }}) as median_response_hours,
    cast(aggregated.p90_response_hours as {{ float_type() }}) as p90_response_hours,
    aggregated.converted_count,
    {{ ratio('aggregated.converted_count', 'aggregated.lead_count') }} as conversion_rate,
    aggregated.avg_days_to_convert
from aggregated
{{ join_owner_and_assignment('aggregated', 'aggregated.lead_month') }}
