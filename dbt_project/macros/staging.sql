{#
    The select list of a raw table's staging model: renames and casts only, as the export contract
    (salesos/contract.py, `Field.stage`) declares them. `python -m salesos.contract --write-dbt-sources`
    writes them into the source's yml as each column's meta `staging` ({as, cast, scale, empty_as}), in
    the contract's order; this renders, per column that has one,
        <cast>('<column>'[, scale])  as <as>        (coalesce(..., <empty_as>) when given)
    or the column as it is when it has no cast (the load columns, not renamed), then the export's custom *__c
    columns (custom_columns). At parse time (no graph yet) it renders `*`.
#}
{% macro stage_columns(source_name, table_name) -%}
    {%- set relation = source(source_name, table_name) -%}
    {%- if not execute -%}
        {{ return('*') }}
    {%- endif -%}
    {%- set node = graph.sources.get('source.' ~ project_name ~ '.' ~ source_name ~ '.' ~ table_name) -%}
    {%- set selects = [] -%}
    {%- for column in (node.columns.values() if node else []) -%}
        {%- set stage = (column.config or {}).get('meta', {}).get('staging') or column.meta.get('staging') -%}
        {%- if stage -%}
            {%- do selects.append(salesos.staged_column(column.name, stage)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not selects -%}
        {{ exceptions.raise_compiler_error(
            "source " ~ source_name ~ "." ~ table_name ~ " has no column with a `staging` meta: run "
            ~ "python -m salesos.contract --write-dbt-sources") }}
    {%- endif %}
        {{ selects | join(',\n        ') }}
        {{- salesos.custom_columns(relation, node.columns.keys() | map('lower') | list) }}
{%- endmacro %}


{# One staged column: its cast (macros/casting.sql) and its staging name. #}
{% macro staged_column(name, stage) -%}
    {%- set casts = {
        'clean_string': salesos.clean_string, 'clean_code': salesos.clean_code, 'to_boolean': salesos.to_boolean,
        'to_number': salesos.to_number, 'to_integer': salesos.to_integer, 'to_date': salesos.to_date,
        'to_timestamp': salesos.to_timestamp,
    } -%}
    {%- if not stage.get('cast') -%}
        {%- set sql = name -%}
    {%- elif stage.cast not in casts -%}
        {{ exceptions.raise_compiler_error("column " ~ name ~ ": unknown staging cast " ~ stage.cast) }}
    {%- elif stage.get('scale') is not none -%}
        {%- set sql = casts[stage.cast](name, stage.scale) -%}
    {%- else -%}
        {%- set sql = casts[stage.cast](name) -%}
    {%- endif -%}
    {%- if stage.get('empty_as') -%}
        {%- set sql = 'coalesce(' ~ sql ~ ', ' ~ stage.empty_as ~ ')' -%}
    {%- endif -%}
    {{ sql }}{{ (' as ' ~ stage['as']) if sql != stage['as'] }}
{%- endmacro %}
