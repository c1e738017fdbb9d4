{#
    Business rules that come from the team's settings (dbt vars mirroring config/salesos.yml).
#}

{#
    Segment of an account from its number of employees: the band of var('segment_bands') whose
    min_employees is the largest not above the size. No size (or a size below every band) ->
    var('unknown_segment').
#}
{% macro segment_for_employees(employees_column) -%}
    {%- set bands = (var('segment_bands') or []) | sort(attribute='min_employees', reverse=true) -%}
    case
        {%- for band in bands %}
        when {{ employees_column }} >= {{ band['min_employees'] | int }} then {{ salesos.sql_string(band['name']) }}
        {%- endfor %}
        else {{ salesos.sql_string(var('unknown_segment')) }}
    end
{%- endmacro %}


{#
    Region of a user: User.Division (region_source = division) or the name of the user's role
    (region_source = role), renamed through var('region_map'); unmapped values are kept as they are,
    and a user with neither gets var('unassigned_region').
#}
{% macro region_for(division_column, role_name_column) -%}
    {%- set source = var('region_source') | string | lower -%}
    {%- if source == 'division' -%}
        {%- set raw = division_column -%}
    {%- elif source == 'role' -%}
        {%- set raw = role_name_column -%}
    {%- else -%}
        {{ exceptions.raise_compiler_error("var region_source must be 'division' or 'role', got '" ~ source ~ "'") }}
    {%- endif -%}
    {%- set mapping = var('region_map') or {} -%}
    coalesce(
        {%- if mapping | length > 0 %}
        case {{ raw }}
            {%- for key in mapping | sort %}
            when {{ salesos.sql_string(key) }} then {{ salesos.sql_string(mapping[key]) }}
            {%- endfor %}
            else {{ raw }}
        end,
        {%- else %}
        {{ raw }},
        {%- endif %}
        {{ salesos.unassigned_region() }}
    )
{%- endmacro %}

{% macro unassigned_region() -%}
    {{ salesos.sql_string(var('unassigned_region')) }}
{%- endmacro %}

{% macro unknown_segment() -%}
    {{ salesos.sql_string(var('unknown_segment')) }}
{%- endmacro %}

{% macro no_team_name() -%}
    {{ salesos.sql_string(var('no_team_name', 'No team')) }}
{%- endmacro %}

{% macro reporting_currency() -%}
    {{ salesos.sql_string(var('reporting_currency') | upper | trim) }}
{%- endmacro %}

{#
    The rep's attributes every rep-month mart shows, in this order: owner_id, the owner's name, then the
    team columns (team_columns). A deal moved between reps counts for its current owner, as exported.
#}
{% macro rep_attribute_columns(relation=none, current=false) -%}
    {%- set prefix = relation ~ '.' if relation else '' %}
    {{ prefix }}owner_id,
    {{ prefix }}owner_name,
    {{- team_columns(relation, current) }}
{%- endmacro %}

{#
    The attribution columns a fact carries, in this order: team_id, team_name and region of the team of the
    day (attribution_columns, macros/assignments.sql), and with current=true the owner's today,
    current_team_id, current_team_name and current_region. `relation` qualifies them.
#}
{% macro team_columns(relation=none, current=false) -%}
    {%- set prefix = relation ~ '.' if relation else '' -%}
    {%- set columns = ['team_id', 'team_name', 'region'] -%}
    {%- if current %}{% set columns = columns + ['current_team_id', 'current_team_name', 'current_region'] %}{% endif -%}
    {%- for column in columns %}
    {{ prefix }}{{ column }}{% if not loop.last %},{% endif %}
    {%- endfor %}
{%- endmacro %}

{# A deal's Probability (percent) as a fraction, clamped to 0-100 first (exports hold values outside it). #}
{% macro probability_fraction(pct_column) -%}
    case
        when {{ pct_column }} < 0 then 0
        when {{ pct_column }} > 100 then 100
        else {{ pct_column }}
    end / 100
{%- endmacro %}
