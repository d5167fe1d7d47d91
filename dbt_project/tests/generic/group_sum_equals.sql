{#
  group_sum_equals: per group of `group_by` (a list), sum(`column`) equals `expected`
  (an expression constant within the group, e.g. '1' or a per-order amount) within
  `tolerance`. Fails on each group where it does not; groups whose expected value is null
  are not checked.
#}
{% test group_sum_equals(model, column_name, group_by, expected, tolerance=0.000001) %}
select {{ group_by | join(', ') }}, sum({{ column_name }}) as actual, max({{ expected }}) as expected
from {{ model }}
group by {{ group_by | join(', ') }}
having abs(sum({{ column_name }}) - max({{ expected }})) > {{ tolerance }}
    or (sum({{ column_name }}) is null and max({{ expected }}) is not null)
{% endtest %}
