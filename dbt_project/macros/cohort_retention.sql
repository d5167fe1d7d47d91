{#
  cohort_retention(cohort_column, period_column, period_days, max_period): the whole query of
  fct_retention_daily (period_days=1: the cohort is the first active date) and
  fct_retention_weekly (period_days=7: the ISO week, from Monday, of the first active date),
  over int_user_activity_daily. One row per cohort and period 0..max_period that has
  started by the last active date; the rates are defined in README "Retention".
  int_user_activity_daily is read by each step rather than through one shared CTE: DuckDB
  materialises a CTE with several consumers (~25% of the weekly model's time at scale M).
  Portable SQL.
#}
{% macro cohort_retention(cohort_column, period_column, period_days, max_period) %}
{%- if period_days == 1 -%}
    {%- set cohort_of_first_date = 'min(activity_date)' -%}
    {%- set period_of_activity = dbt.datediff('first_seen.' ~ cohort_column, 'activity.activity_date', 'day') -%}
    {%- set days_since_cohort = 'period_numbers.' ~ period_column -%}
{%- elif period_days == 7 -%}
    {%- set cohort_of_first_date = nightjar.iso_week_start('min(activity_date)') -%}
    {%- set period_of_activity = 'cast(floor(' ~ dbt.datediff('first_seen.' ~ cohort_column, nightjar.iso_week_start('activity.activity_date'), 'day') ~ ' / 7) as ' ~ dbt.type_bigint() ~ ')' -%}
    {%- set days_since_cohort = '7 * period_numbers.' ~ period_column -%}
{%- else -%}
    {{ exceptions.raise_compiler_error("cohort_retention: period_days must be 1 (days) or 7 (ISO weeks), got " ~ period_days) }}
{%- endif -%}
with first_seen as (

    select
        user_key,
        {{ cohort_of_first_date }} as {{ cohort_column }}
    from {{ ref('int_user_activity_daily') }}
    group by user_key

),

last_day as (

    select max(activity_date) as last_activity_date from {{ ref('int_user_activity_daily') }}

),

cohorts as (

    select {{ cohort_column }}, count(*) as cohort_size
    from first_seen
    group by {{ cohort_column }}

),

period_numbers as (

    select generated_number - 1 as {{ period_column }}
    from ({{ dbt.generate_series(max_period + 1) }}) as series

),

grid as (

    select cohorts.{{ cohort_column }}, period_numbers.{{ period_column }}, cohorts.cohort_size
    from cohorts
    cross join period_numbers
    cross join last_day
    where {{ nightjar.add_days(days_since_cohort, 'cohorts.' ~ cohort_column) }} <= last_day.last_activity_date

),

user_periods as (

    -- a user is active in a period when it has an active date in it (one row per user-day
    -- already, so only weeks need the distinct)
    select {{ 'distinct' if period_days != 1 }}
        first_seen.{{ cohort_column }},
        activity.user_key,
        {{ period_of_activity }} as {{ period_column }}
    from {{ ref('int_user_activity_daily') }} as activity
    inner join first_seen
        on activity.user_key = first_seen.user_key

),

exact_active as (

    select {{ cohort_column }}, {{ period_column }}, count(distinct user_key) as active_users
    from user_periods
    where {{ period_column }} <= {{ max_period }}
    group by {{ cohort_column }}, {{ period_column }}

),

user_last_period as (

    select {{ cohort_column }}, user_key, max({{ period_column }}) as last_period
    from user_periods
    group by {{ cohort_column }}, user_key

),

unbounded_active as (

    select grid.{{ cohort_column }}, grid.{{ period_column }}, count(*) as active_users_on_or_after
    from grid
    inner join user_last_period
        on grid.{{ cohort_column }} = user_last_period.{{ cohort_column }}
        and user_last_period.last_period >= grid.{{ period_column }}
    group by grid.{{ cohort_column }}, grid.{{ period_column }}

)

select
    cast(grid.{{ cohort_column }} as date) as {{ cohort_column }},
    cast(grid.{{ period_column }} as {{ dbt.type_bigint() }}) as {{ period_column }},
    cast(grid.cohort_size as {{ dbt.type_bigint() }}) as cohort_size,
    cast(coalesce(exact_active.active_users, 0) as {{ dbt.type_bigint() }}) as active_users,
    cast({{ nightjar.safe_divide('coalesce(exact_active.active_users, 0)', 'grid.cohort_size') }} as {{ nightjar.type_double() }}) as retention_rate,
    cast(coalesce(unbounded_active.active_users_on_or_after, 0) as {{ dbt.type_bigint() }}) as active_users_on_or_after,
    cast({{ nightjar.safe_divide('coalesce(unbounded_active.active_users_on_or_after, 0)', 'grid.cohort_size') }} as {{ nightjar.type_double() }}) as unbounded_retention_rate
from grid
left join exact_active
    on grid.{{ cohort_column }} = exact_active.{{ cohort_column }}
    and grid.{{ period_column }} = exact_active.{{ period_column }}
left join unbounded_active
    on grid.{{ cohort_column }} = unbounded_active.{{ cohort_column }}
    and grid.{{ period_column }} = unbounded_active.{{ period_column }}
{% endmacro %}
