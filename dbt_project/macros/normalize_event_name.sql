{#
  normalize_event_name(column): trim, lower, spaces and hyphens -> `_` (DESIGN §1.1).
  Portable: only trim/lower/replace.
#}
{% macro normalize_event_name(column) -%}
    replace(replace(lower(trim({{ column }})), ' ', '_'), '-', '_')
{%- endmacro %}

{#
  safe_divide(numerator, denominator) -> DOUBLE, null when the denominator is 0 or null.
#}
{% macro safe_divide(numerator, denominator) -%}
    (cast({{ numerator }} as {{ nightjar.type_double() }}) / nullif(cast({{ denominator }} as {{ nightjar.type_double() }}), 0))
{%- endmacro %}

{#
  to_date(expr): the calendar date of a (UTC) timestamp, or a date expression.
#}
{% macro to_date(expr) -%}
    cast({{ expr }} as date)
{%- endmacro %}

{#
  add_days(n, date_expr) -> DATE (dbt.dateadd returns a timestamp on some engines).
#}
{% macro add_days(n, date_expr) -%}
    cast({{ dbt.dateadd('day', n, date_expr) }} as date)
{%- endmacro %}

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
