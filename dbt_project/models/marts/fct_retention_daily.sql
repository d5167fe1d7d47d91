{#
  Daily retention (DESIGN §2). Cohort = UTC date of a user_key's first non-bot event.
  retention_rate = share of the cohort active on exactly cohort_date + day_number
  (0..30); unbounded_retention_rate = share active on any day >= cohort_date + day_number
  ("on or after" retention). Rows exist only for days that have started by the last day
  with events: no fake zeros for the future.
#}
{% set max_day = var('retention_max_day') %}

with activity as (

    select user_key, activity_date from {{ ref('int_user_activity_daily') }}

),

first_seen as (

    select user_key, min(activity_date) as cohort_date
    from activity
    group by user_key

),

last_day as (

    select max(activity_date) as last_activity_date from activity

),

cohorts as (

    select cohort_date, count(*) as cohort_size
    from first_seen
    group by cohort_date

),

day_numbers as (

    select generated_number - 1 as day_number
    from ({{ dbt.generate_series(max_day + 1) }}) as series

),

grid as (

    select cohorts.cohort_date, day_numbers.day_number, cohorts.cohort_size
    from cohorts
    cross join day_numbers
    cross join last_day
    where {{ nightjar.add_days('day_numbers.day_number', 'cohorts.cohort_date') }} <= last_day.last_activity_date

),

user_days as (

    select
        first_seen.cohort_date,
        activity.user_key,
        {{ dbt.datediff('first_seen.cohort_date', 'activity.activity_date', 'day') }} as day_number
    from activity
    inner join first_seen
        on activity.user_key = first_seen.user_key

),

exact_active as (

    select cohort_date, day_number, count(distinct user_key) as active_users
    from user_days
    where day_number <= {{ max_day }}
    group by cohort_date, day_number

),

user_last_day as (

    select cohort_date, user_key, max(day_number) as last_day_number
    from user_days
    group by cohort_date, user_key

),

unbounded_active as (

    select grid.cohort_date, grid.day_number, count(*) as active_users_on_or_after
    from grid
    inner join user_last_day
        on grid.cohort_date = user_last_day.cohort_date
        and user_last_day.last_day_number >= grid.day_number
    group by grid.cohort_date, grid.day_number

)

select
    cast(grid.cohort_date as date) as cohort_date,
    cast(grid.day_number as {{ dbt.type_bigint() }}) as day_number,
    cast(grid.cohort_size as {{ dbt.type_bigint() }}) as cohort_size,
    cast(coalesce(exact_active.active_users, 0) as {{ dbt.type_bigint() }}) as active_users,
    cast({{ nightjar.safe_divide('coalesce(exact_active.active_users, 0)', 'grid.cohort_size') }} as {{ nightjar.type_double() }}) as retention_rate,
    cast(coalesce(unbounded_active.active_users_on_or_after, 0) as {{ dbt.type_bigint() }}) as active_users_on_or_after,
    cast({{ nightjar.safe_divide('coalesce(unbounded_active.active_users_on_or_after, 0)', 'grid.cohort_size') }} as {{ nightjar.type_double() }}) as unbounded_retention_rate
from grid
left join exact_active
    on grid.cohort_date = exact_active.cohort_date
    and grid.day_number = exact_active.day_number
left join unbounded_active
    on grid.cohort_date = unbounded_active.cohort_date
    and grid.day_number = unbounded_active.day_number
