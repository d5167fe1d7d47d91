{#
  iso_week_start(date_expr) -> DATE of the Monday starting the ISO week.
  Portable arithmetic (dbt.date_trunc('week') starts on Sunday on some engines):
  1970-01-05 was a Monday, so Monday = date - ((days since 1970-01-05) mod 7).
#}
{% macro iso_week_start(date_expr) -%}
    {{ nightjar.add_days(
        "-1 * (((" ~ dbt.datediff("cast('1970-01-05' as date)", date_expr, 'day') ~ ") % 7 + 7) % 7)",
        date_expr
    ) }}
{%- endmacro %}
