{#
  attribution_models() -> list of the attribution model names of fct_attribution, in report
  order; fct_channel_daily has a pair of columns per name.
#}
{% macro attribution_models() -%}
    {{ return(['first_touch', 'last_touch', 'last_non_direct_touch', 'linear', 'time_decay', 'position_based']) }}
{%- endmacro %}
