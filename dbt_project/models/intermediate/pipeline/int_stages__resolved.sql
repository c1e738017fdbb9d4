-- A table, not a view: every pipeline model joins to it.
{{ config(materialized='table') }}

-- One row per stage name the CRM or the settings name: whether a deal in that stage is closed and
-- won, and its funnel rank, with the source that decided each. Never from the stage's name. Flags,
-- first source that knows the stage wins:
--   1. opportunity_stages: the OpportunityStage export (the stage picklist), by ApiName, else MasterLabel;
--   2. opportunity_history: IsClosed/IsWon of the history rows in that stage, where the export carries them;
--   3. opportunity: IsClosed/IsWon of the Opportunity rows currently in that stage;
--   4. settings: closed_won_stages / closed_lost_stages, else open when listed in stage_order.
-- A data source whose rows disagree about a stage (some closed, some open) does not decide it.
-- Rank: the position by SortOrder when the export has any SortOrder, else the position in
-- stage_order; other stages rank after the ranked ones. A stage in the data that no source knows has
-- null flags (the validate step stops the run before that; a data test stops a build by hand).
with export_stages as (

    select
        *,
        case
            -- stages without a SortOrder sort last, so the ranked ones are 1..n
            when sort_order is not null then row_number() over (order by sort_order, _row_number)
        end as export_rank
    from {{ ref('stg_crm__opportunity_stages') }}
    where is_closed is not null

),

export_names as (

    -- each stage under both of its names: the API name first (priority 1), then the label
    {%- for name_column in ['stage_api_name', 'stage_label'] %}
        select
            {{ name_column }} as stage_name,
            {{ loop.index }} as name_priority,
            _row_number,
            is_closed,
            is_closed and coalesce(is_won, false) as is_won,
            export_rank,
            default_probability_pct,
            forecast_category,
            is_active
        from export_stages
        where {{ name_column }} is not null
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}

),

from_export as (

    -- a name that is one stage's ApiName and another's label means the ApiName's stage
    select * from (
        select
            *,
            row_number() over (partition by stage_name order by name_priority, _row_number) as name_pick
        from export_names
    ) as picked
    where name_pick = 1

),

from_history as (

    select * from {{ pipeline_stage_flags_agreed(ref('stg_crm__opportunity_histories')) }} as history_flags

),

from_opportunities as (

    select * from {{ pipeline_stage_flags_agreed(ref('stg_crm__opportunities')) }} as opportunity_flags

),

from_settings as (

    select * from {{ pipeline_settings_stages() }} as settings_stages

),

in_data as (

    select distinct stage_name from {{ ref('stg_crm__opportunities') }}
    where stage_name is not null and not is_deleted
    union
    select distinct stage_name from {{ ref('stg_crm__opportunity_histories') }}
    where stage_name is not null and not is_deleted

),

names as (

    select stage_name from from_export
    union
    select stage_name from in_data
    union
    select stage_name from from_settings

),

ranking as (

    -- ranks come from the export when it has any SortOrder, else from stage_order
    select count(export_rank) > 0 as export_ranks from export_stages

),

resolved as (

    select
        names.stage_name,
        from_export.default_probability_pct,
        from_export.forecast_category,
        from_export.is_active,
        coalesce(from_export.is_closed, from_history.is_closed, from_opportunities.is_closed, from_settings.is_closed)
            as is_closed,
        coalesce(from_export.is_won, from_history.is_won, from_opportunities.is_won, from_settings.is_won) as is_won,
        case
            when from_export.stage_name is not null then 'opportunity_stages'
            when from_history.stage_name is not null then 'opportunity_history'
            when from_opportunities.stage_name is not null then 'opportunity'
            when from_settings.stage_name is not null then 'settings'
        end as flags_source,
        case
            when ranking.export_ranks then from_export.export_rank
            else from_settings.settings_position
        end as ranked_position,
        case
            when ranking.export_ranks and from_export.export_rank is not null then 'opportunity_stages'
            when not ranking.export_ranks and from_settings.settings_position is not null then 'settings'
        end as rank_source,
        in_data.stage_name is not null as is_in_data
    from names
    cross join ranking
    left join from_export
        on names.stage_name = from_export.stage_name
    left join from_history
        on names.stage_name = from_history.stage_name
    left join from_opportunities
        on names.stage_name = from_opportunities.stage_name
    left join from_settings
        on names.stage_name = from_settings.stage_name
    left join in_data
        on names.stage_name = in_data.stage_name

),

last_rank as (

    select coalesce(max(ranked_position), 0) as ranked_count from resolved

)

select
    resolved.stage_name,
    resolved.is_closed,
    resolved.is_won,
    resolved.flags_source,
    resolved.default_probability_pct,
    resolved.forecast_category,
    resolved.is_active,
    resolved.is_in_data,
    cast(coalesce(resolved.ranked_position, last_rank.ranked_count + 1) as integer) as stage_rank,
    not resolved.is_closed as is_open,
    resolved.rank_source is not null as is_ranked,
    coalesce(resolved.rank_source, 'unranked') as rank_source
from resolved
cross join last_rank
