{#
  retention_day_zero_is_one: every cohort retains 100% of itself in period 0
  (a user's first active day/week defines the cohort). `period_column` is day_number or
  week_number; the test is attached to the rate column.
#}
{% test retention_day_zero_is_one(model, column_name, period_column) %}
select *
from {{ model }}
where {{ period_column }} = 0
  and ({{ column_name }} is null or abs({{ column_name }} - 1.0) > 0.000000001)
{% endtest %}
