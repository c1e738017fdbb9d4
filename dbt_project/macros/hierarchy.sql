{#
    The sales hierarchy (var('hierarchy') in dbt_project.yml, read by Python through salesos/hierarchy.py):
    every model that reports by level fans its fact out with fan_out_levels, so the level names, the
    company member and the key of a missing member are written once.
#}

{# The level entries of var('hierarchy'), top to bottom; `names` picks some (in hierarchy order). #}
{% macro hierarchy_levels(names=none) -%}
    {%- set all_levels = var('hierarchy')['levels'] -%}
    {%- set known = all_levels | map(attribute='level') | list -%}
    {%- if names is not none -%}
        {%- for name in names if name not in known -%}
            {{ exceptions.raise_compiler_error("unknown hierarchy level '" ~ name ~ "'; var hierarchy has " ~ known | join(', ')) }}
        {%- endfor -%}
    {%- endif -%}
    {{ return(all_levels if names is none else all_levels | selectattr('level', 'in', names) | list) }}
{%- endmacro %}

{# The names of the levels as a SQL list, for `level in (...)`. #}
{% macro hierarchy_level_list(names=none) -%}
    ({% for entry in salesos.hierarchy_levels(names) %}{{ salesos.sql_string(entry['level']) }}{% if not loop.last %}, {% endif %}{% endfor %})
{%- endmacro %}

{# The SQL string of one level's name: hierarchy_level('rep') -> 'rep' (fails on a name not in the var). #}
{% macro hierarchy_level(name) -%}
    {{ salesos.sql_string(salesos.hierarchy_levels([name])[0]['level']) }}
{%- endmacro %}

{# Key (and name) of a member the fact does not know, e.g. the team of a rep without a manager. #}
{% macro hierarchy_missing_member() -%}
    {{ salesos.sql_string(var('hierarchy')['missing_member']) }}
{%- endmacro %}

{# The key of the one member of the top level (the whole company). #}
{% macro hierarchy_company_key() -%}
    {{ salesos.sql_string(var('hierarchy')['company_key']) }}
{%- endmacro %}

{#
    The rows of `relation` once per level (UNION ALL): a column `level_as` with the level's name, `key_as`
    with the member's key (the level's key_column as text, the missing member when null; the company key
    at the top), optionally `name_as` with its display name (name_column, else the key), then `columns`
    as they are. `dimensions`: hierarchy columns to carry (owner_id, team_id, region...): each is kept at
    the level it belongs to, and all of them at the finest level fanned out (its rows are the fact's own
    rows); elsewhere null. Aggregate the result by level and key to get each member's totals.
#}
{% macro fan_out_levels(relation, columns, levels=none, level_as='series_level', key_as='series_key', name_as=none, dimensions=[]) -%}
    {%- set chosen = salesos.hierarchy_levels(levels) -%}
    {%- set missing = salesos.hierarchy_missing_member() -%}
    {%- for entry in chosen %}
    {%- set is_finest = loop.last %}
    select
        {{ salesos.sql_string(entry['level']) }} as {{ level_as }},
        {%- if entry.get('key_column') %}
        coalesce(cast({{ entry['key_column'] }} as {{ salesos.string_type() }}), {{ missing }}) as {{ key_as }},
        {%- else %}
        {{ salesos.hierarchy_company_key() }} as {{ key_as }},
        {%- endif %}
        {%- if name_as %}
        {%- if entry.get('key_column') %}
        coalesce(cast({{ entry.get('name_column') or entry['key_column'] }} as {{ salesos.string_type() }}), cast({{ entry['key_column'] }} as {{ salesos.string_type() }}), {{ missing }}) as {{ name_as }},
        {%- else %}
        {{ salesos.sql_string(var('hierarchy')['company_name']) }} as {{ name_as }},
        {%- endif %}
        {%- endif %}
        {%- for dim in dimensions %}
        {%- if dim in [entry.get('key_column'), entry.get('name_column')] or is_finest %}
        {{ dim }},
        {%- else %}
        cast(null as {{ salesos.string_type() }}) as {{ dim }},
        {%- endif %}
        {%- endfor %}
        {%- for column in columns %}
        {{ column }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from {{ relation }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
{%- endmacro %}
