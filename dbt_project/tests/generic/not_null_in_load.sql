{#
    dbt's `not_null`, checked on the rows tonight's load wrote. On an incremental night the other rows
    of raw.<raw_table> are as they were in the published warehouse, whose build passed this test, so only
    rows whose `_run_id` (the load that wrote the row) is tonight's are read. After a full load of the
    table, with --full-refresh, or when the load is unknown, every row is checked. For staging models
    that pass raw's `_run_id` through.

        data_tests:
          - not_null_in_load:
              arguments:
                raw_table: tasks
#}
{% test not_null_in_load(model, column_name, raw_table) %}
    {%- set run_id = salesos.incremental_load_run_id(raw_table) -%}
    select *
    from {{ model }}
    where
        {{ column_name }} is null
        {%- if not flags.FULL_REFRESH and run_id is not none %}
        and _run_id = {{ salesos.sql_string(run_id) }}
        {%- endif %}
{% endtest %}
