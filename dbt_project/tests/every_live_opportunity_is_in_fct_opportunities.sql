-- fct_opportunities has every staged opportunity that is not deleted and was created on or before
-- as_of, and nothing else. Returns the opportunity ids on one side only.
with expected as (

    select opportunity_id
    from {{ ref('stg_crm__opportunities') }}
    where
        not is_deleted
        and (created_at is null or cast(created_at as date) <= {{ as_of() }})

),

actual as (

    select opportunity_id from {{ ref('fct_opportunities') }}

)

select
    coalesce(expected.opportunity_id, actual.opportunity_id) as opportunity_id,
    expected.opportunity_id is not null as is_expected,
    actual.opportunity_id is not null as is_in_fct
from expected
full outer join actual
    on expected.opportunity_id = actual.opportunity_id
where expected.opportunity_id is null or actual.opportunity_id is null
