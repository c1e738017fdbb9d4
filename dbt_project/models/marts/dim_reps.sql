-- One row per user (rep) of User.csv, with the manager chain, team, region, segment and tenure at
-- as_of. The chain follows ManagerId up to five levels above the rep.
{%- set band_names = (var('segment_bands') or []) | map(attribute='name') | map('string') | list %}
{%- set band_list = "'" ~ (band_names | map('replace', "'", "''") | join("', '")) ~ "'" %}

with {{ import_ctes(users='int_users__enriched', opportunities='int_opportunities__converted') }},

segment_counts as (

    select
        owner_id,
        segment,
        row_number() over (
            partition by owner_id
            order by count(*) desc, segment
        ) as segment_rank
    from opportunities
    where owner_id is not null
    group by owner_id, segment

),

chain as (

    select
        users.user_id,
        concat_ws(
            ' > ',
            manager_5.user_name,
            manager_4.user_name,
            manager_3.user_name,
            manager_2.user_name,
            manager_1.user_name
        ) as manager_chain,
        case
            when manager_1.user_id is null then 0
            when manager_2.user_id is null then 1
            when manager_3.user_id is null then 2
            when manager_4.user_id is null then 3
            when manager_5.user_id is null then 4
            else 5
        end as manager_depth
    from users
    left join users as manager_1
        on users.manager_id = manager_1.user_id
    left join users as manager_2
        on manager_1.manager_id = manager_2.user_id
    left join users as manager_3
        on manager_2.manager_id = manager_3.user_id
    left join users as manager_4
        on manager_3.manager_id = manager_4.user_id
    left join users as manager_5
        on manager_4.manager_id = manager_5.user_id

)

select
    users.user_id as rep_id,
    users.user_name as rep_name,
    users.email,
    users.manager_id,
    users.manager_name,
    nullif(chain.manager_chain, '') as manager_chain,
    chain.manager_depth,
    users.team_id,
    users.team_name,
    users.region,
    users.department,
    users.user_role_name,
    case
        when users.department in ({{ band_list }}) then users.department
        when segment_counts.segment is not null then segment_counts.segment
        else {{ unknown_segment() }}
    end as segment,
    case
        when users.department in ({{ band_list }}) then 'department'
        when segment_counts.segment is not null then 'opportunities'
        else 'unknown'
    end as segment_source,
    users.hire_date,
    users.is_active,
    case
        when users.hire_date <= {{ as_of() }}
            then
                ({{ date_part_int('year', as_of()) }} - {{ date_part_int('year', 'users.hire_date') }}) * 12
                + {{ date_part_int('month', as_of()) }} - {{ date_part_int('month', 'users.hire_date') }}
                - case
                    when {{ date_part_int('day', as_of()) }} < {{ date_part_int('day', 'users.hire_date') }}
                        then 1
                    else 0
                end
    end as tenure_months
from users
left join chain
    on users.user_id = chain.user_id
left join segment_counts
    on
        users.user_id = segment_counts.owner_id
        and segment_counts.segment_rank = 1
