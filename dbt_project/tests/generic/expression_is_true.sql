{#
  expression_is_true: fails on every row where `expression` is not true.
  Optional `where` restricts the rows checked. Usable on a model or on a column.
#}
{% test expression_is_true(model, expression, column_name=None, where_clause=None) %}
select *
from {{ model }}
where not ({{ expression }})
{%- if where_clause %} and ({{ where_clause }}){% endif %}
{% endtest %}
