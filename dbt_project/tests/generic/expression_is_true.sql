{#
    A boolean SQL expression holds on every row (rows where it is false or null fail). On a column,
    the expression may refer to the column by name; an optional `where` narrows the rows checked.

        data_tests:
          - expression_is_true:
              arguments:
                expression: "weighted_amount <= amount"
#}
{% test expression_is_true(model, expression, column_name=none) %}
    select *
    from {{ model }}
    where not coalesce(({{ expression }}), false)
{% endtest %}
