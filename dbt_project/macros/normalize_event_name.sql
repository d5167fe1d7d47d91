{#
  normalize_event_name(column): trim, lower, spaces and hyphens -> `_` (DESIGN §1.1).
  Portable: only trim/lower/replace.
#}
{% macro normalize_event_name(column) -%}
    replace(replace(lower(trim({{ column }})), ' ', '_'), '-', '_')
{%- endmacro %}
