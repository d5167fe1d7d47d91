{#
  add_days(n, date_expr) -> DATE (dbt.dateadd returns a timestamp on some engines).
#}
{% macro add_days(n, date_expr) -%}
    cast({{ dbt.dateadd('day', n, date_expr) }} as date)
{%- endmacro %}
