{#
    Incremental nights. The loader (salesos/extract/load.py) applies only the difference of each
    export to its raw table and lists every key it inserted, updated or deleted in raw._changes
    (run_id, table_name, id, change), which holds the latest load only. An incremental model rebuilds
    the rows of those keys and nothing else. The run id is var run_id (passed by salesos), else the
    latest load in raw._loads. Without one (a warehouse loaded before incremental loads existed)
    every key counts as changed, which is slow but right.
#}

{% macro load_run_id() -%}
    {%- set run_id = var('run_id', none) -%}
    {%- if run_id is not none -%}
        {{ return(run_id | string) }}
    {%- endif -%}
    {%- if execute -%}
        {%- set loads = adapter.get_relation(database=target.database, schema=var('raw_schema', 'raw'), identifier='_loads') -%}
        {%- if loads is not none -%}
            {%- set result = run_query('select run_id from ' ~ loads ~ ' order by loaded_at desc limit 1') -%}
            {%- if result and result.rows | length > 0 -%}
                {{ return(result.rows[0][0]) }}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{#
    SQL boolean: key_expr is a key of raw.<table> that the latest load inserted, updated or deleted
    (always true when the load's changes are unknown).
#}
{% macro changed_in_load(table, key_expr) -%}
    {%- set run_id = salesos.incremental_load_run_id(table) -%}
    {%- if run_id is none -%}
        (1 = 1)
    {%- else -%}
        ({{ key_expr }} in (
            select {{ salesos.clean_string("changes.id") }} from {{ var('raw_schema', 'raw') }}._changes as changes
            where changes.table_name = {{ salesos.sql_string(table) }} and changes.run_id = {{ salesos.sql_string(run_id) }}
        ))
    {%- endif -%}
{%- endmacro %}

{# The latest load's run id when it applied only the difference to raw.<table>; none when it replaced the
   table wholesale or the load is not known (then everything counts as changed). #}
{% macro incremental_load_run_id(table) -%}
    {%- set run_id = salesos.load_run_id() -%}
    {%- if run_id is none or salesos.loaded_in_full(table, run_id) -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(run_id) }}
{%- endmacro %}

{# Whether the load run_id replaced raw.<table> wholesale (or its changes are not known). #}
{% macro loaded_in_full(table, run_id) -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set raw = var('raw_schema', 'raw') -%}
    {%- set changes = adapter.get_relation(database=target.database, schema=raw, identifier='_changes') -%}
    {%- if changes is none -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set result = run_query(
        'select count(*) from ' ~ raw ~ '._loads where run_id = ' ~ salesos.sql_string(run_id)
        ~ ' and table_name = ' ~ salesos.sql_string(table) ~ " and coalesce(load_mode, 'full') = 'full'"
    ) -%}
    {{ return(result.rows[0][0] > 0) }}
{%- endmacro %}

{#
    How the incremental models are materialized: incremental (delete+insert, with pruning post-hooks) where
    the adapter can delete rows. Spark's local tables are Parquet, which takes no DELETE (Delta or Iceberg
    would, but their jars do not ship with pyspark): there those models are tables rebuilt whole each night,
    and the pruning post-hooks (`can_delete_rows()`) have nothing to prune.
#}
{% macro incremental_materialization() -%}
    {{ return(adapter.dispatch('incremental_materialization', 'salesos')()) }}
{%- endmacro %}

{% macro default__incremental_materialization() -%}
    {{ return('incremental') }}
{%- endmacro %}

{% macro spark__incremental_materialization() -%}
    {{ return('table') }}
{%- endmacro %}

{# Whether the incremental models' pruning hooks (delete from {{ this }} ...) run: see incremental_materialization. #}
{% macro can_delete_rows() -%}
    {{ return(adapter.dispatch('can_delete_rows', 'salesos')()) }}
{%- endmacro %}

{% macro default__can_delete_rows() -%}
    {{ return(true) }}
{%- endmacro %}

{% macro spark__can_delete_rows() -%}
    {{ return(false) }}
{%- endmacro %}
