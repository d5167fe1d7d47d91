{#
  Custom schemas are used exactly as given (DESIGN §3): `staging`, `intermediate`, `marts`,
  not `<target_schema>_staging`. Nodes without a custom schema land in the target schema.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
