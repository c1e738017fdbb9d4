{#
    dbt's `unique`, checked where tonight's load can have broken it. On an incremental night the loader
    applied only the difference of each export and listed the keys it inserted, updated or deleted in
    raw._changes; every other row is as it was in the published warehouse, whose build passed this test.
    So only the rows whose key is among those changed keys of `raw_tables` are grouped: every row with
    such a key, old or new, so a new row that repeats an old key is still caught. After a full load of
    any of the tables, with --full-refresh, or when the load is unknown, every row is checked. For a
    column keyed by the raw tables' Ids (staging, and incremental models rebuilt by changed key).

        data_tests:
          - unique_in_load:
              arguments:
                raw_tables: [tasks, events]
#}
{% test unique_in_load(model, column_name, raw_tables) %}
    select
        {{ column_name }} as unique_field,
        count(*) as n_records
    from {{ model }}
    where
        {{ column_name }} is not null
        {%- if not flags.FULL_REFRESH %}
        and (
            {%- for table in raw_tables %}
            {{ salesos.changed_in_load(table, column_name) }}{% if not loop.last %} or{% endif %}
            {%- endfor %}
        )
        {%- endif %}
    group by {{ column_name }}
    having count(*) > 1
{% endtest %}
