{#
  Data tests proportional to the night. dbt wraps the tested relation of every generic
  data test in get_where_subquery(); this override adds, on top of the test's own `where`
  config, a time window when the run has one:

    dbt build --event-time-start '2026-11-22 02:00:00' --event-time-end '2026-11-26 02:00:00'

  Then a test of a model (or source) that declares an `event_time` column checks only the
  rows whose event_time lies in [start, end). The big tables declare their load-time
  watermark as event_time (stg_events, int_events_stitched, int_identity_map,
  int_user_activity_daily, fct_sessions, raw.events), so a nightly run tests the rows its
  loads added or touched instead of the whole history; small tables (marts per day or
  cohort, shop tables) have no event_time and are always tested in full.
  Without the flags (full refreshes, CI, a plain `dbt build`) every row is tested.

  Why the event-time flags and not a var: a `--vars` value that differs from the previous
  invocation's makes dbt re-parse the whole project (~2 CPU-s here, BENCHMARKS.md), while
  the event-time flags do not touch parsing. dbt itself reads them only for microbatch
  models, and this project has none. The nightly arguments are built in one place:
  dagster_project/transform/nightly.py (nightly_dbt_args).
  Portable: the window is a plain timestamp comparison.
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
