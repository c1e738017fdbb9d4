{#
    Join condition of two relations on the same key columns (a grain such as owner x fiscal month):
    equal_keys('a', 'b', ['owner_id', 'fiscal_month']) -> a.owner_id = b.owner_id and a.fiscal_month = b.fiscal_month.
    The grain is named once per model, not spelled out again in each join.
#}
{% macro equal_keys(left, right, columns) -%}
    {%- for column in columns -%}
        {% if not loop.first %} and {% endif %}{{ left }}.{{ column }} = {{ right }}.{{ column }}
    {%- endfor -%}
{%- endmacro %}
