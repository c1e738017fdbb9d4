{#
    A model's import CTEs, one per upstream model, each `select *` of it and nothing else:
        with {{ import_ctes(users='stg_crm__users', roles='stg_crm__user_roles') }},
    renders `users as (select * from <stg_crm__users>), roles as (select * from <stg_crm__user_roles>)`,
    in the order given (the name of each CTE is the argument's name). An import that filters or picks
    columns is written out in the model as its own CTE.
#}
{% macro import_ctes() -%}
    {%- for name, model in kwargs.items() %}
{{ name }} as (

    select * from {{ ref(model) }}

){{ ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}
