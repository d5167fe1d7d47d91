{#
  Weekly retention (DESIGN §2). Cohort = ISO week (starting Monday) of a user_key's first
  non-bot event. retention_rate = share of the cohort active in week cohort_week +
  week_number (0..12); unbounded_retention_rate = share active in that week or any later
  one. Rows exist only for weeks that have started by the last day with events (the
  current week is partial).
#}
{% set max_week = var('retention_max_week') %}

{#- int_user_activity_daily is read directly by each step: a shared CTE with several
    consumers is materialised by the database (~25% of this model's time at scale M). The
    cohort week is the ISO week of the first active date. #}
with first_seen as (

    select
        user_key,
        {{ nightjar.iso_week_start('min(activity_date)') }} as cohort_week
    from {{ ref('int_user_activity_daily') }}
    group by user_key

),

last_day as (

    select max(activity_date) as last_activity_date from {{ ref('int_user_activity_daily') }}

),

cohorts as (

    select cohort_week, count(*) as cohort_size
    from first_seen
    group by cohort_week

),

week_numbers as (

    select generated_number - 1 as week_number
    from ({{ dbt.generate_series(max_week + 1) }}) as series

),

grid as (

    select cohorts.cohort_week, week_numbers.week_number, cohorts.cohort_size
    from cohorts
    cross join week_numbers
    cross join last_day
    where {{ nightjar.add_days('7 * week_numbers.week_number', 'cohorts.cohort_week') }} <= last_day.last_activity_date

),

user_weeks as (

    select distinct
        first_seen.cohort_week,
        activity.user_key,
        cast(floor({{ dbt.datediff('first_seen.cohort_week', nightjar.iso_week_start('activity.activity_date'), 'day') }} / 7) as {{ dbt.type_bigint() }}) as week_number
    from {{ ref('int_user_activity_daily') }} as activity
    inner join first_seen
        on activity.user_key = first_seen.user_key

),

exact_active as (

    select cohort_week, week_number, count(distinct user_key) as active_users
    from user_weeks
    where week_number <= {{ max_week }}
    group by cohort_week, week_number

),

user_last_week as (

    select cohort_week, user_key, max(week_number) as last_week_number
    from user_weeks
    group by cohort_week, user_key

),

unbounded_active as (

    select grid.cohort_week, grid.week_number, count(*) as active_users_on_or_after
    from grid
    inner join user_last_week
        on grid.cohort_week = user_last_week.cohort_week
        and user_last_week.last_week_number >= grid.week_number
    group by grid.cohort_week, grid.week_number

)

select
    cast(grid.cohort_week as date) as cohort_week,
    cast(grid.week_number as {{ dbt.type_bigint() }}) as week_number,
    cast(grid.cohort_size as {{ dbt.type_bigint() }}) as cohort_size,
    cast(coalesce(exact_active.active_users, 0) as {{ dbt.type_bigint() }}) as active_users,
    cast({{ nightjar.safe_divide('coalesce(exact_active.active_users, 0)', 'grid.cohort_size') }} as {{ nightjar.type_double() }}) as retention_rate,
    cast(coalesce(unbounded_active.active_users_on_or_after, 0) as {{ dbt.type_bigint() }}) as active_users_on_or_after,
    cast({{ nightjar.safe_divide('coalesce(unbounded_active.active_users_on_or_after, 0)', 'grid.cohort_size') }} as {{ nightjar.type_double() }}) as unbounded_retention_rate
from grid
left join exact_active
    on grid.cohort_week = exact_active.cohort_week
    and grid.week_number = exact_active.week_number
left join unbounded_active
    on grid.cohort_week = unbounded_active.cohort_week
    and grid.week_number = unbounded_active.week_number
