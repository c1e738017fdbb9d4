{#
    Custom CRM fields (`*__c`, e.g. `competitor__c`) are kept unchanged in staging. The raw tables
    keep whatever custom columns the export had, so the list is read from the warehouse when the
    model runs: this renders `, "competitor__c", "tier__c"` (one per line) (nothing when there are none, and
    nothing at parse time). A `*__c` field the contract declares (`declared`, the source's columns) is not one
    of them: its staging model stages (or leaves out) it as the contract says.
#}
{% macro custom_columns(relation, declared=[]) -%}
    {%- if execute -%}
        {%- set columns = adapter.get_columns_in_relation(relation) -%}
        {%- for column in columns | sort(attribute='name') -%}
            {%- if (column.name | lower).endswith('__c') and (column.name | lower) not in declared %}
    , {{ adapter.quote(column.name) }}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
