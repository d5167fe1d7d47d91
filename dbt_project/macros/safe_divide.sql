{#
  safe_divide(numerator, denominator) -> DOUBLE, null when the denominator is 0 or null.
#}
{% macro safe_divide(numerator, denominator) -%}
    (cast({{ numerator }} as {{ nightjar.type_double() }}) / nullif(cast({{ denominator }} as {{ nightjar.type_double() }}), 0))
{%- endmacro %}
