{#
  Data tests proportional to the night (README "Nightly run"). dbt wraps the tested relation
  of every generic data test in get_where_subquery(); this override adds, on top of the
  test's own `where` config, the window [--event-time-start, --event-time-end) on the tested
  node's `event_time` column when the run has both flags. Portable: a timestamp comparison.
#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set window = none -%}
    {%- if execute and invocation_args_dict.get('event_time_start') and invocation_args_dict.get('event_time_end') -%}
        {#- the node under test: the model/source the test is attached to -#}
        {%- set tested_id = model.attached_node or (model.depends_on.nodes | first) -%}
        {%- set tested = graph.nodes.get(tested_id) or graph.sources.get(tested_id) -%}
        {%- set event_time = tested.config.get('event_time') if tested else none -%}
        {%- if event_time -%}
            {%- set window -%}
                {{ event_time }} >= cast('{{ invocation_args_dict['event_time_start'] }}' as {{ dbt.type_timestamp() }})
                and {{ event_time }} < cast('{{ invocation_args_dict['event_time_end'] }}' as {{ dbt.type_timestamp() }})
            {%- endset -%}
        {%- endif -%}
    {%- endif -%}
    {%- if where or window -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {% if where %}({{ where }}){% endif %}{% if where and window %} and {% endif %}{% if window %}({{ window }}){% endif %}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
