{#
  Incremental strategy `replace_changed_users`, for the models keyed on stitched users
  (int_user_activity_daily, fct_sessions):

    {{ config(materialized='incremental', incremental_strategy='replace_changed_users',
              replaced_rows="<condition on a stored row (alias `stored`) and its user's `changed_from`>") }}

  A night changes each user of `user_change_points` (macros/user_change_points.sql) only
  from its `changed_from` on. The model's incremental SQL returns just the rows it
  recomputed; this strategy deletes the stored rows of those users that the recomputation
  replaces (`replaced_rows`, e.g. sessions that end less than the timeout before
  `changed_from`) and appends the new rows. The user's older rows stay where they are.

  Why not delete+insert on user_key: that needs the user's unchanged rows in the batch too,
  so a night would delete and re-append about a quarter of both tables (BENCHMARKS.md),
  which DuckDB then vacuums at the next checkpoint. And a user with nothing left to insert
  (its events moved to another user) must still lose its replaced rows, which
  delete+insert, driven by the batch's keys, cannot do.

  The change points are computed here a second time (the same SQL over the same,
  unchanged tables as the model's, so the same rows): a contracted model cannot pass them
  on as a column. `replaced_rows` is rendered when the project is parsed, so it may use
  pure macros (dbt.dateadd) and vars, not ref() or this.
#}
{% macro get_incremental_replace_changed_users_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set dest_cols_csv = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- set replaced_rows = config.get('replaced_rows') -%}
    {%- if not replaced_rows -%}
        {{ exceptions.raise_compiler_error("incremental_strategy 'replace_changed_users' needs the config 'replaced_rows' (a condition on a stored row and `changed_from`)") }}
    {%- endif -%}
    delete from {{ target }} as stored
    where exists (
        select 1
        from ({{ nightjar.user_change_points('_max_loaded_at') }}) as changes
        where changes.user_key = stored.user_key
          and ({{ replaced_rows }})
    );

    insert into {{ target }} ({{ dest_cols_csv }})
    select {{ dest_cols_csv }}
    from {{ source }};
{% endmacro %}
