{#
  value_between: the column lies in [min_value, max_value] (nulls pass; test them with
  not_null). Used for rates (0..1), scores (1..5) and non-negative money (min 0).
  Small tolerance for floating-point rounding.
#}
{% test value_between(model, column_name, min_value=None, max_value=None, tolerance=0.000000001) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null
  and (
    {%- if min_value is not none %} {{ column_name }} < {{ min_value }} - {{ tolerance }}{% else %} false{% endif %}
    or
    {%- if max_value is not none %} {{ column_name }} > {{ max_value }} + {{ tolerance }}{% else %} false{% endif %}
  )
{% endtest %}
