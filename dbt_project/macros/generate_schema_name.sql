{#
    Custom schemas are used as they are: `+schema: staging` builds into `staging`, not
    `<target schema>_staging`. Models without a custom schema go to the target's schema.
    var schema_prefix (empty by default) puts one night's schemas apart: on the spark target a night builds
    into `n_<run>_staging`, `n_<run>_marts`, ... and publishing switches views onto them
    (salesos/warehouse/spark.py).
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ var('schema_prefix', '') }}{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
